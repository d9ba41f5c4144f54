//! Time: the timer tick count and a monotonic clock in nanoseconds, read from
//! the TSC and calibrated against the PIT's channel 2 at boot.
#![forbid(unsafe_code)]

use crate::arch;
use core::sync::atomic::{AtomicU64, Ordering};

static TICKS: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// Length of one TSC calibration against the PIT, and how many are made.
const CALIBRATION_MS: u32 = 25;
const CALIBRATION_TRIES: u32 = 3;

/// Counts one timer interrupt. Called from the timer's interrupt handler.
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Measures the TSC frequency against the PIT ([`arch::pic::tsc_hz`]:
/// the shortest of three 25 ms counts of its channel 2).
pub fn init() {
    TSC_AT_BOOT.store(arch::rdtsc(), Ordering::Relaxed);
    let hz = arch::pic::tsc_hz(CALIBRATION_MS, CALIBRATION_TRIES);
    TSC_HZ.store(hz.max(1), Ordering::Relaxed);
}

/// TSC ticks per second, as calibrated at boot (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since boot (0 until the clock is calibrated). Monotonic.
pub fn now_ns() -> u64 {
    let hz = tsc_hz();
    if hz == 0 {
        return 0;
    }
    let elapsed = arch::rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (u128::from(elapsed) * 1_000_000_000 / u128::from(hz)) as u64
}
