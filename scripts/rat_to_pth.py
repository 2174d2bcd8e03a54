#!/usr/bin/python3
"""A rat model directory, training checkpoint or run directory -> the authors' (CLAIRE-Labo/RAT) checkpoint.

    rat_to_pth.py RUN_OR_MODEL_DIR OUT.pth

RUN_OR_MODEL_DIR is a run directory (its `latest` checkpoint is taken, and its config.yaml, the
resolved experiment, gives the optimiser's settings), a checkpoint (run/checkpoints/step-N) or a
model directory (config.yaml + model.safetensors). OUT.pth is torch.save of
  task          the state_dict, the authors' names (rat's, SPEC.md) in their task.state_dict() order,
                float32; a tied model also lists head.lm_head.weight, the embedding's tensor, as
                theirs does, so their strict load_state_dict accepts it;
  config        the config as an easydict.EasyDict (a stand-in pickled under that name when the
                module is not installed);
and, from a checkpoint, as their trainer's load_checkpoint reads them:
  step          the index of the last finished step (rat's optimiser steps - 1), resume_kwargs
                {"resume_step": step};
  optimizer     torch's optimizer state_dict: one parameter group (the hyper-parameters of the
                experiment, the keys of this torch version's optimizer class), state indexed in their
                task.parameters() order (scripts/authors_format.py authors_param_order), each with
                torch's state names (exp_avg, exp_avg_sq / square_avg, momentum_buffer, grad_avg) and
                "step";
  lr_scheduler  the state_dict of their scheduler class (StepLR, or CosineAnnealingLR with their
                warmup_iter when trainer.max_steps or optim.lr_scheduler.T_max gives the length;
                their own T_max stays otherwise), at last_epoch = rat's step.
A model directory gives task and config only: what their convert_load_ckpt.py (pretrained_path) reads.
Errors: one line on stderr, exit status 1, OUT.pth not written (it is written to a temporary name first).
"""
import argparse
import json
import math
import os
import sys
import tempfile

import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import authors_format as A  # noqa: E402

# rat's defaults per optimizer when the experiment omits a key (src/train/experiment.cc).
DEFAULTS = {
    "adamw": {"lr": 1e-4, "weight_decay": 0.1, "betas": [0.9, 0.999], "eps": 1e-8},
    "adam": {"lr": 1e-4, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8},
    "sgd": {"lr": 0.1, "weight_decay": 5e-4, "momentum": 0.9},
    "rmsprop": {"lr": 1e-2, "weight_decay": 0.0, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False},
}


def read_yaml(path):
    try:
        with open(path) as f:
            y = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise A.ConvertError("%s: unreadable (%s)" % (path, str(e).splitlines()[0]))
    if not isinstance(y, dict):
        raise A.ConvertError("%s: expected a YAML mapping" % path)
    return y


def merged(base, top):
    out = dict(base)
    for k, v in top.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def locate(path):
    """(checkpoint or model dir, the run's resolved config or None)."""
    if not os.path.isdir(path):
        raise A.ConvertError("%s: not a directory (expected a rat run, checkpoint or model directory)" % path)
    if os.path.exists(os.path.join(path, "latest")):
        run_cfg = os.path.join(path, "config.yaml")
        return os.path.realpath(os.path.join(path, "latest")), run_cfg if os.path.isfile(run_cfg) else None
    run_cfg = os.path.join(path, "..", "..", "config.yaml")
    if os.path.isfile(os.path.join(path, "optimizer.safetensors")) and os.path.isfile(run_cfg):
        return path, run_cfg
    if not os.path.isfile(os.path.join(path, "model.safetensors")):
        raise A.ConvertError("%s: no model.safetensors and no `latest` checkpoint; expected a rat run, "
                             "checkpoint or model directory" % path)
    return path, None


def optim_settings(cfg):
    o = dict((cfg.get("optim") or {}).get("optimizer") or {})
    name = o.get("_name_", "adamw")
    if name not in DEFAULTS:
        raise A.ConvertError("optim.optimizer._name_: unknown optimizer '%s'" % name)
    o = merged(DEFAULTS[name], o)
    o["_name_"] = name
    s = dict((cfg.get("optim") or {}).get("lr_scheduler") or {})
    s = merged({"_name_": "cosine", "warmup_iter": 0.1, "eta_min": 1e-7, "gamma": 0.1}, s)
    return o, s


def torch_optimizer(o, params):
    name = o["_name_"]
    if name in ("adamw", "adam"):
        cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        return cls(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"])
    if name == "sgd":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])
    return torch.optim.RMSprop(params, lr=o["lr"], alpha=o["alpha"], eps=o["eps"], weight_decay=o["weight_decay"],
                               momentum=o["momentum"], centered=bool(o["centered"]))


