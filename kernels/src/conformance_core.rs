//! The conformance cases without `std` or `alloc`: the one list of edge-case shapes and
//! tolerances per op family, the inputs of each case (deterministic pseudo-random values
//! written into caller-provided buffers), and a run of one table's entry against the
//! scalar reference (`ref_*`) that returns the largest scaled error.
//!
//! The host suite (`conformance.rs`, proptest) takes its shapes and tolerances from here;
//! the kernel-test firmware (`firmware/ktest`, `cargo xtask ktest`) runs these cases on
//! the emulated boards, where the Cortex-M55 Helium table is the only one that runs.
//!
//! A case's error is `|got - want| / (1 + scale)` per element, `scale` the magnitude the
//! family's error is relative to (as in `conformance.rs`); it passes when that is at most
//! the family's tolerance everywhere (NaN never passes). A case whose inputs do not fit
//! the buffers it is given is skipped (reported as such), never truncated.

use half::f16;

use crate::activation::{Activation, ref_activation_inplace};
use crate::attention::{AttentionShape, ref_attention};
use crate::matmul::ref_matmul_strided;
use crate::norm::{ref_layer_norm, ref_rms_norm};
use crate::patch::ref_patch_embed;
use crate::quant::{BlockQ4, BlockQ8, QK, QWeights, ref_matmul_q};
use crate::rope::ref_rope_inplace;
use crate::scan::ref_selective_scan;
use crate::src::Src;
use crate::table::Kernels;

/// Matmul: f32 sums of up to a few hundred products, in another order than the reference;
/// relative to Σ|x w| + |bias| + |residual|.
pub const TOL_MATMUL: f64 = 2e-6;
/// Int8 (Q8_0) matmul: as [`TOL_MATMUL`], relative to Σ|x d q| + |bias| + |residual| (the
/// fast kernels sum per block in another order, or dequantize d * q, which is exact).
pub const TOL_MATMUL_Q8: f64 = 2e-6;
/// Int4 (Q4_1) matmul: relative to Σ|x| (|d q| + |m|) + |bias| + |residual| (the reference
/// adds d * Σ q x and m * Σ x, a fast kernel may dequantize d * q + m with one rounding).
pub const TOL_MATMUL_Q4: f64 = 4e-6;
/// Activations fused in the matmul (polynomial exp / erf): relative to 1 + |x|.
pub const TOL_ACTIVATION: f64 = 2e-6;
/// Attention: convex combinations of v rows, relative to 1 + max |v|.
pub const TOL_ATTENTION: f64 = 1e-5;
/// LayerNorm / RMSNorm: relative to 1 + |out|.
pub const TOL_NORM: f64 = 1e-5;
/// Patch embedding: as the matmul.
pub const TOL_PATCH: f64 = 2e-6;
/// Selective scan: relative to 1 + |out|, over up to 17 steps.
pub const TOL_SCAN: f64 = 1e-5;
/// RoPE with |x| <= 2: absolute.
pub const TOL_ROPE: f64 = 2e-6;

/// Every activation, in the order the cases cycle through them.
pub const ACTIVATIONS: [Activation; 9] = [
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

/// Sizes where tiles break: the Cortex-M4 tiles are 4 x 4 with 128-deep panels, the M55
/// ones 3 x 8 with 64-deep panels, the x86 ones 6 / 8 rows by 16 / 48 columns with
/// 128 / 192 / 256-deep panels.
pub const MATMUL_SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 7, 5),
    (1, 64, 33),
    (1, 300, 9),
    (3, 4, 4),
    (4, 4, 4),
    (5, 5, 5),
    (4, 127, 3),
    (4, 128, 4),
    (5, 129, 5),
    (6, 16, 16),
    (7, 17, 15),
    (8, 48, 48),
    (9, 49, 47),
    (17, 64, 192),
    (13, 257, 50),
];

/// Rows of x of the quantized matmul cases: decode, the M4's 4-row tiles and past them.
pub const MATMUL_Q_M: &[usize] = &[1, 2, 3, 4, 5, 17];
/// Inputs (multiples of [`QK`]): one block, two, three, five (past the M4's 128-deep panel).
pub const MATMUL_Q_K: &[usize] = &[QK, 2 * QK, 3 * QK, 4 * QK + QK];
/// Outputs: around the 4-column panels and 8-lane tiles.
pub const MATMUL_Q_N: &[usize] = &[1, 3, 4, 5, 8, 17];

/// (heads, kv_heads, head_dim, q_rows, kv_rows, causal, q_pos0)
pub const ATTENTION_SHAPES: &[(usize, usize, usize, usize, usize, bool, usize)] = &[
    (1, 1, 1, 1, 1, false, 0),
    (1, 1, 4, 1, 7, true, 6),
    (4, 4, 16, 17, 17, false, 0),
    (4, 2, 16, 9, 9, true, 0),
    (3, 1, 7, 5, 13, true, 8),
    (2, 2, 8, 1, 8, true, 7),
    (2, 2, 8, 1, 9, true, 8),
    (12, 12, 32, 3, 40, false, 0),
    (4, 2, 64, 49, 49, true, 0),
    (2, 1, 33, 20, 70, false, 0),
];

