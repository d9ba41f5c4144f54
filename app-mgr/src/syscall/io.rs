//! Descriptor calls: `read(2)`, `write(2)`, `readv(2)`, `writev(2)`,
//! `pread64(2)`, `pwrite64(2)`, `close(2)`, `lseek(2)`/`_llseek`, `ioctl(2)`,
//! `fcntl(2)`, `dup(2)`/`dup2`/`dup3`, `pipe(2)`/`pipe2`, `sendfile(2)`,
//! `getdents64(2)`, `ftruncate(2)`, `fstat(2)`. Stdio and pipes are served on
//! the node; host files are forwarded to `hostd`. Each handler decodes its
//! arguments (i386: 32-bit registers, 64-bit offsets in two) and serves them.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use linux_raw_sys::general as g;

use super::{Args, OffsetWidth, StatLayout};
use crate::abi::Abi;
use crate::errno::Errno;
use crate::fd::{OpenFile, PipeEnd, StdStream};
use crate::job::{self, CHUNK, FileRequest, NodeMsg};
use crate::process::{CallError, CallResult, Process};
use crate::stat;

/// Most bytes an in-node pipe holds; a write beyond is short (`EAGAIN` if
/// nothing fits: one task cannot wait for a reader).
pub(super) const PIPE_CAPACITY: usize = 64 * 1024;
/// Writes of at most this many bytes to a pipe are atomic (`pipe(7)`).
const PIPE_BUF: usize = g::PIPE_BUF as usize;

/// The pipe id `open("/dev/null")` gives: reads see end of file, writes
/// vanish.
pub const DEV_NULL: u32 = u32::MAX;
/// The pipe id of `/dev/zero`: reads give zeros, writes vanish.
pub const DEV_ZERO: u32 = u32::MAX - 1;
/// The pipe id of `/dev/urandom` and `/dev/random`: reads give the node's
/// random bytes (as `getrandom(2)`), writes vanish.
pub const DEV_URANDOM: u32 = u32::MAX - 2;

/// The devices a job may open, by path, and their pipe ids (`null(4)`,
/// `zero(4)`, `random(4)`).
pub const DEVICES: [(&[u8], u32); 4] = [
    (b"/dev/null", DEV_NULL),
    (b"/dev/zero", DEV_ZERO),
    (b"/dev/urandom", DEV_URANDOM),
    (b"/dev/random", DEV_URANDOM),
];

/// Whether pipe id `id` is one of [`DEVICES`].
pub const fn is_device(id: u32) -> bool {
    id >= DEV_URANDOM
}

/// `O_CLOEXEC`.
const O_CLOEXEC: i32 = g::O_CLOEXEC as i32;
/// `O_ACCMODE`.
const O_ACCMODE: i32 = g::O_ACCMODE as i32;

/// A 64-bit file offset starting at argument `i`: one register on x86_64, two
/// (low, high) on i386.
pub(super) fn offset64(a: &Args, i: usize) -> i64 {
    match a.abi() {
        Abi::X86_64 => a.long(i),
        Abi::I386 => a.pair(i, i + 1),
    }
}

/// The `struct stat` of `stat`/`lstat`/`fstat` in `abi`.
pub(super) fn native_stat(abi: Abi) -> StatLayout {
    match abi {
        Abi::X86_64 => StatLayout::X86_64,
        Abi::I386 => StatLayout::I386Stat,
    }
}

/// `read(fd, buf, count)`.
pub(super) fn read(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.read_fd(a.int(0), a.word(1), a.word(2), None)
}

/// `write(fd, buf, count)`.
pub(super) fn write(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.write_fd(a.int(0), a.word(1), a.word(2), None)
}

/// `readv(fd, iov, iovcnt)`.
pub(super) fn readv(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.vector(a.int(0), a.word(1), a.int(2), false)
}

/// `writev(fd, iov, iovcnt)`.
pub(super) fn writev(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.vector(a.int(0), a.word(1), a.int(2), true)
}

/// `pread64(fd, buf, count, offset)`; i386 passes the offset in two
/// registers (the ia32 compat wrapper).
pub(super) fn pread64(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (fd, buf, count, offset) = (a.int(0), a.word(1), a.word(2), offset64(a, 3));
    p.host_handle(fd)?;
    if offset < 0 {
        return Err(Errno::EINVAL.into());
    }
    p.read_fd(fd, buf, count, Some(offset))
}

