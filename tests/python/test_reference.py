#!/usr/bin/python3
"""Self-tests of the oracle (reference.py, st.py, make_case.py). Run:

    cd tests/python && /usr/bin/python3 -m unittest -v test_reference
    /usr/bin/python3 tests/python/test_reference.py

Each test compares the oracle with a second formulation written differently (closed forms, masked
matrices, log-sum-exp merge as in the paper), or checks a SPEC identity.
"""
import json
import math
import os
import struct
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference as R  # noqa: E402
import st  # noqa: E402

DT = torch.float64


def mkcfg(seq_cell, T=12, D=32, layers=2, V=40, act="gelu", bias=False, pe="interrope", tie=True,
          backbone="sequence", seq_cell1=None, step=1, iii=0):
    bb = {"_name_": backbone, "num_layers": layers, "d_model": D, "interleave_step": step,
          "seq_cell": seq_cell, "hidden_cell": {"_name_": "ffn", "d_ffn": 2 * D, "act_fn": act, "bias": bias}}
    if seq_cell1:
        bb["seq_cell1"] = seq_cell1
    return R.ModelConfig({"data": {"seq_len": T, "vocab_size": V, "num_bytes": 2, "ignore_input_index": iii},
                          "model": {"backbone": bb, "embedding": {"vocab_size": V, "pe": {"_name_": pe, "base": 10000}}},
                          "task": {"tie_embedding": tie, "ignore_index": -100}})


def randomize(mod, seed, scale=None):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in mod.named_parameters():
            n = torch.randn(p.shape, generator=g, dtype=DT)
            if name.endswith("norm.weight") or name.endswith("ln.weight"):
                p.copy_(1 + 0.3 * n)
            elif name.endswith("gate_bias"):
                p.copy_(n)
            elif p.dim() == 2:
                p.copy_(n / math.sqrt(p.shape[1]) if scale is None else n * scale)
            else:
                p.copy_(0.1 * n)
    return mod


def rand_x(B, T, D, seed=0):
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(seed), dtype=DT)


# ---------------------------------------------------------------- independent formulations

def rope_pairs(x, pos, base=10000.0):
    """RoPE via complex multiplication of (x_i, x_{i+P/2}) pairs: independent of rope_rotate."""
    P = x.shape[-1]
    h = P // 2
    freq = torch.tensor([base ** (-2.0 * i / P) for i in range(h)], dtype=DT)
    c = torch.polar(torch.ones(len(pos), h, dtype=DT), pos[:, None].to(DT) * freq[None])
    z = torch.complex(x[..., :h], x[..., h:]) * c
    return torch.cat([z.real, z.imag], dim=-1)


def masked_attention(q, k, v, mask):
    """q,k,v [B,H,T,P]; mask [T,T] bool (True = allowed)."""
    P = q.shape[-1]
    s = q @ k.transpose(-1, -2) * P ** -0.5
    s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v


