#!/usr/bin/env python3
"""Generate golden reference data for Mote's ViT implementation.

For each checkpoint below this script builds a randomly initialised Hugging Face
ViT model, perturbs every parameter so that every tensor influences the output,
and writes into ``tests/data/vit/<name>/``:

* ``config.json`` + ``model.safetensors``  -- ``model.save_pretrained`` (float32)
* ``inputs.safetensors``                   -- ``pixel_values`` float32 [N, C, H, W]
* ``expected.safetensors``                 -- the model outputs in eval mode (float32)

The model outputs are computed with the "eager" attention implementation on the
CPU, in float32, single-threaded. As a self-check the script then re-loads the
saved checkpoint with ``from_pretrained`` and also evaluates an independent
NumPy (float64) re-implementation of ViT that reads the *saved* safetensors by
their on-disk names; both must agree with the stored outputs.

Usage (from anywhere):  python scripts/make_vit_goldens.py
Requires torch, transformers, safetensors, numpy (see scripts/requirements.txt).
Nothing is downloaded; HF_HUB_OFFLINE is forced on.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.dont_write_bytecode = True

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.numpy import load_file as np_load_file  # noqa: E402
from transformers import ViTConfig, ViTForImageClassification, ViTModel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save_safetensors  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT_ROOT = REPO / "tests" / "data" / "vit"
MAX_DIR_BYTES = 300 * 1024

# name -> (model class, config kwargs, number of images, seed)
CHECKPOINTS = {
    "vit_a": (
        ViTForImageClassification,
        dict(
            image_size=16,
            patch_size=4,
            num_channels=3,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            num_labels=5,
            qkv_bias=True,
            layer_norm_eps=1e-12,
            hidden_act="gelu",
            initializer_range=0.1,
        ),
        3,
        1001,
    ),
    "vit_b": (
        ViTForImageClassification,
        dict(
            image_size=18,
            patch_size=3,
            num_channels=1,
            hidden_size=48,
            num_hidden_layers=3,
            num_attention_heads=6,
            intermediate_size=80,
            num_labels=7,
            qkv_bias=False,
            layer_norm_eps=1e-6,
            hidden_act="gelu",
            initializer_range=0.08,
        ),
        2,
        1002,
    ),
    "vit_model_c": (
        ViTModel,
        dict(
            image_size=20,
            patch_size=5,
            num_channels=2,
            hidden_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=40,
            qkv_bias=True,
            hidden_act="gelu_new",
            layer_norm_eps=1e-12,
            initializer_range=0.1,
        ),
        2,
        1003,
    ),
}


def setup_determinism() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def versions_metadata(extra: dict[str, str] | None = None) -> dict[str, str]:
    md = {
        "format": "pt",
        "generator": "scripts/make_vit_goldens.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }
    if extra:
        md.update(extra)
    return md


@torch.no_grad()
def init_and_perturb(model: torch.nn.Module, init_range: float, gen: torch.Generator) -> None:
    """Re-initialise every parameter explicitly (independent of transformers' init
    order) so that every tensor is non-trivial:

    * Linear / Conv2d weights: N(0, initializer_range)  (same law as the HF init)
    * every bias (Linear, Conv2d, LayerNorm):  0.1 * N(0, 1)
    * LayerNorm weights:                        1 + 0.2 * N(0, 1)
    * cls_token / position_embeddings:          0.5 * N(0, 1)
    """
    seen = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            seen.add(full)
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if isinstance(module, torch.nn.LayerNorm):
                p.copy_(1.0 + 0.2 * noise if p_name == "weight" else 0.1 * noise)
            elif isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                p.copy_(init_range * noise if p_name == "weight" else 0.1 * noise)
            elif p_name in ("cls_token", "position_embeddings"):
                p.copy_(0.5 * noise)
            else:
                raise RuntimeError(f"unexpected parameter {full} in {type(module).__name__}")
    missing = {n for n, _ in model.named_parameters()} - seen
    assert not missing, missing


def save_model(model: torch.nn.Module, out_dir: Path) -> None:
    kwargs = {}
    # transformers 4.x has `safe_serialization`; 5.x always writes safetensors.
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True
    model.save_pretrained(out_dir, **kwargs)
    assert (out_dir / "model.safetensors").is_file(), "expected a single model.safetensors"


# --------------------------------------------------------------------------
# Independent NumPy reference (float64), reading the saved checkpoint by the
# names that are actually on disk. Documents the math the Rust side implements.
# --------------------------------------------------------------------------

def _np_layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _np_act(name, x):
    if name == "gelu":
        from math import erf, sqrt

        verf = np.vectorize(erf)
        return 0.5 * x * (1.0 + verf(x / sqrt(2.0)))
    if name == "gelu_new":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
    raise ValueError(name)


def numpy_vit(ckpt: dict, cfg: ViTConfig, px: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    W = {k: v.astype(np.float64) for k, v in ckpt.items()}
    g = lambda k: W[prefix + k]  # noqa: E731
    px = px.astype(np.float64)
    n, c, h, w_ = px.shape
    p = cfg.patch_size
    d = cfg.hidden_size
    nh = cfg.num_attention_heads
    hd = d // nh
    gh, gw = h // p, w_ // p
    # Patch embedding == Conv2d(kernel=stride=p): patches in row-major (gy, gx)
    # order, each flattened in (c, ky, kx) order to match weight [d, c, p, p].
    patches = px.reshape(n, c, gh, p, gw, p).transpose(0, 2, 4, 1, 3, 5).reshape(n, gh * gw, c * p * p)
    pw = g("embeddings.patch_embeddings.projection.weight").reshape(d, c * p * p)
    x = patches @ pw.T + g("embeddings.patch_embeddings.projection.bias")
    cls = np.broadcast_to(g("embeddings.cls_token"), (n, 1, d))
    x = np.concatenate([cls, x], axis=1) + g("embeddings.position_embeddings")
    t = x.shape[1]

    def lin(v, name, bias=True):
        out = v @ g(name + ".weight").T
        if bias:
            out = out + g(name + ".bias")
        return out

    for i in range(cfg.num_hidden_layers):
        L = f"encoder.layer.{i}."
        hsn = _np_layernorm(x, g(L + "layernorm_before.weight"), g(L + "layernorm_before.bias"), cfg.layer_norm_eps)
        q = lin(hsn, L + "attention.attention.query", cfg.qkv_bias)
        k = lin(hsn, L + "attention.attention.key", cfg.qkv_bias)
        v = lin(hsn, L + "attention.attention.value", cfg.qkv_bias)
        q, k, v = (a.reshape(n, t, nh, hd).transpose(0, 2, 1, 3) for a in (q, k, v))
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        a = (s @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
        x = x + lin(a, L + "attention.output.dense")
        hsn = _np_layernorm(x, g(L + "layernorm_after.weight"), g(L + "layernorm_after.bias"), cfg.layer_norm_eps)
        m = _np_act(cfg.hidden_act, lin(hsn, L + "intermediate.dense"))
        x = x + lin(m, L + "output.dense")
    x = _np_layernorm(x, g("layernorm.weight"), g("layernorm.bias"), cfg.layer_norm_eps)
    out = {"last_hidden_state": x}
    if prefix + "pooler.dense.weight" in W:
        out["pooler_output"] = np.tanh(lin(x[:, 0], "pooler.dense"))
    if "classifier.weight" in W:
        out["logits"] = x[:, 0] @ W["classifier.weight"].T + W["classifier.bias"]
    return out


# --------------------------------------------------------------------------


def make_checkpoint(name: str, cls, cfg_kwargs: dict, n_images: int, seed: int) -> None:
    out_dir = OUT_ROOT / name
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    config = ViTConfig(**cfg_kwargs)
    config._attn_implementation = "eager"  # reference math; not serialised to config.json
    model = cls(config)
    init_and_perturb(model, cfg_kwargs["initializer_range"], gen)
    model = model.float().eval()

    c, s = cfg_kwargs["num_channels"], cfg_kwargs["image_size"]
    pixel_values = torch.randn((n_images, c, s, s), generator=gen, dtype=torch.float32)

    with torch.no_grad():
        out = model(pixel_values=pixel_values)
    if cls is ViTForImageClassification:
        expected = {"logits": out.logits}
    else:
        expected = {"last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output}
    expected = {k: v.detach().to(torch.float32).contiguous() for k, v in expected.items()}

    save_model(model, out_dir)
    meta = versions_metadata({"model": name, "class": cls.__name__, "seed": str(seed)})
    save_safetensors({"pixel_values": pixel_values.contiguous()}, out_dir / "inputs.safetensors", metadata=meta)
    save_safetensors(expected, out_dir / "expected.safetensors", metadata=meta)

    # ---------------- self-checks ----------------
    # 1) re-load via from_pretrained (both eager and the default sdpa path)
    for impl in ("eager", "sdpa"):
        reloaded = cls.from_pretrained(out_dir, attn_implementation=impl).eval()
        with torch.no_grad():
            r = reloaded(pixel_values=pixel_values)
        for k, v in expected.items():
            diff = (getattr(r, k) - v).abs().max().item()
            tol = 0.0 if impl == "eager" else 1e-5
            assert diff <= tol, f"{name}: reload ({impl}) {k} differs by {diff}"
    # 2) independent float64 NumPy implementation over the saved tensors
    ckpt = np_load_file(str(out_dir / "model.safetensors"))
    prefix = "vit." if cls is ViTForImageClassification else ""
    ref = numpy_vit(ckpt, config, pixel_values.numpy(), prefix)
    np_diffs = {}
    for k, v in expected.items():
        d = float(np.abs(ref[k] - v.numpy().astype(np.float64)).max())
        np_diffs[k] = d
        assert d < 1e-4, f"{name}: numpy reference {k} differs by {d}"
    # 3) every parameter matters: the checkpoint has no all-zero / all-one tensors
    for k, v in ckpt.items():
        assert not np.all(v == 0) and not np.all(v == 1), f"{name}: trivial tensor {k}"

    # ---------------- report ----------------
    with torch.no_grad():
        att = model(pixel_values=pixel_values, output_attentions=True).attentions
    max_att = max(a.max().item() for a in att)
    print(f"[{name}] {cls.__name__}  ->  {out_dir.relative_to(REPO)}")
    print(f"  model.safetensors: {len(ckpt)} tensors, {sum(v.size for v in ckpt.values())} params")
    print(f"  inputs.safetensors: pixel_values {list(pixel_values.shape)} float32")
    for k, v in expected.items():
        print(
            f"  expected.safetensors: {k} {list(v.shape)} float32 "
            f"(std {v.std().item():.3f}, |max| {v.abs().max().item():.3f}; numpy-f64 max diff {np_diffs[k]:.1e})"
        )
    print(f"  largest attention probability: {max_att:.3f}")
    if cfg_kwargs["hidden_act"] == "gelu_new":
        # show that the goldens can tell exact GELU from the tanh approximation
        alt = numpy_vit(ckpt, ViTConfig(**{**cfg_kwargs, "hidden_act": "gelu"}), pixel_values.numpy(), prefix)
        dd = max(float(np.abs(alt[k] - ref[k]).max()) for k in expected)
        print(f"  (same model with exact 'gelu' instead would differ by up to {dd:.1e})")
    total = sum(f.stat().st_size for f in out_dir.iterdir())
    for f in sorted(out_dir.iterdir()):
        print(f"    {f.name:24s} {f.stat().st_size:8d} B")
    print(f"    {'total':24s} {total:8d} B")
    assert total < MAX_DIR_BYTES, f"{name}: directory too large ({total} B)"


def main() -> int:
    setup_determinism()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, safetensors {safetensors.__version__}")
    for name, (cls, cfg_kwargs, n, seed) in CHECKPOINTS.items():
        make_checkpoint(name, cls, cfg_kwargs, n, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
