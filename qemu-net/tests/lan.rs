//! Integration tests of the `qemu-net` binary with real QEMUs booting the real
//! node image (`sion_image::build(Flavor::Node)`): taps on a bridge inside the
//! LAN's namespace, `exec`, `status`, `kill-node`, `--wait`, `--foreground`,
//! stale-run cleanup, `down`, and the unprivileged (user namespace) path.
//!
//! They need root (CI runs as root) and `qemu-system-x86_64`; without either
//! they print why and pass. Every test uses its own LAN name and run
//! directory, runs `qemu-net down` and kills any QEMU it recorded when it
//! ends, and sends nothing outside the namespaces it creates.

mod common;

use common::{TestLan, eventually, image, must_skip, serial};
use qemu_net::process::net_ns_of;
use qemu_net::state::Isolation;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_qemu-net");

/// `ip -n NETNS -j ARGS…` parsed.
fn ip_json(netns: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("ip")
        .args(["-n", netns, "-j"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn netns_list() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned()
}

fn netns_listed(name: &str) -> bool {
    netns_list()
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn cmdline_of(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn ns_id(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

#[test]
fn up_puts_nodes_on_taps_in_the_namespace_and_down_removes_everything() {
    if must_skip() {
        return;
    }
    let _serial = serial();
    let lan = TestLan::new("up");
    let netns = lan.netns();

    let out = lan.up(&[
        "--nodes",
        "2",
        "--memory",
        "128,160",
        "--cmdline",
        "qemu-net-test=1",
    ]);
    assert!(out.status.success());
    let state = lan.state().expect("up writes the state file");
    assert_eq!(
        state.isolation,
        Isolation::Netns {
            netns: netns.clone()
        }
    );
    assert!(netns_listed(&netns), "{}", netns_list());

    // Both QEMUs run inside the namespace, each on its own tap with its MAC.
    let ns = ns_id(&Path::new("/run/netns").join(&netns));
    let host_ns = net_ns_of(std::process::id() as i32).unwrap();
    assert_ne!(ns, host_ns);
    let mut pids = Vec::new();
    for (k, node) in state.nodes.iter().enumerate() {
        let p = node.process.expect("node has a pid");
        assert!(p.is_alive(), "node {k}'s QEMU runs");
        pids.push(p);
        let cmdline = cmdline_of(p.pid);
        assert!(cmdline.starts_with("qemu-system-x86_64 "), "{cmdline}");
        assert!(cmdline.contains(&format!("ifname=tap{k},")), "{cmdline}");
        assert!(
            cmdline.contains(&format!("mac=52:54:00:53:4e:0{k}")),
            "{cmdline}"
        );
        assert!(cmdline.contains("-snapshot"), "{cmdline}");
        assert!(
            cmdline.contains("-fw_cfg name=opt/sion/cmdline,string=qemu-net-test=1"),
            "{cmdline}"
        );
        assert!(
            cmdline.contains(&format!("-m {}M", [128, 160][k])),
            "{cmdline}"
        );
        assert_eq!(net_ns_of(p.pid), Some(ns), "node {k} is in {netns}");
    }

    // Inside: lo, br0 with 169.254.0.1/16, tap0 and tap1 on the bridge; nothing else.
    let links = ip_json(&netns, &["link", "show"]);
    let mut names: Vec<&str> = links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["br0", "lo", "tap0", "tap1"]);
    for tap in ["tap0", "tap1"] {
        let l = links
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["ifname"] == tap)
            .unwrap();
        assert_eq!(l["master"], "br0", "{l}");
        assert!(
            l["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            "{l}"
        );
    }
    let addrs = ip_json(&netns, &["addr", "show", "dev", "br0"]);
    let br = &addrs[0]["addr_info"];
    assert!(
        br.as_array()
            .unwrap()
            .iter()
            .any(|a| a["local"] == "169.254.0.1" && a["prefixlen"] == 16),
        "{addrs}"
    );

    // status --json lists both nodes alive with their MAC and memory.
    let status = lan.status_json();
    assert_eq!(status["up"], true);
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for (k, mem) in [(0, 128), (1, 160)] {
        assert_eq!(nodes[k]["alive"], true);
        assert_eq!(nodes[k]["pid"], pids[k].pid);
        assert_eq!(nodes[k]["mac"], format!("52:54:00:53:4e:0{k}"));
        assert_eq!(nodes[k]["memory_mb"], mem);
        assert!(
            nodes[k]["log"]
                .as_str()
                .unwrap()
                .ends_with(&format!("node-{k}.log"))
        );
    }
    assert!(lan.run_ok(&["status"]).contains("52:54:00:53:4e:01"));

    // A second `up` refuses and says what to do.
    let again = lan.up(&["--nodes", "1"]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already up") && err.contains("qemu-net down"),
        "{err}"
    );

    // exec runs host commands on the LAN, passing output and exit status through.
    let seen = lan.run_ok(&["exec", "--", "ip", "-br", "addr", "show", "br0"]);
    assert!(seen.contains("169.254.0.1/16"), "{seen}");
    // The same from Rust, for test programs.
    let api = qemu_net::Lan::new(&lan.name, Some(lan.run_dir.clone())).unwrap();
    let out = api
        .command(&["ip".into(), "-br".into(), "link".into()])
        .unwrap()
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("tap1"));
    let code = lan.run(&["exec", "--", "sh", "-c", "echo out; exit 7"]);
    assert_eq!(code.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&code.stdout), "out\n");

    // kill-node stops one node and leaves the other.
    lan.run_ok(&["kill-node", "1"]);
    assert!(!pids[1].is_alive());
    assert!(pids[0].is_alive());
    let status = lan.status_json();
    assert_eq!(status["nodes"][0]["alive"], true);
    assert_eq!(status["nodes"][1]["alive"], false);
    let bad = lan.run(&["kill-node", "5"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no node 5"));

    // down removes QEMUs, taps, bridge, namespace and state file; logs stay.
    let out = lan.run_ok(&["down"]);
    assert!(out.contains("is down"), "{out}");
    assert!(pids.iter().all(|p| !p.is_alive()));
    assert!(!netns_listed(&netns), "{}", netns_list());
    assert!(!Path::new("/run/netns").join(&netns).exists());
    assert!(lan.state().is_none());
    assert!(lan.run_dir.join("node-0.log").exists());
    assert!(lan.run_ok(&["down"]).contains("not up"));
    let status = lan.status_json();
    assert_eq!(status["up"], false);
    let exec = lan.run(&["exec", "--", "true"]);
    assert!(!exec.status.success());
    assert!(String::from_utf8_lossy(&exec.stderr).contains("qemu-net up"));
}

#[test]
fn wait_times_out_naming_the_nodes_and_their_logs() {
    if must_skip() {
        return;
    }
    let _serial = serial();
    let lan = TestLan::new("wait");
    // One second after QEMU starts, no node can be through its BIOS yet, let
    // alone have configured an address.
    let t = Instant::now();
    let out = lan.up(&["--nodes", "2", "--wait", "--wait-timeout", "1"]);
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timed out after 1 s"), "{err}");
    for k in 0..2 {
        let log = lan.run_dir.join(format!("node-{k}.log"));
        assert!(
            err.contains(&format!(
                "node {k}: QEMU still running, log {}",
                log.display()
            )),
            "{err}"
        );
    }
    assert!(err.contains("qemu-net down"), "{err}");
    // The nodes were left up for inspection; down takes them away.
    let state = lan.state().unwrap();
    assert_eq!(state.alive_nodes(), 2);
    lan.run_ok(&["down"]);
    assert_eq!(state.alive_nodes(), 0);
}

#[test]
fn wait_reports_each_nodes_address_when_the_kernel_configures_one() {
    if must_skip() {
        return;
    }
    let _serial = serial();
    let image_bytes = std::fs::read(image()).unwrap();
    if !image_bytes
        .windows(b"net: configured ".len())
        .any(|w| w == b"net: configured ")
    {
        qemu_net::prereq::skip(
            "this image's kernel never logs `net: configured` (no networking yet)",
        );
        return;
    }
    let lan = TestLan::new("addr");
    let netns = lan.netns();
    let out = lan.up(&["--nodes", "2", "--wait", "--wait-timeout", "120"]);
    assert!(out.status.success());
    let status = lan.status_json();
    let mut addrs = Vec::new();
    for k in 0..2 {
        let a: std::net::Ipv4Addr = status["nodes"][k]["address"]
            .as_str()
            .expect("address logged")
            .parse()
            .unwrap();
        let o = a.octets();
        // RFC 3927 §2.1: 169.254.1.0 – 169.254.254.255 (unless a DHCP server answered,
        // and there is none on this LAN).
        assert!(
            o[0] == 169 && o[1] == 254 && (1..=254).contains(&o[2]),
            "node {k}: {a}"
        );
        addrs.push(a);
    }
    assert_ne!(addrs[0], addrs[1]);
    // The host side reaches each node at that address: a datagram from inside
    // the namespace makes the bridge ARP for it, and the node answers with its MAC.
    for (k, a) in addrs.iter().enumerate() {
        let mac = format!("52:54:00:53:4e:0{k}");
        let found = eventually(Duration::from_secs(10), || {
            lan.run(&[
                "exec",
                "--",
                "bash",
                "-c",
                &format!("echo probe > /dev/udp/{a}/9"),
            ]);
            ip_json(&netns, &["neigh", "show", "dev", "br0"])
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["dst"] == a.to_string() && n["lladdr"] == mac.as_str())
        });
        assert!(found, "no ARP answer from node {k} at {a}");
    }
    lan.run_ok(&["down"]);
}

#[test]
fn stale_runs_and_leftover_namespaces_are_cleaned_up() {
    if must_skip() {
        return;
    }
    let _serial = serial();
    let lan = TestLan::new("stale");
    let netns = lan.netns();

    // A crash: the QEMU dies, the state file and namespace stay.
    assert!(lan.up(&["--nodes", "1"]).status.success());
    let p = lan.state().unwrap().nodes[0].process.unwrap();
    assert!(p.signal(nix::sys::signal::Signal::SIGKILL));
    assert!(eventually(Duration::from_secs(10), || !p.is_alive()));
    assert!(lan.run_ok(&["status"]).contains("stale"));
    let out = lan.up(&["--nodes", "1"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale run"));
    let p2 = lan.state().unwrap().nodes[0].process.unwrap();
    assert!(p2.is_alive());
    lan.run_ok(&["down"]);
    assert!(!p2.is_alive());

    // A namespace left without a state file (with a process inside) is removed by `up`…
    assert!(
        Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .unwrap()
            .success()
    );
    let mut squatter = Command::new("ip")
        .args(["netns", "exec", &netns, "sleep", "60"])
        .spawn()
        .unwrap();
    let ns = ns_id(&Path::new("/run/netns").join(&netns));
    assert!(eventually(Duration::from_secs(10), || {
        net_ns_of(squatter.id() as i32) == Some(ns)
    }));
    let out = lan.up(&["--nodes", "1"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("leftover network namespace"));
    assert!(eventually(Duration::from_secs(5), || squatter
        .try_wait()
        .unwrap()
        .is_some()));
    lan.run_ok(&["down"]);
    // …and by `down`.
    Command::new("ip")
        .args(["netns", "add", &netns])
        .status()
        .unwrap();
    assert!(lan.run_ok(&["down"]).contains("leftover"));
    assert!(!netns_listed(&netns));
}

#[test]
fn foreground_stays_and_tears_down_on_sigterm() {
    if must_skip() {
        return;
    }
    let _serial = serial();
    let lan = TestLan::new("fg");
    let netns = lan.netns();
    let mut fg = lan
        .cmd()
        .args(["up", "--foreground", "--nodes", "1", "--image"])
        .arg(image())
        .spawn()
        .unwrap();
    let started = eventually(Duration::from_secs(30), || {
        lan.state()
            .is_some_and(|s| s.nodes[0].process.is_some_and(|p| p.is_alive()))
    });
    let state = lan.state();
    if !started {
        let _ = fg.kill();
        let _ = fg.wait();
        panic!("the foreground run did not start: {state:?}");
    }
    let state = state.unwrap();
    assert_eq!(state.supervisor.map(|s| s.pid), Some(fg.id() as i32));
    // Give it time to pass its start-up check and enter its loop.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(fg.try_wait().unwrap().is_none(), "--foreground stays");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fg.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let ended = eventually(Duration::from_secs(20), || fg.try_wait().unwrap().is_some());
    if !ended {
        let _ = fg.kill();
    }
    let status = fg.wait().unwrap();
    assert!(ended, "--foreground did not end on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!state.nodes[0].process.unwrap().is_alive());
    assert!(!netns_listed(&netns));
    assert!(lan.state().is_none());
}

/// Whether `/dev/net/tun` is open to every user (mode o+rw).
fn tun_open_to_all() -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata("/dev/net/tun").is_ok_and(|m| m.permissions().mode() & 0o006 == 0o006)
}

#[test]
fn unprivileged_users_get_the_lan_in_a_user_namespace() {
    if must_skip() {
        return;
    }
    if qemu_net::prereq::must_skip(false, &[qemu_net::prereq::SETPRIV]) {
        return;
    }
    let _serial = serial();
    let lan = TestLan::new("user");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&lan.run_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let image = image().to_str().unwrap().to_string();
    let as_nobody = |args: &[&str], private_tun: bool| -> Output {
        let mut argv: Vec<String> = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "env",
            "HOME=/tmp",
            BIN,
            "--name",
            &lan.name,
            "--run-dir",
            lan.run_dir.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = if private_tun {
            // This machine's /dev/net/tun is root-only (0600; most systems
            // have 0666). Give the test user a 0666 node in a private mount
            // namespace instead of changing the machine's.
            let tun = lan.run_dir.join("tun");
            let script = format!(
                "rm -f {t}; mknod {t} c 10 200 && chmod 666 {t} && mount --bind {t} /dev/net/tun && exec \"$@\"",
                t = tun.display()
            );
            let mut c = Command::new("unshare");
            c.args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"]);
            c.args(&argv);
            c
        } else {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        };
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        eprintln!(
            "$ (nobody) qemu-net {}\n{}{}-> {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status
        );
        out
    };

    let private_tun = !tun_open_to_all();
    if private_tun {
        // Without access to /dev/net/tun the user is told what to do.
        let out = as_nobody(&["up", "--nodes", "1", "--image", &image], false);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("/dev/net/tun") && err.contains("root"),
            "{err}"
        );
    }
    let out = as_nobody(&["up", "--nodes", "2", "--image", &image], private_tun);
    assert!(out.status.success());
    let state = lan.state().unwrap();
    let Isolation::Userns { holder } = state.isolation else {
        panic!("an unprivileged run uses a user namespace: {state:?}")
    };
    let ns = net_ns_of(holder.pid).unwrap();
    assert_ne!(ns, net_ns_of(std::process::id() as i32).unwrap());
    for node in &state.nodes {
        let p = node.process.unwrap();
        assert!(p.is_alive());
        assert_eq!(net_ns_of(p.pid), Some(ns));
        let uid = std::fs::read_to_string(format!("/proc/{}/status", p.pid)).unwrap();
        assert!(
            uid.lines()
                .any(|l| l.starts_with("Uid:") && l.contains("65534")),
            "QEMU runs as the user"
        );
    }
    // Nothing appeared in the named namespaces.
    assert!(!netns_listed(&lan.netns()));

    let seen = as_nobody(&["exec", "--", "ip", "-br", "link"], false);
    assert!(seen.status.success());
    let text = String::from_utf8_lossy(&seen.stdout);
    for dev in ["br0", "tap0", "tap1"] {
        assert!(text.contains(dev), "{text}");
    }
    let seen = as_nobody(&["exec", "--", "ip", "-br", "addr", "show", "br0"], false);
    assert!(String::from_utf8_lossy(&seen.stdout).contains("169.254.0.1/16"));
    assert_eq!(
        as_nobody(&["exec", "--", "sh", "-c", "exit 3"], false)
            .status
            .code(),
        Some(3)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&as_nobody(&["status", "--json"], false).stdout).unwrap();
    assert_eq!(status["isolation"]["kind"], "userns");
    assert_eq!(status["nodes"][1]["alive"], true);

    assert!(as_nobody(&["down"], false).status.success());
    assert!(!holder.is_alive());
    assert!(state.nodes.iter().all(|n| !n.process.unwrap().is_alive()));
    assert!(lan.state().is_none());
}
