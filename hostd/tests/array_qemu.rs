//! Job arrays on a real group (issue 16): three QEMU nodes, `hostd daemon`,
//! and `hostd submit --array 0-19` running Debian's busybox `expr {} '*' 3`
//! on them. Every task's output is checked against the value it must print;
//! task 0 (`expr 0 '*' 3` prints 0 and exits 1) is the failing task the
//! summary must report; the tasks spread over more than one node.
//!
//! Then `hostd jobs` during a run and `hostd cancel`: a `busybox sleep 60`
//! job shows as running on its node, is cancelled, ends with status 137 and
//! is listed as cancelled.
//!
//! Needs root, QEMU and busybox-static (CI has them).

mod common;

use common::BootedLan;
use qemu_net::prereq::{BUSYBOX_STATIC, QEMU, must_skip};
use sion_hostd::jobs as hostd_jobs;
use std::path::Path;
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");

#[test]
fn an_array_of_twenty_tasks_runs_over_three_nodes_and_reports_its_failure() {
    if must_skip(true, &[QEMU, BUSYBOX_STATIC]) {
        return;
    }
    let job = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("array-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&job);
    std::fs::create_dir_all(&job).unwrap();
    std::fs::copy("/bin/busybox", job.join("busybox")).unwrap();

    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let lan = BootedLan::boot("ar", image, &[256, 256, 256]);
    let daemon = lan.start_daemon(HOSTD);
    let socket = daemon.socket.display().to_string();
    lan.wait_alive(HOSTD, &socket, &job, 3, Duration::from_secs(30));

    let t = Instant::now();
    let cmd: Vec<String> = [
        HOSTD,
        "--socket",
        &socket,
        "submit",
        "--array",
        "0-19",
        "--output",
        "out/%a.txt",
        "--error",
        "err/%a.txt",
        "--json",
        "./busybox",
        "expr",
        "{}",
        "*",
        "3",
    ]
    .map(String::from)
    .to_vec();
    let out = lan.run(&cmd, &job, b"", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "figures: an array of 20 tasks over 3 nodes took {:?}\n{err}",
        t.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "one task failed:\n{err}");
    for n in 0..20 {
        let got = std::fs::read_to_string(job.join(format!("out/{n}.txt"))).unwrap();
        assert_eq!(got, format!("{}\n", n * 3), "task {n}");
    }
    assert!(err.contains("array of 20 tasks"), "{err}");
    assert!(err.contains("19 done, 1 failed"), "{err}");
    assert!(err.contains("task 0: exit status 1"), "{err}");
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the --json summary on stdout");
    assert_eq!(summary["tasks"], 20);
    assert_eq!(summary["done"], 19);
    assert_eq!(summary["failed"][0]["task"], "0");
    let per_node = summary["per_node"].as_object().expect("tasks per node");
    assert!(
        per_node.len() >= 2,
        "the tasks ran on one node only: {per_node:?}"
    );
    assert_eq!(
        per_node.values().filter_map(|v| v.as_u64()).sum::<u64>(),
        20,
        "{per_node:?}"
    );
    // `hostd jobs` while a job runs, then `hostd cancel`.
    let node0 = "52:54:00:53:4e:00";
    let cmd: Vec<String> = [
        HOSTD,
        "--socket",
        &socket,
        "submit",
        "--node",
        node0,
        "./busybox",
        "sleep",
        "60",
    ]
    .map(String::from)
    .to_vec();
    let mut sleeper = lan
        .lan
        .command(&cmd)
        .unwrap()
        .current_dir(&job)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let jobs = |lan: &BootedLan| -> hostd_jobs::JobsReport {
        let cmd: Vec<String> = [HOSTD, "--socket", &socket, "jobs", "--json"]
            .map(String::from)
            .to_vec();
        let out = lan.run(&cmd, &job, b"", &[]);
        serde_json::from_slice(&out.stdout).expect("hostd jobs --json")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let running = loop {
        let report = jobs(&lan);
        if let Some(j) = report
            .jobs
            .iter()
            .find(|j| j.state == "running" && j.program == "./busybox sleep 60")
        {
            break j.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no running job listed: {report:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(running.node.id, node0);
    assert!(running.from.contains('@'), "{running:?}");
    // The node's screen (its console) shows the job under the group table.
    let shown = format!(": job {}: ./busybox sleep 60 from", running.job);
    assert!(
        lan.log(0)
            .lines()
            .any(|l| l.contains("running on this node's CPU since") && l.contains(&shown)),
        "{}",
        lan.log(0)
    );
    let cmd: Vec<String> = [HOSTD, "--socket", &socket, "cancel", &running.id]
        .map(String::from)
        .to_vec();
    let out = lan.run(&cmd, &job, b"", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Instant::now();
    let status = loop {
        if let Some(s) = sleeper.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the cancelled job did not end"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(137), "SIGKILL's shell status");
    let after = jobs(&lan);
    assert!(
        after
            .jobs
            .iter()
            .any(|j| j.id == running.id && j.state == "cancelled"),
        "{after:?}"
    );
    // Cancelling it again finds nothing to end.
    let out = lan.run(&cmd, &job, b"", &[]);
    assert_eq!(out.status.code(), Some(1));

    let log = lan.log(0) + &lan.log(1) + &lan.log(2);
    assert!(
        !log.contains("panicked") && !log.contains("KERNEL"),
        "{log}"
    );
    drop(daemon);
}
