//! The job port's lobby: every connection from its arrival to the start of
//! its job, served while the node is idle, while a job loads and while it
//! runs, so no connection can hold the port.
//!
//! A connection goes through these stages, each with a deadline:
//!
//! 1. **Arriving**: accepted at once (the listener notifies the lobby); it
//!    must send [`Start`] within [`START_TIMEOUT_NS`]. At most
//!    [`MAX_ARRIVING`] wait; a new one evicts the oldest.
//! 2. **Uploading**: while the node has room for the job (see below), up
//!    to [`MAX_UPLOADS`] programs arrive
//!    side by side, each into the staging area of its own new application
//!    (see [`crate::load`]), so a slow sender delays nobody else. Bytes may
//!    not stop for [`STEP_TIMEOUT_NS`], and after a grace of
//!    [`UPLOAD_BASE_NS`] they must keep up at least 1 MiB per [`NS_PER_MIB`],
//!    so a trickle cannot hold the memory it was given for long.
//! 3. **Ready**: the program is complete; the job waits for room on the
//!    node, and the manager takes it ([`Lobby::take_ready`]) to run beside
//!    the others.
//!
//! **Room**: a balance-mode job runs beside other balance-mode jobs, up to
//! one job per CPU of the node (`sysinfo().cpus`); an exclusive-mode job
//! ([`Start::exclusive`]) needs an idle node and keeps every other job out
//! until it ends. Jobs start in the order they became ready. When the node
//! has no room, a new `Start` gets [`NodeMsg::Busy`] unless it asks to wait
//! ([`Start::queue`]); waiting ones (at most [`MAX_WAITING`]) upload when
//! there is room again. Connections dropped for missing a deadline
//! are reset and counted ([`LobbyStats`]).

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sion_abi::app as kapp;
use sion_abi::net::{TAG_JOB_STATE, TAG_LEAVE};
use sion_abi::{ANY_SENDER, Error, MessageInfo, NO_TIMEOUT, Pid, TAG_TCP_READABLE};
use sion_app_mgr::abi::page_up;
use sion_app_mgr::elf_load::SparseFile;
use sion_app_mgr::job::{HostMsg, JobInfo, JobState, NodeMsg, PROTOCOL_VERSION, Start};
use sion_rt::sys::{self, TcpListener, app};

use sion_companion_mgr::auth::{Channel, Keyring, NonceGen};

use crate::conn::{Conn, ConnError};
use crate::load::STAGING;

/// How long a new connection may take to send `Start` (10 s, ns).
pub const START_TIMEOUT_NS: u64 = 10_000_000_000;
/// Longest pause between program bytes during an upload (10 s, ns).
pub const STEP_TIMEOUT_NS: u64 = 10_000_000_000;
/// Grace every upload has before its rate counts (30 s, ns).
pub const UPLOAD_BASE_NS: u64 = 30_000_000_000;
/// Upload time allowed per MiB received (4 s, ns: at least 256 KiB/s).
pub const NS_PER_MIB: u64 = 4_000_000_000;
/// Connections without `Start` kept at once (each may buffer up to one
/// frame, 68 KiB, of the manager's heap).
pub const MAX_ARRIVING: usize = 8;
/// Uploads at once.
pub const MAX_UPLOADS: usize = 4;
/// Jobs waiting for the node (uploaded or waiting to upload) at once.
pub const MAX_WAITING: usize = 8;
/// Bytes of the program's start kept in memory for the ELF checks.
const PREFIX: usize = 16 * 1024;

/// What happened to connections, for the log and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct LobbyStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Dropped without `Start` in time, or evicted by newer arrivals.
    pub idle: u64,
    /// Dropped because their upload missed a deadline.
    pub slow: u64,
    /// Answered [`NodeMsg::Busy`].
    pub busy: u64,
    /// Refused because the peer did not prove it holds the cluster key.
    pub unauthenticated: u64,
}

/// A connection that has not sent `Start` yet.
struct Arriving {
    number: u64,
    conn: Conn,
    deadline_ns: u64,
}

/// A job whose program is arriving.
struct Upload {
    number: u64,
    conn: Conn,
    start: Start,
    pid: Pid,
    got: u64,
    prefix: Vec<u8>,
    began_ns: u64,
    last_ns: u64,
}

