//! Tests of the job file server: real files in a temporary job directory,
//! escapes by `..`, absolute paths and symbolic links refused with `EACCES`.

use super::*;
use std::os::unix::fs::symlink;
use std::sync::atomic::{AtomicU32, Ordering};

const EACCES: i64 = -13;
const ENOENT: i64 = -2;

/// A fresh directory tree: `<tmp>/outside/secret` and `<tmp>/job/` (the job
/// directory), removed on drop.
struct Tree {
    base: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        static N: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir().join(format!(
            "sion-fileserve-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("job/sub")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("outside/secret"), b"secret").unwrap();
        std::fs::write(base.join("job/in.txt"), b"hello file\n").unwrap();
        Tree { base }
    }
    fn job(&self) -> PathBuf {
        self.base.join("job")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn open(fs: &mut FileServer, path: &[u8], flags: i32) -> FileReply {
    fs.serve(
        1,
        FileRequest::Open {
            dir: Dir::Cwd,
            path: path.to_vec(),
            flags,
            mode: 0o644,
        },
    )
}

#[test]
fn reads_and_writes_files_in_the_job_directory() {
    let t = Tree::new();
    let mut fs = FileServer::new(&t.job()).unwrap();
    let r = open(&mut fs, b"in.txt", 0);
    assert!(r.result >= 0, "{r:?}");
    assert_eq!(r.data, vec![0]);
    let h = r.result as u64;
    let r = fs.serve(2, FileRequest::Read { handle: h, len: 5 });
    assert_eq!((r.id, r.result, r.data.as_slice()), (2, 5, &b"hello"[..]));
    let r = fs.serve(
        3,
        FileRequest::Pread {
            handle: h,
            len: 100,
            offset: 6,
        },
    );
    assert_eq!(r.data, b"file\n");
    let r = fs.serve(4, FileRequest::Fstat { handle: h });
    let st = sion_app_mgr::job::decode_stat(&r.data).unwrap();
    assert_eq!(st.size, 11);
    assert_eq!(st.mode & 0o170000, 0o100000);
    assert_eq!(fs.serve(5, FileRequest::Close { handle: h }).result, 0);
    assert_eq!(fs.serve(6, FileRequest::Close { handle: h }).result, -9);

    // Create, write, seek, truncate.
    let r = open(&mut fs, b"sub/out.txt", 0o1101); // O_WRONLY|O_CREAT|O_TRUNC
    assert!(r.result >= 0, "{r:?}");
    let h = r.result as u64;
    let r = fs.serve(
        7,
        FileRequest::Write {
            handle: h,
            data: b"written".to_vec(),
        },
    );
    assert_eq!(r.result, 7);
    let r = fs.serve(
        8,
        FileRequest::Lseek {
            handle: h,
            offset: 0,
            whence: 1,
        },
    );
    assert_eq!(r.result, 7);
    assert_eq!(
        fs.serve(
            9,
            FileRequest::Ftruncate {
                handle: h,
                length: 4
            }
        )
        .result,
        0
    );
    fs.serve(10, FileRequest::Close { handle: h });
    assert_eq!(std::fs::read(t.job().join("sub/out.txt")).unwrap(), b"writ");
}

#[test]
fn escapes_are_refused_with_eacces() {
    let t = Tree::new();
    let mut fs = FileServer::new(&t.job()).unwrap();
    let secret = t.base.join("outside/secret");
    let abs = secret.as_os_str().as_bytes().to_vec();
    assert_eq!(open(&mut fs, b"../outside/secret", 0).result, EACCES);
    assert_eq!(open(&mut fs, b"sub/../../outside/secret", 0).result, EACCES);
    assert_eq!(open(&mut fs, &abs, 0).result, EACCES);
    assert_eq!(open(&mut fs, b"/etc/passwd", 0).result, EACCES);
    // Creating outside is refused and nothing is created.
    assert_eq!(open(&mut fs, b"../outside/new", 0o101).result, EACCES);
    assert!(!t.base.join("outside/new").exists());
    // Symbolic links out: absolute and relative.
    symlink(&secret, t.job().join("abs-link")).unwrap();
    symlink("../outside/secret", t.job().join("rel-link")).unwrap();
    symlink("../outside", t.job().join("dir-link")).unwrap();
    assert_eq!(open(&mut fs, b"abs-link", 0).result, EACCES);
    assert_eq!(open(&mut fs, b"rel-link", 0).result, EACCES);
    assert_eq!(open(&mut fs, b"dir-link/secret", 0).result, EACCES);
    assert_eq!(open(&mut fs, b"dir-link/new", 0o101).result, EACCES);
    assert!(!t.base.join("outside/new").exists());
    let stat = |fs: &mut FileServer, p: &[u8], flags| {
        fs.serve(
            1,
            FileRequest::Stat {
                dir: Dir::Cwd,
                path: p.to_vec(),
                flags,
            },
        )
    };
    assert_eq!(stat(&mut fs, b"rel-link", 0).result, EACCES);
    assert_eq!(stat(&mut fs, b"../outside", 0).result, EACCES);
    // lstat of the link itself is fine (it is inside).
    let r = stat(&mut fs, b"rel-link", AT_SYMLINK_NOFOLLOW);
    assert_eq!(r.result, 0);
    let st = sion_app_mgr::job::decode_stat(&r.data).unwrap();
    assert_eq!(st.mode & 0o170000, 0o120000);
    // Names through a link out are refused for unlink/mkdir/rename too.
    let unlink = fs.serve(
        1,
        FileRequest::Unlink {
            dir: Dir::Cwd,
            path: b"dir-link/secret".to_vec(),
            flags: 0,
        },
    );
    assert_eq!(unlink.result, EACCES);
    assert!(secret.exists());
    let mkdir = fs.serve(
        1,
        FileRequest::Mkdir {
            dir: Dir::Cwd,
            path: b"../evil".to_vec(),
            mode: 0o755,
        },
    );
    assert_eq!(mkdir.result, EACCES);
    let rename = fs.serve(
        1,
        FileRequest::Rename {
            from_dir: Dir::Cwd,
            from: b"in.txt".to_vec(),
            to_dir: Dir::Cwd,
            to: b"dir-link/stolen".to_vec(),
            flags: 0,
        },
    );
    assert_eq!(rename.result, EACCES);
    assert!(t.job().join("in.txt").exists());
    let access = fs.serve(
        1,
        FileRequest::Access {
            dir: Dir::Cwd,
            path: b"abs-link".to_vec(),
            mode: 0,
            flags: 0,
        },
    );
    assert_eq!(access.result, EACCES);
    // chdir cannot leave either.
    let r = fs.serve(
        1,
        FileRequest::Chdir {
            path: b"..".to_vec(),
        },
    );
    assert_eq!(r.result, EACCES);
    let r = fs.serve(
        1,
        FileRequest::Chdir {
            path: b"dir-link".to_vec(),
        },
    );
    assert_eq!(r.result, EACCES);
}

#[test]
fn links_inside_and_directory_calls_work() {
    let t = Tree::new();
    let mut fs = FileServer::new(&t.job()).unwrap();
    symlink("in.txt", t.job().join("good-link")).unwrap();
    let r = open(&mut fs, b"good-link", 0);
    assert!(r.result >= 0, "{r:?}");
    let r = fs.serve(
        1,
        FileRequest::Readlink {
            dir: Dir::Cwd,
            path: b"good-link".to_vec(),
            len: 100,
        },
    );
    assert_eq!((r.result, r.data.as_slice()), (6, &b"in.txt"[..]));
    // Absolute paths inside the job directory are fine.
    let mut abs = t
        .job()
        .canonicalize()
        .unwrap()
        .as_os_str()
        .as_bytes()
        .to_vec();
    abs.extend_from_slice(b"/in.txt");
    assert!(open(&mut fs, &abs, 0).result >= 0);
    // mkdir, chdir, relative open, getcwd data, rename, unlink, rmdir.
    let ok = |r: FileReply| assert_eq!(r.result, 0, "{r:?}");
    ok(fs.serve(
        1,
        FileRequest::Mkdir {
            dir: Dir::Cwd,
            path: b"d".to_vec(),
            mode: 0o755,
        },
    ));
    let r = fs.serve(
        1,
        FileRequest::Chdir {
            path: b"d".to_vec(),
        },
    );
    assert_eq!(r.result, 0);
    assert!(
        r.data.ends_with(b"/job/d"),
        "{:?}",
        String::from_utf8_lossy(&r.data)
    );
    assert!(open(&mut fs, b"../in.txt", 0).result >= 0);
    assert_eq!(open(&mut fs, b"../../outside/secret", 0).result, EACCES);
    let h = open(&mut fs, b"f", 0o101).result as u64;
    fs.serve(1, FileRequest::Close { handle: h });
    ok(fs.serve(
        1,
        FileRequest::Rename {
            from_dir: Dir::Cwd,
            from: b"f".to_vec(),
            to_dir: Dir::Cwd,
            to: b"g".to_vec(),
            flags: 0,
        },
    ));
    assert!(t.job().join("d/g").exists());
    // getdents64 of the directory: ".", "..", "g".
    let r = open(&mut fs, b".", 0o200000);
    assert_eq!(r.data, vec![1], "{r:?}");
    let dh = r.result as u64;
    let r = fs.serve(
        1,
        FileRequest::Getdents64 {
            handle: dh,
            len: 4096,
        },
    );
    assert!(r.result > 0);
    let mut names = Vec::new();
    let mut at = 0;
    while at < r.data.len() {
        let reclen = u16::from_le_bytes([r.data[at + 16], r.data[at + 17]]) as usize;
        let name = &r.data[at + 19..at + reclen];
        let end = name.iter().position(|&b| b == 0).unwrap();
        names.push(String::from_utf8_lossy(&name[..end]).into_owned());
        at += reclen;
    }
    names.sort();
    assert_eq!(names, [".", "..", "g"]);
    assert_eq!(
        fs.serve(
            1,
            FileRequest::Getdents64 {
                handle: dh,
                len: 4096
            }
        )
        .result,
        0
    );
    // A buffer too small for one entry.
    fs.serve(
        1,
        FileRequest::Lseek {
            handle: dh,
            offset: 0,
            whence: 0,
        },
    );
    assert_eq!(
        fs.serve(1, FileRequest::Getdents64 { handle: dh, len: 8 })
            .result,
        -22
    );
    ok(fs.serve(
        1,
        FileRequest::Unlink {
            dir: Dir::Cwd,
            path: b"g".to_vec(),
            flags: 0,
        },
    ));
    ok(fs.serve(
        1,
        FileRequest::Chdir {
            path: b"..".to_vec(),
        },
    ));
    ok(fs.serve(
        1,
        FileRequest::Unlink {
            dir: Dir::Cwd,
            path: b"d".to_vec(),
            flags: AT_REMOVEDIR,
        },
    ));
    assert!(!t.job().join("d").exists());
    // Missing files.
    assert_eq!(open(&mut fs, b"nope", 0).result, ENOENT);
    let r = fs.serve(
        1,
        FileRequest::Stat {
            dir: Dir::Cwd,
            path: b"nope".to_vec(),
            flags: 0,
        },
    );
    assert_eq!(r.result, ENOENT);
    // stat of the job directory itself, and fstatat(AT_FDCWD, "", AT_EMPTY_PATH).
    let r = fs.serve(
        1,
        FileRequest::Stat {
            dir: Dir::Cwd,
            path: b".".to_vec(),
            flags: 0,
        },
    );
    assert_eq!(r.result, 0);
    let r = fs.serve(
        1,
        FileRequest::Stat {
            dir: Dir::Cwd,
            path: Vec::new(),
            flags: AT_EMPTY_PATH,
        },
    );
    assert_eq!(r.result, 0);
    // lstat and access without following, of the job directory itself
    // (find and du start with lstat(".")).
    let r = fs.serve(
        1,
        FileRequest::Stat {
            dir: Dir::Cwd,
            path: b".".to_vec(),
            flags: AT_SYMLINK_NOFOLLOW,
        },
    );
    assert_eq!(r.result, 0, "{r:?}");
    let r = fs.serve(
        1,
        FileRequest::Access {
            dir: Dir::Cwd,
            path: b".".to_vec(),
            mode: 0,
            flags: AT_SYMLINK_NOFOLLOW,
        },
    );
    assert_eq!(r.result, 0, "{r:?}");
    // access.
    let r = fs.serve(
        1,
        FileRequest::Access {
            dir: Dir::Cwd,
            path: b"in.txt".to_vec(),
            mode: 4,
            flags: 0,
        },
    );
    assert_eq!(r.result, 0);
}

#[test]
fn chmod_changes_files_inside_and_never_outside() {
    use std::os::unix::fs::PermissionsExt;
    let t = Tree::new();
    let mut fs = FileServer::new(&t.job()).unwrap();
    let chmod = |fs: &mut FileServer, path: &[u8], mode: u32| {
        fs.serve(
            1,
            FileRequest::Chmod {
                dir: Dir::Cwd,
                path: path.to_vec(),
                mode,
            },
        )
        .result
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(chmod(&mut fs, b"in.txt", 0o755), 0);
    assert_eq!(mode(&t.job().join("in.txt")), 0o755);
    // Through a link inside the job directory: the target changes.
    symlink("in.txt", t.job().join("good-link")).unwrap();
    assert_eq!(chmod(&mut fs, b"good-link", 0o600), 0);
    assert_eq!(mode(&t.job().join("in.txt")), 0o600);
    // Out of it, by a path or a link: refused, the file keeps its mode.
    let secret = t.base.join("outside/secret");
    let before = mode(&secret);
    symlink(&secret, t.job().join("out-link")).unwrap();
    assert_eq!(chmod(&mut fs, b"../outside/secret", 0o777), EACCES);
    assert_eq!(chmod(&mut fs, b"out-link", 0o777), EACCES);
    assert_eq!(mode(&secret), before);
    assert_eq!(chmod(&mut fs, b"missing", 0o777), ENOENT);
    // fchmod of an open handle.
    let h = open(&mut fs, b"in.txt", 0).result as u64;
    let r = fs.serve(
        2,
        FileRequest::Chmod {
            dir: Dir::Handle(h),
            path: Vec::new(),
            mode: 0o640,
        },
    );
    assert_eq!(r.result, 0);
    assert_eq!(mode(&t.job().join("in.txt")), 0o640);
}

#[test]
fn directories_above_the_job_directory_can_be_stat_ed_not_opened() {
    let t = Tree::new();
    let mut fs = FileServer::new(&t.job()).unwrap();
    let base = std::fs::canonicalize(&t.base).unwrap();
    let stat = |fs: &mut FileServer, p: &[u8]| {
        fs.serve(
            1,
            FileRequest::Stat {
                dir: Dir::Cwd,
                path: p.to_vec(),
                flags: 0x100,
            },
        )
    };
    let above = base.as_os_str().as_bytes().to_vec();
    let r = stat(&mut fs, &above);
    assert_eq!(r.result, 0);
    let st = sion_app_mgr::job::decode_stat(&r.data).unwrap();
    assert_eq!(st.mode & 0o170000, 0o040000, "a directory");
    assert_eq!(stat(&mut fs, b"/").result, 0);
    // A sibling of the job directory, or a file above it: refused.
    let mut outside = above.clone();
    outside.extend_from_slice(b"/outside/secret");
    assert_eq!(stat(&mut fs, &outside).result, EACCES);
    assert_eq!(open(&mut fs, &above, 0o200000).result, EACCES, "not opened");
}

#[test]
fn record_locks_and_flock_conflict_between_open_files() {
    use sion_app_mgr::job::{LockRange, decode_lock};
    let t = Tree::new();
    let mut fs = FileServer::new(&t.job()).unwrap();
    let a = open(&mut fs, b"in.txt", 2).result as u64;
    let b = open(&mut fs, b"in.txt", 2).result as u64;
    let range = |kind| LockRange {
        kind,
        whence: 0,
        start: 100,
        len: 10,
    };
    let lock = |fs: &mut FileServer, handle, set, r| {
        fs.serve(
            1,
            FileRequest::Lock {
                handle,
                set,
                range: r,
            },
        )
    };
    assert_eq!(
        lock(&mut fs, a, true, range(1)).result,
        0,
        "a takes a write lock"
    );
    assert_eq!(
        lock(&mut fs, b, true, range(0)).result,
        -11,
        "b cannot read-lock it"
    );
    let test = lock(&mut fs, b, false, range(1));
    assert_eq!(test.result, 0);
    let found = decode_lock(&test.data).unwrap();
    assert_eq!((found.kind, found.start, found.len), (1, 100, 10));
    // Outside the range, or after the unlock: free.
    assert_eq!(
        lock(
            &mut fs,
            b,
            true,
            LockRange {
                start: 200,
                ..range(1)
            }
        )
        .result,
        0
    );
    assert_eq!(lock(&mut fs, a, true, range(2)).result, 0, "unlock");
    assert_eq!(lock(&mut fs, b, true, range(1)).result, 0);
    // flock: exclusive on one open file blocks the other's.
    let flock =
        |fs: &mut FileServer, handle, op| fs.serve(2, FileRequest::Flock { handle, op }).result;
    assert_eq!(flock(&mut fs, a, 2), 0);
    assert_eq!(flock(&mut fs, b, 2), -11);
    assert_eq!(flock(&mut fs, a, 8), 0);
    assert_eq!(flock(&mut fs, b, 1), 0);
}

#[test]
fn statfs_fchdir_and_handle_paths_stay_inside_and_match_the_host() {
    let t = Tree::new();
    let mut fs = FileServer::new(&t.job()).unwrap();
    // statfs of the job directory is the host's file system; of a path
    // outside it, EACCES.
    let r = fs.serve(
        1,
        FileRequest::Statfs {
            dir: Dir::Cwd,
            path: b"sub".to_vec(),
        },
    );
    assert_eq!(r.result, 0, "{r:?}");
    let st: FsStat = sion_app_mgr::job::decode_fs_stat(&r.data).unwrap();
    let host = nix::sys::statvfs::statvfs(&t.job()).unwrap();
    let kind = nix::sys::statfs::statfs(&t.job()).unwrap();
    assert_eq!(st.fs_type, kind.filesystem_type().0 as u64);
    assert_eq!((st.bsize, st.blocks), (host.block_size(), host.blocks()));
    assert_eq!(st.namelen, host.name_max());
    let outside = fs.serve(
        2,
        FileRequest::Statfs {
            dir: Dir::Cwd,
            path: b"../outside".to_vec(),
        },
    );
    assert_eq!(outside.result, EACCES);
    // fchdir to a directory handle; to a file, ENOTDIR.
    let dir = open(&mut fs, b"sub", libc::O_DIRECTORY).result as u64;
    let r = fs.serve(3, FileRequest::Fchdir { handle: dir });
    assert_eq!(r.result, 0, "{r:?}");
    assert_eq!(r.data, t.job().join("sub").as_os_str().as_bytes());
    let file = open(&mut fs, b"../in.txt", 0).result as u64;
    let r = fs.serve(4, FileRequest::Fchdir { handle: file });
    assert_eq!(r.result, -libc::ENOTDIR as i64);
    // A handle's path follows a rename, as /proc/self/fd does on Linux.
    std::fs::rename(t.job().join("in.txt"), t.job().join("moved.txt")).unwrap();
    let r = fs.serve(5, FileRequest::HandlePath { handle: file });
    assert_eq!(r.data, t.job().join("moved.txt").as_os_str().as_bytes());
    assert_eq!(r.result, r.data.len() as i64);
    // fstatfs of the handle itself.
    let r = fs.serve(
        6,
        FileRequest::Statfs {
            dir: Dir::Handle(file),
            path: Vec::new(),
        },
    );
    assert_eq!(r.result, 0, "{r:?}");
}

/// The job directory's files and their contents, for comparing.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.push((rel + "/", Vec::new()));
                walk(base, &p, out);
            } else if m.file_type().is_symlink() {
                out.push((
                    rel,
                    std::os::unix::ffi::OsStringExt::into_vec(
                        std::fs::read_link(&p).unwrap().into_os_string(),
                    ),
                ));
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn a_roll_back_restores_the_job_directory_after_the_jobs_file_calls() {
    let t = Tree::new();
    std::fs::write(t.job().join("sub/kept"), b"kept").unwrap();
    let before = snapshot(&t.job());
    let mut fs = FileServer::new(&t.job()).unwrap();
    fs.keep_undo_log().unwrap();
    // Truncate and rewrite in.txt, create new.txt, rename sub, remove
    // in.txt's neighbour after a symlink to it, make a directory.
    let r = open(&mut fs, b"in.txt", libc::O_WRONLY | libc::O_TRUNC);
    let h = r.result as u64;
    fs.serve(
        2,
        FileRequest::Write {
            handle: h,
            data: b"changed".to_vec(),
        },
    );
    let r = open(&mut fs, b"new.txt", libc::O_WRONLY | libc::O_CREAT);
    assert!(r.result >= 0, "{r:?}");
    let rename = FileRequest::Rename {
        from_dir: Dir::Cwd,
        from: b"sub".to_vec(),
        to_dir: Dir::Cwd,
        to: b"moved".to_vec(),
        flags: 0,
    };
    assert_eq!(fs.serve(3, rename).result, 0);
    let link = FileRequest::Symlink {
        target: b"in.txt".to_vec(),
        dir: Dir::Cwd,
        path: b"ln".to_vec(),
    };
    assert_eq!(fs.serve(4, link).result, 0);
    let unlink = FileRequest::Unlink {
        dir: Dir::Cwd,
        path: b"moved/kept".to_vec(),
        flags: 0,
    };
    assert_eq!(fs.serve(5, unlink).result, 0);
    let mkdir = FileRequest::Mkdir {
        dir: Dir::Cwd,
        path: b"made".to_vec(),
        mode: 0o755,
    };
    assert_eq!(fs.serve(6, mkdir).result, 0);
    assert_ne!(snapshot(&t.job()), before);
    let (paths, bytes) = fs.undo_size().unwrap();
    assert!(
        paths >= 6 && bytes == 11 + 4,
        "{paths} paths, {bytes} bytes"
    );

    let r = fs.roll_back().unwrap();
    assert_eq!(snapshot(&t.job()), before, "{r:?}");
    assert_eq!(fs.open_files(), 0);
    // Without a log there is nothing to roll back to.
    let mut plain = FileServer::new(&t.job()).unwrap();
    assert!(plain.roll_back().is_err());
}

/// After a checkpoint, a restore returns the directory to the checkpoint
/// (not to the job's start), reopens a file the job closed since at its
/// offset then, and forgets files opened since.
#[test]
fn a_restore_returns_directory_and_open_files_to_the_checkpoint() {
    let t = Tree::new();
    let mut fs = FileServer::new(&t.job()).unwrap();
    fs.keep_undo_log().unwrap();
    let write = |fs: &mut FileServer, h: u64, data: &[u8]| {
        fs.serve(
            9,
            FileRequest::Write {
                handle: h,
                data: data.to_vec(),
            },
        )
        .result
    };
    let out = open(&mut fs, b"out.txt", libc::O_WRONLY | libc::O_CREAT).result as u64;
    assert_eq!(write(&mut fs, out, b"before "), 7);
    let input = open(&mut fs, b"in.txt", libc::O_RDONLY).result as u64;
    let read = FileRequest::Read {
        handle: input,
        len: 6,
    };
    assert_eq!(fs.serve(10, read.clone()).data, b"hello ");
    fs.checkpoint().unwrap();
    let at_checkpoint = snapshot(&t.job());

    // After it: more writes, a read, the input closed, a new file.
    assert_eq!(write(&mut fs, out, b"after"), 5);
    assert_eq!(fs.serve(11, read.clone()).data, b"file\n");
    assert_eq!(fs.serve(12, FileRequest::Close { handle: input }).result, 0);
    let extra = open(&mut fs, b"extra.txt", libc::O_WRONLY | libc::O_CREAT).result as u64;
    assert_ne!(snapshot(&t.job()), at_checkpoint);

    fs.restore_checkpoint().unwrap();
    assert_eq!(snapshot(&t.job()), at_checkpoint);
    assert_eq!(fs.open_files(), 2, "out and in, not extra");
    assert_eq!(
        fs.serve(13, read.clone()).data,
        b"file\n",
        "in.txt at its offset"
    );
    assert_eq!(write(&mut fs, out, b"again"), 5);
    assert_eq!(
        std::fs::read(t.job().join("out.txt")).unwrap(),
        b"before again"
    );
    assert!(fs.serve(14, FileRequest::Close { handle: extra }).result < 0);
    // A second loss goes back to the same checkpoint.
    fs.restore_checkpoint().unwrap();
    assert_eq!(snapshot(&t.job()), at_checkpoint);
}
