//! Quantized weights end to end: every family's test checkpoints converted with
//! `--dtype int8` and `int4`, run, and compared
//! - with the same file through the scalar reference kernels (`force_scalar`): the fast
//!   kernels dequantize the same blocks and sum the same products in another order, so
//!   they must agree to f32 summation order ([`MAX_REL_REFERENCE`]);
//! - with the same checkpoint converted with the quantized weights stored as f32 values
//!   (their blocks dequantized, `WeightDType::Int8Simulated`): the same numbers through
//!   the f32 kernels, so format, runtime and quantized kernels must agree to summation
//!   order ([`MAX_REL_SIMULATED`]);
//! - with the transformers goldens, loosely: the quantization error itself, bounded by
//!   what was measured (printed by each case).

use std::collections::BTreeMap;
use std::sync::Mutex;

use mote_models::host::AlignedBytes;
use mote_models::{ConvertOptions, Converted, HostTensor, WeightDType};
use mote_runtime::{DType, Model, Storage};
use mote_tests::{convert_with, data, run, tensors};

/// `force_scalar` is process-wide: the cases of this file run one at a time.
static KERNEL_PATH: Mutex<()> = Mutex::new(());

/// Fast kernels vs the scalar reference on the same quantized file: max abs difference
/// over the output's largest magnitude.
const MAX_REL_REFERENCE: f32 = 1e-4;
/// Quantized file vs its simulated f32 twin: the same measure.
const MAX_REL_SIMULATED: f32 = 1e-4;
/// Quantized file vs transformers: max abs error over the expected output's largest
/// magnitude. Measured over these checkpoints: int8 at most 0.032 (BERT's pooler; logits
/// 0.005-0.012), int4 at most 0.49 (BERT's tanh pooler of a 32-wide random model; logits
/// 0.04-0.22): 16 levels per block of 32 weights is coarse for these tiny random
/// checkpoints, which is what the simulated comparison is for.
const MAX_REL_GOLDEN_INT8: f32 = 0.05;
const MAX_REL_GOLDEN_INT4: f32 = 0.6;

fn opts(family: &str, dtype: WeightDType) -> ConvertOptions {
    let decoder = matches!(family, "llama" | "gpt2" | "mamba" | "rwkv");
    ConvertOptions { dtype, chunk: decoder.then_some(4), ..Default::default() }
}

