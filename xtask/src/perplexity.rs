//! `cargo xtask perplexity`: how well a causal language model predicts a text.
//!
//! The text is tokenized with the model's tokenizer (no special tokens), cut into
//! non-overlapping windows of `--window` tokens, and each window runs from an empty KV
//! cache / state (as `scripts/perplexity_reference.py` does with `transformers`). In a
//! window of `w` tokens the logits at position `i` predict token `i + 1`: `w - 1`
//! predictions. The mean negative log-likelihood over all predictions of all windows is
//! reported with its exponential, the perplexity. Softmax and log are in f64.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use mote_runtime::Interpreter;
#[cfg(test)]
use mote_runtime::Model;

use crate::text::load_tokenizer;
use crate::util::{parse_model, read_model};

#[derive(clap::Args)]
pub struct Args {
    /// A converted causal language model (Llama, GPT-2, Mamba, RWKV).
    pub model: PathBuf,
    /// The model's tokenizer.json.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// The text file to score (UTF-8).
    #[arg(long)]
    pub text: PathBuf,
    /// Score only the first N tokens of the text (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_tokens: usize,
    /// Tokens per window (default: the model's context, or 512 if smaller or unbounded).
    #[arg(long)]
    pub window: Option<usize>,
    /// Write the token ids (a JSON list) here, to check them against the reference.
    #[arg(long)]
    pub ids_out: Option<PathBuf>,
}

/// `-ln softmax(logits)[target]` in f64 from f32 logits (`logits`: [vocab]).
pub fn token_nll(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    max + sum.ln() - logits[target] as f64
}

/// Sum of the NLLs of `ids[1..]` given the logits rows of `ids[..len-1]`
/// (`logits`: [len, vocab] or more rows; the last row predicts nothing).
pub fn window_nll(logits: &[f32], vocab: usize, ids: &[i32]) -> Result<f64> {
    if logits.len() < ids.len().saturating_sub(1) * vocab {
        bail!("{} logits for {} tokens of vocab {vocab}", logits.len(), ids.len());
    }
    let mut sum = 0.0;
    for (row, &next) in logits.chunks_exact(vocab).zip(&ids[1..]) {
        let t = usize::try_from(next)
            .ok()
            .filter(|&t| t < vocab)
            .ok_or_else(|| anyhow!("token {next} outside vocab {vocab}"))?;
        sum += token_nll(row, t);
    }
    Ok(sum)
}

/// Runs one window from a fresh state and returns the sum of its token NLLs.
pub fn run_window(interp: &mut Interpreter<'_, '_>, ids: &[i32]) -> Result<f64> {
    let max = interp.model().max_tokens();
    interp.reset();
    let mut logits: Vec<f32> = Vec::new();
    let mut vocab = 0;
    for chunk in ids.chunks(max) {
        interp.step(chunk)?;
        let out = interp.output("logits")?;
        vocab = out.len() / interp.tokens().max(1);
        logits.extend_from_slice(&out[..chunk.len() * vocab]);
    }
    window_nll(&logits, vocab, ids)
}

/// The windows: non-overlapping, `window` tokens each, the last one shorter; windows of
/// fewer than 2 tokens predict nothing and are dropped.
pub fn windows(ids: &[i32], window: usize) -> impl Iterator<Item = &[i32]> {
    ids.chunks(window.max(2)).filter(|w| w.len() >= 2)
}

/// Mean NLL over every prediction of every window (and the prediction count).
#[cfg(test)]
pub fn mean_nll(model: &Model<'_>, ids: &[i32], window: usize) -> Result<(f64, usize)> {
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(model)];
    let mut interp = Interpreter::new(model, &mut arena)?;
    let (mut sum, mut count) = (0.0, 0);
    for w in windows(ids, window) {
        sum += run_window(&mut interp, w)?;
        count += w.len() - 1;
    }
    Ok((sum / count.max(1) as f64, count))
}

