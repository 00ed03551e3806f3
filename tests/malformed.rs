//! The malformed-input suite: one test per class of hostile input, each asserting the
//! error it must give (and, through the test harness, that nothing panics). The classes
//! already covered by `format.rs` (truncation at every section boundary, sections past
//! the end or overlapping, misaligned weights, bad dtype / storage / rank codes, shapes
//! overflowing u32 and usize, ops naming missing tensors, wrong version, sampled bit
//! flips, arena too small) are not repeated here; the README lists all of them.
//!
//! Runtime cases edit a converted `vit_model_c` (or `llama_b` for token models) and fix
//! the checksum afterwards so that the check behind it is reached; converter cases edit
//! a checkpoint in memory and convert it with `convert_bytes`.

use std::sync::OnceLock;

use mote_models::host::AlignedBytes;
use mote_models::{ConvertOptions, WeightDType};
use mote_runtime::format::{self, OP_RECORD_BYTES, SECTION_ENTRY_BYTES, TENSOR_RECORD_BYTES, header, section};
use mote_runtime::{Error, Interpreter, Model, OpCode, Storage};
use mote_tests::{convert, convert_with, data, rechecksum};
use safetensors::{Dtype, SafeTensors};

// ---------------------------------------------------------------------------------------
// Helpers

fn vit() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| convert(&data("vit/vit_model_c"), WeightDType::F16).bytes)
}

/// `llama_b` with a context of 8 tokens and 4 tokens per call.
fn llama() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let opts = ConvertOptions { max_seq: Some(8), chunk: Some(4), ..Default::default() };
        convert_with(&data("llama/llama_b"), &opts).bytes
    })
}

