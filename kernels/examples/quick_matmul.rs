//! Quick timing of the matmul paths (`cargo run --release -p mote-kernels --features std --example quick_matmul`).
use half::f16;
use mote_kernels::{Activation, Src, matmul};
use std::time::Instant;

fn main() {
    println!("path: {}", mote_kernels::kernel_path());
    for &(m, k, n) in &[
        (128usize, 384usize, 384usize),
        (128, 384, 1536),
        (128, 1536, 384),
        (197, 192, 768),
        (197, 768, 192),
        (16, 288, 768),
        (1, 288, 32000),
        (1, 4096, 8192),
    ] {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.01).collect();
        let w: Vec<f16> = (0..n * k).map(|i| f16::from_f32((i % 7) as f32 * 0.01)).collect();
        let mut out = vec![0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        type Mm = for<'a> fn(
            &'a [f32],
            Src<'a>,
            Option<Src<'a>>,
            Option<&'a [f32]>,
            Activation,
            &'a mut [f32],
            usize,
            usize,
            usize,
        );
        let paths: [(&str, Mm); 3] = [("ref", matmul::ref_matmul), ("avx2", matmul::matmul), ("fast", matmul::matmul)];
        for (name, f) in paths {
            // "avx2": the fast path kept to AVX2 (the same as "fast" on a CPU without AVX-512).
            mote_kernels::force_avx2(name == "avx2");
            // Best of many short batches: the minimum is what the code costs when nothing
            // else runs on the core.
            let reps = ((2e7 / flops) as usize).clamp(1, 2000);
            f(&x, Src::F16(&w), None, None, Activation::None, &mut out, m, k, n);
            let batches = if name == "ref" { 2 } else { 40 };
            let mut s = f64::INFINITY;
            for _ in 0..batches {
                let t = Instant::now();
                for _ in 0..reps {
                    f(std::hint::black_box(&x), Src::F16(&w), None, None, Activation::None, &mut out, m, k, n);
                }
                s = s.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            println!(
                "m{m} k{k} n{n} {name}: {:.3} ms, {:.2} GFLOP/s, weights {:.2} GB/s",
                s * 1e3,
                flops / s / 1e9,
                (n * k * 2) as f64 / s / 1e9
            );
        }
    }
}
