//! SiON's network IPC wire format: one message, one UDP datagram.
//!
//! A message addressed to a process on another node (or to that process on
//! every node) travels as a single UDP datagram to [`IPC_PORT`] — unicast to the
//! node's address, or broadcast on the link — with this 64-byte header in front
//! of the payload. All integers are big-endian (network order).
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `"SiON"` |
//! | 4 | 1 | version ([`VERSION`]) |
//! | 5 | 1 | flags (bit 0: broadcast) |
//! | 6 | 2 | header length (64) |
//! | 8 | 4 | cluster id (nodes only accept their own cluster's messages) |
//! | 12 | 4 | message length (payload bytes) |
//! | 16 | 8 | source node id |
//! | 24 | 8 | destination node id ([`ALL_NODES`] for broadcast) |
//! | 32 | 4 | source service |
//! | 36 | 4 | destination service |
//! | 40 | 8 | message tag (the message type) |
//! | 48 | 16 | authentication tag (zero until messages are signed) |
//!
//! Processes are addressed across nodes by *service number*: a process
//! registers a service number on its node (for example the Companion Manager),
//! and the same service on every node forms one group. Service 0 is the
//! kernel itself, which answers [`TAG_PING`] with [`TAG_PONG`].

/// UDP port of SiON's network IPC on every node.
pub const IPC_PORT: u16 = 7420;
/// The magic bytes at the start of every datagram.
pub const MAGIC: [u8; 4] = *b"SiON";
/// The wire-format version this code speaks.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 64;
/// Largest payload in one datagram, in bytes: what fits in one Ethernet frame
/// (1500 − 20 IPv4 − 8 UDP − 64 header), so no message is ever IP-fragmented.
pub const MAX_PAYLOAD: usize = 1500 - 20 - 8 - HEADER_LEN;
/// Destination node id meaning "every node".
pub const ALL_NODES: u64 = u64::MAX;
/// The default cluster id ("SION").
pub const DEFAULT_CLUSTER: u32 = 0x5349_4F4E;
/// Service number of the kernel's own responder.
pub const KERNEL_SERVICE: u32 = 0;
/// Tag of a probe to the kernel service: the payload is echoed in the pong.
pub const TAG_PING: u64 = 1;
/// Tag of the kernel's answer to a ping: a [`Pong`] followed by the ping's payload.
pub const TAG_PONG: u64 = 2;

/// Service number of the Companion Manager (group membership and placement)
/// on every node and in `hostd`.
pub const COMPANION_MANAGER_SERVICE: u32 = 1;
/// Service number of the App-Program Manager on every node.
pub const APP_MANAGER_SERVICE: u32 = 2;
/// TCP port where every node's App-Program Manager takes jobs from `hostd submit`.
pub const JOB_PORT: u16 = 7421;
/// Tag of the local message the App-Program Manager sends the Companion Manager
/// when its number of running jobs changes (payload: `u16` little-endian).
pub const TAG_JOB_STATE: u64 = 0x4A4F_4253; // "JOBS"
/// Tag of the local message the App-Program Manager sends the Companion
/// Manager when the node is to leave the group gracefully (`hostd drain`;
/// no payload).
pub const TAG_LEAVE: u64 = 0x4C45_4156; // "LEAV"

/// Tag of a Companion Manager message (payload: `sion_companion_mgr::Message`).
pub const TAG_COMPANION: u64 = 0x434D; // "CM"

/// Bit 0 of the flags byte.
const FLAG_BROADCAST: u8 = 1;

/// The decoded header of a SiON datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Cluster id of the sender.
    pub cluster: u32,
    /// Sent to every node.
    pub broadcast: bool,
    /// Sender's node id.
    pub src_node: u64,
    /// Receiver's node id, or [`ALL_NODES`].
    pub dst_node: u64,
    /// Sender's service number.
    pub src_service: u32,
    /// Receiver's service number.
    pub dst_service: u32,
    /// Message tag.
    pub tag: u64,
}

/// Why a datagram was rejected. Each kind is counted separately by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the header, or than the header plus the stated length.
    Truncated,
    /// The magic bytes are not `"SiON"`.
    BadMagic,
    /// A version this code does not speak.
    BadVersion,
    /// A header length other than 64, or a payload over [`MAX_PAYLOAD`].
    BadLength,
    /// From another cluster.
    ForeignCluster,
}

