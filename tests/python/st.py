"""Minimal safetensors writer/reader in pure Python (struct + json + torch).

File layout (the public safetensors format):
    8 bytes   little-endian uint64 N = length of the JSON header
    N bytes   UTF-8 JSON: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
                           "__metadata__": {str: str} (optional)}
              (padded with spaces so that the data section starts 8-byte aligned)
    data      raw little-endian tensor bytes; offsets are relative to the start of the data section

Supported dtypes: F64, F32, F16, BF16 (and I32/I64 for convenience).
BF16 is produced from the float32 bits with round-to-nearest-even (NaN kept quiet);
F16 via torch's .half() (IEEE round-to-nearest-even).
"""
import json
import struct

import numpy as np
import torch

_ELEM = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I32": 4, "I64": 8}


def f32_to_bf16_bits(x):
    """float tensor -> uint16 numpy array of bfloat16 bits, round-to-nearest-even from float32."""
    a = np.ascontiguousarray(x.detach().to(torch.float32).cpu().numpy()).view(np.uint32).astype(np.uint64)
    nan = (a & 0x7FFFFFFF) > 0x7F800000
    lsb = (a >> 16) & 1
    r = (a + 0x7FFF + lsb) >> 16
    r = np.where(nan, (a >> 16) | 0x40, r)  # quiet NaN, keep sign
    return (r & 0xFFFF).astype(np.uint16)


def bf16_bits_to_f32(bits):
    """uint16 numpy array of bfloat16 bits -> float32 torch tensor."""
    a = bits.astype(np.uint32) << 16
    return torch.from_numpy(a.view(np.float32).copy())


def round_to(x, dtype):
    """Return x rounded to the storage dtype ("F32"/"BF16"/"F16"/"F64") and widened back to x's dtype."""
    if dtype == "F64":
        return x.clone()
    if dtype == "F32":
        return x.to(torch.float32).to(x.dtype)
    if dtype == "F16":
        return x.to(torch.float32).half().to(x.dtype)
    if dtype == "BF16":
        return bf16_bits_to_f32(f32_to_bf16_bits(x)).reshape(x.shape).to(x.dtype)
    raise ValueError(dtype)


def _to_bytes(t, dtype):
    t = t.detach().cpu().contiguous()
    if dtype == "F64":
        return t.to(torch.float64).numpy().astype("<f8").tobytes()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.to(torch.float32).half().numpy().astype("<f2").tobytes()
    if dtype == "BF16":
        return f32_to_bf16_bits(t).astype("<u2").tobytes()
    if dtype == "I32":
        return t.to(torch.int64).numpy().astype("<i4").tobytes()
    if dtype == "I64":
        return t.to(torch.int64).numpy().astype("<i8").tobytes()
    raise ValueError("unsupported dtype " + dtype)


def save_file(tensors, path, dtype="F32", metadata=None, dtypes=None):
    """Write {name: tensor} to `path`. `dtype` is the default storage dtype, `dtypes` per-name overrides."""
    dtypes = dtypes or {}
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name]
        dt = dtypes.get(name, dtype)
        b = _to_bytes(t, dt)
        assert len(b) == t.numel() * _ELEM[dt]
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_file(path, out_dtype=None, with_dtypes=False):
    """Read a safetensors file into {name: torch tensor}. Floats come back as float32 (F16/BF16 widened,
    exactly) unless out_dtype is given; F64 stays float64. with_dtypes=True also returns {name: "F32"...}."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out, dts = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        b, e = info["data_offsets"]
        buf = raw[base + b: base + e]
        shape = info["shape"]
        if dt == "F64":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<f8").copy())
        elif dt == "F32":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<f4").copy())
        elif dt == "F16":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<f2").astype(np.float32))
        elif dt == "BF16":
            t = bf16_bits_to_f32(np.frombuffer(buf, dtype="<u2"))
        elif dt == "I32":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<i4").astype(np.int64))
        elif dt == "I64":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<i8").copy())
        else:
            raise ValueError("unsupported dtype " + dt)
        t = t.reshape(shape)
        if out_dtype is not None and t.is_floating_point():
            t = t.to(out_dtype)
        out[name] = t
        dts[name] = dt
    return (out, dts) if with_dtypes else out


def load_metadata(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
    return header.get("__metadata__", {})
