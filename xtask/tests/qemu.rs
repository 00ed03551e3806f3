//! `cargo xtask qemu` end to end: the digits ViT on the emulated Cortex-M4 against the
//! host, and the errors of `qemu` and `flash`.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn xtask(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn qemu_present() -> bool {
    Command::new("qemu-system-arm").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn digits_vit_on_the_m4_matches_the_host() {
    if !qemu_present() {
        eprintln!("qemu-system-arm is not installed: skipping (CI installs it)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("mote-qemu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("digits-vit.mote");
    let (ok, _, err) =
        xtask(&["convert", root().join("demo/digits-vit").to_str().unwrap(), "-o", model.to_str().unwrap()]);
    assert!(ok, "{err}");
    let out = dir.join("board.safetensors");
    let input = root().join("demo/digits-vit/test.safetensors");
    let (ok, stdout, err) = xtask(&[
        "qemu",
        model.to_str().unwrap(),
        "--board",
        "m4",
        "--input",
        input.to_str().unwrap(),
        "--items",
        "3",
        "--output",
        out.to_str().unwrap(),
        "--profile",
    ]);
    assert!(ok, "{stdout}\n{err}");
    let logits_line = stdout.lines().find(|l| l.starts_with("logits")).unwrap();
    assert!(logits_line.contains("3/3") && logits_line.ends_with("ok"), "{logits_line}");
    assert!(stdout.contains("per inference") && stdout.contains("MatMul"), "{stdout}");
    // The board's logits, written back, are the host's (`xtask infer`) for the same images.
    let host_out = dir.join("host.safetensors");
    let (ok, _, err) = xtask(&[
        "infer",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        host_out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (board, host) = (logits(&out), logits(&host_out));
    assert_eq!(board.0, [3, 10]);
    let scale = host.1.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (b, h) in board.1.iter().zip(&host.1[..30]) {
        assert!((b - h).abs() <= 1e-4 * scale, "board {b} host {h}");
    }
}

/// (shape, values) of the f32 `logits` in a safetensors file.
fn logits(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("logits").unwrap();
    let values = t.data().chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    (t.shape().to_vec(), values)
}

#[test]
fn qemu_names_a_bad_board() {
    let (ok, _, err) = xtask(&["qemu", "x.mote", "--board", "m3", "--input", "x.safetensors"]);
    assert!(!ok);
    assert!(err.contains("unknown board \"m3\"") && err.contains("m55"), "{err}");
}

#[test]
fn flash_without_probe_rs_says_how_to_install_it() {
    if Command::new("probe-rs").arg("--version").output().is_ok() {
        return;
    }
    let (ok, _, err) = xtask(&["flash", "x.mote", "--chip", "STM32H743ZITx"]);
    assert!(!ok);
    assert!(err.contains("cargo install probe-rs-tools"), "{err}");
    let (ok, _, err) = xtask(&["flash", "x.mote", "--chip", "ESP32"]);
    assert!(!ok && err.contains("no memory layout for chip \"ESP32\""), "{err}");
}