fn parse(bytes: &[u8]) -> Result<(), Error> {
    let buf = AlignedBytes::new(bytes);
    Model::parse(&buf).map(|_| ())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The section-table entry of `kind`: (entry offset, section offset, section length).
fn section_entry(b: &[u8], kind: u32) -> (usize, usize, usize) {
    let n = u32_at(b, header::SECTION_COUNT) as usize;
    let table = u32_at(b, header::SECTION_TABLE) as usize;
    (0..n)
        .map(|i| table + i * SECTION_ENTRY_BYTES)
        .find(|&e| u32_at(b, e) == kind)
        .map(|e| (e, u32_at(b, e + 4) as usize, u32_at(b, e + 8) as usize))
        .expect("section present")
}

/// A copy of `base` edited by `edit`, with its checksum fixed, parsed.
fn edited(base: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Result<(), Error> {
    let mut b = base.to_vec();
    edit(&mut b);
    rechecksum(&mut b);
    parse(&b)
}

fn tensor_record(b: &[u8], i: usize) -> usize {
    section_entry(b, section::TENSORS).1 + i * TENSOR_RECORD_BYTES
}

fn op_record(b: &[u8], i: usize) -> usize {
    section_entry(b, section::OPS).1 + i * OP_RECORD_BYTES
}

/// Index of the first tensor / op matching a predicate in a model.
fn find_tensor(b: &[u8], pred: impl Fn(&mote_runtime::TensorInfo<'_>) -> bool) -> usize {
    let buf = AlignedBytes::new(b);
    let m = Model::parse(&buf).unwrap();
    (0..m.tensor_count()).find(|&i| pred(&m.tensor(i).unwrap())).expect("such a tensor")
}

fn find_op(b: &[u8], opcode: OpCode) -> usize {
    let buf = AlignedBytes::new(b);
    let m = Model::parse(&buf).unwrap();
    (0..m.op_count()).find(|&i| m.op(i).unwrap().opcode == opcode).expect("such an op")
}

#[track_caller]
fn bad_tensor(r: Result<(), Error>, want: &str) {
    match r {
        Err(e @ Error::BadTensor { reason, .. }) => {
            assert!(reason.contains(want), "{reason:?} does not say {want:?}");
            assert!(e.to_string().starts_with("bad tensor #"), "{e}");
        }
        other => panic!("expected BadTensor({want}), got {other:?}"),
    }
}

#[track_caller]
fn bad_op(r: Result<(), Error>, want: &str) {
    match r {
        Err(e @ Error::BadOp { reason, .. }) => {
            assert!(reason.contains(want), "{reason:?} does not say {want:?}");
            assert!(e.to_string().starts_with("bad op #"), "{e}");
        }
        other => panic!("expected BadOp({want}), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// .mote header and section table

#[test]
fn wrong_checksum_names_both_values() {
    let mut b = vit().to_vec();
    let real = u32_at(&b, header::CHECKSUM);
    set_u32(&mut b, header::CHECKSUM, real ^ 0x8000_0001);
    let err = parse(&b).unwrap_err();
    assert_eq!(err, Error::ChecksumMismatch { stored: real ^ 0x8000_0001, computed: real });
    assert!(err.to_string().contains(&format!("{real:#010x}")), "{err}");
}

#[test]
fn section_table_inside_the_header_or_past_the_end() {
    let r = edited(vit(), |b| set_u32(b, header::SECTION_TABLE, 32));
    assert_eq!(r, Err(Error::BadHeader { field: "section_table", value: 32 }));
    let len = vit().len();
    let r = edited(vit(), |b| set_u32(b, header::SECTION_TABLE, (len - 8) as u32));
    assert!(matches!(r, Err(Error::Truncated { what: "section table", .. })), "{r:?}");
    // A section placed over the section table itself.
    let table = u32_at(vit(), header::SECTION_TABLE);
    let r = edited(vit(), |b| {
        let (entry, _, _) = section_entry(b, section::STRINGS);
        set_u32(b, entry + 4, table);
    });
    assert!(matches!(r, Err(Error::BadSection { reason: "overlaps the header or section table", .. })), "{r:?}");
}

#[test]
fn impossible_header_fields() {
    let arena = u32_at(vit(), header::ARENA_BYTES);
    let r = edited(vit(), |b| set_u32(b, header::ARENA_BYTES, arena + 1));
    assert!(matches!(r, Err(Error::BadHeader { field: "arena_bytes", .. })), "{r:?}");
    let r = edited(vit(), |b| b[60] = 1);
    assert!(matches!(r, Err(Error::BadHeader { field: "reserved", .. })), "{r:?}");
    // More tokens per call than the KV cache holds.
    let r = edited(llama(), |b| set_u32(b, header::MAX_TOKENS, 9));
    assert_eq!(r, Err(Error::BadHeader { field: "max_tokens", value: 9 }));
    let r = edited(vit(), |b| set_u32(b, header::FILE_BYTES, 40));
    assert!(matches!(r, Err(Error::BadHeader { field: "file_bytes", value: 40 })), "{r:?}");
}

#[test]
fn sections_of_impossible_length() {
    let r = edited(vit(), |b| {
        let (entry, _, _) = section_entry(b, section::META);
        set_u32(b, entry + 8, 8);
    });
    assert_eq!(r, Err(Error::BadSection { kind: section::META, reason: "shorter than 16 bytes" }));
    let r = edited(vit(), |b| {
        let (entry, _, len) = section_entry(b, section::TENSORS);
        set_u32(b, entry + 8, len as u32 - 1);
    });
    assert!(matches!(r, Err(Error::BadSection { kind: section::TENSORS, .. })), "{r:?}");
    let r = edited(vit(), |b| {
        let (entry, _, len) = section_entry(b, section::OPS);
        set_u32(b, entry + 8, len as u32 - 4);
    });
    assert!(matches!(r, Err(Error::BadSection { kind: section::OPS, .. })), "{r:?}");
}

#[test]
fn io_section_names_missing_tensors_or_wrong_counts() {
    let (_, io, _) = section_entry(vit(), section::IO);
    let r = edited(vit(), |b| set_u32(b, io + 8, 60_000));
    assert_eq!(r, Err(Error::BadSection { kind: section::IO, reason: "input names a tensor that does not exist" }));
    let r = edited(vit(), |b| set_u32(b, io, 7));
    assert!(matches!(r, Err(Error::BadSection { kind: section::IO, reason }) if reason.contains("counts")), "{r:?}");
    // An output that is a weight.
    let w = find_tensor(vit(), |t| t.storage == Storage::Weight) as u32;
    let r = edited(vit(), |b| {
        let n_in = u32_at(b, io) as usize;
        set_u32(b, io + 8 + 4 * n_in, w)
    });
    assert_eq!(r, Err(Error::BadSection { kind: section::IO, reason: "an output is not an f32 arena tensor" }));
}

#[test]
fn strings_out_of_range_or_not_utf8() {
    let (_, meta, _) = section_entry(vit(), section::META);
    let r = edited(vit(), |b| set_u32(b, meta + 4, u32::MAX));
    assert_eq!(r, Err(Error::BadString { what: "architecture name" }));
    let r = edited(vit(), |b| {
        let (_, strings, _) = section_entry(b, section::STRINGS);
        let at = strings + u32_at(b, meta + 8) as usize;
        b[at] = 0xC3; // a UTF-8 lead byte followed by `"`: invalid
    });
    assert_eq!(r, Err(Error::BadString { what: "config JSON" }));
}

// ---------------------------------------------------------------------------------------
// Tensor records

#[test]
fn shape_whose_bytes_overflow_u32() {
    // 65536 x 65536 elements fit in usize, their 16 GiB do not fit the format's u32.
    let w = find_tensor(vit(), |t| t.storage == Storage::Weight && t.shape.dims().len() == 2);
    bad_tensor(
        edited(vit(), |b| {
            let r = tensor_record(vit(), w);
            set_u32(b, r + 12, 65536);
            set_u32(b, r + 16, 65536);
        }),
        "overflows",
    );
}

#[test]
fn arena_tensors_misaligned_f16_or_outside_their_region() {
    let a = find_tensor(vit(), |t| t.storage == Storage::Arena);
    bad_tensor(edited(vit(), |b| set_u32(b, tensor_record(vit(), a) + 28, 4)), "not 64-byte aligned");
    bad_tensor(edited(vit(), |b| b[tensor_record(vit(), a) + 8] = 1), "f32 or i32");
    // A KV cache (persistent) moved into the scratch region.
    let p = find_tensor(llama(), |t| t.storage == Storage::Persistent);
    let arena = u32_at(llama(), header::ARENA_BYTES);
    bad_tensor(edited(llama(), |b| set_u32(b, tensor_record(llama(), p) + 28, arena - 64)), "outside its region");
}

#[test]
fn tensor_flags_unknown_or_token_rows_on_a_weight() {
    let w = find_tensor(vit(), |t| t.storage == Storage::Weight);
    bad_tensor(edited(vit(), |b| b[tensor_record(vit(), w) + 11] = 0x80), "unknown tensor flags");
    bad_tensor(edited(vit(), |b| b[tensor_record(vit(), w) + 11] = format::TENSOR_SEQ), "token-rows");
    let v = find_tensor(vit(), |t| t.storage == Storage::Weight && t.shape.dims().len() < 4);
    bad_tensor(
        edited(vit(), |b| {
            let r = tensor_record(vit(), v);
            let rank = b[r + 10] as usize;
            set_u32(b, r + 12 + 4 * rank, 7)
        }),
        "dimensions past the rank are not 0",
    );
}

// ---------------------------------------------------------------------------------------
// Op records

#[test]
fn op_input_of_the_wrong_kind() {
    let ln = find_op(vit(), OpCode::LayerNorm);
    let w = find_tensor(vit(), |t| t.storage == Storage::Weight) as u32;
    bad_op(edited(vit(), |b| set_u32(b, op_record(vit(), ln) + 8, w)), "activation input is not an f32 arena tensor");
    // Writing into a persistent tensor (the KV cache) as an ordinary output.
    let mm = find_op(llama(), OpCode::MatMul);
    let p = find_tensor(llama(), |t| t.storage == Storage::Persistent) as u32;
    bad_op(edited(llama(), |b| set_u32(b, op_record(llama(), mm) + 4, p)), "output is not an f32 scratch");
    // An embedding reading f32 activations as token ids.
    let emb = find_op(llama(), OpCode::Embedding);
    let out = {
        let buf = AlignedBytes::new(llama());
        let m = Model::parse(&buf).unwrap();
        m.tensor(m.op(emb).unwrap().output as usize).unwrap().range()
    };
    let f = find_tensor(llama(), |t| {
        t.storage == Storage::Arena
            && t.dtype == mote_runtime::DType::F32
            && (t.range().end <= out.start || t.range().start >= out.end)
    }) as u32;
    bad_op(edited(llama(), |b| set_u32(b, op_record(llama(), emb) + 8, f)), "ids are not an i32 arena tensor");
}

#[test]
fn op_params_not_finite_or_unknown_codes() {
    let ln = find_op(vit(), OpCode::LayerNorm);
    bad_op(edited(vit(), |b| set_u32(b, op_record(vit(), ln) + 32 + 4, f32::NAN.to_bits())), "eps is not a finite");
    bad_op(edited(vit(), |b| set_u32(b, op_record(vit(), ln) + 32 + 4, (-1.0f32).to_bits())), "non-negative");
    let att = find_op(vit(), OpCode::Attention);
    bad_op(
        edited(vit(), |b| set_u32(b, op_record(vit(), att) + 32 + 28, f32::INFINITY.to_bits())),
        "scale is not finite",
    );
    bad_op(edited(vit(), |b| set_u32(b, op_record(vit(), att) + 32 + 24, 6)), "unknown attention flags");
    let mm = find_op(vit(), OpCode::MatMul);
    bad_op(edited(vit(), |b| set_u32(b, op_record(vit(), mm) + 32 + 12, 99)), "unknown activation code");
}

#[test]
fn op_params_that_overflow_when_multiplied() {
    let mm = find_op(vit(), OpCode::MatMul);
    bad_op(
        edited(vit(), |b| {
            let r = op_record(vit(), mm);
            set_u32(b, r + 32 + 4, u32::MAX); // k
            set_u32(b, r + 32 + 8, u32::MAX); // n
        }),
        "",
    );
    // x_col + k past the row: x_col near u32::MAX must not wrap around.
    bad_op(edited(vit(), |b| set_u32(b, op_record(vit(), mm) + 32 + 16, u32::MAX)), "past the row");
    let att = find_op(vit(), OpCode::Attention);
    bad_op(edited(vit(), |b| set_u32(b, op_record(vit(), att) + 32 + 8, u32::MAX)), "lie past the row");
}

#[test]
fn ops_out_of_order_form_a_cycle() {
    // Swap two consecutive ops where the second reads the first's output: the reader now
    // runs first, reading a tensor that no earlier op has written.
    let buf = AlignedBytes::new(vit());
    let m = Model::parse(&buf).unwrap();
    let i = (0..m.op_count() - 1)
        .find(|&i| m.op(i + 1).unwrap().inputs.contains(&m.op(i).unwrap().output))
        .expect("a dependent pair");
    bad_op(
        edited(vit(), |b| {
            let (a, c) = (op_record(vit(), i), op_record(vit(), i + 1));
            let first: Vec<u8> = b[a..a + OP_RECORD_BYTES].to_vec();
            b.copy_within(c..c + OP_RECORD_BYTES, a);
            b[c..c + OP_RECORD_BYTES].copy_from_slice(&first);
        }),
        "no earlier op writes",
    );
    // An op reading the output of the last op (a back edge).
    let last = m.op(m.op_count() - 1).unwrap().output;
    let ln = find_op(vit(), OpCode::LayerNorm);
    bad_op(edited(vit(), |b| set_u32(b, op_record(vit(), ln) + 8, last)), "");
}

#[test]
fn structural_bit_flips_never_panic() {
    // Every bit of the header, the section table, every tensor record, every op record
    // and the IO and META sections, flipped one at a time with the checksum fixed: the
    // parser reaches its structural checks. Each result is an Err with a message, or a
    // model that binds an arena and runs (the flip hit something harmless, such as a
    // parameter within its range).
    let base = vit();
    let table = u32_at(base, header::SECTION_TABLE) as usize;
    let header_and_table = format::CHECKSUM_START..table + 6 * SECTION_ENTRY_BYTES;
    let mut ranges = vec![header_and_table];
    for kind in [section::META, section::TENSORS, section::OPS, section::IO] {
        let (_, off, len) = section_entry(base, kind);
        ranges.push(off..off + len);
    }
    let (mut errors, mut ran) = (0, 0);
    let mut arena = Vec::new();
    for pos in ranges.into_iter().flatten() {
        for bit in 0..8 {
            let mut b = base.to_vec();
            b[pos] ^= 1 << bit;
            rechecksum(&mut b);
            let buf = AlignedBytes::new(&b);
            match Model::parse(&buf) {
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    errors += 1;
                }
                Ok(m) => {
                    if m.arena_bytes() > 1 << 22 {
                        continue;
                    }
                    arena.resize(Interpreter::arena_bytes_for(&m), 0);
                    if let Ok(mut it) = Interpreter::new(&m, &mut arena) {
                        let n = m.input(0).map_or(0, |t| t.elems());
                        let _ = it.set_input("pixel_values", &vec![0.5; n]);
                        let _ = it.invoke();
                        ran += 1;
                    }
                }
            }
        }
    }
    assert!(errors > 1000, "{errors} errors");
    println!("structural bit flips: {errors} rejected, {ran} parsed and ran");
}

// ---------------------------------------------------------------------------------------
// Inputs at run time

#[test]
fn non_finite_inputs_are_refused() {
    let buf = AlignedBytes::new(vit());
    let m = Model::parse(&buf).unwrap();
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&m)];
    let mut it = Interpreter::new(&m, &mut arena).unwrap();
    let n = m.input(0).unwrap().elems();
    for (at, bad) in [(0, f32::NAN), (n - 1, f32::INFINITY), (17, f32::NEG_INFINITY)] {
        let mut x = vec![0.5f32; n];
        x[at] = bad;
        let err = it.set_input("pixel_values", &x).unwrap_err();
        assert_eq!(err, Error::NonFiniteInput { index: at });
        assert!(err.to_string().contains(&format!("element {at} is NaN or infinite")), "{err}");
    }
    // Finite extremes are accepted and give finite outputs.
    let x: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 1e30 } else { -1e30 }).collect();
    it.set_input("pixel_values", &x).unwrap();
    it.invoke().unwrap();
    assert!(it.output("last_hidden_state").unwrap().iter().all(|v| v.is_finite()));
}

fn llama_vocab() -> i32 {
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("llama/llama_b/config.json")).unwrap()).unwrap();
    cfg["vocab_size"].as_i64().unwrap() as i32
}

