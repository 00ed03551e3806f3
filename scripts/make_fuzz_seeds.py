#!/usr/bin/env python3
"""Seed corpora for the fuzz targets in ``fuzz/`` (committed; this script remakes them).

* ``fuzz/corpus/convert/<name>``   -- ``config.json`` bytes, a NUL byte, then
  ``model.safetensors`` bytes: the input the ``convert`` target reads.
* ``fuzz/corpus/parse_run/<name>.mote`` -- the same checkpoints converted by
  ``cargo run -p xtask -- convert`` (a debug build), plus ``vit_model_c`` from
  ``tests/data``.

The checkpoints are real Hugging Face models of every supported architecture, saved by
``transformers`` ``save_pretrained`` with random weights, made as small as their configs
allow (hidden 8, one layer; RWKV needs two) so that the fuzzer's inputs stay a few KiB.

    python scripts/make_fuzz_seeds.py
"""

import json
import pathlib
import subprocess
import tempfile

import torch
import transformers as tf

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"

COMMON = dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
MODELS = {
    "vit_cls": (tf.ViTForImageClassification, tf.ViTConfig(
        **COMMON, image_size=4, patch_size=2, num_channels=1, num_labels=3), []),
    "vit_bare": (tf.ViTModel, tf.ViTConfig(
        **COMMON, image_size=4, patch_size=2, num_channels=2, hidden_act="gelu_new"), []),
    "bert": (tf.BertModel, tf.BertConfig(
        **COMMON, vocab_size=16, max_position_embeddings=8, type_vocab_size=2), []),
    "llama": (tf.LlamaForCausalLM, tf.LlamaConfig(
        **COMMON, num_key_value_heads=1, vocab_size=16, max_position_embeddings=8), ["--chunk", "4"]),
    "gpt2": (tf.GPT2LMHeadModel, tf.GPT2Config(
        n_embd=8, n_layer=1, n_head=2, n_inner=16, vocab_size=16, n_positions=8), ["--chunk", "4"]),
    "mamba": (tf.MambaForCausalLM, tf.MambaConfig(
        hidden_size=8, num_hidden_layers=1, state_size=4, expand=2, conv_kernel=2, time_step_rank=2,
        vocab_size=16), ["--chunk", "4"]),
    "rwkv": (tf.RwkvForCausalLM, tf.RwkvConfig(
        hidden_size=8, num_hidden_layers=2, attention_hidden_size=8, intermediate_size=16, vocab_size=16,
        context_length=8), ["--chunk", "4"]),
}


# (seed name, checkpoint under tests/data, convert flags); tests/fuzz_seeds.rs lists the same.
QUANTIZED_SEEDS = [
    ("vit_a_int8", "vit/vit_a", ["--dtype", "int8"]),
    ("gpt2_a_int4", "gpt2/gpt2_a", ["--dtype", "int4", "--chunk", "4"]),
]


def convert(src: pathlib.Path, out: pathlib.Path, extra: list[str]) -> None:
    subprocess.run(
        ["cargo", "run", "--quiet", "-p", "xtask", "--", "convert", str(src), "-o", str(out), *extra],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    torch.manual_seed(0)
    (CORPUS / "convert").mkdir(parents=True, exist_ok=True)
    (CORPUS / "parse_run").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (cls, cfg, extra) in MODELS.items():
            d = pathlib.Path(tmp) / name
            cls(cfg).eval().save_pretrained(d, safe_serialization=True)
            # Only the keys the converter reads matter; a compact config keeps seeds small.
            config = json.loads((d / "config.json").read_text())
            blob = json.dumps(config, separators=(",", ":")).encode() + b"\0" + (d / "model.safetensors").read_bytes()
            (CORPUS / "convert" / name).write_bytes(blob)
            convert(d, CORPUS / "parse_run" / f"{name}.mote", extra)
    convert(ROOT / "tests/data/vit/vit_model_c", CORPUS / "parse_run" / "vit_model_c.mote", [])
    # Quantized seeds (the models above are too narrow to quantize: rows of 32 or more).
    for name, src, extra in QUANTIZED_SEEDS:
        convert(ROOT / "tests/data" / src, CORPUS / "parse_run" / f"{name}.mote", extra)


if __name__ == "__main__":
    main()
