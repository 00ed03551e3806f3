//! Register-blocked GEMM for prefill, images and encoders (x86-64, AVX2 + FMA):
//! `out[m, n] = x[m, k] w[n, k]^T`, raw sums (the caller adds bias, activation, residual).
//!
//! The weights are repacked on the fly, a block of KC x NR at a time, into an f32 panel
//! `[kc][NR]` on the stack: f16 is widened (and the `[n, k]` rows transposed) once per
//! panel, then the panel is reused by every MR-row tile of x. The micro-kernel keeps an
//! MR x NR tile (6 x 16 = 12 AVX registers) of accumulators, and per step of k loads two
//! panel vectors, broadcasts six x values and issues twelve FMAs. The k blocks keep the
//! panel in L1 and x's rows of the block in L2; partial sums of later blocks are added
//! to `out`.

use crate::simd::{F32x8, LANES, Load, fma};

/// Rows of x per micro-tile.
const MR: usize = 6;
/// Weight rows (output columns) per panel: two vectors.
pub(crate) const NR: usize = 2 * LANES;
/// Depth of one panel (NR x KC f32 = 16 KiB, half of L1).
pub(crate) const KC: usize = 256;
/// Below this many rows of x the panel is not reused enough to pay for packing.
pub(crate) const MIN_M: usize = 6;

/// Packs `w[j0 .. j0+nr, k0 .. k0+kc]` as f32 into `panel[p] = [w[j0+c, k0+p] for c in 0..8H]`
/// (columns past `nr` are zero; `nr <= 8H`, `kc <= panel.len()`).
#[inline(always)]
pub(crate) fn pack<W: Load, const H: usize>(
    w: &[W],
    k: usize,
    j0: usize,
    nr: usize,
    k0: usize,
    kc: usize,
    panel: &mut [[F32x8; H]],
) {
    let row = |c: usize| &w[(j0 + c) * k + k0..(j0 + c) * k + k0 + kc];
    let kv = kc - kc % LANES;
    for half in 0..H {
        let c0 = half * LANES;
        if c0 >= nr {
            for p in panel.iter_mut().take(kc) {
                p[half] = F32x8::splat(0.0);
            }
            continue;
        }
        let cn = (nr - c0).min(LANES);
        let mut p = 0;
        if cn == LANES {
            // Eight rows x eight k at a time: load, transpose in registers, store.
            while p < kv {
                let mut v: [F32x8; LANES] = core::array::from_fn(|c| W::load8(&row(c0 + c)[p..p + LANES]));
                transpose8(&mut v);
                for (t, col) in v.into_iter().enumerate() {
                    panel[p + t][half] = col;
                }
                p += LANES;
            }
        }
        for (p, slot) in panel.iter_mut().enumerate().take(kc).skip(p) {
            slot[half] =
                F32x8::from_array(core::array::from_fn(|c| if c < cn { row(c0 + c)[p].to_f32() } else { 0.0 }));
        }
    }
}

/// Transposes an 8 x 8 block held as eight vectors (three perfect-shuffle stages: each
/// rotates the 6-bit element index by one bit; three rotations swap row and column).
#[inline(always)]
pub(crate) fn transpose8(v: &mut [F32x8; LANES]) {
    for _ in 0..3 {
        let mut u = [F32x8::splat(0.0); LANES];
        for i in 0..LANES / 2 {
            let (a, b) = v[i].interleave(v[i + LANES / 2]);
            u[2 * i] = a;
            u[2 * i + 1] = b;
        }
        *v = u;
    }
}

