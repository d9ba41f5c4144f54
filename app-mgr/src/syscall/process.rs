//! Process calls, served on the node: `exit(2)`/`exit_group`,
//! `arch_prctl(2)`, `set_thread_area(2)`, `set_tid_address(2)`,
//! `set_robust_list(2)`, `rseq(2)`, `prctl(2)`, `uname(2)`, pids and ids,
//! `umask(2)`, resource limits, `getrandom(2)`, `sched_yield(2)`, `kill(2)`
//! and friends, `futex(2)` (one thread: waits time out, wakes find nobody).

use alloc::vec;
use alloc::vec::Vec;

use linux_raw_sys::general::{
    CLOCK_MONOTONIC, CLOCK_REALTIME, RLIM_INFINITY, RLIMIT_AS, RLIMIT_CORE, RLIMIT_DATA,
    RLIMIT_MEMLOCK, RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_RTTIME, RLIMIT_STACK, RUSAGE_CHILDREN,
    RUSAGE_SELF, RUSAGE_THREAD,
};
use linux_raw_sys::{general as g, prctl as pr};

use super::{Args, TimeLayout};
use crate::abi::Abi;
use crate::errno::Errno;
use crate::job::CHUNK;
use crate::process::{CallError, CallResult, FutexWait, Process, Tls};

// arch_prctl(2) codes (arch/x86/include/uapi/asm/prctl.h); linux-raw-sys
// has only ARCH_SET_FS.
const ARCH_SET_GS: i32 = g::ARCH_SET_FS as i32 - 1;
const ARCH_SET_FS: i32 = g::ARCH_SET_FS as i32;
const ARCH_GET_FS: i32 = g::ARCH_SET_FS as i32 + 1;
const ARCH_GET_GS: i32 = g::ARCH_SET_FS as i32 + 2;

const FUTEX_WAIT: i32 = g::FUTEX_WAIT as i32;
const FUTEX_WAKE: i32 = g::FUTEX_WAKE as i32;
const FUTEX_REQUEUE: i32 = g::FUTEX_REQUEUE as i32;
const FUTEX_CMP_REQUEUE: i32 = g::FUTEX_CMP_REQUEUE as i32;
const FUTEX_WAKE_OP: i32 = g::FUTEX_WAKE_OP as i32;
const FUTEX_WAIT_BITSET: i32 = g::FUTEX_WAIT_BITSET as i32;
const FUTEX_WAKE_BITSET: i32 = g::FUTEX_WAKE_BITSET as i32;
const FUTEX_CLOCK_REALTIME: i32 = g::FUTEX_CLOCK_REALTIME as i32;
const FUTEX_PRIVATE: i32 = g::FUTEX_PRIVATE_FLAG as i32;

const PR_SET_PDEATHSIG: i32 = pr::PR_SET_PDEATHSIG as i32;
const PR_GET_PDEATHSIG: i32 = pr::PR_GET_PDEATHSIG as i32;
const PR_GET_DUMPABLE: i32 = pr::PR_GET_DUMPABLE as i32;
const PR_SET_DUMPABLE: i32 = pr::PR_SET_DUMPABLE as i32;
const PR_SET_NAME: i32 = pr::PR_SET_NAME as i32;
const PR_GET_NAME: i32 = pr::PR_GET_NAME as i32;
const PR_SET_NO_NEW_PRIVS: i32 = pr::PR_SET_NO_NEW_PRIVS as i32;
const PR_GET_NO_NEW_PRIVS: i32 = pr::PR_GET_NO_NEW_PRIVS as i32;
const PR_SET_VMA: i32 = pr::PR_SET_VMA as i32;

/// x86_64 `arch_prctl(code, addr)`.
pub(super) fn arch_prctl(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.arch_prctl(a.int(0), a.word(1))
}

/// i386 `set_thread_area(u_info)`: one TLS segment; its GDT entry number is
/// written back into `u_info->entry_number`.
pub(super) fn set_thread_area(p: &mut Process<'_>, a: &Args) -> CallResult {
    let u_info = a.word(0);
    let raw = p.read_mem(u_info, 16)?;
    let base = u32::from_le_bytes(raw[4..8].try_into().unwrap_or([0; 4]));
    let entry = p
        .node
        .set_tls(p.task.pid, Tls::I386Segment, u64::from(base))
        .map_err(|_| Errno::EINVAL)?;
    p.write_mem(u_info, &(entry as u32).to_le_bytes())?;
    Ok(0)
}

