//! SIMD patch embedding (Conv2d with kernel = stride = patch). For each patch and each
//! group of 4 output channels, the image row segments of the patch (P contiguous pixels)
//! are loaded once and multiplied into 4 weight segments, 8 lanes at a time.

use crate::Src;
use crate::simd::{F32x8, LANES, Load, hsum};

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run<W: Load>(
    image: &[f32],
    weight: &[W],
    bias: Option<Src<'_>>,
    out: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    p: usize,
    dim: usize,
) {
    const DG: usize = 4;
    let (gh, gw) = (h / p, w / p);
    let pv = p - p % LANES;
    let per_out = c * p * p;
    for py in 0..gh {
        for px in 0..gw {
            let row = &mut out[(py * gw + px) * dim..][..dim];
            let mut d0 = 0;
            while d0 < dim {
                let nd = DG.min(dim - d0);
                let mut acc = [F32x8::splat(0.0); DG];
                let mut tail = [0f32; DG];
                for ch in 0..c {
                    for kh in 0..p {
                        let seg = &image[ch * h * w + (py * p + kh) * w + px * p..][..p];
                        for d in 0..nd {
                            let ws = &weight[(d0 + d) * per_out + ch * p * p + kh * p..][..p];
                            let mut kk = 0;
                            while kk < pv {
                                acc[d] += F32x8::from_slice(&seg[kk..kk + LANES]) * W::load8(&ws[kk..kk + LANES]);
                                kk += LANES;
                            }
                            for t in pv..p {
                                tail[d] += seg[t] * ws[t].to_f32();
                            }
                        }
                    }
                }
                for d in 0..nd {
                    row[d0 + d] = hsum(acc[d]) + tail[d] + bias.map_or(0.0, |b| b.get(d0 + d));
                }
                d0 += nd;
            }
        }
    }
}

/// `dst = src` (equal lengths) by vectors of eight, then the tail: short runs, where a
/// call to `memcpy` would cost more than the copy.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    let (d8, dt) = dst.as_chunks_mut::<LANES>();
    let (s8, st) = src.as_chunks::<LANES>();
    for (d, s) in d8.iter_mut().zip(s8) {
        *d = *s;
    }
    for (d, s) in dt.iter_mut().zip(st) {
        *d = *s;
    }
}

