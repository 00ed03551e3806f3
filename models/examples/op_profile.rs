//! Where the time of one inference goes, by op kind:
//! `cargo run --release -p mote-models --example op_profile -- MODEL.mote [RUNS]`.
//! Float inputs are filled with a fixed pattern; token models run their longest input.
use mote_models::host::AlignedBytes;
use mote_runtime::{Interpreter, Model, OpCode, OpHook};
use std::collections::BTreeMap;
use std::time::Instant;

struct Timer {
    start: Option<Instant>,
    by_op: BTreeMap<String, (f64, usize)>,
    /// Per op: (kind, shortest time over the runs).
    by_index: BTreeMap<usize, (String, f64)>,
}

impl OpHook for Timer {
    fn before(&mut self, _: usize, _: OpCode) {
        self.start = Some(Instant::now());
    }
    fn after(&mut self, index: usize, op: OpCode) {
        let dt = self.start.take().map_or(0.0, |t| t.elapsed().as_secs_f64());
        let e = self.by_index.entry(index).or_insert((format!("{op:?}"), f64::INFINITY));
        e.1 = e.1.min(dt);
        let e = self.by_op.entry(format!("{op:?}")).or_default();
        e.0 += dt;
        e.1 += 1;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: op_profile MODEL.mote [RUNS]")?;
    let runs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50);
    let bytes = AlignedBytes::read(std::path::Path::new(&path))?;
    let model = Model::parse(&bytes)?;
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let mut interp = Interpreter::new(&model, &mut arena).map_err(|e| format!("{e:?}"))?;
    let mut timer = Timer { start: None, by_op: BTreeMap::new(), by_index: BTreeMap::new() };
    // Token models: TOKENS tokens (default 128) of deterministic ids.
    let tokens: usize = std::env::var("TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
    let ids: Vec<i32> = (0..tokens as i32).map(|i| 1 + i * 7919 % 1000).collect();
    let encoder = model.find_input("attention_mask").is_some();
    let mut total = 0.0;
    let mut best = f64::INFINITY;
    for run in 0..runs + 1 {
        if run == 1 {
            timer.by_op.clear();
            timer.by_index.clear();
            total = 0.0;
        }
        let t = Instant::now();
        if interp.input_mut("pixel_values").is_ok() {
            let x = interp.input_mut("pixel_values")?;
            // A fixed pseudo-random pattern in [-2, 2).
            x.iter_mut().enumerate().for_each(|(i, v)| *v = ((i * 2654435761) % 65536) as f32 / 16384.0 - 2.0);
            interp.invoke_profiled(&mut timer)?;
        } else {
            interp.reset();
            if encoder {
                // An encoder: every token attended to, token types 0.
                interp.set_tokens(ids.len())?;
                interp.set_input_ids("input_ids", &ids)?;
                interp.set_input("attention_mask", &vec![1.0; ids.len()])?;
                if model.find_input("token_type_ids").is_some() {
                    interp.set_input_ids("token_type_ids", &vec![0; ids.len()])?;
                }
                interp.invoke_profiled(&mut timer)?;
            } else {
                interp.step_profiled(&ids, &mut timer)?;
            }
        }
        total += t.elapsed().as_secs_f64();
        if run > 0 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    // Shortest time of each op over the runs, summed by kind: what the ops cost with the
    // least interference from the rest of the machine.
    let mut best_by_op: BTreeMap<String, f64> = BTreeMap::new();
    for (kind, t) in timer.by_index.values() {
        *best_by_op.entry(kind.clone()).or_default() += t;
    }
    let mut ops: Vec<_> = timer.by_index.into_iter().collect();
    ops.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    let top = std::env::var("TOP").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let slowest: Vec<String> = ops.iter().take(top).map(|(i, (_, s))| format!("#{i} {:.3} ms", s * 1e3)).collect();
    let mut rows: Vec<_> = timer.by_op.into_iter().collect();
    rows.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!("{path}: {:.3} ms per run, best {:.3} ms ({runs} runs)", total / runs as f64 * 1e3, best * 1e3);
    for (op, (s, count)) in rows {
        let best = best_by_op.get(&op).copied().unwrap_or(f64::NAN);
        println!(
            "  {op:<20} {:>8.3} ms  {:>5.1}%  ({} calls per run; sum of each call's shortest: {:.3} ms)",
            s / runs as f64 * 1e3,
            s / total * 100.0,
            count / runs,
            best * 1e3
        );
    }
    println!("  slowest ops (shortest of the runs): {}", slowest.join(", "));
    Ok(())
}