#[test]
fn token_ids_out_of_range() {
    let buf = AlignedBytes::new(llama());
    let m = Model::parse(&buf).unwrap();
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&m)];
    let mut it = Interpreter::new(&m, &mut arena).unwrap();
    let vocab = llama_vocab();
    assert_eq!(
        it.step(&[1, vocab, 2]),
        Err(Error::InputOutOfRange { index: 1, value: i64::from(vocab), limit: i64::from(vocab) })
    );
    assert_eq!(it.step(&[-1]), Err(Error::InputOutOfRange { index: 0, value: -1, limit: i64::from(vocab) }));
    assert_eq!(
        it.step(&[i32::MIN]),
        Err(Error::InputOutOfRange { index: 0, value: i64::from(i32::MIN), limit: i64::from(vocab) })
    );
    // Nothing ran: the position is still 0, and a valid call works.
    assert_eq!(it.position(), 0);
    it.step(&[vocab - 1]).unwrap();
    assert_eq!(it.position(), 1);
}

#[test]
fn prompt_past_the_context_or_the_chunk() {
    let buf = AlignedBytes::new(llama());
    let m = Model::parse(&buf).unwrap();
    assert_eq!((m.max_tokens(), m.max_context()), (4, 8));
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&m)];
    let mut it = Interpreter::new(&m, &mut arena).unwrap();
    assert_eq!(it.step(&[1; 5]), Err(Error::TokenCount { got: 5, max: 4 }));
    assert_eq!(it.step(&[]), Err(Error::TokenCount { got: 0, max: 4 }));
    it.step(&[1; 4]).unwrap();
    it.step(&[2; 3]).unwrap();
    let err = it.step(&[3; 2]).unwrap_err();
    assert_eq!(err, Error::ContextFull { needed: 9, capacity: 8 });
    assert!(err.to_string().contains("--max-seq"), "{err}");
    it.step(&[3]).unwrap();
    assert_eq!(it.step(&[4]), Err(Error::ContextFull { needed: 9, capacity: 8 }));
    // Restoring a position past the context, or state of the wrong size.
    let state = it.state().to_vec();
    assert_eq!(it.restore(&state, 9), Err(Error::ContextFull { needed: 9, capacity: 8 }));
    assert_eq!(it.restore(&state[1..], 1), Err(Error::InputSize { expected: state.len(), got: state.len() - 1 }));
    it.reset();
    it.step(&[1; 4]).unwrap();
}

