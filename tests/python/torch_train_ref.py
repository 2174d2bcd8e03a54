#!/usr/bin/python3
"""Reference training run in float32 with PyTorch, per SPEC.md "Training recipe" / "Experiment configs".

    torch_train_ref.py --model DIR --tokens FILE --out LOG.json
                       [--steps N] [--lr 8e-4] [--betas 0.9 0.95] [--eps 1e-8] [--weight-decay 0.1]
                       [--warmup-iter 0.05] [--eta-min 1e-6] [--clip 1.0] [--micro-batch 2] [--accum 1]
                       [--seq T] [--save-model OUTDIR] [--exp-config EXP.yaml]

DIR holds config.yaml + model.safetensors (e.g. a make_case.py case's model/); the weights are read
(any of F32/BF16/F16) and widened to float32; all compute is float32 on the CPU.
--exp-config fills the defaults from an experiment config (optim.optimizer.{lr, weight_decay, betas, eps},
optim.lr_scheduler.{warmup_iter, eta_min}, trainer.{max_steps, gradient_clipping},
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
    for k_src, k_dst in [("lr", "lr"), ("weight_decay", "weight_decay"), ("eps", "eps"), ("betas", "betas")]:
        if opt.get(k_src) is not None:
            d[k_dst] = opt[k_src]
    if sch.get("warmup_iter") is not None:
        d["warmup_iter"] = sch["warmup_iter"]
    if sch.get("eta_min") is not None:
        d["eta_min"] = sch["eta_min"]
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
    T = int(a.seq or cfg.seq_len)
    model = R.LM(cfg, torch.float32)
    model.load_weights(st.load_file(os.path.join(a.model, "model.safetensors"), out_dtype=torch.float32))

    tok = read_tokens(a.tokens, cfg.num_bytes)
    inputs, labels = R.make_samples(torch.from_numpy(tok), T, cfg.ignore_input_index)
    gb = a.micro_batch * a.accum
    n = inputs.shape[0] // gb * gb   # the loader's cut: whole global batches only
    if n == 0:
        raise SystemExit("token file shorter than one global batch of %d samples x T %d" % (gb, T))

    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, betas=tuple(a.betas), eps=a.eps, weight_decay=a.weight_decay,
                            foreach=False)
    hp = {k: v for k, v in vars(a).items()}
    hp["seq"] = T
    log = {"hparams": hp, "num_samples": n, "steps": []}
    for s in range(a.steps):
        lr = lr_at(s, a.lr, a.steps, a.warmup_iter, a.eta_min)
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
        rec = {"step": s, "lr": lr, "loss": sum(losses) / len(losses), "micro_losses": losses,
               "grad_norm": norm, "clip_scale": scale, "samples": used}
        log["steps"].append(rec)
        print("step %d lr %.6e loss %.6f grad_norm %.6f" % (s, lr, rec["loss"], norm))
    with torch.no_grad():
        idx = sample_indices(0, 0, a.micro_batch, a.accum, n)
        log["final_loss_on_step0_batch"] = float(model.loss(model(inputs[idx]), labels[idx]))
    with open(a.out, "w") as f:
        json.dump(log, f, indent=1)
    if a.save_model:
        os.makedirs(a.save_model, exist_ok=True)
        R.save_config(cfg, os.path.join(a.save_model, "config.yaml"))
        st.save_file({k: v for k, v in model.state_dict().items()},
                     os.path.join(a.save_model, "model.safetensors"), dtype="F32", metadata={"format": "pt"})


if __name__ == "__main__":
    main()
