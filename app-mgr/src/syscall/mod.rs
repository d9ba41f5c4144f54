//! The Linux system-call table of the App-Program Manager: decoding a trapped
//! call (ABI, number, six raw argument registers) into a typed [`Syscall`], and
//! routing it to the node or to the submitting `hostd`.
//!
//! Numbers come from the `syscalls` crate's per-architecture tables
//! (`syscalls::x86` for i386 `int 0x80`, `syscalls::x86_64` for `syscall`), which
//! mirror Linux `arch/x86/entry/syscalls/syscall_32.tbl` and `syscall_64.tbl`;
//! [`table`] maps both onto one list of calls ([`table::Call`]). Argument decoding
//! lives in one file per family: [`io`] (descriptors), [`fs`] (paths), [`mm`]
//! (memory), [`process`], [`time`] and [`signal`]. A number the table does not
//! know decodes to [`Syscall::Unknown`], answered with `-ENOSYS`.
//!
//! Argument widths follow the kernel's entry code: on i386 every register is 32
//! bits (pointers and `size_t` are zero-extended, `int` and `off_t`
//! sign-extended, 64-bit offsets come in two registers, low word first); on
//! x86_64 `int` arguments are the low 32 bits of the register.

pub mod fs;
pub mod io;
pub mod mm;
pub mod process;
pub mod signal;
pub mod table;
pub mod time;

use crate::abi::Abi;

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

/// Layout of the `struct rlimit` a call fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RlimitLayout {
    /// Two 64-bit values (x86_64 `getrlimit`; `prlimit64` on both ABIs).
    Rlimit64,
    /// Two 32-bit values, `RLIM_INFINITY` = `0xffff_ffff` (i386 `ugetrlimit`).
    Rlimit32,
    /// Two 32-bit values clamped to `0x7fff_ffff` (i386 old `getrlimit`, 76).
    Rlimit32Clamped,
}

/// Width of the file offset `sendfile` reads and updates through its pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffsetWidth {
    /// 32-bit `off_t` (i386 `sendfile`).
    Off32,
    /// 64-bit `loff_t` (x86_64 `sendfile`, i386 `sendfile64`).
    Off64,
}

/// Which credential a `get*id` call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// `getuid`.
    Uid,
    /// `geteuid`.
    Euid,
    /// `getgid`.
    Gid,
    /// `getegid`.
    Egid,
}

/// A decoded system call. Pointers are user addresses (`u64`, zero-extended on
/// i386); `fd`s and `int`s are `i32`; sizes are `u64`; file offsets `i64`.
/// Each variant's source is its man page (`read(2)` and so on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // Field names are the man pages' parameter names.
pub enum Syscall {
    // ---- descriptors: io.rs ----
    /// `read(2)`.
    Read { fd: i32, buf: u64, count: u64 },
    /// `write(2)`.
    Write { fd: i32, buf: u64, count: u64 },
    /// `readv(2)`; `iov` points to `iovcnt` `struct iovec` of the ABI's words.
    Readv { fd: i32, iov: u64, iovcnt: i32 },
    /// `writev(2)`.
    Writev { fd: i32, iov: u64, iovcnt: i32 },
    /// `pread64(2)`.
    Pread64 {
        fd: i32,
        buf: u64,
        count: u64,
        offset: i64,
    },
    /// `pwrite64(2)`.
    Pwrite64 {
        fd: i32,
        buf: u64,
        count: u64,
        offset: i64,
    },
    /// `close(2)`.
    Close { fd: i32 },
    /// `lseek(2)`; returns the new offset.
    Lseek { fd: i32, offset: i64, whence: u32 },
    /// i386 `_llseek(2)`: 64-bit `offset`, the new offset is stored as a
    /// `loff_t` at `result`; returns 0.
    Llseek {
        fd: i32,
        offset: i64,
        result: u64,
        whence: u32,
    },
    /// `ioctl(2)`.
    Ioctl { fd: i32, cmd: u32, arg: u64 },
    /// `fcntl(2)` (i386 `fcntl64` too; its `F_*LK64` commands keep their own
    /// numbers).
    Fcntl { fd: i32, cmd: i32, arg: u64 },
    /// `dup(2)`.
    Dup { oldfd: i32 },
    /// `dup2(2)`.
    Dup2 { oldfd: i32, newfd: i32 },
    /// `dup3(2)`.
    Dup3 { oldfd: i32, newfd: i32, flags: i32 },
    /// `pipe(2)` (`flags` 0) and `pipe2(2)`; `fds` points to `int[2]`.
    Pipe { fds: u64, flags: i32 },
    /// `sendfile(2)`; `offset` is a pointer (0 for none) to an offset of
    /// `offset_width`.
    Sendfile {
        out_fd: i32,
        in_fd: i32,
        offset: u64,
        count: u64,
        offset_width: OffsetWidth,
    },
    /// `getdents64(2)`.
    Getdents64 { fd: i32, dirp: u64, count: u64 },
    /// `ftruncate(2)` (i386 `ftruncate64` too).
    Ftruncate { fd: i32, length: i64 },
    /// `fstat(2)` (i386 `fstat64` too).
    Fstat {
        fd: i32,
        statbuf: u64,
        layout: StatLayout,
    },

