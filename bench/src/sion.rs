//! The SiON side: nodes on a private qemu-net LAN (boot time, failure
//! detection, `hostd submit` of the compute programs), and the test image
//! booted with `init=t-ipcbench` for the in-guest IPC figures.

use crate::guest::{Guest, run_timeout};
use anyhow::{Context, Result, bail};
use qemu_net::lan::{Lan, UpOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The line a node's Companion Manager prints once it has an address and
/// joins the group.
pub const JOINING: &str = "cm: joining the group";

/// A LAN of SiON nodes, with `hostd daemon` once started; both are stopped
/// when this drops.
pub struct Cluster {
    /// The LAN.
    pub lan: Lan,
    /// Its run directory (node logs `node-K.log`, the daemon's socket).
    pub run_dir: PathBuf,
    hostd: PathBuf,
    socket: PathBuf,
    daemon: Option<Child>,
    started: Instant,
    nodes: usize,
}

impl Cluster {
    /// Starts `memory.len()` nodes booting `image` on LAN `name`, its logs
    /// kept in `target/bench/lan/TAG`; returns at once (QEMU started), with
    /// the clock of the boot measurements running. `cpus` gives the nodes'
    /// processors as `qemu-net up --cpus` does (empty: one each).
    pub fn up(
        name: &str,
        tag: &str,
        image: &Path,
        memory: &[u32],
        cpus: &[u32],
        hostd: &Path,
    ) -> Result<Cluster> {
        let run_dir = sion_image::target_dir().join("bench").join("lan").join(tag);
        std::fs::create_dir_all(&run_dir)?;
        let lan = Lan::new(name, Some(run_dir.clone()))?;
        let _ = lan.down(); // a run left over from an interrupted bench
        let opts = UpOptions {
            nodes: memory.len(),
            cpus: cpus.to_vec(),
            memory: memory.to_vec(),
            nics: Vec::new(),
            firmware: Vec::new(),
            cmdline: String::new(),
            image: image.to_path_buf(),
            wait: None,
            foreground: false,
            userns: false,
            first_mac: 0,
        };
        let started = Instant::now();
        let cluster = Cluster {
            lan,
            run_dir: run_dir.clone(),
            hostd: hostd.to_path_buf(),
            socket: run_dir.join("hostd.sock"),
            daemon: None,
            started,
            nodes: memory.len(),
        };
        cluster.lan.up(&opts).context("qemu-net up")?;
        Ok(cluster)
    }

    /// Node `k`'s serial log so far.
    pub fn log(&self, k: usize) -> String {
        std::fs::read_to_string(self.run_dir.join(format!("node-{k}.log"))).unwrap_or_default()
    }

    /// Waits until `done(k, log)` holds for every node; returns, per node,
    /// the time since [`Cluster::up`] started QEMU when it first held
    /// (polled every 20 ms). Errors after `timeout`.
    pub fn wait_each(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(usize, &str) -> bool,
    ) -> Result<Vec<Duration>> {
        let mut at: Vec<Option<Duration>> = vec![None; self.nodes];
        loop {
            for (k, slot) in at.iter_mut().enumerate() {
                if slot.is_none() && done(k, &self.log(k)) {
                    *slot = Some(self.started.elapsed());
                }
            }
            if at.iter().all(Option::is_some) {
                return Ok(at.into_iter().flatten().collect());
            }
            if self.started.elapsed() >= timeout {
                bail!(
                    "{what}: not every node got there within {timeout:?} (node 0's log ends:\n{})",
                    tail(&self.log(0), 10)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn hostd_cmd(&self, dir: &Path, args: &[&str]) -> Result<Command> {
        let mut argv: Vec<String> = vec![
            self.hostd.display().to_string(),
            "--socket".into(),
            self.socket.display().to_string(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = self.lan.command(&argv)?;
        cmd.current_dir(dir);
        Ok(cmd)
    }

    /// Starts `hostd daemon` in the LAN and waits (at most `timeout`) until
    /// it lists every node alive.
    pub fn start_daemon(&mut self, timeout: Duration) -> Result<()> {
        let _ = std::fs::remove_file(&self.socket);
        let daemon = self
            .hostd_cmd(Path::new("/"), &["daemon"])?
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting hostd daemon")?;
        self.daemon = Some(daemon);
        let t = Instant::now();
        loop {
            if self.socket.exists() {
                let (_, table, _) = run_timeout(
                    &mut self.hostd_cmd(Path::new("/"), &["nodes"])?,
                    Duration::from_secs(10),
                )?;
                let alive = table
                    .lines()
                    .filter(|l| l.contains(" node ") && l.contains("alive"))
                    .count();
                if alive == self.nodes {
                    return Ok(());
                }
            }
            if t.elapsed() >= timeout {
                bail!(
                    "hostd daemon did not see all {} nodes alive within {timeout:?}",
                    self.nodes
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `hostd submit --verbose ARGS…` from `dir` (the job directory), at
    /// most `timeout`: (exit status, stdout, stderr).
    pub fn submit(
        &self,
        dir: &Path,
        args: &[&str],
        timeout: Duration,
    ) -> Result<(i32, String, String)> {
        let mut all = vec!["submit", "--verbose"];
        all.extend(args);
        run_timeout(&mut self.hostd_cmd(dir, &all)?, timeout)
    }

    /// `hostd submit ARGS…` from `dir` started at once (not waited for).
    pub fn spawn_submit(&self, dir: &Path, args: &[&str]) -> Result<Child> {
        let mut all = vec!["submit"];
        all.extend(args);
        Ok(self
            .hostd_cmd(dir, &all)?
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(d.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) && matches!(d.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = self.lan.down();
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The node id (MAC) node `k` of a qemu-net LAN has: `52:54:00:53:4e:0K`,
/// read from its `cm: joining the group as NAME (ID)` line.
pub fn node_id(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains(JOINING))?;
    let open = line.find(" (")? + 2;
    let close = open + line[open..].find(')')?;
    Some(line[open..close].to_string())
}

/// Boots the test image with `init=t-ipcbench` (same memory, CPU and
/// accelerator as a node, `cpus` processors, no network card) and returns
/// its console once it printed `BENCH done`, at most `timeout`.
pub fn ipc_round(test_image: &Path, memory: u32, cpus: u32, timeout: Duration) -> Result<String> {
    let mut args = sion_image::qemu_args(test_image, memory, "init=t-ipcbench", false);
    if cpus > 1 {
        args.extend(["-smp".to_string(), cpus.to_string()]);
    }
    args.extend(
        [
            "-snapshot",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-nic",
            "none",
        ]
        .map(String::from),
    );
    let mut guest = Guest::start(&args)?;
    guest.wait_for("BENCH done", timeout)?;
    Ok(guest.console())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_from_the_joining_line() {
        let log = "net: configured 169.254.1.2/16\ncm: joining the group as lively-finch-4e00 (52:54:00:53:4e:00) at 169.254.1.2; cpu speed 400 Mops/s, free memory 400 MiB\n";
        assert_eq!(node_id(log).as_deref(), Some("52:54:00:53:4e:00"));
        assert_eq!(node_id("nothing"), None);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
