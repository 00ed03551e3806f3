//! Golden tests for BERT, Llama and GPT-2 against transformers (checkpoints and outputs
//! made by `scripts/make_transformer_goldens.py`): outputs over the input, and 16
//! greedily generated tokens, with f16 and f32 weights and different prompt chunkings.

use std::collections::BTreeMap;

use mote_models::compare::compare;
use mote_models::host::AlignedBytes;
use mote_models::{ConvertOptions, HostTensor, WeightDType};
use mote_runtime::{Interpreter, Model};
use mote_tests::{compare_all, convert_with, data, run_generate, tensors};

/// Per-row cosine similarity required against transformers with f16 weights.
const MIN_COSINE_F16: f64 = 0.9999;
/// With f32 weights only summation order and libm differ.
const MIN_COSINE_F32: f64 = 0.999_999;
const MAX_ABS_F32: f32 = 2e-4;

fn opts(dtype: WeightDType, chunk: Option<usize>) -> ConvertOptions {
    ConvertOptions { dtype, chunk, ..Default::default() }
}

/// Compares every output row by row (each token's vector is its own item).
fn check(name: &str, got: &BTreeMap<String, HostTensor>, expected: &BTreeMap<String, HostTensor>, dtype: WeightDType) {
    for (out, c) in compare_all(got, expected) {
        let want = &expected[&out];
        if let Some(w) = want.as_i64() {
            assert_eq!(got[&out].as_i64(), Some(w), "{name}: {out} differ");
            println!("{name} {dtype:?} {out}: all {} equal", w.len());
            continue;
        }
        let rows = want.shape.iter().rev().skip(1).product::<usize>();
        let cols = *want.shape.last().unwrap();
        let per_row = compare(&got[&out].to_f32(), &want.to_f32(), &[rows, cols]).unwrap();
        println!(
            "{name} {dtype:?} {out}: max abs error {:.3e}, min row cosine {:.9}, argmax {}/{}",
            c.max_abs_error, per_row.min_item_cosine, per_row.argmax_agree, per_row.rows
        );
        let min = if dtype == WeightDType::F16 { MIN_COSINE_F16 } else { MIN_COSINE_F32 };
        assert!(per_row.min_item_cosine >= min, "{name} {out}: row cosine {}", per_row.min_item_cosine);
        if out == "logits" {
            assert_eq!(per_row.argmax_agree, per_row.rows, "{name}: argmax over the prompt differs");
        }
        if dtype == WeightDType::F32 {
            assert!(c.max_abs_error <= MAX_ABS_F32, "{name} {out}: max abs error {}", c.max_abs_error);
        }
    }
}

fn golden(family: &str, name: &str, dtype: WeightDType, chunk: Option<usize>) {
    let dir = data(&format!("{family}/{name}"));
    let converted = convert_with(&dir, &opts(dtype, chunk));
    let inputs = tensors(&dir.join("inputs.safetensors"));
    let expected = tensors(&dir.join("expected.safetensors"));
    let generate = expected.get("greedy_tokens").map(|t| t.elems());
    let got = run_generate(&converted.bytes, &inputs, generate);
    check(name, &got, &expected, dtype);
}

#[test]
fn bert_a_padded_batch_with_token_types() {
    golden("bert", "bert_a", WeightDType::F16, None);
    golden("bert", "bert_a", WeightDType::F32, None);
}

#[test]
fn bert_b_gelu_tanh_one_token_type() {
    golden("bert", "bert_b", WeightDType::F16, None);
    golden("bert", "bert_b", WeightDType::F32, None);
}

#[test]
fn llama_a_mha_untied() {
    golden("llama", "llama_a", WeightDType::F16, None);
    golden("llama", "llama_a", WeightDType::F32, None);
}

#[test]
fn llama_b_gqa_tied_rope_500k() {
    golden("llama", "llama_b", WeightDType::F16, None);
    golden("llama", "llama_b", WeightDType::F32, None);
    // Token by token, and in chunks that split the prompt unevenly.
    golden("llama", "llama_b", WeightDType::F16, Some(1));
    golden("llama", "llama_b", WeightDType::F16, Some(3));
}

#[test]
fn gpt2_a() {
    golden("gpt2", "gpt2_a", WeightDType::F16, None);
    golden("gpt2", "gpt2_a", WeightDType::F32, None);
}

#[test]
fn gpt2_b_inner_width_and_chunks() {
    golden("gpt2", "gpt2_b", WeightDType::F16, None);
    golden("gpt2", "gpt2_b", WeightDType::F32, None);
    golden("gpt2", "gpt2_b", WeightDType::F16, Some(1));
    golden("gpt2", "gpt2_b", WeightDType::F16, Some(4));
}

