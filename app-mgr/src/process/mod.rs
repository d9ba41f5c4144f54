//! A running job — a group of Linux processes on one node — as the
//! App-Program Manager keeps it, and the serving of their system calls,
//! behind the [`Node`] trait for what the node provides (sans-IO, as foca's
//! `Runtime` or virtio-drivers' `Hal`).
//!
//! Each Linux process is a [`Task`]: what Linux keeps for a process that SiON
//! serves outside the kernel (the address-space bookkeeping, the descriptor
//! table, the current directory, credentials, signal dispositions, its
//! parent and process group). A [`Process`] is the job: its tasks, what they
//! share (pipes, the job's stdio, files `hostd` holds open, the connection),
//! and the task being served now ([`Process::task`]), which the serving loop
//! switches as each task's call comes (`fork(2)`, `wait4(2)`, `pipe(7)`,
//! `credentials(7)`). Its system calls are served by the handlers of
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
        /// The application.
        pid: u64,
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
    /// killed: its pid and the fault.
    Fault(u64, Fault),
    /// The application stopped at a timer tick because [`Node::interrupt`]
    /// asked, and waits to be resumed ([`Node::reply`], after new registers
    /// to enter a signal handler, or as it was): its pid.
    Interrupted(u64),
    /// The deadline given to [`Node::next_event`] passed (a timer may be due).
    Timeout,
    /// The application `pid` ended with this wait status (`wait(2)`).
    Exited(u64, i32),
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

/// What identifies a file's contents for the node's file cache: the
/// submitter's device and inode, size and modification time (`stat(2)`); a
/// file changed on the submitter has another key, so a cached copy is
/// never stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// Device (major, minor).
    pub dev: (u32, u32),
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (s, ns since the epoch).
    pub mtime: (i64, u32),
}

/// What the node provides to a [`Process`]: the application's memory and
/// mappings, its scheduling, the connection to `hostd`, time and randomness.
/// Memory errors are `EFAULT`, mapping errors `ENOMEM`.
pub trait Node {
    /// Reads application `pid`'s memory at `addr` into `buf`. Errors: `EFAULT`.
    fn read(&mut self, pid: u64, addr: u64, buf: &mut [u8]) -> Result<(), Errno>;
    /// Writes `data` into application memory at `addr`, whatever the page
    /// protection (a loader's write). Errors: `EFAULT`.
    fn write(&mut self, pid: u64, addr: u64, data: &[u8]) -> Result<(), Errno>;
    /// Maps `[addr, addr + len)` with `prot` (fresh pages are zero; pages
    /// already mapped keep their data and get `prot`). Errors: `ENOMEM`.
    fn map(&mut self, pid: u64, addr: u64, len: u64, prot: Prot) -> Result<(), Errno>;
    /// Unmaps `[addr, addr + len)`. Errors: `EINVAL`.
    fn unmap(&mut self, pid: u64, addr: u64, len: u64) -> Result<(), Errno>;
    /// Sets a TLS register of the application; returns the GDT entry for
    /// [`Tls::I386Segment`]. Errors: `EINVAL`, `EPERM`.
    fn set_tls(&mut self, pid: u64, which: Tls, base: u64) -> Result<u64, Errno>;
    /// Ends the application with wait status `status`.
    fn kill(&mut self, pid: u64, status: i32);
    /// The registers of the application, stopped in a system call or a
    /// fault (as it entered it). Errors: `ESRCH` if it is not stopped.
    fn regs(&mut self, pid: u64) -> Result<AppRegs, Errno>;
    /// Replaces them: the next [`Node::reply`] resumes the application with
    /// these registers (and not the reply's value in `rax`). Errors:
    /// `ESRCH` if it is not stopped, `EFAULT` for a `rip`/`rsp` outside user
    /// space.
    fn set_regs(&mut self, pid: u64, regs: &AppRegs) -> Result<(), Errno>;
    /// The FPU/SSE registers of the stopped application, as the 512-byte
    /// `fxsave` image (Intel SDM Vol. 1 Table 10-2). Errors: `ESRCH` if it
    /// is not stopped.
    fn fpu(&mut self, pid: u64) -> Result<[u8; 512], Errno>;
    /// Replaces them: what the application resumes with. Errors: `ESRCH`.
    fn set_fpu(&mut self, pid: u64, image: &[u8; 512]) -> Result<(), Errno>;
    /// A copy of application `pid` (stopped in a system call) with a copy
    /// of its memory — or, with `share`, sharing it (a thread) — stopped as
    /// if in the same call: [`Node::reply`] starts it with 0 in `rax`, on
    /// stack `child_sp` unless it is 0 (`fork(2)`, `clone(2)`). Returns its
    /// pid; its events come from [`Node::next_event`] from now on. Errors:
    /// `ENOMEM`.
    fn fork(&mut self, pid: u64, child_sp: u64, share: bool) -> Result<u64, Errno>;
    /// Application `pid` (stopped in a system call) gets an empty address
    /// space, no TLS and `abi`, for a new image (`execve(2)`); its manager
    /// then maps and fills it and sets its registers. Errors: `ENOMEM`.
    fn exec(&mut self, pid: u64, abi: Abi) -> Result<(), Errno>;
    /// A new, empty application that never runs, to stage a program file in
    /// (`execve(2)` reads the file into it before the old image is given
    /// up); ended with [`Node::kill`]. Errors: `ENOMEM`.
    fn create_staging(&mut self) -> Result<u64, Errno>;
    /// Where the node's file cache holds the contents of the file `key`:
    /// the application that holds them and the address they start at, if
    /// cached (counted as a hit or a miss).
    fn cache_find(&mut self, key: &FileKey) -> Option<(u64, u64)>;
    /// Room for `key`'s `key.size` bytes in the file cache, mapped and
    /// writable, to be filled by the caller: the application and address;
    /// `None` if the cache cannot take it (too large, no memory). The
    /// caller drops it with [`Node::cache_abandon`] if it cannot fill it.
    fn cache_reserve(&mut self, key: &FileKey) -> Option<(u64, u64)>;
    /// Forgets a reservation that could not be filled.
    fn cache_abandon(&mut self, key: &FileKey);
    /// Waits for the next event of any of the job's applications or of
    /// `hostd`, at most until `deadline_ns` on [`Node::clock_ns`]'s clock
    /// (`None`: as long as it takes, never [`Event::Timeout`]).
    fn next_event(&mut self, deadline_ns: Option<u64>) -> Event;
    /// Stops the running application at its next timer tick
    /// ([`Event::Interrupted`]), so a signal can reach a program that makes
    /// no system call.
    fn interrupt(&mut self, pid: u64);
    /// Answers the application's pending system call with `value`.
    fn reply(&mut self, pid: u64, value: i64);
    /// Lets other processes of the node run (`sched_yield(2)`).
    fn yield_now(&mut self);
    /// The node's clock: nanoseconds since boot.
    fn clock_ns(&self) -> u64;
    /// Fills `buf` with random bytes.
    fn random(&mut self, buf: &mut [u8]);
    /// The node's name (`uname -n`).
    fn node_name(&self) -> &str;
    /// The pid of the App-Program Manager (the parent of the job's first
    /// process).
    fn manager_pid(&self) -> u64;
    /// Writes a line to the node's log.
    fn log(&mut self, line: fmt::Arguments<'_>);
    /// Sends a message to `hostd`. Errors: [`HostGone`].
    fn send(&mut self, msg: &NodeMsg) -> Result<(), HostGone>;
    /// The next message from `hostd`, waiting until `deadline_ns` on
    /// [`Node::clock_ns`]'s clock (`None`: as long as it takes); `Ok(None)`
    /// at the deadline. Events of the applications that come meanwhile are
    /// kept for [`Node::next_event`]. Errors: [`WaitEnd`] (`AppEnded`: the
    /// job's first application ended).
    fn recv(&mut self, deadline_ns: Option<u64>) -> Result<Option<HostMsg>, WaitEnd>;
    /// Messages from `hostd` that have arrived, without waiting, and whether
    /// the connection has closed since.
    fn poll_host(&mut self) -> (Vec<HostMsg>, bool);
    /// Messages already received and decoded, without reading the
    /// connection (cheap: called after every system call).
    fn buffered_host(&mut self) -> Vec<HostMsg>;
    /// Why the node is leaving the group (`hostd drain`), once it is: the
    /// job is then checkpointed and moved ([`NodeMsg::Moved`]) if it can
    /// be.
    fn leaving(&mut self) -> Option<alloc::string::String> {
        None
    }
}

/// Why a system call gets no answer, or its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Answer `-errno`.
    Errno(Errno),
    /// Do not answer: the job is ending (exit, kill, `hostd` gone).
    Halt,
    /// Do not answer yet: the call waits for another task (a pipe, a child,
    /// a signal) or until the node clock reads the deadline; it is served
    /// again after each event until it answers.
    Block(Option<u64>),
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

/// A call a task made that waits ([`CallError::Block`]): served again after
/// each event until it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parked {
    /// The call's ABI.
    pub abi: Abi,
    /// Its number.
    pub nr: u64,
    /// Its argument registers.
    pub args: [u64; 6],
    /// Serve it again by then at the latest (node clock, ns).
    pub until: Option<u64>,
}

