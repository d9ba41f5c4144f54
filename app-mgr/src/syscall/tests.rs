//! Tests of the system-call table, the decoder and the routing.

use super::*;
use crate::errno::{Errno, encode_return};
use core::str::FromStr;
use syscalls::x86::Sysno as I386;
use syscalls::x86_64::Sysno as X64;

fn d64(nr: X64, args: [u64; 6]) -> Syscall {
    decode(Abi::X86_64, nr as u64, args)
}

fn d32(nr: I386, args: [u64; 6]) -> Syscall {
    decode(Abi::I386, nr as u64, args)
}

/// A register holding the 32-bit value `v` with garbage in the upper half, as a
/// 64-bit kernel may see after a 32-bit program ran.
fn dirty(v: u32) -> u64 {
    0xdead_beef_0000_0000 | u64::from(v)
}

#[test]
fn read_write_both_abis() {
    let w = d64(X64::write, [1, 0x7fff_0000_1000, 5, 0, 0, 0]);
    assert_eq!(
        w,
        Syscall::Write {
            fd: 1,
            buf: 0x7fff_0000_1000,
            count: 5
        }
    );
    assert_eq!(w.route(), Route::ByFd(1));
    let w = d32(
        I386::write,
        [dirty(2), dirty(0x0804_a000), dirty(12), 0, 0, 0],
    );
    assert_eq!(
        w,
        Syscall::Write {
            fd: 2,
            buf: 0x0804_a000,
            count: 12
        }
    );
    assert_eq!(
        d32(I386::read, [0, 0xffff_d000, 0xffff_ffff, 0, 0, 0]),
        Syscall::Read {
            fd: 0,
            buf: 0xffff_d000,
            count: 0xffff_ffff
        }
    );
    assert_eq!(d64(X64::close, [3, 0, 0, 0, 0, 0]).route(), Route::ByFd(3));
}

#[test]
fn signed_arguments_are_sign_extended() {
    // openat(AT_FDCWD, ...) with AT_FDCWD = -100.
    let at_fdcwd = linux_raw_sys::general::AT_FDCWD;
    let o = d64(
        X64::openat,
        [at_fdcwd as i64 as u64, 0x1000, 0o100, 0o644, 0, 0],
    );
    assert_eq!(
        o,
        Syscall::Openat {
            dirfd: -100,
            pathname: 0x1000,
            flags: 0o100,
            mode: 0o644
        }
    );
    assert_eq!(o.route(), Route::Host);
    let o = d32(I386::openat, [at_fdcwd as u32 as u64, 0x1000, 0, 0, 0, 0]);
    assert!(matches!(o, Syscall::Openat { dirfd: -100, .. }));
    // lseek(fd, -16, SEEK_END).
    assert_eq!(
        d32(I386::lseek, [3, 0xffff_fff0, 2, 0, 0, 0]),
        Syscall::Lseek {
            fd: 3,
            offset: -16,
            whence: 2
        }
    );
    assert_eq!(
        d64(X64::lseek, [3, (-16i64) as u64, 2, 0, 0, 0]),
        Syscall::Lseek {
            fd: 3,
            offset: -16,
            whence: 2
        }
    );
    // An x86_64 int argument uses the low 32 bits only.
    assert_eq!(
        d64(X64::dup, [0xffff_ffff_0000_0004, 0, 0, 0, 0, 0]),
        Syscall::Dup { oldfd: 4 }
    );
}

