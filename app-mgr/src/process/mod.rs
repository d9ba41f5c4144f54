//! A running Linux program as the App-Program Manager keeps it, and the
//! serving of its system calls, behind the [`Node`] trait for what the node
//! provides (sans-IO, as foca's `Runtime` or virtio-drivers' `Hal`).
//!
//! A [`Process`] holds what Linux keeps for a process that SiON serves outside
//! the kernel (docs/ARCHITECTURE.md "Where the design goes next"): the address-space bookkeeping, the
//! descriptor table, in-node pipes, the current directory, credentials,
//! signal dispositions. Its system calls are served by the handlers of
//! [`crate::syscall`]'s table, which use the helpers here (memory, the
//! connection to `hostd`). Whatever touches the world goes through [`Node`]: application memory and
//! mappings (the kernel's `app_*` calls on a node), the connection to the
//! submitting `hostd`, the clock and randomness. The node process implements
//! it with `sion-rt`; host tests implement it with fake memory and a fake
//! `hostd`.

#[cfg(any(test, feature = "fake-node"))]
pub mod fake;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use sion_abi::app::AppRegs;

use crate::Abi;
use crate::errno::Errno;
use crate::exit::Signal;
use crate::fd::FdTable;
use crate::job::{FileReply, FileRequest, HostMsg, NodeMsg, Winsize};
use crate::syscall;
use crate::vm::{AddressSpace, Prot};

/// The wait status of a job killed by Ctrl-C (`SIGINT`).
const KILLED_BY_USER: sion_abi::WaitStatus = sion_abi::WaitStatus::Signaled(Signal::SIGINT);
/// The wait status of a job whose `hostd` went away (`SIGKILL`).
const KILLED_HOST_GONE: sion_abi::WaitStatus = sion_abi::WaitStatus::Signaled(Signal::SIGKILL);

/// Largest single memory copy asked of the node (the kernel's limit is 1 MiB).
const MAX_COPY: usize = 64 * 1024;

/// The submitting `hostd` is gone (connection closed or broken).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostGone;

/// Why [`Node::recv`] stopped waiting without a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitEnd {
    /// `hostd` is gone.
    HostGone,
    /// The application ended meanwhile (killed from outside the job, e.g.
    /// `hostd cancel`); [`Node::next_event`] reports its end next.
    AppEnded,
}

/// Which thread-local-storage register [`Node::set_tls`] sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// The x86_64 FS base (`arch_prctl(ARCH_SET_FS)`).
    FsBase,
    /// An i386 TLS segment (`set_thread_area(2)`); the node answers its GDT
    /// entry number.
    I386Segment,
}

/// What happened next for the application (see [`Node::next_event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The application made a Linux system call and waits for its answer
    /// ([`Node::reply`]).
    Syscall {
        /// Its ABI (`int 0x80`: i386; `syscall`: x86_64).
        abi: Abi,
        /// The system-call number.
        nr: u64,
        /// The six argument registers.
        args: [u64; 6],
    },
    /// `hostd` sent something: read it with [`Node::poll_host`].
    HostReadable,
    /// The application stopped on a CPU fault and waits to be resumed
    /// (with new registers, [`Node::set_regs`], then [`Node::reply`]) or
    /// killed.
    Fault(Fault),
    /// The application stopped at a timer tick because [`Node::interrupt`]
    /// asked, and waits to be resumed ([`Node::reply`], after new registers
    /// to enter a signal handler, or as it was).
    Interrupted,
    /// The deadline given to [`Node::next_event`] passed (a timer may be due).
    Timeout,
    /// The application ended with this wait status (`wait(2)`).
    Exited(i32),
}

