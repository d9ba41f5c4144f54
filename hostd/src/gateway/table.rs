//! The gateway's address tables and the rewriting of Companion Manager
//! messages between two LANs, without I/O (host-tested).
//!
//! Every member is known by its [`NodeId`]. A gateway keeps two tables:
//!
//! - **local**: the members of its own LAN and the address each announces
//!   (learned from every message that crosses from the LAN);
//! - **stand-ins**: for each member of the other LAN, one address of the
//!   gateway's own LAN ([`AliasPool`]) that the gateway owns and answers on
//!   in the member's name.
//!
//! Between the two gateways a message carries each member address in one of
//! two forms: the member's real address in the *sender's* LAN, or
//! [`THEIRS`] (`0.0.0.0:0`), "a member of *your* LAN: look it up by id". So
//! the sender replaces its stand-in addresses by [`THEIRS`]
//! ([`Tables::from_lan`]), and the receiver replaces [`THEIRS`] by its local
//! member's address and every other address by the member's stand-in
//! ([`Tables::from_peer`]). Both LANs may use the same addresses: nothing is
//! looked up by another LAN's address.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;
use sion_companion_mgr::{Addr, Message, NodeId};

use super::wire::Forward;
use crate::envelope::IPC_PORT;

/// The address form "a member of the receiver's LAN" between gateways.
pub const THEIRS: Addr = Addr::new([0, 0, 0, 0], 0);

/// The stand-in addresses a gateway may take: the block link-local hosts
/// never choose (RFC 3927 §2.1 reserves 169.254.255.0/24), so no node takes
/// one of them.
pub const DEFAULT_POOL: (Ipv4Addr, u8) = (Ipv4Addr::new(169, 254, 255, 0), 24);

/// A range of addresses for stand-ins, without its first (network) and last
/// (broadcast) address and without those [reserved](AliasPool::reserve).
#[derive(Clone, Debug)]
pub struct AliasPool {
    /// First address of the range, as an integer.
    base: u32,
    /// Number of addresses in the range (2^(32 − prefix)).
    size: u32,
    /// Addresses taken or reserved.
    used: BTreeSet<u32>,
}

/// Why a pool could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The prefix is outside 16..=30 (a pool of 4 to 65,536 addresses).
    #[error("the stand-in range must be a /16 to /30, not /{0}")]
    Prefix(u8),
    /// The address has host bits set.
    #[error("{0}/{1} is not the start of its range (host bits are set)")]
    NotNetwork(Ipv4Addr, u8),
}

impl AliasPool {
    /// The range `net/prefix`.
    ///
    /// # Errors
    /// [`PoolError`] for a prefix outside 16..=30 or an address with host bits.
    pub fn new(net: Ipv4Addr, prefix: u8) -> Result<AliasPool, PoolError> {
        if !(16..=30).contains(&prefix) {
            return Err(PoolError::Prefix(prefix));
        }
        let size = 1u32 << (32 - prefix);
        let base = u32::from(net);
        if base & (size - 1) != 0 {
            return Err(PoolError::NotNetwork(net, prefix));
        }
        Ok(AliasPool {
            base,
            size,
            used: BTreeSet::new(),
        })
    }

