"""`rat sft-data --task` against the authors' SFT layout, rebuilt here in Python
from the semantics of their tokenize/sft.py and tokenize/sft_util.py (not their
code): fields of each dataset's rows, PROMPT_DICT and str.format_map, the middle
cut of tokenize_answer_only, padding with eos (LLaMA's 2) and -100 labels, the
answer1-then-answer2 order of narrativeqa's train split, the test split's
prompt budget (prefill_max_len_dict) and gen.py's generation budget.

Token ids come from `rat tokenize --tokenizer` of each string as its own
document (sentencepiece itself, which is not under test); everything after that
is computed here.

usage: sft_data_check.py RAT REPO_ROOT WORKDIR [oracle|flow]
  oracle: the files of every task at several seq_len (no cut, cuts, exactly
          seq_len, one over, an answer longer than seq_len), custom templates,
          bad input (FILE:LINE and the field; nothing written)
  flow:   examples/sft -> rat train (sft_random train, sft_ordered validation
          records) -> rat eval --task gen on test.jsonl -> rat metrics
"""
import json
import os
import shutil
import subprocess
import sys

RAT, ROOT, WORK = (os.path.abspath(a) for a in sys.argv[1:4])
PART = sys.argv[4] if len(sys.argv) > 4 else "oracle"
EX = os.path.join(ROOT, "examples", "sft")
failures = []

# The authors' facts (tokenize/sft_util.py PROMPT_DICT, src/utils/gen.py max_new_tokens_dict,
# tokenize/sft.py prefill_max_len_dict).
PROMPT = {
    "narrativeqa_summary": "Story: {context}\n\nQuestion: {input}\n\nAnswer:",
    "narrativeqa_text": "Story: {context}\n\nQuestion: {input}\n\nAnswer:",
    "narrativeqa_full": "Story: {context}\n\nQuestion: {input}\n\nAnswer:",
    "wikisum": "Article: {context}\n\nQuestion: {input}\n\nAnswer:",
    "qmsum": "Transcript: {context}\n\nQuestion: {input}\n\nAnswer:",
}
NEW_TOKENS = {"narrativeqa_summary": 128, "narrativeqa_text": 128, "narrativeqa_full": 128,
              "qmsum": 384, "wikisum": 256}
PREFILL = {"narrativeqa_summary": {4096: 3840, 16384: 16256},
           "narrativeqa_text": {4096: 3840, 16384: 16256},
           "narrativeqa_full": {4096: 3840, 16384: 16256},
           "qmsum": {4096: 3712, 16384: 16000}, "wikisum": {4096: 3840, 16384: 16128}}
