//! A `hostd` group member: the Companion Manager library driven with the real
//! clock over a [`Transport`], speaking SiON network IPC ([`envelope`]).
//!
//! [`Session`] is the driver loop of the sans-IO [`Member`] (see
//! `sion_companion_mgr`'s crate documentation): received datagrams are
//! unwrapped and handed to the member, due timers are run, and every queued
//! [`Transmit`](sion_companion_mgr::Transmit) is wrapped and sent, broadcasts to
//! the interface's subnet broadcast address and unicasts to the member's
//! address, always on port 7420. `hostd` joins as [`Role::Host`]: a full member
//! that is never a placement candidate.
//!
//! Two ways to drive it: one-shot commands call [`Session::pump_until`], which
//! also receives from the transport; the daemon receives on its own thread and
//! feeds [`Session::handle_datagram`] and [`Session::tick`] itself. Never both
//! on one transport.
//!
//! With a cluster key ([`Session::with_keys`]) every datagram is sealed before
//! it is wrapped and must open after it is unwrapped
//! ([`sion_companion_mgr::auth::datagram`]); what does not open is dropped and
//! counted ([`Session::auth_stats`]), and [`Session::key_hint`] turns the counts
//! into advice when no node is heard.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Result, anyhow};
use sion_companion_mgr::auth::datagram::SEALED_VERSION;
use sion_companion_mgr::auth::{AuthStats, DatagramAuth, Keyring};
use sion_companion_mgr::{
    Addr, Config, Dest, Event, Instant, JobSpec, LocalNode, Member, Name, NodeId, PlacementId,
    Ranking, Role, Weights,
};

use crate::envelope::{self, DropCounters, IPC_PORT};
use crate::iface::{Interface, subnet_broadcast};
use crate::model::{DeniedRow, GroupAuth, NodeRow, PeerRef, PlacementReport, RankedRow};
use crate::transport::Transport;

/// Who `hostd` is on the LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Node id: the interface's MAC ([`Interface::node_id`]).
    pub id: NodeId,
    /// Name shown in group tables: the host name (cut to 32 bytes).
    pub name: Name,
    /// Interface name, for messages.
    pub iface: String,
    /// The interface's IPv4 address: where `hostd` receives unicasts.
    pub ip: Ipv4Addr,
    /// Prefix length of `ip`.
    pub prefix: u8,
}

impl Identity {
    /// The identity on `iface`, named after this machine's host name.
    ///
    /// # Errors
    /// `iface` has no IPv4 address.
    pub fn for_interface(iface: &Interface) -> Result<Identity> {
        let (ip, prefix) = iface
            .ipv4
            .ok_or_else(|| anyhow!("interface {} has no IPv4 address", iface.name))?;
        let id = iface.node_id();
        Ok(Identity {
            id,
            name: host_name().unwrap_or_else(|| Name::derive(id)),
            iface: iface.name.clone(),
            ip,
            prefix,
        })
    }

    /// Where broadcasts go: the subnet broadcast address of `ip/prefix`.
    pub fn broadcast(&self) -> SocketAddrV4 {
        SocketAddrV4::new(subnet_broadcast(self.ip, self.prefix), IPC_PORT)
    }

    /// Where the group sends us unicasts.
    pub fn addr(&self) -> Addr {
        Addr::new(self.ip.octets(), IPC_PORT)
    }
}

/// This machine's host name as a valid [`Name`]: control characters dropped,
/// cut at a character boundary to 32 bytes; `None` if that leaves nothing.
pub fn host_name() -> Option<Name> {
    let raw = nix::unistd::gethostname().ok()?;
    name_from(&raw.to_string_lossy())
}

/// `s` as a [`Name`]: control characters dropped, surrounding spaces trimmed,
/// cut at a character boundary to 32 bytes.
pub fn name_from(s: &str) -> Option<Name> {
    let mut out = String::new();
    for c in s.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > sion_companion_mgr::node::MAX_NAME_LEN {
            break;
        }
        out.push(c);
    }
    Name::new(out.trim()).ok()
}

