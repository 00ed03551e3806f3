//! ViT patch embedding: a Conv2d whose kernel and stride are both the patch size.

use crate::Src;
use crate::src::{Element, debug_assert_shape, debug_assert_shape_eq};

/// Conv2d with kernel = stride = `patch`, no padding (Hugging Face ViT
/// `embeddings.patch_embeddings.projection`), flattened to tokens.
///
/// ```text
/// image: [c, h, w]; weight: [dim, c, patch, patch] (f16 or f32); bias: [dim]
/// out: [(h/patch) * (w/patch), dim]; token row = py * (w/patch) + px
/// out[py*(w/patch) + px, d] = bias[d]
///     + Σ_{ci, ky, kx} image[ci, py*patch + ky, px*patch + kx] * weight[d, ci, ky, kx]
/// ```
/// A remainder of fewer than `patch` rows or columns is dropped, as Conv2d does.
#[allow(clippy::too_many_arguments)] // the shape is part of the contract
pub fn ref_patch_embed(
    image: &[f32],
    weight: Src<'_>,
    bias: Option<Src<'_>>,
    out: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    patch: usize,
    dim: usize,
) {
    let shape = PatchShape { c, h, w, patch };
    debug_assert_shape_eq!(c.checked_mul(h).and_then(|n| n.checked_mul(w)), Some(image.len()), "image: [c, h, w]");
    debug_assert_shape_eq!(
        shape.patch_len().and_then(|n| n.checked_mul(dim)),
        Some(weight.len()),
        "weight: [dim, c, patch, patch]"
    );
    debug_assert_shape!(bias.is_none_or(|b| b.len() == dim));
    debug_assert_shape_eq!(shape.tokens().checked_mul(dim), Some(out.len()), "out: [tokens, dim]");
    match weight {
        Src::F32(weight) => ref_generic(image, weight, bias, out, &shape, dim),
        Src::F16(weight) => ref_generic(image, weight, bias, out, &shape, dim),
    }
}

#[derive(Clone, Copy)]
struct PatchShape {
    c: usize,
    h: usize,
    w: usize,
    patch: usize,
}

impl PatchShape {
    /// Patches per column and per row: (h/patch, w/patch); (0, 0) for patch 0.
    fn grid(&self) -> (usize, usize) {
        match self.patch {
            0 => (0, 0),
            p => (self.h / p, self.w / p),
        }
    }

    fn tokens(&self) -> usize {
        let (gh, gw) = self.grid();
        gh.saturating_mul(gw)
    }

    /// Weights per output channel: c * patch * patch.
    fn patch_len(&self) -> Option<usize> {
        self.c.checked_mul(self.patch)?.checked_mul(self.patch)
    }
}

/// [`ref_patch_embed`], monomorphised for the weight element type.
fn ref_generic<W: Element>(
    image: &[f32],         // [c, h, w]
    weight: &[W],          // [dim, c, patch, patch]
    bias: Option<Src<'_>>, // [dim]
    out: &mut [f32],       // [tokens, dim]
    s: &PatchShape,
    dim: usize,
) {
    let (gh, gw) = s.grid(); // patches per column, per row
    let p = s.patch;
    // With a token to produce, h, w >= patch >= 1, so plane > 0 (checked anyway).
    let (Some(plane), Some(patch_len)) = (s.h.checked_mul(s.w), s.patch_len()) else {
        return;
    };
    if dim == 0 || plane == 0 || gw == 0 {
        return; // no tokens, or empty ones
    }
    // Bounded by `out` (not by the grid, which a bad shape can make astronomically large).
    for (t, out_row) in out.chunks_exact_mut(dim).take(gh.saturating_mul(gw)).enumerate() {
        let (py, px) = (t / gw, t % gw);
        // out_row: [dim], the token of patch (py, px)
        out_row.fill(0.0);
        if let Some(bias) = bias {
            bias.copy_to(out_row);
        }
        if patch_len == 0 {
            continue; // c == 0: out = bias
        }
        for (o, w_d) in out_row.iter_mut().zip(weight.chunks_exact(patch_len)) {
            // w_d: [c, patch, patch]
            let mut acc = 0.0f32;
            for (image_c, w_c) in image.chunks_exact(plane).zip(w_d.chunks_exact(p * p)) {
                // image_c: [h, w]; w_c: [patch, patch]; image rows py*p .. py*p + p
                let rows = image_c.chunks_exact(s.w).skip(py * p).take(p);
                for (image_row, w_row) in rows.zip(w_c.chunks_exact(p)) {
                    let pixels = image_row.get(px * p..px * p + p).unwrap_or(&[]);
                    acc = pixels.iter().zip(w_row).fold(acc, |acc, (x, w)| acc + x * w.to_f32());
                }
            }
            *o += acc;
        }
    }
}

