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
import os
import random
import shutil
import signal
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


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import harness  # noqa: E402

shutil.rmtree(WORK, ignore_errors=True)
SLOTS = os.path.join(WORK, "slots")
os.makedirs(SLOTS)
harness.write_docs(os.path.join(WORK, "text"), docs=4)
harness.tokenize(RAT, WORK)
# A RAT + attention hybrid with a long context, so a slot file is a few MB.
MODEL = harness.train(
    RAT, WORK, steps=5, d_model=64, d_ffn=128,
    mixer=("sequence_interleave", "interleave_step: 2, seq_cell: {_name_: attention, "
           "d_head: 16}, seq_cell1: {_name_: rat, d_head: 16, ngroups: 2, chunk_size: 8}",
           "rope_interrope"))


class Server(harness.Server):
    def __init__(self):
        super().__init__(RAT, MODEL, "--ctx", "4096", "--parallel", "1", "--slot-save-path",
                         SLOTS, log_path=os.path.join(WORK, "serve.log"), env=ENV)

    def converse(self, prompt):
        st, j = self.post("/v1/completions", {"prompt": prompt, "max_tokens": 8,
                                              "temperature": 0, "ignore_eos": True})
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
