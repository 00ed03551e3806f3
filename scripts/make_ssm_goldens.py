#!/usr/bin/env python3
"""Generate golden reference data for Mote's Mamba (selective SSM) and RWKV-4 models.

Same conventions as ``make_transformer_goldens.py`` (whose decoder helpers this
script imports): for each checkpoint below the script builds a Hugging Face model
from a config, re-initialises and perturbs every parameter (within ranges that keep
the recurrences numerically sane), trains it for a few hundred AdamW steps on the
synthetic "skip-bigram" language ``x[t] = perm[x[t-2]]`` so that its greedy
decisions are confident, and writes into ``tests/data/<family>/<name>/``:

* ``config.json`` + ``model.safetensors`` + ``generation_config.json`` --
  ``model.save_pretrained`` (float32)
* ``inputs.safetensors``           -- ``input_ids`` int64 [1, T] (a prompt of the language)
* ``expected.safetensors``         -- ``logits`` float32 [1, T, V] over the prompt and
  ``greedy_tokens`` int64 [1, 16] from ``generate(do_sample=False, max_new_tokens=16,
  min_new_tokens=16)`` (no bos/eos/pad token); metadata ``min_top2_gap`` (f32 weights)
  and ``min_top2_gap_f16`` (every weight rounded to float16, which must generate the
  same 16 tokens), both >= 0.05
* ``expected_stream.safetensors``  -- ``stream_ids`` int64 [1, 300] (the prompt continued
  in the language: ``stream_ids[:, :T] == input_ids``, the next 16 are ``greedy_tokens``;
  both interleaved chains lie on permutation cycles of length >= 24) and ``logits_last``
  float32 [1, V]: the logits after feeding the 300 tokens ONE AT A TIME through the
  model's recurrent state (``cache_params`` for Mamba, ``state`` for RWKV), i.e. the
  output of the 300th step. It checks a constant-memory streaming implementation over
  many steps.

Checkpoints:

* ``mamba_a`` / ``mamba_b`` -- ``MambaForCausalLM``, transformers' pure-PyTorch path
  (the sequential selective scan; ``mamba_ssm`` / ``causal_conv1d`` / ``mambapy`` /
  hub kernels are asserted absent, ``use_mambapy=False``). ``MambaConfig.expand`` is a
  strictly validated ``int`` in transformers 5.x, so ``mamba_b`` uses expand 2 with
  hidden 40 instead of expand 1.5 with hidden 48.
* ``rwkv_a`` / ``rwkv_b`` -- ``RwkvForCausalLM`` (RWKV-4), CPU WKV loop, ``rescale_every 0``.
* ``rwkv_b_rescale`` -- the very same weights as ``rwkv_b`` (byte-identical
  ``model.safetensors``) with ``rescale_every 2`` in ``config.json``; its expected
  outputs are what transformers computes in eval mode with that setting (it divides
  ``attention.output`` / ``feed_forward.value`` of block i by 2^(i // 2) in place and
  halves the hidden state after every 2nd block). That is mathematically equivalent up
  to the LayerNorm epsilons (mostly ``ln_out``'s, which sees the halved hidden state):
  ~6e-5 on the logits (the float64 reference shows the same 6.8e-5 with the rescaling
  switched on/off, and 7e-12 with all epsilons set to 1e-12). The differences to ``rwkv_b``
  are printed and stored in the metadata (``max_abs_diff_vs_rwkv_b_*``); a runtime that
  ignores ``rescale_every`` needs a tolerance of ~1e-4 on this checkpoint.

Self-checks: ``from_pretrained`` on the written directory reproduces all outputs
exactly (after copying the memory-mapped tensors to aligned memory; as memory-mapped,
unaligned, the CPU kernels sum in another order and Mamba's single-token path moves by
~3e-6); ``generate()`` (recurrent cache) equals cache-free greedy decoding; the
step-by-step stream equals a full-sequence forward over the 300 tokens at the last
position (diff printed and stored as ``stream_vs_full_forward_max_abs_diff``); and
independent float64 NumPy references (``numpy_mamba``, ``numpy_rwkv``) -- written as
the token-by-token recurrences a streaming runtime implements, reading ``config.json``
and the tensors by their on-disk names -- reproduce the prompt logits, the greedy
tokens and ``logits_last`` to <= 1e-5.

Usage (from anywhere):  python scripts/make_ssm_goldens.py [NAME ...]
(``rwkv_b_rescale`` needs ``rwkv_b``, which is then (re)built as well.)
Requires torch, transformers, safetensors, numpy. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.dont_write_bytecode = True

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.numpy import load_file as np_load_file  # noqa: E402
from transformers import MambaConfig, MambaForCausalLM, RwkvConfig, RwkvForCausalLM  # noqa: E402
from transformers.models.rwkv import modeling_rwkv  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    print_dir_sizes,
    save_pretrained_safetensors,
    save_safetensors,
    setup_determinism,
    versions_metadata,
)
from make_transformer_goldens import (  # noqa: E402  (shared decoder helpers)
    MIN_GAP,
    N_NEW_TOKENS,
    NO_SPECIAL_TOKENS,
    greedy_with_gaps,
    hf_generate,
    skip_bigram_batch,
    train_decoder,
)

REPO = Path(__file__).resolve().parent.parent
OUT_ROOT = REPO / "tests" / "data"
GENERATOR = "scripts/make_ssm_goldens.py"
MAX_DIR_BYTES = 300 * 1024
STREAM_LEN = 300
NP_TOL = 1e-5
MIN_CYCLE = 24  # both chains of the prompt/stream lie on permutation cycles at least this long

TRAIN = dict(steps=300, lr=1e-2, batch=32, seq_len=32)

# name -> spec
#   family, cls, config_cls, config kwargs, seed, init: (linear weight std, embedding std), t (prompt length)
CHECKPOINTS = {
    "mamba_a": dict(
        family="mamba",
        cls=MambaForCausalLM,
        config_cls=MambaConfig,
        config=dict(
            vocab_size=96,
            hidden_size=32,
            state_size=8,
            num_hidden_layers=2,
            expand=2,
            conv_kernel=4,
            time_step_rank="auto",  # -> ceil(32 / 16) = 2, resolved to an int in config.json
            use_bias=False,
            use_conv_bias=True,
            tie_word_embeddings=True,
            layer_norm_epsilon=1e-5,
            residual_in_fp32=True,
            use_mambapy=False,
            **NO_SPECIAL_TOKENS,
        ),
        seed=5001,
        init=(0.15, 0.5),
        t=10,
    ),
    "mamba_b": dict(
        family="mamba",
        cls=MambaForCausalLM,
        config_cls=MambaConfig,
        config=dict(
            vocab_size=80,
            hidden_size=40,  # expand must be an int (strict config) -> expand 2, hidden 40
            state_size=16,
            num_hidden_layers=3,
            expand=2,
            conv_kernel=3,
            time_step_rank=4,
            use_bias=True,
            use_conv_bias=True,
            tie_word_embeddings=False,
            layer_norm_epsilon=1e-6,
            residual_in_fp32=True,
            use_mambapy=False,
            **NO_SPECIAL_TOKENS,
        ),
        seed=5002,
        init=(0.15, 0.5),
        t=10,
    ),
    "rwkv_a": dict(
        family="rwkv",
        cls=RwkvForCausalLM,
        config_cls=RwkvConfig,
        config=dict(
            vocab_size=96,
            hidden_size=32,
            num_hidden_layers=2,
            attention_hidden_size=32,
            intermediate_size=None,  # default 4 * hidden = 128, written to config.json
            context_length=128,
            layer_norm_epsilon=1e-5,
            rescale_every=0,
            tie_word_embeddings=False,
            **NO_SPECIAL_TOKENS,
        ),
        seed=6001,
        init=(0.15, 0.5),
        t=10,
    ),
    "rwkv_b": dict(
        family="rwkv",
        cls=RwkvForCausalLM,
        config_cls=RwkvConfig,
        config=dict(
            vocab_size=80,
            hidden_size=48,
            num_hidden_layers=3,
            attention_hidden_size=48,
            intermediate_size=96,
            context_length=64,
            layer_norm_epsilon=1e-5,
            rescale_every=0,
            tie_word_embeddings=False,
            **NO_SPECIAL_TOKENS,
        ),
        seed=6002,
        init=(0.15, 0.5),
        t=10,
    ),
    # same weights as rwkv_b, rescale_every 2 in config.json (built from rwkv_b, not trained)
    "rwkv_b_rescale": dict(family="rwkv", derived_from="rwkv_b", config_override=dict(rescale_every=2)),
}


def check_reference_paths() -> None:
    """Make sure transformers runs its pure-PyTorch reference code: no mamba_ssm /
    causal_conv1d CUDA kernels, no mamba.py parallel scan, no hub kernels, no RWKV
    CUDA kernel (the CPU WKV loop is used)."""
    for pkg in ("mamba_ssm", "causal_conv1d", "mambapy", "kernels"):
        assert importlib.util.find_spec(pkg) is None, f"{pkg} is installed; the goldens use the torch-only path"
    assert modeling_rwkv.rwkv_cuda_kernel is None


# --------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------


def _inv_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


@torch.no_grad()
def init_and_perturb_mamba(model: MambaForCausalLM, linear_std: float, emb_std: float, gen: torch.Generator) -> None:
    """Every parameter explicitly re-initialised, non-trivial, in a sane range:

    * embeddings: N(0, emb_std); untied lm_head / in_proj / x_proj / out_proj: N(0, linear_std)
    * RMSNorm weights: 1 + 0.2 N; every Linear / conv bias: 0.1 N
    * conv1d.weight [d_inner, 1, k]: N(0, 0.4)
    * A_log [d_inner, N]: log(1..N) + 0.3 N  (S4D-real init, jittered) -> A = -exp(A_log) < 0
    * D [d_inner]: 1 + 0.3 N
    * dt_proj.weight [d_inner, rank]: N(0, 0.5 / sqrt(rank));
      dt_proj.bias = softplus^-1(dt0), dt0 log-uniform in [0.01, 0.3]
    """
    cfg = model.config
    done: set[int] = set()
    for name, p in model.named_parameters(remove_duplicate=True):
        done.add(id(p))
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        leaf = name.rsplit(".", 2)[-2:]  # [module, param]
        if name == "backbone.embeddings.weight":
            p.copy_(emb_std * noise)
        elif leaf[0] in ("norm", "norm_f"):
            p.copy_(1.0 + 0.2 * noise)
        elif leaf[-1] == "A_log":
            s = torch.arange(1, cfg.state_size + 1, dtype=torch.float32)
            p.copy_(torch.log(s)[None, :] + 0.3 * noise)
        elif leaf[-1] == "D":
            p.copy_(1.0 + 0.3 * noise)
        elif leaf == ["conv1d", "weight"]:
            p.copy_(0.4 * noise)
        elif leaf == ["dt_proj", "weight"]:
            p.copy_(0.5 / math.sqrt(cfg.time_step_rank) * noise)
        elif leaf == ["dt_proj", "bias"]:
            u = torch.rand(p.shape, generator=gen, dtype=torch.float32)
            dt0 = torch.exp(math.log(0.01) + u * (math.log(0.3) - math.log(0.01)))
            p.copy_(_inv_softplus(dt0))
        elif leaf[-1] == "bias":
            p.copy_(0.1 * noise)
        elif leaf[-1] == "weight" and leaf[0] in ("in_proj", "x_proj", "out_proj", "lm_head"):
            p.copy_(linear_std * noise)
        else:
            raise RuntimeError(f"unexpected parameter {name}")
    assert len(done) == len(list(model.parameters()))


@torch.no_grad()
def init_and_perturb_rwkv(model: RwkvForCausalLM, linear_std: float, emb_std: float, gen: torch.Generator) -> None:
    """Every parameter explicitly re-initialised, non-trivial, in a sane range:

    * embeddings: N(0, emb_std); head and all block Linears (no biases): N(0, linear_std)
    * LayerNorm (pre_ln, ln1, ln2, ln_out): weight 1 + 0.2 N, bias 0.1 N
    * time_mix_* [1, 1, H]: uniform(0.05, 0.95)
    * time_decay [A]: uniform(-2.5, 1.0) -> w = -exp(time_decay) in [-2.7, -0.08], per-step decay
      exp(w) in [0.07, 0.92]
    * time_first [A] (the "bonus" u of the current token): 0.5 N
    """
    done: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            if id(p) in done:
                continue
            done.add(id(p))
            full = f"{mod_name}.{p_name}"
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            uni = torch.rand(p.shape, generator=gen, dtype=torch.float32)
            if isinstance(module, torch.nn.LayerNorm):
                p.copy_(1.0 + 0.2 * noise if p_name == "weight" else 0.1 * noise)
            elif isinstance(module, torch.nn.Linear):
                assert p_name == "weight", full
                p.copy_(linear_std * noise)
            elif isinstance(module, torch.nn.Embedding):
                p.copy_(emb_std * noise)
            elif p_name.startswith("time_mix_"):
                p.copy_(0.05 + 0.9 * uni)
            elif p_name == "time_decay":
                p.copy_(-2.5 + 3.5 * uni)
            elif p_name == "time_first":
                p.copy_(0.5 * noise)
            else:
                raise RuntimeError(f"unexpected parameter {full}")
    assert len(done) == len(list(model.parameters()))


# --------------------------------------------------------------------------
# Independent NumPy references (float64), written as the per-token recurrences a
# streaming runtime implements. They read config.json (as a dict) and the saved
# checkpoint by the tensor names that are actually on disk. Batch size 1.
# --------------------------------------------------------------------------


def _rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # biased variance
    return (x - mu) / np.sqrt(var + eps) * w + b


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _silu(x):
    return x * _sigmoid(x)


def _softplus(x):
    # torch.nn.functional.softplus(x) (beta 1) returns x itself for x > 20; the
    # difference to log(1 + e^x) there is < 3e-9.
    return np.where(x > 20.0, x, np.logaddexp(0.0, x))


def numpy_mamba(W: dict, cfg: dict, ids: np.ndarray, stats: dict | None = None) -> np.ndarray:
    """MambaForCausalLM logits [T, vocab] for one sequence `ids` [T], token by token.

    Per layer l (prefix P = "backbone.layers.{l}."), with H = hidden_size,
    Di = intermediate_size (= expand * H), N = state_size, R = time_step_rank, K = conv_kernel,
    and a state of  conv_buf [Di, K-1] (the last K-1 conv inputs, oldest first; zeros at
    start)  and  h [Di, N] (zeros at start):

        u        = RMSNorm(x; P.norm.weight, layer_norm_epsilon)          (no mean subtraction)
        [xi | z] = in_proj(u)                [2*Di]: first Di = SSM input, last Di = gate
        win      = [conv_buf | xi]           [Di, K]; conv_buf <- win[:, 1:]
        xc       = SiLU(sum_j win[:, j] * conv1d.weight[:, 0, j] + conv1d.bias)
                   (depthwise causal conv; weight tap K-1 multiplies the CURRENT input)
        [dr | B | C] = x_proj(xc)            [R + N + N], in that order, no bias
        dt       = softplus(dt_proj.weight @ dr + dt_proj.bias)           [Di], > 0
        A        = -exp(A_log)               [Di, N], < 0
        h        = exp(dt[:, None] * A) * h + (dt[:, None] * B[None, :]) * xc[:, None]
        y        = h @ C + D * xc            [Di]
        x        = x + out_proj(y * SiLU(z))                              (residual)

    then logits = lm_head(RMSNorm(x; backbone.norm_f.weight)); lm_head is the embedding
    matrix when tie_word_embeddings (the checkpoint then has no lm_head.weight).
    """
    W = {k: v.astype(np.float64) for k, v in W.items()}
    H, Di, N = cfg["hidden_size"], cfg["intermediate_size"], cfg["state_size"]
    R, K, eps, L = cfg["time_step_rank"], cfg["conv_kernel"], cfg["layer_norm_epsilon"], cfg["num_hidden_layers"]
    assert isinstance(R, int) and Di == cfg["expand"] * H and cfg["hidden_act"] == "silu"

    def lin(x, name):
        y = W[name + ".weight"] @ x
        return y + W[name + ".bias"] if name + ".bias" in W else y

    conv_buf = [np.zeros((Di, K - 1)) for _ in range(L)]
    h = [np.zeros((Di, N)) for _ in range(L)]
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["backbone.embeddings.weight"]
    assert ("lm_head.weight" not in W) == bool(cfg["tie_word_embeddings"])
    out = []
    for tok in ids:
        x = W["backbone.embeddings.weight"][tok]
        for l in range(L):
            P = f"backbone.layers.{l}."
            M = P + "mixer."
            u = _rmsnorm(x, W[P + "norm.weight"], eps)
            xz = lin(u, M + "in_proj")
            xi, z = xz[:Di], xz[Di:]
            win = np.concatenate([conv_buf[l], xi[:, None]], axis=1)  # [Di, K]
            conv_buf[l] = win[:, 1:]
            xc = (win * W[M + "conv1d.weight"][:, 0, :]).sum(-1)
            if M + "conv1d.bias" in W:
                xc = xc + W[M + "conv1d.bias"]
            xc = _silu(xc)
            dbc = W[M + "x_proj.weight"] @ xc
            dr, B, C = dbc[:R], dbc[R : R + N], dbc[R + N :]
            dt = _softplus(W[M + "dt_proj.weight"] @ dr + W[M + "dt_proj.bias"])
            A = -np.exp(W[M + "A_log"])
            h[l] = np.exp(dt[:, None] * A) * h[l] + (dt[:, None] * B[None, :]) * xc[:, None]
            y = h[l] @ C + W[M + "D"] * xc
            x = x + lin(y * _silu(z), M + "out_proj")
            if stats is not None:
                stats["dt_min"] = min(stats.get("dt_min", np.inf), float(dt.min()))
                stats["dt_max"] = max(stats.get("dt_max", -np.inf), float(dt.max()))
                stats["h_absmax"] = max(stats.get("h_absmax", 0.0), float(np.abs(h[l]).max()))
        out.append(head @ _rmsnorm(x, W["backbone.norm_f.weight"], eps))
    return np.stack(out)


def numpy_rwkv(W: dict, cfg: dict, ids: np.ndarray, apply_rescale: bool = False, stats: dict | None = None) -> np.ndarray:
    """RwkvForCausalLM (RWKV-4) logits [T, vocab] for one sequence `ids` [T], token by token.

    State per layer l (all float, zeros at start except pp):
        att_x [H]  LN1 output of the previous token (token shift of the time mix)
        ffn_x [H]  LN2 output of the previous token (token shift of the channel mix)
        aa, bb [A] numerator / denominator of the WKV average, scaled by exp(-pp)
        pp [A]     running max exponent (transformers: -1e38, or -1e30 in a fresh `state`)
    (transformers' `state` list is [ffn_x, att_x, aa, bb, pp], each [batch, hidden, layers].)

    Per token (P = "rwkv.blocks.{l}."), x = rwkv.embeddings.weight[token]:
        l == 0:  x = LN(x; P.pre_ln)
        xx = LN(x; P.ln1)
        k = key(xx*mk + att_x*(1-mk)),  v = value(xx*mv + att_x*(1-mv)),
        r = sigmoid(receptance(xx*mr + att_x*(1-mr)))       (mk, mv, mr = attention.time_mix_*)
        att_x = xx
        u = time_first, w = -exp(time_decay)
        WKV output (the current token gets the bonus u, not the decay):
            q = max(pp, u + k); e1 = exp(pp - q); e2 = exp(u + k - q)
            wkv = (e1*aa + e2*v) / (e1*bb + e2)
        state update (decay the past by e^w, add the current token without bonus):
            q = max(pp + w, k); e1 = exp(pp + w - q); e2 = exp(k - q)
            aa = e1*aa + e2*v; bb = e1*bb + e2; pp = q
        x = x + output(r * wkv)
        xx = LN(x; P.ln2)
        r = sigmoid(feed_forward.receptance(xx*fr + ffn_x*(1-fr)))
        k = relu(feed_forward.key(xx*fk + ffn_x*(1-fk)))^2          (squared ReLU)
        ffn_x = xx
        x = x + r * feed_forward.value(k)
    logits = head(LN(x; rwkv.ln_out)).
    All LayerNorms have bias; eps = layer_norm_epsilon, except ln_out, which transformers
    builds with PyTorch's default eps 1e-5 whatever the config says. No linear biases.

    apply_rescale: mimic transformers' inference-time rescaling for rescale_every = n > 0
    (block l's attention.output and feed_forward.value divided by 2^(l // n), x halved
    after every n-th block). It changes the result only through the LayerNorm epsilons.
    """
    W = {k: v.astype(np.float64) for k, v in W.items()}
    H, L, eps = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["layer_norm_epsilon"]
    A = cfg["attention_hidden_size"]
    n_re = cfg.get("rescale_every", 0) if apply_rescale else 0
    assert "head.weight" in W and not cfg["tie_word_embeddings"]
    att_x = [np.zeros(H) for _ in range(L)]
    ffn_x = [np.zeros(H) for _ in range(L)]
    aa = [np.zeros(A) for _ in range(L)]
    bb = [np.zeros(A) for _ in range(L)]
    pp = [np.full(A, -1e38) for _ in range(L)]
    out = []
    for tok in ids:
        x = W["rwkv.embeddings.weight"][tok]
        for l in range(L):
            P = f"rwkv.blocks.{l}."
            T, F = P + "attention.", P + "feed_forward."
            scale = 2.0 ** (l // n_re) if n_re > 0 else 1.0
            if l == 0:
                x = _layernorm(x, W[P + "pre_ln.weight"], W[P + "pre_ln.bias"], eps)
            xx = _layernorm(x, W[P + "ln1.weight"], W[P + "ln1.bias"], eps)

            def mix(name, prev, xx=xx):
                m = W[name][0, 0]
                return xx * m + prev * (1.0 - m)

            k = W[T + "key.weight"] @ mix(T + "time_mix_key", att_x[l])
            v = W[T + "value.weight"] @ mix(T + "time_mix_value", att_x[l])
            r = _sigmoid(W[T + "receptance.weight"] @ mix(T + "time_mix_receptance", att_x[l]))
            att_x[l] = xx
            u, w = W[T + "time_first"], -np.exp(W[T + "time_decay"])
            q = np.maximum(pp[l], u + k)
            e1, e2 = np.exp(pp[l] - q), np.exp(u + k - q)
            wkv = (e1 * aa[l] + e2 * v) / (e1 * bb[l] + e2)
            q = np.maximum(pp[l] + w, k)
            e1, e2 = np.exp(pp[l] + w - q), np.exp(k - q)
            aa[l], bb[l], pp[l] = e1 * aa[l] + e2 * v, e1 * bb[l] + e2, q
            x = x + (W[T + "output.weight"] / scale) @ (r * wkv)

            xx = _layernorm(x, W[P + "ln2.weight"], W[P + "ln2.bias"], eps)

            def fmix(name, xx=xx):
                m = W[name][0, 0]
                return xx * m + ffn_x[l] * (1.0 - m)

            r = _sigmoid(W[F + "receptance.weight"] @ fmix(F + "time_mix_receptance"))
            k = np.square(np.maximum(W[F + "key.weight"] @ fmix(F + "time_mix_key"), 0.0))
            ffn_x[l] = xx
            x = x + r * ((W[F + "value.weight"] / scale) @ k)
            if n_re > 0 and (l + 1) % n_re == 0:
                x = x / 2.0
            if stats is not None:
                stats["x_absmax"] = max(stats.get("x_absmax", 0.0), float(np.abs(x).max()))
        out.append(W["head.weight"] @ _layernorm(x, W["rwkv.ln_out.weight"], W["rwkv.ln_out.bias"], 1e-5))
    return np.stack(out)


NUMPY_REF = {"mamba": numpy_mamba, "rwkv": numpy_rwkv}


# --------------------------------------------------------------------------
# Streaming with the model's recurrent state
# --------------------------------------------------------------------------


@torch.no_grad()
def stream_last_logits(model, family: str, ids: torch.Tensor) -> tuple[torch.Tensor, object]:
    """Feed `ids` [1, S] one token at a time through the model's recurrent state;
    return the logits [1, V] of the last step and the final state."""
    state = None
    for t in range(ids.shape[1]):
        tok = ids[:, t : t + 1]
        if family == "mamba":
            out = model(input_ids=tok, cache_params=state, use_cache=True)
            state = out.cache_params
        else:
            out = model(input_ids=tok, state=state, use_cache=True)
            state = out.state
        assert state is not None
    return out.logits[:, -1].float().contiguous(), state


def describe_state(family: str, state) -> str:
    if family == "mamba":
        parts = []
        for i, layer in enumerate(state.layers):
            cs, rs = layer.conv_states, layer.recurrent_states
            cs, rs = (cs.values() if isinstance(cs, dict) else cs), (rs.values() if isinstance(rs, dict) else rs)
            c = [tuple(s.shape) for s in cs if isinstance(s, torch.Tensor)]
            r = [tuple(s.shape) for s in rs if isinstance(s, torch.Tensor)]
            parts.append(f"layer {i}: conv {c} recurrent {r}")
        return f"DynamicCache ({type(state.layers[0]).__name__}) " + "; ".join(parts[:1]) + f" (x {len(parts)} layers)"
    return "list of 5 [batch, hidden, layers] tensors " + str([(tuple(s.shape), str(s.dtype)) for s in state])


def _cycle_len(perm: torch.Tensor, start: int) -> int:
    n, x = 1, int(perm[start])
    while x != start:
        n, x = n + 1, int(perm[x])
    return n


def language_stream(perm: torch.Tensor, length: int, gen: torch.Generator) -> torch.Tensor:
    """One sequence [1, length] of the language whose two interleaved chains
    (x[0], x[2], ... and x[1], x[3], ...) both lie on permutation cycles of length
    >= MIN_CYCLE, so that neither the prompt + greedy tokens nor the first part of the
    stream repeat themselves (a short cycle would let "copy the token 2k back" pass)."""
    while True:
        x = skip_bigram_batch(perm, 1, length, gen)
        if min(_cycle_len(perm, int(x[0, 0])), _cycle_len(perm, int(x[0, 1]))) >= MIN_CYCLE:
            return x


# --------------------------------------------------------------------------
# Building one checkpoint
# --------------------------------------------------------------------------


def fresh_model(spec_cls, config, state_dict) -> torch.nn.Module:
    """A new model from `config` with `state_dict` (un-rescaled) loaded, in eval mode."""
    m = spec_cls(config)
    missing, unexpected = m.load_state_dict(state_dict, strict=False)
    assert not unexpected and all(k in ("lm_head.weight", "head.weight") for k in missing), (missing, unexpected)
    m.tie_weights()
    return m.float().eval()


@torch.no_grad()
def sanity_stats(name: str, family: str, model) -> str:
    if family == "mamba":
        a_log = torch.stack([layer.mixer.A_log for layer in model.backbone.layers])
        d = torch.stack([layer.mixer.D for layer in model.backbone.layers])
        b = torch.stack([layer.mixer.dt_proj.bias for layer in model.backbone.layers])
        A = -torch.exp(a_log)
        assert (A < 0).all() and A.min() > -200, f"{name}: A out of range"
        return (
            f"A = -exp(A_log) in [{A.min().item():.3f}, {A.max().item():.3f}], D in [{d.min().item():.2f}, "
            f"{d.max().item():.2f}], softplus(dt_proj.bias) in [{torch.nn.functional.softplus(b).min().item():.4f}, "
            f"{torch.nn.functional.softplus(b).max().item():.3f}]"
        )
    td = torch.stack([blk.attention.time_decay for blk in model.rwkv.blocks])
    tf = torch.stack([blk.attention.time_first for blk in model.rwkv.blocks])
    mixes = torch.cat([p.flatten() for n, p in model.named_parameters() if "time_mix" in n])
    return (
        f"per-step decay exp(-exp(time_decay)) in [{torch.exp(-torch.exp(td)).min().item():.3f}, "
        f"{torch.exp(-torch.exp(td)).max().item():.3f}], time_first in [{tf.min().item():.2f}, {tf.max().item():.2f}], "
        f"time_mix in [{mixes.min().item():.2f}, {mixes.max().item():.2f}]"
    )


def make_checkpoint(name: str, spec: dict, out_dir: Path, built: dict) -> None:
    family = spec["family"]
    base = None
    if "derived_from" in spec:
        base = built[spec["derived_from"]]
        cls, seed, T = base["cls"], base["seed"], base["t"]
        config = base["config_cls"](**{**base["config_kwargs"], **spec["config_override"]})
        model = fresh_model(cls, config, base["state_dict"])  # weights not yet rescaled
        perm, final_loss, train_steps = base["perm"], base["final_loss"], "0 (weights of " + spec["derived_from"] + ")"
        input_ids, lang = base["input_ids"], base["lang"]
    else:
        cls, seed, T = spec["cls"], spec["seed"], spec["t"]
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        config = spec["config_cls"](**spec["config"])
        model = cls(config)
        (init_and_perturb_mamba if family == "mamba" else init_and_perturb_rwkv)(model, *spec["init"], gen)
        model = model.float()
        print(f"[{name}] init: {sanity_stats(name, family, model)}")
        V = config.vocab_size
        perm = torch.randperm(V, generator=gen)
        final_loss, train_s = train_decoder(model, perm, TRAIN, gen)
        train_steps = str(TRAIN["steps"])
        model.eval()
        # the prompt, its greedy continuation and the stream all follow the language
        lang = language_stream(perm, STREAM_LEN, gen)
        input_ids = lang[:, :T].contiguous()
        print(f"[{name}] trained {TRAIN['steps']} steps in {train_s:.1f} s, final loss {final_loss:.5f}")

    # un-rescaled float32 weights (RWKV with rescale_every > 0 divides some in place on its first eval forward)
    state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
    save_pretrained_safetensors(model, out_dir)  # before any eval forward

    with torch.no_grad():
        logits = model(input_ids=input_ids, use_cache=False).logits.detach().float().contiguous()
    greedy = hf_generate(model, input_ids, N_NEW_TOKENS)
    greedy_manual, gaps = greedy_with_gaps(model, input_ids, N_NEW_TOKENS)
    assert torch.equal(greedy, greedy_manual), f"{name}: generate() (recurrent cache) vs full recompute differ"
    assert torch.equal(greedy, lang[:, T : T + N_NEW_TOKENS]), f"{name}: greedy continuation does not follow the language"
    min_gap = min(gaps)
    assert min_gap >= MIN_GAP, f"{name}: greedy path has a near-tie (gap {min_gap:.4f})"

    model16 = fresh_model(cls, config, {k: v.half().float() for k, v in state_dict.items()})
    with torch.no_grad():
        logits16 = model16(input_ids=input_ids, use_cache=False).logits
    greedy16, gaps16 = greedy_with_gaps(model16, input_ids, N_NEW_TOKENS)
    assert torch.equal(greedy16, greedy), f"{name}: f16-rounded weights change the greedy tokens"
    assert torch.equal(hf_generate(model16, input_ids, N_NEW_TOKENS), greedy)
    min_gap16 = min(gaps16)
    assert min_gap16 >= MIN_GAP, f"{name}: f16 greedy path has a near-tie (gap {min_gap16:.4f})"

    # long stream, token by token through the recurrent state
    stream_ids = lang.contiguous()
    assert torch.equal(stream_ids[:, :T], input_ids) and torch.equal(stream_ids[:, T : T + N_NEW_TOKENS], greedy)
    logits_last, final_state = stream_last_logits(model, family, stream_ids)
    with torch.no_grad():
        full = model(input_ids=stream_ids, use_cache=False).logits.float()
    stream_diff = (full[:, -1] - logits_last).abs().max().item()
    assert stream_diff <= 1e-4, f"{name}: streaming vs full forward differ by {stream_diff}"
    stream_pred = full[0, 1:-1].argmax(-1)
    stream_acc = (stream_pred == stream_ids[0, 2:]).float().mean().item()
    top2 = logits_last[0].topk(2).values
    last_gap = (top2[0] - top2[1]).item()

    # ---------------- write ----------------
    expected = {"logits": logits, "greedy_tokens": greedy}
    meta = versions_metadata(GENERATOR, {"model": name, "class": cls.__name__, "seed": str(seed)})
    save_safetensors({"input_ids": input_ids}, out_dir / "inputs.safetensors", metadata=meta)
    meta_exp = dict(
        meta,
        min_top2_gap=f"{min_gap:.6f}",
        min_top2_gap_f16=f"{min_gap16:.6f}",
        language="x[t] = perm[x[t-2]] (skip-bigram over a fixed random permutation)",
        train_steps=train_steps,
        train_final_loss=f"{final_loss:.6f}",
    )
    meta_stream = dict(
        meta,
        stream_len=str(STREAM_LEN),
        stream_vs_full_forward_max_abs_diff=f"{stream_diff:.3e}",
        stream_next_token_accuracy=f"{stream_acc:.4f}",
        stream_cycle_lengths=f"{_cycle_len(perm, int(stream_ids[0, 0]))},{_cycle_len(perm, int(stream_ids[0, 1]))}",
        logits_last_top2_gap=f"{last_gap:.6f}",
        note="logits_last = logits after feeding stream_ids one token at a time through the recurrent state",
    )
    if base is not None:
        d_logits = (logits - base["logits"]).abs().max().item()
        d_last = (logits_last - base["logits_last"]).abs().max().item()
        same_greedy = torch.equal(greedy, base["greedy"])
        meta_exp["max_abs_diff_vs_" + spec["derived_from"] + "_logits"] = f"{d_logits:.3e}"
        meta_exp["greedy_tokens_equal_" + spec["derived_from"]] = str(same_greedy)
        meta_stream["max_abs_diff_vs_" + spec["derived_from"] + "_logits_last"] = f"{d_last:.3e}"
    save_safetensors(expected, out_dir / "expected.safetensors", metadata=meta_exp)
    save_safetensors(
        {"logits_last": logits_last, "stream_ids": stream_ids}, out_dir / "expected_stream.safetensors", metadata=meta_stream
    )

    # ---------------- self-checks ----------------
    # from_pretrained memory-maps model.safetensors: the tensors are then not 64-byte
    # aligned, which changes the SIMD summation order of some CPU kernels (last-bit
    # differences, seen in Mamba's single-token path). Exact after copying them to
    # fresh (aligned) memory; as loaded, within float32 rounding.
    reloaded = cls.from_pretrained(out_dir).eval()
    with torch.no_grad():
        r = reloaded(input_ids=input_ids, use_cache=False).logits
    r_last, _ = stream_last_logits(reloaded, family, stream_ids)
    mmap_diff = max((r - logits).abs().max().item(), (r_last - logits_last).abs().max().item())
    assert mmap_diff <= 1e-5, f"{name}: reloaded (memory-mapped) outputs differ by {mmap_diff}"
    reloaded = cls.from_pretrained(out_dir).eval()
    with torch.no_grad():
        for p in reloaded.parameters():
            p.data = p.data.clone()
        r = reloaded(input_ids=input_ids, use_cache=False).logits
    assert torch.equal(r, logits), f"{name}: reload logits differ by {(r - logits).abs().max().item()}"
    assert torch.equal(hf_generate(reloaded, input_ids, N_NEW_TOKENS), greedy)
    r_last, _ = stream_last_logits(reloaded, family, stream_ids)
    assert torch.equal(r_last, logits_last), f"{name}: reload stream differs"

    ckpt = np_load_file(str(out_dir / "model.safetensors"))
    cfg = json.loads((out_dir / "config.json").read_text())
    for k, v in ckpt.items():
        assert torch.equal(torch.from_numpy(v), state_dict[k]), f"{name}: saved {k} is not the un-rescaled weight"
        assert not np.all(v == 0) and not np.all(v == 1), f"{name}: trivial tensor {k}"
    if base is not None:
        assert (out_dir / "model.safetensors").read_bytes() == base["model_bytes"], "weights differ from the base"
    ref_fn = NUMPY_REF[family]
    stats: dict = {}
    kw = {"apply_rescale": True} if family == "rwkv" else {}
    seq = torch.cat([input_ids, greedy], dim=1)[0].numpy()  # prompt + greedy tokens, teacher-forced
    ref = ref_fn(ckpt, cfg, seq, stats=stats, **kw)
    np_diff = float(np.abs(ref[None, :T] - logits.numpy().astype(np.float64)).max())
    assert np_diff <= NP_TOL, f"{name}: numpy reference logits differ by {np_diff}"
    ref_greedy = ref[T - 1 : T - 1 + N_NEW_TOKENS].argmax(-1)
    assert np.array_equal(ref_greedy, greedy[0].numpy()), f"{name}: numpy greedy tokens differ"
    ref_stream = ref_fn(ckpt, cfg, stream_ids[0].numpy(), stats=stats, **kw)
    np_stream_diff = float(np.abs(ref_stream[-1] - logits_last[0].numpy().astype(np.float64)).max())
    assert np_stream_diff <= NP_TOL, f"{name}: numpy reference logits_last differs by {np_stream_diff}"
    np_stream_full_diff = float(np.abs(ref_stream - full[0].numpy().astype(np.float64)).max())

    # ---------------- report ----------------
    print(f"[{name}] {cls.__name__}  ->  {out_dir.relative_to(REPO)}")
    print(f"  model.safetensors: {len(ckpt)} tensors, {sum(v.size for v in ckpt.values())} params")
    for k in sorted(ckpt):
        print(f"    {k:55s} {list(ckpt[k].shape)}")
    keys = ("time_step_rank", "intermediate_size", "expand", "attention_hidden_size", "rescale_every", "tie_word_embeddings")
    print("  config.json: " + ", ".join(f"{k}={cfg[k]!r}" for k in keys if k in cfg))
    print(f"  after training: {sanity_stats(name, family, model if base is None else fresh_model(cls, config, state_dict))}")
    print("  numpy stats: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(stats.items())))
    print(f"  inputs.safetensors: input_ids [1, {T}] int64  {input_ids[0].tolist()}")
    print(
        f"  expected.safetensors: logits {list(logits.shape)} float32 (std {logits.std().item():.3f}, "
        f"|max| {logits.abs().max().item():.3f}; numpy-f64 max diff {np_diff:.1e})"
    )
    print(f"  expected.safetensors: greedy_tokens {list(greedy.shape)} int64  {greedy[0].tolist()}")
    print(f"  greedy top1-top2 gaps f32: min {min_gap:.4f}  {' '.join(f'{g:.2f}' for g in gaps)}")
    print(f"  greedy top1-top2 gaps f16: min {min_gap16:.4f}  {' '.join(f'{g:.2f}' for g in gaps16)}")
    print(f"  f16-rounded weights move the prompt logits by up to {(logits16 - logits).abs().max().item():.4f}")
    print(
        f"  expected_stream.safetensors: stream_ids [1, {STREAM_LEN}], logits_last {list(logits_last.shape)}; "
        f"step-by-step vs full forward at the last position: {stream_diff:.2e}; numpy-f64 diff {np_stream_diff:.1e} "
        f"(numpy vs full forward over all 300 positions: {np_stream_full_diff:.1e}); next-token accuracy over the "
        f"stream {stream_acc:.4f}; last-step top2 gap {last_gap:.3f}; cycle lengths {meta_stream['stream_cycle_lengths']}"
    )
    print(f"  recurrent state: {describe_state(family, final_state)}")
    print(f"  from_pretrained (memory-mapped, unaligned) vs expected: max |diff| {mmap_diff:.1e}")
    if family == "rwkv" and cfg.get("rescale_every", 0) > 0:
        plain = ref_fn(ckpt, cfg, stream_ids[0].numpy(), apply_rescale=False)
        print(
            "  numpy with vs without the rescaling (f64, all 300 stream positions): max |diff| "
            f"{np.abs(plain - ref_stream).max():.2e}; numpy without rescaling vs transformers (rescaled): prompt "
            f"{np.abs(plain[None, :T] - logits.numpy()).max():.2e}, "
            f"logits_last {np.abs(plain[-1] - logits_last[0].numpy()).max():.2e}"
        )
        ratios = [
            round((state_dict[f"rwkv.blocks.{i}.attention.output.weight"] / blk.attention.output.weight).mean().item(), 4)
            for i, blk in enumerate(model.rwkv.blocks)
        ]
        print(f"  after eval forward, transformers has divided attention.output.weight in place by {ratios}")
    if base is not None:
        print(
            f"  vs {spec['derived_from']}: prompt logits max |diff| {d_logits:.2e}, logits_last max |diff| {d_last:.2e}, "
            f"greedy tokens equal: {same_greedy}"
        )

    built[name] = dict(
        cls=cls,
        config_cls=type(config),
        seed=seed,
        t=T,
        config_kwargs=spec.get("config", {}) if base is None else {**base["config_kwargs"], **spec["config_override"]},
        state_dict=state_dict,
        perm=perm,
        final_loss=final_loss,
        input_ids=input_ids,
        lang=lang,
        logits=logits,
        greedy=greedy,
        logits_last=logits_last,
        model_bytes=(out_dir / "model.safetensors").read_bytes(),
    )


def main(argv: list[str]) -> int:
    setup_determinism()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()  # silence the "falling back to PyTorch" notices
    check_reference_paths()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, safetensors {safetensors.__version__}")
    names = argv or list(CHECKPOINTS)
    unknown = set(names) - set(CHECKPOINTS)
    assert not unknown, f"unknown checkpoint(s) {sorted(unknown)}; have {list(CHECKPOINTS)}"
    for n in list(names):  # derived checkpoints need their base, built first
        base = CHECKPOINTS[n].get("derived_from")
        if base and base not in names:
            names.insert(names.index(n), base)
    built: dict = {}
    for name in names:
        spec = CHECKPOINTS[name]
        out_dir = OUT_ROOT / spec["family"] / name
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        make_checkpoint(name, spec, out_dir, built)
        print_dir_sizes(out_dir, MAX_DIR_BYTES)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
