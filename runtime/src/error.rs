//! The runtime's one error type. Every problem a model file, an arena or an input can
//! have is one of these, with the numbers that say what is wrong.

use core::fmt;

/// Errors from parsing a `.mote`, binding an arena, or setting inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before `what` does.
    Truncated { what: &'static str, needed: usize, available: usize },
    /// The file does not start with the `.mote` magic.
    BadMagic,
    /// A format version this runtime does not read.
    UnsupportedVersion { found: u32, supported: u32 },
    /// The stored CRC-32 does not match the bytes.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// A header field has an impossible value.
    BadHeader { field: &'static str, value: u32 },
    /// The model buffer (or its weights) is not aligned as the format requires.
    Misaligned { what: &'static str, align: usize },
    /// A section's range lies outside the file or overlaps another section.
    BadSection { kind: u32, reason: &'static str },
    /// A required section is absent.
    MissingSection { kind: &'static str },
    /// A tensor record is invalid.
    BadTensor { index: u32, reason: &'static str },
    /// A block of a quantized (int8 / int4) tensor is invalid: `tensor` is the tensor's
    /// index (`model::tensor_name` reads its name), `block` the block's index in it.
    BadBlock { tensor: u32, block: u32, reason: &'static str },
    /// An op record is invalid.
    BadOp { index: u32, opcode: u32, reason: &'static str },
    /// A string (name, architecture, config) is out of range or not UTF-8.
    BadString { what: &'static str },
    /// The arena is smaller than the model's plan.
    ArenaTooSmall { needed: usize, available: usize },
    /// No input or output has that name.
    UnknownName { what: &'static str },
    /// An input was given the wrong number of elements.
    InputSize { expected: usize, got: usize },
    /// The tensor has another element type than the one asked for.
    WrongDType { expected: &'static str, found: &'static str },
    /// The KV cache cannot hold the tokens of this call.
    ContextFull { needed: usize, capacity: usize },
    /// A call with more tokens than the model was converted for (or none).
    TokenCount { got: usize, max: usize },
    /// A value read from an input is out of the range the model accepts.
    InputOutOfRange { index: usize, value: i64, limit: i64 },
    /// The model uses an op whose family this runtime was built without.
    OpDisabled { index: u32, op: &'static str, feature: &'static str },
    /// An f32 input holds a NaN or an infinity (checked by `set_input`).
    NonFiniteInput { index: usize },
}

impl fmt::Display for Error {
    #[cfg_attr(feature = "simd", optimize(size))] // cold: only when something failed
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match *self {
            Truncated { what, needed, available } => {
                write!(f, "truncated model: {what} needs {needed} bytes but only {available} are there")
            }
            BadMagic => write!(f, "not a .mote file (bad magic)"),
            UnsupportedVersion { found, supported } => {
                write!(f, ".mote format version {found} is not supported (this runtime reads version {supported})")
            }
            ChecksumMismatch { stored, computed } => {
                write!(f, "corrupted model: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
            }
            BadHeader { field, value } => write!(f, "bad header: {field} = {value}"),
            Misaligned { what, align } => write!(f, "{what} is not aligned to {align} bytes"),
            BadSection { kind, reason } => {
                write!(f, "bad section {} ({kind}): {reason}", crate::format::section::name(kind))
            }
            MissingSection { kind } => write!(f, "missing section {kind}"),
            BadTensor { index, reason } => write!(f, "bad tensor #{index}: {reason}"),
            BadBlock { tensor, block, reason } => write!(f, "bad tensor #{tensor}, block #{block}: {reason}"),
            BadOp { index, opcode, reason } => {
                let name = crate::format::OpCode::from_code(opcode).map_or("unknown", |o| o.name());
                write!(f, "bad op #{index} ({name}, opcode {opcode}): {reason}")
            }
            BadString { what } => write!(f, "bad string: {what}"),
            ArenaTooSmall { needed, available } => {
                write!(f, "arena too small: needed {needed} bytes, available {available} bytes")
            }
            UnknownName { what } => write!(f, "no {what} with that name"),
            InputSize { expected, got } => write!(f, "input has {got} elements but the model expects {expected}"),
            WrongDType { expected, found } => {
                write!(f, "tensor is {found}, not {expected}")
            }
            ContextFull { needed, capacity } => write!(
                f,
                "context full: {needed} tokens needed, the KV cache holds {capacity} (convert with a larger --max-seq, or reset)"
            ),
            TokenCount { got, max } => write!(f, "a call takes 1 to {max} tokens, not {got}"),
            InputOutOfRange { index, value, limit } => {
                write!(f, "input element {index} is {value}, outside the accepted range 0..{limit}")
            }
            OpDisabled { index, op, feature } => write!(
                f,
                "op #{index} ({op}) is not compiled into this runtime: enable the mote-runtime feature `{feature}`"
            ),
            NonFiniteInput { index } => write!(f, "input element {index} is NaN or infinite; inputs must be finite"),
        }
    }
}

impl core::error::Error for Error {}
