//! What this node provides to a running job's applications
//! ([`sion_app_mgr::process::Node`]): their memory and mappings through the
//! kernel's application calls, their system calls as kernel messages, the
//! connection to `hostd`, the clock and randomness.
//!
//! Several jobs run at once (one per CPU in balance mode), all served by
//! this one process: what they share — the job port's [`Lobby`], the
//! [`FileCache`] and the routing of the process's messages — is the
//! [`Hub`]. Every wait of any job goes through [`Hub::wait`], which serves
//! the job port and hands each message to the job it belongs to (by the
//! sending application, or by the connection a readable notice names), so
//! no job's event is lost while another job waits for its `hostd`.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

use sion_abi::app::{
    self as kapp, AppFault, AppRegs, LinuxSyscall, TAG_APP_EXITED, TAG_APP_FAULT, TAG_LINUX_SYSCALL,
};
use sion_abi::{MessageInfo, NO_TIMEOUT, Pid, TAG_TCP_READABLE};
use sion_app_mgr::Abi;
use sion_app_mgr::errno::Errno;
use sion_app_mgr::job::{HostMsg, NodeMsg};
use sion_app_mgr::process::{Event, Fault, FileKey, HostGone, Node, Tls, WaitEnd};
use sion_app_mgr::vm::Prot;
use sion_rt::sys::{self, app};

use crate::ThisNode;
use crate::cache::FileCache;
use crate::conn::Conn;
use crate::lobby::Lobby;
use crate::rng::Rng;

/// One job's applications as the node sees them: which are alive, and
/// their events (and its connection's readable notices) not yet served.
pub struct Apps {
    /// The job's first application (its end ends a wait for `hostd`).
    pub leader: Pid,
    /// Every application of the job that has not ended (forks add theirs).
    pub live: BTreeSet<Pid>,
    /// The kernel handle of the job's connection to `hostd`.
    pub conn: u64,
    /// Events that came and are not served yet, in order.
    pub queued: VecDeque<Event>,
    /// The first application's end was seen (it was killed from outside
    /// the job: `hostd cancel`, or it ended while the job waited for
    /// `hostd`).
    pub leader_ended: bool,
}

impl Apps {
    /// The event a kernel message from one of the job's applications is
    /// (`buf` its payload); `None` for anything else.
    fn event(&mut self, info: &MessageInfo, buf: &[u8]) -> Option<Event> {
        let pid = info.sender;
        if !self.live.contains(&pid) {
            return None;
        }
        match info.tag {
            TAG_LINUX_SYSCALL => {
                let call = LinuxSyscall::decode(buf)?;
                let abi = if call.abi == kapp::ABI_I386 {
                    Abi::I386
                } else {
                    Abi::X86_64
                };
                Some(Event::Syscall {
                    pid,
                    abi,
                    nr: call.nr,
                    args: call.args,
                })
            }
            TAG_APP_FAULT => {
                let f = AppFault::decode(buf)?;
                Some(Event::Fault(
                    pid,
                    Fault {
                        vector: f.vector,
                        error_code: f.error_code,
                        address: f.address,
                        rip: f.rip,
                        signal: f.signal as i32,
                    },
                ))
            }
            kapp::TAG_APP_INTERRUPTED => Some(Event::Interrupted(pid)),
            TAG_APP_EXITED => {
                let raw = u64::from_le_bytes(buf.get(..8)?.try_into().ok()?);
                self.live.remove(&pid);
                if pid == self.leader {
                    self.leader_ended = true;
                }
                Some(Event::Exited(pid, raw as i32))
            }
            _ => None,
        }
    }
}

/// What the jobs of this manager share: the job port, the file cache, and
/// each running job's [`Apps`] (by job number), to which [`Hub::wait`]
/// routes the process's messages.
pub struct Hub {
    /// The job port.
    pub lobby: Lobby,
    /// The node's file cache.
    pub cache: FileCache,
    /// The running jobs' applications and pending events, by job number.
    pub jobs: BTreeMap<u64, Apps>,
}

/// The [`Hub`] as every job's node holds it (one process, one thread:
/// each use borrows it only for the call, never across a job's handler).
pub type SharedHub = Rc<RefCell<Hub>>;

