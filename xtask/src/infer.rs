//! `cargo xtask infer` and `cargo xtask validate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mote_models::HostTensor;
use mote_models::compare::compare;
use mote_models::host::{run, run_in};
use mote_models::tensor::{read_safetensors, write_safetensors};

use crate::util::{parse_model, read_model};

#[derive(clap::Args)]
pub struct InferArgs {
    /// The .mote model.
    pub model: PathBuf,
    /// Inputs by Hugging Face name (e.g. pixel_values f32 [N, C, H, W]).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the outputs (safetensors).
    #[arg(long)]
    pub output: PathBuf,
    /// Also generate N tokens greedily after the prompt (causal language models).
    #[arg(long)]
    pub generate: Option<usize>,
    /// Run in an arena of exactly this many bytes (64-byte aligned), as on a board with
    /// that much RAM to spare (e.g. 64K); the default is what the model needs.
    #[arg(long, value_parser = crate::util::parse_bytes)]
    pub arena_bytes: Option<usize>,
}

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The .mote model.
    pub model: PathBuf,
    /// Inputs by Hugging Face name (safetensors).
    #[arg(long)]
    pub input: PathBuf,
    /// Reference outputs by name (safetensors), e.g. from transformers.
    #[arg(long)]
    pub reference: PathBuf,
    /// Fail when any batch item's cosine similarity is below this.
    #[arg(long, default_value_t = 0.9999)]
    pub min_cosine: f64,
    /// Also write Mote's outputs here.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Also generate N tokens greedily (decoders) and compare them with the reference's
    /// `greedy_tokens`, which must be equal.
    #[arg(long)]
    pub generate: Option<usize>,
}

fn read_inputs(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    if !path.exists() {
        bail!("{}: no such file", path.display());
    }
    read_safetensors(path).with_context(|| format!("reading inputs {}", path.display()))
}

fn run_model(
    model_path: &Path,
    input: &Path,
    generate: Option<usize>,
    arena_bytes: Option<usize>,
) -> Result<(BTreeMap<String, HostTensor>, f64)> {
    let bytes = read_model(model_path)?;
    let model = parse_model(model_path, &bytes)?;
    let inputs = read_inputs(input)?;
    let start = Instant::now();
    let outputs = match arena_bytes {
        None => run(&model, &inputs, generate)?,
        Some(n) => {
            let mut buf = vec![0u8; n + 63];
            let at = buf.as_ptr().align_offset(64);
            run_in(&model, &inputs, generate, &mut buf[at..at + n])?
        }
    };
    Ok((outputs, start.elapsed().as_secs_f64()))
}

pub fn run_infer(a: InferArgs) -> Result<ExitCode> {
    let (outputs, secs) = run_model(&a.model, &a.input, a.generate, a.arena_bytes)?;
    write_safetensors(&a.output, &outputs).with_context(|| format!("writing {}", a.output.display()))?;
    for (name, t) in &outputs {
        println!("{name} {:?}", t.shape);
    }
    println!("ran in {:.3} ms; wrote {}", secs * 1e3, a.output.display());
    Ok(ExitCode::SUCCESS)
}

pub fn run_validate(a: ValidateArgs) -> Result<ExitCode> {
    let (outputs, secs) = run_model(&a.model, &a.input, a.generate, None)?;
    let reference = read_inputs(&a.reference)?;
    if let Some(path) = &a.output {
        write_safetensors(path, &outputs).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut ok = true;
    let mut compared = 0;
    println!("{:<20} {:>12} {:>12} {:>14} {:>10}", "output", "max abs err", "cosine", "min item cos", "argmax");
    for (name, got) in &outputs {
        let Some(want) = reference.get(name) else {
            println!("{name:<20} (no reference)");
            continue;
        };
        if want.shape != got.shape {
            bail!("output {name}: Mote gives shape {:?}, the reference has {:?}", got.shape, want.shape);
        }
        if let (Some(g), Some(w)) = (got.as_i64(), want.as_i64()) {
            let same = g.iter().zip(w).filter(|(a, b)| a == b).count();
            let pass = g == w;
            ok &= pass;
            compared += 1;
            println!("{name:<20} {same}/{} tokens equal {}", w.len(), if pass { "ok" } else { "FAIL" });
            continue;
        }
        let (g, w) = (got.to_f32(), want.to_f32());
        let c = compare(&g, &w, &got.shape).context("length mismatch")?;
        compared += 1;
        let pass = c.min_item_cosine >= a.min_cosine;
        ok &= pass;
        println!(
            "{name:<20} {:>12.3e} {:>12.7} {:>14.7} {:>6}/{:<4} {}",
            c.max_abs_error,
            c.cosine,
            c.min_item_cosine,
            c.argmax_agree,
            c.rows,
            if pass { "ok" } else { "FAIL" }
        );
    }
    if compared == 0 {
        bail!(
            "the reference file has none of the model's outputs ({})",
            outputs.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    println!("ran in {:.3} ms", secs * 1e3);
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: an output differs from the reference (cosine below {} or tokens not equal)", a.min_cosine);
        Ok(ExitCode::FAILURE)
    }
}
