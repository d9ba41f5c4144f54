//! Test process: starts two CPU-bound `t-spin` processes that never yield and
//! waits for both; the host checks that their progress lines interleave.
#![no_std]
#![no_main]

use sion_rt::{println, sys};

sion_rt::entry!(main);

fn main(_arg: &[u8]) -> i32 {
    let a = sys::spawn("t-spin", b"A").expect("spawn A");
    let b = sys::spawn("t-spin", b"B").expect("spawn B");
    let sa = sys::wait(a).expect("wait A");
    let sb = sys::wait(b).expect("wait B");
    println!("preempt: both spinners ended: {sa:?} {sb:?}");
    0
}
