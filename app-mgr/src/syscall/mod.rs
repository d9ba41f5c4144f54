//! The Linux system-call table of the App-Program Manager and its handlers
//! (anchor: Asterinas `kernel/src/syscall/`).
//!
//! [`table`] has one row per call: its x86_64 and i386 numbers (from the
//! `syscalls` crate), where it is served ([`Served`]) and its handler. The
//! handlers live in one file per family, each decoding its arguments
//! ([`Args`]) next to serving them: [`io`] (descriptors), [`fs`] (paths),
//! [`mm`] (memory), [`lifecycle`] (fork, wait, exit, kill, process
//! groups), [`process`], [`time`] and [`signal`]. A number the table
//! does not know is answered with `-ENOSYS`.
//!
//! Argument widths follow the kernel's entry code: on i386 every register is 32
//! bits (pointers and `size_t` are zero-extended, `int` and `off_t`
//! sign-extended, 64-bit offsets come in two registers, low word first); on
//! x86_64 `int` arguments are the low 32 bits of the register.

pub mod exec;
pub mod fs;
pub mod io;
pub mod lifecycle;
pub mod mm;
pub mod poll;
pub mod process;
pub mod signal;
pub mod table;
#[cfg(test)]
mod tests;
pub mod time;
pub mod timer;

use crate::abi::Abi;
use crate::errno::Errno;
use crate::process::{CallResult, Process};

/// Where a call is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Served {
    /// On the node, by the App-Program Manager.
    Node,
    /// Forwarded to the submitting `hostd`.
    Submitter,
    /// Depends on the descriptor in the first argument
    /// ([`crate::fd::FdTable::route`]): the node for stdio and pipes, the
    /// submitter for host files.
    ByFd,
}

/// Serves system call `nr` of `abi` with argument registers `args` (`ebx, ecx,
/// edx, esi, edi, ebp` for i386, `rdi, rsi, rdx, r10, r8, r9` for x86_64).
/// `None` for a number the table does not serve (answer `-ENOSYS`).
pub fn dispatch(p: &mut Process<'_>, abi: Abi, nr: u64, args: [u64; 6]) -> Option<CallResult> {
    let row = table::lookup(abi, nr)?;
    let a = Args::new(abi, args);
    let forwarded = match row.served {
        Served::Submitter => true,
        Served::ByFd => p.task.fds.route(a.int(0)) == Ok(Served::Submitter),
        Served::Node => false,
    };
    if forwarded {
        p.stats.forwarded += 1;
    }
    Some((row.handler)(p, &a))
}

/// `-ENOSYS`, the answer to a number no row serves.
pub const NOSYS: Errno = Errno::ENOSYS;

/// Layout of `struct timespec` / `timeval` / `time_t` a call uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeLayout {
    /// 32-bit `time_t` (i386 `clock_gettime`, `nanosleep`, `gettimeofday`,
    /// `time`, `futex`): `timespec` is 8 bytes.
    Time32,
    /// 64-bit `time_t` (every x86_64 call; i386 `*_time64` calls): `timespec`
    /// is 16 bytes.
    Time64,
}

/// Layout of the `struct stat` a call fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatLayout {
    /// x86_64 `struct stat` (144 bytes; `stat`, `lstat`, `fstat`, `newfstatat`).
    X86_64,
    /// i386 `struct stat` (64 bytes, 32-bit inode and size; `stat`, `lstat`,
    /// `fstat`: EOVERFLOW for large values).
    I386Stat,
    /// i386 `struct stat64` (96 bytes; `stat64`, `lstat64`, `fstat64`,
    /// `fstatat64`).
    I386Stat64,
}

/// Layout of the `struct statfs` a call fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatfsLayout {
    /// x86_64 `struct statfs` (120 bytes; `statfs`, `fstatfs`).
    X86_64,
    /// i386 `struct statfs` (64 bytes, 32-bit counts; `statfs`, `fstatfs`:
    /// EOVERFLOW for large values).
    I386Statfs,
    /// i386 `struct statfs64` (84 bytes; `statfs64`, `fstatfs64`).
    I386Statfs64,
}

/// Width of the file offset `sendfile` reads and updates through its pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffsetWidth {
    /// 32-bit `off_t` (i386 `sendfile`).
    Off32,
    /// 64-bit `loff_t` (x86_64 `sendfile`, i386 `sendfile64`).
    Off64,
}

/// The six raw argument registers of a call, read with the widths of its ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args {
    abi: Abi,
    raw: [u64; 6],
}

impl Args {
    /// Wraps the registers (`ebx, ecx, edx, esi, edi, ebp` for i386, `rdi, rsi,
    /// rdx, r10, r8, r9` for x86_64).
    pub const fn new(abi: Abi, raw: [u64; 6]) -> Args {
        Args { abi, raw }
    }

    /// The ABI.
    pub const fn abi(&self) -> Abi {
        self.abi
    }

    /// Argument `i` as a pointer, `size_t` or `unsigned long` (zero-extended
    /// from 32 bits on i386).
    pub const fn word(&self, i: usize) -> u64 {
        match self.abi {
            Abi::I386 => self.raw[i] & 0xffff_ffff,
            Abi::X86_64 => self.raw[i],
        }
    }

    /// Argument `i` as a C `int` (low 32 bits).
    pub const fn int(&self, i: usize) -> i32 {
        self.raw[i] as u32 as i32
    }

    /// Argument `i` as a C `unsigned int` (low 32 bits).
    pub const fn uint(&self, i: usize) -> u32 {
        self.raw[i] as u32
    }

    /// Argument `i` as a `long` / `off_t` (sign-extended from 32 bits on i386).
    pub const fn long(&self, i: usize) -> i64 {
        match self.abi {
            Abi::I386 => self.raw[i] as u32 as i32 as i64,
            Abi::X86_64 => self.raw[i] as i64,
        }
    }

    /// A 64-bit value passed in two 32-bit registers: `lo` and `hi`.
    pub const fn pair(&self, lo: usize, hi: usize) -> i64 {
        (((self.raw[hi] as u32 as u64) << 32) | self.raw[lo] as u32 as u64) as i64
    }

    /// [`TimeLayout::Time64`] on x86_64, [`TimeLayout::Time32`] on i386 (the
    /// layout of calls without a `_time64` twin).
    pub const fn native_time(&self) -> TimeLayout {
        match self.abi {
            Abi::I386 => TimeLayout::Time32,
            Abi::X86_64 => TimeLayout::Time64,
        }
    }
}

/// The Linux name of system call `nr` in `abi` (`"read"`, `"_llseek"`), for
/// logs, or `None` for a number neither table knows. Covers every Linux call,
/// not only those the [`table`] serves.
pub fn name(abi: Abi, nr: u64) -> Option<&'static str> {
    let nr = usize::try_from(nr).ok()?;
    match abi {
        Abi::X86_64 => syscalls::x86_64::Sysno::new(nr).map(|s| s.name()),
        Abi::I386 => syscalls::x86::Sysno::new(nr).map(|s| s.name()),
    }
}
