//! Criterion benchmarks: scalar reference vs the dispatching fast path for a ViT-shaped
//! matmul, a decoder-shaped matvec and encoder attention.
//!
//! ```sh
//! cargo bench -p mote-kernels --features std   # std: x86-64 detects AVX2/FMA/F16C at run time
//! ```
//!
//! `cargo xtask bench` times more shapes and puts them next to the machine's measured FMA
//! peak and DRAM bandwidth.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use half::f16;
use mote_kernels::attention::{attention as fast_attention, ref_attention};
use mote_kernels::matmul::{matmul, ref_matmul};
use mote_kernels::{Activation, AttentionShape, Src};

/// Deterministic values in [-a, a) (an LCG; the numbers only need to be finite).
fn values(len: usize, seed: u32, a: f32) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * a
        })
        .collect()
}

type MatmulFn = fn(&[f32], Src<'_>, Option<Src<'_>>, Option<&[f32]>, Activation, &mut [f32], usize, usize, usize);

/// `out[m, n] = x[m, k] @ w[n, k]^T`, f16 weights, for the reference and the fast path.
fn bench_linear(c: &mut Criterion, group: &str, m: usize, k: usize, n: usize) {
    let x = values(m * k, 1, 1.0); // [m, k]
    let w: Vec<f16> = values(n * k, 2, 0.05).into_iter().map(f16::from_f32).collect(); // [n, k]
    let mut out = vec![0.0f32; m * n]; // [m, n]
    let mut g = c.benchmark_group(group);
    // A matvec is bound by its weight bytes, a matmul by its flops.
    g.throughput(if m == 1 {
        Throughput::Bytes((n * k * 2) as u64)
    } else {
        Throughput::Elements((2 * m * k * n) as u64)
    });
    let kernels: [(&str, MatmulFn); 2] = [("ref", ref_matmul), ("fast", matmul)];
    for (name, f) in kernels {
        g.bench_function(BenchmarkId::new(name, format!("m{m}_k{k}_n{n}_f16w")), |b| {
            b.iter(|| f(black_box(&x), Src::F16(black_box(&w)), None, None, Activation::None, &mut out, m, k, n));
        });
    }
    g.finish();
}

fn linear(c: &mut Criterion) {
    bench_linear(c, "matmul (flops)", 197, 192, 768); // ViT-Tiny MLP fc1
    bench_linear(c, "matvec (weight bytes)", 1, 288, 768); // stories15M MLP, one token
}

type AttentionFn = fn(&[f32], &[f32], &[f32], Option<&[f32]>, &mut [f32], &AttentionShape);

fn attention(c: &mut Criterion) {
    let (t, heads, head_dim) = (128, 12, 32);
    let width = heads * head_dim;
    let s = AttentionShape {
        heads,
        kv_heads: heads,
        head_dim,
        q_rows: t,
        kv_rows: t,
        q_stride: width,
        kv_stride: width,
        causal: false,
        q_pos0: 0,
        scale: 1.0 / (head_dim as f32).sqrt(),
    };
    let (q, k, v) = (values(t * width, 3, 1.0), values(t * width, 4, 1.0), values(t * width, 5, 1.0)); // [t, width] each
    let mut out = vec![0.0f32; t * width]; // [t, width]
    let mut g = c.benchmark_group("attention (flops)");
    g.throughput(Throughput::Elements((4 * heads * head_dim * t * t) as u64));
    let kernels: [(&str, AttentionFn); 2] = [("ref", ref_attention), ("fast", fast_attention)];
    for (name, f) in kernels {
        g.bench_function(BenchmarkId::new(name, format!("t{t}_{heads}x{head_dim}")), |b| {
            b.iter(|| f(black_box(&q), black_box(&k), black_box(&v), None, &mut out, &s));
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = linear, attention
}
criterion_main!(benches);
