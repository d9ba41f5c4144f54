//! A fake [`Node`] for host tests: page-granular application memory, a clock
//! that jumps to a sleep's deadline, recorded output, and a `hostd` whose file
//! requests are answered by a function the test gives (a real
//! `hostd::fileserve::FileServer` in hostd's tests, a stub here).
//!
//! Built for this crate's tests and, with the `fake-node` feature, for other
//! crates' tests.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::{Event, HostGone, Node, Tls, WaitEnd};
use crate::errno::Errno;
use crate::job::{FileReply, FileRequest, HostMsg, NodeMsg};
use crate::vm::Prot;
use sion_abi::app::AppRegs;

const PAGE: u64 = 4096;

/// Answers a forwarded file request (`id`, request) as `hostd` would.
pub type FileServe = Box<dyn FnMut(u64, FileRequest) -> FileReply>;

/// One application's memory: pages by page number, with their protection.
pub type Pages = BTreeMap<u64, (Box<[u8; PAGE as usize]>, Prot)>;

/// The fake node.
pub struct FakeNode {
    /// The first application's mapped pages.
    pub pages: Pages,
    /// The pages of applications made by [`Node::fork`] and
    /// [`Node::create_staging`], by pid (every other pid is the first
    /// application).
    pub spaces: BTreeMap<u64, Pages>,
    /// Threads made by [`Node::fork`] with `share`: thread → the
    /// application whose memory it shares.
    pub threads: BTreeMap<u64, u64>,
    /// The next pid [`Node::fork`] or [`Node::create_staging`] gives.
    pub next_pid: u64,
    /// Every `kill`: pid and wait status.
    pub kills: Vec<(u64, i32)>,
    /// Every `reply`: pid and value.
    pub replied: Vec<(u64, i64)>,
    /// Every `exec`: pid and ABI.
    pub execs: Vec<(u64, crate::Abi)>,
    /// FPU images set by [`Node::set_fpu`], by pid (others read as reset).
    pub fpu: BTreeMap<u64, [u8; 512]>,
    /// Messages sent to `hostd`, in order (file requests included).
    pub sent: Vec<NodeMsg>,
    /// Messages `hostd` will send, in order (stdin, Kill, ...).
    pub inbox: VecDeque<HostMsg>,
    /// Serves file requests; `None`: `hostd` is gone once the inbox is empty.
    pub files: Option<FileServe>,
    /// The clock (ns since boot).
    pub now_ns: u64,
    /// The wait status given to `kill`, if any.
    pub killed: Option<i32>,
    /// TLS registers set: (which, base).
    pub tls: Vec<(Tls, u64)>,
    /// Log lines.
    pub log: Vec<String>,
    /// Times `yield_now` was called.
    pub yields: u64,
    /// Events [`Node::next_event`] returns, in order; the first
    /// application's `Exited(0)` when empty.
    pub events: VecDeque<Event>,
    /// Values given to [`Node::reply`].
    pub replies: Vec<i64>,
    /// Interrupts asked for and not yet given as [`Event::Interrupted`].
    pub interrupts: u32,
    /// Interrupts asked for in all.
    pub interrupted: u32,
    /// The application's registers (what [`Node::regs`] reads).
    pub regs: AppRegs,
    /// Registers given to [`Node::set_regs`], in order.
    pub set_regs: Vec<AppRegs>,
    /// The pid of the first application (what the events that end a run
    /// name).
    pub first_pid: u64,
    /// What [`Node::leaving`] says.
    pub leaving: Option<String>,
}

impl Default for FakeNode {
    fn default() -> Self {
        FakeNode {
            pages: BTreeMap::new(),
            spaces: BTreeMap::new(),
            threads: BTreeMap::new(),
            next_pid: 100,
            kills: Vec::new(),
            replied: Vec::new(),
            execs: Vec::new(),
            fpu: BTreeMap::new(),
            sent: Vec::new(),
            inbox: VecDeque::new(),
            files: None,
            now_ns: 1_000_000_000,
            killed: None,
            tls: Vec::new(),
            log: Vec::new(),
            yields: 0,
            events: VecDeque::new(),
            replies: Vec::new(),
            interrupts: 0,
            interrupted: 0,
            regs: AppRegs::default(),
            set_regs: Vec::new(),
            first_pid: 1,
            leaving: None,
        }
    }
}

