//! Tiled streaming attention for many queries (prefill, images, encoders; x86-64 AVX2 +
//! FMA). Same contract and online softmax as `ref_attention`, organised like a GEMM:
//!
//! - per head, the queries go in chunks of `QCHUNK` rows whose running max and sum live
//!   in small stack arrays, and whose output accumulators are the output rows themselves;
//! - the keys go in blocks of `KB`: a block of K is packed transposed (`[head_dim][KB]`,
//!   on the stack) once and reused by every tile of `QR` queries in the chunk;
//! - scores of a QR x KB tile come from a register-blocked micro-kernel (broadcast q,
//!   FMA against two packed vectors), the probabilities from the vectorised exp, and
//!   `P V` is a second micro-kernel over 16 output dims at a time.
//!
//! Scratch is O(KB * head_dim + QCHUNK), independent of the sequence length.

use crate::attention::AttentionShape;
use crate::simd::{F32x8, LANES, fma};
use core::simd::prelude::*;

/// Queries per micro-tile.
const QR: usize = 6;
/// Keys per block (two vectors of scores per query).
const KB: usize = 2 * LANES;
/// Queries whose softmax state is kept at once (a multiple of QR).
const QCHUNK: usize = 8 * QR;
/// Largest head_dim this path takes: a key block is packed by the GEMM's panel packer
/// (`[head_dim][KB]`, at most KC x 16 f32 = 16 KiB).
pub(crate) const MAX_HD: usize = super::gemm::KC;
/// Fewest queries for which packing pays.
pub(crate) const MIN_Q: usize = 4;

/// Whether this path takes the shape (`head_dim` a lane multiple, at most MAX_HD).
pub(crate) fn takes(s: &AttentionShape) -> bool {
    s.q_rows >= MIN_Q && s.head_dim.is_multiple_of(LANES) && s.head_dim <= MAX_HD
}

/// The online-softmax state of the queries of one chunk.
struct Rows {
    m: [f32; QCHUNK],
    l: [f32; QCHUNK],
}

/// One tile of R queries (chunk rows `r0 ..`) against one packed key block.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<const R: usize>(
    q: &[f32],
    v: &[f32],
    key_mask: Option<&[f32]>,
    out: &mut [f32],
    s: &AttentionShape,
    h: usize,
    col: usize,
    i0: usize,
    r0: usize,
    j0: usize,
    kb: usize,
    kt: &[[F32x8; 2]],
    rows: &mut Rows,
) {
    let hd = s.head_dim;
    let width = s.heads * hd;
    let qrow = |r: usize| &q[(i0 + r0 + r) * s.q_stride + h * hd..][..hd];
    // Scores: acc[r] = q_r . k_j for the KB keys.
    let mut acc = [[F32x8::splat(0.0); 2]; R];
    let qr: [&[f32]; R] = core::array::from_fn(|r| &qrow(r)[..kt.len()]);
    for (d, kv) in kt.iter().enumerate() {
        for r in 0..R {
            // SAFETY: every row was cut to exactly `kt.len()` values just above and
            // d < kt.len().
            let a = F32x8::splat(unsafe { *qr[r].get_unchecked(d) });
            acc[r][0] = fma(a, kv[0], acc[r][0]);
            acc[r][1] = fma(a, kv[1], acc[r][1]);
        }
    }
    // Which keys each query sees: inside the block and causality (a count of leading
    // keys), and the padding mask (i32 lanes: one AVX register per eight keys).
    let lane = Simd::<i32, LANES>::from_array([0, 1, 2, 3, 4, 5, 6, 7]);
    let pad_ok: [Mask<i32, LANES>; 2] = match key_mask {
        Some(mk) => core::array::from_fn(|half| {
            let c0 = half * LANES;
            Mask::from_array(core::array::from_fn(|t| mk.get(j0 + c0 + t).is_some_and(|&x| x != 0.0)))
        }),
        None => [Mask::splat(true); 2],
    };
    let scale = F32x8::splat(s.scale);
    let ninf = F32x8::splat(f32::NEG_INFINITY);
    let mut p = [[F32x8::splat(0.0); 2]; R];
    let mut live = [false; R];
    // Each row's accumulator is rescaled as PV loads it (1 when its max did not move).
    let mut resc = [1f32; R];
    for r in 0..R {
        // Keys j0 .. j0+seen of the block are visible to this query (kb <= KB fits i32).
        let seen = if s.causal { (s.q_pos0 + i0 + r0 + r + 1).saturating_sub(j0).min(kb) } else { kb };
        let mut sc = [F32x8::splat(0.0); 2];
        for half in 0..2 {
            let ok = (lane + Simd::splat((half * LANES) as i32)).simd_lt(Simd::splat(seen as i32)) & pad_ok[half];
            sc[half] = ok.select(acc[r][half] * scale, ninf);
        }
        let bm = crate::simd::hmax(sc[0].simd_max(sc[1]));
        if bm == f32::NEG_INFINITY {
            continue; // nothing visible in this block
        }
        live[r] = true;
        let m_old = rows.m[r0 + r];
        let m_new = m_old.max(bm);
        let e =
            [crate::simd::math::exp(sc[0] - F32x8::splat(m_new)), crate::simd::math::exp(sc[1] - F32x8::splat(m_new))];
        let rescale = crate::math::expf(m_old - m_new); // 0 while m_old is -inf
        rows.l[r0 + r] = rows.l[r0 + r] * rescale + crate::simd::hsum(e[0] + e[1]);
        rows.m[r0 + r] = m_new;
        p[r] = e;
        resc[r] = rescale;
    }
    if !live.iter().any(|&x| x) {
        return;
    }
    // out[r, :] += Σ_c p[r][c] v[j0+c, :], sixteen dims at a time (then eight).
    let pa: [[f32; KB]; R] = core::array::from_fn(|r| {
        let mut a = [0f32; KB];
        a[..LANES].copy_from_slice(p[r][0].as_array());
        a[LANES..].copy_from_slice(p[r][1].as_array());
        a
    });
    let orow = |r: usize| (i0 + r0 + r) * width + h * hd;
    let mut d0 = 0;
    while d0 + 2 * LANES <= hd {
        let mut o = [[F32x8::splat(0.0); 2]; R];
        for r in 0..R {
            let rs = F32x8::splat(resc[r]);
            o[r][0] = F32x8::from_slice(&out[orow(r) + d0..][..LANES]) * rs;
            o[r][1] = F32x8::from_slice(&out[orow(r) + d0 + LANES..][..LANES]) * rs;
        }
        for c in 0..kb {
            let vr = &v[(j0 + c) * s.kv_stride + col + d0..][..2 * LANES];
            let (v0, v1) = (F32x8::from_slice(&vr[..LANES]), F32x8::from_slice(&vr[LANES..]));
            for r in 0..R {
                let a = F32x8::splat(pa[r][c]);
                o[r][0] = fma(a, v0, o[r][0]);
                o[r][1] = fma(a, v1, o[r][1]);
            }
        }
        for r in 0..R {
            out[orow(r) + d0..][..LANES].copy_from_slice(o[r][0].as_array());
            out[orow(r) + d0 + LANES..][..LANES].copy_from_slice(o[r][1].as_array());
        }
        d0 += 2 * LANES;
    }
    if d0 < hd {
        let mut o: [F32x8; R] =
            core::array::from_fn(|r| F32x8::from_slice(&out[orow(r) + d0..][..LANES]) * F32x8::splat(resc[r]));
        for c in 0..kb {
            let v0 = F32x8::from_slice(&v[(j0 + c) * s.kv_stride + col + d0..][..LANES]);
            for r in 0..R {
                o[r] = fma(F32x8::splat(pa[r][c]), v0, o[r]);
            }
        }
        for r in 0..R {
            out[orow(r) + d0..][..LANES].copy_from_slice(o[r].as_array());
        }
    }
}

