//! Memory calls, served on the node: `brk`, `mmap`/`mmap2`/old `mmap`,
//! `munmap`, `mprotect`, `mremap`, `madvise`. The bookkeeping behind them is
//! [`crate::vm::AddressSpace`].

use super::table::Call;
use super::{Args, Syscall};
use crate::abi::PAGE_SIZE;

/// Decodes the memory family; `None` for calls of other families.
pub(super) fn decode(call: Call, a: &Args) -> Option<Syscall> {
    Some(match call {
        Call::Brk => Syscall::Brk { addr: a.word(0) },
        Call::Mmap => Syscall::Mmap {
            addr: a.word(0),
            length: a.word(1),
            prot: a.word(2),
            flags: a.word(3),
            fd: a.int(4),
            offset: a.word(5),
        },
        // mmap2: the offset is in units of 4096 bytes whatever the page size
        // (mmap2(2)), so a 32-bit program reaches 2^44-byte offsets.
        Call::Mmap2 => Syscall::Mmap {
            addr: a.word(0),
            length: a.word(1),
            prot: a.word(2),
            flags: a.word(3),
            fd: a.int(4),
            offset: a.word(5) * PAGE_SIZE,
        },
        Call::OldMmap => Syscall::OldMmap { args: a.word(0) },
        Call::Munmap => Syscall::Munmap {
            addr: a.word(0),
            length: a.word(1),
        },
        Call::Mprotect => Syscall::Mprotect {
            addr: a.word(0),
            len: a.word(1),
            prot: a.word(2),
        },
        Call::Mremap => Syscall::Mremap {
            old_address: a.word(0),
            old_size: a.word(1),
            new_size: a.word(2),
            flags: a.word(3),
            new_address: a.word(4),
        },
        Call::Madvise => Syscall::Madvise {
            addr: a.word(0),
            length: a.word(1),
            advice: a.int(2),
        },
        _ => return None,
    })
}
