//! QEMU's `isa-debug-exit` device (iobase 0xf4): ends the emulator with exit code
//! `(value << 1) | 1`. On real hardware the write goes nowhere and the CPU halts.

use x86_64::instructions::port::Port;

/// I/O port of the `isa-debug-exit` device, as the test runner configures it.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Value written on a kernel failure: QEMU exits with code 33.
const FAILURE: u32 = 0x10;

/// Ends QEMU with the failure code (33), or halts the machine for good.
pub fn exit_failure() -> ! {
    // SAFETY: port 0xf4 is unused on a PC; under QEMU with the test device it
    // ends the emulator, elsewhere the write has no effect.
    unsafe { Port::new(DEBUG_EXIT_PORT).write(FAILURE) };
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
