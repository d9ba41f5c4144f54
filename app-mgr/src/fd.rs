//! The job's file-descriptor table: which descriptors are open, whether each is
//! the job's stdio, a pipe end, or a file opened on the submitting host, with
//! `dup`/`dup2`/`dup3`/`close` semantics and lowest-free-number allocation.
//!
//! Sources: `dup(2)`, `close(2)`, `fcntl(2)` (`F_DUPFD`, `FD_CLOEXEC`),
//! `pipe(2)`, `getrlimit(2)` (`RLIMIT_NOFILE`).

use alloc::vec::Vec;

use linux_raw_sys::general as g;

use crate::errno::Errno;
use crate::syscall::Served;

/// One of the job's three standard streams, passed through to the submitting
/// `hostd`'s terminal or files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StdStream {
    /// Standard input (initially fd 0).
    Stdin,
    /// Standard output (initially fd 1).
    Stdout,
    /// Standard error (initially fd 2).
    Stderr,
}

/// Which end of a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PipeEnd {
    /// The read end (`fds[0]` of `pipe(2)`).
    Read,
    /// The write end (`fds[1]`).
    Write,
}

/// What a descriptor refers to (an open file description). Descriptors made by
/// `dup` refer to the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpenFile {
    /// A standard stream, served on the node.
    Stdio(StdStream),
    /// One end of an in-node pipe, `id` chosen by the caller.
    Pipe {
        /// The pipe's id (the same for both ends).
        id: u32,
        /// Which end.
        end: PipeEnd,
    },
    /// A file opened by `hostd`, identified by `hostd`'s handle.
    HostFile(u64),
}

/// An open descriptor: what it refers to, and its close-on-exec flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdEntry {
    /// The open file.
    pub file: OpenFile,
    /// `FD_CLOEXEC`.
    pub cloexec: bool,
}

/// The result of closing a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed {
    /// What the descriptor referred to.
    pub file: OpenFile,
    /// No other descriptor refers to `file` any more: the caller releases it
    /// (forwards `close` of a host file to `hostd`; on the last write end of a
    /// pipe, readers see end-of-file; on the last read end, writers get
    /// `EPIPE`).
    pub last_reference: bool,
}

/// The per-job descriptor table. Descriptors are `i32` from 0 to `limit - 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdTable {
    slots: Vec<Option<FdEntry>>,
    limit: usize,
}

impl FdTable {
    /// Linux's default soft `RLIMIT_NOFILE`: descriptors 0..1023.
    pub const DEFAULT_LIMIT: usize = 1024;

    /// An empty table allowing descriptors `0..limit`.
    pub fn new(limit: usize) -> FdTable {
        FdTable {
            slots: Vec::new(),
            limit: limit.min(i32::MAX as usize),
        }
    }

    /// A table with stdin, stdout and stderr open on 0, 1 and 2.
    pub fn with_stdio(limit: usize) -> FdTable {
        let mut t = FdTable::new(limit.max(3));
        for s in [StdStream::Stdin, StdStream::Stdout, StdStream::Stderr] {
            t.slots.push(Some(FdEntry {
                file: OpenFile::Stdio(s),
                cloexec: false,
            }));
        }
        t
    }

