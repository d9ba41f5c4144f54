//! The `hostd` command line: `daemon`, `nodes`, `place` and `submit`, and
//! `completions`/`manpage` generated from the same definitions (clap).
//!
//! `nodes` and `place` find the group through [`crate::placement`] (a running
//! `hostd daemon`, else a one-shot discovery) and print it through
//! [`crate::report`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sion_companion_mgr::{JobSpec, Weights};

use crate::control::{self, SOCKET_ENV};
use crate::daemon::{self, Daemon, Input};
use crate::keys::{self, KEY_ENV};
use crate::placement::{
    FindArgs, ModeArg, PlaceOpts, direct_session, group_table, parse_weights_arg, place_job,
};
use crate::report;

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
    /// The cluster key file (`hostd keygen` makes one; `none`: an open group)
    /// [default: ~/.config/sion/cluster.key if it exists, else an open group].
    #[arg(long, global = true, env = KEY_ENV, value_name = "FILE")]
    pub key: Option<PathBuf>,
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
    /// Make a new cluster key: 32 random bytes as 64 hex digits, written with
    /// mode 0600. Build it into the node image (`sion-image --key FILE` or the
    /// boot argument `key=HEX`); hostd reads it from
    /// ~/.config/sion/cluster.key or --key. Nodes and hosts with the key form
    /// an authenticated group; anything without it is ignored.
    Keygen {
        /// Where to write it (`-`: standard output) [default:
        /// ~/.config/sion/cluster.key].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace an existing file (nodes built with the old key will no
        /// longer hear this host).
        #[arg(long)]
        force: bool,
    },
    /// Print the group table: every node (and host) with its address, status,
    /// CPU load, CPUs (free/total), free memory, CPU speed, running jobs and
    /// when it was last heard.
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
        /// CPUs the job needs (as `hostd submit --cpus`).
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = crate::placement::parse_cpus)]
        cpus: u8,
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
        after_help = "Exit status: the job's (128 + signal when it faulted: 139 for SIGSEGV); 126 if the node refused the program (dynamically linked, not x86 ELF, ...); 124 after --timeout; Ctrl-C passes SIGINT to the job (its status then, 130 if it dies of it), a second Ctrl-C kills it (130); SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are passed to the job; 255 if the node vanished mid-job; 1 for hostd's own errors (no node, program unreadable).\nThe job's file system calls happen inside the job directory (--dir, default the current one); paths leaving it, also through symbolic links, fail with EACCES."
    )]
    Submit(Box<crate::submit::SubmitArgs>),
    /// List the jobs of the group: running, uploading, waiting, and the last
    /// ones that ended on each node (`NODE/NUMBER` ids for `hostd cancel`).
    Jobs {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where to look.
        #[command(flatten)]
        find: FindArgs,
    },
    /// End a job: running, it is killed (its submitter sees status 137);
    /// waiting or uploading, it is dropped.
    Cancel {
        /// The job, `NODE/NUMBER` as `hostd jobs` shows it (NODE: name, id or
        /// address).
        id: String,
        /// Where to look.
        #[command(flatten)]
        find: FindArgs,
    },
    /// Take a node out of the group gracefully (to switch it off, or to
    /// use the PC): it takes no new job and says goodbye to the group; the
    /// job it runs is checkpointed and continues on another node
    /// (`hostd submit` moves it), or, if it cannot be checkpointed (several
    /// processes or threads, i386), runs to its end there first. The node
    /// rejoins when it boots again.
    Drain {
        /// The node: name, id or address, as `hostd nodes` shows it.
        node: String,
        /// Where to look.
        #[command(flatten)]
        find: FindArgs,
    },
    /// Join this LAN's group to the group of another LAN through a peer
    /// gateway there (`hostd gateway --peer ADDR` on both sides, each with
    /// the other's address): placement here may then choose nodes there, and
    /// `hostd nodes` shows both. Each member of the other LAN stands in here
    /// as an address of --stand-ins on this LAN's interface (needs root:
    /// the addresses are added to the interface and removed at the end).
    /// Stops on SIGINT/SIGTERM and prints what it relayed and dropped.
    #[command(
        after_help = "Example (two LANs, gateways at 10.1.0.1 and 10.1.0.2 on a link between them):\n  lan A: hostd gateway --iface br0 --listen 10.1.0.1 --peer 10.1.0.2\n  lan B: hostd gateway --iface br0 --listen 10.1.0.2 --peer 10.1.0.1\nNode ids (MAC addresses) must be unique across both LANs; join two LANs by one pair of gateways (no loops)."
    )]
    Gateway(crate::gateway::GatewayArgs),
    /// Print a shell completion script for hostd, e.g.
    /// `hostd completions bash > /etc/bash_completion.d/hostd`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print hostd's manual page (roff), e.g.
    /// `hostd manpage > /usr/local/share/man/man1/hostd.1`.
    Manpage,
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
    if let Command::Keygen { out, force } = &cli.command {
        let out = match out {
            Some(o) => o.clone(),
            None => keys::default_path()
                .context("no home directory for ~/.config/sion/cluster.key: give --out FILE")?,
        };
        let id = keys::keygen(&out, *force)?;
        if out != std::path::Path::new("-") {
            eprintln!(
                "hostd: cluster key {id} written to {}; build nodes with `sion-image --key {}` (or boot them with key=HEX)",
                out.display(),
                out.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !matches!(cli.command, Command::Completions { .. } | Command::Manpage) {
        keys::set_current(keys::load(cli.key.as_deref())?);
    }
    match cli.command {
        Command::Keygen { .. } => unreachable!("handled above"),
        Command::Daemon { iface } => {
            run_daemon(&socket, iface.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Nodes { json, find } => {
            let report = group_table(&socket, &find)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report::format_nodes(&report.nodes));
                println!("{}", report::nodes_summary(&report));
                println!("{}", report::group_line(&report.group));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit(args) => crate::submit::run(&socket, *args),
        Command::Gateway(args) => {
            crate::gateway::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs { json, find } => {
            let report = crate::jobs::list(&socket, &find)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report::format_jobs(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { id, find } => {
            if crate::jobs::cancel(&socket, &find, &id)? {
                println!("hostd: job {id} cancelled");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("hostd: no job {id} is running or waiting (see `hostd jobs`)");
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Drain { node, find } => {
            let (name, running) = crate::jobs::drain(&socket, &find, &node)?;
            match running {
                Some(job) => println!(
                    "hostd: node {name} leaves the group; its job {job} continues on another node from a checkpoint, or, if it cannot be checkpointed, runs to its end there"
                ),
                None => println!("hostd: node {name} leaves the group; it ran no job"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "hostd", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .context("writing the manual page")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Place {
            weights,
            mode,
            memory,
            cpus,
            json,
            find,
        } => {
            let job = JobSpec {
                program_size: 0,
                memory: memory
                    .checked_mul(1 << 20)
                    .context("--memory is too large")?,
                mode: mode.into(),
                cpus,
            };
            let report = place_job(
                &socket,
                &find,
                job,
                weights.unwrap_or_default(),
                &PlaceOpts::default(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report::format_placement(&report));
            }
            if report.ranked.is_empty() {
                eprintln!(
                    "hostd: no node can take this job now ({})",
                    report.why_none()
                );
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
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
    fn completions_and_the_manual_page_cover_every_subcommand() {
        let mut bash = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "hostd",
            &mut bash,
        );
        let bash = String::from_utf8(bash).unwrap();
        let mut man = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut man)
            .unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(man.starts_with(".ie") || man.contains(".TH hostd"), "{man}");
        for sub in [
            "daemon",
            "nodes",
            "place",
            "submit",
            "gateway",
            "completions",
            "manpage",
        ] {
            assert!(bash.contains(sub), "completion lacks {sub}");
            assert!(man.contains(sub), "manual page lacks {sub}");
        }
        assert!(
            bash.contains("--weights") && man.contains("\\-\\-socket"),
            "{man}"
        );
    }

    #[test]
    fn submit_takes_cpus_one_by_default_and_refuses_bad_values() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["hostd", "submit"];
            argv.extend_from_slice(extra);
            argv.push("./prog");
            Cli::try_parse_from(argv)
        };
        let cpus = |cli: Cli| match cli.command {
            Command::Submit(a) => a.cpus,
            other => panic!("{other:?}"),
        };
        assert_eq!(cpus(parse(&[]).unwrap()), 1);
        assert_eq!(cpus(parse(&["--cpus", "4"]).unwrap()), 4);
        for (bad, says) in [
            ("0", "at least one CPU"),
            ("256", "255"),
            ("many", "not a whole number"),
        ] {
            let e = parse(&["--cpus", bad]).unwrap_err().to_string();
            assert!(e.contains("--cpus") && e.contains(says), "{bad}: {e}");
        }
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
            "--cpus",
            "3",
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
                cpus,
                json,
                find,
            } => {
                assert_eq!(cpus, 3);
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
    fn parses_gateway_arguments() {
        let cli = Cli::try_parse_from(["hostd", "gateway", "--peer", "10.1.0.2", "--iface", "br0"])
            .unwrap();
        let Command::Gateway(g) = cli.command else {
            panic!("not gateway");
        };
        assert_eq!(g.peer, "10.1.0.2:7422".parse().unwrap());
        assert_eq!(g.listen, "0.0.0.0:7422".parse().unwrap());
        assert_eq!(g.iface.as_deref(), Some("br0"));
        assert_eq!(g.stand_ins.describe(), "169.254.255.0/24");
        let cli = Cli::try_parse_from([
            "hostd",
            "gateway",
            "--peer",
            "10.1.0.2:9000",
            "--listen",
            "10.1.0.1:9001",
            "--stand-ins",
            "192.168.7.0/28",
        ])
        .unwrap();
        let Command::Gateway(g) = cli.command else {
            panic!("not gateway");
        };
        assert_eq!(g.peer.port(), 9000);
        assert_eq!(g.listen.port(), 9001);
        assert_eq!(g.stand_ins.describe(), "192.168.7.0/28");
        assert!(
            Cli::try_parse_from(["hostd", "gateway"]).is_err(),
            "--peer is needed"
        );
        let err = Cli::try_parse_from([
            "hostd",
            "gateway",
            "--peer",
            "x",
            "--stand-ins",
            "1.2.3.4/24",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("not an IPv4 address"), "{err}");
    }

    #[test]
    fn socket_option_is_global() {
        let cli = Cli::try_parse_from(["hostd", "nodes", "--socket", "/x/y.sock"]).unwrap();
        assert_eq!(cli.socket, Some(PathBuf::from("/x/y.sock")));
        assert!(matches!(cli.command, Command::Nodes { json: false, .. }));
    }
}
