//! One conformance suite per op family, instantiated for every kernel table this build
//! has (in the manner of tract's `test_mmm_kernel_f32!`): each entry against the scalar
//! reference of [`Kernels::generic`], at the sizes where tiles and blocks break (0, 1,
//! tile - 1, tile, tile + 1, odd, past a panel) and on random shapes by proptest. The edge
//! cases and tolerances are `conformance_core`'s, which the kernel-test firmware also runs
//! on the emulated boards (`cargo xtask ktest`).
//!
//! A table this CPU cannot run (AVX-512 on an AVX2 machine) is skipped with a message.
//! The Cortex-M4F / M7 table is plain Rust and runs on every host; on the boards the
//! firmware checks its outputs against the host's (`cargo xtask qemu`), and the
//! kernel-test firmware runs the edge cases on each board (`cargo xtask ktest`).

use proptest::prelude::*;

use crate::activation::Activation;
use crate::attention::AttentionShape;
use crate::src::Src;
use crate::table::{self, Kernels};
// The one list of edge cases and tolerances, shared with the boards' kernel-test firmware.
use crate::conformance_core::{
    self as core_cases, TOL_ACTIVATION, TOL_ATTENTION, TOL_MATMUL, TOL_NORM, TOL_PATCH, TOL_ROPE, TOL_SCAN,
    attention_shape,
};
use crate::testutil::{activation, assert_close, config, to_f16, values};

/// The table named `name`, if this CPU runs it.
pub fn table(name: &str) -> Option<&'static Kernels> {
    let t = table::available().find(|t| t.name == name);
    if t.is_none() {
        eprintln!("conformance: no table {name:?} on this CPU, skipped");
    }
    t
}

/// `|got - want| <= tol * (1 + scale)` per element, the reference's output as `want`.
fn check(what: &str, got: &[f32], want: &[f32], scale: &[f64], tol: f64) {
    let want: Vec<f64> = want.iter().map(|&w| f64::from(w)).collect();
    assert_close(what, got, &want, scale, tol);
}

/// One matmul case on `t` against the reference.
#[allow(clippy::too_many_arguments)]
pub fn matmul_case(
    t: &Kernels,
    m: usize,
    k: usize,
    n: usize,
    f16_w: bool,
    has_bias: bool,
    has_residual: bool,
    act: Activation,
    seed: u64,
) {
    let xs = k + (seed % 3) as usize; // rows of x may be a column block of a wider tensor
    let x = values(seed, m * xs, -2.0, 2.0);
    let w = values(seed ^ 1, n * k, -1.0, 1.0);
    let (w16, w_used) = to_f16(&w);
    let bias = values(seed ^ 2, n, -1.0, 1.0);
    let residual = values(seed ^ 3, m * n, -4.0, 4.0);
    let w_src = if f16_w { Src::F16(&w16) } else { Src::F32(&w) };
    let b = has_bias.then_some(Src::F32(&bias));
    let r = has_residual.then_some(&residual[..]);
    let mut want = vec![f32::NAN; m * n];
    (Kernels::generic().matmul)(&x, xs, w_src, b, r, act, &mut want, m, k, n);
    let mut got = vec![f32::NAN; m * n];
    (t.matmul)(&x, xs, w_src, b, r, act, &mut got, m, k, n);
    let wv = if f16_w { &w_used } else { &w };
    let scale: Vec<f64> = (0..m * n)
        .map(|o| {
            let (i, j) = (o / n, o % n);
            let dot: f64 = (0..k).map(|kk| f64::from(x[i * xs + kk]).abs() * f64::from(wv[j * k + kk]).abs()).sum();
            dot + if has_bias { f64::from(bias[j]).abs() } else { 0.0 }
                + if has_residual { f64::from(residual[o]).abs() } else { 0.0 }
        })
        .collect();
    // An activation after the sum scales its rounding error by its slope (2|y| for ReluSquared).
    let scale: Vec<f64> = match act {
        Activation::None => scale,
        _ => scale.iter().zip(&want).map(|(s, w)| s * (1.0 + f64::from(*w).abs())).collect(),
    };
    let tol = if act == Activation::None { TOL_MATMUL } else { TOL_MATMUL + TOL_ACTIVATION };
    check(&format!("{}: matmul {m}x{k}x{n} f16 {f16_w} {act:?}", t.name), &got, &want, &scale, tol);
}

