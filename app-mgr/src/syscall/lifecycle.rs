//! The life of the job's processes, served on the node: `fork(2)`,
//! `vfork(2)` and `clone(2)` without shared memory, `wait4(2)`,
//! `waitpid(2)` and `waitid(2)`, `exit(2)`/`exit_group(2)`, `kill(2)` within
//! the job, and process groups and sessions (`setpgid(2)`, `setsid(2)`,
//! `getpgid(2)`, `getsid(2)`, `getppid(2)`). `execve(2)` is in
//! [`super::exec`].
//!
//! A job is a group of Linux processes on one node ([`crate::process`]): the
//! first is the leader of its own session and process group; a fork's copy
//! of the address space is made by the node (an eager copy of every page).

use linux_raw_sys::general as g;

use super::Args;
use crate::abi::Abi;
use crate::errno::Errno;
use crate::exit::WaitStatus;
use crate::process::{CallError, CallResult, Process, Tls};
use crate::sigframe::{Detail, SigInfo};

const CLONE_VM: u64 = g::CLONE_VM as u64;
const CLONE_VFORK: u64 = g::CLONE_VFORK as u64;
const CLONE_THREAD: u64 = g::CLONE_THREAD as u64;
const CLONE_SIGHAND: u64 = g::CLONE_SIGHAND as u64;
const CLONE_FILES: u64 = g::CLONE_FILES as u64;
const CLONE_SETTLS: u64 = g::CLONE_SETTLS as u64;
const CLONE_PARENT_SETTID: u64 = g::CLONE_PARENT_SETTID as u64;
const CLONE_CHILD_SETTID: u64 = g::CLONE_CHILD_SETTID as u64;
const CLONE_CHILD_CLEARTID: u64 = g::CLONE_CHILD_CLEARTID as u64;

const WNOHANG: i32 = g::WNOHANG as i32;
const WUNTRACED: i32 = g::WUNTRACED as i32;
const WCONTINUED: i32 = g::WCONTINUED as i32;
const WEXITED: i32 = g::WEXITED as i32;
const WNOWAIT: i32 = g::WNOWAIT as i32;
const WALL: i32 = g::__WALL as i32;
const WCLONE: i32 = g::__WCLONE as i32;
const WNOTHREAD: i32 = g::__WNOTHREAD as i32;

/// `si_code` of a signal from `kill(2)`.
pub(crate) const SI_USER: i32 = g::SI_USER as i32;

/// What a `clone` asks for.
#[derive(Clone, Copy, Debug, Default)]
struct CloneArgs {
    flags: u64,
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
}

/// `exit(status)`: the calling thread ends (the process, if it is its
/// last thread or its first: SiON ends a process with its leader); no
/// answer.
pub(super) fn exit(p: &mut Process<'_>, a: &Args) -> CallResult {
    let status = WaitStatus::from_exit_call(a.int(0)).to_raw() as i32;
    if p.task.is_thread() {
        p.kill(status);
    } else {
        p.kill_thread_group(status);
    }
    Err(CallError::Halt)
}

/// `exit_group(status)`: every thread of the process ends; no answer.
pub(super) fn exit_group(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.kill_thread_group(WaitStatus::from_exit_call(a.int(0)).to_raw() as i32);
    Err(CallError::Halt)
}

/// `fork()`.
pub(super) fn fork(p: &mut Process<'_>, _: &Args) -> CallResult {
    p.clone_task(CloneArgs::default())
}

/// `vfork()`: a fork whose parent waits until the child execs or ends
/// (the child gets a copy of the memory, not the parent's own).
pub(super) fn vfork(p: &mut Process<'_>, _: &Args) -> CallResult {
    p.clone_task(CloneArgs {
        flags: CLONE_VM | CLONE_VFORK,
        ..CloneArgs::default()
    })
}

/// `clone(flags, stack, parent_tid, child_tid, tls)` (x86_64) or
/// `clone(flags, stack, parent_tid, tls, child_tid)` (i386).
pub(super) fn clone(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (child_tid, tls) = match a.abi() {
        Abi::X86_64 => (a.word(3), a.word(4)),
        Abi::I386 => (a.word(4), a.word(3)),
    };
    p.clone_task(CloneArgs {
        flags: a.word(0),
        stack: a.word(1),
        parent_tid: a.word(2),
        child_tid,
        tls,
    })
}

