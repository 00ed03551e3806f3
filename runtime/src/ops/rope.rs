//! Rope: in x [rows, w], inv_freq (f32) [head_dim / 2]; out = x with heads
//! `0..heads` rotated (Hugging Face's rotate_half layout) at positions pos + i.

use mote_kernels::{self as k, Src};

use super::{Check, Exec, OpCode, OpParams, RawParams, mul, raw, u};
use crate::Result;
use crate::error::Error;
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Heads rotated, from column 0.
    pub heads: usize,
    pub head_dim: usize,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::Rope;
    fn encode(&self) -> RawParams {
        raw(&[u(self.heads), u(self.head_dim)])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        let (heads, head_dim) = (p[0] as usize, p[1] as usize);
        if head_dim < 2 || !head_dim.is_multiple_of(2) {
            return Err("head_dim must be even");
        }
        Ok(Params { heads, head_dim })
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let x = c.act(0)?;
    c.same_rows(&x, out)?;
    c.ensure(
        mul(p.heads, p.head_dim).is_some_and(|w| w > 0 && w <= x.shape.cols()),
        "rotated heads lie past the row",
    )?;
    c.elems_eq(&c.fixed(1)?, Some(p.head_dim / 2), "inv_freq is not [head_dim / 2]")?;
    c.elems_eq(out, Some(x.elems()), "output size differs from input")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let x_t = e.tensor(0)?;
    let (x, rows) = (e.act(0)?, e.rows(&x_t));
    let inv_freq = match e.src(1)? {
        Src::F32(s) => s,
        Src::F16(_) => return Err(Error::WrongDType { expected: "f32", found: "f16" }),
    };
    e.out.iter_mut().zip(x).for_each(|(o, v)| *o = *v);
    k::rope::rope_inplace(e.out, rows, x_t.shape.cols(), p.heads, p.head_dim, inv_freq, e.run.pos);
    Ok(())
}