pub fn attention_case(t: &Kernels, s: &AttentionShape, masked: bool, seed: u64) {
    let width = s.heads * s.head_dim;
    let kvw = s.kv_heads * s.head_dim;
    let q = values(seed, s.q_rows.max(1) * s.q_stride.max(width), -1.0, 1.0);
    let k = values(seed ^ 1, s.kv_rows.max(1) * s.kv_stride.max(kvw), -1.0, 1.0);
    let v = values(seed ^ 2, s.kv_rows.max(1) * s.kv_stride.max(kvw), -3.0, 3.0);
    let mask: Vec<f32> = (0..s.kv_rows).map(|j| if (j as u64 ^ seed).is_multiple_of(3) { 0.0 } else { 1.0 }).collect();
    let m = masked.then_some(&mask[..]);
    let mut want = vec![f32::NAN; s.q_rows * width];
    (Kernels::generic().attention)(&q, &k, &v, m, &mut want, s);
    let mut got = vec![f32::NAN; s.q_rows * width];
    (t.attention)(&q, &k, &v, m, &mut got, s);
    let scale = vec![3.0; got.len()];
    check(&format!("{}: attention {s:?} masked {masked}", t.name), &got, &want, &scale, TOL_ATTENTION);
}

pub fn norm_case(t: &Kernels, rows: usize, dim: usize, f16_gamma: bool, has_beta: bool, seed: u64) {
    let x = values(seed, rows * dim, -3.0, 5.0);
    let g = values(seed ^ 1, dim, -2.0, 2.0);
    let (g16, _) = to_f16(&g);
    let beta = values(seed ^ 2, dim, -1.0, 1.0);
    let gs = if f16_gamma { Src::F16(&g16) } else { Src::F32(&g) };
    let b = has_beta.then_some(Src::F32(&beta));
    for rms in [false, true] {
        let mut want = vec![f32::NAN; x.len()];
        let mut got = vec![f32::NAN; x.len()];
        if rms {
            (Kernels::generic().rms_norm)(&x, gs, &mut want, dim, 1e-5);
            (t.rms_norm)(&x, gs, &mut got, dim, 1e-5);
        } else {
            (Kernels::generic().layer_norm)(&x, gs, b, &mut want, dim, 1e-5);
            (t.layer_norm)(&x, gs, b, &mut got, dim, 1e-5);
        }
        let scale: Vec<f64> = want.iter().map(|w| f64::from(*w).abs()).collect();
        check(&format!("{}: norm rms {rms} {rows}x{dim}", t.name), &got, &want, &scale, TOL_NORM);
    }
}

#[allow(clippy::too_many_arguments)]
pub fn patch_case(t: &Kernels, c: usize, h: usize, w: usize, p: usize, dim: usize, f16_w: bool, seed: u64) {
    let img = values(seed, c * h * w, -1.0, 1.0);
    let wt = values(seed ^ 1, dim * c * p * p, -1.0, 1.0);
    let (w16, _) = to_f16(&wt);
    let bias = values(seed ^ 2, dim, -1.0, 1.0);
    let ws = if f16_w { Src::F16(&w16) } else { Src::F32(&wt) };
    let n = (h / p) * (w / p) * dim;
    let mut want = vec![f32::NAN; n];
    let mut got = vec![f32::NAN; n];
    (Kernels::generic().patch_embed)(&img, ws, Some(Src::F32(&bias)), &mut want, c, h, w, p, dim);
    (t.patch_embed)(&img, ws, Some(Src::F32(&bias)), &mut got, c, h, w, p, dim);
    let scale = vec![(c * p * p) as f64; n];
    check(&format!("{}: patch {c}x{h}x{w} p{p} d{dim}", t.name), &got, &want, &scale, TOL_PATCH);
}

