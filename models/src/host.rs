//! Running a converted model on the host: aligned model buffers, batched inputs.

use std::collections::BTreeMap;
use std::path::Path;

use mote_runtime::sampler::argmax;
use mote_runtime::{Interpreter, Model};

use crate::error::{Result, RunError};
use crate::tensor::{HostTensor, read_file};

/// Bytes in a heap buffer whose start is 64-byte aligned, as `Model::parse` requires.
pub struct AlignedBytes {
    /// `len + 63` bytes; the model starts at `start`, the first 64-byte aligned address.
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl std::fmt::Debug for AlignedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBytes({} bytes)", self.len)
    }
}

impl Clone for AlignedBytes {
    fn clone(&self) -> Self {
        Self::new(self)
    }
}

impl AlignedBytes {
    pub fn new(bytes: &[u8]) -> Self {
        let mut buf = vec![0u8; bytes.len() + 63];
        let start = buf.as_ptr().align_offset(64);
        buf[start..start + bytes.len()].copy_from_slice(bytes);
        AlignedBytes { buf, start, len: bytes.len() }
    }
    pub fn read(path: &Path) -> Result<Self> {
        Ok(Self::new(&read_file(path)?))
    }
}

impl std::ops::Deref for AlignedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// Runs `model` over the inputs the CLI contract names, with an arena of the model's
/// size. See [`run_in`].
pub fn run(
    model: &Model<'_>,
    inputs: &BTreeMap<String, HostTensor>,
    generate: Option<usize>,
) -> Result<BTreeMap<String, HostTensor>, RunError> {
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(model)];
    run_in(model, inputs, generate, &mut arena)
}

/// [`run`] without generation, kept for image models' callers.
pub fn run_batched(
    model: &Model<'_>,
    inputs: &BTreeMap<String, HostTensor>,
) -> Result<BTreeMap<String, HostTensor>, RunError> {
    run(model, inputs, None)
}

/// Runs `model` in a caller-given arena (to try a board's RAM budget on the host):
/// - image models: every input `[1, ...]` takes a batch `[N, ...]`; outputs stack to `[N, ...]`;
/// - encoders: `input_ids` `[N, T]` (optional `attention_mask`, `token_type_ids`), each
///   sequence run alone; token-row outputs become `[N, T, ...]`;
/// - decoders: `input_ids` `[N, T]`, each prompt run from an empty KV cache in chunks;
///   `logits` `[N, T, vocab]`, and with `generate` also `greedy_tokens` `[N, generate]`.
pub fn run_in(
    model: &Model<'_>,
    inputs: &BTreeMap<String, HostTensor>,
    generate: Option<usize>,
    arena: &mut [u8],
) -> Result<BTreeMap<String, HostTensor>, RunError> {
    let is_decoder = model.persistent_bytes() > 0 && model.max_tokens() > 0;
    if generate.is_some() && !is_decoder {
        return Err(RunError::Input(format!("--generate: {} is not a causal language model", model.architecture())));
    }
    if model.max_tokens() == 0 {
        run_images(model, inputs, arena)
    } else {
        run_sequences(model, inputs, generate, arena)
    }
}

fn available(inputs: &BTreeMap<String, HostTensor>) -> String {
    inputs.iter().map(|(k, v)| format!("{k} {:?}", v.shape)).collect::<Vec<_>>().join(", ")
}

