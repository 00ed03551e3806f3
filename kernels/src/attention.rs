//! Scaled dot-product attention: multi-head and grouped-query, causal or not, with an
//! optional key padding mask. Streaming ("online") softmax: no score buffer, no scratch.

use crate::math::expf;
use crate::src::{debug_assert_shape, debug_assert_shape_eq};

/// Shape and layout of one [`ref_attention`] call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; `heads % kv_heads == 0`. Query head `h` uses kv head
    /// `h / (heads / kv_heads)` (`transformers`' `repeat_kv`).
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Number of queries.
    pub q_rows: usize,
    /// Number of keys / values.
    pub kv_rows: usize,
    /// Elements between consecutive rows of `q`.
    pub q_stride: usize,
    /// Elements between consecutive rows of `k` and of `v`.
    pub kv_stride: usize,
    /// Query `i` (absolute position `q_pos0 + i`) sees keys `j <= q_pos0 + i` only.
    pub causal: bool,
    /// Absolute position of query 0 (the number of cached tokens before it).
    pub q_pos0: usize,
    /// Multiplies q . k; usually `1 / sqrt(head_dim)`.
    pub scale: f32,
}

/// Attention of every query row and head over the keys it sees (causality, `key_mask`):
/// ```text
/// out[i, h, :] = Σ_j softmax_j(scale * q[i, h, :] . k[j, g, :]) * v[j, g, :],  g = h / (heads / kv_heads)
///
/// q: query i, head h = q[i*q_stride + h*head_dim ..][..head_dim]
/// k, v: row j, kv head g = k[j*kv_stride + g*head_dim ..][..head_dim]
/// key_mask: optional [kv_rows]; key j is skipped when key_mask[j] == 0.0 (padding)
/// out: [q_rows, heads*head_dim], dense
/// ```
///
/// q, k and v may be sub-slices of one fused [T, (heads + 2*kv_heads)*head_dim] tensor
/// (stride = that width), or k, v a KV cache (stride = kv_heads*head_dim).
/// A (query, head) that sees no key at all gets zeros.
///
/// Per (query, head) the softmax is streamed: a running max `m` and running sum `l` of
/// exp(score - m); the output row itself accumulates Σ exp(score - m) * v and is
/// rescaled by exp(m_old - m_new) whenever the max grows, then divided by `l` at the end.
pub fn ref_attention(q: &[f32], k: &[f32], v: &[f32], key_mask: Option<&[f32]>, out: &mut [f32], s: &AttentionShape) {
    let hd = s.head_dim;
    let width = s.heads.saturating_mul(hd); // out row: [heads*head_dim]
    let kv_width = s.kv_heads.saturating_mul(hd);
    debug_assert_shape!(s.heads == 0 || (s.kv_heads > 0 && s.heads.is_multiple_of(s.kv_heads)));
    debug_assert_shape_eq!(Some(out.len()), s.q_rows.checked_mul(width), "out: [q_rows, heads*head_dim]");
    debug_assert_shape!(s.q_rows <= 1 || s.q_stride >= width);
    debug_assert_shape!(s.kv_rows <= 1 || s.kv_stride >= kv_width);
    debug_assert_shape!(span(s.q_rows, s.q_stride, width).is_some_and(|n| q.len() >= n));
    debug_assert_shape!(span(s.kv_rows, s.kv_stride, kv_width).is_some_and(|n| k.len() >= n));
    debug_assert_shape!(span(s.kv_rows, s.kv_stride, kv_width).is_some_and(|n| v.len() >= n));
    debug_assert_shape!(key_mask.is_none_or(|m| m.len() == s.kv_rows));
    if hd == 0 || width == 0 {
        return;
    }
    // Query heads per kv head (clamped so a bad shape cannot divide by zero).
    let group = (s.heads / s.kv_heads.max(1)).max(1);
    // A row that starts past the end of k or v does not exist: this also bounds the loop.
    let kv_rows = s.kv_rows.min(rows_in(k.len(), s.kv_stride)).min(rows_in(v.len(), s.kv_stride));
    for (i, out_row) in out.chunks_exact_mut(width).take(s.q_rows).enumerate() {
        // Query i sees keys 0..visible (then minus the masked ones).
        let visible = if s.causal { kv_rows.min(s.q_pos0.saturating_add(i).saturating_add(1)) } else { kv_rows };
        for (h, out_head) in out_row.chunks_exact_mut(hd).enumerate() {
            let q_head = strided(q, i, s.q_stride, h * hd, hd); // [head_dim]
            let kv_col = (h / group) * hd; // kv head g starts here in a k/v row
            let keys = KeyRange { k, v, key_mask, rows: visible, stride: s.kv_stride, col: kv_col };
            attend(q_head, &keys, s.scale, out_head);
        }
    }
}

