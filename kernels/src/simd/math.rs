//! Vectorised exp, erf and the activations built on them, with stated maximum errors
//! (checked against the libm-based scalar versions in the tests below).
//!
//! - `exp`: Cephes-style range reduction and degree-5 polynomial; relative error below
//!   2e-7 for inputs in [-87, 88]; 0 below -87.3 (and for -inf); NaN stays NaN.
//! - `erf`: Abramowitz & Stegun 7.1.26; absolute error below 2e-7 (plus exp's).
//! - GELU (erf and tanh forms), SiLU, sigmoid, tanh built on those: absolute error below
//!   1e-6 * (1 + |x|).

use core::simd::Simd;
use core::simd::prelude::*;

use super::{F32x8, LANES};
use crate::activation::Activation;

// `core::simd` in no_std has no `StdFloat` (floor, mul_add): rounding uses the
// add-and-subtract trick (exact for |x| < 2^22), multiply-adds `super::fma`.
#[inline(always)]
pub(crate) fn exp(x: F32x8) -> F32x8 {
    use super::fma;
    let nan = x.simd_ne(x);
    let low = x.simd_lt(F32x8::splat(-87.3));
    let xc = x.simd_clamp(F32x8::splat(-87.3), F32x8::splat(88.7));
    // Round x log2(e) to an integer n with the magic-number trick; the integer is then
    // also in the low bits of the sum (|n| < 2^22), so no float-to-int conversion.
    let magic = F32x8::splat(12_582_912.0); // 1.5 * 2^23
    let t = fma(xc, F32x8::splat(core::f32::consts::LOG2_E), magic);
    let n = t - magic;
    let ni = t.to_bits().cast::<i32>() - magic.to_bits().cast::<i32>();
    let r = fma(n, F32x8::splat(2.121_944_4e-4), fma(n, F32x8::splat(-0.693_359_4), xc));
    let mut p = F32x8::splat(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        p = fma(p, r, F32x8::splat(c));
    }
    let y = fma(p, r * r, r) + F32x8::splat(1.0);
    let bits = (ni + Simd::splat(127)) << Simd::splat(23);
    let v = y * F32x8::from_bits(bits.cast());
    let v = low.select(F32x8::splat(0.0), v);
    nan.select(x, v)
}

#[inline(always)]
fn erf(x: F32x8) -> F32x8 {
    let a = x.abs();
    let t = F32x8::splat(1.0) / (F32x8::splat(1.0) + F32x8::splat(0.327_591_1) * a);
    let mut p = F32x8::splat(1.061_405_4);
    for c in [-1.453_152_1, 1.421_413_8, -0.284_496_74, 0.254_829_6] {
        p = p * t + F32x8::splat(c);
    }
    let y = F32x8::splat(1.0) - p * t * exp(-(a * a));
    y.copysign(x)
}

#[inline(always)]
fn sigmoid(x: F32x8) -> F32x8 {
    F32x8::splat(1.0) / (F32x8::splat(1.0) + exp(-x))
}

#[inline(always)]
fn tanh(x: F32x8) -> F32x8 {
    // tanh(x) = sign(x) (1 - 2 / (exp(2|x|) + 1)); exact sign, no overflow.
    let e = exp(F32x8::splat(2.0) * x.abs());
    (F32x8::splat(1.0) - F32x8::splat(2.0) / (e + F32x8::splat(1.0))).copysign(x)
}

#[inline(always)]
fn apply(act: Activation, x: F32x8) -> F32x8 {
    let half = F32x8::splat(0.5);
    match act {
        Activation::GeluErf => half * x * (F32x8::splat(1.0) + erf(x * F32x8::splat(core::f32::consts::FRAC_1_SQRT_2))),
        Activation::GeluTanh => {
            let inner = F32x8::splat(0.797_884_6) * (x + F32x8::splat(0.044715) * x * x * x);
            half * x * (F32x8::splat(1.0) + tanh(inner))
        }
        Activation::Silu => x * sigmoid(x),
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => tanh(x),
        _ => x,
    }
}

/// Applies `act` in place with the vectorised functions (the others stay scalar).
#[inline(always)]
pub(crate) fn activation_inplace(x: &mut [f32], act: Activation) {
    if !matches!(
        act,
        Activation::GeluErf | Activation::GeluTanh | Activation::Silu | Activation::Sigmoid | Activation::Tanh
    ) {
        return crate::activation::ref_activation_inplace(x, act);
    }
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        let v = apply(act, F32x8::from_slice(c));
        c.copy_from_slice(v.as_array());
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut buf = [0f32; LANES];
        buf[..rest.len()].copy_from_slice(rest);
        let v = apply(act, F32x8::from_array(buf));
        rest.copy_from_slice(&v.as_array()[..rest.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Vec<f32> {
        let mut v: Vec<f32> = (-4000..=4000).map(|i| i as f32 * 0.01).collect();
        v.extend([-100.0, -87.0, -50.0, -20.0, 20.0, 50.0, 88.0, 100.0, 1e-8, -1e-8, 0.0]);
        v
    }

    #[test]
    fn exp_relative_error() {
        for &x in &grid() {
            let got = exp(F32x8::splat(x))[0];
            let want = (x as f64).exp();
            if (-87.0..=88.0).contains(&x) {
                assert!(((got as f64 - want) / want).abs() < 2e-7, "exp({x}) = {got} vs {want}");
            }
        }
        assert_eq!(exp(F32x8::splat(f32::NEG_INFINITY))[0], 0.0);
        assert_eq!(exp(F32x8::splat(-100.0))[0], 0.0);
        assert!(exp(F32x8::splat(f32::NAN))[0].is_nan());
    }

    #[test]
    fn activations_match_the_scalar_ones() {
        for act in [Activation::GeluErf, Activation::GeluTanh, Activation::Silu, Activation::Sigmoid, Activation::Tanh]
        {
            let mut v = grid();
            v.push(f32::NAN);
            let mut want = v.clone();
            crate::activation::ref_activation_inplace(&mut want, act);
            activation_inplace(&mut v, act);
            for (i, (g, w)) in v.iter().zip(&want).enumerate() {
                if w.is_nan() {
                    assert!(g.is_nan(), "{act:?} NaN");
                    continue;
                }
                assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()), "{act:?}[{i}]: {g} vs {w}");
            }
        }
    }
}