/// (rows, dim) of the LayerNorm / RMSNorm cases.
pub const NORM_SHAPES: &[(usize, usize)] = &[(1, 1), (1, 7), (3, 8), (2, 33), (17, 64), (4, 384)];

/// (channels, height, width, patch, dim). Patches of 4 to 768 inputs: several per
/// gathered block, exactly one, one in several blocks (300 = 256 + 44, 768 = 3 x 256);
/// one token (decode path).
pub const PATCH_SHAPES: &[(usize, usize, usize, usize, usize)] = &[
    (1, 8, 8, 2, 64),
    (3, 9, 10, 3, 5),
    (2, 16, 16, 8, 17),
    (1, 4, 4, 4, 1),
    (2, 24, 24, 8, 5),
    (1, 48, 16, 16, 3),
    (3, 20, 30, 10, 6),
    (3, 32, 32, 16, 8),
];

/// (steps, channels, state size) of the selective-scan cases (`n % 8 == 0`, the front
/// function's contract).
pub const SCAN_SHAPES: &[(usize, usize, usize)] = &[(1, 1, 8), (3, 5, 16), (17, 9, 8), (2, 3, 24)];

/// Lengths of the activation cases: empty, one, around 4 and 8 lanes, odd, long.
pub const ACTIVATION_LENS: &[usize] = &[0, 1, 7, 8, 9, 33, 1000];

/// The RoPE cases.
pub const ROPE_CASES: &[RopeCase] = &[
    RopeCase { rows: 5, heads: 3, head_dim: 8, pad: 4, pos0: 0, theta: 10_000.0, seed: 1 },
    RopeCase { rows: 1, heads: 2, head_dim: 64, pad: 0, pos0: 2047, theta: 10_000.0, seed: 2 },
    RopeCase { rows: 3, heads: 4, head_dim: 70, pad: 2, pos0: 100, theta: 500_000.0, seed: 3 },
    RopeCase { rows: 2, heads: 1, head_dim: 2, pad: 0, pos0: 30_000, theta: 10_000.0, seed: 4 },
];

/// An [`ATTENTION_SHAPES`] entry as a shape, rows `pad` elements wider than the heads.
pub fn attention_shape(c: (usize, usize, usize, usize, usize, bool, usize), pad: usize) -> AttentionShape {
    let (heads, kv_heads, head_dim, q_rows, kv_rows, causal, q_pos0) = c;
    AttentionShape {
        heads,
        kv_heads,
        head_dim,
        q_rows,
        kv_rows,
        q_stride: heads * head_dim + pad,
        kv_stride: kv_heads * head_dim + pad,
        causal,
        q_pos0,
        scale: 1.0 / libm::sqrtf(head_dim as f32),
    }
}

/// Deterministic uniform values in `[lo, hi)`: splitmix64 (a xorshift-multiply mixer over
/// a Weyl sequence), the same stream as the host tests' `testutil::values(seed, ..)`.
pub fn fill(seed: u64, out: &mut [f32], lo: f32, hi: f32) {
    let mut state = seed;
    for v in out {
        let unit = (splitmix64(&mut state) >> 40) as f32 / (1u64 << 24) as f32;
        *v = lo + (hi - lo) * unit;
    }
}

/// One step of splitmix64: advances `state` and returns the next 64 random bits (the one
/// generator of the kernels' tests, conformance cases and benchmarks).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Rounds `v` to f16 into `h` and replaces `v` by the widened values (what an f16 kernel sees).
fn round_f16(v: &mut [f32], h: &mut [f16]) {
    for (x, y) in v.iter_mut().zip(h.iter_mut()) {
        *y = f16::from_f32(*x);
        *x = y.to_f32();
    }
}

/// Takes buffers of given lengths from the front of a caller's buffer.
struct Bump<'a, T> {
    rest: &'a mut [T],
}

impl<'a, T> Bump<'a, T> {
    fn new(buf: &'a mut [T]) -> Self {
        Bump { rest: buf }
    }
    fn take(&mut self, n: usize) -> Option<&'a mut [T]> {
        if n > self.rest.len() {
            return None;
        }
        let (a, b) = core::mem::take(&mut self.rest).split_at_mut(n);
        self.rest = b;
        Some(a)
    }
}

/// The outcome of one case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// Largest `|got - want| / (1 + scale)` (NaN counts as infinite).
    pub max_err: f64,
    /// The tolerance it is held to.
    pub tol: f64,
    /// Whether every element is within `tol`.
    pub ok: bool,
    /// The worst element (the first failing one if any): index, got, want.
    pub at: usize,
    pub got: f32,
    pub want: f32,
}

