//! SIMD linear layer: `out = act(x w^T + bias) + residual`, w `[n, k]` row-major in f16
//! or f32. A register tile of MR rows of x by NR rows of w keeps MR x NR f32x8
//! accumulators over k; each weight chunk is loaded (and widened from f16) once per tile
//! and reused MR times, each x chunk reused NR times. Decode (m = 1) uses a 1 x 8 tile so
//! eight weight rows stream from memory at once.

use crate::Src;
use crate::activation::Activation;
use crate::simd::{F32x8, LANES, Load, epilogue, hsum, prefetch};

/// Sums of one MR x NR tile over k: `acc[i][j] = Σ_k x[i0+i, k] * w[j0+j, k]`.
/// `next[j]`: the weights read after row j (empty if none), prefetched in step (decode
/// reads many short rows, which hardware prefetchers do not pick up soon enough).
#[inline(always)]
fn tile<const MR: usize, const NR: usize, W: Load>(
    xr: [&[f32]; MR],
    wr: [&[W]; NR],
    next: [&[W]; NR],
    k: usize,
    nta: bool,
) -> [[f32; NR]; MR] {
    let mut acc = [[F32x8::splat(0.0); NR]; MR];
    let kv = k - k % LANES;
    let per_line = 64 / core::mem::size_of::<W>();
    // Long rows are streamed well by the hardware; prefetch only short ones.
    let short_rows = k * core::mem::size_of::<W>() <= 2048;
    // Whole chunks of eight, each row cut to exactly `chunks` of them so the loop
    // indexes without bounds checks.
    let chunks = kv / LANES;
    let wc: [&[[W; LANES]]; NR] = core::array::from_fn(|j| &wr[j].as_chunks::<LANES>().0[..chunks]);
    let xc: [&[[f32; LANES]]; MR] = core::array::from_fn(|i| &xr[i].as_chunks::<LANES>().0[..chunks]);
    for c in 0..chunks {
        let kk = c * LANES;
        if MR == 1 && short_rows && kk.is_multiple_of(per_line) {
            for nx in next {
                prefetch(nx, kk, nta);
            }
        }
        let mut wv = [F32x8::splat(0.0); NR];
        for j in 0..NR {
            wv[j] = W::load8(&wc[j][c]);
        }
        for i in 0..MR {
            let xv = F32x8::from_array(xc[i][c]);
            for j in 0..NR {
                acc[i][j] = crate::simd::fma(xv, wv[j], acc[i][j]);
            }
        }
    }
    let mut sums = [[0f32; NR]; MR];
    for i in 0..MR {
        for j in 0..NR {
            let mut s = hsum(acc[i][j]);
            for t in kv..k {
                s += xr[i][t] * wr[j][t].to_f32();
            }
            sums[i][j] = s;
        }
    }
    sums
}

/// The raw product `x w^T` for one weight type, tiles of MR x NR then the edges.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run<const MR: usize, const NR: usize, W: Load>(
    x: &[f32],
    xs: usize,
    w: &[W],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    let xrow = |i: usize| &x[i * xs..i * xs + k];
    let wrow = |j: usize| &w[j * k..j * k + k];
    let mut i = 0;
    while i < m {
        let mr = (m - i).min(MR);
        let mut j = 0;
        while j < n {
            let nr = (n - j).min(NR);
            // Full tiles, then every smaller edge tile shape; raw sums go to `out`.
            macro_rules! go {
                ($a:literal, $b:literal) => {{
                    let s = tile::<$a, $b, W>(
                        core::array::from_fn(|t| xrow(i + t)),
                        core::array::from_fn(|t| wrow(j + t)),
                        core::array::from_fn(|t| w.get((j + $b + t) * k..).unwrap_or(&[])),
                        k,
                        false,
                    );
                    for (ti, row) in s.iter().enumerate() {
                        out[(i + ti) * n + j..(i + ti) * n + j + $b].copy_from_slice(row);
                    }
                }};
            }
            match (mr, nr) {
                (4, 3) if MR == 4 => go!(4, 3),
                (1, 8) => go!(1, 8),
                (1, nr) if MR == 1 => match nr {
                    1 => go!(1, 1),
                    2 => go!(1, 2),
                    3 => go!(1, 3),
                    4 => go!(1, 4),
                    5 => go!(1, 5),
                    6 => go!(1, 6),
                    _ => go!(1, 7),
                },
                (mr, nr) => match (mr, nr) {
                    (1, 1) => go!(1, 1),
                    (1, 2) => go!(1, 2),
                    (1, _) => go!(1, 3),
                    (2, 1) => go!(2, 1),
                    (2, 2) => go!(2, 2),
                    (2, _) => go!(2, 3),
                    (3, 1) => go!(3, 1),
                    (3, 2) => go!(3, 2),
                    (3, _) => go!(3, 3),
                    (_, 1) => go!(4, 1),
                    (_, _) => go!(4, 2),
                },
            }
            j += nr;
        }
        i += mr;
    }
}

