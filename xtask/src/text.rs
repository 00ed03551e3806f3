//! `cargo xtask generate` and `cargo xtask embed`: text in and out on the host, with the
//! Hugging Face tokenizer of the model.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use mote_models::HostTensor;
use mote_models::host::mean_pool_normalize;
use mote_models::tensor::write_safetensors;
use mote_runtime::{Interpreter, Sampler};
use tokenizers::Tokenizer;

use crate::util::{parse_model, read_model};

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// A converted causal language model (Llama, GPT-2).
    pub model: PathBuf,
    /// The model's tokenizer.json.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// The prompt.
    #[arg(long)]
    pub prompt: String,
    /// Tokens to generate (fewer if the context fills or the model ends the text).
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample among the k most likely tokens (0: up to 64).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Sample among the most likely tokens holding this much probability.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(clap::Args)]
pub struct EmbedArgs {
    /// A converted sentence-embedding encoder (BertModel, e.g. all-MiniLM-L6-v2).
    pub model: PathBuf,
    /// The model's tokenizer.json.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Sentences to embed.
    #[arg(required = true)]
    pub sentences: Vec<String>,
    /// Write the embeddings ([N, dim], f32) here.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

pub fn load_tokenizer(path: &PathBuf) -> Result<Tokenizer> {
    if !path.exists() {
        bail!("{}: no such file", path.display());
    }
    Tokenizer::from_file(path).map_err(|e| anyhow!("{}: cannot load tokenizer: {e}", path.display()))
}

/// The config's `eos_token_id` (an integer or a list).
fn eos_ids(config_json: &str) -> Vec<u32> {
    let v: serde_json::Value = serde_json::from_str(config_json).unwrap_or_default();
    match v.get("eos_token_id") {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect(),
        _ => Vec::new(),
    }
}

pub fn run_generate(a: GenerateArgs) -> Result<ExitCode> {
    let buf = read_model(&a.model)?;
    let model = parse_model(&a.model, &buf)?;
    if model.persistent_bytes() == 0 || model.find_output("logits").is_none() || model.max_tokens() == 0 {
        bail!("{} is a {}, not a causal language model", a.model.display(), model.architecture());
    }
    let tok = load_tokenizer(&a.tokenizer)?;
    let enc = tok.encode(a.prompt.as_str(), true).map_err(|e| anyhow!("tokenizing the prompt: {e}"))?;
    let prompt: Vec<i32> = enc.get_ids().iter().map(|&x| x as i32).collect();
    if prompt.is_empty() {
        bail!("the prompt has no tokens");
    }
    let ctx = model.max_context();
    if ctx > 0 && prompt.len() > ctx {
        bail!("the prompt has {} tokens; the model's context is {ctx} (convert with a larger --max-seq)", prompt.len());
    }
    let eos = eos_ids(model.config_json());
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let mut interp = Interpreter::new(&model, &mut arena)?;
    let mut sampler = Sampler::new(a.seed, a.temperature, a.top_k, a.top_p);

    print!("{}", a.prompt);
    std::io::stdout().flush().ok();
    let start = Instant::now();
    for chunk in prompt.chunks(model.max_tokens()) {
        interp.step(chunk).context("prompt")?;
    }
    let prefill = start.elapsed();
    let last_row = |interp: &Interpreter<'_, '_>| -> Result<Vec<f32>> {
        let logits = interp.output("logits")?;
        let vocab = logits.len() / interp.tokens().max(1);
        Ok(logits[logits.len() - vocab..].to_vec())
    };
    let mut generated: Vec<u32> = Vec::new();
    let mut shown = String::new();
    let decode_start = Instant::now();
    let mut stop = "max-new-tokens reached";
    let mut next = sampler.sample(&last_row(&interp)?) as u32;
    while generated.len() < a.max_new_tokens {
        if eos.contains(&next) {
            stop = "end of text";
            break;
        }
        generated.push(next);
        // Decode everything so far and print what is new (tokens may be parts of characters).
        let text = tok.decode(&generated, true).map_err(|e| anyhow!("decoding: {e}"))?;
        if let Some(new) = text.get(shown.len()..) {
            print!("{new}");
            std::io::stdout().flush().ok();
        }
        shown = text;
        if generated.len() == a.max_new_tokens {
            break;
        }
        if ctx > 0 && interp.position() + 1 > ctx {
            stop = "context full";
            break;
        }
        interp.step(&[next as i32])?;
        next = sampler.sample(&last_row(&interp)?) as u32;
    }
    let secs = decode_start.elapsed().as_secs_f64();
    println!();
    eprintln!(
        "[{} prompt tokens in {:.1} ms; {} generated in {:.1} ms ({:.1} tokens/s); stopped: {stop}]",
        prompt.len(),
        prefill.as_secs_f64() * 1e3,
        generated.len(),
        secs * 1e3,
        generated.len() as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// Embeds `sentences` with an encoder model: token ids -> last_hidden_state -> mean
/// pooling -> L2 normalisation.
pub fn embed(model: &mote_runtime::Model<'_>, tok: &Tokenizer, sentences: &[String]) -> Result<Vec<Vec<f32>>> {
    let max = model.max_tokens();
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(model)];
    let mut interp = Interpreter::new(model, &mut arena)?;
    let dim = model
        .find_output("last_hidden_state")
        .and_then(|i| model.output(i))
        .map(|t| t.shape.cols())
        .ok_or_else(|| anyhow!("{} has no last_hidden_state output", model.architecture()))?;
    let mut out = Vec::new();
    for s in sentences {
        let enc = tok.encode(s.as_str(), true).map_err(|e| anyhow!("tokenizing {s:?}: {e}"))?;
        // The tokenizer file may pad; only real tokens are run.
        let n = enc.get_attention_mask().iter().filter(|&&m| m != 0).count().min(max);
        if enc.get_ids().len() > max && n == max {
            eprintln!("note: {s:?} is longer than {max} tokens; truncated");
        }
        let ids: Vec<i32> = enc.get_ids()[..n].iter().map(|&x| x as i32).collect();
        let types: Vec<i32> = enc.get_type_ids()[..n].iter().map(|&x| x as i32).collect();
        interp.set_tokens(n.max(1))?;
        interp.set_input_ids("input_ids", &ids)?;
        if model.find_input("token_type_ids").is_some() {
            interp.set_input_ids("token_type_ids", &types)?;
        }
        let mask = vec![1.0f32; n];
        if model.find_input("attention_mask").is_some() {
            interp.set_input("attention_mask", &mask)?;
        }
        interp.invoke()?;
        out.push(mean_pool_normalize(interp.output("last_hidden_state")?, &mask, dim));
    }
    Ok(out)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn run_embed(a: EmbedArgs) -> Result<ExitCode> {
    let buf = read_model(&a.model)?;
    let model = parse_model(&a.model, &buf)?;
    if model.persistent_bytes() > 0 || model.find_output("last_hidden_state").is_none() {
        bail!("{} is a {}, not a sentence encoder", a.model.display(), model.architecture());
    }
    let mut tok = load_tokenizer(&a.tokenizer)?;
    tok.with_padding(None);
    let start = Instant::now();
    let embs = embed(&model, &tok, &a.sentences)?;
    let secs = start.elapsed().as_secs_f64();
    for (s, e) in a.sentences.iter().zip(&embs) {
        let head: Vec<String> = e.iter().take(4).map(|v| format!("{v:+.4}")).collect();
        println!("[{}, ...] ({} dims)  {s}", head.join(", "), e.len());
    }
    if embs.len() > 1 {
        println!("\ncosine similarity:");
        for (i, a_i) in embs.iter().enumerate() {
            let row: Vec<String> = embs.iter().map(|b| format!("{:6.3}", cosine(a_i, b))).collect();
            println!("  {i:>2}: {}", row.join(" "));
        }
    }
    eprintln!("[{} sentences in {:.1} ms]", embs.len(), secs * 1e3);
    if let Some(path) = &a.output {
        let dim = embs.first().map_or(0, Vec::len);
        let flat: Vec<f32> = embs.into_iter().flatten().collect();
        let t = BTreeMap::from([("embeddings".to_string(), HostTensor::f32(vec![a.sentences.len(), dim], flat))]);
        write_safetensors(path, &t)?;
    }
    Ok(ExitCode::SUCCESS)
}
