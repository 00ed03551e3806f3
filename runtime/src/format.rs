//! Layout constants of the `.mote` format, version 1. The single source of truth: the
//! writer in `mote-models` uses these, and `docs/FORMAT.md` describes them.
//!
//! All integers are little-endian. Byte offsets below are from the start of the file
//! unless a section is named.

/// File magic: "MOTE" then CR LF SUB LF, which catches text-mode mangling (as PNG does).
pub const MAGIC: [u8; 8] = *b"MOTE\r\n\x1a\n";
/// Format version this runtime reads and writes.
pub const VERSION: u32 = 1;
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
}

impl DType {
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            2 => Some(DType::I32),
            _ => None,
        }
    }
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I32 => "i32",
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

/// The operations the interpreter executes. Inputs and params per opcode are listed in
/// `docs/FORMAT.md`; shapes are checked when the model is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u32)]
pub enum OpCode {
    /// in: image [1,c,h,w], weight [dim,c,p,p], bias? [dim]; params: c, h, w, patch, dim;
    /// out: [(h/p)*(w/p), dim]
    PatchEmbed = 1,
    /// in: a [ra, d], b [rb, d]; out: [ra+rb, d]
    ConcatRows = 2,
    /// in: a, b (same element count); out = a + b
    Add = 3,
    /// in: x [.., dim], gamma [dim], beta? [dim]; params: dim, eps (f32 bits)
    LayerNorm = 4,
    /// in: x [.., dim], gamma [dim]; params: dim, eps (f32 bits)
    RmsNorm = 5,
    /// in: x [m, >= x_col + k], w [n, k], bias? [n], residual? [m, n]; params: m, k, n,
    /// activation, x_col; out = act(x[:, x_col..x_col+k] w^T + bias) + residual
    MatMul = 6,
    /// in: q, k, v, key_mask?, k_cache?, v_cache?; params: heads, kv_heads, head_dim,
    /// q_col, k_col, v_col, flags (bit 0: causal), scale (f32 bits). q/k/v are column
    /// blocks (starting at the `*_col` column) of row-major 2-D tensors, possibly the
    /// same fused tensor. With caches (persistent `[max_context, kv_heads*head_dim]`),
    /// the call's keys and values are first stored at rows `pos..pos+n`, and the queries
    /// (at positions `pos + i`) attend over cache rows `0..pos+n`.
    Attention = 7,
    /// in: x [rows, d]; params: start, count; out: [count, d] = x[start..start+count]
    SelectRows = 8,
    /// in: x [rows, 2n]; params: n, activation; out[r, i] = act(x[r, i]) * x[r, n + i]
    Glu = 9,
    /// in: x; params: activation; out = act(x)
    Activation = 10,
    /// in: ids (i32), table [vocab, dim]; params: vocab, dim; out[i] = table[ids[i]]
    Embedding = 11,
    /// in: table [positions, dim]; params: positions, dim; out[i] = table[pos + i], where
    /// pos is the number of tokens already in the KV cache (0 without one)
    PositionEmbedding = 12,
    /// in: x [rows, w], inv_freq [head_dim/2]; params: heads (rotated, from column 0),
    /// head_dim; out = x with those heads rotated (Hugging Face rotate_half layout) at
    /// positions pos + i
    Rope = 13,
    /// in: x [t, c], state (persistent [k-1, c]), weight [c, k], bias? [c]; params: c, k,
    /// activation; out = act(causal depthwise conv over [state; x]); state <- last k-1 rows
    CausalConv1d = 14,
    /// in: x [t, e], dt [t, e], bc [t, 2n], z [t, e], a_d [e, n+1], state (persistent
    /// [e, n]); params: e, n; out = selective scan (Mamba) gated by silu(z)
    SelectiveScan = 15,
    /// in: x [t, d], state (persistent [d]), mix [m, d]; params: d, m; out [t, m*d] =
    /// token-shift interpolations (RWKV); state <- x[t-1]
    TokenShift = 16,
    /// in: k, v, r [t, a], time_first [a], w = -exp(time_decay) [a], state (persistent
    /// [3, a]); params: a; out = r * wkv (RWKV-4)
    Wkv = 17,
    /// in: a, b, residual?; out = a * b + residual
    Mul = 18,
}

impl OpCode {
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => OpCode::PatchEmbed,
            2 => OpCode::ConcatRows,
            3 => OpCode::Add,
            4 => OpCode::LayerNorm,
            5 => OpCode::RmsNorm,
            6 => OpCode::MatMul,
            7 => OpCode::Attention,
            8 => OpCode::SelectRows,
            9 => OpCode::Glu,
            10 => OpCode::Activation,
            11 => OpCode::Embedding,
            12 => OpCode::PositionEmbedding,
            13 => OpCode::Rope,
            14 => OpCode::CausalConv1d,
            15 => OpCode::SelectiveScan,
            16 => OpCode::TokenShift,
            17 => OpCode::Wkv,
            18 => OpCode::Mul,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            OpCode::PatchEmbed => "PatchEmbed",
            OpCode::ConcatRows => "ConcatRows",
            OpCode::Add => "Add",
            OpCode::LayerNorm => "LayerNorm",
            OpCode::RmsNorm => "RmsNorm",
            OpCode::MatMul => "MatMul",
            OpCode::Attention => "Attention",
            OpCode::SelectRows => "SelectRows",
            OpCode::Glu => "Glu",
            OpCode::Activation => "Activation",
            OpCode::Embedding => "Embedding",
            OpCode::PositionEmbedding => "PositionEmbedding",
            OpCode::Rope => "Rope",
            OpCode::CausalConv1d => "CausalConv1d",
            OpCode::SelectiveScan => "SelectiveScan",
            OpCode::TokenShift => "TokenShift",
            OpCode::Wkv => "Wkv",
            OpCode::Mul => "Mul",
        }
    }
}

/// Attention flag bits (param 6).
pub const ATTN_CAUSAL: u32 = 1;
