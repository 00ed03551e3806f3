//! The Cortex-M55 / M85 plug (Armv8.1-M with Helium, MVE with floating point): kernels on
//! the eight 128-bit `q` registers.
//!
//! LLVM lowers `core::simd` to MVE, but without fused multiply-adds (`Simd::mul_add`
//! needs `std`) and with the f16 widening done by integer bit tricks. These loops take
//! the two instructions that matter from `asm!`: `VLDRH.U32` + `VCVTB.F32.F16` (four f16
//! weights widened to f32 lanes in two instructions) and `VFMA.F32` on `q` registers;
//! loads of f32 vectors, pointers and the loop are LLVM's.
//!
//! - matmul: the sums run along k, four inputs per lane group: tiles of 2 rows x 2
//!   columns (four accumulators, two x vectors, two weight vectors: all eight `q`
//!   registers), and 1 row x 4 columns for decode; each sum is reduced across its lanes
//!   once, at the end. Inputs past the last multiple of four are scalar FPU code.
//! - attention: the Cortex-M4F plug's streaming softmax, with its dot products and
//!   `p * v` updates four lanes at a time.

use core::arch::asm;
use core::simd::prelude::*;
use core::simd::{Simd, f32x4};

use super::armv7em::{KB, Weight, fma};
use crate::activation::Activation;
use crate::attention::AttentionShape;
use crate::src::Src;
use crate::table::Kernels;

/// The table: the M4F plug's entries, with this module's matmul and attention.
pub(crate) const fn plug(k: Kernels) -> Kernels {
    let mut k = super::armv7em::plug(k);
    k.matmul = matmul;
    k.patch_embed = patch_embed;
    k.attention = attention;
    k.activation = activation;
    k
}

/// The vector kernels' exp / erf / tanh / activations on four lanes with `VFMA`
/// (reciprocals are divisions: MVE has no vector divide or reciprocal estimate, so
/// `1 / x` is four `VDIV.F32`).
mod lanes {
    use core::simd::Simd;
    use core::simd::prelude::*;

    use crate::activation::Activation;

    type F4 = Simd<f32, 4>;

    #[inline(always)]
    fn recip4(x: F4) -> F4 {
        F4::splat(1.0) / x
    }

    /// a * b + c (the macro's order).
    #[inline(always)]
    fn mul_add4(a: F4, b: F4, c: F4) -> F4 {
        super::fma4(c, a, b)
    }

    crate::vmath::vector_math!(F4, 4, self::mul_add4, self::recip4);
}

#[inline(never)]
fn activation(x: &mut [f32], act: Activation) {
    lanes::activation_inplace(x, act)
}

/// acc + a * b, lane by lane, one rounding (`VFMA.F32`).
#[inline(always)]
fn fma4(acc: f32x4, a: f32x4, b: f32x4) -> f32x4 {
    let mut acc = acc;
    // SAFETY: a register-only MVE instruction; this module is built only for Armv8.1-M
    // with MVE floating point (feature `mve`, `-C target-cpu=cortex-m55`).
    unsafe {
        asm!("vfma.f32 {acc}, {a}, {b}", acc = inout(qreg) acc, a = in(qreg) a, b = in(qreg) b,
             options(pure, nomem, nostack));
    }
    acc
}

/// A weight element that also loads as four f32 lanes.
trait Load4: Weight {
    fn load4(s: &[Self]) -> f32x4;
}

impl Load4 for f32 {
    #[inline(always)]
    fn load4(s: &[f32]) -> f32x4 {
        f32x4::from_slice(s)
    }
}

