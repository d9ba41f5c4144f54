//! The local APIC of each CPU (Intel SDM Vol. 3A ch. 11): its timer, which
//! drives the scheduler's time slices on every CPU of a multiprocessor
//! node, end of interrupt, and inter-processor interrupts (INIT and STARTUP
//! to start a CPU, and SiON's own vectors below).
//!
//! x2APIC mode (registers as MSRs, SDM §11.12) is used where the CPU has it,
//! else xAPIC mode (registers in the 4 KiB page at the APIC base, reached
//! through the kernel's uncached device mapping). Register offsets and the
//! ICR layout come from the `x86` crate. A node with one CPU does not use the
//! local APIC at all: the PIT and the 8259 PIC serve it as before.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use x86::apic::xapic as reg;
use x86::apic::{
    ApicId, DeliveryMode, DeliveryStatus, DestinationMode, DestinationShorthand, Icr, Level,
    TriggerMode,
};
use x86::msr::{IA32_APIC_BASE, rdmsr, wrmsr};

/// Vector of the local APIC timer (the scheduler's tick on every CPU).
pub const TIMER_VECTOR: u8 = 0xF0;
/// Vector that wakes a halted CPU because a process became ready, or makes
/// a CPU look at a kill request for the process it runs.
pub const WAKE_VECTOR: u8 = 0xF1;
/// Vector of a TLB shootdown request ([`super::smp`]).
pub const FLUSH_VECTOR: u8 = 0xF2;
/// Vector the local APIC reports spurious interrupts on (never acknowledged).
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// `IA32_APIC_BASE` bits: x2APIC mode enable, global enable (SDM §11.12.1).
const BASE_X2APIC: u64 = 1 << 10;
const BASE_ENABLE: u64 = 1 << 11;
/// First x2APIC MSR; register `offset` of the xAPIC page is MSR
/// `X2APIC_MSR_BASE + offset / 16` (SDM Table 11-6).
const X2APIC_MSR_BASE: u32 = 0x800;
/// LVT bits: masked, periodic timer; delivery modes NMI and ExtINT.
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const LVT_NMI: u32 = 0b100 << 8;
const LVT_EXTINT: u32 = 0b111 << 8;
/// SVR bit 8: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// Timer divide configuration for "divide by 16".
const DIVIDE_BY_16: u32 = 0b0011;

static X2APIC: AtomicBool = AtomicBool::new(false);
/// Virtual address of the xAPIC register page (xAPIC mode only).
static XAPIC_BASE: AtomicU64 = AtomicU64::new(0);
/// Timer counts (after divide by 16) per scheduler tick, measured once.
static TICK_COUNT: AtomicU32 = AtomicU32::new(0);

fn read(offset: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: reading an x2APIC register MSR has no side effect except
        // on registers SiON never reads this way.
        unsafe { rdmsr(X2APIC_MSR_BASE + offset / 16) as u32 }
    } else {
        let at = XAPIC_BASE.load(Ordering::Relaxed) + u64::from(offset);
        // SAFETY: the register page is mapped uncached by `init` and every
        // offset used is a register of it (from the `x86` crate).
        unsafe { core::ptr::read_volatile(at as *const u32) }
    }
}

fn write(offset: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: as in `read`; writes go to this CPU's own APIC.
        unsafe { wrmsr(X2APIC_MSR_BASE + offset / 16, u64::from(value)) }
    } else {
        let at = XAPIC_BASE.load(Ordering::Relaxed) + u64::from(offset);
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(at as *mut u32, value) }
    }
}

/// Chooses the mode for all CPUs (x2APIC if CPUID says the CPU has it, or
/// the firmware already enabled it) and maps the xAPIC page otherwise.
/// Called once on the bootstrap processor before [`init_this_cpu`].
pub fn init() -> &'static str {
    // SAFETY: CPUID leaf 1 exists on every x86_64 CPU; IA32_APIC_BASE is
    // architectural since the P6.
    let (has_x2apic, base) = unsafe {
        (
            core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0,
            rdmsr(IA32_APIC_BASE),
        )
    };
    if has_x2apic || base & BASE_X2APIC != 0 {
        X2APIC.store(true, Ordering::Relaxed);
        "x2APIC"
    } else {
        let phys = base & 0x000F_FFFF_FFFF_F000;
        crate::mem::map_mmio(phys, 4096);
        XAPIC_BASE.store(crate::mem::PHYS_OFFSET + phys, Ordering::Relaxed);
        "xAPIC"
    }
}

