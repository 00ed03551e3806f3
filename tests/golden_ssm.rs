//! Mamba and RWKV-4 against transformers (`scripts/make_ssm_goldens.py`): logits over a
//! prompt, 16 greedy tokens, the logits after streaming 300 tokens one at a time, and
//! constant memory over 10 000+ steps with save / restore of the state.

use mote_models::compare::compare;
use mote_models::host::AlignedBytes;
use mote_models::{ConvertOptions, WeightDType};
use mote_runtime::{Interpreter, Model};
use mote_tests::{compare_all, convert_with, data, run_generate, tensors};

const MIN_COSINE_F16: f64 = 0.9999;
const MIN_COSINE_F32: f64 = 0.999_999;

fn golden(family: &str, name: &str, dtype: WeightDType, chunk: Option<usize>) {
    let dir = data(&format!("{family}/{name}"));
    let c = convert_with(&dir, &ConvertOptions { dtype, chunk, ..Default::default() });
    let inputs = tensors(&dir.join("inputs.safetensors"));
    let expected = tensors(&dir.join("expected.safetensors"));
    let got = run_generate(&c.bytes, &inputs, Some(16));
    for (out, cmp) in compare_all(&got, &expected) {
        if let Some(w) = expected[&out].as_i64() {
            assert_eq!(got[&out].as_i64(), Some(w), "{name} {dtype:?} chunk {chunk:?}: greedy tokens differ");
            continue;
        }
        let shape = &expected[&out].shape;
        let rows = compare(&got[&out].to_f32(), &expected[&out].to_f32(), &[shape[1], shape[2]]).unwrap();
        println!(
            "{name} {dtype:?} chunk {chunk:?} {out}: max abs error {:.3e}, min row cosine {:.9}, argmax {}/{}",
            cmp.max_abs_error, rows.min_item_cosine, rows.argmax_agree, rows.rows
        );
        let min = if dtype == WeightDType::F16 { MIN_COSINE_F16 } else { MIN_COSINE_F32 };
        assert!(rows.min_item_cosine >= min, "{name} {out}: {}", rows.min_item_cosine);
        assert_eq!(rows.argmax_agree, rows.rows);
    }
}

/// Feeds `stream_ids` one token at a time; the last logits must match transformers' run
/// with its recurrent cache.
fn stream(family: &str, name: &str) {
    let dir = data(&format!("{family}/{name}"));
    let c = convert_with(&dir, &ConvertOptions { chunk: Some(1), ..Default::default() });
    let s = tensors(&dir.join("expected_stream.safetensors"));
    let ids: Vec<i32> = s["stream_ids"].as_i64().unwrap().iter().map(|&v| v as i32).collect();
    let want = s["logits_last"].to_f32();
    let buf = AlignedBytes::new(&c.bytes);
    let model = Model::parse(&buf).unwrap();
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let mut it = Interpreter::new(&model, &mut arena).unwrap();
    for &id in &ids {
        it.step(&[id]).unwrap();
    }
    let got = it.output("logits").unwrap();
    let cmp = compare(got, &want, &[1, want.len()]).unwrap();
    println!(
        "{name}: after {} streamed tokens, max abs error {:.3e}, cosine {:.9}",
        ids.len(),
        cmp.max_abs_error,
        cmp.cosine
    );
    assert!(cmp.cosine >= MIN_COSINE_F16 && cmp.argmax_agree == 1, "{cmp:?}");
}

