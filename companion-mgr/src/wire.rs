//! The Companion Manager's messages and their byte encoding (SiON paper §4.2.1, Fig. 4 b–g).
//!
//! A datagram is `[version: u8] [body: postcard] [crc: u32 little-endian]`:
//!
//! - `version` is [`PROTOCOL_VERSION`]; any other value is rejected
//!   ([`DecodeError::UnsupportedVersion`]) so that incompatible members ignore each other;
//! - `body` is the [postcard](https://docs.rs/postcard/1) encoding of a [`Message`]
//!   (varint integers, enum variants as varint indices, strings and vectors
//!   length-prefixed);
//! - `crc` is CRC-32/ISO-HDLC (the Ethernet/zlib CRC) of `version` and `body`. It
//!   makes every single corrupted byte, and every burst up to 32 bits, an error
//!   rather than a different valid message.
//!
//! The body is what SiON's network IPC envelope carries as its payload: node
//! addressing and process ids belong to that envelope, not to this encoding.
//! Every encoded message is at most [`MAX_MESSAGE_LEN`] bytes, which fits one
//! Ethernet frame with room for the IPC envelope.

use alloc::vec::Vec;
use core::fmt;

use crc::{CRC_32_ISO_HDLC, Crc};
use serde::{Deserialize, Serialize};

use crate::node::{Addr, Name, NodeId, NodeState, Role};
use crate::placement::{JobSpec, PlacementId, Verdict};

/// The protocol version this crate speaks: the first byte of every datagram.
/// Version 3 adds the node's processors to every [`NodeState`]
/// ([`NodeState::cpus`], [`NodeState::free_cpus`]) and the CPUs a job asks
/// for to every [`JobSpec`] ([`JobSpec::cpus`]). Version 2 was the same
/// SWIM-style protocol (probes, indirect probes, piggybacked updates) without
/// them, and version 1 used heartbeat broadcasts. Postcard has no optional
/// fields, so members of different versions cannot read each other's
/// datagrams: they ignore each other (each counts the other's datagrams as
/// [`DecodeError::UnsupportedVersion`]), and a group must boot one image.
pub const PROTOCOL_VERSION: u8 = 3;

/// Most member entries in one [`Message::JoinReply`]; a longer view is split over
/// several replies.
pub const MAX_VIEW_CHUNK: usize = 12;

/// Most membership updates piggybacked on one message.
pub const MAX_UPDATES: usize = 12;

/// Upper bound on the length of any encoded message, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1200;

/// The largest node id value: the top of the id space `0..=ID_MAX` that view
/// transfers cover ([`Message::JoinReply`]).
pub const ID_MAX: u64 = 0xffff_ffff_ffff;

/// Bytes around the body: the version byte and the CRC.
const OVERHEAD: usize = 1 + 4;

const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// CRC-32/ISO-HDLC of `bytes`: the frame check of this encoding (exposed so that tests
/// and fuzzers can build well-framed bodies).
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// A member describing itself: sent in joins, join replies, pings and acks, and
/// gossiped in [`Update::Alive`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// Who.
    pub id: NodeId,
    /// Which run of that node: a fresh random value at every start, so that a restart
    /// is told from a late message of the previous run.
    pub incarnation: u64,
    /// SWIM's incarnation number within the run (SWIM paper §4.2): only the member
    /// itself raises it, to refute a suspicion or to publish a new state (a job
    /// started or ended). Updates about the member are ordered by it.
    pub seq: u64,
    /// Node or host.
    pub role: Role,
    /// Human name.
    pub name: Name,
    /// Where the member receives datagrams (its own view of its address).
    pub addr: Addr,
    /// Its load at sending time.
    pub state: NodeState,
}

/// One membership change, piggybacked on probes and acks (SWIM paper §4.1,
/// "infection-style dissemination") and broadcast for deaths.
///
/// Updates about one member are ordered by (`incarnation` equal, `seq`): an
/// alive update overrides a suspicion only with a larger `seq`; a suspicion
/// overrides alive with an equal or larger `seq`; a death overrides both with an
/// equal or larger `seq` (SWIM §4.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    /// The member is alive with this entry (joined, refuted, new state).
    Alive(Announce),
    /// `by` suspects the member: its probes went unanswered.
    Suspect {
        /// The suspect.
        id: NodeId,
        /// Its run.
        incarnation: u64,
        /// Its SWIM incarnation number the suspicion is about.
        seq: u64,
        /// Who suspects it (distinct suspecters shorten the suspicion, Lifeguard §IV-B).
        by: NodeId,
    },
    /// `by` declared the member dead after its suspicion timed out.
    Dead {
        /// The dead member.
        id: NodeId,
        /// Its run.
        incarnation: u64,
        /// Its SWIM incarnation number when declared dead.
        seq: u64,
        /// Who declared it.
        by: NodeId,
    },
    /// The member left the group gracefully.
    Left {
        /// Who left.
        id: NodeId,
        /// Its run.
        incarnation: u64,
    },
}

