//! Mamba's sequence mixing (Gu & Dao 2023): a causal depthwise conv1d with a rolling
//! state, and the selective scan. Both stream: a call on `t` steps continues from the
//! state the previous call left, so prefill and one-step decode are the same kernel.
//! Loops run over channels innermost-but-one, so a SIMD version can vectorise them.

use crate::Src;
use crate::activation::{Activation, silu, softplus};
use crate::math::expf;
use crate::src::Element;

/// Causal depthwise conv1d over time, continuing from `state`.
/// ```text
/// x: [t, c]; weight: [c, k] (PyTorch's [c, 1, k]); bias: [c]; out: [t, c]
/// state: [k-1, c], the k-1 inputs before x (zeros after a reset)
/// window = [state; x]                       // [k-1+t, c]
/// out[i, ch] = act(bias[ch] + Σ_j weight[ch, j] * window[i + j, ch])
/// state <- the last k-1 rows of window
/// ```
#[allow(clippy::too_many_arguments)]
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn ref_causal_conv1d(
    x: &[f32],
    weight: Src<'_>,
    bias: Option<Src<'_>>,
    state: &mut [f32],
    out: &mut [f32],
    t: usize,
    c: usize,
    k: usize,
    act: Activation,
) {
    /// `o[ch] += w[ch * k] * win[ch]` (w starts at tap j of channel 0).
    fn tap<W: Element>(o: &mut [f32], w: &[W], k: usize, win: &[f32]) {
        for ((o, &v), w) in o.iter_mut().zip(win).zip(w.iter().step_by(k)) {
            *o += w.to_f32() * v;
        }
    }
    if c == 0 || k == 0 {
        return;
    }
    let hist = k - 1;
    // Row r of the window: state row r, then x row r - hist (empty past either end).
    let window = |r: usize| -> (usize, usize, bool) {
        if r < hist { (r * c, (r + 1) * c, true) } else { ((r - hist) * c, (r - hist + 1) * c, false) }
    };
    for (i, o) in out.chunks_exact_mut(c).take(t).enumerate() {
        match bias {
            Some(b) => b.copy_to(o),
            None => o.fill(0.0),
        }
        for j in 0..k {
            let (a, b, from_state) = window(i + j);
            let win = if from_state { state.get(a..b) } else { x.get(a..b) }.unwrap_or(&[]);
            match weight.slice(j, weight.len().saturating_sub(j)) {
                Src::F32(w) => tap(o, w, k, win),
                Src::F16(w) => tap(o, w, k, win),
            }
        }
        crate::activation::ref_activation_inplace(o, act);
    }
    // Shift: state row s <- window row t + s. Reading row t + s >= s before it is
    // overwritten (ascending s) keeps this in place.
    for s in 0..hist {
        let (a, b, from_state) = window(t + s);
        let dst = s * c..(s + 1) * c;
        if from_state {
            if b <= state.len() && dst.end <= state.len() {
                state.copy_within(a..b, dst.start);
            }
        } else if let (Some(src), Some(d)) = (x.get(a..b), state.get_mut(dst)) {
            d.copy_from_slice(src);
        }
    }
}

/// The selective scan with the fastest available kernel: the SIMD path (eight states at
/// a time) when it runs on this CPU, `n` is a multiple of eight and every length is
/// consistent, else [`ref_selective_scan`]. Same contract.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn selective_scan(
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
    {
        // Table entries index directly: they run only when every length is consistent.
        let te = t.checked_mul(e);
        let fits = n > 0
            && n.is_multiple_of(8)
            && te.is_some_and(|te| x.len() >= te && dt.len() >= te && z.len() >= te && out.len() >= te)
            && t.checked_mul(2 * n).is_some_and(|l| bc.len() >= l)
            && e.checked_mul(n + 1).is_some_and(|l| a_d.len() >= l)
            && e.checked_mul(n).is_some_and(|l| state.len() >= l);
        if fits {
            return (crate::table::active().selective_scan)(x, dt, bc, z, a_d, state, out, t, e, n);
        }
    }
    // Not `mismatch!`: a state size that is not a multiple of 8 is a real model's, which
    // the vector entries leave to the reference.
    ref_selective_scan(x, dt, bc, z, a_d, state, out, t, e, n)
}