    // ---- paths: fs.rs ----
    /// `open(2)`.
    Open {
        pathname: u64,
        flags: i32,
        mode: u32,
    },
    /// `openat(2)`.
    Openat {
        dirfd: i32,
        pathname: u64,
        flags: i32,
        mode: u32,
    },
    /// `stat(2)` (i386 `stat64` too).
    Stat {
        pathname: u64,
        statbuf: u64,
        layout: StatLayout,
    },
    /// `lstat(2)` (i386 `lstat64` too).
    Lstat {
        pathname: u64,
        statbuf: u64,
        layout: StatLayout,
    },
    /// `fstatat(2)`: x86_64 `newfstatat`, i386 `fstatat64`.
    Fstatat {
        dirfd: i32,
        pathname: u64,
        statbuf: u64,
        flags: i32,
        layout: StatLayout,
    },
    /// `statx(2)`.
    Statx {
        dirfd: i32,
        pathname: u64,
        flags: i32,
        mask: u32,
        statxbuf: u64,
    },
    /// `access(2)`.
    Access { pathname: u64, mode: i32 },
    /// `faccessat(2)` (`flags` 0) and `faccessat2`.
    Faccessat {
        dirfd: i32,
        pathname: u64,
        mode: i32,
        flags: i32,
    },
    /// `readlink(2)`.
    Readlink {
        pathname: u64,
        buf: u64,
        bufsiz: u64,
    },
    /// `readlinkat(2)`.
    Readlinkat {
        dirfd: i32,
        pathname: u64,
        buf: u64,
        bufsiz: u64,
    },
    /// `mkdir(2)`.
    Mkdir { pathname: u64, mode: u32 },
    /// `mkdirat(2)`.
    Mkdirat {
        dirfd: i32,
        pathname: u64,
        mode: u32,
    },
    /// `unlink(2)`.
    Unlink { pathname: u64 },
    /// `unlinkat(2)`.
    Unlinkat {
        dirfd: i32,
        pathname: u64,
        flags: i32,
    },
    /// `rename(2)`.
    Rename { oldpath: u64, newpath: u64 },
    /// `renameat(2)` (`flags` 0) and `renameat2`.
    Renameat {
        olddirfd: i32,
        oldpath: u64,
        newdirfd: i32,
        newpath: u64,
        flags: u32,
    },
    /// `chdir(2)`.
    Chdir { path: u64 },
    /// `getcwd(2)`.
    Getcwd { buf: u64, size: u64 },

