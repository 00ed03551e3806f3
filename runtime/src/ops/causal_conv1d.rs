//! CausalConv1d: in x [t, c], state (persistent [k - 1, c]), weight [c, k], bias? [c];
//! out = act(causal depthwise conv over [state; x]); state <- the last k - 1 rows.

use mote_kernels::{self as k, Activation};

use super::{Check, Exec, OpCode, OpParams, RawParams, mul, raw, u};
use crate::Result;
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub channels: usize,
    pub kernel: usize,
    pub act: Activation,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::CausalConv1d;
    fn encode(&self) -> RawParams {
        raw(&[u(self.channels), u(self.kernel), self.act.code()])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        let act = super::activation_code(p[2])?;
        let (channels, kernel) = (p[0] as usize, p[1] as usize);
        if channels == 0 || kernel < 2 {
            return Err("channels must be positive and the kernel at least 2");
        }
        Ok(Params { channels, kernel, act })
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let (ch, kn) = (p.channels, p.kernel);
    let x = c.act(0)?;
    c.same_rows(&x, out)?;
    c.ensure(x.shape.cols() == ch, "x rows are not [channels]")?;
    c.state(1, mul(kn - 1, ch))?;
    c.elems_eq(&c.fixed(2)?, mul(ch, kn), "weight is not [channels, kernel]")?;
    if let Some(b) = c.opt_fixed(3)? {
        c.elems_eq(&b, Some(ch), "bias is not [channels]")?;
    }
    c.elems_eq(out, Some(x.elems()), "output size differs from input")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let (x, w, b, t) = (e.act(0)?, e.src(2)?, e.opt_src(3)?, e.rows(&e.out_t));
    let (state, out) = e.state_and_out(1)?;
    k::scan::ref_causal_conv1d(x, w, b, state, out, t, p.channels, p.kernel, p.act);
    Ok(())
}
