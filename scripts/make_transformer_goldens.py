#!/usr/bin/env python3
"""Generate golden reference data for Mote's BERT, Llama and GPT-2 implementations.

For each checkpoint below this script builds a Hugging Face model from a config,
re-initialises and perturbs every parameter so that every tensor influences the
output, and writes into ``tests/data/<family>/<name>/``:

* ``config.json`` + ``model.safetensors``  -- ``model.save_pretrained`` (float32;
  the decoders also get the ``generation_config.json`` save_pretrained writes)
* ``inputs.safetensors``                   -- token ids etc. (int64)
* ``expected.safetensors``                 -- model outputs in eval mode (float32),
  and for the decoders the 16 greedily generated tokens (int64)

Encoders (``BertModel``) are random (perturbed) models: expected
``last_hidden_state`` [N, T, H] and ``pooler_output`` [N, H] for a batch of two
sequences, the second one right-padded (attention_mask 0, token id 0).

Decoders (``LlamaForCausalLM``, ``GPT2LMHeadModel``) are perturbed and then trained
for a few hundred steps on a synthetic "skip-bigram" language so that their
greedy predictions are confident: ``x[t] = perm[x[t-2]]`` for a fixed random
permutation ``perm`` of the vocabulary (``x[0]``, ``x[1]`` uniform). Predicting the
next token needs the token *two* positions back, i.e. a working attention +
position encoding (RoPE for Llama, learned positions for GPT-2), not just a
bigram lookup. The prompt is a sequence of that language; expected are the
prompt ``logits`` [1, T, V] and ``greedy_tokens`` [1, 16] from
``model.generate(do_sample=False, max_new_tokens=16, min_new_tokens=16)`` (no EOS
stopping: the configs have no bos/eos/pad token). The smallest top-1 minus
top-2 logit gap over the 16 greedy decisions is recorded in the metadata of
``expected.safetensors`` (``min_top2_gap``), together with the same quantity for
the model with every weight rounded to float16 (``min_top2_gap_f16``), which must
generate the same 16 tokens.

Everything is computed with the "eager" attention implementation on the CPU, in
float32, single-threaded, deterministic. Self-checks: ``from_pretrained`` on the
written directory reproduces the outputs, and an independent float64 NumPy
re-implementation of each family (``numpy_bert`` / ``numpy_llama`` /
``numpy_gpt2``), reading the saved ``config.json`` and tensors by their on-disk
names, reproduces them (it is the compact spec of the maths for the Rust side).

Usage (from anywhere):  python scripts/make_transformer_goldens.py [NAME ...]
Requires torch, transformers, safetensors, numpy (see scripts/requirements.txt).
Nothing is downloaded; HF_HUB_OFFLINE is forced on.
"""

from __future__ import annotations

import copy
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

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from safetensors.numpy import load_file as np_load_file  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)
from transformers.pytorch_utils import Conv1D  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    print_dir_sizes,
    save_pretrained_safetensors,
    save_safetensors,
    setup_determinism,
    versions_metadata,
)

REPO = Path(__file__).resolve().parent.parent
OUT_ROOT = REPO / "tests" / "data"
GENERATOR = "scripts/make_transformer_goldens.py"
MAX_DIR_BYTES = 300 * 1024
# llama_a's prescribed shape (hidden 64, 2 layers, MLP 128, vocab 128, *untied*
# 128x64 lm_head) is 98,624 float32 parameters = 385 KiB on its own.
MAX_DIR_BYTES_OVERRIDE = {"llama_a": 400 * 1024}

N_NEW_TOKENS = 16
MIN_GAP = 0.05  # required top-1 minus top-2 logit margin along the greedy path

# No special tokens: the synthetic language has no BOS/EOS, and generate() must
# not stop early. (GPT-2's default 50256 would not even be inside the vocabulary.)
NO_SPECIAL_TOKENS = dict(bos_token_id=None, eos_token_id=None, pad_token_id=None)

