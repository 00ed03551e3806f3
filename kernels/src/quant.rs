//! Quantized weight matrices: int8 and int4 in blocks of [`QK`] weights along a row (the
//! input dimension), each block with an f16 scale (and, for int4, an f16 minimum).
//!
//! The block layouts are llama.cpp's `Q8_0` and `Q4_1`, byte for byte, so a GGUF file's
//! blocks can be used as they are:
//! - [`BlockQ8`] (34 bytes): `d` (f16), then 32 signed bytes `q`; weight `t` = `d * q[t]`.
//! - [`BlockQ4`] (20 bytes): `d` (f16), `m` (f16), then 16 bytes; byte `t` holds weight `t`
//!   in its low nibble and weight `t + 16` in its high nibble, each an unsigned `q` in
//!   0..=15; weight = `d * q + m`.
//!
//! A matrix `[n, k]` is `n` rows of `k / QK` blocks (`k` a multiple of `QK`), rows
//! contiguous. Activations stay f32: the kernels widen the weights in registers and
//! accumulate in f32 ([`ref_matmul_q`] fixes the order of the reference's sums).

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::activation::Activation;
use crate::src::Src;

/// Weights per block.
pub const QK: usize = 32;

/// llama.cpp's `block_q8_0`: 32 int8 weights and their f16 scale.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8 {
    /// The scale's f16 bits.
    pub d: u16,
    pub q: [i8; QK],
}

/// llama.cpp's `block_q4_1`: 32 unsigned 4-bit weights, their f16 scale and minimum.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4 {
    /// The scale's f16 bits.
    pub d: u16,
    /// The minimum's f16 bits.
    pub m: u16,
    /// Weight t in the low nibble of byte t, weight t + 16 in its high nibble.
    pub q: [u8; QK / 2],
}

/// A quantized weight matrix, `rows * blocks_per_row` blocks.
#[derive(Clone, Copy, Debug)]
pub enum QWeights<'a> {
    Q8(&'a [BlockQ8]),
    Q4(&'a [BlockQ4]),
}

impl<'a> QWeights<'a> {
    /// Blocks in the matrix.
    pub fn blocks(&self) -> usize {
        match self {
            QWeights::Q8(b) => b.len(),
            QWeights::Q4(b) => b.len(),
        }
    }

    /// Weights in the matrix.
    pub fn len(&self) -> usize {
        self.blocks() * QK
    }

    pub fn is_empty(&self) -> bool {
        self.blocks() == 0
    }

    /// Blocks `start..start + len` (clamped to the matrix).
    pub fn blocks_range(&self, start: usize, len: usize) -> QWeights<'a> {
        fn clamp<T>(s: &[T], start: usize, len: usize) -> &[T] {
            let a = start.min(s.len());
            let b = start.saturating_add(len).min(s.len());
            &s[a..b]
        }
        match *self {
            QWeights::Q8(b) => QWeights::Q8(clamp(b, start, len)),
            QWeights::Q4(b) => QWeights::Q4(clamp(b, start, len)),
        }
    }

    /// The weights as f32, in order, into `out` (as many as both hold).
    pub fn dequantize_to(&self, out: &mut [f32]) {
        match self {
            QWeights::Q8(b) => b.iter().zip(out.chunks_mut(QK)).for_each(|(b, o)| b.dequantize_to(o)),
            QWeights::Q4(b) => b.iter().zip(out.chunks_mut(QK)).for_each(|(b, o)| b.dequantize_to(o)),
        }
    }
}

/// f16 bits to f32.
#[inline(always)]
pub(crate) fn half(bits: u16) -> f32 {
    crate::src::widen(f16::from_bits(bits))
}

impl BlockQ8 {
    /// The scale.
    #[inline(always)]
    pub fn scale(&self) -> f32 {
        half(self.d)
    }

    /// Weight t as f32 (`d * q[t]`, exact in f32).
    #[inline(always)]
    pub fn weight(&self, t: usize) -> f32 {
        self.scale() * f32::from(self.q[t])
    }

    pub fn dequantize_to(&self, out: &mut [f32]) {
        let d = self.scale();
        out.iter_mut().zip(&self.q).for_each(|(o, &q)| *o = d * f32::from(q));
    }

    /// The block of `x` (up to `QK` values; missing ones are 0): symmetric, the largest
    /// magnitude maps to +-127, scale rounded to f16 first and every q rounded to nearest
    /// with that scale. All-zero (or non-finite-free zero) input gives d = 0.
    pub fn quantize(x: &[f32]) -> BlockQ8 {
        let amax = x.iter().take(QK).fold(0.0f32, |a, v| a.max(v.abs()));
        let d = f16::from_f32(amax / 127.0);
        let df = d.to_f32();
        let mut q = [0i8; QK];
        if df > 0.0 {
            for (q, &v) in q.iter_mut().zip(x) {
                *q = crate::math::roundf(v / df).clamp(-127.0, 127.0) as i8;
            }
        }
        BlockQ8 { d: d.to_bits(), q }
    }
}

