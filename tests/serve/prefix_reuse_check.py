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
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

RAT, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
failures = []
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def rat(*args, cwd=WORK):
    p = subprocess.run([RAT, *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)
    if p.returncode != 0:
        sys.exit(f"rat {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(os.path.join(WORK, "text"))
for d in range(4):
    with open(os.path.join(WORK, "text", f"doc{d}.txt"), "w") as f:
        for j in range(25):
            f.write(f"The pass key is {10000 + 37 * (d * 25 + j)}. The grass is green.\n")
rat("tokenize", "--input", "text", "--out-dir", "data", "--vocab-size", "300",
    "--val-fraction", "0.2")

MIXERS = {
    "rat": ("sequence", "seq_cell: {_name_: rat, d_head: 8, ngroups: 1, chunk_size: 8}",
            "interrope"),
    "attention": ("sequence", "seq_cell: {_name_: attention, d_head: 8}", "rope"),
    "local_attention": ("sequence", "seq_cell: {_name_: local_attention, d_head: 8, "
                        "window_size: 6}", "rope"),
    "rnn": ("sequence", "seq_cell: {_name_: rnn}", "empty"),
    "hybrid": ("sequence_interleave",
               "interleave_step: 2, seq_cell: {_name_: local_attention, d_head: 8, "
               "window_size: 6}, seq_cell1: {_name_: rat, d_head: 8, ngroups: 2, chunk_size: 4}",
               "rope_interrope"),
    "hybrid_w64": ("sequence_interleave",
                   "interleave_step: 2, seq_cell: {_name_: local_attention, d_head: 8, "
                   "window_size: 64}, seq_cell1: {_name_: rat, d_head: 8, ngroups: 2, "
                   "chunk_size: 4}", "rope_interrope"),
}

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

for name, (backbone, cells, pe) in MIXERS.items():
    run = os.path.join(WORK, name)
    os.makedirs(run)
    step = "" if "interleave_step" in cells else "interleave_step: 1, "
    with open(os.path.join(run, "exp.yaml"), "w") as f:
        f.write(f"""data: {{seq_len: 64, vocab_size: 300, num_bytes: 2, ignore_input_index: 2,
  batch_size: 4, global_batch_size: 4,
  train: {{_name_: lm_ordered, tokenized_file_path: ../data/train.bin}},
  val: {{_name_: lm_ordered, tokenized_file_path: ../data/val.bin}}, val_samples: 2}}
model:
  backbone: {{_name_: {backbone}, num_layers: {3 if name == "hybrid" else 2}, d_model: 32, {step}{cells},
    hidden_cell: {{_name_: ffn, d_ffn: 64, act_fn: gelu, bias: false}}}}
  embedding: {{vocab_size: 300, pe: {{_name_: {pe}, base: 10000}}}}
task: {{tie_embedding: true, ignore_index: -100}}
optim:
  optimizer: {{_name_: adamw, lr: 1.0e-2, weight_decay: 0.1, betas: [0.9, 0.95], eps: 1.0e-8}}
  lr_scheduler: {{_name_: cosine, warmup_iter: 0.1, eta_min: 1.0e-4}}
trainer: {{seed: 1, dtype: float32, max_steps: 30, gradient_clipping: 1.0, log_interval: 10,
  eval_interval: 0, save_checkpoint: true, load_checkpoint: false, save_interval: 1.0,
  save_dir: run}}
""")
    rat("train", "exp.yaml", "--quiet", cwd=run)
    model = os.path.join(run, "run", "latest")

    log = open(os.path.join(run, "serve.log"), "w+")
    srv = subprocess.Popen([RAT, "serve", "--model", model, "--port", "0", "--parallel", "1",
                            "--ctx", "128", "--ubatch", "5"], stdout=log, stderr=log, env=ENV)
    port = None
    deadline = time.time() + 60
    while port is None and time.time() < deadline and srv.poll() is None:
        time.sleep(0.1)
        log.seek(0)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
        port = int(m.group(1)) if m else None
    if port is None:
        srv.kill()
        log.seek(0)
        sys.exit(f"{name}: rat serve did not start:\n{log.read()}")

    def post(body):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/v1/completions", body=json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        j = json.loads(r.read())
        c.close()
        return r.status, j

    def metric(name):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))

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
    srv.send_signal(signal.SIGTERM)
    check(srv.wait(30) == 0, f"{name}: exit status")
    print(f"{name}: reused {held} tokens; {len(fresh['choices'][0]['token_ids'])} ids equal",
          flush=True)


# Chunked prefill under a stream: request A streams (greedy, 400 tokens); once
# it runs, request B brings a 900-token prompt, admitted in 225 pieces of
# --ubatch 4, each between two decode steps. A must keep receiving tokens
# while B is prefilled (one per piece, give or take the stream's buffering;
# a prefill in one go would let through one or two), its longest silence
# must be a small part of B's admission, and its answer must not change.
model = os.path.join(WORK, "rat", "run", "latest")
log = open(os.path.join(WORK, "stream.log"), "w+")
srv = subprocess.Popen([RAT, "serve", "--model", model, "--port", "0", "--parallel", "2",
                        "--ctx", "1024", "--ubatch", "4"], stdout=log, stderr=log, env=ENV)
port = None
deadline = time.time() + 60
while port is None and time.time() < deadline and srv.poll() is None:
    time.sleep(0.1)
    log.seek(0)
    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
    port = int(m.group(1)) if m else None
if port is None:
    srv.kill()
    log.seek(0)
    sys.exit(f"stream: rat serve did not start:\n{log.read()}")
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
check(max(gaps) <= 0.5 * window, f"stream: A was silent {max(gaps):.3f} s of B's {window:.3f} s")
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
srv.send_signal(signal.SIGTERM)
check(srv.wait(30) == 0, "stream: exit status")

if failures:
    sys.exit(f"{len(failures)} failures")
print("prefix_reuse_check: all passed")
