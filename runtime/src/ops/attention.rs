//! Attention: in q, k, v (activations), key_mask? [kv_rows], k_cache?, v_cache?
//! (persistent [max_context, kv_heads * head_dim]); out [q_rows, heads * head_dim].
//!
//! q / k / v are column blocks (from the `*_col` column) of row-major 2-D tensors,
//! possibly one fused tensor. With caches, the call's keys and values are first stored at
//! rows `pos..pos + n`, and the queries (at positions `pos + i`) attend over cache rows
//! `0..pos + n`.

use mote_kernels::{self as k, AttentionShape};

use super::{Check, Exec, OpCode, OpParams, RawParams, cols, misaligned, mul, raw, two_mut, u};
use crate::Result;
use crate::error::Error;
use crate::format::{DType, NONE, Storage};
use crate::model::TensorInfo;

/// Flag bit: each query attends only to keys at its position or before.
pub const CAUSAL: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub q_col: usize,
    pub k_col: usize,
    pub v_col: usize,
    pub causal: bool,
    pub scale: f32,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::Attention;
    fn encode(&self) -> RawParams {
        let [h, kvh, hd, q, k, v] = [self.heads, self.kv_heads, self.head_dim, self.q_col, self.k_col, self.v_col];
        raw(&[u(h), u(kvh), u(hd), u(q), u(k), u(v), if self.causal { CAUSAL } else { 0 }, self.scale.to_bits()])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        let [heads, kv_heads, head_dim, q_col, k_col, v_col] = [p[0], p[1], p[2], p[3], p[4], p[5]].map(|x| x as usize);
        if heads == 0 || kv_heads == 0 || head_dim == 0 {
            return Err("heads, kv_heads and head_dim must be positive");
        }
        if !heads.is_multiple_of(kv_heads) {
            return Err("heads is not a multiple of kv_heads");
        }
        let scale = f32::from_bits(p[7]);
        if !scale.is_finite() {
            return Err("scale is not finite");
        }
        if p[6] & !CAUSAL != 0 {
            return Err("unknown attention flags");
        }
        Ok(Params { heads, kv_heads, head_dim, q_col, k_col, v_col, causal: p[6] & CAUSAL != 0, scale })
    }
}

/// The kernel's shape for q and k tensors of these row counts and widths.
fn shape(p: &Params, q: &TensorInfo<'_>, kt: &TensorInfo<'_>) -> AttentionShape {
    AttentionShape {
        heads: p.heads,
        kv_heads: p.kv_heads,
        head_dim: p.head_dim,
        q_rows: q.shape.rows(),
        kv_rows: kt.shape.rows(),
        q_stride: q.shape.cols(),
        kv_stride: kt.shape.cols(),
        causal: p.causal,
        q_pos0: 0,
        scale: p.scale,
    }
}

/// The KV caches (inputs 4 and 5), if the op has them.
fn caches<'a>(c: &Check<'_, 'a>) -> Result<Option<(TensorInfo<'a>, TensorInfo<'a>)>> {
    match (c.op.inputs[4], c.op.inputs[5]) {
        (NONE, NONE) => Ok(None),
        (kc, vc) if kc != NONE && vc != NONE => {
            let (kc, vc) = (c.tensor(kc)?, c.tensor(vc)?);
            let ok = |t: &TensorInfo<'_>| t.storage == Storage::Persistent && t.dtype == DType::F32;
            c.ensure(ok(&kc) && ok(&vc), "a KV cache is not an f32 persistent tensor")?;
            c.ensure(kc.range().end <= vc.offset || vc.range().end <= kc.offset, "the K and V caches overlap")?;
            Ok(Some((kc, vc)))
        }
        _ => Err(c.err("has a K cache without a V cache or the reverse")),
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let (q, kt, v) = (c.act(0)?, c.act(1)?, c.act(2)?);
    let fits = |col: usize, n: usize, t: &TensorInfo<'_>| {
        mul(n, p.head_dim).and_then(|w| w.checked_add(col)).is_some_and(|end| end <= t.shape.cols())
    };
    c.ensure(fits(p.q_col, p.heads, &q), "query heads lie past the row width of q")?;
    c.ensure(fits(p.k_col, p.kv_heads, &kt), "key heads lie past the row width of k")?;
    c.ensure(fits(p.v_col, p.kv_heads, &v), "value heads lie past the row width of v")?;
    c.ensure(kt.shape.rows() == v.shape.rows() && kt.shape.cols() == v.shape.cols(), "k and v differ in shape")?;
    c.ensure(kt.seq == v.seq && (q.seq == kt.seq), "q, k and v disagree on token rows")?;
    c.same_rows(&q, out)?;
    if let Some(mask) = c.opt_act(3)? {
        c.ensure(mask.seq == kt.seq, "key mask and keys disagree on token rows")?;
        c.elems_eq(&mask, Some(kt.shape.rows()), "key mask is not [kv_rows]")?;
    }
    if let Some((kc, vc)) = caches(c)? {
        let ctx = c.model.max_context();
        c.ensure(q.seq && kt.seq && c.op.inputs[3] == NONE, "cached attention needs token-row q, k, v and no mask")?;
        let kv_width = mul(p.kv_heads, p.head_dim);
        for cache in [&kc, &vc] {
            c.ensure(ctx > 0 && cache.shape.rows() == ctx, "a KV cache does not have max_context rows")?;
            c.ensure(Some(cache.shape.cols()) == kv_width, "a KV cache row is not kv_heads*head_dim")?;
        }
    }
    c.elems_eq(out, mul(q.shape.rows(), p.heads * p.head_dim), "output is not [q_rows, heads*head_dim]")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let (q_t, k_t) = (e.tensor(0)?, e.tensor(1)?);
    let mut s = shape(p, &q_t, &k_t);
    s.q_rows = e.rows(&q_t);
    let (q, kk, v) = (e.act(0)?, e.act(1)?, e.act(2)?);
    let cached = e.c.op.inputs[4] != NONE;
    if !cached {
        s.kv_rows = e.rows(&k_t);
        let mask = e.opt_act(3)?;
        k::attention::attention(cols(q, p.q_col), cols(kk, p.k_col), cols(v, p.v_col), mask, e.out, &s);
        return Ok(());
    }
    let (kc, vc) = (e.tensor_id(e.c.op.inputs[4])?, e.tensor_id(e.c.op.inputs[5])?);
    let (n, pos, ctx) = (e.run.n, e.run.pos, e.c.model.max_context());
    let (k_cache, v_cache) = two_mut(e.persistent, &kc, &vc)?;
    let width = s.kv_heads * s.head_dim;
    // Store this call's keys and values at rows pos..pos+n.
    for (cache, src, col) in [(&mut *k_cache, kk, p.k_col), (&mut *v_cache, v, p.v_col)] {
        let dst = cache
            .get_mut(pos * width..(pos + n) * width)
            .ok_or(Error::ContextFull { needed: pos + n, capacity: ctx })?;
        for (d, row) in dst.chunks_exact_mut(width).zip(src.chunks(s.kv_stride)) {
            d.copy_from_slice(row.get(col..col + width).ok_or_else(misaligned)?);
        }
    }
    s.kv_rows = pos + n;
    s.kv_stride = width;
    s.q_pos0 = pos;
    k::attention::attention(cols(q, p.q_col), k_cache, v_cache, None, e.out, &s);
    Ok(())
}
