//! Gateways between subnets (issue 15): two qemu-net LANs, each in its own
//! network namespace with one node, joined by a veth pair (10.77.0.1/30 in
//! LAN A, 10.77.0.2/30 in LAN B) and a `hostd gateway` in each namespace
//! with the other as `--peer`. Both LANs' nodes may take the same
//! link-local address; their MACs (node ids) differ (`--first-mac`).
//!
//! - `hostd nodes` through LAN A's daemon lists LAN B's node, alive, at a
//!   stand-in address of 169.254.255.0/24;
//! - with LAN A's only node busy (an exclusive `sleep`), exclusive jobs
//!   submitted in LAN A are placed on LAN B's node and run there: Debian's
//!   busybox `sha256sum` of a file of the host and a shell pipeline that
//!   writes files, each output compared with the same command run here;
//! - malformed datagrams sent to the gateways (from the peer's address, and
//!   to a stand-in from the LAN) are dropped and counted, and the gateways
//!   go on working;
//! - on SIGTERM each gateway gives its stand-in addresses back.
//!
//! The group is authenticated: both LANs' nodes boot with `key=HEX` of a
//! key from `hostd keygen`, and every `hostd` (daemon, gateways, submits)
//! reads it, so the gateways open, seal and re-seal every datagram they
//! relay (junk from the peer's address is dropped as unauthenticated).
//!
//! Everything (QEMU, namespaces, the veth pair, gateways, daemon, jobs) is
//! torn down at the end, also when an assertion fails. Needs root, QEMU and
//! busybox-static (CI has them).

mod common;

use common::{BootedLan, job_dir};
use qemu_net::prereq::{BUSYBOX_STATIC, QEMU, must_skip};
use sion_hostd::gateway::Counters;
use sion_hostd::model::{NodeRow, NodesReport};
use sion_hostd::submit::SubmitSummary;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");
/// The link between the two namespaces.
const VETH_A: &str = "gwlink-a";
const VETH_B: &str = "gwlink-b";
const GW_A: &str = "10.77.0.1";
const GW_B: &str = "10.77.0.2";

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A background program inside a LAN, stopped with SIGTERM when this drops
/// (then SIGKILL after 5 s), its stderr in a file.
struct Background {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Background {
    fn start(
        lan: &BootedLan,
        name: &'static str,
        argv: &[String],
        dir: &Path,
        key: &str,
    ) -> Background {
        let log = lan.run_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = lan
            .lan
            .command(argv)
            .expect("a command inside the LAN")
            .env(sion_hostd::keys::KEY_ENV, key)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Background {
            name,
            child: Some(child),
            log,
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after 5 s); its log.
    fn stop(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    eprintln!("{} did not stop on SIGTERM in 5 s; killing it", self.name);
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.wait();
        }
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The veth pair between the two namespaces, deleted when this drops
/// (deleting one end deletes both; the namespaces' end would too).
struct Link {
    netns_a: String,
}

impl Link {
    fn create(netns_a: &str, netns_b: &str) -> Link {
        let link = Link {
            netns_a: netns_a.into(),
        };
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("running ip");
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&[
            "-n", netns_a, "link", "add", VETH_A, "type", "veth", "peer", "name", VETH_B, "netns",
            netns_b,
        ]);
        ip(&[
            "-n",
            netns_a,
            "addr",
            "add",
            &format!("{GW_A}/30"),
            "dev",
            VETH_A,
        ]);
        ip(&[
            "-n",
            netns_b,
            "addr",
            "add",
            &format!("{GW_B}/30"),
            "dev",
            VETH_B,
        ]);
        ip(&["-n", netns_a, "link", "set", VETH_A, "up"]);
        ip(&["-n", netns_b, "link", "set", VETH_B, "up"]);
        link
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["-n", &self.netns_a, "link", "del", VETH_A])
            .stderr(Stdio::null())
            .status();
    }
}

/// The members `hostd nodes --json` lists through the daemon at `socket`
/// (none while the daemon has heard no node: then it fails).
fn nodes(lan: &BootedLan, socket: &str, dir: &Path, key: &str) -> Vec<NodeRow> {
    let out = lan.run(
        &strings(&[HOSTD, "--socket", socket, "nodes", "--json"]),
        dir,
        b"",
        &[(sion_hostd::keys::KEY_ENV, key)],
    );
    serde_json::from_slice::<NodesReport>(&out.stdout)
        .map(|r| r.nodes)
        .unwrap_or_default()
}

/// The counters a stopped gateway printed (`hostd gateway: counters {json}`).
fn counters(log: &str) -> Counters {
    #[derive(serde::Deserialize)]
    struct C {
        to_peer: u64,
        from_peer: u64,
        malformed_lan: u64,
        malformed_peer: u64,
        unauthenticated: u64,
        connections: u64,
        bytes_to_node: u64,
        bytes_from_node: u64,
    }
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("hostd gateway: counters "))
        .unwrap_or_else(|| panic!("the gateway printed no counters:\n{log}"));
    let c: C = serde_json::from_str(line).expect("the counters' JSON");
    Counters {
        to_peer: c.to_peer,
        from_peer: c.from_peer,
        malformed_lan: c.malformed_lan,
        malformed_peer: c.malformed_peer,
        unauthenticated: c.unauthenticated,
        connections: c.connections,
        bytes_to_node: c.bytes_to_node,
        bytes_from_node: c.bytes_from_node,
        ..Counters::default()
    }
}