pub fn run(a: Args) -> Result<ExitCode> {
    let buf = read_model(&a.model)?;
    let model = parse_model(&a.model, &buf)?;
    if model.persistent_bytes() == 0 || model.find_output("logits").is_none() || model.max_tokens() == 0 {
        bail!("{} is a {}, not a causal language model", a.model.display(), model.architecture());
    }
    let tok = load_tokenizer(&a.tokenizer)?;
    if !a.text.exists() {
        bail!("{}: no such file", a.text.display());
    }
    let text = std::fs::read_to_string(&a.text).with_context(|| format!("{}", a.text.display()))?;
    let enc = tok.encode(text.as_str(), false).map_err(|e| anyhow!("tokenizing {}: {e}", a.text.display()))?;
    let mut ids: Vec<i32> = enc.get_ids().iter().map(|&x| x as i32).collect();
    let total = ids.len();
    if a.max_tokens > 0 {
        ids.truncate(a.max_tokens);
    }
    let ctx = model.max_context();
    let window = match a.window {
        Some(0 | 1) => bail!("--window must be at least 2 tokens"),
        Some(w) if ctx > 0 && w > ctx => {
            bail!("--window {w} is longer than the model's context {ctx} (convert with a larger --max-seq)")
        }
        Some(w) => w,
        None if ctx > 0 => ctx.min(512),
        None => 512,
    };
    if ids.len() < 2 {
        bail!("{} has {} tokens; at least 2 are needed", a.text.display(), ids.len());
    }
    if let Some(p) = &a.ids_out {
        std::fs::write(p, serde_json::to_string(&ids)?).with_context(|| format!("{}", p.display()))?;
    }
    eprintln!("{} tokens in {} (scoring {}), windows of {window}", total, a.text.display(), ids.len());

    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let mut interp = Interpreter::new(&model, &mut arena)?;
    let n_windows = windows(&ids, window).count();
    let (mut sum, mut count, mut run_tokens) = (0.0, 0usize, 0usize);
    let start = Instant::now();
    for (i, w) in windows(&ids, window).enumerate() {
        let t0 = Instant::now();
        let s = run_window(&mut interp, w).with_context(|| format!("window {}", i + 1))?;
        let secs = t0.elapsed().as_secs_f64();
        sum += s;
        count += w.len() - 1;
        run_tokens += w.len();
        eprintln!(
            "window {:>3}/{n_windows}: {} tokens, nll {:.4}, ppl {:.3}, {:.1} tokens/s; running ppl {:.3}",
            i + 1,
            w.len(),
            s / (w.len() - 1) as f64,
            (s / (w.len() - 1) as f64).exp(),
            w.len() as f64 / secs.max(1e-9),
            (sum / count as f64).exp()
        );
    }
    let secs = start.elapsed().as_secs_f64();
    let nll = sum / count.max(1) as f64;
    println!("tokens            {} ({} predicted, {} windows of {window})", ids.len(), count, n_windows);
    println!("mean nll          {nll:.6}");
    println!("perplexity        {:.4}", nll.exp());
    println!(
        "tokens/s          {:.1} ({run_tokens} tokens in {secs:.1} s, host CPU, one core)",
        run_tokens as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_nll_matches_hand_values() {
        // Uniform logits: -ln(1/V).
        assert!((token_nll(&[3.0; 8], 5) - 8f64.ln()).abs() < 1e-12);
        // [0, ln 2, ln 5]: probabilities 1/8, 2/8, 5/8.
        let l = [0.0, 2f32.ln(), 5f32.ln()];
        assert!((token_nll(&l, 0) - 8f64.ln()).abs() < 1e-6);
        assert!((token_nll(&l, 2) - (8.0f64 / 5.0).ln()).abs() < 1e-6);
        // Large logits do not overflow.
        assert!((token_nll(&[1000.0, 1000.0], 1) - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn window_nll_pairs_row_i_with_token_i_plus_1() {
        // vocab 2; rows predict token 1 then token 0; the third row predicts nothing.
        let logits = [0.0, 1.0, 2.0, 0.0, 9.0, 9.0];
        let s = window_nll(&logits, 2, &[0, 1, 0]).unwrap();
        let want = token_nll(&[0.0, 1.0], 1) + token_nll(&[2.0, 0.0], 0);
        assert!((s - want).abs() < 1e-12);
        assert!(window_nll(&logits, 2, &[0, 5, 0]).is_err());
    }

    #[test]
    fn windows_are_disjoint_and_drop_single_tokens() {
        let ids: Vec<i32> = (0..9).collect();
        let w: Vec<&[i32]> = windows(&ids, 4).collect();
        assert_eq!(w, [&[0, 1, 2, 3][..], &[4, 5, 6, 7]]);
        assert_eq!(windows(&ids[..6], 4).map(<[i32]>::len).collect::<Vec<_>>(), [4, 2]);
    }

    /// llama_a (f32 weights): the windowed perplexity equals the NLL computed here from
    /// the logits `cargo xtask infer` gives (each window run alone from an empty cache),
    /// and is within 1e-4 of the NLL of transformers' logits for the same tokens.
    #[test]
    fn llama_a_perplexity_matches_infer_and_transformers_logits() {
        use mote_models::tensor::read_safetensors;
        use std::collections::BTreeMap;
        let dir = crate::workspace_root().join("tests/data/llama/llama_a");
        let opts = mote_models::ConvertOptions { dtype: mote_models::WeightDType::F32, ..Default::default() };
        let c = mote_models::convert_dir(&dir, &opts).unwrap();
        let bytes = mote_models::host::AlignedBytes::new(&c.bytes);
        let model = Model::parse(&bytes).unwrap();
        let inputs = read_safetensors(&dir.join("inputs.safetensors")).unwrap();
        let expected = read_safetensors(&dir.join("expected.safetensors")).unwrap();
        let ids_t = &inputs["input_ids"];
        let len = *ids_t.shape.last().unwrap();
        let ids: Vec<i32> = ids_t.as_i64().unwrap()[..len].iter().map(|&x| x as i32).collect();
        assert!(len >= 6, "llama_a's prompt has {len} tokens");

        // Independent: log-softmax by hand over infer's logits, one window at a time.
        let window = len / 2 + 1; // two windows, the second shorter
        let mut sum = 0.0;
        let mut count = 0;
        let mut vocab = 0;
        for w in ids.chunks(window) {
            let input = BTreeMap::from([(
                "input_ids".to_string(),
                mote_models::HostTensor::i64(vec![1, w.len()], w.iter().map(|&x| x as i64).collect()),
            )]);
            let out = mote_models::host::run(&model, &input, None).unwrap();
            let logits = out["logits"].as_f32().unwrap();
            vocab = logits.len() / w.len();
            for (row, &next) in logits.chunks(vocab).zip(&w[1..]) {
                let lse = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
                sum += lse - row[next as usize] as f64;
                count += 1;
            }
        }
        let (nll, n) = mean_nll(&model, &ids, window).unwrap();
        assert_eq!(n, len - 2);
        assert_eq!(n, count);
        assert!((nll - sum / count as f64).abs() < 1e-9, "{nll} vs {}", sum / count as f64);
        assert!(nll > 0.1 && nll < (vocab as f64).ln() * 2.0, "nll {nll}");

        // One window over the whole prompt vs transformers' logits (f32 weights agree to 7e-6).
        let (nll_one, _) = mean_nll(&model, &ids, len).unwrap();
        let tf = expected["logits"].as_f32().unwrap();
        let tf_nll = window_nll(&tf[..len * vocab], vocab, &ids).unwrap() / (len - 1) as f64;
        assert!((nll_one - tf_nll).abs() < 1e-4, "mote {nll_one} vs transformers {tf_nll}");
        assert!((nll_one - nll).abs() > 1e-6, "a fresh state per window must change the result");
    }
}
