//! ConcatRows: in a [ra, d], b [rb, d] (operands); out [ra + rb, d].

use mote_kernels as k;

use super::{Check, Exec};
use crate::Result;
use crate::model::TensorInfo;

no_params!(ConcatRows);

pub(super) fn validate(c: &Check<'_, '_>, _: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let (a, b) = (c.operand(0)?, c.operand(1)?);
    c.ensure(!a.seq && !b.seq && !out.seq, "concatenation has no token rows")?;
    c.ensure(a.shape.cols() == b.shape.cols() && out.shape.cols() == a.shape.cols(), "row widths differ")?;
    c.elems_eq(out, a.elems().checked_add(b.elems()), "output is not the two inputs' rows")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, _: &Params) -> Result<()> {
    k::elementwise::ref_concat_rows(e.src(0)?, e.src(1)?, e.out);
    Ok(())
}