/// A job that waits for the node before its upload.
struct Waiting {
    number: u64,
    conn: Conn,
    start: Start,
    since_ns: u64,
}

/// A job whose program has arrived: an application with the program in its
/// staging area, waiting to be loaded and run ([`crate::load::run`]).
pub struct Ready {
    /// Job number on this node.
    pub number: u64,
    /// The connection to `hostd`.
    pub conn: Conn,
    /// What `hostd` asked for.
    pub start: Start,
    /// The application (not started).
    pub pid: Pid,
    /// The program: its length and first bytes (the rest is staged).
    pub program: SparseFile,
}

/// A job taken to run (loading or running), for `hostd jobs`, `hostd
/// cancel` and the room left on the node.
struct Current {
    number: u64,
    pid: Pid,
    /// It owns the node (exclusive mode).
    exclusive: bool,
    program: String,
    from: String,
    started_ns: u64,
    cancelled: bool,
}

/// Ended jobs kept for `hostd jobs`.
const RECENT: usize = 16;

/// The job port and every connection not yet running a job.
pub struct Lobby {
    listener: TcpListener,
    /// The jobs taken to run, in the order they were taken.
    current: Vec<Current>,
    /// Balance-mode jobs that may run at once: the node's CPUs (at least 1).
    slots: usize,
    recent: VecDeque<JobInfo>,
    arriving: VecDeque<Arriving>,
    uploads: Vec<Upload>,
    waiting: VecDeque<Waiting>,
    ready: VecDeque<Ready>,
    last_number: u64,
    /// The cluster keys (a keyed node) and the nonce source of its
    /// handshakes; `None` in an open group.
    auth: Option<(Keyring, NonceGen)>,
    /// The Companion Manager (told when the node leaves the group).
    cm: Pid,
    /// The node leaves the group (`hostd drain`): who asked.
    leaving: Option<String>,
    /// Counters.
    pub stats: LobbyStats,
}

impl Lobby {
    /// Serves `listener`; with `auth` (the cluster keys and a nonce source)
    /// every connection must first prove it holds a key.
    /// `cm` is the Companion Manager's pid (0: none).
    pub fn new(listener: TcpListener, auth: Option<(Keyring, NonceGen)>, cm: Pid) -> Lobby {
        let _ = listener.notify_acceptable();
        let cpus = sys::sysinfo().map_or(1, |i| i.cpus);
        Lobby {
            listener,
            current: Vec::new(),
            slots: usize::try_from(cpus).unwrap_or(1).max(1),
            recent: VecDeque::new(),
            arriving: VecDeque::new(),
            uploads: Vec::new(),
            waiting: VecDeque::new(),
            ready: VecDeque::new(),
            last_number: 0,
            auth,
            cm,
            leaving: None,
            stats: LobbyStats::default(),
        }
    }

    /// Who asked the node to leave the group, once someone has.
    pub fn leaving(&self) -> Option<&str> {
        self.leaving.as_deref()
    }

    /// `hostd drain`: the node leaves the group. The Companion Manager says
    /// goodbye; jobs waiting or arriving are told the node is busy (their
    /// submitters place them elsewhere); the running job moves or ends
    /// (see [`sion_app_mgr::process::Node::leaving`]).
    fn leave(&mut self, by: String) {
        if self.leaving.is_some() {
            return;
        }
        sion_rt::println!(
            "apm: leaving the group (asked by {by}): no new jobs; a running job moves from a checkpoint if it can be checkpointed, else runs to its end here"
        );
        if self.cm != 0 {
            let _ = sys::send(self.cm, TAG_LEAVE, &[]);
        }
        self.leaving = Some(by);
        let busy = || NodeMsg::Busy {
            reason: String::from("the node is leaving the group"),
        };
        for mut w in core::mem::take(&mut self.waiting) {
            w.conn.send_now(&busy());
        }
        for mut u in core::mem::take(&mut self.uploads) {
            let _ = app::kill(u.pid, 9);
            u.conn.send_now(&busy());
        }
        for mut r in core::mem::take(&mut self.ready) {
            let _ = app::kill(r.pid, 9);
            r.conn.send_now(&busy());
        }
    }

