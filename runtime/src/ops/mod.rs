//! The ops: one module per op, each with its typed parameters (encoded by the converter's
//! writer, decoded by the parser), its validation (once, when the model is parsed) and its
//! execution. The table below is the one list of them: code, name, module, arity and the
//! runtime features (model families) that compile the op in.
//!
//! `validate` proves, for one op record, everything `execute` relies on: tensor ids
//! exist, dtypes and storages fit, element counts match the params at the largest token
//! count, token-row (SEQ) tensors line up, the output is a scratch tensor overlapping
//! none of the op's arena inputs. `execute` then reads the record and its tensors in
//! place without checking them again, slices the arena and calls the kernel; with `n`
//! tokens it uses the first `n` rows of every SEQ tensor.
//!
//! Adding an op: a module here with `Params` (implementing [`OpParams`]), `validate` and
//! `execute`, and one line in `op_table!`; docs/FORMAT.md's op table is checked against
//! this one by a test.

use mote_kernels::Src;
use mote_kernels::quant::QWeights;

use crate::Result;
use crate::error::Error;
use crate::format::{DType, MAX_OP_PARAMS, NONE, Storage};
use crate::model::{Model, OpRecord, TensorInfo};

/// The op list: code, name, module, (required, optional) inputs, and the runtime
/// features any one of which compiles the op in (none: every build).
macro_rules! op_table {
    ($( $code:literal $name:ident $module:ident ($req:literal, $opt:literal) [$($family:tt),*] ; )*) => {
        $( pub mod $module; )*

        /// The operations the interpreter executes. Inputs and params per opcode are
        /// listed in `docs/FORMAT.md` (checked against this table by a test); each op's
        /// module holds its typed parameters.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr(u32)]
        pub enum OpCode {
            $( $name = $code, )*
        }

        impl OpCode {
            /// Every op, in code order.
            pub const ALL: &'static [OpCode] = &[$(OpCode::$name),*];

            pub fn from_code(code: u32) -> Option<Self> {
                match code {
                    $( $code => Some(OpCode::$name), )*
                    _ => None,
                }
            }
            pub fn name(self) -> &'static str {
                match self {
                    $( OpCode::$name => stringify!($name), )*
                }
            }
            /// (required, optional) input counts; inputs past both must be absent.
            pub fn arity(self) -> (usize, usize) {
                match self {
                    $( OpCode::$name => ($req, $opt), )*
                }
            }
            /// The runtime features (model families) any one of which compiles the op
            /// in; empty for ops every build has.
            pub fn families(self) -> &'static [&'static str] {
                match self {
                    $( OpCode::$name => &[$($family),*], )*
                }
            }
            /// Whether this build of the runtime executes the op.
            pub fn enabled(self) -> bool {
                match self {
                    $( OpCode::$name => enabled!($($family),*), )*
                }
            }
        }

        /// The op's own checks (after the ones every op shares).
        fn validate_op(c: &Check<'_, '_>, out: &TensorInfo<'_>) -> Result<()> {
            match c.op.opcode {
                $( OpCode::$name if enabled!($($family),*) => $module::validate(c, &c.params()?, out), )*
                op => Err(disabled(c.index, op)),
            }
        }

        /// Runs the op (validated at parse).
        fn execute_op(e: Exec<'_, '_, '_>) -> Result<()> {
            match e.c.op.opcode {
                $( OpCode::$name if enabled!($($family),*) => {
                    let p = e.c.params()?;
                    $module::execute(e, &p)
                } )*
                op => Err(disabled(e.c.index, op)),
            }
        }
    };
}

/// Whether a build with these features has the op (constant: a disabled op's code is
/// never reached, so its kernels are not linked).
macro_rules! enabled {
    () => {
        true
    };
    ($($family:tt),+) => {
        cfg!(any($(feature = $family),+))
    };
}

/// `Params` of an op without parameters.
macro_rules! no_params {
    ($op:ident) => {
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Params;

        impl super::OpParams for Params {
            const OP: super::OpCode = super::OpCode::$op;
            fn encode(&self) -> super::RawParams {
                [0; crate::format::MAX_OP_PARAMS]
            }
            fn decode(_: &super::RawParams) -> core::result::Result<Self, &'static str> {
                Ok(Params)
            }
        }
    };
}

