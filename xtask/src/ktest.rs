//! `cargo xtask ktest`: the kernel-test firmware (`firmware/ktest`) on the emulated
//! boards. It runs the kernel conformance edge cases (`mote_kernels::conformance_core`)
//! on every kernel table the board executes (on the M55 the Helium table, which runs
//! nowhere else) against the scalar references, and prints one line per table and op
//! family; QEMU exits 1 when a case fails.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::firmware::{self, Board};
use crate::qemu::{QEMU_INSTALL, qemu_present};

/// The emulated boards, in the order `--board all` runs them.
pub const BOARDS: [&str; 3] = ["m4", "m7", "m55"];

#[derive(clap::Args)]
pub struct Args {
    /// Emulated board: m4 (mps2-an386), m7 (mps2-an500), m55 (mps3-an547), or all.
    #[arg(long, default_value = "all")]
    pub board: String,
    /// Give up on QEMU after this many seconds (per board).
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Builds the kernel-test firmware for `board`; returns the ELF path. It shares the model
/// firmware's target directory for the board (`target/firmware/<target>-<cpu>`).
pub fn build(board: &Board) -> Result<PathBuf> {
    let dir = crate::workspace_root().join("firmware/ktest");
    firmware::ensure_target(&dir, board.target)?;
    let target_dir = firmware::target_dir(board);
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&dir)
        .args(["build", "--release", "--quiet", "--target", board.target, "--features", board.feature])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", firmware::rustflags(board))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .context("running cargo build for the kernel-test firmware")?;
    if !status.success() {
        bail!("building the kernel-test firmware for {} failed ({status})", board.name);
    }
    Ok(target_dir.join(board.target).join("release/mote-ktest"))
}

/// What one board printed.
#[derive(Debug)]
pub struct Run {
    pub console: String,
    pub passed: bool,
    pub seconds: f64,
}

impl Run {
    /// The firmware's last line (`ktest ok: ...` / `ktest FAILED: ...`).
    pub fn summary(&self) -> &str {
        self.console.lines().rev().find(|l| l.starts_with("ktest ")).unwrap_or("(no summary line)")
    }
}

/// Runs the ELF in QEMU (as `cargo xtask qemu` does: `-icount shift=0`, semihosting on
/// the console); passes when QEMU exits 0 and the firmware printed `ktest ok`.
pub fn run_elf(board: &Board, elf: &std::path::Path, timeout: Duration) -> Result<Run> {
    let machine = board.machine.with_context(|| format!("{} is not an emulated board", board.name))?;
    let start = Instant::now();
    let mut child = Command::new("qemu-system-arm")
        .args(["-M", machine, "-icount", "shift=0", "-semihosting-config", "enable=on,target=native"])
        .args(["-nographic", "-monitor", "none", "-serial", "null", "-kernel"])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run qemu-system-arm ({e}): {QEMU_INSTALL}"))?;
    // Read the console while QEMU runs (a full pipe would stall it).
    let mut stdout = child.stdout.take().context("QEMU stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("QEMU ({machine}) did not finish the kernel tests within {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let mut console = reader.join().unwrap_or_default();
    if !stderr.trim().is_empty() {
        console.push_str(&format!("qemu: {}\n", stderr.trim()));
    }
    let ok_line = console.lines().any(|l| l.starts_with("ktest ok:"));
    Ok(Run { console, passed: status.success() && ok_line, seconds: start.elapsed().as_secs_f64() })
}

/// Builds and runs the kernel tests on each board; fails on the first failing board,
/// naming its failing cases.
pub fn run_boards(names: &[&str], timeout: Duration, print: bool) -> Result<Vec<(String, Run)>> {
    if !qemu_present() {
        bail!("{QEMU_INSTALL}");
    }
    let mut runs = Vec::new();
    for &name in names {
        let board = firmware::board(name)?;
        let elf = build(&board)?;
        let run = run_elf(&board, &elf, timeout)?;
        if print || !run.passed {
            print!("{}", run.console);
        }
        if !run.passed {
            let fails: Vec<&str> = run.console.lines().filter(|l| l.starts_with("FAIL")).collect();
            bail!("kernel tests failed on {name} ({}): {}", board.about, fails.join("; "));
        }
        println!("{name}: {} [{:.1} s]", run.summary(), run.seconds);
        runs.push((name.to_string(), run));
    }
    Ok(runs)
}

pub fn run(a: Args) -> Result<ExitCode> {
    let names: Vec<&str> =
        if a.board.eq_ignore_ascii_case("all") { BOARDS.to_vec() } else { vec![firmware::board(&a.board)?.name] };
    run_boards(&names, Duration::from_secs(a.timeout), true)?;
    Ok(ExitCode::SUCCESS)
}
