//! Op validation (at parse time) and dispatch to kernels (at invoke time).
//!
//! `validate` proves, for one op record, everything `execute` relies on: tensor ids
//! exist, dtypes and storages fit, element counts match the params at the largest token
//! count, token-row (SEQ) tensors line up, the output is a scratch tensor overlapping
//! none of the op's arena inputs. `execute` then slices the arena and calls the kernel;
//! with `n` tokens it uses the first `n` rows of every SEQ tensor.

#[cfg(any(feature = "vit", feature = "transformer"))]
use mote_kernels::AttentionShape;
use mote_kernels::{self as k, Activation, Src};

use crate::Result;
use crate::error::Error;
#[cfg(any(feature = "vit", feature = "transformer"))]
use crate::format::ATTN_CAUSAL;
use crate::format::{DType, NONE, OpCode, Storage};
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
        OpCode::Attention => (3, 3),
        OpCode::SelectRows => (1, 0),
        OpCode::Glu => (1, 0),
        OpCode::Activation => (1, 0),
        OpCode::Embedding => (2, 0),
        OpCode::PositionEmbedding => (1, 0),
        OpCode::Rope => (2, 0),
        OpCode::CausalConv1d => (3, 1),
        OpCode::SelectiveScan => (6, 0),
        OpCode::TokenShift => (3, 0),
        OpCode::Wkv => (6, 0),
        OpCode::Mul => (2, 1),
    }
}

/// The input slot holding the persistent state an op updates, if it has one.
#[cfg(feature = "ssm")]
fn state_slot(op: OpCode) -> Option<usize> {
    match op {
        OpCode::CausalConv1d | OpCode::TokenShift => Some(1),
        OpCode::SelectiveScan | OpCode::Wkv => Some(5),
        _ => None,
    }
}

/// Per-call state: tokens in this call, tokens already in the KV cache.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    pub n: usize,
    #[cfg_attr(not(any(feature = "vit", feature = "transformer")), allow(dead_code))]
    pub pos: usize,
}

/// Rows of `t` in a call on `n` tokens.
fn rows(t: &TensorInfo<'_>, n: usize) -> usize {
    if t.seq { n } else { t.shape.rows() }
}

