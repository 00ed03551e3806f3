//! `--peer onnxruntime`: the same encoders timed on ONNX Runtime by
//! `scripts/onnx_peer.py`, one thread each.

use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::models::E2eRow;
use super::timing::Budget;

/// Runs `scripts/onnx_peer.py` with `args`; its median and shortest milliseconds per
/// inference.
fn peer_ms(b: &Budget, tag: &str, args: &[&str]) -> Result<(f64, f64)> {
    let root = crate::workspace_root();
    let script = root.join("scripts/onnx_peer.py");
    if !script.exists() {
        bail!("{} not found", script.display());
    }
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let json_path = out_dir.join(format!("peer-{tag}.json"));
    let _ = std::fs::remove_file(&json_path);
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .args(["--seconds", &b.peer_secs.to_string(), "--json"])
        .arg(&json_path)
        .current_dir(&root)
        .output()
        .context("running python3")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        bail!("onnx_peer.py {} failed: {last}", args.join(" "));
    }
    let v: Value = serde_json::from_slice(&std::fs::read(&json_path).context("reading the peer's JSON")?)?;
    let median = v.get("median_ms").and_then(Value::as_f64).context("the peer's JSON has no median_ms")?;
    let min = v.get("min_ms").and_then(Value::as_f64).context("the peer's JSON has no min_ms")?;
    Ok((median, min))
}

fn onnxruntime_ready() -> bool {
    Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Times each `(row index, tag, peer arguments)` of `jobs` on ONNX Runtime into its row of
/// `e2e`, or notes why not.
pub(super) fn onnxruntime(
    b: &Budget,
    jobs: &[(usize, String, Vec<String>)],
    e2e: &mut [E2eRow],
    notes: &mut Vec<String>,
) {
    let root = crate::workspace_root();
    if !root.join("scripts/onnx_peer.py").exists() {
        notes.push("--peer onnxruntime skipped: scripts/onnx_peer.py not found".into());
    } else if !onnxruntime_ready() {
        notes.push(
            "--peer onnxruntime skipped: python3 cannot import onnx / onnxruntime / numpy / safetensors \
             (pip install onnx onnxruntime numpy safetensors)"
                .into(),
        );
    } else {
        for (i, tag, args) in jobs {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match peer_ms(b, tag, &args) {
                Ok((ms, best)) => {
                    e2e[*i].peer_ms = Some(ms);
                    e2e[*i].peer_best_ms = Some(best);
                }
                Err(err) => notes.push(format!("onnxruntime {tag}: {err:#}")),
            }
        }
    }
}
