#!/usr/bin/python3
"""Compare the loss curves of a float32 and a bfloat16 training run (docs/reliability.md,
"Numerical health"). Reads each run's metrics.jsonl (train records carry "loss", evaluation
records "val_loss"/"val_ppl"), prints the gap table and checks it against the band:

  smoothed train loss (trailing mean of WINDOW steps): relative gap |bf16 - f32| / f32
      <= 2% at every step past the first window, <= 1% over the last 20% of the steps;
  validation loss: relative gap <= 1% at every evaluation past the first 10% of the steps.

Why this band: a bf16 product rounds each operand to 8 significant bits (unit roundoff
2^-9 = 0.2%), accumulating in float32. Two runs that differ by such roundings follow
different trajectories after a few hundred steps, so the gap is not a rounding bound but
the spread of nearby trajectories: its scale is the run-to-run noise of the loss, which for
the 64 fixed validation windows (16K tokens) and a 50-step mean of 2K-token batches is about
half a percent. 1% (final) is twice that; 2% over the whole run leaves room for the steep
early descent, where a step's lag is worth several percent. A kernel that loses precision
(a bf16 accumulation, a bf16 softmax, a wrong rounding) shows as a gap that grows with the
steps, and fails the last-20% bound.

With runs of unequal length (one cut short) only the common steps are compared, and the
report says so. Exit status 0 inside the band, 1 outside, 2 on bad input.
usage: numerics_compare.py F32/metrics.jsonl BF16/metrics.jsonl [--out DIR] [--rat BIN]
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys

TRAIN_ALL, TRAIN_TAIL, VAL_BAND = 0.02, 0.01, 0.01


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(2)


def read(path):
    train, val = {}, {}
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                except ValueError as e:
                    fail(f"{path}:{n}: not a JSON object ({e})")
                if "step" not in r:
                    continue
                if "loss" in r:
                    train[int(r["step"])] = float(r["loss"])
                if "val_loss" in r:
                    val[int(r["step"])] = float(r["val_loss"])
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    if not train:
        fail(f"{path}: no train records (\"loss\")")
    return train, val


def smooth(train, window):
    """Trailing mean over `window` logged steps (steps are consecutive with log_interval 1)."""
    steps = sorted(train)
    out, acc = {}, 0.0
    for i, s in enumerate(steps):
        acc += train[s]
        if i >= window:
            acc -= train[steps[i - window]]
        if i >= window - 1:
            out[s] = acc / window
    return out


def gaps(a, b, steps):
    return [abs(b[s] - a[s]) / a[s] for s in steps]


def stats(g):
    return (max(g), statistics.median(g)) if g else (float("nan"), float("nan"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("f32")
    ap.add_argument("bf16")
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--out", default=None, help="directory for the PNGs and gaps.json")
    ap.add_argument("--rat", default="build/rat", help="rat binary for `rat plot`")
    a = ap.parse_args()
    tf, vf = read(a.f32)
    tb, vb = read(a.bf16)
    sf, sb = smooth(tf, a.window), smooth(tb, a.window)
    common = sorted(set(sf) & set(sb))
    last = max(set(tf) & set(tb))
    full = max(max(tf), max(tb))
    if not common:
        fail("no common smoothed steps: runs shorter than the window")
    tail_from = last - 0.2 * last
    g_all = gaps(sf, sb, common)
    g_tail = gaps(sf, sb, [s for s in common if s > tail_from])
    raw = gaps(tf, tb, sorted(set(tf) & set(tb)))
    vsteps = sorted(s for s in set(vf) & set(vb) if s > 0.1 * last)
    g_val = gaps(vf, vb, vsteps)
    rows = [
        ("train loss, 50-step mean, all steps", *stats(g_all), TRAIN_ALL),
        ("train loss, 50-step mean, last 20%", *stats(g_tail), TRAIN_TAIL),
        ("val loss, evaluations past 10%", *stats(g_val), VAL_BAND),
        ("train loss, single steps (no band)", *stats(raw), None),
    ]
    if last < full:
        print(f"note: compared steps 1..{last} only (one run stopped before {full})")
    # The noise scale of a WINDOW-step mean: the spread of single steps about their
    # trailing mean (f32 run, last 20%), over sqrt(WINDOW), relative to the loss.
    tail = [s for s in common if s > tail_from]
    dev = [(tf[s] - sf[s]) / sf[s] for s in tail]
    noise = statistics.pstdev(dev) / math.sqrt(a.window) if len(dev) > 1 else float("nan")
    print(f"steps compared {last}, smoothing window {a.window}, evaluations {len(vsteps)}")
    print(f"{'relative gap |bf16-f32|/f32':40s} {'max':>8s} {'median':>8s} {'band':>6s}")
    ok = True
    for name, mx, med, band in rows:
        inside = band is None or mx <= band
        ok &= inside
        b = f"{band:.0%}" if band is not None else "-"
        print(f"{name:40s} {mx:8.3%} {med:8.3%} {b:>6s} {'' if inside else 'OUTSIDE'}")
    vlast = max(set(vf) & set(vb)) if vf and vb else None
    if vlast is not None:
        pf, pb = math.exp(vf[vlast]), math.exp(vb[vlast])
        print(f"val ppl at step {vlast}: f32 {pf:.2f}, bf16 {pb:.2f} (ratio {pb / pf:.4f})")
        print(f"val loss at step {vlast}: f32 {vf[vlast]:.4f}, bf16 {vb[vlast]:.4f}")
    print(f"smoothed train loss at step {common[-1]}: f32 {sf[common[-1]]:.4f}, "
          f"bf16 {sb[common[-1]]:.4f}")
    print(f"noise of a {a.window}-step mean (f32, last 20%): {noise:.3%} of the loss")
    print("inside the band" if ok else "OUTSIDE the band")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        runs = [os.path.dirname(a.f32) or ".", os.path.dirname(a.bf16) or "."]
        for metric, name in (("loss", "loss.png"), ("val_loss", "val_loss.png")):
            png = os.path.join(a.out, name)
            subprocess.run([a.rat, "plot", *runs, "--metric", metric, "--out", png,
                            "--title", f"{metric}: float32 vs bfloat16"], check=True)
        # The smoothed curves and their gap, as metrics.jsonl files of their own
        # ("loss" holding the plotted value) so that `rat plot` draws them too.
        curves = {"float32": sf, "bfloat16": sb,
                  "gap_percent": {s: 100 * (sb[s] - sf[s]) / sf[s] for s in common}}
        for name, c in curves.items():
            d = os.path.join(a.out, f"smoothed{a.window}", name)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "metrics.jsonl"), "w") as f:
                for s in common:
                    f.write(json.dumps({"step": s, "loss": c[s]}) + "\n")
        sm = os.path.join(a.out, f"smoothed{a.window}")
        subprocess.run([a.rat, "plot", os.path.join(sm, "float32"), os.path.join(sm, "bfloat16"),
                        "--out", os.path.join(a.out, "loss_smoothed.png"), "--title",
                        f"train loss, {a.window}-step mean: float32 vs bfloat16"], check=True)
        subprocess.run([a.rat, "plot", os.path.join(sm, "gap_percent"), "--out",
                        os.path.join(a.out, "gap_percent.png"), "--title",
                        f"(bf16 - f32) / f32 of the {a.window}-step mean train loss, percent"],
                       check=True)
        with open(os.path.join(a.out, "gaps.json"), "w") as f:
            json.dump({"steps": last, "window": a.window,
                       "rows": [{"what": r[0], "max": r[1], "median": r[2], "band": r[3]}
                                for r in rows], "inside": ok}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
