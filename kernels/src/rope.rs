//! Rotary position embedding (Su et al. 2021) in the Hugging Face Llama layout
//! ("rotate_half": the two halves of a head are the two coordinates of each pair).

use crate::math::{cosf, sinf};

/// Rotates `heads` consecutive heads of every row of `x`, in place.
///
/// x: rows of `row_stride` elements; the rotated heads are
/// `x[i*row_stride + h*head_dim ..][..head_dim]` for h in 0..heads.
/// inv_freq: [head_dim / 2], `1 / theta^(2j / head_dim)`.
/// Row i is at position `pos0 + i`; with angle a = (pos0 + i) * inv_freq[j] (in f32, as
/// transformers computes it):
///   x'[j]        = x[j] * cos a - x[j + half] * sin a
///   x'[j + half] = x[j + half] * cos a + x[j] * sin a
pub fn ref_rope_inplace(
    x: &mut [f32],
    rows: usize,
    row_stride: usize,
    heads: usize,
    head_dim: usize,
    inv_freq: &[f32],
    pos0: usize,
) {
    let half = head_dim / 2;
    if half == 0 || row_stride == 0 {
        return;
    }
    for (i, row) in x.chunks_exact_mut(row_stride).take(rows).enumerate() {
        let pos = (pos0 + i) as f32;
        for head in row.chunks_exact_mut(head_dim).take(heads) {
            let (lo, hi) = head.split_at_mut(half);
            for ((a, b), &f) in lo.iter_mut().zip(hi.iter_mut()).zip(inv_freq) {
                let angle = pos * f;
                let (c, s) = (cosf(angle), sinf(angle));
                let (x0, x1) = (*a, *b);
                *a = x0 * c - x1 * s;
                *b = x1 * c + x0 * s;
            }
        }
    }
}

/// [`ref_rope_inplace`] with the active kernel table's entry. Same contract; the entry
/// may index directly, so the lengths are checked here first (else the reference runs).
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn rope_inplace(
    x: &mut [f32],
    rows: usize,
    row_stride: usize,
    heads: usize,
    head_dim: usize,
    inv_freq: &[f32],
    pos0: usize,
) {
    let fits = head_dim >= 2
        && inv_freq.len() >= head_dim / 2
        && heads.checked_mul(head_dim).is_some_and(|w| w <= row_stride)
        && rows.checked_mul(row_stride).is_some_and(|n| n <= x.len());
    if fits {
        return (crate::table::active().rope)(x, rows, row_stride, heads, head_dim, inv_freq, pos0);
    }
    crate::src::mismatch!(x, ref_rope_inplace(x, rows, row_stride, heads, head_dim, inv_freq, pos0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f64 rotate_half reference.
    fn rope_f64(x: &[f32], pos: usize, head_dim: usize, theta: f64) -> Vec<f64> {
        let half = head_dim / 2;
        (0..head_dim)
            .map(|d| {
                let j = d % half;
                let a = pos as f64 / theta.powf(2.0 * j as f64 / head_dim as f64);
                let (c, s) = (a.cos(), a.sin());
                if d < half {
                    x[d] as f64 * c - x[d + half] as f64 * s
                } else {
                    x[d] as f64 * c + x[d - half] as f64 * s
                }
            })
            .collect()
    }

    #[test]
    fn matches_f64_rotate_half_and_keeps_norm() {
        let (head_dim, heads, rows, theta) = (8, 3, 5, 10_000.0f64);
        let inv: Vec<f32> =
            (0..head_dim / 2).map(|j| (1.0 / theta.powf(2.0 * j as f64 / head_dim as f64)) as f32).collect();
        let stride = heads * head_dim + 4; // extra columns past the heads stay untouched
        let orig: Vec<f32> = (0..rows * stride).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let mut x = orig.clone();
        ref_rope_inplace(&mut x, rows, stride, heads, head_dim, &inv, 3);
        for i in 0..rows {
            for h in 0..heads {
                let at = i * stride + h * head_dim;
                let want = rope_f64(&orig[at..at + head_dim], 3 + i, head_dim, theta);
                for d in 0..head_dim {
                    assert!((x[at + d] as f64 - want[d]).abs() < 1e-5, "row {i} head {h} dim {d}");
                }
                let n0: f32 = orig[at..at + head_dim].iter().map(|v| v * v).sum();
                let n1: f32 = x[at..at + head_dim].iter().map(|v| v * v).sum();
                assert!((n0 - n1).abs() < 1e-4 * n0.max(1.0));
            }
            let tail = i * stride + heads * head_dim;
            assert_eq!(x[tail..tail + 4], orig[tail..tail + 4]);
        }
        // Position 0 is the identity.
        let mut y = orig.clone();
        ref_rope_inplace(&mut y, 1, stride, heads, head_dim, &inv, 0);
        assert_eq!(y[..stride], orig[..stride]);
    }
}
