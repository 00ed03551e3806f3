//! Layout constants of the `.mote` format, versions 1 and 2. The single source of truth: the
//! writer in `mote-models` uses these, and `docs/FORMAT.md` describes them.
//!
//! All integers are little-endian. Byte offsets below are from the start of the file
//! unless a section is named.

/// File magic: "MOTE" then CR LF SUB LF, which catches text-mode mangling (as PNG does).
pub const MAGIC: [u8; 8] = *b"MOTE\r\n\x1a\n";
/// Newest format version this runtime reads and writes: 2 adds the quantized dtypes
/// (`int8`, `int4`). Writers use [`VERSION_1`] for a file without a quantized tensor, so
/// f16 / f32 files stay version 1, byte for byte.
pub const VERSION: u32 = 2;
/// The first version: f32, f16 and i32 tensors only.
pub const VERSION_1: u32 = 1;
/// Weights per quantization block (along a tensor's last dimension).
pub const QUANT_GROUP: usize = mote_kernels::quant::QK;
/// Size of the fixed header.
pub const HEADER_BYTES: usize = 64;
/// Alignment the model buffer must have in memory, and of the weights section and of
/// every weight inside it (so weights can be read in place with SIMD loads).
pub const WEIGHT_ALIGN: usize = 64;
/// Alignment of every tensor in the arena, and of the arena itself.
pub const ARENA_ALIGN: usize = 64;
/// The checksum covers bytes `CHECKSUM_START..file_bytes`.
pub const CHECKSUM_START: usize = 24;

/// Header field offsets (each a u32).
pub mod header {
    pub const VERSION: usize = 8;
    pub const HEADER_BYTES: usize = 12;
    pub const FILE_BYTES: usize = 16;
    pub const CHECKSUM: usize = 20;
    pub const SECTION_COUNT: usize = 24;
    pub const SECTION_TABLE: usize = 28;
    pub const ARENA_BYTES: usize = 32;
    pub const PERSISTENT_BYTES: usize = 36;
    pub const FLAGS: usize = 40;
    /// Most tokens one call processes (rows of every SEQ tensor); 0 for models without.
    pub const MAX_TOKENS: usize = 44;
    /// Tokens the KV cache holds (0 for models without one).
    pub const MAX_CONTEXT: usize = 48;
}

/// One section-table entry: kind, offset, bytes, reserved (u32 each).
pub const SECTION_ENTRY_BYTES: usize = 16;
/// Sections a file may hold; each of these must appear exactly once.
pub mod section {
    /// Four u32: architecture name (offset, length) and config JSON (offset, length),
    /// both in the string pool.
    pub const META: u32 = 1;
    /// UTF-8 string pool (tensor names, architecture, config JSON).
    pub const STRINGS: u32 = 2;
    /// Tensor table: `TENSOR_RECORD_BYTES` per tensor.
    pub const TENSORS: u32 = 3;
    /// Op list: `OP_RECORD_BYTES` per op, executed in order.
    pub const OPS: u32 = 4;
    /// u32 input count, u32 output count, then the input and output tensor ids.
    pub const IO: u32 = 5;
    /// Weight bytes; starts at a multiple of `WEIGHT_ALIGN`.
    pub const WEIGHTS: u32 = 6;
    pub const ALL: [u32; 6] = [META, STRINGS, TENSORS, OPS, IO, WEIGHTS];

    pub fn name(kind: u32) -> &'static str {
        match kind {
            META => "META",
            STRINGS => "STRINGS",
            TENSORS => "TENSORS",
            OPS => "OPS",
            IO => "IO",
            WEIGHTS => "WEIGHTS",
            _ => "unknown",
        }
    }
}

pub const META_BYTES: usize = 16;

/// Tensor record: name offset u32, name length u32, dtype u8, storage u8, rank u8,
/// flags u8 (`TENSOR_SEQ`), dims [u32; 4] (unused dims 0), offset u32.
pub const TENSOR_RECORD_BYTES: usize = 32;
pub const MAX_RANK: usize = 4;
/// Tensor flag: the tensor's rows are tokens (`rows == max_tokens`); a call on `n`
/// tokens uses only its first `n` rows.
pub const TENSOR_SEQ: u8 = 1;

