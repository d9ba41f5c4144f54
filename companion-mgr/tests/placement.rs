//! Placement end to end in the simulation: the requester asks the candidates, collects
//! permit/deny with their load, measures round trips and picks the node the weights
//! say is best (table-driven).

mod sim;

use std::time::Duration;

use sim::{NetConfig, Sim, id_of};
use sion_companion_mgr::{
    Config, DenyReason, Event, Instant, JobSpec, Mode, NodeId, NodeState, PlacementId, Ranking,
    Role, Weights,
};

const MIB: u64 = 1 << 20;
const ONE_WAY: Duration = Duration::from_micros(200);

/// One candidate node of a case.
#[derive(Clone, Copy)]
struct N {
    load: u16,
    mem_mib: u64,
    speed: u32,
    jobs: u16,
    /// Processors.
    cpus: u8,
    /// Extra one-way delay, microseconds.
    lag_us: u64,
    role: Role,
}

const fn node(load: u16, mem_mib: u64, speed: u32) -> N {
    N {
        load,
        mem_mib,
        speed,
        jobs: 0,
        cpus: 1,
        lag_us: 0,
        role: Role::Node,
    }
}

impl N {
    const fn jobs(mut self, jobs: u16) -> N {
        self.jobs = jobs;
        self
    }
    const fn cpus(mut self, cpus: u8) -> N {
        self.cpus = cpus;
        self
    }
    /// Free CPUs as the node reports them: one per job taken.
    const fn free(&self) -> u8 {
        NodeState::free_cpus_for(self.cpus, self.jobs)
    }
    const fn lag(mut self, us: u64) -> N {
        self.lag_us = us;
        self
    }
    const fn host(mut self) -> N {
        self.role = Role::Host;
        self
    }
    fn state(&self) -> NodeState {
        NodeState {
            cpu_load: self.load,
            free_mem: self.mem_mib * MIB,
            cpu_speed: self.speed,
            running_jobs: self.jobs,
            cpus: self.cpus,
            free_cpus: self.free(),
        }
    }
}

const fn w(cpu_load: u16, free_mem: u16, cpu_speed: u16, network: u16) -> Weights {
    Weights {
        cpu_load,
        free_mem,
        cpu_speed,
        network,
    }
}

const fn job(mem_mib: u64, mode: Mode) -> JobSpec {
    job_cpus(mem_mib, mode, 1)
}

const fn job_cpus(mem_mib: u64, mode: Mode, cpus: u8) -> JobSpec {
    JobSpec {
        program_size: MIB,
        memory: mem_mib * MIB,
        mode,
        cpus,
    }
}

/// Builds a group of a host (index 0, the requester) and `nodes` (indices 1..),
/// lets it converge, then runs one placement and returns its ranking.
/// Also returns how many unicasts each member sent during the placement.
fn place(nodes: &[N], job: JobSpec, weights: Weights) -> (Sim, Ranking, Vec<u64>) {
    place_k(nodes, job, weights, 16)
}

/// [`place`] with `k` candidates asked.
fn place_k(nodes: &[N], job: JobSpec, weights: Weights, k: usize) -> (Sim, Ranking, Vec<u64>) {
    let net = NetConfig {
        loss_ppm: 0,
        delay_min: ONE_WAY,
        delay_max: ONE_WAY,
    };
    let cfg = Config {
        placement_candidates: k,
        ..Config::default()
    };
    let mut s = Sim::new(net, 42);
    let host = s.add_node(Instant::ZERO, cfg, Role::Host);
    assert_eq!(host, 0);
    for n in nodes {
        let i = s.add_node(Instant::from_millis(10), cfg, n.role);
        s.nodes[i].extra_delay = Duration::from_micros(n.lag_us);
    }
    s.run_for(Duration::from_millis(100));
    for (k, n) in nodes.iter().enumerate() {
        s.member_mut(k + 1).set_local_state(n.state());
    }
    // Let the new states travel by gossip (they matter only for picking k).
    s.run_for(Duration::from_millis(1500));
    assert!(s.converged());
    let before: Vec<u64> = (0..s.nodes.len())
        .map(|i| s.member(i).stats().sent_unicast)
        .collect();
    let now = s.now;
    let id = s.member_mut(0).start_placement(now, job, weights);
    s.flush(0);
    let done = s
        .run_until_true(
            now + Duration::from_secs(1),
            Duration::from_millis(1),
            |s| s.member(0).placement_result(id).is_some(),
        )
        .expect("placement finishes");
    assert!(done <= now + Config::default().placement_timeout);
    assert!(
        s.nodes[0]
            .events
            .iter()
            .any(|(_, e)| *e == Event::PlacementDone(id))
    );
    let r = s.member_mut(0).take_placement_result(id).unwrap();
    let sent = (0..s.nodes.len())
        .map(|i| s.member(i).stats().sent_unicast - before[i])
        .collect();
    (s, r, sent)
}

