//! MatMul: in x [m, >= x_col + k] (activation), w [n, k] (f32, f16, or int8 / int4
//! blocks along k), bias? [n], residual? [m, n];
//! out = act(x[:, x_col..x_col + k] w^T + bias) + residual.

use mote_kernels::{self as k, Activation};

use super::{Check, Exec, OpCode, OpParams, RawParams, cols, mul, raw, u};
use crate::Result;
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Applied to `x w^T + bias`, before the residual.
    pub act: Activation,
    /// The first column of x read.
    pub x_col: usize,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::MatMul;
    fn encode(&self) -> RawParams {
        raw(&[u(self.m), u(self.k), u(self.n), self.act.code(), u(self.x_col)])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        let act = super::activation_code(p[3])?;
        let [m, k, n, x_col] = [p[0], p[1], p[2], p[4]].map(|x| x as usize);
        if m == 0 || k == 0 || n == 0 {
            return Err("m, k and n must be positive");
        }
        Ok(Params { m, k, n, act, x_col })
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let x = c.act(0)?;
    c.same_rows(&x, out)?;
    c.ensure(x.shape.rows() == p.m, "x does not have m rows")?;
    c.ensure(
        p.x_col.checked_add(p.k).is_some_and(|end| end <= x.shape.cols()),
        "x columns x_col..x_col+k lie past the row",
    )?;
    let w = c.tensor(c.op.inputs[1])?;
    c.ensure(!w.seq, "the weight has token rows")?;
    let w = c.matrix(1, p.n, p.k, "weight is not [n, k]")?;
    if w.dtype.is_quantized() {
        c.ensure(p.k.is_multiple_of(crate::format::QUANT_GROUP), "a quantized weight needs k a multiple of 32")?;
    }
    if let Some(b) = c.opt_operand(2)? {
        c.ensure(!b.seq, "the bias has token rows")?;
        c.elems_eq(&b, Some(p.n), "bias is not [n]")?;
    }
    if let Some(r) = c.opt_act(3)? {
        c.same_rows(&r, out)?;
        c.elems_eq(&r, mul(p.m, p.n), "residual is not [m, n]")?;
    }
    c.elems_eq(out, mul(p.m, p.n), "output is not [m, n]")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let m = e.rows(&e.out_t);
    let x_cols = e.tensor(0)?.shape.cols();
    let x = cols(e.act(0)?, p.x_col);
    let (b, r) = (e.opt_src(2)?, e.opt_act(3)?);
    match e.quant(1)? {
        // (Without `quant` the parser refused quantized weights: no int8 / int4 kernel is linked.)
        Some(w) if cfg!(feature = "quant") => k::quant::matmul_q(x, x_cols, w, b, r, p.act, e.out, m, p.k, p.n),
        _ => k::matmul::matmul_strided(x, x_cols, e.src(1)?, b, r, p.act, e.out, m, p.k, p.n),
    }
    Ok(())
}
