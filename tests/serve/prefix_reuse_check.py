"""`rat serve`'s prefix reuse and chunked prefill for every mixer and two
hybrids, on small models trained here (rat, attention, local attention, rnn,
local + rat interleaved with a window that wraps and one that does not):

- a conversation sent again with more tokens continues everything its slot
  holds; the same prompt sent again, a prompt that leaves the held tokens
  mid-slot and mid-chunk, and one that leaves them one token before their end
  reuse the longest prefix each state allows (attention: any token; RAT: a
  chunk boundary or a prompt end's snapshot; RNN: a snapshot; a wrapped
  local-attention ring: one token back; the hybrids: the minimum), counted by
  rat_prompt_tokens_reused_total; every greedy answer equals
  `rat generate --greedy` on the same ids (and a fresh request's);
- prompts go in pieces of --ubatch 5 tokens (rat_prefill_pieces_total);
- a streaming request keeps receiving tokens while a long prompt is admitted
  in pieces (--ubatch 8), and its greedy answer is unchanged.

usage: prefix_reuse_check.py RAT WORKDIR
"""
import http.client
import json
import os
import shutil
import sys
import threading
import time

RAT, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import harness  # noqa: E402

check = harness.Checks()
failures = check.failures
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def rat(*args, cwd=WORK):
    return harness.run(RAT, *args, cwd=cwd)


shutil.rmtree(WORK, ignore_errors=True)
harness.write_docs(os.path.join(WORK, "text"), docs=4)
harness.tokenize(RAT, WORK)

W64 = ("sequence_interleave", "interleave_step: 2, seq_cell: {_name_: local_attention, d_head: 8, "
       "window_size: 64}, seq_cell1: {_name_: rat, d_head: 8, ngroups: 2, chunk_size: 4}",
       "rope_interrope")
MIXERS = {"rat": harness.RAT, "attention": harness.ATTENTION,
          "local_attention": harness.LOCAL_ATTENTION, "rnn": harness.RNN,
          "hybrid": harness.HYBRID, "hybrid_w64": W64}

# Tokens each case reuses, worked out by hand from the rules (README "Serve").
# The slot holds the last request's prompt and all its generated tokens but the
# last; snapshots of the running states sit at every prompt's end and one before.
#   regenerate: prompt2 (34 tokens) again, the slot holding 45: common 33, a
#     snapshot at 33 (prompt2's end - 1); a wrapped window-6 ring cannot go back.
#   diverge: prompt2[:27] + 3 new tokens: RAT L8 / L4 at the chunk boundary 24,
#     attention at 27; the RNN has no snapshot below 27 (the slot's earlier
#     ones went with the unrelated request that took it before prompt2).
#   back_one: the 41 held tokens but the last, then others: 40 is a chunk
#     boundary of L8 and L4 and within every ring; the RNN's latest snapshot
#     below it is 30 (the diverging prompt's end).
EXPECT = {
    "rat": {"regenerate": 33, "diverge": 24, "back_one": 40},
    "attention": {"regenerate": 33, "diverge": 27, "back_one": 40},
    "local_attention": {"regenerate": 0, "diverge": 0, "back_one": 40},
    "rnn": {"regenerate": 33, "diverge": 0, "back_one": 30},
    "hybrid": {"regenerate": 0, "diverge": 0, "back_one": 40},
    "hybrid_w64": {"regenerate": 33, "diverge": 24, "back_one": 40},
}

for name, mixer in MIXERS.items():
    run = os.path.join(WORK, name)
    model = harness.train(RAT, run, mixer=mixer, data="../data",
                          layers=3 if name == "hybrid" else 2, steps=30)
    srv = harness.Server(RAT, model, "--parallel", "1", "--ctx", "128", "--ubatch", "5",
                         log_path=os.path.join(run, "serve.log"), env=ENV, start_timeout=60)
    metric = srv.metric

    def post(body):
        return srv.post("/v1/completions", body)

    def reused():
        return metric("rat_prompt_tokens_reused_total")

    def generate(ids, n):
        return json.loads(rat("generate", "--model", model, "--prompt-ids",
                              " ".join(map(str, ids)), "--greedy", "--ignore-eos",
                              "--max-new-tokens", str(n), "--json").stdout)["outputs"][0]["ids"]

    def greedy(ids, n):
        return post({"prompt": ids, "max_tokens": n, "temperature": 0, "ignore_eos": True,
                     "return_token_ids": True})

    P = [3 + (5 * k) % 290 for k in range(21)]
    st, j1 = greedy(P, 10)
    G = j1["choices"][0]["token_ids"]
    check(st == 200 and len(G) == 10, f"{name}: first answer {j1}")
    prompt2 = P + G + [7, 11, 13]
    r0 = reused()
    st, reuse = greedy(prompt2, 12)
    held = len(P) + len(G) - 1  # the last generated token was never fed
    check(st == 200 and reused() - r0 == held,
          f"{name}: the continuation reused {reused() - r0} tokens, expected {held}")
    greedy([9, 8, 7, 6], 3)  # takes the only slot: the next request starts from scratch
    r1 = reused()
    pieces = metric("rat_prefill_pieces_total")
    st, fresh = greedy(prompt2, 12)
    check(st == 200 and reused() == r1, f"{name}: the fresh request reused nothing")
    # 34 tokens in pieces of 5: 7; with running states the last piece ends one
    # token early (the snapshot there), 8.
    want = 7 if name in ("attention", "local_attention") else 8
    check(metric("rat_prefill_pieces_total") - pieces == want,
          f"{name}: 34 prompt tokens in pieces of 5: {want} pieces, got "
          f"{metric('rat_prefill_pieces_total') - pieces}")
    check(reuse["choices"][0]["token_ids"] == fresh["choices"][0]["token_ids"],
          f"{name}: reused {reuse['choices'][0]['token_ids']} != fresh "
          f"{fresh['choices'][0]['token_ids']}")
    check(generate(prompt2, 12) == fresh["choices"][0]["token_ids"],
          f"{name}: fresh {fresh['choices'][0]['token_ids']} != rat generate")

    # Partial reuse. The slot holds prompt2 + 11 of its 12 answer tokens (45).
    holds = prompt2 + fresh["choices"][0]["token_ids"][:-1]
    diverge = prompt2[:27] + [x for x in (5, 6, 7, 8) if x != prompt2[27]][:3]
    cases = [("regenerate", prompt2), ("diverge", diverge), ("back_one", None)]
    for case, ids in cases:
        if ids is None:  # all but the last held token, then others
            ids = holds[:40] + [(holds[40] + 1) % 300, 9, 10]
        r0 = reused()
        st, got = greedy(ids, 12)
        out = got["choices"][0]["token_ids"] if st == 200 else None
        check(st == 200 and reused() - r0 == EXPECT[name][case],
              f"{name}: {case} reused {reused() - r0} tokens, expected {EXPECT[name][case]}")
        check(out == generate(ids, 12), f"{name}: {case}: {out} != rat generate")
        if case == "regenerate":
            check(out == fresh["choices"][0]["token_ids"], f"{name}: regenerate != fresh")
        holds = ids + out[:-1]
    check(srv.stop(30)[0] == 0, f"{name}: exit status")
    print(f"{name}: reused {held} tokens; {len(fresh['choices'][0]['token_ids'])} ids equal",
          flush=True)


