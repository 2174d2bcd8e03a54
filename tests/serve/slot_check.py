"""`rat serve`'s slot files and --cache-mib, on small models trained here
(rat, attention, and a local attention + rat hybrid):

- save after a conversation, stop the server, start a new one, restore, and
  send the conversation on: the new server continues the restored state
  (rat_prompt_tokens_reused_total grows by the held tokens) and its greedy
  answer equals the first server's, which never stopped;
- refusals: no --slot-save-path (501), names with separators, "..", empty
  (400), a bad action or slot id (400), a missing file (404), a corrupt,
  truncated or foreign file (another model, another --ctx): 400, and the
  slot keeps working after each;
- --cache-mib: rat_cache_reuse_bytes equals the held state's size computed
  here from the cache layout (SPEC.md "Generation state"); a bound that fits
  one slot's state drops the least recently used one (it is prefilled
  again, the other is reused); --cache-mib 0 keeps nothing.

usage: slot_check.py RAT WORKDIR
"""
import os
import shutil
import sys

RAT, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import harness  # noqa: E402

check = harness.Checks()
failures = check.failures
ENV = dict(os.environ, OMP_NUM_THREADS="1")
D, P, LAYERS, CTX = 32, 8, 2, 128

shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(os.path.join(WORK, "slots"))
harness.write_docs(os.path.join(WORK, "text"), docs=4)
harness.tokenize(RAT, WORK)
MIXERS = {"rat": harness.RAT, "attention": harness.ATTENTION, "hybrid": harness.HYBRID}
models = {name: harness.train(RAT, os.path.join(WORK, name), mixer=mixer, data="../data",
                              layers=LAYERS, d_model=D, steps=20)
          for name, mixer in MIXERS.items()}


class Server(harness.Server):
    def __init__(self, model, *extra, parallel=1, ctx=CTX):
        super().__init__(RAT, model, "--parallel", str(parallel), "--ctx", str(ctx), *extra,
                         log_path=os.path.join(WORK, "serve.log"), env=ENV, start_timeout=60)

    def greedy(self, ids, n):
        st, j = self.post("/v1/completions", {"prompt": ids, "max_tokens": n, "temperature": 0,
                                              "ignore_eos": True, "return_token_ids": True})
        check(st == 200, f"completion: {st} {j}")
        return j["choices"][0]["token_ids"] if st == 200 else None

    def slot(self, action, filename, slot=0):
        return self.post(f"/slots/{slot}?action={action}", {"filename": filename})

    def stop(self):
        rc, _, _ = super().stop(30)
        check(rc == 0, "server exit status")


def error_ok(st, j, want, what):
    check(st == want and isinstance(j.get("error"), dict) and j["error"].get("message"),
          f"{what}: expected {want} with an error object, got {st} {j}")


