//! Mamba (Gu & Dao 2023), Hugging Face `MambaForCausalLM` layout. The recurrent state is
//! constant in size: a conv state `[k-1, e]` and an SSM state `[e, n]` per layer.
//!
//! ```text
//! x = embeddings[ids]
//! for each layer (residual around the mixer):
//!   h = rms_norm(x); xi, z = in_proj(h)                     // [t, e] each
//!   xc = silu(causal_conv1d(xi))                           // rolling conv state
//!   dt, B, C = x_proj(xc)                                  // [t, r], [t, n], [t, n]
//!   Δ = softplus(dt_proj(dt)); A = -exp(A_log)
//!   h_s = exp(Δ A) h_s + Δ B xc;  y = C h_s + D xc          // selective scan, state [e, n]
//!   x = x + out_proj(y * silu(z))
//! logits = lm_head(rms_norm_f(x))                          // tied to embeddings by default
//! ```

use mote_runtime::{Activation, DType};
use serde_json::Value;

use crate::blocks::{self, Head};
use crate::checkpoint::Checkpoint;
use crate::config;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::tensor::HostTensor;

/// The Mamba fields of `config.json` (defaults as in transformers' `MambaConfig`).
#[derive(Clone, Debug)]
pub struct MambaConfig {
    pub vocab: usize,
    pub hidden: usize,
    pub state: usize,
    pub layers: usize,
    pub inner: usize,
    pub conv_kernel: usize,
    pub dt_rank: usize,
    pub use_bias: bool,
    pub use_conv_bias: bool,
    pub eps: f32,
    pub tied: bool,
}

impl MambaConfig {
    pub fn from_json(cfg: &Value) -> Result<Self> {
        let hidden = config::usize_or(cfg, "hidden_size", 768)?;
        let expand = config::f64_or(cfg, "expand", 2.0)?;
        let inner = match cfg.get("intermediate_size") {
            Some(Value::Number(_)) => config::usize_req(cfg, "intermediate_size")?,
            _ => (expand * hidden as f64) as usize,
        };
        let dt_rank = match cfg.get("time_step_rank") {
            None | Some(Value::Null) => hidden.div_ceil(16),
            Some(Value::String(s)) if s == "auto" => hidden.div_ceil(16),
            Some(_) => config::usize_req(cfg, "time_step_rank")?,
        };
        if config::activation(cfg, "hidden_act", "silu")? != Activation::Silu {
            return Err(Error::Unsupported {
                key: "hidden_act".into(),
                value: config::str_or(cfg, "hidden_act", "silu")?.into(),
                why: "Mamba runs with silu".into(),
            });
        }
        let conv_kernel = config::usize_or(cfg, "conv_kernel", 4)?;
        if conv_kernel < 2 {
            return Err(Error::Unsupported {
                key: "conv_kernel".into(),
                value: conv_kernel.to_string(),
                why: "at least 2".into(),
            });
        }
        Ok(MambaConfig {
            vocab: config::usize_or(cfg, "vocab_size", 50280)?,
            hidden,
            state: config::usize_or(cfg, "state_size", 16)?,
            layers: config::usize_or(cfg, "num_hidden_layers", 32)?,
            inner,
            conv_kernel,
            dt_rank,
            use_bias: config::bool_or(cfg, "use_bias", false)?,
            use_conv_bias: config::bool_or(cfg, "use_conv_bias", true)?,
            eps: config::f64_or(cfg, "layer_norm_epsilon", 1e-5)? as f32,
            tied: config::bool_or(cfg, "tie_word_embeddings", true)?,
        })
    }

    /// Recurrent state bytes per layer: conv state plus SSM state, f32.
    pub fn state_bytes_per_layer(&self) -> usize {
        4 * ((self.conv_kernel - 1) * self.inner + self.inner * self.state)
    }
}

