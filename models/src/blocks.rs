//! Transformer blocks written once and used by every recipe.

use mote_runtime::Activation;

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::graph::{Graph, TensorId};

/// Names of the checkpoint tensors of one self-attention block.
#[derive(Debug, Default)]
pub struct AttentionNames {
    /// Query, key, value projection weights ([out, hidden], nn.Linear layout).
    pub qkv: [String; 3],
    /// Their biases, when the model has them.
    pub qkv_bias: Option<[String; 3]>,
    /// Instead of `qkv`: one fused projection stored `[hidden, q + k + v]` (GPT-2).
    pub fused: Option<String>,
    pub fused_bias: Option<String>,
    pub out: String,
    pub out_bias: Option<String>,
    /// The output projection is stored `[in, out]` (GPT-2's Conv1D).
    pub out_transposed: bool,
}

/// How a self-attention block attends.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttentionOpts {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Decoder: each token sees itself and the tokens before it.
    pub causal: bool,
    /// Per-key mask input `[t]` (BERT's `attention_mask`).
    pub mask: Option<TensorId>,
    /// RoPE `inv_freq` weight `[head_dim / 2]` (Llama).
    pub rope: Option<TensorId>,
    /// Persistent K and V caches (decoders).
    pub cache: Option<(TensorId, TensorId)>,
}

/// Self-attention: one fused QKV matmul, RoPE if asked, streaming attention, output
/// projection with the residual added in the same matmul. `x`: [t, hidden] (already
/// normalised); `residual`: [t, hidden]. Returns [t, hidden].
#[allow(clippy::too_many_arguments)]
pub fn self_attention(
    g: &mut Graph,
    ckpt: &Checkpoint,
    prefix: &str,
    names: &AttentionNames,
    x: TensorId,
    residual: TensorId,
    hidden: usize,
    o: &AttentionOpts,
) -> Result<TensorId> {
    let (q_dim, kv_dim) = (o.heads * o.head_dim, o.kv_heads * o.head_dim);
    let rows = [q_dim, kv_dim, kv_dim];
    let w_qkv = match &names.fused {
        // GPT-2: one Conv1D [hidden, q + k + v].
        Some(fused) => g.matrix_transposed(ckpt, fused, [hidden, q_dim + 2 * kv_dim])?,
        None => {
            let parts: Vec<(String, Vec<usize>)> =
                names.qkv.iter().zip(rows).map(|(n, r)| (n.clone(), vec![r, hidden])).collect();
            g.stacked(ckpt, &format!("{prefix}.qkv.weight"), &parts, g.weight_dtype.dtype())?
        }
    };
    let b_qkv = match (&names.fused_bias, &names.qkv_bias) {
        (Some(b), _) => Some(g.vector(ckpt, b, &[q_dim + 2 * kv_dim])?),
        (None, Some(b)) => {
            let parts: Vec<(String, Vec<usize>)> = b.iter().zip(rows).map(|(n, r)| (n.clone(), vec![r])).collect();
            Some(g.stacked(ckpt, &format!("{prefix}.qkv.bias"), &parts, mote_runtime::DType::F32)?)
        }
        (None, None) => None,
    };
    // qkv: [t, (heads + 2 * kv_heads) * head_dim]
    let mut qkv = g.matmul(&format!("{prefix}.qkv"), x, w_qkv, b_qkv, None, Activation::None);
    if let Some(inv_freq) = o.rope {
        // Rotate the query and key heads (they are adjacent, from column 0).
        qkv = g.rope(&format!("{prefix}.qkv_rope"), qkv, inv_freq, o.heads + o.kv_heads, o.head_dim);
    }
    // ctx: [t, heads * head_dim]
    let ctx =
        g.attention(&format!("{prefix}.context"), qkv, o.heads, o.kv_heads, o.head_dim, o.causal, o.mask, o.cache);
    let w_o = if names.out_transposed {
        g.matrix_transposed(ckpt, &names.out, [q_dim, hidden])?
    } else {
        g.matrix(ckpt, &names.out, &[hidden, q_dim])?
    };
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
    transposed: bool,
) -> Result<TensorId> {
    let w_up = if transposed {
        g.matrix_transposed(ckpt, up.0, [hidden, inner])?
    } else {
        g.matrix(ckpt, up.0, &[inner, hidden])?
    };
    let b_up = up.1.map(|n| g.vector(ckpt, n, &[inner])).transpose()?;
    // h: [t, inner]
    let h = g.matmul(&format!("{prefix}.up"), x, w_up, b_up, None, act);
    let w_down = if transposed {
        g.matrix_transposed(ckpt, down.0, [inner, hidden])?
    } else {
        g.matrix(ckpt, down.0, &[hidden, inner])?
    };
    let b_down = down.1.map(|n| g.vector(ckpt, n, &[hidden])).transpose()?;
    Ok(g.matmul(&format!("{prefix}.down"), h, w_down, b_down, Some(residual), Activation::None))
}

/// LayerNorm with weight and bias from the checkpoint (`{name}.weight`, `{name}.bias`;
/// old BERT checkpoints call them `gamma` and `beta`).
pub fn layer_norm(g: &mut Graph, ckpt: &Checkpoint, name: &str, x: TensorId, dim: usize, eps: f32) -> Result<TensorId> {
    let old = ckpt.has(&format!("{name}.gamma")) && !ckpt.has(&format!("{name}.weight"));
    let (w, b) = if old { ("gamma", "beta") } else { ("weight", "bias") };
    let gamma = g.vector(ckpt, &format!("{name}.{w}"), &[dim])?;
    let beta = g.vector(ckpt, &format!("{name}.{b}"), &[dim])?;
    Ok(g.layer_norm(name, x, gamma, Some(beta), eps))
}

/// SwiGLU MLP (Llama): `down(act(gate(x)) * up(x)) + residual`, gate and up fused into
/// one `[2 * inner, hidden]` matmul.
#[allow(clippy::too_many_arguments)]
pub fn gated_mlp(
    g: &mut Graph,
    ckpt: &Checkpoint,
    prefix: &str,
    gate_up: [&str; 2],
    down: &str,
    biases: Option<[&str; 3]>,
    x: TensorId,
    residual: TensorId,
    hidden: usize,
    inner: usize,
    act: Activation,
) -> Result<TensorId> {
    let parts: Vec<(String, Vec<usize>)> = gate_up.iter().map(|n| (n.to_string(), vec![inner, hidden])).collect();
    let w = g.stacked(ckpt, &format!("{prefix}.gate_up.weight"), &parts, g.weight_dtype.dtype())?;
    let (b_gu, b_down) = match biases {
        Some([bg, bu, bd]) => {
            let parts = vec![(bg.to_string(), vec![inner]), (bu.to_string(), vec![inner])];
            let b = g.stacked(ckpt, &format!("{prefix}.gate_up.bias"), &parts, mote_runtime::DType::F32)?;
            (Some(b), Some(g.vector(ckpt, bd, &[hidden])?))
        }
        None => (None, None),
    };
    // gu: [t, 2 * inner] = [gate | up]
    let gu = g.matmul(&format!("{prefix}.gate_up"), x, w, b_gu, None, Activation::None);
    let h = g.glu(&format!("{prefix}.glu"), gu, act);
    let w_down = g.matrix(ckpt, down, &[hidden, inner])?;
    Ok(g.matmul(&format!("{prefix}.down"), h, w_down, b_down, Some(residual), Activation::None))
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
