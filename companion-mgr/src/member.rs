//! The sans-IO group member: join, SWIM-style liveness (probe, indirect probe,
//! suspicion, refutation, Lifeguard local health), piggybacked dissemination,
//! leave, and placement.
//!
//! Sources: SWIM (Das, Gupta, Motivala, DSN 2002): §4.1 infection-style
//! dissemination, §4.2 suspicion and incarnation numbers, §4.3 round-robin probe
//! target selection; Lifeguard (Dadgar, Phillips, Currey, 2018, arXiv:1707.00788):
//! §IV-A local health multiplier (LHA-Probe), §IV-B dynamic suspicion timeouts
//! (LHA-Suspicion), §IV-C buddy system (a suspect is told in the probe itself).

use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::time::Duration;

use crate::node::{Addr, LocalNode, MAX_CPU_LOAD, Name, NodeId, NodeState, Role};
use crate::placement::{
    Answer, Denial, JobSpec, Mode, PlacementId, Ranking, Verdict, Weights, decide, rank,
};
use crate::table::{Entry, SharedView, Table};
use crate::time::{Instant, duration_nanos};
use crate::wire::{Announce, DecodeError, ID_MAX, MAX_UPDATES, MAX_VIEW_CHUNK, Message, Update};

/// Timing and size parameters of a [`Member`]. All members of a group should use the
/// same liveness values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// SWIM's protocol period T: every period a member pings one other member (round
    /// robin over a shuffled list, SWIM §4.3). Scaled by the local health
    /// multiplier (Lifeguard §IV-A). Default 500 ms.
    pub probe_interval: Duration,
    /// How long a ping waits for its ack before [`Config::indirect_probes`]
    /// relays are asked to ping the target too; also how long a relay waits before
    /// it answers the prober with a nack. Scaled like the period. Default 150 ms.
    pub probe_timeout: Duration,
    /// k of SWIM's indirect probes: relays asked when a ping goes unanswered.
    /// Default 3.
    pub indirect_probes: u8,
    /// Send the ping again, straight, along with the indirect probes (as
    /// memberlist's fallback ping; not in SWIM). Default true.
    pub direct_retry: bool,
    /// Shortest suspicion: a member whose probes failed is declared dead at the
    /// earliest this long after the suspicion began, if
    /// [`Config::suspicion_confirmations`] other members suspect it too (Lifeguard
    /// §IV-B). Default 1 s.
    pub suspicion_min: Duration,
    /// Longest suspicion: a suspect nobody else confirms is declared dead this long
    /// after the suspicion began, unless it answers or refutes. Default 1.5 s: the
    /// suspect is told at once and re-probed every period (directly, again, and
    /// through the relays), so it has three periods to answer; simbench finds no
    /// false positive at N = 10,000 and 10 % loss over 10 minutes.
    pub suspicion_max: Duration,
    /// Lifeguard's K: independent suspicions that bring the timeout down to
    /// [`Config::suspicion_min`]. Default 3.
    pub suspicion_confirmations: u8,
    /// Largest local health multiplier (Lifeguard's S); the period and the probe
    /// timeout are multiplied by `1 + multiplier`. Default 8.
    pub max_local_health: u8,
    /// Each update is piggybacked `gossip_mult × ⌈log10(N + 1)⌉` times by every
    /// member that learns it (SWIM §4.1's λ log N). Default 3.
    pub gossip_mult: u8,
    /// Most updates piggybacked on one ping or ack (at most
    /// [`MAX_UPDATES`]). Default 8.
    pub piggyback_max: usize,
    /// How long a joining member waits for a join reply before broadcasting its join
    /// again; a view transfer with gaps asks for them after a fifth of this.
    /// Default 1 s.
    pub join_retry: Duration,
    /// How many joins a member broadcasts at most: it stops at the first reply; a
    /// member that hears none is the first of its group. Default 3.
    pub join_attempts: u8,
    /// Number of members that answer a join with their whole view (split in chunks of
    /// [`MAX_VIEW_CHUNK`]) once the view no longer fits one reply: the synced members
    /// whose ids follow the joiner's on the ring of ids. While the view fits one
    /// reply, every member answers. Default 2.
    pub join_view_responders: u16,
    /// Anti-entropy (memberlist's push/pull state sync): every `sync_interval`
    /// (offset by a random phase) a synced member asks one random member for
    /// the members around a random id (about one view chunk, the whole view
    /// while it fits one) and learns those it did not know; a member that
    /// knows nobody broadcasts its join again instead. This heals members
    /// that missed each other's joins (booted together, a lost broadcast)
    /// for 0.4 datagrams per member per second at the default. Default 5 s.
    pub sync_interval: Duration,
    /// Candidates asked per placement (k of "power of k choices"). Default 3.
    pub placement_candidates: usize,
    /// How long a requester waits for task replies. Default 200 ms.
    pub placement_timeout: Duration,
    /// Retransmissions of a task request to candidates that have not answered, evenly
    /// spaced within the timeout. Default 1.
    pub placement_retries: u8,
    /// Rounds of k candidates a placement may ask: when a round ends (every
    /// candidate answered, or the timeout passed) without a permit, k other
    /// candidates are asked, with a fresh timeout. With half the nodes busy, an
    /// exclusive job and a view that does not know which (at 10,000 members the
    /// gossip of thousands of simultaneous state changes lags), 1 − 0.5^(k × rounds)
    /// of placements still find an idle node. Default 2.
    pub placement_rounds: u8,
    /// How long a dead or left member's last incarnation is remembered, so that
    /// late datagrams do not bring it back. Default 30 s.
    pub tombstone_ttl: Duration,
    /// Most undelivered [`Event`]s kept; older ones are dropped and counted in
    /// [`Stats::events_dropped`]. Default 1024.
    pub event_capacity: usize,
    /// Most finished placements kept for [`Member::placement_result`]; older ones are
    /// dropped. Default 64.
    pub finished_placements: usize,
    /// How long a node that permits an exclusive job is held for that
    /// placement: meanwhile every other task request is denied with
    /// [`DenyReason::Reserved`](crate::DenyReason::Reserved). The hold ends
    /// earlier when the node's running jobs go up (the job arrived) or the
    /// requester releases it ([`Member::release_unchosen`]). It covers the
    /// requester's choice and the job connection (not the upload, which the
    /// App-Program Manager already counts as a running job). Default 5 s.
    pub reservation_lease: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(150),
            indirect_probes: 3,
            direct_retry: true,
            suspicion_min: Duration::from_secs(1),
            suspicion_max: Duration::from_millis(1500),
            suspicion_confirmations: 3,
            max_local_health: 8,
            gossip_mult: 3,
            piggyback_max: 8,
            join_retry: Duration::from_secs(1),
            join_attempts: 3,
            join_view_responders: 2,
            sync_interval: Duration::from_secs(5),
            placement_candidates: 3,
            placement_timeout: Duration::from_millis(200),
            placement_retries: 1,
            placement_rounds: 2,
            tombstone_ttl: Duration::from_secs(30),
            event_capacity: 1024,
            finished_placements: 64,
            reservation_lease: Duration::from_secs(5),
        }
    }
}

/// Liveness of a member in the local view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Answers probes (the local member is always alive).
    Alive,
    /// Some member's probes went unanswered and it has not refuted yet; declared
    /// dead by its suspecter when the suspicion times out.
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
    /// the address it announced if it was learned from another member.
    pub addr: Addr,
    /// The load it last reported (ping, ack, task reply or gossiped entry).
    pub state: NodeState,
    /// Alive or suspect.
    pub status: Status,
    /// Its current run (changes when it restarts).
    pub incarnation: u64,
    /// When the local member last heard from it or about it being alive, to 10 ms
    /// (for the local member: the last `now` it was given).
    pub last_heard: Instant,
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
    /// A member restarted (new run): whatever it ran is gone.
    Restarted(NodeId),
    /// A member became suspect.
    Suspect(NodeId),
    /// A suspect refuted the suspicion.
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
    /// Bytes of all datagrams queued.
    pub sent_bytes: u64,
    /// Datagrams given to [`Member::handle_datagram`] (valid or not) plus messages
    /// given to [`Member::handle_message`].
    pub received: u64,
    /// Datagrams rejected by the decoder.
    pub decode_errors: u64,
    /// Valid datagrams ignored: own broadcasts looped back, stale or duplicate
    /// announces, late replies, pings for someone else.
    pub ignored: u64,
    /// Probes started (one per protocol period).
    pub probes: u64,
    /// Probes that needed indirect probes.
    pub indirect_probes: u64,
    /// Suspicions this member raised itself (its probes failed).
    pub suspicions: u64,
    /// Suspicions about this member it refuted.
    pub refutations: u64,
    /// Members this member declared dead itself.
    pub declared_dead: u64,
    /// Events dropped because nobody called [`Member::poll_event`].
    pub events_dropped: u64,
    /// Messages that could not be encoded (a bug if ever non-zero).
    pub encode_errors: u64,
    /// Anti-entropy rounds ([`Config::sync_interval`]): view requests sent, or
    /// joins broadcast again while knowing nobody.
    pub syncs: u64,
}

/// Most gossip updates waiting to be piggybacked; beyond, the most sent are dropped.
const GOSSIP_CAPACITY: usize = 256;

/// Most indirect probes a member relays at once.
const RELAY_CAPACITY: usize = 64;
/// Most responders a joiner remembers for asking the gaps of its view transfer.
const VIEW_SOURCES: usize = 4;
/// Rounds of gap requests before a joiner takes its view as it is.
const VIEW_REQUEST_ROUNDS: u8 = 8;
/// Most gaps a joiner asks for per round (one small request each): a transfer of
/// 10,000 entries (about 900 chunks) that lost 10 % has about 90.
const VIEW_GAPS_PER_ROUND: usize = 256;

/// A member that restarted lately: its previous run, whose late datagrams are
/// ignored.
struct Restart {
    previous: u64,
    expires: Instant,
}

struct Tombstone {
    incarnation: u64,
    /// Announces of `incarnation` with `seq <= this` are stale (`u64::MAX` after leave).
    seq: u64,
    expires: Instant,
}

/// The probe of the current protocol period.
struct Probe {
    target: NodeId,
    addr: Addr,
    nonce: u32,
    indirect_at: Instant,
    indirect_sent: u8,
    nacks: u8,
    acked: bool,
}

/// An indirect probe this member relays.
struct Relay {
    nonce: u32,
    target: NodeId,
    origin: Addr,
    origin_nonce: u32,
    nack_at: Instant,
}

/// A suspicion this member raised itself and times.
struct Suspicion {
    seq: u64,
    incarnation: u64,
    started: Instant,
    deadline: Instant,
    confirmers: Vec<NodeId>,
    probed_at: Instant,
}

struct Gossip {
    update: Update,
    sent: u8,
    limit: u8,
    order: u64,
    queued: Instant,
}

struct Candidate {
    id: NodeId,
    addr: Addr,
    answer: Option<Answer>,
}

/// A node's hold for the requester of an exclusive job it permitted
/// ([`Config::reservation_lease`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reservation {
    requester: NodeId,
    placement: PlacementId,
    until: Instant,
}

