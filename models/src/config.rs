//! Typed reads of `config.json` fields, with errors that name the key.

use mote_runtime::Activation;
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

/// The Hugging Face activation names (`hidden_act`, GPT-2's `activation_function`) the
/// kernels run, and the activation each maps to. The one list every recipe reads.
pub const ACTIVATIONS: &[(&str, Activation)] = &[
    ("gelu", Activation::GeluErf),
    ("gelu_new", Activation::GeluTanh),
    ("gelu_pytorch_tanh", Activation::GeluTanh),
    ("gelu_fast", Activation::GeluTanh),
    ("silu", Activation::Silu),
    ("swish", Activation::Silu),
    ("relu", Activation::Relu),
    ("tanh", Activation::Tanh),
];

/// An activation-name field with a default; a name not in [`ACTIVATIONS`] is an
/// [`Error::Unsupported`] that names the key, the value and the supported names.
pub fn activation(cfg: &Value, key: &str, default: &str) -> Result<Activation> {
    let name = str_or(cfg, key, default)?;
    ACTIVATIONS.iter().find(|(n, _)| *n == name).map(|&(_, a)| a).ok_or_else(|| Error::Unsupported {
        key: key.to_string(),
        value: name.to_string(),
        why: format!("supported: {}", ACTIVATIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")),
    })
}

/// The head size `hidden / heads`; a `heads` that does not divide `hidden` is an error
/// naming both keys (`hidden_key` is e.g. `hidden_size`, GPT-2's `n_embd`).
pub fn head_dim(hidden: usize, hidden_key: &str, heads: usize, heads_key: &str) -> Result<usize> {
    if !hidden.is_multiple_of(heads) {
        return Err(err(heads_key, &format!("{heads} does not divide {hidden_key} {hidden}")));
    }
    Ok(hidden / heads)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn activation_maps_every_listed_name_and_defaults() {
        for &(name, act) in ACTIVATIONS {
            assert_eq!(activation(&json!({ "hidden_act": name }), "hidden_act", "relu").unwrap(), act, "{name}");
        }
        assert_eq!(activation(&json!({}), "hidden_act", "gelu").unwrap(), Activation::GeluErf);
        assert_eq!(activation(&json!({ "hidden_act": null }), "hidden_act", "silu").unwrap(), Activation::Silu);
        assert_eq!(activation(&json!({ "act": "gelu_new" }), "act", "gelu").unwrap(), Activation::GeluTanh);
    }

    #[test]
    fn unsupported_activation_names_the_key_the_value_and_the_list() {
        let e =
            activation(&json!({ "activation_function": "swiglu_oai" }), "activation_function", "gelu_new").unwrap_err();
        assert!(
            matches!(&e, Error::Unsupported { key, value, .. } if key == "activation_function" && value == "swiglu_oai"),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains("activation_function") && msg.contains("swiglu_oai"), "{msg}");
        for (name, _) in ACTIVATIONS {
            assert!(msg.contains(name), "{msg} does not list {name}");
        }
        // A default outside the list is refused too, and a non-string is a type error.
        assert!(activation(&json!({}), "hidden_act", "mish").is_err());
        let e = activation(&json!({ "hidden_act": 3 }), "hidden_act", "gelu").unwrap_err();
        assert!(matches!(&e, Error::Config { key, .. } if key == "hidden_act"), "{e:?}");
    }

    #[test]
    fn head_dim_divides_or_names_both_keys() {
        assert_eq!(head_dim(768, "hidden_size", 12, "num_attention_heads").unwrap(), 64);
        assert_eq!(head_dim(5, "n_embd", 5, "n_head").unwrap(), 1);
        let e = head_dim(32, "n_embd", 5, "n_head").unwrap_err();
        assert!(matches!(&e, Error::Config { key, .. } if key == "n_head"), "{e:?}");
        assert_eq!(e.to_string(), "config.json: n_head: 5 does not divide n_embd 32");
    }
}
