//! The one Linux system-call table: a row per call SiON serves, with its
//! x86_64 and i386 numbers (from the `syscalls` crate, which mirrors Linux's
//! `arch/x86/entry/syscalls/syscall_64.tbl` and `syscall_32.tbl`), where it
//! is served, and its handler (which decodes its arguments and serves it, in
//! the family file named by the handler's path). Adding a call is one row
//! and one handler.
//!
//! Calls whose argument layout differs between the ABIs keep one row per
//! layout (`fstat` and i386 `fstat64`, `mmap` and `mmap2`, `getuid` and the
//! 16-bit i386 `getuid`, `clock_gettime` and `clock_gettime64`, ...).

use syscalls::x86::Sysno as I386;
use syscalls::x86_64::Sysno as X64;

use super::{Args, Served, exec, fs, io, lifecycle, mm, poll, process, signal, time, timer};
use crate::Abi;
use crate::process::{CallResult, Process};

/// A handler: decodes the arguments and serves the call.
pub type Handler = fn(&mut Process<'_>, &Args) -> CallResult;

/// One row of the table.
#[derive(Clone, Copy)]
pub struct Row {
    /// The x86_64 number (`syscall`), if the call exists there.
    pub x86_64: Option<X64>,
    /// The i386 number (`int 0x80`), if the call exists there.
    pub i386: Option<I386>,
    /// Where it is served.
    pub served: Served,
    /// Its handler.
    pub handler: Handler,
}

impl Row {
    /// The call's Linux name (the x86_64 one where both exist).
    pub fn name(&self) -> &'static str {
        match (self.x86_64, self.i386) {
            (Some(s), _) => s.name(),
            (None, Some(s)) => s.name(),
            (None, None) => "?",
        }
    }
}

use Served::{ByFd, Node, Submitter};

/// A row for both ABIs.
const fn both(x: X64, i: I386, served: Served, handler: Handler) -> Row {
    Row {
        x86_64: Some(x),
        i386: Some(i),
        served,
        handler,
    }
}

/// A row for x86_64 only.
const fn x64(x: X64, served: Served, handler: Handler) -> Row {
    Row {
        x86_64: Some(x),
        i386: None,
        served,
        handler,
    }
}

/// A row for i386 only.
const fn i386(i: I386, served: Served, handler: Handler) -> Row {
    Row {
        x86_64: None,
        i386: Some(i),
        served,
        handler,
    }
}

