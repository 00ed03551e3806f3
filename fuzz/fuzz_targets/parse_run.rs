//! A `.mote` file from the fuzzer: `Model::parse`, then `Interpreter::new` on an arena
//! of the model's size, then every input set and `invoke` (or `step` for token models).
//! Nothing may panic; every failure must be an `Err`.
//!
//! The checksum is recomputed before parsing (unless the input's byte 63 is odd): a
//! random mutation almost never keeps the CRC right, and the checks behind it are the
//! interesting ones. The checksum check itself is exercised by the odd-byte inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mote_runtime::format::{CHECKSUM_START, HEADER_BYTES, header};
use mote_runtime::{DType, Interpreter, Model};

/// Largest arena the harness binds: bounds the work one input can ask for.
const MAX_ARENA_BYTES: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut bytes = mote_models::host::AlignedBytes::new(data).to_vec();
    if bytes.len() >= HEADER_BYTES && bytes[HEADER_BYTES - 1] & 1 == 0 {
        let crc = mote_runtime::crc32(&bytes[CHECKSUM_START..]);
        // The checksum covers `CHECKSUM_START..file_bytes`; file_bytes may be shorter.
        let file_bytes = u32::from_le_bytes(bytes[header::FILE_BYTES..][..4].try_into().unwrap()) as usize;
        let crc = match bytes.get(CHECKSUM_START..file_bytes) {
            Some(b) if file_bytes >= HEADER_BYTES => mote_runtime::crc32(b),
            _ => crc,
        };
        bytes[header::CHECKSUM..header::CHECKSUM + 4].copy_from_slice(&crc.to_le_bytes());
    }
    let buf = mote_models::host::AlignedBytes::new(&bytes);
    let Ok(model) = Model::parse(&buf) else { return };
    if model.arena_bytes() > MAX_ARENA_BYTES {
        return;
    }
    // Every accessor on a parsed model answers without panicking.
    for i in 0..model.tensor_count() {
        let _ = model.tensor(i).expect("a parsed model's tensors decode");
    }
    for i in 0..model.op_count() {
        let _ = model.op(i).expect("a parsed model's ops decode");
    }
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let Ok(mut interp) = Interpreter::new(&model, &mut arena) else { return };
    for call in 0..2 {
        if model.max_tokens() > 0 {
            let n = (call + 1).min(model.max_tokens());
            if interp.set_tokens(n).is_err() {
                return;
            }
        }
        for i in 0..model.input_count() {
            let Some(t) = model.input(i) else { continue };
            let elems = if t.seq { interp.tokens() * t.shape.cols() } else { t.elems() };
            let _ = match t.dtype {
                DType::I32 => interp.set_input_ids(t.name, &vec![1; elems]),
                _ => interp.set_input(t.name, &vec![0.25; elems]),
            };
        }
        let _ = interp.invoke();
        for i in 0..model.output_count() {
            if let Some(t) = model.output(i) {
                let _ = interp.output(t.name);
            }
        }
    }
    let state = interp.state().to_vec();
    let _ = interp.restore(&state, 1);
});