/// `getpid()`: the thread group's id.
pub(super) fn getpid(p: &mut Process<'_>, _: &Args) -> CallResult {
    Ok(p.task.tgid)
}

/// `gettid()`: the thread's own id.
pub(super) fn gettid(p: &mut Process<'_>, _: &Args) -> CallResult {
    Ok(p.task.pid)
}

/// `set_tid_address(tidptr)`: where 0 is written (and a futex waiter woken)
/// when the thread ends; answers its id.
pub(super) fn set_tid_address(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.task.clear_child_tid = a.word(0);
    Ok(p.task.pid)
}

/// `umask(mask)`: returns the previous mask.
pub(super) fn umask(p: &mut Process<'_>, a: &Args) -> CallResult {
    let old = p.task.umask;
    p.task.umask = a.uint(0) & 0o777;
    Ok(u64::from(old))
}

/// `set_robust_list(head, len)`: accepted when `len` is the ABI's
/// `struct robust_list_head` size.
pub(super) fn set_robust_list(p: &mut Process<'_>, a: &Args) -> CallResult {
    if a.word(1) != 3 * p.task.abi.word_size() as u64 {
        return Err(Errno::EINVAL.into());
    }
    Ok(0)
}

/// `rseq(2)`: not provided (glibc then goes on without it).
pub(super) fn rseq(_: &mut Process<'_>, _: &Args) -> CallResult {
    Err(Errno::ENOSYS.into())
}

/// `prctl(option, arg2, …)`.
pub(super) fn prctl(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.prctl(a.int(0), a.word(1))
}

/// `uname(buf)`: Linux, the node's name, the ABI's machine.
pub(super) fn uname(p: &mut Process<'_>, a: &Args) -> CallResult {
    let mut u = vec![0u8; 6 * 65];
    let machine: &[u8] = match p.task.abi {
        Abi::X86_64 => b"x86_64",
        Abi::I386 => b"i686",
    };
    let node = p.node.node_name().as_bytes().to_vec();
    let fields: [&[u8]; 6] = [
        b"Linux",
        &node,
        b"6.1.0-sion",
        b"#1 SiON",
        machine,
        b"(none)",
    ];
    for (i, f) in fields.into_iter().enumerate() {
        let n = f.len().min(64);
        u[i * 65..i * 65 + n].copy_from_slice(&f[..n]);
    }
    p.write_mem(a.word(0), &u)?;
    Ok(0)
}

/// `getuid()`/`geteuid()` (x86_64; i386 `getuid32`/`geteuid32`).
pub(super) fn getuid(p: &mut Process<'_>, _: &Args) -> CallResult {
    Ok(u64::from(p.task.uid))
}

/// `getgid()`/`getegid()` (x86_64; i386 `getgid32`/`getegid32`).
pub(super) fn getgid(p: &mut Process<'_>, _: &Args) -> CallResult {
    Ok(u64::from(p.task.gid))
}

/// The 16-bit id an i386 legacy call answers (65534, "nobody", above 65535).
fn id16(id: u32) -> u64 {
    u64::from(if id > 65535 { 65534 } else { id })
}

/// i386 16-bit `getuid()`/`geteuid()`.
pub(super) fn getuid16(p: &mut Process<'_>, _: &Args) -> CallResult {
    Ok(id16(p.task.uid))
}

/// i386 16-bit `getgid()`/`getegid()`.
pub(super) fn getgid16(p: &mut Process<'_>, _: &Args) -> CallResult {
    Ok(id16(p.task.gid))
}

/// `getrlimit(resource, rlim)` with the ABI's `unsigned long` (x86_64
/// `getrlimit`, i386 `ugetrlimit`: `RLIM_INFINITY` is `0xffff_ffff`).
pub(super) fn getrlimit(p: &mut Process<'_>, a: &Args) -> CallResult {
    let max = match a.abi() {
        Abi::X86_64 => u64::MAX,
        Abi::I386 => u64::from(u32::MAX),
    };
    p.getrlimit(a.uint(0), a.word(1), max)
}