/// A random seed for the member's incarnation and probe phase: std's
/// per-process random hash keys, the time and the pid.
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    RandomState::new().hash_one((nanos, std::process::id()))
}

/// What the session remembers of a member for messages after it is gone.
#[derive(Clone, Debug)]
struct Known {
    name: Name,
    role: Role,
    addr: Addr,
}

/// `hostd`'s membership in the group over one transport.
pub struct Session {
    member: Member,
    transport: Arc<dyn Transport>,
    ident: Identity,
    origin: StdInstant,
    drops: DropCounters,
    subnet_filter: bool,
    known: HashMap<NodeId, Known>,
    last_send_error: Option<String>,
    /// Seals and opens datagrams; `None` in an open group.
    auth: Option<DatagramAuth>,
    /// Sealed datagrams heard without a key to open them (open group only).
    sealed_unopened: u64,
}

impl Session {
    /// Joins the group at once (the member broadcasts its join when created).
    pub fn new(
        transport: Arc<dyn Transport>,
        ident: Identity,
        config: Config,
        seed: u64,
    ) -> Session {
        Session::with_keys(transport, ident, config, seed, None)
    }

    /// Joins the group at once, sealing every datagram with `keys`' first key
    /// and accepting only datagrams sealed with one of them (`None`: an open
    /// group, as [`Session::new`]).
    pub fn with_keys(
        transport: Arc<dyn Transport>,
        ident: Identity,
        config: Config,
        seed: u64,
        keys: Option<Keyring>,
    ) -> Session {
        let mut local = LocalNode::new(ident.id, Role::Host, ident.addr());
        local.name = Some(ident.name.clone());
        let member = Member::new(config, local, Instant::ZERO, seed);
        let mut s = Session {
            member,
            transport,
            ident,
            origin: StdInstant::now(),
            drops: DropCounters::default(),
            subnet_filter: false,
            known: HashMap::new(),
            last_send_error: None,
            auth: keys.map(|k| DatagramAuth::new(k, random_seed() ^ seed.rotate_left(17))),
            sealed_unopened: 0,
        };
        s.flush();
        s
    }

    /// The keys the session seals with and accepts; `None` in an open group.
    pub fn keys(&self) -> Option<&Keyring> {
        self.auth.as_ref().map(DatagramAuth::keys)
    }

    /// What the cluster key dropped (`None` in an open group).
    pub fn auth_stats(&self) -> Option<AuthStats> {
        self.auth.as_ref().map(DatagramAuth::stats)
    }

    /// Sealed datagrams heard without a key (an open-group session next to an
    /// authenticated group).
    pub fn sealed_unopened(&self) -> u64 {
        self.sealed_unopened
    }

    /// The group's authentication as this session sees it.
    pub fn group_auth(&self) -> GroupAuth {
        let stats = self.auth_stats().unwrap_or_default();
        GroupAuth {
            key_id: self.keys().map(|k| k.signing().id().to_string()),
            dropped_unauthenticated: stats.dropped(),
            dropped_unsealed: stats.unsealed,
            dropped_unknown_key: stats.unknown_key,
            dropped_bad_tag: stats.bad_tag,
            dropped_replayed: stats.replayed,
            sealed_unopened: self.sealed_unopened,
        }
    }

    /// Advice when the key explains why no node was heard (see
    /// [`crate::report::key_hint`]).
    pub fn key_hint(&self) -> Option<String> {
        crate::report::key_hint(&self.group_auth())
    }

    /// Drops datagrams whose source lies outside our subnet (for a socket that
    /// could not be tied to its interface). Off by default.
    pub fn set_subnet_filter(&mut self, on: bool) {
        self.subnet_filter = on;
    }

