//! Op validation (at parse time) and dispatch to kernels (at invoke time).
//!
//! `validate` proves, for one op record, everything `execute` relies on: tensor ids
//! exist, dtypes and storages fit, element counts match the params, the output is an
//! arena tensor that overlaps none of the op's arena inputs. `execute` then slices the
//! arena and calls the kernel.

use mote_kernels::{self as k, Activation, AttentionShape, Src};

use crate::Result;
use crate::error::Error;
use crate::format::{ATTN_CAUSAL, DType, NONE, OpCode, Storage};
use crate::model::{Model, OpRecord, TensorInfo};

/// Which inputs an op takes: (required, optional) counts; inputs past both must be NONE.
fn arity(op: OpCode) -> (usize, usize) {
    match op {
        OpCode::PatchEmbed => (2, 1),
        OpCode::ConcatRows => (2, 0),
        OpCode::Add => (2, 0),
        OpCode::LayerNorm => (2, 1),
        OpCode::RmsNorm => (2, 0),
        OpCode::MatMul => (2, 2),
        OpCode::Attention => (3, 1),
        OpCode::SelectRows => (1, 0),
        OpCode::Glu => (1, 0),
        OpCode::Activation => (1, 0),
    }
}

struct Check<'m, 'a> {
    model: &'m Model<'a>,
    index: u32,
    op: &'m OpRecord,
}

impl<'a> Check<'_, 'a> {
    fn err(&self, reason: &'static str) -> Error {
        Error::BadOp { index: self.index, opcode: self.op.opcode as u32, reason }
    }
    fn tensor(&self, id: u32) -> Result<TensorInfo<'a>> {
        self.model.tensor(id as usize).ok_or(self.err("refers to a tensor that does not exist"))
    }
    /// Input `slot`: an f32 tensor in the arena (an activation).
    fn act(&self, slot: usize) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.inputs[slot])?;
        if t.storage == Storage::Weight || t.dtype != DType::F32 {
            return Err(self.err("an activation input is not an f32 arena tensor"));
        }
        Ok(t)
    }
    /// Input `slot`: f32 or f16, weight or arena.
    fn operand(&self, slot: usize) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.inputs[slot])?;
        if t.dtype == DType::I32 {
            return Err(self.err("an operand is i32, not f32 or f16"));
        }
        Ok(t)
    }
    fn opt_operand(&self, slot: usize) -> Result<Option<TensorInfo<'a>>> {
        if self.op.inputs[slot] == NONE { Ok(None) } else { self.operand(slot).map(Some) }
    }
    fn opt_act(&self, slot: usize) -> Result<Option<TensorInfo<'a>>> {
        if self.op.inputs[slot] == NONE { Ok(None) } else { self.act(slot).map(Some) }
    }
    fn out(&self) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.output)?;
        if t.storage == Storage::Weight || t.dtype != DType::F32 {
            return Err(self.err("the output is not an f32 arena tensor"));
        }
        Ok(t)
    }
    fn expect(&self, cond: bool, reason: &'static str) -> Result<()> {
        if cond { Ok(()) } else { Err(self.err(reason)) }
    }
    fn elems_eq(&self, t: &TensorInfo<'_>, n: Option<usize>, reason: &'static str) -> Result<()> {
        self.expect(n == Some(t.elems()), reason)
    }
    fn param(&self, i: usize) -> usize {
        self.op.params[i] as usize
    }
    fn param_f32(&self, i: usize) -> f32 {
        f32::from_bits(self.op.params[i])
    }
    fn activation(&self, i: usize) -> Result<Activation> {
        Activation::from_code(self.op.params[i]).ok_or(self.err("unknown activation code"))
    }
}

fn mul(a: usize, b: usize) -> Option<usize> {
    a.checked_mul(b)
}

