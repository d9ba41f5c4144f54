//! Path calls: forwarded to `hostd`, which performs them inside the job
//! directory (`open(2)`, `stat(2)`, `statx(2)`, `access(2)`, `readlink(2)`,
//! `mkdir(2)`, `unlink(2)`, `rename(2)`, `chdir(2)`), except `getcwd(2)`,
//! `readlink("/proc/self/exe")` and `/dev/null`, answered here. Each handler
//! decodes its arguments and serves them.

use alloc::vec::Vec;

use linux_raw_sys::general as g;

use super::io::{DEVICES, native_stat};
use super::{Args, StatLayout, StatfsLayout};
use crate::errno::Errno;
use crate::fd::{OpenFile, PipeEnd};
use crate::job::{self, Dir, FileRequest, FileStat};
use crate::path::PATH_MAX;
use crate::process::{CallError, CallResult, HostFile, Process};
use crate::stat;

const AT_FDCWD: i32 = g::AT_FDCWD;
const AT_SYMLINK_NOFOLLOW: i32 = g::AT_SYMLINK_NOFOLLOW as i32;
const AT_EMPTY_PATH: i32 = g::AT_EMPTY_PATH as i32;
const O_ACCMODE: i32 = g::O_ACCMODE as i32;
const O_CLOEXEC: i32 = g::O_CLOEXEC as i32;

/// The program's own path as `/proc/self/exe` shows it.
const PROC_SELF_EXE: &[u8] = b"/proc/self/exe";

/// The directory of links to the program's descriptors (`proc(5)`).
const PROC_SELF_FD: &[u8] = b"/proc/self/fd/";

/// `pipe:[N]` numbers of standard streams are 0..3; in-node pipes follow.
const STDIO_PIPES: u32 = 3;

/// Where a `stat` result goes.
#[derive(Clone, Copy)]
enum StatOut {
    Stat(u64, StatLayout),
    Statx(u64),
}

/// `open(pathname, flags, mode)`.
pub(super) fn open(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.open(AT_FDCWD, a.word(0), a.int(1), a.uint(2))
}

/// `openat(dirfd, pathname, flags, mode)`.
pub(super) fn openat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.open(a.int(0), a.word(1), a.int(2), a.uint(3))
}

/// `stat(pathname, statbuf)` with the ABI's own `struct stat`.
pub(super) fn stat(p: &mut Process<'_>, a: &Args) -> CallResult {
    let out = StatOut::Stat(a.word(1), native_stat(a.abi()));
    p.stat_path(AT_FDCWD, a.word(0), 0, out)
}

/// `lstat(pathname, statbuf)`.
pub(super) fn lstat(p: &mut Process<'_>, a: &Args) -> CallResult {
    let out = StatOut::Stat(a.word(1), native_stat(a.abi()));
    p.stat_path(AT_FDCWD, a.word(0), AT_SYMLINK_NOFOLLOW, out)
}

/// i386 `stat64(pathname, statbuf)`.
pub(super) fn stat64(p: &mut Process<'_>, a: &Args) -> CallResult {
    let out = StatOut::Stat(a.word(1), StatLayout::I386Stat64);
    p.stat_path(AT_FDCWD, a.word(0), 0, out)
}

/// i386 `lstat64(pathname, statbuf)`.
pub(super) fn lstat64(p: &mut Process<'_>, a: &Args) -> CallResult {
    let out = StatOut::Stat(a.word(1), StatLayout::I386Stat64);
    p.stat_path(AT_FDCWD, a.word(0), AT_SYMLINK_NOFOLLOW, out)
}

/// x86_64 `newfstatat(dirfd, pathname, statbuf, flags)`.
pub(super) fn newfstatat(p: &mut Process<'_>, a: &Args) -> CallResult {
    let out = StatOut::Stat(a.word(2), StatLayout::X86_64);
    p.stat_path(a.int(0), a.word(1), a.int(3), out)
}

/// i386 `fstatat64(dirfd, pathname, statbuf, flags)`.
pub(super) fn fstatat64(p: &mut Process<'_>, a: &Args) -> CallResult {
    let out = StatOut::Stat(a.word(2), StatLayout::I386Stat64);
    p.stat_path(a.int(0), a.word(1), a.int(3), out)
}

