//! No job and no dead peer takes a node out (issue 9), on a two-node qemu-net
//! LAN booted from `target/sion.img`:
//!
//! 1. **Hostile instructions.** An i386 program that executes `syscall` ends
//!    with SIGILL (status 132: the kernel's CSTAR entry, as Intel CPUs raise
//!    #UD); one that executes `sysenter` with SIGSEGV (139: #GP, since the
//!    kernel leaves IA32_SYSENTER_CS zero); an x86_64 program running `sgdt`
//!    with SIGSEGV (139: UMIP is on); the node then runs a job. A fuzzer
//!    (`tests/programs/sysfuzz.c`) makes 20,000 system calls with random
//!    numbers and arguments on each ABI, and the node runs the next job.
//! 2. **A held job port.** Ten idle connections and a slow upload (a `Start`,
//!    then one program byte every 4 s) are held against node 0 while a
//!    `hostd submit --node` to it completes within seconds; the node drops
//!    the idle connections after 10 s and the slow upload once it falls below
//!    the minimum rate, and says so in its log.
//! 3. **A dead peer.** Node 1 is killed; 10 s and 60 s later node 0 still
//!    answers `hostd nodes` and runs a placed job. A member whose address
//!    nobody answers ARP for (a join announced by the test for a machine
//!    that does not exist) makes node 0 send into the void: its log shows
//!    the unanswered datagrams dropped after 3 s while it goes on serving.
//!    (SWIM probes node 1 every second, so its ARP entry never expires
//!    before its death is known and nothing more is sent to it: the void
//!    needs the made-up member.)
//!
//! Needs root, QEMU, musl-gcc and gcc-multilib (CI has them); otherwise it
//! prints why and passes, unless `SION_REQUIRE_ALL=1`.

mod common;

use common::{BootedLan, alive_nodes};
use qemu_net::prereq::{GCC, MUSL_GCC, QEMU, multilib_missing, must_skip, skip};
use sion_app_mgr::job::{self, HostMsg, PROTOCOL_VERSION, Start};
use sion_hostd::model::NodesReport;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");
/// qemu-net gives node 0 this MAC.
const NODE0: &str = "52:54:00:53:4e:00";

/// The LAN and the job directory the tests submit from.
struct Cluster {
    booted: BootedLan,
    job_dir: PathBuf,
}

impl Cluster {
    /// `hostd ARGS…` inside the LAN, run in the job directory, killed after
    /// 120 s.
    fn hostd(&self, args: &[&str]) -> Output {
        let mut cmd: Vec<String> = vec![HOSTD.into()];
        cmd.extend(args.iter().map(|s| s.to_string()));
        self.booted.run(&cmd, &self.job_dir, b"", &[])
    }

