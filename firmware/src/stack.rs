//! Stack high-water mark by painting: fill the free stack with a pattern at boot, and
//! later find the lowest word that is no longer the pattern.

const PAINT: u32 = 0x5A5A_A5A5;

unsafe extern "C" {
    /// First free RAM word after `.bss`/`.uninit` (cortex-m-rt's link.x).
    static mut __sheap: u32;
    /// Top of the stack: the end of RAM (cortex-m-rt's link.x).
    static _stack_start: u32;
}

pub fn free_ram_start() -> usize {
    core::ptr::addr_of!(__sheap) as usize
}

pub fn stack_top() -> usize {
    core::ptr::addr_of!(_stack_start) as usize
}

/// Paints `from..` up to 256 bytes below the current stack pointer.
pub fn paint(from: usize) {
    let end = cortex_m::register::msp::read() as usize - 256;
    let mut a = (from + 3) & !3;
    while a < end {
        // SAFETY: `from..end` is RAM between the end of the statics (or the heap) and the
        // live stack, which nothing else uses.
        unsafe { core::ptr::write_volatile(a as *mut u32, PAINT) };
        a += 4;
    }
}

/// Bytes of stack used since [`paint`] (the deepest point).
pub fn high_water(from: usize) -> usize {
    let end = stack_top();
    let mut a = (from + 3) & !3;
    // SAFETY: reads RAM inside the region painted at boot, below the stack top.
    while a < end && unsafe { core::ptr::read_volatile(a as *const u32) } == PAINT {
        a += 4;
    }
    end - a
}