    // ---- memory: mm.rs ----
    /// `brk(2)` (the kernel call: returns the new or unchanged break).
    Brk { addr: u64 },
    /// `mmap(2)`; `offset` in bytes (i386 `mmap2` page offsets are converted).
    Mmap {
        addr: u64,
        length: u64,
        prot: u64,
        flags: u64,
        fd: i32,
        offset: u64,
    },
    /// i386 old `mmap` (90): `args` points to six 32-bit words
    /// (`struct mmap_arg_struct`) holding `mmap`'s arguments.
    OldMmap { args: u64 },
    /// `munmap(2)`.
    Munmap { addr: u64, length: u64 },
    /// `mprotect(2)`.
    Mprotect { addr: u64, len: u64, prot: u64 },
    /// `mremap(2)`.
    Mremap {
        old_address: u64,
        old_size: u64,
        new_size: u64,
        flags: u64,
        new_address: u64,
    },
    /// `madvise(2)`.
    Madvise { addr: u64, length: u64, advice: i32 },

    // ---- process: process.rs ----
    /// `exit(2)`: ends the calling thread (the whole job: one task).
    Exit { status: i32 },
    /// `exit_group(2)`.
    ExitGroup { status: i32 },
    /// `arch_prctl(2)` (`ARCH_SET_FS` and friends).
    ArchPrctl { code: i32, addr: u64 },
    /// `set_thread_area(2)`; `u_info` points to a `struct user_desc`.
    SetThreadArea { u_info: u64 },
    /// `set_tid_address(2)`; returns the thread id.
    SetTidAddress { tidptr: u64 },
    /// `set_robust_list(2)`.
    SetRobustList { head: u64, len: u64 },
    /// `rseq(2)`.
    Rseq {
        rseq: u64,
        rseq_len: u32,
        flags: i32,
        sig: u32,
    },
    /// `prctl(2)`.
    Prctl {
        option: i32,
        arg2: u64,
        arg3: u64,
        arg4: u64,
        arg5: u64,
    },
    /// `uname(2)`; `buf` points to a `struct new_utsname` (6 x 65 bytes).
    Uname { buf: u64 },
    /// `getpid(2)`.
    Getpid,
    /// `getppid(2)`.
    Getppid,
    /// `umask(2)`: returns the previous mask (the node keeps it; `hostd`
    /// creates files with the mode the program passes, its own umask
    /// applied).
    Umask { mask: u32 },
    /// `gettid(2)`.
    Gettid,
    /// `getuid(2)`, `geteuid`, `getgid`, `getegid`; `legacy16` for i386's
    /// 16-bit calls (24, 49, 47, 50), which must clamp ids above 65535 to 65534
    /// (`overflowuid`); the `*32` calls and x86_64's are 32-bit.
    GetId { which: IdKind, legacy16: bool },
    /// `getrlimit(2)`.
    Getrlimit {
        resource: u32,
        rlim: u64,
        layout: RlimitLayout,
    },
    /// `prlimit64(2)`.
    Prlimit64 {
        pid: i32,
        resource: u32,
        new_limit: u64,
        old_limit: u64,
    },
    /// `getrandom(2)`.
    Getrandom { buf: u64, buflen: u64, flags: u32 },
    /// `sched_yield(2)`.
    SchedYield,
    /// `kill(2)`.
    Kill { pid: i32, sig: i32 },
    /// `tkill(2)`.
    Tkill { tid: i32, sig: i32 },
    /// `tgkill(2)`.
    Tgkill { tgid: i32, tid: i32, sig: i32 },
    /// `futex(2)`; `timeout` is a pointer (or `val2` for some ops) whose
    /// `timespec` has `time`'s layout.
    Futex {
        uaddr: u64,
        futex_op: i32,
        val: u32,
        timeout: u64,
        uaddr2: u64,
        val3: u32,
        time: TimeLayout,
    },