/// Patch embedding with the fastest available kernel: the SIMD path when it runs on this
/// CPU and every length is consistent, else [`ref_patch_embed`]. Same contract.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn patch_embed(
    image: &[f32],
    weight: Src<'_>,
    bias: Option<Src<'_>>,
    out: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    patch: usize,
    dim: usize,
) {
    {
        // Table entries index directly: they run only when every length is consistent.
        let fits = patch > 0
            && patch <= h
            && patch <= w
            && c.checked_mul(h).and_then(|x| x.checked_mul(w)).is_some_and(|n| image.len() >= n)
            && dim.checked_mul(c).and_then(|x| x.checked_mul(patch)).and_then(|x| x.checked_mul(patch))
                == Some(weight.len())
            && (h / patch).checked_mul(w / patch).and_then(|x| x.checked_mul(dim)) == Some(out.len())
            && bias.is_none_or(|b| b.len() == dim);
        if fits {
            return (crate::table::active().patch_embed)(image, weight, bias, out, c, h, w, patch, dim);
        }
    }
    crate::src::mismatch!(out, ref_patch_embed(image, weight, bias, out, c, h, w, patch, dim))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{any_len, assert_close, assert_no_oob, dim, slice_len, to_f16, values};
    use half::f16;
    use proptest::prelude::*;

    /// f32 accumulation of c*patch*patch <= ~50 products, relative to Σ|x w| + |bias|.
    const TOL_PATCH: f64 = 1e-5;

    /// Explicit conv2d loops in f64: (out, Σ|x w| + |bias|), each [tokens, dim].
    #[allow(clippy::too_many_arguments)]
    fn conv_f64(
        image: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        c: usize,
        h: usize,
        w: usize,
        p: usize,
        dim: usize,
    ) -> (Vec<f64>, Vec<f64>) {
        let (gh, gw) = (h / p, w / p);
        let mut out = vec![0.0; gh * gw * dim];
        let mut scale = vec![0.0; gh * gw * dim];
        for oy in 0..gh {
            for ox in 0..gw {
                for d in 0..dim {
                    let mut acc = bias.map_or(0.0, |b| f64::from(b[d]));
                    let mut mag = acc.abs();
                    for ci in 0..c {
                        for ky in 0..p {
                            for kx in 0..p {
                                let (y, x) = (oy * p + ky, ox * p + kx);
                                let pixel = f64::from(image[(ci * h + y) * w + x]);
                                let wt = f64::from(weight[((d * c + ci) * p + ky) * p + kx]);
                                acc += pixel * wt;
                                mag += (pixel * wt).abs();
                            }
                        }
                    }
                    out[(oy * gw + ox) * dim + d] = acc;
                    scale[(oy * gw + ox) * dim + d] = mag;
                }
            }
        }
        (out, scale)
    }

    #[test]
    fn known_single_channel() {
        // image: [1, 2, 4] = two 2x2 patches side by side; dim 2.
        let image = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        // weight[0] sums the patch; weight[1] picks its top-left pixel.
        let weight = [1.0f32, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        let bias = [f16::from_f32(0.5), f16::from_f32(-1.0)];
        let mut out = [0.0f32; 4];
        ref_patch_embed(&image, Src::F32(&weight), Some(Src::F16(&bias)), &mut out, 1, 2, 4, 2, 2);
        // patch 0 = [1 2; 5 6], patch 1 = [3 4; 7 8]
        assert_eq!(out, [14.5, 0.0, 22.5, 2.0]);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "weight: [dim, c, patch, patch]")]
    fn short_weight_trips_debug_assert() {
        let mut out = [0.0f32; 2];
        ref_patch_embed(&[1.0; 4], Src::F32(&[1.0; 7]), None, &mut out, 1, 2, 2, 2, 2);
    }

    #[test]
    fn absurd_grid_is_bounded_by_out() {
        // 2^39 x 2 patches (or 2^63 x 0) claimed, 3 tokens of room: fill those and return
        // (the image is far shorter than one claimed channel, so each token is the bias).
        let mut out = [f32::NAN; 3];
        let (image, weight, bias) = ([1.0f32; 8], [1.0f32; 4], [0.5f32]);
        let b = Some(Src::F32(&bias));
        assert_no_oob(|| ref_patch_embed(&image, Src::F32(&weight), b, &mut out, 1, 1 << 40, 4, 2, 1));
        assert_eq!(out, [0.5; 3]);
        assert_no_oob(|| ref_patch_embed(&image, Src::F32(&weight), b, &mut out, 1, usize::MAX, 1, 2, 1));
    }

    proptest! {
        #![proptest_config(crate::testutil::config(256))]

        #[test]
        fn matches_conv2d_f64(
            c in 1usize..=3, patch in 1usize..=4, h in dim(17), w in dim(17), dim_ in dim(17),
            f16_w: bool, has_bias: bool, seed: u64,
        ) {
            let image = values(seed, c * h * w, -1.0, 1.0);
            let weight = values(seed ^ 1, dim_ * c * patch * patch, -1.0, 1.0);
            let bias = values(seed ^ 2, dim_, -1.0, 1.0);
            let (w16, w_rounded) = to_f16(&weight);
            let (w_src, w_used) = if f16_w { (Src::F16(&w16), &w_rounded) } else { (Src::F32(&weight), &weight) };
            let tokens = (h / patch) * (w / patch);
            let mut out = vec![f32::NAN; tokens * dim_];
            ref_patch_embed(
                &image, w_src, has_bias.then_some(Src::F32(&bias)), &mut out, c, h, w, patch, dim_,
            );
            let (want, scale) = conv_f64(
                &image, w_used, has_bias.then_some(&bias[..]), c, h, w, patch, dim_,
            );
            assert_close("patch_embed", &out, &want, &scale, TOL_PATCH);
        }

        #[test]
        fn wrong_lengths_never_index_out_of_bounds(
            image_len in slice_len(), w_len in slice_len(), b_len in slice_len(),
            out_len in slice_len(), c in any_len(), h in any_len(), w in any_len(),
            patch in any_len(), dim_ in any_len(), f16_w: bool,
        ) {
            let image = vec![1.0f32; image_len];
            let weight = vec![0.5f32; w_len];
            let w16 = vec![f16::ONE; w_len];
            let bias = vec![1.0f32; b_len];
            let mut out = vec![0.0f32; out_len];
            let w_src = if f16_w { Src::F16(&w16) } else { Src::F32(&weight) };
            assert_no_oob(|| ref_patch_embed(
                &image, w_src, Some(Src::F32(&bias)), &mut out, c, h, w, patch, dim_,
            ));
        }
    }
}