struct Pending {
    id: PlacementId,
    job: JobSpec,
    weights: Weights,
    deadline: Instant,
    next_retry: Instant,
    retries_left: u8,
    /// Further rounds of candidates it may ask.
    rounds_left: u8,
    /// When each attempt (a round's first requests or a retransmission) was sent;
    /// requests carry its index.
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
    rng: fastrand::Rng,
    members: Table,
    restarts: BTreeMap<NodeId, Restart>,
    probe: Option<Probe>,
    next_period: Instant,
    next_nonce: u32,
    /// Lifeguard's local health multiplier, `0..=max_local_health`.
    health: u8,
    relays: VecDeque<Relay>,
    suspicions: BTreeMap<NodeId, Suspicion>,
    /// Suspicion deadlines (validated against `suspicions` when popped).
    timers: BinaryHeap<Reverse<(Instant, NodeId)>>,
    gossip: BTreeMap<NodeId, Gossip>,
    /// `(sent, newest first, id)`: the order in which updates are piggybacked.
    gossip_order: BTreeSet<(u8, Reverse<u64>, NodeId)>,
    gossip_seq: u64,
    /// While handling a message: how often what it teaches is piggybacked (`None`:
    /// [`Member::gossip_limit`]; `Some(0)`: never).
    learn_limit: Option<u8>,
    tombstones: BTreeMap<NodeId, Tombstone>,
    tomb_sweep_at: Instant,
    /// Next anti-entropy round ([`Config::sync_interval`]).
    sync_at: Instant,
    join_left: u8,
    join_at: Instant,
    /// Set by the first join reply: no more joins.
    join_done: bool,
    /// The view transfer is complete (or given up on): this member may answer joins
    /// with its whole view.
    synced: bool,
    /// Id ranges `[lo, hi]` the view transfer has covered, sorted and disjoint.
    coverage: Vec<(u64, u64)>,
    view_sources: Vec<Addr>,
    view_req_at: Instant,
    view_req_left: u8,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    pending: Vec<Pending>,
    finished: VecDeque<Ranking>,
    next_placement: u32,
    /// The exclusive job this node is held for, if any.
    reservation: Option<Reservation>,
    /// The job that arrived while the node was held for an exclusive
    /// placement runs: it owns every CPU, so the node reports none free
    /// until its running jobs are back to 0.
    exclusive_running: bool,
    stats: Stats,
}

impl Member {
    /// Starts a member at `now`: queues the join broadcast and schedules the first
    /// probe at a random phase within one period.
    ///
    /// `seed` is the caller's randomness (RDRAND, TSC jitter, `getrandom`); it picks
    /// this run's incarnation, the probe phase and order, so it must differ between
    /// runs of the same node. `config` is used as given except that the period and
    /// the probe timeout are at least 1 ms, the probe timeout at most the period,
    /// `suspicion_max` at least `suspicion_min` and `piggyback_max` at most
    /// [`MAX_UPDATES`]; `local.state` is clamped as by
    /// [`set_local_state`](Member::set_local_state).
    pub fn new(config: Config, local: LocalNode, now: Instant, seed: u64) -> Member {
        let mut m = Member::build(config, local, now, seed);
        m.poll(now);
        m
    }

    /// Starts a member whose view transfer is already over: its view is `view`
    /// (less itself), it is synced, broadcasts no join and gossips nothing of the
    /// view; otherwise as [`new`](Member::new) (the same `seed` gives the same
    /// incarnation, so a view can be built from members made with `new` first).
    ///
    /// For simulations of large groups: members seeded with the same [`SharedView`]
    /// share its entries and keep their own copy only of an entry they change, plus
    /// 4 bytes and 1 bit per shared entry (about 4 bytes per member instead of
    /// about 80). Everything else runs as in a member that joined.
    pub fn with_view(
        config: Config,
        local: LocalNode,
        now: Instant,
        seed: u64,
        view: &SharedView,
    ) -> Member {
        let mut m = Member::build(config, local, now, seed);
        m.members.seed(view, m.local.id, now);
        m.join_left = 0;
        m.join_done = true;
        m.synced = true;
        m.view_req_at = Instant::MAX;
        m.poll(now);
        m
    }

    fn build(config: Config, mut local: LocalNode, now: Instant, seed: u64) -> Member {
        let mut config = config;
        let min = Duration::from_millis(1);
        config.probe_interval = config.probe_interval.max(min);
        config.probe_timeout = config.probe_timeout.max(min).min(config.probe_interval);
        config.suspicion_max = config.suspicion_max.max(config.suspicion_min);
        config.piggyback_max = config.piggyback_max.min(MAX_UPDATES);
        local.state = clamp_state(local.state);
        let mut rng = fastrand::Rng::with_seed(seed ^ local.id.as_u64().rotate_left(23));
        let incarnation = rng.u64(..);
        let phase = rng.u64(..duration_nanos(config.probe_interval).max(1));
        let sync_phase = rng.u64(..duration_nanos(config.sync_interval).max(1));
        let info = MemberInfo {
            id: local.id,
            name: local.name.unwrap_or_else(|| Name::derive(local.id)),
            role: local.role,
            addr: local.addr,
            state: local.state,
            status: Status::Alive,
            incarnation,
            last_heard: now,
        };
        Member {
            cfg: config,
            local: info,
            seq: 0,
            leaving: false,
            accepting: true,
            rng,
            members: Table::new(now),
            restarts: BTreeMap::new(),
            probe: None,
            next_period: now + Duration::from_nanos(phase),
            next_nonce: 1,
            health: 0,
            relays: VecDeque::new(),
            suspicions: BTreeMap::new(),
            timers: BinaryHeap::new(),
            gossip: BTreeMap::new(),
            gossip_order: BTreeSet::new(),
            gossip_seq: 0,
            learn_limit: None,
            tombstones: BTreeMap::new(),
            tomb_sweep_at: now + config.tombstone_ttl / 4,
            sync_at: now + config.sync_interval + Duration::from_nanos(sync_phase),
            join_left: config.join_attempts,
            join_at: now,
            join_done: false,
            synced: false,
            coverage: Vec::new(),
            view_sources: Vec::new(),
            view_req_at: Instant::MAX,
            view_req_left: VIEW_REQUEST_ROUNDS,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            pending: Vec::new(),
            finished: VecDeque::new(),
            next_placement: 0,
            reservation: None,
            exclusive_running: false,
            stats: Stats::default(),
        }
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
    /// [`NodeId`] order. Members this member suspects are included (with
    /// [`Status::Suspect`]); dead and left members are not.
    pub fn view(&self) -> impl Iterator<Item = MemberInfo> + '_ {
        let id = self.local.id;
        let below = self.members.before(id).map(|e| self.members.info(e));
        let above = self.members.after(id).map(|e| self.members.info(e));
        below
            .chain(core::iter::once(self.local.clone()))
            .chain(above)
    }

    /// Number of members in [`view`](Member::view), the local member included.
    pub fn view_len(&self) -> usize {
        self.members.len() + 1
    }

    /// One member's entry, if it is in the view (the local member included).
    pub fn member(&self, id: NodeId) -> Option<MemberInfo> {
        if id == self.local.id {
            Some(self.local.clone())
        } else {
            self.members.get(id).map(|e| self.members.info(e))
        }
    }