/// `Params` of a norm: the row width and epsilon.
macro_rules! norm_params {
    ($op:ident) => {
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct Params {
            pub dim: usize,
            pub eps: f32,
        }

        impl super::OpParams for Params {
            const OP: super::OpCode = super::OpCode::$op;
            fn encode(&self) -> super::RawParams {
                super::raw(&[super::u(self.dim), self.eps.to_bits()])
            }
            fn decode(p: &super::RawParams) -> core::result::Result<Self, &'static str> {
                let (dim, eps) = (p[0] as usize, f32::from_bits(p[1]));
                if !(eps.is_finite() && eps >= 0.0) {
                    return Err("eps is not a finite non-negative number");
                }
                if dim == 0 {
                    return Err("input rows are not [.., dim]");
                }
                Ok(Params { dim, eps })
            }
        }
    };
}

op_table! {
    1 PatchEmbed patch_embed (2, 1) ["vit"];
    2 ConcatRows concat_rows (2, 0) [];
    3 Add add (2, 0) [];
    4 LayerNorm layer_norm (2, 1) [];
    5 RmsNorm rms_norm (2, 0) ["transformer", "ssm"];
    6 MatMul matmul (2, 2) [];
    7 Attention attention (3, 3) ["vit", "transformer"];
    8 SelectRows select_rows (1, 0) [];
    9 Glu glu (1, 0) ["transformer"];
    10 Activation activation (1, 0) [];
    11 Embedding embedding (2, 0) ["transformer", "ssm"];
    12 PositionEmbedding position_embedding (1, 0) ["transformer"];
    13 Rope rope (2, 0) ["transformer"];
    14 CausalConv1d causal_conv1d (3, 1) ["ssm"];
    15 SelectiveScan selective_scan (6, 0) ["ssm"];
    16 TokenShift token_shift (3, 0) ["ssm"];
    17 Wkv wkv (6, 0) ["ssm"];
    18 Mul mul (2, 1) [];
}

/// An op's parameters as the file stores them: u32s, floats as their f32 bits, unused
/// ones 0.
pub type RawParams = [u32; MAX_OP_PARAMS];

/// An op's typed parameters: the converter's writer encodes them, the parser decodes
/// them (and refuses a record whose parameters are not valid ones).
pub trait OpParams: Sized {
    /// The op these are the parameters of.
    const OP: OpCode;
    fn encode(&self) -> RawParams;
    /// The parameters of a record, or why they are not valid.
    fn decode(raw: &RawParams) -> core::result::Result<Self, &'static str>;
}

/// The activation with this code: an unknown code, or softplus in a build without `ssm`
/// (whose kernels leave it out), is refused.
fn activation_code(code: u32) -> core::result::Result<mote_kernels::Activation, &'static str> {
    match mote_kernels::Activation::from_code(code) {
        None => Err("unknown activation code"),
        Some(mote_kernels::Activation::Softplus) if !cfg!(feature = "ssm") => {
            Err("the softplus activation is not compiled into this runtime: enable the mote-runtime feature `ssm`")
        }
        Some(a) => Ok(a),
    }
}

/// `values` then zeros.
fn raw(values: &[u32]) -> RawParams {
    let mut p = [0; MAX_OP_PARAMS];
    p.iter_mut().zip(values).for_each(|(p, v)| *p = *v);
    p
}

/// A usize parameter as the file stores it (the writer's shapes fit in u32).
fn u(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

fn disabled(index: u32, op: OpCode) -> Error {
    let feature = match op.families() {
        ["vit", "transformer"] => "vit` or `transformer",
        ["transformer", "ssm"] => "transformer` or `ssm",
        [one, ..] => one,
        [] => "",
    };
    Error::OpDisabled { index, op: op.name(), feature }
}

/// `Err(OpDisabled)` when op `index` is not compiled into this runtime.
pub(crate) fn check_enabled(index: u32, op: OpCode) -> Result<()> {
    if op.enabled() { Ok(()) } else { Err(disabled(index, op)) }
}

/// Per-call state: tokens in this call, tokens already in the KV cache.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    pub n: usize,
    pub pos: usize,
}

