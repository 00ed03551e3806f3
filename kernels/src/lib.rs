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
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![cfg_attr(feature = "simd", feature(portable_simd))]
// Under Miri only (always nightly): `core`'s sqrt stands in for libm's x86 inline assembly.
#![cfg_attr(miri, feature(core_float_math))]

pub mod activation;
pub mod attention;
mod dispatch;
pub mod elementwise;
pub mod embedding;
pub mod math;
pub mod matmul;
pub mod norm;
pub mod patch;
pub mod rope;
pub mod scan;
#[cfg(feature = "simd")]
pub(crate) mod simd;
pub use dispatch::{force_avx2, force_scalar, path as kernel_path, simd_active};
mod src;
pub mod wkv;

pub use activation::Activation;
pub use attention::AttentionShape;
pub use src::Src;

#[cfg(test)]
mod testutil;
