//! Jobs survive node loss (issue 14), on three QEMU nodes and a `hostd
//! daemon`: a job (Debian's busybox `sh` running a script that prints lines,
//! appends to a file, removes one, renames a directory and writes to stderr)
//! is submitted 20 times; each time the node running it is killed at a
//! random moment of its run (`qemu-net kill-node`), so `hostd submit` loses
//! it, rolls the job directory back and runs the job again on another node.
//! Every run must end with the exit status, stdout, stderr and job-directory
//! files of an uninterrupted run — nothing lost, nothing doubled — which in
//! turn must match the same script run by busybox on this host. The killed
//! node is started again (`restart-node`) for the runs after.
//!
//! `SION_RERUN_RUNS` changes the number of runs (default 20).
//!
//! Needs root, QEMU and busybox-static (CI has them).

mod common;

use common::BootedLan;
use common::watched::{self, Outcome, Rng};
use qemu_net::prereq::{BUSYBOX_STATIC, QEMU, must_skip};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");

/// The job: ten lines and appends (several seconds under TCG), then a removal, a rename, a
/// write in the renamed directory and a line on stderr.
const SCRIPT: &str = r#"i=0
while [ $i -lt 10 ]; do
  i=$((i+1))
  echo "line $i"
  echo "data $i" >> in.txt
  ./busybox sleep 0.2
done
./busybox rm old.txt
./busybox mv keep moved
echo done > moved/b
./busybox wc -l < in.txt
echo err-line >&2
exit 3"#;

/// Makes a job directory with the files the job starts from.
fn job_dir(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
    std::fs::create_dir_all(path.join("keep")).unwrap();
    std::fs::copy("/bin/busybox", path.join("busybox")).unwrap();
    std::fs::write(path.join("in.txt"), "seed\n").unwrap();
    std::fs::write(path.join("old.txt"), "to be removed\n").unwrap();
    std::fs::write(path.join("keep/a"), "a\n").unwrap();
}

/// Runs the job through `hostd submit --verbose` inside the LAN from `dir`;
/// `on_accept` gets the node's index once the node accepted the job, while
/// it runs.
fn submit(lan: &BootedLan, socket: &str, dir: &Path, mut on_accept: impl FnMut(usize)) -> Outcome {
    let mut accepted = false;
    watched::submit(
        lan,
        HOSTD,
        socket,
        dir,
        &["--verbose", "./busybox", "sh", "-c", SCRIPT],
        Duration::from_secs(180),
        |line| {
            if !accepted && let Some(k) = watched::accepting_node(line) {
                accepted = true;
                on_accept(k);
            }
        },
    )
}

#[test]
fn a_job_whose_node_is_killed_ends_as_if_it_had_run_once() {
    if must_skip(true, &[QEMU, BUSYBOX_STATIC]) {
        return;
    }
    let runs = watched::count_from_env("SION_RERUN_RUNS", 20);
    let base =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("rerun-{}", std::process::id()));

    // The host's answer.
    let (host, host_files) = watched::on_host(&base.join("host"), job_dir, SCRIPT);
    assert_eq!(host.status.code(), Some(3));

    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let lan = BootedLan::boot("rr", image, &[256, 256, 256]);
    let daemon = lan.start_daemon(HOSTD);
    let socket = daemon.socket.display().to_string();
    lan.wait_alive(HOSTD, &socket, &base, 3, Duration::from_secs(120));

    // An uninterrupted run on SiON matches the host's.
    let quiet = base.join("quiet");
    job_dir(&quiet);
    let t = Instant::now();
    let reference = submit(&lan, &socket, &quiet, |_| {});
    let took = t.elapsed();
    assert_eq!(reference.status, Some(3), "{reference:?}");
    assert_eq!(reference.stdout, String::from_utf8_lossy(&host.stdout));
    assert_eq!(reference.job_stderr, "err-line");
    assert_eq!(reference.files, host_files);
    assert_eq!(
        reference.files["in.txt"].lines().count(),
        11,
        "{reference:?}"
    );

    let seed = 0x5105_u64 ^ std::process::id() as u64;
    eprintln!("kill moments from seed {seed:#x}; an uninterrupted run took {took:?}");
    let mut rng = Rng(seed | 1);
    let mut restart_times = Vec::new();
    for run in 0..runs {
        // The node killed last may still be booting: two are enough.
        lan.wait_alive(HOSTD, &socket, &base, 2, Duration::from_secs(120));
        let dir = base.join(format!("run-{run}"));
        job_dir(&dir);
        // Kill within the first 2 s after the node accepted the job, well
        // inside its run.
        let delay = Duration::from_secs_f64(0.1 + 1.9 * rng.unit());
        let mut killed = None;
        let t = Instant::now();
        let got = submit(&lan, &socket, &dir, |k| {
            std::thread::sleep(delay);
            lan.lan.kill_node(k).expect("kill-node");
            killed = Some((k, Instant::now()));
        });
        let (k, at) = killed.unwrap_or_else(|| panic!("run {run}: never accepted: {got:?}"));
        let what = format!("run {run} (node {k} killed {delay:?} after it accepted): {got:#?}");
        assert!(
            got.hostd_lines
                .iter()
                .any(|l| l.contains("running the job again on another node")),
            "{what}"
        );
        assert_eq!(got.status, reference.status, "{what}");
        assert_eq!(got.stdout, reference.stdout, "{what}");
        assert_eq!(got.job_stderr, reference.job_stderr, "{what}");
        assert_eq!(got.files, reference.files, "{what}");
        restart_times.push(at.elapsed());
        eprintln!(
            "run {run}: node {k} killed {delay:.1?} after accepting; the job ended {:.1?} after the kill ({:.1?} in all)",
            at.elapsed(),
            t.elapsed()
        );
        lan.lan.restart_node(k).expect("restart-node");
    }
    restart_times.sort();
    if let (Some(lo), Some(hi)) = (restart_times.first(), restart_times.last()) {
        eprintln!(
            "figures: {runs} node losses survived; from the kill to the re-run's end: min {lo:.1?}, median {:.1?}, max {hi:.1?} (an uninterrupted run: {took:.1?})",
            restart_times[restart_times.len() / 2]
        );
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&base);
}