/// i386 old `getrlimit(resource, rlim)` (76): values clamped to `0x7fff_ffff`.
pub(super) fn old_getrlimit(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.getrlimit(a.uint(0), a.word(1), 0x7fff_ffff)
}

/// `prlimit64(pid, resource, new_limit, old_limit)`: this process only;
/// new limits are accepted and not applied.
pub(super) fn prlimit64(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (pid, resource, old_limit) = (a.int(0), a.uint(1), a.word(3));
    if pid != 0 && pid as u64 != p.task.pid {
        return Err(Errno::ESRCH.into());
    }
    let (cur, max) = p.rlimit(resource)?;
    if old_limit != 0 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&cur.to_le_bytes());
        b[8..].copy_from_slice(&max.to_le_bytes());
        p.write_mem(old_limit, &b)?;
    }
    Ok(0)
}

/// `getrusage(who, usage)`: the job has its CPU to itself, so its user time
/// is the time since it started; no system time (the node's work for it is
/// not counted), no children, and the memory it has mapped as `ru_maxrss`
/// (KiB). A `struct rusage` is two `timeval`s and 14 `long`s of the ABI.
pub(super) fn getrusage(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (who, usage) = (a.int(0), a.word(1));
    let (utime_ns, maxrss_kib) = match who {
        w if w == RUSAGE_SELF as i32 || w == RUSAGE_THREAD as i32 => {
            (p.node.clock_ns() - p.start_ns, p.task.vm.used() >> 10)
        }
        RUSAGE_CHILDREN => (0, 0),
        _ => return Err(Errno::EINVAL.into()),
    };
    let word = p.task.abi.word_size();
    let mut b = vec![0u8; 4 * word + 14 * word];
    let mut put =
        |i: usize, v: u64| b[i * word..(i + 1) * word].copy_from_slice(&v.to_le_bytes()[..word]);
    put(0, utime_ns / 1_000_000_000);
    put(1, utime_ns % 1_000_000_000 / 1000);
    put(4, maxrss_kib);
    p.write_mem(usage, &b)?;
    Ok(0)
}

// The x86_64 layout `getrusage` writes word by word, checked against
// linux-raw-sys's (i386's is the same in 32-bit words).
const _: () = {
    use core::mem::{offset_of, size_of};
    use linux_raw_sys::general::rusage;
    assert!(size_of::<rusage>() == 18 * 8);
    assert!(offset_of!(rusage, ru_stime) == 2 * 8);
    assert!(offset_of!(rusage, ru_maxrss) == 4 * 8);
};

/// `getrandom(buf, buflen, flags)`: at most 64 KiB per call.
pub(super) fn getrandom(p: &mut Process<'_>, a: &Args) -> CallResult {
    let n = a.word(1).min(CHUNK as u64) as usize;
    let mut bytes = vec![0u8; n];
    p.node.random(&mut bytes);
    p.write_mem(a.word(0), &bytes)?;
    Ok(n as u64)
}

/// `sched_yield()`.
pub(super) fn sched_yield(p: &mut Process<'_>, _: &Args) -> CallResult {
    p.node.yield_now();
    Ok(0)
}

/// `sched_getaffinity(pid, len, mask)`: the node's one CPU (CPU 0); the
/// answer is the bytes written (a `long`'s worth, as Linux's `nr_cpu_ids`
/// rounded up). Errors: `EINVAL` for a buffer smaller than that, `ESRCH`
/// for a pid outside the job.
pub(super) fn sched_getaffinity(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (pid, len, mask) = (a.int(0), a.word(1), a.word(2));
    if pid != 0 && p.task_of(pid as u64).is_none() {
        return Err(Errno::ESRCH.into());
    }
    let w = p.task.abi.word_size() as u64;
    if len < w {
        return Err(Errno::EINVAL.into());
    }
    let mut bytes = vec![0u8; w as usize];
    bytes[0] = 1;
    p.write_mem(mask, &bytes)?;
    Ok(w)
}

