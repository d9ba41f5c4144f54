//! Test process (client side of the IPC test, with `t-ipc-echo` as server):
//! a receive blocks until a message arrives; messages of 0, 4, 1024, 4096 and
//! 65536 bytes arrive intact on both paths (receiver waiting first, sender
//! waiting first); a receive with a timeout times out.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use sion_abi::{Error, Pid};
use sion_rt::{println, sys};

sion_rt::entry!(main);

/// Message tags understood by `t-ipc-echo`.
const TAG_HELLO: u64 = 1;
const TAG_ECHO: u64 = 2;
const TAG_QUIT: u64 = 3;

const SIZES: [usize; 5] = [0, 4, 1024, 4096, 65536];

/// FNV-1a, to print a checksum of what was sent and received.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Deterministic test bytes for a message of `len` bytes.
fn pattern(len: usize) -> alloc::vec::Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ len as u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn main(_arg: &[u8]) -> i32 {
    let server: Pid = sys::spawn("t-ipc-echo", b"").expect("spawn t-ipc-echo");
    // 1. The server is blocked in receive; send only after 300 ms.
    sys::sleep_ns(300_000_000);
    let now = sys::clock_ns();
    sys::send(server, TAG_HELLO, &now.to_le_bytes()).expect("send hello");

    // 2. Contents for every size, alternating who arrives first.
    let mut reply = vec![0u8; 65536 + 16];
    let mut failures = 0;
    for (i, &size) in SIZES.iter().enumerate() {
        let message = pattern(size);
        if i % 2 == 1 {
            // Let the server block in receive first (direct delivery).
            sys::sleep_ns(50_000_000);
        }
        match sys::call_reply(server, TAG_ECHO, &message, &mut reply) {
            Ok(n) if n == size && reply[..n] == message[..] => {
                println!("ipc: {size} bytes: intact (fnv1a {:016x})", fnv1a(&message));
            }
            Ok(n) => {
                failures += 1;
                println!(
                    "ipc: {size} bytes: CORRUPTED (reply {n} bytes, fnv1a {:016x})",
                    fnv1a(&reply[..n.min(reply.len())])
                );
            }
            Err(e) => {
                failures += 1;
                println!("ipc: {size} bytes: FAILED: {e}");
            }
        }
    }

    // 3. A receive with a timeout, when nobody sends.
    let start = sys::clock_ns();
    let result = sys::receive(&mut reply, server, 100_000_000);
    let waited = (sys::clock_ns() - start) / 1_000_000;
    match result {
        Err(Error::TimedOut) => println!("ipc: receive timed out after {waited} ms"),
        other => {
            failures += 1;
            println!("ipc: receive with timeout returned {other:?} after {waited} ms");
        }
    }

    sys::send(server, TAG_QUIT, b"").expect("send quit");
    let status = sys::wait(server).expect("wait server");
    println!("ipc: done, {failures} failures, server {status:?}");
    if failures == 0 { 0 } else { 1 }
}