/// `clone3(cl_args, size)`: `struct clone_args` (64-bit fields, the same
/// on both ABIs; the first 64 bytes, `CLONE_ARGS_SIZE_VER0`, are read, and
/// larger structures must be zero beyond what is known). `stack` is the
/// lowest address of the new stack, `stack_size` its size.
pub(super) fn clone3(p: &mut Process<'_>, a: &Args) -> CallResult {
    const VER0: u64 = 64;
    let (at, size) = (a.word(0), a.word(1));
    if !(VER0..=4096).contains(&size) {
        return Err(Errno::EINVAL.into());
    }
    let raw = p.read_mem(at, size)?;
    if raw[VER0 as usize..].iter().any(|&b| b != 0) {
        // set_tid, set_tid_size, cgroup and later fields: not served.
        return Err(Errno::E2BIG.into());
    }
    let w = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    // `pidfd` (word 1) matters only with CLONE_PIDFD, which is refused
    // (glibc fills it in anyway).
    let (flags, child_tid, parent_tid, exit_signal, stack, stack_size, tls) =
        (w(0), w(2), w(3), w(4), w(5), w(6), w(7));
    if flags & u64::from(g::CLONE_PIDFD) != 0 || exit_signal > 64 {
        return Err(Errno::EINVAL.into());
    }
    if (stack == 0) != (stack_size == 0) {
        return Err(Errno::EINVAL.into());
    }
    p.clone_task(CloneArgs {
        flags: flags | exit_signal,
        stack: stack.saturating_add(stack_size),
        parent_tid,
        child_tid,
        tls,
    })
}

/// `wait4(pid, wstatus, options, rusage)`.
pub(super) fn wait4(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.wait4(a.int(0), a.word(1), a.int(2), a.word(3))
}

/// i386 `waitpid(pid, wstatus, options)`.
pub(super) fn waitpid(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.wait4(a.int(0), a.word(1), a.int(2), 0)
}

/// `waitid(idtype, id, infop, options, rusage)`.
pub(super) fn waitid(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (idtype, id, infop, options) = (a.uint(0), a.int(1), a.word(2), a.int(3));
    if options & !(WNOHANG | WEXITED | WNOWAIT | WUNTRACED | WCONTINUED | WALL | WCLONE | WNOTHREAD)
        != 0
        || options & (WEXITED | WUNTRACED | WCONTINUED) == 0
    {
        return Err(Errno::EINVAL.into());
    }
    let which = match idtype {
        g::P_ALL => -1,
        g::P_PID if id > 0 => id,
        g::P_PGID if id >= 0 => {
            if id == 0 {
                0
            } else {
                -id
            }
        }
        _ => return Err(Errno::EINVAL.into()),
    };
    if options & WEXITED == 0 {
        // Only ends are reported: a job has no stopped children.
        return p.no_child_yet(which, options, infop);
    }
    let Some((pid, status)) = p.reap(which, options, options & WNOWAIT == 0)? else {
        return p.no_child_yet(which, options, infop);
    };
    if infop != 0 {
        let info = p.child_info(pid, status);
        p.write_mem(infop, zerocopy::IntoBytes::as_bytes(&info))?;
    }
    Ok(0)
}

/// `kill(pid, sig)` within the job: `pid` > 0 one process, 0 the caller's
/// process group, -1 every process but the caller, < -1 the group `-pid`.
pub(super) fn kill(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (pid, sig) = (a.int(0), a.int(1));
    if !(0..=64).contains(&sig) {
        return Err(Errno::EINVAL.into());
    }
    let me = p.task.pid;
    let my_group = p.task.pgid;
    let targets: alloc::vec::Vec<u64> = p
        .pids()
        .into_iter()
        .filter(|&t| {
            let Some(task) = p.task_of(t) else {
                return false;
            };
            task.exited.is_none()
                && !task.is_thread()
                && match pid {
                    0 => task.pgid == my_group,
                    -1 => t != me,
                    n if n > 0 => t == n as u64,
                    n => task.pgid == u64::from(n.unsigned_abs()),
                }
        })
        .collect();
    if targets.is_empty() {
        return Err(Errno::ESRCH.into());
    }
    if sig == 0 {
        return Ok(0);
    }
    if crate::exit::Signal::new(sig).is_none() {
        return Err(Errno::EINVAL.into());
    }
    for t in targets.iter().copied().filter(|&t| t != me) {
        p.signal_task(t, sig, me, SI_USER);
    }
    if targets.contains(&me) {
        p.raise(sig, SI_USER)?;
    }
    Ok(0)
}

