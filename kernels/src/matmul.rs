//! Linear layers: `x @ w^T + bias`, with the activation and residual add fused in.

use crate::Src;
use crate::activation::{Activation, ref_activation_inplace};
use crate::src::{Element, debug_assert_shape, debug_assert_shape_eq};

/// A linear layer with its activation and residual add:
/// ```text
/// out[m, n] = act(Σ_k x[m, k] * w[n, k] + bias[n]) + residual[m, n]
/// x: [m, k]; w: [n, k] row-major (PyTorch nn.Linear.weight layout), f16 or f32
/// bias: [n]; residual: [m, n]; out: [m, n]
/// ```
/// With `k == 0`, out = act(bias) + residual. Accumulates in f32, one output at a time,
/// k in order.
#[allow(clippy::too_many_arguments)] // the shape is part of the contract
pub fn ref_matmul(
    x: &[f32],
    w: Src<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    debug_assert_shape_eq!(Some(x.len()), m.checked_mul(k), "x: [m, k]");
    debug_assert_shape_eq!(Some(w.len()), n.checked_mul(k), "w: [n, k]");
    debug_assert_shape_eq!(Some(out.len()), m.checked_mul(n), "out: [m, n]");
    debug_assert_shape!(bias.is_none_or(|b| b.len() == n));
    debug_assert_shape!(residual.is_none_or(|r| r.len() == out.len()));
    ref_matmul_strided(x, k, w, bias, residual, act, out, m, k, n)
}

/// The linear layer with the fastest available kernel: the SIMD path when it runs on this
/// CPU and the shapes are consistent, else [`ref_matmul`]. Same contract as `ref_matmul`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    x: &[f32],
    w: Src<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    matmul_strided(x, k, w, bias, residual, act, out, m, k, n)
}

/// [`matmul`] over a column block of x (see [`ref_matmul_strided`]).
#[allow(clippy::too_many_arguments)]
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn matmul_strided(
    x: &[f32],
    x_stride: usize,
    w: Src<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    {
        // Table entries index directly: they run only when every length is consistent.
        // The Arm entries also take k = 0 (out = act(bias) + residual); on the host the
        // reference does.
        let fits = m > 0
            && (k > 0 || crate::table::BOARD)
            && x_stride >= k
            && (m - 1).checked_mul(x_stride).and_then(|r| r.checked_add(k)).is_some_and(|end| x.len() >= end)
            && n.checked_mul(k) == Some(w.len())
            && m.checked_mul(n) == Some(out.len())
            && bias.is_none_or(|b| b.len() == n)
            && residual.is_none_or(|r| r.len() == out.len());
        if fits {
            return (crate::table::active().matmul)(x, x_stride, w, bias, residual, act, out, m, k, n);
        }
    }
    crate::src::mismatch!(out, ref_matmul_strided(x, x_stride, w, bias, residual, act, out, m, k, n))
}

/// [`ref_matmul`] reading row `i` of x at `x[i * x_stride ..][..k]`: a column block of a
/// wider tensor (e.g. one of RWKV's token-shift mixes). `x_stride >= k`.
#[allow(clippy::too_many_arguments)]
pub fn ref_matmul_strided(
    x: &[f32],
    x_stride: usize,
    w: Src<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    debug_assert_shape!(
        m == 0
            || (x_stride >= k
                && (m - 1).checked_mul(x_stride).and_then(|r| r.checked_add(k)).is_some_and(|end| x.len() >= end))
    );
    match w {
        Src::F32(w) => ref_generic(x, x_stride, w, bias, residual, act, out, m, k, n),
        Src::F16(w) => ref_generic(x, x_stride, w, bias, residual, act, out, m, k, n),
    }
}

/// [`ref_matmul`], monomorphised for the weight element type.
#[allow(clippy::too_many_arguments)]
fn ref_generic<W: Element>(
    x: &[f32], // [m, k], rows x_stride apart
    x_stride: usize,
    w: &[W],                  // [n, k]
    bias: Option<Src<'_>>,    // [n]
    residual: Option<&[f32]>, // [m, n]
    act: Activation,
    out: &mut [f32], // [m, n]
    m: usize,
    k: usize,
    n: usize,
) {
    if n == 0 {
        return;
    }
    for (i, out_row) in out.chunks_exact_mut(n).take(m).enumerate() {
        // out_row: [n] = bias
        out_row.fill(0.0);
        if let Some(bias) = bias {
            bias.copy_to(out_row);
        }
        // out_row[j] += x[i, :] . w[j, :]
        if k > 0 {
            let x_row = i.checked_mul(x_stride).and_then(|at| x.get(at..)).and_then(|r| r.get(..k)).unwrap_or(&[]); // [k]
            for (o, w_row) in out_row.iter_mut().zip(w.chunks_exact(k)) {
                *o += dot(x_row, w_row);
            }
        }
        ref_activation_inplace(out_row, act);
        if let Some(residual) = residual {
            let res_row = row(residual, i, n); // [n]
            out_row.iter_mut().zip(res_row).for_each(|(o, r)| *o += r);
        }
    }
}

/// Σ x[i] * w[i] in f32, in order.
#[inline]
fn dot<W: Element>(x: &[f32], w: &[W]) -> f32 {
    x.iter().zip(w).fold(0.0, |acc, (x, w)| acc + x * w.to_f32())
}

