//! Test process: a miniature application manager. It builds tiny Linux
//! programs (hand-assembled machine code) as applications, serves their
//! `write` and `exit` system calls, and reports how each ended:
//! 64-bit code using `syscall`, i386 code in compatibility mode using
//! `int 0x80`, a program executing `ud2`, and one trying SiON's `int 0x40`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use sion_abi::app::{self, LinuxSyscall, TAG_APP_EXITED, TAG_LINUX_SYSCALL};
use sion_abi::{ANY_SENDER, Error, NO_TIMEOUT, Syscall, WaitStatus};
use sion_rt::{println, sys};

sion_rt::entry!(main);

const CODE: u64 = 0x40_0000;
const STACK_TOP: u64 = 0x7fff_0000;

fn raw(call: Syscall, a: [u64; 6]) -> Result<u64, Error> {
    // SAFETY: pointer arguments point into this process's live buffers.
    Error::from_result(unsafe { sys::syscall6(call, a) })
}

/// write(1, "hello", 5) with `syscall`, then exit(42).
fn program_x86_64() -> Vec<u8> {
    let mut c = Vec::new();
    c.extend_from_slice(&[0xb8, 1, 0, 0, 0]); // mov eax, 1 (write)
    c.extend_from_slice(&[0xbf, 1, 0, 0, 0]); // mov edi, 1
    c.extend_from_slice(&[0x48, 0x8d, 0x35, 0x15, 0, 0, 0]); // lea rsi, [rip + 0x15] -> msg
    c.extend_from_slice(&[0xba, 5, 0, 0, 0]); // mov edx, 5
    c.extend_from_slice(&[0x0f, 0x05]); // syscall
    c.extend_from_slice(&[0xbf, 42, 0, 0, 0]); // mov edi, 42
    c.extend_from_slice(&[0xb8, 60, 0, 0, 0]); // mov eax, 60 (exit)
    c.extend_from_slice(&[0x0f, 0x05]); // syscall
    c.extend_from_slice(&[0x0f, 0x0b]); // ud2 (never reached)
    c.extend_from_slice(b"hello");
    c
}

/// i386: write(1, "i386", 4) with `int 0x80`, then exit(result of write).
fn program_i386() -> Vec<u8> {
    let msg = (CODE + 31) as u32;
    let mut c = Vec::new();
    c.extend_from_slice(&[0xb8, 4, 0, 0, 0]); // mov eax, 4 (write)
    c.extend_from_slice(&[0xbb, 1, 0, 0, 0]); // mov ebx, 1
    c.push(0xb9); // mov ecx, msg
    c.extend_from_slice(&msg.to_le_bytes());
    c.extend_from_slice(&[0xba, 4, 0, 0, 0]); // mov edx, 4
    c.extend_from_slice(&[0xcd, 0x80]); // int 0x80
    c.extend_from_slice(&[0x89, 0xc3]); // mov ebx, eax
    c.extend_from_slice(&[0xb8, 1, 0, 0, 0]); // mov eax, 1 (exit)
    c.extend_from_slice(&[0xcd, 0x80]); // int 0x80
    assert_eq!(c.len(), 31);
    c.extend_from_slice(b"i386");
    c
}

fn run(name: &str, code: &[u8], abi: u64) -> Result<WaitStatus, Error> {
    let pid = raw(Syscall::AppCreate, [0; 6])?;
    let prot = app::PROT_READ | app::PROT_WRITE | app::PROT_EXEC;
    raw(Syscall::AppMap, [pid, CODE, 4096, prot, 0, 0])?;
    raw(
        Syscall::AppWrite,
        [pid, CODE, code.as_ptr() as u64, code.len() as u64, 0, 0],
    )?;
    raw(
        Syscall::AppMap,
        [
            pid,
            STACK_TOP - 16384,
            16384,
            app::PROT_READ | app::PROT_WRITE,
            0,
            0,
        ],
    )?;
    raw(Syscall::AppStart, [pid, CODE, STACK_TOP - 64, abi, 0, 0])?;
    let mut buf = [0u8; 128];
    loop {
        let info = sys::receive(&mut buf, ANY_SENDER, NO_TIMEOUT)?;
        if info.sender != pid {
            continue;
        }
        match info.tag {
            TAG_LINUX_SYSCALL => {
                let call = LinuxSyscall::decode(&buf).ok_or(Error::InvalidArgument)?;
                let result: i64 = match (call.abi, call.nr) {
                    (app::ABI_X86_64, 1) | (app::ABI_I386, 4) => {
                        let len = call.args[2].min(64);
                        let mut text = [0u8; 64];
                        raw(
                            Syscall::AppRead,
                            [pid, call.args[1], text.as_mut_ptr() as u64, len, 0, 0],
                        )?;
                        let text = core::str::from_utf8(&text[..len as usize]).unwrap_or("?");
                        println!(
                            "app {name}: write(fd {}, {text:?}) via abi {}",
                            call.args[0], call.abi
                        );
                        len as i64
                    }
                    (app::ABI_X86_64, 60 | 231) | (app::ABI_I386, 1 | 252) => {
                        raw(
                            Syscall::AppKill,
                            [pid, (call.args[0] & 0xff) << 8, 0, 0, 0, 0],
                        )?;
                        continue;
                    }
                    _ => -38,
                };
                sys::reply(pid, &result.to_le_bytes())?;
            }
            TAG_APP_EXITED => {
                return Ok(WaitStatus::from_raw(u64::from_le_bytes(
                    buf[..8].try_into().unwrap(),
                )));
            }
            _ => {}
        }
    }
}

fn main(_arg: &[u8]) -> i32 {
    let cases: [(&str, Vec<u8>, u64); 4] = [
        ("x86_64", program_x86_64(), app::ABI_X86_64),
        ("i386", program_i386(), app::ABI_I386),
        ("ud2", alloc::vec![0x0f, 0x0b], app::ABI_X86_64),
        (
            "int40",
            alloc::vec![0xcd, 0x40, 0x0f, 0x0b],
            app::ABI_X86_64,
        ),
    ];
    for (name, code, abi) in cases {
        match run(name, &code, abi) {
            Ok(status) => println!("app {name}: ended {status:?}"),
            Err(e) => println!("app {name}: manager error {e}"),
        }
    }
    println!("app: done");
    0
}
