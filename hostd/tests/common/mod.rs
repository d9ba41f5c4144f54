//! Shared setup of hostd's QEMU tests and benchmarks: a fresh qemu-net LAN
//! with its own run directory. Whether a test can run here is
//! [`qemu_net::prereq`]'s to say.
#![allow(dead_code)]

pub mod watched;

use qemu_net::lan::Lan;
use std::path::{Path, PathBuf};

/// A LAN named `PREFIX-PID` with an empty run directory under the target's
/// temporary directory.
pub fn fresh_lan(prefix: &str) -> (Lan, PathBuf) {
    let name = format!("{prefix}-{}", std::process::id());
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("qemu-net")
        .join(&name);
    let _ = std::fs::remove_dir_all(&run_dir);
    let lan = Lan::new(&name, Some(run_dir.clone())).expect("a LAN");
    (lan, run_dir)
}

/// A LAN of booted nodes, brought down when this drops (even when an
/// assertion fails).
pub struct BootedLan {
    /// The LAN.
    pub lan: Lan,
    /// Its run directory (node logs, state).
    pub run_dir: PathBuf,
}

impl Drop for BootedLan {
    fn drop(&mut self) {
        let _ = self.lan.down();
    }
}

impl BootedLan {
    /// Boots one node per entry of `memory_mb` from `image` on a fresh LAN
    /// named `PREFIX-PID`, waiting up to 90 s for their addresses.
    pub fn boot(prefix: &str, image: PathBuf, memory_mb: &[u32]) -> BootedLan {
        BootedLan::boot_hardware(prefix, image, memory_mb, &[], &[])
    }

    /// Like [`BootedLan::boot`], with each node's network card and firmware
    /// (empty: virtio and BIOS; one entry: all nodes; else one per node).
    pub fn boot_hardware(
        prefix: &str,
        image: PathBuf,
        memory_mb: &[u32],
        nics: &[qemu_net::plan::NicModel],
        firmware: &[sion_image::Firmware],
    ) -> BootedLan {
        BootedLan::boot_with(prefix, image, memory_mb, nics, firmware, "")
    }

    /// Like [`BootedLan::boot_hardware`], with SiON boot arguments
    /// `cmdline` for every node (e.g. `key=HEX`).
    pub fn boot_with(
        prefix: &str,
        image: PathBuf,
        memory_mb: &[u32],
        nics: &[qemu_net::plan::NicModel],
        firmware: &[sion_image::Firmware],
        cmdline: &str,
    ) -> BootedLan {
        BootedLan::boot_macs(prefix, image, memory_mb, nics, firmware, cmdline, 0)
    }

    /// Like [`BootedLan::boot_with`], with node K's MAC ending in
    /// `first_mac + K` (LANs joined by a gateway need distinct node ids).
    pub fn boot_macs(
        prefix: &str,
        image: PathBuf,
        memory_mb: &[u32],
        nics: &[qemu_net::plan::NicModel],
        firmware: &[sion_image::Firmware],
        cmdline: &str,
        first_mac: u8,
    ) -> BootedLan {
        BootedLan::boot_options(
            prefix,
            &qemu_net::lan::UpOptions {
                nodes: memory_mb.len(),
                cpus: Vec::new(),
                memory: memory_mb.to_vec(),
                nics: nics.to_vec(),
                firmware: firmware.to_vec(),
                cmdline: cmdline.to_string(),
                image,
                wait: Some(std::time::Duration::from_secs(90)),
                foreground: false,
                userns: false,
                first_mac,
            },
        )
    }

    /// Boots the nodes `opts` describes (give `wait`) on a fresh LAN named
    /// `PREFIX-PID`.
    pub fn boot_options(prefix: &str, opts: &qemu_net::lan::UpOptions) -> BootedLan {
        let (lan, run_dir) = fresh_lan(prefix);
        let booted = BootedLan { lan, run_dir };
        booted.lan.up(opts).expect("qemu-net up");
        booted
    }

    /// Node `index`'s IPv4 address, from its log ("net: configured A/P").
    pub fn address(&self, index: usize) -> std::net::Ipv4Addr {
        let log = self.log(index);
        let line = log
            .lines()
            .find_map(|l| l.split("net: configured ").nth(1))
            .unwrap_or_else(|| panic!("node {index} has no address:\n{log}"));
        line.split('/')
            .next()
            .unwrap()
            .parse()
            .expect("an IPv4 address")
    }

    /// The LAN's network namespace (panics for a user-namespace LAN).
    pub fn netns(&self) -> String {
        let state = qemu_net::state::RunState::load(&self.run_dir)
            .expect("the LAN's state")
            .expect("the LAN is up");
        match state.isolation {
            qemu_net::state::Isolation::Netns { netns } => netns,
            other => panic!("the LAN is not in a named network namespace: {other:?}"),
        }
    }