/// A CPU fault of the application (the kernel's `sion_abi::app::AppFault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The exception vector (0 divide error, 1 debug, 3 breakpoint, 6 invalid
    /// opcode, 13 general protection, 14 page fault, …; Intel SDM Vol. 3
    /// §6.3.1).
    pub vector: u64,
    /// The CPU's error code (page fault: bit 0 protection violation, bit 1
    /// write, bit 2 user).
    pub error_code: u64,
    /// The faulting address of a page fault (`cr2`), else 0.
    pub address: u64,
    /// The faulting instruction.
    pub rip: u64,
    /// The Linux signal for it.
    pub signal: i32,
}

/// What the node provides to a [`Process`]: the application's memory and
/// mappings, its scheduling, the connection to `hostd`, time and randomness.
/// Memory errors are `EFAULT`, mapping errors `ENOMEM`.
pub trait Node {
    /// Reads application memory at `addr` into `buf`. Errors: `EFAULT`.
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Errno>;
    /// Writes `data` into application memory at `addr`, whatever the page
    /// protection (a loader's write). Errors: `EFAULT`.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno>;
    /// Maps `[addr, addr + len)` with `prot` (fresh pages are zero; pages
    /// already mapped keep their data and get `prot`). Errors: `ENOMEM`.
    fn map(&mut self, addr: u64, len: u64, prot: Prot) -> Result<(), Errno>;
    /// Unmaps `[addr, addr + len)`. Errors: `EINVAL`.
    fn unmap(&mut self, addr: u64, len: u64) -> Result<(), Errno>;
    /// Sets a TLS register of the application; returns the GDT entry for
    /// [`Tls::I386Segment`]. Errors: `EINVAL`, `EPERM`.
    fn set_tls(&mut self, which: Tls, base: u64) -> Result<u64, Errno>;
    /// Ends the application with wait status `status`.
    fn kill(&mut self, status: i32);
    /// The registers of the application, stopped in a system call or a
    /// fault (as it entered it). Errors: `ESRCH` if it is not stopped.
    fn regs(&mut self) -> Result<AppRegs, Errno>;
    /// Replaces them: the next [`Node::reply`] resumes the application with
    /// these registers (and not the reply's value in `rax`). Errors:
    /// `ESRCH` if it is not stopped, `EFAULT` for a `rip`/`rsp` outside user
    /// space.
    fn set_regs(&mut self, regs: &AppRegs) -> Result<(), Errno>;
    /// Waits for the next event, at most until `deadline_ns` on
    /// [`Node::clock_ns`]'s clock (`None`: as long as it takes, never
    /// [`Event::Timeout`]); the system calls of the application arrive here.
    fn next_event(&mut self, deadline_ns: Option<u64>) -> Event;
    /// Stops the running application at its next timer tick
    /// ([`Event::Interrupted`]), so a signal can reach a program that makes
    /// no system call.
    fn interrupt(&mut self);
    /// Answers the application's pending system call with `value`.
    fn reply(&mut self, value: i64);
    /// Lets other processes of the node run (`sched_yield(2)`).
    fn yield_now(&mut self);
    /// The node's clock: nanoseconds since boot.
    fn clock_ns(&self) -> u64;
    /// Fills `buf` with random bytes.
    fn random(&mut self, buf: &mut [u8]);
    /// The node's name (`uname -n`).
    fn node_name(&self) -> &str;
    /// The pid of the App-Program Manager (the application's parent).
    fn manager_pid(&self) -> u64;
    /// Writes a line to the node's log.
    fn log(&mut self, line: fmt::Arguments<'_>);
    /// Sends a message to `hostd`. Errors: [`HostGone`].
    fn send(&mut self, msg: &NodeMsg) -> Result<(), HostGone>;
    /// The next message from `hostd`, waiting until `deadline_ns` on
    /// [`Node::clock_ns`]'s clock (`None`: as long as it takes); `Ok(None)`
    /// at the deadline. Errors: [`WaitEnd`].
    fn recv(&mut self, deadline_ns: Option<u64>) -> Result<Option<HostMsg>, WaitEnd>;
    /// Messages from `hostd` that have arrived, without waiting, and whether
    /// the connection has closed since.
    fn poll_host(&mut self) -> (Vec<HostMsg>, bool);
    /// Messages already received and decoded, without reading the
    /// connection (cheap: called after every system call).
    fn buffered_host(&mut self) -> Vec<HostMsg>;
}

/// Why a system call gets no answer, or its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Answer `-errno`.
    Errno(Errno),
    /// Do not answer: the job is ending (exit, kill, `hostd` gone).
    Halt,
}

