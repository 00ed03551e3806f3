//! Vision Transformer (Dosovitskiy et al. 2020), Hugging Face layout:
//! `ViTForImageClassification` and `ViTModel`.
//!
//! ```text
//! x  = [cls; patch_embed(image)] + pos          // [t, d], t = (h/p)*(w/p) + 1
//! for each layer:
//!   x = x + out(attn(qkv(ln_before(x))))         // pre-norm attention
//!   x = x + down(act(up(ln_after(x))))           // pre-norm MLP
//! logits = classifier(layernorm(x)[0])           // ViTForImageClassification
//! last_hidden_state = layernorm(x); pooler_output = tanh(dense(last_hidden_state[0]))
//! ```

use mote_runtime::Activation;
use serde_json::Value;

use crate::blocks::{self, AttentionNames, AttentionOpts, Mlp};
use crate::checkpoint::Checkpoint;
use crate::config;
use crate::error::{Error, Result};
use crate::graph::Graph;

/// The ViT fields of `config.json` (defaults as in transformers' `ViTConfig`).
#[derive(Clone, Debug)]
pub struct VitConfig {
    pub image: (usize, usize),
    pub patch: usize,
    pub channels: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub eps: f32,
    pub qkv_bias: bool,
    pub act: Activation,
    pub labels: usize,
}

impl VitConfig {
    pub fn from_json(cfg: &Value) -> Result<Self> {
        // Absent: transformers' default; present: it must be valid (0 or a string is an error).
        let (ph, pw) = match cfg.get("patch_size") {
            None | Some(Value::Null) => (16, 16),
            Some(_) => config::usize_pair(cfg, "patch_size")?,
        };
        if ph != pw {
            return Err(Error::Unsupported {
                key: "patch_size".into(),
                value: format!("[{ph}, {pw}]"),
                why: "only square patches".into(),
            });
        }
        let image = match cfg.get("image_size") {
            None => (224, 224),
            Some(_) => config::usize_pair(cfg, "image_size")?,
        };
        let hidden = config::usize_or(cfg, "hidden_size", 768)?;
        let heads = config::usize_or(cfg, "num_attention_heads", 12)?;
        config::head_dim(hidden, "hidden_size", heads, "num_attention_heads")?;
        if image.0 < ph || image.1 < ph {
            return Err(Error::Config {
                key: "patch_size".into(),
                msg: format!("{ph} is larger than image_size {image:?}"),
            });
        }
        let act = config::activation(cfg, "hidden_act", "gelu")?;
        let labels = match cfg.get("id2label").and_then(Value::as_object) {
            Some(m) if !m.is_empty() => m.len(),
            _ => config::usize_or(cfg, "num_labels", 2)?,
        };
        let pooler_act = config::str_or(cfg, "pooler_act", "tanh")?;
        if pooler_act != "tanh" {
            return Err(Error::Unsupported {
                key: "pooler_act".into(),
                value: pooler_act.into(),
                why: "only tanh".into(),
            });
        }
        if let Some(size) = cfg.get("pooler_output_size").and_then(Value::as_u64)
            && size as usize != hidden
        {
            return Err(Error::Unsupported {
                key: "pooler_output_size".into(),
                value: size.to_string(),
                why: "must equal hidden_size".into(),
            });
        }
        Ok(VitConfig {
            image,
            patch: ph,
            channels: config::usize_or(cfg, "num_channels", 3)?,
            hidden,
            layers: config::usize_or(cfg, "num_hidden_layers", 12)?,
            heads,
            intermediate: config::usize_or(cfg, "intermediate_size", 3072)?,
            eps: config::f64_or(cfg, "layer_norm_eps", 1e-12)? as f32,
            qkv_bias: config::bool_or(cfg, "qkv_bias", true)?,
            act,
            labels,
        })
    }

    pub fn patches(&self) -> usize {
        (self.image.0 / self.patch) * (self.image.1 / self.patch)
    }
}

/// Builds the graph for `ViTForImageClassification` (`classify`) or `ViTModel`.
pub fn build(g: &mut Graph, ckpt: &Checkpoint, classify: bool) -> Result<()> {
    let c = VitConfig::from_json(&ckpt.config)?;
    let (d, t) = (c.hidden, c.patches() + 1);
    // A ViTModel saved from a classifier keeps the `vit.` prefix.
    let p = if classify || ckpt.has("vit.embeddings.cls_token") { "vit." } else { "" };

    // image: [1, c, h, w]
    let image = g.input("pixel_values", vec![1, c.channels, c.image.0, c.image.1]);
    let w_patch = g.matrix(
        ckpt,
        &format!("{p}embeddings.patch_embeddings.projection.weight"),
        &[d, c.channels, c.patch, c.patch],
    )?;
    let b_patch = g.vector(ckpt, &format!("{p}embeddings.patch_embeddings.projection.bias"), &[d])?;
    // patches: [t - 1, d]
    let patches = g.patch_embed(
        "embeddings.patches",
        image,
        w_patch,
        Some(b_patch),
        c.channels,
        c.image.0,
        c.image.1,
        c.patch,
        d,
    );
    let cls = g.vector(ckpt, &format!("{p}embeddings.cls_token"), &[1, d])?;
    // tokens: [t, d]
    let tokens = g.concat_rows("embeddings.tokens", cls, patches);
    let pos = g.matrix(ckpt, &format!("{p}embeddings.position_embeddings"), &[t, d])?;
    let mut x = g.add("embeddings", tokens, pos);

    for i in 0..c.layers {
        let l = format!("{p}encoder.layer.{i}");
        let a = blocks::layer_norm(g, ckpt, &format!("{l}.layernorm_before"), x, d, c.eps)?;
        let qkv = ["query", "key", "value"].map(|n| format!("{l}.attention.attention.{n}"));
        let names = AttentionNames::linear(qkv, c.qkv_bias, &format!("{l}.attention.output.dense"), true);
        let opts = AttentionOpts { heads: c.heads, kv_heads: c.heads, head_dim: d / c.heads, ..Default::default() };
        let h = blocks::self_attention(g, ckpt, &format!("{l}.attention"), &names, a, x, d, &opts)?;
        let b = blocks::layer_norm(g, ckpt, &format!("{l}.layernorm_after"), h, d, c.eps)?;
        let mlp = Mlp {
            up: format!("{l}.intermediate.dense"),
            down: format!("{l}.output.dense"),
            bias: true,
            hidden: d,
            inner: c.intermediate,
            act: c.act,
            transposed: false,
        };
        x = blocks::mlp(g, ckpt, &l, &mlp, b, h)?;
    }

    if classify {
        // LayerNorm is per token, so normalising only the CLS row gives the same logits.
        let cls = g.select_rows("cls", x, 0, 1);
        let n = blocks::layer_norm(g, ckpt, &format!("{p}layernorm"), cls, d, c.eps)?;
        let w = g.matrix(ckpt, "classifier.weight", &[c.labels, d])?;
        let b = g.vector(ckpt, "classifier.bias", &[c.labels])?;
        let logits = g.matmul("logits", n, w, Some(b), None, Activation::None);
        g.output(logits, "logits");
    } else {
        let n = blocks::layer_norm(g, ckpt, &format!("{p}layernorm"), x, d, c.eps)?;
        g.reshape(n, vec![1, t, d]);
        g.output(n, "last_hidden_state");
        blocks::pooler(g, ckpt, p, n, d)?;
    }
    Ok(())
}