/// `statx(dirfd, pathname, flags, mask, statxbuf)`; every field is filled
/// whatever `mask` asks.
pub(super) fn statx(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.stat_path(a.int(0), a.word(1), a.int(2), StatOut::Statx(a.word(4)))
}

/// `access(pathname, mode)`.
pub(super) fn access(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.access(AT_FDCWD, a.word(0), a.int(1), 0)
}

/// `faccessat(dirfd, pathname, mode)` (no flags argument in the kernel ABI).
pub(super) fn faccessat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.access(a.int(0), a.word(1), a.int(2), 0)
}

/// `faccessat2(dirfd, pathname, mode, flags)`.
pub(super) fn faccessat2(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.access(a.int(0), a.word(1), a.int(2), a.int(3))
}

/// `readlink(pathname, buf, bufsiz)`.
pub(super) fn readlink(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.readlink(AT_FDCWD, a.word(0), a.word(1), a.word(2))
}

/// `readlinkat(dirfd, pathname, buf, bufsiz)`.
pub(super) fn readlinkat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.readlink(a.int(0), a.word(1), a.word(2), a.word(3))
}

/// `mkdir(pathname, mode)`.
pub(super) fn mkdir(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.mkdir(AT_FDCWD, a.word(0), a.uint(1))
}

/// `mkdirat(dirfd, pathname, mode)`.
pub(super) fn mkdirat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.mkdir(a.int(0), a.word(1), a.uint(2))
}

/// `chmod(pathname, mode)`.
pub(super) fn chmod(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.chmod(AT_FDCWD, a.word(0), a.uint(1))
}

/// `fchmodat(dirfd, pathname, mode)` (and `fchmodat2` without flags).
pub(super) fn fchmodat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.chmod(a.int(0), a.word(1), a.uint(2))
}

/// `fchmod(fd, mode)`: of a file `hostd` holds open; stdio and pipes keep
/// their modes (answered 0).
pub(super) fn fchmod(p: &mut Process<'_>, a: &Args) -> CallResult {
    let handle = match p.task.fds.file(a.int(0))? {
        OpenFile::HostFile(h) => h,
        _ => return Ok(0),
    };
    p.host_value(FileRequest::Chmod {
        dir: Dir::Handle(handle),
        path: Vec::new(),
        mode: a.uint(1),
    })?;
    Ok(0)
}

/// `chown(path, owner, group)`, `lchown` and `fchown(fd, owner, group)`: a
/// job's files belong to its submitter, so only a change to the
/// submitter's own ids (or -1, "keep") succeeds; anything else is `EPERM`,
/// as for an unprivileged user.
pub(super) fn chown(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.chown_ids(a.uint(1), a.uint(2))
}

/// `fchownat(dirfd, path, owner, group, flags)`: as `chown`.
pub(super) fn fchownat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.chown_ids(a.uint(2), a.uint(3))
}

impl Process<'_> {
    fn chown_ids(&self, uid: u32, gid: u32) -> CallResult {
        let keep = u32::MAX;
        if (uid == keep || uid == self.task.uid) && (gid == keep || gid == self.task.gid) {
            Ok(0)
        } else {
            Err(Errno::EPERM.into())
        }
    }
}

/// `link(oldpath, newpath)`.
pub(super) fn link(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.link(AT_FDCWD, a.word(0), AT_FDCWD, a.word(1), 0)
}

/// `linkat(olddirfd, oldpath, newdirfd, newpath, flags)`: a final link is
/// not followed (`AT_SYMLINK_FOLLOW` is refused: `EINVAL`).
pub(super) fn linkat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.link(a.int(0), a.word(1), a.int(2), a.word(3), a.int(4))
}

/// `symlink(target, linkpath)`.
pub(super) fn symlink(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.symlink(a.word(0), AT_FDCWD, a.word(1))
}

/// `symlinkat(target, newdirfd, linkpath)`.
pub(super) fn symlinkat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.symlink(a.word(0), a.int(1), a.word(2))
}

/// `utimensat(dirfd, pathname, times, flags)` with the ABI's `timespec`
/// (a NULL `pathname` with a descriptor: `futimens`).
pub(super) fn utimensat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.utimensat(a.int(0), a.word(1), a.word(2), a.int(3), a.native_time())
}