/// Validates one op (see the module docs).
pub(crate) fn validate(model: &Model<'_>, index: u32, op: &OpRecord) -> Result<()> {
    let c = Check { model, index, op };
    let (required, optional) = arity(op.opcode);
    for (slot, &id) in op.inputs.iter().enumerate() {
        if slot < required && id == NONE {
            return Err(c.err("a required input is missing"));
        }
        if slot >= required + optional && id != NONE {
            return Err(c.err("has more inputs than the op takes"));
        }
    }
    let out = c.out()?;
    // The output must not share bytes with any arena input: kernels read inputs while
    // writing the output.
    for &id in op.inputs.iter().filter(|&&id| id != NONE) {
        let t = c.tensor(id)?;
        if t.storage != Storage::Weight && t.offset < out.offset + out.bytes && out.offset < t.offset + t.bytes {
            return Err(c.err("the output overlaps an input in the arena"));
        }
    }
    match op.opcode {
        OpCode::PatchEmbed => {
            let (ch, h, w, p, dim) = (c.param(0), c.param(1), c.param(2), c.param(3), c.param(4));
            c.expect(ch > 0 && dim > 0 && p > 0 && p <= h && p <= w, "bad patch geometry")?;
            c.elems_eq(&c.act(0)?, mul(ch, h).and_then(|x| mul(x, w)), "image size does not match c*h*w")?;
            c.elems_eq(&c.operand(1)?, mul(dim, ch).and_then(|x| mul(x, p * p)), "weight is not [dim, c, p, p]")?;
            if let Some(b) = c.opt_operand(2)? {
                c.elems_eq(&b, Some(dim), "bias is not [dim]")?;
            }
            c.elems_eq(&out, mul((h / p) * (w / p), dim), "output is not [patches, dim]")?;
        }
        OpCode::ConcatRows => {
            let (a, b) = (c.operand(0)?, c.operand(1)?);
            c.expect(a.shape.cols() == b.shape.cols() && out.shape.cols() == a.shape.cols(), "row widths differ")?;
            c.elems_eq(&out, a.elems().checked_add(b.elems()), "output is not the two inputs' rows")?;
        }
        OpCode::Add => {
            let (a, b) = (c.act(0)?, c.operand(1)?);
            c.expect(a.elems() == b.elems() && out.elems() == a.elems(), "element counts differ")?;
        }
        OpCode::LayerNorm | OpCode::RmsNorm => {
            let dim = c.param(0);
            let eps = c.param_f32(1);
            c.expect(eps.is_finite() && eps >= 0.0, "eps is not a finite non-negative number")?;
            let x = c.act(0)?;
            c.expect(dim > 0 && x.shape.cols() == dim, "input rows are not [.., dim]")?;
            c.elems_eq(&c.operand(1)?, Some(dim), "gamma is not [dim]")?;
            if op.opcode == OpCode::LayerNorm {
                if let Some(b) = c.opt_operand(2)? {
                    c.elems_eq(&b, Some(dim), "beta is not [dim]")?;
                }
            }
            c.elems_eq(&out, Some(x.elems()), "output size differs from input")?;
        }
        OpCode::MatMul => {
            let (m, kk, n) = (c.param(0), c.param(1), c.param(2));
            c.activation(3)?;
            c.expect(m > 0 && kk > 0 && n > 0, "m, k and n must be positive")?;
            c.elems_eq(&c.act(0)?, mul(m, kk), "x is not [m, k]")?;
            c.elems_eq(&c.operand(1)?, mul(n, kk), "weight is not [n, k]")?;
            if let Some(b) = c.opt_operand(2)? {
                c.elems_eq(&b, Some(n), "bias is not [n]")?;
            }
            if let Some(r) = c.opt_act(3)? {
                c.elems_eq(&r, mul(m, n), "residual is not [m, n]")?;
            }
            c.elems_eq(&out, mul(m, n), "output is not [m, n]")?;
        }
        OpCode::Attention => {
            let s = attention_shape(&c)?;
            let scale = c.param_f32(7);
            c.expect(scale.is_finite(), "scale is not finite")?;
            c.expect(op.params[6] & !ATTN_CAUSAL == 0, "unknown attention flags")?;
            if let Some(mask) = c.opt_act(3)? {
                c.elems_eq(&mask, Some(s.kv_rows), "key mask is not [kv_rows]")?;
            }
            c.elems_eq(&out, mul(s.q_rows, s.heads * s.head_dim), "output is not [q_rows, heads*head_dim]")?;
        }
        OpCode::SelectRows => {
            let x = c.act(0)?;
            let (start, count) = (c.param(0), c.param(1));
            c.expect(count > 0 && start.checked_add(count).is_some_and(|e| e <= x.shape.rows()), "rows out of range")?;
            c.elems_eq(&out, mul(count, x.shape.cols()), "output is not [count, cols]")?;
        }
        OpCode::Glu => {
            let x = c.act(0)?;
            let n = c.param(0);
            c.activation(1)?;
            c.expect(n > 0 && mul(n, 2) == Some(x.shape.cols()), "input rows are not [2n]")?;
            c.elems_eq(&out, mul(x.shape.rows(), n), "output is not [rows, n]")?;
        }
        OpCode::Activation => {
            c.activation(0)?;
            c.elems_eq(&out, Some(c.act(0)?.elems()), "output size differs from input")?;
        }
    }
    Ok(())
}