fn elems(t: &TensorInfo<'_>, n: usize) -> usize {
    rows(t, n) * t.shape.cols()
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
        // The ops never read a tensor's name.
        self.model.tensor_unnamed(id as usize).ok_or(self.err("refers to a tensor that does not exist"))
    }
    /// Input `slot`: an f32 tensor in the scratch arena (an activation).
    fn act(&self, slot: usize) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.inputs[slot])?;
        if t.storage != Storage::Arena || t.dtype != DType::F32 {
            return Err(self.err("an activation input is not an f32 arena tensor"));
        }
        Ok(t)
    }
    /// Input `slot`: f32 or f16, weight or activation.
    fn operand(&self, slot: usize) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.inputs[slot])?;
        if t.dtype == DType::I32 || t.storage == Storage::Persistent {
            return Err(self.err("an operand is not an f32/f16 weight or activation"));
        }
        Ok(t)
    }
    fn opt_operand(&self, slot: usize) -> Result<Option<TensorInfo<'a>>> {
        if self.op.inputs[slot] == NONE { Ok(None) } else { self.operand(slot).map(Some) }
    }
    /// Input `slot`: an operand read whole whatever the call's token count (a weight,
    /// gamma, bias, table, ...), so not a token-row tensor, of which a call on fewer
    /// tokens than `max_tokens` would hand the kernel only the first rows.
    fn fixed(&self, slot: usize) -> Result<TensorInfo<'a>> {
        let t = self.operand(slot)?;
        self.ensure(!t.seq, "a weight-like operand (weight, gamma, bias, table) has token rows")?;
        Ok(t)
    }
    fn opt_fixed(&self, slot: usize) -> Result<Option<TensorInfo<'a>>> {
        if self.op.inputs[slot] == NONE { Ok(None) } else { self.fixed(slot).map(Some) }
    }
    fn opt_act(&self, slot: usize) -> Result<Option<TensorInfo<'a>>> {
        if self.op.inputs[slot] == NONE { Ok(None) } else { self.act(slot).map(Some) }
    }
    fn out(&self) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.output)?;
        if t.storage != Storage::Arena || t.dtype != DType::F32 {
            return Err(self.err("the output is not an f32 scratch arena tensor"));
        }
        Ok(t)
    }
    fn ensure(&self, cond: bool, reason: &'static str) -> Result<()> {
        if cond { Ok(()) } else { Err(self.err(reason)) }
    }
    fn elems_eq(&self, t: &TensorInfo<'_>, n: Option<usize>, reason: &'static str) -> Result<()> {
        self.ensure(n == Some(t.elems()), reason)
    }
    /// Row-wise ops keep token rows: the output is SEQ exactly when `x` is.
    fn same_rows(&self, x: &TensorInfo<'_>, out: &TensorInfo<'_>) -> Result<()> {
        self.ensure(x.seq == out.seq, "input and output disagree on token rows")
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
    /// Input `slot`: an f32 persistent tensor of `elems` elements (state the op updates).
    #[cfg(feature = "ssm")]
    fn state(&self, slot: usize, elems: Option<usize>) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.inputs[slot])?;
        if t.storage != Storage::Persistent || t.dtype != DType::F32 {
            return Err(self.err("the state is not an f32 persistent tensor"));
        }
        self.elems_eq(&t, elems, "the state has the wrong size")?;
        Ok(t)
    }
    /// The KV caches (inputs 4 and 5), if the op has them.
    #[cfg(any(feature = "vit", feature = "transformer"))]
    fn caches(&self) -> Result<Option<(TensorInfo<'a>, TensorInfo<'a>)>> {
        match (self.op.inputs[4], self.op.inputs[5]) {
            (NONE, NONE) => Ok(None),
            (kc, vc) if kc != NONE && vc != NONE => {
                let (kc, vc) = (self.tensor(kc)?, self.tensor(vc)?);
                let ok = |t: &TensorInfo<'_>| t.storage == Storage::Persistent && t.dtype == DType::F32;
                self.ensure(ok(&kc) && ok(&vc), "a KV cache is not an f32 persistent tensor")?;
                self.ensure(kc.range().end <= vc.offset || vc.range().end <= kc.offset, "the K and V caches overlap")?;
                Ok(Some((kc, vc)))
            }
            _ => Err(self.err("has a K cache without a V cache or the reverse")),
        }
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
        #[cfg(feature = "vit")]
        OpCode::PatchEmbed => {
            let (ch, h, w, p, dim) = (c.param(0), c.param(1), c.param(2), c.param(3), c.param(4));
            c.ensure(ch > 0 && dim > 0 && p > 0 && p <= h && p <= w, "bad patch geometry")?;
            let image = c.act(0)?;
            c.ensure(!image.seq && !out.seq, "patch embedding has no token rows")?;
            c.elems_eq(&image, mul(ch, h).and_then(|x| mul(x, w)), "image size does not match c*h*w")?;
            c.elems_eq(&c.fixed(1)?, mul(dim, ch).and_then(|x| mul(x, p * p)), "weight is not [dim, c, p, p]")?;
            if let Some(b) = c.opt_fixed(2)? {
                c.elems_eq(&b, Some(dim), "bias is not [dim]")?;
            }
            c.elems_eq(&out, mul((h / p) * (w / p), dim), "output is not [patches, dim]")?;
        }
        OpCode::ConcatRows => {
            let (a, b) = (c.operand(0)?, c.operand(1)?);
            c.ensure(!a.seq && !b.seq && !out.seq, "concatenation has no token rows")?;
            c.ensure(a.shape.cols() == b.shape.cols() && out.shape.cols() == a.shape.cols(), "row widths differ")?;
            c.elems_eq(&out, a.elems().checked_add(b.elems()), "output is not the two inputs' rows")?;
        }
        OpCode::Add => {
            let (a, b) = (c.act(0)?, c.operand(1)?);
            c.same_rows(&a, &out)?;
            c.ensure(b.storage == Storage::Weight || b.seq == a.seq, "operands disagree on token rows")?;
            c.ensure(a.elems() == b.elems() && out.elems() == a.elems(), "element counts differ")?;
        }
        OpCode::LayerNorm | OpCode::RmsNorm => {
            let dim = c.param(0);
            let eps = c.param_f32(1);
            c.ensure(eps.is_finite() && eps >= 0.0, "eps is not a finite non-negative number")?;
            let x = c.act(0)?;
            c.same_rows(&x, &out)?;
            c.ensure(dim > 0 && x.shape.cols() == dim, "input rows are not [.., dim]")?;
            c.elems_eq(&c.fixed(1)?, Some(dim), "gamma is not [dim]")?;
            if op.opcode == OpCode::LayerNorm
                && let Some(b) = c.opt_fixed(2)?
            {
                c.elems_eq(&b, Some(dim), "beta is not [dim]")?;
            }
            c.elems_eq(&out, Some(x.elems()), "output size differs from input")?;
        }
        OpCode::MatMul => {
            let (m, kk, n) = (c.param(0), c.param(1), c.param(2));
            c.activation(3)?;
            c.ensure(m > 0 && kk > 0 && n > 0, "m, k and n must be positive")?;
            let x = c.act(0)?;
            c.same_rows(&x, &out)?;
            let x_col = c.param(4);
            c.ensure(x.shape.rows() == m, "x does not have m rows")?;
            c.ensure(
                x_col.checked_add(kk).is_some_and(|end| end <= x.shape.cols()),
                "x columns x_col..x_col+k lie past the row",
            )?;
            let w = c.operand(1)?;
            c.ensure(!w.seq, "the weight has token rows")?;
            c.elems_eq(&w, mul(n, kk), "weight is not [n, k]")?;
            if let Some(b) = c.opt_operand(2)? {
                c.ensure(!b.seq, "the bias has token rows")?;
                c.elems_eq(&b, Some(n), "bias is not [n]")?;
            }
            if let Some(r) = c.opt_act(3)? {
                c.same_rows(&r, &out)?;
                c.elems_eq(&r, mul(m, n), "residual is not [m, n]")?;
            }
            c.elems_eq(&out, mul(m, n), "output is not [m, n]")?;
        }
        #[cfg(any(feature = "vit", feature = "transformer"))]
        OpCode::Attention => {
            let s = attention_shape(&c)?;
            let scale = c.param_f32(7);
            c.ensure(scale.is_finite(), "scale is not finite")?;
            c.ensure(op.params[6] & !ATTN_CAUSAL == 0, "unknown attention flags")?;
            let (q, kt) = (c.act(0)?, c.act(1)?);
            c.same_rows(&q, &out)?;
            if let Some(mask) = c.opt_act(3)? {
                c.ensure(mask.seq == kt.seq, "key mask and keys disagree on token rows")?;
                c.elems_eq(&mask, Some(kt.shape.rows()), "key mask is not [kv_rows]")?;
            }
            if let Some((kc, vc)) = c.caches()? {
                let ctx = model.max_context();
                c.ensure(
                    q.seq && kt.seq && op.inputs[3] == NONE,
                    "cached attention needs token-row q, k, v and no mask",
                )?;
                let kv_width = mul(s.kv_heads, s.head_dim);
                for cache in [&kc, &vc] {
                    c.ensure(ctx > 0 && cache.shape.rows() == ctx, "a KV cache does not have max_context rows")?;
                    c.ensure(Some(cache.shape.cols()) == kv_width, "a KV cache row is not kv_heads*head_dim")?;
                }
            }
            c.elems_eq(&out, mul(s.q_rows, s.heads * s.head_dim), "output is not [q_rows, heads*head_dim]")?;
        }
        OpCode::SelectRows => {
            let x = c.act(0)?;
            let (start, count) = (c.param(0), c.param(1));
            c.ensure(!out.seq, "selected rows are not token rows")?;
            // With token rows, a call always has at least one: only row 0 is safe.
            let limit = if x.seq { 1 } else { x.shape.rows() };
            c.ensure(count > 0 && start.checked_add(count).is_some_and(|e| e <= limit), "rows out of range")?;
            c.elems_eq(&out, mul(count, x.shape.cols()), "output is not [count, cols]")?;
        }
        #[cfg(feature = "transformer")]
        OpCode::Glu => {
            let x = c.act(0)?;
            c.same_rows(&x, &out)?;
            let n = c.param(0);
            c.activation(1)?;
            c.ensure(n > 0 && mul(n, 2) == Some(x.shape.cols()), "input rows are not [2n]")?;
            c.elems_eq(&out, mul(x.shape.rows(), n), "output is not [rows, n]")?;
        }
        OpCode::Activation => {
            c.activation(0)?;
            let x = c.act(0)?;
            c.same_rows(&x, &out)?;
            c.elems_eq(&out, Some(x.elems()), "output size differs from input")?;
        }
        #[cfg(any(feature = "transformer", feature = "ssm"))]
        OpCode::Embedding => {
            let ids = c.tensor(op.inputs[0])?;
            c.ensure(ids.storage == Storage::Arena && ids.dtype == DType::I32, "ids are not an i32 arena tensor")?;
            c.same_rows(&ids, &out)?;
            let (vocab, dim) = (c.param(0), c.param(1));
            c.ensure(vocab > 0 && dim > 0, "vocab and dim must be positive")?;
            c.elems_eq(&c.fixed(1)?, mul(vocab, dim), "table is not [vocab, dim]")?;
            c.elems_eq(&out, mul(ids.elems(), dim), "output is not [ids, dim]")?;
        }
        #[cfg(feature = "transformer")]
        OpCode::PositionEmbedding => {
            let (positions, dim) = (c.param(0), c.param(1));
            c.ensure(out.seq, "position embeddings are token rows")?;
            c.elems_eq(&c.fixed(0)?, mul(positions, dim), "table is not [positions, dim]")?;
            c.ensure(out.shape.cols() == dim, "output rows are not [dim]")?;
            // Every position a call can reach must be in the table.
            let reach = model.max_context().max(model.max_tokens());
            c.ensure(reach <= positions, "the table has fewer positions than the context")?;
        }
        #[cfg(feature = "transformer")]
        OpCode::Rope => {
            let x = c.act(0)?;
            c.same_rows(&x, &out)?;
            let (heads, head_dim) = (c.param(0), c.param(1));
            c.ensure(head_dim >= 2 && head_dim % 2 == 0, "head_dim must be even")?;
            c.ensure(
                mul(heads, head_dim).is_some_and(|w| w > 0 && w <= x.shape.cols()),
                "rotated heads lie past the row",
            )?;
            c.elems_eq(&c.fixed(1)?, Some(head_dim / 2), "inv_freq is not [head_dim / 2]")?;
            c.elems_eq(&out, Some(x.elems()), "output size differs from input")?;
        }
        #[cfg(feature = "ssm")]
        OpCode::CausalConv1d => {
            let (ch, k) = (c.param(0), c.param(1));
            c.activation(2)?;
            c.ensure(ch > 0 && k >= 2, "channels must be positive and the kernel at least 2")?;
            let x = c.act(0)?;
            c.same_rows(&x, &out)?;
            c.ensure(x.shape.cols() == ch, "x rows are not [channels]")?;
            c.state(1, mul(k - 1, ch))?;
            c.elems_eq(&c.fixed(2)?, mul(ch, k), "weight is not [channels, kernel]")?;
            if let Some(b) = c.opt_fixed(3)? {
                c.elems_eq(&b, Some(ch), "bias is not [channels]")?;
            }
            c.elems_eq(&out, Some(x.elems()), "output size differs from input")?;
        }
        #[cfg(feature = "ssm")]
        OpCode::SelectiveScan => {
            let (e, n) = (c.param(0), c.param(1));
            c.ensure(e > 0 && n > 0, "channels and state size must be positive")?;
            let x = c.act(0)?;
            c.same_rows(&x, &out)?;
            for slot in [0, 1, 3] {
                let t = c.act(slot)?;
                c.ensure(
                    t.seq == x.seq && t.shape.rows() == x.shape.rows() && t.shape.cols() == e,
                    "x, dt and z are not [t, e]",
                )?;
            }
            let bc = c.act(2)?;
            c.ensure(
                bc.seq == x.seq && bc.shape.rows() == x.shape.rows() && Some(bc.shape.cols()) == mul(n, 2),
                "bc is not [t, 2n]",
            )?;
            c.elems_eq(&c.fixed(4)?, mul(e, n + 1), "a_d is not [e, n + 1]")?;
            c.state(5, mul(e, n))?;
            c.elems_eq(&out, Some(x.elems()), "output is not [t, e]")?;
        }
        #[cfg(feature = "ssm")]
        OpCode::TokenShift => {
            let (d, m) = (c.param(0), c.param(1));
            c.ensure(d > 0 && m > 0, "width and mixes must be positive")?;
            let x = c.act(0)?;
            c.same_rows(&x, &out)?;
            c.ensure(x.shape.cols() == d, "x rows are not [d]")?;
            c.state(1, Some(d))?;
            c.elems_eq(&c.fixed(2)?, mul(m, d), "mix is not [mixes, d]")?;
            c.ensure(
                Some(out.shape.cols()) == mul(m, d) && out.shape.rows() == x.shape.rows(),
                "output is not [t, mixes*d]",
            )?;
        }
        #[cfg(feature = "ssm")]
        OpCode::Wkv => {
            let a = c.param(0);
            c.ensure(a > 0, "width must be positive")?;
            let k = c.act(0)?;
            c.same_rows(&k, &out)?;
            for slot in [0, 1, 2] {
                let t = c.act(slot)?;
                c.ensure(
                    t.seq == k.seq && t.shape.rows() == k.shape.rows() && t.shape.cols() == a,
                    "k, v and r are not [t, a]",
                )?;
            }
            c.elems_eq(&c.fixed(3)?, Some(a), "time_first is not [a]")?;
            c.elems_eq(&c.fixed(4)?, Some(a), "time_decay is not [a]")?;
            c.state(5, mul(3, a))?;
            c.elems_eq(&out, Some(k.elems()), "output is not [t, a]")?;
        }
        OpCode::Mul => {
            let (a, b) = (c.act(0)?, c.act(1)?);
            c.same_rows(&a, &out)?;
            c.ensure(a.seq == b.seq && a.elems() == b.elems() && out.elems() == a.elems(), "element counts differ")?;
            if let Some(r) = c.opt_act(2)? {
                c.ensure(r.seq == a.seq && r.elems() == a.elems(), "residual size differs")?;
            }
        }
        // Ops of families this build leaves out were refused before (`families::check`).
        #[allow(unreachable_patterns)]
        _ => crate::families::check(index, op.opcode)?,
    }
    Ok(())
}

