//! BERT (Devlin et al. 2019) encoder, Hugging Face `BertModel` layout (also
//! sentence-transformers models such as all-MiniLM-L6-v2). Post-norm blocks.
//!
//! ```text
//! x = LayerNorm(word[ids] + position[0..t] + token_type[types])   // [t, d]
//! for each layer:
//!   x = LayerNorm(x + out(attn(qkv(x), attention_mask)))
//!   x = LayerNorm(x + down(gelu(up(x))))
//! last_hidden_state = x; pooler_output = tanh(dense(x[0]))
//! ```

use mote_runtime::Activation;
use serde_json::Value;

use crate::blocks::{self, AttentionNames, AttentionOpts, Mlp};
use crate::checkpoint::Checkpoint;
use crate::config;
use crate::error::{Error, Result};
use crate::graph::Graph;

/// The BERT fields of `config.json` (defaults as in transformers' `BertConfig`).
#[derive(Clone, Debug)]
pub struct BertConfig {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub act: Activation,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub eps: f32,
}

impl BertConfig {
    pub fn from_json(cfg: &Value) -> Result<Self> {
        let hidden = config::usize_or(cfg, "hidden_size", 768)?;
        let heads = config::usize_or(cfg, "num_attention_heads", 12)?;
        config::head_dim(hidden, "hidden_size", heads, "num_attention_heads")?;
        let pe = config::str_or(cfg, "position_embedding_type", "absolute")?;
        if pe != "absolute" {
            return Err(Error::Unsupported {
                key: "position_embedding_type".into(),
                value: pe.into(),
                why: "only absolute".into(),
            });
        }
        if config::bool_or(cfg, "is_decoder", false)? || config::bool_or(cfg, "add_cross_attention", false)? {
            return Err(Error::Unsupported {
                key: "is_decoder".into(),
                value: "true".into(),
                why: "BertModel is run as an encoder".into(),
            });
        }
        let act = config::activation(cfg, "hidden_act", "gelu")?;
        Ok(BertConfig {
            vocab: config::usize_or(cfg, "vocab_size", 30522)?,
            hidden,
            layers: config::usize_or(cfg, "num_hidden_layers", 12)?,
            heads,
            intermediate: config::usize_or(cfg, "intermediate_size", 3072)?,
            act,
            max_positions: config::usize_or(cfg, "max_position_embeddings", 512)?,
            type_vocab: config::usize_or(cfg, "type_vocab_size", 2)?,
            eps: config::f64_or(cfg, "layer_norm_eps", 1e-12)? as f32,
        })
    }
}

/// Builds `BertModel` for sequences of up to `g.max_tokens` tokens.
pub fn build(g: &mut Graph, ckpt: &Checkpoint) -> Result<()> {
    let c = BertConfig::from_json(&ckpt.config)?;
    if g.max_tokens > c.max_positions {
        return Err(Error::Config {
            key: "max_position_embeddings".into(),
            msg: format!("--max-seq {} is longer than the {} learned positions", g.max_tokens, c.max_positions),
        });
    }
    let p = if ckpt.has("bert.embeddings.word_embeddings.weight") { "bert." } else { "" };
    let d = c.hidden;
    let ids = g.token_input("input_ids");
    let types = g.token_input("token_type_ids");
    let mask = g.token_f32_input("attention_mask");
    let word = g.matrix(ckpt, &format!("{p}embeddings.word_embeddings.weight"), &[c.vocab, d])?;
    let pos = g.matrix(ckpt, &format!("{p}embeddings.position_embeddings.weight"), &[c.max_positions, d])?;
    let typ = g.matrix(ckpt, &format!("{p}embeddings.token_type_embeddings.weight"), &[c.type_vocab, d])?;
    let e_word = g.embedding("embeddings.word", ids, word);
    let e_pos = g.position_embedding("embeddings.position", pos);
    let e_type = g.embedding("embeddings.token_type", types, typ);
    let e = g.add("embeddings.word+position", e_word, e_pos);
    let e = g.add("embeddings.sum", e, e_type);
    // x: [t, d]
    let mut x = blocks::layer_norm(g, ckpt, &format!("{p}embeddings.LayerNorm"), e, d, c.eps)?;
    for i in 0..c.layers {
        let l = format!("{p}encoder.layer.{i}");
        let qkv = ["query", "key", "value"].map(|n| format!("{l}.attention.self.{n}"));
        let names = AttentionNames::linear(qkv, true, &format!("{l}.attention.output.dense"), true);
        let opts = AttentionOpts {
            heads: c.heads,
            kv_heads: c.heads,
            head_dim: d / c.heads,
            mask: Some(mask),
            ..Default::default()
        };
        let a = blocks::self_attention(g, ckpt, &format!("{l}.attention"), &names, x, x, d, &opts)?;
        let h = blocks::layer_norm(g, ckpt, &format!("{l}.attention.output.LayerNorm"), a, d, c.eps)?;
        let mlp = Mlp {
            up: format!("{l}.intermediate.dense"),
            down: format!("{l}.output.dense"),
            bias: true,
            hidden: d,
            inner: c.intermediate,
            act: c.act,
            transposed: false,
        };
        let o = blocks::mlp(g, ckpt, &l, &mlp, h, h)?;
        x = blocks::layer_norm(g, ckpt, &format!("{l}.output.LayerNorm"), o, d, c.eps)?;
    }
    g.reshape(x, vec![1, g.max_tokens, d]);
    g.output(x, "last_hidden_state");
    blocks::pooler(g, ckpt, p, x, d)
}
