#!/usr/bin/python3
"""Generate every golden case into OUT/<case name>/ (see make_case.py for the layout of one case).

    make_all.py --out OUT [--only NAME ...]

Every cases/*.yaml is generated once with F32 weights and default flags (case name = yaml stem),
plus the extra variants listed in VARIANTS (other storage dtypes, batch sizes, tied head written).
"""
import argparse
import glob
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_case  # noqa: E402

# name: (config stem, extra make_case args)
VARIANTS = {
    "rat_g1_head": ("rat_g1", ["--write-head"]),
    "rat_g1_b1_seed3": ("rat_g1", ["--batch", "1", "--seed", "3"]),
    "rat_g2_ragged_f16": ("rat_g2_ragged", ["--dtype", "F16"]),
    "hybrid_rat_local_bf16": ("hybrid_rat_local", ["--dtype", "BF16", "--batch", "3"]),
    "attention_bf16_head": ("attention", ["--dtype", "BF16", "--write-head"]),
    "rnn_f16": ("rnn", ["--dtype", "F16"]),
    "local_w3_seq9": ("local_w3", ["--seq", "9"]),
}


def all_cases():
    out = {}
    for p in sorted(glob.glob(os.path.join(HERE, "cases", "*.yaml"))):
        stem = os.path.splitext(os.path.basename(p))[0]
        out[stem] = (p, [])
    for name, (stem, args) in VARIANTS.items():
        out[name] = (os.path.join(HERE, "cases", stem + ".yaml"), list(args))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    for name, (cfg, args) in all_cases().items():
        if a.only and name not in a.only:
            continue
        t0 = time.time()
        make_case.main(["--config", cfg, "--out", os.path.join(a.out, name)] + args)
        print("  %-32s %.1fs" % (name, time.time() - t0))


if __name__ == "__main__":
    main()
