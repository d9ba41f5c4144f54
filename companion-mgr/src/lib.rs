//! SiON Companion Manager library: sans-IO group membership, liveness and placement.
//!
//! The Companion Manager (CM) of the SiON paper (§3.2.2, §4.2.1, Fig. 4 b–g and
//! Fig. 5) forms the group of nodes on a LAN with no configuration and no master,
//! keeps it up to date, and chooses where a job runs. This crate is its protocol
//! logic as a `no_std` + `alloc` state machine, [`Member`], shared by the SiON CM
//! process and by `hostd` on Linux. It owns no clock, socket or random source: the
//! driver passes the time ([`Instant`], nanoseconds) and the received datagrams in,
//! and takes out the datagrams to send ([`Transmit`]) and the time of the next call
//! ([`Member::poll_at`]).
//!
//! # Protocol
//!
//! - **Join** (Fig. 5 a). A starting member broadcasts [`Message::Join`] with its own
//!   entry. Every member that hears it adds the newcomer and answers by unicast
//!   [`Message::JoinReply`] with its own entry, so the newcomer knows the group after
//!   one round trip. When the view fits one reply ([`wire::MAX_VIEW_CHUNK`] entries)
//!   the reply carries the whole view; otherwise [`Config::join_view_responders`]
//!   members (those whose ids follow the newcomer's on the ring of ids) send their
//!   whole view in chunks, which covers replies lost on the way (members that joined
//!   less than a heartbeat interval ago never do, so a mass boot of N members costs
//!   O(N²) small replies, not O(N³) entries). A member that has heard from nobody
//!   repeats its join ([`Config::join_retry`], [`Config::join_attempts`]).
//! - **Liveness** (Fig. 5 b). Every member broadcasts a [`Message::Heartbeat`] every
//!   [`Config::heartbeat_interval`] (1 s) carrying only its own entry: id, name, role,
//!   address and [`NodeState`] (CPU load, free memory, CPU speed, running jobs). With
//!   N members that is N broadcasts per second and N − 1 receptions per member, not
//!   the N² entries per second of full-view gossip. A member not heard for
//!   [`Config::suspect_after`] (3 s) becomes [`Status::Suspect`] and is probed by
//!   unicast [`Message::Probe`] every [`Config::probe_interval`]; it answers with a
//!   unicast heartbeat, which restores it. A member not heard for
//!   [`Config::dead_after`] (5 s) is declared dead and dropped. A member that shuts
//!   down broadcasts [`Message::Leave`]. Heartbeats carry an incarnation (new at every
//!   start) and a sequence number, so late or duplicated datagrams never roll a
//!   member's state back or revive a dead member.
//! - **Placement** (§3.2.2, Fig. 5 c). The requester ([`Member::start_placement`])
//!   picks up to k alive [`Role::Node`] members (default 8), sends each a
//!   [`Message::TaskRequest`] with the [`JobSpec`] (program size, memory, [`Mode`]),
//!   and collects [`Message::TaskReply`]s until all are in or the timeout (200 ms)
//!   passes. Each candidate answers with [`placement::decide`]: permit, or deny with
//!   a [`DenyReason`], plus its current load. The requester measures each answer's
//!   round trip as the network speed, scores every permitting node as the weighted
//!   sum of normalised metrics ([`Weights`], [`ScoreParts`]) and returns the
//!   [`Ranking`], best first, with every score's parts. Hosts ([`Role::Host`], the
//!   user's PC running `hostd`) are full members but never candidates.
//!
//! # Driver
//!
//! A driver owns the socket (UDP on the CM port, or SiON network IPC) and the clock:
//!
//! ```
//! use sion_companion_mgr::{Addr, Config, Dest, Instant, LocalNode, Member, NodeId, Role};
//!
//! /// What the driver's platform provides.
//! trait Net {
//!     /// Sends a datagram to `to`, or broadcasts it on the LAN when `to` is `None`.
//!     fn send(&mut self, to: Option<Addr>, bytes: &[u8]);
//!     /// Waits for a datagram until `deadline`: its source and payload.
//!     fn recv_until(&mut self, deadline: Instant) -> Option<(Addr, Vec<u8>)>;
//!     /// The monotonic clock.
//!     fn now(&self) -> Instant;
//! }
//!
//! fn run(net: &mut impl Net, mac: [u8; 6], addr: Addr, seed: u64) {
//!     let me = LocalNode::new(NodeId::from_mac(mac), Role::Node, addr);
//!     let mut member = Member::new(Config::default(), me, net.now(), seed);
//!     loop {
//!         while let Some(t) = member.poll_transmit() {
//!             match t.dest {
//!                 Dest::Broadcast => net.send(None, &t.bytes),
//!                 Dest::Unicast(to) => net.send(Some(to), &t.bytes),
//!             }
//!         }
//!         while let Some(_event) = member.poll_event() { /* log, redraw the screen */ }
//!         if let Some((from, bytes)) = net.recv_until(member.poll_at()) {
//!             // A bad datagram changes nothing; count it and go on.
//!             let _ = member.handle_datagram(net.now(), from, &bytes);
//!         }
//!         let now = net.now();
//!         if now >= member.poll_at() {
//!             member.poll(now);
//!         }
//!     }
//! }
//! ```
//!
//! The `tests/` directory drives up to 1000 members through a simulated network with
//! loss and delay; `examples/simbench.rs` measures convergence, message rates and
//! failure detection.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod member;
pub mod node;
pub mod placement;
mod table;
pub mod time;
pub mod wire;

pub use member::{Config, Dest, Event, Member, MemberInfo, Stats, Status, Transmit};
pub use node::{Addr, LocalNode, Name, NameError, NodeId, NodeState, Role};
pub use placement::{
    Answer, Denial, DenyReason, JobSpec, Mode, PlacementId, Ranked, Ranking, ScoreParts, Verdict,
    Weights,
};
pub use table::SharedView;
pub use time::Instant;
pub use wire::{DecodeError, Message};
