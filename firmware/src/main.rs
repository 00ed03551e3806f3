//! Mote firmware: runs the `.mote` embedded at build time (executed in place from flash)
//! on the input embedded with it, and reports the outputs, instructions (QEMU) or cycles
//! (DWT), and the stack high-water mark. See `build.rs` for how the model is chosen.
#![no_std]
#![no_main]
// Every unsafe block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(all(feature = "qemu", feature = "defmt", not(feature = "qemu-defmt")))]
compile_error!("on a QEMU board, enable defmt with the `qemu-defmt` feature (defmt over semihosting)");

mod clock;
mod report;
mod stack;

use cortex_m_rt::{entry, exception};
use mote_board::input::{self, DEFAULT_PROMPT, Input, Prompt};
use mote_board::report::{Line, Timed};
use mote_runtime::sampler::argmax;
use mote_runtime::{Aligned, Interpreter, Model, OpCode, OpHook};

use report::Report;

#[cfg_attr(feature = "heap", allow(dead_code))]
mod info {
    include!(concat!(env!("OUT_DIR"), "/model_info.rs"));
}

#[cfg(feature = "hw")]
use defmt_rtt as _;
#[cfg(feature = "qemu-defmt")]
use defmt_semihosting as _;

/// Human-readable progress: text over semihosting, or defmt.
macro_rules! log {
    ($($t:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::info!($($t)*);
        #[cfg(not(feature = "defmt"))]
        cortex_m_semihosting::hprintln!($($t)*);
    }};
}

/// The model, 64-byte aligned in flash and read in place.
#[unsafe(no_mangle)]
#[used]
static MOTE_MODEL: Aligned<[u8; info::MODEL_BYTES]> = Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.mote")));

/// The input blob (`mote_board::input`).
static MOTE_INPUT: Aligned<[u8; include_bytes!(concat!(env!("OUT_DIR"), "/input.bin")).len()]> =
    Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/input.bin")));

/// The arena, sized from the model header at build time.
#[cfg(not(feature = "heap"))]
#[unsafe(no_mangle)]
static mut MOTE_ARENA: Aligned<[u8; info::ARENA_BYTES]> = Aligned([0; info::ARENA_BYTES]);

#[cfg(feature = "heap")]
static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();
/// Stack left below the heap when the heap takes the rest of RAM.
#[cfg(feature = "heap")]
const STACK_RESERVE_BYTES: usize = 32 * 1024;

/// Ticks and calls per op kind (indexed by opcode).
struct Profile {
    ticks: [u64; 32],
    calls: [u32; 32],
    t0: u64,
}

impl OpHook for Profile {
    fn before(&mut self, _index: usize, _op: OpCode) {
        self.t0 = clock::now();
    }
    fn after(&mut self, _index: usize, op: OpCode) {
        let dt = clock::now() - self.t0;
        let i = (op as usize).min(31);
        self.ticks[i] += dt;
        self.calls[i] += 1;
    }
}

