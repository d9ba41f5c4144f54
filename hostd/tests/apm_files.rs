//! The App-Program Manager's file system calls end to end on the host: the
//! library's `Process` (the node's job logic) on a fake node whose `hostd` is
//! the real `FileServer` serving a temporary job directory. Checks what the
//! program sees (values, errno, bytes in its memory) and what happens on the
//! host (files created, renamed, removed; nothing outside the job directory).

use std::path::PathBuf;

use sion_app_mgr::Abi;
use sion_app_mgr::abi::UserLayout;
use sion_app_mgr::errno::Errno;
use sion_app_mgr::process::Process;
use sion_app_mgr::process::fake::FakeNode;
use sion_app_mgr::vm::AddressSpace;
use sion_hostd::fileserve::FileServer;
use syscalls::x86::Sysno as I;
use syscalls::x86_64::Sysno as X;

/// A fresh job directory with `input.txt`, and a file beside it that no call
/// may reach.
fn job_dir(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("sion-apm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("job/sub")).unwrap();
    std::fs::write(root.join("job/input.txt"), "first line\nsecond line\n").unwrap();
    std::fs::write(root.join("secret.txt"), "secret\n").unwrap();
    root
}

fn node_for(dir: &std::path::Path) -> (FakeNode, Vec<u8>) {
    let mut files = FileServer::new(dir).unwrap();
    let cwd = files.dir().to_vec();
    let node = FakeNode {
        files: Some(Box::new(move |id, req| files.serve(id, req))),
        ..FakeNode::default()
    };
    (node, cwd)
}

fn process<'n>(node: &'n mut FakeNode, abi: Abi, cwd: Vec<u8>) -> Process<'n> {
    let vm = AddressSpace::new(UserLayout::for_abi(abi), 64 << 20);
    let mut p = Process::new(node, 1, 7, abi, vm);
    p.task.exe = [cwd.as_slice(), b"/prog"].concat();
    p.task.cwd = cwd;
    p.task.uid = nix::unistd::getuid().as_raw();
    p.task.gid = nix::unistd::getgid().as_raw();
    p
}

fn call(p: &mut Process<'_>, nr: impl Into<u64>, args: &[u64]) -> i64 {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    p.syscall(p.task.abi, nr.into(), a).expect("an answer")
}

fn mem(p: &mut Process<'_>) -> u64 {
    let nr = match p.task.abi {
        Abi::X86_64 => X::mmap as u64,
        Abi::I386 => I::mmap2 as u64,
    };
    let a = call(p, nr, &[0, 1 << 16, 3, 0x22, u64::MAX, 0]);
    assert!(a > 0, "mmap: {a}");
    a as u64
}

fn cstr(p: &mut Process<'_>, at: u64, s: &str) -> u64 {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    p.load_mem(at, &b).unwrap();
    at
}