/// Weight bytes from which decode reads four streams at once. In a model every matrix
/// is read once per token, from DRAM or the last-level cache, where four streams win
/// (the layers of a stories15M-shaped Llama: 18% faster); only tiny matrices stay on the
/// plain tiles (`cargo run --release -p mote-kernels --features std --example token_matvecs`).
const STREAMS_FROM_BYTES: usize = 64 << 10;

/// Weight bytes from which decode prefetches non-temporally.
const NTA_FROM_BYTES: usize = 8 << 20;

/// Decode (`m == 1`) of a matrix with short rows (a layer, or a classifier over a vocabulary):
/// eight weight rows at a time, two from each of four equal segments of w, so four
/// sequential streams are read at once (eight adjacent short rows are one stream, which
/// alone does not reach the DRAM bandwidth); the rows past the segments go through the
/// plain 1 x 8 tiles.
/// `WIDE`: sixteen lanes per step (the caller is compiled with AVX-512F).
#[inline(always)]
fn matvec<const WIDE: bool, W: Load>(x: &[f32], w: &[W], out: &mut [f32], k: usize, n: usize) {
    // Tiny matrices gain nothing, and eight long rows are eight streams already.
    if core::mem::size_of_val(w) < STREAMS_FROM_BYTES || k * core::mem::size_of::<W>() > 2048 {
        #[cfg(target_arch = "x86_64")]
        if WIDE {
            return crate::arch::x86_64::gemm512::matvec_rows(x, w, out, k, n);
        }
        return run::<1, 8, W>(x, k, w, out, 1, k, n);
    }
    const S: usize = 4;
    const R: usize = 2;
    let nta = core::mem::size_of_val(w) >= NTA_FROM_BYTES;
    let seg = n / (S * R) * R;
    let row = |j: usize| w.get(j * k..j * k + k).unwrap_or(&[]);
    let mut j = 0;
    while j < seg {
        let at = |t: usize| (t / R) * seg + j + t % R;
        let rows = core::array::from_fn(|t| row(at(t)));
        // The next pair of each segment (none after a segment's last pair).
        let next = core::array::from_fn(|t| if j + R < seg { row(at(t) + R) } else { &[] });
        #[cfg(target_arch = "x86_64")]
        let s = if WIDE {
            crate::arch::x86_64::gemm512::dot_rows::<{ S * R }, W>(x, rows, next, k, nta)
        } else {
            tile::<1, { S * R }, W>([x], rows, next, k, nta)[0]
        };
        #[cfg(not(target_arch = "x86_64"))]
        let s = tile::<1, { S * R }, W>([x], rows, next, k, nta)[0];
        for (t, v) in s.iter().enumerate() {
            out[at(t)] = *v;
        }
        j += R;
    }
    let done = S * seg;
    if done < n {
        #[cfg(target_arch = "x86_64")]
        if WIDE {
            return crate::arch::x86_64::gemm512::matvec_rows(x, &w[done * k..], &mut out[done..], k, n - done);
        }
        run::<1, 8, W>(x, k, &w[done * k..], &mut out[done..], 1, k, n - done);
    }
}

