//! Zero-copy, validating parser for `.mote` files.

use crate::error::Error;
use crate::format::{self, DType, OpCode, Storage, section};
use crate::{Result, ops};
use mote_kernels::quant::{BlockQ4, BlockQ8};

/// Reads a little-endian u32 at `off`, if the bytes are there.
#[inline]
pub(crate) fn u32_at(bytes: &[u8], off: usize) -> Option<u32> {
    let b = bytes.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn header_u32(bytes: &[u8], off: usize) -> Result<u32> {
    u32_at(bytes, off).ok_or(Error::Truncated { what: "header", needed: format::HEADER_BYTES, available: bytes.len() })
}

/// A tensor's shape: rank 1 to 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    rank: u8,
    dims: [u32; format::MAX_RANK],
}

impl Shape {
    pub fn dims(&self) -> &[u32] {
        &self.dims[..self.rank as usize]
    }
    /// Number of elements (validated at parse not to overflow).
    pub fn elems(&self) -> usize {
        self.dims().iter().map(|&d| d as usize).product()
    }
    /// Size of the last dimension: the row width of a row-major 2-D view.
    pub fn cols(&self) -> usize {
        self.dims().last().map_or(1, |&d| d as usize)
    }
    /// Product of all dimensions but the last: the rows of a row-major 2-D view.
    pub fn rows(&self) -> usize {
        let d = self.dims();
        d[..d.len().saturating_sub(1)].iter().map(|&x| x as usize).product()
    }
}

/// One tensor of the model, decoded from the tensor table.
#[derive(Clone, Copy, Debug)]
pub struct TensorInfo<'a> {
    pub name: &'a str,
    /// The rows are tokens: a call on `n` tokens uses the first `n` rows.
    pub seq: bool,
    pub dtype: DType,
    pub storage: Storage,
    pub shape: Shape,
    /// Byte offset: into the weights section, or into the arena.
    pub offset: usize,
    /// Byte length: elements times element size (quantized: rows * cols / 32 blocks
    /// times the block size).
    pub bytes: usize,
}

impl TensorInfo<'_> {
    pub fn elems(&self) -> usize {
        self.shape.elems()
    }
    /// Byte range in its region.
    pub fn range(&self) -> core::ops::Range<usize> {
        self.offset..self.offset + self.bytes
    }
}

/// One op of the op list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpRecord {
    pub opcode: OpCode,
    pub output: u32,
    pub inputs: [u32; format::MAX_OP_INPUTS],
    pub params: [u32; format::MAX_OP_PARAMS],
}

/// A parsed, validated `.mote` model borrowing its bytes (e.g. in flash).
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    strings: &'a [u8],
    tensors: &'a [u8],
    ops: &'a [u8],
    io_ids: &'a [u8],
    weights: &'a [u8],
    n_inputs: usize,
    n_outputs: usize,
    arena_bytes: usize,
    persistent_bytes: usize,
    max_tokens: usize,
    max_context: usize,
    file_bytes: usize,
    version: u32,
    checksum: u32,
    architecture: &'a str,
    config_json: &'a str,
}