/// One Linux process of the job: what Linux keeps per process that SiON
/// serves outside the kernel. `fork(2)` copies it (with the descriptors,
/// which share their open files, and the signal dispositions); `execve(2)`
/// replaces its image.
#[derive(Clone, Debug)]
pub struct Task {
    /// Its pid (the kernel's pid of its application); for a thread, its
    /// thread id (`gettid(2)`).
    pub pid: u64,
    /// Its thread group: the pid of the process it is a thread of
    /// (`getpid(2)`); its own pid for a process's first thread.
    pub tgid: u64,
    /// `clear_child_tid` (`set_tid_address(2)`, `CLONE_CHILD_CLEARTID`): at
    /// its end 0 is written there and one waiter woken (`pthread_join`).
    pub clear_child_tid: u64,
    /// The futex it waits on (`futex(2)`), if any.
    pub futex: Option<FutexWait>,
    /// Its parent's pid; 0 for the job's first process, whose parent is the
    /// App-Program Manager (`getppid` answers the manager's pid).
    pub ppid: u64,
    /// Its process group (`setpgid(2)`).
    pub pgid: u64,
    /// Its session (`setsid(2)`).
    pub sid: u64,
    /// Its ABI.
    pub abi: Abi,
    /// Address-space bookkeeping.
    pub vm: AddressSpace,
    /// Descriptors.
    pub fds: FdTable,
    /// Current directory (absolute host path).
    pub cwd: Vec<u8>,
    /// The program's absolute path (what `/proc/self/exe` reads as).
    pub exe: Vec<u8>,
    /// User id the program sees.
    pub uid: u32,
    /// Group id the program sees.
    pub gid: u32,
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
    /// POSIX timers (`timer_create(2)`) by id.
    pub timers: BTreeMap<i32, crate::syscall::timer::PosixTimer>,
    /// FS base set by `arch_prctl`.
    pub fs_base: u64,
    /// Name set by `prctl(PR_SET_NAME)`.
    pub comm: [u8; 16],
    /// Size of the main stack mapping (for `RLIMIT_STACK`).
    pub stack_len: u64,
    /// The file-creation mask (`umask(2)`), reported only: `hostd` applies
    /// its own when it creates files.
    pub umask: u32,
    /// Set once it is being ended (status given to [`Node::kill`]).
    pub ending: Option<i32>,
    /// Its wait status once it has ended: a zombie until its parent waits.
    pub exited: Option<i32>,
    /// Its call that waits, if any.
    pub parked: Option<Parked>,
    /// The deadline of the sleep it is in (`nanosleep` served again keeps
    /// its first deadline).
    pub sleep_until: Option<u64>,
    /// The child of its `vfork(2)`: it waits until that child execs or ends.
    pub vfork_child: Option<u64>,
    /// It has replaced its image since it was forked (`execve(2)`).
    pub execed: bool,
    /// Its waiting call was interrupted by a signal and is restarted after a
    /// handler installed with `SA_RESTART` (signal(7) "Interruption of
    /// system calls").
    pub restartable: bool,
}

/// A thread's wait on a futex word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FutexWait {
    /// The word's address (in its thread group's address space).
    pub addr: u64,
    /// `FUTEX_WAIT_BITSET`'s bitset (all ones for `FUTEX_WAIT`).
    pub bitset: u32,
    /// A `FUTEX_WAKE` chose it: the wait answers 0.
    pub woken: bool,
}

impl Task {
    /// The first process of a job: application `pid` of `abi` with address
    /// space `vm`, its own process group and session.
    pub fn new(pid: u64, abi: Abi, vm: AddressSpace) -> Task {
        Task {
            pid,
            tgid: pid,
            clear_child_tid: 0,
            futex: None,
            ppid: 0,
            pgid: pid,
            sid: pid,
            abi,
            vm,
            fds: FdTable::default(),
            cwd: Vec::new(),
            exe: Vec::new(),
            uid: 0,
            gid: 0,
            sigactions: BTreeMap::new(),
            sigmask: 0,
            saved_mask: None,
            pending: 0,
            pending_info: BTreeMap::new(),
            itimer_real: None,
            altstack: None,
            timers: BTreeMap::new(),
            fs_base: 0,
            comm: [0; 16],
            stack_len: 0,
            umask: 0o022,
            ending: None,
            exited: None,
            parked: None,
            sleep_until: None,
            vfork_child: None,
            execed: false,
            restartable: false,
        }
    }

