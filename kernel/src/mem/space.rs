//! Address spaces: one four-level page table per process. The upper half (PML4
//! entries 256–511: the kernel, its heap and the physical-memory map) is shared by
//! every address space; the lower half is the process's own user memory.
//!
//! Every access the kernel makes to user memory goes through [`AddressSpace`],
//! which checks that each page is mapped, user-accessible and (for writes)
//! writable, so a bad pointer from a process is an error, never a kernel fault.

use super::{PAGE_SIZE, frame, phys_to_virt};
use sion_abi::Error;
use spin::Once;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as Flags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

/// First address past the user half of an address space (the canonical hole
/// starts here).
pub const USER_END: u64 = 0x0000_8000_0000_0000;
/// Lowest address a process may map (page 0 stays unmapped to catch null pointers).
pub const USER_START: u64 = 0x1000;

static KERNEL_PML4: Once<PhysFrame> = Once::new();

/// Records the boot page table as the kernel's, whose upper half every address
/// space shares, and enables no-execute pages.
pub fn init() {
    KERNEL_PML4.call_once(|| Cr3::read().0);
    // SAFETY: setting EFER.NXE only makes the NO_EXECUTE page bit meaningful.
    unsafe { Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE)) };
}

/// Switches to the kernel's own address space (used by the scheduler).
pub fn activate_kernel() {
    let pml4 = *KERNEL_PML4.get().expect("mem::space::init not called");
    crate::arch::smp::note_loaded(pml4.start_address().as_u64());
    // SAFETY: the boot page table maps the kernel and stays valid for ever.
    unsafe { Cr3::write(pml4, Cr3Flags::empty()) };
}

/// The kernel's page table (frame address), whose upper half every address
/// space shares.
pub fn kernel_table() -> u64 {
    KERNEL_PML4
        .get()
        .expect("mem::space::init not called")
        .start_address()
        .as_u64()
}

/// Permissions of a user mapping.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    /// Writable by the process.
    pub write: bool,
    /// Executable by the process.
    pub execute: bool,
}

/// A process's address space: its PML4 frame and everything mapped below
/// [`USER_END`]. Dropping it frees every user frame and page-table frame.
pub struct AddressSpace {
    pml4: PhysFrame,
}

fn table_at(frame: PhysAddr) -> *mut PageTable {
    phys_to_virt(frame).as_mut_ptr()
}

impl AddressSpace {
    /// A new address space with the kernel's upper half and an empty user half.
    /// Errors: [`Error::NoMemory`].
    pub fn new() -> Result<AddressSpace, Error> {
        let pml4 = frame::allocate_zeroed().ok_or(Error::NoMemory)?;
        let kernel = KERNEL_PML4.get().expect("mem::space::init not called");
        // SAFETY: both frames hold page tables reached through the physical
        // map; the new one is ours alone and the kernel's is only read.
        unsafe {
            let new = &mut *table_at(pml4.start_address());
            let kernel = &*table_at(kernel.start_address());
            for i in 256..512 {
                new[i] = kernel[i].clone();
            }
        }
        Ok(AddressSpace { pml4 })
    }

    /// Makes this the CPU's current address space. Nothing is done when it
    /// already is (threads sharing a space, a process run again after no
    /// other): the TLB it holds is still right, as every change of a space's
    /// mappings flushes the TLB of each CPU that has it loaded
    /// ([`AddressSpace::flush_everywhere`]).
    pub fn activate(&self) {
        crate::arch::smp::note_loaded(self.pml4.start_address().as_u64());
        if Cr3::read().0 == self.pml4 {
            return;
        }
        // SAFETY: the upper half, where the kernel runs, is identical in every
        // address space, so the kernel keeps running after the switch.
        unsafe { Cr3::write(self.pml4, Cr3Flags::empty()) };
    }

