//! The typed model of the group and of a placement's outcome: what a
//! [`Session`](crate::Session) or the daemon knows, and what `hostd submit`
//! places jobs with.
//!
//! Node ids, addresses, roles, statuses, modes and denial reasons are the
//! Companion Manager library's types (and [`Ipv4Addr`]), never strings. Only
//! [`crate::report`] turns these values into text (the tables of `hostd nodes`
//! and `hostd place`) and JSON (`--json` and the daemon's control socket);
//! the `#[serde(with = …)]` attributes below name its encoders, so every
//! field name and string value of that JSON is written in one place.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use sion_companion_mgr::{DenyReason, Mode, NodeId, Role, ScoreParts, Status, Weights};

use crate::report::json;

/// One member of the group table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRow {
    /// Node id (JSON: MAC form, `52:54:00:12:34:56`).
    #[serde(with = "json::node_id")]
    pub id: NodeId,
    /// Human name.
    pub name: String,
    /// Node or host (JSON: `node` or `host`).
    #[serde(with = "json::role")]
    pub role: Role,
    /// IPv4 address (JSON: `169.254.3.4`).
    pub address: Ipv4Addr,
    /// Liveness (JSON: `alive` or `suspect`).
    #[serde(with = "json::status")]
    pub status: Status,
    /// CPU load, permille (0..=1000).
    pub cpu_load_permille: u16,
    /// Free memory, MiB.
    pub free_mem_mib: u64,
    /// CPU speed as the node measured it at boot (millions of benchmark loop
    /// iterations per second; comparable between SiON nodes only).
    pub cpu_speed: u32,
    /// Jobs running or waiting on it.
    pub running_jobs: u16,
    /// Processors it runs jobs on (0 for a host; absent in answers of
    /// daemons older than CPU counts: 0).
    #[serde(default)]
    pub cpus: u8,
    /// Of those, how many no job holds (`cpus` minus its running jobs,
    /// each counted as one CPU; 0 while an exclusive job owns it).
    #[serde(default)]
    pub free_cpus: u8,
    /// Seconds since it was last heard from (one decimal).
    pub last_heard_s: f64,
    /// True for the `hostd` that produced the table.
    pub this_host: bool,
}

/// Where a group table came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A running `hostd daemon` answered (JSON: `daemon`).
    Daemon,
    /// A one-shot session listened for the discovery window (JSON:
    /// `discovery`).
    Discovery,
}

/// The group's authentication as this host sees it (`hostd nodes`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAuth {
    /// The cluster key this host signs with (8 hex digits, see
    /// `sion_companion_mgr::auth::KeyId`); `null`: an open group, every node
    /// listed was built without a key.
    pub key_id: Option<String>,
    /// Datagrams dropped because they were not sealed with an accepted key,
    /// failed their tag or were replays (the sum of the next four).
    pub dropped_unauthenticated: u64,
    /// Of those, not sealed (open-group nodes, or anything else).
    pub dropped_unsealed: u64,
    /// Of those, sealed with a key this host does not have.
    pub dropped_unknown_key: u64,
    /// Of those, with a wrong tag (tampered or forged).
    pub dropped_bad_tag: u64,
    /// Of those, replays.
    pub dropped_replayed: u64,
    /// Sealed datagrams an open-group host heard and could not open.
    pub sealed_unopened: u64,
}

/// The answer to `hostd nodes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodesReport {
    /// Interface the group was seen on.
    pub interface: String,
    /// Our address on it.
    pub address: Ipv4Addr,
    /// Daemon or one-shot discovery.
    #[serde(with = "json::via")]
    pub via: Via,
    /// How long the view has been collected, in milliseconds (the discovery
    /// window, or the daemon's uptime).
    pub listened_ms: u64,
    /// Every member, nodes first.
    pub nodes: Vec<NodeRow>,
    /// Open or authenticated group, and what the key dropped (absent in
    /// answers of daemons older than keys: an open group).
    #[serde(default)]
    pub group: GroupAuth,
}

impl NodesReport {
    /// Number of members with [`Role::Node`].
    pub fn node_count(&self) -> usize {
        self.nodes.iter().filter(|r| r.role == Role::Node).count()
    }

    /// The [`Role::Node`] members, in table order.
    pub fn job_nodes(&self) -> impl Iterator<Item = &NodeRow> {
        self.nodes.iter().filter(|r| r.role == Role::Node)
    }
}

