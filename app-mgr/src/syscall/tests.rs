//! Host tests of the system-call table and its handlers, one group per
//! family, through [`Process::syscall`] on a [`FakeNode`]: decoding (i386
//! widths and register pairs), serving, bad pointers, bad descriptors and the
//! errno values Linux gives.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use syscalls::x86::Sysno as I;
use syscalls::x86_64::Sysno as X;

use super::table::{ROWS, lookup};
use crate::abi::{Abi, UserLayout};
use crate::errno::Errno;
use crate::job::{Dir, FileReply, FileRequest, HostMsg, NodeMsg};
use crate::process::fake::FakeNode;
use crate::process::{Event, Process, Tls};
use crate::vm::AddressSpace;

const X64: Abi = Abi::X86_64;
const I386: Abi = Abi::I386;
const PID: u64 = 7;
const UNMAPPED: u64 = 0x10;

/// Runs `f` on a process of `abi` served by `node`.
fn with<R>(abi: Abi, node: &mut FakeNode, f: impl FnOnce(&mut Process<'_>) -> R) -> R {
    let vm = AddressSpace::new(UserLayout::for_abi(abi), 64 << 20);
    node.first_pid = PID;
    let mut p = Process::new(node, 1, PID, abi, vm);
    p.task.cwd = b"/home/u/job".to_vec();
    p.task.exe = b"/home/u/job/prog".to_vec();
    p.task.uid = 1000;
    p.task.gid = 100;
    p.realtime_ns = 1_700_000_000_000_000_000;
    f(&mut p)
}

/// One system call; its answer (`None`: no answer, the job ends).
fn call(p: &mut Process<'_>, nr: u64, args: &[u64]) -> Option<i64> {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    p.syscall(p.task.abi, nr, a)
}

fn err(e: Errno) -> Option<i64> {
    Some(e.to_return())
}

/// `len` bytes of fresh anonymous read-write memory.
fn mem(p: &mut Process<'_>, len: u64) -> u64 {
    let (mmap, flags) = match p.task.abi {
        Abi::X86_64 => (X::mmap as u64, 0x22),
        Abi::I386 => (I::mmap2 as u64, 0x22),
    };
    let addr = call(p, mmap, &[0, len, 3, flags, u64::MAX, 0]).unwrap();
    assert!(addr > 0, "mmap failed: {addr}");
    addr as u64
}

fn put(p: &mut Process<'_>, addr: u64, data: &[u8]) {
    p.load_mem(addr, data).unwrap();
}

fn get(p: &mut Process<'_>, addr: u64, len: u64) -> Vec<u8> {
    p.read_mem(addr, len).unwrap()
}

fn u64_at(p: &mut Process<'_>, addr: u64) -> u64 {
    u64::from_le_bytes(get(p, addr, 8).try_into().unwrap())
}

// ---- the table ----

#[test]
fn every_row_is_found_by_its_numbers_and_unknown_numbers_are_enosys() {
    for row in ROWS {
        if let Some(s) = row.x86_64 {
            assert!(
                core::ptr::eq(lookup(X64, s as u64).unwrap(), row),
                "{}",
                row.name()
            );
        }
        if let Some(s) = row.i386 {
            assert!(
                core::ptr::eq(lookup(I386, s as u64).unwrap(), row),
                "{}",
                row.name()
            );
        }
        assert!(row.x86_64.is_some() || row.i386.is_some());
    }
    assert!(lookup(X64, X::io_uring_setup as u64).is_none());
    assert!(lookup(X64, 1 << 40).is_none());
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        assert_eq!(call(p, X::io_uring_setup as u64, &[]), err(Errno::ENOSYS));
        assert_eq!(call(p, X::io_uring_setup as u64, &[]), err(Errno::ENOSYS));
        assert_eq!(call(p, 100_000, &[]), err(Errno::ENOSYS));
    });
    // Each unknown number is logged once.
    assert_eq!(node.log.len(), 2, "{:?}", node.log);
    assert!(node.log[0].contains("io_uring_setup"), "{:?}", node.log);
}

// ---- descriptors ----

#[test]
fn write_to_stdout_reaches_hostd_and_bad_pointers_and_fds_are_errors() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let buf = mem(p, 4096);
        put(p, buf, b"hello\n");
        assert_eq!(call(p, X::write as u64, &[1, buf, 6]), Some(6));
        assert_eq!(
            call(p, X::write as u64, &[1, UNMAPPED, 6]),
            err(Errno::EFAULT)
        );
        assert_eq!(call(p, X::write as u64, &[99, buf, 6]), err(Errno::EBADF));
        assert_eq!(call(p, X::write as u64, &[0, buf, 6]), err(Errno::EBADF));
        assert_eq!(call(p, X::close as u64, &[99]), err(Errno::EBADF));
        // A read into memory that is not writable.
        assert_eq!(
            call(p, X::read as u64, &[0, UNMAPPED, 4]),
            err(Errno::EFAULT)
        );
    });
    assert_eq!(node.stdout(), b"hello\n");
}

#[test]
fn stdin_is_asked_for_and_read() {
    let mut node = FakeNode::default();
    node.inbox.push_back(HostMsg::Stdin(b"abc".to_vec()));
    with(X64, &mut node, |p| {
        let buf = mem(p, 4096);
        assert_eq!(call(p, X::read as u64, &[0, buf, 100]), Some(3));
        assert_eq!(get(p, buf, 3), b"abc");
    });
    assert!(matches!(node.sent[0], NodeMsg::StdinWanted { .. }));
}

#[test]
fn pipes_carry_bytes_and_end_of_file_and_epipe() {
    let mut node = FakeNode::default();
    with(I386, &mut node, |p| {
        let fds = mem(p, 4096);
        let buf = fds + 64;
        assert_eq!(call(p, I::pipe2 as u64, &[fds, 0]), Some(0));
        let raw = get(p, fds, 8);
        let (r, w) = (
            u64::from(u32::from_le_bytes(raw[..4].try_into().unwrap())),
            u64::from(u32::from_le_bytes(raw[4..].try_into().unwrap())),
        );
        // Nothing written yet, a writer exists: try again.
        assert_eq!(call(p, I::read as u64, &[r, buf, 10]), err(Errno::EAGAIN));
        put(p, buf, b"piped");
        assert_eq!(call(p, I::write as u64, &[w, buf, 5]), Some(5));
        assert_eq!(call(p, I::read as u64, &[r, buf + 100, 10]), Some(5));
        assert_eq!(get(p, buf + 100, 5), b"piped");
        // Wrong ends.
        assert_eq!(call(p, I::write as u64, &[r, buf, 1]), err(Errno::EBADF));
        assert_eq!(call(p, I::read as u64, &[w, buf, 1]), err(Errno::EBADF));
        // Writer closed: end of file; reader closed: EPIPE.
        assert_eq!(call(p, I::dup as u64, &[r]), Some(5));
        assert_eq!(call(p, I::close as u64, &[w]), Some(0));
        assert_eq!(call(p, I::read as u64, &[r, buf, 10]), Some(0));
        assert_eq!(call(p, I::pipe as u64, &[fds]), Some(0));
        let w2 = u64::from(u32::from_le_bytes(get(p, fds + 4, 4).try_into().unwrap()));
        let r2 = u64::from(u32::from_le_bytes(get(p, fds, 4).try_into().unwrap()));
        assert_eq!(call(p, I::close as u64, &[r2]), Some(0));
        assert_eq!(call(p, I::write as u64, &[w2, buf, 1]), err(Errno::EPIPE));
        // Bad flags.
        assert_eq!(call(p, I::pipe2 as u64, &[fds, 1]), err(Errno::EINVAL));
    });
}

/// A `hostd` that opens every path as handle 7 and answers reads, seeks and
/// positioned reads, recording what it was asked.
fn stub_files(node: &mut FakeNode) {
    node.files = Some(Box::new(|id, req| {
        let (result, data) = match req {
            FileRequest::Open { .. } => (7, vec![0]),
            FileRequest::Lseek { offset, .. } => (offset, vec![]),
            FileRequest::Pread { len, .. } => (i64::from(len.min(4)), b"data".to_vec()),
            FileRequest::Close { .. } => (0, vec![]),
            _ => (Errno::ENOSYS.to_return(), vec![]),
        };
        FileReply { id, result, data }
    }));
}

