//! The kernel heap: a `linked_list_allocator` heap over one contiguous run of
//! physical memory, reached through the physical-memory map.

use linked_list_allocator::LockedHeap;
use x86_64::VirtAddr;

/// Size of the kernel heap in bytes (16 MiB).
pub const HEAP_SIZE: u64 = 16 * 1024 * 1024;

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Bytes of the kernel heap kept free for the kernel's own work (network
/// buffers, IPC, the process table): creating a process never takes them.
pub const HEAP_RESERVE: usize = 2 * 1024 * 1024;

/// Whether `bytes` more can be taken from the heap for a new process
/// without eating into [`HEAP_RESERVE`], so a job that makes processes or
/// threads without end gets an error, not a kernel out of memory.
pub fn has_room_for(bytes: usize) -> bool {
    ALLOCATOR.lock().free() >= bytes.saturating_add(HEAP_RESERVE)
}

/// Hands `HEAP_SIZE` bytes at `start` to the allocator.
pub fn init(start: VirtAddr) {
    // SAFETY: `start` maps HEAP_SIZE bytes of usable RAM that the frame allocator
    // has reserved for the heap and never hands out; this runs once.
    unsafe {
        ALLOCATOR
            .lock()
            .init(start.as_mut_ptr(), HEAP_SIZE as usize)
    };
}