// ---------------------------------------------------------------------------------------
// The converter: checkpoints and configs

/// `vit_model_c`'s config and tensors, to edit.
struct Ckpt {
    config: serde_json::Value,
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
}

impl Ckpt {
    fn vit() -> Self {
        let dir = data("vit/vit_model_c");
        let config = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors: Vec<_> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n.clone(), v.dtype(), v.shape().to_vec(), v.data().to_vec()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Ckpt { config, tensors }
    }
    fn tensor_mut(&mut self, name: &str) -> &mut Vec<u8> {
        &mut self.tensors.iter_mut().find(|t| t.0 == name).expect("tensor present").3
    }
    fn safetensors(&self) -> Vec<u8> {
        let views: Vec<_> = self
            .tensors
            .iter()
            .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize(views, None).unwrap()
    }
    fn convert(&self) -> Result<mote_models::Converted, mote_models::Error> {
        let cfg = serde_json::to_vec(&self.config).unwrap();
        mote_models::convert_bytes(&cfg, self.safetensors(), &ConvertOptions::default())
    }
}

#[test]
fn unedited_checkpoint_converts_from_bytes_as_from_the_directory() {
    let from_dir = convert(&data("vit/vit_model_c"), WeightDType::F16).bytes;
    let dir = data("vit/vit_model_c");
    let cfg = std::fs::read(dir.join("config.json")).unwrap();
    let st = std::fs::read(dir.join("model.safetensors")).unwrap();
    let from_bytes = mote_models::convert_bytes(&cfg, st, &ConvertOptions::default()).unwrap().bytes;
    assert_eq!(from_dir, from_bytes);
}