fn run_images(
    model: &Model<'_>,
    inputs: &BTreeMap<String, HostTensor>,
    arena: &mut [u8],
) -> Result<BTreeMap<String, HostTensor>, RunError> {
    let mut interp = Interpreter::new(model, arena)?;
    let mut batch = None;
    let mut feeds = Vec::new();
    for i in 0..model.input_count() {
        let info = model.input(i).ok_or_else(|| RunError::Input(format!("model input {i} unreadable")))?;
        let want: Vec<usize> = info.shape.dims().iter().map(|&d| d as usize).collect();
        let available = || inputs.iter().map(|(k, v)| format!("{k} {:?}", v.shape)).collect::<Vec<_>>().join(", ");
        let t = inputs.get(info.name).ok_or_else(|| {
            RunError::Input(format!(
                "missing input {:?} (shape {want:?}); the input file has: {}",
                info.name,
                available()
            ))
        })?;
        let per_item: usize = want.iter().product();
        let n = if t.shape == want {
            1
        } else if want.first() == Some(&1) && t.shape.len() == want.len() && t.shape[1..] == want[1..] && t.shape[0] > 0
        {
            t.shape[0]
        } else {
            return Err(RunError::Input(format!(
                "input {:?} has shape {:?}, the model takes {want:?} (a leading batch dimension N is allowed)",
                info.name, t.shape
            )));
        };
        if *batch.get_or_insert(n) != n {
            return Err(RunError::Input(format!(
                "input {:?} has batch {n}, other inputs {}",
                info.name,
                batch.unwrap_or(0)
            )));
        }
        let values = t.as_f32().ok_or_else(|| {
            RunError::Input(format!("input {:?} is {}, the model takes f32", info.name, t.dtype_name()))
        })?;
        feeds.push((info.name.to_string(), per_item, values));
    }
    let n = batch.unwrap_or(1);
    let mut outs: Vec<(String, Vec<usize>, Vec<f32>)> = (0..model.output_count())
        .filter_map(|i| model.output(i))
        .map(|t| (t.name.to_string(), t.shape.dims().iter().map(|&d| d as usize).collect(), Vec::new()))
        .collect();
    for b in 0..n {
        for (name, per_item, values) in &feeds {
            interp.set_input(name, &values[b * per_item..(b + 1) * per_item])?;
        }
        interp.invoke()?;
        for (name, _, acc) in &mut outs {
            acc.extend_from_slice(interp.output(name)?);
        }
    }
    Ok(outs
        .into_iter()
        .map(|(name, mut shape, data)| {
            if n > 1 || shape.first() != Some(&1) {
                if shape.first() == Some(&1) {
                    shape[0] = n;
                } else {
                    shape.insert(0, n);
                }
            }
            (name, HostTensor::f32(shape, data))
        })
        .collect())
}