/// `WIDE`: the GEMM is the AVX-512 one (the caller is compiled with AVX-512F).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dispatch_w<const WIDE: bool>(
    image: &[f32],
    weight: Src<'_>,
    bias: Option<Src<'_>>,
    out: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    p: usize,
    dim: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if (LANES..=crate::arch::x86_64::gemm::KC).contains(&p) && (h / p) * (w / p) >= crate::arch::x86_64::gemm::MIN_M {
        // As a GEMM over the patches, whose rows are runs of p pixels, contiguous in the
        // image (one per channel and pixel row of the patch); then the bias.
        let gw = w / p;
        let (m, k) = ((h / p) * gw, c * p * p);
        if WIDE {
            // Blocks of whole pixel rows of a patch (runs of p), up to the GEMM's depth.
            let kb = crate::arch::x86_64::gemm512::KC;
            let step = if p >= kb { kb } else { kb / p * p };
            // Patch i, columns k0 .. k0 + dst.len(): run by run, (channel, row) stepped
            // along without divisions.
            let fill = |i: usize, k0: usize, dst: &mut [f32]| {
                let (py, px) = (i / gw, i % gw);
                let (mut ch, mut kh, mut off) = (k0 / (p * p), k0 / p % p, k0 % p);
                let mut d = 0;
                while d < dst.len() {
                    let len = (p - off).min(dst.len() - d);
                    let at = ch * h * w + (py * p + kh) * w + px * p + off;
                    copy_run(&mut dst[d..d + len], &image[at..][..len]);
                    d += len;
                    off = 0;
                    kh += 1;
                    if kh == p {
                        kh = 0;
                        ch += 1;
                    }
                }
            };
            match weight {
                Src::F16(wt) => crate::arch::x86_64::gemm512::gemm_gather(fill, step, wt, out, m, k, dim),
                Src::F32(wt) => crate::arch::x86_64::gemm512::gemm_gather(fill, step, wt, out, m, k, dim),
            }
        } else {
            // One k block per run.
            let xrow = |i: usize, k0: usize, kc: usize| {
                let (py, px, ch, kh) = (i / gw, i % gw, k0 / (p * p), k0 / p % p);
                &image[ch * h * w + (py * p + kh) * w + px * p..][..kc]
            };
            match weight {
                Src::F16(wt) => crate::arch::x86_64::gemm::gemm_with(xrow, p, wt, out, m, k, dim),
                Src::F32(wt) => crate::arch::x86_64::gemm::gemm_with(xrow, p, wt, out, m, k, dim),
            }
        }
        crate::simd::epilogue::<WIDE>(bias, None, crate::activation::Activation::None, out, dim);
        return;
    }
    match weight {
        Src::F16(wt) => run(image, wt, bias, out, c, h, w, p, dim),
        Src::F32(wt) => run(image, wt, bias, out, c, h, w, p, dim),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn avx2(
    image: &[f32],
    weight: Src<'_>,
    bias: Option<Src<'_>>,
    out: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    p: usize,
    dim: usize,
) {
    dispatch_w::<false>(image, weight, bias, out, c, h, w, p, dim)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn avx512(
    image: &[f32],
    weight: Src<'_>,
    bias: Option<Src<'_>>,
    out: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    p: usize,
    dim: usize,
) {
    dispatch_w::<true>(image, weight, bias, out, c, h, w, p, dim)
}

/// The portable `core::simd` entry of `ref_patch_embed` (CPUs other than x86-64); the
/// caller has checked every length.
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn portable(
    image: &[f32],
    weight: Src<'_>,
    bias: Option<Src<'_>>,
    out: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    p: usize,
    dim: usize,
) {
    dispatch_w::<false>(image, weight, bias, out, c, h, w, p, dim)
}

#[cfg(test)]
mod tests {
    use crate::Src;
    use crate::patch::{patch_embed, ref_patch_embed};
    use half::f16;
    use proptest::prelude::*;

    #[allow(clippy::too_many_arguments)]
    fn check(c: usize, p: usize, gh: usize, gw: usize, extra: usize, dim: usize, f16w: bool, b: bool) {
        let (h, w) = (gh * p + extra, gw * p + extra);
        let img: Vec<f32> = (0..c * h * w).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        let w32: Vec<f32> = (0..dim * c * p * p).map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0).collect();
        let w16: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
        let wt = if f16w { Src::F16(&w16) } else { Src::F32(&w32) };
        let bias: Vec<f32> = (0..dim).map(|i| i as f32 * 0.1).collect();
        let bs = b.then_some(Src::F32(&bias));
        let mut want = vec![0f32; (h / p) * (w / p) * dim];
        let mut got = vec![1f32; want.len()];
        ref_patch_embed(&img, wt, bs, &mut want, c, h, w, p, dim);
        // Every path this CPU has, called directly (the dispatcher picks one of them).
        for path in ["dispatch", "avx2", "avx512"] {
            got.fill(1.0);
            match path {
                "dispatch" => patch_embed(&img, wt, bs, &mut got, c, h, w, p, dim),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: this test machine has AVX2, FMA and F16C.
                "avx2" => unsafe { super::avx2(&img, wt, bs, &mut got, c, h, w, p, dim) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: checked just before.
                "avx512" if crate::arch::x86_64::has_avx512f() => unsafe {
                    super::avx512(&img, wt, bs, &mut got, c, h, w, p, dim)
                },
                _ => continue,
            }
            let scale = (c * p * p) as f32;
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 2e-6 * scale + 1e-5, "{path}: {} vs {}", g, w);
            }
        }
    }

    /// Patches whose pixel rows are longer than the AVX-512 GEMM's k block (runs cut
    /// across blocks) and up to the AVX2 GEMM's limit.
    #[test]
    fn large_patches() {
        for p in [64, 127, 128, 129, 200, 256] {
            check(2, p, 2, 3, 1, 50, true, true);
        }
    }

    proptest! {
        /// Enough patches (>= 6) with p >= 8 for the GEMM path on x86-64.
        #[test]
        fn gemm_path_matches_reference(c in 1usize..4, p in 8usize..18, gh in 2usize..5, gw in 3usize..5, extra in 0usize..3, dim in 1usize..100, f16w: bool, b: bool) {
            check(c, p, gh, gw, extra, dim, f16w, b);
        }

        #[test]
        fn matches_reference(c in 1usize..4, p in 1usize..20, gh in 1usize..4, gw in 1usize..4, extra in 0usize..3, dim in 1usize..10, f16w: bool, b: bool) {
            check(c, p, gh, gw, extra, dim, f16w, b);
        }
    }
}
