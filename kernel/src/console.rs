//! The node's console: the first serial port (COM1, [`crate::arch::serial`]),
//! mirrored on the screen ([`crate::drivers::fbcon`]). Both the kernel log and
//! processes' console writes end up here.
#![forbid(unsafe_code)]

use core::fmt::Write;

/// Initialises the serial port.
pub fn init() {
    crate::arch::serial::init();
}

/// Writes `s` to the serial port and the screen.
pub fn write_str(s: &str) {
    crate::arch::serial::write_str(s);
    crate::drivers::fbcon::write_str(s);
}

/// Releases the console locks after a fault that may have interrupted a writer.
/// Only for the panic and fault paths, where the interrupted code never resumes.
pub fn force_unlock() {
    crate::arch::serial::force_unlock();
    crate::drivers::fbcon::force_unlock();
}

/// A `core::fmt::Write` sink for the console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_str(s);
        Ok(())
    }
}