    fn mapper(&self) -> OffsetPageTable<'_> {
        // SAFETY: the PML4 frame is owned by `self` and all physical memory is
        // mapped at PHYS_OFFSET; the borrow of `self` keeps the table alive.
        // An address space may be shared by several threads (`Arc`): every
        // edit happens with the process table locked on the one CPU that
        // runs the kernel (it is not preemptible), so no two mappers of one
        // table are ever used at once.
        unsafe {
            OffsetPageTable::new(
                &mut *table_at(self.pml4.start_address()),
                VirtAddr::new(super::PHYS_OFFSET),
            )
        }
    }

    /// Maps `[start, start + len)` (rounded out to pages) to fresh zeroed frames
    /// with `access`. Pages already mapped are kept, with their permissions
    /// widened. Errors: [`Error::BadAddress`] outside user space,
    /// [`Error::NoMemory`].
    pub fn map(&self, start: u64, len: u64, access: Access) -> Result<(), Error> {
        let end = start.checked_add(len).ok_or(Error::BadAddress)?;
        if start < USER_START || end > USER_END {
            return Err(Error::BadAddress);
        }
        let mut flags = Flags::PRESENT | Flags::USER_ACCESSIBLE;
        if access.write {
            flags |= Flags::WRITABLE;
        }
        if !access.execute {
            flags |= Flags::NO_EXECUTE;
        }
        let parent = Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE;
        let first = Page::<Size4KiB>::containing_address(VirtAddr::new(start));
        let last = Page::<Size4KiB>::containing_address(VirtAddr::new(end.max(start + 1) - 1));
        let mut mapper = self.mapper();
        let mut widened = false;
        for page in Page::range_inclusive(first, last) {
            if mapper.translate_page(page).is_ok() {
                widened = true;
                // Already mapped (two segments sharing a page): widen permissions.
                // SAFETY: only permission bits of our own user mapping change.
                let old = unsafe { Self::leaf_flags(&mut mapper, page) };
                let mut merged = old | (flags & Flags::WRITABLE);
                if !flags.contains(Flags::NO_EXECUTE) {
                    merged.remove(Flags::NO_EXECUTE);
                }
                // SAFETY: as above; the TLBs are flushed below.
                unsafe {
                    mapper
                        .update_flags(page, merged)
                        .map_err(|_| Error::BadAddress)?
                        .ignore()
                };
                continue;
            }
            let frame = frame::allocate_zeroed().ok_or(Error::NoMemory)?;
            // SAFETY: the frame is fresh and zeroed, the page lies in user space
            // and was unmapped, so no existing reference is affected.
            let result = unsafe {
                mapper.map_to_with_table_flags(page, frame, flags, parent, &mut frame::GlobalFrames)
            };
            match result {
                Ok(flush) => flush.ignore(),
                Err(_) => {
                    frame::free(frame);
                    if widened {
                        self.flush_everywhere();
                    }
                    return Err(Error::NoMemory);
                }
            }
        }
        if widened {
            self.flush_everywhere();
        }
        Ok(())
    }

    /// After a change of mappings: empties the TLB of this CPU if it has
    /// this space loaded, and of every other CPU that has it (TLB shootdown,
    /// [`crate::arch::smp::shootdown`]). New mappings of unmapped pages need
    /// none (no TLB caches a non-present entry).
    fn flush_everywhere(&self) {
        if Cr3::read().0 == self.pml4 {
            x86_64::instructions::tlb::flush_all();
        }
        crate::arch::smp::shootdown(self.pml4.start_address().as_u64());
    }

    /// Like [`AddressSpace::map`], but pages already mapped get exactly
    /// `access` (an application's `mprotect` may also narrow permissions).
    pub fn map_exact(&self, start: u64, len: u64, access: Access) -> Result<(), Error> {
        self.map(start, len, access)?;
        let (first, last) = page_range(start, len)?;
        let flags = user_flags(access);
        let mut mapper = self.mapper();
        for page in Page::range_inclusive(first, last) {
            // SAFETY: only permission bits of this process's own user mapping
            // change; the flush makes the change visible if it is active.
            if let Ok(flush) = unsafe { mapper.update_flags(page, flags) } {
                flush.ignore();
            }
        }
        self.flush_everywhere();
        Ok(())
    }

    /// Unmaps `[start, start + len)` (rounded out to pages) and frees the
    /// frames; unmapped pages in the range are skipped.
    /// Errors: [`Error::BadAddress`] outside user space.
    pub fn unmap(&self, start: u64, len: u64) -> Result<(), Error> {
        if len == 0 {
            return Ok(());
        }
        let (first, last) = page_range(start, len)?;
        let mut mapper = self.mapper();
        for page in Page::range_inclusive(first, last) {
            if let Ok((frame, flush)) = mapper.unmap(page) {
                flush.ignore();
                // Reused only under the kernel lock, which this CPU holds
                // until the shootdown below has finished.
                frame::free(frame);
            }
        }
        self.flush_everywhere();
        Ok(())
    }

    /// # Safety
    /// `page` must be mapped with 4 KiB pages in `mapper`.
    unsafe fn leaf_flags(mapper: &mut OffsetPageTable<'_>, page: Page<Size4KiB>) -> Flags {
        use x86_64::structures::paging::mapper::{Translate, TranslateResult};
        match mapper.translate(page.start_address()) {
            TranslateResult::Mapped { flags, .. } => flags,
            _ => Flags::empty(),
        }
    }

    /// The physical address of user address `addr`, if the page is present and
    /// user-accessible at every level (and writable, when `write`).
    pub fn translate(&self, addr: u64, write: bool) -> Option<PhysAddr> {
        if addr >= USER_END {
            return None;
        }
        let addr = VirtAddr::new(addr);
        let mut required = Flags::PRESENT | Flags::USER_ACCESSIBLE;
        if write {
            required |= Flags::WRITABLE;
        }
        let indices = [
            addr.p4_index(),
            addr.p3_index(),
            addr.p2_index(),
            addr.p1_index(),
        ];
        let mut table = self.pml4.start_address();
        for (level, index) in indices.into_iter().enumerate() {
            // SAFETY: `table` is a page-table frame of this address space, reached
            // through the physical map; we only read it.
            let entry = unsafe { &(&*table_at(table))[index] };
            let flags = entry.flags();
            if !flags.contains(required) || flags.contains(Flags::HUGE_PAGE) {
                return None;
            }
            if level == 3 {
                return Some(entry.addr() + u64::from(addr.page_offset()));
            }
            table = entry.addr();
        }
        None
    }

    /// Checks that `[addr, addr + len)` is mapped user memory (writable when
    /// `write`). A zero length is always valid. Errors: [`Error::BadAddress`].
    pub fn check(&self, addr: u64, len: u64, write: bool) -> Result<(), Error> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len).ok_or(Error::BadAddress)?;
        if end > USER_END {
            return Err(Error::BadAddress);
        }
        let mut page = sion_abi::page::page_down(addr);
        while page < end {
            self.translate(page.max(addr), write)
                .ok_or(Error::BadAddress)?;
            page += PAGE_SIZE;
        }
        Ok(())
    }

    /// Copies user memory at `addr` into `buf`. Errors: [`Error::BadAddress`].
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.check(addr, buf.len() as u64, false)?;
        let mut done = 0;
        while done < buf.len() {
            let at = addr + done as u64;
            let n = chunk(at, buf.len() - done);
            let phys = self.translate(at, false).ok_or(Error::BadAddress)?;
            // SAFETY: `phys..phys+n` lies in one mapped user frame (checked
            // above), reached through the physical map; `buf` is kernel memory.
            unsafe {
                core::ptr::copy(
                    phys_to_virt(phys).as_ptr::<u8>(),
                    buf[done..].as_mut_ptr(),
                    n,
                )
            };
            done += n;
        }
        Ok(())
    }

    /// Copies `data` into user memory at `addr`. Errors: [`Error::BadAddress`]
    /// (also for read-only pages).
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), Error> {
        self.store(addr, data, true)
    }

    /// Fills mapped user memory at `addr` with `data` even where the process may
    /// not write (loading a read-only segment). Errors: [`Error::BadAddress`].
    pub fn load(&self, addr: u64, data: &[u8]) -> Result<(), Error> {
        self.store(addr, data, false)
    }

    fn store(&self, addr: u64, data: &[u8], require_write: bool) -> Result<(), Error> {
        self.check(addr, data.len() as u64, require_write)?;
        let mut done = 0;
        while done < data.len() {
            let at = addr + done as u64;
            let n = chunk(at, data.len() - done);
            let phys = self.translate(at, require_write).ok_or(Error::BadAddress)?;
            // SAFETY: as in `read`; the frame belongs to this user address space.
            unsafe {
                core::ptr::copy(
                    data[done..].as_ptr(),
                    phys_to_virt(phys).as_mut_ptr::<u8>(),
                    n,
                )
            };
            done += n;
        }
        Ok(())
    }

    /// A copy of this address space for `fork(2)`: the kernel's upper half
    /// shared as always, and every user page copied to a fresh frame with
    /// the same permissions (an eager copy, not copy-on-write: the cost is
    /// one 4 KiB copy per mapped page). Errors: [`Error::NoMemory`], with
    /// nothing kept.
    pub fn duplicate(&self) -> Result<AddressSpace, Error> {
        let copy = AddressSpace::new()?;
        copy_table(
            self.pml4.start_address(),
            copy.pml4.start_address(),
            4,
            0..256,
        )?;
        Ok(copy)
    }

    /// Copies `len` bytes from `src_addr` in `src` straight to `dst_addr` in
    /// `dst`, frame to frame through the physical-memory map, with no buffer in
    /// between: the single copy of SiON's IPC (paper §4.2.3, Fig. 7).
    /// Errors: [`Error::BadAddress`].
    pub fn copy(
        src: &AddressSpace,
        src_addr: u64,
        dst: &AddressSpace,
        dst_addr: u64,
        len: u64,
    ) -> Result<(), Error> {
        src.check(src_addr, len, false)?;
        dst.check(dst_addr, len, true)?;
        let mut done = 0u64;
        while done < len {
            let (s, d) = (src_addr + done, dst_addr + done);
            let n = chunk(s, (len - done) as usize).min(chunk(d, (len - done) as usize));
            let sp = src.translate(s, false).ok_or(Error::BadAddress)?;
            let dp = dst.translate(d, true).ok_or(Error::BadAddress)?;
            // SAFETY: both ranges lie within single mapped user frames (checked
            // above); `copy` tolerates overlap.
            unsafe {
                core::ptr::copy(
                    phys_to_virt(sp).as_ptr::<u8>(),
                    phys_to_virt(dp).as_mut_ptr::<u8>(),
                    n,
                )
            };
            done += n as u64;
        }
        Ok(())
    }
}

