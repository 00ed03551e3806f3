//! SIMD LayerNorm and RMSNorm: the same two-pass formulas as the references (mean, then
//! variance), with the sums and the scaling vectorised over the row.

use crate::Src;
use crate::simd::{F32x8, LANES, Load, hsum};

/// Σ f(x) over the row: four independent vector sums (a single one would wait on the
/// add latency at every step), then the tail.
#[inline(always)]
fn sum(x: &[f32], f: impl Fn(F32x8) -> F32x8, g: impl Fn(f32) -> f32) -> f32 {
    let (chunks, rest) = x.as_chunks::<LANES>();
    let mut acc = [F32x8::splat(0.0); 4];
    let (quads, tail) = chunks.as_chunks::<4>();
    for q in quads {
        for (a, c) in acc.iter_mut().zip(q) {
            *a += f(F32x8::from_array(*c));
        }
    }
    for c in tail {
        acc[0] += f(F32x8::from_array(*c));
    }
    hsum((acc[0] + acc[1]) + (acc[2] + acc[3])) + rest.iter().map(|&v| g(v)).sum::<f32>()
}

/// out = x * a * gamma + b * beta (beta optional), vectorised.
#[inline(always)]
fn scale_row<G: Load>(x: &[f32], shift: f32, inv: f32, gamma: &[G], beta: Option<Src<'_>>, out: &mut [f32]) {
    let dim = x.len();
    let dv = dim - dim % LANES;
    let (sv, iv) = (F32x8::splat(shift), F32x8::splat(inv));
    let mut d = 0;
    while d < dv {
        let v = (F32x8::from_slice(&x[d..d + LANES]) - sv) * iv * G::load8(&gamma[d..d + LANES]);
        out[d..d + LANES].copy_from_slice(v.as_array());
        d += LANES;
    }
    for t in dv..dim {
        out[t] = (x[t] - shift) * inv * gamma[t].to_f32();
    }
    match beta {
        Some(Src::F32(b)) => crate::simd::add_into(out, b),
        Some(Src::F16(b)) => crate::simd::add_into(out, b),
        None => {}
    }
}

#[inline(always)]
fn run(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], dim: usize, eps: f32, rms: bool) {
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let n = dim as f32;
        let (shift, var) = if rms {
            (0.0, sum(xr, |v| v * v, |v| v * v) / n)
        } else {
            let mean = sum(xr, |v| v, |v| v) / n;
            let m = F32x8::splat(mean);
            (mean, sum(xr, |v| (v - m) * (v - m), |v| (v - mean) * (v - mean)) / n)
        };
        let inv = 1.0 / crate::math::sqrtf(var + eps);
        match gamma {
            Src::F32(g) => scale_row(xr, shift, inv, g, beta, or),
            Src::F16(g) => scale_row(xr, shift, inv, g, beta, or),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn avx2(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], dim: usize, eps: f32, rms: bool) {
    run(x, gamma, beta, out, dim, eps, rms)
}

/// The portable `core::simd` entry of `ref_layer_norm` (`rms = false`) and `ref_rms_norm`
/// (`rms = true`, no beta); the caller has checked every length.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn portable(
    x: &[f32],
    gamma: Src<'_>,
    beta: Option<Src<'_>>,
    out: &mut [f32],
    dim: usize,
    eps: f32,
    rms: bool,
) {
    run(x, gamma, beta, out, dim, eps, rms)
}

#[cfg(test)]
mod tests {
    use crate::Src;
    use crate::norm::{layer_norm, ref_layer_norm, ref_rms_norm, rms_norm};
    use half::f16;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_reference(rows in 1usize..5, dim in 1usize..70, offset in -50f32..50.0, f16g: bool, with_beta: bool) {
            let x: Vec<f32> = (0..rows * dim).map(|i| offset + ((i * 31) % 17) as f32 / 7.0 - 1.0).collect();
            let g32: Vec<f32> = (0..dim).map(|i| 1.0 + (i % 5) as f32 * 0.1).collect();
            let g16: Vec<f16> = g32.iter().map(|&v| f16::from_f32(v)).collect();
            let gamma = if f16g { Src::F16(&g16) } else { Src::F32(&g32) };
            let b: Vec<f32> = (0..dim).map(|i| (i % 3) as f32 * 0.2).collect();
            let beta = with_beta.then_some(Src::F32(&b));
            let (mut want, mut got) = (vec![0f32; x.len()], vec![9f32; x.len()]);
            ref_layer_norm(&x, gamma, beta, &mut want, dim, 1e-5);
            layer_norm(&x, gamma, beta, &mut got, dim, 1e-5);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "layer_norm {} vs {}", g, w);
            }
            ref_rms_norm(&x, gamma, &mut want, dim, 1e-6);
            rms_norm(&x, gamma, &mut got, dim, 1e-6);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "rms_norm {} vs {}", g, w);
            }
        }
    }
}
