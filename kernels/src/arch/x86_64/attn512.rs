//! Attention with many queries on AVX-512 CPUs (x86-64, chosen at run time), for
//! sequences short enough that a block of whole score rows fits a fixed scratch: encoders,
//! images, a prefill over a short cache. Same contract as `ref_attention`.
//!
//! Per head and block of queries, three passes instead of a streaming softmax:
//!
//! 1. the scores `S = Q K^T` of the block against every key it sees, by the AVX-512 GEMM's
//!    micro-kernel (keys packed 48 at a time, transposed, by the GEMM's panel packer);
//! 2. an exact softmax of each row (scale, mask, max, exp, sum), vectorised along the
//!    row; the division by the sum waits for the output row (head_dim values, not kv);
//! 3. `O = P V`, a register-tiled micro-kernel over up to 64 dims of V's rows, which are
//!    read where they are (no packing).
//!
//! No per-block rescaling and no per-block reductions: on the short rows of an encoder
//! these cost more than the products in the streaming form. The scratch is fixed
//! (`SCRATCH` f32 of scores on the stack); longer sequences take the streaming kernel.

use super::gemm::pack;
use super::gemm512::{H, MR, NR, Panel, tile};
use crate::attention::AttentionShape;
use crate::simd::max_lanes as max16;
use crate::simd::{F32x8, F32x16, fma16, reduce_max16, reduce_sum16};
use core::simd::prelude::*;

/// f32 scores on the stack (64 KiB): a block of queries times the keys they see.
const SCRATCH: usize = 16 * 1024;
/// Most queries per block (whole rows of scores each).
const QB_MAX: usize = 128;
/// Longest key row: a block of at least MR queries must fit the scratch.
const KV_MAX: usize = SCRATCH / MR;
/// Largest head_dim: one panel depth of the GEMM.
const HD_MAX: usize = 128;

/// Whether this path takes the shape (and [`super::avx512`] holds, checked by
/// the caller): head_dim a multiple of 16, at most 128; at most `KV_MAX` keys.
pub(crate) fn takes(s: &AttentionShape) -> bool {
    s.q_rows >= super::flash::MIN_Q
        && s.head_dim.is_multiple_of(16)
        && s.head_dim <= HD_MAX
        && s.kv_rows <= KV_MAX
        && s.kv_rows > 0
}

/// `o[r][..16C] = inv[r] Σ_c p[r][c] v[c][..16C]`, R rows of P (length `kv`), V rows `vs`
/// apart.
#[inline(always)]
fn pv<const R: usize, const C: usize>(
    p: [&[f32]; R],
    inv: [f32; R],
    v: &[f32],
    vs: usize,
    kv: usize,
    o: [&mut [f32]; R],
) {
    let p: [&[f32]; R] = core::array::from_fn(|r| &p[r][..kv]);
    let mut acc = [[F32x16::splat(0.0); C]; R];
    for c in 0..kv {
        let vr = &v[c * vs..][..16 * C];
        let b: [F32x16; C] = core::array::from_fn(|t| F32x16::from_slice(&vr[16 * t..16 * t + 16]));
        for r in 0..R {
            let a = F32x16::splat(p[r][c]);
            for t in 0..C {
                acc[r][t] = fma16(a, b[t], acc[r][t]);
            }
        }
    }
    for (r, o) in o.into_iter().enumerate() {
        for t in 0..C {
            o[16 * t..16 * t + 16].copy_from_slice((acc[r][t] * F32x16::splat(inv[r])).as_array());
        }
    }
}

