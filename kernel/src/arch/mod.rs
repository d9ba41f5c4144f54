//! x86_64 hardware: segments, interrupts, the PIC and PIT, the FPU, QEMU's exit
//! device. All port and register access of the kernel's core lives here.

pub mod context;
pub mod fpu;
pub mod fw_cfg;
pub mod gdt;
pub mod idt;
pub mod pic;
pub mod protect;
pub mod qemu;
pub mod serial;
pub mod trap;

/// Sets up the CPU for the kernel: GDT and TSS, IDT, the PIC and timer, SSE,
/// the `syscall` entries, and the protections the CPU has (returned).
/// Interrupts stay disabled; the scheduler's idle loop enables them.
pub fn init() -> protect::Protections {
    gdt::init();
    idt::init();
    pic::init();
    fpu::init();
    trap::init_syscall_instruction();
    protect::init()
}

/// Disables maskable interrupts.
pub fn interrupts_off() {
    x86_64::instructions::interrupts::disable();
}

/// Halts until the next interrupt with interrupts enabled, then disables them
/// again. `sti; hlt` is atomic, so no wake-up can be lost in between.
pub fn wait_for_interrupt() {
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is always available on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}
