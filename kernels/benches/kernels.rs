//! Criterion benchmarks: scalar reference vs the dispatching fast path for a ViT-shaped
//! matmul, a decoder-shaped matvec and encoder attention.
//!
//! ```sh
//! cargo bench -p mote-kernels --features std   # std: x86-64 detects AVX2/FMA/F16C at run time
//! ```
//!
//! The cases (shapes, inputs, the call) are `mote_kernels::bench`'s, as in `cargo xtask
//! bench`, which times more shapes and puts them next to the machine's measured FMA peak
//! and DRAM bandwidth.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mote_kernels::bench::{self as cases, Case, Impl, Rng, Work};

/// A case's reference and fast path in one group, `id` their parameter.
fn bench_case(c: &mut Criterion, group: &str, id: &str, mut case: Case) {
    let mut g = c.benchmark_group(group);
    // A matvec is bound by its weight bytes, a matmul by its flops.
    g.throughput(match case.work {
        Work::Flops(x) => Throughput::Elements(x as u64),
        Work::WeightBytes(x) | Work::Bytes(x) => Throughput::Bytes(x as u64),
    });
    for which in Impl::BOTH {
        g.bench_function(BenchmarkId::new(which.name(), id), |b| b.iter(|| case.call(which)));
    }
    g.finish();
}

/// `out[m, n] = x[m, k] @ w[n, k]^T`, f16 weights, for the reference and the fast path.
fn bench_linear(c: &mut Criterion, rng: &mut Rng, group: &str, m: usize, k: usize, n: usize) {
    bench_case(c, group, &format!("m{m}_k{k}_n{n}_f16w"), cases::matmul_f16w(rng, m, k, n));
}

fn linear(c: &mut Criterion) {
    let mut rng = Rng(1);
    bench_linear(c, &mut rng, "matmul (flops)", 197, 192, 768); // ViT-Tiny MLP fc1
    bench_linear(c, &mut rng, "matvec (weight bytes)", 1, 288, 768); // stories15M MLP, one token
}

fn attention(c: &mut Criterion) {
    let (t, heads, head_dim) = (128, 12, 32);
    let s = cases::mha_shape(heads, head_dim, t, t, false, 0);
    bench_case(c, "attention (flops)", &format!("t{t}_{heads}x{head_dim}"), cases::attention(&mut Rng(3), s));
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
