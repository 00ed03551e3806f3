//! Mul: in a, b (activations, the same element count), residual?; out = a * b + residual.

use super::{Check, Exec};
use crate::Result;
use crate::model::TensorInfo;

no_params!(Mul);

pub(super) fn validate(c: &Check<'_, '_>, _: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let (a, b) = (c.act(0)?, c.act(1)?);
    c.same_rows(&a, out)?;
    c.ensure(a.seq == b.seq && a.elems() == b.elems() && out.elems() == a.elems(), "element counts differ")?;
    if let Some(r) = c.opt_act(2)? {
        c.ensure(r.seq == a.seq && r.elems() == a.elems(), "residual size differs")?;
    }
    Ok(())
}

pub(super) fn execute(e: Exec<'_, '_, '_>, _: &Params) -> Result<()> {
    let (a, b, r) = (e.act(0)?, e.act(1)?, e.opt_act(2)?);
    e.out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x * y);
    if let Some(r) = r {
        e.out.iter_mut().zip(r).for_each(|(o, v)| *o += v);
    }
    Ok(())
}