/// A 1024-token context prefilled in ONE call, in an arena smaller than a single head's
/// 1024 x 1024 f32 score matrix (4 MiB): attention streams over the keys. The logits of
/// the last tokens must equal those of a prefill in chunks of 16.
#[test]
fn context_1024_in_an_arena_smaller_than_one_score_matrix() {
    let dir = data("llama/llama_a");
    let one_call = convert_with(&dir, &ConvertOptions { max_seq: Some(1024), chunk: Some(1024), ..Default::default() });
    let score_matrix_bytes = 1024 * 1024 * 4;
    println!(
        "context 1024, chunk 1024: arena {} bytes (KV cache {}), one head's score matrix {score_matrix_bytes}",
        one_call.arena_bytes, one_call.persistent_bytes
    );
    assert!(one_call.arena_bytes < score_matrix_bytes, "arena {} >= {score_matrix_bytes}", one_call.arena_bytes);
    let chunked = convert_with(&dir, &ConvertOptions { max_seq: Some(1024), chunk: Some(16), ..Default::default() });
    let prompt: Vec<i32> = (0..1024).map(|i| (i * 7 + 3) % 128).collect();
    let last_logits = |bytes: &[u8]| {
        let buf = AlignedBytes::new(bytes);
        let model = Model::parse(&buf).unwrap();
        let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
        let mut it = Interpreter::new(&model, &mut arena).unwrap();
        for c in prompt.chunks(model.max_tokens()) {
            it.step(c).unwrap();
        }
        assert_eq!(it.position(), 1024);
        let l = it.output("logits").unwrap();
        let last = l[l.len() - 128..].to_vec();
        // The context is now full: one more token is a clear error.
        assert!(matches!(it.step(&[1]), Err(mote_runtime::Error::ContextFull { needed: 1025, capacity: 1024 })));
        last
    };
    let (a, b) = (last_logits(&one_call.bytes), last_logits(&chunked.bytes));
    assert!(a.iter().all(|v| v.is_finite()));
    let c = compare(&a, &b, &[1, 128]).unwrap();
    assert!(c.max_abs_error < 1e-3 && c.cosine > 0.99999, "{c:?}");
}

#[test]
fn decoder_errors_prompt_too_long_and_token_out_of_vocab() {
    let dir = data("gpt2/gpt2_a"); // context 64 (n_positions), vocab 100
    let c = convert_with(&dir, &opts(WeightDType::F16, None));
    let buf = AlignedBytes::new(&c.bytes);
    let model = Model::parse(&buf).unwrap();
    let long = BTreeMap::from([("input_ids".to_string(), HostTensor::i64(vec![1, 65], vec![1; 65]))]);
    let e = mote_models::host::run(&model, &long, None).unwrap_err().to_string();
    assert!(e.contains("65") && e.contains("context is 64"), "{e}");
    let near = BTreeMap::from([("input_ids".to_string(), HostTensor::i64(vec![1, 60], vec![1; 60]))]);
    let e = mote_models::host::run(&model, &near, Some(10)).unwrap_err().to_string();
    assert!(e.contains("plus 10 generated") && e.contains("69"), "{e}");
    let oov = BTreeMap::from([("input_ids".to_string(), HostTensor::i64(vec![1, 3], vec![5, 100, 7]))]);
    let e = mote_models::host::run(&model, &oov, None).unwrap_err().to_string();
    assert!(e.contains("input_ids") && e.contains("100") && e.contains("0..100"), "{e}");
    let negative = BTreeMap::from([("input_ids".to_string(), HostTensor::i64(vec![1, 2], vec![-1, 7]))]);
    assert!(mote_models::host::run(&model, &negative, None).is_err());
    // The interpreter itself: too many tokens for one call, and ids out of range.
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let mut it = Interpreter::new(&model, &mut arena).unwrap();
    assert!(matches!(it.step(&[1; 17]), Err(mote_runtime::Error::TokenCount { got: 17, max: 16 })));
    assert!(matches!(it.step(&[]), Err(mote_runtime::Error::TokenCount { got: 0, .. })));
    assert!(matches!(
        it.step(&[3, 1000]),
        Err(mote_runtime::Error::InputOutOfRange { index: 1, value: 1000, limit: 100 })
    ));
}

#[test]
fn unsupported_config_options_are_named() {
    let dir = data("llama/llama_b");
    let tmp = std::env::temp_dir().join(format!("mote-unsupported-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    {
        let f = "model.safetensors";
        std::fs::copy(dir.join(f), tmp.join(f)).unwrap();
    }
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "rope_parameters",
            serde_json::json!({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0}),
            "rope_type",
        ),
        ("num_key_value_heads", serde_json::json!(4), "num_key_value_heads"),
        ("hidden_act", serde_json::json!("swiglu_oai"), "hidden_act"),
        ("pretraining_tp", serde_json::json!(2), "pretraining_tp"),
    ];
    for (key, value, needle) in cases {
        let mut cfg = base.clone();
        cfg[key] = value;
        std::fs::write(tmp.join("config.json"), cfg.to_string()).unwrap();
        let e = mote_models::convert_dir(&tmp, &ConvertOptions::default()).unwrap_err().to_string();
        println!("{key}: {e}");
        assert!(e.contains(needle), "{key}: {e}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn kv_cache_bytes_scale_with_the_context() {
    // llama_b: 3 layers x 2 (K, V) x kv_heads 2 x head_dim 8 x 4 bytes = 384 bytes a token.
    let dir = data("llama/llama_b");
    for ctx in [256, 1024] {
        let c = convert_with(&dir, &ConvertOptions { max_seq: Some(ctx), ..Default::default() });
        println!("llama_b context {ctx}: KV cache {} bytes, arena {} bytes", c.persistent_bytes, c.arena_bytes);
        assert_eq!(c.persistent_bytes, 3 * 2 * 2 * 8 * 4 * ctx);
        assert!(c.arena_bytes > c.persistent_bytes);
    }
}