/// Largest |x| of a tensor's values.
fn amax(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |a, x| a.max(x.abs()))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// (name, f32 values) of every float output named in `expected`.
fn float_outputs<'a>(
    got: &'a BTreeMap<String, HostTensor>,
    expected: &'a BTreeMap<String, HostTensor>,
) -> impl Iterator<Item = (&'a str, Vec<f32>, Vec<f32>)> + 'a {
    expected.iter().filter(|(_, t)| t.as_f32().is_some()).map(|(name, want)| {
        let g = got.get(name).unwrap_or_else(|| panic!("no output {name}"));
        assert_eq!(g.shape, want.shape, "{name}");
        (name.as_str(), g.to_f32(), want.to_f32())
    })
}

/// The dtypes and sizes of a quantized file's weights are as the format says.
fn check_file(name: &str, c: &Converted, dtype: DType) {
    let buf = AlignedBytes::new(&c.bytes);
    let m = Model::parse(&buf).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(m.version(), if c.quantized_tensors > 0 { 2 } else { 1 }, "{name}");
    let mut quantized = 0;
    for t in (0..m.tensor_count()).map(|i| m.tensor(i).unwrap()) {
        if t.dtype.is_quantized() {
            assert_eq!(t.dtype, dtype, "{name} {}", t.name);
            assert_eq!(t.storage, Storage::Weight);
            assert_eq!(t.shape.cols() % 32, 0);
            let block = if dtype == DType::Int8 { 34 } else { 20 };
            assert_eq!(t.bytes, t.shape.rows() * t.shape.cols() / 32 * block, "{name} {}", t.name);
            quantized += 1;
        }
    }
    assert_eq!(quantized, c.quantized_tensors, "{name}");
    assert!(c.flash_bytes < c.f16_flash_bytes || c.quantized_tensors == 0, "{name}");
}

fn case(family: &str, name: &str) {
    let _one = KERNEL_PATH.lock().unwrap_or_else(|e| e.into_inner());
    let dir = data(&format!("{family}/{name}"));
    let inputs = tensors(&dir.join("inputs.safetensors"));
    let expected = tensors(&dir.join("expected.safetensors"));
    let f16 = convert_with(&dir, &opts(family, WeightDType::F16));
    for (q, sim, dtype, golden_bound) in [
        (WeightDType::Int8, WeightDType::Int8Simulated, DType::Int8, MAX_REL_GOLDEN_INT8),
        (WeightDType::Int4, WeightDType::Int4Simulated, DType::Int4, MAX_REL_GOLDEN_INT4),
    ] {
        let cq = convert_with(&dir, &opts(family, q));
        let cs = convert_with(&dir, &opts(family, sim));
        check_file(name, &cq, dtype);
        assert_eq!(cq.f16_flash_bytes, f16.flash_bytes, "{name}: the f16 size the summary names");
        assert_eq!(cs.quantized_tensors, 0);
        assert!(cq.quantized_tensors > 0 || !name.ends_with("_a"), "{name}: nothing quantized");
        let (gq, gs) = (run(&cq.bytes, &inputs), run(&cs.bytes, &inputs));
        mote_runtime::force_scalar(true);
        let gr = run(&cq.bytes, &inputs);
        mote_runtime::force_scalar(false);
        let outs = float_outputs(&gq, &expected).zip(float_outputs(&gs, &expected)).zip(float_outputs(&gr, &expected));
        for (((out, vq, want), (_, vs, _)), (_, vr, _)) in outs {
            let rel_ref = max_abs_diff(&vq, &vr) / amax(&vr);
            let rel_sim = max_abs_diff(&vq, &vs) / amax(&vs);
            let err_golden = max_abs_diff(&vq, &want);
            let rel_golden = err_golden / amax(&want);
            println!(
                "{name} {q:?} {out}: {} weights quantized, {} B (f16 {} B); vs reference kernels \
                 {rel_ref:.2e} rel, vs simulated f32 {rel_sim:.2e} rel; vs transformers max abs {err_golden:.3e} ({rel_golden:.4} of the output's scale)",
                cq.quantized_tensors, cq.flash_bytes, cq.f16_flash_bytes
            );
            assert!(rel_ref <= MAX_REL_REFERENCE, "{name} {q:?} {out}: {rel_ref} vs the reference kernels");
            assert!(rel_sim <= MAX_REL_SIMULATED, "{name} {q:?} {out}: {rel_sim} vs the simulated f32 file");
            assert!(rel_golden <= golden_bound, "{name} {q:?} {out}: {rel_golden} vs transformers");
        }
    }
}

#[test]
fn vit() {
    case("vit", "vit_a");
    case("vit", "vit_b");
}

#[test]
fn bert() {
    case("bert", "bert_a");
    case("bert", "bert_b");
}

#[test]
fn gpt2() {
    case("gpt2", "gpt2_a");
    case("gpt2", "gpt2_b");
}

#[test]
fn llama() {
    case("llama", "llama_a");
    case("llama", "llama_b");
}

#[test]
fn mamba() {
    case("mamba", "mamba_a");
    case("mamba", "mamba_b");
}

#[test]
fn rwkv() {
    case("rwkv", "rwkv_a");
    case("rwkv", "rwkv_b");
}

/// f16 and f32 files are unchanged by quantization support: version 1, nothing quantized.
#[test]
fn plain_files_stay_version_1() {
    for dtype in [WeightDType::F16, WeightDType::F32, WeightDType::Int8Simulated] {
        let c = convert_with(&data("llama/llama_a"), &opts("llama", dtype));
        let buf = AlignedBytes::new(&c.bytes);
        assert_eq!(Model::parse(&buf).unwrap().version(), 1, "{dtype:?}");
        assert_eq!(c.quantized_tensors, 0, "{dtype:?}");
        assert_eq!(c.f16_flash_bytes, c.flash_bytes, "{dtype:?}: no quantized weight to store in f16 instead");
    }
}

/// The tied LM head (Llama-style `tie_word_embeddings`, GPT-2's default) reads the one
/// quantized embedding table: stored once, used by the Embedding and the head's MatMul.
#[test]
fn tied_head_shares_the_quantized_table() {
    let c = convert_with(&data("gpt2/gpt2_a"), &opts("gpt2", WeightDType::Int8));
    let buf = AlignedBytes::new(&c.bytes);
    let m = Model::parse(&buf).unwrap();
    let wte = (0..m.tensor_count()).find(|&i| m.tensor(i).unwrap().name.ends_with("wte.weight")).unwrap();
    assert_eq!(m.tensor(wte).unwrap().dtype, DType::Int8);
    let users: Vec<_> = (0..m.op_count())
        .map(|i| m.op(i).unwrap())
        .filter(|op| op.inputs[1] == wte as u32)
        .map(|op| op.opcode.name())
        .collect();
    assert_eq!(users, ["Embedding", "MatMul"]);
}