#[test]
fn i386_offsets_come_in_register_pairs() {
    let mut node = FakeNode::default();
    stub_files(&mut node);
    with(I386, &mut node, |p| {
        let m = mem(p, 4096);
        put(p, m, b"f.txt\0");
        let fd = call(p, I::open as u64, &[m, 0, 0]).unwrap() as u64;
        assert_eq!(fd, 3);
        // pread64(fd, buf, count, pos_lo, pos_hi)
        assert_eq!(
            call(p, I::pread64 as u64, &[fd, m + 64, 4, 0x10, 0x2]),
            Some(4)
        );
        assert_eq!(get(p, m + 64, 4), b"data");
        // _llseek(fd, offset_high, offset_low, result, whence)
        assert_eq!(
            call(p, I::_llseek as u64, &[fd, 0x3, 0x20, m + 128, 0]),
            Some(0)
        );
        assert_eq!(u64_at(p, m + 128), 0x3_0000_0020);
        // A negative positioned offset.
        assert_eq!(
            call(p, I::pread64 as u64, &[fd, m + 64, 4, 0, 0x8000_0000]),
            err(Errno::EINVAL)
        );
        // Seeking stdio: ESPIPE.
        assert_eq!(call(p, I::lseek as u64, &[1, 0, 0]), err(Errno::ESPIPE));
        assert_eq!(call(p, I::close as u64, &[fd]), Some(0));
    });
    let reqs = node.file_requests();
    assert!(matches!(reqs[0], FileRequest::Open { dir: Dir::Cwd, path, .. } if path == b"f.txt"));
    assert!(matches!(
        reqs[1],
        FileRequest::Pread {
            offset: 0x2_0000_0010,
            len: 4,
            ..
        }
    ));
    assert!(matches!(
        reqs[2],
        FileRequest::Lseek {
            offset: 0x3_0000_0020,
            whence: 0,
            ..
        }
    ));
    assert!(matches!(
        reqs.last(),
        Some(FileRequest::Close { handle: 7 })
    ));
}

// ---- paths ----

#[test]
fn paths_are_read_checked_and_answered_here_where_linux_would() {
    let mut node = FakeNode::default();
    stub_files(&mut node);
    with(X64, &mut node, |p| {
        let m = mem(p, 4096);
        // getcwd: the length with the NUL; a short buffer is ERANGE.
        assert_eq!(call(p, X::getcwd as u64, &[m, 100]), Some(12));
        assert_eq!(get(p, m, 12), b"/home/u/job\0");
        assert_eq!(call(p, X::getcwd as u64, &[m, 5]), err(Errno::ERANGE));
        // /proc/self/exe is the program, answered on the node.
        put(p, m, b"/proc/self/exe\0");
        assert_eq!(call(p, X::readlink as u64, &[m, m + 64, 100]), Some(16));
        assert_eq!(get(p, m + 64, 16), b"/home/u/job/prog");
        // A path at a bad address: EFAULT, nothing forwarded.
        assert_eq!(
            call(p, X::open as u64, &[UNMAPPED, 0, 0]),
            err(Errno::EFAULT)
        );
        // A path in the last page of the address space (found by the
        // syscall fuzz target: the page's end, 2^64, overflowed): EFAULT.
        for at in [u64::MAX - 6, u64::MAX, 0xffff_ffff_ffff_f000] {
            assert_eq!(call(p, X::open as u64, &[at, 0, 0]), err(Errno::EFAULT));
            assert_eq!(call(p, X::execve as u64, &[at, 0, 0]), err(Errno::EFAULT));
        }
        // A path without its NUL within PATH_MAX.
        let long = mem(p, 8192);
        put(p, long, &[b'a'; 8192]);
        assert_eq!(
            call(p, X::open as u64, &[long, 0, 0]),
            err(Errno::ENAMETOOLONG)
        );
        // openat with a descriptor that is no directory.
        put(p, m, b"x\0");
        assert_eq!(
            call(p, X::openat as u64, &[1, m, 0, 0]),
            err(Errno::ENOTDIR)
        );
        // /dev/null is served on the node.
        put(p, m, b"/dev/null\0");
        let fd = call(p, X::open as u64, &[m, 2, 0]).unwrap() as u64;
        assert_eq!(call(p, X::write as u64, &[fd, m, 5]), Some(5));
        assert_eq!(call(p, X::read as u64, &[fd, m + 64, 5]), Some(0));
    });
    assert!(
        node.file_requests().is_empty(),
        "{:?}",
        node.file_requests()
    );
}

// ---- memory ----

#[test]
fn memory_maps_unmaps_and_protects() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let start = call(p, X::brk as u64, &[0]).unwrap() as u64;
        assert_eq!(
            call(p, X::brk as u64, &[start + 8192]),
            Some((start + 8192) as i64)
        );
        put(p, start, b"heap");
        let m = mem(p, 8192);
        assert_eq!(get(p, m, 8), vec![0; 8]);
        assert_eq!(call(p, X::munmap as u64, &[m, 8192]), Some(0));
        // After munmap the memory is gone: a write from it faults.
        assert_eq!(call(p, X::write as u64, &[1, m, 4]), err(Errno::EFAULT));
        assert_eq!(
            call(p, X::mprotect as u64, &[start, 4096, 0x100]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            call(p, X::munmap as u64, &[m + 1, 4096]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            call(p, X::madvise as u64, &[start + 1, 4096, 4]),
            err(Errno::EINVAL)
        );
        // MADV_DONTNEED zeroes the pages.
        assert_eq!(call(p, X::madvise as u64, &[start, 4096, 4]), Some(0));
        assert_eq!(get(p, start, 4), vec![0; 4]);
        // More than the job's memory limit.
        assert_eq!(
            call(p, X::mmap as u64, &[0, 1 << 30, 3, 0x22, u64::MAX, 0]),
            err(Errno::ENOMEM)
        );
    });
}

#[test]
fn i386_old_mmap_reads_its_arguments_from_memory() {
    let mut node = FakeNode::default();
    with(I386, &mut node, |p| {
        let args = mem(p, 4096);
        let mut raw = Vec::new();
        for w in [0u32, 4096, 3, 0x22, u32::MAX, 0] {
            raw.extend_from_slice(&w.to_le_bytes());
        }
        put(p, args, &raw);
        let m = call(p, I::mmap as u64, &[args]).unwrap();
        assert!(m > 0 && m < 1 << 32, "{m:#x}");
        assert_eq!(call(p, I::mmap as u64, &[UNMAPPED]), err(Errno::EFAULT));
    });
}

// ---- process ----

#[test]
fn process_identity_uname_and_limits() {
    let mut node = FakeNode::default();
    with(I386, &mut node, |p| {
        p.task.uid = 70_000;
        assert_eq!(call(p, I::getpid as u64, &[]), Some(PID as i64));
        assert_eq!(call(p, I::getppid as u64, &[]), Some(2));
        assert_eq!(call(p, I::getuid32 as u64, &[]), Some(70_000));
        assert_eq!(call(p, I::getuid as u64, &[]), Some(65_534));
        assert_eq!(call(p, I::getgid as u64, &[]), Some(100));
        assert_eq!(call(p, I::umask as u64, &[0o077]), Some(0o022));
        assert_eq!(call(p, I::umask as u64, &[0o022]), Some(0o077));
        let m = mem(p, 4096);
        assert_eq!(call(p, I::uname as u64, &[m]), Some(0));
        let u = get(p, m, 6 * 65);
        assert_eq!(&u[..6], b"Linux\0");
        assert_eq!(&u[65..80], b"fake-node-0001\0");
        assert_eq!(&u[4 * 65..4 * 65 + 5], b"i686\0");
        assert_eq!(call(p, I::uname as u64, &[UNMAPPED]), err(Errno::EFAULT));
        // ugetrlimit(RLIMIT_NOFILE) with 32-bit values; bad resource EINVAL.
        assert_eq!(call(p, I::ugetrlimit as u64, &[7, m]), Some(0));
        assert_eq!(
            get(p, m, 8),
            [1024u32.to_le_bytes(), 1024u32.to_le_bytes()].concat()
        );
        assert_eq!(call(p, I::ugetrlimit as u64, &[99, m]), err(Errno::EINVAL));
        assert_eq!(
            call(p, I::prlimit64 as u64, &[1234, 7, 0, m]),
            err(Errno::ESRCH)
        );
        assert_eq!(call(p, I::set_robust_list as u64, &[m, 12]), Some(0));
        assert_eq!(
            call(p, I::set_robust_list as u64, &[m, 24]),
            err(Errno::EINVAL)
        );
        // arch_prctl is for x86_64 code; set_thread_area gives the GDT entry.
        assert_eq!(
            call(p, I::arch_prctl as u64, &[0x1002, m]),
            err(Errno::EINVAL)
        );
        put(p, m, &[0xff; 16]);
        assert_eq!(call(p, I::set_thread_area as u64, &[m]), Some(0));
        assert_eq!(get(p, m, 4), 12u32.to_le_bytes());
    });
    assert_eq!(node.tls, [(Tls::I386Segment, 0xffff_ffff)]);
}