    /// Waits (up to `timeout`) until the daemon at `socket` (`hostd` is the
    /// binary) sees at least `n` alive nodes; `hostd nodes` runs in `dir`.
    pub fn wait_alive(
        &self,
        hostd: &str,
        socket: &str,
        dir: &Path,
        n: usize,
        timeout: std::time::Duration,
    ) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let cmd: Vec<String> = [hostd, "--socket", socket, "nodes", "--json"]
                .map(String::from)
                .to_vec();
            let out = self.run(&cmd, dir, b"", &[]);
            let alive = serde_json::from_slice::<sion_hostd::model::NodesReport>(&out.stdout)
                .map(|r| alive_nodes(&r).len())
                .unwrap_or(0);
            if alive >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon saw {alive} of {n} nodes"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// Node `index`'s serial log so far.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.run_dir.join(format!("node-{index}.log"))).unwrap_or_default()
    }

    /// Waits (up to 60 s, polling every 100 ms) until node `index`'s log
    /// satisfies `ready`; panics with `what` and the log otherwise.
    pub fn wait_log(&self, index: usize, what: &str, ready: impl Fn(&str) -> bool) {
        let since = std::time::Instant::now();
        while !ready(&self.log(index)) {
            assert!(
                since.elapsed() < std::time::Duration::from_secs(60),
                "{what} within 60 s\n{}",
                self.log(index)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Runs `command` inside the LAN in `dir` with `stdin` and extra
    /// environment (`SION_KEY_FILE=none`, an open group, unless `env` says
    /// otherwise); its output. Panics (with node 0's log) if it takes more
    /// than 120 s, after killing it.
    pub fn run(
        &self,
        command: &[String],
        dir: &Path,
        stdin: &[u8],
        env: &[(&str, &str)],
    ) -> std::process::Output {
        use std::io::Write;
        use std::process::Stdio;
        use std::time::Duration;
        let mut c = self.lan.command(command).expect("a command inside the LAN");
        // An open group unless the test says otherwise (`--key` or `env`):
        // a key in the developer's ~/.config/sion does not leak in.
        c.env(sion_hostd::keys::KEY_ENV, "none");
        c.current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("starting the command");
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin);
        drop(input);
        wait_output(
            child,
            Duration::from_secs(120),
            &format!("{command:?}"),
            || self.log(0),
        )
    }
}

/// A `hostd daemon` running inside a LAN, killed when this drops.
pub struct Daemon {
    child: std::process::Child,
    /// Its control socket.
    pub socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl BootedLan {
    /// Starts `hostd` (the binary at `hostd`) as a daemon inside the LAN,
    /// with its control socket in the run directory.
    pub fn start_daemon(&self, hostd: &str) -> Daemon {
        self.start_daemon_with(hostd, &[], "hostd.sock")
    }

    /// Like [`BootedLan::start_daemon`] with the global options `args` (e.g.
    /// `--key FILE`) and the control socket `socket` in the run directory.
    pub fn start_daemon_with(&self, hostd: &str, args: &[&str], socket: &str) -> Daemon {
        let socket = self.run_dir.join(socket);
        let mut cmd: Vec<String> = vec![hostd.into()];
        cmd.extend(args.iter().map(|a| a.to_string()));
        cmd.extend([
            "--socket".into(),
            socket.display().to_string(),
            "daemon".into(),
        ]);
        let child = self
            .lan
            .command(&cmd)
            .expect("a command inside the LAN")
            .env(sion_hostd::keys::KEY_ENV, "none")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("starting hostd daemon");
        Daemon { child, socket }
    }
}

/// The nodes a `hostd nodes --json` report lists as alive.
pub fn alive_nodes(report: &sion_hostd::model::NodesReport) -> Vec<sion_companion_mgr::NodeId> {
    use sion_companion_mgr::{Role, Status};
    report
        .nodes
        .iter()
        .filter(|n| n.role == Role::Node && n.status == Status::Alive)
        .map(|n| n.id)
        .collect()
}

/// An empty job directory `CARGO_TARGET_TMPDIR/PREFIX-PID/job` for a test's
/// programs and files.
pub fn job_dir(prefix: &str) -> PathBuf {
    let tmp =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let dir = tmp.join("job");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles `tests/programs/<src>` with `cc args` into `dir/<out>`.
///
/// # Panics
/// When the compiler fails: the tests check for their compilers first
/// ([`qemu_net::prereq`]).
pub fn build_program(dir: &Path, cc: &str, args: &[&str], src: &str, out: &str) -> PathBuf {
    build_linked(dir, cc, args, src, out, &[])
}

/// [`build_program`] with `libs` (`-lsqlite3`, …) after the source, where
/// the linker looks for what it uses.
pub fn build_linked(
    dir: &Path,
    cc: &str,
    args: &[&str],
    src: &str,
    out: &str,
    libs: &[&str],
) -> PathBuf {
    let target = dir.join(out);
    let src_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/programs")
        .join(src);
    let o = std::process::Command::new(cc)
        .args(args)
        .arg(&src_path)
        .args(libs)
        .arg("-o")
        .arg(&target)
        .output()
        .unwrap_or_else(|e| panic!("{cc}: {e}"));
    assert!(
        o.status.success(),
        "`{cc} {}` {src} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    target
}

/// Exit status as the shell shows it (128 + signal for a killed program).
pub fn shell_status(out: &std::process::Output) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    out.status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0))
}

/// `hostd submit` with `args` (options and command line), as `hostd`
/// (the binary at `hostd`) takes them.
pub fn submit_cmd(hostd: &str, args: &[&str]) -> Vec<String> {
    [hostd, "submit"]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect()
}

/// Asserts `node` (a job's `hostd submit`) printed the bytes `host` (the
/// same program run here) printed, with the same shell status; `what` names
/// the job, `log` is the node's log for the failure message.
pub fn assert_as_on_host(
    what: &str,
    node: &std::process::Output,
    host: &std::process::Output,
    log: &str,
) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        node.stdout == host.stdout && shell_status(node) == shell_status(host),
        "{what} on the node and on the host differ:\n  node ({}): {:?}\n  host ({}): {:?}\nstderr: {}\nnode log:\n{log}",
        shell_status(node),
        text(&node.stdout),
        shell_status(host),
        text(&host.stdout),
        text(&node.stderr),
    );
}

/// Waits at most `timeout` for `child` (`what` names it) and returns its
/// output; past that, kills it and panics with `log()` (a node's log).
pub fn wait_output(
    mut child: std::process::Child,
    timeout: std::time::Duration,
    what: &str,
    log: impl Fn() -> String,
) -> std::process::Output {
    let deadline = std::time::Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish in {timeout:?}\n{}", log());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
