//! GPT-2 (Radford et al. 2019), Hugging Face `GPT2LMHeadModel` layout. Projections are
//! `Conv1D` (weights stored `[in, out]`), transposed once at conversion.
//!
//! ```text
//! x = wte[ids] + wpe[pos..pos+t]                               // [t, d]
//! for each block:
//!   x = x + c_proj(attn(c_attn(ln_1(x))))                      // causal, KV cache
//!   x = x + mlp.c_proj(gelu_new(mlp.c_fc(ln_2(x))))
//! logits = ln_f(x) wte^T                                       // tied head
//! ```

use mote_runtime::Activation;
use serde_json::Value;

use crate::blocks::{self, AttentionNames, AttentionOpts, Head, Mlp};
use crate::checkpoint::Checkpoint;
use crate::config;
use crate::error::{Error, Result};
use crate::graph::Graph;

/// The GPT-2 fields of `config.json` (defaults as in transformers' `GPT2Config`).
#[derive(Clone, Debug)]
pub struct Gpt2Config {
    pub vocab: usize,
    pub positions: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub inner: usize,
    pub eps: f32,
    pub act: Activation,
    pub tied: bool,
}

impl Gpt2Config {
    pub fn from_json(cfg: &Value) -> Result<Self> {
        let hidden = config::usize_or(cfg, "n_embd", 768)?;
        let heads = config::usize_or(cfg, "n_head", 12)?;
        config::head_dim(hidden, "n_embd", heads, "n_head")?;
        let act = config::activation(cfg, "activation_function", "gelu_new")?;
        for key in ["scale_attn_by_inverse_layer_idx", "add_cross_attention"] {
            if config::bool_or(cfg, key, false)? {
                return Err(Error::Unsupported { key: key.into(), value: "true".into(), why: "not supported".into() });
            }
        }
        if !config::bool_or(cfg, "scale_attn_weights", true)? {
            return Err(Error::Unsupported {
                key: "scale_attn_weights".into(),
                value: "false".into(),
                why: "attention is always scaled".into(),
            });
        }
        Ok(Gpt2Config {
            vocab: config::usize_or(cfg, "vocab_size", 50257)?,
            positions: config::usize_or(cfg, "n_positions", 1024)?,
            hidden,
            layers: config::usize_or(cfg, "n_layer", 12)?,
            heads,
            inner: config::usize_or(cfg, "n_inner", 4 * hidden)?,
            eps: config::f64_or(cfg, "layer_norm_epsilon", 1e-5)? as f32,
            act,
            tied: config::bool_or(cfg, "tie_word_embeddings", true)?,
        })
    }
}

/// Builds `GPT2LMHeadModel` with a KV cache of `g.max_context` tokens.
pub fn build(g: &mut Graph, ckpt: &Checkpoint) -> Result<()> {
    let c = Gpt2Config::from_json(&ckpt.config)?;
    if g.max_context > c.positions {
        return Err(Error::Config {
            key: "n_positions".into(),
            msg: format!("the context ({}) is longer than the {} learned positions", g.max_context, c.positions),
        });
    }
    // Hub checkpoints come with and without the `transformer.` prefix.
    let p = if ckpt.has("transformer.wte.weight") { "transformer." } else { "" };
    let (d, head_dim) = (c.hidden, c.hidden / c.heads);
    let ids = g.token_input("input_ids");
    let wte = g.matrix(ckpt, &format!("{p}wte.weight"), &[c.vocab, d])?;
    let wpe = g.matrix(ckpt, &format!("{p}wpe.weight"), &[c.positions, d])?;
    let tok = g.embedding("wte", ids, wte);
    let pos = g.position_embedding("wpe", wpe);
    // x: [t, d]
    let mut x = g.add("embeddings", tok, pos);
    for i in 0..c.layers {
        let l = format!("{p}h.{i}");
        let a = blocks::layer_norm(g, ckpt, &format!("{l}.ln_1"), x, d, c.eps)?;
        let names = AttentionNames {
            fused: Some(format!("{l}.attn.c_attn.weight")),
            fused_bias: Some(format!("{l}.attn.c_attn.bias")),
            out: format!("{l}.attn.c_proj.weight"),
            out_bias: Some(format!("{l}.attn.c_proj.bias")),
            out_transposed: true,
            ..Default::default()
        };
        let k_cache = g.persistent(&format!("{l}.attn.k_cache"), vec![g.max_context, d]);
        let v_cache = g.persistent(&format!("{l}.attn.v_cache"), vec![g.max_context, d]);
        let opts = AttentionOpts {
            heads: c.heads,
            kv_heads: c.heads,
            head_dim,
            causal: true,
            cache: Some((k_cache, v_cache)),
            ..Default::default()
        };
        let h = blocks::self_attention(g, ckpt, &format!("{l}.attn"), &names, a, x, d, &opts)?;
        let b = blocks::layer_norm(g, ckpt, &format!("{l}.ln_2"), h, d, c.eps)?;
        let mlp = Mlp {
            up: format!("{l}.mlp.c_fc"),
            down: format!("{l}.mlp.c_proj"),
            bias: true,
            hidden: d,
            inner: c.inner,
            act: c.act,
            transposed: true,
        };
        x = blocks::mlp(g, ckpt, &format!("{l}.mlp"), &mlp, b, h)?;
    }
    let n = blocks::layer_norm(g, ckpt, &format!("{p}ln_f"), x, d, c.eps)?;
    let head = if c.tied { Head::Tied } else { Head::UntiedIfPresent("lm_head.weight") };
    blocks::lm_head(g, ckpt, head, n, wte, c.vocab, d)
}
