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
//!   entry; every member that hears it adds the newcomer. While the view fits one
//!   reply ([`wire::MAX_VIEW_CHUNK`] entries) every member answers with its whole
//!   view ([`Message::JoinReply`]); beyond, [`Config::join_view_responders`] synced
//!   members (those whose ids follow the newcomer's on the ring of ids) send their
//!   whole view in chunks, each covering an id range, and the newcomer asks for the
//!   ranges it lacks ([`Message::ViewRequest`]). Members whose own transfer is not
//!   over answer with their own entry only, so a mass boot still converges. A member
//!   that hears nobody repeats its join ([`Config::join_retry`],
//!   [`Config::join_attempts`]).
//! - **Liveness**: SWIM (Das, Gupta, Motivala, 2002) with Lifeguard (Dadgar et al.,
//!   2018). Every [`Config::probe_interval`] (500 ms) a member pings the next member
//!   of a round robin in random order ([`Message::Ping`]); if no [`Message::Ack`]
//!   came within [`Config::probe_timeout`] (150 ms) it pings again and asks
//!   [`Config::indirect_probes`] (3) random members to ping the target for it
//!   ([`Message::PingReq`]; a relay that gets no ack answers [`Message::Nack`]). A
//!   target that answered none of them by the end of the period becomes
//!   [`Status::Suspect`] at the prober only: the prober tells it at once and in
//!   every ping, re-probes it every period and declares it dead
//!   [`Config::suspicion_max`] (1.5 s) later, down to [`Config::suspicion_min`]
//!   when other suspecters confirm it; it broadcasts the death and gossips it. The
//!   suspect refutes with a larger SWIM incarnation number straight to its
//!   suspecter. Lifeguard's local health multiplier (missing nacks, refutations)
//!   stretches a member's own period and timeouts. A member that shuts down
//!   broadcasts [`Message::Leave`]. Entries carry the run's incarnation (new at
//!   every start) and the SWIM number, so late or duplicated datagrams never roll a
//!   member back or revive a dead one.
//! - **Dissemination**: joins, deaths, leaves and state changes ([`NodeState`]) ride
//!   on pings and acks ([`wire::Update`]), each `gossip_mult × ⌈log10(N + 1)⌉` times
//!   by every member that learns it, least-sent first. About 4 datagrams are sent
//!   and received per member per second without loss, whatever N is.
//! - **Placement** (§3.2.2, Fig. 5 c). The requester ([`Member::start_placement`])
//!   asks [`Config::placement_candidates`] (k = 3) random alive [`Role::Node`]
//!   members (power of k choices; in [`Mode::Exclusive`], nodes known to be busy
//!   only if too few idle ones were drawn) with a [`Message::TaskRequest`] carrying
//!   the [`JobSpec`], and collects [`Message::TaskReply`]s until all are in or
//!   [`Config::placement_timeout`] (200 ms) passes. Each candidate answers with
//!   [`placement::decide`]: permit, or deny with a [`DenyReason`], plus its load.
//!   The requester measures each answer's round trip as the network speed, scores
//!   every permitting node by the weighted sum of normalised metrics ([`Weights`],
//!   [`ScoreParts`]) and returns the [`Ranking`], best first. Hosts
//!   ([`Role::Host`], the user's PC running `hostd`) are full members but never
//!   candidates.
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
//! The `tests/` directory drives up to 5000 members through a simulated network with
//! loss and delay; `examples/simbench.rs` measures convergence, message rates and
//! failure detection up to 10,000 members (the largest groups start from one
//! [`SharedView`], see [`Member::with_view`]).

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod auth;
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