/// `WIDE`: the GEMM is the AVX-512 one (the caller is compiled with AVX-512F).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dispatch_w<const WIDE: bool>(
    x: &[f32],
    xs: usize,
    w: Src<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    match (w, m) {
        (Src::F16(w), 1) => matvec::<WIDE, _>(&x[..k], w, out, k, n),
        (Src::F32(w), 1) => matvec::<WIDE, _>(&x[..k], w, out, k, n),
        #[cfg(target_arch = "x86_64")]
        (w, m) if WIDE && m >= crate::arch::x86_64::gemm::MIN_M => {
            // The AVX-512 GEMM starts its sums from the bias and adds the residual as it
            // writes the last block when no activation comes between; the rest follows.
            let plain = act == Activation::None;
            let fused = crate::arch::x86_64::gemm512::Fused { bias, residual: residual.filter(|_| plain) };
            match w {
                Src::F16(w) => crate::arch::x86_64::gemm512::gemm(x, xs, w, out, m, k, n, fused),
                Src::F32(w) => crate::arch::x86_64::gemm512::gemm(x, xs, w, out, m, k, n, fused),
            }
            if !plain {
                epilogue::<WIDE>(None, residual, act, out, n);
            }
            return;
        }
        #[cfg(target_arch = "x86_64")]
        (Src::F16(w), m) if m >= crate::arch::x86_64::gemm::MIN_M => {
            crate::arch::x86_64::gemm::gemm(x, xs, w, out, m, k, n)
        }
        #[cfg(target_arch = "x86_64")]
        (Src::F32(w), m) if m >= crate::arch::x86_64::gemm::MIN_M => {
            crate::arch::x86_64::gemm::gemm(x, xs, w, out, m, k, n)
        }
        (Src::F16(w), _) => run::<4, 3, _>(x, xs, w, out, m, k, n),
        (Src::F32(w), _) => run::<4, 3, _>(x, xs, w, out, m, k, n),
    }
    epilogue::<WIDE>(bias, residual, act, out, n);
}

/// The AVX2 entry (x86-64 plug). Safety: the CPU has AVX2, FMA and F16C, and the caller
/// has checked every length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn avx2(
    x: &[f32],
    xs: usize,
    w: Src<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    dispatch_w::<false>(x, xs, w, bias, residual, act, out, m, k, n)
}

/// The AVX-512 entry (x86-64 plug). Safety: the CPU has AVX-512F on top of AVX2, FMA and
/// F16C, and the caller has checked every length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn avx512(
    x: &[f32],
    xs: usize,
    w: Src<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    dispatch_w::<true>(x, xs, w, bias, residual, act, out, m, k, n)
}

/// The portable `core::simd` entry of `ref_matmul_strided` (the plugs of CPUs other than
/// x86-64). The caller has checked every length.
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn portable(
    x: &[f32],
    xs: usize,
    w: Src<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    dispatch_w::<false>(x, xs, w, bias, residual, act, out, m, k, n)
}

#[cfg(test)]
mod tests {
    use crate::Src;
    use crate::activation::Activation;
    use crate::matmul::{matmul_strided, ref_matmul_strided};
    use half::f16;
    use proptest::prelude::*;

    /// SIMD sums in another order than the reference: the error is bounded by a few ulps
    /// of Σ|x·w| (k up to 64 here).
    const TOL_REL: f32 = 2e-6;

