#!/usr/bin/python3
"""The authors' (CLAIRE-Labo/RAT) checkpoint -> a rat model directory, and a rat training checkpoint.

    pth_to_rat.py IN.pth OUT_DIR [--dtype f32|bf16] [--weights-only] [--tokenizer tokenizer.model] [--rat PATH]

OUT_DIR/config.yaml       data (seq_len, vocab_size, num_bytes, ignore_input_index), model (the
                          checkpoint's, whole) and task (tie_embedding, ignore_index) of its config;
OUT_DIR/model.safetensors the state_dict's tensors (names: scripts/authors_format.py NAME_RULES, i.e.
                          `_orig_mod.`/`module.` stripped; a tied head.lm_head.weight is left out),
                          in --dtype (f32 by default);
so `rat eval`, `rat generate --model OUT_DIR` and `rat train ... trainer.pretrained_path=OUT_DIR` use it.
When the checkpoint holds optimizer state (and not --weights-only), also the rat run directory
OUT_DIR/run (config.yaml: the checkpoint's whole config; checkpoints/step-N and `latest`, as rat's
trainer writes them, f32) with N = the
checkpoint's step + 1 optimiser steps done, which
    rat train EXPERIMENT --run-dir OUT_DIR/run trainer.load_checkpoint=true
resumes at step N (the experiment's optim and schedule must be the checkpoint's, as for the authors'
resume). The model is checked by loading it with rat (`rat generate`, one token); the binary is --rat,
else $RAT, else build/rat of this repository, else `rat` on PATH.

Refused with one line on stderr and exit status 1, nothing written: an unreadable or truncated file,
a missing key, tensor names or shapes the config's model lacks, config options rat lacks, optimizer
state rat cannot resume (amsgrad, several parameter groups, a missing state tensor).
The config is unpickled without the easydict module (its EasyDict becomes a dict).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import authors_format as A  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_rat(given):
    for c in [given, os.environ.get("RAT"), os.path.join(REPO, "build", "rat"), shutil.which("rat")]:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise A.ConvertError("cannot find the rat binary to check the converted model; build it "
                         "(scripts/build.sh) or pass --rat PATH")


def rat_config(cfg, src):
    """The model part of the authors' resolved config, as rat's config.yaml (SPEC.md)."""
    for key in ("data", "model", "task"):
        if not isinstance(cfg.get(key), dict):
            raise A.ConvertError("%s: config.%s is missing, expected the authors' resolved config" % (src, key))
    data = {k: cfg["data"][k] for k in ("seq_len", "vocab_size", "num_bytes", "ignore_input_index")
            if cfg["data"].get(k) is not None}
    task = {k: cfg["task"][k] for k in ("_name_", "tie_embedding", "ignore_index") if k in cfg["task"]}
    return {"data": data, "model": cfg["model"], "task": task}


def weights(ck, src, tied):
    """{rat name: float tensor} from the state_dict."""
    out = {}
    for stored, t in ck["task"].items():
        if not torch.is_tensor(t) or not t.is_floating_point():
            raise A.ConvertError("%s: task['%s'] is not a floating-point tensor" % (src, stored))
        name = A.rat_name(stored)
        if name in out:
            raise A.ConvertError("%s: tensor '%s' is stored twice (as '%s' and another name)" % (src, name, stored))
        out[name] = t.detach().to(torch.float32)  # exact for bf16/f16 storage
    if tied and A.TIED_HEAD in out:
        head = out.pop(A.TIED_HEAD)
        if A.EMBEDDING not in out or not torch.equal(head, out[A.EMBEDDING]):
            raise A.ConvertError("%s: task.tie_embedding is true but '%s' differs from '%s'" %
                                 (src, A.TIED_HEAD, A.EMBEDDING))
    return out


def optimizer_state(ck, src, cfg, params):
    """{rat state name.param name: tensor} and the optimiser step count from the torch optimizer
    state_dict, whose integer keys index the authors' task.parameters() order."""
    opt_cfg = (cfg.get("optim") or {}).get("optimizer") or {}
    try:
        state_names = A.rat_state_names(opt_cfg)
    except A.ConvertError as e:
        raise A.ConvertError("%s: config.%s (or convert with --weights-only)" % (src, e))
    sched = ((cfg.get("optim") or {}).get("lr_scheduler") or {}).get("_name_", "cosine")
    if sched not in ("cosine", "constant", "step"):
        raise A.ConvertError("%s: config.optim.lr_scheduler._name_ '%s' is not supported by rat, expected one "
                             "of cosine, constant, step (or convert with --weights-only)" % (src, sched))
    osd = ck["optimizer"]
    if not isinstance(osd, dict) or "state" not in osd or "param_groups" not in osd:
        raise A.ConvertError("%s: 'optimizer' is not a torch optimizer state_dict (state, param_groups)" % src)
    groups = osd["param_groups"]
    order = A.authors_param_order(list(params), cfg)
    if len(groups) != 1 or list(groups[0].get("params", [])) != list(range(len(order))):
        raise A.ConvertError("%s: the optimizer has %d parameter groups over %s parameters; rat resumes "
                             "one group over all %d parameters, as the authors' trainer builds it" %
                             (src, len(groups), sum(len(g.get("params", [])) for g in groups), len(order)))
    for flag in ("amsgrad", "nesterov", "maximize"):
        if groups[0].get(flag):
            raise A.ConvertError("%s: optimizer %s=True is not supported by rat" % (src, flag))
    if float(groups[0].get("dampening") or 0) != 0:
        raise A.ConvertError("%s: optimizer dampening %s is not supported by rat (expected 0)" %
                             (src, groups[0]["dampening"]))
    out, steps = {}, set()
    for i, name in enumerate(order):
        st = osd["state"].get(i, {})
        if "step" in st:
            steps.add(int(float(st["step"])))
        for s in state_names:
            t = st.get(s)
            if t is None:
                if st:
                    raise A.ConvertError("%s: optimizer state of parameter %d (%s) lacks '%s'" % (src, i, name, s))
                t = torch.zeros_like(params[name])  # no step taken yet
            if tuple(t.shape) != tuple(params[name].shape):
                raise A.ConvertError("%s: optimizer state '%s' of parameter %d (%s) has shape %s, the "
                                     "parameter %s" % (src, s, i, name, list(t.shape), list(params[name].shape)))
            out[s + "." + name] = t.detach().to(torch.float32)
    if len(steps) > 1:
        raise A.ConvertError("%s: the parameters' optimizer step counts differ (%s)" % (src, sorted(steps)))
    return out, (steps.pop() if steps else 0)