#[test]
fn getrusage_reports_the_time_since_the_start() {
    let mut node = FakeNode::default();
    with(I386, &mut node, |p| {
        let m = mem(p, 4096);
        // The fake clock moves when a sleep asks: 2.5 ms of "running".
        let later = p.node.clock_ns() + 2_500_000;
        p.sleep_until(later).unwrap();
        assert_eq!(call(p, I::getrusage as u64, &[0, m]), Some(0));
        let words: Vec<u32> = get(p, m, 72)
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(&words[..4], [0, 2500, 0, 0], "utime 2.5 ms, no stime");
        assert!(words[4] >= 4, "maxrss counts the mapped page: {}", words[4]);
        assert_eq!(
            call(p, I::getrusage as u64, &[(-1i32) as u32 as u64, m]),
            Some(0)
        );
        assert_eq!(get(p, m, 8), vec![0; 8]);
        assert_eq!(call(p, I::getrusage as u64, &[5, m]), err(Errno::EINVAL));
        assert_eq!(
            call(p, I::getrusage as u64, &[0, UNMAPPED]),
            err(Errno::EFAULT)
        );
    });
}

#[test]
fn arch_prctl_sets_and_reads_the_fs_base() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let m = mem(p, 4096);
        assert_eq!(
            call(p, X::arch_prctl as u64, &[0x1002, 0x7000_1000]),
            Some(0)
        );
        assert_eq!(call(p, X::arch_prctl as u64, &[0x1003, m]), Some(0));
        assert_eq!(u64_at(p, m), 0x7000_1000);
        assert_eq!(
            call(p, X::arch_prctl as u64, &[0x1001, 0]),
            err(Errno::EPERM)
        );
        assert_eq!(
            call(p, X::arch_prctl as u64, &[0x1002, 1 << 50]),
            err(Errno::EPERM)
        );
        assert_eq!(
            call(p, X::arch_prctl as u64, &[0x9999, m]),
            err(Errno::EINVAL)
        );
    });
    assert_eq!(node.tls, [(Tls::FsBase, 0x7000_1000)]);
}

#[test]
fn exit_and_raise_end_the_job_without_an_answer() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        assert_eq!(call(p, X::exit_group as u64, &[3]), None);
    });
    assert_eq!(node.killed, Some(3 << 8));

    // SIGUSR1 with no handler ends the job; ignored, it does nothing.
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let act = mem(p, 4096);
        put(p, act, &1u64.to_le_bytes()); // SIG_IGN
        assert_eq!(call(p, X::rt_sigaction as u64, &[10, act, 0, 8]), Some(0));
        assert_eq!(call(p, X::kill as u64, &[PID, 10]), Some(0));
        assert_eq!(call(p, X::tgkill as u64, &[PID, PID, 12]), None);
    });
    assert_eq!(node.killed, Some(12));
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        assert_eq!(call(p, X::kill as u64, &[999, 9]), err(Errno::ESRCH));
        assert_eq!(call(p, X::kill as u64, &[PID, 99]), err(Errno::EINVAL));
        assert_eq!(call(p, X::kill as u64, &[PID, 0]), Some(0));
    });
    assert_eq!(node.killed, None);
}

#[test]
fn a_kill_from_hostd_while_waiting_ends_the_wait() {
    let mut node = FakeNode::default();
    node.inbox.push_back(HostMsg::Kill);
    with(X64, &mut node, |p| {
        let buf = mem(p, 4096);
        assert_eq!(call(p, X::read as u64, &[0, buf, 10]), None);
    });
    assert_eq!(node.killed, Some(2));
}

// ---- time ----

#[test]
fn a_submission_time_at_the_end_of_time_saturates_the_wall_clock() {
    // `Start::realtime_ns` is whatever hostd sent; found by the syscall fuzz
    // target: the wall clock (submission time + time since the start)
    // overflowed once time had passed.
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        p.realtime_ns = u64::MAX - 1;
        let m = mem(p, 4096);
        put(p, m, &[1u64.to_le_bytes(), 0u64.to_le_bytes()].concat());
        assert_eq!(call(p, X::nanosleep as u64, &[m, 0]), Some(0));
        assert_eq!(p.realtime_ns(), u64::MAX);
        assert_eq!(call(p, X::clock_gettime as u64, &[0, m + 64]), Some(0));
        assert_eq!(u64_at(p, m + 64), u64::MAX / 1_000_000_000);
        assert_eq!(call(p, X::fstat as u64, &[1, m + 128]), Some(0));
    });
}

#[test]
fn clocks_in_both_layouts_and_sleeps_that_wait_on_the_node_clock() {
    let mut node = FakeNode::default();
    with(I386, &mut node, |p| {
        let m = mem(p, 4096);
        // CLOCK_REALTIME in a 32-bit timespec, then a 64-bit one.
        assert_eq!(call(p, I::clock_gettime as u64, &[0, m]), Some(0));
        assert_eq!(get(p, m, 4), 1_700_000_000u32.to_le_bytes());
        assert_eq!(call(p, I::clock_gettime64 as u64, &[0, m]), Some(0));
        assert_eq!(u64_at(p, m), 1_700_000_000);
        assert_eq!(
            call(p, I::clock_gettime as u64, &[42, m]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            call(p, I::clock_gettime as u64, &[1, UNMAPPED]),
            err(Errno::EFAULT)
        );
        // nanosleep of 1.5 s moves the node clock by that much.
        put(
            p,
            m,
            &[1u32.to_le_bytes(), 500_000_000u32.to_le_bytes()].concat(),
        );
        let before = p.node.clock_ns();
        assert_eq!(call(p, I::nanosleep as u64, &[m, 0]), Some(0));
        assert_eq!(p.node.clock_ns() - before, 1_500_000_000);
        put(
            p,
            m,
            &[0u32.to_le_bytes(), 1_000_000_000u32.to_le_bytes()].concat(),
        );
        assert_eq!(call(p, I::nanosleep as u64, &[m, 0]), err(Errno::EINVAL));
        assert_eq!(call(p, I::time as u64, &[0]), Some(1_700_000_001));
    });
}

// ---- signals ----

#[test]
fn signal_bookkeeping_records_and_checks() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let m = mem(p, 4096);
        put(p, m, &[7u8; 32]);
        assert_eq!(call(p, X::rt_sigaction as u64, &[2, m, 0, 8]), Some(0));
        assert_eq!(call(p, X::rt_sigaction as u64, &[2, 0, m + 64, 8]), Some(0));
        assert_eq!(get(p, m + 64, 32), vec![7u8; 32]);
        assert_eq!(
            call(p, X::rt_sigaction as u64, &[2, m, 0, 4]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            call(p, X::rt_sigaction as u64, &[9, m, 0, 8]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            call(p, X::rt_sigaction as u64, &[65, 0, 0, 8]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            call(p, X::rt_sigaction as u64, &[2, UNMAPPED, 0, 8]),
            err(Errno::EFAULT)
        );
        // SIGKILL and SIGSTOP cannot be blocked.
        put(p, m, &u64::MAX.to_le_bytes());
        assert_eq!(
            call(p, X::rt_sigprocmask as u64, &[2, m, m + 8, 8]),
            Some(0)
        );
        assert_eq!(p.task.sigmask, !((1 << 8) | (1 << 18)));
        assert_eq!(
            call(p, X::rt_sigprocmask as u64, &[7, m, 0, 8]),
            err(Errno::EINVAL)
        );
        // The first sigaltstack reports SS_DISABLE.
        assert_eq!(call(p, X::sigaltstack as u64, &[0, m]), Some(0));
        assert_eq!(get(p, m + 8, 4), 2u32.to_le_bytes());
    });
}

#[test]
fn hostd_gone_halts_a_forwarded_call() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let m = mem(p, 4096);
        put(p, m, b"f\0");
        assert_eq!(call(p, X::open as u64, &[m, 0, 0]), None);
        assert!(p.host_gone);
    });
    assert_eq!(node.killed, Some(9));
}

