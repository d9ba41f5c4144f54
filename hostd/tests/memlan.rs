//! `hostd` sessions and the daemon on an in-memory LAN, host-only (no QEMU).
//!
//! The LAN ([`MemLan`]) behaves like the qemu-net bridge: broadcasts to
//! 169.254.255.255 reach everyone (the sender too), unicasts reach one address.
//! The "nodes" on it are the Companion Manager library as `Role::Node`, driven
//! like the SiON node process drives it: every message inside a SiON network
//! IPC datagram built here with `sion_abi::net::Header` directly (not with
//! hostd's own wrapper), so these tests also check that hostd speaks the nodes'
//! envelope. Liveness timers are shortened so that deaths show within a second.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant as StdInstant};

use sion_abi::net::{
    ALL_NODES, COMPANION_MANAGER_SERVICE, DEFAULT_CLUSTER, HEADER_LEN, Header, IPC_PORT,
    TAG_COMPANION,
};
use sion_companion_mgr::{
    Addr, Config, DenyReason, Dest, Instant, JobSpec, LocalNode, Member, Mode, Name, NodeId,
    NodeState, Role, Status, Weights,
};
use sion_hostd::control::{Client, Request, Response};
use sion_hostd::daemon::{Daemon, SocketError, bind_control};
use sion_hostd::model::Via;
use sion_hostd::transport::{MemLan, Transport};
use sion_hostd::{Identity, Session, place};

const MIB: u64 = 1 << 20;
const BROADCAST: Ipv4Addr = Ipv4Addr::new(169, 254, 255, 255);

fn fast() -> Config {
    Config {
        probe_interval: Duration::from_millis(50),
        probe_timeout: Duration::from_millis(20),
        suspicion_min: Duration::from_millis(200),
        suspicion_max: Duration::from_millis(400),
        join_retry: Duration::from_millis(100),
        placement_timeout: Duration::from_millis(300),
        ..Config::default()
    }
}

fn node_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(169, 254, 10, i)
}

fn node_id(i: u8) -> NodeId {
    NodeId::from_mac([0x52, 0x54, 0x00, 0x53, 0x4e, i])
}