impl Outcome {
    fn new(tol: f64) -> Self {
        Outcome { max_err: 0.0, tol, ok: true, at: 0, got: 0.0, want: 0.0 }
    }

    /// One element, `|got - want| <= tol * (1 + scale)` (as the host's `assert_close`).
    fn elem(&mut self, i: usize, got: f32, want: f32, scale: f64) {
        let err = (f64::from(got) - f64::from(want)).abs();
        let pass = err <= self.tol * (1.0 + scale);
        let e = if err.is_nan() { f64::INFINITY } else { err / (1.0 + scale) };
        if (!pass && self.ok) || (self.ok && e > self.max_err) {
            (self.at, self.got, self.want) = (i, got, want);
        }
        self.ok &= pass;
        self.max_err = self.max_err.max(e);
    }

    /// Elements of `got` and `want` with `scale(i, want[i])`; a length mismatch fails.
    fn all(&mut self, got: &[f32], want: &[f32], scale: impl Fn(usize, f32) -> f64) {
        if got.len() != want.len() {
            self.ok = false;
            self.max_err = f64::INFINITY;
        }
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            self.elem(i, g, w, scale(i, w));
        }
    }

    /// `max_err` as a fraction of the tolerance.
    pub fn ratio(&self) -> f64 {
        self.max_err / self.tol
    }
}

/// One matmul case: `x [m, k]` (rows `k + seed % 3` apart), `w [n, k]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulCase {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub f16_w: bool,
    pub bias: bool,
    pub residual: bool,
    pub act: Activation,
    pub seed: u64,
}

/// The matmul edge cases: every shape with f32 and f16 weights, once with a cycled
/// activation and bias / residual on alternate shapes, once with both and no activation.
pub fn matmul_cases() -> impl Iterator<Item = MatmulCase> {
    MATMUL_SHAPES.iter().enumerate().flat_map(|(i, &(m, k, n))| {
        [false, true].into_iter().flat_map(move |f16_w| {
            let act = ACTIVATIONS[i % ACTIVATIONS.len()];
            [
                MatmulCase { m, k, n, f16_w, bias: i % 2 == 0, residual: i % 3 == 0, act, seed: i as u64 },
                MatmulCase { m, k, n, f16_w, bias: true, residual: true, act: Activation::None, seed: 99 + i as u64 },
            ]
        })
    })
}

impl MatmulCase {
    pub fn run(&self, t: &Kernels, f: &mut [f32], h: &mut [f16]) -> Option<Outcome> {
        let &MatmulCase { m, k, n, f16_w, bias: has_bias, residual: has_residual, act, seed } = self;
        let xs = k + (seed % 3) as usize; // rows of x may be a column block of a wider tensor
        let (mut fb, mut hb) = (Bump::new(f), Bump::new(h));
        let x = fb.take(m * xs)?;
        let w = fb.take(n * k)?;
        let bias = fb.take(n)?;
        let residual = fb.take(m * n)?;
        let want = fb.take(m * n)?;
        let got = fb.take(m * n)?;
        fill(seed, x, -2.0, 2.0);
        fill(seed ^ 1, w, -1.0, 1.0);
        fill(seed ^ 2, bias, -1.0, 1.0);
        fill(seed ^ 3, residual, -4.0, 4.0);
        let w16 = if f16_w {
            let w16 = hb.take(n * k)?;
            round_f16(w, w16);
            Some(&*w16)
        } else {
            None
        };
        let (x, w, bias, residual) = (&*x, &*w, &*bias, &*residual);
        let w_src = w16.map_or(Src::F32(w), Src::F16);
        let b = has_bias.then_some(Src::F32(bias));
        let r = has_residual.then_some(residual);
        want.fill(f32::NAN);
        got.fill(f32::NAN);
        ref_matmul_strided(x, xs, w_src, b, r, act, want, m, k, n);
        (t.matmul)(x, xs, w_src, b, r, act, got, m, k, n);
        let tol = if act == Activation::None { TOL_MATMUL } else { TOL_MATMUL + TOL_ACTIVATION };
        let mut o = Outcome::new(tol);
        o.all(got, want, |idx, wv| {
            let (i, j) = (idx / n, idx % n);
            // Σ|x w| in f32 (a magnitude: its rounding does not matter, and the M4 has no
            // double-precision FPU).
            let dot: f32 = x[i * xs..i * xs + k].iter().zip(&w[j * k..(j + 1) * k]).map(|(a, b)| (a * b).abs()).sum();
            let s = f64::from(dot)
                + if has_bias { f64::from(bias[j]).abs() } else { 0.0 }
                + if has_residual { f64::from(residual[idx]).abs() } else { 0.0 };
            // An activation after the sum scales its rounding error by its slope.
            if act == Activation::None { s } else { s * (1.0 + f64::from(wv).abs()) }
        });
        Some(o)
    }
}

