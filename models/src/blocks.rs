//! Transformer blocks written once and used by every recipe.

use mote_runtime::Activation;

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::graph::{Graph, TensorId};

/// Names of the checkpoint tensors of one self-attention block.
#[derive(Debug)]
pub struct AttentionNames {
    /// Query, key, value projection weights ([out, hidden], nn.Linear layout).
    pub qkv: [String; 3],
    /// Their biases, when the model has them.
    pub qkv_bias: Option<[String; 3]>,
    pub out: String,
    pub out_bias: Option<String>,
}

/// Self-attention: one fused QKV matmul, streaming attention, output projection with the
/// residual added in the same matmul. `x`: [t, hidden] (already normalised);
/// `residual`: [t, hidden]. Returns [t, hidden].
#[allow(clippy::too_many_arguments)]
pub fn self_attention(
    g: &mut Graph,
    ckpt: &Checkpoint,
    prefix: &str,
    names: &AttentionNames,
    x: TensorId,
    residual: TensorId,
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    causal: bool,
) -> Result<TensorId> {
    let head_dim = hidden / heads;
    let kv_dim = kv_heads * head_dim;
    let rows = [hidden, kv_dim, kv_dim];
    let parts: Vec<(String, Vec<usize>)> =
        names.qkv.iter().zip(rows).map(|(n, r)| (n.clone(), vec![r, hidden])).collect();
    let fused = format!("{prefix}.qkv.weight");
    let w_qkv = g.stacked(ckpt, &fused, &parts, g.weight_dtype.dtype())?;
    let b_qkv = match &names.qkv_bias {
        Some(b) => {
            let parts: Vec<(String, Vec<usize>)> = b.iter().zip(rows).map(|(n, r)| (n.clone(), vec![r])).collect();
            Some(g.stacked(ckpt, &format!("{prefix}.qkv.bias"), &parts, mote_runtime::DType::F32)?)
        }
        None => None,
    };
    // qkv: [t, (heads + 2 * kv_heads) * head_dim]
    let qkv = g.matmul(&format!("{prefix}.qkv"), x, w_qkv, b_qkv, None, Activation::None);
    // ctx: [t, heads * head_dim]
    let ctx = g.attention(&format!("{prefix}.context"), qkv, heads, kv_heads, head_dim, causal);
    let w_o = g.matrix(ckpt, &names.out, &[hidden, heads * head_dim])?;
    let b_o = match &names.out_bias {
        Some(n) => Some(g.vector(ckpt, n, &[hidden])?),
        None => None,
    };
    Ok(g.matmul(&format!("{prefix}.out"), ctx, w_o, b_o, Some(residual), Activation::None))
}

/// Two-layer MLP `down(act(up(x) + b_up)) + b_down + residual`. `x`: [t, hidden];
/// up: [inner, hidden]; down: [hidden, inner].
#[allow(clippy::too_many_arguments)]
pub fn mlp(
    g: &mut Graph,
    ckpt: &Checkpoint,
    prefix: &str,
    up: (&str, Option<&str>),
    down: (&str, Option<&str>),
    x: TensorId,
    residual: TensorId,
    hidden: usize,
    inner: usize,
    act: Activation,
) -> Result<TensorId> {
    let w_up = g.matrix(ckpt, up.0, &[inner, hidden])?;
    let b_up = up.1.map(|n| g.vector(ckpt, n, &[inner])).transpose()?;
    // h: [t, inner]
    let h = g.matmul(&format!("{prefix}.up"), x, w_up, b_up, None, act);
    let w_down = g.matrix(ckpt, down.0, &[hidden, inner])?;
    let b_down = down.1.map(|n| g.vector(ckpt, n, &[hidden])).transpose()?;
    Ok(g.matmul(&format!("{prefix}.down"), h, w_down, b_down, Some(residual), Activation::None))
}

/// LayerNorm with weight and bias from the checkpoint (`{name}.weight`, `{name}.bias`).
pub fn layer_norm(g: &mut Graph, ckpt: &Checkpoint, name: &str, x: TensorId, dim: usize, eps: f32) -> Result<TensorId> {
    let gamma = g.vector(ckpt, &format!("{name}.weight"), &[dim])?;
    let beta = g.vector(ckpt, &format!("{name}.bias"), &[dim])?;
    Ok(g.layer_norm(name, x, gamma, Some(beta), eps))
}

/// Maps a Hugging Face `hidden_act` name to a kernel activation.
pub fn activation(name: &str) -> Option<Activation> {
    Some(match name {
        "gelu" => Activation::GeluErf,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        "silu" | "swish" => Activation::Silu,
        "relu" => Activation::Relu,
        "tanh" => Activation::Tanh,
        _ => return None,
    })
}
