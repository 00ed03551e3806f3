//! `cargo xtask ci`: what CI runs, in order, stopping at the first failure.

use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check` and clippy (quicker local runs).
    #[arg(long)]
    pub no_lint: bool,
}

pub(crate) fn step(title: &str, cargo_args: &[&str]) -> Result<()> {
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
            "--target-dir",
            "target/stable",
        ],
    )?;
    crate::ci_hostile::run()?;
    println!("\nci: all steps passed");
    Ok(ExitCode::SUCCESS)
}