/// A SiON node's Companion Manager on the in-memory LAN, in its own thread.
struct FakeNode {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeNode {
    fn spawn(lan: &MemLan, i: u8, state: NodeState) -> FakeNode {
        let port = lan.attach(node_ip(i));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let origin = StdInstant::now();
            let now = || Instant::from_nanos(origin.elapsed().as_nanos() as u64);
            let mut local = LocalNode::new(
                node_id(i),
                Role::Node,
                Addr::new(node_ip(i).octets(), IPC_PORT),
            );
            local.state = state;
            let mut m = Member::new(fast(), local, now(), u64::from(i) * 7919 + 1);
            while !flag.load(Ordering::Relaxed) {
                // As the node's kernel sends for its CM: broadcast to the subnet
                // broadcast address with ALL_NODES; unicast with ALL_NODES too.
                while let Some(t) = m.poll_transmit() {
                    let (to, broadcast) = match t.dest {
                        Dest::Broadcast => (BROADCAST, true),
                        Dest::Unicast(a) => (Ipv4Addr::from(a.ip), false),
                    };
                    let h = Header {
                        cluster: DEFAULT_CLUSTER,
                        broadcast,
                        src_node: node_id(i).as_u64(),
                        dst_node: ALL_NODES,
                        src_service: COMPANION_MANAGER_SERVICE,
                        dst_service: COMPANION_MANAGER_SERVICE,
                        tag: TAG_COMPANION,
                    };
                    let mut d = vec![0; HEADER_LEN + t.bytes.len()];
                    h.encode(&t.bytes, &mut d).unwrap();
                    port.send(SocketAddrV4::new(to, IPC_PORT), &d).unwrap();
                }
                let wait = m
                    .poll_at()
                    .saturating_duration_since(now())
                    .min(Duration::from_millis(20));
                if let Some((from, d)) = port.recv(wait).unwrap()
                    && let Ok((h, payload)) = Header::decode(&d, DEFAULT_CLUSTER)
                    && h.dst_service == COMPANION_MANAGER_SERVICE
                    && h.tag == TAG_COMPANION
                {
                    let _ =
                        m.handle_datagram(now(), Addr::new(from.ip().octets(), IPC_PORT), payload);
                }
                let t = now();
                if t >= m.poll_at() {
                    m.poll(t);
                }
            }
        });
        FakeNode {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn state(load: u16, free_mib: u64, speed: u32, jobs: u16) -> NodeState {
    NodeState {
        cpu_load: load,
        free_mem: free_mib * MIB,
        cpu_speed: speed,
        running_jobs: jobs,
        cpus: 1,
        free_cpus: NodeState::free_cpus_for(1, jobs),
    }
}

/// Three nodes: 0 idle/small, 1 idle/big, 2 busy (one job) with most memory.
fn three_nodes(lan: &MemLan) -> Vec<FakeNode> {
    vec![
        FakeNode::spawn(lan, 1, state(100, 200, 1000, 0)),
        FakeNode::spawn(lan, 2, state(200, 500, 1500, 0)),
        FakeNode::spawn(lan, 3, state(900, 800, 2000, 1)),
    ]
}

fn host(lan: &MemLan, last: u8, name: &str) -> Session {
    let ip = Ipv4Addr::new(169, 254, 0, last);
    let ident = Identity {
        id: NodeId::from_mac([0x0a, 0, 0, 0, 0, last]),
        name: Name::new(name).unwrap(),
        iface: "mem0".into(),
        ip,
        prefix: 16,
    };
    Session::new(Arc::new(lan.attach(ip)), ident, fast(), u64::from(last))
}

fn keyed_host(lan: &MemLan, last: u8, name: &str, keys: Option<&str>) -> Session {
    let ip = Ipv4Addr::new(169, 254, 0, last);
    let ident = Identity {
        id: NodeId::from_mac([0x0a, 0, 0, 0, 0, last]),
        name: Name::new(name).unwrap(),
        iface: "mem0".into(),
        ip,
        prefix: 16,
    };
    let keys = keys.map(|k| sion_companion_mgr::auth::Keyring::parse(k).unwrap());
    Session::with_keys(
        Arc::new(lan.attach(ip)),
        ident,
        fast(),
        u64::from(last),
        keys,
    )
}

fn lan() -> MemLan {
    MemLan::new(BROADCAST)
}

#[test]
fn one_shot_discovery_lists_nodes_and_hosts_with_their_load() {
    let lan = lan();
    let _nodes = three_nodes(&lan);
    thread::sleep(Duration::from_millis(200)); // the nodes find each other
    let mut a = host(&lan, 1, "pc-a");
    let mut b = host(&lan, 2, "pc-b");
    thread::scope(|s| {
        s.spawn(|| b.pump_for(Duration::from_millis(600)).unwrap());
        a.pump_for(Duration::from_millis(600)).unwrap();
    });
    let rows = a.rows();
    let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "52:54:00:53:4e:01",
            "52:54:00:53:4e:02",
            "52:54:00:53:4e:03",
            "0a:00:00:00:00:01",
            "0a:00:00:00:00:02"
        ],
        "nodes first, then hosts, each in id order"
    );
    assert_eq!(a.node_count(), 3);
    let n2 = &rows[1];
    assert_eq!(
        (n2.role, n2.address, n2.status),
        (Role::Node, Ipv4Addr::new(169, 254, 10, 2), Status::Alive)
    );
    assert_eq!(
        (
            n2.cpu_load_permille,
            n2.free_mem_mib,
            n2.cpu_speed,
            n2.running_jobs
        ),
        (200, 500, 1500, 0)
    );
    assert!(n2.last_heard_s < 0.5, "{n2:?}");
    assert_eq!((rows[3].role, rows[3].this_host), (Role::Host, true));
    assert_eq!(
        (rows[4].name.as_str(), rows[4].role, rows[4].this_host),
        ("pc-b", Role::Host, false)
    );
    // Own broadcasts came back and were dropped as ours; nothing else dropped.
    let d = a.drops();
    assert!(d.own > 0);
    assert_eq!(
        (d.malformed, d.foreign_cluster, d.not_for_us, d.bad_payload),
        (0, 0, 0, 0)
    );