/// The first and last page of a user range. Errors: [`Error::BadAddress`].
fn page_range(start: u64, len: u64) -> Result<(Page<Size4KiB>, Page<Size4KiB>), Error> {
    let end = start.checked_add(len).ok_or(Error::BadAddress)?;
    if start < USER_START || end > USER_END {
        return Err(Error::BadAddress);
    }
    let first = Page::containing_address(VirtAddr::new(start));
    let last = Page::containing_address(VirtAddr::new(end.max(start + 1) - 1));
    Ok((first, last))
}

/// Page flags of a user mapping with `access`.
fn user_flags(access: Access) -> Flags {
    let mut flags = Flags::PRESENT | Flags::USER_ACCESSIBLE;
    if access.write {
        flags |= Flags::WRITABLE;
    }
    if !access.execute {
        flags |= Flags::NO_EXECUTE;
    }
    flags
}

/// Bytes from `addr` to the end of its page, at most `left`.
fn chunk(addr: u64, left: usize) -> usize {
    (sion_abi::page::page_remaining(addr) as usize).min(left)
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // Free the user half: leaf frames, then the page-table frames.
        free_table(self.pml4.start_address(), 4, 0..256);
        frame::free(self.pml4);
    }
}

/// Copies the entries `range` of the level-`level` table `src` into the
/// (zeroed where not yet filled) table `dst`: each present lower table is
/// copied into a fresh one, each leaf frame into a fresh frame. A frame that
/// cannot be had ends the copy with [`Error::NoMemory`]; what was copied is
/// reachable from `dst` and freed with it.
fn copy_table(
    src: PhysAddr,
    dst: PhysAddr,
    level: u8,
    range: core::ops::Range<usize>,
) -> Result<(), Error> {
    for i in range {
        // SAFETY: `src` is a page-table frame of a live address space, only
        // read; `dst` is a frame of the new address space, which no CPU uses
        // yet. Both are reached through the physical map.
        let (entry, flags) = unsafe {
            let e = &(&*table_at(src))[i];
            (e.addr(), e.flags())
        };
        if !flags.contains(Flags::PRESENT) {
            continue;
        }
        let frame = frame::allocate_zeroed().ok_or(Error::NoMemory)?;
        // SAFETY: as above; the new frame is ours alone.
        unsafe { (&mut *table_at(dst))[i].set_addr(frame.start_address(), flags) };
        if level > 1 && !flags.contains(Flags::HUGE_PAGE) {
            copy_table(entry, frame.start_address(), level - 1, 0..512)?;
        } else {
            // SAFETY: both are whole 4 KiB frames reached through the
            // physical map; the source is a user page, the destination fresh.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    phys_to_virt(entry).as_ptr::<u8>(),
                    phys_to_virt(frame.start_address()).as_mut_ptr::<u8>(),
                    PAGE_SIZE as usize,
                )
            };
        }
    }
    Ok(())
}