/// Row `i` of a row-major `[_, len]` buffer; empty when it is not all there.
#[inline]
fn row(buf: &[f32], i: usize, len: usize) -> &[f32] {
    i.checked_mul(len).and_then(|start| buf.get(start..start.checked_add(len)?)).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{act_f64, activation, any_len, assert_close, assert_no_oob, dim, slice_len, to_f16, values};
    use half::f16;
    use proptest::prelude::*;

    /// f32 accumulation of k <= ~40 products, relative to Σ|x w| + |bias| + |residual|.
    const TOL_MATMUL: f64 = 1e-5;

    /// f64 triple loop: (out, magnitude the rounding error scales with), each [m, n].
    #[allow(clippy::too_many_arguments)]
    fn matmul_f64(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        act: Activation,
        m: usize,
        k: usize,
        n: usize,
    ) -> (Vec<f64>, Vec<f64>) {
        let mut out = vec![0.0; m * n];
        let mut scale = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = bias.map_or(0.0, |b| f64::from(b[j]));
                let mut mag = acc.abs();
                for kk in 0..k {
                    let p = f64::from(x[i * k + kk]) * f64::from(w[j * k + kk]);
                    acc += p;
                    mag += p.abs();
                }
                let mut y = act_f64(act, acc);
                if let Some(r) = residual {
                    y += f64::from(r[i * n + j]);
                    mag += f64::from(r[i * n + j]).abs();
                }
                out[i * n + j] = y;
                scale[i * n + j] = mag;
            }
        }
        (out, scale)
    }

    #[test]
    fn known_2x3x2() {
        // x: [2, 3]; w: [2, 3]; out[i, j] = x[i, :] . w[j, :] + bias[j]
        let x = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
        let w = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut out = [0.0f32; 4];
        let bias = [0.5f32, -6.5];
        ref_matmul(&x, Src::F32(&w), Some(Src::F32(&bias)), None, Activation::None, &mut out, 2, 3, 2);
        assert_eq!(out, [1.5, -0.5, -0.5, -6.5]);
        // Relu happens before the residual add.
        let residual = [10.0f32, 20.0, 30.0, 40.0];
        ref_matmul(&x, Src::F32(&w), Some(Src::F32(&bias)), Some(&residual), Activation::Relu, &mut out, 2, 3, 2);
        assert_eq!(out, [11.5, 20.0, 30.0, 40.0]);
    }

    #[test]
    fn k_zero_is_act_bias_plus_residual() {
        let bias = [f16::from_f32(-1.0), f16::from_f32(2.0)];
        let residual = [1.0f32, 1.0, 3.0, 3.0];
        let mut out = [f32::NAN; 4];
        ref_matmul(&[], Src::F32(&[]), Some(Src::F16(&bias)), Some(&residual), Activation::Relu, &mut out, 2, 0, 2);
        assert_eq!(out, [1.0, 3.0, 3.0, 5.0]);
        ref_matmul(&[], Src::F32(&[]), None, None, Activation::None, &mut out, 2, 0, 2);
        assert_eq!(out, [0.0; 4]);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "x: [m, k]")]
    fn short_x_trips_debug_assert() {
        let mut out = [0.0f32; 4];
        ref_matmul(&[1.0; 5], Src::F32(&[0.0; 6]), None, None, Activation::None, &mut out, 2, 3, 2);
    }

    proptest! {
        #![proptest_config(crate::testutil::config(256))]

        #[test]
        fn matches_f64(
            m in dim(12), k in dim(40), n in dim(24), act in activation(),
            f16_w: bool, f16_bias: bool, has_bias: bool, has_residual: bool, seed: u64,
        ) {
            let x = values(seed, m * k, -2.0, 2.0);
            let w = values(seed ^ 1, n * k, -1.0, 1.0);
            let bias = values(seed ^ 2, n, -1.0, 1.0);
            let residual = values(seed ^ 3, m * n, -4.0, 4.0);
            // The reference sees exactly what the kernel sees: f16 weights rounded, widened.
            let (w16, w_rounded) = to_f16(&w);
            let (b16, b_rounded) = to_f16(&bias);
            let w_src = if f16_w { Src::F16(&w16) } else { Src::F32(&w) };
            let b_src = if f16_bias { Src::F16(&b16) } else { Src::F32(&bias) };
            let w_used = if f16_w { &w_rounded } else { &w };
            let b_used = if f16_bias { &b_rounded } else { &bias };

            let mut out = vec![f32::NAN; m * n];
            ref_matmul(
                &x, w_src, has_bias.then_some(b_src), has_residual.then_some(&residual[..]),
                act, &mut out, m, k, n,
            );
            let (want, scale) = matmul_f64(
                &x, w_used, has_bias.then_some(&b_used[..]), has_residual.then_some(&residual[..]),
                act, m, k, n,
            );
            assert_close("matmul", &out, &want, &scale, TOL_MATMUL);
        }

        #[test]
        fn wrong_lengths_never_index_out_of_bounds(
            x_len in slice_len(), w_len in slice_len(), b_len in slice_len(),
            r_len in slice_len(), out_len in slice_len(),
            m in any_len(), k in any_len(), n in any_len(), f16_w: bool,
        ) {
            let x = vec![1.0f32; x_len];
            let w = vec![0.5f32; w_len];
            let w16 = vec![f16::ONE; w_len];
            let bias = vec![1.0f32; b_len];
            let residual = vec![1.0f32; r_len];
            let mut out = vec![0.0f32; out_len];
            let w_src = if f16_w { Src::F16(&w16) } else { Src::F32(&w) };
            assert_no_oob(|| ref_matmul(
                &x, w_src, Some(Src::F32(&bias)), Some(&residual), Activation::GeluErf,
                &mut out, m, k, n,
            ));
        }
    }
}
