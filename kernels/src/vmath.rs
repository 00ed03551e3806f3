//! Exp, erf and the activations built on them, written once for any `core::simd` vector
//! type: the 8- and 16-lane kernels (`crate::simd::math`) and the one-lane Cortex-M4F
//! kernels (`crate::arch::armv7em`) instantiate the same macro. Errors are stated and
//! tested in `crate::simd::math`.

/// The functions below for one vector type `V` of `L` f32 lanes, its multiply-add `fma`
/// and its reciprocal `recip` (for positive finite inputs).
macro_rules! vector_math {
    ($V:ty, $L:expr, $fma:path, $recip:path) => {
        #[allow(dead_code)]
        type V = $V;
        const L: usize = $L;
        use $fma as fma;
        use $recip as recip;

        // `core::simd` in no_std has no `StdFloat` (floor, mul_add): rounding uses the
        // add-and-subtract trick (exact for |x| < 2^22), multiply-adds `super::fma`.
        #[inline(always)]
        pub(crate) fn exp(x: V) -> V {
            let nan = x.simd_ne(x);
            let low = x.simd_lt(V::splat(-87.3));
            let xc = x.simd_clamp(V::splat(-87.3), V::splat(88.7));
            // Round x log2(e) to an integer n with the magic-number trick; the integer is then
            // also in the low bits of the sum (|n| < 2^22), so no float-to-int conversion.
            let magic = V::splat(12_582_912.0); // 1.5 * 2^23
            let t = fma(xc, V::splat(core::f32::consts::LOG2_E), magic);
            let n = t - magic;
            let ni = t.to_bits().cast::<i32>() - magic.to_bits().cast::<i32>();
            let r = fma(n, V::splat(2.121_944_4e-4), fma(n, V::splat(-0.693_359_4), xc));
            let mut p = V::splat(1.987_569_1e-4);
            for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
                p = fma(p, r, V::splat(c));
            }
            let y = fma(p, r * r, r) + V::splat(1.0);
            let bits = (ni + Simd::splat(127)) << Simd::splat(23);
            let v = y * V::from_bits(bits.cast());
            let v = low.select(V::splat(0.0), v);
            nan.select(x, v)
        }

        #[inline(always)]
        fn erf(x: V) -> V {
            let a = x.abs();
            let t = recip(fma(V::splat(0.327_591_1), a, V::splat(1.0)));
            let mut p = V::splat(1.061_405_4);
            for c in [-1.453_152_1, 1.421_413_8, -0.284_496_74, 0.254_829_6] {
                p = fma(p, t, V::splat(c));
            }
            let y = V::splat(1.0) - p * t * exp(-(a * a));
            y.copysign(x)
        }

        #[inline(always)]
        fn sigmoid(x: V) -> V {
            recip(V::splat(1.0) + exp(-x))
        }

        #[inline(always)]
        fn tanh(x: V) -> V {
            // tanh(x) = sign(x) (1 - 2 / (exp(2|x|) + 1)); exact sign, no overflow.
            let e = exp(V::splat(2.0) * x.abs());
            (V::splat(1.0) - V::splat(2.0) * recip(e + V::splat(1.0))).copysign(x)
        }

        #[inline(always)]
        fn apply(act: Activation, x: V) -> V {
            let half = V::splat(0.5);
            match act {
                Activation::GeluErf => half * x * (V::splat(1.0) + erf(x * V::splat(core::f32::consts::FRAC_1_SQRT_2))),
                Activation::GeluTanh => {
                    let inner = V::splat(0.797_884_6) * (x + V::splat(0.044715) * x * x * x);
                    half * x * (V::splat(1.0) + tanh(inner))
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
                return crate::activation::simple_inplace(x, act);
            }
            let mut chunks = x.chunks_exact_mut(L);
            for c in &mut chunks {
                let v = apply(act, V::from_slice(c));
                c.copy_from_slice(v.as_array());
            }
            let rest = chunks.into_remainder();
            if !rest.is_empty() {
                let mut buf = [0f32; L];
                buf[..rest.len()].copy_from_slice(rest);
                let v = apply(act, V::from_array(buf));
                rest.copy_from_slice(&v.as_array()[..rest.len()]);
            }
        }
    };
}

pub(crate) use vector_math;
