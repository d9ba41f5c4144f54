//! Signals and how a process ended: the one [`Signal`] type and the one
//! [`WaitStatus`] type the kernel (which ends SiON processes and Linux
//! applications), the App-Program Manager (which reports a job's end) and
//! `hostd` (which exits with a job's status) share.
//!
//! Sources: `signal(7)` (numbers, default actions; the numbers come from
//! `linux-raw-sys`, never typed here), `wait(2)` (`WIFEXITED`,
//! `WEXITSTATUS`, `WTERMSIG`, `WCOREDUMP`), bash(1) "EXIT STATUS" (128 + n).

use linux_raw_sys::general as g;

/// A Linux signal number, e.g. [`Signal::SIGSEGV`]: 1..=64 when made by
/// [`Signal::new`]; a [`WaitStatus`] decoded from a status word carries its
/// `WTERMSIG` bits (1..=127) as they are.
///
/// `Display` writes the number (`11`), as `wait(2)`'s `WTERMSIG` and the
/// messages that report it ("ended by signal 11"); `Debug` writes the name
/// (`SIGSEGV`, or `SIGRT(40)` for a real-time signal).
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
        write!(f, "{}", self.0)
    }
}

/// How a process ended, encoded as Linux's `wait(2)` status word: an exit code
/// in bits 8–15 (`WEXITSTATUS`), or the number of the signal that killed it in
/// bits 0–6 (`WTERMSIG`), with bit 7 (`WCOREDUMP`) when its default action
/// dumps core and the caller says so ([`WaitStatus::to_raw_core`]).
///
/// `Debug` writes `Exited(42)` or `Signaled(11)` (the signal's number).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitStatus {
    /// The process called `exit(code)` (the low 8 bits of its argument).
    Exited(u8),
    /// The process was killed by a signal (a fault, or a kill).
    Signaled(Signal),
}

/// The `WCOREDUMP` bit of a status word.
pub const CORE_DUMPED: u64 = 0x80;

impl WaitStatus {
    /// From the argument of `exit(2)`/`exit_group(2)`: only `status & 0xff` is
    /// kept (`exit(256)` reports 0, `exit(-1)` 255).
    pub const fn from_exit_call(status: i32) -> WaitStatus {
        WaitStatus::Exited(status as u8)
    }

    /// The status word as `wait(2)` encodes it, without the core-dump bit.
    pub const fn to_raw(self) -> u64 {
        match self {
            WaitStatus::Exited(code) => (code as u64) << 8,
            WaitStatus::Signaled(sig) => (sig.0 & 0x7f) as u64,
        }
    }

    /// The status word with [`CORE_DUMPED`] set when the process was killed
    /// by a signal whose default action dumps core ([`DefaultAction::Core`]).
    pub const fn to_raw_core(self) -> u64 {
        match self {
            WaitStatus::Signaled(sig) if matches!(sig.default_action(), DefaultAction::Core) => {
                self.to_raw() | CORE_DUMPED
            }
            _ => self.to_raw(),
        }
    }

    /// Decodes a status word (the core-dump bit is ignored).
    pub const fn from_raw(raw: u64) -> Self {
        if raw & 0x7f == 0 {
            WaitStatus::Exited(((raw >> 8) & 0xff) as u8)
        } else {
            WaitStatus::Signaled(Signal((raw & 0x7f) as u8))
        }
    }

    /// The status a POSIX shell reports (`$?`): the exit code, or 128 + signal
    /// (`SIGSEGV` 139, `SIGILL` 132, `SIGFPE` 136, `SIGABRT` 134).
    pub const fn shell_status(self) -> u8 {
        match self {
            WaitStatus::Exited(code) => code,
            WaitStatus::Signaled(sig) => 128u8.wrapping_add(sig.0),
        }
    }
}

