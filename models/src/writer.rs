//! Serialises a planned graph into `.mote` bytes (layout: `mote_runtime::format`).

use mote_runtime::Storage;
use mote_runtime::format::{
    self, CHECKSUM_START, HEADER_BYTES, MAGIC, NONE, OP_RECORD_BYTES, SECTION_ENTRY_BYTES, TENSOR_RECORD_BYTES,
    VERSION, VERSION_1, WEIGHT_ALIGN, header, section,
};

use crate::error::{Error, Result};
use crate::graph::{Graph, TensorKind};
use crate::planner::Plan;

fn u32_of(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::TooLarge { what: format!("{what} = {n} does not fit in 32 bits") })
}

fn put(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn pad_to(buf: &mut Vec<u8>, align: usize) {
    while !buf.len().is_multiple_of(align) {
        buf.push(0);
    }
}

/// Bytes of the WEIGHTS section with each weight taking `bytes(t)` (at 64-byte aligned
/// offsets, as `write` lays them out).
fn weights_len(g: &Graph, bytes: impl Fn(&crate::graph::TensorDef) -> usize) -> usize {
    g.tensors.iter().filter(|t| t.is_weight()).fold(0, |len, t| len.next_multiple_of(WEIGHT_ALIGN) + bytes(t))
}

/// The size of the file `write` makes of `g` (`file_bytes` long) had its quantized
/// weights been stored in f16: the WEIGHTS section is last, and only it changes.
pub fn f16_file_bytes(g: &Graph, file_bytes: usize) -> usize {
    let f16 = |t: &crate::graph::TensorDef| {
        if t.dtype.is_quantized() { t.elems() * 2 } else { t.bytes() }
    };
    file_bytes - weights_len(g, |t| t.bytes()) + weights_len(g, f16)
}

/// Writes `g` with arena offsets from `plan`.
pub fn write(g: &Graph, plan: &Plan) -> Result<Vec<u8>> {
    // String pool: architecture, config, tensor names.
    let mut strings = Vec::new();
    let add_str = |s: &str, strings: &mut Vec<u8>| -> Result<(u32, u32)> {
        let off = u32_of(strings.len(), "string pool")?;
        strings.extend_from_slice(s.as_bytes());
        Ok((off, u32_of(s.len(), "string length")?))
    };
    let arch = add_str(&g.architecture, &mut strings)?;
    let config = add_str(&g.config_json, &mut strings)?;
    let mut meta = Vec::new();
    for v in [arch.0, arch.1, config.0, config.1] {
        put(&mut meta, v);
    }

    // Weights, each at a 64-byte aligned offset; tensor records.
    let mut weights = Vec::new();
    let mut tensors = Vec::new();
    for (i, t) in g.tensors.iter().enumerate() {
        let (name_off, name_len) = add_str(&t.name, &mut strings)?;
        let (storage, offset) = match &t.kind {
            TensorKind::Weight(bytes) => {
                pad_to(&mut weights, WEIGHT_ALIGN);
                let off = weights.len();
                weights.extend_from_slice(bytes);
                (Storage::Weight, off)
            }
            TensorKind::Activation => (Storage::Arena, plan.offsets[i].unwrap_or(0)),
            TensorKind::Persistent => (Storage::Persistent, plan.offsets[i].unwrap_or(0)),
        };
        if t.shape.is_empty() || t.shape.len() > format::MAX_RANK {
            return Err(Error::TooLarge { what: format!("tensor {} has rank {}", t.name, t.shape.len()) });
        }
        put(&mut tensors, name_off);
        put(&mut tensors, name_len);
        let flags = if t.seq { format::TENSOR_SEQ } else { 0 };
        tensors.extend_from_slice(&[t.dtype as u8, storage as u8, t.shape.len() as u8, flags]);
        for d in 0..format::MAX_RANK {
            put(&mut tensors, u32_of(t.shape.get(d).copied().unwrap_or(0), "dimension")?);
        }
        put(&mut tensors, u32_of(offset, "tensor offset")?);
    }
    debug_assert_eq!(tensors.len(), g.tensors.len() * TENSOR_RECORD_BYTES);

    let mut ops = Vec::new();
    for op in &g.ops {
        put(&mut ops, op.opcode as u32);
        put(&mut ops, op.output);
        for i in op.inputs {
            put(&mut ops, i.unwrap_or(NONE));
        }
        for p in op.params {
            put(&mut ops, p);
        }
    }
    debug_assert_eq!(ops.len(), g.ops.len() * OP_RECORD_BYTES);

    let mut io = Vec::new();
    put(&mut io, g.inputs.len() as u32);
    put(&mut io, g.outputs.len() as u32);
    for &id in g.inputs.iter().chain(&g.outputs) {
        put(&mut io, id);
    }

    // Layout: header | section table | META STRINGS TENSORS OPS IO | pad | WEIGHTS.
    let sections: [(u32, &[u8]); 6] = [
        (section::META, &meta),
        (section::STRINGS, &strings),
        (section::TENSORS, &tensors),
        (section::OPS, &ops),
        (section::IO, &io),
        (section::WEIGHTS, &weights),
    ];
    let mut out = vec![0u8; HEADER_BYTES + sections.len() * SECTION_ENTRY_BYTES];
    let mut table = Vec::new();
    for (kind, body) in sections {
        if kind == section::WEIGHTS {
            pad_to(&mut out, WEIGHT_ALIGN);
        } else {
            pad_to(&mut out, 4);
        }
        put(&mut table, kind);
        put(&mut table, u32_of(out.len(), "section offset")?);
        put(&mut table, u32_of(body.len(), "section length")?);
        put(&mut table, 0);
        out.extend_from_slice(body);
    }
    out[HEADER_BYTES..HEADER_BYTES + table.len()].copy_from_slice(&table);
    let file_bytes = u32_of(out.len(), "file size")?;
    out[..8].copy_from_slice(&MAGIC);
    let mut set = |at: usize, v: u32| out[at..at + 4].copy_from_slice(&v.to_le_bytes());
    // Version 2 only when needed: files without quantized tensors stay version 1, byte for byte.
    let quantized = g.tensors.iter().any(|t| t.is_weight() && t.dtype.is_quantized());
    set(header::VERSION, if quantized { VERSION } else { VERSION_1 });
    set(header::HEADER_BYTES, HEADER_BYTES as u32);
    set(header::FILE_BYTES, file_bytes);
    set(header::SECTION_COUNT, sections.len() as u32);
    set(header::SECTION_TABLE, HEADER_BYTES as u32);
    set(header::ARENA_BYTES, u32_of(plan.arena_bytes, "arena bytes")?);
    set(header::PERSISTENT_BYTES, u32_of(plan.persistent_bytes, "persistent bytes")?);
    set(header::FLAGS, 0);
    set(header::MAX_TOKENS, u32_of(g.max_tokens, "max tokens")?);
    set(header::MAX_CONTEXT, u32_of(g.max_context, "max context")?);
    let crc = mote_runtime::crc32(&out[CHECKSUM_START..]);
    out[header::CHECKSUM..header::CHECKSUM + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}
