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
use crate::vmath::vector_math;

/// `1 / x` for x >= 1 (where the activations use it): the hardware's 12-bit estimate and
/// one Newton step on x86-64 (a division costs several times as much), a division
/// elsewhere. Relative error below 2^-22; x is first capped at 1e30 (so an infinite x
/// gives 1e-30, not the NaN of the Newton step), and a NaN stays NaN.
#[inline(always)]
fn recip8(x: F32x8) -> F32x8 {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm256_min_ps, _mm256_rcp_ps};
        // SAFETY: AVX is part of what `available()` checked before any kernel runs.
        // `minps(a, b)` returns b when either is NaN: a NaN x passes through.
        let x = F32x8::from(unsafe { _mm256_min_ps(F32x8::splat(1e30).into(), x.into()) });
        // SAFETY: as above.
        let r = F32x8::from(unsafe { _mm256_rcp_ps(x.into()) });
        r * super::fma(-x, r, F32x8::splat(2.0))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        F32x8::splat(1.0) / x
    }
}

vector_math!(F32x8, LANES, super::fma, recip8);

/// Sixteen-lane versions (AVX-512F), for code compiled with it.
#[cfg(target_arch = "x86_64")]
pub(crate) mod wide {
    use super::super::{F32x16, fma16};
    use super::Activation;
    use core::simd::Simd;
    use core::simd::prelude::*;

    /// `1 / x` for x >= 1: the 14-bit estimate and one Newton step, x capped at 1e30 as
    /// in `recip8`.
    #[inline(always)]
    fn recip16(x: F32x16) -> F32x16 {
        use core::arch::x86_64::{_mm512_min_ps, _mm512_rcp14_ps};
        // SAFETY: only reached from functions compiled with AVX-512F; `vminps` returns
        // its second operand when either is NaN.
        let x = F32x16::from(unsafe { _mm512_min_ps(F32x16::splat(1e30).into(), x.into()) });
        // SAFETY: as above.
        let r = F32x16::from(unsafe { _mm512_rcp14_ps(x.into()) });
        r * fma16(-x, r, F32x16::splat(2.0))
    }

    crate::vmath::vector_math!(F32x16, 16, fma16, recip16);
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

    /// The sixteen-lane versions (AVX-512F), where the CPU has it: the same bounds.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn wide_versions_match_the_scalar_ones() {
        #[target_feature(enable = "avx512f,avx2,fma,f16c")]
        fn run(v: &mut [f32], act: Activation) {
            wide::activation_inplace(v, act)
        }
        #[target_feature(enable = "avx512f,avx2,fma,f16c")]
        fn wexp(x: f32) -> f32 {
            wide::exp(super::super::F32x16::splat(x))[0]
        }
        if !crate::arch::x86_64::has_avx512f() {
            return;
        }
        for &x in &grid() {
            // SAFETY: the CPU has AVX-512F (checked above).
            let got = unsafe { wexp(x) };
            let want = (x as f64).exp();
            if (-87.0..=88.0).contains(&x) {
                assert!(((got as f64 - want) / want).abs() < 2e-7, "exp({x}) = {got} vs {want}");
            }
        }
        for act in [Activation::GeluErf, Activation::GeluTanh, Activation::Silu, Activation::Sigmoid, Activation::Tanh]
        {
            let mut v = grid();
            v.push(f32::NAN);
            let mut want = v.clone();
            crate::activation::ref_activation_inplace(&mut want, act);
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { run(&mut v, act) };
            for (i, (g, w)) in v.iter().zip(&want).enumerate() {
                if w.is_nan() {
                    assert!(g.is_nan(), "{act:?} NaN");
                    continue;
                }
                assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()), "{act:?}[{i}]: {g} vs {w}");
            }
        }
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
