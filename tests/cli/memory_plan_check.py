"""`rat train --dry-run` and the memory check at start (issue 16 item 3):

- `--dry-run` exits 0, writes no run directory and reads no data file; `--json`
  gives one object with every line per rank in bytes, the machine's figure and
  `fits`; `--ranks 4` with ZERO1 plans four ranks, each a quarter of AdamW's state;
  `--ranks` without `--dry-run` is refused;
- a start whose plan exceeds what is available is refused in one line naming
  the knobs, before the run directory exists (RAT_MEMORY_AVAILABLE_MIB stands in
  for a small machine), and `--no-memory-check` starts it anyway;
- with --rss (the CTest memory_plan_rss): the plan against the measured peak RSS
  (/usr/bin/time's maximum resident set) of a few steps of three small-but-not-
  tiny configurations (f32; bf16 with block recomputation; f32 mixer
  recomputation with RMSprop), within 10%.

usage: memory_plan_check.py RAT WORKDIR [--rss]
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys

RAT, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
RSS = "--rss" in sys.argv[3:]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import harness  # noqa: E402

check = harness.Checks()


def rat(*args, ok=True, env=None):
    return harness.run(RAT, *args, cwd=WORK, ok=ok, env=env, timeout=None)


def write_tokens(path, n, vocab, seed):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.write(struct.pack(f"<{n}H", *(rng.randrange(3, vocab) for _ in range(n))))


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(os.path.join(WORK, "data"))
with open(os.path.join(WORK, "exp.yaml"), "w") as f:
    f.write(harness.experiment(steps=2, val_samples=0))

# --- --dry-run: nothing read, nothing written ------------------------------------------
p = rat("train", "exp.yaml", "--dry-run")  # data/*.bin do not exist yet
check("fits" in p.stdout and "weights" in p.stdout and "activations" in p.stdout,
      "--dry-run prints the table and the verdict:\n" + p.stdout)
check(not os.path.exists(os.path.join(WORK, "run")), "--dry-run wrote no run directory")
p = rat("train", "exp.yaml", "--dry-run", "--json")
lines = p.stdout.strip().splitlines()
check(len(lines) == 1, "--dry-run --json prints one line: " + p.stdout)
j = json.loads(lines[0])
plan = j["plans"][0]
for k in ("weights_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes",
          "logits_bytes", "communication_bytes", "data_bytes", "process_bytes", "total_bytes"):
    check(isinstance(plan.get(k), int), f"--json has {k}: {plan}")
check(j["ranks"] == 1 and j["fits"] is True and j["available_bytes"] > 0,
      f"one rank, fits, available: {j}")
check(plan["optimizer_bytes"] == 2 * plan["weights_bytes"], "AdamW: two moments per weight")
check(plan["total_bytes"] == sum(v for k, v in plan.items()
                                 if k.endswith("_bytes") and k not in ("total_bytes",)
                                 and isinstance(v, int)),
      "total is the sum of the lines")
a = plan["activations_by_recompute_bytes"]
check(a["block"] < a["mixer"] < a["none"] == plan["activations_bytes"],
      f"recomputation shrinks activations: {a}")

p = rat("train", "exp.yaml", "--dry-run", "--json", "--ranks", "4",
        "trainer.fsdp.sharding_strategy=ZERO1")
j4 = json.loads(p.stdout)
check(j4["ranks"] == 4 and len(j4["plans"]) == 4, "--ranks 4 plans four ranks")
shards = [q["optimizer_bytes"] for q in j4["plans"]]
check(sum(shards) == plan["optimizer_bytes"] and max(shards) - min(shards) <= 8,
      f"ZERO1 over 4 ranks: the optimizer state in quarters: {shards}")
check(all(q["communication_bytes"] == q["gradients_bytes"] for q in j4["plans"]),
      "4 ranks: all-reduce temporaries of one gradient's size")
q0 = j4["plans"][0]
check(q0["transient"] == ["communication", "checkpoint"]
      and q0["checkpoint_bytes"] == plan["optimizer_bytes"]
      and q0["total_bytes"] == sum(v for k, v in q0.items() if k.endswith("_bytes") and isinstance(v, int)
                                   and k not in ("total_bytes", "communication_bytes"))
      and j4["peak_bytes"] == q0["total_bytes"],
      f"rank 0 gathers the whole state for checkpoints, in place of the freed temporaries: {q0}")
p = rat("train", "exp.yaml", "--ranks", "2", ok=False)
check(p.returncode != 0 and "--ranks" in p.stderr, "--ranks without --dry-run refused: " + p.stderr)

# --- refusal at start, and the override -----------------------------------------------
write_tokens(os.path.join(WORK, "data", "train.bin"), 4 * 65 * 4, 300, 1)
write_tokens(os.path.join(WORK, "data", "val.bin"), 4 * 65, 300, 2)
small = dict(os.environ, RAT_MEMORY_AVAILABLE_MIB="1")
p = rat("train", "exp.yaml", "--quiet", env=small, ok=False)
err = p.stderr.strip().splitlines()
check(p.returncode != 0 and len(err) == 1 and "needs" in err[0] and "1.0 MiB per rank" in err[0]
      and "activation_checkpointing=block" in err[0] and "--no-memory-check" in err[0],
      "a start that does not fit is refused in one line: " + p.stderr)
check(not os.path.exists(os.path.join(WORK, "run")), "the refused start wrote no run directory")
p = rat("train", "exp.yaml", "--quiet", "--no-memory-check", "trainer.save_checkpoint=false",
        env=small)
check(p.returncode == 0 and os.path.exists(os.path.join(WORK, "run", "metrics.jsonl")),
      "--no-memory-check starts anyway")

# --- the plan against measured peak RSS -------------------------------------------------
CASES = [
    ("f32, none", ["trainer.dtype=float32"]),
    ("bf16, block", ["trainer.dtype=bfloat16", "trainer.activation_checkpointing=block"]),
    ("f32, mixer, rmsprop", ["trainer.activation_checkpointing=mixer",
                             "optim.optimizer._name_=rmsprop", "optim.optimizer.momentum=0.9"]),
]
if RSS:
    V, T, B = 8000, 512, 2
    write_tokens(os.path.join(WORK, "data", "train.bin"), 3 * B * (T + 1), V, 3)
    shape = ["data.seq_len=%d" % T, "data.vocab_size=%d" % V, "model.embedding.vocab_size=%d" % V,
             "data.batch_size=%d" % B, "data.global_batch_size=%d" % B,
             "model.backbone.num_layers=4", "model.backbone.d_model=256",
             "model.backbone.hidden_cell.d_ffn=1024", "model.backbone.seq_cell.d_head=64",
             "trainer.max_steps=2", "trainer.save_checkpoint=false"]
    for name, extra in CASES:
        args = ["train", "exp.yaml", *shape, *extra]
        plan = json.loads(rat(*args, "--dry-run", "--json").stdout)["plans"][0]["total_bytes"]
        rss = os.path.join(WORK, "rss")
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss, RAT, *args, "--quiet",
                            "--overwrite", "-t", "1"], cwd=WORK, capture_output=True, text=True)
        check(p.returncode == 0, f"{name}: the run: {p.stderr}")
        peak = int(open(rss).read().split()[-1]) * 1024
        err = (plan - peak) / peak
        print(f"{name}: plan {plan / 2**20:.1f} MiB, peak RSS {peak / 2**20:.1f} MiB, "
              f"{100 * err:+.1f}%")
        check(abs(err) <= 0.10, f"{name}: plan within 10% of peak RSS ({100 * err:+.1f}%)")

if check.failures:
    sys.exit(f"{len(check.failures)} check(s) failed")
print("memory_plan_check: all checks passed")
