//! Calls served entirely on the node: memory (`brk(2)`, `mmap(2)`,
//! `munmap(2)`, `mprotect(2)`, `mremap(2)`, `madvise(2)`), process
//! (`exit(2)`, `arch_prctl(2)`, `set_thread_area(2)`, `uname(2)`, ids,
//! rlimits, `getrandom(2)`, `kill(2)`, `futex(2)`, `prctl(2)`), time
//! (`clock_gettime(2)`, `gettimeofday(2)`, `time(2)`, `nanosleep(2)`,
//! `clock_nanosleep(2)`) and signal bookkeeping (`rt_sigaction(2)`,
//! `rt_sigprocmask(2)`, `sigaltstack(2)`: recorded; SiON delivers no
//! asynchronous signals).

use alloc::vec;
use alloc::vec::Vec;

use crate::Abi;
use crate::errno::Errno;
use crate::exit::{DefaultAction, Signal};
use crate::fd::OpenFile;
use crate::job::{CHUNK, FileRequest};
use crate::syscall::{IdKind, RlimitLayout, Syscall, TimeLayout};
use crate::vm::{MmapFlags, Prot, RegionKind, VmEffect};

use super::{CallError, CallResult, Process, Tls};

const NS: u64 = 1_000_000_000;

// arch_prctl(2) codes.
const ARCH_SET_GS: i32 = 0x1001;
const ARCH_SET_FS: i32 = 0x1002;
const ARCH_GET_FS: i32 = 0x1003;
const ARCH_GET_GS: i32 = 0x1004;

// futex(2) operations.
const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_REQUEUE: i32 = 3;
const FUTEX_CMP_REQUEUE: i32 = 4;
const FUTEX_WAKE_OP: i32 = 5;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_CLOCK_REALTIME: i32 = 256;
const FUTEX_PRIVATE: i32 = 128;

// madvise(2).
const MADV_DONTNEED: i32 = 4;

// prctl(2) options.
const PR_SET_PDEATHSIG: i32 = 1;
const PR_GET_PDEATHSIG: i32 = 2;
const PR_GET_DUMPABLE: i32 = 3;
const PR_SET_DUMPABLE: i32 = 4;
const PR_SET_NAME: i32 = 15;
const PR_GET_NAME: i32 = 16;
const PR_SET_NO_NEW_PRIVS: i32 = 38;
const PR_GET_NO_NEW_PRIVS: i32 = 39;
const PR_SET_VMA: i32 = 0x5356_4d41;

const RLIM_INFINITY: u64 = u64::MAX;

