//! Every core of a node (issue 12), on one-node qemu-net LANs booted from
//! `target/sion.img` with 2 and with 4 processors (QEMU `-smp`, one host
//! thread per processor).
//!
//! Threads run in parallel and stay correct: `tests/programs/smp.c` built
//! with glibc (dynamic) and musl (static) gives the host's output for a
//! futex-mutex counter (exact total), a shared-memory ping-pong that only
//! finishes when both threads run at the same moment, per-thread FPU state
//! in four rounding modes under preemption, and a TLB shootdown (a thread
//! reading a page faults on its first read after another thread unmapped
//! it, as on Linux); `tests/programs/threads.c` and the OpenMP program
//! (libgomp) give their exact sums.
//!
//! A CPU-bound job with a thread on each of the 2-processor node's CPUs
//! leaves the node answering heartbeats (`hostd nodes` lists it alive during
//! the run, with its 2 processors).
//!
//! Then two CPU-bound single-threaded balance-mode jobs submitted at once
//! to the same 2-processor node both run on it at the same time (the App-Program
//! Manager starts the second while the first runs: both `apm: job N from`
//! lines come before either `apm: job N exited`), and both give the host's
//! output; an exclusive-mode job owns the node: a balance-mode job that
//! comes while it runs starts after it ends.
//!
//! Needs root, QEMU, gcc and musl-gcc (CI has them); otherwise it prints why
//! and passes, unless `SION_REQUIRE_ALL=1`.

mod common;

use common::BootedLan;
use qemu_net::prereq::{GCC, MUSL_GCC, QEMU, must_skip};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");

/// Held by each test for its whole run: the tests of this file boot nodes
/// with several processors each, which two at once on a 2-core machine
/// (under TCG) starve each other; and each builds the node image.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A one-node LAN whose node has `cpus` processors and 512 MiB, once its
/// services run: the App-Program Manager logs its job capacity after the
/// Companion Manager has taken its first message (a rendezvous), so the
/// group answers a one-shot `hostd submit` from then on (its search lasts
/// 1.5 s; a loaded test machine takes longer than that to start the
/// services after the network is up).
fn boot(prefix: &str, cpus: u32) -> BootedLan {
    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let booted = BootedLan::boot_options(
        prefix,
        &qemu_net::lan::UpOptions {
            nodes: 1,
            cpus: vec![cpus],
            memory: vec![512],
            nics: Vec::new(),
            firmware: Vec::new(),
            cmdline: String::new(),
            image,
            wait: Some(Duration::from_secs(120)),
            foreground: false,
            userns: false,
            first_mac: 0,
        },
    );
    booted.wait_log(0, "the node's services did not start", |log| {
        log.contains("apm: up to ")
    });
    booted
}

/// The job directory with the test programs built.
fn programs(prefix: &str) -> PathBuf {
    let dir = common::job_dir(prefix);
    common::build_linked(
        &dir,
        "gcc",
        &["-O2", "-pthread"],
        "smp.c",
        "smp-glibc",
        &["-lm"],
    );
    common::build_program(&dir, "musl-gcc", &["-static", "-O2"], "smp.c", "smp-musl");
    common::build_program(
        &dir,
        "gcc",
        &["-O2", "-pthread"],
        "threads.c",
        "threads-glibc",
    );
    common::build_program(&dir, "gcc", &["-O2", "-fopenmp"], "omp.c", "omp");
    dir
}

#[test]
fn threads_run_in_parallel_on_2_and_4_cpus() {
    if must_skip(true, &[QEMU, GCC, MUSL_GCC]) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = programs("smpthreads");
    let cases: &[&[&str]] = &[
        &["./smp-glibc", "counter"],
        &["./smp-musl", "counter"],
        &["./smp-glibc", "pingpong"],
        &["./smp-musl", "pingpong"],
        &["./smp-glibc", "fpu"],
        &["./smp-glibc", "unmap"],
        &["./smp-musl", "unmap"],
        &["./threads-glibc"],
        &["./omp"],
    ];
    for cpus in [2, 4] {
        let booted = boot(&format!("smp{cpus}"), cpus);
        let log = booted.log(0);
        assert!(
            log.contains(&format!("SiON runs on {cpus};")),
            "the node did not start its {cpus} processors:\n{log}"
        );
        for case in cases {
            let host = Command::new(case[0])
                .args(&case[1..])
                .current_dir(&dir)
                .output()
                .unwrap();
            let cmd = common::submit_cmd(HOSTD, case);
            let node = booted.run(&cmd, &dir, b"", &[]);
            common::assert_as_on_host(
                &format!("{case:?} on {cpus} CPUs"),
                &node,
                &host,
                &booted.log(0),
            );
        }
    }
}

