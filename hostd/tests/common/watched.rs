//! Running a job through `hostd submit` inside a LAN while watching
//! hostd's lines as they come (to kill its node at a chosen moment), and
//! what it left: status, output and the job directory.

use super::BootedLan;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a run left: status, stdout, the job's own stderr (without hostd's
/// lines), hostd's lines, and the job directory.
#[derive(Debug)]
pub struct Outcome {
    pub status: Option<i32>,
    pub stdout: String,
    pub job_stderr: String,
    pub hostd_lines: Vec<String>,
    pub files: BTreeMap<String, String>,
}

/// Every path under `dir` but `busybox`, with its kind and content.
pub fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(rel, "dir".into());
                walk(base, &p, out);
            } else if rel != "busybox" {
                out.insert(
                    rel,
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A small deterministic generator for kill moments (xorshift64*), so a
/// failing run can be repeated from its printed seed.
pub struct Rng(pub u64);

impl Rng {
    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The index K of the node a `hostd submit --verbose` line says accepted
/// the job (from its id, `52:54:00:53:4e:0K`).
pub fn accepting_node(line: &str) -> Option<usize> {
    if !line.contains(" accepted by ") {
        return None;
    }
    line.split("52:54:00:53:4e:")
        .nth(1)
        .and_then(|t| t.get(..2))
        .and_then(|h| usize::from_str_radix(h, 16).ok())
}

/// Runs `hostd --socket SOCKET submit ARGS…` (`hostd` is the binary) inside
/// the LAN from `dir` with no stdin, calling `on_line` with each stderr line
/// as it comes; panics after `limit`.
pub fn submit(
    lan: &BootedLan,
    hostd: &str,
    socket: &str,
    dir: &Path,
    args: &[&str],
    limit: Duration,
    mut on_line: impl FnMut(&str),
) -> Outcome {
    let mut cmd: Vec<String> = vec![
        hostd.into(),
        "--socket".into(),
        socket.into(),
        "submit".into(),
    ];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let mut child = lan
        .lan
        .command(&cmd)
        .expect("a command inside the LAN")
        .env(sion_hostd::keys::KEY_ENV, "none")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting hostd submit");
    let mut out = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel::<String>();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                on_line(&line);
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "hostd submit did not end within {limit:?}:\n{}\n{}",
                lines.join("\n"),
                lan.log(0)
            );
        }
    }
    let status = child.wait().unwrap().code();
    // hostd's lines, and --verbose's placement tables.
    let ours = |l: &String| {
        l.starts_with("hostd:")
            || l.starts_with("placement #")
            || l.starts_with("score = ")
            || l.starts_with("RANK ")
            || l.contains("52:54:00:53:4e:")
    };
    let (hostd_lines, job_lines): (Vec<String>, Vec<String>) = lines.into_iter().partition(ours);
    Outcome {
        status,
        stdout: stdout.join().unwrap(),
        job_stderr: job_lines.join("\n"),
        hostd_lines,
        files: tree(dir),
    }
}

/// A count from environment variable `name` (e.g. `SION_RERUN_RUNS`), else
/// `default`.
pub fn count_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The host's answer: busybox `sh -c SCRIPT` run in `dir` (made fresh by
/// `make_dir`), and the files it left there.
pub fn on_host(
    dir: &Path,
    make_dir: impl Fn(&Path),
    script: &str,
) -> (std::process::Output, BTreeMap<String, String>) {
    make_dir(dir);
    let out = std::process::Command::new("/bin/busybox")
        .args(["sh", "-c", script])
        .current_dir(dir)
        .output()
        .expect("running busybox sh on the host");
    (out, tree(dir))
}