/// i386 `utimensat_time64`.
pub(super) fn utimensat_time64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.utimensat(
        a.int(0),
        a.word(1),
        a.word(2),
        a.int(3),
        super::TimeLayout::Time64,
    )
}

/// `truncate(path, length)`.
pub(super) fn truncate(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.truncate(a.word(0), a.long(1))
}

/// i386 `truncate64(path, length_lo, length_hi)`.
pub(super) fn truncate64(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.truncate(a.word(0), a.pair(1, 2))
}

/// `fallocate(fd, mode, offset, len)` (x86_64).
pub(super) fn fallocate(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.fallocate(a.int(0), a.int(1), a.long(2), a.long(3))
}

/// i386 `fallocate(fd, mode, offset_lo, offset_hi, len_lo, len_hi)`.
pub(super) fn fallocate_i386(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.fallocate(a.int(0), a.int(1), a.pair(2, 3), a.pair(4, 5))
}

/// `unlink(pathname)`.
pub(super) fn unlink(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.unlink(AT_FDCWD, a.word(0), 0)
}

/// `unlinkat(dirfd, pathname, flags)`.
pub(super) fn unlinkat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.unlink(a.int(0), a.word(1), a.int(2))
}

/// `rmdir(pathname)`: `unlinkat(AT_FDCWD, pathname, AT_REMOVEDIR)`.
pub(super) fn rmdir(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.unlink(AT_FDCWD, a.word(0), g::AT_REMOVEDIR as i32)
}

/// `rename(oldpath, newpath)`.
pub(super) fn rename(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.rename(AT_FDCWD, a.word(0), AT_FDCWD, a.word(1), 0)
}

/// `renameat(olddirfd, oldpath, newdirfd, newpath)`.
pub(super) fn renameat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.rename(a.int(0), a.word(1), a.int(2), a.word(3), 0)
}

/// `renameat2(olddirfd, oldpath, newdirfd, newpath, flags)`.
pub(super) fn renameat2(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.rename(a.int(0), a.word(1), a.int(2), a.word(3), a.uint(4))
}

/// `chdir(path)`: `hostd` checks the directory and answers its path.
pub(super) fn chdir(p: &mut Process<'_>, a: &Args) -> CallResult {
    let path = p.path(a.word(0))?;
    let (_, data) = p.host_value(FileRequest::Chdir { path })?;
    p.task.cwd = data;
    Ok(0)
}

/// `fchdir(fd)`: to a directory the job opened.
pub(super) fn fchdir(p: &mut Process<'_>, a: &Args) -> CallResult {
    let handle = match p.task.fds.file(a.int(0))? {
        OpenFile::HostFile(h) => h,
        _ => return Err(Errno::ENOTDIR.into()),
    };
    let (_, data) = p.host_value(FileRequest::Fchdir { handle })?;
    p.task.cwd = data;
    Ok(0)
}

/// `statfs(pathname, buf)` with the ABI's own `struct statfs`.
pub(super) fn statfs(p: &mut Process<'_>, a: &Args) -> CallResult {
    let layout = match a.abi() {
        crate::Abi::X86_64 => StatfsLayout::X86_64,
        crate::Abi::I386 => StatfsLayout::I386Statfs,
    };
    p.statfs(Some(a.word(0)), a.int(0), layout, a.word(1))
}

/// `fstatfs(fd, buf)` with the ABI's own `struct statfs`.
pub(super) fn fstatfs(p: &mut Process<'_>, a: &Args) -> CallResult {
    let layout = match a.abi() {
        crate::Abi::X86_64 => StatfsLayout::X86_64,
        crate::Abi::I386 => StatfsLayout::I386Statfs,
    };
    p.statfs(None, a.int(0), layout, a.word(1))
}

/// i386 `statfs64(pathname, sz, buf)`: `sz` must be the struct's size.
pub(super) fn statfs64(p: &mut Process<'_>, a: &Args) -> CallResult {
    check_statfs64_size(a.word(1))?;
    p.statfs(Some(a.word(0)), 0, StatfsLayout::I386Statfs64, a.word(2))
}

/// i386 `fstatfs64(fd, sz, buf)`.
pub(super) fn fstatfs64(p: &mut Process<'_>, a: &Args) -> CallResult {
    check_statfs64_size(a.word(1))?;
    p.statfs(None, a.int(0), StatfsLayout::I386Statfs64, a.word(2))
}