/// Rows of `t` in a call on `n` tokens.
fn rows(t: &TensorInfo<'_>, n: usize) -> usize {
    if t.seq { n } else { t.shape.rows() }
}

fn elems(t: &TensorInfo<'_>, n: usize) -> usize {
    rows(t, n) * t.shape.cols()
}

/// One op record being validated (at parse) or run: where errors point.
pub(crate) struct Check<'m, 'a> {
    pub(crate) model: &'m Model<'a>,
    pub(crate) index: u32,
    pub(crate) op: &'m OpRecord,
}

impl<'a> Check<'_, 'a> {
    /// The record's typed parameters.
    fn params<P: OpParams>(&self) -> Result<P> {
        P::decode(&self.op.params).map_err(|reason| self.err(reason))
    }
    fn err(&self, reason: &'static str) -> Error {
        Error::BadOp { index: self.index, opcode: self.op.opcode as u32, reason }
    }
    fn tensor(&self, id: u32) -> Result<TensorInfo<'a>> {
        // The ops never read a tensor's name.
        self.model.tensor_unnamed(id as usize).ok_or(self.err("refers to a tensor that does not exist"))
    }
    /// Input `slot`: an f32 tensor in the scratch arena (an activation).
    fn act(&self, slot: usize) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.inputs[slot])?;
        if t.storage != Storage::Arena || t.dtype != DType::F32 {
            return Err(self.err("an activation input is not an f32 arena tensor"));
        }
        Ok(t)
    }
    /// Input `slot`: f32 or f16, weight or activation.
    fn operand(&self, slot: usize) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.inputs[slot])?;
        if t.dtype.is_quantized() {
            return Err(self.err(
                "an operand is a quantized (int8 / int4) tensor, which only a MatMul weight or an Embedding table may be",
            ));
        }
        if t.dtype == DType::I32 || t.storage == Storage::Persistent {
            return Err(self.err("an operand is not an f32/f16 weight or activation"));
        }
        Ok(t)
    }
    /// Input `slot`: a [`fixed`](Self::fixed) operand that may also be a quantized
    /// `[rows, cols]` weight (MatMul's weight, Embedding's table), whose blocks run along
    /// rows of exactly `cols` (a multiple of the group size, checked by the tensor's
    /// parse).
    fn matrix(&self, slot: usize, rows: usize, cols: usize, reason: &'static str) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.inputs[slot])?;
        if !t.dtype.is_quantized() {
            let t = self.fixed(slot)?;
            self.elems_eq(&t, mul(rows, cols), reason)?;
            return Ok(t);
        }
        // Quantized tensors are weights (checked by the tensor's parse), so never token rows.
        self.ensure(t.storage == Storage::Weight && !t.seq, "a quantized operand is not a weight")?;
        self.ensure(t.shape.cols() == cols && t.shape.rows() == rows, reason)?;
        Ok(t)
    }
    fn opt_operand(&self, slot: usize) -> Result<Option<TensorInfo<'a>>> {
        if self.op.inputs[slot] == NONE { Ok(None) } else { self.operand(slot).map(Some) }
    }
    /// Input `slot`: an operand read whole whatever the call's token count (a weight,
    /// gamma, bias, table, ...), so not a token-row tensor, of which a call on fewer
    /// tokens than `max_tokens` would hand the kernel only the first rows.
    fn fixed(&self, slot: usize) -> Result<TensorInfo<'a>> {
        let t = self.operand(slot)?;
        self.ensure(!t.seq, "a weight-like operand (weight, gamma, bias, table) has token rows")?;
        Ok(t)
    }
    fn opt_fixed(&self, slot: usize) -> Result<Option<TensorInfo<'a>>> {
        if self.op.inputs[slot] == NONE { Ok(None) } else { self.fixed(slot).map(Some) }
    }
    fn opt_act(&self, slot: usize) -> Result<Option<TensorInfo<'a>>> {
        if self.op.inputs[slot] == NONE { Ok(None) } else { self.act(slot).map(Some) }
    }
    fn out(&self) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.output)?;
        if t.storage != Storage::Arena || t.dtype != DType::F32 {
            return Err(self.err("the output is not an f32 scratch arena tensor"));
        }
        Ok(t)
    }
    fn ensure(&self, cond: bool, reason: &'static str) -> Result<()> {
        if cond { Ok(()) } else { Err(self.err(reason)) }
    }
    fn elems_eq(&self, t: &TensorInfo<'_>, n: Option<usize>, reason: &'static str) -> Result<()> {
        self.ensure(n == Some(t.elems()), reason)
    }
    /// Row-wise ops keep token rows: the output is SEQ exactly when `x` is.
    fn same_rows(&self, x: &TensorInfo<'_>, out: &TensorInfo<'_>) -> Result<()> {
        self.ensure(x.seq == out.seq, "input and output disagree on token rows")
    }
    /// Input `slot`: an f32 persistent tensor of `elems` elements (state the op updates).
    fn state(&self, slot: usize, elems: Option<usize>) -> Result<TensorInfo<'a>> {
        let t = self.tensor(self.op.inputs[slot])?;
        if t.storage != Storage::Persistent || t.dtype != DType::F32 {
            return Err(self.err("the state is not an f32 persistent tensor"));
        }
        self.elems_eq(&t, elems, "the state has the wrong size")?;
        Ok(t)
    }
}