/// Op record: opcode u32, output tensor u32, inputs [u32; 6] (`NONE` when absent),
/// params [u32; 8] (meaning per opcode; floats stored as their bits).
pub const OP_RECORD_BYTES: usize = 64;
pub const MAX_OP_INPUTS: usize = 6;
pub const MAX_OP_PARAMS: usize = 8;
/// An absent optional input.
pub const NONE: u32 = u32::MAX;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum DType {
    F32 = 0,
    F16 = 1,
    I32 = 2,
    /// Blocks of [`QUANT_GROUP`] weights along the last dimension, llama.cpp's `Q8_0`:
    /// f16 scale `d`, then 32 `i8` (34 bytes); weight = `d * q`. Weights only (version 2).
    Int8 = 3,
    /// Blocks of [`QUANT_GROUP`] weights along the last dimension, llama.cpp's `Q4_1`:
    /// f16 scale `d`, f16 minimum `m`, then 16 bytes of nibbles (20 bytes); weight =
    /// `d * q + m`. Weights only (version 2).
    Int4 = 4,
}

impl DType {
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            2 => Some(DType::I32),
            3 => Some(DType::Int8),
            4 => Some(DType::Int4),
            _ => None,
        }
    }
    /// Stored in blocks of [`QUANT_GROUP`] weights (`int8`, `int4`).
    pub fn is_quantized(self) -> bool {
        matches!(self, DType::Int8 | DType::Int4)
    }
    /// Bytes of one element (f32, f16, i32), or of one block of [`QUANT_GROUP`] weights
    /// (int8: 34, int4: 20).
    pub fn unit_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
            DType::Int8 => core::mem::size_of::<mote_kernels::quant::BlockQ8>(),
            DType::Int4 => core::mem::size_of::<mote_kernels::quant::BlockQ4>(),
        }
    }
    /// Elements per unit of [`unit_bytes`](Self::unit_bytes): 1, or [`QUANT_GROUP`].
    pub fn unit_elems(self) -> usize {
        if self.is_quantized() { QUANT_GROUP } else { 1 }
    }
    /// Bytes of `elems` elements, rounded up to whole units (a prefix of a tensor); None
    /// on overflow. For a whole quantized tensor, `elems` is rows * cols with cols a
    /// multiple of [`QUANT_GROUP`] (checked at parse), so nothing is rounded.
    pub fn bytes_for(self, elems: usize) -> Option<usize> {
        elems.div_ceil(self.unit_elems()).checked_mul(self.unit_bytes())
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I32 => "i32",
            DType::Int8 => "int8",
            DType::Int4 => "int4",
        }
    }
}

/// Where a tensor's bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Storage {
    /// In the WEIGHTS section of the file (read-only, in place, e.g. from flash).
    Weight = 0,
    /// In the arena's scratch region, at an offset planned by the converter.
    Arena = 1,
    /// In the arena's persistent region (`0..persistent_bytes`): KV cache, recurrent
    /// state. Survives `invoke`, cleared by `reset`.
    Persistent = 2,
}

impl Storage {
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Storage::Weight),
            1 => Some(Storage::Arena),
            2 => Some(Storage::Persistent),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Storage::Weight => "weight",
            Storage::Arena => "arena",
            Storage::Persistent => "persistent",
        }
    }
}

pub use crate::ops::OpCode;

/// Attention flag bits (param 6).
pub const ATTN_CAUSAL: u32 = crate::ops::attention::CAUSAL;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_codes_and_sizes() {
        for code in 0..=4 {
            assert_eq!(DType::from_code(code).map(|d| d as u8), Some(code));
        }
        assert_eq!(DType::from_code(5), None);
        assert_eq!((DType::Int8.unit_bytes(), DType::Int4.unit_bytes()), (34, 20));
        // [3, 64]: 3 rows of 2 blocks.
        assert_eq!(DType::Int8.bytes_for(3 * 64), Some(3 * 2 * 34));
        assert_eq!(DType::Int4.bytes_for(3 * 64), Some(3 * 2 * 20));
        assert_eq!(DType::F16.bytes_for(5), Some(10));
        assert_eq!(DType::F32.bytes_for(usize::MAX), None);
        assert!(DType::Int4.is_quantized() && !DType::F16.is_quantized());
        assert_eq!((DType::Int8.name(), DType::Int4.name()), ("int8", "int4"));
    }
}