impl From<Errno> for CallError {
    fn from(e: Errno) -> Self {
        CallError::Errno(e)
    }
}

/// A system call's outcome: the value to return, or [`CallError`].
pub type CallResult = Result<u64, CallError>;

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

/// A running Linux program and what its system calls need.
pub struct Process<'n> {
    /// What the node provides.
    pub node: &'n mut dyn Node,
    /// Job number on this node.
    pub number: u64,
    /// The application's pid.
    pub pid: u64,
    /// Its ABI.
    pub abi: Abi,
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
    /// Next forwarded request id.
    pub next_id: u64,
    /// Set once the job is being ended (status given to [`Node::kill`]).
    pub ending: Option<i32>,
    /// `hostd` is gone.
    pub host_gone: bool,
    /// Unknown system-call numbers already logged.
    pub unknown: BTreeSet<u64>,
    /// Recorded `rt_sigaction` handlers (kernel `struct sigaction` bytes).
    pub sigactions: BTreeMap<i32, Vec<u8>>,
    /// The signal mask.
    pub sigmask: u64,
    /// The mask `rt_sigsuspend` replaced, restored when the call returns
    /// (through the handler's frame).
    pub saved_mask: Option<u64>,
    /// Pending signals (bit `n - 1` for signal `n`).
    pub pending: u64,
    /// The `siginfo_t` of each pending signal.
    pub pending_info: BTreeMap<i32, crate::sigframe::SigInfo>,
    /// The real-time interval timer (`alarm`, `setitimer(ITIMER_REAL)`): when
    /// it fires next (node clock, ns) and its interval (ns, 0: once).
    pub itimer_real: Option<(u64, u64)>,
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

