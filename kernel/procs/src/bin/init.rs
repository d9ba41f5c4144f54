//! The first process of a SiON node: starts the node's services — the
//! Companion Manager (group membership and placement) and, when the image
//! carries it, the App-Program Manager (which runs jobs and is told the
//! Companion Manager's pid as its argument) — and supervises them, so the
//! node stays in its group and keeps taking jobs.
//!
//! **Supervision.** `init` waits for whichever service ends (`wait_any`)
//! and starts it again after a back-off (1 s doubling to 30 s, back to 1 s
//! once it has run 60 s: `sion_kernel_core::supervise::Backoff`), saying so
//! on the console ("init: app-mgr ended (killed by signal 9); restarting it
//! in 1 s"). A service that exits with status 0 is finished for good. When
//! the Companion Manager ends, `init` also ends the App-Program Manager
//! (`kill`) and starts it again once the new Companion Manager runs, so it
//! reports to that one (a job it was running is lost).
//!
//! **Argument.** The kernel gives `init` the cluster key's text (empty for
//! an open group; see `sion_companion_mgr::auth`), preceded by the line
//! `crash=SERVICE:SECONDS` when that boot argument is set
//! ([`sion_kernel_core::supervise::split_init_arg`]). Each service's
//! argument is `[Companion Manager pid: u64 LE][cluster key text]` (pid 0
//! for the Companion Manager itself, or while none runs).
//!
//! **Test hook.** With the boot argument `crash=SERVICE:SECONDS`, `init`
//! kills service `SERVICE` once, `SECONDS` after its start at boot, and
//! supervises its end as any other. Only boot arguments set it (see
//! [`sion_kernel_core::supervise`]); nothing on the network can.
#![no_std]
#![no_main]

use sion_abi::{Error, NO_TIMEOUT, Pid, WaitStatus};
use sion_kernel_core::supervise::{Backoff, CRASH_ARG, CrashHook, split_init_arg};
use sion_rt::{println, sys};

sion_rt::entry!(main);

/// The services a node runs, by process-image name; the Companion Manager
/// first.
const SERVICES: [&str; 2] = ["companion-mgr", "app-mgr"];
/// Index of the Companion Manager in [`SERVICES`].
const CM: usize = 0;

const NS_PER_S: u64 = 1_000_000_000;

/// Where a service stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Running as process `pid` since `since` (ns since boot).
    Running { pid: Pid, since: u64 },
    /// Ended by `init` (`pid`, not reaped yet), to be started again.
    Stopping { pid: Pid },
    /// To be started at `at` (ns since boot).
    Restart { at: u64 },
    /// Finished for good (exit status 0, or no such image).
    Done,
}

struct Service {
    name: &'static str,
    state: State,
    backoff: Backoff,
}

fn main(arg: &[u8]) -> i32 {
    println!("init: SiON node up (process {})", sys::getpid());
    let (hook, key) = split_init_arg(arg);
    let hook = hook.and_then(|v| {
        let text = core::str::from_utf8(v).unwrap_or("");
        let parsed = CrashHook::parse(text);
        match parsed {
            Some(h) => println!(
                "init: TEST HOOK {CRASH_ARG}={text}: {} will be killed {} s after its start",
                h.service, h.after_s
            ),
            None => {
                println!("init: boot argument {CRASH_ARG}={text} is not SERVICE:SECONDS; ignored")
            }
        }
        parsed
    });
    let mut services = SERVICES.map(|name| Service {
        name,
        state: State::Restart { at: 0 },
        backoff: Backoff::new(),
    });
    // The hook: which service, and when (ns since boot).
    let mut crash = hook.and_then(|h| {
        let i = SERVICES.iter().position(|&s| s == h.service)?;
        Some((
            i,
            sys::clock_ns().saturating_add(h.after_s.saturating_mul(NS_PER_S)),
        ))
    });
    loop {
        let now = sys::clock_ns();
        if let Some((i, at)) = crash
            && at <= now
        {
            crash = None;
            if let State::Running { pid, .. } = services[i].state {
                println!(
                    "init: TEST HOOK: killing {} (process {pid})",
                    services[i].name
                );
                if let Err(e) = sys::kill(pid) {
                    println!("init: cannot kill {}: {e}", services[i].name);
                }
            }
        }
        start_due(&mut services, key, now);
        if services.iter().all(|s| s.state == State::Done) {
            break;
        }
        let next = next_deadline(&services, crash.map(|(_, at)| at));
        let timeout = next.map_or(NO_TIMEOUT, |at| at.saturating_sub(now));
        match sys::wait_any(timeout) {
            Ok((pid, status)) => ended(&mut services, pid, status),
            Err(Error::TimedOut) => {}
            // No service runs: sleep until the next restart, if any.
            Err(Error::NotChild) if next.is_some() => sys::sleep_ns(timeout),
            Err(Error::NotChild) => break,
            Err(e) => {
                println!("init: waiting for the services failed: {e}");
                sys::sleep_ns(NS_PER_S);
            }
        }
    }
    println!("init: no service left to run");
    0
}

