//! SelectiveScan (Mamba): in x [t, e], dt [t, e], bc [t, 2n] (B | C), z [t, e],
//! a_d [e, n + 1] (A = -exp(A_log) | D), state (persistent [e, n]); out [t, e] =
//! the selective scan gated by silu(z).

use mote_kernels as k;

use super::{Check, Exec, OpCode, OpParams, RawParams, mul, raw, u};
use crate::Result;
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Channels (d_inner).
    pub e: usize,
    /// State size per channel.
    pub n: usize,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::SelectiveScan;
    fn encode(&self) -> RawParams {
        raw(&[u(self.e), u(self.n)])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        let (e, n) = (p[0] as usize, p[1] as usize);
        if e == 0 || n == 0 {
            return Err("channels and state size must be positive");
        }
        Ok(Params { e, n })
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let x = c.act(0)?;
    c.same_rows(&x, out)?;
    for slot in [0, 1, 3] {
        let t = c.act(slot)?;
        c.ensure(
            t.seq == x.seq && t.shape.rows() == x.shape.rows() && t.shape.cols() == p.e,
            "x, dt and z are not [t, e]",
        )?;
    }
    let bc = c.act(2)?;
    c.ensure(
        bc.seq == x.seq && bc.shape.rows() == x.shape.rows() && Some(bc.shape.cols()) == mul(p.n, 2),
        "bc is not [t, 2n]",
    )?;
    c.elems_eq(&c.fixed(4)?, mul(p.e, p.n + 1), "a_d is not [e, n + 1]")?;
    c.state(5, mul(p.e, p.n))?;
    c.elems_eq(out, Some(x.elems()), "output is not [t, e]")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let (x, dt, bc, z, a_d) = (e.act(0)?, e.act(1)?, e.act(2)?, e.act(3)?, e.src(4)?);
    let t = e.rows(&e.out_t);
    let (state, out) = e.state_and_out(5)?;
    k::scan::selective_scan(x, dt, bc, z, a_d, state, out, t, p.e, p.n);
    Ok(())
}
