//! The SiON network IPC envelope around Companion Manager messages.
//!
//! SiON nodes carry every Companion Manager (CM) message inside a network IPC
//! datagram (see `sion_abi::net`): UDP port [`IPC_PORT`], a 64-byte [`Header`]
//! and the CM library's encoded message as the payload. `hostd` must speak
//! exactly that format to be a member of the nodes' group:
//!
//! - cluster [`DEFAULT_CLUSTER`];
//! - source and destination service [`COMPANION_MANAGER_SERVICE`] (1);
//! - tag [`TAG_COMPANION`];
//! - source node = `hostd`'s node id (the interface's MAC as a 48-bit number);
//! - destination node [`ALL_NODES`], for broadcasts and unicasts alike (a node's
//!   kernel accepts `ALL_NODES` arriving at its own address; SiON's own Companion
//!   Managers do the same for broadcasts);
//! - the broadcast flag set on broadcasts.
//!
//! On receipt, [`unwrap`] accepts only well-formed datagrams of our cluster,
//! addressed to service 1 with the CM tag, and to us or to every node; everything
//! else is a [`Reject`] that the caller counts in [`DropCounters`] and drops.

use serde::Serialize;
use sion_abi::net::{
    ALL_NODES, COMPANION_MANAGER_SERVICE, DEFAULT_CLUSTER, HEADER_LEN, Header, MAX_PAYLOAD,
    TAG_COMPANION, WireError,
};
use sion_companion_mgr::NodeId;

pub use sion_abi::net::IPC_PORT;

/// Why a received datagram was not handed to the Companion Manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The network IPC header did not decode (truncated, bad magic, version or
    /// length, or another cluster).
    #[error("malformed SiON datagram: {}", wire_error_text(*.0))]
    Wire(WireError),
    /// A valid datagram for another service (e.g. a kernel ping).
    #[error("datagram for service {0}, not the Companion Manager")]
    OtherService(u32),
    /// For the Companion Manager service but with another tag.
    #[error("Companion Manager datagram with unknown tag {0:#x}")]
    OtherTag(u64),
    /// Addressed to another node id (neither ours nor `ALL_NODES`).
    #[error("datagram addressed to node {0:#014x}, not to us")]
    OtherNode(u64),
}

/// Text for a [`WireError`] (the ABI crate has no `Display` for it).
fn wire_error_text(e: WireError) -> &'static str {
    match e {
        WireError::Truncated => "truncated",
        WireError::BadMagic => "bad magic",
        WireError::BadVersion => "unsupported version",
        WireError::BadLength => "bad header or payload length",
        WireError::ForeignCluster => "another cluster",
    }
}

/// The header of a Companion Manager datagram from `src` (to every node; the
/// IP destination says whether it is a broadcast).
fn cm_header(src: NodeId, broadcast: bool) -> Header {
    Header {
        cluster: DEFAULT_CLUSTER,
        broadcast,
        src_node: src.as_u64(),
        dst_node: ALL_NODES,
        src_service: COMPANION_MANAGER_SERVICE,
        dst_service: COMPANION_MANAGER_SERVICE,
        tag: TAG_COMPANION,
    }
}

