"""`rat serve` under load: a RAT model and an attention model of the same
shape (random weights: `rat train` with one step on random tokens; speed does
not depend on the values), each served on 127.0.0.1 at a free port and hit by
C concurrent streaming clients (C in --clients), each sending one prompt of
--prompt distinct random token ids and asking for --new tokens (ignore_eos).

Per (model, C): throughput (generated tokens / wall time of the round), time
to first token and inter-token latency p50/p99, the server's peak RSS
(VmHWM: the peak up to that round) and cache bytes (/metrics). Per model:
the time to first token of a request whose prompt extends a finished one's
by 16 tokens (the free slot's state reused) against the first's; and the
server's decode rate at C (C / the median over clients of a stream's mean
gap between tokens) against `rat bench model --mode decode --batch C` at the
same position for the same config. Both models are served with --parallel =
the most clients, so their cache sizes differ (printed), not a common cap.

usage: serve_load.py RAT [--quick] [--out FILE.json] [--work DIR] [...]
Prints a table; writes JSON (--out). The machine line is `rat bench model`'s.
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("rat")
ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the script works")
ap.add_argument("--out", default="serve_load.json")
ap.add_argument("--work", default="serve_load_work")
ap.add_argument("--d-model", type=int, default=1024)
ap.add_argument("--layers", type=int, default=8)
ap.add_argument("--d-head", type=int, default=64)
ap.add_argument("--vocab", type=int, default=4096)
ap.add_argument("--prompt", type=int, default=2048)
ap.add_argument("--new", type=int, default=128)
ap.add_argument("--clients", default="1,8,32,128")
ap.add_argument("--threads", type=int, default=0, help="server OpenMP threads (0: default)")
ap.add_argument("--cache-dtype", default="f32")
a = ap.parse_args()
if a.quick:
    a.d_model, a.layers, a.d_head, a.vocab, a.prompt, a.new, a.clients = (
        64, 2, 16, 512, 96, 8, "1,4")
CLIENTS = [int(c) for c in a.clients.split(",")]
RAT, WORK = os.path.abspath(a.rat), os.path.abspath(a.work)
CTX = a.prompt + 16 + a.new + 8  # the prefix test's longer prompt fits too
SEQ = ((CTX + 63) // 64) * 64
ENV = dict(os.environ)


def rat(*args, cwd=WORK):
    p = subprocess.run([RAT, *args], capture_output=True, text=True, cwd=cwd, env=ENV)
    if p.returncode != 0:
        sys.exit(f"rat {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


# --- models: one training step on random tokens -------------------------------
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
rng = random.Random(1)
for split, n in (("train", SEQ * 4 + 1), ("val", SEQ * 2 + 1)):
    with open(os.path.join(WORK, f"{split}.bin"), "wb") as f:
        f.write(struct.pack(f"<{n}H", *(rng.randrange(3, a.vocab) for _ in range(n))))

MIXERS = {
    "rat": (f"{{_name_: rat, d_head: {a.d_head}, ngroups: 2, chunk_size: 16}}", "interrope"),
    "attention": (f"{{_name_: attention, d_head: {a.d_head}}}", "rope"),
}
models = {}
for name, (cell, pe) in MIXERS.items():
    run = os.path.join(WORK, name)
    os.makedirs(run)
    with open(os.path.join(run, "exp.yaml"), "w") as f:
        f.write(f"""data: {{seq_len: {SEQ}, vocab_size: {a.vocab}, num_bytes: 2, ignore_input_index: 2,
  batch_size: 1, global_batch_size: 1,
  train: {{_name_: lm_ordered, tokenized_file_path: ../train.bin}},
  val: {{_name_: lm_ordered, tokenized_file_path: ../val.bin}}, val_samples: 1}}
model:
  backbone: {{_name_: sequence, num_layers: {a.layers}, d_model: {a.d_model}, interleave_step: 1,
    seq_cell: {cell}, hidden_cell: {{_name_: ffn, d_ffn: {4 * a.d_model}, act_fn: gelu, bias: false}}}}
  embedding: {{vocab_size: {a.vocab}, pe: {{_name_: {pe}, base: 10000}}}}
