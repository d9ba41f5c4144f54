//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/`
//! (files named `seed-*`; the real ELF files `elf-*` come from
//! `seeds/make-elf-seeds.sh` and are read here for the `syscall` seeds that
//! `execve` them). Every seed is made by the crates' own encoders, so it is
//! valid input that the fuzzer then mutates:
//!
//! - `datagram`: every [`Message`] kind encoded, sealed with the target's
//!   cluster key (epoch 1), and in a SiON network header;
//! - `job_frame`: a stream of every [`HostMsg`] and of every [`NodeMsg`], and
//!   a real secure-channel transcript each way (the target's key and fixed
//!   nonces) whose records carry such frames;
//! - `elf_load`: small synthetic ELF files (headers only: static, i386,
//!   static-PIE, with `PT_INTERP`, with the program headers outside every
//!   segment);
//! - `syscall`: short call sequences of both ABIs (files, pipes, memory,
//!   signals, fork and wait, execve of the tiny programs);
//! - `checkpoint`: checkpoint images of small jobs taken on a fake node
//!   (memory with zero and non-zero pages, a grown break, a handler).
//!
//! Run from `fuzz/`: `cargo run --example seeds`. It overwrites the `seed-*`
//! files and leaves the others (what a fuzz run added) alone.

use std::fs;
use std::path::{Path, PathBuf};

use sion_abi::net::{self, Header};
use sion_app_mgr::job::{
    self, Dir, FileReply, FileRequest, HostMsg, JobInfo, JobState, NodeMsg, Start, Winsize,
};
use sion_companion_mgr::auth::{Channel, DatagramAuth};
use sion_fuzz::datagram::{keyring, sample_messages};
use sion_fuzz::syscall::{Arg, encode_call, encode_header};
use syscalls::x86::Sysno as I;
use syscalls::x86_64::Sysno as X;

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let path = corpus(target).join(format!("seed-{name}"));
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn datagram_seeds() {
    let mut auth = DatagramAuth::new(keyring(), 1);
    for (i, m) in sample_messages().iter().enumerate() {
        let bytes = m.encode().expect("a sample message encodes");
        write("datagram", &format!("{i:02}-{}", m.kind()), &bytes);
        write(
            "datagram",
            &format!("{i:02}-{}-sealed", m.kind()),
            &auth.seal(&bytes),
        );
        // As it travels: in a SiON network datagram (`sion_abi::net`).
        let header = Header {
            cluster: net::DEFAULT_CLUSTER,
            broadcast: i % 2 == 0,
            src_node: 0x5254_0053_4e01,
            dst_node: net::ALL_NODES,
            src_service: net::COMPANION_MANAGER_SERVICE,
            dst_service: net::COMPANION_MANAGER_SERVICE,
            tag: net::TAG_COMPANION,
        };
        let mut wrapped = vec![0u8; net::HEADER_LEN + bytes.len()];
        let n = header.encode(&bytes, &mut wrapped).expect("a message fits");
        write(
            "datagram",
            &format!("{i:02}-{}-in-header", m.kind()),
            &wrapped[..n],
        );
    }
}

fn host_msgs() -> Vec<HostMsg> {
    vec![
        HostMsg::Start(Start {
            version: job::PROTOCOL_VERSION,
            argv: vec![b"./prog".to_vec(), b"arg".to_vec()],
            envp: vec![b"HOME=/home/u".to_vec()],
            program_len: 728,
            cwd: b"/home/u/job".to_vec(),
            tty: [true, false, true],
            winsize: Some(Winsize {
                rows: 24,
                cols: 80,
                xpixel: 0,
                ypixel: 0,
            }),
            memory_limit: Some(64 << 20),
            max_procs: 8,
            realtime_ns: 1_700_000_000_000_000_000,
            uid: 1000,
            gid: 100,
            from: "u@host".into(),
            exe: b"/home/u/job/prog".to_vec(),
            queue: true,
            exclusive: false,
            restore: false,
        }),
        HostMsg::Program(b"\x7fELF\x02\x01\x01".to_vec()),
        HostMsg::Stdin(b"line\n".to_vec()),
        HostMsg::StdinEof,
        HostMsg::Kill,
        HostMsg::FileReply(FileReply {
            id: 3,
            result: -2,
            data: vec![1, 2, 3],
        }),
        HostMsg::List {
            version: job::PROTOCOL_VERSION,
        },
        HostMsg::Cancel {
            version: job::PROTOCOL_VERSION,
            job: 4,
            by: "u@host".into(),
        },
        HostMsg::Signal(2),
        HostMsg::Checkpoint,
        HostMsg::Leave {
            version: job::PROTOCOL_VERSION,
            by: "u@host".into(),
        },
    ]
}

