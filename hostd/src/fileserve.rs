//! The file system calls a job forwards to its `hostd submit` (docs/ARCHITECTURE.md
//! "App-Program Manager"; the remote-process paper's pseudo process),
//! performed inside the job directory and nowhere else.
//!
//! Confinement is two-fold: every path is first resolved lexically by
//! [`sion_app_mgr::path::Jail`] (`..` above the job directory and absolute
//! paths outside it give `EACCES`), then opened on the real file system with
//! `openat2(2)` and `RESOLVE_BENEATH` relative to a descriptor of the job
//! directory, so a symbolic link that points outside (absolute, or `..`
//! climbing out) is refused too (the kernel's `EXDEV` becomes `EACCES`).
//! Calls on a name (`lstat`, `unlink`, `mkdir`, `rename`, `readlink`) open its
//! parent directory that way and act on the last component with the `*at`
//! call, which never follows it.
//!
//! Paths of the submitter's system that dynamically linked programs need
//! (their interpreter, libraries, `/etc/ld.so.cache`, time zones) can be
//! exported read-only ([`system::SystemPaths`]): an absolute path under one
//! of those roots is opened (read-only, `EROFS` for writes) on the host
//! itself, after checking that its resolved form stays in the exported set.
//!
//! Results follow Linux conventions (`>= 0` or `-errno`) with data inline,
//! as [`sion_app_mgr::job::FileRequest`] documents.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{
    FchmodatFlags, FileStat as NixStat, Mode, fchmod, fchmodat, fstat, fstatat, major, minor,
    mkdirat,
};
use nix::unistd::{AccessFlags, UnlinkatFlags, Whence, faccessat, ftruncate, lseek, unlinkat};
use sion_app_mgr::job::{
    Dir, FileReply, FileRequest, FileStat, FsStat, encode_fs_stat, encode_stat,
};
use sion_app_mgr::path::{Jail, JailedPath};

pub mod system;
pub mod undo;
use system::SystemPaths;
use undo::{Rollback, UndoLog};

use nix::libc;

/// `AT_SYMLINK_NOFOLLOW`.
const AT_SYMLINK_NOFOLLOW: i32 = libc::AT_SYMLINK_NOFOLLOW;
/// `AT_REMOVEDIR`.
const AT_REMOVEDIR: i32 = libc::AT_REMOVEDIR;
/// `AT_EMPTY_PATH`.
const AT_EMPTY_PATH: i32 = libc::AT_EMPTY_PATH;

/// Open flags passed on to the host (others are dropped: `openat2` refuses
/// unknown bits). A job's flags are Linux's, as the host's are.
const PASSED_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_DIRECTORY
    | libc::O_NOFOLLOW
    | libc::O_NOATIME
    | libc::O_SYNC
    | libc::O_TMPFILE;

/// A file the job has open.
#[derive(Debug)]
struct Handle {
    file: File,
    /// Where it is, for directory-relative requests.
    path: JailedPath,
    is_dir: bool,
    /// Directory entries read so far (filled on the first `getdents64`) and
    /// the position in them.
    entries: Option<Vec<(u64, u8, Vec<u8>)>>,
    cursor: usize,
    /// A file of an exported system path (read-only; names relative to it
    /// are not resolved).
    system: bool,
}

/// The file side of a job: the job directory, the job's current directory in
/// it, and the files it has open.
pub struct FileServer {
    jail: Jail,
    root: OwnedFd,
    cwd: JailedPath,
    handles: HashMap<u64, Handle>,
    next: u64,
    system: SystemPaths,
    /// What the job changed, when it may be re-run ([`FileServer::keep_undo_log`]).
    undo: Option<UndoLog>,
    /// The open files at the job's last checkpoint ([`FileServer::checkpoint`]).
    saved: Option<Saved>,
}

/// The job's open files at a checkpoint: each handle's own descriptor
/// (a duplicate, so a file the job closes since stays open here) and
/// offset, the next handle number and the current directory.
#[derive(Debug)]
struct Saved {
    handles: HashMap<u64, (Handle, u64)>,
    next: u64,
    cwd: JailedPath,
}

impl Handle {
    /// Another handle on the same open file (`dup(2)`: it shares the
    /// offset), with the same directory listing and position.
    fn duplicate(&self) -> std::io::Result<Handle> {
        Ok(Handle {
            file: self.file.try_clone()?,
            path: self.path.clone(),
            is_dir: self.is_dir,
            entries: self.entries.clone(),
            cursor: self.cursor,
            system: self.system,
        })
    }
}

/// The host path of an open descriptor (its `/proc/self/fd` link).
fn fd_path(fd: std::os::fd::BorrowedFd) -> Option<PathBuf> {
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    std::fs::read_link(link).ok()
}

/// A request's outcome: the result value and data.
type Out = Result<(i64, Vec<u8>), Errno>;