// ---- signal delivery ----

use crate::sigframe::{RtSigFrame32, RtSigFrame64, SigFrame32};
use sion_abi::app::AppRegs;
use zerocopy::FromBytes;

const SA_SIGINFO: u64 = 4;
const SA_RESTORER: u64 = 0x0400_0000;
const HANDLER: u64 = 0x40_1000;
const RESTORER: u64 = 0x40_2000;

/// Installs a handler for `sig` with `flags` (the kernel `struct sigaction`
/// of the process's ABI).
fn handle(p: &mut Process<'_>, sig: u64, flags: u64) {
    let act = crate::sigframe::Action {
        handler: HANDLER,
        flags,
        restorer: RESTORER,
        mask: 0,
    }
    .encode(p.task.abi);
    let at = mem(p, 4096);
    put(p, at, &act);
    let nr = match p.task.abi {
        Abi::X86_64 => X::rt_sigaction as u64,
        Abi::I386 => I::rt_sigaction as u64,
    };
    assert_eq!(call(p, nr, &[sig, at, 0, 8]), Some(0));
}

/// Registers of a program stopped with its stack at the top of fresh memory.
fn stopped_at(p: &mut Process<'_>) -> AppRegs {
    let stack = mem(p, 64 * 1024);
    let mut r = AppRegs::default();
    r.gpr[AppRegs::RSP] = stack + 64 * 1024 - 0x100;
    r.gpr[AppRegs::RBX] = 0x1234;
    r.rip = 0x40_0abc;
    r.rflags = 0x246;
    r
}

#[test]
fn raise_with_a_handler_enters_it_on_an_rt_sigframe_and_rt_sigreturn_restores() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        handle(p, 10, SA_SIGINFO | SA_RESTORER);
        let before = stopped_at(p);
        p.node.set_fpu(PID, &fpu_marker()).unwrap();
        p.node.set_regs(p.task.pid, &before).unwrap();
        let v = call(p, X::kill as u64, &[PID, 10]).unwrap();
        assert_eq!(v, 0);
        p.finish_call(v);
        let h = p.node.regs(p.task.pid).unwrap();
        let frame = h.gpr[AppRegs::RSP];
        assert_eq!(h.rip, HANDLER);
        assert_eq!(frame % 16, 8, "as after a call");
        assert!(
            frame + 440 + 128 <= before.gpr[AppRegs::RSP],
            "below the red zone"
        );
        assert_eq!(h.gpr[AppRegs::RDI], 10);
        assert_eq!(h.gpr[AppRegs::RSI], frame + 312);
        assert_eq!(h.gpr[AppRegs::RDX], frame + 8);
        let bytes = get(p, frame, 440);
        let (f, _) = RtSigFrame64::read_from_prefix(&bytes).unwrap();
        assert_eq!(f.pretcode, RESTORER);
        assert_eq!(f.uc.uc_mcontext.rip, 0x40_0abc);
        assert_eq!(f.uc.uc_mcontext.rbx, 0x1234);
        assert_eq!(f.uc.uc_mcontext.rax, 0, "kill's answer");
        assert_eq!(
            (f.info.signo, f.info.code, f.info.rest[1]),
            (10, 0, PID as u32)
        );
        assert_eq!(f.info.rest[2], 1000, "si_uid");
        assert_eq!(p.task.sigmask, 1 << 9, "blocked in its handler");
        // The interrupted code's FPU is in the frame; the handler's is reset.
        let saved = get(p, f.uc.uc_mcontext.fpstate, 512);
        assert_eq!(saved, fpu_marker());
        assert_eq!(p.node.fpu(PID).unwrap(), crate::sigframe::reset_fxsave());
        // The handler returns into the restorer: `ret` popped `pretcode`.
        let mut r = h;
        r.gpr[AppRegs::RSP] = frame + 8;
        r.gpr[AppRegs::RBX] = 0x9999;
        p.node.set_regs(p.task.pid, &r).unwrap();
        let v = call(p, X::rt_sigreturn as u64, &[]).unwrap();
        p.finish_call(v);
        let back = p.node.regs(p.task.pid).unwrap();
        assert_eq!(back.rip, before.rip);
        assert_eq!(back.gpr[AppRegs::RSP], before.gpr[AppRegs::RSP]);
        assert_eq!(back.gpr[AppRegs::RBX], 0x1234);
        assert_eq!(back.gpr[AppRegs::RAX], 0);
        assert_eq!(p.task.sigmask, 0);
        assert_eq!(p.node.fpu(PID).unwrap(), fpu_marker(), "FPU restored");
    });
    assert_eq!(node.killed, None);
}

/// An `fxsave` image with `xmm0` and MXCSR set, to follow through a frame.
fn fpu_marker() -> [u8; 512] {
    let mut a = crate::sigframe::reset_fxsave();
    a[24..28].copy_from_slice(&0x3F80u32.to_le_bytes());
    a[160..176].copy_from_slice(&[0xAB; 16]);
    a
}

#[test]
fn i386_frames_with_and_without_siginfo_round_trip() {
    for siginfo in [false, true] {
        let mut node = FakeNode::default();
        with(I386, &mut node, |p| {
            handle(p, 12, SA_RESTORER | if siginfo { SA_SIGINFO } else { 0 });
            let before = stopped_at(p);
            p.node.set_fpu(PID, &fpu_marker()).unwrap();
            p.node.set_regs(p.task.pid, &before).unwrap();
            let v = call(p, I::kill as u64, &[PID, 12]).unwrap();
            p.finish_call(v);
            let h = p.node.regs(p.task.pid).unwrap();
            let frame = h.gpr[AppRegs::RSP];
            assert_eq!((frame + 4) % 16, 0, "as after a call");
            assert_eq!((h.rip, h.gpr[AppRegs::RAX]), (HANDLER, 12));
            let after_ret = if siginfo {
                let b = get(p, frame, size_of::<RtSigFrame32>() as u64);
                let (f, _) = RtSigFrame32::read_from_prefix(&b).unwrap();
                assert_eq!((f.pretcode, f.sig), (RESTORER as u32, 12));
                assert_eq!(u64::from(f.pinfo), h.gpr[AppRegs::RDX]);
                assert_eq!(u64::from(f.puc), h.gpr[AppRegs::RCX]);
                assert_eq!(f.info.rest[0], PID as u32, "si_pid at 12");
                assert_eq!(f.uc.uc_mcontext.eip, 0x40_0abc);
                // The fxsave image follows the 112-byte legacy header.
                let fx = u64::from(f.uc.uc_mcontext.fpstate) + 112;
                assert_eq!(get(p, fx, 512), fpu_marker());
                frame + 4
            } else {
                let b = get(p, frame, size_of::<SigFrame32>() as u64);
                let (f, _) = SigFrame32::read_from_prefix(&b).unwrap();
                assert_eq!((f.pretcode, f.sig), (RESTORER as u32, 12));
                assert_eq!(f.sc.ebx, 0x1234);
                frame + 8 // `ret`, then the restorer's `popl %eax`
            };
            let mut r = h;
            r.gpr[AppRegs::RSP] = after_ret;
            p.node.set_regs(p.task.pid, &r).unwrap();
            let nr = if siginfo {
                I::rt_sigreturn
            } else {
                I::sigreturn
            };
            let v = call(p, nr as u64, &[]).unwrap();
            p.finish_call(v);
            let back = p.node.regs(p.task.pid).unwrap();
            assert_eq!(back.rip, before.rip);
            assert_eq!(back.gpr[AppRegs::RSP], before.gpr[AppRegs::RSP]);
            assert_eq!(back.gpr[AppRegs::RBX], 0x1234);
            assert_eq!(p.task.sigmask, 0);
            assert_eq!(p.node.fpu(PID).unwrap(), fpu_marker(), "FPU restored");
        });
        assert_eq!(node.killed, None);
    }
}

