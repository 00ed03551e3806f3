//! The input blob embedded next to the model (written by `cargo xtask qemu` / `flash`).
//!
//! Little-endian; every length is checked before use:
//!
//! ```text
//! "MOTEIN01"
//! u32 kind
//! kind 1 (f32 inputs by name): u32 items, u32 inputs,
//!     inputs x { u32 name_len, name bytes (padded to 4), u32 elems_per_item },
//!     then items x inputs x elems_per_item f32 (item-major)
//! kind 2 (a token prompt): u32 prompt_len, u32 generate, prompt_len x i32
//! ```
//! An empty blob means "no input given": zeros, or the one-token prompt `[0]`.

pub const MAGIC: &[u8; 8] = b"MOTEIN01";
pub const KIND_TENSORS: u32 = 1;
pub const KIND_PROMPT: u32 = 2;

/// What the firmware runs.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// `items` runs of `invoke`, each filling every named f32 input.
    Tensors { items: usize, inputs: usize, specs: &'a [u8], data: &'a [u8] },
    /// A prompt run through `step()` in chunks, then `generate` greedy tokens.
    Prompt { ids: &'a [u8], generate: usize },
    /// No blob: zeros for f32 inputs, or the prompt `[0]` and 8 tokens.
    Default,
}

/// A little-endian reader over the blob that fails instead of panicking.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    pub bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.bytes.len() {
            return Err("input blob is truncated");
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    pub fn u32(&mut self) -> Result<u32, &'static str> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn usize(&mut self) -> Result<usize, &'static str> {
        self.u32().map(|v| v as usize)
    }
    /// One input spec: (name, elements per item).
    pub fn spec(&mut self) -> Result<(&'a str, usize), &'static str> {
        let len = self.usize()?;
        let name = self.take(len)?;
        self.take((4 - len % 4) % 4)?;
        let name = core::str::from_utf8(name).map_err(|_| "input name is not UTF-8")?;
        Ok((name, self.usize()?))
    }
}

/// f32 number `i` of little-endian bytes (0 past the end; lengths are checked first).
pub fn f32_at(bytes: &[u8], i: usize) -> f32 {
    bytes.get(4 * i..4 * i + 4).map_or(0.0, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// i32 number `i` of little-endian bytes (0 past the end; lengths are checked first).
pub fn i32_at(bytes: &[u8], i: usize) -> i32 {
    bytes.get(4 * i..4 * i + 4).map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub fn parse(blob: &[u8]) -> Result<Input<'_>, &'static str> {
    if blob.is_empty() {
        return Ok(Input::Default);
    }
    let mut r = Reader { bytes: blob };
    if r.take(8)? != MAGIC {
        return Err("input blob has a bad magic");
    }
    match r.u32()? {
        KIND_TENSORS => {
            let (items, inputs) = (r.usize()?, r.usize()?);
            let start = r;
            let mut per_item = 0usize;
            for _ in 0..inputs {
                per_item = per_item.checked_add(r.spec()?.1).ok_or("input sizes overflow")?;
            }
            let specs = &start.bytes[..start.bytes.len() - r.bytes.len()];
            let data_bytes =
                per_item.checked_mul(items).and_then(|n| n.checked_mul(4)).ok_or("input sizes overflow")?;
            let data = r.take(data_bytes)?;
            Ok(Input::Tensors { items, inputs, specs, data })
        }
        KIND_PROMPT => {
            let (len, generate) = (r.usize()?, r.usize()?);
            let ids = r.take(len.checked_mul(4).ok_or("prompt length overflows")?)?;
            if len == 0 {
                return Err("the prompt is empty");
            }
            Ok(Input::Prompt { ids, generate })
        }
        _ => Err("input blob has an unknown kind"),
    }
}
