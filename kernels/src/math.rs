//! Scalar f32 math for `no_std`: thin wrappers over the `libm` crate.
//!
//! `f32::exp`, `f32::sqrt` and friends live in `std`, not `core`, so kernels call these.
//! All follow C99 / IEEE 754: a NaN argument gives NaN (except [`maxf`], see there),
//! overflow gives ±inf, and results are within a few ulp of the exact value.

/// e^x. `expf(-inf) = 0`, `expf(+inf) = +inf`; overflows to +inf above ~88.72.
#[inline]
pub fn expf(x: f32) -> f32 {
    libm::expf(x)
}

/// The error function erf(x), in [-1, 1]. `erff(±inf) = ±1`.
#[inline]
pub fn erff(x: f32) -> f32 {
    libm::erff(x)
}

/// tanh(x), in [-1, 1]. `tanhf(±inf) = ±1`.
#[inline]
pub fn tanhf(x: f32) -> f32 {
    libm::tanhf(x)
}

/// Square root; NaN for x < 0, `sqrtf(-0.0) = -0.0`.
#[inline]
pub fn sqrtf(x: f32) -> f32 {
    // Miri cannot run libm's x86 `sqrtss` inline assembly; core's sqrt is correctly
    // rounded as well, so the value is the same.
    #[cfg(miri)]
    return core::f32::math::sqrt(x);
    #[cfg(not(miri))]
    libm::sqrtf(x)
}

/// Natural logarithm; `-inf` at 0, NaN for x < 0.
#[inline]
pub fn logf(x: f32) -> f32 {
    libm::logf(x)
}

/// ln(1 + x), accurate for small |x|; `-inf` at -1, NaN below -1.
#[inline]
pub fn log1pf(x: f32) -> f32 {
    libm::log1pf(x)
}

/// The larger of `a` and `b` (IEEE 754 maxNum, as C `fmaxf` and `f32::max`): if exactly
/// one argument is NaN the other is returned, so a NaN does NOT propagate; NaN only when
/// both are NaN. The sign of zero is unspecified for `maxf(-0.0, 0.0)`.
#[inline]
pub fn maxf(a: f32, b: f32) -> f32 {
    libm::fmaxf(a, b)
}

/// Cosine (libm).
#[inline]
pub fn cosf(x: f32) -> f32 {
    libm::cosf(x)
}

/// Sine (libm).
#[inline]
pub fn sinf(x: f32) -> f32 {
    libm::sinf(x)
}

/// Rounds half away from zero (as C's `roundf`).
#[inline]
pub fn roundf(x: f32) -> f32 {
    libm::roundf(x)
}

/// `a * b + c` with one rounding.
#[inline]
pub fn fmaf(a: f32, b: f32, c: f32) -> f32 {
    // Miri cannot run libm's x86 feature detection (cpuid); core's fused multiply-add
    // rounds once as well, so the value is the same.
    #[cfg(miri)]
    return core::f32::math::mul_add(a, b, c);
    #[cfg(not(miri))]
    libm::fmaf(a, b, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_std() {
        for &x in &[-3.5f32, -1.0, -0.25, 0.0, 0.3, 1.0, 2.5, 10.0] {
            assert!((expf(x) - x.exp()).abs() <= 1e-6 * x.exp(), "expf({x})");
            assert!((tanhf(x) - x.tanh()).abs() <= 1e-6, "tanhf({x})");
            assert!((log1pf(x.abs()) - x.abs().ln_1p()).abs() <= 1e-6, "log1pf({x})");
            assert!((sqrtf(x.abs()) - x.abs().sqrt()).abs() <= 1e-6, "sqrtf({x})");
            let e = libm::erf(f64::from(x)) as f32;
            assert!((erff(x) - e).abs() <= 1e-6, "erff({x})");
        }
        assert!((logf(core::f32::consts::E) - 1.0).abs() <= 1e-6);
        assert_eq!(logf(0.0), f32::NEG_INFINITY);
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(100.0), f32::INFINITY);
        assert!(sqrtf(-1.0).is_nan());
    }

    #[test]
    fn maxf_nan_behaviour() {
        assert_eq!(maxf(1.0, 2.0), 2.0);
        assert_eq!(maxf(-1.0, -2.0), -1.0);
        assert_eq!(maxf(f32::NAN, 3.0), 3.0);
        assert_eq!(maxf(3.0, f32::NAN), 3.0);
        assert_eq!(maxf(f32::NEG_INFINITY, -1e30), -1e30);
        assert!(maxf(f32::NAN, f32::NAN).is_nan());
    }
}
