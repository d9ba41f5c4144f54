//! Test process: commits the fault named by its argument (see `t-fault`).
#![no_std]
#![no_main]

use sion_rt::{println, sys};

sion_rt::entry!(main);

fn main(arg: &[u8]) -> i32 {
    let kind = core::str::from_utf8(arg).unwrap_or("");
    println!("fault-child {}: doing {kind}", sys::getpid());
    // SAFETY: none of these is safe; each is meant to fault and be killed.
    unsafe {
        match kind {
            "kernel-read" => {
                let v = core::ptr::read_volatile(0xFFFF_8000_0000_0000 as *const u64);
                println!("read kernel memory: {v:#x}");
            }
            "privileged" => core::arch::asm!("hlt"),
            "divide" => {
                core::arch::asm!("xor edx, edx", "xor ecx, ecx", "mov eax, 1", "div ecx", out("eax") _, out("ecx") _, out("edx") _)
            }
            "invalid-opcode" => core::arch::asm!("ud2"),
            "null-write" => core::ptr::write_volatile(core::ptr::null_mut::<u64>(), 1),
            _ => println!("unknown fault kind {kind}"),
        }
    }
    println!("fault-child: SURVIVED {kind}");
    0
}