#[test]
fn alarm_interrupts_pause_and_nanosleep_and_blocked_signals_wait() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        handle(p, 14, SA_RESTORER);
        let regs = stopped_at(p);
        p.node.set_regs(p.task.pid, &regs).unwrap();
        assert_eq!(call(p, X::alarm as u64, &[2]), Some(0));
        assert_eq!(call(p, X::alarm as u64, &[1]), Some(2));
        let start = p.node.clock_ns();
        assert_eq!(call(p, X::pause as u64, &[]), err(Errno::EINTR));
        assert_eq!(p.node.clock_ns() - start, 1_000_000_000);
        assert_eq!(p.deliverable(), Some(14));
        p.finish_call(Errno::EINTR.to_return());
        assert_eq!(p.node.regs(p.task.pid,).unwrap().rip, HANDLER);
        // nanosleep(5 s) cut by a 1 s alarm: EINTR, 4 s left.
        p.task.sigmask = 0;
        let ts = mem(p, 4096);
        put(p, ts, &[5u64.to_le_bytes(), 0u64.to_le_bytes()].concat());
        assert_eq!(call(p, X::alarm as u64, &[1]), Some(0));
        assert_eq!(
            call(p, X::nanosleep as u64, &[ts, ts + 16]),
            err(Errno::EINTR)
        );
        assert_eq!(u64_at(p, ts + 16), 4);
        // A blocked signal stays pending until unblocked.
        p.task.pending = 0;
        p.task.pending_info.clear();
        let set = mem(p, 4096);
        put(p, set, &(1u64 << 9).to_le_bytes());
        handle(p, 10, SA_RESTORER);
        assert_eq!(call(p, X::rt_sigprocmask as u64, &[0, set, 0, 8]), Some(0));
        p.node.set_regs(p.task.pid, &regs).unwrap();
        let v = call(p, X::kill as u64, &[PID, 10]).unwrap();
        p.finish_call(v);
        assert_eq!(
            p.node.regs(p.task.pid,).unwrap().rip,
            regs.rip,
            "not delivered"
        );
        assert_eq!(call(p, X::rt_sigpending as u64, &[set + 8, 8]), Some(0));
        assert_eq!(u64_at(p, set + 8), 1 << 9);
        let v = call(p, X::rt_sigprocmask as u64, &[1, set, 0, 8]).unwrap();
        p.finish_call(v);
        assert_eq!(
            p.node.regs(p.task.pid,).unwrap().rip,
            HANDLER,
            "delivered on unblocking"
        );
    });
    assert_eq!(node.killed, None);
}

#[test]
fn faults_go_to_the_handler_with_si_addr_or_end_the_job() {
    use crate::process::Fault;
    let segv = Fault {
        vector: 14,
        error_code: 6,
        address: 0x10,
        rip: 0x40_0abc,
        signal: 11,
    };
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        handle(p, 11, SA_SIGINFO | SA_RESTORER);
        let regs = stopped_at(p);
        p.node.set_regs(p.task.pid, &regs).unwrap();
        p.on_fault(segv);
        let h = p.node.regs(p.task.pid).unwrap();
        assert_eq!(h.rip, HANDLER);
        let b = get(p, h.gpr[AppRegs::RSP], 440);
        let (f, _) = RtSigFrame64::read_from_prefix(&b).unwrap();
        assert_eq!((f.info.signo, f.info.code), (11, 1), "SEGV_MAPERR");
        assert_eq!((f.info.rest[1], f.info.rest[2]), (0x10, 0), "si_addr");
        assert_eq!((f.uc.uc_mcontext.trapno, f.uc.uc_mcontext.cr2), (14, 0x10));
    });
    assert_eq!(node.killed, None);
    assert_eq!(node.replies, [0]);
    // No handler: the job ends with SIGSEGV (core), as before.
    let mut node = FakeNode::default();
    with(I386, &mut node, |p| p.on_fault(segv));
    assert_eq!(node.killed, Some(11 | 0x80));
}

#[test]
fn a_timer_reaches_a_program_that_makes_no_system_call() {
    // alarm(1) with no handler, then the program computes: the manager's
    // wait times out at the timer, stops the program, and SIGALRM's default
    // action ends it.
    let mut node = FakeNode::default();
    let status = with(X64, &mut node, |p| {
        assert_eq!(call(p, X::alarm as u64, &[1]), Some(0));
        p.run()
    });
    assert_eq!(node.interrupted, 1, "the program was stopped once");
    assert_eq!(node.killed, Some(14), "SIGALRM's default action");
    assert_eq!(status, 0, "the fake node reports the end as 0");
}

// ---- the job's processes ----

/// A system call of task `pid` as the node reports it.
fn sys(pid: u64, nr: u64, args: &[u64]) -> Event {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    Event::Syscall {
        pid,
        abi: X64,
        nr,
        args: a,
    }
}

/// The fake node gives its first forked child this pid.
const CHILD: u64 = 100;
/// `-1` as a register.
const MINUS_1: u64 = u64::MAX;

#[test]
fn fork_then_wait4_reaps_the_child_with_its_exit_status() {
    let mut node = FakeNode::default();
    let status = with(X64, &mut node, |p| {
        let wstatus = mem(p, 4096);
        assert_eq!(p.handle(sys(PID, X::fork as u64, &[])), None);
        let child = p.task_of(CHILD).expect("the child's task");
        assert_eq!((child.ppid, child.pgid, child.sid), (PID, PID, PID));
        // No child has ended: the call waits.
        p.handle(sys(PID, X::wait4 as u64, &[MINUS_1, wstatus, 0, 0]));
        assert!(p.task.parked.is_some() || p.task_of(PID).unwrap().parked.is_some());
        p.handle(sys(CHILD, X::getppid as u64, &[]));
        p.handle(sys(CHILD, X::exit_group as u64, &[3]));
        assert_eq!(p.handle(Event::Exited(CHILD, 3 << 8)), None);
        assert!(p.switch_to(PID));
        assert_eq!(get(p, wstatus, 4), (3i32 << 8).to_le_bytes());
        assert!(p.task_of(CHILD).is_none(), "reaped");
        p.handle(sys(PID, X::wait4 as u64, &[MINUS_1, 0, 1, 0]));
        p.handle(sys(PID, X::exit_group as u64, &[0]));
        p.handle(Event::Exited(PID, 0))
    });
    assert_eq!(status, Some(0));
    let echild = Errno::ECHILD.to_return();
    assert_eq!(
        node.replied,
        [
            (CHILD, 0),          // the child starts, fork answering 0
            (PID, CHILD as i64), // fork
            (CHILD, PID as i64), // the child's getppid
            (PID, CHILD as i64), // wait4, once the child ended
            (PID, echild),       // wait4 with no children left
        ],
        "{:?}",
        node.replied
    );
    assert_eq!(node.spaces.len(), 1, "the child got a copy of the memory");
}

#[test]
fn a_pipe_between_tasks_blocks_then_delivers_then_ends() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let fds = mem(p, 4096);
        let buf = fds + 64;
        assert_eq!(call(p, X::pipe as u64, &[fds]), Some(0));
        let (r, w) = (3u64, 4u64);
        assert_eq!(get(p, fds, 8), [3, 0, 0, 0, 4, 0, 0, 0]);
        p.handle(sys(PID, X::fork as u64, &[]));
        p.handle(sys(PID, X::close as u64, &[w]));
        // Nothing written yet, a writer alive: the read waits.
        p.handle(sys(PID, X::read as u64, &[r, buf, 16]));
        assert!(p.task_of(PID).unwrap().parked.is_some());
        p.load_mem(buf + 32, b"hi").unwrap();
        p.handle(sys(CHILD, X::write as u64, &[w, buf + 32, 2]));
        assert!(
            p.task_of(PID).unwrap().parked.is_none(),
            "the read answered"
        );
        assert!(p.switch_to(PID));
        assert_eq!(get(p, buf, 2), b"hi");
        // The writer ends: end of file.
        p.handle(sys(CHILD, X::exit_group as u64, &[0]));
        p.handle(Event::Exited(CHILD, 0));
        p.handle(sys(PID, X::read as u64, &[r, buf, 16]));
    });
    let last: Vec<i64> = node
        .replied
        .iter()
        .filter(|(pid, _)| *pid == PID)
        .map(|(_, v)| *v)
        .collect();
    // fork, close, read 2 bytes, read 0 at the end.
    assert_eq!(last[last.len() - 3..], [0, 2, 0], "{:?}", node.replied);
}

#[test]
fn a_pipe_without_readers_gives_epipe_and_sigpipe() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let fds = mem(p, 4096);
        assert_eq!(call(p, X::pipe as u64, &[fds]), Some(0));
        assert_eq!(call(p, X::close as u64, &[3]), Some(0));
        p.handle(sys(PID, X::write as u64, &[4, fds, 1]));
    });
    // SIGPIPE's default action ends the process.
    assert_eq!(node.kills, [(PID, 13)]);
}