/// Reads and checks an Attention op's geometry.
fn attention_shape(c: &Check<'_, '_>) -> Result<AttentionShape> {
    let (heads, kv_heads, head_dim) = (c.param(0), c.param(1), c.param(2));
    let (q_col, k_col, v_col) = (c.param(3), c.param(4), c.param(5));
    c.expect(heads > 0 && kv_heads > 0 && head_dim > 0, "heads, kv_heads and head_dim must be positive")?;
    c.expect(heads % kv_heads == 0, "heads is not a multiple of kv_heads")?;
    let (q, kt, v) = (c.act(0)?, c.act(1)?, c.act(2)?);
    let fits = |col: usize, n: usize, t: &TensorInfo<'_>| {
        mul(n, head_dim).and_then(|w| w.checked_add(col)).is_some_and(|end| end <= t.shape.cols())
    };
    c.expect(fits(q_col, heads, &q), "query heads lie past the row width of q")?;
    c.expect(fits(k_col, kv_heads, &kt), "key heads lie past the row width of k")?;
    c.expect(fits(v_col, kv_heads, &v), "value heads lie past the row width of v")?;
    c.expect(kt.shape.rows() == v.shape.rows() && kt.shape.cols() == v.shape.cols(), "k and v differ in shape")?;
    Ok(AttentionShape {
        heads,
        kv_heads,
        head_dim,
        q_rows: q.shape.rows(),
        kv_rows: kt.shape.rows(),
        q_stride: q.shape.cols(),
        kv_stride: kt.shape.cols(),
        causal: c.op.params[6] & ATTN_CAUSAL != 0,
        q_pos0: 0,
        scale: c.param_f32(7),
    })
}

/// The arena split around one op's output: the output slice is borrowed mutably, the
/// bytes before and after it shared, so inputs can be read while the output is written.
struct Frame<'x> {
    before: &'x [u8],
    after: &'x [u8],
    after_start: usize,
    weights: &'x [u8],
}

