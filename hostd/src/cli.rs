//! The `hostd` command line: `daemon`, `nodes`, `place` and `submit`.
//!
//! `nodes` and `place` ask a running `hostd daemon` over its control socket;
//! when none answers there (or it serves another network namespace or
//! interface), they join the group themselves for a discovery window, answer,
//! and leave again.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use sion_companion_mgr::{Config, JobSpec, Mode, Weights};

use crate::control::{self, Client, DaemonInfo, Request, Response, SOCKET_ENV};
use crate::daemon::{self, Daemon, Input};
use crate::envelope::IPC_PORT;
use crate::iface::{choose, list_interfaces};
use crate::report::{self, NodesReport, PlacementReport};
use crate::session::{self, Identity, Session, random_seed};
use crate::transport::UdpTransport;
use crate::weights::parse_weights;

/// `hostd`: the SiON host daemon and CLI.
#[derive(Debug, Parser)]
#[command(
    name = "hostd",
    version,
    about = "Make this Linux PC a member of the SiON group of nodes on the LAN, list the nodes, and choose where a job would run",
    long_about = None,
    after_help = "Run inside a qemu-net LAN with `qemu-net exec -- hostd nodes`."
)]
pub struct Cli {
    /// The daemon's control socket [default: $XDG_RUNTIME_DIR/sion-hostd.sock,
    /// else /tmp/sion-hostd-UID.sock].
    #[arg(long, global = true, env = SOCKET_ENV, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join the group and stay: keep the view, log joins, suspects, deaths and
    /// leaves to stderr, serve `nodes` and `place` on the control socket; leave
    /// gracefully on SIGINT/SIGTERM.
    Daemon {
        /// Network interface of the nodes' LAN [default: the only interface
        /// that is up, not loopback, and has an IPv4 address].
        #[arg(long, value_name = "IF")]
        iface: Option<String>,
    },
    /// Print the group table: every node (and host) with its address, status,
    /// CPU load, free memory, CPU speed, running jobs and when it was last heard.
    Nodes {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where to look.
        #[command(flatten)]
        find: FindArgs,
    },
    /// Ask the nodes whether they could run a job and rank them by the weighted
    /// score, best first, with each score's parts and every denial's reason.
    Place {
        /// Score weights, e.g. `cpu=4,mem=2,speed=3,net=1` (whole numbers; keys
        /// left out weigh 0) [default: cpu=4,mem=2,speed=3,net=1].
        #[arg(long, value_name = "cpu=W,mem=W,speed=W,net=W", value_parser = parse_weights_arg)]
        weights: Option<Weights>,
        /// `exclusive`: one job per node, busy nodes deny; `balance`: busy nodes
        /// may take it.
        #[arg(long, value_enum, default_value_t = ModeArg::Exclusive)]
        mode: ModeArg,
        /// Memory the job needs besides its program, in MiB.
        #[arg(long, value_name = "MB", default_value_t = 0)]
        memory: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where to look.
        #[command(flatten)]
        find: FindArgs,
    },
    /// Run a static Linux program on the best node (or `--node`) as if it ran
    /// here: arguments, environment, stdio and file I/O in the job directory
    /// pass through; the exit status is the job's.
    #[command(
        after_help = "Exit status: the job's (128 + signal when it faulted: 139 for SIGSEGV); 126 if the node refused the program (dynamically linked, not x86 ELF, ...); 124 after --timeout; 130 after Ctrl-C; 255 if the node vanished mid-job; 1 for hostd's own errors (no node, program unreadable).\nThe job's file system calls happen inside the job directory (--dir, default the current one); paths leaving it, also through symbolic links, fail with EACCES."
    )]
    Submit(Box<crate::submit::SubmitArgs>),
}

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

/// `--weights` for clap.
pub(crate) fn parse_weights_arg(s: &str) -> Result<Weights, String> {
    parse_weights(s).map_err(|e| e.to_string())
}

