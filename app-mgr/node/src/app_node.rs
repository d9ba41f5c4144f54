//! What this node provides to one running application
//! ([`sion_app_mgr::process::Node`]): its memory and mappings through the
//! kernel's application calls, its system calls as kernel messages, the
//! connection to `hostd`, the clock and randomness. Every wait also serves the
//! job port through the [`Lobby`].

use alloc::vec::Vec;
use core::fmt;

use sion_abi::app::{
    self as kapp, AppFault, AppRegs, LinuxSyscall, TAG_APP_EXITED, TAG_APP_FAULT, TAG_LINUX_SYSCALL,
};
use sion_abi::{NO_TIMEOUT, Pid, TAG_TCP_READABLE};
use sion_app_mgr::Abi;
use sion_app_mgr::errno::Errno;
use sion_app_mgr::job::{HostMsg, NodeMsg};
use sion_app_mgr::process::{Event, Fault, HostGone, Node, Tls, WaitEnd};
use sion_app_mgr::vm::Prot;
use sion_rt::sys::{self, app};

use crate::ThisNode;
use crate::conn::Conn;
use crate::lobby::Lobby;
use crate::rng::Rng;

/// The node side of one application.
pub struct AppNode<'a> {
    /// The application.
    pub pid: Pid,
    /// The connection to `hostd`.
    pub conn: Conn,
    /// The job port, served whenever the application's manager waits.
    pub lobby: &'a mut Lobby,
    /// This node.
    pub me: &'a ThisNode,
    /// Random bytes.
    pub rng: Rng,
    /// The application's end, seen while waiting for `hostd` (it was
    /// killed from outside the job: `hostd cancel`).
    pub exited: Option<i32>,
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
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        app::read(self.pid, addr, buf).map_err(|_| Errno::EFAULT)
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        app::write(self.pid, addr, data).map_err(|_| Errno::EFAULT)
    }

    fn map(&mut self, addr: u64, len: u64, prot: Prot) -> Result<(), Errno> {
        app::map(self.pid, addr, len, kernel_prot(prot)).map_err(|_| Errno::ENOMEM)
    }

    fn unmap(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        app::unmap(self.pid, addr, len).map_err(|_| Errno::EINVAL)
    }

    fn set_tls(&mut self, which: Tls, base: u64) -> Result<u64, Errno> {
        let (kind, err) = match which {
            Tls::FsBase => (kapp::TLS_FS_BASE, Errno::EPERM),
            Tls::I386Segment => (kapp::TLS_I386_SEGMENT, Errno::EINVAL),
        };
        app::set_tls(self.pid, kind, base).map_err(|_| err)
    }

    fn kill(&mut self, status: i32) {
        let _ = app::kill(self.pid, status as u64);
    }

    fn regs(&mut self) -> Result<AppRegs, Errno> {
        app::regs(self.pid).map_err(|_| Errno::ESRCH)
    }

    fn set_regs(&mut self, regs: &AppRegs) -> Result<(), Errno> {
        app::set_regs(self.pid, regs).map_err(|e| match e {
            sion_abi::Error::BadAddress => Errno::EFAULT,
            _ => Errno::ESRCH,
        })
    }

    fn next_event(&mut self, deadline_ns: Option<u64>) -> Event {
        if let Some(status) = self.exited.take() {
            return Event::Exited(status);
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
            match info.tag {
                TAG_LINUX_SYSCALL if info.sender == self.pid => {
                    let Some(call) = LinuxSyscall::decode(&buf) else {
                        continue;
                    };
                    let abi = if call.abi == kapp::ABI_I386 {
                        Abi::I386
                    } else {
                        Abi::X86_64
                    };
                    return Event::Syscall {
                        abi,
                        nr: call.nr,
                        args: call.args,
                    };
                }
                TAG_APP_FAULT if info.sender == self.pid => {
                    let Some(f) = AppFault::decode(&buf) else {
                        continue;
                    };
                    return Event::Fault(Fault {
                        vector: f.vector,
                        error_code: f.error_code,
                        address: f.address,
                        rip: f.rip,
                        signal: f.signal as i32,
                    });
                }
                kapp::TAG_APP_INTERRUPTED if info.sender == self.pid => {
                    return Event::Interrupted;
                }
                TAG_APP_EXITED if info.sender == self.pid => {
                    let raw = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                    return Event::Exited(raw as i32);
                }
                TAG_TCP_READABLE
                    if info.is_kernel_notice()
                        && buf[..8] == self.conn.handle().to_le_bytes()[..] =>
                {
                    return Event::HostReadable;
                }
                _ => {}
            }
        }
    }

    fn interrupt(&mut self) {
        let _ = app::interrupt(self.pid);
    }

    fn reply(&mut self, value: i64) {
        let _ = sys::reply(self.pid, &value.to_le_bytes());
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
        self.conn.send(msg, self.lobby).map_err(|_| HostGone)
    }

    fn recv(&mut self, deadline_ns: Option<u64>) -> Result<Option<HostMsg>, WaitEnd> {
        let mut notice = [0u8; 64];
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
            if self.exited.is_some() {
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
            // Any wake-up leads to another look; the application's end is
            // kept for the job loop.
            if let Ok(info) = self.lobby.receive(&mut notice, timeout)
                && info.tag == TAG_APP_EXITED
                && info.sender == self.pid
            {
                let raw = u64::from_le_bytes(notice[..8].try_into().unwrap_or([0; 8]));
                self.exited = Some(raw as i32);
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
}
