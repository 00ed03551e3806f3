//! Embedding: in ids (i32 arena), table [vocab, dim] (f32, f16, or int8 / int4 blocks
//! along dim); out[i] = table[ids[i]].

use mote_kernels as k;

use super::{Check, Exec, OpCode, OpParams, RawParams, elems, mul, raw, u};
use crate::Result;
use crate::format::{DType, Storage};
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub vocab: usize,
    pub dim: usize,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::Embedding;
    fn encode(&self) -> RawParams {
        raw(&[u(self.vocab), u(self.dim)])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        let (vocab, dim) = (p[0] as usize, p[1] as usize);
        if vocab == 0 || dim == 0 {
            return Err("vocab and dim must be positive");
        }
        Ok(Params { vocab, dim })
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let ids = c.tensor(c.op.inputs[0])?;
    c.ensure(ids.storage == Storage::Arena && ids.dtype == DType::I32, "ids are not an i32 arena tensor")?;
    c.same_rows(&ids, out)?;
    c.matrix(1, p.vocab, p.dim, "table is not [vocab, dim]")?;
    c.elems_eq(out, mul(ids.elems(), p.dim), "output is not [ids, dim]")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let ids_t = e.tensor(0)?;
    let ids = e.frame.i32(&ids_t, elems(&ids_t, e.run.n))?;
    let rows = ids.iter().map(|&id| usize::try_from(id).unwrap_or(usize::MAX));
    match e.quant(1)? {
        Some(table) if cfg!(feature = "quant") => k::quant::ref_embedding_q(table, p.dim, rows, e.out),
        _ => k::embedding::ref_embedding(e.src(1)?, p.dim, rows, e.out),
    }
    Ok(())
}
