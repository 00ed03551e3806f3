//! The GEMM of [`super::gemm`] for CPUs with AVX-512 (x86-64, chosen at run time):
//! `out[m, n] = x[m, k] w[n, k]^T`, raw sums (the caller adds bias, activation, residual).
//!
//! Same structure, twice the width and more registers: the weights are packed a block of
//! KC x NR = 192 x 48 at a time into an f32 panel (widened from f16 and transposed once,
//! 36 KiB), and every MR = 8 row tile of x runs an 8 x 48 micro-kernel over it:
//! 24 zmm accumulators, three panel loads and eight broadcasts per step of k, 24 FMAs of
//! sixteen lanes. 8 x 48 divides the encoder shapes (128 tokens; 192, 384, 576, 768 and
//! 1536 columns) without edges.

use super::gemm::pack;
use crate::Src;
use crate::simd::{F32x8, F32x16, Load, fma16, reduce_sum16};

/// Rows of x per micro-tile.
pub(crate) const MR: usize = 8;
/// Panel width in 8-lane groups (the packer's unit): NR = 48 weight rows.
pub(crate) const H: usize = 6;
pub(crate) const NR: usize = 8 * H;
/// Depth of one panel (NR x KC f32 = 36 KiB). 192 is one block for the small models'
/// hidden size (ViT-Tiny) and divides 384 and 768, so the output is not revisited per
/// block; measured 4% faster than 128 over ViT-Tiny's matmuls on Zen 5 (48 KiB L1)
/// (`cargo run --release -p mote-kernels --features std --example vit_matmuls`).
pub(crate) const KC: usize = 192;

/// A panel row of 48 f32 as three 16-lane vectors.
#[inline(always)]
fn row3(r: &[F32x8; H]) -> [F32x16; 3] {
    // SAFETY: both are 48 contiguous f32 (`Simd<f32, N>` is laid out as `[f32; N]`, and
    // its size is a multiple of its alignment, so arrays of it have no padding); every
    // bit pattern is a valid f32. Read by value, so alignment does not matter.
    unsafe { core::mem::transmute::<[F32x8; H], [F32x16; 3]>(*r) }
}

/// One R x 16C tile over a panel (its first `16C >= nr` columns):
/// `out[r][..nr] (+)= Σ_p x[r][p] * panel[p]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn micro<const R: usize, const C: usize>(
    xr: [&[f32]; R],
    panel: &[[F32x8; H]],
    out: &mut [f32],
    n: usize,
    nr: usize,
    add: bool,
    init: Option<&[F32x16; 3]>,
    res: Option<&[f32]>,
) {
    let kc = panel.len();
    // Rows cut to the panel's depth: the loop indexes without bounds checks.
    let xr: [&[f32]; R] = core::array::from_fn(|r| &xr[r][..kc]);
    // The sums start from `init` (a bias row) where given.
    let start: [F32x16; C] = core::array::from_fn(|c| init.map_or(F32x16::splat(0.0), |b| b[c]));
    let mut acc = [start; R];
    for (p, b) in panel.iter().enumerate() {
        let b = row3(b);
        for r in 0..R {
            // SAFETY: every row was cut to exactly `kc` values above and p < kc. (The
            // compiler does not always see it where this is inlined, and a check per row
            // and step halved the speed of the patch embedding and of the bench's GEMM.)
            let a = F32x16::splat(unsafe { *xr[r].get_unchecked(p) });
            for c in 0..C {
                acc[r][c] = fma16(a, b[c], acc[r][c]);
            }
        }
    }
    // Written back, plus the earlier blocks' sums (`add`) and the residual `res` (laid
    // out as `out`) where given.
    for (r, acc) in acc.iter().enumerate() {
        let o = &mut out[r * n..r * n + nr];
        let rr = res.map(|x| &x[r * n..r * n + nr]);
        if nr == 16 * C {
            for (c, v) in acc.iter().enumerate() {
                let dst = &mut o[c * 16..c * 16 + 16];
                let mut v = if add { *v + F32x16::from_slice(dst) } else { *v };
                if let Some(x) = rr {
                    v += F32x16::from_slice(&x[c * 16..c * 16 + 16]);
                }
                dst.copy_from_slice(v.as_array());
            }
        } else {
            let mut tile = [0f32; NR];
            for (c, v) in acc.iter().enumerate() {
                tile[c * 16..c * 16 + 16].copy_from_slice(v.as_array());
            }
            if add {
                o.iter_mut().zip(&tile).for_each(|(o, t)| *o += t);
            } else {
                o.copy_from_slice(&tile[..nr]);
            }
            if let Some(x) = rr {
                o.iter_mut().zip(x).for_each(|(o, x)| *o += x);
            }
        }
    }
}

