//! Pointwise activations (as named in Hugging Face `transformers` configs' `hidden_act`)
//! and the gated linear unit of Llama-style MLPs.

use crate::math::{erff, expf, log1pf, tanhf};
use crate::src::{debug_assert_shape, debug_assert_shape_eq};

/// A pointwise activation. The discriminant is the stable code stored in model files.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Identity.
    None = 0,
    /// `transformers` "gelu": exact, via erf.
    GeluErf = 1,
    /// `transformers` "gelu_new" / "gelu_pytorch_tanh": the tanh approximation.
    GeluTanh = 2,
    /// "silu" / "swish": x * sigmoid(x).
    Silu = 3,
    /// tanh(x).
    Tanh = 4,
    /// max(x, 0).
    Relu = 5,
    /// 1 / (1 + exp(-x)) (RWKV receptance).
    Sigmoid = 6,
    /// max(x, 0)^2 (RWKV channel mix).
    ReluSquared = 7,
    /// log(1 + exp(x)), PyTorch's threshold 20 (Mamba's step size).
    Softplus = 8,
}

impl Activation {
    /// The activation with this stable code, or `None` for an unknown code.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Activation::None,
            1 => Activation::GeluErf,
            2 => Activation::GeluTanh,
            3 => Activation::Silu,
            4 => Activation::Tanh,
            5 => Activation::Relu,
            6 => Activation::Sigmoid,
            7 => Activation::ReluSquared,
            8 => Activation::Softplus,
            _ => return None,
        })
    }

    /// The stable code stored in model files.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The activation of one value. NaN in gives NaN out for every variant.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::GeluErf => gelu_erf(x),
            Activation::GeluTanh => gelu_tanh(x),
            Activation::Silu => silu(x),
            Activation::Tanh => tanhf(x),
            Activation::Relu => relu(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::ReluSquared => {
                let r = relu(x);
                r * r
            }
            Activation::Softplus => {
                if cfg!(feature = "ssm") {
                    softplus(x)
                } else {
                    f32::NAN
                }
            }
        }
    }
}

/// [`ref_activation_inplace`] for the activations the vector kernels leave scalar
/// (identity, ReLU, ReLU^2, softplus; the others are left as they are), without the
/// reference's match, which would link libm's erf and tanh for nothing.
#[cfg(feature = "simd")]
#[inline(never)]
pub(crate) fn simple_inplace(x: &mut [f32], act: Activation) {
    let f = match act {
        Activation::Relu => relu,
        Activation::ReluSquared => |v| relu(v) * relu(v),
        Activation::Softplus if cfg!(feature = "ssm") => softplus,
        Activation::Softplus => |_| f32::NAN,
        _ => return,
    };
    x.iter_mut().for_each(|v| *v = f(*v));
}

/// sqrt(2 / pi), the constant of the tanh GELU approximation.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// Exact GELU, `0.5 * x * (1 + erf(x / sqrt(2)))`: `transformers` "gelu" (as PyTorch,
/// which evaluates this same expression in f32).
#[inline]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erff(x * core::f32::consts::FRAC_1_SQRT_2))
}

/// Tanh-approximated GELU, `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`:
/// `transformers` "gelu_new" and "gelu_pytorch_tanh".
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    let inner = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    0.5 * x * (1.0 + tanhf(inner))
}

/// SiLU (swish), `x * sigmoid(x)`. The exponential is only ever taken of `-|x|`, so it
/// cannot overflow: `silu(100) = 100`, `silu(-100) ≈ -3.7e-42`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// 1 / (1 + exp(-x)), without overflow for large |x|.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    let e = expf(-x.abs()); // in (0, 1]
    if x >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) }
}

/// Softplus with PyTorch's defaults (beta = 1, threshold = 20): `x` when `x > 20`, else
/// `log1p(exp(x))`. (Used by Mamba for the step size.)
#[inline]
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 { x } else { log1pf(expf(x)) }
}

/// max(x, 0); NaN stays NaN, as `torch.relu`.
#[inline]
fn relu(x: f32) -> f32 {
    if x < 0.0 { 0.0 } else { x }
}

