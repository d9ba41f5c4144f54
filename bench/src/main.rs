//! `./sion bench` (issue 13): SiON measured side by side with Linux in one
//! run. It builds the static benchmark programs, fetches Debian's stock
//! kernel (cached), builds an initramfs, builds SiON's node and test images,
//! and then, interleaved round by round (SiON, Linux, SiON, …):
//! - boots a SiON node on a private LAN (boot time), runs the compute
//!   programs and the system-call cost program on it through `hostd submit`
//!   (and, in the first round, the submit latency and upload figures);
//! - boots the Linux guest, whose init runs the same static programs and the
//!   AF_UNIX IPC benchmark;
//! - boots the SiON test image with `init=t-ipcbench` for SiON's IPC.
//!
//! Then three nodes at once (boot time, failure detection after one QEMU is
//! killed), the sizes, a summary table on the terminal and
//! `target/bench/report.md` with SVG plots. Needs root (the LAN's network
//! namespace), QEMU, musl-gcc, cpio and dpkg-deb; `./sion bench` installs
//! them.
#![forbid(unsafe_code)]

mod guest;
mod linux;
mod parse;
mod report;
mod sion;
mod smp;
mod stats;

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use report::{Figure, Goal};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Measure SiON side by side with a Debian Linux guest in the same QEMU.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Interleaved rounds (SiON, Linux, SiON IPC) of the comparisons.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// `hostd submit` runs of a program that exits at once.
    #[arg(long, default_value_t = 30)]
    submits: usize,
    /// Boots of three nodes at once, each followed by a failure detection.
    #[arg(long, default_value_t = 3)]
    cluster_runs: usize,
    /// Memory of every guest in MiB (SiON nodes and the Linux guest).
    #[arg(long, default_value_t = 512)]
    memory: u32,
    /// Smaller workloads, to try the bench quickly (figures then do not
    /// compare with a full run).
    #[arg(long)]
    quick: bool,
    /// Only the SMP figures (issue 12): OpenMP with 1 and 2 threads, two
    /// jobs at once against one, IPC on 1 and 2 CPUs, on a 2-vCPU node.
    #[arg(long)]
    smp: bool,
    /// Minutes of the lossy-LAN run: three nodes with 5% of the frames
    /// between them dropped (nftables on the LAN's bridge), counting false
    /// deaths, then a failure detection under that loss. 0 skips it; the
    /// default is issue 13's 10 minutes (1 with --quick).
    #[arg(long)]
    loss_minutes: Option<f64>,
}

/// The SiON paper's Table 3 message sizes.
const IPC_SIZES: [u32; 6] = [4, 1024, 4096, 8192, 16384, 65500];
/// Issue 13's size goals: one floppy (1.44 MB) and 512 KiB.
const FLOPPY: f64 = 1_474_560.0;
const KERNEL_GOAL: f64 = 524_288.0;
/// Size of the program uploaded for the upload figure.
const UPLOAD_BYTES: usize = 32 << 20;

