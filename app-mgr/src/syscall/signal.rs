//! Signal calls, served on the node: `rt_sigaction`, `rt_sigprocmask`,
//! `sigaltstack`.

use super::table::Call;
use super::{Args, Syscall};

/// Decodes the signal family; `None` for calls of other families.
pub(super) fn decode(call: Call, a: &Args) -> Option<Syscall> {
    Some(match call {
        Call::RtSigaction => Syscall::RtSigaction {
            signum: a.int(0),
            act: a.word(1),
            oldact: a.word(2),
            sigsetsize: a.word(3),
        },
        Call::RtSigprocmask => Syscall::RtSigprocmask {
            how: a.int(0),
            set: a.word(1),
            oldset: a.word(2),
            sigsetsize: a.word(3),
        },
        Call::Sigaltstack => Syscall::Sigaltstack {
            ss: a.word(0),
            old_ss: a.word(1),
        },
        _ => return None,
    })
}