impl Update {
    /// The member the update is about.
    pub fn id(&self) -> NodeId {
        match self {
            Update::Alive(a) => a.id,
            Update::Suspect { id, .. } | Update::Dead { id, .. } | Update::Left { id, .. } => *id,
        }
    }

    fn validate(&self) -> Result<(), InvalidField> {
        match self {
            Update::Alive(a) => a.validate(),
            Update::Suspect { id, by, .. } | Update::Dead { id, by, .. } => check_ids(&[*id, *by]),
            Update::Left { id, .. } => check_ids(&[*id]),
        }
    }
}

/// One Companion Manager message (the SiON paper's Fig. 4 b–g protocol with SWIM
/// liveness; see the crate documentation for the flow).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Broadcast by a member when it starts: "I am here, who is there?" (Fig. 5 a).
    Join(Announce),
    /// Unicast part of a view transfer, in answer to a [`Message::Join`] or a
    /// [`Message::ViewRequest`]: the responder's own entry first, then every member
    /// it knows whose id lies in `lo..=hi` (at most [`MAX_VIEW_CHUNK`] entries in
    /// all). The chunks of one transfer cover the asked id range without gaps, so
    /// the receiver knows which part of the view it has.
    JoinReply {
        /// Lowest id this chunk covers.
        lo: u64,
        /// Highest id this chunk covers (inclusive; [`ID_MAX`] for the last one).
        hi: u64,
        /// Responder first, then members with ids in `lo..=hi`.
        entries: Vec<Announce>,
    },
    /// Unicast from a joiner whose view transfer has gaps: "send me the members with
    /// ids in `lo..=hi`".
    ViewRequest {
        /// The joiner.
        from: NodeId,
        /// Lowest id wanted.
        lo: u64,
        /// Highest id wanted (inclusive).
        hi: u64,
    },
    /// SWIM's probe: unicast to `target` (by the prober, or by a relay on behalf of
    /// a prober), answered with a [`Message::Ack`] echoing `nonce`.
    Ping {
        /// The sender (prober or relay) and its current state.
        from: Announce,
        /// Matches the ack to this ping.
        nonce: u32,
        /// Who is probed; any other receiver ignores the ping.
        target: NodeId,
        /// Piggybacked membership updates.
        updates: Vec<Update>,
    },
    /// Answer to a [`Message::Ping`], or forwarded by a relay to the prober.
    Ack {
        /// The probed member (also when forwarded by a relay).
        from: Announce,
        /// Echo of the ping's nonce (the prober's, when forwarded).
        nonce: u32,
        /// Piggybacked membership updates.
        updates: Vec<Update>,
    },
    /// SWIM's indirect probe request: "ping `target` for me and forward its ack".
    PingReq {
        /// The prober.
        from: NodeId,
        /// The prober's nonce, echoed in the forwarded ack.
        nonce: u32,
        /// Who to ping.
        target: NodeId,
        /// Where it receives datagrams.
        target_addr: Addr,
        /// Piggybacked membership updates.
        updates: Vec<Update>,
    },
    /// Lifeguard's nack: a relay of a [`Message::PingReq`] got no ack from the target
    /// within its probe timeout. It tells the prober that its own link works.
    Nack {
        /// The prober's nonce.
        nonce: u32,
    },
    /// Membership updates on their own: broadcast for what every member needs at
    /// once (a death declared by its suspecter), unicast for a refutation sent
    /// straight to the suspecter.
    Gossip {
        /// The updates.
        updates: Vec<Update>,
    },
    /// Broadcast by a member that shuts down.
    Leave {
        /// Who leaves.
        id: NodeId,
        /// Its incarnation (a leave of an older incarnation is ignored).
        incarnation: u64,
    },
    /// Unicast from a requester to a candidate: "can you run this job?" (Fig. 5 c).
    TaskRequest {
        /// The requester.
        requester: NodeId,
        /// The requester's placement.
        placement: PlacementId,
        /// 0 for the first request, 1.. for retransmissions; echoed in the reply.
        attempt: u8,
        /// The job.
        job: JobSpec,
    },
    /// Unicast answer to a [`Message::TaskRequest`]: permit or deny, with the
    /// candidate's load.
    TaskReply {
        /// The candidate.
        responder: NodeId,
        /// Echo of the request's placement.
        placement: PlacementId,
        /// Echo of the request's attempt.
        attempt: u8,
        /// Permit or deny with the reason.
        verdict: Verdict,
        /// The candidate's load now.
        state: NodeState,
    },
    /// Unicast from a requester to a candidate that permitted (or did not
    /// answer in time): "I chose another node": the candidate's reservation
    /// for this placement ends now instead of at the end of its lease.
    TaskRelease {
        /// The requester.
        requester: NodeId,
        /// The placement whose reservation ends.
        placement: PlacementId,
    },
}