    // Leaving is seen by the other host at once.
    b.leave();
    a.pump_for(Duration::from_millis(100)).unwrap();
    let mut events = Vec::new();
    while let Some((_, text)) = a.poll_event() {
        events.push(text);
    }
    assert!(
        events
            .iter()
            .any(|e| e == "left: 0a:00:00:00:00:02 pc-b (host, 169.254.0.2)"),
        "{events:#?}"
    );
    assert_eq!(a.rows().len(), 4);
}

/// Hosts with a cluster key hear only members with one of their keys; the
/// rest is dropped and counted, and explained when nothing else is heard.
#[test]
fn sessions_with_the_cluster_key_hear_only_each_other() {
    let (k1, k2) = ("11".repeat(32), "22".repeat(32));
    let lan = lan();
    let _open_nodes = three_nodes(&lan);
    thread::sleep(Duration::from_millis(200));
    // A rotation's first step: signs with K1, already accepts K2.
    let mut b = keyed_host(&lan, 2, "pc-b", Some(&format!("{k1}\n{k2}")));
    let mut wrong = keyed_host(&lan, 3, "pc-wrong", Some(&"33".repeat(32)));
    let mut open = keyed_host(&lan, 4, "pc-open", None);
    // Last, so that every other host hears its join.
    let mut a = keyed_host(&lan, 1, "pc-a", Some(&k1));
    thread::scope(|s| {
        s.spawn(|| b.pump_for(Duration::from_millis(600)).unwrap());
        s.spawn(|| wrong.pump_for(Duration::from_millis(600)).unwrap());
        s.spawn(|| open.pump_for(Duration::from_millis(600)).unwrap());
        a.pump_for(Duration::from_millis(600)).unwrap();
    });
    let names = |s: &Session| -> Vec<String> { s.rows().iter().map(|r| r.name.clone()).collect() };
    assert_eq!(names(&a), ["pc-a", "pc-b"], "a");
    assert_eq!(names(&b), ["pc-a", "pc-b"], "b");
    assert_eq!(names(&wrong), ["pc-wrong"]);
    // The open host sees the open nodes and no keyed host.
    assert_eq!(open.node_count(), 3);
    assert!(names(&open).iter().all(|n| n != "pc-a" && n != "pc-b"));
    let ga = a.group_auth();
    assert_eq!(
        ga.key_id.as_deref(),
        Some(a.keys().unwrap().signing().id().to_string().as_str())
    );
    assert!(ga.dropped_unsealed > 0, "the open nodes' datagrams: {ga:?}");
    assert!(
        ga.dropped_unknown_key > 0,
        "B's and the wrong host's: {ga:?}"
    );
    assert_eq!((ga.dropped_bad_tag, ga.dropped_replayed), (0, 0), "{ga:?}");
    assert!(wrong.key_hint().unwrap().contains("probably wrong"));
    assert!(open.group_auth().sealed_unopened > 0);
    assert!(open.key_hint().unwrap().contains("has no key"));
    // The keyed sessions' drops are not the envelope's.
    assert_eq!(a.drops().bad_payload, 0);
}

