//! `hostd submit` end to end (issue 5): one QEMU node booted from
//! `target/sion.img` on a qemu-net LAN, and unmodified static Linux programs
//! built here from `tests/programs/` (musl-gcc -static, gcc -m32 -static,
//! hand-written assembly using `int 0x80`) submitted to it:
//!
//! - hello, exit codes 0/1/42, argv and environment (`--env`, inherited,
//!   `--env-clear`), stdin piped through, stderr passed through;
//! - a file read and a file written in the job directory (checked on the
//!   host), and a path-escape attempt (`..`, absolute paths, symlinks pointing
//!   out) refused with EACCES with nothing outside touched;
//! - `int 0x80` as i386 and as x86_64 code, floating point, 64 MiB touched
//!   page by page, a static glibc i386 program;
//! - a segfault (status 139) followed by a successful job on the same node;
//! - a dynamically linked program running with the submitter's libraries;
//!   one whose interpreter is not exported, and random bytes, refused with
//!   the node's message and nothing run;
//! - Debian's busybox-static gives the host's stdout and status for a few
//!   applets.
//!
//! Needs root, QEMU and musl-gcc (CI has them); otherwise it prints why and
//! passes. gcc-multilib and busybox-static cases are skipped with a note when
//! missing. With `SION_REQUIRE_ALL=1` (CI) every such skip fails the test.

mod common;

use common::BootedLan;
use qemu_net::prereq::{MUSL_GCC, QEMU, must_skip, skip};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");
/// The node's id: qemu-net gives node 0 this MAC.
const NODE: &str = "52:54:00:53:4e:00";

fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs")
}

