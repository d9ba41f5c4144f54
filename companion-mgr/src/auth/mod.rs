//! The cluster key: what makes a SiON group authenticated (issue 14).
//!
//! A cluster key is 32 random bytes made by `hostd keygen`, built into the
//! node image (`sion-image --key FILE`, or the boot argument `key=HEX`) and
//! read by `hostd` from `~/.config/sion/cluster.key` or `--key FILE`. Members
//! holding it:
//!
//! - seal every Companion Manager datagram with an HMAC-SHA-256 tag and a
//!   counter against replays ([`datagram`]);
//! - run every job connection (`hostd` ↔ App-Program Manager, TCP 7421) through
//!   a mutually authenticated, ChaCha20-Poly1305-encrypted channel
//!   ([`channel`]).
//!
//! A member without a key runs an *open* group, as SiON did before keys: plain
//! datagrams, plain job connections, and it says so. Keyed and open members do
//! not understand each other.
//!
//! **Key file format**: UTF-8 text, one key a line as 64 hexadecimal digits
//! (either case); blank lines and lines starting with `#` are ignored. The
//! first key signs (seals datagrams, opens job connections); every key in the
//! file is accepted from others, which is how a key is rotated: add the new
//! key second everywhere, then move it first, then drop the old one. The boot
//! argument form is the same keys separated by `,` (`key=HEX,HEX`).
//!
//! **Derived keys** (HKDF-SHA-256, RFC 5869, salt `"sion cluster key v1"`,
//! the cluster key as input keying material) with these `info` strings: the
//! 4-byte key id (`"key id"`, shown as 8 hex digits; it names the key on the
//! wire and on screens and says nothing of the key), the datagram MAC key
//! (`"datagram mac"`), the job handshake key (`"job handshake"`) and the job
//! traffic secret (`"job traffic"`). No key is used for two purposes.
//!
//! Every primitive is RustCrypto's (`hmac`, `sha2`, `hkdf`,
//! `chacha20poly1305`); tags are compared in constant time by `hmac`'s
//! `verify_*` methods.

pub mod channel;
pub mod datagram;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub use channel::{Channel, ChannelError, Opener, Sealer};
pub use datagram::{AuthStats, DatagramAuth, Unauthenticated};

/// Length of a cluster key in bytes.
pub const KEY_LEN: usize = 32;

/// Most keys a keyring holds (a key file or boot argument with more is
/// refused).
pub const MAX_KEYS: usize = 8;

/// The salt of every derivation from a cluster key.
const KDF_SALT: &[u8] = b"sion cluster key v1";

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The 4-byte name of a cluster key: the first bytes of its HKDF output with
/// `info = "key id"`. Shown as 8 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 4]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One cluster key and the keys derived from it.
#[derive(Clone)]
pub struct ClusterKey {
    id: KeyId,
    datagram_mac: [u8; 32],
    job_handshake: [u8; 32],
    job_traffic: [u8; 32],
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material.
        write!(f, "ClusterKey({})", self.id)
    }
}

impl ClusterKey {
    /// Derives the working keys from the 32 secret bytes (see the module
    /// documentation for the derivation).
    pub fn new(secret: &[u8; KEY_LEN]) -> ClusterKey {
        let hk = Hkdf::<Sha256>::new(Some(KDF_SALT), secret);
        let expand = |info: &[u8]| {
            let mut out = [0u8; 32];
            // 32 bytes is far below HKDF-SHA-256's limit of 255 × 32.
            hk.expand(info, &mut out).expect("HKDF length within limit");
            out
        };
        let idb = expand(b"key id");
        ClusterKey {
            id: KeyId([idb[0], idb[1], idb[2], idb[3]]),
            datagram_mac: expand(b"datagram mac"),
            job_handshake: expand(b"job handshake"),
            job_traffic: expand(b"job traffic"),
        }
    }

    /// The key's public name.
    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn datagram_mac(&self) -> HmacSha256 {
        <HmacSha256 as Mac>::new_from_slice(&self.datagram_mac).expect("HMAC takes any key length")
    }

    pub(crate) fn handshake_mac(&self) -> HmacSha256 {
        <HmacSha256 as Mac>::new_from_slice(&self.job_handshake).expect("HMAC takes any key length")
    }

