"""`rat serve` end to end on a model trained here in seconds (its own
tokenizer, `rat tokenize` + `rat train`), on 127.0.0.1 at a free port:

- the real OpenAI client (npm `openai`, tests/serve/openai_client.mjs):
  completions, chat, streaming, logprobs, seeds, errors (needs `npm ci` in
  tests/serve, which scripts/install_deps.sh runs);
- curl: the raw SSE stream (`data: ` lines, `data: [DONE]` last) and the
  error objects of bad requests (malformed JSON, unknown model, bad values,
  prompt longer than --ctx, body over --max-body-bytes, unknown path, missing
  API key);
- equivalence: greedy completions equal `rat generate --greedy` for the same
  prompts, one at a time and 16 concurrent requests of different lengths
  (more than --parallel, so requests join and leave a running batch); with
  --batch-invariant, 8 concurrent requests' logprobs equal each alone;
- load: 64 concurrent clients x 4 requests, every one answered in full, and
  the server's RSS bounded;
- a client that disconnects mid-stream frees its slot (metrics: cancelled,
  slots_busy back to 0) and the server goes on serving;
- the queue limit answers 503; SIGTERM during a request exits 0 in bounded time.

usage: serve_check.py RAT WORKDIR
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

RAT, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pylib"))
import harness  # noqa: E402

check = harness.Checks()
failures = check.failures


def rat(*args):
    return harness.run(RAT, *args, cwd=WORK)


# --- a small trained model with a tokenizer ----------------------------------
shutil.rmtree(WORK, ignore_errors=True)
harness.write_docs(os.path.join(WORK, "text"),
                   line=lambda k: f"The pass key is {10000 + 37 * k}. Remember it. The grass is "
                   "green. The sky is blue.\n")
harness.tokenize(RAT, WORK)
MODEL = harness.train(RAT, WORK)
CTX = 96


class Server(harness.Server):
    """`rat serve` on 127.0.0.1 at a free port; /metrics with the API key."""

    def __init__(self, *args, ctx=CTX):
        super().__init__(RAT, MODEL, "--ctx", str(ctx), *args, cwd=WORK,
                         log_path=os.path.join(WORK, f"serve{int(time.time() * 1e6)}.log"),
                         env=dict(os.environ, OMP_NUM_THREADS="1"), start_timeout=60)

    def metrics(self):
        return super().metrics({"Authorization": "Bearer " + KEY})

    def rss_kib(self):
        return self.status_kib("VmRSS")


def is_error_object(j, status, param=None, code=None):
    if not isinstance(j, dict) or set(j) != {"error"}:
        return False
    e = j["error"]
    return (set(e) == {"message", "type", "param", "code"} and isinstance(e["message"], str)
            and e["message"] != "" and (param is None or e["param"] == param)
            and (code is None or e["code"] == code))


def generate_greedy(ids, n):
    p = rat("generate", "--model", MODEL, "--prompt-ids", " ".join(map(str, ids)), "--greedy",
            "--max-new-tokens", str(n), "--json")
    o = json.loads(p.stdout)["outputs"][0]
    return o["text"], len(o["ids"]) - (1 if o["finish"] == "eos" else 0)


# --- the main server: --parallel 4, an API key -------------------------------
KEY = "test-key"
srv = Server("--parallel", "4", "--api-key", KEY, "--max-body-bytes", "65536")
AUTH = {"Authorization": "Bearer " + KEY}
status, models = srv.request("GET", "/v1/models", headers=AUTH)
MODEL_ID = json.loads(models)["data"][0]["id"]
check(MODEL_ID == "run/latest", "model id from the directory: " + MODEL_ID)

# The OpenAI client.
node_modules = os.path.join(HERE, "node_modules", "openai")
if shutil.which("node") and os.path.isdir(node_modules):
    p = subprocess.run(["node", os.path.join(HERE, "openai_client.mjs"),
                        f"http://127.0.0.1:{srv.port}/v1", KEY, MODEL_ID],
                       capture_output=True, text=True, timeout=300)
    print(p.stdout.strip())
    check(p.returncode == 0, "openai client:\n" + p.stdout + p.stderr)
else:
    check(False, "node or tests/serve/node_modules is missing: run scripts/install_deps.sh "
                 "(it runs `npm ci` in tests/serve)")

# Raw SSE through curl.
body = json.dumps({"model": MODEL_ID, "prompt": "The sky", "max_tokens": 6, "temperature": 0,
                   "stream": True})
p = subprocess.run(["curl", "-sS", "-N", "--max-time", "60", "-H", "Authorization: Bearer " + KEY,
                    "-H", "Content-Type: application/json", "-d", body,
                    f"http://127.0.0.1:{srv.port}/v1/completions"], capture_output=True, text=True)
events = [e for e in p.stdout.split("\n\n") if e.strip()]
check(len(events) >= 3 and all(e.startswith("data: ") for e in events), "SSE events: " + p.stdout)
check(events and events[-1] == "data: [DONE]", "SSE ends with data: [DONE]")
chunks = [json.loads(e[6:]) for e in events[:-1]]
check(all(c["object"] == "text_completion" for c in chunks), "SSE chunk objects")
check(chunks and chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length"), "SSE finish")
whole = srv.post("/v1/completions", {"model": MODEL_ID, "prompt": "The sky", "max_tokens": 6,
                                     "temperature": 0}, headers=AUTH)[1]
check("".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"],
      "SSE text == non-streamed text")

# echo: the prompt's text before the new text, streamed or not, also with no new token.
for stream in (False, True):
    for n in (0, 4):
        st, text = srv.request("POST", "/v1/completions",
                               {"prompt": "The sky is", "max_tokens": n, "temperature": 0,
                                "echo": True, "stream": stream}, headers=AUTH)
        if stream:
            got = "".join(json.loads(e[6:])["choices"][0]["text"] for e in text.split("\n\n")
                          if e.startswith("data: {"))
        else:
            got = json.loads(text)["choices"][0]["text"]
        plain = srv.post("/v1/completions", {"prompt": "The sky is", "max_tokens": n,
                                             "temperature": 0}, headers=AUTH)[1]
        check(st == 200 and got == "The sky is" + plain["choices"][0]["text"],
              f"echo (stream {stream}, max_tokens {n}): {got!r}")

# Bad requests: an OpenAI error object each, and the server lives on.
def curl_error(data, path="/v1/completions", headers=("Authorization: Bearer " + KEY,)):
    args = ["curl", "-sS", "--max-time", "30", "-w", "\n%{http_code}", "-H",
            "Content-Type: application/json", "--data-binary", "@-"]
    for h in headers:
        args += ["-H", h]
    p = subprocess.run(args + [f"http://127.0.0.1:{srv.port}{path}"], input=data,
                       capture_output=True, text=True)
    text, code = p.stdout.rsplit("\n", 1)
    try:
        return int(code), json.loads(text)
    except json.JSONDecodeError:
        return int(code), text


long_ids = list(range(5, 5 + CTX))
bad = [
    ("malformed JSON", '{"prompt": "x", ', 400, None, "invalid_json"),
    ("not an object", '[1, 2]', 400, None, None),
    ("unknown model", json.dumps({"model": "gpt-9", "prompt": "x"}), 404, "model", "model_not_found"),
    ("no prompt", json.dumps({"max_tokens": 3}), 400, "prompt", None),
    ("bad max_tokens", json.dumps({"prompt": "x", "max_tokens": -1}), 400, "max_tokens", None),
    ("string max_tokens", json.dumps({"prompt": "x", "max_tokens": "5"}), 400, "max_tokens", None),
    ("bad top_p", json.dumps({"prompt": "x", "top_p": 1.5}), 400, "top_p", None),
    ("bad n", json.dumps({"prompt": "x", "n": 0}), 400, "n", None),
    ("bad logprobs", json.dumps({"prompt": "x", "logprobs": 99}), 400, "logprobs", None),
    ("bad stop", json.dumps({"prompt": "x", "stop": 3}), 400, "stop", None),
    ("id outside vocab", json.dumps({"prompt": [1, 300]}), 400, "prompt", None),
    ("prompt longer than ctx", json.dumps({"prompt": long_ids}), 400, "prompt",
     "context_length_exceeded"),
    ("empty messages", json.dumps({"messages": []}), 400, "messages", None),
    ("bad role", json.dumps({"messages": [{"role": "robot", "content": "x"}]}), 400,
     "messages[0].role", None),
    ("content part of a wrong type", json.dumps({"messages": [{"role": "user",
                                                               "content": [{"type": 5}]}]}),
     400, None, None),
]
for what, data, want_status, param, code in bad:
    path = "/v1/chat/completions" if "messages" in data else "/v1/completions"
    st, j = curl_error(data, path)
    check(st == want_status and is_error_object(j, st, param, code), f"{what}: {st} {j}")
st, j = curl_error(json.dumps({"prompt": "x" * 70000}))
check(st == 413 and is_error_object(j, st), f"body over the limit: {st} {j}")
st, j = curl_error("{}", "/v1/nothing")
check(st == 404 and is_error_object(j, st), f"unknown path: {st} {j}")
st, j = curl_error(json.dumps({"prompt": "x"}), headers=())
check(st == 401 and is_error_object(j, st, None, "invalid_api_key"), f"no API key: {st} {j}")
st, text = srv.request("GET", "/health")
check(st == 200 and json.loads(text)["status"] == "ok", "/health needs no key: " + text)
st, j = srv.post("/v1/completions", {"prompt": "The", "max_tokens": 2}, headers=AUTH)
check(st == 200, "the server still answers after the bad requests")

# Equivalence with `rat generate --greedy`, alone and 16 at once.
tok_prompts = [[1 + (7 * i + 3 * k) % 290 for k in range(3 + 4 * i)] for i in range(16)]
NEW = 12
want = [generate_greedy(ids, NEW) for ids in tok_prompts]


def complete_ids(ids, out, i):
    st, j = srv.post("/v1/completions", {"prompt": ids, "max_tokens": NEW, "temperature": 0},
                     headers=AUTH)
    out[i] = (st, j)


alone = {}
for i in range(4):
    complete_ids(tok_prompts[i], alone, i)
    st, j = alone[i]
    check(st == 200 and j["choices"][0]["text"] == want[i][0] and
          j["usage"]["completion_tokens"] == want[i][1] + (1 if j["choices"][0]["finish_reason"] == "stop" else 0),
          f"alone {i}: {j} vs {want[i]}")
together = {}
ts = [threading.Thread(target=complete_ids, args=(tok_prompts[i], together, i)) for i in range(16)]
for t in ts:
    t.start()
for t in ts:
    t.join()
for i in range(16):
    st, j = together[i]
    check(st == 200 and j["choices"][0]["text"] == want[i][0],
          f"16 concurrent, request {i}: {j} vs {want[i]}")

# Load: 64 clients x 4 requests.
rss0 = srv.rss_kib()
answers, lock = [], threading.Lock()


def client(c):
    for r in range(4):
        stream = (c + r) % 2 == 0
        body = {"prompt": [5 + c % 50, 6 + r, 7], "max_tokens": 8, "temperature": 0.8,
                "seed": c * 4 + r, "stream": stream}
        st, text = srv.request("POST", "/v1/completions", body, headers=AUTH, timeout=300)
        ok = st == 200
        if ok and stream:
            ok = text.rstrip().endswith("data: [DONE]")
        elif ok:
            ok = json.loads(text)["choices"][0]["finish_reason"] in ("stop", "length")
        with lock:
            answers.append(ok)


t0 = time.time()
ts = [threading.Thread(target=client, args=(c,)) for c in range(64)]
for t in ts:
    t.start()
for t in ts:
    t.join(600)
check(len(answers) == 256 and all(answers),
      f"load: {sum(answers)} of 256 answered in full ({len(answers)} returned)")
rss1 = srv.rss_kib()
print(f"load: 256 requests in {time.time() - t0:.1f} s, RSS {rss0} -> {rss1} KiB", flush=True)
check(rss1 < rss0 + 200 * 1024, f"RSS bounded under load: {rss0} -> {rss1} KiB")

m = srv.metrics()
for k in ("rat_requests_total{endpoint=\"completions\"}", "rat_queue_length", "rat_slots_busy",
          "rat_cache_bytes", "rat_prompt_tokens_total", "rat_completion_tokens_total"):
    check(k in m, "metric " + k)
check(m["rat_cache_bytes"] > 0, "cache bytes")


rc, took, log = srv.stop()
check(rc == 0 and took < 15, f"SIGTERM when idle: exit {rc} after {took:.1f} s\n{log}")

# A second server (--parallel 1, --max-queue 1, a context of a million tokens so that
# generations with ignore_eos run until stopped) for disconnects, the queue limit and SIGTERM
# with requests running.
srv = Server("--parallel", "1", "--max-queue", "1", "--shutdown-grace", "1", ctx=1000000)
# A client that disconnects mid-stream: its generation is cancelled, its slot freed.
m0 = srv.metrics()
s = socket.create_connection(("127.0.0.1", srv.port))
body = json.dumps({"prompt": [5, 6, 7], "max_tokens": 10 ** 6, "temperature": 1.0, "stream": True,
                   "seed": 3, "ignore_eos": True}).encode()
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: " +
          str(len(body)).encode() + b"\r\n\r\n" + body)
got = s.recv(4096)
check(b"200" in got.split(b"\r\n")[0], "stream started: " + repr(got[:80]))
s.close()
deadline = time.time() + 30
while time.time() < deadline:
    m = srv.metrics()
    if m["rat_slots_busy"] == 0 and m["rat_sequences_cancelled_total"] > m0["rat_sequences_cancelled_total"]:
        break
    time.sleep(0.05)
m = srv.metrics()
check(m["rat_slots_busy"] == 0 and
      m["rat_sequences_cancelled_total"] == m0["rat_sequences_cancelled_total"] + 1,
      f"disconnect cancels the generation: {m}")
check(m["rat_completion_tokens_total"] - m0["rat_completion_tokens_total"] < 100000,
      "a disconnected stream does not run to max_tokens")
st, j = srv.post("/v1/completions", {"prompt": "The", "max_tokens": 2})
check(st == 200, "the server serves after a disconnect")

# The queue limit: one request holds the slot, one waits, a third is refused.
results = {}


def slow(i):
    results[i] = srv.request("POST", "/v1/completions",
                             {"prompt": [5, 6], "max_tokens": 10 ** 6, "temperature": 1.0,
                              "stream": True, "ignore_eos": True}, timeout=60)


def wait_metric(name, value):
    deadline = time.time() + 30
    while time.time() < deadline and srv.metrics()[name] != value:
        time.sleep(0.02)


busy = [threading.Thread(target=slow, args=(i,)) for i in range(2)]
busy[0].start()
wait_metric("rat_slots_busy", 1)  # the first holds the slot,
busy[1].start()
wait_metric("rat_queue_length", 1)  # the second waits in the queue
st, j = srv.post("/v1/completions", {"prompt": "The", "max_tokens": 2})
check(st == 503 and is_error_object(j, st, None, "queue_full"), f"queue full: {st} {j}")
rc, took, log = srv.stop()
for t in busy:
    t.join(30)
check(rc == 0 and took < 15, f"SIGTERM with requests running: exit {rc} after {took:.1f} s\n{log}")
check(len(results) == 2 and all(r[0] == 200 and r[1].rstrip().endswith("data: [DONE]")
                                for r in results.values()),
      f"running streams end cleanly on SIGTERM: {list(results.values())[:1]}")

# --batch-invariant (with --cache-mib 0: no state from earlier requests): 8
# requests decoded together get the same tokens and logprobs, bit for bit, as
# each decoded alone. The oracle is the same server answering one at a time.
# The default server is measured the same way and only reported (its rows
# may differ in the last bits: oneDNN blocks a product by its row count).
def logprob_answers(server, together):
    out = {}

    def ask(i):
        out[i] = server.post("/v1/completions", {"prompt": tok_prompts[i], "max_tokens": NEW,
                                                 "temperature": 0, "logprobs": 2})

    if together:
        ts = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    else:
        for i in range(8):
            ask(i)
    return [(st, j["choices"][0]["text"], j["choices"][0]["logprobs"]) if st == 200 else (st, j)
            for st, j in (out[i] for i in range(8))]


for flags, name in ((("--batch-invariant", "--cache-mib", "0"), "--batch-invariant"),
                    (("--cache-mib", "0"), "default")):
    srv = Server("--parallel", "8", *flags)
    alone = logprob_answers(srv, False)
    together = logprob_answers(srv, True)
    srv.stop()
    same = sum(a == b for a, b in zip(alone, together))
    print(f"serve {name}: {same} of 8 requests decoded together equal alone, logprobs included")
    if name == "--batch-invariant":
        check(all(a[0] == 200 for a in alone) and alone == together,
              f"--batch-invariant: 8 together == alone: {alone[:1]} vs {together[:1]}")

if failures:
    sys.exit(f"{len(failures)} failures")
print("serve_check: all passed")