/// Enables this CPU's local APIC in the chosen mode: spurious vector, task
/// priority 0, errors masked. On the bootstrap processor LINT0 stays the
/// 8259 PIC's line (ExtINT, "virtual wire", until device interrupts move
/// to the I/O APIC, [`mask_virtual_wire`]) and LINT1 the NMI; on the others both are masked.
pub fn init_this_cpu(bootstrap: bool) {
    // SAFETY: enabling the APIC (and x2APIC mode, chosen by `init` because
    // the CPU has it) only changes how this CPU receives interrupts; every
    // vector programmed below has a handler.
    unsafe {
        let mut base = rdmsr(IA32_APIC_BASE) | BASE_ENABLE;
        if X2APIC.load(Ordering::Relaxed) {
            base |= BASE_X2APIC;
        }
        wrmsr(IA32_APIC_BASE, base);
    }
    write(reg::XAPIC_SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    write(reg::XAPIC_TPR, 0);
    write(reg::XAPIC_LVT_ERROR, LVT_MASKED);
    if bootstrap {
        write(reg::XAPIC_LVT_LINT0, LVT_EXTINT);
        write(reg::XAPIC_LVT_LINT1, LVT_NMI);
    } else {
        write(reg::XAPIC_LVT_LINT0, LVT_MASKED);
        write(reg::XAPIC_LVT_LINT1, LVT_MASKED);
    }
}

/// Masks this (the bootstrap) CPU's LINT0, the 8259 PIC's virtual wire:
/// device interrupts come through the I/O APIC instead.
pub fn mask_virtual_wire() {
    write(reg::XAPIC_LVT_LINT0, LVT_MASKED);
}

/// Measures how many timer counts (divided by 16) make one scheduler tick
/// (`1 / hz` s), against the TSC, which `crate::time` has calibrated: the
/// timer counts down from its maximum for 10 ms. Bootstrap processor only.
pub fn calibrate_timer(hz: u32, tsc_hz: u64) {
    write(reg::XAPIC_TIMER_DIV_CONF, DIVIDE_BY_16);
    write(reg::XAPIC_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(reg::XAPIC_TIMER_INIT_COUNT, u32::MAX);
    let wait = tsc_hz / 100;
    let start = super::rdtsc();
    while super::rdtsc().wrapping_sub(start) < wait {
        core::hint::spin_loop();
    }
    let counted = u32::MAX - read(reg::XAPIC_TIMER_CURRENT_COUNT);
    write(reg::XAPIC_TIMER_INIT_COUNT, 0);
    let per_tick = (u64::from(counted) * 100 / u64::from(hz.max(1))).clamp(1, u64::from(u32::MAX));
    TICK_COUNT.store(per_tick as u32, Ordering::Relaxed);
}

/// Starts this CPU's timer: periodic, one [`TIMER_VECTOR`] interrupt per
/// scheduler tick ([`calibrate_timer`] must have run).
pub fn start_timer() {
    write(reg::XAPIC_TIMER_DIV_CONF, DIVIDE_BY_16);
    write(reg::XAPIC_LVT_TIMER, LVT_PERIODIC | u32::from(TIMER_VECTOR));
    write(
        reg::XAPIC_TIMER_INIT_COUNT,
        TICK_COUNT.load(Ordering::Relaxed).max(1),
    );
}

/// Acknowledges the interrupt being handled (not for spurious ones, nor for
/// the PIC's, which are acknowledged at the PIC).
pub fn end_of_interrupt() {
    write(reg::XAPIC_EOI, 0);
}

/// This CPU's local APIC id.
pub fn id() -> u32 {
    let raw = read(reg::XAPIC_ID);
    if X2APIC.load(Ordering::Relaxed) {
        raw
    } else {
        raw >> 24
    }
}

fn icr(vector: u8, apic_id: u32, mode: DeliveryMode, level: Level, trigger: TriggerMode) -> Icr {
    // The two modes encode the destination differently (SDM §11.6.1,
    // §11.12.9); everything else is the same.
    let (encode, destination): (fn(_, _, _, _, _, _, _, _) -> Icr, _) =
        if X2APIC.load(Ordering::Relaxed) {
            (Icr::for_x2apic, ApicId::X2Apic(apic_id))
        } else {
            (Icr::for_xapic, ApicId::XApic(apic_id as u8))
        };
    encode(
        vector,
        destination,
        DestinationShorthand::NoShorthand,
        mode,
        DestinationMode::Physical,
        DeliveryStatus::Idle,
        level,
        trigger,
    )
}

fn send(icr: Icr) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: writing the ICR sends the interrupt it describes; every
        // vector sent has a handler on every CPU.
        unsafe {
            wrmsr(
                X2APIC_MSR_BASE + reg::XAPIC_ICR0 / 16,
                (u64::from(icr.upper()) << 32) | u64::from(icr.lower()),
            )
        };
    } else {
        write(reg::XAPIC_ICR1, icr.upper());
        write(reg::XAPIC_ICR0, icr.lower());
        // Wait until the APIC has taken it (delivery status, bit 12).
        while read(reg::XAPIC_ICR0) & (1 << 12) != 0 {
            core::hint::spin_loop();
        }
    }
}

/// Sends the fixed interrupt `vector` to the CPU whose local APIC id is `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    send(icr(
        vector,
        apic_id,
        DeliveryMode::Fixed,
        Level::Assert,
        TriggerMode::Edge,
    ));
}

/// Sends INIT (assert, level-triggered), which resets `apic_id`'s CPU to
/// wait for a STARTUP (SDM §8.4.4.1).
pub fn send_init(apic_id: u32) {
    send(icr(
        0,
        apic_id,
        DeliveryMode::Init,
        Level::Assert,
        TriggerMode::Level,
    ));
}

/// Sends STARTUP: `apic_id`'s CPU starts in real mode at physical address
/// `page * 4096`.
pub fn send_startup(apic_id: u32, page: u8) {
    send(icr(
        page,
        apic_id,
        DeliveryMode::StartUp,
        Level::Assert,
        TriggerMode::Edge,
    ));
}