/// The selective scan with its skip and gate, continuing from `state`.
/// ```text
/// x: [t, e] (after the conv); dt: [t, e] (before softplus); bc: [t, 2n] = [B | C];
/// z: [t, e] (the gate); a_d: [e, n + 1] = [A | D] with A = -exp(A_log);
/// state h: [e, n]; out: [t, e]
/// per step i, channel ch:  Δ = softplus(dt[i, ch])
///   h[ch, s] = exp(Δ * A[ch, s]) * h[ch, s] + Δ * B[i, s] * x[i, ch]
///   out[i, ch] = (Σ_s C[i, s] * h[ch, s] + D[ch] * x[i, ch]) * silu(z[i, ch])
/// ```
#[allow(clippy::too_many_arguments)]
pub fn ref_selective_scan(
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
    if e == 0 {
        return;
    }
    let get = |s: &[f32], i: usize| s.get(i).copied().unwrap_or(0.0);
    for (i, out_row) in out.chunks_exact_mut(e).take(t).enumerate() {
        let b = bc.get(i * 2 * n..i * 2 * n + n).unwrap_or(&[]);
        let c = bc.get(i * 2 * n + n..(i + 1) * 2 * n).unwrap_or(&[]);
        for (ch, o) in out_row.iter_mut().enumerate() {
            let xi = get(x, i * e + ch);
            let delta = softplus(get(dt, i * e + ch));
            let mut y = 0.0;
            for s in 0..n {
                if let Some(h) = state.get_mut(ch * n + s) {
                    let a = a_d.get(ch * (n + 1) + s);
                    *h = expf(delta * a) * *h + delta * get(b, s) * xi;
                    y += get(c, s) * *h;
                }
            }
            y += a_d.get(ch * (n + 1) + n) * xi;
            *o = y * silu(get(z, i * e + ch));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2000) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// f64 conv over the whole sequence with zero history.
    fn conv_f64(x: &[f32], w: &[f32], b: &[f32], t: usize, c: usize, k: usize) -> Vec<f64> {
        let mut out = vec![0f64; t * c];
        for i in 0..t {
            for ch in 0..c {
                let mut acc = b[ch] as f64;
                for j in 0..k {
                    let r = i as isize + j as isize - (k as isize - 1);
                    if r >= 0 {
                        acc += w[ch * k + j] as f64 * x[r as usize * c + ch] as f64;
                    }
                }
                out[i * c + ch] = acc;
            }
        }
        out
    }

    #[test]
    fn conv_streams_in_pieces_like_one_call() {
        for (t, c, k) in [(7, 5, 4), (9, 3, 3), (5, 4, 1), (3, 2, 5)] {
            let (x, w, b) = (vals(t * c, 1), vals(c * k, 2), vals(c, 3));
            let want = conv_f64(&x, &w, &b, t, c, k);
            // One call.
            let mut state = vec![0f32; (k - 1) * c];
            let mut out = vec![0f32; t * c];
            ref_causal_conv1d(&x, Src::F32(&w), Some(Src::F32(&b)), &mut state, &mut out, t, c, k, Activation::None);
            for (o, w) in out.iter().zip(&want) {
                assert!((*o as f64 - w).abs() < 1e-5, "t{t} c{c} k{k}");
            }
            // Step by step, then in pieces of 2: same outputs, same final state.
            for piece in [1, 2] {
                let mut s2 = vec![0f32; (k - 1) * c];
                let mut o2 = vec![0f32; t * c];
                for start in (0..t).step_by(piece) {
                    let n = piece.min(t - start);
                    ref_causal_conv1d(
                        &x[start * c..(start + n) * c],
                        Src::F32(&w),
                        Some(Src::F32(&b)),
                        &mut s2,
                        &mut o2[start * c..(start + n) * c],
                        n,
                        c,
                        k,
                        Activation::None,
                    );
                }
                assert_eq!(o2, out, "piece {piece}");
                assert_eq!(s2, state, "piece {piece}");
            }
            // The state holds the last k-1 inputs.
            if k > 1 && t >= k - 1 {
                assert_eq!(state[..], x[(t - (k - 1)) * c..]);
            }
        }
    }

    #[test]
    fn scan_matches_f64_and_streams() {
        let (t, e, n) = (6, 5, 3);
        let (x, dt, bc, z) = (vals(t * e, 4), vals(t * e, 5), vals(t * 2 * n, 6), vals(t * e, 7));
        let a_log = vals(e * n, 8);
        let mut a_d = vec![0f32; e * (n + 1)];
        for ch in 0..e {
            for s in 0..n {
                a_d[ch * (n + 1) + s] = -(a_log[ch * n + s].exp());
            }
            a_d[ch * (n + 1) + n] = 0.5 + ch as f32 * 0.1;
        }
        // f64 reference.
        let mut h = vec![0f64; e * n];
        let mut want = vec![0f64; t * e];
        for i in 0..t {
            for ch in 0..e {
                let d = dt[i * e + ch] as f64;
                let delta = if d > 20.0 { d } else { d.exp().ln_1p() };
                let xi = x[i * e + ch] as f64;
                let mut y = 0.0;
                for s in 0..n {
                    let a = a_d[ch * (n + 1) + s] as f64;
                    h[ch * n + s] = (delta * a).exp() * h[ch * n + s] + delta * bc[i * 2 * n + s] as f64 * xi;
                    y += bc[i * 2 * n + n + s] as f64 * h[ch * n + s];
                }
                y += a_d[ch * (n + 1) + n] as f64 * xi;
                let zi = z[i * e + ch] as f64;
                want[i * e + ch] = y * zi / (1.0 + (-zi).exp());
            }
        }
        let mut state = vec![0f32; e * n];
        let mut out = vec![0f32; t * e];
        ref_selective_scan(&x, &dt, &bc, &z, Src::F32(&a_d), &mut state, &mut out, t, e, n);
        for (o, w) in out.iter().zip(&want) {
            assert!((*o as f64 - w).abs() < 1e-5, "{o} vs {w}");
        }
        for (s, w) in state.iter().zip(&h) {
            assert!((*s as f64 - w).abs() < 1e-5);
        }
        // One step at a time gives the same.
        let mut s1 = vec![0f32; e * n];
        let mut o1 = vec![0f32; t * e];
        for i in 0..t {
            let r = i * e..(i + 1) * e;
            ref_selective_scan(
                &x[r.clone()],
                &dt[r.clone()],
                &bc[i * 2 * n..(i + 1) * 2 * n],
                &z[r.clone()],
                Src::F32(&a_d),
                &mut s1,
                &mut o1[r],
                1,
                e,
                n,
            );
        }
        assert_eq!(o1, out);
        assert_eq!(s1, state);
    }
}
