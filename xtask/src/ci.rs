//! `cargo xtask ci`: what CI runs, in order, stopping at the first failure.

use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check` and clippy (quicker local runs).
    #[arg(long)]
    pub no_lint: bool,
    /// Only the firmware steps (QEMU runs, chip builds).
    #[arg(long)]
    pub firmware_only: bool,
    /// Skip the firmware steps.
    #[arg(long)]
    pub no_firmware: bool,
}

pub(crate) fn step(title: &str, cargo_args: &[&str]) -> Result<()> {
    step_env(title, cargo_args, &[])
}

/// [`step`] with extra environment variables.
pub(crate) fn step_env(title: &str, cargo_args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    // `+toolchain` is understood by the rustup proxy, not by a toolchain's own cargo.
    let cargo = if cargo_args.first().is_some_and(|a| a.starts_with('+')) {
        "cargo".to_string()
    } else {
        std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
    };
    println!("\n==> {title}: cargo {}", cargo_args.join(" "));
    let start = Instant::now();
    let status = Command::new(cargo)
        .args(cargo_args)
        .envs(env.iter().copied())
        .current_dir(crate::workspace_root())
        .status()
        .with_context(|| format!("running cargo for {title}"))?;
    if !status.success() {
        bail!("{title} failed ({status})");
    }
    println!("<== {title} ok ({:.0} s)", start.elapsed().as_secs_f64());
    Ok(())
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.firmware_only {
        firmware_steps()?;
        println!("\nci: firmware steps passed");
        return Ok(ExitCode::SUCCESS);
    }
    if !a.no_lint {
        step("format", &["fmt", "--all", "--", "--check"])?;
        step("clippy", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    }
    step("tests", &["test", "--workspace"])?;
    for target in ["thumbv7em-none-eabihf", "thumbv8m.main-none-eabihf"] {
        step(
            &format!("no_std build for {target}"),
            &["build", "-p", "mote-runtime", "-p", "mote-kernels", "--target", target],
        )?;
    }
    // The Cortex-M55 table (Helium asm!) needs the M55 CPU: no warnings allowed.
    step_env(
        "no_std build for the Cortex-M55 (feature mve)",
        &[
            "build",
            "-p",
            "mote-runtime",
            "--features",
            "mve",
            "--target",
            "thumbv8m.main-none-eabihf",
            "--target-dir",
            "target/m55",
        ],
        &[("RUSTFLAGS", "-C target-cpu=cortex-m55 -D warnings")],
    )?;
    // The scalar path also builds and passes on stable, with the simd feature off.
    step(
        "stable scalar tests",
        &[
            "+stable",
            "test",
            "-p",
            "mote-kernels",
            "-p",
            "mote-runtime",
            "--no-default-features",
            "--features",
            "mote-runtime/vit,mote-runtime/transformer,mote-runtime/ssm,mote-runtime/quant",
            "--target-dir",
            "target/stable",
        ],
    )?;
    // A runtime without `ssm` refuses softplus (its kernels leave it out).
    step(
        "stable: softplus refused without ssm",
        &[
            "+stable",
            "test",
            "-p",
            "mote-runtime",
            "--no-default-features",
            "--features",
            "vit",
            "--lib",
            "--target-dir",
            "target/stable",
            "softplus_only_with_ssm",
        ],
    )?;
    // The kernels (every table an aarch64 build has: generic, Cortex-M4F / M7, portable
    // core::simd) and their conformance suites on an Arm CPU: aarch64 Linux under
    // qemu-aarch64 (Debian's qemu-user and gcc-aarch64-linux-gnu).
    step_env(
        "kernel tests on aarch64 (qemu-aarch64)",
        &["test", "-p", "mote-kernels", "--target", "aarch64-unknown-linux-gnu", "--target-dir", "target/aarch64"],
        &[
            ("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", "aarch64-linux-gnu-gcc"),
            ("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER", "qemu-aarch64 -L /usr/aarch64-linux-gnu"),
        ],
    )?;
    if !a.no_firmware {
        firmware_steps()?;
    }
    crate::ci_hostile::run()?;
    println!("\nci: all steps passed");
    Ok(ExitCode::SUCCESS)
}

/// The firmware: no_std builds of the runtime per model family, then the QEMU and chip
/// steps of `ci_firmware`.
fn firmware_steps() -> Result<()> {
    for features in ["vit", "transformer", "ssm", "defmt"] {
        step(
            &format!("no_std runtime, feature {features} only"),
            &[
                "build",
                "-p",
                "mote-runtime",
                "--no-default-features",
                "--features",
                features,
                "--target",
                "thumbv7em-none-eabihf",
            ],
        )?;
    }
    // runtime and kernels for both embedded targets, every feature set built above
    for target in ["thumbv7em-none-eabihf", "thumbv8m.main-none-eabihf"] {
        let deps = crate::workspace_root().join("target").join(target).join("debug/deps");
        if !deps.exists() && target != "thumbv7em-none-eabihf" {
            // `--firmware-only` skips the step that builds the M55 table.
            println!("no alloc, no std: nothing built for {target} in this run");
            continue;
        }
        let n = crate::ci_firmware::check_no_alloc_std(&deps)?;
        println!("no alloc, no std: {n} crates built for {target} (runtime, kernels and their dependencies)");
    }
    println!("\n==> firmware: kernel tests and 3 models on 3 emulated boards vs the host, ViT-only, heap, chips");
    let start = Instant::now();
    crate::ci_firmware::run()?;
    println!("<== firmware ok ({:.0} s)", start.elapsed().as_secs_f64());
    Ok(())
}