/// Frees every frame reachable from the page table at `table` (a level-`level`
/// table), for the entries in `range`, but not the table itself.
fn free_table(table: PhysAddr, level: u8, range: core::ops::Range<usize>) {
    for i in range {
        // SAFETY: `table` is a page-table frame of an address space being
        // destroyed; no CPU uses it (the scheduler runs on the kernel's table).
        let entry = unsafe { &mut (&mut *table_at(table))[i] };
        if !entry.flags().contains(Flags::PRESENT) {
            continue;
        }
        let child = entry.addr();
        if level > 1 {
            free_table(child, level - 1, 0..512);
        }
        frame::free(PhysFrame::containing_address(child));
        entry.set_unused();
    }
}

/// The current address space's page table, for translating kernel addresses.
pub fn current_table() -> OffsetPageTable<'static> {
    let (frame, _) = Cr3::read();
    // SAFETY: CR3 holds a valid PML4 reached through the physical map; the
    // caller only reads through it (translation), and the kernel half it
    // translates never changes underneath.
    unsafe {
        OffsetPageTable::new(
            &mut *table_at(frame.start_address()),
            VirtAddr::new(super::PHYS_OFFSET),
        )
    }
}

/// Maps the physical pages of `[phys, phys + size)` at `PHYS_OFFSET + phys` in
/// the kernel's table (uncached), where they are not mapped yet.
pub fn map_kernel_mmio(phys: u64, size: u64) {
    use x86_64::structures::paging::mapper::Translate;
    let kernel = *KERNEL_PML4.get().expect("mem::space::init not called");
    // SAFETY: the kernel's PML4 is reached through the physical map; interrupts
    // are off, so nothing else edits it now.
    let mut mapper = unsafe {
        OffsetPageTable::new(
            &mut *table_at(kernel.start_address()),
            VirtAddr::new(super::PHYS_OFFSET),
        )
    };
    let start = sion_abi::page::page_down(phys);
    let mut page_phys = start;
    while page_phys < phys + size.max(1) {
        let virt = VirtAddr::new(super::PHYS_OFFSET + page_phys);
        if mapper.translate_addr(virt).is_none() {
            let page = Page::<Size4KiB>::containing_address(virt);
            let frame = PhysFrame::containing_address(PhysAddr::new(page_phys));
            let flags = Flags::PRESENT | Flags::WRITABLE | Flags::NO_CACHE | Flags::NO_EXECUTE;
            // SAFETY: the page is unmapped and refers to device memory, not to
            // any RAM the kernel uses.
            match unsafe { mapper.map_to(page, frame, flags, &mut frame::GlobalFrames) } {
                Ok(flush) => flush.flush(),
                Err(e) => log::error!("cannot map device memory at {page_phys:#x}: {e:?}"),
            }
        }
        page_phys += PAGE_SIZE;
    }
}
