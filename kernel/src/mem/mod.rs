//! Memory: physical frames, the kernel heap, and per-process address spaces.
//!
//! The bootloader maps all physical memory at [`PHYS_OFFSET`] in the upper half;
//! the kernel reaches any frame through that map (SiON paper §4.2.3), which is
//! how IPC copies straight from one process's memory into another's.

pub mod frame;
pub mod heap;
pub mod space;

use bootloader_api::info::MemoryRegions;
use x86_64::{PhysAddr, VirtAddr};

/// Virtual address of physical address 0 in every address space.
pub const PHYS_OFFSET: u64 = 0xFFFF_8000_0000_0000;

/// Size of a page and a frame in bytes.
pub use sion_abi::page::PAGE_SIZE;

/// Sets up the frame allocator and the kernel heap from the boot memory map.
pub fn init(regions: &'static MemoryRegions) {
    space::init();
    let heap_start = frame::init(regions, heap::HEAP_SIZE);
    heap::init(phys_to_virt(heap_start));
    frame::enable_recycling();
}

/// The ramdisk the bootloader loaded (the tar archive of process images) at
/// virtual address `addr` with `len` bytes (`BootInfo::ramdisk_addr`,
/// `ramdisk_len`); empty when there is none.
pub fn boot_ramdisk(addr: Option<u64>, len: u64) -> &'static [u8] {
    match addr {
        // SAFETY: the bootloader loaded the ramdisk at this address with this
        // length, mapped it, and nothing else uses that memory.
        Some(addr) => unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) },
        None => &[],
    }
}

/// The kernel's virtual address for physical address `addr`.
pub fn phys_to_virt(addr: PhysAddr) -> VirtAddr {
    VirtAddr::new(addr.as_u64() + PHYS_OFFSET)
}

/// The physical address behind kernel virtual address `virt` in the current
/// address space. Panics if it is unmapped: only called for kernel memory.
pub fn virt_to_phys(virt: u64) -> u64 {
    use x86_64::structures::paging::mapper::Translate;
    let table = space::current_table();
    table
        .translate_addr(VirtAddr::new(virt))
        .unwrap_or_else(|| panic!("virt_to_phys: {virt:#x} is not mapped"))
        .as_u64()
}

/// Makes sure device memory `[phys, phys + size)` is reachable through the
/// physical-memory map (the bootloader maps RAM, not necessarily every device
/// window), mapping missing pages uncached in the kernel's shared upper half.
pub fn map_mmio(phys: u64, size: u64) {
    space::map_kernel_mmio(phys, size);
}
