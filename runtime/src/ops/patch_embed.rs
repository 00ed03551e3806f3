//! PatchEmbed: Conv2d with kernel = stride = patch over one image, as patch rows.
//!
//! in: image [1, c, h, w], weight [dim, c, p, p], bias? [dim]; out: [(h/p)*(w/p), dim].

use mote_kernels as k;

use super::{Check, Exec, OpCode, OpParams, RawParams, mul, raw, u};
use crate::Result;
use crate::model::TensorInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub patch: usize,
    pub dim: usize,
}

impl OpParams for Params {
    const OP: OpCode = OpCode::PatchEmbed;
    fn encode(&self) -> RawParams {
        raw(&[u(self.channels), u(self.height), u(self.width), u(self.patch), u(self.dim)])
    }
    fn decode(p: &RawParams) -> core::result::Result<Self, &'static str> {
        let [channels, height, width, patch, dim] = [p[0], p[1], p[2], p[3], p[4]].map(|x| x as usize);
        if channels == 0 || dim == 0 || patch == 0 || patch > height || patch > width {
            return Err("bad patch geometry");
        }
        Ok(Params { channels, height, width, patch, dim })
    }
}

pub(super) fn validate(c: &Check<'_, '_>, p: &Params, out: &TensorInfo<'_>) -> Result<()> {
    let Params { channels: ch, height: h, width: w, patch, dim } = *p;
    let image = c.act(0)?;
    c.ensure(!image.seq && !out.seq, "patch embedding has no token rows")?;
    c.elems_eq(&image, mul(ch, h).and_then(|x| mul(x, w)), "image size does not match c*h*w")?;
    c.elems_eq(&c.fixed(1)?, mul(dim, ch).and_then(|x| mul(x, patch * patch)), "weight is not [dim, c, p, p]")?;
    if let Some(b) = c.opt_fixed(2)? {
        c.elems_eq(&b, Some(dim), "bias is not [dim]")?;
    }
    c.elems_eq(out, mul((h / patch) * (w / patch), dim), "output is not [patches, dim]")
}

pub(super) fn execute(e: Exec<'_, '_, '_>, p: &Params) -> Result<()> {
    let (image, weight, bias) = (e.act(0)?, e.src(1)?, e.opt_src(2)?);
    k::patch::patch_embed(image, weight, bias, e.out, p.channels, p.height, p.width, p.patch, p.dim);
    Ok(())
}
