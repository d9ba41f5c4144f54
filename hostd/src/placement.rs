//! Finding the group and choosing a node: what `hostd nodes`, `hostd place`
//! and `hostd submit` share.
//!
//! Each asks a running `hostd daemon` over its control socket; when none
//! answers there (or it serves another network namespace or interface), it
//! joins the group itself for a discovery window, answers, and leaves again.
//! The results are the typed [`crate::model`]; [`crate::report`] prints them.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use sion_companion_mgr::{Config, JobSpec, Mode, NodeId, Role, Weights};

use crate::control::{self, Client, DaemonInfo, Request, Response};
use crate::daemon;
use crate::envelope::IPC_PORT;
use crate::iface::{choose, list_interfaces};
use crate::model::{GroupAuth, NodeRow, NodesReport, PlacementReport, Via, parse_node_id};
use crate::session::{self, Identity, Session, random_seed};
use crate::transport::UdpTransport;
use crate::weights::parse_weights;

/// How `nodes` and `place` find the group without a daemon.
#[derive(Clone, Debug, Args)]
pub struct FindArgs {
    /// Network interface of the nodes' LAN (also: ignore a daemon on another
    /// interface) [default: the only usable one].
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// Without a daemon: how long to listen for the group, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1500)]
    pub discover_ms: u64,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// One job per node.
    Exclusive,
    /// Load balancing.
    Balance,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Exclusive => Mode::Exclusive,
            ModeArg::Balance => Mode::Balance,
        }
    }
}

/// `--cpus N` for clap: the processors a job asks for, a whole number
/// `1..=255` (a node's CPU count is a byte on the wire).
///
/// # Errors
/// Anything else, with the accepted range in the message.
pub fn parse_cpus(s: &str) -> Result<u8, String> {
    let why = match s.trim().parse::<u64>() {
        Ok(n @ 1..=255) => return Ok(n as u8),
        Ok(0) => "a job needs at least one CPU",
        Ok(_) => "more than any node can have (255)",
        Err(_) => "not a whole number",
    };
    Err(format!(
        "`{s}`: {why}; --cpus takes the number of CPUs the job needs free on its node, 1 to 255"
    ))
}

/// `--weights` for clap: [`parse_weights`], its error as text.
///
/// # Errors
/// The parser's message (unknown key, bad number, …).
pub fn parse_weights_arg(s: &str) -> Result<Weights, String> {
    parse_weights(s).map_err(|e| e.to_string())
}

/// Where a command gets the group from.
pub enum Source {
    /// A running daemon.
    Daemon(Box<Client>, DaemonInfo),
    /// Our own one-shot session, already through its discovery window.
    Direct(Box<Session>, Duration),
}

/// Finds the group: the daemon at `socket` if one answers there and serves
/// our network namespace (and `find.iface`, if given); else a one-shot session
/// that joins on the chosen interface and listens for `find.discover_ms`.
///
/// # Errors
/// No usable interface, or the socket failing.
pub fn open_source(socket: &Path, find: &FindArgs) -> Result<Source> {
    if let Ok(mut client) = Client::connect(socket, Duration::from_secs(10)) {
        match client.hello() {
            Ok(info) => {
                let other_ns = matches!(
                    (info.netns, control::current_netns()),
                    (Some(a), Some(b)) if a != b
                );
                let other_if = find.iface.as_deref().is_some_and(|i| i != info.interface);
                let ours = crate::keys::current().key_id().map(|k| k.to_string());
                let other_key = info.key_id != ours;
                if !other_ns && !other_if && !other_key {
                    return Ok(Source::Daemon(Box::new(client), info));
                }
                eprintln!(
                    "hostd: note: the daemon at {} serves {} ({}); listening directly instead",
                    socket.display(),
                    if other_ns {
                        "another network namespace".to_string()
                    } else if other_key {
                        format!(
                            "{} (this command has {})",
                            key_text(info.key_id.as_deref()),
                            key_text(ours.as_deref())
                        )
                    } else {
                        format!("interface {}", info.interface)
                    },
                    info.address
                );
            }
            Err(e) => eprintln!("hostd: note: {e:#}; listening directly instead"),
        }
    }
    let window = Duration::from_millis(find.discover_ms);
    let mut session = direct_session(find.iface.as_deref())?;
    session.pump_for(window)?;
    Ok(Source::Direct(Box::new(session), window))
}

