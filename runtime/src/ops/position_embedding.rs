//! PositionEmbedding: in table [positions, dim]; out[i] = table[pos + i], where pos is
//! the number of tokens already in the KV cache (0 without one).

use mote_kernels as k;

use super::{Check, Exec, OpCode, OpParams, RawParams, mul, raw, u};
use crate::Result;
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub positions: usize,
    pub dim: usize,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::PositionEmbedding;
    fn encode(&self) -> RawParams {
        raw(&[u(self.positions), u(self.dim)])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        Ok(Params { positions: p[0] as usize, dim: p[1] as usize })
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    c.ensure(out.seq, "position embeddings are token rows")?;
    c.elems_eq(&c.fixed(0)?, mul(p.positions, p.dim), "table is not [positions, dim]")?;
    c.ensure(out.shape.cols() == p.dim, "output rows are not [dim]")?;
    // Every position a call can reach must be in the table.
    let reach = c.model.max_context().max(c.model.max_tokens());
    c.ensure(reach <= p.positions, "the table has fewer positions than the context")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let (pos, n) = (e.run.pos, e.run.n);
    k::embedding::ref_embedding(e.src(0)?, p.dim, pos..pos + n, e.out);
    Ok(())
}
