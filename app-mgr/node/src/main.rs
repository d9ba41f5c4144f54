//! The App-Program Manager process of a SiON node (SiON paper §3.2.3, §4.2.2;
//! docs/ARCHITECTURE.md "App-Program Manager"): it listens on the job port
//! ([`JOB_PORT`], TCP 7421) for `hostd submit`, runs one job at a time to
//! completion (the paper's single-task virtual machine) while its [`lobby`]
//! keeps serving the port (later submitters wait or hear "busy"; idle and
//! slow connections are dropped), checks and loads the static Linux program
//! it is sent, runs it as an application, and serves its Linux system calls —
//! on the node, or forwarded to the submitting `hostd` for file I/O.
//!
//! Its spawn argument is the Companion Manager's pid (`u64` little-endian,
//! from `init`), which is told the number of running jobs
//! ([`TAG_JOB_STATE`]) when a job starts and ends, so placement sees it.
//!
//! The memory limit of a job is what the node can spare: free physical memory
//! (from `sysinfo`) at the job's start minus [`RESERVED_MEMORY`] (16 MiB kept
//! for the kernel and the node's services), or less if `hostd` asks for less.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod app_node;
mod cache;
mod conn;
mod load;
mod lobby;
mod rng;

use sion_abi::net::{APP_MANAGER_SERVICE, JOB_PORT, TAG_JOB_STATE};
use sion_abi::{Error, Pid};
use sion_companion_mgr::auth::{Keyring, NonceGen};
use sion_companion_mgr::{Name, NodeId};
use sion_rt::sys::{self, TcpListener};

sion_rt::entry!(main);

/// Memory kept back from jobs for the kernel and the node's own processes, in
/// bytes (16 MiB).
pub const RESERVED_MEMORY: u64 = 16 << 20;

/// How long to wait for the node's address before retrying (ns).
const ADDRESS_WAIT_NS: u64 = 30_000_000_000;

/// Who this node is, for `Accepted`, `uname` and the log.
pub struct ThisNode {
    /// The node id as a MAC address string.
    pub id: alloc::string::String,
    /// The node's name (the Companion Manager's derived name).
    pub name: alloc::string::String,
}

fn main(arg: &[u8]) -> i32 {
    let cm: Pid = arg
        .first_chunk::<8>()
        .map(|b| u64::from_le_bytes(*b))
        .unwrap_or(0);
    let keys = match Keyring::parse_optional(arg.get(8..).unwrap_or_default()) {
        Ok(k) => k,
        Err(e) => {
            sion_rt::println!(
                "apm: the cluster key given to this node is malformed: {e}; it takes no jobs"
            );
            return 0;
        }
    };
    if let Err(e) = sys::register(APP_MANAGER_SERVICE) {
        sion_rt::println!("apm: cannot register service {APP_MANAGER_SERVICE}: {e}");
    }
    let Some(me) = this_node() else {
        sion_rt::println!("apm: no network address; no jobs can come");
        return 1;
    };
    let listener = match TcpListener::bind(JOB_PORT) {
        Ok(l) => l,
        Err(e) => {
            sion_rt::println!("apm: cannot listen on port {JOB_PORT}: {e}");
            return 1;
        }
    };
    let auth = keys.map(|k| {
        let entropy = sion_rt::entropy::gather();
        (k, NonceGen::new(&entropy.bytes))
    });
    let how = if auth.is_some() {
        "authenticated and encrypted connections only"
    } else {
        "OPEN: no cluster key, anyone on the LAN may submit"
    };
    sion_rt::println!("apm: taking jobs on port {JOB_PORT} as {} ({how})", me.name);
    // A manager `init` restarted after it ended mid-job: the Companion
    // Manager still counts that job until told otherwise.
    job_state(cm, 0, "");
    let mut lobby = lobby::Lobby::new(listener, auth, cm);
    let mut cache = cache::FileCache::new();
    loop {
        let ready = lobby.next_ready();
        load::run(ready, &mut lobby, &me, &mut cache, |running, what| {
            job_state(cm, running, what)
        });
        lobby.job_done();
    }
}

/// Tells the Companion Manager how many jobs run (0 or 1) and, for its
/// screen, what runs (`what`, one line).
fn job_state(cm: Pid, running: u16, what: &str) {
    if cm != 0 {
        let mut msg = alloc::vec::Vec::with_capacity(2 + what.len());
        msg.extend_from_slice(&running.to_le_bytes());
        msg.extend_from_slice(what.as_bytes());
        let _ = sys::send(cm, TAG_JOB_STATE, &msg);
    }
}

/// Waits for the node's address; the node's id and name.
fn this_node() -> Option<ThisNode> {
    let start = sys::clock_ns();
    loop {
        match sys::net_info() {
            Ok(info) if info.ipv4 != 0 => {
                let b = info.mac.to_be_bytes();
                let id = NodeId::from_mac([b[2], b[3], b[4], b[5], b[6], b[7]]);
                return Some(ThisNode {
                    id: alloc::format!("{id}"),
                    name: alloc::format!("{}", Name::derive(id)),
                });
            }
            Ok(info) if info.mac == 0 => return None,
            Err(Error::NetworkDown) | Ok(_) => {}
            Err(_) => return None,
        }
        if sys::clock_ns() - start > ADDRESS_WAIT_NS {
            return None;
        }
        sys::sleep_ns(100_000_000);
    }
}
