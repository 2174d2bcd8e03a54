"""PyTorch test oracle for the RAT model family, written from /work/shared/SPEC.md.

Deliberately plain and slow: explicit per-token / per-chunk loops, no fused kernels, float64 by default.
It is a test oracle, not an implementation to be fast.

Names of parameters equal the authors' state_dict names (SPEC.md "Checkpoints and configs"), so
`model.state_dict()` is a checkpoint:

    embedding.wte.weight                           [V, D]
    head.lm_head.weight                            [V, D]   only when task.tie_embedding is false
    backbone.ln.weight / .bias                     [D]      bias with ln layernorm; none: identity
    backbone.layers.{i}.seq_layer.input_norm.weight / .bias (attention kinds: as ln; rat, rnn: weight)
    backbone.layers.{i}.seq_layer.in_proj.weight   [out, D]  (.bias [out]: attention kinds, bias)
    backbone.layers.{i}.seq_layer.out_proj.weight  [D, D]    (.bias [D]: attention kinds, bias)
    backbone.layers.{i}.seq_layer.gate_bias        [D]      rat, rnn
    (an `identity` seq_layer owns no tensor at all)
    backbone.layers.{i}.hidden_layer.ln.weight / .bias  [D]  as ln
    backbone.layers.{i}.hidden_layer.fc1.weight / .bias
    backbone.layers.{i}.hidden_layer.fc2.weight / .bias

Choices where SPEC.md is silent (see also README.md next to this file):
  * Positional encoding per mixer: pe `empty` -> no rotation anywhere. Otherwise attention and
    local_attention rotate by absolute token position and rat rotates by chunk index t // L,
    whatever of rope / interrope / rope_interrope is named (rope_interrope is the hybrid's name).
  * RoPE is applied per head (dim = d_head); for rat it is applied after the group tiling (the
    rotation is the same for every head, so tiling before or after is equivalent).
  * in_proj / out_proj have no bias unless `bias` (attention kinds only: the authors' rat and rnn
    assert bias is False). `ln` (backbone default, per cell) picks the attention kinds' input_norm,
    the FFN's ln and the final norm (the authors' nn/norm.py, eps 1e-6 as their modules pass);
    rat and rnn always use RMSNorm.
  * When tied, the model owns no separate head parameter; lm_head uses embedding.wte.weight. A
    head.lm_head.weight found in a tied checkpoint is ignored (it must equal wte).
  * RAT gate_bias init for L <= 2: U(1, max(L-1, 1)), i.e. log(1) = 0 for L = 1 and L = 2.
"""
import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

IGNORE = -100


# ----------------------------------------------------------------------------------------------
# config

class CellConfig:
    def __init__(self, d, bb=None):
        d = d or {}
        bb = bb or {}
        self.name = d.get("_name_")
        self.ln = d.get("ln") or bb.get("ln") or "rmsnorm"
        self.bias = bool(d["bias"] if d.get("bias") is not None else bb.get("bias") or False)
        self.d_head = d.get("d_head")
        self.ngroups = d.get("ngroups", 1) or 1
        self.chunk_size = d.get("chunk_size")
        self.window_size = d.get("window_size")


class ModelConfig:
    """Parsed view of the authors' resolved config.yaml; `raw` keeps the full dict."""

    def __init__(self, raw):
        self.raw = raw
        data = raw.get("data", {}) or {}
        model = raw["model"]
        bb = model["backbone"]
        emb = model.get("embedding", {}) or {}
        task = raw.get("task", {}) or {}
        self.seq_len = data.get("seq_len")
        self.num_bytes = data.get("num_bytes", 2)
        self.ignore_input_index = data.get("ignore_input_index")  # None: no masking by input
        self.vocab_size = emb.get("vocab_size", data.get("vocab_size"))
        self.backbone = bb["_name_"]
        self.num_layers = bb["num_layers"]
        self.d_model = bb["d_model"]
        self.interleave_step = bb.get("interleave_step", 1) or 1
        self.seq_cell = CellConfig(bb.get("seq_cell"), bb)
        self.seq_cell1 = CellConfig(bb.get("seq_cell1"), bb) if bb.get("seq_cell1") else None
        self.ln = bb.get("ln") or "rmsnorm"
        self.init = dict(bb.get("init") or {"_name_": "fixed", "initializer_range": 0.02})
        hc = bb["hidden_cell"]
        assert hc.get("_name_", "ffn") == "ffn", hc
        self.d_ffn = hc["d_ffn"]
        self.act_fn = hc.get("act_fn", "gelu")
        self.ffn_bias = bool(hc["bias"] if hc.get("bias") is not None else bb.get("bias") or False)
        self.ffn_ln = hc.get("ln") or self.ln
        dp = hc.get("dropout") if hc.get("dropout") is not None else bb.get("dropout")
        self.dropout = float(dp or 0.0)
        pe = emb.get("pe") or {}
        self.pe = pe.get("_name_", "empty") or "empty"
        self.rope_base = float(pe.get("base", 10000) or 10000)
        self.tie_embedding = bool(task.get("tie_embedding", True))
        self.ignore_index = task.get("ignore_index", IGNORE)
        if self.ignore_index is None:
            self.ignore_index = IGNORE
        assert self.backbone in ("sequence", "sequence_interleave"), self.backbone

    def cell_for_layer(self, i):
        if self.backbone == "sequence_interleave" and i % self.interleave_step == 0:
            return self.seq_cell1
        return self.seq_cell


