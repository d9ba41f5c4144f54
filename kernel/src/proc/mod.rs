//! Processes: creation from the images in the ramdisk, the process table, exit,
//! wait, and the blocking and waking that IPC and timeouts build on.
//!
//! Every process runs in ring 3 in its own [`AddressSpace`] with its own kernel
//! stack; the kernel is not preemptible (interrupt gates keep interrupts off in
//! ring 0) and on several CPUs all kernel code runs under one lock
//! ([`crate::arch::smp`]), so the table is only ever touched by one path at a
//! time. Each CPU has its own current process.
#![forbid(unsafe_code)]

pub mod elf;
pub mod scheduler;

use crate::arch::context::Context;
use crate::arch::percpu::{self, MAX_CPUS};
use crate::arch::trap::TrapFrame;
use crate::mem::space::{Access, AddressSpace};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use sion_abi::{Error, MAX_SPAWN_ARG, Pid, Signal, WaitStatus};
use sion_kernel_core::queue::Queue;
use spin::{Mutex, MutexGuard};

/// Size of each process's kernel stack in bytes.
const KERNEL_STACK_SIZE: usize = 64 * 1024;
/// Top of every process's user stack (exclusive).
pub const USER_STACK_TOP: u64 = 0x0000_7FFF_FFFF_0000;
/// Size of every process's user stack in bytes.
pub const USER_STACK_SIZE: u64 = 256 * 1024;

/// Why a blocked process waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// In `receive`: for a message from `from` (or any) into `buf[..cap]`, with
    /// the [`sion_abi::MessageInfo`] to be written at `info`.
    Receive {
        buf: u64,
        cap: u64,
        from: Pid,
        info: u64,
    },
    /// In `send`/`call`: until `to` receives `buf[..len]`. `reply` is the reply
    /// buffer of a `call`.
    Send {
        to: Pid,
        tag: u64,
        buf: u64,
        len: u64,
        reply: Option<(u64, u64)>,
    },
    /// In `call`, after delivery: until `server` replies into `buf[..cap]`.
    AwaitReply { server: Pid, buf: u64, cap: u64 },
    /// In `wait`: until child `child` ends.
    Wait { child: Pid },
    /// In `wait_any`: until any child ends.
    WaitAny,
    /// In a network call: until the next network event.
    Network,
    /// An application in a Linux system call: until `manager` replies.
    LinuxSyscall { manager: Pid },
    /// An application stopped on a CPU fault: until `manager` resumes it (a
    /// reply, normally after `app_set_regs`) or kills it.
    Fault { manager: Pid },
}

/// What kind of program a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A SiON process: uses SiON's system calls on `int 0x40`.
    Sion,
    /// A Linux application managed by `manager`: its Linux system calls become
    /// messages to the manager; SiON's calls are refused.
    Application { manager: Pid, abi64: bool },
}

/// Largest payload of a [`Notice`], in bytes: an application's system call
/// ([`sion_abi::app::LinuxSyscall::LEN`]), the largest the kernel sends.
pub const NOTICE_PAYLOAD: usize = sion_abi::app::LinuxSyscall::LEN;
/// Notices a SiON process can have waiting; more are refused
/// ([`post_notice`]). A manager gets at most two from each of its
/// applications at a time (a system call or stop, and its end), so with at
/// most [`MAX_APPLICATIONS`] of them an end is never refused.
pub const MAX_NOTICES: usize = 512;
/// Applications one manager may have at once (`app_create`, `app_fork`
/// beyond: [`Error::WouldBlock`]).
pub const MAX_APPLICATIONS: usize = 200;

/// A process's queue of notices: room for `capacity` allocated when the
/// process is made, so posting (from interrupt context too) never
/// allocates; applications, which receive nothing, get none.
pub struct Notices {
    queue: VecDeque<Notice>,
    capacity: usize,
}

