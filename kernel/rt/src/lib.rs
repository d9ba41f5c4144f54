//! The runtime of SiON processes: the entry point, system-call wrappers for
//! `int 0x40` (see [`sion_abi`]), console printing, a panic handler that ends the
//! process, and a heap.
//!
//! A process crate is `#![no_std]` `#![no_main]` and names its main function
//! with [`entry!`]:
//! ```ignore
//! sion_rt::entry!(main);
//! fn main(arg: &[u8]) -> i32 { sion_rt::println!("hello"); 0 }
//! ```
#![no_std]

extern crate alloc;

pub mod entropy;
pub mod sys;

use core::fmt::Write;
pub use sion_abi as abi;

/// Size of each process's heap in bytes (a zero-filled array in `.bss`):
/// 4 MiB, what the App-Program Manager needs with its job port's connections
/// and uploads at their limits (see its lobby) and a job running.
pub const HEAP_SIZE: usize = 4 * 1024 * 1024;

#[repr(align(4096))]
struct HeapArea(#[allow(dead_code)] [u8; HEAP_SIZE]);

static mut HEAP_AREA: HeapArea = HeapArea([0; HEAP_SIZE]);

#[global_allocator]
static ALLOCATOR: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();

unsafe extern "Rust" {
    /// The process's main function, defined by [`entry!`].
    fn __sion_main(arg: &[u8]) -> i32;
}

/// The entry point the kernel jumps to: `rdi` and `rsi` hold the argument blob
/// given to `spawn`.
///
/// # Safety
/// Called only by the kernel, with `(arg, len)` describing mapped memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start(arg: *const u8, len: usize) -> ! {
    // SAFETY: runs once before any allocation; the heap area is only used by
    // the allocator from now on.
    unsafe {
        ALLOCATOR
            .lock()
            .init(core::ptr::addr_of_mut!(HEAP_AREA).cast(), HEAP_SIZE)
    };
    let arg = if len == 0 {
        &[][..]
    } else {
        // SAFETY: the kernel passes the argument blob it copied onto our stack.
        unsafe { core::slice::from_raw_parts(arg, len) }
    };
    // SAFETY: `entry!` defines `__sion_main` with this signature.
    let code = unsafe { __sion_main(arg) };
    sys::exit(code)
}

/// Declares the process's main function: `fn(arg: &[u8]) -> i32`, whose result
/// is the exit code.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn __sion_main(arg: &[u8]) -> i32 {
            let main: fn(&[u8]) -> i32 = $main;
            main(arg)
        }
    };
}

/// A line buffer for the console: collects formatted text and writes it with
/// one system call, so lines from different processes do not interleave.
pub struct LineWriter {
    buf: [u8; 512],
    len: usize,
}

impl LineWriter {
    /// An empty buffer.
    pub const fn new() -> Self {
        LineWriter {
            buf: [0; 512],
            len: 0,
        }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            let _ = sys::console_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for LineWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Prints to the node's console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let mut w = $crate::LineWriter::new();
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!($($arg)*));
        w.flush();
    }};
}

/// Prints a line to the node's console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        let mut w = $crate::LineWriter::new();
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!($($arg)*));
        let _ = core::fmt::Write::write_str(&mut w, "\n");
        w.flush();
    }};
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic in process {}: {}", sys::getpid(), info);
    sys::exit(101)
}
