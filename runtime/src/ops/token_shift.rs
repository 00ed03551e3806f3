//! TokenShift (RWKV): in x [t, d], state (persistent [d]), mix [m, d]; out [t, m * d] =
//! x * mix + prev * (1 - mix) per mix, prev the row before (the state for row 0);
//! state <- the last row.

use mote_kernels as k;

use super::{Check, Exec, OpCode, OpParams, RawParams, mul, raw, u};
use crate::Result;
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub width: usize,
    pub mixes: usize,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::TokenShift;
    fn encode(&self) -> RawParams {
        raw(&[u(self.width), u(self.mixes)])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        let (width, mixes) = (p[0] as usize, p[1] as usize);
        if width == 0 || mixes == 0 {
            return Err("width and mixes must be positive");
        }
        Ok(Params { width, mixes })
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let (d, m) = (p.width, p.mixes);
    let x = c.act(0)?;
    c.same_rows(&x, out)?;
    c.ensure(x.shape.cols() == d, "x rows are not [d]")?;
    c.state(1, Some(d))?;
    c.elems_eq(&c.fixed(2)?, mul(m, d), "mix is not [mixes, d]")?;
    c.ensure(
        Some(out.shape.cols()) == mul(m, d) && out.shape.rows() == x.shape.rows(),
        "output is not [t, mixes*d]",
    )
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let (x, mix, t) = (e.act(0)?, e.src(2)?, e.rows(&e.out_t));
    let (state, out) = e.state_and_out(1)?;
    k::wkv::ref_token_shift(x, mix, state, out, t, p.width, p.mixes);
    Ok(())
}
