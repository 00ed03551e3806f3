//! Which kernel path runs: the `core::simd` path when the `simd` feature is on and the CPU
//! has what it needs, else the scalar reference. The public entry points of each op
//! family (`matmul::matmul`, `attention::attention`, ...) go through here.

/// The kernel path in use, e.g. for benchmark reports.
pub fn path() -> &'static str {
    if simd_active() {
        if cfg!(target_arch = "x86_64") {
            "simd (x86-64 AVX2 + FMA + F16C, detected at run time)"
        } else {
            "simd (core::simd, portable)"
        }
    } else {
        "scalar reference"
    }
}

/// Whether the SIMD kernels run.
#[inline]
pub fn simd_active() -> bool {
    #[cfg(feature = "simd")]
    {
        crate::simd::available()
    }
    #[cfg(not(feature = "simd"))]
    {
        false
    }
}
