//! Shared harness of the QEMU LAN tests: skip reasons, one-test-at-a-time
//! lock, the node and test images, and [`TestLan`], a LAN under test that is
//! always taken down when it drops.
#![allow(dead_code)]

use qemu_net::process::ProcId;
use qemu_net::state::{Isolation, RunState};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The `qemu-net` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_qemu-net");
/// The `netprobe` binary.
pub const NETPROBE: &str = env!("CARGO_BIN_EXE_netprobe");

/// True (after saying why) when these tests cannot run here: not root, or no
/// QEMU. Panics instead with `SION_REQUIRE_ALL=1` ([`qemu_net::prereq`]).
pub fn must_skip() -> bool {
    qemu_net::prereq::must_skip(true, &[qemu_net::prereq::QEMU])
}

/// One test at a time: each boots QEMUs and the machine has 2 cores.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The node image, built once per test binary and copied aside, so that a
/// rebuild of `target/sion.img` while a test runs cannot change it under QEMU.
pub fn image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let built = sion_image::build(sion_image::Flavor::Node)
            .expect("building target/sion.img")
            .path;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qemu-net");
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!("sion-node.img.{}", std::process::id()));
        std::fs::copy(&built, &tmp).unwrap();
        let copy = dir.join("sion-node.img");
        std::fs::rename(&tmp, &copy).unwrap();
        copy
    })
}

/// A LAN under test: its name and run directory. Dropping it takes the LAN
/// down and kills anything it recorded, even when the test failed.
pub struct TestLan {
    /// The LAN's name.
    pub name: String,
    /// Its run directory.
    pub run_dir: PathBuf,
}

impl TestLan {
    pub fn new(tag: &str) -> TestLan {
        let name = format!("qt-{tag}-{}", std::process::id());
        let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("qemu-net")
            .join(&name);
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir).unwrap();
        TestLan { name, run_dir }
    }

    pub fn netns(&self) -> String {
        format!("{}-qemu-net", self.name)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--name")
            .arg(&self.name)
            .arg("--run-dir")
            .arg(&self.run_dir);
        c.stdin(Stdio::null());
        c
    }

    /// Runs `qemu-net ARGS…` on this LAN to completion (each command bounds
    /// its own waits).
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().unwrap();
        eprintln!(
            "$ qemu-net {}\n{}{}-> {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status
        );
        out
    }

    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "qemu-net {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn up(&self, args: &[&str]) -> Output {
        let image = image().to_str().unwrap();
        let mut all = vec!["up", "--image", image];
        all.extend(args);
        self.run(&all)
    }

    pub fn state(&self) -> Option<RunState> {
        RunState::load(&self.run_dir).unwrap()
    }

    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.run_ok(&["status", "--json"])).unwrap()
    }
}

impl Drop for TestLan {
    fn drop(&mut self) {
        let recorded = self.state();
        let _ = self.cmd().arg("down").output();
        if let Some(state) = recorded {
            let mut procs: Vec<ProcId> = state.nodes.iter().filter_map(|n| n.process).collect();
            if let Isolation::Userns { holder } = state.isolation {
                procs.push(holder);
            }
            qemu_net::process::stop(&procs, Duration::from_secs(1));
        }
        if Path::new("/run/netns").join(self.netns()).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.netns()])
                .status();
        }
        // Keep the serial logs of a failed test; drop those of a passed one.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}

/// Polls `f` every 100 ms until it is true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The test image (node processes plus the `t-*` test processes), built once
/// per test binary and copied aside like [`image`].
pub fn test_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let built = sion_image::build(sion_image::Flavor::Test)
            .expect("building target/sion-test.img")
            .path;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qemu-net");
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!("sion-test.img.{}", std::process::id()));
        std::fs::copy(&built, &tmp).unwrap();
        let copy = dir.join("sion-test.img");
        std::fs::rename(&tmp, &copy).unwrap();
        copy
    })
}

impl TestLan {
    /// Runs `netprobe ARGS…` inside the LAN (through `qemu-net exec`) and
    /// returns its output; panics, showing it, if it fails.
    pub fn probe(&self, args: &[&str]) -> String {
        let mut all = vec!["exec", "--", NETPROBE];
        all.extend(args);
        let out = self.run(&all);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "netprobe {args:?} failed:\n{text}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The addresses the nodes logged, by node index (from `status --json`).
    pub fn addresses(&self) -> Vec<String> {
        let status = self.status_json();
        status["nodes"]
            .as_array()
            .expect("a node list")
            .iter()
            .map(|n| n["address"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Boots `nodes` nodes of the test image with boot arguments `cmdline`,
    /// waits for their addresses and returns them; panics if `up` fails.
    pub fn up_test_nodes(&self, nodes: usize, cmdline: &str) -> Vec<String> {
        let image = test_image().to_str().unwrap();
        let nodes = nodes.to_string();
        let mut args = vec![
            "up",
            "--image",
            image,
            "--nodes",
            &nodes,
            "--wait",
            "--wait-timeout",
            "90",
        ];
        if !cmdline.is_empty() {
            args.extend(["--cmdline", cmdline]);
        }
        assert!(self.run(&args).status.success(), "qemu-net up failed");
        self.addresses()
    }

    /// The serial log of node `index`.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.run_dir.join(format!("node-{index}.log"))).unwrap_or_default()
    }
}