pub fn scan_case(t: &Kernels, steps: usize, e: usize, n: usize, seed: u64) {
    let x = values(seed, steps * e, -1.0, 1.0);
    let dt = values(seed ^ 1, steps * e, -3.0, 1.0);
    let bc = values(seed ^ 2, steps * 2 * n, -1.0, 1.0);
    let z = values(seed ^ 3, steps * e, -2.0, 2.0);
    let a_d: Vec<f32> = values(seed ^ 4, e * (n + 1), 0.1, 2.0)
        .iter()
        .enumerate()
        .map(|(i, v)| if i % (n + 1) == n { *v } else { -v })
        .collect();
    let state0 = values(seed ^ 5, e * n, -1.0, 1.0);
    let (mut s_want, mut s_got) = (state0.clone(), state0);
    let mut want = vec![f32::NAN; steps * e];
    let mut got = vec![f32::NAN; steps * e];
    (Kernels::generic().selective_scan)(&x, &dt, &bc, &z, Src::F32(&a_d), &mut s_want, &mut want, steps, e, n);
    (t.selective_scan)(&x, &dt, &bc, &z, Src::F32(&a_d), &mut s_got, &mut got, steps, e, n);
    let scale: Vec<f64> = want.iter().map(|w| f64::from(*w).abs()).collect();
    check(&format!("{}: scan {steps}x{e}x{n}", t.name), &got, &want, &scale, TOL_SCAN);
    let scale: Vec<f64> = s_want.iter().map(|w| f64::from(*w).abs()).collect();
    check(&format!("{}: scan state {steps}x{e}x{n}", t.name), &s_got, &s_want, &scale, TOL_SCAN);
}

pub fn activation_case(t: &Kernels, act: Activation, len: usize, seed: u64) {
    let mut x = values(seed, len, -12.0, 12.0);
    if len > 2 {
        x[0] = 0.0;
        x[1] = -100.0;
        x[2] = 100.0;
    }
    let scale: Vec<f64> = x.iter().map(|v| f64::from(*v).abs()).collect();
    let mut want = x.clone();
    (Kernels::generic().activation)(&mut want, act);
    (t.activation)(&mut x, act);
    check(&format!("{}: activation {act:?} len {len}", t.name), &x, &want, &scale, TOL_ACTIVATION);
}

#[allow(clippy::too_many_arguments)]
pub fn rope_case(
    t: &Kernels,
    rows: usize,
    heads: usize,
    head_dim: usize,
    pad: usize,
    pos0: usize,
    theta: f32,
    seed: u64,
) {
    let stride = heads * head_dim + pad;
    let x0 = values(seed, rows * stride, -2.0, 2.0);
    let inv: Vec<f32> = (0..head_dim / 2).map(|j| 1.0 / theta.powf(2.0 * j as f32 / head_dim as f32)).collect();
    let (mut want, mut got) = (x0.clone(), x0);
    (Kernels::generic().rope)(&mut want, rows, stride, heads, head_dim, &inv, pos0);
    (t.rope)(&mut got, rows, stride, heads, head_dim, &inv, pos0);
    let scale = vec![0.0; got.len()];
    check(&format!("{}: rope {rows}x{heads}x{head_dim} pos {pos0}", t.name), &got, &want, &scale, TOL_ROPE);
}

/// One quantized matmul case on `t` against the reference (`conformance_core`'s check).
pub fn matmul_q_case(t: &Kernels, c: &core_cases::MatmulQCase) {
    let mut f = vec![0.0f32; 6 * c.m * (c.k + 2) + 6 * c.n * c.k + 4 * c.m * c.n + c.n];
    let mut h = vec![half::f16::ZERO; 17 * c.n * c.k / crate::quant::QK];
    let o = c.run(t, &mut f, &mut h).expect("buffers sized for the case");
    assert!(o.ok, "{}: {c:?}: {o:?}", t.name);
}

pub fn proptest_config() -> ProptestConfig {
    config(48)
}

