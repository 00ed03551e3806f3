//! A 64-bit tick counter.
//!
//! - QEMU boards: SysTick on the processor clock, its 24-bit wraps counted by the SysTick
//!   exception. Under `qemu -icount shift=0` virtual time advances 1 ns per instruction,
//!   so ticks are instructions times the clock's frequency; [`calibrate`] measures the
//!   ratio with a loop of known instruction count.
//! - Real chips: the DWT cycle counter (32 bits, extended to 64 by noticing wraps; read
//!   it at least once per 2^32 cycles, as the per-op hook does).

#[cfg(feature = "qemu")]
mod imp {
    use core::sync::atomic::{AtomicU32, Ordering};
    use cortex_m::peripheral::{SCB, SYST, syst::SystClkSource};
    use cortex_m_rt::exception;

    const RELOAD: u32 = 0x00FF_FFFF;
    static WRAPS: AtomicU32 = AtomicU32::new(0);

    #[exception]
    fn SysTick() {
        WRAPS.fetch_add(1, Ordering::Relaxed);
    }

    pub fn start(cp: &mut cortex_m::Peripherals) {
        let syst = &mut cp.SYST;
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
    }

    pub fn now() -> u64 {
        cortex_m::interrupt::free(|_| {
            let wraps = WRAPS.load(Ordering::Relaxed) as u64;
            let current = SYST::get_current();
            // A wrap not yet counted (its exception is pending): if the value was read
            // after it (a large value, just reloaded), count it.
            let late = SCB::is_pendst_pending() && current > RELOAD / 2;
            (wraps + late as u64) * (RELOAD as u64 + 1) + (RELOAD - current) as u64
        })
    }
}

#[cfg(not(feature = "qemu"))]
mod imp {
    use core::sync::atomic::{AtomicU32, Ordering};
    use cortex_m::peripheral::DWT;

    static LAST: AtomicU32 = AtomicU32::new(0);
    static HIGH: AtomicU32 = AtomicU32::new(0);

    pub fn start(cp: &mut cortex_m::Peripherals) {
        cp.DCB.enable_trace();
        cp.DWT.enable_cycle_counter();
    }

    pub fn now() -> u64 {
        cortex_m::interrupt::free(|_| {
            let c = DWT::cycle_count();
            if c < LAST.load(Ordering::Relaxed) {
                HIGH.fetch_add(1, Ordering::Relaxed);
            }
            LAST.store(c, Ordering::Relaxed);
            ((HIGH.load(Ordering::Relaxed) as u64) << 32) | c as u64
        })
    }
}

pub use imp::{now, start};

/// Instructions of the calibration loop.
pub const CALIBRATION_INSTRUCTIONS: u32 = 2_000_000;

/// Ticks taken by [`CALIBRATION_INSTRUCTIONS`] instructions (a `subs`/`bne` loop).
pub fn calibrate() -> u64 {
    let t0 = now();
    let mut n = CALIBRATION_INSTRUCTIONS / 2;
    // SAFETY: a register-only countdown loop; touches no memory.
    unsafe {
        core::arch::asm!("2:", "subs {n}, #1", "bne 2b", n = inout(reg) n, options(nomem, nostack));
    }
    let _ = n;
    now() - t0
}
