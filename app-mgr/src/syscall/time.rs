//! Time calls, served on the node: `clock_gettime(2)`, `clock_getres(2)`,
//! `gettimeofday(2)`, `time(2)`, `nanosleep(2)`, `clock_nanosleep(2)`, and
//! their i386 `*_time64` forms. Wall-clock time is the submitter's at
//! submission plus the node's clock since; sleeps still hear `hostd`.

use linux_raw_sys::general::{
    CLOCK_BOOTTIME, CLOCK_BOOTTIME_ALARM, CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE,
    CLOCK_MONOTONIC_RAW, CLOCK_PROCESS_CPUTIME_ID, CLOCK_REALTIME, CLOCK_REALTIME_ALARM,
    CLOCK_REALTIME_COARSE, CLOCK_THREAD_CPUTIME_ID, TIMER_ABSTIME,
};

use super::{Args, TimeLayout};
use crate::errno::Errno;
use crate::process::{CallError, CallResult, Process};

/// Nanoseconds per second.
const NS: u64 = 1_000_000_000;

/// `clock_gettime(clockid, tp)` with the ABI's `timespec`.
pub(super) fn clock_gettime(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.clock_gettime(a.int(0), a.word(1), a.native_time())
}

/// i386 `clock_gettime64(clockid, tp)`.
pub(super) fn clock_gettime64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.clock_gettime(a.int(0), a.word(1), TimeLayout::Time64)
}

/// `clock_getres(clockid, res)`: 1 ns.
pub(super) fn clock_getres(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.clock_getres(a.int(0), a.word(1), a.native_time())
}

/// i386 `clock_getres_time64(clockid, res)`.
pub(super) fn clock_getres_time64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.clock_getres(a.int(0), a.word(1), TimeLayout::Time64)
}

/// `gettimeofday(tv, tz)`: the timezone is UTC.
pub(super) fn gettimeofday(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (tv, tz) = (a.word(0), a.word(1));
    if tv != 0 {
        let ns = p.realtime_ns();
        p.write_timespec(tv, ns, a.native_time(), 1000)?;
    }
    if tz != 0 {
        p.write_mem(tz, &[0u8; 8])?;
    }
    Ok(0)
}

/// `time(tloc)`: seconds since the epoch.
pub(super) fn time(p: &mut Process<'_>, a: &Args) -> CallResult {
    let tloc = a.word(0);
    let secs = p.realtime_ns() / NS;
    if tloc != 0 {
        match a.native_time() {
            TimeLayout::Time32 => p.write_mem(tloc, &(secs as u32).to_le_bytes())?,
            TimeLayout::Time64 => p.write_mem(tloc, &secs.to_le_bytes())?,
        }
    }
    Ok(secs)
}

/// `nanosleep(req, rem)`: sleeps until the time passed or a signal comes
/// (`EINTR`, the time left written to `rem` if not NULL).
pub(super) fn nanosleep(p: &mut Process<'_>, a: &Args) -> CallResult {
    let ns = p.read_timespec(a.word(0), a.native_time())?;
    let deadline = p.node.clock_ns().saturating_add(ns);
    p.sleep_interruptible(deadline, a.word(1), a.native_time())
}

/// `clock_nanosleep(clockid, flags, req, rem)`.
pub(super) fn clock_nanosleep(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.clock_nanosleep(a.int(0), a.int(1), a.word(2), a.word(3), a.native_time())
}

/// i386 `clock_nanosleep_time64(clockid, flags, req, rem)`.
pub(super) fn clock_nanosleep_time64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.clock_nanosleep(a.int(0), a.int(1), a.word(2), a.word(3), TimeLayout::Time64)
}

