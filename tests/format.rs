//! The `.mote` parser and interpreter against truncated, corrupted and hostile files:
//! every case is an `Err` that names the problem, never a panic.

use std::sync::OnceLock;

use mote_models::WeightDType;
use mote_models::host::AlignedBytes;
use mote_runtime::format::{self, OP_RECORD_BYTES, SECTION_ENTRY_BYTES, TENSOR_RECORD_BYTES, header, section};
use mote_runtime::{Error, Interpreter, Model};
use mote_tests::{convert, data, rechecksum};

fn model_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| convert(&data("vit/vit_b"), WeightDType::F16).bytes)
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

/// (offset, length) of a section.
fn section_range(b: &[u8], kind: u32) -> (usize, usize) {
    let n = u32_at(b, header::SECTION_COUNT) as usize;
    let table = u32_at(b, header::SECTION_TABLE) as usize;
    (0..n)
        .map(|i| table + i * SECTION_ENTRY_BYTES)
        .find(|&e| u32_at(b, e) == kind)
        .map(|e| (u32_at(b, e + 4) as usize, u32_at(b, e + 8) as usize))
        .expect("section present")
}

/// Applies `edit` to a copy, fixes the checksum, parses.
fn edited(edit: impl FnOnce(&mut Vec<u8>)) -> Result<(), Error> {
    let mut b = model_bytes().to_vec();
    edit(&mut b);
    rechecksum(&mut b);
    parse(&b)
}

#[test]
fn parses_and_describes_itself() {
    let buf = AlignedBytes::new(model_bytes());
    let m = Model::parse(&buf).unwrap();
    assert_eq!(m.architecture(), "ViTForImageClassification");
    assert!(m.config_json().contains("\"hidden_size\":48"));
    assert_eq!(m.input(0).unwrap().name, "pixel_values");
    assert_eq!(m.input(0).unwrap().shape.dims(), &[1, 1, 18, 18]);
    assert_eq!(m.output(0).unwrap().name, "logits");
    assert_eq!(m.output(0).unwrap().shape.dims(), &[1, 7]);
    assert_eq!(m.file_bytes(), model_bytes().len());
}

