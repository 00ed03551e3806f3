//! Wkv (RWKV-4): in k, v, r [t, a], time_first [a], w = -exp(time_decay) [a], state
//! (persistent [3, a]: aa | bb | pp); out [t, a] = r * wkv in its stable form.

use mote_kernels as k;

use super::{Check, Exec, OpCode, OpParams, RawParams, mul, raw, u};
use crate::Result;
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub width: usize,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::Wkv;
    fn encode(&self) -> RawParams {
        raw(&[u(self.width)])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        match p[0] as usize {
            0 => Err("width must be positive"),
            width => Ok(Params { width }),
        }
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let a = p.width;
    let kt = c.act(0)?;
    c.same_rows(&kt, out)?;
    for slot in [0, 1, 2] {
        let t = c.act(slot)?;
        c.ensure(
            t.seq == kt.seq && t.shape.rows() == kt.shape.rows() && t.shape.cols() == a,
            "k, v and r are not [t, a]",
        )?;
    }
    c.elems_eq(&c.fixed(3)?, Some(a), "time_first is not [a]")?;
    c.elems_eq(&c.fixed(4)?, Some(a), "time_decay is not [a]")?;
    c.state(5, mul(3, a))?;
    c.elems_eq(out, Some(kt.elems()), "output is not [t, a]")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let (kk, v, r, u_, w) = (e.act(0)?, e.act(1)?, e.act(2)?, e.src(3)?, e.src(4)?);
    let t = e.rows(&e.out_t);
    let (state, out) = e.state_and_out(5)?;
    k::wkv::ref_wkv(kk, v, r, u_, w, state, out, t, p.width);
    Ok(())
}
