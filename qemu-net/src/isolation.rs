//! The LAN's namespace: creating it (a named `ip netns` as root, a user +
//! network namespace held by a `sleep` otherwise), building the bridge and
//! taps inside it, running commands in it, and removing it.
//!
//! Nothing here touches the host's own interfaces, addresses or routes: every
//! `ip` command runs inside the LAN's namespace (`ip -n NS`, `nsenter`).

use crate::error::Error;
use crate::plan::{BRIDGE, HOST_ADDR};
use crate::process::{self, ProcId};
use crate::state::Isolation;
use anyhow::{Context, Result};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where `ip netns` keeps named network namespaces (ip-netns(8)).
pub const NETNS_DIR: &str = "/run/netns";

/// The first `program` on `PATH` (or `program` itself if it has a `/` and
/// exists).
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).exists().then(|| program.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Errors with [`Error::ToolMissing`] unless `tool` is on `PATH`.
pub fn require_tool(tool: &'static str, package: &'static str) -> Result<(), Error> {
    find_in_path(tool)
        .map(|_| ())
        .ok_or(Error::ToolMissing { tool, package })
}

/// Whether the named network namespace `name` exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new(NETNS_DIR).join(name).exists()
}

/// Runs `argv` to completion; on failure the error quotes the command and its
/// stderr.
pub fn run(argv: &[String]) -> Result<(), Error> {
    let command = argv.join(" ");
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: command.clone(),
            stderr: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(Error::Command {
            command,
            stderr: if stderr.is_empty() {
                out.status.to_string()
            } else {
                stderr
            },
        })
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

impl Isolation {
    /// The command line that runs `argv` inside the LAN's namespace:
    /// `ip netns exec NS argv…` or
    /// `nsenter -t HOLDER -U -n --preserve-credentials -- argv…`. Both exec
    /// the program in place, so the spawned pid is the program's pid.
    pub fn wrap(&self, argv: &[String]) -> Vec<String> {
        let mut out = match self {
            Isolation::Netns { netns } => strings(&["ip", "netns", "exec", netns]),
            Isolation::Userns { holder } => {
                let pid = holder.pid.to_string();
                strings(&[
                    "nsenter",
                    "-t",
                    &pid,
                    "-U",
                    "-n",
                    "--preserve-credentials",
                    "--",
                ])
            }
        };
        out.extend(argv.iter().cloned());
        out
    }

    /// The command line of `ip ARGS…` acting inside the namespace
    /// (`ip -n NS ARGS…` as root).
    pub fn ip_argv(&self, args: &[&str]) -> Vec<String> {
        match self {
            Isolation::Netns { netns } => {
                let mut v = strings(&["ip", "-n", netns]);
                v.extend(strings(args));
                v
            }
            Isolation::Userns { .. } => {
                let mut v = vec!["ip".to_string()];
                v.extend(strings(args));
                self.wrap(&v)
            }
        }
    }

    fn ip(&self, args: &[&str]) -> Result<(), Error> {
        run(&self.ip_argv(args))
    }

    /// Whether the namespace still exists (the named namespace, or a live
    /// holder).
    pub fn exists(&self) -> bool {
        match self {
            Isolation::Netns { netns } => netns_exists(netns),
            Isolation::Userns { holder } => holder.is_alive(),
        }
    }

    /// One line saying where the LAN lives, for messages.
    pub fn describe(&self) -> String {
        match self {
            Isolation::Netns { netns } => format!("network namespace {netns}"),
            Isolation::Userns { holder } => format!(
                "user+network namespace of pid {} (enter with nsenter -t {} -U -n --preserve-credentials)",
                holder.pid, holder.pid
            ),
        }
    }

    /// Creates the named network namespace `netns` (root) with `lo` up.
    /// Errors: [`Error::NamespacePermission`] when refused, [`Error::Command`]
    /// for other `ip` failures.
    pub fn create_netns(netns: &str) -> Result<Isolation, Error> {
        match run(&strings(&["ip", "netns", "add", netns])) {
            Err(Error::Command { stderr, .. })
                if stderr.contains("not permitted") || stderr.contains("Permission denied") =>
            {
                return Err(Error::NamespacePermission {
                    detail: stderr,
                    advice: "run qemu-net as root with CAP_SYS_ADMIN and CAP_NET_ADMIN, or as an ordinary user (it then uses a user namespace; `--userns` asks for that as root too)",
                });
            }
            r => r?,
        }
        let iso = Isolation::Netns {
            netns: netns.to_string(),
        };
        if let Err(e) = iso.ip(&["link", "set", "lo", "up"]) {
            let _ = run(&strings(&["ip", "netns", "del", netns]));
            return Err(e);
        }
        Ok(iso)
    }

    /// Starts a holder process, `unshare -Urn sleep infinity`, in a new user
    /// and network namespace (uid 0 inside is the caller), in its own process
    /// group so it outlives `qemu-net`, and waits (≤ 5 s) until it has entered
    /// them. Errors: [`Error::NamespacePermission`] when user namespaces are
    /// not allowed, [`Error::ToolMissing`] without util-linux.
    pub fn create_userns() -> Result<Isolation> {
        require_tool("unshare", "util-linux")?;
        require_tool("nsenter", "util-linux")?;
        require_tool("sleep", "coreutils")?;
        let mut child = Command::new("unshare")
            .args(["-Urn", "sleep", "infinity"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("starting `unshare -Urn sleep infinity`")?;
        let pid = child.id() as i32;
        let own_ns = process::net_ns_of(std::process::id() as i32);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait()? {
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut stderr);
                }
                return Err(Error::NamespacePermission {
                    detail: format!("`unshare -Urn` ended with {status}: {}", stderr.trim()),
                    advice: "this system does not let ordinary users create user namespaces; run qemu-net as root, or allow them (`sysctl -w kernel.unprivileged_userns_clone=1`, `user.max_user_namespaces` > 0, on Ubuntu also `kernel.apparmor_restrict_unprivileged_userns=0`)",
                }
                .into());
            }
            // The holder is ready once it runs `sleep` (unshare has written the
            // uid/gid maps and exec'd) in a network namespace of its own.
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" && process::net_ns_of(pid) != own_ns {
                let holder = ProcId::of(pid).context("the namespace holder vanished")?;
                return Ok(Isolation::Userns { holder });
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!(
                    "`unshare -Urn sleep infinity` did not enter its namespace within 5 s"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Builds the LAN inside the namespace: bridge [`BRIDGE`] (no STP, no
    /// forwarding delay) with address [`HOST_ADDR`], and one tap per name in
    /// `taps`, each enslaved to the bridge and up. IPv6 address generation is
    /// switched off on them so the host side sends nothing unasked. Errors:
    /// [`Error::Command`] naming the failing `ip` command.
    pub fn build_lan(&self, taps: &[String]) -> Result<(), Error> {
        if let Isolation::Userns { .. } = self {
            self.ip(&["link", "set", "lo", "up"])?;
        }
        self.ip(&[
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        // Fails only where the kernel has no IPv6; then there is nothing to quiet.
        let _ = self.ip(&["link", "set", BRIDGE, "addrgenmode", "none"]);
        self.ip(&["addr", "add", HOST_ADDR, "dev", BRIDGE])?;
        for tap in taps {
            self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
            let _ = self.ip(&["link", "set", tap, "addrgenmode", "none"]);
            self.ip(&["link", "set", tap, "master", BRIDGE])?;
            self.ip(&["link", "set", tap, "up"])?;
        }
        self.ip(&["link", "set", BRIDGE, "up"])
    }

    /// Removes the LAN: the taps in `taps` and the bridge, then the namespace
    /// itself. For a named namespace, processes still inside it (e.g. a
    /// `hostd` joined with `exec`, or QEMUs of a crashed run) are stopped
    /// first and returned. The caller stops the nodes before. Missing pieces
    /// are skipped. Errors: `ip netns del` failing.
    pub fn destroy(&self, taps: &[String]) -> Result<Vec<i32>> {
        if !self.exists() {
            return Ok(Vec::new());
        }
        let mut stopped = Vec::new();
        if let Isolation::Netns { netns } = self {
            let procs: Vec<ProcId> = netns_pids(netns)
                .into_iter()
                .filter_map(ProcId::of)
                .collect();
            stopped = procs.iter().map(|p| p.pid).collect();
            let left = process::stop(&procs, Duration::from_secs(3));
            if !left.is_empty() {
                eprintln!(
                    "qemu-net: warning: processes {:?} in {netns} survived SIGKILL",
                    left.iter().map(|p| p.pid).collect::<Vec<_>>()
                );
            }
        }
        for tap in taps {
            let _ = self.ip(&["link", "del", tap]);
        }
        let _ = self.ip(&["link", "del", BRIDGE]);
        match self {
            Isolation::Netns { netns } => run(&strings(&["ip", "netns", "del", netns]))?,
            Isolation::Userns { holder } => {
                let left = process::stop(&[*holder], Duration::from_secs(2));
                anyhow::ensure!(
                    left.is_empty(),
                    "could not stop the namespace holder (pid {}); is it another user's?",
                    holder.pid
                );
            }
        }
        Ok(stopped)
    }
}

/// Pids of the processes inside the named network namespace `netns`
/// (`ip netns pids`); empty if it cannot be listed.
pub fn netns_pids(netns: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", netns])
        .stderr(Stdio::null())
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that this user may open `/dev/net/tun` for reading and writing
/// (needed to create taps). Errors: [`Error::TunNotAccessible`].
pub fn check_tun_access() -> Result<(), Error> {
    use nix::unistd::{AccessFlags, access};
    let tun = Path::new("/dev/net/tun");
    access(tun, AccessFlags::R_OK | AccessFlags::W_OK)
        .map_err(|_| Error::TunNotAccessible(tun.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        strings(args)
    }

    #[test]
    fn commands_enter_the_named_namespace_as_root() {
        let iso = Isolation::Netns {
            netns: "sion-qemu-net".into(),
        };
        assert_eq!(
            iso.wrap(&v(&["qemu-system-x86_64", "-m", "256M"])),
            v(&[
                "ip",
                "netns",
                "exec",
                "sion-qemu-net",
                "qemu-system-x86_64",
                "-m",
                "256M"
            ])
        );
        assert_eq!(
            iso.ip_argv(&["link", "set", "lo", "up"]),
            v(&["ip", "-n", "sion-qemu-net", "link", "set", "lo", "up"])
        );
    }

    #[test]
    fn commands_enter_the_user_namespace_through_its_holder() {
        let iso = Isolation::Userns {
            holder: ProcId {
                pid: 4321,
                start_time: 5,
            },
        };
        let prefix = v(&[
            "nsenter",
            "-t",
            "4321",
            "-U",
            "-n",
            "--preserve-credentials",
            "--",
        ]);
        let mut want = prefix.clone();
        want.extend(v(&["sh", "-c", "exit 3"]));
        assert_eq!(iso.wrap(&v(&["sh", "-c", "exit 3"])), want);
        let mut want = prefix;
        want.extend(v(&["ip", "addr"]));
        assert_eq!(iso.ip_argv(&["addr"]), want);
        assert!(!iso.exists(), "a dead holder means no namespace");
    }

    #[test]
    fn failing_commands_report_their_stderr() {
        let err = run(&v(&["sh", "-c", "echo bad thing >&2; exit 2"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c echo bad thing >&2; exit 2` failed: bad thing"
        );
        let err = run(&v(&["/nonexistent/prog"])).unwrap_err();
        assert!(err.to_string().starts_with("`/nonexistent/prog` failed: "));
        assert!(run(&v(&["true"])).is_ok());
    }

    #[test]
    fn tools_are_found_on_path() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("no-such-program-qemu-net").is_none());
        assert!(matches!(
            require_tool("no-such-program-qemu-net", "pkg"),
            Err(Error::ToolMissing { .. })
        ));
    }
}
