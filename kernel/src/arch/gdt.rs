//! The GDT and TSS: kernel and user segments, the ring-0 stack used on entry from
//! ring 3 (`rsp0`, set per process), and an IST stack for double faults.
//!
//! The descriptor order (kernel code, kernel data, user code32, user data, user
//! code64) is the one `SYSRET` requires, for the `syscall` entry of a later issue.

use core::ptr::addr_of_mut;
use x86_64::PrivilegeLevel;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{
    Descriptor, DescriptorFlags, GlobalDescriptorTable, SegmentSelector,
};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (1-based in the IDT, 0-based here) of the double-fault stack.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;

const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;

#[repr(align(16))]
struct Stack(#[allow(dead_code)] [u8; DOUBLE_FAULT_STACK_SIZE]);

static mut DOUBLE_FAULT_STACK: Stack = Stack([0; DOUBLE_FAULT_STACK_SIZE]);
static mut TSS: TaskStateSegment = TaskStateSegment::new();
static mut GDT: GlobalDescriptorTable = GlobalDescriptorTable::new();

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

/// Builds and loads the GDT and TSS.
pub fn init() {
    // SAFETY: runs once at boot on the only CPU before interrupts are enabled;
    // nothing else references these statics yet.
    unsafe {
        let tss = &mut *addr_of_mut!(TSS);
        let stack_start = VirtAddr::from_ptr(addr_of_mut!(DOUBLE_FAULT_STACK));
        tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] =
            stack_start + DOUBLE_FAULT_STACK_SIZE as u64;

        let gdt = &mut *addr_of_mut!(GDT);
        let sel = [
            gdt.append(Descriptor::kernel_code_segment()),
            gdt.append(Descriptor::kernel_data_segment()),
            gdt.append(Descriptor::UserSegment(DescriptorFlags::USER_CODE32.bits())),
            gdt.append(Descriptor::user_data_segment()),
            gdt.append(Descriptor::user_code_segment()),
            gdt.append(Descriptor::tss_segment(&*addr_of_mut!(TSS))),
        ];
        assert_eq!(
            [sel[0], sel[1], sel[2], sel[3], sel[4], sel[5]],
            [
                KERNEL_CODE,
                KERNEL_DATA,
                USER_CODE32,
                USER_DATA,
                USER_CODE64,
                TSS_SELECTOR
            ]
        );
        gdt.load();
        CS::set_reg(KERNEL_CODE);
        SS::set_reg(KERNEL_DATA);
        DS::set_reg(KERNEL_DATA);
        ES::set_reg(KERNEL_DATA);
        load_tss(TSS_SELECTOR);
    }
}

/// Sets the stack the CPU switches to when an interrupt or system call arrives
/// from ring 3 (`TSS.rsp0`): the top of the current process's kernel stack.
pub fn set_kernel_stack(top: VirtAddr) {
    // SAFETY: single CPU, called with interrupts disabled; the CPU reads rsp0 only
    // on the next ring-3 → ring-0 transition.
    unsafe { (*addr_of_mut!(TSS)).privilege_stack_table[0] = top };
}
