//! Process calls, served on the node: `exit`, `exit_group`, `arch_prctl`,
//! `set_thread_area`, `set_tid_address`, `set_robust_list`, `rseq`, `prctl`,
//! `uname`, the id calls, rlimits, `getrandom`, `sched_yield`, `kill`/`tkill`/
//! `tgkill` and `futex`.

use super::table::Call;
use super::{Args, IdKind, RlimitLayout, Syscall, TimeLayout};
use crate::abi::Abi;

/// Decodes the process family; `None` for calls of other families.
pub(super) fn decode(call: Call, a: &Args) -> Option<Syscall> {
    let id = |which, legacy16| Syscall::GetId { which, legacy16 };
    Some(match call {
        Call::Exit => Syscall::Exit { status: a.int(0) },
        Call::ExitGroup => Syscall::ExitGroup { status: a.int(0) },
        Call::ArchPrctl => Syscall::ArchPrctl {
            code: a.int(0),
            addr: a.word(1),
        },
        Call::SetThreadArea => Syscall::SetThreadArea { u_info: a.word(0) },
        Call::SetTidAddress => Syscall::SetTidAddress { tidptr: a.word(0) },
        Call::SetRobustList => Syscall::SetRobustList {
            head: a.word(0),
            len: a.word(1),
        },
        Call::Rseq => Syscall::Rseq {
            rseq: a.word(0),
            rseq_len: a.uint(1),
            flags: a.int(2),
            sig: a.uint(3),
        },
        Call::Prctl => Syscall::Prctl {
            option: a.int(0),
            arg2: a.word(1),
            arg3: a.word(2),
            arg4: a.word(3),
            arg5: a.word(4),
        },
        Call::Uname => Syscall::Uname { buf: a.word(0) },
        Call::Getpid => Syscall::Getpid,
        Call::Getppid => Syscall::Getppid,
        Call::Umask => Syscall::Umask { mask: a.uint(0) },
        Call::Gettid => Syscall::Gettid,
        Call::Getuid => id(IdKind::Uid, false),
        Call::Geteuid => id(IdKind::Euid, false),
        Call::Getgid => id(IdKind::Gid, false),
        Call::Getegid => id(IdKind::Egid, false),
        Call::Getuid16 => id(IdKind::Uid, true),
        Call::Geteuid16 => id(IdKind::Euid, true),
        Call::Getgid16 => id(IdKind::Gid, true),
        Call::Getegid16 => id(IdKind::Egid, true),
        Call::Getrlimit => Syscall::Getrlimit {
            resource: a.uint(0),
            rlim: a.word(1),
            layout: match a.abi() {
                Abi::X86_64 => RlimitLayout::Rlimit64,
                Abi::I386 => RlimitLayout::Rlimit32,
            },
        },
        Call::OldGetrlimit => Syscall::Getrlimit {
            resource: a.uint(0),
            rlim: a.word(1),
            layout: RlimitLayout::Rlimit32Clamped,
        },
        Call::Prlimit64 => Syscall::Prlimit64 {
            pid: a.int(0),
            resource: a.uint(1),
            new_limit: a.word(2),
            old_limit: a.word(3),
        },
        Call::Getrandom => Syscall::Getrandom {
            buf: a.word(0),
            buflen: a.word(1),
            flags: a.uint(2),
        },
        Call::SchedYield => Syscall::SchedYield,
        Call::Kill => Syscall::Kill {
            pid: a.int(0),
            sig: a.int(1),
        },
        Call::Tkill => Syscall::Tkill {
            tid: a.int(0),
            sig: a.int(1),
        },
        Call::Tgkill => Syscall::Tgkill {
            tgid: a.int(0),
            tid: a.int(1),
            sig: a.int(2),
        },
        Call::Futex | Call::FutexTime64 => Syscall::Futex {
            uaddr: a.word(0),
            futex_op: a.int(1),
            val: a.uint(2),
            timeout: a.word(3),
            uaddr2: a.word(4),
            val3: a.uint(5),
            time: if call == Call::FutexTime64 {
                TimeLayout::Time64
            } else {
                a.native_time()
            },
        },
        _ => return None,
    })
}