/// Node index (1-based as in the case table) of a node id.
fn idx(id: NodeId) -> usize {
    (1..10_000).find(|&i| id_of(i) == id).unwrap()
}

struct Case {
    name: &'static str,
    nodes: &'static [N],
    job: JobSpec,
    weights: Weights,
    /// Expected ranking, best first, as node indices (1-based).
    order: &'static [usize],
    /// Expected denials.
    denied: &'static [(usize, DenyReason)],
}

const IDLE: N = node(0, 512, 2000);

const CASES: &[Case] = &[
    Case {
        name: "cpu load only: the least loaded wins",
        nodes: &[
            node(500, 512, 2000),
            node(100, 512, 2000),
            node(900, 512, 2000),
        ],
        job: job(64, Mode::Exclusive),
        weights: w(1, 0, 0, 0),
        order: &[2, 1, 3],
        denied: &[],
    },
    Case {
        name: "free memory only: the most free memory wins",
        nodes: &[node(0, 256, 2000), node(0, 1024, 2000), node(0, 512, 2000)],
        job: job(64, Mode::Exclusive),
        weights: w(0, 1, 0, 0),
        order: &[2, 3, 1],
        denied: &[],
    },
    Case {
        name: "cpu speed only: the fastest wins",
        nodes: &[node(0, 512, 3000), node(0, 512, 1000), node(0, 512, 2000)],
        job: job(64, Mode::Exclusive),
        weights: w(0, 0, 1, 0),
        order: &[1, 3, 2],
        denied: &[],
    },
    Case {
        name: "network only: the shortest round trip wins",
        nodes: &[IDLE.lag(3000), IDLE, IDLE.lag(1000)],
        job: job(64, Mode::Exclusive),
        weights: w(0, 0, 0, 1),
        order: &[2, 3, 1],
        denied: &[],
    },
    Case {
        // Default weights 4/2/3/1. Node 1: 4*1000 + 2*250 + 3*333 + 1000 = 6499;
        // node 2: 4*500 + 2*1000 + 3*1000 + 1000 = 8000; node 3: 4*900 + 2*500 +
        // 3*666 + 1000 = 7598.
        name: "default weights: the weighted sum decides",
        nodes: &[
            node(0, 256, 1000),
            node(500, 1024, 3000),
            node(100, 512, 2000),
        ],
        job: job(64, Mode::Exclusive),
        weights: Weights {
            cpu_load: 4,
            free_mem: 2,
            cpu_speed: 3,
            network: 1,
        },
        order: &[2, 3, 1],
        denied: &[],
    },
    Case {
        name: "cpu-heavy weights prefer the idle slow node",
        nodes: &[node(0, 256, 1000), node(500, 1024, 3000)],
        job: job(64, Mode::Exclusive),
        weights: w(10, 1, 1, 0),
        order: &[1, 2],
        denied: &[],
    },
    Case {
        name: "exclusive: the busy best node denies",
        nodes: &[node(0, 2048, 4000).jobs(1), IDLE, node(0, 512, 1000)],
        job: job(64, Mode::Exclusive),
        weights: w(4, 2, 3, 1),
        order: &[2, 3],
        denied: &[(1, DenyReason::Busy)],
    },
    Case {
        // Node 1 has no free CPU, so its CPU part is 0: 0 + 2*1000 + 3*1000 +
        // 1000 = 6000; node 2: 4000 + 500 + 1500 + 1000 = 7000; node 3: 6250.
        name: "balance: a busy node still permits, behind the nodes with a free CPU",
        nodes: &[node(0, 2048, 4000).jobs(1), IDLE, node(0, 512, 1000)],
        job: job(64, Mode::Balance),
        weights: w(4, 2, 3, 1),
        order: &[2, 3, 1],
        denied: &[],
    },
    Case {
        name: "balance: a 2-CPU node with one job has a CPU free, a busy 1-CPU node none",
        nodes: &[IDLE.jobs(1), node(500, 512, 2000).cpus(2).jobs(1)],
        job: job(64, Mode::Balance),
        weights: w(4, 2, 3, 1),
        order: &[2, 1],
        denied: &[],
    },
    Case {
        name: "more free CPUs score higher",
        nodes: &[IDLE, IDLE.cpus(4), IDLE.cpus(2), IDLE.cpus(8).jobs(5)],
        job: job(64, Mode::Balance),
        weights: w(1, 0, 0, 0),
        order: &[2, 4, 3, 1],
        denied: &[],
    },
    Case {
        name: "balance, 2 CPUs asked: too small and too busy nodes deny",
        nodes: &[
            IDLE,
            IDLE.cpus(4).jobs(3),
            IDLE.cpus(2),
            IDLE.cpus(4).jobs(2),
        ],
        job: job_cpus(64, Mode::Balance, 2),
        weights: w(4, 2, 3, 1),
        order: &[3, 4],
        denied: &[(1, DenyReason::TooFewCpus), (2, DenyReason::NoFreeCpus)],
    },
    Case {
        name: "exclusive, 4 CPUs asked: an idle node big enough, whatever its free CPUs elsewhere",
        nodes: &[IDLE.cpus(2), IDLE.cpus(4), IDLE.cpus(8).jobs(1)],
        job: job_cpus(64, Mode::Exclusive, 4),
        weights: w(4, 2, 3, 1),
        order: &[2],
        denied: &[(1, DenyReason::TooFewCpus), (3, DenyReason::Busy)],
    },
    Case {
        name: "not enough memory denies",
        nodes: &[node(0, 100, 4000), IDLE],
        job: job(200, Mode::Balance),
        weights: w(4, 2, 3, 1),
        order: &[2],
        denied: &[(1, DenyReason::NotEnoughMemory)],
    },
    Case {
        name: "hosts are never asked",
        nodes: &[node(0, 8192, 9000).host(), node(300, 512, 1000)],
        job: job(64, Mode::Balance),
        weights: w(4, 2, 3, 1),
        order: &[2],
        denied: &[],
    },
    Case {
        name: "ties go to fewer running jobs, then the lowest id",
        nodes: &[IDLE.jobs(2), IDLE.jobs(1), IDLE.jobs(1), IDLE],
        job: job(64, Mode::Balance),
        weights: w(0, 1, 1, 0),
        order: &[4, 2, 3, 1],
        denied: &[],
    },
    Case {
        name: "zero weights: every score is 0, ties decide",
        nodes: &[node(900, 64, 100), IDLE, IDLE.jobs(1)],
        job: job(1, Mode::Balance),
        weights: w(0, 0, 0, 0),
        order: &[1, 2, 3],
        denied: &[],
    },
];