#[test]
fn the_first_process_ending_kills_the_others_and_is_the_jobs_status() {
    let mut node = FakeNode::default();
    let status = with(X64, &mut node, |p| {
        p.handle(sys(PID, X::fork as u64, &[]));
        p.handle(sys(PID, X::exit_group as u64, &[4]));
        assert_eq!(
            p.handle(Event::Exited(PID, 4 << 8)),
            None,
            "a child is left"
        );
        p.handle(Event::Exited(CHILD, 9))
    });
    assert_eq!(status, Some(4 << 8));
    assert_eq!(node.kills, [(PID, 4 << 8), (CHILD, 9)]);
    assert!(node.log.iter().any(|l| l.contains("killing 1 process")));
}

#[test]
fn forks_beyond_the_process_cap_get_eagain() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        p.max_procs = 2;
        p.handle(sys(PID, X::fork as u64, &[]));
        p.handle(sys(PID, X::fork as u64, &[]));
        // Threads are not served yet.
        let clone_vm = u64::from(linux_raw_sys::general::CLONE_VM);
        p.handle(sys(PID, X::clone as u64, &[clone_vm, 0, 0, 0, 0]));
    });
    let answers: Vec<i64> = node.replied.iter().map(|r| r.1).collect();
    assert_eq!(
        answers,
        [
            0,
            CHILD as i64,
            Errno::EAGAIN.to_return(),
            Errno::ENOSYS.to_return()
        ]
    );
}

#[test]
fn kill_reaches_a_task_waiting_in_pause() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        p.handle(sys(PID, X::fork as u64, &[]));
        p.handle(sys(CHILD, X::pause as u64, &[]));
        assert!(p.task_of(CHILD).unwrap().parked.is_some());
        // kill(child, SIGTERM): the pause is interrupted and SIGTERM's
        // default action ends the child.
        p.handle(sys(PID, X::kill as u64, &[CHILD, 15]));
        // kill(-pgid, 0) finds the group; a pid outside the job does not.
        p.handle(sys(PID, X::kill as u64, &[MINUS_1 - (PID - 1), 0]));
        p.handle(sys(PID, X::kill as u64, &[4242, 0]));
    });
    assert_eq!(node.kills, [(CHILD, 15)]);
    let parent: Vec<i64> = node
        .replied
        .iter()
        .filter(|r| r.0 == PID)
        .map(|r| r.1)
        .collect();
    assert_eq!(parent[parent.len() - 3..], [0, 0, Errno::ESRCH.to_return()]);
}

#[test]
fn poll_reports_pipe_readiness_and_waits_for_data() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let fds = mem(p, 4096);
        assert_eq!(call(p, X::pipe as u64, &[fds]), Some(0));
        let pollfd = fds + 16;
        // { fd 3, POLLIN }, { fd 4, POLLOUT }
        let mut b = Vec::new();
        for (fd, ev) in [(3i32, 1i16), (4, 4)] {
            b.extend_from_slice(&fd.to_le_bytes());
            b.extend_from_slice(&ev.to_le_bytes());
            b.extend_from_slice(&0i16.to_le_bytes());
        }
        put(p, pollfd, &b);
        // Only the write end is ready.
        assert_eq!(call(p, X::poll as u64, &[pollfd, 2, 0]), Some(1));
        assert_eq!(get(p, pollfd + 6, 2), [0, 0]);
        assert_eq!(get(p, pollfd + 14, 2), [4, 0]);
        put(p, fds + 64, b"x");
        assert_eq!(call(p, X::write as u64, &[4, fds + 64, 1]), Some(1));
        assert_eq!(call(p, X::poll as u64, &[pollfd, 2, 0]), Some(2));
        assert_eq!(get(p, pollfd + 6, 2), [1, 0]);
        // A bad descriptor is POLLNVAL.
        put(p, pollfd, &9i32.to_le_bytes());
        assert_eq!(call(p, X::poll as u64, &[pollfd, 1, 0]), Some(1));
        assert_eq!(get(p, pollfd + 6, 2), [0x20, 0]);
    });
}

#[test]
fn execve_of_a_missing_or_unloadable_program_gives_linuxs_errno() {
    let files: crate::process::fake::FileServe = Box::new(|id, req| match req {
        FileRequest::Open { path, .. } if path == b"prog" => FileReply {
            id,
            result: 5,
            data: vec![0],
        },
        FileRequest::Open { .. } => FileReply {
            id,
            result: Errno::ENOENT.to_return(),
            data: vec![],
        },
        FileRequest::Fstat { .. } => FileReply {
            id,
            result: 0,
            data: crate::job::encode_stat(&crate::job::FileStat {
                mode: 0o100755,
                size: 14,
                ..Default::default()
            }),
        },
        FileRequest::Read { .. } => FileReply {
            id,
            result: 14,
            data: b"not a program\n".to_vec(),
        },
        _ => FileReply {
            id,
            result: 0,
            data: vec![],
        },
    });
    let mut node = FakeNode {
        files: Some(files),
        ..FakeNode::default()
    };
    with(X64, &mut node, |p| {
        let s = mem(p, 4096);
        put(p, s, b"missing\0prog\0");
        assert_eq!(call(p, X::execve as u64, &[s, 0, 0]), err(Errno::ENOENT));
        assert_eq!(
            call(p, X::execve as u64, &[s + 8, 0, 0]),
            err(Errno::ENOEXEC)
        );
        assert!(!p.task.execed, "the caller keeps its image");
    });
    assert!(node.execs.is_empty());
    // The staging application was given up.
    assert_eq!(node.kills.len(), 1);
}

#[test]
fn i386_legacy_signal_calls_share_the_dispositions_and_mask() {
    let mut node = FakeNode::default();
    with(I386, &mut node, |p| {
        let m = mem(p, 4096);
        // signal(SIGUSR1, h): one-shot, no self-blocking; answers SIG_DFL.
        assert_eq!(call(p, I::signal as u64, &[10, 0x40_1000]), Some(0));
        assert_eq!(call(p, I::signal as u64, &[10, 1]), Some(0x40_1000));
        // sigaction: old_sigaction { handler, mask, flags, restorer }.
        let mut act = Vec::new();
        for v in [0x40_2000u32, 1 << 1, 0x0400_0000, 0x40_3000] {
            act.extend_from_slice(&v.to_le_bytes());
        }
        put(p, m, &act);
        assert_eq!(call(p, I::sigaction as u64, &[12, m, m + 16]), Some(0));
        assert_eq!(get(p, m + 16, 4), 0u32.to_le_bytes(), "SIG_DFL before");
        assert_eq!(call(p, I::sigaction as u64, &[12, 0, m + 32]), Some(0));
        assert_eq!(get(p, m + 32, 16), act, "read back as given");
        // The same disposition through rt_sigaction (handler, flags,
        // restorer, 64-bit mask).
        assert_eq!(
            call(p, I::rt_sigaction as u64, &[12, 0, m + 64, 8]),
            Some(0)
        );
        assert_eq!(get(p, m + 64, 4), 0x40_2000u32.to_le_bytes());
        assert_eq!(get(p, m + 68, 4), 0x0400_0000u32.to_le_bytes());
        // sigprocmask on 32 bits keeps the upper half of the mask.
        p.task.sigmask = 1 << 40;
        put(p, m + 128, &(1u32 << 3).to_le_bytes());
        assert_eq!(
            call(p, I::sigprocmask as u64, &[2, m + 128, m + 132]),
            Some(0)
        );
        assert_eq!(p.task.sigmask, (1 << 40) | (1 << 3));
        assert_eq!(get(p, m + 132, 4), 0u32.to_le_bytes());
        // SIGKILL's disposition cannot change.
        assert_eq!(call(p, I::signal as u64, &[9, 1]), err(Errno::EINVAL));
    });
}

