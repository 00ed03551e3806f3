//! The input blob embedded next to the model: written by the host (`cargo xtask qemu` /
//! `flash`, with [`write_tensors`] / [`write_prompt`]), read in place by the firmware
//! with [`parse`].
//!
//! Little-endian, every `u32` at a multiple of 4:
//!
//! ```text
//! "MOTEIN01"
//! u32 kind
//! kind 1 (f32 inputs by name): u32 items, u32 inputs,
//!     inputs x { u32 name_len, name bytes (UTF-8, zero-padded to 4), u32 elems_per_item },
//!     then items x inputs x elems_per_item f32 (item-major: item 0's inputs in order, then item 1's, ...)
//! kind 2 (a token prompt): u32 prompt_len (> 0), u32 generate, prompt_len x i32
//! ```
//!
//! Bytes after the last value are ignored. An empty blob means "no input given":
//! [`Input::Default`] (the firmware runs zeros, or [`DEFAULT_PROMPT`]).
//!
//! [`parse`] checks every length against the bytes left and every size for overflow
//! before use and never panics; its errors ([`BlobError`]) name the problem.

use core::fmt;

/// The blob's first 8 bytes.
pub const MAGIC: &[u8; 8] = b"MOTEIN01";
/// Kind 1: f32 inputs by name, `items` times.
pub const KIND_TENSORS: u32 = 1;
/// Kind 2: a token prompt and a number of tokens to generate.
pub const KIND_PROMPT: u32 = 2;

/// What the firmware runs without a blob on a token model: the prompt `[0]`, then 8
/// greedy tokens.
pub const DEFAULT_PROMPT: Prompt<'static> = Prompt { ids: &[0; 4], generate: 8 };

/// Why a blob was refused (by [`parse`]) or could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobError {
    /// A length or a count asks for more bytes than the blob has.
    Truncated,
    /// The blob does not start with [`MAGIC`].
    BadMagic,
    /// The kind is neither [`KIND_TENSORS`] nor [`KIND_PROMPT`].
    UnknownKind,
    /// An input name is not UTF-8.
    NameNotUtf8,
    /// The inputs' sizes (elements per item, times items, times 4 bytes) overflow.
    SizesOverflow,
    /// The prompt's byte length overflows.
    PromptOverflows,
    /// A prompt of no tokens.
    EmptyPrompt,
    /// Writing: a size does not fit the blob's `u32`.
    TooLarge,
    /// Writing: the values are not `items` times the inputs' elements per item.
    ValueCount,
}

impl BlobError {
    /// The problem in words (the firmware reports it as `error <message>`).
    pub const fn message(self) -> &'static str {
        match self {
            BlobError::Truncated => "input blob is truncated",
            BlobError::BadMagic => "input blob has a bad magic",
            BlobError::UnknownKind => "input blob has an unknown kind",
            BlobError::NameNotUtf8 => "input name is not UTF-8",
            BlobError::SizesOverflow => "input sizes overflow",
            BlobError::PromptOverflows => "prompt length overflows",
            BlobError::EmptyPrompt => "the prompt is empty",
            BlobError::TooLarge => "a size does not fit u32",
            BlobError::ValueCount => "the values are not items times the inputs' elements per item",
        }
    }
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for BlobError {}

/// What a blob asks the firmware to run.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// `items` runs of `invoke`, each filling every named f32 input.
    Tensors(Tensors<'a>),
    /// A prompt run through `step()` in chunks, then `generate` greedy tokens.
    Prompt(Prompt<'a>),
    /// No blob: zeros for f32 inputs, or [`DEFAULT_PROMPT`].
    Default,
}

/// One named input of a [`KIND_TENSORS`] blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorSpec<'a> {
    pub name: &'a str,
    pub elems_per_item: usize,
}

