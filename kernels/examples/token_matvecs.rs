//! The matvecs of one decode step of a stories15M-shaped Llama (dim 288, 6 layers, hidden
//! 768, vocab 32000), f16 weights, each matrix distinct as in the model:
//! `cargo run --release -p mote-kernels --features std --example token_matvecs`.
use half::f16;
use mote_kernels::{Activation, Src, matmul};
use std::time::Instant;

fn main() {
    let (d, h, v) = (288usize, 768usize, 32000usize);
    let mut shapes = Vec::new();
    for _ in 0..6 {
        shapes.extend([(d, d), (d, d), (d, d), (d, d), (h, d), (h, d), (d, h)]);
    }
    shapes.push((v, d));
    let mats: Vec<Vec<f16>> =
        shapes.iter().map(|&(n, k)| (0..n * k).map(|i| f16::from_f32((i % 7) as f32 * 0.01)).collect()).collect();
    let bytes: usize = shapes.iter().map(|&(n, k)| n * k * 2).sum();
    let x = vec![0.5f32; h];
    let mut out = vec![0f32; v];
    let mut best = [f64::INFINITY; 2];
    for _ in 0..30 {
        for (part, range) in [(0, 0..shapes.len() - 1), (1, shapes.len() - 1..shapes.len())] {
            let t = Instant::now();
            for i in range {
                let (n, k) = shapes[i];
                matmul::matmul(&x[..k], Src::F16(&mats[i]), None, None, Activation::None, &mut out[..n], 1, k, n);
            }
            best[part] = best[part].min(t.elapsed().as_secs_f64());
        }
    }
    let cls = (v * d * 2) as f64;
    println!(
        "layers: {:.3} ms ({:.1} GB/s); classifier: {:.3} ms ({:.1} GB/s); {:.0} tokens/s if nothing else ran ({:.1} MB)",
        best[0] * 1e3,
        (bytes as f64 - cls) / best[0] / 1e9,
        best[1] * 1e3,
        cls / best[1] / 1e9,
        1.0 / (best[0] + best[1]),
        bytes as f64 / 1e6
    );
}