#[test]
fn i386_64_bit_values_in_register_pairs() {
    // _llseek(fd, offset_high, offset_low, result, whence).
    assert_eq!(
        d32(I386::_llseek, [3, 0x1, 0x8000_0000, 0xffff_c000, 0, 0]),
        Syscall::Llseek {
            fd: 3,
            offset: 0x1_8000_0000,
            result: 0xffff_c000,
            whence: 0
        }
    );
    // pread64(fd, buf, count, pos_lo, pos_hi).
    assert_eq!(
        d32(I386::pread64, [3, 0x1000, 10, 0x2345_6789, 0x1, 0]),
        Syscall::Pread64 {
            fd: 3,
            buf: 0x1000,
            count: 10,
            offset: 0x1_2345_6789
        }
    );
    assert_eq!(
        d64(X64::pwrite64, [3, 0x1000, 10, 0x1_2345_6789, 0, 0]),
        Syscall::Pwrite64 {
            fd: 3,
            buf: 0x1000,
            count: 10,
            offset: 0x1_2345_6789
        }
    );
    // ftruncate64(fd, lo, hi) and ftruncate(fd, off_t).
    assert_eq!(
        d32(I386::ftruncate64, [3, 0, 2, 0, 0, 0]),
        Syscall::Ftruncate {
            fd: 3,
            length: 2 << 32
        }
    );
    assert_eq!(
        d32(I386::ftruncate, [3, 0xffff_ffff, 0, 0, 0, 0]),
        Syscall::Ftruncate { fd: 3, length: -1 }
    );
}

#[test]
fn memory_calls() {
    // mmap2 takes its offset in 4096-byte units.
    assert_eq!(
        d32(I386::mmap2, [0, 0x2000, 3, 0x22, 0xffff_ffff, 0x10]),
        Syscall::Mmap {
            addr: 0,
            length: 0x2000,
            prot: 3,
            flags: 0x22,
            fd: -1,
            offset: 0x10000
        }
    );
    assert_eq!(
        d64(X64::mmap, [0, 0x2000, 3, 0x22, u64::MAX, 0x10000]),
        Syscall::Mmap {
            addr: 0,
            length: 0x2000,
            prot: 3,
            flags: 0x22,
            fd: -1,
            offset: 0x10000
        }
    );
    assert_eq!(
        d32(I386::mmap, [0xffff_c000, 0, 0, 0, 0, 0]),
        Syscall::OldMmap { args: 0xffff_c000 }
    );
    assert_eq!(d64(X64::brk, [0, 0, 0, 0, 0, 0]), Syscall::Brk { addr: 0 });
    assert_eq!(
        d32(I386::brk, [dirty(0x0805_0000), 0, 0, 0, 0, 0]),
        Syscall::Brk { addr: 0x0805_0000 }
    );
    assert_eq!(
        d64(X64::mremap, [0x1000, 0x2000, 0x3000, 1, 0, 0]),
        Syscall::Mremap {
            old_address: 0x1000,
            old_size: 0x2000,
            new_size: 0x3000,
            flags: 1,
            new_address: 0
        }
    );
    assert_eq!(d64(X64::mmap, [0; 6]).route(), Route::Node);
}

