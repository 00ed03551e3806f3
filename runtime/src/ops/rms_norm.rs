//! RmsNorm: in x [.., dim], gamma [dim]; per row x / sqrt(mean(x^2) + eps) * gamma.

use mote_kernels as k;

use super::{Check, Exec};
use crate::Result;
use crate::model::TensorInfo;

norm_params!(RmsNorm);

/// What LayerNorm and RmsNorm share: x rows of `dim`, gamma of `dim`, out like x.
pub(super) fn validate_norm(c: &Check<'_, '_>, dim: usize, out: &TensorInfo<'_>) -> Result<()> {
    let x = c.act(0)?;
    c.same_rows(&x, out)?;
    c.ensure(x.shape.cols() == dim, "input rows are not [.., dim]")?;
    c.elems_eq(&c.fixed(1)?, Some(dim), "gamma is not [dim]")?;
    c.elems_eq(out, Some(x.elems()), "output size differs from input")
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    validate_norm(c, p.dim, out)
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let (x, gamma) = (e.act(0)?, e.src(1)?);
    k::norm::rms_norm(x, gamma, e.out, p.dim, p.eps);
    Ok(())
}
