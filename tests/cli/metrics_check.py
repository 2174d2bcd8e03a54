"""`rat metrics` against the metric definitions computed with Python's own
string handling (str.lower, re's Unicode \\b, string.punctuation, str.split),
which is what LongBench's qa_f1 and rouge-score's tokenizer run on. The C++
side re-implements those classes (glibc's C.UTF-8 tables); this checks that
they agree on a set of tricky lines, per line, to 1e-12.

usage: metrics_check.py RAT WORKDIR
"""
import collections
import json
import os
import re
import string
import subprocess
import sys


def normalize(s):
    s = s.lower()
    s = "".join(c for c in s if c not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def qa_f1(pred, ans):
    p, a = normalize(pred).split(), normalize(ans).split()
    same = sum((collections.Counter(p) & collections.Counter(a)).values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(a)
    return 2 * prec * rec / (prec + rec)


def exact_match(pred, ans):
    return float(normalize(pred) == normalize(ans))


def rouge_tokens(s):
    return [t for t in re.split(r"\s+", re.sub(r"[^a-z0-9]+", " ", s.lower())) if re.match(r"^[a-z0-9]+$", t)]


def rouge_l(pred, ans):
    p, r = rouge_tokens(pred), rouge_tokens(ans)
    if not p or not r:
        return 0.0
    t = [[0] * (len(p) + 1) for _ in range(len(r) + 1)]
    for i in range(1, len(r) + 1):
        for j in range(1, len(p) + 1):
            t[i][j] = t[i - 1][j - 1] + 1 if r[i - 1] == p[j - 1] else max(t[i - 1][j], t[i][j - 1])
    lcs = t[-1][-1]
    if lcs == 0:
        return 0.0
    prec, rec = lcs / len(p), lcs / len(r)
    return 2 * prec * rec / (prec + rec)


def edit_sim(pred, ans):
    if not pred and not ans:
        return 1.0
    prev = list(range(len(ans) + 1))
    for i, c in enumerate(pred, 1):
        cur = [i]
        for j, d in enumerate(ans, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (c != d)))
        prev = cur
    return 1 - prev[-1] / max(len(pred), len(ans))


LINES = [
    ("The cat sat on the mat.", ["a cat on a mat", "the dog"]),
    ("", ["Paris"]),
    ("", [""]),
    ("?!...", ["..."]),
    ("Ünïcode CAFÉ au lait", ["ünïcode café", "cafe au lait"]),
    ("ΟΔΟΣ ΣΟΦΟΣ", ["οδος σοφος", "ΟΔΟΣ"]),
    ("İstanbul Kelvin \u212aelvin", ["istanbul kelvin", "i̇stanbul"]),
    ("éa b x –a y «the» a", ["éa b", "x – y «the»"]),
    ("x\u00a0y\u2003z\u3000w", ["x y z w"]),
    ("theater, an answer; an-swer", ["theater answer answer"]),
    ("日本語のテキスト", ["日本語", "テキスト"]),
    ("Don't stop-me now!", ["dont stop me now", "don t stop"]),
    ("paris paris paris", ["Paris, France", "paris"]),
    ("ǅemal ǈubica ß ŉ", ["ǆemal ǉubica ss"]),
    ("a1 b2 c3 ½ ² ٣", ["a1 c3", "½ ² ٣"]),
]


def main():
    rat, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "preds.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for pred, answers in LINES:
            f.write(json.dumps({"prediction": pred, "answers": answers}, ensure_ascii=False) + "\n")
    refs = {"qa_f1": qa_f1, "exact_match": exact_match, "rouge_l": rouge_l, "edit_sim": edit_sim}
    bad = 0
    for name, fn in refs.items():
        out = subprocess.run([rat, "metrics", "--predictions", path, "--metric", name, "--json"],
                             check=True, capture_output=True, text=True).stdout
        got = json.loads(out)
        want = [max(fn(p, a) for a in answers) for p, answers in LINES]
        assert got["n"] == len(LINES), got
        for i, (g, w) in enumerate(zip(got["scores"], want)):
            if abs(g - w) > 1e-12:
                bad += 1
                print(f"{name} line {i + 1} {LINES[i]!r}: rat {g!r}, python {w!r}")
        mean = sum(want) / len(want)
        if abs(got["score"] - mean) > 1e-12:
            bad += 1
            print(f"{name} mean: rat {got['score']!r}, python {mean!r}")
        text = subprocess.run([rat, "metrics", "--predictions", path, "--metric", name],
                              check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        if not re.fullmatch(rf"{name}=[0-9.]+ n={len(LINES)}", text):
            bad += 1
            print(f"{name}: last line {text!r}")
    # A malformed line: non-zero exit, FILE:LINE in the one-line message.
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"prediction": "x"}\n')
    r = subprocess.run([rat, "metrics", "--predictions", path, "--metric", "qa_f1"], capture_output=True, text=True)
    if r.returncode == 0 or f"{path}:{len(LINES) + 1}:" not in r.stderr:
        bad += 1
        print("malformed line not reported:", r.returncode, r.stderr)
    print("ok" if bad == 0 else f"{bad} mismatches")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
