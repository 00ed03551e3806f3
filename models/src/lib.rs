//! Mote's converter: a Hugging Face checkpoint directory -> op graph (per-architecture
//! recipe) -> memory plan -> `.mote` bytes; and a host runner for converted models.
#![forbid(unsafe_code)]

pub mod bert;
mod blocks;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod error;
pub mod gpt2;
pub mod graph;
pub mod host;
pub mod llama;
pub mod mamba;
pub mod planner;
pub mod rwkv;
pub mod tensor;
pub mod vit;
pub mod writer;

use std::collections::BTreeMap;
use std::path::Path;

pub use checkpoint::Checkpoint;
pub use error::{Error, Result, RunError};
pub use graph::{Graph, WeightDType};
pub use planner::Plan;
pub use tensor::{HostTensor, TensorData};

/// Architectures the converter reads, by their `config.json` `architectures` name.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "ViTForImageClassification",
    "ViTModel",
    "BertModel",
    "LlamaForCausalLM",
    "GPT2LMHeadModel",
    "MambaForCausalLM",
    "RwkvForCausalLM",
];

/// Tokens per call for decoders when `--chunk` is not given.
pub const DEFAULT_DECODER_CHUNK: usize = 16;

/// Conversion settings.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Storage type of matrices (vectors are always f32); int8 / int4 quantize the MatMul
    /// weights and Embedding tables whose rows are a multiple of 32 wide.
    pub dtype: WeightDType,
    /// Fail if the `.mote` file would be larger than this.
    pub max_flash: Option<usize>,
    /// Fail if the arena would be larger than this.
    pub max_arena: Option<usize>,
    /// Longest sequence: the KV-cache context of a decoder, the longest input of an
    /// encoder (default: the config's `max_position_embeddings` / `n_positions`).
    pub max_seq: Option<usize>,
    /// Decoders: most tokens one call processes (prefill chunk; default 16, at most
    /// `max_seq`). The arena grows with it; 1 gives the smallest arena.
    pub chunk: Option<usize>,
}

/// What a conversion produced, with the numbers a firmware engineer budgets with.
#[derive(Clone, Debug)]
pub struct Converted {
    pub bytes: Vec<u8>,
    pub architecture: String,
    pub parameters: usize,
    pub ops: usize,
    pub tensors: usize,
    pub op_counts: BTreeMap<&'static str, usize>,
    pub flash_bytes: usize,
    pub weight_bytes: usize,
    /// Weights stored in int8 / int4 blocks.
    pub quantized_tensors: usize,
    /// What the file would take with those weights in f16 (the default `--dtype`).
    pub f16_flash_bytes: usize,
    pub arena_bytes: usize,
    pub persistent_bytes: usize,
    pub lower_bound_bytes: usize,
    pub max_tokens: usize,
    pub max_context: usize,
    pub inputs: Vec<(String, Vec<usize>)>,
    pub outputs: Vec<(String, Vec<usize>)>,
}

/// The architecture named by a config: `architectures[0]`, else from `model_type`.
pub fn architecture_of(cfg: &serde_json::Value) -> Result<String> {
    if let Some(a) = cfg.get("architectures").and_then(|a| a.get(0)).and_then(|a| a.as_str()) {
        return Ok(a.to_string());
    }
    match cfg.get("model_type").and_then(|m| m.as_str()) {
        Some("vit") => Ok("ViTModel".into()),
        Some("bert") => Ok("BertModel".into()),
        Some("llama") => Ok("LlamaForCausalLM".into()),
        Some("gpt2") => Ok("GPT2LMHeadModel".into()),
        Some("mamba") => Ok("MambaForCausalLM".into()),
        Some("rwkv") => Ok("RwkvForCausalLM".into()),
        Some(other) => Ok(format!("model_type {other:?}")),
        None => Err(Error::Config {
            key: "architectures".into(),
            msg: "neither architectures nor model_type is set".into(),
        }),
    }
}

fn seq_err(msg: String) -> Error {
    Error::Config { key: "--max-seq / --chunk".into(), msg }
}

/// Sets a decoder's context and tokens per call from the options and the config default.
fn decoder_sizes(g: &mut Graph, opts: &ConvertOptions, config_max: usize) -> Result<()> {
    let context = opts.max_seq.unwrap_or(config_max);
    let chunk = opts.chunk.unwrap_or(DEFAULT_DECODER_CHUNK.min(context));
    if context == 0 || chunk == 0 || chunk > context {
        return Err(seq_err(format!("need 1 <= chunk ({chunk}) <= max-seq ({context})")));
    }
    g.max_context = context;
    g.max_tokens = chunk;
    Ok(())
}