impl Notices {
    /// Room for `capacity` notices.
    fn with_capacity(capacity: usize) -> Notices {
        Notices {
            queue: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Appends `notice`; false (and `notice` dropped) if the queue is full.
    fn push_back(&mut self, notice: Notice) -> bool {
        if self.queue.len() >= self.capacity {
            return false;
        }
        self.queue.push_back(notice);
        true
    }

    /// The notices, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Notice> {
        self.queue.iter()
    }

    /// Removes and returns the notice at `index` (0 the oldest).
    pub fn remove(&mut self, index: usize) -> Option<Notice> {
        self.queue.remove(index)
    }
}
/// Processes that can wait in one process's sender queue; more are refused
/// ([`Error::WouldBlock`] to the sender).
pub const MAX_SENDERS: usize = 64;

/// A message the kernel itself queues for a process (an application's system
/// call or its end), delivered by `receive` like any other. Fixed-size: notices
/// are posted from interrupt context, where the kernel does not allocate.
pub struct Notice {
    /// What `receive` reports.
    pub info: sion_abi::MessageInfo,
    /// The payload.
    pub payload: heapless::Vec<u8, NOTICE_PAYLOAD>,
}

impl Notice {
    /// A notice with `payload`, which must be at most [`NOTICE_PAYLOAD`] bytes
    /// (longer ones are cut there; every kernel notice fits).
    pub fn new(info: sion_abi::MessageInfo, payload: &[u8]) -> Notice {
        let n = payload.len().min(NOTICE_PAYLOAD);
        debug_assert_eq!(n, payload.len(), "notice payload too long");
        Notice {
            info,
            payload: heapless::Vec::from_slice(&payload[..n]).unwrap_or_default(),
        }
    }
}

/// Notices refused because their receiver's queue was full.
static NOTICES_REFUSED: AtomicU64 = AtomicU64::new(0);
/// Sends refused because the receiver's sender queue was full.
static SENDS_REFUSED: AtomicU64 = AtomicU64::new(0);

/// Counts and logs a send refused for a full sender queue of `to`.
pub fn count_send_refused(to: Pid) {
    let n = SENDS_REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
    log::warn!(
        "ipc: send to process {to} refused: {MAX_SENDERS} senders already wait ({n} refused so far)"
    );
}

/// The wake value telling a blocked call to check its condition again.
pub const WAKE_RETRY: i64 = i64::MIN;

/// The scheduling state of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// In the ready queue.
    Ready,
    /// On the CPU.
    Running,
    /// Not runnable until woken.
    Blocked(Block),
    /// Ended; its resources are freed once it is off the CPU.
    Dead(WaitStatus),
    /// An application being built by its manager; not runnable yet.
    Embryo,
}

/// One process.
pub struct Process {
    /// Its id.
    pub pid: Pid,
    /// The process that spawned it, while that one lives.
    pub parent: Option<Pid>,
    /// The name of its image.
    pub name: String,
    /// Scheduling state.
    pub state: State,
    /// Its address space (shared by the threads of one application).
    pub space: Arc<AddressSpace>,
    /// Processes blocked sending to this one, oldest first.
    pub senders: Queue<Pid, MAX_SENDERS>,
    /// The result a blocking system call returns once the process is woken.
    pub wake_value: i64,
    /// When a blocked `receive` times out (nanoseconds since boot).
    pub deadline: Option<u64>,
    /// SiON process or Linux application.
    pub kind: Kind,
    /// Messages from the kernel waiting for `receive`.
    pub notices: Notices,
    /// The FS base register (x86_64 TLS), restored when the process runs.
    pub fs_base: u64,
    /// The base of the i386 TLS segment, if the application set one.
    pub tls_base: Option<u32>,
    /// An application's user registers as they were when it stopped in its
    /// last Linux system call or fault (`app_regs`), or as its manager set
    /// them (`app_set_regs`).
    pub stopped_regs: TrapFrame,
    /// Its manager replaced [`Process::stopped_regs`]: they are what the
    /// application resumes with.
    pub regs_changed: bool,
    /// It is stopped and has never run (a forked copy, or started with
    /// [`sion_abi::app::START_STOPPED`]): it will enter user mode from the
    /// frame at the top of its kernel stack, so `app_set_regs` writes there.
    pub never_ran: bool,
    /// An application whose CPU faults go to its manager
    /// ([`sion_abi::app::START_FAULTS_TO_MANAGER`]).
    pub faults_to_manager: bool,
    /// Its manager asked to stop it at its next timer tick in user mode
    /// (`app_interrupt`).
    pub interrupt_requested: bool,
    /// It was killed while running on another CPU: it ends with this status
    /// on its next entry to the kernel ([`take_pending_kill`]), which that
    /// CPU is interrupted to make at once.
    pub kill_requested: Option<WaitStatus>,
    /// Kernel stack, saved stack pointer and FPU/SSE registers.
    context: Context,
}