/// Attention with the fastest available kernel: the SIMD path (blocked online softmax)
/// when it runs on this CPU and every length is consistent, else [`ref_attention`].
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn attention(q: &[f32], k: &[f32], v: &[f32], key_mask: Option<&[f32]>, out: &mut [f32], s: &AttentionShape) {
    {
        // Table entries index directly: they run only when every length is consistent.
        let width = s.heads.checked_mul(s.head_dim);
        let kv_width = s.kv_heads.checked_mul(s.head_dim);
        let fits = s.heads > 0
            && s.kv_heads > 0
            && s.head_dim > 0
            && s.heads.is_multiple_of(s.kv_heads)
            && width.is_some_and(|w| s.q_rows <= 1 || s.q_stride >= w)
            && kv_width.is_some_and(|w| s.kv_rows <= 1 || s.kv_stride >= w)
            && width.and_then(|w| s.q_rows.checked_mul(w)) == Some(out.len())
            && width.and_then(|w| span(s.q_rows, s.q_stride, w)).is_some_and(|n| q.len() >= n)
            && kv_width.and_then(|w| span(s.kv_rows, s.kv_stride, w)).is_some_and(|n| k.len() >= n && v.len() >= n)
            && key_mask.is_none_or(|m| m.len() >= s.kv_rows);
        if fits {
            return (crate::table::active().attention)(q, k, v, key_mask, out, s);
        }
    }
    crate::src::mismatch!(out, ref_attention(q, k, v, key_mask, out, s))
}

/// The keys and values one (query, head) attends over: head column `col` of rows
/// `0..rows` of k and v.
struct KeyRange<'a> {
    k: &'a [f32],
    v: &'a [f32],
    key_mask: Option<&'a [f32]>,
    rows: usize,
    stride: usize,
    col: usize,
}

/// out = softmax over the keys of (scale * q . k_j), applied to v_j, streamed.
/// q, out: [head_dim]
fn attend(q: &[f32], keys: &KeyRange<'_>, scale: f32, out: &mut [f32]) {
    let hd = out.len();
    out.fill(0.0);
    let mut max = f32::NEG_INFINITY; // m: largest score so far
    let mut sum = 0.0f32; // l: Σ exp(score - m) so far
    for j in 0..keys.rows {
        if keys.key_mask.and_then(|mask| mask.get(j)) == Some(&0.0) {
            continue;
        }
        let k_row = strided(keys.k, j, keys.stride, keys.col, hd); // [head_dim]
        let v_row = strided(keys.v, j, keys.stride, keys.col, hd); // [head_dim]
        let score = scale * dot(q, k_row);
        if score > max {
            // The max grew: rescale what was accumulated against the old max.
            // (The first time, exp(-inf) = 0 times an all-zero accumulator.)
            let correction = expf(max - score);
            sum *= correction;
            out.iter_mut().for_each(|o| *o *= correction);
            max = score;
        }
        let p = expf(score - max); // in (0, 1]
        sum += p;
        out.iter_mut().zip(v_row).for_each(|(o, v)| *o += p * v);
    }
    if sum > 0.0 {
        out.iter_mut().for_each(|o| *o /= sum);
    }
}

/// Σ a[i] * b[i] in f32, in order.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |acc, (a, b)| acc + a * b)
}

