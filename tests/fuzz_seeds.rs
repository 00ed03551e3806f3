//! The fuzz targets' seed corpora (`fuzz/corpus/`) stay real models: every `.mote` seed
//! parses, binds an arena and runs, and every checkpoint seed converts to the bytes of
//! the `.mote` seed made from it (so a format change that needs new seeds is caught
//! here, not by a fuzzer that silently stops reaching the interpreter).
//! `MOTE_FUZZ_CORPUS=dir` replays another directory of `.mote` inputs (e.g. a fuzzer's
//! working corpus) through the same checks as the `parse_run` target and counts how far
//! each input gets.

use std::path::PathBuf;

use mote_models::host::AlignedBytes;
use mote_models::{ConvertOptions, WeightDType, convert_bytes};
use mote_runtime::format::{CHECKSUM_START, header};
use mote_runtime::{DType, Interpreter, Model};
use mote_tests::root;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(p).unwrap()))
        .collect()
}

/// Parses and runs one `.mote` as the `parse_run` target does; returns how far it got:
/// 0 refused by the parser, 1 parsed, 2 bound an arena and ran.
fn parse_and_run(bytes: &[u8]) -> u8 {
    let buf = AlignedBytes::new(bytes);
    let Ok(model) = Model::parse(&buf) else { return 0 };
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let Ok(mut it) = Interpreter::new(&model, &mut arena) else { return 1 };
    if model.max_tokens() > 0 && it.set_tokens(1).is_err() {
        return 1;
    }
    for i in 0..model.input_count() {
        let t = model.input(i).unwrap();
        let elems = if t.seq { it.tokens() * t.shape.cols() } else { t.elems() };
        let r = match t.dtype {
            DType::I32 => it.set_input_ids(t.name, &vec![1; elems]),
            _ => it.set_input(t.name, &vec![0.25; elems]),
        };
        if r.is_err() {
            return 1;
        }
    }
    if it.invoke().is_err() {
        return 1;
    }
    2
}

#[test]
fn mote_seeds_parse_and_run() {
    let seeds = corpus("parse_run");
    assert!(seeds.len() >= 8, "{} seeds", seeds.len());
    for (name, bytes) in seeds {
        assert_eq!(parse_and_run(&bytes), 2, "{name} does not run");
    }
}

#[test]
fn checkpoint_seeds_convert_to_the_mote_seeds() {
    for (name, blob) in corpus("convert") {
        let split = blob.iter().position(|&b| b == 0).expect("config, NUL, safetensors");
        let opts =
            ConvertOptions { chunk: (!name.starts_with("vit") && name != "bert").then_some(4), ..Default::default() };
        let c =
            convert_bytes(&blob[..split], blob[split + 1..].to_vec(), &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mote = std::fs::read(root().join(format!("fuzz/corpus/parse_run/{name}.mote"))).unwrap();
        assert!(c.bytes == mote, "{name}: the .mote seed is stale; rerun scripts/make_fuzz_seeds.py");
    }
}

/// The quantized `.mote` seeds (`QUANTIZED_SEEDS` in `scripts/make_fuzz_seeds.py`) are
/// current conversions of their test checkpoints, and hold int8 / int4 blocks.
#[test]
fn quantized_seeds_are_current() {
    let seeds = [
        ("vit_a_int8", "vit/vit_a", WeightDType::Int8, None),
        ("gpt2_a_int4", "gpt2/gpt2_a", WeightDType::Int4, Some(4)),
    ];
    for (name, src, dtype, chunk) in seeds {
        let c =
            mote_tests::convert_with(&mote_tests::data(src), &ConvertOptions { dtype, chunk, ..Default::default() });
        let mote = std::fs::read(root().join(format!("fuzz/corpus/parse_run/{name}.mote"))).unwrap();
        assert!(c.bytes == mote, "{name}: the .mote seed is stale; rerun scripts/make_fuzz_seeds.py");
        assert!(c.quantized_tensors > 0, "{name}");
    }
}

/// A fuzzer input as the `parse_run` target sees it: the checksum fixed unless byte 63
/// is odd.
fn as_the_target_sees_it(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() >= 64 && b[63] & 1 == 0 {
        let file_bytes = u32::from_le_bytes(b[header::FILE_BYTES..][..4].try_into().unwrap()) as usize;
        let end = if (64..=b.len()).contains(&file_bytes) { file_bytes } else { b.len() };
        let crc = mote_runtime::crc32(&b[CHECKSUM_START..end]);
        b[header::CHECKSUM..header::CHECKSUM + 4].copy_from_slice(&crc.to_le_bytes());
    }
    b
}

/// Inputs that crashed a fuzz target (`fuzz/regressions/<target>/<what was wrong>`), each
/// with the error it must now give. The tests run with debug assertions, as the fuzzer
/// did, so a kernel handed lengths the parser should have refused panics here.
#[test]
fn fuzz_crashes_stay_fixed() {
    let cases: [(&str, &str); 1] = [
        // LayerNorm's gamma was a token-row activation: [max_tokens, 2] has `dim` elements
        // at max_tokens rows, but a one-token call passed 2 to the kernel.
        ("layer_norm_gamma_token_rows", "token rows"),
    ];
    let dir = root().join("fuzz/regressions/parse_run");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), cases.len(), "a regression file without a case here");
    for (file, want) in cases {
        let b = as_the_target_sees_it(std::fs::read(dir.join(file)).unwrap());
        let buf = AlignedBytes::new(&b);
        match Model::parse(&buf) {
            Err(e) => assert!(e.to_string().contains(want), "{file}: {e}"),
            Ok(_) => panic!("{file}: parses"),
        }
    }
}

#[test]
fn replay_another_corpus() {
    let Some(dir) = std::env::var_os("MOTE_FUZZ_CORPUS") else { return };
    let mut counts = [0usize; 3];
    for e in std::fs::read_dir(dir).unwrap() {
        let b = as_the_target_sees_it(std::fs::read(e.unwrap().path()).unwrap());
        counts[parse_and_run(&b) as usize] += 1;
    }
    println!("refused {}, parsed only {}, ran {}", counts[0], counts[1], counts[2]);
}
