//! Determinism: the same checkpoint converts to the same bytes, and the same model and
//! input give bit-identical outputs across interpreters, arenas (zeroed or full of
//! garbage) and repeated calls. Also measures how far the SIMD path (the host's) is from
//! the scalar reference path (a board built without the `simd` feature): the README's
//! "host vs board" figures come from `cargo test -p mote-tests --test determinism --
//! --nocapture`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use mote_models::host::{AlignedBytes, run_in};
use mote_models::{ConvertOptions, HostTensor, TensorData};
use mote_runtime::{Interpreter, Model};
use mote_tests::{convert_with, data, tensors};

/// `force_scalar` is process-wide: the tests of this file run one at a time.
static KERNEL_PATH: Mutex<()> = Mutex::new(());

/// One checkpoint of each architecture family, with its inputs, and how many tokens to
/// generate (decoders).
const MODELS: [(&str, Option<usize>); 7] = [
    ("vit/vit_a", None),
    ("vit/vit_model_c", None),
    ("bert/bert_a", None),
    ("llama/llama_b", Some(8)),
    ("gpt2/gpt2_a", Some(8)),
    ("mamba/mamba_a", Some(8)),
    ("rwkv/rwkv_a", Some(8)),
];

fn convert(rel: &str) -> Vec<u8> {
    convert_with(&data(rel), &ConvertOptions { chunk: chunk(rel), ..Default::default() }).bytes
}

/// Decoders run in chunks of 3 tokens, so a prompt takes several calls.
fn chunk(rel: &str) -> Option<usize> {
    ["llama", "gpt2", "mamba", "rwkv"].iter().any(|f| rel.starts_with(f)).then_some(3)
}

/// Runs the model in an arena whose bytes start as `fill`.
fn run(
    m: &Model<'_>,
    inputs: &BTreeMap<String, HostTensor>,
    generate: Option<usize>,
    fill: u8,
) -> BTreeMap<String, HostTensor> {
    let mut arena = vec![fill; Interpreter::arena_bytes_for(m)];
    run_in(m, inputs, generate, &mut arena).expect("runs")
}

fn bits(t: &HostTensor) -> Vec<u64> {
    match &t.data {
        TensorData::F32(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as u64).collect(),
    }
}

#[test]
fn conversion_is_deterministic() {
    let _g = KERNEL_PATH.lock().unwrap_or_else(|e| e.into_inner());
    for (rel, _) in MODELS {
        assert_eq!(convert(rel), convert(rel), "{rel}: two conversions differ");
    }
}

#[test]
fn same_model_and_input_give_bit_identical_outputs() {
    let _g = KERNEL_PATH.lock().unwrap_or_else(|e| e.into_inner());
    mote_runtime::force_scalar(false);
    for (rel, generate) in MODELS {
        let bytes = convert(rel);
        let inputs = tensors(&data(rel).join("inputs.safetensors"));
        // Two copies of the model at different addresses, separate interpreters and arenas.
        let (buf_a, buf_b) = (AlignedBytes::new(&bytes), AlignedBytes::new(&bytes));
        let (a, b) = (Model::parse(&buf_a).unwrap(), Model::parse(&buf_b).unwrap());
        let first = run(&a, &inputs, generate, 0x00);
        let runs = [run(&b, &inputs, generate, 0xFF), run(&a, &inputs, generate, 0x5A), run(&a, &inputs, generate, 0)];
        for (i, other) in runs.iter().enumerate() {
            assert_eq!(first.keys().collect::<Vec<_>>(), other.keys().collect::<Vec<_>>());
            for (name, t) in &first {
                assert_eq!(bits(t), bits(&other[name]), "{rel} {name}: run {} differs from run 0", i + 1);
            }
        }
        // Repeated invokes on one interpreter, inputs set again each time.
        if generate.is_none() && a.input_count() == 1 {
            let t = a.input(0).unwrap();
            let x: Vec<f32> = inputs[t.name].to_f32()[..t.elems()].to_vec();
            let mut arena = vec![0u8; Interpreter::arena_bytes_for(&a)];
            let mut it = Interpreter::new(&a, &mut arena).unwrap();
            let out = a.output(0).unwrap().name;
            let mut seen: Option<Vec<u32>> = None;
            for _ in 0..5 {
                it.set_input(t.name, &x).unwrap();
                it.invoke().unwrap();
                let now: Vec<u32> = it.output(out).unwrap().iter().map(|v| v.to_bits()).collect();
                assert!(seen.as_ref().is_none_or(|s| *s == now), "{rel}: repeated invoke differs");
                seen = Some(now);
            }
        }
    }
}

/// The SIMD and scalar paths sum in different orders (8-lane partial sums and a
/// reduction tree against one running sum) and the SIMD path has its own `exp`; both
/// are f32 throughout. Their outputs differ by rounding only: the measured worst case on
/// these models is printed, and asserted well below anything that changes a result.
#[test]
fn simd_and_scalar_paths_differ_by_rounding_only() {
    let _g = KERNEL_PATH.lock().unwrap_or_else(|e| e.into_inner());
    // Measured: at most 6.2e-7 on these models (AVX2 host); 16x headroom for other CPUs.
    const MAX_REL: f64 = 1e-5; // of the output's largest magnitude
    for (rel, generate) in MODELS {
        let bytes = convert(rel);
        let inputs = tensors(&data(rel).join("inputs.safetensors"));
        let buf = AlignedBytes::new(&bytes);
        let m = Model::parse(&buf).unwrap();
        mote_runtime::force_scalar(false);
        let simd_path = mote_runtime::kernel_path();
        let simd = run(&m, &inputs, generate, 0);
        mote_runtime::force_scalar(true);
        assert_eq!(mote_runtime::kernel_path(), "scalar reference");
        let scalar = run(&m, &inputs, generate, 0);
        mote_runtime::force_scalar(false);
        for (name, s) in &simd {
            let r = &scalar[name];
            if let Some(tokens) = s.as_i64() {
                assert_eq!(Some(tokens), r.as_i64(), "{rel}: greedy tokens differ between the paths");
                continue;
            }
            let (s, r) = (s.to_f32(), r.to_f32());
            let scale = r.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
            let max_abs = s.iter().zip(&r).fold(0f64, |m, (a, b)| m.max(f64::from((a - b).abs())));
            let identical = s.iter().zip(&r).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
            println!(
                "{rel} {name}: SIMD ({simd_path}) vs scalar: max abs diff {max_abs:.2e}, {:.2e} of max |output| {scale:.2}, {identical}/{} values bit-identical",
                max_abs / scale,
                s.len()
            );
            assert!(max_abs / scale <= MAX_REL, "{rel} {name}: {max_abs} of {scale}");
        }
    }
}