    /// Parses `A.B.C.D/N` and makes the pool.
    ///
    /// # Errors
    /// A malformed range, or a [`PoolError`].
    pub fn parse(s: &str) -> Result<AliasPool, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not an address range like 169.254.255.0/24"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("`{ip}` is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("`{prefix}` is not a prefix length"))?;
        AliasPool::new(ip, prefix).map_err(|e| e.to_string())
    }

    /// True if `ip` lies in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip).wrapping_sub(self.base) < self.size
    }

    /// Never hands out `ip` (an address of the interface, a member's).
    pub fn reserve(&mut self, ip: Ipv4Addr) {
        if self.contains(ip) {
            self.used.insert(u32::from(ip));
        }
    }

    /// Gives `ip` back.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    /// A free address for member `id`: the search starts at a place drawn
    /// from the id, so a member tends to get the same stand-in from a
    /// restarted gateway. `None` when every address is taken.
    pub fn take(&mut self, id: NodeId) -> Option<Ipv4Addr> {
        let hosts = self.size - 2;
        let start = (splitmix(id.as_u64()) % u64::from(hosts)) as u32;
        for i in 0..hosts {
            let ip = self.base + 1 + (start + i) % hosts;
            if self.used.insert(ip) {
                return Some(Ipv4Addr::from(ip));
            }
        }
        None
    }

    /// The range's first and last address.
    pub fn bounds(&self) -> (Ipv4Addr, Ipv4Addr) {
        (
            Ipv4Addr::from(self.base),
            Ipv4Addr::from(self.base + (self.size - 1)),
        )
    }

    /// True if the whole range lies in the subnet `ip/prefix`.
    pub fn inside(&self, ip: Ipv4Addr, prefix: u8) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(prefix.min(32)))
            .unwrap_or(0);
        let (first, last) = self.bounds();
        let net = u32::from(ip) & mask;
        u32::from(first) & mask == net && u32::from(last) & mask == net
    }

    /// The range as `A.B.C.D/N`.
    pub fn describe(&self) -> String {
        format!(
            "{}/{}",
            Ipv4Addr::from(self.base),
            32 - self.size.trailing_zeros()
        )
    }
}

/// A fixed 64-bit mix (SplitMix64's finaliser): spreads ids over the pool.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where a datagram from the LAN was going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LanDest {
    /// A broadcast: to every member.
    Broadcast,
    /// A unicast to this stand-in address.
    StandIn(Ipv4Addr),
}

/// Why a datagram was not passed on. Each is counted in [`Counters`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Drop {
    /// Our own broadcast, heard back on the LAN (expected, not an error).
    #[error("own datagram heard back")]
    Echo,
    /// The bytes are not a well-formed datagram of this kind.
    #[error("malformed")]
    Malformed,
    /// Not sealed with the cluster key, or a replay.
    #[error("not authenticated")]
    Unauthenticated,
    /// About or to a member this gateway does not know.
    #[error("unknown member {0}")]
    UnknownMember(NodeId),
    /// To a stand-in address the gateway does not hold.
    #[error("unknown stand-in {0}")]
    UnknownStandIn(Ipv4Addr),
    /// One id on both sides: a member of one LAN shown at an address of the
    /// other (two machines with one MAC, or a loop of gateways).
    #[error("member {0} claimed by both LANs")]
    Conflict(NodeId),
    /// No stand-in address left in the pool.
    #[error("no stand-in address left")]
    PoolExhausted,
    /// From another address than the peer gateway's.
    #[error("not from the peer gateway")]
    NotFromPeer,
}

/// What the gateway did, for its summary line and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Datagrams from the LAN sent to the peer.
    pub to_peer: u64,
    /// Datagrams from the peer sent into the LAN.
    pub from_peer: u64,
    /// Own broadcasts heard back (expected).
    pub echoes: u64,
    /// Dropped: malformed from the LAN.
    pub malformed_lan: u64,
    /// Dropped: malformed from the peer.
    pub malformed_peer: u64,
    /// Dropped: not authenticated.
    pub unauthenticated: u64,
    /// Dropped: unknown member or stand-in.
    pub unknown: u64,
    /// Dropped: a member claimed by both LANs.
    pub conflicts: u64,
    /// Dropped: the pool is exhausted (or a stand-in could not be set up).
    pub no_stand_in: u64,
    /// Dropped: from an address other than the peer's.
    pub not_from_peer: u64,
    /// Datagrams that could not be sent.
    pub send_errors: u64,
    /// Job connections relayed (either way).
    pub connections: u64,
    /// Job connections refused or failed (unknown member, connect error).
    pub connections_failed: u64,
    /// Bytes relayed towards the job's node.
    pub bytes_to_node: u64,
    /// Bytes relayed back from it.
    pub bytes_from_node: u64,
}

impl Counters {
    /// Counts one dropped datagram; `from_peer` tells which side sent it.
    pub fn drop(&mut self, why: Drop, from_peer: bool) {
        match why {
            Drop::Echo => self.echoes += 1,
            Drop::Malformed if from_peer => self.malformed_peer += 1,
            Drop::Malformed => self.malformed_lan += 1,
            Drop::Unauthenticated => self.unauthenticated += 1,
            Drop::UnknownMember(_) | Drop::UnknownStandIn(_) => self.unknown += 1,
            Drop::Conflict(_) => self.conflicts += 1,
            Drop::PoolExhausted => self.no_stand_in += 1,
            Drop::NotFromPeer => self.not_from_peer += 1,
        }
    }

