//! One name for "a microcontroller build": `cfg(mote_board)` on bare-metal Arm with the
//! `simd` feature, where the kernel table is fixed at compile time (`src/table.rs`).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(mote_board)");
    let arm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "arm");
    let bare = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|o| o == "none");
    if arm && bare && std::env::var_os("CARGO_FEATURE_SIMD").is_some() {
        println!("cargo::rustc-cfg=mote_board");
    }
}