#[test]
fn non_finite_weights_are_refused_by_name() {
    let name = "encoder.layer.0.attention.attention.key.weight";
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut c = Ckpt::vit();
        c.tensor_mut(name)[12..16].copy_from_slice(&bad.to_le_bytes());
        let err = c.convert().unwrap_err();
        assert!(matches!(&err, mote_models::Error::NonFinite { name: n, .. } if n == name), "{err}");
        assert!(err.to_string().contains(name), "{err}");
    }
    // Biases (stored f32) too.
    let mut c = Ckpt::vit();
    c.tensor_mut("layernorm.bias")[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(c.convert(), Err(mote_models::Error::NonFinite { name, .. }) if name == "layernorm.bias"));
}

#[test]
fn weights_too_large_for_f16_are_refused_by_name() {
    let name = "pooler.dense.weight";
    let mut c = Ckpt::vit();
    c.tensor_mut(name)[0..4].copy_from_slice(&1.0e6f32.to_le_bytes());
    let err = c.convert().unwrap_err();
    assert!(matches!(&err, mote_models::Error::F16Range { name: n, value } if n == name && *value == 1.0e6), "{err}");
    assert!(err.to_string().contains("--dtype f32"), "{err}");
}

#[test]
fn config_and_tensors_disagree() {
    let mut c = Ckpt::vit();
    c.config["hidden_size"] = 32.into();
    c.config["pooler_output_size"] = 32.into();
    let err = c.convert().unwrap_err();
    assert!(matches!(&err, mote_models::Error::TensorShape { found, .. } if found.contains(&24)), "{err}");
    let mut c = Ckpt::vit();
    c.config["num_hidden_layers"] = 2.into();
    let err = c.convert().unwrap_err();
    assert!(
        matches!(&err, mote_models::Error::MissingTensor { name } if name.starts_with("encoder.layer.1.")),
        "{err}"
    );
    // A tensor with the right name and the wrong shape.
    let mut c = Ckpt::vit();
    let t = c.tensors.iter_mut().find(|t| t.0 == "layernorm.weight").unwrap();
    t.2 = vec![4, 6];
    let err = c.convert().unwrap_err();
    assert!(matches!(&err, mote_models::Error::TensorShape { name, .. } if name == "layernorm.weight"), "{err}");
}