/// 10 000+ single-token steps in an arena of exactly the planned size between guard
/// bytes: the guards stay untouched, the state stays the converter's size, the outputs
/// stay finite; saving the state and restoring it later replays the same logits.
fn long_run(family: &str, name: &str) {
    let dir = data(&format!("{family}/{name}"));
    let c = convert_with(&dir, &ConvertOptions { chunk: Some(1), ..Default::default() });
    let buf = AlignedBytes::new(&c.bytes);
    let model = Model::parse(&buf).unwrap();
    const GUARD: usize = 256;
    let need = model.arena_bytes();
    let mut raw = vec![0u8; need + 2 * GUARD + 64];
    let start = raw.as_ptr().align_offset(64) + GUARD;
    raw[..start].fill(0xA5);
    raw[start + need..].fill(0x5A);
    let vocab = model.output(0).unwrap().shape.cols();
    let (saved, resumed) = {
        let mut it = Interpreter::new(&model, &mut raw[start..start + need]).unwrap();
        assert_eq!(it.state().len(), c.persistent_bytes);
        let mut tok = 1i32;
        let mut saved = None;
        let mut after_save = Vec::new();
        for step in 0..10_050 {
            it.step(&[tok]).unwrap();
            let logits = it.output("logits").unwrap();
            assert!(logits.iter().all(|v| v.is_finite()), "step {step}: non-finite logits");
            // Follow the model, with a perturbation so the stream does not settle.
            tok = ((mote_runtime::sampler::argmax(logits) + step % 7) % vocab) as i32;
            if step == 5_000 {
                saved = Some((it.state().to_vec(), it.position(), tok));
            }
            if step > 5_000 && step <= 5_020 {
                after_save.push(logits.to_vec());
            }
        }
        assert_eq!(it.position(), 10_050);
        let (state, pos, mut tok) = saved.unwrap();
        it.restore(&state, pos).unwrap();
        let mut replay = Vec::new();
        for step in 5_001..=5_020 {
            it.step(&[tok]).unwrap();
            let logits = it.output("logits").unwrap();
            tok = ((mote_runtime::sampler::argmax(logits) + step % 7) % vocab) as i32;
            replay.push(logits.to_vec());
        }
        (after_save, replay)
    };
    assert_eq!(saved, resumed, "restoring the saved state did not replay the same logits");
    assert!(raw[..start].iter().all(|&b| b == 0xA5), "wrote below the arena");
    assert!(raw[start + need..].iter().all(|&b| b == 0x5A), "wrote past the arena");
    println!(
        "{name}: 10 050 steps in {need} arena bytes ({} state bytes), guards intact, save/restore replays exactly",
        c.persistent_bytes
    );
}

#[test]
fn mamba_a_tied_auto_dt_rank() {
    golden("mamba", "mamba_a", WeightDType::F16, None);
    golden("mamba", "mamba_a", WeightDType::F32, None);
    golden("mamba", "mamba_a", WeightDType::F16, Some(1));
    stream("mamba", "mamba_a");
}

#[test]
fn mamba_b_biases_kernel_3_state_16() {
    golden("mamba", "mamba_b", WeightDType::F16, None);
    golden("mamba", "mamba_b", WeightDType::F32, None);
    golden("mamba", "mamba_b", WeightDType::F16, Some(3));
    stream("mamba", "mamba_b");
}

#[test]
fn rwkv_a() {
    golden("rwkv", "rwkv_a", WeightDType::F16, None);
    golden("rwkv", "rwkv_a", WeightDType::F32, None);
    golden("rwkv", "rwkv_a", WeightDType::F16, Some(1));
    stream("rwkv", "rwkv_a");
}

#[test]
fn rwkv_b_explicit_intermediate() {
    golden("rwkv", "rwkv_b", WeightDType::F16, None);
    golden("rwkv", "rwkv_b", WeightDType::F32, None);
    golden("rwkv", "rwkv_b", WeightDType::F16, Some(5));
    stream("rwkv", "rwkv_b");
}

#[test]
fn rwkv_b_with_rescale_every_gives_the_same_outputs() {
    golden("rwkv", "rwkv_b_rescale", WeightDType::F16, None);
}

#[test]
fn mamba_ten_thousand_steps_constant_memory() {
    long_run("mamba", "mamba_a");
}

#[test]
fn rwkv_ten_thousand_steps_constant_memory() {
    long_run("rwkv", "rwkv_a");
}

#[test]
fn ssm_refuses_max_seq() {
    let e =
        mote_models::convert_dir(&data("mamba/mamba_a"), &ConvertOptions { max_seq: Some(64), ..Default::default() })
            .unwrap_err()
            .to_string();
    assert!(e.contains("no context limit"), "{e}");
}