    /// Balance-mode jobs that may run at once (the node's CPUs).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Whether a job (`exclusive`: in exclusive mode) has room to start
    /// beside the jobs taken now.
    fn fits(&self, exclusive: bool) -> bool {
        if self.current.is_empty() {
            return true;
        }
        !exclusive && self.current.len() < self.slots && !self.current.iter().any(|c| c.exclusive)
    }

    /// Takes the job that has waited longest among those whose programs
    /// have arrived, if it has room on the node now (jobs start in order:
    /// one without room keeps those behind it waiting). The job counts as
    /// running until [`Lobby::job_ended`] or [`Lobby::job_dropped`].
    pub fn take_ready(&mut self) -> Option<Ready> {
        let exclusive = self.ready.front()?.start.exclusive;
        if !self.fits(exclusive) {
            return None;
        }
        let r = self.ready.pop_front()?;
        self.current.push(Current {
            number: r.number,
            pid: r.pid,
            exclusive,
            program: program_name(&r.start),
            from: r.start.from.clone(),
            started_ns: sys::clock_ns(),
            cancelled: false,
        });
        Some(r)
    }

    /// How many jobs are taken (loading or running), and one line saying
    /// what runs (`job N: PROGRAM from USER@HOST`, joined by `; `), for the
    /// Companion Manager.
    pub fn running(&self) -> (u16, String) {
        let mut what = String::new();
        for c in &self.current {
            if !what.is_empty() {
                what.push_str("; ");
            }
            what.push_str(&format!(
                "job {}: {} from {}",
                c.number,
                c.program,
                if c.from.is_empty() { "?" } else { &c.from }
            ));
        }
        (u16::try_from(self.current.len()).unwrap_or(u16::MAX), what)
    }

    /// Tells the Companion Manager what [`Lobby::running`] says (as
    /// [`TAG_JOB_STATE`]: the count, `u16` little-endian, then the line),
    /// so placement sees the node's free CPUs.
    pub fn report_jobs(&self) {
        if self.cm == 0 {
            return;
        }
        let (count, what) = self.running();
        let mut msg = Vec::with_capacity(2 + what.len());
        msg.extend_from_slice(&count.to_le_bytes());
        msg.extend_from_slice(what.as_bytes());
        let _ = sys::send(self.cm, TAG_JOB_STATE, &msg);
    }

    /// Job `number` ended with wait status `status`: it is remembered for
    /// `hostd jobs`, and its room goes to waiting jobs, which start their
    /// uploads.
    pub fn job_ended(&mut self, number: u64, status: i32) {
        if let Some(i) = self.current.iter().position(|c| c.number == number) {
            let c = self.current.remove(i);
            let state = if c.cancelled {
                JobState::Cancelled
            } else {
                JobState::Exited(status)
            };
            self.remember(c.number, c.program, c.from, state, c.started_ns);
        }
        self.promote();
    }

    /// Job `number` was taken but never ran (refused at loading, or its
    /// submitter gave up): its room goes to waiting jobs.
    pub fn job_dropped(&mut self, number: u64) {
        self.current.retain(|c| c.number != number);
        self.promote();
    }

    fn remember(&mut self, job: u64, program: String, from: String, state: JobState, since: u64) {
        if self.recent.len() >= RECENT {
            self.recent.pop_back();
        }
        self.recent.push_front(JobInfo {
            job,
            program,
            from,
            state,
            elapsed_ms: (sys::clock_ns().saturating_sub(since)) / 1_000_000,
        });
    }

