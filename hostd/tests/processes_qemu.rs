//! A job as a group of Linux processes (issue 10), on a one-node qemu-net
//! LAN booted from `target/sion.img`: Debian's static busybox runs shell
//! command lines that fork, exec (`/proc/self/exe`), wait, and connect
//! processes with pipes — pipelines, command substitution, loops running
//! other applets, background jobs and `wait`, `gzip | gunzip | md5sum`, a
//! nested shell's exit status, `yes | head` ending `yes` by SIGPIPE, a
//! shell that kills itself — and each one's stdout and exit status are
//! compared with the same command line run on this host. Then a job whose
//! first process ends while a child sleeps ends at once, and a loop of
//! background jobs, a real fork bomb and a thread bomb stop at the job's
//! process cap (`--max-procs`) while the node goes on serving the next job.
//!
//! `tests/programs/procs.c`, built with musl-gcc (x86_64) and gcc -m32
//! (i386, glibc), covers what the shell does not show: a pipe's worth of
//! data through `dup2`, wait statuses, `SIGCHLD`, `WNOHANG`, `waitid`,
//! process groups, `kill` between processes, `SIGPIPE` ignored and default,
//! `execve`'s errors (`ENOENT`, `EACCES`, `ENOEXEC`) and an `execve` of the
//! other ABI's build with descriptors kept and `O_CLOEXEC` ones closed; its
//! output and status are compared with the host's. Ctrl-C at the submitter
//! reaches a program's `SIGINT` handler, and ends a program without one
//! with status 130.
//!
//! Needs root, QEMU, busybox-static, musl-gcc and gcc-multilib (CI has
//! them); otherwise it prints why and passes, unless `SION_REQUIRE_ALL=1`.

mod common;

use common::BootedLan;
use qemu_net::prereq::{GCC, MUSL_GCC, QEMU, multilib_missing, must_skip, skip};

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");

/// Shell command lines whose output and status must be the host's.
const SCRIPTS: &[&str] = &[
    "seq 1 1000 | sort -rn | head -3",
    "x=$(echo hi); echo \"got $x\"",
    "for i in 1 2 3; do expr $i '*' 2; done",
    "printf 'b\\na\\nb\\n' | sort | uniq -c",
    "echo abcdef > f.txt; gzip -c f.txt | gunzip -c | md5sum; rm f.txt",
    "sh -c 'exit 3'; echo \"nested: $?\"",
    "yes | head -2; echo \"pipeline: $?\"",
    "(sleep 1; echo late) & echo early; wait; echo \"waited: $?\"",
    "false | true; echo $?; true | false",
    "echo out; kill -TERM $$; echo never",
];

