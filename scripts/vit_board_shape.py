#!/usr/bin/env python3
"""Writes a Hugging Face ViT checkpoint of the digits ViT's layout at another width, with
random weights, for instruction counts on the boards (the counts do not depend on the
weights' values).

The default is the shape issue 12 measured: hidden 48, MLP 96, 2 layers, 4 heads, patch
2 on 8x8 images: 39,610 parameters, about 0.69 M multiply-accumulates per image.
Standard library only (no numpy, no torch):

    python3 scripts/vit_board_shape.py /tmp/vit48
    cargo xtask convert /tmp/vit48 -o /tmp/vit48.mote
    cargo xtask qemu /tmp/vit48.mote --board m4 --input demo/digits-vit/test.safetensors --items 4 --profile
"""

import argparse
import array
import json
import random
import struct
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "demo" / "digits-vit"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--hidden", type=int, default=48)
    ap.add_argument("--intermediate", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    config = json.loads((DEMO / "config.json").read_text())
    old_h, old_i = config["hidden_size"], config["intermediate_size"]
    resize = {old_h: a.hidden, old_i: a.intermediate}
    blob = (DEMO / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    header.pop("__metadata__", None)

    rng = random.Random(a.seed)
    tensors, data, offset = {}, [], 0
    for name, t in header.items():
        shape = [resize.get(d, d) for d in t["shape"]]
        count = 1
        for d in shape:
            count *= d
        if "layernorm" in name and name.endswith("weight"):
            values = array.array("f", [1.0] * count)
        else:
            values = array.array("f", (rng.gauss(0.0, 0.1) for _ in range(count)))
        raw = values.tobytes()
        tensors[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data.append(raw)
        offset += len(raw)
    head = json.dumps(tensors).encode()
    head += b" " * (-len(head) % 8)

    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "model.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + b"".join(data))
    config.update(hidden_size=a.hidden, intermediate_size=a.intermediate, pooler_output_size=a.hidden)
    (a.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {a.out} (hidden {a.hidden}, intermediate {a.intermediate})")


if __name__ == "__main__":
    main()
