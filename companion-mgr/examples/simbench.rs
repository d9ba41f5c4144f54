//! Simulation benchmark of the Companion Manager protocol at growing group sizes:
//! join convergence, message and byte rates, failure detection and false positives.
//!
//! `cargo run -p sion-companion-mgr --example simbench --release [-- N...]`
//! (default N = 10 100 1000 10000).
//!
//! For each N, on a simulated LAN with 0.1–1 ms one-way delay: below N = 5000, N
//! members boot at random times within max(1 s, N/1000 s) with no loss (every
//! join broadcast is heard by every member: N² deliveries), until every view holds
//! all N. From N = 5000 on the group starts seeded instead
//! (`Sim::add_seeded_nodes`): every member is a real `Member` made with
//! `Member::with_view` from one `SharedView` of all N, as if its join and view
//! transfer were over, and shares the view's entries until it changes one; all
//! that follows runs the library's ordinary code in every member (a mass boot of
//! 10,000 would cost 10⁸ join deliveries, and 10,000 unshared views about 8 GB).
//! After 30 s of settling, for loss 0 %, 5 % and 10 % in turn (each delivery lost
//! independently; broadcasts per receiver), it prints one line:
//!
//! `N=… converge_s=… detect_median_s=… detect_p99_s=… false_positives=… msgs_per_node_s=… bytes_per_node_s=… loss=…%`
//!
//! - `converge_s`: a newcomer starts; the time until it is in every view and every
//!   member is in its view (it then leaves again);
//! - `false_positives`: members declared dead while they were running, over 10
//!   simulated minutes of steady state;
//! - `msgs_per_node_s` / `bytes_per_node_s`: datagrams and bytes received per
//!   member per second over those 10 minutes (a broadcast counts once per
//!   receiver; sent figures are on the `#` line below);
//! - `detect_*`: N/5 members (at most 10) crash at random times within one
//!   second; for every (observer, crashed) pair, the time from the crash until the
//!   observer drops it (median and 99th percentile; pairs never detected within
//!   20 s are counted on the `#` line). The crashed members then restart and
//!   rejoin; below N = 50 this repeats until 10 members crashed in all.
//!
//! Lines starting with `#` give the boot, sent rates, suspicions, refutations,
//! local health and wall times; then, at the largest N, placement quality with
//! half the nodes busy.
//!
//! For experiments: `LOSSES=5,10` and `MINUTES=1` shorten the run, `NO_PLACEMENT`
//! skips the placement test, [`config`] lists the protocol settings the
//! environment can change, `DEBUG_DETECT`, `DEBUG_JOIN` and `DEBUG_FP` print
//! per-victim detection, join progress and every suspicion and death.

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::time::{Duration, Instant as Wall};

use sim::{NetConfig, Rng, Sim};
use sion_companion_mgr::{Config, Event, Instant, JobSpec, Mode, NodeState, Weights};

const MINUTES: u64 = 10;

/// The members' configuration: the default, or for experiments changed by the
/// environment (`PERIOD_MS`, `PROBE_TIMEOUT_MS`, `SUSPICION_MIN_MS`,
/// `SUSPICION_MAX_MS`, `INDIRECT`, `DIRECT_RETRY`, `MAX_HEALTH`).
fn config() -> Config {
    let mut c = Config::default();
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(v) = env("PERIOD_MS") {
        c.probe_interval = Duration::from_millis(v);
    }
    if let Some(v) = env("PROBE_TIMEOUT_MS") {
        c.probe_timeout = Duration::from_millis(v);
    }
    if let Some(v) = env("SUSPICION_MIN_MS") {
        c.suspicion_min = Duration::from_millis(v);
    }
    if let Some(v) = env("SUSPICION_MAX_MS") {
        c.suspicion_max = Duration::from_millis(v);
    }
    if let Some(v) = env("INDIRECT") {
        c.indirect_probes = v as u8;
    }
    if let Some(v) = env("DIRECT_RETRY") {
        c.direct_retry = v != 0;
    }
    if let Some(v) = env("MAX_HEALTH") {
        c.max_local_health = v as u8;
    }
    c
}

#[derive(Default, Clone, Copy)]
struct Totals {
    sent: u64,
    sent_bytes: u64,
    suspicions: u64,
    refutations: u64,
    declared_dead: u64,
    indirect: u64,
    probes: u64,
}

fn totals(s: &Sim) -> Totals {
    let mut t = Totals::default();
    for i in s.running_nodes() {
        let st = s.member(i).stats();
        t.sent += st.sent_broadcast + st.sent_unicast;
        t.sent_bytes += st.sent_bytes;
        t.suspicions += st.suspicions;
        t.refutations += st.refutations;
        t.declared_dead += st.declared_dead;
        t.indirect += st.indirect_probes;
        t.probes += st.probes;
    }
    t
}