/// One quantized matmul case: `x [m, k]` (rows `k + seed % 3` apart), `w [n, k]` quantized
/// (int8 or int4) from seeded values by the quantizers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulQCase {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Int4 (Q4_1) weights, else int8 (Q8_0).
    pub int4: bool,
    pub bias: bool,
    pub residual: bool,
    pub act: Activation,
    pub seed: u64,
}

/// Every (m, k, n) of [`MATMUL_Q_M`] x [`MATMUL_Q_K`] x [`MATMUL_Q_N`] with both weight
/// types; bias, residual and activation cycle with the index (a third of the cases with
/// tight rows of x).
pub fn matmul_q_cases() -> impl Iterator<Item = MatmulQCase> {
    let shapes = MATMUL_Q_M
        .iter()
        .flat_map(|&m| MATMUL_Q_K.iter().flat_map(move |&k| MATMUL_Q_N.iter().map(move |&n| (m, k, n))));
    shapes.enumerate().flat_map(|(i, (m, k, n))| {
        [false, true].into_iter().map(move |int4| {
            let j = 2 * i + usize::from(int4);
            MatmulQCase {
                m,
                k,
                n,
                int4,
                bias: j % 2 == 0,
                residual: j % 3 != 1,
                act: if j % 4 == 0 { ACTIVATIONS[(j / 4) % ACTIVATIONS.len()] } else { Activation::None },
                seed: j as u64,
            }
        })
    })
}

impl MatmulQCase {
    /// The quantized blocks live in `h` (17 or 10 f16 slots per block).
    pub fn run(&self, t: &Kernels, f: &mut [f32], h: &mut [f16]) -> Option<Outcome> {
        let &MatmulQCase { m, k, n, int4, bias: has_bias, residual: has_residual, act, seed } = self;
        let xs = k + (seed % 3) as usize;
        let nb = n * k / QK;
        let (mut fb, mut hb) = (Bump::new(f), Bump::new(h));
        let x = fb.take(m * xs)?;
        let wf = fb.take(n * k)?;
        let bias = fb.take(n)?;
        let residual = fb.take(m * n)?;
        let want = fb.take(m * n)?;
        let got = fb.take(m * n)?;
        // |w| per weight for the error scale: |d q| (int8), |d q| + |m| (int4).
        let wmag = fb.take(n * k)?;
        fill(seed, x, -2.0, 2.0);
        fill(seed ^ 1, wf, -1.0, 1.0);
        fill(seed ^ 2, bias, -1.0, 1.0);
        fill(seed ^ 3, residual, -4.0, 4.0);
        let slots = if int4 { size_of::<BlockQ4>() } else { size_of::<BlockQ8>() } / size_of::<f16>();
        let raw = hb.take(nb * slots)?;
        let w = if int4 {
            let b: &mut [BlockQ4] = bytemuck::cast_slice_mut(raw);
            for ((b, v), mag) in b.iter_mut().zip(wf.chunks(QK)).zip(wmag.chunks_mut(QK)) {
                *b = BlockQ4::quantize(v);
                for (t, mag) in mag.iter_mut().enumerate() {
                    *mag = (b.scale() * f32::from(b.nibble(t))).abs() + b.min().abs();
                }
            }
            QWeights::Q4(&*b)
        } else {
            let b: &mut [BlockQ8] = bytemuck::cast_slice_mut(raw);
            for ((b, v), mag) in b.iter_mut().zip(wf.chunks(QK)).zip(wmag.chunks_mut(QK)) {
                *b = BlockQ8::quantize(v);
                for (t, mag) in mag.iter_mut().enumerate() {
                    *mag = b.weight(t).abs();
                }
            }
            QWeights::Q8(&*b)
        };
        let (x, bias, residual, wmag) = (&*x, &*bias, &*residual, &*wmag);
        let b = has_bias.then_some(Src::F32(bias));
        let r = has_residual.then_some(residual);
        want.fill(f32::NAN);
        got.fill(f32::NAN);
        ref_matmul_q(x, xs, w, b, r, act, want, m, k, n);
        (t.matmul_q)(x, xs, w, b, r, act, got, m, k, n);
        let tol = if int4 { TOL_MATMUL_Q4 } else { TOL_MATMUL_Q8 };
        let tol = if act == Activation::None { tol } else { tol + TOL_ACTIVATION };
        let mut o = Outcome::new(tol);
        o.all(got, want, |idx, wv| {
            let (i, j) = (idx / n, idx % n);
            let dot: f32 =
                x[i * xs..i * xs + k].iter().zip(&wmag[j * k..(j + 1) * k]).map(|(a, b)| (a * b).abs()).sum();
            let s = f64::from(dot)
                + if has_bias { f64::from(bias[j]).abs() } else { 0.0 }
                + if has_residual { f64::from(residual[idx]).abs() } else { 0.0 };
            if act == Activation::None { s } else { s * (1.0 + f64::from(wv).abs()) }
        });
        Some(o)
    }
}