fn mul(a: usize, b: usize) -> Option<usize> {
    a.checked_mul(b)
}

/// Validates one op (see the module docs): the checks every op shares, then its own.
#[cfg_attr(feature = "simd", optimize(size))] // cold: once per model (see lib.rs)
pub(crate) fn validate(model: &Model<'_>, index: u32, op: &OpRecord) -> Result<()> {
    let c = Check { model, index, op };
    let (required, optional) = op.opcode.arity();
    for (slot, &id) in op.inputs.iter().enumerate() {
        if slot < required && id == NONE {
            return Err(c.err("a required input is missing"));
        }
        if slot >= required + optional && id != NONE {
            return Err(c.err("has more inputs than the op takes"));
        }
    }
    let out = c.out()?;
    // The output must not share bytes with any arena input: kernels read inputs while
    // writing the output.
    for &id in op.inputs.iter().filter(|&&id| id != NONE) {
        let t = c.tensor(id)?;
        if t.storage != Storage::Weight && t.offset < out.offset + out.bytes && out.offset < t.offset + t.bytes {
            return Err(c.err("the output overlaps an input in the arena"));
        }
    }
    validate_op(&c, &out)
}

/// The scratch arena split around one op's output: the output slice is borrowed
/// mutably, the bytes before and after it shared, so inputs can be read while the
/// output is written. Offsets are arena offsets.
struct Frame<'x> {
    before: &'x [u8],
    after: &'x [u8],
    after_start: usize,
    weights: &'x [u8],
}

fn misaligned() -> Error {
    Error::Misaligned { what: "tensor", align: 4 }
}

