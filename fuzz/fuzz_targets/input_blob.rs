//! An input blob from the fuzzer: `mote_board::input::parse`, the firmware's reader of
//! the blob embedded next to the model. Nothing may panic; every failure must be an
//! `Err`. A blob that parses is read as the firmware reads it (every spec, every value
//! or token), and written again by the host's writer, which must give a blob that parses
//! to the same input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mote_board::input::{Input, TensorSpec, parse, write_prompt, write_tensors};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = parse(data) else { return };
    match input {
        Input::Tensors(t) => {
            let specs: Vec<TensorSpec<'_>> = t.specs().collect();
            assert_eq!(specs.len(), t.inputs(), "a parsed blob's specs all read again");
            assert_eq!(specs.iter().map(|s| s.elems_per_item).sum::<usize>(), t.elems_per_item());
            // The values, item by item as the firmware reads them (bounded by the data,
            // not by `items`: zero-sized inputs allow u32::MAX items of no data).
            let per_item = t.elems_per_item();
            let values: Vec<f32> = (0..t.data().len() / 4).map(|i| t.value(i / per_item, i % per_item)).collect();
            assert_eq!(values.len(), t.items() * per_item);
            let again = write_tensors(t.items(), &specs, &values).expect("a parsed blob writes again");
            let Ok(Input::Tensors(u)) = parse(&again) else { panic!("the writer's blob does not parse") };
            assert_eq!((u.items(), u.inputs(), u.elems_per_item()), (t.items(), t.inputs(), per_item));
            assert!(u.specs().eq(t.specs()));
            assert_eq!(u.data(), t.data());
        }
        Input::Prompt(p) => {
            assert!(!p.is_empty());
            let ids: Vec<i32> = (0..p.len()).map(|i| p.id(i)).collect();
            let again = write_prompt(&ids, p.generate()).expect("a parsed prompt writes again");
            assert_eq!(&again[..], &data[..again.len()], "the writer's bytes are the parsed prefix");
        }
        Input::Default => assert!(data.is_empty()),
    }
});