/// `getppid()`: the parent; the job's first process has the App-Program
/// Manager as its parent.
pub(super) fn getppid(p: &mut Process<'_>, _: &Args) -> CallResult {
    Ok(match p.task.ppid {
        0 => p.node.manager_pid(),
        ppid => ppid,
    })
}

/// `getpgid(pid)` (0: the caller).
pub(super) fn getpgid(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.other(a.int(0)).map(|t| t.pgid)
}

/// `getpgrp()`.
pub(super) fn getpgrp(p: &mut Process<'_>, _: &Args) -> CallResult {
    Ok(p.task.pgid)
}

/// `getsid(pid)` (0: the caller).
pub(super) fn getsid(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.other(a.int(0)).map(|t| t.sid)
}

/// `setpgid(pid, pgid)`: the caller or one of its children joins process
/// group `pgid` (0: its own pid) of the caller's session.
pub(super) fn setpgid(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (pid, pgid) = (a.int(0), a.int(1));
    if pgid < 0 {
        return Err(Errno::EINVAL.into());
    }
    let me = p.task.pid;
    let target = if pid == 0 { me } else { pid as u64 };
    let pgid = if pgid == 0 { target } else { pgid as u64 };
    let sid = p.task.sid;
    let group_exists = pgid == target
        || p.pids()
            .into_iter()
            .filter_map(|t| p.task_of(t))
            .any(|t| t.pgid == pgid && t.sid == sid);
    if !group_exists {
        return Err(Errno::EPERM.into());
    }
    if target == me {
        if p.task.sid == me {
            return Err(Errno::EPERM.into());
        }
        p.task.pgid = pgid;
        return Ok(0);
    }
    match p.others.get_mut(&target) {
        Some(t) if t.ppid == me && t.exited.is_none() => {
            if t.sid != sid || t.sid == t.pid {
                return Err(Errno::EPERM.into());
            }
            if t.execed {
                return Err(Errno::EACCES.into());
            }
            t.pgid = pgid;
            Ok(0)
        }
        _ => Err(Errno::ESRCH.into()),
    }
}

/// `setsid()`: a new session and process group led by the caller.
pub(super) fn setsid(p: &mut Process<'_>, _: &Args) -> CallResult {
    let me = p.task.pid;
    let leads_a_group = p
        .pids()
        .into_iter()
        .filter_map(|t| p.task_of(t))
        .any(|t| t.pgid == me);
    if leads_a_group {
        return Err(Errno::EPERM.into());
    }
    p.task.sid = me;
    p.task.pgid = me;
    Ok(me)
}