impl Load4 for half::f16 {
    #[inline(always)]
    fn load4(s: &[half::f16]) -> f32x4 {
        // LLVM makes the widening load (`VLDRH.U32`: four halfwords into 32-bit lanes).
        let h = Simd::<u16, 4>::from_slice(bytemuck::cast_slice(s));
        let v = f32x4::from_bits(h.cast::<u32>());
        let out: f32x4;
        // SAFETY: a register-only MVE instruction (see `fma4`): the bottom f16 of each
        // 32-bit lane to f32.
        unsafe {
            asm!("vcvtb.f32.f16 {o}, {v}", o = lateout(qreg) out, v = in(qreg) v, options(pure, nomem, nostack));
        }
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn matmul(
    x: &[f32],
    xs: usize,
    w: Src<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    super::armv7em::linear(bias, residual, act, activation, out, n, |out| match w {
        Src::F16(w) => run(x, xs, w, k, out, m, k, n),
        Src::F32(w) => run(x, xs, w, k, out, m, k, n),
    });
}

/// The patch embedding: this plug's matmul sums over gathered patches.
#[allow(clippy::too_many_arguments)]
fn patch_embed(
    image: &[f32],
    weight: Src<'_>,
    bias: Option<Src<'_>>,
    out: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    p: usize,
    dim: usize,
) {
    let shape = [c, h, w, p, dim];
    super::armv7em::patch_embed_with(image, weight, bias, out, shape, |x, xs, wt, ws, o, m, k, n| match wt {
        Src::F16(wt) => run(x, xs, wt, ws, o, m, k, n),
        Src::F32(wt) => run(x, xs, wt, ws, o, m, k, n),
    });
}

/// Splits a row into its four-lane body and its scalar tail.
#[inline(always)]
fn split4<T>(s: &[T]) -> (&[T], &[T]) {
    s.split_at(s.len() - s.len() % 4)
}

#[allow(clippy::too_many_arguments)]
fn run<W: Load4>(x: &[f32], xs: usize, w: &[W], ws: usize, out: &mut [f32], m: usize, k: usize, n: usize) {
    if k == 0 {
        return;
    }
    let xrow = |i: usize| &x[i * xs..][..k];
    let wrow = |j: usize| &w[j * ws..][..k];
    let mut i = 0;
    while i + 2 <= m {
        let (x0, x1) = (xrow(i), xrow(i + 1));
        let mut j = 0;
        while j + 2 <= n {
            let s = tile2x2(x0, x1, wrow(j), wrow(j + 1));
            out[i * n + j] += s[0];
            out[i * n + j + 1] += s[1];
            out[(i + 1) * n + j] += s[2];
            out[(i + 1) * n + j + 1] += s[3];
            j += 2;
        }
        if j < n {
            out[i * n + j] += dot(x0, wrow(j));
            out[(i + 1) * n + j] += dot(x1, wrow(j));
        }
        i += 2;
    }
    if i < m {
        let x0 = xrow(i);
        let mut j = 0;
        while j + 4 <= n {
            let s = tile1x4(x0, [wrow(j), wrow(j + 1), wrow(j + 2), wrow(j + 3)]);
            out[i * n + j..][..4].iter_mut().zip(&s).for_each(|(o, s)| *o += s);
            j += 4;
        }
        while j < n {
            out[i * n + j] += dot(x0, wrow(j));
            j += 1;
        }
    }
}

/// x0, x1 against w0, w1: [x0.w0, x0.w1, x1.w0, x1.w1].
#[inline(always)]
fn tile2x2<W: Load4>(x0: &[f32], x1: &[f32], w0: &[W], w1: &[W]) -> [f32; 4] {
    let z = f32x4::splat(0.0);
    let (mut a00, mut a01, mut a10, mut a11) = (z, z, z, z);
    let ((x0b, x0t), (x1b, x1t)) = (split4(x0), split4(x1));
    let ((w0b, w0t), (w1b, w1t)) = (split4(w0), split4(w1));
    let xs = x0b.chunks_exact(4).zip(x1b.chunks_exact(4));
    let ws = w0b.chunks_exact(4).zip(w1b.chunks_exact(4));
    for ((xa, xb), (wa, wb)) in xs.zip(ws) {
        let (xa, xb) = (f32x4::from_slice(xa), f32x4::from_slice(xb));
        let (wa, wb) = (W::load4(wa), W::load4(wb));
        a00 = fma4(a00, xa, wa);
        a01 = fma4(a01, xa, wb);
        a10 = fma4(a10, xb, wa);
        a11 = fma4(a11, xb, wb);
    }
    let mut s = [a00.reduce_sum(), a01.reduce_sum(), a10.reduce_sum(), a11.reduce_sum()];
    for (((&a, &b), &c), &d) in x0t.iter().zip(x1t).zip(w0t).zip(w1t) {
        let (c, d) = (c.widen(), d.widen());
        s[0] = fma(a, c, s[0]);
        s[1] = fma(a, d, s[1]);
        s[2] = fma(b, c, s[2]);
        s[3] = fma(b, d, s[3]);
    }
    s
}

/// One row against four weight rows.
#[inline(never)]
fn tile1x4<W: Load4>(x0: &[f32], w: [&[W]; 4]) -> [f32; 4] {
    let mut acc = [f32x4::splat(0.0); 4];
    let (xb, xt) = split4(x0);
    let (b0, t0) = split4(w[0]);
    let (b1, t1) = split4(w[1]);
    let (b2, t2) = split4(w[2]);
    let (b3, t3) = split4(w[3]);
    let ws = b0.chunks_exact(4).zip(b1.chunks_exact(4)).zip(b2.chunks_exact(4).zip(b3.chunks_exact(4)));
    for (xa, ((w0, w1), (w2, w3))) in xb.chunks_exact(4).zip(ws) {
        let xa = f32x4::from_slice(xa);
        acc[0] = fma4(acc[0], xa, W::load4(w0));
        acc[1] = fma4(acc[1], xa, W::load4(w1));
        acc[2] = fma4(acc[2], xa, W::load4(w2));
        acc[3] = fma4(acc[3], xa, W::load4(w3));
    }
    let mut s = acc.map(|a| a.reduce_sum());
    for (c, t) in [t0, t1, t2, t3].iter().enumerate() {
        s[c] = xt.iter().zip(t.iter()).fold(s[c], |acc, (&v, w)| fma(v, w.widen(), acc));
    }
    s
}

/// x . w, four lanes at a time.
#[inline(never)]
fn dot<W: Load4>(x: &[f32], w: &[W]) -> f32 {
    let mut acc = f32x4::splat(0.0);
    let ((xb, xt), (wb, wt)) = (split4(x), split4(w));
    for (xa, wa) in xb.chunks_exact(4).zip(wb.chunks_exact(4)) {
        acc = fma4(acc, f32x4::from_slice(xa), W::load4(wa));
    }
    xt.iter().zip(wt).fold(acc.reduce_sum(), |acc, (&v, w)| fma(v, w.widen(), acc))
}

fn attention(q: &[f32], k: &[f32], v: &[f32], key_mask: Option<&[f32]>, out: &mut [f32], s: &AttentionShape) {
    super::armv7em::streaming_attention(q, k, v, key_mask, out, s, dot::<f32>, scores4, pv);
}

/// q . k of four keys, each four-lane vector of q loaded once for the four.
#[inline(always)]
fn scores4(q: &[f32], k: [&[f32]; 4]) -> [f32; 4] {
    let mut acc = [f32x4::splat(0.0); 4];
    let (qb, qt) = split4(q);
    let n = qb.len();
    for (c, qc) in qb.chunks_exact(4).enumerate() {
        let qv = f32x4::from_slice(qc);
        for (a, kb) in acc.iter_mut().zip(&k) {
            *a = fma4(*a, qv, f32x4::from_slice(&kb[4 * c..4 * c + 4]));
        }
    }
    let mut s = acc.map(|a| a.reduce_sum());
    for (sb, kb) in s.iter_mut().zip(&k) {
        *sb = qt.iter().zip(&kb[n..]).fold(*sb, |acc, (&a, &b)| fma(a, b, acc));
    }
    s
}

/// o += Σ_b p[b] * v[b], sixteen dimensions of o in four `q` registers at a time.
#[inline(always)]
fn pv(o: &mut [f32], p: &[f32], vs: &[&[f32]]) {
    const C: usize = 16;
    let mut chunks = o.chunks_exact_mut(C);
    let mut c0 = 0;
    for oc in &mut chunks {
        let mut acc: [f32x4; 4] = core::array::from_fn(|l| f32x4::from_slice(&oc[4 * l..4 * l + 4]));
        for (&pb, vb) in p.iter().zip(vs) {
            let pv = f32x4::splat(pb);
            let vc = &vb[c0..c0 + C];
            for (l, a) in acc.iter_mut().enumerate() {
                *a = fma4(*a, pv, f32x4::from_slice(&vc[4 * l..4 * l + 4]));
            }
        }
        for (l, a) in acc.iter().enumerate() {
            oc[4 * l..4 * l + 4].copy_from_slice(a.as_array());
        }
        c0 += C;
    }
    // The last head_dim % 16 dimensions: the FPU plug's update.
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut tails: [&[f32]; KB] = [&[]; KB];
        tails.iter_mut().zip(vs).for_each(|(t, vb)| *t = &vb[c0..]);
        super::armv7em::pv(rest, p, &tails[..vs.len()]);
    }
}
