//! Entropy for a SiON process's nonces and random identifiers: the CPU's
//! RDRAND (Intel SDM vol. 1 §7.3.17, "Random Number Generator Instructions")
//! where CPUID says it has one, and always the jitter of the time-stamp
//! counter read between system calls. The bytes are raw material, to be
//! hashed (e.g. by `sion_companion_mgr::auth::NonceGen`), not used as they
//! are.

use alloc::vec::Vec;

/// Raw entropy and where it came from.
pub struct Entropy {
    /// The bytes: RDRAND output first (if any), then clock readings.
    pub bytes: Vec<u8>,
    /// Whether RDRAND contributed.
    pub rdrand: bool,
}

/// Whether the CPU has RDRAND (CPUID leaf 1, ECX bit 30).
pub fn has_rdrand() -> bool {
    // CPUID leaf 1 exists on every x86_64 CPU and only reads.
    let leaf = core::arch::x86_64::__cpuid(1);
    leaf.ecx & (1 << 30) != 0
}

/// One RDRAND value, retried up to 10 times as Intel's guide recommends
/// (an underflowing DRNG clears the carry flag); `None` without RDRAND or if
/// every try failed.
pub fn rdrand64() -> Option<u64> {
    if !has_rdrand() {
        return None;
    }
    for _ in 0..10 {
        let value: u64;
        let ok: u8;
        // SAFETY: RDRAND is present (checked above) and allowed in ring 3;
        // it writes one register and the flags.
        unsafe {
            core::arch::asm!(
                "rdrand {v}",
                "setc {ok}",
                v = out(reg) value,
                ok = out(reg_byte) ok,
                options(nomem, nostack),
            );
        }
        if ok == 1 {
            return Some(value);
        }
    }
    None
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter (the kernel does not set
    // CR4.TSD).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Gathers raw entropy: 4 RDRAND words when the CPU has them, then 64 pairs
/// of (time-stamp counter, kernel clock) read around `yield` system calls,
/// whose exact timing varies with interrupts and the other processes.
pub fn gather() -> Entropy {
    let mut bytes = Vec::with_capacity(32 + 64 * 16);
    let mut rdrand = false;
    for _ in 0..4 {
        if let Some(v) = rdrand64() {
            bytes.extend_from_slice(&v.to_le_bytes());
            rdrand = true;
        }
    }
    for _ in 0..64 {
        bytes.extend_from_slice(&rdtsc().to_le_bytes());
        crate::sys::yield_now();
        bytes.extend_from_slice(&crate::sys::clock_ns().to_le_bytes());
    }
    Entropy { bytes, rdrand }
}
