//! `sion-demo`: the main job, end to end. Builds the node image and the sample
//! programs, boots a 3-node SiON cluster on a private qemu-net LAN (nodes with
//! 256, 384 and 512 MiB; the biggest one kept busy by a long job), starts
//! `hostd daemon` on that LAN, and runs the sample workload through `hostd
//! submit`: the SiON paper's n-th prime benchmark (§5.1) for N = 1000, 5000 and
//! 10000, checked against the same binary run here; busybox applets over a file
//! of this machine, checked against busybox run here; a busybox shell
//! pipeline, this machine's dynamically linked `sort` and a threaded program,
//! each checked against the same run here; threads running at once on the
//! 384 MiB node, which has 2 processors (`tests/programs/smp.c`: a
//! shared-memory ping-pong that only finishes when both threads run at the
//! same moment, and a futex-mutex counter), checked against the host; and
//! two exclusive jobs
//! submitted at once, which must land on two different nodes. For each job it
//! prints the chosen node, the score table, the program's output, its exit
//! status and the timings. Then it takes the cluster down (or, with `--keep`,
//! leaves it up and says how to submit more jobs by hand).
//!
//! Needs root (network namespaces), QEMU, `musl-gcc` (Debian musl-tools) and a
//! static busybox (Debian busybox-static); `./sion demo` installs them.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use qemu_net::lan::{Lan, UpOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run SiON's demo: a 3-node cluster, real programs through `hostd submit`.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Leave the cluster (and hostd daemon) up at the end and print how to use it.
    #[arg(long)]
    keep: bool,
    /// The LAN's name (its namespace is NAME-qemu-net).
    #[arg(long, default_value = "sion")]
    name: String,
}

/// Memory of the three nodes, MiB.
const MEMORY: [u32; 3] = [256, 384, 512];
/// The node with 2 processors (node 1, QEMU `-smp 2`): its id.
const SMP_NODE: &str = "52:54:00:53:4e:01";
/// The n-th prime inputs of the paper's benchmark.
const PRIMES: [u32; 3] = [1000, 5000, 10000];
/// The long job that keeps the biggest node busy (several seconds under TCG).
const BUSY_N: &str = "300000";
/// The busybox applets run over the host file (name, arguments after `busybox`).
const APPLETS: [&[&str]; 5] = [
    &["wc", "-l", "words.txt"],
    &["sort", "words.txt"],
    &["sha256sum", "words.txt"],
    &["head", "-n", "3", "words.txt"],
    &["expr", "6", "*", "7"],
];

fn step(text: &str) {
    eprintln!("\x1b[1m==> {text}\x1b[0m");
}

struct Demo {
    lan: Lan,
    hostd: PathBuf,
    socket: PathBuf,
    work: PathBuf,
    daemon: Option<Child>,
    busy: Option<Child>,
    keep: bool,
    checks: Vec<(String, bool)>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for child in [self.busy.take(), self.daemon.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.lan.down();
    }
}

/// One finished `hostd submit`.
struct Job {
    stdout: String,
    stderr: String,
    status: i32,
}

impl Job {
    /// The node that ran the job ("name (id, address)"), from hostd's
    /// --verbose output: the last node chosen (an earlier choice may have been
    /// busy and given up).
    fn node(&self) -> Option<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains(" chosen in "))
            .filter_map(|l| l.strip_prefix("hostd: node ")?.split(" chosen").next())
            .next_back()
    }
}

impl Demo {
    fn hostd_cmd(&self, args: &[&str]) -> Command {
        let mut argv: Vec<String> = vec![
            self.hostd.display().to_string(),
            "--socket".into(),
            self.socket.display().to_string(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = self.lan.command(&argv).expect("a command inside the LAN");
        cmd.current_dir(&self.work).stdin(Stdio::null());
        cmd
    }

    fn submit(&self, args: &[&str]) -> Result<Job> {
        let mut all = vec!["submit", "--verbose"];
        all.extend(args);
        let out: Output = self
            .hostd_cmd(&all)
            .output()
            .context("running hostd submit")?;
        Ok(Job {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            status: out.status.code().unwrap_or(-1),
        })
    }

    fn show(&self, title: &str, job: &Job) {
        println!("--- {title}");
        for line in job.stderr.lines() {
            println!("    {line}");
        }
        println!("    program output:");
        for line in job.stdout.lines().take(12) {
            println!("    | {line}");
        }
        if job.stdout.lines().count() > 12 {
            println!("    | … ({} lines)", job.stdout.lines().count());
        }
        println!("    exit status: {}", job.status);
    }

    fn check(&mut self, what: String, ok: bool) {
        println!("    check: {what}: {}", if ok { "ok" } else { "FAILED" });
        self.checks.push((what, ok));
    }
}

fn host_output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} on the host"))?;
    ensure!(out.status.success(), "{cmd:?} failed on the host");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A static busybox of this machine.
fn find_busybox() -> Result<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let out = Command::new("file").arg("-L").arg(p).output();
        if let Ok(out) = out
            && String::from_utf8_lossy(&out.stdout).contains("statically linked")
        {
            return Ok(PathBuf::from(p));
        }
    }
    bail!("no static busybox found: install it with `apt-get install busybox-static`")
}

