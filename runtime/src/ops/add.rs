//! Add: in a (activation), b (operand), the same element count; out = a + b.

use mote_kernels as k;

use super::{Check, Exec};
use crate::Result;
use crate::format::Storage;
use crate::model::TensorInfo;

no_params!(Add);

pub(super) fn validate(c: &Check<'_, '_>, _: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let (a, b) = (c.act(0)?, c.operand(1)?);
    c.same_rows(&a, out)?;
    c.ensure(b.storage == Storage::Weight || b.seq == a.seq, "operands disagree on token rows")?;
    c.ensure(a.elems() == b.elems() && out.elems() == a.elems(), "element counts differ")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, _: &Params) -> Result<()> {
    let (a, b) = (e.act(0)?, e.src(1)?);
    let len = e.out.len();
    k::elementwise::ref_add(a, b.slice(0, len), e.out);
    Ok(())
}