/// A session on the chosen interface over the real UDP transport (joined, not
/// yet pumped).
///
/// # Errors
/// No usable interface, or the socket failing.
pub fn direct_session(iface: Option<&str>) -> Result<Session> {
    let all = list_interfaces()?;
    let iface = choose(&all, iface)?;
    let transport = UdpTransport::open(&iface, IPC_PORT)?;
    let bound = transport.bound_to_device();
    let ident = Identity::for_interface(&iface)?;
    let keys = crate::keys::current().keys.clone();
    let mut session = Session::with_keys(
        Arc::new(transport),
        ident,
        Config::default(),
        random_seed(),
        keys,
    );
    session.set_subnet_filter(!bound);
    Ok(session)
}

/// `cluster key ID` or `no cluster key`.
fn key_text(id: Option<&str>) -> String {
    id.map_or("no cluster key".into(), |k| format!("cluster key {k}"))
}

fn no_nodes_via_daemon(info: &DaemonInfo, group: Option<&GroupAuth>) -> anyhow::Error {
    let hint = group
        .and_then(crate::report::key_hint)
        .map_or(String::new(), |h| format!(" The daemon {h}."));
    anyhow::anyhow!(
        "no SiON node found: the hostd daemon (pid {}) on {} ({}) has heard none in {:.1} s of listening. \
         Are nodes booted on this LAN (with qemu-net: `qemu-net status`)? Is it the right interface?{hint}",
        info.pid,
        info.interface,
        info.address,
        info.uptime_ms as f64 / 1000.0
    )
}

fn no_nodes_direct(session: &Session, window: Duration) -> anyhow::Error {
    let id = session.identity();
    if let Some(hint) = session.key_hint() {
        return anyhow::anyhow!(
            "no SiON node found on {} ({}) in {:.1} s: {hint}",
            id.iface,
            id.ip,
            window.as_secs_f64()
        );
    }
    anyhow::anyhow!(
        "no SiON node found: waited {:.1} s on {} ({}/{}, UDP port {IPC_PORT}) and none answered. \
         Are nodes booted on this LAN (with qemu-net: `qemu-net status`, and run hostd inside the LAN: \
         `qemu-net exec -- hostd nodes`)? Is it the right interface (--iface)? Wait longer with --discover-ms.",
        window.as_secs_f64(),
        id.iface,
        id.ip,
        id.prefix
    )
}

/// `hostd nodes`: the group table, from the daemon or a one-shot session.
///
/// # Errors
/// No usable interface, no node found, socket or network errors.
pub fn group_table(socket: &Path, find: &FindArgs) -> Result<NodesReport> {
    match open_source(socket, find)? {
        Source::Daemon(mut client, info) => match client.request(&Request::Nodes)? {
            Response::Nodes(r) if r.node_count() == 0 => {
                Err(no_nodes_via_daemon(&info, Some(&r.group)))
            }
            Response::Nodes(r) => Ok(r),
            Response::Error(e) => bail!("the hostd daemon: {e}"),
            other => bail!("the hostd daemon answered nodes with {other:?}"),
        },
        Source::Direct(mut session, window) => {
            let mut report = daemon::nodes_report(&session, Via::Discovery);
            report.listened_ms = window.as_millis() as u64;
            let found = session.node_count();
            session.leave();
            if found == 0 {
                return Err(no_nodes_direct(&session, window));
            }
            Ok(report)
        }
    }
}

/// How a placement is asked for: [`place_job`]'s options.
#[derive(Clone, Debug, Default)]
pub struct PlaceOpts {
    /// Nodes not to choose (they could not be reached).
    pub exclude: Vec<Ipv4Addr>,
    /// The caller runs the job on the best node: the other candidates'
    /// reservations are released at once (`hostd submit`). `false`: every
    /// reservation is released (`hostd place`, which only looks).
    pub take: bool,
    /// When no node can take the job now but one may later (busy, held for
    /// another job, silent), wait for one instead of answering at once.
    pub wait: bool,
    /// Give up waiting after this long.
    pub wait_timeout: Option<Duration>,
    /// Print the queue position while waiting.
    pub verbose: bool,
    /// Polled while waiting: `true` stops the wait with an error (Ctrl-C).
    pub interrupted: Option<fn() -> bool>,
}

/// Why a waiting placement stopped without a node.
fn stop_waiting(opts: &PlaceOpts, since: Instant, last: Option<&PlacementReport>) -> Result<()> {
    let why = last.map_or(String::new(), |r| format!(" ({})", r.why_none()));
    if opts.interrupted.is_some_and(|f| f()) {
        bail!("interrupted while waiting for a node{why}");
    }
    if let Some(limit) = opts.wait_timeout
        && since.elapsed() >= limit
    {
        bail!(
            "no node could take this job within --wait-timeout {:.0} s{why}",
            limit.as_secs_f64()
        );
    }
    Ok(())
}

