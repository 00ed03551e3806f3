//! The interpreter: binds a model to a caller-owned arena and runs its op list.

use crate::Result;
use crate::error::Error;
use crate::format::{self, DType, NONE, OpCode};
use crate::model::{Model, TensorInfo};
use crate::ops::{self, OpParams, Run};

/// Called around every op by [`Interpreter::invoke_profiled`] and
/// [`Interpreter::step_profiled`], e.g. to read a cycle counter and charge the op's
/// family. Both methods default to nothing; `()` is the hook that does nothing, and
/// [`Interpreter::invoke`] uses it, so profiling costs nothing when unused.
pub trait OpHook {
    /// Just before op `index` (of kind `op`) runs.
    fn before(&mut self, index: usize, op: OpCode) {
        let _ = (index, op);
    }
    /// Just after op `index` ran.
    fn after(&mut self, index: usize, op: OpCode) {
        let _ = (index, op);
    }
}

impl OpHook for () {}

/// Runs a [`Model`] over an arena the caller owns (a `static` buffer on a board).
/// Nothing is allocated: every tensor lives at the offset the converter planned.
///
/// Models with token inputs process `n` tokens per call (`1..=max_tokens`, set with
/// [`set_tokens`](Self::set_tokens) or by [`step`](Self::step)); decoders keep a KV cache
/// in the persistent region and advance their position by `n` on every call.
#[derive(Debug)]
pub struct Interpreter<'m, 'a> {
    model: &'m Model<'m>,
    /// The model's arena: exactly `model.arena_bytes()`, 64-byte aligned.
    arena: &'a mut [u8],
    /// Tokens in the next call.
    n_tokens: usize,
    /// Tokens already in the KV cache.
    pos: usize,
}

impl<'m, 'a> Interpreter<'m, 'a> {
    /// Binds `arena` (any alignment; up to 63 bytes are skipped to align it) and clears
    /// the persistent region. Fails with [`Error::ArenaTooSmall`] when it cannot hold the
    /// model's plan.
    #[inline(never)] // an entry point: one copy, counted as runtime code by `xtask qemu`
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self> {
        let skip = arena.as_ptr().align_offset(format::ARENA_ALIGN);
        let needed = model.arena_bytes().saturating_add(skip.min(format::ARENA_ALIGN - 1));
        if arena.len() < needed || skip >= format::ARENA_ALIGN {
            return Err(Error::ArenaTooSmall { needed, available: arena.len() });
        }
        let arena = &mut arena[skip..skip + model.arena_bytes()];
        let mut interp = Interpreter { model, arena, n_tokens: model.max_tokens().max(1), pos: 0 };
        interp.reset();
        Ok(interp)
    }

    /// Arena bytes needed by `model` for a caller buffer at any alignment (the worst case).
    pub fn arena_bytes_for(model: &Model<'_>) -> usize {
        model.arena_bytes() + format::ARENA_ALIGN - 1
    }

    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Clears the persistent region (KV cache, recurrent state) and the position.
    pub fn reset(&mut self) {
        let n = self.model.persistent_bytes().min(self.arena.len());
        self.arena[..n].fill(0);
        self.pos = 0;
    }

    /// Tokens run since the last reset (0 for stateless models): the KV-cache position.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Tokens in the next call.
    pub fn tokens(&self) -> usize {
        self.n_tokens
    }

    /// Sets the number of tokens of the next call: `1..=max_tokens`, and no more than the
    /// KV cache has room for. Inputs with token rows then take exactly `n` rows.
    #[inline(never)] // an entry point: one copy, counted as runtime code by `xtask qemu`
    pub fn set_tokens(&mut self, n: usize) -> Result<()> {
        let max = self.model.max_tokens();
        if n == 0 || n > max {
            return Err(Error::TokenCount { got: n, max });
        }
        let ctx = self.model.max_context();
        if ctx > 0 && self.pos + n > ctx {
            return Err(Error::ContextFull { needed: self.pos + n, capacity: ctx });
        }
        self.n_tokens = n;
        Ok(())
    }