/// `pwrite64(fd, buf, count, offset)`.
pub(super) fn pwrite64(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (fd, buf, count, offset) = (a.int(0), a.word(1), a.word(2), offset64(a, 3));
    p.host_handle(fd)?;
    if offset < 0 {
        return Err(Errno::EINVAL.into());
    }
    p.write_fd(fd, buf, count, Some(offset))
}

/// `close(fd)`. A host file's writes still behind are waited for first;
/// the descriptor is closed even when one failed, and `close` returns that
/// failure (`close(2)` NOTES).
pub(super) fn close(p: &mut Process<'_>, a: &Args) -> CallResult {
    let closed = p.task.fds.close(a.int(0))?;
    let flushed = match closed.file {
        OpenFile::HostFile(handle) => p.flush_writes(handle),
        _ => Ok(()),
    };
    p.release(closed.file);
    flushed.map(|()| 0)
}

/// `lseek(fd, offset, whence)`; returns the new offset.
pub(super) fn lseek(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (fd, offset, whence) = (a.int(0), a.long(1), a.uint(2));
    let handle = p.host_handle(fd)?;
    p.host_value(FileRequest::Lseek {
        handle,
        offset,
        whence,
    })
    .map(|(v, _)| v)
}

/// i386 `_llseek(fd, offset_high, offset_low, result, whence)`: the new
/// offset is stored as a `loff_t` at `result`; returns 0.
pub(super) fn llseek(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (fd, offset, result, whence) = (a.int(0), a.pair(2, 1), a.word(3), a.uint(4));
    let handle = p.host_handle(fd)?;
    p.check_writable(result, 8)?;
    let (v, _) = p.host_value(FileRequest::Lseek {
        handle,
        offset,
        whence,
    })?;
    p.write_mem(result, &v.to_le_bytes())?;
    Ok(0)
}

/// `ioctl(fd, cmd, arg)`.
pub(super) fn ioctl(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.ioctl(a.int(0), a.uint(1), a.word(2))
}

/// `fcntl(fd, cmd, arg)` (and i386 `fcntl64`).
pub(super) fn fcntl(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.fcntl(a.int(0), a.int(1), a.word(2))
}

/// `dup(oldfd)`.
pub(super) fn dup(p: &mut Process<'_>, a: &Args) -> CallResult {
    Ok(p.task.fds.dup(a.int(0))? as u64)
}

/// `dup2(oldfd, newfd)`.
pub(super) fn dup2(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (fd, closed) = p.task.fds.dup2(a.int(0), a.int(1))?;
    if let Some(c) = closed {
        p.release(c.file);
    }
    Ok(fd as u64)
}

/// `dup3(oldfd, newfd, flags)`.
pub(super) fn dup3(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (fd, closed) = p.task.fds.dup3(a.int(0), a.int(1), a.int(2))?;
    if let Some(c) = closed {
        p.release(c.file);
    }
    Ok(fd as u64)
}

/// `pipe(fds)`.
pub(super) fn pipe(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.pipe(a.word(0), 0)
}

/// `pipe2(fds, flags)`.
pub(super) fn pipe2(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.pipe(a.word(0), a.int(1))
}

/// `sendfile(out_fd, in_fd, offset, count)`: a 32-bit `off_t` at `offset`
/// on i386, a 64-bit `loff_t` on x86_64.
pub(super) fn sendfile(p: &mut Process<'_>, a: &Args) -> CallResult {
    let width = match a.abi() {
        Abi::I386 => OffsetWidth::Off32,
        Abi::X86_64 => OffsetWidth::Off64,
    };
    p.sendfile(a.int(0), a.int(1), a.word(2), a.word(3), width)
}

/// i386 `sendfile64(out_fd, in_fd, offset, count)`: a 64-bit `loff_t`.
pub(super) fn sendfile64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.sendfile(a.int(0), a.int(1), a.word(2), a.word(3), OffsetWidth::Off64)
}

/// `getdents64(fd, dirp, count)`.
pub(super) fn getdents64(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (fd, dirp, count) = (a.int(0), a.word(1), a.word(2));
    let handle = p.host_handle(fd)?;
    if !p.host_files.get(&handle).is_some_and(|f| f.is_dir) {
        return Err(Errno::ENOTDIR.into());
    }
    let len = count.min(CHUNK as u64);
    p.check_writable(dirp, len)?;
    let (n, data) = p.host_value(FileRequest::Getdents64 {
        handle,
        len: len as u32,
    })?;
    p.write_mem(dirp, &data[..(n as usize).min(data.len())])?;
    Ok(n)
}

/// `flock(fd, operation)`.
pub(super) fn flock(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.flock(a.int(0), a.int(1))
}