impl<'x> Frame<'x> {
    /// The first `count` elements of `t` (all of a weight).
    fn bytes(&self, t: &TensorInfo<'_>, count: usize) -> Option<&'x [u8]> {
        let len = t.dtype.bytes_for(count)?.min(t.bytes);
        let r = t.offset..t.offset + len;
        match t.storage {
            Storage::Weight => self.weights.get(r),
            Storage::Persistent => None,
            Storage::Arena if r.end <= self.before.len() => self.before.get(r),
            Storage::Arena if r.start >= self.after_start => {
                self.after.get(r.start - self.after_start..r.end - self.after_start)
            }
            Storage::Arena => None,
        }
    }
    fn f32(&self, t: &TensorInfo<'_>, count: usize) -> Result<&'x [f32]> {
        self.bytes(t, count).and_then(|b| bytemuck::try_cast_slice(b).ok()).ok_or_else(misaligned)
    }
    fn i32(&self, t: &TensorInfo<'_>, count: usize) -> Result<&'x [i32]> {
        self.bytes(t, count).and_then(|b| bytemuck::try_cast_slice(b).ok()).ok_or_else(misaligned)
    }
    fn src(&self, t: &TensorInfo<'_>, count: usize) -> Result<Src<'x>> {
        let b = self.bytes(t, count).ok_or_else(misaligned)?;
        Ok(match t.dtype {
            DType::F16 => Src::F16(bytemuck::try_cast_slice(b).map_err(|_| misaligned())?),
            DType::F32 | DType::I32 => Src::F32(bytemuck::try_cast_slice(b).map_err(|_| misaligned())?),
            // Validation gives quantized tensors only to the slots that read them as blocks.
            DType::Int8 | DType::Int4 => return Err(misaligned()),
        })
    }
    /// A whole quantized weight as its blocks (weights are 64-byte aligned, blocks
    /// 2-byte aligned); None when `t` is not quantized.
    fn quant(&self, t: &TensorInfo<'_>) -> Result<Option<QWeights<'x>>> {
        if !cfg!(feature = "quant") {
            return Ok(None); // refused at parse: the quantized kernels are not linked
        }
        let b = || self.weights.get(t.range()).ok_or_else(misaligned);
        Ok(match t.dtype {
            DType::Int8 => Some(QWeights::Q8(bytemuck::try_cast_slice(b()?).map_err(|_| misaligned())?)),
            DType::Int4 => Some(QWeights::Q4(bytemuck::try_cast_slice(b()?).map_err(|_| misaligned())?)),
            _ => None,
        })
    }
}

/// Splits the arena into (persistent region, output bytes, frame over the rest of the
/// scratch region).
fn split<'x>(
    arena: &'x mut [u8],
    persistent_bytes: usize,
    out: &TensorInfo<'_>,
    weights: &'x [u8],
) -> Result<(&'x mut [u8], &'x mut [u8], Frame<'x>)> {
    let r = out.range();
    if r.start < persistent_bytes || r.end > arena.len() {
        return Err(Error::ArenaTooSmall { needed: r.end, available: arena.len() });
    }
    let (persistent, scratch) = arena.split_at_mut(persistent_bytes);
    let (before, rest) = scratch.split_at_mut(r.start - persistent_bytes);
    let (out_bytes, after) = rest.split_at_mut(r.end - r.start);
    // The frame addresses scratch tensors from the start of the scratch region (see `rebase`).
    Ok((persistent, out_bytes, Frame { before, after, after_start: r.end - persistent_bytes, weights }))
}

/// `t` with a scratch tensor's offset taken from the start of the scratch region.
fn rebase<'a>(t: TensorInfo<'a>, persistent_bytes: usize) -> TensorInfo<'a> {
    match t.storage {
        Storage::Arena => TensorInfo { offset: t.offset.saturating_sub(persistent_bytes), ..t },
        _ => t,
    }
}

/// Two disjoint mutable f32 tensors of the persistent region.
fn two_mut<'x>(region: &'x mut [u8], a: &TensorInfo<'_>, b: &TensorInfo<'_>) -> Result<(&'x mut [f32], &'x mut [f32])> {
    let (first, second, swap) = if a.offset <= b.offset { (a, b, false) } else { (b, a, true) };
    if first.range().end > second.offset || second.range().end > region.len() {
        return Err(misaligned());
    }
    let (lo, hi) = region.split_at_mut(second.offset);
    let x = lo.get_mut(first.range()).ok_or_else(misaligned)?;
    let y = hi.get_mut(..second.bytes).ok_or_else(misaligned)?;
    let x: &mut [f32] = bytemuck::try_cast_slice_mut(x).map_err(|_| misaligned())?;
    let y: &mut [f32] = bytemuck::try_cast_slice_mut(y).map_err(|_| misaligned())?;
    Ok(if swap { (y, x) } else { (x, y) })
}

/// Columns `col..` of a row-major tensor's data (empty past the end).
fn cols(x: &[f32], col: usize) -> &[f32] {
    x.get(col..).unwrap_or(&[])
}

/// One validated op about to run: its record, the call, and the arena split around its
/// output. Tensors are read in place (`Model::tensor_view`): parsing checked them.
pub(crate) struct Exec<'x, 'm, 'a> {
    c: Check<'m, 'a>,
    run: Run,
    /// Bytes of the persistent region (scratch tensors are rebased past it).
    pb: usize,
    frame: Frame<'x>,
    /// The persistent region (KV caches, recurrent state).
    persistent: &'x mut [u8],
    /// The output tensor and its elements in this call.
    out_t: TensorInfo<'a>,
    out: &'x mut [f32],
}

