//! A running job: the application, its connection to `hostd`, and the state
//! its system calls need (address space, descriptors, pipes, stdin buffer,
//! signal bookkeeping). The message loop waits for the application's system
//! calls, its end, and the connection in one `receive`.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use sion_abi::app::{LinuxSyscall, TAG_APP_EXITED, TAG_LINUX_SYSCALL};
use sion_abi::{NO_TIMEOUT, Pid, TAG_TCP_READABLE};
use sion_app_mgr::Abi;
use sion_app_mgr::errno::Errno;
use sion_app_mgr::fd::FdTable;
use sion_app_mgr::job::{FileReply, FileRequest, HostMsg, NodeMsg, Winsize};
use sion_app_mgr::syscall::{self, Route, Syscall};
use sion_app_mgr::vm::AddressSpace;
use sion_rt::sys::{self, app};

use crate::Identity;
use crate::conn::Conn;
use crate::lobby::Lobby;
use crate::rng::Rng;

/// `SIGINT`, the status of a job killed by Ctrl-C.
pub const SIGINT: i32 = 2;
/// `SIGKILL`, the status of a job whose `hostd` went away.
pub const SIGKILL: i32 = 9;

/// Why a system call gets no answer, or its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum E {
    /// Answer `-errno`.
    Errno(Errno),
    /// Do not answer: the job is ending (exit, kill, `hostd` gone).
    Halt,
}

impl From<Errno> for E {
    fn from(e: Errno) -> Self {
        E::Errno(e)
    }
}

/// A system call's outcome: the value to return, or [`E`].
pub type Ret = Result<u64, E>;

/// What the node knows of a file `hostd` opened for the job.
#[derive(Clone, Copy, Debug)]
pub struct HostFile {
    /// The `open` flags.
    pub flags: i32,
    /// It is a directory.
    pub is_dir: bool,
}

/// Counts for the job's end-of-job log line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// System calls served.
    pub calls: u64,
    /// Of which forwarded to `hostd`.
    pub forwarded: u64,
}

/// The job.
pub struct Job<'a> {
    /// Job number on this node.
    pub number: u64,
    /// The application.
    pub pid: Pid,
    /// Its ABI.
    pub abi: Abi,
    /// The connection to `hostd`.
    pub conn: Conn,
    /// The job port, served whenever the job waits.
    pub lobby: &'a mut Lobby,
    /// This node.
    pub me: &'a Identity,
    /// Address-space bookkeeping.
    pub vm: AddressSpace,
    /// Descriptors.
    pub fds: FdTable,
    /// In-node pipe buffers by id.
    pub pipes: BTreeMap<u32, VecDeque<u8>>,
    /// Next pipe id.
    pub next_pipe: u32,
    /// Stdin bytes received and not yet read.
    pub stdin: VecDeque<u8>,
    /// `hostd`'s stdin ended.
    pub stdin_eof: bool,
    /// Files `hostd` holds open for the job, by handle.
    pub host_files: BTreeMap<u64, HostFile>,
    /// Current directory (absolute host path).
    pub cwd: Vec<u8>,
    /// The program's absolute path (what `/proc/self/exe` reads as).
    pub exe: Vec<u8>,
    /// Whether stdin, stdout, stderr are terminals.
    pub tty: [bool; 3],
    /// The submitter's terminal size.
    pub winsize: Option<Winsize>,
    /// User id the program sees.
    pub uid: u32,
    /// Group id the program sees.
    pub gid: u32,
    /// Wall-clock time at submission (ns since the epoch).
    pub realtime_ns: u64,
    /// Node clock at the job's start (ns since boot).
    pub start_ns: u64,
    /// Random bytes.
    pub rng: Rng,
    /// Next forwarded request id.
    pub next_id: u64,
    /// Set once the job is being ended (status given to `app::kill`).
    pub ending: Option<i32>,
    /// `hostd` is gone.
    pub host_gone: bool,
    /// Unknown system-call numbers already logged.
    pub unknown: BTreeSet<u64>,
    /// Recorded `rt_sigaction` handlers (kernel `struct sigaction` bytes).
    pub sigactions: BTreeMap<i32, Vec<u8>>,
    /// Recorded signal mask.
    pub sigmask: u64,
    /// Recorded alternate signal stack (`stack_t` bytes).
    pub altstack: Option<Vec<u8>>,
    /// FS base set by `arch_prctl`.
    pub fs_base: u64,
    /// Name set by `prctl(PR_SET_NAME)`.
    pub comm: [u8; 16],
    /// Size of the main stack mapping (for `RLIMIT_STACK`).
    pub stack_len: u64,
    /// The file-creation mask (`umask(2)`), reported only: `hostd` applies
    /// its own when it creates files.
    pub umask: u32,
    /// Counters.
    pub stats: Stats,
}

/// Largest single `app::read`/`app::write` (the kernel's limit is 1 MiB).
const MAX_COPY: usize = 64 * 1024;