/// The process table and the ready queue.
pub struct Table {
    /// Live processes (boxed so their kernel stacks and FPU areas never move).
    pub procs: BTreeMap<Pid, Box<Process>>,
    /// Ended processes not yet waited for: pid → (parent, status).
    zombies: BTreeMap<Pid, (Pid, WaitStatus)>,
    /// Ready processes in round-robin order: one queue shared by all CPUs.
    ready: VecDeque<Pid>,
    /// The process on each CPU (by CPU index).
    running: [Option<Pid>; MAX_CPUS],
    next_pid: Pid,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    procs: BTreeMap::new(),
    zombies: BTreeMap::new(),
    ready: VecDeque::new(),
    running: [None; MAX_CPUS],
    next_pid: 1,
});

/// Locks the process table. The kernel is not re-entrant and runs on one CPU
/// at a time (the kernel lock), so this lock is never contended; finding it
/// held is a kernel bug and panics rather than deadlocks.
pub fn table() -> MutexGuard<'static, Table> {
    TABLE.try_lock().expect("process table re-entered")
}

/// Locks the process table unless it is held (for interrupt handlers).
pub fn try_table() -> Option<MutexGuard<'static, Table>> {
    TABLE.try_lock()
}

/// A network message for `pid` has been queued: wake it if it waits in
/// `receive` for any sender.
pub fn notify_message(pid: Pid) {
    if let Some(mut t) = TABLE.try_lock() {
        let receiving = t.procs.get(&pid).is_some_and(|p| {
            matches!(
                p.state,
                State::Blocked(Block::Receive {
                    from: sion_abi::ANY_SENDER,
                    ..
                })
            )
        });
        if receiving {
            t.wake(pid, WAKE_RETRY);
        }
    }
}

impl Table {
    /// The pid of the process on this CPU, if one is.
    pub fn current_pid(&self) -> Option<Pid> {
        self.running[percpu::index()]
    }

    /// Records the process on this CPU.
    fn set_current(&mut self, pid: Option<Pid>) {
        self.running[percpu::index()] = pid;
    }

    /// The CPU `pid` runs on, if it is on one.
    pub fn cpu_of(&self, pid: Pid) -> Option<usize> {
        self.running.iter().position(|r| *r == Some(pid))
    }

    /// Appends `pid` to the ready queue and wakes an idle CPU to run it.
    fn push_ready(&mut self, pid: Pid) {
        self.ready.push_back(pid);
        crate::arch::smp::wake_an_idle_cpu();
    }

    /// The process on this CPU.
    pub fn current(&mut self) -> &mut Process {
        let pid = self.current_pid().expect("no current process");
        self.procs.get_mut(&pid).expect("current process exists")
    }

    /// Makes a blocked process runnable; its blocking call returns `value`.
    pub fn wake(&mut self, pid: Pid, value: i64) {
        if let Some(p) = self.procs.get_mut(&pid)
            && matches!(p.state, State::Blocked(_))
        {
            p.state = State::Ready;
            p.wake_value = value;
            p.deadline = None;
            self.push_ready(pid);
        }
    }
}