#[test]
fn absurd_config_values() {
    let cases: [(&str, serde_json::Value); 6] = [
        ("hidden_size", serde_json::json!(-3)),
        ("hidden_size", serde_json::json!("24")),
        ("image_size", serde_json::json!(u64::MAX)),
        ("patch_size", serde_json::json!(0)),
        ("num_attention_heads", serde_json::json!(5)),
        ("layer_norm_eps", serde_json::json!("tiny")),
    ];
    for (key, value) in cases {
        let mut c = Ckpt::vit();
        c.config[key] = value.clone();
        let err = c.convert().expect_err(key);
        assert!(err.to_string().contains(key), "{key} = {value}: {err}");
    }
    // Sizes that fit u32 but whose products would not: refused, not wrapped.
    let mut c = Ckpt::vit();
    c.config["image_size"] = u32::MAX.into();
    c.config["patch_size"] = 1.into();
    assert!(c.convert().is_err());
}

#[test]
fn unsupported_architecture_lists_the_supported_ones() {
    let mut c = Ckpt::vit();
    c.config["architectures"] = serde_json::json!(["SwinForImageClassification"]);
    let err = c.convert().unwrap_err().to_string();
    assert!(err.contains("SwinForImageClassification") && err.contains("ViTModel"), "{err}");
}

#[test]
fn malformed_json_and_safetensors() {
    let c = Ckpt::vit();
    let st = c.safetensors();
    let opts = ConvertOptions::default();
    let err = mote_models::convert_bytes(b"{\"hidden_size\": 24,", st.clone(), &opts).unwrap_err();
    assert!(matches!(&err, mote_models::Error::Json { .. }) && err.to_string().starts_with("config.json"), "{err}");
    let cfg = serde_json::to_vec(&c.config).unwrap();
    let safetensors_err = |bytes: Vec<u8>| {
        let err = mote_models::convert_bytes(&cfg, bytes, &opts).unwrap_err();
        assert!(matches!(err, mote_models::Error::Safetensors { .. }), "{err}");
        assert!(err.to_string().starts_with("model.safetensors"), "{err}");
    };
    // Truncated in the header, in the data; a header length past the file; an offset past the data.
    safetensors_err(st[..5].to_vec());
    safetensors_err(st[..st.len() / 2].to_vec());
    let mut huge = st.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    safetensors_err(huge);
    let header_len = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&st[8..8 + header_len]).unwrap();
    let at = header.find("\"data_offsets\":[").unwrap() + "\"data_offsets\":[".len();
    let mut shifted = header.to_string();
    shifted.replace_range(at..at, "9");
    let mut bytes = ((shifted.len()) as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(shifted.as_bytes());
    bytes.extend_from_slice(&st[8 + header_len..]);
    safetensors_err(bytes);
}