impl FileServer {
    /// A server for job directory `dir` (made absolute and canonical).
    ///
    /// # Errors
    /// `dir` cannot be opened as a directory.
    pub fn new(dir: &Path) -> anyhow::Result<FileServer> {
        let dir: PathBuf = std::fs::canonicalize(dir)
            .map_err(|e| anyhow::anyhow!("job directory {}: {e}", dir.display()))?;
        let jail = Jail::new(dir.as_os_str().as_bytes())
            .map_err(|e| anyhow::anyhow!("job directory {}: {e:?}", dir.display()))?;
        let root = nix::fcntl::open(
            &dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| anyhow::anyhow!("job directory {}: {e}", dir.display()))?;
        Ok(FileServer {
            jail,
            root,
            cwd: JailedPath::root(),
            handles: HashMap::new(),
            next: 3,
            system: SystemPaths::none(),
            undo: None,
            saved: None,
        })
    }

    /// Exports `system` read-only besides the job directory.
    pub fn set_system_paths(&mut self, system: SystemPaths) {
        self.system = system;
    }

    /// The exported system paths.
    pub fn system_paths(&self) -> &SystemPaths {
        &self.system
    }

    /// The job directory (absolute).
    pub fn dir(&self) -> &[u8] {
        self.jail.dir()
    }

    /// From now on, records what every path the job changes was like
    /// before ([`undo`]), so that [`FileServer::roll_back`] can restore the
    /// job directory for a re-run.
    ///
    /// # Errors
    /// The log's backup directory cannot be created.
    pub fn keep_undo_log(&mut self) -> anyhow::Result<()> {
        self.undo = Some(UndoLog::new().map_err(|e| {
            anyhow::anyhow!(
                "creating the undo log under {}: {e}",
                std::env::temp_dir().display()
            )
        })?);
        Ok(())
    }

    /// Paths and file bytes in the undo log, if one is kept.
    pub fn undo_size(&self) -> Option<(usize, u64)> {
        self.undo.as_ref().map(|u| (u.len(), u.bytes()))
    }

    /// Puts the job directory back as it was when the undo log began (or
    /// was last rolled back), forgets the job's open files and returns its
    /// working directory to the job directory: where a re-run starts.
    ///
    /// # Errors
    /// No undo log kept, or a path that could not be restored.
    pub fn roll_back(&mut self) -> anyhow::Result<Rollback> {
        self.handles.clear();
        self.next = 3;
        self.cwd = JailedPath::root();
        let log = self
            .undo
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no undo log was kept for this job"))?;
        log.roll_back()
            .map_err(|e| anyhow::anyhow!("rolling the job directory back: {e}"))
    }

    /// The job took a checkpoint: from now on a roll-back returns the job
    /// directory to how it is now ([`UndoLog::commit`]), and
    /// [`FileServer::restore_checkpoint`] returns the open files to their
    /// state now (kept open here even if the job closes them since).
    ///
    /// # Errors
    /// An open file cannot be duplicated or its offset read.
    pub fn checkpoint(&mut self) -> anyhow::Result<()> {
        let mut handles = HashMap::new();
        for (h, handle) in &self.handles {
            let offset = if handle.is_dir {
                0
            } else {
                lseek(handle.file.as_fd(), 0, Whence::SeekCur)
                    .map_err(|e| anyhow::anyhow!("the offset of the job's file {h}: {e}"))?
                    as u64
            };
            let copy = handle
                .duplicate()
                .map_err(|e| anyhow::anyhow!("keeping the job's file {h} open: {e}"))?;
            handles.insert(*h, (copy, offset));
        }
        self.saved = Some(Saved {
            handles,
            next: self.next,
            cwd: self.cwd.clone(),
        });
        if let Some(undo) = self.undo.as_mut() {
            undo.commit();
        }
        self.preserve_open_files()
    }