impl Process<'_> {
    /// `fork`, `vfork` and `clone` of a new process (not a thread): the
    /// child is a copy (memory, descriptors sharing their open files, signal
    /// dispositions and mask) with its own pid in the caller's process group.
    /// Errors: `EAGAIN` beyond the job's process cap or memory limit,
    /// `ENOMEM` when the node has no memory for the copy, `ENOSYS` for a
    /// thread (shared memory), `EINVAL` for flags that make no sense.
    fn clone_task(&mut self, c: CloneArgs) -> CallResult {
        if let Some(child) = self.task.vfork_child {
            // A vfork parent goes on once its child has exec'd or ended.
            let done = self.task_of(child).is_none_or(|t| t.execed || !t.alive());
            if !done {
                return Err(CallError::Block(None));
            }
            self.task.vfork_child = None;
            return Ok(child);
        }
        let vfork = c.flags & CLONE_VFORK != 0;
        let thread = CLONE_VM | CLONE_THREAD | CLONE_SIGHAND;
        if c.flags & thread == thread && !vfork {
            return self.clone_thread(c);
        }
        if c.flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_FILES) != 0
            || (c.flags & CLONE_VM != 0 && !vfork)
        {
            let number = self.number;
            self.node.log(format_args!(
                "apm: job {number}: clone sharing memory or descriptors without being a thread (flags {:#x}) is not served -> ENOSYS",
                c.flags
            ));
            return Err(Errno::ENOSYS.into());
        }
        if self.live_tasks() >= self.max_procs {
            self.refused_forks += 1;
            if self.refused_forks == 1 {
                let (number, max) = (self.number, self.max_procs);
                self.node.log(format_args!(
                    "apm: job {number}: fork refused: the job has its {max} processes (hostd submit --max-procs) -> EAGAIN"
                ));
            }
            return Err(Errno::EAGAIN.into());
        }
        let in_use: u64 = self.task.vm.used()
            + self
                .others
                .values()
                .filter(|t| t.exited.is_none())
                .map(|t| t.vm.used())
                .sum::<u64>();
        if in_use.saturating_add(self.task.vm.used()) > self.task.vm.limit() {
            self.refused_forks += 1;
            if self.refused_forks == 1 {
                let number = self.number;
                self.node.log(format_args!(
                    "apm: job {number}: fork refused: the copy would pass the job's memory limit -> EAGAIN"
                ));
            }
            return Err(Errno::EAGAIN.into());
        }
        let parent = self.task.pid;
        let child = self
            .node
            .fork(parent, c.stack, false)
            .map_err(|_| Errno::EAGAIN)?;
        let mut t = self.task.forked(child);
        if c.flags & CLONE_SETTLS != 0
            && self.task.abi == Abi::X86_64
            && self.node.set_tls(child, Tls::FsBase, c.tls).is_ok()
        {
            t.fs_base = c.tls;
        }
        let tid = (child as u32).to_le_bytes();
        if c.flags & CLONE_CHILD_SETTID != 0 {
            let _ = self.node.write(child, c.child_tid, &tid);
        }
        self.others.insert(child, t);
        if c.flags & CLONE_PARENT_SETTID != 0 {
            let _ = self.write_mem(c.parent_tid, &tid);
        }
        self.node.reply(child, 0);
        if vfork {
            self.task.vfork_child = Some(child);
            return Err(CallError::Block(None));
        }
        Ok(child)
    }

    /// A new thread of the caller's process (`clone(2)` as
    /// `pthread_create` calls it: `CLONE_VM | CLONE_THREAD | CLONE_SIGHAND`
    /// and the rest): it shares the address space, descriptors and
    /// dispositions, starts on `stack` with the TLS of `CLONE_SETTLS`, and
    /// its id goes where `CLONE_PARENT_SETTID` and `CLONE_CHILD_SETTID` say;
    /// `CLONE_CHILD_CLEARTID` is where its end writes 0 and wakes a waiter.
    /// Errors: `EAGAIN` at the job's process cap, `ENOMEM`.
    fn clone_thread(&mut self, c: CloneArgs) -> CallResult {
        if self.live_tasks() >= self.max_procs {
            self.refused_forks += 1;
            if self.refused_forks == 1 {
                let (number, max) = (self.number, self.max_procs);
                self.node.log(format_args!(
                    "apm: job {number}: thread refused: the job has its {max} processes and threads (hostd submit --max-procs) -> EAGAIN"
                ));
            }
            return Err(Errno::EAGAIN.into());
        }
        let tid = self
            .node
            .fork(self.task.pid, c.stack, true)
            .map_err(|_| Errno::EAGAIN)?;
        let mut t = self.task.thread(tid);
        if c.flags & CLONE_SETTLS != 0 {
            match self.task.abi {
                Abi::X86_64 => {
                    if self.node.set_tls(tid, Tls::FsBase, c.tls).is_ok() {
                        t.fs_base = c.tls;
                    }
                }
                Abi::I386 => {
                    // A `struct user_desc`: its base at offset 4.
                    if let Ok(d) = self.read_mem(c.tls, 16) {
                        let base = u32::from_le_bytes(d[4..8].try_into().unwrap_or([0; 4]));
                        let _ = self.node.set_tls(tid, Tls::I386Segment, u64::from(base));
                    }
                }
            }
        }
        let id = (tid as u32).to_le_bytes();
        if c.flags & CLONE_PARENT_SETTID != 0 {
            let _ = self.write_mem(c.parent_tid, &id);
        }
        if c.flags & CLONE_CHILD_SETTID != 0 {
            let _ = self.write_mem(c.child_tid, &id);
        }
        if c.flags & CLONE_CHILD_CLEARTID != 0 {
            t.clear_child_tid = c.child_tid;
        }
        self.others.insert(tid, t);
        self.node.reply(tid, 0);
        Ok(tid)
    }

    /// A child of the caller that `which` selects (`wait4(2)`: > 0 that pid,
    /// -1 any, 0 the caller's group, < -1 group `-which`) has ended: its pid
    /// and wait status, removed from the job when `reap`. `None` when
    /// children match but none has ended and `WNOHANG` is set. Errors:
    /// `ECHILD` when no child matches; [`CallError::Block`] to wait.
    fn reap(
        &mut self,
        which: i32,
        options: i32,
        reap: bool,
    ) -> Result<Option<(u64, i32)>, CallError> {
        let me = self.task.tgid;
        let group = self.task.pgid;
        let matching: alloc::vec::Vec<(u64, Option<i32>)> = self
            .others
            .values()
            .filter(|t| {
                t.ppid == me
                    && !t.is_thread()
                    && match which {
                        -1 => true,
                        0 => t.pgid == group,
                        w if w > 0 => t.pid == w as u64,
                        w => t.pgid == u64::from(w.unsigned_abs()),
                    }
            })
            .map(|t| (t.pid, t.exited))
            .collect();
        if matching.is_empty() {
            return Err(Errno::ECHILD.into());
        }
        if let Some((pid, status)) = matching
            .iter()
            .find_map(|&(pid, status)| status.map(|s| (pid, s)))
        {
            if reap {
                self.others.remove(&pid);
            }
            return Ok(Some((pid, status)));
        }
        if options & WNOHANG != 0 {
            return Ok(None);
        }
        Err(self.block(None))
    }

    fn wait4(&mut self, which: i32, wstatus: u64, options: i32, rusage: u64) -> CallResult {
        if options & !(WNOHANG | WUNTRACED | WCONTINUED | WALL | WCLONE | WNOTHREAD) != 0 {
            return Err(Errno::EINVAL.into());
        }
        if wstatus != 0 {
            self.check_writable(wstatus, 4)?;
        }
        let Some((pid, status)) = self.reap(which, options, true)? else {
            return Ok(0);
        };
        if wstatus != 0 {
            self.write_mem(wstatus, &status.to_le_bytes())?;
        }
        if rusage != 0 {
            // Two timevals and 14 longs of the ABI, all zero: SiON does not
            // account a child's time.
            let zero = alloc::vec![0u8; 18 * self.task.abi.word_size()];
            self.write_mem(rusage, &zero)?;
        }
        Ok(pid)
    }

    /// `waitid` with nothing to report: with `WNOHANG`, `si_pid` 0 (after
    /// checking a child matches); otherwise wait.
    fn no_child_yet(&mut self, which: i32, options: i32, infop: u64) -> CallResult {
        if options & WNOHANG == 0 {
            self.reap(which, options | WNOHANG, false)?;
            return Err(self.block(None));
        }
        if infop != 0 {
            self.write_mem(infop, &[0u8; 128])?;
        }
        Ok(0)
    }

    /// The `siginfo_t` `waitid` and `SIGCHLD` give for child `pid` that
    /// ended with wait status `status`.
    pub fn child_info(&self, pid: u64, status: i32) -> SigInfo {
        let (code, value) = match WaitStatus::from_raw(status as u64) {
            WaitStatus::Exited(c) => (g::CLD_EXITED as i32, i32::from(c)),
            WaitStatus::Signaled(s) if status & 0x80 != 0 => {
                (g::CLD_DUMPED as i32, i32::from(s.number()))
            }
            WaitStatus::Signaled(s) => (g::CLD_KILLED as i32, i32::from(s.number())),
        };
        SigInfo::new(
            self.task.abi,
            g::SIGCHLD as i32,
            code,
            Detail::Child {
                pid: pid as u32,
                uid: self.task.uid,
                status: value,
            },
        )
    }

    /// The task `pid` names (0: the caller). Errors: `ESRCH`.
    fn other(&self, pid: i32) -> Result<&crate::process::Task, CallError> {
        let pid = match pid {
            0 => self.task.pid,
            p if p > 0 => p as u64,
            _ => return Err(Errno::ESRCH.into()),
        };
        self.task_of(pid)
            .filter(|t| t.exited.is_none())
            .ok_or(Errno::ESRCH.into())
    }

    /// Sends `sig` from task `from` (0: the submitter) to task `pid` with
    /// `si_code` `code` (`kill(2)`, `tkill(2)`): `SIGKILL` ends it at once;
    /// any other is made pending there and taken at its next system call,
    /// or at its next tick if it computes.
    pub fn signal_task(&mut self, pid: u64, sig: i32, from: u64, code: i32) {
        let me = self.task.pid;
        let uid = self.task.uid;
        if !self.switch_to(pid) {
            return;
        }
        if sig == g::SIGKILL as i32 {
            self.kill(WaitStatus::Signaled(crate::exit::Signal::SIGKILL).to_raw() as i32);
        } else {
            let info = SigInfo::new(
                self.task.abi,
                sig,
                code,
                Detail::Sender {
                    pid: from as u32,
                    uid,
                },
            );
            self.post_signal(sig, info);
            self.kick();
        }
        self.switch_to(me);
    }
}
