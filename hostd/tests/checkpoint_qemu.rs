//! Checkpoint/restart (issue 14), on two QEMU nodes and a `hostd daemon`:
//! Debian's busybox `sh` (one process: only builtins) counts, prints lines
//! and appends them to a file, with `hostd submit --checkpoint 2`. Its node
//! is killed once a checkpoint has arrived, at a random moment after it;
//! hostd continues the job on the other node from that checkpoint. Every
//! run must end with the exit status, stdout, stderr and job-directory
//! files of an uninterrupted run, which must match the same script run by
//! busybox on this host; the continuing node must say it rebuilt the job
//! from a checkpoint. A job with two processes is refused a checkpoint with
//! the reason. Finally `hostd drain` takes the node of a job submitted
//! without `--checkpoint` out of the group: the job moves to the other node
//! from the checkpoint the leaving node sends, ends as the uninterrupted
//! run did, and the drained node leaves the group.
//!
//! `SION_CKPT_RUNS` changes the number of interrupted runs (default 3).
//!
//! Needs root, QEMU and busybox-static (CI has them).

mod common;

use common::BootedLan;
use common::watched::{self, Outcome, Rng};
use qemu_net::prereq::{BUSYBOX_STATIC, QEMU, must_skip};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");

/// The job: 30 rounds of counting (ash arithmetic, no process started),
/// each printing a line and appending to a file, then a line on stderr
/// and exit status 3. About 20 s under TCG.
const SCRIPT: &str = r#"i=0
while [ $i -lt 30 ]; do
  i=$((i+1))
  j=0
  while [ $j -lt 25000 ]; do j=$((j+1)); done
  echo "line $i sum $((i*j))"
  echo "data $i" >> out.txt
done
echo "err-line" >&2
exit 3"#;

fn job_dir(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
    std::fs::create_dir_all(path).unwrap();
    std::fs::copy("/bin/busybox", path.join("busybox")).unwrap();
    std::fs::write(path.join("out.txt"), "seed\n").unwrap();
}

fn submit(
    lan: &BootedLan,
    socket: &str,
    dir: &Path,
    extra: &[&str],
    on_line: impl FnMut(&str),
) -> Outcome {
    let mut args = vec!["--verbose", "--checkpoint", "2"];
    args.extend_from_slice(extra);
    submit_args(lan, socket, dir, &args, on_line)
}

fn submit_args(
    lan: &BootedLan,
    socket: &str,
    dir: &Path,
    args: &[&str],
    on_line: impl FnMut(&str),
) -> Outcome {
    watched::submit(
        lan,
        HOSTD,
        socket,
        dir,
        args,
        Duration::from_secs(240),
        on_line,
    )
}

