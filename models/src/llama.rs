//! Llama (Touvron et al. 2023), Hugging Face `LlamaForCausalLM` layout.
//!
//! ```text
//! x = embed_tokens[ids]                                        // [t, d]
//! for each layer:
//!   x = x + o_proj(attn(rope(qkv_proj(rms_norm(x)))))           // causal, GQA, KV cache
//!   x = x + down_proj(silu(gate_proj(h)) * up_proj(h)), h = rms_norm(x)
//! logits = lm_head(rms_norm(x))                                 // lm_head = embed_tokens when tied
//! ```

use mote_runtime::{Activation, DType};
use serde_json::Value;

use crate::blocks::{self, AttentionNames, AttentionOpts, GatedMlp, Head};
use crate::checkpoint::Checkpoint;
use crate::config;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::tensor::HostTensor;

/// The Llama fields of `config.json` (defaults as in transformers' `LlamaConfig`).
#[derive(Clone, Debug)]
pub struct LlamaConfig {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub eps: f32,
    pub rope_theta: f64,
    pub tied: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub act: Activation,
    pub max_positions: usize,
}

fn unsupported(key: &str, value: impl ToString, why: &str) -> Error {
    Error::Unsupported { key: key.into(), value: value.to_string(), why: why.into() }
}

impl LlamaConfig {
    pub fn from_json(cfg: &Value) -> Result<Self> {
        let hidden = config::usize_or(cfg, "hidden_size", 4096)?;
        let heads = config::usize_or(cfg, "num_attention_heads", 32)?;
        let kv_heads = config::usize_or(cfg, "num_key_value_heads", heads)?;
        if heads % kv_heads != 0 {
            return Err(Error::Config {
                key: "num_key_value_heads".into(),
                msg: format!("{kv_heads} does not divide num_attention_heads {heads}"),
            });
        }
        let head_dim = match cfg.get("head_dim") {
            Some(Value::Number(_)) => config::usize_req(cfg, "head_dim")?,
            _ => config::head_dim(hidden, "hidden_size", heads, "num_attention_heads")?,
        };
        if head_dim % 2 != 0 {
            return Err(unsupported("head_dim", head_dim, "RoPE needs an even head_dim"));
        }
        // transformers >= 5 keeps RoPE settings in `rope_parameters`; older configs have
        // `rope_theta` and `rope_scaling` at the top level.
        let params = cfg.get("rope_parameters").filter(|v| v.is_object());
        let rope_theta = match params.and_then(|p| p.get("rope_theta")) {
            Some(v) => v.as_f64().filter(|x| *x > 0.0).ok_or_else(|| Error::Config {
                key: "rope_parameters.rope_theta".into(),
                msg: format!("not a positive number: {v}"),
            })?,
            None => config::f64_or(cfg, "rope_theta", 10_000.0)?,
        };
        let rope_type = params.and_then(|p| p.get("rope_type")).or_else(|| {
            cfg.get("rope_scaling").filter(|v| !v.is_null()).and_then(|s| s.get("rope_type").or_else(|| s.get("type")))
        });
        if let Some(t) = rope_type.filter(|t| t.as_str() != Some("default")) {
            return Err(unsupported("rope_type", t, "only default RoPE (no scaling) is supported"));
        }
        if cfg.get("rope_scaling").is_some_and(|v| !v.is_null()) && rope_type.is_none() {
            return Err(unsupported("rope_scaling", &cfg["rope_scaling"], "RoPE scaling is not supported"));
        }
        let act = config::activation(cfg, "hidden_act", "silu")?;
        let tp = config::usize_or(cfg, "pretraining_tp", 1)?;
        if tp != 1 {
            return Err(unsupported("pretraining_tp", tp, "only 1"));
        }
        Ok(LlamaConfig {
            vocab: config::usize_or(cfg, "vocab_size", 32000)?,
            hidden,
            layers: config::usize_or(cfg, "num_hidden_layers", 32)?,
            heads,
            kv_heads,
            head_dim,
            intermediate: config::usize_or(cfg, "intermediate_size", 11008)?,
            eps: config::f64_or(cfg, "rms_norm_eps", 1e-6)? as f32,
            rope_theta,
            tied: config::bool_or(cfg, "tie_word_embeddings", false)?,
            attention_bias: config::bool_or(cfg, "attention_bias", false)?,
            mlp_bias: config::bool_or(cfg, "mlp_bias", false)?,
            act,
            max_positions: config::usize_or(cfg, "max_position_embeddings", 2048)?,
        })
    }
}

/// RoPE inverse frequencies `1 / theta^(2j / head_dim)`, in f32 as transformers computes them.
pub fn inv_freq(theta: f64, head_dim: usize) -> Vec<f32> {
    (0..head_dim / 2).map(|j| 1.0f32 / (theta as f32).powf((2 * j) as f32 / head_dim as f32)).collect()
}

/// Builds `LlamaForCausalLM` with a KV cache of `g.max_context` tokens.
pub fn build(g: &mut Graph, ckpt: &Checkpoint) -> Result<()> {
    let c = LlamaConfig::from_json(&ckpt.config)?;
    let (d, kv_dim) = (c.hidden, c.kv_heads * c.head_dim);
    let ids = g.token_input("input_ids");
    let table = g.matrix(ckpt, "model.embed_tokens.weight", &[c.vocab, d])?;
    // x: [t, d]
    let mut x = g.embedding("model.embed_tokens", ids, table);
    let rope = g.weight_from(
        "rope.inv_freq",
        &HostTensor::f32(vec![c.head_dim / 2], inv_freq(c.rope_theta, c.head_dim)),
        DType::F32,
    )?;
    for i in 0..c.layers {
        let l = format!("model.layers.{i}");
        let a = blocks::rms_norm(g, ckpt, &format!("{l}.input_layernorm"), x, d, c.eps)?;
        let qkv = ["q", "k", "v"].map(|n| format!("{l}.self_attn.{n}_proj"));
        let names = AttentionNames::linear(qkv, c.attention_bias, &format!("{l}.self_attn.o_proj"), c.attention_bias);
        // k_cache, v_cache: [max_context, kv_heads * head_dim]
        let k_cache = g.persistent(&format!("{l}.self_attn.k_cache"), vec![g.max_context, kv_dim]);
        let v_cache = g.persistent(&format!("{l}.self_attn.v_cache"), vec![g.max_context, kv_dim]);
        let opts = AttentionOpts {
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            causal: true,
            rope: Some(rope),
            cache: Some((k_cache, v_cache)),
            mask: None,
        };
        let h = blocks::self_attention(g, ckpt, &format!("{l}.self_attn"), &names, a, x, d, &opts)?;
        let b = blocks::rms_norm(g, ckpt, &format!("{l}.post_attention_layernorm"), h, d, c.eps)?;
        let mlp = GatedMlp {
            gate: format!("{l}.mlp.gate_proj"),
            up: format!("{l}.mlp.up_proj"),
            down: format!("{l}.mlp.down_proj"),
            bias: c.mlp_bias,
            hidden: d,
            inner: c.intermediate,
            act: c.act,
        };
        x = blocks::gated_mlp(g, ckpt, &format!("{l}.mlp"), &mlp, b, h)?;
    }
    let n = blocks::rms_norm(g, ckpt, "model.norm", x, d, c.eps)?;
    let head = if c.tied { Head::Tied } else { Head::Untied("lm_head.weight") };
    blocks::lm_head(g, ckpt, head, n, table, c.vocab, d)
}