def load_config(path):
    with open(path) as f:
        return ModelConfig(yaml.safe_load(f))


def save_config(cfg, path):
    raw = cfg.raw if isinstance(cfg, ModelConfig) else cfg
    with open(path, "w") as f:
        yaml.safe_dump(raw, f, sort_keys=False)


# ----------------------------------------------------------------------------------------------
# building blocks

class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.weight


M64 = (1 << 64) - 1


def splitmix64(z):
    """SplitMix64's output function on numpy uint64 arrays (wrapping arithmetic) or Python ints."""
    if isinstance(z, int):
        z = (z + 0x9E3779B97F4A7C15) & M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def dropout_keep_mask(seed, stream, site, n, p):
    """rat's dropout mask (README "Choices where SPEC.md is silent"): element i of a site is kept
    iff splitmix64(key + i) >> 40 >= round(p * 2^24), key = splitmix64(splitmix64(splitmix64(seed)
    ^ stream) ^ site). Returns a bool array of n."""
    key = splitmix64(splitmix64(splitmix64(int(seed)) ^ int(stream)) ^ int(site))
    with np.errstate(over="ignore"):
        bits = splitmix64(np.uint64(key) + np.arange(n, dtype=np.uint64))
    thr = int(p * 16777216.0 + 0.5)
    return (bits >> np.uint64(40)) >= np.uint64(thr)


def make_norm(kind, d):
    """The authors' nn/norm.py registry as their modules build it (eps=1e-6)."""
    if kind == "rmsnorm":
        return RMSNorm(d, eps=1e-6)
    if kind == "layernorm":
        return nn.LayerNorm(d, eps=1e-6)
    if kind == "identity":
        return nn.Identity()
    raise ValueError("unknown ln " + str(kind))


def rope_rotate(x, pos, base):
    """Rotate-half RoPE. x [..., T, P] (time on dim -2), pos: float tensor [T] of positions."""
    P = x.shape[-1]
    half = P // 2
    i = torch.arange(half, dtype=x.dtype)
    inv_freq = base ** (-2.0 * i / P)                       # base^(-2i/dim)
    ang = pos.to(x.dtype)[:, None] * inv_freq[None, :]      # [T, P/2]
    ang = torch.cat([ang, ang], dim=-1)                     # [T, P]
    x1, x2 = x[..., :half], x[..., half:]
    rot = torch.cat([-x2, x1], dim=-1)
    return x * torch.cos(ang) + rot * torch.sin(ang)


class FFN(nn.Module):
    def __init__(self, d, d_ffn, act_fn, bias, ln="rmsnorm", dropout=0.0, site=0):
        super().__init__()
        self.act_fn = act_fn
        self.p = float(dropout)
        self.site = site            # the block index: this dropout's site in the counter hash
        self.dropout_seed = 0       # the C++ model's defaults until the trainer numbers forwards
        self.dropout_stream = 0
        self.ln = make_norm(ln, d)
        n1 = 2 * d_ffn if act_fn == "swiglu" else d_ffn
        self.fc1 = nn.Linear(d, n1, bias=bias)
        self.fc2 = nn.Linear(d_ffn, d, bias=bias)

    def act(self, h):
        """The authors' nn/activation.py registry, as the torch calls it names. softmax is over the
        feature dim (theirs calls F.softmax without dim, which on a [B, T, F] tensor picks dim 0,
        the batch: rat and this oracle take the features, see tests/python/README.md)."""
        a = self.act_fn
        if a == "gelu":
            return 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))
        if a == "fastgelu":
            return 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h ** 3)))
        if a == "relu":
            return torch.relu(h)
        if a == "swiglu":
            x, gate = h.chunk(2, dim=-1)
            return F.silu(gate) * x
        if a == "tanh":
            return torch.tanh(h)
        if a == "silu":
            return F.silu(h)
        if a == "sigmoid":
            return torch.sigmoid(h)
        if a == "exp":
            return torch.exp(h)
        if a == "relusquared":
            return F.relu(h) ** 2
        if a == "softmax":
            return F.softmax(h, dim=-1)
        if a == "identity":
            return h
        raise ValueError("unknown act_fn " + str(a))

    def forward(self, x):
        z = self.fc2(self.act(self.fc1(self.ln(x))))
        if self.training and self.p > 0:
            # the authors' nn.Dropout on fc2's output, with rat's counter-based mask
            keep = dropout_keep_mask(self.dropout_seed, self.dropout_stream, self.site,
                                     z.numel(), self.p).reshape(z.shape)
            z = z * torch.from_numpy(keep).to(z.dtype) / (1.0 - self.p)
        return x + z


