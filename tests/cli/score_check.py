"""`rat score` and `rat eval --task mc` against the float64 PyTorch oracle
(tests/python/score_oracle.py on reference.py), on the golden model of every case in
tests/python/cases (every mixer, the hybrids, the identity layers).

Each case gets requests that exercise what the engine shares and cuts:
  * one context shared by several continuations (one prefill, decoded from copies of its slot),
    also repeated later in the file, not adjacent;
  * contexts ending inside, and exactly at the end of, RAT chunks (L, 2L + 1, ...), local windows;
  * requests longer than T, cut from the left (two of them differ only in the part cut off, so
    they share one prefill), a continuation of exactly T tokens, context + continuation = T + 1;
  * the oracle's own greedy continuation (is_greedy must be true);
  * an empty context (lm-eval's end-of-text token: data.ignore_input_index) where the case has one.
Runs with --batch-size 2 (rows wait for free slots) and 5 with --ctx T - 3.

Tolerance: 1e-5 relative on each log-likelihood, plus 1e-6 absolute. The engine computes in
float32; its logits differ from the float64 oracle by a few float32 ulps of O(1) activations
across 2-3 layers (the golden logit checks see max errors ~1e-6 relative), and a log-softmax
carries that error unamplified, so a request of k tokens is off by ~k * 1e-6 while its
log-likelihood is ~k * log(V) ~ 4.6 k in size: ~2e-7 relative. The absolute floor only matters
for a log-likelihood near 0, where a relative bound would demand more than float32 logits hold.
A wrong token, a state taken one token late or a context cut at the wrong place changes a
log-likelihood by O(0.1..1), far above this. is_greedy is compared where the oracle's smallest
top-2 logit margin exceeds 1e-4 (a near-tie may go either way in float32).

usage: score_check.py RAT WORKDIR
"""
import json
import os
import random
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import make_case  # noqa: E402
import reference as R  # noqa: E402
import score_oracle as O  # noqa: E402
import st  # noqa: E402
import torch  # noqa: E402

REL, ABS, MARGIN = 1e-5, 1e-6, 1e-4


