#!/usr/bin/env python3
"""Train a tiny Hugging Face ViT on scikit-learn's bundled 8x8 digits.

Writes ``demo/digits-vit/``:

* ``config.json`` + ``model.safetensors``  -- ``ViTForImageClassification`` (float32)
* ``test.safetensors``  -- ``pixel_values`` f32 [N,1,8,8] (preprocessed test split),
                           ``labels`` i64 [N], ``torch_logits`` f32 [N,10]
* ``metrics.json``      -- accuracies, sizes, versions
* ``README.md``         -- model card (generated)

Data: ``sklearn.datasets.load_digits`` (ships with scikit-learn, no download),
stratified 80/20 split with ``random_state=0``.
Preprocessing: ``pixel_values = (x / 16.0 - 0.5) / 0.5`` (x in 0..16), shape [N,1,8,8].

Usage:  python scripts/train_digits_vit.py            (CPU, single thread, ~2-3 min)
Deterministic: fixed seeds, deterministic algorithms, one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.dont_write_bytecode = True

import inspect  # noqa: E402

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from transformers import ViTConfig, ViTForImageClassification  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save_safetensors  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "demo" / "digits-vit"
MAX_MODEL_BYTES = 300 * 1024
MIN_TEST_ACC = 0.95


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup", type=float, default=0.05, help="fraction of steps with linear warm-up")
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--shift", type=float, default=1.0, help="max random translation in pixels (augmentation)")
    ap.add_argument("--rotate", type=float, default=10.0, help="max random rotation in degrees (augmentation)")
    ap.add_argument("--scale", type=float, default=0.1, help="max random relative scale change (augmentation)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--no-save", action="store_true", help="train and report only (hyper-parameter search)")
    return ap.parse_args()


def preprocess(x: np.ndarray) -> torch.Tensor:
    """x: [N, 64] raw digit intensities in 0..16 -> pixel_values [N, 1, 8, 8] in [-1, 1]."""
    x = torch.from_numpy(np.asarray(x, dtype=np.float32))
    return ((x / 16.0 - 0.5) / 0.5).reshape(-1, 1, 8, 8).contiguous()


def augment(px: torch.Tensor, args: argparse.Namespace, gen: torch.Generator) -> torch.Tensor:
    """Random affine jitter per image: translation up to +/-args.shift pixels,
    rotation up to +/-args.rotate degrees, isotropic scale in 1 +/- args.scale
    (bilinear; uncovered pixels get the background value -1, i.e. raw intensity 0)."""
    n = px.shape[0]
    if args.shift == 0 and args.rotate == 0 and args.scale == 0:
        return px
    u = lambda: torch.rand(n, generator=gen) * 2.0 - 1.0  # noqa: E731  U(-1, 1)
    ang = u() * math.radians(args.rotate)
    sc = 1.0 + u() * args.scale
    tx, ty = u() * args.shift * (2.0 / 8.0), u() * args.shift * (2.0 / 8.0)  # normalised coords
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], 1)
    grid = F.affine_grid(theta, list(px.shape), align_corners=False)
    out = F.grid_sample(px + 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1.0
    return out.contiguous()


def lr_lambda_factory(total_steps: int, warmup_steps: int):
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return f


@torch.no_grad()
def predict_logits(model: torch.nn.Module, px: torch.Tensor, batch: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(pixel_values=px[i : i + batch]).logits for i in range(0, px.shape[0], batch)])


def main() -> int:
    args = parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    digits = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        digits.data, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    px_tr, px_te = preprocess(x_tr), preprocess(x_te)
    lab_tr = torch.from_numpy(y_tr.astype(np.int64))
    lab_te = torch.from_numpy(y_te.astype(np.int64))

    config = ViTConfig(
        image_size=8,
        patch_size=2,
        num_channels=1,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate,
        hidden_act="gelu",
        hidden_dropout_prob=args.dropout,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-12,
        qkv_bias=True,
        num_labels=10,
        id2label={str(i): str(i) for i in range(10)},
        label2id={str(i): i for i in range(10)},
    )
    config._attn_implementation = "eager"
    model = ViTForImageClassification(config).float()
    n_params = sum(p.numel() for p in model.parameters())

    gen = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = math.ceil(px_tr.shape[0] / args.batch)
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda_factory(total, max(1, int(args.warmup * total))))

    print(
        f"train {px_tr.shape[0]} / test {px_te.shape[0]} images; params {n_params} "
        f"({4 * n_params / 1024:.1f} KiB f32); {args.epochs} epochs x {steps_per_epoch} steps"
    )
    t0 = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(px_tr.shape[0], generator=gen)
        tot_loss = 0.0
        for i in range(0, px_tr.shape[0], args.batch):
            idx = perm[i : i + args.batch]
            xb = augment(px_tr[idx], args, gen)
            logits = model(pixel_values=xb).logits
            loss = F.cross_entropy(logits, lab_tr[idx], label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += loss.item() * idx.numel()
        if epoch % 10 == 0 or epoch == args.epochs:
            te_acc = (predict_logits(model, px_te).argmax(-1) == lab_te).float().mean().item()
            print(
                f"epoch {epoch:4d}  loss {tot_loss / px_tr.shape[0]:.4f}  test acc {te_acc:.4f}  "
                f"lr {sched.get_last_lr()[0]:.2e}  ({time.time() - t0:.0f}s)"
            )

    model.eval()
    logits_te = predict_logits(model, px_te).float().contiguous()
    test_acc = (logits_te.argmax(-1) == lab_te).float().mean().item()
    train_acc = (predict_logits(model, px_tr).argmax(-1) == lab_tr).float().mean().item()
    n_correct = int((logits_te.argmax(-1) == lab_te).sum())
    print(f"final: train acc {train_acc:.4f}, test acc {test_acc:.4f} ({n_correct}/{px_te.shape[0]})")
    print(f"training time {time.time() - t0:.0f}s")
    if args.no_save:
        return 0
    assert test_acc >= MIN_TEST_ACC, f"test accuracy {test_acc:.4f} < {MIN_TEST_ACC}"

    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    kwargs = {"safe_serialization": True} if "safe_serialization" in inspect.signature(model.save_pretrained).parameters else {}
    model.save_pretrained(out, **kwargs)
    meta = {
        "format": "pt",
        "generator": "scripts/train_digits_vit.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "scikit-learn": sklearn.__version__,
        "preprocessing": "pixel_values = (x / 16.0 - 0.5) / 0.5, x = load_digits().data in 0..16, reshaped [N,1,8,8]",
    }
    save_safetensors(
        {"pixel_values": px_te, "labels": lab_te, "torch_logits": logits_te}, out / "test.safetensors", metadata=meta
    )
    metrics = {
        "test_accuracy": round(test_acc, 6),
        "train_accuracy": round(train_acc, 6),
        "test_correct": n_correct,
        "n_test": int(px_te.shape[0]),
        "n_train": int(px_tr.shape[0]),
        "params": int(n_params),
        "epochs": args.epochs,
        "hyperparameters": {
            "hidden_size": args.hidden,
            "num_hidden_layers": args.layers,
            "num_attention_heads": args.heads,
            "intermediate_size": args.intermediate,
            "hidden_dropout_prob": args.dropout,
            "batch_size": args.batch,
            "optimizer": "AdamW",
            "lr": args.lr,
            "weight_decay": args.wd,
            "schedule": f"linear warm-up {args.warmup:.0%} of steps, then cosine to 0",
            "label_smoothing": args.label_smoothing,
            "augmentation": (
                f"random affine per image: shift +/-{args.shift:g} px, rotation +/-{args.rotate:g} deg, "
                f"scale 1 +/- {args.scale:g} (bilinear, background fill)"
            ),
            "seed": args.seed,
        },
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "scikit-learn": sklearn.__version__,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    # ---- verify: reload from disk and reproduce the logits / accuracy ----
    reloaded = ViTForImageClassification.from_pretrained(out, attn_implementation="eager").eval()
    rl = predict_logits(reloaded, px_te)
    diff = (rl - logits_te).abs().max().item()
    assert diff == 0.0, f"reloaded model differs by {diff}"
    reloaded_sdpa = ViTForImageClassification.from_pretrained(out).eval()
    diff_sdpa = (predict_logits(reloaded_sdpa, px_te) - logits_te).abs().max().item()
    assert diff_sdpa < 1e-4, diff_sdpa
    model_bytes = (out / "model.safetensors").stat().st_size
    assert model_bytes <= MAX_MODEL_BYTES, f"model.safetensors is {model_bytes} B"

    (out / "README.md").write_text(readme(metrics, model_bytes, args))
    print(f"reload check: eager max diff {diff}, sdpa max diff {diff_sdpa:.1e}")
    for f in sorted(out.iterdir()):
        print(f"  {f.relative_to(REPO)}  {f.stat().st_size} B")
    return 0


def readme(m: dict, model_bytes: int, args: argparse.Namespace) -> str:
    h = m["hyperparameters"]
    cmd = "python scripts/train_digits_vit.py"
    return f"""# digits-vit: a tiny ViT for 8x8 handwritten digits