def check_with_rat(rat, model_dir, src):
    p = subprocess.run([rat, "generate", "--model", model_dir, "--prompt-ids", "0", "--max-new-tokens", "1",
                        "--greedy", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        lines = [l for l in p.stderr.strip().splitlines() if l.strip()] or ["rat exited %d" % p.returncode]
        why = lines[-1].replace(model_dir + os.sep, "").replace(model_dir, "")
        why = why[len("error: "):] if why.startswith("error: ") else why
        raise A.ConvertError("%s: its model does not load in rat: %s" % (src, why))


def convert(a):
    ck = A.load_pth(a.input)
    cfg = A.plain(ck.get("config"))
    if not isinstance(cfg, dict):
        raise A.ConvertError("%s: 'config' is missing, expected the authors' resolved config" % a.input)
    rc = rat_config(cfg, a.input)
    tied = bool(rc["task"].get("tie_embedding", True))
    params = weights(ck, a.input, tied)
    resume = not a.weights_only and ck.get("optimizer") is not None
    if resume:
        if "step" not in ck:
            raise A.ConvertError("%s: 'step' is missing, expected the index of the last finished step" % a.input)
        ostate, osteps = optimizer_state(ck, a.input, cfg, params)
    rat = find_rat(a.rat)

    out = os.path.abspath(a.output)
    if os.path.exists(out):
        raise A.ConvertError("%s: exists; give a new directory" % a.output)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(out) + ".", suffix=".tmp", dir=parent)
    try:
        with open(os.path.join(tmp, "config.yaml"), "w") as f:
            yaml.safe_dump(rc, f, sort_keys=False)
        A.write_safetensors(os.path.join(tmp, "model.safetensors"), params, "BF16" if a.dtype == "bf16" else "F32")
        if a.tokenizer:
            if not os.path.isfile(a.tokenizer):
                raise A.ConvertError("%s: no such file (--tokenizer)" % a.tokenizer)
            shutil.copy(a.tokenizer, os.path.join(tmp, "tokenizer.model"))
        check_with_rat(rat, tmp, a.input)
        if resume:
            step = int(ck["step"]) + 1  # the authors count the last finished step from 0
            name = A.checkpoint_name(step)
            cdir = os.path.join(tmp, "run", "checkpoints", name)
            os.makedirs(cdir)
            shutil.copy(os.path.join(tmp, "config.yaml"), cdir)
            # The run's config, as rat's trainer keeps the resolved experiment there (rat train
            # rewrites it with the resuming experiment's); rat_to_pth.py reads optim from it.
            with open(os.path.join(tmp, "run", "config.yaml"), "w") as f:
                yaml.safe_dump(cfg, f, sort_keys=False)
            A.write_safetensors(os.path.join(cdir, "model.safetensors"), params, "F32")
            A.write_safetensors(os.path.join(cdir, "optimizer.safetensors"), ostate, "F32")
            with open(os.path.join(cdir, "trainer_state.json"), "w") as f:
                json.dump({"step": step, "optimizer_steps": osteps, "world": 1}, f, indent=2)
                f.write("\n")
            os.symlink(os.path.join("checkpoints", name), os.path.join(tmp, "run", "latest"))
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print("wrote %s (%d tensors%s)" % (a.output, len(params),
                                       ", resumable run %s/run at step %d" % (a.output, int(ck["step"]) + 1)
                                       if resume else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="the authors' {step}.pth")
    ap.add_argument("output", help="new rat model directory")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32", help="of OUT_DIR/model.safetensors")
    ap.add_argument("--weights-only", action="store_true", help="no resumable run, even with optimizer state")
    ap.add_argument("--rat", help="the rat binary that checks the result")
    ap.add_argument("--tokenizer", help="tokenizer.model to copy into OUT_DIR (for rat generate --prompt)")
    a = ap.parse_args()
    try:
        convert(a)
    except A.ConvertError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