    /// The child `fork(2)` makes of it: application `pid`, with a copy of
    /// everything but its pending signals, timers and waits (`fork(2)`:
    /// "the child's set of pending signals is initially empty"; timers are
    /// not inherited).
    pub fn forked(&self, pid: u64) -> Task {
        Task {
            pid,
            tgid: pid,
            clear_child_tid: 0,
            futex: None,
            ppid: self.tgid,
            pending: 0,
            pending_info: BTreeMap::new(),
            itimer_real: None,
            timers: BTreeMap::new(),
            saved_mask: None,
            ending: None,
            exited: None,
            parked: None,
            sleep_until: None,
            vfork_child: None,
            execed: false,
            restartable: false,
            ..self.clone()
        }
    }

    /// A new thread `tid` of its thread group (`clone(2)` with `CLONE_VM`,
    /// `CLONE_THREAD`): its own signal mask and nothing pending; what the
    /// group shares stays with the thread that holds it
    /// ([`Task::swap_shared`]): the new one starts with none.
    pub fn thread(&self, tid: u64) -> Task {
        let mut t = self.forked(tid);
        t.tgid = self.tgid;
        t.ppid = self.ppid;
        t.altstack = None;
        let mut empty = Task::new(tid, self.abi, AddressSpace::new(*self.vm.layout(), 0));
        empty.fds = FdTable::new(0);
        Task::swap_shared(&mut t, &mut empty);
        t
    }

    /// A thread that is not its group's leader.
    pub fn is_thread(&self) -> bool {
        self.pid != self.tgid
    }

    /// Swaps what a thread group shares (address space, descriptors,
    /// dispositions, directory, ids, timers) between `a` and `b`: exactly
    /// one task of a group holds it — the one served now, or else the
    /// group's leader — and the others hold empty stand-ins, so sums over
    /// all tasks (open-file references, memory in use) count it once.
    pub fn swap_shared(a: &mut Task, b: &mut Task) {
        use core::mem::swap;
        swap(&mut a.vm, &mut b.vm);
        swap(&mut a.fds, &mut b.fds);
        swap(&mut a.cwd, &mut b.cwd);
        swap(&mut a.exe, &mut b.exe);
        swap(&mut a.sigactions, &mut b.sigactions);
        swap(&mut a.itimer_real, &mut b.itimer_real);
        swap(&mut a.timers, &mut b.timers);
        swap(&mut a.umask, &mut b.umask);
        swap(&mut a.stack_len, &mut b.stack_len);
    }

    /// It runs or waits (it has not ended and is not being ended).
    pub fn alive(&self) -> bool {
        self.exited.is_none() && self.ending.is_none()
    }
}

/// Most files read ahead at once (64 KiB each, in the manager's heap).
pub const READAHEAD_FILES: usize = 8;

/// Most writes sent to `hostd` without waiting for their answer
/// (write-behind); the next write waits for the oldest answer.
pub const WRITE_BEHIND_REQUESTS: usize = 32;

/// Most bytes of such writes.
pub const WRITE_BEHIND_BYTES: u64 = 1 << 20;

/// A write sent to `hostd` whose answer has not come yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteBehind {
    /// The request's id.
    pub id: u64,
    /// The file's handle.
    pub handle: u64,
    /// Bytes the program was told were written.
    pub len: u64,
}

/// The default cap on a job's processes (`hostd submit --max-procs`).
pub const DEFAULT_MAX_PROCS: usize = 64;

/// The [`Node`] a [`Process`] is served through: borrowed (a job served
/// by one loop that outlives it, and the host tests, which look at their
/// fake node afterwards) or owned (a manager that keeps several jobs side
/// by side, each with its own node).
pub enum NodeRef<'n> {
    /// Borrowed for the job's life.
    Borrowed(&'n mut dyn Node),
    /// Owned by the job, dropped with it.
    Owned(alloc::boxed::Box<dyn Node + 'n>),
}

impl<'n> core::ops::Deref for NodeRef<'n> {
    type Target = dyn Node + 'n;
    fn deref(&self) -> &Self::Target {
        match self {
            NodeRef::Borrowed(n) => &**n,
            NodeRef::Owned(n) => &**n,
        }
    }
}

impl core::ops::DerefMut for NodeRef<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            NodeRef::Borrowed(n) => &mut **n,
            NodeRef::Owned(n) => &mut **n,
        }
    }
}

/// A running job: its Linux processes ([`Task`]s), what they share, and
/// what their system calls need.
pub struct Process<'n> {
    /// What the node provides.
    pub node: NodeRef<'n>,
    /// Job number on this node.
    pub number: u64,
    /// The task being served now (the handlers' `p.task`).
    pub task: Task,
    /// The job's other tasks, by pid (zombies included, until waited for).
    pub others: BTreeMap<u64, Task>,
    /// The job's first process: its wait status is the job's.
    pub leader: u64,
    /// Most processes the job may have at once (`fork` beyond: `EAGAIN`).
    pub max_procs: usize,
    /// Processes still running when the first ended, killed then.
    pub killed_at_end: u32,
    /// Forks refused at the process cap (logged once).
    pub refused_forks: u64,
    /// In-node pipe buffers by id.
    pub pipes: BTreeMap<u32, VecDeque<u8>>,
    /// Next pipe id.
    pub next_pipe: u32,
    /// Stdin bytes received and not yet read.
    pub stdin: VecDeque<u8>,
    /// `hostd`'s stdin ended.
    pub stdin_eof: bool,
    /// Stdin bytes were asked of `hostd` and have not come yet.
    pub stdin_asked: bool,
    /// Files `hostd` holds open for the job, by handle.
    pub host_files: BTreeMap<u64, HostFile>,
    /// Bytes read ahead of the program in files opened read-only, by
    /// handle: `hostd`'s offset is that far ahead of the program's. They go
    /// back (an `lseek`) before any other call on the handle, and all of
    /// them before any call that changes a file, so the job never reads
    /// stale data of its own writes. At most [`READAHEAD_FILES`] files.
    pub readahead: BTreeMap<u64, VecDeque<u8>>,
    /// Writes sent to `hostd` and not yet answered, oldest first (at most
    /// [`WRITE_BEHIND_REQUESTS`] and [`WRITE_BEHIND_BYTES`]): `write`
    /// returns once its bytes are sent, and `hostd` answers requests in
    /// order, so every later request sees them.
    pub writes_behind: VecDeque<WriteBehind>,
    /// Per handle, the first failure of a write that went behind (an errno,
    /// `ENOSPC` for a short count): the handle's next `write`, `fsync`,
    /// `fdatasync` or `close` returns it, as Linux reports write-back errors
    /// (`fsync(2)`, `close(2)` NOTES).
    pub write_errors: BTreeMap<u64, Errno>,
    /// Whether stdin, stdout, stderr are terminals.
    pub tty: [bool; 3],
    /// The submitter's terminal size.
    pub winsize: Option<Winsize>,
    /// Wall-clock time at submission (ns since the epoch).
    pub realtime_ns: u64,
    /// Node clock at the job's start (ns since boot).
    pub start_ns: u64,
    /// Next forwarded request id.
    pub next_id: u64,
    /// `hostd` is gone.
    pub host_gone: bool,
    /// Unknown system-call numbers already logged.
    pub unknown: BTreeSet<u64>,
    /// Their names, in the order first met (for `hostd submit --verbose`).
    pub unsupported: Vec<alloc::string::String>,
    /// Counters.
    pub stats: Stats,
    /// `hostd`'s requests for checkpoints ([`crate::checkpoint`]).
    pub checkpoint: CheckpointWanted,
    /// Added to the node clock for the program's `CLOCK_MONOTONIC`: a job
    /// restored from a checkpoint continues its clock.
    pub monotonic_offset_ns: u64,
}

