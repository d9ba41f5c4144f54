//! Deterministic network simulation for Companion Manager members: a fake clock, an
//! event queue, seeded random loss and delay, many [`Member`]s in one process.
//!
//! Shared by the integration tests (`tests/*.rs`) and `examples/simbench.rs` (included
//! there with `#[path]`). Everything is a function of the seed: the same seed gives
//! the same run.

#![allow(dead_code)]

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use sion_companion_mgr::{
    Addr, Config, Dest, Event, Instant, LocalNode, Member, Message, NodeId, NodeState, Role,
    SharedView,
};

/// UDP port every simulated member listens on.
pub const PORT: u16 = 7070;

/// The simulation's seeded random sequence (the `fastrand` crate's wyrand):
/// loss and delay draws, seeds of members.
#[derive(Clone, Debug)]
pub struct Rng(fastrand::Rng);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(fastrand::Rng::with_seed(seed))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.u64(..n)
    }

    /// True with probability `ppm / 1_000_000`.
    pub fn chance_ppm(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.below(1_000_000) < u64::from(ppm)
    }
}

/// Network behaviour.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// Probability that one delivery is lost, in parts per million (50_000 = 5 %).
    /// Each receiver of a broadcast draws independently.
    pub loss_ppm: u32,
    /// Shortest one-way delay.
    pub delay_min: Duration,
    /// Longest one-way delay (uniform between the two).
    pub delay_max: Duration,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            loss_ppm: 0,
            delay_min: Duration::from_micros(100),
            delay_max: Duration::from_micros(1000),
        }
    }
}

/// Sim-wide counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    /// Datagrams sent (a broadcast counts once).
    pub sent: u64,
    /// Deliveries made (a broadcast to N − 1 receivers counts N − 1).
    pub delivered: u64,
    /// Deliveries lost.
    pub lost: u64,
    /// Bytes of the deliveries made.
    pub delivered_bytes: u64,
}

enum Kind {
    Start,
    Wake,
    Deliver {
        from: u32,
        packet: Rc<Packet>,
    },
    /// A broadcast reaching every running node except the sender and the nodes with an
    /// extra delay (those get their own `Deliver`).
    DeliverAll {
        packet: Rc<Packet>,
    },
}

/// A datagram in flight: its bytes, and the message decoded once at sending time.
pub struct Packet {
    /// The encoded datagram.
    pub bytes: Vec<u8>,
    /// Its decoding.
    pub msg: Message,
}

struct Ev {
    at: Instant,
    seq: u64,
    node: u32,
    kind: Kind,
}