#[test]
fn a_posix_timer_sends_its_signal_with_si_timer_then_rearms() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let m = mem(p, 4096);
        // sigevent { sigev_value = 77, sigev_signo = SIGUSR2, SIGEV_SIGNAL }.
        let mut sev = 77u64.to_le_bytes().to_vec();
        sev.extend_from_slice(&12i32.to_le_bytes());
        sev.extend_from_slice(&0i32.to_le_bytes());
        put(p, m, &sev);
        assert_eq!(call(p, X::timer_create as u64, &[1, m, m + 64]), Some(0));
        let id = u64::from_le_bytes(get(p, m + 64, 8).try_into().unwrap()) & 0xffff_ffff;
        // it_interval 0.5 s, it_value 1 s.
        let spec: Vec<u8> = [0u64, 500_000_000, 1, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        put(p, m + 128, &spec);
        assert_eq!(
            call(p, X::timer_settime as u64, &[id, 0, m + 128, 0]),
            Some(0)
        );
        assert_eq!(call(p, X::timer_gettime as u64, &[id, m + 192]), Some(0));
        assert_eq!(u64_at(p, m + 200), 500_000_000, "interval");
        assert_eq!(u64_at(p, m + 208), 1, "1 s left");
        assert_eq!(p.task.pending, 0);
        advance(p, 1_000_000_000);
        p.check_timers();
        assert_eq!(p.task.pending, 1 << 11, "SIGUSR2 pending");
        let info = p.task.pending_info[&12];
        assert_eq!(info.code, linux_raw_sys::general::SI_TIMER);
        assert_eq!((info.rest[1], info.rest[3]), (id as u32, 77), "id, value");
        // Fired again while still pending: an overrun.
        advance(p, 500_000_000);
        p.check_timers();
        assert_eq!(call(p, X::timer_getoverrun as u64, &[id]), Some(1));
        assert_eq!(call(p, X::timer_delete as u64, &[id]), Some(0));
        assert_eq!(call(p, X::timer_delete as u64, &[id]), err(Errno::EINVAL));
        // SIGEV_THREAD needs threads.
        put(p, m + 12, &2i32.to_le_bytes());
        assert_eq!(
            call(p, X::timer_create as u64, &[1, m, m + 64]),
            err(Errno::EINVAL)
        );
    });
}

/// Lets `ns` of the fake node's clock pass (a wait for `hostd` until then).
fn advance(p: &mut Process<'_>, ns: u64) {
    let until = p.node.clock_ns() + ns;
    assert_eq!(p.node.recv(Some(until)), Ok(None));
}

#[test]
fn threads_share_the_process_and_futexes_wake_their_waiters() {
    use linux_raw_sys::general as g;
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let m = mem(p, 4096);
        let flags = pthread_clone_flags();
        p.handle(sys(
            PID,
            X::clone as u64,
            &[flags, m + 2048, m, m + 8, 0x7000],
        ));
        let t = p.task_of(CHILD).expect("the thread").clone();
        assert_eq!((t.tgid, t.clear_child_tid, t.fs_base), (PID, m + 8, 0x7000));
        // A pipe made by the thread is the process's.
        p.handle(sys(CHILD, X::pipe as u64, &[m + 64]));
        assert!(p.switch_to(PID));
        assert_eq!(get(p, m, 4), (CHILD as u32).to_le_bytes(), "parent_tid");
        assert!(
            p.task.fds.get(3).is_ok(),
            "the thread's pipe is the process's"
        );
        p.handle(sys(CHILD, X::getpid as u64, &[]));
        p.handle(sys(CHILD, X::gettid as u64, &[]));
        // The main thread waits on a futex; the thread wakes it.
        let (wait, wake) = (
            u64::from(g::FUTEX_WAIT_PRIVATE),
            u64::from(g::FUTEX_WAKE_PRIVATE),
        );
        p.handle(sys(PID, X::futex as u64, &[m + 16, wait, 0, 0]));
        assert!(p.task_of(PID).unwrap().futex.is_some());
        p.handle(sys(CHILD, X::futex as u64, &[m + 16, wake, 1]));
        assert!(p.task_of(PID).unwrap().futex.is_none(), "woken");
        // A join: the main thread waits on the thread's id word, which the
        // thread's end clears, waking it.
        p.load_mem(m + 8, &(CHILD as u32).to_le_bytes()).unwrap();
        p.handle(sys(PID, X::futex as u64, &[m + 8, wait, CHILD]));
        p.handle(sys(CHILD, X::exit as u64, &[0]));
        assert_eq!(p.handle(Event::Exited(CHILD, 0)), None);
        assert!(p.task_of(CHILD).is_none(), "the thread is gone");
        assert!(p.switch_to(PID));
        assert_eq!(get(p, m + 8, 4), [0, 0, 0, 0], "clear_child_tid");
    });
    let main: Vec<i64> = node
        .replied
        .iter()
        .filter(|r| r.0 == PID)
        .map(|r| r.1)
        .collect();
    // clone, futex wait (woken), futex wait (joined).
    assert_eq!(main, [CHILD as i64, 0, 0], "{:?}", node.replied);
    let thread: Vec<i64> = node
        .replied
        .iter()
        .filter(|r| r.0 == CHILD)
        .map(|r| r.1)
        .collect();
    // start, pipe, getpid, gettid, futex wake (1 woken).
    assert_eq!(thread, [0, 0, PID as i64, CHILD as i64, 1]);
    assert_eq!(node.kills, [(CHILD, 0)], "only the thread ended");
}

#[test]
fn dev_zero_and_urandom_are_served_on_the_node_and_clone3_forks() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let m = mem(p, 4096);
        put(p, m, b"/dev/zero\0/dev/urandom\0");
        let zero = call(p, X::open as u64, &[m, 2]).unwrap();
        let rand = call(p, X::openat as u64, &[(-100i64) as u64, m + 10, 0]).unwrap();
        assert!(zero >= 3 && rand > zero, "{zero} {rand}");
        put(p, m + 100, &[0xff; 16]);
        assert_eq!(
            call(p, X::read as u64, &[zero as u64, m + 100, 16]),
            Some(16)
        );
        assert_eq!(get(p, m + 100, 16), [0; 16]);
        assert_eq!(call(p, X::write as u64, &[zero as u64, m, 4]), Some(4));
        assert_eq!(
            call(p, X::read as u64, &[rand as u64, m + 200, 16]),
            Some(16)
        );
        assert_ne!(get(p, m + 200, 16), [0; 16]);
        // clone3 with struct clone_args of glibc's size (88 bytes): a fork.
        let mut args = vec![0u8; 88];
        args[32..40].copy_from_slice(&17u64.to_le_bytes()); // exit_signal SIGCHLD
        put(p, m + 512, &args);
        p.handle(sys(PID, X::clone3 as u64, &[m + 512, 88]));
        assert!(
            p.task_of(CHILD)
                .is_some_and(|t| t.tgid == CHILD && t.ppid == PID)
        );
        // Fields it does not serve must be zero.
        args[64] = 1;
        assert!(p.switch_to(PID));
        put(p, m + 512, &args);
        assert_eq!(call(p, X::clone3 as u64, &[m + 512, 88]), err(Errno::E2BIG));
    });
}

#[test]
fn clone3_of_a_thread_as_glibc_asks() {
    let mut node = FakeNode::default();
    with(X64, &mut node, |p| {
        let m = mem(p, 8192);
        let flags = pthread_clone_flags();
        // glibc puts &pd->tid in `pidfd` too, without CLONE_PIDFD.
        let fields = [
            flags,
            m + 8,
            m + 8,
            m + 8,
            0,
            m + 4096,
            0xf80,
            0x7000,
            0,
            0,
            0,
        ];
        let args: Vec<u8> = fields.iter().flat_map(|v| v.to_le_bytes()).collect();
        put(p, m + 64, &args);
        p.handle(sys(PID, X::clone3 as u64, &[m + 64, 88]));
        let t = p.task_of(CHILD).expect("a thread");
        assert_eq!((t.tgid, t.fs_base, t.clear_child_tid), (PID, 0x7000, m + 8));
    });
    assert_eq!(
        node.replied[..2],
        [(CHILD, 0), (PID, CHILD as i64)],
        "{:?}",
        node.replied
    );
}