/// `statfs64`'s `sz` is the i386 `struct statfs64`'s size, else `EINVAL`
/// (`fs/statfs.c`).
fn check_statfs64_size(sz: u64) -> Result<(), CallError> {
    if sz == stat::statfs_len(StatfsLayout::I386Statfs64) as u64 {
        Ok(())
    } else {
        Err(Errno::EINVAL.into())
    }
}

/// `getcwd(buf, size)`: answered on the node; returns the length with the NUL.
pub(super) fn getcwd(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (buf, size) = (a.word(0), a.word(1));
    let mut cwd = p.task.cwd.clone();
    cwd.push(0);
    if size < cwd.len() as u64 {
        return Err(Errno::ERANGE.into());
    }
    p.write_mem(buf, &cwd)?;
    Ok(cwd.len() as u64)
}

impl Process<'_> {
    /// Reads a path argument. Errors: `EFAULT`, `ENAMETOOLONG`.
    fn path(&mut self, addr: u64) -> Result<Vec<u8>, CallError> {
        self.read_cstr(addr, PATH_MAX)
    }

    /// The base directory for `path` given `dirfd` (ignored for absolute
    /// paths, as in Linux). Errors: `EBADF`, `ENOTDIR`.
    fn dir(&self, dirfd: i32, path: &[u8]) -> Result<Dir, CallError> {
        if dirfd == AT_FDCWD || path.first() == Some(&b'/') {
            return Ok(Dir::Cwd);
        }
        match self.task.fds.file(dirfd)? {
            OpenFile::HostFile(h) if self.host_files.get(&h).is_none_or(|f| f.is_dir) => {
                Ok(Dir::Handle(h))
            }
            _ => Err(Errno::ENOTDIR.into()),
        }
    }

    fn open(&mut self, dirfd: i32, pathname: u64, flags: i32, mode: u32) -> CallResult {
        let path = self.path(pathname)?;
        let cloexec = flags & O_CLOEXEC != 0;
        if let Some(&(_, id)) = DEVICES.iter().find(|(p, _)| *p == path.as_slice()) {
            let end = if flags & O_ACCMODE == 0 {
                PipeEnd::Read
            } else {
                PipeEnd::Write
            };
            let fd = self.task.fds.insert(OpenFile::Pipe { id, end }, cloexec)?;
            return Ok(fd as u64);
        }
        let dir = self.dir(dirfd, &path)?;
        let (h, data) = self.host_value(FileRequest::Open {
            dir,
            path,
            flags,
            mode,
        })?;
        match self.task.fds.insert(OpenFile::HostFile(h), cloexec) {
            Ok(fd) => {
                self.host_files.insert(
                    h,
                    HostFile {
                        flags,
                        is_dir: data.first() == Some(&1),
                    },
                );
                Ok(fd as u64)
            }
            Err(e) => {
                let _ = self.host_call(FileRequest::Close { handle: h });
                Err(e.into())
            }
        }
    }

    fn stat_path(&mut self, dirfd: i32, pathname: u64, flags: i32, out: StatOut) -> CallResult {
        match out {
            StatOut::Stat(buf, layout) => {
                self.check_writable(buf, stat::layout_len(layout) as u64)?
            }
            StatOut::Statx(buf) => self.check_writable(buf, stat::STATX_LEN as u64)?,
        }
        let path = self.path(pathname)?;
        let st: FileStat = if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
            if dirfd == AT_FDCWD {
                self.host_stat(Dir::Cwd, b".".to_vec(), 0)?
            } else {
                self.stat_fd(dirfd)?
            }
        } else {
            let dir = self.dir(dirfd, &path)?;
            self.host_stat(dir, path, flags & AT_SYMLINK_NOFOLLOW)?
        };
        match out {
            StatOut::Stat(buf, layout) => {
                let bytes = stat::to_stat(&st, layout)?;
                self.write_mem(buf, &bytes)?;
            }
            StatOut::Statx(buf) => self.write_mem(buf, &stat::to_statx(&st))?,
        }
        Ok(0)
    }

    fn host_stat(&mut self, dir: Dir, path: Vec<u8>, flags: i32) -> Result<FileStat, CallError> {
        let (_, data) = self.host_value(FileRequest::Stat { dir, path, flags })?;
        job::decode_stat(&data).map_err(|_| CallError::Errno(Errno::EIO))
    }

    /// `statfs` of `pathname` (relative to the current directory) or, with
    /// `None`, `fstatfs` of descriptor `fd`, written at `buf` in `layout`.
    fn statfs(
        &mut self,
        pathname: Option<u64>,
        fd: i32,
        layout: StatfsLayout,
        buf: u64,
    ) -> CallResult {
        self.check_writable(buf, stat::statfs_len(layout) as u64)?;
        let request = match pathname {
            Some(addr) => {
                let path = self.path(addr)?;
                if DEVICES.iter().any(|(p, _)| *p == path.as_slice()) {
                    None
                } else {
                    Some(FileRequest::Statfs {
                        dir: Dir::Cwd,
                        path,
                    })
                }
            }
            None => match self.task.fds.file(fd)? {
                OpenFile::HostFile(h) => Some(FileRequest::Statfs {
                    dir: Dir::Handle(h),
                    path: Vec::new(),
                }),
                _ => None,
            },
        };
        let st = match request {
            Some(request) => {
                let (_, data) = self.host_value(request)?;
                job::decode_fs_stat(&data).map_err(|_| CallError::Errno(Errno::EIO))?
            }
            None => stat::node_fs_stat(),
        };
        self.write_mem(buf, &stat::to_statfs(&st, layout)?)?;
        Ok(0)
    }

    /// What `readlink("/proc/self/fd/N")` shows for descriptor `N`: a host
    /// file's path on the submitter, a device's own path, `pipe:[id]` for
    /// a pipe or a standard stream (`proc(5)`). `None` for any other path.
    /// Errors: `ENOENT` for a descriptor not open.
    fn proc_fd_link(&mut self, path: &[u8]) -> Result<Option<Vec<u8>>, CallError> {
        let Some(n) = path
            .strip_prefix(PROC_SELF_FD)
            .and_then(|n| core::str::from_utf8(n).ok())
        else {
            return Ok(None);
        };
        let fd: i32 = n.parse().map_err(|_| Errno::ENOENT)?;
        let file = self.task.fds.file(fd).map_err(|_| Errno::ENOENT)?;
        let pipe = |id: u32| alloc::format!("pipe:[{id}]").into_bytes();
        Ok(Some(match file {
            OpenFile::HostFile(handle) => {
                let (n, mut data) = self.host_value(FileRequest::HandlePath { handle })?;
                data.truncate(n as usize);
                data
            }
            OpenFile::Pipe { id, .. } => match DEVICES.iter().find(|(_, d)| *d == id) {
                Some((p, _)) => p.to_vec(),
                None => pipe(id + STDIO_PIPES),
            },
            OpenFile::Stdio(s) => pipe(s as u32),
        }))
    }

    fn access(&mut self, dirfd: i32, pathname: u64, mode: i32, flags: i32) -> CallResult {
        let path = self.path(pathname)?;
        if path == b"/dev/null" {
            return Ok(0);
        }
        let dir = self.dir(dirfd, &path)?;
        self.host_value(FileRequest::Access {
            dir,
            path,
            mode,
            flags,
        })?;
        Ok(0)
    }

    fn readlink(&mut self, dirfd: i32, pathname: u64, buf: u64, bufsiz: u64) -> CallResult {
        if bufsiz == 0 || bufsiz > i32::MAX as u64 {
            return Err(Errno::EINVAL.into());
        }
        let path = self.path(pathname)?;
        let target = if path == PROC_SELF_EXE {
            self.task.exe.clone()
        } else if let Some(link) = self.proc_fd_link(&path)? {
            link
        } else {
            let dir = self.dir(dirfd, &path)?;
            let len = bufsiz.min(PATH_MAX as u64) as u32;
            let (n, mut data) = self.host_value(FileRequest::Readlink { dir, path, len })?;
            data.truncate(n as usize);
            data
        };
        let n = target.len().min(bufsiz as usize);
        self.write_mem(buf, &target[..n])?;
        Ok(n as u64)
    }

    fn mkdir(&mut self, dirfd: i32, pathname: u64, mode: u32) -> CallResult {
        let path = self.path(pathname)?;
        let dir = self.dir(dirfd, &path)?;
        self.host_value(FileRequest::Mkdir { dir, path, mode })?;
        Ok(0)
    }

    fn chmod(&mut self, dirfd: i32, pathname: u64, mode: u32) -> CallResult {
        let path = self.path(pathname)?;
        let dir = self.dir(dirfd, &path)?;
        self.host_value(FileRequest::Chmod { dir, path, mode })?;
        Ok(0)
    }

    fn link(&mut self, olddirfd: i32, old: u64, newdirfd: i32, new: u64, flags: i32) -> CallResult {
        if flags & !(g::AT_EMPTY_PATH as i32) != 0 {
            return Err(Errno::EINVAL.into());
        }
        let from = self.path(old)?;
        let to = self.path(new)?;
        let from_dir = self.dir(olddirfd, &from)?;
        let to_dir = self.dir(newdirfd, &to)?;
        self.host_value(FileRequest::Link {
            from_dir,
            from,
            to_dir,
            to,
        })?;
        Ok(0)
    }

    fn symlink(&mut self, target: u64, dirfd: i32, linkpath: u64) -> CallResult {
        let target = self.path(target)?;
        let path = self.path(linkpath)?;
        let dir = self.dir(dirfd, &path)?;
        self.host_value(FileRequest::Symlink { target, dir, path })?;
        Ok(0)
    }

    fn utimensat(
        &mut self,
        dirfd: i32,
        pathname: u64,
        times: u64,
        flags: i32,
        layout: super::TimeLayout,
    ) -> CallResult {
        let times = if times == 0 {
            None
        } else {
            let (w, len) = match layout {
                super::TimeLayout::Time32 => (4usize, 16u64),
                super::TimeLayout::Time64 => (8, 32),
            };
            let b = self.read_mem(times, len)?;
            let field = |i: usize| -> i64 {
                let mut v = [0u8; 8];
                v[..w].copy_from_slice(&b[i * w..i * w + w]);
                if w == 4 {
                    i64::from(i32::from_le_bytes([v[0], v[1], v[2], v[3]]))
                } else {
                    i64::from_le_bytes(v)
                }
            };
            Some([(field(0), field(1)), (field(2), field(3))])
        };
        let (dir, path) = if pathname == 0 {
            // futimens(fd, times).
            match self.task.fds.file(dirfd)? {
                OpenFile::HostFile(h) => (Dir::Handle(h), Vec::new()),
                _ => return Ok(0),
            }
        } else {
            let path = self.path(pathname)?;
            if path.is_empty() {
                return Err(Errno::ENOENT.into());
            }
            (self.dir(dirfd, &path)?, path)
        };
        self.host_value(FileRequest::Utimens {
            dir,
            path,
            times,
            flags,
        })?;
        Ok(0)
    }

    fn truncate(&mut self, pathname: u64, length: i64) -> CallResult {
        if length < 0 {
            return Err(Errno::EINVAL.into());
        }
        let path = self.path(pathname)?;
        let dir = self.dir(AT_FDCWD, &path)?;
        self.host_value(FileRequest::Truncate { dir, path, length })?;
        Ok(0)
    }

    fn fallocate(&mut self, fd: i32, mode: i32, offset: i64, len: i64) -> CallResult {
        if offset < 0 || len <= 0 {
            return Err(Errno::EINVAL.into());
        }
        match self.task.fds.file(fd)? {
            OpenFile::HostFile(handle) => {
                self.host_value(FileRequest::Fallocate {
                    handle,
                    mode,
                    offset,
                    len,
                })?;
                Ok(0)
            }
            _ => Err(Errno::ESPIPE.into()),
        }
    }

    fn unlink(&mut self, dirfd: i32, pathname: u64, flags: i32) -> CallResult {
        let path = self.path(pathname)?;
        let dir = self.dir(dirfd, &path)?;
        self.host_value(FileRequest::Unlink { dir, path, flags })?;
        Ok(0)
    }

    fn rename(
        &mut self,
        olddirfd: i32,
        old: u64,
        newdirfd: i32,
        new: u64,
        flags: u32,
    ) -> CallResult {
        let from = self.path(old)?;
        let to = self.path(new)?;
        let from_dir = self.dir(olddirfd, &from)?;
        let to_dir = self.dir(newdirfd, &to)?;
        self.host_value(FileRequest::Rename {
            from_dir,
            from,
            to_dir,
            to,
            flags,
        })?;
        Ok(0)
    }
}