impl Header {
    /// Writes the header and `payload` into `out`; returns the datagram length.
    /// Errors: [`WireError::BadLength`] when the payload exceeds [`MAX_PAYLOAD`]
    /// or does not fit in `out`.
    pub fn encode(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, WireError> {
        let total = HEADER_LEN + payload.len();
        if payload.len() > MAX_PAYLOAD || out.len() < total {
            return Err(WireError::BadLength);
        }
        let h = &mut out[..HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[5] = if self.broadcast { FLAG_BROADCAST } else { 0 };
        h[6..8].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
        h[8..12].copy_from_slice(&self.cluster.to_be_bytes());
        h[12..16].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        h[16..24].copy_from_slice(&self.src_node.to_be_bytes());
        h[24..32].copy_from_slice(&self.dst_node.to_be_bytes());
        h[32..36].copy_from_slice(&self.src_service.to_be_bytes());
        h[36..40].copy_from_slice(&self.dst_service.to_be_bytes());
        h[40..48].copy_from_slice(&self.tag.to_be_bytes());
        h[48..64].fill(0);
        out[HEADER_LEN..total].copy_from_slice(payload);
        Ok(total)
    }

    /// Parses a datagram of cluster `cluster`; returns the header and the payload.
    pub fn decode(datagram: &[u8], cluster: u32) -> Result<(Header, &[u8]), WireError> {
        if datagram.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let be32 = |at: usize| {
            u32::from_be_bytes([
                datagram[at],
                datagram[at + 1],
                datagram[at + 2],
                datagram[at + 3],
            ])
        };
        let be64 = |at: usize| (u64::from(be32(at)) << 32) | u64::from(be32(at + 4));
        if datagram[0..4] != MAGIC {
            return Err(WireError::BadMagic);
        }
        if datagram[4] != VERSION {
            return Err(WireError::BadVersion);
        }
        let header_len = u16::from_be_bytes([datagram[6], datagram[7]]) as usize;
        let len = be32(12) as usize;
        if header_len != HEADER_LEN || len > MAX_PAYLOAD {
            return Err(WireError::BadLength);
        }
        if datagram.len() < HEADER_LEN + len {
            return Err(WireError::Truncated);
        }
        let header = Header {
            cluster: be32(8),
            broadcast: datagram[5] & FLAG_BROADCAST != 0,
            src_node: be64(16),
            dst_node: be64(24),
            src_service: be32(32),
            dst_service: be32(36),
            tag: be64(40),
        };
        if header.cluster != cluster {
            return Err(WireError::ForeignCluster);
        }
        Ok((header, &datagram[HEADER_LEN..HEADER_LEN + len]))
    }
}

/// What a node's kernel answers to a ping (payload of [`TAG_PONG`], before the
/// echoed ping payload): 9 little-endian `u64` fields, 72 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pong {
    /// The node's id (from its MAC).
    pub node: u64,
    /// Nanoseconds since the node booted.
    pub uptime_ns: u64,
    /// Valid SiON datagrams received.
    pub received: u64,
    /// Datagrams dropped: too short or truncated.
    pub dropped_truncated: u64,
    /// Datagrams dropped: wrong magic.
    pub dropped_magic: u64,
    /// Datagrams dropped: wrong version or header/payload length.
    pub dropped_version: u64,
    /// Datagrams dropped: another cluster.
    pub dropped_cluster: u64,
    /// Messages dropped because no process had the service, or its queue was full.
    pub dropped_undeliverable: u64,
    /// Outgoing unicast datagrams dropped because their neighbour did not answer
    /// ARP (RFC 826) in time: a dead or departed node.
    pub unsent_unresolved: u64,
}

impl Pong {
    /// Encoded length in bytes.
    pub const LEN: usize = 72;

    fn fields(&self) -> [u64; 9] {
        [
            self.node,
            self.uptime_ns,
            self.received,
            self.dropped_truncated,
            self.dropped_magic,
            self.dropped_version,
            self.dropped_cluster,
            self.dropped_undeliverable,
            self.unsent_unresolved,
        ]
    }

    /// The 72-byte encoding.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        for (i, v) in self.fields().into_iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes a pong payload; `None` if shorter than [`Pong::LEN`].
    pub fn decode(bytes: &[u8]) -> Option<Pong> {
        let f = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        Some(Pong {
            node: f(0)?,
            uptime_ns: f(1)?,
            received: f(2)?,
            dropped_truncated: f(3)?,
            dropped_magic: f(4)?,
            dropped_version: f(5)?,
            dropped_cluster: f(6)?,
            dropped_undeliverable: f(7)?,
            unsent_unresolved: f(8)?,
        })
    }

    /// Total received datagrams dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_truncated
            + self.dropped_magic
            + self.dropped_version
            + self.dropped_cluster
            + self.dropped_undeliverable
    }
}