/// Why a datagram was not accepted. Decoding never panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the version byte and the CRC.
    Truncated,
    /// The first byte is not [`PROTOCOL_VERSION`].
    UnsupportedVersion(u8),
    /// The CRC does not match: corrupted or truncated.
    Checksum,
    /// The body is not a postcard-encoded [`Message`].
    Malformed,
    /// The body has bytes after the message.
    TrailingBytes,
    /// The message decoded but a field is out of range.
    Invalid(InvalidField),
}

/// Which field of a decoded message was out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidField {
    /// A [`NodeId`] above 48 bits.
    NodeId,
    /// A [`Name`] that is empty, too long or has control characters.
    Name,
    /// `cpu_load` above 1000.
    CpuLoad,
    /// `free_cpus` above `cpus` in a [`NodeState`].
    Cpus,
    /// A join reply with no entries or more than [`MAX_VIEW_CHUNK`], or a message
    /// with more than [`MAX_UPDATES`] updates.
    ViewLength,
    /// An id range with `lo > hi` or `hi` above [`ID_MAX`].
    Range,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("datagram too short"),
            DecodeError::UnsupportedVersion(v) => {
                write!(f, "protocol version {v}, expected {PROTOCOL_VERSION}")
            }
            DecodeError::Checksum => f.write_str("checksum mismatch"),
            DecodeError::Malformed => f.write_str("malformed message body"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes after message"),
            DecodeError::Invalid(field) => write!(f, "invalid field: {field:?}"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// The message could not be encoded (only possible if a field is out of range, e.g. a
/// join reply longer than [`MAX_VIEW_CHUNK`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeError;

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("message cannot be encoded")
    }
}

impl core::error::Error for EncodeError {}

