//! Checkpoints of a running job, and jobs rebuilt from them
//! (`hostd submit --checkpoint SECONDS`; anchors: HTCondor's standard
//! universe and DMTCP, which save a process's memory, registers and open
//! files and restart it elsewhere).
//!
//! **Taking one.** `hostd` asks ([`HostMsg::Checkpoint`](crate::job::HostMsg));
//! the manager stops the job's only task at its next timer tick in user
//! mode ([`Node::interrupt`](crate::process::Node::interrupt)), so no system
//! call is half done, gives back bytes read ahead and waits for every write
//! that went behind, then sends, in order after everything the job sent
//! before: a [`Header`] (registers, FPU state, TLS base, the address space's
//! regions and break, descriptors and the `hostd` handles they name, the
//! current directory, signal dispositions, mask and alternate stack, the
//! `alarm` timer, the job's clocks, stdin bytes received and not yet read),
//! then the contents of every mapped page that is not all zero
//! ([`CheckpointPart::Pages`]), then [`CheckpointPart::End`]. The job then
//! goes on. `hostd` stores the records as they come: that sequence,
//! each record `[u32 big-endian length][postcard]` ([`encode_record`]), is
//! the checkpoint image.
//!
//! **Restoring.** A [`Start`](crate::job::Start) with `restore` uploads the
//! image instead of a program; the node maps the regions, writes the pages,
//! fills the task from the header ([`restore`]) and starts the application
//! stopped, with every register, the FPU state and the TLS base set
//! ([`Process::resume_restored`]). `hostd` meanwhile rolls the job directory
//! back to the checkpoint, puts its open files at their offsets, gives stdin
//! from where the checkpoint had it and shows only output beyond what was
//! shown.
//!
//! **Which jobs.** One process with one thread, x86_64, without pipes or
//! POSIX timers: a job that has forked, made threads, or runs i386 code
//! (whose TLS segment lives in the node's GDT) is refused once with the
//! reason ([`CheckpointPart::Refused`]), and a lost node's job then runs again
//! from its start. A checkpoint waits while the task is in a call that waits
//! (a sleep, a read of stdin) and is taken when it computes or makes calls
//! again. The program sees the same memory, registers, descriptors and
//! clocks (`CLOCK_MONOTONIC` never goes back; it may jump forward); its pid
//! is the new node's.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};

use serde::{Deserialize, Serialize};
use sion_abi::app::AppRegs;

use crate::Abi;
use crate::abi::{PAGE_SIZE, UserLayout};
use crate::errno::Errno;
use crate::fd::{FdEntry, FdTable, OpenFile, StdStream};
use crate::job::{CHUNK, CheckpointPart, MAX_FRAME, NodeMsg, Winsize};
use crate::process::{CallError, HostFile, Process};
use crate::vm::{AddressSpace, Prot, Region, RegionKind, VmEffect};

/// Version of the image's [`Header`]; a node refuses an image of another.
pub const IMAGE_VERSION: u32 = 1;

