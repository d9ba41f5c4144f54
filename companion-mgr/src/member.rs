//! The sans-IO group member: join, heartbeat, suspect, dead, leave, and placement.

use alloc::collections::{BTreeMap, BinaryHeap, VecDeque};
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::ops::Bound;
use core::time::Duration;

use crate::node::{Addr, LocalNode, MAX_CPU_LOAD, Name, NodeId, NodeState, Role};
use crate::placement::{
    Answer, Denial, JobSpec, Mode, PlacementId, RTT_FLOOR, Ranking, Verdict, Weights, decide, rank,
};
use crate::time::{Instant, duration_nanos};
use crate::wire::{Announce, DecodeError, MAX_VIEW_CHUNK, Message};

/// Timing and size parameters of a [`Member`]. All members of a group should use the
/// same liveness values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Period of the broadcast heartbeat. Default 1 s.
    pub heartbeat_interval: Duration,
    /// A member not heard from for this long becomes [`Status::Suspect`] and is
    /// probed. Default 3 s.
    pub suspect_after: Duration,
    /// A member not heard from for this long is declared dead and dropped from the
    /// view. Default 5 s.
    pub dead_after: Duration,
    /// Period of the unicast probes sent to a suspect. Default 1 s.
    pub probe_interval: Duration,
    /// How long a joining member waits for a join reply before broadcasting its join
    /// again. Default 1 s.
    pub join_retry: Duration,
    /// How many joins a member broadcasts at most: it stops as soon as it has a reply
    /// or knows any other member (whoever joins later learns it from the join reply);
    /// a member alone on the LAN is found by others through its heartbeats. Default 3.
    pub join_attempts: u8,
    /// Number of members that answer a join with their whole view (split in chunks of
    /// [`MAX_VIEW_CHUNK`]): the alive members whose ids follow the joiner's on the
    /// ring of ids. The others answer with their own entry only, so
    /// a join costs O(N) replies, not O(N²) entries. Views that fit one reply are
    /// always sent whole. A member that joined less than one heartbeat interval ago
    /// may not know everyone yet and never sends its whole view (this also keeps a
    /// mass boot of N members from costing N² entries). Default 2.
    pub join_view_responders: u16,
    /// Most candidates asked per placement (k). Default 8.
    pub placement_candidates: usize,
    /// How long a requester waits for task replies. Default 200 ms.
    pub placement_timeout: Duration,
    /// Retransmissions of a task request to candidates that have not answered, evenly
    /// spaced within the timeout. Default 1.
    pub placement_retries: u8,
    /// How long a dead or left member's last sequence number is remembered, so that
    /// late datagrams do not bring it back. Default 30 s.
    pub tombstone_ttl: Duration,
    /// Most undelivered [`Event`]s kept; older ones are dropped and counted in
    /// [`Stats::events_dropped`]. Default 1024.
    pub event_capacity: usize,
    /// Most finished placements kept for [`Member::placement_result`]; older ones are
    /// dropped. Default 64.
    pub finished_placements: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            heartbeat_interval: Duration::from_secs(1),
            suspect_after: Duration::from_secs(3),
            dead_after: Duration::from_secs(5),
            probe_interval: Duration::from_secs(1),
            join_retry: Duration::from_secs(1),
            join_attempts: 3,
            join_view_responders: 2,
            placement_candidates: 8,
            placement_timeout: Duration::from_millis(200),
            placement_retries: 1,
            tombstone_ttl: Duration::from_secs(30),
            event_capacity: 1024,
            finished_placements: 64,
        }
    }
}

/// Liveness of a member in the local view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Heard from within [`Config::suspect_after`] (the local member is always alive).
    Alive,
    /// Not heard from for [`Config::suspect_after`]; probed; dropped after
    /// [`Config::dead_after`], restored to alive if heard again.
    Suspect,
}

/// One member as the local member sees it: an entry of [`Member::view`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Stable id.
    pub id: NodeId,
    /// Human name.
    pub name: Name,
    /// Node or host.
    pub role: Role,
    /// Where to send it datagrams: the source address of its last direct datagram, or
    /// the address it announced if it was learned from another member's view.
    pub addr: Addr,
    /// The load it last reported (heartbeat or task reply).
    pub state: NodeState,
    /// Alive or suspect.
    pub status: Status,
    /// Its current incarnation (changes when it restarts).
    pub incarnation: u64,
    /// When the local member last heard a newer heartbeat of it (for the local member:
    /// the last `now` it was given).
    pub last_heard: Instant,
    /// When it entered the local view.
    pub since: Instant,
}

/// Where a [`Transmit`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    /// To every member: a UDP broadcast on the link (SiON network IPC to all nodes).
    Broadcast,
    /// To one member.
    Unicast(Addr),
}