/// Parses the command line and runs it; errors are printed as
/// `hostd: error: ...` and give exit status 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hostd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line.
///
/// # Errors
/// Everything the commands report: no usable interface, no nodes found, a
/// daemon already running, socket and network errors.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let socket = cli.socket.unwrap_or_else(control::default_socket_path);
    match cli.command {
        Command::Daemon { iface } => {
            run_daemon(&socket, iface.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Nodes { json, find } => {
            let report = nodes(&socket, &find)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report::format_nodes(&report.nodes));
                println!("{}", report::nodes_summary(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit(args) => crate::submit::run(&socket, *args),
        Command::Place {
            weights,
            mode,
            memory,
            json,
            find,
        } => {
            let job = JobSpec {
                program_size: 0,
                memory: memory
                    .checked_mul(1 << 20)
                    .context("--memory is too large")?,
                mode: mode.into(),
            };
            let report = place_command(&socket, &find, job, weights.unwrap_or_default())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report::format_placement(&report));
            }
            if report.ranked.is_empty() {
                eprintln!(
                    "hostd: no node can take this job now ({} asked, {} denied, {} silent)",
                    report.asked(),
                    report.denied.len(),
                    report.unanswered.len()
                );
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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
pub fn open_source(socket: &std::path::Path, find: &FindArgs) -> Result<Source> {
    if let Ok(mut client) = Client::connect(socket, Duration::from_secs(10)) {
        match client.hello() {
            Ok(info) => {
                let other_ns = matches!(
                    (info.netns, control::current_netns()),
                    (Some(a), Some(b)) if a != b
                );
                let other_if = find.iface.as_deref().is_some_and(|i| i != info.interface);
                if !other_ns && !other_if {
                    return Ok(Source::Daemon(Box::new(client), info));
                }
                eprintln!(
                    "hostd: note: the daemon at {} serves {} ({}); listening directly instead",
                    socket.display(),
                    if other_ns {
                        "another network namespace".to_string()
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
    let mut session = Session::new(Arc::new(transport), ident, Config::default(), random_seed());
    session.set_subnet_filter(!bound);
    Ok(session)
}

fn no_nodes_via_daemon(info: &DaemonInfo) -> anyhow::Error {
    anyhow::anyhow!(
        "no SiON node found: the hostd daemon (pid {}) on {} ({}) has heard none in {:.1} s of listening. \
         Are nodes booted on this LAN (with qemu-net: `qemu-net status`)? Is it the right interface?",
        info.pid,
        info.interface,
        info.address,
        info.uptime_ms as f64 / 1000.0
    )
}

fn no_nodes_direct(session: &Session, window: Duration) -> anyhow::Error {
    let id = session.identity();
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

/// `hostd nodes`: the group table.
///
/// # Errors
/// No usable interface, no node found, socket or network errors.
pub fn nodes(socket: &std::path::Path, find: &FindArgs) -> Result<NodesReport> {
    match open_source(socket, find)? {
        Source::Daemon(mut client, info) => match client.request(&Request::Nodes)? {
            Response::Nodes(r) if r.node_count() == 0 => Err(no_nodes_via_daemon(&info)),
            Response::Nodes(r) => Ok(r),
            Response::Error(e) => bail!("the hostd daemon: {e}"),
            other => bail!("the hostd daemon answered nodes with {other:?}"),
        },
        Source::Direct(mut session, window) => {
            let mut report = daemon::nodes_report(&session, "discovery");
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

/// `hostd place`: a placement through the daemon or a one-shot session (then
/// through [`session::place`], the path `hostd submit` will share).
///
/// # Errors
/// No usable interface, no node found, socket or network errors.
pub fn place_command(
    socket: &std::path::Path,
    find: &FindArgs,
    job: JobSpec,
    weights: Weights,
) -> Result<PlacementReport> {
    match open_source(socket, find)? {
        Source::Daemon(mut client, info) => {
            match client.request(&Request::Place { job, weights })? {
                Response::Placement(r) if r.asked() == 0 => Err(no_nodes_via_daemon(&info)),
                Response::Placement(r) => Ok(r),
                Response::Error(e) => bail!("the hostd daemon: {e}"),
                other => bail!("the hostd daemon answered place with {other:?}"),
            }
        }
        Source::Direct(mut session, window) => {
            if session.node_count() == 0 {
                session.leave();
                return Err(no_nodes_direct(&session, window));
            }
            let ranking = session::place(&mut session, job, weights);
            let report = ranking.map(|r| session.report(&r));
            session.leave();
            report
        }
    }
}

/// `hostd daemon`.
///
/// # Errors
/// A daemon already running on the socket, no usable interface, network or
/// socket errors.
pub fn run_daemon(socket: &std::path::Path, iface: Option<&str>) -> Result<()> {
    let listener = daemon::bind_control(socket)?;
    let session = match direct_session(iface) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(socket);
            return Err(e);
        }
    };
    eprintln!("hostd: control socket {}", socket.display());
    let d = Daemon::start(session, listener, socket, Box::new(std::io::stderr()))?;
    let tx = d.sender();
    ctrlc::set_handler(move || {
        let _ = tx.send(Input::Shutdown);
    })
    .context("installing the SIGINT/SIGTERM handler")?;
    d.wait()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_place_arguments() {
        let cli = Cli::try_parse_from([
            "hostd",
            "place",
            "--weights",
            "cpu=1,net=2",
            "--mode",
            "balance",
            "--memory",
            "64",
            "--iface",
            "br0",
            "--discover-ms",
            "300",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Place {
                weights,
                mode,
                memory,
                json,
                find,
            } => {
                assert_eq!(
                    weights,
                    Some(Weights {
                        cpu_load: 1,
                        free_mem: 0,
                        cpu_speed: 0,
                        network: 2
                    })
                );
                assert_eq!(mode, ModeArg::Balance);
                assert_eq!((memory, json), (64, true));
                assert_eq!(find.iface.as_deref(), Some("br0"));
                assert_eq!(find.discover_ms, 300);
            }
            other => panic!("{other:?}"),
        }
        let err = Cli::try_parse_from(["hostd", "place", "--weights", "cpu=1,gpu=2"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `gpu`"), "{err}");
        assert!(err.contains("cpu=W,mem=W,speed=W,net=W"), "{err}");
        let err = Cli::try_parse_from(["hostd", "place", "--mode", "fast"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("exclusive"), "{err}");
    }

    #[test]
    fn parses_submit_arguments() {
        let cli = Cli::try_parse_from([
            "hostd",
            "submit",
            "--node",
            "10.0.0.2",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "--env-clear",
            "--timeout",
            "2.5",
            "--dir",
            "/tmp",
            "--verbose",
            "--memory",
            "64",
            "./prog",
            "-n",
            "--verbose",
            "x y",
        ])
        .unwrap();
        let Command::Submit(a) = cli.command else {
            panic!("not submit");
        };
        assert_eq!(a.node.as_deref(), Some("10.0.0.2"));
        assert_eq!(a.env, ["A=1", "B=2"]);
        assert!(a.env_clear && a.verbose);
        assert_eq!(a.timeout, Some(2.5));
        assert_eq!(a.dir, Some(PathBuf::from("/tmp")));
        assert_eq!(a.memory, 64);
        assert_eq!(a.program, PathBuf::from("./prog"));
        // Everything after the program is the program's, flags included.
        assert_eq!(a.args, ["-n", "--verbose", "x y"]);
        assert!(Cli::try_parse_from(["hostd", "submit"]).is_err());
    }

    #[test]
    fn socket_option_is_global() {
        let cli = Cli::try_parse_from(["hostd", "nodes", "--socket", "/x/y.sock"]).unwrap();
        assert_eq!(cli.socket, Some(PathBuf::from("/x/y.sock")));
        assert!(matches!(cli.command, Command::Nodes { json: false, .. }));
    }
}
