//! Membership and liveness at scale, in the deterministic simulation.

mod sim;

use std::time::Duration;

use sim::{NetConfig, Sim, id_of};
use sion_companion_mgr::{Config, Event, Instant, NodeId, Role, Status};

const MS: Duration = Duration::from_millis(1);

fn events_of(s: &Sim, i: usize) -> &[(Instant, Event)] {
    &s.nodes[i].events
}

/// Starts `n` nodes at random times within the first second and checks that every
/// view holds the full group one join round trip after the last start.
fn converge(n: usize, seed: u64) -> Sim {
    let mut s = Sim::new(NetConfig::default(), seed);
    s.record_events = n <= 100;
    s.add_nodes(n, Instant::ZERO, Duration::from_secs(1), Config::default());
    let t = s.run_until_true(Instant::from_secs(10), 10 * MS, |s| s.all_views_have(n));
    let t = t.unwrap_or_else(|| {
        let short = s
            .running_nodes()
            .iter()
            .filter(|&&i| s.member(i).view_len() != n)
            .count();
        panic!("N={n}: {short} views incomplete after 10 s")
    });
    // Every start is before 1 s; the last node learns the group from the join
    // replies, the others learn it from its join: one round trip (<= 2 ms) later.
    assert!(
        t <= Instant::from_millis(1010),
        "N={n}: converged only at {t}"
    );
    assert!(s.converged(), "N={n}: views hold the wrong members");
    println!("N={n}: converged at {t}, {:?}", s.stats);
    s
}

#[test]
fn three_nodes_converge() {
    let s = converge(3, 1);
    for i in 0..3 {
        let ids: Vec<NodeId> = s.member(i).view().map(|m| m.id).collect();
        assert_eq!(ids, [id_of(0), id_of(1), id_of(2)]);
        assert!(s.member(i).view().all(|m| m.status == Status::Alive));
    }
}

#[test]
fn fifty_nodes_converge() {
    let mut s = converge(50, 2);
    // Nothing changes afterwards: no member is suspected on a lossless network.
    s.run_for(Duration::from_secs(20));
    assert!(s.converged());
    for i in 0..50 {
        assert!(
            events_of(&s, i)
                .iter()
                .all(|(_, e)| matches!(e, Event::Joined(_))),
            "node {i}: {:?}",
            events_of(&s, i)
        );
        assert_eq!(events_of(&s, i).len(), 49);
    }
}

#[test]
fn thousand_nodes_converge_and_a_newcomer_learns_them_in_one_round_trip() {
    let mut s = converge(1000, 3);
    let new = s.add_node(s.now, Config::default(), Role::Node);
    let start = s.now;
    // One round trip: join out (<= 1 ms), replies back (<= 1 ms).
    s.run_until(start + 2 * MS + Duration::from_micros(10));
    assert_eq!(s.member(new).view_len(), 1001);
    assert!(s.all_views_have(1001));
}

#[test]
fn newcomer_learns_the_group_despite_loss() {
    let mut s = Sim::new(
        NetConfig {
            loss_ppm: 100_000,
            ..NetConfig::default()
        },
        4,
    );
    // This run goes through `handle_datagram` and the decoder for every delivery.
    s.decode_each_delivery = true;
    s.add_nodes(40, Instant::ZERO, Duration::from_secs(1), Config::default());
    s.run_for(Duration::from_secs(5));
    assert!(s.converged());
    let new = s.add_node(s.now, Config::default(), Role::Node);
    s.run_for(10 * MS);
    // 10 % loss: the view transfer's lost chunks are asked for again.
    assert!(
        s.member(new).view_len() >= 37,
        "{}",
        s.member(new).view_len()
    );
    s.run_for(Duration::from_millis(1500));
    assert!(s.converged());
}

#[test]
fn a_stopped_node_is_declared_dead_by_everyone() {
    let cfg = Config::default();
    let mut s = converge(50, 5);
    s.run_for(Duration::from_secs(10));
    let victim = 17;
    let stop_at = s.now;
    s.stop(victim);
    s.run_for(Duration::from_secs(10));
    let mut suspecters = 0;
    let mut first_dead = Instant::MAX;
    for i in s.running_nodes() {
        assert!(!s.member(i).knows(id_of(victim)), "node {i} still has it");
        let evs: Vec<_> = events_of(&s, i)
            .iter()
            .filter(|(t, _)| *t >= stop_at)
            .collect();
        // Its suspecters saw it suspect first; everyone else learns the death from
        // the suspecter's broadcast.
        match evs.as_slice() {
            [(_, Event::Suspect(a)), (t, Event::Dead(b))] if *a == id_of(victim) => {
                assert_eq!(*b, id_of(victim));
                suspecters += 1;
                first_dead = first_dead.min(*t);
            }
            [(t, Event::Dead(b))] => {
                assert_eq!(*b, id_of(victim));
                first_dead = first_dead.min(*t);
            }
            other => panic!("node {i}: {other:?}"),
        }
    }
    assert!(suspecters >= 1);
    // No death before a whole suspicion.
    assert!(first_dead >= stop_at + cfg.suspicion_min);
    // It stays out.
    s.run_for(Duration::from_secs(40));
    assert!(s.converged());
}

