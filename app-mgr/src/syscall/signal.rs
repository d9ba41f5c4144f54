//! Signal calls, served on the node as bookkeeping: `rt_sigaction(2)`,
//! `rt_sigprocmask(2)` and `sigaltstack(2)` record what the program asks
//! (SiON delivers no asynchronous signals yet); a signal a program sends
//! itself (`kill(2)`, `raise(3)`) ends it as its default action would.

use alloc::vec;

use linux_raw_sys::general::{SIGKILL, SIGSTOP, SS_DISABLE};

use super::Args;
use crate::abi::Abi;
use crate::errno::Errno;
use crate::exit::{DefaultAction, Signal, WaitStatus};
use crate::process::{CallError, CallResult, Process};

/// `rt_sigaction(signum, act, oldact, sigsetsize)`: the kernel `struct
/// sigaction` (32 bytes on x86_64, 20 on i386) is recorded as given.
pub(super) fn rt_sigaction(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (signum, act, oldact, sigsetsize) = (a.int(0), a.word(1), a.word(2), a.word(3));
    if sigsetsize != 8 || !(1..=64).contains(&signum) {
        return Err(Errno::EINVAL.into());
    }
    if act != 0 && (signum == SIGKILL as i32 || signum == SIGSTOP as i32) {
        return Err(Errno::EINVAL.into());
    }
    let size = match p.abi {
        Abi::X86_64 => 32,
        Abi::I386 => 20,
    };
    let new = if act != 0 {
        Some(p.read_mem(act, size)?)
    } else {
        None
    };
    if oldact != 0 {
        let old = p
            .sigactions
            .get(&signum)
            .cloned()
            .unwrap_or_else(|| vec![0; size as usize]);
        p.write_mem(oldact, &old)?;
    }
    if let Some(new) = new {
        p.sigactions.insert(signum, new);
    }
    Ok(0)
}

/// `rt_sigprocmask(how, set, oldset, sigsetsize)`.
pub(super) fn rt_sigprocmask(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (how, set, oldset, sigsetsize) = (a.int(0), a.word(1), a.word(2), a.word(3));
    if sigsetsize != 8 {
        return Err(Errno::EINVAL.into());
    }
    let new = if set != 0 {
        let b = p.read_mem(set, 8)?;
        Some(u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])))
    } else {
        None
    };
    if new.is_some() && !(0..=2).contains(&how) {
        return Err(Errno::EINVAL.into());
    }
    if oldset != 0 {
        let mask = p.sigmask;
        p.write_mem(oldset, &mask.to_le_bytes())?;
    }
    if let Some(s) = new {
        let unblockable = (1u64 << (SIGKILL - 1)) | (1u64 << (SIGSTOP - 1));
        p.sigmask = match how {
            0 => p.sigmask | s,
            1 => p.sigmask & !s,
            _ => s,
        } & !unblockable;
    }
    Ok(0)
}

/// `sigaltstack(ss, old_ss)`: a `stack_t` (24 bytes on x86_64, 12 on i386).
pub(super) fn sigaltstack(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (ss, old_ss) = (a.word(0), a.word(1));
    let size = match p.abi {
        Abi::X86_64 => 24,
        Abi::I386 => 12,
    };
    let new = if ss != 0 {
        Some(p.read_mem(ss, size)?)
    } else {
        None
    };
    if old_ss != 0 {
        let old = p.altstack.clone().unwrap_or_else(|| {
            // { ss_sp = 0, ss_flags = SS_DISABLE, ss_size = 0 }
            let mut b = vec![0u8; size as usize];
            let at = p.abi.word_size();
            b[at..at + 4].copy_from_slice(&SS_DISABLE.to_le_bytes());
            b
        });
        p.write_mem(old_ss, &old)?;
    }
    if new.is_some() {
        p.altstack = new;
    }
    Ok(0)
}

impl Process<'_> {
    /// The program signals itself. No handler can run (SiON delivers no
    /// signals), so a signal whose disposition is not "ignore" ends the job
    /// as its default action would.
    pub(super) fn raise(&mut self, sig: i32) -> CallResult {
        if sig == 0 {
            return Ok(0);
        }
        let Some(s) = Signal::new(sig) else {
            return Err(Errno::EINVAL.into());
        };
        let handler = self.sigactions.get(&sig).map_or(0, |a| {
            let w = self.abi.word_size();
            let mut v = [0u8; 8];
            v[..w].copy_from_slice(&a[..w]);
            u64::from_le_bytes(v)
        });
        let action = s.default_action();
        if handler == 1 || (handler == 0 && action == DefaultAction::Ignore) {
            return Ok(0);
        }
        if matches!(action, DefaultAction::Stop | DefaultAction::Continue) {
            return Ok(0);
        }
        // The status word says "dumped core" (0x80) for a core-dumping default
        // action, as Linux's does (SiON writes no core file).
        self.kill(WaitStatus::Signaled(s).to_raw_core() as i32);
        Err(CallError::Halt)
    }
}