impl Process<'_> {
    fn clock_gettime(&mut self, clockid: i32, tp: u64, time: TimeLayout) -> CallResult {
        let ns = self.clock(clockid)?;
        self.write_timespec(tp, ns, time, 1)?;
        Ok(0)
    }

    fn clock_getres(&mut self, clockid: i32, res: u64, time: TimeLayout) -> CallResult {
        self.clock(clockid)?;
        if res != 0 {
            self.write_timespec(res, 1, time, 1)?;
        }
        Ok(0)
    }

    fn clock_nanosleep(
        &mut self,
        clockid: i32,
        flags: i32,
        req: u64,
        rem: u64,
        time: TimeLayout,
    ) -> CallResult {
        let t = self.read_timespec(req, time)?;
        let now = self.clock(clockid)?;
        let wait = if flags & TIMER_ABSTIME as i32 != 0 {
            t.saturating_sub(now)
        } else {
            t
        };
        let deadline = self.node.clock_ns().saturating_add(wait);
        if flags & TIMER_ABSTIME as i32 != 0 {
            // An absolute sleep reports no time left.
            return self.sleep_interruptible(deadline, 0, time);
        }
        self.sleep_interruptible(deadline, rem, time)
    }

    /// Sleeps until the node clock reads `deadline`; a signal ends the sleep
    /// with `EINTR` and the time left written to `rem` (if not 0).
    fn sleep_interruptible(&mut self, deadline: u64, rem: u64, time: TimeLayout) -> CallResult {
        // Served again while it waits (other tasks run meanwhile), the sleep
        // keeps the deadline it started with.
        let deadline = *self.task.sleep_until.get_or_insert(deadline);
        if !self.wait_signal(Some(deadline))? {
            return Ok(0);
        }
        if rem != 0 {
            let left = deadline.saturating_sub(self.node.clock_ns());
            self.write_timespec(rem, left, time, 1)?;
        }
        Err(Errno::EINTR.into())
    }

    /// Wall-clock time now: the submitter's time at submission plus the time
    /// since the job started (ns since the epoch), saturating at `u64::MAX`
    /// (the submission time is whatever `hostd` sent in `Start`).
    pub fn realtime_ns(&self) -> u64 {
        self.realtime_ns
            .saturating_add(self.node.clock_ns().saturating_sub(self.start_ns))
    }

    /// The program's `CLOCK_MONOTONIC` (ns): the node clock, plus
    /// [`Process::monotonic_offset_ns`] for a job restored from a checkpoint.
    pub fn monotonic_ns(&self) -> u64 {
        self.node
            .clock_ns()
            .saturating_add(self.monotonic_offset_ns)
    }

    /// Reads clock `clockid` (ns). `CLOCK_REALTIME` (0, 5 coarse) is
    /// [`Process::realtime_ns`]; `MONOTONIC` (1, 4 raw, 6 coarse) and `BOOTTIME`
    /// (7) the node clock; the CPU-time clocks (2, 3) the time since the job
    /// started (the job has the CPU to itself). Errors: `EINVAL`.
    pub(super) fn clock(&self, clockid: i32) -> Result<u64, CallError> {
        match clockid as u32 {
            CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_REALTIME_ALARM => Ok(self.realtime_ns()),
            CLOCK_MONOTONIC
            | CLOCK_MONOTONIC_RAW
            | CLOCK_MONOTONIC_COARSE
            | CLOCK_BOOTTIME
            | CLOCK_BOOTTIME_ALARM => Ok(self.monotonic_ns()),
            CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => {
                Ok(self.node.clock_ns() - self.start_ns)
            }
            _ => Err(Errno::EINVAL.into()),
        }
    }

    /// Writes `ns` as a `timespec` (`div` 1) or `timeval` (`div` 1000).
    pub(super) fn write_timespec(
        &mut self,
        addr: u64,
        ns: u64,
        layout: TimeLayout,
        div: u64,
    ) -> Result<(), CallError> {
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
    pub(super) fn read_timespec(
        &mut self,
        addr: u64,
        layout: TimeLayout,
    ) -> Result<u64, CallError> {
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
}