    /// Every job the node knows: running, uploading, waiting, then ended.
    fn jobs(&self) -> Vec<JobInfo> {
        let now = sys::clock_ns();
        let ms = |since: u64| now.saturating_sub(since) / 1_000_000;
        let mut v = Vec::new();
        for c in &self.current {
            v.push(JobInfo {
                job: c.number,
                program: c.program.clone(),
                from: c.from.clone(),
                state: JobState::Running,
                elapsed_ms: ms(c.started_ns),
            });
        }
        for u in &self.uploads {
            v.push(JobInfo {
                job: u.number,
                program: program_name(&u.start),
                from: u.start.from.clone(),
                state: JobState::Uploading,
                elapsed_ms: ms(u.began_ns),
            });
        }
        for r in &self.ready {
            v.push(JobInfo {
                job: r.number,
                program: program_name(&r.start),
                from: r.start.from.clone(),
                state: JobState::Waiting,
                elapsed_ms: 0,
            });
        }
        for w in &self.waiting {
            v.push(JobInfo {
                job: w.number,
                program: program_name(&w.start),
                from: w.start.from.clone(),
                state: JobState::Waiting,
                elapsed_ms: ms(w.since_ns),
            });
        }
        v.extend(self.recent.iter().cloned());
        v
    }

    /// Ends job `job`: a running one is killed, a waiting or uploading one
    /// dropped with a refusal. False if the node has no such job.
    fn cancel(&mut self, job: u64, by: &str) -> bool {
        if let Some(c) = self.current.iter_mut().find(|c| c.number == job) {
            if !c.cancelled {
                c.cancelled = true;
                sion_rt::println!("apm: job {job} cancelled by {by}");
                let _ = app::kill(c.pid, u64::from(sion_abi::Signal::SIGKILL.number()));
            }
            return true;
        }
        let why = format!("cancelled by {by}");
        if let Some(i) = self.uploads.iter().position(|u| u.number == job) {
            let u = self.uploads.swap_remove(i);
            let _ = app::kill(u.pid, 9);
            self.remember(
                job,
                program_name(&u.start),
                u.start.from.clone(),
                JobState::Cancelled,
                u.began_ns,
            );
            refuse(u.conn, job, &why);
            return true;
        }
        if let Some(i) = self.ready.iter().position(|r| r.number == job) {
            let r = self.ready.remove(i).expect("found above");
            let _ = app::kill(r.pid, 9);
            self.remember(
                job,
                program_name(&r.start),
                r.start.from.clone(),
                JobState::Cancelled,
                sys::clock_ns(),
            );
            refuse(r.conn, job, &why);
            return true;
        }
        if let Some(i) = self.waiting.iter().position(|w| w.number == job) {
            let w = self.waiting.remove(i).expect("found above");
            self.remember(
                job,
                program_name(&w.start),
                w.start.from.clone(),
                JobState::Cancelled,
                w.since_ns,
            );
            refuse(w.conn, job, &why);
            return true;
        }
        false
    }

    /// Waits once, until `deadline_ns` (`u64::MAX`: no deadline) or the next
    /// deadline of a connection; `None` if what came was the lobby's (or a
    /// connection's deadline passed), `Some(Err(TimedOut))` at
    /// `deadline_ns`, else the message for the caller (`buf` holds its
    /// payload).
    pub fn step(&mut self, buf: &mut [u8], deadline_ns: u64) -> Option<Result<MessageInfo, Error>> {
        let now = sys::clock_ns();
        self.expire(now);
        if now >= deadline_ns {
            return Some(Err(Error::TimedOut));
        }
        let wake = deadline_ns.min(self.next_deadline());
        let wait = if wake == u64::MAX {
            NO_TIMEOUT
        } else {
            wake - now
        };
        let result = match sys::receive(buf, ANY_SENDER, wait) {
            Ok(info) if info.tag == TAG_TCP_READABLE && info.is_kernel_notice() => {
                let handle = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                if self.on_readable(handle) {
                    None
                } else {
                    Some(Ok(info))
                }
            }
            Ok(info) => Some(Ok(info)),
            Err(Error::TimedOut) => None,
            Err(e) => Some(Err(e)),
        };
        // Uploads that ended (or failed) make room for waiting jobs.
        self.promote();
        result
    }

    /// The earliest deadline of a connection (ns), `u64::MAX` if none.
    fn next_deadline(&self) -> u64 {
        let arriving = self.arriving.iter().map(|a| a.deadline_ns);
        let uploads = self.uploads.iter().map(Upload::deadline);
        arriving.chain(uploads).min().unwrap_or(u64::MAX)
    }

