//! Benchmark cases, shared by `cargo xtask bench` and the criterion benches
//! (`benches/kernels.rs`): each builds one kernel call at one shape (seeded inputs, the
//! output buffer, the work it does) and calls the scalar reference or the dispatching
//! fast path (`matmul::matmul`, `attention::attention`, `norm::layer_norm`, ...: SIMD
//! when the CPU has it, else the reference) on demand. The caller times the calls.
//!
//! Feature `bench` (hosts: it allocates); not part of the kernels' API.

use std::fmt;
use std::hint::black_box;

use half::f16;

use crate::{Activation, AttentionShape, Src};

/// A small seeded generator (SplitMix64) for benchmark data and synthetic checkpoints.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        crate::conformance_core::splitmix64(&mut self.0)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [-a, a), f32.
    pub fn uniform_vec(&mut self, len: usize, a: f32) -> Vec<f32> {
        (0..len).map(|_| (2.0 * self.unit() as f32 - 1.0) * a).collect()
    }
    /// N(0, std^2) by Box-Muller.
    pub fn normal_vec(&mut self, len: usize, std: f32) -> Vec<f32> {
        let mut out = Vec::with_capacity(len + 1);
        while out.len() < len {
            let (u1, u2) = (1.0 - self.unit(), self.unit());
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            out.push((r * t.cos()) as f32 * std);
            out.push((r * t.sin()) as f32 * std);
        }
        out.truncate(len);
        out
    }
}

pub fn to_f16(v: &[f32]) -> Vec<f16> {
    v.iter().map(|&x| f16::from_f32(x)).collect()
}

/// What a kernel's throughput is counted in.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// Floating-point operations per call (compared with the FMA peak).
    Flops(f64),
    /// Weight bytes read per call (compared with the DRAM read bandwidth).
    WeightBytes(f64),
    /// Bytes read and written per call (activations; no machine comparison).
    Bytes(f64),
}

/// Which of a kernel's two implementations a [`Case`] calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// The scalar `ref_*` kernel.
    Ref,
    /// The dispatching fast path.
    Fast,
}

impl Impl {
    /// Both, in the order they are timed.
    pub const BOTH: [Impl; 2] = [Impl::Ref, Impl::Fast];

    /// "ref" or "fast".
    pub fn name(self) -> &'static str {
        match self {
            Impl::Ref => "ref",
            Impl::Fast => "fast",
        }
    }

    fn pick<F>(self, reference: F, fast: F) -> F {
        match self {
            Impl::Ref => reference,
            Impl::Fast => fast,
        }
    }
}

/// One kernel at one shape, with its inputs and output allocated.
pub struct Case {
    /// The shape, for a report ("m128 k384 n384").
    pub shape: String,
    /// The work of one call.
    pub work: Work,
    run: Box<dyn FnMut(Impl)>,
}

impl Case {
    /// One call of the reference or of the fast path.
    pub fn call(&mut self, which: Impl) {
        (self.run)(which)
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case").field("shape", &self.shape).field("work", &self.work).finish_non_exhaustive()
    }
}

