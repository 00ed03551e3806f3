//! Which kernels run: the active [`crate::table::Kernels`] table, and the process-wide
//! switches that restrict the choice.

use crate::table;

/// The kernel table in use, e.g. for benchmark reports ("scalar reference" when the
/// scalar kernels run).
pub fn path() -> &'static str {
    table::active().name
}

/// Makes the SIMD path keep to AVX2 on a CPU with AVX-512 (`true`), as on a CPU without
/// it, or lets it use AVX-512 again (`false`), for the whole process. For comparing the
/// two paths on one machine (`quick_matmul`, `quick_attention`).
pub fn force_avx2(on: bool) {
    table::force(table::FORCE_NARROW, on);
}

/// Makes every kernel of this process take the scalar reference path (`true`), as a
/// build without the `simd` feature does, or lets the fast tables run again (`false`).
/// For host-side checks of what a board running the scalar path computes; tests use it
/// to measure the SIMD-vs-scalar difference of whole models.
pub fn force_scalar(on: bool) {
    table::force(table::FORCE_SCALAR, on);
}

/// Whether a table other than the scalar references runs.
#[inline]
pub fn simd_active() -> bool {
    !core::ptr::eq(table::active(), table::generic())
}