/// One attention case: an [`ATTENTION_SHAPES`] entry, padded rows, a key mask or none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionCase {
    pub shape: AttentionShape,
    pub masked: bool,
    pub seed: u64,
}

/// Every attention shape with tight rows and no mask, and with padded rows and a mask.
pub fn attention_cases() -> impl Iterator<Item = AttentionCase> {
    ATTENTION_SHAPES.iter().enumerate().flat_map(|(i, &c)| {
        [(0, false), (3, true)].into_iter().map(move |(pad, masked)| AttentionCase {
            shape: attention_shape(c, pad),
            masked,
            seed: i as u64,
        })
    })
}

impl AttentionCase {
    pub fn run(&self, t: &Kernels, f: &mut [f32], _h: &mut [f16]) -> Option<Outcome> {
        let (s, seed) = (&self.shape, self.seed);
        let width = s.heads * s.head_dim;
        let kvw = s.kv_heads * s.head_dim;
        let mut fb = Bump::new(f);
        let q = fb.take(s.q_rows.max(1) * s.q_stride.max(width))?;
        let k = fb.take(s.kv_rows.max(1) * s.kv_stride.max(kvw))?;
        let v = fb.take(s.kv_rows.max(1) * s.kv_stride.max(kvw))?;
        let mask = fb.take(s.kv_rows)?;
        let want = fb.take(s.q_rows * width)?;
        let got = fb.take(s.q_rows * width)?;
        fill(seed, q, -1.0, 1.0);
        fill(seed ^ 1, k, -1.0, 1.0);
        fill(seed ^ 2, v, -3.0, 3.0);
        for (j, m) in mask.iter_mut().enumerate() {
            *m = if (j as u64 ^ seed).is_multiple_of(3) { 0.0 } else { 1.0 };
        }
        let m = self.masked.then_some(&*mask);
        want.fill(f32::NAN);
        got.fill(f32::NAN);
        ref_attention(q, k, v, m, want, s);
        (t.attention)(q, k, v, m, got, s);
        let mut o = Outcome::new(TOL_ATTENTION);
        o.all(got, want, |_, _| 3.0);
        Some(o)
    }
}

/// One LayerNorm or RMSNorm case (RMSNorm has no beta).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormCase {
    pub rms: bool,
    pub rows: usize,
    pub dim: usize,
    pub f16_gamma: bool,
    pub beta: bool,
    pub seed: u64,
}

/// The norm shapes, gamma in f16 on odd ones, a beta except on every third.
pub fn norm_cases(rms: bool) -> impl Iterator<Item = NormCase> {
    NORM_SHAPES.iter().enumerate().map(move |(i, &(rows, dim))| NormCase {
        rms,
        rows,
        dim,
        f16_gamma: i % 2 == 1,
        beta: i % 3 != 0,
        seed: i as u64,
    })
}

impl NormCase {
    pub fn run(&self, t: &Kernels, f: &mut [f32], h: &mut [f16]) -> Option<Outcome> {
        let &NormCase { rms, rows, dim, f16_gamma, beta: has_beta, seed } = self;
        let (mut fb, mut hb) = (Bump::new(f), Bump::new(h));
        let x = fb.take(rows * dim)?;
        let g = fb.take(dim)?;
        let beta = fb.take(dim)?;
        let want = fb.take(rows * dim)?;
        let got = fb.take(rows * dim)?;
        fill(seed, x, -3.0, 5.0);
        fill(seed ^ 1, g, -2.0, 2.0);
        fill(seed ^ 2, beta, -1.0, 1.0);
        let g16 = if f16_gamma {
            let g16 = hb.take(dim)?;
            round_f16(g, g16);
            Some(&*g16)
        } else {
            None
        };
        let (x, g, beta) = (&*x, &*g, &*beta);
        let gs = g16.map_or(Src::F32(g), Src::F16);
        let b = has_beta.then_some(Src::F32(beta));
        want.fill(f32::NAN);
        got.fill(f32::NAN);
        if rms {
            ref_rms_norm(x, gs, want, dim, 1e-5);
            (t.rms_norm)(x, gs, got, dim, 1e-5);
        } else {
            ref_layer_norm(x, gs, b, want, dim, 1e-5);
            (t.layer_norm)(x, gs, b, got, dim, 1e-5);
        }
        let mut o = Outcome::new(TOL_NORM);
        o.all(got, want, |_, w| f64::from(w).abs());
        Some(o)
    }
}

/// One patch-embedding case (always with a bias).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PatchCase {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub p: usize,
    pub dim: usize,
    pub f16_w: bool,
    pub seed: u64,
}

/// The patch shapes, f16 weights on even ones.
pub fn patch_cases() -> impl Iterator<Item = PatchCase> {
    PATCH_SHAPES.iter().enumerate().map(|(i, &(c, h, w, p, dim))| PatchCase {
        c,
        h,
        w,
        p,
        dim,
        f16_w: i % 2 == 0,
        seed: i as u64,
    })
}