impl Hub {
    /// Waits once — at most `timeout_ns` (`NO_TIMEOUT`: no limit), or
    /// until the next deadline of a job-port connection — serving the job
    /// port, and queues what came for the job it belongs to. Returns that
    /// job's number; `None` if nothing came for a job (a timeout, the job
    /// port's own notices, a message of an application that has ended).
    pub fn wait(&mut self, timeout_ns: u64) -> Option<u64> {
        let mut buf = [0u8; 128];
        let deadline = if timeout_ns == NO_TIMEOUT {
            u64::MAX
        } else {
            sys::clock_ns().saturating_add(timeout_ns)
        };
        let info = match self.lobby.step(&mut buf, deadline)? {
            Ok(info) => info,
            Err(_) => return None,
        };
        if info.tag == TAG_TCP_READABLE && info.is_kernel_notice() {
            let handle = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
            let (&number, apps) = self.jobs.iter_mut().find(|(_, a)| a.conn == handle)?;
            apps.queued.push_back(Event::HostReadable);
            return Some(number);
        }
        for (&number, apps) in &mut self.jobs {
            if apps.live.contains(&info.sender) {
                let event = apps.event(&info, &buf)?;
                apps.queued.push_back(event);
                return Some(number);
            }
        }
        None
    }

    /// The next queued event of job `number`, if any.
    pub fn take_event(&mut self, number: u64) -> Option<Event> {
        self.jobs.get_mut(&number)?.queued.pop_front()
    }
}

/// The node side of one job's applications.
pub struct AppNode {
    /// The job's number (its entry in the hub's jobs).
    pub job: u64,
    /// What the jobs share.
    pub hub: SharedHub,
    /// The connection to `hostd`.
    pub conn: Conn,
    /// This node.
    pub me: Rc<ThisNode>,
    /// Random bytes.
    pub rng: Rng,
}

impl AppNode {
    /// The node side of job `job` whose first application is `pid`, talking
    /// to `hostd` over `conn`: registers the job in `hub`, so its
    /// applications' messages come to it from now on (until
    /// [`AppNode`] is dropped).
    pub fn new(job: u64, pid: Pid, conn: Conn, hub: SharedHub, me: Rc<ThisNode>, rng: Rng) -> Self {
        hub.borrow_mut().jobs.insert(
            job,
            Apps {
                leader: pid,
                live: BTreeSet::from([pid]),
                conn: conn.handle(),
                queued: VecDeque::new(),
                leader_ended: false,
            },
        );
        AppNode {
            job,
            hub,
            conn,
            me,
            rng,
        }
    }

    /// Waits once for anything (see [`Hub::wait`]), at most `timeout_ns`.
    fn wait(&mut self, timeout_ns: u64) {
        let _ = self.hub.borrow_mut().wait(timeout_ns);
    }

    /// Whether the job's first application has ended.
    fn leader_ended(&self) -> bool {
        self.hub
            .borrow()
            .jobs
            .get(&self.job)
            .is_none_or(|a| a.leader_ended)
    }
}

impl Drop for AppNode {
    fn drop(&mut self) {
        self.hub.borrow_mut().jobs.remove(&self.job);
    }
}

/// The kernel's protection bits for `prot` (pages are always readable).
fn kernel_prot(prot: Prot) -> u64 {
    let mut p = kapp::PROT_READ;
    if prot.write {
        p |= kapp::PROT_WRITE;
    }
    if prot.exec {
        p |= kapp::PROT_EXEC;
    }
    p
}

impl Node for AppNode {
    fn read(&mut self, pid: u64, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        app::read(pid, addr, buf).map_err(|_| Errno::EFAULT)
    }

    fn write(&mut self, pid: u64, addr: u64, data: &[u8]) -> Result<(), Errno> {
        app::write(pid, addr, data).map_err(|_| Errno::EFAULT)
    }

    fn map(&mut self, pid: u64, addr: u64, len: u64, prot: Prot) -> Result<(), Errno> {
        app::map(pid, addr, len, kernel_prot(prot)).map_err(|_| Errno::ENOMEM)
    }

    fn unmap(&mut self, pid: u64, addr: u64, len: u64) -> Result<(), Errno> {
        app::unmap(pid, addr, len).map_err(|_| Errno::EINVAL)
    }

    fn set_tls(&mut self, pid: u64, which: Tls, base: u64) -> Result<u64, Errno> {
        let (kind, err) = match which {
            Tls::FsBase => (kapp::TLS_FS_BASE, Errno::EPERM),
            Tls::I386Segment => (kapp::TLS_I386_SEGMENT, Errno::EINVAL),
        };
        app::set_tls(pid, kind, base).map_err(|_| err)
    }

    fn kill(&mut self, pid: u64, status: i32) {
        let _ = app::kill(pid, status as u64);
    }

    fn regs(&mut self, pid: u64) -> Result<AppRegs, Errno> {
        app::regs(pid).map_err(|_| Errno::ESRCH)
    }

    fn set_regs(&mut self, pid: u64, regs: &AppRegs) -> Result<(), Errno> {
        app::set_regs(pid, regs).map_err(|e| match e {
            sion_abi::Error::BadAddress => Errno::EFAULT,
            _ => Errno::ESRCH,
        })
    }

    fn fpu(&mut self, pid: u64) -> Result<[u8; 512], Errno> {
        app::fpu(pid).map_err(|_| Errno::ESRCH)
    }

