//! `hostd` with a real SiON cluster (issue 4): three QEMU nodes with different
//! memory sizes on a qemu-net LAN, and `hostd daemon` inside that LAN.
//! - every node is listed alive soon after it has an address;
//! - after one QEMU is killed, the other nodes and hostd declare it dead
//!   within the liveness bound;
//! - a placement weighted only by free memory ranks the biggest node first.
//!
//! Needs root and QEMU (CI has both); otherwise it prints why and passes.

mod common;

use common::{BootedLan, Daemon, alive_nodes};
use qemu_net::prereq::{QEMU, must_skip};
use sion_companion_mgr::NodeId;
use sion_hostd::model::{NodesReport, PlacementReport, parse_node_id};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");
/// The Companion Manager's defaults: a probe per 500 ms period, dead at most 1.5 s
/// after a probe failed (`Config::suspicion_max`); with 3 probers the victim is
/// probed every ~0.5 s. Generous bound.
const DEAD_BOUND: Duration = Duration::from_secs(5 + 1 + 2);

/// The LAN and the daemon; both are stopped when this drops, even on failure.
struct Cluster {
    booted: BootedLan,
    daemon: Option<Daemon>,
    socket: PathBuf,
}

impl Cluster {
    fn hostd(&self, args: &[&str]) -> std::process::Output {
        let mut cmd: Vec<String> = vec![
            HOSTD.into(),
            "--socket".into(),
            self.socket.display().to_string(),
        ];
        cmd.extend(args.iter().map(|s| s.to_string()));
        let out = self.booted.run(&cmd, Path::new("/"), b"", &[]);
        assert!(
            out.status.success(),
            "hostd {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn nodes(&self) -> NodesReport {
        serde_json::from_slice(&self.hostd(&["nodes", "--json"]).stdout)
            .expect("hostd nodes --json")
    }

    /// `hostd nodes --json`, or `None` while the daemon has heard no node
    /// yet (it says so and fails).
    fn nodes_if_any(&self) -> Option<NodesReport> {
        let cmd: Vec<String> = vec![
            HOSTD.into(),
            "--socket".into(),
            self.socket.display().to_string(),
            "nodes".into(),
            "--json".into(),
        ];
        let out = self.booted.run(&cmd, Path::new("/"), b"", &[]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("hostd nodes --json"))
    }

    fn log(&self, index: usize) -> String {
        self.booted.log(index)
    }
}

fn node_id(mac: &str) -> NodeId {
    parse_node_id(mac).expect("a node id")
}

#[test]
fn hostd_sees_the_group_detects_a_death_and_places_by_memory() {
    if must_skip(true, &[QEMU]) {
        return;
    }
    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let started = Instant::now();
    let booted = BootedLan::boot("hc", image, &[256, 384, 512]);
    let socket = booted.run_dir.join("hostd.sock");
    let mut cluster = Cluster {
        booted,
        daemon: None,
        socket,
    };
    eprintln!("3 nodes have addresses after {:?}", started.elapsed());

    // The daemon joins and keeps the view.
    cluster.daemon = Some(cluster.booted.start_daemon(HOSTD));

    // 1. All three nodes alive, soon after they have addresses.
    let with_addresses = Instant::now();
    let mut alive = Vec::new();
    while with_addresses.elapsed() < Duration::from_secs(30) {
        // A daemon that has just started may have heard no node yet.
        if cluster.socket.exists()
            && let Some(report) = cluster.nodes_if_any()
        {
            alive = alive_nodes(&report);
            if alive.len() == 3 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(alive.len(), 3, "alive nodes: {alive:?}");
    let listed_after = with_addresses.elapsed();
    eprintln!("hostd listed all 3 nodes {listed_after:?} after they had addresses");
    assert!(
        listed_after <= Duration::from_secs(5),
        "hostd took {listed_after:?} to list the nodes"
    );
    for i in 0..3 {
        assert!(
            cluster.log(i).contains("cm: joining the group"),
            "node {i}:\n{}",
            cluster.log(i)
        );
        // An image built without a cluster key: an open group, and it says so.
        assert!(
            cluster.log(i).contains("cm: OPEN group: no cluster key"),
            "node {i}:\n{}",
            cluster.log(i)
        );
    }
    let table =
        String::from_utf8_lossy(&cluster.hostd(&["--key", "none", "nodes"]).stdout).into_owned();
    assert!(table.contains("OPEN group: no cluster key"), "{table}");
    // Every node knows every other (the view converges among the nodes,
    // not only at hostd): a node cannot declare dead a member it never
    // knew. Seen once in CI: nodes 0 and 2 missed node 1's join broadcast
    // during the simultaneous boot and learned it only from its probes.
    let converging = Instant::now();
    let knows = |i: usize, j: usize| {
        cluster
            .log(i)
            .contains(&format!("cm: member 52:54:00:53:4e:0{j} joined"))
    };
    while converging.elapsed() < Duration::from_secs(20)
        && !(0..3).all(|i| (0..3).all(|j| i == j || knows(i, j)))
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "every node knew every other {:?} after hostd listed them",
        converging.elapsed()
    );
    for i in 0..3 {
        for j in (0..3).filter(|&j| j != i) {
            assert!(
                knows(i, j),
                "node {i} never learned node {j}:\n{}",
                cluster.log(i)
            );
        }
    }

    // 2. Placement by free memory alone: the 512 MiB node first.
    // Right after boot a node may still be measuring its CPU speed and miss the
    // 200 ms answer window; a user would simply ask again, and so does this test.
    let mut placement: Option<PlacementReport> = None;
    for _ in 0..10 {
        let out = cluster.hostd(&["place", "--weights", "mem=1,cpu=0,speed=0,net=0", "--json"]);
        let p: PlacementReport = serde_json::from_slice(&out.stdout).expect("hostd place --json");
        let complete = p.ranked.len() == 3;
        placement = Some(p);
        if complete {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let placement = placement.unwrap();
    assert_eq!(placement.ranked.len(), 3, "{placement:?}");
    assert_eq!(
        placement.ranked[0].id,
        node_id("52:54:00:53:4e:02"),
        "{placement:?}"
    );
    assert_eq!(
        placement.ranked[2].id,
        node_id("52:54:00:53:4e:00"),
        "{placement:?}"
    );
    assert!(
        placement.ranked[0].score > placement.ranked[1].score,
        "{placement:?}"
    );

    // 3. Kill node 1: hostd and the other nodes declare it dead within the bound.
    let victim = node_id("52:54:00:53:4e:01");
    cluster.booted.lan.kill_node(1).expect("kill-node 1");
    let killed = Instant::now();
    let (mut seen_by_hostd, mut seen_by_nodes) = (None, None);
    while killed.elapsed() < DEAD_BOUND + Duration::from_secs(10) {
        if seen_by_hostd.is_none() && !cluster.nodes().nodes.iter().any(|n| n.id == victim) {
            seen_by_hostd = Some(killed.elapsed());
        }
        let dead_line = format!("cm: member {victim} is dead");
        if seen_by_nodes.is_none()
            && cluster.log(0).contains(&dead_line)
            && cluster.log(2).contains(&dead_line)
        {
            seen_by_nodes = Some(killed.elapsed());
        }
        if seen_by_hostd.is_some() && seen_by_nodes.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("dead: hostd after {seen_by_hostd:?}, nodes after {seen_by_nodes:?}");
    let bound = |t: Option<Duration>| t.is_some_and(|t| t <= DEAD_BOUND);
    assert!(
        bound(seen_by_hostd),
        "hostd still lists {victim} ({seen_by_hostd:?})"
    );
    assert!(
        bound(seen_by_nodes),
        "nodes 0 and 2 did not declare {victim} dead in time ({seen_by_nodes:?})"
    );
    assert_eq!(alive_nodes(&cluster.nodes()).len(), 2);
}
