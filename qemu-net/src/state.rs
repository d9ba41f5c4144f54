//! The run's state file (`RUN_DIR/state.json`): what `up` started, so that
//! `status`, `exec`, `kill-node` and `down` (even after a crash) can find it.

use crate::process::ProcId;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the state file format written by this build.
pub const STATE_VERSION: u32 = 1;

/// How the LAN is kept apart from the host's network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Isolation {
    /// A named network namespace (`ip netns`), created as root.
    Netns {
        /// Its name (`/run/netns/NAME`).
        netns: String,
    },
    /// A user + network namespace held open by a `sleep` process started with
    /// `unshare -Urn`; entered with `nsenter -t PID -U -n`.
    Userns {
        /// The holder process.
        holder: ProcId,
    },
}

/// One node of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// 0-based index.
    pub index: usize,
    /// Its MAC.
    pub mac: String,
    /// Its tap device inside the namespace.
    pub tap: String,
    /// Its memory in MiB.
    pub memory_mb: u32,
    /// Its processors (runs recorded before had one).
    #[serde(default = "one_cpu")]
    pub cpus: u32,
    /// Its network card (`virtio` or `e1000`; runs recorded before cards
    /// were chosen were virtio).
    #[serde(default = "default_nic")]
    pub nic: String,
    /// Its firmware (`bios` or `uefi`; runs recorded before were BIOS).
    #[serde(default = "default_firmware")]
    pub firmware: String,
    /// Its serial log.
    pub log: PathBuf,
    /// QEMU's own output.
    pub qemu_log: PathBuf,
    /// Its QEMU process, once started.
    pub process: Option<ProcId>,
}

fn one_cpu() -> u32 {
    1
}

fn default_nic() -> String {
    "virtio".into()
}

fn default_firmware() -> String {
    "bios".into()
}

/// A run of the LAN, as written by `up`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// The LAN's name (`--name`).
    pub name: String,
    /// How it is isolated.
    pub isolation: Isolation,
    /// The bridge inside the namespace.
    pub bridge: String,
    /// The host side's address on the bridge (CIDR).
    pub host_addr: String,
    /// The disk image every node boots.
    pub image: PathBuf,
    /// SiON boot arguments given to every node.
    pub cmdline: String,
    /// The `up --foreground` process watching the run, if any.
    pub supervisor: Option<ProcId>,
    /// The nodes.
    pub nodes: Vec<NodeState>,
}

/// The state file of the run directory `run_dir`.
pub fn state_path(run_dir: &Path) -> PathBuf {
    run_dir.join("state.json")
}

impl RunState {
    /// Writes the state to `state_path(run_dir)` atomically (a temporary file
    /// renamed over it). Errors: I/O.
    pub fn save(&self, run_dir: &Path) -> Result<()> {
        let path = state_path(run_dir);
        let tmp = run_dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads the state of `run_dir`; `Ok(None)` if there is no state file.
    /// Errors: unreadable or malformed file (the message names it).
    pub fn load(run_dir: &Path) -> Result<Option<RunState>> {
        let path = state_path(run_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a qemu-net state file; remove it if no nodes run",
                path.display()
            )
        })?;
        Ok(Some(state))
    }

    /// Removes the state file of `run_dir` (no error if it is already gone).
    pub fn remove(run_dir: &Path) -> Result<()> {
        let path = state_path(run_dir);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// How many nodes' QEMUs still run.
    pub fn alive_nodes(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.process.is_some_and(|p| p.is_alive()))
            .count()
    }

    /// Whether the run is up: a node's QEMU or the `--foreground` supervisor
    /// still runs. A state file for which this is false is stale (left by a
    /// crash, or every node was killed) and may be cleaned up.
    pub fn is_up(&self) -> bool {
        self.alive_nodes() > 0 || self.supervisor.is_some_and(|p| p.is_alive())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(isolation: Isolation) -> RunState {
        RunState {
            version: STATE_VERSION,
            name: "sion".into(),
            isolation,
            bridge: "br0".into(),
            host_addr: "169.254.0.1/16".into(),
            image: "/w/target/sion.img".into(),
            cmdline: "a=b c".into(),
            supervisor: None,
            nodes: vec![
                NodeState {
                    index: 0,
                    mac: "52:54:00:53:4e:00".into(),
                    tap: "tap0".into(),
                    memory_mb: 256,
                    cpus: 1,
                    nic: "virtio".into(),
                    firmware: "bios".into(),
                    log: "/r/node-0.log".into(),
                    qemu_log: "/r/node-0.qemu.log".into(),
                    process: Some(ProcId {
                        pid: 2_000_000_000,
                        start_time: 99,
                    }),
                },
                NodeState {
                    index: 1,
                    mac: "52:54:00:53:4e:01".into(),
                    tap: "tap1".into(),
                    memory_mb: 384,
                    cpus: 2,
                    nic: "e1000".into(),
                    firmware: "uefi".into(),
                    log: "/r/node-1.log".into(),
                    qemu_log: "/r/node-1.qemu.log".into(),
                    process: None,
                },
            ],
        }
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = std::env::temp_dir().join(format!("qemu-net-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(RunState::load(&dir).unwrap(), None);
        for isolation in [
            Isolation::Netns {
                netns: "sion-qemu-net".into(),
            },
            Isolation::Userns {
                holder: ProcId {
                    pid: 7,
                    start_time: 8,
                },
            },
        ] {
            let s = sample(isolation);
            s.save(&dir).unwrap();
            assert_eq!(RunState::load(&dir).unwrap(), Some(s));
        }
        let text = std::fs::read_to_string(state_path(&dir)).unwrap();
        assert!(text.contains("\"kind\": \"userns\""), "{text}");
        RunState::remove(&dir).unwrap();
        RunState::remove(&dir).unwrap();
        assert_eq!(RunState::load(&dir).unwrap(), None);
        std::fs::write(state_path(&dir), "{oops").unwrap();
        let err = RunState::load(&dir).unwrap_err();
        assert!(format!("{err:#}").contains("not a qemu-net state file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_run_with_dead_pids_is_stale() {
        let s = sample(Isolation::Netns { netns: "x".into() });
        // pid 2e9 is above any pid_max (4194304 at most), so it is not alive.
        assert_eq!(s.alive_nodes(), 0);
        assert!(!s.is_up());
        let mut s2 = s.clone();
        s2.supervisor = ProcId::of(std::process::id() as i32);
        assert!(s2.is_up());
    }
}
