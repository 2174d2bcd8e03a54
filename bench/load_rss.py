"""Writes a RAT model directory with random weights (config.yaml + model.safetensors) for
bench/load_rss.sh, without holding the model in memory: the header is computed from the shapes
first, then each tensor is drawn, converted and written in turn (peak: the largest tensor).

    /usr/bin/python3 bench/load_rss.py --out DIR --layers 12 --d-model 768 [--dtype F32|BF16]
    /usr/bin/python3 bench/load_rss.py poll COMMAND...   # peak memory of COMMAND (see poll())

Shapes follow the RAT layout that tests/python/reference.py documents (rat mixer with an FFN of
4 * d_model, rmsnorm, no biases, tied embedding, as the authors' rat-xl experiment); rat's loader
checks every name and shape, so a layout mistake here fails the load, not the measurement.
BF16 is rounded to nearest even from the f32 draw (tests/python/st.py's rounding).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def tensors(L, D, V, d_head, ngroups, head=False):
    """[(name, shape, kind)] with kind 'normal' (N(0, 0.02)), 'ones', 'gate' or 'wte' (the head
    a tied PyTorch state_dict carries: the embedding again)."""
    out = [("embedding.wte.weight", [V, D], "normal"), ("backbone.ln.weight", [D], "ones")]
    if head:
        out.append(("head.lm_head.weight", [V, D], "wte"))
    for i in range(L):
        s = "backbone.layers.%d.seq_layer." % i
        h = "backbone.layers.%d.hidden_layer." % i
        out += [
            (s + "input_norm.weight", [D], "ones"),
            (s + "in_proj.weight", [3 * D + 2 * ngroups * d_head, D], "normal"),
            (s + "out_proj.weight", [D, D], "normal"),
            (s + "gate_bias", [D], "gate"),
            (h + "ln.weight", [D], "ones"),
            (h + "fc1.weight", [4 * D, D], "normal"),
            (h + "fc2.weight", [D, 4 * D], "normal"),
        ]
    return sorted(out)


def config_yaml(L, D, V, d_head, ngroups, chunk, seq_len):
    return """data:
  seq_len: {seq_len}
  vocab_size: {V}
  num_bytes: 2
  ignore_input_index: 2
model:
  backbone:
    _name_: sequence
    num_layers: {L}
    d_model: {D}
    ln: rmsnorm
    init:
      _name_: fixed
      initializer_range: 0.02
    seq_cell:
      _name_: rat
      d_head: {d_head}
      ngroups: {ngroups}
      chunk_size: {chunk}
    hidden_cell:
      _name_: ffn
      d_ffn: {ffn}
      act_fn: gelu
      bias: false
      ln: rmsnorm
      dropout: 0
  embedding:
    vocab_size: {V}
    pe:
      _name_: interrope
      base: 10000
task:
  tie_embedding: true
  ignore_index: -100
""".format(L=L, D=D, V=V, d_head=d_head, ngroups=ngroups, chunk=chunk, seq_len=seq_len, ffn=4 * D)


def to_bf16_bits(a):
    u = a.view(np.uint32).astype(np.uint64)
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even (no NaN in a normal draw)
    return (r & 0xFFFF).astype("<u2")


def poll(cmd):
    """Runs cmd (its stdout passed through); prints to stderr 'rss KIB KIB KIB': VmHWM at exit
    (ru_maxrss, which the kernel samples only when pages are unmapped and at exit), then the
    largest VmRSS and RssFile seen by reading /proc every 0.5 ms (catches peaks that VmHWM may
    miss, and shows what the file's mapping adds)."""
    import subprocess
    import time
    p = subprocess.Popen(cmd)
    rss = rss_file = 0
    while True:
        try:
            with open("/proc/%d/status" % p.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = max(rss, int(line.split()[1]))
                    elif line.startswith("RssFile:"):
                        rss_file = max(rss_file, int(line.split()[1]))
        except OSError:
            pass
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.0005)
    sys.stderr.write("rss %d %d %d\n" % (ru.ru_maxrss, rss, rss_file))
    return os.waitstatus_to_exitcode(status)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "poll":
        sys.exit(poll(sys.argv[2:]))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--d-model", type=int, required=True)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--d-head", type=int, default=64)
    ap.add_argument("--ngroups", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--dtype", choices=["F32", "BF16"], default="F32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-head", action="store_true",
                    help="also store head.lm_head.weight (= the embedding), as torch's state_dict")
    a = ap.parse_args()
    L, D, V = a.layers, a.d_model, a.vocab
    esize = 4 if a.dtype == "F32" else 2
    ts = tensors(L, D, V, a.d_head, a.ngroups, a.write_head)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in ts:
        n = int(np.prod(shape)) * esize
        header[name] = {"dtype": a.dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.yaml"), "w") as f:
        f.write(config_yaml(L, D, V, a.d_head, a.ngroups, a.chunk, a.seq_len))
    rng = np.random.default_rng(a.seed)
    wte = None
    path = os.path.join(a.out, "model.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape, kind in ts:
            n = int(np.prod(shape))
            if kind == "wte":
                x = wte  # sorted: embedding.* is written before head.*
            elif kind == "normal":
                x = rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)
            elif kind == "ones":
                x = np.ones(n, dtype=np.float32)
            else:
                x = rng.uniform(0.0, 2.0, n).astype(np.float32)
            if name == "embedding.wte.weight" and a.write_head:
                wte = x
            f.write((x.astype("<f4") if a.dtype == "F32" else to_bf16_bits(x)).tobytes())
    os.replace(path + ".tmp", path)
    params = sum(int(np.prod(s)) for _, s, k in ts if k != "wte")
    sys.stdout.write("%s: %d parameters, %d bytes (%s)\n" % (path, params, os.path.getsize(path),
                                                             a.dtype))


if __name__ == "__main__":
    main()
