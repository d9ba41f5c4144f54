//! The App-Program Manager process of a SiON node (SiON paper §3.2.3, §4.2.2;
//! docs/ARCHITECTURE.md "App-Program Manager"): it listens on the job port
//! ([`JOB_PORT`], TCP 7421) for `hostd submit`, runs jobs to completion —
//! in balance mode up to one per CPU of the node side by side, in exclusive
//! mode one that owns the node (the paper's single-task virtual machine) —
//! while its [`lobby`] keeps serving the port (later submitters wait or hear
//! "busy"; idle and slow connections are dropped), checks and loads the
//! static Linux program it is sent, runs it as an application, and serves
//! its Linux system calls — on the node, or forwarded to the submitting
//! `hostd` for file I/O.
//!
//! One loop serves every running job ([`serve`]): each job is a library
//! `Process` fed one event at a time, and every wait routes what comes to
//! the job it belongs to ([`app_node::Hub`]). The jobs' applications run on
//! the node's CPUs at once; this manager only serves their system calls.
//!
//! Its spawn argument is the Companion Manager's pid (`u64` little-endian,
//! from `init`), which is told the number of running jobs (`TAG_JOB_STATE`,
//! [`lobby::Lobby::report_jobs`]) when a job starts and ends, so placement
//! sees it.
//!
//! The memory limit of a job is what the node can spare: free physical memory
//! (from `sysinfo`) at the job's start minus [`RESERVED_MEMORY`] (16 MiB kept
//! for the kernel and the node's services), or less if `hostd` asks for less.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

mod app_node;
mod cache;
mod conn;
mod load;
mod lobby;
mod rng;

use sion_abi::net::{APP_MANAGER_SERVICE, JOB_PORT};
use sion_abi::{Error, NO_TIMEOUT, Pid};
use sion_app_mgr::process::Event;
use sion_companion_mgr::auth::{Keyring, NonceGen};
use sion_companion_mgr::{Name, NodeId};
use sion_rt::sys::{self, TcpListener};

use app_node::SharedHub;
use load::Running;

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
    let hub = Rc::new(RefCell::new(app_node::Hub {
        lobby: lobby::Lobby::new(listener, auth, cm),
        cache: cache::FileCache::new(),
        jobs: BTreeMap::new(),
    }));
    // A manager `init` restarted after it ended mid-job: the Companion
    // Manager still counts those jobs until told otherwise (none run).
    hub.borrow().lobby.report_jobs();
    sion_rt::println!(
        "apm: up to {} balance-mode jobs at once (one per CPU)",
        hub.borrow().lobby.slots()
    );
    serve(&hub, &Rc::new(me))
}

/// Serves the job port and every running job, forever: starts the jobs the
/// lobby has room for, hands each job its next event in turn (one per job
/// per round, so no job waits behind another's burst), and waits for the
/// next message or the earliest deadline of any job.
fn serve(hub: &SharedHub, me: &Rc<ThisNode>) -> ! {
    let mut jobs: Vec<Running> = Vec::new();
    loop {
        loop {
            let ready = hub.borrow_mut().lobby.take_ready();
            let Some(ready) = ready else { break };
            if let Some(r) = load::start(ready, hub, me) {
                jobs.push(r);
            }
            hub.borrow().lobby.report_jobs();
        }
        let mut served = false;
        let mut i = 0;
        while i < jobs.len() {
            let number = jobs[i].number;
            let queued = hub.borrow_mut().take_event(number);
            let event = queued.or_else(|| {
                let due = jobs[i].process.next_deadline()?;
                (due <= sys::clock_ns()).then_some(Event::Timeout)
            });
            let Some(event) = event else {
                i += 1;
                continue;
            };
            served = true;
            match jobs[i].process.handle(event) {
                Some(status) => jobs.remove(i).finish(status),
                None => i += 1,
            }
        }
        if served {
            // Handlers may have queued events (theirs or other jobs') and
            // made room: look again before waiting.
            continue;
        }
        let due = jobs.iter().filter_map(|j| j.process.next_deadline()).min();
        let timeout = due.map_or(NO_TIMEOUT, |d| d.saturating_sub(sys::clock_ns()));
        let _ = hub.borrow_mut().wait(timeout);
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
