//! The job directory's undo log: what every path the job changes looked like
//! before its first change, so that a job re-run after its node was lost
//! starts from the job directory it first saw (issue 14, "jobs survive node
//! loss"; the idea of HTCondor's and DMTCP's restart from a known state,
//! here at file level: every change goes through `hostd`).
//!
//! Recording is copy-on-first-change by path: before a request changes a
//! path, [`UndoLog::preserve`] records it once — absent, a regular file (its
//! bytes copied to the log's backup directory, with mode and times), a
//! directory (mode), or a symbolic link (target). A rename records both
//! names with everything beneath them ([`UndoLog::preserve_tree`]). A path
//! beneath one recorded absent (the job made it) or recorded whole (a
//! renamed tree) is not recorded again: that record already says what it
//! was, and a roll-back removes what the job put into a renamed directory's
//! place.
//! [`UndoLog::roll_back`] then removes what did not exist (deepest first)
//! and restores the rest (shallowest first); a file is rewritten in place, so
//! its other hard links see the old bytes again. Not restored: directories'
//! times, and special files (FIFOs, sockets, devices), which are left as they
//! are.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

/// A path's state before the job's first change to it.
#[derive(Debug)]
enum Before {
    /// Nothing was there.
    Absent,
    /// A regular file: its bytes are in `backup`.
    File {
        backup: PathBuf,
        mode: u32,
        /// (atime, mtime) as (seconds, nanoseconds).
        times: [(i64, i64); 2],
    },
    /// A directory with this mode; `whole`: with everything beneath it
    /// recorded too (a rename moved it), so at a roll-back whatever else is
    /// in it was put there by the job and goes.
    Dir { mode: u32, whole: bool },
    /// A symbolic link to `target`.
    Symlink { target: OsString },
    /// A FIFO, socket or device: left alone.
    Special,
}

/// What [`UndoLog::roll_back`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rollback {
    /// Paths the job created, removed again.
    pub removed: usize,
    /// Paths put back as they were.
    pub restored: usize,
    /// Bytes of file content put back.
    pub bytes: u64,
}

/// The undo log of one job directory (see the module docs).
#[derive(Debug)]
pub struct UndoLog {
    backups: PathBuf,
    entries: Vec<(PathBuf, Before)>,
    /// Where each recorded path is in `entries`.
    index: HashMap<PathBuf, usize>,
    next: u64,
    bytes: u64,
}

impl UndoLog {
    /// A log whose file copies go to a new private directory under the
    /// system's temporary directory (removed when the log is dropped).
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn new() -> io::Result<UndoLog> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let backups = std::env::temp_dir().join(format!("sion-undo-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&backups);
        fs::DirBuilder::new().mode(0o700).create(&backups)?;
        Ok(UndoLog {
            backups,
            entries: Vec::new(),
            index: HashMap::new(),
            next: 0,
            bytes: 0,
        })
    }

    /// Paths recorded since the last roll-back.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of file content copied since the last roll-back.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records `path` (absolute, not followed if a link) as it is now,
    /// unless it was recorded already, or an ancestor was recorded absent
    /// or whole (then the ancestor's record says what `path` was).
    ///
    /// # Errors
    /// Reading the path or copying a file (e.g. `ENOSPC`): the change must
    /// then not be made.
    pub fn preserve(&mut self, path: &Path) -> io::Result<()> {
        if self.index.contains_key(path) || self.covered(path) {
            return Ok(());
        }
        self.record(path).map(|_| ())
    }

    /// Records `path` and, if it is a directory (not a link to one),
    /// everything beneath it: a rename moves the whole tree.
    ///
    /// # Errors
    /// As [`UndoLog::preserve`].
    pub fn preserve_tree(&mut self, path: &Path) -> io::Result<()> {
        if self.covered(path) {
            return Ok(());
        }
        self.record_tree(path)
    }

    fn record_tree(&mut self, path: &Path) -> io::Result<()> {
        let i = match self.index.get(path) {
            Some(&i) => i,
            None => self.record(path)?,
        };
        if let Before::Dir { whole, .. } = &mut self.entries[i].1 {
            if *whole {
                return Ok(());
            }
            *whole = true;
            for entry in fs::read_dir(path)? {
                self.record_tree(&entry?.path())?;
            }
        }
        Ok(())
    }

    /// True if an ancestor of `path` was recorded absent or whole.
    fn covered(&self, path: &Path) -> bool {
        path.ancestors().skip(1).any(|a| {
            self.index.get(a).is_some_and(|&i| {
                matches!(
                    self.entries[i].1,
                    Before::Absent | Before::Dir { whole: true, .. }
                )
            })
        })
    }

    /// Records `path`'s present state; its index in `entries`.
    fn record(&mut self, path: &Path) -> io::Result<usize> {
        let before = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Before::Absent,
            Err(e) => return Err(e),
            Ok(m) if m.file_type().is_symlink() => Before::Symlink {
                target: fs::read_link(path)?.into_os_string(),
            },
            Ok(m) if m.is_dir() => Before::Dir {
                mode: m.permissions().mode() & 0o7777,
                whole: false,
            },
            Ok(m) if m.is_file() => {
                let backup = self.backups.join(self.next.to_string());
                self.next += 1;
                let copied = fs::copy(path, &backup)?;
                self.bytes += copied;
                Before::File {
                    backup,
                    mode: m.permissions().mode() & 0o7777,
                    times: [(m.atime(), m.atime_nsec()), (m.mtime(), m.mtime_nsec())],
                }
            }
            Ok(_) => Before::Special,
        };
        self.entries.push((path.to_path_buf(), before));
        self.index
            .insert(path.to_path_buf(), self.entries.len() - 1);
        Ok(self.entries.len() - 1)
    }

