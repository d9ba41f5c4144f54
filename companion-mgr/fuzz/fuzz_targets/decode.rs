//! Fuzz target: the Companion Manager datagram decoder never panics, and whatever it
//! accepts re-encodes to a datagram that decodes to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sion_companion_mgr::Message;
use sion_companion_mgr::wire::{PROTOCOL_VERSION, crc32};

fn check(datagram: &[u8]) {
    if let Ok(msg) = Message::decode(datagram) {
        let again = msg.encode().expect("a decoded message re-encodes");
        assert_eq!(Message::decode(&again).as_ref(), Ok(&msg));
    }
}

fuzz_target!(|data: &[u8]| {
    // As a raw datagram (almost always rejected by the version byte or the CRC).
    check(data);
    // As a message body with valid framing, so that postcard and the range checks
    // see the fuzzer's bytes.
    let mut framed = Vec::with_capacity(data.len() + 5);
    framed.push(PROTOCOL_VERSION);
    framed.extend_from_slice(data);
    let crc = crc32(&framed);
    framed.extend_from_slice(&crc.to_le_bytes());
    check(&framed);
});
