//! The daemon's control socket: a Unix stream socket speaking JSON lines.
//!
//! Every request is one JSON object on one line; the daemon answers each with
//! one JSON object on one line, in order; a connection may carry any number of
//! requests. Requests (`op` names the operation):
//!
//! ```text
//! {"op":"hello"}
//! {"op":"nodes"}
//! {"op":"place","job":{"program_size":0,"memory":67108864,"mode":"Exclusive","cpus":1},
//!  "weights":{"cpu_load":4,"free_mem":2,"cpu_speed":3,"network":1},
//!  "exclude":["10.0.0.3"],"take":true,"wait":true}
//! ```
//!
//! (`job` and `weights` are the Companion Manager library's `JobSpec` and
//! `Weights` in their serde form; memory in bytes, mode `Exclusive` or
//! `Balance`, `cpus` the CPUs the job asks for; `cpus` (then 1), `exclude`,
//! `take` and `wait` may be left out.) Responses are
//! externally tagged: `{"hello":{..DaemonInfo..}}`, `{"nodes":{..NodesReport..}}`,
//! `{"placement":{..PlacementReport..}}` or `{"error":"message"}` (also for a
//! line that is not a valid request). A waiting placement is answered with
//! `{"waiting":{"ahead":N,"report":..}}` lines, about one a second, before its
//! `placement`.
//!
//! The socket lives at `--socket PATH`, else `$SION_HOSTD_SOCKET`, else
//! `$XDG_RUNTIME_DIR/sion-hostd.sock`, else `/tmp/sion-hostd-UID.sock`; it is
//! created with mode 0600, so only its owner can use it.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sion_companion_mgr::{JobSpec, NodeId, Weights};

use crate::model::{NodesReport, PlacementReport};

/// A request to the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Who are you? Answered with [`Response::Hello`].
    Hello,
    /// The group table. Answered with [`Response::Nodes`].
    Nodes,
    /// Run a placement. Answered with [`Response::Placement`] when it
    /// finishes (after [`Response::Waiting`] lines when it waits).
    Place {
        /// The job.
        job: JobSpec,
        /// The score weights.
        weights: Weights,
        /// Nodes not to choose (they could not be reached): left out of the
        /// answer's ranking.
        #[serde(default)]
        exclude: Vec<Ipv4Addr>,
        /// The requester takes the best node of the answer: every other
        /// candidate's reservation is released at once. `false` (`hostd
        /// place`, which only looks): every reservation is released.
        #[serde(default)]
        take: bool,
        /// When no node can take the job now but one may later (candidates
        /// busy, held for another job or silent), wait in the daemon's
        /// queue: waiting placements are retried about once a second, one
        /// at a time in arrival order, so they are served in submission
        /// order. `false`: answer at once, whatever the outcome.
        #[serde(default)]
        wait: bool,
    },
}

/// The daemon's identity, answered to [`Request::Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// `hostd` version.
    pub version: String,
    /// Daemon process id.
    pub pid: u32,
    /// Interface it joined on.
    pub interface: String,
    /// Its address there (JSON: dotted).
    pub address: Ipv4Addr,
    /// Its node id (JSON: MAC form).
    #[serde(with = "crate::report::json::node_id")]
    pub id: NodeId,
    /// Its member name.
    pub name: String,
    /// Inode of its network namespace (`/proc/self/ns/net`), if known: a client
    /// in another namespace (e.g. inside a `qemu-net` LAN) sees another LAN.
    pub netns: Option<u64>,
    /// Milliseconds since it joined.
    pub uptime_ms: u64,
    /// The cluster key it signs with (8 hex digits), `null` for an open
    /// group: a client with another key does not use this daemon.
    #[serde(default)]
    pub key_id: Option<String>,
}

/// A response from the daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Hello`].
    Hello(DaemonInfo),
    /// Answer to [`Request::Nodes`].
    Nodes(NodesReport),
    /// Answer to [`Request::Place`].
    Placement(PlacementReport),
    /// A [`Request::Place`] with `wait` is waiting for a node; sent about
    /// once a second until the [`Response::Placement`].
    Waiting {
        /// Waiting placements ahead of this one in the daemon's queue.
        ahead: usize,
        /// Its last placement's outcome, once it has tried (the head of the
        /// queue tries; those behind it wait their turn).
        report: Option<PlacementReport>,
    },
    /// The request failed, or was not understood.
    Error(String),
}

/// Environment variable naming the socket.
pub const SOCKET_ENV: &str = "SION_HOSTD_SOCKET";

/// The default socket path: `$XDG_RUNTIME_DIR/sion-hostd.sock` when that
/// directory is set, else `/tmp/sion-hostd-UID.sock`.
pub fn default_socket_path() -> PathBuf {
    socket_path_from(
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        nix::unistd::getuid().as_raw(),
    )
}

/// [`default_socket_path`] from its inputs.
pub fn socket_path_from(runtime_dir: Option<PathBuf>, uid: u32) -> PathBuf {
    match runtime_dir {
        Some(d) if d.is_absolute() => d.join("sion-hostd.sock"),
        _ => PathBuf::from(format!("/tmp/sion-hostd-{uid}.sock")),
    }
}

/// The inode of this process's network namespace, if `/proc` tells.
pub fn current_netns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").ok().map(|m| m.ino())
}