impl<'x, 'a> Exec<'x, '_, 'a> {
    fn tensor_id(&self, id: u32) -> Result<TensorInfo<'a>> {
        self.c.model.tensor_view(id as usize).ok_or_else(misaligned)
    }
    /// The tensor in input `slot`, scratch offsets from the start of the scratch region.
    fn tensor(&self, slot: usize) -> Result<TensorInfo<'a>> {
        self.tensor_id(self.c.op.inputs[slot]).map(|t| rebase(t, self.pb))
    }
    /// Rows of `t` in this call.
    fn rows(&self, t: &TensorInfo<'_>) -> usize {
        rows(t, self.run.n)
    }
    /// The quantized weight in input `slot`, or None when it is f32 / f16.
    fn quant(&self, slot: usize) -> Result<Option<QWeights<'x>>> {
        let t = self.tensor(slot)?;
        self.frame.quant(&t)
    }
    fn src(&self, slot: usize) -> Result<Src<'x>> {
        let t = self.tensor(slot)?;
        self.frame.src(&t, elems(&t, self.run.n))
    }
    fn opt_src(&self, slot: usize) -> Result<Option<Src<'x>>> {
        if self.c.op.inputs[slot] == NONE { Ok(None) } else { self.src(slot).map(Some) }
    }
    fn act(&self, slot: usize) -> Result<&'x [f32]> {
        let t = self.tensor(slot)?;
        self.frame.f32(&t, elems(&t, self.run.n))
    }
    fn opt_act(&self, slot: usize) -> Result<Option<&'x [f32]>> {
        if self.c.op.inputs[slot] == NONE { Ok(None) } else { self.act(slot).map(Some) }
    }
    /// The persistent tensor in input `slot` (state the op updates), and the output.
    fn state_and_out(self, slot: usize) -> Result<(&'x mut [f32], &'x mut [f32])> {
        let st = self.tensor_id(self.c.op.inputs[slot])?;
        let state = self
            .persistent
            .get_mut(st.range())
            .and_then(|b| bytemuck::try_cast_slice_mut(b).ok())
            .ok_or_else(misaligned)?;
        Ok((state, self.out))
    }
}