/// Reads and checks an Attention op's geometry at the largest token count.
#[cfg(any(feature = "vit", feature = "transformer"))]
fn attention_shape(c: &Check<'_, '_>) -> Result<AttentionShape> {
    let (heads, kv_heads, head_dim) = (c.param(0), c.param(1), c.param(2));
    let (q_col, k_col, v_col) = (c.param(3), c.param(4), c.param(5));
    c.ensure(heads > 0 && kv_heads > 0 && head_dim > 0, "heads, kv_heads and head_dim must be positive")?;
    c.ensure(heads % kv_heads == 0, "heads is not a multiple of kv_heads")?;
    let (q, kt, v) = (c.act(0)?, c.act(1)?, c.act(2)?);
    let fits = |col: usize, n: usize, t: &TensorInfo<'_>| {
        mul(n, head_dim).and_then(|w| w.checked_add(col)).is_some_and(|end| end <= t.shape.cols())
    };
    c.ensure(fits(q_col, heads, &q), "query heads lie past the row width of q")?;
    c.ensure(fits(k_col, kv_heads, &kt), "key heads lie past the row width of k")?;
    c.ensure(fits(v_col, kv_heads, &v), "value heads lie past the row width of v")?;
    c.ensure(kt.shape.rows() == v.shape.rows() && kt.shape.cols() == v.shape.cols(), "k and v differ in shape")?;
    c.ensure(kt.seq == v.seq && (q.seq == kt.seq), "q, k and v disagree on token rows")?;
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