    /// Records in the undo log every file the job holds open for writing,
    /// as it is now: writes through them are not preceded by an open the
    /// log would see.
    fn preserve_open_files(&mut self) -> anyhow::Result<()> {
        let Some(undo) = self.undo.as_mut() else {
            return Ok(());
        };
        for (h, handle) in &self.handles {
            let writable = nix::fcntl::fcntl(handle.file.as_fd(), nix::fcntl::FcntlArg::F_GETFL)
                .is_ok_and(|fl| fl & libc::O_ACCMODE != libc::O_RDONLY);
            if handle.is_dir || handle.system || !writable {
                continue;
            }
            if let Some(path) = fd_path(handle.file.as_fd())
                && path.exists()
            {
                undo.preserve(&path)
                    .map_err(|e| anyhow::anyhow!("recording the job's file {h}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Returns the job directory and the job's open files (their offsets,
    /// listings, the handle numbers) and current directory to the last
    /// checkpoint ([`FileServer::checkpoint`]), for a job that continues
    /// from it; without one, to the job's start ([`FileServer::roll_back`]).
    ///
    /// # Errors
    /// As [`FileServer::roll_back`]; an open file that cannot be put back.
    pub fn restore_checkpoint(&mut self) -> anyhow::Result<Rollback> {
        let rollback = self.roll_back()?;
        let Some(saved) = &self.saved else {
            return Ok(rollback);
        };
        for (h, (handle, offset)) in &saved.handles {
            let copy = handle
                .duplicate()
                .map_err(|e| anyhow::anyhow!("reopening the job's file {h}: {e}"))?;
            if !copy.is_dir {
                let to = i64::try_from(*offset).unwrap_or(i64::MAX);
                lseek(copy.file.as_fd(), to, Whence::SeekSet)
                    .map_err(|e| anyhow::anyhow!("the offset of the job's file {h}: {e}"))?;
            }
            self.handles.insert(*h, copy);
        }
        self.next = saved.next;
        self.cwd = saved.cwd.clone();
        self.preserve_open_files()?;
        Ok(rollback)
    }

    /// Number of files the job holds open.
    pub fn open_files(&self) -> usize {
        self.handles.len()
    }

    /// Performs `request` and gives the reply for `id`.
    pub fn serve(&mut self, id: u64, request: FileRequest) -> FileReply {
        let (result, data) = match self.dispatch(request) {
            Ok(r) => r,
            Err(e) => (-(e as i32 as i64), Vec::new()),
        };
        FileReply { id, result, data }
    }

    fn dispatch(&mut self, request: FileRequest) -> Out {
        if self.undo.is_some() {
            self.preserve_for(&request)?;
        }
        match request {
            FileRequest::Open {
                dir,
                path,
                flags,
                mode,
            } => self.open(dir, &path, flags, mode),
            FileRequest::Close { handle } => {
                self.handles.remove(&handle).ok_or(Errno::EBADF)?;
                Ok((0, Vec::new()))
            }
            FileRequest::Read { handle, len } => {
                let h = self.handle(handle)?;
                if h.is_dir {
                    return Err(Errno::EISDIR);
                }
                let mut buf = vec![0u8; len.min(sion_app_mgr::job::CHUNK as u32) as usize];
                let n = h.file.read(&mut buf).map_err(io_errno)?;
                buf.truncate(n);
                Ok((n as i64, buf))
            }
            FileRequest::Write { handle, data } => {
                let h = self.handle(handle)?;
                let n = h.file.write(&data).map_err(io_errno)?;
                Ok((n as i64, Vec::new()))
            }
            FileRequest::Pread {
                handle,
                len,
                offset,
            } => {
                let h = self.handle(handle)?;
                if h.is_dir {
                    return Err(Errno::EISDIR);
                }
                let offset = u64::try_from(offset).map_err(|_| Errno::EINVAL)?;
                let mut buf = vec![0u8; len.min(sion_app_mgr::job::CHUNK as u32) as usize];
                let n = h.file.read_at(&mut buf, offset).map_err(io_errno)?;
                buf.truncate(n);
                Ok((n as i64, buf))
            }
            FileRequest::Pwrite {
                handle,
                data,
                offset,
            } => {
                let h = self.handle(handle)?;
                let offset = u64::try_from(offset).map_err(|_| Errno::EINVAL)?;
                let n = h.file.write_at(&data, offset).map_err(io_errno)?;
                Ok((n as i64, Vec::new()))
            }
            FileRequest::Lseek {
                handle,
                offset,
                whence,
            } => {
                let h = self.handle(handle)?;
                let whence = match whence {
                    0 => Whence::SeekSet,
                    1 => Whence::SeekCur,
                    2 => Whence::SeekEnd,
                    3 => Whence::SeekData,
                    4 => Whence::SeekHole,
                    _ => return Err(Errno::EINVAL),
                };
                if h.is_dir {
                    // rewinddir/seekdir: positions are entry indexes.
                    if !matches!(whence, Whence::SeekSet) || offset < 0 {
                        return Err(Errno::EINVAL);
                    }
                    h.cursor = offset as usize;
                    return Ok((offset, Vec::new()));
                }
                let at = lseek(h.file.as_fd(), offset, whence)?;
                Ok((at, Vec::new()))
            }
            FileRequest::Stat { dir, path, flags } => {
                let st = self.stat(dir, &path, flags)?;
                Ok((0, encode_stat(&st)))
            }
            FileRequest::Fstat { handle } => {
                let h = self.handle(handle)?;
                Ok((0, encode_stat(&convert(&fstat(h.file.as_fd())?))))
            }
            FileRequest::Access {
                dir,
                path,
                mode,
                flags,
            } => {
                if let Some(found) = self.system.lookup(&path) {
                    if mode & 2 != 0 {
                        return Err(Errno::EROFS);
                    }
                    nix::unistd::access(&found?, AccessFlags::from_bits_truncate(mode & 7))?;
                    return Ok((0, Vec::new()));
                }
                let mode = AccessFlags::from_bits_truncate(mode & 7);
                if flags & AT_SYMLINK_NOFOLLOW != 0 && !self.resolve(dir, &path)?.is_root() {
                    let (parent, name) = self.parent(dir, &path)?;
                    faccessat(
                        parent.as_fd(),
                        name.as_os_str(),
                        mode,
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )?;
                } else {
                    let fd = self.open_beneath(dir, &path, OFlag::O_PATH, 0)?;
                    faccessat(fd.as_fd(), "", mode, AtFlags::AT_EMPTY_PATH)?;
                }
                Ok((0, Vec::new()))
            }
            FileRequest::Readlink { dir, path, len } => {
                let (parent, name) = self.parent(dir, &path)?;
                let target = nix::fcntl::readlinkat(parent.as_fd(), name.as_os_str())?;
                let mut bytes = target.as_bytes().to_vec();
                bytes.truncate(len as usize);
                Ok((bytes.len() as i64, bytes))
            }
            FileRequest::Getdents64 { handle, len } => self.getdents(handle, len),
            FileRequest::Mkdir { dir, path, mode } => {
                let (parent, name) = self.parent(dir, &path)?;
                mkdirat(
                    parent.as_fd(),
                    name.as_os_str(),
                    Mode::from_bits_truncate(mode & 0o7777),
                )?;
                Ok((0, Vec::new()))
            }
            FileRequest::Unlink { dir, path, flags } => {
                let (parent, name) = self.parent(dir, &path)?;
                let how = if flags & AT_REMOVEDIR != 0 {
                    UnlinkatFlags::RemoveDir
                } else {
                    UnlinkatFlags::NoRemoveDir
                };
                unlinkat(parent.as_fd(), name.as_os_str(), how)?;
                Ok((0, Vec::new()))
            }
            FileRequest::Rename {
                from_dir,
                from,
                to_dir,
                to,
                flags,
            } => {
                let (p1, n1) = self.parent(from_dir, &from)?;
                let (p2, n2) = self.parent(to_dir, &to)?;
                nix::fcntl::renameat2(
                    p1.as_fd(),
                    n1.as_os_str(),
                    p2.as_fd(),
                    n2.as_os_str(),
                    nix::fcntl::RenameFlags::from_bits(flags).ok_or(Errno::EINVAL)?,
                )?;
                Ok((0, Vec::new()))
            }
            FileRequest::Chdir { path } => {
                let p = self.resolve(Dir::Cwd, &path)?;
                let _dir = self.open_jailed(&p, OFlag::O_PATH | OFlag::O_DIRECTORY, 0)?;
                self.cwd = p;
                Ok((0, self.jail.host_path(&self.cwd)))
            }
            FileRequest::Ftruncate { handle, length } => {
                let h = self.handle(handle)?;
                ftruncate(h.file.as_fd(), length)?;
                Ok((0, Vec::new()))
            }
            FileRequest::Lock { handle, set, range } => {
                let h = self.handle(handle)?;
                let mut fl = nix::libc::flock {
                    l_type: range.kind,
                    l_whence: range.whence,
                    l_start: range.start,
                    l_len: range.len,
                    l_pid: 0,
                };
                let fd = h.file.as_fd();
                if set {
                    match nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_OFD_SETLK(&fl)) {
                        Ok(_) => Ok((0, Vec::new())),
                        Err(Errno::EACCES) => Err(Errno::EAGAIN),
                        Err(e) => Err(e),
                    }
                } else {
                    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_OFD_GETLK(&mut fl))?;
                    let found = sion_app_mgr::job::LockRange {
                        kind: fl.l_type,
                        whence: fl.l_whence,
                        start: fl.l_start,
                        len: fl.l_len,
                    };
                    Ok((0, sion_app_mgr::job::encode_lock(&found)))
                }
            }
            FileRequest::Flock { handle, op } => {
                let h = self.handle(handle)?;
                use std::os::fd::AsRawFd;
                let arg = match op & !libc::LOCK_NB {
                    libc::LOCK_SH => nix::fcntl::FlockArg::LockSharedNonblock,
                    libc::LOCK_EX => nix::fcntl::FlockArg::LockExclusiveNonblock,
                    libc::LOCK_UN => nix::fcntl::FlockArg::Unlock,
                    _ => return Err(Errno::EINVAL),
                };
                #[allow(deprecated)]
                nix::fcntl::flock(h.file.as_raw_fd(), arg)?;
                Ok((0, Vec::new()))
            }
            FileRequest::Link {
                from_dir,
                from,
                to_dir,
                to,
            } => {
                let (p1, n1) = self.parent(from_dir, &from)?;
                let (p2, n2) = self.parent(to_dir, &to)?;
                nix::unistd::linkat(
                    p1.as_fd(),
                    n1.as_os_str(),
                    p2.as_fd(),
                    n2.as_os_str(),
                    AtFlags::empty(),
                )?;
                Ok((0, Vec::new()))
            }
            FileRequest::Symlink { target, dir, path } => {
                let (parent, name) = self.parent(dir, &path)?;
                nix::unistd::symlinkat(
                    OsStr::from_bytes(&target),
                    parent.as_fd(),
                    name.as_os_str(),
                )?;
                Ok((0, Vec::new()))
            }
            FileRequest::Utimens {
                dir,
                path,
                times,
                flags,
            } => {
                let spec = |(s, ns): (i64, i64)| {
                    nix::sys::time::TimeSpec::from(nix::libc::timespec {
                        tv_sec: s,
                        tv_nsec: ns,
                    })
                };
                let [a, m] = times.unwrap_or([(0, nix::libc::UTIME_NOW); 2]);
                let (a, m) = (spec(a), spec(m));
                if path.is_empty() {
                    let Dir::Handle(handle) = dir else {
                        return Err(Errno::ENOENT);
                    };
                    nix::sys::stat::futimens(self.handle(handle)?.file.as_fd(), &a, &m)?;
                } else {
                    if flags & AT_SYMLINK_NOFOLLOW != 0 {
                        let (parent, name) = self.parent(dir, &path)?;
                        nix::sys::stat::utimensat(
                            parent.as_fd(),
                            name.as_os_str(),
                            &a,
                            &m,
                            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                        )?;
                    } else {
                        // Following a link is confined: change the file it
                        // resolves to beneath the job directory.
                        let fd = self
                            .open_beneath(dir, &path, OFlag::O_RDONLY, 0)
                            .or_else(|_| self.open_beneath(dir, &path, OFlag::O_WRONLY, 0))?;
                        nix::sys::stat::futimens(fd.as_fd(), &a, &m)?;
                    }
                }
                Ok((0, Vec::new()))
            }
            FileRequest::Truncate { dir, path, length } => {
                let fd = self.open_beneath(dir, &path, OFlag::O_WRONLY, 0)?;
                ftruncate(fd.as_fd(), length)?;
                Ok((0, Vec::new()))
            }
            FileRequest::Fallocate {
                handle,
                mode,
                offset,
                len,
            } => {
                let h = self.handle(handle)?;
                nix::fcntl::fallocate(
                    h.file.as_fd(),
                    nix::fcntl::FallocateFlags::from_bits(mode).ok_or(Errno::EOPNOTSUPP)?,
                    offset,
                    len,
                )?;
                Ok((0, Vec::new()))
            }
            FileRequest::Fsync { handle, data_only } => {
                let h = self.handle(handle)?;
                if data_only {
                    h.file.sync_data().map_err(io_errno)?;
                } else {
                    h.file.sync_all().map_err(io_errno)?;
                }
                Ok((0, Vec::new()))
            }
            FileRequest::Chmod { dir, path, mode } => {
                let mode = Mode::from_bits_truncate(mode & 0o7777);
                if path.is_empty() {
                    let Dir::Handle(handle) = dir else {
                        return Err(Errno::ENOENT);
                    };
                    fchmod(self.handle(handle)?.file.as_fd(), mode)?;
                } else {
                    // The file as resolved beneath the job directory, changed
                    // through its /proc/self/fd link (an O_PATH descriptor
                    // cannot be fchmod'ed).
                    let fd = self.open_beneath(dir, &path, OFlag::O_PATH, 0)?;
                    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
                    fchmodat(
                        nix::fcntl::AT_FDCWD,
                        link.as_str(),
                        mode,
                        FchmodatFlags::FollowSymlink,
                    )?;
                }
                Ok((0, Vec::new()))
            }
            FileRequest::Statfs { dir, path } => {
                let fd: OwnedFd = if let Some(found) = self.system.lookup(&path) {
                    File::open(found?).map_err(io_errno)?.into()
                } else if let Some(ancestor) = self.ancestor(&path) {
                    File::open(ancestor).map_err(io_errno)?.into()
                } else if path.is_empty() {
                    let Dir::Handle(handle) = dir else {
                        return Err(Errno::ENOENT);
                    };
                    self.handle(handle)?
                        .file
                        .try_clone()
                        .map_err(io_errno)?
                        .into()
                } else {
                    self.open_beneath(dir, &path, OFlag::O_PATH, 0)?
                };
                Ok((0, encode_fs_stat(&fs_stat(&fd)?)))
            }
            FileRequest::Fchdir { handle } => {
                let h = self.handle(handle)?;
                if !h.is_dir {
                    return Err(Errno::ENOTDIR);
                }
                if h.system {
                    // Exported system paths are read-only data, not places
                    // to work in.
                    return Err(Errno::EACCES);
                }
                self.cwd = h.path.clone();
                Ok((0, self.jail.host_path(&self.cwd)))
            }
            FileRequest::HandlePath { handle } => {
                let h = self.handle(handle)?;
                // The kernel's own name for the open file (it follows
                // renames), as readlink of the job's /proc/self/fd/N shows.
                let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&h.file));
                let target = std::fs::read_link(link).map_err(io_errno)?;
                let bytes = std::os::unix::ffi::OsStringExt::into_vec(target.into_os_string());
                Ok((bytes.len() as i64, bytes))
            }
        }
    }

    /// Records in the undo log what `request` is about to change (see
    /// [`undo`]). A path that does not resolve is not recorded: the request
    /// fails on it too.
    ///
    /// # Errors
    /// The undo log failing to record (e.g. `ENOSPC` copying a file): the
    /// change is then not made.
    fn preserve_for(&mut self, request: &FileRequest) -> Result<(), Errno> {
        // (path, whole tree)
        let mut paths: Vec<(PathBuf, bool)> = Vec::new();
        match request {
            FileRequest::Open {
                dir, path, flags, ..
            } => {
                let writes =
                    libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND;
                let tmpfile = flags & libc::O_TMPFILE == libc::O_TMPFILE;
                if flags & writes != 0 && !tmpfile && self.system.lookup(path).is_none() {
                    paths.extend(self.target_path(*dir, path).map(|p| (p, false)));
                }
            }
            FileRequest::Mkdir { dir, path, .. }
            | FileRequest::Unlink { dir, path, .. }
            | FileRequest::Symlink { dir, path, .. }
            | FileRequest::Link {
                to_dir: dir,
                to: path,
                ..
            } => paths.extend(self.name_path(*dir, path).map(|p| (p, false))),
            FileRequest::Rename {
                from_dir,
                from,
                to_dir,
                to,
                ..
            } => {
                paths.extend(self.name_path(*from_dir, from).map(|p| (p, true)));
                paths.extend(self.name_path(*to_dir, to).map(|p| (p, true)));
            }
            FileRequest::Truncate { dir, path, .. } => {
                paths.extend(self.target_path(*dir, path).map(|p| (p, false)));
            }
            FileRequest::Chmod { dir, path, .. } | FileRequest::Utimens { dir, path, .. } => {
                let p = match (path.is_empty(), dir) {
                    (true, Dir::Handle(h)) => self
                        .handles
                        .get(h)
                        .filter(|h| !h.system)
                        .and_then(|h| fd_path(h.file.as_fd())),
                    (true, Dir::Cwd) => None,
                    (false, _) if matches!(request, FileRequest::Utimens { flags, .. } if flags & AT_SYMLINK_NOFOLLOW != 0) => {
                        self.name_path(*dir, path)
                    }
                    (false, _) => self.target_path(*dir, path),
                };
                paths.extend(p.map(|p| (p, false)));
            }
            _ => {}
        }
        let Some(log) = self.undo.as_mut() else {
            return Ok(());
        };
        for (p, tree) in paths {
            let done = if tree {
                log.preserve_tree(&p)
            } else {
                log.preserve(&p)
            };
            done.map_err(io_errno)?;
        }
        Ok(())
    }

    /// The host path of the last component of `path` (not followed).
    fn name_path(&self, dir: Dir, path: &[u8]) -> Option<PathBuf> {
        let (parent, name) = self.parent(dir, path).ok()?;
        let name = name.as_bytes();
        let name = name.strip_suffix(b"/").unwrap_or(name);
        Some(fd_path(parent.as_fd())?.join(OsStr::from_bytes(name)))
    }

    /// The host path `path` leads to (links followed beneath the job
    /// directory), or of its last component when nothing is there yet.
    fn target_path(&self, dir: Dir, path: &[u8]) -> Option<PathBuf> {
        match self.open_beneath(dir, path, OFlag::O_PATH, 0) {
            Ok(fd) => fd_path(fd.as_fd()),
            Err(_) => self.name_path(dir, path),
        }
    }

    fn handle(&mut self, handle: u64) -> Result<&mut Handle, Errno> {
        self.handles.get_mut(&handle).ok_or(Errno::EBADF)
    }

    /// Resolves `path` against `dir` inside the jail.
    fn resolve(&self, dir: Dir, path: &[u8]) -> Result<JailedPath, Errno> {
        let base = match dir {
            Dir::Cwd => &self.cwd,
            Dir::Handle(h) => {
                let h = self.handles.get(&h).ok_or(Errno::EBADF)?;
                if !h.is_dir {
                    return Err(Errno::ENOTDIR);
                }
                if h.system {
                    return Err(Errno::EACCES);
                }
                &h.path
            }
        };
        self.jail
            .resolve(base, path)
            .map_err(|e| Errno::from_raw(i32::from(e.raw())))
    }

    /// Opens a resolved path beneath the job directory (symbolic links may
    /// not lead out: `EACCES`).
    fn open_jailed(&self, p: &JailedPath, flags: OFlag, mode: u32) -> Result<OwnedFd, Errno> {
        let rel = p.relative();
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(Mode::from_bits_truncate(mode & 0o7777))
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.root.as_fd(), OsStr::from_bytes(&rel), how)
            .map_err(|e| if e == Errno::EXDEV { Errno::EACCES } else { e })
    }