/// The f32 inputs of a [`KIND_TENSORS`] blob (checked by [`parse`]).
#[derive(Clone, Copy, Debug)]
pub struct Tensors<'a> {
    items: usize,
    inputs: usize,
    per_item: usize,
    specs: &'a [u8],
    data: &'a [u8],
}

impl<'a> Tensors<'a> {
    /// Items (runs of `invoke`).
    pub fn items(&self) -> usize {
        self.items
    }
    /// Named inputs per item.
    pub fn inputs(&self) -> usize {
        self.inputs
    }
    /// Elements of one item: every input's `elems_per_item`, summed.
    pub fn elems_per_item(&self) -> usize {
        self.per_item
    }
    /// The inputs' names and sizes, in blob order.
    pub fn specs(&self) -> Specs<'a> {
        Specs { bytes: self.specs, left: self.inputs }
    }
    /// Value `i` of item `item` (the item's inputs in order, concatenated); 0 past the end.
    pub fn value(&self, item: usize, i: usize) -> f32 {
        f32_at(self.data, item.saturating_mul(self.per_item).saturating_add(i))
    }
    /// All values, little-endian f32, item-major.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// The inputs' specs of a [`Tensors`] blob, in order.
#[derive(Clone, Copy, Debug)]
pub struct Specs<'a> {
    bytes: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Specs<'a> {
    type Item = TensorSpec<'a>;
    fn next(&mut self) -> Option<TensorSpec<'a>> {
        if self.left == 0 {
            return None;
        }
        // `parse` read every spec already: this cannot fail on a parsed blob.
        let mut r = Reader { bytes: self.bytes };
        let spec = r.spec().ok()?;
        self.bytes = r.bytes;
        self.left -= 1;
        Some(spec)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// The prompt of a [`KIND_PROMPT`] blob (at least one token).
#[derive(Clone, Copy, Debug)]
pub struct Prompt<'a> {
    ids: &'a [u8],
    generate: usize,
}

impl Prompt<'_> {
    /// Tokens in the prompt.
    pub fn len(&self) -> usize {
        self.ids.len() / 4
    }
    /// Never true for a parsed prompt.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Token `i` of the prompt (0 past the end).
    pub fn id(&self, i: usize) -> i32 {
        i32_at(self.ids, i)
    }
    /// Greedy tokens to generate after the prompt.
    pub fn generate(&self) -> usize {
        self.generate
    }
}

/// A little-endian reader over the blob that fails instead of panicking.
#[derive(Clone, Copy, Debug)]
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BlobError> {
        let (head, tail) = self.bytes.split_at_checked(n).ok_or(BlobError::Truncated)?;
        self.bytes = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, BlobError> {
        let (head, tail) = self.bytes.split_first_chunk::<4>().ok_or(BlobError::Truncated)?;
        self.bytes = tail;
        Ok(u32::from_le_bytes(*head))
    }
    fn usize(&mut self) -> Result<usize, BlobError> {
        self.u32().map(|v| v as usize)
    }
    fn spec(&mut self) -> Result<TensorSpec<'a>, BlobError> {
        let len = self.usize()?;
        let name = self.take(len)?;
        self.take(padding(len))?;
        let name = core::str::from_utf8(name).map_err(|_| BlobError::NameNotUtf8)?;
        Ok(TensorSpec { name, elems_per_item: self.usize()? })
    }
}

/// Zero bytes after a name of `len` bytes, to the next multiple of 4.
fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

fn word_at(bytes: &[u8], i: usize) -> Option<[u8; 4]> {
    bytes.get(i.checked_mul(4)?..)?.first_chunk::<4>().copied()
}

/// f32 number `i` of little-endian bytes (0 past the end).
pub fn f32_at(bytes: &[u8], i: usize) -> f32 {
    word_at(bytes, i).map_or(0.0, f32::from_le_bytes)
}

/// i32 number `i` of little-endian bytes (0 past the end).
pub fn i32_at(bytes: &[u8], i: usize) -> i32 {
    word_at(bytes, i).map_or(0, i32::from_le_bytes)
}