    /// Puts every recorded path back as it was and empties the log (the
    /// next run records afresh from the restored state).
    ///
    /// # Errors
    /// A path that cannot be removed or restored; the others are still
    /// tried, and the first error is returned.
    pub fn roll_back(&mut self) -> io::Result<Rollback> {
        let mut done = Rollback::default();
        let mut first_error: Option<io::Error> = None;
        let mut note = |r: io::Result<()>| {
            if let Err(e) = r
                && first_error.is_none()
            {
                first_error = Some(e);
            }
        };
        let mut entries = std::mem::take(&mut self.entries);
        let depth = |p: &Path| p.components().count();
        // What the job created goes first, deepest first.
        entries.sort_by_key(|(p, _)| std::cmp::Reverse(depth(p)));
        for (path, before) in &entries {
            if matches!(before, Before::Absent) && exists(path) {
                note(remove_any(path));
                done.removed += 1;
            }
        }
        // Then what was there, parents before children.
        entries.sort_by_key(|(p, _)| depth(p));
        let recorded: HashSet<&Path> = entries.iter().map(|(p, _)| p.as_path()).collect();
        for (path, before) in &entries {
            match before {
                Before::Absent | Before::Special => {}
                Before::Dir { mode, whole } => {
                    note(restore_dir(path, *mode));
                    if *whole {
                        // What the job put into a moved directory's place.
                        for extra in unrecorded_children(path, &recorded) {
                            note(remove_any(&extra));
                            done.removed += 1;
                        }
                    }
                    done.restored += 1;
                }
                Before::File {
                    backup,
                    mode,
                    times,
                } => {
                    match restore_file(path, backup, *mode, *times) {
                        Ok(n) => done.bytes += n,
                        Err(e) => note(Err(e)),
                    }
                    done.restored += 1;
                }
                Before::Symlink { target } => {
                    if exists(path) {
                        note(remove_any(path));
                    }
                    note(std::os::unix::fs::symlink(target, path));
                    done.restored += 1;
                }
            }
        }
        for (_, before) in entries {
            if let Before::File { backup, .. } = before {
                let _ = fs::remove_file(backup);
            }
        }
        self.index.clear();
        self.bytes = 0;
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }
}

impl UndoLog {
    /// Forgets everything recorded (the copies are deleted): the directory
    /// as it is now is what the next [`UndoLog::roll_back`] restores (a
    /// job's checkpoint).
    pub fn commit(&mut self) {
        for (_, before) in self.entries.drain(..) {
            if let Before::File { backup, .. } = before {
                let _ = fs::remove_file(backup);
            }
        }
        self.index.clear();
        self.bytes = 0;
    }
}

impl Drop for UndoLog {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.backups);
    }
}

/// The entries of directory `dir` that are not in `recorded`.
fn unrecorded_children(dir: &Path, recorded: &HashSet<&Path>) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| !recorded.contains(p.as_path()))
                .collect()
        })
        .unwrap_or_default()
}

