"""What scripts/pth_to_rat.py and scripts/rat_to_pth.py share: the authors' (CLAIRE-Labo/RAT) checkpoint
layout, the name rules between their state_dict and rat's tensors, their parameter order, and a small
safetensors reader/writer (SPEC.md "Checkpoints and configs").

The authors' trainer saves `{step}.pth` = torch.save({"task": task.state_dict(), "config": EasyDict (the
resolved Hydra config), "step": index of the last finished step, "optimizer": optimizer.state_dict(),
"lr_scheduler": lr_scheduler.state_dict(), "resume_kwargs": {"resume_step": step}}).
"""
import json
import os
import pickle
import re
import struct
import sys
import types

import numpy as np
import torch


class ConvertError(Exception):
    """A one-line reason to refuse the conversion (printed as `error: ...`, exit status 1)."""


# Stored name -> rat name, applied in order to every tensor name of the authors' state_dict. rat's
# tensor names are the authors' (SPEC.md), so only their wrappers' prefixes go: a new tensor of
# either side (a layernorm bias, a projection bias) needs no entry; a renamed one is one line here.
NAME_RULES = [
    (r"_orig_mod\.", ""),  # torch.compile's wrapper; their loaders strip it wherever it stands
    (r"^module\.", ""),    # DistributedDataParallel's wrapper
]

TIED_HEAD, EMBEDDING = "head.lm_head.weight", "embedding.wte.weight"


def rat_name(stored):
    for pattern, repl in NAME_RULES:
        stored = re.sub(pattern, repl, stored)
    return stored


# The authors' task.parameters() order, which indexes their optimizer state: PyTorch lists a module's
# own parameters, then its children's in the order __init__ assigns them (CLAIRE-Labo/RAT src/model).
# Per module kind, the child (or own parameter) names in that order; a leaf's weight precedes its bias.
CHILD_ORDER = {
    "task": ["embedding", "backbone", "head"],
    "backbone": ["layers", "ln"],
    "block": ["seq_layer", "hidden_layer"],
    # RAT and RNN hold gate_bias directly, so it precedes their sub-modules.
    "rat": ["gate_bias", "in_proj", "input_norm", "out_proj"],
    "rnn": ["gate_bias", "in_proj", "out_proj", "input_norm"],
    "attention": ["in_proj", "input_norm", "out_proj"],
    "local_attention": ["in_proj", "input_norm", "out_proj"],
    "ffn": ["fc1", "fc2", "ln"],
    "identity": [],
    "leaf": ["weight", "bias"],
}


def layer_cells(config):
    """(seq cell name, hidden cell name) of every layer, as rat's and the authors' backbones build them
    (sequence_interleave: seq_cell1 on layers i % interleave_step == 0)."""
    bb = config["model"]["backbone"]
    inter = bb.get("_name_", "sequence") == "sequence_interleave"
    step = int(bb.get("interleave_step") or 2)
    out = []
    for i in range(int(bb["num_layers"])):
        seq = bb["seq_cell1"] if inter and i % step == 0 else bb["seq_cell"]
        out.append((seq.get("_name_"), (bb.get("hidden_cell") or {}).get("_name_", "ffn")))
    return out


def authors_param_order(names, config):
    """`names` (rat names of the model's parameters, the tied head left out) in the authors'
    task.parameters() order. Raises ConvertError for a name outside their module tree."""
    cells = layer_cells(config)

    def idx(kind, part, name):
        order = CHILD_ORDER.get(kind)
        if order is None or part not in order:
            raise ConvertError("tensor '%s': '%s' is not a part of the authors' %s module" % (name, part, kind))
        return order.index(part)

    def key(name):
        p = name.split(".")
        k = [idx("task", p[0], name)]
        if p[0] == "backbone":
            k.append(idx("backbone", p[1], name))
            if p[1] == "layers":
                i = int(p[2])
                if i >= len(cells):
                    raise ConvertError("tensor '%s': layer %d, the config has %d" % (name, i, len(cells)))
                k += [i, idx("block", p[3], name)]
                kind = cells[i][0] if p[3] == "seq_layer" else cells[i][1]
                k.append(idx(kind, p[4], name))
        k.append(idx("leaf", p[-1], name) if p[-1] in CHILD_ORDER["leaf"] else 0)
        return k

    return sorted(names, key=key)


# ---- the pickled config ------------------------------------------------------------------------------