/// `buf[row*stride + col ..][..len]`, or empty when that is not all inside `buf`.
#[inline]
fn strided(buf: &[f32], row: usize, stride: usize, col: usize, len: usize) -> &[f32] {
    row.checked_mul(stride)
        .and_then(|r| r.checked_add(col))
        .and_then(|start| buf.get(start..start.checked_add(len)?))
        .unwrap_or(&[])
}

/// How many rows of stride `stride` start inside a buffer of `len` elements
/// (with stride 0 every row starts at 0: cap at `len` so the count stays finite).
#[inline]
fn rows_in(len: usize, stride: usize) -> usize {
    if stride == 0 { len } else { len.div_ceil(stride) }
}

/// Elements needed for `rows` rows of `width` at `stride`: (rows - 1) * stride + width.
fn span(rows: usize, stride: usize, width: usize) -> Option<usize> {
    match rows {
        0 => Some(0),
        _ => (rows - 1).checked_mul(stride)?.checked_add(width),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{any_len, assert_close, assert_no_oob, dim, slice_len, values};
    use proptest::prelude::*;

    /// Outputs are convex combinations of v rows; relative to 1 + max |v|, with scores up
    /// to ~20 in magnitude.
    const TOL_ATTN: f64 = 2e-5;
    /// Scores of magnitude ~1000: f32 score rounding alone is ~1e-4 of a weight.
    const TOL_ATTN_LARGE_SCORES: f64 = 1e-3;

    /// The textbook computation in f64: the full score row of each (query, head), masked
    /// keys removed, max subtracted, exponentiated, normalised, times v. Zeros if no key.
    fn attention_f64(q: &[f32], k: &[f32], v: &[f32], key_mask: Option<&[f32]>, s: &AttentionShape) -> Vec<f64> {
        let hd = s.head_dim;
        let width = s.heads * hd;
        let group = s.heads / s.kv_heads;
        let mut out = vec![0.0; s.q_rows * width];
        for i in 0..s.q_rows {
            for h in 0..s.heads {
                let g = h / group;
                let scores: Vec<Option<f64>> = (0..s.kv_rows)
                    .map(|j| {
                        let causal_ok = !s.causal || j <= s.q_pos0 + i;
                        let mask_ok = key_mask.is_none_or(|m| m[j] != 0.0);
                        (causal_ok && mask_ok).then(|| {
                            let mut d = 0.0;
                            for e in 0..hd {
                                d += f64::from(q[i * s.q_stride + h * hd + e])
                                    * f64::from(k[j * s.kv_stride + g * hd + e]);
                            }
                            f64::from(s.scale) * d
                        })
                    })
                    .collect();
                if scores.iter().all(Option::is_none) {
                    continue;
                }
                let max = scores.iter().flatten().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                let weights: Vec<f64> = scores.iter().map(|s| s.map_or(0.0, |s| (s - max).exp())).collect();
                let total: f64 = weights.iter().sum();
                for e in 0..hd {
                    let mut acc = 0.0;
                    for (j, w) in weights.iter().enumerate() {
                        acc += w * f64::from(v[j * s.kv_stride + g * hd + e]);
                    }
                    out[i * width + h * hd + e] = acc / total;
                }
            }
        }
        out
    }

    fn max_abs(v: &[f32]) -> f64 {
        v.iter().fold(0.0, |a, &b| a.max(f64::from(b).abs()))
    }

    fn check(q: &[f32], k: &[f32], v: &[f32], mask: Option<&[f32]>, s: &AttentionShape, tol: f64) {
        let mut out = vec![f32::NAN; s.q_rows * s.heads * s.head_dim];
        ref_attention(q, k, v, mask, &mut out, s);
        let want = attention_f64(q, k, v, mask, s);
        let scale = vec![max_abs(v); want.len()];
        assert_close("attention", &out, &want, &scale, tol);
    }

    fn shape(heads: usize, kv_heads: usize, head_dim: usize, rows: usize) -> AttentionShape {
        AttentionShape {
            heads,
            kv_heads,
            head_dim,
            q_rows: rows,
            kv_rows: rows,
            q_stride: heads * head_dim,
            kv_stride: kv_heads * head_dim,
            causal: false,
            q_pos0: 0,
            scale: 1.0 / (head_dim as f32).sqrt(),
        }
    }

    #[test]
    fn one_dim_known_values() {
        // head_dim 1, one query q = 1, keys 0, 1, 2 (the max grows at every key), v = k.
        let s = AttentionShape { scale: 1.0, ..shape(1, 1, 1, 3) };
        let kv = [0.0f32, 1.0, 2.0];
        let mut out = [f32::NAN; 1];
        ref_attention(&[1.0], &kv, &kv, None, &mut out, &AttentionShape { q_rows: 1, ..s });
        let e = [1.0f64, 1f64.exp(), 2f64.exp()];
        let want = (e[1] + 2.0 * e[2]) / (e[0] + e[1] + e[2]);
        assert!((f64::from(out[0]) - want).abs() < 1e-6, "{} vs {want}", out[0]);
        // Masking key 2 leaves keys 0 and 1.
        ref_attention(&[1.0], &kv, &kv, Some(&[1.0, 1.0, 0.0]), &mut out, &AttentionShape { q_rows: 1, ..s });
        let want = e[1] / (e[0] + e[1]);
        assert!((f64::from(out[0]) - want).abs() < 1e-6, "{} vs {want}", out[0]);
    }

    #[test]
    fn no_visible_key_gives_zeros() {
        let s = shape(2, 1, 3, 4);
        let q = values(1, 4 * 6, -1.0, 1.0);
        let kv = values(2, 4 * 3, -1.0, 1.0);
        let mut out = vec![f32::NAN; 4 * 6];
        ref_attention(&q, &kv, &kv, Some(&[0.0; 4]), &mut out, &s);
        assert_eq!(out, vec![0.0; 24]);
        let mut out = vec![f32::NAN; 4 * 6];
        ref_attention(&q, &[], &[], None, &mut out, &AttentionShape { kv_rows: 0, ..s });
        assert_eq!(out, vec![0.0; 24]);
        // Causal: query 0 sees only key 0, which is masked; query 1 sees key 1.
        let mut out = vec![f32::NAN; 4 * 6];
        let causal = AttentionShape { causal: true, ..s };
        ref_attention(&q, &kv, &kv, Some(&[0.0, 1.0, 1.0, 1.0]), &mut out, &causal);
        assert_eq!(out[..6], [0.0; 6]);
        assert_eq!(out[6..9], kv[3..6]);
    }

    #[test]
    fn large_scores_do_not_overflow() {
        // Scores near ±1000: exp without the running max would overflow to inf.
        let s = AttentionShape { scale: 1.0, ..shape(2, 2, 8, 9) };
        let q = values(3, 9 * 16, -12.0, 12.0);
        let k = values(4, 9 * 16, -12.0, 12.0);
        let v = values(5, 9 * 16, -1.0, 1.0);
        let mut out = vec![f32::NAN; 9 * 16];
        ref_attention(&q, &k, &v, None, &mut out, &s);
        assert!(out.iter().all(|o| o.is_finite()));
        check(&q, &k, &v, None, &s, TOL_ATTN_LARGE_SCORES);
    }

    #[test]
    fn decoding_one_token_at_a_time_equals_prefill() {
        // A KV cache [max_t, kv_heads*head_dim]: query t against the first t + 1 rows must
        // give exactly (bit for bit) row t of causal attention over the whole sequence.
        let (heads, kv_heads, hd, t_max) = (4, 2, 5, 9);
        let full = AttentionShape { causal: true, ..shape(heads, kv_heads, hd, t_max) };
        let q = values(6, t_max * heads * hd, -2.0, 2.0);
        let k = values(7, t_max * kv_heads * hd, -2.0, 2.0);
        let v = values(8, t_max * kv_heads * hd, -2.0, 2.0);
        let mut prefill = vec![0.0f32; t_max * heads * hd];
        ref_attention(&q, &k, &v, None, &mut prefill, &full);
        check(&q, &k, &v, None, &full, TOL_ATTN);
        for t in 0..t_max {
            let step = AttentionShape { q_rows: 1, kv_rows: t + 1, q_pos0: t, ..full };
            let mut out = vec![f32::NAN; heads * hd];
            let q_t = &q[t * heads * hd..][..heads * hd];
            ref_attention(q_t, &k, &v, None, &mut out, &step);
            assert_eq!(out, prefill[t * heads * hd..][..heads * hd], "token {t}");
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "out: [q_rows, heads*head_dim]")]
    fn short_out_trips_debug_assert() {
        let s = shape(2, 1, 4, 3);
        let mut out = vec![0.0f32; 3 * 8 - 1];
        ref_attention(&[0.0; 24], &[0.0; 12], &[0.0; 12], None, &mut out, &s);
    }

    proptest! {
        #![proptest_config(crate::testutil::config(256))]

        #[test]
        fn matches_f64(
            kv_heads in 1usize..=3, group in 1usize..=3, head_dim in dim(17),
            q_rows in dim(17), kv_rows in dim(17), q_pad in 0usize..=5, kv_pad in 0usize..=5,
            causal: bool, q_pos0 in prop_oneof![Just(0usize), 0usize..=8],
            masked: bool, custom_scale: bool, seed: u64,
        ) {
            let heads = kv_heads * group;
            let scale = if custom_scale {
                values(seed ^ 9, 1, 0.1, 2.0)[0]
            } else {
                1.0 / (head_dim.max(1) as f32).sqrt()
            };
            let s = AttentionShape {
                heads, kv_heads, head_dim, q_rows, kv_rows,
                q_stride: heads * head_dim + q_pad,
                kv_stride: kv_heads * head_dim + kv_pad,
                causal, q_pos0, scale,
            };
            let q = values(seed, q_rows * s.q_stride, -3.0, 3.0);
            let k = values(seed ^ 1, kv_rows * s.kv_stride, -3.0, 3.0);
            let v = values(seed ^ 2, kv_rows * s.kv_stride, -2.0, 2.0);
            // About a third of the keys padded.
            let mask: Vec<f32> = values(seed ^ 3, kv_rows, 0.0, 1.0)
                .iter().map(|&u| if u < 0.35 { 0.0 } else { 1.0 }).collect();
            check(&q, &k, &v, masked.then_some(&mask[..]), &s, TOL_ATTN);
        }

        #[test]
        fn fused_qkv_buffer(
            kv_heads in 1usize..=2, group in 1usize..=4, head_dim in dim(9), t in dim(9),
            causal: bool, seed: u64,
        ) {
            // qkv: [t, (heads + 2*kv_heads)*head_dim] = [q | k | v] per row
            let heads = kv_heads * group;
            let (q_width, kv_width) = (heads * head_dim, kv_heads * head_dim);
            let stride = q_width + 2 * kv_width;
            let qkv = values(seed, t * stride, -2.0, 2.0);
            let s = AttentionShape {
                q_stride: stride, kv_stride: stride, causal,
                ..shape(heads, kv_heads, head_dim, t)
            };
            let (q, k, v) = (&qkv[..], &qkv[q_width.min(qkv.len())..], &qkv[(q_width + kv_width).min(qkv.len())..]);
            check(q, k, v, None, &s, TOL_ATTN);
        }

        #[test]
        fn wrong_lengths_never_index_out_of_bounds(
            q_len in slice_len(), k_len in slice_len(), v_len in slice_len(),
            m_len in slice_len(), out_len in slice_len(),
            heads in any_len(), kv_heads in any_len(), head_dim in any_len(),
            q_rows in any_len(), kv_rows in any_len(), q_stride in any_len(),
            kv_stride in any_len(), q_pos0 in any_len(), causal: bool,
        ) {
            let q = vec![1.0f32; q_len];
            let k = vec![0.5f32; k_len];
            let v = vec![2.0f32; v_len];
            let mask = vec![1.0f32; m_len];
            let mut out = vec![0.0f32; out_len];
            let s = AttentionShape {
                heads, kv_heads, head_dim, q_rows, kv_rows, q_stride, kv_stride, causal,
                q_pos0, scale: 0.5,
            };
            assert_no_oob(|| ref_attention(&q, &k, &v, Some(&mask), &mut out, &s));
        }
    }
}
