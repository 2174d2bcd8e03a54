"""`rat serve` under load: a RAT model and an attention model of the same
shape (random weights: `rat train` with one step on random tokens; speed does
not depend on the values), each served on 127.0.0.1 at a free port and hit by
C concurrent streaming clients (C in --clients), each sending one prompt of
--prompt distinct random token ids and asking for --new tokens (ignore_eos).

Per (model, C): throughput (generated tokens / wall time of the round), time
to first token and inter-token latency p50/p99, the server's peak RSS
(VmHWM: the peak up to that round) and cache bytes (/metrics). Per model:
the time to first token of a request whose prompt extends a finished one's
by 16 tokens (the free slot's state reused) against the first's (median of
--prefix-repeats); and the server's batched decode rate: B clients (B = the
slots) with short prompts decode together, and the tokens the server
generated (its /metrics counter, sampled every 50 ms) while every one of
them was streaming, over that window, are
compared with `rat bench model --mode decode --batch B` at the same position
for the same config (what `--mode throughput` times for the batch it picks).

Memory: with --memory-gib G ("same memory cap") each model gets the slots
that `rat bench model --mode throughput --memory-gib G` fits (weights and
caches of --ctx tokens), at most the most clients: attention fits fewer
slots, and clients beyond them wait in the queue. Without it both get
--parallel = the most clients (their caches differ; printed).

The issue's three targets end the output as PASS / FAIL lines: RAT's
throughput at the most clients >= 3x attention's (a common cap needed),
prefix reuse TTFT >= 10x sooner, server decode >= 80% of bench model's. A
figure within 10% of its target prints MARGINAL: on a shared machine that
is not a pass.

usage: serve_load.py RAT [--quick] [--memory-gib G] [--out FILE.json] [...]
Prints a table; writes JSON (--out). The machine and ceilings lines are
`rat bench model`'s.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "pylib"))
import harness  # noqa: E402

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
ap.add_argument("--memory-gib", type=float, default=0,
                help="same memory cap: slots per model from bench model's throughput mode")
ap.add_argument("--prefix-repeats", type=int, default=3, help="prefix reuse pairs (median)")
ap.add_argument("--decode-steps", type=int, default=48,
                help="steps timed with every slot decoding (server decode vs bench model)")
ap.add_argument("--reuse-models", action="store_true",
                help="keep the models of an earlier run in --work (same sizes)")
ap.add_argument("--models-only", action="store_true",
                help="make the two model directories in --work and stop")
a = ap.parse_args()
if a.quick:
    a.d_model, a.layers, a.d_head, a.vocab, a.prompt, a.new, a.clients = (
        64, 2, 16, 512, 96, 8, "1,4")
    a.decode_steps = 32
CLIENTS = [int(c) for c in a.clients.split(",")]
RAT, WORK = os.path.abspath(a.rat), os.path.abspath(a.work)
CTX = a.prompt + 16 + a.new + 8  # the prefix test's longer prompt fits too
SEQ = ((CTX + 63) // 64) * 64
ENV = dict(os.environ)


def rat(*args, cwd=WORK):
    return harness.run(RAT, *args, cwd=cwd, env=ENV, threads=None, timeout=None).stdout


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


# --- models: one training step on random tokens -------------------------------
MIXERS = {
    "rat": (f"{{_name_: rat, d_head: {a.d_head}, ngroups: 2, chunk_size: 16}}", "interrope"),
    "attention": (f"{{_name_: attention, d_head: {a.d_head}}}", "rope"),
}
models = {name: os.path.join(WORK, name, "run", "latest") for name in MIXERS}
reuse = a.reuse_models and all(os.path.isfile(os.path.join(m, "model.safetensors"))
                                for m in models.values())
if not reuse:
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
rng = random.Random(1)
for split, n in (("train", SEQ * 4 + 1), ("val", SEQ * 2 + 1)) if not reuse else ():
    with open(os.path.join(WORK, f"{split}.bin"), "wb") as f:
        f.write(struct.pack(f"<{n}H", *(rng.randrange(3, a.vocab) for _ in range(n))))

for name, (cell, pe) in MIXERS.items() if not reuse else ():
    harness.train(RAT, os.path.join(WORK, name), mixer=("sequence", f"interleave_step: 1, "
                                                         f"seq_cell: {cell}", pe),
                  data="..", vocab=a.vocab, seq_len=SEQ, batch=1, layers=a.layers,
                  d_model=a.d_model, d_ffn=4 * a.d_model, lr="1.0e-3", warmup="0.0", steps=1,
                  log_interval=1, val_samples=1)
if a.models_only:
    print("\n".join(f"{name}: {m}" for name, m in models.items()))
    sys.exit(0)


# --- one server, C clients ----------------------------------------------------
class Server(harness.Server):
    def __init__(self, model, parallel):
        name = os.path.basename(os.path.dirname(os.path.dirname(model)))
        args = ["--parallel", str(parallel), "--ctx", str(CTX), "--cache-dtype", a.cache_dtype,
                "--max-queue", "1024"]
        if a.threads:
            args += ["--threads", str(a.threads)]
        super().__init__(RAT, model, *args, env=ENV, start_timeout=600,
                         log_path=os.path.join(WORK, f"serve-{name}-{parallel}.log"))

    def stream(self, prompt, n):
        """Sends one streaming completion; returns each token's arrival time
        after the request was sent (seconds); .t0 the send time (perf_counter)."""
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
        return Times(times, t0)

    def peak_rss_mib(self):
        return self.status_kib("VmHWM") / 1024

    def stop(self):
        super().stop(120)


class Times(list):
    def __init__(self, xs, t0):
        super().__init__(xs)
        self.t0 = t0


def prompt_ids(seed, n=None):
    r = random.Random(seed)
    return [r.randrange(3, a.vocab) for _ in range(n or a.prompt)]


def bench_model(model, *args):
    out = rat("bench", "model", "--config", os.path.join(model, "config.yaml"),
              "--cache-dtype", a.cache_dtype, *args, "--json")
    return json.loads(out.strip().splitlines()[-1])


def verdict(value, target):
    """PASS / FAIL, MARGINAL within 10% of the target (noise on a shared machine)."""
    if value != value:
        return "FAIL (no figure)"
    if value >= 1.1 * target:
        return "PASS"
    return "MARGINAL" if value >= target / 1.1 else "FAIL"


# Slots per model: a common memory cap, or the most clients for both.
load_start = os.getloadavg()
slots, ceilings = {}, {}
for name, model in models.items():
    if a.memory_gib > 0:
        j = bench_model(model, "--mode", "throughput", "--memory-gib", str(a.memory_gib),
                        "--seq", str(CTX), "--max-batch", str(max(CLIENTS)), "--repeats", "1")
        slots[name] = int(j["batch"])
        ceilings = {k: j[k] for k in ("machine", "read_gbps", "gemm_gflops")}
    else:
        slots[name] = max(CLIENTS)

rows, prefix, decode_cmp = [], {}, []
for name, model in models.items():
    srv = Server(model, slots[name])
    warm_line = next((l for l in open(srv.log.name) if "listening" in l), "").strip()
    try:
        # A second request sharing the first's whole prompt (+16 tokens): its
        # slot's state is reused, only the 16 tokens are fed. An unrelated
        # prompt of the same length first, so neither pays a first-time cost.
        srv.stream(prompt_ids(97), 1)
        firsts, seconds = [], []
        for k in range(a.prefix_repeats):
            p = prompt_ids(99 + 2 * k)
            firsts.append(srv.stream(p, 1)[0])
            seconds.append(srv.stream(p + prompt_ids(98 + 2 * k)[:16], 1)[0])
        first, second = statistics.median(firsts), statistics.median(seconds)
        prefix[name] = {"first_ttft_s": first, "second_ttft_s": second,
                        "speedup": first / second if second > 0 else float("nan"),
                        "firsts_s": firsts, "seconds_s": seconds}
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
            gap = [(o[-1] - o[0]) / (len(o) - 1) for o in out if len(o) > 1]
            rows.append({"model": name, "clients": C, "slots": slots[name],
                         "tokens_per_s": C * a.new / wall,
                         "wall_s": wall, "ttft_p50_s": pct(ttft, 50), "ttft_p99_s": pct(ttft, 99),
                         "itl_p50_ms": 1e3 * pct(itl, 50), "itl_p99_ms": 1e3 * pct(itl, 99),
                         "stream_gap_p50_ms": 1e3 * pct(gap, 50),
                         "peak_rss_mib": srv.peak_rss_mib(),
                         "cache_mib": srv.metric("rat_cache_bytes") / 2**20})
            print(json.dumps(rows[-1]), flush=True)
        # Batched decode: B short prompts, each asking for enough tokens that
        # all B decode together for --decode-steps steps after the last one
        # joined (the scheduler admits one prompt per step).
        B = min(slots[name], max(CLIENTS))
        short = 32
        n_new = B + a.decode_steps + 8
        out = [None] * B

        def dclient(i):
            out[i] = srv.stream(prompt_ids(7000 + i, short), n_new)

        # The server's own count of generated tokens, sampled while they
        # stream: a chunk may carry several tokens, so arrival times alone
        # would credit a window with tokens made before it.
        samples, done = [], threading.Event()

        def poll():
            while not done.is_set():
                samples.append((time.perf_counter(), srv.metric("rat_completion_tokens_total")))
                time.sleep(0.05)

        poller = threading.Thread(target=poll)
        poller.start()
        ts = [threading.Thread(target=dclient, args=(i,)) for i in range(B)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        done.set()
        poller.join()
        if any(o is None or len(o) != n_new for o in out):
            sys.exit(f"{name} decode B={B}: a client got an incomplete answer")
        absolute = [[o.t0 + x for x in o] for o in out]
        w0 = max(x[0] for x in absolute)   # every stream has started
        w1 = min(x[-1] for x in absolute)  # none has ended yet
        inside = [s for s in samples if w0 <= s[0] <= w1]
        if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
            got = int(inside[-1][1] - inside[0][1])
            w0, w1 = inside[0][0], inside[-1][0]
        else:  # a window too short to sample (tiny models): arrivals instead
            got = sum(1 for x in absolute for y in x if w0 < y <= w1)
        served = got / (w1 - w0) if w1 > w0 else float("nan")
        pos = short + B + a.decode_steps // 2
        j = bench_model(model, "--mode", "decode", "--batch", str(B), "--seq", str(pos),
                        "--repeats", "5")
        ceilings = ceilings or {k: j[k] for k in ("machine", "read_gbps", "gemm_gflops")}
        decode_cmp.append({"model": name, "batch": B, "position": pos,
                           "window_s": w1 - w0, "window_tokens": got,
                           "server_decode_tokens_per_s": served,
                           "bench_model_tokens_per_s": j["tokens_per_s"],
                           "ratio": served / j["tokens_per_s"]})
        print(json.dumps(decode_cmp[-1]), flush=True)
    finally:
        srv.stop()
    prefix[name]["start_line"] = warm_line

load_end = os.getloadavg()
config = {"d_model": a.d_model, "layers": a.layers, "d_head": a.d_head, "vocab": a.vocab,
          "prompt_tokens": a.prompt, "new_tokens": a.new, "clients": CLIENTS, "ctx": CTX,
          "cache_dtype": a.cache_dtype, "memory_gib": a.memory_gib, "slots": slots,
          "threads": a.threads or int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())),
          "quick": a.quick}
print(f"\nmachine: {ceilings.get('machine')}")
print(f"ceilings: read {ceilings.get('read_gbps', 0):.1f} GB/s, GEMM f32 1024^3 "
      f"{ceilings.get('gemm_gflops', 0):.1f} GFLOP/s (bench model's, same run)")
print(f"load average: {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end")
print(f"config: {json.dumps(config)}")
for name in models:
    print(f"{name} start: {prefix[name]['start_line']}")
cap = (f"memory cap {a.memory_gib:g} GiB: slots rat {slots['rat']}, attention {slots['attention']}"
       if a.memory_gib > 0 else f"no common memory cap: both {max(CLIENTS)} slots")
print(cap)
print(f"{'model':<10} {'C':>4} {'slots':>5} {'tok/s':>9} {'TTFT p50':>9} {'p99 s':>8} "
      f"{'ITL p50':>9} {'p99 ms':>8} {'RSS MiB':>8} {'cache MiB':>9}")
for r in rows:
    print(f"{r['model']:<10} {r['clients']:>4} {r['slots']:>5} {r['tokens_per_s']:>9.1f} "
          f"{r['ttft_p50_s']:>9.3f} {r['ttft_p99_s']:>8.3f} {r['itl_p50_ms']:>9.1f} "
          f"{r['itl_p99_ms']:>8.1f} {r['peak_rss_mib']:>8.0f} {r['cache_mib']:>9.1f}")
for C in CLIENTS:
    by = {r["model"]: r["tokens_per_s"] for r in rows if r["clients"] == C}
    print(f"C={C}: rat / attention throughput {by['rat'] / by['attention']:.2f}x")
for name, p in prefix.items():
    print(f"{name}: prefix reuse TTFT first {p['first_ttft_s']:.3f} s, second "
          f"{p['second_ttft_s']:.3f} s ({p['speedup']:.1f}x sooner; medians of "
          f"{a.prefix_repeats})")
for d in decode_cmp:
    print(f"{d['model']} batch {d['batch']}: server decode {d['server_decode_tokens_per_s']:.1f} "
          f"tok/s ({d['window_tokens']} tokens in {d['window_s']:.2f} s) vs bench model "
          f"{d['bench_model_tokens_per_s']:.1f} at position {d['position']} "
          f"({100 * d['ratio']:.0f}%)")

Cmax = max(CLIENTS)
by = {r["model"]: r["tokens_per_s"] for r in rows if r["clients"] == Cmax}
ratio = by["rat"] / by["attention"]
targets = [("throughput", f"RAT / attention throughput at {Cmax} clients {ratio:.2f}x (target >= 3x, "
            f"{cap})", verdict(ratio, 3) if a.memory_gib > 0 else "n/a (give --memory-gib)")]
for name, p in prefix.items():
    targets.append(("prefix", f"{name}: second request sharing a {a.prompt}-token prefix gets its "
                    f"first token {p['speedup']:.1f}x sooner (target >= 10x)",
                    verdict(p["speedup"], 10)))
for d in decode_cmp:
    targets.append(("decode", f"{d['model']}: server batched decode at batch {d['batch']} is "
                    f"{100 * d['ratio']:.0f}% of bench model's (target >= 80%)",
                    verdict(d["ratio"], 0.8)))
for _, text, v in targets:
    print(f"{v}: {text}")
tmp = a.out + ".tmp"
with open(tmp, "w") as f:
    json.dump({"machine": ceilings.get("machine"), "ceilings": ceilings, "config": config,
               "load_average": [load_start, load_end], "rows": rows, "prefix_reuse": prefix,
               "decode_vs_bench_model": decode_cmp,
               "targets": [{"target": k, "text": t, "verdict": v} for k, t, v in targets]},
              f, indent=1)
os.replace(tmp, a.out)
print(f"wrote {a.out}")