#[test]
fn placement_picks_what_the_weights_say() {
    for c in CASES {
        let (_, r, _) = place(c.nodes, c.job, c.weights);
        let order: Vec<usize> = r.ranked.iter().map(|x| idx(x.node)).collect();
        assert_eq!(order, c.order, "{}: {r:#?}", c.name);
        let denied: Vec<(usize, DenyReason)> =
            r.denied.iter().map(|d| (idx(d.node), d.reason)).collect();
        assert_eq!(denied, c.denied, "{}", c.name);
        assert!(r.unanswered.is_empty(), "{}", c.name);
        assert_eq!(r.job, c.job);
        assert_eq!(r.weights, c.weights);
        for x in &r.ranked {
            // Each score is the weighted sum of its parts, and the parts are those
            // of the state the candidate reported.
            assert_eq!(x.score, x.parts.score(&c.weights), "{}", c.name);
            let n = &c.nodes[idx(x.node) - 1];
            assert_eq!(x.state, n.state(), "{}", c.name);
            // The idle permille, scaled by free CPUs relative to the
            // permitting candidate with the most.
            let max_free = r.ranked.iter().map(|y| y.state.free_cpus).max().unwrap();
            let cpu = if max_free == 0 {
                1000 - n.load
            } else {
                ((1000 - u32::from(n.load)) * u32::from(n.free()) / u32::from(max_free)) as u16
            };
            assert_eq!(x.parts.cpu_load, cpu, "{}", c.name);
            // Round trip: both ways through the base delay and the node's lag.
            let rtt = 2 * (ONE_WAY + Duration::from_micros(n.lag_us));
            assert_eq!(x.rtt, rtt, "{}", c.name);
        }
        assert!(r.best().is_none() == c.order.is_empty());
    }
}