#[test]
fn integer_weights_are_refused_by_name() {
    let mut c = Ckpt::vit();
    let t = c.tensors.iter_mut().find(|t| t.0 == "layernorm.weight").unwrap();
    t.1 = Dtype::I32;
    let err = c.convert().unwrap_err();
    assert!(matches!(&err, mote_models::Error::TensorDType { name, .. } if name == "layernorm.weight"), "{err}");
}

#[test]
fn graph_with_a_cycle_does_not_compile() {
    use mote_models::Graph;
    use mote_models::graph::OpDef;
    let mut g = Graph::new("test", String::new(), WeightDType::F32);
    let x = g.input("x", vec![4]);
    let a = g.activation("a", vec![4]);
    let b = g.activation("b", vec![4]);
    // a = x + b; b = a + x: `a` reads `b` before anything writes it.
    let add = |inputs: [u32; 2], output| OpDef {
        opcode: OpCode::Add,
        inputs: [Some(inputs[0]), Some(inputs[1]), None, None, None, None],
        output,
        params: [0; 8],
    };
    g.ops.push(add([x, b], a));
    g.ops.push(add([a, x], b));
    g.output(b, "b");
    let err = mote_models::compile(&g, &ConvertOptions::default()).unwrap_err().to_string();
    assert!(err.contains("op #0 (Add) reads b before any op writes it"), "{err}");
    // A tensor id that does not exist.
    let mut g2 = g.clone();
    g2.ops[0].inputs[1] = Some(99);
    let err = mote_models::compile(&g2, &ConvertOptions::default()).unwrap_err().to_string();
    assert!(err.contains("tensor id 99 does not exist"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Quantized (int8 / int4) weights

/// `vit_a` (rows 32 and 64 wide) with its MatMul weights in int8 blocks.
fn vit_int8() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| convert(&data("vit/vit_a"), WeightDType::Int8).bytes)
}

/// `vit_a` with its MatMul weights in int4 blocks.
fn vit_int4() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| convert(&data("vit/vit_a"), WeightDType::Int4).bytes)
}

/// The first quantized tensor: (index, its byte offset in the file, its byte length).
fn quantized_tensor(b: &[u8]) -> (usize, usize, usize) {
    let i = find_tensor(b, |t| t.dtype.is_quantized());
    let buf = AlignedBytes::new(b);
    let t = Model::parse(&buf).unwrap().tensor(i).unwrap();
    (i, section_entry(b, section::WEIGHTS).1 + t.offset, t.bytes)
}

#[track_caller]
fn bad_block(r: Result<(), Error>, want_tensor: usize, want_block: u32, want: &str) {
    match r {
        Err(e @ Error::BadBlock { tensor, block, reason }) => {
            assert_eq!((tensor, block), (want_tensor as u32, want_block), "{e}");
            assert!(reason.contains(want), "{reason:?} does not say {want:?}");
            let text = e.to_string();
            assert!(text.contains(&format!("tensor #{want_tensor}, block #{want_block}")), "{text}");
        }
        other => panic!("expected BadBlock({want}), got {other:?}"),
    }
}

#[test]
fn quantized_files_are_version_2_and_name_their_tensors() {
    assert_eq!(u32_at(vit_int8(), header::VERSION), format::VERSION);
    assert_eq!(u32_at(vit(), header::VERSION), format::VERSION_1);
    let (i, _, _) = quantized_tensor(vit_int8());
    let buf = AlignedBytes::new(vit_int8());
    let name = Model::parse(&buf).unwrap().tensor(i).unwrap().name;
    assert_eq!(mote_runtime::tensor_name(vit_int8(), i as u32), Some(name));
    assert!(name.ends_with(".weight"), "{name}");
    assert_eq!(mote_runtime::tensor_name(vit_int8(), 60_000), None);
    assert_eq!(mote_runtime::tensor_name(&vit_int8()[..100], i as u32), None);
}

#[test]
fn quantized_scale_or_minimum_not_finite() {
    let (i, at, _) = quantized_tensor(vit_int8());
    // Block 3's scale (the first two bytes of its 34) a NaN, then an infinity.
    for bits in [0x7E00u16, 0xFC00] {
        let r = edited(vit_int8(), |b| b[at + 3 * 34..][..2].copy_from_slice(&bits.to_le_bytes()));
        bad_block(r, i, 3, "scale d is NaN or infinite");
    }
    let (i, at, _) = quantized_tensor(vit_int4());
    let r = edited(vit_int4(), |b| b[at + 5 * 20..][..2].copy_from_slice(&0x7C01u16.to_le_bytes()));
    bad_block(r, i, 5, "scale d is NaN or infinite");
    // Block 2's minimum (bytes 2..4 of its 20) +infinity.
    let r = edited(vit_int4(), |b| b[at + 2 * 20 + 2..][..2].copy_from_slice(&0x7C00u16.to_le_bytes()));
    bad_block(r, i, 2, "minimum m is NaN or infinite");
}