/// Token rows `[N, T]` (or `[T]`) of an integer input, as i32.
fn token_rows(name: &str, t: &HostTensor) -> Result<(usize, usize, Vec<i32>), RunError> {
    let values = t
        .as_i64()
        .ok_or_else(|| RunError::Input(format!("{name} must be integers (i64 or i32), not {}", t.dtype_name())))?;
    let (n, len) = match t.shape.as_slice() {
        [len] => (1, *len),
        [n, len] => (*n, *len),
        other => return Err(RunError::Input(format!("{name} has shape {other:?}, expected [N, T]"))),
    };
    if n == 0 || len == 0 {
        return Err(RunError::Input(format!("{name} is empty (shape {:?})", t.shape)));
    }
    let ids = values
        .iter()
        .enumerate()
        .map(|(i, &v)| i32::try_from(v).map_err(|_| RunError::Input(format!("{name} element {i} is {v}, outside i32"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((n, len, ids))
}

fn run_sequences(
    model: &Model<'_>,
    inputs: &BTreeMap<String, HostTensor>,
    generate: Option<usize>,
    arena: &mut [u8],
) -> Result<BTreeMap<String, HostTensor>, RunError> {
    let ids_t = inputs.get("input_ids").ok_or_else(|| {
        RunError::Input(format!("missing input \"input_ids\"; the input file has: {}", available(inputs)))
    })?;
    let (n, len, ids) = token_rows("input_ids", ids_t)?;
    let optional_rows = |name: &str| -> Result<Option<Vec<i32>>, RunError> {
        match inputs.get(name) {
            None => Ok(None),
            Some(t) => {
                let (tn, tl, v) = token_rows(name, t)?;
                if (tn, tl) != (n, len) {
                    return Err(RunError::Input(format!(
                        "{name} has shape {:?}, input_ids {:?}",
                        t.shape, ids_t.shape
                    )));
                }
                Ok(Some(v))
            }
        }
    };
    let mask = optional_rows("attention_mask")?;
    let types = optional_rows("token_type_ids")?;
    let (max_tokens, context) = (model.max_tokens(), model.max_context());
    // Stateful token models (KV cache or recurrent state) run prompts through step().
    let decoder = model.persistent_bytes() > 0;
    let wants = |name: &str| model.find_input(name).is_some();
    for i in 0..model.input_count() {
        if let Some(t) = model.input(i)
            && !["input_ids", "attention_mask", "token_type_ids"].contains(&t.name)
        {
            return Err(RunError::Input(format!("the model takes an input {:?} this runner cannot fill", t.name)));
        }
    }
    if decoder {
        let steps = len + generate.unwrap_or(1).max(1) - 1;
        if context > 0 && steps > context {
            return Err(RunError::Input(format!(
                "a prompt of {len} tokens{} needs {steps} positions; the model's context is {context} (convert with a larger --max-seq)",
                generate.map(|g| format!(" plus {g} generated")).unwrap_or_default()
            )));
        }
    } else if len > max_tokens {
        return Err(RunError::Input(format!(
            "input_ids has {len} tokens; the model takes at most {max_tokens} (convert with a larger --max-seq)"
        )));
    }

    let mut interp = Interpreter::new(model, arena)?;
    let outs: Vec<(String, Vec<usize>, bool)> = (0..model.output_count())
        .filter_map(|i| model.output(i))
        .map(|t| (t.name.to_string(), t.shape.dims().iter().map(|&d| d as usize).collect(), t.seq))
        .collect();
    let mut data: Vec<Vec<f32>> = vec![Vec::new(); outs.len()];
    let mut greedy: Vec<i64> = Vec::new();
    let ctx = |e: mote_runtime::Error, what: &str| RunError::Input(format!("{what}: {e}"));
    for b in 0..n {
        let row = &ids[b * len..(b + 1) * len];
        interp.reset();
        let collect = |interp: &Interpreter<'_, '_>, data: &mut Vec<Vec<f32>>| -> Result<(), RunError> {
            for ((name, _, _), acc) in outs.iter().zip(data.iter_mut()) {
                acc.extend_from_slice(interp.output(name)?);
            }
            Ok(())
        };
        if decoder {
            // Prefill in chunks of at most max_tokens; logits rows accumulate per chunk.
            for chunk in row.chunks(max_tokens) {
                interp.step(chunk).map_err(|e| ctx(e, "input_ids"))?;
                collect(&interp, &mut data)?;
            }
            if let Some(k) = generate {
                let logits = interp.output("logits")?;
                let vocab = logits.len() / interp.tokens().max(1);
                let mut next = argmax(&logits[logits.len() - vocab..]);
                for j in 0..k {
                    greedy.push(next as i64);
                    if j + 1 < k {
                        interp.step(&[next as i32])?;
                        next = argmax(interp.output("logits")?);
                    }
                }
            }
        } else {
            interp.set_tokens(len)?;
            interp.set_input_ids("input_ids", row).map_err(|e| ctx(e, "input_ids"))?;
            if wants("token_type_ids") {
                let zeros = vec![0; len];
                let t = types.as_ref().map_or(&zeros[..], |v| &v[b * len..(b + 1) * len]);
                interp.set_input_ids("token_type_ids", t).map_err(|e| ctx(e, "token_type_ids"))?;
            }
            if wants("attention_mask") {
                let m: Vec<f32> = match &mask {
                    Some(v) => v[b * len..(b + 1) * len].iter().map(|&x| if x != 0 { 1.0 } else { 0.0 }).collect(),
                    None => vec![1.0; len],
                };
                interp.set_input("attention_mask", &m)?;
            }
            interp.invoke()?;
            collect(&interp, &mut data)?;
        }
    }
    let mut result: BTreeMap<String, HostTensor> = outs
        .into_iter()
        .zip(data)
        .map(|((name, mut shape, seq), values)| {
            if seq {
                // [1, max_tokens, ..] or [max_tokens, ..] -> [N, T, ..]
                let cols = shape.last().copied().unwrap_or(1);
                shape = vec![n, len, cols];
            } else if shape.first() == Some(&1) {
                shape[0] = n;
            } else {
                shape.insert(0, n);
            }
            (name, HostTensor::f32(shape, values))
        })
        .collect();
    if let Some(k) = generate {
        result.insert("greedy_tokens".into(), HostTensor::i64(vec![n, k], greedy));
    }
    Ok(result)
}

/// Sentence embedding as sentence-transformers computes it for mean-pooling models:
/// the mean of the token vectors whose mask is non-zero, L2-normalised.
/// `hidden`: [t, dim]; `mask`: [t].
pub fn mean_pool_normalize(hidden: &[f32], mask: &[f32], dim: usize) -> Vec<f32> {
    let mut sum = vec![0f64; dim];
    let mut count = 0f64;
    for (row, &m) in hidden.chunks_exact(dim.max(1)).zip(mask) {
        if m != 0.0 {
            count += 1.0;
            sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / count.max(1e-9)).collect();
    let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
    mean.iter().map(|v| (v / norm) as f32).collect()
}
