"""Helpers shared by the reference-data scripts."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

_DTYPES = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a .safetensors file byte-for-byte reproducibly.

    `safetensors.torch.save_file` stores the metadata dict in a Rust HashMap, so the
    key order in the header (and hence the file bytes) changes from run to run.
    This writer emits the same format (8-byte little-endian header length, JSON
    header padded with spaces to a multiple of 8, then the raw little-endian
    tensor data) with sorted keys, so re-running a script reproduces the file.
    """
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            arr = t.numpy()
            raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hdr += b" " * (-len(hdr) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for b in blobs:
            f.write(b)

    # round-trip check with the official reader
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(tensors)
        assert (f.metadata() or {}) == (header.get("__metadata__") or {})
        for name in tensors:
            assert torch.equal(f.get_tensor(name), tensors[name].detach().cpu())

