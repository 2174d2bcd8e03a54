#!/usr/bin/python3
"""Writes the seed corpora fuzz/corpus/<target>/ from the inputs the tests use: the shipped
configs and golden-case configs, examples/ JSONL, and small files in the shapes the C++ tests
build (safetensors, token files, metrics.jsonl, mqar, request bodies). Rerun after changing a
target's input layout; fuzz/corpus/tokenizer/*.model (spm_train outputs) are kept as they are.
Parts of a multi-file input are separated by NUL bytes (fuzz/fuzz_util.h)."""
import glob, json, os, shutil, struct, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
corpus = os.path.join(root, "fuzz", "corpus")


def read(p, limit=4000):
    with open(os.path.join(root, p), "rb") as f:
        return f.read()[:limit]


def jsonl_head(p, n=3):
    return b"".join(read(p, 1 << 20).splitlines(keepends=True)[:n])


def write(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None, pad=b""):
    header, body = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode() + pad
    return struct.pack("<Q", len(h)) + h + body


def main():
    for t in os.listdir(corpus) if os.path.isdir(corpus) else []:
        if t != "tokenizer":
            shutil.rmtree(os.path.join(corpus, t))
    # safetensors: F32 / BF16 / F16, a scalar, metadata, header padding (as torch writes).
    f32 = struct.pack("<6f", 1, -2, 0.5, 3, 1e-3, -0.0)
    write("safetensors", "f32", safetensors([("a.weight", "F32", [2, 3], f32)]))
    write("safetensors", "mixed", safetensors(
        [("w", "BF16", [2, 2], struct.pack("<4H", 0x3F80, 0xBF80, 0x7F80, 0x0001)),
         ("h", "F16", [3], struct.pack("<3H", 0x3C00, 0x7C00, 0x0400)),
         ("s", "F32", [], struct.pack("<f", 7.0))], {"format": "pt"}, pad=b"   "))
    write("safetensors", "empty", safetensors([("z", "F32", [0, 4], b"")]))
    # model config.yaml: the golden cases' configs (tests/python/cases) and the pydoc experiments.
    for p in sorted(glob.glob(os.path.join(root, "tests/python/cases/*.yaml")))[:12]:
        write("model_config", os.path.basename(p), read(os.path.relpath(p, root)))
    for p in sorted(glob.glob(os.path.join(root, "configs/experiment/pydoc/*.yaml"))):
        write("model_config", "pydoc-" + os.path.basename(p), read(os.path.relpath(p, root)))
    # experiment YAML + overrides.
    overrides = [b"trainer.max_steps=3\ndata.seq_len=32", b"optim.optimizer.lr=1e-3\nmodel.backbone.num_layers=2",
                 b"data.train._name_=lm_ordered", b"trainer.save_dir=runs/x\nno.such.key=1"]
    for i, p in enumerate(sorted(glob.glob(os.path.join(root, "configs/experiment/pydoc/*.yaml")))):
        write("experiment", os.path.basename(p), read(os.path.relpath(p, root)) + b"\0" + overrides[i % 4])
    for p in sorted(glob.glob(os.path.join(root, "tests/python/cases/*.yaml")))[:4]:
        write("experiment", "case-" + os.path.basename(p), read(os.path.relpath(p, root)) + b"\0" + overrides[0])
    # composition: config.yaml, model/a.yaml, model/b.yaml, experiment/x.yaml, data/d.yaml, overrides.
    cfg = (b"defaults:\n  - _self_\n  - model: a\n  - data: d\n  - experiment: null\n"
           b"base_dir: .\ntrainer: {max_epoch: 1, save_dir: ${base_dir}/ckpt}\n")
    model_a = read("configs/model/backbone/sequence.yaml")
    model_b = b"backbone:\n  _name_: sequence\n  num_layers: 2\n  d_model: 32\n  seq_cell: {_name_: rat, d_head: 8, chunk_size: 4}\n  hidden_cell: {d_ffn: 64}\n"
    exp = (b"# @package _global_\ndefaults:\n  - override /model: b\n  - _self_\n"
           b"data: {seq_len: ${model.backbone.d_model}, vocab_size: 64}\nmodel: {embedding: {vocab_size: ${data.vocab_size}}}\n")
    data_d = read("configs/data/sft/llama.yaml")
    write("compose", "tree", b"\0".join([cfg, model_a, model_b, exp, data_d, b"experiment=x"]))
    write("compose", "overrides", b"\0".join([cfg, model_b, model_a, exp, data_d,
                                               b"model=b\n+extra.key=1\n~trainer.max_epoch\n++data.seq_len=16"]))
    write("compose", "shipped", b"\0".join([read("configs/config.yaml"), model_a, model_b,
                                             read("configs/experiment/pydoc/rat-small.yaml"), data_d, b"experiment=x"]))
    write("compose", "cycle", b"\0".join([b"defaults: [_self_]\na: ${b}\nb: ${a}\nc: ${oc.env:HOME}\n", b"", b"", b"", b"", b""]))
    # token files: byte 0 width (even 2, odd 4), byte 1 T, byte 2 vocab; then the ids.
    write("tokens", "u16", bytes([0, 3, 1]) + struct.pack("<10H", 1, 2, 3, 4, 0, 5, 6, 7, 8, 9))
    write("tokens", "u32", bytes([1, 2, 1]) + struct.pack("<6I", 1, 2, 0xFFFFFF9C, 4, 5, 6))
    write("tokens", "odd", bytes([0, 1, 0]) + b"\x01\x02\x03")
    # SFT: byte 0 mode, then NUL-separated parts.
    for task in ("narrativeqa", "qmsum", "wikisum"):
        lines = jsonl_head(f"examples/sft/{task}/train.jsonl", 2)
        write("sft", f"padded-{task}", b"\x01" + lines + b"\0" + b"x" * {"narrativeqa": 3, "qmsum": 1, "wikisum": 2}[task]
              + b"\0" + jsonl_head(f"examples/sft/{task}/test.jsonl", 1))
        write("sft", f"records-{task}", b"\x02" + lines + b"\0{context}\n{input}\n{{x}}")
    write("sft", "plain", b'\x00{"prompt": "What is 2+2?", "answer": "4"}\n\n{"prompt": "caf\xc3\xa9", "answer": "ok"}\n'
          b"\0Q: {prompt}\nA: ")
    write("sft", "pair", b"\x03xx\0" + struct.pack("<6H", 1, 2, 3, 4, 5, 6) + b"\0" + struct.pack("<6H", 0xFF9C, 3, 0xFF9C, 5, 6, 0xFF9C))
    # eval: byte 0 reader.
    write("eval", "gen", b"\x00" + jsonl_head("examples/eval/python_qa.jsonl"))
    write("eval", "gen-ids", b'\x00{"prompt_ids": [1, 2, 3], "answers": ["a"], "max_new_tokens": 4, "max_prompt_tokens": 8}\n')
    write("eval", "niah", b'\x01{"prompt": "find the key", "answers": ["42"], "length": 128, "depth": 0.5}\n')
    write("eval", "mc", b"\x02" + jsonl_head("examples/eval/python_mc.jsonl"))
    write("eval", "score", b"\x03" + jsonl_head("examples/eval/python_score.jsonl")
          + b'{"context_ids": [1, 2], "continuation_ids": [3]}\n')
    write("eval", "predictions", b'\x04{"prediction": "The cat sat.", "answers": ["the cat", "a dog"]}\n'
          b'{"prediction": "", "answers": ["x"]}\n')
    mqar = {"task": "mqar", "vocab_size": 64, "seq_len": 8, "pairs": 2, "train": 0, "test": 1, "seed": 0, "num_bytes": 2}
    write("eval", "mqar", b"\x05" + json.dumps(mqar).encode() + b"\0" + struct.pack("<8H", *range(1, 9))
          + b"\0" + struct.pack("<8H", *([0xFF9C] * 6 + [3, 4])))
    # metrics.jsonl (as train/metrics_log.cc writes it), then the metric.
    write("metrics", "loss", b'{"step": 1, "loss": 9.5, "lr": 0.001}\n{"step": 2, "loss": 8.25}\n'
          b'{"step": 2, "val_loss": 8.0, "val_ppl": 2980.9}\n\0loss')
    write("metrics", "resumed", b'{"step": 1, "loss": 9}\n{"step": 1, "loss": 9}\n{"step": 3, "loss": NaN}\n\0val_ppl')
    # rat serve's bodies: byte 0 chat (odd) or completions; the body; optional chat_template.json.
    write("serve", "completion", b'\x00{"model": "rat", "prompt": "def f(", "max_tokens": 8, "temperature": 0.7, '
          b'"top_p": 0.9, "stop": ["\\n"], "logprobs": 2, "echo": true, "seed": 1}')
    write("serve", "ids", b'\x00{"prompt": [[1, 2, 3], [4]], "n": 2, "stream": true, "stream_options": {"include_usage": true}}')
    write("serve", "chat", b'\x01{"model": "rat", "messages": [{"role": "system", "content": "Be brief."}, '
          b'{"role": "user", "content": "Hi"}], "max_tokens": 4, "presence_penalty": 0.5}\0'
          b'{"system": "S:{content}\\n", "user": "U:{content}\\n", "assistant": "A:{content}\\n", "generation": "A:"}')
    # prompts: --prompt-ids and --batch-file text.
    write("prompts", "ids", b"1 2 3; 4,5\n6")
    write("prompts", "batch", b"first prompt\r\n\nsecond\n")


if __name__ == "__main__":
    sys.exit(main())
