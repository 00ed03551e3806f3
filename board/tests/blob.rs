//! The input blob: writer -> reader round trips for both kinds, and every malformed
//! blob refused with its error (never a panic).

use mote_board::input::{
    BlobError, DEFAULT_PROMPT, Input, KIND_PROMPT, KIND_TENSORS, MAGIC, TensorSpec, parse, write_prompt, write_tensors,
};

fn u32s(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A blob of `MAGIC`, then `words`.
fn blob(words: &[u32]) -> Vec<u8> {
    [MAGIC.as_slice(), &u32s(words)].concat()
}

fn err(bytes: &[u8]) -> BlobError {
    match parse(bytes) {
        Ok(input) => panic!("accepted {input:?}"),
        Err(e) => e,
    }
}

#[test]
fn tensors_round_trip() {
    let specs = [
        TensorSpec { name: "pixel_values", elems_per_item: 3 },
        TensorSpec { name: "mask", elems_per_item: 2 },
        TensorSpec { name: "", elems_per_item: 0 },
        TensorSpec { name: "größe", elems_per_item: 1 },
    ];
    let values: Vec<f32> = (0..3 * 6).map(|i| i as f32 * 0.5 - 2.0).collect();
    let bytes = write_tensors(3, &specs, &values).unwrap();
    assert_eq!(&bytes[..8], MAGIC);
    assert_eq!(bytes.len() % 4, 0);
    let Ok(Input::Tensors(t)) = parse(&bytes) else { panic!("not tensors") };
    assert_eq!((t.items(), t.inputs(), t.elems_per_item()), (3, 4, 6));
    assert_eq!(t.specs().collect::<Vec<_>>(), specs);
    // Twice: the specs re-read from the start every time.
    assert_eq!(t.specs().count(), 4);
    for item in 0..3 {
        for i in 0..6 {
            assert_eq!(t.value(item, i), values[item * 6 + i]);
        }
    }
    assert_eq!(t.value(3, 0), 0.0, "past the end");
    assert_eq!(t.value(usize::MAX, usize::MAX), 0.0, "past the end");
    assert_eq!(t.data().len(), values.len() * 4);
    // The layout, word by word: kind, items, inputs, then the first spec.
    assert_eq!(&bytes[8..24], &u32s(&[KIND_TENSORS, 3, 4, 12])[..]);
    assert_eq!(&bytes[24..36], b"pixel_values");
}

#[test]
fn tensors_blob_bytes_are_the_layout() {
    let bytes = write_tensors(1, &[TensorSpec { name: "x", elems_per_item: 2 }], &[1.0, -2.5]).unwrap();
    let mut want = blob(&[KIND_TENSORS, 1, 1, 1]);
    want.extend_from_slice(b"x\0\0\0");
    want.extend_from_slice(&u32s(&[2, 1.0f32.to_bits(), (-2.5f32).to_bits()]));
    assert_eq!(bytes, want);
}

#[test]
fn prompt_round_trip() {
    let ids = [7, -1, i32::MIN, i32::MAX, 0];
    let bytes = write_prompt(&ids, 12).unwrap();
    assert_eq!(bytes, blob(&[KIND_PROMPT, 5, 12, 7, u32::MAX, 1 << 31, i32::MAX as u32, 0]));
    let Ok(Input::Prompt(p)) = parse(&bytes) else { panic!("not a prompt") };
    assert_eq!((p.len(), p.generate(), p.is_empty()), (5, 12, false));
    assert_eq!((0..p.len()).map(|i| p.id(i)).collect::<Vec<_>>(), ids);
    assert_eq!(p.id(5), 0, "past the end");
    assert_eq!((DEFAULT_PROMPT.len(), DEFAULT_PROMPT.id(0), DEFAULT_PROMPT.generate()), (1, 0, 8));
}

#[test]
fn empty_blob_is_the_default_input() {
    assert!(matches!(parse(&[]), Ok(Input::Default)));
}

#[test]
fn writer_refuses_what_the_reader_would() {
    let x = [TensorSpec { name: "x", elems_per_item: 2 }];
    assert_eq!(write_tensors(2, &x, &[0.0; 3]), Err(BlobError::ValueCount));
    assert_eq!(write_tensors(usize::MAX, &x, &[]), Err(BlobError::ValueCount));
    let huge = [TensorSpec { name: "a", elems_per_item: usize::MAX }, TensorSpec { name: "b", elems_per_item: 1 }];
    assert_eq!(write_tensors(0, &huge, &[]), Err(BlobError::SizesOverflow));
    let wide = [TensorSpec { name: "a", elems_per_item: 1 << 32 }];
    assert_eq!(write_tensors(0, &wide, &[]), Err(BlobError::TooLarge));
    assert_eq!(write_prompt(&[], 8), Err(BlobError::EmptyPrompt));
    assert_eq!(write_prompt(&[1], 1 << 32), Err(BlobError::TooLarge));
}

#[test]
fn every_truncation_is_refused() {
    let tensors = write_tensors(2, &[TensorSpec { name: "abcde", elems_per_item: 3 }], &[1.0; 6]).unwrap();
    let prompt = write_prompt(&[1, 2, 3], 4).unwrap();
    for full in [tensors, prompt] {
        assert!(parse(&full).is_ok());
        for n in 1..full.len() {
            assert_eq!(err(&full[..n]), BlobError::Truncated, "cut at {n}");
        }
    }
}

#[test]
fn bad_magic_and_kind_are_refused() {
    let mut b = write_prompt(&[1], 0).unwrap();
    b[7] = b'2';
    assert_eq!(err(&b), BlobError::BadMagic);
    assert_eq!(err(b"MOTE\r\n\x1a\n\x01\0\0\0"), BlobError::BadMagic);
    for kind in [0, 3, u32::MAX] {
        assert_eq!(err(&blob(&[kind, 1, 1, 1])), BlobError::UnknownKind, "kind {kind}");
    }
    assert_eq!(err(&blob(&[KIND_PROMPT, 0, 8])), BlobError::EmptyPrompt);
}

#[test]
fn bad_names_are_refused() {
    let mut b = blob(&[KIND_TENSORS, 1, 1, 2]);
    b.extend_from_slice(&[0xff, 0xfe, 0, 0]);
    b.extend_from_slice(&u32s(&[1, 0]));
    assert_eq!(err(&b), BlobError::NameNotUtf8);
    // A name length past the blob.
    assert_eq!(err(&blob(&[KIND_TENSORS, 1, 1, u32::MAX, 0])), BlobError::Truncated);
    // More inputs than specs.
    assert_eq!(err(&blob(&[KIND_TENSORS, 1, u32::MAX, 0, 1, 0])), BlobError::Truncated);
}

#[test]
fn overflowing_lengths_are_refused() {
    // Items x elements x 4 overflows usize (on 64 bits: two u32::MAX elements, u32::MAX items).
    let mut b = blob(&[KIND_TENSORS, u32::MAX, 2]);
    for name in [b"a\0\0\0", b"b\0\0\0"] {
        b.extend_from_slice(&u32s(&[1]));
        b.extend_from_slice(name);
        b.extend_from_slice(&u32s(&[u32::MAX]));
    }
    assert_eq!(err(&b), BlobError::SizesOverflow);
    // A large but not overflowing size is truncated, not overflowing.
    let mut b = blob(&[KIND_TENSORS, 1 << 20, 1, 1]);
    b.extend_from_slice(b"a\0\0\0");
    b.extend_from_slice(&u32s(&[1 << 20]));
    assert_eq!(err(&b), BlobError::Truncated);
    // A prompt of u32::MAX tokens: its byte length overflows on 32 bits, is past the blob on 64.
    let want = if usize::BITS == 32 { BlobError::PromptOverflows } else { BlobError::Truncated };
    assert_eq!(err(&blob(&[KIND_PROMPT, u32::MAX, 8, 1])), want);
    // Zero-sized inputs and many items: no data, accepted.
    let mut b = blob(&[KIND_TENSORS, u32::MAX, 1, 1]);
    b.extend_from_slice(b"z\0\0\0");
    b.extend_from_slice(&u32s(&[0]));
    let Ok(Input::Tensors(t)) = parse(&b) else { panic!("refused") };
    assert_eq!((t.items(), t.elems_per_item(), t.data().len()), (u32::MAX as usize, 0, 0));
}

#[test]
fn errors_name_the_problem() {
    assert_eq!(BlobError::Truncated.to_string(), "input blob is truncated");
    assert_eq!(BlobError::BadMagic.to_string(), "input blob has a bad magic");
    assert_eq!(BlobError::UnknownKind.to_string(), "input blob has an unknown kind");
    assert_eq!(BlobError::EmptyPrompt.to_string(), "the prompt is empty");
}

/// The fuzz target's seeds (`fuzz/corpus/input_blob`) are blobs this writer makes, so a
/// format change that needs new seeds fails here. `MOTE_WRITE_SEEDS=1` writes them.
#[test]
fn fuzz_seeds_are_the_writers_blobs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/input_blob");
    let pixels: Vec<f32> = (0..2 * 16).map(|i| (i % 7) as f32 / 7.0).collect();
    let seeds = [
        ("tensors", write_tensors(2, &[TensorSpec { name: "pixel_values", elems_per_item: 16 }], &pixels).unwrap()),
        (
            "tensors_two_inputs",
            write_tensors(
                1,
                &[TensorSpec { name: "a", elems_per_item: 2 }, TensorSpec { name: "bias", elems_per_item: 1 }],
                &[0.5, -1.0, 3.0],
            )
            .unwrap(),
        ),
        ("prompt", write_prompt(&[1, 5, 9, 2], 8).unwrap()),
    ];
    if std::env::var_os("MOTE_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    for (name, bytes) in &seeds {
        let on_disk = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&on_disk, bytes, "fuzz/corpus/input_blob/{name} (MOTE_WRITE_SEEDS=1 rewrites it)");
        assert!(parse(bytes).is_ok());
    }
}