#[test]
fn truncated_at_every_section_boundary() {
    let b = model_bytes();
    let mut cuts = vec![0, 1, 7, 8, 23, 63, 64, b.len() - 1];
    for kind in section::ALL {
        let (off, len) = section_range(b, kind);
        cuts.extend([off, off + 1, off + len / 2, (off + len).saturating_sub(1)]);
    }
    for cut in cuts.into_iter().filter(|&c| c < b.len()) {
        match parse(&b[..cut]) {
            Err(Error::Truncated { needed, available, .. }) => {
                assert_eq!(available, cut);
                assert!(needed > cut);
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn bit_flips_are_caught() {
    let b = model_bytes();
    for pos in (0..b.len()).step_by(37).chain([b.len() - 1]) {
        for bit in [0, 5] {
            let mut c = b.to_vec();
            c[pos] ^= 1 << bit;
            let err = parse(&c).expect_err("a flipped bit must not parse");
            if pos >= format::CHECKSUM_START {
                assert!(matches!(err, Error::ChecksumMismatch { .. }), "flip at {pos}: {err:?}");
            }
            assert!(!err.to_string().is_empty());
        }
    }
}

#[test]
fn header_fields() {
    let mut b = model_bytes().to_vec();
    b[0] = b'X';
    assert_eq!(parse(&b), Err(Error::BadMagic));
    assert_eq!(
        edited(|b| set_u32(b, header::VERSION, 3)),
        Err(Error::UnsupportedVersion { found: 3, supported: format::VERSION })
    );
    assert_eq!(u32_at(model_bytes(), header::VERSION), format::VERSION_1, "an f16 file stays version 1");
    // Version 2 reads every version-1 file.
    assert!(edited(|b| set_u32(b, header::VERSION, 2)).is_ok());
    assert!(matches!(
        edited(|b| set_u32(b, header::HEADER_BYTES, 32)),
        Err(Error::BadHeader { field: "header_bytes", .. })
    ));
    assert!(matches!(edited(|b| set_u32(b, header::FLAGS, 1)), Err(Error::BadHeader { field: "flags", .. })));
    assert!(matches!(edited(|b| set_u32(b, header::SECTION_COUNT, 1000)), Err(Error::BadHeader { .. })));
    let arena = u32_at(model_bytes(), header::ARENA_BYTES);
    assert!(matches!(edited(|b| set_u32(b, header::PERSISTENT_BYTES, arena + 64)), Err(Error::BadHeader { .. })));
    // A file that says it is longer than the buffer.
    let len = model_bytes().len() as u32;
    assert!(matches!(edited(|b| set_u32(b, header::FILE_BYTES, len + 1)), Err(Error::Truncated { what: "file", .. })));
}

#[test]
fn sections_out_of_range_overlapping_or_missing() {
    let table = u32_at(model_bytes(), header::SECTION_TABLE) as usize;
    // Entry 1 is STRINGS: point it past the end.
    let r = edited(|b| {
        let len = b.len() as u32;
        set_u32(b, table + SECTION_ENTRY_BYTES + 4, len - 4)
    });
    assert!(matches!(r, Err(Error::Truncated { .. })), "{r:?}");
    // Make STRINGS start inside META.
    let (meta_off, _) = section_range(model_bytes(), section::META);
    let r = edited(|b| set_u32(b, table + SECTION_ENTRY_BYTES + 4, meta_off as u32));
    assert!(matches!(r, Err(Error::BadSection { reason: "overlaps another section", .. })), "{r:?}");
    // Offsets that overflow when added.
    let r = edited(|b| {
        set_u32(b, table + SECTION_ENTRY_BYTES + 4, u32::MAX);
        set_u32(b, table + SECTION_ENTRY_BYTES + 8, u32::MAX);
    });
    assert!(r.is_err());
    // Relabel STRINGS as an unknown kind: STRINGS is then missing.
    let r = edited(|b| set_u32(b, table + SECTION_ENTRY_BYTES, 99));
    assert_eq!(r, Err(Error::MissingSection { kind: "STRINGS" }));
    // Two META sections.
    let r = edited(|b| set_u32(b, table + SECTION_ENTRY_BYTES, section::META));
    assert!(matches!(r, Err(Error::BadSection { reason: "appears twice", .. })), "{r:?}");
}

#[test]
fn misaligned_weights_or_buffer() {
    let table = u32_at(model_bytes(), header::SECTION_TABLE) as usize;
    let weights_entry = table + 5 * SECTION_ENTRY_BYTES;
    assert_eq!(u32_at(model_bytes(), weights_entry), section::WEIGHTS);
    let r = edited(|b| {
        let off = u32_at(b, weights_entry + 4);
        let len = u32_at(b, weights_entry + 8);
        set_u32(b, weights_entry + 4, off + 2);
        set_u32(b, weights_entry + 8, len - 2);
    });
    assert!(matches!(r, Err(Error::Misaligned { what: "weights section", .. })), "{r:?}");
    // The model itself at an odd address.
    let mut v = vec![0u8; model_bytes().len() + 64];
    let start = v.as_ptr().align_offset(64) + 1;
    v[start..start + model_bytes().len()].copy_from_slice(model_bytes());
    let r = Model::parse(&v[start..start + model_bytes().len()]).map(|_| ());
    assert!(matches!(r, Err(Error::Misaligned { what: "model buffer", .. })), "{r:?}");
}

fn tensor_record(i: usize) -> usize {
    section_range(model_bytes(), section::TENSORS).0 + i * TENSOR_RECORD_BYTES
}

fn op_record(i: usize) -> usize {
    section_range(model_bytes(), section::OPS).0 + i * OP_RECORD_BYTES
}

/// The id of the first weight tensor and of the first arena tensor.
fn first_of_each() -> (usize, usize) {
    let buf = AlignedBytes::new(model_bytes());
    let m = Model::parse(&buf).unwrap();
    let weight =
        (0..m.tensor_count()).find(|&i| m.tensor(i).unwrap().storage == mote_runtime::Storage::Weight).unwrap();
    let arena = (0..m.tensor_count()).find(|&i| m.tensor(i).unwrap().storage == mote_runtime::Storage::Arena).unwrap();
    (weight, arena)
}

#[test]
fn bad_tensor_records() {
    let (w, a) = first_of_each();
    let bad = |r: Result<(), Error>, want: &str| match r {
        Err(Error::BadTensor { reason, .. }) => assert!(reason.contains(want), "{reason} !~ {want}"),
        other => panic!("expected BadTensor({want}), got {other:?}"),
    };
    bad(edited(|b| b[tensor_record(w) + 8] = 9), "dtype");
    bad(edited(|b| b[tensor_record(w) + 9] = 7), "storage");
    bad(edited(|b| b[tensor_record(w) + 10] = 0), "rank");
    bad(edited(|b| b[tensor_record(w) + 10] = 5), "rank");
    bad(edited(|b| set_u32(b, tensor_record(w) + 12, 0)), "dimension is 0");
    // Dimensions whose product overflows u32 and usize.
    bad(
        edited(|b| {
            b[tensor_record(w) + 10] = 4;
            for d in 0..4 {
                set_u32(b, tensor_record(w) + 12 + 4 * d, u32::MAX);
            }
        }),
        "overflows",
    );
    bad(edited(|b| set_u32(b, tensor_record(w) + 28, 1 << 30)), "past the end");
    bad(edited(|b| set_u32(b, tensor_record(w) + 28, 2)), "aligned");
    bad(edited(|b| set_u32(b, tensor_record(a) + 28, 1 << 30)), "outside");
    bad(edited(|b| set_u32(b, tensor_record(a) + 4, u32::MAX)), "name");
    bad(
        edited(|b| {
            let (strings, _) = section_range(b, section::STRINGS);
            let name_off = u32_at(b, tensor_record(a)) as usize;
            b[strings + name_off] = 0xFF;
        }),
        "UTF-8",
    );
}

#[test]
fn bad_op_records() {
    let bad = |r: Result<(), Error>, want: &str| match r {
        Err(Error::BadOp { reason, .. }) => assert!(reason.contains(want), "{reason} !~ {want}"),
        other => panic!("expected BadOp({want}), got {other:?}"),
    };
    bad(edited(|b| set_u32(b, op_record(0), 999)), "unknown opcode");
    // Op 0 (PatchEmbed) reading a tensor that does not exist.
    bad(edited(|b| set_u32(b, op_record(0) + 8, 100_000)), "does not exist");
    // Writing into a weight.
    let (w, _) = first_of_each();
    bad(edited(|b| set_u32(b, op_record(0) + 4, w as u32)), "output is not");
    // Output is the image it reads.
    bad(
        edited(|b| {
            let input = u32_at(b, op_record(0) + 8);
            set_u32(b, op_record(0) + 4, input)
        }),
        "",
    );
    // Params that disagree with the tensors.
    bad(edited(|b| set_u32(b, op_record(0) + 32 + 4 * 3, 5)), "");
    bad(edited(|b| set_u32(b, op_record(0) + 32 + 4 * 3, 0)), "geometry");
    // A required input removed; an extra input added.
    bad(edited(|b| set_u32(b, op_record(0) + 8, format::NONE)), "required input");
    bad(edited(|b| set_u32(b, op_record(0) + 8 + 4 * 5, 0)), "more inputs");
}

#[test]
fn arena_too_small_names_both_sizes() {
    let buf = AlignedBytes::new(model_bytes());
    let m = Model::parse(&buf).unwrap();
    let mut arena = vec![0u8; m.arena_bytes() + 63];
    let aligned = arena.as_ptr().align_offset(64);
    let short = &mut arena[aligned..aligned + m.arena_bytes() - 1];
    let err = Interpreter::new(&m, short).unwrap_err();
    assert_eq!(err, Error::ArenaTooSmall { needed: m.arena_bytes(), available: m.arena_bytes() - 1 });
    let msg = err.to_string();
    assert!(msg.contains(&m.arena_bytes().to_string()) && msg.contains(&(m.arena_bytes() - 1).to_string()), "{msg}");
    // Exactly enough, aligned: binds.
    let exact = &mut arena[aligned..aligned + m.arena_bytes()];
    assert!(Interpreter::new(&m, exact).is_ok());
}

#[test]
fn wrong_input_name_or_size() {
    let buf = AlignedBytes::new(model_bytes());
    let m = Model::parse(&buf).unwrap();
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&m)];
    let mut it = Interpreter::new(&m, &mut arena).unwrap();
    assert_eq!(it.set_input("pixels", &[0.0; 324]), Err(Error::UnknownName { what: "input" }));
    assert_eq!(it.set_input("pixel_values", &[0.0; 323]), Err(Error::InputSize { expected: 324, got: 323 }));
    assert!(it.output("nope").is_err());
    it.set_input("pixel_values", &[0.5; 324]).unwrap();
    it.invoke().unwrap();
    let first = it.output("logits").unwrap().to_vec();
    assert!(first.iter().all(|v| v.is_finite()));
    // Inputs are consumed (their bytes are reused once no op reads them), so they are
    // set again; the same input then gives bit-identical outputs.
    it.set_input("pixel_values", &[0.5; 324]).unwrap();
    it.invoke().unwrap();
    assert_eq!(first, it.output("logits").unwrap());
}