/// `sysinfo(info)`: the job's view of the node — uptime (the node's
/// clock), memory (the job's limit and what it has free of it, in bytes),
/// no swap, the job's processes — in the ABI's `struct sysinfo` (ten
/// words, `procs` and padding, two words, `mem_unit`).
pub(super) fn sysinfo(p: &mut Process<'_>, a: &Args) -> CallResult {
    let w = p.task.abi.word_size();
    let size = match p.task.abi {
        Abi::X86_64 => core::mem::size_of::<linux_raw_sys::system::sysinfo>(),
        Abi::I386 => 64,
    };
    let limit = p.task.vm.limit();
    let used: u64 = p.task.vm.used() + p.others.values().map(|t| t.vm.used()).sum::<u64>();
    let words = [
        p.node.clock_ns() / 1_000_000_000,
        0,
        0,
        0,
        limit,
        limit.saturating_sub(used),
        0,
        0,
        0,
        0,
    ];
    let mut b = vec![0u8; size];
    for (i, v) in words.iter().enumerate() {
        let v = if w == 4 {
            (*v).min(u64::from(u32::MAX))
        } else {
            *v
        };
        b[i * w..i * w + w].copy_from_slice(&v.to_le_bytes()[..w]);
    }
    let procs = p.live_tasks().min(usize::from(u16::MAX)) as u16;
    b[10 * w..10 * w + 2].copy_from_slice(&procs.to_le_bytes());
    // totalhigh, freehigh (after padding to a word), then mem_unit = 1.
    let unit_at = 10 * w + w + 2 * w;
    b[unit_at..unit_at + 4].copy_from_slice(&1u32.to_le_bytes());
    p.write_mem(a.word(0), &b)?;
    Ok(0)
}

// The x86_64 layout `sysinfo` writes, checked against linux-raw-sys's.
const _: () = {
    use core::mem::{offset_of, size_of};
    use linux_raw_sys::system::sysinfo;
    assert!(size_of::<sysinfo>() == 112);
    assert!(offset_of!(sysinfo, procs) == 80);
    assert!(offset_of!(sysinfo, mem_unit) == 104);
};

/// `si_code` of a signal from `tkill(2)`/`tgkill(2)`.
const SI_TKILL: i32 = linux_raw_sys::general::SI_TKILL;

/// `tkill(tid, sig)`: to any process of the job (each has one thread, its
/// tid its pid).
pub(super) fn tkill(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.tkill(a.int(0), a.int(1))
}

/// `tgkill(tgid, tid, sig)`: as `tkill`, when `tid` belongs to `tgid`.
pub(super) fn tgkill(p: &mut Process<'_>, a: &Args) -> CallResult {
    if a.int(0) != a.int(1) {
        return Err(if a.int(0) <= 0 || a.int(1) <= 0 {
            Errno::EINVAL
        } else {
            Errno::ESRCH
        }
        .into());
    }
    p.tkill(a.int(1), a.int(2))
}

impl Process<'_> {
    fn tkill(&mut self, tid: i32, sig: i32) -> CallResult {
        if tid <= 0 || !(0..=64).contains(&sig) {
            return Err(Errno::EINVAL.into());
        }
        let tid = tid as u64;
        if tid == self.task.pid {
            return self.raise(sig, SI_TKILL);
        }
        if !self.task_of(tid).is_some_and(|t| t.exited.is_none()) {
            return Err(Errno::ESRCH.into());
        }
        if sig != 0 {
            if crate::exit::Signal::new(sig).is_none() {
                return Err(Errno::EINVAL.into());
            }
            let me = self.task.pid;
            self.signal_task(tid, sig, me, SI_TKILL);
        }
        Ok(0)
    }
}

/// `futex(uaddr, futex_op, val, timeout, uaddr2, val3)` with the ABI's
/// `timespec`.
pub(super) fn futex(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.futex(a, a.native_time())
}

/// i386 `futex_time64`: a 64-bit `timespec`.
pub(super) fn futex_time64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.futex(a, TimeLayout::Time64)
}