    /// The two traffic keys of one job connection: (client → node,
    /// node → client), HKDF-SHA-256 with the two handshake nonces as salt.
    pub(crate) fn traffic_keys(&self, salt: &[u8]) -> ([u8; 32], [u8; 32]) {
        let hk = Hkdf::<Sha256>::new(Some(salt), &self.job_traffic);
        let mut c2s = [0u8; 32];
        let mut s2c = [0u8; 32];
        hk.expand(b"client to node", &mut c2s)
            .expect("HKDF length within limit");
        hk.expand(b"node to client", &mut s2c)
            .expect("HKDF length within limit");
        (c2s, s2c)
    }
}

/// Why a key file or key argument was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// No key in it.
    Empty,
    /// Line (1-based) is not 64 hex digits.
    BadLine(usize),
    /// More than [`MAX_KEYS`] keys.
    TooMany,
    /// Two keys are the same (or share a key id).
    Duplicate(KeyId),
    /// Not UTF-8 text.
    NotText,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => f.write_str("no key in it (a key is 64 hex digits on a line)"),
            KeyError::BadLine(n) => write!(
                f,
                "entry {n} is not a key: a key is 64 hex digits (make one with `hostd keygen`)"
            ),
            KeyError::TooMany => write!(f, "more than {MAX_KEYS} keys"),
            KeyError::Duplicate(id) => write!(f, "key {id} is given twice"),
            KeyError::NotText => f.write_str("not UTF-8 text"),
        }
    }
}

impl core::error::Error for KeyError {}

/// The keys a member accepts, the first of which it signs with (key
/// rotation: see the module documentation).
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<ClusterKey>,
}

impl Keyring {
    /// A keyring of `secrets`, the first signing.
    ///
    /// # Errors
    /// [`KeyError::Empty`], [`KeyError::TooMany`], [`KeyError::Duplicate`].
    pub fn new(secrets: &[[u8; KEY_LEN]]) -> Result<Keyring, KeyError> {
        if secrets.is_empty() {
            return Err(KeyError::Empty);
        }
        if secrets.len() > MAX_KEYS {
            return Err(KeyError::TooMany);
        }
        let mut keys: Vec<ClusterKey> = Vec::with_capacity(secrets.len());
        for s in secrets {
            let k = ClusterKey::new(s);
            if keys.iter().any(|o| o.id == k.id) {
                return Err(KeyError::Duplicate(k.id));
            }
            keys.push(k);
        }
        Ok(Keyring { keys })
    }

    /// Parses a key file's text, or a boot argument's keys separated by `,`
    /// (see the module documentation for the format).
    ///
    /// # Errors
    /// [`KeyError`]: an entry that is not 64 hex digits (its 1-based number
    /// among lines or `,`-separated entries), none, too many, a duplicate.
    pub fn parse(text: &str) -> Result<Keyring, KeyError> {
        let mut secrets = Vec::new();
        for (i, entry) in text.split(['\n', ',']).enumerate() {
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            secrets.push(parse_hex_key(entry).ok_or(KeyError::BadLine(i + 1))?);
            if secrets.len() > MAX_KEYS {
                return Err(KeyError::TooMany);
            }
        }
        Keyring::new(&secrets)
    }

    /// Like [`parse`](Keyring::parse) for bytes that may be empty: `None` when
    /// they hold no text at all (an open group, e.g. a node image without a
    /// key).
    ///
    /// # Errors
    /// [`KeyError::NotText`], or as [`parse`](Keyring::parse).
    pub fn parse_optional(bytes: &[u8]) -> Result<Option<Keyring>, KeyError> {
        let text = core::str::from_utf8(bytes).map_err(|_| KeyError::NotText)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        Keyring::parse(text).map(Some)
    }

    /// The key that signs.
    pub fn signing(&self) -> &ClusterKey {
        &self.keys[0]
    }

