//! The x86-64 plugs: AVX2 + FMA + F16C, and AVX-512F on top of it: the x86-only kernels
//! (the packed GEMMs [`gemm`] / [`gemm512`], the tiled attention [`flash`] / [`attn512`])
//! and the table entries, which compile the `crate::portable` kernels with the instruction
//! set enabled (those dispatch to the GEMM and the tiled attention for large shapes).
//!
//! Each entry is reached only through a table that [`avx2`] / [`avx512`] said this CPU
//! runs, and only with lengths the op's front function checked.

pub(crate) mod attn512;
pub(crate) mod flash;
pub(crate) mod gemm;
pub(crate) mod gemm512;

use crate::activation::Activation;
use crate::attention::AttentionShape;
use crate::portable;
use crate::src::Src;
use crate::table::Kernels;

/// Whether this CPU has AVX2, FMA and F16C. Cached after the first call.
pub(crate) fn avx2() -> bool {
    #[cfg(any(test, feature = "std"))]
    {
        use std::sync::atomic::{AtomicU8, Ordering};
        static CACHE: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 no, 2 yes
        match CACHE.load(Ordering::Relaxed) {
            2 => true,
            1 => false,
            _ => {
                let ok = std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("f16c");
                CACHE.store(if ok { 2 } else { 1 }, Ordering::Relaxed);
                ok
            }
        }
    }
    #[cfg(not(any(test, feature = "std")))]
    {
        cfg!(all(target_feature = "avx2", target_feature = "fma", target_feature = "f16c"))
    }
}

/// Whether this CPU has AVX-512F on top of what [`avx2`] checks. Cached after the first
/// call.
pub(crate) fn has_avx512f() -> bool {
    #[cfg(any(test, feature = "std"))]
    {
        use std::sync::atomic::{AtomicU8, Ordering};
        static CACHE: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 no, 2 yes
        match CACHE.load(Ordering::Relaxed) {
            2 => true,
            1 => false,
            _ => {
                let ok = std::is_x86_feature_detected!("avx512f") && avx2();
                CACHE.store(if ok { 2 } else { 1 }, Ordering::Relaxed);
                ok
            }
        }
    }
    #[cfg(not(any(test, feature = "std")))]
    {
        cfg!(target_feature = "avx512f") && avx2()
    }
}

/// Whether the AVX-512 table may run: this CPU has AVX-512F on top of AVX2, FMA and
/// F16C, and [`crate::force_avx2`] does not hold.
pub(crate) fn avx512() -> bool {
    has_avx512f() && !crate::table::forced(crate::table::FORCE_NARROW)
}

/// The entry functions of one instruction set: `$isa` names the `portable::*` functions.
macro_rules! entries {
    ($m:ident, $isa:ident, $patch:ident, $attn:ident) => {
        mod $m {
            use super::*;

            #[allow(clippy::too_many_arguments)]
            pub(super) fn matmul(
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
                // SAFETY: this table is chosen only when the CPU has the instruction set
                // (`super::avx2` / `super::avx512`); the front function checked the lengths.
                unsafe { portable::matmul::$isa(x, xs, w, bias, residual, act, out, m, k, n) }
            }

            #[allow(clippy::too_many_arguments)]
            pub(super) fn matmul_q(
                x: &[f32],
                xs: usize,
                w: crate::quant::QWeights<'_>,
                bias: Option<Src<'_>>,
                residual: Option<&[f32]>,
                act: Activation,
                out: &mut [f32],
                m: usize,
                k: usize,
                n: usize,
            ) {
                // SAFETY: as for `matmul`.
                unsafe { portable::quant::$isa(x, xs, w, bias, residual, act, out, m, k, n) }
            }

            pub(super) fn attention(
                q: &[f32],
                k: &[f32],
                v: &[f32],
                key_mask: Option<&[f32]>,
                out: &mut [f32],
                s: &AttentionShape,
            ) {
                // SAFETY: as for `matmul`.
                unsafe { portable::attention::$attn(q, k, v, key_mask, out, s) }
            }

            #[allow(clippy::too_many_arguments)]
            pub(super) fn patch_embed(
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
                // SAFETY: as for `matmul`.
                unsafe { portable::patch::$patch(image, weight, bias, out, c, h, w, p, dim) }
            }
        }
    };
}

entries!(narrow, avx2, avx2, avx2);
entries!(wide, avx512, avx512, avx512);

fn layer_norm(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], dim: usize, eps: f32) {
    // SAFETY: both x86-64 tables are chosen only on a CPU with AVX2, FMA and F16C; the
    // front function checked the lengths.
    unsafe { portable::norm::avx2(x, gamma, beta, out, dim, eps, false) }
}

fn rms_norm(x: &[f32], gamma: Src<'_>, out: &mut [f32], dim: usize, eps: f32) {
    // SAFETY: as for `layer_norm`.
    unsafe { portable::norm::avx2(x, gamma, None, out, dim, eps, true) }
}

#[allow(clippy::too_many_arguments)]
fn selective_scan(
    x: &[f32],
    dt: &[f32],
    bc: &[f32],
    z: &[f32],
    a_d: Src<'_>,
    state: &mut [f32],
    out: &mut [f32],
    t: usize,
    e: usize,
    n: usize,
) {
    // SAFETY: as for `layer_norm`.
    unsafe { portable::scan::avx2(x, dt, bc, z, a_d, state, out, t, e, n) }
}

/// The AVX2 table.
pub(crate) const fn plug_avx2(mut k: Kernels) -> Kernels {
    k.name = "x86-64 AVX2 + FMA + F16C";
    k.matmul = narrow::matmul;
    k.matmul_q = narrow::matmul_q;
    k.attention = narrow::attention;
    k.patch_embed = narrow::patch_embed;
    k.layer_norm = layer_norm;
    k.rms_norm = rms_norm;
    k.selective_scan = selective_scan;
    k
}

/// The AVX-512 table: the AVX2 one with the 16-lane GEMM, attention and patch embedding.
pub(crate) const fn plug_avx512(k: Kernels) -> Kernels {
    let mut k = plug_avx2(k);
    k.name = "x86-64 AVX2 + FMA + F16C + AVX-512F";
    k.matmul = wide::matmul;
    k.matmul_q = wide::matmul_q;
    k.attention = wide::attention;
    k.patch_embed = wide::patch_embed;
    k
}
