//! Quick timing of attention, best of many short batches
//! (`cargo run --release -p mote-kernels --features std --example quick_attention`).
use mote_kernels::attention::{AttentionShape, attention, ref_attention};
use std::time::Instant;

fn main() {
    println!("path: {}", mote_kernels::kernel_path());
    // (queries, keys, heads, head_dim, causal, position of query 0)
    for &(q_rows, kv_rows, heads, hd, causal, pos0) in &[
        (128usize, 128usize, 12usize, 32usize, false, 0usize),
        (197, 197, 3, 64, false, 0),
        (1, 1024, 12, 32, true, 1023),
    ] {
        let w = heads * hd;
        let s = AttentionShape {
            heads,
            kv_heads: heads,
            head_dim: hd,
            q_rows,
            kv_rows,
            q_stride: w,
            kv_stride: w,
            causal,
            q_pos0: pos0,
            scale: 0.17,
        };
        let q: Vec<f32> = (0..q_rows * w).map(|i| ((i * 7) % 13) as f32 * 0.1).collect();
        let k: Vec<f32> = (0..kv_rows * w).map(|i| ((i * 5) % 11) as f32 * 0.1).collect();
        let mut out = vec![0f32; q_rows * w];
        let flops = 4.0 * (q_rows * kv_rows * w) as f64;
        for name in ["ref", "avx2", "fast"] {
            // "avx2": the fast path kept to AVX2 (the same as "fast" on a CPU without AVX-512).
            mote_kernels::force_avx2(name == "avx2");
            let (batches, reps) = if name == "ref" { (2, 5) } else { (40, 20) };
            let mut best = f64::INFINITY;
            for _ in 0..batches {
                let t = Instant::now();
                for _ in 0..reps {
                    if name == "ref" {
                        ref_attention(&q, &k, &k, None, &mut out, &s)
                    } else {
                        attention(&q, &k, &k, None, &mut out, &s)
                    }
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            println!("{q_rows}x{kv_rows} {heads}x{hd} {name}: {:.3} ms, {:.2} GFLOP/s", best * 1e3, flops / best / 1e9);
        }
    }
}
