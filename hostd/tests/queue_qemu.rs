//! Reservations and the waiting queue (issue 14), on three QEMU nodes and a
//! `hostd daemon`: ten exclusive jobs (Debian's busybox `sleep 5`) are
//! submitted 0.4 s apart, more than the nodes can run at once.
//!
//! - Every job ends with status 0 after **one** placement: a node that
//!   permitted a job is held for it (other placements are denied
//!   `Reserved`), so no submitter is sent to a node another one took and
//!   none hears "busy; placing again".
//! - No two jobs overlap on one node; the jobs beyond the first three wait
//!   ("waiting for one") and are placed in the order they were submitted.
//! - While every node is busy, `hostd submit --no-wait` fails at once with
//!   a message that says why (busy or held nodes) and what to do.
//!
//! Needs root, QEMU and busybox-static (CI has them).

mod common;

use common::BootedLan;
use qemu_net::prereq::{BUSYBOX_STATIC, QEMU, must_skip};
use sion_hostd::submit::SubmitSummary;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");
const JOBS: usize = 10;

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// One submitted job: when it was started and what it said.
struct Submitted {
    spawned: Instant,
    child: Option<Child>,
    status: Option<i32>,
    stderr: String,
}

#[test]
fn exclusive_jobs_beyond_the_nodes_wait_in_order_and_each_is_placed_once() {
    if must_skip(true, &[QEMU, BUSYBOX_STATIC]) {
        return;
    }
    let job = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("queue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&job);
    std::fs::create_dir_all(&job).unwrap();
    std::fs::copy("/bin/busybox", job.join("busybox")).unwrap();

    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let lan = BootedLan::boot("qu", image, &[256, 256, 256]);
    let daemon = lan.start_daemon(HOSTD);
    let socket = daemon.socket.display().to_string();
    lan.wait_alive(HOSTD, &socket, &job, 3, Duration::from_secs(30));

    let submit = strings(&[
        HOSTD,
        "--socket",
        &socket,
        "submit",
        "--json",
        "./busybox",
        "sleep",
        "5",
    ]);
    let mut jobs: Vec<Submitted> = Vec::new();
    let mut refused = None;
    for i in 0..JOBS {
        let child = lan
            .lan
            .command(&submit)
            .expect("a command inside the LAN")
            .env(sion_hostd::keys::KEY_ENV, "none")
            .current_dir(&job)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting hostd submit");
        jobs.push(Submitted {
            spawned: Instant::now(),
            child: Some(child),
            status: None,
            stderr: String::new(),
        });
        std::thread::sleep(Duration::from_millis(400));
        if i == 4 {
            // Three jobs run and two wait: no node is free.
            let t = Instant::now();
            let out = lan.run(
                &strings(&[
                    HOSTD,
                    "--socket",
                    &socket,
                    "submit",
                    "--no-wait",
                    "./busybox",
                    "true",
                ]),
                &job,
                b"",
                &[],
            );
            refused = Some((out, t.elapsed()));
        }
    }

    // Collect them all (each reads its stderr to the end), killing what
    // is left after 180 s.
    let deadline = Instant::now() + Duration::from_secs(180);
    for (i, j) in jobs.iter_mut().enumerate() {
        let mut child = j.child.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut { stderr }, &mut s);
            s
        });
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("job {i} did not end within 180 s\n{}", lan.log(0));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        j.status = child.wait().unwrap().code();
        j.stderr = reader.join().unwrap();
    }

    let (out, took) = refused.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "--no-wait: {err}");
    assert!(
        err.contains("no node can take this job now")
            && (err.contains("busy") || err.contains("held for another job"))
            && err.contains("without --no-wait"),
        "--no-wait said: {err}"
    );
    assert!(
        took < Duration::from_secs(20),
        "--no-wait took {took:?}: {err}"
    );

    // (node, start, end, placement end) of every job, from its summary.
    let mut runs = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        assert_eq!(j.status, Some(0), "job {i}: {}", j.stderr);
        assert!(
            !j.stderr.contains("placing again"),
            "job {i} met a busy node: {}",
            j.stderr
        );
        let last = j.stderr.lines().last().unwrap_or_default();
        let s: SubmitSummary = serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("job {i}: no --json summary ({e}): {}", j.stderr));
        assert_eq!(s.placements, 1, "job {i}: {}", j.stderr);
        let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
        let placed = j.spawned + ms(s.timings_ms.placement);
        let start = placed + ms(s.timings_ms.upload);
        let end = start + ms(s.timings_ms.run);
        runs.push((s.node.address, start, end, placed));
    }
    eprintln!(
        "figures: {JOBS} exclusive jobs of 5 s on 3 nodes took {:?}",
        runs.iter().map(|r| r.2).max().unwrap() - jobs[0].spawned
    );
    let nodes: std::collections::BTreeSet<_> = runs.iter().map(|r| r.0).collect();
    assert_eq!(nodes.len(), 3, "the jobs used {nodes:?}");
    // No overlap on a node (the timings come from the submitters; 300 ms of
    // slack for their clocks' offsets).
    let slack = Duration::from_millis(300);
    for a in &runs {
        for b in &runs {
            if a.0 == b.0 && a.1 < b.1 {
                assert!(
                    b.1 + slack >= a.2,
                    "two jobs overlapped on {}: {:?} and {:?}",
                    a.0,
                    (a.1, a.2),
                    (b.1, b.2)
                );
            }
        }
    }
    // Jobs 3 and later waited, and were placed in submission order.
    let waited = jobs.iter().filter(|j| j.stderr.contains("waiting")).count();
    assert!(
        waited >= JOBS - 3 - 1,
        "only {waited} jobs waited:\n{}",
        jobs.iter()
            .map(|j| j.stderr.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for w in runs[3..].windows(2) {
        assert!(
            w[0].3 <= w[1].3 + slack,
            "a later job was placed before an earlier one"
        );
    }
    drop(daemon);
}