/// Creates a process from the image `name` with argument blob `arg`, as a child
/// of `parent`. Errors: [`Error::NotFound`], [`Error::BadImage`],
/// [`Error::NoMemory`], [`Error::InvalidArgument`] (argument too long).
pub fn spawn(name: &str, arg: &[u8], parent: Option<Pid>) -> Result<Pid, Error> {
    if arg.len() > MAX_SPAWN_ARG {
        return Err(Error::InvalidArgument);
    }
    if name == crate::ramdisk::CLUSTER_KEY {
        // The key file is a secret, not a program.
        return Err(Error::NotFound);
    }
    let image = crate::ramdisk::find(name).ok_or(Error::NotFound)?;
    room_for_a_process()?;
    let mut space = AddressSpace::new()?;
    let entry = elf::load(&mut space, image)?;
    let stack_base = USER_STACK_TOP - USER_STACK_SIZE;
    space.map(
        stack_base,
        USER_STACK_SIZE,
        Access {
            write: true,
            execute: false,
        },
    )?;
    let arg_addr = (USER_STACK_TOP - arg.len() as u64) & !15;
    space.write(arg_addr, arg)?;
    // As if `_start(arg, len)` had been called: rsp + 8 is 16-byte aligned.
    let mut frame = TrapFrame::new_user(entry, arg_addr - 8);
    frame.rdi = arg_addr;
    frame.rsi = arg.len() as u64;

    let pid = insert(space, frame, parent, name, Kind::Sion, State::Ready);
    table().push_ready(pid);
    Ok(pid)
}

/// Creates an empty application managed by `manager` (state [`State::Embryo`]).
/// Errors: [`Error::NoMemory`].
pub fn create_application(manager: Pid, name: &str) -> Result<Pid, Error> {
    room_for_a_process()?;
    room_for_an_application(manager)?;
    let space = AddressSpace::new()?;
    let kind = Kind::Application {
        manager,
        abi64: true,
    };
    Ok(insert(
        space,
        TrapFrame::new_user(0, 0),
        Some(manager),
        name,
        kind,
        State::Embryo,
    ))
}

/// What a forked application inherits besides its address space
/// ([`fork_application`]).
pub struct Inherited {
    /// Its manager and ABI.
    pub kind: Kind,
    /// Its user registers on its first run (the parent's, `rax` 0).
    pub frame: TrapFrame,
    /// The FS base.
    pub fs_base: u64,
    /// The i386 TLS segment base.
    pub tls_base: Option<u32>,
    /// Faults go to the manager.
    pub faults_to_manager: bool,
    /// Its FPU/SSE registers.
    pub fpu: crate::arch::fpu::FpuState,
}

/// A new application with `space` and what it inherits from the
/// application it was forked from (`fork(2)`), stopped as if in a Linux
/// system call: its manager's reply starts it. Returns its pid.
pub fn fork_application(space: Arc<AddressSpace>, from: Inherited) -> Pid {
    let Kind::Application { manager, .. } = from.kind else {
        unreachable!("only applications fork");
    };
    let pid = insert(
        space,
        from.frame,
        Some(manager),
        "app",
        from.kind,
        State::Embryo,
    );
    let mut t = table();
    if let Some(p) = t.procs.get_mut(&pid) {
        p.fs_base = from.fs_base;
        p.tls_base = from.tls_base;
        p.faults_to_manager = from.faults_to_manager;
        *p.fpu_mut() = from.fpu;
        p.state = State::Blocked(Block::LinuxSyscall { manager });
        p.never_ran = true;
    }
    pid
}

/// Checks `manager` may have one more application ([`MAX_APPLICATIONS`]).
/// Errors: [`Error::WouldBlock`].
pub fn room_for_an_application(manager: Pid) -> Result<(), Error> {
    let apps = table()
        .procs
        .values()
        .filter(|p| matches!(p.kind, Kind::Application { manager: m, .. } if m == manager))
        .count();
    if apps < MAX_APPLICATIONS {
        Ok(())
    } else {
        Err(Error::WouldBlock)
    }
}

/// Checks the kernel heap has room for another process's kernel stack and
/// table entry. Errors: [`Error::NoMemory`].
pub fn room_for_a_process() -> Result<(), Error> {
    let needed = KERNEL_STACK_SIZE + core::mem::size_of::<Process>() + 4096;
    if crate::mem::heap::has_room_for(needed) {
        Ok(())
    } else {
        Err(Error::NoMemory)
    }
}