/// A node id from a MAC address: the 48 MAC bits, so ids are stable and unique
/// on a LAN.
pub const fn node_id_from_mac(mac: [u8; 6]) -> u64 {
    let mut id = 0u64;
    let mut i = 0;
    while i < 6 {
        id = (id << 8) | mac[i] as u64;
        i += 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            cluster: DEFAULT_CLUSTER,
            broadcast: true,
            src_node: 0x5254_0053_4e01,
            dst_node: ALL_NODES,
            src_service: 7,
            dst_service: KERNEL_SERVICE,
            tag: TAG_PING,
        }
    }

    #[test]
    fn round_trips() {
        let mut buf = [0u8; 1500];
        let n = header().encode(b"hello", &mut buf).unwrap();
        assert_eq!(n, HEADER_LEN + 5);
        let (h, payload) = Header::decode(&buf[..n], DEFAULT_CLUSTER).unwrap();
        assert_eq!(h, header());
        assert_eq!(payload, b"hello");
    }

    #[test]
    fn rejects_every_malformation() {
        let mut buf = [0u8; 1500];
        let n = header().encode(&[7; 100], &mut buf).unwrap();
        for cut in 0..n {
            assert_eq!(
                Header::decode(&buf[..cut], DEFAULT_CLUSTER).err(),
                Some(WireError::Truncated),
                "cut {cut}"
            );
        }
        let mut bad = buf;
        bad[0] = b'X';
        assert_eq!(
            Header::decode(&bad[..n], DEFAULT_CLUSTER).err(),
            Some(WireError::BadMagic)
        );
        let mut bad = buf;
        bad[4] = 2;
        assert_eq!(
            Header::decode(&bad[..n], DEFAULT_CLUSTER).err(),
            Some(WireError::BadVersion)
        );
        let mut bad = buf;
        bad[7] = 63;
        assert_eq!(
            Header::decode(&bad[..n], DEFAULT_CLUSTER).err(),
            Some(WireError::BadLength)
        );
        let mut bad = buf;
        bad[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Header::decode(&bad[..n], DEFAULT_CLUSTER).err(),
            Some(WireError::BadLength)
        );
        assert_eq!(
            Header::decode(&buf[..n], 1).err(),
            Some(WireError::ForeignCluster)
        );
        assert_eq!(
            header().encode(&[0; MAX_PAYLOAD + 1], &mut [0; 2000]).err(),
            Some(WireError::BadLength)
        );
    }

    /// Random datagrams (half with a valid magic and version) decode to a
    /// header and payload that encode back to the same header and payload,
    /// or fail with the error the first bad field calls for.
    #[test]
    fn random_datagrams_round_trip_or_fail_for_their_first_bad_field() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut buf = [0u8; 200];
        let mut accepted = 0;
        for round in 0..20_000 {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if round % 2 == 0 {
                buf[..4].copy_from_slice(&MAGIC);
                buf[4] = VERSION;
                if round % 4 == 0 {
                    buf[6..8].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
                    buf[12..16].copy_from_slice(&((x % 150) as u32).to_be_bytes());
                    buf[8..12].copy_from_slice(&DEFAULT_CLUSTER.to_be_bytes());
                }
            }
            let len = (x % 200) as usize;
            let datagram = &buf[..len];
            match Header::decode(datagram, DEFAULT_CLUSTER) {
                Ok((h, payload)) => {
                    accepted += 1;
                    let mut out = [0u8; 300];
                    let n = h.encode(payload, &mut out).unwrap();
                    assert_eq!(Header::decode(&out[..n], DEFAULT_CLUSTER), Ok((h, payload)));
                }
                Err(e) => {
                    let expected = if len < HEADER_LEN {
                        WireError::Truncated
                    } else if datagram[..4] != MAGIC {
                        WireError::BadMagic
                    } else if datagram[4] != VERSION {
                        WireError::BadVersion
                    } else {
                        e
                    };
                    assert_eq!(e, expected, "round {round}");
                }
            }
        }
        assert!(accepted > 100, "only {accepted} valid datagrams were made");
    }

    #[test]
    fn pong_round_trips_and_node_ids_come_from_macs() {
        let p = Pong {
            node: 1,
            uptime_ns: 2,
            received: 3,
            dropped_truncated: 4,
            dropped_magic: 5,
            dropped_version: 6,
            dropped_cluster: 7,
            dropped_undeliverable: 8,
            unsent_unresolved: 9,
        };
        assert_eq!(Pong::decode(&p.encode()), Some(p));
        assert_eq!(p.dropped(), 30);
        assert_eq!(Pong::decode(&[0; Pong::LEN - 1]), None);
        assert_eq!(
            node_id_from_mac([0x52, 0x54, 0, 0x53, 0x4e, 1]),
            0x5254_0053_4e01
        );
    }
}
