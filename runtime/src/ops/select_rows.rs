//! SelectRows: in x [rows, d]; out [count, d] = x[start..start + count].

use super::{Check, Exec, OpCode, OpParams, RawParams, mul, raw, u};
use crate::Result;
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub start: usize,
    pub count: usize,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::SelectRows;
    fn encode(&self) -> RawParams {
        raw(&[u(self.start), u(self.count)])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        Ok(Params { start: p[0] as usize, count: p[1] as usize })
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let x = c.act(0)?;
    c.ensure(!out.seq, "selected rows are not token rows")?;
    // With token rows, a call always has at least one: only row 0 is safe.
    let limit = if x.seq { 1 } else { x.shape.rows() };
    c.ensure(p.count > 0 && p.start.checked_add(p.count).is_some_and(|e| e <= limit), "rows out of range")?;
    c.elems_eq(out, mul(p.count, x.shape.cols()), "output is not [count, cols]")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let width = e.tensor(0)?.shape.cols();
    let rows = e.act(0)?.get(p.start * width..(p.start + p.count) * width).unwrap_or(&[]);
    e.out.iter_mut().zip(rows).for_each(|(o, v)| *o = *v);
    Ok(())
}