#[test]
fn a_killed_nodes_job_continues_from_its_checkpoint() {
    if must_skip(true, &[QEMU, BUSYBOX_STATIC]) {
        return;
    }
    let runs = watched::count_from_env("SION_CKPT_RUNS", 3);
    let base =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ckpt-{}", std::process::id()));

    // The host's answer.
    let (host, host_files) = watched::on_host(&base.join("host"), job_dir, SCRIPT);
    assert_eq!(host.status.code(), Some(3));

    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let lan = BootedLan::boot("ck", image, &[256, 256]);
    let daemon = lan.start_daemon(HOSTD);
    let socket = daemon.socket.display().to_string();
    lan.wait_alive(HOSTD, &socket, &base, 2, Duration::from_secs(120));
    let script = ["./busybox", "sh", "-c", SCRIPT];

    // An uninterrupted run, checkpointed along the way, matches the host's.
    let quiet = base.join("quiet");
    job_dir(&quiet);
    let t = Instant::now();
    let reference = submit(&lan, &socket, &quiet, &script, |_| {});
    let took = t.elapsed();
    let what = format!("{reference:#?}");
    assert_eq!(reference.status, Some(3), "{what}");
    assert_eq!(
        reference.stdout,
        String::from_utf8_lossy(&host.stdout),
        "{what}"
    );
    assert_eq!(reference.job_stderr, "err-line", "{what}");
    assert_eq!(reference.files, host_files, "{what}");
    let checkpoints: Vec<&String> = reference
        .hostd_lines
        .iter()
        .filter(|l| l.starts_with("hostd: checkpoint "))
        .collect();
    assert!(!checkpoints.is_empty(), "no checkpoint taken: {what}");
    eprintln!(
        "uninterrupted run: {took:.1?}, {} checkpoints; the last: {}",
        checkpoints.len(),
        checkpoints.last().unwrap()
    );

    let seed = 0xc4e7_u64 ^ std::process::id() as u64;
    eprintln!("kill moments from seed {seed:#x}");
    let mut rng = Rng(seed | 1);
    let mut after_kill = Vec::new();
    for run in 0..runs {
        lan.wait_alive(HOSTD, &socket, &base, 2, Duration::from_secs(120));
        let dir = base.join(format!("run-{run}"));
        job_dir(&dir);
        // Kill after the first or second checkpoint, up to 1.5 s later.
        let nth = 1 + (rng.unit() * 2.0) as usize;
        let delay = Duration::from_secs_f64(1.5 * rng.unit());
        let mut node = None;
        let mut killed = None;
        let t = Instant::now();
        let got = submit(&lan, &socket, &dir, &script, |line| {
            if node.is_none() {
                node = watched::accepting_node(line);
            }
            if killed.is_none()
                && line.starts_with(&format!("hostd: checkpoint {nth}:"))
                && let Some(k) = node
            {
                std::thread::sleep(delay);
                lan.lan.kill_node(k).expect("kill-node");
                killed = Some((k, Instant::now()));
            }
        });
        let (k, at) = killed
            .unwrap_or_else(|| panic!("run {run}: no checkpoint {nth} to kill after: {got:#?}"));
        let what = format!(
            "run {run} (node {k} killed {delay:.1?} after checkpoint {nth}): {got:#?}\n{}",
            lan.log(1 - k)
        );
        assert!(
            got.hostd_lines
                .iter()
                .any(|l| l.contains("continuing the job on another node from its checkpoint")),
            "{what}"
        );
        assert!(
            lan.log(1 - k).contains("continues from a checkpoint"),
            "{what}"
        );
        assert_eq!(got.status, reference.status, "{what}");
        assert_eq!(got.stdout, reference.stdout, "{what}");
        assert_eq!(got.job_stderr, reference.job_stderr, "{what}");
        assert_eq!(got.files, reference.files, "{what}");
        after_kill.push(at.elapsed());
        eprintln!(
            "run {run}: node {k} killed {delay:.1?} after checkpoint {nth}; the job ended {:.1?} after the kill ({:.1?} in all)",
            at.elapsed(),
            t.elapsed()
        );
        lan.lan.restart_node(k).expect("restart-node");
    }
    after_kill.sort();
    if let (Some(lo), Some(hi)) = (after_kill.first(), after_kill.last()) {
        eprintln!(
            "figures: {runs} node losses survived from checkpoints; from the kill to the job's end: min {lo:.1?}, median {:.1?}, max {hi:.1?} (an uninterrupted run: {took:.1?})",
            after_kill[after_kill.len() / 2]
        );
    }

    // A job of two processes cannot be checkpointed, and hostd says why.
    lan.wait_alive(HOSTD, &socket, &base, 1, Duration::from_secs(120));
    let dir = base.join("two");
    job_dir(&dir);
    let got = submit(
        &lan,
        &socket,
        &dir,
        &["./busybox", "sh", "-c", "./busybox sleep 4; echo slept"],
        |_| {},
    );
    assert_eq!(got.status, Some(0), "{got:#?}");
    assert_eq!(got.stdout, "slept\n", "{got:#?}");
    assert!(
        got.hostd_lines
            .iter()
            .any(|l| l.contains("cannot be checkpointed (the job has 2 processes)")),
        "{got:#?}"
    );

    // `hostd drain`: the job (no --checkpoint) moves off the leaving node.
    lan.wait_alive(HOSTD, &socket, &base, 2, Duration::from_secs(120));
    let dir = base.join("drain");
    job_dir(&dir);
    let mut drained = None;
    let t = Instant::now();
    let mut args = vec!["--verbose"];
    args.extend_from_slice(&script);
    let got = submit_args(&lan, &socket, &dir, &args, |line| {
        if drained.is_none()
            && let Some(k) = watched::accepting_node(line)
        {
            // Well inside the run.
            std::thread::sleep(Duration::from_secs(3));
            let cmd: Vec<String> = [
                HOSTD,
                "--socket",
                &socket,
                "drain",
                &lan.address(k).to_string(),
            ]
            .map(String::from)
            .to_vec();
            let out = lan.run(&cmd, &base, b"", &[]);
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "hostd drain: {out:?}");
            assert!(said.contains("leaves the group; its job"), "{said}");
            drained = Some((k, Instant::now()));
        }
    });
    let (k, at) = drained.expect("the job was accepted");
    let what = format!("drain of node {k}: {got:#?}\n{}", lan.log(k));
    assert!(
        got.hostd_lines
            .iter()
            .any(|l| l.contains("leaves the group") && l.contains("from its checkpoint 1")),
        "{what}"
    );
    assert_eq!(got.status, reference.status, "{what}");
    assert_eq!(got.stdout, reference.stdout, "{what}");
    assert_eq!(got.job_stderr, reference.job_stderr, "{what}");
    assert_eq!(got.files, reference.files, "{what}");
    assert!(lan.log(k).contains("cm: leaving the group"), "{what}");
    eprintln!(
        "figures: drained node {k}; the job ended {:.1?} after `hostd drain` ({:.1?} in all; uninterrupted: {took:.1?})",
        at.elapsed(),
        t.elapsed()
    );
    // The drained node has left the group: the daemon sees one node.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cmd: Vec<String> = [HOSTD, "--socket", &socket, "nodes", "--json"]
            .map(String::from)
            .to_vec();
        let out = lan.run(&cmd, &base, b"", &[]);
        let report: sion_hostd::model::NodesReport =
            serde_json::from_slice(&out.stdout).expect("hostd nodes --json");
        if common::alive_nodes(&report).len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the drained node is still in the group: {report:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&base);
}
