//! The errors `qemu-net` reports to its user, each saying what to do about it.

use std::path::PathBuf;

/// One node that did not come up within `--wait-timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingNode {
    /// The node's index (0-based, as in `node-K.log`).
    pub index: usize,
    /// Whether its QEMU was still running when the wait gave up.
    pub running: bool,
    /// Its serial log.
    pub log: PathBuf,
}

/// A user-facing failure of `qemu-net`. Every message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `qemu-system-x86_64` is not on `PATH`.
    #[error(
        "qemu-system-x86_64 was not found on PATH: install QEMU (Debian/Ubuntu package `qemu-system-x86`: `sudo apt-get install qemu-system-x86`)"
    )]
    QemuMissing,
    /// A UEFI node was asked for but OVMF is not installed.
    #[error(
        "UEFI firmware (OVMF) was not found at {}: install it with `sudo apt-get install ovmf` (or set SION_OVMF to its OVMF.fd)",
        sion_image::OVMF_PATHS.join(" or ")
    )]
    OvmfMissing,
    /// A host tool (`ip`, `unshare`, `nsenter`) is not on `PATH`.
    #[error("`{tool}` was not found on PATH: install the `{package}` package")]
    ToolMissing {
        /// The missing program.
        tool: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// The disk image does not exist.
    #[error(
        "no SiON disk image at {}: build it with `cargo run -p sion-image` (or `./sion node`), or pass `--image PATH`",
        .0.display()
    )]
    ImageMissing(PathBuf),
    /// Creating the network namespace was refused.
    #[error("no permission to create network namespaces ({detail}): {advice}")]
    NamespacePermission {
        /// What the failing command said.
        detail: String,
        /// What to do about it.
        advice: &'static str,
    },
    /// `/dev/net/tun` cannot be opened, so no tap can be created.
    #[error(
        "{} is not readable and writable by this user, so no tap device can be created: run qemu-net as root, or ask an administrator to `chmod 0666 /dev/net/tun` (the usual default)",
        .0.display()
    )]
    TunNotAccessible(PathBuf),
    /// A run of this LAN is already up.
    #[error(
        "the LAN `{name}` is already up ({alive} of {nodes} nodes running, state in {}): stop it first with `qemu-net down`",
        .state.display()
    )]
    AlreadyUp {
        /// The LAN's name.
        name: String,
        /// Nodes still running.
        alive: usize,
        /// Nodes in the run.
        nodes: usize,
        /// The state file.
        state: PathBuf,
    },
    /// No run of this LAN is up.
    #[error("the LAN `{0}` is not up: start it with `qemu-net up --nodes N`")]
    NotUp(String),
    /// The LAN was started by root and this user cannot enter it.
    #[error(
        "the LAN `{name}` runs in the root-owned network namespace `{netns}`: run this command as root (e.g. with sudo)"
    )]
    NeedRoot {
        /// The LAN's name.
        name: String,
        /// Its network namespace.
        netns: String,
    },
    /// `kill-node` named a node that is not in the run.
    #[error("the LAN has no node {index} (it has nodes 0..{nodes}); see `qemu-net status`")]
    NoSuchNode {
        /// The index asked for.
        index: usize,
        /// How many nodes the run has.
        nodes: usize,
    },
    /// A node's QEMU exited while starting.
    #[error(
        "node {index}'s QEMU exited right after starting ({status}); it said:\n{stderr}\n(QEMU's output is in {})",
        .qemu_log.display()
    )]
    QemuExited {
        /// The node's index.
        index: usize,
        /// Its exit status, as text.
        status: String,
        /// The end of QEMU's own output.
        stderr: String,
        /// The file holding QEMU's own output.
        qemu_log: PathBuf,
    },
    /// `--wait` gave up: some nodes never logged `net: configured`.
    #[error("{}", wait_timeout_message(*.seconds, .missing, *.torn_down))]
    WaitTimeout {
        /// The timeout, in seconds.
        seconds: u64,
        /// The nodes that did not come up.
        missing: Vec<MissingNode>,
        /// Whether the LAN was taken down (`--foreground`) or left up.
        torn_down: bool,
    },
    /// A host command (`ip …`) failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it wrote to stderr (or its exit status).
        stderr: String,
    },
    /// Another `qemu-net` is starting or stopping this LAN.
    #[error(
        "another qemu-net is starting or stopping the LAN `{0}` (its lock is held); wait for it, or stop it"
    )]
    Busy(String),
}

fn wait_timeout_message(seconds: u64, missing: &[MissingNode], torn_down: bool) -> String {
    let mut s = if missing.iter().any(|m| !m.running) {
        "a node stopped before configuring its network".to_string()
    } else {
        format!("timed out after {seconds} s waiting for the nodes to configure their network")
    };
    s.push_str(" (no `net: configured` line in the serial log of ");
    let list: Vec<String> = missing
        .iter()
        .map(|m| format!("node {}", m.index))
        .collect();
    s.push_str(&list.join(", "));
    s.push_str("):");
    for m in missing {
        s.push_str(&format!(
            "\n  node {}: {}, log {}",
            m.index,
            if m.running {
                "QEMU still running"
            } else {
                "QEMU exited"
            },
            m.log.display()
        ));
    }
    s.push_str(if torn_down {
        "\nthe LAN has been taken down; the logs remain"
    } else {
        "\nthe LAN stays up for inspection; stop it with `qemu-net down`"
    });
    s
}