/// Arguments of the compute programs (same on both systems).
struct Workload {
    nth: &'static str,
    triad: [&'static str; 2],
    flops: &'static str,
    syscost: &'static str,
}

const FULL: Workload = Workload {
    nth: "80000",
    triad: ["4000000", "10"],
    flops: "320",
    syscost: "5000",
};
const QUICK: Workload = Workload {
    nth: "5000",
    triad: ["500000", "4"],
    flops: "80",
    syscost: "500",
};

struct Progress {
    started: Instant,
    step: usize,
}

impl Progress {
    fn step(&mut self, text: &str) {
        self.step += 1;
        println!(
            "\x1b[1m[bench {:>2} {:>6.1}s]\x1b[0m {text}",
            self.step,
            self.started.elapsed().as_secs_f64()
        );
    }
    fn note(&self, text: &str) {
        println!("              {text}");
    }
}

/// Compiles a C program statically with musl-gcc into `bin`.
fn compile(src: &Path, bin: &Path) -> Result<PathBuf> {
    let out = bin.join(src.file_stem().context("a source file name")?);
    let (code, _, err) = guest::run_timeout(
        Command::new("musl-gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(src)
            .arg("-lm"),
        Duration::from_secs(120),
    )?;
    ensure!(code == 0, "musl-gcc {}: {err}", src.display());
    Ok(out)
}

/// Samples of one round per figure key; a key a round did not measure gets
/// NaN in that round, so index i is always round i.
#[derive(Default)]
struct Rounds {
    sion: BTreeMap<String, Vec<f64>>,
    linux: BTreeMap<String, Vec<f64>>,
}

impl Rounds {
    fn put(map: &mut BTreeMap<String, Vec<f64>>, round: usize, key: &str, v: f64) {
        let list = map.entry(key.to_string()).or_default();
        list.resize(round, f64::NAN);
        list.push(v);
    }
    fn sion(&mut self, round: usize, key: &str, v: f64) {
        Self::put(&mut self.sion, round, key, v);
    }
    fn linux(&mut self, round: usize, key: &str, v: f64) {
        Self::put(&mut self.linux, round, key, v);
    }
    fn get(map: &BTreeMap<String, Vec<f64>>, key: &str, rounds: usize) -> Vec<f64> {
        let mut v = map.get(key).cloned().unwrap_or_default();
        v.resize(rounds, f64::NAN);
        v
    }
}

/// The compute and system-call figures of one program's output.
fn program_figures(name: &str, out: &str) -> Vec<(String, f64)> {
    let bench = parse::bench_lines(out);
    match name {
        "nthprime" => parse::nthprime(out)
            .map(|(_, _, s)| vec![("compute_nthprime".into(), s)])
            .unwrap_or_default(),
        "triad" => bench
            .get("triad_s")
            .map(|&s| vec![("compute_triad".into(), s)])
            .unwrap_or_default(),
        "flops" => bench
            .get("fp_s")
            .map(|&s| vec![("compute_fp".into(), s)])
            .unwrap_or_default(),
        "syscost" => parse::key_values(out)
            .get("getpid_ns")
            .map(|&ns| vec![("getpid_ns".into(), ns)])
            .unwrap_or_default(),
        "ipcbench" => bench
            .iter()
            .filter_map(|(k, &v)| {
                if k == "nullsys_cycles" {
                    Some(("nullsys".to_string(), v))
                } else if let Some(size) = k.strip_prefix("ipc_oneway_cycles_") {
                    Some((format!("ipc_{size}"), v))
                } else {
                    k.strip_prefix("ipc_setup_cycles_")
                        .map(|size| (format!("ipcsetup_{size}"), v))
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    ensure!(cli.rounds >= 1, "--rounds must be at least 1");
    ensure!(
        nix::unistd::geteuid().is_root(),
        "the bench builds private networks (namespaces) and needs root: sudo ./sion bench"
    );
    for tool in [
        "qemu-system-x86_64",
        "musl-gcc",
        "cpio",
        "dpkg-deb",
        "apt-get",
    ] {
        ensure!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()?
                .status
                .success(),
            "{tool} is missing (./sion bench installs what it needs)"
        );
    }
    let hostd = std::env::current_exe()?.with_file_name("hostd");
    ensure!(
        hostd.exists(),
        "{} is missing: cargo build --release -p sion-hostd",
        hostd.display()
    );
    let work = if cli.quick { QUICK } else { FULL };
    let mut p = Progress {
        started: Instant::now(),
        step: 0,
    };
    let root = sion_image::workspace_root();
    let out_dir = sion_image::target_dir().join("bench");
    let bin = out_dir.join("bin");
    std::fs::create_dir_all(&bin)?;

    p.step("compiling the static benchmark programs (musl-gcc -static -O2)");
    let mut progs: BTreeMap<&str, PathBuf> = BTreeMap::new();
    for (name, src) in [
        ("nthprime", "demo/nthprime.c"),
        ("triad", "bench/programs/triad.c"),
        ("flops", "bench/programs/flops.c"),
        ("ipcbench", "bench/programs/ipcbench.c"),
        ("init", "bench/programs/init.c"),
        ("syscost", "tests/programs/syscost.c"),
        ("exitcode", "tests/programs/exitcode.c"),
    ] {
        progs.insert(name, compile(&root.join(src), &bin)?);
    }
    if cli.smp {
        return smp::run(
            cli.rounds,
            cli.memory,
            &progs["nthprime"],
            &hostd,
            &root,
            &bin,
        );
    }
    // The job directory of the SiON runs: the same binaries, the file
    // syscost reads, and a 32 MiB program for the upload figure (exitcode
    // with data appended after its segments: loaded as exitcode).
    let job = out_dir.join("job");
    std::fs::create_dir_all(&job)?;
    for name in ["nthprime", "triad", "flops", "syscost", "exitcode"] {
        std::fs::copy(&progs[name], job.join(name))?;
    }
    std::fs::write(job.join("syscost.dat"), b"x")?;
    let mut big = std::fs::read(&progs["exitcode"])?;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    while big.len() < UPLOAD_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(job.join("upload"), &big)?;
    let _ = Command::new("chmod")
        .arg("755")
        .arg(job.join("upload"))
        .status();

    p.step("Debian's stock kernel for the Linux guest (apt-get download, cached in target/bench/linux)");
    let linux_dir = out_dir.join("linux");
    std::fs::create_dir_all(&linux_dir)?;
    let kernel = linux::kernel(&linux_dir)?;
    p.note(&format!(
        "{} ({})",
        kernel.package,
        kernel.vmlinuz.display()
    ));
    let conf = format!(
        "/nthprime {}\n/triad {} {}\n/flops {}\n/syscost {}\n/ipcbench\n",
        work.nth, work.triad[0], work.triad[1], work.flops, work.syscost
    );
    let initrd = linux_dir.join("initramfs.cpio");
    let in_guest: Vec<(&str, PathBuf)> = ["nthprime", "triad", "flops", "syscost", "ipcbench"]
        .iter()
        .map(|n| (*n, progs[n].clone()))
        .collect();
    linux::initramfs(&initrd, &progs["init"], &in_guest, &conf)?;
    p.note(&format!(
        "initramfs {} ({} bytes), /bench.conf:",
        initrd.display(),
        std::fs::metadata(&initrd)?.len()
    ));
    for l in conf.lines() {
        p.note(&format!("  {l}"));
    }

    p.step("building SiON's node and test images");
    let node_image = sion_image::build(sion_image::Flavor::Node)?;
    let test_image = sion_image::build(sion_image::Flavor::Test)?;
    let sion_args = sion_image::qemu_args(&node_image.path, cli.memory, "", false);
    let linux_args = linux::qemu_args(&kernel.vmlinuz, &initrd, &sion_args);

    let mut figures = Vec::new();
    // Sizes.
    let bins = sion_image::bin_dir();
    let mut kernel_and_managers = 0u64;
    for name in ["sion-kernel", "init", "companion-mgr", "app-mgr"] {
        let len = std::fs::metadata(bins.join(name))
            .with_context(|| format!("{name} in {}", bins.display()))?
            .len();
        p.note(&format!("{name}: {len} bytes"));
        kernel_and_managers += len;
    }
    p.note(&format!(
        "{}: {} bytes",
        node_image.path.display(),
        node_image.size
    ));

    let lan = format!("bn{}", std::process::id() % 100_000);
    let mut r = Rounds::default();
    let mut submit_wall = Vec::new();
    let mut submit_parts = [Vec::new(), Vec::new(), Vec::new()];
    let mut upload = Vec::new();
    for round in 0..cli.rounds {
        p.step(&format!(
            "round {}/{}: SiON node ({} MiB) — boot, then compute through hostd submit",
            round + 1,
            cli.rounds,
            cli.memory
        ));
        let mut cluster = sion::Cluster::up(
            &lan,
            &format!("round-{}", round + 1),
            &node_image.path,
            &[cli.memory],
            &[],
            &hostd,
        )?;
        let boot = cluster.wait_each("boot", Duration::from_secs(120), |_, log| {
            log.contains(sion::JOINING)
        })?[0];
        r.sion(round, "boot_1", boot.as_secs_f64());
        cluster.start_daemon(Duration::from_secs(60))?;
        let mut runs: Vec<(&str, Vec<&str>)> = vec![
            ("nthprime", vec!["./nthprime", work.nth]),
            ("triad", vec!["./triad", work.triad[0], work.triad[1]]),
            ("flops", vec!["./flops", work.flops]),
            ("syscost", vec!["./syscost", work.syscost]),
        ];
        if round % 2 == 1 {
            runs.reverse(); // no program always runs first after the boot
        }
        let mut line = format!("boot {:.2} s;", boot.as_secs_f64());
        for (name, args) in runs {
            let (code, out, err) = cluster.submit(&job, &args, Duration::from_secs(600))?;
            ensure!(
                code == 0,
                "hostd submit {args:?} exited with {code}:\n{out}{err}"
            );
            let got = program_figures(name, &out);
            ensure!(
                !got.is_empty(),
                "no figure in the output of {args:?}:\n{out}{err}"
            );
            if let (Some(t), Some((key, _))) = (parse::submit_timings(&err), got.first())
                && key.starts_with("compute_")
            {
                r.sion(round, &format!("host_{key}"), t.run_ms / 1000.0);
            }
            for (k, v) in got {
                line.push_str(&format!(" {k} {}", report::num(v)));
                r.sion(round, &k, v);
            }
        }
        p.note(&line);
        if round == 0 {
            p.note(&format!("hostd submit ./exitcode, {} times", cli.submits));
            for _ in 0..cli.submits {
                let t = Instant::now();
                let (code, out, err) =
                    cluster.submit(&job, &["./exitcode"], Duration::from_secs(60))?;
                let wall = t.elapsed().as_secs_f64() * 1000.0;
                ensure!(
                    code == 0,
                    "hostd submit ./exitcode exited with {code}: {out}{err}"
                );
                let t =
                    parse::submit_timings(&err).with_context(|| format!("no timings in: {err}"))?;
                submit_wall.push(wall);
                submit_parts[0].push(t.placement_ms);
                submit_parts[1].push(t.upload_ms);
                submit_parts[2].push(t.run_ms);
            }
            // With --node, so the figure is the upload alone (and does not
            // depend on hostd's limit for a node that may be busy).
            let id = sion::node_id(&cluster.log(0)).context("the node's id in its log")?;
            for _ in 0..3 {
                let (code, out, err) =
                    cluster.submit(&job, &["--node", &id, "./upload"], Duration::from_secs(300))?;
                ensure!(
                    code == 0,
                    "hostd submit ./upload exited with {code}: {out}{err}"
                );
                let t =
                    parse::submit_timings(&err).with_context(|| format!("no timings in: {err}"))?;
                upload.push(big.len() as f64 / 1e6 / (t.upload_ms / 1000.0));
            }
            p.note(&format!(
                "submit median {} ms; upload of {} MiB: {} MB/s",
                report::num(stats::Summary::of(&submit_wall).map_or(f64::NAN, |s| s.median)),
                big.len() >> 20,
                report::num(stats::Summary::of(&upload).map_or(f64::NAN, |s| s.median))
            ));
        }
        drop(cluster);

        p.step(&format!(
            "round {}/{}: Linux guest ({})",
            round + 1,
            cli.rounds,
            kernel.package
        ));
        let lr = linux::run_round(&linux_args, Duration::from_secs(900))?;
        r.linux(round, "boot_linux", lr.boot.as_secs_f64());
        let mut line = format!("boot to /init {:.2} s;", lr.boot.as_secs_f64());
        for (cmd, _, out) in &lr.runs {
            let name = cmd
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_start_matches('/');
            let host = lr.host_secs.iter().find(|(c, _)| c == cmd).map(|(_, s)| *s);
            for (k, v) in program_figures(name, out) {
                if let (true, Some(secs)) = (k.starts_with("compute_"), host) {
                    r.linux(round, &format!("host_{k}"), secs);
                }
                if !k.starts_with("ipc") {
                    line.push_str(&format!(" {k} {}", report::num(v)));
                }
                r.linux(round, &k, v);
            }
        }
        p.note(&line);

        p.step(&format!(
            "round {}/{}: SiON IPC (test image, init=t-ipcbench)",
            round + 1,
            cli.rounds
        ));
        let console = sion::ipc_round(&test_image.path, cli.memory, 1, Duration::from_secs(600))?;
        let bench = parse::bench_lines(&console);
        let mut line = String::new();
        for (k, v) in &bench {
            let key = if k == "nullsys_cycles" {
                "nullsys".to_string()
            } else if let Some(size) = k.strip_prefix("ipc_oneway_cycles_") {
                format!("ipc_{size}")
            } else {
                continue;
            };
            line.push_str(&format!(" {key} {}", report::num(*v)));
            r.sion(round, &key, *v);
            if key.starts_with("ipc_") {
                // The paper compared SiON's one-way IPC with Linux's including set-up.
                r.sion(round, &key.replace("ipc_", "ipcsetup_"), *v);
            }
        }
        ensure!(
            !line.is_empty(),
            "t-ipcbench printed no figure:\n{}",
            sion::tail(&console, 20)
        );
        p.note(line.trim());
    }

    let mut boot3 = Vec::new();
    let mut detect = Vec::new();
    for run in 0..cli.cluster_runs {
        p.step(&format!(
            "three nodes at once ({}/{}): boot, then kill one",
            run + 1,
            cli.cluster_runs
        ));
        let cluster = sion::Cluster::up(
            &lan,
            &format!("three-{}", run + 1),
            &node_image.path,
            &[cli.memory; 3],
            &[],
            &hostd,
        )?;
        let joined = cluster.wait_each("boot", Duration::from_secs(120), |_, log| {
            log.contains(sion::JOINING)
        })?;
        let ids: Vec<String> = (0..3)
            .map(|k| sion::node_id(&cluster.log(k)).context("a node id in the joining line"))
            .collect::<Result<_>>()?;
        let know = cluster.wait_each("view", Duration::from_secs(150), |k, log| {
            ids.iter()
                .enumerate()
                .all(|(j, id)| j == k || log.contains(&format!("cm: member {id} joined")))
        })?;
        let all = know.iter().max().copied().unwrap_or_default();
        boot3.push(all.as_secs_f64());
        let victim = &ids[1];
        let dead = format!("cm: member {victim} is dead");
        let killed = Instant::now();
        cluster.lan.kill_node(1)?;
        let mut seen = None;
        while killed.elapsed() < Duration::from_secs(30) {
            if cluster.log(0).contains(&dead) && cluster.log(2).contains(&dead) {
                seen = Some(killed.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let Some(seen) = seen else {
            bail!("nodes 0 and 2 did not declare {victim} dead within 30 s");
        };
        detect.push(seen.as_secs_f64());
        p.note(&format!(
            "joining at {} s, every node knew every other at {:.2} s; node 1 declared dead by both others {:.2} s after its QEMU was killed",
            joined.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect::<Vec<_>>().join("/"),
            all.as_secs_f64(),
            seen.as_secs_f64()
        ));
    }

    let loss_minutes = cli
        .loss_minutes
        .unwrap_or(if cli.quick { 1.0 } else { 10.0 });
    let mut loss = LossRun::default();
    if loss_minutes > 0.0 {
        p.step(&format!(
            "three nodes, {LOSS_PERCENT}% of the frames between them dropped for {loss_minutes} min: false deaths, then a kill"
        ));
        let cluster = sion::Cluster::up(
            &lan,
            "loss",
            &node_image.path,
            &[cli.memory; 3],
            &[],
            &hostd,
        )?;
        loss = lossy_run(&cluster, loss_minutes)?;
        p.note(&format!(
            "{} frames dropped; {} false deaths and {} suspicions in {loss_minutes} min; node 1 declared dead by both others {:.2} s after its QEMU was killed",
            loss.dropped, loss.false_deaths, loss.suspicions, loss.detect
        ));
    }

    p.step("writing the report");
    let n = cli.rounds;
    let cmp = |key: &str, name: &str, unit: &str, goal: Option<Goal>| {
        Figure::compare(
            key,
            name,
            unit,
            Rounds::get(&r.sion, key, n),
            Rounds::get(&r.linux, key, n),
            goal,
        )
    };
    figures.push(cmp(
        "compute_nthprime",
        &format!("n-th prime ({})", work.nth),
        "s",
        Some(Goal::RatioAtLeast(1.10)),
    ));
    figures.push(cmp(
        "compute_triad",
        &format!(
            "STREAM triad ({} doubles × {})",
            work.triad[0], work.triad[1]
        ),
        "s",
        Some(Goal::RatioAtLeast(1.10)),
    ));
    figures.push(cmp(
        "compute_fp",
        &format!("FP: {0}×{0} matrix product", work.flops),
        "s",
        Some(Goal::RatioAtLeast(1.10)),
    ));
    for (key, name) in [
        ("nthprime", "n-th prime"),
        ("triad", "STREAM triad"),
        ("fp", "FP matrix product"),
    ] {
        figures.push(cmp(
            &format!("host_compute_{key}"),
            &format!("  {name} by the host's clock (job start → exit)"),
            "s",
            None,
        ));
    }
    for size in IPC_SIZES {
        let goal = match size {
            4 => Some(Goal::RatioAtLeast(20.0)),
            65500 => Some(Goal::RatioAtLeast(1.0)),
            _ => None,
        };
        figures.push(cmp(
            &format!("ipc_{size}"),
            &format!("IPC one-way {size} B (Linux: AF_UNIX dgram)"),
            "cycles",
            goal,
        ));
    }
    for size in IPC_SIZES {
        figures.push(cmp(
            &format!("ipcsetup_{size}"),
            &format!("IPC {size} B (Linux with socket set-up)"),
            "cycles",
            None,
        ));
    }
    figures.push(cmp(
        "nullsys",
        "null system call (SiON int 0x40 getpid / Linux getpid)",
        "cycles",
        None,
    ));
    figures.push(cmp(
        "getpid_ns",
        "getpid served by the App-Program Manager / native Linux",
        "ns",
        Some(Goal::RatioAtLeast(0.1)),
    ));
    figures.push(Figure::sion(
        "submit",
        "hostd submit of a program that exits at once (wall)",
        "ms",
        submit_wall,
        Some(Goal::AtMost(5.0)),
    ));
    for (part, samples) in ["placement", "upload", "run"].iter().zip(submit_parts) {
        figures.push(Figure::sion(
            &format!("submit_{part}"),
            &format!("  of which {part} (hostd --verbose)"),
            "ms",
            samples,
            None,
        ));
    }
    figures.push(Figure::sion(
        "upload",
        &format!("program upload ({} MiB)", big.len() >> 20),
        "MB/s",
        upload,
        Some(Goal::AtLeast(50.0)),
    ));
    figures.push(Figure::sion(
        "boot_1",
        "boot: QEMU start → node in the group (1 node)",
        "s",
        Rounds::get(&r.sion, "boot_1", n),
        Some(Goal::AtMost(2.0)),
    ));
    figures.push(Figure::sion(
        "boot_3",
        "boot: QEMU start → 3 nodes all know each other",
        "s",
        boot3,
        None,
    ));
    figures.push(Figure {
        linux: Rounds::get(&r.linux, "boot_linux", n),
        ..Figure::sion(
            "boot_linux",
            "boot: Linux guest, QEMU start → /init",
            "s",
            Vec::new(),
            None,
        )
    });
    figures.push(Figure::sion(
        "detect",
        "failure detection (QEMU killed → both others declare it dead)",
        "s",
        detect,
        Some(Goal::AtMost(3.0)),
    ));
    if loss_minutes > 0.0 {
        figures.push(Figure::sion(
            "loss_false_deaths",
            &format!("false deaths at {LOSS_PERCENT}% loss in {loss_minutes} min (3 nodes)"),
            "count",
            vec![loss.false_deaths as f64],
            Some(Goal::AtMost(0.0)),
        ));
        figures.push(Figure::sion(
            "loss_suspicions",
            &format!(
                "  suspicions of live nodes at {LOSS_PERCENT}% loss in {loss_minutes} min ({} frames dropped)",
                loss.dropped
            ),
            "count",
            vec![loss.suspicions as f64],
            None,
        ));
        figures.push(Figure::sion(
            "loss_detect",
            &format!("failure detection at {LOSS_PERCENT}% loss"),
            "s",
            vec![loss.detect],
            Some(Goal::AtMost(3.0)),
        ));
    }
    figures.push(Figure::sion(
        "image",
        "image size (target/sion.img)",
        "bytes",
        vec![node_image.size as f64],
        Some(Goal::AtMost(FLOPPY)),
    ));
    figures.push(Figure::sion(
        "kernel_managers",
        "kernel + init + managers (ELF files)",
        "bytes",
        vec![kernel_and_managers as f64],
        Some(Goal::AtMost(KERNEL_GOAL)),
    ));

    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    let context = format!(
        "Run of {} with {} interleaved rounds{}. Every guest: {}, {} MiB, one CPU, `-cpu {}`, accelerator {}.\n\
         Linux guest: Debian's stock kernel `{}` with an initramfs of the same static (musl) programs.\n\
         SiON compute figures are the programs' own clock_gettime times, run through `hostd submit` on a 1-node LAN; \
         IPC and null-call figures are in-guest TSC medians (SiON: `t-ipcbench`; Linux: `bench/programs/ipcbench.c`).\n\
         Machine: {} cores, shared with other work: figures are noisy, read the spreads.",
        chrono_free_date(),
        n,
        if cli.quick {
            " (--quick workloads)"
        } else {
            ""
        },
        qemu,
        cli.memory,
        arg_after(&sion_args, "-cpu").unwrap_or_default(),
        arg_after(&sion_args, "-accel").unwrap_or_else(|| "TCG".into()),
        kernel.package,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let path = report::write(&out_dir, &context, &figures)?;
    println!();
    print!("{}", report::text_table(&figures));
    println!(
        "\nreport: {} (plots beside it); {:.0} s in all",
        path.display(),
        p.started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The date and time now, from `date -u` (no date crate needed for one line).
fn chrono_free_date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Percentage of the frames between nodes the lossy run drops.
const LOSS_PERCENT: u32 = 5;

/// What the lossy-LAN run found.
#[derive(Default)]
struct LossRun {
    /// "is dead" lines about live nodes, summed over the nodes.
    false_deaths: usize,
    /// "is suspect" lines about live nodes, summed over the nodes.
    suspicions: usize,
    /// Seconds from the kill of node 1 until both others declared it dead.
    detect: f64,
    /// Frames the rule dropped during the soak (its nftables counter).
    dropped: u64,
}

/// The packet count of the first `counter packets N` in `nft list` output.
fn counter_packets(listing: &str) -> Option<u64> {
    let rest = &listing[listing.find("counter packets ")? + "counter packets ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The nftables commands that drop `percent`% of the frames the LAN's
/// bridge forwards between its ports (each copy of a broadcast is drawn
/// on its own), as argument lists for `nft`.
fn loss_rules(percent: u32) -> Vec<Vec<String>> {
    let rules: [&[&str]; 3] = [
        &["add", "table", "bridge", "sionbench"],
        &[
            "add",
            "chain",
            "bridge",
            "sionbench",
            "forward",
            "{ type filter hook forward priority 0 ; }",
        ],
        &[
            "add",
            "rule",
            "bridge",
            "sionbench",
            "forward",
            "numgen",
            "random",
            "mod",
            "100",
            "<",
            &percent.to_string(),
            "counter",
            "drop",
        ],
    ];
    rules
        .iter()
        .map(|r| r.iter().map(|a| a.to_string()).collect())
        .collect()
}

/// Counts the lines of `log` containing `what` (`is dead`, `is suspect`)
/// about one of `ids`.
fn count_about(log: &str, ids: &[String], what: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(what) && ids.iter().any(|id| l.contains(id.as_str())))
        .count()
}

/// Three nodes: once all know each other, 5% of the frames between them are
/// dropped for `minutes`; every death or suspicion of a live node is
/// counted; then node 1 is killed and the time until both others declare it
/// dead is measured, still under loss.
fn lossy_run(cluster: &sion::Cluster, minutes: f64) -> Result<LossRun> {
    let ids: Vec<String> = {
        cluster.wait_each("boot", Duration::from_secs(120), |_, log| {
            log.contains(sion::JOINING)
        })?;
        (0..3)
            .map(|k| sion::node_id(&cluster.log(k)).context("a node id in the joining line"))
            .collect::<Result<_>>()?
    };
    cluster.wait_each("view", Duration::from_secs(150), |k, log| {
        ids.iter()
            .enumerate()
            .all(|(j, id)| j == k || log.contains(&format!("cm: member {id} joined")))
    })?;
    for rule in loss_rules(LOSS_PERCENT) {
        let mut argv = vec!["nft".to_string()];
        argv.extend(rule);
        let (code, out, err) =
            guest::run_timeout(&mut cluster.lan.command(&argv)?, Duration::from_secs(20))?;
        ensure!(
            code == 0,
            "{argv:?} failed: {out}{err} (apt-get install nftables)"
        );
    }
    let before: Vec<usize> = (0..3).map(|k| cluster.log(k).len()).collect();
    let since = |k: usize| cluster.log(k).get(before[k]..).unwrap_or("").to_string();
    std::thread::sleep(Duration::from_secs_f64(minutes * 60.0));
    let mut run = LossRun::default();
    let list: Vec<String> = ["nft", "list", "table", "bridge", "sionbench"]
        .map(String::from)
        .to_vec();
    let (_, listing, _) =
        guest::run_timeout(&mut cluster.lan.command(&list)?, Duration::from_secs(20))?;
    run.dropped = counter_packets(&listing).unwrap_or(0);
    for k in 0..3 {
        let others: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .map(|(_, id)| id.clone())
            .collect();
        run.false_deaths += count_about(&since(k), &others, "is dead");
        run.suspicions += count_about(&since(k), &others, "is suspect");
    }
    let dead = format!("cm: member {} is dead", ids[1]);
    let before: Vec<usize> = (0..3).map(|k| cluster.log(k).len()).collect();
    let killed = Instant::now();
    cluster.lan.kill_node(1)?;
    while killed.elapsed() < Duration::from_secs(60) {
        let after = |k: usize| {
            cluster
                .log(k)
                .get(before[k]..)
                .unwrap_or("")
                .contains(&dead)
        };
        if after(0) && after(2) {
            run.detect = killed.elapsed().as_secs_f64();
            return Ok(run);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("under loss, nodes 0 and 2 did not declare node 1 dead within 60 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_each_program() {
        assert_eq!(
            program_figures("nthprime", "prime 30000 = 350377 (1.250 s)\n"),
            vec![("compute_nthprime".to_string(), 1.25)]
        );
        assert_eq!(
            program_figures("triad", "BENCH triad_s 0.5\nBENCH triad_mb_s 960\n"),
            vec![("compute_triad".to_string(), 0.5)]
        );
        assert_eq!(
            program_figures("syscost", "getpid_ns=97000\nread1_ns=3\n"),
            vec![("getpid_ns".to_string(), 97000.0)]
        );
        let ipc = program_figures(
            "ipcbench",
            "BENCH nullsys_cycles 500\nBENCH ipc_oneway_cycles_4 9000\nBENCH ipc_setup_cycles_4 20000\nBENCH other 1\n",
        );
        assert_eq!(
            ipc,
            vec![
                ("ipc_4".to_string(), 9000.0),
                ("ipcsetup_4".to_string(), 20000.0),
                ("nullsys".to_string(), 500.0)
            ]
        );
        assert!(program_figures("flops", "no figure\n").is_empty());
        assert!(program_figures("unknown", "BENCH fp_s 1\n").is_empty());
    }

    #[test]
    fn rounds_keep_indexes_aligned() {
        let mut r = Rounds::default();
        r.sion(0, "a", 1.0);
        r.sion(2, "a", 3.0); // round 1 did not measure a
        r.linux(1, "a", 5.0);
        let s = Rounds::get(&r.sion, "a", 3);
        assert_eq!((s[0], s[1].is_nan(), s[2]), (1.0, true, 3.0));
        let l = Rounds::get(&r.linux, "a", 3);
        assert!(l[0].is_nan() && l[1] == 5.0 && l[2].is_nan());
        assert!(
            Rounds::get(&r.linux, "missing", 2)
                .iter()
                .all(|x| x.is_nan())
        );
    }

    #[test]
    fn loss_rules_drop_the_given_share_of_forwarded_frames() {
        let rules = loss_rules(5);
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0], ["add", "table", "bridge", "sionbench"]);
        assert!(rules[1].last().unwrap().contains("hook forward"));
        let rule = rules[2].join(" ");
        assert!(
            rule.ends_with("numgen random mod 100 < 5 counter drop"),
            "{rule}"
        );
    }

    #[test]
    fn deaths_and_suspicions_of_given_members_are_counted() {
        let log = "cm: member 52:54:00:53:4e:01 is suspect\ncm: member 52:54:00:53:4e:01 is alive again\n\
                   cm: member 52:54:00:53:4e:02 is dead\ncm: member 11:22:33:44:55:66 is dead\n";
        let ids = [
            "52:54:00:53:4e:01".to_string(),
            "52:54:00:53:4e:02".to_string(),
        ];
        assert_eq!(
            count_about(log, &ids, "is dead"),
            1,
            "the unknown member does not count"
        );
        assert_eq!(count_about(log, &ids, "is suspect"), 1);
        assert_eq!(count_about("", &ids, "is dead"), 0);
    }

    #[test]
    fn nft_counter_is_read() {
        let listing = "table bridge sionbench {\n\tchain forward {\n\t\tnumgen random mod 100 < 5 counter packets 123 bytes 4567 drop\n\t}\n}\n";
        assert_eq!(counter_packets(listing), Some(123));
        assert_eq!(counter_packets("no counter"), None);
    }
}
