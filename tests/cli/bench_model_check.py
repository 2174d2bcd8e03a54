"""`rat bench model --mode throughput` on two tiny configs: the chosen batch must
fit the budget (cache per sequence x batch + weights <= budget), RAT's chunk cache
must admit a larger batch than attention's KV cache at the same T, and a bad
--mode must fail with a message naming the flag."""
import json
import subprocess
import sys

rat, cases = sys.argv[1], sys.argv[2]
budget_gib = 0.02
cmd = [rat, "bench", "model", "--mode", "throughput", "--memory-gib", str(budget_gib), "--seq", "32",
       "--repeats", "1", "--json", "--config", f"{cases}/rat_g1.yaml", "--config", f"{cases}/attention.yaml"]
out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
rows = [json.loads(l) for l in out.splitlines() if l.strip()]
assert len(rows) == 2, out
for r in rows:
    used_mib = r["batch"] * r["cache_mib_per_seq"] + r["weights_mib"]
    assert r["batch"] >= 1 and used_mib <= budget_gib * 1024, r
    assert r["tokens_per_s"] > 0 and r["bytes_read_per_step"] > 0 and r["flops_per_step"] > 0, r
rat_row, attn_row = rows
# At T 32 the rat case (L 4) keeps 8 chunk states per layer where attention keeps 32 tokens.
assert rat_row["cache_mib_per_seq"] < attn_row["cache_mib_per_seq"], rows
assert rat_row["batch"] > attn_row["batch"], rows
bad = subprocess.run([rat, "bench", "model", "--mode", "fast", "--config", f"{cases}/rat_g1.yaml"],
                     capture_output=True, text=True)
assert bad.returncode != 0 and "--mode" in bad.stderr, (bad.returncode, bad.stderr)
print("bench model checks passed")