#[test]
fn placement_ranks_nodes_never_hosts_and_reports_denials() {
    let lan = lan();
    let _nodes = three_nodes(&lan);
    let mut a = host(&lan, 1, "pc-a");
    let mut b = host(&lan, 2, "pc-b");
    thread::scope(|s| {
        s.spawn(|| b.pump_for(Duration::from_millis(1500)).unwrap());
        a.pump_for(Duration::from_millis(400)).unwrap();

        // Exclusive, weighted by memory only: the busy node 3 denies, node 2 (500 MiB)
        // beats node 1 (200 MiB); host b is in the view but never asked.
        let mem_only = Weights {
            cpu_load: 0,
            free_mem: 1,
            cpu_speed: 0,
            network: 0,
        };
        let job = JobSpec {
            program_size: 0,
            memory: 64 * MIB,
            mode: Mode::Exclusive,
            cpus: 1,
        };
        let r = place(&mut a, job, mem_only).unwrap();
        let ranked: Vec<NodeId> = r.ranked.iter().map(|c| c.node).collect();
        assert_eq!(ranked, [node_id(2), node_id(1)], "{r:?}");
        assert_eq!(r.ranked[0].score, 1000);
        assert_eq!(r.ranked[1].score, 400); // 200/500 of the best
        assert_eq!(r.denied.len(), 1, "{r:?}");
        assert_eq!(
            (r.denied[0].node, r.denied[0].reason),
            (node_id(3), DenyReason::Busy)
        );
        assert!(r.unanswered.is_empty(), "{r:?}");
        let report = a.report(&r);
        assert_eq!(report.ranked[0].name, Name::derive(node_id(2)).as_str());
        assert_eq!(report.ranked[0].address, Ipv4Addr::new(169, 254, 10, 2));
        assert_eq!(report.denied[0].reason, DenyReason::Busy);
        assert_eq!(report.asked(), 3);
        // It only looked: the permitting nodes are released (else they hold
        // themselves for it and deny the next placements `Reserved`).
        let r = sion_hostd::session::settle(&mut a, r, &[], false);
        assert_eq!(r.ranked.len(), 2);
        a.pump_for(Duration::from_millis(50)).unwrap();

        // Balance mode: the busy node permits and, with the most memory, wins.
        let r = place(
            &mut a,
            JobSpec {
                mode: Mode::Balance,
                ..job
            },
            mem_only,
        )
        .unwrap();
        assert_eq!(r.best().map(|c| c.node), Some(node_id(3)), "{r:?}");
        assert_eq!(r.ranked.len(), 3);

        // Too much memory for nodes 1 and 2.
        let r = place(
            &mut a,
            JobSpec {
                memory: 600 * MIB,
                mode: Mode::Balance,
                ..job
            },
            Weights::default(),
        )
        .unwrap();
        assert_eq!(r.ranked.len(), 1);
        assert_eq!(r.ranked[0].node, node_id(3));
        let reasons: Vec<DenyReason> = r.denied.iter().map(|d| d.reason).collect();
        assert_eq!(reasons, [DenyReason::NotEnoughMemory; 2]);

        // Default weights: every part is shown and the score is their weighted sum.
        let r = place(&mut a, job, Weights::default()).unwrap();
        for c in &r.ranked {
            assert_eq!(c.score, c.parts.score(&Weights::default()));
            assert_eq!(c.parts.cpu_load, 1000 - c.state.cpu_load);
        }
    });
}