/// Adds a process to the table with a fresh kernel stack that enters ring 3
/// with `frame` when first scheduled; returns its new pid.
fn insert(
    space: impl Into<Arc<AddressSpace>>,
    frame: TrapFrame,
    parent: Option<Pid>,
    name: &str,
    kind: Kind,
    state: State,
) -> Pid {
    let context = Context::new(KERNEL_STACK_SIZE, frame);
    let mut t = table();
    let pid = t.next_pid;
    t.next_pid += 1;
    let process = Process {
        pid,
        parent,
        name: name.into(),
        state,
        space: space.into(),
        senders: Queue::new(),
        wake_value: 0,
        deadline: None,
        kind,
        notices: Notices::with_capacity(if kind == Kind::Sion { MAX_NOTICES } else { 0 }),
        fs_base: 0,
        tls_base: None,
        stopped_regs: frame,
        regs_changed: false,
        never_ran: false,
        faults_to_manager: false,
        interrupt_requested: false,
        kill_requested: None,
        context,
    };
    t.procs.insert(pid, Box::new(process));
    pid
}

impl Process {
    /// The user-state frame at the top of the kernel stack.
    pub fn user_frame(&mut self) -> &mut TrapFrame {
        self.context.user_frame()
    }

    /// Its FPU/SSE registers as saved when it left the CPU (`fxsave`).
    pub fn fpu(&self) -> &crate::arch::fpu::FpuState {
        self.context.fpu()
    }

    /// Mutable access to them: what it resumes with.
    pub fn fpu_mut(&mut self) -> &mut crate::arch::fpu::FpuState {
        self.context.fpu_mut()
    }
}

/// Queues a kernel message for `pid` and wakes it if it is waiting in
/// `receive` for it. Errors: [`Error::NoSuchProcess`] if `pid` does not
/// exist, [`Error::WouldBlock`] (counted and logged) if [`MAX_NOTICES`]
/// notices already wait.
pub fn post_notice(t: &mut Table, pid: Pid, notice: Notice) -> Result<(), Error> {
    let sender = notice.info.sender;
    let Some(p) = t.procs.get_mut(&pid) else {
        return Err(Error::NoSuchProcess);
    };
    if !p.notices.push_back(notice) {
        let n = NOTICES_REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
        log::warn!(
            "notice for process {pid} refused: {MAX_NOTICES} already wait ({n} refused so far)"
        );
        return Err(Error::WouldBlock);
    }
    let receiving = matches!(p.state, State::Blocked(Block::Receive { from, .. }) if from == sion_abi::ANY_SENDER || from == sender);
    if receiving {
        t.wake(pid, WAKE_RETRY);
    }
    Ok(())
}

/// What the layers above the process table do when a process ends (free its
/// network services and sockets), installed once at boot by
/// [`set_release_hook`]. The process table calls down into nothing above it.
static RELEASE_HOOK: spin::Once<fn(Pid)> = spin::Once::new();

/// Installs the function that frees what a process held outside the process
/// table; called with its pid after it ended. Only the first call counts.
pub fn set_release_hook(hook: fn(Pid)) {
    RELEASE_HOOK.call_once(|| hook);
}

/// Runs the release hook for `pid`, if one is installed.
fn release_hook(pid: Pid) {
    if let Some(hook) = RELEASE_HOOK.get() {
        hook(pid);
    }
}

/// Spawns the first process, with no parent.
pub fn spawn_first(name: &str, arg: &[u8]) -> Result<Pid, Error> {
    spawn(name, arg, None)
}

/// Ends the current process with `status`: wakes whoever waits on it, then
/// leaves the CPU for good.
pub fn exit_current(status: WaitStatus) -> ! {
    let pid = {
        let mut t = table();
        let pid = t.current_pid().expect("exit without a current process");
        finish(&mut t, pid, status);
        pid
    };
    release_hook(pid);
    scheduler::switch_out();
    unreachable!("a dead process was scheduled");
}

/// Ends process `pid`, which is not the caller (an application its manager
/// kills): frees it at once, or, if it runs on another CPU, has it end there
/// ([`Process::kill_requested`]).
pub fn end_other(pid: Pid, status: WaitStatus) {
    {
        let mut t = table();
        if t.current_pid() == Some(pid) || !t.procs.contains_key(&pid) {
            return;
        }
        if request_kill(&mut t, pid, status) {
            return;
        }
        finish(&mut t, pid, status);
        t.procs.remove(&pid);
    }
    release_hook(pid);
}

