//! Kernels: the scalar reference next to the dispatching fast path at model shapes (the
//! cases are `mote_kernels::bench`'s, which the criterion benches time too), as GFLOP/s
//! and % of the measured FMA peak (matmul, attention) or GB/s of weights and % of the
//! measured bandwidth (matvec).

use mote_kernels::bench::{self as cases, Case, Impl, QType, Rng, Work};

use super::machine::Machine;
use super::timing::{Budget, time_per_call};

#[derive(Debug)]
pub(super) struct KernelRow {
    pub(super) name: &'static str,
    pub(super) shape: String,
    pub(super) work: Work,
    pub(super) ref_s: f64,
    pub(super) fast_s: f64,
}

impl KernelRow {
    /// Throughput for `secs` per call, in GFLOP/s or GB/s.
    pub(super) fn rate(&self, secs: f64) -> f64 {
        match self.work {
            Work::Flops(x) | Work::WeightBytes(x) | Work::Bytes(x) => x / secs / 1e9,
        }
    }
    pub(super) fn unit(&self) -> &'static str {
        if matches!(self.work, Work::Flops(_)) { "GFLOP/s" } else { "GB/s" }
    }
    /// The fast path as a fraction of the machine figure it is bound by.
    pub(super) fn of_machine(&self, m: &Machine) -> Option<(f64, &'static str)> {
        match self.work {
            Work::Flops(_) => Some((self.rate(self.fast_s) / m.fma_gflops, "of FMA peak")),
            Work::WeightBytes(_) => Some((self.rate(self.fast_s) / m.dram_gbs(), "of DRAM bandwidth")),
            Work::Bytes(_) => None,
        }
    }
}

/// Times `case`'s reference, then its fast path.
fn row(b: &Budget, name: &'static str, mut case: Case) -> KernelRow {
    let ref_s = time_per_call(b, || case.call(Impl::Ref));
    let fast_s = time_per_call(b, || case.call(Impl::Fast));
    KernelRow { name, shape: case.shape, work: case.work, ref_s, fast_s }
}

pub(super) fn bench_kernels(b: &Budget) -> Vec<KernelRow> {
    let mut rng = Rng(0x6d6f_7465);
    let rng = &mut rng;
    let mut rows = vec![
        row(b, "matmul f16w (MiniLM qkv)", cases::matmul_f16w(rng, 128, 384, 384)),
        row(b, "matmul f16w (MiniLM fc1)", cases::matmul_f16w(rng, 128, 384, 1536)),
        row(b, "matmul f16w (ViT-Tiny fc1)", cases::matmul_f16w(rng, 197, 192, 768)),
        row(b, "matvec f16w (in cache)", cases::matmul_f16w(rng, 1, 288, 768)),
        row(b, "matvec f16w (classifier)", cases::matmul_f16w(rng, 1, 288, 32000)),
        // f16 weights (64 MiB) twice the last-level cache: DRAM-bound.
        row(b, "matvec f16w (64 MiB)", cases::matmul_f16w(rng, 1, 4096, 8192)),
        // The same shapes with int8 (Q8_0) and int4 (Q4_1) weights, next to the f16 ones.
        row(b, "matmul int8 (MiniLM qkv)", cases::matmul_q(rng, QType::Int8, 128, 384, 384)),
        row(b, "matmul int4 (MiniLM qkv)", cases::matmul_q(rng, QType::Int4, 128, 384, 384)),
        row(b, "matmul int8 (ViT-Tiny fc1)", cases::matmul_q(rng, QType::Int8, 197, 192, 768)),
        row(b, "matmul int4 (ViT-Tiny fc1)", cases::matmul_q(rng, QType::Int4, 197, 192, 768)),
        row(b, "matvec int8 (in cache)", cases::matmul_q(rng, QType::Int8, 1, 288, 768)),
        row(b, "matvec int4 (in cache)", cases::matmul_q(rng, QType::Int4, 1, 288, 768)),
        row(b, "matvec int8 (classifier)", cases::matmul_q(rng, QType::Int8, 1, 288, 32000)),
        row(b, "matvec int4 (classifier)", cases::matmul_q(rng, QType::Int4, 1, 288, 32000)),
        row(b, "matvec int8 (4096 x 8192)", cases::matmul_q(rng, QType::Int8, 1, 4096, 8192)),
        row(b, "matvec int4 (4096 x 8192)", cases::matmul_q(rng, QType::Int4, 1, 4096, 8192)),
        row(b, "patch embed f16w (ViT-Tiny)", cases::patch_embed_vit_tiny(rng)),
        row(b, "selective scan (prefill)", cases::selective_scan(rng, 16)),
        row(b, "selective scan (decode)", cases::selective_scan(rng, 1)),
    ];
    let (heads, head_dim) = (12, 32);
    let encoder = cases::mha_shape(heads, head_dim, 128, 128, false, 0);
    rows.push(row(b, "attention (encoder)", cases::attention(rng, encoder)));
    let decode = cases::mha_shape(heads, head_dim, 1, 1024, true, 1023);
    rows.push(row(b, "attention (decode)", cases::attention(rng, decode)));
    let vit = cases::mha_shape(3, 64, 197, 197, false, 0);
    rows.push(row(b, "attention (ViT-Tiny)", cases::attention(rng, vit)));
    let [ln, rms] = cases::norms(rng, 128, 384);
    rows.push(row(b, "layer_norm", ln));
    rows.push(row(b, "rms_norm", rms));
    rows
}