/// The line a job prints once when it starts waiting for a node.
fn say_waiting(report: &PlacementReport) {
    eprintln!(
        "hostd: no node can take this job now ({}); waiting for one (--no-wait fails at once instead)",
        report.why_none()
    );
}

/// `hostd place` and the placement of `hostd submit`: a placement through the
/// daemon or a one-shot session (then through [`session::place`]), ended
/// for its requester by [`session::settle`].
///
/// With [`PlaceOpts::wait`], a placement that finds no node but may later
/// waits: through a daemon, in its queue (served in arrival order, see
/// [`daemon`]); without one, by placing again every second (jobs submitted
/// from several shells then race for freed nodes, with no order between
/// them).
///
/// # Errors
/// No usable interface, no node found, socket or network errors, the wait
/// interrupted or timed out.
pub fn place_job(
    socket: &Path,
    find: &FindArgs,
    job: JobSpec,
    weights: Weights,
    opts: &PlaceOpts,
) -> Result<PlacementReport> {
    let since = Instant::now();
    match open_source(socket, find)? {
        Source::Daemon(mut client, info) => {
            client.send(&Request::Place {
                job,
                weights,
                exclude: opts.exclude.clone(),
                take: opts.take,
                wait: opts.wait,
            })?;
            let mut said = false;
            let mut last_ahead = None;
            loop {
                match client.read_response()? {
                    Response::Placement(r) if r.asked() == 0 => {
                        // The group table says what the cluster key dropped.
                        let group = match client.request(&Request::Nodes) {
                            Ok(Response::Nodes(n)) => Some(n.group),
                            _ => None,
                        };
                        return Err(no_nodes_via_daemon(&info, group.as_ref()));
                    }
                    Response::Placement(r) => return Ok(r),
                    Response::Waiting { ahead, report } => {
                        if !said && let Some(r) = &report {
                            say_waiting(r);
                            said = true;
                        }
                        if !said && ahead > 0 {
                            eprintln!(
                                "hostd: {ahead} job(s) ahead of this one are waiting for a node; waiting in line (--no-wait fails at once instead)"
                            );
                            said = true;
                        }
                        if opts.verbose && last_ahead != Some(ahead) {
                            eprintln!("hostd: waiting for a node, {ahead} job(s) ahead");
                            last_ahead = Some(ahead);
                        }
                        // Dropping the connection takes the job out of the
                        // daemon's queue.
                        stop_waiting(opts, since, report.as_ref())?;
                    }
                    Response::Error(e) => bail!("the hostd daemon: {e}"),
                    other => bail!("the hostd daemon answered place with {other:?}"),
                }
            }
        }
        Source::Direct(mut session, window) => {
            if session.node_count() == 0 {
                session.leave();
                return Err(no_nodes_direct(&session, window));
            }
            let mut said = false;
            let report = loop {
                let ranking = match session::place(&mut session, job, weights) {
                    Ok(r) => r,
                    Err(e) => {
                        session.leave();
                        return Err(e);
                    }
                };
                let r = session::settle(&mut session, ranking, &opts.exclude, opts.take);
                let report = session.report(&r);
                if !opts.wait || !report.ranked.is_empty() || !report.may_free_up() {
                    break report;
                }
                if !said {
                    say_waiting(&report);
                    said = true;
                }
                if let Err(e) = stop_waiting(opts, since, Some(&report))
                    .and_then(|()| session.pump_for(Duration::from_secs(1)))
                {
                    session.leave();
                    return Err(e);
                }
            };
            session.leave();
            Ok(report)
        }
    }
}

/// What `hostd submit --node` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeChoice {
    /// An IPv4 address (`169.254.3.4`; a `:port` after it is ignored): used
    /// as is, without asking the group.
    Address(Ipv4Addr),
    /// A node id in MAC form, `52:54:00:12:34:56` (either case).
    Id(NodeId),
    /// A member name, compared without regard to ASCII case.
    Name(String),
}

