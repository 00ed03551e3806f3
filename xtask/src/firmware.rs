//! Building the Cortex-M firmware (`firmware/`) for a board, its footprint from the ELF,
//! and `cargo xtask flash` (probe-rs).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::elf::Elf;
use crate::util::bytes;

/// A board the firmware builds for.
#[derive(Debug, Clone, Copy)]
pub struct Board {
    /// Short name (`--board`), also the memory layout `firmware/memory/<name>.x`.
    pub name: &'static str,
    pub feature: &'static str,
    pub target: &'static str,
    pub cpu: &'static str,
    /// QEMU machine, for emulated boards.
    pub machine: Option<&'static str>,
    pub about: &'static str,
}

pub const BOARDS: [Board; 5] = [
    Board {
        name: "m4",
        feature: "board-m4",
        target: "thumbv7em-none-eabihf",
        cpu: "cortex-m4",
        machine: Some("mps2-an386"),
        about: "QEMU mps2-an386, Cortex-M4F",
    },
    Board {
        name: "m7",
        feature: "board-m7",
        target: "thumbv7em-none-eabihf",
        cpu: "cortex-m7",
        machine: Some("mps2-an500"),
        about: "QEMU mps2-an500, Cortex-M7",
    },
    Board {
        name: "m55",
        feature: "board-m55",
        target: "thumbv8m.main-none-eabihf",
        cpu: "cortex-m55",
        machine: Some("mps3-an547"),
        about: "QEMU mps3-an547, Cortex-M55 (Helium)",
    },
    Board {
        name: "stm32h7",
        feature: "chip-stm32h7",
        target: "thumbv7em-none-eabihf",
        cpu: "cortex-m7",
        machine: None,
        about: "STM32H7 (2 MiB flash, 512 KiB AXI SRAM), probe-rs",
    },
    Board {
        name: "nrf52840",
        feature: "chip-nrf52840",
        target: "thumbv7em-none-eabihf",
        cpu: "cortex-m4",
        machine: None,
        about: "nRF52840 (1 MiB flash, 256 KiB RAM), probe-rs",
    },
];

pub fn board(name: &str) -> Result<Board> {
    let emulated = ["m4", "m7", "m55"];
    let key = name.to_ascii_lowercase();
    let key = key.strip_prefix("cortex-").unwrap_or(&key);
    BOARDS
        .iter()
        .find(|b| b.name == key && emulated.contains(&b.name))
        .copied()
        .with_context(|| format!("unknown board {name:?}: choose m4 (mps2-an386), m7 (mps2-an500) or m55 (mps3-an547)"))
}

/// The memory layout for a probe-rs chip name (e.g. STM32H743ZITx, nRF52840_xxAA).
pub fn chip_board(chip: &str) -> Result<Board> {
    let c = chip.to_ascii_lowercase();
    let name = if c.starts_with("stm32h7") {
        "stm32h7"
    } else if c.starts_with("nrf52840") {
        "nrf52840"
    } else {
        bail!("no memory layout for chip {chip:?}: firmware/memory has STM32H7* and nRF52840* (add a memory.x there)")
    };
    BOARDS.iter().find(|b| b.name == name).copied().context("board table")
}

/// How to build: the board plus optional cargo features of the firmware.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub profile: bool,
    pub heap: bool,
    /// Log with defmt over semihosting (QEMU boards; chips always use defmt over RTT).
    pub defmt: bool,
    /// Model families (`vit`, `transformer`, `ssm`); empty for all.
    pub families: Vec<String>,
    pub input_blob: Option<PathBuf>,
}

/// Makes sure the Rust standard library for `target` is installed for the toolchain that
/// builds in `dir`: installs it with rustup when rustup is there, else stops with the one
/// command that fixes it (instead of cargo's `can't find crate for core`).
pub fn ensure_target(dir: &Path, target: &str) -> Result<()> {
    let fix = format!("rustup target add {target}");
    let sysroot = Command::new("rustc")
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(target).join("lib").is_dir() {
        return Ok(());
    }
    println!("the Rust target {target} is not installed: running `{fix}`");
    match Command::new("rustup").current_dir(dir).args(["target", "add", target]).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("`{fix}` failed ({s}); run it by hand, then try again"),
        Err(_) => bail!("the Rust target {target} is not installed and rustup is not there: `{fix}` (with rustup)"),
    }
}