/// Scales and masks one row of scores in place into unnormalised probabilities
/// `exp(s - max)` and returns 1 / their sum: keys `seen..` and masked keys get 0; a row
/// that sees no key is all 0 and returns 0 (its output is 0, as in the reference).
/// Sixteen lanes at a time (the row length is a multiple of 16).
#[inline(always)]
fn softmax_row(row: &mut [f32], seen: usize, key_mask: Option<&[f32]>, scale: f32) -> f32 {
    const W: usize = 16;
    let ninf = F32x16::splat(f32::NEG_INFINITY);
    let lane = Simd::<i32, W>::from_array(core::array::from_fn(|t| t as i32));
    let chunks = row.as_chunks_mut::<W>().0;
    // Chunks wholly before `seen`, and those with any key before it.
    let (full, any) = ((seen / W).min(chunks.len()), seen.div_ceil(W).min(chunks.len()));
    let visible = |c: usize| (lane + Simd::splat((c * W) as i32)).simd_lt(Simd::splat(seen as i32));
    let sum = if key_mask.is_none() && scale > 0.0 {
        // No padding mask and a positive scale (the usual case): max(scale * s) is
        // scale * max(s) (rounding is monotonic), so the first pass only reads, and the
        // second computes exp(scale * s - m) with one multiply-add.
        // Two running maxima, so the chain of dependent steps is half as long.
        let mut mx = [ninf; 2];
        for (c, ch) in chunks[..full].iter().enumerate() {
            mx[c % 2] = max16(mx[c % 2], F32x16::from_array(*ch));
        }
        if full < any {
            mx[0] = max16(mx[0], visible(full).select(F32x16::from_array(chunks[full]), ninf));
        }
        let m = reduce_max16(max16(mx[0], mx[1])) * scale;
        if m == f32::NEG_INFINITY {
            row.fill(0.0);
            return 0.0;
        }
        let (sc, nm) = (F32x16::splat(scale), F32x16::splat(-m));
        let mut sum = [F32x16::splat(0.0); 2];
        for (c, ch) in chunks.iter_mut().enumerate() {
            let e = if c < full {
                crate::simd::math::wide::exp(fma16(F32x16::from_array(*ch), sc, nm))
            } else if c < any {
                let x = visible(c).select(fma16(F32x16::from_array(*ch), sc, nm), ninf);
                crate::simd::math::wide::exp(x)
            } else {
                F32x16::splat(0.0)
            };
            *ch = e.to_array();
            sum[c % 2] += e;
        }
        sum[0] + sum[1]
    } else {
        let mut mx = ninf;
        for (c, ch) in chunks.iter_mut().enumerate() {
            let j0 = c * W;
            let mut ok = visible(c);
            if let Some(mk) = key_mask {
                ok &= match mk.get(j0..j0 + W) {
                    Some(m) => F32x16::from_slice(m).simd_ne(F32x16::splat(0.0)),
                    None => Mask::from_array(core::array::from_fn(|t| mk.get(j0 + t).is_some_and(|&x| x != 0.0))),
                };
            }
            let x = ok.select(F32x16::from_array(*ch) * F32x16::splat(scale), ninf);
            *ch = x.to_array();
            mx = max16(mx, x);
        }
        let m = reduce_max16(mx);
        if m == f32::NEG_INFINITY {
            row.fill(0.0);
            return 0.0;
        }
        let mut sum = F32x16::splat(0.0);
        for ch in chunks.iter_mut() {
            let e = crate::simd::math::wide::exp(F32x16::from_array(*ch) - F32x16::splat(m));
            *ch = e.to_array();
            sum += e;
        }
        sum
    };
    1.0 / reduce_sum16(sum)
}