/// Compiles `tests/programs/<src>` with `cc args` into `bin/<out>`; `None`
/// (with a note) if that compiler setup is missing.
///
/// # Panics
/// When it fails and `SION_REQUIRE_ALL=1` ([`skip`]): CI has every compiler.
fn build(bin: &Path, cc: &str, args: &[&str], src: &str, out: &str) -> Option<PathBuf> {
    let target = bin.join(out);
    let status = Command::new(cc)
        .args(args)
        .arg(sources().join(src))
        .arg("-o")
        .arg(&target)
        .arg("-lm")
        .output();
    match status {
        Ok(o) if o.status.success() => Some(target),
        Ok(o) => {
            skip(&format!(
                "{out}: `{cc} {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
            None
        }
        Err(e) => {
            skip(&format!("{out}: {cc}: {e}"));
            None
        }
    }
}

/// The booted node.
struct Node {
    booted: BootedLan,
}

impl Node {
    /// `hostd submit --node NODE <args>` inside the LAN, run in `dir`, with
    /// `stdin` and extra environment.
    fn submit_in(&self, dir: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        let mut cmd: Vec<String> =
            vec![HOSTD.into(), "submit".into(), "--node".into(), NODE.into()];
        cmd.extend(args.iter().map(|s| s.to_string()));
        self.booted.run(&cmd, dir, stdin, env)
    }

    fn log(&self) -> String {
        self.booted.log(0)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a job's status and stdout (and returns its stderr).
#[track_caller]
fn expect(out: &Output, code: i32, stdout: &str) -> String {
    let err = text(&out.stderr);
    assert_eq!(
        (out.status.code(), text(&out.stdout).as_str()),
        (Some(code), stdout),
        "stderr: {err}"
    );
    err
}

#[test]
fn static_linux_programs_run_on_a_node_through_hostd_submit() {
    if must_skip(true, &[QEMU, MUSL_GCC]) {
        return;
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("submit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let bin = tmp.join("bin");
    let job = tmp.join("outside/job");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(job.join("sub")).unwrap();

    let musl = |src: &str, out: &str| build(&bin, "musl-gcc", &["-static", "-O2"], src, out);
    let hello = musl("hello.c", "hello").expect("musl-gcc builds hello");
    let exitcode = musl("exitcode.c", "exitcode").unwrap();
    let args = musl("args.c", "args").unwrap();
    let files = musl("files.c", "files").unwrap();
    let segv = musl("segv.c", "segv").unwrap();
    let escape = musl("escape.c", "escape").unwrap();
    let alloc = musl("alloc.c", "alloc").unwrap();
    let float = musl("float.c", "float").unwrap();
    let stdin = musl("stdin.c", "stdin").unwrap();
    let syscost = musl("syscost.c", "syscost").unwrap();
    let int80_64 = build(
        &bin,
        "gcc",
        &["-nostdlib", "-static", "-no-pie"],
        "int80_64.S",
        "int80_64",
    );
    let int80_32 = build(
        &bin,
        "gcc",
        &["-m32", "-nostdlib", "-static"],
        "int80_32.S",
        "int80_32",
    );
    let glibc32 = build(
        &bin,
        "gcc",
        &["-m32", "-static", "-O2"],
        "hello.c",
        "hello32",
    );
    let dynamic = build(&bin, "gcc", &["-O2"], "hello.c", "hello-dynamic").unwrap();
    // Its interpreter is nowhere the submitter exports.
    let lost_interp = build(
        &bin,
        "gcc",
        &["-O2", "-Wl,--dynamic-linker=/opt/nowhere/ld.so.2"],
        "hello.c",
        "hello-lost-interp",
    )
    .unwrap();
    let random = bin.join("random.bin");
    std::fs::write(
        &random,
        (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();

    // The job directory, and things outside it an escape would reach.
    std::fs::write(job.join("input.txt"), "first line\nsecond line\n").unwrap();
    std::fs::write(tmp.join("outside/outside.txt"), "secret\n").unwrap();
    std::os::unix::fs::symlink("../outside.txt", job.join("link-out")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", job.join("link-abs")).unwrap();
    std::os::unix::fs::symlink("..", job.join("dir-link")).unwrap();
    std::fs::write(job.join("syscost.dat"), "x").unwrap();
    for p in [
        &hello, &exitcode, &args, &files, &segv, &escape, &alloc, &float, &stdin, &syscost,
    ] {
        std::fs::copy(p, job.join(p.file_name().unwrap())).unwrap();
    }

    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let node = Node {
        booted: BootedLan::boot("sq", image, &[256]),
    };
    let run = |args: &[&str]| node.submit_in(&job, args, b"", &[]);

    // Hello, and how long a whole submission takes.
    let t = Instant::now();
    expect(&run(&["./hello"]), 0, "hello from SiON\n");
    eprintln!("hello: {:?} for the whole hostd submit", t.elapsed());

    // The --json summary: the last line of stderr; stdout stays the program's.
    let out = run(&["--json", "./hello"]);
    assert_eq!(text(&out.stdout), "hello from SiON\n");
    let err = text(&out.stderr);
    let summary: sion_hostd::submit::SubmitSummary =
        serde_json::from_str(err.lines().last().unwrap_or("")).expect("a JSON summary");
    assert_eq!(summary.node.id.as_deref(), Some(NODE), "{err}");
    assert!(
        summary.node.name.is_some() && summary.job.is_some(),
        "{err}"
    );
    assert_eq!((summary.status, summary.placements), (0, 1), "{err}");
    assert!(
        summary.timings_ms.upload >= 0.0 && summary.timings_ms.run >= 0.0,
        "{err}"
    );

    // Exit codes.
    for code in ["0", "1", "42"] {
        expect(&run(&["./exitcode", code]), code.parse().unwrap(), "");
    }

    // Arguments, environment (inherited, --env, --env-clear), auxv, cwd.
    let out = node.submit_in(
        &job,
        &["--env", "SION_B=two", "./args", "x y", "-z"],
        b"",
        &[("SION_A", "one")],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for want in [
        "argc=3\n",
        "argv[0]=./args\n",
        "argv[1]=x y\n",
        "argv[2]=-z\n",
        "env SION_A=one\n",
        "env SION_B=two\n",
        "pagesz=4096\n",
        "random=yes\n",
        "uname=Linux x86_64\n",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let canonical_job = job.canonicalize().unwrap();
    assert!(
        stdout.contains(&format!("cwd={}\n", canonical_job.display()))
            || stdout.contains(&format!("cwd={}\n", job.display())),
        "{stdout}"
    );
    let out = node.submit_in(
        &job,
        &["--env-clear", "--env", "SION_C=3", "./args"],
        b"",
        &[("SION_A", "one")],
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("env SION_C=3\n") && !stdout.contains("SION_A"),
        "{stdout}"
    );

    // Stdin in, stdout and stderr out.
    let out = node.submit_in(&job, &["./stdin"], b"abc\nxyz\n", &[]);
    let err = expect(&out, 0, "ABC\nXYZ\n");
    assert!(err.contains("8 bytes"), "{err}");

    // A file read and a file written in the job directory.
    expect(&run(&["./files"]), 0, "copied 23 bytes\n");
    assert_eq!(
        std::fs::read_to_string(job.join("output.txt")).unwrap(),
        "FIRST LINE\nSECOND LINE\n"
    );

    // Path escapes: all EACCES, nothing created outside.
    let out = run(&["./escape"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(stdout.lines().count(), 7, "{stdout}");
    for line in stdout.lines() {
        assert!(line.ends_with(": Permission denied"), "{stdout}");
    }
    assert!(!tmp.join("outside/escaped.txt").exists());

    // A segfault, then a good job on the same node.
    let out = run(&["./segv"]);
    assert_eq!(out.status.code(), Some(139), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "about to fault\n");
    expect(&run(&["./hello"]), 0, "hello from SiON\n");

    // Floating point, 64 MiB touched page by page.
    expect(
        &run(&["./float"]),
        0,
        "pi=3.141593 e=2.718282 sqrt2=1.414214\n",
    );
    expect(&run(&["./alloc"]), 0, "touched 64 MiB\n");

    // int 0x80 by hand, i386 and x86_64; a static glibc i386 program.
    if let Some(p) = &int80_32 {
        expect(&run(&[p.to_str().unwrap()]), 7, "int 0x80 from i386\n");
    }
    if let Some(p) = &int80_64 {
        expect(&run(&[p.to_str().unwrap()]), 9, "int 0x80 from x86_64\n");
    }
    if let Some(p) = &glibc32 {
        expect(&run(&[p.to_str().unwrap()]), 0, "hello from SiON\n");
    }

    // A dynamically linked program runs with the submitter's libraries.
    expect(&run(&[dynamic.to_str().unwrap()]), 0, "hello from SiON\n");

    // Refused programs: the node's message, exit 126, nothing run. Counted
    // by the line a job logs before it starts ("apm: job N from U: CMD ->
    // NODE"): the end line of the job before may still be on its way when
    // hostd has shown its exit.
    let started = |log: String| {
        log.lines()
            .filter(|l| l.contains("apm: job ") && l.contains(" from ") && l.contains(" -> "))
            .count()
    };
    let before = started(node.log());
    let out = run(&[lost_interp.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{err}");
    assert!(
        err.contains("program interpreter /opt/nowhere/ld.so.2") && err.contains("--ro"),
        "{err}"
    );
    let out = run(&[random.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{err}");
    assert!(err.contains("not an ELF"), "{err}");
    let out = run(&["./no-such-program"]);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(started(node.log()), before, "a refused job ran");

    // busybox-static: same stdout and status as on the host.
    let busybox = Path::new("/bin/busybox");
    if busybox.is_file() {
        std::fs::copy(busybox, job.join("busybox")).unwrap();
        std::fs::write(job.join("data.txt"), "pear\napple\nfig\nbanana\ncherry\n").unwrap();
        let cases: &[&[&str]] = &[
            &["echo", "hello", "world"],
            &["cat", "data.txt"],
            &["wc", "-l", "data.txt"],
            &["sort", "data.txt"],
            &["sha256sum", "data.txt"],
            &["seq", "1", "1000"],
            &["expr", "6", "*", "7"],
            &["head", "-n", "3", "data.txt"],
        ];
        for case in cases {
            let host = Command::new(busybox)
                .args(*case)
                .current_dir(&job)
                .output()
                .unwrap();
            let mut args = vec!["./busybox"];
            args.extend_from_slice(case);
            let remote = run(&args);
            assert_eq!(
                (remote.status.code(), text(&remote.stdout)),
                (host.status.code(), text(&host.stdout)),
                "busybox {case:?}: {}",
                text(&remote.stderr)
            );
        }
        let remote = node.submit_in(&job, &["./busybox", "tr", "a-z", "A-Z"], b"tr me\n", &[]);
        expect(&remote, 0, "TR ME\n");
    } else {
        skip("busybox applets: /bin/busybox missing (package busybox-static)");
    }

    // Figures (issue 5 benchmark): a whole `hostd submit` of a program that
    // exits at once, 50 runs; one system call served on the node and one
    // forwarded to hostd.
    let mut times: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            expect(&run(&["./exitcode"]), 0, "");
            t.elapsed()
        })
        .collect();
    times.sort();
    eprintln!(
        "figures: hostd submit --node of a program that exits at once: median {:.1} ms, p99 {:.1} ms (50 runs, whole command)",
        times[25].as_secs_f64() * 1e3,
        times[49].as_secs_f64() * 1e3
    );
    let out = run(&["./syscost", "500"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    eprintln!("figures: {}", text(&out.stdout).replace('\n', " "));

    let log = node.log();
    assert!(!log.contains("panicked"), "{log}");
}
