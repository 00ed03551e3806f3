//! The Cortex-M55 / M85 plug (Armv8.1-M with Helium, MVE with floating point): kernels on
//! the eight 128-bit `q` registers.
//!
//! LLVM lowers `core::simd` to MVE, but without fused multiply-adds (`Simd::mul_add`
//! needs `std`) and with the f16 widening done by integer bit tricks. These loops take
//! what matters from `asm!` and intrinsics: `VLDRH.U32` + `VCVTB.F32.F16` (four f16
//! weights widened to f32 lanes in two instructions), `VFMA.F32` on `q` registers
//! (`simd_fma`), `VFMA.F32 q, q, r` with one input broadcast from a core register, and
//! `VST40`..`VST43` to interleave four vectors; loads, pointers and loops are LLVM's.
//!
//! - matmul (4 rows or more): the weights of 8 output columns x 64 inputs widened once
//!   into a panel on the stack (interleaved by `VST4`), then tiles of 3 rows x 8 columns
//!   (six accumulators and two weight vectors: the eight `q` registers), one `VFMA` by a
//!   scalar of x per 4 columns and input. Fewer rows (decode): the sums run along k in
//!   2 x 2 and 1 x 4 tiles, reduced across lanes once at the end.
//! - patch embedding: that matmul over gathered patches.
//! - attention: the Cortex-M4F plug's streaming softmax, with its dot products, the
//!   block's scale and max, its exponentials and the `p * v` updates four lanes at a time.
//! - LayerNorm / RMSNorm: the sums and the scaling four lanes at a time.
//! - activations: the shared polynomials on four lanes.

use core::arch::asm;
use core::simd::prelude::*;
use core::simd::{Simd, f32x4};

use super::armv7em::{KB, Weight, fma};
use crate::activation::Activation;
use crate::attention::AttentionShape;
use crate::src::Src;
use crate::table::Kernels;