/// One R x NR tile over a panel: `out[r][..nr] (+)= Σ_p x[r][p] * panel[p]`.
#[inline(always)]
fn micro<const R: usize>(xr: [&[f32]; R], panel: &[[F32x8; 2]], out: &mut [f32], n: usize, nr: usize, add: bool) {
    let mut acc = [[F32x8::splat(0.0); 2]; R];
    let xr: [&[f32]; R] = core::array::from_fn(|r| &xr[r][..panel.len()]);
    for (p, b) in panel.iter().enumerate() {
        for r in 0..R {
            // SAFETY: every row was cut to exactly `panel.len()` values just above and
            // p < panel.len() (a check per row and step costs much of the speed where the
            // compiler does not see it).
            let a = F32x8::splat(unsafe { *xr[r].get_unchecked(p) });
            acc[r][0] = fma(a, b[0], acc[r][0]);
            acc[r][1] = fma(a, b[1], acc[r][1]);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let mut tile = [0f32; NR];
        tile[..LANES].copy_from_slice(acc[0].as_array());
        tile[LANES..].copy_from_slice(acc[1].as_array());
        let o = &mut out[r * n..r * n + nr];
        if add {
            o.iter_mut().zip(&tile).for_each(|(o, t)| *o += t);
        } else {
            o.copy_from_slice(&tile[..nr]);
        }
    }
}

/// The raw product. The caller has checked every length (see `matmul_strided`).
#[inline(always)]
pub(crate) fn gemm<W: Load>(x: &[f32], xs: usize, w: &[W], out: &mut [f32], m: usize, k: usize, n: usize) {
    // Equal k blocks of at most KC (a multiple of the lanes where possible).
    let blocks = k.div_ceil(KC);
    let step = k.div_ceil(blocks).next_multiple_of(LANES).min(KC);
    gemm_with(|i, k0, kc| &x[i * xs + k0..i * xs + k0 + kc], step, w, out, m, k, n)
}

/// The raw product with row `i` of x, columns `k0 .. k0+kc`, given by `xrow(i, k0, kc)`
/// (k is walked in blocks of `step <= KC`): for inputs that are not a plain matrix, such
/// as the patches of an image.
#[inline(always)]
pub(crate) fn gemm_with<'x, W: Load>(
    xrow: impl Fn(usize, usize, usize) -> &'x [f32],
    step: usize,
    w: &[W],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    gemm_packed(xrow, step, |j0, nr, k0, kc, panel| pack(w, k, j0, nr, k0, kc, panel), out, m, k, n)
}

/// [`gemm_with`] with the panels of weight rows `j0 .. j0+nr`, columns `k0 .. k0+kc` packed
/// by `pack(j0, nr, k0, kc, panel)` (as [`pack`] does), for weights that are not a plain
/// matrix, such as quantized blocks.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_packed<'x>(
    xrow: impl Fn(usize, usize, usize) -> &'x [f32],
    step: usize,
    mut pack: impl FnMut(usize, usize, usize, usize, &mut [[F32x8; 2]]),
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    let step = step.clamp(1, KC);
    let mut panel = [[F32x8::splat(0.0); 2]; KC];
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(step);
        let mut j0 = 0;
        while j0 < n {
            let nr = (n - j0).min(NR);
            pack(j0, nr, k0, kc, &mut panel[..]);
            let panel = &panel[..kc];
            let mut i0 = 0;
            while i0 < m {
                let mr = (m - i0).min(MR);
                let o = &mut out[i0 * n + j0..];
                let add = k0 > 0;
                macro_rules! go {
                    ($r:literal) => {
                        micro::<$r>(core::array::from_fn(|r| xrow(i0 + r, k0, kc)), panel, o, n, nr, add)
                    };
                }
                match mr {
                    6 => go!(6),
                    5 => go!(5),
                    4 => go!(4),
                    3 => go!(3),
                    2 => go!(2),
                    _ => go!(1),
                }
                i0 += mr;
            }
            j0 += nr;
        }
        k0 += kc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose8_transposes() {
        let mut v: [F32x8; LANES] =
            core::array::from_fn(|r| F32x8::from_array(core::array::from_fn(|c| (r * 8 + c) as f32)));
        transpose8(&mut v);
        for (r, row) in v.iter().enumerate() {
            for (c, &e) in row.as_array().iter().enumerate() {
                assert_eq!(e, (c * 8 + r) as f32);
            }
        }
    }
}
