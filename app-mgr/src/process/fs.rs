//! Path calls: forwarded to `hostd`, which performs them inside the job
//! directory (`open(2)`, `stat(2)`, `statx(2)`, `access(2)`, `readlink(2)`,
//! `mkdir(2)`, `unlink(2)`, `rename(2)`, `chdir(2)`), except `getcwd(2)`,
//! `readlink("/proc/self/exe")` and `/dev/null`, answered here.

use alloc::vec::Vec;

use crate::errno::Errno;
use crate::fd::{OpenFile, PipeEnd};
use crate::job::{self, Dir, FileRequest, FileStat};
use crate::path::PATH_MAX;
use crate::stat;
use crate::syscall::{StatLayout, Syscall};

use super::io::DEV_NULL;
use super::{CallError, CallResult, HostFile, Process};

const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: i32 = 0x100;
const AT_EMPTY_PATH: i32 = 0x1000;
const O_ACCMODE: i32 = 3;
const O_CLOEXEC: i32 = 0o2000000;

/// The program's own path as `/proc/self/exe` shows it.
const PROC_SELF_EXE: &[u8] = b"/proc/self/exe";

/// Where a `stat` result goes.
#[derive(Clone, Copy)]
enum StatOut {
    Stat(u64, StatLayout),
    Statx(u64),
}

impl Process<'_> {
    /// Serves a path call.
    pub fn path_call(&mut self, sc: Syscall) -> CallResult {
        match sc {
            Syscall::Open {
                pathname,
                flags,
                mode,
            } => self.open(AT_FDCWD, pathname, flags, mode),
            Syscall::Openat {
                dirfd,
                pathname,
                flags,
                mode,
            } => self.open(dirfd, pathname, flags, mode),
            Syscall::Stat {
                pathname,
                statbuf,
                layout,
            } => self.stat_path(AT_FDCWD, pathname, 0, StatOut::Stat(statbuf, layout)),
            Syscall::Lstat {
                pathname,
                statbuf,
                layout,
            } => self.stat_path(
                AT_FDCWD,
                pathname,
                AT_SYMLINK_NOFOLLOW,
                StatOut::Stat(statbuf, layout),
            ),
            Syscall::Fstatat {
                dirfd,
                pathname,
                statbuf,
                flags,
                layout,
            } => self.stat_path(dirfd, pathname, flags, StatOut::Stat(statbuf, layout)),
            Syscall::Statx {
                dirfd,
                pathname,
                flags,
                statxbuf,
                ..
            } => self.stat_path(dirfd, pathname, flags, StatOut::Statx(statxbuf)),
            Syscall::Access { pathname, mode } => self.access(AT_FDCWD, pathname, mode, 0),
            Syscall::Faccessat {
                dirfd,
                pathname,
                mode,
                flags,
            } => self.access(dirfd, pathname, mode, flags),
            Syscall::Readlink {
                pathname,
                buf,
                bufsiz,
            } => self.readlink(AT_FDCWD, pathname, buf, bufsiz),
            Syscall::Readlinkat {
                dirfd,
                pathname,
                buf,
                bufsiz,
            } => self.readlink(dirfd, pathname, buf, bufsiz),
            Syscall::Mkdir { pathname, mode } => self.mkdir(AT_FDCWD, pathname, mode),
            Syscall::Mkdirat {
                dirfd,
                pathname,
                mode,
            } => self.mkdir(dirfd, pathname, mode),
            Syscall::Unlink { pathname } => self.unlink(AT_FDCWD, pathname, 0),
            Syscall::Unlinkat {
                dirfd,
                pathname,
                flags,
            } => self.unlink(dirfd, pathname, flags),
            Syscall::Rename { oldpath, newpath } => {
                self.rename(AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)
            }
            Syscall::Renameat {
                olddirfd,
                oldpath,
                newdirfd,
                newpath,
                flags,
            } => self.rename(olddirfd, oldpath, newdirfd, newpath, flags),
            Syscall::Chdir { path } => {
                let path = self.path(path)?;
                let (_, data) = self.host_value(FileRequest::Chdir { path })?;
                self.cwd = data;
                Ok(0)
            }
            Syscall::Getcwd { buf, size } => {
                let mut cwd = self.cwd.clone();
                cwd.push(0);
                if size < cwd.len() as u64 {
                    return Err(Errno::ERANGE.into());
                }
                self.write_mem(buf, &cwd)?;
                Ok(cwd.len() as u64)
            }
            _ => Err(Errno::ENOSYS.into()),
        }
    }

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
        match self.fds.file(dirfd)? {
            OpenFile::HostFile(h) if self.host_files.get(&h).is_none_or(|f| f.is_dir) => {
                Ok(Dir::Handle(h))
            }
            _ => Err(Errno::ENOTDIR.into()),
        }
    }

    fn open(&mut self, dirfd: i32, pathname: u64, flags: i32, mode: u32) -> CallResult {
        let path = self.path(pathname)?;
        let cloexec = flags & O_CLOEXEC != 0;
        if path == b"/dev/null" {
            let end = if flags & O_ACCMODE == 0 {
                PipeEnd::Read
            } else {
                PipeEnd::Write
            };
            let fd = self
                .fds
                .insert(OpenFile::Pipe { id: DEV_NULL, end }, cloexec)?;
            return Ok(fd as u64);
        }
        let dir = self.dir(dirfd, &path)?;
        let (h, data) = self.host_value(FileRequest::Open {
            dir,
            path,
            flags,
            mode,
        })?;
        match self.fds.insert(OpenFile::HostFile(h), cloexec) {
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
            self.exe.clone()
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

    fn unlink(&mut self, dirfd: i32, pathname: u64, flags: i32) -> CallResult {
        let path = self.path(pathname)?;
        let dir = self.dir(dirfd, &path)?;
        self.host_value(FileRequest::Unlink { dir, path, flags })?;
        Ok(0)
    }

    fn rename(&mut self, olddirfd: i32, old: u64, newdirfd: i32, new: u64, flags: u32) -> CallResult {
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