impl PatchCase {
    pub fn run(&self, t: &Kernels, f: &mut [f32], hbuf: &mut [f16]) -> Option<Outcome> {
        let &PatchCase { c, h, w, p, dim, f16_w, seed } = self;
        let n = (h / p) * (w / p) * dim;
        let (mut fb, mut hb) = (Bump::new(f), Bump::new(hbuf));
        let img = fb.take(c * h * w)?;
        let wt = fb.take(dim * c * p * p)?;
        let bias = fb.take(dim)?;
        let want = fb.take(n)?;
        let got = fb.take(n)?;
        fill(seed, img, -1.0, 1.0);
        fill(seed ^ 1, wt, -1.0, 1.0);
        fill(seed ^ 2, bias, -1.0, 1.0);
        let w16 = if f16_w {
            let w16 = hb.take(wt.len())?;
            round_f16(wt, w16);
            Some(&*w16)
        } else {
            None
        };
        let (img, wt, bias) = (&*img, &*wt, &*bias);
        let ws = w16.map_or(Src::F32(wt), Src::F16);
        want.fill(f32::NAN);
        got.fill(f32::NAN);
        ref_patch_embed(img, ws, Some(Src::F32(bias)), want, c, h, w, p, dim);
        (t.patch_embed)(img, ws, Some(Src::F32(bias)), got, c, h, w, p, dim);
        let mut o = Outcome::new(TOL_PATCH);
        o.all(got, want, |_, _| (c * p * p) as f64);
        Some(o)
    }
}

/// One selective-scan case: outputs and the state after it are both checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScanCase {
    pub steps: usize,
    pub e: usize,
    pub n: usize,
    pub seed: u64,
}

pub fn scan_cases() -> impl Iterator<Item = ScanCase> {
    SCAN_SHAPES.iter().enumerate().map(|(i, &(steps, e, n))| ScanCase { steps, e, n, seed: i as u64 })
}

impl ScanCase {
    pub fn run(&self, t: &Kernels, f: &mut [f32], _h: &mut [f16]) -> Option<Outcome> {
        let &ScanCase { steps, e, n, seed } = self;
        let mut fb = Bump::new(f);
        let x = fb.take(steps * e)?;
        let dt = fb.take(steps * e)?;
        let bc = fb.take(steps * 2 * n)?;
        let z = fb.take(steps * e)?;
        let a_d = fb.take(e * (n + 1))?;
        let s_want = fb.take(e * n)?;
        let s_got = fb.take(e * n)?;
        let want = fb.take(steps * e)?;
        let got = fb.take(steps * e)?;
        fill(seed, x, -1.0, 1.0);
        fill(seed ^ 1, dt, -3.0, 1.0);
        fill(seed ^ 2, bc, -1.0, 1.0);
        fill(seed ^ 3, z, -2.0, 2.0);
        fill(seed ^ 4, a_d, 0.1, 2.0);
        for (i, v) in a_d.iter_mut().enumerate() {
            if i % (n + 1) != n {
                *v = -*v;
            }
        }
        fill(seed ^ 5, s_want, -1.0, 1.0);
        s_got.copy_from_slice(s_want);
        want.fill(f32::NAN);
        got.fill(f32::NAN);
        ref_selective_scan(x, dt, bc, z, Src::F32(a_d), s_want, want, steps, e, n);
        (t.selective_scan)(x, dt, bc, z, Src::F32(a_d), s_got, got, steps, e, n);
        let mut o = Outcome::new(TOL_SCAN);
        o.all(got, want, |_, w| f64::from(w).abs());
        let mut st = Outcome::new(TOL_SCAN);
        st.all(s_got, s_want, |_, w| f64::from(w).abs());
        // The worse of the two (a failure first); the state's elements follow the outputs' in `at`.
        let (max_err, ok) = (o.max_err.max(st.max_err), o.ok && st.ok);
        if (!st.ok && o.ok) || (st.ok == o.ok && st.max_err > o.max_err) {
            st.at += want.len();
            o = st;
        }
        (o.max_err, o.ok) = (max_err, ok);
        Some(o)
    }
}

/// One activation case: `len` values in [-12, 12), the first three 0, -100, 100.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActivationCase {
    pub act: Activation,
    pub len: usize,
    pub seed: u64,
}

pub fn activation_cases() -> impl Iterator<Item = ActivationCase> {
    ACTIVATIONS.iter().enumerate().flat_map(|(i, &act)| {
        ACTIVATION_LENS.iter().map(move |&len| ActivationCase { act, len, seed: (i * 31 + len) as u64 })
    })
}

