//! The interrupt descriptor table: 256 gate descriptors (Intel SDM Vol. 3A,
//! §6.14.1, Figure 6-8), every used vector pointing at its entry stub in
//! [`super::trap`].

use super::gdt;
use core::ptr::addr_of_mut;
use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

/// One 64-bit IDT gate descriptor.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    /// Bits 0–2: interrupt-stack-table index (0 = none).
    ist: u8,
    /// Present, DPL, type (0xE = 64-bit interrupt gate).
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const _: () = assert!(core::mem::size_of::<Gate>() == 16);

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// An interrupt gate (interrupts stay disabled in the handler) to `handler`,
    /// callable with `int n` from privilege level `dpl`, on IST stack `ist` (1-based, 0 = none).
    fn interrupt(handler: u64, dpl: u8, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: gdt::KERNEL_CODE.0,
            ist,
            attributes: 0x80 | (dpl << 5) | 0xE,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

const _: () = assert!(core::mem::size_of::<Idt>() == 4096);

static mut IDT: Idt = Idt([Gate::MISSING; 256]);

/// Fills and loads the IDT: CPU exceptions 0–31 (double fault on its own IST
/// stack), PIC interrupts 32–47, SiON's system-call vector 0x40, the only one
/// ring 3 may raise with `int`, and the local APIC's vectors (timer, wake,
/// TLB flush, spurious: [`super::apic`]).
pub fn init() {
    // SAFETY: runs once at boot with interrupts disabled; the IDT is a static
    // that lives for ever, as `lidt` requires.
    unsafe {
        let idt = &mut *addr_of_mut!(IDT);
        for (vector, stub) in super::trap::STUBS.iter() {
            let (dpl, ist) = match *vector {
                8 => (0, gdt::DOUBLE_FAULT_IST_INDEX as u8 + 1),
                // Breakpoint and the system-call vector may be raised from ring 3.
                3 => (3, 0),
                v if v == sion_abi::SYSCALL_VECTOR => (3, 0),
                // i386 Linux system calls (`int 0x80`) from applications.
                0x80 => (3, 0),
                _ => (0, 0),
            };
            idt.0[*vector as usize] = Gate::interrupt(*stub as *const () as u64, dpl, ist);
        }
    }
    load();
}

/// Loads the IDT on this CPU (every CPU shares the one table [`init`] built).
pub fn load() {
    // SAFETY: the IDT is a static that lives for ever, as `lidt` requires,
    // and is no longer written after `init`.
    unsafe {
        lidt(&DescriptorTablePointer {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: VirtAddr::from_ptr(addr_of_mut!(IDT)),
        });
    }
}