#[test]
fn layouts_follow_the_call() {
    let tp = [1, 0x1000, 0, 0, 0, 0];
    assert!(matches!(
        d32(I386::clock_gettime, tp),
        Syscall::ClockGettime {
            time: TimeLayout::Time32,
            clockid: 1,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::clock_gettime64, tp),
        Syscall::ClockGettime {
            time: TimeLayout::Time64,
            ..
        }
    ));
    assert!(matches!(
        d64(X64::clock_gettime, tp),
        Syscall::ClockGettime {
            time: TimeLayout::Time64,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::futex_time64, tp),
        Syscall::Futex {
            time: TimeLayout::Time64,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::futex, tp),
        Syscall::Futex {
            time: TimeLayout::Time32,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::clock_nanosleep_time64, tp),
        Syscall::ClockNanosleep {
            time: TimeLayout::Time64,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::gettimeofday, tp),
        Syscall::Gettimeofday {
            time: TimeLayout::Time32,
            ..
        }
    ));
    assert!(matches!(
        d64(X64::time, tp),
        Syscall::Time {
            time: TimeLayout::Time64,
            tloc: 1
        }
    ));

    let st = [0x1000, 0x2000, 0, 0, 0, 0];
    assert!(matches!(
        d64(X64::stat, st),
        Syscall::Stat {
            layout: StatLayout::X86_64,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::stat, st),
        Syscall::Stat {
            layout: StatLayout::I386Stat,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::stat64, st),
        Syscall::Stat {
            layout: StatLayout::I386Stat64,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::lstat64, st),
        Syscall::Lstat {
            layout: StatLayout::I386Stat64,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::fstat64, st),
        Syscall::Fstat {
            layout: StatLayout::I386Stat64,
            fd: 0x1000,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::fstat, st),
        Syscall::Fstat {
            layout: StatLayout::I386Stat,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::fstatat64, st),
        Syscall::Fstatat {
            layout: StatLayout::I386Stat64,
            ..
        }
    ));
    assert!(matches!(
        d64(X64::newfstatat, st),
        Syscall::Fstatat {
            layout: StatLayout::X86_64,
            ..
        }
    ));

    assert!(matches!(
        d64(X64::getrlimit, st),
        Syscall::Getrlimit {
            layout: RlimitLayout::Rlimit64,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::ugetrlimit, st),
        Syscall::Getrlimit {
            layout: RlimitLayout::Rlimit32,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::getrlimit, st),
        Syscall::Getrlimit {
            layout: RlimitLayout::Rlimit32Clamped,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::sendfile, st),
        Syscall::Sendfile {
            offset_width: OffsetWidth::Off32,
            ..
        }
    ));
    assert!(matches!(
        d32(I386::sendfile64, st),
        Syscall::Sendfile {
            offset_width: OffsetWidth::Off64,
            ..
        }
    ));
    assert!(matches!(
        d64(X64::sendfile, st),
        Syscall::Sendfile {
            offset_width: OffsetWidth::Off64,
            ..
        }
    ));

    let id = |s| match s {
        Syscall::GetId { which, legacy16 } => (which, legacy16),
        other => panic!("{other:?}"),
    };
    assert_eq!(id(d32(I386::getuid, [0; 6])), (IdKind::Uid, true));
    assert_eq!(id(d32(I386::getuid32, [0; 6])), (IdKind::Uid, false));
    assert_eq!(id(d32(I386::getegid, [0; 6])), (IdKind::Egid, true));
    assert_eq!(id(d32(I386::getegid32, [0; 6])), (IdKind::Egid, false));
    assert_eq!(id(d64(X64::geteuid, [0; 6])), (IdKind::Euid, false));
    assert_eq!(id(d64(X64::getgid, [0; 6])), (IdKind::Gid, false));
}

#[test]
fn variants_with_optional_flags() {
    assert_eq!(
        d64(X64::pipe, [0x1000, 0x80000, 0, 0, 0, 0]),
        Syscall::Pipe {
            fds: 0x1000,
            flags: 0
        }
    );
    assert_eq!(
        d64(X64::pipe2, [0x1000, 0x80000, 0, 0, 0, 0]),
        Syscall::Pipe {
            fds: 0x1000,
            flags: 0x80000
        }
    );
    assert!(matches!(
        d64(X64::faccessat, [1, 2, 3, 4, 0, 0]),
        Syscall::Faccessat { flags: 0, .. }
    ));
    assert!(matches!(
        d64(X64::faccessat2, [1, 2, 3, 4, 0, 0]),
        Syscall::Faccessat { flags: 4, .. }
    ));
    assert!(matches!(
        d64(X64::renameat, [1, 2, 3, 4, 5, 0]),
        Syscall::Renameat { flags: 0, .. }
    ));
    assert!(matches!(
        d64(X64::renameat2, [1, 2, 3, 4, 5, 0]),
        Syscall::Renameat { flags: 5, .. }
    ));
    assert!(matches!(
        d32(I386::fcntl64, [1, 2, 3, 0, 0, 0]),
        Syscall::Fcntl {
            fd: 1,
            cmd: 2,
            arg: 3
        }
    ));
}

#[test]
fn unknown_numbers_become_enosys() {
    for (abi, nr) in [
        (Abi::X86_64, X64::fork as u64),
        (Abi::X86_64, X64::socket as u64),
        (Abi::X86_64, 9999),
        (Abi::X86_64, u64::MAX),
        (Abi::X86_64, 0x4000_0000 | 1), // x32 write
        (Abi::I386, I386::fork as u64),
        (Abi::I386, I386::socketcall as u64),
        (Abi::I386, 0x1_0000_0004), // not a 32-bit number
        (Abi::I386, 5000),
    ] {
        let s = decode(abi, nr, [0; 6]);
        assert_eq!(s, Syscall::Unknown(nr));
        assert_eq!(s.route(), Route::NoSys);
        assert_eq!(
            encode_return(abi, Err(Errno::ENOSYS)) as i64 & 0xffff_ffff,
            0xffff_ffda
        );
    }
}

