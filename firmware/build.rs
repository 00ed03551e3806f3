//! Chooses the board's `memory.x` and embeds the model and its input.
//!
//! - one `board-*` / `chip-*` feature picks `memory/<board>.x`;
//! - `MOTE_MODEL` (required): the `.mote` to embed; its header gives the arena size;
//! - `MOTE_INPUT` (optional): an input blob written by `cargo xtask qemu`/`flash`
//!   (its format: `mote_board::input`, `board/src/input.rs`); without it the firmware
//!   runs a default input (zeros, or the one-token prompt `[0]`).

use std::path::{Path, PathBuf};
use std::{env, fs, process};

const BOARDS: [&str; 5] = ["m4", "m7", "m55", "stm32h7", "nrf52840"];
/// Offsets in the `.mote` header (mirrors `mote_runtime::format`).
const MAGIC: &[u8; 8] = b"MOTE\r\n\x1a\n";
const ARENA_BYTES_AT: usize = 32;

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    process::exit(1)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR not set")));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());

    let feature =
        |name: &str| env::var_os(format!("CARGO_FEATURE_{}", name.to_uppercase().replace('-', "_"))).is_some();
    let boards: Vec<&str> =
        BOARDS.iter().copied().filter(|b| feature(&format!("board-{b}")) || feature(&format!("chip-{b}"))).collect();
    let board = match boards.as_slice() {
        [b] => *b,
        [] => fail("choose a board: --features board-m4|board-m7|board-m55|chip-stm32h7|chip-nrf52840"),
        _ => fail(&format!("more than one board feature: {boards:?}")),
    };
    let memory = manifest.join("memory").join(format!("{board}.x"));
    copy(&memory, &out.join("memory.x"));
    println!("cargo:rerun-if-changed={}", memory.display());
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    if feature("defmt") {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }

    println!("cargo:rerun-if-env-changed=MOTE_MODEL");
    println!("cargo:rerun-if-env-changed=MOTE_INPUT");
    let model_path = env::var_os("MOTE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| fail("set MOTE_MODEL to the .mote file to embed (cargo xtask qemu/flash do)"));
    let model = fs::read(&model_path).unwrap_or_else(|e| fail(&format!("MOTE_MODEL {}: {e}", model_path.display())));
    if model.len() < 64 || &model[..8] != MAGIC {
        fail(&format!("MOTE_MODEL {} is not a .mote file", model_path.display()));
    }
    println!("cargo:rerun-if-changed={}", model_path.display());
    fs::write(out.join("model.mote"), &model).unwrap_or_else(|e| fail(&format!("writing model.mote: {e}")));

    let input = match env::var_os("MOTE_INPUT") {
        Some(p) => {
            let p = PathBuf::from(p);
            println!("cargo:rerun-if-changed={}", p.display());
            fs::read(&p).unwrap_or_else(|e| fail(&format!("MOTE_INPUT {}: {e}", p.display())))
        }
        None => Vec::new(),
    };
    fs::write(out.join("input.bin"), &input).unwrap_or_else(|e| fail(&format!("writing input.bin: {e}")));

    let info = format!(
        "/// Board this firmware was built for.\npub const BOARD: &str = {board:?};\n\
         /// Bytes of the embedded model.\npub const MODEL_BYTES: usize = {};\n\
         /// Arena bytes from the model header, plus 63 for any alignment.\npub const ARENA_BYTES: usize = {};\n",
        model.len(),
        u32_at(&model, ARENA_BYTES_AT) as usize + 63,
    );
    fs::write(out.join("model_info.rs"), info).unwrap_or_else(|e| fail(&format!("writing model_info.rs: {e}")));
}

fn copy(from: &Path, to: &Path) {
    fs::copy(from, to).unwrap_or_else(|e| fail(&format!("{}: {e}", from.display())));
}