#[test]
fn a_silent_node_becomes_suspect_then_dead() {
    let lan = lan();
    let _nodes = three_nodes(&lan);
    let mut a = host(&lan, 1, "pc-a");
    a.pump_for(Duration::from_millis(300)).unwrap();
    assert_eq!(a.node_count(), 3);
    while a.poll_event().is_some() {}

    lan.set_cut(node_ip(2), true);
    let cut = StdInstant::now();
    let mut log = Vec::new();
    a.pump_until(cut + Duration::from_secs(5), |m| {
        m.member(node_id(2)).is_none()
    })
    .unwrap();
    let gone = cut.elapsed();
    while let Some((_, text)) = a.poll_event() {
        log.push(text);
    }
    assert_eq!(a.node_count(), 2, "{log:#?}");
    assert!(gone < Duration::from_secs(2), "{gone:?}");
    let who = format!("52:54:00:53:4e:02 {}", Name::derive(node_id(2)));
    let suspect = log
        .iter()
        .position(|l| l.starts_with("suspect") && l.contains(&who));
    let dead = log
        .iter()
        .position(|l| l.starts_with("dead") && l.contains(&who));
    assert!(
        suspect.is_some() && dead.is_some() && suspect < dead,
        "{log:#?}"
    );

    // A placement right now does not ask the dead node.
    let r = place(&mut a, JobSpec::default(), Weights::default()).unwrap();
    assert!(r.ranked.iter().all(|c| c.node != node_id(2)), "{r:?}");
    assert_eq!(r.ranked.len() + r.denied.len(), 2);
}

#[test]
fn foreign_and_malformed_datagrams_are_counted_and_dropped() {
    let lan = lan();
    let _nodes = three_nodes(&lan);
    let mut a = host(&lan, 1, "pc-a");
    a.pump_for(Duration::from_millis(300)).unwrap();
    let before = a.drops();
    let me = SocketAddrV4::new(Ipv4Addr::new(169, 254, 0, 1), IPC_PORT);
    let intruder = lan.attach(Ipv4Addr::new(169, 254, 99, 99));
    let mk = |cluster, service, tag, payload: &[u8]| {
        let h = Header {
            cluster,
            broadcast: false,
            src_node: 0x0200_0000_0099,
            dst_node: ALL_NODES,
            src_service: service,
            dst_service: service,
            tag,
        };
        let mut d = vec![0; HEADER_LEN + payload.len()];
        h.encode(payload, &mut d).unwrap();
        d
    };
    let sends: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),                                     // malformed
        vec![0; HEADER_LEN],                                   // malformed (magic)
        mk(1, COMPANION_MANAGER_SERVICE, TAG_COMPANION, b"x"), // foreign cluster
        mk(DEFAULT_CLUSTER, 0, 1, b"ping"),                    // kernel ping
        mk(DEFAULT_CLUSTER, 2, TAG_COMPANION, b"x"),           // another service
        mk(
            DEFAULT_CLUSTER,
            COMPANION_MANAGER_SERVICE,
            TAG_COMPANION,
            b"not a CM message",
        ),
    ];
    for d in &sends {
        intruder.send(me, d).unwrap();
    }
    a.pump_for(Duration::from_millis(200)).unwrap();
    let after = a.drops();
    assert_eq!(after.malformed - before.malformed, 2);
    assert_eq!(after.foreign_cluster - before.foreign_cluster, 1);
    assert_eq!(after.not_for_us - before.not_for_us, 2);
    assert_eq!(after.bad_payload - before.bad_payload, 1);
    // The group is unaffected.
    assert_eq!(a.node_count(), 3);
}

/// A `Write` into a shared buffer, for the daemon's log.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn temp_socket(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hostd-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("hostd.sock")
}