/// Builds `MambaForCausalLM`.
pub fn build(g: &mut Graph, ckpt: &Checkpoint) -> Result<()> {
    let c = MambaConfig::from_json(&ckpt.config)?;
    let (d, e, n, r, k) = (c.hidden, c.inner, c.state, c.dt_rank, c.conv_kernel);
    let wd = g.weight_dtype.dtype();
    let ids = g.token_input("input_ids");
    let table = g.matrix(ckpt, "backbone.embeddings.weight", &[c.vocab, d])?;
    // x: [t, d]
    let mut x = g.embedding("backbone.embeddings", ids, table);
    for i in 0..c.layers {
        let l = format!("backbone.layers.{i}");
        let m = format!("{l}.mixer");
        let h = blocks::rms_norm(g, ckpt, &format!("{l}.norm"), x, d, c.eps)?;
        // in_proj [2e, d] -> x part (rows 0..e) and gate z (rows e..2e).
        let in_w = format!("{m}.in_proj.weight");
        let (w_x, w_z) =
            (g.rows_of(ckpt, &in_w, &[2 * e, d], 0, e, wd)?, g.rows_of(ckpt, &in_w, &[2 * e, d], e, e, wd)?);
        let (b_x, b_z) = if c.use_bias {
            let b = format!("{m}.in_proj.bias");
            (
                Some(g.rows_of(ckpt, &b, &[2 * e], 0, e, DType::F32)?),
                Some(g.rows_of(ckpt, &b, &[2 * e], e, e, DType::F32)?),
            )
        } else {
            (None, None)
        };
        let xi = g.matmul(&format!("{m}.in_proj.x"), h, w_x, b_x, None, Activation::None); // [t, e]
        let z = g.matmul(&format!("{m}.in_proj.z"), h, w_z, b_z, None, Activation::None); // [t, e]
        // conv1d weight [e, 1, k] is stored as [e, k].
        let conv_w = g.weight_from(
            &format!("{m}.conv1d.weight"),
            &{
                let mut t = ckpt.tensor(&format!("{m}.conv1d.weight"), &[e, 1, k])?;
                t.shape = vec![e, k];
                t
            },
            DType::F32,
        )?;
        let conv_b = g.opt_vector(ckpt, &format!("{m}.conv1d.bias"), &[e], c.use_conv_bias)?;
        let conv_state = g.persistent(&format!("{m}.conv_state"), vec![k - 1, e]);
        let xc = g.causal_conv1d(&format!("{m}.conv1d"), xi, conv_state, conv_w, conv_b, Activation::Silu);
        // x_proj [r + 2n, e] -> dt (rows 0..r) and B|C (rows r..r+2n).
        let xp = format!("{m}.x_proj.weight");
        let (w_dt, w_bc) =
            (g.rows_of(ckpt, &xp, &[r + 2 * n, e], 0, r, wd)?, g.rows_of(ckpt, &xp, &[r + 2 * n, e], r, 2 * n, wd)?);
        let dt_low = g.matmul(&format!("{m}.x_proj.dt"), xc, w_dt, None, None, Activation::None); // [t, r]
        let bc = g.matmul(&format!("{m}.x_proj.bc"), xc, w_bc, None, None, Activation::None); // [t, 2n]
        let w_dtp = g.matrix(ckpt, &format!("{m}.dt_proj.weight"), &[e, r])?;
        let b_dtp = g.vector(ckpt, &format!("{m}.dt_proj.bias"), &[e])?;
        // dt: [t, e], softplus applied in the scan.
        let dt = g.matmul(&format!("{m}.dt_proj"), dt_low, w_dtp, Some(b_dtp), None, Activation::None);
        // [A | D]: A = -exp(A_log) as transformers computes it, in f32.
        let a_log = ckpt.tensor(&format!("{m}.A_log"), &[e, n])?.to_f32();
        let dd = ckpt.tensor(&format!("{m}.D"), &[e])?.to_f32();
        let mut a_d = Vec::with_capacity(e * (n + 1));
        for ch in 0..e {
            a_d.extend(a_log[ch * n..(ch + 1) * n].iter().map(|v| -v.exp()));
            a_d.push(dd[ch]);
        }
        let a_d = g.weight_from(&format!("{m}.A_log+D"), &HostTensor::f32(vec![e, n + 1], a_d), DType::F32)?;
        let ssm_state = g.persistent(&format!("{m}.ssm_state"), vec![e, n]);
        let y = g.selective_scan(&format!("{m}.scan"), xc, dt, bc, z, a_d, ssm_state); // [t, e]
        let w_out = g.matrix(ckpt, &format!("{m}.out_proj.weight"), &[d, e])?;
        let b_out = g.opt_vector(ckpt, &format!("{m}.out_proj.bias"), &[d], c.use_bias)?;
        x = g.matmul(&format!("{m}.out_proj"), y, w_out, b_out, Some(x), Activation::None);
    }
    let nf = blocks::rms_norm(g, ckpt, "backbone.norm_f", x, d, c.eps)?;
    let head = if c.tied { Head::Tied } else { Head::Untied("lm_head.weight") };
    blocks::lm_head(g, ckpt, head, nf, table, c.vocab, d)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hidden_act_is_silu_or_its_alias() {
        for ok in [json!({}), json!({ "hidden_act": "silu" }), json!({ "hidden_act": "swish" })] {
            MambaConfig::from_json(&ok).unwrap();
        }
        let e = MambaConfig::from_json(&json!({ "hidden_act": "gelu" })).unwrap_err().to_string();
        assert!(e.contains("hidden_act") && e.contains("gelu") && e.contains("silu"), "{e}");
        let e = MambaConfig::from_json(&json!({ "hidden_act": "mish" })).unwrap_err().to_string();
        assert!(e.contains("hidden_act") && e.contains("mish") && e.contains("supported: gelu"), "{e}");
    }
}
