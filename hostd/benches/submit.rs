//! `hostd submit` benchmark on QEMU (issue 5): the latency of a tiny static
//! program that exits at once (create + exit; the remote-process paper
//! measured 18.4 ms remote against 123 ms for rsh), median and p99 over 50
//! runs, split into placement (through a running `hostd daemon`), upload and
//! run as `hostd submit --verbose` reports them, plus the whole command's
//! wall time; then the cost of one system call served on the node (getpid)
//! and of one forwarded to `hostd` (a 1-byte file read), median over many
//! calls (tests/programs/syscost.c); and what a `fork` costs for a process
//! with 1 MiB and 64 MiB of touched memory (tests/programs/forkcost.c: the
//! node copies the address space eagerly); and forwarded file I/O through
//! a job (tests/programs/iobench.c): MB/s of a 100 MiB sequential write and
//! read (64 KiB and 4 KiB reads) and 4 KiB random preads per second.
//!
//! Run with `cargo bench -p sion-hostd --bench submit` as root with QEMU and
//! musl-gcc.

use qemu_net::lan::{Lan, UpOptions};
use qemu_net::prereq::{MUSL_GCC, QEMU};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 50;

fn main() {
    if let Some(why) = qemu_net::prereq::unmet(true, &[QEMU, MUSL_GCC]) {
        eprintln!("benchmark skipped: {why}");
        return;
    }
    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let name = format!("hs-{}", std::process::id());
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("qemu-net")
        .join(&name);
    let job = run_dir.join("job");
    std::fs::create_dir_all(&job).expect("job directory");
    let programs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs");
    for p in ["exitcode", "syscost", "forkcost", "iobench"] {
        compile(&programs.join(format!("{p}.c")), &job.join(p));
    }
    std::fs::write(job.join("syscost.dat"), b"x").unwrap();

    let lan = Lan::new(&name, Some(run_dir.clone())).expect("a LAN");
    let opts = UpOptions {
        nodes: 1,
        cpus: Vec::new(),
        memory: vec![256],
        nics: Vec::new(),
        firmware: Vec::new(),
        cmdline: String::new(),
        image,
        wait: Some(Duration::from_secs(60)),
        foreground: false,
        userns: false,
        first_mac: 0,
    };
    if let Err(e) = lan.up(&opts) {
        let _ = lan.down();
        panic!("qemu-net up: {e}");
    }
    let result = std::panic::catch_unwind(|| bench(&lan, &run_dir, &job));
    let _ = lan.down();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

fn compile(src: &Path, out: &Path) {
    let ok = Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(src)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "musl-gcc {}", src.display());
}

fn hostd(socket: &Path) -> Vec<String> {
    vec![
        env!("CARGO_BIN_EXE_hostd").into(),
        "--socket".into(),
        socket.display().to_string(),
    ]
}

/// `sh -c 'cd JOB && CMD'` inside the LAN (its commands start elsewhere).
fn in_job(lan: &Lan, job: &Path, cmd: &[String]) -> Command {
    let mut line = format!("cd '{}' &&", job.display());
    for c in cmd {
        line.push_str(&format!(" '{c}'"));
    }
    let argv: Vec<String> = vec!["sh".into(), "-c".into(), line];
    lan.command(&argv).expect("a command in the LAN")
}