#[test]
fn every_table_entry_decodes() {
    let mut served = [0usize; 2];
    for (i, abi) in [Abi::I386, Abi::X86_64].into_iter().enumerate() {
        for nr in 0..1024 {
            if table::lookup(abi, nr).is_some() {
                served[i] += 1;
                let s = decode(abi, nr, [1, 2, 3, 4, 5, 6]);
                assert_ne!(
                    s,
                    Syscall::Unknown(nr),
                    "{abi} {nr} ({:?}) has no decoder",
                    name(abi, nr)
                );
                assert_ne!(s.route(), Route::NoSys);
            }
        }
    }
    assert!(served[0] > 90 && served[1] > 75, "{served:?}");
}

/// The lists of issue 5: node-served and host-forwarded calls, by Linux name.
const NODE: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "exit",
    "exit_group",
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "madvise",
    "arch_prctl",
    "set_thread_area",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prctl",
    "uname",
    "getpid",
    "getppid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "clock_gettime",
    "gettimeofday",
    "time",
    "nanosleep",
    "clock_nanosleep",
    "getrandom",
    "sched_yield",
    "rt_sigaction",
    "rt_sigprocmask",
    "sigaltstack",
    "prlimit64",
    "getrlimit",
    "ioctl",
    "fcntl",
    "dup",
    "dup2",
    "dup3",
    "pipe",
    "pipe2",
    "getcwd",
    "futex",
    "readlink",
];
const NODE_I386_ONLY: &[&str] = &[
    "mmap2",
    "getuid32",
    "geteuid32",
    "getgid32",
    "getegid32",
    "ugetrlimit",
    "fcntl64",
];
const HOST: &[&str] = &[
    "open",
    "openat",
    "close",
    "read",
    "write",
    "pread64",
    "pwrite64",
    "lseek",
    "sendfile",
    "stat",
    "lstat",
    "fstat",
    "statx",
    "access",
    "faccessat",
    "readlinkat",
    "getdents64",
    "mkdir",
    "unlink",
    "rename",
    "chdir",
    "ftruncate",
];
const HOST_I386_ONLY: &[&str] = &["_llseek", "stat64", "lstat64", "fstat64", "fstatat64"];
const HOST_X86_64_ONLY: &[&str] = &["newfstatat"];

fn route_of(abi: Abi, name: &str) -> Route {
    let nr = match abi {
        Abi::X86_64 => X64::from_str(name).unwrap_or_else(|_| panic!("{name}")) as u64,
        Abi::I386 => I386::from_str(name).unwrap_or_else(|_| panic!("{name}")) as u64,
    };
    decode(abi, nr, [3, 0x1000, 0x10, 0, 0, 0]).route()
}

#[test]
fn routing_matches_issue_5() {
    // read/write/close/lseek/fstat/... depend on the descriptor (fd 3 here).
    let by_fd = [
        "read",
        "write",
        "readv",
        "writev",
        "close",
        "pread64",
        "pwrite64",
        "lseek",
        "fstat",
        "getdents64",
        "ftruncate",
    ];
    for abi in [Abi::I386, Abi::X86_64] {
        let only: &[&str] = if abi == Abi::I386 {
            NODE_I386_ONLY
        } else {
            &[]
        };
        for &n in NODE.iter().chain(only) {
            let r = route_of(abi, n);
            let want = if by_fd.contains(&n) {
                Route::ByFd(3)
            } else {
                Route::Node
            };
            assert_eq!(r, want, "{abi} {n}");
        }
        let only: &[&str] = if abi == Abi::I386 {
            HOST_I386_ONLY
        } else {
            HOST_X86_64_ONLY
        };
        for &n in HOST.iter().chain(only) {
            let r = route_of(abi, n);
            let want = if by_fd.contains(&n) || n == "_llseek" || n == "fstat64" {
                Route::ByFd(3)
            } else {
                Route::Host
            };
            assert_eq!(r, want, "{abi} {n}");
        }
    }
}

