//! `cargo xtask convert <HF_DIR> -o <FILE.mote>`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use mote_models::{ConvertOptions, Converted, WeightDType};

use crate::util::{bytes, parse_bytes, thousands};

#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face model directory: config.json and model.safetensors (or a sharded index).
    pub dir: PathBuf,
    /// Output .mote file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Storage type of weight matrices (biases and norms stay f32). int8 / int4 store the
    /// MatMul weights and Embedding tables whose rows are a multiple of 32 wide in
    /// blocks of 32 (llama.cpp's Q8_0 / Q4_1); other matrices stay f16.
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32", "int8", "int4"])]
    pub dtype: String,
    /// Fail if the .mote would be larger than this (e.g. 1M, 512K).
    #[arg(long, value_parser = parse_bytes)]
    pub max_flash: Option<usize>,
    /// Fail if the arena would be larger than this (e.g. 256K).
    #[arg(long, value_parser = parse_bytes)]
    pub max_arena: Option<usize>,
    /// Longest sequence: a decoder's KV-cache context, an encoder's longest input
    /// (default: the config's max_position_embeddings / n_positions).
    #[arg(long)]
    pub max_seq: Option<usize>,
    /// Decoders: most tokens per call (prompt chunk); the arena grows with it, 1 is smallest.
    #[arg(long)]
    pub chunk: Option<usize>,
}

pub fn options(a: &Args) -> ConvertOptions {
    ConvertOptions {
        dtype: WeightDType::from_name(&a.dtype).unwrap_or_default(),
        max_flash: a.max_flash,
        max_arena: a.max_arena,
        max_seq: a.max_seq,
        chunk: a.chunk,
    }
}

/// The summary `convert` and `demo` print.
pub fn print_summary(c: &Converted) {
    println!("architecture      {}", c.architecture);
    println!("parameters        {}", thousands(c.parameters));
    let ops: Vec<String> = c.op_counts.iter().map(|(k, v)| format!("{k} x{v}")).collect();
    println!("ops               {} ({})", c.ops, ops.join(", "));
    for (name, shape) in &c.inputs {
        println!("input             {name} {shape:?}");
    }
    for (name, shape) in &c.outputs {
        println!("output            {name} {shape:?}");
    }
    println!("flash bytes       {} (weights {})", bytes(c.flash_bytes), bytes(c.weight_bytes));
    if c.quantized_tensors > 0 {
        println!(
            "quantized         {} tensors; flash bytes {} ({:.2}x the f16 file's {})",
            c.quantized_tensors,
            bytes(c.flash_bytes),
            c.flash_bytes as f64 / c.f16_flash_bytes.max(1) as f64,
            bytes(c.f16_flash_bytes)
        );
    }
    let pct = if c.lower_bound_bytes > 0 { 100.0 * c.arena_bytes as f64 / c.lower_bound_bytes as f64 } else { 100.0 };
    println!(
        "arena bytes       {} (lower bound {}, plan at {pct:.1}% of it)",
        bytes(c.arena_bytes),
        bytes(c.lower_bound_bytes)
    );
    if c.max_context > 0 {
        println!(
            "KV cache bytes    {} for {} tokens of context (persistent part of the arena)",
            bytes(c.persistent_bytes),
            c.max_context
        );
        println!("tokens per call   {} (--chunk)", c.max_tokens);
    } else if c.max_tokens > 0 {
        println!("max tokens        {} (--max-seq)", c.max_tokens);
    }
    if c.persistent_bytes > 0 && c.max_context == 0 {
        println!("state bytes       {} (persistent part of the arena)", bytes(c.persistent_bytes));
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let converted =
        mote_models::convert_dir(&a.dir, &options(&a)).with_context(|| format!("converting {}", a.dir.display()))?;
    print_summary(&converted);
    if let Some(parent) = a.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&a.output, &converted.bytes).with_context(|| format!("writing {}", a.output.display()))?;
    println!("wrote             {}", a.output.display());
    Ok(ExitCode::SUCCESS)
}