    // ---- time: time.rs ----
    /// `clock_gettime(2)`.
    ClockGettime {
        clockid: i32,
        tp: u64,
        time: TimeLayout,
    },
    /// `clock_getres(2)`.
    ClockGetres {
        clockid: i32,
        res: u64,
        time: TimeLayout,
    },
    /// `gettimeofday(2)`.
    Gettimeofday { tv: u64, tz: u64, time: TimeLayout },
    /// `time(2)`; `tloc` may be 0.
    Time { tloc: u64, time: TimeLayout },
    /// `nanosleep(2)`.
    Nanosleep {
        req: u64,
        rem: u64,
        time: TimeLayout,
    },
    /// `clock_nanosleep(2)`.
    ClockNanosleep {
        clockid: i32,
        flags: i32,
        req: u64,
        rem: u64,
        time: TimeLayout,
    },

    // ---- signals: signal.rs ----
    /// `rt_sigaction(2)`; `act`/`oldact` point to the ABI's kernel `struct
    /// sigaction`.
    RtSigaction {
        signum: i32,
        act: u64,
        oldact: u64,
        sigsetsize: u64,
    },
    /// `rt_sigprocmask(2)`.
    RtSigprocmask {
        how: i32,
        set: u64,
        oldset: u64,
        sigsetsize: u64,
    },
    /// `sigaltstack(2)`.
    Sigaltstack { ss: u64, old_ss: u64 },

    /// A number this table does not serve: answer `-ENOSYS`.
    Unknown(u64),
}

/// Where a call is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// By the node's App-Program Manager.
    Node,
    /// Forwarded to the submitting `hostd`, which performs it inside the job's
    /// directory (paths confined by [`crate::path`]).
    Host,
    /// Depends on what the descriptor is ([`crate::fd::FdTable::route`]): the
    /// node for stdio and pipes, the host for host files.
    ByFd(i32),
    /// Not implemented: answer `-ENOSYS`.
    NoSys,
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

/// Decodes a trapped system call: `nr` from `eax`/`rax`, `args` the six argument
/// registers in ABI order. Never fails: numbers this table does not serve give
/// [`Syscall::Unknown`] with `nr`.
pub fn decode(abi: Abi, nr: u64, args: [u64; 6]) -> Syscall {
    let a = Args::new(abi, args);
    let Some(call) = table::lookup(abi, nr) else {
        return Syscall::Unknown(nr);
    };
    io::decode(call, &a)
        .or_else(|| fs::decode(call, &a))
        .or_else(|| mm::decode(call, &a))
        .or_else(|| process::decode(call, &a))
        .or_else(|| time::decode(call, &a))
        .or_else(|| signal::decode(call, &a))
        .unwrap_or(Syscall::Unknown(nr))
}

impl Syscall {
    /// Where the call is served (see the lists in DESIGN.md "App-Program
    /// Manager" and issue 5): memory, time, identity, signals, descriptor
    /// bookkeeping (`dup*`, `pipe*`, `fcntl`, `ioctl`), `getcwd` and `readlink`
    /// on the node; path-based file calls and `sendfile` on the host; data calls
    /// on a descriptor (`read`, `write`, `close`, `lseek`, `fstat`, ...) by what
    /// the descriptor is; unknown calls `NoSys`.
    pub fn route(&self) -> Route {
        use Syscall::*;
        match *self {
            Read { fd, .. }
            | Write { fd, .. }
            | Readv { fd, .. }
            | Writev { fd, .. }
            | Pread64 { fd, .. }
            | Pwrite64 { fd, .. }
            | Close { fd }
            | Lseek { fd, .. }
            | Llseek { fd, .. }
            | Getdents64 { fd, .. }
            | Ftruncate { fd, .. }
            | Fstat { fd, .. } => Route::ByFd(fd),
            Sendfile { .. }
            | Open { .. }
            | Openat { .. }
            | Stat { .. }
            | Lstat { .. }
            | Fstatat { .. }
            | Statx { .. }
            | Access { .. }
            | Faccessat { .. }
            | Readlinkat { .. }
            | Mkdir { .. }
            | Mkdirat { .. }
            | Unlink { .. }
            | Unlinkat { .. }
            | Rename { .. }
            | Renameat { .. }
            | Chdir { .. } => Route::Host,
            Unknown(_) => Route::NoSys,
            Ioctl { .. }
            | Fcntl { .. }
            | Dup { .. }
            | Dup2 { .. }
            | Dup3 { .. }
            | Pipe { .. }
            | Readlink { .. }
            | Getcwd { .. }
            | Brk { .. }
            | Mmap { .. }
            | OldMmap { .. }
            | Munmap { .. }
            | Mprotect { .. }
            | Mremap { .. }
            | Madvise { .. }
            | Exit { .. }
            | ExitGroup { .. }
            | ArchPrctl { .. }
            | SetThreadArea { .. }
            | SetTidAddress { .. }
            | SetRobustList { .. }
            | Rseq { .. }
            | Prctl { .. }
            | Uname { .. }
            | Getpid
            | Getppid
            | Umask { .. }
            | Gettid
            | GetId { .. }
            | Getrlimit { .. }
            | Prlimit64 { .. }
            | Getrandom { .. }
            | SchedYield
            | Kill { .. }
            | Tkill { .. }
            | Tgkill { .. }
            | Futex { .. }
            | ClockGettime { .. }
            | ClockGetres { .. }
            | Gettimeofday { .. }
            | Time { .. }
            | Nanosleep { .. }
            | ClockNanosleep { .. }
            | RtSigaction { .. }
            | RtSigprocmask { .. }
            | Sigaltstack { .. } => Route::Node,
        }
    }
}