impl Job<'_> {
    /// Runs the job to its end; returns the wait status.
    pub fn run(&mut self) -> i32 {
        self.conn.arm();
        let mut buf = [0u8; 128];
        loop {
            let info = match self.lobby.receive(&mut buf, NO_TIMEOUT) {
                Ok(i) => i,
                Err(_) => continue,
            };
            match info.tag {
                TAG_LINUX_SYSCALL if info.sender == self.pid => {
                    let Some(call) = LinuxSyscall::decode(&buf) else {
                        continue;
                    };
                    if self.ending.is_some() {
                        continue;
                    }
                    if let Some(v) = self.syscall(&call) {
                        let _ = sys::reply(self.pid, &v.to_le_bytes());
                    }
                    self.after_call();
                }
                TAG_APP_EXITED if info.sender == self.pid => {
                    let raw = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                    return raw as i32;
                }
                TAG_TCP_READABLE
                    if info.is_kernel_notice()
                        && buf[..8] == self.conn.handle().to_le_bytes()[..] =>
                {
                    self.poll_host();
                    self.conn.arm();
                }
                _ => {}
            }
        }
    }

    /// Decodes and serves one call; `None` when it must not be answered.
    fn syscall(&mut self, call: &LinuxSyscall) -> Option<i64> {
        self.stats.calls += 1;
        let abi = if call.abi == sion_abi::app::ABI_I386 {
            Abi::I386
        } else {
            Abi::X86_64
        };
        let sc = syscall::decode(abi, call.nr, call.args);
        if let Syscall::Unknown(nr) = sc {
            if self.unknown.insert(nr) {
                sion_rt::println!(
                    "apm: job {}: unsupported {abi} system call {} ({nr}) -> ENOSYS",
                    self.number,
                    syscall::name(abi, nr).unwrap_or("?")
                );
            }
            return Some(Errno::ENOSYS.to_return());
        }
        if sc.route() == Route::Host {
            self.stats.forwarded += 1;
        }
        let r = match sc {
            Syscall::Read { .. }
            | Syscall::Write { .. }
            | Syscall::Readv { .. }
            | Syscall::Writev { .. }
            | Syscall::Pread64 { .. }
            | Syscall::Pwrite64 { .. }
            | Syscall::Close { .. }
            | Syscall::Lseek { .. }
            | Syscall::Llseek { .. }
            | Syscall::Ioctl { .. }
            | Syscall::Fcntl { .. }
            | Syscall::Dup { .. }
            | Syscall::Dup2 { .. }
            | Syscall::Dup3 { .. }
            | Syscall::Pipe { .. }
            | Syscall::Sendfile { .. }
            | Syscall::Getdents64 { .. }
            | Syscall::Ftruncate { .. }
            | Syscall::Fstat { .. } => self.io_call(sc),
            Syscall::Open { .. }
            | Syscall::Openat { .. }
            | Syscall::Stat { .. }
            | Syscall::Lstat { .. }
            | Syscall::Fstatat { .. }
            | Syscall::Statx { .. }
            | Syscall::Access { .. }
            | Syscall::Faccessat { .. }
            | Syscall::Readlink { .. }
            | Syscall::Readlinkat { .. }
            | Syscall::Mkdir { .. }
            | Syscall::Mkdirat { .. }
            | Syscall::Unlink { .. }
            | Syscall::Unlinkat { .. }
            | Syscall::Rename { .. }
            | Syscall::Renameat { .. }
            | Syscall::Chdir { .. }
            | Syscall::Getcwd { .. } => self.path_call(sc),
            _ => self.misc_call(sc),
        };
        match r {
            Ok(v) => Some(v as i64),
            Err(E::Errno(e)) => Some(e.to_return()),
            Err(E::Halt) => None,
        }
    }

    // ---- the connection ----

    /// Ends the application with wait status `status` (once).
    pub fn kill(&mut self, status: i32) {
        if self.ending.is_none() {
            self.ending = Some(status);
            let _ = app::kill(self.pid, status as u64);
        }
    }

    /// `hostd` is gone: kill the job.
    fn host_lost(&mut self) -> E {
        if !self.host_gone {
            self.host_gone = true;
            sion_rt::println!("apm: job {}: hostd went away; killing the job", self.number);
        }
        self.kill(SIGKILL);
        E::Halt
    }

    /// Handles a message that came while nothing in particular was awaited.
    fn on_host_msg(&mut self, msg: HostMsg) {
        match msg {
            HostMsg::Stdin(bytes) => self.stdin.extend(bytes),
            HostMsg::StdinEof => self.stdin_eof = true,
            HostMsg::Kill => {
                sion_rt::println!("apm: job {}: killed by its submitter", self.number);
                self.kill(SIGINT);
            }
            _ => {}
        }
    }

    /// Reads what `hostd` sent without waiting.
    fn poll_host(&mut self) {
        match self.conn.drain() {
            Ok(msgs) => {
                for m in msgs {
                    self.on_host_msg(m);
                }
                if self.conn.is_closed() {
                    self.host_lost();
                }
            }
            Err(_) => {
                self.host_lost();
            }
        }
    }

    /// Handles messages already received (after a blocking wait).
    fn after_call(&mut self) {
        if let Ok(msgs) = self.conn.buffered() {
            for m in msgs {
                self.on_host_msg(m);
            }
        }
    }

    /// Sends a message to `hostd`. Errors: [`E::Halt`] if it is gone.
    pub fn send(&mut self, msg: &NodeMsg) -> Result<(), E> {
        if self.host_gone {
            return Err(E::Halt);
        }
        self.conn
            .send(msg, self.lobby)
            .map_err(|_| self.host_lost())
    }

    /// Forwards a file request and waits for its answer.
    pub fn host_call(&mut self, request: FileRequest) -> Result<FileReply, E> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&NodeMsg::File { id, request })?;
        loop {
            match self.conn.recv(self.lobby, NO_TIMEOUT) {
                Ok(HostMsg::FileReply(r)) if r.id == id => return Ok(r),
                Ok(m) => {
                    self.on_host_msg(m);
                    if self.ending.is_some() {
                        return Err(E::Halt);
                    }
                }
                Err(_) => return Err(self.host_lost()),
            }
        }
    }

    /// A forwarded request's value, or its error.
    pub fn host_value(&mut self, request: FileRequest) -> Result<(u64, Vec<u8>), E> {
        let r = self.host_call(request)?;
        if r.result < 0 {
            return Err(Errno::from_return(r.result).unwrap_or(Errno::EIO).into());
        }
        Ok((r.result as u64, r.data))
    }

    /// Waits until stdin has bytes or has ended (asking `hostd` for up to
    /// `max` bytes).
    pub fn wait_stdin(&mut self, max: u64) -> Result<(), E> {
        if !self.stdin.is_empty() || self.stdin_eof {
            return Ok(());
        }
        let max = max.clamp(1, sion_app_mgr::job::CHUNK as u64) as u32;
        self.send(&NodeMsg::StdinWanted { max })?;
        while self.stdin.is_empty() && !self.stdin_eof {
            match self.conn.recv(self.lobby, NO_TIMEOUT) {
                Ok(m) => {
                    self.on_host_msg(m);
                    if self.ending.is_some() {
                        return Err(E::Halt);
                    }
                }
                Err(_) => return Err(self.host_lost()),
            }
        }
        Ok(())
    }

    /// Sleeps until the node clock reads `deadline_ns`, still hearing
    /// `hostd` (a Kill ends the sleep and the job).
    pub fn sleep_until(&mut self, deadline_ns: u64) -> Result<(), E> {
        let mut buf = [0u8; 128];
        loop {
            let now = sys::clock_ns();
            if now >= deadline_ns {
                return Ok(());
            }
            match self.lobby.receive(&mut buf, deadline_ns - now) {
                Ok(info)
                    if info.tag == TAG_TCP_READABLE
                        && info.is_kernel_notice()
                        && buf[..8] == self.conn.handle().to_le_bytes()[..] =>
                {
                    self.poll_host();
                    self.conn.arm();
                    if self.ending.is_some() {
                        return Err(E::Halt);
                    }
                }
                Ok(_) => {}
                Err(_) => {}
            }
        }
    }

    // ---- application memory ----

    /// Reads `len` bytes of application memory at `addr`. Errors: `EFAULT`.
    pub fn read_mem(&self, addr: u64, len: u64) -> Result<Vec<u8>, E> {
        let len = usize::try_from(len).map_err(|_| Errno::EFAULT)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        let mut out = vec![0u8; len];
        for (i, chunk) in out.chunks_mut(MAX_COPY).enumerate() {
            app::read(self.pid, addr + (i * MAX_COPY) as u64, chunk).map_err(|_| Errno::EFAULT)?;
        }
        Ok(out)
    }

    /// Writes `data` into application memory at `addr`, which must be mapped
    /// writable (as the kernel checks a `copy_to_user`). Errors: `EFAULT`.
    pub fn write_mem(&self, addr: u64, data: &[u8]) -> Result<(), E> {
        self.vm.check_access(addr, data.len() as u64, true)?;
        self.load_mem(addr, data)
    }

    /// Writes `data` at `addr` whatever the page protection (a loader's
    /// write). Errors: `EFAULT` for unmapped pages.
    pub fn load_mem(&self, addr: u64, data: &[u8]) -> Result<(), E> {
        for (i, chunk) in data.chunks(MAX_COPY).enumerate() {
            app::write(self.pid, addr + (i * MAX_COPY) as u64, chunk).map_err(|_| Errno::EFAULT)?;
        }
        Ok(())
    }

    /// Checks that `[addr, addr + len)` is writable before doing I/O into it.
    pub fn check_writable(&self, addr: u64, len: u64) -> Result<(), E> {
        self.vm.check_access(addr, len, true).map_err(E::from)
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the
    /// NUL). Errors: `EFAULT`; `ENAMETOOLONG` without a NUL in `max` bytes.
    pub fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, E> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            let page_end = (at | 0xfff) + 1;
            let n = ((page_end - at) as usize).min(max - out.len());
            let mut chunk = vec![0u8; n];
            app::read(self.pid, at, &mut chunk).map_err(|_| Errno::EFAULT)?;
            if let Some(nul) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
            at += n as u64;
        }
        Err(Errno::ENAMETOOLONG.into())
    }
}