    /// Runs every op in order on the tokens set, then (for models with a KV cache)
    /// advances the position by them.
    ///
    /// Inputs are consumed: the planner reuses an input's arena bytes once no later op
    /// reads it (as TFLite Micro does), so set every input again before each `invoke`.
    /// Outputs stay valid until the next `invoke`. The only error a valid model can give
    /// here is [`Error::ContextFull`].
    pub fn invoke(&mut self) -> Result<()> {
        self.invoke_profiled(&mut ())
    }

    /// [`invoke`](Self::invoke), calling `hook` before and after every op.
    #[inline(never)] // an entry point: one copy, counted as runtime code by `xtask qemu`
    pub fn invoke_profiled<H: OpHook + ?Sized>(&mut self, hook: &mut H) -> Result<()> {
        let ctx = self.model.max_context();
        if ctx > 0 && self.pos + self.n_tokens > ctx {
            return Err(Error::ContextFull { needed: self.pos + self.n_tokens, capacity: ctx });
        }
        let run = Run { n: self.n_tokens, pos: self.pos };
        for i in 0..self.model.op_count() {
            let op = self.model.op(i).ok_or(Error::BadOp { index: i as u32, opcode: 0, reason: "unreadable" })?;
            hook.before(i, op.opcode);
            ops::execute(self.model, i as u32, &op, self.arena, run)?;
            hook.after(i, op.opcode);
        }
        if self.model.persistent_bytes() > 0 {
            // Stateful models count the tokens run since the last reset.
            self.pos = self.pos.saturating_add(self.n_tokens);
        }
        Ok(())
    }

    /// Runs `ids` (the next tokens) through a model whose token input is `input_ids`:
    /// `set_tokens`, `set_input_ids`, `invoke`. Outputs with token rows then hold one
    /// row per token (e.g. `logits` `[n, vocab]`).
    pub fn step(&mut self, ids: &[i32]) -> Result<()> {
        self.step_profiled(ids, &mut ())
    }

    /// [`step`](Self::step), calling `hook` before and after every op.
    #[inline(never)] // an entry point: one copy, counted as runtime code by `xtask qemu`
    pub fn step_profiled<H: OpHook + ?Sized>(&mut self, ids: &[i32], hook: &mut H) -> Result<()> {
        self.set_tokens(ids.len())?;
        self.set_input_ids("input_ids", ids)?;
        self.invoke_profiled(hook)
    }

