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
//! same moment, and a futex-mutex counter), checked against the host; two
//! balance-mode jobs sent to that node at once, which run side by side, one
//! per processor (the node's log shows the second start before the first
//! end); and two exclusive jobs
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
/// The two balance-mode jobs run at once on the 2-CPU node (a few seconds
/// each under TCG).
const TWO_N: &str = "150000";
const TWO_N_NEXT: &str = "150001";
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
    /// The LAN's run directory (node logs `node-N.log`).
    run_dir: PathBuf,
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
    fn from_output(out: Output) -> Job {
        Job {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            status: out.status.code().unwrap_or(-1),
        }
    }

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
        let child = self.spawn_submit(args)?;
        Ok(Job::from_output(child.wait_with_output()?))
    }

    /// Starts `hostd submit --verbose ARGS…` without waiting for it.
    fn spawn_submit(&self, args: &[&str]) -> Result<Child> {
        let mut all = vec!["submit", "--verbose"];
        all.extend(args);
        self.hostd_cmd(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running hostd submit")
    }

    /// Submits `./nthprime N` with `options` for each N of `ns` at once,
    /// waits for every one, shows it and checks its answer against
    /// `nthprime` run here (the check is named `KIND nthprime N = …`);
    /// returns the jobs in the order of `ns`.
    fn nthprime_at_once(
        &mut self,
        nthprime: &Path,
        options: &[&str],
        ns: &[&str],
        kind: &str,
    ) -> Result<Vec<Job>> {
        let children = ns
            .iter()
            .map(|n| {
                let mut args = options.to_vec();
                args.extend(["./nthprime", n]);
                self.spawn_submit(&args)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut jobs = Vec::new();
        for (n, child) in ns.iter().zip(children) {
            let job = Job::from_output(child.wait_with_output()?);
            let title = format!(
                "hostd submit {} ./nthprime {n} (concurrent)",
                options.join(" ")
            );
            self.show(&title, &job);
            let expected = host_output(Command::new(nthprime).arg(n))?;
            self.check(
                format!("{kind} nthprime {n} = {}", prime_value(&job.stdout)),
                job.status == 0 && prime_value(&job.stdout) == prime_value(&expected),
            );
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// The serial log of node `index` so far.
    fn node_log(&self, index: usize) -> String {
        std::fs::read_to_string(self.run_dir.join(format!("node-{index}.log"))).unwrap_or_default()
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

/// "prime N = P" of nthprime's output line "prime N = P (… s)".
fn prime_value(stdout: &str) -> String {
    stdout.split(" (").next().unwrap_or("").trim().to_string()
}

/// Whether the node log, from line `skip` on, shows two jobs that ran at
/// the same time: two `apm: job N from …` lines (their starts), the second
/// before the first job's `apm: job N exited …` line.
fn jobs_overlapped(log: &str, skip: usize) -> bool {
    let lines: Vec<&str> = log.lines().skip(skip).collect();
    let job_line = |what: &str| -> Vec<(usize, String)> {
        lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let (n, tail) = l.split("apm: job ").nth(1)?.split_once(' ')?;
                tail.starts_with(what).then(|| (i, n.to_string()))
            })
            .collect()
    };
    let (starts, ends) = (job_line("from "), job_line("exited "));
    let [(_, first), (second_start, _)] = starts.as_slice() else {
        return false;
    };
    ends.iter().any(|(i, n)| n == first && second_start < i)
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
        run_dir: run_dir.clone(),
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
        let ok = job.status == 0 && prime_value(&job.stdout) == prime_value(&expected);
        demo.check(
            format!(
                "nthprime {n}: {} (host: {})",
                prime_value(&job.stdout),
                prime_value(&expected)
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

    step("two balance-mode jobs at once on the 2-CPU node, one per CPU");
    let skip = demo.node_log(1).lines().count();
    demo.nthprime_at_once(
        &nthprime,
        &["--node", SMP_NODE, "--mode", "balance"],
        &[TWO_N, TWO_N_NEXT],
        "balance",
    )?;
    // The node logs a job's end just after telling its hostd.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ended = |log: &str| {
        log.lines()
            .skip(skip)
            .filter(|l| l.contains(" exited "))
            .count()
    };
    while ended(&demo.node_log(1)) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = demo.node_log(1);
    let overlap = jobs_overlapped(&log, skip);
    println!("    the 2-CPU node's log of the two jobs:");
    for line in log.lines().skip(skip).filter(|l| l.contains("apm: job ")) {
        println!("    | {line}");
    }
    demo.check(
        "both jobs ran on the 2-CPU node at the same time (the second started before the first ended)".into(),
        overlap,
    );

    // Long enough (a few seconds each) that they really overlap.
    step("two exclusive jobs submitted at once");
    let jobs = demo.nthprime_at_once(
        &nthprime,
        &["--mode", "exclusive"],
        &["400000", "400001"],
        "concurrent",
    )?;
    let nodes: Vec<String> = jobs
        .iter()
        .map(|job| job.node().unwrap_or("?").to_string())
        .collect();
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

#[cfg(test)]
mod tests {
    use super::jobs_overlapped;

    const START_1: &str = "apm: job 7 from 169.254.0.1: ./nthprime -> pid 3";
    const START_2: &str = "apm: job 8 from 169.254.0.1: ./nthprime -> pid 4";
    const END_1: &str = "apm: job 7 exited with status 0 (5000 ms, 9 system calls)";
    const END_2: &str = "apm: job 8 exited with status 0 (5000 ms, 9 system calls)";

    #[test]
    fn overlap_needs_the_second_start_before_the_first_end() {
        let at_once = [START_1, "cm: heartbeat", START_2, END_1, END_2].join("\n");
        assert!(jobs_overlapped(&at_once, 0));
        let one_after_another = [START_1, END_1, START_2, END_2].join("\n");
        assert!(!jobs_overlapped(&one_after_another, 0));
        // Lines before `skip` are an earlier part of the log.
        let earlier = [START_1, START_2, END_1, END_2].join("\n");
        assert!(!jobs_overlapped(&earlier, 1));
        assert!(!jobs_overlapped(START_1, 0));
    }
}