/// The Linux name of system call `nr` in `abi` (`"read"`, `"_llseek"`), for
/// logs, or `None` for a number neither table knows. Covers every Linux call,
/// not only those [`decode`] serves.
pub fn name(abi: Abi, nr: u64) -> Option<&'static str> {
    let nr = usize::try_from(nr).ok()?;
    match abi {
        Abi::X86_64 => syscalls::x86_64::Sysno::new(nr).map(|s| s.name()),
        Abi::I386 => syscalls::x86::Sysno::new(nr).map(|s| s.name()),
    }
}

#[cfg(test)]
mod tests;

/// The family of handlers that serves a call (`crate::process`'s files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Descriptors: `crate::process::io`.
    Io,
    /// Paths: `crate::process::fs`.
    Fs,
    /// Memory, process, time and signals: `crate::process::misc`.
    Other,
}

impl Syscall {
    /// Which family serves this call.
    pub fn family(&self) -> Family {
        match self {
            Syscall::Read { .. }
            | Syscall::Write { .. }
            | Syscall::Readv { .. }
            | Syscall::Writev { .. }
            | Syscall::Pread64 { .. }
            | Syscall::Pwrite64 { .. }
            | Syscall::Close { .. }
            | Syscall::Lseek { .. }
            | Syscall::Llseek { .. }
            | Syscall::Ioctl { .. }
            | Syscall::Fcntl { .. }
            | Syscall::Dup { .. }
            | Syscall::Dup2 { .. }
            | Syscall::Dup3 { .. }
            | Syscall::Pipe { .. }
            | Syscall::Sendfile { .. }
            | Syscall::Getdents64 { .. }
            | Syscall::Ftruncate { .. }
            | Syscall::Fstat { .. } => Family::Io,
            Syscall::Open { .. }
            | Syscall::Openat { .. }
            | Syscall::Stat { .. }
            | Syscall::Lstat { .. }
            | Syscall::Fstatat { .. }
            | Syscall::Statx { .. }
            | Syscall::Access { .. }
            | Syscall::Faccessat { .. }
            | Syscall::Readlink { .. }
            | Syscall::Readlinkat { .. }
            | Syscall::Mkdir { .. }
            | Syscall::Mkdirat { .. }
            | Syscall::Unlink { .. }
            | Syscall::Unlinkat { .. }
            | Syscall::Rename { .. }
            | Syscall::Renameat { .. }
            | Syscall::Chdir { .. }
            | Syscall::Getcwd { .. } => Family::Fs,
            _ => Family::Other,
        }
    }
}