#[test]
fn cpu_bound_jobs_fill_a_2_cpu_node_while_heartbeats_answer() {
    if must_skip(true, &[QEMU, GCC, MUSL_GCC]) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = common::job_dir("smpbusy");
    common::build_program(&dir, "musl-gcc", &["-static", "-O2"], "smp.c", "smp-musl");
    let booted = boot("smpbusy", 2);
    let submit = common::submit_cmd(HOSTD, &["./smp-musl", "spin", "15", "2"]);
    let mut c = booted
        .lan
        .command(&submit)
        .expect("a command inside the LAN");
    c.env(sion_hostd::keys::KEY_ENV, "none")
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut job = c.spawn().expect("hostd submit");
    // While both CPUs spin, the node answers heartbeats: `hostd nodes`
    // lists it alive, with its two processors.
    booted.wait_log(0, "the job did not start", |log| {
        log.contains("apm: job 1 from ")
    });
    std::thread::sleep(Duration::from_secs(4));
    let nodes = booted.run(
        &[HOSTD.to_string(), "nodes".into(), "--json".into()],
        Path::new("/"),
        b"",
        &[],
    );
    let running = job.try_wait().unwrap().is_none();
    let report: sion_hostd::model::NodesReport = serde_json::from_slice(&nodes.stdout)
        .unwrap_or_else(|e| {
            panic!(
                "hostd nodes --json: {e}: {}",
                String::from_utf8_lossy(&nodes.stderr)
            )
        });
    assert!(running, "the job ended before the heartbeat check");
    assert_eq!(
        common::alive_nodes(&report).len(),
        1,
        "the busy node stopped answering heartbeats: {report:?}"
    );
    assert!(
        report.nodes.iter().any(|n| n.cpus == 2),
        "hostd nodes shows the node's 2 CPUs: {report:?}"
    );
    let out = common::wait_output(job, Duration::from_secs(120), "the spin job", || {
        booted.log(0)
    });
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout) == "2 thread(s) spun for 15 s\n",
        "the spin job failed: {out:?}\n{}",
        booted.log(0)
    );
    // The same node then takes two one-CPU jobs side by side, and keeps a
    // balance job out while an exclusive job runs (one LAN for every part:
    // fewer QEMU processors on the test machine at once).
    let daemon = daemon_for(&booted, &dir);
    let sub = Submitter {
        booted: &booted,
        dir: &dir,
        socket: daemon.socket.display().to_string(),
    };
    two_balance_jobs_run_at_once(&sub);
    an_exclusive_job_keeps_the_node(&sub);
    drop(daemon);
}

/// The job numbers of the node log's `apm: job N <what>` lines, in order.
fn job_lines(log: &str, what: &str) -> Vec<(usize, u64)> {
    log.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = l.split("apm: job ").nth(1)?;
            let (n, tail) = rest.split_once(' ')?;
            if !tail.starts_with(what) {
                return None;
            }
            Some((i, n.parse().ok()?))
        })
        .collect()
}

/// `hostd submit`s inside a LAN, through its daemon.
struct Submitter<'a> {
    booted: &'a BootedLan,
    /// The job directory.
    dir: &'a Path,
    /// The daemon's control socket.
    socket: String,
}

