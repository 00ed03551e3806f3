//! LayerNorm: in x [.., dim], gamma [dim], beta? [dim]; per row
//! (x - mean) / sqrt(var + eps) * gamma + beta.

use mote_kernels as k;

use super::{Check, Exec};
use crate::Result;
use crate::model::TensorInfo;

norm_params!(LayerNorm);

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    super::rms_norm::validate_norm(c, p.dim, out)?;
    if let Some(b) = c.opt_fixed(2)? {
        c.elems_eq(&b, Some(p.dim), "beta is not [dim]")?;
    }
    Ok(())
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let (x, gamma, beta) = (e.act(0)?, e.src(1)?, e.opt_src(2)?);
    k::norm::layer_norm(x, gamma, beta, e.out, p.dim, p.eps);
    Ok(())
}