/// From this size on the group starts seeded (see the module documentation).
const SEEDED_FROM: usize = 5000;

fn boot(n: usize, seed: u64) -> (Sim, Duration) {
    let cfg = config();
    let mut s = Sim::new(NetConfig::default(), seed);
    s.record_events = false;
    if n >= SEEDED_FROM {
        s.add_seeded_nodes(n, Instant::ZERO, cfg);
        return (s, Duration::ZERO);
    }
    let spread = Duration::from_millis((n as u64).max(1000));
    s.add_nodes(n, Instant::ZERO, spread, cfg);
    let last_start = s
        .nodes
        .iter()
        .map(|node| node.start_at)
        .max()
        .expect("nodes");
    let t = s
        .run_until_true(
            last_start + Duration::from_secs(60),
            Duration::from_millis(10),
            |s| s.all_views_have(n),
        )
        .expect("the group converges after booting");
    (s, t.saturating_duration_since(last_start))
}

/// A newcomer joins: time until every view (its own included) holds everyone.
fn join_newcomer(s: &mut Sim) -> Option<Duration> {
    let n = s.running_nodes().len() + 1;
    let start = s.now;
    let i = s.add_node(start, config(), sion_companion_mgr::Role::Node);
    let debug = std::env::var("DEBUG_JOIN").is_ok();
    let mut next_report = start;
    let t = s.run_until_true(
        start + Duration::from_secs(30),
        Duration::from_millis(10),
        |s| {
            if debug && s.now >= next_report && s.running(i) {
                next_report = s.now + Duration::from_millis(250);
                let id = sim::id_of(i);
                let lacking = s
                    .running_nodes()
                    .iter()
                    .filter(|&&j| !s.member(j).knows(id))
                    .count();
                eprintln!(
                    "# join +{:.2} s: newcomer knows {}/{n}, {lacking} members lack it",
                    s.now.saturating_duration_since(start).as_secs_f64(),
                    s.member(i).view_len()
                );
            }
            s.all_views_have(n)
        },
    );
    if t.is_none() {
        let mut hist = std::collections::BTreeMap::new();
        for j in s.running_nodes() {
            *hist.entry(s.member(j).view_len()).or_insert(0) += 1;
        }
        eprintln!(
            "# newcomer not in every view: want {n} hist {hist:?} newcomer {}",
            s.member(i).view_len()
        );
    }
    s.run_for(Duration::from_millis(100));
    s.leave(i);
    s.run_for(Duration::from_secs(1));
    t.map(|t| t.saturating_duration_since(start))
}

struct Detection {
    median: Duration,
    p99: Duration,
    samples: usize,
    missed: usize,
}

/// Crash rounds until 10 members were crashed in all (one round from N = 50 on):
/// detection times of every round together.
fn detect(s: &mut Sim, rng: &mut Rng) -> Detection {
    let (mut times, mut expected, mut crashed) = (Vec::new(), 0, 0);
    while crashed < 10 {
        let (t, e, v) = detect_round(s, rng);
        times.extend(t);
        expected += e;
        crashed += v;
    }
    times.sort();
    let samples = times.len();
    let pick = |q: f64| {
        times
            .get(((samples as f64 * q) as usize).min(samples.saturating_sub(1)))
            .copied()
            .unwrap_or(Duration::MAX)
    };
    Detection {
        median: pick(0.5),
        p99: pick(0.99),
        samples,
        missed: expected.saturating_sub(samples),
    }
}

