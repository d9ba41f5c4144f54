//! How the kernel hands an application's Linux system calls to its manager
//! (the App-Program Manager), as the SiON paper describes (§4.2.2: "the call is
//! turned into a message in the kernel and sent to the Application Program
//! Manager").
//!
//! An application's `syscall` (x86_64 ABI) or `int 0x80` (i386 ABI) blocks it
//! and queues a message for its manager: tag [`TAG_LINUX_SYSCALL`], sender the
//! application's pid, `wants_reply` set, payload a [`LinuxSyscall`]. The manager
//! answers with `reply(pid, &ret.to_le_bytes())` (an `i64`: the value or
//! `-errno`), which resumes the application with that result in `rax`.
//! When an application ends, its manager gets [`TAG_APP_EXITED`] with the
//! wait status (`u64`, little-endian) as payload.

/// Tag of a Linux system-call message.
pub const TAG_LINUX_SYSCALL: u64 = 0x4C53_5953; // "LSYS"
/// Tag of the message that an application ended.
pub const TAG_APP_EXITED: u64 = 0x4145_5849; // "AEXI"

/// `app_start` ABI: 64-bit code, `syscall` with the x86_64 convention.
pub const ABI_X86_64: u64 = 64;
/// `app_start` ABI: 32-bit code in compatibility mode, `int 0x80`.
pub const ABI_I386: u64 = 32;

/// Page may be read.
pub const PROT_READ: u64 = 1;
/// Page may be written.
pub const PROT_WRITE: u64 = 2;
/// Page may be executed.
pub const PROT_EXEC: u64 = 4;

/// `app_set_tls` kind: set the FS base (x86_64 TLS).
pub const TLS_FS_BASE: u64 = 0;
/// `app_set_tls` kind: an i386 TLS segment.
pub const TLS_I386_SEGMENT: u64 = 1;

/// One trapped Linux system call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinuxSyscall {
    /// [`ABI_X86_64`] (`syscall`, or `int 0x80` from 64-bit code, which Linux
    /// treats as i386) — see `abi` — or [`ABI_I386`].
    pub abi: u64,
    /// The system-call number (`rax`/`eax`).
    pub nr: u64,
    /// The six arguments: `rdi, rsi, rdx, r10, r8, r9` (x86_64) or
    /// `ebx, ecx, edx, esi, edi, ebp` (i386, zero-extended).
    pub args: [u64; 6],
    /// The instruction after the call (for diagnostics).
    pub rip: u64,
}

impl LinuxSyscall {
    /// Encoded length in bytes.
    pub const LEN: usize = 72;

    /// Nine little-endian `u64`s: abi, nr, args, rip.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let words = [
            self.abi,
            self.nr,
            self.args[0],
            self.args[1],
            self.args[2],
            self.args[3],
            self.args[4],
            self.args[5],
            self.rip,
        ];
        for (i, w) in words.into_iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Decodes; `None` if `bytes` is shorter than [`LinuxSyscall::LEN`].
    pub fn decode(bytes: &[u8]) -> Option<LinuxSyscall> {
        let w = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        Some(LinuxSyscall {
            abi: w(0)?,
            nr: w(1)?,
            args: [w(2)?, w(3)?, w(4)?, w(5)?, w(6)?, w(7)?],
            rip: w(8)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_syscall_round_trips() {
        let s = LinuxSyscall {
            abi: ABI_I386,
            nr: 4,
            args: [1, 2, 3, 4, 5, 6],
            rip: 0x8049000,
        };
        assert_eq!(LinuxSyscall::decode(&s.encode()), Some(s));
        assert_eq!(LinuxSyscall::decode(&s.encode()[..71]), None);
    }
}
