//! Quick timing of the matmul paths (`cargo run --release -p mote-kernels --features std --example quick_matmul`).
use half::f16;
use mote_kernels::{Activation, Src, matmul};
use std::time::Instant;

fn main() {
    println!("path: {}", mote_kernels::kernel_path());
    for &(m, k, n) in &[(1usize, 288usize, 32000usize), (1, 288, 1536), (1, 768, 288), (1, 288, 864), (1, 4096, 8192)] {
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
        let paths: [(&str, Mm); 2] = [("ref", matmul::ref_matmul), ("fast", matmul::matmul)];
        for (name, f) in paths {
            let reps = ((2e8 / flops) as usize).clamp(3, 2000);
            f(&x, Src::F16(&w), None, None, Activation::None, &mut out, m, k, n);
            let t = Instant::now();
            for _ in 0..reps {
                f(std::hint::black_box(&x), Src::F16(&w), None, None, Activation::None, &mut out, m, k, n);
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "m{m} k{k} n{n} {name}: {:.3} ms, {:.2} GFLOP/s, weights {:.2} GB/s",
                s * 1e3,
                flops / s / 1e9,
                (n * k * 2) as f64 / s / 1e9
            );
        }
    }
}
