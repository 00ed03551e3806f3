//! `cargo xtask qemu`: build the firmware for an emulated board, run it in
//! `qemu-system-arm` with `-icount shift=0`, bring its outputs back over semihosting and
//! compare them with the host run of the same model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mote_board::input::{TensorSpec, write_prompt, write_tensors};
pub use mote_board::report::BoardRun;
use mote_models::HostTensor;
use mote_models::host::run;
use mote_models::tensor::{read_safetensors, write_safetensors};
use mote_runtime::Model;
use mote_runtime::sampler::argmax;

use crate::firmware::{self, Board, BuildOptions, Footprint};
use crate::util::{parse_model, read_model, thousands};

/// Tokens decoders and SSMs generate on the board unless told otherwise.
pub const DEFAULT_GENERATE: usize = 8;
/// Largest relative error (max abs difference over the host's max abs value) accepted.
pub const MAX_REL_ERROR: f64 = 1e-4;

#[derive(clap::Args)]
pub struct Args {
    /// The .mote model.
    pub model: PathBuf,
    /// Emulated board: m4 (mps2-an386), m7 (mps2-an500) or m55 (mps3-an547).
    #[arg(long, default_value = "m4")]
    pub board: String,
    /// Inputs by Hugging Face name (safetensors), as for `infer`.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the board's outputs (safetensors).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Run only the first N images of a batch (QEMU runs a few million instructions a
    /// millisecond).
    #[arg(long)]
    pub items: Option<usize>,
    /// Tokens to generate greedily after the prompt (decoders and SSMs).
    #[arg(long, default_value_t = DEFAULT_GENERATE)]
    pub generate: usize,
    /// Instructions per op kind (the firmware times every op).
    #[arg(long)]
    pub profile: bool,
    /// Take the arena from an embedded-alloc heap sized at boot instead of a static.
    #[arg(long)]
    pub heap: bool,
    /// Log with defmt over semihosting; the frames are saved to
    /// target/firmware/run/<board>/console.out (decode with `defmt-print -e ELF`).
    #[arg(long)]
    pub defmt: bool,
    /// Build the runtime with only these model families (e.g. `vit`), as a small
    /// firmware would; default: all.
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<String>,
    /// Give up on QEMU after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// The firmware's input blob and the same inputs for the host run.
#[derive(Debug)]
pub struct Blob {
    pub bytes: Vec<u8>,
    pub host_inputs: BTreeMap<String, HostTensor>,
    pub generate: Option<usize>,
}

/// Writes the blob the firmware reads (`mote_board::input`): f32 inputs per item for
/// image models, or the first prompt of `input_ids` and a token count for decoders and
/// SSMs.
pub fn input_blob(
    model: &Model<'_>,
    inputs: &BTreeMap<String, HostTensor>,
    items: Option<usize>,
    generate: Option<usize>,
) -> Result<Blob> {
    let mut host_inputs = BTreeMap::new();
    if model.max_tokens() == 0 {
        let mut batch = None;
        let mut feeds = Vec::new();
        for i in 0..model.input_count() {
            let info = model.input(i).context("unreadable model input")?;
            let per_item = info.elems();
            let t = inputs.get(info.name).with_context(|| format!("the input file has no {:?}", info.name))?;
            let values = t.as_f32().with_context(|| format!("input {:?} is not f32", info.name))?;
            if per_item == 0 || values.len() % per_item != 0 {
                bail!("input {:?} has {} values, not a multiple of the model's {per_item}", info.name, values.len());
            }
            let n = values.len() / per_item;
            if *batch.get_or_insert(n) != n {
                bail!("inputs disagree on the batch size");
            }
            feeds.push((info.name, per_item, values, t.shape.clone()));
        }
        let n = batch.unwrap_or(1).min(items.unwrap_or(usize::MAX)).max(1);
        let specs: Vec<TensorSpec<'_>> =
            feeds.iter().map(|&(name, elems_per_item, _, _)| TensorSpec { name, elems_per_item }).collect();
        // Item-major: every input of item 0, then of item 1, ...
        let mut item_major = Vec::new();
        for item in 0..n {
            for (_, per_item, values, _) in &feeds {
                item_major.extend_from_slice(&values[item * per_item..(item + 1) * per_item]);
            }
        }
        let b = write_tensors(n, &specs, &item_major).context("writing the input blob")?;
        for (name, per_item, values, shape) in feeds {
            let mut shape = shape;
            if let Some(first) = shape.first_mut() {
                *first = n;
            }
            host_inputs.insert(name.to_string(), HostTensor::f32(shape, values[..n * per_item].to_vec()));
        }
        return Ok(Blob { bytes: b, host_inputs, generate: None });
    }
    if model.persistent_bytes() == 0 {
        bail!("{}: encoders (token inputs, no state) are not run on the board yet", model.architecture());
    }
    let ids_t = inputs.get("input_ids").context("the input file has no input_ids")?;
    let ids = ids_t.as_i64().context("input_ids are not integers")?;
    let len = ids_t.shape.last().copied().unwrap_or(ids.len());
    if len == 0 || ids.len() < len {
        bail!("input_ids is empty");
    }
    let generate = generate.unwrap_or(DEFAULT_GENERATE);
    let prompt = ids[..len]
        .iter()
        .map(|&id| i32::try_from(id).context("a token id does not fit i32"))
        .collect::<Result<Vec<i32>>>()?;
    let b = write_prompt(&prompt, generate).context("writing the input blob")?;
    host_inputs.insert("input_ids".into(), HostTensor::i64(vec![1, len], ids[..len].to_vec()));
    Ok(Blob { bytes: b, host_inputs, generate: (generate > 0).then_some(generate) })
}

/// Runs an ELF in QEMU for `board`; returns the report.
pub fn run_elf(board: &Board, elf: &Path, timeout: Duration) -> Result<BoardRun> {
    let machine = board.machine.with_context(|| format!("{} is not an emulated board", board.name))?;
    let dir = crate::workspace_root().join("target/firmware/run").join(board.name);
    std::fs::create_dir_all(&dir)?;
    let report = dir.join(mote_board::report::FILE);
    let _ = std::fs::remove_file(&report);
    let mut child = Command::new("qemu-system-arm")
        .current_dir(&dir)
        .args(["-M", machine, "-icount", "shift=0", "-semihosting-config", "enable=on,target=native"])
        .args(["-nographic", "-monitor", "none", "-serial", "null", "-kernel"])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run qemu-system-arm ({e}): {}", QEMU_INSTALL))?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("QEMU ({machine}) did not finish within {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output()?;
    // The console: text logs, or defmt frames (binary) with the `qemu-defmt` feature.
    std::fs::write(dir.join("console.out"), &out.stdout)?;
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let parsed = mote_board::report::parse(&text).map_err(anyhow::Error::from);
    if !status.success() {
        let console = String::from_utf8_lossy(&out.stdout).trim().replace('\n', "; ");
        let err = String::from_utf8_lossy(&out.stderr).trim().replace('\n', "; ");
        match parsed {
            Err(e) => bail!("the firmware failed on {machine} ({status}): {e:#}; console: {console} {err}"),
            Ok(_) => bail!("the firmware failed on {machine} ({status}); console: {console} {err}"),
        }
    }
    parsed
}

pub const QEMU_INSTALL: &str = "qemu-system-arm is not installed: `sudo apt-get install qemu-system-arm` (Debian/Ubuntu), `brew install qemu` (macOS)";

pub fn qemu_present() -> bool {
    Command::new("qemu-system-arm").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// One output compared between host and board.
#[derive(Debug, Clone)]
pub struct OutputCmp {
    pub name: String,
    pub max_abs: f64,
    pub rel: f64,
    pub argmax_agree: usize,
    pub rows: usize,
}

/// A board run compared with the host.
#[derive(Debug)]
pub struct Outcome {
    pub board: BoardRun,
    pub outputs: Vec<OutputCmp>,
    /// (equal, total) greedy tokens, for decoders.
    pub tokens: Option<(usize, usize)>,
    pub footprint: Footprint,
    pub host: BTreeMap<String, HostTensor>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.outputs.iter().all(|o| o.argmax_agree == o.rows && o.rel < MAX_REL_ERROR)
            && self.tokens.is_none_or(|(eq, n)| eq == n)
    }
    #[allow(dead_code)]
    pub fn max_abs(&self) -> f64 {
        self.outputs.iter().map(|o| o.max_abs).fold(0.0, f64::max)
    }
}

/// Builds, runs on `board` and compares with the host.
pub fn compare_on_board(
    model_path: &Path,
    board: &Board,
    inputs: &BTreeMap<String, HostTensor>,
    items: Option<usize>,
    generate: Option<usize>,
    opts: &BuildOptions,
    timeout: Duration,
) -> Result<Outcome> {
    let bytes = read_model(model_path)?;
    let model = parse_model(model_path, &bytes)?;
    let blob = input_blob(&model, inputs, items, generate)?;
    let blob_path = crate::workspace_root().join("target/firmware").join(format!("{}-input.bin", board.name));
    std::fs::create_dir_all(blob_path.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(&blob_path, &blob.bytes)?;
    let opts = BuildOptions { input_blob: Some(blob_path), ..opts.clone() };
    let elf = firmware::build(board, model_path, &opts)?;
    let footprint = Footprint::read(&elf)?;
    let board_run = run_elf(board, &elf, timeout)?;
    let host = run(&model, &blob.host_inputs, blob.generate).context("host run")?;

    let mut outputs = Vec::new();
    let mut tokens = None;
    for (name, want) in &host {
        if let Some(w) = want.as_i64() {
            let g = &board_run.tokens;
            let eq = g.iter().zip(w).filter(|(a, b)| a == b).count();
            tokens = Some((if g.len() == w.len() { eq } else { 0 }, w.len()));
            continue;
        }
        let want = want.to_f32();
        let got = board_run.outputs.get(name).with_context(|| format!("the board reported no output {name}"))?;
        if got.len() != want.len() {
            bail!("output {name}: the board gave {} values, the host {}", got.len(), want.len());
        }
        let max_abs = got.iter().zip(&want).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
        let scale = want.iter().map(|v| v.abs() as f64).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
        let row = host[name].shape.last().copied().unwrap_or(1).max(1);
        let rows = want.len() / row;
        let agree = got.chunks(row).zip(want.chunks(row)).filter(|(a, b)| argmax(a) == argmax(b)).count();
        let rel = if got.iter().any(|v| !v.is_finite()) { f64::INFINITY } else { max_abs / scale };
        outputs.push(OutputCmp { name: name.clone(), max_abs, rel, argmax_agree: agree, rows });
    }
    Ok(Outcome { board: board_run, outputs, tokens, footprint, host })
}

fn fmt_instr(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| thousands(x.round() as usize))
}

pub fn print_outcome(board: &Board, o: &Outcome, profile: bool) {
    println!("board             {} ({})", board.name, board.about);
    println!("{:<18}{:>14} {:>12} {:>10}", "output", "max abs diff", "rel error", "argmax");
    for c in &o.outputs {
        let ok = c.argmax_agree == c.rows && c.rel < MAX_REL_ERROR;
        println!(
            "{:<18}{:>14.3e} {:>12.3e} {:>6}/{:<4}{}",
            c.name,
            c.max_abs,
            c.rel,
            c.argmax_agree,
            c.rows,
            if ok { "ok" } else { "FAIL" }
        );
    }
    if let Some((eq, n)) = o.tokens {
        println!("{:<18}{eq}/{n} equal to the host's {}", "greedy_tokens", if eq == n { "ok" } else { "FAIL" });
    }
    let b = &o.board;
    if b.per_inference().is_some() {
        println!("instructions      {} per inference (mean of {})", fmt_instr(b.per_inference()), b.invokes.len());
    }
    if b.per_prefill_token().is_some() {
        println!(
            "instructions      {} per prompt token (prefill), {} per generated token (mean of {})",
            fmt_instr(b.per_prefill_token()),
            fmt_instr(b.per_token()),
            b.steps.len()
        );
    }
    println!(
        "                  (QEMU -icount shift=0: 1 ns of virtual time per instruction; {:.3} per timer tick)",
        b.instr_per_tick
    );
    o.footprint.print(Some(b.stack));
    if let Some((arena, heap)) = b.heap_arena {
        println!(
            "heap              arena of {} taken from a heap of {}",
            crate::util::bytes(arena as usize),
            crate::util::bytes(heap as usize)
        );
    }
    if profile {
        let total: u64 = b.ops.iter().map(|o| o.2).sum();
        println!("\n{:<20}{:>8} {:>16} {:>7}", "op kind", "calls", "instructions", "share");
        for (name, calls, ticks) in &b.ops {
            println!(
                "{name:<20}{calls:>8} {:>16} {:>6.1}%",
                thousands(b.instructions(*ticks).round() as usize),
                100.0 * *ticks as f64 / total.max(1) as f64
            );
        }
        println!("(every call of the run; the ops' total includes a few instructions of the timer reads)");
    }
}

pub fn run_qemu(a: Args) -> Result<ExitCode> {
    let board = firmware::board(&a.board)?;
    if !qemu_present() {
        bail!("{QEMU_INSTALL}");
    }
    if !a.input.exists() {
        bail!("{}: no such file", a.input.display());
    }
    let inputs = read_safetensors(&a.input).with_context(|| format!("reading inputs {}", a.input.display()))?;
    let opts = BuildOptions {
        profile: a.profile,
        heap: a.heap,
        defmt: a.defmt,
        families: a.families.clone(),
        input_blob: None,
    };
    let o =
        compare_on_board(&a.model, &board, &inputs, a.items, Some(a.generate), &opts, Duration::from_secs(a.timeout))?;
    print_outcome(&board, &o, a.profile);
    if a.defmt {
        let console = crate::workspace_root().join("target/firmware/run").join(board.name).join("console.out");
        println!("defmt log         {} (decode: defmt-print -e <the firmware ELF> < that file)", console.display());
    }
    if let Some(path) = &a.output {
        let mut out = BTreeMap::new();
        for (name, h) in &o.host {
            let t = match h.as_i64() {
                Some(_) => HostTensor::i64(h.shape.clone(), o.board.tokens.clone()),
                None => HostTensor::f32(h.shape.clone(), o.board.outputs.get(name).cloned().unwrap_or_default()),
            };
            out.insert(name.clone(), t);
        }
        write_safetensors(path, &out).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote             {}", path.display());
    }
    if o.passed() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: the board's outputs differ from the host's (argmax or tokens differ, or relative error >= {MAX_REL_ERROR:e})"
        );
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_blob_holds_the_first_items_in_order() {
        let root = crate::workspace_root();
        let c = mote_models::convert_dir(&root.join("demo/digits-vit"), &Default::default()).unwrap();
        let bytes = mote_models::host::AlignedBytes::new(&c.bytes);
        let model = Model::parse(&bytes).unwrap();
        let test = read_safetensors(&root.join("demo/digits-vit/test.safetensors")).unwrap();
        let blob = input_blob(&model, &test, Some(2), None).unwrap();
        let pixels = test["pixel_values"].as_f32().unwrap();
        let host = &blob.host_inputs["pixel_values"];
        assert_eq!(host.shape, [2, 1, 8, 8]);
        assert_eq!(host.as_f32().unwrap(), &pixels[..128]);
        // The blob ends with the same 128 values, little-endian.
        let tail: Vec<f32> = blob.bytes[blob.bytes.len() - 512..]
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(tail, &pixels[..128]);
        assert_eq!(&blob.bytes[..8], mote_board::input::MAGIC);
    }
}