# name -> spec
#   family, cls, config_cls, config kwargs, seed,
#   init: (linear/conv1d weight std, embedding std),
#   encoders: n, t, n_pad (padding on the last sequence), mixed token types
#   decoders: t (prompt length), train (steps, lr, batch, seq_len)
CHECKPOINTS = {
    "bert_a": dict(
        family="bert",
        cls=BertModel,
        config_cls=BertConfig,
        config=dict(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            type_vocab_size=2,
            hidden_act="gelu",
            layer_norm_eps=1e-12,
            pad_token_id=0,
            initializer_range=0.2,
        ),
        seed=2001,
        init=(0.2, 1.0),
        n=2,
        t=12,
        n_pad=4,
        mixed_token_types=True,
    ),
    "bert_b": dict(
        family="bert",
        cls=BertModel,
        config_cls=BertConfig,
        config=dict(
            vocab_size=150,
            hidden_size=48,
            num_hidden_layers=3,
            num_attention_heads=6,
            intermediate_size=96,
            max_position_embeddings=40,
            type_vocab_size=1,
            hidden_act="gelu_new",
            layer_norm_eps=1e-5,
            pad_token_id=0,
            initializer_range=0.16,
        ),
        seed=2002,
        init=(0.16, 1.0),
        n=2,
        t=9,
        n_pad=4,
        mixed_token_types=False,
    ),
    "llama_a": dict(
        family="llama",
        cls=LlamaForCausalLM,
        config_cls=LlamaConfig,
        config=dict(
            vocab_size=128,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            intermediate_size=128,
            rope_theta=10000.0,
            tie_word_embeddings=False,
            rms_norm_eps=1e-6,
            max_position_embeddings=128,
            attention_bias=False,
            initializer_range=0.1,
            **NO_SPECIAL_TOKENS,
        ),
        seed=3001,
        init=(0.1, 0.5),
        t=10,
        train=dict(steps=300, lr=1e-2, batch=32, seq_len=32),
    ),
    "llama_b": dict(
        family="llama",
        cls=LlamaForCausalLM,
        config_cls=LlamaConfig,
        config=dict(
            vocab_size=96,
            hidden_size=48,
            num_hidden_layers=3,
            num_attention_heads=6,
            num_key_value_heads=2,
            intermediate_size=96,
            rope_theta=500000.0,
            tie_word_embeddings=True,
            rms_norm_eps=1e-5,
            max_position_embeddings=64,
            attention_bias=False,
            initializer_range=0.1,
            **NO_SPECIAL_TOKENS,
        ),
        seed=3002,
        init=(0.1, 0.5),
        t=10,
        train=dict(steps=300, lr=1e-2, batch=32, seq_len=32),
    ),
    "gpt2_a": dict(
        family="gpt2",
        cls=GPT2LMHeadModel,
        config_cls=GPT2Config,
        config=dict(
            vocab_size=100,
            n_positions=64,
            n_embd=32,
            n_layer=2,
            n_head=4,
            activation_function="gelu_new",
            layer_norm_epsilon=1e-5,
            initializer_range=0.1,
            **NO_SPECIAL_TOKENS,
        ),
        seed=4001,
        init=(0.1, 0.5),
        t=10,
        train=dict(steps=300, lr=1e-2, batch=32, seq_len=32),
    ),
    "gpt2_b": dict(
        family="gpt2",
        cls=GPT2LMHeadModel,
        config_cls=GPT2Config,
        config=dict(
            vocab_size=120,
            n_positions=48,
            n_embd=48,
            n_layer=3,
            n_head=6,
            n_inner=100,
            activation_function="gelu_new",
            layer_norm_epsilon=1e-5,
            initializer_range=0.1,
            **NO_SPECIAL_TOKENS,
        ),
        seed=4002,
        init=(0.1, 0.5),
        t=10,
        train=dict(steps=300, lr=1e-2, batch=32, seq_len=32),
    ),
}


