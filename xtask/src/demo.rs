//! `cargo xtask demo`: the bundled ViT trained on scikit-learn's 8x8 digits, converted
//! and run on the host over its test split.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mote_models::compare::compare;
use mote_models::host::{AlignedBytes, run_batched};
use mote_models::tensor::read_safetensors;
use mote_models::{ConvertOptions, HostTensor};
use mote_runtime::Model;
use mote_runtime::sampler::argmax;

use crate::convert::print_summary;
use crate::util::thousands;

#[derive(clap::Args)]
pub struct Args {
    /// Model directory (default: the bundled demo/digits-vit).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Where to write the converted model (default: target/demo/digits-vit.mote, or
    /// digits-vit-int8.mote / -int4 / -f32 for the other weight types).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Storage type of the weight matrices, as `convert --dtype`: int8 / int4 quantize
    /// the matmul weights (blocks of 32), and the demo then runs them on the host and on
    /// the emulated Cortex-M4.
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32", "int8", "int4"])]
    pub dtype: String,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let dir = a.model_dir.unwrap_or_else(|| crate::workspace_root().join("demo/digits-vit"));
    println!("Mote demo: a ViT trained on scikit-learn's 8x8 digits ({})\n", dir.display());
    let dtype = mote_models::WeightDType::from_name(&a.dtype).unwrap_or_default();
    let opts = ConvertOptions { dtype, ..ConvertOptions::default() };
    let converted = mote_models::convert_dir(&dir, &opts).with_context(|| format!("converting {}", dir.display()))?;
    print_summary(&converted);
    let output = a.output.clone().unwrap_or_else(|| match a.dtype.as_str() {
        "f16" => PathBuf::from("target/demo/digits-vit.mote"),
        d => PathBuf::from(format!("target/demo/digits-vit-{d}.mote")),
    });
    let out = if output.is_relative() { crate::workspace_root().join(&output) } else { output };
    if let Some(p) = out.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(&out, &converted.bytes)?;
    println!("wrote             {}\n", out.display());

    let test = read_safetensors(&dir.join("test.safetensors")).context("reading the test split")?;
    let get = |name: &str| test.get(name).with_context(|| format!("test.safetensors has no {name}"));
    let (pixels, labels, torch) = (get("pixel_values")?, get("labels")?, get("torch_logits")?);
    let labels = labels.as_i64().context("labels are not integers")?;
    let n = pixels.shape.first().copied().unwrap_or(0);
    if n == 0 || labels.len() != n {
        bail!("test split is empty or its labels do not match its images");
    }

    let bytes = AlignedBytes::new(&converted.bytes);
    let model = Model::parse(&bytes)?;
    let inputs = BTreeMap::from([("pixel_values".to_string(), pixels.clone())]);
    // One warm-up pass, then the timed pass over the whole test split.
    run_batched(&model, &inputs)?;
    let start = Instant::now();
    let outputs = run_batched(&model, &inputs)?;
    let secs = start.elapsed().as_secs_f64();
    let logits: &HostTensor = outputs.get("logits").context("model has no logits output")?;
    let (mote, reference) = (logits.to_f32(), torch.to_f32());
    let classes = logits.shape.last().copied().unwrap_or(1);
    let mote_pred: Vec<usize> = mote.chunks(classes).map(argmax).collect();
    let torch_pred: Vec<usize> = reference.chunks(classes).map(argmax).collect();
    let correct = |pred: &[usize]| pred.iter().zip(labels).filter(|(p, l)| **p as i64 == **l).count();
    let agree = mote_pred.iter().zip(&torch_pred).filter(|(a, b)| a == b).count();
    let cmp = compare(&mote, &reference, &logits.shape).context("logit shapes differ from the reference")?;

    println!("test images       {}", thousands(n));
    println!(
        "accuracy          {:.2}% (Mote)   {:.2}% (PyTorch)",
        100.0 * correct(&mote_pred) as f64 / n as f64,
        100.0 * correct(&torch_pred) as f64 / n as f64
    );
    println!("agreement         {:.2}% of predictions equal PyTorch's ({agree}/{n})", 100.0 * agree as f64 / n as f64);
    println!("logits vs PyTorch max abs error {:.2e}, min cosine {:.6}", cmp.max_abs_error, cmp.min_item_cosine);
    println!("time per image    {:.1} us (host CPU, one core, {})", 1e6 * secs / n as f64, mote_runtime::kernel_path());
    println!(
        "\nrun it yourself:  cargo xtask infer {} --input {} --output logits.safetensors",
        out.display(),
        dir.join("test.safetensors").display()
    );
    on_the_m4(&out, &test)
}

/// Images the demo runs on the emulated Cortex-M4.
const BOARD_IMAGES: usize = 4;

/// The same model on an emulated Cortex-M4 (QEMU mps2-an386), compared with the host.
fn on_the_m4(model: &std::path::Path, test: &BTreeMap<String, HostTensor>) -> Result<ExitCode> {
    println!("\nOn a microcontroller: the firmware on an emulated Cortex-M4F (QEMU mps2-an386), {BOARD_IMAGES} images");
    if !crate::qemu::qemu_present() {
        println!("skipped: {}", crate::qemu::QEMU_INSTALL);
        return Ok(ExitCode::SUCCESS);
    }
    let board = crate::firmware::board("m4")?;
    let o = crate::qemu::compare_on_board(
        model,
        &board,
        test,
        Some(BOARD_IMAGES),
        None,
        &crate::firmware::BuildOptions::default(),
        std::time::Duration::from_secs(300),
    )?;
    crate::qemu::print_outcome(&board, &o, false);
    if !o.passed() {
        bail!("the board's logits differ from the host's");
    }
    println!(
        "\nrun it yourself:  cargo xtask qemu {} --board m4 --input {} --items {BOARD_IMAGES} --profile",
        model.display(),
        crate::workspace_root().join("demo/digits-vit/test.safetensors").display()
    );
    Ok(ExitCode::SUCCESS)
}
