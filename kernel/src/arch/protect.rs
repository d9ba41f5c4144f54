//! Hardware protections of the kernel from the programs it runs (Intel SDM
//! Vol. 3A §2.5 "Control registers", §4.6 "Access rights"):
//!
//! - **SMEP**: the kernel never executes a user page, so a jump through a bad
//!   pointer into application memory faults instead of running it.
//! - **SMAP**: the kernel never reads or writes a user page through its user
//!   address (SiON reaches application memory only through the physical-memory
//!   map, SiON paper §4.2.3), so a stray kernel access faults.
//! - **UMIP**: `sgdt`, `sidt`, `sldt`, `smsw` and `str` fault in ring 3, so an
//!   application cannot learn where the kernel keeps its tables.
//!
//! Each is enabled only where CPUID reports it; older CPUs run without it.

use x86::cpuid::CpuId;
use x86_64::registers::control::{Cr4, Cr4Flags};

/// Which protections are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Protections {
    /// Supervisor-mode execution prevention (CR4.SMEP).
    pub smep: bool,
    /// Supervisor-mode access prevention (CR4.SMAP).
    pub smap: bool,
    /// User-mode instruction prevention (CR4.UMIP).
    pub umip: bool,
}

impl core::fmt::Display for Protections {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let on = |b: bool| {
            if b {
                "on"
            } else {
                "off (not supported by this CPU)"
            }
        };
        write!(
            f,
            "SMEP {}, SMAP {}, UMIP {}",
            on(self.smep),
            on(self.smap),
            on(self.umip)
        )
    }
}

/// Enables every protection the CPU has; returns which.
pub fn init() -> Protections {
    let features = CpuId::new().get_extended_feature_info();
    let has = |f: fn(&x86::cpuid::ExtendedFeatures) -> bool| features.as_ref().is_some_and(f);
    let p = Protections {
        smep: has(|e| e.has_smep()),
        smap: has(|e| e.has_smap()),
        umip: has(|e| e.has_umip()),
    };
    let mut flags = Cr4Flags::empty();
    flags.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, p.smep);
    flags.set(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, p.smap);
    flags.set(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION, p.umip);
    // SAFETY: the kernel executes no user page and touches user memory only
    // through the physical-memory map, so SMEP and SMAP change nothing for
    // correct kernel code; UMIP affects ring 3 only. Every trap entry clears
    // RFLAGS.AC (see `trap`), so a program cannot lift SMAP for the kernel.
    unsafe { Cr4::update(|f| f.insert(flags)) };
    p
}