    /// Handles a readable notice; false if `handle` is not the lobby's.
    fn on_readable(&mut self, handle: u64) -> bool {
        if handle == self.listener.handle() {
            self.accept_all();
            return true;
        }
        if let Some(i) = self.arriving.iter().position(|a| a.conn.handle() == handle) {
            let a = self.arriving.remove(i).expect("found above");
            self.on_arriving(a);
            return true;
        }
        if let Some(i) = self.uploads.iter().position(|u| u.conn.handle() == handle) {
            let u = self.uploads.swap_remove(i);
            self.pump(u);
            return true;
        }
        false
    }

    fn accept_all(&mut self) {
        while let Some(stream) = self.listener.try_accept() {
            self.last_number += 1;
            self.stats.accepted += 1;
            let oldest = (0..self.arriving.len()).min_by_key(|&i| self.arriving[i].deadline_ns);
            if self.arriving.len() >= MAX_ARRIVING
                && let Some(old) = oldest.and_then(|i| self.arriving.remove(i))
            {
                self.stats.idle += 1;
                sion_rt::println!(
                    "apm: connection {} dropped: no job sent yet and {MAX_ARRIVING} newer connections wait",
                    old.number
                );
                old.conn.abort();
            }
            let channel = self.auth.as_mut().map(|(keys, nonces)| {
                let salt = [
                    sys::clock_ns().to_le_bytes(),
                    self.last_number.to_le_bytes(),
                ];
                Channel::node(keys, nonces.next(salt.as_flattened()))
            });
            let conn = Conn::new(stream, channel);
            conn.arm();
            self.arriving.push_back(Arriving {
                number: self.last_number,
                conn,
                deadline_ns: sys::clock_ns().saturating_add(START_TIMEOUT_NS),
            });
        }
        let _ = self.listener.notify_acceptable();
    }

    /// Reads an arriving connection; it moves on once `Start` is there.
    fn on_arriving(&mut self, mut a: Arriving) {
        a.conn.read_some();
        match a.conn.next_msg() {
            Ok(Some(HostMsg::Start(start))) => self.on_start(a.number, a.conn, start),
            Ok(Some(HostMsg::List { .. })) => {
                let jobs = self.jobs();
                a.conn.send_now(&NodeMsg::Jobs(jobs));
            }
            Ok(Some(HostMsg::Cancel { job, by, .. })) => {
                let found = self.cancel(job, &by);
                a.conn.send_now(&NodeMsg::Cancelled { job, found });
            }
            Ok(Some(HostMsg::Leave { by, .. })) => {
                self.leave(by);
                // The oldest running job (each moves or ends, as one would).
                let running = self.current.first().map(|c| c.number);
                a.conn.send_now(&NodeMsg::Leaving { running });
            }
            Ok(Some(_)) => refuse(
                a.conn,
                a.number,
                "protocol error: the job did not begin with Start",
            ),
            Ok(None) if !a.conn.is_closed() => {
                a.conn.arm();
                self.arriving.push_back(a);
            }
            Err(ConnError::Unauthenticated(e)) => {
                self.stats.unauthenticated += 1;
                sion_rt::println!(
                    "apm: connection {} refused: not authenticated ({e}); refused so far: {}",
                    a.number,
                    self.stats.unauthenticated
                );
                // Closed, not reset: a refusal queued for the peer still goes.
                drop(a.conn);
            }
            // Closed before `Start`, or not a frame: nobody to answer.
            Ok(None) | Err(_) => a.conn.abort(),
        }
    }

    fn on_start(&mut self, number: u64, mut conn: Conn, start: Start) {
        if start.version != PROTOCOL_VERSION {
            let why = format!(
                "job protocol version {} but this node speaks {PROTOCOL_VERSION}: use a hostd that matches the node image",
                start.version
            );
            refuse(conn, number, &why);
            return;
        }
        if self.leaving.is_some() {
            self.stats.busy += 1;
            sion_rt::println!("apm: job {number}: busy: the node is leaving the group");
            conn.send_now(&NodeMsg::Busy {
                reason: String::from("the node is leaving the group"),
            });
            return;
        }
        if self.fits(start.exclusive) && self.uploads.len() < MAX_UPLOADS && self.waiting.is_empty()
        {
            self.begin_upload(number, conn, start);
            return;
        }
        let waiting = self.waiting.len() + self.ready.len() + self.uploads.len();
        if start.queue && waiting < MAX_WAITING {
            self.waiting.push_back(Waiting {
                number,
                conn,
                start,
                since_ns: sys::clock_ns(),
            });
            return;
        }
        let reason = if start.queue {
            format!("{waiting} jobs already wait for this node")
        } else if !self.fits(start.exclusive) {
            self.no_room()
        } else {
            format!("{MAX_UPLOADS} other programs are arriving")
        };
        self.stats.busy += 1;
        sion_rt::println!("apm: job {number}: busy: {reason}");
        conn.send_now(&NodeMsg::Busy { reason });
    }