#[derive(Debug)]
enum Fail {
    Runtime(mote_runtime::Error),
    Input(&'static str),
}

impl From<mote_runtime::Error> for Fail {
    fn from(e: mote_runtime::Error) -> Self {
        Fail::Runtime(e)
    }
}

#[entry]
fn main() -> ! {
    let ok = match run() {
        Ok(()) => true,
        Err(e) => {
            if let Some(mut r) = Report::open() {
                match e {
                    Fail::Runtime(e) => r.line(Line::Error(&e)),
                    Fail::Input(e) => r.line(Line::Error(&e)),
                }
            }
            match e {
                Fail::Runtime(_e) => log!("error: the runtime refused the model or input"),
                Fail::Input(_e) => log!("error: bad input blob"),
            }
            false
        }
    };
    finish(ok)
}

#[cfg(feature = "qemu")]
fn finish(ok: bool) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if ok { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    loop {
        cortex_m::asm::wfi();
    }
}

#[cfg(not(feature = "qemu"))]
fn finish(ok: bool) -> ! {
    if !ok {
        defmt::error!("failed");
    }
    loop {
        cortex_m::asm::bkpt();
    }
}

/// The arena: the `static`, or (with `heap`) a block of the model's size from a heap
/// over the RAM the statics leave, sized at boot from the model header.
#[cfg(not(feature = "heap"))]
fn arena(_model: &Model<'_>, r: &mut Report) -> Result<(&'static mut [u8], usize), Fail> {
    r.line(Line::ArenaStatic(info::ARENA_BYTES));
    // SAFETY: `main` calls this once; nothing else references MOTE_ARENA.
    let arena = unsafe { &mut (*core::ptr::addr_of_mut!(MOTE_ARENA)).0 };
    Ok((arena, stack::free_ram_start()))
}

#[cfg(feature = "heap")]
fn arena(model: &Model<'_>, r: &mut Report) -> Result<(&'static mut [u8], usize), Fail> {
    use core::alloc::{GlobalAlloc, Layout};
    let start = stack::free_ram_start();
    let end = stack::stack_top().saturating_sub(STACK_RESERVE_BYTES);
    let heap_bytes = end.saturating_sub(start);
    // SAFETY: `start..end` is RAM no static uses, below the stack reserve; init runs once.
    unsafe { HEAP.init(start, heap_bytes) };
    let needed = model.arena_bytes();
    let layout = Layout::from_size_align(needed.max(1), 64).map_err(|_| Fail::Input("arena layout"))?;
    // SAFETY: a valid, non-zero-sized layout.
    let p = unsafe { HEAP.alloc(layout) };
    if p.is_null() {
        return Err(Fail::Runtime(mote_runtime::Error::ArenaTooSmall { needed, available: heap_bytes }));
    }
    r.line(Line::ArenaHeap { arena: needed, heap: heap_bytes });
    // SAFETY: `p` is a fresh allocation of `needed` bytes that is never freed.
    Ok((unsafe { core::slice::from_raw_parts_mut(p, needed) }, end))
}

fn run() -> Result<(), Fail> {
    let mut cp = cortex_m::Peripherals::take().ok_or(Fail::Input("peripherals taken"))?;
    clock::start(&mut cp);
    let mut r = Report::open().ok_or(Fail::Input("cannot open the report file over semihosting"))?;
    r.line(Line::Board(info::BOARD));
    r.line(Line::Calibrate { instructions: clock::CALIBRATION_INSTRUCTIONS.into(), ticks: clock::calibrate() });

    let model = Model::parse(&MOTE_MODEL.0)?;
    r.line(Line::Model {
        architecture: model.architecture(),
        bytes: model.file_bytes(),
        arena: model.arena_bytes(),
        persistent: model.persistent_bytes(),
        ops: model.op_count(),
    });
    let (arena, paint_from) = arena(&model, &mut r)?;
    stack::paint(paint_from);
    let mut interp = Interpreter::new(&model, arena)?;
    let mut prof = Profile { ticks: [0; 32], calls: [0; 32], t0: 0 };
    log!("mote: running the model");

    let blob = input::parse(&MOTE_INPUT.0).map_err(|e| Fail::Input(e.message()))?;
    let blob = match blob {
        Input::Default if model.max_tokens() > 0 => Input::Prompt(DEFAULT_PROMPT),
        b => b,
    };
    match blob {
        Input::Prompt(prompt) => run_prompt(&mut interp, &mut r, &mut prof, prompt)?,
        Input::Tensors(t) => {
            for item in 0..t.items() {
                let mut at = 0;
                for spec in t.specs() {
                    let dst = interp.input_mut(spec.name)?;
                    if dst.len() != spec.elems_per_item {
                        return Err(Fail::Runtime(mote_runtime::Error::InputSize {
                            expected: dst.len(),
                            got: spec.elems_per_item,
                        }));
                    }
                    // Item-major: this input's values for `item`.
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = t.value(item, at + i);
                    }
                    at += spec.elems_per_item;
                }
                invoke_once(&mut interp, &mut r, &mut prof)?;
            }
        }
        Input::Default => {
            for i in 0..model.input_count() {
                if let Some(t) = model.input(i) {
                    interp.input_mut(t.name)?.fill(0.0);
                }
            }
            invoke_once(&mut interp, &mut r, &mut prof)?;
        }
    }

