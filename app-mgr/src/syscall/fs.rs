//! Path calls, forwarded to the submitting `hostd` (except `readlink` and
//! `getcwd`, served on the node): `open`, `openat`, `stat` family, `statx`,
//! `access`, `faccessat`, `readlink`, `readlinkat`, `mkdir`, `unlink`, `rename`
//! and their `*at` forms, `chdir`, `getcwd`.

use super::io::native_stat;
use super::table::Call;
use super::{Args, StatLayout, Syscall};

/// Decodes the path family; `None` for calls of other families.
pub(super) fn decode(call: Call, a: &Args) -> Option<Syscall> {
    let abi = a.abi();
    Some(match call {
        Call::Open => Syscall::Open {
            pathname: a.word(0),
            flags: a.int(1),
            mode: a.uint(2),
        },
        Call::Openat => Syscall::Openat {
            dirfd: a.int(0),
            pathname: a.word(1),
            flags: a.int(2),
            mode: a.uint(3),
        },
        Call::Stat => Syscall::Stat {
            pathname: a.word(0),
            statbuf: a.word(1),
            layout: native_stat(abi),
        },
        Call::Lstat => Syscall::Lstat {
            pathname: a.word(0),
            statbuf: a.word(1),
            layout: native_stat(abi),
        },
        Call::Stat64 => Syscall::Stat {
            pathname: a.word(0),
            statbuf: a.word(1),
            layout: StatLayout::I386Stat64,
        },
        Call::Lstat64 => Syscall::Lstat {
            pathname: a.word(0),
            statbuf: a.word(1),
            layout: StatLayout::I386Stat64,
        },
        Call::Newfstatat | Call::Fstatat64 => Syscall::Fstatat {
            dirfd: a.int(0),
            pathname: a.word(1),
            statbuf: a.word(2),
            flags: a.int(3),
            layout: if call == Call::Newfstatat {
                StatLayout::X86_64
            } else {
                StatLayout::I386Stat64
            },
        },
        Call::Statx => Syscall::Statx {
            dirfd: a.int(0),
            pathname: a.word(1),
            flags: a.int(2),
            mask: a.uint(3),
            statxbuf: a.word(4),
        },
        Call::Access => Syscall::Access {
            pathname: a.word(0),
            mode: a.int(1),
        },
        Call::Faccessat => Syscall::Faccessat {
            dirfd: a.int(0),
            pathname: a.word(1),
            mode: a.int(2),
            flags: 0,
        },
        Call::Faccessat2 => Syscall::Faccessat {
            dirfd: a.int(0),
            pathname: a.word(1),
            mode: a.int(2),
            flags: a.int(3),
        },
        Call::Readlink => Syscall::Readlink {
            pathname: a.word(0),
            buf: a.word(1),
            bufsiz: a.word(2),
        },
        Call::Readlinkat => Syscall::Readlinkat {
            dirfd: a.int(0),
            pathname: a.word(1),
            buf: a.word(2),
            bufsiz: a.word(3),
        },
        Call::Mkdir => Syscall::Mkdir {
            pathname: a.word(0),
            mode: a.uint(1),
        },
        Call::Mkdirat => Syscall::Mkdirat {
            dirfd: a.int(0),
            pathname: a.word(1),
            mode: a.uint(2),
        },
        Call::Unlink => Syscall::Unlink {
            pathname: a.word(0),
        },
        Call::Unlinkat => Syscall::Unlinkat {
            dirfd: a.int(0),
            pathname: a.word(1),
            flags: a.int(2),
        },
        Call::Rmdir => Syscall::Unlinkat {
            dirfd: linux_raw_sys::general::AT_FDCWD,
            pathname: a.word(0),
            flags: linux_raw_sys::general::AT_REMOVEDIR as i32,
        },
        Call::Rename => Syscall::Rename {
            oldpath: a.word(0),
            newpath: a.word(1),
        },
        Call::Renameat | Call::Renameat2 => Syscall::Renameat {
            olddirfd: a.int(0),
            oldpath: a.word(1),
            newdirfd: a.int(2),
            newpath: a.word(3),
            flags: if call == Call::Renameat2 {
                a.uint(4)
            } else {
                0
            },
        },
        Call::Chdir => Syscall::Chdir { path: a.word(0) },
        Call::Getcwd => Syscall::Getcwd {
            buf: a.word(0),
            size: a.word(1),
        },
        _ => return None,
    })
}
