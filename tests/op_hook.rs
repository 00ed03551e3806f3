//! `Interpreter::invoke_profiled` / `step_profiled`: the hook sees every op, in order,
//! once before and once after it runs, and profiling does not change any output.

use mote_models::WeightDType;
use mote_models::host::AlignedBytes;
use mote_runtime::{Interpreter, Model, OpCode, OpHook};
use mote_tests::{convert, root, tensors};

/// Records (before?, index, op) for every call.
#[derive(Default)]
struct Record(Vec<(bool, usize, OpCode)>);

impl OpHook for Record {
    fn before(&mut self, index: usize, op: OpCode) {
        self.0.push((true, index, op));
    }
    fn after(&mut self, index: usize, op: OpCode) {
        self.0.push((false, index, op));
    }
}

/// The calls a hook must see for one pass over `model`.
fn expected(model: &Model<'_>) -> Vec<(bool, usize, OpCode)> {
    (0..model.op_count())
        .flat_map(|i| {
            let op = model.op(i).unwrap().opcode;
            [(true, i, op), (false, i, op)]
        })
        .collect()
}

#[test]
fn invoke_profiled_sees_every_op_and_changes_nothing() {
    let dir = root().join("demo/digits-vit");
    let bytes = AlignedBytes::new(&convert(&dir, WeightDType::F16).bytes);
    let model = Model::parse(&bytes).unwrap();
    let pixels = tensors(&dir.join("test.safetensors"))["pixel_values"].as_f32().unwrap()[..64].to_vec();
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];

    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    interp.set_input("pixel_values", &pixels).unwrap();
    interp.invoke().unwrap();
    let plain = interp.output("logits").unwrap().to_vec();

    let mut hook = Record::default();
    interp.set_input("pixel_values", &pixels).unwrap();
    interp.invoke_profiled(&mut hook).unwrap();
    assert_eq!(hook.0, expected(&model));
    assert_eq!(interp.output("logits").unwrap(), plain.as_slice());
}

#[test]
fn step_profiled_sees_every_op_of_every_step() {
    let dir = root().join("tests/data/mamba/mamba_a");
    let bytes = AlignedBytes::new(&convert(&dir, WeightDType::F16).bytes);
    let model = Model::parse(&bytes).unwrap();
    let mut arena = vec![0u8; Interpreter::arena_bytes_for(&model)];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    interp.step(&[3, 1, 4]).unwrap();
    interp.step(&[1]).unwrap();
    let plain = interp.output("logits").unwrap().to_vec();

    interp.reset();
    let mut hook = Record::default();
    interp.step_profiled(&[3, 1, 4], &mut hook).unwrap();
    interp.step_profiled(&[1], &mut hook).unwrap();
    let once = expected(&model);
    assert_eq!(hook.0, [once.clone(), once].concat());
    assert_eq!(interp.output("logits").unwrap(), plain.as_slice());
}
