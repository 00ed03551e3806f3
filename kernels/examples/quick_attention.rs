//! Quick timing of attention (`cargo run --release -p mote-kernels --features std --example quick_attention`).
use mote_kernels::attention::{AttentionShape, attention, ref_attention};
use std::time::Instant;

fn main() {
    for &(q_rows, kv_rows, causal, pos0) in &[(128usize, 128usize, false, 0usize), (1, 1024, true, 1023)] {
        let (heads, hd) = (12, 32);
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
        for (name, fast) in [("ref", false), ("fast", true)] {
            let reps = 50;
            let t = Instant::now();
            for _ in 0..reps {
                if fast {
                    attention(&q, &k, &k, None, &mut out, &s)
                } else {
                    ref_attention(&q, &k, &k, None, &mut out, &s)
                }
            }
            let sec = t.elapsed().as_secs_f64() / reps as f64;
            println!("{q_rows}x{kv_rows} {name}: {:.3} ms, {:.2} GFLOP/s", sec * 1e3, flops / sec / 1e9);
        }
    }
}