@torch.no_grad()
def init_and_perturb(model: torch.nn.Module, linear_std: float, emb_std: float, gen: torch.Generator) -> None:
    """Re-initialise every parameter explicitly (independent of transformers' init
    order) so that every tensor is non-trivial:

    * Linear / GPT-2 Conv1D weights:             N(0, linear_std)
    * every bias (Linear, Conv1D, LayerNorm):    0.1 * N(0, 1)
    * LayerNorm / RMSNorm weights:               1 + 0.2 * N(0, 1)
    * Embedding tables (token, position, type):  N(0, emb_std)

    A tied lm_head shares its tensor with the token embedding and is initialised
    once, as an embedding.
    """
    done: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            if id(p) in done:
                continue
            done.add(id(p))
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            kind = type(module).__name__
            if isinstance(module, torch.nn.LayerNorm) or kind.endswith("RMSNorm"):
                p.copy_(1.0 + 0.2 * noise if p_name == "weight" else 0.1 * noise)
            elif isinstance(module, (torch.nn.Linear, Conv1D)):
                p.copy_(linear_std * noise if p_name == "weight" else 0.1 * noise)
            elif isinstance(module, torch.nn.Embedding):
                p.copy_(emb_std * noise)
            else:
                raise RuntimeError(f"unexpected parameter {full} in {kind}")
    assert len(done) == len(list(model.parameters()))


# --------------------------------------------------------------------------
# Independent NumPy references (float64). They read config.json (as a dict) and
# the saved checkpoint by the tensor names that are actually on disk, and
# document the maths the Rust side implements.
# --------------------------------------------------------------------------


def _layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # biased variance
    return (x - mu) / np.sqrt(var + eps) * w + b


def _rmsnorm(x, w, eps):
    # Llama: no mean subtraction, no bias
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _act(name, x):
    if name == "gelu":  # exact, erf-based
        from math import erf, sqrt

        return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh"):  # tanh approximation
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
    if name == "silu":
        return x / (1.0 + np.exp(-x))
    raise ValueError(name)


def _softmax(s):
    s = np.exp(s - s.max(-1, keepdims=True))
    return s / s.sum(-1, keepdims=True)


def _heads(x, nh):
    # [n, t, nh*hd] -> [n, nh, t, hd]: head h owns columns h*hd .. (h+1)*hd
    n, t, d = x.shape
    return x.reshape(n, t, nh, d // nh).transpose(0, 2, 1, 3)


def _merge(x):
    # [n, nh, t, hd] -> [n, t, nh*hd]
    n, nh, t, hd = x.shape
    return x.transpose(0, 2, 1, 3).reshape(n, t, nh * hd)


def numpy_bert(W: dict, cfg: dict, input_ids, attention_mask, token_type_ids) -> dict:
    """BertModel: post-LN encoder, padding mask on the keys, tanh pooler on [CLS]."""
    W = {k: v.astype(np.float64) for k, v in W.items() if v.dtype.kind == "f"}
    n, t = input_ids.shape
    nh, eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
    hd = cfg["hidden_size"] // nh

    def lin(x, name):  # torch.nn.Linear: weight [out, in]
        return x @ W[name + ".weight"].T + W[name + ".bias"]

    x = (
        W["embeddings.word_embeddings.weight"][input_ids]
        + W["embeddings.position_embeddings.weight"][np.arange(t)][None]  # positions 0..T-1
        + W["embeddings.token_type_embeddings.weight"][token_type_ids]
    )
    x = _layernorm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    keep = attention_mask.astype(bool)[:, None, None, :]  # [n, 1, 1, t_key]: mask keys only
    for i in range(cfg["num_hidden_layers"]):
        L = f"encoder.layer.{i}."
        q = _heads(lin(x, L + "attention.self.query"), nh)
        k = _heads(lin(x, L + "attention.self.key"), nh)
        v = _heads(lin(x, L + "attention.self.value"), nh)
        s = np.where(keep, q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd), -np.inf)
        a = _merge(_softmax(s) @ v)
        x = _layernorm(
            x + lin(a, L + "attention.output.dense"),  # residual, THEN LayerNorm (post-LN)
            W[L + "attention.output.LayerNorm.weight"],
            W[L + "attention.output.LayerNorm.bias"],
            eps,
        )
        m = _act(cfg["hidden_act"], lin(x, L + "intermediate.dense"))
        x = _layernorm(x + lin(m, L + "output.dense"), W[L + "output.LayerNorm.weight"], W[L + "output.LayerNorm.bias"], eps)
    # padded query positions are computed like any other (they attend to the real tokens)
    return {"last_hidden_state": x, "pooler_output": np.tanh(lin(x[:, 0], "pooler.dense"))}


