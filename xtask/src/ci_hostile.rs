//! CI steps for hostile input (issue 7): Miri over the scalar runtime and kernels, and
//! the fuzz targets' corpus replay plus a bounded run. Self-contained: `ci::run` calls
//! [`run`] once.

use anyhow::Result;

use crate::ci::step;

/// Fuzz targets in `fuzz/` (each with a committed seed corpus in `fuzz/corpus/<target>`).
pub const FUZZ_TARGETS: [&str; 3] = ["parse_run", "convert", "input_blob"];

/// Seconds each target is fuzzed after its corpus is replayed (`MOTE_FUZZ_SECONDS`
/// overrides; 0 only replays the corpus).
fn fuzz_seconds() -> u64 {
    std::env::var("MOTE_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20)
}

pub fn run() -> Result<()> {
    // Undefined behaviour in the scalar path (the `unsafe` blocks are all in the SIMD
    // path, which Miri cannot run: AVX2 intrinsics). Proptest cases are cut under Miri.
    step(
        "miri: scalar runtime and kernels",
        &[
            "miri",
            "test",
            "-p",
            "mote-runtime",
            "-p",
            "mote-kernels",
            "--no-default-features",
            "--features",
            "mote-runtime/vit,mote-runtime/transformer,mote-runtime/ssm",
        ],
    )?;
    let secs = fuzz_seconds();
    for target in FUZZ_TARGETS {
        // New inputs go to a scratch corpus (first directory) so the committed seeds stay
        // as they are; the committed corpus is replayed first, then fuzzed for `secs`.
        let scratch = format!("target/fuzz-ci/{target}");
        std::fs::create_dir_all(crate::workspace_root().join(&scratch))?;
        // Paths are relative to the workspace root, where cargo runs the fuzzer.
        let seeds = format!("fuzz/corpus/{target}");
        // Inputs that once crashed the target are replayed with the seeds.
        let regressions = format!("fuzz/regressions/{target}");
        let mut dirs = vec![scratch.as_str(), seeds.as_str()];
        if crate::workspace_root().join(&regressions).is_dir() {
            dirs.push(&regressions);
        }
        let time = format!("-max_total_time={secs}");
        let runs = if secs == 0 { "-runs=0" } else { "-timeout=10" };
        step(
            &format!("fuzz {target}: replay the corpus, then {secs} s"),
            // cargo-fuzz's default build: optimised, with debug assertions and overflow
            // checks, so a kernel handed lengths the parser should have refused (its
            // `debug_assert!`s) or an arithmetic overflow is a crash too.
            &[&["fuzz", "run", "--fuzz-dir", "fuzz", target][..], &dirs, &["--", &time, runs]].concat(),
        )?;
    }
    Ok(())
}