task: {{tie_embedding: true, ignore_index: -100}}
optim:
  optimizer: {{_name_: adamw, lr: 1.0e-3, weight_decay: 0.1, betas: [0.9, 0.95], eps: 1.0e-8}}
  lr_scheduler: {{_name_: cosine, warmup_iter: 0.0, eta_min: 1.0e-4}}
trainer: {{seed: 1, dtype: float32, max_steps: 1, gradient_clipping: 1.0, log_interval: 1,
  eval_interval: 0, save_checkpoint: true, load_checkpoint: false, save_interval: 1.0,
  save_dir: run}}
""")
    rat("train", "exp.yaml", "--quiet", cwd=run)
    models[name] = os.path.join(run, "run", "latest")


# --- one server, C clients ----------------------------------------------------
class Server:
    def __init__(self, model, parallel):
        self.log = open(os.path.join(WORK, f"serve-{os.path.basename(os.path.dirname(os.path.dirname(model)))}-{parallel}.log"), "w+")
        args = [RAT, "serve", "--model", model, "--port", "0", "--parallel", str(parallel),
                "--ctx", str(CTX), "--cache-dtype", a.cache_dtype, "--max-queue", "1024"]
        if a.threads:
            args += ["--threads", str(a.threads)]
        self.p = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=ENV)
        self.port = None
        deadline = time.time() + 600
        while self.port is None and time.time() < deadline and self.p.poll() is None:
            time.sleep(0.1)
            self.log.seek(0)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log.read())
            self.port = int(m.group(1)) if m else None
        if self.port is None:
            self.p.kill()
            self.log.seek(0)
            sys.exit(f"rat serve did not start:\n{self.log.read()}")

    def stream(self, prompt, n):
        """Sends one streaming completion; returns (t_first - t0, [token times])."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3600)
        # logprobs 0: each chunk lists its tokens (a chunk carries every token
        # the scheduler made since the last one, so a slow reader sees several).
        body = json.dumps({"prompt": prompt, "max_tokens": n, "temperature": 0,
                           "ignore_eos": True, "stream": True, "logprobs": 0})
        t0 = time.perf_counter()
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {r.read()[:300]}")
        times = []
        for line in r:
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            if line == b"data: [DONE]":
                break
            ev = json.loads(line[6:])
            if "error" in ev:
                raise RuntimeError(f"stream error: {ev}")
            lp = ev["choices"][0].get("logprobs") or {}
            times += [time.perf_counter() - t0] * len(lp.get("token_logprobs") or [])
        c.close()
        return times

    def metric(self, name):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
        return float(m.group(1)) if m else float("nan")

    def peak_rss_mib(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
        return int(m.group(1)) / 1024

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.p.kill()


def prompt_ids(seed):
    r = random.Random(seed)
    return [r.randrange(3, a.vocab) for _ in range(a.prompt)]


rows, prefix, decode_cmp = [], {}, []
machine = None
for name, model in models.items():
    srv = Server(model, max(CLIENTS))
    try:
        # A second request sharing the first's whole prompt (+16 tokens): its
        # slot's state is reused, only the 16 tokens are fed.
        # An unrelated prompt of the same length first: the first prefill of a
        # new length pays for oneDNN plans, which is not what is compared here.
        srv.stream(prompt_ids(97), 1)
        p = prompt_ids(99)
        first = srv.stream(p, 1)[0]
        second = srv.stream(p + prompt_ids(98)[:16], 1)[0]
        prefix[name] = {"first_ttft_s": first, "second_ttft_s": second,
                        "speedup": first / second if second > 0 else float("nan")}
        for C in CLIENTS:
            out = [None] * C

            def client(i, C=C, out=out):
                out[i] = srv.stream(prompt_ids(1000 * C + i), a.new)

            t0 = time.perf_counter()
            ts = [threading.Thread(target=client, args=(i,)) for i in range(C)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            wall = time.perf_counter() - t0
            if any(o is None or len(o) != a.new for o in out):
                sys.exit(f"{name} C={C}: a client got an incomplete answer")
            ttft = [o[0] for o in out]
            itl = [o[k + 1] - o[k] for o in out for k in range(len(o) - 1)]
            # Each stream's mean gap (tokens that came in one chunk included):
            # the decode rate the server kept up for that client.
            gap = [(o[-1] - o[0]) / (len(o) - 1) for o in out if len(o) > 1]
            rows.append({"model": name, "clients": C, "tokens_per_s": C * a.new / wall,
                         "wall_s": wall, "ttft_p50_s": pct(ttft, 50), "ttft_p99_s": pct(ttft, 99),
                         "itl_p50_ms": 1e3 * pct(itl, 50), "itl_p99_ms": 1e3 * pct(itl, 99),
                         "stream_gap_p50_ms": 1e3 * pct(gap, 50),
                         "peak_rss_mib": srv.peak_rss_mib(),
                         "cache_mib": srv.metric("rat_cache_bytes") / 2**20})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        srv.stop()
    # The same batch in `rat bench model` (decode at the middle of the generated part).
    for C in CLIENTS:
        j = json.loads(rat("bench", "model", "--config", os.path.join(model, "config.yaml"),
                           "--mode", "decode", "--batch", str(C), "--seq",
                           str(a.prompt + a.new // 2), "--cache-dtype", a.cache_dtype,
                           "--repeats", "3", "--json").strip().splitlines()[-1])
        machine = j["machine"]
        gap = next(r["stream_gap_p50_ms"] for r in rows if r["model"] == name and r["clients"] == C)
        served = C / (gap * 1e-3) if gap > 0 else float("nan")
        decode_cmp.append({"model": name, "batch": C, "server_decode_tokens_per_s": served,
                           "bench_model_tokens_per_s": j["tokens_per_s"],
                           "ratio": served / j["tokens_per_s"]})

config = {"d_model": a.d_model, "layers": a.layers, "d_head": a.d_head, "vocab": a.vocab,
          "prompt_tokens": a.prompt, "new_tokens": a.new, "clients": CLIENTS, "ctx": CTX,
          "cache_dtype": a.cache_dtype, "threads": a.threads or int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())),
          "quick": a.quick}
print(f"\nmachine: {machine}")
print(f"config: {json.dumps(config)}")
print(f"{'model':<10} {'C':>4} {'tok/s':>9} {'TTFT p50':>9} {'p99 s':>8} {'ITL p50':>9} "
      f"{'p99 ms':>8} {'RSS MiB':>8} {'cache MiB':>9}")
for r in rows:
    print(f"{r['model']:<10} {r['clients']:>4} {r['tokens_per_s']:>9.1f} {r['ttft_p50_s']:>9.3f} "
          f"{r['ttft_p99_s']:>8.3f} {r['itl_p50_ms']:>9.1f} {r['itl_p99_ms']:>8.1f} "
          f"{r['peak_rss_mib']:>8.0f} {r['cache_mib']:>9.1f}")
for C in CLIENTS:
    by = {r["model"]: r["tokens_per_s"] for r in rows if r["clients"] == C}
    print(f"C={C}: rat / attention throughput {by['rat'] / by['attention']:.2f}x")
for name, p in prefix.items():
    print(f"{name}: prefix reuse TTFT first {p['first_ttft_s']:.3f} s, second "
          f"{p['second_ttft_s']:.3f} s ({p['speedup']:.1f}x sooner)")
for d in decode_cmp:
    print(f"{d['model']} batch {d['batch']}: server decode {d['server_decode_tokens_per_s']:.1f} "
          f"tok/s vs bench model {d['bench_model_tokens_per_s']:.1f} ({100 * d['ratio']:.0f}%)")
tmp = a.out + ".tmp"
with open(tmp, "w") as f:
    json.dump({"machine": machine, "config": config, "rows": rows, "prefix_reuse": prefix,
               "decode_vs_bench_model": decode_cmp}, f, indent=1)
os.replace(tmp, a.out)
print(f"wrote {a.out}")
