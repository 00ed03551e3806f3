//! Kernel-test firmware: runs the kernel conformance cases (`mote_kernels::conformance_core`,
//! the edge cases of the host suite) on every table this board runs (its own, e.g. the
//! Cortex-M55 Helium table, and any other it can execute) against the scalar references,
//! and prints one line per table and op family over semihosting: cases run and skipped,
//! the largest scaled error and the tolerance, and the instructions the family took. A
//! failing case is printed with its parameters; the firmware then exits with
//! `EXIT_FAILURE` (QEMU exits 1). `cargo xtask ktest --board m4|m7|m55|all` builds and
//! runs it.
#![no_std]
#![no_main]
// Every unsafe block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

// The model firmware's 64-bit tick counter (SysTick under QEMU) and its calibration.
#[path = "../../src/clock.rs"]
mod clock;

mod info {
    include!(concat!(env!("OUT_DIR"), "/board.rs"));
}

use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprintln};
use half::f16;
use mote_kernels::conformance_core::{Family, Outcome, run_family};
use mote_kernels::table::{self, Kernels};

/// Buffers the cases' inputs and outputs are carved from; a case that needs more is
/// skipped (and counted). The largest edge case (attention, 4 heads x 64 over 49 rows
/// with padded rows) needs about 51 k f32s, the largest f16 weights 13 k.
const F32S: usize = 64 * 1024;
const F16S: usize = 16 * 1024;
static mut BUF_F32: [f32; F32S] = [0.0; F32S];
static mut BUF_F16: [f16; F16S] = [f16::ZERO; F16S];

/// Failing cases printed per family (the count is always printed).
const MAX_PRINTED: u32 = 4;

#[entry]
fn main() -> ! {
    let Some(mut cp) = cortex_m::Peripherals::take() else { finish(false) };
    clock::start(&mut cp);
    // SysTick starts at 0 and reloads on its first tick without counting a wrap: wait for
    // that, so the first reading is not one wrap ahead of the next.
    while cortex_m::peripheral::SYST::get_current() == 0 {}
    // Ticks of a loop of known length: instructions = ticks * instr_per_tick.
    let cal_ticks = clock::calibrate().max(1);
    let instructions = |ticks: u64| ticks * u64::from(clock::CALIBRATION_INSTRUCTIONS) / cal_ticks;

    // SAFETY: the only references to the buffers, taken once before anything else could
    // (no interrupt handler touches them).
    let (f, h) = unsafe { (&mut *core::ptr::addr_of_mut!(BUF_F32), &mut *core::ptr::addr_of_mut!(BUF_F16)) };

    let generic = Kernels::generic().name;
    let active = table::active().name;
    hprintln!("ktest board {} active table {:?}", info::BOARD, active);
    let (mut cases, mut failed, mut skipped, mut tables) = (0u32, 0u32, 0u32, 0u32);
    let mut active_tested = false;
    let start = clock::now();
    for t in table::available().filter(|t| t.name != generic) {
        tables += 1;
        active_tested |= t.name == active;
        hprintln!("table {:?}", t.name);
        for fam in Family::ALL {
            let t0 = clock::now();
            let mut printed = 0;
            let s = run_family(t, fam, f, h, |i, case, o| {
                if let Some(o) = o.filter(|o| !o.ok) {
                    if printed < MAX_PRINTED {
                        print_failure(t.name, fam, i, case, o);
                    }
                    printed += 1;
                }
            });
            let instr = instructions(clock::now() - t0);
            hprintln!(
                "  {:<15} {:>3} run {:>2} skipped  max err {:.2e} tol {:.1e} ({:.3} of tol)  {:>6.1} M instr  {}",
                fam.name(),
                s.run,
                s.skipped,
                s.max_err,
                fam.tol(),
                s.worst_ratio,
                instr as f64 / 1e6,
                Verdict(s.failed)
            );
            cases += s.run;
            failed += s.failed;
            skipped += s.skipped;
        }
    }
    let total = instructions(clock::now() - start);
    if !active_tested {
        hprintln!("FAIL the active table {:?} was not among the tables tested", active);
        failed += 1;
    }
    hprintln!(
        "ktest {}: {} tables, {} cases run, {} skipped, {} failed, {:.1} M instructions",
        if failed == 0 { "ok" } else { "FAILED" },
        tables,
        cases,
        skipped,
        failed,
        total as f64 / 1e6
    );
    finish(failed == 0 && tables > 0)
}

/// "ok", or how many cases failed.
struct Verdict(u32);

impl core::fmt::Display for Verdict {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            0 => f.write_str("ok"),
            n => write!(f, "FAIL ({n} cases)"),
        }
    }
}

fn print_failure(table: &str, fam: Family, i: usize, case: &mote_kernels::conformance_core::Case, o: &Outcome) {
    hprintln!(
        "FAIL {:?}: {} case {}: {:?}: max err {:.3e} > tol {:.1e}; element {}: got {:e}, want {:e}",
        table,
        fam.name(),
        i,
        case,
        o.max_err,
        o.tol,
        o.at,
        o.got,
        o.want
    );
}

fn finish(ok: bool) -> ! {
    debug::exit(if ok { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    loop {
        cortex_m::asm::wfi();
    }
}

#[exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    hprintln!("FAIL hard fault at pc {:#010x}", frame.pc());
    finish(false)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("FAIL panic: {}", info);
    finish(false)
}