    /// The key named `id`, if this keyring accepts it.
    pub fn find(&self, id: KeyId) -> Option<&ClusterKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Every key's id, the signing key first.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|k| k.id)
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring has at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn parse_hex_key(s: &str) -> Option<[u8; KEY_LEN]> {
    let b = s.as_bytes();
    if b.len() != 2 * KEY_LEN {
        return None;
    }
    let mut out = [0u8; KEY_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = (b[2 * i] as char).to_digit(16)?;
        let lo = (b[2 * i + 1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The text of a key file holding `secret` (what `hostd keygen` writes):
/// a comment line, then the key as 64 lowercase hex digits.
pub fn key_file_text(secret: &[u8; KEY_LEN]) -> String {
    let id = ClusterKey::new(secret).id;
    let mut s = alloc::format!(
        "# SiON cluster key {id} (hostd keygen). Keep it secret: whoever has it can join the group and run jobs.\n"
    );
    for b in secret {
        s.push_str(&alloc::format!("{b:02x}"));
    }
    s.push('\n');
    s
}

/// A generator of nonces for a SiON process, which has no `getrandom`: a
/// pseudo-random function in counter mode (NIST SP 800-108 §4.1 with
/// HMAC-SHA-256), keyed once with SHA-256 of the entropy the caller gathered
/// (RDRAND where the CPU has it, clock jitter; see `sion_rt::entropy`), and
/// stirring fresh entropy into every output. Output `i` is
/// `HMAC(seed, i ‖ extra)`.
pub struct NonceGen {
    seed: [u8; 32],
    counter: u64,
}

impl NonceGen {
    /// Keys the generator with SHA-256 of `entropy`.
    pub fn new(entropy: &[u8]) -> NonceGen {
        NonceGen {
            seed: Sha256::digest(entropy).into(),
            counter: 0,
        }
    }

    /// The next 32 bytes; `extra` (a clock reading, more entropy) is mixed in.
    pub fn next(&mut self, extra: &[u8]) -> [u8; 32] {
        self.counter += 1;
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.seed).expect("HMAC takes any key length");
        mac.update(&self.counter.to_be_bytes());
        mac.update(extra);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const K2: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    #[test]
    fn parses_key_files_and_boot_arguments() {
        let text = alloc::format!("# comment\n\n{K1}\n  {K2}  \n");
        let ring = Keyring::parse(&text).unwrap();
        assert_eq!(ring.len(), 2);
        let ring2 = Keyring::parse(&alloc::format!("{K1},{K2}")).unwrap();
        assert_eq!(
            ring.ids().collect::<Vec<_>>(),
            ring2.ids().collect::<Vec<_>>()
        );
        assert_eq!(ring.signing().id(), ring2.signing().id());
        assert_ne!(ring.signing().id(), ring.keys[1].id());
    }

    #[test]
    fn refuses_bad_key_text() {
        assert_eq!(Keyring::parse("").unwrap_err(), KeyError::Empty);
        assert_eq!(Keyring::parse("# only\n").unwrap_err(), KeyError::Empty);
        assert_eq!(Keyring::parse("abc").unwrap_err(), KeyError::BadLine(1));
        let bad = alloc::format!("{K1}\n{}", &K2[..63]);
        assert_eq!(Keyring::parse(&bad).unwrap_err(), KeyError::BadLine(2));
        let nonhex = K1.replace('a', "g");
        assert_eq!(Keyring::parse(&nonhex).unwrap_err(), KeyError::BadLine(1));
        let dup = alloc::format!("{K1}\n{K1}");
        assert!(matches!(Keyring::parse(&dup), Err(KeyError::Duplicate(_))));
        let many = alloc::vec![K1; MAX_KEYS + 1].join("\n");
        assert_eq!(Keyring::parse(&many).unwrap_err(), KeyError::TooMany);
    }

    #[test]
    fn empty_text_is_an_open_group() {
        assert!(Keyring::parse_optional(b"").unwrap().is_none());
        assert!(Keyring::parse_optional(b" \n").unwrap().is_none());
        assert!(Keyring::parse_optional(K1.as_bytes()).unwrap().is_some());
        assert_eq!(
            Keyring::parse_optional(&[0xff]).unwrap_err(),
            KeyError::NotText
        );
        assert_eq!(
            Keyring::parse_optional(b"# c\nzz").unwrap_err(),
            KeyError::BadLine(2)
        );
    }

    #[test]
    fn key_file_text_round_trips() {
        let secret = [7u8; KEY_LEN];
        let ring = Keyring::parse(&key_file_text(&secret)).unwrap();
        assert_eq!(ring.signing().id(), ClusterKey::new(&secret).id());
        assert!(!alloc::format!("{:?}", ring).contains("0707"));
    }

    #[test]
    fn nonces_differ() {
        let mut g = NonceGen::new(b"entropy");
        let a = g.next(b"");
        let b = g.next(b"");
        assert_ne!(a, b);
        assert_ne!(NonceGen::new(b"other").next(b""), a);
    }
}
