//! RWKV-4 (Peng et al. 2023), Hugging Face `RwkvForCausalLM` layout. The recurrent state
//! is constant in size: per layer the previous rows of the two token shifts and the WKV
//! state `(aa, bb, pp)`.
//!
//! ```text
//! x = pre_ln(embeddings[ids])                                 // block 0's pre_ln
//! for each block:
//!   a = ln1(x); k|v|r mixes = token_shift(a)                  // x_t*mix + x_{t-1}*(1-mix)
//!   x = x + output(sigmoid(receptance(r_mix)) * wkv(key(k_mix), value(v_mix)))
//!   b = ln2(x); k|r mixes = token_shift(b)
//!   x = x + sigmoid(receptance(r_mix)) * value(relu(key(k_mix))^2)
//! logits = head(ln_out(x))
//! ```
//! `rescale_every` only rescales weights and activations by powers of two, which
//! LayerNorm undoes; the converter reads the weights unscaled and ignores it.

use mote_runtime::{Activation, DType};
use serde_json::Value;

use crate::blocks::{self, Head};
use crate::checkpoint::Checkpoint;
use crate::config;
use crate::error::Result;
use crate::graph::Graph;
use crate::tensor::HostTensor;

/// The RWKV fields of `config.json` (defaults as in transformers' `RwkvConfig`).
#[derive(Clone, Debug)]
pub struct RwkvConfig {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub attention: usize,
    pub intermediate: usize,
    pub eps: f32,
    pub tied: bool,
}

impl RwkvConfig {
    pub fn from_json(cfg: &Value) -> Result<Self> {
        let hidden = config::usize_or(cfg, "hidden_size", 4096)?;
        Ok(RwkvConfig {
            vocab: config::usize_or(cfg, "vocab_size", 50277)?,
            hidden,
            layers: config::usize_or(cfg, "num_hidden_layers", 32)?,
            attention: config::usize_or(cfg, "attention_hidden_size", hidden)?,
            intermediate: config::usize_or(cfg, "intermediate_size", 4 * hidden)?,
            eps: config::f64_or(cfg, "layer_norm_epsilon", 1e-5)? as f32,
            tied: config::bool_or(cfg, "tie_word_embeddings", false)?,
        })
    }

    /// Recurrent state bytes per layer: two shift rows and the WKV state, f32.
    pub fn state_bytes_per_layer(&self) -> usize {
        4 * (2 * self.hidden + 3 * self.attention)
    }
}

/// Stacks `[1, 1, d]` mix vectors into one `[m, d]` f32 weight.
fn mixes(g: &mut Graph, ckpt: &Checkpoint, name: &str, parts: &[String], d: usize) -> Result<u32> {
    let mut v = Vec::with_capacity(parts.len() * d);
    for p in parts {
        v.extend(ckpt.tensor(p, &[1, 1, d])?.to_f32());
    }
    g.weight_from(name, &HostTensor::f32(vec![parts.len(), d], v), DType::F32)
}

/// Builds `RwkvForCausalLM`.
pub fn build(g: &mut Graph, ckpt: &Checkpoint) -> Result<()> {
    let c = RwkvConfig::from_json(&ckpt.config)?;
    let (d, a, inner) = (c.hidden, c.attention, c.intermediate);
    let ids = g.token_input("input_ids");
    let table = g.matrix(ckpt, "rwkv.embeddings.weight", &[c.vocab, d])?;
    let e = g.embedding("rwkv.embeddings", ids, table);
    // x: [t, d]
    let mut x = blocks::layer_norm(g, ckpt, "rwkv.blocks.0.pre_ln", e, d, c.eps)?;
    for i in 0..c.layers {
        let b = format!("rwkv.blocks.{i}");
        // Time mix.
        let at = format!("{b}.attention");
        let h = blocks::layer_norm(g, ckpt, &format!("{b}.ln1"), x, d, c.eps)?;
        let att_state = g.persistent(&format!("{at}.shift_state"), vec![d]);
        let mix = ["key", "value", "receptance"].map(|n| format!("{at}.time_mix_{n}"));
        let mix = mixes(g, ckpt, &format!("{at}.time_mix_key+value+receptance"), &mix, d)?;
        let shifted = g.token_shift(&format!("{at}.shift"), h, att_state, mix); // [t, 3d]
        let wk = g.matrix(ckpt, &format!("{at}.key.weight"), &[a, d])?;
        let wv = g.matrix(ckpt, &format!("{at}.value.weight"), &[a, d])?;
        let wr = g.matrix(ckpt, &format!("{at}.receptance.weight"), &[a, d])?;
        let k = g.matmul_cols(&format!("{at}.key"), shifted, 0, wk, None, None, Activation::None);
        let v = g.matmul_cols(&format!("{at}.value"), shifted, d, wv, None, None, Activation::None);
        let r = g.matmul_cols(&format!("{at}.receptance"), shifted, 2 * d, wr, None, None, Activation::Sigmoid);
        let u = g.vector(ckpt, &format!("{at}.time_first"), &[a])?;
        let decay = ckpt.tensor(&format!("{at}.time_decay"), &[a])?.to_f32();
        let w: Vec<f32> = decay.iter().map(|t| -t.exp()).collect();
        let w = g.weight_from(&format!("{at}.time_decay(-exp)"), &HostTensor::f32(vec![a], w), DType::F32)?;
        let wkv_state = g.persistent(&format!("{at}.wkv_state"), vec![3, a]);
        let rwkv = g.wkv(&format!("{at}.wkv"), k, v, r, u, w, wkv_state); // [t, a]
        let wo = g.matrix(ckpt, &format!("{at}.output.weight"), &[d, a])?;
        x = g.matmul(&format!("{at}.output"), rwkv, wo, None, Some(x), Activation::None);
        // Channel mix.
        let ff = format!("{b}.feed_forward");
        let h2 = blocks::layer_norm(g, ckpt, &format!("{b}.ln2"), x, d, c.eps)?;
        let ffn_state = g.persistent(&format!("{ff}.shift_state"), vec![d]);
        let mix2 = ["key", "receptance"].map(|n| format!("{ff}.time_mix_{n}"));
        let mix2 = mixes(g, ckpt, &format!("{ff}.time_mix_key+receptance"), &mix2, d)?;
        let shifted2 = g.token_shift(&format!("{ff}.shift"), h2, ffn_state, mix2); // [t, 2d]
        let fk = g.matrix(ckpt, &format!("{ff}.key.weight"), &[inner, d])?;
        let fr = g.matrix(ckpt, &format!("{ff}.receptance.weight"), &[d, d])?;
        let fv = g.matrix(ckpt, &format!("{ff}.value.weight"), &[d, inner])?;
        let kk = g.matmul_cols(&format!("{ff}.key"), shifted2, 0, fk, None, None, Activation::ReluSquared); // [t, inner]
        let rr = g.matmul_cols(&format!("{ff}.receptance"), shifted2, d, fr, None, None, Activation::Sigmoid); // [t, d]
        let kv = g.matmul(&format!("{ff}.value"), kk, fv, None, None, Activation::None); // [t, d]
        x = g.mul(&format!("{ff}.out"), rr, kv, Some(x));
    }
    // transformers builds ln_out as nn.LayerNorm(hidden) with PyTorch's default eps,
    // whatever layer_norm_epsilon says.
    let n = blocks::layer_norm(g, ckpt, "rwkv.ln_out", x, d, 1e-5)?;
    let head = if c.tied { Head::Tied } else { Head::Untied("head.weight") };
    blocks::lm_head(g, ckpt, head, n, table, c.vocab, d)
}