fn bench(lan: &Lan, run_dir: &Path, job: &Path) {
    let socket: PathBuf = run_dir.join("hostd.sock");
    let mut daemon_cmd = hostd(&socket);
    daemon_cmd.push("daemon".into());
    let mut daemon = lan
        .command(&daemon_cmd)
        .unwrap()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hostd daemon");
    // Wait until the daemon knows the node.
    let t = Instant::now();
    loop {
        let mut c = hostd(&socket);
        c.push("nodes".into());
        let out = lan
            .command(&c)
            .unwrap()
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text
            .lines()
            .any(|l| l.contains(" node ") && l.contains("alive"))
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the daemon never saw the node"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let mut place = Vec::new();
    let mut upload = Vec::new();
    let mut run = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..RUNS {
        let mut c = hostd(&socket);
        c.extend(["submit", "--verbose", "./exitcode"].map(String::from));
        let t = Instant::now();
        let out = in_job(lan, job, &c).stdin(Stdio::null()).output().unwrap();
        wall.push(t.elapsed().as_secs_f64() * 1000.0);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "submit failed: {err}");
        let line = err
            .lines()
            .find(|l| l.contains("timings:"))
            .unwrap_or_else(|| panic!("no timings in {err}"));
        let num = |key: &str| -> f64 {
            let rest = &line[line.find(key).unwrap() + key.len()..];
            rest.trim().split(' ').next().unwrap().parse().unwrap()
        };
        place.push(num("placement"));
        upload.push(num("upload"));
        run.push(num("run"));
    }

    let mut c = hostd(&socket);
    c.extend(["submit", "--node"].map(String::from));
    c.push(node_ip(lan, run_dir));
    c.extend(["./syscost", "5000"].map(String::from));
    let out = in_job(lan, job, &c).stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut c = hostd(&socket);
    c.extend(["submit", "--node"].map(String::from));
    c.push(node_ip(lan, run_dir));
    c.push("./forkcost".into());
    let out = in_job(lan, job, &c).stdin(Stdio::null()).output().unwrap();
    let forks = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut c = hostd(&socket);
    c.extend(["submit", "--node"].map(String::from));
    c.push(node_ip(lan, run_dir));
    c.extend(["./iobench", "100"].map(String::from));
    let out = in_job(lan, job, &c).stdin(Stdio::null()).output().unwrap();
    let io = String::from_utf8_lossy(&out.stdout).into_owned();

    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = daemon.wait();

    println!(
        "$ cargo bench -p sion-hostd --bench submit   (1 node, QEMU TCG, {RUNS} runs of a static program that exits at once)"
    );
    for (what, v) in [
        ("placement (daemon)", &mut place),
        ("upload + accept", &mut upload),
        ("run (accept -> exit)", &mut run),
        ("hostd submit wall time", &mut wall),
    ] {
        let (m, p99) = stats(v);
        println!("{what:<24} median {m:8.2} ms   p99 {p99:8.2} ms");
    }
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("getpid_ns=") {
            println!(
                "getpid served on the node: median {:.1} us per call",
                ns(v) / 1000.0
            );
        }
        if let Some(v) = l.strip_prefix("read1_ns=") {
            println!(
                "1-byte file read forwarded to hostd: median {:.1} us per call",
                ns(v) / 1000.0
            );
        }
    }
    print!("{forks}");
    for l in io.lines() {
        let (what, unit) = match l.split('=').next() {
            Some("write_mb_s") => ("100 MiB written in 64 KiB writes (+ fsync)", "MB/s"),
            Some("read64k_mb_s") => ("100 MiB read in 64 KiB reads", "MB/s"),
            Some("read4k_mb_s") => ("100 MiB read in 4 KiB reads", "MB/s"),
            Some("pread4k_per_s") => ("4 KiB preads at random offsets", "per s"),
            _ => continue,
        };
        println!(
            "{what:<44} {:>8} {unit}",
            l.split('=').nth(1).unwrap_or("?")
        );
    }
}

fn ns(v: &str) -> f64 {
    v.trim().parse().unwrap_or(f64::NAN)
}

fn stats(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let m = v[v.len() / 2];
    let p99 = v[((v.len() as f64 * 0.99).ceil() as usize).min(v.len()) - 1];
    (m, p99)
}

/// The node's IPv4 address from its log.
fn node_ip(_lan: &Lan, run_dir: &Path) -> String {
    let log = std::fs::read_to_string(run_dir.join("node-0.log")).unwrap_or_default();
    let at = log
        .find("net: configured ")
        .expect("the node's address in its log");
    let rest = &log[at + "net: configured ".len()..];
    rest.split('/').next().unwrap().to_string()
}