/// The scratch arena split around one op's output: the output slice is borrowed
/// mutably, the bytes before and after it shared, so inputs can be read while the
/// output is written. Offsets are arena offsets.
struct Frame<'x> {
    before: &'x [u8],
    after: &'x [u8],
    after_start: usize,
    weights: &'x [u8],
}

fn misaligned() -> Error {
    Error::Misaligned { what: "tensor", align: 4 }
}

impl<'x> Frame<'x> {
    /// The first `count` elements of `t` (all of a weight).
    fn bytes(&self, t: &TensorInfo<'_>, count: usize) -> Option<&'x [u8]> {
        let len = count.checked_mul(t.dtype.size_bytes())?.min(t.bytes);
        let r = t.offset..t.offset + len;
        match t.storage {
            Storage::Weight => self.weights.get(r),
            Storage::Persistent => None,
            Storage::Arena if r.end <= self.before.len() => self.before.get(r),
            Storage::Arena if r.start >= self.after_start => {
                self.after.get(r.start - self.after_start..r.end - self.after_start)
            }
            Storage::Arena => None,
        }
    }
    fn f32(&self, t: &TensorInfo<'_>, count: usize) -> Result<&'x [f32]> {
        self.bytes(t, count).and_then(|b| bytemuck::try_cast_slice(b).ok()).ok_or_else(misaligned)
    }
    #[cfg(any(feature = "transformer", feature = "ssm"))]
    fn i32(&self, t: &TensorInfo<'_>, count: usize) -> Result<&'x [i32]> {
        self.bytes(t, count).and_then(|b| bytemuck::try_cast_slice(b).ok()).ok_or_else(misaligned)
    }
    fn src(&self, t: &TensorInfo<'_>, count: usize) -> Result<Src<'x>> {
        let b = self.bytes(t, count).ok_or_else(misaligned)?;
        Ok(match t.dtype {
            DType::F16 => Src::F16(bytemuck::try_cast_slice(b).map_err(|_| misaligned())?),
            _ => Src::F32(bytemuck::try_cast_slice(b).map_err(|_| misaligned())?),
        })
    }
}

/// Splits the arena into (persistent region, output bytes, frame over the rest of the
/// scratch region).
fn split<'x>(
    arena: &'x mut [u8],
    persistent_bytes: usize,
    out: &TensorInfo<'_>,
    weights: &'x [u8],
) -> Result<(&'x mut [u8], &'x mut [u8], Frame<'x>)> {
    let r = out.range();
    if r.start < persistent_bytes || r.end > arena.len() {
        return Err(Error::ArenaTooSmall { needed: r.end, available: arena.len() });
    }
    let (persistent, scratch) = arena.split_at_mut(persistent_bytes);
    let (before, rest) = scratch.split_at_mut(r.start - persistent_bytes);
    let (out_bytes, after) = rest.split_at_mut(r.end - r.start);
    // The frame addresses scratch tensors from the start of the scratch region (see `rebase`).
    Ok((persistent, out_bytes, Frame { before, after, after_start: r.end - persistent_bytes, weights }))
}

/// `t` with a scratch tensor's offset taken from the start of the scratch region.
fn rebase<'a>(t: TensorInfo<'a>, persistent_bytes: usize) -> TensorInfo<'a> {
    match t.storage {
        Storage::Arena => TensorInfo { offset: t.offset.saturating_sub(persistent_bytes), ..t },
        _ => t,
    }
}

/// Two disjoint mutable f32 tensors of the persistent region.
#[cfg(any(feature = "vit", feature = "transformer"))]
fn two_mut<'x>(region: &'x mut [u8], a: &TensorInfo<'_>, b: &TensorInfo<'_>) -> Result<(&'x mut [f32], &'x mut [f32])> {
    let (first, second, swap) = if a.offset <= b.offset { (a, b, false) } else { (b, a, true) };
    if first.range().end > second.offset || second.range().end > region.len() {
        return Err(misaligned());
    }
    let (lo, hi) = region.split_at_mut(second.offset);
    let x = lo.get_mut(first.range()).ok_or_else(misaligned)?;
    let y = hi.get_mut(..second.bytes).ok_or_else(misaligned)?;
    let x: &mut [f32] = bytemuck::try_cast_slice_mut(x).map_err(|_| misaligned())?;
    let y: &mut [f32] = bytemuck::try_cast_slice_mut(y).map_err(|_| misaligned())?;
    Ok(if swap { (y, x) } else { (x, y) })
}

