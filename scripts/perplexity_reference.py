#!/usr/bin/env python3
"""Reference perplexity with ``transformers`` in float32, to check ``cargo xtask perplexity``.

Same tokens and same windows as the Mote command: the text is tokenized with the
checkpoint's ``tokenizer.json`` and no special tokens (no BOS; Mote's command
encodes with ``add_special_tokens=false``), cut into non-overlapping windows of
``--window`` tokens (the last one shorter; a 1-token remainder is dropped), each
window run from a fresh state; within a window the logits at position i predict
token i+1. Mean NLL (log-softmax in float64 from the float32 logits) over all
predictions, and its exponential.

The ids are checked three ways: the ``tokenizers`` library on tokenizer.json (the
library Mote uses), ``transformers.AutoTokenizer`` on the directory, and, with
``--ids FILE``, the JSON list ``cargo xtask perplexity --ids-out FILE`` wrote.

Usage:
    python scripts/perplexity_reference.py target/smollm2 --text /usr/share/common-licenses/GPL-3 \
        --window 512 [--max-tokens 2048] [--ids target/q/ids.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.dont_write_bytecode = True

import torch  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--text", required=True)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--max-tokens", type=int, default=0)
    ap.add_argument("--ids", help="ids written by cargo xtask perplexity --ids-out, must be equal")
    a = ap.parse_args()
    torch.set_num_threads(1)
    text = open(a.text, encoding="utf-8").read()
    ids = Tokenizer.from_file(os.path.join(a.model_dir, "tokenizer.json")).encode(text, add_special_tokens=False).ids
    hf = AutoTokenizer.from_pretrained(a.model_dir)(text, add_special_tokens=False)["input_ids"]
    if list(hf) != list(ids):
        sys.exit(f"error: tokenizers and transformers disagree ({len(ids)} vs {len(hf)} ids)")
    total = len(ids)
    if a.max_tokens > 0:
        ids = ids[: a.max_tokens]
    if a.ids:
        mote = json.load(open(a.ids))
        if mote != ids:
            sys.exit(f"error: Mote's ids ({len(mote)}) differ from these ({len(ids)})")
        print(f"ids equal to {a.ids} ({len(ids)})")
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    w = max(2, a.window)
    windows = [ids[i : i + w] for i in range(0, len(ids), w)]
    windows = [x for x in windows if len(x) >= 2]
    nll_sum, count = 0.0, 0
    start = time.time()
    with torch.no_grad():
        for k, win in enumerate(windows):
            logits = model(torch.tensor([win])).logits[0].double()  # [len, vocab]
            lp = torch.log_softmax(logits[:-1], dim=-1)
            s = -lp.gather(1, torch.tensor(win[1:]).unsqueeze(1)).sum().item()
            nll_sum += s
            count += len(win) - 1
            print(f"window {k + 1:>3}/{len(windows)}: {len(win)} tokens, nll {s / (len(win) - 1):.4f}, "
                  f"running ppl {math.exp(nll_sum / count):.3f}", file=sys.stderr)
    nll = nll_sum / count
    secs = time.time() - start
    print(f"tokens            {len(ids)} of {total} ({count} predicted, {len(windows)} windows of {w})")
    print(f"mean nll          {nll:.6f}")
    print(f"perplexity        {math.exp(nll):.4f}")
    print(f"tokens/s          {len(ids) / secs:.1f} (transformers, f32, one thread)")


if __name__ == "__main__":
    main()