    fn log(&self, index: usize) -> String {
        self.booted.log(index)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn expect(out: &Output, code: i32, stdout: &str) {
    assert_eq!(
        (out.status.code(), text(&out.stdout).as_str()),
        (Some(code), stdout),
        "stderr: {}",
        text(&out.stderr)
    );
}

/// What the connection holder saw.
#[derive(Debug, Default)]
struct Held {
    /// Idle connections the node closed or reset.
    idle_dropped: usize,
    /// When the node ended the slow upload (since it began), if it did.
    slow_dropped_after: Option<Duration>,
    /// What the node said to the slow upload.
    slow_answer: String,
}

/// From inside the LAN's namespace (this thread only), holds `idle`
/// connections that send nothing and one slow upload (a `Start` for a 4 KiB
/// program, then a 1-byte chunk every 4 s) against `node`'s job port until
/// `stop` is set or the node has dropped them all.
fn hold(netns: String, node: SocketAddrV4, idle: usize, stop: Arc<AtomicBool>) -> Held {
    let ns = std::fs::File::open(format!("/run/netns/{netns}")).expect("the LAN's namespace");
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("entering the LAN");
    let connect = || TcpStream::connect_timeout(&node.into(), Duration::from_secs(5));
    let idlers: Vec<TcpStream> = (0..idle)
        .map(|_| connect().expect("an idle connection"))
        .collect();
    let mut slow = connect().expect("the slow connection");
    let start = Start {
        version: PROTOCOL_VERSION,
        argv: vec![b"./slow".to_vec()],
        program_len: 4096,
        cwd: b"/".to_vec(),
        queue: true,
        exclusive: false,
        restore: false,
        ..Start::default()
    };
    slow.write_all(&job::encode(&HostMsg::Start(start)).unwrap())
        .unwrap();
    let began = Instant::now();
    let mut held = Held::default();
    let mut next_byte = began;
    while !stop.load(Ordering::SeqCst) && held.slow_dropped_after.is_none() {
        if Instant::now() >= next_byte {
            next_byte += Duration::from_secs(4);
            let frame = job::encode(&HostMsg::Program(vec![0])).unwrap();
            if slow.write_all(&frame).is_err() {
                held.slow_dropped_after = Some(began.elapsed());
            }
        }
        slow.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 4096];
        match slow.read(&mut buf) {
            Ok(0) => held.slow_dropped_after = Some(began.elapsed()),
            Ok(n) => {
                held.slow_answer.push_str(&text(&buf[..n]));
                held.slow_dropped_after = Some(began.elapsed());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => held.slow_dropped_after = Some(began.elapsed()),
        }
    }
    for mut c in idlers {
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut b = [0u8; 16];
        // End of stream or a reset: the node dropped it; a timeout: still open.
        match c.read(&mut b) {
            Ok(0) => held.idle_dropped += 1,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => held.idle_dropped += 1,
            _ => {}
        }
        let _ = c.shutdown(Shutdown::Both);
    }
    held
}

#[test]
fn no_job_and_no_dead_peer_takes_a_node_out() {
    if must_skip(true, &[QEMU, MUSL_GCC, GCC]) {
        return;
    }
    if let Some(why) = multilib_missing() {
        skip(&why);
        return;
    }
    let job_dir = common::job_dir("survival");
    let i386 = ["-m32", "-nostdlib", "-static"];
    common::build_program(&job_dir, "gcc", &i386, "syscall32.S", "syscall32");
    common::build_program(
        &job_dir,
        "gcc",
        &[&i386[..], &["-DSYSENTER"]].concat(),
        "syscall32.S",
        "sysenter32",
    );
    common::build_program(&job_dir, "musl-gcc", &["-static", "-O2"], "sgdt.c", "sgdt");
    common::build_program(
        &job_dir,
        "musl-gcc",
        &["-static", "-O2"],
        "hello.c",
        "hello",
    );
    common::build_program(
        &job_dir,
        "musl-gcc",
        &["-static", "-O2"],
        "sysfuzz.c",
        "sysfuzz64",
    );
    common::build_program(
        &job_dir,
        "gcc",
        &["-m32", "-static", "-O2"],
        "sysfuzz.c",
        "sysfuzz32",
    );
    // The fuzzer's random paths land in a directory of their own.
    std::fs::create_dir_all(job_dir.join("fuzz")).unwrap();

    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let cluster = Cluster {
        booted: BootedLan::boot("sv", image, &[256, 256]),
        job_dir,
    };
    let submit0 = |args: &[&str]| {
        let mut v = vec!["submit", "--node", NODE0];
        v.extend_from_slice(args);
        cluster.hostd(&v)
    };

    // 1. Hostile instructions end the program, not the node.
    let before = "before the fast system call\n";
    expect(&submit0(&["./syscall32"]), 132, before);
    expect(&submit0(&["./sysenter32"]), 139, before);
    expect(&submit0(&["./sgdt"]), 139, "about to run sgdt\n");
    expect(&submit0(&["./hello"]), 0, "hello from SiON\n");
    let log = cluster.log(0);
    assert!(log.contains("cpu: SMEP on, SMAP on, UMIP on"), "{log}");
    assert!(log.contains("syscall instruction in 32-bit code"), "{log}");
    // 20,000 random system calls on each ABI, then the node serves a job.
    for abi in ["sysfuzz64", "sysfuzz32"] {
        let t = Instant::now();
        let program = format!("./{abi}");
        let out = submit0(&["--dir", "fuzz", &program, "20000", "0x5105"]);
        assert_eq!(out.status.code(), Some(0), "{abi}: {}", text(&out.stderr));
        let said = text(&out.stdout);
        assert!(said.starts_with("sysfuzz: 20000 calls, "), "{abi}: {said}");
        eprintln!("figures: {abi}: {} in {:?}", said.trim(), t.elapsed());
        expect(&submit0(&["./hello"]), 0, "hello from SiON\n");
    }

    // 2. Ten idle connections and a slow upload do not hold the job port.
    let node0 = SocketAddrV4::new(cluster.booted.address(0), sion_abi::net::JOB_PORT);
    let stop = Arc::new(AtomicBool::new(false));
    let holder = {
        let (netns, stop) = (cluster.booted.netns(), stop.clone());
        std::thread::spawn(move || hold(netns, node0, 10, stop))
    };
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    expect(&submit0(&["./hello"]), 0, "hello from SiON\n");
    let took = t.elapsed();
    eprintln!(
        "figures: hostd submit --node with 10 idle connections and a slow upload held: {took:?}"
    );
    assert!(took < Duration::from_secs(20), "the submit took {took:?}");
    // The slow upload falls below 256 KiB/s after the 30 s grace.
    std::thread::sleep(Duration::from_secs(32));
    stop.store(true, Ordering::SeqCst);
    let held = holder.join().expect("the holder thread");
    eprintln!("held: {held:?}");
    assert_eq!(held.idle_dropped, 10, "{held:?}");
    assert!(
        held.slow_answer.contains("arrived too slowly"),
        "{held:?}\n{}",
        cluster.log(0)
    );
    let log = cluster.log(0);
    // Each idle connection was dropped: after 10 s, or earlier when newer
    // connections filled the lobby's places for connections without a job.
    let dropped = log.matches("dropped: no job within 10 s").count()
        + log.matches("newer connections wait").count();
    assert_eq!(dropped, 10, "{log}");
    expect(&submit0(&["./hello"]), 0, "hello from SiON\n");

    // 3. A member nobody answers ARP for, then node 1 dies.
    announce_ghost(&cluster);
    cluster.booted.lan.kill_node(1).expect("kill-node 1");
    let killed = Instant::now();
    for check_at in [Duration::from_secs(10), Duration::from_secs(60)] {
        if let Some(left) = check_at.checked_sub(killed.elapsed()) {
            std::thread::sleep(left);
        }
        let out = cluster.hostd(&["nodes", "--json"]);
        let nodes: NodesReport = serde_json::from_slice(&out.stdout).expect("hostd nodes --json");
        let alive: Vec<String> = alive_nodes(&nodes).iter().map(|n| n.to_string()).collect();
        assert_eq!(
            alive,
            [NODE0],
            "{check_at:?} after the kill:\n{}",
            cluster.log(0)
        );
        let out = cluster.hostd(&["submit", "./hello"]);
        expect(&out, 0, "hello from SiON\n");
        eprintln!("{check_at:?} after node 1 died, node 0 answers and runs jobs");
    }
    let log = cluster.log(0);
    assert!(
        log.contains("did not answer ARP within 3 s: dropped"),
        "node 0 never sent into the void, so the test did not test it:\n{log}"
    );
    assert!(!log.contains("queue full"), "{log}");
    assert!(
        !log.contains("panicked") && !log.contains("KERNEL"),
        "{log}"
    );
}

/// Tells node 0, in a probe from a made-up member X (sent from the LAN's
/// bridge), that a second made-up member lives at 169.254.77.77, where no
/// machine answers ARP: node 0 learns it by gossip and probes it, and those
/// datagrams wait for an ARP reply that never comes.
fn announce_ghost(cluster: &Cluster) {
    use sion_companion_mgr::wire::{Announce, Update};
    use sion_companion_mgr::{Addr, Message, Name, NodeId, Role, node::NodeState};
    let announce = |id: NodeId, ip: [u8; 4]| Announce {
        id,
        incarnation: 1,
        seq: 1,
        role: Role::Node,
        name: Name::derive(id),
        addr: Addr::new(ip, sion_hostd::envelope::IPC_PORT),
        state: NodeState::default(),
    };
    let x = NodeId::from_mac([0x02, 0, 0, 0, 0x77, 0x01]);
    let ghost = NodeId::from_mac([0x02, 0, 0, 0, 0x77, 0x77]);
    let node0 = NodeId::from_mac([0x52, 0x54, 0x00, 0x53, 0x4e, 0x00]);
    let ping = Message::Ping {
        from: announce(x, [169, 254, 0, 1]),
        nonce: 7,
        target: node0,
        updates: vec![Update::Alive(announce(ghost, [169, 254, 77, 77]))],
    }
    .encode()
    .expect("a ping encodes");
    let datagram = sion_hostd::envelope::wrap(x, false, &ping).expect("an envelope");
    let hex: String = datagram.iter().map(|b| format!("{b:02x}")).collect();
    let port = sion_hostd::envelope::IPC_PORT;
    let script = format!(
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
         s.bind(('0.0.0.0', {port})); \
         s.sendto(bytes.fromhex('{hex}'), ('{}', {port}))",
        cluster.booted.address(0)
    );
    let out = cluster
        .booted
        .lan
        .command(&["python3".to_string(), "-c".to_string(), script])
        .expect("a command in the LAN")
        .output()
        .expect("python3");
    assert!(out.status.success(), "sending the ghost's news: {out:?}");
}