/// `micro` for an `mr x nr` tile (`mr <= MR`, `nr <= NR`): the narrowest column count
/// that covers `nr`, so a partial panel (the last keys of a row) costs what it uses.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn tile<'x>(
    xrow: impl Fn(usize) -> &'x [f32],
    mr: usize,
    panel: &[[F32x8; H]],
    out: &mut [f32],
    n: usize,
    nr: usize,
    add: bool,
    init: Option<&[F32x16; 3]>,
    res: Option<&[f32]>,
) {
    macro_rules! go {
        ($r:literal) => {
            match nr.div_ceil(16) {
                3 => micro::<$r, 3>(core::array::from_fn(&xrow), panel, out, n, nr, add, init, res),
                2 => micro::<$r, 2>(core::array::from_fn(&xrow), panel, out, n, nr, add, init, res),
                _ => micro::<$r, 1>(core::array::from_fn(&xrow), panel, out, n, nr, add, init, res),
            }
        };
    }
    match mr {
        8 => go!(8),
        7 => go!(7),
        6 => go!(6),
        5 => go!(5),
        4 => go!(4),
        3 => go!(3),
        2 => go!(2),
        _ => go!(1),
    }
}

/// Prefetches the weights of the panel after `(j0, k0)`: this k block's next rows, else
/// the next block's first ones. They come from the last-level cache or DRAM, row by row
/// (which the hardware prefetchers do not follow); this panel's tiles take long enough
/// to hide the fetch.
#[inline(always)]
fn prefetch_next<W: Load>(w: &[W], k: usize, n: usize, j0: usize, k0: usize, kc: usize, step: usize) {
    let (pj, pk) = if j0 + NR < n { (j0 + NR, k0) } else { (0, k0 + kc) };
    if pk < k {
        let per_line = 64 / core::mem::size_of::<W>();
        for j in pj..(pj + NR).min(n) {
            let mut t = 0;
            while t < step.min(k - pk) {
                crate::simd::prefetch(w, j * k + pk + t, false);
                t += per_line;
            }
        }
    }
}

/// The panel, aligned to a cache line so its zmm loads never split lines.
#[repr(align(64))]
pub(crate) struct Panel(pub(crate) [[F32x8; H]; KC]);

/// Parts of the epilogue the GEMM applies itself, with no pass of its own: the sums
/// start from the bias, and the last k block's write-back adds the residual (`[m, n]`,
/// laid out as the output; only when no activation comes between them).
#[derive(Clone, Copy)]
pub(crate) struct Fused<'a> {
    pub(crate) bias: Option<Src<'a>>,
    pub(crate) residual: Option<&'a [f32]>,
}

impl Fused<'_> {
    /// The bias of output columns `j0 .. j0+nr` as three vectors (zero past nr).
    #[inline(always)]
    fn bias_panel(&self, j0: usize, nr: usize) -> Option<[F32x16; 3]> {
        let mut row = [0f32; NR];
        self.bias?.slice(j0, nr).copy_to(&mut row[..nr]);
        Some(core::array::from_fn(|c| F32x16::from_slice(&row[c * 16..c * 16 + 16])))
    }
}