/// The table: the M4F plug's entries, with this module's matmul, patch embedding,
/// attention, activations and norms.
pub(crate) const fn plug(k: Kernels) -> Kernels {
    let mut k = super::armv7em::plug(k);
    k.matmul = matmul;
    k.patch_embed = patch_embed;
    k.attention = attention;
    k.activation = activation;
    k.layer_norm = layer_norm;
    k.rms_norm = rms_norm;
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

/// acc + a * b, lane by lane, one rounding (`VFMA.F32`; with a splat operand LLVM takes
/// it from a core register, `VFMA` / `VFMAS` with `Rm`).
#[inline(always)]
fn fma4(acc: f32x4, a: f32x4, b: f32x4) -> f32x4 {
    // SAFETY: `simd_fma` on f32 vectors of equal length; no memory is touched.
    unsafe { core::intrinsics::simd::simd_fma(a, b, acc) }
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
#[inline(never)] // a table entry: one call per op, one copy of its code
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
    super::armv7em::linear(bias, residual, act, activation, copy, out, n, |out| match w {
        Src::F16(w) => run(x, xs, w, k, out, m, k, n),
        Src::F32(w) => run(x, xs, w, k, out, m, k, n),
    });
}

/// dst = src widened, four lanes at a time (a bias into an output row).
fn copy(src: &Src<'_>, dst: &mut [f32]) {
    fn lanes<W: Load4>(src: &[W], dst: &mut [f32]) {
        let mut d = dst.chunks_exact_mut(4);
        let mut s = src.chunks_exact(4);
        for (d, s) in (&mut d).zip(&mut s) {
            d.copy_from_slice(W::load4(s).as_array());
        }
        d.into_remainder().iter_mut().zip(s.remainder()).for_each(|(d, s)| *d = s.widen());
    }
    match *src {
        Src::F32(s) => lanes(s, dst),
        Src::F16(s) => lanes(s, dst),
    }
}

/// The patch embedding: this plug's matmul sums over gathered patches.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // a table entry: one call per op, one copy of its code
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

/// out[i, :] += x[i, :] @ w^T (rows of x at stride xs, of w at stride ws, k inputs).
#[allow(clippy::too_many_arguments)]
fn run<W: Load4>(x: &[f32], xs: usize, w: &[W], ws: usize, out: &mut [f32], m: usize, k: usize, n: usize) {
    if k == 0 {
        return;
    }
    if m >= PANEL_MIN_ROWS {
        return gemm(x, xs, w, ws, out, m, k, n);
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

/// Rows from which the matmul widens its weights into panels. A panel costs three
/// instructions per four weights (`VLDRH.U32`, `VCVTB`, a quarter of a `VST4` group) once,
/// then about 11 instructions per 24 multiply-accumulates; the sums along k below cost
/// about 10 per 16 and a reduction per output, so panels pay from four rows on.
const PANEL_MIN_ROWS: usize = 4;
/// Panel depth (inputs): 8 columns x 64 inputs, 2 KiB of stack.
const KC: usize = 64;
/// Rows per register tile: 3 rows x 8 columns = six accumulators + two weight vectors,
/// the eight `q` registers.
const MR: usize = 3;

/// The matmul from panels: the weights of 8 output columns x 64 inputs widened once,
/// then tiles of 3 rows x 8 columns (`VFMA.F32 q, q, r`: a vector of 4 columns' weights
/// times one input of x, taken from a core register).
///
/// Panel layout, per group of 4 inputs: columns 0-3 as `[input][4]` (16 floats), then
/// columns 4-7 likewise; the last k % 4 inputs as `[8]` each. One pointer walks it.
#[allow(clippy::too_many_arguments)]
fn gemm<W: Load4>(x: &[f32], xs: usize, w: &[W], ws: usize, out: &mut [f32], m: usize, k: usize, n: usize) {
    let mut panel = [0f32; 8 * KC];
    for j0 in (0..n).step_by(8) {
        let nr = 8.min(n - j0);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            fill_panel(w, ws, j0, nr, k0, &mut panel[..8 * kc]);
            panel_rows(x, xs, &panel[..8 * kc], out, m, n, j0, k0);
        }
    }
}

/// The panel of columns j0..j0 + cols (zero beyond), inputs k0..k0 + len / 8, widened:
/// each column's 4-input vectors interleaved by `VST4` into `[input][4 columns]`.
#[inline(always)]
fn fill_panel<W: Load4>(w: &[W], ws: usize, j0: usize, cols: usize, k0: usize, panel: &mut [f32]) {
    let kc = panel.len() / 8;
    let body = kc - kc % 4;
    if cols == 8 {
        // Every panel but the last of a row count n % 8 != 0: no missing columns.
        let rows: [&[W]; 8] = core::array::from_fn(|c| &w[(j0 + c) * ws + k0..][..kc]);
        for (g, dst) in panel[..8 * body].chunks_exact_mut(32).enumerate() {
            let (lo, hi) = dst.split_at_mut(16);
            for (half, d) in [lo, hi].into_iter().enumerate() {
                // SAFETY: every row holds kc inputs (cut above) and 4 * g + 4 <= body <= kc.
                let q =
                    core::array::from_fn(|c| W::load4(unsafe { rows[4 * half + c].get_unchecked(4 * g..4 * g + 4) }));
                st4(d, q);
            }
        }
        for (t, dst) in panel[8 * body..].chunks_exact_mut(8).enumerate() {
            dst.iter_mut().zip(&rows).for_each(|(d, r)| *d = r[body + t].widen());
        }
        return;
    }
    let rows: [Option<&[W]>; 8] = core::array::from_fn(|c| (c < cols).then(|| &w[(j0 + c) * ws + k0..][..kc]));
    let z = f32x4::splat(0.0);
    for (g, dst) in panel[..8 * body].chunks_exact_mut(32).enumerate() {
        let (lo, hi) = dst.split_at_mut(16);
        for (half, d) in [lo, hi].into_iter().enumerate() {
            let q = core::array::from_fn(|c| rows[4 * half + c].map_or(z, |r| W::load4(&r[4 * g..4 * g + 4])));
            st4(d, q);
        }
    }
    for (t, dst) in panel[8 * body..].chunks_exact_mut(8).enumerate() {
        for (d, r) in dst.iter_mut().zip(&rows) {
            *d = r.map_or(0.0, |r| r[body + t].widen());
        }
    }
}

/// dst[4 * i + j] = q[j][i]: the four vectors interleaved (`VST40`..`VST43`).
#[inline(always)]
fn st4(dst: &mut [f32], q: [f32x4; 4]) {
    let dst: &mut [f32; 16] = dst.try_into().expect("16 lanes");
    // SAFETY: the four stores write exactly the 64 bytes of `dst`; MVE is present (see
    // `fma4`).
    unsafe {
        asm!(
            "vst40.32 {{q0, q1, q2, q3}}, [{p}]",
            "vst41.32 {{q0, q1, q2, q3}}, [{p}]",
            "vst42.32 {{q0, q1, q2, q3}}, [{p}]",
            "vst43.32 {{q0, q1, q2, q3}}, [{p}]",
            p = in(reg) dst.as_mut_ptr(),
            in("q0") q[0], in("q1") q[1], in("q2") q[2], in("q3") q[3],
            options(nostack, preserves_flags),
        );
    }
}

/// acc + w * x, the one input broadcast from a core register (`VFMA.F32 Qda, Qn, Rm`).
#[inline(always)]
fn fmas(acc: f32x4, w: f32x4, x: u32) -> f32x4 {
    let mut acc = acc;
    // SAFETY: a register-only MVE instruction (see `fma4`).
    unsafe {
        asm!("vfma.f32 {acc}, {w}, {x}", acc = inout(qreg) acc, w = in(qreg) w, x = in(reg) x,
             options(pure, nomem, nostack));
    }
    acc
}

/// Every row tile of x against one panel (one copy for f16 and f32 weights); the sums
/// accumulate onto out's rows, loaded into the accumulators and stored back once per tile.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn panel_rows(x: &[f32], xs: usize, panel: &[f32], out: &mut [f32], m: usize, n: usize, j0: usize, k0: usize) {
    let kc = panel.len() / 8;
    let nr = 8.min(n - j0);
    let bits: &[u32] = bytemuck::cast_slice(x);
    let xrow = |i: usize| &bits[i * xs + k0..][..kc];
    let mut i = 0;
    while i + MR <= m {
        with_rows::<MR>(out, i, n, j0, nr, |acc| tile(core::array::from_fn(|r| xrow(i + r)), panel, acc));
        i += MR;
    }
    match m - i {
        2 => with_rows::<2>(out, i, n, j0, nr, |acc| tile([xrow(i), xrow(i + 1)], panel, acc)),
        1 => with_rows::<1>(out, i, n, j0, nr, |acc| tile([xrow(i)], panel, acc)),
        _ => {}
    }
}

/// Runs `f` on out[i..i + R, j0..j0 + nr] as R x 2 vectors (zero past nr), then stores
/// them back.
#[inline(always)]
fn with_rows<const R: usize>(
    out: &mut [f32],
    i: usize,
    n: usize,
    j0: usize,
    nr: usize,
    f: impl FnOnce(&mut [[f32x4; 2]; R]),
) {
    let mut acc = [[f32x4::splat(0.0); 2]; R];
    for (r, a) in acc.iter_mut().enumerate() {
        let o = &out[(i + r) * n + j0..][..nr];
        if nr == 8 {
            *a = [f32x4::from_slice(&o[..4]), f32x4::from_slice(&o[4..])];
        } else {
            let mut t = [0f32; 8];
            t[..nr].copy_from_slice(o);
            *a = [f32x4::from_slice(&t[..4]), f32x4::from_slice(&t[4..])];
        }
    }
    f(&mut acc);
    for (r, a) in acc.iter().enumerate() {
        let o = &mut out[(i + r) * n + j0..][..nr];
        if nr == 8 {
            o[..4].copy_from_slice(a[0].as_array());
            o[4..].copy_from_slice(a[1].as_array());
        } else {
            let mut t = [0f32; 8];
            t[..4].copy_from_slice(a[0].as_array());
            t[4..].copy_from_slice(a[1].as_array());
            o.copy_from_slice(&t[..nr]);
        }
    }
}

/// R rows x 8 columns over one panel: per input, two weight vectors, R inputs of x and
/// 2R fused multiply-adds; inputs four at a time.
#[inline(always)]
fn tile<const R: usize>(x: [&[u32]; R], panel: &[f32], acc: &mut [[f32x4; 2]; R]) {
    let kc = panel.len() / 8;
    let body = kc / 4;
    debug_assert_eq!(panel.len(), 8 * kc);
    let x = x.map(|r| &r[..kc]);
    let mut a = *acc;
    for (g, pg) in panel[..32 * body].chunks_exact(32).enumerate() {
        for t in [0, 2] {
            // SAFETY: x[r] holds kc = panel.len() / 8 inputs (cut above) and
            // 4 * g + t + 1 < 4 * body <= kc; u32 alignment is all `LDRD` needs. (Checked
            // indexing kept 13 bounds checks per four inputs in this loop.)
            let v: [[u32; 2]; R] =
                core::array::from_fn(|r| unsafe { x[r].as_ptr().add(4 * g + t).cast::<[u32; 2]>().read() });
            for (u, tt) in [t, t + 1].into_iter().enumerate() {
                let (lo, hi) =
                    (f32x4::from_slice(&pg[4 * tt..4 * tt + 4]), f32x4::from_slice(&pg[16 + 4 * tt..20 + 4 * tt]));
                for r in 0..R {
                    a[r][0] = fmas(a[r][0], lo, v[r][u]);
                    a[r][1] = fmas(a[r][1], hi, v[r][u]);
                }
            }
        }
    }
    for (t, pt) in panel[32 * body..].chunks_exact(8).enumerate() {
        let (lo, hi) = (f32x4::from_slice(&pt[..4]), f32x4::from_slice(&pt[4..]));
        for r in 0..R {
            let v = x[r][4 * body + t];
            a[r][0] = fmas(a[r][0], lo, v);
            a[r][1] = fmas(a[r][1], hi, v);
        }
    }
    *acc = a;
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

#[inline(never)] // a table entry: one call per op, one copy of its code
fn attention(q: &[f32], k: &[f32], v: &[f32], key_mask: Option<&[f32]>, out: &mut [f32], s: &AttentionShape) {
    super::armv7em::streaming_attention(q, k, v, key_mask, out, s, dot::<f32>, scores4, pv, scale_max, exps);
}

/// sc[b] *= scale over a block; returns the block's max (a whole block four lanes at a
/// time, `VMUL` and `VMAXNMV`).
#[inline(always)]
fn scale_max(sc: &mut [f32; KB], nb: usize, scale: f32) -> f32 {
    const { assert!(KB == 8) }
    if nb < KB {
        return super::armv7em::scale_max(sc, nb, scale);
    }
    let f = f32x4::splat(scale);
    let (lo, hi) = sc.split_at_mut(4);
    let (a, b) = (f32x4::from_slice(lo) * f, f32x4::from_slice(hi) * f);
    lo.copy_from_slice(a.as_array());
    hi.copy_from_slice(b.as_array());
    a.simd_max(b).reduce_max()
}

/// sc[b] = exp(sc[b] - max) over a block, four lanes at a time; returns the sum of the
/// first nb (the lanes past nb are computed and ignored; a whole block is summed in
/// lanes).
#[inline(always)]
fn exps(sc: &mut [f32; KB], nb: usize, max: f32) -> f32 {
    const { assert!(KB == 8) }
    let m = f32x4::splat(max);
    let (lo, hi) = sc.split_at_mut(4);
    let a = lanes::exp(f32x4::from_slice(lo) - m);
    lo.copy_from_slice(a.as_array());
    if nb > 4 {
        let b = lanes::exp(f32x4::from_slice(&hi[..4]) - m);
        hi[..4].copy_from_slice(b.as_array());
        if nb == KB {
            return (a + b).reduce_sum();
        }
    }
    sc[..nb].iter().sum()
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

/// o += Σ_b p[b] * v[b], sixteen dimensions of o in four `q` registers at a time, then
/// eight in two and four in one (head sizes such as 12, 24 or 40), then the FPU plug's.
#[inline(always)]
fn pv(o: &mut [f32], p: &[f32], vs: &[&[f32]]) {
    let len = o.len();
    let mut c0 = 0;
    while c0 + 16 <= len {
        pv_q::<4>(&mut o[c0..c0 + 16], p, vs, c0);
        c0 += 16;
    }
    if c0 + 8 <= len {
        pv_q::<2>(&mut o[c0..c0 + 8], p, vs, c0);
        c0 += 8;
    }
    if c0 + 4 <= len {
        pv_q::<1>(&mut o[c0..c0 + 4], p, vs, c0);
        c0 += 4;
    }
    if c0 < len {
        let mut tails: [&[f32]; KB] = [&[]; KB];
        tails.iter_mut().zip(vs).for_each(|(t, vb)| *t = &vb[c0..]);
        super::armv7em::pv(&mut o[c0..], p, &tails[..vs.len()]);
    }
}

/// o[..4 Q] += Σ_b p[b] * v[b][c0..c0 + 4 Q], the sums in Q `q` registers.
#[inline(always)]
fn pv_q<const Q: usize>(oc: &mut [f32], p: &[f32], vs: &[&[f32]], c0: usize) {
    let mut acc: [f32x4; Q] = core::array::from_fn(|l| f32x4::from_slice(&oc[4 * l..4 * l + 4]));
    for (&pb, vb) in p.iter().zip(vs) {
        let pv = f32x4::splat(pb);
        let vc = &vb[c0..c0 + 4 * Q];
        for (l, a) in acc.iter_mut().enumerate() {
            *a = fma4(*a, pv, f32x4::from_slice(&vc[4 * l..4 * l + 4]));
        }
    }
    for (l, a) in acc.iter().enumerate() {
        oc[4 * l..4 * l + 4].copy_from_slice(a.as_array());
    }
}

#[inline(never)] // a table entry: one call per op, one copy of its code
fn layer_norm(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], dim: usize, eps: f32) {
    norm(x, gamma, beta, out, dim, eps, false)
}

#[inline(never)] // a table entry: one call per op, one copy of its code
fn rms_norm(x: &[f32], gamma: Src<'_>, out: &mut [f32], dim: usize, eps: f32) {
    norm(x, gamma, None, out, dim, eps, true)
}

/// Σ f(acc, x) over a row, on two four-lane accumulators, then the tail (`g`).
#[inline(always)]
fn row_sum(x: &[f32], f: impl Fn(f32x4, f32x4) -> f32x4, g: impl Fn(f32, f32) -> f32) -> f32 {
    let (body, tail) = split4(x);
    let mut acc = [f32x4::splat(0.0); 2];
    let (pairs, odd) = body.as_chunks::<8>();
    for c in pairs {
        acc[0] = f(acc[0], f32x4::from_slice(&c[..4]));
        acc[1] = f(acc[1], f32x4::from_slice(&c[4..]));
    }
    if !odd.is_empty() {
        acc[0] = f(acc[0], f32x4::from_slice(odd));
    }
    tail.iter().fold((acc[0] + acc[1]).reduce_sum(), |a, &v| g(a, v))
}

/// LayerNorm (`rms = false`: mean, then the variance around it, as the reference) and
/// RMSNorm (`rms = true`, no beta) four lanes at a time: sums by `VADD` / `VFMA`, then
/// out = (x - mean) * (1 / sqrt(var + eps)) * gamma + beta, gamma and beta widened by
/// `VLDRH.U32` + `VCVTB` when f16. One copy per weight dtype; a gamma and beta of two
/// dtypes (which the converter does not write) take the reference.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn norm(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], dim: usize, eps: f32, rms: bool) {
    match (gamma, beta) {
        (Src::F16(g), None) => norm_rows(x, g, None, out, dim, eps, rms),
        (Src::F16(g), Some(Src::F16(b))) => norm_rows(x, g, Some(b), out, dim, eps, rms),
        (Src::F32(g), None) => norm_rows(x, g, None, out, dim, eps, rms),
        (Src::F32(g), Some(Src::F32(b))) => norm_rows(x, g, Some(b), out, dim, eps, rms),
        // (RMSNorm has no beta: always one of the arms above.)
        _ => crate::norm::ref_layer_norm(x, gamma, beta, out, dim, eps),
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn norm_rows<G: Load4>(x: &[f32], gamma: &[G], beta: Option<&[G]>, out: &mut [f32], dim: usize, eps: f32, rms: bool) {
    let n = dim as f32;
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let (shift, var) = if rms {
            (0.0, row_sum(xr, |a, v| fma4(a, v, v), |a, v| fma(v, v, a)) / n)
        } else {
            let mean = row_sum(xr, |a, v| a + v, |a, v| a + v) / n;
            let m = f32x4::splat(mean);
            let var = row_sum(
                xr,
                |a, v| {
                    let d = v - m;
                    fma4(a, d, d)
                },
                |a, v| fma(v - mean, v - mean, a),
            );
            (mean, var / n)
        };
        let inv = 1.0 / crate::math::sqrtf(var + eps);
        let (sv, iv) = (f32x4::splat(shift), f32x4::splat(inv));
        let body = dim - dim % 4;
        for d in (0..body).step_by(4) {
            let t = (f32x4::from_slice(&xr[d..d + 4]) - sv) * iv;
            let g = G::load4(&gamma[d..d + 4]);
            let y = match beta {
                Some(b) => fma4(G::load4(&b[d..d + 4]), t, g),
                None => t * g,
            };
            or[d..d + 4].copy_from_slice(y.as_array());
        }
        for d in body..dim {
            let t = (xr[d] - shift) * inv;
            or[d] = match beta {
                Some(b) => fma(t, gamma[d].widen(), b[d].widen()),
                None => t * gamma[d].widen(),
            };
        }
    }
}