    fn open_beneath(
        &self,
        dir: Dir,
        path: &[u8],
        flags: OFlag,
        mode: u32,
    ) -> Result<OwnedFd, Errno> {
        let p = self.resolve(dir, path)?;
        let flags = if p.must_be_directory() {
            flags | OFlag::O_DIRECTORY
        } else {
            flags
        };
        self.open_jailed(&p, flags, mode)
    }

    /// The parent directory of `path` (opened beneath the job directory) and
    /// the last component. The job directory itself has no parent in the
    /// jail: `EACCES`.
    fn parent(&self, dir: Dir, path: &[u8]) -> Result<(OwnedFd, std::ffi::OsString), Errno> {
        let p = self.resolve(dir, path)?;
        let comps: Vec<&[u8]> = p.components().collect();
        let Some((last, up)) = comps.split_last() else {
            return Err(Errno::EACCES);
        };
        let mut parent_path = Vec::new();
        for c in up {
            if !parent_path.is_empty() {
                parent_path.push(b'/');
            }
            parent_path.extend_from_slice(c);
        }
        let parent_rel = if parent_path.is_empty() {
            b".".to_vec()
        } else {
            parent_path
        };
        let parent = self
            .jail
            .resolve(&JailedPath::root(), &parent_rel)
            .map_err(|e| Errno::from_raw(i32::from(e.raw())))?;
        let fd = self.open_jailed(&parent, OFlag::O_PATH | OFlag::O_DIRECTORY, 0)?;
        let mut name = last.to_vec();
        if p.must_be_directory() {
            name.push(b'/');
        }
        Ok((fd, OsStr::from_bytes(&name).to_os_string()))
    }