/// Every call SiON serves. A number found in neither ABI's column is
/// answered with `-ENOSYS`.
#[rustfmt::skip]
pub static ROWS: &[Row] = &[
    // ---- descriptors: io.rs ----
    both(X64::read, I386::read, ByFd, io::read),
    both(X64::write, I386::write, ByFd, io::write),
    both(X64::readv, I386::readv, ByFd, io::readv),
    both(X64::writev, I386::writev, ByFd, io::writev),
    both(X64::pread64, I386::pread64, Submitter, io::pread64),
    both(X64::pwrite64, I386::pwrite64, Submitter, io::pwrite64),
    both(X64::close, I386::close, ByFd, io::close),
    both(X64::lseek, I386::lseek, Submitter, io::lseek),
    i386(I386::_llseek, Submitter, io::llseek),
    both(X64::ioctl, I386::ioctl, Node, io::ioctl),
    both(X64::fcntl, I386::fcntl, Node, io::fcntl),
    i386(I386::fcntl64, Node, io::fcntl),
    both(X64::dup, I386::dup, Node, io::dup),
    both(X64::dup2, I386::dup2, Node, io::dup2),
    both(X64::dup3, I386::dup3, Node, io::dup3),
    both(X64::pipe, I386::pipe, Node, io::pipe),
    both(X64::pipe2, I386::pipe2, Node, io::pipe2),
    both(X64::sendfile, I386::sendfile, Submitter, io::sendfile),
    i386(I386::sendfile64, Submitter, io::sendfile64),
    both(X64::getdents64, I386::getdents64, Submitter, io::getdents64),
    both(X64::ftruncate, I386::ftruncate, Submitter, io::ftruncate),
    both(X64::fsync, I386::fsync, ByFd, io::fsync),
    both(X64::flock, I386::flock, ByFd, io::flock),
    both(X64::fdatasync, I386::fdatasync, ByFd, io::fdatasync),
    both(X64::fadvise64, I386::fadvise64, Node, io::fadvise),
    i386(I386::fadvise64_64, Node, io::fadvise),
    i386(I386::ftruncate64, Submitter, io::ftruncate64),
    both(X64::fstat, I386::fstat, ByFd, io::fstat),
    i386(I386::fstat64, ByFd, io::fstat64),
    // ---- paths: fs.rs ----
    both(X64::open, I386::open, Submitter, fs::open),
    both(X64::openat, I386::openat, Submitter, fs::openat),
    both(X64::stat, I386::stat, Submitter, fs::stat),
    both(X64::lstat, I386::lstat, Submitter, fs::lstat),
    i386(I386::stat64, Submitter, fs::stat64),
    i386(I386::lstat64, Submitter, fs::lstat64),
    x64(X64::newfstatat, Submitter, fs::newfstatat),
    i386(I386::fstatat64, Submitter, fs::fstatat64),
    both(X64::statx, I386::statx, Submitter, fs::statx),
    both(X64::access, I386::access, Submitter, fs::access),
    both(X64::faccessat, I386::faccessat, Submitter, fs::faccessat),
    both(X64::faccessat2, I386::faccessat2, Submitter, fs::faccessat2),
    both(X64::readlink, I386::readlink, Submitter, fs::readlink),
    both(X64::readlinkat, I386::readlinkat, Submitter, fs::readlinkat),
    both(X64::mkdir, I386::mkdir, Submitter, fs::mkdir),
    both(X64::mkdirat, I386::mkdirat, Submitter, fs::mkdirat),
    both(X64::chmod, I386::chmod, Submitter, fs::chmod),
    both(X64::chown, I386::chown32, Node, fs::chown),
    both(X64::lchown, I386::lchown32, Node, fs::chown),
    both(X64::fchown, I386::fchown32, Node, fs::chown),
    both(X64::fchownat, I386::fchownat, Node, fs::fchownat),
    both(X64::fchmodat, I386::fchmodat, Submitter, fs::fchmodat),
    both(X64::fchmod, I386::fchmod, ByFd, fs::fchmod),
    both(X64::link, I386::link, Submitter, fs::link),
    both(X64::linkat, I386::linkat, Submitter, fs::linkat),
    both(X64::symlink, I386::symlink, Submitter, fs::symlink),
    both(X64::symlinkat, I386::symlinkat, Submitter, fs::symlinkat),
    both(X64::utimensat, I386::utimensat, Submitter, fs::utimensat),
    i386(I386::utimensat_time64, Submitter, fs::utimensat_time64),
    both(X64::truncate, I386::truncate, Submitter, fs::truncate),
    i386(I386::truncate64, Submitter, fs::truncate64),
    x64(X64::fallocate, ByFd, fs::fallocate),
    i386(I386::fallocate, ByFd, fs::fallocate_i386),
    both(X64::unlink, I386::unlink, Submitter, fs::unlink),
    both(X64::unlinkat, I386::unlinkat, Submitter, fs::unlinkat),
    both(X64::rmdir, I386::rmdir, Submitter, fs::rmdir),
    both(X64::rename, I386::rename, Submitter, fs::rename),
    both(X64::renameat, I386::renameat, Submitter, fs::renameat),
    both(X64::renameat2, I386::renameat2, Submitter, fs::renameat2),
    both(X64::chdir, I386::chdir, Submitter, fs::chdir),
    both(X64::getcwd, I386::getcwd, Node, fs::getcwd),
    both(X64::fchdir, I386::fchdir, Submitter, fs::fchdir),
    both(X64::statfs, I386::statfs, Submitter, fs::statfs),
    both(X64::fstatfs, I386::fstatfs, ByFd, fs::fstatfs),
    i386(I386::statfs64, Submitter, fs::statfs64),
    i386(I386::fstatfs64, ByFd, fs::fstatfs64),
    // ---- memory: mm.rs ----
    both(X64::brk, I386::brk, Node, mm::brk),
    both(X64::mmap, I386::mmap, Node, mm::mmap),
    i386(I386::mmap2, Node, mm::mmap2),
    both(X64::munmap, I386::munmap, Node, mm::munmap),
    both(X64::mprotect, I386::mprotect, Node, mm::mprotect),
    both(X64::mremap, I386::mremap, Node, mm::mremap),
    both(X64::madvise, I386::madvise, Node, mm::madvise),
    // ---- waiting for descriptors: poll.rs ----
    both(X64::poll, I386::poll, Node, poll::poll),
    both(X64::ppoll, I386::ppoll, Node, poll::ppoll),
    i386(I386::ppoll_time64, Node, poll::ppoll_time64),
    // ---- the job's processes: lifecycle.rs, exec.rs ----
    both(X64::exit, I386::exit, Node, lifecycle::exit),
    both(X64::exit_group, I386::exit_group, Node, lifecycle::exit_group),
    both(X64::fork, I386::fork, Node, lifecycle::fork),
    both(X64::vfork, I386::vfork, Node, lifecycle::vfork),
    both(X64::clone, I386::clone, Node, lifecycle::clone),
    both(X64::clone3, I386::clone3, Node, lifecycle::clone3),
    both(X64::execve, I386::execve, Submitter, exec::execve),
    both(X64::execveat, I386::execveat, Submitter, exec::execveat),
    both(X64::wait4, I386::wait4, Node, lifecycle::wait4),
    i386(I386::waitpid, Node, lifecycle::waitpid),
    both(X64::waitid, I386::waitid, Node, lifecycle::waitid),
    both(X64::kill, I386::kill, Node, lifecycle::kill),
    both(X64::getppid, I386::getppid, Node, lifecycle::getppid),
    both(X64::getpgid, I386::getpgid, Node, lifecycle::getpgid),
    both(X64::getpgrp, I386::getpgrp, Node, lifecycle::getpgrp),
    both(X64::setpgid, I386::setpgid, Node, lifecycle::setpgid),
    both(X64::getsid, I386::getsid, Node, lifecycle::getsid),
    both(X64::setsid, I386::setsid, Node, lifecycle::setsid),
    // ---- process: process.rs ----
    both(X64::arch_prctl, I386::arch_prctl, Node, process::arch_prctl),
    i386(I386::set_thread_area, Node, process::set_thread_area),
    both(X64::set_tid_address, I386::set_tid_address, Node, process::set_tid_address),
    both(X64::set_robust_list, I386::set_robust_list, Node, process::set_robust_list),
    both(X64::rseq, I386::rseq, Node, process::rseq),
    both(X64::prctl, I386::prctl, Node, process::prctl),
    both(X64::uname, I386::uname, Node, process::uname),
    both(X64::getpid, I386::getpid, Node, process::getpid),
    both(X64::gettid, I386::gettid, Node, process::gettid),
    both(X64::umask, I386::umask, Node, process::umask),
    both(X64::getuid, I386::getuid32, Node, process::getuid),
    both(X64::geteuid, I386::geteuid32, Node, process::getuid),
    both(X64::getgid, I386::getgid32, Node, process::getgid),
    both(X64::getegid, I386::getegid32, Node, process::getgid),
    i386(I386::getuid, Node, process::getuid16),
    i386(I386::geteuid, Node, process::getuid16),
    i386(I386::getgid, Node, process::getgid16),
    i386(I386::getegid, Node, process::getgid16),
    both(X64::getrlimit, I386::ugetrlimit, Node, process::getrlimit),
    i386(I386::getrlimit, Node, process::old_getrlimit),
    both(X64::prlimit64, I386::prlimit64, Node, process::prlimit64),
    both(X64::getrusage, I386::getrusage, Node, process::getrusage),
    both(X64::getrandom, I386::getrandom, Node, process::getrandom),
    both(X64::sched_yield, I386::sched_yield, Node, process::sched_yield),
    both(X64::sched_getaffinity, I386::sched_getaffinity, Node, process::sched_getaffinity),
    both(X64::sysinfo, I386::sysinfo, Node, process::sysinfo),
    both(X64::tkill, I386::tkill, Node, process::tkill),
    both(X64::tgkill, I386::tgkill, Node, process::tgkill),
    both(X64::futex, I386::futex, Node, process::futex),
    i386(I386::futex_time64, Node, process::futex_time64),
    // ---- time: time.rs ----
    both(X64::clock_gettime, I386::clock_gettime, Node, time::clock_gettime),
    i386(I386::clock_gettime64, Node, time::clock_gettime64),
    both(X64::clock_getres, I386::clock_getres, Node, time::clock_getres),
    i386(I386::clock_getres_time64, Node, time::clock_getres_time64),
    both(X64::gettimeofday, I386::gettimeofday, Node, time::gettimeofday),
    both(X64::time, I386::time, Node, time::time),
    both(X64::nanosleep, I386::nanosleep, Node, time::nanosleep),
    both(X64::clock_nanosleep, I386::clock_nanosleep, Node, time::clock_nanosleep),
    i386(I386::clock_nanosleep_time64, Node, time::clock_nanosleep_time64),
    // ---- signals: signal.rs ----
    both(X64::rt_sigaction, I386::rt_sigaction, Node, signal::rt_sigaction),
    both(X64::rt_sigprocmask, I386::rt_sigprocmask, Node, signal::rt_sigprocmask),
    both(X64::sigaltstack, I386::sigaltstack, Node, signal::sigaltstack),
    both(X64::rt_sigpending, I386::rt_sigpending, Node, signal::rt_sigpending),
    both(X64::rt_sigsuspend, I386::rt_sigsuspend, Node, signal::rt_sigsuspend),
    both(X64::pause, I386::pause, Node, signal::pause),
    both(X64::alarm, I386::alarm, Node, signal::alarm),
    both(X64::setitimer, I386::setitimer, Node, signal::setitimer),
    both(X64::getitimer, I386::getitimer, Node, signal::getitimer),
    both(X64::rt_sigreturn, I386::rt_sigreturn, Node, signal::rt_sigreturn),
    i386(I386::sigreturn, Node, signal::sigreturn),
    both(X64::timer_create, I386::timer_create, Node, timer::timer_create),
    both(X64::timer_settime, I386::timer_settime, Node, timer::timer_settime),
    i386(I386::timer_settime64, Node, timer::timer_settime64),
    both(X64::timer_gettime, I386::timer_gettime, Node, timer::timer_gettime),
    i386(I386::timer_gettime64, Node, timer::timer_gettime64),
    both(X64::timer_getoverrun, I386::timer_getoverrun, Node, timer::timer_getoverrun),
    both(X64::timer_delete, I386::timer_delete, Node, timer::timer_delete),
    i386(I386::sigaction, Node, signal::old_sigaction),
    i386(I386::signal, Node, signal::signal),
    i386(I386::sigprocmask, Node, signal::old_sigprocmask),
    i386(I386::sigpending, Node, signal::old_sigpending),
    i386(I386::sigsuspend, Node, signal::old_sigsuspend),
];