A Hugging Face `ViTForImageClassification` trained from scratch on the 8x8 digits
data set bundled with scikit-learn (`sklearn.datasets.load_digits`, 1797 images,
10 classes). It is small enough for a microcontroller: {m["params"]} parameters,
`model.safetensors` is {model_bytes} bytes in float32.

| | |
|---|---|
| architecture | ViT, image 8x8, patch 2x2 (16 patches + CLS = 17 tokens), 1 channel |
| width / depth | hidden {h["hidden_size"]}, {h["num_hidden_layers"]} layers, {h["num_attention_heads"]} heads, MLP {h["intermediate_size"]}, GELU (exact, erf) |
| labels | `id2label` = {{"0": "0", ..., "9": "9"}} |
| test accuracy (PyTorch, float32) | **{m["test_accuracy"] * 100:.2f}%** ({m["test_correct"]}/{m["n_test"]}) |
| train accuracy | {m["train_accuracy"] * 100:.2f}% (n = {m["n_train"]}) |

## Preprocessing

Inputs are the raw `load_digits().data` rows (integer intensities 0..16, row-major 8x8):

```python
pixel_values = ((x / 16.0 - 0.5) / 0.5).reshape(N, 1, 8, 8).astype(np.float32)   # range [-1, 1]
```

i.e. rescale by 1/16, then normalise with mean 0.5 and std 0.5. Background (0) maps to -1.

