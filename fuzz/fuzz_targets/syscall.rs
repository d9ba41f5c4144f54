//! The system-call decoder and handlers on hostile registers: what a job's
//! program (any static Linux binary a submitter sends) can ask the node's
//! App-Program Manager, and what a hostile `hostd` can answer.
//!
//! A job's process of either ABI runs on a [`FakeNode`] (the crate's
//! host-side node: page-granular memory, a clock, a `hostd` given as a
//! function) with a 4 MiB memory limit, a read-write scratch buffer and a
//! `hostd` serving one file. The input (format written by
//! [`sion_fuzz::syscall`]):
//!
//! ```text
//! [abi: 1]              bit 0: i386, else x86_64
//! [host: 1]             bit 0: hostd answers every file request with
//!                       hostile results (any value, data of any length,
//!                       now and then another request's id)
//! [s: 1] [s × 16 bytes]  the scratch buffer's first bytes
//! [f: 1] [f × 64 bytes]  the file hostd serves (what open/read/stat see,
//!                       and what execve loads)
//! then up to 64 steps:
//!   [k: 1]  0xf0: a timer deadline passes; 0xf1: hostd's bytes are
//!           readable; 0xf2: the current task stops at a tick; else a
//!           system call of task k % tasks, which is:
//!   [sel: 1] 0xff: the number follows as u16 LE; else row sel % rows of
//!           the system-call table (`app-mgr/src/syscall/table.rs`)
//!   6 × argument: [kind: 1] and its bytes (`sion_fuzz::syscall::arg`)
//! ```
//!
//! Each step is handled as the node's loop does ([`Process::handle`]:
//! decode the registers with the ABI's widths, serve the call, park a call
//! that must wait, deliver signals, serve parked calls again). Any panic,
//! arithmetic overflow or allocation beyond libFuzzer's limits is a finding.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sion_app_mgr::Abi;
use sion_app_mgr::abi::UserLayout;
use sion_app_mgr::job::{self, FileReply, FileRequest, FileStat, FsStat, HostMsg};
use sion_app_mgr::process::fake::FakeNode;
use sion_app_mgr::process::{Event, Process};
use sion_app_mgr::syscall::table::ROWS;
use sion_app_mgr::vm::AddressSpace;
use sion_fuzz::Input;
use sion_fuzz::syscall::{SCRATCH_LEN, arg};

/// The job's memory limit.
const LIMIT: u64 = 4 << 20;
/// The first process's pid.
const PID: u64 = 7;
/// Most steps of one input.
const MAX_STEPS: usize = 64;

/// A `hostd` serving `file` for every path (honest), or answering with
/// hostile values.
struct Host {
    file: Vec<u8>,
    hostile: bool,
    offsets: BTreeMap<u64, u64>,
    next_handle: u64,
    rng: u64,
}

impl Host {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn stat(&self) -> Vec<u8> {
        job::encode_stat(&FileStat {
            ino: 42,
            mode: 0o100_755,
            nlink: 1,
            uid: 1000,
            gid: 100,
            size: self.file.len() as i64,
            blksize: 4096,
            blocks: (self.file.len() as i64 + 511) / 512,
            ..FileStat::default()
        })
    }

    fn read_at(&self, offset: u64, len: u32) -> (i64, Vec<u8>) {
        let start = (offset as usize).min(self.file.len());
        let end = start.saturating_add(len as usize).min(self.file.len());
        let data = self.file[start..end].to_vec();
        (data.len() as i64, data)
    }

    fn serve(&mut self, id: u64, request: FileRequest) -> FileReply {
        let (result, data) = if self.hostile {
            let r = self.next();
            let result = match r % 8 {
                0 => i64::MIN,
                1 => -1 - (r >> 8) as i64 % 5000,
                2 => i64::MAX,
                3 => (r >> 8) as i64 % 200_000,
                4 => 1 << 40,
                5 => 0,
                _ => (r >> 8) as i64 % 64,
            };
            let len = ((r >> 20) as usize) % (self.file.len() + 1);
            (result, self.file[..len].to_vec())
        } else {
            match request {
                FileRequest::Open { .. } => {
                    self.next_handle += 1;
                    self.offsets.insert(self.next_handle, 0);
                    (self.next_handle as i64, vec![0])
                }
                FileRequest::Read { handle, len } => {
                    let off = self.offsets.get(&handle).copied().unwrap_or(0);
                    let (n, data) = self.read_at(off, len);
                    self.offsets.insert(handle, off + n as u64);
                    (n, data)
                }
                FileRequest::Pread { len, offset, .. } if offset >= 0 => {
                    self.read_at(offset as u64, len)
                }
                FileRequest::Write { data, .. } | FileRequest::Pwrite { data, .. } => {
                    (data.len() as i64, Vec::new())
                }
                FileRequest::Lseek {
                    handle,
                    offset,
                    whence,
                } => {
                    let cur = self.offsets.get(&handle).copied().unwrap_or(0) as i64;
                    let base = match whence {
                        0 => Some(0),
                        1 => Some(cur),
                        2 => Some(self.file.len() as i64),
                        _ => None,
                    };
                    match base.and_then(|b| b.checked_add(offset)).filter(|&o| o >= 0) {
                        Some(o) => {
                            self.offsets.insert(handle, o as u64);
                            (o, Vec::new())
                        }
                        None => (-22, Vec::new()),
                    }
                }
                FileRequest::Stat { .. } | FileRequest::Fstat { .. } => (0, self.stat()),
                FileRequest::Statfs { .. } => (
                    0,
                    job::encode_fs_stat(&FsStat {
                        bsize: 4096,
                        frsize: 4096,
                        blocks: 1000,
                        namelen: 255,
                        ..FsStat::default()
                    }),
                ),
                FileRequest::HandlePath { .. } => (7, b"/home/u".to_vec()),
                FileRequest::Readlink { .. } | FileRequest::Pread { .. } => (-22, Vec::new()),
                FileRequest::Getdents64 { .. } => (0, Vec::new()),
                _ => (0, Vec::new()),
            }
        };
        // A hostile hostd also answers another request now and then.
        let id = if self.hostile && self.next() % 16 == 0 {
            id.wrapping_add(1)
        } else {
            id
        };
        FileReply { id, result, data }
    }
}