    /// True if `id` is in the view (the local member included); cheaper than
    /// [`member`](Member::member).
    pub fn knows(&self, id: NodeId) -> bool {
        id == self.local.id || self.members.contains(id)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Lifeguard's local health multiplier, `0..=`[`Config::max_local_health`]:
    /// 0 when this member's own probes and acks get through; it grows with probes
    /// that fail without nacks from the relays and with suspicions about this member,
    /// and stretches the probe period and timeout by `1 + multiplier`.
    pub fn local_health(&self) -> u8 {
        self.health
    }

    /// True once the view transfer of the join is complete (or, when gaps could not
    /// be filled, given up on); a member alone on its LAN is synced after its last
    /// join attempt.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// True after [`leave`](Member::leave).
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    /// Replaces the load reported in the next pings, acks and task replies;
    /// `cpu_load` above [`MAX_CPU_LOAD`] is clamped to it and `free_cpus` above
    /// `cpus` to `cpus`. A change of `running_jobs`, `cpus` or `free_cpus` is
    /// published to the group (a new SWIM incarnation number, gossiped), so that
    /// placements elsewhere know the node is busy or has CPUs free.
    ///
    /// The driver gives `free_cpus` as [`NodeState::free_cpus_for`] its CPUs and
    /// jobs; the member reports 0 instead while an exclusive job owns the node:
    /// from the moment `running_jobs` goes up while the node is held for an
    /// exclusive placement (the job it permitted has arrived) until
    /// `running_jobs` is 0 again. (A job sent to the node without placement,
    /// `hostd submit --node`, is not known to be exclusive and counts one CPU.)
    pub fn set_local_state(&mut self, state: NodeState) {
        let mut state = clamp_state(state);
        if state.running_jobs > self.local.state.running_jobs {
            // The job the node was held for has arrived (only its requester
            // was permitted meanwhile).
            if self.reservation.take().is_some() {
                self.exclusive_running = true;
            }
        }
        if state.running_jobs == 0 {
            self.exclusive_running = false;
        }
        if self.exclusive_running {
            state.free_cpus = 0;
        }
        let old = &self.local.state;
        let publish = state.running_jobs != old.running_jobs
            || state.cpus != old.cpus
            || state.free_cpus != old.free_cpus;
        self.local.state = state;
        if publish && !self.leaving {
            self.seq += 1;
            let a = self.current_announce();
            self.enqueue(Update::Alive(a));
        }
    }

    /// Switches job acceptance: when `false`, task requests are denied with
    /// [`DenyReason::NotAccepting`](crate::DenyReason::NotAccepting). Default `true`.
    pub fn set_accepting(&mut self, accepting: bool) {
        self.accepting = accepting;
    }

    /// Leaves the group gracefully: broadcasts a leave (twice, against loss), stops
    /// probing, and from now on denies task requests with
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
    /// protocol period, indirect probe, relay nack, suspicion deadline, join retry,
    /// view request and placement deadline; [`Instant::MAX`] if none. Calling
    /// earlier is harmless.
    pub fn poll_at(&self) -> Instant {
        let mut t = Instant::MAX;
        for p in &self.pending {
            t = t.min(p.deadline).min(p.next_retry);
        }
        if self.leaving {
            return t;
        }
        t = t.min(self.next_period);
        if let Some(p) = &self.probe
            && !p.acked
            && p.indirect_sent == 0
        {
            t = t.min(p.indirect_at);
        }
        if let Some(r) = self.relays.front() {
            t = t.min(r.nack_at);
        }
        if let Some(Reverse((at, _))) = self.timers.peek() {
            t = t.min(*at);
        }
        if self.join_pending() || (!self.synced && self.view_sources.is_empty()) {
            t = t.min(self.join_at);
        }
        if !self.synced {
            t = t.min(self.view_req_at);
        }
        t.min(self.sync_at)
    }

    /// Runs the timers due at `now`: join retries, view requests, the protocol
    /// period (probe, indirect probes, suspicion), relay nacks, suspicion timeouts,
    /// placement retransmissions and timeouts.
    pub fn poll(&mut self, now: Instant) {
        self.touch(now);
        self.poll_placements(now);
        if self.leaving {
            return;
        }
        self.poll_join(now);
        self.poll_sync(now);
        self.poll_probe(now);
        self.poll_relays(now);
        self.poll_suspicions(now);
        if now >= self.tomb_sweep_at {
            self.tombstones.retain(|_, t| t.expires > now);
            self.restarts.retain(|_, r| r.expires > now);
            // News older than half a tombstone's life is dropped, so that it never
            // outlives the tombstones that keep the dead and the left out.
            let stale = now - self.cfg.tombstone_ttl / 2;
            let order = &mut self.gossip_order;
            self.gossip.retain(|&id, g| {
                let keep = g.queued > stale;
                if !keep {
                    order.remove(&(g.sent, Reverse(g.order), id));
                }
                keep
            });
            self.tomb_sweep_at = now + self.cfg.tombstone_ttl / 4;
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
        // A view transfer teaches nothing new to the group: not gossiped.
        self.learn_limit = match msg {
            Message::JoinReply { .. } => Some(0),
            _ => None,
        };
        self.dispatch(now, from, msg);
        self.learn_limit = None;
    }

    fn dispatch(&mut self, now: Instant, from: Addr, msg: &Message) {
        match *msg {
            Message::Join(ref a) => {
                if a.id == self.local.id {
                    self.stats.ignored += 1;
                    return;
                }
                self.observe(now, a, from, true);
                self.answer_join(from, a.id);
            }
            Message::JoinReply {
                lo,
                hi,
                ref entries,
            } => self.on_view_chunk(now, from, lo, hi, entries),
            Message::ViewRequest { from: _, lo, hi } => self.send_view(from, lo, hi),
            Message::Ping {
                from: ref a,
                nonce,
                target,
                ref updates,
            } => {
                self.apply_updates(now, updates);
                if target != self.local.id {
                    self.stats.ignored += 1;
                    return;
                }
                self.observe(now, a, from, true);
                let updates = self.piggyback(Some(a.id));
                let msg = Message::Ack {
                    from: self.current_announce(),
                    nonce,
                    updates,
                };
                self.send(Dest::Unicast(from), &msg);
            }
            Message::Ack {
                from: ref a,
                nonce,
                ref updates,
            } => {
                self.apply_updates(now, updates);
                self.on_ack(now, from, a, nonce);
            }
            Message::PingReq {
                from: prober,
                nonce,
                target,
                target_addr,
                ref updates,
            } => {
                self.apply_updates(now, updates);
                if target == self.local.id || prober == self.local.id {
                    self.stats.ignored += 1;
                    return;
                }
                if self.relays.len() >= RELAY_CAPACITY {
                    self.relays.pop_front();
                }
                let relay_nonce = self.nonce();
                let scale = u32::from(self.health) + 1;
                self.relays.push_back(Relay {
                    nonce: relay_nonce,
                    target,
                    origin: from,
                    origin_nonce: nonce,
                    nack_at: now + self.cfg.probe_timeout * scale,
                });
                let updates = self.piggyback(Some(target));
                let msg = Message::Ping {
                    from: self.current_announce(),
                    nonce: relay_nonce,
                    target,
                    updates,
                };
                self.send(Dest::Unicast(target_addr), &msg);
            }
            Message::Nack { nonce } => match &mut self.probe {
                Some(p) if p.nonce == nonce => p.nacks = p.nacks.saturating_add(1),
                _ => self.stats.ignored += 1,
            },
            Message::Gossip { ref updates } => self.apply_updates(now, updates),
            Message::Leave { id, incarnation } => {
                if self.on_leave(now, id, incarnation) {
                    // Replaces any news of it still queued, for those that lost the
                    // broadcast.
                    self.enqueue(Update::Left { id, incarnation });
                }
            }
            Message::TaskRequest {
                requester,
                placement,
                attempt,
                job,
            } => {
                let verdict = self.decide_task(now, requester, placement, &job);
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
            Message::TaskRelease {
                requester,
                placement,
            } => {
                if self
                    .reservation
                    .is_some_and(|r| r.requester == requester && r.placement == placement)
                {
                    self.reservation = None;
                } else {
                    self.stats.ignored += 1;
                }
            }
        }
    }

    /// Starts a placement for `job` (SiON paper §3.2.2 and Fig. 5 c): picks
    /// [`Config::placement_candidates`] (k) alive [`Role::Node`] members other than
    /// the local one at random, sends each a task request, and collects the answers
    /// until all are in or [`Config::placement_timeout`] passes; the result then
    /// appears at [`placement_result`](Member::placement_result) and as
    /// [`Event::PlacementDone`].
    ///
    /// "Power of k choices" (Mitzenmacher, 2001): up to `4k` alive nodes are drawn
    /// at random and k of them asked. Nodes the view knows cannot take the job now
    /// (their `running_jobs`, `cpus` and `free_cpus` are gossiped when they change)
    /// are asked only when too few others were drawn: in [`Mode::Exclusive`] those
    /// running a job; in [`Mode::Balance`] those with fewer free CPUs than the
    /// job asks for; in both, before them, those with fewer CPUs in all
    /// ([`NodeState::cpu_count`]) than it asks for. If a round ends without a
    /// permit, k other candidates are asked, up to [`Config::placement_rounds`]
    /// rounds (each with its own timeout). The cost is O(k) per round, whatever
    /// the group's size. With no candidate the placement finishes at once with an
    /// empty ranking.
    pub fn start_placement(&mut self, now: Instant, job: JobSpec, weights: Weights) -> PlacementId {
        self.touch(now);
        let id = PlacementId(self.next_placement);
        self.next_placement = self.next_placement.wrapping_add(1);
        let mut p = Pending {
            id,
            job,
            weights,
            deadline: now,
            next_retry: Instant::MAX,
            retries_left: 0,
            rounds_left: self.cfg.placement_rounds.saturating_sub(1),
            sent_at: Vec::new(),
            candidates: Vec::new(),
            answered: 0,
        };
        let fresh = self.draw_candidates(&job, &[]);
        if fresh.is_empty() {
            self.finish(p);
        } else {
            self.start_round(now, &mut p, fresh);
            self.pending.push(p);
        }
        id
    }

    /// Up to k alive nodes not in `exclude`, drawn at random (those the view
    /// says can take the job now first, see [`start_placement`](Member::start_placement)).
    fn draw_candidates(&mut self, job: &JobSpec, exclude: &[NodeId]) -> Vec<Candidate> {
        let k = self.cfg.placement_candidates;
        let eligible = |e: &Entry| {
            e.role == Role::Node && e.status == Status::Alive && !exclude.contains(&e.id)
        };
        let mut drawn: Vec<NodeId> = if self.members.len() <= 4 * k + exclude.len() {
            let mut all: Vec<NodeId> = self
                .members
                .ordered()
                .filter(|e| eligible(e))
                .map(|e| e.id)
                .collect();
            self.rng.shuffle(&mut all);
            all
        } else {
            let mut out = Vec::with_capacity(4 * k);
            for _ in 0..16 * k {
                if out.len() >= 4 * k {
                    break;
                }
                if let Some(e) = self.members.random(&mut self.rng)
                    && eligible(e)
                    && !out.contains(&e.id)
                {
                    out.push(e.id);
                }
            }
            out
        };
        // Stable: keeps the random order within each group: nodes that can
        // take the job now, then loaded or busy ones, then too small ones.
        let want = job.cpus_wanted();
        drawn.sort_by_key(|id| {
            self.members.get(*id).map_or((false, false), |e| {
                let small = e.state.cpu_count() < want;
                let taken = match job.mode {
                    Mode::Exclusive => e.state.running_jobs > 0,
                    Mode::Balance => e.state.free_cpus.min(e.state.cpu_count()) < want,
                };
                (small, taken)
            })
        });
        drawn.truncate(k);
        drawn
            .iter()
            .filter_map(|id| self.members.get(*id))
            .map(|e| Candidate {
                id: e.id,
                addr: e.addr,
                answer: None,
            })
            .collect()
    }

    /// Asks `fresh` candidates for `p` now, with a fresh timeout and retries.
    fn start_round(&mut self, now: Instant, p: &mut Pending, fresh: Vec<Candidate>) {
        let attempt = u8::try_from(p.sent_at.len()).unwrap_or(u8::MAX);
        p.sent_at.push(now);
        p.deadline = now + self.cfg.placement_timeout;
        p.retries_left = self.cfg.placement_retries;
        p.next_retry = if p.retries_left > 0 {
            now + self.cfg.placement_timeout / (u32::from(self.cfg.placement_retries) + 1)
        } else {
            Instant::MAX
        };
        for c in &fresh {
            let msg = self.task_request(p, attempt);
            self.send(Dest::Unicast(c.addr), &msg);
        }
        p.candidates.extend(fresh);
    }

    /// A round of `p` is over (all answered, or the timeout): another round if no
    /// candidate permitted and rounds are left, else the result.
    fn end_round(&mut self, now: Instant, mut p: Pending) {
        let permitted = p
            .candidates
            .iter()
            .any(|c| c.answer.is_some_and(|a| a.verdict == Verdict::Permit));
        if !permitted && p.rounds_left > 0 {
            let asked: Vec<NodeId> = p.candidates.iter().map(|c| c.id).collect();
            let fresh = self.draw_candidates(&p.job, &asked);
            if !fresh.is_empty() {
                p.rounds_left -= 1;
                self.start_round(now, &mut p, fresh);
                self.pending.push(p);
                return;
            }
        }
        self.finish(p);
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

    // ----- internals: plumbing -----

    fn join_pending(&self) -> bool {
        self.join_left > 0 && !self.join_done
    }

    fn touch(&mut self, now: Instant) {
        self.local.last_heard = self.local.last_heard.max(now);
    }

    fn nonce(&mut self) -> u32 {
        let n = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1).max(1);
        n
    }

    /// Our entry with the current SWIM incarnation number.
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
                self.stats.sent_bytes += bytes.len() as u64;
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

    fn scale(&self) -> u32 {
        u32::from(self.health) + 1
    }

    fn health_delta(&mut self, delta: i8) {
        self.health = if delta < 0 {
            self.health.saturating_sub(delta.unsigned_abs())
        } else {
            self.health
                .saturating_add(delta.unsigned_abs())
                .min(self.cfg.max_local_health)
        };
    }

    // ----- membership table -----

    fn announce_of(e: &Entry) -> Announce {
        Announce {
            id: e.id,
            incarnation: e.incarnation,
            seq: e.seq(),
            role: e.role,
            name: e.name(),
            addr: e.addr,
            state: e.state,
        }
    }

    /// Marks `id` alive and stops timing our suspicion of it; true if it was suspect.
    fn set_alive(&mut self, id: NodeId) -> bool {
        self.suspicions.remove(&id);
        self.members.set_status(id, Status::Alive)
    }

    fn remove_member(&mut self, id: NodeId) -> Option<Entry> {
        self.suspicions.remove(&id);
        self.members.remove(id)
    }

    /// Takes an announce of another member. `direct` means it came from that member
    /// itself, so `from` is its address.
    fn observe(&mut self, now: Instant, a: &Announce, from: Addr, direct: bool) {
        self.observe_as(now, a, from, direct, false);
    }

    /// [`observe`](Member::observe); `gossiped`: the announce came as an
    /// [`Update::Alive`], so a newer number is news the member spread and we spread
    /// it on.
    fn observe_as(&mut self, now: Instant, a: &Announce, from: Addr, direct: bool, gossiped: bool) {
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
        if let Some(e) = self.members.get(a.id) {
            if e.incarnation != a.incarnation {
                if self
                    .restarts
                    .get(&a.id)
                    .is_some_and(|r| r.previous == a.incarnation)
                {
                    self.stats.ignored += 1;
                    return;
                }
                let previous = e.incarnation;
                self.restarts.insert(
                    a.id,
                    Restart {
                        previous,
                        expires: now + self.cfg.tombstone_ttl,
                    },
                );
                let Some(e) = self.members.get_mut(a.id) else {
                    return;
                };
                e.incarnation = a.incarnation;
                e.set_seq(a.seq);
                e.set_name(&a.name);
                e.role = a.role;
                e.addr = addr;
                e.state = a.state;
                self.members.heard(a.id, now);
                self.set_alive(a.id);
                self.event(Event::Restarted(a.id));
                self.enqueue(Update::Alive(a.clone()));
                return;
            }
            if a.seq < e.seq() {
                self.stats.ignored += 1;
                return;
            }
            let newer = a.seq > e.seq();
            // Written only when something differs: an entry of a shared view is
            // copied when written.
            let differs = newer
                || e.role != a.role
                || (direct && e.addr != addr)
                || e.state != a.state
                || !e.has_name(&a.name);
            if differs && let Some(e) = self.members.get_mut(a.id) {
                e.set_seq(a.seq);
                e.set_name(&a.name);
                e.role = a.role;
                if direct {
                    e.addr = addr;
                }
                e.state = a.state;
            }
            self.members.heard(a.id, now);
            if newer {
                if self.set_alive(a.id) {
                    self.event(Event::Restored(a.id));
                }
                // A new state the member gossiped spreads on; a number heard in a
                // ping or ack (a refutation, straight or relayed) does not: only
                // its suspecter needed it.
                if gossiped {
                    self.enqueue(Update::Alive(a.clone()));
                }
            }
            return;
        }
        let e = Entry::new(a.id, a.incarnation, a.seq, a.role, &a.name, addr, a.state);
        self.members.insert(e, now);
        self.event(Event::Joined(a.id));
        self.enqueue(Update::Alive(a.clone()));
    }

    // ----- dissemination -----

    /// How many times each member piggybacks an update: `gossip_mult × ⌈log10(N + 1)⌉`.
    fn gossip_limit(&self) -> u8 {
        let mut digits = 1u8;
        let mut n = self.view_len() + 1;
        while n > 10 {
            n = n.div_ceil(10);
            digits += 1;
        }
        self.cfg.gossip_mult.saturating_mul(digits).max(1)
    }

    fn enqueue(&mut self, update: Update) {
        let limit = self.learn_limit.unwrap_or_else(|| self.gossip_limit());
        if limit == 0 {
            return;
        }
        let id = update.id();
        if let Some(old) = self.gossip.remove(&id) {
            self.gossip_order
                .remove(&(old.sent, Reverse(old.order), id));
        }
        self.gossip_seq += 1;
        let order = self.gossip_seq;
        self.gossip.insert(
            id,
            Gossip {
                update,
                sent: 0,
                limit,
                order,
                queued: self.local.last_heard,
            },
        );
        self.gossip_order.insert((0, Reverse(order), id));
        if self.gossip.len() > GOSSIP_CAPACITY
            && let Some(&(_, _, worst)) = self.gossip_order.last()
        {
            self.gossip_order.pop_last();
            self.gossip.remove(&worst);
        }
    }

    /// The updates to piggyback on a message to `to`: first, if we suspect `to`,
    /// our suspicion (so that it can refute, Lifeguard's buddy system), then the
    /// least-sent, newest updates.
    fn piggyback(&mut self, to: Option<NodeId>) -> Vec<Update> {
        let max = self.cfg.piggyback_max;
        let mut out = Vec::new();
        if max == 0 {
            return out;
        }
        if let Some(to) = to
            && let Some(s) = self.suspicions.get(&to)
        {
            out.push(Update::Suspect {
                id: to,
                incarnation: s.incarnation,
                seq: s.seq,
                by: self.local.id,
            });
        }
        let keys: Vec<(u8, Reverse<u64>, NodeId)> = self
            .gossip_order
            .iter()
            .take(max - out.len())
            .copied()
            .collect();
        for key in keys {
            self.gossip_order.remove(&key);
            let id = key.2;
            let Some(g) = self.gossip.get_mut(&id) else {
                continue;
            };
            out.push(g.update.clone());
            g.sent = g.sent.saturating_add(1);
            if g.sent >= g.limit {
                self.gossip.remove(&id);
            } else {
                self.gossip_order.insert((g.sent, Reverse(g.order), id));
            }
        }
        out
    }

    fn apply_updates(&mut self, now: Instant, updates: &[Update]) {
        for u in updates {
            self.apply_update(now, u);
        }
    }

    fn apply_update(&mut self, now: Instant, u: &Update) {
        match *u {
            Update::Alive(ref a) => self.observe_as(now, a, a.addr, false, true),
            Update::Suspect {
                id,
                incarnation,
                seq,
                by,
            } => {
                if id == self.local.id {
                    if incarnation != self.local.incarnation {
                        return;
                    }
                    if seq >= self.seq {
                        self.refute(seq);
                    }
                    // Straight to the suspecter, whatever the number: it alone
                    // decides, and it may not have our latest.
                    if let Some(addr) = self.members.get(by).map(|e| e.addr) {
                        let msg = Message::Ack {
                            from: self.current_announce(),
                            nonce: 0,
                            updates: Vec::new(),
                        };
                        self.send(Dest::Unicast(addr), &msg);
                    }
                    return;
                }
                // Only the suspecter times a suspicion; another member's suspicion of
                // the same incarnation confirms ours and shortens it (Lifeguard §IV-B).
                self.confirm(now, id, seq, by);
            }
            Update::Dead {
                id,
                incarnation,
                seq,
                by: _,
            } => {
                if id == self.local.id {
                    if incarnation == self.local.incarnation {
                        // Declared dead while alive: come back with a newer number,
                        // by broadcast, since the others dropped us.
                        self.refute(seq);
                        let msg = Message::Join(self.current_announce());
                        self.send(Dest::Broadcast, &msg);
                    }
                    return;
                }
                let Some(e) = self.members.get(id) else {
                    return;
                };
                // SWIM §4.2: a confirmed death overrides any alive or suspect
                // number of the same run. A member that refuted to others but not
                // to its declarer would otherwise stay in their views until they
                // probe it themselves (once per N periods); if it is alive after
                // all, it hears of its death and joins again with a larger number.
                if e.incarnation != incarnation {
                    self.stats.ignored += 1;
                    return;
                }
                let seq = seq.max(e.seq());
                self.remove_member(id);
                self.tombstones.insert(
                    id,
                    Tombstone {
                        incarnation,
                        seq,
                        expires: now + self.cfg.tombstone_ttl,
                    },
                );
                self.event(Event::Dead(id));
                self.enqueue(u.clone());
            }
            Update::Left { id, incarnation } => {
                if self.on_leave(now, id, incarnation) {
                    self.enqueue(u.clone());
                }
            }
        }
    }

    /// SWIM §4.2: a member suspected (or declared dead) at incarnation number `seq`
    /// refutes with a larger one. The new number travels in our acks and pings and
    /// straight to the suspecter; only suspecters act on suspicions, so it is not
    /// gossiped.
    fn refute(&mut self, seq: u64) {
        self.seq = self.seq.max(seq) + 1;
        self.stats.refutations += 1;
        // Lifeguard §IV-A: being suspected hints that our own messages are late.
        self.health_delta(1);
    }

    // ----- probing -----

    fn poll_probe(&mut self, now: Instant) {
        let scale = self.scale();
        let mut indirect = None;
        if let Some(p) = &mut self.probe
            && !p.acked
            && p.indirect_sent == 0
            && now >= p.indirect_at
        {
            indirect = Some((p.target, p.addr, p.nonce));
        }
        if let Some((target, addr, nonce)) = indirect {
            // The ping again, straight, with the indirect probes (as memberlist's
            // fallback ping): a lost ping or ack is the usual reason for a late
            // ack, and one more datagram makes a probe of a live member fail
            // about ten times less often at 5 % loss (simbench: 729 suspicions
            // instead of about 7500 in 10 minutes at N = 10,000).
            if self.cfg.direct_retry {
                let updates = self.piggyback(Some(target));
                let msg = Message::Ping {
                    from: self.current_announce(),
                    nonce,
                    target,
                    updates,
                };
                self.send(Dest::Unicast(addr), &msg);
            }
            let sent = self.send_ping_reqs(target, addr, nonce);
            if let Some(p) = &mut self.probe {
                p.indirect_sent = sent.max(1);
            }
            self.stats.indirect_probes += 1;
        }
        if now < self.next_period {
            return;
        }
        if let Some(p) = self.probe.take() {
            if p.acked {
                self.health_delta(-1);
            } else {
                // Lifeguard §IV-A: missing nacks mean our own link is at fault.
                let missing = p.indirect_sent.saturating_sub(p.nacks);
                let delta = if p.indirect_sent > 0 && self.cfg.indirect_probes > 0 {
                    missing
                } else {
                    1
                };
                self.health_delta(i8::try_from(delta).unwrap_or(i8::MAX));
                self.probe_failed(now, p.target);
            }
        }
        let scale_now = self.scale();
        self.next_period = now + self.cfg.probe_interval * scale_now;
        let _ = scale;
        let Some(target) = self.next_target(now) else {
            return;
        };
        let Some(addr) = self.members.get(target).map(|e| e.addr) else {
            return;
        };
        let nonce = self.nonce();
        self.stats.probes += 1;
        self.probe = Some(Probe {
            target,
            addr,
            nonce,
            indirect_at: now + self.cfg.probe_timeout * scale_now,
            indirect_sent: 0,
            nacks: 0,
            acked: false,
        });
        let updates = self.piggyback(Some(target));
        let msg = Message::Ping {
            from: self.current_announce(),
            nonce,
            target,
            updates,
        };
        self.send(Dest::Unicast(addr), &msg);
    }

    /// This period's target: a member we suspect (the one probed longest ago), else
    /// the next of the round-robin in random order (SWIM §4.3).
    fn next_target(&mut self, now: Instant) -> Option<NodeId> {
        if let Some((&id, _)) = self.suspicions.iter().min_by_key(|(_, s)| s.probed_at) {
            if let Some(s) = self.suspicions.get_mut(&id) {
                s.probed_at = now;
            }
            return Some(id);
        }
        self.members.next_in_round(&mut self.rng)
    }

    /// Asks up to k random alive members to ping `target`; returns how many.
    fn send_ping_reqs(&mut self, target: NodeId, target_addr: Addr, nonce: u32) -> u8 {
        let k = usize::from(self.cfg.indirect_probes);
        let ok = |e: &Entry| e.id != target && e.status == Status::Alive;
        let relays: Vec<(NodeId, Addr)> = if self.members.len() <= 2 * k + 1 {
            let mut all: Vec<(NodeId, Addr)> = self
                .members
                .ordered()
                .filter(|e| ok(e))
                .map(|e| (e.id, e.addr))
                .collect();
            self.rng.shuffle(&mut all);
            all.truncate(k);
            all
        } else {
            let mut out: Vec<(NodeId, Addr)> = Vec::with_capacity(k);
            for _ in 0..4 * k {
                if out.len() >= k {
                    break;
                }
                if let Some(e) = self.members.random(&mut self.rng)
                    && ok(e)
                    && !out.iter().any(|r| r.0 == e.id)
                {
                    out.push((e.id, e.addr));
                }
            }
            out
        };
        for &(id, addr) in &relays {
            let updates = self.piggyback(Some(id));
            let msg = Message::PingReq {
                from: self.local.id,
                nonce,
                target,
                target_addr,
                updates,
            };
            self.send(Dest::Unicast(addr), &msg);
        }
        u8::try_from(relays.len()).unwrap_or(u8::MAX)
    }

    fn on_ack(&mut self, now: Instant, src: Addr, a: &Announce, nonce: u32) {
        // Our own probe?
        if let Some(p) = &mut self.probe
            && p.nonce == nonce
            && p.target == a.id
        {
            p.acked = true;
            let direct = src == p.addr;
            self.observe(now, a, src, direct);
            // Alive evidence: stop timing our suspicion (the ack carries the
            // refutation when the suspect heard of it from our ping).
            self.suspicions.remove(&a.id);
            return;
        }
        // An indirect probe we relay?
        if let Some(i) = self
            .relays
            .iter()
            .position(|r| r.nonce == nonce && r.target == a.id)
        {
            let r = self.relays.remove(i).expect("index from position");
            self.observe(now, a, src, true);
            let updates = self.piggyback(None);
            let msg = Message::Ack {
                from: a.clone(),
                nonce: r.origin_nonce,
                updates,
            };
            self.send(Dest::Unicast(r.origin), &msg);
            return;
        }
        // A refutation sent straight to us (nonce 0), or a late ack: proof of life.
        self.observe(now, a, src, src == a.addr);
        if nonce != 0 {
            self.stats.ignored += 1;
        }
    }

    fn poll_relays(&mut self, now: Instant) {
        while let Some(r) = self.relays.front() {
            if r.nack_at > now {
                break;
            }
            let r = self.relays.pop_front().expect("front exists");
            // Lifeguard §IV-A: tell the prober we tried, so that it does not blame
            // its own link.
            self.send(
                Dest::Unicast(r.origin),
                &Message::Nack {
                    nonce: r.origin_nonce,
                },
            );
        }
    }

    /// Our probe of `id` went unanswered for a whole period: suspect it (SWIM §4.2)
    /// and time the suspicion. Suspicions are not spread through the group: only the
    /// suspecter declares a death, so nobody else needs to hear the refutation in
    /// time (which, at 10,000 members, would take many protocol periods).
    fn probe_failed(&mut self, now: Instant, id: NodeId) {
        let me = self.local.id;
        let Some(e) = self.members.get(id) else {
            return;
        };
        let (seq, incarnation) = (e.seq(), e.incarnation);
        if self.suspicions.contains_key(&id) {
            return;
        }
        self.members.set_status(id, Status::Suspect);
        self.event(Event::Suspect(id));
        self.stats.suspicions += 1;
        let mut s = Suspicion {
            seq,
            incarnation,
            started: now,
            deadline: now,
            confirmers: Vec::new(),
            probed_at: now,
        };
        s.deadline = now + self.suspicion_timeout(0);
        let at = s.deadline;
        self.suspicions.insert(id, s);
        self.timers.push(Reverse((at, id)));
        // Tell the suspect at once (it refutes straight back), and the others on our
        // next messages (those that suspect it too shorten their suspicion).
        if let Some(addr) = self.members.get(id).map(|e| e.addr) {
            let suspect = Update::Suspect {
                id,
                incarnation,
                seq,
                by: me,
            };
            let msg = Message::Gossip {
                updates: alloc::vec![suspect.clone()],
            };
            self.send(Dest::Unicast(addr), &msg);
            let limit = self.gossip_limit();
            self.learn_limit = Some(limit);
            self.enqueue(suspect);
            self.learn_limit = None;
        }
    }

    /// Lifeguard §IV-B: `max − (max − min) · log(C + 1) / log(K + 1)`, at least `min`.
    fn suspicion_timeout(&self, confirmations: usize) -> Duration {
        let (min, max) = (self.cfg.suspicion_min, self.cfg.suspicion_max);
        let k = u64::from(self.cfg.suspicion_confirmations);
        let c = (confirmations as u64).min(k);
        if k == 0 || c == 0 {
            return max;
        }
        let frac = log2_q16(c + 1) * 1000 / log2_q16(k + 1).max(1); // permille
        let span = duration_nanos(max - min);
        let cut = u64::try_from(u128::from(span) * u128::from(frac) / 1000).unwrap_or(span);
        max - Duration::from_nanos(cut.min(span))
    }

    fn confirm(&mut self, now: Instant, id: NodeId, seq: u64, by: NodeId) {
        if by == self.local.id {
            return;
        }
        let k = usize::from(self.cfg.suspicion_confirmations);
        let Some(s) = self.suspicions.get_mut(&id) else {
            return;
        };
        if s.seq != seq || s.confirmers.contains(&by) || s.confirmers.len() >= k {
            return;
        }
        s.confirmers.push(by);
        let n = s.confirmers.len();
        let started = s.started;
        let deadline = (started + self.suspicion_timeout(n)).max(now);
        if let Some(s) = self.suspicions.get_mut(&id) {
            s.deadline = deadline;
        }
        self.timers.push(Reverse((deadline, id)));
    }

    fn poll_suspicions(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(s) = self.suspicions.get(&id) else {
                continue;
            };
            if s.deadline != at {
                continue; // superseded
            }
            let seq = s.seq;
            let Some(e) = self.remove_member(id) else {
                continue;
            };
            let incarnation = e.incarnation;
            let seq = seq.max(e.seq());
            self.tombstones.insert(
                id,
                Tombstone {
                    incarnation,
                    seq,
                    expires: now + self.cfg.tombstone_ttl,
                },
            );
            self.stats.declared_dead += 1;
            self.event(Event::Dead(id));
            let dead = Update::Dead {
                id,
                incarnation,
                seq,
                by: self.local.id,
            };
            // Everyone needs this at once: one broadcast, then gossip for the few
            // that lost it.
            self.send(
                Dest::Broadcast,
                &Message::Gossip {
                    updates: alloc::vec![dead.clone()],
                },
            );
            self.enqueue(dead);
        }
    }

    // ----- join and view transfer -----

    /// One anti-entropy round when due ([`Config::sync_interval`]).
    fn poll_sync(&mut self, now: Instant) {
        if now < self.sync_at {
            return;
        }
        self.sync_at = now + self.cfg.sync_interval;
        if !self.synced || self.join_pending() {
            return;
        }
        if self.members.len() == 0 {
            // Nobody heard our joins, nor we theirs: announce ourselves again.
            let msg = Message::Join(self.current_announce());
            self.send(Dest::Broadcast, &msg);
            self.stats.syncs += 1;
            return;
        }
        let Some(addr) = self.members.random(&mut self.rng).map(|e| e.addr) else {
            return;
        };
        // About one chunk of the peer's view: the whole id space while the
        // group fits one, else the share of it that holds that many members.
        let per_chunk = (MAX_VIEW_CHUNK - 1) as u64;
        let known = self.members.len() as u64 + 1;
        let (lo, hi) = if known < per_chunk {
            (0, ID_MAX)
        } else {
            let width = ID_MAX / known * per_chunk;
            let lo = self.rng.u64(..=ID_MAX);
            (lo, lo.saturating_add(width).min(ID_MAX))
        };
        let msg = Message::ViewRequest {
            from: self.local.id,
            lo,
            hi,
        };
        self.send(Dest::Unicast(addr), &msg);
        self.stats.syncs += 1;
    }

    fn poll_join(&mut self, now: Instant) {
        if self.join_pending() && now >= self.join_at {
            self.join_left -= 1;
            self.join_at = now + self.cfg.join_retry;
            let msg = Message::Join(self.current_announce());
            self.send(Dest::Broadcast, &msg);
        } else if !self.synced
            && !self.join_pending()
            && self.view_sources.is_empty()
            && now >= self.join_at
        {
            // No synced member sent us its view: we are among the first, and the
            // others answered our joins themselves. Our view is the group's.
            self.join_done = true;
            self.synced = true;
            self.view_req_at = Instant::MAX;
        }
        if !self.synced && now >= self.view_req_at {
            if self.view_req_left == 0 || self.members.len() == 0 {
                // The gaps could not be filled: take the view as it is.
                self.synced = true;
                self.view_req_at = Instant::MAX;
                return;
            }
            self.view_req_left -= 1;
            let round = usize::from(VIEW_REQUEST_ROUNDS - self.view_req_left);
            let src = match self
                .view_sources
                .get(round % self.view_sources.len().max(1))
            {
                // Every other round, a random member: a source may have died.
                Some(&a) if round % 2 == 1 => a,
                _ => match self.members.random(&mut self.rng) {
                    Some(e) => e.addr,
                    None => return,
                },
            };
            for (lo, hi) in self.gaps().into_iter().take(VIEW_GAPS_PER_ROUND) {
                let msg = Message::ViewRequest {
                    from: self.local.id,
                    lo,
                    hi,
                };
                self.send(Dest::Unicast(src), &msg);
            }
            self.view_req_at = now + self.cfg.join_retry / 2;
        }
    }

    /// Id ranges not yet covered by the view transfer.
    fn gaps(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut next = 0u64;
        for &(lo, hi) in &self.coverage {
            if lo > next {
                out.push((next, lo - 1));
            }
            if hi == ID_MAX {
                return out;
            }
            next = next.max(hi + 1);
        }
        out.push((next, ID_MAX));
        out
    }

    fn cover(&mut self, lo: u64, hi: u64) {
        self.coverage.push((lo, hi));
        self.coverage.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.coverage.len());
        for &(l, h) in &self.coverage {
            match merged.last_mut() {
                Some(last) if l <= last.1.saturating_add(1) => last.1 = last.1.max(h),
                _ => merged.push((l, h)),
            }
        }
        self.coverage = merged;
    }

    fn on_view_chunk(&mut self, now: Instant, from: Addr, lo: u64, hi: u64, entries: &[Announce]) {
        for (i, a) in entries.iter().enumerate() {
            self.observe(now, a, from, i == 0);
        }
        let own_only = entries
            .first()
            .is_some_and(|a| lo == hi && a.id.as_u64() == lo);
        if self.synced || own_only {
            // An unsynced member vouches for itself only: keep joining.
            return;
        }
        self.join_done = true;
        if !self.view_sources.contains(&from) && self.view_sources.len() < VIEW_SOURCES {
            self.view_sources.push(from);
        }
        self.cover(lo, hi);
        if self.coverage == [(0, ID_MAX)] {
            self.synced = true;
            self.view_req_at = Instant::MAX;
        } else {
            // Ask for the gaps once the burst of chunks is over.
            self.view_req_at = now + self.cfg.join_retry / 5;
        }
    }

    /// Answers a join from `joiner` at `to`: the whole view if it fits one reply, or
    /// if we are synced and one of the `join_view_responders` members after the
    /// joiner on the id ring; nothing otherwise (the joiner is told by the others
    /// through gossip and its own probes).
    fn answer_join(&mut self, to: Addr, joiner: NodeId) {
        let joiner_alive = self
            .members
            .get(joiner)
            .is_some_and(|e| e.status == Status::Alive);
        let alive = self.members.len() - self.members.suspects() - usize::from(joiner_alive);
        if !self.synced || alive < MAX_VIEW_CHUNK || self.is_view_responder(joiner) {
            // Unsynced, `send_view` sends our own entry only: the joiner may not
            // know us yet, and no synced member may know us either.
            self.send_view(to, 0, ID_MAX);
        }
    }

    /// Sends our entry and every member with an id in `lo..=hi` to `to`, in chunks
    /// that together cover `lo..=hi`.
    fn send_view(&mut self, to: Addr, lo: u64, hi: u64) {
        if lo > hi || hi > ID_MAX {
            self.stats.ignored += 1;
            return;
        }
        let own = self.current_announce();
        if !self.synced {
            // Our view may lack members that joined before us: we vouch for
            // ourselves only; the joiner asks a synced member for the rest.
            let me = self.local.id.as_u64();
            let msg = Message::JoinReply {
                lo: me,
                hi: me,
                entries: alloc::vec![own],
            };
            self.send(Dest::Unicast(to), &msg);
            return;
        }
        let range = NodeId::from_u64(lo)..=NodeId::from_u64(hi);
        let others: Vec<Announce> = self.members.range(range).map(Self::announce_of).collect();
        let mut chunks = others.chunks(MAX_VIEW_CHUNK - 1).peekable();
        let mut chunk_lo = lo;
        if chunks.peek().is_none() {
            let msg = Message::JoinReply {
                lo,
                hi,
                entries: alloc::vec![own],
            };
            self.send(Dest::Unicast(to), &msg);
            return;
        }
        while let Some(chunk) = chunks.next() {
            let chunk_hi = if chunks.peek().is_none() {
                hi
            } else {
                chunk.last().map_or(hi, |a| a.id.as_u64())
            };
            let mut entries = Vec::with_capacity(chunk.len() + 1);
            entries.push(own.clone());
            entries.extend_from_slice(chunk);
            let msg = Message::JoinReply {
                lo: chunk_lo,
                hi: chunk_hi,
                entries,
            };
            self.send(Dest::Unicast(to), &msg);
            chunk_lo = chunk_hi.saturating_add(1);
        }
    }

    /// Returns true if the member was known (and is now dropped).
    fn on_leave(&mut self, now: Instant, id: NodeId, incarnation: u64) -> bool {
        if id == self.local.id {
            self.stats.ignored += 1;
            return false;
        }
        let known = match self.members.get(id) {
            Some(e) if e.incarnation == incarnation => true,
            Some(_) => {
                // A leave of an older (or unknown) incarnation: keep the member.
                self.stats.ignored += 1;
                return false;
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
        known
    }

    /// True if fewer than [`Config::join_view_responders`] alive members lie between
    /// `joiner` and us on the ring of node ids (ascending, wrapping): when views agree,
    /// exactly that many members answer a join with their whole view, and which ones
    /// depends on the joiner.
    fn is_view_responder(&self, joiner: NodeId) -> bool {
        let r = usize::from(self.cfg.join_view_responders);
        let me = self.local.id;
        let alive = |e: &&Entry| e.status == Status::Alive;
        let between = if me > joiner {
            self.members
                .after(joiner)
                .take_while(|e| e.id < me)
                .filter(alive)
                .take(r)
                .count()
        } else {
            self.members
                .after(joiner)
                .chain(self.members.before(me))
                .filter(alive)
                .take(r)
                .count()
        };
        between < r
    }

    // ----- placement -----

    /// The candidate's answer to `requester`'s `placement` of `job`:
    /// [`decide`]'s rule, then the reservation. A node held for another
    /// placement denies with [`DenyReason::Reserved`](crate::DenyReason::Reserved)
    /// (whatever the mode: the held job wants the node alone); a permit of an
    /// exclusive job holds the node for that placement for
    /// [`Config::reservation_lease`] (a retransmitted request of the same
    /// placement is permitted again and does not extend it).
    fn decide_task(
        &mut self,
        now: Instant,
        requester: NodeId,
        placement: PlacementId,
        job: &JobSpec,
    ) -> Verdict {
        let verdict = decide(
            self.local.role,
            self.leaving,
            self.accepting,
            &self.local.state,
            job,
        );
        if self.reservation.is_some_and(|r| now >= r.until) {
            self.reservation = None;
        }
        if verdict != Verdict::Permit {
            return verdict;
        }
        match self.reservation {
            Some(r) if r.requester == requester && r.placement == placement => verdict,
            Some(_) => Verdict::Deny(crate::DenyReason::Reserved),
            None => {
                if job.mode == Mode::Exclusive {
                    self.reservation = Some(Reservation {
                        requester,
                        placement,
                        until: now + self.cfg.reservation_lease,
                    });
                }
                verdict
            }
        }
    }

    /// Ends the holds a finished placement's candidates keep for it (see
    /// [`Config::reservation_lease`]): sends [`Message::TaskRelease`] to every
    /// permitting and every silent candidate of `ranking` except `chosen`
    /// (`None`: the requester takes none of them). Call when the requester has
    /// chosen a node, so that concurrent exclusive placements need not wait
    /// for the lease. Candidates that denied hold nothing and are not told.
    pub fn release_unchosen(&mut self, ranking: &Ranking, chosen: Option<NodeId>) {
        let mut to: Vec<Addr> = ranking
            .ranked
            .iter()
            .filter(|r| Some(r.node) != chosen)
            .map(|r| r.addr)
            .collect();
        to.extend(
            ranking
                .unanswered
                .iter()
                .filter(|id| Some(**id) != chosen)
                .filter_map(|id| self.members.get(*id).map(|e| e.addr)),
        );
        let msg = Message::TaskRelease {
            requester: self.local.id,
            placement: ranking.id,
        };
        for addr in to {
            self.send(Dest::Unicast(addr), &msg);
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
        if self
            .members
            .get(responder)
            .is_some_and(|e| e.state != state)
            && let Some(e) = self.members.get_mut(responder)
        {
            e.state = state;
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
            self.end_round(now, p);
        }
    }

    fn poll_placements(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            if now >= self.pending[i].deadline {
                let p = self.pending.swap_remove(i);
                // A new round goes to the end of `pending`, after `i`.
                self.end_round(now, p);
                continue;
            }
            if now >= self.pending[i].next_retry {
                let p = &mut self.pending[i];
                let attempt = u8::try_from(p.sent_at.len()).unwrap_or(u8::MAX);
                p.sent_at.push(now);
                p.retries_left = p.retries_left.saturating_sub(1);
                p.next_retry = if p.retries_left > 0 {
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
                .get(r.node)
                .is_none_or(|e| e.role == Role::Node)
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
    s.free_cpus = s.free_cpus.min(s.cpus);
    s
}

/// `log2(x)` in unsigned Q16 fixed point (16 fractional bits), for `x >= 1`; 0 for 0.
/// Bit by bit by repeated squaring of the mantissa (no floating point in `no_std`).
fn log2_q16(x: u64) -> u64 {
    if x <= 1 {
        return 0;
    }
    let n = 63 - u64::from(x.leading_zeros());
    // The mantissa x / 2^n in [1, 2), as Q32.
    let mut y: u128 = (u128::from(x) << 32) >> n;
    let mut frac = 0u64;
    for bit in (0..16).rev() {
        y = (y * y) >> 32;
        if y >= 2u128 << 32 {
            y >>= 1;
            frac |= 1 << bit;
        }
    }
    (n << 16) | frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Ranked;
    use alloc::vec;

    fn member(mac_last: u8, now: Instant) -> Member {
        let id = NodeId::from_mac([2, 0, 0, 0, 0, mac_last]);
        let local = LocalNode::new(id, Role::Node, Addr::new([10, 0, 0, mac_last], 7070));
        Member::new(Config::default(), local, now, u64::from(mac_last))
    }

    fn drain(m: &mut Member) -> Vec<Transmit> {
        core::iter::from_fn(|| m.poll_transmit()).collect()
    }

    fn announce_of(m: &Member) -> Announce {
        m.current_announce()
    }

    #[test]
    fn log2_fixed_point() {
        assert_eq!(log2_q16(1), 0);
        assert_eq!(log2_q16(2), 1 << 16);
        assert_eq!(log2_q16(1024), 10 << 16);
        // log2(3) = 1.58496...
        let l3 = log2_q16(3);
        assert!((103_872..=103_874).contains(&l3), "{l3}");
    }

    #[test]
    fn suspicion_timeout_follows_lifeguard() {
        let m = member(1, Instant::ZERO);
        let cfg = Config::default();
        assert_eq!(m.suspicion_timeout(0), cfg.suspicion_max);
        // max - (max - min) * log(2)/log(4) = 1.5 s - 0.25 s
        assert_eq!(m.suspicion_timeout(1), Duration::from_millis(1250));
        let two = m.suspicion_timeout(2);
        assert!(two > cfg.suspicion_min && two < Duration::from_millis(1250));
        assert_eq!(m.suspicion_timeout(3), cfg.suspicion_min);
        assert_eq!(m.suspicion_timeout(9), cfg.suspicion_min);
    }

    #[test]
    fn alone_it_joins_three_times_then_probes_nobody_and_announces_itself_again() {
        let mut m = member(1, Instant::ZERO);
        let out = drain(&mut m);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].dest, Dest::Broadcast);
        assert!(matches!(
            Message::decode(&out[0].bytes),
            Ok(Message::Join(_))
        ));
        let mut now = Instant::ZERO;
        let mut joins = alloc::vec![now];
        while now < Instant::from_secs(30) {
            now = m.poll_at();
            m.poll(now);
            for t in drain(&mut m) {
                match Message::decode(&t.bytes).unwrap() {
                    Message::Join(_) => joins.push(now),
                    other => panic!("{other:?}"),
                }
            }
            assert!(m.poll_at() > now);
        }
        // Three joins a second apart, then synced and alone: one join again
        // per sync interval (5 s), after a random phase of at most one.
        assert_eq!(joins[1], Instant::from_secs(1));
        assert_eq!(joins[2], Instant::from_secs(2));
        assert!(m.is_synced());
        assert!(joins[3] >= Instant::from_secs(5) && joins[3] < Instant::from_secs(10));
        for w in joins[3..].windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_secs(5));
        }
        assert!(joins.len() >= 7, "{joins:?}");
    }

    #[test]
    fn a_synced_member_asks_a_random_member_for_its_view_each_sync_interval() {
        // Two members on a lossless link, delivering each other's datagrams.
        let mut m = member(1, Instant::ZERO);
        let mut peer = member(2, Instant::ZERO);
        let (m_addr, peer_addr) = (m.local().addr, peer.local().addr);
        let mut now = Instant::ZERO;
        let mut requests = Vec::new();
        while now < Instant::from_secs(21) {
            now = m.poll_at().min(peer.poll_at());
            m.poll(now);
            peer.poll(now);
            loop {
                let (to_peer, to_m) = (drain(&mut m), drain(&mut peer));
                if to_peer.is_empty() && to_m.is_empty() {
                    break;
                }
                for t in to_peer {
                    if let Ok(Message::ViewRequest { lo, hi, .. }) = Message::decode(&t.bytes) {
                        assert_eq!(t.dest, Dest::Unicast(peer_addr));
                        requests.push((now, lo, hi));
                    }
                    peer.handle_datagram(now, m_addr, &t.bytes).unwrap();
                }
                for t in to_m {
                    m.handle_datagram(now, peer_addr, &t.bytes).unwrap();
                }
            }
        }
        // A group this small fits one reply: the whole id space, each time.
        assert!((3..=4).contains(&requests.len()), "{requests:?}");
        assert!(requests.iter().all(|&(_, lo, hi)| (lo, hi) == (0, ID_MAX)));
        assert_eq!(m.stats().syncs, requests.len() as u64);
        // The answer names a member we did not know: it is in the view now.
        let stranger = member(3, Instant::ZERO);
        let reply = Message::JoinReply {
            lo: 0,
            hi: ID_MAX,
            entries: alloc::vec![announce_of(&peer), announce_of(&stranger)],
        };
        m.handle_message(now, peer_addr, &reply);
        assert!(m.knows(stranger.id()));
    }

    #[test]
    fn pings_one_member_per_period_and_suspects_a_silent_one() {
        let mut a = member(1, Instant::ZERO);
        let b = member(2, Instant::ZERO);
        drain(&mut a);
        let join = Message::Join(announce_of(&b));
        a.handle_message(Instant::from_millis(1), b.local().addr, &join);
        assert_eq!(a.poll_event(), Some(Event::Joined(b.id())));
        let mut now = Instant::from_millis(1);
        let mut pings = 0;
        while now < Instant::from_secs(10) {
            now = a.poll_at();
            a.poll(now);
            for t in drain(&mut a) {
                if let Ok(Message::Ping { target, .. }) = Message::decode(&t.bytes) {
                    assert_eq!(target, b.id());
                    pings += 1;
                }
            }
            assert!(a.poll_at() > now);
        }
        // Alone with a silent member: suspected after the first period, dead
        // `suspicion_max` later (no relay to ask, so no nack: local health grows).
        let evs: Vec<Event> = core::iter::from_fn(|| a.poll_event()).collect();
        assert_eq!(evs, [Event::Suspect(b.id()), Event::Dead(b.id())]);
        assert!(pings >= 2, "{pings}");
        assert_eq!(a.view_len(), 1);
        assert!(a.local_health() > 0);
        // A late join of the dead run is ignored only if not newer; a newer one counts.
        let mut ann = announce_of(&b);
        a.handle_message(now, b.local().addr, &Message::Join(ann.clone()));
        assert_eq!(a.view_len(), 1);
        ann.seq += 1;
        a.handle_message(now, b.local().addr, &Message::Join(ann));
        assert_eq!(a.view_len(), 2);
    }

    #[test]
    fn a_suspected_member_refutes_in_its_ack() {
        let mut b = member(2, Instant::ZERO);
        let a = member(1, Instant::ZERO);
        drain(&mut b);
        let seq = b.seq;
        let ping = Message::Ping {
            from: announce_of(&a),
            nonce: 7,
            target: b.id(),
            updates: alloc::vec![Update::Suspect {
                id: b.id(),
                incarnation: b.local().incarnation,
                seq,
                by: a.id(),
            }],
        };
        b.handle_message(Instant::from_millis(5), a.local().addr, &ping);
        let out = drain(&mut b);
        let ack = out
            .iter()
            .find_map(|t| match Message::decode(&t.bytes) {
                Ok(Message::Ack { from, nonce, .. }) => Some((from, nonce)),
                _ => None,
            })
            .expect("an ack");
        assert_eq!(ack.1, 7);
        assert_eq!(ack.0.seq, seq + 1, "refuted with a larger number");
        assert_eq!(b.stats().refutations, 1);
        assert_eq!(b.local_health(), 1);
    }

    #[test]
    fn a_death_overrides_a_larger_number_of_the_same_run() {
        let mut a = member(1, Instant::ZERO);
        let b = member(2, Instant::ZERO);
        drain(&mut a);
        let mut ann = announce_of(&b);
        ann.seq = 5;
        a.handle_message(
            Instant::from_millis(1),
            b.local().addr,
            &Message::Join(ann.clone()),
        );
        let dead = |incarnation, seq| Message::Gossip {
            updates: alloc::vec![Update::Dead {
                id: b.id(),
                incarnation,
                seq,
                by: NodeId::from_u64(9),
            }],
        };
        // Another run's death changes nothing.
        let other_run = b.local().incarnation.wrapping_add(1);
        a.handle_message(Instant::from_millis(2), b.local().addr, &dead(other_run, 9));
        assert!(a.knows(b.id()));
        // The declarer had an older number (it missed a refutation): still dead
        // (SWIM §4.2), and the tombstone keeps the larger number out.
        a.handle_message(
            Instant::from_millis(3),
            b.local().addr,
            &dead(ann.incarnation, 3),
        );
        assert!(!a.knows(b.id()));
        a.handle_message(
            Instant::from_millis(4),
            b.local().addr,
            &Message::Join(ann.clone()),
        );
        assert!(!a.knows(b.id()));
        // Its refutation (a larger number) brings it back.
        ann.seq = 6;
        a.handle_message(Instant::from_millis(5), b.local().addr, &Message::Join(ann));
        assert!(a.knows(b.id()));
    }

    #[test]
    fn a_late_ack_brings_the_ping_again_and_indirect_probes() {
        let mut a = member(1, Instant::ZERO);
        drain(&mut a);
        for mac in 2..=6 {
            let b = member(mac, Instant::ZERO);
            a.handle_message(
                Instant::from_millis(1),
                b.local().addr,
                &Message::Join(announce_of(&b)),
            );
        }
        drain(&mut a);
        // Run to the first ping, then to the ack's deadline.
        let (target, ping_at) = loop {
            let now = a.poll_at();
            a.poll(now);
            if let Some(target) =
                drain(&mut a)
                    .iter()
                    .find_map(|t| match Message::decode(&t.bytes) {
                        Ok(Message::Ping { target, .. }) => Some(target),
                        _ => None,
                    })
            {
                break (target, now);
            }
        };
        let now = a.poll_at();
        assert_eq!(now, ping_at + Config::default().probe_timeout);
        a.poll(now);
        let (mut pings, mut reqs) = (0, 0);
        for t in drain(&mut a) {
            match Message::decode(&t.bytes).unwrap() {
                Message::Ping { target: t, .. } => {
                    assert_eq!(t, target);
                    pings += 1;
                }
                Message::PingReq { target: t, .. } => {
                    assert_eq!(t, target);
                    reqs += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            (pings, reqs),
            (1, usize::from(Config::default().indirect_probes))
        );
    }

    #[test]
    fn a_placement_that_only_hears_denials_asks_k_others() {
        let mut a = member(1, Instant::ZERO);
        drain(&mut a);
        let others: Vec<Member> = (2..=9).map(|mac| member(mac, Instant::ZERO)).collect();
        for b in &others {
            a.handle_message(
                Instant::from_millis(1),
                b.local().addr,
                &Message::Join(announce_of(b)),
            );
        }
        drain(&mut a);
        let job = JobSpec {
            program_size: 1,
            memory: 1,
            mode: Mode::Exclusive,
            cpus: 1,
        };
        let now = Instant::from_millis(2);
        let id = a.start_placement(now, job, Weights::default());
        let asked = |a: &mut Member| -> Vec<(NodeId, PlacementId, u8)> {
            drain(a)
                .iter()
                .filter_map(|t| match Message::decode(&t.bytes) {
                    Ok(Message::TaskRequest {
                        placement, attempt, ..
                    }) => {
                        let Dest::Unicast(addr) = t.dest else {
                            panic!("a task request is unicast")
                        };
                        let node = others.iter().find(|b| b.local().addr == addr).unwrap();
                        Some((node.id(), placement, attempt))
                    }
                    _ => None,
                })
                .collect()
        };
        let reply =
            |a: &mut Member, (node, placement, attempt): (NodeId, PlacementId, u8), verdict| {
                let from = others.iter().find(|b| b.id() == node).unwrap().local().addr;
                let msg = Message::TaskReply {
                    responder: node,
                    placement,
                    attempt,
                    verdict,
                    state: NodeState::default(),
                };
                a.handle_message(Instant::from_millis(3), from, &msg);
            };
        let first = asked(&mut a);
        let k = Config::default().placement_candidates;
        assert_eq!(first.len(), k);
        for &r in &first {
            reply(&mut a, r, Verdict::Deny(crate::DenyReason::Busy));
        }
        // Every one busy: k others, none asked before.
        assert!(a.placement_pending(id));
        let second = asked(&mut a);
        assert_eq!(second.len(), k);
        assert!(second.iter().all(|s| first.iter().all(|f| f.0 != s.0)));
        assert!(
            second.iter().all(|s| s.2 == 1),
            "the second round's attempt: {second:?}"
        );
        reply(&mut a, second[0], Verdict::Permit);
        for &r in &second[1..] {
            reply(&mut a, r, Verdict::Deny(crate::DenyReason::Busy));
        }
        // Default: 2 rounds; one permit ends it anyway.
        assert!(!a.placement_pending(id));
        let res = a.placement_result(id).expect("finished");
        assert_eq!(res.best().map(|b| b.node), Some(second[0].0));
        assert_eq!(res.denied.len(), 2 * k - 1);
        assert!(asked(&mut a).is_empty());
    }

    /// The verdict `node` sends for a task request of `requester`'s
    /// `placement` at `now`.
    fn verdict_for(
        node: &mut Member,
        now: Instant,
        requester: u64,
        placement: u32,
        mode: Mode,
    ) -> Verdict {
        verdict_for_cpus(node, now, requester, placement, mode, 1)
    }

    /// [`verdict_for`] a job asking for `cpus` CPUs.
    fn verdict_for_cpus(
        node: &mut Member,
        now: Instant,
        requester: u64,
        placement: u32,
        mode: Mode,
        cpus: u8,
    ) -> Verdict {
        drain(node);
        let msg = Message::TaskRequest {
            requester: NodeId::from_u64(requester),
            placement: PlacementId(placement),
            attempt: 0,
            job: JobSpec {
                program_size: 1,
                memory: 1,
                mode,
                cpus,
            },
        };
        node.handle_message(now, Addr::new([10, 0, 0, 99], 7070), &msg);
        let replies: Vec<Verdict> = drain(node)
            .iter()
            .filter_map(|t| match Message::decode(&t.bytes) {
                Ok(Message::TaskReply { verdict, .. }) => Some(verdict),
                _ => None,
            })
            .collect();
        assert_eq!(replies.len(), 1, "one reply per request");
        replies[0]
    }

    #[test]
    fn an_exclusive_permit_holds_the_node_for_its_placement() {
        use crate::DenyReason::{Busy, Reserved};
        let mut n = member(1, Instant::ZERO);
        let idle = NodeState {
            free_mem: 1 << 30,
            ..NodeState::default()
        };
        n.set_local_state(idle);
        let at = Instant::from_millis;
        // A permits; while held, B is denied whatever the mode, and A's
        // retransmission is permitted again.
        assert_eq!(
            verdict_for(&mut n, at(10), 7, 1, Mode::Exclusive),
            Verdict::Permit
        );
        assert_eq!(
            verdict_for(&mut n, at(20), 8, 1, Mode::Exclusive),
            Verdict::Deny(Reserved)
        );
        assert_eq!(
            verdict_for(&mut n, at(30), 8, 2, Mode::Balance),
            Verdict::Deny(Reserved)
        );
        assert_eq!(
            verdict_for(&mut n, at(40), 7, 2, Mode::Exclusive),
            Verdict::Deny(Reserved),
            "another placement of the same requester is another job"
        );
        assert_eq!(
            verdict_for(&mut n, at(50), 7, 1, Mode::Exclusive),
            Verdict::Permit
        );
        // A release by someone else changes nothing; A's own ends the hold.
        let release = |n: &mut Member, requester: u64, placement: u32| {
            let msg = Message::TaskRelease {
                requester: NodeId::from_u64(requester),
                placement: PlacementId(placement),
            };
            n.handle_message(at(60), Addr::new([10, 0, 0, 99], 7070), &msg);
        };
        release(&mut n, 8, 1);
        assert_eq!(
            verdict_for(&mut n, at(70), 8, 3, Mode::Exclusive),
            Verdict::Deny(Reserved)
        );
        release(&mut n, 7, 1);
        // Now B is permitted and holds it; the lease ends 5 s later.
        assert_eq!(
            verdict_for(&mut n, at(80), 8, 3, Mode::Exclusive),
            Verdict::Permit
        );
        assert_eq!(
            verdict_for(&mut n, at(5079), 9, 1, Mode::Exclusive),
            Verdict::Deny(Reserved)
        );
        assert_eq!(
            verdict_for(&mut n, at(5080), 9, 1, Mode::Exclusive),
            Verdict::Permit
        );
        // The job arrives: the hold ends, exclusive jobs see a busy node and
        // balance jobs may queue behind it.
        n.set_local_state(NodeState {
            running_jobs: 1,
            ..idle
        });
        assert_eq!(
            verdict_for(&mut n, at(5100), 10, 1, Mode::Exclusive),
            Verdict::Deny(Busy)
        );
        assert_eq!(
            verdict_for(&mut n, at(5110), 10, 2, Mode::Balance),
            Verdict::Permit
        );
        // A balance permit holds nothing.
        n.set_local_state(idle);
        assert_eq!(
            verdict_for(&mut n, at(5200), 11, 1, Mode::Balance),
            Verdict::Permit
        );
        assert_eq!(
            verdict_for(&mut n, at(5210), 12, 1, Mode::Exclusive),
            Verdict::Permit
        );
    }

    #[test]
    fn the_requester_releases_every_permitting_and_silent_candidate_but_the_chosen() {
        let mut a = member(1, Instant::ZERO);
        let others: Vec<Member> = (2..=5).map(|mac| member(mac, Instant::ZERO)).collect();
        for b in &others {
            a.handle_message(
                Instant::from_millis(1),
                b.local().addr,
                &Message::Join(announce_of(b)),
            );
        }
        drain(&mut a);
        let ranked = |b: &Member| Ranked {
            node: b.id(),
            addr: b.local().addr,
            state: NodeState::default(),
            rtt: Duration::from_millis(1),
            parts: crate::ScoreParts::default(),
            score: 0,
        };
        let ranking = Ranking {
            id: PlacementId(42),
            job: JobSpec::default(),
            weights: Weights::default(),
            ranked: vec![ranked(&others[0]), ranked(&others[1])],
            denied: vec![Denial {
                node: others[2].id(),
                reason: crate::DenyReason::Busy,
                state: NodeState::default(),
            }],
            unanswered: vec![others[3].id()],
        };
        a.release_unchosen(&ranking, Some(others[0].id()));
        let mut told: Vec<Addr> = drain(&mut a)
            .iter()
            .map(|t| {
                assert_eq!(
                    Message::decode(&t.bytes),
                    Ok(Message::TaskRelease {
                        requester: a.id(),
                        placement: PlacementId(42)
                    })
                );
                match t.dest {
                    Dest::Unicast(addr) => addr,
                    Dest::Broadcast => panic!("a release is unicast"),
                }
            })
            .collect();
        told.sort();
        let mut want = vec![others[1].local().addr, others[3].local().addr];
        want.sort();
        assert_eq!(told, want);
    }

    #[test]
    fn view_chunks_cover_the_id_space_and_gaps_are_found() {
        let mut m = member(1, Instant::ZERO);
        m.cover(10, 20);
        m.cover(0, 9);
        m.cover(30, ID_MAX);
        assert_eq!(m.coverage, [(0, 20), (30, ID_MAX)]);
        assert_eq!(m.gaps(), [(21, 29)]);
        m.cover(21, 29);
        assert!(m.gaps().is_empty());
    }

    /// A node of `cpus` CPUs running `jobs` jobs, as the node's driver reports it.
    fn smp_state(cpus: u8, jobs: u16) -> NodeState {
        NodeState {
            free_mem: 1 << 30,
            running_jobs: jobs,
            cpus,
            free_cpus: NodeState::free_cpus_for(cpus, jobs),
            ..NodeState::default()
        }
    }

    /// The update about `m` itself it gossips, if any.
    fn own_gossip(m: &Member) -> Option<Announce> {
        match m.gossip.get(&m.id()).map(|g| &g.update) {
            Some(Update::Alive(a)) => Some(a.clone()),
            _ => None,
        }
    }

    #[test]
    fn an_exclusive_job_takes_every_cpu_until_it_ends() {
        let mut n = member(1, Instant::ZERO);
        let at = Instant::from_millis;
        n.set_local_state(smp_state(4, 0));
        assert_eq!(n.local().state.free_cpus, 4);
        // Exclusive placement permitted, the job arrives: no CPU is free,
        // though the driver counts 3.
        assert_eq!(
            verdict_for(&mut n, at(10), 7, 1, Mode::Exclusive),
            Verdict::Permit
        );
        n.set_local_state(smp_state(4, 1));
        assert_eq!(n.local().state.free_cpus, 0);
        assert_eq!(n.local().state.cpus, 4);
        // So a balance job asking for two is denied, and one asking for one
        // still waits there (permitted) as on a one-CPU node.
        assert_eq!(
            verdict_for_cpus(&mut n, at(20), 8, 1, Mode::Balance, 2),
            Verdict::Deny(crate::DenyReason::NoFreeCpus)
        );
        assert_eq!(
            verdict_for_cpus(&mut n, at(30), 8, 2, Mode::Balance, 1),
            Verdict::Permit
        );
        // Still owned while it runs (state refreshed every second).
        n.set_local_state(smp_state(4, 1));
        assert_eq!(n.local().state.free_cpus, 0);
        // The job ends: every CPU is free again, and balance jobs now count
        // one CPU each.
        n.set_local_state(smp_state(4, 0));
        assert_eq!(n.local().state.free_cpus, 4);
        n.set_local_state(smp_state(4, 1));
        assert_eq!(n.local().state.free_cpus, 3, "a job without a hold");
        assert_eq!(
            verdict_for_cpus(&mut n, at(40), 9, 1, Mode::Balance, 3),
            Verdict::Permit
        );
        assert_eq!(
            verdict_for_cpus(&mut n, at(50), 9, 2, Mode::Balance, 5),
            Verdict::Deny(crate::DenyReason::TooFewCpus)
        );
    }

    #[test]
    fn free_cpus_are_published_when_they_change() {
        let mut n = member(1, Instant::ZERO);
        drain(&mut n);
        let seq = |n: &Member| announce_of(n).seq;
        let before = seq(&n);
        n.set_local_state(smp_state(2, 0));
        assert_eq!(seq(&n), before + 1, "cpus 0 -> 2 is published");
        let g = own_gossip(&n).expect("gossiped");
        assert_eq!((g.state.cpus, g.state.free_cpus), (2, 2));
        // The same state again publishes nothing; a job does.
        n.set_local_state(smp_state(2, 0));
        assert_eq!(seq(&n), before + 1);
        n.set_local_state(smp_state(2, 1));
        assert_eq!(seq(&n), before + 2);
        assert_eq!(own_gossip(&n).unwrap().state.free_cpus, 1);
        // Only the load changing publishes nothing.
        n.set_local_state(NodeState {
            cpu_load: 500,
            ..smp_state(2, 1)
        });
        assert_eq!(seq(&n), before + 2);
        // A driver's free count above the CPUs is clamped, so every
        // datagram stays valid.
        n.set_local_state(NodeState {
            free_cpus: 9,
            ..smp_state(2, 0)
        });
        assert_eq!(n.local().state.free_cpus, 2);
        assert!(Message::Join(announce_of(&n)).encode().is_ok());
    }

    #[test]
    fn candidates_with_free_cpus_are_asked_first() {
        // Three nodes with enough free CPUs and four without, in a view of
        // 7 (all drawn): a job asking for 2 CPUs asks the three.
        let mut a = member(1, Instant::ZERO);
        drain(&mut a);
        let states = [
            smp_state(4, 0),
            smp_state(1, 0),
            smp_state(2, 0),
            smp_state(4, 3),
            smp_state(8, 6),
            smp_state(2, 1),
            smp_state(1, 1),
        ];
        let mut others = Vec::new();
        for (i, st) in states.iter().enumerate() {
            let mut b = member(2 + i as u8, Instant::ZERO);
            b.set_local_state(*st);
            a.handle_message(
                Instant::from_millis(1),
                b.local().addr,
                &Message::Join(announce_of(&b)),
            );
            others.push(b);
        }
        drain(&mut a);
        let asked = |a: &mut Member| -> Vec<usize> {
            let mut v: Vec<usize> = drain(a)
                .iter()
                .filter_map(|t| match (Message::decode(&t.bytes), t.dest) {
                    (Ok(Message::TaskRequest { .. }), Dest::Unicast(addr)) => {
                        others.iter().position(|b| b.local().addr == addr)
                    }
                    _ => None,
                })
                .collect();
            v.sort_unstable();
            v
        };
        let job = |mode, cpus| JobSpec {
            program_size: 1,
            memory: 1,
            mode,
            cpus,
        };
        let k = Config::default().placement_candidates;
        assert_eq!(k, 3);
        a.start_placement(
            Instant::from_millis(2),
            job(Mode::Balance, 2),
            Weights::default(),
        );
        // 4 CPUs idle, 2 CPUs idle, 8 CPUs with 2 free.
        assert_eq!(asked(&mut a), [0, 2, 4]);
        // Exclusive: idle nodes first, those big enough before the others.
        a.start_placement(
            Instant::from_millis(3),
            job(Mode::Exclusive, 2),
            Weights::default(),
        );
        let ex = asked(&mut a);
        assert_eq!(ex.len(), 3);
        assert!(ex.contains(&0) && ex.contains(&2), "{ex:?}");
        assert!(
            ex.iter().all(|i| [0, 2, 3, 4, 5].contains(i)),
            "one-CPU nodes are asked last: {ex:?}"
        );
    }

    #[test]
    fn out_of_range_load_is_clamped() {
        let mut m = member(1, Instant::ZERO);
        drain(&mut m);
        m.set_local_state(NodeState {
            cpu_load: 1234,
            ..NodeState::default()
        });
        assert_eq!(m.local().state.cpu_load, MAX_CPU_LOAD);
        assert_eq!(m.stats().encode_errors, 0);
    }

    #[test]
    fn view_includes_self_in_id_order() {
        let mut m = member(5, Instant::ZERO);
        for last in [9u8, 1, 7, 3] {
            let o = member(last, Instant::ZERO);
            m.handle_message(
                Instant::ZERO,
                o.local().addr,
                &Message::Join(announce_of(&o)),
            );
        }
        let order: Vec<u8> = m.view().map(|i| i.id.to_mac()[5]).collect();
        assert_eq!(order, [1, 3, 5, 7, 9]);
        assert_eq!(m.view_len(), 5);
        assert_eq!(m.members.len(), 4);
        assert!(m.member(m.id()).is_some());
    }
}