impl Submitter<'_> {
    /// `hostd --socket SOCKET submit ARGS…`.
    fn command(&self, args: &[&str]) -> Vec<String> {
        [HOSTD, "--socket", &self.socket, "submit"]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect()
    }

    /// Starts `command` inside the LAN, in the job directory.
    fn spawn(&self, command: &[String]) -> std::process::Child {
        let mut c = self
            .booted
            .lan
            .command(command)
            .expect("a command inside the LAN");
        c.env(sion_hostd::keys::KEY_ENV, "none")
            .current_dir(self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().expect("hostd submit")
    }

    /// Waits (up to 180 s) for every job — its command and its running
    /// `hostd submit` — and returns their outputs in order. On a loaded test
    /// machine (QEMU's processors are host threads) the daemon may lose the
    /// node for a moment just as a job comes: such a job is submitted again
    /// a second later, as a user would, 10 times at most in all; the
    /// callers' checks of the node log still have to hold.
    fn wait_all(
        &self,
        mut jobs: Vec<(Vec<String>, Option<std::process::Child>)>,
    ) -> Vec<std::process::Output> {
        let mut outs: Vec<Option<std::process::Output>> = jobs.iter().map(|_| None).collect();
        let mut retries = 0;
        let deadline = Instant::now() + Duration::from_secs(180);
        while outs.iter().any(Option::is_none) {
            if Instant::now() > deadline {
                for c in jobs.iter_mut().filter_map(|j| j.1.as_mut()) {
                    let _ = c.kill();
                }
                panic!("the jobs did not end in 180 s\n{}", self.booted.log(0));
            }
            for (k, (command, child)) in jobs.iter_mut().enumerate() {
                let Some(c) = child.as_mut() else {
                    continue;
                };
                if c.try_wait().unwrap().is_none() {
                    continue;
                }
                let out = child.take().unwrap().wait_with_output().unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                let unplaced =
                    err.contains("no SiON node found") || err.contains("no node can take");
                if !out.status.success() && unplaced && retries < 10 {
                    retries += 1;
                    eprintln!("smp_qemu: submitted again: {err}");
                    std::thread::sleep(Duration::from_secs(1));
                    *child = Some(self.spawn(command));
                } else {
                    outs[k] = Some(out);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        outs.into_iter().flatten().collect()
    }
}

/// The `apm: job N <what>` lines of `booted`'s node log from its line
/// `skip` on: (line index, job number).
fn lines_from(booted: &BootedLan, skip: usize, what: &str) -> Vec<(usize, u64)> {
    job_lines(&booted.log(0), what)
        .into_iter()
        .filter(|&(i, _)| i >= skip)
        .collect()
}

/// Waits (up to 10 s) until the node has logged the end of job `job`: it
/// does so just after telling the job's `hostd`.
fn wait_logged_end(booted: &BootedLan, job: u64) {
    let since = Instant::now();
    while !job_lines(&booted.log(0), "exited ")
        .iter()
        .any(|e| e.1 == job)
        && since.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a `hostd daemon` inside `booted`'s LAN and waits until it sees
/// the node. One-shot submits would each join the group on the same port.
fn daemon_for(booted: &BootedLan, dir: &Path) -> common::Daemon {
    let daemon = booted.start_daemon(HOSTD);
    // Until its control socket exists, `hostd nodes` would find the node
    // itself, not through the daemon.
    let since = Instant::now();
    while !daemon.socket.exists() {
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "the daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let socket = daemon.socket.display().to_string();
    booted.wait_alive(HOSTD, &socket, dir, 1, Duration::from_secs(30));
    daemon
}

/// Two CPU-bound one-thread balance-mode jobs submitted at once to the
/// 2-CPU node both run there at the same time (both `apm: job N from` lines
/// before either `exited`) and give the host's output.
fn two_balance_jobs_run_at_once(sub: &Submitter<'_>) {
    let skip = sub.booted.log(0).lines().count();
    // The same program on the host, meanwhile, for its output.
    let host = Command::new("./smp-musl")
        .args(["spin", "20"])
        .current_dir(sub.dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let command = sub.command(&["--mode", "balance", "./smp-musl", "spin", "20"]);
    let jobs = vec![
        (command.clone(), Some(sub.spawn(&command))),
        (command.clone(), Some(sub.spawn(&command))),
    ];
    let outs = sub.wait_all(jobs);
    let started = lines_from(sub.booted, skip, "from ");
    for s in &started {
        wait_logged_end(sub.booted, s.1);
    }
    let log = sub.booted.log(0);
    let host = host.wait_with_output().unwrap();
    assert_eq!(host.stdout, b"1 thread(s) spun for 20 s\n");
    for (i, out) in outs.iter().enumerate() {
        common::assert_as_on_host(&format!("spin job {i}"), out, &host, &log);
    }
    let exited: Vec<(usize, u64)> = lines_from(sub.booted, skip, "exited ")
        .into_iter()
        .filter(|e| started.iter().any(|s| s.1 == e.1))
        .collect();
    assert_eq!(started.len(), 2, "two jobs ran on the node:\n{log}");
    assert_eq!(exited.len(), 2, "two jobs ended on the node:\n{log}");
    assert_ne!(started[0].1, started[1].1, "two different jobs:\n{log}");
    assert!(
        started[1].0 < exited[0].0,
        "the second job started only after the first ended (not at once):\n{log}"
    );
}

/// An exclusive-mode job owns the 2-CPU node: a balance-mode job that comes
/// while it runs starts only after it has ended, though a CPU is idle.
fn an_exclusive_job_keeps_the_node(sub: &Submitter<'_>) {
    let skip = sub.booted.log(0).lines().count();
    let exclusive = sub.command(&["--mode", "exclusive", "./smp-musl", "spin", "8"]);
    let balance = sub.command(&["--mode", "balance", "./smp-musl", "spin", "1"]);
    let first = sub.spawn(&exclusive);
    sub.booted
        .wait_log(0, "the exclusive job did not start", |log| {
            job_lines(log, "from ").iter().any(|&(i, _)| i >= skip)
        });
    let second = sub.spawn(&balance);
    let outs = sub.wait_all(vec![(exclusive, Some(first)), (balance, Some(second))]);
    let started = lines_from(sub.booted, skip, "from ");
    for s in &started {
        wait_logged_end(sub.booted, s.1);
    }
    let log = sub.booted.log(0);
    let expected: [&[u8]; 2] = [b"1 thread(s) spun for 8 s\n", b"1 thread(s) spun for 1 s\n"];
    for (out, want) in outs.iter().zip(expected) {
        assert!(
            out.status.success() && out.stdout == want,
            "a job failed: {out:?}\n{log}"
        );
    }
    assert_eq!(started.len(), 2, "two jobs ran on the node:\n{log}");
    let end_of_first = lines_from(sub.booted, skip, "exited ")
        .into_iter()
        .find(|e| e.1 == started[0].1)
        .unwrap_or_else(|| panic!("the exclusive job's end is logged:\n{log}"));
    assert!(
        end_of_first.0 < started[1].0,
        "the balance job started beside the exclusive one:\n{log}"
    );
}
