#!/usr/bin/python3
"""Reference training run in float32 with PyTorch, per SPEC.md "Training recipe" / "Experiment configs".

    torch_train_ref.py --model DIR --tokens FILE --out LOG.json
                       [--steps N] [--lr 8e-4] [--betas 0.9 0.95] [--eps 1e-8] [--weight-decay 0.1]
                       [--warmup-iter 0.05] [--eta-min 1e-6] [--clip 1.0] [--micro-batch 2] [--accum 1]
                       [--seq T] [--save-model OUTDIR] [--exp-config EXP.yaml]
                       [--optimizer adamw|adam|sgd|rmsprop] [--alpha 0.99] [--momentum 0] [--centered]
                       [--scheduler cosine|constant|step] [--step-size N] [--gamma 0.1]
                       [--save-pth OUT.pth] [--resume-pth IN.pth] [--stop-after K]

DIR holds config.yaml + model.safetensors (e.g. a make_case.py case's model/); the weights are read
(any of F32/BF16/F16) and widened to float32; all compute is float32 on the CPU.
--exp-config fills the defaults from an experiment config (optim.optimizer.{_name_, lr, weight_decay, betas, eps,
alpha, momentum, centered}, optim.lr_scheduler.{_name_, warmup_iter, eta_min, step_size, gamma},
trainer.{max_steps, gradient_clipping},
data.{batch_size, global_batch_size -> accum = global_batch_size / batch_size, seq_len,
train.tokenized_file_path}); explicit flags win.

Data and sampler (the "ordered" sampler, single rank):
  * samples are SPEC.md "Data" samples of the token file: sample r = inputs tok[rT .. rT+T-1],
    labels tok[rT+1 .. rT+T], label -100 where the input == data.ignore_input_index;
    (len(tok) - 1) // T samples in the file (trailing partial sample dropped).
  * as the authors' ordered loader (and the C++ lm_ordered sampler, src/train/sampler.cc) cuts them,
    only n = floor(samples / global_batch) * global_batch samples are used, global_batch =
    micro_batch * accum (single rank), so every epoch is whole optimiser steps.
  * optimiser step s (from 0), micro-batch m (0 .. accum-1), row j (0 .. micro_batch-1) uses sample
        r = ((s * accum + m) * micro_batch + j) mod n
    i.e. the samples in file order, micro-batch after micro-batch, wrapping to sample 0 when exhausted.

One optimiser step s:
  1. lr(s): W = int(warmup_iter * total); s < W: base * (s + 1) / W;
     else eta_min + (base - eta_min) * (1 + cos(pi * (s - W) / (total - W))) / 2.   (total = --steps)
  2. for each micro-batch m: loss_m = mean CE over its labels != -100; backward of loss_m / accum
     (gradients accumulate: the step's gradient is that of the mean of the micro-batch mean losses).
     The logged loss is mean_m(loss_m).
  3. grad_norm = global L2 norm over all parameter gradients (computed in float64 from the float32
     gradients); if clip > 0: every gradient *= min(1, clip / (grad_norm + 1e-6)).
  4. torch.optim.AdamW(lr=lr(s), betas, eps, weight_decay) step on every parameter (decay on all of
     them, norms, biases and gate_bias included). Tied models have a single embedding parameter.
     --optimizer picks torch.optim.Adam / SGD(momentum) / RMSprop(alpha, eps, weight_decay, momentum,
     centered) instead, as the authors' registry maps their names (src/optim/optimizer.py).
     --scheduler step is torch.optim.lr_scheduler.StepLR(step_size, gamma) itself, stepped after every
     optimiser step as the authors' trainer does; constant keeps lr; cosine is lr(s) above.

The optimiser's parameters are in the order of the authors' task.parameters() (authors_param_order):
their state_dict order with the tied head left out, so --save-pth writes the optimizer state_dict
their trainer's load_checkpoint reads. --save-pth OUT.pth writes the authors' checkpoint after the last
step: {"task": state_dict with "_orig_mod." prefixes (torch.compile's), "config": easydict.EasyDict of
the experiment, "step": index of the last step run (--steps - 1, or K - 1 with --stop-after K), "optimizer", "lr_scheduler" (StepLR's, or a
{"last_epoch"} record for the others), "resume_kwargs": {"resume_step": step}}. --resume-pth IN.pth
loads such a file (weights, optimizer and scheduler state) and runs steps k+1 .. --steps - 1 of the
same run, k its "step"; the log holds only those steps.

Output JSON: {"hparams": {...}, "num_samples": n, "steps": [{"step", "lr", "loss", "grad_norm",
"clip_scale", "samples": [r ...]}], "final_loss_on_step0_batch"}.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402
import st  # noqa: E402


def lr_at(s, base, total, warmup_iter, eta_min):
    W = int(warmup_iter * total)
    if s < W:
        return base * (s + 1) / W
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * (s - W) / (total - W))) / 2


def sample_indices(s, m, micro_batch, accum, n):
    return [((s * accum + m) * micro_batch + j) % n for j in range(micro_batch)]


def read_tokens(path, num_bytes):
    return np.fromfile(path, dtype="<u2" if int(num_bytes) == 2 else "<u4").astype(np.int64)


def exp_defaults(path):
    with open(path) as f:
        e = yaml.safe_load(f)
    d = {}
    opt = (e.get("optim") or {}).get("optimizer") or {}
    sch = (e.get("optim") or {}).get("lr_scheduler") or {}
    tr = e.get("trainer") or {}
    data = e.get("data") or {}
    for k_src, k_dst in [("_name_", "optimizer"), ("lr", "lr"), ("weight_decay", "weight_decay"), ("eps", "eps"),
                         ("betas", "betas"), ("alpha", "alpha"), ("momentum", "momentum"),
                         ("centered", "centered")]:
        if opt.get(k_src) is not None:
            d[k_dst] = opt[k_src]
    for k_src, k_dst in [("_name_", "scheduler"), ("warmup_iter", "warmup_iter"), ("eta_min", "eta_min"),
                         ("step_size", "step_size"), ("gamma", "gamma")]:
        if sch.get(k_src) is not None:
            d[k_dst] = sch[k_src]
    if tr.get("max_steps") is not None:
        d["steps"] = tr["max_steps"]
    if "gradient_clipping" in tr:
        d["clip"] = float(tr["gradient_clipping"] or 0.0)
    if data.get("batch_size"):
        d["micro_batch"] = data["batch_size"]
        if data.get("global_batch_size"):
            d["accum"] = max(1, int(data["global_batch_size"]) // int(data["batch_size"]))
    if data.get("seq_len"):
        d["seq"] = data["seq_len"]
    tp = (data.get("train") or {}).get("tokenized_file_path")
    if tp:
        d["tokens"] = tp
    return d


def authors_param_order(state_dict_keys, tied):
    """The authors' task.parameters() order: their state_dict order (a module's own parameters, then its
    children in the order their __init__ assigns them) without the tied head, which shares the embedding's
    Parameter. Hand-written from CLAIRE-Labo/RAT src/model: RAT and RNN layers hold gate_bias directly,
    so it precedes in_proj; RAT/attention assign in_proj, input_norm, out_proj, RNN in_proj, out_proj,
    input_norm; FFN fc1, fc2, ln; the backbone its layers, then ln."""
    def rank(name):
        p = name.split(".")
        top = {"embedding": 0, "backbone": 1, "head": 2}[p[0]]
        if p[0] != "backbone":
            return (top,)
        if p[1] == "ln":
            return (top, 1, 0, 0, 0, {"weight": 0, "bias": 1}[p[-1]])
        i, sub = int(p[2]), p[3]
        kids = ["gate_bias", "in_proj", "input_norm", "out_proj", "fc1", "fc2", "ln"]
        if sub == "seq_layer" and RNN_LAYERS.get(i):
            kids = ["gate_bias", "in_proj", "out_proj", "input_norm"]
        return (top, 0, i, 0 if sub == "seq_layer" else 1, kids.index(p[4]),
                {"weight": 0, "bias": 1}.get(p[-1], 0))
    keys = [k for k in state_dict_keys if not (tied and k == "head.lm_head.weight")]
    return sorted(keys, key=rank)


RNN_LAYERS = {}   # layer index -> True for rnn seq cells (filled by main from the config)


def make_optimizer(a, params):
    """torch's optimiser for the authors' registry name, single-tensor path (foreach=False)."""
    if a.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=a.lr, betas=tuple(a.betas), eps=a.eps, weight_decay=a.weight_decay,
                                 foreach=False)
    if a.optimizer == "adam":
        return torch.optim.Adam(params, lr=a.lr, betas=tuple(a.betas), eps=a.eps, weight_decay=a.weight_decay,
                                foreach=False)
    if a.optimizer == "sgd":
        return torch.optim.SGD(params, lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay, foreach=False)
    return torch.optim.RMSprop(params, lr=a.lr, alpha=a.alpha, eps=a.eps, weight_decay=a.weight_decay,
                               momentum=a.momentum, centered=a.centered, foreach=False)


def experiment_config(a, cfg_path):
    """The experiment as the authors' resolved config (what their trainer pickles), from the model's
    config.yaml and the run's hyper-parameters."""
    with open(cfg_path) as f:
        c = yaml.safe_load(f)
    opt = {"_name_": a.optimizer, "lr": a.lr, "weight_decay": a.weight_decay}
    if a.optimizer in ("adamw", "adam"):
        opt.update({"betas": list(a.betas), "eps": a.eps})
    elif a.optimizer == "sgd":
        opt["momentum"] = a.momentum
    else:
        opt.update({"alpha": a.alpha, "eps": a.eps, "momentum": a.momentum, "centered": a.centered})
    if a.scheduler == "step":
        sch = {"_name_": "step", "step_size": a.step_size, "gamma": a.gamma}
    else:
        sch = {"_name_": a.scheduler, "warmup_iter": a.warmup_iter, "eta_min": a.eta_min, "T_max": a.steps}
    c["optim"] = {"optimizer": opt, "lr_scheduler": sch}
    c["trainer"] = {"seed": 1005, "dtype": "float32", "max_epoch": 1, "gradient_clipping": a.clip or False,
                    "torch_compile": True, "load_checkpoint": True, "save_checkpoint": True}
    c.setdefault("data", {}).update({"batch_size": a.micro_batch, "global_batch_size": a.micro_batch * a.accum})
    return c