impl FakeNode {
    /// What the program wrote to its stdout.
    pub fn stdout(&self) -> Vec<u8> {
        self.sent
            .iter()
            .filter_map(|m| match m {
                NodeMsg::Stdout(b) => Some(b.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    /// The file requests forwarded to `hostd`.
    pub fn file_requests(&self) -> Vec<&FileRequest> {
        self.sent
            .iter()
            .filter_map(|m| match m {
                NodeMsg::File { request, .. } => Some(request),
                _ => None,
            })
            .collect()
    }

    /// Whose memory application `pid` uses (a thread shares its process's).
    fn owner(&self, pid: u64) -> u64 {
        self.threads.get(&pid).copied().unwrap_or(pid)
    }

    /// Application `pid`'s pages.
    pub fn space(&mut self, pid: u64) -> &mut Pages {
        let pid = self.owner(pid);
        if self.spaces.contains_key(&pid) {
            self.spaces.get_mut(&pid).expect("checked")
        } else {
            &mut self.pages
        }
    }

    fn page_range(addr: u64, len: u64) -> Result<(u64, u64), Errno> {
        let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
        Ok((addr / PAGE, end.div_ceil(PAGE)))
    }
}

impl Node for FakeNode {
    fn read(&mut self, pid: u64, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let pages = self.space(pid);
        for (i, b) in buf.iter_mut().enumerate() {
            let at = addr.checked_add(i as u64).ok_or(Errno::EFAULT)?;
            let (page, _) = pages.get(&(at / PAGE)).ok_or(Errno::EFAULT)?;
            *b = page[(at % PAGE) as usize];
        }
        Ok(())
    }

    fn write(&mut self, pid: u64, addr: u64, data: &[u8]) -> Result<(), Errno> {
        let pages = self.space(pid);
        for (i, b) in data.iter().enumerate() {
            let at = addr.checked_add(i as u64).ok_or(Errno::EFAULT)?;
            let (page, _) = pages.get_mut(&(at / PAGE)).ok_or(Errno::EFAULT)?;
            page[(at % PAGE) as usize] = *b;
        }
        Ok(())
    }

    fn map(&mut self, pid: u64, addr: u64, len: u64, prot: Prot) -> Result<(), Errno> {
        let (first, end) = Self::page_range(addr, len).map_err(|_| Errno::ENOMEM)?;
        let pages = self.space(pid);
        for p in first..end {
            pages
                .entry(p)
                .and_modify(|e| e.1 = prot)
                .or_insert_with(|| (Box::new([0; PAGE as usize]), prot));
        }
        Ok(())
    }

    fn unmap(&mut self, pid: u64, addr: u64, len: u64) -> Result<(), Errno> {
        let (first, end) = Self::page_range(addr, len).map_err(|_| Errno::EINVAL)?;
        self.space(pid).retain(|p, _| *p < first || *p >= end);
        Ok(())
    }

    fn set_tls(&mut self, _pid: u64, which: Tls, base: u64) -> Result<u64, Errno> {
        if which == Tls::FsBase && base >= 1 << 47 {
            return Err(Errno::EPERM);
        }
        self.tls.push((which, base));
        Ok(12)
    }

    fn kill(&mut self, pid: u64, status: i32) {
        self.kills.push((pid, status));
        if !self.spaces.contains_key(&pid) {
            self.killed.get_or_insert(status);
        }
    }

    fn regs(&mut self, _pid: u64) -> Result<AppRegs, Errno> {
        Ok(self.regs)
    }

    fn fpu(&mut self, pid: u64) -> Result<[u8; 512], Errno> {
        Ok(self.fpu.get(&pid).copied().unwrap_or_else(|| {
            let mut a = [0u8; 512];
            a[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
            a[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
            a
        }))
    }

    fn set_fpu(&mut self, pid: u64, image: &[u8; 512]) -> Result<(), Errno> {
        self.fpu.insert(pid, *image);
        Ok(())
    }

    fn cache_find(&mut self, _key: &super::FileKey) -> Option<(u64, u64)> {
        None
    }

    fn cache_reserve(&mut self, _key: &super::FileKey) -> Option<(u64, u64)> {
        None
    }

    fn cache_abandon(&mut self, _key: &super::FileKey) {}

    fn fork(&mut self, pid: u64, _child_sp: u64, share: bool) -> Result<u64, Errno> {
        let child = self.next_pid;
        self.next_pid += 1;
        if share {
            let owner = self.owner(pid);
            self.threads.insert(child, owner);
        } else {
            let copy = self.space(pid).clone();
            self.spaces.insert(child, copy);
        }
        Ok(child)
    }

    fn exec(&mut self, pid: u64, abi: crate::Abi) -> Result<(), Errno> {
        self.space(pid).clear();
        self.execs.push((pid, abi));
        Ok(())
    }

    fn create_staging(&mut self) -> Result<u64, Errno> {
        let pid = self.next_pid;
        self.next_pid += 1;
        self.spaces.insert(pid, Pages::new());
        Ok(pid)
    }

    fn set_regs(&mut self, _pid: u64, regs: &AppRegs) -> Result<(), Errno> {
        self.regs = *regs;
        self.set_regs.push(*regs);
        Ok(())
    }

    fn next_event(&mut self, deadline_ns: Option<u64>) -> Event {
        match (self.events.pop_front(), deadline_ns) {
            (Some(e), _) => e,
            // Time passes until the deadline: a timer is due.
            (None, Some(d)) if self.interrupts == 0 => {
                self.now_ns = self.now_ns.max(d);
                Event::Timeout
            }
            // Asked to stop the program: it stops at its next tick.
            (None, Some(_)) => {
                self.interrupts -= 1;
                Event::Interrupted(self.first_pid)
            }
            (None, None) if self.interrupts > 0 => {
                self.interrupts -= 1;
                Event::Interrupted(self.first_pid)
            }
            (None, None) => Event::Exited(self.first_pid, 0),
        }
    }

    fn interrupt(&mut self, _pid: u64) {
        self.interrupts += 1;
        self.interrupted += 1;
    }

    fn reply(&mut self, pid: u64, value: i64) {
        self.replied.push((pid, value));
        self.replies.push(value);
    }

    fn yield_now(&mut self) {
        self.yields += 1;
    }

    fn clock_ns(&self) -> u64 {
        self.now_ns
    }

    fn random(&mut self, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151).wrapping_add(7);
        }
    }

    fn node_name(&self) -> &str {
        "fake-node-0001"
    }

    fn manager_pid(&self) -> u64 {
        2
    }

    fn log(&mut self, line: fmt::Arguments<'_>) {
        self.log.push(alloc::format!("{line}"));
    }

    fn send(&mut self, msg: &NodeMsg) -> Result<(), HostGone> {
        if let NodeMsg::File { id, request } = msg {
            let files = self.files.as_mut().ok_or(HostGone)?;
            let reply = files(*id, request.clone());
            self.inbox.push_back(HostMsg::FileReply(reply));
        }
        self.sent.push(msg.clone());
        Ok(())
    }

    fn recv(&mut self, deadline_ns: Option<u64>) -> Result<Option<HostMsg>, WaitEnd> {
        if let Some(m) = self.inbox.pop_front() {
            return Ok(Some(m));
        }
        match deadline_ns {
            Some(d) => {
                self.now_ns = self.now_ns.max(d);
                Ok(None)
            }
            None => Err(WaitEnd::HostGone),
        }
    }

    fn poll_host(&mut self) -> (Vec<HostMsg>, bool) {
        (self.inbox.drain(..).collect(), false)
    }

    fn buffered_host(&mut self) -> Vec<HostMsg> {
        Vec::new()
    }

    fn leaving(&mut self) -> Option<String> {
        self.leaving.clone()
    }
}
