"""scripts/accuracy_report.py: the report's comparisons follow the numbers it is given.

    python3 -m unittest tests/python/test_accuracy_report.py     (stdlib only, ~1 s)

Each case writes a small fake study directory (the layout scripts/accuracy_study.sh
produces) with hand-chosen numbers and checks the sentences of "Against the paper".
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "accuracy_report.py")
FAMS = ["attention", "rat", "rnn", "rat_localattention_interleave",
        "attention_localattention_interleave"]
POINTS = [(4, 64), (8, 64)]


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def make_study(d, ppl, mqar, niah, skip=()):
    """ppl/niah: {family: value}; mqar: {family: accuracy at every point}."""
    write(os.path.join(d, "study.json"), {
        "quick": False, "out": d, "jobs": 2, "threads": 1,
        "lm": {"steps": 600, "vocab": 4096, "val_samples": -1, "val_text_bytes_limit": -1},
        "mqar": {"steps": 1000, "points": [list(p) for p in POINTS], "vocab": 512,
                 "train": 100, "test": 10, "fill": "zero"},
        "niah": {"lengths": [256, 512], "depths": "0,1", "samples": 1},
        "invocations": [{"start": 0, "end": 60, "seconds": 60}]})
    cases = [{"length": L, "depth": dp} for L in (256, 512) for dp in (0, 1)]
    write(os.path.join(d, "c", "data", "passkey.jsonl"), "".join(json.dumps(c) + "\n" for c in cases))
    write(os.path.join(d, "c", "data", "single.jsonl"), "".join(json.dumps(c) + "\n" for c in cases))
    for f in FAMS:
        write(os.path.join(d, "a", f, "train.json"), '{"step": 1}\n{"loss": 3.0}\n')
        if f not in skip:
            write(os.path.join(d, "a", f, "eval_data.json"), {"loss": 1.0, "ppl": ppl[f], "tokens": 10})
        write(os.path.join(d, "a", f, "eval_text.json"), "progress line\n" + json.dumps(
            {"ppl": ppl[f], "bits_per_byte": 1.5, "tokens": 10}))
        for kind in ("passkey", "single"):
            write(os.path.join(d, "c", f, kind + ".json"), {"score": niah[f]})
            write(os.path.join(d, "c", f, kind + ".preds.jsonl"),
                  "".join(json.dumps({"score": niah[f]}) + "\n" for _ in cases))
        for k, t in POINTS:
            write(os.path.join(d, "b", f"k{k}_t{t}", f, "train.json"), '{"loss": 1}')
            write(os.path.join(d, "b", f"k{k}_t{t}", f, "eval.json"), {"acc": mqar[f]})


def report(d):
    out = os.path.join(d, "report", "accuracy.md")
    subprocess.run([sys.executable, SCRIPT, d, "--out", out], check=True, capture_output=True)
    with open(out) as f:
        return f.read()


class AccuracyReportTest(unittest.TestCase):
    def test_paper_like_numbers(self):
        with tempfile.TemporaryDirectory() as d:
            make_study(d,
                       ppl={"attention": 20.0, "rat": 20.6, "rnn": 26.0,
                            "rat_localattention_interleave": 19.5,
                            "attention_localattention_interleave": 20.2},
                       mqar={"attention": 0.95, "rat": 0.90, "rnn": 0.20,
                             "rat_localattention_interleave": 0.97,
                             "attention_localattention_interleave": 0.93},
                       niah={"attention": 0.5, "rat": 0.4, "rnn": 0.1,
                             "rat_localattention_interleave": 0.6,
                             "attention_localattention_interleave": 0.5})
            r = report(d)
            self.assertIn("RAT 20.60 vs attention 20.00 (+3.0%; close to attention", r)
            self.assertIn("so RAT is nearer to attention than the RNN is", r)
            self.assertIn("consistent with the paper's 'RNN far behind on retrieval'", r)
            self.assertIn("lowest perplexity; highest mean MQAR accuracy; highest retrieval score",
                          r)
            self.assertIn("It is the best on every measure here", r)
            self.assertNotIn("Incomplete", r)
            self.assertIn("| RAT + local attn | 0.970 | 0.970 | 0.970 |", r)

    def test_numbers_against_the_paper(self):
        with tempfile.TemporaryDirectory() as d:
            make_study(d,
                       ppl={"attention": 20.0, "rat": 24.0, "rnn": 22.0,
                            "rat_localattention_interleave": 23.0,
                            "attention_localattention_interleave": 21.0},
                       mqar={"attention": 0.10, "rat": 0.05, "rnn": 0.08,
                             "rat_localattention_interleave": 0.06,
                             "attention_localattention_interleave": 0.09},
                       niah={f: 0.0 for f in FAMS})
            r = report(d)
            self.assertIn("(+20.0%; above attention)", r)
            self.assertIn("so RAT is not nearer to attention than the RNN is", r)
            self.assertIn("too short to test the claim", r)
            self.assertIn("Every family is near zero", r)
            self.assertIn("It is not the best on every measure here", r)
            self.assertNotIn("consistent with the paper", r)
            self.assertNotIn("retrieval score", r)  # all-zero retrieval is not ranked

    def test_missing_parts_are_named(self):
        with tempfile.TemporaryDirectory() as d:
            make_study(d, ppl={f: 20.0 for f in FAMS}, mqar={f: 0.5 for f in FAMS},
                       niah={f: 0.5 for f in FAMS}, skip=("rnn",))
            write(os.path.join(d, "failed", "lm-evaldata-rnn.txt"),
                  "lm-evaldata-rnn: exit 1: build/rat eval ...\n  log x.log: error: boom\n")
            r = report(d)
            self.assertIn("a) rat eval --data, rnn: failed (error: boom)", r)
            self.assertIn("| RNN | — | 3.000 | — | — |", r)


if __name__ == "__main__":
    unittest.main()
