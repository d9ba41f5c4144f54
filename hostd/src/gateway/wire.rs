//! What two gateways send each other.
//!
//! **Datagrams** (UDP, the gateway port, 7422 by default): a [`PeerMsg`],
//! either one Companion Manager message that crossed from one LAN or a
//! keep-alive, as
//!
//! ```text
//! [b"SGW1"] [postcard: PeerMsg::Forward(Forward { src, dst, message }) | PeerMsg::Hello]
//! ```
//!
//! sealed as a whole with the cluster key ([`DatagramAuth`]'s format: HMAC
//! tag and replay counter) when the gateways have one. `message` is the
//! library's wire encoding (version, body, CRC) with every member address in
//! the between-gateways form ([`super::table`]).
//!
//! **Job connections** (TCP, the same port): the connecting gateway sends
//! [`TCP_HELLO_LEN`] bytes, `b"SGWT"` and the target member's id (u64,
//! big-endian), then both sides relay bytes unchanged. What they carry is the
//! job protocol between `hostd` and the node, which the cluster key already
//! authenticates and encrypts end to end; the gateways only see ciphertext.
//!
//! [`DatagramAuth`]: sion_companion_mgr::auth::DatagramAuth

use serde::{Deserialize, Serialize};
use sion_companion_mgr::NodeId;

/// The first bytes of a gateway datagram (before sealing).
pub const MAGIC: [u8; 4] = *b"SGW1";

/// The first bytes of a relayed job connection.
pub const TCP_MAGIC: [u8; 4] = *b"SGWT";

/// Length of a relayed job connection's greeting: magic and target id.
pub const TCP_HELLO_LEN: usize = 12;

/// The port gateways talk on, UDP and TCP, unless told otherwise.
pub const GATEWAY_PORT: u16 = 7422;

/// One message from a member of the sender's LAN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// Who sent it (its network IPC source node).
    pub src: NodeId,
    /// To whom: a member of the receiver's LAN; `None` to broadcast there.
    pub dst: Option<NodeId>,
    /// The message (the library's encoding, between-gateways addresses).
    pub message: Vec<u8>,
}

/// One datagram between gateways.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// A message from a member of the sender's LAN.
    Forward(Forward),
    /// "I am here": sent every few seconds. A gateway that hears its peer
    /// after a silence (its start, a broken link) introduces its LAN's
    /// members to the peer's LAN again.
    Hello,
}

/// Why a gateway datagram or greeting was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not starting with the magic.
    #[error("not a gateway datagram")]
    Magic,
    /// The body does not decode, has trailing bytes or an id above 48 bits.
    #[error("malformed gateway datagram")]
    Malformed,
}

/// Encodes `msg` (before sealing).
pub fn encode(msg: &PeerMsg) -> Vec<u8> {
    // Serializing these types into a growing Vec cannot fail.
    postcard::to_extend(msg, MAGIC.to_vec()).expect("a PeerMsg always serializes")
}

/// Decodes a gateway datagram (after opening its seal).
///
/// # Errors
/// [`WireError`]; never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<PeerMsg, WireError> {
    let body = bytes.strip_prefix(&MAGIC[..]).ok_or(WireError::Magic)?;
    let (msg, rest) =
        postcard::take_from_bytes::<PeerMsg>(body).map_err(|_| WireError::Malformed)?;
    let valid = |id: NodeId| NodeId::from_u64(id.as_u64()) == id;
    let ok = match &msg {
        PeerMsg::Forward(f) => valid(f.src) && f.dst.is_none_or(valid),
        PeerMsg::Hello => true,
    };
    if !rest.is_empty() || !ok {
        return Err(WireError::Malformed);
    }
    Ok(msg)
}

/// The greeting of a job connection to member `target`.
pub fn tcp_hello(target: NodeId) -> [u8; TCP_HELLO_LEN] {
    let mut out = [0; TCP_HELLO_LEN];
    out[..4].copy_from_slice(&TCP_MAGIC);
    out[4..].copy_from_slice(&target.as_u64().to_be_bytes());
    out
}

/// The target of a job connection's greeting.
///
/// # Errors
/// [`WireError::Magic`] for a wrong magic, [`WireError::Malformed`] for an
/// id above 48 bits.
pub fn parse_tcp_hello(hello: &[u8; TCP_HELLO_LEN]) -> Result<NodeId, WireError> {
    if hello[..4] != TCP_MAGIC {
        return Err(WireError::Magic);
    }
    let mut id = [0; 8];
    id.copy_from_slice(&hello[4..]);
    let id = u64::from_be_bytes(id);
    if id >> 48 != 0 {
        return Err(WireError::Malformed);
    }
    Ok(NodeId::from_u64(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Forward {
        Forward {
            src: NodeId::from_mac([0x52, 0x54, 0, 0x53, 0x4e, 0x10]),
            dst: Some(NodeId::from_mac([0x52, 0x54, 0, 0x53, 0x4e, 0])),
            message: vec![2, 1, 2, 3, 4, 5],
        }
    }

    #[test]
    fn round_trips_and_refuses_what_is_not_a_forward() {
        for f in [
            PeerMsg::Forward(sample()),
            PeerMsg::Forward(Forward {
                dst: None,
                message: vec![],
                ..sample()
            }),
            PeerMsg::Hello,
        ] {
            let b = encode(&f);
            assert!(b.starts_with(b"SGW1"));
            assert_eq!(decode(&b), Ok(f));
        }
        assert_eq!(encode(&PeerMsg::Hello), b"SGW1\x01");
        let mut b = encode(&PeerMsg::Forward(sample()));
        b.push(0);
        assert_eq!(decode(&b), Err(WireError::Malformed), "trailing byte");
        assert_eq!(decode(b"SGW2xxxx"), Err(WireError::Magic));
        assert_eq!(decode(b""), Err(WireError::Magic));
        // An id above 48 bits (postcard: variant 0, a varint of u64::MAX).
        let mut big = MAGIC.to_vec();
        big.push(0);
        big.extend([0xff; 9]);
        big.push(0x01);
        big.extend([0, 0]);
        assert_eq!(decode(&big), Err(WireError::Malformed));
        let id = NodeId::from_u64(0x5254_0053_4e01);
        assert_eq!(parse_tcp_hello(&tcp_hello(id)), Ok(id));
        let mut h = tcp_hello(id);
        h[0] = b'X';
        assert_eq!(parse_tcp_hello(&h), Err(WireError::Magic));
        let mut h = tcp_hello(id);
        h[4] = 1;
        assert_eq!(parse_tcp_hello(&h), Err(WireError::Malformed));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend(&bytes);
            let _ = decode(&bytes);
            if let Ok(f) = decode(&with_magic) {
                prop_assert_eq!(decode(&encode(&f)), Ok(f));
            }
        }
    }
}
