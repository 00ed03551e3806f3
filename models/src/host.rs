//! Running a converted model on the host: aligned model buffers, batched inputs.

use std::collections::BTreeMap;
use std::path::Path;

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

/// Runs `model` over a batch: every model input of shape `[1, ...]` takes the input of
/// that name with shape `[N, ...]` (or exactly the model's shape, N = 1); the model runs
/// N times and each output is stacked to `[N, ...]`.
pub fn run_batched(
    model: &Model<'_>,
    inputs: &BTreeMap<String, HostTensor>,
) -> Result<BTreeMap<String, HostTensor>, RunError> {
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(model)];
    run_batched_in(model, inputs, &mut arena)
}

/// [`run_batched`] in a caller-given arena (to try a board's RAM budget on the host).
pub fn run_batched_in(
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