impl core::fmt::Debug for WaitStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WaitStatus::Exited(code) => write!(f, "Exited({code})"),
            WaitStatus::Signaled(sig) => write!(f, "Signaled({})", sig.0),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::format;

    #[test]
    fn signals() {
        assert_eq!(Signal::SIGSEGV.number(), 11);
        assert_eq!(Signal::SIGILL.number(), 4);
        assert_eq!(Signal::SIGFPE.number(), 8);
        assert_eq!(Signal::SIGKILL.number(), 9);
        assert_eq!(Signal::new(0), None);
        assert_eq!(Signal::new(65), None);
        assert_eq!(Signal::new(11), Some(Signal::SIGSEGV));
        assert_eq!(Signal::SIGSEGV.name(), Some("SIGSEGV"));
        assert_eq!(Signal::new(40).unwrap().name(), None);
        assert_eq!(format!("{}", Signal::SIGSEGV), "11");
        assert_eq!(format!("{:?}", Signal::SIGSEGV), "SIGSEGV");
        assert_eq!(format!("{:?}", Signal::new(40).unwrap()), "SIGRT(40)");
        assert_eq!(Signal::SIGCHLD.default_action(), DefaultAction::Ignore);
        assert_eq!(Signal::SIGABRT.default_action(), DefaultAction::Core);
        assert_eq!(
            Signal::new(40).unwrap().default_action(),
            DefaultAction::Terminate
        );
    }

    #[test]
    fn wait_status_matches_linux_encoding() {
        // WEXITSTATUS(0x2a00) == 42; WTERMSIG(11) == SIGSEGV.
        assert_eq!(WaitStatus::Exited(42).to_raw(), 0x2a00);
        assert_eq!(WaitStatus::Signaled(Signal::SIGSEGV).to_raw(), 11);
        assert_eq!(WaitStatus::from_raw(0x2a00), WaitStatus::Exited(42));
        assert_eq!(
            WaitStatus::from_raw(11),
            WaitStatus::Signaled(Signal::SIGSEGV)
        );
        assert_eq!(
            WaitStatus::from_raw(0x8b),
            WaitStatus::Signaled(Signal::SIGSEGV)
        );
        assert_eq!(WaitStatus::from_raw(0), WaitStatus::Exited(0));
        assert_eq!(format!("{:?}", WaitStatus::Exited(0)), "Exited(0)");
        assert_eq!(
            format!("{:?}", WaitStatus::Signaled(Signal::SIGILL)),
            "Signaled(4)"
        );
    }

    #[test]
    fn core_dump_bit() {
        assert_eq!(WaitStatus::Exited(2).to_raw_core(), 0x200);
        assert_eq!(WaitStatus::Signaled(Signal::SIGSEGV).to_raw_core(), 0x8b);
        assert_eq!(WaitStatus::Signaled(Signal::SIGABRT).to_raw_core(), 0x86);
        assert_eq!(WaitStatus::Signaled(Signal::SIGTERM).to_raw_core(), 15);
        assert_eq!(WaitStatus::Signaled(Signal::SIGKILL).to_raw_core(), 9);
    }

    #[test]
    fn shell_statuses() {
        let sh = |s| WaitStatus::Signaled(s).shell_status();
        assert_eq!(sh(Signal::SIGSEGV), 139);
        assert_eq!(sh(Signal::SIGILL), 132);
        assert_eq!(sh(Signal::SIGFPE), 136);
        assert_eq!(sh(Signal::SIGABRT), 134);
        assert_eq!(sh(Signal::SIGKILL), 137);
        assert_eq!(sh(Signal::SIGINT), 130);
        assert_eq!(WaitStatus::Exited(1).shell_status(), 1);
        assert_eq!(WaitStatus::from_raw(0x8b).shell_status(), 139);
    }

    #[test]
    fn exit_codes_keep_low_byte() {
        let sh = |c| WaitStatus::from_exit_call(c).shell_status();
        assert_eq!(sh(0), 0);
        assert_eq!(sh(3), 3);
        assert_eq!(sh(256), 0);
        assert_eq!(sh(-1), 255);
        assert_eq!(WaitStatus::from_exit_call(42).to_raw(), 42 << 8);
    }
}
