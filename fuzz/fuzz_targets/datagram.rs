//! The Companion Manager's datagram decoders on hostile bytes: what any host
//! on the LAN can send to a node's UDP port 7420.
//!
//! The input is one datagram. It goes, as a node's kernel and Companion
//! Manager would take it, through:
//!
//! - the SiON network header decoder (`sion_abi::net::Header::decode`,
//!   `kernel/abi/src/net.rs`), whose decoded datagrams must encode again,
//!   and whose payload goes on as a Companion Manager message; the kernel's
//!   pong decoder;
//! - [`Message::decode`] (`companion-mgr/src/wire.rs`), as is and with its
//!   CRC made right (a mutated body gets past the checksum, so the postcard
//!   body decoder and the field checks are reached), checking that a decoded
//!   message of at most [`MAX_MESSAGE_LEN`] bytes encodes again and decodes
//!   to itself;
//! - [`DatagramAuth::open`] (`companion-mgr/src/auth/datagram.rs`) with a
//!   keyring, as is (counted once, as accepted or dropped; the corpus holds
//!   datagrams sealed with the target's key, which open) and sealed with the
//!   key (opened to exactly the input, once: its replay is refused);
//! - a [`Member`] that knows three peers and has a placement pending:
//!   [`Member::handle_datagram`] with both, then time passing; every
//!   datagram the member sends in answer must decode.
//!
//! Any panic, overflow (debug assertions are on) or allocation beyond
//! libFuzzer's `-rss_limit_mb`/`-malloc_limit_mb` is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sion_abi::net::{self, Header, Pong};
use sion_companion_mgr::Instant;
use sion_companion_mgr::auth::DatagramAuth;
use sion_companion_mgr::node::Addr;
use sion_companion_mgr::wire::{self, MAX_MESSAGE_LEN, Message, PROTOCOL_VERSION};
use sion_fuzz::datagram;

/// Decodes `bytes`; a message must survive an encode/decode round trip.
fn check_decode(bytes: &[u8]) -> Option<Message> {
    let msg = Message::decode(bytes).ok()?;
    if bytes.len() <= MAX_MESSAGE_LEN {
        let again = msg
            .encode()
            .unwrap_or_else(|e| panic!("decoded {msg:?} does not encode: {e}"));
        assert_eq!(Message::decode(&again).as_ref(), Ok(&msg));
    }
    Some(msg)
}

/// `bytes` with its last four bytes set to the CRC of the rest, and the
/// version byte set: a well-framed body.
fn framed(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 5);
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(bytes.get(1..bytes.len().saturating_sub(4)).unwrap_or(&[]));
    let crc = wire::crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    // The kernel's SiON network header (`sion_abi::net`), the first check
    // of every datagram to port 7420; its payload is what the Companion
    // Manager is given.
    if let Ok((header, payload)) = Header::decode(data, net::DEFAULT_CLUSTER) {
        let mut again = vec![0u8; net::HEADER_LEN + payload.len()];
        let n = header
            .encode(payload, &mut again)
            .expect("a decoded datagram encodes");
        assert_eq!(
            Header::decode(&again[..n], net::DEFAULT_CLUSTER),
            Ok((header, payload))
        );
        check_decode(payload);
    }
    let _ = Pong::decode(data);
    check_decode(data);
    let fixed = framed(data);
    check_decode(&fixed);

    // The sealed envelope: garbage is counted as one drop, never accepted.
    let mut auth = DatagramAuth::new(datagram::keyring(), 1);
    let opened = auth.open(data);
    let s = auth.stats();
    assert_eq!(s.accepted + s.dropped(), 1);
    if let Ok(inner) = opened {
        // Only a datagram sealed with the key (a seed) opens.
        check_decode(inner);
    }
    let mut sender = DatagramAuth::new(datagram::keyring(), 2);
    let sealed = sender.seal(data);
    assert_eq!(auth.open(&sealed), Ok(data));
    assert!(auth.open(&sealed).is_err(), "a replay was accepted");

    // A running member takes both datagrams, then time passes.
    let mut now = Instant::from_secs(10);
    let mut member = datagram::member(now);
    let from = Addr::new([169, 254, 0, 10], 7420);
    let before = member.stats().decode_errors;
    let r = member.handle_datagram(now, from, data);
    assert_eq!(member.stats().decode_errors - before, u64::from(r.is_err()));
    let _ = member.handle_datagram(now, from, &fixed);
    for _ in 0..4 {
        now = now + core::time::Duration::from_millis(700);
        member.poll(now);
        while let Some(t) = member.poll_transmit() {
            assert!(
                t.bytes.len() <= MAX_MESSAGE_LEN,
                "{} bytes sent",
                t.bytes.len()
            );
            if let Err(e) = Message::decode(&t.bytes) {
                panic!(
                    "the member sent a datagram that does not decode ({e}): {:?}",
                    t.bytes
                );
            }
        }
        while member.poll_event().is_some() {}
    }
});
