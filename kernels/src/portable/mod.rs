//! The portable kernels: `core::simd` over the vocabulary of [`crate::simd`] (eight f32
//! lanes), and their plug, the table for CPUs without one of their own (aarch64), which
//! the Cortex-M55 plug starts from. The x86-64 plugs compile the same kernels with AVX2 /
//! AVX-512 enabled (`crate::arch::x86_64`). Each kernel is tested against its `ref_*`
//! counterpart.

pub(crate) mod attention;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod patch;
pub(crate) mod quant;
pub(crate) mod scan;

#[cfg(not(target_arch = "x86_64"))]
use crate::src::Src;
#[cfg(not(target_arch = "x86_64"))]
use crate::table::Kernels;

#[cfg(not(target_arch = "x86_64"))]
fn layer_norm(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], dim: usize, eps: f32) {
    norm::portable(x, gamma, beta, out, dim, eps, false)
}

#[cfg(not(target_arch = "x86_64"))]
fn rms_norm(x: &[f32], gamma: Src<'_>, out: &mut [f32], dim: usize, eps: f32) {
    norm::portable(x, gamma, None, out, dim, eps, true)
}

/// The table.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const fn plug(mut k: Kernels) -> Kernels {
    k.name = "core::simd, portable (8 lanes)";
    k.matmul = matmul::portable;
    k.matmul_q = quant::portable;
    k.attention = attention::portable;
    k.patch_embed = patch::portable;
    k.layer_norm = layer_norm;
    k.rms_norm = rms_norm;
    k.selective_scan = scan::portable;
    k
}
