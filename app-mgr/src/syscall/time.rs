//! Time calls, served on the node: `clock_gettime`, `clock_getres`,
//! `gettimeofday`, `time`, `nanosleep`, `clock_nanosleep`, with the i386
//! `*_time64` forms.

use super::table::Call;
use super::{Args, Syscall, TimeLayout};

/// Decodes the time family; `None` for calls of other families.
pub(super) fn decode(call: Call, a: &Args) -> Option<Syscall> {
    let native = a.native_time();
    let t64 = TimeLayout::Time64;
    Some(match call {
        Call::ClockGettime => Syscall::ClockGettime {
            clockid: a.int(0),
            tp: a.word(1),
            time: native,
        },
        Call::ClockGettime64 => Syscall::ClockGettime {
            clockid: a.int(0),
            tp: a.word(1),
            time: t64,
        },
        Call::ClockGetres => Syscall::ClockGetres {
            clockid: a.int(0),
            res: a.word(1),
            time: native,
        },
        Call::ClockGetresTime64 => Syscall::ClockGetres {
            clockid: a.int(0),
            res: a.word(1),
            time: t64,
        },
        Call::Gettimeofday => Syscall::Gettimeofday {
            tv: a.word(0),
            tz: a.word(1),
            time: native,
        },
        Call::Time => Syscall::Time {
            tloc: a.word(0),
            time: native,
        },
        Call::Nanosleep => Syscall::Nanosleep {
            req: a.word(0),
            rem: a.word(1),
            time: native,
        },
        Call::ClockNanosleep | Call::ClockNanosleepTime64 => Syscall::ClockNanosleep {
            clockid: a.int(0),
            flags: a.int(1),
            req: a.word(2),
            rem: a.word(3),
            time: if call == Call::ClockNanosleepTime64 {
                t64
            } else {
                native
            },
        },
        _ => return None,
    })
}