    /// The descriptor limit (`RLIMIT_NOFILE`).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The entry of `fd`. Errors: `EBADF` if `fd` is not open.
    pub fn get(&self, fd: i32) -> Result<FdEntry, Errno> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i).copied().flatten())
            .ok_or(Errno::EBADF)
    }

    /// What `fd` refers to. Errors: `EBADF`.
    pub fn file(&self, fd: i32) -> Result<OpenFile, Errno> {
        self.get(fd).map(|e| e.file)
    }

    /// Where a call on `fd` is served: [`Served::Submitter`] for a host file,
    /// [`Served::Node`] for stdio and pipes. Errors: `EBADF` (answered on the
    /// node).
    pub fn route(&self, fd: i32) -> Result<Served, Errno> {
        Ok(match self.file(fd)? {
            OpenFile::HostFile(_) => Served::Submitter,
            OpenFile::Stdio(_) | OpenFile::Pipe { .. } => Served::Node,
        })
    }

    /// Opens `fd` on `entry` as it was recorded (a checkpoint's table,
    /// [`crate::checkpoint`]). Errors: `EBADF` outside `0..limit` or if
    /// `fd` is open.
    pub fn restore(&mut self, fd: i32, entry: FdEntry) -> Result<(), Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        if i >= self.limit || self.get(fd).is_ok() {
            return Err(Errno::EBADF);
        }
        self.put(i, entry);
        Ok(())
    }

    /// The open descriptors in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, FdEntry)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|e| (i as i32, e)))
    }

    /// How many descriptors refer to `file`.
    pub fn references(&self, file: OpenFile) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.file == file)
            .count()
    }

    /// Lowest free descriptor `>= min`, if below the limit.
    fn lowest_free(&self, min: usize) -> Option<usize> {
        (min..self.limit).find(|&i| self.slots.get(i).is_none_or(|e| e.is_none()))
    }

    fn put(&mut self, i: usize, entry: FdEntry) {
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        self.slots[i] = Some(entry);
    }

    fn take(&mut self, i: usize) -> Option<FdEntry> {
        let e = self.slots.get_mut(i)?.take();
        while self.slots.last() == Some(&None) {
            self.slots.pop();
        }
        e
    }

    /// Opens `file` on the lowest free descriptor (as `open(2)` does). Errors:
    /// `EMFILE` when all `limit` descriptors are in use.
    pub fn insert(&mut self, file: OpenFile, cloexec: bool) -> Result<i32, Errno> {
        let i = self.lowest_free(0).ok_or(Errno::EMFILE)?;
        self.put(i, FdEntry { file, cloexec });
        Ok(i as i32)
    }

    /// Opens both ends of pipe `id` on the two lowest free descriptors (read end
    /// first), both or neither. Errors: `EMFILE`.
    pub fn insert_pipe(&mut self, id: u32, cloexec: bool) -> Result<(i32, i32), Errno> {
        let r = self.lowest_free(0).ok_or(Errno::EMFILE)?;
        let w = self.lowest_free(r + 1).ok_or(Errno::EMFILE)?;
        self.put(
            r,
            FdEntry {
                file: OpenFile::Pipe {
                    id,
                    end: PipeEnd::Read,
                },
                cloexec,
            },
        );
        self.put(
            w,
            FdEntry {
                file: OpenFile::Pipe {
                    id,
                    end: PipeEnd::Write,
                },
                cloexec,
            },
        );
        Ok((r as i32, w as i32))
    }

    /// `close(2)`. Errors: `EBADF`.
    pub fn close(&mut self, fd: i32) -> Result<Closed, Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        let entry = self.take(i).ok_or(Errno::EBADF)?;
        Ok(Closed {
            file: entry.file,
            last_reference: self.references(entry.file) == 0,
        })
    }

    /// Closes every descriptor (at job exit), lowest first.
    pub fn close_all(&mut self) -> Vec<Closed> {
        let fds: Vec<i32> = self.iter().map(|(fd, _)| fd).collect();
        fds.into_iter()
            .filter_map(|fd| self.close(fd).ok())
            .collect()
    }

    /// `dup(2)`: a copy of `oldfd` on the lowest free descriptor, with
    /// `FD_CLOEXEC` clear. Errors: `EBADF`, `EMFILE`.
    pub fn dup(&mut self, oldfd: i32) -> Result<i32, Errno> {
        self.dup_min(oldfd, 0, false)
    }

    /// `fcntl(F_DUPFD / F_DUPFD_CLOEXEC, min)`: a copy of `oldfd` on the lowest
    /// free descriptor `>= min`. Errors: `EBADF`; `EINVAL` if `min` is negative
    /// or not below the limit; `EMFILE`.
    pub fn dup_min(&mut self, oldfd: i32, min: i32, cloexec: bool) -> Result<i32, Errno> {
        let entry = self.get(oldfd)?;
        let min = usize::try_from(min).map_err(|_| Errno::EINVAL)?;
        if min >= self.limit {
            return Err(Errno::EINVAL);
        }
        let i = self.lowest_free(min).ok_or(Errno::EMFILE)?;
        self.put(
            i,
            FdEntry {
                file: entry.file,
                cloexec,
            },
        );
        Ok(i as i32)
    }

    /// `dup2(2)`: makes `newfd` a copy of `oldfd` (`FD_CLOEXEC` clear), silently
    /// closing what `newfd` referred to (returned, so the caller can release it).
    /// If `oldfd == newfd`, only checks `oldfd`. Errors: `EBADF` for a closed
    /// `oldfd` or a `newfd` outside `0..limit`.
    pub fn dup2(&mut self, oldfd: i32, newfd: i32) -> Result<(i32, Option<Closed>), Errno> {
        let entry = self.get(oldfd)?;
        if oldfd == newfd {
            return Ok((newfd, None));
        }
        self.replace(entry.file, newfd, false)
    }

    /// `dup3(2)`: as [`FdTable::dup2`] but `flags` may hold `O_CLOEXEC`, and
    /// `oldfd == newfd` is `EINVAL`. Errors: `EINVAL` for other flags or equal
    /// descriptors; `EBADF` as for `dup2`.
    pub fn dup3(
        &mut self,
        oldfd: i32,
        newfd: i32,
        flags: i32,
    ) -> Result<(i32, Option<Closed>), Errno> {
        let cloexec_flag = g::O_CLOEXEC as i32;
        if flags & !cloexec_flag != 0 || oldfd == newfd {
            return Err(Errno::EINVAL);
        }
        let entry = self.get(oldfd)?;
        self.replace(entry.file, newfd, flags & cloexec_flag != 0)
    }

    fn replace(
        &mut self,
        file: OpenFile,
        newfd: i32,
        cloexec: bool,
    ) -> Result<(i32, Option<Closed>), Errno> {
        let i = usize::try_from(newfd).map_err(|_| Errno::EBADF)?;
        if i >= self.limit {
            return Err(Errno::EBADF);
        }
        let old = self.slots.get(i).copied().flatten();
        self.put(i, FdEntry { file, cloexec });
        let closed = old.map(|e| Closed {
            file: e.file,
            last_reference: self.references(e.file) == 0,
        });
        Ok((newfd, closed))
    }

    /// `fcntl(F_GETFD)`: whether `FD_CLOEXEC` is set. Errors: `EBADF`.
    pub fn cloexec(&self, fd: i32) -> Result<bool, Errno> {
        self.get(fd).map(|e| e.cloexec)
    }

    /// `fcntl(F_SETFD)`: sets or clears `FD_CLOEXEC`. Errors: `EBADF`.
    pub fn set_cloexec(&mut self, fd: i32, cloexec: bool) -> Result<(), Errno> {
        let entry = self.get(fd)?;
        self.put(fd as usize, FdEntry { cloexec, ..entry });
        Ok(())
    }
}

