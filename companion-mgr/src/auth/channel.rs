//! The job connection's secure channel: a handshake that proves both ends
//! hold the cluster key, then ChaCha20-Poly1305 records (sans-IO: bytes in,
//! bytes out; `hostd` and the App-Program Manager do the TCP).
//!
//! **Handshake** (a pre-shared-key challenge–response, as TLS 1.3's PSK-only
//! mode (RFC 8446 §2.2) without certificates or Diffie–Hellman; there is no
//! forward secrecy: whoever later learns the cluster key and recorded a
//! connection can read it):
//!
//! ```text
//! client → node  ClientHello  "SIONJOB1" [key id: 4] [client nonce: 32]          (44 bytes)
//! node → client  NodeHello    "SIONJOB1" [status: 1] [key id: 4] [node nonce: 32]
//!                             [node proof: 32]                                   (77 bytes)
//! client → node  ClientProof  [client proof: 32]                                 (32 bytes)
//! ```
//!
//! The client names its signing key; status 0 means the node accepts that key
//! (the node's reply names the same key), 1 that it does not (no proof
//! follows that counts; the node closes). `node proof` is
//! HMAC-SHA-256(handshake key, `"node proof"` ‖ ClientHello ‖ NodeHello up to
//! the proof) and `client proof` HMAC-SHA-256(handshake key, `"client proof"`
//! ‖ ClientHello ‖ NodeHello): the client checks the node before it sends a
//! byte of the job (arguments, environment, program), the node checks the
//! client before it reads one. Fresh nonces on both sides make every
//! connection's proofs and keys new, so a recorded handshake cannot be
//! replayed.
//!
//! **Records**, after the handshake: `[length: u32 BE] [ciphertext ‖ tag: length]`,
//! ChaCha20-Poly1305 (RFC 8439) with the direction's traffic key (HKDF-SHA-256,
//! salt = client nonce ‖ node nonce, `info` `"client to node"` or
//! `"node to client"`), the 12-byte nonce `[0; 4] ‖ record number (u64 BE)`
//! counting from 0 in each direction, and the length prefix as associated
//! data. A record carries at most [`MAX_RECORD`] plaintext bytes; a longer
//! length, a wrong tag or a record out of order ends the connection.

use alloc::vec::Vec;
use core::fmt;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use hmac::Mac;

use super::{ClusterKey, KeyId, Keyring};

/// The first 8 bytes of both hellos.
pub const MAGIC: [u8; 8] = *b"SIONJOB1";
/// Nonce length.
pub const NONCE_LEN: usize = 32;
/// Proof length (a full HMAC-SHA-256).
pub const PROOF_LEN: usize = 32;
/// Length of the ClientHello.
pub const CLIENT_HELLO_LEN: usize = 8 + 4 + NONCE_LEN;
/// Length of the NodeHello.
pub const NODE_HELLO_LEN: usize = 8 + 1 + 4 + NONCE_LEN + PROOF_LEN;
/// Most plaintext bytes in one record (a job frame of 68 KiB and its prefix
/// fit).
pub const MAX_RECORD: usize = 72 * 1024;
/// Poly1305 tag length.
const TAG_LEN: usize = 16;

const STATUS_OK: u8 = 0;
const STATUS_UNKNOWN_KEY: u8 = 1;

/// Why a channel failed; after an error it is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelError {
    /// The peer does not speak this handshake: an open (keyless) node or
    /// hostd, or something else.
    NotSecured,
    /// The node does not accept the client's key (client side: the key id the
    /// client offered; node side: the id the client named).
    UnknownKey(KeyId),
    /// A proof was wrong: the peer does not hold the key.
    BadProof,
    /// A record failed to decrypt (tampered, reordered or forged).
    BadRecord,
    /// A record announced more than [`MAX_RECORD`] bytes.
    RecordTooLong,
    /// [`Channel::seal`] before the handshake finished.
    NotOpen,
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::NotSecured => {
                f.write_str("the peer does not speak SiON's authenticated job protocol")
            }
            ChannelError::UnknownKey(id) => write!(f, "cluster key {id} is not accepted"),
            ChannelError::BadProof => f.write_str("the peer does not hold the cluster key"),
            ChannelError::BadRecord => f.write_str("a record failed authentication"),
            ChannelError::RecordTooLong => f.write_str("a record is too long"),
            ChannelError::NotOpen => f.write_str("the handshake is not finished"),
        }
    }
}

