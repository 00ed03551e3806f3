//! Which kernel path runs: the `core::simd` path when the `simd` feature is on and the CPU
//! has what it needs, else the scalar reference. The public entry points of each op
//! family (`matmul::matmul`, `attention::attention`, ...) go through here.

use core::sync::atomic::{AtomicBool, Ordering};

/// The kernel path in use, e.g. for benchmark reports.
pub fn path() -> &'static str {
    if simd_active() {
        if cfg!(target_arch = "x86_64") {
            if wide() {
                "simd (x86-64 AVX2 + FMA + F16C + AVX-512F, detected at run time)"
            } else {
                "simd (x86-64 AVX2 + FMA + F16C, detected at run time)"
            }
        } else {
            "simd (core::simd, portable)"
        }
    } else {
        "scalar reference"
    }
}

/// Whether the AVX-512 kernels run (GEMM, attention, decode matvec, activations): x86-64
/// with AVX-512F, unless [`force_avx2`] holds.
fn wide() -> bool {
    #[cfg(all(feature = "simd", target_arch = "x86_64"))]
    {
        crate::simd::wide()
    }
    #[cfg(not(all(feature = "simd", target_arch = "x86_64")))]
    {
        false
    }
}

/// Makes the SIMD path keep to AVX2 on a CPU with AVX-512 (`true`), as on a CPU without
/// it, or lets it use AVX-512 again (`false`), for the whole process. For comparing the
/// two paths on one machine (`quick_matmul`, `quick_attention`).
pub fn force_avx2(on: bool) {
    #[cfg(feature = "simd")]
    crate::simd::force_narrow(on);
    #[cfg(not(feature = "simd"))]
    let _ = on;
}

/// Set by [`force_scalar`].
static FORCE_SCALAR: AtomicBool = AtomicBool::new(false);

/// Makes every kernel of this process take the scalar reference path (`true`), as a
/// build without the `simd` feature does, or lets the SIMD path run again (`false`).
/// For host-side checks of what a board running the scalar path computes; tests use it
/// to measure the SIMD-vs-scalar difference of whole models.
pub fn force_scalar(on: bool) {
    FORCE_SCALAR.store(on, Ordering::Relaxed);
}

/// Whether the SIMD kernels run.
#[inline]
pub fn simd_active() -> bool {
    #[cfg(feature = "simd")]
    {
        !FORCE_SCALAR.load(Ordering::Relaxed) && crate::simd::available()
    }
    #[cfg(not(feature = "simd"))]
    {
        false
    }
}