/// If `pid` runs on another CPU: asks it to end with `status` there and
/// interrupts that CPU; true if so (the caller must not free it).
fn request_kill(t: &mut Table, pid: Pid, status: WaitStatus) -> bool {
    let Some(cpu) = t.cpu_of(pid) else {
        return false;
    };
    if let Some(p) = t.procs.get_mut(&pid)
        && p.kill_requested.is_none()
        && !matches!(p.state, State::Dead(_))
    {
        p.kill_requested = Some(status);
    }
    crate::arch::smp::poke(cpu);
    true
}

/// On an entry to the kernel from user mode: if the current process was
/// killed from another CPU meanwhile, ends it now.
pub fn take_pending_kill() {
    let status = {
        let mut t = table();
        match t.current_pid() {
            Some(pid) => t.procs.get_mut(&pid).and_then(|p| p.kill_requested.take()),
            None => None,
        }
    };
    if let Some(status) = status {
        exit_current(status);
    }
}

/// The bookkeeping of a process's end: mark it dead, release its IPC peers,
/// orphan its children, end the applications it managed, and tell whoever
/// waits for it (its parent, or its manager).
fn finish(t: &mut Table, pid: Pid, status: WaitStatus) {
    let Some(p) = t.procs.get_mut(&pid) else {
        return;
    };
    p.state = State::Dead(status);
    let (parent, kind) = (p.parent, p.kind);
    release_peers(t, pid);
    // Orphan the children; forget their unreaped statuses.
    for p in t.procs.values_mut() {
        if p.parent == Some(pid) {
            p.parent = None;
        }
    }
    t.zombies.retain(|_, (parent, _)| *parent != pid);
    // Applications cannot run without their manager.
    let orphans: Vec<Pid> = t
        .procs
        .values()
        .filter(|p| matches!(p.kind, Kind::Application { manager, .. } if manager == pid))
        .map(|p| p.pid)
        .collect();
    for app in orphans {
        release_peers(t, app);
        if !request_kill(t, app, WaitStatus::Signaled(Signal::SIGKILL)) {
            t.procs.remove(&app);
        }
    }
    if let Kind::Application { manager, .. } = kind {
        let info = sion_abi::MessageInfo {
            sender: pid,
            tag: sion_abi::app::TAG_APP_EXITED,
            len: 8,
            ..Default::default()
        };
        // A full queue is counted and logged by `post_notice`.
        let _ = post_notice(
            t,
            manager,
            Notice::new(info, &status.to_raw().to_le_bytes()),
        );
        return;
    }
    if let Some(parent) = parent {
        let waiting = t
            .procs
            .get(&parent)
            .is_some_and(|p| p.state == State::Blocked(Block::Wait { child: pid }));
        if waiting {
            t.wake(parent, status.to_raw() as i64);
        } else {
            t.zombies.insert(pid, (parent, status));
            // A `wait_any` takes it from the zombies when it runs again.
            let waiting_any = t
                .procs
                .get(&parent)
                .is_some_and(|p| p.state == State::Blocked(Block::WaitAny));
            if waiting_any {
                t.wake(parent, WAKE_RETRY);
            }
        }
    }
}

/// Wakes, with [`Error::PeerDied`], every process whose IPC waits on `pid`, and
/// takes `pid` out of any sender queue it is in.
fn release_peers(t: &mut Table, pid: Pid) {
    let mut to_wake = Vec::new();
    for p in t.procs.values_mut() {
        match p.state {
            State::Blocked(Block::Send { to, .. }) if to == pid => to_wake.push(p.pid),
            State::Blocked(Block::AwaitReply { server, .. }) if server == pid => {
                to_wake.push(p.pid)
            }
            State::Blocked(Block::LinuxSyscall { manager } | Block::Fault { manager })
                if manager == pid =>
            {
                to_wake.push(p.pid)
            }
            _ => {}
        }
        p.senders.retain(|s| *s != pid);
    }
    for waiter in to_wake {
        t.wake(waiter, Error::PeerDied.to_result());
    }
}

