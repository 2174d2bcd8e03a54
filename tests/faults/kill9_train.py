"""`rat train` killed with SIGKILL at random moments, resumed each time.

A tiny run (a checkpoint after every step) is trained once without
interruption (the reference), then again from scratch while being killed:
each attempt runs `rat train exp.yaml trainer.load_checkpoint=true
--overwrite` (resume when RUN/latest exists, else start over) and is killed
either at a uniformly random time or right after the k-th temporary
checkpoint entry appears (k random in 1..4, then a random 0-3 ms), so that
many kills land inside a checkpoint write. After every kill:

  (a) RUN/latest, if any, is a complete checkpoint (model.safetensors and
      optimizer.safetensors whole: header parses, data ends at the end of the
      file; trainer_state.json parses; its step is the directory's) and never
      goes back; the next attempt resumes at exactly that step;
  (b) temporary entries (*.tmp) are bounded (those of one interrupted save);
  (c) when a run completes: no temporary entry remains, the final
      model.safetensors and optimizer.safetensors equal the reference's byte
      for byte, and metrics.jsonl (every line valid JSON; records past a
      resume marker's step replaced by the resumed run's) holds the same
      loss, lr and grad_norm at every step and the same validation.

Runs are repeated (fresh run directories) until at least --kills kills.
Prints the seed and each kill; exits non-zero on any loss.

usage: kill9_train.py RAT WORKDIR [--kills N] [--steps S] [--seed X] [--dtype float32|bfloat16]
"""
import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("rat")
ap.add_argument("work")
ap.add_argument("--kills", type=int, default=10)
ap.add_argument("--steps", type=int, default=30)
ap.add_argument("--seed", type=int, default=None)
ap.add_argument("--dtype", default="float32")
args = ap.parse_args()
RAT, WORK = os.path.abspath(args.rat), os.path.abspath(args.work)
seed = args.seed if args.seed is not None else random.randrange(1 << 30)
print(f"kill9_train: seed {seed} (rerun with --seed {seed})", flush=True)
rng = random.Random(seed)
ENV = dict(os.environ, OMP_NUM_THREADS="1")
failures = []


def fail(what):
    failures.append(what)
    print("FAIL:", what, flush=True)


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
os.chdir(WORK)

# A learnable stream of uint16 tokens (vocab 64, document end 2), as in train_faults.sh.
subprocess.run(["/usr/bin/python3", "-c", """
import numpy as np
rng = np.random.default_rng(1)
pat = 3 + rng.integers(0, 61, 97)
i = np.arange(20000)
t = np.where(i % 50 == 49, 2, pat[i % 97]).astype("<u2")
t.tofile("train.bin")
t[:2000].tofile("val.bin")
"""], check=True)

# RAT, attention and FFN layers; dropout, so that resumed masks are checked too.
with open("exp.yaml", "w") as f:
    f.write(f"""data: {{seq_len: 24, vocab_size: 64, num_bytes: 2, ignore_input_index: 2, batch_size: 2,
       global_batch_size: 4,
       train: {{_name_: lm_ordered, tokenized_file_path: {WORK}/train.bin}},
       val: {{_name_: lm_ordered, tokenized_file_path: {WORK}/val.bin}}, val_samples: 8}}
model:
  backbone: {{_name_: sequence_interleave, num_layers: 2, d_model: 32, interleave_step: 2,
    seq_cell: {{_name_: attention, d_head: 8}},
    seq_cell1: {{_name_: rat, d_head: 8, ngroups: 2, chunk_size: 5}},
    hidden_cell: {{_name_: ffn, d_ffn: 64, act_fn: gelu, bias: false}}, dropout: 0.1}}
  embedding: {{vocab_size: 64, pe: {{_name_: rope_interrope, base: 10000}}}}
task: {{tie_embedding: true, ignore_index: -100}}
optim:
  optimizer: {{_name_: adamw, lr: 3.0e-3, weight_decay: 0.1, betas: [0.9, 0.95], eps: 1.0e-8}}
  lr_scheduler: {{_name_: cosine, warmup_iter: 0.2, eta_min: 1.0e-6}}
trainer: {{seed: 7, dtype: {args.dtype}, max_steps: {args.steps}, gradient_clipping: 1.0,
  log_interval: 1, eval_interval: 0, save_checkpoint: true, load_checkpoint: false,
  save_interval: 0.001, save_dir: {WORK}/unused}}
""")


def train_cmd(run):
    return [RAT, "train", "exp.yaml", "--run-dir", run, "trainer.load_checkpoint=true",
            "--overwrite", "--quiet"]


def tmp_entries(run):
    found = []
    for root, dirs, files in os.walk(run):
        for n in dirs + files:
            if n.endswith(".tmp") or ".tmp" in n:
                found.append(os.path.relpath(os.path.join(root, n), run))
    return sorted(found)


