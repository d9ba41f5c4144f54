//! Descriptor calls: `read`, `write`, `readv`, `writev`, `pread64`, `pwrite64`,
//! `close`, `lseek`/`_llseek`, `ioctl`, `fcntl`, `dup*`, `pipe*`, `sendfile`,
//! `getdents64`, `ftruncate`, `fstat`.

use super::table::Call;
use super::{Args, OffsetWidth, StatLayout, Syscall};
use crate::abi::Abi;

/// Decodes the descriptor family; `None` for calls of other families.
pub(super) fn decode(call: Call, a: &Args) -> Option<Syscall> {
    let abi = a.abi();
    Some(match call {
        Call::Read => Syscall::Read {
            fd: a.int(0),
            buf: a.word(1),
            count: a.word(2),
        },
        Call::Write => Syscall::Write {
            fd: a.int(0),
            buf: a.word(1),
            count: a.word(2),
        },
        Call::Readv => Syscall::Readv {
            fd: a.int(0),
            iov: a.word(1),
            iovcnt: a.int(2),
        },
        Call::Writev => Syscall::Writev {
            fd: a.int(0),
            iov: a.word(1),
            iovcnt: a.int(2),
        },
        // i386: pread64(fd, buf, count, pos_lo, pos_hi) (ia32 compat wrapper).
        Call::Pread64 => Syscall::Pread64 {
            fd: a.int(0),
            buf: a.word(1),
            count: a.word(2),
            offset: offset64(a, 3),
        },
        Call::Pwrite64 => Syscall::Pwrite64 {
            fd: a.int(0),
            buf: a.word(1),
            count: a.word(2),
            offset: offset64(a, 3),
        },
        Call::Close => Syscall::Close { fd: a.int(0) },
        Call::Lseek => Syscall::Lseek {
            fd: a.int(0),
            offset: a.long(1),
            whence: a.uint(2),
        },
        // _llseek(fd, offset_high, offset_low, result, whence).
        Call::Llseek => Syscall::Llseek {
            fd: a.int(0),
            offset: a.pair(2, 1),
            result: a.word(3),
            whence: a.uint(4),
        },
        Call::Ioctl => Syscall::Ioctl {
            fd: a.int(0),
            cmd: a.uint(1),
            arg: a.word(2),
        },
        Call::Fcntl => Syscall::Fcntl {
            fd: a.int(0),
            cmd: a.int(1),
            arg: a.word(2),
        },
        Call::Dup => Syscall::Dup { oldfd: a.int(0) },
        Call::Dup2 => Syscall::Dup2 {
            oldfd: a.int(0),
            newfd: a.int(1),
        },
        Call::Dup3 => Syscall::Dup3 {
            oldfd: a.int(0),
            newfd: a.int(1),
            flags: a.int(2),
        },
        Call::Pipe => Syscall::Pipe {
            fds: a.word(0),
            flags: 0,
        },
        Call::Pipe2 => Syscall::Pipe {
            fds: a.word(0),
            flags: a.int(1),
        },
        Call::Sendfile32 | Call::Sendfile64 => Syscall::Sendfile {
            out_fd: a.int(0),
            in_fd: a.int(1),
            offset: a.word(2),
            count: a.word(3),
            offset_width: if call == Call::Sendfile32 {
                OffsetWidth::Off32
            } else {
                OffsetWidth::Off64
            },
        },
        Call::Getdents64 => Syscall::Getdents64 {
            fd: a.int(0),
            dirp: a.word(1),
            count: a.word(2),
        },
        Call::Ftruncate => Syscall::Ftruncate {
            fd: a.int(0),
            length: a.long(1),
        },
        // ftruncate64(fd, length_lo, length_hi).
        Call::Ftruncate64 => Syscall::Ftruncate {
            fd: a.int(0),
            length: a.pair(1, 2),
        },
        Call::Fstat => Syscall::Fstat {
            fd: a.int(0),
            statbuf: a.word(1),
            layout: native_stat(abi),
        },
        Call::Fstat64 => Syscall::Fstat {
            fd: a.int(0),
            statbuf: a.word(1),
            layout: StatLayout::I386Stat64,
        },
        _ => return None,
    })
}

/// A 64-bit file offset starting at argument `i`: one register on x86_64, two
/// (low, high) on i386.
pub(super) fn offset64(a: &Args, i: usize) -> i64 {
    match a.abi() {
        Abi::X86_64 => a.long(i),
        Abi::I386 => a.pair(i, i + 1),
    }
}

/// The `struct stat` of `stat`/`lstat`/`fstat` in `abi`.
pub(super) fn native_stat(abi: Abi) -> StatLayout {
    match abi {
        Abi::X86_64 => StatLayout::X86_64,
        Abi::I386 => StatLayout::I386Stat,
    }
}