#[test]
fn k_random_candidates_are_asked() {
    // 12 nodes, k = 3 (the default): three distinct nodes are asked, one task
    // request each, and they differ from placement to placement. Each
    // placement only looks: it releases every reservation it made, as
    // `hostd place` does.
    assert_eq!(Config::default().placement_candidates, 3);
    let nodes: Vec<N> = (1..=12u16).map(|i| node(50 * i, 512, 2000)).collect();
    let (mut s, r, _) = place_k(&nodes, job(64, Mode::Exclusive), w(1, 0, 0, 0), 3);
    assert_eq!(r.ranked.len(), 3);
    assert!(r.denied.is_empty() && r.unanswered.is_empty());
    s.member_mut(0).release_unchosen(&r, None);
    s.flush(0);
    s.run_for(Duration::from_millis(50));
    let mut asked = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let now = s.now;
        let id = s
            .member_mut(0)
            .start_placement(now, job(64, Mode::Exclusive), w(1, 0, 0, 0));
        s.flush(0);
        s.run_for(Duration::from_millis(300));
        let r = s.member(0).placement_result(id).unwrap().clone();
        let picked: Vec<usize> = r.ranked.iter().map(|x| idx(x.node)).collect();
        assert_eq!(picked.len(), 3, "{r:?}");
        asked.extend(picked);
        s.member_mut(0).release_unchosen(&r, None);
        s.flush(0);
        s.run_for(Duration::from_millis(50));
    }
    assert!(asked.len() > 6, "random choices: {asked:?}");
}

#[test]
fn exclusive_asks_nodes_known_to_be_idle() {
    // 10 nodes, 7 busy (their running jobs were gossiped): the 3 asked are the idle.
    let mut nodes: Vec<N> = (1..=10u16).map(|i| node(50 * i, 512, 2000)).collect();
    for n in nodes.iter_mut().take(7) {
        n.jobs = 1;
    }
    let (_, r, _) = place_k(&nodes, job(64, Mode::Exclusive), w(1, 0, 0, 0), 3);
    let order: Vec<usize> = r.ranked.iter().map(|x| idx(x.node)).collect();
    assert_eq!(order, [8, 9, 10]);
    assert!(r.denied.is_empty());
}

#[test]
fn a_silent_candidate_is_reported_unanswered_after_the_timeout() {
    let net = NetConfig {
        loss_ppm: 0,
        delay_min: ONE_WAY,
        delay_max: ONE_WAY,
    };
    let mut s = Sim::new(net, 7);
    let cfg = Config {
        placement_candidates: 4,
        ..Config::default()
    };
    s.add_node(Instant::ZERO, cfg, Role::Host);
    for _ in 0..4 {
        s.add_node(Instant::ZERO, cfg, Role::Node);
    }
    s.run_for(Duration::from_secs(2));
    // Node 3 crashes; the requester still believes it alive.
    s.stop(3);
    let before = s.member(0).stats().sent_unicast;
    let now = s.now;
    let id = s
        .member_mut(0)
        .start_placement(now, job(64, Mode::Exclusive), Weights::default());
    s.flush(0);
    s.run_for(Duration::from_millis(199));
    assert!(s.member(0).placement_pending(id));
    s.run_for(Duration::from_millis(2));
    let r = s
        .member(0)
        .placement_result(id)
        .expect("finished at the timeout");
    assert_eq!(r.unanswered, [id_of(3)]);
    assert_eq!(r.ranked.len(), 3);
    // The requests (4, and one retransmission to the silent node at half the
    // timeout) besides the probes of the period.
    assert!(s.member(0).stats().sent_unicast - before > 4);
}