/// Wraps one encoded CM message (`Transmit::bytes`) from node `src` into a SiON
/// network IPC datagram; `broadcast` sets the header's broadcast flag.
///
/// # Errors
/// [`WireError::BadLength`] if `payload` is longer than
/// [`MAX_PAYLOAD`] bytes (the CM library never produces such messages).
pub fn wrap(src: NodeId, broadcast: bool, payload: &[u8]) -> Result<Vec<u8>, WireError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(WireError::BadLength);
    }
    let header = cm_header(src, broadcast);
    let mut out = vec![0; HEADER_LEN + payload.len()];
    let n = header.encode(payload, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Unwraps a received datagram for the local member `me`: returns the sender's
/// header and the CM payload.
///
/// # Errors
/// A [`Reject`] saying why the datagram is not for the local Companion Manager.
/// Never panics, whatever the bytes.
pub fn unwrap(me: NodeId, datagram: &[u8]) -> Result<(Header, &[u8]), Reject> {
    let (header, payload) = Header::decode(datagram, DEFAULT_CLUSTER).map_err(Reject::Wire)?;
    if header.dst_service != COMPANION_MANAGER_SERVICE {
        return Err(Reject::OtherService(header.dst_service));
    }
    if header.tag != TAG_COMPANION {
        return Err(Reject::OtherTag(header.tag));
    }
    if header.dst_node != ALL_NODES && header.dst_node != me.as_u64() {
        return Err(Reject::OtherNode(header.dst_node));
    }
    Ok((header, payload))
}

/// Counts of received datagrams that never reached the Companion Manager, or
/// that it rejected, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DropCounters {
    /// Header did not decode: truncated, bad magic, version or length.
    pub malformed: u64,
    /// Another SiON cluster.
    pub foreign_cluster: u64,
    /// Another service, tag or destination node.
    pub not_for_us: u64,
    /// Our own datagrams, looped back (broadcasts) — expected, not an error.
    pub own: u64,
    /// The CM payload did not decode (`DecodeError` from the library).
    pub bad_payload: u64,
    /// Datagrams that could not be sent (send errors).
    pub send_errors: u64,
}

