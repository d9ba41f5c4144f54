//! Sealed Companion Manager datagrams: an HMAC tag and a replay counter
//! around the [`wire`](crate::wire) encoding.
//!
//! A sealed datagram is
//!
//! ```text
//! [0xA2] [key id: 4] [epoch: u64 BE] [counter: u64 BE] [message] [tag: 16]
//! ```
//!
//! - `0xA2` ([`SEALED_VERSION`]) tells it from an open group's datagram,
//!   whose first byte is [`PROTOCOL_VERSION`](crate::wire::PROTOCOL_VERSION) (3);
//! - `key id` names the cluster key that sealed it (the sender's first key);
//! - `epoch` is a random number the sender draws when it starts, `counter`
//!   counts its datagrams from 0 (every destination shares one counter);
//! - `message` is the [`wire`](crate::wire) encoding (version, body, CRC);
//! - `tag` is HMAC-SHA-256 (RFC 2104) of everything before it with the
//!   key's datagram MAC key, truncated to its first 16 bytes (as RFC 4868
//!   §2.3 does for IPsec).
//!
//! **Replay protection** (after RFC 4303 §3.4.3, IPsec's anti-replay
//! window): the receiver keeps, per sender epoch, the highest counter seen
//! and a 256-bit window of the counters below it. A datagram whose tag is
//! right but whose counter was seen, or is more than 256 below the highest,
//! is dropped as replayed. The receiver remembers the [`MAX_EPOCHS`] epochs
//! heard from last; a datagram of an epoch it has forgotten (or never knew —
//! the sender's run before the receiver started) is taken once and its
//! epoch remembered again. What a replay of such a datagram can do is bounded
//! by the group protocol itself, which ignores announces of older runs and
//! stale numbers.
//!
//! The source address is not covered: a sealed datagram replayed from
//! another address is still a replay and dropped; one that was never heard
//! here before (a unicast to another member) reaches a member it was not
//! meant for, which ignores pings for someone else.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use hmac::Mac;

use super::{KeyId, Keyring};

/// The first byte of a sealed datagram.
pub const SEALED_VERSION: u8 = 0xA2;

/// Length of the truncated HMAC-SHA-256 tag.
pub const TAG_LEN: usize = 16;

/// Bytes before the message: version, key id, epoch, counter.
pub const HEADER_LEN: usize = 1 + 4 + 8 + 8;

/// Bytes a seal adds to a message.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Sender epochs remembered for replay protection (about 60 bytes each).
pub const MAX_EPOCHS: usize = 512;

/// Counters below the highest seen that are still accepted once.
pub const WINDOW: u64 = 256;

/// Why a datagram was dropped by [`DatagramAuth::open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unauthenticated {
    /// Not sealed: an open group's datagram, or garbage.
    Unsealed,
    /// Sealed with a key this member does not accept.
    UnknownKey(KeyId),
    /// The tag is wrong: tampered, truncated or forged.
    BadTag,
    /// The tag is right but the counter was seen or is too old.
    Replayed,
}

impl fmt::Display for Unauthenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unauthenticated::Unsealed => f.write_str("not sealed with a cluster key"),
            Unauthenticated::UnknownKey(id) => write!(f, "sealed with unknown key {id}"),
            Unauthenticated::BadTag => f.write_str("wrong authentication tag"),
            Unauthenticated::Replayed => f.write_str("replayed"),
        }
    }
}

impl core::error::Error for Unauthenticated {}

/// Counts of what [`DatagramAuth`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Datagrams sealed.
    pub sealed: u64,
    /// Datagrams opened and accepted.
    pub accepted: u64,
    /// Dropped: not sealed.
    pub unsealed: u64,
    /// Dropped: sealed with a key not in the keyring.
    pub unknown_key: u64,
    /// Dropped: wrong tag.
    pub bad_tag: u64,
    /// Dropped: replayed.
    pub replayed: u64,
}

impl AuthStats {
    /// Every dropped datagram.
    pub fn dropped(&self) -> u64 {
        self.unsealed + self.unknown_key + self.bad_tag + self.replayed
    }
}

