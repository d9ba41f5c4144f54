//! `hostd jobs` and `hostd cancel`: the jobs of the whole group (Slurm's
//! `squeue`/`scancel`, HTCondor's `condor_q`/`condor_rm`).
//!
//! The group table comes from the daemon (or a one-shot discovery, as for
//! `hostd nodes`); every alive node is then asked on its job port
//! ([`HostMsg::List`]) for its running, uploading and waiting jobs and the
//! last ones that ended. A job is named `NODE/NUMBER` (the node's name or id,
//! and the job's number there). `cancel` sends [`HostMsg::Cancel`] to that
//! node: a running job is killed (its submitter sees status 137), a waiting
//! one dropped. `drain` sends [`HostMsg::Leave`]: the node leaves the group
//! gracefully, moving its job from a checkpoint.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sion_abi::net::JOB_PORT;
use sion_app_mgr::job::{self, Decoder, HostMsg, JobInfo, JobState, NodeMsg, PROTOCOL_VERSION};
use sion_companion_mgr::{Role, Status};

use crate::model::NodeRow;
use crate::placement::{self, FindArgs};

/// How long a node may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// One job of the group, as `hostd jobs --json` prints it. A stable shape:
/// `{"id":"lively-finch-4e00/3","node":{"id":"52:54:00:53:4e:00","name":"lively-finch-4e00","address":"169.254.86.160"},`
/// `"job":3,"program":"./prog arg","from":"user@pc","state":"running","status":null,"elapsed_ms":1520}`;
/// `state` is `running`, `uploading`, `waiting`, `exited` (with the wait
/// `status`) or `cancelled`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRow {
    /// `NODE/NUMBER`, what `hostd cancel` takes.
    pub id: String,
    /// The node.
    pub node: JobNode,
    /// The job's number on the node.
    pub job: u64,
    /// Its command line (shortened to about 80 characters).
    pub program: String,
    /// Who submitted it (`user@host`).
    pub from: String,
    /// `running`, `uploading`, `waiting`, `exited` or `cancelled`.
    pub state: String,
    /// The wait status of an exited job.
    pub status: Option<i32>,
    /// Since it arrived or started, or how long it ran (ended), in ms.
    pub elapsed_ms: u64,
}

/// The node of a [`JobRow`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobNode {
    /// Its id (MAC form).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: Ipv4Addr,
}

/// `hostd jobs --json`: every job, and the nodes that did not answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobsReport {
    /// The jobs, node by node, each node's running job first.
    pub jobs: Vec<JobRow>,
    /// Nodes that could not be asked (name and why).
    pub unreachable: Vec<(String, String)>,
}

fn state_word(s: JobState) -> (&'static str, Option<i32>) {
    match s {
        JobState::Uploading => ("uploading", None),
        JobState::Waiting => ("waiting", None),
        JobState::Running => ("running", None),
        JobState::Exited(status) => ("exited", Some(status)),
        JobState::Cancelled => ("cancelled", None),
    }
}

/// Sends `msg` as the first message to the job port of `ip` and returns the
/// node's answer.
fn ask(ip: Ipv4Addr, msg: &HostMsg) -> Result<NodeMsg> {
    let addr = SocketAddrV4::new(ip, JOB_PORT);
    let mut stream = TcpStream::connect_timeout(&addr.into(), ANSWER_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let (mut writer, mut reader) = crate::jobconn::open(
        &stream,
        crate::keys::current().keys.as_ref(),
        &ip.to_string(),
    )?;
    writer.send_frame(&job::encode(msg)?)?;
    let mut decoder = Decoder::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(m) = decoder.next_msg::<NodeMsg>()? {
            return Ok(m);
        }
        let n = stream
            .read(&mut buf)
            .context("waiting for the node's answer")?;
        if n == 0 {
            bail!("the node closed the connection without answering");
        }
        reader
            .take(&buf[..n], &mut decoder)
            .map_err(|e| anyhow::anyhow!("the answer of node {ip} failed authentication: {e}"))?;
    }
}