/// Builds the op graph for a checkpoint.
pub fn build_graph(ckpt: &Checkpoint, opts: &ConvertOptions) -> Result<Graph> {
    let arch = architecture_of(&ckpt.config)?;
    let config_json = serde_json::to_string(&ckpt.config).unwrap_or_default();
    let mut g = Graph::new(&arch, config_json, opts.dtype);
    let cfg = &ckpt.config;
    match arch.as_str() {
        "ViTForImageClassification" => vit::build(&mut g, ckpt, true)?,
        "ViTModel" => vit::build(&mut g, ckpt, false)?,
        "BertModel" => {
            if opts.chunk.is_some() {
                return Err(seq_err("--chunk is for decoders; an encoder sees the whole sequence at once".into()));
            }
            g.max_tokens = opts.max_seq.unwrap_or(config::usize_or(cfg, "max_position_embeddings", 512)?);
            bert::build(&mut g, ckpt)?
        }
        "LlamaForCausalLM" => {
            decoder_sizes(&mut g, opts, config::usize_or(cfg, "max_position_embeddings", 2048)?)?;
            llama::build(&mut g, ckpt)?
        }
        "GPT2LMHeadModel" => {
            decoder_sizes(&mut g, opts, config::usize_or(cfg, "n_positions", 1024)?)?;
            gpt2::build(&mut g, ckpt)?
        }
        "MambaForCausalLM" | "RwkvForCausalLM" => {
            if opts.max_seq.is_some() {
                return Err(seq_err(format!(
                    "{arch} keeps a constant-size state and has no context limit; drop --max-seq"
                )));
            }
            g.max_tokens = opts.chunk.unwrap_or(DEFAULT_DECODER_CHUNK);
            if g.max_tokens == 0 {
                return Err(seq_err("--chunk must be at least 1".into()));
            }
            if arch == "MambaForCausalLM" { mamba::build(&mut g, ckpt)? } else { rwkv::build(&mut g, ckpt)? }
        }
        _ => {
            return Err(Error::UnknownArchitecture { found: arch, supported: SUPPORTED_ARCHITECTURES.to_vec() });
        }
    }
    g.finish_weights()?;
    Ok(g)
}

/// Plans, verifies and writes a graph.
pub fn compile(g: &Graph, opts: &ConvertOptions) -> Result<Converted> {
    planner::check_dataflow(g).map_err(Error::Plan)?;
    let plan = planner::plan(g);
    planner::verify(g, &plan).map_err(Error::Plan)?;
    let bytes = writer::write(g, &plan)?;
    let weight_bytes = g.tensors.iter().map(|t| if t.is_weight() { t.bytes() } else { 0 }).sum();
    let mut op_counts = BTreeMap::new();
    for op in &g.ops {
        *op_counts.entry(op.opcode.name()).or_insert(0) += 1;
    }
    let io = |ids: &[u32]| ids.iter().map(|&i| (g.tensor(i).name.clone(), g.tensor(i).shape.clone())).collect();
    let c = Converted {
        architecture: g.architecture.clone(),
        parameters: g.parameter_count(),
        ops: g.ops.len(),
        tensors: g.tensors.len(),
        op_counts,
        flash_bytes: bytes.len(),
        weight_bytes,
        quantized_tensors: g.tensors.iter().filter(|t| t.is_weight() && t.dtype.is_quantized()).count(),
        f16_flash_bytes: writer::f16_file_bytes(g, bytes.len()),
        arena_bytes: plan.arena_bytes,
        persistent_bytes: plan.persistent_bytes,
        lower_bound_bytes: plan.lower_bound_bytes,
        max_tokens: g.max_tokens,
        max_context: g.max_context,
        inputs: io(&g.inputs),
        outputs: io(&g.outputs),
        bytes,
    };
    if let Some(budget) = opts.max_flash.filter(|&b| c.flash_bytes > b) {
        return Err(Error::OverBudget { what: "flash", needed: c.flash_bytes, budget });
    }
    if let Some(budget) = opts.max_arena.filter(|&b| c.arena_bytes > b) {
        return Err(Error::OverBudget { what: "arena", needed: c.arena_bytes, budget });
    }
    Ok(c)
}

/// Converts a Hugging Face model directory.
pub fn convert_dir(dir: &Path, opts: &ConvertOptions) -> Result<Converted> {
    let ckpt = Checkpoint::open(dir)?;
    let g = build_graph(&ckpt, opts)?;
    compile(&g, opts)
}

/// Converts a checkpoint held in memory: `config.json` text and one safetensors file.
pub fn convert_bytes(config_json: &[u8], safetensors: Vec<u8>, opts: &ConvertOptions) -> Result<Converted> {
    let ckpt = Checkpoint::from_bytes(config_json, safetensors)?;
    let g = build_graph(&ckpt, opts)?;
    compile(&g, opts)
}