/// One round: N/5 members (1 to 10) crash at random times within one second;
/// returns the detection times, the (observer, crashed) pairs expected and the
/// number crashed. The crashed members then restart.
fn detect_round(s: &mut Sim, rng: &mut Rng) -> (Vec<Duration>, usize, usize) {
    let victims = (s.running_nodes().len() / 5).clamp(1, 10);
    s.record_events = true;
    for node in &mut s.nodes {
        node.events.clear();
    }
    let t0 = s.now;
    let mut offsets: Vec<u64> = (0..victims).map(|_| rng.below(1_000_000_000)).collect();
    offsets.sort();
    let mut stops = Vec::new();
    let total = s.nodes.len();
    for off in offsets {
        s.run_until(t0 + Duration::from_nanos(off));
        let mut v = rng.below(total as u64) as usize;
        while !s.running(v) {
            v = (v + 1) % total;
        }
        s.stop(v);
        stops.push((v, sim::id_of(v), s.now));
    }
    s.run_for(Duration::from_secs(20));
    if std::env::var("DEBUG_DETECT").is_ok() {
        for &(v, id, stop) in &stops {
            let mut sus = Vec::new();
            let mut dead = Vec::new();
            for i in s.running_nodes() {
                for &(at, e) in &s.nodes[i].events {
                    let dt = at.saturating_duration_since(stop).as_secs_f64();
                    match e {
                        Event::Suspect(x) if x == id => sus.push(dt),
                        Event::Dead(x) if x == id => dead.push(dt),
                        _ => {}
                    }
                }
            }
            sus.sort_by(f64::total_cmp);
            dead.sort_by(f64::total_cmp);
            let q = |v: &[f64], f: f64| {
                v.get(((v.len() as f64 * f) as usize).min(v.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or(-1.0)
            };
            eprintln!(
                "# victim {v}: suspicions {} first {:.2} s; dead {} first {:.2} p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
                sus.len(),
                q(&sus, 0.0),
                dead.len(),
                q(&dead, 0.0),
                q(&dead, 0.5),
                q(&dead, 0.9),
                q(&dead, 0.99),
                q(&dead, 1.0)
            );
        }
    }
    let mut times = Vec::new();
    for i in s.running_nodes() {
        for &(at, e) in &s.nodes[i].events {
            if let Event::Dead(id) = e
                && let Some(&(_, _, stop)) = stops.iter().find(|(_, v, _)| *v == id)
            {
                times.push(at.saturating_duration_since(stop));
            }
        }
    }
    s.record_events = false;
    for node in &mut s.nodes {
        node.events = Vec::new();
    }
    let expected = victims * s.running_nodes().len();
    // The crashed members come back as new runs.
    let n = s.running_nodes().len() + victims;
    let stops_idx: Vec<usize> = stops.iter().map(|x| x.0).collect();
    for (v, _, _) in stops {
        s.restart(v, config());
    }
    let back = s.run_until_true(
        s.now + Duration::from_secs(60),
        Duration::from_millis(50),
        |s| s.all_views_have(n),
    );
    if back.is_none() {
        let mut missing = std::collections::BTreeMap::new();
        for i in s.running_nodes() {
            for j in s.running_nodes() {
                if !s.member(i).knows(sim::id_of(j)) {
                    *missing.entry(i).or_insert(0) += 1;
                }
            }
        }
        let restarted: Vec<usize> = stops_idx.clone();
        eprintln!("# restarted {restarted:?}");
        eprintln!("# after restarts, unknown members (index: views without it): {missing:?}");
    }
    (times, expected, victims)
}

/// Half the nodes run a job (and say so); placements from random members for
/// exclusive jobs: how often the best answer is an idle node, and how many were
/// asked.
fn placement_quality(s: &mut Sim, rng: &mut Rng) {
    let running = s.running_nodes();
    let busy = NodeState {
        running_jobs: 1,
        cpu_load: 1000,
        free_cpus: 0,
        ..sim::idle_state()
    };
    for (k, &i) in running.iter().enumerate() {
        if k % 2 == 0 {
            s.member_mut(i).set_local_state(busy);
            s.flush(i);
        }
    }
    // Let the changes spread by gossip.
    s.run_for(Duration::from_secs(10));
    let job = JobSpec {
        program_size: 1 << 20,
        memory: 16 << 20,
        mode: Mode::Exclusive,
        cpus: 1,
    };
    let tries = 200;
    let (mut idle_found, mut asked) = (0, 0);
    for _ in 0..tries {
        let r = running[rng.below(running.len() as u64) as usize];
        let now = s.now;
        let id = s
            .member_mut(r)
            .start_placement(now, job, Weights::default());
        s.flush(r);
        // Two rounds of at most 200 ms each.
        s.run_for(Duration::from_millis(500));
        let res = s
            .member(r)
            .placement_result(id)
            .expect("placement finished");
        asked += res.ranked.len() + res.denied.len() + res.unanswered.len();
        if res.best().is_some_and(|b| b.state.running_jobs == 0) {
            idle_found += 1;
        }
    }
    let k = config().placement_candidates;
    let rounds = config().placement_rounds;
    println!(
        "# placement N={}: half busy, k={k}, {rounds} rounds: an idle node chosen in {idle_found}/{tries} placements ({:.1} %), {:.2} asked on average; one round of random choices would find one in {:.1} %, {rounds} rounds in {:.1} %",
        running.len(),
        100.0 * f64::from(idle_found) / f64::from(tries),
        asked as f64 / f64::from(tries),
        100.0 * (1.0 - 0.5f64.powi(k as i32)),
        100.0 * (1.0 - 0.5f64.powi(k as i32 * i32::from(rounds)))
    );
}

fn main() {
    let ns: Vec<usize> = {
        let v: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if v.is_empty() {
            vec![10, 100, 1000, 10_000]
        } else {
            v
        }
    };
    if cfg!(debug_assertions) {
        println!("# (debug build: run with --release for meaningful figures)");
    }
    let last = *ns.last().expect("at least one N");
    for &n in &ns {
        let wall = Wall::now();
        let (mut s, booted) = boot(n, 0x5100 + n as u64);
        if n >= SEEDED_FROM {
            println!(
                "# N={n} boot: seeded, {n} members running with complete views from one shared view (wall {:.1} s)",
                wall.elapsed().as_secs_f64()
            );
        } else {
            println!(
                "# N={n} boot: {n} members started within {:.1} s, all views complete {:.3} s after the last start (wall {:.1} s)",
                (n as f64 / 1000.0).max(1.0),
                booted.as_secs_f64(),
                wall.elapsed().as_secs_f64()
            );
        }
        // The boot's own traffic (joins answered, view transfers, the gossip of
        // every join) dies down: news is dropped after 15 s.
        s.run_for(Duration::from_secs(30));
        let mut rng = Rng::new(0xdead ^ n as u64);
        let losses: Vec<u32> = std::env::var("LOSSES").map_or(vec![0, 5, 10], |l| {
            l.split(',').filter_map(|x| x.parse().ok()).collect()
        });
        for loss in losses {
            let wall = Wall::now();
            s.net.loss_ppm = loss * 10_000;
            let converge = join_newcomer(&mut s);
            let t0 = totals(&s);
            let (d0, b0) = (s.stats.delivered, s.stats.delivered_bytes);
            let secs = std::env::var("MINUTES")
                .ok()
                .and_then(|m| m.parse().ok())
                .unwrap_or(MINUTES)
                * 60;
            if std::env::var("DEBUG_FP").is_ok() {
                s.record_events = true;
            }
            s.run_for(Duration::from_secs(secs));
            if std::env::var("DEBUG_FP").is_ok() {
                for i in s.running_nodes() {
                    for &(at, e) in &s.nodes[i].events {
                        if matches!(e, Event::Dead(_) | Event::Suspect(_)) {
                            eprintln!("# {at} node {i} {e:?}");
                        }
                    }
                }
                s.record_events = false;
                for node in &mut s.nodes {
                    node.events = Vec::new();
                }
            }
            let t1 = totals(&s);
            let healths: Vec<u8> = s
                .running_nodes()
                .iter()
                .map(|&i| s.member(i).local_health())
                .collect();
            let health_mean =
                healths.iter().map(|&h| f64::from(h)).sum::<f64>() / healths.len() as f64;
            let health_max = healths.iter().copied().max().unwrap_or(0);
            let (d1, b1) = (s.stats.delivered, s.stats.delivered_bytes);
            let members = s.running_nodes().len() as f64;
            let per = |v: u64| v as f64 / members / secs as f64;
            let fp = t1.declared_dead - t0.declared_dead;
            let d = detect(&mut s, &mut rng);
            println!(
                "N={n} converge_s={} detect_median_s={:.3} detect_p99_s={:.3} false_positives={fp} msgs_per_node_s={:.2} bytes_per_node_s={:.0} loss={loss}%",
                converge.map_or("none".to_string(), |c| format!("{:.3}", c.as_secs_f64())),
                d.median.as_secs_f64(),
                d.p99.as_secs_f64(),
                per(d1 - d0),
                per(b1 - b0),
            );
            println!(
                "#   sent/node/s {:.2} ({:.0} B), indirect probes {:.2} %, suspicions {} refutations {} over {} min, local health at the end mean {health_mean:.2} max {health_max}; detection samples {} missed {}; wall {:.1} s",
                per(t1.sent - t0.sent),
                per(t1.sent_bytes - t0.sent_bytes),
                100.0 * (t1.indirect - t0.indirect) as f64 / (t1.probes - t0.probes).max(1) as f64,
                t1.suspicions - t0.suspicions,
                t1.refutations - t0.refutations,
                secs / 60,
                d.samples,
                d.missed,
                wall.elapsed().as_secs_f64()
            );
        }
        if n == last && std::env::var("NO_PLACEMENT").is_err() {
            s.net.loss_ppm = 50_000;
            placement_quality(&mut s, &mut rng);
        }
    }
}
