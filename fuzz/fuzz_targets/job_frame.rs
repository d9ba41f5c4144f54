//! The job protocol's decoders on hostile bytes: what a client sends to a
//! node's job port (TCP 7421) and what a node sends back to `hostd`.
//!
//! The input's first byte picks the chunk size (1 + byte % 64) in which the
//! rest arrives, as TCP may split it; the rest is the byte stream. It goes
//! through:
//!
//! - [`job::Decoder`] (`app-mgr/src/job.rs`) fed chunk by chunk, taking
//!   [`HostMsg`]s (the node's view) and, separately, [`NodeMsg`]s
//!   (`hostd`'s view) until it needs more bytes or fails; every message
//!   taken must encode again and decode to itself; a stream that failed
//!   stays failed;
//! - [`job::decode_body`] of the whole stream as one body of each type, and
//!   the [`FileReply`](sion_app_mgr::job::FileReply) data decoders
//!   ([`job::decode_stat`], [`job::decode_fs_stat`], [`job::decode_lock`]);
//! - the job connection's secure channel (`companion-mgr/src/auth/channel.rs`):
//!   a node end ([`Channel::node`]) and a client end ([`Channel::client`])
//!   taking the chunks as handshake bytes: no plaintext may come out of a
//!   channel whose peer proved nothing (the node nonce is `[7; 32]`, the
//!   client's `[9; 32]`, so the corpus can hold real transcripts, whose
//!   records' plaintext goes through the frame decoder).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sion_app_mgr::job::{self, Decoder, HostMsg, MAX_FRAME, NodeMsg, ProtoError};
use sion_companion_mgr::auth::Channel;
use sion_fuzz::datagram::keyring;

/// Takes messages of type `T` from `stream` arriving in `chunk`-byte pieces.
fn frames<T>(stream: &[u8], chunk: usize)
where
    T: DeserializeOwned + Serialize + PartialEq + core::fmt::Debug,
{
    let mut d = Decoder::new();
    let mut failed: Option<ProtoError> = None;
    for piece in stream.chunks(chunk) {
        d.push(piece);
        loop {
            match d.next_msg::<T>() {
                Ok(Some(msg)) => {
                    assert!(failed.is_none(), "a message after the stream failed");
                    let frame = job::encode(&msg)
                        .unwrap_or_else(|e| panic!("decoded {msg:?} does not encode: {e}"));
                    assert!(frame.len() - job::LEN_PREFIX <= MAX_FRAME);
                    let mut again = Decoder::new();
                    again.push(&frame);
                    assert_eq!(again.next_msg::<T>(), Ok(Some(msg)));
                    assert_eq!(again.buffered(), 0);
                }
                Ok(None) => break,
                Err(e) => {
                    // The node drops the connection here; the decoder buffers
                    // at most one frame more than it was given.
                    failed.get_or_insert(e);
                    break;
                }
            }
        }
        if failed.is_some() {
            break;
        }
        assert!(d.buffered() <= job::LEN_PREFIX + MAX_FRAME + chunk);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&c, stream)) = data.split_first() else {
        return;
    };
    let chunk = 1 + usize::from(c % 64);

    frames::<HostMsg>(stream, chunk);
    frames::<NodeMsg>(stream, chunk);
    let _ = job::decode_body::<HostMsg>(stream);
    let _ = job::decode_body::<NodeMsg>(stream);
    let _ = job::decode_stat(stream);
    let _ = job::decode_fs_stat(stream);
    let _ = job::decode_lock(stream);
    if let Some(prefix) = stream.first_chunk::<4>() {
        match job::body_len(*prefix) {
            Ok(n) => assert!(n <= MAX_FRAME),
            Err(ProtoError::TooLarge { len }) => assert!(len > MAX_FRAME),
            Err(e) => panic!("body_len failed with {e:?}"),
        }
    }

    // The secure channel's two ends, each given these bytes by its peer.
    let keys = keyring();
    for mut ch in [
        Channel::node(&keys, [7; 32]),
        Channel::client(&keys, [9; 32]),
    ] {
        let _ = ch.take_output();
        let mut plain = Vec::new();
        for piece in stream.chunks(chunk) {
            if ch.push(piece, &mut plain).is_err() {
                assert!(
                    ch.push(&[], &mut plain).is_err(),
                    "a failed channel recovered"
                );
                break;
            }
        }
        assert!(
            plain.is_empty() || ch.is_open(),
            "plaintext from an unproven peer"
        );
        // The corpus holds real transcripts (the target's keys and nonces
        // are fixed): their records carry job frames.
        if ch.is_client() {
            frames::<NodeMsg>(&plain, chunk);
        } else {
            frames::<HostMsg>(&plain, chunk);
        }
        let _ = ch.take_output();
    }
});
