//! The parser and interpreter on real models: the tiny conversions of every architecture
//! that seed the `parse_run` fuzz target (`fuzz/corpus/parse_run/`, made by
//! `scripts/make_fuzz_seeds.py`). Small enough to run under Miri, which then checks the
//! whole path from file bytes to outputs (zero-copy casts included) for undefined
//! behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::vec;
use std::vec::Vec;

use crate::format::{CHECKSUM_START, header};
use crate::{Aligned, DType, Error, Interpreter, Model};

macro_rules! seed {
    ($name:literal) => {
        ($name, &Aligned(*include_bytes!(concat!("../../fuzz/corpus/parse_run/", $name, ".mote"))) as &Aligned<[u8]>)
    };
}

static SEEDS: [(&str, &Aligned<[u8]>); 8] = [
    seed!("vit_cls"),
    seed!("vit_bare"),
    seed!("vit_model_c"),
    seed!("bert"),
    seed!("llama"),
    seed!("gpt2"),
    seed!("mamba"),
    seed!("rwkv"),
];

/// Sets every input (token inputs for `n` tokens) and invokes.
fn run_once(model: &Model<'_>, it: &mut Interpreter<'_, '_>, n: usize) -> crate::Result<()> {
    if model.max_tokens() > 0 {
        it.set_tokens(n)?;
    }
    for i in 0..model.input_count() {
        let t = model.input(i).ok_or(Error::UnknownName { what: "input" })?;
        let elems = if t.seq { n * t.shape.cols() } else { t.elems() };
        match t.dtype {
            DType::I32 => it.set_input_ids(t.name, &(0..elems as i32).map(|v| v % 3).collect::<Vec<_>>())?,
            _ => it.set_input(t.name, &(0..elems).map(|v| (v % 7) as f32 / 7.0 - 0.5).collect::<Vec<_>>())?,
        }
    }
    it.invoke()
}

/// Under Miri (which interprets every step, far slower) the first model; natively all eight.
fn seeds() -> &'static [(&'static str, &'static Aligned<[u8]>)] {
    if cfg!(miri) { &SEEDS[..1] } else { &SEEDS }
}

#[test]
fn every_seed_parses_and_runs_deterministically() {
    for &(name, bytes) in seeds() {
        let model = Model::parse(&bytes.0).unwrap_or_else(|e| panic!("{name}: {e}"));
        let outputs = |fill: u8| {
            let mut arena = vec![fill; Interpreter::arena_bytes_for(&model)];
            let mut it = Interpreter::new(&model, &mut arena).unwrap();
            let mut out: Vec<u32> = Vec::new();
            // Two calls: the second continues from the state or KV cache of the first.
            for n in [2, 1] {
                run_once(&model, &mut it, n.min(model.max_tokens().max(1))).unwrap_or_else(|e| panic!("{name}: {e}"));
                for i in 0..model.output_count() {
                    let o = it.output(model.output(i).unwrap().name).unwrap();
                    assert!(o.iter().all(|v| v.is_finite()), "{name}: non-finite output");
                    out.extend(o.iter().map(|v| v.to_bits()));
                }
            }
            out
        };
        if cfg!(miri) {
            outputs(0xFF);
        } else {
            assert_eq!(outputs(0), outputs(0xFF), "{name}: the arena's old bytes changed the outputs");
        }
    }
}

#[test]
fn structural_flips_are_errors_or_run() {
    // A sample of single-bit flips in the header and the tables of one seed, with the
    // checksum fixed, each parsed and (when it parses) run: never a panic.
    let (_, bytes) = SEEDS[0];
    let len = bytes.0.len();
    let mut copy = Aligned([0u8; 8192]);
    assert!(len <= copy.0.len());
    let step = if cfg!(miri) { 509 } else { 7 };
    for pos in (CHECKSUM_START..len.min(2048)).step_by(step) {
        copy.0[..len].copy_from_slice(&bytes.0);
        copy.0[pos] ^= 1 << (pos % 8);
        let crc = crate::crc32(&copy.0[CHECKSUM_START..len]);
        copy.0[header::CHECKSUM..header::CHECKSUM + 4].copy_from_slice(&crc.to_le_bytes());
        if let Ok(model) = Model::parse(&copy.0[..len]) {
            let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model).min(1 << 20)];
            if let Ok(mut it) = Interpreter::new(&model, &mut arena) {
                let _ = run_once(&model, &mut it, 1);
            }
        }
    }
}
