//! SIMD streaming attention. Same contract and online softmax as `ref_attention`, but the
//! keys are taken in blocks of `BLOCK`: the scores of a block (a fixed stack array, so
//! scratch stays O(BLOCK), independent of the sequence length) are computed with
//! vectorised dot products, the running max and the output accumulator are rescaled once
//! per block, and `p * v` is added with vectorised AXPYs over head_dim.

use core::simd::prelude::*;
use core::simd::{Mask, Simd};

use crate::attention::AttentionShape;
use crate::math::expf;
use crate::simd::{F32x8, LANES};

const BLOCK: usize = 32;

/// Horizontal sums of eight vectors at once: lane `i` of the result is the sum of the
/// lanes of `v[i]` (a deinterleave-and-add tree: 7 shuffles and adds for 8 sums).
#[inline(always)]
fn hsum8(v: [F32x8; 8]) -> F32x8 {
    let pair = |a: F32x8, b: F32x8| {
        let (lo, hi) = a.deinterleave(b);
        lo + hi
    };
    let (s01, s23, s45, s67) = (pair(v[0], v[1]), pair(v[2], v[3]), pair(v[4], v[5]), pair(v[6], v[7]));
    let (s0123, s4567) = (pair(s01, s23), pair(s45, s67));
    pair(s0123, s4567)
}

/// Scores of up to 8 keys `j0..j0+len` against one query head, as one vector (lanes past
/// `len` are -inf): `scale * q . k_j`, vectorised over head_dim, reduced together.
#[inline(always)]
fn scores8(qh: &[f32], k: &[f32], j0: usize, len: usize, stride: usize, col: usize, scale: f32) -> F32x8 {
    let hd = qh.len();
    let hv = hd - hd % LANES;
    let mut acc = [F32x8::splat(0.0); 8];
    let mut tails = [0f32; 8];
    for (t, (a, tail)) in acc.iter_mut().zip(tails.iter_mut()).enumerate().take(len) {
        let kr = &k[(j0 + t) * stride + col..][..hd];
        let mut d = 0;
        while d < hv {
            *a += F32x8::from_slice(&qh[d..d + LANES]) * F32x8::from_slice(&kr[d..d + LANES]);
            d += LANES;
        }
        for i in hv..hd {
            *tail += qh[i] * kr[i];
        }
    }
    let sums = (hsum8(acc) + F32x8::from_array(tails)) * F32x8::splat(scale);
    let lane = Simd::from_array([0usize, 1, 2, 3, 4, 5, 6, 7]);
    lane.simd_lt(Simd::splat(len)).select(sums, F32x8::splat(f32::NEG_INFINITY))
}

/// out = out * scale + p * v
#[inline(always)]
fn scale_axpy(out: &mut [f32], scale: f32, p: f32, v: &[f32]) {
    let n = out.len().min(v.len());
    let nv = n - n % LANES;
    let (sv, pv) = (F32x8::splat(scale), F32x8::splat(p));
    let mut i = 0;
    while i < nv {
        let o = F32x8::from_slice(&out[i..i + LANES]) * sv + pv * F32x8::from_slice(&v[i..i + LANES]);
        out[i..i + LANES].copy_from_slice(o.as_array());
        i += LANES;
    }
    for t in nv..n {
        out[t] = out[t] * scale + p * v[t];
    }
}