impl BlockQ4 {
    #[inline(always)]
    pub fn scale(&self) -> f32 {
        half(self.d)
    }

    #[inline(always)]
    pub fn min(&self) -> f32 {
        half(self.m)
    }

    /// The unsigned 4-bit value of weight t.
    #[inline(always)]
    pub fn nibble(&self, t: usize) -> u8 {
        let b = self.q[t % (QK / 2)];
        if t < QK / 2 { b & 0x0F } else { b >> 4 }
    }

    /// Weight t as f32 (`d * q + m`, one rounding: a fused multiply-add).
    #[inline(always)]
    pub fn weight(&self, t: usize) -> f32 {
        crate::math::fmaf(self.scale(), f32::from(self.nibble(t)), self.min())
    }

    pub fn dequantize_to(&self, out: &mut [f32]) {
        out.iter_mut().take(QK).enumerate().for_each(|(t, o)| *o = self.weight(t));
    }

    /// The block of `x` (up to `QK` values; missing ones are 0): asymmetric, min -> 0 and
    /// max -> 15, scale and minimum rounded to f16 first, every q rounded to nearest with
    /// them.
    pub fn quantize(x: &[f32]) -> BlockQ4 {
        let n = x.len().min(QK);
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in &x[..n] {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if n < QK {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        if !(lo.is_finite() && hi.is_finite()) {
            (lo, hi) = (0.0, 0.0);
        }
        let d = f16::from_f32((hi - lo) / 15.0);
        let m = f16::from_f32(lo);
        let (df, mf) = (d.to_f32(), m.to_f32());
        let mut q = [0u8; QK / 2];
        let level = |t: usize| -> u8 {
            let v = x.get(t).copied().unwrap_or(0.0);
            if df > 0.0 { crate::math::roundf((v - mf) / df).clamp(0.0, 15.0) as u8 } else { 0 }
        };
        for (t, b) in q.iter_mut().enumerate() {
            *b = level(t) | (level(t + QK / 2) << 4);
        }
        BlockQ4 { d: d.to_bits(), m: m.to_bits(), q }
    }
}

/// Σ_t q[t] * x[t] over one int8 block, in order.
#[inline(always)]
fn dot_q8(b: &BlockQ8, x: &[f32]) -> f32 {
    b.q.iter().zip(x).fold(0.0f32, |s, (&q, &v)| crate::math::fmaf(f32::from(q), v, s))
}

/// Σ_t q[t] * x[t] and Σ_t x[t] over one int4 block, in order.
#[inline(always)]
fn dot_q4(b: &BlockQ4, x: &[f32]) -> (f32, f32) {
    let mut s = 0.0f32;
    let mut sx = 0.0f32;
    for (t, &v) in x.iter().enumerate().take(QK) {
        s = crate::math::fmaf(f32::from(b.nibble(t)), v, s);
        sx += v;
    }
    (s, sx)
}

/// out = act(x @ w^T + bias) + residual with quantized w `[n, k]` (`k / QK` blocks per
/// row); x rows `x_stride` apart (`x_stride >= k`), out `[m, n]`.
///
/// The reference's order, which the fast kernels match up to the order of f32 sums: per
/// output, per block, s = Σ_t q[t] * x[t] (fused, in order), then
/// acc = d * s + acc (int8) or acc = d * s + m * Σ_t x[t] + acc (int4), from acc = 0;
/// then out = act(acc + bias) + residual.
#[allow(clippy::too_many_arguments)]
pub fn ref_matmul_q(
    x: &[f32],
    x_stride: usize,
    w: QWeights<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    if n == 0 {
        return;
    }
    let nb = k / QK;
    for (i, row) in out.chunks_exact_mut(n).take(m).enumerate() {
        let xr = x.get(i * x_stride..).unwrap_or(&[]);
        for (j, o) in row.iter_mut().enumerate() {
            let wj = w.blocks_range(j * nb, nb);
            let mut acc = 0.0f32;
            match wj {
                QWeights::Q8(bs) => {
                    for (b, xb) in bs.iter().zip(xr.chunks(QK)) {
                        acc = crate::math::fmaf(b.scale(), dot_q8(b, xb), acc);
                    }
                }
                QWeights::Q4(bs) => {
                    for (b, xb) in bs.iter().zip(xr.chunks(QK)) {
                        let (s, sx) = dot_q4(b, xb);
                        acc = crate::math::fmaf(b.scale(), s, crate::math::fmaf(b.min(), sx, acc));
                    }
                }
            }
            let v = acc + bias.map_or(0.0, |b| b.get(j));
            let v = act.apply(v);
            *o = v + residual.map_or(0.0, |r| r.get(i * n + j).copied().unwrap_or(0.0));
        }
    }
}

/// [`ref_matmul_q`] with the fastest kernel of the table when every length is consistent
/// (w holds n * k / QK blocks, k a multiple of QK, x m rows, out m * n, bias n, residual
/// m * n); otherwise the reference (NaN on a board, where the runtime's validation rules
/// such calls out).
#[allow(clippy::too_many_arguments)]
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn matmul_q(
    x: &[f32],
    x_stride: usize,
    w: QWeights<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    let fits = m > 0
        && k > 0
        && k.is_multiple_of(QK)
        && x_stride >= k
        && (m - 1).checked_mul(x_stride).and_then(|r| r.checked_add(k)).is_some_and(|end| x.len() >= end)
        && n.checked_mul(k / QK) == Some(w.blocks())
        && m.checked_mul(n) == Some(out.len())
        && bias.is_none_or(|b| b.len() == n)
        && residual.is_none_or(|r| r.len() == out.len());
    if fits {
        return (crate::table::active().matmul_q)(x, x_stride, w, bias, residual, act, out, m, k, n);
    }
    crate::src::mismatch!(out, ref_matmul_q(x, x_stride, w, bias, residual, act, out, m, k, n))
}

/// out[i, :] = table[rows[i], :] for a quantized table `[vocab, dim]` (`dim` a multiple
/// of `QK`); a row index past the table (or a `dim` that is not a multiple of `QK`) gives
/// a zero row.
pub fn ref_embedding_q(table: QWeights<'_>, dim: usize, rows: impl IntoIterator<Item = usize>, out: &mut [f32]) {
    if dim == 0 {
        return;
    }
    let nb = dim / QK;
    let vocab = if dim.is_multiple_of(QK) { table.blocks() / nb.max(1) } else { 0 };
    for (out_row, r) in out.chunks_exact_mut(dim).zip(rows) {
        if r < vocab {
            table.blocks_range(r * nb, nb).dequantize_to(out_row);
        } else {
            out_row.fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng_values(n: usize, seed: u64) -> Vec<f32> {
        crate::testutil::values(seed, n, -1.0, 1.0)
    }

    #[test]
    fn block_sizes_are_llama_cpp_s() {
        assert_eq!(core::mem::size_of::<BlockQ8>(), 34);
        assert_eq!(core::mem::size_of::<BlockQ4>(), 20);
        assert_eq!(core::mem::align_of::<BlockQ8>(), 2);
    }

    #[test]
    fn q8_round_trip_is_within_half_a_step() {
        let x = rng_values(QK, 1);
        let b = BlockQ8::quantize(&x);
        let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!(b.q.iter().any(|&q| q.unsigned_abs() == 127));
        for (t, &v) in x.iter().enumerate() {
            assert!((b.weight(t) - v).abs() <= 0.5 * b.scale() + 1e-7, "{t}: {} vs {v}", b.weight(t));
        }
        assert!((b.scale() - amax / 127.0).abs() <= 1e-3 * b.scale());
        assert_eq!(BlockQ8::quantize(&[0.0; QK]).scale(), 0.0);
    }

    #[test]
    fn q4_round_trip_is_within_half_a_step_and_nibbles_are_ggml_s() {
        let x = rng_values(QK, 2);
        let b = BlockQ4::quantize(&x);
        for (t, &v) in x.iter().enumerate() {
            assert!((b.weight(t) - v).abs() <= 0.5 * b.scale() + 1e-3 * v.abs().max(1.0), "{t}");
        }
        let mut raw = BlockQ4 { d: f16::from_f32(1.0).to_bits(), m: 0, q: [0; 16] };
        raw.q[3] = 0xA5;
        assert_eq!((raw.nibble(3), raw.nibble(19)), (5, 10));
        assert_eq!((raw.weight(3), raw.weight(19)), (5.0, 10.0));
    }

    #[test]
    fn ref_matmul_q_matches_dequantized_weights() {
        let (m, k, n) = (3, 2 * QK, 5);
        let x = rng_values(m * k, 3);
        let wf = rng_values(n * k, 4);
        let q8: Vec<BlockQ8> = wf.chunks(QK).map(BlockQ8::quantize).collect();
        let q4: Vec<BlockQ4> = wf.chunks(QK).map(BlockQ4::quantize).collect();
        let bias = rng_values(n, 5);
        for w in [QWeights::Q8(&q8), QWeights::Q4(&q4)] {
            let mut deq = vec![0.0; n * k];
            w.dequantize_to(&mut deq);
            let mut want = vec![0.0; m * n];
            crate::matmul::ref_matmul(
                &x,
                Src::F32(&deq),
                Some(Src::F32(&bias)),
                None,
                Activation::None,
                &mut want,
                m,
                k,
                n,
            );
            let mut got = vec![0.0; m * n];
            ref_matmul_q(&x, k, w, Some(Src::F32(&bias)), None, Activation::None, &mut got, m, k, n);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn embedding_q_gathers_dequantized_rows() {
        let wf = rng_values(3 * QK, 6);
        let q8: Vec<BlockQ8> = wf.chunks(QK).map(BlockQ8::quantize).collect();
        let mut out = vec![9.0; 2 * QK];
        ref_embedding_q(QWeights::Q8(&q8), QK, [2usize, 7], &mut out);
        for t in 0..QK {
            assert_eq!(out[t], q8[2].weight(t));
            assert_eq!(out[QK + t], 0.0);
        }
    }
}