impl NodeChoice {
    /// Reads `--node`'s text: an address, else a node id, else a name.
    pub fn parse(text: &str) -> NodeChoice {
        let host = text.split(':').next().unwrap_or(text);
        if text.matches(':').count() <= 1
            && let Ok(ip) = host.parse::<Ipv4Addr>()
        {
            return NodeChoice::Address(ip);
        }
        match parse_node_id(text) {
            Some(id) => NodeChoice::Id(id),
            None => NodeChoice::Name(text.to_string()),
        }
    }

    /// True if `row` is the member this choice names.
    pub fn matches(&self, row: &NodeRow) -> bool {
        match self {
            NodeChoice::Address(ip) => row.address == *ip,
            NodeChoice::Id(id) => row.id == *id,
            NodeChoice::Name(n) => row.name.eq_ignore_ascii_case(n),
        }
    }
}

/// The [`Role::Node`] member `choice` names, from the group table of a
/// running daemon serving this network namespace (and `find.iface`), else of
/// a one-shot session that stops listening as soon as that node is known (at
/// most `find.discover_ms`).
///
/// # Errors
/// No such node in the group (the message lists the known ones), no usable
/// interface, socket or network errors.
pub fn find_node(socket: &Path, find: &FindArgs, choice: &NodeChoice) -> Result<NodeRow> {
    let rows = member_rows(socket, find, choice)?;
    if let Some(row) = rows
        .iter()
        .find(|r| r.role == Role::Node && choice.matches(r))
    {
        return Ok(row.clone());
    }
    let known: Vec<String> = rows
        .iter()
        .filter(|r| r.role == Role::Node)
        .map(|r| format!("{} {}", r.id, r.name))
        .collect();
    let asked = match choice {
        NodeChoice::Address(ip) => ip.to_string(),
        NodeChoice::Id(id) => id.to_string(),
        NodeChoice::Name(n) => n.clone(),
    };
    bail!("no node {asked} in the group (known: {})", known.join(", "))
}

/// The group table for [`find_node`].
fn member_rows(socket: &Path, find: &FindArgs, choice: &NodeChoice) -> Result<Vec<NodeRow>> {
    if let Ok(mut client) = Client::connect(socket, Duration::from_secs(2))
        && let Ok(info) = client.hello()
    {
        let same_ns = !matches!(
            (info.netns, control::current_netns()),
            (Some(a), Some(b)) if a != b
        );
        let same_if = find.iface.as_deref().is_none_or(|i| i == info.interface);
        if same_ns && same_if {
            match client.request(&Request::Nodes)? {
                Response::Nodes(r) => return Ok(r.nodes),
                Response::Error(e) => bail!("the hostd daemon: {e}"),
                other => bail!("the hostd daemon answered nodes with {other:?}"),
            }
        }
    }
    let mut session = direct_session(find.iface.as_deref())?;
    let deadline = Instant::now() + Duration::from_millis(find.discover_ms);
    session.pump_until(deadline, |m| {
        m.view().any(|x| {
            x.role == Role::Node
                && match choice {
                    NodeChoice::Address(ip) => Ipv4Addr::from(x.addr.ip) == *ip,
                    NodeChoice::Id(id) => x.id == *id,
                    NodeChoice::Name(n) => x.name.as_str().eq_ignore_ascii_case(n),
                }
        })
    })?;
    let rows = session.rows();
    session.leave();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_parse_with_clear_errors() {
        assert_eq!(parse_cpus("1"), Ok(1));
        assert_eq!(parse_cpus(" 16 "), Ok(16));
        assert_eq!(parse_cpus("255"), Ok(255));
        let e = parse_cpus("0").unwrap_err();
        assert!(
            e.contains("at least one CPU") && e.contains("1 to 255"),
            "{e}"
        );
        assert!(parse_cpus("256").unwrap_err().contains("255"));
        assert!(
            parse_cpus("two")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(parse_cpus("-1").unwrap_err().contains("not a whole number"));
        assert!(parse_cpus("").is_err());
    }

    #[test]
    fn node_choices_parse() {
        let ip = Ipv4Addr::new(169, 254, 3, 4);
        assert_eq!(NodeChoice::parse("169.254.3.4"), NodeChoice::Address(ip));
        assert_eq!(
            NodeChoice::parse("169.254.3.4:7421"),
            NodeChoice::Address(ip)
        );
        let id = NodeId::from_mac([0x52, 0x54, 0, 0x53, 0x4e, 2]);
        assert_eq!(NodeChoice::parse("52:54:00:53:4E:02"), NodeChoice::Id(id));
        assert_eq!(
            NodeChoice::parse("jolly-finch-4e02"),
            NodeChoice::Name("jolly-finch-4e02".into())
        );
    }
}
