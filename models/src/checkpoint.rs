//! A Hugging Face model directory: `config.json` plus `model.safetensors` or a sharded
//! `model.safetensors.index.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

use crate::error::{Error, Result};
use crate::tensor::{HostTensor, decode, read_file};

struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A checkpoint directory, its config, and an index of its tensors.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: serde_json::Value,
    files: Vec<Vec<u8>>,
    entries: HashMap<String, Entry>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint").field("dir", &self.dir).field("tensors", &self.entries.len()).finish()
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes = read_file(path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json { path: path.to_path_buf(), msg: e.to_string() })
}

impl Checkpoint {
    /// Opens `dir`, reads `config.json`, and validates and indexes every safetensors file.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                err: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            });
        }
        let config = read_json(&dir.join("config.json"))?;
        let index_path = dir.join("model.safetensors.index.json");
        let shard_names: Vec<String> = if index_path.exists() {
            let index = read_json(&index_path)?;
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::Json { path: index_path.clone(), msg: "no weight_map object".into() })?;
            let mut names: Vec<String> = map.values().filter_map(|v| v.as_str().map(String::from)).collect();
            names.sort();
            names.dedup();
            names
        } else {
            vec!["model.safetensors".to_string()]
        };
        let mut shards = Vec::new();
        for name in &shard_names {
            if name.contains('/') || name.contains("..") {
                return Err(Error::Json {
                    path: index_path.clone(),
                    msg: format!("shard name {name:?} leaves the directory"),
                });
            }
            let path = dir.join(name);
            let bytes = read_file(&path)?;
            shards.push((path, bytes));
        }
        Self::index(dir.to_path_buf(), config, shards)
    }

    /// A checkpoint from bytes in memory: the `config.json` text and one safetensors
    /// file. Validates exactly as [`open`](Self::open) does (the fuzzer's entry point;
    /// errors name `config.json` and `model.safetensors`).
    pub fn from_bytes(config_json: &[u8], safetensors: Vec<u8>) -> Result<Self> {
        let config = serde_json::from_slice(config_json)
            .map_err(|e| Error::Json { path: PathBuf::from("config.json"), msg: e.to_string() })?;
        Self::index(PathBuf::from("."), config, vec![(PathBuf::from("model.safetensors"), safetensors)])
    }

    /// Validates and indexes every safetensors file (`(path, bytes)` per shard).
    fn index(dir: PathBuf, config: serde_json::Value, shards: Vec<(PathBuf, Vec<u8>)>) -> Result<Self> {
        let mut files = Vec::new();
        let mut entries = HashMap::new();
        for (fi, (path, bytes)) in shards.into_iter().enumerate() {
            let err = |e: safetensors::SafeTensorError| Error::Safetensors { path: path.clone(), msg: e.to_string() };
            // Full validation (header, offsets, sizes) first; then index by byte range.
            SafeTensors::deserialize(&bytes).map_err(err)?;
            let (header_len, meta) = SafeTensors::read_metadata(&bytes).map_err(err)?;
            let base = 8 + header_len;
            for (tname, info) in meta.tensors() {
                entries.insert(
                    tname,
                    Entry {
                        file: fi,
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        start: base + info.data_offsets.0,
                        end: base + info.data_offsets.1,
                    },
                );
            }
            files.push(bytes);
        }
        Ok(Checkpoint { dir, config, files, entries })
    }

    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// Reads `name` widened to f32, checking its shape against `expected`.
    pub fn tensor(&self, name: &str, expected: &[usize]) -> Result<HostTensor> {
        let e = self.entries.get(name).ok_or_else(|| Error::MissingTensor { name: name.to_string() })?;
        let squeeze = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
        // Leading/unit dimensions may differ ([1, 1, D] vs [D]); the element layout may not.
        if e.shape != expected && squeeze(&e.shape) != squeeze(expected) {
            return Err(Error::TensorShape {
                name: name.to_string(),
                expected: expected.to_vec(),
                found: e.shape.clone(),
            });
        }
        let bytes = self.files[e.file].get(e.start..e.end).ok_or_else(|| Error::Safetensors {
            path: self.dir.clone(),
            msg: format!("tensor {name:?} lies outside its file"),
        })?;
        let mut t = decode(name, e.dtype, &e.shape, bytes)?;
        let Some(values) = t.as_f32() else {
            return Err(Error::TensorDType { name: name.to_string(), dtype: format!("{:?}", e.dtype) });
        };
        // Refused here, by the checkpoint's own name, before weights are fused or transposed.
        if let Some(&bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::NonFinite { name: name.to_string(), value: bad });
        }
        t.shape = expected.to_vec();
        Ok(t)
    }
}
