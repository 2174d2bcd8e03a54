#!/usr/bin/env python3
"""Writes docs/accuracy.md from the output directory of scripts/accuracy_study.sh.

    python3 scripts/accuracy_report.py OUT_DIR [--out REPORT.md]

Python 3 standard library only; figures are drawn with gnuplot when it is installed.
Everything missing (a failed or not yet run step) is shown as "—" with the reason,
so the report can be written from a partial study. The comparisons in "Against the
paper" are worded from the measured numbers, never fixed text.
"""
import argparse
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys

FAMILIES = [
    ("attention", "attention"),
    ("rat", "RAT"),
    ("rnn", "RNN"),
    ("rat_localattention_interleave", "RAT + local attn"),
    ("attention_localattention_interleave", "attention + local attn"),
]
NAME = dict(FAMILIES)
DASH = "—"
CLOSE = 0.05  # relative perplexity gap called "close" in the comparison text


def read_json(path):
    """The last line of `path` that is a JSON object (commands may print more), or None."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    try:
        obj = json.loads(text)
        if isinstance(obj, dict):
            return obj
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def pick(d, *names):
    """The first of `names` found in d or in one of its dict values (key spellings vary)."""
    if not isinstance(d, dict):
        return None
    for n in names:
        if n in d and d[n] is not None:
            return d[n]
    for v in d.values():
        if isinstance(v, dict):
            for n in names:
                if n in v and v[n] is not None:
                    return v[n]
    return None


def num(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fmt(x, digits=2):
    x = num(x)
    return DASH if x is None else f"{x:.{digits}f}"


def safetensors_params(path):
    """Parameter count from a safetensors header (tied lm_head is not stored)."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error):
        return None
    total = 0
    for k, v in header.items():
        if k == "__metadata__":
            continue
        total += math.prod(v.get("shape", []))
    return total


def model_params(run_dir):
    p = safetensors_params(os.path.join(run_dir, "latest", "model.safetensors"))
    if p is None:  # the training log's rounded count
        try:
            with open(os.path.join(os.path.dirname(run_dir), "train.log")) as f:
                m = re.search(r"model: ([0-9.]+)M parameters", f.read())
            p = float(m.group(1)) * 1e6 if m else None
        except OSError:
            p = None
    return p


def failure(out, name):
    """The last line of a failed step's log (OUT/failed/NAME.txt: command, then log + last line)."""
    try:
        with open(os.path.join(out, "failed", name + ".txt")) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    if len(lines) >= 2 and ": " in lines[1]:
        return lines[1].split(": ", 1)[1].strip() or lines[0]
    return lines[0] if lines else "failed"


def gnuplot(script):
    if not shutil.which("gnuplot"):
        return False
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    return r.returncode == 0


