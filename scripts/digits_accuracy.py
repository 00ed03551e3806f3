#!/usr/bin/env python3
"""Test accuracy of the demo digits ViT from ``cargo xtask infer`` outputs.

Compares the argmax of each ``logits`` file with the labels (and PyTorch's
predictions) in ``demo/digits-vit/test.safetensors``:

    cargo xtask convert demo/digits-vit -o digits-int8.mote --dtype int8
    cargo xtask infer digits-int8.mote --input demo/digits-vit/test.safetensors --output out-int8.safetensors
    python scripts/digits_accuracy.py out-int8.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    test = load_file(str(REPO / "demo" / "digits-vit" / "test.safetensors"))
    labels, torch_pred = test["labels"], test["torch_logits"].argmax(1)
    n = len(labels)
    print(f"PyTorch: {(torch_pred == labels).sum()}/{n} correct")
    for path in sys.argv[1:]:
        pred = load_file(path)["logits"].argmax(1)
        if len(pred) != n:
            sys.exit(f"error: {path} has {len(pred)} rows, the test set {n}")
        ok, agree = int((pred == labels).sum()), int((pred == torch_pred).sum())
        print(f"{path}: {ok}/{n} correct ({100 * ok / n:.2f}%), {agree}/{n} equal to PyTorch's")


if __name__ == "__main__":
    main()