/// A datagram the driver must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Broadcast or unicast.
    pub dest: Dest,
    /// The encoded message ([`Message::encode`]), at most
    /// [`MAX_MESSAGE_LEN`](crate::wire::MAX_MESSAGE_LEN) bytes.
    pub bytes: Vec<u8>,
}

/// Something that changed in the group, for the driver's display and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A member entered the view.
    Joined(NodeId),
    /// A member restarted (new incarnation): whatever it ran is gone.
    Restarted(NodeId),
    /// A member became suspect.
    Suspect(NodeId),
    /// A suspect was heard again.
    Restored(NodeId),
    /// A member was declared dead and dropped.
    Dead(NodeId),
    /// A member left gracefully and was dropped.
    Left(NodeId),
    /// A placement finished; its result is at [`Member::placement_result`].
    PlacementDone(PlacementId),
}

/// Counters, for benchmarks and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Broadcast datagrams queued.
    pub sent_broadcast: u64,
    /// Unicast datagrams queued.
    pub sent_unicast: u64,
    /// Datagrams given to [`Member::handle_datagram`] (valid or not) plus messages
    /// given to [`Member::handle_message`].
    pub received: u64,
    /// Datagrams rejected by the decoder.
    pub decode_errors: u64,
    /// Valid datagrams ignored: own broadcasts looped back, stale or duplicate
    /// announces, late replies, probes for someone else.
    pub ignored: u64,
    /// Events dropped because nobody called [`Member::poll_event`].
    pub events_dropped: u64,
    /// Messages that could not be encoded (a bug if ever non-zero).
    pub encode_errors: u64,
}

struct Entry {
    info: MemberInfo,
    seq: u64,
    prev_incarnation: Option<u64>,
    /// Time of this entry's pending liveness timer.
    check_at: Instant,
    next_probe: Instant,
}

struct Tombstone {
    incarnation: u64,
    /// Announces of `incarnation` with `seq <= this` are stale (`u64::MAX` after leave).
    seq: u64,
    expires: Instant,
}

struct Candidate {
    id: NodeId,
    addr: Addr,
    answer: Option<Answer>,
}

struct Pending {
    id: PlacementId,
    job: JobSpec,
    weights: Weights,
    deadline: Instant,
    next_retry: Instant,
    sent_at: Vec<Instant>,
    candidates: Vec<Candidate>,
    answered: usize,
}

/// One Companion Manager group member, as a sans-IO state machine.
///
/// The driver owns the clock and the socket: it calls [`handle_datagram`] for every
/// datagram received on the CM port, [`poll`] whenever the clock reaches
/// [`poll_at`], and after each call sends everything [`poll_transmit`] yields. See the
/// crate documentation for a driver loop.
///
/// [`handle_datagram`]: Member::handle_datagram
/// [`poll`]: Member::poll
/// [`poll_at`]: Member::poll_at
/// [`poll_transmit`]: Member::poll_transmit
pub struct Member {
    cfg: Config,
    local: MemberInfo,
    seq: u64,
    leaving: bool,
    accepting: bool,
    members: BTreeMap<NodeId, Entry>,
    /// Number of entries of `members` with [`Status::Suspect`].
    suspects: usize,
    /// Encoded own-entry join reply, valid for (`seq`, local state).
    join_reply_cache: Option<((u64, NodeState), Vec<u8>)>,
    timers: BinaryHeap<Reverse<(Instant, NodeId)>>,
    tombstones: BTreeMap<NodeId, Tombstone>,
    tomb_sweep_at: Instant,
    next_heartbeat: Instant,
    join_left: u8,
    join_at: Instant,
    /// Set by the first join reply or the first other member learned: no more joins.
    join_done: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    pending: Vec<Pending>,
    finished: VecDeque<Ranking>,
    next_placement: u32,
    stats: Stats,
}

impl Member {
    /// Starts a member at `now`: queues the join broadcast and schedules the first
    /// heartbeat at a random phase within one interval.
    ///
    /// `seed` is the caller's randomness (RDRAND, TSC jitter, `getrandom`); it picks
    /// this run's incarnation and the heartbeat phase, so it must differ between runs
    /// of the same node. `config` is used as given except that the heartbeat and probe
    /// intervals are at least 1 ms and `dead_after` is at least `suspect_after`;
    /// `local.state` is clamped as by [`set_local_state`](Member::set_local_state).
    pub fn new(config: Config, mut local: LocalNode, now: Instant, seed: u64) -> Member {
        let mut config = config;
        let min = Duration::from_millis(1);
        config.heartbeat_interval = config.heartbeat_interval.max(min);
        config.probe_interval = config.probe_interval.max(min);
        config.dead_after = config.dead_after.max(config.suspect_after);
        local.state = clamp_state(local.state);
        let mut rng = fastrand::Rng::with_seed(seed ^ local.id.as_u64().rotate_left(23));
        let incarnation = rng.u64(..);
        let phase = rng.u64(..duration_nanos(config.heartbeat_interval).max(1));
        let info = MemberInfo {
            id: local.id,
            name: local.name.unwrap_or_else(|| Name::derive(local.id)),
            role: local.role,
            addr: local.addr,
            state: local.state,
            status: Status::Alive,
            incarnation,
            last_heard: now,
            since: now,
        };
        let mut m = Member {
            cfg: config,
            local: info,
            seq: 0,
            leaving: false,
            accepting: true,
            members: BTreeMap::new(),
            suspects: 0,
            join_reply_cache: None,
            timers: BinaryHeap::new(),
            tombstones: BTreeMap::new(),
            tomb_sweep_at: now + config.tombstone_ttl,
            next_heartbeat: now + Duration::from_nanos(phase),
            join_left: config.join_attempts,
            join_at: now,
            join_done: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            pending: Vec::new(),
            finished: VecDeque::new(),
            next_placement: 0,
            stats: Stats::default(),
        };
        m.poll(now);
        m
    }