/// The Companion Manager is on its way back: the other services wait for it.
fn cm_pending(services: &[Service]) -> bool {
    matches!(
        services[CM].state,
        State::Restart { .. } | State::Stopping { .. }
    )
}

/// Starts every service whose restart time has come (the Companion Manager
/// first, the others only once it runs).
fn start_due(services: &mut [Service], key: &[u8], now: u64) {
    for i in 0..services.len() {
        let State::Restart { at } = services[i].state else {
            continue;
        };
        if at > now || (i != CM && cm_pending(services)) {
            continue;
        }
        let cm = match services[CM].state {
            State::Running { pid, .. } => pid,
            _ => 0,
        };
        let s = &mut services[i];
        s.state = match start(s.name, cm, key) {
            Ok(pid) => State::Running { pid, since: now },
            Err(Error::NotFound | Error::BadImage) => State::Done,
            Err(_) => {
                let delay = s.backoff.on_end(0);
                println!("init: trying {} again in {} s", s.name, delay / NS_PER_S);
                State::Restart {
                    at: now.saturating_add(delay),
                }
            }
        };
    }
}

/// The earliest time (ns since boot) `init` must act without a service
/// ending: a restart that is not waiting for the Companion Manager, or the
/// test hook.
fn next_deadline(services: &[Service], crash: Option<u64>) -> Option<u64> {
    services
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s.state {
            State::Restart { at } if i == CM || !cm_pending(services) => Some(at),
            _ => None,
        })
        .chain(crash)
        .min()
}

/// Process `pid` ended with `status`: the service it ran is finished or
/// restarted after its back-off.
fn ended(services: &mut [Service], pid: Pid, status: WaitStatus) {
    let now = sys::clock_ns();
    let Some(i) = services.iter().position(|s| {
        matches!(s.state, State::Running { pid: p, .. } | State::Stopping { pid: p } if p == pid)
    }) else {
        return;
    };
    let s = &mut services[i];
    match s.state {
        State::Stopping { .. } => {
            println!(
                "init: {} stopped; starting it again with the new companion-mgr",
                s.name
            );
            s.state = State::Restart { at: now };
        }
        State::Running { .. } if status == WaitStatus::Exited(0) => {
            println!("init: {} finished", s.name);
            s.state = State::Done;
        }
        State::Running { since, .. } => {
            let delay = s.backoff.on_end(now.saturating_sub(since));
            match status {
                WaitStatus::Exited(code) => println!(
                    "init: {} ended (exit status {code}); restarting it in {} s",
                    s.name,
                    delay / NS_PER_S
                ),
                WaitStatus::Signaled(sig) => println!(
                    "init: {} ended (killed by signal {sig}); restarting it in {} s",
                    s.name,
                    delay / NS_PER_S
                ),
            }
            s.state = State::Restart {
                at: now.saturating_add(delay),
            };
            if i == CM {
                stop_for_new_cm(services);
            }
        }
        State::Restart { .. } | State::Done => {}
    }
}

/// The Companion Manager ended: the running services that know its pid are
/// ended too, to be started again with the new one's.
fn stop_for_new_cm(services: &mut [Service]) {
    for s in services.iter_mut().skip(1) {
        if let State::Running { pid, .. } = s.state {
            println!(
                "init: stopping {} (process {pid}) for the new companion-mgr",
                s.name
            );
            if sys::kill(pid).is_ok() {
                s.state = State::Stopping { pid };
            }
        }
    }
}

/// Starts service `name` with the argument `[cm: u64 LE][key]`; its pid.
/// Errors: those of `spawn` ([`Error::NotFound`] for an image without it).
fn start(name: &str, cm: Pid, key: &[u8]) -> Result<Pid, Error> {
    let mut arg = [0u8; sion_abi::MAX_SPAWN_ARG];
    let len = (8 + key.len()).min(arg.len());
    arg[..8].copy_from_slice(&cm.to_le_bytes());
    arg[8..len].copy_from_slice(&key[..len - 8]);
    match sys::spawn(name, &arg[..len]) {
        Ok(pid) => {
            println!("init: started {name} as process {pid}");
            Ok(pid)
        }
        Err(e) => {
            println!("init: cannot start {name}: {e}");
            Err(e)
        }
    }
}
