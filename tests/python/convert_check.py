#!/usr/bin/python3
"""Checks scripts/pth_to_rat.py and scripts/rat_to_pth.py against checkpoints in the authors' layout
(CLAIRE-Labo/RAT trainer.py: torch.save({"task", "config": EasyDict, "step", "optimizer", "lr_scheduler",
"resume_kwargs"})) written here with torch from the reference model, not by the scripts under test.

    convert_check.py --rat build/rat --checker build/tests/rat_check_case --out DIR
                     [--case cases/rat_g2_ragged.yaml] [--optim YAML] [--scheduler YAML]

1. Golden: the case's weights saved as an authors' checkpoint (keys "_orig_mod."-prefixed, as
   torch.compile names them; tied head listed; EasyDict config) -> pth_to_rat -> the case directory with
   that model passes rat_check_case (logits, loss, gradients, evaluate vs the float64 oracle, its
   tolerances). --dtype bf16 stores each tensor rounded to bf16 (st.round_to, the oracle's rounding).
2. The authors' parameter order (their task.parameters(), indexing the optimizer state) for the case,
   hand-written from their src/model below, equals what the converter and the reference trainer use.
3. torch_train_ref.py trains N = 3 of 6 steps and saves the authors' checkpoint (torch's optimizer and
   scheduler state). pth_to_rat writes the model and run/; rat_to_pth of that run gives back the same
   tensors, step, optimizer state and scheduler counters bit for bit; rat model dir -> pth -> rat dir
   and rat run -> pth -> rat run give back the same tensors bit for bit.
4. Resume: `rat train --run-dir OUT/run trainer.load_checkpoint=true` runs steps 4..6; they and the final
   weights match the reference's uninterrupted 6 steps with train_step_check.py's tolerances (the
   reference resumed from the same file equals its uninterrupted run exactly, which checks the oracle).
5. Bad inputs (truncated file, no "task", a missing tensor, a wrong shape, an unknown tensor, a config
   option rat lacks): one line on stderr, exit status 1, nothing written.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys

import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "scripts"))
import easydict  # noqa: E402  (python3-easydict: the class the authors pickle their config as)
import st  # noqa: E402
import torch_train_ref as TR  # noqa: E402
import authors_format as AF  # noqa: E402
from train_step_check import write_tokens  # noqa: E402

PY = sys.executable
STEPS, FIRST, MICRO, ACCUM = 6, 3, 2, 2
BAD = []


def fail(msg):
    BAD.append(msg)
    print("FAIL: " + msg)


def run(cmd, ok=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if ok and p.returncode != 0:
        sys.exit("FAILED (%d): %s\n%s%s" % (p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p


def ez(x):
    if isinstance(x, dict):
        return easydict.EasyDict({k: ez(v) for k, v in x.items()})
    return x


def hand_order(cfg):
    """The authors' task.parameters() order, from their __init__s (src/model/...): embedding.wte; per
    layer the seq cell (RAT/RNN: own gate_bias first; RAT and attention assign in_proj, input_norm,
    out_proj; RNN in_proj, out_proj, input_norm), the FFN (fc1, fc2, ln; weight before bias); backbone.ln;
    head.lm_head unless tied."""
    bb = cfg["model"]["backbone"]
    hid = bb["hidden_cell"]
    names = ["embedding.wte.weight"]
    for i in range(int(bb["num_layers"])):
        inter = bb["_name_"] == "sequence_interleave" and i % int(bb.get("interleave_step", 2)) == 0
        kind = (bb["seq_cell1"] if inter else bb["seq_cell"])["_name_"]
        pre = "backbone.layers.%d.seq_layer." % i
        seq = {"rat": ["gate_bias", "in_proj.weight", "input_norm.weight", "out_proj.weight"],
               "rnn": ["gate_bias", "in_proj.weight", "out_proj.weight", "input_norm.weight"],
               "attention": ["in_proj.weight", "input_norm.weight", "out_proj.weight"],
               "local_attention": ["in_proj.weight", "input_norm.weight", "out_proj.weight"],
               "identity": []}[kind]
        names += [pre + n for n in seq]
        pre = "backbone.layers.%d.hidden_layer." % i
        ffn = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "ln.weight"] if hid.get("bias") else \
            ["fc1.weight", "fc2.weight", "ln.weight"]
        names += [pre + n for n in ffn] if hid["_name_"] == "ffn" else []
    names.append("backbone.ln.weight")
    if not cfg["task"].get("tie_embedding", True):
        names.append("head.lm_head.weight")
    return names


def tensors_equal(what, a, b):
    if sorted(a) != sorted(b):
        fail("%s: names differ: only left %s, only right %s" % (what, sorted(set(a) - set(b)), sorted(set(b) - set(a))))
        return
    for k in a:
        if not torch.is_tensor(a[k]):
            if type(a[k]) != type(b[k]) or a[k] != b[k]:
                fail("%s: %s is %r, want %r" % (what, k, b[k], a[k]))
        elif a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or not torch.equal(a[k], b[k]):
            fail("%s: tensor %s differs" % (what, k))


def stripped(task):
    return {k.replace("_orig_mod.", ""): v for k, v in task.items()}


def check_bad(name, pth, out, expect, extra=()):
    before = set(os.listdir(os.path.dirname(out)))
    p = run([PY, os.path.join(REPO, "scripts", "pth_to_rat.py"), pth, out] + list(extra), ok=False)
    lines = p.stderr.strip().splitlines()
    left = sorted(set(os.listdir(os.path.dirname(out))) - before)
    if p.returncode != 1 or len(lines) != 1 or not lines[0].startswith("error: ") or expect not in lines[0] or left:
        fail("bad input %s: rc %d, stderr %r, written %s (want rc 1, one 'error: ...%s...' line, nothing)" %
             (name, p.returncode, p.stderr, left, expect))
    else:
        print("bad input %-16s -> %s" % (name, lines[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rat", required=True)
    ap.add_argument("--checker", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--case", default=os.path.join(HERE, "cases", "rat_g2_ragged.yaml"))
    ap.add_argument("--optim", default="{_name_: adamw, lr: 1.0e-2, weight_decay: 0.1, betas: [0.9, 0.95], eps: 1.0e-8}")
    ap.add_argument("--scheduler", default="{_name_: cosine, warmup_iter: 0.34, eta_min: 1.0e-4}")
    a = ap.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    O = lambda *p: os.path.join(a.out, *p)  # noqa: E731
    to_rat = lambda i, o, *x: run([PY, os.path.join(REPO, "scripts", "pth_to_rat.py"), i, o, "--rat", a.rat] + list(x))  # noqa: E731,E501
    to_pth = lambda i, o: run([PY, os.path.join(REPO, "scripts", "rat_to_pth.py"), i, o])  # noqa: E731
    run([PY, os.path.join(HERE, "make_case.py"), "--config", a.case, "--out", O("case")])
    model_dir = O("case", "model")
    with open(os.path.join(model_dir, "config.yaml")) as f:
        mcfg = yaml.safe_load(f)
    w0 = st.load_file(os.path.join(model_dir, "model.safetensors"), out_dtype=torch.float32)
    tied = mcfg["task"].get("tie_embedding", True)

    # 1. golden
    task = {"_orig_mod." + k: v for k, v in w0.items()}
    if tied:
        task["_orig_mod.head.lm_head.weight"] = w0["embedding.wte.weight"]
    torch.save({"task": task, "config": ez(mcfg)}, O("golden.pth"))
    to_rat(O("golden.pth"), O("golden_rat"))
    shutil.copytree(O("case"), O("case_conv"), ignore=shutil.ignore_patterns("model"))
    shutil.copytree(O("golden_rat"), O("case_conv", "model"))
    p = run([a.checker, O("case_conv")], ok=False)
    print(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr)
    if p.returncode != 0:
        fail("rat_check_case on the converted golden model:\n" + p.stdout + p.stderr)
    to_rat(O("golden.pth"), O("golden_bf16"), "--dtype", "bf16")
    got, dts = st.load_file(O("golden_bf16", "model.safetensors"), with_dtypes=True)
    tensors_equal("bf16 conversion", got, {k: st.round_to(v, "BF16") for k, v in w0.items()
                                           if not (tied and k == "head.lm_head.weight")})
    if set(dts.values()) != {"BF16"}:
        fail("--dtype bf16 wrote %s" % sorted(set(dts.values())))

    # 2. parameter order
    want = hand_order(mcfg)
    names = [k for k in w0 if not (tied and k == "head.lm_head.weight")]
    if AF.authors_param_order(names, mcfg) != want:
        fail("scripts' parameter order %s != the authors' %s" % (AF.authors_param_order(names, mcfg), want))
    TR.RNN_LAYERS.clear()
    TR.RNN_LAYERS.update({i: c[0] == "rnn" for i, c in enumerate(AF.layer_cells(mcfg))})
    if TR.authors_param_order(names, tied) != want:
        fail("torch_train_ref's parameter order != the authors' %s" % want)

    # 3. the authors' checkpoint after FIRST of STEPS steps, and the round trips
    exp = dict(mcfg)
    T = int(mcfg["data"]["seq_len"])
    write_tokens(O("train.bin"), T, int(mcfg["data"]["vocab_size"]), mcfg["data"].get("ignore_input_index"),
                 mcfg["data"]["num_bytes"], 11)
    exp["data"] = dict(mcfg["data"], batch_size=MICRO, global_batch_size=MICRO * ACCUM,
                       train={"_name_": "lm_ordered", "tokenized_file_path": O("train.bin")})
    exp["optim"] = {"optimizer": yaml.safe_load(a.optim), "lr_scheduler": yaml.safe_load(a.scheduler)}
    exp["trainer"] = {"seed": 0, "dtype": "float32", "max_steps": STEPS, "gradient_clipping": 1.0,
                      "log_interval": 1, "save_checkpoint": True, "save_interval": 1.0, "load_checkpoint": False,
                      "pretrained_path": model_dir, "save_dir": O("unused")}
    with open(O("exp.yaml"), "w") as f:
        yaml.safe_dump(exp, f, sort_keys=False)
    ref = [PY, os.path.join(HERE, "torch_train_ref.py"), "--exp-config", O("exp.yaml"), "--model", model_dir]
    run(ref + ["--steps", str(STEPS), "--out", O("ref_all.json"), "--save-model", O("ref_all_model")])
    # --steps fixes the schedule's length; --stop-after cuts the run after FIRST steps.
    run(ref + ["--steps", str(STEPS), "--stop-after", str(FIRST), "--out", O("ref_a.json"), "--save-pth", O("a.pth")])
    run(ref + ["--steps", str(STEPS), "--resume-pth", O("a.pth"), "--out", O("ref_b.json"),
               "--save-model", O("ref_b_model")])
    ra = json.load(open(O("ref_all.json")))["steps"]
    rb = json.load(open(O("ref_b.json")))["steps"]
    if [r["loss"] for r in rb] != [r["loss"] for r in ra[FIRST:]]:
        fail("the reference resumed from a.pth differs from its uninterrupted run")

    ck_a = torch.load(O("a.pth"))
    to_rat(O("a.pth"), O("conv"))
    got = st.load_file(O("conv", "model.safetensors"))
    tensors_equal("pth -> rat weights", got, {k: v for k, v in stripped(ck_a["task"]).items()
                                              if not (tied and k == "head.lm_head.weight")})
    ts = json.load(open(O("conv", "run", "latest", "trainer_state.json")))
    if ts["step"] != FIRST or ts["step"] != ck_a["step"] + 1:
        fail("trainer_state %s, want step %d" % (ts, FIRST))
    to_pth(O("conv", "run"), O("b.pth"))
    ck_b = torch.load(O("b.pth"))
    tensors_equal("pth -> rat -> pth task", stripped(ck_a["task"]), ck_b["task"])
    if list(ck_b["task"])[:len(want)] != want:
        fail("rat_to_pth's state_dict order %s, want %s" % (list(ck_b["task"]), want))
    for k in ("step", "resume_kwargs"):
        if ck_a[k] != ck_b[k]:
            fail("pth -> rat -> pth %s: %r != %r" % (k, ck_b[k], ck_a[k]))
    sa, sb = ck_a["optimizer"], ck_b["optimizer"]
    if sorted(sa["state"]) != sorted(sb["state"]):
        fail("optimizer state indices differ")
    for i in sa["state"]:
        tensors_equal("optimizer state %d" % i, sa["state"][i], sb["state"].get(i, {}))
    ga, gb = sa["param_groups"][0], sb["param_groups"][0]
    for k in ga:
        if k not in ("lr", "foreach") and ga[k] != gb.get(k):
            fail("param_groups[0][%r]: %r != %r" % (k, gb.get(k), ga[k]))
    for k in ("last_epoch", "_step_count", "step_size", "gamma", "base_lrs"):
        if k in ck_a["lr_scheduler"] and ck_a["lr_scheduler"][k] != ck_b["lr_scheduler"].get(k):
            fail("lr_scheduler[%r]: %r != %r" % (k, ck_b["lr_scheduler"].get(k), ck_a["lr_scheduler"][k]))
    if not isinstance(ck_b["config"], easydict.EasyDict) or ck_b["config"].optim.optimizer._name_ != \
            exp["optim"]["optimizer"]["_name_"]:
        fail("rat_to_pth's config is not the run's EasyDict")
    # rat -> pth -> rat, model directory and run
    to_pth(O("conv"), O("c.pth"))
    to_rat(O("c.pth"), O("conv2"))
    tensors_equal("rat dir -> pth -> rat dir", st.load_file(O("conv", "model.safetensors")),
                  st.load_file(O("conv2", "model.safetensors")))
    if yaml.safe_load(open(O("conv", "config.yaml"))) != yaml.safe_load(open(O("conv2", "config.yaml"))):
        fail("rat dir -> pth -> rat dir: config.yaml differs")
    to_rat(O("b.pth"), O("conv3"))
    for f in ("model.safetensors", "optimizer.safetensors"):
        tensors_equal("rat run -> pth -> rat run " + f, st.load_file(O("conv", "run", "latest", f)),
                      st.load_file(O("conv3", "run", "latest", f)))
    if json.load(open(O("conv3", "run", "latest", "trainer_state.json"))) != ts:
        fail("rat run -> pth -> rat run: trainer_state.json differs")

    # 4. resume
    run([a.rat, "train", O("exp.yaml"), "--quiet", "--run-dir", O("conv", "run"), "trainer.load_checkpoint=true"])
    got = [json.loads(l) for l in open(O("conv", "run", "metrics.jsonl")) if '"loss"' in l]
    if [g["step"] for g in got] != list(range(FIRST + 1, STEPS + 1)):
        fail("rat resumed at steps %s, want %d..%d" % ([g["step"] for g in got], FIRST + 1, STEPS))
    for g, r in zip(got, ra[FIRST:]):
        e = {k: abs(g[k] - r[k]) / abs(r[k]) for k in ("lr", "loss", "grad_norm")}
        print("step %d: lr %.6e (rel %.1e) loss %.6f (rel %.1e) grad_norm rel %.1e" %
              (r["step"], r["lr"], e["lr"], r["loss"], e["loss"], e["grad_norm"]))
        if e["lr"] > 1e-12 or e["loss"] > 2e-4 or e["grad_norm"] > 2e-4:
            fail("resumed step %d: %s" % (r["step"], e))
    wc = st.load_file(O("conv", "run", "latest", "model.safetensors"), out_dtype=torch.float64)
    wr = st.load_file(O("ref_all_model", "model.safetensors"), out_dtype=torch.float64)
    num = sum(float(((wc[k] - wr[k]) ** 2).sum()) for k in wr)
    den = sum(float((wr[k] ** 2).sum()) for k in wr)
    print("final weights after resume: relative L2 %.3g" % math.sqrt(num / den))
    if math.sqrt(num / den) > 1e-4:
        fail("final weights after resume: relative L2 %.3g > 1e-4" % math.sqrt(num / den))

    # 5. bad inputs
    os.makedirs(O("bad"))
    raw = open(O("a.pth"), "rb").read()
    open(O("bad", "truncated.pth"), "wb").write(raw[:len(raw) // 2])
    check_bad("truncated", O("bad", "truncated.pth"), O("bad", "o1"), "not a readable PyTorch checkpoint")
    torch.save({"config": ez(mcfg), "step": 0}, O("bad", "notask.pth"))
    check_bad("no task", O("bad", "notask.pth"), O("bad", "o2"), "'task'")
    victim = want[1]
    t = dict(task)
    del t["_orig_mod." + victim]
    torch.save({"task": t, "config": ez(mcfg)}, O("bad", "missing.pth"))
    check_bad("missing tensor", O("bad", "missing.pth"), O("bad", "o3"), victim)
    t = dict(task)
    t["_orig_mod." + victim] = torch.zeros(3)
    torch.save({"task": t, "config": ez(mcfg)}, O("bad", "shape.pth"))
    check_bad("wrong shape", O("bad", "shape.pth"), O("bad", "o4"), victim)
    t = dict(task)
    t["_orig_mod.backbone.layers.0.seq_layer.extra.weight"] = torch.zeros(3)
    torch.save({"task": t, "config": ez(mcfg)}, O("bad", "unknown.pth"))
    check_bad("unknown tensor", O("bad", "unknown.pth"), O("bad", "o5"), "extra.weight")
    c = json.loads(json.dumps(mcfg))
    c["model"]["backbone"]["seq_cell"]["_name_"] = "mamba"
    torch.save({"task": task, "config": ez(c)}, O("bad", "option.pth"))
    check_bad("unknown option", O("bad", "option.pth"), O("bad", "o6"), "mamba")
    check_bad("existing output", O("golden.pth"), O("golden_rat"), "exists")

    if BAD:
        print("FAILED: %d checks" % len(BAD))
        return 1
    print("OK: authors' checkpoints convert both ways (%s, %s)" % (exp["optim"]["optimizer"]["_name_"],
                                                                  exp["optim"]["lr_scheduler"]["_name_"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