/// Builds the firmware with `model` embedded; returns the ELF path.
pub fn build(board: &Board, model: &Path, opts: &BuildOptions) -> Result<PathBuf> {
    let root = crate::workspace_root();
    let dir = root.join("firmware");
    let model = std::fs::canonicalize(model).with_context(|| format!("{}: no such file", model.display()))?;
    let mut features = vec![board.feature.to_string()];
    if opts.profile {
        features.push("profile".into());
    }
    if opts.heap {
        features.push("heap".into());
    }
    if opts.defmt && board.machine.is_some() {
        features.push("qemu-defmt".into());
    }
    ensure_target(&dir, board.target)?;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&dir).args(["build", "--release", "--quiet", "--target", board.target]);
    if !opts.families.is_empty() {
        cmd.arg("--no-default-features");
        features.push("simd".into());
        features.extend(opts.families.iter().cloned());
        // The families chosen by hand: int8 / int4 kernels only for a model that has them.
        if has_quantized(&model)? {
            features.push("quant".into());
        }
    }
    cmd.arg("--features").arg(features.join(","));
    let target_dir = target_dir(board);
    cmd.env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", rustflags(board))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("MOTE_MODEL", &model);
    match &opts.input_blob {
        Some(p) => cmd.env("MOTE_INPUT", std::fs::canonicalize(p)?),
        None => cmd.env_remove("MOTE_INPUT"),
    };
    let status = cmd.status().context("running cargo build for the firmware")?;
    if !status.success() {
        bail!("building the firmware for {} failed ({status})", board.name);
    }
    Ok(target_dir.join(board.target).join("release/mote-firmware"))
}

/// Whether the model file holds int8 / int4 weights.
fn has_quantized(model: &Path) -> Result<bool> {
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let bytes = mote_models::host::AlignedBytes::new(&bytes);
    let m = mote_runtime::Model::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
    Ok((0..m.tensor_count()).filter_map(|i| m.tensor(i)).any(|t| t.dtype.is_quantized()))
}

/// The compiler flags of every Cortex-M build: the board's CPU, and no runtime loop
/// unrolling. LLVM's Cortex-M tuning unrolls each loop whose trip count it does not know
/// four times and then unrolls the remainder loop too, which made about a fifth of the
/// runtime's code; the kernels unroll the loops that carry the multiply-accumulates in
/// their source instead (measured in the README: smaller and no slower). The same flags
/// are in `firmware/.cargo/config.toml` for builds by hand.
pub fn rustflags(board: &Board) -> String {
    format!("-C target-cpu={} {NO_RUNTIME_UNROLL}", board.cpu)
}

/// See [`rustflags`].
const NO_RUNTIME_UNROLL: &str = "-C llvm-args=-unroll-runtime=false";

/// One target directory per target and CPU (boards with the same CPU share it, so host
/// build tools such as proc macros are built once): switching the model, the features or
/// a board of the same CPU then only rebuilds what differs.
pub fn target_dir(board: &Board) -> PathBuf {
    let triple = board.target.split('-').next().unwrap_or(board.target);
    crate::workspace_root().join("target/firmware").join(format!("{triple}-{}", board.cpu))
}

/// The `deps` directory of a board's target directory (every crate the firmware links).
pub fn deps_dir(board: &Board) -> PathBuf {
    target_dir(board).join(board.target).join("release/deps")
}

/// Flash and RAM of a firmware ELF.
#[derive(Debug, Clone, Copy, Default)]
pub struct Footprint {
    pub text: u64,
    pub rodata: u64,
    pub model: u64,
    pub data: u64,
    pub bss: u64,
    pub arena: u64,
    /// Functions of mote_runtime and mote_kernels (not inlined into the firmware).
    pub runtime_code: u64,
}

