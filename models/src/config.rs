//! Typed reads of `config.json` fields, with errors that name the key.

use serde_json::Value;

use crate::error::{Error, Result};

fn err(key: &str, msg: &str) -> Error {
    Error::Config { key: key.to_string(), msg: msg.to_string() }
}

/// A positive integer field that must be present.
pub fn usize_req(cfg: &Value, key: &str) -> Result<usize> {
    match cfg.get(key) {
        None | Some(Value::Null) => Err(err(key, "missing")),
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0 && n <= u32::MAX as u64)
            .map(|n| n as usize)
            .ok_or_else(|| err(key, &format!("expected a positive integer, found {v}"))),
    }
}

/// A positive integer field with a default.
pub fn usize_or(cfg: &Value, key: &str, default: usize) -> Result<usize> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(_) => usize_req(cfg, key),
    }
}

/// An integer or a pair of equal integers ([h, w] with h == w is accepted as h; other
/// pairs are returned as they are).
pub fn usize_pair(cfg: &Value, key: &str) -> Result<(usize, usize)> {
    match cfg.get(key) {
        Some(Value::Array(a)) if a.len() == 2 => {
            let get = |v: &Value| v.as_u64().filter(|&n| n > 0 && n <= u32::MAX as u64).map(|n| n as usize);
            match (get(&a[0]), get(&a[1])) {
                (Some(h), Some(w)) => Ok((h, w)),
                _ => Err(err(key, "expected two positive integers")),
            }
        }
        _ => usize_req(cfg, key).map(|n| (n, n)),
    }
}

pub fn f64_or(cfg: &Value, key: &str, default: f64) -> Result<f64> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => {
            v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| err(key, &format!("expected a number, found {v}")))
        }
    }
}

pub fn bool_or(cfg: &Value, key: &str, default: bool) -> Result<bool> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| err(key, &format!("expected true or false, found {v}"))),
    }
}

pub fn str_or<'a>(cfg: &'a Value, key: &str, default: &'a str) -> Result<&'a str> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_str().ok_or_else(|| err(key, &format!("expected a string, found {v}"))),
    }
}