impl PartialEq for Ev {
    fn eq(&self, o: &Ev) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Ev {}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Ev) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ev {
    /// Reversed, so that the max-heap pops the earliest event first.
    fn cmp(&self, o: &Ev) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// One simulated machine.
pub struct Node {
    /// Its member, once started and until stopped.
    pub member: Option<Member>,
    /// Its address.
    pub addr: Addr,
    /// Extra one-way delay of every datagram to or from this node.
    pub extra_delay: Duration,
    /// While true, every datagram to or from this node is lost (a cut cable).
    pub isolated: bool,
    /// What it will start as.
    start: Option<(Config, LocalNode, u64)>,
    /// When it starts (or started last).
    pub start_at: Instant,
    /// The time of its pending wake-up event.
    wake: Instant,
    /// Events it reported, with their time (only if the sim records events).
    pub events: Vec<(Instant, Event)>,
}

/// The simulation.
pub struct Sim {
    /// Current simulated time.
    pub now: Instant,
    /// Every node ever added, by index.
    pub nodes: Vec<Node>,
    queue: BinaryHeap<Ev>,
    seq: u64,
    rng: Rng,
    /// Network behaviour; may be changed between runs.
    pub net: NetConfig,
    /// Counters.
    pub stats: NetStats,
    /// Keep every node's events in [`Node::events`].
    pub record_events: bool,
    /// Decode every delivery separately with `handle_datagram` (as a real driver
    /// does) instead of decoding each datagram once when it is sent and handing the
    /// decoded message to every receiver with `handle_message` (faster; the codec is
    /// tested on its own).
    pub decode_each_delivery: bool,
    /// Recently sent datagrams, decoded: members resend identical bytes (cached join
    /// replies), and decoding in a debug build costs microseconds.
    decoded: HashMap<Vec<u8>, Rc<Packet>>,
}

/// The address of node `i`: `10.x.y.z:7070` with `x.y.z` = `i + 1`.
pub fn addr_of(i: usize) -> Addr {
    let v = (i + 1) as u32;
    Addr::new([10, (v >> 16) as u8, (v >> 8) as u8, v as u8], PORT)
}

fn index_of(a: Addr) -> Option<usize> {
    let [_, x, y, z] = a.ip;
    let v = (u32::from(x) << 16) | (u32::from(y) << 8) | u32::from(z);
    (v as usize).checked_sub(1)
}

/// The node id of node `i`: MAC `02:00:00:xx:xx:xx` (locally administered).
pub fn id_of(i: usize) -> NodeId {
    let v = (i + 1) as u32;
    NodeId::from_mac([2, 0, 0, (v >> 16) as u8, (v >> 8) as u8, v as u8])
}

/// A plausible idle node state.
pub fn idle_state() -> NodeState {
    NodeState {
        cpu_load: 0,
        free_mem: 512 << 20,
        cpu_speed: 2000,
        running_jobs: 0,
        cpus: 1,
        free_cpus: 1,
    }
}

impl Sim {
    /// An empty simulation at time zero.
    pub fn new(net: NetConfig, seed: u64) -> Sim {
        Sim {
            now: Instant::ZERO,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: Rng::new(seed),
            net,
            stats: NetStats::default(),
            record_events: true,
            decode_each_delivery: false,
            decoded: HashMap::new(),
        }
    }

    /// Adds node `nodes.len()` with `role`, starting at `at`; returns its index.
    pub fn add_node(&mut self, at: Instant, cfg: Config, role: Role) -> usize {
        let i = self.nodes.len();
        let mut local = LocalNode::new(id_of(i), role, addr_of(i));
        local.state = idle_state();
        let seed = self.rng.next_u64();
        self.nodes.push(Node {
            member: None,
            addr: addr_of(i),
            extra_delay: Duration::ZERO,
            isolated: false,
            start: Some((cfg, local, seed)),
            start_at: at,
            wake: Instant::MAX,
            events: Vec::new(),
        });
        self.push(at, i, Kind::Start);
        i
    }

    /// Adds `n` nodes starting at uniform random times in `[from, from + spread)`.
    pub fn add_nodes(&mut self, n: usize, from: Instant, spread: Duration, cfg: Config) {
        let spread = spread.as_nanos() as u64;
        for _ in 0..n {
            let at = Instant::from_nanos(from.as_nanos() + self.rng.below(spread.max(1)));
            self.add_node(at, cfg, Role::Node);
        }
    }

    /// Adds `n` nodes that are running at `at` with complete views, as if they had
    /// joined and finished their view transfers: every member is made with
    /// [`Member::with_view`] from one [`SharedView`] of all `n` (their entries are
    /// shared until a member changes one). Their first probes fall at random
    /// phases within one period, as after a join. Only on an empty simulation.
    ///
    /// # Panics
    /// If nodes were added before.
    pub fn add_seeded_nodes(&mut self, n: usize, at: Instant, cfg: Config) {
        assert!(self.nodes.is_empty(), "seeded nodes come first");
        let starts: Vec<(LocalNode, u64)> = (0..n)
            .map(|i| {
                let mut local = LocalNode::new(id_of(i), Role::Node, addr_of(i));
                local.state = idle_state();
                (local, self.rng.next_u64())
            })
            .collect();
        // The same seed gives the same incarnation: read each member's entry from a
        // member made the ordinary way.
        let view = SharedView::new(
            starts
                .iter()
                .map(|(local, seed)| Member::new(cfg, local.clone(), at, *seed).local().clone()),
        );
        for (i, (local, seed)) in starts.into_iter().enumerate() {
            self.nodes.push(Node {
                member: Some(Member::with_view(cfg, local, at, seed, &view)),
                addr: addr_of(i),
                extra_delay: Duration::ZERO,
                isolated: false,
                start: None,
                start_at: at,
                wake: Instant::MAX,
                events: Vec::new(),
            });
            let now = self.now;
            self.now = at;
            self.flush(i);
            self.now = now;
        }
    }

    /// The running member of node `i`.
    ///
    /// # Panics
    /// If node `i` is not running.
    pub fn member(&self, i: usize) -> &Member {
        self.nodes[i].member.as_ref().expect("node running")
    }

    /// The running member of node `i`, mutably (drain its output with [`Sim::flush`]
    /// afterwards).
    pub fn member_mut(&mut self, i: usize) -> &mut Member {
        self.nodes[i].member.as_mut().expect("node running")
    }

    /// Is node `i` running?
    pub fn running(&self, i: usize) -> bool {
        self.nodes[i].member.is_some()
    }

    /// Crashes node `i` now: it stops sending and receiving without a word.
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].member = None;
        self.nodes[i].wake = Instant::MAX;
    }

    /// Restarts a crashed node `i` now, as a new incarnation with the same id and
    /// address.
    pub fn restart(&mut self, i: usize, cfg: Config) {
        self.stop(i);
        let mut local = LocalNode::new(id_of(i), Role::Node, addr_of(i));
        local.state = idle_state();
        let seed = self.rng.next_u64();
        self.nodes[i].start = Some((cfg, local, seed));
        self.nodes[i].start_at = self.now;
        let now = self.now;
        self.push(now, i, Kind::Start);
    }

    /// Makes node `i` leave gracefully now, then stops it.
    pub fn leave(&mut self, i: usize) {
        let now = self.now;
        self.member_mut(i).leave(now);
        self.flush(i);
        self.stop(i);
    }

    fn push(&mut self, at: Instant, node: usize, kind: Kind) {
        self.seq += 1;
        self.queue.push(Ev {
            at,
            seq: self.seq,
            node: node as u32,
            kind,
        });
    }

    fn delay(&mut self, from: usize, to: usize) -> Duration {
        let span = (self.net.delay_max - self.net.delay_min).as_nanos() as u64;
        let jitter = if span == 0 {
            0
        } else {
            self.rng.below(span + 1)
        };
        self.net.delay_min
            + Duration::from_nanos(jitter)
            + self.nodes[from].extra_delay
            + self.nodes[to].extra_delay
    }

    fn deliver_later(&mut self, from: usize, to: usize, packet: &Rc<Packet>) {
        if self.nodes[from].isolated
            || self.nodes[to].isolated
            || self.rng.chance_ppm(self.net.loss_ppm)
        {
            self.stats.lost += 1;
            return;
        }
        let at = self.now + self.delay(from, to);
        self.push(
            at,
            to,
            Kind::Deliver {
                from: from as u32,
                packet: Rc::clone(packet),
            },
        );
    }

    /// Sends everything node `i` has queued, records its events and reschedules its
    /// wake-up. Call after touching a member through [`Sim::member_mut`].
    pub fn flush(&mut self, i: usize) {
        let Some(m) = self.nodes[i].member.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(t) = m.poll_transmit() {
            out.push(t);
        }
        let mut evs = Vec::new();
        while let Some(e) = m.poll_event() {
            evs.push(e);
        }
        let at = m.poll_at();
        if self.record_events {
            let now = self.now;
            self.nodes[i]
                .events
                .extend(evs.into_iter().map(|e| (now, e)));
        }
        for t in out {
            self.stats.sent += 1;
            let packet = match t.dest {
                Dest::Broadcast => self.packet(t.bytes),
                // Probes are all different: decode without the cache.
                Dest::Unicast(_) => Rc::new(Packet {
                    msg: Message::decode(&t.bytes).expect("members send valid datagrams"),
                    bytes: t.bytes,
                }),
            };
            match t.dest {
                Dest::Broadcast => {
                    // One frame on the LAN: it reaches all receivers at the same
                    // instant (one random delay per broadcast); each receiver loses
                    // it independently when it arrives.
                    let at = self.now + self.delay(i, i);
                    self.push(
                        at,
                        i,
                        Kind::DeliverAll {
                            packet: Rc::clone(&packet),
                        },
                    );
                    for j in 0..self.nodes.len() {
                        if j != i
                            && self.nodes[j].member.is_some()
                            && self.nodes[j].extra_delay > Duration::ZERO
                        {
                            self.deliver_later(i, j, &packet);
                        }
                    }
                }
                Dest::Unicast(a) => {
                    if let Some(j) = index_of(a).filter(|&j| j < self.nodes.len()) {
                        self.deliver_later(i, j, &packet);
                    }
                }
            }
        }
        if at < self.nodes[i].wake {
            self.nodes[i].wake = at;
            if at != Instant::MAX {
                self.push(at.max(self.now), i, Kind::Wake);
            }
        }
    }

    /// Decodes a sent datagram (once per distinct content among recent ones).
    fn packet(&mut self, bytes: Vec<u8>) -> Rc<Packet> {
        if let Some(p) = self.decoded.get(&bytes) {
            return Rc::clone(p);
        }
        let msg = Message::decode(&bytes).expect("members send valid datagrams");
        let p = Rc::new(Packet {
            bytes: bytes.clone(),
            msg,
        });
        if self.decoded.len() >= 4096 {
            self.decoded.clear();
        }
        self.decoded.insert(bytes, Rc::clone(&p));
        p
    }

    /// Hands `packet` from `src` to node `i` and runs its due timers; false if the
    /// node is not running.
    fn receive(&mut self, i: usize, src: Addr, packet: &Packet) -> bool {
        let now = self.now;
        let decode = self.decode_each_delivery;
        let Some(m) = self.nodes[i].member.as_mut() else {
            return false;
        };
        self.stats.delivered += 1;
        self.stats.delivered_bytes += packet.bytes.len() as u64;
        if decode {
            m.handle_datagram(now, src, &packet.bytes)
                .expect("simulated datagrams are valid");
        } else {
            m.handle_message(now, src, &packet.msg);
        }
        if now >= m.poll_at() {
            m.poll(now);
        }
        true
    }

    /// Processes every event up to and including `until`, then sets the clock to it.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(ev) = self.queue.peek() {
            if ev.at > until {
                break;
            }
            let ev = self.queue.pop().expect("peeked");
            self.now = ev.at;
            let i = ev.node as usize;
            match ev.kind {
                Kind::Start => {
                    if let Some((cfg, local, seed)) = self.nodes[i].start.take() {
                        self.nodes[i].member = Some(Member::new(cfg, local, self.now, seed));
                        self.nodes[i].wake = Instant::MAX;
                    }
                }
                Kind::Wake => {
                    if self.nodes[i].wake != ev.at {
                        continue; // superseded
                    }
                    self.nodes[i].wake = Instant::MAX;
                    let now = self.now;
                    match self.nodes[i].member.as_mut() {
                        Some(m) => m.poll(now),
                        None => continue,
                    }
                }
                Kind::DeliverAll { packet } => {
                    // `i` is the sender here.
                    let src = self.nodes[i].addr;
                    if self.nodes[i].isolated {
                        self.stats.lost += self.running_nodes().len() as u64;
                        continue;
                    }
                    for j in 0..self.nodes.len() {
                        if j == i
                            || self.nodes[j].member.is_none()
                            || self.nodes[j].extra_delay > Duration::ZERO
                        {
                            continue;
                        }
                        if self.nodes[j].isolated || self.rng.chance_ppm(self.net.loss_ppm) {
                            self.stats.lost += 1;
                            continue;
                        }
                        self.receive(j, src, &packet);
                        self.flush(j);
                    }
                    continue;
                }
                Kind::Deliver { from, packet } => {
                    let src = self.nodes[from as usize].addr;
                    if !self.receive(i, src, &packet) {
                        continue;
                    }
                }
            }
            self.flush(i);
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs in steps of `step` until `done(self)` holds or `limit` passes; returns the
    /// time it first held, or `None`.
    pub fn run_until_true(
        &mut self,
        limit: Instant,
        step: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Instant> {
        loop {
            if done(self) {
                return Some(self.now);
            }
            if self.now >= limit {
                return None;
            }
            let next = (self.now + step).min(limit);
            self.run_until(next);
        }
    }

    /// Indices of the running nodes.
    pub fn running_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.running(i)).collect()
    }

    /// True if every running node's view holds exactly the running nodes.
    pub fn converged(&self) -> bool {
        let live = self.running_nodes();
        let n = live.len();
        let started_all = self.nodes.iter().all(|n| n.start.is_none());
        started_all
            && live.iter().all(|&i| {
                let m = self.member(i);
                m.view_len() == n && live.iter().all(|&j| m.member(id_of(j)).is_some())
            })
    }

    /// True if every node has started and every running node's view has `n` members
    /// (cheap convergence check; stopped nodes are skipped).
    pub fn all_views_have(&self, n: usize) -> bool {
        self.nodes.iter().all(|node| match &node.member {
            Some(m) => m.view_len() == n,
            None => node.start.is_none(),
        })
    }
}
