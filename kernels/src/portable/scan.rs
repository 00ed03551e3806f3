//! SIMD selective scan (Mamba): the state of each channel, `n` values (16 in Mamba), is
//! updated eight states at a time: `exp(Δ A)` with the vectorised exp, the decay and the
//! input in fused multiply-adds, and `C . h` reduced from the same registers. Same
//! contract as `ref_selective_scan`; runs when `n` is a multiple of eight.

use crate::Src;
use crate::activation::{silu, softplus};
use crate::simd::{F32x8, LANES, Load, fma, hsum};

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run<W: Load>(
    x: &[f32],
    dt: &[f32],
    bc: &[f32],
    z: &[f32],
    a_d: &[W],
    state: &mut [f32],
    out: &mut [f32],
    t: usize,
    e: usize,
    n: usize,
) {
    for i in 0..t {
        let b = &bc[i * 2 * n..i * 2 * n + n];
        let c = &bc[i * 2 * n + n..(i + 1) * 2 * n];
        for ch in 0..e {
            let xi = x[i * e + ch];
            let delta = softplus(dt[i * e + ch]);
            let (dv, dx) = (F32x8::splat(delta), F32x8::splat(delta * xi));
            let a = &a_d[ch * (n + 1)..(ch + 1) * (n + 1)];
            let h = &mut state[ch * n..(ch + 1) * n];
            let mut y = F32x8::splat(0.0);
            let mut s = 0;
            while s < n {
                let decay = crate::simd::math::exp(dv * W::load8(&a[s..s + LANES]));
                let hv = fma(dx, F32x8::from_slice(&b[s..s + LANES]), decay * F32x8::from_slice(&h[s..s + LANES]));
                h[s..s + LANES].copy_from_slice(hv.as_array());
                y = fma(F32x8::from_slice(&c[s..s + LANES]), hv, y);
                s += LANES;
            }
            out[i * e + ch] = (hsum(y) + a[n].to_f32() * xi) * silu(z[i * e + ch]);
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dispatch_w(
    x: &[f32],
    dt: &[f32],
    bc: &[f32],
    z: &[f32],
    a_d: Src<'_>,
    state: &mut [f32],
    out: &mut [f32],
    t: usize,
    e: usize,
    n: usize,
) {
    match a_d {
        Src::F32(a) => run(x, dt, bc, z, a, state, out, t, e, n),
        Src::F16(a) => run(x, dt, bc, z, a, state, out, t, e, n),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn avx2(
    x: &[f32],
    dt: &[f32],
    bc: &[f32],
    z: &[f32],
    a_d: Src<'_>,
    state: &mut [f32],
    out: &mut [f32],
    t: usize,
    e: usize,
    n: usize,
) {
    dispatch_w(x, dt, bc, z, a_d, state, out, t, e, n)
}

/// The portable `core::simd` entry of `ref_selective_scan` (CPUs other than x86-64); the
/// caller has checked every length and that `n % 8 == 0`.
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn portable(
    x: &[f32],
    dt: &[f32],
    bc: &[f32],
    z: &[f32],
    a_d: Src<'_>,
    state: &mut [f32],
    out: &mut [f32],
    t: usize,
    e: usize,
    n: usize,
) {
    dispatch_w(x, dt, bc, z, a_d, state, out, t, e, n)
}

#[cfg(test)]
mod tests {
    use crate::Src;
    use crate::scan::{ref_selective_scan, selective_scan};
    use half::f16;
    use proptest::prelude::*;

    fn vals(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|i| lo + (hi - lo) * (((i as u64 * 2654435761 + seed * 977) % 1009) as f32 / 1008.0)).collect()
    }

    proptest! {
        /// Two calls (prefill then more steps) against the reference doing the same, with
        /// f16 and f32 A|D; the state carries over between calls.
        #[test]
        fn matches_reference(t1 in 1usize..6, t2 in 1usize..4, e in 1usize..20, n8 in 1usize..4, f16w: bool) {
            let n = n8 * 8;
            let t = t1 + t2;
            let (x, dt, z) = (vals(t * e, 1, -2.0, 2.0), vals(t * e, 2, -4.0, 3.0), vals(t * e, 3, -3.0, 3.0));
            let bc = vals(t * 2 * n, 4, -1.5, 1.5);
            let mut ad32 = vals(e * (n + 1), 5, -3.0, -0.05);
            for ch in 0..e { ad32[ch * (n + 1) + n] = 0.5 + ch as f32 * 0.1; }
            let ad16: Vec<f16> = ad32.iter().map(|&v| f16::from_f32(v)).collect();
            let ad = if f16w { Src::F16(&ad16) } else { Src::F32(&ad32) };
            let (mut hs, mut hr) = (vals(e * n, 6, -1.0, 1.0), vals(e * n, 6, -1.0, 1.0));
            let (mut got, mut want) = (vec![0f32; t * e], vec![0f32; t * e]);
            for (from, len) in [(0, t1), (t1, t2)] {
                let r = from * e..(from + len) * e;
                let rb = from * 2 * n..(from + len) * 2 * n;
                selective_scan(&x[r.clone()], &dt[r.clone()], &bc[rb.clone()], &z[r.clone()], ad, &mut hs, &mut got[r.clone()], len, e, n);
                ref_selective_scan(&x[r.clone()], &dt[r.clone()], &bc[rb], &z[r.clone()], ad, &mut hr, &mut want[r], len, e, n);
            }
            for (g, w) in got.iter().zip(&want).chain(hs.iter().zip(&hr)) {
                prop_assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()) * n as f32, "{} vs {}", g, w);
            }
        }
    }
}