#[test]
fn busybox_shell_pipelines_run_as_on_the_host() {
    if must_skip(true, &[QEMU, MUSL_GCC, GCC]) {
        return;
    }
    if let Some(why) = multilib_missing() {
        skip(&why);
        return;
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        skip("busybox-static is not installed (apt-get install busybox-static)");
        return;
    }
    let job_dir = common::job_dir("processes");
    std::fs::copy(busybox, job_dir.join("busybox")).unwrap();
    common::build_program(
        &job_dir,
        "musl-gcc",
        &["-static", "-O2"],
        "procs.c",
        "procs64",
    );
    common::build_program(
        &job_dir,
        "gcc",
        &["-m32", "-static", "-O2"],
        "procs.c",
        "procs32",
    );
    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let booted = BootedLan::boot("pr", image, &[512]);

    for script in SCRIPTS {
        let host = Command::new(job_dir.join("busybox"))
            .args(["sh", "-c", script])
            .current_dir(&job_dir)
            .output()
            .unwrap();
        let cmd = common::submit_cmd(HOSTD, &["./busybox", "sh", "-c", script]);
        let node = booted.run(&cmd, &job_dir, b"", &[]);
        common::assert_as_on_host(script, &node, &host, &booted.log(0));
    }

    // The first process ends while its child sleeps: the job ends with the
    // first process's status, and the child is killed (a batch job step).
    let started = Instant::now();
    let cmd = common::submit_cmd(
        HOSTD,
        &["./busybox", "sh", "-c", "sleep 100 & echo bye; exit 4"],
    );
    let node = booted.run(&cmd, &job_dir, b"", &[]);
    assert_eq!(
        (
            String::from_utf8_lossy(&node.stdout).as_ref(),
            common::shell_status(&node)
        ),
        ("bye\n", 4),
        "stderr: {}",
        String::from_utf8_lossy(&node.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the job waited for its sleeping child"
    );
    assert!(
        String::from_utf8_lossy(&node.stderr)
            .contains("1 process of the job still running was killed"),
        "hostd reports the killed child: {}",
        String::from_utf8_lossy(&node.stderr)
    );
    assert!(
        booted
            .log(0)
            .contains("its first process ended; killing 1 process"),
        "the node log says the child was killed:\n{}",
        booted.log(0)
    );

    // Background jobs beyond the cap: the shell cannot fork and gives up.
    let cmd = common::submit_cmd(
        HOSTD,
        &[
            "--max-procs",
            "6",
            "./busybox",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; wait",
        ],
    );
    let node = booted.run(&cmd, &job_dir, b"", &[]);
    let stderr = String::from_utf8_lossy(&node.stderr);
    // A non-interactive busybox shell gives up at a refused fork, status 2.
    assert!(
        stderr.contains("can't fork") && common::shell_status(&node) == 2,
        "busybox reports the refused fork and ends: {stderr} {:?}",
        node.status
    );
    assert!(
        booted
            .log(0)
            .contains("fork refused: the job has its 6 processes"),
        "{}",
        booted.log(0)
    );
    // A real fork bomb: each function call starts two more.
    let cmd = common::submit_cmd(
        HOSTD,
        &[
            "--max-procs",
            "12",
            "./busybox",
            "sh",
            "-c",
            "f() { f | f; }; f",
        ],
    );
    let node = booted.run(&cmd, &job_dir, b"", &[]);
    assert_ne!(common::shell_status(&node), 0, "the bomb fails");
    assert!(
        String::from_utf8_lossy(&node.stderr).contains("can't fork"),
        "{}",
        String::from_utf8_lossy(&node.stderr)
    );
    assert!(
        booted
            .log(0)
            .contains("fork refused: the job has its 12 processes"),
        "{}",
        booted.log(0)
    );
    // A thread bomb at the highest cap: the job, not the node, runs out.
    common::build_program(
        &job_dir,
        "musl-gcc",
        &["-static", "-O2"],
        "threadbomb.c",
        "threadbomb",
    );
    let cmd = common::submit_cmd(HOSTD, &["--max-procs", "128", "./threadbomb"]);
    let node = booted.run(&cmd, &job_dir, b"", &[]);
    assert_eq!(
        (
            String::from_utf8_lossy(&node.stdout).as_ref(),
            common::shell_status(&node)
        ),
        ("made over 100 threads, then pthread_create failed\n", 0),
        "stderr: {}",
        String::from_utf8_lossy(&node.stderr)
    );
    let cmd = common::submit_cmd(HOSTD, &["./busybox", "echo", "still serving"]);
    let node = booted.run(&cmd, &job_dir, b"", &[]);
    assert_eq!(String::from_utf8_lossy(&node.stdout), "still serving\n");

    // C programs of both ABIs, each exec'ing the other.
    for (program, peer) in [("./procs64", "./procs32"), ("./procs32", "./procs64")] {
        let host = Command::new(job_dir.join(program))
            .arg(peer)
            .current_dir(&job_dir)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&host.stdout).contains("exec'd program: exited 5"),
            "the host run: {host:?}"
        );
        let cmd = common::submit_cmd(HOSTD, &[program, peer]);
        let node = booted.run(&cmd, &job_dir, b"", &[]);
        common::assert_as_on_host(program, &node, &host, &booted.log(0));
    }

    // Ctrl-C: caught by a handler, or ending a program without one.
    let (out, status) = interrupt_once(&booted, &job_dir, &["./procs64", "sigint"], "ready");
    assert_eq!((out.as_str(), status), ("ready\ncaught SIGINT\n", 7));
    let (_, status) = interrupt_once(
        &booted,
        &job_dir,
        &["./busybox", "sh", "-c", "echo ready; sleep 100"],
        "ready",
    );
    assert_eq!(status, 130, "a job without a handler dies of SIGINT");
}

/// Runs `hostd submit PROGRAM…` in the LAN, presses Ctrl-C (SIGINT to
/// hostd) once the job has printed the line `ready`, and returns the job's
/// stdout and hostd's exit status.
fn interrupt_once(booted: &BootedLan, dir: &Path, program: &[&str], ready: &str) -> (String, i32) {
    let cmd = common::submit_cmd(HOSTD, program);
    let mut c = booted.lan.command(&cmd).expect("a command inside the LAN");
    c.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("starting hostd submit");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !first.ends_with('\n') && Instant::now() < deadline {
        if stdout.read_line(&mut first).unwrap_or(0) == 0 {
            break;
        }
    }
    assert_eq!(first.trim_end(), ready, "{program:?} did not get ready");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    assert!(
        err.contains("SIGINT sent to the job"),
        "hostd says what it did: {err}"
    );
    (first + &rest, code)
}