/// `x[i] = act(x[i])` for every element. x: any shape.
pub fn ref_activation_inplace(x: &mut [f32], act: Activation) {
    // One match per call: each arm is its own monomorphised loop.
    fn map(x: &mut [f32], f: impl Fn(f32) -> f32) {
        x.iter_mut().for_each(|v| *v = f(*v));
    }
    match act {
        Activation::None => {}
        Activation::GeluErf => map(x, gelu_erf),
        Activation::GeluTanh => map(x, gelu_tanh),
        Activation::Silu => map(x, silu),
        Activation::Tanh => map(x, tanhf),
        Activation::Relu => map(x, relu),
        Activation::Sigmoid | Activation::ReluSquared | Activation::Softplus => map(x, |v| act.apply(v)),
    }
}

/// [`ref_activation_inplace`] with the active kernel table's entry (polynomial exp / erf
/// where a plug has one). Same contract.
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn activation_inplace(x: &mut [f32], act: Activation) {
    (crate::table::active().activation)(x, act)
}

/// Gated linear unit (Llama SwiGLU with `act = Silu`, GeGLU with a GELU).
/// ```text
/// x: [rows, 2*n], each row laid out as [gate: n | up: n]; out: [rows, n]
/// out[r, i] = act(x[r, i]) * x[r, n + i]
/// ```
#[inline(never)] // an op's entry: compiled here at the kernels' opt-level, not inlined into the runtime's
pub fn ref_glu(x: &[f32], out: &mut [f32], n: usize, act: Activation) {
    debug_assert_shape_eq!(Some(x.len()), out.len().checked_mul(2), "x: [rows, 2*n]; out: [rows, n]");
    debug_assert_shape!(n == 0 || out.len().is_multiple_of(n));
    if n == 0 {
        return;
    }
    let row_len = n.saturating_mul(2);
    for (x_row, out_row) in x.chunks_exact(row_len).zip(out.chunks_exact_mut(n)) {
        let (gate, up) = x_row.split_at(n); // gate, up: [n]
        out_row.copy_from_slice(gate);
        ref_activation_inplace(out_row, act);
        out_row.iter_mut().zip(up).for_each(|(o, u)| *o *= u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{
        ALL_ACTIVATIONS, act_f64, activation, any_len, assert_close_rel, assert_no_oob, dim, slice_len, values,
    };
    use proptest::prelude::*;

    /// Activations against their closed forms in f64 (f32 evaluation error only).
    const TOL_ACT: f64 = 2e-6;
    /// `ref_glu`: one activation and one product.
    const TOL_GLU: f64 = 4e-6;

    #[test]
    fn codes_round_trip() {
        for (code, act) in ALL_ACTIVATIONS.iter().enumerate() {
            let code = code as u32;
            assert_eq!(act.code(), code);
            assert_eq!(Activation::from_code(code), Some(*act));
        }
        assert_eq!(Activation::from_code(9), None);
        assert_eq!(Activation::from_code(u32::MAX), None);
    }

    #[test]
    fn closed_forms_on_a_grid() {
        for act in ALL_ACTIVATIONS {
            // -12 ..= 12 in steps of 1/64, plus the extremes.
            // Under Miri (which checks for undefined behaviour, not accuracy) every 61st.
            let xs: Vec<f32> = (-768..=768)
                .step_by(if cfg!(miri) { 61 } else { 1 })
                .map(|i| i as f32 / 64.0)
                .chain([-80.0, -30.0, 30.0, 80.0])
                .collect();
            let got: Vec<f32> = xs.iter().map(|&x| act.apply(x)).collect();
            let want: Vec<f64> = xs.iter().map(|&x| act_f64(act, f64::from(x))).collect();
            assert_close_rel(&format!("{act:?}"), &got, &want, TOL_ACT);
        }
    }

    #[test]
    fn named_functions_are_the_variants() {
        for &x in &[-3.0f32, -0.5, 0.0, 0.7, 2.0] {
            assert_eq!(gelu_erf(x), Activation::GeluErf.apply(x));
            assert_eq!(gelu_tanh(x), Activation::GeluTanh.apply(x));
            assert_eq!(silu(x), Activation::Silu.apply(x));
        }
        // The two GELUs differ (by up to ~5e-4): make sure neither is the other.
        assert!((gelu_erf(-1.5) - gelu_tanh(-1.5)).abs() > 1e-4);
    }

    #[test]
    fn known_values() {
        assert_eq!(Activation::None.apply(-2.5), -2.5);
        assert_eq!(Activation::Relu.apply(-2.5), 0.0);
        assert_eq!(Activation::Relu.apply(2.5), 2.5);
        // torch.nn.functional.gelu(torch.tensor(1.0)) = 0.8413447
        assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
        // gelu(..., approximate="tanh")(1.0) = 0.8411920
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-6);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        for act in ALL_ACTIVATIONS {
            assert!(act.apply(f32::NAN).is_nan(), "{act:?}(NaN)");
        }
    }

    #[test]
    fn silu_is_finite_at_large_magnitude() {
        assert_eq!(silu(100.0), 100.0);
        let s = silu(-100.0);
        assert!(s.is_finite() && s <= 0.0 && s > -1e-40, "silu(-100) = {s}");
        assert_eq!(silu(1e30), 1e30);
        assert_eq!(silu(-1e30), -0.0);
    }

    #[test]
    fn softplus_threshold() {
        // Above 20: the identity, exactly.
        for x in [20.001f32, 25.0, 100.0, 1e30] {
            assert_eq!(softplus(x), x);
        }
        // At and below 20: log1p(exp(x)), which differs from x visibly at 10.
        assert!((softplus(10.0) - 10.000_045).abs() < 1e-5);
        assert!(softplus(10.0) != 10.0);
        assert!((softplus(0.0) - core::f32::consts::LN_2).abs() < 1e-7);
        let tiny = softplus(-30.0);
        assert!(tiny > 0.0 && (f64::from(tiny) - (-30.0f64).exp()).abs() < 1e-18);
        for x in [-20.0f32, -3.0, -0.1, 0.4, 5.0, 19.5, 20.0] {
            let want = f64::from(x).exp().ln_1p();
            assert!((f64::from(softplus(x)) - want).abs() <= TOL_ACT * (1.0 + want.abs()));
        }
    }

    #[test]
    fn glu_layout() {
        // x: [2, 2*3]: row r = [gate0 gate1 gate2 | up0 up1 up2]
        let x = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0, -1.0, 0.5, 4.0, 2.0, 3.0, 5.0];
        let mut out = [0.0f32; 6];
        ref_glu(&x, &mut out, 3, Activation::None);
        assert_eq!(out, [10.0, 40.0, 90.0, -2.0, 1.5, 20.0]);
        ref_glu(&x, &mut out, 3, Activation::Relu);
        assert_eq!(out, [10.0, 40.0, 90.0, 0.0, 1.5, 20.0]);
        ref_glu(&x, &mut out, 3, Activation::Silu);
        assert_eq!(out[3], silu(-1.0) * 2.0);
        assert_eq!(out[2], silu(3.0) * 30.0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "x: [rows, 2*n]; out: [rows, n]")]
    fn glu_short_out_trips_debug_assert() {
        let mut out = [0.0f32; 2];
        ref_glu(&[1.0; 6], &mut out, 3, Activation::Silu);
    }

    proptest! {
        #![proptest_config(crate::testutil::config(128))]

        #[test]
        fn inplace_matches_apply(len in dim(40), act in activation(), seed: u64) {
            let x = values(seed, len, -8.0, 8.0);
            let mut y = x.clone();
            ref_activation_inplace(&mut y, act);
            for (a, b) in x.iter().zip(&y) {
                prop_assert_eq!(act.apply(*a).to_bits(), b.to_bits());
            }
        }

        #[test]
        fn glu_matches_f64(rows in dim(6), n in dim(20), act in activation(), seed: u64) {
            let x = values(seed, rows * 2 * n, -4.0, 4.0);
            let mut out = vec![f32::NAN; rows * n];
            ref_glu(&x, &mut out, n, act);
            let mut want = Vec::new();
            for r in 0..rows {
                for i in 0..n {
                    let gate = f64::from(x[r * 2 * n + i]);
                    let up = f64::from(x[r * 2 * n + n + i]);
                    want.push(act_f64(act, gate) * up);
                }
            }
            assert_close_rel("glu", &out, &want, TOL_GLU);
        }

        #[test]
        fn glu_wrong_lengths_never_index_out_of_bounds(
            x_len in slice_len(), out_len in slice_len(), n in any_len(), act in activation(),
        ) {
            let x = vec![0.5f32; x_len];
            let mut out = vec![0.0f32; out_len];
            assert_no_oob(|| ref_glu(&x, &mut out, n, act));
        }
    }
}
