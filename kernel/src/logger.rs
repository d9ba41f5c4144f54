//! The kernel's one logger: `log` records to the console, stamped with the
//! monotonic clock (seconds since boot).
#![forbid(unsafe_code)]

use core::fmt::Write;
use log::{Level, LevelFilter, Metadata, Record};

struct KernelLogger;

static LOGGER: KernelLogger = KernelLogger;

impl log::Log for KernelLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        // tar-no-std reports the zero blocks that end every tar archive as
        // unparsable headers; they are not errors.
        metadata.level() <= Level::Info && !metadata.target().starts_with("tar_no_std")
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ns = crate::time::now_ns();
        let mut out = crate::console::Console;
        let _ = writeln!(
            out,
            "[{:5}.{:06}] {:5} {}",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1000,
            record.level(),
            record.args()
        );
    }

    fn flush(&self) {}
}

/// Sets up the serial console and installs the logger.
pub fn init() {
    crate::console::init();
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}

/// See [`crate::console::force_unlock`].
pub fn force_unlock() {
    crate::console::force_unlock();
}