def to_easydict(x):
    import easydict  # python3-easydict: the class the authors pickle their config as
    if isinstance(x, dict):
        return easydict.EasyDict({k: to_easydict(v) for k, v in x.items()})
    return x


def save_authors_pth(a, cfg, model, opt, sched, step):
    sd = model.state_dict()
    task = {}
    for k, v in sd.items():   # torch.compile wraps every submodule name as the authors' loader expects
        task["_orig_mod." + k] = v.detach().clone()
    if cfg.tie_embedding and "head.lm_head.weight" not in sd:
        task["_orig_mod.head.lm_head.weight"] = sd["embedding.wte.weight"].detach().clone()
    sch = sched.state_dict() if sched is not None else {"last_epoch": step + 1, "base_lrs": [a.lr],
                                                         "_last_lr": [opt.param_groups[0]["lr"]]}
    ck = {"task": task, "config": to_easydict(experiment_config(a, os.path.join(a.model, "config.yaml"))),
          "step": step, "optimizer": opt.state_dict(), "lr_scheduler": sch,
          "resume_kwargs": {"resume_step": step}}
    torch.save(ck, a.save_pth)


def load_authors_pth(path):
    import easydict  # noqa: F401  (the pickle names easydict.EasyDict)
    return torch.load(path, map_location="cpu")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens")
    ap.add_argument("--out", required=True)
    ap.add_argument("--exp-config")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--betas", type=float, nargs=2, default=[0.9, 0.95])
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--warmup-iter", type=float, default=0.05)
    ap.add_argument("--eta-min", type=float, default=1e-6)
    ap.add_argument("--clip", type=float, default=1.0, help="max grad norm; 0 disables clipping")
    ap.add_argument("--micro-batch", type=int, default=2)
    ap.add_argument("--accum", type=int, default=1)
    ap.add_argument("--seq", type=int, default=None, help="T (default: data.seq_len of the model config)")
    ap.add_argument("--save-model", help="write the final weights (F32) + config.yaml to this directory")
    ap.add_argument("--optimizer", default="adamw", choices=["adamw", "adam", "sgd", "rmsprop"])
    ap.add_argument("--alpha", type=float, default=0.99)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--centered", action="store_true")
    ap.add_argument("--scheduler", default="cosine", choices=["cosine", "constant", "step"])
    ap.add_argument("--step-size", type=int, default=1)
    ap.add_argument("--gamma", type=float, default=0.1)
    ap.add_argument("--save-pth", help="write the authors' {step}.pth checkpoint after the last step")
    ap.add_argument("--resume-pth", help="resume from an authors' checkpoint (as --save-pth writes)")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="stop after this many steps of the --steps run (0: run them all)")
    if argv is None:
        argv = sys.argv[1:]
    a = ap.parse_args(argv)
    if a.exp_config:   # experiment config gives defaults; flags given explicitly on the command line win
        ap.set_defaults(**exp_defaults(a.exp_config))
        a = ap.parse_args(argv)
    if not a.tokens:
        ap.error("--tokens is required (or data.train.tokenized_file_path in --exp-config)")

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    cfg = R.load_config(os.path.join(a.model, "config.yaml"))
    with open(os.path.join(a.model, "config.yaml")) as f:
        raw = yaml.safe_load(f)
    bb = raw["model"]["backbone"]
    for i in range(int(bb["num_layers"])):
        inter = bb.get("_name_") == "sequence_interleave" and i % int(bb.get("interleave_step", 2)) == 0
        RNN_LAYERS[i] = (bb["seq_cell1"] if inter else bb["seq_cell"])["_name_"] == "rnn"
    T = int(a.seq or cfg.seq_len)
    model = R.LM(cfg, torch.float32)
    model.load_weights(st.load_file(os.path.join(a.model, "model.safetensors"), out_dtype=torch.float32))

    tok = read_tokens(a.tokens, cfg.num_bytes)
    inputs, labels = R.make_samples(torch.from_numpy(tok), T, cfg.ignore_input_index)
    gb = a.micro_batch * a.accum
    n = inputs.shape[0] // gb * gb   # the loader's cut: whole global batches only
    if n == 0:
        raise SystemExit("token file shorter than one global batch of %d samples x T %d" % (gb, T))

    named = dict(model.named_parameters())
    order = authors_param_order(list(model.state_dict().keys()), cfg.tie_embedding)
    params = [named[k] for k in order]
    opt = make_optimizer(a, params)
    sched = torch.optim.lr_scheduler.StepLR(opt, a.step_size, a.gamma) if a.scheduler == "step" else None
    first = 0
    if a.resume_pth:
        ck = load_authors_pth(a.resume_pth)
        sd = {k.replace("_orig_mod.", ""): v for k, v in ck["task"].items()}
        model.load_state_dict(sd, strict=False)
        opt.load_state_dict(ck["optimizer"])
        if sched is not None:
            sched.load_state_dict(ck["lr_scheduler"])
        first = int(ck["step"]) + 1
    hp = {k: v for k, v in vars(a).items()}
    hp["seq"] = T
    log = {"hparams": hp, "num_samples": n, "steps": []}
    last = min(a.steps, first + a.stop_after) if a.stop_after > 0 else a.steps
    for s in range(first, last):
        if sched is not None:
            lr = opt.param_groups[0]["lr"]
        else:
            lr = a.lr if a.scheduler == "constant" else lr_at(s, a.lr, a.steps, a.warmup_iter, a.eta_min)
            for g in opt.param_groups:
                g["lr"] = lr
        opt.zero_grad(set_to_none=False)
        losses, used = [], []
        for m in range(a.accum):
            idx = sample_indices(s, m, a.micro_batch, a.accum, n)
            used += idx
            loss = model.loss(model(inputs[idx]), labels[idx])
            (loss / a.accum).backward()
            losses.append(float(loss))
        with torch.no_grad():
            norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params))
            scale = 1.0
            if a.clip and a.clip > 0:
                scale = min(1.0, a.clip / (norm + 1e-6))
                if scale < 1.0:
                    for p in params:
                        p.grad.mul_(scale)
        opt.step()
        if sched is not None:
            sched.step()
        rec = {"step": s, "lr": lr, "loss": sum(losses) / len(losses), "micro_losses": losses,
               "grad_norm": norm, "clip_scale": scale, "samples": used}
        log["steps"].append(rec)
        print("step %d lr %.6e loss %.6f grad_norm %.6f" % (s, lr, rec["loss"], norm))
    with torch.no_grad():
        idx = sample_indices(0, 0, a.micro_batch, a.accum, n)
        log["final_loss_on_step0_batch"] = float(model.loss(model(inputs[idx]), labels[idx]))
    with open(a.out, "w") as f:
        json.dump(log, f, indent=1)
    if a.save_pth:
        save_authors_pth(a, cfg, model, opt, sched, last - 1)
    if a.save_model:
        os.makedirs(a.save_model, exist_ok=True)
        R.save_config(cfg, os.path.join(a.save_model, "config.yaml"))
        st.save_file({k: v for k, v in model.state_dict().items()},
                     os.path.join(a.save_model, "model.safetensors"), dtype="F32", metadata={"format": "pt"})


if __name__ == "__main__":
    main()