impl core::error::Error for ChannelError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Client: ClientHello sent, waiting for NodeHello.
    AwaitNodeHello,
    /// Node: waiting for ClientHello.
    AwaitClientHello,
    /// Node: NodeHello sent, waiting for ClientProof.
    AwaitClientProof,
    Open,
    Failed(ChannelError),
}

struct Direction {
    aead: ChaCha20Poly1305,
    seq: u64,
}

/// The sending half of an open channel (see [`Channel::split`]).
pub struct Sealer {
    dir: Direction,
}

impl Sealer {
    /// `plain` as records (several if longer than [`MAX_RECORD`]).
    pub fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() + 4 + TAG_LEN);
        for chunk in plain.chunks(MAX_RECORD) {
            let prefix = ((chunk.len() + TAG_LEN) as u32).to_be_bytes();
            out.extend_from_slice(&prefix);
            let start = out.len();
            out.extend_from_slice(chunk);
            let nonce = self.dir.nonce();
            let tag = self
                .dir
                .aead
                .encrypt_in_place_detached(&nonce, &prefix, &mut out[start..])
                .expect("a record is far below ChaCha20-Poly1305's limit");
            out.extend_from_slice(&tag);
        }
        out
    }
}

/// The receiving half of an open channel (see [`Channel::split`]).
pub struct Opener {
    dir: Direction,
    inbuf: Vec<u8>,
    failed: Option<ChannelError>,
}

impl Opener {
    /// Takes received bytes and appends the plaintext of every complete
    /// record to `plain`.
    ///
    /// # Errors
    /// [`ChannelError::BadRecord`] or [`ChannelError::RecordTooLong`]; the
    /// opener is unusable afterwards.
    pub fn push(&mut self, bytes: &[u8], plain: &mut Vec<u8>) -> Result<(), ChannelError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.inbuf.extend_from_slice(bytes);
        let r = self.open_records(plain);
        if let Err(e) = r {
            self.failed = Some(e);
            self.inbuf = Vec::new();
        }
        r
    }

    fn open_records(&mut self, plain: &mut Vec<u8>) -> Result<(), ChannelError> {
        loop {
            let Some(prefix) = self.inbuf.first_chunk::<4>().copied() else {
                return Ok(());
            };
            let len = u32::from_be_bytes(prefix) as usize;
            if !(TAG_LEN..=MAX_RECORD + TAG_LEN).contains(&len) {
                return Err(ChannelError::RecordTooLong);
            }
            if self.inbuf.len() < 4 + len {
                return Ok(());
            }
            let nonce = self.dir.nonce();
            let start = plain.len();
            plain.extend_from_slice(&self.inbuf[4..4 + len - TAG_LEN]);
            let tag = *Tag::from_slice(&self.inbuf[4 + len - TAG_LEN..4 + len]);
            if self
                .dir
                .aead
                .decrypt_in_place_detached(&nonce, &prefix, &mut plain[start..], &tag)
                .is_err()
            {
                plain.truncate(start);
                return Err(ChannelError::BadRecord);
            }
            self.inbuf.drain(..4 + len);
        }
    }
}

impl Direction {
    fn new(key: &[u8; 32]) -> Direction {
        Direction {
            aead: ChaCha20Poly1305::new(Key::from_slice(key)),
            seq: 0,
        }
    }

    fn nonce(&mut self) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.seq.to_be_bytes());
        self.seq += 1;
        *Nonce::from_slice(&n)
    }
}

/// One end of a job connection's channel. See the module documentation.
pub struct Channel {
    keys: Keyring,
    key: Option<ClusterKey>,
    client: bool,
    state: State,
    nonce: [u8; NONCE_LEN],
    transcript: Vec<u8>,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    send: Option<Sealer>,
    recv: Option<Opener>,
}

impl Channel {
    /// The client (`hostd`) end: queues the ClientHello (take it with
    /// [`take_output`](Channel::take_output)). `nonce` must be fresh random
    /// bytes.
    pub fn client(keys: &Keyring, nonce: [u8; NONCE_LEN]) -> Channel {
        let key = keys.signing().clone();
        let mut hello = Vec::with_capacity(CLIENT_HELLO_LEN);
        hello.extend_from_slice(&MAGIC);
        hello.extend_from_slice(&key.id().0);
        hello.extend_from_slice(&nonce);
        Channel {
            keys: keys.clone(),
            key: Some(key),
            client: true,
            state: State::AwaitNodeHello,
            nonce,
            transcript: hello.clone(),
            inbuf: Vec::new(),
            out: hello,
            send: None,
            recv: None,
        }
    }