impl DropCounters {
    /// Counts one rejected datagram.
    pub fn count(&mut self, r: &Reject) {
        match r {
            Reject::Wire(WireError::ForeignCluster) => self.foreign_cluster += 1,
            Reject::Wire(_) => self.malformed += 1,
            Reject::OtherService(_) | Reject::OtherTag(_) | Reject::OtherNode(_) => {
                self.not_for_us += 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sion_abi::net::{KERNEL_SERVICE, TAG_PING, VERSION};
    use sion_companion_mgr::{Addr, Message, Role, node::NodeState, wire::Announce};

    const ME: NodeId = NodeId::from_mac([0x02, 0, 0, 0, 0, 1]);
    const NODE: NodeId = NodeId::from_mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn join() -> Vec<u8> {
        Message::Join(Announce {
            id: NODE,
            incarnation: 7,
            seq: 3,
            role: Role::Node,
            name: sion_companion_mgr::Name::derive(NODE),
            addr: Addr::new([169, 254, 3, 4], IPC_PORT),
            state: NodeState::default(),
        })
        .encode()
        .unwrap()
    }

    /// The exact bytes a SiON node's kernel would put on the wire for its CM.
    fn node_datagram(dst_node: u64, dst_service: u32, tag: u64, payload: &[u8]) -> Vec<u8> {
        let h = Header {
            cluster: DEFAULT_CLUSTER,
            broadcast: dst_node == ALL_NODES,
            src_node: NODE.as_u64(),
            dst_node,
            src_service: COMPANION_MANAGER_SERVICE,
            dst_service,
            tag,
        };
        let mut out = vec![0; HEADER_LEN + payload.len()];
        let n = h.encode(payload, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn wrapped_header_is_what_nodes_expect() {
        let payload = join();
        for broadcast in [true, false] {
            let d = wrap(ME, broadcast, &payload).unwrap();
            assert_eq!(d.len(), HEADER_LEN + payload.len());
            assert_eq!(&d[0..4], b"SiON");
            assert_eq!(d[4], VERSION);
            let (h, p) = Header::decode(&d, DEFAULT_CLUSTER).unwrap();
            assert_eq!(
                h,
                Header {
                    cluster: DEFAULT_CLUSTER,
                    broadcast,
                    src_node: 0x0200_0000_0001,
                    dst_node: ALL_NODES,
                    src_service: 1,
                    dst_service: 1,
                    tag: TAG_COMPANION,
                }
            );
            assert_eq!(p, payload);
            // The payload is the library's message, unchanged.
            assert_eq!(
                Message::decode(p).unwrap(),
                Message::decode(&payload).unwrap()
            );
        }
        assert_eq!(
            wrap(ME, true, &[0; MAX_PAYLOAD + 1]),
            Err(WireError::BadLength)
        );
        assert!(wrap(ME, true, &[0; MAX_PAYLOAD]).is_ok());
    }

    #[test]
    fn unwraps_node_datagrams_broadcast_and_unicast() {
        let payload = join();
        for dst in [ALL_NODES, ME.as_u64()] {
            let d = node_datagram(dst, COMPANION_MANAGER_SERVICE, TAG_COMPANION, &payload);
            let (h, p) = unwrap(ME, &d).unwrap();
            assert_eq!(h.src_node, NODE.as_u64());
            assert_eq!(p, payload);
        }
        // Trailing bytes after the stated length are ignored, like the kernel does.
        let mut d = node_datagram(ALL_NODES, 1, TAG_COMPANION, &payload);
        d.extend_from_slice(&[0xff; 9]);
        assert_eq!(unwrap(ME, &d).unwrap().1, payload);
        // Our own wrapping unwraps to the same payload (round trip).
        let own = wrap(ME, false, &payload).unwrap();
        assert_eq!(unwrap(NODE, &own).unwrap().1, payload);
    }

    #[test]
    fn rejects_foreign_and_malformed_datagrams() {
        let payload = join();
        let ping = node_datagram(ALL_NODES, KERNEL_SERVICE, TAG_PING, b"x");
        assert_eq!(unwrap(ME, &ping), Err(Reject::OtherService(0)));
        let app = node_datagram(ALL_NODES, 2, TAG_COMPANION, &payload);
        assert_eq!(unwrap(ME, &app), Err(Reject::OtherService(2)));
        let tag = node_datagram(ALL_NODES, 1, 0x99, &payload);
        assert_eq!(unwrap(ME, &tag), Err(Reject::OtherTag(0x99)));
        let other = node_datagram(NODE.as_u64(), 1, TAG_COMPANION, &payload);
        assert_eq!(unwrap(ME, &other), Err(Reject::OtherNode(NODE.as_u64())));
        let mut foreign = node_datagram(ALL_NODES, 1, TAG_COMPANION, &payload);
        foreign[8] ^= 1;
        assert_eq!(
            unwrap(ME, &foreign),
            Err(Reject::Wire(WireError::ForeignCluster))
        );
        let good = node_datagram(ALL_NODES, 1, TAG_COMPANION, &payload);
        for cut in 0..good.len() {
            assert!(unwrap(ME, &good[..cut]).is_err(), "cut at {cut}");
        }
        let mut counters = DropCounters::default();
        for r in [
            Reject::Wire(WireError::BadMagic),
            Reject::Wire(WireError::Truncated),
            Reject::Wire(WireError::ForeignCluster),
            Reject::OtherService(0),
            Reject::OtherTag(5),
            Reject::OtherNode(3),
        ] {
            counters.count(&r);
            assert!(!r.to_string().is_empty());
        }
        assert_eq!(
            (
                counters.malformed,
                counters.foreign_cluster,
                counters.not_for_us
            ),
            (2, 1, 3)
        );
    }

    /// A big-endian `u32` of `d` at `at`.
    fn be32(d: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
    }

    /// A big-endian `u64` of `d` at `at`.
    fn be64(d: &[u8], at: usize) -> u64 {
        (u64::from(be32(d, at)) << 32) | u64::from(be32(d, at + 4))
    }

    /// A valid node datagram with one header byte range overwritten by
    /// `patch` (at offset `at`, clipped to the header): the deeper checks of
    /// [`unwrap`] see every field take arbitrary values.
    fn patched(at: usize, patch: &[u8], trailing: &[u8]) -> Vec<u8> {
        let mut d = node_datagram(ALL_NODES, COMPANION_MANAGER_SERVICE, TAG_COMPANION, &join());
        let end = (at + patch.len()).min(HEADER_LEN);
        d[at..end].copy_from_slice(&patch[..end - at]);
        d.extend_from_slice(trailing);
        d
    }

    proptest! {
        /// Whatever `wrap` produces, `unwrap` gives back: same payload, our
        /// source node, the broadcast flag, the CM service and tag.
        #[test]
        fn wrap_then_unwrap_round_trips(
            mac in any::<[u8; 6]>(),
            broadcast in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD),
        ) {
            let src = NodeId::from_mac(mac);
            let d = wrap(src, broadcast, &payload).unwrap();
            prop_assert_eq!(d.len(), HEADER_LEN + payload.len());
            let (h, p) = unwrap(ME, &d).unwrap();
            prop_assert_eq!(p, &payload[..]);
            prop_assert_eq!(h, cm_header(src, broadcast));
        }

        /// Bytes that do not start with a SiON header are rejected as
        /// malformed, for the right reason: too short, else bad magic.
        #[test]
        fn garbage_is_rejected_as_malformed(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assume!(bytes.len() < 4 || bytes[..4] != *b"SiON");
            let want = if bytes.len() < HEADER_LEN {
                WireError::Truncated
            } else {
                WireError::BadMagic
            };
            prop_assert_eq!(unwrap(ME, &bytes), Err(Reject::Wire(want)));
        }

        /// Every cut of a valid datagram short of its stated length is
        /// rejected as truncated.
        #[test]
        fn every_truncation_is_rejected_as_truncated(cut in 0usize..1000) {
            let good = node_datagram(ALL_NODES, 1, TAG_COMPANION, &join());
            let cut = cut % good.len();
            prop_assert_eq!(unwrap(ME, &good[..cut]), Err(Reject::Wire(WireError::Truncated)));
        }

        /// With any header field overwritten, `unwrap` either accepts exactly
        /// what the header says (our cluster, service 1, the CM tag, to us or
        /// to all, the stated payload) or names the first field that is
        /// wrong; and the drop counters count each rejection once.
        #[test]
        fn patched_headers_are_accepted_or_rejected_for_their_reason(
            at in 0usize..HEADER_LEN,
            patch in proptest::collection::vec(any::<u8>(), 1..12),
            trailing in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let d = patched(at, &patch, &trailing);
            let mut counters = DropCounters::default();
            match unwrap(ME, &d) {
                Ok((h, p)) => {
                    prop_assert_eq!(&d[..4], b"SiON");
                    prop_assert_eq!(h.cluster, DEFAULT_CLUSTER);
                    prop_assert_eq!(h.dst_service, COMPANION_MANAGER_SERVICE);
                    prop_assert_eq!(h.tag, TAG_COMPANION);
                    prop_assert!(h.dst_node == ALL_NODES || h.dst_node == ME.as_u64());
                    let len = be32(&d, 12) as usize;
                    prop_assert_eq!(p, &d[HEADER_LEN..HEADER_LEN + len]);
                }
                Err(r) => {
                    match r {
                        Reject::Wire(WireError::BadMagic) => prop_assert_ne!(&d[..4], b"SiON"),
                        Reject::Wire(WireError::BadVersion) => prop_assert_ne!(d[4], VERSION),
                        Reject::Wire(WireError::ForeignCluster) => {
                            prop_assert_ne!(be32(&d, 8), DEFAULT_CLUSTER)
                        }
                        Reject::Wire(WireError::BadLength | WireError::Truncated) => {
                            let stated = be32(&d, 12) as usize;
                            let header_len = usize::from(u16::from_be_bytes([d[6], d[7]]));
                            prop_assert!(
                                header_len != HEADER_LEN
                                    || stated > MAX_PAYLOAD
                                    || d.len() < HEADER_LEN + stated
                            );
                        }
                        Reject::OtherService(s) => {
                            prop_assert_eq!(s, be32(&d, 36));
                            prop_assert_ne!(s, COMPANION_MANAGER_SERVICE);
                        }
                        Reject::OtherTag(t) => {
                            prop_assert_eq!(t, be64(&d, 40));
                            prop_assert_ne!(t, TAG_COMPANION);
                        }
                        Reject::OtherNode(n) => {
                            prop_assert_eq!(n, be64(&d, 24));
                            prop_assert!(n != ALL_NODES && n != ME.as_u64());
                        }
                    }
                    counters.count(&r);
                    let c = counters;
                    prop_assert_eq!(c.malformed + c.foreign_cluster + c.not_for_us, 1);
                    prop_assert_eq!(
                        c.foreign_cluster,
                        u64::from(r == Reject::Wire(WireError::ForeignCluster))
                    );
                }
            }
        }
    }
}
