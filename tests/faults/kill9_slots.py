"""`rat serve`'s slot files under SIGKILL: a server killed at a random moment
of `POST /slots/0?action=save` (0 to twice a save's time after the request, so that
kills land before, inside and after the file write) leaves the slot file
either as it was (the old conversation's state) or as the new one, never
anything else; at most one temporary file is left, and the next save
replaces it; a new server restores whatever is there.

The old and new files' bytes come from uninterrupted saves of the same two
conversations (greedy, so a conversation's state is the same every time).

usage: kill9_slots.py RAT WORKDIR [--kills N] [--seed X]
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("rat")
ap.add_argument("work")
ap.add_argument("--kills", type=int, default=8)
ap.add_argument("--seed", type=int, default=None)
args = ap.parse_args()
RAT, WORK = os.path.abspath(args.rat), os.path.abspath(args.work)
seed = args.seed if args.seed is not None else random.randrange(1 << 30)
print(f"kill9_slots: seed {seed} (rerun with --seed {seed})", flush=True)
rng = random.Random(seed)
ENV = dict(os.environ, OMP_NUM_THREADS="1")
failures = []


def fail(what):
    failures.append(what)
    print("FAIL:", what, flush=True)


def rat(*a):
    p = subprocess.run([RAT, *a], capture_output=True, text=True, env=ENV, cwd=WORK, timeout=600)
    if p.returncode != 0:
        sys.exit(f"rat {' '.join(a)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(os.path.join(WORK, "text"))
SLOTS = os.path.join(WORK, "slots")
os.makedirs(SLOTS)
for d in range(4):
    with open(os.path.join(WORK, "text", f"doc{d}.txt"), "w") as f:
        for j in range(25):
            f.write(f"The pass key is {10000 + 37 * (d * 25 + j)}. The grass is green.\n")
rat("tokenize", "--input", "text", "--out-dir", "data", "--vocab-size", "300",
    "--val-fraction", "0.2")
# A RAT + attention hybrid with a long context, so a slot file is a few MB.
with open(os.path.join(WORK, "exp.yaml"), "w") as f:
    f.write("""data: {seq_len: 64, vocab_size: 300, num_bytes: 2, ignore_input_index: 2,
  batch_size: 4, global_batch_size: 4,
  train: {_name_: lm_ordered, tokenized_file_path: data/train.bin},
  val: {_name_: lm_ordered, tokenized_file_path: data/val.bin}, val_samples: 2}
model:
  backbone: {_name_: sequence_interleave, num_layers: 2, d_model: 64, interleave_step: 2,
    seq_cell: {_name_: attention, d_head: 16}, seq_cell1: {_name_: rat, d_head: 16, ngroups: 2,
    chunk_size: 8}, hidden_cell: {_name_: ffn, d_ffn: 128, act_fn: gelu, bias: false}}
  embedding: {vocab_size: 300, pe: {_name_: rope_interrope, base: 10000}}
task: {tie_embedding: true, ignore_index: -100}
optim:
  optimizer: {_name_: adamw, lr: 1.0e-2, weight_decay: 0.1, betas: [0.9, 0.95], eps: 1.0e-8}
  lr_scheduler: {_name_: cosine, warmup_iter: 0.1, eta_min: 1.0e-4}
trainer: {seed: 1, dtype: float32, max_steps: 5, gradient_clipping: 1.0, log_interval: 10,
  eval_interval: 0, save_checkpoint: true, load_checkpoint: false, save_interval: 1.0,
  save_dir: run}
