//! Golden tests: ViT checkpoints of three shapes (made by `scripts/make_vit_goldens.py`
//! with transformers) converted, run on the host and compared with transformers' outputs.

use mote_models::WeightDType;
use mote_tests::{compare_all, convert, data, run, tensors};

/// Per-image cosine similarity required against transformers (f16 weights).
const MIN_COSINE_F16: f64 = 0.9999;
/// With f32 weights the only differences are summation order and libm.
const MIN_COSINE_F32: f64 = 0.999_999;
const MAX_ABS_F32: f32 = 1e-4;

fn golden(name: &str, dtype: WeightDType) {
    let dir = data(&format!("vit/{name}"));
    let converted = convert(&dir, dtype);
    let inputs = tensors(&dir.join("inputs.safetensors"));
    let expected = tensors(&dir.join("expected.safetensors"));
    let got = run(&converted.bytes, &inputs);
    for (out, c) in compare_all(&got, &expected) {
        println!(
            "{name} {dtype:?} {out}: max abs error {:.3e}, min cosine {:.9}, argmax {}/{}",
            c.max_abs_error, c.min_item_cosine, c.argmax_agree, c.rows
        );
        let min_cos = if dtype == WeightDType::F16 { MIN_COSINE_F16 } else { MIN_COSINE_F32 };
        assert!(c.min_item_cosine >= min_cos, "{name} {out}: cosine {} < {min_cos}", c.min_item_cosine);
        if out == "logits" || out == "pooler_output" {
            assert_eq!(c.argmax_agree, c.rows, "{name} {out}: argmax differs");
        }
        if dtype == WeightDType::F32 {
            assert!(c.max_abs_error <= MAX_ABS_F32, "{name} {out}: max abs error {}", c.max_abs_error);
        }
    }
}

#[test]
fn vit_a_classifier_qkv_bias_f16() {
    golden("vit_a", WeightDType::F16);
}

#[test]
fn vit_b_classifier_no_qkv_bias_f16() {
    golden("vit_b", WeightDType::F16);
}

#[test]
fn vit_model_c_bare_with_pooler_f16() {
    golden("vit_model_c", WeightDType::F16);
}

#[test]
fn all_goldens_f32() {
    for name in ["vit_a", "vit_b", "vit_model_c"] {
        golden(name, WeightDType::F32);
    }
}

#[test]
fn f16_halves_the_weights() {
    let dir = data("vit/vit_b");
    let (h, f) = (convert(&dir, WeightDType::F16), convert(&dir, WeightDType::F32));
    assert_eq!(h.parameters, f.parameters);
    assert!(h.weight_bytes < f.weight_bytes * 55 / 100, "{} vs {}", h.weight_bytes, f.weight_bytes);
    assert_eq!(h.arena_bytes, f.arena_bytes);
}

#[test]
fn plan_is_at_its_lower_bound_and_verified() {
    for name in ["vit_a", "vit_b", "vit_model_c"] {
        let c = convert(&data(&format!("vit/{name}")), WeightDType::F16);
        // `compile` already ran the verifier; the greedy plan of a chain hits the bound.
        assert!(c.arena_bytes >= c.lower_bound_bytes);
        assert!(c.arena_bytes <= c.lower_bound_bytes * 11 / 10, "{name}: {} vs {}", c.arena_bytes, c.lower_bound_bytes);
    }
}
