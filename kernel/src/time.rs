//! Time: the timer tick count and a monotonic clock in nanoseconds, read from
//! the TSC and calibrated against the PIT at boot.
#![forbid(unsafe_code)]

use crate::arch;
use core::sync::atomic::{AtomicU64, Ordering};

static TICKS: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// Timer ticks used to calibrate the TSC (50 ms at 100 Hz).
const CALIBRATION_TICKS: u64 = 5;

/// Counts one timer interrupt. Called from the timer's interrupt handler.
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Timer interrupts since boot.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Measures the TSC frequency over [`CALIBRATION_TICKS`] timer ticks. Enables
/// interrupts while it waits and disables them again.
pub fn init() {
    TSC_AT_BOOT.store(arch::rdtsc(), Ordering::Relaxed);
    let start_tick = ticks();
    while ticks() == start_tick {
        arch::wait_for_interrupt();
    }
    let (t0, tsc0) = (ticks(), arch::rdtsc());
    while ticks() < t0 + CALIBRATION_TICKS {
        arch::wait_for_interrupt();
    }
    let tsc1 = arch::rdtsc();
    let hz = (tsc1 - tsc0) * u64::from(arch::pic::TIMER_HZ) / CALIBRATION_TICKS;
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
