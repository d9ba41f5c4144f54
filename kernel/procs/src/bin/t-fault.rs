//! Test process: children that touch a kernel address, run a privileged
//! instruction, divide by zero, execute an invalid opcode or dereference null
//! are killed with the matching signal, while a CPU-bound worker keeps running.
#![no_std]
#![no_main]

use sion_abi::WaitStatus;
use sion_rt::{println, sys};

sion_rt::entry!(main);

const KINDS: [&str; 5] = [
    "kernel-read",
    "privileged",
    "divide",
    "invalid-opcode",
    "null-write",
];

fn main(_arg: &[u8]) -> i32 {
    let worker = sys::spawn("t-spin", b"worker").expect("spawn worker");
    for kind in KINDS {
        let child = sys::spawn("t-fault-child", kind.as_bytes()).expect("spawn fault child");
        match sys::wait(child).expect("wait child") {
            WaitStatus::Signaled(sig) => println!("fault: child {kind} ended by signal {sig}"),
            WaitStatus::Exited(code) => println!("fault: child {kind} EXITED with {code}"),
        }
    }
    let status = sys::wait(worker).expect("wait worker");
    println!("fault: worker ended with {status:?}");
    0
}