#[test]
fn a_leaving_node_is_dropped_at_once() {
    let mut s = converge(20, 6);
    s.run_for(Duration::from_secs(3));
    let at = s.now;
    s.leave(4);
    s.run_for(2 * MS);
    for i in s.running_nodes() {
        assert!(s.member(i).member(id_of(4)).is_none());
        assert!(
            events_of(&s, i)
                .iter()
                .any(|(t, e)| *t >= at && *e == Event::Left(id_of(4)))
        );
    }
    // Late datagrams of the leaver never bring it back.
    s.run_for(Duration::from_secs(10));
    assert!(s.converged());
}

#[test]
fn a_suspect_that_answers_again_is_restored_not_dead() {
    let mut s = converge(10, 7);
    s.run_for(Duration::from_secs(2));
    // Cut node 3 off for 1.2 s: the members that probe it meanwhile suspect it,
    // and it answers their next probes before any suspicion (2 s) runs out.
    let at = s.now;
    s.nodes[3].isolated = true;
    s.run_for(Duration::from_millis(1200));
    s.nodes[3].isolated = false;
    s.run_for(Duration::from_secs(3));
    assert!(s.converged());
    let mut restored = 0;
    for i in s.running_nodes().into_iter().filter(|&i| i != 3) {
        let evs: Vec<Event> = events_of(&s, i)
            .iter()
            .filter(|(t, e)| *t >= at && !matches!(e, Event::Joined(_)))
            .map(|(_, e)| *e)
            .filter(|e| matches!(e, Event::Suspect(x) | Event::Restored(x) | Event::Dead(x) if *x == id_of(3)))
            .collect();
        match evs.as_slice() {
            [] => {}
            [Event::Suspect(_), Event::Restored(_)] => restored += 1,
            other => panic!("node {i}: {other:?}"),
        }
    }
    assert!(restored >= 1, "nobody probed node 3 while it was cut off");
}

#[test]
fn a_restarted_node_is_seen_as_restarted() {
    let mut s = converge(10, 8);
    s.run_for(Duration::from_secs(2));
    let at = s.now;
    s.stop(5);
    s.run_for(Duration::from_millis(500));
    s.restart(5, Config::default());
    s.run_for(Duration::from_secs(3));
    assert!(s.converged());
    for i in s.running_nodes().into_iter().filter(|&i| i != 5) {
        let evs: Vec<Event> = events_of(&s, i)
            .iter()
            .filter(|(t, _)| *t >= at)
            .map(|(_, e)| *e)
            .collect();
        // Restarted (perhaps suspected around it, while it was down); never dead:
        // the new run answered within the suspicion.
        assert!(
            evs.contains(&Event::Restarted(id_of(5))),
            "node {i}: {evs:?}"
        );
        assert!(!evs.contains(&Event::Dead(id_of(5))), "node {i}: {evs:?}");
    }
}

#[test]
fn no_false_positives_with_five_percent_loss_over_ten_minutes() {
    let mut s = Sim::new(
        NetConfig {
            loss_ppm: 50_000,
            ..NetConfig::default()
        },
        9,
    );
    let n = 50;
    s.add_nodes(n, Instant::ZERO, Duration::from_secs(1), Config::default());
    s.run_until(Instant::from_secs(600));
    assert!(s.converged());
    let mut suspects = 0;
    for i in 0..n {
        for (t, e) in events_of(&s, i) {
            assert!(
                !matches!(e, Event::Dead(_) | Event::Left(_)),
                "node {i} at {t}: {e:?}"
            );
            suspects += usize::from(matches!(e, Event::Suspect(_)));
        }
    }
    // A probe and its indirect probes all fail now and then; the suspect refutes.
    println!("suspicions in 10 min x 50 nodes at 5 % loss: {suspects}");
    assert!(s.stats.lost > 0);
}

