//! CI for the firmware: the kernel conformance cases on the three emulated boards (the
//! kernel-test firmware, `cargo xtask ktest`), the three test models on the three
//! emulated boards compared with the host, a ViT-only firmware (size, and its refusal of other families), the heap
//! arena, the defmt builds for the probe-rs chips, and the no-alloc check.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mote_models::ConvertOptions;
use mote_models::graph::WeightDType;
use mote_models::tensor::read_safetensors;

use crate::firmware::{self, BuildOptions};
use crate::qemu::{self, QEMU_INSTALL};
use crate::util::thousands;

const TIMEOUT: Duration = Duration::from_secs(300);

/// A CI model: name, checkpoint dir, input file, images to run, context for decoders.
struct CiModel {
    name: &'static str,
    dir: &'static str,
    input: &'static str,
    items: Option<usize>,
    max_seq: Option<usize>,
    dtype: WeightDType,
}

const MODELS: [CiModel; 4] = [
    CiModel {
        name: "digits-vit",
        dir: "demo/digits-vit",
        input: "demo/digits-vit/test.safetensors",
        items: Some(4),
        max_seq: None,
        dtype: WeightDType::F16,
    },
    CiModel {
        name: "llama_a",
        dir: "tests/data/llama/llama_a",
        input: "tests/data/llama/llama_a/inputs.safetensors",
        items: None,
        max_seq: Some(64),
        dtype: WeightDType::F16,
    },
    CiModel {
        name: "mamba_a",
        dir: "tests/data/mamba/mamba_a",
        input: "tests/data/mamba/mamba_a/inputs.safetensors",
        items: None,
        max_seq: None,
        dtype: WeightDType::F16,
    },
    // int8 weights (the board's quantized matmul kernels) against the host's.
    CiModel {
        name: "digits-vit-int8",
        dir: "demo/digits-vit",
        input: "demo/digits-vit/test.safetensors",
        items: Some(4),
        max_seq: None,
        dtype: WeightDType::Int8,
    },
];

fn convert(m: &CiModel, out_dir: &Path) -> Result<PathBuf> {
    let root = crate::workspace_root();
    let opts = ConvertOptions { max_seq: m.max_seq, dtype: m.dtype, ..ConvertOptions::default() };
    let c = mote_models::convert_dir(&root.join(m.dir), &opts).with_context(|| format!("converting {}", m.dir))?;
    let path = out_dir.join(format!("{}.mote", m.name));
    std::fs::write(&path, &c.bytes)?;
    Ok(path)
}

/// Fails when any crate in `deps` (a target's `deps` directory: the runtime, the kernels
/// and everything they or the firmware pull in) depends on `alloc` or `std`, directly or
/// through another crate. `rustc -Z ls=root` lists a crate's whole dependency graph.
pub fn check_no_alloc_std(deps: &Path) -> Result<usize> {
    let mut checked = 0;
    let entries = std::fs::read_dir(deps).with_context(|| format!("reading {}", deps.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "rlib") {
            continue;
        }
        let out = std::process::Command::new("rustc")
            .current_dir(crate::workspace_root())
            .args(["-Z", "ls=root"])
            .arg(&path)
            .output()
            .context("running rustc -Z ls=root")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(deps_list) = text.split("=External Dependencies=").nth(1) else {
            bail!("rustc -Z ls=root printed no dependency list for {}", path.display());
        };
        for line in deps_list.lines() {
            let Some(name) = line.split_whitespace().nth(1) else { continue };
            let krate = name.rsplit_once('-').map_or(name, |(k, _)| k);
            if krate == "alloc" || krate == "std" {
                bail!("{} depends on `{krate}`", path.display());
            }
        }
        checked += 1;
    }
    if checked == 0 {
        bail!("no crates to check in {}", deps.display());
    }
    Ok(checked)
}

