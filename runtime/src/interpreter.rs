//! The interpreter: binds a model to a caller-owned arena and runs its op list.

use crate::error::Error;
use crate::format::{self, DType, Storage};
use crate::model::{Model, TensorInfo};
use crate::{Result, ops};

/// Runs a [`Model`] over an arena the caller owns (a `static` buffer on a board).
/// Nothing is allocated: every tensor lives at the offset the converter planned.
#[derive(Debug)]
pub struct Interpreter<'m, 'a> {
    model: &'m Model<'m>,
    /// The model's arena: exactly `model.arena_bytes()`, 64-byte aligned.
    arena: &'a mut [u8],
}

impl<'m, 'a> Interpreter<'m, 'a> {
    /// Binds `arena` (any alignment; up to 63 bytes are skipped to align it) and clears
    /// the persistent region. Fails with [`Error::ArenaTooSmall`] when it cannot hold the
    /// model's plan.
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self> {
        let skip = arena.as_ptr().align_offset(format::ARENA_ALIGN);
        let needed = model.arena_bytes().saturating_add(skip.min(format::ARENA_ALIGN - 1));
        if arena.len() < needed || skip >= format::ARENA_ALIGN {
            return Err(Error::ArenaTooSmall { needed, available: arena.len() });
        }
        let arena = &mut arena[skip..skip + model.arena_bytes()];
        let mut interp = Interpreter { model, arena };
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

    /// Clears the persistent region (KV cache, recurrent state).
    pub fn reset(&mut self) {
        let n = self.model.persistent_bytes().min(self.arena.len());
        self.arena[..n].fill(0);
    }

    /// Runs every op in order.
    ///
    /// Inputs are consumed: the planner reuses an input's arena bytes once no later op
    /// reads it (as TFLite Micro does), so set every input again before each `invoke`.
    /// Outputs stay valid until the next `invoke`. Cannot fail for a model that parsed and an arena that
    /// bound; the `Result` is there so a broken invariant is an error, not a panic.
    pub fn invoke(&mut self) -> Result<()> {
        for i in 0..self.model.op_count() {
            let op = self.model.op(i).ok_or(Error::BadOp { index: i as u32, opcode: 0, reason: "unreadable" })?;
            ops::execute(self.model, i as u32, &op, self.arena)?;
        }
        Ok(())
    }

    fn input_info(&self, name: &str) -> Result<TensorInfo<'m>> {
        self.model.find_input(name).and_then(|i| self.model.input(i)).ok_or(Error::UnknownName { what: "input" })
    }

    fn output_info(&self, name: &str) -> Result<TensorInfo<'m>> {
        self.model.find_output(name).and_then(|i| self.model.output(i)).ok_or(Error::UnknownName { what: "output" })
    }

    fn bytes_mut(&mut self, t: &TensorInfo<'_>) -> Result<&mut [u8]> {
        let available = self.arena.len();
        self.arena.get_mut(t.range()).ok_or(Error::ArenaTooSmall { needed: t.range().end, available })
    }

    /// The f32 input called `name`, to fill in place.
    pub fn input_mut(&mut self, name: &str) -> Result<&mut [f32]> {
        let t = self.input_info(name)?;
        if t.dtype != DType::F32 {
            return Err(Error::WrongDType { expected: "f32", found: t.dtype.name() });
        }
        bytemuck::try_cast_slice_mut(self.bytes_mut(&t)?).map_err(|_| Error::Misaligned { what: "input", align: 4 })
    }

    /// Copies `data` into the f32 input called `name`; the length must match exactly.
    pub fn set_input(&mut self, name: &str, data: &[f32]) -> Result<()> {
        let dst = self.input_mut(name)?;
        if dst.len() != data.len() {
            return Err(Error::InputSize { expected: dst.len(), got: data.len() });
        }
        dst.copy_from_slice(data);
        Ok(())
    }

    /// The f32 output called `name`, valid after [`invoke`](Self::invoke).
    pub fn output(&self, name: &str) -> Result<&[f32]> {
        let t = self.output_info(name)?;
        let available = self.arena.len();
        let b = self.arena.get(t.range()).ok_or(Error::ArenaTooSmall { needed: t.range().end, available })?;
        bytemuck::try_cast_slice(b).map_err(|_| Error::Misaligned { what: "output", align: 4 })
    }

    /// Whether `t` lives in the arena bound here (for tools that read any tensor).
    pub fn tensor_f32(&self, t: &TensorInfo<'_>) -> Option<&[f32]> {
        if t.storage == Storage::Weight || t.dtype != DType::F32 {
            return None;
        }
        bytemuck::try_cast_slice(self.arena.get(t.range())?).ok()
    }
}