#[test]
fn numbers_agree_with_linux_raw_sys() {
    // linux-raw-sys has the numbers of the build target only; on an x86_64
    // host, cross-check the x86_64 table of the `syscalls` crate with it.
    #[cfg(target_arch = "x86_64")]
    {
        use linux_raw_sys::general as g;
        let pairs: &[(X64, u32)] = &[
            (X64::read, g::__NR_read),
            (X64::write, g::__NR_write),
            (X64::open, g::__NR_open),
            (X64::close, g::__NR_close),
            (X64::mmap, g::__NR_mmap),
            (X64::brk, g::__NR_brk),
            (X64::arch_prctl, g::__NR_arch_prctl),
            (X64::exit_group, g::__NR_exit_group),
            (X64::newfstatat, g::__NR_newfstatat),
            (X64::getdents64, g::__NR_getdents64),
            (X64::rseq, g::__NR_rseq),
            (X64::statx, g::__NR_statx),
            (X64::clock_nanosleep, g::__NR_clock_nanosleep),
            (X64::faccessat2, g::__NR_faccessat2),
        ];
        for &(s, n) in pairs {
            assert_eq!(s as u32, n, "{}", s.name());
        }
    }
    // Well-known i386 numbers (arch/x86/entry/syscalls/syscall_32.tbl).
    assert_eq!(I386::exit as u32, 1);
    assert_eq!(I386::write as u32, 4);
    assert_eq!(I386::_llseek as u32, 140);
    assert_eq!(I386::mmap2 as u32, 192);
    assert_eq!(I386::set_thread_area as u32, 243);
    assert_eq!(I386::exit_group as u32, 252);
}

#[test]
fn names() {
    assert_eq!(name(Abi::X86_64, 0), Some("read"));
    assert_eq!(name(Abi::I386, 140), Some("_llseek"));
    assert_eq!(name(Abi::I386, 2), Some("fork"));
    assert_eq!(name(Abi::X86_64, 100_000), None);
    assert_eq!(name(Abi::X86_64, u64::MAX), None);
}

#[test]
fn args_widths() {
    let a = Args::new(Abi::I386, [dirty(0xffff_fffe), 0, 0, 0, 0, 0]);
    assert_eq!(a.word(0), 0xffff_fffe);
    assert_eq!(a.int(0), -2);
    assert_eq!(a.uint(0), 0xffff_fffe);
    assert_eq!(a.long(0), -2);
    let a = Args::new(Abi::X86_64, [0xffff_ffff_ffff_fffe, 0, 0, 0, 0, 0]);
    assert_eq!(a.word(0), 0xffff_ffff_ffff_fffe);
    assert_eq!(a.long(0), -2);
    assert_eq!(a.int(0), -2);
    assert_eq!(a.abi(), Abi::X86_64);
    assert_eq!(a.native_time(), TimeLayout::Time64);
}

#[test]
fn rmdir_is_unlinkat_with_at_removedir() {
    let want = Syscall::Unlinkat {
        dirfd: linux_raw_sys::general::AT_FDCWD,
        pathname: 0x1234,
        flags: linux_raw_sys::general::AT_REMOVEDIR as i32,
    };
    assert_eq!(decode(Abi::X86_64, 84, [0x1234, 0, 0, 0, 0, 0]), want);
    assert_eq!(decode(Abi::I386, 40, [0x1234, 0, 0, 0, 0, 0]), want);
    assert_eq!(want.route(), Route::Host);
}

#[test]
fn umask_is_served_on_the_node() {
    let want = Syscall::Umask { mask: 0o077 };
    assert_eq!(decode(Abi::X86_64, 95, [0o077, 0, 0, 0, 0, 0]), want);
    assert_eq!(decode(Abi::I386, 60, [0o077, 0, 0, 0, 0, 0]), want);
    assert_eq!(want.route(), Route::Node);
}