/// A permitting candidate, ranked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankedRow {
    /// 1 = best.
    pub rank: usize,
    /// Node id (JSON: MAC form).
    #[serde(with = "json::node_id")]
    pub id: NodeId,
    /// Name (empty if unknown).
    pub name: String,
    /// Where its answer came from.
    pub address: Ipv4Addr,
    /// Weighted score, higher is better.
    pub score: u64,
    /// The normalised parts of the score, each 0..=1000 (JSON: `cpu`, `mem`,
    /// `speed`, `net`).
    #[serde(with = "json::parts")]
    pub parts: ScoreParts,
    /// Reported CPU load, permille.
    pub cpu_load_permille: u16,
    /// Reported free memory, MiB.
    pub free_mem_mib: u64,
    /// Reported CPU speed.
    pub cpu_speed: u32,
    /// Reported running jobs.
    pub running_jobs: u16,
    /// Reported processors (0 in answers of daemons older than CPU counts).
    #[serde(default)]
    pub cpus: u8,
    /// Reported free processors.
    #[serde(default)]
    pub free_cpus: u8,
    /// Measured round trip of its answer, microseconds.
    pub rtt_us: u64,
}

/// A candidate that denied (JSON: `id`, `name`, `reason` in words and `code`,
/// the [`DenyReason`] variant's name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "json::DeniedJson", try_from = "json::DeniedJson")]
pub struct DeniedRow {
    /// Node id.
    pub id: NodeId,
    /// Name (empty if unknown).
    pub name: String,
    /// Why.
    pub reason: DenyReason,
}

/// A member by id and name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRef {
    /// Node id (JSON: MAC form).
    #[serde(with = "json::node_id")]
    pub id: NodeId,
    /// Name (empty if unknown).
    pub name: String,
}

/// The outcome of `hostd place`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlacementReport {
    /// The requester's placement number.
    pub placement: u32,
    /// Exclusive or balance (JSON: `exclusive` or `balance`).
    #[serde(with = "json::mode")]
    pub mode: Mode,
    /// Memory asked for, MiB.
    pub memory_mib: u64,
    /// CPUs asked for (absent in answers of daemons older than CPU counts: 1).
    #[serde(default = "one_cpu")]
    pub cpus: u8,
    /// Program size, bytes (0 until `hostd submit`).
    pub program_size: u64,
    /// Weights used (JSON: `cpu`, `mem`, `speed`, `net`, like `--weights`).
    #[serde(with = "json::weights")]
    pub weights: Weights,
    /// Permitting candidates, best first.
    pub ranked: Vec<RankedRow>,
    /// Candidates that denied, in id order.
    pub denied: Vec<DeniedRow>,
    /// Candidates that did not answer in time.
    pub unanswered: Vec<PeerRef>,
}

fn one_cpu() -> u8 {
    1
}

impl PlacementReport {
    /// Number of candidates asked.
    pub fn asked(&self) -> usize {
        self.ranked.len() + self.denied.len() + self.unanswered.len()
    }

    /// May a placement that found no node succeed later? True when a
    /// candidate is busy, held for another job, short of free CPUs or
    /// silent: those change as jobs end; a job too large for every node's
    /// memory or asking for more CPUs than any node has never fits.
    pub fn may_free_up(&self) -> bool {
        !self.unanswered.is_empty()
            || self.denied.iter().any(|d| {
                matches!(
                    d.reason,
                    DenyReason::Busy | DenyReason::Reserved | DenyReason::NoFreeCpus
                )
            })
    }

    /// "3 asked: 2 busy, 1 held for another job", for the lines that say
    /// why a job waits or failed.
    pub fn why_none(&self) -> String {
        let count = |r: DenyReason| self.denied.iter().filter(|d| d.reason == r).count();
        let mut parts = Vec::new();
        for (reason, word) in [
            (DenyReason::Busy, "busy"),
            (DenyReason::Reserved, "held for another job"),
            (DenyReason::NoFreeCpus, "without enough free CPUs"),
            (DenyReason::NotEnoughMemory, "short of memory"),
            (DenyReason::TooFewCpus, "with fewer CPUs than asked"),
            (DenyReason::NotAccepting, "not accepting jobs"),
            (DenyReason::ShuttingDown, "leaving"),
        ] {
            let n = count(reason);
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        if !self.unanswered.is_empty() {
            parts.push(format!("{} silent", self.unanswered.len()));
        }
        format!("{} asked: {}", self.asked(), parts.join(", "))
    }
}

/// Parses a node id in the MAC form the library displays
/// (`52:54:00:12:34:56`, either case); `None` for anything else.
pub fn parse_node_id(s: &str) -> Option<NodeId> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(NodeId::from_mac(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_parse_back_from_their_display() {
        let id = NodeId::from_mac([0x52, 0x54, 0x00, 0xab, 0x4e, 0x01]);
        assert_eq!(parse_node_id(&id.to_string()), Some(id));
        assert_eq!(parse_node_id("52:54:00:AB:4E:01"), Some(id));
        for bad in [
            "",
            "52:54:00:ab:4e",
            "52:54:00:ab:4e:01:02",
            "52:54:00:ab:4e:1",
            "52:54:00:ab:4e:0g",
            "52-54-00-ab-4e-01",
            "+2:54:00:ab:4e:01",
            "169.254.0.1",
        ] {
            assert_eq!(parse_node_id(bad), None, "{bad}");
        }
    }
}