impl Default for FdTable {
    /// [`FdTable::with_stdio`] with [`FdTable::DEFAULT_LIMIT`].
    fn default() -> Self {
        FdTable::with_stdio(FdTable::DEFAULT_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: OpenFile = OpenFile::Stdio(StdStream::Stdout);

    #[test]
    fn stdio_and_lowest_free() {
        let mut t = FdTable::default();
        assert_eq!(t.file(1), Ok(OUT));
        assert_eq!(t.insert(OpenFile::HostFile(7), false), Ok(3));
        assert_eq!(t.insert(OpenFile::HostFile(8), false), Ok(4));
        // Closing 0 makes it the lowest free descriptor again.
        let c = t.close(0).unwrap();
        assert_eq!(c.file, OpenFile::Stdio(StdStream::Stdin));
        assert!(c.last_reference);
        assert_eq!(t.insert(OpenFile::HostFile(9), false), Ok(0));
        assert_eq!(t.insert(OpenFile::HostFile(10), false), Ok(5));
        assert_eq!(t.route(0), Ok(Served::Submitter));
        assert_eq!(t.route(2), Ok(Served::Node));
        assert_eq!(t.route(6), Err(Errno::EBADF));
        assert_eq!(t.route(-1), Err(Errno::EBADF));
    }

    #[test]
    fn close_errors_and_references() {
        let mut t = FdTable::default();
        assert_eq!(t.close(3), Err(Errno::EBADF));
        assert_eq!(t.close(-5), Err(Errno::EBADF));
        let f = OpenFile::HostFile(42);
        let a = t.insert(f, false).unwrap();
        let b = t.dup(a).unwrap();
        assert_eq!(b, 4);
        assert_eq!(t.references(f), 2);
        // Closing one copy keeps the host file open.
        assert_eq!(
            t.close(a),
            Ok(Closed {
                file: f,
                last_reference: false
            })
        );
        assert_eq!(t.close(a), Err(Errno::EBADF));
        assert_eq!(
            t.close(b),
            Ok(Closed {
                file: f,
                last_reference: true
            })
        );
    }

    #[test]
    fn dup_clears_cloexec_and_respects_limit() {
        let mut t = FdTable::with_stdio(5);
        let f = t.insert(OpenFile::HostFile(1), true).unwrap();
        assert_eq!(t.cloexec(f), Ok(true));
        let d = t.dup(f).unwrap();
        assert_eq!(d, 4);
        assert_eq!(t.cloexec(d), Ok(false));
        assert_eq!(t.dup(f), Err(Errno::EMFILE));
        assert_eq!(t.insert(OUT, false), Err(Errno::EMFILE));
        assert_eq!(t.dup(9), Err(Errno::EBADF));
    }

    #[test]
    fn dup_min_is_f_dupfd() {
        let mut t = FdTable::default();
        assert_eq!(t.dup_min(1, 10, true), Ok(10));
        assert_eq!(t.cloexec(10), Ok(true));
        assert_eq!(t.dup_min(1, 10, false), Ok(11));
        assert_eq!(t.dup_min(1, 3, false), Ok(3));
        assert_eq!(t.dup_min(1, -1, false), Err(Errno::EINVAL));
        assert_eq!(t.dup_min(1, 1024, false), Err(Errno::EINVAL));
        assert_eq!(t.dup_min(50, 0, false), Err(Errno::EBADF));
    }

    #[test]
    fn dup2_semantics() {
        let mut t = FdTable::default();
        let f = OpenFile::HostFile(5);
        let fd = t.insert(f, true).unwrap();
        // dup2 onto stdout closes stdout silently and reports it.
        let (n, closed) = t.dup2(fd, 1).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            closed,
            Some(Closed {
                file: OUT,
                last_reference: true
            })
        );
        assert_eq!(t.file(1), Ok(f));
        assert_eq!(t.cloexec(1), Ok(false));
        // Same descriptor: no-op that still checks oldfd.
        assert_eq!(t.dup2(fd, fd), Ok((fd, None)));
        assert_eq!(t.dup2(77, 77), Err(Errno::EBADF));
        // Onto a free high descriptor.
        assert_eq!(t.dup2(0, 100), Ok((100, None)));
        assert_eq!(t.file(100), Ok(OpenFile::Stdio(StdStream::Stdin)));
        // Out of range.
        assert_eq!(t.dup2(0, 1024), Err(Errno::EBADF));
        assert_eq!(t.dup2(0, -1), Err(Errno::EBADF));
        // Replacing a copy of the same file is not its last reference.
        let (_, closed) = t.dup2(1, fd).unwrap();
        assert_eq!(
            closed,
            Some(Closed {
                file: f,
                last_reference: false
            })
        );
        // After dup2 stdout -> 100 (stdin copy), stdin still referenced by 0.
        let (_, closed) = t.dup2(2, 100).unwrap();
        assert_eq!(
            closed,
            Some(Closed {
                file: OpenFile::Stdio(StdStream::Stdin),
                last_reference: false
            })
        );
    }

    #[test]
    fn dup3_semantics() {
        let mut t = FdTable::default();
        let cloexec = g::O_CLOEXEC as i32;
        assert_eq!(t.dup3(1, 1, 0), Err(Errno::EINVAL));
        assert_eq!(t.dup3(1, 5, 0x1), Err(Errno::EINVAL));
        assert_eq!(t.dup3(9, 5, 0), Err(Errno::EBADF));
        assert_eq!(t.dup3(1, 5, cloexec), Ok((5, None)));
        assert_eq!(t.cloexec(5), Ok(true));
        assert_eq!(t.dup3(2, 5, 0).unwrap().1.unwrap().file, OUT);
        assert_eq!(t.cloexec(5), Ok(false));
    }

    #[test]
    fn pipes() {
        let mut t = FdTable::default();
        t.close(0).unwrap();
        let (r, w) = t.insert_pipe(3, false).unwrap();
        assert_eq!((r, w), (0, 3));
        assert_eq!(
            t.file(r),
            Ok(OpenFile::Pipe {
                id: 3,
                end: PipeEnd::Read
            })
        );
        assert_eq!(
            t.file(w),
            Ok(OpenFile::Pipe {
                id: 3,
                end: PipeEnd::Write
            })
        );
        assert_eq!(t.route(w), Ok(Served::Node));
        let w2 = t.dup(w).unwrap();
        assert!(!t.close(w).unwrap().last_reference);
        assert!(t.close(w2).unwrap().last_reference);
        // Both or neither: with one free slot a pipe fails and takes nothing.
        let mut small = FdTable::with_stdio(4);
        assert_eq!(small.insert_pipe(1, false), Err(Errno::EMFILE));
        assert_eq!(small.iter().count(), 3);
    }

    #[test]
    fn set_cloexec_and_close_all() {
        let mut t = FdTable::default();
        assert_eq!(t.set_cloexec(2, true), Ok(()));
        assert_eq!(t.cloexec(2), Ok(true));
        assert_eq!(t.set_cloexec(8, true), Err(Errno::EBADF));
        t.insert(OpenFile::HostFile(1), false).unwrap();
        t.dup(3).unwrap();
        let closed = t.close_all();
        assert_eq!(closed.len(), 5);
        assert_eq!(closed.iter().filter(|c| c.last_reference).count(), 4);
        assert_eq!(t.iter().count(), 0);
    }
}
