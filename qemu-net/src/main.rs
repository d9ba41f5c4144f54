//! The `qemu-net` command line: `up`, `exec`, `status`, `down`, `kill-node`,
//! `restart-node`.
#![forbid(unsafe_code)]

use anyhow::Result;
use clap::{Parser, Subcommand};
use qemu_net::lan::{Lan, UpOptions, default_image};
use qemu_net::plan;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Boot SiON nodes in QEMU on a private, isolated LAN (a network namespace
/// with a bridge and one tap per node).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// The LAN's name: as root its network namespace is `NAME-qemu-net`; its
    /// run directory is `target/qemu-net/NAME`.
    #[arg(long, global = true, env = "QEMU_NET_NAME", default_value = "sion")]
    name: String,
    /// Where the state file and the nodes' logs live [default: target/qemu-net/NAME].
    #[arg(long, global = true, env = "QEMU_NET_RUN_DIR", value_name = "DIR")]
    run_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the LAN and start N nodes on it (in the background unless --foreground).
    Up {
        /// Number of nodes.
        #[arg(long, value_name = "N")]
        nodes: usize,
        /// Memory per node in MiB: one size for all, or one per node (`256,384,512`).
        #[arg(long, value_name = "MB[,MB…]", default_value_t = plan::DEFAULT_MEMORY_MB.to_string())]
        memory: String,
        /// Processors per node: one count for all, or one per node (`1,2`);
        /// QEMU's `-smp`.
        #[arg(long, value_name = "N[,N…]", default_value = "1")]
        cpus: String,
        /// Network card per node: one for all, or one per node (`virtio,e1000`).
        #[arg(long, value_name = "virtio|e1000[,…]", default_value = "virtio")]
        nic: String,
        /// Firmware per node: one for all, or one per node (`bios,uefi`); UEFI
        /// nodes boot the UEFI image beside --image (`sion-uefi.img`) with OVMF.
        #[arg(long, value_name = "bios|uefi[,…]", default_value = "bios")]
        firmware: String,
        /// SiON boot arguments passed to every node.
        #[arg(long, value_name = "STR", default_value = "")]
        cmdline: String,
        /// The disk image to boot [default: target/sion.img].
        #[arg(long, value_name = "PATH")]
        image: Option<PathBuf>,
        /// Wait until every node has logged `net: configured` (its address).
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, value_name = "S", default_value_t = 30, requires = "wait")]
        wait_timeout: u64,
        /// Stay in the foreground; Ctrl-C (or SIGTERM) tears the LAN down.
        #[arg(long)]
        foreground: bool,
        /// Use a user namespace (as unprivileged users do) even as root.
        #[arg(long)]
        userns: bool,
        /// The last MAC byte of node 0 (node K gets N+K): give LANs that a
        /// `hostd gateway` joins different ranges, so node ids stay unique.
        #[arg(long, value_name = "N", default_value_t = 0)]
        first_mac: u8,
    },
    /// Run a host command inside the LAN's network namespace (stdio and exit status pass through).
    Exec {
        /// The command and its arguments (put `--` before them).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Show each node: pid, alive, MAC, memory, address once logged, log path.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop every node and remove the taps, bridge, namespace and state file.
    Down,
    /// Stop one node (for failure tests); the rest of the LAN stays up.
    KillNode {
        /// The node's index (as in node-K.log).
        index: usize,
    },
    /// Start a stopped node again, as it was first started.
    RestartNode {
        /// The node's index (as in node-K.log).
        index: usize,
    },
}

fn run(cli: Cli) -> Result<()> {
    let lan = Lan::new(&cli.name, cli.run_dir)?;
    match cli.command {
        Cmd::Up {
            nodes,
            memory,
            cpus,
            nic,
            firmware,
            cmdline,
            image,
            wait,
            wait_timeout,
            foreground,
            userns,
            first_mac,
        } => lan.up(&UpOptions {
            nodes,
            memory: plan::parse_memory_list(&memory)?,
            cpus: plan::parse_cpus_list(&cpus)?,
            nics: plan::parse_nic_list(&nic)?,
            firmware: plan::parse_firmware_list(&firmware)?,
            cmdline,
            image: image.unwrap_or_else(default_image),
            wait: wait.then(|| Duration::from_secs(wait_timeout)),
            foreground,
            userns,
            first_mac,
        }),
        Cmd::Exec { command } => lan.exec(&command),
        Cmd::Status { json } => {
            match lan.status()? {
                Some(report) if json => println!("{}", serde_json::to_string_pretty(&report)?),
                Some(report) => print!("{}", report.table()),
                None if json => println!(
                    "{}",
                    serde_json::json!({ "name": lan.name, "up": false, "nodes": [] })
                ),
                None => println!(
                    "the LAN `{}` is not up (start it with `qemu-net up --nodes N`)",
                    lan.name
                ),
            }
            Ok(())
        }
        Cmd::Down => lan.down(),
        Cmd::KillNode { index } => lan.kill_node(index),
        Cmd::RestartNode { index } => lan.restart_node(index),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qemu-net: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