#[test]
fn lost_requests_are_retransmitted() {
    let net = NetConfig {
        loss_ppm: 0,
        delay_min: ONE_WAY,
        delay_max: ONE_WAY,
    };
    let mut s = Sim::new(net, 8);
    s.add_node(Instant::ZERO, Config::default(), Role::Host);
    for _ in 0..3 {
        s.add_node(Instant::ZERO, Config::default(), Role::Node);
    }
    s.run_for(Duration::from_secs(2));
    // Cut node 2 off for 50 ms: it misses the first request, gets the retry.
    s.nodes[2].isolated = true;
    let now = s.now;
    let id = s
        .member_mut(0)
        .start_placement(now, job(64, Mode::Exclusive), Weights::default());
    s.flush(0);
    s.run_for(Duration::from_millis(50));
    s.nodes[2].isolated = false;
    s.run_for(Duration::from_millis(200));
    let r = s.member(0).placement_result(id).unwrap();
    assert!(r.unanswered.is_empty());
    assert_eq!(r.ranked.len(), 3);
    let retried = r.ranked.iter().find(|x| x.node == id_of(2)).unwrap();
    // Round trip measured from the retransmission, not from the first request.
    assert_eq!(retried.rtt, 2 * ONE_WAY);
}

#[test]
fn no_candidates_finishes_at_once() {
    let mut s = Sim::new(NetConfig::default(), 9);
    s.add_node(Instant::ZERO, Config::default(), Role::Host);
    s.add_node(Instant::ZERO, Config::default(), Role::Host);
    s.run_for(Duration::from_secs(2));
    let now = s.now;
    let id = s
        .member_mut(0)
        .start_placement(now, job(1, Mode::Balance), Weights::default());
    let r = s.member(0).placement_result(id).expect("finished");
    assert!(r.ranked.is_empty() && r.denied.is_empty() && r.unanswered.is_empty());
    assert_eq!(s.member_mut(0).poll_event(), Some(Event::PlacementDone(id)));
}

#[test]
fn a_node_requester_does_not_ask_itself_and_results_are_bounded() {
    let mut s = Sim::new(NetConfig::default(), 10);
    for _ in 0..3 {
        s.add_node(Instant::ZERO, Config::default(), Role::Node);
    }
    s.run_for(Duration::from_secs(2));
    let mut ids: Vec<PlacementId> = Vec::new();
    for _ in 0..70 {
        let now = s.now;
        ids.push(
            s.member_mut(0)
                .start_placement(now, job(1, Mode::Balance), Weights::default()),
        );
        s.flush(0);
        s.run_for(Duration::from_millis(5));
    }
    let r = s.member(0).placement_result(ids[69]).unwrap();
    let asked: Vec<NodeId> = r.ranked.iter().map(|x| x.node).collect();
    assert_eq!(asked.len(), 2);
    assert!(!asked.contains(&id_of(0)));
    // Only the last `finished_placements` (64) results are kept.
    assert!(s.member(0).placement_result(ids[5]).is_none());
    assert!(s.member(0).placement_result(ids[6]).is_some());
}

#[test]
fn leaving_and_not_accepting_nodes_deny() {
    let net = NetConfig {
        loss_ppm: 0,
        delay_min: ONE_WAY,
        delay_max: ONE_WAY,
    };
    let mut s = Sim::new(net, 11);
    s.add_node(Instant::ZERO, Config::default(), Role::Host);
    for _ in 0..3 {
        s.add_node(Instant::ZERO, Config::default(), Role::Node);
    }
    s.run_for(Duration::from_secs(2));
    s.member_mut(1).set_accepting(false);
    let now = s.now;
    let id = s
        .member_mut(0)
        .start_placement(now, job(1, Mode::Balance), Weights::default());
    s.flush(0);
    // Node 2 leaves while the request is in flight: its leave arrives after the
    // request, so it still answers, with a denial.
    s.run_for(Duration::from_micros(100));
    let now = s.now;
    s.member_mut(2).leave(now);
    s.flush(2);
    s.run_for(Duration::from_millis(300));
    let r = s.member(0).placement_result(id).unwrap();
    let denied: Vec<(usize, DenyReason)> =
        r.denied.iter().map(|d| (idx(d.node), d.reason)).collect();
    assert_eq!(
        denied,
        [(1, DenyReason::NotAccepting), (2, DenyReason::ShuttingDown)]
    );
    assert_eq!(r.best().map(|b| idx(b.node)), Some(3));
}
