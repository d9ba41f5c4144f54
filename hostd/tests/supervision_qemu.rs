//! Supervision (issue 14): `init` restarts a node's service that dies, and
//! the node keeps serving without a reboot. One QEMU node at a time, booted
//! from `target/sion.img` with the test hook `crash=SERVICE:SECONDS` (a boot
//! argument: `init` kills the service once, that long after its start):
//!
//! 1. **The App-Program Manager.** A job (Debian's static busybox,
//!    `echo`) is served; the hook kills the manager; the node's log shows
//!    the kill and `init`'s restart line; a second job is served and the
//!    node is still alive in the group (`hostd nodes --json`).
//! 2. **The Companion Manager.** The hook kills it; `init` restarts it and
//!    restarts the App-Program Manager for it; the new Companion Manager
//!    rejoins (the node is alive in `hostd nodes --json`, which asks the
//!    group afresh) and a job placed by the group (no `--node`) is served.
//!
//! Needs root, QEMU and busybox-static (CI has them); otherwise it prints why
//! and passes, unless `SION_REQUIRE_ALL=1`.

mod common;

use common::{BootedLan, alive_nodes};
use qemu_net::prereq::{BUSYBOX_STATIC, QEMU, must_skip};
use sion_hostd::model::NodesReport;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");
/// qemu-net gives node 0 this MAC.
const NODE0: &str = "52:54:00:53:4e:00";
/// When the hook kills the service, in seconds after its start: time for
/// the node to boot and serve a first job under TCG on a shared machine.
const CRASH_AFTER_S: u64 = 45;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `hostd ARGS…` inside the LAN, in `dir`.
fn hostd(lan: &BootedLan, dir: &Path, args: &[&str]) -> Output {
    let mut cmd: Vec<String> = vec![HOSTD.into()];
    cmd.extend(args.iter().map(|s| s.to_string()));
    lan.run(&cmd, dir, b"", &[])
}

/// Asserts a `busybox echo WORD` job printed `WORD` and exited 0.
#[track_caller]
fn assert_echo(out: &Output, word: &str, log: &str) {
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), format!("{word}\n")),
        "stderr: {}\nnode log:\n{log}",
        text(&out.stderr)
    );
}

/// Waits up to `limit` for node 0's log to hold `needle` `count` times.
#[track_caller]
fn wait_for_log(lan: &BootedLan, needle: &str, count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let log = lan.log(0);
        if log.matches(needle).count() >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {count}× {needle:?} in the node's log within {limit:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asserts node 0 is the one alive node `hostd nodes --json` reports.
#[track_caller]
fn assert_alive(lan: &BootedLan, dir: &Path) {
    let out = hostd(lan, dir, &["nodes", "--json"]);
    let nodes: NodesReport = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "hostd nodes --json: {e}; stderr: {}\n{}",
            text(&out.stderr),
            lan.log(0)
        )
    });
    let alive: Vec<String> = alive_nodes(&nodes).iter().map(|n| n.to_string()).collect();
    assert_eq!(alive, [NODE0], "{}", lan.log(0));
}

/// `hostd submit` arguments for `./busybox echo WORD`, on node 0 if `node`
/// or where the group places it.
fn echo(word: &str, node: bool) -> Vec<&str> {
    let mut v = vec!["submit"];
    if node {
        v.extend(["--node", NODE0]);
    }
    v.extend(["./busybox", "echo", word]);
    v
}

fn boot(prefix: &str, service: &str) -> BootedLan {
    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let cmdline = format!("crash={service}:{CRASH_AFTER_S}");
    BootedLan::boot_with(prefix, image, &[256], &[], &[], &cmdline)
}

#[test]
fn init_restarts_a_killed_service_and_the_node_serves_again() {
    if must_skip(true, &[QEMU, BUSYBOX_STATIC]) {
        return;
    }
    let dir: PathBuf = common::job_dir("supervision");
    std::fs::copy("/bin/busybox", dir.join("busybox")).unwrap();
    let limit = Duration::from_secs(CRASH_AFTER_S + 60);

    // 1. The App-Program Manager.
    let lan = boot("sup-apm", "app-mgr");
    let booted = Instant::now();
    let out = hostd(&lan, &dir, &echo("first", true));
    assert_echo(&out, "first", &lan.log(0));
    if lan.log(0).contains("TEST HOOK: killing") {
        eprintln!("note: the first job ended after the hook fired ({CRASH_AFTER_S} s too short)");
    } else {
        eprintln!("first job served {:?} after boot", booted.elapsed());
    }
    wait_for_log(&lan, "init: TEST HOOK: killing app-mgr", 1, limit);
    wait_for_log(
        &lan,
        "init: app-mgr ended (killed by signal 9); restarting it in 1 s",
        1,
        Duration::from_secs(10),
    );
    wait_for_log(&lan, "apm: taking jobs on port", 2, Duration::from_secs(60));
    let out = hostd(&lan, &dir, &echo("second", true));
    assert_echo(&out, "second", &lan.log(0));
    assert_alive(&lan, &dir);
    let log = lan.log(0);
    assert_eq!(log.matches("init: started app-mgr").count(), 2, "{log}");
    assert_eq!(
        log.matches("init: started companion-mgr").count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("panicked") && !log.contains("KERNEL"),
        "{log}"
    );
    drop(lan);

    // 2. The Companion Manager: it and the App-Program Manager restart.
    let lan = boot("sup-cm", "companion-mgr");
    let out = hostd(&lan, &dir, &echo("third", false));
    assert_echo(&out, "third", &lan.log(0));
    wait_for_log(&lan, "init: TEST HOOK: killing companion-mgr", 1, limit);
    wait_for_log(
        &lan,
        "init: companion-mgr ended (killed by signal 9); restarting it in 1 s",
        1,
        Duration::from_secs(10),
    );
    wait_for_log(&lan, "init: stopping app-mgr", 1, Duration::from_secs(10));
    wait_for_log(&lan, "apm: taking jobs on port", 2, Duration::from_secs(60));
    // The new Companion Manager has joined when the group places on it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = hostd(&lan, &dir, &echo("fourth", false));
        if out.status.success() {
            assert_echo(&out, "fourth", &lan.log(0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no job placed after the Companion Manager's restart: {}\n{}",
            text(&out.stderr),
            lan.log(0)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_alive(&lan, &dir);
    let log = lan.log(0);
    assert_eq!(
        log.matches("init: started companion-mgr").count(),
        2,
        "{log}"
    );
    assert_eq!(log.matches("init: started app-mgr").count(), 2, "{log}");
    assert!(
        !log.contains("panicked") && !log.contains("KERNEL"),
        "{log}"
    );
}
