//! `cargo xtask inspect <FILE.mote>`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use mote_runtime::format::NONE;

use crate::util::{bytes, parse_model, read_model};

#[derive(clap::Args)]
pub struct Args {
    /// The .mote model.
    pub model: PathBuf,
    /// Also print the model's config.json.
    #[arg(long)]
    pub config: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let buf = read_model(&a.model)?;
    let m = parse_model(&a.model, &buf)?;
    println!("file              {}", a.model.display());
    println!("format            .mote v{} (checksum {:#010x} ok)", m.version(), m.checksum());
    println!("architecture      {}", m.architecture());
    println!("flash bytes       {} (weights {})", bytes(m.file_bytes()), bytes(m.weight_bytes()));
    println!("arena bytes       {} (persistent {})", bytes(m.arena_bytes()), bytes(m.persistent_bytes()));
    for i in 0..m.input_count() {
        if let Some(t) = m.input(i) {
            println!("input             {} {:?} {}", t.name, t.shape.dims(), t.dtype.name());
        }
    }
    for i in 0..m.output_count() {
        if let Some(t) = m.output(i) {
            println!("output            {} {:?} {}", t.name, t.shape.dims(), t.dtype.name());
        }
    }
    if a.config {
        println!("config            {}", m.config_json());
    }
    println!("\ntensors ({})", m.tensor_count());
    println!("  {:>4}  {:<10} {:<5} {:>10} {:>10}  {:<18} name", "id", "storage", "dtype", "offset", "bytes", "shape");
    for i in 0..m.tensor_count() {
        if let Some(t) = m.tensor(i) {
            let shape = format!("{:?}", t.shape.dims());
            println!(
                "  {i:>4}  {:<10} {:<5} {:>10} {:>10}  {shape:<18} {}",
                t.storage.name(),
                t.dtype.name(),
                t.offset,
                t.bytes,
                t.name
            );
        }
    }
    println!("\nops ({})", m.op_count());
    for i in 0..m.op_count() {
        let Some(op) = m.op(i) else { continue };
        let name = |id: u32| m.tensor(id as usize).map_or("?".to_string(), |t| t.name.to_string());
        let ins: Vec<String> = op.inputs.iter().filter(|&&id| id != NONE).map(|&id| name(id)).collect();
        let params: Vec<String> = op.params.iter().map(u32::to_string).collect();
        println!(
            "  {i:>4}  {:<11} {} -> {}  [{}]",
            op.opcode.name(),
            ins.join(", "),
            name(op.output),
            params.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