/// The product with row `i` of x, columns `k0 .. k0+kc`, given by `xrow(i, k0, kc)`
/// (k walked in blocks of `step`, capped at KC), with the `fused` parts of the
/// epilogue. The caller has checked every length.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_with<'x, W: Load>(
    xrow: impl Fn(usize, usize, usize) -> &'x [f32],
    step: usize,
    w: &[W],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    fused: Fused<'_>,
) {
    let step = step.clamp(1, KC);
    let mut panel = Panel([[F32x8::splat(0.0); H]; KC]);
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(step);
        let last = k0 + kc >= k;
        let mut j0 = 0;
        while j0 < n {
            let nr = (n - j0).min(NR);
            pack(w, k, j0, nr, k0, kc, &mut panel.0[..]);
            prefetch_next(w, k, n, j0, k0, kc, step);
            let panel = &panel.0[..kc];
            let init = if k0 == 0 { fused.bias_panel(j0, nr) } else { None };
            let mut i0 = 0;
            while i0 < m {
                let mr = (m - i0).min(MR);
                let o = &mut out[i0 * n + j0..];
                let res = fused.residual.filter(|_| last).map(|x| &x[i0 * n + j0..]);
                tile(|r| xrow(i0 + r, k0, kc), mr, panel, o, n, nr, k0 > 0, init.as_ref(), res);
                i0 += mr;
            }
            j0 += nr;
        }
        k0 += kc;
    }
}

/// The raw product for an x whose rows are gathered from elsewhere (the patches of an
/// image): `fill(i, k0, dst)` writes row i, columns `k0 .. k0 + dst.len()`, into `dst`,
/// where k0 is a multiple of `step` (at most KC). The rows are gathered into a buffer,
/// `GATHER_ROWS` at a time and a k block at a time, so the panels stay `step` deep
/// however the rows are laid out.
#[inline(always)]
pub(crate) fn gemm_gather<W: Load>(
    fill: impl Fn(usize, usize, &mut [f32]),
    step: usize,
    w: &[W],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    /// Rows gathered at once (x KC f32 = 36 KiB on the stack).
    const GATHER_ROWS: usize = 8 * MR;
    let step = step.clamp(1, KC);
    let mut panel = Panel([[F32x8::splat(0.0); H]; KC]);
    let mut buf = [[0f32; KC]; GATHER_ROWS];
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(step);
        let mut g0 = 0;
        while g0 < m {
            let gm = (m - g0).min(GATHER_ROWS);
            for (r, b) in buf.iter_mut().enumerate().take(gm) {
                fill(g0 + r, k0, &mut b[..kc]);
            }
            let mut j0 = 0;
            while j0 < n {
                let nr = (n - j0).min(NR);
                pack(w, k, j0, nr, k0, kc, &mut panel.0[..]);
                // The first group of rows meets this block's panels cold: fetch the next
                // one ahead; the last group fetches the next block's first panel.
                if (g0 == 0 && j0 + NR < n) || (g0 + gm >= m && j0 + NR >= n) {
                    prefetch_next(w, k, n, j0, k0, kc, step);
                }
                let panel = &panel.0[..kc];
                let mut r0 = 0;
                while r0 < gm {
                    let mr = (gm - r0).min(MR);
                    let o = &mut out[(g0 + r0) * n + j0..];
                    tile(|r| &buf[r0 + r][..kc], mr, panel, o, n, nr, k0 > 0, None, None);
                    r0 += mr;
                }
                j0 += nr;
            }
            g0 += gm;
        }
        k0 += kc;
    }
}

/// `gemm_with` over a plain row-major x with row stride `xs`, k in equal blocks of at
/// most KC.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<W: Load>(
    x: &[f32],
    xs: usize,
    w: &[W],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    fused: Fused<'_>,
) {
    let blocks = k.div_ceil(KC);
    let step = k.div_ceil(blocks).next_multiple_of(8).min(KC);
    gemm_with(|i, k0, kc| &x[i * xs + k0..i * xs + k0 + kc], step, w, out, m, k, n, fused)
}