#[test]
fn files_are_read_written_listed_and_confined_to_the_job_directory() {
    let root = job_dir("rw");
    let job = root.join("job");
    let (mut node, cwd) = node_for(&job);
    let mut p = process(&mut node, Abi::X86_64, cwd);
    let m = mem(&mut p);
    let (path, buf) = (m, m + 4096);

    // Read a file through open/read/close.
    cstr(&mut p, path, "input.txt");
    let fd = call(&mut p, X::open as u64, &[path, 0, 0]);
    assert_eq!(fd, 3);
    assert_eq!(call(&mut p, X::read as u64, &[3, buf, 100]), 23);
    assert_eq!(p.read_mem(buf, 23).unwrap(), b"first line\nsecond line\n");
    assert_eq!(call(&mut p, X::pread64 as u64, &[3, buf, 6, 11]), 6);
    assert_eq!(p.read_mem(buf, 6).unwrap(), b"second");
    assert_eq!(call(&mut p, X::lseek as u64, &[3, 0, 2]), 23);
    assert_eq!(call(&mut p, X::close as u64, &[3]), 0);
    assert_eq!(
        call(&mut p, X::read as u64, &[3, buf, 1]),
        Errno::EBADF.to_return()
    );

    // Create, write, rename, stat, remove.
    cstr(&mut p, path, "out.txt");
    let fd = call(&mut p, X::open as u64, &[path, 0o1101, 0o644]) as u64; // O_WRONLY|O_CREAT|O_TRUNC
    p.load_mem(buf, b"written by the job\n").unwrap();
    assert_eq!(call(&mut p, X::write as u64, &[fd, buf, 19]), 19);
    assert_eq!(call(&mut p, X::close as u64, &[fd]), 0);
    assert_eq!(
        std::fs::read_to_string(job.join("out.txt")).unwrap(),
        "written by the job\n"
    );
    cstr(&mut p, path + 512, "sub/moved.txt");
    assert_eq!(call(&mut p, X::rename as u64, &[path, path + 512]), 0);
    assert!(job.join("sub/moved.txt").is_file());
    assert_eq!(call(&mut p, X::stat as u64, &[path + 512, buf]), 0);
    let size = u64::from_le_bytes(p.read_mem(buf + 48, 8).unwrap().try_into().unwrap());
    assert_eq!(size, 19, "st_size of struct stat");
    assert_eq!(call(&mut p, X::unlink as u64, &[path + 512]), 0);
    assert!(!job.join("sub/moved.txt").exists());

    // mkdir, chdir, getcwd, rmdir.
    cstr(&mut p, path, "newdir");
    assert_eq!(call(&mut p, X::mkdir as u64, &[path, 0o755]), 0);
    assert_eq!(
        call(&mut p, X::mkdir as u64, &[path, 0o755]),
        Errno::EEXIST.to_return()
    );
    assert_eq!(call(&mut p, X::chdir as u64, &[path]), 0);
    let n = call(&mut p, X::getcwd as u64, &[buf, 4096]) as u64;
    let cwd = p.read_mem(buf, n - 1).unwrap();
    assert!(
        cwd.ends_with(b"/job/newdir"),
        "{}",
        String::from_utf8_lossy(&cwd)
    );
    cstr(&mut p, path, "..");
    assert_eq!(call(&mut p, X::chdir as u64, &[path]), 0);
    cstr(&mut p, path, "newdir");
    assert_eq!(call(&mut p, X::rmdir as u64, &[path]), 0);

    // Errors as Linux gives them.
    cstr(&mut p, path, "missing.txt");
    assert_eq!(
        call(&mut p, X::open as u64, &[path, 0, 0]),
        Errno::ENOENT.to_return()
    );
    cstr(&mut p, path, "sub");
    assert_eq!(
        call(&mut p, X::unlink as u64, &[path]),
        Errno::EISDIR.to_return()
    );

    // Escapes: `..` out of the job directory, absolute paths outside it.
    for escape in ["../secret.txt", "sub/../../secret.txt", "/etc/passwd"] {
        cstr(&mut p, path, escape);
        assert_eq!(
            call(&mut p, X::open as u64, &[path, 0, 0]),
            Errno::EACCES.to_return(),
            "{escape}"
        );
    }
    drop(p);
    assert_eq!(
        std::fs::read_to_string(root.join("secret.txt")).unwrap(),
        "secret\n"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn i386_programs_see_their_own_stat_layouts_and_directory_entries() {
    let root = job_dir("i386");
    let job = root.join("job");
    let (mut node, cwd) = node_for(&job);
    let mut p = process(&mut node, Abi::I386, cwd);
    let m = mem(&mut p);
    let (path, buf) = (m, m + 4096);
    cstr(&mut p, path, "input.txt");
    // stat64: st_size at offset 44 (arch/x86/include/uapi/asm/stat.h).
    assert_eq!(call(&mut p, I::stat64 as u64, &[path, buf]), 0);
    let size = u64::from_le_bytes(p.read_mem(buf + 44, 8).unwrap().try_into().unwrap());
    assert_eq!(size, 23);
    // The old struct stat: st_size at offset 20, 32 bits.
    assert_eq!(call(&mut p, I::stat as u64, &[path, buf]), 0);
    let size = u32::from_le_bytes(p.read_mem(buf + 20, 4).unwrap().try_into().unwrap());
    assert_eq!(size, 23);
    // getdents64 lists what the host directory holds.
    cstr(&mut p, path, ".");
    let fd = call(&mut p, I::open as u64, &[path, 0o200000, 0]) as u64; // O_DIRECTORY
    let n = call(&mut p, I::getdents64 as u64, &[fd, buf, 4096]);
    assert!(n > 0, "{n}");
    let listing = p.read_mem(buf, n as u64).unwrap();
    let text = String::from_utf8_lossy(&listing);
    assert!(text.contains("input.txt") && text.contains("sub"), "{text}");
    assert!(!text.contains("secret"), "{text}");
    // Not a directory.
    assert_eq!(
        call(&mut p, I::getdents64 as u64, &[1, buf, 4096]),
        Errno::ESPIPE.to_return()
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn links_times_truncation_and_preallocation_reach_the_job_directory() {
    use std::os::unix::fs::MetadataExt;
    let root = job_dir("links");
    let job = root.join("job");
    let (mut node, cwd) = node_for(&job);
    let mut p = process(&mut node, Abi::X86_64, cwd);
    let m = mem(&mut p);
    let input = cstr(&mut p, m, "input.txt");
    let hard = cstr(&mut p, m + 64, "hard.txt");
    let soft = cstr(&mut p, m + 128, "soft.txt");
    assert_eq!(call(&mut p, X::link as u64, &[input, hard]), 0);
    assert_eq!(
        std::fs::metadata(job.join("hard.txt")).unwrap().ino(),
        std::fs::metadata(job.join("input.txt")).unwrap().ino()
    );
    assert_eq!(call(&mut p, X::symlink as u64, &[input, soft]), 0);
    assert_eq!(
        std::fs::read_link(job.join("soft.txt")).unwrap(),
        PathBuf::from("input.txt")
    );
    // A link may say anything; following it stays confined.
    let out = cstr(&mut p, m + 192, "out.txt");
    let secret = cstr(&mut p, m + 256, "../secret.txt");
    assert_eq!(call(&mut p, X::symlink as u64, &[secret, out]), 0);
    assert_eq!(call(&mut p, X::truncate as u64, &[out, 0]), -13, "EACCES");
    assert_eq!(std::fs::read(root.join("secret.txt")).unwrap(), b"secret\n");
    // A hard link out of the job directory is refused.
    let away = cstr(&mut p, m + 320, "../away.txt");
    assert_eq!(call(&mut p, X::link as u64, &[input, away]), -13);
    // utimensat: both times set, to the second.
    let times: Vec<u8> = [1_000_000_000i64, 0, 1_100_000_000, 5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    p.load_mem(m + 512, &times).unwrap();
    assert_eq!(
        call(
            &mut p,
            X::utimensat as u64,
            &[(-100i64) as u64, input, m + 512, 0]
        ),
        0
    );
    let meta = std::fs::metadata(job.join("input.txt")).unwrap();
    assert_eq!(
        (meta.atime(), meta.mtime(), meta.mtime_nsec()),
        (1_000_000_000, 1_100_000_000, 5)
    );
    // truncate, then fallocate past the end.
    assert_eq!(call(&mut p, X::truncate as u64, &[input, 5]), 0);
    assert_eq!(std::fs::read(job.join("input.txt")).unwrap(), b"first");
    let fd = call(&mut p, X::open as u64, &[input, 2]);
    assert!(fd >= 3, "{fd}");
    assert_eq!(
        call(&mut p, X::fallocate as u64, &[fd as u64, 0, 0, 8192]),
        0
    );
    assert_eq!(
        std::fs::metadata(job.join("input.txt")).unwrap().len(),
        8192
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn small_reads_are_read_ahead_and_stay_coherent() {
    let root = job_dir("ahead");
    let job = root.join("job");
    let text: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(job.join("big.txt"), &text).unwrap();
    let (mut node, cwd) = node_for(&job);
    let mut p = process(&mut node, Abi::X86_64, cwd);
    let m = mem(&mut p);
    let path = cstr(&mut p, m, "big.txt");
    let buf = m + 4096;
    let fd = call(&mut p, X::open as u64, &[path, 0]) as u64;
    // 4 KiB reads: the bytes are the file's, in order.
    for i in 0..20u64 {
        assert_eq!(call(&mut p, X::read as u64, &[fd, buf, 4096]), 4096);
        let got = p.read_mem(buf, 4096).unwrap();
        let at = (i * 4096) as usize;
        assert_eq!(got, text[at..at + 4096], "read {i}");
    }
    // The offset the program sees is its own, not hostd's read-ahead one.
    assert_eq!(call(&mut p, X::lseek as u64, &[fd, 0, 1]), 20 * 4096);
    assert_eq!(call(&mut p, X::read as u64, &[fd, buf, 10]), 10);
    assert_eq!(p.read_mem(buf, 10).unwrap(), text[81920..81930]);
    // A write through another descriptor is seen by the next read.
    let wfd = call(&mut p, X::open as u64, &[path, 1]) as u64;
    p.load_mem(buf, b"ZZZZ").unwrap();
    assert_eq!(call(&mut p, X::pwrite64 as u64, &[wfd, buf, 4, 81930]), 4);
    assert_eq!(call(&mut p, X::read as u64, &[fd, buf, 4]), 4);
    assert_eq!(p.read_mem(buf, 4).unwrap(), b"ZZZZ");
    // To the end of the file.
    let mut total = 81934u64;
    loop {
        let n = call(&mut p, X::read as u64, &[fd, buf, 4096]);
        assert!(n >= 0);
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert_eq!(total, text.len() as u64);
    let _ = std::fs::remove_dir_all(&root);
}