class Report:
    def __init__(self, out, report_path):
        self.out = out
        self.path = report_path
        self.figdir = os.path.splitext(report_path)[0]  # docs/accuracy.md -> docs/accuracy/
        self.study = read_json(os.path.join(out, "study.json")) or {}
        self.lines = []
        self.missing = []

    def w(self, s=""):
        self.lines.append(s)

    def figure(self, src, name, caption):
        if not os.path.isfile(src):
            return False
        os.makedirs(self.figdir, exist_ok=True)
        shutil.copyfile(src, os.path.join(self.figdir, name))
        rel = os.path.relpath(os.path.join(self.figdir, name), os.path.dirname(self.path) or ".")
        self.w(f"![{caption}]({rel})")
        self.w()
        return True

    def miss(self, name, what):
        why = failure(self.out, name)
        self.missing.append(f"{what}: " + (f"failed ({why})" if why else "not run"))

    # ---- part a -------------------------------------------------------------------
    def part_a(self):
        rows = {}
        for fam, _ in FAMILIES:
            d = os.path.join(self.out, "a", fam)
            tr = read_json(os.path.join(d, "train.json"))
            ed = read_json(os.path.join(d, "eval_data.json"))
            et = read_json(os.path.join(d, "eval_text.json"))
            if tr is None:
                self.miss(f"lm-train-{fam}", f"a) training {fam}")
            if tr is not None and ed is None:
                self.miss(f"lm-evaldata-{fam}", f"a) rat eval --data, {fam}")
            if tr is not None and et is None:
                self.miss(f"lm-evaltext-{fam}", f"a) rat eval --text, {fam}")
            t = read_json(os.path.join(self.out, "times", f"lm-train-{fam}.json")) or {}
            rows[fam] = {
                "params": model_params(os.path.join(d, "run")) if tr else None,
                "train_loss": num(pick(tr, "loss")),
                "tok_s": num(pick(tr, "tokens_per_s")),
                "train_s": num(t.get("seconds")),
                "ppl": num(pick(ed, "ppl", "perplexity")),
                "loss": num(pick(ed, "loss")),
                "tokens": pick(ed, "tokens"),
                "text_ppl": num(pick(et, "ppl", "perplexity", "word_perplexity")),
                "bpb": num(pick(et, "bpb", "bits_per_byte", "bits_per_byte_mean")),
                "bpb_se": num(pick(et, "bpb_stderr", "bpb_se", "bits_per_byte_stderr",
                                   "bits_per_byte_se", "stderr")),
                "text_tokens": pick(et, "tokens"),
                "text_bytes": pick(et, "bytes", "text_bytes", "num_bytes"),
            }
        self.a = rows
        s = self.study.get("lm", {})
        steps = s.get("steps")
        tokens = steps * 8 * 256 if isinstance(steps, int) else None
        self.w("## a) Language modelling on the bundled corpus")
        self.w()
        self.w(f"Each family is trained for {steps} steps of 8 x 256 tokens "
               f"({tokens:,} training tokens, one seed) on `data/pydoc/train.bin` "
               "(the Python 3.11 documentation, BPE vocabulary "
               f"{s.get('vocab', DASH)}), from configs/study/lm-*.yaml: 4 blocks, d_model 256, "
               "d_head 64, RAT chunk 16, local attention window 64; the FFN width is narrowed "
               "where RAT's extra projections would otherwise add parameters. Validation "
               "perplexity is `rat eval --data val.bin` (windows of 256 tokens); bits per byte is "
               "`rat eval --text` on the raw validation documents (the 25 held-out files, "
               "concatenated) and does not depend on the tokenizer." if tokens else
               "Part a) has no settings recorded (study.json missing).")
        if s.get("val_text_bytes_limit", -1) > 0 or s.get("val_samples", -1) > 0:
            self.w(f"(--quick: --data uses the first {s.get('val_samples')} windows, --text "
                   f"the first {s.get('val_text_bytes_limit')} bytes of the validation text.)")
        self.w()
        ps = [r["params"] for r in rows.values() if r["params"]]
        self.w("| family | parameters | train loss (last) | val loss | val ppl | text ppl | "
               "bits per byte | train time (s) | tokens/s |")
        self.w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for fam, label in FAMILIES:
            r = rows[fam]
            p = f"{r['params'] / 1e6:.3f}M" if r["params"] else DASH
            bpb = fmt(r["bpb"], 3)
            if r["bpb"] is not None and r["bpb_se"] is not None:
                bpb += f" ± {r['bpb_se']:.3f}"
            self.w(f"| {label} | {p} | {fmt(r['train_loss'], 3)} | {fmt(r['loss'], 3)} | "
                   f"{fmt(r['ppl'])} | {fmt(r['text_ppl'])} | {bpb} | {fmt(r['train_s'], 0)} | "
                   f"{fmt(r['tok_s'], 0)} |")
        self.w()
        if len(ps) >= 2:
            self.w(f"Parameter counts (from each checkpoint's model.safetensors, the tied "
                   f"output layer counted once) differ by at most "
                   f"{100 * (max(ps) / min(ps) - 1):.2f}% (largest over smallest).")
            self.w()
        self.figure(os.path.join(self.out, "fig", "lm_loss.png"), "lm_loss.png",
                    "training loss per step")
        self.figure(os.path.join(self.out, "fig", "lm_val_ppl.png"), "lm_val_ppl.png",
                    "validation perplexity during training")

    # ---- part b -------------------------------------------------------------------
    def part_b(self):
        s = self.study.get("mqar", {})
        points = [tuple(p) for p in s.get("points", [])]
        vocab = s.get("vocab", 512)
        self.chance = 2.0 / vocab
        acc = {}
        for k, t in points:
            p = f"k{k}_t{t}"
            for fam, _ in FAMILIES:
                d = os.path.join(self.out, "b", p, fam)
                tr = read_json(os.path.join(d, "train.json"))
                ev = read_json(os.path.join(d, "eval.json"))
                a = num(pick(ev, "acc", "accuracy"))
                if tr is None:
                    self.miss(f"mqar-train-{p}-{fam}", f"b) MQAR training {fam} at K={k} T={t}")
                elif a is None:
                    self.miss(f"mqar-eval-{p}-{fam}", f"b) rat eval --task mqar, {fam} at K={k} T={t}")
                acc[(fam, k, t)] = a
                if fam == "attention" and tr is not None and (k, t) == points[0]:
                    self.mqar_params = model_params(os.path.join(d, "run"))
        self.b = acc
        self.points = points
        self.w("## b) MQAR (multi-query associative recall)")
        self.w()
        fill = s.get("fill", "zero")
        # The recipe as trained: read from the resolved config of the first run (the
        # configs are flat `key: value` / `{...}` YAML; a regex keeps this stdlib-only).
        recipe = "AdamW with warm-up and cosine decay"
        batch = DASH
        cfg = os.path.join(self.out, "b", f"k{points[0][0]}_t{points[0][1]}", "attention", "run",
                           "config.yaml") if points else ""
        if cfg and os.path.exists(cfg):
            text = open(cfg, encoding="utf-8").read()
            m_lr = re.search(r"optimizer:.*?\blr: ([0-9.eE+-]+)", text)
            m_b = re.search(r"^  batch_size: (\d+)", text, re.M)
            if m_lr:
                recipe = f"AdamW lr {float(m_lr.group(1)):g} with warm-up and cosine decay"
            if m_b:
                batch = m_b.group(1)
        self.w(f"`rat tasks mqar --vocab {vocab}` ({s.get('train')} training, {s.get('test')} "
               f"test examples per point, {'non-query positions 0 (--zero-fill)' if fill == 'zero' else 'random ids at non-query positions'}); "
               f"every family: 2 blocks, d_model 128, d_head 32 (configs/study/mqar-*.yaml), "
               f"{s.get('steps')} steps of {batch} examples, {recipe}, "
               "loss on the queried values only (sft_ordered). Accuracy is the fraction of "
               f"queried values predicted exactly (`rat eval --task mqar`); chance is "
               f"{self.chance:.4f} (1 of {vocab // 2} value ids), and a model that has only "
               "learnt which values the example contains, without binding them to their keys, "
               "scores 1/K (" + ", ".join(f"K={k}: {1 / k:.3f}" for k, _ in points) + ").")
        self.w()
        self.w("| family | " + " | ".join(f"K={k}, T={t}" for k, t in points) + " | mean |")
        self.w("|---|" + "---:|" * (len(points) + 1))
        for fam, label in FAMILIES:
            vals = [acc.get((fam, k, t)) for k, t in points]
            got = [v for v in vals if v is not None]
            mean = sum(got) / len(got) if got and len(got) == len(vals) else None
            self.w(f"| {label} | " + " | ".join(fmt(v, 3) for v in vals) + f" | {fmt(mean, 3)} |")
        self.w()
        self.mqar_plot()

    def mqar_plot(self):
        if not self.points or not any(v is not None for v in self.b.values()):
            return
        os.makedirs(os.path.join(self.out, "fig"), exist_ok=True)
        dat = os.path.join(self.out, "fig", "mqar.dat")
        png = os.path.join(self.out, "fig", "mqar.png")
        with open(dat, "w") as f:
            for fam, label in FAMILIES:
                f.write(f'"{label}"\n')
                for i, (k, t) in enumerate(self.points):
                    v = self.b.get((fam, k, t))
                    if v is not None:
                        f.write(f"{i} {v}\n")
                f.write("\n\n")
        xt = ", ".join(f'"K={k} T={t}" {i}' for i, (k, t) in enumerate(self.points))
        script = (f'set terminal pngcairo size 900,560\nset output "{png}"\n'
                  f'set title "MQAR accuracy (same budget per point)"\nset ylabel "accuracy"\n'
                  f"set yrange [0:1.05]\nset xrange [-0.3:{len(self.points) - 0.7}]\n"
                  f"set xtics ({xt})\nset key outside right\nset grid\n"
                  f'plot for [i=0:{len(FAMILIES) - 1}] "{dat}" index i using 1:2 '
                  "with linespoints lw 2 pt 7 title columnheader(1)\n")
        if gnuplot(script):
            self.figure(png, "mqar.png", "MQAR accuracy per family and point")

    # ---- part c -------------------------------------------------------------------
    def niah_scores(self, fam, kind):
        """Mean and per-length scores: from the predictions (joined with the cases by line
        order when they do not carry length) or else from the eval JSON."""
        ev = read_json(os.path.join(self.out, "c", fam, f"{kind}.json"))
        cases = []
        try:
            with open(os.path.join(self.out, "c", "data", f"{kind}.jsonl")) as f:
                cases = [json.loads(l) for l in f if l.strip()]
        except (OSError, ValueError):
            cases = []
        per = {}
        try:
            with open(os.path.join(self.out, "c", fam, f"{kind}.preds.jsonl")) as f:
                preds = [json.loads(l) for l in f if l.strip()]
        except (OSError, ValueError):
            preds = []
        for i, p in enumerate(preds):
            sc = num(p.get("score"))
            L = p.get("length", cases[i].get("length") if i < len(cases) else None)
            if sc is not None and L is not None:
                per.setdefault(int(L), []).append(sc)
        mean = num(pick(ev, "score", "mean_score", "mean", "acc", "accuracy"))
        if per:
            perlen = {L: sum(v) / len(v) for L, v in per.items()}
            if mean is None:
                allv = [x for v in per.values() for x in v]
                mean = sum(allv) / len(allv)
        else:
            perlen = {}
            raw = pick(ev, "by_length", "per_length", "lengths")
            if isinstance(raw, dict):
                perlen = {int(k): num(v if not isinstance(v, dict) else pick(v, "score", "mean"))
                          for k, v in raw.items() if str(k).isdigit()}
            elif isinstance(raw, list):
                for r in raw:
                    if isinstance(r, dict) and "length" in r:
                        perlen[int(r["length"])] = num(pick(r, "score", "mean"))
        return ev, mean, perlen

    def part_c(self):
        s = self.study.get("niah", {})
        lengths = s.get("lengths", [])
        self.c = {}
        self.w("## c) Passkey and needle-in-a-haystack")
        self.w()
        self.w("The a) models (trained on 256-token windows) on `rat tasks niah` cases at lengths "
               f"{', '.join(map(str, lengths))} tokens, needle depths {s.get('depths')}, "
               f"{s.get('samples')} case(s) per (length, depth): `passkey` (the classic prompt, "
               "a 5-digit key in repeated filler) and `single` (RULER's single needle, a number "
               "for a key, in an essay haystack cut from the validation text). The score is "
               "RULER's: the fraction of expected values found in the greedy output.")
        self.w()
        for kind in ("passkey", "single"):
            self.w(f"**{kind}** (mean score per length; * marks lengths beyond training)")
            self.w()
            self.w("| family | " + " | ".join(f"{L}{'*' if L > 256 else ''}" for L in lengths)
                   + " | all |")
            self.w("|---|" + "---:|" * (len(lengths) + 1))
            for fam, label in FAMILIES:
                ev, mean, perlen = self.niah_scores(fam, kind)
                if ev is None and os.path.isfile(os.path.join(self.out, "a", fam, "train.json")):
                    self.miss(f"niah-{kind}-{fam}", f"c) rat eval --task niah {kind}, {fam}")
                self.c[(fam, kind)] = (mean, perlen)
                self.w(f"| {label} | " + " | ".join(fmt(perlen.get(L), 2) for L in lengths)
                       + f" | {fmt(mean, 2)} |")
            self.w()
        for kind in ("passkey", "single"):
            for fam, label in FAMILIES:
                self.figure(os.path.join(self.out, "c", fam, f"{kind}.png"),
                            f"niah_{kind}_{fam}.png", f"{kind}: {label}, depth x length")

    # ---- against the paper ----------------------------------------------------------
    def against(self):
        self.w("## Against the paper")
        self.w()
        self.w("The paper (Wei et al., TPAMI 2025) reports, at 1.3B parameters and 100B+ tokens: "
               "RAT's perplexity close to attention's; the RNN far behind on retrieval tasks; the "
               "RAT + local attention hybrid the best of the family. What this study measured, "
               "at about 4M parameters and one seed (differences of a few percent are within "
               "what another seed could change):")
        self.w()
        a = self.a
        att, rat, rnn = a["attention"]["ppl"], a["rat"]["ppl"], a["rnn"]["ppl"]
        if att and rat:
            gap = rat / att - 1
            word = "close to" if abs(gap) <= CLOSE else ("above" if gap > 0 else "below")
            line = (f"- Perplexity: RAT {rat:.2f} vs attention {att:.2f} "
                    f"({100 * gap:+.1f}%; {word} attention"
                    + (f" by the {100 * CLOSE:.0f}% yardstick used here" if word == "close to" else "")
                    + ")")
            if rnn:
                line += f"; RNN {rnn:.2f} ({100 * (rnn / att - 1):+.1f}% vs attention)"
                if abs(gap) < abs(rnn / att - 1):
                    line += ", so RAT is nearer to attention than the RNN is"
                else:
                    line += ", so RAT is not nearer to attention than the RNN is"
            self.w(line + ".")
        else:
            self.w("- Perplexity: not measured (a) missing).")
        b = self.b
        means = {}
        for fam, _ in FAMILIES:
            v = [b.get((fam, k, t)) for k, t in self.points]
            if v and all(x is not None for x in v):
                means[fam] = sum(v) / len(v)
        if "rnn" in means and len(means) >= 2:
            others = {f: m for f, m in means.items() if f != "rnn"}
            best_f = max(others, key=others.get)
            lead = others[best_f] - means["rnn"]
            text = (f"- MQAR: mean accuracy RNN {means['rnn']:.3f}, "
                    + ", ".join(f"{NAME[f]} {m:.3f}" for f, m in others.items()) + ". ")
            bag = sum(1 / k for k, _ in self.points) / len(self.points)
            if max(means.values()) < max(0.5, 1.5 * bag):
                text += ("No family gets far beyond guessing among the example's values (mean "
                         f"1/K = {bag:.3f}) within this budget, so the MQAR part is too short to "
                         "test the claim.")
            elif lead >= 0.2:
                text += (f"The RNN is behind the best ({NAME[best_f]}) by {lead:.3f}: "
                         "consistent with the paper's 'RNN far behind on retrieval'.")
            elif lead > 0:
                text += (f"The RNN is behind the best ({NAME[best_f]}) by only {lead:.3f}, "
                         "which does not show it far behind.")
            else:
                text += "The RNN is not behind here."
            if "rat" in means and "attention" in means:
                text += (f" RAT {'matches or beats' if means['rat'] >= means['attention'] else 'trails'} "
                         f"attention on MQAR ({means['rat']:.3f} vs {means['attention']:.3f}).")
            self.w(text)
        else:
            self.w("- MQAR: not measured for enough families to compare.")
        niah = {}
        for fam, _ in FAMILIES:
            ms = [self.c.get((fam, k), (None, {}))[0] for k in ("passkey", "single")]
            if all(m is not None for m in ms):
                niah[fam] = sum(ms) / len(ms)
        if niah:
            text = ("- Passkey / needle: mean score "
                    + ", ".join(f"{NAME[f]} {m:.2f}" for f, m in niah.items()) + ".")
            if max(niah.values()) <= 0.05:
                text += (" Every family is near zero: models this small and this briefly trained "
                         "do not retrieve, so this part cannot rank the families.")
            self.w(text)
        hyb = "rat_localattention_interleave"
        verdicts = []
        ppl = {f: r["ppl"] for f, r in a.items() if r["ppl"]}
        def verdict(scores, lower_better, best_word, what, digits):
            if hyb not in scores or len(scores) < 2:
                return
            others = {f: v for f, v in scores.items() if f != hyb}
            best = (min if lower_better else max)(others, key=others.get)
            h, o = scores[hyb], others[best]
            if h == o:
                verdicts.append(f"{best_word} {what}, tied with {NAME[best]}")
            elif (h < o) == lower_better:
                verdicts.append(f"{best_word} {what}")
            else:
                verdicts.append(f"{what} {h:.{digits}f} against the best {o:.{digits}f} ({NAME[best]})")

        verdict(ppl, True, "lowest", "perplexity", 2)
        verdict(means, False, "highest", "mean MQAR accuracy", 3)
        if niah and max(niah.values()) > 0.05:  # all near zero: nothing to rank
            verdict(niah, False, "highest", "retrieval score", 2)
        if verdicts:
            allbest = all(v.startswith(("lowest", "highest")) for v in verdicts)
            tied = any("tied" in v for v in verdicts)
            if not allbest:
                end = "It is not the best on every measure here."
            elif tied:
                end = "It is the best (or tied for best) on every measure here, as the paper reports."
            else:
                end = "It is the best on every measure here, as the paper reports."
            self.w(f"- The RAT + local attention hybrid: {'; '.join(verdicts)}. {end}")
        self.w()

    # ---- commands, machine, times ---------------------------------------------------
    def meta(self):
        st = self.study
        self.w("## How this was produced")
        self.w()
        self.w(f"    {st.get('command', 'scripts/accuracy_study.sh')}"
               f"   # output in {os.path.relpath(st.get('out', self.out))}")
        self.w()
        self.w(f"Date {st.get('date', DASH)}, commit {st.get('git', DASH)}; machine: "
               f"{st.get('cpu', DASH)}, {st.get('nproc', DASH)} CPUs. Trainings ran {st.get('jobs', DASH)} at a time with OMP_NUM_THREADS="
               f"{st.get('threads', DASH)} each.")
        self.w()
        times = []
        tdir = os.path.join(self.out, "times")
        for n in sorted(os.listdir(tdir)) if os.path.isdir(tdir) else []:
            t = read_json(os.path.join(tdir, n))
            if t:
                times.append(t)
        jobs = st.get("jobs") or 1
        self.w(f"Time per part: the sum of its steps' wall times; {jobs} ran at a time, so a "
               f"part's share of the study's wall time is about the sum / {jobs}.")
        self.w()
        self.w("| part | sum of steps (min) | ~ wall (min) | steps |")
        self.w("|---|---:|---:|---:|")
        labels = {"a": "a) language models (train + eval)", "b": "b) MQAR (data, train, eval)",
                  "c": "c) passkey / niah (data, eval)"}
        for part in ("a", "b", "c"):
            ts = [t for t in times if t.get("part") == part]
            if ts:
                tot = sum(t["seconds"] for t in ts)
                self.w(f"| {labels[part]} | {tot / 60:.1f} | {tot / 60 / jobs:.1f} | {len(ts)} |")
        inv = st.get("invocations", [])
        if inv:
            self.w(f"| whole study (wall, last invocation) | | {inv[-1]['seconds'] / 60:.1f} | |")
            if len(inv) > 1:  # resumed: earlier invocations did part of the work
                self.w(f"| whole study (wall, all {len(inv)} invocations) | | "
                       f"{sum(i['seconds'] for i in inv) / 60:.1f} | |")
        self.w()
        self.w("The commands, one of each kind (the rat family; every step's command is in "
               "OUT/times/*.json):")
        self.w()
        want = ["lm-train-rat", "lm-evaldata-rat", "lm-evaltext-rat", "niah-data-passkey",
                "niah-data-single", "niah-passkey-rat"]
        pts = st.get("mqar", {}).get("points", [])
        if pts:
            k, t = pts[0]
            want += [f"mqar-data-k{k}_t{t}", f"mqar-train-k{k}_t{t}-rat", f"mqar-eval-k{k}_t{t}-rat"]
        root = os.getcwd() + "/"
        for n in want:
            t = read_json(os.path.join(tdir, n + ".json"))
            if t:
                cmd = " ".join(c if re.fullmatch(r"[\w./=:,+@-]+", c) else json.dumps(c)
                               for c in t.get("command", []) if c != "nice")
                self.w("    " + cmd.replace(root, ""))
        self.w()

    def write(self):
        st = self.study
        body = self.lines
        self.lines = []
        self.w("# Accuracy study: attention, RAT, RNN and the hybrids")
        self.w()
        self.w("Written by `scripts/accuracy_report.py` from a run of `scripts/accuracy_study.sh`"
               + (" **--quick** (smoke-test budgets: the numbers mean nothing)" if st.get("quick") else "")
               + ". Issue 11, item 7.")
        self.w()
        if self.missing:
            self.w("**Incomplete**: these parts are missing (shown as " + DASH + "):")
            self.w()
            for m in self.missing:
                self.w(f"- {m}")
            self.w()
        text = "\n".join(self.lines + body) + "\n"
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="the study's output directory (runs/study)")
    ap.add_argument("--out", default="docs/accuracy.md", help="report to write")
    args = ap.parse_args()
    if not os.path.isdir(args.out_dir):
        sys.exit(f"accuracy_report: {args.out_dir}: no such directory")
    r = Report(os.path.abspath(args.out_dir), args.out)
    r.part_a()
    r.part_b()
    r.part_c()
    r.against()
    r.meta()
    r.write()
    print(f"accuracy_report: wrote {args.out}" + (f" ({len(r.missing)} parts missing)" if r.missing else ""))


if __name__ == "__main__":
    main()
