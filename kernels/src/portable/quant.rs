//! SIMD int8 / int4 linear layer (`quant`'s Q8_0 / Q4_1 blocks): `out = act(x w^T + bias)
//! + residual`, the weights widened in registers (eight bytes -> eight f32: `VPMOVSXBD` +
//! `VCVTDQ2PS` on x86-64, the nibbles masked and shifted first for int4).
//!
//! - decode (m = 1): four weight rows at a time; per block a vector of partial sums
//!   s = Σ q x per row, then acc = d * s (+ m * Σ x) + acc, one lane sum per row at the end.
//! - m >= `gemm::MIN_M` on x86-64: the packed GEMM with panels dequantized (d * q, exact;
//!   d * q + m, one rounding) instead of widened from f16.
//! - other m: tiles of up to 4 rows of x by 2 weight rows, the weights dequantized once
//!   per tile.

use core::simd::prelude::*;
use core::simd::simd_swizzle;

use crate::Src;
use crate::activation::Activation;
use crate::quant::{BlockQ4, BlockQ8, QK, QWeights};
use crate::simd::{F32x8, LANES, epilogue, fma, hsum};

/// Vectors of eight per block.
const VB: usize = QK / LANES;

/// A quantized block, widened in registers.
trait QBlock: Copy {
    /// The block's q as f32, eight at a time (`[q[0..8], .., q[24..32]]`).
    fn levels(&self) -> [F32x8; VB];
    fn d(&self) -> f32;
    /// The offset added to d * q (0 for int8).
    fn m(&self) -> f32;
    /// Whether there is an offset (int4).
    const OFFSET: bool;
}

impl QBlock for BlockQ8 {
    #[inline(always)]
    fn levels(&self) -> [F32x8; VB] {
        core::array::from_fn(|c| Simd::<i8, LANES>::from_slice(&self.q[c * LANES..]).cast::<f32>())
    }
    #[inline(always)]
    fn d(&self) -> f32 {
        self.scale()
    }
    #[inline(always)]
    fn m(&self) -> f32 {
        0.0
    }
    const OFFSET: bool = false;
}

impl QBlock for BlockQ4 {
    #[inline(always)]
    fn levels(&self) -> [F32x8; VB] {
        let b = u8x16::from_array(self.q);
        let (lo, hi) = (b & u8x16::splat(0x0F), b >> u8x16::splat(4));
        let first = |v: u8x16| simd_swizzle!(v, [0, 1, 2, 3, 4, 5, 6, 7]).cast::<f32>();
        let second = |v: u8x16| simd_swizzle!(v, [8, 9, 10, 11, 12, 13, 14, 15]).cast::<f32>();
        [first(lo), second(lo), first(hi), second(hi)]
    }
    #[inline(always)]
    fn d(&self) -> f32 {
        self.scale()
    }
    #[inline(always)]
    fn m(&self) -> f32 {
        self.min()
    }
    const OFFSET: bool = true;
}

/// Σ x . w_r for R quantized rows of nb blocks each: per block partial sums, then scaled.
#[inline(always)]
fn dot_rows<const R: usize, B: QBlock>(x: &[f32], rows: [&[B]; R]) -> [f32; R] {
    let mut acc = [F32x8::splat(0.0); R];
    let nb = x.len() / QK;
    let rows: [&[B]; R] = core::array::from_fn(|r| &rows[r][..nb]);
    for (bi, xb) in x.as_chunks::<QK>().0.iter().enumerate() {
        let xv: [F32x8; VB] = core::array::from_fn(|c| F32x8::from_slice(&xb[c * LANES..]));
        let sx = if B::OFFSET { (xv[0] + xv[1]) + (xv[2] + xv[3]) } else { F32x8::splat(0.0) };
        for r in 0..R {
            let b = &rows[r][bi];
            let q = b.levels();
            let s = fma(q[1], xv[1], q[0] * xv[0]);
            let s = fma(q[3], xv[3], fma(q[2], xv[2], s));
            let a = if B::OFFSET { fma(F32x8::splat(b.m()), sx, acc[r]) } else { acc[r] };
            acc[r] = fma(F32x8::splat(b.d()), s, a);
        }
    }
    core::array::from_fn(|r| hsum(acc[r]))
}

/// Decode: out[j] = x . w_j, four rows at a time.
#[inline(always)]
fn matvec<B: QBlock>(x: &[f32], w: &[B], out: &mut [f32], nb: usize) {
    let row = |j: usize| &w[j * nb..j * nb + nb];
    let mut outs = out.chunks_exact_mut(4);
    let mut j = 0;
    for o in &mut outs {
        o.copy_from_slice(&dot_rows::<4, B>(x, core::array::from_fn(|r| row(j + r))));
        j += 4;
    }
    for o in outs.into_remainder() {
        *o = dot_rows::<1, B>(x, [row(j)])[0];
        j += 1;
    }
}

/// The block's weights, eight at a time (d * q, or d * q + m with one rounding).
#[inline(always)]
fn dequantize<B: QBlock>(b: &B) -> [F32x8; VB] {
    let (d, m) = (F32x8::splat(b.d()), F32x8::splat(b.m()));
    b.levels().map(|q| if B::OFFSET { fma(q, d, m) } else { q * d })
}