/// The attention; the caller has checked every length, [`takes`] and that the CPU has
/// AVX-512F (this runs inside a function compiled for it).
#[inline(always)]
pub(crate) fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    key_mask: Option<&[f32]>,
    out: &mut [f32],
    s: &AttentionShape,
) {
    let hd = s.head_dim;
    let width = s.heads * hd;
    let group = (s.heads / s.kv_heads.max(1)).max(1);
    // A padding mask that masks nothing (a sentence without padding) is no mask: the
    // softmax then takes its faster form.
    let key_mask = key_mask.filter(|mk| mk.iter().take(s.kv_rows).any(|&x| x == 0.0));
    let mut scores = [0f32; SCRATCH];
    let mut panel = Panel([[F32x8::splat(0.0); H]; super::gemm512::KC]);
    // Query rows per block: as many whole rows of scores as the scratch holds.
    let ks_all = s.kv_rows.next_multiple_of(16);
    let qb = (SCRATCH / ks_all / MR * MR).clamp(MR, QB_MAX);
    for h in 0..s.heads {
        let col = (h / group) * hd;
        let mut i0 = 0;
        while i0 < s.q_rows {
            let n = (s.q_rows - i0).min(qb);
            // Keys any query of the block sees, and the scores' row stride.
            let kv_end = if s.causal { s.kv_rows.min(s.q_pos0.saturating_add(i0 + n)) } else { s.kv_rows };
            let ks = kv_end.next_multiple_of(16);
            let sc = &mut scores[..n * ks];
            // 1. S = Q K^T, 48 keys (one packed panel) at a time.
            let qrow = |r: usize| &q[(i0 + r) * s.q_stride + h * hd..][..hd];
            let mut j0 = 0;
            while j0 < kv_end {
                let nr = (kv_end - j0).min(NR);
                pack(&k[col..], s.kv_stride, j0, nr, 0, hd, &mut panel.0[..]);
                let pnl = &panel.0[..hd];
                let mut r0 = 0;
                while r0 < n {
                    let mr = (n - r0).min(MR);
                    tile(|t| qrow(r0 + t), mr, pnl, &mut sc[r0 * ks + j0..], ks, nr, false, None, None);
                    r0 += mr;
                }
                j0 += nr;
            }
            // 2. Probabilities, row by row (columns kv_end..ks are masked as unseen).
            let mut inv = [0f32; QB_MAX];
            for (r, (row, inv)) in sc.chunks_exact_mut(ks).zip(&mut inv).enumerate() {
                let seen = if s.causal { kv_end.min(s.q_pos0.saturating_add(i0 + r + 1)) } else { kv_end };
                *inv = softmax_row(row, seen, key_mask, s.scale);
            }
            // 3. O = P V, up to 64 dims of V at a time.
            let sc = &scores[..n * ks];
            let mut d0 = 0;
            while d0 < hd {
                let dw = (hd - d0).min(64);
                let vv = &v[col + d0..];
                let mut r0 = 0;
                while r0 < n {
                    macro_rules! go {
                        ($r:literal, $c:literal) => {{
                            let p: [&[f32]; $r] = core::array::from_fn(|t| &sc[(r0 + t) * ks..][..kv_end]);
                            let iv: [f32; $r] = core::array::from_fn(|t| inv[r0 + t]);
                            let mut rest = &mut out[(i0 + r0) * width + h * hd + d0..];
                            let o: [&mut [f32]; $r] = core::array::from_fn(|t| {
                                let (head, tail) =
                                    core::mem::take(&mut rest).split_at_mut(if t + 1 < $r { width } else { dw });
                                rest = tail;
                                &mut head[..dw]
                            });
                            pv::<$r, $c>(p, iv, vv, s.kv_stride, kv_end, o);
                            r0 += $r;
                        }};
                    }
                    let left = n - r0;
                    match (dw, left) {
                        (64, 6..) => go!(6, 4),
                        (64, 3..) => go!(3, 4),
                        (64, _) => go!(1, 4),
                        (48, 8..) => go!(8, 3),
                        (48, 4..) => go!(4, 3),
                        (48, _) => go!(1, 3),
                        (32, 8..) => go!(8, 2),
                        (32, 4..) => go!(4, 2),
                        (32, _) => go!(1, 2),
                        (_, 8..) => go!(8, 1),
                        (_, 4..) => go!(4, 1),
                        _ => go!(1, 1),
                    }
                }
                d0 += dw;
            }
            i0 += n;
        }
    }
}
