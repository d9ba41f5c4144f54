//! The first process of a SiON node: starts the node's services — the
//! Companion Manager (group membership and placement) and, when the image
//! carries it, the App-Program Manager (which runs jobs and is told the
//! Companion Manager's pid as its argument) — and restarts a service that
//! fails, so the node stays in its group.
#![no_std]
#![no_main]

use sion_rt::{println, sys};

sion_rt::entry!(main);

/// The services a node runs, by process-image name.
const SERVICES: [&str; 2] = ["companion-mgr", "app-mgr"];

/// Pause before restarting a service that ended (ns), so a crash loop cannot
/// flood the console.
const RESTART_DELAY_NS: u64 = 2_000_000_000;

fn main(_arg: &[u8]) -> i32 {
    println!("init: SiON node up (process {})", sys::getpid());
    let mut pids = [0u64; SERVICES.len()];
    for (i, name) in SERVICES.iter().enumerate() {
        pids[i] = start(name, &pids[0].to_le_bytes());
    }
    // 0: to be restarted; u64::MAX: finished for good.
    while pids.iter().any(|&p| p != u64::MAX) {
        for (i, name) in SERVICES.iter().enumerate() {
            if pids[i] == u64::MAX {
                continue;
            }
            if pids[i] == 0 {
                sys::sleep_ns(RESTART_DELAY_NS);
                pids[i] = start(name, &pids[0].to_le_bytes());
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

/// Starts service `name` with argument `arg`; `u64::MAX` if it cannot start
/// (for example an image without it).
fn start(name: &str, arg: &[u8]) -> u64 {
    match sys::spawn(name, arg) {
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
