//! POSIX per-process timers (`timer_create(2)`, `timer_settime(2)`,
//! `timer_gettime(2)`, `timer_getoverrun(2)`, `timer_delete(2)`): on the
//! realtime, monotonic, boot-time and CPU-time clocks (all advance with the
//! node's clock while the job runs), notifying by a signal (`SIGEV_SIGNAL`,
//! `SIGEV_THREAD_ID` to the process, default `SIGALRM`) or not at all
//! (`SIGEV_NONE`). `SIGEV_THREAD` needs threads and is refused (`EINVAL`).
//! The signal's `siginfo_t` is `SI_TIMER` with the timer id, overrun count
//! and `sigev_value`.

use linux_raw_sys::general as g;

use super::{Args, TimeLayout};
use crate::abi::Abi;
use crate::errno::Errno;
use crate::process::{CallError, CallResult, Process};
use crate::sigframe::{Detail, SigInfo};

/// Most timers one process may have (Linux's limit is `RLIMIT_SIGPENDING`;
/// the manager's heap asks for fewer).
const MAX_TIMERS: usize = 32;

/// One timer of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PosixTimer {
    /// Its clock (`CLOCK_*`).
    pub clock: i32,
    /// The signal it sends; 0 for `SIGEV_NONE`.
    pub signo: i32,
    /// `sigev_value`, given back in `si_value`.
    pub value: u64,
    /// When it fires next (node clock, ns), if armed.
    pub deadline: Option<u64>,
    /// Its period (ns; 0: once).
    pub interval: u64,
    /// Expirations missed while its signal was pending (`timer_getoverrun`).
    pub overrun: u32,
}

/// `timer_create(clockid, sevp, timerid)`.
pub(super) fn timer_create(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (clock, sevp, timerid) = (a.int(0), a.word(1), a.word(2));
    p.clock(clock)?;
    p.check_writable(timerid, 4)?;
    let id = (0..MAX_TIMERS as i32)
        .find(|i| !p.task.timers.contains_key(i))
        .ok_or(Errno::EAGAIN)?;
    let (signo, value) = if sevp == 0 {
        (g::SIGALRM as i32, id as u64)
    } else {
        // struct sigevent: sigev_value (a word), sigev_signo, sigev_notify.
        let w = p.task.abi.word_size();
        let b = p.read_mem(sevp, (w + 8) as u64)?;
        let mut v = [0u8; 8];
        v[..w].copy_from_slice(&b[..w]);
        let int = |at: usize| i32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]));
        let (signo, notify) = (int(w), int(w + 4));
        match notify as u32 {
            g::SIGEV_NONE => (0, u64::from_le_bytes(v)),
            g::SIGEV_SIGNAL | g::SIGEV_THREAD_ID if (1..=64).contains(&signo) => {
                (signo, u64::from_le_bytes(v))
            }
            _ => return Err(Errno::EINVAL.into()),
        }
    };
    p.task.timers.insert(
        id,
        PosixTimer {
            clock,
            signo,
            value,
            deadline: None,
            interval: 0,
            overrun: 0,
        },
    );
    p.write_mem(timerid, &id.to_le_bytes())?;
    Ok(0)
}

/// `timer_settime(timerid, flags, new, old)` with the ABI's `timespec`.
pub(super) fn timer_settime(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.timer_settime(a, a.native_time())
}

/// i386 `timer_settime64`.
pub(super) fn timer_settime64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.timer_settime(a, TimeLayout::Time64)
}

/// `timer_gettime(timerid, curr)` with the ABI's `timespec`.
pub(super) fn timer_gettime(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.timer_gettime(a.int(0), a.word(1), a.native_time())
}

/// i386 `timer_gettime64`.
pub(super) fn timer_gettime64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.timer_gettime(a.int(0), a.word(1), TimeLayout::Time64)
}