    /// Starts receiving the program of a job into a new application.
    fn begin_upload(&mut self, number: u64, conn: Conn, start: Start) {
        let spare = crate::load::spare_memory();
        let limit = start.memory_limit.map_or(spare, |m| m.min(spare));
        if start.program_len > limit {
            let why = format!(
                "the program ({} KiB) does not fit in the job's memory limit ({} KiB)",
                start.program_len >> 10,
                limit >> 10
            );
            refuse(conn, number, &why);
            return;
        }
        let pid = match app::create() {
            Ok(p) => p,
            Err(e) => {
                refuse(
                    conn,
                    number,
                    &format!("the node cannot create an application: {e}"),
                );
                return;
            }
        };
        if start.program_len > 0 {
            let staged = page_up(start.program_len).unwrap_or(u64::MAX);
            if let Err(e) = app::map(pid, STAGING, staged, kapp::PROT_READ | kapp::PROT_WRITE) {
                let _ = app::kill(pid, 9);
                refuse(
                    conn,
                    number,
                    &format!("the node cannot hold the program: {e}"),
                );
                return;
            }
        }
        let now = sys::clock_ns();
        conn.arm();
        self.pump(Upload {
            number,
            conn,
            start,
            pid,
            got: 0,
            prefix: Vec::new(),
            began_ns: now,
            last_ns: now,
        });
    }

    /// Takes what has arrived for an upload; keeps it, completes it, or
    /// drops it.
    fn pump(&mut self, mut u: Upload) {
        // At most 16 reads (256 KiB) at a time, so one fast sender cannot
        // keep the lobby from its other work.
        for _ in 0..16 {
            let progress = u.conn.read_some();
            loop {
                match u.conn.next_msg() {
                    Ok(Some(HostMsg::Program(bytes))) => {
                        if let Err(why) = u.take(&bytes) {
                            let _ = app::kill(u.pid, 9);
                            refuse(u.conn, u.number, &why);
                            return;
                        }
                    }
                    Ok(Some(HostMsg::Kill)) | Err(_) => {
                        let _ = app::kill(u.pid, 9);
                        u.conn.abort();
                        return;
                    }
                    Ok(Some(_)) => {
                        let _ = app::kill(u.pid, 9);
                        refuse(
                            u.conn,
                            u.number,
                            "protocol error: only program bytes may follow Start",
                        );
                        return;
                    }
                    Ok(None) => break,
                }
                if u.got == u.start.program_len {
                    self.uploaded(u);
                    return;
                }
            }
            if u.got == u.start.program_len {
                self.uploaded(u);
                return;
            }
            if u.conn.is_closed() {
                sion_rt::println!(
                    "apm: job {}: hostd closed the connection during the upload",
                    u.number
                );
                let _ = app::kill(u.pid, 9);
                return;
            }
            if !progress {
                break;
            }
        }
        u.conn.arm();
        self.uploads.push(u);
    }

    /// A complete upload: ready, unless a job now runs and the submitter
    /// would rather go elsewhere.
    fn uploaded(&mut self, mut u: Upload) {
        if !self.fits(u.start.exclusive) && !u.start.queue {
            let _ = app::kill(u.pid, 9);
            self.stats.busy += 1;
            u.conn.send_now(&NodeMsg::Busy {
                reason: format!("{} (it started while the program arrived)", self.no_room()),
            });
            return;
        }
        let mut program = SparseFile::new(u.start.program_len);
        program.add(0, core::mem::take(&mut u.prefix));
        self.ready.push_back(Ready {
            number: u.number,
            conn: u.conn,
            start: u.start,
            pid: u.pid,
            program,
        });
    }