class AttentionMixer(nn.Module):
    """Causal softmax attention; window None = full causal, else keys t-window..t."""

    def __init__(self, d, d_head, window=None, use_rope=True, base=10000.0, ln="rmsnorm", bias=False):
        super().__init__()
        self.d, self.P, self.H = d, d_head, d // d_head
        self.window = window
        self.use_rope = use_rope
        self.base = base
        self.input_norm = make_norm(ln, d)
        self.in_proj = nn.Linear(d, 3 * d, bias=bias)
        self.out_proj = nn.Linear(d, d, bias=bias)

    def forward(self, x):
        return x + self.out_proj(self.mix(x))

    def mix(self, x):
        """The attention output o [B, T, D] before out_proj."""
        B, T, D = x.shape
        H, P = self.H, self.P
        u = self.input_norm(x)
        v, q, k = self.in_proj(u).split([D, D, D], dim=-1)           # [v, q, k] order
        q = q.reshape(B, T, H, P).transpose(1, 2)                       # [B, H, T, P]
        k = k.reshape(B, T, H, P).transpose(1, 2)
        v = v.reshape(B, T, H, P).transpose(1, 2)
        if self.use_rope:
            pos = torch.arange(T, dtype=x.dtype)
            q = rope_rotate(q, pos, self.base)
            k = rope_rotate(k, pos, self.base)
        outs = []
        for t in range(T):
            lo = 0 if self.window is None else max(0, t - self.window)
            s = (k[:, :, lo:t + 1, :] * q[:, :, t:t + 1, :]).sum(-1) * P ** -0.5   # [B, H, n]
            w = torch.softmax(s, dim=-1)
            outs.append((w[..., None] * v[:, :, lo:t + 1, :]).sum(2))             # [B, H, P]
        return torch.stack(outs, dim=2).transpose(1, 2).reshape(B, T, D)


class RNNMixer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.d = d
        self.input_norm = RMSNorm(d)
        self.in_proj = nn.Linear(d, 3 * d, bias=False)
        self.out_proj = nn.Linear(d, d, bias=False)
        self.gate_bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        z, h = self.mix(x)
        return x + self.out_proj(z * h)

    def mix(self, x):
        """(z, h): output gate and recurrent state [B, T, D]."""
        B, T, D = x.shape
        u = self.input_norm(x)
        z, v, g = self.in_proj(u).split([D, D, D], dim=-1)             # [z, v, g] order
        z = torch.sigmoid(z)
        g = torch.sigmoid(g + self.gate_bias)
        h = torch.zeros(B, D, dtype=x.dtype)
        hs = []
        for t in range(T):
            h = g[:, t] * h + (1 - g[:, t]) * v[:, t]
            hs.append(h)
        return z, torch.stack(hs, dim=1)