pub fn run() -> Result<()> {
    if !qemu::qemu_present() {
        bail!("{QEMU_INSTALL}");
    }
    let root = crate::workspace_root();
    let out_dir = root.join("target/firmware/ci");
    std::fs::create_dir_all(&out_dir)?;
    let mut summary = Vec::new();
    // The kernels first, entry by entry (a few seconds per board): a wrong kernel is named
    // here, before the models run through it.
    for (board_name, run) in crate::ktest::run_boards(&crate::ktest::BOARDS, TIMEOUT, false)? {
        summary.push(format!("{board_name:<4} kernel tests: {} [{:.0} s]", run.summary(), run.seconds));
    }
    let mut m4_vit_all = None;
    let mut paths = Vec::new();
    for m in &MODELS {
        paths.push(convert(m, &out_dir)?);
    }
    for board_name in ["m4", "m7", "m55"] {
        let board = firmware::board(board_name)?;
        for (m, path) in MODELS.iter().zip(&paths) {
            let start = Instant::now();
            let inputs = read_safetensors(&root.join(m.input))?;
            let o = qemu::compare_on_board(
                path,
                &board,
                &inputs,
                m.items,
                Some(qemu::DEFAULT_GENERATE),
                &BuildOptions::default(),
                TIMEOUT,
            )
            .with_context(|| format!("{} on {board_name}", m.name))?;
            let f = &o.footprint;
            let b = &o.board;
            let cost = match (b.per_inference(), b.per_token()) {
                (Some(i), _) => format!("{} instr/inference", thousands(i.round() as usize)),
                (None, Some(t)) => format!("{} instr/token", thousands(t.round() as usize)),
                _ => "-".into(),
            };
            let tokens = o.tokens.map(|(eq, n)| format!(" tokens {eq}/{n}")).unwrap_or_default();
            let argmax: (usize, usize) = o.outputs.iter().fold((0, 0), |(a, r), c| (a + c.argmax_agree, r + c.rows));
            let line = format!(
                "{board_name:<4} {:<15} max|diff| {:.2e} argmax {}/{}{tokens}  flash {} (text {} rodata {} model {})  RAM {} (bss {} arena {} stack {})  {cost}  [{:.0} s]",
                m.name,
                o.max_abs(),
                argmax.0,
                argmax.1,
                f.flash(),
                f.text,
                f.rodata,
                f.model,
                f.data + f.bss + b.stack,
                f.bss,
                f.arena,
                b.stack,
                start.elapsed().as_secs_f64()
            );
            println!("{line}");
            if board_name == "m4" && m.name == "digits-vit" {
                m4_vit_all = Some(o.footprint);
            }
            if !o.passed() {
                qemu::print_outcome(&board, &o, false);
                bail!("{} on {board_name}: the board's outputs differ from the host's", m.name);
            }
            summary.push(line);
        }
    }

    // A ViT-only firmware: smaller, same outputs, and a clear refusal of an SSM.
    let m4 = firmware::board("m4")?;
    let vit_only = BuildOptions { families: vec!["vit".into()], ..BuildOptions::default() };
    let inputs = read_safetensors(&root.join(MODELS[0].input))?;
    let o = qemu::compare_on_board(&paths[0], &m4, &inputs, Some(2), None, &vit_only, TIMEOUT)?;
    if !o.passed() {
        bail!("the ViT-only firmware's outputs differ from the host's");
    }
    let all = m4_vit_all.context("the m4 digits-vit run")?;
    println!(
        "runtime code on m4 (mote_runtime + mote_kernels functions): ViT-only {} B, everything {} B; .text {} B vs {} B",
        o.footprint.runtime_code, all.runtime_code, o.footprint.text, all.text
    );
    let mamba_inputs = read_safetensors(&root.join(MODELS[2].input))?;
    match qemu::compare_on_board(&paths[2], &m4, &mamba_inputs, None, Some(2), &vit_only, TIMEOUT) {
        Ok(_) => bail!("the ViT-only firmware ran a Mamba model"),
        Err(e) if format!("{e:#}").contains("not compiled into this runtime") => {
            println!("ViT-only firmware refuses mamba_a: {e:#}");
        }
        Err(e) => return Err(e.context("the ViT-only firmware failed on a Mamba model without naming the feature")),
    }

    // The arena from an embedded-alloc heap sized at boot.
    let heap = BuildOptions { heap: true, ..BuildOptions::default() };
    let o = qemu::compare_on_board(&paths[0], &m4, &inputs, Some(2), None, &heap, TIMEOUT)?;
    match (o.passed(), o.board.heap_arena) {
        (true, Some((arena, heap_bytes))) => {
            println!("heap arena on m4: {arena} B from a heap of {heap_bytes} B, outputs equal the host's")
        }
        _ => bail!("the heap-arena firmware failed"),
    }

    // defmt over semihosting on QEMU: the same outputs, and frames on the console.
    let defmt = BuildOptions { defmt: true, ..BuildOptions::default() };
    let o = qemu::compare_on_board(&paths[0], &m4, &inputs, Some(1), None, &defmt, TIMEOUT)?;
    let console = root.join("target/firmware/run/m4/console.out");
    let frames = std::fs::metadata(&console).map(|m| m.len()).unwrap_or(0);
    if !o.passed() || frames == 0 {
        bail!("the defmt firmware on m4 failed (outputs equal: {}, {frames} bytes of defmt frames)", o.passed());
    }
    println!("defmt over semihosting on m4: {frames} bytes of frames, outputs equal the host's");

    // Real chips: defmt over RTT, DWT cycle counter (built, not run).
    for chip in ["STM32H743ZITx", "nRF52840_xxAA"] {
        let board = firmware::chip_board(chip)?;
        let elf = firmware::build(&board, &paths[0], &BuildOptions::default())?;
        let f = firmware::Footprint::read(&elf)?;
        println!("{chip}: built with defmt + RTT: flash {} B, RAM (static) {} B", f.flash(), f.data + f.bss);
    }

    // Nothing the firmware links (runtime, kernels, cortex-m, defmt, embedded-alloc)
    // depends on alloc or std.
    for board in [firmware::board("m4")?, firmware::board("m7")?, firmware::board("m55")?] {
        let n = check_no_alloc_std(&firmware::deps_dir(&board))?;
        println!("no alloc, no std: {n} crates built for {} {} firmware", board.target, board.cpu);
    }

    println!("\nfirmware summary:");
    for line in &summary {
        println!("  {line}");
    }
    Ok(())
}