    /// The node (App-Program Manager) end, waiting for a ClientHello.
    /// `nonce` must be fresh random bytes.
    pub fn node(keys: &Keyring, nonce: [u8; NONCE_LEN]) -> Channel {
        Channel {
            keys: keys.clone(),
            key: None,
            client: false,
            state: State::AwaitClientHello,
            nonce,
            transcript: Vec::new(),
            inbuf: Vec::new(),
            out: Vec::new(),
            send: None,
            recv: None,
        }
    }

    /// Handshake bytes to send now (empty when there are none).
    pub fn take_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }

    /// True once both ends are proven (the client: once it checked the node's
    /// proof and queued its own).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// The key the channel runs on, once known.
    pub fn key_id(&self) -> Option<KeyId> {
        self.key.as_ref().map(ClusterKey::id)
    }

    /// Takes received bytes: advances the handshake (queuing output) and
    /// appends the plaintext of every complete record to `plain`.
    ///
    /// # Errors
    /// [`ChannelError`]; the channel is unusable afterwards (the node may
    /// still have a NodeHello refusing the key to send: check
    /// [`take_output`](Channel::take_output)).
    pub fn push(&mut self, bytes: &[u8], plain: &mut Vec<u8>) -> Result<(), ChannelError> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        self.inbuf.extend_from_slice(bytes);
        let r = self.advance(plain);
        if let Err(e) = r {
            self.state = State::Failed(e);
            self.inbuf = Vec::new();
        }
        r
    }

    fn advance(&mut self, plain: &mut Vec<u8>) -> Result<(), ChannelError> {
        loop {
            match self.state {
                State::AwaitClientHello => {
                    if !self.starts_with_magic() {
                        return Err(ChannelError::NotSecured);
                    }
                    if self.inbuf.len() < CLIENT_HELLO_LEN {
                        return Ok(());
                    }
                    let hello: Vec<u8> = self.inbuf.drain(..CLIENT_HELLO_LEN).collect();
                    self.on_client_hello(&hello)?;
                }
                State::AwaitNodeHello => {
                    if !self.starts_with_magic() {
                        return Err(ChannelError::NotSecured);
                    }
                    if self.inbuf.len() < NODE_HELLO_LEN {
                        return Ok(());
                    }
                    let hello: Vec<u8> = self.inbuf.drain(..NODE_HELLO_LEN).collect();
                    self.on_node_hello(&hello)?;
                }
                State::AwaitClientProof => {
                    if self.inbuf.len() < PROOF_LEN {
                        return Ok(());
                    }
                    let proof: Vec<u8> = self.inbuf.drain(..PROOF_LEN).collect();
                    self.check_proof(b"client proof", &self.transcript, &proof)?;
                    self.state = State::Open;
                }
                State::Open => {
                    let recv = self.recv.as_mut().ok_or(ChannelError::NotOpen)?;
                    let bytes = core::mem::take(&mut self.inbuf);
                    return recv.push(&bytes, plain);
                }
                State::Failed(e) => return Err(e),
            }
        }
    }

    /// Whether what arrived so far can be the start of a hello.
    fn starts_with_magic(&self) -> bool {
        let n = self.inbuf.len().min(MAGIC.len());
        self.inbuf[..n] == MAGIC[..n]
    }

    fn on_client_hello(&mut self, hello: &[u8]) -> Result<(), ChannelError> {
        let id = KeyId([hello[8], hello[9], hello[10], hello[11]]);
        let mut reply = Vec::with_capacity(NODE_HELLO_LEN);
        reply.extend_from_slice(&MAGIC);
        let Some(key) = self.keys.find(id).cloned() else {
            reply.push(STATUS_UNKNOWN_KEY);
            reply.extend_from_slice(&self.keys.signing().id().0);
            reply.extend_from_slice(&[0; NONCE_LEN + PROOF_LEN]);
            self.out.extend_from_slice(&reply);
            return Err(ChannelError::UnknownKey(id));
        };
        reply.push(STATUS_OK);
        reply.extend_from_slice(&id.0);
        reply.extend_from_slice(&self.nonce);
        let mut transcript = hello.to_vec();
        transcript.extend_from_slice(&reply);
        let proof = proof(&key, b"node proof", &transcript);
        reply.extend_from_slice(&proof);
        transcript.extend_from_slice(&proof);
        self.out.extend_from_slice(&reply);
        let mut salt = [0u8; 2 * NONCE_LEN];
        salt[..NONCE_LEN].copy_from_slice(&hello[12..12 + NONCE_LEN]);
        salt[NONCE_LEN..].copy_from_slice(&self.nonce);
        let (c2s, s2c) = key.traffic_keys(&salt);
        self.recv = Some(opener(&c2s));
        self.send = Some(Sealer {
            dir: Direction::new(&s2c),
        });
        self.transcript = transcript;
        self.key = Some(key);
        self.state = State::AwaitClientProof;
        Ok(())
    }

    fn on_node_hello(&mut self, hello: &[u8]) -> Result<(), ChannelError> {
        let key = self.key.clone().expect("a client has its key");
        let status = hello[8];
        if status != STATUS_OK || hello[9..13] != key.id().0 {
            return Err(ChannelError::UnknownKey(key.id()));
        }
        let proof_at = NODE_HELLO_LEN - PROOF_LEN;
        self.transcript.extend_from_slice(&hello[..proof_at]);
        self.check_proof(b"node proof", &self.transcript, &hello[proof_at..])?;
        self.transcript.extend_from_slice(&hello[proof_at..]);
        self.out
            .extend_from_slice(&proof(&key, b"client proof", &self.transcript));
        let mut salt = [0u8; 2 * NONCE_LEN];
        salt[..NONCE_LEN].copy_from_slice(&self.nonce);
        salt[NONCE_LEN..].copy_from_slice(&hello[13..13 + NONCE_LEN]);
        let (c2s, s2c) = key.traffic_keys(&salt);
        self.send = Some(Sealer {
            dir: Direction::new(&c2s),
        });
        self.recv = Some(opener(&s2c));
        self.state = State::Open;
        Ok(())
    }

    fn check_proof(&self, label: &[u8], transcript: &[u8], got: &[u8]) -> Result<(), ChannelError> {
        let key = self.key.as_ref().ok_or(ChannelError::BadProof)?;
        let mut mac = key.handshake_mac();
        mac.update(label);
        mac.update(transcript);
        mac.verify_slice(got).map_err(|_| ChannelError::BadProof)
    }

    /// `plain` as records (several if longer than [`MAX_RECORD`]).
    ///
    /// # Errors
    /// [`ChannelError::NotOpen`] before the handshake finished (the client may
    /// seal as soon as it checked the node's proof).
    pub fn seal(&mut self, plain: &[u8]) -> Result<Vec<u8>, ChannelError> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        match (&mut self.send, self.state) {
            (Some(send), State::Open) => Ok(send.seal(plain)),
            _ => Err(ChannelError::NotOpen),
        }
    }

    /// The open channel's two halves, for a sender and a receiver on two
    /// threads; bytes received but not yet opened stay with the [`Opener`].
    ///
    /// # Errors
    /// [`ChannelError::NotOpen`] before the handshake finished, or the error
    /// the channel failed with.
    pub fn split(self) -> Result<(Sealer, Opener), ChannelError> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        match (self.send, self.recv, self.state) {
            (Some(send), Some(mut recv), State::Open) => {
                recv.inbuf.extend_from_slice(&self.inbuf);
                Ok((send, recv))
            }
            _ => Err(ChannelError::NotOpen),
        }
    }

    /// Whether this is the client end.
    pub fn is_client(&self) -> bool {
        self.client
    }
}

