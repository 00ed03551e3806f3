"""Measures recurrent-state bytes of SSMs against KV-cache bytes of Transformers of the
same width (hidden 48, 3 layers) at several context lengths, with `cargo xtask convert`.

Random weights are enough: the sizes depend only on the shapes. Needs torch and
transformers; prints a Markdown table (the README's "state vs KV cache" table).

    python scripts/state_vs_kv.py
"""
import os
import re
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
import transformers as tf  # noqa: E402

HIDDEN, LAYERS, VOCAB = 48, 3, 64
CONTEXTS = [256, 1024, 4096]

MODELS = {
    "Llama, multi-head (6 KV heads)": tf.LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=6,
        num_key_value_heads=6, intermediate_size=128, max_position_embeddings=4096),
    "Llama, grouped-query (2 KV heads)": tf.LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=6,
        num_key_value_heads=2, intermediate_size=128, max_position_embeddings=4096),
    "GPT-2": tf.GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=6, n_positions=4096),
    "Mamba (expand 2, state 16, conv 4)": tf.MambaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, state_size=16, expand=2, conv_kernel=4),
    "RWKV-4": tf.RwkvConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, context_length=4096),
}
CLASSES = {"Llama": tf.LlamaForCausalLM, "GPT-2": tf.GPT2LMHeadModel, "Mamba": tf.MambaForCausalLM,
           "RWKV-4": tf.RwkvForCausalLM}


def field(out, label):
    m = re.search(label + r"\s+([\d,]+) B", out)
    return int(m.group(1).replace(",", "")) if m else 0


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in MODELS.items():
            cls = next(v for k, v in CLASSES.items() if name.startswith(k))
            d = os.path.join(tmp, re.sub(r"\W+", "_", name))
            cls(cfg).save_pretrained(d)
            cells = []
            for ctx in CONTEXTS:
                args = ["cargo", "xtask", "convert", d, "-o", os.path.join(tmp, "m.mote"), "--chunk", "1"]
                stateful = "Mamba" in name or "RWKV" in name
                if not stateful:
                    args += ["--max-seq", str(ctx)]
                out = subprocess.run(args, cwd=root, capture_output=True, text=True, check=True).stdout
                persistent = field(out, "KV cache bytes") or field(out, "state bytes")
                cells.append((persistent, field(out, "arena bytes")))
            rows.append((name, cells))
    print("| model (hidden 48, 3 layers) | " + " | ".join(f"{c} tokens: state / arena" for c in CONTEXTS) + " |")
    print("|---" * (len(CONTEXTS) + 1) + "|")
    for name, cells in rows:
        print(f"| {name} | " + " | ".join(f"{p / 1024:.1f} KiB / {a / 1024:.1f} KiB" for p, a in cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
