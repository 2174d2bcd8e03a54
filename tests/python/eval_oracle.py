#!/usr/bin/python3
"""Float64 oracle for `rat eval --text` (rolling-window perplexity) and `rat eval --task mqar`.

    eval_oracle.py rolling-cases --out DIR [--only NAME ...]
    eval_oracle.py rolling --model MODEL_DIR --ids IDS.json --out OUT.json
    eval_oracle.py mqar --model MODEL_DIR --prefix PREFIX --out-prefix PREFIX2 --out OUT.json

rolling-cases: a golden model (make_case.py) for every cases/*.yaml in DIR/<name>/model, and
DIR/<name>/rolling.json with runs of the rolling evaluation of random ids: stride < T (not a divisor
of the text length, so the last window is moved back), stride == T, and a text shorter than one
window. Each run: ids, eod, bytes, T, S and the oracle's nll, per-token nll, ppl, bpb, windows and
standard errors.

rolling: the same for ids given as {"ids": [...], "eod": id, "bytes": n, "runs": [[T, S], ...]}.

mqar: reads a task written by `rat tasks mqar` (PREFIX.json, PREFIX.test.{inputs,labels}.bin), runs
the model over every test example, and writes PREFIX2.* : the same task with every other answer
label replaced by the oracle's argmax at that position (so about half the answers are right and the
count is not trivially 0), plus OUT.json with the oracle's counts on PREFIX2 and, per answer, the
top-2 logit margin (a float32 engine may pick the other id only at a near-tie).

The windowing here is written from the description of lm-eval's loglikelihood_rolling (predicted
spans, each scored with the T stream tokens right before its last token), not from the C++ code.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_all  # noqa: E402
import make_case  # noqa: E402
import reference as R  # noqa: E402
import st  # noqa: E402

IGNORED = -100


def load_model(model_dir):
    cfg = R.load_config(os.path.join(model_dir, "config.yaml"))
    model = R.LM(cfg, torch.float64)
    model.load_weights(st.load_file(os.path.join(model_dir, "model.safetensors"), out_dtype=torch.float64))
    model.eval()
    return cfg, model


def rolling(model, toks, eod, nbytes, T, S):
    """Every token of toks scored once. The stream is [eod] + toks (eod first, as lm-eval's EOT),
    so stream[i] is the token right before toks[i]. The first span predicts toks[0:T]; each next
    span predicts the following S tokens (the last one fewer); a span ending at toks[b-1] reads
    the min(T, b) stream tokens stream[b-L:b]."""
    n = len(toks)
    assert n >= 1 and 1 <= S <= T
    stream = [eod] + list(toks)
    spans, done = [], 0
    while done < n:
        b = min(n, T if done == 0 else done + S)
        spans.append((done, b))
        done = b
    nll = [None] * n
    with torch.no_grad():
        for a, b in spans:
            L = min(T, b)
            inp = torch.tensor([stream[b - L:b]], dtype=torch.long)
            logp = torch.log_softmax(model(inp)[0], dim=-1)
            for i in range(a, b):
                q = i - (b - L)  # the window position whose input is stream[i]
                assert nll[i] is None and q >= 0
                assert b - L == 0 or q >= T - S  # after the first span: >= T - S tokens of context
                nll[i] = -float(logp[q, toks[i]])
    assert all(v is not None for v in nll)
    total = math.fsum(nll)
    mean = total / n
    se = None  # (JSON null) no spread from one token
    if n >= 2:
        var = math.fsum((v - mean) ** 2 for v in nll) / (n - 1)
        se = math.sqrt(var / n)
    ln2 = math.log(2.0)
    return {"T": T, "S": S, "nll": total, "token_nll": nll, "tokens": n, "bytes": nbytes,
            "windows": len(spans), "ppl": math.exp(mean), "bpb": total / (ln2 * nbytes),
            "mean_nll_stderr": se, "ppl_stderr": None if se is None else math.exp(mean) * se,
            "bpb_stderr": None if se is None else se * n / (ln2 * nbytes)}


def rolling_cases(out, only):
    for name, (cfg_path, args) in make_all.all_cases().items():
        if args or (only and name not in only):
            continue  # one case per config: every mixer and hybrid, f32 weights
        d = os.path.join(out, name)
        make_case.main(["--config", cfg_path, "--out", d, "--batch", "1"])
        cfg, model = load_model(os.path.join(d, "model"))
        T, V = int(cfg.seq_len), cfg.vocab_size
        eod = int(cfg.ignore_input_index) if cfg.ignore_input_index is not None else V - 1
        gen = torch.Generator().manual_seed(7)
        n = 3 * T + 5
        toks = [int(t) for t in torch.randint(0, V, (n,), generator=gen)]
        S = max(1, T // 3) if (n - T) % max(1, T // 3) else max(1, T // 3) + 1
        runs = [rolling(model, toks, eod, 3 * n + 11, T, S),
                rolling(model, toks, eod, 3 * n + 11, T, T),
                rolling(model, toks[:max(1, T - 3)], eod, 2 * T + 1, T, max(1, T // 2)),
                rolling(model, toks[:1], eod, 1, T, 1)]
        for r, ids in zip(runs, [toks, toks, toks[:max(1, T - 3)], toks[:1]]):
            r["ids"] = ids
            r["eod"] = eod
        with open(os.path.join(d, "rolling.json"), "w") as f:
            json.dump({"runs": runs}, f)


def read_ids(path, num_bytes, count):
    a = np.fromfile(path, dtype="<u2" if num_bytes == 2 else "<u4").astype(np.int64)
    assert a.size == count, (path, a.size, count)
    pattern = 0xFF9C if num_bytes == 2 else 0xFFFFFF9C
    a[a == pattern] = IGNORED
    return a


def mqar(model_dir, prefix, out_prefix, out):
    cfg, model = load_model(model_dir)
    rep = json.load(open(prefix + ".json"))
    T, E, nb = rep["seq_len"], rep["test"]["examples"], rep["num_bytes"]
    x = read_ids(prefix + ".test.inputs.bin", nb, E * T).reshape(E, T)
    y = read_ids(prefix + ".test.labels.bin", nb, E * T).reshape(E, T)
    with torch.no_grad():
        logits = model(torch.tensor(x, dtype=torch.long))  # [E, T, V] float64
        logp = torch.log_softmax(logits, dim=-1)
    best = torch.argmax(logits, dim=-1)  # the first of equal maxima
    top2 = torch.topk(logits, 2, dim=-1).values
    y2 = y.copy()
    answers, k = [], 0
    for e in range(E):
        for t in range(T):
            if y[e, t] == IGNORED:
                continue
            if k % 2 == 0:
                y2[e, t] = int(best[e, t])
            k += 1
    correct = examples_correct = 0
    nll = 0.0
    for e in range(E):
        right = asked = 0
        for t in range(T):
            if y2[e, t] == IGNORED:
                continue
            ok = int(best[e, t]) == int(y2[e, t])
            asked += 1
            right += ok
            nll -= float(logp[e, t, int(y2[e, t])])
            answers.append({"example": e, "t": t, "label": int(y2[e, t]), "argmax": int(best[e, t]),
                            "margin": float(top2[e, t, 0] - top2[e, t, 1]),
                            "max_abs_logit": float(logits[e, t].abs().max())})
        correct += right
        examples_correct += int(asked > 0 and right == asked)
    for suffix in [".test.inputs.bin", ".train.inputs.bin", ".train.labels.bin"]:
        with open(prefix + suffix, "rb") as f, open(out_prefix + suffix, "wb") as g:
            g.write(f.read())
    y2.astype("<u2" if nb == 2 else "<u4").tofile(out_prefix + ".test.labels.bin")
    with open(out_prefix + ".json", "w") as f:
        json.dump(rep, f)
    with open(out, "w") as f:
        json.dump({"answers": len(answers), "correct": correct, "examples": E,
                   "examples_correct": examples_correct, "answer_nll": nll,
                   "acc": correct / len(answers), "per_answer": answers}, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("rolling-cases")
    a.add_argument("--out", required=True)
    a.add_argument("--only", nargs="*")
    b = sub.add_parser("rolling")
    b.add_argument("--model", required=True)
    b.add_argument("--ids", required=True)
    b.add_argument("--out", required=True)
    c = sub.add_parser("mqar")
    c.add_argument("--model", required=True)
    c.add_argument("--prefix", required=True)
    c.add_argument("--out-prefix", required=True)
    c.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.cmd == "rolling-cases":
        rolling_cases(args.out, args.only)
    elif args.cmd == "rolling":
        _, model = load_model(args.model)
        spec = json.load(open(args.ids))
        runs = [rolling(model, spec["ids"], spec["eod"], spec["bytes"], T, S) for T, S in spec["runs"]]
        with open(args.out, "w") as f:
            json.dump({"runs": runs}, f)
    else:
        mqar(args.model, args.prefix, args.out_prefix, args.out)


if __name__ == "__main__":
    main()