def _rope_rotate_half(x, theta):
    """HF Llama RoPE ("rotate_half" / NeoX layout): dimension j of a head is paired
    with dimension j + hd/2 (NOT with its neighbour), both rotated by angle
    pos * theta^(-2j/hd), j = 0 .. hd/2-1."""
    n, nh, t, hd = x.shape
    inv_freq = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)  # [hd/2]
    ang = np.arange(t, dtype=np.float64)[:, None] * inv_freq[None, :]  # [t, hd/2]
    cos = np.cos(np.concatenate([ang, ang], -1))  # [t, hd]
    sin = np.sin(np.concatenate([ang, ang], -1))
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    rotated = np.concatenate([-x2, x1], -1)  # rotate_half(x)
    return x * cos + rotated * sin


def _rope_interleaved(x, theta):
    """The *wrong* (GPT-J / Meta-original) layout for HF checkpoints: pairs (2j, 2j+1).
    Only used to show that the goldens detect it."""
    n, nh, t, hd = x.shape
    inv_freq = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.arange(t, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    xe, xo = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = xe * cos - xo * sin
    out[..., 1::2] = xe * sin + xo * cos
    return out


def rope_theta(cfg: dict) -> float:
    # transformers 5.x writes {"rope_parameters": {"rope_theta": ..., "rope_type": "default"}};
    # 4.x checkpoints have a top-level "rope_theta".
    if "rope_parameters" in cfg and cfg["rope_parameters"]:
        assert cfg["rope_parameters"].get("rope_type", "default") == "default"
        return float(cfg["rope_parameters"]["rope_theta"])
    return float(cfg.get("rope_theta", 10000.0))


def numpy_llama(W: dict, cfg: dict, input_ids, rope=_rope_rotate_half) -> np.ndarray:
    """LlamaForCausalLM logits [n, t, vocab]: pre-RMSNorm, RoPE on q/k, GQA, causal
    softmax attention, SwiGLU MLP, final RMSNorm, lm_head (tied -> embed_tokens)."""
    W = {k: v.astype(np.float64) for k, v in W.items()}
    n, t = input_ids.shape
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // nh
    eps, theta = cfg["rms_norm_eps"], rope_theta(cfg)
    causal = np.tril(np.ones((t, t), dtype=bool))  # query i sees keys 0..i

    def lin(x, name):  # no biases (attention_bias = mlp_bias = false)
        return x @ W[name + ".weight"].T

    x = W["model.embed_tokens.weight"][input_ids]
    for i in range(cfg["num_hidden_layers"]):
        L = f"model.layers.{i}."
        h = _rmsnorm(x, W[L + "input_layernorm.weight"], eps)
        q = rope(_heads(lin(h, L + "self_attn.q_proj"), nh), theta)  # [n, nh,  t, hd]
        k = rope(_heads(lin(h, L + "self_attn.k_proj"), nkv), theta)  # [n, nkv, t, hd]
        v = _heads(lin(h, L + "self_attn.v_proj"), nkv)
        # GQA (repeat_kv): query head h uses kv head h // (nh / nkv), i.e. each kv head
        # serves a *contiguous* block of nh/nkv query heads.
        k, v = np.repeat(k, nh // nkv, axis=1), np.repeat(v, nh // nkv, axis=1)
        s = np.where(causal, q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd), -np.inf)
        x = x + lin(_merge(_softmax(s) @ v), L + "self_attn.o_proj")
        h = _rmsnorm(x, W[L + "post_attention_layernorm.weight"], eps)
        m = _act(cfg["hidden_act"], lin(h, L + "mlp.gate_proj")) * lin(h, L + "mlp.up_proj")
        x = x + lin(m, L + "mlp.down_proj")
    x = _rmsnorm(x, W["model.norm.weight"], eps)
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    assert ("lm_head.weight" not in W) == bool(cfg.get("tie_word_embeddings"))
    return x @ head.T


def numpy_gpt2(W: dict, cfg: dict, input_ids) -> np.ndarray:
    """GPT2LMHeadModel logits [n, t, vocab]: learned absolute positions, pre-LN,
    fused qkv, causal attention, gelu_new MLP, final LN, head tied to wte."""
    W = {k: v.astype(np.float64) for k, v in W.items()}
    n, t = input_ids.shape
    d, nh, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    hd = d // nh
    causal = np.tril(np.ones((t, t), dtype=bool))

    def conv1d(x, name):  # transformers Conv1D: weight is [in, out] -> x @ W (no transpose)
        return x @ W[name + ".weight"] + W[name + ".bias"]

    P = "transformer."
    x = W[P + "wte.weight"][input_ids] + W[P + "wpe.weight"][np.arange(t)][None]
    for i in range(cfg["n_layer"]):
        L = f"{P}h.{i}."
        h = _layernorm(x, W[L + "ln_1.weight"], W[L + "ln_1.bias"], eps)
        qkv = conv1d(h, L + "attn.c_attn")  # [n, t, 3d]: columns [q | k | v], each d wide
        q, k, v = (_heads(a, nh) for a in np.split(qkv, 3, axis=-1))
        s = np.where(causal, q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd), -np.inf)
        x = x + conv1d(_merge(_softmax(s) @ v), L + "attn.c_proj")
        h = _layernorm(x, W[L + "ln_2.weight"], W[L + "ln_2.bias"], eps)
        x = x + conv1d(_act(cfg["activation_function"], conv1d(h, L + "mlp.c_fc")), L + "mlp.c_proj")
    x = _layernorm(x, W[P + "ln_f.weight"], W[P + "ln_f.bias"], eps)
    assert "lm_head.weight" not in W  # tied: the checkpoint has no separate head
    return x @ W[P + "wte.weight"].T