/// A connection to a running daemon.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    path: PathBuf,
}

impl Client {
    /// Connects to the daemon at `path`; answers must come within `timeout`.
    ///
    /// # Errors
    /// No daemon listening there (the socket file is missing or stale).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client> {
        let stream = UnixStream::connect(path)
            .with_context(|| format!("connecting to the hostd daemon at {}", path.display()))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            path: path.to_owned(),
        })
    }

    /// Sends `req` and waits for its response.
    ///
    /// # Errors
    /// The daemon closing the connection, not answering in time, or answering
    /// with something that is not a [`Response`].
    pub fn request(&mut self, req: &Request) -> Result<Response> {
        self.send(req)?;
        self.read_response()
    }

    /// Sends `req` without waiting for its response.
    ///
    /// # Errors
    /// The daemon closing the connection or not reading in time.
    pub fn send(&mut self, req: &Request) -> Result<()> {
        let mut line = serde_json::to_string(req)?;
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .with_context(|| format!("writing to {}", self.path.display()))
    }

    /// Reads the next response line.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn read_response(&mut self) -> Result<Response> {
        let mut answer = String::new();
        let n = self
            .reader
            .read_line(&mut answer)
            .with_context(|| format!("reading from {}", self.path.display()))?;
        if n == 0 {
            bail!(
                "the hostd daemon at {} closed the connection",
                self.path.display()
            );
        }
        serde_json::from_str(&answer).with_context(|| {
            format!(
                "the daemon at {} answered something unexpected: {}",
                self.path.display(),
                answer.trim()
            )
        })
    }

    /// [`Request::Hello`].
    ///
    /// # Errors
    /// As [`Client::request`], or an answer that is not a hello.
    pub fn hello(&mut self) -> Result<DaemonInfo> {
        match self.request(&Request::Hello)? {
            Response::Hello(info) => Ok(info),
            Response::Error(e) => bail!("the hostd daemon refused hello: {e}"),
            other => bail!("the hostd daemon answered hello with {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sion_companion_mgr::Mode;

    #[test]
    fn request_lines_are_stable_json() {
        assert_eq!(
            serde_json::to_string(&Request::Hello).unwrap(),
            r#"{"op":"hello"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Nodes).unwrap(),
            r#"{"op":"nodes"}"#
        );
        let place = Request::Place {
            job: JobSpec {
                program_size: 0,
                memory: 64 << 20,
                mode: Mode::Balance,
                cpus: 2,
            },
            weights: Weights::default(),
            exclude: vec![Ipv4Addr::new(10, 0, 0, 3)],
            take: true,
            wait: false,
        };
        let j = serde_json::to_string(&place).unwrap();
        assert_eq!(
            j,
            r#"{"op":"place","job":{"program_size":0,"memory":67108864,"mode":"Balance","cpus":2},"weights":{"cpu_load":4,"free_mem":2,"cpu_speed":3,"network":1},"exclude":["10.0.0.3"],"take":true,"wait":false}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&j).unwrap(), place);
        // Older clients leave the new fields out: one CPU, nothing excluded,
        // taken or waited for.
        let old = r#"{"op":"place","job":{"program_size":0,"memory":67108864,"mode":"Balance"},"weights":{"cpu_load":4,"free_mem":2,"cpu_speed":3,"network":1}}"#;
        match serde_json::from_str::<Request>(old).unwrap() {
            Request::Place {
                job,
                exclude,
                take,
                wait,
                ..
            } => {
                assert_eq!(job.cpus, 1);
                assert!(exclude.is_empty() && !take && !wait);
            }
            other => panic!("{other:?}"),
        }
        assert!(serde_json::from_str::<Request>(r#"{"op":"reboot"}"#).is_err());
        let e = serde_json::to_string(&Response::Error("no".into())).unwrap();
        assert_eq!(e, r#"{"error":"no"}"#);
    }

    #[test]
    fn socket_paths() {
        assert_eq!(
            socket_path_from(Some("/run/user/1000".into()), 1000),
            PathBuf::from("/run/user/1000/sion-hostd.sock")
        );
        assert_eq!(
            socket_path_from(None, 0),
            PathBuf::from("/tmp/sion-hostd-0.sock")
        );
        // A relative runtime dir is ignored (XDG base directory spec).
        assert_eq!(
            socket_path_from(Some("run".into()), 7),
            PathBuf::from("/tmp/sion-hostd-7.sock")
        );
    }
}

#[cfg(test)]
mod unit_file_tests {
    /// The systemd unit in `hostd/contrib` starts the daemon and points it at
    /// its socket through the variable hostd reads.
    #[test]
    fn the_systemd_unit_runs_the_daemon_with_the_socket_variable_hostd_reads() {
        let unit = include_str!("../contrib/sion-hostd.service");
        let exec = unit
            .lines()
            .find(|l| l.starts_with("ExecStart="))
            .expect("an ExecStart line");
        assert!(exec.contains("hostd daemon"), "{exec}");
        assert!(
            unit.contains(&format!("Environment={}=", super::SOCKET_ENV)),
            "the unit sets {}",
            super::SOCKET_ENV
        );
        assert!(unit.contains("[Install]") && unit.contains("WantedBy=multi-user.target"));
    }
}