/// The job's state at a checkpoint, but its memory's contents (see the
/// module docs). Addresses and lengths in bytes, times in ns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`IMAGE_VERSION`].
    pub version: u32,
    /// The registers ([`AppRegs::encode`]).
    pub regs: Vec<u8>,
    /// The FPU/SSE registers (512-byte `fxsave` image).
    pub fpu: Vec<u8>,
    /// The FS base (x86_64 TLS).
    pub fs_base: u64,
    /// Mapped regions.
    pub regions: Vec<RegionRecord>,
    /// Where the program break started, and where it is.
    pub brk_start: u64,
    /// The program break.
    pub brk: u64,
    /// Size of the main stack mapping.
    pub stack_len: u64,
    /// Open descriptors.
    pub fds: Vec<FdRecord>,
    /// The descriptor limit (`RLIMIT_NOFILE`).
    pub fd_limit: u64,
    /// The files `hostd` holds open for the job: handle, `open` flags,
    /// whether a directory.
    pub host_files: Vec<(u64, i32, bool)>,
    /// A failed write that went behind, per handle (errno), not yet
    /// reported.
    pub write_errors: Vec<(u64, u16)>,
    /// The current directory (absolute host path).
    pub cwd: Vec<u8>,
    /// What `/proc/self/exe` reads as.
    pub exe: Vec<u8>,
    /// User and group ids the program sees.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// `umask(2)`.
    pub umask: u32,
    /// `prctl(PR_SET_NAME)`.
    pub comm: Vec<u8>,
    /// `set_tid_address(2)`.
    pub clear_child_tid: u64,
    /// `rt_sigaction` handlers (kernel `struct sigaction` bytes) by signal.
    pub sigactions: Vec<(i32, Vec<u8>)>,
    /// The signal mask.
    pub sigmask: u64,
    /// The alternate signal stack (`stack_t` bytes).
    pub altstack: Option<Vec<u8>>,
    /// `alarm`/`ITIMER_REAL`: ns until it fires, and its interval.
    pub itimer_real: Option<(u64, u64)>,
    /// Time since the job started (its CPU-time clocks).
    pub job_ns: u64,
    /// The program's `CLOCK_MONOTONIC`.
    pub monotonic_ns: u64,
    /// The submitter's wall clock at submission (ns since the epoch).
    pub realtime_ns: u64,
    /// Stdin bytes received and not yet read, and whether stdin ended.
    pub stdin: Vec<u8>,
    /// `hostd`'s stdin ended.
    pub stdin_eof: bool,
    /// Whether stdin, stdout, stderr are terminals.
    pub tty: [bool; 3],
    /// The submitter's terminal size.
    pub winsize: Option<Winsize>,
    /// The next forwarded request id.
    pub next_id: u64,
}

/// A mapped region ([`Region`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionRecord {
    /// First byte (page-aligned).
    pub start: u64,
    /// One past the last byte (page-aligned).
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: u32,
    /// 0 image, 1 heap, 2 stack, 3 anonymous, 4 file.
    pub kind: u8,
}

/// An open descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdRecord {
    /// The descriptor.
    pub fd: i32,
    /// 0 stdin, 1 stdout, 2 stderr, 3 a `hostd` handle.
    pub kind: u8,
    /// The handle when `kind` is 3.
    pub handle: u64,
    /// `FD_CLOEXEC`.
    pub cloexec: bool,
}

/// What a restored job resumes with (see [`Process::resume_restored`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// Every register.
    pub regs: AppRegs,
    /// The FPU/SSE state.
    pub fpu: [u8; 512],
}

/// What [`Process::take_checkpoint`] sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Header and page records.
    pub records: u64,
    /// Memory bytes in the page records.
    pub bytes: u64,
}

