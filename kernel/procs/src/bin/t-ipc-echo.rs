//! Test process: the server of the IPC test (`t-ipc`). Reports how long its
//! first receive blocked, then echoes every `call` back until told to quit.
#![no_std]
#![no_main]

extern crate alloc;

use sion_abi::ANY_SENDER;
use sion_abi::NO_TIMEOUT;
use sion_rt::{println, sys};

sion_rt::entry!(main);

const TAG_HELLO: u64 = 1;
const TAG_QUIT: u64 = 3;

fn main(_arg: &[u8]) -> i32 {
    let mut buf = alloc::vec![0u8; 65536];
    let before = sys::clock_ns();
    let info = sys::receive(&mut buf, ANY_SENDER, NO_TIMEOUT).expect("receive hello");
    let after = sys::clock_ns();
    let sent_at = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
    let order_ok = info.tag == TAG_HELLO && sent_at >= before && after >= sent_at;
    println!(
        "ipc-echo: receive blocked {} ms until the message arrived (sent after {} ms; order {})",
        (after - before) / 1_000_000,
        sent_at.saturating_sub(before) / 1_000_000,
        if order_ok { "ok" } else { "WRONG" }
    );
    let mut served = 0;
    loop {
        if served % 2 == 0 {
            // Let the client block in send first (the receiver copies).
            sys::sleep_ns(50_000_000);
        }
        let info = sys::receive(&mut buf, ANY_SENDER, NO_TIMEOUT).expect("receive");
        if info.tag == TAG_QUIT {
            return 0;
        }
        let n = (info.len as usize).min(buf.len());
        sys::reply(info.sender, &buf[..n]).expect("reply");
        served += 1;
    }
}
