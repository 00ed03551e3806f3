//! Chooses the board's `memory.x` (`../memory/<board>.x`) from the one `board-*` feature.

use std::path::PathBuf;
use std::{env, fs, process};

const BOARDS: [&str; 3] = ["m4", "m7", "m55"];

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    process::exit(1)
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR not set")));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let boards: Vec<&str> = BOARDS
        .iter()
        .copied()
        .filter(|b| env::var_os(format!("CARGO_FEATURE_BOARD_{}", b.to_uppercase())).is_some())
        .collect();
    let board = match boards.as_slice() {
        [b] => *b,
        [] => fail("choose a board: --features board-m4|board-m7|board-m55"),
        _ => fail(&format!("more than one board feature: {boards:?}")),
    };
    let memory = manifest.join("../memory").join(format!("{board}.x"));
    fs::copy(&memory, out.join("memory.x")).unwrap_or_else(|e| fail(&format!("{}: {e}", memory.display())));
    println!("cargo:rerun-if-changed={}", memory.display());
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    fs::write(
        out.join("board.rs"),
        format!("/// Board this firmware was built for.\npub const BOARD: &str = {board:?};\n"),
    )
    .unwrap_or_else(|e| fail(&format!("writing board.rs: {e}")));
}