    /// The local member's id.
    pub fn id(&self) -> NodeId {
        self.local.id
    }

    /// The local member's entry (status always [`Status::Alive`]).
    pub fn local(&self) -> &MemberInfo {
        &self.local
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Every member of the group as seen locally, the local member included, in
    /// [`NodeId`] order. Suspects are included (with [`Status::Suspect`]); dead and
    /// left members are not.
    pub fn view(&self) -> impl Iterator<Item = &MemberInfo> + '_ {
        let id = self.local.id;
        let below = self.members.range(..id).map(|(_, e)| &e.info);
        let above = self
            .members
            .range((Bound::Excluded(id), Bound::Unbounded))
            .map(|(_, e)| &e.info);
        below.chain(core::iter::once(&self.local)).chain(above)
    }

    /// Number of members in [`view`](Member::view), the local member included.
    pub fn view_len(&self) -> usize {
        self.members.len() + 1
    }

    /// One member's entry, if it is in the view (the local member included).
    pub fn member(&self, id: NodeId) -> Option<&MemberInfo> {
        if id == self.local.id {
            Some(&self.local)
        } else {
            self.members.get(&id).map(|e| &e.info)
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// True after [`leave`](Member::leave).
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    /// Replaces the load reported in the next heartbeats and task replies;
    /// `cpu_load` above [`MAX_CPU_LOAD`] is clamped to it.
    pub fn set_local_state(&mut self, state: NodeState) {
        self.local.state = clamp_state(state);
    }

    /// Switches job acceptance: when `false`, task requests are denied with
    /// [`DenyReason::NotAccepting`](crate::DenyReason::NotAccepting). Default `true`.
    pub fn set_accepting(&mut self, accepting: bool) {
        self.accepting = accepting;
    }

    /// Leaves the group gracefully: broadcasts a leave (twice, against loss), stops
    /// heartbeats and liveness checks, and from now on denies task requests with
    /// [`DenyReason::ShuttingDown`](crate::DenyReason::ShuttingDown). Pending
    /// placements still finish. Idempotent.
    pub fn leave(&mut self, now: Instant) {
        self.touch(now);
        if self.leaving {
            return;
        }
        self.leaving = true;
        let msg = Message::Leave {
            id: self.local.id,
            incarnation: self.local.incarnation,
        };
        self.send(Dest::Broadcast, &msg);
        self.send(Dest::Broadcast, &msg);
    }

    /// The next datagram to send, if any. Call until `None` after every other call.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next group event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`poll`](Member::poll) must next be called: the earliest of the next
    /// heartbeat, liveness deadline, join retry and placement deadline;
    /// [`Instant::MAX`] if none. Calling earlier is harmless.
    pub fn poll_at(&self) -> Instant {
        let mut t = Instant::MAX;
        for p in &self.pending {
            t = t.min(p.deadline).min(p.next_retry);
        }
        if self.leaving {
            return t;
        }
        t = t.min(self.next_heartbeat);
        if let Some(Reverse((at, _))) = self.timers.peek() {
            t = t.min(*at);
        }
        if self.join_pending() {
            t = t.min(self.join_at);
        }
        t
    }

    /// Runs the timers due at `now`: join retries, heartbeats, suspect/dead
    /// transitions and probes, placement retransmissions and timeouts.
    pub fn poll(&mut self, now: Instant) {
        self.touch(now);
        self.poll_placements(now);
        if self.leaving {
            return;
        }
        if self.join_pending() && now >= self.join_at {
            self.join_left -= 1;
            self.join_at = now + self.cfg.join_retry;
            let msg = Message::Join(self.announce());
            self.send(Dest::Broadcast, &msg);
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat += self.cfg.heartbeat_interval;
            if self.next_heartbeat <= now {
                self.next_heartbeat = now + self.cfg.heartbeat_interval;
            }
            let msg = Message::Heartbeat(self.announce());
            self.send(Dest::Broadcast, &msg);
        }
        self.poll_liveness(now);
        if now >= self.tomb_sweep_at {
            self.tombstones.retain(|_, t| t.expires > now);
            self.tomb_sweep_at = now + self.cfg.tombstone_ttl;
        }
    }

    /// Handles one received datagram: `from` is its source address, `bytes` its
    /// payload (the CM message, see [`wire`](crate::wire)). Own broadcasts looped back
    /// by the network are recognised and ignored.
    ///
    /// # Errors
    /// [`DecodeError`] if `bytes` is not a valid message of this protocol version; the
    /// member's state is unchanged.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: Addr,
        bytes: &[u8],
    ) -> Result<(), DecodeError> {
        self.touch(now);
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.received += 1;
                self.stats.decode_errors += 1;
                return Err(e);
            }
        };
        self.handle_message(now, from, &msg);
        Ok(())
    }

    /// Handles one already decoded message (see
    /// [`handle_datagram`](Member::handle_datagram)); a driver or simulation that
    /// decodes a broadcast once can hand the same message to many members.
    pub fn handle_message(&mut self, now: Instant, from: Addr, msg: &Message) {
        self.touch(now);
        self.stats.received += 1;
        if self.leaving && !matches!(msg, Message::TaskRequest { .. } | Message::TaskReply { .. }) {
            self.stats.ignored += 1;
            return;
        }
        match *msg {
            Message::Join(ref a) => {
                if a.id == self.local.id {
                    self.stats.ignored += 1;
                    return;
                }
                let id = a.id;
                self.observe(now, a, from, true);
                self.answer_join(now, from, id);
            }
            Message::JoinReply { ref entries } => {
                self.join_done = true;
                for (i, a) in entries.iter().enumerate() {
                    self.observe(now, a, from, i == 0);
                }
            }
            Message::Heartbeat(ref a) => self.observe(now, a, from, true),
            Message::Probe { from: _, target } => {
                if target == self.local.id {
                    let msg = Message::Heartbeat(self.announce());
                    self.send(Dest::Unicast(from), &msg);
                } else {
                    self.stats.ignored += 1;
                }
            }
            Message::Leave { id, incarnation } => self.on_leave(now, id, incarnation),
            Message::TaskRequest {
                requester: _,
                placement,
                attempt,
                job,
            } => {
                let verdict = decide(
                    self.local.role,
                    self.leaving,
                    self.accepting,
                    &self.local.state,
                    &job,
                );
                let msg = Message::TaskReply {
                    responder: self.local.id,
                    placement,
                    attempt,
                    verdict,
                    state: self.local.state,
                };
                self.send(Dest::Unicast(from), &msg);
            }
            Message::TaskReply {
                responder,
                placement,
                attempt,
                verdict,
                state,
            } => self.on_task_reply(now, from, responder, placement, attempt, verdict, state),
        }
    }

    /// Starts a placement for `job` (SiON paper §3.2.2 and Fig. 5 c): picks up to
    /// [`Config::placement_candidates`] alive [`Role::Node`] members other than the
    /// local one, sends each a task request, and collects the answers until all are
    /// in or [`Config::placement_timeout`] passes; the result then appears at
    /// [`placement_result`](Member::placement_result) and as
    /// [`Event::PlacementDone`].
    ///
    /// When more nodes are alive than k, the k best by the same `weights` applied to
    /// their last heartbeat state are asked (in [`Mode::Exclusive`], idle nodes
    /// first). With no candidate the placement finishes at once with an empty
    /// ranking.
    pub fn start_placement(&mut self, now: Instant, job: JobSpec, weights: Weights) -> PlacementId {
        self.touch(now);
        let id = PlacementId(self.next_placement);
        self.next_placement = self.next_placement.wrapping_add(1);
        let known: Vec<Answer> = self
            .members
            .values()
            .map(|e| &e.info)
            .filter(|i| i.role == Role::Node && i.status == Status::Alive)
            .map(|i| Answer {
                node: i.id,
                addr: i.addr,
                verdict: Verdict::Permit,
                state: i.state,
                rtt: RTT_FLOOR,
            })
            .collect();
        let mut order = rank(&known, &weights);
        if job.mode == Mode::Exclusive {
            // Stable: keeps score order within the idle and the busy group.
            order.sort_by_key(|r| r.state.running_jobs > 0);
        }
        order.truncate(self.cfg.placement_candidates);
        let candidates: Vec<Candidate> = order
            .iter()
            .map(|r| Candidate {
                id: r.node,
                addr: r.addr,
                answer: None,
            })
            .collect();
        let step = self.cfg.placement_timeout / (u32::from(self.cfg.placement_retries) + 1);
        let p = Pending {
            id,
            job,
            weights,
            deadline: now + self.cfg.placement_timeout,
            next_retry: if self.cfg.placement_retries > 0 {
                now + step
            } else {
                Instant::MAX
            },
            sent_at: alloc::vec![now],
            candidates,
            answered: 0,
        };
        for c in &p.candidates {
            let msg = self.task_request(&p, 0);
            self.send(Dest::Unicast(c.addr), &msg);
        }
        if p.candidates.is_empty() {
            self.finish(p);
        } else {
            self.pending.push(p);
        }
        id
    }

    /// The result of a finished placement, if it is finished and still kept (the last
    /// [`Config::finished_placements`] are kept).
    pub fn placement_result(&self, id: PlacementId) -> Option<&Ranking> {
        self.finished.iter().find(|r| r.id == id)
    }

    /// Removes and returns the result of a finished placement.
    pub fn take_placement_result(&mut self, id: PlacementId) -> Option<Ranking> {
        let i = self.finished.iter().position(|r| r.id == id)?;
        self.finished.remove(i)
    }

    /// True while a placement waits for answers.
    pub fn placement_pending(&self, id: PlacementId) -> bool {
        self.pending.iter().any(|p| p.id == id)
    }

    // ----- internals -----

    fn join_pending(&self) -> bool {
        self.join_left > 0 && !self.join_done
    }

    fn touch(&mut self, now: Instant) {
        self.local.last_heard = self.local.last_heard.max(now);
    }

    /// Our entry with a new sequence number (heartbeats, joins).
    fn announce(&mut self) -> Announce {
        self.seq += 1;
        self.current_announce()
    }

    /// Our entry with the last sequence number sent (join replies: a receiver that
    /// already has it loses nothing by ignoring it).
    fn current_announce(&self) -> Announce {
        Announce {
            id: self.local.id,
            incarnation: self.local.incarnation,
            seq: self.seq,
            role: self.local.role,
            name: self.local.name.clone(),
            addr: self.local.addr,
            state: self.local.state,
        }
    }

    fn send(&mut self, dest: Dest, msg: &Message) {
        match msg.encode() {
            Ok(bytes) => {
                match dest {
                    Dest::Broadcast => self.stats.sent_broadcast += 1,
                    Dest::Unicast(_) => self.stats.sent_unicast += 1,
                }
                self.transmits.push_back(Transmit { dest, bytes });
            }
            Err(_) => self.stats.encode_errors += 1,
        }
    }

    fn event(&mut self, e: Event) {
        if self.cfg.event_capacity == 0 {
            self.stats.events_dropped += 1;
            return;
        }
        if self.events.len() >= self.cfg.event_capacity {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(e);
    }

    fn schedule(&mut self, id: NodeId, at: Instant) {
        self.timers.push(Reverse((at, id)));
    }

    /// Takes an announce of another member. `direct` means it came from that member
    /// itself, so `from` is its address.
    fn observe(&mut self, now: Instant, a: &Announce, from: Addr, direct: bool) {
        if a.id == self.local.id {
            // Our own broadcast looped back, or our entry in someone's view.
            self.stats.ignored += 1;
            return;
        }
        if let Some(t) = self.tombstones.get(&a.id) {
            if t.incarnation == a.incarnation && a.seq <= t.seq {
                self.stats.ignored += 1;
                return;
            }
            self.tombstones.remove(&a.id);
        }
        let addr = if direct { from } else { a.addr };
        if let Some(e) = self.members.get_mut(&a.id) {
            if e.info.incarnation != a.incarnation {
                if e.prev_incarnation == Some(a.incarnation) {
                    self.stats.ignored += 1;
                    return;
                }
                e.prev_incarnation = Some(e.info.incarnation);
                e.info.incarnation = a.incarnation;
                e.seq = a.seq;
                e.info.name = a.name.clone();
                e.info.role = a.role;
                e.info.addr = addr;
                e.info.state = a.state;
                if e.info.status == Status::Suspect {
                    e.info.status = Status::Alive;
                    self.suspects -= 1;
                }
                e.info.last_heard = now;
                self.event(Event::Restarted(a.id));
                return;
            }
            if a.seq <= e.seq {
                self.stats.ignored += 1;
                return;
            }
            e.seq = a.seq;
            if e.info.name != a.name {
                e.info.name = a.name.clone();
            }
            e.info.role = a.role;
            if direct {
                e.info.addr = addr;
            }
            e.info.state = a.state;
            e.info.last_heard = now;
            if e.info.status == Status::Suspect {
                e.info.status = Status::Alive;
                self.suspects -= 1;
                self.event(Event::Restored(a.id));
            }
            return;
        }
        let check_at = now + self.cfg.suspect_after;
        let id = a.id;
        self.members.insert(
            id,
            Entry {
                info: MemberInfo {
                    id,
                    name: a.name.clone(),
                    role: a.role,
                    addr,
                    state: a.state,
                    status: Status::Alive,
                    incarnation: a.incarnation,
                    last_heard: now,
                    since: now,
                },
                seq: a.seq,
                prev_incarnation: None,
                check_at,
                next_probe: Instant::MAX,
            },
        );
        self.schedule(id, check_at);
        self.join_done = true;
        self.event(Event::Joined(id));
    }

    /// Answers a join from `joiner` at `to`: our own entry, plus the whole view if it
    /// fits one reply or if we are one of the `join_view_responders` members after the
    /// joiner on the id ring.
    fn answer_join(&mut self, now: Instant, to: Addr, joiner: NodeId) {
        // Alive members other than the joiner, in O(log N).
        let joiner_alive = self
            .members
            .get(&joiner)
            .is_some_and(|e| e.info.status == Status::Alive);
        let alive = self.members.len() - self.suspects - usize::from(joiner_alive);
        let established = now >= self.local.since + self.cfg.heartbeat_interval;
        let whole = alive < MAX_VIEW_CHUNK || established && self.is_view_responder(joiner);
        if !whole {
            // The common case; in a mass boot a member answers many joins between two
            // heartbeats, so the encoding is kept until the sequence number or the
            // state changes.
            let key = (self.seq, self.local.state);
            let bytes = match &self.join_reply_cache {
                Some((k, bytes)) if *k == key => bytes.clone(),
                _ => {
                    let msg = Message::JoinReply {
                        entries: alloc::vec![self.current_announce()],
                    };
                    match msg.encode() {
                        Ok(bytes) => {
                            self.join_reply_cache = Some((key, bytes.clone()));
                            bytes
                        }
                        Err(_) => {
                            self.stats.encode_errors += 1;
                            return;
                        }
                    }
                }
            };
            self.stats.sent_unicast += 1;
            self.transmits.push_back(Transmit {
                dest: Dest::Unicast(to),
                bytes,
            });
            return;
        }
        let own = self.current_announce();
        let others: Vec<Announce> = self
            .members
            .values()
            .filter(|e| e.info.status == Status::Alive && e.info.id != joiner)
            .map(|e| Announce {
                id: e.info.id,
                incarnation: e.info.incarnation,
                seq: e.seq,
                role: e.info.role,
                name: e.info.name.clone(),
                addr: e.info.addr,
                state: e.info.state,
            })
            .collect();
        let mut chunks = others.chunks(MAX_VIEW_CHUNK - 1);
        let mut first = true;
        loop {
            let chunk = chunks.next();
            if chunk.is_none() && !first {
                break;
            }
            first = false;
            let mut entries = Vec::with_capacity(MAX_VIEW_CHUNK);
            entries.push(own.clone());
            entries.extend_from_slice(chunk.unwrap_or(&[]));
            self.send(Dest::Unicast(to), &Message::JoinReply { entries });
        }
    }

    fn on_leave(&mut self, now: Instant, id: NodeId, incarnation: u64) {
        if id == self.local.id {
            self.stats.ignored += 1;
            return;
        }
        let known = match self.members.get(&id) {
            Some(e) if e.info.incarnation == incarnation => true,
            Some(_) => {
                // A leave of an older (or unknown) incarnation: keep the member.
                self.stats.ignored += 1;
                return;
            }
            None => false,
        };
        if known {
            self.remove_member(id);
            self.event(Event::Left(id));
        }
        self.tombstones.insert(
            id,
            Tombstone {
                incarnation,
                seq: u64::MAX,
                expires: now + self.cfg.tombstone_ttl,
            },
        );
    }

    /// True if fewer than [`Config::join_view_responders`] alive members lie between
    /// `joiner` and us on the ring of node ids (ascending, wrapping): when views agree,
    /// exactly that many members answer a join with their whole view, and which ones
    /// depends on the joiner.
    fn is_view_responder(&self, joiner: NodeId) -> bool {
        let r = usize::from(self.cfg.join_view_responders);
        let me = self.local.id;
        let alive = |(_, e): &(&NodeId, &Entry)| e.info.status == Status::Alive;
        let after_joiner = (Bound::Excluded(joiner), Bound::Unbounded);
        let between = if me > joiner {
            self.members
                .range((Bound::Excluded(joiner), Bound::Excluded(me)))
                .filter(alive)
                .take(r)
                .count()
        } else {
            self.members
                .range(after_joiner)
                .chain(self.members.range(..me))
                .filter(alive)
                .take(r)
                .count()
        };
        between < r
    }

    fn remove_member(&mut self, id: NodeId) {
        if let Some(e) = self.members.remove(&id)
            && e.info.status == Status::Suspect
        {
            self.suspects -= 1;
        }
    }

    fn poll_liveness(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(e) = self.members.get_mut(&id) else {
                continue;
            };
            if e.check_at != at {
                continue; // superseded timer
            }
            let quiet = now.saturating_duration_since(e.info.last_heard);
            if quiet >= self.cfg.dead_after {
                let (inc, seq) = (e.info.incarnation, e.seq);
                self.remove_member(id);
                self.tombstones.insert(
                    id,
                    Tombstone {
                        incarnation: inc,
                        seq,
                        expires: now + self.cfg.tombstone_ttl,
                    },
                );
                self.event(Event::Dead(id));
                continue;
            }
            let mut became_suspect = false;
            let mut probe_to = None;
            if quiet >= self.cfg.suspect_after {
                if e.info.status == Status::Alive {
                    e.info.status = Status::Suspect;
                    self.suspects += 1;
                    became_suspect = true;
                }
                if became_suspect || now >= e.next_probe {
                    e.next_probe = now + self.cfg.probe_interval;
                    probe_to = Some(e.info.addr);
                }
                e.check_at = (e.info.last_heard + self.cfg.dead_after).min(e.next_probe);
            } else {
                e.check_at = e.info.last_heard + self.cfg.suspect_after;
            }
            let next = e.check_at;
            if became_suspect {
                self.event(Event::Suspect(id));
            }
            if let Some(to) = probe_to {
                let msg = Message::Probe {
                    from: self.local.id,
                    target: id,
                };
                self.send(Dest::Unicast(to), &msg);
            }
            self.schedule(id, next);
        }
    }

    fn task_request(&self, p: &Pending, attempt: u8) -> Message {
        Message::TaskRequest {
            requester: self.local.id,
            placement: p.id,
            attempt,
            job: p.job,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_task_reply(
        &mut self,
        now: Instant,
        from: Addr,
        responder: NodeId,
        placement: PlacementId,
        attempt: u8,
        verdict: Verdict,
        state: NodeState,
    ) {
        if let Some(e) = self.members.get_mut(&responder) {
            e.info.state = state;
        }
        let Some(pi) = self.pending.iter().position(|p| p.id == placement) else {
            self.stats.ignored += 1;
            return;
        };
        let p = &mut self.pending[pi];
        let Some(sent) = p.sent_at.get(usize::from(attempt)).copied() else {
            self.stats.ignored += 1;
            return;
        };
        let Some(c) = p.candidates.iter_mut().find(|c| c.id == responder) else {
            self.stats.ignored += 1;
            return;
        };
        if c.answer.is_some() {
            self.stats.ignored += 1;
            return;
        }
        c.answer = Some(Answer {
            node: responder,
            addr: from,
            verdict,
            state,
            rtt: now.saturating_duration_since(sent),
        });
        p.answered += 1;
        if p.answered == p.candidates.len() {
            let p = self.pending.swap_remove(pi);
            self.finish(p);
        }
    }

    fn poll_placements(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            if now >= self.pending[i].deadline {
                let p = self.pending.swap_remove(i);
                self.finish(p);
                continue;
            }
            if now >= self.pending[i].next_retry {
                let p = &mut self.pending[i];
                let attempt = u8::try_from(p.sent_at.len()).unwrap_or(u8::MAX);
                p.sent_at.push(now);
                p.next_retry = if attempt < self.cfg.placement_retries {
                    now + self.cfg.placement_timeout / (u32::from(self.cfg.placement_retries) + 1)
                } else {
                    Instant::MAX
                };
                let p = &self.pending[i];
                let msgs: Vec<(Addr, Message)> = p
                    .candidates
                    .iter()
                    .filter(|c| c.answer.is_none())
                    .map(|c| (c.addr, self.task_request(p, attempt)))
                    .collect();
                for (addr, msg) in msgs {
                    self.send(Dest::Unicast(addr), &msg);
                }
            }
            i += 1;
        }
    }

    fn finish(&mut self, p: Pending) {
        let answers: Vec<Answer> = p.candidates.iter().filter_map(|c| c.answer).collect();
        let mut ranked = rank(&answers, &p.weights);
        // A host never runs jobs, whatever it answered.
        ranked.retain(|r| {
            self.members
                .get(&r.node)
                .is_none_or(|e| e.info.role == Role::Node)
        });
        let mut denied: Vec<Denial> = answers
            .iter()
            .filter_map(|a| match a.verdict {
                Verdict::Deny(reason) => Some(Denial {
                    node: a.node,
                    reason,
                    state: a.state,
                }),
                Verdict::Permit => None,
            })
            .collect();
        denied.sort_by_key(|d| d.node);
        let mut unanswered: Vec<NodeId> = p
            .candidates
            .iter()
            .filter(|c| c.answer.is_none())
            .map(|c| c.id)
            .collect();
        unanswered.sort();
        let id = p.id;
        if self.cfg.finished_placements > 0 {
            if self.finished.len() >= self.cfg.finished_placements {
                self.finished.pop_front();
            }
            self.finished.push_back(Ranking {
                id,
                job: p.job,
                weights: p.weights,
                ranked,
                denied,
                unanswered,
            });
        }
        self.event(Event::PlacementDone(id));
    }
}