/// One tile of MR rows of x by R weight rows: raw sums into out (rows n apart).
#[inline(always)]
fn tile<const MR: usize, const R: usize, B: QBlock>(xr: [&[f32]; MR], rows: [&[B]; R], out: &mut [f32], n: usize) {
    let mut acc = [[F32x8::splat(0.0); R]; MR];
    let nb = xr[0].len() / QK;
    let xr: [&[[f32; QK]]; MR] = core::array::from_fn(|i| &xr[i].as_chunks::<QK>().0[..nb]);
    let rows: [&[B]; R] = core::array::from_fn(|r| &rows[r][..nb]);
    for bi in 0..nb {
        let w: [[F32x8; VB]; R] = core::array::from_fn(|r| dequantize(&rows[r][bi]));
        for c in 0..VB {
            for i in 0..MR {
                let xv = F32x8::from_slice(&xr[i][bi][c * LANES..]);
                for r in 0..R {
                    acc[i][r] = fma(xv, w[r][c], acc[i][r]);
                }
            }
        }
    }
    for i in 0..MR {
        for r in 0..R {
            out[i * n + r] = hsum(acc[i][r]);
        }
    }
}

/// The raw product over tiles of up to 4 x 2, then the edges.
#[inline(always)]
fn tiles<B: QBlock>(x: &[f32], xs: usize, w: &[B], out: &mut [f32], m: usize, k: usize, n: usize) {
    let nb = k / QK;
    let xrow = |i: usize| &x[i * xs..i * xs + k];
    let row = |j: usize| &w[j * nb..j * nb + nb];
    let mut i = 0;
    while i < m {
        let mr = (m - i).min(4);
        let mut j = 0;
        while j < n {
            let r = (n - j).min(2);
            let o = &mut out[i * n + j..];
            macro_rules! go {
                ($a:literal, $b:literal) => {
                    tile::<$a, $b, B>(core::array::from_fn(|t| xrow(i + t)), core::array::from_fn(|t| row(j + t)), o, n)
                };
            }
            match (mr, r) {
                (4, 2) => go!(4, 2),
                (4, _) => go!(4, 1),
                (3, 2) => go!(3, 2),
                (3, _) => go!(3, 1),
                (2, 2) => go!(2, 2),
                (2, _) => go!(2, 1),
                (_, 2) => go!(1, 2),
                _ => go!(1, 1),
            }
            j += r;
        }
        i += mr;
    }
}

/// The x86-64 GEMM over panels dequantized from the blocks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn gemm<B: QBlock>(x: &[f32], xs: usize, w: &[B], out: &mut [f32], m: usize, k: usize, n: usize) {
    use crate::arch::x86_64::gemm::{KC, NR, gemm_packed, pack};
    let nb = k / QK;
    // Equal k blocks of at most KC, whole quantized blocks each.
    let parts = k.div_ceil(KC);
    let step = k.div_ceil(parts).next_multiple_of(QK).min(KC);
    // The dequantized rows of one panel, `[NR][kc]`.
    let mut rows = [0f32; NR * KC];
    let pack_q = |j0: usize, nr: usize, k0: usize, kc: usize, panel: &mut [[F32x8; 2]]| {
        for c in 0..nr {
            let blocks = &w[(j0 + c) * nb + k0 / QK..][..kc / QK];
            for (b, dst) in blocks.iter().zip(rows[c * kc..(c + 1) * kc].chunks_exact_mut(QK)) {
                for (v, d) in dequantize(b).iter().zip(dst.chunks_exact_mut(LANES)) {
                    d.copy_from_slice(v.as_array());
                }
            }
        }
        pack::<f32, 2>(&rows[..nr * kc], kc, 0, nr, 0, kc, panel);
    };
    gemm_packed(|i, k0, kc| &x[i * xs + k0..i * xs + k0 + kc], step, pack_q, out, m, k, n)
}

/// `WIDE`: the epilogue on sixteen lanes (the caller is compiled with AVX-512F).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dispatch<const WIDE: bool>(
    x: &[f32],
    xs: usize,
    w: QWeights<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    let nb = k / QK;
    match (w, m) {
        (QWeights::Q8(w), 1) => matvec(&x[..k], w, out, nb),
        (QWeights::Q4(w), 1) => matvec(&x[..k], w, out, nb),
        #[cfg(target_arch = "x86_64")]
        (QWeights::Q8(w), m) if m >= crate::arch::x86_64::gemm::MIN_M => gemm(x, xs, w, out, m, k, n),
        #[cfg(target_arch = "x86_64")]
        (QWeights::Q4(w), m) if m >= crate::arch::x86_64::gemm::MIN_M => gemm(x, xs, w, out, m, k, n),
        (QWeights::Q8(w), _) => tiles(x, xs, w, out, m, k, n),
        (QWeights::Q4(w), _) => tiles(x, xs, w, out, m, k, n),
    }
    epilogue::<WIDE>(bias, residual, act, out, n);
}

/// The AVX2 entry (x86-64 plug). Safety: the CPU has AVX2, FMA and F16C, and the caller
/// has checked every length (`quant::matmul_q`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn avx2(
    x: &[f32],
    xs: usize,
    w: QWeights<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    dispatch::<false>(x, xs, w, bias, residual, act, out, m, k, n)
}

/// The AVX-512 entry (x86-64 plug). Safety: the CPU has AVX-512F on top of AVX2, FMA and
/// F16C, and the caller has checked every length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn avx512(
    x: &[f32],
    xs: usize,
    w: QWeights<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    dispatch::<true>(x, xs, w, bias, residual, act, out, m, k, n)
}

/// The portable `core::simd` entry of `ref_matmul_q` (the plugs of CPUs other than
/// x86-64). The caller has checked every length.
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn portable(
    x: &[f32],
    xs: usize,
    w: QWeights<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    dispatch::<false>(x, xs, w, bias, residual, act, out, m, k, n)
}