    /// Drops connections past their deadlines.
    fn expire(&mut self, now: u64) {
        while let Some(i) = self.arriving.iter().position(|a| now >= a.deadline_ns) {
            let a = self.arriving.remove(i).expect("found above");
            self.stats.idle += 1;
            sion_rt::println!(
                "apm: connection {} dropped: no job within {} s",
                a.number,
                START_TIMEOUT_NS / 1_000_000_000
            );
            a.conn.abort();
        }
        while let Some(i) = self.uploads.iter().position(|u| now >= u.deadline()) {
            let u = self.uploads.swap_remove(i);
            self.stats.slow += 1;
            let _ = app::kill(u.pid, 9);
            let why = format!(
                "the program arrived too slowly: {} of {} bytes in {} s (an upload ends after a pause of {} s, or below 256 KiB/s after the first {} s)",
                u.got,
                u.start.program_len,
                (now - u.began_ns) / 1_000_000_000,
                STEP_TIMEOUT_NS / 1_000_000_000,
                UPLOAD_BASE_NS / 1_000_000_000
            );
            sion_rt::println!("apm: job {} dropped: {why}", u.number);
            // Closed, not reset, so the reason reaches a slow but honest
            // submitter (the kernel resets it if it never closes its side).
            let mut conn = u.conn;
            conn.send_now(&NodeMsg::Refused { reason: why });
        }
    }

    /// Why a job has no room now: one line for `Busy`.
    fn no_room(&self) -> String {
        if self.current.iter().any(|c| c.exclusive) {
            String::from("another job owns the node (exclusive mode)")
        } else if self.current.len() < self.slots {
            String::from("another job is running (an exclusive job needs an idle node)")
        } else if self.slots == 1 {
            String::from("another job is running")
        } else {
            format!("{} jobs run, one on each CPU", self.current.len())
        }
    }

    /// Starts the uploads of waiting jobs, in order, while they have room.
    fn promote(&mut self) {
        while self.uploads.len() < MAX_UPLOADS {
            match self.waiting.front() {
                Some(w) if self.fits(w.start.exclusive) => {}
                _ => break,
            }
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            self.begin_upload(w.number, w.conn, w.start);
        }
    }
}

impl Upload {
    /// When the upload is dropped if nothing more arrives (ns): a pause of
    /// [`STEP_TIMEOUT_NS`], or the time its bytes so far allow.
    fn deadline(&self) -> u64 {
        let pause = self.last_ns.saturating_add(STEP_TIMEOUT_NS);
        let allowed = u64::try_from((u128::from(self.got) * u128::from(NS_PER_MIB)) >> 20)
            .unwrap_or(u64::MAX);
        let rate = self
            .began_ns
            .saturating_add(UPLOAD_BASE_NS)
            .saturating_add(allowed);
        pause.min(rate)
    }

    /// Stores the next program bytes in the staging area. Errors: the reason
    /// to refuse the job.
    fn take(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.got + bytes.len() as u64 > self.start.program_len {
            return Err(String::from(
                "protocol error: more program bytes than announced",
            ));
        }
        if self.prefix.len() < PREFIX {
            let n = (PREFIX - self.prefix.len()).min(bytes.len());
            self.prefix.extend_from_slice(&bytes[..n]);
        }
        app::write(self.pid, STAGING + self.got, bytes)
            .map_err(|e| format!("the node cannot hold the program: {e}"))?;
        self.got += bytes.len() as u64;
        if !bytes.is_empty() {
            self.last_ns = sys::clock_ns();
        }
        Ok(())
    }
}

/// The job's command line as the submitter gave it, shortened to about 80
/// characters (the log's form).
fn program_name(start: &Start) -> String {
    crate::load::command_line(&start.argv)
}

/// Sends `Refused` and logs it; the connection then closes.
pub fn refuse(mut conn: Conn, number: u64, why: &str) {
    sion_rt::println!("apm: job {number} refused: {why}");
    conn.send_now(&NodeMsg::Refused {
        reason: why.to_string(),
    });
}
