//! Per-CPU data, reached through the GS base while the CPU is in the kernel.
//!
//! Every entry from ring 3 executes `swapgs` (and every return to ring 3
//! again), so in the kernel the GS base points at this CPU's [`PerCpu`] and
//! the user's GS base waits in `IA32_KERNEL_GS_BASE` (AMD64 APM Vol. 2
//! §4.5.3, SWAPGS; the same scheme as Linux's `entry_64.S`). The `syscall`
//! entry needs this: it finds its kernel stack at `gs:[kernel_stack_top]`
//! before it may touch any register.
//!
//! CPUs are numbered 0 (the bootstrap processor) to `MAX_CPUS - 1` in the
//! order they were started; this index, not the local APIC id, names a CPU
//! everywhere in the kernel.

use core::ptr::addr_of_mut;

/// Most CPUs SiON runs on; further processors the firmware lists stay halted
/// (the same limit as `qemu-net up --cpus`).
pub const MAX_CPUS: usize = 16;

/// What one CPU keeps for itself. The first fields are read by the entry
/// stubs at fixed offsets ([`KERNEL_STACK_TOP`], [`USER_RSP`]).
#[repr(C, align(64))]
pub struct PerCpu {
    /// Top of the current process's kernel stack (the `syscall` entry's stack).
    kernel_stack_top: u64,
    /// Scratch slot for the user stack pointer in the `syscall` entry.
    user_rsp: u64,
    /// The scheduler loop's stack pointer while a process runs.
    scheduler_rsp: u64,
    /// This CPU's index.
    index: u64,
}

/// Offset of [`PerCpu::kernel_stack_top`] from the GS base.
pub const KERNEL_STACK_TOP: usize = core::mem::offset_of!(PerCpu, kernel_stack_top);
/// Offset of [`PerCpu::user_rsp`] from the GS base.
pub const USER_RSP: usize = core::mem::offset_of!(PerCpu, user_rsp);
const INDEX: usize = core::mem::offset_of!(PerCpu, index);

const NEW: PerCpu = PerCpu {
    kernel_stack_top: 0,
    user_rsp: 0,
    scheduler_rsp: 0,
    index: 0,
};

static mut CPUS: [PerCpu; MAX_CPUS] = [NEW; MAX_CPUS];

/// Points this CPU's GS base at its [`PerCpu`] (the user's GS base, in
/// `IA32_KERNEL_GS_BASE`, starts at 0). Called first thing on every CPU,
/// with interrupts off; `index` must be below [`MAX_CPUS`] and unused.
pub fn init(index: usize) {
    assert!(index < MAX_CPUS, "CPU index {index} out of range");
    // SAFETY: each CPU writes only its own slot, once, before anything reads
    // it through GS; the slot is a static that lives for ever.
    unsafe {
        let slot = addr_of_mut!(CPUS[index]);
        (*slot).index = index as u64;
        x86::msr::wrmsr(x86::msr::IA32_GS_BASE, slot as u64);
        x86::msr::wrmsr(x86::msr::IA32_KERNEL_GSBASE, 0);
    }
}

/// The index of the CPU this runs on (0 for the bootstrap processor).
pub fn index() -> usize {
    let index: u64;
    // SAFETY: in the kernel GS points at this CPU's PerCpu (module docs); the
    // read has no side effect. Not `pure`: a process may continue on another
    // CPU after a switch, so the value must be read again each time.
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) index, off = const INDEX, options(nostack, readonly, preserves_flags));
    }
    index as usize
}

fn this() -> *mut PerCpu {
    // SAFETY: index() is below MAX_CPUS (checked by `init`).
    unsafe { addr_of_mut!(CPUS[index()]) }
}

/// Sets the kernel stack the `syscall` entry switches to on this CPU.
pub fn set_kernel_stack_top(top: u64) {
    // SAFETY: only this CPU touches its own slot, with interrupts off.
    unsafe { (*this()).kernel_stack_top = top };
}

/// Where this CPU's scheduler loop keeps its stack pointer while a process
/// runs ([`super::context`]).
pub fn scheduler_rsp_slot() -> *mut u64 {
    // SAFETY: as above; the pointer stays valid for ever (a static).
    unsafe { addr_of_mut!((*this()).scheduler_rsp) }
}