impl<'a> Model<'a> {
    /// Parses and validates a whole model: header, checksum, sections, every tensor and
    /// every op's shapes. After this succeeds, the interpreter runs without checks that
    /// can fail. `bytes` must start at a 64-byte aligned address (see [`crate::Aligned`]).
    #[inline(never)] // an entry point: one copy, counted as runtime code by `xtask qemu`
    #[cfg_attr(feature = "simd", optimize(size))] // cold: once per model (see lib.rs)
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < format::HEADER_BYTES {
            return Err(Error::Truncated { what: "header", needed: format::HEADER_BYTES, available: bytes.len() });
        }
        if bytes[..8] != format::MAGIC {
            return Err(Error::BadMagic);
        }
        let version = header_u32(bytes, format::header::VERSION)?;
        if version != format::VERSION && version != format::VERSION_1 {
            return Err(Error::UnsupportedVersion { found: version, supported: format::VERSION });
        }
        let header_bytes = header_u32(bytes, format::header::HEADER_BYTES)?;
        if header_bytes as usize != format::HEADER_BYTES {
            return Err(Error::BadHeader { field: "header_bytes", value: header_bytes });
        }
        let file_bytes = header_u32(bytes, format::header::FILE_BYTES)? as usize;
        if file_bytes > bytes.len() {
            return Err(Error::Truncated { what: "file", needed: file_bytes, available: bytes.len() });
        }
        if file_bytes < format::HEADER_BYTES {
            return Err(Error::BadHeader { field: "file_bytes", value: file_bytes as u32 });
        }
        let bytes = &bytes[..file_bytes];
        let stored = header_u32(bytes, format::header::CHECKSUM)?;
        let computed = crate::crc32(&bytes[format::CHECKSUM_START..]);
        if stored != computed {
            return Err(Error::ChecksumMismatch { stored, computed });
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(format::WEIGHT_ALIGN) {
            return Err(Error::Misaligned { what: "model buffer", align: format::WEIGHT_ALIGN });
        }
        let flags = header_u32(bytes, format::header::FLAGS)?;
        if flags != 0 {
            return Err(Error::BadHeader { field: "flags", value: flags });
        }
        let arena_bytes = header_u32(bytes, format::header::ARENA_BYTES)? as usize;
        let persistent_bytes = header_u32(bytes, format::header::PERSISTENT_BYTES)? as usize;
        if persistent_bytes > arena_bytes {
            return Err(Error::BadHeader { field: "persistent_bytes", value: persistent_bytes as u32 });
        }
        if !arena_bytes.is_multiple_of(format::ARENA_ALIGN) || !persistent_bytes.is_multiple_of(format::ARENA_ALIGN) {
            return Err(Error::BadHeader { field: "arena_bytes", value: arena_bytes as u32 });
        }

        let max_tokens = header_u32(bytes, format::header::MAX_TOKENS)? as usize;
        let max_context = header_u32(bytes, format::header::MAX_CONTEXT)? as usize;
        if max_context > 0 && max_tokens > max_context {
            return Err(Error::BadHeader { field: "max_tokens", value: max_tokens as u32 });
        }
        if bytes[52..format::HEADER_BYTES].iter().any(|&b| b != 0) {
            return Err(Error::BadHeader { field: "reserved", value: 0 });
        }

        let sections = Sections::parse(bytes)?;
        let weights = sections.get(bytes, section::WEIGHTS)?;
        let strings = sections.get(bytes, section::STRINGS)?;
        let tensors = sections.get(bytes, section::TENSORS)?;
        let ops = sections.get(bytes, section::OPS)?;
        let io = sections.get(bytes, section::IO)?;
        let meta = sections.get(bytes, section::META)?;

        let string = |off: Option<u32>, len: Option<u32>, what: &'static str| -> Result<&'a str> {
            let (off, len) = (off.ok_or(Error::BadString { what })?, len.ok_or(Error::BadString { what })?);
            let end = (off as usize).checked_add(len as usize).ok_or(Error::BadString { what })?;
            let b = strings.get(off as usize..end).ok_or(Error::BadString { what })?;
            core::str::from_utf8(b).map_err(|_| Error::BadString { what })
        };
        if meta.len() < format::META_BYTES {
            return Err(Error::BadSection { kind: section::META, reason: "shorter than 16 bytes" });
        }
        let architecture = string(u32_at(meta, 0), u32_at(meta, 4), "architecture name")?;
        let config_json = string(u32_at(meta, 8), u32_at(meta, 12), "config JSON")?;

        if tensors.len() % format::TENSOR_RECORD_BYTES != 0 {
            return Err(Error::BadSection {
                kind: section::TENSORS,
                reason: "length is not a whole number of records",
            });
        }
        if ops.len() % format::OP_RECORD_BYTES != 0 {
            return Err(Error::BadSection { kind: section::OPS, reason: "length is not a whole number of records" });
        }
        let n_inputs = u32_at(io, 0).ok_or(Error::BadSection { kind: section::IO, reason: "no input count" })? as usize;
        let n_outputs =
            u32_at(io, 4).ok_or(Error::BadSection { kind: section::IO, reason: "no output count" })? as usize;
        let ids_bytes =
            n_inputs.checked_add(n_outputs).and_then(|n| n.checked_mul(4)).filter(|&n| n == io.len() - 8).ok_or(
                Error::BadSection { kind: section::IO, reason: "length does not match the input and output counts" },
            )?;
        let io_ids = &io[8..8 + ids_bytes];

        let model = Model {
            strings,
            tensors,
            ops,
            io_ids,
            weights,
            n_inputs,
            n_outputs,
            arena_bytes,
            persistent_bytes,
            max_tokens,
            max_context,
            file_bytes,
            version,
            checksum: stored,
            architecture,
            config_json,
        };
        for i in 0..model.tensor_count() {
            let t = model.decode_tensor(i, true)?;
            if cfg!(feature = "quant") {
                model.check_blocks(i, &t)?; // (without `quant`, decode_tensor refused them)
            }
        }
        model.validate_io()?;
        for i in 0..model.op_count() {
            let op = model.decode_op(i)?;
            ops::check_enabled(i as u32, op.opcode)?;
            ops::validate(&model, i as u32, &op)?;
            model.check_producers(i, &op)?;
        }
        Ok(model)
    }