fn opener(key: &[u8; 32]) -> Opener {
    Opener {
        dir: Direction::new(key),
        inbuf: Vec::new(),
        failed: None,
    }
}

fn proof(key: &ClusterKey, label: &[u8], transcript: &[u8]) -> [u8; PROOF_LEN] {
    let mut mac = key.handshake_mac();
    mac.update(label);
    mac.update(transcript);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KEY_LEN;

    fn ring(keys: &[u8]) -> Keyring {
        let secrets: Vec<[u8; KEY_LEN]> = keys.iter().map(|&k| [k; KEY_LEN]).collect();
        Keyring::new(&secrets).unwrap()
    }

    /// Runs the handshake between `c` and `n`, delivering all bytes.
    fn handshake(
        c: &mut Channel,
        n: &mut Channel,
    ) -> (Result<(), ChannelError>, Result<(), ChannelError>) {
        let mut sink = Vec::new();
        let hello = c.take_output();
        let rn = n.push(&hello, &mut sink);
        let reply = n.take_output();
        let rc = c.push(&reply, &mut sink);
        if rc.is_err() || rn.is_err() {
            return (rc, rn);
        }
        let proof = c.take_output();
        let rn = n.push(&proof, &mut sink);
        assert!(sink.is_empty());
        (rc, rn)
    }

    #[test]
    fn same_key_opens_and_carries_data_both_ways() {
        let mut c = Channel::client(&ring(&[1]), [3; 32]);
        let mut n = Channel::node(&ring(&[1]), [4; 32]);
        assert_eq!(handshake(&mut c, &mut n), (Ok(()), Ok(())));
        assert!(c.is_open() && n.is_open());
        let big = alloc::vec![0x5a; MAX_RECORD * 2 + 10];
        let mut wire = c.seal(b"hello node").unwrap();
        wire.extend(c.seal(&big).unwrap());
        let mut got = Vec::new();
        // Byte by byte: records are reassembled.
        for b in &wire {
            n.push(core::slice::from_ref(b), &mut got).unwrap();
        }
        assert_eq!(&got[..10], b"hello node");
        assert_eq!(&got[10..], &big[..]);
        let back = n.seal(b"hello client").unwrap();
        let mut got = Vec::new();
        c.push(&back, &mut got).unwrap();
        assert_eq!(got, b"hello client");
        // The ciphertext does not show the plaintext.
        assert!(!back.windows(5).any(|w| w == b"hello"));
    }

    #[test]
    fn records_may_follow_the_proof_in_one_read() {
        let mut c = Channel::client(&ring(&[1]), [3; 32]);
        let mut n = Channel::node(&ring(&[1]), [4; 32]);
        let mut sink = Vec::new();
        n.push(&c.take_output(), &mut sink).unwrap();
        c.push(&n.take_output(), &mut sink).unwrap();
        let mut wire = c.take_output();
        wire.extend(c.seal(b"start").unwrap());
        n.push(&wire, &mut sink).unwrap();
        assert_eq!(sink, b"start");
    }

    #[test]
    fn wrong_key_is_refused_before_any_data() {
        let mut c = Channel::client(&ring(&[1]), [3; 32]);
        let mut n = Channel::node(&ring(&[2]), [4; 32]);
        let (rc, rn) = handshake(&mut c, &mut n);
        assert!(matches!(rn, Err(ChannelError::UnknownKey(_))));
        assert!(matches!(rc, Err(ChannelError::UnknownKey(_))));
        assert!(!c.is_open() && !n.is_open());
        assert_eq!(c.seal(b"x").unwrap_err(), rc.unwrap_err());
    }

    #[test]
    fn a_fake_node_without_the_key_gets_nothing() {
        // A fake node answers with the client's key id and a made-up proof.
        let mut c = Channel::client(&ring(&[1]), [3; 32]);
        let hello = c.take_output();
        let mut fake = Vec::new();
        fake.extend_from_slice(&MAGIC);
        fake.push(STATUS_OK);
        fake.extend_from_slice(&hello[8..12]);
        fake.extend_from_slice(&[9; NONCE_LEN + PROOF_LEN]);
        let mut sink = Vec::new();
        assert_eq!(c.push(&fake, &mut sink), Err(ChannelError::BadProof));
        assert!(
            c.take_output().is_empty(),
            "no client proof for a fake node"
        );
        assert_eq!(c.seal(b"env").unwrap_err(), ChannelError::BadProof);
    }

    #[test]
    fn a_fake_client_without_the_key_is_refused() {
        let keys = ring(&[1]);
        let mut n = Channel::node(&keys, [4; 32]);
        let mut hello = Vec::new();
        hello.extend_from_slice(&MAGIC);
        hello.extend_from_slice(&keys.signing().id().0);
        hello.extend_from_slice(&[3; NONCE_LEN]);
        let mut sink = Vec::new();
        n.push(&hello, &mut sink).unwrap();
        assert_eq!(
            n.push(&[0; PROOF_LEN], &mut sink),
            Err(ChannelError::BadProof)
        );
        assert!(!n.is_open());
    }

    #[test]
    fn a_recorded_handshake_cannot_be_replayed() {
        let mut c = Channel::client(&ring(&[1]), [3; 32]);
        let mut n = Channel::node(&ring(&[1]), [4; 32]);
        let mut sink = Vec::new();
        let hello = c.take_output();
        n.push(&hello, &mut sink).unwrap();
        c.push(&n.take_output(), &mut sink).unwrap();
        let proof = c.take_output();
        // The same client bytes to a node with another nonce.
        let mut n2 = Channel::node(&ring(&[1]), [5; 32]);
        n2.push(&hello, &mut sink).unwrap();
        assert_eq!(n2.push(&proof, &mut sink), Err(ChannelError::BadProof));
    }

    #[test]
    fn open_peers_and_garbage_are_not_secured() {
        let mut n = Channel::node(&ring(&[1]), [4; 32]);
        let mut sink = Vec::new();
        // A keyless hostd's first frame: a big-endian length (first byte 0).
        assert_eq!(
            n.push(&[0, 0, 1, 0], &mut sink),
            Err(ChannelError::NotSecured)
        );
        let mut c = Channel::client(&ring(&[1]), [3; 32]);
        let _ = c.take_output();
        // A keyless node's answer (a frame) or a close.
        assert_eq!(
            c.push(&[0, 0, 0, 9, 1], &mut sink),
            Err(ChannelError::NotSecured)
        );
    }

    #[test]
    fn tampered_and_reordered_records_are_refused() {
        let mut c = Channel::client(&ring(&[1]), [3; 32]);
        let mut n = Channel::node(&ring(&[1]), [4; 32]);
        let _ = handshake(&mut c, &mut n);
        let r1 = c.seal(b"first").unwrap();
        let r2 = c.seal(b"second").unwrap();
        let mut t = r1.clone();
        t[6] ^= 1;
        let mut sink = Vec::new();
        assert_eq!(n.push(&t, &mut sink), Err(ChannelError::BadRecord));
        assert!(sink.is_empty());
        let mut n = Channel::node(&ring(&[1]), [4; 32]);
        let mut c = Channel::client(&ring(&[1]), [3; 32]);
        let _ = handshake(&mut c, &mut n);
        let _r1 = c.seal(b"first").unwrap();
        let r2b = c.seal(b"second").unwrap();
        assert_eq!(r2b, r2, "same keys and nonces, same bytes");
        assert_eq!(n.push(&r2b, &mut sink), Err(ChannelError::BadRecord));
        let mut n = Channel::node(&ring(&[1]), [4; 32]);
        let mut c = Channel::client(&ring(&[1]), [3; 32]);
        let _ = handshake(&mut c, &mut n);
        let huge = ((MAX_RECORD + TAG_LEN + 1) as u32).to_be_bytes();
        assert_eq!(n.push(&huge, &mut sink), Err(ChannelError::RecordTooLong));
    }

    #[test]
    fn split_halves_carry_data() {
        let mut c = Channel::client(&ring(&[1]), [3; 32]);
        let mut n = Channel::node(&ring(&[1]), [4; 32]);
        assert_eq!(handshake(&mut c, &mut n), (Ok(()), Ok(())));
        let first = n.seal(b"accepted").unwrap();
        let (mut tx, mut rx) = c.split().unwrap();
        let mut got = Vec::new();
        rx.push(&first, &mut got).unwrap();
        assert_eq!(got, b"accepted");
        let mut got = Vec::new();
        n.push(&tx.seal(b"program"), &mut got).unwrap();
        assert_eq!(got, b"program");
        let unopened = Channel::client(&ring(&[1]), [3; 32]);
        assert_eq!(unopened.split().err(), Some(ChannelError::NotOpen));
    }

    #[test]
    fn rotation_node_accepts_either_key() {
        let mut n = Channel::node(&ring(&[2, 1]), [4; 32]);
        let mut c = Channel::client(&ring(&[1]), [3; 32]);
        assert_eq!(handshake(&mut c, &mut n), (Ok(()), Ok(())));
        let mut n = Channel::node(&ring(&[2, 1]), [4; 32]);
        let mut c = Channel::client(&ring(&[2]), [3; 32]);
        assert_eq!(handshake(&mut c, &mut n), (Ok(()), Ok(())));
    }
}
