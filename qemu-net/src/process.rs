//! Processes named by pid *and* start time, so a recycled pid is never taken
//! for one of ours; liveness from `/proc`, and stopping with a grace period.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A process: its pid and its start time (field 22 of `/proc/PID/stat`, in
/// clock ticks since boot; see proc(5)). Together they name one process for
/// the life of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    /// The process id.
    pub pid: i32,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
}

/// State letter and start time from the text of `/proc/PID/stat`. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted from
/// the last `)`.
pub fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: field 3 (state) … field 22 (starttime).
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

fn read_stat(pid: i32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

impl ProcId {
    /// The process with id `pid` as it is now; `None` if there is none.
    pub fn of(pid: i32) -> Option<ProcId> {
        let (_, start_time) = read_stat(pid)?;
        Some(ProcId { pid, start_time })
    }

    /// Whether this very process still runs: the pid exists, has the same start
    /// time, and is not a zombie (`Z`) or dead (`X`).
    pub fn is_alive(&self) -> bool {
        matches!(read_stat(self.pid), Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }

    /// Sends `signal` if the process is still alive; returns whether it was sent.
    pub fn signal(&self, signal: Signal) -> bool {
        self.is_alive() && kill(Pid::from_raw(self.pid), signal).is_ok()
    }
}

/// Waits until none of `procs` is alive, polling every 50 ms, for at most
/// `timeout`. Returns those still alive.
pub fn wait_dead(procs: &[ProcId], timeout: Duration) -> Vec<ProcId> {
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<ProcId> = procs.iter().copied().filter(ProcId::is_alive).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops `procs`: SIGTERM, up to `grace` for them to exit, then SIGKILL and up
/// to 2 s more. Returns those that survived even SIGKILL (normally none).
pub fn stop(procs: &[ProcId], grace: Duration) -> Vec<ProcId> {
    for p in procs {
        p.signal(Signal::SIGTERM);
    }
    let left = wait_dead(procs, grace);
    for p in &left {
        p.signal(Signal::SIGKILL);
    }
    wait_dead(&left, Duration::from_secs(2))
}

/// The identity (device, inode) of the network namespace of process `pid`,
/// from `/proc/PID/ns/net`; `None` if it cannot be read.
pub fn net_ns_of(pid: i32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 3 0 987654 1000 200";
        assert_eq!(parse_stat(stat), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = ProcId::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = ProcId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
        assert!(
            !other.signal(Signal::SIGTERM),
            "no signal to a recycled pid"
        );
        assert!(net_ns_of(me.pid).is_some());
    }

    #[test]
    fn stop_ends_a_child_and_reaped_or_zombie_counts_as_dead() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let id = ProcId::of(child.id() as i32).unwrap();
        assert!(id.is_alive());
        // SIGTERM ends `sleep`; it stays a zombie until reaped, which counts as dead.
        assert!(stop(&[id], Duration::from_secs(5)).is_empty());
        assert!(!id.is_alive());
        child.wait().unwrap();
        assert!(!id.is_alive());
    }
}
