//! The matmuls of one ViT-Tiny inference (224x224, patch 16: 197 tokens, hidden 192, MLP
//! 768, 12 layers), f16 weights, each matrix distinct as in the model, so the weights
//! come from the last-level cache as they do there; against the same calls with one
//! layer's weights reused (hot in L2):
//! `cargo run --release -p mote-kernels --features std --example vit_matmuls`.
use half::f16;
use mote_kernels::{Activation, Src, matmul};
use std::time::Instant;

fn main() {
    let (m, d, h) = (197usize, 192usize, 768usize);
    // (n, k, activation, residual) per matmul of a layer.
    let layer = [
        (3 * d, d, Activation::None, false),
        (d, d, Activation::None, true),
        (h, d, Activation::GeluErf, false),
        (d, h, Activation::None, true),
    ];
    let mats: Vec<Vec<f16>> = (0..12 * layer.len())
        .map(|t| {
            let (n, k, _, _) = layer[t % layer.len()];
            (0..n * k).map(|i| f16::from_f32((((i + t) * 2654435761) % 10007) as f32 / 10007.0 * 0.1 - 0.05)).collect()
        })
        .collect();
    let bias = vec![0.01f32; h * 3];
    let x = vec![0.5f32; m * h];
    let res = vec![0.25f32; m * h];
    let mut out = vec![0f32; m * h * 3];
    let flops: f64 = layer.iter().map(|&(n, k, _, _)| 2.0 * (m * n * k) as f64).sum::<f64>() * 12.0;
    for (name, distinct) in [("distinct weights (as in the model)", true), ("one layer's weights, hot", false)] {
        let mut best = f64::INFINITY;
        for _ in 0..30 {
            let t = Instant::now();
            for l in 0..12 {
                for (j, &(n, k, act, r)) in layer.iter().enumerate() {
                    let w = &mats[if distinct { l * layer.len() + j } else { j }];
                    matmul::matmul(
                        &x[..m * k],
                        Src::F16(w),
                        Some(Src::F32(&bias[..n])),
                        r.then_some(&res[..m * n]),
                        act,
                        &mut out[..m * n],
                        m,
                        k,
                        n,
                    );
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name}: {:.3} ms, {:.1} GFLOP/s", best * 1e3, flops / best / 1e9);
    }
}