#[test]
fn daemon_serves_hello_nodes_and_place_over_its_socket() {
    let lan = lan();
    let _nodes = three_nodes(&lan);
    let socket = temp_socket("daemon");
    let listener = bind_control(&socket).unwrap();
    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    let log = Log::default();
    let d = Daemon::start(
        host(&lan, 1, "pc-d"),
        listener,
        &socket,
        Box::new(log.clone()),
    )
    .unwrap();

    // Another host watches the daemon's membership.
    let mut watcher = host(&lan, 2, "pc-w");

    let mut c = Client::connect(&socket, Duration::from_secs(5)).unwrap();
    let info = c.hello().unwrap();
    assert_eq!(info.interface, "mem0");
    assert_eq!(info.id.to_string(), "0a:00:00:00:00:01");
    assert_eq!(info.pid, std::process::id());

    // The view fills in.
    let deadline = StdInstant::now() + Duration::from_secs(5);
    let report = loop {
        watcher.pump_for(Duration::from_millis(50)).unwrap();
        match c.request(&Request::Nodes).unwrap() {
            Response::Nodes(r) if r.node_count() == 3 => break r,
            Response::Nodes(r) if StdInstant::now() < deadline => drop(r),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(report.via, Via::Daemon);
    assert!(report.nodes.iter().any(|r| r.this_host && r.name == "pc-d"));

    // A placement through the daemon, same answer as one-shot.
    let req = Request::Place {
        job: JobSpec {
            program_size: 0,
            memory: 64 * MIB,
            mode: Mode::Exclusive,
            cpus: 1,
        },
        weights: Weights {
            cpu_load: 0,
            free_mem: 1,
            cpu_speed: 0,
            network: 0,
        },
        exclude: Vec::new(),
        take: false,
        wait: false,
    };
    match c.request(&req).unwrap() {
        Response::Placement(p) => {
            let ids: Vec<NodeId> = p.ranked.iter().map(|r| r.id).collect();
            assert_eq!(ids, [node_id(2), node_id(1)], "{p:?}");
            assert_eq!(p.denied[0].reason, DenyReason::Busy);
            assert_eq!(p.mode, Mode::Exclusive);
            assert_eq!(p.memory_mib, 64);
        }
        other => panic!("{other:?}"),
    }

    // Garbage on the socket gets an error line, and the connection still works.
    let mut raw = UnixStream::connect(&socket).unwrap();
    raw.write_all(b"{\"op\":\"reboot\"}\n{\"op\":\"hello\"}\n")
        .unwrap();
    let mut lines = BufReader::new(raw).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("{\"error\":\"not a hostd request"),
        "{first}"
    );
    assert!(lines.next().unwrap().unwrap().starts_with("{\"hello\":"));

    // A second daemon on the same socket is refused, naming the first.
    let err = bind_control(&socket).unwrap_err();
    match err.downcast_ref::<SocketError>() {
        Some(SocketError::AlreadyRunning { pid, interface, .. }) => {
            assert_eq!((*pid, interface.as_str()), (std::process::id(), "mem0"));
        }
        other => panic!("{other:?}: {err}"),
    }
    assert!(err.to_string().contains("already running"));

    // Shutdown: the daemon leaves the group (the watcher sees it at once) and
    // removes its socket.
    watcher.pump_for(Duration::from_millis(200)).unwrap();
    while watcher.poll_event().is_some() {}
    d.shutdown().unwrap();
    watcher.pump_for(Duration::from_millis(100)).unwrap();
    let mut events = Vec::new();
    while let Some((_, e)) = watcher.poll_event() {
        events.push(e);
    }
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("left: 0a:00:00:00:00:01 pc-d")),
        "{events:#?}"
    );
    assert!(!socket.exists());
    let text = log.text();
    assert!(text.contains("joining the SiON group on mem0"), "{text}");
    assert!(text.contains("joined: 52:54:00:53:4e:01"), "{text}");
    assert!(
        text.contains("joined: 0a:00:00:00:00:02 pc-w (host"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("left the group"), "{text}");
}

#[test]
fn stale_or_foreign_socket_files() {
    // A socket file nobody listens on (a daemon that died) is replaced.
    let socket = temp_socket("stale");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let l = bind_control(&socket).unwrap();
    drop(l);
    // A regular file is never removed.
    std::fs::remove_file(&socket).unwrap();
    std::fs::write(&socket, b"precious").unwrap();
    let err = bind_control(&socket).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<SocketError>(),
            Some(SocketError::NotASocket(_))
        ),
        "{err}"
    );
    assert_eq!(std::fs::read(&socket).unwrap(), b"precious");
}