    /// Every dropped datagram but echoes.
    pub fn dropped(&self) -> u64 {
        self.malformed_lan
            + self.malformed_peer
            + self.unauthenticated
            + self.unknown
            + self.conflicts
            + self.no_stand_in
            + self.not_from_peer
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} datagrams to the peer, {} from it; {} job connections ({} bytes to the node, {} back, {} failed); \
             dropped {} (malformed {} from the LAN, {} from the peer; unauthenticated {}; unknown {}; conflicts {}; \
             no stand-in {}; not from the peer {}); {} send errors; {} own broadcasts heard back",
            self.to_peer,
            self.from_peer,
            self.connections,
            self.bytes_to_node,
            self.bytes_from_node,
            self.connections_failed,
            self.dropped(),
            self.malformed_lan,
            self.malformed_peer,
            self.unauthenticated,
            self.unknown,
            self.conflicts,
            self.no_stand_in,
            self.not_from_peer,
            self.send_errors,
            self.echoes,
        )
    }
}

/// A message from the peer, ready for the LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emit {
    /// The sender's stand-in: the datagram leaves from this address.
    pub from: Ipv4Addr,
    /// The sender's id (the network IPC header's source node).
    pub src: NodeId,
    /// Where to: a local member's address, or `None` to broadcast.
    pub to: Option<Addr>,
    /// The message with every address as this LAN reaches it.
    pub message: Message,
    /// Stand-ins made for this message, which the caller must set up (take
    /// the address, open its sockets) before sending; a failure is given back
    /// with [`Tables::forget`].
    pub new_stand_ins: Vec<(NodeId, Ipv4Addr)>,
}

/// The gateway's tables (see the module documentation).
#[derive(Clone, Debug)]
pub struct Tables {
    local: HashMap<NodeId, Addr>,
    stand_ins: HashMap<NodeId, Ipv4Addr>,
    by_stand_in: HashMap<Ipv4Addr, NodeId>,
    pool: AliasPool,
    /// The gateway's own id (its census requests), if set.
    own: Option<NodeId>,
    /// What happened so far.
    pub counters: Counters,
}

impl Tables {
    /// Empty tables taking stand-ins from `pool`.
    pub fn new(pool: AliasPool) -> Tables {
        Tables {
            local: HashMap::new(),
            stand_ins: HashMap::new(),
            by_stand_in: HashMap::new(),
            pool,
            own: None,
            counters: Counters::default(),
        }
    }

    /// The gateway's own id: its datagrams heard back are echoes.
    pub fn set_own(&mut self, id: NodeId) {
        self.own = Some(id);
    }

    /// A stand-in address for the gateway itself (where its census is
    /// answered), from the pool; `None` when the pool is empty.
    pub fn take_own_address(&mut self, id: NodeId) -> Option<Ipv4Addr> {
        self.pool.take(id)
    }

    /// Never uses `ip` as a stand-in (the interface's own addresses).
    pub fn reserve(&mut self, ip: Ipv4Addr) {
        self.pool.reserve(ip);
    }

    /// The stand-in address of member `id` of the other LAN, if it has one.
    pub fn stand_in(&self, id: NodeId) -> Option<Ipv4Addr> {
        self.stand_ins.get(&id).copied()
    }

    /// The member a stand-in address stands for.
    pub fn member_at(&self, ip: Ipv4Addr) -> Option<NodeId> {
        self.by_stand_in.get(&ip).copied()
    }

    /// Where local member `id` is, as it announced itself.
    pub fn local(&self, id: NodeId) -> Option<Addr> {
        self.local.get(&id).copied()
    }