/// Builds `source` (relative to this crate) with `musl-gcc -static -O2`
/// into `out`.
fn musl_static(source: &str, out: &Path) -> Result<()> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
    let status = Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(&source)
        .status()
        .context("running musl-gcc: install it with `apt-get install musl-tools`")?;
    ensure!(
        status.success(),
        "musl-gcc could not build {}",
        source.display()
    );
    Ok(())
}

fn prepare(work: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(work)?;
    let nthprime = work.join("nthprime");
    musl_static("nthprime.c", &nthprime)?;
    // A threaded program (pthreads, musl, static), from the tests' sources.
    musl_static("../tests/programs/threads.c", &work.join("threads"))?;
    // The SMP corners program (issue 12), for the 2-processor node.
    musl_static("../tests/programs/smp.c", &work.join("smp"))?;
    let busybox = work.join("busybox");
    std::fs::copy(find_busybox()?, &busybox)?;
    // A file of this machine for the busybox jobs.
    let mut words = String::new();
    for i in 0..200u32 {
        let w = [
            "sion",
            "node",
            "group",
            "kernel",
            "message",
            "placement",
            "heartbeat",
            "frame",
        ][(i * 7 % 8) as usize];
        words.push_str(&format!("{w}-{:03}\n", (i * 37) % 211));
    }
    std::fs::write(work.join("words.txt"), words)?;
    Ok((nthprime, busybox))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    ensure!(
        nix::unistd::geteuid().is_root(),
        "the demo builds a private network and needs root (try: sudo ./sion demo)"
    );
    let started = Instant::now();
    let hostd = std::env::current_exe()?.with_file_name("hostd");
    ensure!(
        hostd.exists(),
        "{} is missing: build it with `cargo build -p sion-hostd` (same profile as sion-demo)",
        hostd.display()
    );

    step("building the node image (the first build compiles the bootloader: a few minutes)");
    let image = sion_image::build(sion_image::Flavor::Node)?;
    println!("image: {} ({} bytes)", image.path.display(), image.size);
    let work = sion_image::target_dir().join("demo");
    step("building the sample programs (musl-gcc -static) and the host file");
    let (nthprime, busybox) = prepare(&work)?;

    step("booting 3 SiON nodes (256, 384 with 2 CPUs, 512 MiB) on a private LAN");
    let run_dir = qemu_net::lan::default_run_dir(&cli.name);
    let lan = Lan::new(&cli.name, Some(run_dir.clone()))?;
    let _ = lan.down(); // a run left over from an earlier demo
    let opts = UpOptions {
        nodes: 3,
        cpus: vec![1, 2, 1],
        memory: MEMORY.to_vec(),
        nics: Vec::new(),
        firmware: Vec::new(),
        cmdline: String::new(),
        image: image.path.clone(),
        wait: Some(Duration::from_secs(120)),
        foreground: false,
        userns: false,
        first_mac: 0,
    };
    let mut demo = Demo {
        lan,
        hostd,
        socket: run_dir.join("hostd.sock"),
        work: work.clone(),
        daemon: None,
        busy: None,
        keep: cli.keep,
        checks: Vec::new(),
    };
    demo.lan.up(&opts)?;

    step("starting hostd daemon on the LAN");
    let _ = std::fs::remove_file(&demo.socket);
    let daemon = demo.hostd_cmd(&["daemon"]).stderr(Stdio::null()).spawn()?;
    demo.daemon = Some(daemon);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = demo.hostd_cmd(&["nodes"]).output()?;
        let table = String::from_utf8_lossy(&out.stdout).into_owned();
        if table
            .lines()
            .filter(|l| l.contains(" node ") && l.contains("alive"))
            .count()
            == 3
        {
            println!("{table}");
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the nodes did not all join within 30 s:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    step(&format!(
        "keeping the 512 MiB node busy with a long job (nthprime {BUSY_N})"
    ));
    let busy = demo
        .hostd_cmd(&[
            "submit",
            "--node",
            "52:54:00:53:4e:02",
            "./nthprime",
            BUSY_N,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    demo.busy = Some(busy);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out =
            String::from_utf8_lossy(&demo.hostd_cmd(&["nodes"]).output()?.stdout).into_owned();
        let busy_row = out
            .lines()
            .find(|l| l.starts_with("52:54:00:53:4e:02"))
            .unwrap_or("");
        // ID NAME ROLE ADDRESS STATUS CPU CPUS FREE-MiB SPEED JOBS HEARD
        if busy_row.split_whitespace().nth(9) == Some("1") {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the busy job did not start:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    step("the n-th prime (SiON paper §5.1) on the cluster, checked against this machine");
    for n in PRIMES {
        let arg = n.to_string();
        let expected = host_output(Command::new(&nthprime).arg(&arg))?;
        let job = demo.submit(&["./nthprime", &arg])?;
        demo.show(&format!("hostd submit ./nthprime {n}"), &job);
        let value = |s: &str| s.split(" (").next().unwrap_or("").trim().to_string();
        let ok = job.status == 0 && value(&job.stdout) == value(&expected);
        demo.check(
            format!(
                "nthprime {n}: {} (host: {})",
                value(&job.stdout),
                value(&expected)
            ),
            ok,
        );
        let avoided_busy = job.node().is_some_and(|n| !n.contains("52:54:00:53:4e:02"));
        demo.check(
            format!(
                "nthprime {n} avoided the busy node (ran on {})",
                job.node().unwrap_or("?")
            ),
            avoided_busy,
        );
    }

    step("busybox applets over a file of this machine, checked against busybox here");
    for applet in APPLETS {
        let mut args = vec!["./busybox"];
        args.extend(applet.iter().copied());
        let expected = host_output(
            Command::new(&busybox)
                .args(applet.iter())
                .current_dir(&work),
        )?;
        let job = demo.submit(&args)?;
        demo.show(&format!("hostd submit {}", args.join(" ")), &job);
        demo.check(
            format!("busybox {} matches the host", applet.join(" ")),
            job.status == 0 && job.stdout == expected,
        );
    }

    step("a shell pipeline, a dynamically linked program of this machine, a threaded program");
    let cases: [(&[&str], Command); 3] = [
        (
            &[
                "./busybox",
                "sh",
                "-c",
                "sort words.txt | cut -d- -f1 | uniq -c | sort -rn | head -3",
            ],
            {
                let mut c = Command::new(&busybox);
                c.args([
                    "sh",
                    "-c",
                    "sort words.txt | cut -d- -f1 | uniq -c | sort -rn | head -3",
                ]);
                c
            },
        ),
        (&["/usr/bin/sort", "-r", "words.txt"], {
            let mut c = Command::new("/usr/bin/sort");
            c.args(["-r", "words.txt"]);
            c
        }),
        (&["./threads"], Command::new(work.join("threads"))),
    ];
    for (args, mut host) in cases {
        let expected = host_output(host.current_dir(&work))?;
        let job = demo.submit(args)?;
        demo.show(&format!("hostd submit {}", args.join(" ")), &job);
        demo.check(
            format!("{} matches the host", args.join(" ")),
            job.status == 0 && job.stdout == expected,
        );
    }

    step("threads in parallel on the 2-CPU node");
    for mode in ["pingpong", "counter"] {
        let args = ["--node", SMP_NODE, "./smp", mode];
        let expected = host_output(Command::new(work.join("smp")).arg(mode))?;
        let job = demo.submit(&args)?;
        demo.show(&format!("hostd submit {}", args.join(" ")), &job);
        demo.check(
            format!("smp {mode} on the 2-CPU node matches the host"),
            job.status == 0 && job.stdout == expected,
        );
    }

    // Long enough (a few seconds each) that they really overlap.
    step("two exclusive jobs submitted at once");
    let spawn = |n: &str| -> Result<Child> {
        let mut cmd = demo.hostd_cmd(&[
            "submit",
            "--verbose",
            "--mode",
            "exclusive",
            "./nthprime",
            n,
        ]);
        Ok(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?)
    };
    let (a, b) = (spawn("400000")?, spawn("400001")?);
    let mut nodes = Vec::new();
    for (n, child) in [("400000", a), ("400001", b)] {
        let out = child.wait_with_output()?;
        let job = Job {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            status: out.status.code().unwrap_or(-1),
        };
        demo.show(
            &format!("hostd submit --mode exclusive ./nthprime {n} (concurrent)"),
            &job,
        );
        let expected = host_output(Command::new(&nthprime).arg(n))?;
        let value = |s: &str| s.split(" (").next().unwrap_or("").trim().to_string();
        demo.check(
            format!("concurrent nthprime {n} = {}", value(&job.stdout)),
            job.status == 0 && value(&job.stdout) == value(&expected),
        );
        nodes.push(job.node().unwrap_or("?").to_string());
    }
    demo.check(
        format!(
            "the two concurrent jobs ran on different nodes ({} / {})",
            nodes[0], nodes[1]
        ),
        nodes[0] != nodes[1],
    );

    if let Some(mut busy) = demo.busy.take() {
        let status = busy.wait()?;
        println!("the long job on the busy node ended: {status}");
    }
    let passed = demo.checks.iter().filter(|(_, ok)| *ok).count();
    let failed = demo.checks.len() - passed;
    println!();
    println!(
        "demo: {} checks, {passed} passed, {failed} failed, in {:.0} s",
        demo.checks.len(),
        started.elapsed().as_secs_f64()
    );
    if cli.keep {
        println!("The cluster stays up. Submit more jobs by hand, for example:");
        println!(
            "  ./sion qemu-net exec --name {} -- target/release/hostd submit --verbose ./prog args…",
            cli.name
        );
        println!(
            "  ./sion qemu-net exec --name {} -- target/release/hostd nodes",
            cli.name
        );
        println!(
            "and take it down with: ./sion qemu-net down --name {}",
            cli.name
        );
    } else {
        step("taking the cluster down");
    }
    println!("{passed} passed, {failed} failed");
    drop(demo);
    if failed > 0 {
        bail!("{failed} demo check(s) failed");
    }
    Ok(())
}
