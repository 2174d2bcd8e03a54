"""The same answers on any thread count: a hybrid (attention, RAT and FFN
layers, layernorm-free RMSNorm blocks, a tied head) is trained for a few steps
in f32 and in bf16 with OMP_NUM_THREADS = each of --threads; the per-step
loss and grad_norm (metrics.jsonl, printed with 17 digits) and the final
model.safetensors must be bit-identical to the first thread count's; so must
greedy `rat generate` (a batch of prompts, token ids) and `rat eval` (loss on
the validation tokens, --json) of the trained model. Batch invariance, in each
column: the 5 prompts generated together with --batch-invariant must equal each
generated alone, and `rat eval -b 8 --batch-invariant` must equal `-b 1`.

Prints the matrix (one row per check, one column per thread count: "=" when
identical to the first column, else what differs) and exits non-zero if any
cell differs.

usage: threads_check.py RAT WORKDIR [--threads 1,2,3,4] [--steps N]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("rat")
ap.add_argument("work")
ap.add_argument("--threads", default="1,2,3")
ap.add_argument("--steps", type=int, default=6)
ap.add_argument("--dtypes", default="float32,bfloat16")
args = ap.parse_args()
RAT, WORK = os.path.abspath(args.rat), os.path.abspath(args.work)
THREADS = [int(t) for t in args.threads.split(",")]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
os.chdir(WORK)
subprocess.run(["/usr/bin/python3", "-c", """
import numpy as np
rng = np.random.default_rng(1)
pat = 3 + rng.integers(0, 61, 97)
i = np.arange(40000)
t = np.where(i % 50 == 49, 2, pat[i % 97]).astype("<u2")
t.tofile("train.bin")
t[:4000].tofile("val.bin")
"""], check=True)
with open("prompts.txt", "w") as f:
    for k in range(5):
        f.write(" ".join(str(3 + (k * 7 + j * 5) % 60) for j in range(3 + 4 * k)) + "\n")


def config(dtype):
    return f"""data: {{seq_len: 64, vocab_size: 64, num_bytes: 2, ignore_input_index: 2, batch_size: 8,
       global_batch_size: 8,
       train: {{_name_: lm_ordered, tokenized_file_path: {WORK}/train.bin}},
       val: {{_name_: lm_ordered, tokenized_file_path: {WORK}/val.bin}}, val_samples: 8}}
model:
  backbone: {{_name_: sequence_interleave, num_layers: 4, d_model: 96, interleave_step: 2,
    seq_cell: {{_name_: attention, d_head: 16}},
    seq_cell1: {{_name_: rat, d_head: 16, ngroups: 2, chunk_size: 8}},
    hidden_cell: {{_name_: ffn, d_ffn: 256, act_fn: gelu, bias: true}}}}
  embedding: {{vocab_size: 64, pe: {{_name_: rope_interrope, base: 10000}}}}
task: {{tie_embedding: true, ignore_index: -100}}
optim:
  optimizer: {{_name_: adamw, lr: 3.0e-3, weight_decay: 0.1, betas: [0.9, 0.95], eps: 1.0e-8}}
  lr_scheduler: {{_name_: cosine, warmup_iter: 0.2, eta_min: 1.0e-6}}
trainer: {{seed: 7, dtype: {dtype}, max_steps: {args.steps}, gradient_clipping: 1.0,
  log_interval: 1, eval_interval: 0, save_checkpoint: true, load_checkpoint: false,
  save_interval: 1.0, save_dir: unused}}
"""


def run(cmd, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} (OMP_NUM_THREADS={threads}) failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def outputs(dtype, threads):
    """What each check compares, for one dtype and thread count."""
    run_dir = f"{dtype}-t{threads}"
    with open(f"{dtype}.yaml", "w") as f:
        f.write(config(dtype))
    run([RAT, "train", f"{dtype}.yaml", "--run-dir", run_dir, "--quiet"], threads)
    steps = []
    with open(f"{run_dir}/metrics.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if "loss" in r:
                steps.append((r["step"], r["loss"], r["grad_norm"]))
    with open(f"{run_dir}/latest/model.safetensors", "rb") as f:
        weights = f.read()
    model = f"{run_dir}/latest"
    gen_dtype = "bf16" if dtype == "bfloat16" else "f32"
    gen = []
    with open("prompts.txt") as f:
        for line in f:
            out = run([RAT, "generate", "--model", model, "--prompt-ids", line.strip(), "-n", "24",
                       "--greedy", "--ignore-eos", "--dtype", gen_dtype, "--json"], threads)
            gen.append(json.loads(out.strip().splitlines()[-1]).get("outputs"))
    with open("prompts.txt") as f:
        batch = ";".join(line.strip() for line in f)
    out = run([RAT, "generate", "--model", model, "--prompt-ids", batch, "-n", "24", "--greedy",
               "--ignore-eos", "--dtype", gen_dtype, "--batch-invariant", "--json"], threads)
    batched = [[o] for o in json.loads(out.strip().splitlines()[-1]).get("outputs")]

    def evaluate(*flags):
        ev = json.loads(run([RAT, "eval", "--model", model, "--data", "val.bin", "--max-samples",
                             "16", "--dtype", gen_dtype, "--json", *flags],
                            threads).strip().splitlines()[-1])
        return {k: v for k, v in ev.items() if k in ("loss", "ppl", "tokens", "samples")}
    return {"train loss, grad_norm per step": steps, "final weights (bytes)": weights,
            "greedy generate": gen, "eval": evaluate(),
            "generate, 5 together, --batch-invariant": batched,
            "eval -b 1": evaluate("-b", "1"),
            "eval -b 8 --batch-invariant": evaluate("-b", "8", "--batch-invariant")}


def differs(a, b):
    if a == b:
        return "="
    if isinstance(a, bytes):
        n = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
        return f"{n} bytes differ"
    if isinstance(a, list) and len(a) == len(b):
        first = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        return f"differs from item {first}"
    return "differs"


bad = 0
for dtype in args.dtypes.split(","):
    cols = {t: outputs(dtype, t) for t in THREADS}
    base = cols[THREADS[0]]
    print(f"\n{dtype}: OMP_NUM_THREADS = " + " | ".join(str(t) for t in THREADS))
    for check in base:
        cells = [differs(base[check], cols[t][check]) for t in THREADS]
        bad += sum(c != "=" for c in cells)
        print(f"  {check:40s} " + " | ".join(cells))
    # Batch invariance, within each column: the batch-invariant forms against
    # each prompt generated alone and against eval one sequence per pass.
    for what, got, alone in (("batch-invariant generate == alone", "generate, 5 together, "
                              "--batch-invariant", "greedy generate"),
                             ("eval -b 8 --batch-invariant == -b 1", "eval -b 8 --batch-invariant",
                              "eval -b 1")):
        cells = [differs(cols[t][alone], cols[t][got]) for t in THREADS]
        bad += sum(c != "=" for c in cells)
        print(f"  {what:40s} " + " | ".join(cells))
    print(f"  (loss at step {args.steps}: {base['train loss, grad_norm per step'][-1][1]!r})")
print(f"\nthreads_check: {bad} differing cells")
sys.exit(1 if bad else 0)
