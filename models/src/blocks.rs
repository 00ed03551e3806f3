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

impl AttentionNames {
    /// Separate query, key, value and output `nn.Linear` layers: `{qkv[i]}.weight` and
    /// `{out}.weight`, with `.bias` beside them when `qkv_bias` / `out_bias`.
    pub fn linear(qkv: [String; 3], qkv_bias: bool, out: &str, out_bias: bool) -> Self {
        AttentionNames {
            qkv_bias: qkv_bias.then(|| qkv.clone().map(|n| format!("{n}.bias"))),
            qkv: qkv.map(|n| format!("{n}.weight")),
            out: format!("{out}.weight"),
            out_bias: out_bias.then(|| format!("{out}.bias")),
            ..Default::default()
        }
    }
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

/// A two-layer MLP: its checkpoint layers, sizes and activation.
#[derive(Clone, Debug)]
pub struct Mlp {
    /// The up projection's layer name: `{up}.weight` [inner, hidden] (and `{up}.bias`).
    pub up: String,
    /// The down projection's layer name: `{down}.weight` [hidden, inner] (and `{down}.bias`).
    pub down: String,
    /// Both layers have a bias.
    pub bias: bool,
    pub hidden: usize,
    pub inner: usize,
    pub act: Activation,
    /// The weights are stored `[in, out]` (GPT-2's Conv1D).
    pub transposed: bool,
}

/// Two-layer MLP `down(act(up(x) + b_up)) + b_down + residual`. `x`: [t, hidden].
pub fn mlp(
    g: &mut Graph,
    ckpt: &Checkpoint,
    prefix: &str,
    m: &Mlp,
    x: TensorId,
    residual: TensorId,
) -> Result<TensorId> {
    let (hidden, inner) = (m.hidden, m.inner);
    let (up, down) = (format!("{}.weight", m.up), format!("{}.weight", m.down));
    let w_up = if m.transposed {
        g.matrix_transposed(ckpt, &up, [hidden, inner])?
    } else {
        g.matrix(ckpt, &up, &[inner, hidden])?
    };
    let b_up = g.opt_vector(ckpt, &format!("{}.bias", m.up), &[inner], m.bias)?;
    // h: [t, inner]
    let h = g.matmul(&format!("{prefix}.up"), x, w_up, b_up, None, m.act);
    let w_down = if m.transposed {
        g.matrix_transposed(ckpt, &down, [inner, hidden])?
    } else {
        g.matrix(ckpt, &down, &[hidden, inner])?
    };
    let b_down = g.opt_vector(ckpt, &format!("{}.bias", m.down), &[hidden], m.bias)?;
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

/// RMSNorm with its weight from the checkpoint (`{name}.weight`).
pub fn rms_norm(g: &mut Graph, ckpt: &Checkpoint, name: &str, x: TensorId, dim: usize, eps: f32) -> Result<TensorId> {
    let gamma = g.vector(ckpt, &format!("{name}.weight"), &[dim])?;
    Ok(g.rms_norm(name, x, gamma, eps))
}

/// A gated (SwiGLU) MLP: its checkpoint layers, sizes and activation.
#[derive(Clone, Debug)]
pub struct GatedMlp {
    /// Layer names: `{gate}.weight`, `{up}.weight` [inner, hidden]; `{down}.weight` [hidden, inner].
    pub gate: String,
    pub up: String,
    pub down: String,
    /// All three layers have a bias (`{name}.bias`).
    pub bias: bool,
    pub hidden: usize,
    pub inner: usize,
    pub act: Activation,
}

/// SwiGLU MLP (Llama): `down(act(gate(x)) * up(x)) + residual`, gate and up fused into
/// one `[2 * inner, hidden]` matmul.
pub fn gated_mlp(
    g: &mut Graph,
    ckpt: &Checkpoint,
    prefix: &str,
    m: &GatedMlp,
    x: TensorId,
    residual: TensorId,
) -> Result<TensorId> {
    let (hidden, inner) = (m.hidden, m.inner);
    let parts: Vec<(String, Vec<usize>)> =
        [&m.gate, &m.up].iter().map(|n| (format!("{n}.weight"), vec![inner, hidden])).collect();
    let w = g.stacked(ckpt, &format!("{prefix}.gate_up.weight"), &parts, g.weight_dtype.dtype())?;
    let (b_gu, b_down) = if m.bias {
        let parts: Vec<(String, Vec<usize>)> =
            [&m.gate, &m.up].iter().map(|n| (format!("{n}.bias"), vec![inner])).collect();
        let b = g.stacked(ckpt, &format!("{prefix}.gate_up.bias"), &parts, mote_runtime::DType::F32)?;
        (Some(b), Some(g.vector(ckpt, &format!("{}.bias", m.down), &[hidden])?))
    } else {
        (None, None)
    };
    // gu: [t, 2 * inner] = [gate | up]
    let gu = g.matmul(&format!("{prefix}.gate_up"), x, w, b_gu, None, Activation::None);
    let h = g.glu(&format!("{prefix}.glu"), gu, m.act);
    let w_down = g.matrix(ckpt, &format!("{}.weight", m.down), &[hidden, inner])?;
    Ok(g.matmul(&format!("{prefix}.down"), h, w_down, b_down, Some(residual), Activation::None))
}

/// Where a causal LM's output projection comes from.
#[derive(Clone, Copy, Debug)]
pub enum Head<'a> {
    /// Tied to the token embedding table.
    Tied,
    /// Its own checkpoint matrix [vocab, hidden].
    Untied(&'a str),
    /// Its own matrix when the checkpoint has it, else the embedding table (GPT-2: a
    /// config that unties the head but a checkpoint saved without one).
    UntiedIfPresent(&'a str),
}

/// The LM head's weight [vocab, hidden]: `table` (the embedding table) or the
/// checkpoint matrix `head` names.
pub fn lm_head_weight(
    g: &mut Graph,
    ckpt: &Checkpoint,
    head: Head<'_>,
    table: TensorId,
    vocab: usize,
    hidden: usize,
) -> Result<TensorId> {
    match head {
        Head::Tied => Ok(table),
        Head::UntiedIfPresent(name) if !ckpt.has(name) => Ok(table),
        Head::Untied(name) | Head::UntiedIfPresent(name) => g.matrix(ckpt, name, &[vocab, hidden]),
    }
}

/// The LM head: `logits = x head^T`, output `"logits"` [1, max_tokens, vocab]. `x`:
/// [t, hidden] (the final norm's output).
pub fn lm_head(
    g: &mut Graph,
    ckpt: &Checkpoint,
    head: Head<'_>,
    x: TensorId,
    table: TensorId,
    vocab: usize,
    hidden: usize,
) -> Result<()> {
    let w = lm_head_weight(g, ckpt, head, table, vocab, hidden)?;
    let logits = g.matmul("logits", x, w, None, None, Activation::None);
    g.reshape(logits, vec![1, g.max_tokens, vocab]);
    g.output(logits, "logits");
    Ok(())
}

/// The BERT / ViT pooler, when the checkpoint has one (`{prefix}pooler.dense.*`):
/// output `"pooler_output"` = `tanh(dense(x[0]))` [1, hidden]. `x`: [t, hidden].
pub fn pooler(g: &mut Graph, ckpt: &Checkpoint, prefix: &str, x: TensorId, hidden: usize) -> Result<()> {
    let (w, b) = (format!("{prefix}pooler.dense.weight"), format!("{prefix}pooler.dense.bias"));
    if !ckpt.has(&w) {
        return Ok(());
    }
    let cls = g.select_rows("pooler.cls", x, 0, 1);
    let w = g.matrix(ckpt, &w, &[hidden, hidden])?;
    let b = g.vector(ckpt, &b, &[hidden])?;
    let pooled = g.matmul("pooler_output", cls, w, Some(b), None, Activation::Tanh);
    g.output(pooled, "pooler_output");
    Ok(())
}

#[cfg(test)]
mod tests {
    use mote_runtime::Activation;

    use super::*;
    use crate::graph::WeightDType;

    /// A checkpoint of f32 tensors `(name, shape)`, each filled with its index + 1.
    fn ckpt(tensors: &[(&str, &[usize])]) -> Checkpoint {
        let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .enumerate()
            .map(|(i, (n, s))| {
                let v = vec![(i + 1) as f32; s.iter().product()];
                (n.to_string(), s.to_vec(), bytemuck::cast_slice::<f32, u8>(&v).to_vec())
            })
            .collect();
        let views = raw.iter().map(|(n, s, b)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
        });
        Checkpoint::from_bytes(b"{}", safetensors::serialize(views, None).unwrap()).unwrap()
    }

    fn graph() -> Graph {
        let mut g = Graph::new("Test", "{}".into(), WeightDType::F32);
        g.max_tokens = 2;
        g
    }

    #[test]
    fn attention_names_of_linear_layers() {
        let n = AttentionNames::linear(["a.q", "a.k", "a.v"].map(String::from), true, "a.o", false);
        assert_eq!(n.qkv, ["a.q.weight", "a.k.weight", "a.v.weight"]);
        assert_eq!(n.qkv_bias, Some(["a.q.bias", "a.k.bias", "a.v.bias"].map(String::from)));
        assert_eq!((n.out.as_str(), n.out_bias), ("a.o.weight", None));
        assert!(n.fused.is_none() && !n.out_transposed);
        let n = AttentionNames::linear(["q", "k", "v"].map(String::from), false, "o", true);
        assert_eq!((n.qkv_bias, n.out_bias.as_deref()), (None, Some("o.bias")));
    }

    #[test]
    fn lm_head_weight_is_the_table_when_tied_and_the_head_when_not() {
        let c = ckpt(&[("embed.weight", &[5, 4]), ("lm_head.weight", &[5, 4])]);
        let mut g = graph();
        let table = g.matrix(&c, "embed.weight", &[5, 4]).unwrap();
        assert_eq!(lm_head_weight(&mut g, &c, Head::Tied, table, 5, 4).unwrap(), table);
        let untied = lm_head_weight(&mut g, &c, Head::Untied("lm_head.weight"), table, 5, 4).unwrap();
        assert_ne!(untied, table);
        assert_eq!(g.tensor(untied).name, "lm_head.weight");
        assert_eq!(g.tensor(untied).shape, [5, 4]);
        let present = lm_head_weight(&mut g, &c, Head::UntiedIfPresent("lm_head.weight"), table, 5, 4).unwrap();
        assert_eq!(present, untied);
    }

    #[test]
    fn untied_head_missing_from_the_checkpoint() {
        let c = ckpt(&[("embed.weight", &[5, 4])]);
        let mut g = graph();
        let table = g.matrix(&c, "embed.weight", &[5, 4]).unwrap();
        // Untied: the head must be there.
        let e = lm_head_weight(&mut g, &c, Head::Untied("head.weight"), table, 5, 4).unwrap_err();
        assert!(matches!(&e, crate::Error::MissingTensor { name } if name == "head.weight"), "{e:?}");
        // GPT-2's fallback: the embedding table.
        assert_eq!(lm_head_weight(&mut g, &c, Head::UntiedIfPresent("lm_head.weight"), table, 5, 4).unwrap(), table);
        // A head of the wrong shape is refused, not used.
        let c = ckpt(&[("embed.weight", &[5, 4]), ("lm_head.weight", &[4, 4])]);
        let mut g = graph();
        let table = g.matrix(&c, "embed.weight", &[5, 4]).unwrap();
        let e = lm_head_weight(&mut g, &c, Head::UntiedIfPresent("lm_head.weight"), table, 5, 4).unwrap_err();
        assert!(matches!(&e, crate::Error::TensorShape { .. }), "{e:?}");
    }

    #[test]
    fn lm_head_outputs_logits_per_token() {
        let c = ckpt(&[("embed.weight", &[5, 4])]);
        let mut g = graph();
        let table = g.matrix(&c, "embed.weight", &[5, 4]).unwrap();
        let x = g.activation("x", vec![2, 4]);
        lm_head(&mut g, &c, Head::Tied, x, table, 5, 4).unwrap();
        let out = g.tensor(*g.outputs.last().unwrap());
        assert_eq!((out.name.as_str(), out.shape.as_slice()), ("logits", &[1, 2, 5][..]));
        assert_eq!(g.ops.last().unwrap().inputs[1], Some(table));
    }

    #[test]
    fn pooler_only_when_the_checkpoint_has_one() {
        let c = ckpt(&[("vit.pooler.dense.weight", &[4, 4]), ("vit.pooler.dense.bias", &[4])]);
        let mut g = graph();
        let x = g.activation("x", vec![3, 4]);
        pooler(&mut g, &c, "", x, 4).unwrap();
        assert!(g.outputs.is_empty() && g.ops.is_empty());
        pooler(&mut g, &c, "vit.", x, 4).unwrap();
        let out = g.tensor(*g.outputs.last().unwrap());
        assert_eq!((out.name.as_str(), out.shape.as_slice()), ("pooler_output", &[1, 4][..]));
        let names: Vec<&str> = g.tensors.iter().filter(|t| t.is_weight()).map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["vit.pooler.dense.weight", "vit.pooler.dense.bias"]);
        // A bias of the wrong size is refused.
        let c = ckpt(&[("pooler.dense.weight", &[4, 4]), ("pooler.dense.bias", &[3])]);
        let mut g = graph();
        let x = g.activation("x", vec![3, 4]);
        let e = pooler(&mut g, &c, "", x, 4).unwrap_err();
        assert!(matches!(&e, crate::Error::TensorShape { name, .. } if name == "pooler.dense.bias"), "{e:?}");
    }

    #[test]
    fn mlp_reads_its_layers_by_name_with_and_without_bias() {
        let c = ckpt(&[("up.weight", &[6, 4]), ("up.bias", &[6]), ("down.weight", &[4, 6]), ("down.bias", &[4])]);
        let m = Mlp {
            up: "up".into(),
            down: "down".into(),
            bias: true,
            hidden: 4,
            inner: 6,
            act: Activation::Relu,
            transposed: false,
        };
        for bias in [true, false] {
            let mut g = graph();
            let x = g.activation("x", vec![2, 4]);
            let y = mlp(&mut g, &c, "l", &Mlp { bias, ..m.clone() }, x, x).unwrap();
            assert_eq!(g.tensor(y).shape, [2, 4]);
            let weights = g.tensors.iter().filter(|t| t.is_weight()).count();
            assert_eq!(weights, if bias { 4 } else { 2 });
        }
        // Conv1D layout: the same checkpoint read as [in, out] has the wrong shapes.
        let e = mlp(&mut graph(), &c, "l", &Mlp { transposed: true, ..m.clone() }, 0, 0).unwrap_err();
        assert!(matches!(&e, crate::Error::TensorShape { name, .. } if name == "up.weight"), "{e:?}");
    }

    #[test]
    fn gated_mlp_stacks_gate_and_up() {
        let c = ckpt(&[("g.weight", &[6, 4]), ("u.weight", &[6, 4]), ("d.weight", &[4, 6])]);
        let m = GatedMlp {
            gate: "g".into(),
            up: "u".into(),
            down: "d".into(),
            bias: false,
            hidden: 4,
            inner: 6,
            act: Activation::Silu,
        };
        let mut g = graph();
        let x = g.activation("x", vec![2, 4]);
        let y = gated_mlp(&mut g, &c, "mlp", &m, x, x).unwrap();
        assert_eq!(g.tensor(y).shape, [2, 4]);
        let w: Vec<(&str, &[usize])> =
            g.tensors.iter().filter(|t| t.is_weight()).map(|t| (t.name.as_str(), t.shape.as_slice())).collect();
        assert_eq!(w, [("mlp.gate_up.weight", &[12, 4][..]), ("d.weight", &[4, 6][..])]);
        // With biases, all three must be present.
        let e = gated_mlp(&mut graph(), &c, "mlp", &GatedMlp { bias: true, ..m }, 0, 0).unwrap_err();
        assert!(matches!(&e, crate::Error::MissingTensor { name } if name == "g.bias"), "{e:?}");
    }
}