def rat_closed_form_states(g, a, L):
    """Chunked recurrence in closed form: s_t = sum_{j in chunk, j<=t} (1-g_j) prod_{j<i<=t} g_i a_j."""
    B, T, D = a.shape
    out = torch.zeros_like(a)
    for t in range(T):
        c0 = (t // L) * L
        acc = torch.zeros(B, D, dtype=DT)
        for j in range(c0, t + 1):
            w = 1 - g[:, j]
            for i in range(j + 1, t + 1):
                w = w * g[:, i]
            acc = acc + w * a[:, j]
        out[:, t] = acc
    return out


def rat_lse_merge(m, x):
    """RAT o computed the authors' way: block-causal attention over chunk-final states (mask c' < c)
    with its log-sum-exp, plus the diagonal (own-state) term, merged by log-sum-exp weights."""
    B, T, D = x.shape
    H, P, G, L = m.H, m.P, m.G, m.L
    u = m.input_norm(x)
    z, v, g, q, k = m.in_proj(u).split([D, D, D, G * P, G * P], -1)
    g = torch.sigmoid(g + m.gate_bias)
    q = q.reshape(B, T, G, P)
    k = k.reshape(B, T, G, P)
    head_group = torch.tensor([h % G for h in range(H)])
    q = q[:, :, head_group]           # [B, T, H, P]
    k = k[:, :, head_group]
    vt = rat_closed_form_states(g, v, L).reshape(B, T, H, P)
    kt = rat_closed_form_states(g, k.reshape(B, T, D), L).reshape(B, T, H, P)
    C = (T + L - 1) // L
    chunk = torch.arange(T) // L
    if m.use_rope:
        q = rope_pairs(q.transpose(1, 2), chunk).transpose(1, 2)
        kt = rope_pairs(kt.transpose(1, 2), chunk).transpose(1, 2)
    q, kt, vt = (t.transpose(1, 2) for t in (q, kt, vt))    # [B, H, T, P]
    finals = torch.tensor([min((c + 1) * L, T) - 1 for c in range(C)])
    kf, vf = kt[:, :, finals], vt[:, :, finals]              # [B, H, C, P]
    s = q @ kf.transpose(-1, -2) * P ** -0.5                 # [B, H, T, C]
    allowed = torch.arange(C)[None, :] < chunk[:, None]      # c' < c
    s = s.masked_fill(~allowed, float("-inf"))
    lse_blk = torch.logsumexp(s, -1)                         # -inf in chunk 0
    o_blk = torch.softmax(s.masked_fill(~allowed, -1e300), -1) @ vf
    o_blk = torch.where(allowed.any(-1)[None, None, :, None], o_blk, torch.zeros_like(o_blk))
    s_diag = (q * kt).sum(-1) * P ** -0.5                    # [B, H, T]
    lse = torch.logaddexp(lse_blk, s_diag)
    o = torch.exp(lse_blk - lse)[..., None] * o_blk + torch.exp(s_diag - lse)[..., None] * vt
    return torch.sigmoid(z), o.transpose(1, 2).reshape(B, T, D)


# ---------------------------------------------------------------- tests

class TestPieces(unittest.TestCase):
    def test_rmsnorm(self):
        n = R.RMSNorm(8).to(DT)
        randomize(n, 1)
        x = rand_x(2, 3, 8)
        ref = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * n.weight
        torch.testing.assert_close(n(x), ref)

    def test_ffn_acts(self):
        x = rand_x(2, 5, 16)
        for act, fn in [("gelu", lambda h: F.gelu(h)), ("fastgelu", lambda h: F.gelu(h, approximate="tanh")),
                        ("relu", F.relu), ("swiglu", lambda h: h[..., :24] * F.silu(h[..., 24:]))]:
            for bias in (False, True):
                f = randomize(R.FFN(16, 24, act, bias).to(DT), 2)
                self.assertEqual(f.fc1.weight.shape[0], 48 if act == "swiglu" else 24)
                self.assertEqual(f.fc2.weight.shape[1], 24)
                self.assertEqual(f.fc1.bias is not None, bias)
                h = F.linear(f.ln(x), f.fc1.weight, f.fc1.bias)
                ref = x + F.linear(fn(h), f.fc2.weight, f.fc2.bias)
                torch.testing.assert_close(f(x), ref, msg=act)

    def test_rope(self):
        x = rand_x(2, 7, 16)
        pos = torch.arange(7, dtype=DT) * 3
        torch.testing.assert_close(R.rope_rotate(x, pos, 10000.0), rope_pairs(x, pos))
        torch.testing.assert_close(R.rope_rotate(x, torch.zeros(7, dtype=DT), 10000.0), x)
        # relative: <R(m) q, R(n) k> depends only on m - n
        q, k = rand_x(1, 1, 16, 5)[0], rand_x(1, 1, 16, 6)[0]
        a = (R.rope_rotate(q, torch.tensor([5.0], dtype=DT), 1e4) * R.rope_rotate(k, torch.tensor([2.0], dtype=DT), 1e4)).sum()
        b = (R.rope_rotate(q, torch.tensor([13.0], dtype=DT), 1e4) * R.rope_rotate(k, torch.tensor([10.0], dtype=DT), 1e4)).sum()
        torch.testing.assert_close(a, b)

    def test_loss(self):
        lg = rand_x(2, 6, 11)
        lb = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(0))
        lb[0, 1] = lb[1, 4] = -100
        torch.testing.assert_close(R.lm_loss(lg, lb), F.cross_entropy(lg.reshape(-1, 11), lb.reshape(-1), ignore_index=-100))
        s, n = R.lm_nll_sum(lg, lb)
        self.assertEqual(n, 10)
        torch.testing.assert_close(s / n, R.lm_loss(lg, lb))

    def test_make_samples(self):
        tok = torch.tensor([5, 0, 7, 8, 0, 9, 1, 2, 3, 4, 6])   # 11 tokens, T = 3 -> 3 samples
        inp, lab = R.make_samples(tok, 3, ignore_input_index=0)
        self.assertEqual(inp.tolist(), [[5, 0, 7], [8, 0, 9], [1, 2, 3]])
        self.assertEqual(lab.tolist(), [[0, -100, 8], [0, -100, 1], [2, 3, 4]])
        inp, lab = R.make_samples(tok[:10], 3)                  # 10 tokens: still 3 samples (needs 3T+1)
        self.assertEqual(inp.shape[0], 3)
        inp, lab = R.make_samples(tok[:9], 3)                   # 9 tokens: the 3rd has no last label
        self.assertEqual(inp.shape[0], 2)


