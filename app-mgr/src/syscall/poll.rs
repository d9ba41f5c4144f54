//! Waiting for descriptors: `poll(2)` and `ppoll(2)` over the job's stdio,
//! pipes and host files. Regular files are always ready (as on Linux);
//! stdin is ready once `hostd` has sent bytes or its end; a pipe's read end
//! is ready with data or without writers (`POLLHUP`), its write end with
//! room (`POLLERR` without readers, as `pipe(7)` says of `EPIPE`).

use linux_raw_sys::general as g;

use super::io::{PIPE_CAPACITY, is_device};
use super::signal::UNBLOCKABLE;
use super::{Args, TimeLayout};
use crate::errno::Errno;
use crate::fd::{OpenFile, PipeEnd, StdStream};
use crate::job::NodeMsg;
use crate::process::{CallResult, Process};

const POLLIN: i16 = g::POLLIN as i16;
const POLLOUT: i16 = g::POLLOUT as i16;
const POLLERR: i16 = g::POLLERR as i16;
const POLLHUP: i16 = g::POLLHUP as i16;
const POLLNVAL: i16 = g::POLLNVAL as i16;
const POLLRDNORM: i16 = g::POLLRDNORM as i16;
const POLLWRNORM: i16 = g::POLLWRNORM as i16;

/// Most descriptors one call may watch (`RLIMIT_NOFILE`, as Linux's `EINVAL`).
const MAX_FDS: u64 = crate::fd::FdTable::DEFAULT_LIMIT as u64;

/// `poll(fds, nfds, timeout_ms)` (negative: no timeout).
pub(super) fn poll(p: &mut Process<'_>, a: &Args) -> CallResult {
    let timeout_ms = a.int(2);
    let wait = (timeout_ms >= 0).then(|| u64::from(timeout_ms.unsigned_abs()) * 1_000_000);
    p.poll(a.word(0), a.word(1), wait)
}

/// `ppoll(fds, nfds, tmo_p, sigmask, sigsetsize)` with the ABI's
/// `timespec`.
pub(super) fn ppoll(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.ppoll(a, a.native_time())
}

/// i386 `ppoll_time64`.
pub(super) fn ppoll_time64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.ppoll(a, TimeLayout::Time64)
}

impl Process<'_> {
    fn ppoll(&mut self, a: &Args, time: TimeLayout) -> CallResult {
        let wait = match a.word(2) {
            0 => None,
            at => Some(self.read_timespec(at, time)?),
        };
        if a.word(3) != 0 {
            if a.word(4) != 8 {
                return Err(Errno::EINVAL.into());
            }
            let b = self.read_mem(a.word(3), 8)?;
            let mask = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
            // Served again while it waits, the call keeps the mask it
            // replaced; the answer restores it (after a handler's frame).
            if self.task.saved_mask.is_none() {
                self.task.saved_mask = Some(self.task.sigmask);
            }
            self.task.sigmask = mask & !UNBLOCKABLE;
        }
        self.poll(a.word(0), a.word(1), wait)
    }

    /// Fills the `revents` of the `nfds` `struct pollfd`s at `fds`; answers
    /// how many are ready, waiting up to `wait` ns (`None`: no limit) for
    /// one. Errors: `EINVAL` (too many), `EFAULT`, `EINTR`.
    fn poll(&mut self, fds: u64, nfds: u64, wait: Option<u64>) -> CallResult {
        if nfds > MAX_FDS {
            return Err(Errno::EINVAL.into());
        }
        let mut raw = self.read_mem(fds, nfds * 8)?;
        self.check_writable(fds, nfds * 8)?;
        let mut ready = 0u64;
        let mut wants_stdin = false;
        for entry in raw.as_chunks_mut::<8>().0 {
            let fd = i32::from_le_bytes(entry[..4].try_into().unwrap_or([0; 4]));
            let events = i16::from_le_bytes([entry[4], entry[5]]);
            let revents = if fd < 0 {
                0
            } else {
                let (r, stdin) = self.readiness(fd, events);
                wants_stdin |= stdin;
                r
            };
            entry[6..8].copy_from_slice(&revents.to_le_bytes());
            ready += u64::from(revents != 0);
        }
        let now = self.node.clock_ns();
        let deadline = wait.map(|w| *self.task.sleep_until.get_or_insert(now.saturating_add(w)));
        if ready > 0 || deadline.is_some_and(|d| now >= d) {
            self.write_mem(fds, &raw)?;
            return Ok(ready);
        }
        if wants_stdin && !self.stdin_asked {
            self.send(&NodeMsg::StdinWanted {
                max: crate::job::CHUNK as u32,
            })?;
            self.stdin_asked = true;
        }
        Err(self.block(deadline))
    }

    /// The `revents` of descriptor `fd` for `events`, and whether it is
    /// stdin waiting for `hostd`.
    fn readiness(&self, fd: i32, events: i16) -> (i16, bool) {
        let Ok(file) = self.task.fds.file(fd) else {
            return (POLLNVAL, false);
        };
        let read = events & (POLLIN | POLLRDNORM);
        let write = events & (POLLOUT | POLLWRNORM);
        match file {
            OpenFile::Stdio(StdStream::Stdin) => {
                if !self.stdin.is_empty() {
                    (read, false)
                } else if self.stdin_eof {
                    (read | POLLHUP, false)
                } else {
                    (0, read != 0)
                }
            }
            OpenFile::Stdio(_) => (write, false),
            OpenFile::Pipe { id, .. } if is_device(id) => (read | write, false),
            OpenFile::Pipe { id, end } => {
                let held = self.pipes.get(&id).map_or(0, |p| p.len());
                let other = OpenFile::Pipe {
                    id,
                    end: match end {
                        PipeEnd::Read => PipeEnd::Write,
                        PipeEnd::Write => PipeEnd::Read,
                    },
                };
                let peers = self.references(other);
                match end {
                    PipeEnd::Read if peers == 0 => {
                        ((if held > 0 { read } else { 0 }) | POLLHUP, false)
                    }
                    PipeEnd::Read => (if held > 0 { read } else { 0 }, false),
                    PipeEnd::Write if peers == 0 => (POLLERR, false),
                    PipeEnd::Write => (if held < PIPE_CAPACITY { write } else { 0 }, false),
                }
            }
            OpenFile::HostFile(_) => (read | write, false),
        }
    }
}

// `struct pollfd` is 8 bytes on both ABIs (int, short, short).
const _: () = assert!(core::mem::size_of::<g::pollfd>() == 8);
