//! The GDT and TSS, one of each per CPU: kernel and user segments, the ring-0
//! stack used on entry from ring 3 (`rsp0`, set per process), an IST stack
//! for double faults, and one thread-local-storage segment for i386
//! applications (`set_thread_area`), set for the process on that CPU.
//!
//! The descriptor order (kernel code, kernel data, user code32, user data, user
//! code64) is the one `SYSCALL`/`SYSRET` require (Intel SDM Vol. 2B, SYSCALL).

use super::percpu::{self, MAX_CPUS};
use core::ptr::addr_of_mut;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::{lgdt, load_tss};
use x86_64::structures::DescriptorTablePointer;
use x86_64::structures::gdt::{Descriptor, DescriptorFlags, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

/// IST slot (1-based in the IDT, 0-based here) of the double-fault stack.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;

const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;

#[repr(align(16))]
struct Stack(#[allow(dead_code)] [u8; DOUBLE_FAULT_STACK_SIZE]);

static mut DOUBLE_FAULT_STACKS: [Stack; MAX_CPUS] =
    [const { Stack([0; DOUBLE_FAULT_STACK_SIZE]) }; MAX_CPUS];
static mut TSS: [TaskStateSegment; MAX_CPUS] = [const { TaskStateSegment::new() }; MAX_CPUS];

/// Number of 8-byte GDT slots: null, 5 segments, the TSS (two slots), TLS.
const GDT_SLOTS: usize = 9;

#[repr(C, align(16))]
struct Gdt([u64; GDT_SLOTS]);

static mut GDT: [Gdt; MAX_CPUS] = [const { Gdt([0; GDT_SLOTS]) }; MAX_CPUS];

/// Selector of the kernel code segment (ring 0).
pub const KERNEL_CODE: SegmentSelector = SegmentSelector::new(1, PrivilegeLevel::Ring0);
/// Selector of the kernel data segment (ring 0).
pub const KERNEL_DATA: SegmentSelector = SegmentSelector::new(2, PrivilegeLevel::Ring0);
/// Selector of the 32-bit user code segment (compatibility mode, ring 3).
pub const USER_CODE32: SegmentSelector = SegmentSelector::new(3, PrivilegeLevel::Ring3);
/// Selector of the user data and stack segment (ring 3).
pub const USER_DATA: SegmentSelector = SegmentSelector::new(4, PrivilegeLevel::Ring3);
/// Selector of the 64-bit user code segment (ring 3).
pub const USER_CODE64: SegmentSelector = SegmentSelector::new(5, PrivilegeLevel::Ring3);
const TSS_SELECTOR: SegmentSelector = SegmentSelector::new(6, PrivilegeLevel::Ring0);
/// GDT index of the i386 TLS segment an application gets from `set_thread_area`.
pub const TLS_INDEX: u16 = 8;

fn user_segment(d: Descriptor) -> u64 {
    match d {
        Descriptor::UserSegment(bits) => bits,
        Descriptor::SystemSegment(..) => unreachable!("a user segment"),
    }
}

/// Builds and loads this CPU's GDT and TSS ([`percpu::init`] must have run).
pub fn init() {
    let cpu = percpu::index();
    // SAFETY: runs once per CPU at its start, before interrupts are enabled;
    // each CPU touches only its own slots, which live for ever.
    unsafe {
        let tss = &mut *addr_of_mut!(TSS[cpu]);
        let stack_start = VirtAddr::from_ptr(addr_of_mut!(DOUBLE_FAULT_STACKS[cpu]));
        tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] =
            stack_start + DOUBLE_FAULT_STACK_SIZE as u64;
        let gdt = &mut (*addr_of_mut!(GDT[cpu])).0;
        gdt[1] = user_segment(Descriptor::kernel_code_segment());
        gdt[2] = user_segment(Descriptor::kernel_data_segment());
        gdt[3] = DescriptorFlags::USER_CODE32.bits();
        gdt[4] = user_segment(Descriptor::user_data_segment());
        gdt[5] = user_segment(Descriptor::user_code_segment());
        let Descriptor::SystemSegment(low, high) =
            Descriptor::tss_segment(&*addr_of_mut!(TSS[cpu]))
        else {
            unreachable!("a TSS is a system segment")
        };
        gdt[6] = low;
        gdt[7] = high;
        lgdt(&DescriptorTablePointer {
            limit: (GDT_SLOTS * 8 - 1) as u16,
            base: VirtAddr::from_ptr(addr_of_mut!(GDT[cpu])),
        });
        CS::set_reg(KERNEL_CODE);
        SS::set_reg(KERNEL_DATA);
        DS::set_reg(KERNEL_DATA);
        ES::set_reg(KERNEL_DATA);
        load_tss(TSS_SELECTOR);
    }
}

/// Sets the stack this CPU switches to when an interrupt or system call
/// arrives from ring 3 (`TSS.rsp0` and the `syscall` entry's copy in
/// [`percpu`]): the top of the current process's kernel stack.
pub fn set_kernel_stack(top: VirtAddr) {
    // SAFETY: this CPU's own TSS, written with interrupts disabled; the CPU
    // reads rsp0 only on the next ring-3 → ring-0 transition.
    unsafe {
        (*addr_of_mut!(TSS[percpu::index()])).privilege_stack_table[0] = top;
    }
    percpu::set_kernel_stack_top(top.as_u64());
}

/// Points this CPU's i386 TLS segment at `base` (4 GiB limit, 32-bit,
/// writable, DPL 3) and loads the user's `gs` with it, or clears it (user GS
/// base 0) when `None`. The kernel's own GS base ([`percpu`]) is kept: the
/// load happens between two `swapgs`, so it lands in the user's GS, which
/// the return to ring 3 swaps back in.
pub fn set_tls(base: Option<u32>) {
    let descriptor = base.map_or(0, |b| {
        let b = u64::from(b);
        // Limit 0xFFFFF in 4 KiB units, type 0x2 (data, writable), S, DPL 3, P,
        // D/B (32-bit), G. Base split over bits 16–39 and 56–63.
        0x00CF_F200_0000_FFFF | ((b & 0xFF_FFFF) << 16) | ((b >> 24) << 56)
    });
    // SAFETY: this CPU's own GDT, with interrupts off; slot TLS_INDEX is used
    // only for this, and `gs` is reloaded below so no stale base stays cached.
    // Interrupts are off, so nothing runs between the two `swapgs`.
    unsafe {
        (*addr_of_mut!(GDT[percpu::index()])).0[TLS_INDEX as usize] = descriptor;
        let selector: u16 = if base.is_some() {
            (TLS_INDEX << 3) | 3
        } else {
            0
        };
        core::arch::asm!("swapgs", "mov gs, {0:x}", "swapgs", in(reg) selector, options(nostack, preserves_flags));
        if base.is_none() {
            x86::msr::wrmsr(x86::msr::IA32_KERNEL_GSBASE, 0);
        }
    }
}