/// Where a checkpoint `hostd` asked for stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointWanted {
    /// One was asked for and not yet taken.
    pub wanted: bool,
    /// The task was asked to stop at its next tick for it.
    pub stop_asked: bool,
    /// The job can never be checkpointed, and `hostd` was told.
    pub refused: bool,
    /// The node is leaving the group: once the checkpoint is taken the job
    /// ends here and moves (the reason, for `hostd`).
    pub moving: Option<alloc::string::String>,
    /// Checkpoints taken.
    pub taken: u64,
}

impl<'n> Process<'n> {
    /// A job about to start, served through `node`: job `number`, its first
    /// process application `pid` of `abi` with address space `vm`. The rest
    /// (cwd, exe, terminal facts, ids, wall-clock time) starts empty or zero;
    /// the loader sets it from the job's `Start`.
    pub fn new(
        node: &'n mut dyn Node,
        number: u64,
        pid: u64,
        abi: Abi,
        vm: AddressSpace,
    ) -> Process<'n> {
        Process::with_node(NodeRef::Borrowed(node), number, pid, abi, vm)
    }

    /// As [`Process::new`], served through `node`, borrowed or owned.
    pub fn with_node(
        node: NodeRef<'n>,
        number: u64,
        pid: u64,
        abi: Abi,
        vm: AddressSpace,
    ) -> Process<'n> {
        let start_ns = node.clock_ns();
        Process {
            node,
            number,
            task: Task::new(pid, abi, vm),
            others: BTreeMap::new(),
            leader: pid,
            max_procs: DEFAULT_MAX_PROCS,
            killed_at_end: 0,
            refused_forks: 0,
            pipes: BTreeMap::new(),
            next_pipe: 0,
            stdin: VecDeque::new(),
            stdin_eof: false,
            stdin_asked: false,
            host_files: BTreeMap::new(),
            readahead: BTreeMap::new(),
            writes_behind: VecDeque::new(),
            write_errors: BTreeMap::new(),
            tty: [false; 3],
            winsize: None,
            realtime_ns: 0,
            start_ns,
            next_id: 1,
            host_gone: false,
            unknown: BTreeSet::new(),
            unsupported: Vec::new(),
            stats: Stats::default(),
            checkpoint: CheckpointWanted::default(),
            monotonic_offset_ns: 0,
        }
    }

    /// The pid of the task being served.
    pub fn pid(&self) -> u64 {
        self.task.pid
    }

    /// Makes task `pid` the one served; false if the job has no such task.
    pub fn switch_to(&mut self, pid: u64) -> bool {
        if self.task.pid == pid {
            return true;
        }
        if !self.others.contains_key(&pid) {
            return false;
        }
        // A thread's group state goes back to its leader, and comes to the
        // next thread from its leader ([`Task::swap_shared`]).
        if self.task.is_thread()
            && let Some(leader) = self.others.get_mut(&self.task.tgid)
        {
            Task::swap_shared(&mut self.task, leader);
        }
        let Some(mut next) = self.others.remove(&pid) else {
            return false;
        };
        if next.is_thread() {
            if next.tgid == self.task.pid {
                Task::swap_shared(&mut next, &mut self.task);
            } else if let Some(leader) = self.others.get_mut(&next.tgid) {
                Task::swap_shared(&mut next, leader);
            }
        }
        let old = core::mem::replace(&mut self.task, next);
        self.others.insert(old.pid, old);
        true
    }

    /// The task `pid`, whether served now or not.
    pub fn task_of(&self, pid: u64) -> Option<&Task> {
        if self.task.pid == pid {
            Some(&self.task)
        } else {
            self.others.get(&pid)
        }
    }

    /// Every task's pid, in increasing order.
    pub fn pids(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.others.keys().copied().collect();
        v.push(self.task.pid);
        v.sort_unstable();
        v
    }

    /// The tasks that have not ended.
    pub fn live_tasks(&self) -> usize {
        self.others.values().filter(|t| t.exited.is_none()).count()
            + usize::from(self.task.exited.is_none())
    }

    /// How many descriptors of all the job's tasks refer to `file` (an open
    /// file description is released when the last goes).
    pub fn references(&self, file: crate::fd::OpenFile) -> usize {
        self.task.fds.references(file)
            + self
                .others
                .values()
                .map(|t| t.fds.references(file))
                .sum::<usize>()
    }

    /// Serves the job until its first process has ended and every other
    /// has too; returns the first process's wait status.
    pub fn run(&mut self) -> i32 {
        loop {
            let deadline = self.next_deadline();
            let event = self.node.next_event(deadline);
            if let Some(status) = self.handle(event) {
                return status;
            }
        }
    }

    /// Handles one event, then serves the waiting calls again; the job's
    /// wait status once it has ended.
    pub fn handle(&mut self, event: Event) -> Option<i32> {
        match event {
            Event::Syscall { pid, abi, nr, args } => {
                if self.switch_to(pid) && self.task.ending.is_none() {
                    self.stats.calls += 1;
                    if let Some(v) = self.syscall(abi, nr, args) {
                        self.finish_call(v);
                    }
                    self.after_call();
                }
            }
            Event::Fault(pid, f) => {
                if self.switch_to(pid) && self.task.ending.is_none() {
                    self.on_fault(f);
                }
            }
            Event::HostReadable => self.poll_host(),
            Event::Timeout => self.on_timeout(),
            Event::Interrupted(pid) => {
                if self.switch_to(pid) && self.task.ending.is_none() {
                    if self.checkpoint.stop_asked {
                        self.checkpoint_now();
                    }
                    self.check_timers();
                    // A job moved away has just been ended.
                    let ended = self.task.ending.is_some()
                        || self.task.parked.is_none()
                            && self
                                .deliverable()
                                .is_some_and(|sig| self.deliver(sig, None).is_err());
                    if !ended {
                        self.node.reply(pid, 0);
                    }
                }
            }
            Event::Exited(pid, status) => {
                if let Some(status) = self.on_exit(pid, status) {
                    return Some(status);
                }
            }
        }
        self.serve_parked();
        if self.checkpoint.moving.is_none()
            && let Some(why) = self.node.leaving()
        {
            let number = self.number;
            self.node.log(format_args!(
                "apm: job {number}: {why}: checkpointing it to move it"
            ));
            if self.checkpoint.refused {
                self.node.log(format_args!(
                    "apm: job {number}: it cannot be checkpointed; it runs to its end here"
                ));
            }
            self.checkpoint.moving = Some(why);
            self.checkpoint.wanted = true;
        }
        self.ask_for_checkpoint_stop();
        None
    }

    /// A checkpoint is wanted: refuses it for good if the job can never be
    /// checkpointed, else stops the task at its next tick once it is ready
    /// ([`crate::checkpoint::ready`]).
    fn ask_for_checkpoint_stop(&mut self) {
        let c = &self.checkpoint;
        if !c.wanted || c.stop_asked || c.refused || self.host_gone {
            return;
        }
        if let Some(reason) = crate::checkpoint::never(self) {
            self.checkpoint.refused = true;
            self.checkpoint.wanted = false;
            let number = self.number;
            let here = if self.checkpoint.moving.is_some() {
                "; it runs to its end here"
            } else {
                ""
            };
            self.node.log(format_args!(
                "apm: job {number}: no checkpoint: {reason}{here}"
            ));
            let _ = self.send(&NodeMsg::Checkpoint(crate::job::CheckpointPart::Refused {
                reason,
            }));
            return;
        }
        if crate::checkpoint::ready(self) {
            self.checkpoint.stop_asked = true;
            self.node.interrupt(self.task.pid);
        }
    }

    /// The task stopped at a tick for a checkpoint: takes it, unless the job
    /// changed meanwhile (it is then asked again).
    fn checkpoint_now(&mut self) {
        self.checkpoint.stop_asked = false;
        if crate::checkpoint::never(self).is_some() || !crate::checkpoint::ready(self) {
            return;
        }
        self.checkpoint.wanted = false;
        let t0 = self.node.clock_ns();
        match self.take_checkpoint() {
            Ok(taken) => {
                self.checkpoint.taken += 1;
                let (number, n) = (self.number, self.checkpoint.taken);
                let ms = (self.node.clock_ns() - t0) / 1_000_000;
                self.node.log(format_args!(
                    "apm: job {number}: checkpoint {n}: {} KiB of memory in {} records, {ms} ms",
                    taken.bytes >> 10,
                    taken.records
                ));
                if let Some(reason) = self.checkpoint.moving.clone() {
                    // Its submitter continues it elsewhere: it ends here,
                    // and nothing more goes to hostd.
                    self.node.log(format_args!(
                        "apm: job {number}: moved to continue elsewhere"
                    ));
                    let _ = self.send(&NodeMsg::Moved { reason });
                    self.host_gone = true;
                    self.kill_job(KILLED_HOST_GONE.to_raw() as i32);
                }
            }
            Err(CallError::Errno(e)) => {
                let number = self.number;
                self.node
                    .log(format_args!("apm: job {number}: checkpoint failed: {e:?}"));
            }
            Err(_) => {}
        }
    }

    /// When the loop must look again at the latest (node clock, ns): the
    /// next timer of any task, or the deadline of a waiting call; `None`:
    /// only an event moves the job on. A loop serving the job itself (not
    /// through [`Process::run`]) hands it [`Event::Timeout`] once this has
    /// passed, as [`Node::next_event`] would.
    pub fn next_deadline(&self) -> Option<u64> {
        core::iter::once(&self.task)
            .chain(self.others.values())
            .filter(|t| t.alive())
            .flat_map(|t| {
                [
                    t.itimer_real.map(|(d, _)| d),
                    t.parked.and_then(|c| c.until),
                    t.timers.values().filter_map(|p| p.deadline).min(),
                ]
            })
            .flatten()
            .min()
    }

    /// A timer is due (or a waiting call's deadline passed): tasks with a
    /// deliverable signal that compute are stopped at their next tick to
    /// take it (signal(7)); waiting calls are served again after this.
    fn on_timeout(&mut self) {
        for pid in self.pids() {
            if !self.switch_to(pid) || !self.task.alive() {
                continue;
            }
            self.check_timers();
            if self.task.parked.is_none() && self.deliverable().is_some() {
                self.node.interrupt(pid);
            }
        }
    }

    /// Serves the waiting calls again until none answers (a pipe written
    /// lets its reader go on, whose exit lets its parent's `wait4` go on…).
    fn serve_parked(&mut self) {
        loop {
            let mut answered = false;
            for pid in self.pids() {
                if !self.switch_to(pid) {
                    continue;
                }
                let Some(call) = self.task.parked.take() else {
                    continue;
                };
                if !self.task.alive() {
                    continue;
                }
                self.check_timers();
                if let Some(v) = self.syscall(call.abi, call.nr, call.args) {
                    self.finish_call(v);
                    answered = true;
                }
            }
            if !answered {
                return;
            }
        }
    }

    /// Decodes and serves one call of the current task
    /// ([`syscall::table`]); `None` when it must not be answered (now).
    pub fn syscall(&mut self, abi: Abi, nr: u64, args: [u64; 6]) -> Option<i64> {
        let Some(r) = syscall::dispatch(self, abi, nr, args) else {
            if self.unknown.insert(nr) {
                let name = syscall::name(abi, nr).unwrap_or("?");
                self.unsupported.push(alloc::format!("{name} ({abi} {nr})"));
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
            Err(CallError::Block(until)) => {
                self.task.parked = Some(Parked {
                    abi,
                    nr,
                    args,
                    until,
                });
                None
            }
        }
    }

    /// Answers the current task's call with `v`, first delivering a signal
    /// that became deliverable (its handler is entered on return, as Linux
    /// does on its way back to user mode; `v` is then in the frame's `rax`).
    pub fn finish_call(&mut self, v: i64) {
        self.task.sleep_until = None;
        self.check_timers();
        if let Some(sig) = self.deliverable()
            && self.deliver(sig, Some(v)).is_err()
        {
            return;
        }
        self.task.restartable = false;
        if let Some(m) = self.task.saved_mask.take() {
            self.task.sigmask = m;
        }
        self.node.reply(self.task.pid, v);
    }

    /// What a call that would wait answers now: `EINTR` if a signal can be
    /// delivered (signal(7): the call is interrupted, and restarted after a
    /// handler with `SA_RESTART`), else
    /// [`CallError::Block`] until `until`.
    pub fn block(&mut self, until: Option<u64>) -> CallError {
        self.check_timers();
        if self.deliverable().is_some() {
            self.task.restartable = true;
            Errno::EINTR.into()
        } else {
            CallError::Block(until)
        }
    }

    /// A CPU fault: its signal goes to the program's handler when it has one
    /// and does not block the signal; otherwise the task ends with the signal
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
        let blocked = (1u64 << (sig - 1)) & self.task.sigmask != 0;
        if act.handler > 1 && !blocked {
            let info = crate::sigframe::SigInfo::new(
                self.task.abi,
                sig,
                code,
                crate::sigframe::Detail::Fault { addr },
            );
            let trap = (f.vector, f.error_code, f.address);
            if self.enter_handler(sig, act, info, None, trap).is_some() {
                self.node.reply(self.task.pid, 0);
                return;
            }
        }
        let number = self.number;
        let (rip, vector, error, address) = (f.rip, f.vector, f.error_code, f.address);
        let pid = self.task.pid;
        self.node.log(format_args!(
            "apm: job {number}: process {pid} killed by signal {sig}: exception {vector} at rip={rip:#x} (error {error:#x}, address {address:#x})"
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

    /// Ends the current task with wait status `status` (once).
    pub fn kill(&mut self, status: i32) {
        if self.task.ending.is_none() && self.task.exited.is_none() {
            self.task.ending = Some(status);
            self.task.parked = None;
            self.node.kill(self.task.pid, status);
        }
    }

    /// Ends every thread of the current task's process with `status`
    /// (`exit_group(2)`).
    pub fn kill_thread_group(&mut self, status: i32) {
        let (me, group) = (self.task.pid, self.task.tgid);
        let threads: Vec<u64> = self
            .others
            .values()
            .filter(|t| t.tgid == group && t.alive())
            .map(|t| t.pid)
            .collect();
        for tid in threads {
            if self.switch_to(tid) {
                self.kill(status);
            }
        }
        self.switch_to(me);
        self.kill(status);
    }

    /// Ends the job: the first process with `status`, every other process
    /// with `SIGKILL`.
    pub fn kill_job(&mut self, status: i32) {
        let me = self.task.pid;
        for pid in self.pids() {
            if self.switch_to(pid) {
                let s = if pid == self.leader {
                    status
                } else {
                    KILLED_HOST_GONE.to_raw() as i32
                };
                self.kill(s);
            }
        }
        self.switch_to(me);
    }

    /// Application `pid` ended with `status`: it becomes a zombie (or is
    /// reaped at once when its parent ignores `SIGCHLD`), its descriptors
    /// close, its children go to the job's first process, and its parent
    /// gets `SIGCHLD` (`wait(2)`, `signal(7)`). When the first process has
    /// ended, the others are killed; once none is left, returns the first
    /// process's status, the job's.
    pub fn on_exit(&mut self, pid: u64, status: i32) -> Option<i32> {
        if self.task_of(pid).is_some_and(|t| t.is_thread()) {
            self.thread_ended(pid);
            return None;
        }
        if self.switch_to(pid) && self.task.exited.is_none() {
            // Its other threads end with it.
            let group = self.task.pid;
            let threads: Vec<u64> = self
                .others
                .values()
                .filter(|t| t.tgid == group && t.alive())
                .map(|t| t.pid)
                .collect();
            for tid in threads {
                if self.switch_to(tid) {
                    self.kill(status);
                }
            }
            self.switch_to(pid);
            self.task.exited = Some(status);
            self.task.ending.get_or_insert(status);
            self.task.parked = None;
            let open: Vec<i32> = self.task.fds.iter().map(|(fd, _)| fd).collect();
            for fd in open {
                if let Ok(closed) = self.task.fds.close(fd) {
                    self.release(closed.file);
                }
            }
            let leader_alive = pid != self.leader
                && self
                    .task_of(self.leader)
                    .is_some_and(|t| t.exited.is_none());
            for t in self.others.values_mut() {
                if t.ppid == pid && !t.is_thread() {
                    t.ppid = if leader_alive { self.leader } else { 0 };
                }
            }
            let ppid = self.task.ppid;
            if pid == self.leader {
                let left: Vec<u64> = self
                    .others
                    .values()
                    .filter(|t| t.exited.is_none())
                    .map(|t| t.pid)
                    .collect();
                self.killed_at_end = left.len() as u32;
                if !left.is_empty() {
                    let number = self.number;
                    let n = left.len();
                    self.node.log(format_args!(
                        "apm: job {number}: its first process ended; killing {n} process(es) still running"
                    ));
                }
                for child in left {
                    if self.switch_to(child) {
                        // Killed even if already marked as ending: the mark
                        // alone ends nothing (a task whose call was given up
                        // keeps running until the kernel ends it).
                        self.task.ending = None;
                        self.kill(KILLED_HOST_GONE.to_raw() as i32);
                    }
                }
            } else {
                self.child_ended(ppid, pid, status);
            }
        }
        // Ended tasks nobody will wait for go (the first process's children
        // have no parent to wait for them once it has ended).
        self.switch_to(self.leader);
        self.others
            .retain(|_, t| !(t.exited.is_some() && t.ppid == 0));
        if self.task.exited.is_some() && self.others.is_empty() {
            return self.task.exited;
        }
        None
    }

    /// A thread (not its process's first) ended: 0 goes to its
    /// `clear_child_tid` and one waiter on it is woken (`pthread_join`);
    /// it leaves the job, its process's state staying with the leader.
    fn thread_ended(&mut self, tid: u64) {
        if !self.switch_to(tid) {
            return;
        }
        let (group, clear) = (self.task.tgid, self.task.clear_child_tid);
        self.task.exited.get_or_insert(0);
        self.task.parked = None;
        // Hand the process's state back to its leader, then forget the
        // thread.
        if !self.switch_to(group) {
            self.switch_to(self.leader);
        }
        if self.task.pid != tid {
            self.others.remove(&tid);
        }
        let Some(leader) = self.task_of(group) else {
            return;
        };
        if clear == 0
            || !leader.alive() && !self.others.values().any(|t| t.tgid == group && t.alive())
        {
            return;
        }
        // Write through any live thread of the process (they share memory).
        let via = core::iter::once(&self.task)
            .chain(self.others.values())
            .find(|t| t.tgid == group && t.alive())
            .map(|t| t.pid);
        if let Some(via) = via
            && self.switch_to(via)
            && self.write_mem(clear, &0u32.to_le_bytes()).is_ok()
        {
            self.futex_wake(clear, 1, u32::MAX, None);
            // `futex_wake` skips the caller: a joiner served now is woken
            // by hand.
            if let Some(w) = &mut self.task.futex
                && w.addr == clear
            {
                w.woken = true;
            }
        }
    }

    /// Tells task `ppid` that its child `pid` ended with `status`:
    /// `SIGCHLD` with `CLD_EXITED`/`CLD_KILLED`/`CLD_DUMPED`, or the child
    /// is reaped at once if `SIGCHLD` is ignored or `SA_NOCLDWAIT` is set
    /// (`sigaction(2)`).
    fn child_ended(&mut self, ppid: u64, pid: u64, status: i32) {
        use linux_raw_sys::general as g;
        if ppid == 0 || !self.switch_to(ppid) || !self.task.alive() {
            if ppid == 0
                && let Some(t) = self.others.get_mut(&pid)
            {
                t.ppid = 0;
            }
            return;
        }
        let act = self.action(g::SIGCHLD as i32);
        if act.handler == 1 || act.flags & u64::from(g::SA_NOCLDWAIT) != 0 {
            self.others.remove(&pid);
        }
        let info = self.child_info(pid, status);
        self.post_signal(g::SIGCHLD as i32, info);
        self.kick();
    }

    /// The current task has a signal to take: if it computes, stop it at its
    /// next tick (a waiting call is interrupted when served again).
    pub fn kick(&mut self) {
        if self.task.alive() && self.task.parked.is_none() && self.deliverable().is_some() {
            self.node.interrupt(self.task.pid);
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
        self.kill_job(KILLED_HOST_GONE.to_raw() as i32);
        CallError::Halt
    }

    /// A wait for `hostd` ended without a message.
    fn wait_ended(&mut self, end: WaitEnd) -> CallError {
        match end {
            WaitEnd::HostGone => self.host_lost(),
            WaitEnd::AppEnded => {
                // The first process ended (killed from outside the job, or
                // it exited while another task's call waited for hostd);
                // its end comes as an event and ends the rest — including
                // the task served now, which must stay killable then (only
                // the first process itself is known to be gone).
                if self.task.pid == self.leader {
                    self.task.ending.get_or_insert(0);
                }
                CallError::Halt
            }
        }
    }

    /// Handles a message that came while nothing in particular was awaited.
    fn on_host_msg(&mut self, msg: HostMsg) {
        match msg {
            HostMsg::Stdin(bytes) => {
                self.stdin.extend(bytes);
                self.stdin_asked = false;
            }
            HostMsg::StdinEof => {
                self.stdin_eof = true;
                self.stdin_asked = false;
            }
            HostMsg::Kill => {
                let number = self.number;
                self.node
                    .log(format_args!("apm: job {number}: killed by its submitter"));
                self.kill_job(KILLED_BY_USER.to_raw() as i32);
            }
            HostMsg::Signal(sig) => {
                if crate::exit::Signal::new(sig).is_none() {
                    return;
                }
                let number = self.number;
                self.node.log(format_args!(
                    "apm: job {number}: signal {sig} from its submitter"
                ));
                let group = self.task_of(self.leader).map_or(self.leader, |t| t.pgid);
                for pid in self.pids() {
                    if self
                        .task_of(pid)
                        .is_some_and(|t| t.alive() && t.pgid == group)
                    {
                        self.signal_task(pid, sig, 0, crate::syscall::lifecycle::SI_USER);
                    }
                }
            }
            HostMsg::FileReply(r) => {
                // Only a write that went behind is answered while nothing
                // waits for an answer.
                self.settle_write(&r);
            }
            HostMsg::Checkpoint => self.checkpoint.wanted = true,
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
        self.settle_read_ahead(&request)?;
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

    /// Keeps `rest`, read ahead of the program in `handle` (making room by
    /// giving back the oldest file's, if [`READAHEAD_FILES`] are kept).
    pub fn keep_read_ahead(&mut self, handle: u64, rest: Vec<u8>) {
        if self.readahead.len() >= READAHEAD_FILES
            && !self.readahead.contains_key(&handle)
            && let Some(&oldest) = self.readahead.keys().next()
        {
            let _ = self.give_back(oldest);
        }
        self.readahead.insert(handle, rest.into());
    }

    /// Before `request` goes to `hostd`: bytes read ahead in its handle go
    /// back (its offset must be the program's), and before a request that
    /// changes a file, all of them.
    fn settle_read_ahead(&mut self, request: &FileRequest) -> Result<(), CallError> {
        if self.readahead.is_empty() {
            return Ok(());
        }
        match request {
            FileRequest::Read { .. } | FileRequest::Pread { .. } | FileRequest::Fstat { .. } => {
                Ok(())
            }
            FileRequest::Close { handle } => {
                self.readahead.remove(handle);
                Ok(())
            }
            FileRequest::Write { .. }
            | FileRequest::Pwrite { .. }
            | FileRequest::Ftruncate { .. }
            | FileRequest::Truncate { .. }
            | FileRequest::Fallocate { .. }
            | FileRequest::Rename { .. }
            | FileRequest::Unlink { .. } => self.give_all_back(),
            FileRequest::Open { flags, .. }
                if flags & linux_raw_sys::general::O_TRUNC as i32 != 0 =>
            {
                // O_TRUNC empties a file.
                self.give_all_back()
            }
            FileRequest::Lseek { handle, .. }
            | FileRequest::Lock { handle, .. }
            | FileRequest::Getdents64 { handle, .. }
            | FileRequest::Flock { handle, .. }
            | FileRequest::Fsync { handle, .. } => self.give_back(*handle),
            _ => Ok(()),
        }
    }

    /// Gives back every byte read ahead and waits for every write that
    /// went behind: `hostd`'s offsets are then the program's, and every
    /// write has landed (before a checkpoint).
    pub fn settle_all_io(&mut self) -> Result<(), CallError> {
        self.give_all_back()?;
        while !self.writes_behind.is_empty() {
            self.next_from_host()?;
        }
        Ok(())
    }

    /// Gives back every file's bytes read ahead.
    fn give_all_back(&mut self) -> Result<(), CallError> {
        let handles: Vec<u64> = self.readahead.keys().copied().collect();
        for h in handles {
            self.give_back(h)?;
        }
        Ok(())
    }

    /// Moves `hostd`'s offset of `handle` back over the bytes read ahead,
    /// and forgets them.
    fn give_back(&mut self, handle: u64) -> Result<(), CallError> {
        let Some(buf) = self.readahead.remove(&handle) else {
            return Ok(());
        };
        if !buf.is_empty() {
            self.host_value(FileRequest::Lseek {
                handle,
                offset: -(buf.len() as i64),
                whence: 1,
            })?;
        }
        Ok(())
    }

    /// Waits for `hostd`'s next message: a file reply is returned, anything
    /// else (stdin, Kill) is handled. Errors: [`CallError::Halt`] when the
    /// job is ending or `hostd` is gone.
    fn next_from_host(&mut self) -> Result<Option<FileReply>, CallError> {
        match self.node.recv(None) {
            Ok(Some(HostMsg::FileReply(r))) if self.settle_write(&r) => Ok(None),
            Ok(Some(HostMsg::FileReply(r))) => Ok(Some(r)),
            Ok(Some(m)) => {
                self.on_host_msg(m);
                if self.task.ending.is_some() {
                    return Err(CallError::Halt);
                }
                Ok(None)
            }
            Ok(None) => Ok(None),
            Err(end) => Err(self.wait_ended(end)),
        }
    }

    /// Sends `request`, a `Write` or `Pwrite` of `len` bytes on `handle`,
    /// without waiting for its answer (write-behind), first waiting for the
    /// oldest answers while [`WRITE_BEHIND_REQUESTS`] or
    /// [`WRITE_BEHIND_BYTES`] are outstanding. A failure is kept for the
    /// handle ([`Process::write_errors`]). Errors: [`CallError::Halt`] when
    /// the job ends or `hostd` is gone.
    pub fn write_behind(
        &mut self,
        handle: u64,
        request: FileRequest,
        len: u64,
    ) -> Result<(), CallError> {
        self.settle_read_ahead(&request)?;
        loop {
            let bytes: u64 = self.writes_behind.iter().map(|w| w.len).sum();
            if self.writes_behind.is_empty()
                || (self.writes_behind.len() < WRITE_BEHIND_REQUESTS
                    && bytes + len <= WRITE_BEHIND_BYTES)
            {
                break;
            }
            self.next_from_host()?;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.send(&NodeMsg::File { id, request })?;
        self.writes_behind
            .push_back(WriteBehind { id, handle, len });
        Ok(())
    }

    /// Takes `reply` if it answers a write that went behind, keeping its
    /// failure for the handle; returns whether it did.
    fn settle_write(&mut self, reply: &FileReply) -> bool {
        let Some(at) = self.writes_behind.iter().position(|w| w.id == reply.id) else {
            return false;
        };
        let Some(w) = self.writes_behind.remove(at) else {
            return false;
        };
        let failure = if reply.result < 0 {
            Some(Errno::from_return(reply.result).unwrap_or(Errno::EIO))
        } else if (reply.result as u64) < w.len {
            // A regular file takes fewer bytes than asked only when the
            // device is full (write(2)).
            Some(Errno::ENOSPC)
        } else {
            None
        };
        if let Some(e) = failure {
            self.write_errors.entry(w.handle).or_insert(e);
        }
        true
    }

    /// Waits until every write of `handle` that went behind is answered,
    /// then takes the handle's kept failure. Errors: that failure;
    /// [`CallError::Halt`] when the job ends or `hostd` is gone.
    pub fn flush_writes(&mut self, handle: u64) -> Result<(), CallError> {
        while self.writes_behind.iter().any(|w| w.handle == handle) {
            self.next_from_host()?;
        }
        match self.write_errors.remove(&handle) {
            Some(e) => Err(e.into()),
            None => Ok(()),
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
        if !self.stdin_asked {
            self.send(&NodeMsg::StdinWanted { max })?;
            self.stdin_asked = true;
        }
        if self.live_tasks() > 1 {
            // Other tasks go on meanwhile: the read waits in the job's loop
            // and is served again once hostd's bytes have come.
            return Err(self.block(None));
        }
        while self.stdin.is_empty() && !self.stdin_eof {
            // Only answers to writes that went behind can come now.
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
                if self.task.ending.is_some() {
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
                    if self.task.ending.is_some() {
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
        let pid = self.task.pid;
        for (i, chunk) in out.chunks_mut(MAX_COPY).enumerate() {
            self.node.read(pid, addr + (i * MAX_COPY) as u64, chunk)?;
        }
        Ok(out)
    }

    /// Writes `data` into application memory at `addr`, which must be mapped
    /// writable (as the kernel checks a `copy_to_user`). Errors: `EFAULT`.
    pub fn write_mem(&mut self, addr: u64, data: &[u8]) -> Result<(), CallError> {
        self.task.vm.check_access(addr, data.len() as u64, true)?;
        self.load_mem(addr, data)
    }

    /// Writes `data` at `addr` whatever the page protection (a loader's
    /// write). Errors: `EFAULT` for unmapped pages.
    pub fn load_mem(&mut self, addr: u64, data: &[u8]) -> Result<(), CallError> {
        let pid = self.task.pid;
        for (i, chunk) in data.chunks(MAX_COPY).enumerate() {
            self.node.write(pid, addr + (i * MAX_COPY) as u64, chunk)?;
        }
        Ok(())
    }

    /// Checks that `[addr, addr + len)` is writable before doing I/O into it.
    pub fn check_writable(&self, addr: u64, len: u64) -> Result<(), CallError> {
        self.task
            .vm
            .check_access(addr, len, true)
            .map_err(CallError::from)
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the
    /// NUL). Errors: `EFAULT`; `ENAMETOOLONG` without a NUL in `max` bytes.
    pub fn read_cstr(&mut self, addr: u64, max: usize) -> Result<Vec<u8>, CallError> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            // Up to the end of `at`'s page (also in the last page of the
            // address space, where the page's end is 2^64).
            let to_page_end = 0x1000 - (at & 0xfff);
            let n = (to_page_end as usize).min(max - out.len());
            let mut chunk = vec![0u8; n];
            self.node.read(self.task.pid, at, &mut chunk)?;
            if let Some(nul) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
            at = at.checked_add(n as u64).ok_or(Errno::EFAULT)?;
        }
        Err(Errno::ENAMETOOLONG.into())
    }
}