    /// Architecture name from the converter, e.g. `ViTForImageClassification`.
    pub fn architecture(&self) -> &'a str {
        self.architecture
    }
    /// The Hugging Face `config.json` the model was converted from.
    pub fn config_json(&self) -> &'a str {
        self.config_json
    }
    /// Bytes of arena the interpreter needs (persistent region included), before the
    /// up-to-63 bytes it may skip to align a caller's buffer.
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }
    /// Bytes at the start of the arena that persist between calls (KV cache, state).
    pub fn persistent_bytes(&self) -> usize {
        self.persistent_bytes
    }
    /// Most tokens one call can process (0 for models without token inputs).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }
    /// Tokens the KV cache holds (0 for models without one).
    pub fn max_context(&self) -> usize {
        self.max_context
    }
    pub fn file_bytes(&self) -> usize {
        self.file_bytes
    }
    /// The file's format version (1, or 2 when it holds quantized tensors).
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn weight_bytes(&self) -> usize {
        self.weights.len()
    }
    pub fn checksum(&self) -> u32 {
        self.checksum
    }
    pub(crate) fn weights(&self) -> &'a [u8] {
        self.weights
    }
    pub fn tensor_count(&self) -> usize {
        self.tensors.len() / format::TENSOR_RECORD_BYTES
    }
    pub fn op_count(&self) -> usize {
        self.ops.len() / format::OP_RECORD_BYTES
    }
    pub fn input_count(&self) -> usize {
        self.n_inputs
    }
    pub fn output_count(&self) -> usize {
        self.n_outputs
    }

    /// Tensor `index` (None past the end).
    pub fn tensor(&self, index: usize) -> Option<TensorInfo<'a>> {
        self.decode_tensor(index, true).ok()
    }

    /// Tensor `index` as the ops read it, every time they run: every field checked, but
    /// the name left empty (not looked up and checked for UTF-8, which cost more than the
    /// rest of the record on a microcontroller).
    pub(crate) fn tensor_unnamed(&self, index: usize) -> Option<TensorInfo<'a>> {
        self.decode_tensor(index, false).ok()
    }
    /// Tensor `index` as the ops read it when they run: the record parsing validated,
    /// read in place without checking it again (and without its name). Never panics;
    /// `None` past the end.
    pub(crate) fn tensor_view(&self, index: usize) -> Option<TensorInfo<'a>> {
        let rec =
            self.tensors.get(index.checked_mul(format::TENSOR_RECORD_BYTES)?..)?.get(..format::TENSOR_RECORD_BYTES)?;
        let field = |off| u32_at(rec, off).unwrap_or(0);
        let dtype = DType::from_code(rec[8])?;
        let storage = Storage::from_code(rec[9])?;
        let rank = rec[10].min(format::MAX_RANK as u8);
        let dims = [field(12), field(16), field(20), field(24)];
        let shape = Shape { rank, dims };
        let elems = dims[..rank as usize].iter().fold(1usize, |b, &d| b.saturating_mul(d as usize));
        let bytes = dtype.bytes_for(elems).unwrap_or(usize::MAX);
        let seq = rec[11] & format::TENSOR_SEQ != 0;
        Some(TensorInfo { name: "", seq, dtype, storage, shape, offset: field(28) as usize, bytes })
    }
    /// Op `index` (None past the end).
    pub fn op(&self, index: usize) -> Option<OpRecord> {
        self.decode_op(index).ok()
    }
    /// Tensor id of input `i`.
    pub fn input_id(&self, i: usize) -> Option<u32> {
        (i < self.n_inputs).then(|| u32_at(self.io_ids, 4 * i)).flatten()
    }
    /// Tensor id of output `i`.
    pub fn output_id(&self, i: usize) -> Option<u32> {
        (i < self.n_outputs).then(|| u32_at(self.io_ids, 4 * (self.n_inputs + i))).flatten()
    }
    pub fn input(&self, i: usize) -> Option<TensorInfo<'a>> {
        self.tensor(self.input_id(i)? as usize)
    }
    pub fn output(&self, i: usize) -> Option<TensorInfo<'a>> {
        self.tensor(self.output_id(i)? as usize)
    }
    /// Index of the input called `name`.
    pub fn find_input(&self, name: &str) -> Option<usize> {
        (0..self.n_inputs).find(|&i| self.input(i).is_some_and(|t| t.name == name))
    }
    /// Index of the output called `name`.
    pub fn find_output(&self, name: &str) -> Option<usize> {
        (0..self.n_outputs).find(|&i| self.output(i).is_some_and(|t| t.name == name))
    }

    fn decode_tensor(&self, index: usize, named: bool) -> Result<TensorInfo<'a>> {
        let idx = index as u32;
        let bad = |reason| Error::BadTensor { index: idx, reason };
        let start = index.checked_mul(format::TENSOR_RECORD_BYTES).ok_or(bad("index out of range"))?;
        let rec = self.tensors.get(start..start + format::TENSOR_RECORD_BYTES).ok_or(bad("index out of range"))?;
        let field = |off| u32_at(rec, off).unwrap_or(0);
        let (name_off, name_len) = (field(0) as usize, field(4) as usize);
        let name = if named {
            let name_end = name_off.checked_add(name_len).ok_or(bad("name out of range"))?;
            let name = self.strings.get(name_off..name_end).ok_or(bad("name out of range"))?;
            core::str::from_utf8(name).map_err(|_| bad("name is not UTF-8"))?
        } else {
            ""
        };
        let dtype = DType::from_code(rec[8]).ok_or(bad("unknown dtype code"))?;
        let storage = Storage::from_code(rec[9]).ok_or(bad("unknown storage code"))?;
        let rank = rec[10];
        if rank == 0 || rank as usize > format::MAX_RANK {
            return Err(bad("rank must be 1 to 4"));
        }
        let flags = rec[11];
        if flags & !format::TENSOR_SEQ != 0 {
            return Err(bad("unknown tensor flags"));
        }
        let seq = flags & format::TENSOR_SEQ != 0;
        let mut dims = [0u32; format::MAX_RANK];
        for (d, slot) in dims.iter_mut().enumerate() {
            *slot = field(12 + 4 * d);
        }
        if dims[..rank as usize].contains(&0) {
            return Err(bad("a dimension is 0"));
        }
        if dims[rank as usize..].iter().any(|&d| d != 0) {
            return Err(bad("dimensions past the rank are not 0"));
        }
        let elems = dims[..rank as usize]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
            .ok_or(bad("shape overflows when multiplied"))?;
        if dtype.is_quantized() {
            if !cfg!(feature = "quant") {
                return Err(bad(
                    "int8 / int4 weights are not compiled into this runtime: enable the mote-runtime feature `quant`",
                ));
            }
            if self.version < format::VERSION {
                return Err(bad(
                    "a quantized dtype (int8 / int4) in a version-1 file (quantized tensors need version 2)",
                ));
            }
            if storage != Storage::Weight {
                return Err(bad("a quantized (int8 / int4) tensor in the arena: quantized tensors are weights only"));
            }
            if !(dims[rank as usize - 1] as usize).is_multiple_of(format::QUANT_GROUP) {
                return Err(bad("group size 32 does not divide the row (the last dimension of an int8 / int4 tensor)"));
            }
        }
        let bytes =
            dtype.bytes_for(elems).filter(|&b| b <= u32::MAX as usize).ok_or(bad("shape overflows when multiplied"))?;
        let offset = field(28) as usize;
        let end = offset.checked_add(bytes).ok_or(bad("offset overflows"))?;
        match storage {
            Storage::Weight => {
                if !offset.is_multiple_of(format::WEIGHT_ALIGN) {
                    return Err(bad("weight offset is not 64-byte aligned"));
                }
                if end > self.weights.len() && dtype.is_quantized() {
                    // The first block that does not fit.
                    let fit = self.weights.len().saturating_sub(offset) / dtype.unit_bytes();
                    return Err(Error::BadBlock {
                        tensor: idx,
                        block: fit as u32,
                        reason: "the blocks run past the end of the WEIGHTS section",
                    });
                }
                if end > self.weights.len() {
                    return Err(bad("weight data lies past the end of the weights section"));
                }
            }
            Storage::Arena | Storage::Persistent => {
                if !offset.is_multiple_of(format::ARENA_ALIGN) {
                    return Err(bad("arena offset is not 64-byte aligned"));
                }
                if dtype != DType::F32 && dtype != DType::I32 {
                    return Err(bad("arena tensors are f32 or i32"));
                }
                let (lo, hi) = if storage == Storage::Persistent {
                    (0, self.persistent_bytes)
                } else {
                    (self.persistent_bytes, self.arena_bytes)
                };
                if offset < lo || end > hi {
                    return Err(bad("arena range lies outside its region of the arena"));
                }
            }
        }
        let shape = Shape { rank, dims };
        if seq && (storage == Storage::Weight || self.max_tokens == 0 || shape.rows() != self.max_tokens) {
            return Err(bad("a token-rows tensor must be an arena tensor with max_tokens rows"));
        }
        Ok(TensorInfo { name, seq, dtype, storage, shape, offset, bytes })
    }

    /// Every block of a quantized weight has a finite scale (and, for int4, a finite
    /// minimum): once, at parse, so the kernels never see a NaN or infinite scale.
    #[cfg_attr(feature = "simd", optimize(size))] // cold: once per model (see lib.rs)
    fn check_blocks(&self, index: usize, t: &TensorInfo<'a>) -> Result<()> {
        let finite = |bits: u16| bits & 0x7C00 != 0x7C00; // f16: exponent all ones is inf / NaN
        let bad = |block: usize, reason| Error::BadBlock { tensor: index as u32, block: block as u32, reason };
        let data = self.weights.get(t.range()).unwrap_or(&[]);
        match t.dtype {
            DType::Int8 => {
                let blocks: &[BlockQ8] = bytemuck::try_cast_slice(data).map_err(|_| bad(0, "blocks are misaligned"))?;
                if let Some(b) = blocks.iter().position(|b| !finite(b.d)) {
                    return Err(bad(b, "the scale d is NaN or infinite"));
                }
            }
            DType::Int4 => {
                let blocks: &[BlockQ4] = bytemuck::try_cast_slice(data).map_err(|_| bad(0, "blocks are misaligned"))?;
                for (i, b) in blocks.iter().enumerate() {
                    if !finite(b.d) {
                        return Err(bad(i, "the scale d is NaN or infinite"));
                    }
                    if !finite(b.m) {
                        return Err(bad(i, "the minimum m is NaN or infinite"));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn decode_op(&self, index: usize) -> Result<OpRecord> {
        let start = index.saturating_mul(format::OP_RECORD_BYTES);
        let code = u32_at(self.ops, start).unwrap_or(0);
        let bad = |reason| Error::BadOp { index: index as u32, opcode: code, reason };
        let rec = self.ops.get(start..start + format::OP_RECORD_BYTES).ok_or(bad("index out of range"))?;
        let opcode = OpCode::from_code(code).ok_or(bad("unknown opcode"))?;
        let field = |off| u32_at(rec, off).unwrap_or(0);
        let mut inputs = [format::NONE; format::MAX_OP_INPUTS];
        for (i, slot) in inputs.iter_mut().enumerate() {
            *slot = field(8 + 4 * i);
        }
        let mut params = [0u32; format::MAX_OP_PARAMS];
        for (i, slot) in params.iter_mut().enumerate() {
            *slot = field(32 + 4 * i);
        }
        Ok(OpRecord { opcode, output: field(4), inputs, params })
    }

    /// Every scratch tensor op `index` reads is a model input or the output of an
    /// earlier op: ops run in file order, so a read of a tensor written only later (or by
    /// the op itself) is a cycle, and one never written reads stale bytes.
    #[cfg_attr(feature = "simd", optimize(size))] // cold: once per model (see lib.rs)
    fn check_producers(&self, index: usize, op: &OpRecord) -> Result<()> {
        let produced = |id: u32| {
            (0..self.n_inputs).any(|i| self.input_id(i) == Some(id))
                || (0..index).any(|j| u32_at(self.ops, j * format::OP_RECORD_BYTES + 4) == Some(id))
        };
        for &id in op.inputs.iter().filter(|&&id| id != format::NONE) {
            let scratch = self.tensor(id as usize).is_some_and(|t| t.storage == Storage::Arena);
            if scratch && !produced(id) {
                return Err(Error::BadOp {
                    index: index as u32,
                    opcode: op.opcode as u32,
                    reason: "reads a scratch tensor that no earlier op writes and that is not an input (a cycle?)",
                });
            }
        }
        Ok(())
    }

    #[cfg_attr(feature = "simd", optimize(size))] // cold: once per model (see lib.rs)
    fn validate_io(&self) -> Result<()> {
        let bad = |reason| Error::BadSection { kind: section::IO, reason };
        for i in 0..self.n_inputs {
            let id = self.input_id(i).ok_or(bad("input id missing"))?;
            let t = self.tensor(id as usize).ok_or(bad("input names a tensor that does not exist"))?;
            if t.storage != Storage::Arena {
                return Err(bad("an input is not an arena tensor"));
            }
        }
        for i in 0..self.n_outputs {
            let id = self.output_id(i).ok_or(bad("output id missing"))?;
            let t = self.tensor(id as usize).ok_or(bad("output names a tensor that does not exist"))?;
            if t.storage == Storage::Weight || t.dtype != DType::F32 {
                return Err(bad("an output is not an f32 arena tensor"));
            }
        }
        Ok(())
    }
}

/// The section table, validated: in range, no overlaps, required kinds present once.
struct Sections {
    count: usize,
    table: usize,
}

impl Sections {
    const MAX_SECTIONS: usize = 64;

    fn parse(bytes: &[u8]) -> Result<Self> {
        let count = header_u32(bytes, format::header::SECTION_COUNT)? as usize;
        let table = header_u32(bytes, format::header::SECTION_TABLE)? as usize;
        if count > Self::MAX_SECTIONS {
            return Err(Error::BadHeader { field: "section_count", value: count as u32 });
        }
        let table_end = table.saturating_add(count * format::SECTION_ENTRY_BYTES);
        if table < format::HEADER_BYTES {
            return Err(Error::BadHeader { field: "section_table", value: table as u32 });
        }
        if table_end > bytes.len() {
            return Err(Error::Truncated { what: "section table", needed: table_end, available: bytes.len() });
        }
        let s = Sections { count, table };
        for i in 0..count {
            let (kind, off, len) = s.entry(bytes, i);
            let end = off.checked_add(len).ok_or(Error::BadSection { kind, reason: "range overflows" })?;
            if end > bytes.len() {
                return Err(Error::Truncated { what: section::name(kind), needed: end, available: bytes.len() });
            }
            if off < table_end {
                return Err(Error::BadSection { kind, reason: "overlaps the header or section table" });
            }
            for j in 0..i {
                let (kj, oj, lj) = s.entry(bytes, j);
                if kj == kind && section::ALL.contains(&kind) {
                    return Err(Error::BadSection { kind, reason: "appears twice" });
                }
                if off < oj + lj && oj < end {
                    return Err(Error::BadSection { kind, reason: "overlaps another section" });
                }
            }
            if kind == section::WEIGHTS && off % format::WEIGHT_ALIGN != 0 {
                return Err(Error::Misaligned { what: "weights section", align: format::WEIGHT_ALIGN });
            }
        }
        Ok(s)
    }

    fn entry(&self, bytes: &[u8], i: usize) -> (u32, usize, usize) {
        let at = self.table + i * format::SECTION_ENTRY_BYTES;
        let f = |o| u32_at(bytes, at + o).unwrap_or(0);
        (f(0), f(4) as usize, f(8) as usize)
    }

    fn get<'a>(&self, bytes: &'a [u8], kind: u32) -> Result<&'a [u8]> {
        (0..self.count)
            .map(|i| self.entry(bytes, i))
            .find(|e| e.0 == kind)
            .and_then(|(_, off, len)| bytes.get(off..off + len))
            .ok_or(Error::MissingSection { kind: section::name(kind) })
    }
}

/// The name of tensor `index` in the raw bytes of a `.mote` file, read without parsing or
/// validating the rest of it (bounds-checked; None when it cannot be read). Host tools
/// use it to name the tensor of an [`Error::BadTensor`] or [`Error::BadBlock`] that
/// [`Model::parse`] returned.
pub fn tensor_name(bytes: &[u8], index: u32) -> Option<&str> {
    let sections = Sections::parse(bytes).ok()?;
    let tensors = sections.get(bytes, section::TENSORS).ok()?;
    let strings = sections.get(bytes, section::STRINGS).ok()?;
    let rec = tensors.get((index as usize).checked_mul(format::TENSOR_RECORD_BYTES)?..)?;
    let (off, len) = (u32_at(rec, 0)? as usize, u32_at(rec, 4)? as usize);
    core::str::from_utf8(strings.get(off..off.checked_add(len)?)?).ok()
}
