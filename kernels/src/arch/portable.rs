//! The portable plug: the `core::simd` kernels of `crate::simd` (eight f32 lanes) as table
//! entries, for CPUs without a plug of their own (aarch64, Cortex-M55 with Helium).

use crate::simd;
use crate::src::Src;
use crate::table::Kernels;

fn layer_norm(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], dim: usize, eps: f32) {
    simd::norm::portable(x, gamma, beta, out, dim, eps, false)
}

fn rms_norm(x: &[f32], gamma: Src<'_>, out: &mut [f32], dim: usize, eps: f32) {
    simd::norm::portable(x, gamma, None, out, dim, eps, true)
}

/// The table.
pub(crate) const fn plug(mut k: Kernels) -> Kernels {
    k.name = "core::simd, portable (8 lanes)";
    k.matmul = simd::matmul::portable;
    k.attention = simd::attention::portable;
    k.patch_embed = simd::patch::portable;
    k.layer_norm = layer_norm;
    k.rms_norm = rms_norm;
    k.selective_scan = simd::scan::portable;
    k
}