IGNORE = -100


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def rat(*args, ok=True):
    p = subprocess.run([RAT, *args], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=WORK)
    if ok and p.returncode != 0:
        sys.exit(f"rat {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_ids(path):
    raw = memoryview(open(path, "rb").read()).cast("H")
    return [IGNORE if x == 0xFF9C else int(x) for x in raw]


def dataset_dir(task):
    return "narrativeqa" if task.startswith("narrativeqa") else task


def example(task, row):
    """(context, input, [answers]) of a row, as sft_util.load_sft_dataset renames them."""
    if task.startswith("narrativeqa"):
        s, t = row["document"]["summary"]["text"], row["document"]["text"]
        ctx = {"narrativeqa_summary": s, "narrativeqa_text": t,
               "narrativeqa_full": s + "\n\n" + t}[task]
        return ctx, row["question"]["text"], [a["text"] for a in row["answers"]]
    if task == "qmsum":
        if "prompt" in row:  # pszemraj/qmsum-cleaned
            return row["input"], row["prompt"], [row["output"]]
        return row["context"], row["input"], row["answers"]  # THUDM/LongBench
    if task == "wikisum":
        return row["article"], row["title"], [row["summary"]]
    ans = row.get("answers", row.get("answer"))
    return row["context"], row["input"], ans if isinstance(ans, list) else [ans]


class Encoder:
    """Ids of strings from `rat tokenize --tokenizer` (each string one document)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.cache, self.n = tokenizer, {}, 0

    def encode_all(self, strings):
        todo = sorted({s for s in strings if s not in self.cache})
        if not todo:
            return
        self.n += 1
        d = os.path.join(WORK, f"enc{self.n}")
        os.makedirs(os.path.join(d, "docs"))
        for i, s in enumerate(todo):
            with open(os.path.join(d, "docs", f"d{i:05d}.txt"), "w") as f:
                f.write(s)
        rat("tokenize", "--input", os.path.join(d, "docs"), "--tokenizer", self.tokenizer,
            "--out-dir", os.path.join(d, "tok"), "--val-fraction", "0")
        eos = json.load(open(os.path.join(d, "tok", "tokenize.json")))["eos_id"]
        cur, i = [], 0
        for x in read_ids(os.path.join(d, "tok", "train.bin")):
            if x == eos:
                self.cache[todo[i]] = cur
                cur, i = [], i + 1
            else:
                cur.append(x)
        assert i == len(todo), (i, len(todo))

    def __call__(self, s):
        return self.cache[s]


def row(ids_prompt, ids_answer, max_length, org_max_length, eos):
    """tokenize_answer_only's layout of one example (ids_answer None: the test split)."""
    ids = list(ids_prompt)
    labels = [IGNORE] * (len(ids) - 1)
    if ids_answer is not None:
        ids = ids + ids_answer
        labels = labels + ids_answer
    if len(ids) >= max_length:
        half = (max_length - 1) // 2
        second_half = max_length - 1 - half
        ids = ids[:half] + ids[-second_half:]
        labels = labels[:half] + labels[-second_half + 1:]
        assert len(ids) < max_length
    inputs = ids + [eos] * (org_max_length - len(ids))
    labels = labels + [eos] + [IGNORE] * (org_max_length - len(ids))
    assert len(inputs) == len(labels) == org_max_length
    return inputs, labels


def expected(task, files, seq_len, enc, eos, template=None, max_new=None, prefill=None):
    """{split: (inputs, labels)} and the test.jsonl lines, from the split files."""
    template = template or PROMPT[task]
    max_new = max_new if max_new is not None else NEW_TOKENS.get(task, 128)
    if prefill is None:
        prefill = PREFILL.get(task, {}).get(seq_len, seq_len - max_new)
    out, cases = {}, []
    for split, path in files.items():
        rows = [example(task, r) for r in read_jsonl(path)]
        prompts = [template.format_map({"context": c, "input": q}) for c, q, _ in rows]
        enc.encode_all(prompts + [a for _, _, ans in rows for a in ans])
        xs, ys = [], []
        if split == "test":
            for p, (_, _, ans) in zip(prompts, rows):
                x, y = row(enc(p), None, prefill, seq_len, eos)
                xs += x
                ys += y
                cases.append({"prompt": p, "answers": ans, "max_new_tokens": max_new + 1,
                              "max_prompt_tokens": prefill - 1, "task": task})
        else:
            for k in range(max(len(a) for _, _, a in rows)):
                for p, (_, _, ans) in zip(prompts, rows):
                    if k < len(ans):
                        x, y = row(enc(p), enc(ans[k]), seq_len, seq_len, eos)
                        xs += x
                        ys += y
        out[split] = (xs, ys)
    return out, cases


def run_sft(task, files, seq_len, out, extra=()):
    args = ["sft-data", "--task", task, "--seq-len", str(seq_len), "--tokenizer", TOK, "--out", out]
    for split, path in files.items():
        args += ["--" + split, path]
    return json.loads(rat(*args, *extra, "--json").stdout.strip().splitlines()[-1])


def compare(tag, task, files, seq_len, out, extra=(), **kw):
    rep = run_sft(task, files, seq_len, out, extra)
    want, cases = expected(task, files, seq_len, ENC, EOS, **kw)
    d = os.path.join(out, task)
    for split, (xs, ys) in want.items():
        got_x = read_ids(os.path.join(d, f"llama-{split}-{seq_len}-inputs.bin"))
        got_y = read_ids(os.path.join(d, f"llama-{split}-{seq_len}-labels.bin"))
        check(got_x == xs, f"{tag}: {split} inputs")
        check(got_y == ys, f"{tag}: {split} labels")
        check(len(got_x) % seq_len == 0, f"{tag}: {split} whole rows")
    if "test" in files:
        check(read_jsonl(os.path.join(d, "test.jsonl")) == cases, f"{tag}: test.jsonl")
    return rep, want


def split_files(task, splits=("train", "validation", "test")):
    return {s: os.path.join(EX, dataset_dir(task), s + ".jsonl") for s in splits}


def write_jsonl(name, rows):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(os.path.join(WORK, "corpus"))
# A tokenizer trained on the example texts (small vocabulary, so that prompts are long in tokens).
texts = []
for task in ("narrativeqa_full", "qmsum", "wikisum"):
    for s, p in split_files(task).items():
        for r in read_jsonl(p):
            c, q, a = example(task, r)
            texts.append(c + "\n" + q + "\n" + "\n".join(a))
for i, t in enumerate(texts):
    with open(os.path.join(WORK, "corpus", f"c{i:03d}.txt"), "w") as f:
        f.write(t)
rat("tokenize", "--input", "corpus", "--out-dir", "tok", "--vocab-size", "400", "--val-fraction",
    "0")
TOK = os.path.join(WORK, "tok", "tokenizer.model")
EOS = json.load(open(os.path.join(WORK, "tok", "tokenize.json")))["eos_id"]
ENC = Encoder(TOK)


def part_oracle():
    for task in PROMPT:
        for seq_len, extra, kw in [(4096, (), {}), (96, ("--max-new-tokens", "16"), {"max_new": 16}),
                                   (40, ("--prefill-tokens", "9"), {"prefill": 9})]:
            tag = f"{task} seq_len {seq_len}"
            rep, want = compare(tag, task, split_files(task), seq_len,
                                os.path.join(WORK, f"o{seq_len}"), extra, **kw)
            check(rep["pad_id"] == EOS and rep["ignore_label"] == -100, f"{tag}: pad/ignore")
            cut = sum(s["truncated"] for s in rep["splits"])
            check((cut == 0) == (seq_len == 4096), f"{tag}: {cut} rows cut")
            nrows = {s["split"]: s["rows"] for s in rep["splits"]}
            check(all(nrows[s] * seq_len == len(want[s][0]) for s in want), f"{tag}: rows {nrows}")
    # The exact rule at its edges, on one example: prompt + answer = n ids at seq_len n + 1 (fits,
    # one pad), n (cut: their rule cuts at >= seq_len), n - 1 (one over), and an answer longer
    # than seq_len.
    row0 = read_jsonl(os.path.join(EX, "wikisum", "train.jsonl"))[0]
    one = write_jsonl("one.jsonl", [row0])
    c, q, a = example("wikisum", row0)
    p = PROMPT["wikisum"].format_map({"context": c, "input": q})
    ENC.encode_all([p, a[0]])
    n = len(ENC(p)) + len(ENC(a[0]))
    check(len(ENC(a[0])) > 12, "the edge example's answer is long enough")
    for seq_len, cut in [(n + 1, False), (n, True), (n - 1, True), (12, True), (4, True)]:
        rep, want = compare(f"edge seq_len {seq_len} (n={n})", "wikisum", {"train": one}, seq_len,
                            os.path.join(WORK, f"edge{seq_len}"))
        check(rep["splits"][0]["truncated"] == int(cut), f"edge {seq_len}: cut {cut}")
        x, y = want["train"]
        if seq_len == n + 1:
            check(x[-1] == EOS and y[-2] == EOS and y[-1] == IGNORE, "fits: one pad")
        if seq_len == n:
            check(x[-1] == EOS and y[-2] == EOS and y[-1] == IGNORE, "exactly seq_len: cut to n - 1")
        if seq_len == 12:
            check(IGNORE not in y[5:11], "answer longer than seq_len: the tail is answer only")
    # Another task name with its own template (literal braces), the common fields, several answers.
    common = write_jsonl("common.jsonl", [
        {"context": "A dict maps keys to values.", "input": "What does a dict map?",
         "answers": ["Keys to values.", "keys"]},
        {"context": "A set holds unique items.", "input": "What does a set hold?",
         "answer": "Unique items."}])
    tmpl = "{{doc}} {context}\nQ: {input}\nA:"
    compare("custom task", "mydocs", {"train": common, "test": common}, 48,
            os.path.join(WORK, "custom"), ("--template", tmpl, "--max-new-tokens", "8"),
            template=tmpl, max_new=8)

    # Bad input: one line naming FILE:LINE and the field, exit != 0, nothing written.
    good = json.dumps(row0)
    bad_cases = [
        ([good, json.dumps({"title": "t", "article": "a"})], "bad.jsonl:2: missing field \"summary\""),
        ([good, "", "{\"title\": 1, \"article\": \"a\", \"summary\": \"s\"}"],
         "bad.jsonl:3: field \"title\" is 1, expected a string"),
        (["{not json"], "bad.jsonl:1: not valid JSON"),
        (["[1, 2]"], "bad.jsonl:1: expected a JSON object"),
        ([json.dumps({"title": "t", "article": "a", "summary": 3})], "bad.jsonl:1: field \"summary\""),
    ]
    for lines, want in bad_cases:
        path = write_jsonl("bad.jsonl", lines)
        p = rat("sft-data", "--task", "wikisum", "--train", one, "--test", path, "--seq-len", "64",
                "--max-new-tokens", "16", "--tokenizer", TOK, "--out", "bad", ok=False)
        check(p.returncode != 0 and want in p.stderr, f"bad input {want!r}: {p.stderr}")
        check(not os.path.exists(os.path.join(WORK, "bad")), f"bad input {want!r}: nothing written")
    nq = write_jsonl("nq.jsonl", [{"document": {"text": "t"}, "question": {"text": "q"},
                                   "answers": [{"text": "a"}]}])
    p = rat("sft-data", "--task", "narrativeqa_summary", "--train", nq, "--seq-len", "64",
            "--tokenizer", TOK, "--out", "bad", ok=False)
    check(p.returncode != 0 and "nq.jsonl:1: missing field \"document.summary.text\"" in p.stderr,
          "narrativeqa nested field: " + p.stderr)
    for args, want in [
        (["--task", "nosuch", "--train", one], "not one of the authors' datasets"),
        (["--task", "wikisum", "--train", one, "--seq-len", "3"], "--seq-len 3: expected >= 4"),
        (["--task", "wikisum", "--test", one, "--max-new-tokens", "62"], "test prompt budget 2 (--seq-len 64 minus --max-new-tokens 62)"),
        (["--task", "wikisum", "--train", one, "--template", "{context} {answer}"],
         "unknown field {answer}"),
        (["--task", "wikisum"], "at least one of --train"),
        (["--task", "../x", "--train", one, "--template", "{input}"], "expected a dataset name"),
    ]:
        if "--seq-len" not in args:
            args = args + ["--seq-len", "64"]
        p = rat("sft-data", *args, "--tokenizer", TOK, "--out", "bad", ok=False)
        check(p.returncode != 0 and want in p.stderr, f"{args}: {p.stderr}")
        check(not os.path.exists(os.path.join(WORK, "bad")), f"{args}: nothing written")


def part_flow():
    out = os.path.join(WORK, "sft")
    T = 64
    # A prompt budget below seq_len - new tokens, so that eval must take the line's.
    rep = run_sft("wikisum", split_files("wikisum"), T, out,
                  ("--max-new-tokens", "12", "--prefill-tokens", "40"))
    d = os.path.join(out, "wikisum")
    for s in ("train", "validation", "test"):
        for k in ("inputs", "labels"):
            check(os.path.exists(os.path.join(d, f"llama-{s}-{T}-{k}.bin")), f"flow: {s} {k}")
    with open(os.path.join(WORK, "sft.yaml"), "w") as f:
        f.write(f"""data: {{_name_: wikisum, seq_len: {T}, vocab_size: {rep['vocab_size']}, num_bytes: 2,
  ignore_input_index: {EOS}, batch_size: 1, global_batch_size: 2,
  train: {{_name_: sft_random, tokenized_input_path: {d}/llama-train-{T}-inputs.bin,
    tokenized_label_path: {d}/llama-train-{T}-labels.bin}},
  val: {{_name_: sft_ordered, tokenized_input_path: {d}/llama-validation-{T}-inputs.bin,
    tokenized_label_path: {d}/llama-validation-{T}-labels.bin}}}}
model:
  backbone: {{_name_: sequence, num_layers: 2, d_model: 32, interleave_step: 1,
    seq_cell: {{_name_: rat, d_head: 8, ngroups: 2, chunk_size: 8}},
    hidden_cell: {{_name_: ffn, d_ffn: 64, act_fn: gelu, bias: false}}}}
  embedding: {{vocab_size: {rep['vocab_size']}, pe: {{_name_: interrope, base: 10000}}}}
task: {{tie_embedding: true, ignore_index: -100}}
optim:
  optimizer: {{_name_: adamw, lr: 1.0e-2, weight_decay: 0.01, betas: [0.9, 0.95]}}
  lr_scheduler: {{_name_: cosine, warmup_iter: 0.05, eta_min: 1.0e-4}}
trainer: {{seed: 1, dtype: float32, max_steps: 6, gradient_clipping: 1.0, log_interval: 2,
  eval_interval: 2, save_checkpoint: true, load_checkpoint: false, save_interval: 1.0,
  save_dir: run}}
""")
    rat("train", "sft.yaml", "--quiet")
    recs = read_jsonl(os.path.join(WORK, "run", "metrics.jsonl"))
    check(any("val_loss" in r for r in recs), f"flow: validation records during SFT: {recs[-1]}")
    model = os.path.join(WORK, "run", "latest")
    check(os.path.exists(os.path.join(model, "tokenizer.model")), "flow: checkpoint tokenizer")
    p = rat("eval", "--model", model, "--task", "gen", os.path.join(d, "test.jsonl"), "--out",
            "pred.jsonl", "--metric", "rouge_l", "--json")
    j = json.loads(p.stdout.strip().splitlines()[-1])
    preds = read_jsonl(os.path.join(WORK, "pred.jsonl"))
    cases = read_jsonl(os.path.join(d, "test.jsonl"))
    check(len(preds) == len(cases) == j["n"] == 2, f"flow: {len(preds)} predictions")
    for q, c in zip(preds, cases):
        check(q["answers"] == c["answers"] and isinstance(q["prediction"], str), "flow: fields")
        check(q["prompt_tokens"] == c["max_prompt_tokens"] == 39,
              f"flow: prompt cut to the line's budget: {q['prompt_tokens']}")
        check(c["max_new_tokens"] == 13, "flow: 12 new tokens and their loop's first one")
    check(j["truncated"] == 2, f"flow: both test prompts are longer than the budget: {j}")
    p = rat("metrics", "--predictions", "pred.jsonl", "--metric", "rouge_l", "--json")
    m = json.loads(p.stdout.strip().splitlines()[-1])
    check(m["n"] == 2 and abs(m["score"] - j["score"]) < 1e-12, f"flow: metrics {m} vs eval {j}")


{"oracle": part_oracle, "flow": part_flow}[PART]()
if failures:
    sys.exit(f"{len(failures)} failures")
print("ok")
