//! Synthetic decoder checkpoints for the decode benchmarks: a Llama and a Mamba of ~15M
//! parameters with random weights, written into `target/bench/`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use mote_kernels::bench::Rng;
use mote_models::HostTensor;
use mote_models::tensor::write_safetensors;
use serde_json::{Value, json};

/// Writes `config.json` and `model.safetensors` into `dir`, unless an earlier run wrote
/// them with this same config.
fn synthesise(dir: &Path, config: &Value, tensors: impl FnOnce() -> BTreeMap<String, HostTensor>) -> Result<()> {
    let (cfg_path, st_path) = (dir.join("config.json"), dir.join("model.safetensors"));
    let same_config =
        std::fs::read(&cfg_path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()).as_ref() == Some(config);
    if same_config && st_path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_safetensors(&st_path, &tensors())?;
    std::fs::write(&cfg_path, serde_json::to_string_pretty(config)?)?;
    Ok(())
}

pub(super) const VOCAB: usize = 32000;

/// A Llama with the shape of llama2.c's stories15M: dim 288, 6 layers, 6 heads, MLP 768,
/// vocab 32000, tied embeddings; random N(0, 0.02) weights, norms 1.
pub(super) fn llama_checkpoint(dir: &Path) -> Result<()> {
    let (d, layers, heads, mlp) = (288, 6, 6, 768);
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": d, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": heads, "intermediate_size": mlp, "vocab_size": VOCAB,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": true, "dtype": "float32"
    });
    synthesise(dir, &config, || {
        let mut rng = Rng(15);
        let mut t = BTreeMap::new();
        let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>| t.insert(name, HostTensor::f32(shape, data));
        put("model.embed_tokens.weight".into(), vec![VOCAB, d], rng.normal_vec(VOCAB * d, 0.02));
        for i in 0..layers {
            let l = format!("model.layers.{i}");
            for p in ["q", "k", "v", "o"] {
                put(format!("{l}.self_attn.{p}_proj.weight"), vec![d, d], rng.normal_vec(d * d, 0.02));
            }
            put(format!("{l}.mlp.gate_proj.weight"), vec![mlp, d], rng.normal_vec(mlp * d, 0.02));
            put(format!("{l}.mlp.up_proj.weight"), vec![mlp, d], rng.normal_vec(mlp * d, 0.02));
            put(format!("{l}.mlp.down_proj.weight"), vec![d, mlp], rng.normal_vec(d * mlp, 0.02));
            put(format!("{l}.input_layernorm.weight"), vec![d], vec![1.0; d]);
            put(format!("{l}.post_attention_layernorm.weight"), vec![d], vec![1.0; d]);
        }
        put("model.norm.weight".into(), vec![d], vec![1.0; d]);
        t
    })
}

/// A Mamba of about the same size: hidden 288, 8 layers, state 16, expand 2 (inner 576),
/// conv 4, dt rank 18, vocab 32000, tied. A_log = log(1..=state) per channel, D = 1, a
/// dt_proj bias of -4 (softplus(-4) ~ 0.018, a typical step).
pub(super) fn mamba_checkpoint(dir: &Path) -> Result<()> {
    let (d, layers, n, conv) = (288usize, 8, 16, 4);
    let (e, r) = (2 * d, d.div_ceil(16));
    let config = json!({
        "architectures": ["MambaForCausalLM"], "model_type": "mamba",
        "hidden_size": d, "num_hidden_layers": layers, "state_size": n, "expand": 2,
        "intermediate_size": e, "conv_kernel": conv, "time_step_rank": r, "vocab_size": VOCAB,
        "use_bias": false, "use_conv_bias": true, "layer_norm_epsilon": 1e-5,
        "hidden_act": "silu", "tie_word_embeddings": true, "dtype": "float32"
    });
    synthesise(dir, &config, || {
        let mut rng = Rng(16);
        let mut t = BTreeMap::new();
        let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>| t.insert(name, HostTensor::f32(shape, data));
        put("backbone.embeddings.weight".into(), vec![VOCAB, d], rng.normal_vec(VOCAB * d, 0.02));
        let a_log: Vec<f32> = (0..e).flat_map(|_| (1..=n).map(|s| (s as f32).ln())).collect();
        for i in 0..layers {
            let m = format!("backbone.layers.{i}.mixer");
            put(format!("backbone.layers.{i}.norm.weight"), vec![d], vec![1.0; d]);
            put(format!("{m}.in_proj.weight"), vec![2 * e, d], rng.normal_vec(2 * e * d, 0.02));
            put(format!("{m}.conv1d.weight"), vec![e, 1, conv], rng.normal_vec(e * conv, 0.2));
            put(format!("{m}.conv1d.bias"), vec![e], rng.normal_vec(e, 0.02));
            put(format!("{m}.x_proj.weight"), vec![r + 2 * n, e], rng.normal_vec((r + 2 * n) * e, 0.02));
            put(format!("{m}.dt_proj.weight"), vec![e, r], rng.normal_vec(e * r, 0.02));
            put(format!("{m}.dt_proj.bias"), vec![e], vec![-4.0; e]);
            put(format!("{m}.A_log"), vec![e, n], a_log.clone());
            put(format!("{m}.D"), vec![e], vec![1.0; e]);
            put(format!("{m}.out_proj.weight"), vec![d, e], rng.normal_vec(d * e, 0.02));
        }
        put("backbone.norm_f.weight".into(), vec![d], vec![1.0; d]);
        t
    })
}
