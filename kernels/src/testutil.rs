//! Test helpers shared by the kernel modules' tests: sizes, data, f64 references,
//! tolerance checks, and the "never panics except on a debug_assert" harness.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use half::f16;
use proptest::prelude::*;

use crate::Activation;

/// Sizes every shape dimension is drawn from, besides a random range: empty, one, around
/// the 4- and 8-lane boundaries of the future SIMD kernels, and past 16.
pub const EDGE_SIZES: [usize; 10] = [0, 1, 3, 4, 5, 7, 8, 9, 16, 17];

/// Proptest settings: `cases` cases, unless `PROPTEST_CASES` is set (for a deeper run);
/// one under Miri.
pub fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if cfg!(miri) {
        // Miri interprets every step (~1000x slower): one case still walks the code
        // paths for undefined behaviour; failure files would need file-system access.
        config.cases = 1;
        config.failure_persistence = None;
    }
    config
}

/// A dimension: an edge size, or anything in `0..=max`.
pub fn dim(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![proptest::sample::select(&EDGE_SIZES[..]), 0..=max]
}

/// Deterministic uniform values in `[lo, hi)` (splitmix64), so proptest only has to
/// generate and shrink shapes and a seed.
pub fn values(seed: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut v = vec![0.0; len];
    crate::conformance_core::fill(seed, &mut v, lo, hi);
    v
}

/// `v` rounded to f16, and the same values widened back to f32 (what an f16 kernel sees).
pub fn to_f16(v: &[f32]) -> (Vec<f16>, Vec<f32>) {
    let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
    let w = h.iter().map(|x| x.to_f32()).collect();
    (h, w)
}

/// The closed-form activation, in f64.
pub fn act_f64(act: Activation, x: f64) -> f64 {
    use std::f64::consts::{FRAC_1_SQRT_2, PI};
    match act {
        Activation::None => x,
        Activation::GeluErf => 0.5 * x * (1.0 + libm::erf(x * FRAC_1_SQRT_2)),
        Activation::GeluTanh => 0.5 * x * (1.0 + ((2.0 / PI).sqrt() * (x + 0.044715 * x * x * x)).tanh()),
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.max(0.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::ReluSquared => x.max(0.0) * x.max(0.0),
        Activation::Softplus => {
            if x > 20.0 {
                x
            } else {
                x.exp().ln_1p()
            }
        }
    }
}

pub fn activation() -> impl Strategy<Value = Activation> {
    proptest::sample::select(&ALL_ACTIVATIONS[..])
}

pub const ALL_ACTIVATIONS: [Activation; 9] = [
    Activation::None,
    Activation::GeluErf,
    Activation::GeluTanh,
    Activation::Silu,
    Activation::Tanh,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::ReluSquared,
    Activation::Softplus,
];

/// Asserts `|got[i] - want[i]| <= tol * (1 + scale[i])` for every `i`, and equal lengths.
/// `scale[i]` is the magnitude the error is relative to (e.g. `Σ|x_k w_k|` for a dot
/// product, `|want[i]|` otherwise).
pub fn assert_close(what: &str, got: &[f32], want: &[f64], scale: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert_eq!(scale.len(), want.len(), "{what}: scale length");
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(err <= tol * (1.0 + s), "{what}[{i}]: got {g}, want {w}, |err| {err:e} > {tol:e} * (1 + {s})");
    }
}

/// [`assert_close`] with the magnitude of the expected value as scale.
pub fn assert_close_rel(what: &str, got: &[f32], want: &[f64], tol: f64) {
    let scale: Vec<f64> = want.iter().map(|w| w.abs()).collect();
    assert_close(what, got, want, &scale, tol);
}

thread_local! {
    /// Set while a wrong-lengths test runs a kernel on this thread.
    static WRONG_LENGTHS: Cell<bool> = const { Cell::new(false) };
}

/// Whether `debug_assert_shape!` is switched off on this thread (see [`assert_no_oob`]).
pub fn shape_checks_off() -> bool {
    WRONG_LENGTHS.with(Cell::get)
}

/// Runs a kernel handed inconsistent lengths or absurd shapes, with its shape
/// `debug_assert`s switched off, i.e. the code a release build runs. It may give any
/// answer, but must not panic: no out-of-bounds index, no arithmetic overflow, no zero
/// chunk size. (Loops must also be bounded by the slices, or the test hangs.)
pub fn assert_no_oob(f: impl FnOnce()) {
    if let Err(msg) = check_no_oob(f) {
        panic!("kernel panicked on wrong lengths: {msg}");
    }
}

/// `Err(panic message)` when `f` panics; the panic is caught without printing it.
fn check_no_oob(f: impl FnOnce()) -> Result<(), String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !shape_checks_off() {
                default(info);
            }
        }));
    });
    WRONG_LENGTHS.with(|q| q.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    WRONG_LENGTHS.with(|q| q.set(false));
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "<non-string panic>".to_owned())
    })
}

/// A length or shape parameter for the wrong-lengths tests: small, or absurdly large (to
/// catch unchecked `*` and `+` on shapes).
pub fn any_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..=40,
        1 => Just(usize::MAX),
        1 => Just(usize::MAX / 2 + 1),
        1 => Just(1usize << 33),
    ]
}

/// Lengths of slices for the wrong-lengths tests (never huge: they are allocated).
pub fn slice_len() -> impl Strategy<Value = usize> {
    0usize..=64
}

#[test]
fn no_oob_harness_catches_panics_but_not_shape_checks() {
    let index = check_no_oob(|| {
        let v = std::hint::black_box(vec![0.0f32; 3]);
        let _ = v[std::hint::black_box(5)];
    });
    assert!(index.is_err_and(|m| m.contains("out of bounds")));
    if cfg!(debug_assertions) {
        let overflow = check_no_oob(|| {
            let _ = std::hint::black_box(usize::MAX) * std::hint::black_box(2);
        });
        assert!(overflow.is_err_and(|m| m.contains("overflow")));
    }
    let chunk = check_no_oob(|| {
        let _ = std::hint::black_box(&[1.0f32][..]).chunks_exact(std::hint::black_box(0));
    });
    assert!(chunk.is_err());
    // Shape checks are off inside, and back on after.
    assert_eq!(check_no_oob(|| crate::src::debug_assert_shape!(std::hint::black_box(false))), Ok(()));
    assert!(!shape_checks_off());
}
