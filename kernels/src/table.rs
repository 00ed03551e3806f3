//! The kernel table: one function per op family, chosen once per process.
//!
//! In the manner of tract-linalg: [`Kernels::generic`] holds the scalar references, and
//! each architecture's plug (`crate::arch::*::plug`) returns a copy with the entries it
//! does better replaced. [`active`] picks the best table the CPU runs the first time a
//! kernel is called (run-time detection on x86-64 with `std`, compile-time target
//! features elsewhere) and keeps it; [`crate::force_scalar`] and [`crate::force_avx2`]
//! switch tables for the whole process.
//!
//! Entries are called by the op families' front functions (`matmul::matmul`,
//! `attention::attention`, ...), which first check that every length is consistent: an
//! entry may index directly and may assume the shape contract of its `ref_*` kernel.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::activation::Activation;
use crate::attention::AttentionShape;
use crate::src::Src;

/// `matmul::ref_matmul_strided`'s signature: x (rows `x_stride` apart), w `[n, k]`, bias,
/// residual, activation, out, m, k, n.
pub type MatmulFn =
    fn(&[f32], usize, Src<'_>, Option<Src<'_>>, Option<&[f32]>, Activation, &mut [f32], usize, usize, usize);
/// `quant::ref_matmul_q`'s signature: x (rows `x_stride` apart), quantized w `[n, k]`,
/// bias, residual, activation, out, m, k, n.
pub type MatmulQFn = fn(
    &[f32],
    usize,
    crate::quant::QWeights<'_>,
    Option<Src<'_>>,
    Option<&[f32]>,
    Activation,
    &mut [f32],
    usize,
    usize,
    usize,
);
/// `attention::ref_attention`'s signature.
pub type AttentionFn = fn(&[f32], &[f32], &[f32], Option<&[f32]>, &mut [f32], &AttentionShape);
/// `norm::ref_layer_norm`'s signature: x, gamma, beta, out, dim, eps.
pub type LayerNormFn = fn(&[f32], Src<'_>, Option<Src<'_>>, &mut [f32], usize, f32);
/// `norm::ref_rms_norm`'s signature: x, gamma, out, dim, eps.
pub type RmsNormFn = fn(&[f32], Src<'_>, &mut [f32], usize, f32);
/// `patch::ref_patch_embed`'s signature: image, weight, bias, out, c, h, w, patch, dim.
pub type PatchFn = fn(&[f32], Src<'_>, Option<Src<'_>>, &mut [f32], usize, usize, usize, usize, usize);
/// `scan::ref_selective_scan`'s signature: x, dt, bc, z, a_d, state, out, t, e, n.
pub type ScanFn = fn(&[f32], &[f32], &[f32], &[f32], Src<'_>, &mut [f32], &mut [f32], usize, usize, usize);
/// `activation::ref_activation_inplace`'s signature.
pub type ActivationFn = fn(&mut [f32], Activation);
/// `rope::ref_rope_inplace`'s signature: x, rows, row_stride, heads, head_dim, inv_freq, pos0.
pub type RopeFn = fn(&mut [f32], usize, usize, usize, usize, &[f32], usize);

/// One kernel per op family (those with more than one implementation).
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// What runs, e.g. for benchmark reports.
    pub name: &'static str,
    pub(crate) matmul: MatmulFn,
    pub(crate) matmul_q: MatmulQFn,
    pub(crate) attention: AttentionFn,
    pub(crate) layer_norm: LayerNormFn,
    pub(crate) rms_norm: RmsNormFn,
    pub(crate) patch_embed: PatchFn,
    pub(crate) selective_scan: ScanFn,
    pub(crate) activation: ActivationFn,
    pub(crate) rope: RopeFn,
}

impl Kernels {
    /// The scalar references: correct everywhere, the entries every plug starts from.
    pub const fn generic() -> Kernels {
        Kernels {
            name: "scalar reference",
            matmul: crate::matmul::ref_matmul_strided,
            matmul_q: crate::quant::ref_matmul_q,
            attention: crate::attention::ref_attention,
            layer_norm: crate::norm::ref_layer_norm,
            rms_norm: crate::norm::ref_rms_norm,
            patch_embed: crate::patch::ref_patch_embed,
            selective_scan: crate::scan::ref_selective_scan,
            activation: crate::activation::ref_activation_inplace,
            rope: crate::rope::ref_rope_inplace,
        }
    }
}

/// Whether this is a microcontroller build (`cfg(mote_board)`), whose table is fixed at
/// compile time ([`active`]).
pub(crate) const BOARD: bool = cfg!(mote_board);

/// A table of this build and whether the CPU runs it.
pub(crate) type Candidate = (&'static Kernels, fn() -> bool);

static GENERIC: Kernels = Kernels::generic();

/// The generic table.
pub(crate) fn generic() -> &'static Kernels {
    &GENERIC
}

/// The tables this build has, best first, each with whether this CPU runs it (the
/// generic table is not among them: it is the fallback).
fn candidates() -> &'static [Candidate] {
    #[cfg(feature = "simd")]
    {
        crate::arch::TABLES
    }
    #[cfg(not(feature = "simd"))]
    {
        &[]
    }
}