""")
rat("train", "exp.yaml", "--quiet")
MODEL = os.path.join(WORK, "run", "latest")


class Server:
    def __init__(self):
        self.log = open(os.path.join(WORK, "serve.log"), "w+")
        self.p = subprocess.Popen([RAT, "serve", "--model", MODEL, "--port", "0", "--ctx", "4096", "--parallel", "1",
                                   "--slot-save-path", SLOTS],
                                  stdout=self.log, stderr=self.log, env=ENV)
        self.port = None
        deadline = time.time() + 120
        while self.port is None and time.time() < deadline and self.p.poll() is None:
            time.sleep(0.05)
            self.log.seek(0)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log.read())
            self.port = int(m.group(1)) if m else None
        if self.port is None:
            self.p.kill()
            self.log.seek(0)
            sys.exit(f"rat serve did not start:\n{self.log.read()}")

    def post(self, path, body):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        j = json.loads(r.read())
        c.close()
        return r.status, j

    def converse(self, prompt):
        st, j = self.post("/v1/completions", {"prompt": prompt, "max_tokens": 8, "temperature": 0,
                                              "ignore_eos": True})
        if st != 200:
            sys.exit(f"completion failed: {st} {j}")

    def save(self, name):
        return self.post("/slots/0?action=save", {"filename": name})


OLD = [3 + (5 * k) % 290 for k in range(300)]
NEW = [3 + (7 * k) % 290 for k in range(900)]


def read(path):
    with open(path, "rb") as f:
        return f.read()


# The two reference files, saved without interruption.
s = Server()
s.converse(OLD)
s.save("old.ref")
s.converse(NEW)
s.save("new.ref")
t0 = time.time()
st, j = s.save("timing.ref")
save_s = time.time() - t0
s.p.send_signal(signal.SIGTERM)
s.p.wait(30)
old, new = read(os.path.join(SLOTS, "old.ref")), read(os.path.join(SLOTS, "new.ref"))
if old == new:
    sys.exit("the two conversations saved equal files")
print(f"slot files: old {len(old)} bytes, new {len(new)} bytes; a save answers in "
      f"{save_s * 1e3:.1f} ms", flush=True)

target = os.path.join(SLOTS, "s.slot")
kills = inside = 0
outcomes = {"old": 0, "new": 0}
while kills < args.kills:
    shutil.copyfile(os.path.join(SLOTS, "old.ref"), target)
    s = Server()
    s.converse(NEW)
    delay = rng.uniform(0, 2 * save_s + 0.002)

    def send():
        try:
            s.save("s.slot")
        except Exception:  # noqa: BLE001 - the server dies under it
            pass

    th = threading.Thread(target=send, daemon=True)
    th.start()
    time.sleep(delay)
    s.p.send_signal(signal.SIGKILL)
    s.p.wait()
    th.join(10)
    kills += 1
    got = read(target) if os.path.exists(target) else None
    tmps = [n for n in os.listdir(SLOTS) if ".tmp" in n]
    inside += bool(tmps)
    state = "old" if got == old else "new" if got == new else "absent" if got is None else "other"
    print(f"kill {kills}: {delay * 1e3:.2f} ms after the request: file is the {state} one"
          + (f", left {tmps}" if tmps else ""), flush=True)
    if state not in ("old", "new"):
        fail(f"kill {kills}: slot file is {state} ({0 if got is None else len(got)} bytes)")
    else:
        outcomes[state] += 1
    if len(tmps) > 1:
        fail(f"kill {kills}: temporary files pile up: {tmps}")

# A new server restores the file and a completed save leaves no temporary.
s = Server()
st, j = s.post("/slots/0?action=restore", {"filename": "s.slot"})
if st != 200:
    fail(f"restore after the kills: {st} {j}")
s.converse(NEW)
st, j = s.save("s.slot")
if st != 200 or [n for n in os.listdir(SLOTS) if ".tmp" in n]:
    fail(f"a completed save left temporaries: {os.listdir(SLOTS)}")
s.p.send_signal(signal.SIGTERM)
s.p.wait(30)
print(f"kill9_slots: {kills} kills ({inside} inside the write; file old {outcomes['old']}, "
      f"new {outcomes['new']} times), seed {seed}: {len(failures)} failures", flush=True)
sys.exit(1 if failures else 0)