/// Decode (one row of x): `x . w_j` for NR weight rows at once, sixteen lanes per step,
/// so NR rows stream together; `next[j]`, the weights read after row j, is prefetched in
/// step when the rows are short (`nta`: non-temporally). The caller has checked lengths.
#[inline(always)]
pub(crate) fn dot_rows<const NR: usize, W: Load>(
    x: &[f32],
    wr: [&[W]; NR],
    next: [&[W]; NR],
    k: usize,
    nta: bool,
) -> [f32; NR] {
    const L: usize = 16;
    let mut acc = [F32x16::splat(0.0); NR];
    let chunks = k / L;
    let per_line = 64 / core::mem::size_of::<W>();
    let short_rows = k * core::mem::size_of::<W>() <= 2048;
    let wc: [&[[W; L]]; NR] = core::array::from_fn(|j| &wr[j].as_chunks::<L>().0[..chunks]);
    let xc = &x.as_chunks::<L>().0[..chunks];
    for (c, xv) in xc.iter().enumerate() {
        let kk = c * L;
        if short_rows && kk.is_multiple_of(per_line) {
            for nx in next {
                crate::simd::prefetch(nx, kk, nta);
            }
        }
        let xv = F32x16::from_array(*xv);
        for j in 0..NR {
            acc[j] = fma16(xv, W::load16(&wc[j][c]), acc[j]);
        }
    }
    core::array::from_fn(|j| {
        let mut s = reduce_sum16(acc[j]);
        for t in chunks * L..k {
            s += x[t] * wr[j][t].to_f32();
        }
        s
    })
}

/// `x . w` for one long row on four accumulators (64 values per step): the row is one
/// sequential stream, which this CPU's prefetchers follow at close to the full read
/// bandwidth (several rows at once, as on AVX2, measured slower here).
#[inline(always)]
fn dot_long<W: Load>(x: &[f32], w: &[W], k: usize) -> f32 {
    const L: usize = 16;
    let quads = k / (4 * L);
    let wc = &w.as_chunks::<{ 4 * L }>().0[..quads];
    let xc = &x.as_chunks::<{ 4 * L }>().0[..quads];
    let mut acc = [F32x16::splat(0.0); 4];
    for (xq, wq) in xc.iter().zip(wc) {
        for (t, a) in acc.iter_mut().enumerate() {
            *a = fma16(F32x16::from_slice(&xq[t * L..t * L + L]), W::load16(&wq[t * L..t * L + L]), *a);
        }
    }
    let mut s = reduce_sum16((acc[0] + acc[1]) + (acc[2] + acc[3]));
    let done = quads * 4 * L;
    s += dot_rows::<1, W>(&x[done..k], [&w[done..k]], [&[]], k - done, false)[0];
    s
}

/// Decode of `n` rows of length `k`: long rows (over 2 KiB) one at a time, short rows
/// eight at a time, then one by one.
#[inline(always)]
pub(crate) fn matvec_rows<W: Load>(x: &[f32], w: &[W], out: &mut [f32], k: usize, n: usize) {
    let row = |j: usize| &w[j * k..j * k + k];
    if k * core::mem::size_of::<W>() > 2048 {
        for (j, o) in out.iter_mut().enumerate().take(n) {
            *o = dot_long(x, row(j), k);
        }
        return;
    }
    let mut j = 0;
    while j + 8 <= n {
        let s = dot_rows::<8, W>(x, core::array::from_fn(|t| row(j + t)), [&[]; 8], k, false);
        out[j..j + 8].copy_from_slice(&s);
        j += 8;
    }
    while j < n {
        out[j] = dot_rows::<1, W>(x, [row(j)], [&[]], k, false)[0];
        j += 1;
    }
}