    /// Every stand-in: member and address.
    pub fn stand_ins(&self) -> impl Iterator<Item = (NodeId, Ipv4Addr)> + '_ {
        self.stand_ins.iter().map(|(id, ip)| (*id, *ip))
    }

    /// Number of local members known.
    pub fn local_count(&self) -> usize {
        self.local.len()
    }

    /// Takes back a stand-in that could not be set up.
    pub fn forget(&mut self, id: NodeId) {
        if let Some(ip) = self.stand_ins.remove(&id) {
            self.by_stand_in.remove(&ip);
            self.pool.release(ip);
        }
    }

    /// A message `msg` from LAN member `src` (the network IPC header's source
    /// node), received from `source_ip` and sent to `dest`: learns the LAN's
    /// addresses from it and returns it in the between-gateways form.
    ///
    /// # Errors
    /// [`Drop::Echo`] for our own datagram (its sender is a stand-in);
    /// [`Drop::UnknownStandIn`] for a unicast to an address we do not hold;
    /// [`Drop::Conflict`] for a member of the other LAN shown at an address
    /// of this one; [`Drop::Malformed`] for a member at `0.0.0.0` or a
    /// message that does not encode.
    pub fn from_lan(
        &mut self,
        src: NodeId,
        source_ip: Ipv4Addr,
        dest: LanDest,
        mut msg: Message,
    ) -> Result<Forward, Drop> {
        if self.stand_ins.contains_key(&src) || self.own == Some(src) {
            return Err(Drop::Echo);
        }
        let dst = match dest {
            LanDest::Broadcast => None,
            LanDest::StandIn(ip) => Some(self.member_at(ip).ok_or(Drop::UnknownStandIn(ip))?),
        };
        // Check first, then learn and rewrite: a dropped message teaches nothing.
        let mut bad = None;
        msg.for_each_addr_mut(&mut |id, a| {
            let ours = self.by_stand_in.contains_key(&Ipv4Addr::from(a.ip));
            if bad.is_none() && !ours {
                if a.ip == [0; 4] {
                    bad = Some(Drop::Malformed);
                } else if self.stand_ins.contains_key(&id) {
                    bad = Some(Drop::Conflict(id));
                }
            }
        });
        if let Some(why) = bad {
            return Err(why);
        }
        let mut learned = Vec::new();
        msg.for_each_addr_mut(&mut |id, a| {
            if self.by_stand_in.contains_key(&Ipv4Addr::from(a.ip)) {
                *a = THEIRS;
            } else {
                learned.push((id, *a));
            }
        });
        for (id, a) in learned {
            self.pool.reserve(Ipv4Addr::from(a.ip));
            self.local.insert(id, a);
        }
        // A member that never announced itself through us is reached where
        // it sent from (unless that is one of our own addresses: a program
        // on this machine sending to a stand-in).
        if !self.by_stand_in.contains_key(&source_ip) && !source_ip.is_unspecified() {
            self.local
                .entry(src)
                .or_insert(Addr::new(source_ip.octets(), IPC_PORT));
        }
        let message = msg.encode().map_err(|_| Drop::Malformed)?;
        Ok(Forward { src, dst, message })
    }

    /// An answer to the gateway's census (a [`Message::JoinReply`] to its
    /// own address, answering the `ViewRequest` it broadcast into its LAN):
    /// each LAN member it names, introduced to the other LAN as a
    /// [`Message::Join`] from that member, which the other LAN's members
    /// answer with their views. Members of the other LAN (at stand-in
    /// addresses) and entries at `0.0.0.0` are left out.
    pub fn census_reply(&mut self, msg: &Message) -> Vec<Forward> {
        let Message::JoinReply { entries, .. } = msg else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for a in entries {
            let ip = Ipv4Addr::from(a.addr.ip);
            if self.by_stand_in.contains_key(&ip)
                || self.stand_ins.contains_key(&a.id)
                || ip.is_unspecified()
                || self.own == Some(a.id)
            {
                continue;
            }
            self.pool.reserve(ip);
            self.local.insert(a.id, a.addr);
            if let Ok(message) = Message::Join(a.clone()).encode() {
                out.push(Forward {
                    src: a.id,
                    dst: None,
                    message,
                });
            }
        }
        out
    }

    /// A message from the peer gateway: the message with every address as
    /// this LAN reaches it, where to send it and from which stand-in.
    ///
    /// # Errors
    /// [`Drop::Malformed`] for a message that does not decode;
    /// [`Drop::UnknownMember`] for a destination, or a member in the
    /// [`THEIRS`] form, that is not in the local table; [`Drop::Conflict`]
    /// for the sender, or a member at a peer-side address, that is a local
    /// member; [`Drop::PoolExhausted`] when a new stand-in is needed and none
    /// is left. Nothing changes in the tables on an error.
    pub fn from_peer(&mut self, fwd: &Forward) -> Result<Emit, Drop> {
        let mut msg = Message::decode(&fwd.message).map_err(|_| Drop::Malformed)?;
        if self.local.contains_key(&fwd.src) {
            return Err(Drop::Conflict(fwd.src));
        }
        let to = match fwd.dst {
            None => None,
            Some(id) => Some(self.local(id).ok_or(Drop::UnknownMember(id))?),
        };
        let mut bad = None;
        let mut wanted: BTreeSet<NodeId> = BTreeSet::from([fwd.src]);
        msg.for_each_addr_mut(&mut |id, a| {
            if bad.is_some() {
                return;
            }
            if *a == THEIRS {
                if !self.local.contains_key(&id) {
                    bad = Some(Drop::UnknownMember(id));
                }
            } else if self.local.contains_key(&id) {
                bad = Some(Drop::Conflict(id));
            } else {
                wanted.insert(id);
            }
        });
        if let Some(why) = bad {
            return Err(why);
        }
        let mut new_stand_ins = Vec::new();
        for id in wanted {
            if self.stand_ins.contains_key(&id) {
                continue;
            }
            let Some(ip) = self.pool.take(id) else {
                for (id, _) in new_stand_ins {
                    self.forget(id);
                }
                return Err(Drop::PoolExhausted);
            };
            self.stand_ins.insert(id, ip);
            self.by_stand_in.insert(ip, id);
            new_stand_ins.push((id, ip));
        }
        msg.for_each_addr_mut(&mut |id, a| {
            *a = if *a == THEIRS {
                self.local[&id]
            } else {
                Addr::new(self.stand_ins[&id].octets(), IPC_PORT)
            };
        });
        Ok(Emit {
            from: self.stand_ins[&fwd.src],
            src: fwd.src,
            to,
            message: msg,
            new_stand_ins,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::PeerMsg;
    use super::*;
    use sion_companion_mgr::node::NodeState;
    use sion_companion_mgr::wire::{Announce, Update};
    use sion_companion_mgr::{Name, Role};

    fn id(n: u8) -> NodeId {
        NodeId::from_mac([0x52, 0x54, 0, 0x53, 0x4e, n])
    }

    fn announce(n: u8, ip: [u8; 4]) -> Announce {
        Announce {
            id: id(n),
            incarnation: 1,
            seq: 1,
            role: Role::Node,
            name: Name::derive(id(n)),
            addr: Addr::new(ip, IPC_PORT),
            state: NodeState::default(),
        }
    }

    fn pool() -> AliasPool {
        AliasPool::new(DEFAULT_POOL.0, DEFAULT_POOL.1).unwrap()
    }

    fn addrs(m: &Message) -> Vec<(NodeId, Addr)> {
        let mut m = m.clone();
        let mut v = Vec::new();
        m.for_each_addr_mut(&mut |i, a| v.push((i, *a)));
        v
    }

    /// Two gateways, A and B, and one message crossing from A's LAN to B's.
    fn cross(
        a: &mut Tables,
        b: &mut Tables,
        src: NodeId,
        source: [u8; 4],
        dest: LanDest,
        msg: Message,
    ) -> Result<Emit, Drop> {
        let fwd = a.from_lan(src, Ipv4Addr::from(source), dest, msg)?;
        let bytes = super::super::wire::encode(&PeerMsg::Forward(fwd));
        let Ok(PeerMsg::Forward(fwd)) = super::super::wire::decode(&bytes) else {
            panic!("the wire form decodes")
        };
        b.from_peer(&fwd)
    }

    #[test]
    fn pool_hands_out_each_host_address_once_and_skips_reserved_ones() {
        let mut p = AliasPool::new(Ipv4Addr::new(10, 0, 0, 0), 29).unwrap();
        p.reserve(Ipv4Addr::new(10, 0, 0, 3));
        p.reserve(Ipv4Addr::new(192, 168, 0, 3)); // outside: ignored
        let got: BTreeSet<Ipv4Addr> = (0..5).map(|i| p.take(id(i)).unwrap()).collect();
        let want: BTreeSet<Ipv4Addr> = [1, 2, 4, 5, 6]
            .into_iter()
            .map(|d| Ipv4Addr::new(10, 0, 0, d))
            .collect();
        assert_eq!(got, want, "never .0 (network), .7 (broadcast) or .3");
        assert_eq!(p.take(id(9)), None);
        p.release(Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(p.take(id(9)), Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(p.describe(), "10.0.0.0/29");
        assert_eq!(
            p.bounds(),
            (Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(10, 0, 0, 7))
        );
        assert!(p.inside(Ipv4Addr::new(10, 0, 0, 1), 24));
        assert!(p.inside(Ipv4Addr::new(10, 0, 0, 1), 29));
        assert!(!p.inside(Ipv4Addr::new(10, 0, 0, 1), 30));
        assert!(!p.inside(Ipv4Addr::new(10, 0, 1, 1), 24));
        assert!(pool().inside(Ipv4Addr::new(169, 254, 0, 1), 16));
        let mut q = pool();
        let first = q.take(id(1)).unwrap();
        assert_eq!(
            pool().take(id(1)),
            Some(first),
            "same id, same first choice"
        );
        assert!(AliasPool::parse("169.254.255.0/24").is_ok());
        assert!(AliasPool::parse("169.254.255.1/24").is_err());
        assert!(AliasPool::parse("169.254.0.0/8").is_err());
        assert!(AliasPool::parse("nonsense").is_err());
    }

    #[test]
    fn a_join_crosses_with_a_stand_in_and_the_reply_finds_the_joiner() {
        let (mut a, mut b) = (Tables::new(pool()), Tables::new(pool()));
        // Both LANs use the same link-local address for their node.
        let same = [169, 254, 7, 7];
        let join = Message::Join(announce(1, same));
        let e = cross(&mut a, &mut b, id(1), same, LanDest::Broadcast, join).unwrap();
        let s1 = b.stand_in(id(1)).expect("node 1 stands in B's LAN");
        assert!(pool().contains(s1));
        assert_eq!(e.from, s1);
        assert_eq!(e.to, None, "a broadcast stays a broadcast");
        assert_eq!(e.new_stand_ins, vec![(id(1), s1)]);
        assert_eq!(
            addrs(&e.message),
            vec![(id(1), Addr::new(s1.octets(), IPC_PORT))]
        );
        assert_eq!(a.local(id(1)), Some(Addr::new(same, IPC_PORT)));

        // B's node 2 (same address as node 1!) answers the join to node 1's
        // stand-in; its view has itself and node 1 (at the stand-in).
        let reply = Message::JoinReply {
            lo: 0,
            hi: u64::MAX >> 16,
            entries: vec![announce(2, same), announce(1, s1.octets())],
        };
        let e = cross(&mut b, &mut a, id(2), same, LanDest::StandIn(s1), reply).unwrap();
        let s2 = a.stand_in(id(2)).expect("node 2 stands in A's LAN");
        assert_eq!(e.from, s2);
        assert_eq!(
            e.to,
            Some(Addr::new(same, IPC_PORT)),
            "to node 1's real address"
        );
        assert_eq!(
            addrs(&e.message),
            vec![
                (id(2), Addr::new(s2.octets(), IPC_PORT)),
                (id(1), Addr::new(same, IPC_PORT)),
            ],
            "each member as A's LAN reaches it"
        );
        assert_eq!(e.new_stand_ins, vec![(id(2), s2)]);
        // A second message makes no new stand-in.
        let ping = Message::Ping {
            from: announce(2, same),
            nonce: 5,
            target: id(1),
            updates: vec![Update::Alive(announce(1, s1.octets()))],
        };
        let e = cross(&mut b, &mut a, id(2), same, LanDest::StandIn(s1), ping).unwrap();
        assert!(e.new_stand_ins.is_empty());
        assert_eq!(
            a.counters,
            Counters::default(),
            "callers count, not the tables"
        );
    }

    #[test]
    fn ping_requests_name_their_target_where_the_relay_reaches_it() {
        let (mut a, mut b) = (Tables::new(pool()), Tables::new(pool()));
        let (n1, n3) = ([169, 254, 1, 1], [169, 254, 3, 3]);
        // Node 1 joins; B's node 2 answers; A learns node 3 from a ping request.
        cross(
            &mut a,
            &mut b,
            id(1),
            n1,
            LanDest::Broadcast,
            Message::Join(announce(1, n1)),
        )
        .unwrap();
        let s1 = b.stand_in(id(1)).unwrap();
        cross(
            &mut b,
            &mut a,
            id(2),
            [169, 254, 2, 2],
            LanDest::StandIn(s1),
            Message::JoinReply {
                lo: 0,
                hi: 5,
                entries: vec![announce(2, [169, 254, 2, 2])],
            },
        )
        .unwrap();
        let s2 = a.stand_in(id(2)).unwrap();
        let req = Message::PingReq {
            from: id(1),
            nonce: 9,
            target: id(3),
            target_addr: Addr::new(n3, IPC_PORT),
            updates: vec![],
        };
        let e = cross(&mut a, &mut b, id(1), n1, LanDest::StandIn(s2), req).unwrap();
        let s3 = b.stand_in(id(3)).expect("the target got a stand-in in B");
        let Message::PingReq { target_addr, .. } = e.message else {
            panic!()
        };
        assert_eq!(target_addr, Addr::new(s3.octets(), IPC_PORT));
        assert_eq!(e.to, Some(Addr::new([169, 254, 2, 2], IPC_PORT)));
        // The relay's ack from node 3 comes back to node 1 from node 2 ...
        let ack = Message::Ack {
            from: announce(3, s3.octets()),
            nonce: 9,
            updates: vec![],
        };
        let e = cross(
            &mut b,
            &mut a,
            id(2),
            [169, 254, 2, 2],
            LanDest::StandIn(s1),
            ack,
        )
        .unwrap();
        assert_eq!(e.from, s2);
        assert_eq!(addrs(&e.message), vec![(id(3), Addr::new(n3, IPC_PORT))]);
    }

    #[test]
    fn bad_input_is_dropped_and_changes_nothing() {
        let (mut a, mut b) = (Tables::new(pool()), Tables::new(pool()));
        let n1 = [169, 254, 1, 1];
        cross(
            &mut a,
            &mut b,
            id(1),
            n1,
            LanDest::Broadcast,
            Message::Join(announce(1, n1)),
        )
        .unwrap();
        let s1 = b.stand_in(id(1)).unwrap();
        // Our own re-broadcast, heard back.
        assert_eq!(
            b.from_lan(
                id(1),
                s1,
                LanDest::Broadcast,
                Message::Join(announce(1, s1.octets()))
            ),
            Err(Drop::Echo)
        );
        // A unicast to an address we do not hold.
        let stray = Ipv4Addr::new(169, 254, 255, 250);
        let leave = Message::Leave {
            id: id(2),
            incarnation: 1,
        };
        assert_eq!(
            b.from_lan(id(2), n1.into(), LanDest::StandIn(stray), leave.clone()),
            Err(Drop::UnknownStandIn(stray))
        );
        // A LAN member at 0.0.0.0.
        assert_eq!(
            b.from_lan(
                id(2),
                n1.into(),
                LanDest::Broadcast,
                Message::Join(announce(2, [0; 4]))
            ),
            Err(Drop::Malformed)
        );
        // B's LAN shows node 1 (A's) at one of B's own addresses.
        assert_eq!(
            b.from_lan(
                id(2),
                n1.into(),
                LanDest::Broadcast,
                Message::Join(announce(1, [169, 254, 9, 9]))
            ),
            Err(Drop::Conflict(id(1)))
        );
        let before = (b.local.clone(), b.stand_ins.clone());
        // From the peer: garbage, an unknown destination, an unknown member in
        // the "yours" form, a local member at a peer-side address.
        let fwd = |src, dst, m: Message| Forward {
            src,
            dst,
            message: m.encode().unwrap(),
        };
        assert_eq!(
            b.from_peer(&Forward {
                src: id(1),
                dst: None,
                message: vec![2, 0, 1]
            }),
            Err(Drop::Malformed)
        );
        assert_eq!(
            b.from_peer(&fwd(id(5), Some(id(7)), leave.clone())),
            Err(Drop::UnknownMember(id(7)))
        );
        let theirs = Message::Join(Announce {
            addr: THEIRS,
            ..announce(8, [1; 4])
        });
        assert_eq!(
            b.from_peer(&fwd(id(5), None, theirs)),
            Err(Drop::UnknownMember(id(8)))
        );
        // B's node 2 becomes known, then A claims it.
        b.from_lan(
            id(2),
            [169, 254, 2, 2].into(),
            LanDest::StandIn(s1),
            Message::Join(announce(2, [169, 254, 2, 2])),
        )
        .unwrap();
        let before_2 = (b.local.clone(), b.stand_ins.clone());
        assert_eq!(
            b.from_peer(&fwd(id(5), None, Message::Join(announce(2, n1)))),
            Err(Drop::Conflict(id(2)))
        );
        assert_eq!(
            b.from_peer(&fwd(id(2), None, leave)),
            Err(Drop::Conflict(id(2)))
        );
        assert_eq!((b.local.clone(), b.stand_ins.clone()), before_2);
        assert!(
            before.1 == b.stand_ins,
            "no stand-in made for dropped input"
        );
    }

    #[test]
    fn a_census_introduces_each_lan_member_to_the_other_lan_as_a_join() {
        let (mut a, mut b) = (Tables::new(pool()), Tables::new(pool()));
        let own = id(0xee);
        a.set_own(own);
        let g = a.take_own_address(own).unwrap();
        assert!(pool().contains(g));
        // The census request heard back is an echo.
        let req = Message::ViewRequest {
            from: own,
            lo: 0,
            hi: 0,
        };
        assert_eq!(a.from_lan(own, g, LanDest::Broadcast, req), Err(Drop::Echo));
        // B's node 2 is known in A already (at a stand-in).
        cross(
            &mut b,
            &mut a,
            id(2),
            [169, 254, 2, 2],
            LanDest::Broadcast,
            Message::Join(announce(2, [169, 254, 2, 2])),
        )
        .unwrap();
        let s2 = a.stand_in(id(2)).unwrap();
        let reply = Message::JoinReply {
            lo: 0,
            hi: 0,
            entries: vec![
                announce(1, [169, 254, 1, 1]),
                announce(2, s2.octets()),
                announce(3, [0; 4]),
            ],
        };
        let fwds = a.census_reply(&reply);
        assert_eq!(
            fwds.len(),
            1,
            "only LAN A's member, not B's or one at 0.0.0.0"
        );
        assert_eq!((fwds[0].src, fwds[0].dst), (id(1), None));
        assert_eq!(a.local(id(1)), Some(Addr::new([169, 254, 1, 1], IPC_PORT)));
        let e = b.from_peer(&fwds[0]).unwrap();
        let s1 = b.stand_in(id(1)).unwrap();
        assert_eq!((e.from, e.to), (s1, None));
        assert_eq!(e.message, Message::Join(announce(1, s1.octets())));
        assert!(a.census_reply(&Message::Nack { nonce: 1 }).is_empty());
    }

    #[test]
    fn an_exhausted_pool_drops_the_message_and_keeps_no_half_made_stand_ins() {
        let small = AliasPool::new(Ipv4Addr::new(169, 254, 255, 0), 30).unwrap(); // 2 hosts
        let (mut a, mut b) = (Tables::new(pool()), Tables::new(small));
        let reply = Message::JoinReply {
            lo: 0,
            hi: 9,
            entries: vec![
                announce(1, [169, 254, 1, 1]),
                announce(2, [169, 254, 2, 2]),
                announce(3, [169, 254, 3, 3]),
            ],
        };
        assert_eq!(
            cross(
                &mut a,
                &mut b,
                id(1),
                [169, 254, 1, 1],
                LanDest::Broadcast,
                reply
            ),
            Err(Drop::PoolExhausted)
        );
        assert_eq!(b.stand_ins().count(), 0);
        let mut c = Counters::default();
        c.drop(Drop::PoolExhausted, true);
        c.drop(Drop::Malformed, true);
        c.drop(Drop::Malformed, false);
        c.drop(Drop::Echo, false);
        assert_eq!(
            (c.no_stand_in, c.malformed_peer, c.malformed_lan),
            (1, 1, 1)
        );
        assert_eq!(c.dropped(), 3, "echoes are not drops");
        assert!(c.to_string().contains("dropped 3"));
    }
}
