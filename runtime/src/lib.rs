//! Mote runtime: parses a `.mote` model without allocating, and runs its op list over a
//! caller-owned arena.
//!
//! ```ignore
//! let model = Model::parse(bytes)?;                 // validates everything, once
//! let mut interp = Interpreter::new(&model, arena)?; // binds the arena (no allocation)
//! interp.set_input("pixel_values", &image)?;
//! interp.invoke()?;
//! let logits = interp.output("logits")?;
//! ```
//!
//! The runtime knows ops, not models: everything architecture-specific lives in the
//! converter (`mote-models`). All fallible checks happen in [`Model::parse`] and
//! [`Interpreter::new`]; [`Interpreter::invoke`] only uses offsets that were validated.
#![cfg_attr(not(test), no_std)]
// Parsing and validation run once per model: optimised for size (`#[optimize(size)]`, as
// `opt-level = "z"`), the rest of the runtime as its profile says. `simd` builds are
// nightly builds.
#![cfg_attr(feature = "simd", feature(optimize_attribute))]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Every unsafe block of Mote is in the kernels (SIMD, asm) and the firmware.
#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("the .mote format and the runtime's zero-copy weight views are little-endian");

mod align;
mod crc32;
mod error;
pub mod format;
mod interpreter;
mod model;
pub mod ops;
pub mod sampler;
#[cfg(test)]
mod tests;

pub use align::Aligned;
pub use crc32::crc32;
pub use error::Error;
pub use format::{DType, OpCode, Storage};
pub use interpreter::{Interpreter, OpHook};
pub use model::{Model, OpRecord, Shape, TensorInfo, tensor_name};
pub use mote_kernels::{Activation, force_scalar, kernel_path};
pub use sampler::Sampler;

pub type Result<T> = core::result::Result<T, Error>;