class TestMixers(unittest.TestCase):
    def test_attention_vs_masked(self):
        for window in (None, 0, 2, 5, 100):
            m = randomize(R.AttentionMixer(32, 8, window, True).to(DT), 3)
            x = rand_x(2, 11, 32)
            D, T = 32, 11
            v, q, k = m.in_proj(m.input_norm(x)).split([D, D, D], -1)
            sh = lambda t: t.reshape(2, T, 4, 8).transpose(1, 2)
            pos = torch.arange(T, dtype=DT)
            q, k, v = rope_pairs(sh(q), pos), rope_pairs(sh(k), pos), sh(v)
            i = torch.arange(T)
            mask = i[None, :] <= i[:, None]
            if window is not None:
                mask &= i[None, :] >= i[:, None] - window
            o = masked_attention(q, k, v, mask).transpose(1, 2).reshape(2, T, D)
            torch.testing.assert_close(m(x), x + m.out_proj(o), msg=str(window))

    def test_local_large_window_is_attention(self):
        full = randomize(R.AttentionMixer(32, 8, None).to(DT), 4)
        for w in (12, 13, 50):
            loc = R.AttentionMixer(32, 8, w).to(DT)
            loc.load_state_dict(full.state_dict())
            x = rand_x(2, 13, 32)
            torch.testing.assert_close(loc(x), full(x))
        loc = R.AttentionMixer(32, 8, 11).to(DT)   # window T-2: differs at the last token only
        loc.load_state_dict(full.state_dict())
        x = rand_x(1, 13, 32)
        torch.testing.assert_close(loc(x)[:, :12], full(x)[:, :12])
        self.assertGreater(float((loc(x)[:, 12] - full(x)[:, 12]).abs().max()), 1e-6)

    def test_local_window0_is_value(self):
        m = randomize(R.AttentionMixer(32, 8, 0).to(DT), 5)
        x = rand_x(2, 9, 32)
        v = m.in_proj(m.input_norm(x))[..., :32]
        torch.testing.assert_close(m.mix(x), v)

    def test_rnn_closed_form(self):
        m = randomize(R.RNNMixer(16).to(DT), 6)
        x = rand_x(2, 9, 16)
        z, v, g = m.in_proj(m.input_norm(x)).split([16] * 3, -1)
        g = torch.sigmoid(g + m.gate_bias)
        h = rat_closed_form_states(g, v, L=10 ** 9)
        torch.testing.assert_close(m(x), x + m.out_proj(torch.sigmoid(z) * h))

    def test_rat_vs_lse_merge(self):
        # ragged (T % L != 0), T < L, L = 1, L = T, groups 1 / 2 / 4 / H, with and without rope
        for (D, P, G, L, T, rope) in [(32, 8, 1, 4, 16, True), (32, 8, 2, 5, 23, True), (64, 8, 4, 4, 19, True),
                                      (32, 8, 1, 16, 13, True), (32, 8, 4, 1, 9, True), (32, 8, 2, 3, 10, False),
                                      (64, 16, 2, 7, 7, True), (64, 8, 8, 3, 17, True)]:
            m = randomize(R.RATMixer(D, P, G, L, rope).to(DT), 7)
            x = rand_x(2, T, D, seed=T)
            z1, o1 = m.mix(x)
            z2, o2 = rat_lse_merge(m, x)
            torch.testing.assert_close(o1, o2, msg=str((D, P, G, L, T)))
            torch.testing.assert_close(z1, z2)

    def test_rat_chunk0_is_vt(self):
        m = randomize(R.RATMixer(32, 8, 2, 20).to(DT), 8)
        x = rand_x(2, 13, 32)          # T < L: one chunk
        z, v, g, q, k = m.in_proj(m.input_norm(x)).split([32, 32, 32, 16, 16], -1)
        g = torch.sigmoid(g + m.gate_bias)
        torch.testing.assert_close(m.mix(x)[1], rat_closed_form_states(g, v, 20))

    def test_rat_L_eq_T_is_rnn(self):
        rat = randomize(R.RATMixer(32, 8, 2, 11).to(DT), 9)
        rnn = R.RNNMixer(32).to(DT)
        with torch.no_grad():
            rnn.input_norm.weight.copy_(rat.input_norm.weight)
            rnn.in_proj.weight.copy_(rat.in_proj.weight[:96])
            rnn.out_proj.weight.copy_(rat.out_proj.weight)
            rnn.gate_bias.copy_(rat.gate_bias)
        x = rand_x(2, 11, 32)
        torch.testing.assert_close(rat(x), rnn(x))

    def test_rat_L1_is_attention_on_gated_kv(self):
        # L = 1: vt = (1-g) v, kt = (1-g) k, chunk index = position -> causal attention with RoPE
        for G in (4, 2, 1):
            m = randomize(R.RATMixer(32, 8, G, 1).to(DT), 10)
            x = rand_x(2, 10, 32)
            T, D = 10, 32
            z, v, g, q, k = m.in_proj(m.input_norm(x)).split([D, D, D, G * 8, G * 8], -1)
            g = torch.sigmoid(g + m.gate_bias)
            q = q.repeat(1, 1, 4 // G)
            k = k.repeat(1, 1, 4 // G)
            sh = lambda t: t.reshape(2, T, 4, 8).transpose(1, 2)
            pos = torch.arange(T, dtype=DT)
            o = masked_attention(rope_pairs(sh(q), pos), rope_pairs(sh((1 - g) * k), pos), sh((1 - g) * v),
                                 torch.ones(T, T).tril().bool())
            torch.testing.assert_close(m.mix(x)[1], o.transpose(1, 2).reshape(2, T, D), msg=str(G))

    def test_rat_group_tiling(self):
        # head h must use group h % G: permuting the groups inside q/k rows permutes nothing else
        m = randomize(R.RATMixer(64, 8, 2, 3).to(DT), 11)
        x = rand_x(1, 8, 64)
        z, o = m.mix(x)
        # zero group 1's q,k rows: heads 1,3,5,7 then see all-zero scores (uniform softmax), heads 0,2,4,6 unchanged
        m2 = R.RATMixer(64, 8, 2, 3).to(DT)
        m2.load_state_dict(m.state_dict())
        with torch.no_grad():
            m2.in_proj.weight[192 + 8:192 + 16] = 0
            m2.in_proj.weight[192 + 16 + 8:192 + 32] = 0
        z2, o2 = m2.mix(x)
        oh, o2h = o.reshape(1, 8, 8, 8), o2.reshape(1, 8, 8, 8)
        torch.testing.assert_close(oh[:, :, 0::2], o2h[:, :, 0::2])
        self.assertGreater(float((oh[:, 3:, 1::2] - o2h[:, 3:, 1::2]).abs().max()), 1e-6)

    def test_gradcheck(self):
        torch.manual_seed(0)
        x = rand_x(1, 5, 16).requires_grad_(True)
        for m in [R.RATMixer(16, 4, 2, 2), R.AttentionMixer(16, 4), R.AttentionMixer(16, 4, 1), R.RNNMixer(16),
                  R.FFN(16, 8, "swiglu", True)]:
            m = randomize(m.to(DT), 12)
            params = [x] + list(m.parameters())
            names = ["x"] + [n for n, _ in m.named_parameters()]
            fn = lambda *a: _functional(m, names, a)  # noqa: E731
            self.assertTrue(torch.autograd.gradcheck(fn, params, eps=1e-6, atol=1e-6), type(m).__name__)


def _functional(m, names, args):
    """Call module m with parameters replaced by args (for gradcheck)."""
    x = args[0]
    saved = {}
    for n, a in zip(names[1:], args[1:]):
        mod = m
        *path, leaf = n.split(".")
        for p in path:
            mod = getattr(mod, p)
        saved[n] = (mod, leaf, getattr(mod, leaf))
        delattr(mod, leaf)
        setattr(mod, leaf, a)
    try:
        return m(x)
    finally:
        for n, (mod, leaf, p) in saved.items():
            delattr(mod, leaf)
            setattr(mod, leaf, p)


class TestModel(unittest.TestCase):
    def test_names_and_shapes(self):
        cfg = mkcfg({"_name_": "local_attention", "d_head": 8, "window_size": 3}, layers=3, backbone="sequence_interleave",
                    seq_cell1={"_name_": "rat", "d_head": 8, "ngroups": 2, "chunk_size": 4}, step=2, act="swiglu", bias=True,
                    pe="rope_interrope")
        m = R.LM(cfg)
        sd = m.state_dict()
        self.assertEqual(tuple(sd["backbone.layers.0.seq_layer.in_proj.weight"].shape), (3 * 32 + 2 * 16, 32))
        self.assertEqual(tuple(sd["backbone.layers.1.seq_layer.in_proj.weight"].shape), (96, 32))
        self.assertEqual(tuple(sd["backbone.layers.2.seq_layer.in_proj.weight"].shape), (128, 32))
        self.assertIn("backbone.layers.0.seq_layer.gate_bias", sd)
        self.assertNotIn("backbone.layers.1.seq_layer.gate_bias", sd)
        self.assertEqual(tuple(sd["backbone.layers.1.hidden_layer.fc1.weight"].shape), (128, 32))
        self.assertEqual(tuple(sd["backbone.layers.1.hidden_layer.fc2.weight"].shape), (32, 64))
        self.assertNotIn("head.lm_head.weight", sd)
        expect = {"embedding.wte.weight", "backbone.ln.weight"}
        for i in range(3):
            p = "backbone.layers.%d." % i
            expect |= {p + "seq_layer.input_norm.weight", p + "seq_layer.in_proj.weight", p + "seq_layer.out_proj.weight",
                       p + "hidden_layer.ln.weight", p + "hidden_layer.fc1.weight", p + "hidden_layer.fc1.bias",
                       p + "hidden_layer.fc2.weight", p + "hidden_layer.fc2.bias"}
        expect |= {"backbone.layers.0.seq_layer.gate_bias", "backbone.layers.2.seq_layer.gate_bias"}
        self.assertEqual(set(sd), expect)

    def test_interleave_step1_is_sequence_of_cell1(self):
        rat = {"_name_": "rat", "d_head": 8, "ngroups": 2, "chunk_size": 3}
        loc = {"_name_": "local_attention", "d_head": 8, "window_size": 2}
        a = R.LM(mkcfg(loc, backbone="sequence_interleave", seq_cell1=rat, step=1, layers=3))
        b = R.LM(mkcfg(rat, layers=3))
        randomize(a, 13)
        b.load_state_dict(a.state_dict())
        ids = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(a(ids), b(ids))

    def test_identity_cell(self):
        # The authors' identity layer: no tensors, and with every seq_cell identity the logits at t are
        # those of token t alone (FFNs, final norm and head per token), i.e. the model of a 1-token input.
        cfg = mkcfg({"_name_": "identity"}, layers=2, pe="empty", act="swiglu", bias=True)
        m = randomize(R.LM(cfg), 21)
        self.assertFalse(any(".seq_layer." in k for k in m.state_dict()))
        ids = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(4))
        per_token = torch.cat([m(ids[:, t:t + 1]) for t in range(12)], dim=1)
        torch.testing.assert_close(m(ids), per_token)
        # In rat, identity, rat the middle block is its FFN alone.
        rat = {"_name_": "rat", "d_head": 8, "ngroups": 2, "chunk_size": 3}
        a = randomize(R.LM(mkcfg({"_name_": "identity"}, backbone="sequence_interleave", seq_cell1=rat,
                                 step=2, layers=3)), 22)
        blk = a.backbone.layers
        y = blk[0](a.embedding.wte(ids.long()))
        y = blk[1].hidden_layer(y)
        y = blk[2](y)
        torch.testing.assert_close(a.backbone.ln(y) @ a.head_weight().t(), a(ids))

    def test_tied_and_untied(self):
        cell = {"_name_": "attention", "d_head": 8}
        a = randomize(R.LM(mkcfg(cell, pe="rope")), 14)
        b = R.LM(mkcfg(cell, pe="rope", tie=False))
        sd = dict(a.state_dict())
        sd["head.lm_head.weight"] = sd["embedding.wte.weight"].clone()
        b.load_weights(sd)
        a.load_weights(sd)   # tied: head entry accepted and ignored
        ids = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(a(ids), b(ids))
        lg = a(ids)
        self.assertEqual(tuple(lg.shape), (2, 12, 40))

    def test_causal(self):
        for cell in [{"_name_": "rat", "d_head": 8, "ngroups": 2, "chunk_size": 3}, {"_name_": "attention", "d_head": 8},
                     {"_name_": "local_attention", "d_head": 8, "window_size": 2}, {"_name_": "rnn"}]:
            m = randomize(R.LM(mkcfg(cell, pe="empty" if cell["_name_"] == "rnn" else "rope")), 15)
            ids = torch.randint(0, 40, (1, 12), generator=torch.Generator().manual_seed(3))
            ids2 = ids.clone()
            ids2[0, 7:] = (ids2[0, 7:] + 1) % 40
            torch.testing.assert_close(m(ids)[:, :7], m(ids2)[:, :7], msg=cell["_name_"])

    def test_greedy(self):
        m = randomize(R.LM(mkcfg({"_name_": "rat", "d_head": 8, "ngroups": 1, "chunk_size": 4})), 16)
        new, margins = R.greedy_generate(m, [1, 2, 3], 5)
        ids = [1, 2, 3]
        for t in new:
            self.assertEqual(int(m(torch.tensor([ids]))[0, -1].argmax()), t)
            ids.append(t)
        self.assertTrue(all(x >= 0 for x in margins))

    def test_init(self):
        cfg = mkcfg({"_name_": "local_attention", "d_head": 8, "window_size": 3}, T=64, layers=2, D=64,
                    backbone="sequence_interleave", seq_cell1={"_name_": "rat", "d_head": 8, "ngroups": 2, "chunk_size": 16},
                    step=2, bias=True)
        m = R.init_params(R.LM(cfg), 0)
        sd = m.state_dict()
        gb = sd["backbone.layers.0.seq_layer.gate_bias"]
        self.assertTrue(bool((gb >= 0).all()) and bool((gb <= math.log(15) + 1e-12).all()))
        self.assertEqual(float(sd["backbone.ln.weight"].sub(1).abs().max()), 0.0)
        self.assertEqual(float(sd["backbone.layers.0.hidden_layer.fc1.bias"].abs().max()), 0.0)
        self.assertAlmostEqual(float(sd["embedding.wte.weight"].std()), 0.02, delta=0.002)
        rnn = R.init_params(R.LM(mkcfg({"_name_": "rnn"}, T=100, pe="empty")), 0)
        gb = rnn.state_dict()["backbone.layers.0.seq_layer.gate_bias"]
        self.assertTrue(bool((gb >= 0).all()) and bool((gb <= math.log(99)).all()) and float(gb.max()) > 3.0)

    def test_config_roundtrip(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(HERE, "cases", "hybrid_rat_local.yaml")
            c = R.load_config(p)
            R.save_config(c, os.path.join(d, "c.yaml"))
            c2 = R.load_config(os.path.join(d, "c.yaml"))
            self.assertEqual(c.raw, c2.raw)
            self.assertEqual(c2.cell_for_layer(0).name, "rat")
            self.assertEqual(c2.cell_for_layer(1).name, "local_attention")
            self.assertEqual(c2.cell_for_layer(2).name, "rat")


class TestSafetensors(unittest.TestCase):
    def test_bf16_rounding(self):
        vals = torch.tensor([1.0, 1.00390625, 1.01171875, 1.00390625 + 2.0 ** -23, -1.00390625, 2.0 ** -130, 3.4028235e38,
                             float("inf"), -float("inf"), 0.0, -0.0], dtype=torch.float32)
        want = [1.0, 1.0, 1.015625, 1.0078125, -1.0, 2.0 ** -130, float("inf"), float("inf"), -float("inf"), 0.0, -0.0]
        got = st.round_to(vals, "BF16").tolist()
        self.assertEqual(got, want)
        bits = st.f32_to_bf16_bits(torch.tensor([1.00390625, 1.01171875, -2.0, float("nan")]))
        self.assertEqual([int(b) for b in bits[:3]], [0x3F80, 0x3F82, 0xC000])
        self.assertTrue(math.isnan(float(st.bf16_bits_to_f32(bits[3:])[0])))
        # torch agrees (torch's bf16 conversion is also round-to-nearest-even)
        r = torch.randn(10000, generator=torch.Generator().manual_seed(0)) * 100
        torch.testing.assert_close(st.round_to(r, "BF16"), r.bfloat16().float(), rtol=0, atol=0)

    def test_roundtrip(self):
        g = torch.Generator().manual_seed(0)
        t = {"a": torch.randn(3, 5, generator=g, dtype=DT), "b.c": torch.randn(7, generator=g, dtype=DT),
             "s": torch.tensor([2.5], dtype=DT)}
        with tempfile.TemporaryDirectory() as d:
            for dt in ("F32", "BF16", "F16", "F64"):
                p = os.path.join(d, dt + ".st")
                st.save_file(t, p, dtype=dt, metadata={"format": "pt"})
                back, dts = st.load_file(p, with_dtypes=True)
                self.assertEqual(set(back), set(t))
                for k in t:
                    self.assertEqual(dts[k], dt)
                    self.assertEqual(tuple(back[k].shape), tuple(t[k].shape))
                    torch.testing.assert_close(back[k].double(), st.round_to(t[k], dt), rtol=0, atol=0)
                with open(p, "rb") as f:
                    n = struct.unpack("<Q", f.read(8))[0]
                    self.assertEqual((8 + n) % 8, 0)
                    hdr = json.loads(f.read(n))
                self.assertEqual(hdr["__metadata__"], {"format": "pt"})
                self.assertEqual(st.load_metadata(p), {"format": "pt"})
            # F16 matches numpy's half
            st.save_file({"x": t["a"]}, os.path.join(d, "h.st"), dtype="F16")
            np.testing.assert_array_equal(st.load_file(os.path.join(d, "h.st"))["x"].numpy(),
                                          t["a"].numpy().astype(np.float32).astype(np.float16).astype(np.float32))


class TestMakeCase(unittest.TestCase):
    def test_case_consistency(self):
        import make_case
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "c")
            make_case.main(["--config", os.path.join(HERE, "cases", "rat_g2_ragged.yaml"), "--out", out,
                            "--dtype", "BF16", "--seq", "11", "--write-head"])
            cfg = R.load_config(os.path.join(out, "model", "config.yaml"))
            self.assertEqual(cfg.seq_len, 11)
            w, dts = st.load_file(os.path.join(out, "model", "model.safetensors"), with_dtypes=True)
            self.assertEqual(set(dts.values()), {"BF16"})
            self.assertIn("head.lm_head.weight", w)
            m = R.LM(cfg)
            m.load_weights(w)
            inp = st.load_file(os.path.join(out, "inputs.safetensors"))
            exp = st.load_file(os.path.join(out, "expected.safetensors"))
            ids, labels = inp["ids"].long(), inp["labels"].long()
            self.assertTrue(bool((labels == -100).any()))
            self.assertTrue(bool((labels[ids == cfg.ignore_input_index] == -100).all()))
            lg = m(ids)
            loss = m.loss(lg, labels)
            loss.backward()
            torch.testing.assert_close(lg.float(), exp["logits"], rtol=0, atol=0)
            torch.testing.assert_close(loss.float().reshape(1), exp["loss"], rtol=0, atol=0)
            for n, p in m.named_parameters():
                torch.testing.assert_close(p.grad.float(), exp["grad." + n], rtol=0, atol=0)
            # finite-difference check of one gradient entry of the whole model
            name = "backbone.layers.0.seq_layer.gate_bias"
            p = dict(m.named_parameters())[name]
            with torch.no_grad():
                p[3] += 1e-6
                lp = m.loss(m(ids), labels)
                p[3] -= 2e-6
                lm = m.loss(m(ids), labels)
                p[3] += 1e-6
            self.assertAlmostEqual(float((lp - lm) / 2e-6), float(exp["grad." + name][3]), delta=1e-5)
            # eval over tokens.bin
            tok = np.fromfile(os.path.join(out, "tokens.bin"), dtype="<u2")
            self.assertEqual(len(tok), 3 * 11 + 5)
            with open(os.path.join(out, "eval_expected.json")) as f:
                ev = json.load(f)
            i2, l2 = R.make_samples(torch.from_numpy(tok.astype(np.int64)), 11, cfg.ignore_input_index)
            self.assertEqual(i2.shape[0], 3)
            with torch.no_grad():
                s, n = R.lm_nll_sum(m(i2), l2)
            self.assertEqual(n, ev["counted_tokens"])
            self.assertAlmostEqual(float(s) / n, ev["loss"], places=12)


class TestTrainRef(unittest.TestCase):
    def test_lr_schedule(self):
        import torch_train_ref as TR
        self.assertAlmostEqual(TR.lr_at(0, 1.0, 100, 0.05, 0.0), 1 / 5)
        self.assertAlmostEqual(TR.lr_at(4, 1.0, 100, 0.05, 0.0), 1.0)
        self.assertAlmostEqual(TR.lr_at(5, 1.0, 100, 0.05, 1e-3), 1.0)
        mid = 5 + 95 / 2
        self.assertAlmostEqual(TR.lr_at(mid, 1.0, 100, 0.05, 1e-3), 1e-3 + (1 - 1e-3) * 0.5)
        self.assertAlmostEqual(TR.lr_at(0, 2.0, 10, 0.0, 0.1), 2.0)    # no warm-up
        self.assertEqual(TR.sample_indices(1, 1, 2, 2, 5), [1, 2])     # (1*2+1)*2 = 6 -> 6 % 5, 7 % 5

    def test_two_steps_match_manual_adamw(self):
        import make_case
        import torch_train_ref as TR
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "c")
            make_case.main(["--config", os.path.join(HERE, "cases", "rat_t_lt_l.yaml"), "--out", out])
            hp = dict(lr=3e-2, b1=0.9, b2=0.95, eps=1e-8, wd=0.1, clip=0.5, mb=2, acc=2, steps=3, warm=0.34, eta=1e-4)
            # 9 whole samples: the loader keeps 8 (two global batches of 4), so step 2 wraps to sample 0
            cfg0 = R.load_config(os.path.join(out, "model", "config.yaml"))
            tokens = os.path.join(d, "tokens.bin")
            g = torch.Generator().manual_seed(5)
            torch.randint(0, cfg0.vocab_size, (9 * cfg0.seq_len + 1,), generator=g).numpy().astype("<u2").tofile(tokens)
            exp = os.path.join(d, "exp.yaml")
            with open(exp, "w") as f:
                json.dump({"optim": {"optimizer": {"_name_": "adamw", "lr": hp["lr"], "weight_decay": hp["wd"],
                                                   "betas": [hp["b1"], hp["b2"]], "eps": hp["eps"]},
                                     "lr_scheduler": {"_name_": "cosine", "warmup_iter": hp["warm"], "eta_min": hp["eta"]}},
                           "trainer": {"max_steps": hp["steps"], "gradient_clipping": hp["clip"]},
                           "data": {"batch_size": hp["mb"], "global_batch_size": hp["mb"] * hp["acc"],
                                    "train": {"tokenized_file_path": tokens}}}, f)
            TR.main(["--model", os.path.join(out, "model"), "--exp-config", exp, "--out", os.path.join(d, "log.json"),
                     "--save-model", os.path.join(d, "final")])
            with open(os.path.join(d, "log.json")) as f:
                log = json.load(f)
            self.assertEqual(log["hparams"]["accum"], 2)
            final = st.load_file(os.path.join(d, "final", "model.safetensors"))
            # manual: float64 model, same samples, explicit clipping and AdamW maths
            cfg = R.load_config(os.path.join(out, "model", "config.yaml"))
            m = R.LM(cfg, DT)
            m.load_weights(st.load_file(os.path.join(out, "model", "model.safetensors")))
            tok = np.fromfile(tokens, dtype="<u2").astype(np.int64)
            inp, lab = R.make_samples(torch.from_numpy(tok), cfg.seq_len, cfg.ignore_input_index)
            self.assertEqual(inp.shape[0], 9)
            n = 8   # whole global batches only (SPEC "Data" loader / C++ lm_ordered)
            self.assertEqual(log["num_samples"], n)
            state = {k: (torch.zeros_like(p), torch.zeros_like(p)) for k, p in m.named_parameters()}
            W = int(hp["warm"] * hp["steps"])
            for s in range(hp["steps"]):
                lr = hp["lr"] * (s + 1) / W if s < W else hp["eta"] + (hp["lr"] - hp["eta"]) * (
                    1 + math.cos(math.pi * (s - W) / (hp["steps"] - W))) / 2
                self.assertAlmostEqual(lr, log["steps"][s]["lr"], places=12)
                m.zero_grad()
                tot = 0
                for mb in range(hp["acc"]):
                    idx = [((s * hp["acc"] + mb) * hp["mb"] + j) % n for j in range(hp["mb"])]
                    tot = tot + m.loss(m(inp[idx]), lab[idx]) / hp["acc"]
                tot.backward()
                self.assertAlmostEqual(float(tot), log["steps"][s]["loss"], delta=1e-4)
                norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in m.parameters()))
                self.assertAlmostEqual(norm, log["steps"][s]["grad_norm"], delta=1e-4 * norm)
                sc = min(1.0, hp["clip"] / (norm + 1e-6))
                with torch.no_grad():
                    for k, p in m.named_parameters():
                        g = p.grad * sc
                        mm, vv = state[k]
                        p.mul_(1 - lr * hp["wd"])
                        mm.mul_(hp["b1"]).add_((1 - hp["b1"]) * g)
                        vv.mul_(hp["b2"]).add_((1 - hp["b2"]) * g * g)
                        mh = mm / (1 - hp["b1"] ** (s + 1))
                        vh = vv / (1 - hp["b2"] ** (s + 1))
                        p.sub_(lr * mh / (vh.sqrt() + hp["eps"]))
            # float32 vs float64: Adam's m / sqrt(v) amplifies rounding noise where a gradient is ~0, so
            # allow a handful of outliers (a wrong recipe moves nearly every element)
            bad = tot_n = 0
            for k, p in m.named_parameters():
                d_ = (final[k].double() - p.detach()).abs()
                self.assertLess(float(d_.max()), hp["lr"], k)
                bad += int((d_ > 1e-4).sum())
                tot_n += d_.numel()
            self.assertLess(bad, 1e-3 * tot_n)


if __name__ == "__main__":
    unittest.main(verbosity=2)