/// The jobs of every alive node, asked in parallel.
///
/// # Errors
/// No group found (see `hostd nodes`).
pub fn list(socket: &Path, find: &FindArgs) -> Result<JobsReport> {
    let table = placement::group_table(socket, find)?;
    let nodes: Vec<NodeRow> = table
        .nodes
        .into_iter()
        .filter(|n| n.role == Role::Node && n.status == Status::Alive)
        .collect();
    let answers: Vec<(NodeRow, Result<NodeMsg>)> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .into_iter()
            .map(|n| {
                s.spawn(move || {
                    let answer = ask(
                        n.address,
                        &HostMsg::List {
                            version: PROTOCOL_VERSION,
                        },
                    );
                    (n, answer)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut report = JobsReport {
        jobs: Vec::new(),
        unreachable: Vec::new(),
    };
    for (n, answer) in answers {
        match answer {
            Ok(NodeMsg::Jobs(jobs)) => report.jobs.extend(jobs.into_iter().map(|j| row(&n, j))),
            Ok(other) => report
                .unreachable
                .push((n.name.clone(), format!("unexpected answer {other:?}"))),
            Err(e) => report.unreachable.push((n.name.clone(), format!("{e:#}"))),
        }
    }
    report
        .jobs
        .sort_by(|a, b| (&a.node.name, b.job).cmp(&(&b.node.name, a.job)));
    Ok(report)
}

fn row(n: &NodeRow, j: JobInfo) -> JobRow {
    let (state, status) = state_word(j.state);
    JobRow {
        id: format!("{}/{}", n.name, j.job),
        node: JobNode {
            id: n.id.to_string(),
            name: n.name.clone(),
            address: n.address,
        },
        job: j.job,
        program: j.program,
        from: j.from,
        state: state.to_string(),
        status,
        elapsed_ms: j.elapsed_ms,
    }
}

/// `hostd cancel NODE/NUMBER`: true if the node had that job (now ended).
///
/// # Errors
/// A malformed id, an unknown node, the node not answering.
pub fn cancel(socket: &Path, find: &FindArgs, id: &str) -> Result<bool> {
    let Some((node, number)) = id.rsplit_once('/') else {
        bail!("job id {id}: expected NODE/NUMBER, as `hostd jobs` shows it");
    };
    let number: u64 = number
        .parse()
        .with_context(|| format!("job id {id}: `{number}` is not a job number"))?;
    let row = find_node_row(socket, find, node)?;
    match ask(
        row.address,
        &HostMsg::Cancel {
            version: PROTOCOL_VERSION,
            job: number,
            by: asker(),
        },
    )? {
        NodeMsg::Cancelled { found, .. } => Ok(found),
        other => bail!("node {} answered {other:?}", row.name),
    }
}

/// `hostd drain NODE`: asks the node to leave the group gracefully
/// ([`HostMsg::Leave`]). Returns its name and the job it runs, if any
/// (which moves from a checkpoint or runs to its end there).
///
/// # Errors
/// No such node, or it cannot be reached or answers something else.
pub fn drain(socket: &Path, find: &FindArgs, node: &str) -> Result<(String, Option<u64>)> {
    let row = find_node_row(socket, find, node)?;
    match ask(
        row.address,
        &HostMsg::Leave {
            version: PROTOCOL_VERSION,
            by: asker(),
        },
    )? {
        NodeMsg::Leaving { running } => Ok((row.name, running)),
        other => bail!("node {} answered {other:?}", row.name),
    }
}

/// The group's node named `node` (name, id or address).
fn find_node_row(socket: &Path, find: &FindArgs, node: &str) -> Result<NodeRow> {
    let table = placement::group_table(socket, find)?;
    table
        .nodes
        .into_iter()
        .find(|r| {
            r.role == Role::Node
                && (r.name.eq_ignore_ascii_case(node)
                    || r.id.to_string().eq_ignore_ascii_case(node)
                    || r.address.to_string() == node)
        })
        .with_context(|| format!("no node {node} in the group (see `hostd nodes`)"))
}

/// Who asks, for the node's log: `user@host`.
fn asker() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_jobs_by_node_and_number_and_keep_the_json_shape() {
        let n = NodeRow {
            id: crate::model::parse_node_id("52:54:00:53:4e:00").unwrap(),
            name: "lively-finch-4e00".into(),
            role: Role::Node,
            address: Ipv4Addr::new(169, 254, 86, 160),
            status: Status::Alive,
            cpu_load_permille: 0,
            free_mem_mib: 100,
            cpu_speed: 1,
            running_jobs: 1,
            cpus: 1,
            free_cpus: 0,
            last_heard_s: 0.1,
            this_host: false,
        };
        let r = row(
            &n,
            JobInfo {
                job: 3,
                program: "./prog".into(),
                from: "user@pc".into(),
                state: JobState::Exited(139),
                elapsed_ms: 1520,
            },
        );
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"id":"lively-finch-4e00/3","node":{"id":"52:54:00:53:4e:00","name":"lively-finch-4e00","address":"169.254.86.160"},"job":3,"program":"./prog","from":"user@pc","state":"exited","status":139,"elapsed_ms":1520}"#
        );
        assert_eq!(state_word(JobState::Running), ("running", None));
    }
}
