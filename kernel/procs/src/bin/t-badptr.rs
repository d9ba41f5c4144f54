//! Test process: system calls with bad pointers, lengths and numbers each return
//! the documented error; the process (and the kernel) live on.
#![no_std]
#![no_main]

use sion_abi::{Error, Syscall};
use sion_rt::{println, sys};

sion_rt::entry!(main);

/// A read-only byte in the process's text segment.
static READ_ONLY: [u8; 64] = [0; 64];

fn raw(call: Syscall, a: [u64; 6]) -> Result<u64, Error> {
    // SAFETY: the whole point is to pass bad pointers; the kernel must refuse them.
    Error::from_result(unsafe { sys::syscall6(call, a) })
}

fn main(_arg: &[u8]) -> i32 {
    const KERNEL: u64 = 0xFFFF_8000_0000_0000;
    let ro = READ_ONLY.as_ptr() as u64;
    let mut buf = [0u8; 64];
    let b = buf.as_mut_ptr() as u64;
    let me = sys::getpid();
    let cases: [(&str, Syscall, [u64; 6], Error); 12] = [
        (
            "console_write kernel address",
            Syscall::ConsoleWrite,
            [KERNEL, 16, 0, 0, 0, 0],
            Error::BadAddress,
        ),
        (
            "console_write null",
            Syscall::ConsoleWrite,
            [0, 16, 0, 0, 0, 0],
            Error::BadAddress,
        ),
        (
            "console_write past user space",
            Syscall::ConsoleWrite,
            [0x7FFF_FFFF_FFF0, 64, 0, 0, 0, 0],
            Error::BadAddress,
        ),
        (
            "console_write length overflow",
            Syscall::ConsoleWrite,
            [u64::MAX - 8, 64, 0, 0, 0, 0],
            Error::BadAddress,
        ),
        (
            "receive into read-only info",
            Syscall::Receive,
            [b, 64, 0, 0, ro, 0],
            Error::BadAddress,
        ),
        (
            "receive into kernel buffer",
            Syscall::Receive,
            [KERNEL, 64, 0, 0, b, 0],
            Error::BadAddress,
        ),
        (
            "send from kernel buffer",
            Syscall::Send,
            [999_999, 0, KERNEL, 64, 0, 0],
            Error::BadAddress,
        ),
        (
            "call with read-only reply buffer",
            Syscall::Call,
            [999_999, 0, b, 8, ro, 64],
            Error::BadAddress,
        ),
        (
            "spawn with bad name pointer",
            Syscall::Spawn,
            [KERNEL, 8, 0, 0, 0, 0],
            Error::BadAddress,
        ),
        (
            "send to oneself",
            Syscall::Send,
            [me, 0, b, 8, 0, 0],
            Error::InvalidArgument,
        ),
        (
            "wait on a non-child",
            Syscall::Wait,
            [1, 0, 0, 0, 0, 0],
            Error::NotChild,
        ),
        (
            "send to no such process",
            Syscall::Send,
            [999_999, 0, b, 8, 0, 0],
            Error::NoSuchProcess,
        ),
    ];
    let mut ok = 0;
    for (what, call, args, expected) in cases {
        let got = raw(call, args);
        if got == Err(expected) {
            ok += 1;
            println!("badptr: {what}: {expected:?} as expected");
        } else {
            println!("badptr: {what}: WRONG: got {got:?}, expected {expected:?}");
        }
    }
    // Unknown number and a missing image.
    let unknown = Error::from_result({
        let ret: i64;
        // SAFETY: an undefined system-call number with no arguments.
        unsafe { core::arch::asm!("int 0x40", inlateout("rax") 999u64 => ret, options(nostack)) };
        ret
    });
    let missing = sys::spawn("no-such-image", b"");
    let extra_ok = (unknown == Err(Error::UnknownSyscall)) as usize
        + (missing == Err(Error::NotFound)) as usize;
    println!("badptr: unknown syscall: {unknown:?}; missing image: {missing:?}");
    let total = 14;
    println!(
        "badptr: {}/{total} bad calls returned the expected error",
        ok + extra_ok
    );
    println!("badptr: still alive after all of them");
    0
}