/// The kernel signatures, shared by each `ref_*` kernel and its dispatching fast path.
type MatmulFn = fn(&[f32], Src<'_>, Option<Src<'_>>, Option<&[f32]>, Activation, &mut [f32], usize, usize, usize);
type MatmulQFn = crate::table::MatmulQFn;
type AttentionFn = fn(&[f32], &[f32], &[f32], Option<&[f32]>, &mut [f32], &AttentionShape);
type LayerNormFn = fn(&[f32], Src<'_>, Option<Src<'_>>, &mut [f32], usize, f32);
type RmsNormFn = fn(&[f32], Src<'_>, &mut [f32], usize, f32);
type PatchFn = fn(&[f32], Src<'_>, Option<Src<'_>>, &mut [f32], usize, usize, usize, usize, usize);
type ScanFn = fn(&[f32], &[f32], &[f32], &[f32], Src<'_>, &mut [f32], &mut [f32], usize, usize, usize);

/// ViT-Tiny's patch embedding: a 224 x 224 x 3 image, 16 x 16 patches, 192 channels.
pub fn patch_embed_vit_tiny(rng: &mut Rng) -> Case {
    let (c, hw, p, dim) = (3usize, 224usize, 16usize, 192usize);
    let image = rng.uniform_vec(c * hw * hw, 1.0); // [c, h, w]
    let w = to_f16(&rng.uniform_vec(dim * c * p * p, 0.05)); // [dim, c, p, p]
    let bias = rng.uniform_vec(dim, 0.1);
    let patches = (hw / p) * (hw / p);
    let mut out = vec![0.0f32; patches * dim];
    let flops = 2.0 * (patches * dim * c * p * p) as f64;
    Case {
        shape: format!("{hw}x{hw}x{c}, p{p}, {dim} ch"),
        work: Work::Flops(flops),
        run: Box::new(move |which| {
            let f = which.pick::<PatchFn>(crate::patch::ref_patch_embed, crate::patch::patch_embed);
            f(black_box(&image), Src::F16(&w), Some(Src::F32(&bias)), &mut out, c, hw, hw, p, dim);
            black_box(&out);
        }),
    }
}

/// Mamba's selective scan (d_inner 576, d_state 16) over `t` steps. Work counted as 7
/// flops per state per step (Δ·A, exp as one, decay, input FMA, output FMA).
pub fn selective_scan(rng: &mut Rng, t: usize) -> Case {
    let (e, n) = (576usize, 16usize);
    let x = rng.uniform_vec(t * e, 1.0);
    let dt = rng.uniform_vec(t * e, 2.0);
    let z = rng.uniform_vec(t * e, 2.0);
    let bc = rng.uniform_vec(t * 2 * n, 1.0);
    let a_d: Vec<f32> = (0..e * (n + 1)).map(|i| -1.0 - (i % (n + 1)) as f32).collect();
    let a_d = to_f16(&a_d);
    let mut state = vec![0.0f32; e * n];
    let mut out = vec![0.0f32; t * e];
    Case {
        shape: format!("{t} steps, {e} ch x {n} states"),
        work: Work::Flops(7.0 * (t * e * n) as f64),
        run: Box::new(move |which| {
            let f = which.pick::<ScanFn>(crate::scan::ref_selective_scan, crate::scan::selective_scan);
            f(black_box(&x), &dt, &bc, &z, Src::F16(&a_d), &mut state, &mut out, t, e, n);
            black_box(&out);
        }),
    }
}

/// `out[m, n] = x[m, k] @ w[n, k]^T`, f16 weights, no bias. A matvec (`m == 1`) is
/// counted in weight bytes, a matmul in flops.
pub fn matmul_f16w(rng: &mut Rng, m: usize, k: usize, n: usize) -> Case {
    let x = rng.uniform_vec(m * k, 1.0); // [m, k]
    let w = to_f16(&rng.uniform_vec(n * k, 0.05)); // [n, k]
    let mut out = vec![0.0f32; m * n]; // [m, n]
    let bytes = (n * k * 2) as f64;
    let work = if m == 1 { Work::WeightBytes(bytes) } else { Work::Flops((2 * m * k * n) as f64) };
    Case {
        shape: format!("m{m} k{k} n{n}"),
        work,
        run: Box::new(move |which| {
            let f = which.pick::<MatmulFn>(crate::matmul::ref_matmul, crate::matmul::matmul);
            f(black_box(&x), Src::F16(black_box(&w)), None, None, Activation::None, &mut out, m, k, n);
            black_box(&out);
        }),
    }
}

/// The quantized weight types of [`matmul_q`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QType {
    /// llama.cpp's Q8_0 (34 bytes per 32 weights).
    Int8,
    /// llama.cpp's Q4_1 (20 bytes per 32 weights).
    Int4,
}

/// [`matmul_f16w`] with quantized weights (`k` a multiple of 32; the same values, quantized
/// by `quant`'s quantizers). A matvec is counted in weight bytes (the blocks' bytes), a
/// matmul in flops.
pub fn matmul_q(rng: &mut Rng, q: QType, m: usize, k: usize, n: usize) -> Case {
    use crate::quant::{BlockQ4, BlockQ8, QK, QWeights};
    let x = rng.uniform_vec(m * k, 1.0); // [m, k]
    let wf = rng.uniform_vec(n * k, 0.05); // [n, k], in blocks of QK along k
    let (q8, q4): (Vec<BlockQ8>, Vec<BlockQ4>) = match q {
        QType::Int8 => (wf.chunks(QK).map(BlockQ8::quantize).collect(), Vec::new()),
        QType::Int4 => (Vec::new(), wf.chunks(QK).map(BlockQ4::quantize).collect()),
    };
    let mut out = vec![0.0f32; m * n]; // [m, n]
    let bytes = (core::mem::size_of_val(&q8[..]) + core::mem::size_of_val(&q4[..])) as f64;
    let work = if m == 1 { Work::WeightBytes(bytes) } else { Work::Flops((2 * m * k * n) as f64) };
    Case {
        shape: format!("m{m} k{k} n{n}"),
        work,
        run: Box::new(move |which| {
            let w = if q == QType::Int8 { QWeights::Q8(&q8) } else { QWeights::Q4(&q4) };
            let f = which.pick::<MatmulQFn>(crate::quant::ref_matmul_q, crate::quant::matmul_q);
            f(black_box(&x), k, black_box(w), None, None, Activation::None, &mut out, m, k, n);
            black_box(&out);
        }),
    }
}

/// Multi-head attention with as many key/value heads as query heads, rows packed
/// (`heads * head_dim` wide), scaled by 1/sqrt(head_dim).
pub fn mha_shape(
    heads: usize,
    head_dim: usize,
    q_rows: usize,
    kv_rows: usize,
    causal: bool,
    q_pos0: usize,
) -> AttentionShape {
    let width = heads * head_dim;
    AttentionShape {
        heads,
        kv_heads: heads,
        head_dim,
        q_rows,
        kv_rows,
        q_stride: width,
        kv_stride: width,
        causal,
        q_pos0,
        scale: 1.0 / (head_dim as f32).sqrt(),
    }
}

/// Attention at shape `s`, no key mask.
pub fn attention(rng: &mut Rng, s: AttentionShape) -> Case {
    let width = s.heads * s.head_dim;
    let q = rng.uniform_vec(s.q_rows * s.q_stride, 1.0); // [q_rows, heads*head_dim]
    let k = rng.uniform_vec(s.kv_rows * s.kv_stride, 1.0); // [kv_rows, kv_heads*head_dim]
    let v = rng.uniform_vec(s.kv_rows * s.kv_stride, 1.0);
    let mut out = vec![0.0f32; s.q_rows * width]; // [q_rows, heads*head_dim]
    // Per (query, head, key): q.k and p*v, 2 * head_dim flops each (exp not counted).
    // Causal queries see keys up to their position: query i sees q_pos0 + i + 1 keys.
    let pairs: usize =
        (0..s.q_rows).map(|i| if s.causal { (s.q_pos0 + i + 1).min(s.kv_rows) } else { s.kv_rows }).sum();
    let flops = (4 * s.heads * s.head_dim * pairs) as f64;
    let shape = format!(
        "{} q x {} kv, {}x{}{}",
        s.q_rows,
        s.kv_rows,
        s.heads,
        s.head_dim,
        if s.causal { ", causal" } else { "" }
    );
    Case {
        shape,
        work: Work::Flops(flops),
        run: Box::new(move |which| {
            let f = which.pick::<AttentionFn>(crate::attention::ref_attention, crate::attention::attention);
            f(black_box(&q), black_box(&k), black_box(&v), None, &mut out, &s);
            black_box(&out);
        }),
    }
}

/// `layer_norm` (eps 1e-12, with beta) and `rms_norm` (eps 1e-5) over the same
/// `[rows, dim]` input and gamma, counted in bytes read and written.
pub fn norms(rng: &mut Rng, rows: usize, dim: usize) -> [Case; 2] {
    let x = rng.uniform_vec(rows * dim, 1.0); // [rows, dim]
    let gamma = rng.uniform_vec(dim, 1.0); // [dim]
    let beta = rng.uniform_vec(dim, 0.1); // [dim]
    let work = Work::Bytes((2 * rows * dim * 4) as f64); // x in, out
    let shape = format!("{rows} x {dim}");
    let (x2, gamma2) = (x.clone(), gamma.clone());
    let mut out = vec![0.0f32; rows * dim]; // [rows, dim]
    let mut out2 = out.clone();
    [
        Case {
            shape: shape.clone(),
            work,
            run: Box::new(move |which| {
                let f = which.pick::<LayerNormFn>(crate::norm::ref_layer_norm, crate::norm::layer_norm);
                f(black_box(&x), Src::F32(&gamma), Some(Src::F32(&beta)), &mut out, dim, 1e-12);
                black_box(&out);
            }),
        },
        Case {
            shape,
            work,
            run: Box::new(move |which| {
                let f = which.pick::<RmsNormFn>(crate::norm::ref_rms_norm, crate::norm::rms_norm);
                f(black_box(&x2), Src::F32(&gamma2), &mut out2, dim, 1e-5);
                black_box(&out2);
            }),
        },
    ]
}
