//! Converter errors: each names the file, tensor or config key at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot read {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: invalid JSON: {msg}")]
    Json { path: PathBuf, msg: String },
    #[error("{path}: not a valid safetensors file: {msg}")]
    Safetensors { path: PathBuf, msg: String },
    #[error("unsupported architecture {found:?}; supported: {}", supported.join(", "))]
    UnknownArchitecture { found: String, supported: Vec<&'static str> },
    #[error("config.json: {key}: {msg}")]
    Config { key: String, msg: String },
    #[error("unsupported config option {key} = {value} ({why})")]
    Unsupported { key: String, value: String, why: String },
    #[error("checkpoint has no tensor {name:?}")]
    MissingTensor { name: String },
    #[error("tensor {name:?} has shape {found:?}, expected {expected:?}")]
    TensorShape { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor {name:?} has dtype {dtype}, which the converter cannot read (f32, f16, bf16, f64 are read)")]
    TensorDType { name: String, dtype: String },
    #[error("tensor {name:?} holds {value} which does not fit in f16 (max 65504); convert with --dtype f32")]
    F16Range { name: String, value: f32 },
    #[error("tensor {name:?} holds a non-finite value ({value})")]
    NonFinite { name: String, value: f32 },
    #[error("model needs {needed} {what} bytes, over the budget of {budget}")]
    OverBudget { what: &'static str, needed: usize, budget: usize },
    #[error("model too large for the .mote format: {what}")]
    TooLarge { what: String },
    #[error("graph or plan check failed: {0}")]
    Plan(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors running a model on the host (`infer`, `validate`, tests).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error(transparent)]
    Model(#[from] mote_runtime::Error),
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Convert(#[from] Error),
}
