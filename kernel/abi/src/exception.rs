//! CPU exceptions a user program can cause and the signal Linux sends for
//! each: the one table the kernel (which ends SiON processes) and the
//! App-Program Manager (which reports a job's end) both use.
//!
//! Source: Linux `arch/x86/kernel/traps.c`. #DE, #MF and #XM go through
//! `do_error_trap`/`math_error` with `SIGFPE`; #UD `SIGILL`; #DB and #BP
//! `SIGTRAP`; #NP, #SS and #AC `SIGBUS`; #OF, #BR, #TS, #GP, #PF and #CP
//! `SIGSEGV`. #NM (`exc_device_not_available`) is neither math emulation nor
//! a lazy-FPU fix-up on a CPU with an FPU and CR0.TS clear, so it reaches
//! `die("unexpected #NM exception", regs, 0)`, whose `oops_end` ends the task
//! with `SIGSEGV`.

use crate::signal::{Signal, WaitStatus};

/// A CPU exception taken in user mode, by x86 vector number (Intel SDM Vol. 3A
/// §6.15 "Exception and Interrupt Reference", Table 6-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpuException {
    /// #DE (0), divide error.
    DivideError,
    /// #DB (1), debug.
    Debug,
    /// #BP (3), `int3`.
    Breakpoint,
    /// #OF (4), `into`.
    Overflow,
    /// #BR (5), `bound`.
    BoundRange,
    /// #UD (6), invalid opcode.
    InvalidOpcode,
    /// #NM (7), device not available (FPU).
    DeviceNotAvailable,
    /// #TS (10), invalid TSS.
    InvalidTss,
    /// #NP (11), segment not present.
    SegmentNotPresent,
    /// #SS (12), stack-segment fault.
    StackSegment,
    /// #GP (13), general protection (also `hlt`, `cli`, privileged
    /// instructions and non-canonical addresses in user mode).
    GeneralProtection,
    /// #PF (14), page fault on an unmapped or protected address.
    PageFault,
    /// #MF (16), x87 floating-point error.
    X87FloatingPoint,
    /// #AC (17), alignment check.
    AlignmentCheck,
    /// #XM (19), SIMD floating-point exception.
    SimdFloatingPoint,
    /// #CP (21), control-protection (CET).
    ControlProtection,
}

impl CpuException {
    /// The exception for interrupt vector `vector`, or `None` for vectors that
    /// are not faults a user program causes (NMI, double fault, machine check,
    /// reserved, external interrupts).
    pub const fn from_vector(vector: u64) -> Option<CpuException> {
        use CpuException::*;
        Some(match vector {
            0 => DivideError,
            1 => Debug,
            3 => Breakpoint,
            4 => Overflow,
            5 => BoundRange,
            6 => InvalidOpcode,
            7 => DeviceNotAvailable,
            10 => InvalidTss,
            11 => SegmentNotPresent,
            12 => StackSegment,
            13 => GeneralProtection,
            14 => PageFault,
            16 => X87FloatingPoint,
            17 => AlignmentCheck,
            19 => SimdFloatingPoint,
            21 => ControlProtection,
            _ => return None,
        })
    }

    /// The signal Linux sends for this exception (see the module's sources).
    pub const fn signal(self) -> Signal {
        use CpuException::*;
        match self {
            DivideError | X87FloatingPoint | SimdFloatingPoint => Signal::SIGFPE,
            InvalidOpcode => Signal::SIGILL,
            Debug | Breakpoint => Signal::SIGTRAP,
            SegmentNotPresent | StackSegment | AlignmentCheck => Signal::SIGBUS,
            Overflow | BoundRange | InvalidTss | GeneralProtection | PageFault
            | ControlProtection | DeviceNotAvailable => Signal::SIGSEGV,
        }
    }

    /// How a process that caused this exception ends: killed by
    /// [`CpuException::signal`].
    pub const fn wait_status(self) -> WaitStatus {
        WaitStatus::Signaled(self.signal())
    }

    /// A short English name, e.g. "page fault".
    pub const fn name(self) -> &'static str {
        use CpuException::*;
        match self {
            DivideError => "divide error",
            Debug => "debug",
            Breakpoint => "breakpoint",
            Overflow => "overflow",
            BoundRange => "bound range exceeded",
            InvalidOpcode => "invalid opcode",
            DeviceNotAvailable => "device not available",
            InvalidTss => "invalid TSS",
            SegmentNotPresent => "segment not present",
            StackSegment => "stack-segment fault",
            GeneralProtection => "general protection fault",
            PageFault => "page fault",
            X87FloatingPoint => "x87 floating-point exception",
            AlignmentCheck => "alignment check",
            SimdFloatingPoint => "SIMD floating-point exception",
            ControlProtection => "control-protection exception",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_signals() {
        let sig = |v| CpuException::from_vector(v).map(CpuException::signal);
        assert_eq!(sig(0), Some(Signal::SIGFPE));
        assert_eq!(sig(6), Some(Signal::SIGILL));
        assert_eq!(sig(7), Some(Signal::SIGSEGV));
        assert_eq!(sig(13), Some(Signal::SIGSEGV));
        assert_eq!(sig(14), Some(Signal::SIGSEGV));
        assert_eq!(sig(17), Some(Signal::SIGBUS));
        assert_eq!(sig(19), Some(Signal::SIGFPE));
        assert_eq!(sig(2), None);
        assert_eq!(sig(8), None);
        assert_eq!(sig(18), None);
    }

    #[test]
    fn shell_statuses_for_faults() {
        let code = |v| {
            CpuException::from_vector(v)
                .unwrap()
                .wait_status()
                .shell_status()
        };
        assert_eq!(code(14), 139); // page fault -> SIGSEGV
        assert_eq!(code(13), 139); // #GP -> SIGSEGV
        assert_eq!(code(7), 139); // #NM -> SIGSEGV
        assert_eq!(code(6), 132); // #UD -> SIGILL
        assert_eq!(code(0), 136); // #DE -> SIGFPE
        assert_eq!(code(19), 136); // #XM -> SIGFPE
        assert_eq!(code(3), 133); // int3 -> SIGTRAP
        assert_eq!(code(17), 135); // #AC -> SIGBUS
        assert_eq!(CpuException::from_vector(32), None); // IRQ
    }
}