/// Sends `count` junk datagrams to `to` (`IP/PORT`) from inside `lan`.
fn send_junk(lan: &BootedLan, to: &str, count: usize, dir: &Path) {
    let script = format!("for i in $(seq {count}); do printf 'junk %s' $i > /dev/udp/{to}; done");
    let out = lan.run(&strings(&["bash", "-c", &script]), dir, b"", &[]);
    assert!(
        out.status.success(),
        "sending junk to {to}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_job_submitted_in_one_lan_runs_on_a_node_of_the_other_through_gateways() {
    if must_skip(true, &[QEMU, BUSYBOX_STATIC]) {
        return;
    }
    let started = Instant::now();
    let dir = job_dir("gateway");
    std::fs::copy("/bin/busybox", dir.join("busybox")).unwrap();
    let words: String = (0..2000)
        .map(|i| format!("word {i} {}\n", i * 7919 % 1000))
        .collect();
    std::fs::write(dir.join("words.txt"), &words).unwrap();

    // The cluster key: a file for every hostd, the boot argument for the nodes.
    let key_file = dir.parent().unwrap().join("cluster.key");
    let out = Command::new(HOSTD)
        .args(["keygen", "--out"])
        .arg(&key_file)
        .output()
        .expect("hostd keygen");
    assert!(out.status.success(), "hostd keygen: {out:?}");
    let hex = std::fs::read_to_string(&key_file)
        .unwrap()
        .lines()
        .find(|l| l.len() == 64 && !l.starts_with('#'))
        .expect("a key line")
        .to_string();
    let key = key_file.display().to_string();
    let key_env = [(sion_hostd::keys::KEY_ENV, key.as_str())];
    let cmdline = format!("key={hex}");

    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let lan_a = BootedLan::boot_macs("gwa", image.clone(), &[256], &[], &[], &cmdline, 0);
    let lan_b = BootedLan::boot_macs("gwb", image, &[256], &[], &[], &cmdline, 0x10);
    let booted = started.elapsed();
    let (a_ip, b_ip) = (lan_a.address(0), lan_b.address(0));
    println!("LAN A's node at {a_ip}, LAN B's node at {b_ip} (booted in {booted:.1?})");

    let socket = lan_a.run_dir.join("hostd.sock").display().to_string();
    let mut daemon = Background::start(
        &lan_a,
        "daemon",
        &strings(&[HOSTD, "--socket", &socket, "daemon", "--iface", "br0"]),
        &dir,
        &key,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let a_node = loop {
        let found = nodes(&lan_a, &socket, &dir, &key).into_iter().find(|n| {
            n.role == sion_companion_mgr::Role::Node
                && n.status == sion_companion_mgr::Status::Alive
        });
        if let Some(n) = found {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "LAN A's daemon saw no node in 60 s:\n{}\n{}",
            std::fs::read_to_string(&daemon.log).unwrap_or_default(),
            lan_a.log(0)
        );
        std::thread::sleep(Duration::from_millis(500));
    };

    let _link = Link::create(&lan_a.netns(), &lan_b.netns());
    let gateway = |lan: &BootedLan, name, listen: &str, peer: &str| {
        Background::start(
            lan,
            name,
            &strings(&[
                HOSTD, "gateway", "--iface", "br0", "--listen", listen, "--peer", peer,
            ]),
            &dir,
            &key,
        )
    };
    let t_gateways = Instant::now();
    let mut gw_a = gateway(&lan_a, "gateway-a", GW_A, GW_B);
    let mut gw_b = gateway(&lan_b, "gateway-b", GW_B, GW_A);

    // LAN B's node appears in LAN A's group at a stand-in address. Both
    // groups formed before the gateways ran: the gateways introduce them
    // (a census of each LAN when the peer is first heard). Up to 60 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    let b_node = loop {
        let report = nodes(&lan_a, &socket, &dir, &key);
        let remote = report.iter().find(|n| {
            n.role == sion_companion_mgr::Role::Node
                && n.id != a_node.id
                && n.status == sion_companion_mgr::Status::Alive
        });
        if let Some(n) = remote {
            break n.clone();
        }
        assert!(
            Instant::now() < deadline,
            "LAN A never saw LAN B's node in 60 s: {:?}\ngateway A:\n{}\ngateway B:\n{}",
            report,
            std::fs::read_to_string(&gw_a.log).unwrap_or_default(),
            std::fs::read_to_string(&gw_b.log).unwrap_or_default(),
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let seen_after = t_gateways.elapsed();
    let stand_in = b_node.address;
    assert_eq!(
        &stand_in.octets()[..3],
        &[169, 254, 255],
        "LAN B's node stands in LAN A at an address of 169.254.255.0/24"
    );
    assert_eq!(
        b_node.id.to_string(),
        "52:54:00:53:4e:10",
        "LAN B's node keeps its own id"
    );
    let table = lan_a.run(
        &strings(&[HOSTD, "--socket", &socket, "nodes"]),
        &dir,
        b"",
        &key_env,
    );
    println!(
        "LAN B's node {} seen in LAN A at {stand_in} {:.1?} after the gateways started; hostd nodes in LAN A:\n{}",
        b_node.name,
        seen_after,
        String::from_utf8_lossy(&table.stdout)
    );

    // Junk at both gateways: from the peer's address to gateway B's port,
    // and from LAN A to LAN B's node's stand-in.
    send_junk(&lan_a, &format!("{GW_B}/7422"), 5, &dir);
    send_junk(&lan_a, &format!("{stand_in}/7420"), 3, &dir);

    // Keep LAN A's only node busy, then submit exclusive jobs in LAN A.
    let mut busy = Background::start(
        &lan_a,
        "busy-job",
        &strings(&[
            HOSTD,
            "--socket",
            &socket,
            "submit",
            "--node",
            &a_node.id.to_string(),
            "./busybox",
            "sleep",
            "120",
        ]),
        &dir,
        &key,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = nodes(&lan_a, &socket, &dir, &key);
        if report
            .iter()
            .any(|n| n.id == a_node.id && n.running_jobs > 0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "LAN A's node never ran the busy job: {:?}\n{}",
            report,
            std::fs::read_to_string(&busy.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let jobs: [&[&str]; 2] = [
        &["sha256sum", "words.txt"],
        &[
            "sh",
            "-c",
            "sort -k3 -n words.txt | uniq -c -f2 | tail -3 > out.txt; gzip -c out.txt | gunzip -c | md5sum; wc -l < out.txt",
        ],
    ];
    for args in jobs {
        let what = format!("busybox {}", args.join(" "));
        let mut argv = strings(&[
            HOSTD,
            "--socket",
            &socket,
            "submit",
            "--verbose",
            "--json",
            "./busybox",
        ]);
        argv.extend(strings(args));
        let t = Instant::now();
        let out = lan_a.run(&argv, &dir, b"", &key_env);
        let took = t.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let summary: SubmitSummary = stderr
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("{what}: no JSON summary:\n{stderr}\n{}", lan_b.log(0)));
        assert_eq!(
            summary.node.id.as_deref(),
            Some("52:54:00:53:4e:10"),
            "{what} ran on LAN B's node:\n{stderr}"
        );
        assert_eq!(summary.node.address, stand_in);
        let host = Command::new("/bin/busybox")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        common::assert_as_on_host(&what, &out, &host, &lan_b.log(0));
        println!(
            "{what}: ran on {} (LAN B) in {took:.1?}: placement {:.1} ms, upload {:.1} ms, run {:.1} ms; output {:?}",
            summary.node.name.as_deref().unwrap_or("?"),
            summary.timings_ms.placement,
            summary.timings_ms.upload,
            summary.timings_ms.run,
            String::from_utf8_lossy(&out.stdout).trim()
        );
        for line in stderr
            .lines()
            .filter(|l| l.contains("RANK") || l.contains("52:54:00:53:4e") || l.contains("denied"))
        {
            println!("    {line}");
        }
    }

    // The nodes took every datagram the gateways re-sealed.
    for (lan, name) in [(&lan_a, "A"), (&lan_b, "B")] {
        let log = lan.log(0);
        let last = log
            .lines()
            .rev()
            .find(|l| l.contains("unauthenticated datagrams dropped:"))
            .unwrap_or_else(|| panic!("LAN {name}'s node shows no drop count:\n{log}"));
        assert!(
            last.contains("dropped: 0 "),
            "LAN {name}'s node dropped datagrams: {last}"
        );
    }

    busy.stop();
    daemon.stop();
    let log_a = gw_a.stop();
    let log_b = gw_b.stop();
    let (ca, cb) = (counters(&log_a), counters(&log_b));
    println!("gateway A: {}", log_a.lines().rev().nth(1).unwrap_or(""));
    println!("gateway B: {}", log_b.lines().rev().nth(1).unwrap_or(""));
    assert!(
        cb.unauthenticated >= 5,
        "gateway B counted the junk from the peer's address as unauthenticated: {log_b}"
    );
    assert!(
        log_a.contains("cluster key") && !log_a.contains("open group"),
        "gateway A is keyed:\n{log_a}"
    );
    assert!(
        ca.malformed_lan >= 3,
        "gateway A counted the junk sent to a stand-in: {log_a}"
    );
    assert!(ca.to_peer > 0 && ca.from_peer > 0 && cb.to_peer > 0 && cb.from_peer > 0);
    assert!(
        ca.connections >= 2 && cb.connections >= 2,
        "both job connections were relayed: A {ca:?}, B {cb:?}"
    );
    assert!(
        ca.bytes_to_node > 1_000_000,
        "the program went through: {ca:?}"
    );
    for (log, name) in [(&log_a, "A"), (&log_b, "B")] {
        assert!(
            log.contains("stand-in addresses given back"),
            "gateway {name} stopped cleanly:\n{log}"
        );
    }
    let left = Command::new("ip")
        .args(["-n", &lan_a.netns(), "-4", "addr", "show", "dev", "br0"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.contains("169.254.255."),
        "gateway A left stand-in addresses behind:\n{left}"
    );
    println!("gateway test done in {:.1?}", started.elapsed());
}