impl ActivationCase {
    pub fn run(&self, t: &Kernels, f: &mut [f32], _h: &mut [f16]) -> Option<Outcome> {
        let &ActivationCase { act, len, seed } = self;
        let mut fb = Bump::new(f);
        let x0 = fb.take(len)?;
        let want = fb.take(len)?;
        let got = fb.take(len)?;
        fill(seed, x0, -12.0, 12.0);
        if len > 2 {
            x0[..3].copy_from_slice(&[0.0, -100.0, 100.0]);
        }
        want.copy_from_slice(x0);
        got.copy_from_slice(x0);
        ref_activation_inplace(want, act);
        (t.activation)(got, act);
        let mut o = Outcome::new(TOL_ACTIVATION);
        o.all(got, want, |i, _| f64::from(x0[i]).abs());
        Some(o)
    }
}

/// One RoPE case: `rows` rows of `heads` heads, rows `pad` elements wider.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeCase {
    pub rows: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub pad: usize,
    pub pos0: usize,
    pub theta: f32,
    pub seed: u64,
}

pub fn rope_cases() -> impl Iterator<Item = RopeCase> {
    ROPE_CASES.iter().copied()
}

impl RopeCase {
    pub fn run(&self, t: &Kernels, f: &mut [f32], _h: &mut [f16]) -> Option<Outcome> {
        let &RopeCase { rows, heads, head_dim, pad, pos0, theta, seed } = self;
        let stride = heads * head_dim + pad;
        let mut fb = Bump::new(f);
        let inv = fb.take(head_dim / 2)?;
        let want = fb.take(rows * stride)?;
        let got = fb.take(rows * stride)?;
        for (j, v) in inv.iter_mut().enumerate() {
            *v = 1.0 / libm::powf(theta, 2.0 * j as f32 / head_dim as f32);
        }
        fill(seed, want, -2.0, 2.0);
        got.copy_from_slice(want);
        ref_rope_inplace(want, rows, stride, heads, head_dim, inv, pos0);
        (t.rope)(got, rows, stride, heads, head_dim, inv, pos0);
        let mut o = Outcome::new(TOL_ROPE);
        o.all(got, want, |_, _| 0.0);
        Some(o)
    }
}

/// An op family of the kernel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Matmul,
    MatmulQ,
    Attention,
    LayerNorm,
    RmsNorm,
    PatchEmbed,
    SelectiveScan,
    Activation,
    Rope,
}

impl Family {
    pub const ALL: [Family; 9] = [
        Family::Matmul,
        Family::MatmulQ,
        Family::Attention,
        Family::LayerNorm,
        Family::RmsNorm,
        Family::PatchEmbed,
        Family::SelectiveScan,
        Family::Activation,
        Family::Rope,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Matmul => "matmul",
            Family::MatmulQ => "matmul_q",
            Family::Attention => "attention",
            Family::LayerNorm => "layer_norm",
            Family::RmsNorm => "rms_norm",
            Family::PatchEmbed => "patch_embed",
            Family::SelectiveScan => "selective_scan",
            Family::Activation => "activation",
            Family::Rope => "rope",
        }
    }

    /// The family's tolerance (the matmul's cases with an activation add [`TOL_ACTIVATION`]).
    pub fn tol(self) -> f64 {
        match self {
            Family::Matmul => TOL_MATMUL,
            Family::MatmulQ => TOL_MATMUL_Q4,
            Family::Attention => TOL_ATTENTION,
            Family::LayerNorm | Family::RmsNorm => TOL_NORM,
            Family::PatchEmbed => TOL_PATCH,
            Family::SelectiveScan => TOL_SCAN,
            Family::Activation => TOL_ACTIVATION,
            Family::Rope => TOL_ROPE,
        }
    }
}

/// One case of any family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Case {
    Matmul(MatmulCase),
    MatmulQ(MatmulQCase),
    Attention(AttentionCase),
    Norm(NormCase),
    Patch(PatchCase),
    Scan(ScanCase),
    Activation(ActivationCase),
    Rope(RopeCase),
}

impl Case {
    /// Runs the case on `t` with buffers `f` and `h`; `None` when they are too small.
    pub fn run(&self, t: &Kernels, f: &mut [f32], h: &mut [f16]) -> Option<Outcome> {
        match self {
            Case::Matmul(c) => c.run(t, f, h),
            Case::MatmulQ(c) => c.run(t, f, h),
            Case::Attention(c) => c.run(t, f, h),
            Case::Norm(c) => c.run(t, f, h),
            Case::Patch(c) => c.run(t, f, h),
            Case::Scan(c) => c.run(t, f, h),
            Case::Activation(c) => c.run(t, f, h),
            Case::Rope(c) => c.run(t, f, h),
        }
    }
}

