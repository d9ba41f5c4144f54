//! Who a member is: node id, name, role, network address and the load it reports.

use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};

/// A node's stable identity: its primary NIC's 48-bit MAC address, big-endian in the
/// low 48 bits of a `u64`.
///
/// Ordered numerically, so "the lowest node id" (the last placement tie-break, as the
/// remote-process paper's "lowest node number", §3.3.6) is well defined. Displayed as
/// a MAC address, `52:54:00:12:34:56`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(u64);

impl NodeId {
    /// The id of the node whose NIC has MAC address `mac` (transmission order,
    /// `mac[0]` first).
    pub const fn from_mac(mac: [u8; 6]) -> NodeId {
        NodeId(sion_abi::net::node_id_from_mac(mac))
    }

    /// The MAC address this id was made from.
    pub const fn to_mac(self) -> [u8; 6] {
        let b = self.0.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    /// The id as an integer in `0..2^48`.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The id from an integer; bits above the low 48 are dropped so that every id is
    /// a possible MAC address.
    pub const fn from_u64(v: u64) -> NodeId {
        NodeId(v & 0xffff_ffff_ffff)
    }

    /// True if the id fits in 48 bits (always true for ids built by this crate).
    pub(crate) const fn is_valid(self) -> bool {
        self.0 >> 48 == 0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.to_mac();
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// What a member is for.
///
/// Both roles are full group members (join, heartbeat, view). Only [`Role::Node`]s run
/// jobs: a [`Role::Host`] — a user's PC running `hostd` (SiON paper §3.2.2, "the same
/// group-management function runs as a daemon on the user's computer") — is never
/// chosen as a placement candidate and denies every task request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A SiON node: runs submitted jobs.
    Node,
    /// A user's host running `hostd`: submits jobs, never runs them.
    Host,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Node => "node",
            Role::Host => "host",
        })
    }
}

/// Where a member receives Companion Manager datagrams: an IPv4 address and UDP port.
///
/// Opaque to the protocol logic: the library only stores the address a datagram came
/// from (or the one a member announces) and hands it back in
/// [`Dest::Unicast`](crate::Dest::Unicast). A driver whose transport is not IPv4/UDP
/// may put any 6 bytes of its own addressing in it (the simulation uses the node index).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Addr {
    /// IPv4 address, network byte order (`[192, 168, 0, 1]`).
    pub ip: [u8; 4],
    /// UDP port, host byte order.
    pub port: u16,
}

impl Addr {
    /// `ip:port`.
    pub const fn new(ip: [u8; 4], port: u16) -> Addr {
        Addr { ip, port }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.ip;
        write!(f, "{a}.{b}.{c}.{d}:{}", self.port)
    }
}

/// Longest [`Name`], in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 32;

/// A member's short human name, e.g. `amber-otter-3456`: 1 to [`MAX_NAME_LEN`] bytes of
/// UTF-8 without control characters.
///
/// Shown on each node's screen and by `hostd nodes`; not unique and not used for
/// identity (that is [`NodeId`]). [`Name::derive`] makes one from a node id when the
/// user gives none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(String);

/// Why a string is not a valid [`Name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The string is empty.
    Empty,
    /// Longer than [`MAX_NAME_LEN`] bytes.
    TooLong,
    /// Contains a control character.
    ControlChar,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Empty => "empty name",
            NameError::TooLong => "name longer than 32 bytes",
            NameError::ControlChar => "name contains a control character",
        })
    }
}

impl core::error::Error for NameError {}

const ADJECTIVES: [&str; 32] = [
    "amber", "azure", "bold", "brave", "brisk", "calm", "clever", "coral", "crisp", "dusky",
    "eager", "fair", "fleet", "gentle", "glad", "golden", "hardy", "jolly", "keen", "lively",
    "lucky", "merry", "misty", "noble", "proud", "quick", "quiet", "rapid", "silver", "sunny",
    "swift", "witty",
];

const ANIMALS: [&str; 32] = [
    "badger", "bear", "beaver", "bison", "crane", "deer", "eagle", "falcon", "ferret", "finch",
    "fox", "gecko", "heron", "ibis", "koala", "lemur", "lynx", "marten", "mole", "moose", "newt",
    "otter", "owl", "panda", "puffin", "raven", "seal", "stoat", "swan", "tapir", "wolf", "yak",
];

impl Name {
    /// Checks `s` and makes it a name.
    ///
    /// # Errors
    /// [`NameError`] if `s` is empty, longer than [`MAX_NAME_LEN`] bytes or contains a
    /// control character.
    pub fn new(s: &str) -> Result<Name, NameError> {
        check_name(s)?;
        Ok(Name(String::from(s)))
    }

