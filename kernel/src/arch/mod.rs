//! x86_64 hardware: segments, interrupts, the PIC and PIT, the FPU, QEMU's exit
//! device. All port and register access of the kernel's core lives here.

pub mod apic;
pub mod context;
pub mod fpu;
pub mod fw_cfg;
pub mod gdt;
pub mod idt;
pub mod percpu;
pub mod pic;
pub mod protect;
pub mod qemu;
pub mod serial;
pub mod smp;
pub mod trap;

/// Sets up the bootstrap CPU for the kernel: its per-CPU data, GDT and TSS,
/// IDT, the PIC and timer, SSE, the `syscall` entries, and the protections
/// the CPU has (returned); then takes the kernel lock ([`smp`]), as every
/// CPU running kernel code holds it. Interrupts stay disabled; the
/// scheduler's idle loop enables them.
pub fn init() -> protect::Protections {
    percpu::init(0);
    gdt::init();
    idt::init();
    pic::init();
    fpu::init();
    trap::init_syscall_instruction();
    let protections = protect::init();
    smp::lock_kernel();
    protections
}

/// Sets up an application processor started as CPU `index` (in 64-bit mode
/// on the trampoline's page table): its per-CPU data, GDT and TSS, the
/// shared IDT, SSE, the `syscall` entries and the same protections; tells
/// the bootstrap CPU it arrived, then takes the kernel lock and starts its
/// local APIC timer.
pub fn init_application_processor(index: usize) {
    percpu::init(index);
    gdt::init();
    idt::load();
    fpu::init();
    trap::init_syscall_instruction();
    protect::init();
    smp::arrived();
    smp::lock_kernel();
    smp::start_this_cpu_timer();
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
