//! What the host and the Mote firmware exchange, defined once for both.
//!
//! - [`input`]: the input blob embedded next to the model. The host (`cargo xtask
//!   qemu` / `flash`) writes it ([`input::write_tensors`], [`input::write_prompt`],
//!   `std`); the firmware reads it in place with [`input::parse`], which checks every
//!   length and never panics.
//! - [`report`]: the lines the firmware reports (to `mote-report.txt` over semihosting
//!   under QEMU, as defmt lines on hardware). The firmware writes [`report::Line`]s; the
//!   host parses them with [`report::parse`] (`std`).
//!
//! `no_std` and dependency-free; the `std` feature (default) adds the writer and the
//! parser. The firmware builds it with `default-features = false`.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

pub mod input;
pub mod report;