    fn vals(n: usize, seed: u64) -> Vec<f32> {
        (0..n).map(|i| ((i as u64 * 2654435761 + seed * 97) % 1999) as f32 / 999.0 - 1.0).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        m: usize,
        k: usize,
        n: usize,
        extra_cols: usize,
        f16w: bool,
        with_bias: bool,
        with_res: bool,
        act: Activation,
    ) {
        let xs = k + extra_cols;
        let x = vals(m * xs, 1);
        let w32 = vals(n * k, 2);
        let w16: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
        let w = if f16w { Src::F16(&w16) } else { Src::F32(&w32) };
        let bias = vals(n, 3);
        let bias16: Vec<f16> = bias.iter().map(|&v| f16::from_f32(v)).collect();
        let res = vals(m * n, 4);
        // f16 weights come with an f16 bias here (the converter keeps biases f32; the
        // kernels take either).
        let b = with_bias.then_some(if f16w { Src::F16(&bias16) } else { Src::F32(&bias) });
        let r = with_res.then_some(&res[..]);
        let mut want = vec![0f32; m * n];
        let mut got = vec![0f32; m * n];
        ref_matmul_strided(&x, xs, w, b, r, act, &mut want, m, k, n);
        // Every path this CPU has, called directly (the dispatcher picks one of them).
        for path in ["dispatch", "avx2", "avx512"] {
            match path {
                "dispatch" => matmul_strided(&x, xs, w, b, r, act, &mut got, m, k, n),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: this test machine has AVX2, FMA and F16C (`simd_path_is_active_here`).
                "avx2" => unsafe { super::avx2(&x, xs, w, b, r, act, &mut got, m, k, n) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: checked just before.
                "avx512" if crate::arch::x86_64::has_avx512f() => unsafe {
                    super::avx512(&x, xs, w, b, r, act, &mut got, m, k, n)
                },
                _ => continue,
            }
            for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
                let scale = (k as f32 + 2.0) * 2.0;
                // Activations such as squared ReLU scale the error with the value.
                assert!(
                    (g - w).abs() <= TOL_REL * scale * (1.0 + w.abs()),
                    "{path}: m{m} k{k} n{n} xs{xs} [{idx}]: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn simd_path_is_active_here() {
        // This machine (and CI) has AVX2/FMA/F16C; elsewhere the portable path runs.
        assert!(crate::simd_active(), "{}", crate::kernel_path());
    }

    #[test]
    fn edges_around_lanes_and_tiles() {
        for &m in &[1, 2, 3, 4, 5, 7, 8, 9] {
            for &k in &[1, 7, 8, 9, 16, 17, 33] {
                for &n in &[1, 2, 3, 4, 5, 8, 9, 13] {
                    check(m, k, n, 0, true, true, true, Activation::None);
                }
            }
        }
    }

    /// The packed GEMMs (m >= 6 on x86-64; AVX2 and, where the CPU has it, AVX-512):
    /// several k blocks (of 256 and of 128), partial panels (of 16 and of 48), every edge
    /// tile of rows (of 6 and of 8), f16 and f32 weights, a strided x.
    #[test]
    fn gemm_blocks_and_edges() {
        for &m in &[6, 7, 8, 9, 11, 12, 13, 16, 17] {
            for &k in &[8, 127, 128, 129, 191, 192, 193, 255, 256, 257, 520] {
                for &n in &[1, 15, 16, 17, 32, 40, 47, 48, 49, 96, 100] {
                    for f16w in [true, false] {
                        check(m, k, n, 3, f16w, true, true, Activation::Silu);
                    }
                    // No activation: the AVX-512 GEMM adds bias and residual itself.
                    check(m, k, n, 3, m % 2 == 0, true, true, Activation::None);
                    check(m, k, n, 0, m % 2 == 1, m % 3 == 0, m % 3 != 0, Activation::None);
                }
            }
        }
    }

    /// Decode of a matrix past `STREAMS_FROM_BYTES` with short rows: the four-segment
    /// path, with rows left over after the segments and a k that is not a lane multiple;
    /// and of long rows.
    #[test]
    fn decode_streams() {
        check(1, 291, 8007, 0, true, true, true, Activation::None);
        check(1, 64, 515, 0, true, false, true, Activation::Silu);
        check(1, 288, 4100, 0, false, false, false, Activation::GeluTanh);
        // Long rows (over 2 KiB): one row at a time on AVX-512, with tails of 64 and 16.
        check(1, 1500, 40, 0, true, true, true, Activation::None);
        check(1, 1040, 17, 0, false, true, false, Activation::Silu);
        check(1, 2048, 9, 0, true, false, false, Activation::None);
    }

    proptest! {
        #[test]
        fn matches_reference(
            m in 1usize..12, k in 1usize..70, n in 1usize..20, extra in 0usize..5,
            f16w: bool, b: bool, r: bool, act_i in 0usize..9,
        ) {
            check(m, k, n, extra, f16w, b, r, crate::testutil::ALL_ACTIVATIONS[act_i]);
        }
    }
}
