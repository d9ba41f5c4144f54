//! Simulation benchmark of the Companion Manager protocol: convergence time, message
//! rates and failure detection time for growing groups.
//!
//! `cargo run -p sion-companion-mgr --example simbench --release [-- SECONDS]`
//!
//! For N = 10, 100, 1000, 10000 members (as far as the wall-clock budget, 60 s by
//! default, allows) on a simulated LAN with 0.1–1 ms one-way delay and no loss:
//!
//! - *converge*: N members start at random times within 1 s (a mass boot); the time
//!   from the last start until every view holds all N members;
//! - *msgs/node/s*: datagrams sent and received per member per second in the steady
//!   state that follows (a broadcast counts once as sent, once per receiver as
//!   received);
//! - *detect*: up to 10 members crash at random times within one second; for every (observer, crashed)
//!   pair, the time from the crash until the observer declares it dead (median and
//!   maximum; the configured bound is `dead_after` = 5 s after the last heartbeat
//!   heard).

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::time::{Duration, Instant as Wall};

use sim::{NetConfig, Rng, Sim};
use sion_companion_mgr::{Config, Event, Instant};

struct Row {
    n: usize,
    converge: Duration,
    sent: f64,
    received: f64,
    detect_median: Duration,
    detect_max: Duration,
    samples: usize,
    wall: Duration,
}

fn totals(s: &Sim) -> (u64, u64) {
    s.running_nodes().iter().fold((0, 0), |(tx, rx), &i| {
        let st = s.member(i).stats();
        (tx + st.sent_broadcast + st.sent_unicast, rx + st.received)
    })
}

fn run(n: usize, seed: u64) -> Option<Row> {
    let wall = Wall::now();
    let cfg = Config::default();
    let mut s = Sim::new(NetConfig::default(), seed);
    s.record_events = false;
    s.add_nodes(n, Instant::ZERO, Duration::from_secs(1), cfg);
    // Each datagram is decoded once when sent and handed to every receiver: the codec
    // is not what is measured here.
    let last_start = s.nodes.iter().map(|node| node.start_at).max()?;
    let t = s.run_until_true(
        last_start + Duration::from_secs(30),
        Duration::from_millis(1),
        |s| s.all_views_have(n),
    )?;
    let converge = t.saturating_duration_since(last_start);

    // Steady state.
    let steady = if n <= 100 {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(2)
    };
    let (tx0, rx0) = totals(&s);
    s.run_for(steady);
    let (tx1, rx1) = totals(&s);
    let per = |v: u64| v as f64 / n as f64 / steady.as_secs_f64();
    let (sent, received) = (per(tx1 - tx0), per(rx1 - rx0));

    // Failure detection: up to 10 members crash at random times within one second.
    let victims = (n / 5).clamp(1, 10);
    let mut rng = Rng::new(seed ^ 0xdead);
    s.record_events = true;
    for node in &mut s.nodes {
        node.events.clear();
    }
    let t0 = s.now;
    let mut offsets: Vec<u64> = (0..victims).map(|_| rng.below(1_000_000_000)).collect();
    offsets.sort();
    let mut stops = Vec::new();
    for off in offsets {
        s.run_until(t0 + Duration::from_nanos(off));
        let mut v = rng.below(n as u64) as usize;
        while !s.running(v) {
            v = (v + 1) % n;
        }
        s.stop(v);
        stops.push((sim::id_of(v), s.now));
    }
    s.run_for(cfg.dead_after + Duration::from_secs(1));
    let mut times = Vec::new();
    for i in s.running_nodes() {
        for &(at, e) in &s.nodes[i].events {
            if let Event::Dead(id) = e
                && let Some(&(_, stop)) = stops.iter().find(|(v, _)| *v == id)
            {
                times.push(at.saturating_duration_since(stop));
            }
        }
    }
    times.sort();
    let expected = victims * (n - victims);
    assert_eq!(
        times.len(),
        expected,
        "every crash detected by every member"
    );
    Some(Row {
        n,
        converge,
        sent,
        received,
        detect_median: times[times.len() / 2],
        detect_max: *times.last()?,
        samples: times.len(),
        wall: wall.elapsed(),
    })
}

fn main() {
    let budget = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs);
    let start = Wall::now();
    if cfg!(debug_assertions) {
        println!("(debug build: run with --release for meaningful figures)");
    }
    println!(
        "{:>6}  {:>10}  {:>14}  {:>14}  {:>12}  {:>12}  {:>8}  {:>8}",
        "N",
        "converge",
        "sent/node/s",
        "recv/node/s",
        "detect med",
        "detect max",
        "samples",
        "wall"
    );
    let mut last: Option<(usize, Duration)> = None;
    for n in [10, 100, 1000, 10_000] {
        let left = budget.saturating_sub(start.elapsed());
        // The cost grows as N^2 (every member hears every heartbeat).
        if let Some((m, took)) = last {
            let estimate = took.mul_f64((n * n) as f64 / (m * m) as f64);
            if estimate > left {
                println!(
                    "{n:>6}  skipped: estimated {:.0} s of wall time, {:.0} s left of the budget",
                    estimate.as_secs_f64(),
                    left.as_secs_f64()
                );
                continue;
            }
        }
        match run(n, 0x5100 + n as u64) {
            Some(r) => {
                println!(
                    "{:>6}  {:>8.1}ms  {:>14.1}  {:>14.1}  {:>10.3}s  {:>10.3}s  {:>8}  {:>7.1}s",
                    r.n,
                    r.converge.as_secs_f64() * 1e3,
                    r.sent,
                    r.received,
                    r.detect_median.as_secs_f64(),
                    r.detect_max.as_secs_f64(),
                    r.samples,
                    r.wall.as_secs_f64()
                );
                last = Some((n, r.wall));
            }
            None => println!("{n:>6}  did not converge within 30 s"),
        }
    }
}
