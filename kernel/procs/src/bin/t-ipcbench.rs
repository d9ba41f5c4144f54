//! Benchmark process of `./sion bench` (issue 13), the SiON side of the IPC
//! and system-call comparison with Linux (`bench/programs/ipcbench.c` is the
//! Linux side and uses the same method). Boot a test image with
//! `init=t-ipcbench` (or spawn it with the argument ITER, default 2000). It
//! prints, in TSC cycles, the median of ITER samples of:
//! - `nullsys_cycles`: one `getpid` on `int 0x40`;
//! - `ipc_oneway_cycles_SIZE` for the SiON paper's Table 3 sizes: one-way
//!   send + receive of SIZE bytes to a second process (this image again,
//!   argument `rx`). The sender reads the TSC and `call`s; the receiver reads
//!   the TSC as soon as its `receive` returns and `reply`s with that value,
//!   so the sender knows both ends.
//!
//! Lines are `BENCH <key> <value>`, then `BENCH done`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use sion_abi::{ANY_SENDER, NO_TIMEOUT};
use sion_rt::{println, sys};

sion_rt::entry!(main);

/// The SiON paper's Table 3 message sizes.
const SIZES: [usize; 6] = [4, 1024, 4096, 8192, 16384, 65500];
const TAG_MESSAGE: u64 = 1;
const TAG_QUIT: u64 = 2;

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main(arg: &[u8]) -> i32 {
    if arg == b"rx" {
        return receiver();
    }
    let iter = core::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2000);
    let warm = iter / 10 + 1;
    let mut t: Vec<u64> = vec![0; iter];

    for slot in t.iter_mut() {
        let a = sys::cycles();
        let _ = sys::getpid();
        *slot = sys::cycles().wrapping_sub(a);
    }
    println!("BENCH nullsys_cycles {}", median(&mut t));

    let rx = match sys::spawn("t-ipcbench", b"rx") {
        Ok(pid) => pid,
        Err(e) => {
            println!("ipcbench: cannot start the receiver: {e}");
            return 1;
        }
    };
    let message = vec![0x5au8; SIZES[SIZES.len() - 1]];
    let mut back = [0u8; 8];
    for size in SIZES {
        for i in 0..warm + iter {
            let a = sys::cycles();
            match sys::call_reply(rx, TAG_MESSAGE, &message[..size], &mut back) {
                Ok(8) => {}
                other => {
                    println!("ipcbench: call of {size} bytes answered {other:?}");
                    return 1;
                }
            }
            if i >= warm {
                t[i - warm] = u64::from_le_bytes(back).wrapping_sub(a);
            }
        }
        println!("BENCH ipc_oneway_cycles_{size} {}", median(&mut t));
    }
    let _ = sys::send(rx, TAG_QUIT, b"");
    let _ = sys::wait(rx);
    println!("BENCH done");
    0
}

/// Answers every message with the TSC read right after it arrived.
fn receiver() -> i32 {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok(info) = sys::receive(&mut buf, ANY_SENDER, NO_TIMEOUT) else {
            return 1;
        };
        let now = sys::cycles();
        if info.tag == TAG_QUIT {
            return 0;
        }
        if sys::reply(info.sender, &now.to_le_bytes()).is_err() {
            return 1;
        }
    }
}