/// Calls `each` with every edge case of `family`, in order.
pub fn for_each_case(family: Family, mut each: impl FnMut(Case)) {
    match family {
        Family::Matmul => matmul_cases().for_each(|c| each(Case::Matmul(c))),
        Family::MatmulQ => matmul_q_cases().for_each(|c| each(Case::MatmulQ(c))),
        Family::Attention => attention_cases().for_each(|c| each(Case::Attention(c))),
        Family::LayerNorm => norm_cases(false).for_each(|c| each(Case::Norm(c))),
        Family::RmsNorm => norm_cases(true).for_each(|c| each(Case::Norm(c))),
        Family::PatchEmbed => patch_cases().for_each(|c| each(Case::Patch(c))),
        Family::SelectiveScan => scan_cases().for_each(|c| each(Case::Scan(c))),
        Family::Activation => activation_cases().for_each(|c| each(Case::Activation(c))),
        Family::Rope => rope_cases().for_each(|c| each(Case::Rope(c))),
    }
}

/// A family's cases on one table.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Cases run, and of them failed.
    pub run: u32,
    pub failed: u32,
    /// Cases whose inputs did not fit the buffers.
    pub skipped: u32,
    /// Largest `|got - want| / (1 + scale)` of any case.
    pub max_err: f64,
    /// Largest `max_err / tol` of any case (at most 1 when all pass).
    pub worst_ratio: f64,
}

/// Runs every case of `family` on `t` (buffers `f`, `h`); `each` sees every case with its
/// outcome (`None`: skipped), in order, e.g. to report the failing ones.
pub fn run_family(
    t: &Kernels,
    family: Family,
    f: &mut [f32],
    h: &mut [f16],
    mut each: impl FnMut(usize, &Case, Option<&Outcome>),
) -> Stats {
    let mut s = Stats::default();
    let mut index = 0;
    for_each_case(family, |case| {
        let o = case.run(t, f, h);
        match &o {
            None => s.skipped += 1,
            Some(o) => {
                s.run += 1;
                s.failed += u32::from(!o.ok);
                s.max_err = s.max_err.max(o.max_err);
                s.worst_ratio = s.worst_ratio.max(o.ratio());
            }
        }
        each(index, &case, o.as_ref());
        index += 1;
    });
    s
}

// Not under Miri: like `conformance`, it runs every table on hundreds of cases, which at
// Miri's speed takes far longer than CI's bound (the scalar references have their own
// tests there).
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// The core on every table of the host (the same cases the firmware runs on the boards).
    #[test]
    fn every_table_passes_every_family_with_room() {
        let mut f = vec![0.0f32; 64 * 1024];
        let mut h = vec![f16::ZERO; 16 * 1024];
        for t in crate::table::available() {
            for fam in Family::ALL {
                let s = run_family(t, fam, &mut f, &mut h, |i, c, o| {
                    let o = o.unwrap_or_else(|| panic!("{}: {} case {i} skipped: {c:?}", t.name, fam.name()));
                    assert!(o.ok, "{}: {} case {i} failed: {o:?} {c:?}", t.name, fam.name());
                });
                assert_eq!((s.failed, s.skipped), (0, 0));
                assert!(s.run > 0 && s.worst_ratio <= 1.0, "{}: {}: {s:?}", t.name, fam.name());
            }
        }
    }

    /// Cases too big for the buffers are skipped, not truncated; a wrong entry fails with
    /// the element that is off.
    #[test]
    fn small_buffers_skip_and_a_wrong_entry_fails() {
        let (mut f, mut h) = (vec![0.0f32; 200], vec![f16::ZERO; 200]);
        let s = run_family(crate::table::generic(), Family::Matmul, &mut f, &mut h, |_, _, _| {});
        assert!(s.skipped > 0 && s.run > 0 && s.failed == 0, "{s:?}");

        fn off_by_one(x: &mut [f32], act: Activation) {
            ref_activation_inplace(x, act);
            if let Some(v) = x.get_mut(5) {
                *v += 1e-3;
            }
        }
        let bad = Kernels { activation: off_by_one, ..Kernels::generic() };
        let (mut f, mut h) = (vec![0.0f32; 4096], vec![f16::ZERO; 16]);
        let mut failures = 0;
        let s = run_family(&bad, Family::Activation, &mut f, &mut h, |_, _, o| {
            if let Some(o) = o.filter(|o| !o.ok) {
                assert_eq!(o.at, 5);
                failures += 1;
            }
        });
        assert_eq!(s.failed, failures);
        assert_eq!(s.failed as usize, ACTIVATIONS.len() * 5); // the lengths 7, 8, 9, 33 and 1000
        assert!(s.worst_ratio > 1.0);
    }

    #[test]
    fn fill_is_uniform_in_range_and_the_host_stream() {
        let mut v = [0.0f32; 1000];
        fill(7, &mut v, -2.0, 3.0);
        assert!(v.iter().all(|x| (-2.0..3.0).contains(x)));
        let mean = v.iter().sum::<f32>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.2, "{mean}");
        assert_eq!(&v[..], &crate::testutil::values(7, 1000, -2.0, 3.0)[..]);
    }
}