    /// The default name of node `id`: an adjective and an animal picked by a hash of the
    /// id, then the last two bytes of the MAC in hex, e.g. `amber-otter-3456`. The same
    /// id always gives the same name, on every machine and in every version of this
    /// crate that speaks protocol version 1.
    pub fn derive(id: NodeId) -> Name {
        let h = splitmix64(id.as_u64());
        let adj = ADJECTIVES[(h & 31) as usize];
        let animal = ANIMALS[((h >> 5) & 31) as usize];
        let mut s = String::with_capacity(24);
        let _ = fmt::write(
            &mut s,
            format_args!("{adj}-{animal}-{:04x}", id.as_u64() & 0xffff),
        );
        Name(s)
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn is_valid(&self) -> bool {
        check_name(&self.0).is_ok()
    }
}

fn check_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        Err(NameError::Empty)
    } else if s.len() > MAX_NAME_LEN {
        Err(NameError::TooLong)
    } else if s.chars().any(char::is_control) {
        Err(NameError::ControlChar)
    } else {
        Ok(())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SplitMix64's finaliser (Steele, Lea, Flood 2014), a fixed bijective 64-bit
/// mix: the hash that spreads a node id over the name lists, so names stay
/// the same on every node and every release. Not a random generator (the
/// crate's randomness comes from `fastrand`).
const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Largest valid [`NodeState::cpu_load`]: every CPU busy.
pub const MAX_CPU_LOAD: u16 = 1000;

/// The load a member reports in every heartbeat and task reply (SiON paper §4.2.1:
/// CPU load, free memory, CPU speed; remote-process paper §3.3.6: running processes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeState {
    /// CPU load in permille, `0..=1000` ([`MAX_CPU_LOAD`] = fully busy), e.g. the busy
    /// fraction of the last second.
    pub cpu_load: u16,
    /// Memory free for a job, in bytes.
    pub free_mem: u64,
    /// CPU speed, higher is faster, in MHz-equivalents (SiON measures it at boot). Only
    /// ratios between members matter; every member of a group must use the same unit.
    pub cpu_speed: u32,
    /// Applications running (or waiting) on the member.
    pub running_jobs: u16,
    /// Processors the node's kernel runs jobs on (`sion_abi::SysInfo::cpus`),
    /// saturated at 255. A [`Role::Host`] reports 0; a node reports at least
    /// 1, and 0 from a node counts as 1 ([`NodeState::cpu_count`]).
    pub cpus: u8,
    /// Of [`cpus`](NodeState::cpus), how many no job holds: `cpus` minus the
    /// node's running jobs, each job counted as one CPU (the node does not
    /// count a job's threads), and 0 while a job placed in
    /// [`Mode::Exclusive`](crate::Mode::Exclusive) owns the node. Never above
    /// `cpus` (a datagram that says otherwise is invalid). Made by
    /// [`NodeState::free_cpus_for`]; the [`Member`](crate::Member) zeroes it
    /// while an exclusive job runs.
    pub free_cpus: u8,
}

impl NodeState {
    pub(crate) fn is_valid(&self) -> bool {
        self.cpu_load <= MAX_CPU_LOAD && self.free_cpus <= self.cpus
    }

    /// The node's processors for placement: [`cpus`](NodeState::cpus), or 1
    /// when it says 0 (a state made without a CPU count).
    pub const fn cpu_count(&self) -> u8 {
        if self.cpus == 0 { 1 } else { self.cpus }
    }

    /// Free CPUs of a node with `cpus` processors running `running_jobs`
    /// jobs: `cpus - running_jobs`, 0 when the jobs are as many as the CPUs or
    /// more (each job is counted as one CPU).
    pub const fn free_cpus_for(cpus: u8, running_jobs: u16) -> u8 {
        if running_jobs >= cpus as u16 {
            0
        } else {
            cpus - running_jobs as u8
        }
    }
}

/// The local member's identity and initial state, given to
/// [`Member::new`](crate::Member::new).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNode {
    /// Stable id, normally [`NodeId::from_mac`] of the primary NIC.
    pub id: NodeId,
    /// Human name; `None` means [`Name::derive`]`(id)`.
    pub name: Option<Name>,
    /// Node (runs jobs) or host (`hostd`, never runs jobs).
    pub role: Role,
    /// Where this member receives Companion Manager datagrams; announced to the group.
    pub addr: Addr,
    /// Load at start; update with [`Member::set_local_state`](crate::Member::set_local_state).
    pub state: NodeState,
}

impl LocalNode {
    /// A member with the derived name and an idle, zero state.
    pub fn new(id: NodeId, role: Role, addr: Addr) -> LocalNode {
        LocalNode {
            id,
            name: None,
            role,
            addr,
            state: NodeState::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn mac_round_trip_and_display() {
        let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        let id = NodeId::from_mac(mac);
        assert_eq!(id.to_mac(), mac);
        assert_eq!(id.as_u64(), 0x5254_0012_3456);
        assert_eq!(id.to_string(), "52:54:00:12:34:56");
        assert!(NodeId::from_mac([0; 6]) < id);
        assert_eq!(NodeId::from_u64(u64::MAX).as_u64(), 0xffff_ffff_ffff);
    }

    #[test]
    fn derived_names_are_deterministic_and_valid() {
        let id = NodeId::from_mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        let a = Name::derive(id);
        assert_eq!(a, Name::derive(id));
        assert!(a.is_valid());
        assert!(a.as_str().ends_with("-3456"), "{a}");
        for i in 0..5000u64 {
            assert!(Name::derive(NodeId::from_u64(i * 7919)).is_valid());
        }
    }

    #[test]
    fn name_rules() {
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert_eq!(Name::new("a\nb"), Err(NameError::ControlChar));
        assert_eq!(
            Name::new("0123456789012345678901234567890123"),
            Err(NameError::TooLong)
        );
        assert_eq!(Name::new("ノード1").unwrap().as_str(), "ノード1");
    }
}
