//! Test process: a CPU-bound loop that never yields, printing its progress
//! every 100 ms of wall time for 1.5 s. Two of them show whether preemption
//! shares the CPU. Argument: a name for the log lines.
#![no_std]
#![no_main]

use sion_rt::{println, sys};

sion_rt::entry!(main);

fn main(arg: &[u8]) -> i32 {
    let name = core::str::from_utf8(arg).unwrap_or("?");
    let start = sys::clock_ns();
    let mut iterations: u64 = 0;
    let mut round = 0;
    loop {
        iterations = core::hint::black_box(iterations + 1);
        if !iterations.is_multiple_of(1024) {
            continue;
        }
        let elapsed = sys::clock_ns() - start;
        if elapsed >= (round + 1) * 100_000_000 {
            round += 1;
            println!("spin {name}: round {round} ({iterations} iterations)");
            if round == 15 {
                break;
            }
        }
    }
    println!("spin {name}: done");
    0
}