/// Highest system-call number indexed (both ABIs stay below it).
const MAX_NR: usize = 512;
/// Marks a number without a row in [`INDEX`].
const NONE: u8 = u8::MAX;

/// Row numbers by system-call number, per ABI, built at compile time.
static INDEX: [[u8; MAX_NR]; 2] = build_index();

const fn build_index() -> [[u8; MAX_NR]; 2] {
    let mut index = [[NONE; MAX_NR]; 2];
    assert!(ROWS.len() < NONE as usize, "row numbers fit in a u8");
    let mut i = 0;
    while i < ROWS.len() {
        if let Some(s) = ROWS[i].x86_64 {
            let nr = s as usize;
            assert!(
                nr < MAX_NR && index[0][nr] == NONE,
                "one row per x86_64 number"
            );
            index[0][nr] = i as u8;
        }
        if let Some(s) = ROWS[i].i386 {
            let nr = s as usize;
            assert!(
                nr < MAX_NR && index[1][nr] == NONE,
                "one row per i386 number"
            );
            index[1][nr] = i as u8;
        }
        i += 1;
    }
    index
}

/// The row of number `nr` in `abi`, if SiON serves it.
pub fn lookup(abi: Abi, nr: u64) -> Option<&'static Row> {
    let column = match abi {
        Abi::X86_64 => 0,
        Abi::I386 => 1,
    };
    let i = *INDEX[column].get(usize::try_from(nr).ok()?)?;
    ROWS.get(usize::from(i))
}
