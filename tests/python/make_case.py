#!/usr/bin/python3
"""Generate one golden test case for the C++ engine from a model config.

    make_case.py --config CFG.yaml --out DIR [--seed S] [--batch B] [--seq T]
                 [--dtype F32|BF16|F16] [--write-head]

Writes (all expectations computed in float64 by reference.py, stored as F32):
  DIR/model/config.yaml          the config, with data.seq_len set to T
  DIR/model/model.safetensors    weights in --dtype (head.lm_head.weight only if untied or --write-head)
  DIR/inputs.safetensors         ids [B,T] F32, labels [B,T] F32 (-100 = ignored)
  DIR/expected.safetensors       logits [B,T,V] F32, loss [1] F32, grad.<param> F32 for every parameter
                                 (gradient of the mean loss; tied: the head's contribution is in
                                 grad.embedding.wte.weight, there is no grad.head.lm_head.weight)
  DIR/expected.json              loss and counted-label count in full precision
  DIR/tokens.bin                 uint16/uint32 token file (data.num_bytes), 3*T + max(1, T//2) tokens
  DIR/eval_expected.json         token-weighted eval over tokens.bin: loss = total NLL / counted labels
  DIR/greedy.json                greedy continuation of a prompt (full forward per step) + logit margins
  DIR/case.json                  the arguments used

The weights used for every expectation are the values read back from model.safetensors, so with
BF16/F16 the expectations correspond exactly to the rounded weights the C++ loader sees.
Norm weights, gate_bias and FFN biases are perturbed randomly after the SPEC init so they matter, and
(unless --spec-init) weights are rescaled to std 1/sqrt(fan_in), embedding 0.25, so logits are O(1).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402
import st  # noqa: E402


def perturb(model, gen, scaled):
    """Perturb norms, gate_bias and biases; with `scaled`, also rescale the N(0, 0.02) weights to
    std 1/sqrt(fan_in) (linear) and 0.25 (embedding) so every layer visibly changes the logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            n = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            if scaled and name == "embedding.wte.weight":
                p.mul_(0.25 / 0.02)
            elif scaled and name.endswith(".weight") and p.dim() == 2:
                p.mul_((1.0 / p.shape[1] ** 0.5) / 0.02)
            elif name.endswith("norm.weight") or name.endswith("ln.weight"):
                p.mul_(1.0 + 0.2 * n)
            elif name.endswith("gate_bias"):
                p.add_(0.5 * n)
            elif name.endswith(".bias"):
                p.add_(0.05 * n)