/// Kills the current process for a fault: logs what happened and ends it with
/// `signal`, as Linux would (SIGSEGV, SIGILL, SIGFPE, …). The node keeps running.
pub fn kill_current(signal: Signal, detail: &str) -> ! {
    {
        let mut t = table();
        let p = t.current();
        log::warn!(
            "process {} ({}) killed by {signal:?} (signal {signal}): {detail}",
            p.pid,
            p.name,
        );
    }
    exit_current(WaitStatus::Signaled(signal))
}

/// `wait(child)`: the child's status word, blocking until it ends.
/// Errors: [`Error::NotChild`].
pub fn wait(child: Pid) -> Result<u64, Error> {
    {
        let mut t = table();
        let me = t.current_pid().expect("wait without a current process");
        if let Some((parent, status)) = t.zombies.get(&child).copied()
            && parent == me
        {
            t.zombies.remove(&child);
            return Ok(status.to_raw());
        }
        let is_child = t.procs.get(&child).is_some_and(|c| c.parent == Some(me));
        if !is_child {
            return Err(Error::NotChild);
        }
        t.current().state = State::Blocked(Block::Wait { child });
    }
    Error::from_result(scheduler::block())
}

/// `wait_any`: the pid and status of a child (a SiON process the caller
/// spawned) that ended, blocking until one does or `deadline` (ns since boot)
/// passes. Errors: [`Error::NotChild`] (no child), [`Error::TimedOut`].
pub fn wait_any(deadline: Option<u64>) -> Result<(Pid, WaitStatus), Error> {
    loop {
        {
            let mut t = table();
            let me = t.current_pid().expect("wait_any without a current process");
            let ended = t
                .zombies
                .iter()
                .find(|(_, (parent, _))| *parent == me)
                .map(|(&child, &(_, status))| (child, status));
            if let Some((child, status)) = ended {
                t.zombies.remove(&child);
                return Ok((child, status));
            }
            let has_child = t.procs.values().any(|p| {
                p.parent == Some(me) && p.kind == Kind::Sion && !matches!(p.state, State::Dead(_))
            });
            if !has_child {
                return Err(Error::NotChild);
            }
            if deadline.is_some_and(|d| crate::time::now_ns() >= d) {
                return Err(Error::TimedOut);
            }
            let p = t.current();
            p.state = State::Blocked(Block::WaitAny);
            p.deadline = deadline;
        }
        let woken = scheduler::block();
        if woken != WAKE_RETRY {
            Error::from_result(woken)?;
        }
    }
}

/// `kill(child)`: ends the caller's child `child`, a SiON process not on the
/// CPU, with `SIGKILL`; its parent reaps it as any ended child.
/// Errors: [`Error::NotChild`].
pub fn kill_child(child: Pid) -> Result<u64, Error> {
    {
        let t = table();
        let me = t.current_pid().expect("kill without a current process");
        let is_child = t.procs.get(&child).is_some_and(|c| {
            c.parent == Some(me) && c.kind == Kind::Sion && !matches!(c.state, State::Dead(_))
        });
        if !is_child {
            return Err(Error::NotChild);
        }
    }
    log::info!("process {child} killed by its parent");
    end_other(child, WaitStatus::Signaled(Signal::SIGKILL));
    Ok(0)
}

/// Called on every timer tick: wakes blocked receivers whose timeout passed.
pub fn on_timer_tick() {
    let now = crate::time::now_ns();
    let Some(mut t) = TABLE.try_lock() else {
        return;
    };
    // Interrupt context: no allocation, so expired processes are collected
    // in fixed-size batches (a woken process has no deadline any more).
    loop {
        let expired: heapless::Vec<Pid, 16> = t
            .procs
            .values()
            .filter(|p| {
                p.deadline.is_some_and(|d| d <= now) && matches!(p.state, State::Blocked(_))
            })
            .map(|p| p.pid)
            .take(16)
            .collect();
        for &pid in &expired {
            t.wake(pid, Error::TimedOut.to_result());
        }
        if !expired.is_full() {
            break;
        }
    }
}
