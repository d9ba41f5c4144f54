//! The physical frame allocator: hands out the usable 4 KiB frames of the boot
//! memory map, first by walking the regions, then from a list of freed frames.

use super::PAGE_SIZE;
use alloc::vec::Vec;
use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use spin::Mutex;
use x86_64::PhysAddr;
use x86_64::structures::paging::{FrameAllocator, FrameDeallocator, PhysFrame, Size4KiB};

/// Frames below this address are left alone (BIOS data, real-mode structures).
const LOW_MEMORY_END: u64 = 0x10_0000;

struct Frames {
    regions: &'static MemoryRegions,
    /// Index of the region being walked and the next frame in it.
    region: usize,
    next: u64,
    /// A reserved physical range (the kernel heap) never handed out.
    reserved: (u64, u64),
    freed: Vec<PhysFrame>,
    recycling: bool,
    free_frames: u64,
}

static FRAMES: Mutex<Option<Frames>> = Mutex::new(None);

/// Takes the boot memory map, reserves `reserve` contiguous bytes for the kernel
/// heap and returns their physical start. Panics when no usable region is large
/// enough: the node cannot run without a heap.
pub fn init(regions: &'static MemoryRegions, reserve: u64) -> PhysAddr {
    let usable = || {
        regions
            .iter()
            .filter(|r| r.kind == MemoryRegionKind::Usable)
    };
    let heap = usable()
        .map(|r| {
            (
                align_up(r.start.max(LOW_MEMORY_END)),
                sion_abi::page::page_down(r.end),
            )
        })
        .find(|(s, e)| e.saturating_sub(*s) >= reserve)
        .map(|(s, _)| s)
        .expect("no usable memory region large enough for the kernel heap");
    let total: u64 = usable()
        .map(|r| {
            ((sion_abi::page::page_down(r.end))
                .saturating_sub(align_up(r.start.max(LOW_MEMORY_END))))
                / PAGE_SIZE
        })
        .sum();
    TOTAL_FRAMES.store(
        total - reserve / PAGE_SIZE,
        core::sync::atomic::Ordering::Relaxed,
    );
    *FRAMES.lock() = Some(Frames {
        regions,
        region: 0,
        next: 0,
        reserved: (heap, heap + reserve),
        freed: Vec::new(),
        recycling: false,
        free_frames: total - reserve / PAGE_SIZE,
    });
    PhysAddr::new(heap)
}

/// The first of `count` consecutive usable frames below 1 MiB, at or above
/// 64 KiB (clear of the real-mode interrupt table and BIOS data), which the
/// allocator never hands out: for the application processors' start-up
/// trampoline, which must lie below 1 MiB. `None` if the map has none.
pub fn low_frames(count: u64) -> Option<u64> {
    const START: u64 = 0x1_0000;
    let f = FRAMES.lock();
    let regions = f.as_ref()?.regions;
    regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
        .map(|r| {
            (
                align_up(r.start.max(START)),
                sion_abi::page::page_down(r.end.min(LOW_MEMORY_END)),
            )
        })
        .find(|(s, e)| e.saturating_sub(*s) >= count * PAGE_SIZE)
        .map(|(s, _)| s)
}

/// Allows freed frames to be kept for reuse (needs the heap).
pub fn enable_recycling() {
    if let Some(f) = FRAMES.lock().as_mut() {
        f.recycling = true;
    }
}

fn align_up(addr: u64) -> u64 {
    sion_abi::page::page_up(addr).expect("physical addresses are far below 2^64")
}

impl Frames {
    fn allocate(&mut self) -> Option<PhysFrame> {
        if let Some(frame) = self.freed.pop() {
            self.free_frames -= 1;
            return Some(frame);
        }
        while let Some(region) = self.regions.get(self.region) {
            if region.kind == MemoryRegionKind::Usable {
                let start = align_up(region.start.max(LOW_MEMORY_END));
                let addr = self.next.max(start);
                let in_reserved = addr >= self.reserved.0 && addr < self.reserved.1;
                if in_reserved {
                    self.next = self.reserved.1;
                    continue;
                }
                if addr + PAGE_SIZE <= region.end {
                    self.next = addr + PAGE_SIZE;
                    self.free_frames -= 1;
                    return Some(PhysFrame::containing_address(PhysAddr::new(addr)));
                }
            }
            self.region += 1;
        }
        None
    }
}

/// Allocates one zeroed frame; `None` when physical memory is exhausted.
pub fn allocate_zeroed() -> Option<PhysFrame> {
    let frame = FRAMES.lock().as_mut()?.allocate()?;
    let ptr = super::phys_to_virt(frame.start_address()).as_mut_ptr::<u8>();
    // SAFETY: the frame was just handed out, so nothing else uses it, and the
    // physical-memory map covers it.
    unsafe { core::ptr::write_bytes(ptr, 0, PAGE_SIZE as usize) };
    Some(frame)
}

/// Returns a frame obtained from [`allocate_zeroed`].
pub fn free(frame: PhysFrame) {
    if let Some(f) = FRAMES.lock().as_mut()
        && f.recycling
    {
        f.freed.push(frame);
        f.free_frames += 1;
    }
}

/// Usable physical memory in bytes (less the kernel heap).
pub fn total_bytes() -> u64 {
    TOTAL_FRAMES.load(core::sync::atomic::Ordering::Relaxed) * PAGE_SIZE
}

static TOTAL_FRAMES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Bytes of physical memory not yet handed out.
pub fn free_bytes() -> u64 {
    FRAMES
        .lock()
        .as_ref()
        .map_or(0, |f| f.free_frames * PAGE_SIZE)
}

/// The allocator as the `x86_64` crate's page-table code wants it.
pub struct GlobalFrames;

// SAFETY: `allocate_zeroed` returns each usable frame at most once until freed.
unsafe impl FrameAllocator<Size4KiB> for GlobalFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        allocate_zeroed()
    }
}

impl FrameDeallocator<Size4KiB> for GlobalFrames {
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame) {
        free(frame);
    }
}
