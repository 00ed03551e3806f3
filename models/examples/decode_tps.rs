//! Greedy decode speed of a converted decoder:
//! `cargo run --release -p mote-models --example decode_tps -- MODEL.mote [TOKENS]`.
//! Prefills 16 tokens, then times single-token steps (best of five runs).
use mote_models::host::AlignedBytes;
use mote_runtime::{Interpreter, Model};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: decode_tps MODEL.mote [TOKENS]")?;
    let tokens: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);
    let bytes = AlignedBytes::read(std::path::Path::new(&path))?;
    let model = Model::parse(&bytes)?;
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let mut interp = Interpreter::new(&model, &mut arena).map_err(|e| format!("{e:?}"))?;
    let prompt: Vec<i32> = (0..16).map(|i| 1 + i * 7919 % 31999).collect();
    let mut best = 0f64;
    for _ in 0..5 {
        interp.reset();
        interp.step(&prompt)?;
        let logits = interp.output("logits")?;
        let vocab = logits.len() / prompt.len();
        let mut next = mote_runtime::sampler::argmax(&logits[logits.len() - vocab..]) as i32;
        let t = Instant::now();
        for _ in 0..tokens {
            interp.step(&[next])?;
            next = mote_runtime::sampler::argmax(interp.output("logits")?) as i32;
        }
        best = best.max(tokens as f64 / t.elapsed().as_secs_f64());
    }
    println!("{path}: {best:.1} tokens/s (best of 5 runs of {tokens} greedy steps after a 16-token prompt)");
    Ok(())
}
