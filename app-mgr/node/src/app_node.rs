//! What this node provides to a running job's applications
//! ([`sion_app_mgr::process::Node`]): their memory and mappings through the
//! kernel's application calls, their system calls as kernel messages, the
//! connection to `hostd`, the clock and randomness. Every wait also serves the
//! job port through the [`Lobby`].

use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;
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

/// The job's applications as the node sees them: which are alive, and the
/// events of theirs that came while the manager waited for something else.
pub struct Apps {
    /// The job's first application (its end ends a wait for `hostd`).
    pub leader: Pid,
    /// Every application of the job that has not ended (forks add theirs).
    pub live: BTreeSet<Pid>,
    /// Their events that came while waiting for `hostd`, in order.
    pub queued: VecDeque<Event>,
    /// The first application's end was seen while waiting for `hostd`
    /// (it was killed from outside the job: `hostd cancel`).
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

    /// Keeps the event a message received during another wait is, for
    /// [`Node::next_event`]: none is lost.
    fn keep(&mut self, info: &MessageInfo, buf: &[u8]) {
        if let Some(e) = self.event(info, buf) {
            self.queued.push_back(e);
        }
    }
}

/// The node side of one job's applications.
pub struct AppNode<'a> {
    /// The job's applications.
    pub apps: Apps,
    /// The connection to `hostd`.
    pub conn: Conn,
    /// The job port, served whenever the application's manager waits.
    pub lobby: &'a mut Lobby,
    /// This node.
    pub me: &'a ThisNode,
    /// Random bytes.
    pub rng: Rng,
    /// The node's file cache.
    pub cache: &'a mut FileCache,
}

impl<'a> AppNode<'a> {
    /// The node side of a job whose first application is `pid`.
    pub fn new(
        pid: Pid,
        conn: Conn,
        lobby: &'a mut Lobby,
        me: &'a ThisNode,
        rng: Rng,
        cache: &'a mut FileCache,
    ) -> Self {
        AppNode {
            cache,
            apps: Apps {
                leader: pid,
                live: BTreeSet::from([pid]),
                queued: VecDeque::new(),
                leader_ended: false,
            },
            conn,
            lobby,
            me,
            rng,
        }
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

impl Node for AppNode<'_> {
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
        self.cache.find(key)
    }

    fn cache_reserve(&mut self, key: &FileKey) -> Option<(u64, u64)> {
        self.cache.reserve(key, crate::load::spare_memory())
    }

    fn cache_abandon(&mut self, key: &FileKey) {
        self.cache.abandon(key);
    }

    fn fork(&mut self, pid: u64, child_sp: u64, share: bool) -> Result<u64, Errno> {
        let flags = if share { kapp::FORK_SHARE_SPACE } else { 0 };
        let child = app::fork(pid, child_sp, flags).map_err(|_| Errno::ENOMEM)?;
        self.apps.live.insert(child);
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
        if let Some(e) = self.apps.queued.pop_front() {
            return e;
        }
        let mut buf = [0u8; 128];
        loop {
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
            let info = match self.lobby.receive(&mut buf, timeout) {
                Ok(info) => info,
                Err(sion_abi::Error::TimedOut) if deadline_ns.is_some() => return Event::Timeout,
                Err(_) => continue,
            };
            if info.tag == TAG_TCP_READABLE
                && info.is_kernel_notice()
                && buf[..8] == self.conn.handle().to_le_bytes()[..]
            {
                return Event::HostReadable;
            }
            if let Some(e) = self.apps.event(&info, &buf) {
                return e;
            }
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
        let apps = &mut self.apps;
        self.conn
            .send(msg, self.lobby, |info, buf| apps.keep(info, buf))
            .map_err(|_| HostGone)
    }

    fn recv(&mut self, deadline_ns: Option<u64>) -> Result<Option<HostMsg>, WaitEnd> {
        let mut notice = [0u8; 128];
        let mut armed = false;
        loop {
            match self.conn.next_msg() {
                Ok(Some(m)) => {
                    if armed {
                        // The wait below may have taken the job loop's notice.
                        self.conn.arm();
                    }
                    return Ok(Some(m));
                }
                Ok(None) => {}
                Err(_) => return Err(WaitEnd::HostGone),
            }
            if self.conn.is_closed() {
                return Err(WaitEnd::HostGone);
            }
            if self.conn.read_some() {
                continue;
            }
            if self.apps.leader_ended {
                return Err(WaitEnd::AppEnded);
            }
            let now = sys::clock_ns();
            let timeout = match deadline_ns {
                Some(d) if d <= now => return Ok(None),
                Some(d) => d - now,
                None => NO_TIMEOUT,
            };
            self.conn.arm();
            armed = true;
            // Any wake-up leads to another look; the applications' events
            // are kept for the job loop.
            if let Ok(info) = self.lobby.receive(&mut notice, timeout) {
                self.apps.keep(&info, &notice);
            }
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
        self.lobby
            .leaving()
            .map(|by| alloc::format!("the node leaves the group (asked by {by})"))
    }
}