    for (code, (&ticks, &calls)) in prof.ticks.iter().zip(&prof.calls).enumerate() {
        if let Some(op) = OpCode::from_code(code as u32).filter(|_| calls > 0) {
            r.line(Line::Op { name: op.name(), calls: calls.into(), ticks });
        }
    }
    r.line(Line::Stack(stack::high_water(paint_from)));
    r.line(Line::Done);
    log!("mote: done");
    Ok(())
}

/// Runs one `invoke` (inputs set) and reports its time and outputs.
fn invoke_once(interp: &mut Interpreter<'_, '_>, r: &mut Report, prof: &mut Profile) -> Result<(), Fail> {
    let t0 = clock::now();
    if cfg!(feature = "profile") {
        interp.invoke_profiled(prof)?;
    } else {
        interp.invoke()?;
    }
    r.line(Line::Time { what: Timed::Invoke, ticks: clock::now() - t0, tokens: None });
    outputs(interp, r)
}

/// Every output as `out NAME COUNT argmax I` then its f32 bit patterns, eight a line.
fn outputs(interp: &Interpreter<'_, '_>, r: &mut Report) -> Result<(), Fail> {
    let model = interp.model();
    for i in 0..model.output_count() {
        let Some(t) = model.output(i) else { continue };
        let values = interp.output(t.name)?;
        r.line(Line::Out { name: t.name, count: values.len(), argmax: argmax(values) });
        for chunk in values.chunks(mote_board::report::VALUES_PER_LINE) {
            r.line(Line::Values(chunk));
        }
    }
    Ok(())
}

/// A prompt in chunks of the model's tokens per call, then greedy generation: the host
/// runner's order (`mote_models::host::run_in`), so outputs compare one to one.
fn run_prompt(
    interp: &mut Interpreter<'_, '_>,
    r: &mut Report,
    prof: &mut Profile,
    prompt: Prompt<'_>,
) -> Result<(), Fail> {
    let max = interp.model().max_tokens().max(1);
    let (prompt_len, generate) = (prompt.len(), prompt.generate());
    let mut chunk = [0i32; 64];
    let chunk_len = max.min(chunk.len());
    let mut start = 0;
    while start < prompt_len {
        let n = chunk_len.min(prompt_len - start);
        for (j, c) in chunk[..n].iter_mut().enumerate() {
            *c = prompt.id(start + j);
        }
        step(interp, r, prof, &chunk[..n], Timed::Prefill)?;
        outputs(interp, r)?;
        start += n;
    }
    if generate > 0 {
        let logits = interp.output("logits")?;
        let vocab = logits.len() / interp.tokens().max(1);
        let mut next = argmax(&logits[logits.len() - vocab..]);
        for j in 0..generate {
            r.line(Line::Tok(next));
            if j + 1 < generate {
                step(interp, r, prof, &[next as i32], Timed::Step)?;
                next = argmax(interp.output("logits")?);
            }
        }
    }
    Ok(())
}

fn step(
    interp: &mut Interpreter<'_, '_>,
    r: &mut Report,
    prof: &mut Profile,
    ids: &[i32],
    what: Timed,
) -> Result<(), Fail> {
    let t0 = clock::now();
    if cfg!(feature = "profile") {
        interp.step_profiled(ids, prof)?;
    } else {
        interp.step(ids)?;
    }
    r.line(Line::Time { what, ticks: clock::now() - t0, tokens: Some(ids.len()) });
    Ok(())
}

#[exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    log!("hard fault");
    finish(false)
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    log!("panic");
    finish(false)
}