/// Columns `col..` of a row-major tensor's data (empty past the end).
fn cols(x: &[f32], col: usize) -> &[f32] {
    x.get(col..).unwrap_or(&[])
}

/// Runs one validated op over the arena for a call on `run.n` tokens.
pub(crate) fn execute(model: &Model<'_>, index: u32, op: &OpRecord, arena: &mut [u8], run: Run) -> Result<()> {
    let c = Check { model, index, op };
    let out_t = c.out()?;
    let pb = model.persistent_bytes();
    #[cfg_attr(not(any(feature = "vit", feature = "transformer", feature = "ssm")), allow(unused_variables))]
    let (persistent, out_bytes, f) = split(arena, pb, &out_t, model.weights())?;
    let out_elems = elems(&out_t, run.n);
    let out_all: &mut [f32] = bytemuck::try_cast_slice_mut(out_bytes).map_err(|_| misaligned())?;
    let out = out_all.get_mut(..out_elems).ok_or_else(misaligned)?;
    let n = run.n;
    let tensor = |slot: usize| c.tensor(op.inputs[slot]).map(|t| rebase(t, pb));
    let src = |slot: usize| tensor(slot).and_then(|t| f.src(&t, elems(&t, n)));
    let opt_src = |slot: usize| -> Result<Option<Src<'_>>> {
        if op.inputs[slot] == NONE { Ok(None) } else { src(slot).map(Some) }
    };
    let act = |slot: usize| tensor(slot).and_then(|t| f.f32(&t, elems(&t, n)));
    let opt_act = |slot: usize| -> Result<Option<&[f32]>> {
        if op.inputs[slot] == NONE { Ok(None) } else { act(slot).map(Some) }
    };
    let p = |i: usize| op.params[i] as usize;
    let pf = |i: usize| f32::from_bits(op.params[i]);
    let activation = |i: usize| Activation::from_code(op.params[i]).unwrap_or(Activation::None);

    // Ops of families this build leaves out (see `families`) were refused at parse time.
    match op.opcode {
        #[cfg(feature = "vit")]
        OpCode::PatchEmbed => {
            k::patch::patch_embed(act(0)?, src(1)?, opt_src(2)?, out, p(0), p(1), p(2), p(3), p(4));
        }
        OpCode::ConcatRows => k::elementwise::ref_concat_rows(src(0)?, src(1)?, out),
        OpCode::Add => k::elementwise::ref_add(act(0)?, src(1)?.slice(0, out_elems), out),
        OpCode::LayerNorm => k::norm::layer_norm(act(0)?, src(1)?, opt_src(2)?, out, p(0), pf(1)),
        #[cfg(any(feature = "transformer", feature = "ssm"))]
        OpCode::RmsNorm => k::norm::rms_norm(act(0)?, src(1)?, out, p(0), pf(1)),
        OpCode::MatMul => {
            let m = rows(&out_t, n);
            let x_t = tensor(0)?;
            let x = cols(act(0)?, p(4));
            let (w, b, r) = (src(1)?, opt_src(2)?, opt_act(3)?);
            k::matmul::matmul_strided(x, x_t.shape.cols(), w, b, r, activation(3), out, m, p(1), p(2))
        }
        #[cfg(any(feature = "vit", feature = "transformer"))]
        OpCode::Attention => {
            let mut s = attention_shape(&c)?;
            let (q, kk, v) = (act(0)?, act(1)?, act(2)?);
            s.q_rows = rows(&tensor(0)?, n);
            match c.caches()? {
                None => {
                    s.kv_rows = rows(&tensor(1)?, n);
                    let mask = opt_act(3)?;
                    k::attention::attention(cols(q, p(3)), cols(kk, p(4)), cols(v, p(5)), mask, out, &s);
                }
                Some((kc, vc)) => {
                    let (k_cache, v_cache) = two_mut(persistent, &kc, &vc)?;
                    let width = s.kv_heads * s.head_dim;
                    // Store this call's keys and values at rows pos..pos+n.
                    for (cache, src_t, col) in [(&mut *k_cache, kk, p(4)), (&mut *v_cache, v, p(5))] {
                        let dst = cache
                            .get_mut(run.pos * width..(run.pos + n) * width)
                            .ok_or(Error::ContextFull { needed: run.pos + n, capacity: model.max_context() })?;
                        for (d, row) in dst.chunks_exact_mut(width).zip(src_t.chunks(s.kv_stride)) {
                            d.copy_from_slice(row.get(col..col + width).ok_or_else(misaligned)?);
                        }
                    }
                    s.kv_rows = run.pos + n;
                    s.kv_stride = width;
                    s.q_pos0 = run.pos;
                    k::attention::attention(cols(q, p(3)), k_cache, v_cache, None, out, &s);
                }
            }
        }
        OpCode::SelectRows => {
            let x = tensor(0)?;
            let cols = x.shape.cols();
            let rows = f.f32(&x, elems(&x, n))?.get(p(0) * cols..(p(0) + p(1)) * cols).unwrap_or(&[]);
            out.iter_mut().zip(rows).for_each(|(o, v)| *o = *v);
        }
        #[cfg(feature = "transformer")]
        OpCode::Glu => k::activation::ref_glu(act(0)?, out, p(0), activation(1)),
        OpCode::Activation => {
            out.iter_mut().zip(act(0)?).for_each(|(o, v)| *o = *v);
            k::activation::activation_inplace(out, activation(0));
        }
        #[cfg(any(feature = "transformer", feature = "ssm"))]
        OpCode::Embedding => {
            let ids_t = tensor(0)?;
            let ids = f.i32(&ids_t, elems(&ids_t, n))?;
            let rows = ids.iter().map(|&id| usize::try_from(id).unwrap_or(usize::MAX));
            k::embedding::ref_embedding(src(1)?, p(1), rows, out);
        }
        #[cfg(feature = "transformer")]
        OpCode::PositionEmbedding => k::embedding::ref_embedding(src(0)?, p(1), run.pos..run.pos + n, out),
        #[cfg(feature = "ssm")]
        OpCode::CausalConv1d | OpCode::SelectiveScan | OpCode::TokenShift | OpCode::Wkv => {
            let slot = state_slot(op.opcode).ok_or_else(misaligned)?;
            let st = c.tensor(op.inputs[slot])?;
            let state: &mut [f32] = persistent
                .get_mut(st.range())
                .and_then(|b| bytemuck::try_cast_slice_mut(b).ok())
                .ok_or_else(misaligned)?;
            let t = rows(&out_t, n);
            match op.opcode {
                OpCode::CausalConv1d => {
                    k::scan::ref_causal_conv1d(act(0)?, src(2)?, opt_src(3)?, state, out, t, p(0), p(1), activation(2))
                }
                OpCode::SelectiveScan => {
                    k::scan::selective_scan(act(0)?, act(1)?, act(2)?, act(3)?, src(4)?, state, out, t, p(0), p(1))
                }
                OpCode::TokenShift => k::wkv::ref_token_shift(act(0)?, src(2)?, state, out, t, p(0), p(1)),
                _ => k::wkv::ref_wkv(act(0)?, act(1)?, act(2)?, src(3)?, src(4)?, state, out, t, p(0)),
            }
        }
        OpCode::Mul => {
            let (a, b) = (act(0)?, act(1)?);
            out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x * y);
            if let Some(r) = opt_act(2)? {
                out.iter_mut().zip(r).for_each(|(o, v)| *o += v);
            }
        }
        #[cfg(feature = "transformer")]
        OpCode::Rope => {
            let x = act(0)?;
            out.iter_mut().zip(x).for_each(|(o, v)| *o = *v);
            let inv_freq = match src(1)? {
                Src::F32(s) => s,
                Src::F16(_) => return Err(Error::WrongDType { expected: "f32", found: "f16" }),
            };
            let x_t = tensor(0)?;
            k::rope::rope_inplace(out, rows(&x_t, n), x_t.shape.cols(), p(0), p(1), inv_freq, run.pos);
        }
        #[allow(unreachable_patterns)]
        _ => crate::families::check(index, op.opcode)?,
    }
    Ok(())
}