impl Process<'_> {
    fn getrlimit(&mut self, resource: u32, rlim: u64, max: u64) -> CallResult {
        let (cur, top) = self.rlimit(resource)?;
        let mut b = Vec::new();
        for v in [cur, top] {
            if max == u64::MAX {
                b.extend_from_slice(&v.to_le_bytes());
            } else {
                b.extend_from_slice(&(v.min(max) as u32).to_le_bytes());
            }
        }
        self.write_mem(rlim, &b)?;
        Ok(0)
    }

    fn arch_prctl(&mut self, code: i32, addr: u64) -> CallResult {
        if self.task.abi == Abi::I386 {
            return Err(Errno::EINVAL.into());
        }
        match code {
            ARCH_SET_FS => {
                self.node
                    .set_tls(self.task.pid, Tls::FsBase, addr)
                    .map_err(|_| Errno::EPERM)?;
                self.task.fs_base = addr;
                Ok(0)
            }
            ARCH_GET_FS => {
                self.write_mem(addr, &self.task.fs_base.to_le_bytes())?;
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
                self.task.comm = [0; 16];
                let n = name.len().min(15);
                self.task.comm[..n].copy_from_slice(&name[..n]);
                Ok(0)
            }
            PR_GET_NAME => {
                let comm = self.task.comm;
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
            RLIMIT_DATA | RLIMIT_AS => (self.task.vm.limit(), self.task.vm.limit()),
            RLIMIT_STACK => (self.task.stack_len, self.task.stack_len),
            RLIMIT_CORE => (0, 0),
            RLIMIT_NPROC => (1, 1),
            RLIMIT_NOFILE => (1024, 1024),
            RLIMIT_MEMLOCK => (8 << 20, 8 << 20),
            // RLIM_INFINITY is all ones (`~0UL`).
            0..=RLIMIT_RTTIME => (RLIM_INFINITY as u64, RLIM_INFINITY as u64),
            _ => return Err(Errno::EINVAL.into()),
        })
    }

    /// `futex(uaddr, op, val, timeout, uaddr2, val3)` (futex(2)) among the
    /// threads of the caller's thread group (a word is known by its address
    /// in their shared address space): `WAIT` and `WAIT_BITSET` wait in the
    /// job's loop until woken, timed out (`ETIMEDOUT`) or interrupted
    /// (`EINTR`); `WAKE`, `WAKE_BITSET`, `REQUEUE`, `CMP_REQUEUE` and
    /// `WAKE_OP` wake waiters.
    fn futex(&mut self, a: &Args, time: TimeLayout) -> CallResult {
        let (uaddr, op, val, timeout, uaddr2, val3) = (
            a.word(0),
            a.int(1),
            a.uint(2),
            a.word(3),
            a.word(4),
            a.uint(5),
        );
        let cmd = op & !(FUTEX_PRIVATE | FUTEX_CLOCK_REALTIME);
        match cmd {
            FUTEX_WAIT | FUTEX_WAIT_BITSET => {
                let bitset = if cmd == FUTEX_WAIT_BITSET {
                    val3
                } else {
                    u32::MAX
                };
                if bitset == 0 {
                    return Err(Errno::EINVAL.into());
                }
                if let Some(w) = self.task.futex {
                    // Served again: woken, timed out, interrupted, or still
                    // waiting.
                    let now = self.node.clock_ns();
                    if w.woken {
                        self.task.futex = None;
                        return Ok(0);
                    }
                    if self.task.sleep_until.is_some_and(|d| now >= d) {
                        self.task.futex = None;
                        return Err(Errno::ETIMEDOUT.into());
                    }
                    let e = self.block(self.task.sleep_until);
                    if e != CallError::Block(self.task.sleep_until) {
                        self.task.futex = None;
                    }
                    return Err(e);
                }
                if self.read_u32(uaddr)? != val {
                    return Err(Errno::EAGAIN.into());
                }
                let deadline = if timeout == 0 {
                    None
                } else {
                    let t = self.read_timespec(timeout, time)?;
                    let now = self.node.clock_ns();
                    let wait = if cmd == FUTEX_WAIT_BITSET {
                        let clock = if op & FUTEX_CLOCK_REALTIME != 0 {
                            CLOCK_REALTIME
                        } else {
                            CLOCK_MONOTONIC
                        };
                        t.saturating_sub(self.clock(clock as i32)?)
                    } else {
                        t
                    };
                    Some(
                        *self
                            .task
                            .sleep_until
                            .get_or_insert(now.saturating_add(wait)),
                    )
                };
                let e = self.block(deadline);
                if matches!(e, CallError::Block(_)) {
                    self.task.futex = Some(FutexWait {
                        addr: uaddr,
                        bitset,
                        woken: false,
                    });
                }
                Err(e)
            }
            FUTEX_WAKE | FUTEX_WAKE_BITSET => {
                let bitset = if cmd == FUTEX_WAKE_BITSET {
                    val3
                } else {
                    u32::MAX
                };
                if bitset == 0 {
                    return Err(Errno::EINVAL.into());
                }
                Ok(self.futex_wake(uaddr, val as usize, bitset, None))
            }
            FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
                if cmd == FUTEX_CMP_REQUEUE && self.read_u32(uaddr)? != val3 {
                    return Err(Errno::EAGAIN.into());
                }
                // `val2`, the most to requeue, travels in `timeout`.
                let woken = self.futex_wake(uaddr, val as usize, u32::MAX, None);
                let moved = self.futex_wake(uaddr, timeout as u32 as usize, u32::MAX, Some(uaddr2));
                Ok(if cmd == FUTEX_CMP_REQUEUE {
                    woken + moved
                } else {
                    woken
                })
            }
            FUTEX_WAKE_OP => {
                let old = self.read_u32(uaddr2)?;
                let (opcode, cmp) = ((val3 >> 28) & 0xf, (val3 >> 24) & 0xf);
                let mut oparg = (val3 >> 12) & 0xfff;
                let cmparg = val3 & 0xfff;
                if opcode & 8 != 0 {
                    oparg = 1u32.checked_shl(oparg).unwrap_or(0);
                }
                let new = match opcode & 7 {
                    0 => oparg,
                    1 => old.wrapping_add(oparg),
                    2 => old | oparg,
                    3 => old & !oparg,
                    4 => old ^ oparg,
                    _ => return Err(Errno::ENOSYS.into()),
                };
                self.write_mem(uaddr2, &new.to_le_bytes())?;
                let mut n = self.futex_wake(uaddr, val as usize, u32::MAX, None);
                let hit = match cmp {
                    0 => old == cmparg,
                    1 => old != cmparg,
                    2 => (old as i32) < cmparg as i32,
                    3 => (old as i32) <= cmparg as i32,
                    4 => (old as i32) > cmparg as i32,
                    5 => (old as i32) >= cmparg as i32,
                    _ => return Err(Errno::ENOSYS.into()),
                };
                if hit {
                    n += self.futex_wake(uaddr2, timeout as u32 as usize, u32::MAX, None);
                }
                Ok(n)
            }
            _ => Err(Errno::ENOSYS.into()),
        }
    }

    /// Wakes (or, with `requeue_to`, moves to that word) at most `n`
    /// threads of the caller's group waiting on `addr` with a bitset
    /// meeting `bitset`; how many.
    pub fn futex_wake(&mut self, addr: u64, n: usize, bitset: u32, requeue_to: Option<u64>) -> u64 {
        let group = self.task.tgid;
        let me = self.task.pid;
        let mut done = 0;
        for t in self.others.values_mut() {
            if done >= n {
                break;
            }
            if t.tgid != group || t.pid == me || t.exited.is_some() {
                continue;
            }
            if let Some(w) = &mut t.futex
                && w.addr == addr
                && !w.woken
                && w.bitset & bitset != 0
            {
                match requeue_to {
                    Some(to) => w.addr = to,
                    None => w.woken = true,
                }
                done += 1;
            }
        }
        done as u64
    }

    /// The `u32` at `addr`. Errors: `EFAULT`.
    fn read_u32(&mut self, addr: u64) -> Result<u32, CallError> {
        let b = self.read_mem(addr, 4)?;
        Ok(u32::from_le_bytes(b[..4].try_into().unwrap_or([0; 4])))
    }
}
