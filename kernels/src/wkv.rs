//! RWKV-4 (Peng et al. 2023): token shift and the WKV recurrence in its numerically
//! stable form (as transformers' `rwkv_linear_attention_cpu`). Both stream over calls.

use crate::Src;
use crate::src::Element;

/// Token shift with `mixes` interpolations, continuing from `state` (the previous row).
/// ```text
/// x: [t, d]; mix: [mixes, d]; state: [d]; out: [t, mixes * d]
/// prev(0) = state, prev(i) = x[i - 1]
/// out[i, m*d + ch] = x[i, ch] * mix[m, ch] + prev(i)[ch] * (1 - mix[m, ch])
/// state <- x[t - 1]
/// ```
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn ref_token_shift(x: &[f32], mix: Src<'_>, state: &mut [f32], out: &mut [f32], t: usize, d: usize, mixes: usize) {
    /// One row of one mix: `o = x * mu + prev * (1 - mu)`. (The slices are the row's;
    /// the branches are taken per row, so the loop is one copy per weight type.)
    fn row<W: Element>(o: &mut [f32], x: &[f32], prev: &[f32], mu: &[W]) {
        for (((o, &x), &p), &m) in o.iter_mut().zip(x).zip(prev).zip(mu) {
            let m = m.to_f32();
            *o = x * m + p * (1.0 - m);
        }
    }
    if d == 0 || t == 0 {
        return;
    }
    let width = mixes * d;
    let at = |i: usize| x.get(i * d..(i + 1) * d).unwrap_or(&[]);
    for (i, out_row) in out.chunks_exact_mut(width.max(1)).take(t).enumerate() {
        let prev = if i == 0 { &state[..] } else { at(i - 1) };
        for (m, o) in out_row.chunks_exact_mut(d).enumerate() {
            match mix.slice(m * d, d) {
                Src::F32(mu) => row(o, at(i), prev, mu),
                Src::F16(mu) => row(o, at(i), prev, mu),
            }
        }
    }
    if let Some(last) = x.get((t - 1) * d..t * d) {
        state.iter_mut().zip(last).for_each(|(s, v)| *s = *v);
    }
}

/// The stored `pp` of a state that has seen nothing (transformers starts at -1e38).
const PP_EMPTY: f32 = -1e38;