/// The attention; the caller has checked every length, [`takes`] and `available()`.
#[inline(always)]
pub(crate) fn flash(q: &[f32], k: &[f32], v: &[f32], key_mask: Option<&[f32]>, out: &mut [f32], s: &AttentionShape) {
    let hd = s.head_dim;
    let width = s.heads * hd;
    let group = (s.heads / s.kv_heads.max(1)).max(1);
    let mut kt = [[F32x8::splat(0.0); 2]; MAX_HD];
    for h in 0..s.heads {
        let col = (h / group) * hd;
        let mut i0 = 0;
        while i0 < s.q_rows {
            let qc = (s.q_rows - i0).min(QCHUNK);
            let mut rows = Rows { m: [f32::NEG_INFINITY; QCHUNK], l: [0.0; QCHUNK] };
            for i in i0..i0 + qc {
                out[i * width + h * hd..][..hd].fill(0.0);
            }
            // Keys any query of the chunk sees.
            let kv_end = if s.causal { s.kv_rows.min(s.q_pos0 + i0 + qc) } else { s.kv_rows };
            let mut j0 = 0;
            while j0 < kv_end {
                let kb = (kv_end - j0).min(KB);
                // Keys are rows `kv_stride` apart from column `col`: the GEMM's `[n, k]`
                // weight rows, packed transposed (`kt[d] = k[j0.., col + d]`, zero past kb).
                super::gemm::pack(&k[col..], s.kv_stride, j0, kb, 0, hd, &mut kt[..]);
                let kt = &kt[..hd];
                let mut r0 = 0;
                while r0 < qc {
                    let r = (qc - r0).min(QR);
                    macro_rules! go {
                        ($r:literal) => {
                            tile::<$r>(q, v, key_mask, out, s, h, col, i0, r0, j0, kb, kt, &mut rows)
                        };
                    }
                    match r {
                        6 => go!(6),
                        5 => go!(5),
                        4 => go!(4),
                        3 => go!(3),
                        2 => go!(2),
                        _ => go!(1),
                    }
                    r0 += r;
                }
                j0 += kb;
            }
            for (t, i) in (i0..i0 + qc).enumerate() {
                if rows.l[t] > 0.0 {
                    let inv = 1.0 / rows.l[t];
                    out[i * width + h * hd..][..hd].iter_mut().for_each(|x| *x *= inv);
                }
            }
            i0 += qc;
        }
    }
}