impl Footprint {
    pub fn read(elf_path: &Path) -> Result<Footprint> {
        let b = std::fs::read(elf_path).with_context(|| format!("reading {}", elf_path.display()))?;
        let elf = Elf::parse(&b).with_context(|| format!("{}", elf_path.display()))?;
        let model = elf.symbol("MOTE_MODEL").unwrap_or(0);
        Ok(Footprint {
            text: elf.section(".vector_table") + elf.section(".text"),
            rodata: elf.section(".rodata").saturating_sub(model),
            model,
            data: elf.section(".data"),
            bss: elf.section(".bss") + elf.section(".uninit"),
            arena: elf.symbol("MOTE_ARENA").unwrap_or(0),
            runtime_code: elf.code_of(&["mote_runtime", "mote_kernels"]),
        })
    }
    pub fn flash(&self) -> u64 {
        self.text + self.rodata + self.model + self.data
    }
    pub fn print(&self, stack: Option<u64>) {
        println!(
            "flash             {} (.text {}, .rodata {}, model {}, .data {})",
            bytes(self.flash() as usize),
            bytes(self.text as usize),
            bytes(self.rodata as usize),
            bytes(self.model as usize),
            bytes(self.data as usize)
        );
        let ram = self.data + self.bss + stack.unwrap_or(0);
        println!(
            "RAM               {} (.data {}, .bss {} of which arena {}{})",
            bytes(ram as usize),
            bytes(self.data as usize),
            bytes(self.bss as usize),
            bytes(self.arena as usize),
            stack.map(|s| format!(", stack high-water {}", bytes(s as usize))).unwrap_or_default()
        );
        println!("runtime code      {} (mote_runtime + mote_kernels functions)", bytes(self.runtime_code as usize));
    }
}

#[derive(clap::Args)]
pub struct FlashArgs {
    /// The .mote model to embed.
    pub model: PathBuf,
    /// probe-rs chip name, e.g. STM32H743ZITx or nRF52840_xxAA.
    #[arg(long)]
    pub chip: String,
    /// Input (safetensors, as for `xtask qemu`); default: zeros or the prompt [0].
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Time every op (DWT cycles per op kind in the log).
    #[arg(long)]
    pub profile: bool,
    /// Take the arena from an embedded-alloc heap sized at boot.
    #[arg(long)]
    pub heap: bool,
}

pub const PROBE_RS_INSTALL: &str = "probe-rs is not installed: install it with `cargo install probe-rs-tools --locked` \
     (or the installer from https://probe.rs/docs/getting-started/installation/), then run this again";

pub fn probe_rs_present() -> bool {
    Command::new("probe-rs").arg("--version").output().is_ok_and(|o| o.status.success())
}

pub fn run_flash(a: FlashArgs) -> Result<ExitCode> {
    let board = chip_board(&a.chip)?;
    if !probe_rs_present() {
        bail!("{PROBE_RS_INSTALL}");
    }
    let blob = match &a.input {
        Some(input) => {
            let bytes = crate::util::read_model(&a.model)?;
            let model = crate::util::parse_model(&a.model, &bytes)?;
            let inputs = mote_models::tensor::read_safetensors(input)
                .with_context(|| format!("reading inputs {}", input.display()))?;
            let blob = crate::qemu::input_blob(&model, &inputs, None, Some(crate::qemu::DEFAULT_GENERATE))?;
            let path = crate::workspace_root().join("target/firmware").join(format!("{}-input.bin", board.name));
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
            std::fs::write(&path, blob.bytes)?;
            Some(path)
        }
        None => None,
    };
    let opts = BuildOptions { profile: a.profile, heap: a.heap, input_blob: blob, ..BuildOptions::default() };
    let elf = build(&board, &a.model, &opts)?;
    println!("built {} for {} ({})", elf.display(), a.chip, board.about);
    Footprint::read(&elf)?.print(None);
    let status = Command::new("probe-rs").args(["run", "--chip", &a.chip]).arg(&elf).status()?;
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