    fn open(&mut self, dir: Dir, path: &[u8], flags: i32, mode: u32) -> Out {
        if let Some(found) = self.system.lookup(path) {
            return self.open_system(&found?, flags);
        }
        let creating = flags & 0o100 != 0 || flags & 0o20000000 != 0;
        let flags = OFlag::from_bits_truncate(flags & PASSED_FLAGS);
        let p = self.resolve(dir, path)?;
        let flags = if p.must_be_directory() && !creating {
            flags | OFlag::O_DIRECTORY
        } else {
            flags
        };
        let fd = self.open_jailed(&p, flags, if creating { mode } else { 0 })?;
        let st = fstat(fd.as_fd())?;
        let is_dir = st.st_mode & libc_s_ifmt() == 0o040000;
        let handle = self.next;
        self.next += 1;
        self.handles.insert(
            handle,
            Handle {
                file: File::from(fd),
                path: p,
                is_dir,
                entries: None,
                cursor: 0,
                system: false,
            },
        );
        Ok((handle as i64, vec![u8::from(is_dir)]))
    }

    /// `path` if it names, absolutely, a directory above the job directory
    /// (`/`, `/home`, `/home/user` for `/home/user/job`).
    fn ancestor(&self, path: &[u8]) -> Option<PathBuf> {
        if path.first() != Some(&b'/') {
            return None;
        }
        let mut norm: Vec<&[u8]> = Vec::new();
        for c in path.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    norm.pop();
                }
                c => norm.push(c),
            }
        }
        let job: Vec<&[u8]> = self
            .jail
            .dir()
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        if norm.len() >= job.len() || job[..norm.len()] != norm[..] {
            return None;
        }
        let mut p = PathBuf::from("/");
        for c in norm {
            p.push(OsStr::from_bytes(c));
        }
        Some(p)
    }

    /// Opens the resolved system file `path` read-only. Errors: `EROFS` for
    /// any write or creation, and what `open(2)` gives.
    fn open_system(&mut self, path: &Path, flags: i32) -> Out {
        let writes = libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND;
        if flags & writes != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE {
            return Err(Errno::EROFS);
        }
        let keep = OFlag::from_bits_truncate(flags & (libc::O_DIRECTORY | libc::O_NOFOLLOW));
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | keep,
            Mode::empty(),
        )?;
        let is_dir = fstat(fd.as_fd())?.st_mode & libc_s_ifmt() == 0o040000;
        let handle = self.next;
        self.next += 1;
        self.handles.insert(
            handle,
            Handle {
                file: File::from(fd),
                path: JailedPath::root(),
                is_dir,
                entries: None,
                cursor: 0,
                system: true,
            },
        );
        Ok((handle as i64, vec![u8::from(is_dir)]))
    }

    fn stat(&self, dir: Dir, path: &[u8], flags: i32) -> Result<FileStat, Errno> {
        if let Some(found) = self.system.lookup(path) {
            return Ok(convert(&nix::sys::stat::stat(&found?)?));
        }
        if let Some(ancestor) = self.ancestor(path) {
            // What a program sees walking up from its directory (SQLite
            // checks each component is not a link): the directories above
            // the job directory, by their metadata only.
            return Ok(convert(&nix::sys::stat::lstat(&ancestor)?));
        }
        if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
            let fd = match dir {
                Dir::Cwd => self.open_jailed(&self.cwd, OFlag::O_PATH, 0)?,
                Dir::Handle(h) => {
                    let h = self.handles.get(&h).ok_or(Errno::EBADF)?;
                    return Ok(convert(&fstat(h.file.as_fd())?));
                }
            };
            return Ok(convert(&fstat(fd.as_fd())?));
        }
        if flags & AT_SYMLINK_NOFOLLOW != 0 && !self.resolve(dir, path)?.is_root() {
            let (parent, name) = self.parent(dir, path)?;
            let st = fstatat(
                parent.as_fd(),
                name.as_os_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
            return Ok(convert(&st));
        }
        let fd = self.open_beneath(dir, path, OFlag::O_PATH, 0)?;
        Ok(convert(&fstat(fd.as_fd())?))
    }

    fn getdents(&mut self, handle: u64, len: u32) -> Out {
        let h = self.handles.get_mut(&handle).ok_or(Errno::EBADF)?;
        if !h.is_dir {
            return Err(Errno::ENOTDIR);
        }
        if h.entries.is_none() {
            let dup = h.file.try_clone().map_err(io_errno)?;
            let mut d = nix::dir::Dir::from_fd(OwnedFd::from(dup))?;
            let mut v = Vec::new();
            for e in d.iter() {
                let e = e?;
                use nix::dir::Type;
                let t = match e.file_type() {
                    Some(Type::Fifo) => 1,
                    Some(Type::CharacterDevice) => 2,
                    Some(Type::Directory) => 4,
                    Some(Type::BlockDevice) => 6,
                    Some(Type::File) => 8,
                    Some(Type::Symlink) => 10,
                    Some(Type::Socket) => 12,
                    None => 0,
                };
                v.push((e.ino(), t, e.file_name().to_bytes().to_vec()));
            }
            h.entries = Some(v);
        }
        let entries = h.entries.as_ref().map_or(&[][..], |v| v.as_slice());
        let mut out = Vec::new();
        while let Some((ino, t, name)) = entries.get(h.cursor) {
            let reclen = (19 + name.len() + 1).div_ceil(8) * 8;
            if out.len() + reclen > len as usize {
                if out.is_empty() {
                    return Err(Errno::EINVAL);
                }
                break;
            }
            out.extend_from_slice(&ino.to_le_bytes());
            out.extend_from_slice(&((h.cursor + 1) as i64).to_le_bytes());
            out.extend_from_slice(&(reclen as u16).to_le_bytes());
            out.push(*t);
            out.extend_from_slice(name);
            out.resize(out.len() + reclen - 19 - name.len(), 0);
            h.cursor += 1;
        }
        Ok((out.len() as i64, out))
    }
}