class RATMixer(nn.Module):
    def __init__(self, d, d_head, ngroups, chunk_size, use_rope=True, base=10000.0):
        super().__init__()
        self.d, self.P, self.H = d, d_head, d // d_head
        self.G, self.L = ngroups, chunk_size
        assert self.H % self.G == 0 and self.H * self.P == d
        self.use_rope = use_rope
        self.base = base
        self.input_norm = RMSNorm(d)
        self.in_proj = nn.Linear(d, 3 * d + 2 * ngroups * d_head, bias=False)
        self.out_proj = nn.Linear(d, d, bias=False)
        self.gate_bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        z, o = self.mix(x)
        return x + self.out_proj(z * o)

    def mix(self, x):
        """(z, o): output gate and inter-chunk attention output [B, T, D] (before z * o, out_proj)."""
        B, T, D = x.shape
        H, P, G, L = self.H, self.P, self.G, self.L
        GP = G * P
        u = self.input_norm(x)
        z, v, g, q, k = self.in_proj(u).split([D, D, D, GP, GP], dim=-1)
        z = torch.sigmoid(z)
        g = torch.sigmoid(g + self.gate_bias)
        # tile: repeat the whole G*P vector H/G times -> head h uses group h % G
        q = torch.cat([q] * (H // G), dim=-1)
        k = torch.cat([k] * (H // G), dim=-1)

        # intra-chunk gated recurrence, state reset at every chunk start, same gate for v and k
        vts, kts = [], []
        for t in range(T):
            if t % L == 0:
                pv = torch.zeros(B, D, dtype=x.dtype)
                pk = torch.zeros(B, D, dtype=x.dtype)
            pv = g[:, t] * pv + (1 - g[:, t]) * v[:, t]
            pk = g[:, t] * pk + (1 - g[:, t]) * k[:, t]
            vts.append(pv)
            kts.append(pk)
        vt = torch.stack(vts, dim=1).reshape(B, T, H, P).transpose(1, 2)   # [B, H, T, P]
        kt = torch.stack(kts, dim=1).reshape(B, T, H, P).transpose(1, 2)
        qh = q.reshape(B, T, H, P).transpose(1, 2)

        # interrope: rotate by the chunk index
        if self.use_rope:
            cpos = torch.tensor([t // L for t in range(T)], dtype=x.dtype)
            qh = rope_rotate(qh, cpos, self.base)
            kt = rope_rotate(kt, cpos, self.base)

        outs = []
        for t in range(T):
            c = t // L
            finals = [(cc + 1) * L - 1 for cc in range(c)]   # last token of every earlier chunk
            idx = finals + [t]                               # ... then the query's own running state
            keys = kt[:, :, idx, :]                          # [B, H, c+1, P]
            vals = vt[:, :, idx, :]
            s = (keys * qh[:, :, t:t + 1, :]).sum(-1) * P ** -0.5
            w = torch.softmax(s, dim=-1)
            outs.append((w[..., None] * vals).sum(2))
        return z, torch.stack(outs, dim=2).transpose(1, 2).reshape(B, T, D)


class IdentityMixer(nn.Module):
    """The authors' `identity` layer (configs/model/backbone/layer/identity.yaml; SPEC.md: "Their
    `identity` layer returns its input"): y = x, with no norm, no residual branch, no parameters."""

    def forward(self, x):
        return x


def make_mixer(cell, cfg):
    D = cfg.d_model
    base = cfg.rope_base
    rope = cfg.pe != "empty"
    if cell.name == "attention":
        return AttentionMixer(D, cell.d_head, None, rope, base, cell.ln, cell.bias)
    if cell.name == "local_attention":
        return AttentionMixer(D, cell.d_head, int(cell.window_size), rope, base, cell.ln, cell.bias)
    if cell.name == "rat":
        return RATMixer(D, cell.d_head, cell.ngroups, int(cell.chunk_size), rope, base)
    if cell.name == "rnn":
        return RNNMixer(D)
    if cell.name == "identity":
        return IdentityMixer()
    raise ValueError("unknown seq_cell " + str(cell.name))


class Block(nn.Module):
    def __init__(self, cfg, i):
        super().__init__()
        self.seq_layer = make_mixer(cfg.cell_for_layer(i), cfg)
        self.hidden_layer = FFN(cfg.d_model, cfg.d_ffn, cfg.act_fn, cfg.ffn_bias, cfg.ffn_ln,
                                cfg.dropout, i)

    def forward(self, x):
        return self.hidden_layer(self.seq_layer(x))


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList([Block(cfg, i) for i in range(cfg.num_layers)])
        self.ln = make_norm(cfg.ln, cfg.d_model)

    def forward(self, x):
        for blk in self.layers:
            x = blk(x)
        return self.ln(x)


class Embedding(nn.Module):
    def __init__(self, V, D):
        super().__init__()
        self.wte = nn.Embedding(V, D)


class Head(nn.Module):
    def __init__(self, V, D):
        super().__init__()
        self.lm_head = nn.Linear(D, V, bias=False)


class LM(nn.Module):
    def __init__(self, cfg, dtype=torch.float64):
        super().__init__()
        self.cfg = cfg
        self.embedding = Embedding(cfg.vocab_size, cfg.d_model)
        self.backbone = Backbone(cfg)
        if not cfg.tie_embedding:
            self.head = Head(cfg.vocab_size, cfg.d_model)
        self.to(dtype)
        self.dtype = dtype
        # Scoring mode by default (no dropout), as rat's forward outside training; the dropout
        # cases' training forward turns it on with .train() (make_case.py).
        self.eval()

    def head_weight(self):
        return self.embedding.wte.weight if self.cfg.tie_embedding else self.head.lm_head.weight

    def forward(self, ids):
        x = self.embedding.wte(ids.long())
        h = self.backbone(x)
        return h @ self.head_weight().t()

    def loss(self, logits, labels):
        return lm_loss(logits, labels, self.cfg.ignore_index)

    def load_weights(self, tensors, strict=True):
        """Load {name: tensor} (e.g. from st.load_file). Tied: head.lm_head.weight is ignored."""
        t = dict(tensors)
        if self.cfg.tie_embedding:
            t.pop("head.lm_head.weight", None)
        sd = self.state_dict()
        missing = [k for k in sd if k not in t]
        extra = [k for k in t if k not in sd]
        if strict and (missing or extra):
            raise KeyError("missing %s, unexpected %s" % (missing, extra))
        with torch.no_grad():
            for k, v in sd.items():
                if k in t:
                    assert tuple(t[k].shape) == tuple(v.shape), (k, t[k].shape, v.shape)
                    v.copy_(t[k].to(v.dtype))


def lm_loss(logits, labels, ignore_index=IGNORE):
    """Mean cross-entropy over labels != ignore_index, written out (log-softmax, gather)."""
    V = logits.shape[-1]
    lg = logits.reshape(-1, V)
    lb = labels.reshape(-1).long()
    mask = lb != ignore_index
    logp = torch.log_softmax(lg, dim=-1)
    nll = -logp[mask].gather(1, lb[mask][:, None])[:, 0]
    return nll.mean()


def lm_nll_sum(logits, labels, ignore_index=IGNORE):
    """(sum of NLL over counted labels, number of counted labels)."""
    V = logits.shape[-1]
    lg = logits.reshape(-1, V)
    lb = labels.reshape(-1).long()
    mask = lb != ignore_index
    logp = torch.log_softmax(lg, dim=-1)
    nll = -logp[mask].gather(1, lb[mask][:, None])[:, 0]
    return nll.sum(), int(mask.sum())


# ----------------------------------------------------------------------------------------------
# init, data, generation

def init_params(model, seed):
    """SPEC.md "Initialisation": linear/embedding ~ N(0, 0.02), biases 0, norm weights 1,
    RAT gate_bias = log(U(1, L-1)), RNN gate_bias = log(U(1, seq_len-1)). Parameters are visited in
    named_parameters() order with one torch.Generator seeded by `seed`."""
    gen = torch.Generator().manual_seed(int(seed))
    cfg = model.cfg
    mixers = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (RATMixer, RNNMixer)):
            mixers[name + ".gate_bias"] = mod
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in mixers:
                mod = mixers[name]
                if isinstance(mod, RATMixer):
                    hi = max(mod.L - 1, 1)
                else:
                    hi = max((cfg.seq_len or 2) - 1, 1)
                uni = 1.0 + (hi - 1.0) * torch.rand(p.shape, generator=gen, dtype=torch.float64)
                p.copy_(torch.log(uni).to(p.dtype))
            elif name.endswith("norm.weight") or name.endswith("ln.weight"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            elif name.endswith(".weight"):
                p.copy_((0.02 * torch.randn(p.shape, generator=gen, dtype=torch.float64)).to(p.dtype))
            else:
                raise KeyError(name)
    return model


def make_samples(tokens, T, ignore_input_index=None):
    """SPEC.md "Data": sample r: inputs tok[rT .. rT+T-1], labels tok[rT+1 .. rT+T]; label -100 where
    the input equals ignore_input_index; trailing partial sample dropped (needs rT+T < len)."""
    tok = torch.as_tensor(tokens).long()
    n = (len(tok) - 1) // T
    inputs = torch.stack([tok[r * T: r * T + T] for r in range(n)]) if n else torch.zeros(0, T).long()
    labels = torch.stack([tok[r * T + 1: r * T + T + 1] for r in range(n)]) if n else torch.zeros(0, T).long()
    if ignore_input_index is not None:
        labels = labels.masked_fill(inputs == int(ignore_input_index), IGNORE)
    return inputs, labels


@torch.no_grad()
def greedy_generate(model, prompt_ids, n):
    """Greedy decoding by full forward of the whole prefix at every step (no cache). Returns the n new
    ids and, per step, the margin between the best and second-best logit (to judge near-ties)."""
    ids = [int(i) for i in prompt_ids]
    new, margins = [], []
    for _ in range(n):
        logits = model(torch.tensor([ids]))[0, -1]
        top = torch.topk(logits, 2).values
        nxt = int(torch.argmax(logits))
        new.append(nxt)
        margins.append(float(top[0] - top[1]))
        ids.append(nxt)
    return new, margins
