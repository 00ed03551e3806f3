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



# --------------------------------------------------------------------------
# Helpers added for make_transformer_goldens.py / make_minilm_reference.py
# (make_vit_goldens.py and train_digits_vit.py keep their own copies).
# --------------------------------------------------------------------------


def setup_determinism() -> None:
    """One CPU thread + deterministic kernels: re-runs give identical bits."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def versions_metadata(generator: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """safetensors `__metadata__` recording the generating script and library versions."""
    import numpy as np
    import safetensors
    import transformers

    md = {
        "format": "pt",
        "generator": generator,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }
    if extra:
        md.update(extra)
    return md


def save_pretrained_safetensors(model: torch.nn.Module, out_dir: str | Path) -> None:
    """`model.save_pretrained(out_dir)` as a single float32 `model.safetensors`."""
    import inspect

    kwargs = {}
    # transformers 4.x has `safe_serialization`; 5.x always writes safetensors.
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True
    model.save_pretrained(out_dir, **kwargs)
    assert (Path(out_dir) / "model.safetensors").is_file(), "expected a single model.safetensors"


def print_dir_sizes(out_dir: str | Path, max_bytes: int | None = None) -> int:
    """Print the size of every file in `out_dir`; return (and optionally cap) the total."""
    out_dir = Path(out_dir)
    files = sorted(p for p in out_dir.iterdir() if p.is_file())
    total = sum(p.stat().st_size for p in files)
    for p in files:
        print(f"    {p.name:24s} {p.stat().st_size:8d} B")
    print(f"    {'total':24s} {total:8d} B")
    if max_bytes is not None:
        assert total < max_bytes, f"{out_dir}: directory too large ({total} B >= {max_bytes} B)"
    return total