/// `timer_getoverrun(timerid)`.
pub(super) fn timer_getoverrun(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.timer(a.int(0)).map(|t| u64::from(t.overrun))
}

/// `timer_delete(timerid)`.
pub(super) fn timer_delete(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.timer(a.int(0))?;
    p.task.timers.remove(&a.int(0));
    Ok(0)
}

impl Process<'_> {
    /// Timer `id` of the current task. Errors: `EINVAL`.
    fn timer(&self, id: i32) -> Result<PosixTimer, CallError> {
        self.task
            .timers
            .get(&id)
            .copied()
            .ok_or(Errno::EINVAL.into())
    }

    fn timer_settime(&mut self, a: &Args, time: TimeLayout) -> CallResult {
        let (id, flags, new, old) = (a.int(0), a.int(1), a.word(2), a.word(3));
        let t = self.timer(id)?;
        if old != 0 {
            self.timer_gettime(id, old, time)?;
        }
        let interval = self.read_timespec(new, time)?;
        let value = self.read_timespec(new + timespec_len(self.task.abi, time), time)?;
        let now = self.node.clock_ns();
        let deadline = if value == 0 {
            None
        } else if flags & g::TIMER_ABSTIME as i32 != 0 {
            // An absolute time on the timer's clock, from the node's.
            let on_clock = self.clock(t.clock)?;
            Some(now.saturating_add(value.saturating_sub(on_clock)).max(now))
        } else {
            Some(now.saturating_add(value))
        };
        if let Some(timer) = self.task.timers.get_mut(&id) {
            timer.deadline = deadline;
            timer.interval = interval;
            timer.overrun = 0;
        }
        Ok(0)
    }

    fn timer_gettime(&mut self, id: i32, curr: u64, time: TimeLayout) -> CallResult {
        let t = self.timer(id)?;
        let now = self.node.clock_ns();
        let left = t.deadline.map_or(0, |d| d.saturating_sub(now).max(1));
        let len = timespec_len(self.task.abi, time);
        self.write_timespec(curr, t.interval, time, 1)?;
        self.write_timespec(curr + len, left, time, 1)?;
        Ok(0)
    }

    /// Fires the current task's POSIX timers that are due: each sends its
    /// signal (`SI_TIMER`), or counts an overrun if that signal is still
    /// pending; a periodic one is armed again.
    pub fn fire_posix_timers(&mut self) {
        let now = self.node.clock_ns();
        let due: alloc::vec::Vec<i32> = self
            .task
            .timers
            .iter()
            .filter(|(_, t)| t.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(mut t) = self.task.timers.get(&id).copied() else {
                continue;
            };
            let deadline = t.deadline.unwrap_or(now);
            let missed = (now - deadline).checked_div(t.interval).unwrap_or(0);
            t.deadline = (t.interval > 0).then(|| deadline + (missed + 1) * t.interval);
            if t.signo != 0 {
                let bit = 1u64 << (t.signo - 1);
                if self.task.pending & bit != 0 {
                    t.overrun = t.overrun.saturating_add(1 + missed as u32);
                } else {
                    let info = SigInfo::new(
                        self.task.abi,
                        t.signo,
                        g::SI_TIMER,
                        Detail::Timer {
                            id,
                            overrun: t.overrun.saturating_add(missed as u32),
                            value: t.value,
                        },
                    );
                    t.overrun = 0;
                    self.post_signal(t.signo, info);
                }
            }
            self.task.timers.insert(id, t);
        }
    }

    /// The earliest deadline of the current task's POSIX timers.
    pub fn next_posix_timer(&self) -> Option<u64> {
        self.task.timers.values().filter_map(|t| t.deadline).min()
    }
}

/// Bytes of one `timespec` of `time` for `abi`.
fn timespec_len(abi: Abi, time: TimeLayout) -> u64 {
    match (abi, time) {
        (Abi::I386, TimeLayout::Time32) => 8,
        _ => 16,
    }
}