/// True if something (even a dangling link) is at `path`.
fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Removes whatever is at `path` (a directory with its contents).
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn restore_dir(path: &Path, mode: u32) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            remove_any(path)?;
            fs::create_dir(path)?;
        }
        Err(_) => fs::create_dir(path)?,
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Rewrites the file at `path` in place with `backup`'s bytes (replacing
/// anything else there), then its mode and times; the bytes written.
fn restore_file(path: &Path, backup: &Path, mode: u32, times: [(i64, i64); 2]) -> io::Result<u64> {
    if fs::symlink_metadata(path).is_ok_and(|m| !m.is_file()) {
        remove_any(path)?;
    }
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let n = io::copy(&mut File::open(backup)?, &mut out)?;
    out.set_permissions(fs::Permissions::from_mode(mode))?;
    drop(out);
    let spec = |(s, ns): (i64, i64)| {
        TimeSpec::from(nix::libc::timespec {
            tv_sec: s,
            tv_nsec: ns,
        })
    };
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &spec(times[0]),
        &spec(times[1]),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
            let mut names: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for p in names {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                let m = fs::symlink_metadata(&p).unwrap();
                if m.file_type().is_symlink() {
                    out.push((rel, format!("-> {}", fs::read_link(&p).unwrap().display())));
                } else if m.is_dir() {
                    out.push((rel, format!("dir {:o}", m.permissions().mode() & 0o7777)));
                    walk(base, &p, out);
                } else {
                    out.push((
                        rel,
                        format!(
                            "{:o} {} {}",
                            m.permissions().mode() & 0o7777,
                            m.mtime(),
                            String::from_utf8_lossy(&fs::read(&p).unwrap())
                        ),
                    ));
                }
            }
        }
        walk(dir, dir, &mut out);
        out
    }

    #[test]
    fn a_roll_back_undoes_writes_creations_removals_renames_and_links() {
        let d = std::env::temp_dir().join(format!("undo-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir(&d).unwrap();
        fs::write(d.join("a.txt"), b"original a").unwrap();
        fs::write(d.join("gone.txt"), b"to be deleted").unwrap();
        fs::DirBuilder::new()
            .mode(0o750)
            .create(d.join("sub"))
            .unwrap();
        fs::write(d.join("sub/inner"), b"inner").unwrap();
        fs::hard_link(d.join("a.txt"), d.join("a-link")).unwrap();
        std::os::unix::fs::symlink("a.txt", d.join("ln")).unwrap();
        let before = tree(&d);

        let mut log = UndoLog::new().unwrap();
        // Writes to a.txt (through its hard link's content), a new file, a
        // removal, a rename of a directory, a new directory, a replaced link.
        log.preserve(&d.join("a.txt")).unwrap();
        fs::write(d.join("a.txt"), b"changed").unwrap();
        log.preserve(&d.join("a.txt")).unwrap();
        log.preserve(&d.join("new.txt")).unwrap();
        fs::write(d.join("new.txt"), b"new").unwrap();
        log.preserve(&d.join("gone.txt")).unwrap();
        fs::remove_file(d.join("gone.txt")).unwrap();
        log.preserve_tree(&d.join("sub")).unwrap();
        log.preserve_tree(&d.join("moved")).unwrap();
        fs::rename(d.join("sub"), d.join("moved")).unwrap();
        log.preserve(&d.join("moved/inner")).unwrap();
        fs::write(d.join("moved/inner"), b"rewritten").unwrap();
        // A new directory where the moved one was.
        log.preserve(&d.join("sub")).unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        log.preserve(&d.join("sub/extra")).unwrap();
        fs::write(d.join("sub/extra"), b"extra").unwrap();
        log.preserve(&d.join("made")).unwrap();
        fs::create_dir(d.join("made")).unwrap();
        log.preserve(&d.join("made/deep")).unwrap();
        fs::write(d.join("made/deep"), b"x").unwrap();
        log.preserve(&d.join("ln")).unwrap();
        fs::remove_file(d.join("ln")).unwrap();
        fs::write(d.join("ln"), b"not a link any more").unwrap();
        assert_eq!(log.len(), 8);
        assert_eq!(log.bytes(), 10 + 13 + 5);
        assert_ne!(tree(&d), before);

        let r = log.roll_back().unwrap();
        assert_eq!(tree(&d), before);
        assert_eq!(fs::read(d.join("a-link")).unwrap(), b"original a");
        assert_eq!((r.removed, r.restored), (4, 5), "{r:?}");
        assert!(log.is_empty());
        // A second run records from the restored state.
        log.preserve(&d.join("a.txt")).unwrap();
        fs::write(d.join("a.txt"), b"again").unwrap();
        log.roll_back().unwrap();
        assert_eq!(tree(&d), before);
        let backups = log.backups.clone();
        drop(log);
        assert!(!backups.exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