#[test]
fn quantized_blocks_past_the_weights_section() {
    let b = vit_int8();
    let (i, at, bytes) = quantized_tensor(b);
    let (entry, weights, _) = section_entry(b, section::WEIGHTS);
    // The WEIGHTS section cut 40 bytes into the tensor: block #1 is the first not there.
    let r = edited(b, |b| set_u32(b, entry + 8, (at - weights + 40) as u32));
    bad_block(r, i, 1, "run past the end");
    assert!(bytes > 2 * 34);
}

#[test]
fn quantized_group_size_must_divide_the_row() {
    let b = vit_int8();
    let (i, _, _) = quantized_tensor(b);
    let rec = tensor_record(b, i);
    let (rows, cols) = (u32_at(b, rec + 12), u32_at(b, rec + 16));
    assert_eq!(cols % 32, 0);
    // The same elements as [2 rows, cols / 2]: 16-wide rows.
    let r = edited(b, |b| {
        set_u32(b, rec + 12, rows * 2);
        set_u32(b, rec + 16, cols / 2);
    });
    bad_tensor(r, "group size 32 does not divide the row");
}

#[test]
fn unknown_dtype_code_5() {
    let (i, _, _) = quantized_tensor(vit_int8());
    let rec = tensor_record(vit_int8(), i);
    bad_tensor(edited(vit_int8(), |b| b[rec + 8] = 5), "unknown dtype code");
}

#[test]
fn quantized_dtype_in_a_version_1_file() {
    let r = edited(vit_int8(), |b| set_u32(b, header::VERSION, 1));
    bad_tensor(r, "quantized dtype (int8 / int4) in a version-1 file");
}

#[test]
fn quantized_tensor_in_the_arena() {
    for code in [3u8, 4] {
        let a = find_tensor(vit_int8(), |t| t.storage == Storage::Arena && t.shape.cols() % 32 == 0);
        let rec = tensor_record(vit_int8(), a);
        bad_tensor(edited(vit_int8(), |b| b[rec + 8] = code), "quantized (int8 / int4) tensor in the arena");
    }
}

#[test]
fn quantized_tensor_in_a_slot_that_refuses_it() {
    // A LayerNorm's gamma [32] (f32 weight) relabelled int8: one block, its bytes fit.
    let b = vit_int8();
    let ln = find_op(b, OpCode::LayerNorm);
    let gamma = u32_at(b, op_record(b, ln) + 8 + 4) as usize;
    let rec = tensor_record(b, gamma);
    let r = edited(b, |b| b[rec + 8] = 3);
    bad_op(r, "quantized (int8 / int4) tensor, which only a MatMul weight or an Embedding table may be");
    // A MatMul bias [n] relabelled int4.
    let buf = AlignedBytes::new(b);
    let m = Model::parse(&buf).unwrap();
    let (mm, bias) = (0..m.op_count())
        .map(|i| (i, m.op(i).unwrap()))
        .find(|(_, op)| op.opcode == OpCode::MatMul && op.inputs[2] != format::NONE)
        .map(|(i, op)| (i, op.inputs[2] as usize))
        .unwrap();
    assert_eq!(m.tensor(bias).unwrap().shape.cols() % 32, 0);
    let rec = tensor_record(b, bias);
    let r = edited(b, |b| b[rec + 8] = 4);
    match r {
        Err(Error::BadOp { index, reason, .. }) => {
            assert_eq!(index, mm as u32);
            assert!(reason.contains("only a MatMul weight or an Embedding table"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A quantized MatMul weight whose k is not its row width: [n, k] read as [n * 2, k / 2]
    // is refused by the tensor (rows of 16), and a weight whose row is not k by the op.
    let w = u32_at(b, op_record(b, mm) + 8 + 4) as usize;
    let k = m.op(mm).unwrap().params[1];
    let rec = tensor_record(b, w);
    let (rows, cols) = (u32_at(b, rec + 12), u32_at(b, rec + 16));
    assert_eq!(cols, k);
    if rows % 2 == 0 && cols >= 64 {
        let r = edited(b, |b| {
            set_u32(b, rec + 12, rows / 2);
            set_u32(b, rec + 16, cols * 2);
        });
        bad_op(r, "weight is not [n, k]");
    }
}
