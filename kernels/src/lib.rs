//! Mote's compute kernels: one module per op family.
//!
//! Every op has a scalar `ref_*` kernel that is always compiled and defines correct
//! behaviour. Fast paths (`core::simd`, feature `simd`) sit beside them and are tested
//! against them. Activations and accumulation are f32; weights are f16 or f32 ([`Src`]).
//!
//! Kernels do not validate shapes: the runtime validates every shape once, when a model
//! is parsed, and then calls kernels with slices of exactly the documented lengths.
//! Kernels never index past a slice (they iterate with `chunks_exact`/`zip`), so a wrong
//! length gives a wrong answer or a `debug_assert!` failure, never undefined behaviour.
#![cfg_attr(not(any(test, feature = "std", feature = "bench")), no_std)]
// Every unsafe block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]
// The fast paths: `core::simd`, the `f16` primitive (one VCVTB per weight on Arm) and
// `core`'s fused multiply-add.
#![cfg_attr(feature = "simd", feature(portable_simd, f16, core_float_math, optimize_attribute))]
// The Helium plug's fused multiply-add on vectors (`simd_fma`: LLVM's `fma`, which it
// lowers to `VFMA` / `VFMAS` with a broadcast operand from a core register).
#![cfg_attr(all(feature = "mve", target_arch = "arm"), feature(core_intrinsics), allow(internal_features))]
// Under Miri only (always nightly): `core`'s sqrt stands in for libm's x86 inline assembly.
#![cfg_attr(all(miri, not(feature = "simd")), feature(core_float_math))]

// The Helium kernels need MVE with floating point, which rustc reports as `neon` on
// Armv8.1-M (e.g. `-C target-cpu=cortex-m55`).
#[cfg(all(feature = "mve", target_arch = "arm", not(target_feature = "neon")))]
compile_error!("mote-kernels feature `mve` needs a CPU with MVE floating point: build with -C target-cpu=cortex-m55");
#[cfg(all(feature = "mve", not(target_arch = "arm")))]
compile_error!("mote-kernels feature `mve` is for Cortex-M55 / M85 targets (thumbv8m.main-none-eabihf)");

pub mod activation;
#[cfg(feature = "simd")]
mod arch;
pub mod attention;
// Benchmark cases for `cargo xtask bench` and `benches/kernels.rs` (hosts; allocates).
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
// The conformance cases without std or alloc: the host suite's shapes and tolerances, and
// what the kernel-test firmware (`firmware/ktest`) runs on the boards.
#[doc(hidden)]
pub mod conformance_core;
mod dispatch;
pub mod elementwise;
pub mod embedding;
pub mod math;
pub mod matmul;
pub mod norm;
pub mod patch;
pub mod quant;
pub mod rope;
pub mod scan;
pub mod table;
// The SIMD vocabulary and the `core::simd` kernels: not built for the Cortex-M4F / M7,
// whose plug is scalar FPU code.
#[cfg(all(feature = "simd", any(not(target_arch = "arm"), feature = "mve")))]
mod portable;
#[cfg(all(feature = "simd", any(not(target_arch = "arm"), feature = "mve")))]
pub(crate) mod simd;
#[cfg(feature = "simd")]
mod vmath;
pub use dispatch::{force_avx2, force_scalar, path as kernel_path, simd_active};
mod src;
pub mod wkv;

pub use activation::Activation;
pub use attention::AttentionShape;
pub use src::Src;
pub use table::Kernels;

// Not under Miri: it compares tables of fast kernels that Miri does not run (the scalar
// references have their own tests there), and at Miri's speed it would take half an hour.
#[cfg(all(test, not(miri)))]
mod conformance;
#[cfg(test)]
mod testutil;
