//! Glu: in x [rows, 2n], each row [gate | up]; out[r, i] = act(x[r, i]) * x[r, n + i].

use mote_kernels::{self as k, Activation};

use super::{Check, Exec, OpCode, OpParams, RawParams, mul, raw, u};
use crate::Result;
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub n: usize,
    pub act: Activation,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::Glu;
    fn encode(&self) -> RawParams {
        raw(&[u(self.n), self.act.code()])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        let act = super::activation_code(p[1])?;
        Ok(Params { n: p[0] as usize, act })
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let x = c.act(0)?;
    c.same_rows(&x, out)?;
    c.ensure(p.n > 0 && mul(p.n, 2) == Some(x.shape.cols()), "input rows are not [2n]")?;
    c.elems_eq(out, mul(x.shape.rows(), p.n), "output is not [rows, n]")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    k::activation::ref_glu(e.act(0)?, e.out, p.n, p.act);
    Ok(())
}
