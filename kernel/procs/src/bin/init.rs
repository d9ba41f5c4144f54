//! The first process of a SiON node: starts the node's services — the
//! Companion Manager (group membership and placement) and, when the image
//! carries it, the App-Program Manager (which runs jobs and is told the
//! Companion Manager's pid as its argument) — and restarts a service that
//! fails, so the node stays in its group.
//!
//! Each service's argument is `[Companion Manager pid: u64 LE][cluster key
//! text]`: the pid (0 for the Companion Manager itself) and what the kernel
//! gave `init` as its own argument, the cluster key's text (empty for an
//! open group; see `sion_companion_mgr::auth`).
#![no_std]
#![no_main]

use sion_rt::{println, sys};

sion_rt::entry!(main);

/// The services a node runs, by process-image name.
const SERVICES: [&str; 2] = ["companion-mgr", "app-mgr"];

/// Pause before restarting a service that ended (ns), so a crash loop cannot
/// flood the console.
const RESTART_DELAY_NS: u64 = 2_000_000_000;

fn main(key: &[u8]) -> i32 {
    println!("init: SiON node up (process {})", sys::getpid());
    let mut pids = [0u64; SERVICES.len()];
    for (i, name) in SERVICES.iter().enumerate() {
        pids[i] = start(name, pids[0], key);
    }
    // 0: to be restarted; u64::MAX: finished for good.
    while pids.iter().any(|&p| p != u64::MAX) {
        for (i, name) in SERVICES.iter().enumerate() {
            if pids[i] == u64::MAX {
                continue;
            }
            if pids[i] == 0 {
                sys::sleep_ns(RESTART_DELAY_NS);
                pids[i] = start(name, pids[0], key);
                continue;
            }
            // Services run for ever; a wait returns only when one ends.
            match sys::wait(pids[i]) {
                Ok(sion_abi::WaitStatus::Exited(0)) => {
                    println!("init: {name} finished");
                    pids[i] = u64::MAX;
                }
                Ok(status) => {
                    println!("init: {name} ended ({status:?}); restarting it");
                    pids[i] = 0;
                }
                Err(_) => pids[i] = u64::MAX,
            }
        }
    }
    0
}

/// Starts service `name` with the argument `[cm: u64 LE][key]`; `u64::MAX` if
/// it cannot start (for example an image without it).
fn start(name: &str, cm: u64, key: &[u8]) -> u64 {
    let mut arg = [0u8; sion_abi::MAX_SPAWN_ARG];
    let len = (8 + key.len()).min(arg.len());
    arg[..8].copy_from_slice(&cm.to_le_bytes());
    arg[8..len].copy_from_slice(&key[..len - 8]);
    match sys::spawn(name, &arg[..len]) {
        Ok(pid) => {
            println!("init: started {name} as process {pid}");
            pid
        }
        Err(e) => {
            println!("init: cannot start {name}: {e}");
            u64::MAX
        }
    }
}