# Chunked prefill under a stream: request A streams (greedy, 400 tokens); once
# it runs, request B brings a 900-token prompt, admitted in 225 pieces of
# --ubatch 4, each between two decode steps. A must keep receiving tokens
# while B is prefilled (one per piece, give or take the stream's buffering;
# a prefill in one go would let through one or two), its longest silence
# must be a small part of B's admission, and its answer must not change.
model = os.path.join(WORK, "rat", "run", "latest")
srv = harness.Server(RAT, model, "--parallel", "2", "--ctx", "1024", "--ubatch", "4",
                     log_path=os.path.join(WORK, "stream.log"), env=ENV, start_timeout=60)
port = srv.port
A = [3, 14, 15, 92, 65, 35]
B = [3 + (7 * k) % 290 for k in range(900)]
stamps, ids_a = [], []
b_times = {}


def run_b():
    b_times["sent"] = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request("POST", "/v1/completions",
              body=json.dumps({"prompt": B, "max_tokens": 1, "temperature": 0}),
              headers={"Content-Type": "application/json"})
    b_times["status"] = c.getresponse().status
    b_times["done"] = time.monotonic()
    c.close()


c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
c.request("POST", "/v1/completions",
          body=json.dumps({"prompt": A, "max_tokens": 400, "temperature": 0, "ignore_eos": True,
                           "stream": True, "logprobs": 0}),
          headers={"Content-Type": "application/json"})
resp = c.getresponse()
tb = None
while True:
    line = resp.fp.readline()
    if not line:
        break
    line = line.decode().strip()
    if not line.startswith("data: ") or line == "data: [DONE]":
        continue
    ev = json.loads(line[6:])
    lp = ev["choices"][0].get("logprobs") or {}
    for t in lp.get("tokens", []):  # one per token (a chunk may carry several)
        ids_a.append(t)
        stamps.append(time.monotonic())
    if tb is None and len(ids_a) >= 5:
        tb = threading.Thread(target=run_b)
        tb.start()
c.close()
tb.join()
check(b_times.get("status") == 200, f"stream: B answered {b_times.get('status')}")
during = [t for t in stamps if b_times["sent"] <= t <= b_times["done"]]
window = b_times["done"] - b_times["sent"]
gaps = [b - a for a, b in zip([b_times["sent"]] + during, during + [b_times["done"]])]
print(f"stream: {len(during)} of A's tokens arrived during B's {window * 1e3:.1f} ms admission "
      f"(225 pieces); longest gap {max(gaps) * 1e3:.1f} ms", flush=True)
check(len(during) >= 75, f"stream: only {len(during)} tokens of A arrived while B was prefilled")
# The silence bound is half the admission, but at least 0.25 s: on a loaded
# host the server can lose the CPU for ~0.1 s at any moment (seen in CI:
# 89 ms of a 105 ms admission), while a prefill in one go is what the token
# count above catches.
check(max(gaps) <= max(0.5 * window, 0.25),
      f"stream: A was silent {max(gaps):.3f} s of B's {window:.3f} s")
check(len(ids_a) == 400, f"stream: A got {len(ids_a)} tokens")
# A alone (ids and token texts) against rat generate and against the stream.
c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
c.request("POST", "/v1/completions",
          body=json.dumps({"prompt": A, "max_tokens": 400, "temperature": 0, "ignore_eos": True,
                           "logprobs": 0, "return_token_ids": True}),
          headers={"Content-Type": "application/json"})
alone = json.loads(c.getresponse().read())["choices"][0]
c.close()
g = json.loads(rat("generate", "--model", model, "--prompt-ids", " ".join(map(str, A)),
                   "--greedy", "--ignore-eos", "--max-new-tokens", "400", "--json").stdout)
check(g["outputs"][0]["ids"] == alone["token_ids"], "stream: A alone != rat generate")
check(alone["logprobs"]["tokens"] == ids_a, "stream: A's answer changed while B was admitted")
check(srv.stop(30)[0] == 0, "stream: exit status")

if failures:
    sys.exit(f"{len(failures)} failures")
print("prefix_reuse_check: all passed")
