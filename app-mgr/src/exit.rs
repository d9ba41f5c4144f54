//! How a job ends: signals, the signal a CPU fault becomes, and the exit status
//! a Linux shell reports (`$?`: the exit code, or 128 + the signal number).
//!
//! Sources: `signal(7)` (numbers, default actions), Linux
//! `arch/x86/kernel/traps.c` (which exception raises which signal), `wait(2)`
//! (`WIFEXITED`, `WTERMSIG`), bash(1) "EXIT STATUS" (128 + n).

use linux_raw_sys::general as g;

/// A Linux signal number (1..=64), e.g. [`Signal::SIGSEGV`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(u8);

/// What a signal does when the program has not installed a handler
/// (`signal(7)` "Standard signals").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefaultAction {
    /// Terminate the process.
    Terminate,
    /// Terminate and dump core (SiON writes no core file).
    Core,
    /// Ignore the signal.
    Ignore,
    /// Stop the process.
    Stop,
    /// Continue if stopped.
    Continue,
}

macro_rules! signals {
    ($($name:ident => $action:ident,)*) => {
        impl Signal {
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                pub const $name: Signal = Signal(g::$name as u8);
            )*

            /// The symbolic name (`"SIGSEGV"`); `None` for real-time signals.
            pub const fn name(self) -> Option<&'static str> {
                $(if self.0 == g::$name as u8 { return Some(stringify!($name)); })*
                None
            }

            /// The default disposition; real-time signals terminate.
            pub const fn default_action(self) -> DefaultAction {
                $(if self.0 == g::$name as u8 { return DefaultAction::$action; })*
                DefaultAction::Terminate
            }
        }
    };
}

signals! {
    SIGHUP => Terminate,
    SIGINT => Terminate,
    SIGQUIT => Core,
    SIGILL => Core,
    SIGTRAP => Core,
    SIGABRT => Core,
    SIGBUS => Core,
    SIGFPE => Core,
    SIGKILL => Terminate,
    SIGUSR1 => Terminate,
    SIGSEGV => Core,
    SIGUSR2 => Terminate,
    SIGPIPE => Terminate,
    SIGALRM => Terminate,
    SIGTERM => Terminate,
    SIGSTKFLT => Terminate,
    SIGCHLD => Ignore,
    SIGCONT => Continue,
    SIGSTOP => Stop,
    SIGTSTP => Stop,
    SIGTTIN => Stop,
    SIGTTOU => Stop,
    SIGURG => Ignore,
    SIGXCPU => Core,
    SIGXFSZ => Core,
    SIGVTALRM => Terminate,
    SIGPROF => Terminate,
    SIGWINCH => Ignore,
    SIGIO => Terminate,
    SIGPWR => Terminate,
    SIGSYS => Core,
}

impl Signal {
    /// Highest signal number (`_NSIG` on x86).
    pub const MAX: u8 = 64;

    /// The signal `n`, or `None` unless `1 <= n <= 64`.
    pub const fn new(n: i32) -> Option<Signal> {
        if n >= 1 && n <= Signal::MAX as i32 {
            Some(Signal(n as u8))
        } else {
            None
        }
    }

    /// The signal number.
    pub const fn number(self) -> u8 {
        self.0
    }
}

impl core::fmt::Debug for Signal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "SIGRT({})", self.0),
        }
    }
}

impl core::fmt::Display for Signal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

/// A CPU exception taken in user mode (x86 vector numbers, Intel SDM vol. 3
/// §6.15 "Exception and Interrupt Reference").
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
    pub const fn from_vector(vector: u8) -> Option<CpuException> {
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

    /// The signal Linux sends for this exception (`arch/x86/kernel/traps.c`):
    /// #DE, #MF, #XM: `SIGFPE`; #UD: `SIGILL`; #DB, #BP: `SIGTRAP`; #NP, #SS,
    /// #AC: `SIGBUS`; #OF, #BR, #TS, #GP, #PF, #CP, #NM: `SIGSEGV`.
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
}

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It called `exit`/`exit_group` with this code (the low 8 bits of the
    /// status argument).
    Exited(u8),
    /// A signal ended it (a CPU fault, or a fatal signal it sent itself).
    Signaled(Signal),
}