fn node_msgs() -> Vec<NodeMsg> {
    vec![
        NodeMsg::Jobs(vec![JobInfo {
            job: 1,
            program: "./prog arg".into(),
            from: "u@host".into(),
            state: JobState::Exited(256),
            elapsed_ms: 12,
        }]),
        NodeMsg::Cancelled {
            job: 1,
            found: true,
        },
        NodeMsg::Accepted {
            node: "52:54:00:53:4e:00".into(),
            name: "lively-finch-4e00".into(),
            job: 1,
            memory_limit: 64 << 20,
        },
        NodeMsg::Refused {
            reason: "not an ELF executable".into(),
        },
        NodeMsg::Busy {
            reason: "another job is running".into(),
        },
        NodeMsg::Stdout(b"out\n".to_vec()),
        NodeMsg::Stderr(b"err\n".to_vec()),
        NodeMsg::StdinWanted { max: 4096 },
        NodeMsg::File {
            id: 1,
            request: FileRequest::Open {
                dir: Dir::Cwd,
                path: b"data.txt".to_vec(),
                flags: 0,
                mode: 0,
            },
        },
        NodeMsg::File {
            id: 2,
            request: FileRequest::Pread {
                handle: 3,
                len: 100,
                offset: 5,
            },
        },
        NodeMsg::Exited {
            status: 0,
            killed: 0,
            unsupported: vec!["io_uring_setup (x86_64 425)".into()],
        },
        NodeMsg::Leaving { running: Some(3) },
        NodeMsg::Moved {
            reason: "the node leaves the group".into(),
        },
        NodeMsg::Checkpoint(job::CheckpointPart::Header(vec![1, 2, 3])),
        NodeMsg::Checkpoint(job::CheckpointPart::Pages {
            addr: 0x1000,
            data: vec![7; 64],
        }),
        NodeMsg::Checkpoint(job::CheckpointPart::End {
            records: 2,
            bytes: 64,
        }),
        NodeMsg::Checkpoint(job::CheckpointPart::Refused {
            reason: "the job has 2 processes".into(),
        }),
    ]
}

fn stream<T: serde::Serialize>(msgs: &[T]) -> Vec<u8> {
    msgs.iter()
        .flat_map(|m| job::encode(m).expect("a sample frame encodes"))
        .collect()
}

fn job_seeds() {
    let hosts = stream(&host_msgs());
    let nodes = stream(&node_msgs());
    for (chunk, name) in [(63u8, "whole"), (0, "bytewise"), (6, "7-byte-pieces")] {
        write(
            "job_frame",
            &format!("host-msgs-{name}"),
            &[&[chunk][..], &hosts].concat(),
        );
        write(
            "job_frame",
            &format!("node-msgs-{name}"),
            &[&[chunk][..], &nodes].concat(),
        );
    }
    for (i, m) in host_msgs().iter().enumerate() {
        write(
            "job_frame",
            &format!("host-msg-{i}"),
            &[&[63u8][..], &stream(&[m.clone()])].concat(),
        );
    }
    // A real handshake with the target's fixed nonces, then records.
    let keys = keyring();
    let mut client = Channel::client(&keys, [9; 32]);
    let mut node = Channel::node(&keys, [7; 32]);
    let mut plain = Vec::new();
    let mut c2n = client.take_output();
    node.push(&c2n, &mut plain).expect("client hello");
    let mut n2c = node.take_output();
    client.push(&n2c, &mut plain).expect("node hello");
    let proof = client.take_output();
    node.push(&proof, &mut plain).expect("client proof");
    assert!(client.is_open() && node.is_open());
    c2n.extend_from_slice(&proof);
    c2n.extend_from_slice(&client.seal(&hosts).expect("open"));
    n2c.extend_from_slice(&node.seal(&nodes).expect("open"));
    write(
        "job_frame",
        "channel-client-to-node",
        &[&[63u8][..], &c2n].concat(),
    );
    write(
        "job_frame",
        "channel-node-to-client",
        &[&[63u8][..], &n2c].concat(),
    );
}

