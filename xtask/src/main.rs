//! `cargo xtask`: Mote's command line (convert, inspect, infer, validate, demo, ci).

mod bench;
mod ci;
mod ci_firmware;
mod ci_hostile;
mod convert;
mod demo;
mod elf;
mod firmware;
mod infer;
mod inspect;
mod ktest;
mod perplexity;
mod qemu;
mod text;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Mote: run small neural networks out of one static arena", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Convert a Hugging Face model directory (config.json + safetensors) to a .mote file.
    Convert(convert::Args),
    /// Show a .mote file: header, sections, tensors, ops and the arena plan.
    Inspect(inspect::Args),
    /// Run a .mote on the host CPU: inputs and outputs are safetensors files.
    Infer(infer::InferArgs),
    /// Run a .mote on the host and compare its outputs with reference outputs.
    Validate(infer::ValidateArgs),
    /// Generate text with a causal language model (tokens stream as they come).
    Generate(text::GenerateArgs),
    /// Perplexity of a causal language model on a text (non-overlapping windows).
    Perplexity(perplexity::Args),
    /// Sentence embeddings (mean pooling + L2 normalisation) with an encoder.
    Embed(text::EmbedArgs),
    /// Convert the bundled digits ViT, run its test set, print accuracy and footprint.
    Demo(demo::Args),
    /// Benchmarks: machine peak, kernels (reference vs fast path), models end to end.
    Bench(bench::Args),
    /// Build the firmware for an emulated Cortex-M, run it in QEMU, compare with the host.
    Qemu(qemu::Args),
    /// Run the kernel conformance cases on the emulated boards (kernel-test firmware).
    Ktest(ktest::Args),
    /// Build the firmware for a real chip and run it through probe-rs (defmt over RTT).
    Flash(firmware::FlashArgs),
    /// Everything CI checks: fmt, clippy, tests, no_std builds, stable scalar build.
    Ci(ci::Args),
}

fn main() -> ExitCode {
    // A panic is a bug; still, users get one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string().replace('\n', " ");
        eprintln!("error: internal error (please report): {msg}");
    }));
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Convert(a) => convert::run(a),
        Cmd::Inspect(a) => inspect::run(a),
        Cmd::Infer(a) => infer::run_infer(a),
        Cmd::Validate(a) => infer::run_validate(a),
        Cmd::Generate(a) => text::run_generate(a),
        Cmd::Embed(a) => text::run_embed(a),
        Cmd::Perplexity(a) => perplexity::run(a),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Qemu(a) => qemu::run_qemu(a),
        Cmd::Ktest(a) => ktest::run(a),
        Cmd::Flash(a) => firmware::run_flash(a),
        Cmd::Ci(a) => ci::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (for bundled data).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}