#[test]
fn sysinfo_gives_the_jobs_view_in_both_layouts() {
    for (abi, nr, unit_at, procs_at) in [
        (X64, X::sysinfo as u64, 104, 80),
        (I386, I::sysinfo as u64, 52, 40),
    ] {
        let mut node = FakeNode::default();
        with(abi, &mut node, |p| {
            let m = mem(p, 4096);
            assert_eq!(call(p, nr, &[m]), Some(0));
            let w = abi.word_size() as u64;
            let word = |b: Vec<u8>| {
                let mut v = [0u8; 8];
                v[..b.len()].copy_from_slice(&b);
                u64::from_le_bytes(v)
            };
            assert_eq!(word(get(p, m, w)), 1, "uptime: the fake clock's 1 s");
            assert_eq!(word(get(p, m + 4 * w, w)), 64 << 20, "totalram: the limit");
            assert!(word(get(p, m + 5 * w, w)) < 64 << 20, "freeram");
            assert_eq!(get(p, m + procs_at, 2), [1, 0], "procs");
            assert_eq!(get(p, m + unit_at, 4), [1, 0, 0, 0], "mem_unit");
        });
    }
}

/// The `clone` flags glibc's and musl's `pthread_create` use.
fn pthread_clone_flags() -> u64 {
    use linux_raw_sys::general as g;
    u64::from(
        g::CLONE_VM
            | g::CLONE_FS
            | g::CLONE_FILES
            | g::CLONE_SIGHAND
            | g::CLONE_THREAD
            | g::CLONE_SYSVSEM
            | g::CLONE_SETTLS
            | g::CLONE_PARENT_SETTID
            | g::CLONE_CHILD_CLEARTID,
    )
}

#[test]
fn writes_go_behind_and_their_failures_come_back_at_fsync_write_and_close() {
    // A hostd whose device fills up: a write of "full" fails, one of "half"
    // takes half its bytes; "ro.txt" is open read-only.
    let mut node = FakeNode {
        files: Some(Box::new(|id, req| {
            let (result, data) = match req {
                FileRequest::Open { path, .. } => (if path == b"ro.txt" { 8 } else { 7 }, vec![0]),
                FileRequest::Write { handle: 8, .. } => (Errno::EBADF.to_return(), vec![]),
                FileRequest::Write { data, .. } if data == b"full" => {
                    (Errno::ENOSPC.to_return(), vec![])
                }
                FileRequest::Write { data, .. } if data == b"half" => (2, vec![]),
                FileRequest::Write { data, .. } | FileRequest::Pwrite { data, .. } => {
                    (data.len() as i64, vec![])
                }
                FileRequest::Fsync { .. } | FileRequest::Close { .. } => (0, vec![]),
                _ => (Errno::ENOSYS.to_return(), vec![]),
            };
            FileReply { id, result, data }
        })),
        ..FakeNode::default()
    };
    with(X64, &mut node, |p| {
        let m = mem(p, 4096);
        put(p, m, b"out.txt\0");
        put(p, m + 16, b"ro.txt\0");
        put(p, m + 64, b"good");
        put(p, m + 96, b"full");
        put(p, m + 128, b"half");
        let wronly = u64::from(linux_raw_sys::general::O_WRONLY | linux_raw_sys::general::O_CREAT);
        let fd = call(p, X::open as u64, &[m, wronly, 0o644]).unwrap() as u64;
        // Each write is taken whole at once; the failed one is reported by
        // fsync, and only once.
        assert_eq!(call(p, X::write as u64, &[fd, m + 64, 4]), Some(4));
        assert_eq!(call(p, X::write as u64, &[fd, m + 96, 4]), Some(4));
        assert_eq!(call(p, X::pwrite64 as u64, &[fd, m + 64, 4, 100]), Some(4));
        assert_eq!(call(p, X::fsync as u64, &[fd]), err(Errno::ENOSPC));
        assert_eq!(call(p, X::fsync as u64, &[fd]), Some(0));
        // A short count is the device filling up; the next write says so.
        assert_eq!(call(p, X::write as u64, &[fd, m + 128, 4]), Some(4));
        while p.writes_behind.iter().any(|w| w.handle == 7) {
            p.poll_host();
        }
        assert_eq!(
            call(p, X::write as u64, &[fd, m + 64, 4]),
            err(Errno::ENOSPC)
        );
        // close waits for the writes still behind and returns their failure;
        // the descriptor is gone all the same.
        assert_eq!(call(p, X::write as u64, &[fd, m + 96, 4]), Some(4));
        assert_eq!(call(p, X::close as u64, &[fd]), err(Errno::ENOSPC));
        assert_eq!(call(p, X::close as u64, &[fd]), err(Errno::EBADF));
        assert!(p.writes_behind.is_empty() && p.write_errors.is_empty());
        // A file open read-only gets hostd's EBADF at once.
        let ro = call(p, X::open as u64, &[m + 16, 0, 0]).unwrap() as u64;
        assert_eq!(
            call(p, X::write as u64, &[ro, m + 64, 4]),
            err(Errno::EBADF)
        );
    });
    let writes = node
        .file_requests()
        .iter()
        .filter(|r| matches!(r, FileRequest::Write { .. } | FileRequest::Pwrite { .. }))
        .count();
    assert_eq!(writes, 6, "the failed write's successor is not sent");
}

#[test]
fn statfs_fstatfs_and_proc_self_fd_links() {
    let mut node = FakeNode {
        files: Some(Box::new(|id, req| {
            let (result, data) = match req {
                FileRequest::Open { .. } => (7, vec![0]),
                FileRequest::Statfs { .. } => (
                    0,
                    crate::job::encode_fs_stat(&crate::job::FsStat {
                        fs_type: 0xEF53,
                        bsize: 4096,
                        blocks: 1 << 33,
                        namelen: 255,
                        ..Default::default()
                    }),
                ),
                FileRequest::HandlePath { .. } => (13, b"/home/u/job/f".to_vec()),
                _ => (Errno::ENOSYS.to_return(), vec![]),
            };
            FileReply { id, result, data }
        })),
        ..FakeNode::default()
    };
    with(X64, &mut node, |p| {
        let m = mem(p, 4096);
        put(p, m, b"f\0");
        put(p, m + 16, b"/proc/self/fd/1\0");
        put(p, m + 48, b"/proc/self/fd/3\0");
        put(p, m + 80, b"/proc/self/fd/9\0");
        assert_eq!(call(p, X::statfs as u64, &[m, m + 512]), Some(0));
        assert_eq!(u64_at(p, m + 512), 0xEF53);
        assert_eq!(u64_at(p, m + 512 + 16), 1 << 33);
        // A pipe's file system is pipefs.
        assert_eq!(call(p, X::fstatfs as u64, &[1, m + 512]), Some(0));
        assert_eq!(
            u64_at(p, m + 512),
            u64::from(linux_raw_sys::general::PIPEFS_MAGIC)
        );
        // readlink of /proc/self/fd/N: a stream, a host file, a closed fd.
        assert_eq!(call(p, X::readlink as u64, &[m + 16, m + 256, 64]), Some(8));
        assert_eq!(get(p, m + 256, 8), b"pipe:[1]");
        assert_eq!(call(p, X::open as u64, &[m, 0, 0]), Some(3));
        assert_eq!(
            call(p, X::readlink as u64, &[m + 48, m + 256, 64]),
            Some(13)
        );
        assert_eq!(get(p, m + 256, 13), b"/home/u/job/f");
        assert_eq!(
            call(p, X::readlink as u64, &[m + 80, m + 256, 64]),
            err(Errno::ENOENT)
        );
        // fchdir to a file: hostd says ENOTDIR; to a pipe, the node does.
        assert_eq!(call(p, X::fchdir as u64, &[1]), err(Errno::ENOTDIR));
    });
    let mut node = FakeNode {
        files: Some(Box::new(|id, req| {
            let (result, data) = match req {
                FileRequest::Statfs { .. } => (
                    0,
                    crate::job::encode_fs_stat(&crate::job::FsStat {
                        fs_type: 0xEF53,
                        blocks: 1 << 33,
                        ..Default::default()
                    }),
                ),
                _ => (Errno::ENOSYS.to_return(), vec![]),
            };
            FileReply { id, result, data }
        })),
        ..FakeNode::default()
    };
    with(I386, &mut node, |p| {
        let m = mem(p, 4096);
        put(p, m, b"f\0");
        // i386 statfs cannot hold 2^33 blocks; statfs64 can, with its size.
        assert_eq!(
            call(p, I::statfs as u64, &[m, m + 512]),
            err(Errno::EOVERFLOW)
        );
        assert_eq!(call(p, I::statfs64 as u64, &[m, 84, m + 512]), Some(0));
        assert_eq!(u64_at(p, m + 512 + 8), 1 << 33);
        assert_eq!(
            call(p, I::statfs64 as u64, &[m, 88, m + 512]),
            err(Errno::EINVAL)
        );
    });
}