/// One argument register.
fn argument(input: &mut Input<'_>, scratch: u64) -> u64 {
    let kind = input.u8();
    match kind & 7 {
        arg::SMALL => input.u8() as i8 as i64 as u64,
        arg::SCRATCH => scratch + 8 * u64::from(input.u8()),
        arg::RAW64 => input.u64(),
        arg::RAW32 => u64::from(input.u32()),
        arg::ZERO => 0,
        arg::MINUS_ONE => u64::MAX,
        arg::BAD_POINTER => match input.u8() % 4 {
            0 => 0x10,
            1 => 1 << 47,
            2 => u64::MAX - 7,
            _ => 0xffff_ffff,
        },
        _ => scratch + SCRATCH_LEN - u64::from(input.u8()),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let abi = if input.u8() & 1 == 1 {
        Abi::I386
    } else {
        Abi::X86_64
    };
    let hostile = input.u8() & 1 == 1;
    let s = usize::from(input.u8()) * 16;
    let scratch_bytes = input.bytes(s.min(SCRATCH_LEN as usize)).to_vec();
    let f = usize::from(input.u8()) * 64;
    let file = input.bytes(f).to_vec();

    let mut host = Host {
        file,
        hostile,
        offsets: BTreeMap::new(),
        next_handle: 2,
        rng: 0x9e37_79b9_7f4a_7c15 ^ data.len() as u64,
    };
    let mut node = FakeNode::default();
    node.first_pid = PID;
    node.files = Some(Box::new(move |id, req| host.serve(id, req)));
    node.inbox
        .push_back(HostMsg::Stdin(b"input line\n".to_vec()));
    node.inbox.push_back(HostMsg::StdinEof);
    let vm = AddressSpace::new(UserLayout::for_abi(abi), LIMIT);
    let mut p = Process::new(&mut node, 1, PID, abi, vm);
    p.task.cwd = b"/home/u/job".to_vec();
    p.task.exe = b"/home/u/job/prog".to_vec();
    p.task.uid = 1000;
    p.task.gid = 100;
    p.realtime_ns = 1_700_000_000_000_000_000;

    // The scratch buffer: anonymous read-write memory, as a program's.
    let mmap = match abi {
        Abi::X86_64 => syscalls::x86_64::Sysno::mmap as u64,
        Abi::I386 => syscalls::x86::Sysno::mmap2 as u64,
    };
    let scratch = p
        .syscall(abi, mmap, [0, SCRATCH_LEN, 3, 0x22, u64::MAX, 0])
        .expect("mmap answers");
    assert!(scratch > 0, "mmap of the scratch buffer failed: {scratch}");
    let scratch = scratch as u64;
    p.load_mem(scratch, &scratch_bytes)
        .expect("scratch is mapped");

    for _ in 0..MAX_STEPS {
        if input.is_empty() || p.live_tasks() == 0 {
            break;
        }
        let k = input.u8();
        let event = match k {
            0xf0 => Event::Timeout,
            0xf1 => Event::HostReadable,
            0xf2 => Event::Interrupted(p.task.pid),
            _ => {
                let pids = p.pids();
                let pid = pids[usize::from(k) % pids.len()];
                let task_abi = p.task_of(pid).map_or(abi, |t| t.abi);
                let sel = input.u8();
                let nr = if sel == 0xff {
                    u64::from(input.u16())
                } else {
                    let row = &ROWS[usize::from(sel) % ROWS.len()];
                    let x = row.x86_64.map(|x| x as u64);
                    let i = row.i386.map(|i| i as u64);
                    match task_abi {
                        Abi::X86_64 => x.or(i),
                        Abi::I386 => i.or(x),
                    }
                    .unwrap_or(0)
                };
                let mut args = [0u64; 6];
                for a in &mut args {
                    *a = argument(&mut input, scratch);
                }
                Event::Syscall {
                    pid,
                    abi: task_abi,
                    nr,
                    args,
                }
            }
        };
        if p.handle(event).is_some() {
            break;
        }
    }
});
