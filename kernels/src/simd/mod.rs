//! `core::simd` kernels beside the scalar references. Eight f32 lanes: AVX2 on x86-64,
//! two Helium / NEON registers elsewhere, scalar code where there is no vector unit
//! (Cortex-M4/M7). Each kernel is tested against its `ref_*` counterpart.

pub(crate) mod attention;
#[cfg(target_arch = "x86_64")]
pub(crate) mod attn512;
#[cfg(target_arch = "x86_64")]
pub(crate) mod flash;
#[cfg(target_arch = "x86_64")]
pub(crate) mod gemm;
#[cfg(target_arch = "x86_64")]
pub(crate) mod gemm512;
pub(crate) mod math;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod patch;
pub(crate) mod scan;

use core::simd::Simd;
use half::f16;

pub(crate) const LANES: usize = 8;
pub(crate) type F32x8 = Simd<f32, LANES>;

/// Whether the x86-64 SIMD kernels may run on this CPU (AVX2, FMA, F16C).
#[cfg(target_arch = "x86_64")]
pub(crate) fn available() -> bool {
    #[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
    {
        use std::sync::atomic::{AtomicU8, Ordering};
        static CACHE: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 no, 2 yes
        match CACHE.load(Ordering::Relaxed) {
            2 => true,
            1 => false,
            _ => {
                let ok = std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("f16c");
                CACHE.store(if ok { 2 } else { 1 }, Ordering::Relaxed);
                ok
            }
        }
    }
    #[cfg(all(target_arch = "x86_64", not(any(test, feature = "std"))))]
    {
        cfg!(all(target_feature = "avx2", target_feature = "fma", target_feature = "f16c"))
    }
}

/// Loads eight weights as f32.
pub(crate) trait Load: Copy {
    fn load8(s: &[Self]) -> F32x8;
    /// Sixteen weights as f32: only inside code compiled with AVX-512F.
    #[cfg(target_arch = "x86_64")]
    fn load16(s: &[Self]) -> gemm512::F32x16;
    fn to_f32(self) -> f32;
}

impl Load for f32 {
    #[inline(always)]
    fn load8(s: &[f32]) -> F32x8 {
        F32x8::from_slice(s)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn load16(s: &[f32]) -> gemm512::F32x16 {
        gemm512::F32x16::from_slice(s)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Load for f16 {
    #[inline(always)]
    fn load8(s: &[f16]) -> F32x8 {
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{__m128i, _mm_loadu_si128, _mm256_cvtph_ps};
            let h = &s[..LANES];
            // SAFETY: `h` is 8 f16 = 16 readable bytes (unaligned load); every caller is
            // reached only through a kernel entry whose caller checked `available()`, so
            // this CPU has F16C.
            let v = unsafe { _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr().cast::<__m128i>())) };
            F32x8::from(v)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            f16x8_to_f32(&s[..LANES])
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn load16(s: &[f16]) -> gemm512::F32x16 {
        use core::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm512_cvtph_ps};
        let h = &s[..16];
        // SAFETY: `h` is 16 f16 = 32 readable bytes (unaligned load); `load16` is called
        // only from code compiled with AVX-512F, reached after `gemm512::available()`.
        let v = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(h.as_ptr().cast::<__m256i>())) };
        gemm512::F32x16::from(v)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

/// Portable f16 -> f32 for eight values: move the bits into place and rescale the
/// exponent with one multiply (exact for normals and subnormals), then fix inf/NaN.
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn f16x8_to_f32(h: &[f16]) -> F32x8 {
    use core::simd::prelude::*;
    let bits: Simd<u16, LANES> = Simd::from_array(core::array::from_fn(|i| h.get(i).map_or(0, |v| v.to_bits())));
    let w: Simd<u32, LANES> = bits.cast();
    let sign = (w & Simd::splat(0x8000)) << Simd::splat(16);
    let em = w & Simd::splat(0x7fff);
    let scaled = F32x8::from_bits(em << Simd::splat(13)) * F32x8::splat(f32::from_bits(0x7780_0000)); // 2^112
    let infnan = F32x8::from_bits((em << Simd::splat(13)) | Simd::splat(0x7f80_0000));
    let v = em.simd_ge(Simd::splat(0x7c00)).select(infnan, scaled);
    F32x8::from_bits(v.to_bits() | sign)
}

/// `a * b + c`: one fused instruction on x86-64 (one rounding), a multiply and an add
/// elsewhere (`Simd::mul_add` needs `std`).
#[inline(always)]
pub(crate) fn fma(a: F32x8, b: F32x8, c: F32x8) -> F32x8 {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::_mm256_fmadd_ps;
        // SAFETY: the SIMD kernels run only inside functions compiled with FMA, after
        // `available()` confirmed the CPU has it; the operation itself touches no memory.
        F32x8::from(unsafe { _mm256_fmadd_ps(a.into(), b.into(), c.into()) })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        a * b + c
    }
}

/// Sum of the lanes by halving (three dependent adds; `reduce_sum` adds the lanes one
/// after another, seven).
#[inline(always)]
pub(crate) fn hsum(v: F32x8) -> f32 {
    use core::simd::simd_swizzle;
    let s4 = simd_swizzle!(v, [0, 1, 2, 3]) + simd_swizzle!(v, [4, 5, 6, 7]);
    let s2 = simd_swizzle!(s4, [0, 1]) + simd_swizzle!(s4, [2, 3]);
    s2[0] + s2[1]
}

/// Maximum of the lanes by halving (for inputs without NaN: a NaN lane may or may not
/// win).
#[inline(always)]
pub(crate) fn hmax(v: F32x8) -> f32 {
    use core::simd::simd_swizzle;
    let m4 = max_lanes(simd_swizzle!(v, [0, 1, 2, 3]), simd_swizzle!(v, [4, 5, 6, 7]));
    let m2 = max_lanes(simd_swizzle!(m4, [0, 1]), simd_swizzle!(m4, [2, 3]));
    if m2[0] > m2[1] { m2[0] } else { m2[1] }
}

/// Lane-wise `if a > b { a } else { b }`: one `maxps` on x86 (`simd_max`'s NaN rule
/// costs two more instructions per step).
#[inline(always)]
pub(crate) fn max_lanes<const N: usize>(a: Simd<f32, N>, b: Simd<f32, N>) -> Simd<f32, N> {
    use core::simd::prelude::*;
    a.simd_gt(b).select(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable conversion (used on Arm) against `half`, for every f16 bit pattern.
    #[test]
    fn portable_f16_conversion_is_exact() {
        for start in (0..=u16::MAX as u32).step_by(LANES) {
            let h: [f16; LANES] = core::array::from_fn(|i| f16::from_bits((start as usize + i) as u16));
            let got = f16x8_to_f32(&h);
            for (g, w) in got.as_array().iter().zip(h.iter().map(|v| v.to_f32())) {
                assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{:#06x}: {g} vs {w}", start);
            }
        }
    }
}