/// Reads a blob in place. Every length and count is checked against the bytes left and
/// every size for overflow; nothing panics.
pub fn parse(blob: &[u8]) -> Result<Input<'_>, BlobError> {
    if blob.is_empty() {
        return Ok(Input::Default);
    }
    let mut r = Reader { bytes: blob };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(BlobError::BadMagic);
    }
    match r.u32()? {
        KIND_TENSORS => {
            let (items, inputs) = (r.usize()?, r.usize()?);
            let start = r.bytes;
            let mut per_item = 0usize;
            for _ in 0..inputs {
                per_item = per_item.checked_add(r.spec()?.elems_per_item).ok_or(BlobError::SizesOverflow)?;
            }
            let specs = start.get(..start.len() - r.bytes.len()).ok_or(BlobError::Truncated)?;
            let data_bytes =
                per_item.checked_mul(items).and_then(|n| n.checked_mul(4)).ok_or(BlobError::SizesOverflow)?;
            let data = r.take(data_bytes)?;
            Ok(Input::Tensors(Tensors { items, inputs, per_item, specs, data }))
        }
        KIND_PROMPT => {
            let (len, generate) = (r.usize()?, r.usize()?);
            let ids = r.take(len.checked_mul(4).ok_or(BlobError::PromptOverflows)?)?;
            if len == 0 {
                return Err(BlobError::EmptyPrompt);
            }
            Ok(Input::Prompt(Prompt { ids, generate }))
        }
        _ => Err(BlobError::UnknownKind),
    }
}

#[cfg(feature = "std")]
fn put_u32(b: &mut std::vec::Vec<u8>, v: usize) -> Result<(), BlobError> {
    b.extend_from_slice(&u32::try_from(v).map_err(|_| BlobError::TooLarge)?.to_le_bytes());
    Ok(())
}

/// A [`KIND_TENSORS`] blob: `items` items of the named inputs `specs`; `values` holds
/// every item's inputs in order, item-major (`items` x the specs' `elems_per_item`
/// summed).
#[cfg(feature = "std")]
pub fn write_tensors(items: usize, specs: &[TensorSpec<'_>], values: &[f32]) -> Result<std::vec::Vec<u8>, BlobError> {
    let per_item =
        specs.iter().try_fold(0usize, |n, s| n.checked_add(s.elems_per_item)).ok_or(BlobError::SizesOverflow)?;
    if per_item.checked_mul(items) != Some(values.len()) {
        return Err(BlobError::ValueCount);
    }
    let mut b = std::vec::Vec::with_capacity(20 + specs.len() * 16 + values.len() * 4);
    b.extend_from_slice(MAGIC);
    put_u32(&mut b, KIND_TENSORS as usize)?;
    put_u32(&mut b, items)?;
    put_u32(&mut b, specs.len())?;
    for s in specs {
        put_u32(&mut b, s.name.len())?;
        b.extend_from_slice(s.name.as_bytes());
        b.resize(b.len() + padding(s.name.len()), 0);
        put_u32(&mut b, s.elems_per_item)?;
    }
    for v in values {
        b.extend_from_slice(&v.to_le_bytes());
    }
    Ok(b)
}

/// A [`KIND_PROMPT`] blob: the prompt `ids` (at least one), then `generate` greedy tokens.
#[cfg(feature = "std")]
pub fn write_prompt(ids: &[i32], generate: usize) -> Result<std::vec::Vec<u8>, BlobError> {
    if ids.is_empty() {
        return Err(BlobError::EmptyPrompt);
    }
    let mut b = std::vec::Vec::with_capacity(20 + ids.len() * 4);
    b.extend_from_slice(MAGIC);
    put_u32(&mut b, KIND_PROMPT as usize)?;
    put_u32(&mut b, ids.len())?;
    put_u32(&mut b, generate)?;
    for id in ids {
        b.extend_from_slice(&id.to_le_bytes());
    }
    Ok(b)
}
