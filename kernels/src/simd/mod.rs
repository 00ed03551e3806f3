//! The SIMD vocabulary every vector kernel speaks, in one place: the vector types (eight
//! f32 lanes: AVX2 on x86-64, two Helium / NEON registers elsewhere; sixteen for AVX-512),
//! weight loads that widen f16 ([`Load`]), fused multiply-add, lane reductions, the
//! row epilogue (bias, activation, residual), prefetch, and the vector math ([`math`]:
//! exp, erf, tanh, the activations).
//!
//! The kernels built from it live in `crate::portable` (the `core::simd` kernels, any CPU
//! with a vector unit) and `crate::arch::x86_64` (GEMM and tiled attention); no kernel
//! file imports another kernel file's helpers. Not built for the Cortex-M4F / M7, whose
//! plug is scalar FPU code.

pub(crate) mod math;

use core::simd::Simd;
use half::f16;

use crate::Src;
use crate::activation::Activation;

pub(crate) const LANES: usize = 8;
pub(crate) type F32x8 = Simd<f32, LANES>;
/// Sixteen f32 lanes: only inside code compiled with AVX-512F.
#[cfg(target_arch = "x86_64")]
pub(crate) type F32x16 = Simd<f32, 16>;

/// Loads eight weights as f32.
pub(crate) trait Load: Copy {
    fn load8(s: &[Self]) -> F32x8;
    /// Sixteen weights as f32: only inside code compiled with AVX-512F.
    #[cfg(target_arch = "x86_64")]
    fn load16(s: &[Self]) -> F32x16;
    fn to_f32(self) -> f32;
}

impl Load for f32 {
    #[inline(always)]
    fn load8(s: &[f32]) -> F32x8 {
        F32x8::from_slice(s)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn load16(s: &[f32]) -> F32x16 {
        F32x16::from_slice(s)
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
            // reached only through a kernel entry whose caller checked `arch::x86_64::avx2()`, so
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
    fn load16(s: &[f16]) -> F32x16 {
        use core::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm512_cvtph_ps};
        let h = &s[..16];
        // SAFETY: `h` is 16 f16 = 32 readable bytes (unaligned load); `load16` is called
        // only from code compiled with AVX-512F, reached after `arch::x86_64::avx512()`.
        let v = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(h.as_ptr().cast::<__m256i>())) };
        F32x16::from(v)
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
        // `arch::x86_64::avx2()` confirmed the CPU has it; the operation itself touches no memory.
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

#[cfg(target_arch = "x86_64")]
/// `a * b + c` on sixteen lanes, one fused instruction.
#[inline(always)]
pub(crate) fn fma16(a: F32x16, b: F32x16, c: F32x16) -> F32x16 {
    use core::arch::x86_64::_mm512_fmadd_ps;
    // SAFETY: only reached from functions compiled with AVX-512F, after `arch::x86_64::avx512()`
    // confirmed the CPU has it; the operation touches no memory.
    F32x16::from(unsafe { _mm512_fmadd_ps(a.into(), b.into(), c.into()) })
}

#[cfg(target_arch = "x86_64")]
/// Maximum of the lanes by halving (for inputs without NaN), as [`hmax`].
#[inline(always)]
pub(crate) fn reduce_max16(v: F32x16) -> f32 {
    use core::simd::simd_swizzle;
    let (lo, hi) = (simd_swizzle!(v, [0, 1, 2, 3, 4, 5, 6, 7]), simd_swizzle!(v, [8, 9, 10, 11, 12, 13, 14, 15]));
    hmax(max_lanes(lo, hi))
}

#[cfg(target_arch = "x86_64")]
/// Sum of the lanes by halving, as [`hsum`].
#[inline(always)]
pub(crate) fn reduce_sum16(v: F32x16) -> f32 {
    use core::simd::simd_swizzle;
    hsum(simd_swizzle!(v, [0, 1, 2, 3, 4, 5, 6, 7]) + simd_swizzle!(v, [8, 9, 10, 11, 12, 13, 14, 15]))
}

/// Hints the cache to fetch the line holding `s[at]` (x86-64; a no-op elsewhere).
#[inline(always)]
pub(crate) fn prefetch<W>(s: &[W], at: usize, nta: bool) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v) = s.get(at) {
        use core::arch::x86_64::{_MM_HINT_NTA, _MM_HINT_T0, _mm_prefetch};
        let p = (v as *const W).cast::<i8>();
        // SAFETY: a prefetch is only a hint; the address is inside `s`.
        unsafe { if nta { _mm_prefetch::<_MM_HINT_NTA>(p) } else { _mm_prefetch::<_MM_HINT_T0>(p) } };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, at, nta);
}

/// `row[i] += b[i]`, eight at a time (f16 widened by the vector conversion).
#[inline(always)]
pub(crate) fn add_into<W: Load>(row: &mut [f32], b: &[W]) {
    let n = row.len().min(b.len());
    let nv = n - n % LANES;
    let mut i = 0;
    while i < nv {
        let v = F32x8::from_slice(&row[i..i + LANES]) + W::load8(&b[i..i + LANES]);
        row[i..i + LANES].copy_from_slice(v.as_array());
        i += LANES;
    }
    for (o, v) in row[nv..n].iter_mut().zip(&b[nv..n]) {
        *o += v.to_f32();
    }
}

/// The epilogue per row, in the reference's order: + bias, activation, + residual.
/// `WIDE`: the activation runs on sixteen lanes (the caller is compiled with AVX-512F).
#[inline(always)]
pub(crate) fn epilogue<const WIDE: bool>(
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    n: usize,
) {
    for (r, row) in out.chunks_exact_mut(n).enumerate() {
        match bias {
            Some(Src::F32(b)) => add_into(row, b),
            Some(Src::F16(b)) => add_into(row, b),
            None => {}
        }
        #[cfg(target_arch = "x86_64")]
        if WIDE {
            math::wide::activation_inplace(row, act);
        } else {
            math::activation_inplace(row, act);
        }
        #[cfg(not(target_arch = "x86_64"))]
        math::activation_inplace(row, act);
        if let Some(res) = residual {
            add_into(row, &res[r * n..(r + 1) * n]);
        }
    }
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
