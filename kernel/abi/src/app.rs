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
//!
//! A CPU fault in an application (a page fault, a divide error, an invalid
//! opcode, …) does not end it: it stops, and its manager gets
//! [`TAG_APP_FAULT`] with an [`AppFault`] (`wants_reply` set). The manager
//! either delivers the signal (`app_set_regs` to enter the program's handler,
//! then `reply`) or ends it with `app_kill`. While an application is stopped in
//! a system call or a fault, `app_regs`/`app_set_regs` read and replace its
//! saved user registers ([`AppRegs`]); a reply after `app_set_regs` resumes it
//! with those registers (the reply's value is then not put in `rax`).

/// Tag of a Linux system-call message.
pub const TAG_LINUX_SYSCALL: u64 = 0x4C53_5953; // "LSYS"
/// Tag of the message that an application ended.
pub const TAG_APP_EXITED: u64 = 0x4145_5849; // "AEXI"

/// Tag of the message that an application stopped at a timer tick because
/// its manager asked (`app_interrupt`); the payload is its `rip` (`u64`).
pub const TAG_APP_INTERRUPTED: u64 = 0x4149_4E54; // "AINT"

/// Tag of the message that an application stopped on a CPU fault ([`AppFault`]).
pub const TAG_APP_FAULT: u64 = 0x4146_4C54; // "AFLT"

/// `app_start` ABI: 64-bit code, `syscall` with the x86_64 convention.
pub const ABI_X86_64: u64 = 64;
/// `app_start` ABI: 32-bit code in compatibility mode, `int 0x80`.
pub const ABI_I386: u64 = 32;
/// `app_start` flag, ORed into the ABI: on a CPU fault the application stops
/// and its manager gets [`TAG_APP_FAULT`] (to deliver the signal, or end it)
/// instead of the kernel ending it at once.
pub const START_FAULTS_TO_MANAGER: u64 = 1 << 8;
/// `app_start` flag, ORed into the ABI: the application does not run yet; it
/// is stopped as if in a Linux system call at `entry` with stack `sp`, so its
/// manager can set every register (`app_set_regs`), its FPU state and TLS
/// before its reply starts it (a process rebuilt from a checkpoint).
pub const START_STOPPED: u64 = 1 << 9;

/// `app_fork` flag: the copy shares the address space (a thread,
/// `clone(2)` with `CLONE_VM`) instead of getting a copy of it.
pub const FORK_SHARE_SPACE: u64 = 1;

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

/// An application's CPU fault, as its manager receives it ([`TAG_APP_FAULT`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppFault {
    /// The exception vector (Intel SDM Vol. 3 §6.3.1: 0 divide error, 6
    /// invalid opcode, 13 general protection, 14 page fault, …).
    pub vector: u64,
    /// The error code the CPU pushed (0 for exceptions without one).
    pub error_code: u64,
    /// The faulting linear address (`cr2`) of a page fault, else 0.
    pub address: u64,
    /// The faulting instruction (`rip`).
    pub rip: u64,
    /// The signal Linux sends for it ([`crate::exception`]), a Linux number.
    pub signal: u64,
}

impl AppFault {
    /// Encoded length in bytes.
    pub const LEN: usize = 40;

    /// Five little-endian `u64`s: vector, error code, address, rip, signal.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let words = [
            self.vector,
            self.error_code,
            self.address,
            self.rip,
            self.signal,
        ];
        for (i, w) in words.into_iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Decodes; `None` if `bytes` is shorter than [`AppFault::LEN`].
    pub fn decode(bytes: &[u8]) -> Option<AppFault> {
        let w = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        Some(AppFault {
            vector: w(0)?,
            error_code: w(1)?,
            address: w(2)?,
            rip: w(3)?,
            signal: w(4)?,
        })
    }
}

/// The user registers of a stopped application that `app_regs` reads and
/// `app_set_regs` replaces. Segment registers are not included (the kernel
/// keeps the code and stack segments of the application's ABI); of `rflags`
/// only the bits Linux lets a signal return change (`FIX_EFLAGS` in
/// arch/x86/kernel/signal.c: CF PF AF ZF SF TF DF OF RF AC) are taken, and
/// `rip`/`rsp` must be user addresses (below 4 GiB for i386 code).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppRegs {
    /// `rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8, …, r15` (i386: the low
    /// halves are `eax` … `esp`).
    pub gpr: [u64; 16],
    /// The instruction pointer.
    pub rip: u64,
    /// The flags register.
    pub rflags: u64,
}

impl AppRegs {
    /// Encoded length in bytes.
    pub const LEN: usize = 18 * 8;
    /// Index of `rax` in [`AppRegs::gpr`].
    pub const RAX: usize = 0;
    /// Index of `rbx`.
    pub const RBX: usize = 1;
    /// Index of `rcx`.
    pub const RCX: usize = 2;
    /// Index of `rdx`.
    pub const RDX: usize = 3;
    /// Index of `rsi`.
    pub const RSI: usize = 4;
    /// Index of `rdi`.
    pub const RDI: usize = 5;
    /// Index of `rbp`.
    pub const RBP: usize = 6;
    /// Index of `rsp`.
    pub const RSP: usize = 7;
    /// Index of `r8` (`r9` … `r15` follow).
    pub const R8: usize = 8;

    /// Eighteen little-endian `u64`s: the 16 registers, rip, rflags.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let words = self.gpr.iter().chain([&self.rip, &self.rflags]);
        for (i, w) in words.enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Decodes; `None` if `bytes` is shorter than [`AppRegs::LEN`].
    pub fn decode(bytes: &[u8]) -> Option<AppRegs> {
        let w = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        let mut gpr = [0u64; 16];
        for (i, g) in gpr.iter_mut().enumerate() {
            *g = w(i)?;
        }
        Some(AppRegs {
            gpr,
            rip: w(16)?,
            rflags: w(17)?,
        })
    }
}

/// The `rflags` bits a signal return may change (Linux `FIX_EFLAGS`: CF, PF,
/// AF, ZF, SF, TF, DF, OF, RF, AC).
pub const USER_RFLAGS: u64 = 0x0005_0DD5;

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

    #[test]
    fn fault_and_regs_round_trip() {
        let f = AppFault {
            vector: 14,
            error_code: 6,
            address: 0x10,
            rip: 0x401000,
            signal: 11,
        };
        assert_eq!(AppFault::decode(&f.encode()), Some(f));
        let mut r = AppRegs::default();
        r.gpr[AppRegs::R8 + 7] = 15;
        r.rip = 0x401000;
        r.rflags = 0x246;
        assert_eq!(AppRegs::decode(&r.encode()), Some(r));
        assert_eq!(AppRegs::decode(&r.encode()[..AppRegs::LEN - 1]), None);
    }
}