#[test]
fn hosts_are_full_members() {
    let mut s = Sim::new(NetConfig::default(), 10);
    for _ in 0..5 {
        s.add_node(Instant::ZERO, Config::default(), Role::Node);
    }
    let host = s.add_node(Instant::from_millis(300), Config::default(), Role::Host);
    s.run_for(Duration::from_secs(2));
    assert!(s.converged());
    for i in 0..5 {
        let h = s.member(i).member(id_of(host)).expect("host in view");
        assert_eq!(h.role, Role::Host);
    }
}

#[test]
fn a_seeded_group_behaves_as_a_joined_one() {
    // 300 members start with complete views from one shared view (as simbench's
    // largest groups do): they probe each other, take a newcomer, drop a crashed
    // member and take it back as a new run.
    let n = 300;
    let mut s = Sim::new(NetConfig::default(), 11);
    s.add_seeded_nodes(n, Instant::ZERO, Config::default());
    assert!(s.converged());
    s.run_for(Duration::from_secs(5));
    assert!(s.converged());
    for i in 0..n {
        let st = s.member(i).stats();
        assert!(st.probes >= 9, "node {i}: {st:?}");
        assert_eq!(st.sent_broadcast, 0, "node {i} broadcast: {st:?}");
        assert!(
            events_of(&s, i).is_empty(),
            "node {i}: {:?}",
            events_of(&s, i)
        );
    }
    let new = s.add_node(s.now, Config::default(), Role::Node);
    let t = s.run_until_true(s.now + Duration::from_secs(5), 10 * MS, |s| {
        s.all_views_have(n + 1)
    });
    assert!(t.is_some(), "the newcomer is not in every view");
    assert!(s.converged());
    let victim = 42;
    s.stop(victim);
    s.run_for(Duration::from_secs(10));
    for i in s.running_nodes() {
        assert!(!s.member(i).knows(id_of(victim)), "node {i} still has it");
        assert!(
            events_of(&s, i)
                .iter()
                .any(|(_, e)| *e == Event::Dead(id_of(victim))),
            "node {i}: no death event"
        );
    }
    s.restart(victim, Config::default());
    s.run_for(Duration::from_secs(3));
    assert!(s.converged());
    assert_eq!(s.member(new).view_len(), n + 1);
}

#[test]
fn a_large_view_transfer_completes_despite_loss() {
    // 5000 members: the view comes in about 450 chunks; at 20 % loss about 90 are
    // lost and asked for again, all in each round of gap requests.
    let n = 5000;
    let mut s = Sim::new(
        NetConfig {
            loss_ppm: 200_000,
            ..NetConfig::default()
        },
        12,
    );
    s.record_events = false;
    s.add_seeded_nodes(n, Instant::ZERO, Config::default());
    s.run_for(Duration::from_secs(1));
    let new = s.add_node(s.now, Config::default(), Role::Node);
    s.run_for(Duration::from_secs(6));
    assert!(s.member(new).is_synced());
    // Every member that the others know (a member wrongly declared dead at this
    // loss is out of many views until it joins again).
    let missing: Vec<usize> = s
        .running_nodes()
        .into_iter()
        .filter(|&j| j != new && !s.member(new).knows(id_of(j)) && s.member(0).knows(id_of(j)))
        .collect();
    assert!(missing.is_empty(), "the newcomer lacks {missing:?}");
}

#[test]
fn a_node_that_missed_every_join_at_boot_is_learned_later() {
    // Node 1 hears nothing and is heard by nobody while the three boot (as a
    // node whose link comes up late): its joins and everyone's answers are
    // lost, and it ends its joins alone. Once its link is up, its next
    // anti-entropy round announces it again and the views converge.
    let mut s = Sim::new(NetConfig::default(), 11);
    s.add_nodes(
        3,
        Instant::ZERO,
        Duration::from_millis(100),
        Config::default(),
    );
    s.nodes[1].isolated = true;
    s.run_until(Instant::from_secs(4));
    assert_eq!(s.member(1).view_len(), 1, "node 1 knows only itself");
    assert_eq!(s.member(0).view_len(), 2, "nodes 0 and 2 know each other");
    s.nodes[1].isolated = false;
    let sync = Config::default().sync_interval;
    let t = s.run_until_true(Instant::from_secs(4) + sync * 2, 10 * MS, |s| {
        s.all_views_have(3)
    });
    assert!(t.is_some(), "views never converged: {:?}", s.stats);
    assert!(s.converged());
    assert!(s.member(1).stats().syncs >= 1);
}