def requests_for(cfg, model, T, rng):
    V = cfg.vocab_size
    L = max([c.chunk_size or 0 for c in (cfg.seq_cell, cfg.seq_cell1) if c] + [4])
    W = max([c.window_size or 0 for c in (cfg.seq_cell, cfg.seq_cell1) if c] + [3])

    def ids(n):
        return [rng.randrange(V) for _ in range(n)]

    reqs = []
    shared = ids(min(2 * L + 1, T - 6))
    for n in (1, 3, 5):
        reqs.append((shared, ids(n)))
    for n in sorted({L, 2 * L, L - 1, W + 1, T // 2, T - 2}):
        if 1 <= n <= T - 2:
            reqs.append((ids(n), ids(2)))
    reqs.append((ids(1), ids(4)))
    long_tail = ids(T - 2)
    reqs.append((ids(7) + long_tail, ids(3)))  # cut from the left ...
    reqs.append((ids(9) + long_tail, reqs[-1][1]))  # ... same cut context
    reqs.append((ids(T + 4), ids(5)))
    reqs.append((ids(3), ids(T)))  # the continuation fills the context
    reqs.append((ids(T - 2), ids(3)))  # context + continuation = T + 1: nothing cut
    ctx = ids(min(L + 2, T - 4))
    greedy, _ = R.greedy_generate(model, ctx, 3)
    reqs.append((ctx, greedy))
    reqs.append((shared, ids(2)))  # the shared context again, later in the file
    if cfg.ignore_input_index is not None:
        reqs.append(([], ids(2)))
    return reqs


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("FAIL %s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p.stdout


def check_case(rat, work, name, yaml_path, rng):
    out = os.path.join(work, name)
    make_case.main(["--config", yaml_path, "--out", out, "--greedy-steps", "1"])
    mdir = os.path.join(out, "model")
    cfg = R.load_config(os.path.join(mdir, "config.yaml"))
    model = R.LM(cfg, torch.float64)
    model.load_weights(st.load_file(os.path.join(mdir, "model.safetensors"), out_dtype=torch.float64))
    T = int(cfg.seq_len)
    reqs = requests_for(cfg, model, T, rng)
    worst, greedy_seen = 0.0, 0
    for batch, ctx in ((2, T), (5, T - 3)):
        run_reqs = [(c, k) for c, k in reqs if len(k) <= ctx]
        path = os.path.join(out, "requests_%d.jsonl" % ctx)
        with open(path, "w") as f:
            for c, k in run_reqs:
                f.write(json.dumps({"context_ids": c, "continuation_ids": k}) + "\n")
        got = [json.loads(l) for l in run([rat, "score", "--model", mdir, "--requests", path,
                                           "--batch-size", str(batch), "--ctx", str(ctx)]).splitlines()]
        assert len(got) == len(run_reqs), (name, len(got), len(run_reqs))
        for i, ((c, k), g) in enumerate(zip(run_reqs, got)):
            c = c or [int(cfg.ignore_input_index)]
            ll, greedy, margin = O.score(model, c, k, ctx)
            err = abs(g["loglikelihood"] - ll)
            worst = max(worst, err / abs(ll))
            if not err <= REL * abs(ll) + ABS:
                raise SystemExit("FAIL %s request %d (batch %d, ctx %d): loglikelihood %.9g, oracle %.9g"
                                 % (name, i, batch, ctx, g["loglikelihood"], ll))
            if g["tokens"] != len(k):
                raise SystemExit("FAIL %s request %d: tokens %d, expected %d" % (name, i, g["tokens"], len(k)))
            if margin > MARGIN:
                if g["is_greedy"] != greedy:
                    raise SystemExit("FAIL %s request %d: is_greedy %s, oracle %s"
                                     % (name, i, g["is_greedy"], greedy))
                greedy_seen += greedy
    if greedy_seen == 0:
        raise SystemExit("FAIL %s: no greedy continuation was compared" % name)
    # The greedy request must have been judged greedy (its oracle margin is checked above).
    # Multiple choice: items over the same requests, acc / acc_norm / stderr from the oracle.
    mc = os.path.join(out, "mc.jsonl")
    items, want_acc, want_norm = [], [], []
    for i in range(0, len(reqs) - 3, 3):
        group = [r for r in reqs[i:i + 3] if r[0] and len(r[1]) <= T]
        if len(group) < 2:
            continue
        gold = i % len(group)
        if i % 2:
            line = {"contexts_ids": [r[0] for r in group], "continuation_ids": group[0][1], "gold": gold}
            pairs = [(r[0], group[0][1]) for r in group]
        else:
            line = {"context_ids": group[0][0], "choices_ids": [r[1] for r in group], "gold": gold}
            pairs = [(group[0][0], r[1]) for r in group]
        lls = [O.score(model, c, k, T)[0] for c, k in pairs]
        a, an = O.multiple_choice(lls, [len(k) for _, k in pairs], gold)
        want_acc.append(a), want_norm.append(an)
        items.append(line)
    with open(mc, "w") as f:
        for it in items:
            f.write(json.dumps(it) + "\n")
    j = json.loads(run([rat, "eval", "--model", mdir, "--task", "mc", mc, "--json",
                        "--batch-size", "3"]).splitlines()[-1])
    n = len(items)
    want = {"acc": sum(want_acc) / n, "acc_norm": sum(want_norm) / n, "n": n,
            "acc_stderr": O.mean_stderr(want_acc), "acc_norm_stderr": O.mean_stderr(want_norm)}
    for k, v in want.items():
        if abs(j[k] - v) > 1e-12:
            raise SystemExit("FAIL %s mc %s = %r, oracle %r" % (name, k, j[k], v))
    return worst, len(reqs)


TEXT_PAIRS = [  # (context, continuation) as a user writes them
    ("def add(a, b):\n    return", " a + b"),
    ("def add(a, b):\n    return", " a - b"),
    ("The quick brown fox ", "jumps over the lazy dog."),  # trailing space moves
    ("import numpy as\t \n", "np"),
    ("", "print('hello')"),  # empty context: the end-of-document id
    ("   ", "x = 1"),  # empty once its whitespace moved
]


def check_text(rat, work):
    """Text requests through the model's tokenizer.model: the ids rat scores must be lm-eval's
    _encode_pair of the texts. The reference ids come from `rat tokenize` of each string as its
    own document (sentencepiece itself, not the pair rule), the rule is applied here in Python."""
    out = os.path.join(work, "text")
    docs = os.path.join(out, "docs")
    os.makedirs(docs)
    mc_items = [("def add(a, b):\n    return", ["a + b", "a - b"], 1),
                ("The quick brown fox", ["jumps over the lazy dog.", "a"], 0)]
    pieces = []
    for c, k in TEXT_PAIRS + [(c, " " + x) for c, ch, _ in mc_items for x in ch]:
        n = len(c) - len(c.rstrip())
        c, k = c[:len(c) - n], c[len(c) - n:] + k
        pieces += [c + k, k] + ([c] if c else [])
    filler = "\n".join("x_%d = add(%d, %d)  # the quick brown fox" % (i, i, i * 7) for i in range(400))
    strings = pieces + [filler]
    for i, t in enumerate(strings):
        with open(os.path.join(docs, "d%03d.txt" % i), "w") as f:
            f.write(t)
    tok = os.path.join(out, "tok")
    run([rat, "tokenize", "--input", docs, "--out-dir", tok, "--vocab-size", "320", "--val-fraction", "0"])
    info = json.load(open(os.path.join(tok, "tokenize.json")))
    eos, V = info["eos_id"], info["vocab_size"]
    flat = [int(x) for x in memoryview(open(os.path.join(tok, "train.bin"), "rb").read()).cast("H")]
    enc, cur, i = {}, [], 0
    for x in flat:
        if x == eos:
            enc[strings[i]] = cur
            cur, i = [], i + 1
        else:
            cur.append(x)
    cfg = R.load_config(os.path.join(HERE, "..", "python", "cases", "hybrid_rat_local.yaml"))
    cfg.raw["data"]["vocab_size"] = cfg.raw["model"]["embedding"]["vocab_size"] = V
    cfg.raw["data"]["ignore_input_index"] = eos
    cfg.raw["data"]["seq_len"] = 40
    yaml_path = os.path.join(out, "cfg.yaml")
    R.save_config(R.ModelConfig(cfg.raw), yaml_path)
    make_case.main(["--config", yaml_path, "--out", os.path.join(out, "case"), "--greedy-steps", "1"])
    mdir = os.path.join(out, "case", "model")
    shutil.copy(os.path.join(tok, "tokenizer.model"), mdir)
    mcfg = R.load_config(os.path.join(mdir, "config.yaml"))
    model = R.LM(mcfg, torch.float64)
    model.load_weights(st.load_file(os.path.join(mdir, "model.safetensors"), out_dtype=torch.float64))

    def pair(c, k):  # lm-eval's _encode_pair, and [eot] for an empty context
        n = len(c) - len(c.rstrip())
        c, k = c[:len(c) - n], c[len(c) - n:] + k
        if not c:
            return [eos], enc[k]
        whole, ctx = enc[c + k], enc[c]
        return ctx, whole[len(ctx):]

    path = os.path.join(out, "requests.jsonl")
    with open(path, "w") as f:
        for c, k in TEXT_PAIRS:
            f.write(json.dumps({"context": c, "continuation": k}) + "\n")
    got = [json.loads(l) for l in run([rat, "score", "--model", mdir, "--requests", path]).splitlines()]
    lls = []
    for (c, k), g in zip(TEXT_PAIRS, got):
        ci, ki = pair(c, k)
        ll, _, _ = O.score(model, ci, ki, 40)
        lls.append(ll)
        if g["tokens"] != len(ki) or abs(g["loglikelihood"] - ll) > REL * abs(ll) + ABS:
            raise SystemExit("FAIL text request %r + %r: %r, oracle %.9g over %d tokens" % (c, k, g, ll, len(ki)))
    # Multiple choice over the same texts: choices with a delimiter, normalised by bytes.
    mc = os.path.join(out, "mc.jsonl")
    with open(mc, "w") as f:
        for c, ch, gold in mc_items:
            f.write(json.dumps({"context": c, "choices": ch, "gold": gold, "target_delimiter": " "}) + "\n")
    lines = run([rat, "eval", "--model", mdir, "--task", "mc", mc]).splitlines()
    want = []
    for c, ch, gold in mc_items:
        ll = [O.score(model, *pair(c, " " + x), 40)[0] for x in ch]
        want.append(O.multiple_choice(ll, [len(x.encode()) for x in ch], gold))
    expect = "acc=%.6f acc_norm=%.6f n=2" % (sum(a for a, _ in want) / 2, sum(b for _, b in want) / 2)
    if lines[-1] != expect:
        raise SystemExit("FAIL text mc: %r, oracle %r" % (lines[-1], expect))
    print("text requests (tokenizer.model, lm-eval pair encoding) and text mc equal the oracle")


def main():
    rat, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rng = random.Random(11)
    cases = sorted(f[:-5] for f in os.listdir(os.path.join(HERE, "..", "python", "cases")) if f.endswith(".yaml"))
    for name in cases:
        worst, n = check_case(rat, work, name, os.path.join(HERE, "..", "python", "cases", name + ".yaml"), rng)
        print("%-30s %2d requests x 2 runs + mc: max relative error %.2e" % (name, n, worst))
    check_text(rat, work)
    print("rat score and rat eval --task mc equal the float64 oracle on %d cases" % len(cases))


if __name__ == "__main__":
    main()