fn clamp_state(mut s: NodeState) -> NodeState {
    s.cpu_load = s.cpu_load.min(MAX_CPU_LOAD);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(mac_last: u8, now: Instant) -> Member {
        let id = NodeId::from_mac([2, 0, 0, 0, 0, mac_last]);
        let local = LocalNode::new(id, Role::Node, Addr::new([10, 0, 0, mac_last], 7070));
        Member::new(Config::default(), local, now, u64::from(mac_last))
    }

    fn drain(m: &mut Member) -> Vec<Transmit> {
        core::iter::from_fn(|| m.poll_transmit()).collect()
    }

    #[test]
    fn starts_with_a_join_and_heartbeats_every_interval() {
        let mut m = member(1, Instant::ZERO);
        let out = drain(&mut m);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].dest, Dest::Broadcast);
        assert!(matches!(
            Message::decode(&out[0].bytes),
            Ok(Message::Join(_))
        ));
        let mut beats = 0;
        let mut now = Instant::ZERO;
        while now < Instant::from_secs(10) {
            now = m.poll_at();
            m.poll(now);
            for t in drain(&mut m) {
                match Message::decode(&t.bytes).unwrap() {
                    Message::Heartbeat(a) => {
                        beats += 1;
                        assert_eq!(a.seq, m.seq);
                    }
                    Message::Join(_) => {} // alone: retried
                    other => panic!("{other:?}"),
                }
            }
            assert!(m.poll_at() > now);
        }
        assert!((9..=11).contains(&beats), "{beats}");
        assert_eq!(m.stats().sent_broadcast, beats + 3);
    }

    #[test]
    fn timers_are_never_left_due_after_poll() {
        // Found by the `member` fuzz target: when the only other member died, a join
        // retry was left due in the past.
        let mut a = member(1, Instant::ZERO);
        let b = member(2, Instant::ZERO);
        drain(&mut a);
        let hb = Message::Heartbeat(Announce {
            id: b.id(),
            incarnation: b.local().incarnation,
            seq: 1,
            role: Role::Node,
            name: b.local().name.clone(),
            addr: b.local().addr,
            state: NodeState::default(),
        });
        a.handle_message(Instant::from_millis(1), b.local().addr, &hb);
        assert_eq!(a.poll_event(), Some(Event::Joined(b.id())));
        let mut now = Instant::from_millis(1);
        while now < Instant::from_secs(8) {
            now = a.poll_at();
            a.poll(now);
            drain(&mut a);
            assert!(a.poll_at() > now);
        }
        assert_eq!(a.view_len(), 1);
        let evs: Vec<Event> = core::iter::from_fn(|| a.poll_event()).collect();
        assert_eq!(evs, [Event::Suspect(b.id()), Event::Dead(b.id())]);
        // A late heartbeat of the dead incarnation does not revive it...
        a.handle_message(now, b.local().addr, &hb);
        assert_eq!(a.view_len(), 1);
        // ...a newer one does.
        if let Message::Heartbeat(mut ann) = hb {
            ann.seq = 2;
            a.handle_message(now, b.local().addr, &Message::Heartbeat(ann));
        }
        assert_eq!(a.view_len(), 2);
    }

    #[test]
    fn out_of_range_load_is_clamped_so_heartbeats_still_go_out() {
        let mut m = member(1, Instant::ZERO);
        drain(&mut m);
        m.set_local_state(NodeState {
            cpu_load: 1234,
            ..NodeState::default()
        });
        assert_eq!(m.local().state.cpu_load, MAX_CPU_LOAD);
        let now = m.poll_at();
        m.poll(now);
        assert!(!drain(&mut m).is_empty());
        assert_eq!(m.stats().encode_errors, 0);
    }

    #[test]
    fn view_includes_self_in_id_order() {
        let mut m = member(5, Instant::ZERO);
        for last in [9u8, 1, 7, 3] {
            let o = member(last, Instant::ZERO);
            let ann = Announce {
                id: o.id(),
                incarnation: 1,
                seq: 1,
                role: Role::Node,
                name: o.local().name.clone(),
                addr: o.local().addr,
                state: NodeState::default(),
            };
            m.handle_message(Instant::ZERO, o.local().addr, &Message::Heartbeat(ann));
        }
        let order: Vec<u8> = m.view().map(|i| i.id.to_mac()[5]).collect();
        assert_eq!(order, [1, 3, 5, 7, 9]);
        assert_eq!(m.view_len(), 5);
        assert!(m.member(m.id()).is_some());
    }
}