/// One sender epoch's anti-replay window.
#[derive(Clone, Copy)]
struct Window {
    /// Highest counter accepted.
    top: u64,
    /// Bit `i` (word `i / 64`, bit `i % 64`): counter `top - i` was accepted.
    bits: [u64; (WINDOW / 64) as usize],
    /// When it was last used ([`DatagramAuth`]'s tick), for eviction.
    used: u64,
}

impl Window {
    fn new(counter: u64, used: u64) -> Window {
        let mut bits = [0; (WINDOW / 64) as usize];
        bits[0] = 1;
        Window {
            top: counter,
            bits,
            used,
        }
    }

    /// Whether `counter` is new; does not record it.
    fn fresh(&self, counter: u64) -> bool {
        if counter > self.top {
            return true;
        }
        let off = self.top - counter;
        off < WINDOW && self.bits[(off / 64) as usize] & (1 << (off % 64)) == 0
    }

    /// Records `counter` (which [`fresh`](Window::fresh) accepted).
    fn record(&mut self, counter: u64) {
        if counter > self.top {
            let shift = counter - self.top;
            self.shift(shift);
            self.top = counter;
            self.bits[0] |= 1;
        } else {
            let off = self.top - counter;
            self.bits[(off / 64) as usize] |= 1 << (off % 64);
        }
    }

    /// Shifts the window towards older offsets by `n` bits.
    fn shift(&mut self, n: u64) {
        let words = self.bits.len();
        if n >= WINDOW {
            self.bits = [0; (WINDOW / 64) as usize];
            return;
        }
        let (w, b) = ((n / 64) as usize, (n % 64) as u32);
        for i in (0..words).rev() {
            let lo = if i >= w { self.bits[i - w] } else { 0 };
            let below = if i > w { self.bits[i - w - 1] } else { 0 };
            self.bits[i] = if b == 0 {
                lo
            } else {
                (lo << b) | (below >> (64 - b))
            };
        }
    }
}

/// Seals and opens one member's datagrams (sans-IO: the caller sends and
/// receives). See the module documentation for the format.
pub struct DatagramAuth {
    keys: Keyring,
    epoch: u64,
    counter: u64,
    windows: BTreeMap<u64, Window>,
    tick: u64,
    stats: AuthStats,
}

impl DatagramAuth {
    /// Seals with `keys`' first key, as sender epoch `epoch` (draw it at
    /// random at every start: a repeated epoch makes receivers that remember
    /// it drop this run's first datagrams as replays).
    pub fn new(keys: Keyring, epoch: u64) -> DatagramAuth {
        DatagramAuth {
            keys,
            epoch,
            counter: 0,
            windows: BTreeMap::new(),
            tick: 0,
            stats: AuthStats::default(),
        }
    }

    /// The keyring.
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// Counters.
    pub fn stats(&self) -> AuthStats {
        self.stats
    }

    /// `message` sealed: [`SEAL_OVERHEAD`] bytes longer.
    pub fn seal(&mut self, message: &[u8]) -> Vec<u8> {
        let key = self.keys.signing();
        let mut out = Vec::with_capacity(message.len() + SEAL_OVERHEAD);
        out.push(SEALED_VERSION);
        out.extend_from_slice(&key.id().0);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(message);
        let mut mac = key.datagram_mac();
        mac.update(&out);
        let tag = mac.finalize().into_bytes();
        out.extend_from_slice(&tag[..TAG_LEN]);
        self.counter = self.counter.wrapping_add(1);
        self.stats.sealed += 1;
        out
    }

