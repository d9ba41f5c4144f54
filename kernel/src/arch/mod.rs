//! x86_64 hardware: segments, interrupts, the PIC and PIT, the FPU, QEMU's exit
//! device. All port and register access of the kernel's core lives here.

pub mod apic;
pub mod context;
pub mod fpu;
pub mod fw_cfg;
pub mod gdt;
pub mod idt;
pub mod ioapic;
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

/// Lets device interrupt line `line` (0–15, the line the firmware assigned
/// a PCI function) interrupt the first CPU, on vector `pic::PIC1_OFFSET +
/// line`: through the I/O APIC on a node that uses one ([`use_io_apic`]),
/// else through the 8259 PIC. The route is logged; a line the I/O APIC
/// cannot route stays masked (logged), and its device is then served only
/// when the first CPU's timer ticks.
pub fn enable_pci_line(line: u8) {
    let vector = pic::PIC1_OFFSET + line;
    if !ioapic::in_use() {
        pic::unmask(line);
        log::info!("irq: line {line} through the 8259 PIC, vector {vector}");
        return;
    }
    match ioapic::route_pci_line(line, smp::bootstrap_apic_id(), vector) {
        Ok(route) => log::info!("irq: line {line} through the I/O APIC: {route}"),
        Err(why) => log::warn!(
            "irq: line {line} cannot go through the I/O APIC ({why}); its device is polled at each tick"
        ),
    }
}

/// Ends the interrupt of a device line (vector 32 + line), at the
/// controller that delivered it ([`enable_pci_line`]).
pub fn end_of_line_interrupt(vector: u8) {
    if ioapic::in_use() {
        apic::end_of_interrupt();
    } else {
        pic::end_of_interrupt(vector);
    }
}

/// Moves device interrupts from the 8259 PIC to the I/O APICs the MADT
/// lists, on a node whose CPUs use their local APICs ([`smp`]): masks the
/// PIC and the bootstrap CPU's virtual-wire input (LINT0). Without an I/O
/// APIC nothing changes. Before any line is enabled.
pub fn use_io_apic(io_apics: &[ioapic::IoApicInfo], overrides: &[ioapic::LineOverride]) {
    if ioapic::init(io_apics, overrides) {
        pic::mask_all();
        apic::mask_virtual_wire();
    }
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
