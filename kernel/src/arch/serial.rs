//! The first serial port (COM1, a 16550 UART at I/O port 0x3F8) through the
//! `uart_16550` crate: the port writes of the kernel's console.

use core::fmt::Write;
use spin::Mutex;
use uart_16550::SerialPort;

/// I/O port base of COM1.
const COM1: u16 = 0x3F8;

static SERIAL: Mutex<Option<SerialPort>> = Mutex::new(None);

/// Initialises COM1 (115200 8N1 as the `uart_16550` crate sets it up).
pub fn init() {
    // SAFETY: 0x3F8 is COM1 on every PC; this is the only place that creates a
    // handle to it.
    let mut port = unsafe { SerialPort::new(COM1) };
    port.init();
    *SERIAL.lock() = Some(port);
}

/// Writes `s` to COM1 (nothing before [`init`]).
pub fn write_str(s: &str) {
    if let Some(port) = SERIAL.lock().as_mut() {
        let _ = port.write_str(s);
    }
}

/// Releases the port's lock after a fault that may have interrupted a writer.
/// Only for the panic and fault paths, where the interrupted code never
/// resumes: callers are on the way to halting the machine.
pub fn force_unlock() {
    // SAFETY: called only on the way to halting the machine, with interrupts
    // off; the interrupted holder of the lock will never run again.
    unsafe { SERIAL.force_unlock() };
}