/// The suite for one table: `$name` is a module, `$table` the table's name. Entries are
/// called within their contract (the front functions' checks: m, k, n >= 1; `n % 8 == 0`
/// for the selective scan).
macro_rules! conformance_suite {
    ($name:ident, $table:expr) => {
        mod $name {
            use super::*;

            fn t() -> Option<&'static Kernels> {
                table($table)
            }

            #[test]
            fn matmul_edges() {
                let Some(t) = t() else { return };
                for c in core_cases::matmul_cases() {
                    matmul_case(t, c.m, c.k, c.n, c.f16_w, c.bias, c.residual, c.act, c.seed);
                }
            }

            #[test]
            fn matmul_q_edges() {
                let Some(t) = t() else { return };
                for c in core_cases::matmul_q_cases() {
                    matmul_q_case(t, &c);
                }
            }

            #[test]
            fn attention_edges() {
                let Some(t) = t() else { return };
                for c in core_cases::attention_cases() {
                    attention_case(t, &c.shape, c.masked, c.seed);
                }
            }

            #[test]
            fn norm_edges() {
                let Some(t) = t() else { return };
                // LayerNorm and RMSNorm of each shape.
                for c in core_cases::norm_cases(false) {
                    norm_case(t, c.rows, c.dim, c.f16_gamma, c.beta, c.seed);
                }
            }

            #[test]
            fn patch_edges() {
                let Some(t) = t() else { return };
                for c in core_cases::patch_cases() {
                    patch_case(t, c.c, c.h, c.w, c.p, c.dim, c.f16_w, c.seed);
                }
            }

            #[test]
            fn scan_edges() {
                let Some(t) = t() else { return };
                for c in core_cases::scan_cases() {
                    scan_case(t, c.steps, c.e, c.n, c.seed);
                }
            }

            #[test]
            fn activation_edges() {
                let Some(t) = t() else { return };
                for c in core_cases::activation_cases() {
                    activation_case(t, c.act, c.len, c.seed);
                }
            }

            #[test]
            fn rope_edges() {
                let Some(t) = t() else { return };
                for c in core_cases::rope_cases() {
                    rope_case(t, c.rows, c.heads, c.head_dim, c.pad, c.pos0, c.theta, c.seed);
                }
            }

            proptest! {
                #![proptest_config(proptest_config())]

                #[test]
                fn matmul_random(
                    m in 1usize..20, k in 1usize..300, n in 1usize..40, f16_w: bool, has_bias: bool,
                    has_residual: bool, act in activation(), seed: u64,
                ) {
                    let Some(t) = t() else { return Ok(()) };
                    matmul_case(t, m, k, n, f16_w, has_bias, has_residual, act, seed);
                }

                #[test]
                fn matmul_q_random(
                    m in 1usize..20, blocks in 1usize..9, n in 1usize..40, int4: bool, bias: bool,
                    residual: bool, act in activation(), seed: u64,
                ) {
                    let Some(t) = t() else { return Ok(()) };
                    let k = blocks * crate::quant::QK;
                    matmul_q_case(t, &core_cases::MatmulQCase { m, k, n, int4, bias, residual, act, seed });
                }

                #[test]
                fn attention_random(
                    kv_heads in 1usize..4, group in 1usize..4, head_dim in 1usize..40, q_rows in 1usize..20,
                    extra in 0usize..40, causal: bool, masked: bool, pad in 0usize..3, seed: u64,
                ) {
                    let Some(t) = t() else { return Ok(()) };
                    let kv_rows = q_rows + extra;
                    let c = (kv_heads * group, kv_heads, head_dim, q_rows, kv_rows, causal, extra);
                    attention_case(t, &attention_shape(c, pad), masked, seed);
                }
            }
        }
    };
}

conformance_suite!(generic, "scalar reference");
#[cfg(feature = "simd")]
conformance_suite!(armv7em, "Armv7E-M FPU (Cortex-M4F / M7)");
#[cfg(all(feature = "simd", target_arch = "x86_64"))]
conformance_suite!(x86_avx2, "x86-64 AVX2 + FMA + F16C");
#[cfg(all(feature = "simd", target_arch = "x86_64"))]
conformance_suite!(x86_avx512, "x86-64 AVX2 + FMA + F16C + AVX-512F");
#[cfg(all(feature = "simd", not(target_arch = "x86_64")))]
conformance_suite!(portable, "core::simd, portable (8 lanes)");