class _EasyDictStandIn(dict):
    """What easydict.EasyDict unpickles to here: a dict (its attributes, a copy of the items, are set
    by pickle's BUILD into __dict__ and dropped by plain())."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "easydict" and name == "EasyDict":
            return _EasyDictStandIn
        return super().find_class(module, name)


# torch.load(pickle_module=...) needs a module with Unpickler and load.
_PICKLE = types.SimpleNamespace(Unpickler=_Unpickler, load=lambda f, **kw: _Unpickler(f, **kw).load(),
                                __name__="authors_format_pickle")


def plain(x):
    """Nested EasyDict/dict/list/tuple -> plain dicts and lists."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def load_pth(path):
    """The authors' checkpoint, without needing the easydict module."""
    if not os.path.isfile(path):
        raise ConvertError("%s: no such file" % path)
    kw = {"map_location": "cpu", "pickle_module": _PICKLE}
    if "weights_only" in torch.load.__code__.co_varnames:
        kw["weights_only"] = False
    try:
        ck = torch.load(path, **kw)
    except Exception as e:  # noqa: BLE001  (torch raises many kinds for a damaged file)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConvertError("%s: not a readable PyTorch checkpoint (%s)" % (path, msg))
    if not isinstance(ck, dict) or not isinstance(ck.get("task"), dict):
        raise ConvertError("%s: expected the authors' checkpoint, a dict with 'task' (the state_dict), "
                           "'config', 'step', 'optimizer', 'lr_scheduler'; got %s" %
                           (path, sorted(ck) if isinstance(ck, dict) else type(ck).__name__))
    return ck


def easydict_class():
    """easydict.EasyDict if installed, else a stand-in that pickles under that name (so the authors'
    loader, which imports easydict, reads it as theirs)."""
    try:
        import easydict
        return easydict.EasyDict
    except ImportError:
        mod = types.ModuleType("easydict")

        class EasyDict(dict):
            def __init__(self, d=None):
                super().__init__()
                for k, v in (d or {}).items():
                    self[k] = v
                    setattr(self, k, v)

        EasyDict.__module__, EasyDict.__qualname__ = "easydict", "EasyDict"
        mod.EasyDict = EasyDict
        sys.modules["easydict"] = mod
        return EasyDict


def to_easydict(x):
    cls = easydict_class()

    def conv(v):
        if isinstance(v, dict):
            return cls({k: conv(w) for k, w in v.items()})
        if isinstance(v, (list, tuple)):
            return [conv(w) for w in v]
        return v
    return conv(x)


# ---- safetensors -------------------------------------------------------------------------------------

_ELEM = {"F32": 4, "BF16": 2, "F16": 2}


def _bf16_bits(t):
    a = t.detach().to(torch.float32).contiguous().numpy().view(np.uint32).astype(np.uint64)
    nan = (a & 0x7FFFFFFF) > 0x7F800000
    r = (a + 0x7FFF + ((a >> 16) & 1)) >> 16  # round to nearest even
    return np.where(nan, (a >> 16) | 0x40, r).astype(np.uint16)


def write_safetensors(path, tensors, dtype="F32"):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu()
        if dtype == "F32":
            b = t.to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        elif dtype == "BF16":
            b = _bf16_bits(t).astype("<u2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """{name: float32 tensor} (F32 as is; BF16 and F16 widened exactly)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
    except (OSError, ValueError, struct.error) as e:
        raise ConvertError("%s: not a readable safetensors file (%s)" % (path, e))
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = raw[8 + n + b: 8 + n + e]
        dt = info["dtype"]
        if dt not in _ELEM or len(buf) != _ELEM[dt] * int(np.prod(info["shape"], dtype=np.int64)):
            raise ConvertError("%s: tensor '%s' (%s) is truncated or of an unsupported dtype" % (path, name, dt))
        if dt == "F32":
            a = np.frombuffer(buf, dtype="<f4").copy()
        elif dt == "F16":
            a = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        else:
            a = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(a).reshape(info["shape"])
    return out


# ---- rat's training checkpoint (src/train/checkpointing.h) --------------------------------------------

# rat's optimiser state tensors per optimizer, named as torch's (src/train/optimizer.h).
def rat_state_names(optimizer):
    name = optimizer.get("_name_", "adamw")
    if name in ("adamw", "adam"):
        return ["exp_avg", "exp_avg_sq"]
    if name == "rmsprop":
        return (["square_avg"] + (["momentum_buffer"] if float(optimizer.get("momentum") or 0) > 0 else [])
                + (["grad_avg"] if optimizer.get("centered") else []))
    if name == "sgd":
        return ["momentum_buffer"] if float(optimizer.get("momentum", 0.9) or 0) > 0 else []
    raise ConvertError("optim.optimizer._name_: '%s' is not supported by rat, expected one of adamw, adam, "
                       "sgd, rmsprop" % name)


def checkpoint_name(step):
    return "step-%08d" % step