/// A synthetic ELF file: a header and program headers, segments of zeros.
struct Elf {
    bits64: bool,
    e_type: u16,
    entry: u64,
    phoff: u64,
    /// (type, flags, offset, vaddr, filesz, memsz, align)
    phdrs: Vec<(u32, u32, u64, u64, u64, u64, u64)>,
    len: usize,
    extra: Vec<(usize, Vec<u8>)>,
}

impl Elf {
    fn bytes(&self) -> Vec<u8> {
        let mut f = vec![0u8; self.len];
        let put = |f: &mut Vec<u8>, at: usize, b: &[u8]| f[at..at + b.len()].copy_from_slice(b);
        put(&mut f, 0, b"\x7fELF");
        f[4] = if self.bits64 { 2 } else { 1 };
        f[5] = 1;
        f[6] = 1;
        put(&mut f, 16, &self.e_type.to_le_bytes());
        put(
            &mut f,
            18,
            &(if self.bits64 { 62u16 } else { 3 }).to_le_bytes(),
        );
        put(&mut f, 20, &1u32.to_le_bytes());
        let n = self.phdrs.len() as u16;
        if self.bits64 {
            put(&mut f, 24, &self.entry.to_le_bytes());
            put(&mut f, 32, &self.phoff.to_le_bytes());
            put(&mut f, 52, &64u16.to_le_bytes());
            put(&mut f, 54, &56u16.to_le_bytes());
            put(&mut f, 56, &n.to_le_bytes());
        } else {
            put(&mut f, 24, &(self.entry as u32).to_le_bytes());
            put(&mut f, 28, &(self.phoff as u32).to_le_bytes());
            put(&mut f, 40, &52u16.to_le_bytes());
            put(&mut f, 42, &32u16.to_le_bytes());
            put(&mut f, 44, &n.to_le_bytes());
        }
        for (i, &(t, fl, off, va, fs, ms, al)) in self.phdrs.iter().enumerate() {
            if self.bits64 {
                let at = self.phoff as usize + 56 * i;
                put(&mut f, at, &t.to_le_bytes());
                put(&mut f, at + 4, &fl.to_le_bytes());
                for (j, v) in [off, va, va, fs, ms, al].iter().enumerate() {
                    put(&mut f, at + 8 + 8 * j, &v.to_le_bytes());
                }
            } else {
                let at = self.phoff as usize + 32 * i;
                for (j, v) in [
                    t, off as u32, va as u32, va as u32, fs as u32, ms as u32, fl, al as u32,
                ]
                .iter()
                .enumerate()
                {
                    put(&mut f, at + 4 * j, &v.to_le_bytes());
                }
            }
        }
        for (at, b) in &self.extra {
            put(&mut f, *at, b);
        }
        f
    }
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const PT_TLS: u32 = 7;
const PT_GNU_STACK: u32 = 0x6474_e551;
const R: u32 = 4;
const RW: u32 = 6;
const RX: u32 = 5;

fn elf_seeds() {
    let exec64 = Elf {
        bits64: true,
        e_type: 2,
        entry: 0x401010,
        phoff: 64,
        phdrs: vec![
            (PT_LOAD, R, 0, 0x400000, 0x200, 0x200, 0x1000),
            (PT_LOAD, RX, 0x1000, 0x401000, 0x100, 0x100, 0x1000),
            (PT_LOAD, RW, 0x2000, 0x402000, 0x80, 0x3000, 0x1000),
            (PT_TLS, R, 0x2000, 0x402000, 0x10, 0x20, 8),
            (PT_GNU_STACK, RW, 0, 0, 0, 0, 16),
        ],
        len: 0x2080,
        extra: vec![],
    };
    write("elf_load", "synthetic-static-x86_64", &exec64.bytes());
    let exec32 = Elf {
        bits64: false,
        e_type: 2,
        entry: 0x8049010,
        phoff: 52,
        phdrs: vec![
            (PT_LOAD, RX, 0, 0x8048000, 0x1100, 0x1100, 0x1000),
            (PT_LOAD, RW, 0x2000, 0x804a000, 0x40, 0x2000, 0x1000),
            (PT_GNU_STACK, RW, 0, 0, 0, 0, 16),
        ],
        len: 0x2040,
        extra: vec![],
    };
    write("elf_load", "synthetic-static-i386", &exec32.bytes());
    let pie = Elf {
        bits64: true,
        e_type: 3,
        entry: 0x1010,
        phoff: 64,
        phdrs: vec![
            (PT_PHDR, R, 64, 64, 4 * 56, 4 * 56, 8),
            (PT_LOAD, R, 0, 0, 0x300, 0x300, 0x200000),
            (PT_LOAD, RX, 0x1000, 0x1000, 0x100, 0x100, 0x200000),
            (PT_DYNAMIC, RW, 0x2000, 0x2000, 0x20, 0x20, 8),
        ],
        len: 0x2020,
        extra: vec![],
    };
    write("elf_load", "synthetic-static-pie", &pie.bytes());
    let interp = Elf {
        bits64: true,
        e_type: 3,
        entry: 0x1010,
        phoff: 64,
        phdrs: vec![
            (PT_INTERP, R, 0x200, 0x200, 28, 28, 1),
            (PT_LOAD, R, 0, 0, 0x300, 0x300, 0x1000),
            (PT_LOAD, RX, 0x1000, 0x1000, 0x100, 0x100, 0x1000),
            (PT_DYNAMIC, RW, 0x2000, 0x2000, 0x20, 0x20, 8),
        ],
        len: 0x2020,
        // DT_NEEDED 1, then DT_NULL.
        extra: vec![
            (0x200, b"/lib64/ld-linux-x86-64.so.2\0".to_vec()),
            (0x2000, [1u64.to_le_bytes(), 1u64.to_le_bytes()].concat()),
        ],
    };
    write("elf_load", "synthetic-dynamic", &interp.bytes());
    let far_phdrs = Elf {
        bits64: true,
        e_type: 2,
        entry: 0x401000,
        phoff: 0x1100,
        phdrs: vec![(PT_LOAD, RX, 0x1000, 0x401000, 0x100, 0x100, 0x1000)],
        len: 0x1200,
        extra: vec![],
    };
    write("elf_load", "synthetic-phdrs-not-loaded", &far_phdrs.bytes());
}

fn syscall_seeds() {
    let elf_dir = corpus("elf_load");
    let tiny64 =
        fs::read(elf_dir.join("elf-tiny-x86_64")).expect("run seeds/make-elf-seeds.sh first");
    let tiny32 =
        fs::read(elf_dir.join("elf-tiny-i386")).expect("run seeds/make-elf-seeds.sh first");
    let path = b"prog\0";
    use Arg::{MinusOne, Raw, Scratch, Small, Zero};
    let x = |n: X| n as u16;
    let i = |n: I| n as u16;

    // Files through hostd: open, read, fstat, lseek, pread, close; then the
    // same against a hostile hostd.
    let mut calls = Vec::new();
    encode_call(&mut calls, x(X::open), &[Scratch(0), Zero, Zero]);
    encode_call(&mut calls, x(X::read), &[Small(3), Scratch(8), Small(64)]);
    encode_call(&mut calls, x(X::fstat), &[Small(3), Scratch(64)]);
    encode_call(&mut calls, x(X::lseek), &[Small(3), Small(16), Zero]);
    encode_call(
        &mut calls,
        x(X::pread64),
        &[Small(3), Scratch(8), Small(32), Small(4)],
    );
    encode_call(
        &mut calls,
        x(X::getdents64),
        &[Small(3), Scratch(8), Raw(512)],
    );
    encode_call(&mut calls, x(X::close), &[Small(3)]);
    for (hostile, name) in [
        (false, "x86_64-files"),
        (true, "x86_64-files-hostile-hostd"),
    ] {
        let mut s = Vec::new();
        encode_header(&mut s, false, hostile, path, &tiny64);
        s.extend_from_slice(&calls);
        write("syscall", name, &s);
    }

    // Stdio, pipes, dup.
    let mut s = Vec::new();
    encode_header(&mut s, false, false, b"hello\n", &[]);
    encode_call(&mut s, x(X::write), &[Small(1), Scratch(0), Small(6)]);
    encode_call(&mut s, x(X::pipe2), &[Scratch(16), Zero]);
    encode_call(&mut s, x(X::write), &[Small(4), Scratch(0), Small(6)]);
    encode_call(&mut s, x(X::read), &[Small(3), Scratch(32), Small(6)]);
    encode_call(&mut s, x(X::dup2), &[Small(3), Small(9)]);
    encode_call(&mut s, x(X::read), &[Small(0), Scratch(32), Small(20)]);
    encode_call(&mut s, x(X::close), &[Small(4)]);
    encode_call(&mut s, x(X::read), &[Small(9), Scratch(32), Small(6)]);
    write("syscall", "x86_64-stdio-pipes", &s);

    // Memory.
    let mut s = Vec::new();
    encode_header(&mut s, false, false, &[], &[]);
    encode_call(&mut s, x(X::brk), &[Zero]);
    encode_call(
        &mut s,
        x(X::mmap),
        &[Zero, Raw(3 << 12), Small(3), Small(0x22), MinusOne, Zero],
    );
    encode_call(&mut s, x(X::mprotect), &[Scratch(0), Raw(4096), Small(1)]);
    encode_call(
        &mut s,
        x(X::mremap),
        &[Scratch(0), Raw(4096), Raw(8192), Small(1)],
    );
    encode_call(&mut s, x(X::munmap), &[Scratch(0), Raw(8192)]);
    encode_call(&mut s, x(X::madvise), &[Scratch(0), Raw(4096), Small(4)]);
    write("syscall", "x86_64-memory", &s);

    // Signals: a handler for SIGUSR1, mask, kill, pause-like waits, alarm.
    let mut sa = vec![0u8; 32];
    sa[..8].copy_from_slice(&0x401000u64.to_le_bytes());
    sa[8..16].copy_from_slice(&0x0400_0000u64.to_le_bytes()); // SA_RESTORER
    let mut s = Vec::new();
    encode_header(&mut s, false, false, &sa, &[]);
    encode_call(
        &mut s,
        x(X::rt_sigaction),
        &[Small(10), Scratch(0), Zero, Small(8)],
    );
    encode_call(
        &mut s,
        x(X::rt_sigprocmask),
        &[Zero, Scratch(8), Scratch(16), Small(8)],
    );
    encode_call(&mut s, x(X::getpid), &[]);
    encode_call(&mut s, x(X::kill), &[Small(7), Small(10)]);
    encode_call(&mut s, x(X::alarm), &[Small(1)]);
    encode_call(&mut s, x(X::nanosleep), &[Scratch(24), Zero]);
    s.push(0xf0);
    encode_call(&mut s, x(X::rt_sigreturn), &[]);
    write("syscall", "x86_64-signals", &s);

    // Processes: fork, wait, a thread, exit.
    let mut s = Vec::new();
    encode_header(&mut s, false, false, &[], &[]);
    encode_call(&mut s, x(X::fork), &[]);
    encode_call(&mut s, x(X::wait4), &[MinusOne, Scratch(0), Small(1), Zero]);
    encode_call(
        &mut s,
        x(X::clone),
        &[Raw(0x3d0f00), Scratch(200), Zero, Zero, Zero],
    );
    encode_call(&mut s, x(X::futex), &[Scratch(0), Zero, Zero, Zero]);
    encode_call(&mut s, x(X::set_tid_address), &[Scratch(0)]);
    encode_call(&mut s, x(X::exit_group), &[Small(3)]);
    write("syscall", "x86_64-processes", &s);

    // Time, identity, the system.
    let mut s = Vec::new();
    encode_header(&mut s, false, false, &[], &[]);
    encode_call(&mut s, x(X::clock_gettime), &[Small(1), Scratch(0)]);
    encode_call(&mut s, x(X::gettimeofday), &[Scratch(0), Zero]);
    encode_call(&mut s, x(X::uname), &[Scratch(0)]);
    encode_call(&mut s, x(X::getcwd), &[Scratch(0), Raw(100)]);
    encode_call(&mut s, x(X::getrandom), &[Scratch(0), Small(16), Zero]);
    encode_call(&mut s, x(X::prlimit64), &[Zero, Small(3), Zero, Scratch(0)]);
    encode_call(&mut s, x(X::arch_prctl), &[Raw(0x1002), Scratch(0)]);
    encode_call(&mut s, x(X::sysinfo), &[Scratch(0)]);
    write("syscall", "x86_64-time-ids", &s);

    // execve of the tiny programs, either ABI.
    let mut s = Vec::new();
    encode_header(&mut s, false, false, path, &tiny64);
    encode_call(&mut s, x(X::execve), &[Scratch(0), Zero, Zero]);
    encode_call(&mut s, x(X::exit), &[Zero]);
    write("syscall", "x86_64-execve", &s);
    let mut s = Vec::new();
    encode_header(&mut s, true, false, path, &tiny32);
    encode_call(&mut s, i(I::execve), &[Scratch(0), Zero, Zero]);
    encode_call(&mut s, i(I::exit), &[Zero]);
    write("syscall", "i386-execve", &s);

    // i386: register pairs and 32-bit layouts.
    let mut s = Vec::new();
    encode_header(&mut s, true, false, path, &tiny32);
    encode_call(&mut s, i(I::open), &[Scratch(0), Zero, Zero]);
    encode_call(
        &mut s,
        i(I::_llseek),
        &[Small(3), Zero, Small(8), Scratch(8), Zero],
    );
    encode_call(&mut s, i(I::fstat64), &[Small(3), Scratch(16)]);
    encode_call(
        &mut s,
        i(I::mmap2),
        &[Zero, Raw(4096), Small(3), Small(0x22), MinusOne, Zero],
    );
    encode_call(&mut s, i(I::clock_gettime64), &[Small(0), Scratch(16)]);
    encode_call(&mut s, i(I::set_thread_area), &[Scratch(16)]);
    encode_call(&mut s, i(I::exit_group), &[Small(1)]);
    write("syscall", "i386-files-time", &s);
}

/// Checkpoint images of small x86_64 jobs, taken by the manager's own code
/// on a fake node: the records `hostd` stores.
fn checkpoint_seeds() {
    use sion_app_mgr::checkpoint::encode_record;
    use sion_app_mgr::job::CheckpointPart;
    use sion_app_mgr::process::Process;
    use sion_app_mgr::process::fake::FakeNode;
    use sion_app_mgr::vm::AddressSpace;
    for (name, pages) in [("small", 1u64), ("sparse", 5)] {
        let mut node = FakeNode::default();
        node.first_pid = 7;
        {
            let layout = sion_app_mgr::abi::UserLayout::for_abi(sion_app_mgr::Abi::X86_64);
            let mut p = Process::new(
                &mut node,
                1,
                7,
                sion_app_mgr::Abi::X86_64,
                AddressSpace::new(layout, 4 << 20),
            );
            let m = p
                .syscall(
                    sion_app_mgr::Abi::X86_64,
                    X::mmap as u64,
                    [0, pages * 4096, 3, 0x22, u64::MAX, 0],
                )
                .expect("mmap answers") as u64;
            p.load_mem(m, b"first page").expect("mapped");
            p.load_mem(m + (pages - 1) * 4096 + 100, b"last page")
                .expect("mapped");
            let brk = p
                .syscall(sion_app_mgr::Abi::X86_64, X::brk as u64, [0; 6])
                .expect("brk answers") as u64;
            p.syscall(
                sion_app_mgr::Abi::X86_64,
                X::brk as u64,
                [brk + 8192, 0, 0, 0, 0, 0],
            );
            p.task.sigactions.insert(10, vec![1, 2, 3, 4]);
            p.take_checkpoint().expect("a checkpoint");
        }
        let image: Vec<u8> = node
            .sent
            .iter()
            .filter_map(|m| match m {
                NodeMsg::Checkpoint(
                    part @ (CheckpointPart::Header(_)
                    | CheckpointPart::Pages { .. }
                    | CheckpointPart::End { .. }),
                ) => encode_record(part),
                _ => None,
            })
            .flatten()
            .collect();
        write("checkpoint", name, &image);
    }
}

fn main() {
    datagram_seeds();
    job_seeds();
    elf_seeds();
    syscall_seeds();
    checkpoint_seeds();
    for target in ["datagram", "job_frame", "elf_load", "syscall", "checkpoint"] {
        let dir = corpus(target);
        let (n, bytes) = fs::read_dir(&dir)
            .expect("corpus")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .fold((0, 0), |(n, b), l| (n + 1, b + l));
        println!("{target}: {n} files, {bytes} bytes in {}", dir.display());
    }
}