impl<'x> Frame<'x> {
    fn bytes(&self, t: &TensorInfo<'_>) -> Option<&'x [u8]> {
        let r = t.range();
        if t.storage == Storage::Weight {
            self.weights.get(r)
        } else if r.end <= self.before.len() {
            self.before.get(r)
        } else if r.start >= self.after_start {
            self.after.get(r.start - self.after_start..r.end - self.after_start)
        } else {
            None
        }
    }
    fn f32(&self, t: &TensorInfo<'_>) -> Result<&'x [f32]> {
        self.bytes(t)
            .and_then(|b| bytemuck::try_cast_slice(b).ok())
            .ok_or(Error::Misaligned { what: "arena tensor", align: 4 })
    }
    fn src(&self, t: &TensorInfo<'_>) -> Result<Src<'x>> {
        let b = self.bytes(t).ok_or(Error::Misaligned { what: "tensor", align: 4 })?;
        let cast_err = Error::Misaligned { what: "weight tensor", align: 4 };
        Ok(match t.dtype {
            DType::F16 => Src::F16(bytemuck::try_cast_slice(b).map_err(|_| cast_err)?),
            _ => Src::F32(bytemuck::try_cast_slice(b).map_err(|_| cast_err)?),
        })
    }
}

/// Splits `arena` around `out`: (output bytes, frame for the inputs).
fn split<'x>(arena: &'x mut [u8], out: &TensorInfo<'_>, weights: &'x [u8]) -> Result<(&'x mut [u8], Frame<'x>)> {
    let r = out.range();
    if r.end > arena.len() {
        return Err(Error::ArenaTooSmall { needed: r.end, available: arena.len() });
    }
    let (before, rest) = arena.split_at_mut(r.start);
    let (out_bytes, after) = rest.split_at_mut(r.end - r.start);
    Ok((out_bytes, Frame { before, after, after_start: r.end, weights }))
}

/// Runs one validated op over the arena.
pub(crate) fn execute(model: &Model<'_>, index: u32, op: &OpRecord, arena: &mut [u8]) -> Result<()> {
    let c = Check { model, index, op };
    let out_t = c.out()?;
    let (out_bytes, f) = split(arena, &out_t, model.weights())?;
    let out: &mut [f32] =
        bytemuck::try_cast_slice_mut(out_bytes).map_err(|_| Error::Misaligned { what: "arena tensor", align: 4 })?;
    let tensor = |slot: usize| c.tensor(op.inputs[slot]);
    let src = |slot: usize| tensor(slot).and_then(|t| f.src(&t));
    let opt_src = |slot: usize| -> Result<Option<Src<'_>>> {
        if op.inputs[slot] == NONE { Ok(None) } else { src(slot).map(Some) }
    };
    let act = |slot: usize| tensor(slot).and_then(|t| f.f32(&t));
    let opt_act = |slot: usize| -> Result<Option<&[f32]>> {
        if op.inputs[slot] == NONE { Ok(None) } else { act(slot).map(Some) }
    };
    let p = |i: usize| op.params[i] as usize;
    let pf = |i: usize| f32::from_bits(op.params[i]);
    let activation = |i: usize| Activation::from_code(op.params[i]).unwrap_or(Activation::None);

    match op.opcode {
        OpCode::PatchEmbed => {
            k::patch::ref_patch_embed(act(0)?, src(1)?, opt_src(2)?, out, p(0), p(1), p(2), p(3), p(4));
        }
        OpCode::ConcatRows => k::elementwise::ref_concat_rows(src(0)?, src(1)?, out),
        OpCode::Add => k::elementwise::ref_add(act(0)?, src(1)?, out),
        OpCode::LayerNorm => k::norm::ref_layer_norm(act(0)?, src(1)?, opt_src(2)?, out, p(0), pf(1)),
        OpCode::RmsNorm => k::norm::ref_rms_norm(act(0)?, src(1)?, out, p(0), pf(1)),
        OpCode::MatMul => {
            k::matmul::ref_matmul(act(0)?, src(1)?, opt_src(2)?, opt_act(3)?, activation(3), out, p(0), p(1), p(2))
        }
        OpCode::Attention => {
            let s = attention_shape(&c)?;
            let cols = |slot: usize, col: usize| act(slot).map(|x| x.get(col..).unwrap_or(&[]));
            k::attention::ref_attention(cols(0, p(3))?, cols(1, p(4))?, cols(2, p(5))?, opt_act(3)?, out, &s);
        }
        OpCode::SelectRows => {
            let x = tensor(0)?;
            let cols = x.shape.cols();
            let rows = act(0)?.get(p(0) * cols..(p(0) + p(1)) * cols).unwrap_or(&[]);
            out.iter_mut().zip(rows).for_each(|(o, v)| *o = *v);
        }
        OpCode::Glu => k::activation::ref_glu(act(0)?, out, p(0), activation(1)),
        OpCode::Activation => {
            out.iter_mut().zip(act(0)?).for_each(|(o, v)| *o = *v);
            k::activation::ref_activation_inplace(out, activation(0));
        }
    }
    Ok(())
}
