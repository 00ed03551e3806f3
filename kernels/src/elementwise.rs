//! Elementwise ops: residual and position-embedding adds, and row concatenation (the
//! ViT CLS token in front of the patch tokens).

use crate::Src;
use crate::src::debug_assert_shape_eq;

/// ```text
/// out[i] = a[i] + b[i]
/// a, b, out: [len] (any shape, the same for all three)
/// ```
/// `b` may be f16, e.g. a position embedding stored as a weight.
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn ref_add(a: &[f32], b: Src<'_>, out: &mut [f32]) {
    debug_assert_shape_eq!(a.len(), out.len(), "a, out: [len]");
    debug_assert_shape_eq!(b.len(), out.len(), "b, out: [len]");
    out.iter_mut().zip(a).for_each(|(o, a)| *o = *a);
    b.zip_with(out, |o, b| o + b);
}

/// Stacks the rows of `a` on top of the rows of `b`:
/// ```text
/// a: [rows_a, dim] (e.g. the CLS token weight, f16 or f32); b: [rows_b, dim]
/// out: [rows_a + rows_b, dim]
/// ```
/// Rows are contiguous, so `dim` is implied: out = a's elements, then b's.
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn ref_concat_rows(a: Src<'_>, b: Src<'_>, out: &mut [f32]) {
    debug_assert_shape_eq!(a.len().checked_add(b.len()), Some(out.len()), "out: [rows_a + rows_b, dim]");
    let (out_a, out_b) = out.split_at_mut(a.len().min(out.len()));
    a.copy_to(out_a);
    b.copy_to(out_b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_close_rel, assert_no_oob, dim, slice_len, to_f16, values};
    use half::f16;
    use proptest::prelude::*;

    /// One f32 addition: half an ulp.
    const TOL_ADD: f64 = 6e-8;

    #[test]
    fn add_known() {
        let b16 = [f16::from_f32(0.5), f16::from_f32(-2.0)];
        let mut out = [0.0f32; 2];
        ref_add(&[1.0, 1.0], Src::F16(&b16), &mut out);
        assert_eq!(out, [1.5, -1.0]);
        ref_add(&[1.0, 1.0], Src::F32(&[3.0, 4.0]), &mut out);
        assert_eq!(out, [4.0, 5.0]);
    }

    #[test]
    fn concat_known() {
        // a: [1, 2] (CLS), b: [2, 2] (patches) -> out: [3, 2]
        let cls = [f16::from_f32(9.0), f16::from_f32(8.0)];
        let patches = [1.0f32, 2.0, 3.0, 4.0];
        let mut out = [0.0f32; 6];
        ref_concat_rows(Src::F16(&cls), Src::F32(&patches), &mut out);
        assert_eq!(out, [9.0, 8.0, 1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "b, out: [len]")]
    fn short_b_trips_debug_assert() {
        let mut out = [0.0f32; 3];
        ref_add(&[1.0; 3], Src::F32(&[1.0; 2]), &mut out);
    }

    proptest! {
        #![proptest_config(crate::testutil::config(128))]

        #[test]
        fn add_matches_f64(len in dim(40), f16_b: bool, seed: u64) {
            let a = values(seed, len, -10.0, 10.0);
            let b = values(seed ^ 1, len, -10.0, 10.0);
            let (b16, b_rounded) = to_f16(&b);
            let (src, b_used) = if f16_b { (Src::F16(&b16), b_rounded) } else { (Src::F32(&b), b.clone()) };
            let mut out = vec![f32::NAN; len];
            ref_add(&a, src, &mut out);
            let want: Vec<f64> =
                a.iter().zip(&b_used).map(|(a, b)| f64::from(*a) + f64::from(*b)).collect();
            assert_close_rel("add", &out, &want, TOL_ADD);
        }

        #[test]
        fn concat_rows_matches(
            rows_a in dim(3), rows_b in dim(9), dim_ in dim(12), f16_a: bool, seed: u64,
        ) {
            let a = values(seed, rows_a * dim_, -10.0, 10.0);
            let b = values(seed ^ 1, rows_b * dim_, -10.0, 10.0);
            let (a16, a_rounded) = to_f16(&a);
            let (src, a_used) = if f16_a { (Src::F16(&a16), a_rounded) } else { (Src::F32(&a), a.clone()) };
            let mut out = vec![f32::NAN; (rows_a + rows_b) * dim_];
            ref_concat_rows(src, Src::F32(&b), &mut out);
            for r in 0..rows_a + rows_b {
                for d in 0..dim_ {
                    let want = if r < rows_a { a_used[r * dim_ + d] } else { b[(r - rows_a) * dim_ + d] };
                    prop_assert_eq!(out[r * dim_ + d], want, "row {}, col {}", r, d);
                }
            }
        }

        #[test]
        fn wrong_lengths_never_index_out_of_bounds(
            a_len in slice_len(), b_len in slice_len(), out_len in slice_len(),
        ) {
            let a = vec![1.0f32; a_len];
            let b = vec![f16::ONE; b_len];
            let mut out = vec![0.0f32; out_len];
            assert_no_oob(|| ref_add(&a, Src::F16(&b), &mut out));
            assert_no_oob(|| ref_concat_rows(Src::F32(&a), Src::F16(&b), &mut out));
        }
    }
}