    /// The message inside `datagram` if it is sealed with an accepted key,
    /// its tag is right and it is not a replay (checked in that order; only
    /// an authentic datagram moves the replay window).
    ///
    /// # Errors
    /// [`Unauthenticated`], counted in [`stats`](DatagramAuth::stats).
    pub fn open<'a>(&mut self, datagram: &'a [u8]) -> Result<&'a [u8], Unauthenticated> {
        let r = self.check(datagram);
        match r {
            Ok(_) => self.stats.accepted += 1,
            Err(Unauthenticated::Unsealed) => self.stats.unsealed += 1,
            Err(Unauthenticated::UnknownKey(_)) => self.stats.unknown_key += 1,
            Err(Unauthenticated::BadTag) => self.stats.bad_tag += 1,
            Err(Unauthenticated::Replayed) => self.stats.replayed += 1,
        }
        r
    }

    fn check<'a>(&mut self, d: &'a [u8]) -> Result<&'a [u8], Unauthenticated> {
        if d.first() != Some(&SEALED_VERSION) {
            return Err(Unauthenticated::Unsealed);
        }
        if d.len() < SEAL_OVERHEAD {
            return Err(Unauthenticated::BadTag);
        }
        let id = KeyId([d[1], d[2], d[3], d[4]]);
        let key = self.keys.find(id).ok_or(Unauthenticated::UnknownKey(id))?;
        let (signed, tag) = d.split_at(d.len() - TAG_LEN);
        let mut mac = key.datagram_mac();
        mac.update(signed);
        mac.verify_truncated_left(tag)
            .map_err(|_| Unauthenticated::BadTag)?;
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&d[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let (epoch, counter) = (word(5), word(13));
        self.tick += 1;
        let tick = self.tick;
        match self.windows.get_mut(&epoch) {
            Some(w) => {
                if !w.fresh(counter) {
                    return Err(Unauthenticated::Replayed);
                }
                w.record(counter);
                w.used = tick;
            }
            None => {
                if self.windows.len() >= MAX_EPOCHS
                    && let Some(oldest) = self.windows.iter().min_by_key(|(_, w)| w.used)
                {
                    let oldest = *oldest.0;
                    self.windows.remove(&oldest);
                }
                self.windows.insert(epoch, Window::new(counter, tick));
            }
        }
        Ok(&signed[HEADER_LEN..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KEY_LEN;

    fn ring(keys: &[u8]) -> Keyring {
        let secrets: Vec<[u8; KEY_LEN]> = keys.iter().map(|&k| [k; KEY_LEN]).collect();
        Keyring::new(&secrets).unwrap()
    }

    #[test]
    fn sealed_datagrams_open_once() {
        let mut a = DatagramAuth::new(ring(&[1]), 7);
        let mut b = DatagramAuth::new(ring(&[1]), 8);
        let d = a.seal(b"hello");
        assert_eq!(d.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(b.open(&d), Ok(&b"hello"[..]));
        assert_eq!(b.open(&d), Err(Unauthenticated::Replayed));
        let d2 = a.seal(b"again");
        assert_eq!(b.open(&d2), Ok(&b"again"[..]));
        assert_eq!(b.open(&d2), Err(Unauthenticated::Replayed));
        assert_eq!(b.open(&d), Err(Unauthenticated::Replayed));
        let s = b.stats();
        assert_eq!((s.accepted, s.replayed, s.dropped()), (2, 3, 3));
    }

    #[test]
    fn tampered_datagrams_are_dropped() {
        let mut a = DatagramAuth::new(ring(&[1]), 7);
        let mut b = DatagramAuth::new(ring(&[1]), 8);
        let d = a.seal(b"the message");
        for i in 0..d.len() {
            let mut t = d.clone();
            t[i] ^= 0x01;
            let r = b.open(&t);
            assert!(r.is_err(), "flipping byte {i} went unnoticed");
        }
        for len in 0..d.len() {
            assert!(b.open(&d[..len]).is_err());
        }
        // Nothing tampered moved the window: the original still opens.
        assert_eq!(b.open(&d), Ok(&b"the message"[..]));
    }

    #[test]
    fn wrong_key_and_unsealed_are_dropped() {
        let mut a = DatagramAuth::new(ring(&[1]), 7);
        let mut b = DatagramAuth::new(ring(&[2]), 8);
        let d = a.seal(b"x");
        assert!(matches!(b.open(&d), Err(Unauthenticated::UnknownKey(_))));
        // A forged key id (the receiver's) with the sender's tag.
        let mut forged = d.clone();
        forged[1..5].copy_from_slice(&b.keys().signing().id().0);
        assert_eq!(b.open(&forged), Err(Unauthenticated::BadTag));
        let mut plain = alloc::vec![crate::wire::PROTOCOL_VERSION];
        plain.extend_from_slice(b"body");
        assert_eq!(b.open(&plain), Err(Unauthenticated::Unsealed));
        assert_eq!(b.open(&[]), Err(Unauthenticated::Unsealed));
        let s = b.stats();
        assert_eq!(
            (s.unknown_key, s.bad_tag, s.unsealed, s.accepted),
            (1, 1, 2, 0)
        );
    }

    #[test]
    fn key_rotation_accepts_every_key_and_signs_with_the_first() {
        // Old nodes: key 1 only. Mid-rotation: [1, 2]. Rotated: [2, 1]. New: [2].
        let mut old = DatagramAuth::new(ring(&[1]), 1);
        let mut mid = DatagramAuth::new(ring(&[1, 2]), 2);
        let mut rotated = DatagramAuth::new(ring(&[2, 1]), 3);
        let mut new = DatagramAuth::new(ring(&[2]), 4);
        let from_old = old.seal(b"o");
        let from_rotated = rotated.seal(b"r");
        assert!(mid.open(&from_old).is_ok());
        assert!(mid.open(&from_rotated).is_ok());
        assert!(rotated.open(&from_old).is_ok());
        assert!(new.open(&from_rotated).is_ok());
        assert!(matches!(
            new.open(&from_old),
            Err(Unauthenticated::UnknownKey(_))
        ));
        let from_mid = mid.seal(b"m");
        assert!(old.open(&from_mid).is_ok());
        assert!(rotated.open(&from_mid).is_ok());
    }

    #[test]
    fn reordered_datagrams_within_the_window_open() {
        let mut a = DatagramAuth::new(ring(&[1]), 7);
        let mut b = DatagramAuth::new(ring(&[1]), 8);
        let ds: Vec<Vec<u8>> = (0..600).map(|_| a.seal(b"m")).collect();
        // Every other one first, then the rest backwards.
        for d in ds.iter().step_by(2) {
            assert!(b.open(d).is_ok());
        }
        let mut late_ok = 0;
        for d in ds.iter().skip(1).step_by(2).rev() {
            if b.open(d).is_ok() {
                late_ok += 1;
            }
        }
        // The odd counters within 256 of the top (599) open; older ones are
        // too old (dropped as replays, never accepted twice).
        assert_eq!(late_ok, 128);
        for d in &ds {
            assert!(b.open(d).is_err());
        }
    }

    #[test]
    fn a_restarted_sender_with_a_new_epoch_is_heard() {
        let mut b = DatagramAuth::new(ring(&[1]), 8);
        let mut run1 = DatagramAuth::new(ring(&[1]), 100);
        for _ in 0..10 {
            assert!(b.open(&run1.seal(b"x")).is_ok());
        }
        let mut run2 = DatagramAuth::new(ring(&[1]), 101);
        assert!(b.open(&run2.seal(b"y")).is_ok());
    }

    #[test]
    fn epochs_are_bounded() {
        let mut b = DatagramAuth::new(ring(&[1]), 0);
        for e in 0..(MAX_EPOCHS as u64 + 10) {
            let mut s = DatagramAuth::new(ring(&[1]), e + 1);
            assert!(b.open(&s.seal(b"x")).is_ok());
        }
        assert_eq!(b.windows.len(), MAX_EPOCHS);
    }

    #[test]
    fn window_shifts_across_words() {
        let mut w = Window::new(0, 0);
        for c in [1, 64, 65, 130, 200, 255, 300] {
            assert!(w.fresh(c));
            w.record(c);
            assert!(!w.fresh(c));
        }
        // 300 - 255 = 45 … all recorded ones within 256 below 300 stay seen.
        for c in [64, 65, 130, 200, 255] {
            assert!(!w.fresh(c), "{c} forgotten");
        }
        for c in [66, 129, 201, 299] {
            assert!(w.fresh(c), "{c} wrongly seen");
        }
        assert!(!w.fresh(44), "older than the window");
    }
}