    fn set_fpu(&mut self, pid: u64, image: &[u8; 512]) -> Result<(), Errno> {
        app::set_fpu(pid, image).map_err(|_| Errno::ESRCH)
    }

    fn cache_find(&mut self, key: &FileKey) -> Option<(u64, u64)> {
        self.hub.borrow_mut().cache.find(key)
    }

    fn cache_reserve(&mut self, key: &FileKey) -> Option<(u64, u64)> {
        let spare = crate::load::spare_memory();
        self.hub.borrow_mut().cache.reserve(key, spare)
    }

    fn cache_abandon(&mut self, key: &FileKey) {
        self.hub.borrow_mut().cache.abandon(key);
    }

    fn fork(&mut self, pid: u64, child_sp: u64, share: bool) -> Result<u64, Errno> {
        let flags = if share { kapp::FORK_SHARE_SPACE } else { 0 };
        let child = app::fork(pid, child_sp, flags).map_err(|_| Errno::ENOMEM)?;
        if let Some(apps) = self.hub.borrow_mut().jobs.get_mut(&self.job) {
            apps.live.insert(child);
        }
        Ok(child)
    }

    fn exec(&mut self, pid: u64, abi: Abi) -> Result<(), Errno> {
        let kabi = match abi {
            Abi::X86_64 => kapp::ABI_X86_64,
            Abi::I386 => kapp::ABI_I386,
        };
        app::exec(pid, kabi).map_err(|_| Errno::ENOMEM)
    }

    fn create_staging(&mut self) -> Result<u64, Errno> {
        app::create().map_err(|_| Errno::ENOMEM)
    }

    fn next_event(&mut self, deadline_ns: Option<u64>) -> Event {
        loop {
            if let Some(e) = self.hub.borrow_mut().take_event(self.job) {
                return e;
            }
            let timeout = match deadline_ns {
                None => NO_TIMEOUT,
                Some(d) => {
                    let now = sys::clock_ns();
                    if d <= now {
                        return Event::Timeout;
                    }
                    d - now
                }
            };
            self.wait(timeout);
        }
    }

    fn interrupt(&mut self, pid: u64) {
        let _ = app::interrupt(pid);
    }

    fn reply(&mut self, pid: u64, value: i64) {
        let _ = sys::reply(pid, &value.to_le_bytes());
    }

    fn yield_now(&mut self) {
        sys::yield_now();
    }

    fn clock_ns(&self) -> u64 {
        sys::clock_ns()
    }

    fn random(&mut self, buf: &mut [u8]) {
        self.rng.fill(buf);
    }

    fn node_name(&self) -> &str {
        &self.me.name
    }

    fn manager_pid(&self) -> u64 {
        sys::getpid()
    }

    fn log(&mut self, line: fmt::Arguments<'_>) {
        sion_rt::println!("{line}");
    }

    fn send(&mut self, msg: &NodeMsg) -> Result<(), HostGone> {
        let hub = &self.hub;
        self.conn
            .send(msg, |ns| {
                let _ = hub.borrow_mut().wait(ns);
            })
            .map_err(|_| HostGone)
    }

    fn recv(&mut self, deadline_ns: Option<u64>) -> Result<Option<HostMsg>, WaitEnd> {
        loop {
            match self.conn.next_msg() {
                Ok(Some(m)) => return Ok(Some(m)),
                Ok(None) => {}
                Err(_) => return Err(WaitEnd::HostGone),
            }
            if self.conn.is_closed() {
                return Err(WaitEnd::HostGone);
            }
            if self.conn.read_some() {
                continue;
            }
            if self.leader_ended() {
                return Err(WaitEnd::AppEnded);
            }
            let now = sys::clock_ns();
            let timeout = match deadline_ns {
                Some(d) if d <= now => return Ok(None),
                Some(d) => d - now,
                None => NO_TIMEOUT,
            };
            // The notice comes to the job's queue as `HostReadable` (the
            // job loop then finds nothing new, and asks for the next); the
            // applications' events are kept there too.
            self.conn.arm();
            self.wait(timeout);
        }
    }

    fn poll_host(&mut self) -> (Vec<HostMsg>, bool) {
        let msgs = self.conn.drain();
        let closed = self.conn.is_closed() || msgs.is_err();
        // The notice that led here was one-shot: ask for the next.
        self.conn.arm();
        (msgs.unwrap_or_default(), closed)
    }

    fn buffered_host(&mut self) -> Vec<HostMsg> {
        self.conn.buffered().unwrap_or_default()
    }

    fn leaving(&mut self) -> Option<alloc::string::String> {
        self.hub
            .borrow()
            .lobby
            .leaving()
            .map(|by| alloc::format!("the node leaves the group (asked by {by})"))
    }
}
