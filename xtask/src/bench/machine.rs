//! The machine, measured in the same run: the f32 FMA peak of one core and the DRAM read
//! bandwidth (one stream, eight interleaved streams), its CPU and its load.

use std::hint::black_box;

use super::timing::{Budget, best_time_per_call};

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
pub(super) struct Machine {
    pub(super) cpu: String,
    pub(super) fma_gflops: f64,
    pub(super) fma_how: &'static str,
    pub(super) dram_1_gbs: f64,
    pub(super) dram_8_gbs: f64,
    pub(super) dram_bytes: usize,
}

impl Machine {
    /// The DRAM read bandwidth matvecs are compared with: the better of the two probes
    /// (how many streams a CPU's prefetchers follow best differs; both are a lower bound).
    pub(super) fn dram_gbs(&self) -> f64 {
        self.dram_1_gbs.max(self.dram_8_gbs)
    }
}

pub(super) fn measure_machine(b: &Budget) -> Machine {
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
pub(super) fn load_average() -> Option<String> {
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