    /// The member's clock: time since the session started.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(self.origin.elapsed().as_nanos() as u64)
    }

    /// How long the session has run.
    pub fn uptime(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The Companion Manager member.
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// The Companion Manager member, mutably (call [`Session::flush`] after
    /// anything that may queue datagrams).
    pub fn member_mut(&mut self) -> &mut Member {
        &mut self.member
    }

    /// Who we are.
    pub fn identity(&self) -> &Identity {
        &self.ident
    }

    /// The transport (shared; see the module documentation).
    pub fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    /// Datagrams dropped so far, by reason.
    pub fn drops(&self) -> DropCounters {
        self.drops
    }

    /// The last send error, if any send failed.
    pub fn last_send_error(&self) -> Option<&str> {
        self.last_send_error.as_deref()
    }

    /// Handles one received datagram from `from`: drops our own, foreign and
    /// malformed ones (counted in [`Session::drops`]), hands the rest to the
    /// member as coming from `from`'s IP, port 7420, and sends any answers.
    pub fn handle_datagram(&mut self, from: SocketAddrV4, datagram: &[u8]) {
        let ip = *from.ip();
        if ip == self.ident.ip {
            self.drops.own += 1;
            return;
        }
        if self.subnet_filter
            && subnet_broadcast(ip, self.ident.prefix)
                != subnet_broadcast(self.ident.ip, self.ident.prefix)
        {
            self.drops.not_for_us += 1;
            return;
        }
        let (header, payload) = match envelope::unwrap(self.ident.id, datagram) {
            Ok(ok) => ok,
            Err(r) => {
                self.drops.count(&r);
                return;
            }
        };
        if header.src_node == self.ident.id.as_u64() {
            self.drops.own += 1;
            return;
        }
        let payload = match self.auth.as_mut() {
            Some(auth) => match auth.open(payload) {
                Ok(p) => p,
                // Counted in the auth counters.
                Err(_) => return,
            },
            None if payload.first() == Some(&SEALED_VERSION) => {
                self.sealed_unopened += 1;
                return;
            }
            None => payload,
        };
        let now = self.now();
        let from = Addr::new(ip.octets(), IPC_PORT);
        if self.member.handle_datagram(now, from, payload).is_err() {
            self.drops.bad_payload += 1;
        }
        self.flush();
    }

    /// Runs the member's timers if due, then sends what it queued.
    pub fn tick(&mut self) {
        let now = self.now();
        if now >= self.member.poll_at() {
            self.member.poll(now);
        }
        self.flush();
    }

    /// Time until the member's next timer.
    pub fn next_wake(&self) -> Duration {
        self.member.poll_at().saturating_duration_since(self.now())
    }

    /// Sends every queued datagram. Send errors are counted and remembered, not
    /// fatal: the protocol retries by itself.
    pub fn flush(&mut self) {
        while let Some(t) = self.member.poll_transmit() {
            let (to, broadcast) = match t.dest {
                Dest::Broadcast => (self.ident.broadcast(), true),
                Dest::Unicast(a) => (SocketAddrV4::new(Ipv4Addr::from(a.ip), IPC_PORT), false),
            };
            let bytes = match self.auth.as_mut() {
                Some(auth) => auth.seal(&t.bytes),
                None => t.bytes,
            };
            let result = envelope::wrap(self.ident.id, broadcast, &bytes)
                .map_err(|e| format!("message too long ({e:?})"))
                .and_then(|d| {
                    self.transport
                        .send(to, &d)
                        .map_err(|e| format!("sending to {to}: {e}"))
                });
            if let Err(e) = result {
                self.drops.send_errors += 1;
                self.last_send_error = Some(e);
            }
        }
    }

    /// Drives the member until `deadline` or until `done` returns true
    /// (checked after every datagram and timer), receiving from the transport.
    ///
    /// # Errors
    /// A receive error of the transport.
    pub fn pump_until(
        &mut self,
        deadline: StdInstant,
        mut done: impl FnMut(&Member) -> bool,
    ) -> Result<()> {
        loop {
            self.tick();
            self.remember_members();
            if done(&self.member) {
                return Ok(());
            }
            let now = StdInstant::now();
            if now >= deadline {
                return Ok(());
            }
            let wait = (deadline - now).min(self.next_wake());
            if let Some((from, d)) = self.transport.recv(wait)? {
                self.handle_datagram(from, &d);
            }
        }
    }

    /// Drives the member for `window` (one-shot discovery).
    ///
    /// # Errors
    /// A receive error of the transport.
    pub fn pump_for(&mut self, window: Duration) -> Result<()> {
        self.pump_until(StdInstant::now() + window, |_| false)
    }

    /// Leaves the group gracefully and sends the leave broadcasts.
    pub fn leave(&mut self) {
        let now = self.now();
        self.member.leave(now);
        self.flush();
    }

    /// Starts a placement; its result appears at
    /// [`Member::placement_result`] (see [`place`] for the blocking form).
    pub fn start_placement(&mut self, job: JobSpec, weights: Weights) -> PlacementId {
        let now = self.now();
        let id = self.member.start_placement(now, job, weights);
        self.flush();
        id
    }

    fn remember_members(&mut self) {
        for m in self.member.view() {
            self.known.insert(
                m.id,
                Known {
                    name: m.name.clone(),
                    role: m.role,
                    addr: m.addr,
                },
            );
        }
    }

    /// `52:54:00:12:34:56 amber-otter-3456 (node, 169.254.3.4)`, from the view
    /// or, for members already gone, from what the session remembers.
    pub fn describe(&self, id: NodeId) -> String {
        let (name, role, addr) = match self.member.member(id) {
            Some(m) => (m.name.clone(), m.role, m.addr),
            None => match self.known.get(&id) {
                Some(k) => (k.name.clone(), k.role, k.addr),
                None => return id.to_string(),
            },
        };
        format!("{id} {name} ({role}, {})", Ipv4Addr::from(addr.ip))
    }

    /// The next group event with a one-line description for logs, e.g.
    /// `joined: 52:54:00:12:34:56 amber-otter-3456 (node, 169.254.3.4)`.
    /// Placement completions are returned too, described briefly.
    pub fn poll_event(&mut self) -> Option<(Event, String)> {
        self.remember_members();
        let e = self.member.poll_event()?;
        let text = match e {
            Event::Joined(id) => format!("joined: {}", self.describe(id)),
            Event::Restarted(id) => format!("restarted: {}", self.describe(id)),
            Event::Suspect(id) => format!("suspect (not heard for a while): {}", self.describe(id)),
            Event::Restored(id) => format!("alive again: {}", self.describe(id)),
            Event::Dead(id) => format!("dead (not heard, dropped): {}", self.describe(id)),
            Event::Left(id) => format!("left: {}", self.describe(id)),
            Event::PlacementDone(p) => format!("placement {p} done"),
        };
        if let Event::Dead(id) | Event::Left(id) = e {
            self.known.remove(&id);
        }
        Some((e, text))
    }

    /// The group table: every member of the view, nodes first, then hosts, each
    /// in id order.
    pub fn rows(&self) -> Vec<NodeRow> {
        let now = self.now();
        let me = self.ident.id;
        let mut rows: Vec<NodeRow> = self
            .member
            .view()
            .map(|m| NodeRow {
                id: m.id,
                name: m.name.to_string(),
                role: m.role,
                address: Ipv4Addr::from(m.addr.ip),
                status: m.status,
                cpu_load_permille: m.state.cpu_load,
                free_mem_mib: m.state.free_mem >> 20,
                cpu_speed: m.state.cpu_speed,
                running_jobs: m.state.running_jobs,
                cpus: m.state.cpus,
                free_cpus: m.state.free_cpus,
                last_heard_s: if m.id == me {
                    0.0
                } else {
                    round1(now.saturating_duration_since(m.last_heard).as_secs_f64())
                },
                this_host: m.id == me,
            })
            .collect();
        rows.sort_by_key(|r| r.role != Role::Node);
        rows
    }

    /// Number of [`Role::Node`] members in the view.
    pub fn node_count(&self) -> usize {
        self.member.view().filter(|m| m.role == Role::Node).count()
    }

    /// A placement's outcome with names and addresses from the view, for
    /// display and JSON.
    pub fn report(&self, r: &Ranking) -> PlacementReport {
        let peer = |id: NodeId| PeerRef {
            id,
            name: self.name_of(id),
        };
        PlacementReport {
            placement: r.id.0,
            mode: r.job.mode,
            memory_mib: r.job.memory >> 20,
            cpus: r.job.cpus_wanted(),
            program_size: r.job.program_size,
            weights: r.weights,
            ranked: r
                .ranked
                .iter()
                .enumerate()
                .map(|(i, c)| RankedRow {
                    rank: i + 1,
                    id: c.node,
                    name: self.name_of(c.node),
                    address: Ipv4Addr::from(c.addr.ip),
                    score: c.score,
                    parts: c.parts,
                    cpu_load_permille: c.state.cpu_load,
                    free_mem_mib: c.state.free_mem >> 20,
                    cpu_speed: c.state.cpu_speed,
                    running_jobs: c.state.running_jobs,
                    cpus: c.state.cpus,
                    free_cpus: c.state.free_cpus,
                    rtt_us: c.rtt.as_micros() as u64,
                })
                .collect(),
            denied: r
                .denied
                .iter()
                .map(|d| DeniedRow {
                    id: d.node,
                    name: self.name_of(d.node),
                    reason: d.reason,
                })
                .collect(),
            unanswered: r.unanswered.iter().map(|&id| peer(id)).collect(),
        }
    }

    fn name_of(&self, id: NodeId) -> String {
        match self.member.member(id) {
            Some(m) => m.name.to_string(),
            None => self
                .known
                .get(&id)
                .map_or_else(String::new, |k| k.name.to_string()),
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Runs one placement to completion (SiON paper §3.2.2: ask up to k candidates,
/// collect permit/deny with their load, rank by the weighted score) and returns
/// the library's [`Ranking`], best first.
///
/// Blocks for at most the placement timeout (200 ms by default) plus one second,
/// receiving from the session's transport: for one-shot sessions (the daemon
/// runs placements without blocking). With no alive node in the view the
/// ranking is empty at once; callers decide whether that is an error. This is
/// the placement path `hostd place` uses and `hostd submit` will use.
///
/// # Errors
/// A transport receive error, or the placement not finishing in time (a bug).
pub fn place(session: &mut Session, job: JobSpec, weights: Weights) -> Result<Ranking> {
    let id = session.start_placement(job, weights);
    let limit = session.member().config().placement_timeout + Duration::from_secs(1);
    session.pump_until(StdInstant::now() + limit, |m| {
        m.placement_result(id).is_some()
    })?;
    session
        .member_mut()
        .take_placement_result(id)
        .ok_or_else(|| anyhow!("placement {id} did not finish within {limit:?}"))
}

/// Ends a finished placement for its requester: the candidates at `exclude`d
/// addresses leave the ranking, and every candidate's reservation (see
/// `Config::reservation_lease`) is released at once but the chosen node's:
/// the best remaining one when `take`, none otherwise (a placement that only
/// looks, `hostd place`). The releases are sent before this returns.
pub fn settle(session: &mut Session, mut r: Ranking, exclude: &[Ipv4Addr], take: bool) -> Ranking {
    r.ranked
        .retain(|c| !exclude.contains(&Ipv4Addr::from(c.addr.ip)));
    let chosen = if take { r.best().map(|b| b.node) } else { None };
    session.member_mut().release_unchosen(&r, chosen);
    session.flush();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_host_names() {
        assert_eq!(name_from("build-box").unwrap().as_str(), "build-box");
        assert_eq!(name_from("  pc\n ").unwrap().as_str(), "pc");
        assert_eq!(name_from(""), None);
        assert_eq!(name_from("\t\n"), None);
        let long = "a-very-long-host-name.example.internal.lan";
        let n = name_from(long).unwrap();
        assert_eq!(n.as_str().len(), 32);
        assert!(long.starts_with(n.as_str()));
        // Cut at a character boundary, never inside a multi-byte character.
        let jp = "ノードノードノードノードノードノード"; // 3 bytes each
        assert_eq!(name_from(jp).unwrap().as_str().len(), 30);
        assert!(host_name().is_none_or(|n| !n.as_str().is_empty()));
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(random_seed(), random_seed());
    }
}