# --------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------


def bert_inputs(spec: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
    n, t, n_pad, V = spec["n"], spec["t"], spec["n_pad"], spec["config"]["vocab_size"]
    ids = torch.randint(1, V, (n, t), generator=gen, dtype=torch.int64)  # 0 is [PAD]
    mask = torch.ones((n, t), dtype=torch.int64)
    types = torch.zeros((n, t), dtype=torch.int64)
    if spec["mixed_token_types"]:
        # sentence pairs: segment B (type 1) starts mid-sequence
        types[0, t // 2 :] = 1
        types[-1, (t - n_pad) // 2 : t - n_pad] = 1
    # last sequence is right-padded: pad id 0, attention_mask 0, token_type 0
    ids[-1, t - n_pad :] = spec["config"]["pad_token_id"]
    mask[-1, t - n_pad :] = 0
    types[-1, t - n_pad :] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def make_encoder(name: str, spec: dict, out_dir: Path) -> None:
    seed = spec["seed"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    config = spec["config_cls"](**spec["config"])
    config._attn_implementation = "eager"  # reference math; not serialised to config.json
    model = spec["cls"](config, add_pooling_layer=True)
    init_and_perturb(model, *spec["init"], gen)
    model = model.float().eval()
    inputs = bert_inputs(spec, gen)

    with torch.no_grad():
        out = model(**inputs)
    expected = {
        "last_hidden_state": out.last_hidden_state.detach().float().contiguous(),
        "pooler_output": out.pooler_output.detach().float().contiguous(),
    }

    save_pretrained_safetensors(model, out_dir)
    meta = versions_metadata(GENERATOR, {"model": name, "class": spec["cls"].__name__, "seed": str(seed)})
    save_safetensors(inputs, out_dir / "inputs.safetensors", metadata=meta)
    save_safetensors(expected, out_dir / "expected.safetensors", metadata=meta)

    # ---------------- self-checks ----------------
    for impl in ("eager", "sdpa"):
        reloaded = spec["cls"].from_pretrained(out_dir, attn_implementation=impl).eval()
        with torch.no_grad():
            r = reloaded(**inputs)
        for k, v in expected.items():
            diff = (getattr(r, k) - v).abs().max().item()
            tol = 0.0 if impl == "eager" else 1e-5
            assert diff <= tol, f"{name}: reload ({impl}) {k} differs by {diff}"
    ckpt = np_load_file(str(out_dir / "model.safetensors"))
    cfg = json.loads((out_dir / "config.json").read_text())
    np_in = {k: v.numpy() for k, v in inputs.items()}
    ref = numpy_bert(ckpt, cfg, **np_in)
    np_diffs = {}
    for k, v in expected.items():
        d = float(np.abs(ref[k] - v.numpy().astype(np.float64)).max())
        np_diffs[k] = d
        assert d <= 1e-5, f"{name}: numpy reference {k} differs by {d}"
    for k, v in ckpt.items():
        assert not np.all(v == 0) and not np.all(v == 1), f"{name}: trivial tensor {k}"

    # ---------------- report ----------------
    with torch.no_grad():
        att = model(**inputs, output_attentions=True).attentions
    print(f"[{name}] {spec['cls'].__name__}  ->  {out_dir.relative_to(REPO)}")
    print(f"  model.safetensors: {len(ckpt)} tensors, {sum(v.size for v in ckpt.values())} params")
    for k, v in inputs.items():
        print(f"  inputs.safetensors: {k} {list(v.shape)} int64  {v.tolist()}")
    for k, v in expected.items():
        print(
            f"  expected.safetensors: {k} {list(v.shape)} float32 "
            f"(std {v.std().item():.3f}, |max| {v.abs().max().item():.3f}; numpy-f64 max diff {np_diffs[k]:.1e})"
        )
    print(f"  largest attention probability: {max(a.max().item() for a in att):.3f}")
    no_mask = numpy_bert(ckpt, cfg, np_in["input_ids"], np.ones_like(np_in["attention_mask"]), np_in["token_type_ids"])
    print(
        "  (ignoring the attention mask would change the padded sequence's real positions by up to "
        f"{np.abs(no_mask['last_hidden_state'] - ref['last_hidden_state'])[-1, : spec['t'] - spec['n_pad']].max():.2f})"
    )
    if cfg["hidden_act"] == "gelu_new":
        alt = numpy_bert(ckpt, {**cfg, "hidden_act": "gelu"}, **np_in)
        print(f"  (exact 'gelu' instead of 'gelu_new' would differ by up to {np.abs(alt['last_hidden_state'] - ref['last_hidden_state']).max():.1e})")


# --------------------------------------------------------------------------
# Decoders
# --------------------------------------------------------------------------


def skip_bigram_batch(perm: torch.Tensor, batch: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """Sequences of the synthetic language: x[0], x[1] uniform, x[t] = perm[x[t-2]]."""
    V = perm.numel()
    x = torch.empty((batch, length), dtype=torch.int64)
    x[:, :2] = torch.randint(0, V, (batch, 2), generator=gen, dtype=torch.int64)
    for t in range(2, length):
        x[:, t] = perm[x[:, t - 2]]
    return x


def train_decoder(model: torch.nn.Module, perm: torch.Tensor, cfg: dict, gen: torch.Generator) -> tuple[float, float]:
    """AdamW with linear warm-up + cosine decay; the loss only covers predictable
    positions (targets x[2:]). The model stays in eval mode, i.e. without dropout."""
    steps, lr, batch, seq_len = cfg["steps"], cfg["lr"], cfg["batch"], cfg["seq_len"]
    warmup = max(1, steps // 10)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * s / steps))
    )
    model.eval()
    V = perm.numel()
    t0 = time.time()
    for step in range(steps):
        x = skip_bigram_batch(perm, batch, seq_len, gen)
        logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits[:, 1:-1].reshape(-1, V), x[:, 2:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    return loss.item(), time.time() - t0


@torch.no_grad()
def greedy_with_gaps(model: torch.nn.Module, prompt: torch.Tensor, n_new: int) -> tuple[torch.Tensor, list[float]]:
    """Greedy decoding by full (cache-free) forward passes; returns the new tokens
    and, per step, the top-1 minus top-2 logit gap of the decision."""
    seq, gaps = prompt.clone(), []
    for _ in range(n_new):
        last = model(input_ids=seq, use_cache=False).logits[0, -1]
        top2 = last.topk(2).values
        gaps.append((top2[0] - top2[1]).item())
        seq = torch.cat([seq, last.argmax().view(1, 1)], dim=1)
    return seq[:, prompt.shape[1] :], gaps


@torch.no_grad()
def hf_generate(model: torch.nn.Module, prompt: torch.Tensor, n_new: int) -> torch.Tensor:
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        do_sample=False,
        max_new_tokens=n_new,
        min_new_tokens=n_new,
        eos_token_id=None,
        pad_token_id=None,
    )
    assert out.shape == (1, prompt.shape[1] + n_new), out.shape
    assert torch.equal(out[:, : prompt.shape[1]], prompt)
    return out[:, prompt.shape[1] :].contiguous()


def make_decoder(name: str, spec: dict, out_dir: Path) -> None:
    seed = spec["seed"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    config = spec["config_cls"](**spec["config"])
    config._attn_implementation = "eager"  # reference math; not serialised to config.json
    model = spec["cls"](config)
    init_and_perturb(model, *spec["init"], gen)
    model = model.float()

    V = config.vocab_size
    perm = torch.randperm(V, generator=gen)
    final_loss, train_s = train_decoder(model, perm, spec["train"], gen)
    model.eval()

    T = spec["t"]
    seq = skip_bigram_batch(perm, 1, T + N_NEW_TOKENS, gen)
    input_ids = seq[:, :T].contiguous()

    with torch.no_grad():
        logits = model(input_ids=input_ids).logits.detach().float().contiguous()
    greedy = hf_generate(model, input_ids, N_NEW_TOKENS)
    greedy_manual, gaps = greedy_with_gaps(model, input_ids, N_NEW_TOKENS)
    assert torch.equal(greedy, greedy_manual), f"{name}: generate() (KV cache) vs full recompute differ"
    assert torch.equal(greedy, seq[:, T:]), f"{name}: greedy continuation does not follow the language"
    min_gap = min(gaps)
    assert min_gap >= MIN_GAP, f"{name}: greedy path has a near-tie (gap {min_gap:.4f})"

    # the same model with every weight rounded to float16 must decode the same tokens
    model16 = copy.deepcopy(model)
    with torch.no_grad():
        for p in model16.parameters():
            p.copy_(p.half().float())
        logits16 = model16(input_ids=input_ids).logits
    greedy16, gaps16 = greedy_with_gaps(model16, input_ids, N_NEW_TOKENS)
    assert torch.equal(greedy16, greedy), f"{name}: f16-rounded weights change the greedy tokens"
    assert torch.equal(hf_generate(model16, input_ids, N_NEW_TOKENS), greedy)
    min_gap16 = min(gaps16)
    assert min_gap16 >= MIN_GAP, f"{name}: f16 greedy path has a near-tie (gap {min_gap16:.4f})"

    expected = {"logits": logits, "greedy_tokens": greedy}
    save_pretrained_safetensors(model, out_dir)
    meta = versions_metadata(GENERATOR, {"model": name, "class": spec["cls"].__name__, "seed": str(seed)})
    save_safetensors({"input_ids": input_ids}, out_dir / "inputs.safetensors", metadata=meta)
    meta_exp = dict(
        meta,
        min_top2_gap=f"{min_gap:.6f}",
        min_top2_gap_f16=f"{min_gap16:.6f}",
        language="x[t] = perm[x[t-2]] (skip-bigram over a fixed random permutation)",
        train_steps=str(spec["train"]["steps"]),
        train_final_loss=f"{final_loss:.6f}",
    )
    save_safetensors(expected, out_dir / "expected.safetensors", metadata=meta_exp)

    # ---------------- self-checks ----------------
    for impl in ("eager", "sdpa"):
        reloaded = spec["cls"].from_pretrained(out_dir, attn_implementation=impl).eval()
        with torch.no_grad():
            r = reloaded(input_ids=input_ids).logits
        diff = (r - logits).abs().max().item()
        tol = 0.0 if impl == "eager" else 1e-4
        assert diff <= tol, f"{name}: reload ({impl}) logits differ by {diff}"
        if impl == "eager":
            assert torch.equal(hf_generate(reloaded, input_ids, N_NEW_TOKENS), greedy)
    ckpt = np_load_file(str(out_dir / "model.safetensors"))
    cfg = json.loads((out_dir / "config.json").read_text())
    full = torch.cat([input_ids, greedy], dim=1).numpy()  # prompt + greedy tokens, teacher-forced
    ref_fn = numpy_llama if spec["family"] == "llama" else numpy_gpt2
    ref = ref_fn(ckpt, cfg, full)  # [1, T+16, V]
    np_diff = float(np.abs(ref[:, :T] - logits.numpy().astype(np.float64)).max())
    assert np_diff <= 1e-5, f"{name}: numpy reference logits differ by {np_diff}"
    ref_greedy = ref[0, T - 1 : T - 1 + N_NEW_TOKENS].argmax(-1)
    assert np.array_equal(ref_greedy, greedy[0].numpy()), f"{name}: numpy greedy tokens differ"
    for k, v in ckpt.items():
        assert not np.all(v == 0) and not np.all(v == 1), f"{name}: trivial tensor {k}"

    # ---------------- report ----------------
    print(f"[{name}] {spec['cls'].__name__}  ->  {out_dir.relative_to(REPO)}")
    print(f"  model.safetensors: {len(ckpt)} tensors, {sum(v.size for v in ckpt.values())} params")
    print(f"  trained {spec['train']['steps']} steps in {train_s:.1f} s, final loss {final_loss:.5f}")
    print(f"  inputs.safetensors: input_ids [1, {T}] int64  {input_ids[0].tolist()}")
    print(
        f"  expected.safetensors: logits {list(logits.shape)} float32 (std {logits.std().item():.3f}, "
        f"|max| {logits.abs().max().item():.3f}; numpy-f64 max diff {np_diff:.1e})"
    )
    print(f"  expected.safetensors: greedy_tokens {list(greedy.shape)} int64  {greedy[0].tolist()}")
    print(f"  greedy top1-top2 gaps f32: min {min_gap:.4f}  {' '.join(f'{g:.2f}' for g in gaps)}")
    print(f"  greedy top1-top2 gaps f16: min {min_gap16:.4f}  {' '.join(f'{g:.2f}' for g in gaps16)}")
    print(f"  f16-rounded weights move the prompt logits by up to {(logits16 - logits).abs().max().item():.4f}")
    if spec["family"] == "llama":
        alt = numpy_llama(ckpt, cfg, full, rope=_rope_interleaved)
        alt_greedy = alt[0, T - 1 : T - 1 + N_NEW_TOKENS].argmax(-1)
        print(
            f"  (interleaved-pair RoPE instead of rotate_half: prompt logits off by up to "
            f"{np.abs(alt[:, :T] - ref[:, :T]).max():.2f}, {int((alt_greedy != ref_greedy).sum())}/16 "
            "teacher-forced greedy decisions change)"
        )


def main(argv: list[str]) -> int:
    setup_determinism()
    transformers.utils.logging.disable_progress_bar()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, safetensors {safetensors.__version__}")
    names = argv or list(CHECKPOINTS)
    unknown = set(names) - set(CHECKPOINTS)
    assert not unknown, f"unknown checkpoint(s) {sorted(unknown)}; have {list(CHECKPOINTS)}"
    for name in names:
        spec = CHECKPOINTS[name]
        out_dir = OUT_ROOT / spec["family"] / name
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        if spec["family"] == "bert":
            make_encoder(name, spec, out_dir)
        else:
            make_decoder(name, spec, out_dir)
        print_dir_sizes(out_dir, MAX_DIR_BYTES_OVERRIDE.get(name, MAX_DIR_BYTES))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