#[inline(always)]
fn run(q: &[f32], k: &[f32], v: &[f32], key_mask: Option<&[f32]>, out: &mut [f32], s: &AttentionShape) {
    let hd = s.head_dim;
    let width = s.heads * hd;
    let group = (s.heads / s.kv_heads.max(1)).max(1);
    for (i, out_row) in out.chunks_exact_mut(width).take(s.q_rows).enumerate() {
        let visible = if s.causal { s.kv_rows.min(s.q_pos0 + i + 1) } else { s.kv_rows };
        for (h, acc) in out_row.chunks_exact_mut(hd).enumerate() {
            let qh = &q[i * s.q_stride + h * hd..][..hd];
            let col = (h / group) * hd;
            acc.fill(0.0);
            let (mut m, mut l) = (f32::NEG_INFINITY, 0f32);
            let mut scores = [0f32; BLOCK];
            let mut j0 = 0;
            while j0 < visible {
                let len = BLOCK.min(visible - j0);
                let mut block_max = f32::NEG_INFINITY;
                for (g, chunk) in scores.chunks_exact_mut(LANES).enumerate() {
                    let start = j0 + g * LANES;
                    let n8 = len.saturating_sub(g * LANES).min(LANES);
                    let mut v = scores8(qh, k, start, n8, s.kv_stride, col, s.scale);
                    if let Some(mk) = key_mask {
                        let keep: [bool; LANES] = core::array::from_fn(|t| t < n8 && mk[start + t] != 0.0);
                        v = Mask::<i32, LANES>::from_array(keep).select(v, F32x8::splat(f32::NEG_INFINITY));
                    }
                    block_max = block_max.max(crate::simd::hmax(v));
                    chunk.copy_from_slice(v.as_array());
                }
                if block_max > f32::NEG_INFINITY {
                    let new_m = m.max(block_max);
                    let rescale = expf(m - new_m); // 0 when m was -inf
                    l *= rescale;
                    // Probabilities of the block, 8 at a time (masked keys: exp(-inf) = 0).
                    let mut probs = [0f32; BLOCK];
                    for (pc, sc) in probs.chunks_exact_mut(LANES).zip(scores.chunks_exact(LANES)) {
                        let e = crate::simd::math::exp(F32x8::from_slice(sc) - F32x8::splat(new_m));
                        pc.copy_from_slice(e.as_array());
                    }
                    let mut first = true;
                    for (t, (&sc, &p)) in scores[..len].iter().zip(&probs[..len]).enumerate() {
                        if sc == f32::NEG_INFINITY {
                            continue;
                        }
                        l += p;
                        // Rescale the accumulator together with the first added value.
                        scale_axpy(acc, if first { rescale } else { 1.0 }, p, &v[(j0 + t) * s.kv_stride + col..][..hd]);
                        first = false;
                    }
                    m = new_m;
                }
                j0 += len;
            }
            if l > 0.0 {
                let inv = 1.0 / l;
                acc.iter_mut().for_each(|x| *x *= inv);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn avx2(q: &[f32], k: &[f32], v: &[f32], key_mask: Option<&[f32]>, out: &mut [f32], s: &AttentionShape) {
    if crate::arch::x86_64::flash::takes(s) {
        return crate::arch::x86_64::flash::flash(q, k, v, key_mask, out, s);
    }
    run(q, k, v, key_mask, out, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub(crate) fn avx512(q: &[f32], k: &[f32], v: &[f32], key_mask: Option<&[f32]>, out: &mut [f32], s: &AttentionShape) {
    if crate::arch::x86_64::attn512::takes(s) {
        return crate::arch::x86_64::attn512::attention(q, k, v, key_mask, out, s);
    }
    if crate::arch::x86_64::flash::takes(s) {
        return crate::arch::x86_64::flash::flash(q, k, v, key_mask, out, s);
    }
    run(q, k, v, key_mask, out, s)
}

/// The portable `core::simd` entry of `ref_attention` (CPUs other than x86-64); the caller
/// has checked every length.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn portable(q: &[f32], k: &[f32], v: &[f32], key_mask: Option<&[f32]>, out: &mut [f32], s: &AttentionShape) {
    run(q, k, v, key_mask, out, s)
}

#[cfg(test)]
mod tests {
    use crate::attention::{AttentionShape, attention, ref_attention};
    use proptest::prelude::*;

    /// Different summation order and per-block rescaling: a few ulps of the values.
    const TOL: f32 = 2e-5;
    /// Rounding of a score, in ulps of Σ|q k| * scale (see `check`).
    const SCORE_ULPS: f32 = 2.0;

    fn vals(n: usize, seed: u64) -> Vec<f32> {
        (0..n).map(|i| ((i as u64 * 2654435761 + seed * 977) % 2003) as f32 / 400.0 - 2.5).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        q_rows: usize,
        kv_rows: usize,
        kv_heads: usize,
        group: usize,
        head_dim: usize,
        causal: bool,
        masked: bool,
        pos0: usize,
        pad: usize,
    ) -> Result<(), String> {
        let heads = kv_heads * group;
        let kv_rows = if causal { kv_rows.max(pos0 + q_rows) } else { kv_rows };
        let q_stride = heads * head_dim + pad;
        let kv_stride = kv_heads * head_dim + pad;
        let s = AttentionShape {
            heads,
            kv_heads,
            head_dim,
            q_rows,
            kv_rows,
            q_stride,
            kv_stride,
            causal,
            q_pos0: pos0,
            scale: 0.3,
        };
        let (q, k, v) = (vals(q_rows * q_stride, 1), vals(kv_rows * kv_stride, 2), vals(kv_rows * kv_stride, 3));
        let mask: Vec<f32> = (0..kv_rows).map(|j| if j % 3 == 1 { 0.0 } else { 1.0 }).collect();
        let m = masked.then_some(&mask[..]);
        let mut want = vec![0f32; q_rows * heads * head_dim];
        let mut got = vec![1f32; want.len()];
        ref_attention(&q, &k, &v, m, &mut want, &s);
        // Every path this CPU has, called directly (the dispatcher picks one of them).
        for path in ["dispatch", "avx2", "avx512"] {
            got.fill(1.0);
            match path {
                "dispatch" => attention(&q, &k, &v, m, &mut got, &s),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: this test machine has AVX2, FMA and F16C.
                "avx2" => unsafe { super::avx2(&q, &k, &v, m, &mut got, &s) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: checked just before.
                "avx512" if crate::arch::x86_64::has_avx512f() => unsafe { super::avx512(&q, &k, &v, m, &mut got, &s) },
                _ => continue,
            }
            // Scores summed in another order (and without fused multiply-adds on Arm) differ
            // by up to a few ulp of Σ|q k| * scale; a softmax weight then moves by that much
            // relatively, and an output by up to twice max|v| times it. (|q|, |k|, |v| <= 2.5.)
            let score_err = SCORE_ULPS * f32::EPSILON * s.scale * head_dim as f32 * 2.5 * 2.5;
            for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
                if (g - w).abs() > TOL * (1.0 + w.abs()) + 2.0 * 2.5 * score_err {
                    return Err(format!("{path}: {s:?} [{idx}]: {g} vs {w}"));
                }
            }
        }
        Ok(())
    }

    /// The tiled path (x86-64: >= 4 queries, head_dim a multiple of 8): query chunks of
    /// 48, key blocks of 16, every edge, causal prefill after a cache, padding masks.
    #[test]
    fn tiled_edges() {
        for &(q_rows, kv_rows, pos0) in
            &[(4, 4, 0), (6, 17, 0), (13, 40, 0), (49, 49, 0), (50, 130, 3), (97, 97, 0), (300, 300, 0), (150, 40, 200)]
        {
            for &hd in &[8, 16, 24, 32, 48, 64] {
                for (causal, masked) in [(false, false), (false, true), (true, false), (true, true)] {
                    check(q_rows, kv_rows, 2, 2, hd, causal, masked, pos0, 3).unwrap();
                }
            }
        }
    }

    /// A padding mask of all ones (no padding) and one masking only the last key: the
    /// first takes the unmasked softmax, the second the masked one; both as the reference.
    #[test]
    fn masks_with_and_without_padding() {
        let (heads, hd, n) = (2usize, 32usize, 40usize);
        let w = heads * hd;
        let s = AttentionShape {
            heads,
            kv_heads: heads,
            head_dim: hd,
            q_rows: n,
            kv_rows: n,
            q_stride: w,
            kv_stride: w,
            causal: false,
            q_pos0: 0,
            scale: 0.3,
        };
        let (q, k, v) = (vals(n * w, 1), vals(n * w, 2), vals(n * w, 3));
        for last in [1.0, 0.0] {
            let mut mask = vec![1f32; n];
            mask[n - 1] = last;
            let mut want = vec![0f32; n * w];
            let mut got = vec![1f32; n * w];
            ref_attention(&q, &k, &v, Some(&mask), &mut want, &s);
            attention(&q, &k, &v, Some(&mask), &mut got, &s);
            for (g, r) in got.iter().zip(&want) {
                assert!((g - r).abs() <= TOL * (1.0 + r.abs()), "last key {last}: {g} vs {r}");
            }
        }
    }

    proptest! {
        #[test]
        fn tiled_matches_reference(
            q_rows in 4usize..60, kv_rows in 1usize..70, kv_heads in 1usize..3, group in 1usize..3,
            hd8 in 1usize..9, causal: bool, masked: bool, pos0 in 0usize..20, pad in 0usize..3,
        ) {
            check(q_rows, kv_rows, kv_heads, group, hd8 * 8, causal, masked, pos0, pad).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn matches_reference(
            q_rows in 1usize..6, kv_rows in 1usize..80, kv_heads in 1usize..3, group in 1usize..3,
            head_dim in 1usize..20, causal: bool, masked: bool, pos0 in 0usize..5, pad in 0usize..3,
        ) {
            let heads = kv_heads * group;
            let kv_rows = if causal { kv_rows.max(pos0 + q_rows) } else { kv_rows };
            let q_stride = heads * head_dim + pad;
            let kv_stride = kv_heads * head_dim + pad;
            let s = AttentionShape { heads, kv_heads, head_dim, q_rows, kv_rows, q_stride, kv_stride, causal, q_pos0: pos0, scale: 0.3 };
            let (q, k, v) = (vals(q_rows * q_stride, 1), vals(kv_rows * kv_stride, 2), vals(kv_rows * kv_stride, 3));
            let mask: Vec<f32> = (0..kv_rows).map(|j| if j % 3 == 1 { 0.0 } else { 1.0 }).collect();
            let m = masked.then_some(&mask[..]);
            let mut want = vec![0f32; q_rows * heads * head_dim];
            let mut got = vec![1f32; want.len()];
            ref_attention(&q, &k, &v, m, &mut want, &s);
            attention(&q, &k, &v, m, &mut got, &s);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= TOL * (1.0 + w.abs()), "{} vs {}", g, w);
            }
        }
    }
}