def safetensors_whole(path):
    """None if the file is a whole safetensors file, else what is wrong."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"),
                  default=0)
        return None if 8 + n + end == size else f"size {size}, header says {8 + n + end}"
    except Exception as e:  # noqa: BLE001 - any way of being unreadable is the finding
        return f"unreadable ({e})"


def latest_step(run):
    """The step RUN/latest holds (-1 when there is none); checks it is whole."""
    link = os.path.join(run, "latest")
    if not os.path.islink(link) and not os.path.exists(link):
        return -1
    if not os.path.isdir(link):
        fail(f"{link} -> {os.readlink(link)} is not a directory")
        return -1
    for name in ("model.safetensors", "optimizer.safetensors"):
        bad = safetensors_whole(os.path.join(link, name))
        if bad:
            fail(f"{link}/{name}: {bad}")
    try:
        with open(os.path.join(link, "trainer_state.json")) as f:
            step = json.load(f)["step"]
    except Exception as e:  # noqa: BLE001
        fail(f"{link}/trainer_state.json: {e}")
        return -1
    if not os.path.exists(os.path.join(link, "config.yaml")):
        fail(f"{link}/config.yaml missing")
    if os.readlink(link) != "checkpoints/step-%08d" % step:
        fail(f"{link} -> {os.readlink(link)} holds step {step}")
    return step


def metrics_view(run):
    """Per step, the last loss/lr/grad_norm record, and the validation records."""
    steps, vals = {}, {}
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for i, line in enumerate(f, 1):
            try:
                r = json.loads(line)
            except ValueError:
                fail(f"{run}/metrics.jsonl:{i}: not JSON: {line!r}")
                continue
            if "resumed_at" in r:
                at = r["resumed_at"]
                steps = {s: v for s, v in steps.items() if s <= at}
                vals = {s: v for s, v in vals.items() if s <= at}
            elif "loss" in r:
                steps[r["step"]] = (r["loss"], r["lr"], r["grad_norm"])
            elif "val_loss" in r:
                vals[r["step"]] = (r["val_loss"], r["val_tokens"])
    return steps, vals


def read(path):
    with open(path, "rb") as f:
        return f.read()


# The reference, uninterrupted.
t0 = time.time()
p = subprocess.run(train_cmd("ref"), env=ENV, capture_output=True, text=True, timeout=900)
ref_s = time.time() - t0
if p.returncode != 0:
    sys.exit(f"reference run failed:\n{p.stdout}\n{p.stderr}")
ref_model, ref_opt = read("ref/latest/model.safetensors"), read("ref/latest/optimizer.safetensors")
ref_metrics = metrics_view("ref")
if len(ref_metrics[0]) != args.steps:
    sys.exit(f"reference metrics hold {len(ref_metrics[0])} steps, want {args.steps}")
print(f"reference: {args.steps} steps in {ref_s:.1f} s", flush=True)


def attempt(run, mode, log):
    """Starts one attempt; kills it as `mode` says. Returns (exit code or None, killed)."""
    proc = subprocess.Popen(train_cmd(run), env=ENV, stdout=log, stderr=subprocess.STDOUT)
    if mode == "random":
        deadline = time.time() + rng.uniform(0, ref_s * 1.2)
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.002)
    else:  # the k-th appearance of a temporary checkpoint entry
        want, seen, had = rng.randint(1, 4), 0, False
        ck = os.path.join(run, "checkpoints")
        while proc.poll() is None and seen < want:
            try:
                has = any(n.endswith(".tmp") for n in os.listdir(ck))
            except FileNotFoundError:
                has = False
            seen += has and not had
            had = has
            if seen < want:
                time.sleep(0.0003)
        time.sleep(rng.uniform(0, 0.003))
    if proc.poll() is not None:
        return proc.returncode, False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return None, True


kills = in_write = rounds = 0
while kills < args.kills:
    rounds += 1
    run = f"run{rounds}"
    prev = -1
    for n in range(1, 10000):
        logname = f"{run}.attempt{n}.log"
        mode = rng.choice(["random", "write"])
        started = time.time()
        with open(logname, "w") as log:
            rc, killed = attempt(run, mode, log)
        out = read(logname).decode(errors="replace")
        # The attempt resumed from the previous latest, at its step (if it got that far).
        if prev >= 0 and ("resumed from" in out or not killed) and f"at step {prev}\n" not in out:
            fail(f"{logname}: did not resume at step {prev}: {out[:300]!r}")
        if not killed:
            if rc != 0:
                fail(f"{logname}: exit status {rc}: {out[-500:]!r}")
            break
        kills += 1
        tmps = tmp_entries(run) if os.path.isdir(run) else []
        # Inside a write: a temporary entry this attempt made (not one left by an earlier kill).
        in_write += any("checkpoints" in t and os.lstat(os.path.join(run, t)).st_mtime >= started
                        for t in tmps)
        step = latest_step(run)
        print(f"kill {kills} ({run}, {mode}): latest step {step}"
              + (f", left {', '.join(tmps)}" if tmps else ""), flush=True)
        if step < prev:
            fail(f"after kill {kills}: latest went back from step {prev} to {step}")
        if len(tmps) > 3:
            fail(f"after kill {kills}: {len(tmps)} temporary entries: {tmps}")
        prev = step
    else:
        fail(f"{run}: never completed")
    left = tmp_entries(run)
    if left:
        fail(f"{run} completed with temporary entries left: {left}")
    if latest_step(run) != args.steps:
        fail(f"{run}: latest is not step {args.steps}")
    if read(f"{run}/latest/model.safetensors") != ref_model:
        fail(f"{run}: final model.safetensors differs from the uninterrupted run's")
    if read(f"{run}/latest/optimizer.safetensors") != ref_opt:
        fail(f"{run}: final optimizer.safetensors differs from the uninterrupted run's")
    m = metrics_view(run)
    if m != ref_metrics:
        bad = [s for s in ref_metrics[0] if m[0].get(s) != ref_metrics[0][s]]
        fail(f"{run}: metrics differ from the uninterrupted run's (steps {bad[:5]}, "
             f"validation {m[1]} vs {ref_metrics[1]})")
    print(f"{run}: completed after {n - 1} kills; weights, optimizer state and metrics "
          f"equal the uninterrupted run's", flush=True)

print(f"kill9_train: {kills} kills ({in_write} inside a checkpoint write) over {rounds} runs, "
      f"seed {seed}: {len(failures)} failures", flush=True)
sys.exit(1 if failures else 0)
