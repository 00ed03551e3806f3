//! Activation: in x; out = act(x).

use mote_kernels::{self as k, Activation};

use super::{Check, Exec, OpCode, OpParams, RawParams, raw};
use crate::Result;
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub act: Activation,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::Activation;
    fn encode(&self) -> RawParams {
        raw(&[self.act.code()])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        Ok(Params { act: super::activation_code(p[0])? })
    }
}

pub(super) fn validate(c: &Check<'_, '_>, _: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let x = c.act(0)?;
    c.same_rows(&x, out)?;
    c.elems_eq(out, Some(x.elems()), "output size differs from input")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let x = e.act(0)?;
    e.out.iter_mut().zip(x).for_each(|(o, v)| *o = *v);
    k::activation::activation_inplace(e.out, p.act);
    Ok(())
}
