//! Test process: two `t-fpu-worker`s doing different SSE work at the same time
//! must both get exact results, which holds only if the kernel saves and
//! restores each process's FPU/SSE registers across preemption.
#![no_std]
#![no_main]

use sion_rt::{println, sys};

sion_rt::entry!(main);

fn main(_arg: &[u8]) -> i32 {
    let a = sys::spawn("t-fpu-worker", b"1").expect("spawn worker 1");
    let b = sys::spawn("t-fpu-worker", b"3").expect("spawn worker 3");
    let sa = sys::wait(a).expect("wait 1");
    let sb = sys::wait(b).expect("wait 3");
    println!("fpu: workers ended: {sa:?} {sb:?}");
    0
}
