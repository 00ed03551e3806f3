//! The converter's readers from the fuzzer: `config.json` text, a NUL byte, then a
//! safetensors file. Conversion must fail with an `Err` or produce a `.mote` that the
//! runtime parses (the converter never writes a file the runtime refuses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mote_models::{ConvertOptions, WeightDType, convert_bytes};

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else { return };
    let (config, safetensors) = (&data[..split], &data[split + 1..]);
    // Every weight format, the quantized ones too: the converter never writes blocks the
    // runtime refuses.
    for dtype in [WeightDType::F16, WeightDType::Int8, WeightDType::Int4] {
        // An arena budget bounds what one input can make the converter plan.
        let opts = ConvertOptions { dtype, max_arena: Some(1 << 20), ..Default::default() };
        let Ok(converted) = convert_bytes(config, safetensors.to_vec(), &opts) else { return };
        let buf = mote_models::host::AlignedBytes::new(&converted.bytes);
        if let Err(e) = mote_runtime::Model::parse(&buf) {
            panic!("the converter wrote a {dtype:?} .mote the runtime refuses: {e}");
        }
    }
});
