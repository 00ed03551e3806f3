//! Timing: how long each measurement runs, and seconds per call as the median or the
//! shortest of timed batches.

use std::time::Instant;

/// How long to time each measurement.
#[derive(Clone, Copy, Debug)]
pub(super) struct Budget {
    /// Seconds of timed calls per measurement (split over `repeats`).
    pub(super) secs: f64,
    /// Timed batches; the median batch gives the figure.
    pub(super) repeats: usize,
    /// Time a slow call (one longer than `secs`) once more after its first, cold call.
    pub(super) rerun_slow: bool,
    /// Greedy tokens timed per decode run.
    pub(super) decode_tokens: usize,
    /// Decode runs (the median is reported), after one warm-up run when `rerun_slow`.
    pub(super) decode_runs: usize,
    /// Bytes of the buffer DRAM bandwidth is read from (well beyond the last-level cache).
    pub(super) dram_bytes: usize,
    /// Seconds the ONNX Runtime peer times for (its `--seconds`).
    pub(super) peer_secs: f64,
}

impl Budget {
    pub(super) fn new(quick: bool) -> Self {
        if quick {
            Budget {
                secs: 0.06,
                repeats: 3,
                rerun_slow: false,
                decode_tokens: 32,
                decode_runs: 1,
                dram_bytes: 256 << 20,
                peer_secs: 0.3,
            }
        } else {
            Budget {
                secs: 1.0,
                repeats: 5,
                rerun_slow: true,
                decode_tokens: 128,
                decode_runs: 3,
                dram_bytes: 512 << 20,
                peer_secs: 3.0,
            }
        }
    }
}

pub(super) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// Median seconds per call of `f`: one warm-up call (which also sizes the batches), then
/// up to `repeats` timed batches of as many calls as fill `secs / repeats`.
pub(super) fn time_per_call(b: &Budget, f: impl FnMut()) -> f64 {
    timed(b, 1, median, f)
}

/// Shortest seconds per call over at least five batches: a machine's peak is what it
/// does with the least interference from whatever else runs.
pub(super) fn best_time_per_call(b: &Budget, f: impl FnMut()) -> f64 {
    timed(b, 5, |v| v.iter().copied().fold(f64::INFINITY, f64::min), f)
}

fn timed(b: &Budget, min_repeats: usize, pick: fn(&mut [f64]) -> f64, f: impl FnMut()) -> f64 {
    pick(&mut timed_samples(b, min_repeats, f))
}

/// Median and shortest seconds per call (see [`timed_samples`]).
pub(super) fn median_and_best(b: &Budget, f: impl FnMut()) -> (f64, f64) {
    let mut v = timed_samples(b, 5, f);
    let best = v.iter().copied().fold(f64::INFINITY, f64::min);
    (median(&mut v), best)
}

/// Seconds per call of each timed batch: one warm-up call (which also sizes the
/// batches), then at least `min_repeats` and up to the budget's repeats of batches of as
/// many calls as fill `secs / repeats`.
fn timed_samples(b: &Budget, min_repeats: usize, mut f: impl FnMut()) -> Vec<f64> {
    let t0 = Instant::now();
    f();
    let first = t0.elapsed().as_secs_f64().max(1e-9);
    if first >= b.secs && min_repeats <= 1 {
        // A slow item: its budget is spent; time one warm call unless quick.
        if !b.rerun_slow {
            return vec![first];
        }
        let t = Instant::now();
        f();
        return vec![t.elapsed().as_secs_f64()];
    }
    let repeats = ((b.secs / first) as usize).clamp(min_repeats, b.repeats.max(min_repeats));
    let calls = ((b.secs / repeats as f64 / first) as usize).max(1);
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                f();
            }
            t.elapsed().as_secs_f64() / calls as f64
        })
        .collect()
}