/// One record of a checkpoint image: `[u32 big-endian length][postcard]`.
/// `None` if it would not fit a frame ([`MAX_FRAME`]).
pub fn encode_record(part: &CheckpointPart) -> Option<Vec<u8>> {
    let body = postcard::to_allocvec(part).ok()?;
    if body.len() > MAX_FRAME {
        return None;
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

fn kind_code(k: RegionKind) -> u8 {
    match k {
        RegionKind::Image => 0,
        RegionKind::Heap => 1,
        RegionKind::Stack => 2,
        RegionKind::Anon => 3,
        RegionKind::File => 4,
    }
}

fn kind_of(code: u8) -> Option<RegionKind> {
    Some(match code {
        0 => RegionKind::Image,
        1 => RegionKind::Heap,
        2 => RegionKind::Stack,
        3 => RegionKind::Anon,
        4 => RegionKind::File,
        _ => return None,
    })
}

/// Why the job can never be checkpointed, if so.
pub fn never(p: &Process<'_>) -> Option<String> {
    let tasks = p.others.len() + 1;
    if tasks > 1 {
        let threads = p.others.values().filter(|t| t.tgid == p.task.tgid).count();
        return Some(if threads + 1 == tasks {
            format!("the job has {tasks} threads")
        } else {
            format!("the job has {tasks} processes")
        });
    }
    if p.task.abi == Abi::I386 {
        return Some("the job runs i386 code (its TLS segment is the node's)".into());
    }
    if !p.pipes.is_empty() {
        return Some("the job has a pipe".into());
    }
    if !p.task.timers.is_empty() {
        return Some("the job has POSIX timers (timer_create)".into());
    }
    None
}

/// Whether a checkpoint can be taken when the task next stops: it is not
/// in a call that waits, and nothing is asked of `hostd`'s stdin.
pub fn ready(p: &Process<'_>) -> bool {
    p.task.alive()
        && p.task.parked.is_none()
        && p.task.vfork_child.is_none()
        && p.task.futex.is_none()
        && !p.stdin_asked
        && p.task.pending == 0
}

impl Process<'_> {
    /// Takes a checkpoint of the job, whose only task is stopped at a timer
    /// tick ([`crate::process::Event::Interrupted`]), and sends it to
    /// `hostd` (see the module docs). Errors: [`CallError::Halt`] when
    /// `hostd` is gone; `EFAULT` if memory cannot be read (nothing more is
    /// sent then, and no `End`).
    pub fn take_checkpoint(&mut self) -> Result<Taken, CallError> {
        // hostd's offsets become the program's, and every write is in.
        self.settle_all_io()?;
        let pid = self.task.pid;
        let regs = self.node.regs(pid)?;
        let fpu = self.node.fpu(pid)?;
        let now = self.node.clock_ns();
        let t = &self.task;
        let header = Header {
            version: IMAGE_VERSION,
            regs: regs.encode().to_vec(),
            fpu: fpu.to_vec(),
            fs_base: t.fs_base,
            regions: t
                .vm
                .regions()
                .map(|r| RegionRecord {
                    start: r.start,
                    end: r.end,
                    prot: r.prot.to_linux(),
                    kind: kind_code(r.kind),
                })
                .collect(),
            brk_start: t.vm.brk_start(),
            brk: t.vm.brk_value(),
            stack_len: t.stack_len,
            fds: t
                .fds
                .iter()
                .map(|(fd, e)| {
                    let (kind, handle) = match e.file {
                        OpenFile::Stdio(StdStream::Stdin) => (0, 0),
                        OpenFile::Stdio(StdStream::Stdout) => (1, 0),
                        OpenFile::Stdio(StdStream::Stderr) => (2, 0),
                        OpenFile::HostFile(h) => (3, h),
                        // `never` refuses jobs with pipes.
                        OpenFile::Pipe { .. } => (255, 0),
                    };
                    FdRecord {
                        fd,
                        kind,
                        handle,
                        cloexec: e.cloexec,
                    }
                })
                .collect(),
            fd_limit: t.fds.limit() as u64,
            host_files: self
                .host_files
                .iter()
                .map(|(h, f)| (*h, f.flags, f.is_dir))
                .collect(),
            write_errors: self
                .write_errors
                .iter()
                .map(|(h, e)| (*h, e.raw()))
                .collect(),
            cwd: t.cwd.clone(),
            exe: t.exe.clone(),
            uid: t.uid,
            gid: t.gid,
            umask: t.umask,
            comm: t.comm.to_vec(),
            clear_child_tid: t.clear_child_tid,
            sigactions: t.sigactions.iter().map(|(s, a)| (*s, a.clone())).collect(),
            sigmask: t.sigmask,
            altstack: t.altstack.clone(),
            itimer_real: t
                .itimer_real
                .map(|(at, every)| (at.saturating_sub(now), every)),
            job_ns: now.saturating_sub(self.start_ns),
            monotonic_ns: self.monotonic_ns(),
            realtime_ns: self.realtime_ns,
            stdin: self.stdin.iter().copied().collect(),
            stdin_eof: self.stdin_eof,
            tty: self.tty,
            winsize: self.winsize,
            next_id: self.next_id,
        };
        let header = postcard::to_allocvec(&header).map_err(|_| Errno::ENOMEM)?;
        self.send(&NodeMsg::Checkpoint(CheckpointPart::Header(header)))?;
        let mut taken = Taken {
            records: 1,
            bytes: 0,
        };
        let regions: Vec<Region> = self
            .task
            .vm
            .regions()
            .filter(|r| r.prot != Prot::NONE)
            .copied()
            .collect();
        let mut buf = vec![0u8; CHUNK];
        for r in regions {
            let mut at = r.start;
            while at < r.end {
                let len = (r.end - at).min(CHUNK as u64) as usize;
                self.node.read(pid, at, &mut buf[..len])?;
                // Runs of pages that are not all zero.
                let page = PAGE_SIZE as usize;
                let mut i = 0;
                while i < len {
                    if buf[i..i + page].iter().all(|b| *b == 0) {
                        i += page;
                        continue;
                    }
                    let from = i;
                    while i < len && buf[i..i + page].iter().any(|b| *b != 0) {
                        i += page;
                    }
                    let data = buf[from..i].to_vec();
                    taken.bytes += data.len() as u64;
                    taken.records += 1;
                    self.send(&NodeMsg::Checkpoint(CheckpointPart::Pages {
                        addr: at + from as u64,
                        data,
                    }))?;
                }
                at += len as u64;
            }
        }
        self.send(&NodeMsg::Checkpoint(CheckpointPart::End {
            records: taken.records,
            bytes: taken.bytes,
        }))?;
        Ok(taken)
    }

    /// Resumes a job rebuilt by [`restore`], whose application was started
    /// stopped: sets every register, the FPU state and the TLS base, then
    /// starts it. Errors: the node's (`ESRCH`, `EFAULT`).
    pub fn resume_restored(&mut self, r: &Resume) -> Result<(), Errno> {
        let pid = self.task.pid;
        self.node.set_regs(pid, &r.regs)?;
        self.node.set_fpu(pid, &r.fpu)?;
        if self.task.fs_base != 0 {
            self.node
                .set_tls(pid, crate::process::Tls::FsBase, self.task.fs_base)?;
        }
        self.node.reply(pid, 0);
        Ok(())
    }
}

/// Rebuilds job `p` (made with [`Process::new`] for an application that
/// has never run, with an empty address space of the node's layout and
/// memory limit) from a checkpoint image of `len` bytes that `read(offset,
/// len)` gives (`None`: unreadable). Maps and fills its memory, refusing any
/// region inside `reserved` (where the image itself is staged). Returns
/// what the application resumes with ([`Process::resume_restored`]).
///
/// # Errors
/// One line saying what is wrong with the image: truncated or corrupt
/// records, another version, regions out of place or over the memory
/// limit, pages outside the regions, counts that do not match.
pub fn restore(
    p: &mut Process<'_>,
    read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    len: u64,
    reserved: (u64, u64),
) -> Result<Resume, String> {
    let mut at = 0u64;
    let mut next = || -> Result<Option<CheckpointPart>, String> {
        if at == len {
            return Ok(None);
        }
        let prefix = read(at, 4).ok_or("the checkpoint image cannot be read")?;
        let n = u32::from_be_bytes(prefix[..4].try_into().map_err(|_| "truncated")?) as usize;
        if n > MAX_FRAME || at + 4 + n as u64 > len {
            return Err(format!(
                "the checkpoint image is corrupt: a record of {n} bytes at offset {at}"
            ));
        }
        let body = read(at + 4, n).ok_or("the checkpoint image cannot be read")?;
        at += 4 + n as u64;
        postcard::from_bytes(&body).map(Some).map_err(|_| {
            format!(
                "the checkpoint image is corrupt at offset {}",
                at - 4 - n as u64
            )
        })
    };
    let Some(CheckpointPart::Header(h)) = next()? else {
        return Err("not a checkpoint image (it does not start with a header)".into());
    };
    let h: Header =
        postcard::from_bytes(&h).map_err(|_| String::from("the checkpoint's header is corrupt"))?;
    if h.version != IMAGE_VERSION {
        return Err(format!(
            "checkpoint image version {} but this node reads {IMAGE_VERSION}",
            h.version
        ));
    }
    let regs = AppRegs::decode(&h.regs).ok_or("the checkpoint's registers are corrupt")?;
    let fpu: [u8; 512] = h
        .fpu
        .as_slice()
        .try_into()
        .map_err(|_| "the checkpoint's FPU state is corrupt")?;
    let mut regions = Vec::with_capacity(h.regions.len());
    for r in &h.regions {
        let kind = kind_of(r.kind)
            .filter(|_| r.start < r.end)
            .ok_or("the checkpoint's regions are corrupt")?;
        let prot = Prot::from_linux(u64::from(r.prot))
            .map_err(|_| "the checkpoint's regions are corrupt")?;
        if r.start < reserved.1 && reserved.0 < r.end {
            return Err(format!(
                "the checkpointed job has memory at {:#x}, where this node stages uploads",
                r.start
            ));
        }
        regions.push(Region {
            start: r.start,
            end: r.end,
            prot,
            kind,
        });
    }
    let layout: UserLayout = *p.task.vm.layout();
    let limit = p.task.vm.limit();
    let (vm, effects) = AddressSpace::restore(layout, limit, &regions, h.brk_start, h.brk)
        .map_err(|e| match e {
            Errno::ENOMEM => format!(
                "the checkpointed job needs {} MiB; this node can give {} MiB",
                regions
                    .iter()
                    .fold(0u64, |sum, r| sum.saturating_add(r.len()))
                    >> 20,
                limit >> 20
            ),
            _ => String::from("the checkpoint's regions are out of place"),
        })?;
    let pid = p.task.pid;
    for e in effects {
        if let VmEffect::Map { start, end, prot } = e {
            p.node
                .map(pid, start, end - start, prot)
                .map_err(|_| String::from("out of memory rebuilding the job"))?;
        }
    }
    let (mut records, mut bytes) = (1u64, 0u64);
    loop {
        match next()? {
            Some(CheckpointPart::Pages { addr, data }) => {
                let end = addr.checked_add(data.len() as u64);
                let inside = end.is_some_and(|end| {
                    vm.region_at(addr).is_some_and(|r| {
                        r.prot != Prot::NONE
                            && vm.region_at(end - 1).is_some()
                            && vm.check_access(addr, data.len() as u64, false).is_ok()
                    })
                });
                if data.is_empty() || !inside {
                    return Err(format!(
                        "the checkpoint has pages at {addr:#x} outside the job's memory"
                    ));
                }
                p.node
                    .write(pid, addr, &data)
                    .map_err(|_| format!("cannot write the job's memory at {addr:#x}"))?;
                records += 1;
                bytes += data.len() as u64;
            }
            Some(CheckpointPart::End {
                records: r,
                bytes: b,
            }) if r == records && b == bytes => break,
            Some(CheckpointPart::End { .. }) => {
                return Err("the checkpoint image is incomplete (its counts differ)".into());
            }
            Some(_) => return Err("the checkpoint image is corrupt (a record out of order)".into()),
            None => return Err("the checkpoint image is truncated (no end record)".into()),
        }
    }
    let mut fds = FdTable::new(usize::try_from(h.fd_limit).unwrap_or(FdTable::DEFAULT_LIMIT));
    for f in &h.fds {
        let file = match f.kind {
            0 => OpenFile::Stdio(StdStream::Stdin),
            1 => OpenFile::Stdio(StdStream::Stdout),
            2 => OpenFile::Stdio(StdStream::Stderr),
            3 => OpenFile::HostFile(f.handle),
            _ => return Err("the checkpoint's descriptors are corrupt".into()),
        };
        fds.restore(
            f.fd,
            FdEntry {
                file,
                cloexec: f.cloexec,
            },
        )
        .map_err(|_| String::from("the checkpoint's descriptors are corrupt"))?;
    }
    let now = p.node.clock_ns();
    let t = &mut p.task;
    t.vm = vm;
    t.fds = fds;
    t.fs_base = h.fs_base;
    t.stack_len = h.stack_len;
    t.cwd = h.cwd;
    t.exe = h.exe;
    t.uid = h.uid;
    t.gid = h.gid;
    t.umask = h.umask;
    let n = h.comm.len().min(t.comm.len());
    t.comm[..n].copy_from_slice(&h.comm[..n]);
    t.clear_child_tid = h.clear_child_tid;
    t.sigactions = h.sigactions.into_iter().collect::<BTreeMap<_, _>>();
    t.sigmask = h.sigmask;
    t.altstack = h.altstack;
    t.itimer_real = h
        .itimer_real
        .map(|(left, every)| (now.saturating_add(left), every));
    p.host_files = h
        .host_files
        .into_iter()
        .map(|(handle, flags, is_dir)| (handle, HostFile { flags, is_dir }))
        .collect();
    p.write_errors = h
        .write_errors
        .into_iter()
        .map(|(handle, e)| (handle, Errno::new(e).unwrap_or(Errno::EIO)))
        .collect();
    p.start_ns = now.saturating_sub(h.job_ns);
    p.monotonic_offset_ns = h.monotonic_ns.saturating_sub(now);
    p.realtime_ns = h.realtime_ns;
    p.stdin = h.stdin.into_iter().collect();
    p.stdin_eof = h.stdin_eof;
    p.tty = h.tty;
    p.winsize = h.winsize;
    p.next_id = h.next_id;
    Ok(Resume { regs, fpu })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::HostMsg;
    use crate::process::Event;
    use crate::process::fake::FakeNode;
    use crate::syscall::exec::STAGING;
    use syscalls::x86_64::Sysno as X;

    const PID: u64 = 7;

    fn process<'n>(node: &'n mut FakeNode) -> Process<'n> {
        node.first_pid = PID;
        let vm = AddressSpace::new(UserLayout::for_abi(Abi::X86_64), 64 << 20);
        let mut p = Process::new(node, 1, PID, Abi::X86_64, vm);
        p.task.fds = FdTable::with_stdio(FdTable::DEFAULT_LIMIT);
        p
    }

    fn call(p: &mut Process<'_>, nr: X, args: &[u64]) -> i64 {
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        p.syscall(Abi::X86_64, nr as u64, a).unwrap()
    }

    /// The image `hostd` would store from what the node sent.
    fn image(sent: &[NodeMsg]) -> Vec<u8> {
        sent.iter()
            .filter_map(|m| match m {
                NodeMsg::Checkpoint(
                    part @ (CheckpointPart::Header(_)
                    | CheckpointPart::Pages { .. }
                    | CheckpointPart::End { .. }),
                ) => Some(encode_record(part).unwrap()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn restore_from(node: &mut FakeNode, img: &[u8]) -> Result<(Resume, Vec<Region>, u64), String> {
        let mut p = process(node);
        let mut read = |off: u64, len: usize| {
            img.get(off as usize..off as usize + len)
                .map(<[u8]>::to_vec)
        };
        let r = restore(
            &mut p,
            &mut read,
            img.len() as u64,
            (STAGING, STAGING + (1 << 20)),
        )?;
        p.resume_restored(&r).unwrap();
        let regions = p.task.vm.regions().copied().collect();
        Ok((r, regions, p.monotonic_ns()))
    }

    /// A job with memory (a zero page between two written ones), a grown
    /// break, a handler and a mask, registers and FPU state is checkpointed
    /// through the event loop and rebuilt on another node: the same memory,
    /// regions, registers, FPU state, TLS base and dispositions, a clock
    /// that does not go back, and only non-zero pages in the image.
    #[test]
    fn a_job_rebuilt_from_its_checkpoint_is_the_same_job() {
        let mut a = FakeNode {
            now_ns: 50_000_000_000,
            regs: AppRegs {
                gpr: core::array::from_fn(|i| 0x1000 + i as u64),
                rip: 0x40_1000,
                rflags: 0x246,
            },
            ..FakeNode::default()
        };
        a.fpu.insert(PID, core::array::from_fn(|i| i as u8));
        a.inbox.push_back(HostMsg::Checkpoint);
        let (regions, words, mono) = {
            let mut p = process(&mut a);
            let m = call(&mut p, X::mmap, &[0, 3 * 4096, 3, 0x22, u64::MAX, 0]) as u64;
            p.load_mem(m, b"first page").unwrap();
            p.load_mem(m + 2 * 4096, b"third page").unwrap();
            let brk = call(&mut p, X::brk, &[0]) as u64;
            call(&mut p, X::brk, &[brk + 8192]);
            p.task.fs_base = 0x7000_1234;
            p.task.sigactions.insert(10, vec![1, 2, 3, 4]);
            p.task.sigmask = 1 << 3;
            p.stdin.extend(b"unread".iter().copied());
            p.poll_host();
            // The loop asks for a stop at the next tick, and takes it there.
            assert!(p.handle(Event::Timeout).is_none());
            assert!(p.checkpoint.stop_asked);
            assert!(p.handle(Event::Interrupted(PID)).is_none());
            assert_eq!(p.checkpoint.taken, 1);
            let regions: Vec<Region> = p.task.vm.regions().copied().collect();
            (regions, (m, brk), p.monotonic_ns())
        };
        let pages: u64 = a
            .sent
            .iter()
            .filter_map(|m| match m {
                NodeMsg::Checkpoint(CheckpointPart::Pages { data, .. }) => Some(data.len() as u64),
                _ => None,
            })
            .sum();
        assert_eq!(pages, 2 * 4096, "only the two written pages travel");
        let img = image(&a.sent);

        let mut b = FakeNode {
            now_ns: 2_000_000_000,
            ..FakeNode::default()
        };
        let (resume, got_regions, b_mono) = restore_from(&mut b, &img).unwrap();
        assert_eq!(got_regions, regions);
        assert_eq!(resume.regs, a.regs);
        assert_eq!(b.set_regs, vec![a.regs]);
        assert_eq!(b.fpu[&PID], a.fpu[&PID]);
        assert!(b.tls.contains(&(crate::process::Tls::FsBase, 0x7000_1234)));
        assert_eq!(b.replied, vec![(PID, 0)]);
        assert!(
            b_mono >= mono,
            "CLOCK_MONOTONIC went back: {b_mono} < {mono}"
        );
        let (m, _) = words;
        let mut page = vec![0u8; 3 * 4096];
        crate::process::Node::read(&mut b, PID, m, &mut page).unwrap();
        assert_eq!(&page[..10], b"first page");
        assert!(page[4096..8192].iter().all(|x| *x == 0));
        assert_eq!(&page[8192..8202], b"third page");
    }

    /// Damaged images are refused with a reason, never a panic: cut short,
    /// a byte flipped anywhere, pages outside the job's memory.
    #[test]
    fn damaged_images_are_refused_with_a_reason() {
        let mut a = FakeNode::default();
        {
            let mut p = process(&mut a);
            let m = call(&mut p, X::mmap, &[0, 4096, 3, 0x22, u64::MAX, 0]) as u64;
            p.load_mem(m, b"data").unwrap();
            p.take_checkpoint().unwrap();
        }
        let img = image(&a.sent);
        assert!(restore_from(&mut FakeNode::default(), &img).is_ok());
        let cut = &img[..img.len() - 3];
        let e = restore_from(&mut FakeNode::default(), cut).unwrap_err();
        assert!(e.contains("corrupt") || e.contains("truncated"), "{e}");
        for i in (0..img.len()).step_by(7) {
            let mut bad = img.clone();
            bad[i] ^= 0x5a;
            // Either refused, or (a flipped data byte) rebuilt.
            let _ = restore_from(&mut FakeNode::default(), &bad);
        }
        let mut stray = image(&a.sent[..1]);
        stray.extend(
            encode_record(&CheckpointPart::Pages {
                addr: 0x10_0000,
                data: vec![1; 4096],
            })
            .unwrap(),
        );
        let e = restore_from(&mut FakeNode::default(), &stray).unwrap_err();
        assert!(e.contains("outside the job's memory"), "{e}");
        let e = restore_from(&mut FakeNode::default(), b"\0\0\0\x01\x05").unwrap_err();
        assert!(
            e.contains("not a checkpoint") || e.contains("corrupt"),
            "{e}"
        );
    }

    /// Found by the `checkpoint` fuzz target: a region over the memory
    /// limit followed by one that ends before it starts made the error
    /// message's size sum overflow. Both are refused with a reason now.
    #[test]
    fn regions_over_the_limit_or_backwards_are_refused() {
        let mut a = FakeNode::default();
        {
            let mut p = process(&mut a);
            call(&mut p, X::mmap, &[0, 4096, 3, 0x22, u64::MAX, 0]);
            p.take_checkpoint().unwrap();
        }
        let Some(NodeMsg::Checkpoint(CheckpointPart::Header(h))) = a.sent.first() else {
            panic!("no header: {:?}", a.sent);
        };
        let header: Header = postcard::from_bytes(h).unwrap();
        let with = |regions: Vec<RegionRecord>| {
            let h = Header {
                regions,
                ..header.clone()
            };
            let part = CheckpointPart::Header(postcard::to_allocvec(&h).unwrap());
            let mut img = encode_record(&part).unwrap();
            img.extend(
                encode_record(&CheckpointPart::End {
                    records: 1,
                    bytes: 0,
                })
                .unwrap(),
            );
            restore_from(&mut FakeNode::default(), &img)
        };
        let huge = RegionRecord {
            start: 0x1000_0000,
            end: 0x7000_0000,
            prot: 3,
            kind: 3,
        };
        let backwards = RegionRecord {
            start: 0x8000_0000,
            end: 0x10_0000,
            prot: 3,
            kind: 3,
        };
        let e = with(vec![huge, backwards]).unwrap_err();
        assert!(e.contains("corrupt"), "{e}");
        let e = with(vec![huge]).unwrap_err();
        assert!(
            e.contains("needs 1536 MiB; this node can give 64 MiB"),
            "{e}"
        );
        let e = with(vec![backwards]).unwrap_err();
        assert!(e.contains("corrupt"), "{e}");
    }

    /// A job with a second process, or a pipe, is refused once with the
    /// reason, and no checkpoint is attempted.
    #[test]
    fn jobs_that_cannot_be_checkpointed_say_why() {
        let mut a = FakeNode::default();
        a.inbox.push_back(HostMsg::Checkpoint);
        {
            let mut p = process(&mut a);
            let fds = call(&mut p, X::mmap, &[0, 4096, 3, 0x22, u64::MAX, 0]) as u64;
            assert_eq!(call(&mut p, X::pipe, &[fds]), 0);
            p.poll_host();
            assert!(p.handle(Event::Timeout).is_none());
            assert!(p.checkpoint.refused);
            assert!(!p.checkpoint.stop_asked);
        }
        let refused: Vec<&String> = a
            .sent
            .iter()
            .filter_map(|m| match m {
                NodeMsg::Checkpoint(CheckpointPart::Refused { reason }) => Some(reason),
                _ => None,
            })
            .collect();
        assert_eq!(refused, vec!["the job has a pipe"]);
        assert_eq!(a.interrupted, 0);
    }
}
