//! The plugs of the kernel table ([`crate::table`]), one module per architecture, and
//! the list of tables this build carries, best first.
//!
//! - `x86_64`: AVX2 + FMA + F16C, and AVX-512F (chosen at run time with `std`).
//! - `armv7em`: Cortex-M4F / M7, scalar FPU kernels. Plain Rust, so it is built and
//!   tested on every host too.
//! - `mve`: Cortex-M55 / M85 (Helium), on top of `armv7em` and `crate::portable`.
//! - `crate::portable`: the `core::simd` kernels for other CPUs (aarch64).
//!
//! The SIMD vocabulary they share is `crate::simd`; the scalar references are the op
//! families' `ref_*` functions (`crate::matmul`, `crate::attention`, ...).

pub(crate) mod armv7em;
#[cfg(all(target_arch = "arm", feature = "mve"))]
pub(crate) mod mve;
#[cfg(all(not(target_arch = "x86_64"), any(not(target_arch = "arm"), feature = "mve")))]
use crate::portable;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

use crate::table::{Candidate, Kernels};

#[cfg(target_arch = "x86_64")]
static AVX512: Kernels = x86_64::plug_avx512(Kernels::generic());
#[cfg(target_arch = "x86_64")]
static AVX2: Kernels = x86_64::plug_avx2(Kernels::generic());
/// The Cortex-M4F / M7 table (on every target: the host tests run it).
pub(crate) static ARMV7EM: Kernels = armv7em::plug(Kernels::generic());
#[cfg(not(any(target_arch = "x86_64", target_arch = "arm")))]
static PORTABLE: Kernels = portable::plug(Kernels::generic());

/// The tables this build may choose from, best first, each with whether the CPU runs it.
#[cfg(target_arch = "x86_64")]
pub(crate) static TABLES: &[Candidate] = &[(&AVX512, x86_64::avx512), (&AVX2, x86_64::avx2)];

/// Armv7E-M / Armv8-M Mainline with an FPU and no Helium: the FPU kernels.
#[cfg(all(target_arch = "arm", not(feature = "mve")))]
pub(crate) static TABLES: &[Candidate] = &[(&ARMV7EM, crate::table::always)];

/// Cortex-M55 / M85 (Helium): per op, whichever kernels took fewer instructions on the
/// emulated M55 (`cargo xtask qemu --board m55 --profile`, digits ViT, per image):
/// the MVE matmul, patch embedding, attention, activations and norms (`mve`; LayerNorm
/// 45 k -> 37 k against `core::simd`'s), the FPU RoPE (`armv7em`), the `core::simd`
/// selective scan.
#[cfg(all(target_arch = "arm", feature = "mve"))]
static MVE: Kernels = {
    let mut k = mve::plug(portable::plug(Kernels::generic()));
    k.name = "Armv8.1-M MVE (Cortex-M55)";
    // The core::simd scan: 183 k instructions per mamba_a token against the FPU scan's 206 k.
    k.selective_scan = crate::portable::scan::portable;
    // The core::simd int8 / int4 matmul: `cargo xtask ktest --board m55` matmul_q 71.6 M
    // instructions against the FPU kernels' 74.0 M (the reference's sums included in both).
    k.matmul_q = crate::portable::quant::portable;
    k
};

/// Cortex-M55 / M85 (Helium): the table above.
#[cfg(all(target_arch = "arm", feature = "mve"))]
pub(crate) static TABLES: &[Candidate] = &[(&MVE, crate::table::always)];

/// The table of a microcontroller build, fixed at compile time ([`crate::table::active`]).
#[cfg(all(mote_board, feature = "mve"))]
pub(crate) static BOARD: &Kernels = &MVE;
#[cfg(all(mote_board, not(feature = "mve")))]
pub(crate) static BOARD: &Kernels = &ARMV7EM;

/// Other CPUs (aarch64, ...): the portable `core::simd` kernels.
#[cfg(not(any(target_arch = "x86_64", target_arch = "arm")))]
pub(crate) static TABLES: &[Candidate] = &[(&PORTABLE, crate::table::always)];

/// Tables that run on this CPU without being chosen here, so tests and benchmarks reach
/// them: the Cortex-M4F / M7 kernels are plain Rust and run bit for bit on any host.
#[cfg(not(all(target_arch = "arm", not(feature = "mve"))))]
pub(crate) static TESTABLE: &[&Kernels] = &[&ARMV7EM];
#[cfg(all(target_arch = "arm", not(feature = "mve")))]
pub(crate) static TESTABLE: &[&Kernels] = &[];