/// WKV with its receptance gate, continuing from `state` = `[aa | bb | pp]` (`[3, a]`).
/// ```text
/// k, v, r: [t, a] (r already through the sigmoid); u = time_first: [a];
/// w = -exp(time_decay): [a]; out: [t, a]
/// per step, channel:   q = max(pp, k + u)
///   wkv = (exp(pp - q) * aa + exp(k + u - q) * v) / (exp(pp - q) * bb + exp(k + u - q))
///   out = r * wkv
///   q' = max(pp + w, k);  aa = exp(pp + w - q') * aa + exp(k - q') * v
///   bb = exp(pp + w - q') * bb + exp(k - q');  pp = q'
/// ```
/// A zeroed state (after `reset`) has bb = 0 and is read as pp = -1e38, as transformers
/// initialises it.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn ref_wkv(
    k: &[f32],
    v: &[f32],
    r: &[f32],
    u: Src<'_>,
    w: Src<'_>,
    state: &mut [f32],
    out: &mut [f32],
    t: usize,
    a: usize,
) {
    use crate::math::expf;
    if a == 0 || state.len() < 3 * a {
        return;
    }
    let (aa, rest) = state.split_at_mut(a);
    let (bb, pp) = rest.split_at_mut(a);
    for (i, out_row) in out.chunks_exact_mut(a).take(t).enumerate() {
        for (ch, o) in out_row.iter_mut().enumerate() {
            let at = i * a + ch;
            let (kk, vv, rr) = (
                k.get(at).copied().unwrap_or(0.0),
                v.get(at).copied().unwrap_or(0.0),
                r.get(at).copied().unwrap_or(0.0),
            );
            let (uu, ww) = (u.get(ch), w.get(ch));
            let p = if bb[ch] == 0.0 { PP_EMPTY } else { pp[ch] };
            let q = p.max(kk + uu);
            let (e1, e2) = (expf(p - q), expf(kk + uu - q));
            *o = rr * (e1 * aa[ch] + e2 * vv) / (e1 * bb[ch] + e2);
            let q2 = (p + ww).max(kk);
            let (e1, e2) = (expf(p + ww - q2), expf(kk - q2));
            aa[ch] = e1 * aa[ch] + e2 * vv;
            bb[ch] = e1 * bb[ch] + e2;
            pp[ch] = q2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2000) as f32 / 500.0 - 2.0)
            .collect()
    }

    #[test]
    fn token_shift_mixes_and_carries_the_last_row() {
        let (t, d) = (3, 2);
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mix = [0.25, 0.5, 1.0, 0.0]; // two mixes
        let mut state = [10.0, 20.0];
        let mut out = [0f32; 12];
        ref_token_shift(&x, Src::F32(&mix), &mut state, &mut out, t, d, 2);
        // Row 0: prev = state.
        assert_eq!(out[..4], [1.0 * 0.25 + 10.0 * 0.75, 2.0 * 0.5 + 20.0 * 0.5, 1.0, 20.0]);
        // Row 2: prev = x[1].
        assert_eq!(out[8..], [5.0 * 0.25 + 3.0 * 0.75, 6.0 * 0.5 + 4.0 * 0.5, 5.0, 4.0]);
        assert_eq!(state, [5.0, 6.0]);
    }

    /// The plain (unstabilised) WKV in f64 over the whole sequence:
    /// wkv_t = (Σ_{j<t} e^{-(t-1-j)w' + k_j} v_j + e^{u + k_t} v_t) / (same with v = 1), w' = -w.
    #[test]
    fn stable_wkv_matches_the_plain_formula_and_streams() {
        let (t, a) = (7, 4);
        let (k, v) = (vals(t * a, 1), vals(t * a, 2));
        let r: Vec<f32> = vals(t * a, 3).iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
        let u = vals(a, 4);
        let w: Vec<f32> = vals(a, 5).iter().map(|d| -(d.exp())).collect();
        let mut want = vec![0f64; t * a];
        for i in 0..t {
            for ch in 0..a {
                let (mut num, mut den) = (0f64, 0f64);
                for j in 0..i {
                    let wt = ((i - 1 - j) as f64 * w[ch] as f64 + k[j * a + ch] as f64).exp();
                    num += wt * v[j * a + ch] as f64;
                    den += wt;
                }
                let cur = (u[ch] as f64 + k[i * a + ch] as f64).exp();
                num += cur * v[i * a + ch] as f64;
                den += cur;
                want[i * a + ch] = r[i * a + ch] as f64 * num / den;
            }
        }
        let mut state = vec![0f32; 3 * a];
        let mut out = vec![0f32; t * a];
        ref_wkv(&k, &v, &r, Src::F32(&u), Src::F32(&w), &mut state, &mut out, t, a);
        for (o, w) in out.iter().zip(&want) {
            assert!((*o as f64 - w).abs() < 1e-5 * w.abs().max(1.0), "{o} vs {w}");
        }
        let mut s1 = vec![0f32; 3 * a];
        let mut o1 = vec![0f32; t * a];
        for i in 0..t {
            let rg = i * a..(i + 1) * a;
            ref_wkv(
                &k[rg.clone()],
                &v[rg.clone()],
                &r[rg.clone()],
                Src::F32(&u),
                Src::F32(&w),
                &mut s1,
                &mut o1[rg],
                1,
                a,
            );
        }
        assert_eq!(o1, out);
        assert_eq!(s1, state);
    }

    #[test]
    fn huge_keys_stay_finite() {
        let a = 2;
        let k = [80.0, -80.0, 85.0, 90.0];
        let v = [1.0, 2.0, 3.0, 4.0];
        let r = [1.0; 4];
        let mut state = vec![0f32; 3 * a];
        let mut out = [0f32; 4];
        ref_wkv(&k, &v, &r, Src::F32(&[50.0, 50.0]), Src::F32(&[-0.1, -5.0]), &mut state, &mut out, 2, a);
        assert!(out.iter().chain(&state).all(|x| x.is_finite()), "{out:?} {state:?}");
    }
}