/// Runs one validated op over the arena for a call on `run.n` tokens.
pub(crate) fn execute(model: &Model<'_>, index: u32, op: &OpRecord, arena: &mut [u8], run: Run) -> Result<()> {
    let c = Check { model, index, op };
    let out_t = model.tensor_view(op.output as usize).ok_or_else(misaligned)?;
    let pb = model.persistent_bytes();
    let (persistent, out_bytes, frame) = split(arena, pb, &out_t, model.weights())?;
    let out_all: &mut [f32] = bytemuck::try_cast_slice_mut(out_bytes).map_err(|_| misaligned())?;
    let out = out_all.get_mut(..elems(&out_t, run.n)).ok_or_else(misaligned)?;
    execute_op(Exec { c, run, pb, frame, persistent, out_t, out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mote_kernels::Activation;

    #[test]
    #[cfg(all(feature = "vit", feature = "transformer", feature = "ssm"))]
    fn default_build_runs_every_op() {
        // The default features are every family: nothing may be missing.
        for &op in OpCode::ALL {
            assert!(op.enabled(), "{}", op.name());
            assert_eq!(check_enabled(0, op), Ok(()));
        }
    }

    #[test]
    fn codes_and_names_are_one_table() {
        for (i, &op) in OpCode::ALL.iter().enumerate() {
            assert_eq!(op as u32, i as u32 + 1, "codes run 1, 2, ... in the table's order");
            assert_eq!(OpCode::from_code(op as u32), Some(op));
        }
        assert_eq!(OpCode::from_code(0), None);
        assert_eq!(OpCode::from_code(OpCode::ALL.len() as u32 + 1), None);
    }

    /// docs/FORMAT.md's op table lists exactly these codes and names.
    #[test]
    fn format_md_op_table_matches() {
        let doc = include_str!("../../../docs/FORMAT.md");
        let section = doc.split("\n## ").find(|s| s.starts_with("Op record")).unwrap_or_default();
        let mut rows: Vec<(u32, &str)> = section
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let code = cells.get(1)?.parse::<u32>().ok()?;
                let name = *cells.get(2)?;
                name.chars().next().is_some_and(char::is_uppercase).then_some((code, name))
            })
            .collect();
        rows.sort();
        let want: Vec<(u32, &str)> = OpCode::ALL.iter().map(|&op| (op as u32, op.name())).collect();
        assert_eq!(rows, want);
    }

    fn round_trip<P: OpParams + PartialEq + core::fmt::Debug>(p: P) {
        assert_eq!(P::decode(&p.encode()).as_ref(), Ok(&p), "{}", P::OP.name());
    }

    #[test]
    fn softplus_only_with_ssm() {
        assert_eq!(activation_code(Activation::Silu.code()), Ok(Activation::Silu));
        assert_eq!(activation_code(99), Err("unknown activation code"));
        let softplus = activation_code(Activation::Softplus.code());
        if cfg!(feature = "ssm") {
            assert_eq!(softplus, Ok(Activation::Softplus));
        } else {
            assert!(softplus.is_err_and(|e| e.contains("`ssm`")));
        }
    }

    #[test]
    fn params_round_trip() {
        let act = Activation::GeluTanh;
        round_trip(patch_embed::Params { channels: 3, height: 8, width: 6, patch: 2, dim: 5 });
        round_trip(concat_rows::Params);
        round_trip(add::Params);
        round_trip(layer_norm::Params { dim: 7, eps: 1e-5 });
        round_trip(rms_norm::Params { dim: 9, eps: 0.0 });
        round_trip(matmul::Params { m: 2, k: 3, n: 4, act, x_col: 5 });
        let scale = 0.125;
        round_trip(attention::Params {
            heads: 4,
            kv_heads: 2,
            head_dim: 8,
            q_col: 0,
            k_col: 32,
            v_col: 48,
            causal: true,
            scale,
        });
        round_trip(select_rows::Params { start: 1, count: 2 });
        round_trip(glu::Params { n: 3, act: Activation::Silu });
        round_trip(activation::Params { act });
        round_trip(embedding::Params { vocab: 10, dim: 4 });
        round_trip(position_embedding::Params { positions: 16, dim: 4 });
        round_trip(rope::Params { heads: 2, head_dim: 6 });
        round_trip(causal_conv1d::Params { channels: 4, kernel: 3, act: Activation::Silu });
        round_trip(selective_scan::Params { e: 4, n: 3 });
        round_trip(token_shift::Params { width: 4, mixes: 2 });
        round_trip(wkv::Params { width: 4 });
        round_trip(mul::Params);
    }

    #[test]
    fn bad_params_are_refused_with_a_reason() {
        let mut p = matmul::Params { m: 1, k: 1, n: 1, act: Activation::None, x_col: 0 }.encode();
        p[3] = 99;
        assert_eq!(matmul::Params::decode(&p), Err("unknown activation code"));
        let a = attention::Params {
            heads: 3,
            kv_heads: 2,
            head_dim: 4,
            q_col: 0,
            k_col: 0,
            v_col: 0,
            causal: false,
            scale: 1.0,
        };
        assert_eq!(attention::Params::decode(&a.encode()), Err("heads is not a multiple of kv_heads"));
        let n = layer_norm::Params { dim: 4, eps: f32::NAN };
        assert_eq!(layer_norm::Params::decode(&n.encode()), Err("eps is not a finite non-negative number"));
    }
}