/// `S_IFMT`.
const fn libc_s_ifmt() -> u32 {
    0o170000
}

/// A host `struct stat` as the protocol's neutral [`FileStat`].
fn convert(st: &NixStat) -> FileStat {
    FileStat {
        dev_major: major(st.st_dev) as u32,
        dev_minor: minor(st.st_dev) as u32,
        ino: st.st_ino,
        mode: st.st_mode,
        nlink: st.st_nlink,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev_major: major(st.st_rdev) as u32,
        rdev_minor: minor(st.st_rdev) as u32,
        size: st.st_size,
        blksize: st.st_blksize,
        blocks: st.st_blocks,
        atime: (st.st_atime, st.st_atime_nsec as u32),
        mtime: (st.st_mtime, st.st_mtime_nsec as u32),
        ctime: (st.st_ctime, st.st_ctime_nsec as u32),
        btime: None,
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// `statfs(2)` of the file system holding `fd`: its type from `fstatfs`,
/// the rest from `fstatvfs` (the same numbers; `statvfs(3)`).
fn fs_stat(fd: &OwnedFd) -> Result<FsStat, Errno> {
    let kind = nix::sys::statfs::fstatfs(fd)?;
    let v = nix::sys::statvfs::fstatvfs(fd)?;
    Ok(FsStat {
        fs_type: kind.filesystem_type().0 as u64,
        bsize: v.block_size(),
        blocks: v.blocks(),
        bfree: v.blocks_free(),
        bavail: v.blocks_available(),
        files: v.files(),
        ffree: v.files_free(),
        fsid: v.filesystem_id(),
        namelen: v.name_max(),
        frsize: v.fragment_size(),
        // statfs(2) marks its flags valid; glibc's statvfs reads
        // /proc/mounts instead when the mark is missing.
        flags: v.flags().bits() | ST_VALID,
    })
}

/// `ST_VALID` of `include/linux/statfs.h` (in neither `libc` nor
/// `linux-raw-sys`): `f_flags` of `statfs(2)` is meaningful.
const ST_VALID: u64 = 0x0020;

#[cfg(test)]
mod tests;
