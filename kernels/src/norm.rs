//! Row normalisations: LayerNorm (ViT, GPT-2) and RMSNorm (Llama, Mamba).

use crate::Src;
use crate::math::sqrtf;
use crate::src::{debug_assert_shape, debug_assert_shape_eq};

/// `torch.nn.LayerNorm` over the last dimension, per row of `dim` elements:
/// out = (x - mean) / sqrt(var + eps) * gamma + beta, with the biased variance
/// (divided by `dim`), computed in two passes (mean, then Σ(x - mean)^2) so a large
/// common offset does not cancel catastrophically.
/// ```text
/// x: [rows, dim]; gamma: [dim]; beta: [dim]; out: [rows, dim]
/// ```
pub fn ref_layer_norm(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], dim: usize, eps: f32) {
    debug_assert_shape_eq!(x.len(), out.len(), "x, out: [rows, dim]");
    debug_assert_shape!(dim == 0 || x.len().is_multiple_of(dim));
    debug_assert_shape_eq!(gamma.len(), dim, "gamma: [dim]");
    debug_assert_shape!(beta.is_none_or(|b| b.len() == dim));
    if dim == 0 {
        return;
    }
    let n = dim as f32;
    for (x_row, out_row) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let mean = x_row.iter().fold(0.0, |acc, v| acc + v) / n;
        let var = x_row.iter().fold(0.0, |acc, v| acc + (v - mean) * (v - mean)) / n;
        let inv_std = 1.0 / sqrtf(var + eps);
        for (o, v) in out_row.iter_mut().zip(x_row) {
            *o = (v - mean) * inv_std;
        }
        gamma.zip_with(out_row, |o, g| o * g);
        if let Some(beta) = beta {
            beta.zip_with(out_row, |o, b| o + b);
        }
    }
}

/// Llama `RMSNorm`, per row of `dim` elements: out = x / sqrt(mean(x^2) + eps) * gamma.
/// ```text
/// x: [rows, dim]; gamma: [dim]; out: [rows, dim]
/// ```
pub fn ref_rms_norm(x: &[f32], gamma: Src<'_>, out: &mut [f32], dim: usize, eps: f32) {
    debug_assert_shape_eq!(x.len(), out.len(), "x, out: [rows, dim]");
    debug_assert_shape!(dim == 0 || x.len().is_multiple_of(dim));
    debug_assert_shape_eq!(gamma.len(), dim, "gamma: [dim]");
    if dim == 0 {
        return;
    }
    let n = dim as f32;
    for (x_row, out_row) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let mean_sq = x_row.iter().fold(0.0, |acc, v| acc + v * v) / n;
        let inv_rms = 1.0 / sqrtf(mean_sq + eps);
        for (o, v) in out_row.iter_mut().zip(x_row) {
            *o = v * inv_rms;
        }
        gamma.zip_with(out_row, |o, g| o * g);
    }
}

/// Whether the table's norm may run: consistent lengths (entries index directly).
fn fits(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &[f32], dim: usize) -> bool {
    dim > 0
        && x.len().is_multiple_of(dim)
        && out.len() == x.len()
        && gamma.len() == dim
        && beta.is_none_or(|b| b.len() == dim)
}

/// LayerNorm with the fastest available kernel (SIMD when it runs here, else
/// [`ref_layer_norm`]). Same contract.
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn layer_norm(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], dim: usize, eps: f32) {
    if fits(x, gamma, beta, out, dim) {
        return (crate::table::active().layer_norm)(x, gamma, beta, out, dim, eps);
    }
    crate::src::mismatch!(out, ref_layer_norm(x, gamma, beta, out, dim, eps))
}