    fn input_info(&self, name: &str) -> Result<TensorInfo<'m>> {
        self.model.find_input(name).and_then(|i| self.model.input(i)).ok_or(Error::UnknownName { what: "input" })
    }

    fn output_info(&self, name: &str) -> Result<TensorInfo<'m>> {
        self.model.find_output(name).and_then(|i| self.model.output(i)).ok_or(Error::UnknownName { what: "output" })
    }

    /// Elements of `t` in the current call.
    fn active_elems(&self, t: &TensorInfo<'_>) -> usize {
        if t.seq { self.n_tokens * t.shape.cols() } else { t.elems() }
    }

    fn bytes_mut(&mut self, t: &TensorInfo<'_>) -> Result<&mut [u8]> {
        let len = t.dtype.bytes_for(self.active_elems(t)).unwrap_or(usize::MAX);
        let available = self.arena.len();
        self.arena.get_mut(t.offset..t.offset + len).ok_or(Error::ArenaTooSmall { needed: t.offset + len, available })
    }

    /// The f32 input called `name`, to fill in place (for token-row inputs, the rows of
    /// the current call).
    #[inline(never)] // an entry point: one copy, counted as runtime code by `xtask qemu`
    pub fn input_mut(&mut self, name: &str) -> Result<&mut [f32]> {
        let t = self.input_info(name)?;
        if t.dtype != DType::F32 {
            return Err(Error::WrongDType { expected: "f32", found: t.dtype.name() });
        }
        bytemuck::try_cast_slice_mut(self.bytes_mut(&t)?).map_err(|_| Error::Misaligned { what: "input", align: 4 })
    }

    /// Copies `data` into the f32 input called `name`; the length must match exactly and
    /// every value must be finite ([`Error::NonFiniteInput`] names the first that is not:
    /// a NaN would otherwise spread silently through every later op). [`input_mut`]
    /// (Self::input_mut) writes in place without this check.
    #[inline(never)] // an entry point: one copy, counted as runtime code by `xtask qemu`
    pub fn set_input(&mut self, name: &str, data: &[f32]) -> Result<()> {
        let dst = self.input_mut(name)?;
        if dst.len() != data.len() {
            return Err(Error::InputSize { expected: dst.len(), got: data.len() });
        }
        if let Some(index) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteInput { index });
        }
        dst.copy_from_slice(data);
        Ok(())
    }

    /// Copies token ids (or token types) into the i32 input called `name`, after checking
    /// each against the table every embedding that reads this input looks up.
    #[inline(never)] // an entry point: one copy, counted as runtime code by `xtask qemu`
    pub fn set_input_ids(&mut self, name: &str, ids: &[i32]) -> Result<()> {
        let t = self.input_info(name)?;
        if t.dtype != DType::I32 {
            return Err(Error::WrongDType { expected: "i32", found: t.dtype.name() });
        }
        let id = self.model.input_id(self.model.find_input(name).unwrap_or(0)).unwrap_or(NONE);
        let limit = (0..self.model.op_count())
            .filter_map(|i| self.model.op(i))
            .filter(|op| op.opcode == OpCode::Embedding && op.inputs[0] == id)
            .filter_map(|op| ops::embedding::Params::decode(&op.params).ok())
            .map(|p| p.vocab as i64)
            .min()
            .unwrap_or(i64::from(i32::MAX));
        if let Some((index, &v)) = ids.iter().enumerate().find(|(_, v)| **v < 0 || i64::from(**v) >= limit) {
            return Err(Error::InputOutOfRange { index, value: i64::from(v), limit });
        }
        let dst: &mut [i32] = bytemuck::try_cast_slice_mut(self.bytes_mut(&t)?)
            .map_err(|_| Error::Misaligned { what: "input", align: 4 })?;
        if dst.len() != ids.len() {
            return Err(Error::InputSize { expected: dst.len(), got: ids.len() });
        }
        dst.copy_from_slice(ids);
        Ok(())
    }

    /// The f32 output called `name`, valid after [`invoke`](Self::invoke); for outputs
    /// with token rows, the rows of the last call.
    #[inline(never)] // an entry point: one copy, counted as runtime code by `xtask qemu`
    pub fn output(&self, name: &str) -> Result<&[f32]> {
        let t = self.output_info(name)?;
        let len = self.active_elems(&t) * 4;
        let available = self.arena.len();
        let b = self
            .arena
            .get(t.offset..t.offset + len)
            .ok_or(Error::ArenaTooSmall { needed: t.offset + len, available })?;
        bytemuck::try_cast_slice(b).map_err(|_| Error::Misaligned { what: "output", align: 4 })
    }

    /// The persistent state (KV cache or recurrent state): `persistent_bytes` bytes.
    /// Saving them with [`position`](Self::position) and restoring both with
    /// [`restore`](Self::restore) resumes exactly where the model was.
    pub fn state(&self) -> &[u8] {
        &self.arena[..self.model.persistent_bytes().min(self.arena.len())]
    }

    /// Restores state saved from [`state`](Self::state) and its position.
    #[inline(never)] // an entry point: one copy, counted as runtime code by `xtask qemu`
    pub fn restore(&mut self, state: &[u8], position: usize) -> Result<()> {
        let n = self.model.persistent_bytes();
        if state.len() != n {
            return Err(Error::InputSize { expected: n, got: state.len() });
        }
        let ctx = self.model.max_context();
        if ctx > 0 && position > ctx {
            return Err(Error::ContextFull { needed: position, capacity: ctx });
        }
        self.arena[..n].copy_from_slice(state);
        self.pos = position;
        Ok(())
    }
}