impl ExitStatus {
    /// From the argument of `exit(2)`/`exit_group(2)`: only `status & 0xff` is
    /// kept (`exit(256)` reports 0, `exit(-1)` 255).
    pub const fn from_exit_call(status: i32) -> ExitStatus {
        ExitStatus::Exited(status as u8)
    }

    /// From a CPU fault.
    pub const fn from_fault(fault: CpuException) -> ExitStatus {
        ExitStatus::Signaled(fault.signal())
    }

    /// The status a Linux shell shows in `$?`: the code, or 128 + signal
    /// (`SIGSEGV` 139, `SIGILL` 132, `SIGFPE` 136, `SIGABRT` 134). `hostd
    /// submit` exits with this.
    pub const fn shell_code(self) -> u8 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(sig) => 128u8.wrapping_add(sig.0),
        }
    }

    /// The `wait(2)` status word: `code << 8` for an exit, the signal number
    /// for a signal, plus `0x80` when `core` and the default action dumps core.
    pub const fn wait_status(self, core: bool) -> i32 {
        match self {
            ExitStatus::Exited(code) => (code as i32) << 8,
            ExitStatus::Signaled(sig) => {
                let dumped = core && matches!(sig.default_action(), DefaultAction::Core);
                sig.0 as i32 | if dumped { 0x80 } else { 0 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn shell_codes_for_faults() {
        let code = |v| ExitStatus::from_fault(CpuException::from_vector(v).unwrap()).shell_code();
        assert_eq!(code(14), 139); // page fault -> SIGSEGV
        assert_eq!(code(13), 139); // #GP -> SIGSEGV
        assert_eq!(code(6), 132); // #UD -> SIGILL
        assert_eq!(code(0), 136); // #DE -> SIGFPE
        assert_eq!(code(19), 136); // #XM -> SIGFPE
        assert_eq!(code(3), 133); // int3 -> SIGTRAP
        assert_eq!(code(17), 135); // #AC -> SIGBUS
        assert_eq!(CpuException::from_vector(8), None); // double fault
        assert_eq!(CpuException::from_vector(2), None); // NMI
        assert_eq!(CpuException::from_vector(32), None); // IRQ
        assert_eq!(ExitStatus::Signaled(Signal::SIGABRT).shell_code(), 134);
        assert_eq!(ExitStatus::Signaled(Signal::SIGKILL).shell_code(), 137);
    }

    #[test]
    fn exit_codes_keep_low_byte() {
        assert_eq!(ExitStatus::from_exit_call(0).shell_code(), 0);
        assert_eq!(ExitStatus::from_exit_call(3).shell_code(), 3);
        assert_eq!(ExitStatus::from_exit_call(256).shell_code(), 0);
        assert_eq!(ExitStatus::from_exit_call(-1).shell_code(), 255);
    }

    #[test]
    fn wait_status_words() {
        assert_eq!(ExitStatus::Exited(2).wait_status(false), 0x200);
        assert_eq!(ExitStatus::Signaled(Signal::SIGSEGV).wait_status(false), 11);
        assert_eq!(
            ExitStatus::Signaled(Signal::SIGSEGV).wait_status(true),
            0x8b
        );
        assert_eq!(ExitStatus::Signaled(Signal::SIGTERM).wait_status(true), 15);
    }

    #[test]
    fn signals() {
        assert_eq!(Signal::SIGSEGV.number(), 11);
        assert_eq!(Signal::SIGILL.number(), 4);
        assert_eq!(Signal::SIGFPE.number(), 8);
        assert_eq!(Signal::new(0), None);
        assert_eq!(Signal::new(65), None);
        assert_eq!(Signal::new(11), Some(Signal::SIGSEGV));
        assert_eq!(format!("{}", Signal::SIGSEGV), "SIGSEGV");
        assert_eq!(format!("{:?}", Signal::new(40).unwrap()), "SIGRT(40)");
        assert_eq!(Signal::SIGCHLD.default_action(), DefaultAction::Ignore);
        assert_eq!(Signal::SIGABRT.default_action(), DefaultAction::Core);
        assert_eq!(
            Signal::new(40).unwrap().default_action(),
            DefaultAction::Terminate
        );
    }
}