impl Message {
    /// Encodes the message as `[version][postcard body][crc32 LE]`.
    ///
    /// # Errors
    /// [`EncodeError`] if the message would not decode: a field out of range (see
    /// [`InvalidField`]) or longer than [`MAX_MESSAGE_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.validate().map_err(|_| EncodeError)?;
        let mut out = Vec::with_capacity(96);
        out.push(PROTOCOL_VERSION);
        let mut out = postcard::to_extend(self, out).map_err(|_| EncodeError)?;
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        if out.len() > MAX_MESSAGE_LEN {
            return Err(EncodeError);
        }
        Ok(out)
    }

    /// Decodes one datagram.
    ///
    /// # Errors
    /// [`DecodeError`], checked in this order: length, version, CRC, body, trailing
    /// bytes, field ranges.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let Some((&version, _)) = bytes.split_first() else {
            return Err(DecodeError::Truncated);
        };
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        if bytes.len() < OVERHEAD {
            return Err(DecodeError::Truncated);
        }
        let (framed, crc) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32(framed) != crc {
            return Err(DecodeError::Checksum);
        }
        let (msg, rest) = postcard::take_from_bytes::<Message>(&framed[1..])
            .map_err(|_| DecodeError::Malformed)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        msg.validate().map_err(DecodeError::Invalid)?;
        Ok(msg)
    }

    /// Checks field ranges.
    fn validate(&self) -> Result<(), InvalidField> {
        match self {
            Message::Join(a) => a.validate(),
            Message::JoinReply { lo, hi, entries } => {
                if entries.is_empty() || entries.len() > MAX_VIEW_CHUNK {
                    return Err(InvalidField::ViewLength);
                }
                check_range(*lo, *hi)?;
                entries.iter().try_for_each(Announce::validate)
            }
            Message::ViewRequest { from, lo, hi } => {
                check_ids(&[*from])?;
                check_range(*lo, *hi)
            }
            Message::Ping {
                from,
                target,
                updates,
                ..
            } => {
                from.validate()?;
                check_ids(&[*target])?;
                check_updates(updates)
            }
            Message::Ack { from, updates, .. } => {
                from.validate()?;
                check_updates(updates)
            }
            Message::PingReq {
                from,
                target,
                updates,
                ..
            } => {
                check_ids(&[*from, *target])?;
                check_updates(updates)
            }
            Message::Gossip { updates } => check_updates(updates),
            Message::Nack { .. } => Ok(()),
            Message::Leave { id, .. } => check_ids(&[*id]),
            Message::TaskRequest { requester, .. } | Message::TaskRelease { requester, .. } => {
                check_ids(&[*requester])
            }
            Message::TaskReply {
                responder, state, ..
            } => {
                check_ids(&[*responder])?;
                check_state(state)
            }
        }
    }

    /// Calls `f` with every member address the message carries and the id of
    /// the member it belongs to: the [`Announce`]s (a join, each entry of a
    /// join reply, a ping's or ack's sender, every [`Update::Alive`]) and a
    /// [`Message::PingReq`]'s target. `f` may change the address; nothing
    /// else in the message changes, so the message stays valid.
    ///
    /// A gateway between two LANs uses this to put each member's address as
    /// the other LAN reaches it (see `hostd gateway`).
    pub fn for_each_addr_mut(&mut self, f: &mut dyn FnMut(NodeId, &mut Addr)) {
        fn announce(a: &mut Announce, f: &mut dyn FnMut(NodeId, &mut Addr)) {
            f(a.id, &mut a.addr);
        }
        fn updates(us: &mut [Update], f: &mut dyn FnMut(NodeId, &mut Addr)) {
            for u in us {
                if let Update::Alive(a) = u {
                    announce(a, f);
                }
            }
        }
        match self {
            Message::Join(a) => announce(a, f),
            Message::JoinReply { entries, .. } => {
                for a in entries {
                    announce(a, f);
                }
            }
            Message::Ping {
                from, updates: u, ..
            }
            | Message::Ack {
                from, updates: u, ..
            } => {
                announce(from, f);
                updates(u, f);
            }
            Message::PingReq {
                target,
                target_addr,
                updates: u,
                ..
            } => {
                f(*target, target_addr);
                updates(u, f);
            }
            Message::Gossip { updates: u } => updates(u, f),
            Message::ViewRequest { .. }
            | Message::Nack { .. }
            | Message::Leave { .. }
            | Message::TaskRequest { .. }
            | Message::TaskReply { .. }
            | Message::TaskRelease { .. } => {}
        }
    }

    /// A short name of the message kind, for logs and statistics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Join(_) => "join",
            Message::JoinReply { .. } => "join-reply",
            Message::ViewRequest { .. } => "view-request",
            Message::Ping { .. } => "ping",
            Message::Ack { .. } => "ack",
            Message::PingReq { .. } => "ping-req",
            Message::Gossip { .. } => "gossip",
            Message::Nack { .. } => "nack",
            Message::Leave { .. } => "leave",
            Message::TaskRequest { .. } => "task-request",
            Message::TaskReply { .. } => "task-reply",
            Message::TaskRelease { .. } => "task-release",
        }
    }
}

impl Announce {
    fn validate(&self) -> Result<(), InvalidField> {
        check_ids(&[self.id])?;
        if !self.name.is_valid() {
            return Err(InvalidField::Name);
        }
        check_state(&self.state)
    }
}

fn check_ids(ids: &[NodeId]) -> Result<(), InvalidField> {
    if ids.iter().all(|id| id.is_valid()) {
        Ok(())
    } else {
        Err(InvalidField::NodeId)
    }
}

fn check_range(lo: u64, hi: u64) -> Result<(), InvalidField> {
    if lo <= hi && hi <= ID_MAX {
        Ok(())
    } else {
        Err(InvalidField::Range)
    }
}

fn check_updates(updates: &[Update]) -> Result<(), InvalidField> {
    if updates.len() > MAX_UPDATES {
        return Err(InvalidField::ViewLength);
    }
    updates.iter().try_for_each(Update::validate)
}

fn check_state(s: &NodeState) -> Result<(), InvalidField> {
    if s.free_cpus > s.cpus {
        Err(InvalidField::Cpus)
    } else if s.is_valid() {
        Ok(())
    } else {
        Err(InvalidField::CpuLoad)
    }
}