def random_stream(gen, n, V, iii, p_ignore=0.12):
    tok = torch.randint(0, V, (n,), generator=gen)
    if iii is not None and 0 <= int(iii) < V:
        m = torch.rand(n, generator=gen) < p_ignore
        tok[m] = int(iii)
    return tok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=None, help="T (default: data.seq_len of the config)")
    ap.add_argument("--dtype", default="F32", choices=["F32", "BF16", "F16"])
    ap.add_argument("--write-head", action="store_true", help="tied models: also write head.lm_head.weight")
    ap.add_argument("--spec-init", action="store_true",
                    help="keep SPEC's N(0, 0.02) weight scale (default: rescale, see perturb())")
    ap.add_argument("--greedy-prompt", type=int, default=5)
    ap.add_argument("--greedy-steps", type=int, default=8)
    a = ap.parse_args(argv)

    cfg = R.load_config(a.config)
    if a.seq is not None:
        cfg.raw.setdefault("data", {})["seq_len"] = a.seq
        cfg = R.ModelConfig(cfg.raw)
    T, B, V = int(cfg.seq_len), a.batch, cfg.vocab_size
    iii = cfg.ignore_input_index
    os.makedirs(os.path.join(a.out, "model"), exist_ok=True)

    # ---- model: init, perturb, write, read back (the file values are the truth)
    torch.manual_seed(a.seed)
    model = R.LM(cfg, torch.float64)
    R.init_params(model, a.seed)
    perturb(model, torch.Generator().manual_seed(a.seed + 1000), not a.spec_init)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if cfg.tie_embedding and a.write_head:
        sd["head.lm_head.weight"] = sd["embedding.wte.weight"].clone()
    R.save_config(cfg, os.path.join(a.out, "model", "config.yaml"))
    wpath = os.path.join(a.out, "model", "model.safetensors")
    st.save_file(sd, wpath, dtype=a.dtype, metadata={"format": "pt"})
    model.load_weights(st.load_file(wpath, out_dtype=torch.float64))

    # ---- inputs
    gen = torch.Generator().manual_seed(a.seed + 1)
    ids = torch.empty(B, T, dtype=torch.long)
    labels = torch.empty(B, T, dtype=torch.long)
    for b in range(B):
        s = random_stream(gen, T + 1, V, iii)
        ids[b], labels[b] = s[:T], s[1:]
    if iii is not None:
        labels = labels.masked_fill(ids == int(iii), R.IGNORE)
    labels = labels.masked_fill(torch.rand(B, T, generator=gen) < 0.08, R.IGNORE)
    if int((labels != R.IGNORE).sum()) == 0:
        labels[0, -1] = int(torch.randint(0, V, (1,), generator=gen))
    st.save_file({"ids": ids.double(), "labels": labels.double()},
                 os.path.join(a.out, "inputs.safetensors"), dtype="F32")

    # ---- forward / backward in float64
    model.zero_grad()
    logits = model(ids)
    if cfg.dropout > 0:
        # Logits (and eval, decode) without dropout; loss and gradients of a training forward
        # with the masks of the C++ model's default seed 0, stream 0 (reference.dropout_keep_mask).
        with torch.no_grad():
            logits = model.eval()(ids)
        model.train()
        loss = model.loss(model(ids), labels)
        model.eval()
    else:
        loss = model.loss(logits, labels)
    loss.backward()
    exp = {"logits": logits.detach(), "loss": loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        exp["grad." + name] = p.grad.detach() if p.grad is not None else torch.zeros_like(p)
    st.save_file(exp, os.path.join(a.out, "expected.safetensors"), dtype="F32")
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump({"loss": float(loss), "counted_labels": int((labels != R.IGNORE).sum()),
                   "batch": B, "seq_len": T, "vocab_size": V}, f, indent=1)

    # ---- token file + token-weighted eval
    ntok = 3 * T + max(1, T // 2)
    tok = random_stream(torch.Generator().manual_seed(a.seed + 2), ntok, V, iii)
    np_dtype = "<u2" if int(cfg.num_bytes) == 2 else "<u4"
    tok.numpy().astype(np_dtype).tofile(os.path.join(a.out, "tokens.bin"))
    inp, lab = R.make_samples(tok, T, iii)
    with torch.no_grad():
        nll, cnt = R.lm_nll_sum(model(inp), lab, cfg.ignore_index)
    ev_loss = float(nll) / cnt
    with open(os.path.join(a.out, "eval_expected.json"), "w") as f:
        json.dump({"loss": ev_loss, "perplexity": math.exp(ev_loss), "nll_sum": float(nll),
                   "counted_tokens": cnt, "num_samples": int(inp.shape[0]), "seq_len": T,
                   "file_tokens": ntok, "num_bytes": int(cfg.num_bytes),
                   "weighting": "token-weighted: nll_sum / counted_tokens over all samples"}, f, indent=1)

    # ---- greedy generation
    prompt = [int(i) for i in ids[0, :max(1, min(a.greedy_prompt, T))]]
    new, margins = R.greedy_generate(model, prompt, a.greedy_steps)
    with open(os.path.join(a.out, "greedy.json"), "w") as f:
        json.dump({"prompt": prompt, "generated": new, "top2_margin": margins}, f, indent=1)
    with open(os.path.join(a.out, "case.json"), "w") as f:
        json.dump(vars(a), f, indent=1)
    print("%s: T=%d B=%d V=%d loss=%.6f eval_loss=%.6f" % (a.out, T, B, V, float(loss), ev_loss))


if __name__ == "__main__":
    main()