## Files

* `config.json`, `model.safetensors` -- written by `model.save_pretrained` (float32).
* `test.safetensors` -- the held-out test split: `pixel_values` f32 [{m["n_test"]}, 1, 8, 8]
  (already preprocessed), `labels` i64 [{m["n_test"]}], `torch_logits` f32 [{m["n_test"]}, 10]
  (this model's logits in eval mode, PyTorch float32 on CPU).
* `metrics.json` -- accuracies, sizes, hyper-parameters and library versions.

## Training

```sh
{cmd}
```

(from the repository root; needs the packages in `scripts/requirements.txt`; trains on
one CPU thread in about 2-3 minutes and reproduces these files.)

* split: `train_test_split(test_size=0.2, stratify=y, random_state=0)` -> {m["n_train"]} train / {m["n_test"]} test
* {h["optimizer"]}, lr {h["lr"]}, weight decay {h["weight_decay"]}, batch {h["batch_size"]}, {m["epochs"]} epochs,
  {h["schedule"]}
* cross-entropy with label smoothing {h["label_smoothing"]}; dropout {h["hidden_dropout_prob"]}
* augmentation: {h["augmentation"]}
* seed {h["seed"]}; torch {m["torch"]}, transformers {m["transformers"]}, scikit-learn {m["scikit-learn"]}
"""


if __name__ == "__main__":
    sys.exit(main())