def torch_step_entry(o, osteps):
    """The per-parameter "step" of this torch version's optimizer class (a float tensor for Adam(W)
    since torch 1.12, an int for RMSprop in 1.13, none for SGD): one step of it on a dummy shows which."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch_optimizer(o, [p])
    p.grad = torch.zeros(1)
    opt.step()
    v = opt.state[p].get("step")
    if v is None:
        return None
    return torch.tensor(float(osteps), dtype=v.dtype) if torch.is_tensor(v) else type(v)(osteps)


def lr_at(o, s, step, total):
    """rat's lr of optimiser step `step` (src/train/optimizer.cc lr_at); None if it needs an unknown total."""
    base = float(o["lr"])
    if s["_name_"] == "constant":
        return base
    if s["_name_"] == "step":
        lr = base
        for _ in range(step // int(s["step_size"])):
            lr *= float(s["gamma"])
        return lr
    if total is None:
        return None
    W = int(float(s["warmup_iter"]) * total)
    if step < W:
        return base * (step + 1) / W
    return float(s["eta_min"]) + (base - float(s["eta_min"])) * (
        1 + math.cos(math.pi * (step - W) / max(1, total - W))) / 2


def scheduler_state(o, s, opt, step, total):
    name = s["_name_"]
    if name == "step":
        sch = torch.optim.lr_scheduler.StepLR(opt, int(s["step_size"]), float(s["gamma"]))
    elif name == "cosine" and total is not None:
        sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=float(s["eta_min"]))
    else:
        sch = None
    lr = lr_at(o, s, step, total)
    if sch is None:  # constant (no class of theirs), or cosine of unknown length: the counters only
        sd = {"last_epoch": step, "_step_count": step + 1, "base_lrs": [float(o["lr"])]}
    else:
        sd = sch.state_dict()
        sd.update({"last_epoch": step, "_step_count": step + 1})
        if name == "cosine":
            sd["warmup_iter"] = int(float(s["warmup_iter"]) * total)  # their subclass's, in steps
    if lr is not None:
        sd["_last_lr"] = [lr]
        for g in opt.param_groups:
            g["lr"] = lr
    return sd


def convert(a):
    src, run_cfg = locate(a.input)
    mcfg = read_yaml(os.path.join(src, "config.yaml"))
    cfg = merged(read_yaml(run_cfg), mcfg) if run_cfg else mcfg
    w = A.read_safetensors(os.path.join(src, "model.safetensors"))
    tied = bool((mcfg.get("task") or {}).get("tie_embedding", True))
    w.pop(A.TIED_HEAD, None) if tied else None
    order = A.authors_param_order(list(w), cfg)
    task = {}
    for name in order:  # state_dict order = parameters() order here (no persistent buffers)
        task[name] = w[name]
    if tied:  # their state_dict lists the head too, sharing the embedding's storage
        task[A.TIED_HEAD] = task[A.EMBEDDING]
    ck = {"task": task, "config": A.to_easydict(cfg)}

    if os.path.isfile(os.path.join(src, "optimizer.safetensors")):
        o, s = optim_settings(cfg)
        names = A.rat_state_names(o)
        st = A.read_safetensors(os.path.join(src, "optimizer.safetensors"))
        try:
            with open(os.path.join(src, "trainer_state.json")) as f:
                ts = json.load(f)
            step, osteps = int(ts["step"]), int(ts["optimizer_steps"])
        except (OSError, ValueError, KeyError) as e:
            raise A.ConvertError("%s/trainer_state.json: unreadable (%s), expected step and optimizer_steps" %
                                 (src, e))
        # The schedule's length: rat's trainer.max_steps, else the T_max the authors' trainer stores
        # in their config (max_step); unknown otherwise (max_epoch of rat's data).
        total = None
        for t in [(cfg.get("trainer") or {}).get("max_steps"), s.get("T_max")]:
            if total is None and t is not None and int(t) > 0:
                total = int(t)
        params = [torch.nn.Parameter(task[n].clone()) for n in order]
        opt = torch_optimizer(o, params)
        osd = opt.state_dict()
        sched = scheduler_state(o, s, opt, step, total)
        osd["param_groups"] = opt.state_dict()["param_groups"]
        if "initial_lr" not in osd["param_groups"][0]:
            osd["param_groups"][0]["initial_lr"] = float(o["lr"])
        state = {}
        step_entry = torch_step_entry(o, osteps)
        for i, n in enumerate(order):
            e = {} if step_entry is None else {"step": step_entry}
            for sn in names:
                key = sn + "." + n
                if key not in st:
                    raise A.ConvertError("%s/optimizer.safetensors: tensor '%s' is missing (%s keeps %s)" %
                                         (src, key, o["_name_"], ", ".join(names)))
                e[sn] = st[key]
            state[i] = e
        osd["state"] = state
        ck.update({"step": step - 1, "optimizer": osd, "lr_scheduler": sched,
                   "resume_kwargs": {"resume_step": step - 1}})

    out = os.path.abspath(a.output)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(out) + ".", suffix=".tmp", dir=os.path.dirname(out))
    os.close(fd)
    try:
        torch.save(ck, tmp)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    print("wrote %s (%d tensors%s)" % (a.output, len(task),
                                       ", step %d with optimizer state" % ck["step"] if "step" in ck else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="rat run, checkpoint or model directory")
    ap.add_argument("output", help="the authors' .pth to write")
    a = ap.parse_args()
    try:
        convert(a)
    except A.ConvertError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