#[allow(dead_code)]
pub(crate) fn always() -> bool {
    true
}

/// Every table of this build that this CPU can run (for tests and benchmarks), the
/// generic one first.
pub fn available() -> impl Iterator<Item = &'static Kernels> {
    #[cfg(feature = "simd")]
    let testable = crate::arch::TESTABLE;
    #[cfg(not(feature = "simd"))]
    let testable: &[&Kernels] = &[];
    core::iter::once(&GENERIC)
        .chain(candidates().iter().filter(|(_, ok)| ok()).map(|(t, _)| *t))
        .chain(testable.iter().copied())
}

const UNSET: u8 = u8::MAX;
/// Index into [`candidates`] (or `GENERIC_CHOICE`) of the active table.
static CHOICE: AtomicU8 = AtomicU8::new(UNSET);
#[cfg(not(mote_board))]
const GENERIC_CHOICE: u8 = u8::MAX - 1;
/// Set by [`crate::force_scalar`] / [`crate::force_avx2`].
static FORCED: AtomicU8 = AtomicU8::new(0);
pub(crate) const FORCE_SCALAR: u8 = 1;
pub(crate) const FORCE_NARROW: u8 = 2;

/// Sets (or clears) a process-wide restriction and makes the next call choose again.
pub(crate) fn force(bit: u8, on: bool) {
    if on {
        FORCED.fetch_or(bit, Ordering::Relaxed);
    } else {
        FORCED.fetch_and(!bit, Ordering::Relaxed);
    }
    CHOICE.store(UNSET, Ordering::Relaxed);
}

#[cfg_attr(mote_board, allow(dead_code))] // the x86-64 plugs ask
pub(crate) fn forced(bit: u8) -> bool {
    FORCED.load(Ordering::Relaxed) & bit != 0
}

#[cfg(not(mote_board))]
fn choose() -> u8 {
    if forced(FORCE_SCALAR) {
        return GENERIC_CHOICE;
    }
    candidates().iter().position(|(_, ok)| ok()).map_or(GENERIC_CHOICE, |i| i as u8)
}

/// The table in use: chosen on the first call (and again after a `force_*` call).
#[cfg(not(mote_board))]
#[inline]
pub fn active() -> &'static Kernels {
    let mut c = CHOICE.load(Ordering::Relaxed);
    if c == UNSET {
        c = choose();
        CHOICE.store(c, Ordering::Relaxed);
    }
    candidates().get(usize::from(c)).map_or(&GENERIC, |(t, _)| *t)
}

/// The table in use on a microcontroller (`cfg(mote_board)`: `target_os = "none"` on Arm
/// with `simd`, see `build.rs`): the one table the target features select, fixed at
/// compile time. Every entry call then folds into a direct call, and the entries this
/// build never calls (the scalar references the plug replaced, the norms of families that
/// are not compiled in) are dropped by the linker: about 12 KB of flash on the M4.
/// `force_scalar` has no effect there.
#[cfg(mote_board)]
#[inline(always)]
pub fn active() -> &'static Kernels {
    crate::arch::BOARD
}