impl<'n> Process<'n> {
    /// A process about to start, served through `node`: job `number`,
    /// application `pid` of `abi` with address space `vm`. The rest (cwd,
    /// exe, terminal facts, ids, wall-clock time) starts empty or zero; the
    /// loader sets it from the job's `Start`.
    pub fn new(
        node: &'n mut dyn Node,
        number: u64,
        pid: u64,
        abi: Abi,
        vm: AddressSpace,
    ) -> Process<'n> {
        let start_ns = node.clock_ns();
        Process {
            node,
            number,
            pid,
            abi,
            vm,
            fds: FdTable::default(),
            pipes: BTreeMap::new(),
            next_pipe: 0,
            stdin: VecDeque::new(),
            stdin_eof: false,
            host_files: BTreeMap::new(),
            cwd: Vec::new(),
            exe: Vec::new(),
            tty: [false; 3],
            winsize: None,
            uid: 0,
            gid: 0,
            realtime_ns: 0,
            start_ns,
            next_id: 1,
            ending: None,
            host_gone: false,
            unknown: BTreeSet::new(),
            sigactions: BTreeMap::new(),
            sigmask: 0,
            saved_mask: None,
            pending: 0,
            pending_info: BTreeMap::new(),
            itimer_real: None,
            altstack: None,
            fs_base: 0,
            comm: [0; 16],
            stack_len: 0,
            umask: 0o022,
            stats: Stats::default(),
        }
    }

    /// Serves the application until it ends; returns its wait status.
    pub fn run(&mut self) -> i32 {
        loop {
            let timer = self.itimer_real.map(|(deadline, _)| deadline);
            match self.node.next_event(timer) {
                Event::Syscall { abi, nr, args } => {
                    if self.ending.is_some() {
                        continue;
                    }
                    if let Some(v) = self.syscall(abi, nr, args) {
                        self.finish_call(v);
                    }
                    self.after_call();
                }
                Event::Fault(f) => {
                    if self.ending.is_none() {
                        self.on_fault(f);
                    }
                }
                Event::HostReadable => self.poll_host(),
                Event::Timeout => {
                    // A timer fired while the program computes: stop it at
                    // its next tick to deliver the signal (signal(7)).
                    self.check_timers();
                    if self.ending.is_none() && self.deliverable().is_some() {
                        self.node.interrupt();
                    }
                }
                Event::Interrupted => {
                    if self.ending.is_some() {
                        continue;
                    }
                    self.check_timers();
                    if let Some(sig) = self.deliverable()
                        && self.deliver(sig, None).is_err()
                    {
                        continue;
                    }
                    self.node.reply(0);
                }
                Event::Exited(status) => return status,
            }
        }
    }

    /// Decodes and serves one call ([`syscall::table`]); `None` when it must
    /// not be answered.
    pub fn syscall(&mut self, abi: Abi, nr: u64, args: [u64; 6]) -> Option<i64> {
        self.stats.calls += 1;
        let Some(r) = syscall::dispatch(self, abi, nr, args) else {
            if self.unknown.insert(nr) {
                let number = self.number;
                self.node.log(format_args!(
                    "apm: job {number}: unsupported {abi} system call {} ({nr}) -> ENOSYS",
                    syscall::name(abi, nr).unwrap_or("?")
                ));
            }
            return Some(syscall::NOSYS.to_return());
        };
        match r {
            Ok(v) => Some(v as i64),
            Err(CallError::Errno(e)) => Some(e.to_return()),
            Err(CallError::Halt) => None,
        }
    }

    /// Answers the application's call with `v`, first delivering a signal
    /// that became deliverable (its handler is entered on return, as Linux
    /// does on its way back to user mode; `v` is then in the frame's `rax`).
    pub fn finish_call(&mut self, v: i64) {
        self.check_timers();
        if let Some(sig) = self.deliverable()
            && self.deliver(sig, Some(v)).is_err()
        {
            return;
        }
        if let Some(m) = self.saved_mask.take() {
            self.sigmask = m;
        }
        self.node.reply(v);
    }

    /// A CPU fault: its signal goes to the program's handler when it has one
    /// and does not block the signal; otherwise the job ends with the signal
    /// (as Linux's `force_sig_fault` resets a blocked or ignored one).
    pub fn on_fault(&mut self, f: Fault) {
        use linux_raw_sys::general as g;
        let sig = f.signal;
        let (code, addr) = match f.vector {
            // SEGV_ACCERR for a protection violation (error bit 0).
            14 if f.error_code & 1 != 0 => (g::SEGV_ACCERR as i32, f.address),
            14 => (g::SEGV_MAPERR as i32, f.address),
            0 => (g::FPE_INTDIV as i32, f.rip),
            6 => (g::ILL_ILLOPN as i32, f.rip),
            1 => (g::TRAP_TRACE as i32, f.rip),
            17 => (g::BUS_ADRALN as i32, 0),
            16 | 19 => (g::FPE_FLTINV as i32, f.rip),
            _ => (g::SI_KERNEL as i32, 0),
        };
        let act = self.action(sig);
        let blocked = (1u64 << (sig - 1)) & self.sigmask != 0;
        if act.handler > 1 && !blocked {
            let info = crate::sigframe::SigInfo::new(
                self.abi,
                sig,
                code,
                crate::sigframe::Detail::Fault { addr },
            );
            let trap = (f.vector, f.error_code, f.address);
            if self.enter_handler(sig, act, info, None, trap).is_some() {
                self.node.reply(0);
                return;
            }
        }
        let number = self.number;
        let (rip, vector, error, address) = (f.rip, f.vector, f.error_code, f.address);
        self.node.log(format_args!(
            "apm: job {number}: killed by signal {sig}: exception {vector} at rip={rip:#x} (error {error:#x}, address {address:#x})"
        ));
        let status = Signal::new(sig).map_or(sig, |s| {
            if s.default_action() == crate::exit::DefaultAction::Core {
                sion_abi::WaitStatus::Signaled(s).to_raw_core() as i32
            } else {
                sion_abi::WaitStatus::Signaled(s).to_raw() as i32
            }
        });
        self.kill(status);
    }

    // ---- the connection ----

    /// Ends the application with wait status `status` (once).
    pub fn kill(&mut self, status: i32) {
        if self.ending.is_none() {
            self.ending = Some(status);
            self.node.kill(status);
        }
    }

    /// `hostd` is gone: kill the job.
    fn host_lost(&mut self) -> CallError {
        if !self.host_gone {
            self.host_gone = true;
            let number = self.number;
            self.node.log(format_args!(
                "apm: job {number}: hostd went away; killing the job"
            ));
        }
        self.kill(KILLED_HOST_GONE.to_raw() as i32);
        CallError::Halt
    }

    /// A wait for `hostd` ended without a message.
    fn wait_ended(&mut self, end: WaitEnd) -> CallError {
        match end {
            WaitEnd::HostGone => self.host_lost(),
            WaitEnd::AppEnded => {
                // Its end status comes as the next event.
                self.ending.get_or_insert(0);
                CallError::Halt
            }
        }
    }

    /// Handles a message that came while nothing in particular was awaited.
    fn on_host_msg(&mut self, msg: HostMsg) {
        match msg {
            HostMsg::Stdin(bytes) => self.stdin.extend(bytes),
            HostMsg::StdinEof => self.stdin_eof = true,
            HostMsg::Kill => {
                let number = self.number;
                self.node
                    .log(format_args!("apm: job {number}: killed by its submitter"));
                self.kill(KILLED_BY_USER.to_raw() as i32);
            }
            _ => {}
        }
    }

    /// Reads what `hostd` sent without waiting.
    pub fn poll_host(&mut self) {
        let (msgs, closed) = self.node.poll_host();
        for m in msgs {
            self.on_host_msg(m);
        }
        if closed {
            self.host_lost();
        }
    }

    /// Handles messages already received (after a blocking wait).
    fn after_call(&mut self) {
        for m in self.node.buffered_host() {
            self.on_host_msg(m);
        }
    }

    /// Sends a message to `hostd`. Errors: [`CallError::Halt`] if it is gone.
    pub fn send(&mut self, msg: &NodeMsg) -> Result<(), CallError> {
        if self.host_gone {
            return Err(CallError::Halt);
        }
        self.node.send(msg).map_err(|_| self.host_lost())
    }

    /// Forwards a file request and waits for its answer.
    pub fn host_call(&mut self, request: FileRequest) -> Result<FileReply, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&NodeMsg::File { id, request })?;
        loop {
            if let Some(r) = self.next_from_host()?
                && r.id == id
            {
                return Ok(r);
            }
        }
    }

    /// Waits for `hostd`'s next message: a file reply is returned, anything
    /// else (stdin, Kill) is handled. Errors: [`CallError::Halt`] when the
    /// job is ending or `hostd` is gone.
    fn next_from_host(&mut self) -> Result<Option<FileReply>, CallError> {
        match self.node.recv(None) {
            Ok(Some(HostMsg::FileReply(r))) => Ok(Some(r)),
            Ok(Some(m)) => {
                self.on_host_msg(m);
                if self.ending.is_some() {
                    return Err(CallError::Halt);
                }
                Ok(None)
            }
            Ok(None) => Ok(None),
            Err(end) => Err(self.wait_ended(end)),
        }
    }

    /// A forwarded request's value, or its error.
    pub fn host_value(&mut self, request: FileRequest) -> Result<(u64, Vec<u8>), CallError> {
        let r = self.host_call(request)?;
        if r.result < 0 {
            return Err(Errno::from_return(r.result).unwrap_or(Errno::EIO).into());
        }
        Ok((r.result as u64, r.data))
    }

    /// Waits until stdin has bytes or has ended (asking `hostd` for up to
    /// `max` bytes).
    pub fn wait_stdin(&mut self, max: u64) -> Result<(), CallError> {
        if !self.stdin.is_empty() || self.stdin_eof {
            return Ok(());
        }
        let max = max.clamp(1, crate::job::CHUNK as u64) as u32;
        self.send(&NodeMsg::StdinWanted { max })?;
        while self.stdin.is_empty() && !self.stdin_eof {
            // A file reply cannot come now (no request is pending).
            self.next_from_host()?;
        }
        Ok(())
    }

    /// Waits for `hostd` until the node clock reads `deadline_ns` (`None`: as
    /// long as it takes), handling what it sends. Errors:
    /// [`CallError::Halt`] when the job ends meanwhile.
    pub fn wait_host(&mut self, deadline_ns: Option<u64>) -> Result<(), CallError> {
        match self.node.recv(deadline_ns) {
            Ok(None) => Ok(()),
            Ok(Some(m)) => {
                self.on_host_msg(m);
                if self.ending.is_some() {
                    return Err(CallError::Halt);
                }
                Ok(())
            }
            Err(end) => Err(self.wait_ended(end)),
        }
    }

    /// Sleeps until the node clock reads `deadline_ns`, still hearing
    /// `hostd` (a Kill ends the sleep and the job).
    pub fn sleep_until(&mut self, deadline_ns: u64) -> Result<(), CallError> {
        loop {
            match self.node.recv(Some(deadline_ns)) {
                Ok(None) => return Ok(()),
                Ok(Some(m)) => {
                    self.on_host_msg(m);
                    if self.ending.is_some() {
                        return Err(CallError::Halt);
                    }
                }
                Err(end) => return Err(self.wait_ended(end)),
            }
        }
    }

    // ---- application memory ----

    /// Reads `len` bytes of application memory at `addr`. Errors: `EFAULT`.
    pub fn read_mem(&mut self, addr: u64, len: u64) -> Result<Vec<u8>, CallError> {
        let len = usize::try_from(len).map_err(|_| Errno::EFAULT)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        let mut out = vec![0u8; len];
        for (i, chunk) in out.chunks_mut(MAX_COPY).enumerate() {
            self.node.read(addr + (i * MAX_COPY) as u64, chunk)?;
        }
        Ok(out)
    }

    /// Writes `data` into application memory at `addr`, which must be mapped
    /// writable (as the kernel checks a `copy_to_user`). Errors: `EFAULT`.
    pub fn write_mem(&mut self, addr: u64, data: &[u8]) -> Result<(), CallError> {
        self.vm.check_access(addr, data.len() as u64, true)?;
        self.load_mem(addr, data)
    }

    /// Writes `data` at `addr` whatever the page protection (a loader's
    /// write). Errors: `EFAULT` for unmapped pages.
    pub fn load_mem(&mut self, addr: u64, data: &[u8]) -> Result<(), CallError> {
        for (i, chunk) in data.chunks(MAX_COPY).enumerate() {
            self.node.write(addr + (i * MAX_COPY) as u64, chunk)?;
        }
        Ok(())
    }

    /// Checks that `[addr, addr + len)` is writable before doing I/O into it.
    pub fn check_writable(&self, addr: u64, len: u64) -> Result<(), CallError> {
        self.vm
            .check_access(addr, len, true)
            .map_err(CallError::from)
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the
    /// NUL). Errors: `EFAULT`; `ENAMETOOLONG` without a NUL in `max` bytes.
    pub fn read_cstr(&mut self, addr: u64, max: usize) -> Result<Vec<u8>, CallError> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            let page_end = (at | 0xfff) + 1;
            let n = ((page_end - at) as usize).min(max - out.len());
            let mut chunk = vec![0u8; n];
            self.node.read(at, &mut chunk)?;
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