/// RMSNorm with the fastest available kernel (SIMD when it runs here, else
/// [`ref_rms_norm`]). Same contract.
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn rms_norm(x: &[f32], gamma: Src<'_>, out: &mut [f32], dim: usize, eps: f32) {
    if fits(x, gamma, None, out, dim) {
        return (crate::table::active().rms_norm)(x, gamma, out, dim, eps);
    }
    crate::src::mismatch!(out, ref_rms_norm(x, gamma, out, dim, eps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{any_len, assert_close, assert_close_rel, assert_no_oob, dim, slice_len, to_f16, values};
    use half::f16;
    use proptest::prelude::*;

    /// Relative to the scale below: O(dim) f32 sums, then one rounding of x - mean.
    const TOL_NORM: f64 = 1e-5;
    /// Rows on a common offset of 1000, relative to 1 + |out|. Two passes stay well inside;
    /// a one-pass E[x^2] - E[x]^2 in f32 is off by O(1) there.
    const TOL_NORM_OFFSET: f64 = 1e-2;

    /// (out, scale). The scale is what the f32 error grows with: x - mean is rounded
    /// relative to |x| + |mean|, then amplified by 1/std and gamma; plus |beta|.
    fn layer_norm_f64(x: &[f32], gamma: &[f32], beta: Option<&[f32]>, dim: usize, eps: f32) -> (Vec<f64>, Vec<f64>) {
        let (mut out, mut scale) = (Vec::new(), Vec::new());
        for row in x.chunks(dim.max(1)).filter(|_| dim > 0) {
            let n = dim as f64;
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
            let inv = 1.0 / (var + f64::from(eps)).sqrt();
            for d in 0..dim {
                let xhat = (f64::from(row[d]) - mean) * inv;
                let g = f64::from(gamma[d]);
                let b = beta.map_or(0.0, |b| f64::from(b[d]));
                out.push(xhat * g + b);
                let rounding = (f64::from(row[d]).abs() + mean.abs()) * inv;
                scale.push(rounding * g.abs() + b.abs());
            }
        }
        (out, scale)
    }

    fn rms_norm_f64(x: &[f32], gamma: &[f32], dim: usize, eps: f32) -> (Vec<f64>, Vec<f64>) {
        let (mut out, mut scale) = (Vec::new(), Vec::new());
        for row in x.chunks(dim.max(1)).filter(|_| dim > 0) {
            let ms = row.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / dim as f64;
            let inv = 1.0 / (ms + f64::from(eps)).sqrt();
            for d in 0..dim {
                let y = f64::from(row[d]) * inv * f64::from(gamma[d]);
                out.push(y);
                scale.push(y.abs());
            }
        }
        (out, scale)
    }

    #[test]
    fn layer_norm_known_row() {
        // [1, 2, 3, 4]: mean 2.5, biased var 1.25
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let gamma = [1.0f32, 1.0, 2.0, 2.0];
        let beta = [0.0f32, 0.0, 0.0, 1.0];
        let mut out = [0.0f32; 4];
        ref_layer_norm(&x, Src::F32(&gamma), Some(Src::F32(&beta)), &mut out, 4, 0.0);
        let s = 1.0 / 1.25f32.sqrt();
        let want = [-1.5 * s, -0.5 * s, 2.0 * 0.5 * s, 2.0 * 1.5 * s + 1.0];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-6, "{out:?} vs {want:?}");
        }
    }

    #[test]
    fn rms_norm_known_row() {
        // [3, 4]: mean square 12.5
        let mut out = [0.0f32; 2];
        let gamma = [f16::from_f32(1.0), f16::from_f32(0.5)];
        ref_rms_norm(&[3.0, 4.0], Src::F16(&gamma), &mut out, 2, 0.0);
        let r = 12.5f32.sqrt();
        assert!((out[0] - 3.0 / r).abs() < 1e-6 && (out[1] - 2.0 / r).abs() < 1e-6, "{out:?}");
    }

    #[test]
    fn eps_is_inside_the_sqrt() {
        // A constant row has var 0: out = 0 * gamma + beta, not NaN.
        let mut out = [f32::NAN; 3];
        let beta = [0.25f32; 3];
        ref_layer_norm(&[7.0; 3], Src::F32(&[2.0; 3]), Some(Src::F32(&beta)), &mut out, 3, 1e-5);
        assert_eq!(out, [0.25; 3]);
        // RMS of [1e-3]: 1e-3 / sqrt(1e-6 + 3e-6) = 0.5
        ref_rms_norm(&[1e-3], Src::F32(&[1.0]), &mut out[..1], 1, 3e-6);
        assert!((out[0] - 0.5).abs() < 1e-5, "{}", out[0]);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "gamma: [dim]")]
    fn short_gamma_trips_debug_assert() {
        let mut out = [0.0f32; 4];
        ref_rms_norm(&[1.0; 4], Src::F32(&[1.0; 3]), &mut out, 4, 1e-6);
    }

    proptest! {
        #![proptest_config(crate::testutil::config(256))]

        #[test]
        fn layer_norm_matches_f64(
            rows in dim(6), dim_ in dim(40), f16_params: bool, has_beta: bool,
            offset in prop_oneof![Just(0.0f32), -5.0f32..5.0], seed: u64,
        ) {
            let x: Vec<f32> = values(seed, rows * dim_, -2.0, 2.0).iter().map(|v| v + offset).collect();
            let gamma = values(seed ^ 1, dim_, -2.0, 2.0);
            let beta = values(seed ^ 2, dim_, -1.0, 1.0);
            let (g16, g_rounded) = to_f16(&gamma);
            let (b16, b_rounded) = to_f16(&beta);
            let (g_src, g_used) = if f16_params { (Src::F16(&g16), &g_rounded) } else { (Src::F32(&gamma), &gamma) };
            let (b_src, b_used) = if f16_params { (Src::F16(&b16), &b_rounded) } else { (Src::F32(&beta), &beta) };
            let eps = 1e-5;
            let mut out = vec![f32::NAN; rows * dim_];
            ref_layer_norm(&x, g_src, has_beta.then_some(b_src), &mut out, dim_, eps);
            let (want, scale) = layer_norm_f64(&x, g_used, has_beta.then_some(&b_used[..]), dim_, eps);
            assert_close("layer_norm", &out, &want, &scale, TOL_NORM);
        }

        #[test]
        fn layer_norm_is_two_pass(rows in 1usize..4, dim_ in 8usize..=40, seed: u64) {
            let x: Vec<f32> = values(seed, rows * dim_, -1.0, 1.0).iter().map(|v| v + 1000.0).collect();
            let gamma = vec![1.0f32; dim_];
            let mut out = vec![f32::NAN; rows * dim_];
            ref_layer_norm(&x, Src::F32(&gamma), None, &mut out, dim_, 1e-5);
            let (want, _) = layer_norm_f64(&x, &gamma, None, dim_, 1e-5);
            assert_close_rel("layer_norm offset 1000", &out, &want, TOL_NORM_OFFSET);
        }

        #[test]
        fn rms_norm_matches_f64(
            rows in dim(6), dim_ in dim(40), f16_gamma: bool, seed: u64,
        ) {
            let x = values(seed, rows * dim_, -3.0, 3.0);
            let gamma = values(seed ^ 1, dim_, -2.0, 2.0);
            let (g16, g_rounded) = to_f16(&gamma);
            let (g_src, g_used) = if f16_gamma { (Src::F16(&g16), &g_rounded) } else { (Src::F32(&gamma), &gamma) };
            let eps = 1e-6;
            let mut out = vec![f32::NAN; rows * dim_];
            ref_rms_norm(&x, g_src, &mut out, dim_, eps);
            let (want, scale) = rms_norm_f64(&x, g_used, dim_, eps);
            assert_close("rms_norm", &out, &want, &scale, TOL_NORM);
        }

        #[test]
        fn wrong_lengths_never_index_out_of_bounds(
            x_len in slice_len(), g_len in slice_len(), b_len in slice_len(),
            out_len in slice_len(), dim_ in any_len(),
        ) {
            let x = vec![1.0f32; x_len];
            let gamma = vec![f16::ONE; g_len];
            let beta = vec![1.0f32; b_len];
            let mut out = vec![0.0f32; out_len];
            assert_no_oob(|| ref_layer_norm(
                &x, Src::F16(&gamma), Some(Src::F32(&beta)), &mut out, dim_, 1e-5,
            ));
            assert_no_oob(|| ref_rms_norm(&x, Src::F16(&gamma), &mut out, dim_, 1e-5));
        }
    }
}