/// `fsync(fd)`: a host file's data and metadata reach its disk; stdio and
/// pipes cannot be synced (`EINVAL`, as Linux).
pub(super) fn fsync(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.fsync(a.int(0), false)
}

/// `fdatasync(fd)`.
pub(super) fn fdatasync(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.fsync(a.int(0), true)
}

/// `fadvise64(fd, offset, len, advice)` (and i386 `fadvise64_64`): advice
/// only; accepted for any open descriptor.
pub(super) fn fadvise(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.task.fds.file(a.int(0))?;
    Ok(0)
}

/// `ftruncate(fd, length)`.
pub(super) fn ftruncate(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.ftruncate(a.int(0), a.long(1))
}

/// i386 `ftruncate64(fd, length_lo, length_hi)`.
pub(super) fn ftruncate64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.ftruncate(a.int(0), a.pair(1, 2))
}

/// `fstat(fd, statbuf)` with the ABI's own `struct stat`.
pub(super) fn fstat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.fstat(a.int(0), a.word(1), native_stat(a.abi()))
}

/// i386 `fstat64(fd, statbuf)`.
pub(super) fn fstat64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.fstat(a.int(0), a.word(1), StatLayout::I386Stat64)
}

impl Process<'_> {
    fn fsync(&mut self, fd: i32, data_only: bool) -> CallResult {
        match self.task.fds.file(fd)? {
            OpenFile::HostFile(handle) => {
                // hostd answers in order: writes behind are done once the
                // fsync's answer has come, and their failure is reported.
                let synced = self.host_value(FileRequest::Fsync { handle, data_only });
                match self.write_errors.remove(&handle) {
                    Some(e) => Err(e.into()),
                    None => synced.map(|(v, _)| v),
                }
            }
            _ => Err(Errno::EINVAL.into()),
        }
    }

    /// `fcntl` record locks (`F_SETLK`, `F_SETLKW`, `F_GETLK`, their `64`
    /// and OFD forms) on `file`, described by the `struct flock` at `arg`
    /// (x86_64: 32 bytes; i386: 16 for the plain commands, 24 for `flock64`
    /// — `fcntl(2)`). A host file's locks are the submitter's (an
    /// open-file-description lock there); a conflicting `F_SETLKW` waits,
    /// asking again every 20 ms. Stdio and pipes have nothing to lock.
    fn record_lock(
        &mut self,
        file: OpenFile,
        set: bool,
        wait: bool,
        cmd: i32,
        arg: u64,
    ) -> CallResult {
        // (size, start offset, field width) of the ABI's struct.
        let (size, at, width) = match self.task.abi {
            Abi::X86_64 => (32, 8, 8),
            Abi::I386 if (5..=7).contains(&cmd) => (16, 4, 4),
            Abi::I386 => (24, 4, 8),
        };
        let b = self.read_mem(arg, size)?;
        let field = |off: usize| -> i64 {
            let mut v = [0u8; 8];
            v[..width].copy_from_slice(&b[off..off + width]);
            if width == 4 {
                i64::from(i32::from_le_bytes([v[0], v[1], v[2], v[3]]))
            } else {
                i64::from_le_bytes(v)
            }
        };
        let range = job::LockRange {
            kind: i16::from_le_bytes([b[0], b[1]]),
            whence: i16::from_le_bytes([b[2], b[3]]),
            start: field(at),
            len: field(at + width),
        };
        if !(0..=2).contains(&range.kind) || !(0..=2).contains(&range.whence) {
            return Err(Errno::EINVAL.into());
        }
        let OpenFile::HostFile(handle) = file else {
            if !set {
                self.write_mem(arg, &(g::F_UNLCK as i16).to_le_bytes())?;
            }
            return Ok(0);
        };
        match self.host_value(FileRequest::Lock { handle, set, range }) {
            Ok((_, data)) if !set => {
                let found = job::decode_lock(&data).map_err(|_| Errno::EIO)?;
                let mut out = b.clone();
                out[0..2].copy_from_slice(&found.kind.to_le_bytes());
                out[2..4].copy_from_slice(&found.whence.to_le_bytes());
                out[at..at + width].copy_from_slice(&found.start.to_le_bytes()[..width]);
                out[at + width..at + 2 * width].copy_from_slice(&found.len.to_le_bytes()[..width]);
                // l_pid: -1, as Linux reports an open-file-description lock.
                let pid_at = at + 2 * width;
                out[pid_at..pid_at + 4].copy_from_slice(&(-1i32).to_le_bytes());
                self.write_mem(arg, &out)?;
                Ok(0)
            }
            Ok(_) => Ok(0),
            Err(CallError::Errno(Errno::EAGAIN)) if wait => {
                let again = self.node.clock_ns().saturating_add(20_000_000);
                Err(self.block(Some(again)))
            }
            Err(e) => Err(e),
        }
    }

    /// `flock(2)` on `fd`: a host file's lock is taken on the submitter; a
    /// conflicting one waits (asking again every 20 ms) unless `LOCK_NB`.
    fn flock(&mut self, fd: i32, op: i32) -> CallResult {
        let nb = op & g::LOCK_NB as i32 != 0;
        let kind = op & !(g::LOCK_NB as i32);
        if ![g::LOCK_SH as i32, g::LOCK_EX as i32, g::LOCK_UN as i32].contains(&kind) {
            return Err(Errno::EINVAL.into());
        }
        let OpenFile::HostFile(handle) = self.task.fds.file(fd)? else {
            return Ok(0);
        };
        match self.host_value(FileRequest::Flock { handle, op: kind }) {
            Ok(_) => Ok(0),
            Err(CallError::Errno(Errno::EAGAIN)) if !nb => {
                let again = self.node.clock_ns().saturating_add(20_000_000);
                Err(self.block(Some(again)))
            }
            Err(e) => Err(e),
        }
    }

    fn pipe(&mut self, fds: u64, flags: i32) -> CallResult {
        if flags & !(O_CLOEXEC | g::O_NONBLOCK as i32 | g::O_DIRECT as i32) != 0 {
            return Err(Errno::EINVAL.into());
        }
        self.check_writable(fds, 8)?;
        let id = self.next_pipe;
        let (r, w) = self.task.fds.insert_pipe(id, flags & O_CLOEXEC != 0)?;
        self.next_pipe += 1;
        self.pipes.insert(id, VecDeque::new());
        let mut b = Vec::with_capacity(8);
        b.extend_from_slice(&r.to_le_bytes());
        b.extend_from_slice(&w.to_le_bytes());
        self.write_mem(fds, &b)?;
        Ok(0)
    }

    fn ftruncate(&mut self, fd: i32, length: i64) -> CallResult {
        let handle = self.host_handle(fd).map_err(|_| Errno::EINVAL)?;
        self.host_value(FileRequest::Ftruncate { handle, length })
            .map(|(v, _)| v)
    }

    /// `hostd`'s handle of descriptor `fd`. Errors: `EBADF` if closed,
    /// `ESPIPE` for stdio and pipes.
    pub fn host_handle(&self, fd: i32) -> Result<u64, CallError> {
        match self.task.fds.file(fd)? {
            OpenFile::HostFile(h) => Ok(h),
            _ => Err(Errno::ESPIPE.into()),
        }
    }

    /// Releases open file `file` once no descriptor of any task refers to
    /// it: a host file is closed on `hostd`; a pipe whose two ends are gone
    /// is freed (on the last write end readers see end-of-file, on the last
    /// read end writers get `EPIPE`: both from the reference counts).
    pub fn release(&mut self, file: OpenFile) {
        if self.references(file) > 0 {
            return;
        }
        match file {
            OpenFile::HostFile(handle) => {
                self.host_files.remove(&handle);
                self.readahead.remove(&handle);
                let _ = self.host_call(FileRequest::Close { handle });
            }
            OpenFile::Pipe { id, end } => {
                let other = OpenFile::Pipe {
                    id,
                    end: match end {
                        PipeEnd::Read => PipeEnd::Write,
                        PipeEnd::Write => PipeEnd::Read,
                    },
                };
                if self.references(other) == 0 {
                    self.pipes.remove(&id);
                }
            }
            OpenFile::Stdio(_) => {}
        }
    }

    /// Whether another live task holds `end` of pipe `id` (and so may yet
    /// read or write it).
    fn held_by_others(&self, id: u32, end: PipeEnd) -> bool {
        let file = OpenFile::Pipe { id, end };
        // A task being ended still counts until its end closes its
        // descriptors (then the waiting call is served again).
        self.others
            .values()
            .any(|t| t.exited.is_none() && t.fds.references(file) > 0)
    }

    /// A write to a pipe with no reader: `SIGPIPE` to the writer (delivered
    /// when the call returns).
    fn raise_sigpipe(&mut self) {
        let sig = g::SIGPIPE as i32;
        let info = crate::sigframe::SigInfo::new(
            self.task.abi,
            sig,
            g::SI_USER as i32,
            crate::sigframe::Detail::Sender {
                pid: self.task.pid as u32,
                uid: self.task.uid,
            },
        );
        self.post_signal(sig, info);
    }

    /// Serves one read of at most `count` bytes into `buf` (at `offset` for
    /// `pread64`).
    fn read_fd(&mut self, fd: i32, buf: u64, count: u64, offset: Option<i64>) -> CallResult {
        let file = self.task.fds.file(fd)?;
        let count = count.min(CHUNK as u64);
        if count == 0 {
            return Ok(0);
        }
        self.check_writable(buf, count)?;
        let data: Vec<u8> = match file {
            OpenFile::Stdio(StdStream::Stdin) => {
                self.wait_stdin(count)?;
                let n = (count as usize).min(self.stdin.len());
                self.stdin.drain(..n).collect()
            }
            OpenFile::Stdio(_) => return Err(Errno::EBADF.into()),
            OpenFile::Pipe { id: DEV_NULL, .. } => return Ok(0),
            OpenFile::Pipe { id: DEV_ZERO, .. } => alloc::vec![0u8; count as usize],
            OpenFile::Pipe {
                id: DEV_URANDOM, ..
            } => {
                let mut v = alloc::vec![0u8; count as usize];
                self.node.random(&mut v);
                v
            }
            OpenFile::Pipe { id, end } => {
                if end != PipeEnd::Read {
                    return Err(Errno::EBADF.into());
                }
                let writers = self.references(OpenFile::Pipe {
                    id,
                    end: PipeEnd::Write,
                });
                let pipe = self.pipes.entry(id).or_default();
                if pipe.is_empty() {
                    // No writer: end of file. A writer that is another task
                    // may still write: wait for it; a writer that is only
                    // this task never will (pipe(7) would block for ever).
                    return if writers == 0 {
                        Ok(0)
                    } else if self.held_by_others(id, PipeEnd::Write) {
                        Err(self.block(None))
                    } else {
                        Err(Errno::EAGAIN.into())
                    };
                }
                let n = (count as usize).min(pipe.len());
                pipe.drain(..n).collect()
            }
            OpenFile::HostFile(handle) if offset.is_none() => self.read_ahead(handle, count)?,
            OpenFile::HostFile(handle) => {
                let request = FileRequest::Pread {
                    handle,
                    len: count as u32,
                    offset: offset.unwrap_or(0),
                };
                let (n, mut data) = self.host_value(request)?;
                data.truncate((n as usize).min(count as usize));
                data
            }
        };
        self.write_mem(buf, &data)?;
        Ok(data.len() as u64)
    }

    /// A sequential `read` of at most `count` bytes of host file `handle`:
    /// from the bytes read ahead if there are any; else a whole chunk is
    /// asked of `hostd` for a file opened read-only, and what the program
    /// did not want is kept for its next reads (so 4 KiB reads cost one
    /// round trip per 64 KiB). See [`Process::readahead`].
    fn read_ahead(&mut self, handle: u64, count: u64) -> Result<Vec<u8>, CallError> {
        if let Some(buf) = self.readahead.get_mut(&handle)
            && !buf.is_empty()
        {
            let n = (count as usize).min(buf.len());
            return Ok(buf.drain(..n).collect());
        }
        let read_only = self
            .host_files
            .get(&handle)
            .is_some_and(|f| f.flags & O_ACCMODE == 0 && !f.is_dir);
        let ask = if read_only { CHUNK as u64 } else { count };
        let (n, mut data) = self.host_value(FileRequest::Read {
            handle,
            len: ask as u32,
        })?;
        data.truncate(n as usize);
        if data.len() > count as usize {
            let rest = data.split_off(count as usize);
            self.keep_read_ahead(handle, rest);
        }
        Ok(data)
    }

    /// Serves one write of `count` bytes from `buf` (at `offset` for
    /// `pwrite64`).
    fn write_fd(&mut self, fd: i32, buf: u64, count: u64, offset: Option<i64>) -> CallResult {
        let file = self.task.fds.file(fd)?;
        self.task.vm.check_access(buf, count, false)?;
        let mut done = 0u64;
        while done < count {
            let n = (count - done).min(CHUNK as u64);
            let data = self.read_mem(buf + done, n)?;
            let wrote = self.write_bytes(file, data, offset.map(|o| o + done as i64));
            match wrote {
                Ok(w) => {
                    done += w;
                    if w < n {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    /// Writes `data` to an open file; returns the count taken.
    fn write_bytes(&mut self, file: OpenFile, data: Vec<u8>, offset: Option<i64>) -> CallResult {
        let n = data.len() as u64;
        match file {
            OpenFile::Stdio(StdStream::Stdout) => {
                self.send(&NodeMsg::Stdout(data))?;
                Ok(n)
            }
            OpenFile::Stdio(StdStream::Stderr) => {
                self.send(&NodeMsg::Stderr(data))?;
                Ok(n)
            }
            OpenFile::Stdio(StdStream::Stdin) => Err(Errno::EBADF.into()),
            OpenFile::Pipe { id, .. } if is_device(id) => Ok(n),
            OpenFile::Pipe { id, end } => {
                if end != PipeEnd::Write {
                    return Err(Errno::EBADF.into());
                }
                let readers = self.references(OpenFile::Pipe {
                    id,
                    end: PipeEnd::Read,
                });
                if readers == 0 {
                    // pipe(7): EPIPE, and SIGPIPE to the writer.
                    self.raise_sigpipe();
                    return Err(Errno::EPIPE.into());
                }
                let pipe = self.pipes.entry(id).or_default();
                let room = PIPE_CAPACITY.saturating_sub(pipe.len());
                // Writes of at most PIPE_BUF bytes are atomic (pipe(7)).
                if room == 0 || (data.len() <= PIPE_BUF && room < data.len()) {
                    return Err(if self.held_by_others(id, PipeEnd::Read) {
                        self.block(None)
                    } else {
                        Errno::EAGAIN.into()
                    });
                }
                let take = room.min(data.len());
                pipe.extend(&data[..take]);
                Ok(take as u64)
            }
            OpenFile::HostFile(handle) => {
                if let Some(e) = self.write_errors.remove(&handle) {
                    return Err(e.into());
                }
                // A file opened for writing takes the write behind the
                // program; any other gets hostd's answer (EBADF) at once.
                let behind = self.host_files.get(&handle).is_some_and(|f| {
                    !f.is_dir && f.flags & g::O_ACCMODE as i32 != g::O_RDONLY as i32
                });
                let request = match offset {
                    Some(offset) => FileRequest::Pwrite {
                        handle,
                        data,
                        offset,
                    },
                    None => FileRequest::Write { handle, data },
                };
                if behind {
                    self.write_behind(handle, request, n)?;
                    Ok(n)
                } else {
                    self.host_value(request).map(|(v, _)| v)
                }
            }
        }
    }

    /// `readv`/`writev`.
    fn vector(&mut self, fd: i32, iov: u64, iovcnt: i32, write: bool) -> CallResult {
        if !(0..=1024).contains(&iovcnt) {
            return Err(Errno::EINVAL.into());
        }
        self.task.fds.file(fd)?;
        let w = self.task.abi.word_size() as u64;
        let raw = self.read_mem(iov, iovcnt as u64 * 2 * w)?;
        let word = |i: usize| {
            let mut v = [0u8; 8];
            v[..w as usize].copy_from_slice(&raw[i * w as usize..(i + 1) * w as usize]);
            u64::from_le_bytes(v)
        };
        let mut total = 0u64;
        for i in 0..iovcnt as usize {
            let (base, len) = (word(2 * i), word(2 * i + 1));
            if len == 0 {
                continue;
            }
            let r = if write {
                self.write_fd(fd, base, len, None)
            } else {
                self.read_fd(fd, base, len, None)
            };
            match r {
                Ok(n) => {
                    total += n;
                    if n < len {
                        break;
                    }
                    // A read that got some stdin stops rather than waiting for
                    // more (a terminal gives one line at a time).
                    if !write && matches!(self.task.fds.file(fd), Ok(OpenFile::Stdio(_))) {
                        break;
                    }
                }
                Err(e) if total == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(total)
    }

    /// `ioctl` on stdio: `TCGETS` and `TIOCGWINSZ` answer only if `hostd`'s
    /// stream is a terminal.
    fn ioctl(&mut self, fd: i32, cmd: u32, arg: u64) -> CallResult {
        const TCGETS: u32 = linux_raw_sys::ioctl::TCGETS;
        const TCSETS: u32 = linux_raw_sys::ioctl::TCSETS;
        const TCSETSW: u32 = linux_raw_sys::ioctl::TCSETSW;
        const TCSETSF: u32 = linux_raw_sys::ioctl::TCSETSF;
        const TIOCGWINSZ: u32 = linux_raw_sys::ioctl::TIOCGWINSZ;
        const TIOCSWINSZ: u32 = linux_raw_sys::ioctl::TIOCSWINSZ;
        const TIOCGPGRP: u32 = linux_raw_sys::ioctl::TIOCGPGRP;
        const FIONBIO: u32 = linux_raw_sys::ioctl::FIONBIO;
        const FIOCLEX: u32 = linux_raw_sys::ioctl::FIOCLEX;
        const FIONCLEX: u32 = linux_raw_sys::ioctl::FIONCLEX;
        let file = self.task.fds.file(fd)?;
        match cmd {
            FIOCLEX => {
                return self
                    .task
                    .fds
                    .set_cloexec(fd, true)
                    .map(|_| 0)
                    .map_err(CallError::from);
            }
            FIONCLEX => {
                return self
                    .task
                    .fds
                    .set_cloexec(fd, false)
                    .map(|_| 0)
                    .map_err(CallError::from);
            }
            FIONBIO => return Ok(0),
            _ => {}
        }
        let tty = match file {
            OpenFile::Stdio(s) => self.tty[s as usize],
            _ => false,
        };
        if !tty {
            return Err(Errno::ENOTTY.into());
        }
        match cmd {
            TCGETS => {
                // struct termios (kernel): iflag, oflag, cflag, lflag, line,
                // cc[19]: a terminal in canonical mode with echo.
                let mut t = [0u8; 36];
                t[0..4].copy_from_slice(&0x0500u32.to_le_bytes()); // ICRNL | IXON
                t[4..8].copy_from_slice(&0x0005u32.to_le_bytes()); // OPOST | ONLCR
                t[8..12].copy_from_slice(&0x00bfu32.to_le_bytes()); // B38400 | CS8 | CREAD
                t[12..16].copy_from_slice(&0x8a3bu32.to_le_bytes()); // ISIG ICANON ECHO ...
                let cc = [3u8, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22];
                t[17..17 + cc.len()].copy_from_slice(&cc);
                self.write_mem(arg, &t)?;
                Ok(0)
            }
            TCSETS | TCSETSW | TCSETSF | TIOCSWINSZ => Ok(0),
            TIOCGWINSZ => {
                let ws = self.winsize.unwrap_or(job::Winsize {
                    rows: 24,
                    cols: 80,
                    xpixel: 0,
                    ypixel: 0,
                });
                let mut b = [0u8; 8];
                for (i, v) in [ws.rows, ws.cols, ws.xpixel, ws.ypixel].iter().enumerate() {
                    b[2 * i..2 * i + 2].copy_from_slice(&v.to_le_bytes());
                }
                self.write_mem(arg, &b)?;
                Ok(0)
            }
            TIOCGPGRP => {
                self.write_mem(arg, &(self.task.pid as u32).to_le_bytes())?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY.into()),
        }
    }

    /// `fcntl`: descriptor flags, status flags, duplication; locks always
    /// succeed (one task).
    fn fcntl(&mut self, fd: i32, cmd: i32, arg: u64) -> CallResult {
        const F_DUPFD: i32 = g::F_DUPFD as i32;
        const F_GETFD: i32 = g::F_GETFD as i32;
        const F_SETFD: i32 = g::F_SETFD as i32;
        const F_GETFL: i32 = g::F_GETFL as i32;
        const F_SETFL: i32 = g::F_SETFL as i32;
        const F_GETLK: i32 = g::F_GETLK as i32;
        const F_SETLK: i32 = g::F_SETLK as i32;
        const F_SETLKW: i32 = g::F_SETLKW as i32;
        // i386 only (asm-generic/fcntl.h under `#ifndef CONFIG_64BIT`), so
        // not in the x86_64 linux-raw-sys this crate is built with.
        const F_GETLK64: i32 = g::F_SETLKW as i32 + 5;
        const F_SETLK64: i32 = g::F_SETLKW as i32 + 6;
        const F_SETLKW64: i32 = g::F_SETLKW as i32 + 7;
        const F_OFD_GETLK: i32 = g::F_OFD_GETLK as i32;
        const F_OFD_SETLK: i32 = g::F_OFD_SETLK as i32;
        const F_OFD_SETLKW: i32 = g::F_OFD_SETLKW as i32;
        const F_DUPFD_CLOEXEC: i32 = g::F_DUPFD_CLOEXEC as i32;
        const F_GETPIPE_SZ: i32 = g::F_GETPIPE_SZ as i32;
        let file = self.task.fds.file(fd)?;
        match cmd {
            F_DUPFD | F_DUPFD_CLOEXEC => {
                Ok(self
                    .task
                    .fds
                    .dup_min(fd, arg as i32, cmd == F_DUPFD_CLOEXEC)? as u64)
            }
            F_GETFD => Ok(u64::from(self.task.fds.cloexec(fd)?)),
            F_SETFD => {
                self.task.fds.set_cloexec(fd, arg & 1 != 0)?;
                Ok(0)
            }
            F_GETFL => Ok(match file {
                OpenFile::Stdio(StdStream::Stdin) => 0,
                OpenFile::Stdio(_) => 1,
                OpenFile::Pipe { end, .. } => {
                    if end == PipeEnd::Read {
                        0
                    } else {
                        1
                    }
                }
                OpenFile::HostFile(h) => self
                    .host_files
                    .get(&h)
                    .map_or(0, |f| f.flags & (O_ACCMODE | 0o2000 | 0o4000))
                    as u64,
            }),
            F_SETFL => Ok(0),
            F_GETLK | F_GETLK64 | F_OFD_GETLK => self.record_lock(file, false, false, cmd, arg),
            F_SETLK | F_SETLK64 | F_OFD_SETLK => self.record_lock(file, true, false, cmd, arg),
            F_SETLKW | F_SETLKW64 | F_OFD_SETLKW => self.record_lock(file, true, true, cmd, arg),
            F_GETPIPE_SZ => Ok(PIPE_CAPACITY as u64),
            _ => Err(Errno::EINVAL.into()),
        }
    }

    /// `sendfile`: from a host file to any writable descriptor.
    fn sendfile(
        &mut self,
        out_fd: i32,
        in_fd: i32,
        offset: u64,
        count: u64,
        width: OffsetWidth,
    ) -> CallResult {
        let handle = self.host_handle(in_fd).map_err(|_| Errno::EINVAL)?;
        let out = self.task.fds.file(out_fd)?;
        let owidth = match width {
            OffsetWidth::Off32 => 4,
            OffsetWidth::Off64 => 8,
        };
        let mut pos = if offset != 0 {
            let b = self.read_mem(offset, owidth)?;
            let mut v = [0u8; 8];
            v[..owidth as usize].copy_from_slice(&b);
            let v = u64::from_le_bytes(v);
            Some(if owidth == 4 {
                i64::from(v as u32 as i32)
            } else {
                v as i64
            })
        } else {
            None
        };
        let count = count.min(1 << 30);
        let mut done = 0u64;
        while done < count {
            let len = (count - done).min(CHUNK as u64) as u32;
            let request = match pos {
                Some(offset) => FileRequest::Pread {
                    handle,
                    len,
                    offset,
                },
                None => FileRequest::Read { handle, len },
            };
            let (n, mut data) = match self.host_value(request) {
                Ok(r) => r,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            if n == 0 {
                break;
            }
            data.truncate(n as usize);
            let w = match self.write_bytes(out, data, None) {
                Ok(w) => w,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            done += w;
            if let Some(p) = pos.as_mut() {
                *p += w as i64;
            }
            if w < n {
                break;
            }
        }
        if let Some(p) = pos {
            let b = (p as u64).to_le_bytes();
            self.write_mem(offset, &b[..owidth as usize])?;
        }
        Ok(done)
    }

    /// `fstat` of any descriptor, in `layout`.
    pub fn fstat(&mut self, fd: i32, statbuf: u64, layout: StatLayout) -> CallResult {
        let st = self.stat_fd(fd)?;
        let bytes = stat::to_stat(&st, layout)?;
        self.write_mem(statbuf, &bytes)?;
        Ok(0)
    }

    /// What `fstat` says about `fd`.
    pub fn stat_fd(&mut self, fd: i32) -> Result<job::FileStat, CallError> {
        match self.task.fds.file(fd)? {
            OpenFile::HostFile(handle) => {
                let (_, data) = self.host_value(FileRequest::Fstat { handle })?;
                job::decode_stat(&data).map_err(|_| CallError::Errno(Errno::EIO))
            }
            OpenFile::Stdio(s) => Ok(stat::node_stat(
                self.tty[s as usize],
                self.task.uid,
                self.task.gid,
                self.now_secs(),
            )),
            OpenFile::Pipe { .. } => Ok(stat::node_stat(
                false,
                self.task.uid,
                self.task.gid,
                self.now_secs(),
            )),
        }
    }

    /// Wall-clock time as (seconds, nanoseconds) since the epoch.
    fn now_secs(&self) -> (i64, u32) {
        let ns = self.realtime_ns();
        ((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32)
    }
}