PROMPT = [3 + (5 * k) % 290 for k in range(21)]
for name, model in models.items():
    # The first server: a conversation, saved, then continued without a restart.
    a = Server(model, "--slot-save-path", os.path.join(WORK, "slots"))
    G = a.greedy(PROMPT, 10)
    held = len(PROMPT) + len(G) - 1  # the last generated token was never fed
    st, j = a.slot("save", f"{name}.slot")
    check(st == 200 and j.get("n_saved") == held, f"{name}: save answered {st} {j}")
    follow = PROMPT + G + [7, 11, 13]
    r0 = a.metric("rat_prompt_tokens_reused_total")
    want = a.greedy(follow, 12)
    check(a.metric("rat_prompt_tokens_reused_total") - r0 == held,
          f"{name}: the first server did not continue its own slot")
    # Bad requests, each answered and the server still serving.
    for bad in ["../x", "a/b", "", "..", ".", "a\\b"]:
        st, j = a.slot("save", bad)
        error_ok(st, j, 400, f"{name}: filename {bad!r}")
    st, j = a.post("/slots/0?action=load", {"filename": "x"})
    error_ok(st, j, 400, f"{name}: action=load")
    st, j = a.post("/slots/0?action=save", "{not json")
    error_ok(st, j, 400, f"{name}: malformed body")
    st, j = a.slot("save", "x", slot=5)
    error_ok(st, j, 400, f"{name}: slot 5 of 1")
    st, j = a.slot("restore", "missing.slot")
    error_ok(st, j, 404, f"{name}: missing file")
    a.stop()

    # A new server restores the file and continues exactly.
    b = Server(model, "--slot-save-path", os.path.join(WORK, "slots"))
    st, j = b.slot("restore", f"{name}.slot")
    check(st == 200 and j.get("n_restored") == held, f"{name}: restore answered {st} {j}")
    r0 = b.metric("rat_prompt_tokens_reused_total")
    got = b.greedy(follow, 12)
    check(b.metric("rat_prompt_tokens_reused_total") - r0 == held,
          f"{name}: the restored slot was not continued")
    check(got == want, f"{name}: after restore {got} != without restart {want}")

    # Corrupt, truncated and foreign files: 400, nothing changed.
    raw = open(os.path.join(WORK, "slots", f"{name}.slot"), "rb").read()
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x40
    for bad, data in [("corrupt", bytes(flipped)), ("truncated", raw[:len(raw) - 9]),
                      ("empty", b""), ("text", b"hello, not a slot\n" * 10)]:
        with open(os.path.join(WORK, "slots", f"{bad}.slot"), "wb") as f:
            f.write(data)
        st, j = b.slot("restore", f"{bad}.slot")
        error_ok(st, j, 400, f"{name}: {bad} file")
    other = {"rat": "attention", "attention": "hybrid", "hybrid": "rat"}[name]
    if os.path.exists(os.path.join(WORK, "slots", f"{other}.slot")):
        st, j = b.slot("restore", f"{other}.slot")
        error_ok(st, j, 400, f"{name}: {other}'s slot file")
    check(b.greedy(follow, 12) == want, f"{name}: serving after refused restores")
    b.stop()
    c = Server(model, "--slot-save-path", os.path.join(WORK, "slots"), ctx=CTX + 16)
    st, j = c.slot("restore", f"{name}.slot")
    error_ok(st, j, 400, f"{name}: a file saved with another --ctx")
    c.stop()
    print(f"{name}: saved {held} tokens, restored in a new server, continued equal", flush=True)

# Without --slot-save-path the endpoint is off.
s = Server(models["rat"])
st, j = s.slot("save", "x")
error_ok(st, j, 501, "no --slot-save-path")
s.stop()


# --cache-mib on the rat model: 2 layers, H = D / P heads, chunk 8. A slot
# holding n tokens keeps, per layer, K and V rows of its n // 8 finished
# chunks (H x P floats each) and the running kt, vt (D floats each).
def rat_bytes(n):
    return LAYERS * (2 * (n // 8) * D * 4 + 2 * D * 4)


A = [5 + (7 * k) % 280 for k in range(30)]
B = [9 + (11 * k) % 280 for k in range(40)]
s = Server(models["rat"], parallel=2)
ga, gb = s.greedy(A, 4), s.greedy(B, 4)
ha, hb = len(A) + 3, len(B) + 3
check(s.metric("rat_cache_reuse_bytes") == rat_bytes(ha) + rat_bytes(hb),
      f"unbounded: reuse bytes {s.metric('rat_cache_reuse_bytes')}, expected "
      f"{rat_bytes(ha) + rat_bytes(hb)}")
s.stop()
limit = (rat_bytes(hb) + rat_bytes(ha) // 2) / 2**20  # room for B's state, not both
s = Server(models["rat"], "--cache-mib", repr(limit), parallel=2)
s.greedy(A, 4), s.greedy(B, 4)
check(s.metric("rat_cache_reuse_bytes") == rat_bytes(hb),
      f"bounded: reuse bytes {s.metric('rat_cache_reuse_bytes')}, expected {rat_bytes(hb)}")
check(s.metric("rat_cache_reuse_evictions_total") == 1, "bounded: one eviction")
r0 = s.metric("rat_prompt_tokens_reused_total")
s.greedy(B + gb + [4], 3)
check(s.metric("rat_prompt_tokens_reused_total") - r0 == hb, "bounded: B (recent) reused")
r0 = s.metric("rat_prompt_tokens_reused_total")
s.greedy(A + ga + [4], 3)
check(s.metric("rat_prompt_tokens_reused_total") == r0, "bounded: A (evicted) not reused")
s.stop()
s = Server(models["rat"], "--cache-mib", "0", parallel=2)
s.greedy(A, 4)
r0 = s.metric("rat_prompt_tokens_reused_total")
s.greedy(A + [4], 3)
check(s.metric("rat_cache_reuse_bytes") == 0 and
      s.metric("rat_prompt_tokens_reused_total") == r0, "--cache-mib 0 keeps nothing")
s.stop()

if failures:
    sys.exit(f"{len(failures)} failures")
print("slot_check: all passed")