impl Process<'_> {
    /// Serves a node call.
    pub fn misc_call(&mut self, sc: Syscall) -> CallResult {
        match sc {
            // ---- memory ----
            Syscall::Brk { addr } => {
                let (v, effects) = self.vm.brk(addr);
                self.apply(&effects)?;
                Ok(v)
            }
            Syscall::Mmap {
                addr,
                length,
                prot,
                flags,
                fd,
                offset,
            } => self.mmap(addr, length, prot, flags, fd, offset),
            Syscall::OldMmap { args } => {
                let raw = self.read_mem(args, 24)?;
                let w = |i: usize| {
                    u64::from(u32::from_le_bytes(
                        raw[i * 4..i * 4 + 4].try_into().unwrap_or([0; 4]),
                    ))
                };
                self.mmap(w(0), w(1), w(2), w(3), w(4) as u32 as i32, w(5))
            }
            Syscall::Munmap { addr, length } => {
                let effects = self.vm.munmap(addr, length)?;
                self.apply(&effects)?;
                Ok(0)
            }
            Syscall::Mprotect { addr, len, prot } => {
                let prot = Prot::from_linux(prot)?;
                let effects = self.vm.mprotect(addr, len, prot)?;
                self.apply(&effects)?;
                Ok(0)
            }
            Syscall::Mremap {
                old_address,
                old_size,
                new_size,
                flags,
                new_address,
            } => {
                let (addr, effects) =
                    self.vm
                        .mremap(old_address, old_size, new_size, flags, new_address)?;
                self.apply(&effects)?;
                Ok(addr)
            }
            Syscall::Madvise {
                addr,
                length,
                advice,
            } => {
                if addr & 0xfff != 0 {
                    return Err(Errno::EINVAL.into());
                }
                if advice == MADV_DONTNEED {
                    self.discard(addr, length)?;
                }
                Ok(0)
            }

            // ---- process ----
            Syscall::Exit { status } | Syscall::ExitGroup { status } => {
                self.kill((status & 0xff) << 8);
                Err(CallError::Halt)
            }
            Syscall::ArchPrctl { code, addr } => self.arch_prctl(code, addr),
            Syscall::SetThreadArea { u_info } => {
                let raw = self.read_mem(u_info, 16)?;
                let base = u32::from_le_bytes(raw[4..8].try_into().unwrap_or([0; 4]));
                let entry = self.node.set_tls(Tls::I386Segment, u64::from(base))
                    .map_err(|_| Errno::EINVAL)?;
                self.write_mem(u_info, &(entry as u32).to_le_bytes())?;
                Ok(0)
            }
            Syscall::SetTidAddress { .. } | Syscall::Gettid | Syscall::Getpid => Ok(self.pid),
            Syscall::Umask { mask } => {
                let old = self.umask;
                self.umask = mask & 0o777;
                Ok(u64::from(old))
            }
            Syscall::Getppid => Ok(self.node.manager_pid()),
            Syscall::SetRobustList { len, .. } => {
                if len != 3 * self.abi.word_size() as u64 {
                    return Err(Errno::EINVAL.into());
                }
                Ok(0)
            }
            Syscall::Rseq { .. } => Err(Errno::ENOSYS.into()),
            Syscall::Prctl { option, arg2, .. } => self.prctl(option, arg2),
            Syscall::Uname { buf } => {
                let mut u = vec![0u8; 6 * 65];
                let machine: &[u8] = match self.abi {
                    Abi::X86_64 => b"x86_64",
                    Abi::I386 => b"i686",
                };
                let fields: [&[u8]; 6] = [
                    b"Linux",
                    self.node.node_name().as_bytes(),
                    b"6.1.0-sion",
                    b"#1 SiON",
                    machine,
                    b"(none)",
                ];
                for (i, f) in fields.into_iter().enumerate() {
                    let n = f.len().min(64);
                    u[i * 65..i * 65 + n].copy_from_slice(&f[..n]);
                }
                self.write_mem(buf, &u)?;
                Ok(0)
            }
            Syscall::GetId { which, legacy16 } => {
                let id = match which {
                    IdKind::Uid | IdKind::Euid => self.uid,
                    IdKind::Gid | IdKind::Egid => self.gid,
                };
                Ok(u64::from(if legacy16 && id > 65535 { 65534 } else { id }))
            }
            Syscall::Getrlimit {
                resource,
                rlim,
                layout,
            } => {
                let (cur, max) = self.rlimit(resource)?;
                let mut b = Vec::new();
                for v in [cur, max] {
                    match layout {
                        RlimitLayout::Rlimit64 => b.extend_from_slice(&v.to_le_bytes()),
                        RlimitLayout::Rlimit32 => {
                            b.extend_from_slice(&(v.min(u64::from(u32::MAX)) as u32).to_le_bytes())
                        }
                        RlimitLayout::Rlimit32Clamped => {
                            b.extend_from_slice(&(v.min(0x7fff_ffff) as u32).to_le_bytes())
                        }
                    }
                }
                self.write_mem(rlim, &b)?;
                Ok(0)
            }
            Syscall::Prlimit64 {
                pid,
                resource,
                old_limit,
                ..
            } => {
                if pid != 0 && pid as u64 != self.pid {
                    return Err(Errno::ESRCH.into());
                }
                let (cur, max) = self.rlimit(resource)?;
                if old_limit != 0 {
                    let mut b = [0u8; 16];
                    b[..8].copy_from_slice(&cur.to_le_bytes());
                    b[8..].copy_from_slice(&max.to_le_bytes());
                    self.write_mem(old_limit, &b)?;
                }
                Ok(0)
            }
            Syscall::Getrandom { buf, buflen, .. } => {
                let n = buflen.min(CHUNK as u64) as usize;
                let mut bytes = vec![0u8; n];
                self.node.random(&mut bytes);
                self.write_mem(buf, &bytes)?;
                Ok(n as u64)
            }
            Syscall::SchedYield => {
                self.node.yield_now();
                Ok(0)
            }
            Syscall::Kill { pid, sig } => {
                let me = self.pid as i32;
                if pid == me || pid == 0 || pid == -1 || pid == -me {
                    self.raise(sig)
                } else {
                    Err(Errno::ESRCH.into())
                }
            }
            Syscall::Tkill { tid, sig } => {
                if tid as u64 == self.pid {
                    self.raise(sig)
                } else {
                    Err(Errno::ESRCH.into())
                }
            }
            Syscall::Tgkill { tgid, tid, sig } => {
                if tid as u64 == self.pid && tgid as u64 == self.pid {
                    self.raise(sig)
                } else {
                    Err(Errno::ESRCH.into())
                }
            }
            Syscall::Futex {
                uaddr,
                futex_op,
                val,
                timeout,
                time,
                ..
            } => self.futex(uaddr, futex_op, val, timeout, time),

            // ---- time ----
            Syscall::ClockGettime { clockid, tp, time } => {
                let ns = self.clock(clockid)?;
                self.write_timespec(tp, ns, time, 1)?;
                Ok(0)
            }
            Syscall::ClockGetres { clockid, res, time } => {
                self.clock(clockid)?;
                if res != 0 {
                    self.write_timespec(res, 1, time, 1)?;
                }
                Ok(0)
            }
            Syscall::Gettimeofday { tv, tz, time } => {
                if tv != 0 {
                    let ns = self.realtime_ns();
                    self.write_timespec(tv, ns, time, 1000)?;
                }
                if tz != 0 {
                    self.write_mem(tz, &[0u8; 8])?;
                }
                Ok(0)
            }
            Syscall::Time { tloc, time } => {
                let secs = self.realtime_ns() / NS;
                if tloc != 0 {
                    match time {
                        TimeLayout::Time32 => self.write_mem(tloc, &(secs as u32).to_le_bytes())?,
                        TimeLayout::Time64 => self.write_mem(tloc, &secs.to_le_bytes())?,
                    }
                }
                Ok(secs)
            }
            Syscall::Nanosleep { req, time, .. } => {
                let ns = self.read_timespec(req, time)?;
                self.sleep_until(self.node.clock_ns().saturating_add(ns))?;
                Ok(0)
            }
            Syscall::ClockNanosleep {
                clockid,
                flags,
                req,
                time,
                ..
            } => {
                let t = self.read_timespec(req, time)?;
                let now = self.clock(clockid)?;
                let wait = if flags & 1 != 0 {
                    t.saturating_sub(now)
                } else {
                    t
                };
                self.sleep_until(self.node.clock_ns().saturating_add(wait))?;
                Ok(0)
            }

            // ---- signals ----
            Syscall::RtSigaction {
                signum,
                act,
                oldact,
                sigsetsize,
            } => {
                if sigsetsize != 8 || !(1..=64).contains(&signum) {
                    return Err(Errno::EINVAL.into());
                }
                if act != 0 && (signum == 9 || signum == 19) {
                    return Err(Errno::EINVAL.into());
                }
                let size = match self.abi {
                    Abi::X86_64 => 32,
                    Abi::I386 => 20,
                };
                let new = if act != 0 {
                    Some(self.read_mem(act, size)?)
                } else {
                    None
                };
                if oldact != 0 {
                    let old = self
                        .sigactions
                        .get(&signum)
                        .cloned()
                        .unwrap_or_else(|| vec![0; size as usize]);
                    self.write_mem(oldact, &old)?;
                }
                if let Some(new) = new {
                    self.sigactions.insert(signum, new);
                }
                Ok(0)
            }
            Syscall::RtSigprocmask {
                how,
                set,
                oldset,
                sigsetsize,
            } => {
                if sigsetsize != 8 {
                    return Err(Errno::EINVAL.into());
                }
                let new = if set != 0 {
                    let b = self.read_mem(set, 8)?;
                    Some(u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])))
                } else {
                    None
                };
                if new.is_some() && !(0..=2).contains(&how) {
                    return Err(Errno::EINVAL.into());
                }
                if oldset != 0 {
                    self.write_mem(oldset, &self.sigmask.to_le_bytes())?;
                }
                if let Some(s) = new {
                    let unblockable = (1u64 << 8) | (1u64 << 18); // SIGKILL, SIGSTOP
                    self.sigmask = match how {
                        0 => self.sigmask | s,
                        1 => self.sigmask & !s,
                        _ => s,
                    } & !unblockable;
                }
                Ok(0)
            }
            Syscall::Sigaltstack { ss, old_ss } => {
                let size = match self.abi {
                    Abi::X86_64 => 24,
                    Abi::I386 => 12,
                };
                let new = if ss != 0 {
                    Some(self.read_mem(ss, size)?)
                } else {
                    None
                };
                if old_ss != 0 {
                    let old = self.altstack.clone().unwrap_or_else(|| {
                        // { ss_sp = 0, ss_flags = SS_DISABLE, ss_size = 0 }
                        let mut b = vec![0u8; size as usize];
                        let at = self.abi.word_size();
                        b[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
                        b
                    });
                    self.write_mem(old_ss, &old)?;
                }
                if new.is_some() {
                    self.altstack = new;
                }
                Ok(0)
            }
            _ => Err(Errno::ENOSYS.into()),
        }
    }

    /// Wall-clock time now: the submitter's time at submission plus the time
    /// since the job started (ns since the epoch).
    pub fn realtime_ns(&self) -> u64 {
        self.realtime_ns + (self.node.clock_ns() - self.start_ns)
    }

    /// Reads clock `clockid` (ns). `CLOCK_REALTIME` (0, 5 coarse) is
    /// [`Job::realtime_ns`]; `MONOTONIC` (1, 4 raw, 6 coarse) and `BOOTTIME`
    /// (7) the node clock; the CPU-time clocks (2, 3) the time since the job
    /// started (the job has the CPU to itself). Errors: `EINVAL`.
    fn clock(&self, clockid: i32) -> Result<u64, CallError> {
        match clockid {
            0 | 5 | 8 => Ok(self.realtime_ns()),
            1 | 4 | 6 | 7 | 9 => Ok(self.node.clock_ns()),
            2 | 3 => Ok(self.node.clock_ns() - self.start_ns),
            _ => Err(Errno::EINVAL.into()),
        }
    }

    /// Writes `ns` as a `timespec` (`div` 1) or `timeval` (`div` 1000).
    fn write_timespec(&mut self, addr: u64, ns: u64, layout: TimeLayout, div: u64) -> Result<(), CallError> {
        let (s, sub) = (ns / NS, (ns % NS) / div);
        match layout {
            TimeLayout::Time32 => {
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&(s as u32).to_le_bytes());
                b[4..].copy_from_slice(&(sub as u32).to_le_bytes());
                self.write_mem(addr, &b)
            }
            TimeLayout::Time64 => {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&s.to_le_bytes());
                b[8..].copy_from_slice(&sub.to_le_bytes());
                self.write_mem(addr, &b)
            }
        }
    }

    /// Reads a `timespec` as ns. Errors: `EFAULT`; `EINVAL` for a negative
    /// time or nanoseconds outside `0..1e9`.
    fn read_timespec(&mut self, addr: u64, layout: TimeLayout) -> Result<u64, CallError> {
        let (s, ns) = match layout {
            TimeLayout::Time32 => {
                let b = self.read_mem(addr, 8)?;
                (
                    i64::from(i32::from_le_bytes(b[..4].try_into().unwrap_or([0; 4]))),
                    i64::from(i32::from_le_bytes(b[4..8].try_into().unwrap_or([0; 4]))),
                )
            }
            TimeLayout::Time64 => {
                let b = self.read_mem(addr, 16)?;
                (
                    i64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])),
                    i64::from_le_bytes(b[8..16].try_into().unwrap_or([0; 8])),
                )
            }
        };
        if s < 0 || !(0..NS as i64).contains(&ns) {
            return Err(Errno::EINVAL.into());
        }
        Ok((s as u64).saturating_mul(NS).saturating_add(ns as u64))
    }

    fn mmap(&mut self, addr: u64, length: u64, prot: u64, flags: u64, fd: i32, offset: u64) -> CallResult {
        let f = MmapFlags::parse(flags)?;
        let prot = Prot::from_linux(prot)?;
        let kind = if f.anonymous {
            RegionKind::Anon
        } else {
            RegionKind::File
        };
        let handle = if f.anonymous {
            None
        } else {
            if offset & 0xfff != 0 {
                return Err(Errno::EINVAL.into());
            }
            match self.fds.file(fd)? {
                OpenFile::HostFile(h) => {
                    if f.shared && prot.write {
                        // Writes could not reach the host file.
                        return Err(Errno::ENODEV.into());
                    }
                    Some(h)
                }
                _ => return Err(Errno::ENODEV.into()),
            }
        };
        let (start, effects) = self.vm.mmap(f.placement(addr), length, prot, kind)?;
        if let Err(e) = self.apply(&effects) {
            if let Ok(undo) = self.vm.munmap(start, length) {
                let _ = self.apply(&undo);
            }
            return Err(e);
        }
        if let (Some(h), true) = (handle, prot != Prot::NONE) {
            let mut done = 0u64;
            while done < length {
                let len = (length - done).min(CHUNK as u64) as u32;
                let (n, data) = self.host_value(FileRequest::Pread {
                    handle: h,
                    len,
                    offset: (offset + done) as i64,
                })?;
                if n == 0 {
                    break;
                }
                self.load_mem(start + done, &data[..(n as usize).min(data.len())])?;
                done += n;
            }
        }
        Ok(start)
    }

    /// Applies address-space effects to the application's page tables.
    ///
    /// The kernel has no present-but-inaccessible pages: fresh `PROT_NONE`
    /// mappings stay unmapped (any access faults; a later `mprotect` maps
    /// zeroed pages, which is what they hold), and `mprotect(PROT_NONE)` of
    /// pages with data keeps them read-only so the data survives.
    pub fn apply(&mut self, effects: &[VmEffect]) -> Result<(), CallError> {
        for e in effects {
            let r = match *e {
                VmEffect::Map { start, end, prot } => {
                    if prot == Prot::NONE {
                        Ok(())
                    } else {
                        self.node.map(start, end - start, prot)
                    }
                }
                VmEffect::Unmap { start, end } => self.node.unmap(start, end - start),
                VmEffect::Protect { start, end, prot } => {
                    self.node.map(start, end - start, readable(prot))
                }
                VmEffect::Move { from, to, len } => self.move_pages(from, to, len),
            };
            if r.is_err() {
                return Err(Errno::ENOMEM.into());
            }
        }
        Ok(())
    }

    /// Moves mapped pages (for `mremap`): maps the destination, copies, and
    /// unmaps the source. Unmapped source pages (`PROT_NONE`) stay zero.
    fn move_pages(&mut self, from: u64, to: u64, len: u64) -> Result<(), Errno> {
        let prot = self.vm.region_at(to).map_or(Prot::RW, |r| r.prot);
        self.node.map(to, len, readable(prot))?;
        let mut buf = vec![0u8; 4096];
        let mut off = 0;
        while off < len {
            if self.node.read(from + off, &mut buf).is_ok() {
                self.node.write(to + off, &buf)?;
            }
            off += 4096;
        }
        self.node.unmap(from, len)
    }

    /// `MADV_DONTNEED`: the pages read as zero afterwards (fresh frames).
    fn discard(&mut self, addr: u64, length: u64) -> Result<(), CallError> {
        let end = addr.saturating_add(length).saturating_add(0xfff) & !0xfff;
        let pieces: Vec<(u64, u64, Prot)> = self
            .vm
            .regions()
            .filter(|r| r.start < end && addr < r.end)
            .map(|r| (r.start.max(addr), r.end.min(end), r.prot))
            .collect();
        for (s, e, prot) in pieces {
            if prot != Prot::NONE {
                let _ = self.node.unmap(s, e - s);
                self.node.map(s, e - s, prot).map_err(|_| Errno::ENOMEM)?;
            }
        }
        Ok(())
    }

    fn arch_prctl(&mut self, code: i32, addr: u64) -> CallResult {
        if self.abi == Abi::I386 {
            return Err(Errno::EINVAL.into());
        }
        match code {
            ARCH_SET_FS => {
                self.node.set_tls(Tls::FsBase, addr).map_err(|_| Errno::EPERM)?;
                self.fs_base = addr;
                Ok(0)
            }
            ARCH_GET_FS => {
                self.write_mem(addr, &self.fs_base.to_le_bytes())?;
                Ok(0)
            }
            ARCH_GET_GS => {
                self.write_mem(addr, &0u64.to_le_bytes())?;
                Ok(0)
            }
            // The kernel keeps no GS base for applications.
            ARCH_SET_GS => Err(Errno::EPERM.into()),
            _ => Err(Errno::EINVAL.into()),
        }
    }

    fn prctl(&mut self, option: i32, arg2: u64) -> CallResult {
        match option {
            PR_SET_NAME => {
                let name = self
                    .read_cstr(arg2, 16)
                    .or_else(|_| self.read_mem(arg2, 15))?;
                self.comm = [0; 16];
                let n = name.len().min(15);
                self.comm[..n].copy_from_slice(&name[..n]);
                Ok(0)
            }
            PR_GET_NAME => {
                let comm = self.comm;
                self.write_mem(arg2, &comm)?;
                Ok(0)
            }
            PR_GET_PDEATHSIG => {
                self.write_mem(arg2, &0i32.to_le_bytes())?;
                Ok(0)
            }
            PR_GET_DUMPABLE => Ok(1),
            PR_SET_PDEATHSIG | PR_SET_DUMPABLE | PR_SET_NO_NEW_PRIVS | PR_SET_VMA => Ok(0),
            PR_GET_NO_NEW_PRIVS => Ok(0),
            _ => Err(Errno::EINVAL.into()),
        }
    }

    /// Values of resource limit `resource` (`getrlimit(2)`): the stack
    /// mapping, 1024 descriptors, the job's memory limit for data and address
    /// space, one process, no core files; others unlimited.
    fn rlimit(&self, resource: u32) -> Result<(u64, u64), CallError> {
        Ok(match resource {
            2 | 9 => (self.vm.limit(), self.vm.limit()), // RLIMIT_DATA, RLIMIT_AS
            3 => (self.stack_len, self.stack_len),       // RLIMIT_STACK
            4 => (0, 0),                                 // RLIMIT_CORE
            6 => (1, 1),                                 // RLIMIT_NPROC
            7 => (1024, 1024),                           // RLIMIT_NOFILE
            8 => (8 << 20, 8 << 20),                     // RLIMIT_MEMLOCK
            0..=15 => (RLIM_INFINITY, RLIM_INFINITY),
            _ => return Err(Errno::EINVAL.into()),
        })
    }

    /// The program signals itself. No handler can run (SiON delivers no
    /// signals), so a signal whose disposition is not "ignore" ends the job
    /// as its default action would.
    fn raise(&mut self, sig: i32) -> CallResult {
        if sig == 0 {
            return Ok(0);
        }
        let Some(s) = Signal::new(sig) else {
            return Err(Errno::EINVAL.into());
        };
        let handler = self.sigactions.get(&sig).map_or(0, |a| {
            let w = self.abi.word_size();
            let mut v = [0u8; 8];
            v[..w].copy_from_slice(&a[..w]);
            u64::from_le_bytes(v)
        });
        let action = s.default_action();
        if handler == 1 || (handler == 0 && action == DefaultAction::Ignore) {
            return Ok(0);
        }
        if matches!(action, DefaultAction::Stop | DefaultAction::Continue) {
            return Ok(0);
        }
        let core = if action == DefaultAction::Core {
            0x80
        } else {
            0
        };
        self.kill(sig | core);
        Err(CallError::Halt)
    }

    fn futex(&mut self, uaddr: u64, op: i32, val: u32, timeout: u64, time: TimeLayout) -> CallResult {
        let cmd = op & !(FUTEX_PRIVATE | FUTEX_CLOCK_REALTIME);
        match cmd {
            FUTEX_WAIT | FUTEX_WAIT_BITSET => {
                let b = self.read_mem(uaddr, 4)?;
                if u32::from_le_bytes(b[..4].try_into().unwrap_or([0; 4])) != val {
                    return Err(Errno::EAGAIN.into());
                }
                if timeout == 0 {
                    // One thread: nobody could wake it. Do not hang the job.
                    return Err(Errno::EAGAIN.into());
                }
                let t = self.read_timespec(timeout, time)?;
                let wait = if cmd == FUTEX_WAIT_BITSET {
                    let clock = if op & FUTEX_CLOCK_REALTIME != 0 { 0 } else { 1 };
                    t.saturating_sub(self.clock(clock)?)
                } else {
                    t
                };
                self.sleep_until(self.node.clock_ns().saturating_add(wait))?;
                Err(Errno::ETIMEDOUT.into())
            }
            FUTEX_WAKE | FUTEX_WAKE_BITSET | FUTEX_REQUEUE | FUTEX_CMP_REQUEUE | FUTEX_WAKE_OP => {
                Ok(0)
            }
            _ => Err(Errno::ENOSYS.into()),
        }
    }
}

/// The protection pages with `prot` get from the node: the kernel has no
/// present-but-inaccessible pages, so `PROT_NONE` pages that hold data stay
/// readable (any access still faults for a program that respects its own
/// `mprotect`; the data survives a later `mprotect` back).
fn readable(prot: Prot) -> Prot {
    if prot == Prot::NONE { Prot::R } else { prot }
}
