//! Small helpers shared by the commands.

use anyhow::{Context, Result, bail};
use mote_models::host::AlignedBytes;
use mote_runtime::Model;
use std::path::Path;

/// 1234567 -> "1,234,567".
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "1,234 B (1.2 KiB)".
pub fn bytes(n: usize) -> String {
    if n < 1024 {
        format!("{} B", thousands(n))
    } else if n < 1024 * 1024 {
        format!("{} B ({:.1} KiB)", thousands(n), n as f64 / 1024.0)
    } else {
        format!("{} B ({:.2} MiB)", thousands(n), n as f64 / (1024.0 * 1024.0))
    }
}

/// Parses a byte budget: "65536", "64K", "64KiB", "2M", "2MiB".
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_uppercase();
    let (num, mul) =
        if let Some(n) = t.strip_suffix("KIB").or_else(|| t.strip_suffix("KB")).or_else(|| t.strip_suffix('K')) {
            (n, 1024)
        } else if let Some(n) = t.strip_suffix("MIB").or_else(|| t.strip_suffix("MB")).or_else(|| t.strip_suffix('M')) {
            (n, 1024 * 1024)
        } else {
            (t.strip_suffix('B').unwrap_or(&t), 1)
        };
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("{s:?} is not a byte count (e.g. 65536, 64K, 2M)"))
}

/// Reads a .mote into an aligned buffer.
pub fn read_model(path: &Path) -> Result<AlignedBytes> {
    if !path.exists() {
        bail!("{}: no such file", path.display());
    }
    AlignedBytes::read(path).with_context(|| format!("{}", path.display()))
}

/// Parses a .mote, naming the file (and the tensor of a tensor error) in the error.
pub fn parse_model<'a>(path: &Path, bytes: &'a AlignedBytes) -> Result<Model<'a>> {
    Model::parse(bytes).map_err(|e| {
        let tensor = match e {
            mote_runtime::Error::BadTensor { index, .. } | mote_runtime::Error::BadBlock { tensor: index, .. } => {
                mote_runtime::tensor_name(bytes, index)
            }
            _ => None,
        };
        let err = anyhow::Error::new(e);
        match tensor {
            Some(name) => err.context(format!("{}: tensor {name:?}", path.display())),
            None => err.context(format!("{}", path.display())),
        }
    })
}
