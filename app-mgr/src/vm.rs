//! The application's address-space allocator: which user pages are mapped, with
//! what permissions, and what `brk`, `mmap`, `munmap`, `mprotect` and `mremap`
//! change, under a per-job memory limit.
//!
//! Pure bookkeeping: every operation returns the [`VmEffect`]s the kernel must
//! apply to the page tables (map fresh zeroed pages, unmap, change permissions,
//! move pages). Semantics follow the Linux man pages `brk(2)`, `mmap(2)`,
//! `munmap(2)`, `mprotect(2)` and `mremap(2)`; non-fixed mappings are placed
//! top-down below [`UserLayout::mmap_top`], as Linux's default
//! `arch_get_unmapped_area_topdown` does.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use linux_raw_sys::general as g;

use crate::abi::{PAGE_SIZE, UserLayout, is_page_aligned, page_up};
use crate::elf_load::LoadPlan;
use crate::errno::Errno;

/// Page permissions: readable, writable, executable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Prot {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

impl Prot {
    /// No access (`PROT_NONE`).
    pub const NONE: Prot = Prot {
        read: false,
        write: false,
        exec: false,
    };
    /// Read-only.
    pub const R: Prot = Prot {
        read: true,
        write: false,
        exec: false,
    };
    /// Read-write.
    pub const RW: Prot = Prot {
        read: true,
        write: true,
        exec: false,
    };
    /// Read-execute.
    pub const RX: Prot = Prot {
        read: true,
        write: false,
        exec: true,
    };
    /// Read-write-execute.
    pub const RWX: Prot = Prot {
        read: true,
        write: true,
        exec: true,
    };

    /// From the `prot` argument of `mmap(2)`/`mprotect(2)` (`PROT_READ`,
    /// `PROT_WRITE`, `PROT_EXEC`; `PROT_GROWSDOWN`/`PROT_GROWSUP` are accepted
    /// and ignored). Other bits: `EINVAL`.
    pub fn from_linux(prot: u64) -> Result<Prot, Errno> {
        let known = u64::from(
            g::PROT_READ | g::PROT_WRITE | g::PROT_EXEC | g::PROT_GROWSDOWN | g::PROT_GROWSUP,
        );
        if prot & !known != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(Prot {
            read: prot & u64::from(g::PROT_READ) != 0,
            write: prot & u64::from(g::PROT_WRITE) != 0,
            exec: prot & u64::from(g::PROT_EXEC) != 0,
        })
    }

    /// The `PROT_*` bits.
    pub fn to_linux(self) -> u32 {
        (if self.read { g::PROT_READ } else { 0 })
            | (if self.write { g::PROT_WRITE } else { 0 })
            | (if self.exec { g::PROT_EXEC } else { 0 })
    }

    /// Permissions granted by either.
    pub fn union(self, other: Prot) -> Prot {
        Prot {
            read: self.read || other.read,
            write: self.write || other.write,
            exec: self.exec || other.exec,
        }
    }
}

/// What a region holds; adjacent regions merge only when kind and permissions
/// match, and never for [`RegionKind::File`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// Pages of the executable's `PT_LOAD` segments.
    Image,
    /// The `brk` heap.
    Heap,
    /// The main stack.
    Stack,
    /// An anonymous `mmap`.
    Anon,
    /// A private file mapping (the caller fills the pages from the file).
    File,
}

/// A mapped range of whole pages `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte, page-aligned.
    pub start: u64,
    /// One past the last byte, page-aligned.
    pub end: u64,
    /// Permissions.
    pub prot: Prot,
    /// Contents.
    pub kind: RegionKind,
}

impl Region {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the region is empty (never true for a region in the map).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// A change the kernel must make to the application's page tables. Ranges are
/// page-aligned byte ranges `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmEffect {
    /// Map fresh zero-filled pages with `prot`.
    Map {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
        /// Permissions.
        prot: Prot,
    },
    /// Unmap the pages (and free their frames).
    Unmap {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Change the permissions of mapped pages.
    Protect {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
        /// New permissions.
        prot: Prot,
    },
    /// Move `len` bytes of mapped pages from `from` to `to` (the frames move;
    /// `from` becomes unmapped). Emitted by `mremap`; the ranges do not overlap.
    Move {
        /// Old first byte.
        from: u64,
        /// New first byte.
        to: u64,
        /// Bytes moved.
        len: u64,
    },
}

/// Where `mmap` may put a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Anywhere; the address (if non-zero) is a hint tried first.
    Hint(u64),
    /// Exactly here, replacing what is mapped (`MAP_FIXED`).
    Fixed(u64),
    /// Exactly here, or `EEXIST` if anything is mapped (`MAP_FIXED_NOREPLACE`).
    FixedNoReplace(u64),
}

/// The `flags` argument of `mmap(2)`, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmapFlags {
    /// `MAP_SHARED`/`MAP_SHARED_VALIDATE` (else `MAP_PRIVATE`).
    pub shared: bool,
    /// `MAP_ANONYMOUS`.
    pub anonymous: bool,
    /// `MAP_FIXED`.
    pub fixed: bool,
    /// `MAP_FIXED_NOREPLACE`.
    pub fixed_noreplace: bool,
}

impl MmapFlags {
    /// Decodes `flags`: exactly one of `MAP_SHARED`, `MAP_PRIVATE`,
    /// `MAP_SHARED_VALIDATE` in `MAP_TYPE`, else `EINVAL`. Other flags
    /// (`MAP_NORESERVE`, `MAP_POPULATE`, `MAP_STACK`, ...) are accepted and have
    /// no effect here.
    pub fn parse(flags: u64) -> Result<MmapFlags, Errno> {
        let shared = match (flags & u64::from(g::MAP_TYPE)) as u32 {
            g::MAP_SHARED | g::MAP_SHARED_VALIDATE => true,
            g::MAP_PRIVATE => false,
            _ => return Err(Errno::EINVAL),
        };
        Ok(MmapFlags {
            shared,
            anonymous: flags & u64::from(g::MAP_ANONYMOUS) != 0,
            fixed: flags & u64::from(g::MAP_FIXED) != 0,
            fixed_noreplace: flags & u64::from(g::MAP_FIXED_NOREPLACE) != 0,
        })
    }

    /// The placement for address argument `addr` (`MAP_FIXED` wins over
    /// `MAP_FIXED_NOREPLACE`, as in Linux).
    pub fn placement(&self, addr: u64) -> Placement {
        if self.fixed {
            Placement::Fixed(addr)
        } else if self.fixed_noreplace {
            Placement::FixedNoReplace(addr)
        } else {
            Placement::Hint(addr)
        }
    }
}

/// Most regions an address space may hold (Linux's default `vm.max_map_count`
/// is 65530); more gives `ENOMEM`.
pub const MAX_REGIONS: usize = 65530;

/// The application's address space: mapped regions, the program break, and the
/// memory in use against the job's limit. Addresses in bytes.
#[derive(Clone, Debug)]
pub struct AddressSpace {
    regions: BTreeMap<u64, Region>,
    layout: UserLayout,
    brk_start: u64,
    brk: u64,
    used: u64,
    limit: u64,
}

impl AddressSpace {
    /// An empty address space with `layout` and at most `limit` bytes mapped.
    /// The program break starts at `layout.min_addr` until
    /// [`AddressSpace::map_image`] sets it.
    pub fn new(layout: UserLayout, limit: u64) -> AddressSpace {
        AddressSpace {
            regions: BTreeMap::new(),
            layout,
            brk_start: layout.min_addr,
            brk: layout.min_addr,
            used: 0,
            limit,
        }
    }

    /// An address space as a checkpoint recorded it ([`crate::checkpoint`]):
    /// `regions` (page-aligned, inside the layout, not overlapping) and the
    /// program break. Returns it and the `Map` effects for every region
    /// with some access (a `PROT_NONE` region holds no pages). Errors:
    /// `EINVAL` for a region out of place, `ENOMEM` over `limit`.
    pub fn restore(
        layout: UserLayout,
        limit: u64,
        regions: &[Region],
        brk_start: u64,
        brk: u64,
    ) -> Result<(AddressSpace, Vec<VmEffect>), Errno> {
        let mut space = AddressSpace::new(layout, limit);
        let mut effects = Vec::new();
        for r in regions {
            let fits = r.start < r.end
                && is_page_aligned(r.start)
                && is_page_aligned(r.end)
                && r.start >= layout.min_addr
                && r.end <= layout.max_addr;
            if !fits || space.overlaps(r.start, r.end) {
                return Err(Errno::EINVAL);
            }
            space.charge(r.len())?;
            space.insert(*r);
            if r.prot != Prot::NONE {
                effects.push(VmEffect::Map {
                    start: r.start,
                    end: r.end,
                    prot: r.prot,
                });
            }
        }
        if brk < brk_start || brk_start < layout.min_addr || brk > layout.max_addr {
            return Err(Errno::EINVAL);
        }
        space.brk_start = brk_start;
        space.brk = brk;
        Ok((space, effects))
    }

    /// Records the executable's pages ([`LoadPlan::mappings`]) and sets the
    /// program break to [`LoadPlan::brk_start`]. Returns the `Map` effects.
    /// Errors: `EEXIST` if something is mapped there, `ENOMEM` over the limit.
    pub fn map_image(&mut self, plan: &LoadPlan) -> Result<Vec<VmEffect>, Errno> {
        let effects = self.map_segments(plan)?;
        self.brk_start = plan.brk_start;
        self.brk = plan.brk_start;
        Ok(effects)
    }

    /// Maps a program interpreter's segments (`plan`, loaded beside the
    /// program) as image regions; the program break stays the program's.
    /// Errors: as [`AddressSpace::map_image`].
    pub fn map_interpreter(&mut self, plan: &LoadPlan) -> Result<Vec<VmEffect>, Errno> {
        self.map_segments(plan)
    }

    /// A free, page-aligned range of `len` bytes (aligned to `align`, a
    /// power of two) for an interpreter, top-down below the mmap area's top.
    pub fn free_range(&self, len: u64, align: u64) -> Option<u64> {
        let len = page_up(len)?.checked_add(align.max(PAGE_SIZE))?;
        let at = self.find_free_top_down(len, self.layout.mmap_top)?;
        Some((at + align.max(PAGE_SIZE) - 1) & !(align.max(PAGE_SIZE) - 1))
    }

    fn map_segments(&mut self, plan: &LoadPlan) -> Result<Vec<VmEffect>, Errno> {
        let maps = plan.mappings();
        let total: u64 = maps.iter().map(|m| m.end - m.start).sum();
        if maps.iter().any(|m| self.overlaps(m.start, m.end)) {
            return Err(Errno::EEXIST);
        }
        self.charge(total)?;
        let mut effects = Vec::new();
        for m in maps {
            self.insert(Region {
                start: m.start,
                end: m.end,
                prot: m.prot,
                kind: RegionKind::Image,
            });
            effects.push(VmEffect::Map {
                start: m.start,
                end: m.end,
                prot: m.prot,
            });
        }
        Ok(effects)
    }

    /// Maps the initial stack, `len` bytes (rounded up to pages, at most
    /// `layout.stack_size`) read-write just below `layout.stack_top`, executable
    /// too if `exec`. Returns its range. Errors: `EINVAL` if `len` is 0 or over
    /// the reservation, `EEXIST` if taken, `ENOMEM` over the limit.
    pub fn map_stack(&mut self, len: u64, exec: bool) -> Result<(u64, u64), Errno> {
        let len = page_up(len).ok_or(Errno::EINVAL)?;
        if len == 0 || len > self.layout.stack_size || len > self.layout.stack_top {
            return Err(Errno::EINVAL);
        }
        let (start, end) = (self.layout.stack_top - len, self.layout.stack_top);
        if self.overlaps(start, end) {
            return Err(Errno::EEXIST);
        }
        self.charge(len)?;
        let prot = if exec { Prot::RWX } else { Prot::RW };
        self.insert(Region {
            start,
            end,
            prot,
            kind: RegionKind::Stack,
        });
        Ok((start, end))
    }

    /// Bytes currently mapped (counted against the limit).
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The address layout it places mappings in.
    pub fn layout(&self) -> &UserLayout {
        &self.layout
    }

    /// The memory limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The current program break.
    pub fn brk_value(&self) -> u64 {
        self.brk
    }

    /// The initial program break (lowest value `brk` accepts).
    pub fn brk_start(&self) -> u64 {
        self.brk_start
    }

    /// The regions, sorted by address.
    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }

    /// The region containing `addr`, if mapped (for deciding whether a page
    /// fault is a `SIGSEGV`).
    pub fn region_at(&self, addr: u64) -> Option<&Region> {
        self.regions
            .range(..=addr)
            .next_back()
            .map(|(_, r)| r)
            .filter(|r| addr < r.end)
    }

    /// Checks that `[addr, addr + len)` is mapped with read access (and write
    /// access if `write`), as a system call must before touching a user buffer.
    /// `len` 0 always passes. Errors: `EFAULT`.
    pub fn check_access(&self, addr: u64, len: u64, write: bool) -> Result<(), Errno> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
        let mut at = addr;
        while at < end {
            let r = self.region_at(at).ok_or(Errno::EFAULT)?;
            if !r.prot.read || (write && !r.prot.write) {
                return Err(Errno::EFAULT);
            }
            at = r.end;
        }
        Ok(())
    }

    /// `brk(2)` as the kernel implements it: sets the break to `addr` and
    /// returns the new break, or leaves it and returns the current break if
    /// `addr` is below the initial break, would run into another mapping or the
    /// stack reservation, or exceeds the limit (`brk(0)` thus queries it). The
    /// heap is mapped read-write in whole pages; shrinking unmaps them.
    pub fn brk(&mut self, addr: u64) -> (u64, Vec<VmEffect>) {
        let mut effects = Vec::new();
        if addr < self.brk_start {
            return (self.brk, effects);
        }
        let (Some(old_top), Some(new_top)) = (page_up(self.brk), page_up(addr)) else {
            return (self.brk, effects);
        };
        if new_top > old_top {
            if new_top > self.layout.stack_bottom().min(self.layout.max_addr)
                || self.overlaps(old_top, new_top)
                || self.charge(new_top - old_top).is_err()
            {
                return (self.brk, effects);
            }
            self.insert(Region {
                start: old_top,
                end: new_top,
                prot: Prot::RW,
                kind: RegionKind::Heap,
            });
            effects.push(VmEffect::Map {
                start: old_top,
                end: new_top,
                prot: Prot::RW,
            });
        } else if new_top < old_top {
            effects = self.unmap_range(new_top, old_top);
        }
        self.brk = addr;
        (addr, effects)
    }

    /// `mmap(2)`: maps `len` bytes (rounded up to pages) with `prot` at a place
    /// chosen by `placement`; `kind` is [`RegionKind::Anon`] or
    /// [`RegionKind::File`] (the caller fills file pages after mapping). Returns
    /// the address and the effects (`Unmap` of replaced pages for
    /// [`Placement::Fixed`], then `Map`).
    ///
    /// Errors: `EINVAL` for `len` 0 or an unaligned fixed address; `EPERM` for a
    /// fixed address below `layout.min_addr` (Linux's `mmap_min_addr`); `EEXIST`
    /// for [`Placement::FixedNoReplace`] over a mapping; `ENOMEM` when the length
    /// overflows, a fixed range passes the user top, no hole is large enough, or
    /// the limit would be exceeded.
    pub fn mmap(
        &mut self,
        placement: Placement,
        len: u64,
        prot: Prot,
        kind: RegionKind,
    ) -> Result<(u64, Vec<VmEffect>), Errno> {
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::ENOMEM)?;
        let mut effects = Vec::new();
        let start = match placement {
            Placement::Fixed(addr) | Placement::FixedNoReplace(addr) => {
                if !is_page_aligned(addr) {
                    return Err(Errno::EINVAL);
                }
                if addr < self.layout.min_addr {
                    return Err(Errno::EPERM);
                }
                let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
                if end > self.layout.max_addr {
                    return Err(Errno::ENOMEM);
                }
                let replaced = self.mapped_bytes(addr, end);
                if replaced > 0 && matches!(placement, Placement::FixedNoReplace(_)) {
                    return Err(Errno::EEXIST);
                }
                self.check_charge(len - replaced)?;
                self.check_region_count(3)?;
                effects = self.unmap_range(addr, end);
                addr
            }
            Placement::Hint(hint) => {
                self.check_charge(len)?;
                self.check_region_count(1)?;
                let hinted = page_up(hint).filter(|&h| {
                    h != 0
                        && h >= self.layout.min_addr
                        && h.checked_add(len)
                            .is_some_and(|e| e <= self.layout.max_addr)
                        && !self.overlaps(h, h + len)
                });
                match hinted {
                    Some(h) => h,
                    None => self
                        .find_free_top_down(len, self.layout.mmap_top)
                        .ok_or(Errno::ENOMEM)?,
                }
            }
        };
        self.charge(len)?;
        self.insert(Region {
            start,
            end: start + len,
            prot,
            kind,
        });
        effects.push(VmEffect::Map {
            start,
            end: start + len,
            prot,
        });
        Ok((start, effects))
    }

    /// `munmap(2)`: unmaps every mapped page in `[addr, addr + len)` (rounded up
    /// to pages); unmapped holes are fine. Errors: `EINVAL` for an unaligned
    /// `addr`, `len` 0, or a range past the user top.
    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<Vec<VmEffect>, Errno> {
        if !is_page_aligned(addr) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = addr
            .checked_add(len)
            .and_then(page_up)
            .ok_or(Errno::EINVAL)?;
        if end > self.layout.max_addr {
            return Err(Errno::EINVAL);
        }
        self.check_region_count(1)?;
        Ok(self.unmap_range(addr, end))
    }

    /// `mprotect(2)`: sets `prot` on `[addr, addr + len)` (rounded up to pages).
    /// `len` 0 succeeds with no effect. Errors: `EINVAL` for an unaligned `addr`;
    /// `ENOMEM` if the range overflows or any page in it is unmapped.
    pub fn mprotect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<Vec<VmEffect>, Errno> {
        if !is_page_aligned(addr) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let end = addr
            .checked_add(len)
            .and_then(page_up)
            .ok_or(Errno::ENOMEM)?;
        if self.mapped_bytes(addr, end) != end - addr {
            return Err(Errno::ENOMEM);
        }
        self.check_region_count(2)?;
        for mut piece in self.carve(addr, end) {
            piece.prot = prot;
            self.insert(piece);
        }
        Ok(alloc::vec![VmEffect::Protect {
            start: addr,
            end,
            prot
        }])
    }

    /// `mremap(2)`: resizes and possibly moves the mapping at `old_addr`.
    ///
    /// `flags` may hold `MREMAP_MAYMOVE` and `MREMAP_FIXED` (with `new_addr`);
    /// `MREMAP_DONTUNMAP` and other bits give `EINVAL`. Shrinking unmaps the
    /// tail; growing extends in place when the pages after the mapping are free,
    /// else moves it (top-down placement) if `MREMAP_MAYMOVE`, else `ENOMEM`.
    /// Returns the new address and effects (`Move` of the kept pages, `Map` of new
    /// pages, `Unmap` of dropped or replaced pages).
    ///
    /// Errors: `EINVAL` for unaligned addresses, `new_len` 0, `old_len` 0 (only
    /// meaningful for shared mappings), bad flags, or overlapping old and new
    /// ranges with `MREMAP_FIXED`; `EFAULT` if the old range is not inside one
    /// mapping; `ENOMEM` over the limit or without room.
    pub fn mremap(
        &mut self,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> Result<(u64, Vec<VmEffect>), Errno> {
        let maymove = flags & u64::from(g::MREMAP_MAYMOVE) != 0;
        let fixed = flags & u64::from(g::MREMAP_FIXED) != 0;
        if flags & !u64::from(g::MREMAP_MAYMOVE | g::MREMAP_FIXED) != 0 || (fixed && !maymove) {
            return Err(Errno::EINVAL);
        }
        if !is_page_aligned(old_addr) || old_len == 0 {
            return Err(Errno::EINVAL);
        }
        let old_len = page_up(old_len).ok_or(Errno::EINVAL)?;
        let new_len = page_up(new_len).ok_or(Errno::EINVAL)?;
        if new_len == 0 {
            return Err(Errno::EINVAL);
        }
        let old_end = old_addr.checked_add(old_len).ok_or(Errno::EINVAL)?;
        let region = *self.region_at(old_addr).ok_or(Errno::EFAULT)?;
        if old_end > region.end {
            return Err(Errno::EFAULT);
        }
        self.check_region_count(3)?;

        if fixed {
            if !is_page_aligned(new_addr) {
                return Err(Errno::EINVAL);
            }
            let new_end = new_addr.checked_add(new_len).ok_or(Errno::EINVAL)?;
            if new_addr < old_end && old_addr < new_end {
                return Err(Errno::EINVAL);
            }
            if new_addr < self.layout.min_addr || new_end > self.layout.max_addr {
                return Err(Errno::EINVAL);
            }
            let replaced = self.mapped_bytes(new_addr, new_end);
            let grow = new_len.saturating_sub(old_len);
            if self.used - replaced + grow > self.limit {
                return Err(Errno::ENOMEM);
            }
            let mut effects = self.unmap_range(new_addr, new_end);
            effects.extend(self.move_range(region, old_addr, old_len, new_addr, new_len));
            return Ok((new_addr, effects));
        }

        if new_len == old_len {
            return Ok((old_addr, Vec::new()));
        }
        if new_len < old_len {
            return Ok((old_addr, self.unmap_range(old_addr + new_len, old_end)));
        }
        let grow = new_len - old_len;
        self.check_charge(grow)?;
        let in_place_end = old_addr.checked_add(new_len);
        if let Some(end) = in_place_end
            && old_end == region.end
            && end <= self.layout.max_addr
            && !self.overlaps(old_end, end)
        {
            self.charge(grow)?;
            self.insert(Region {
                start: old_end,
                end,
                prot: region.prot,
                kind: region.kind,
            });
            return Ok((
                old_addr,
                alloc::vec![VmEffect::Map {
                    start: old_end,
                    end,
                    prot: region.prot,
                }],
            ));
        }
        if !maymove {
            return Err(Errno::ENOMEM);
        }
        let to = self
            .find_free_top_down(new_len, self.layout.mmap_top)
            .ok_or(Errno::ENOMEM)?;
        let effects = self.move_range(region, old_addr, old_len, to, new_len);
        Ok((to, effects))
    }

    // ---- internals ----

    /// Moves `[from, from + old_len)` (inside `region`) to `[to, to + new_len)`,
    /// which must be free; maps or drops the difference.
    fn move_range(
        &mut self,
        region: Region,
        from: u64,
        old_len: u64,
        to: u64,
        new_len: u64,
    ) -> Vec<VmEffect> {
        let kept = old_len.min(new_len);
        let mut effects = alloc::vec![VmEffect::Move {
            from,
            to,
            len: kept
        }];
        // The kept pages leave the old place without being freed.
        self.carve(from, from + kept);
        self.used -= kept;
        if old_len > new_len {
            effects.extend(self.unmap_range(from + kept, from + old_len));
        }
        self.used += new_len;
        self.insert(Region {
            start: to,
            end: to + new_len,
            prot: region.prot,
            kind: region.kind,
        });
        if new_len > old_len {
            effects.push(VmEffect::Map {
                start: to + old_len,
                end: to + new_len,
                prot: region.prot,
            });
        }
        effects
    }

    fn check_charge(&self, bytes: u64) -> Result<(), Errno> {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.limit => Ok(()),
            _ => Err(Errno::ENOMEM),
        }
    }

    fn charge(&mut self, bytes: u64) -> Result<(), Errno> {
        self.check_charge(bytes)?;
        self.used += bytes;
        Ok(())
    }

    fn check_region_count(&self, extra: usize) -> Result<(), Errno> {
        if self.regions.len() + extra > MAX_REGIONS {
            Err(Errno::ENOMEM)
        } else {
            Ok(())
        }
    }

    /// Regions intersecting `[start, end)`, in order.
    fn intersecting(&self, start: u64, end: u64) -> impl Iterator<Item = &Region> {
        let first = self
            .regions
            .range(..=start)
            .next_back()
            .filter(|(_, r)| r.end > start)
            .map_or(start, |(&k, _)| k);
        self.regions
            .range(first..end)
            .map(|(_, r)| r)
            .filter(move |r| r.end > start)
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.intersecting(start, end).next().is_some()
    }

    /// Mapped bytes inside `[start, end)`.
    fn mapped_bytes(&self, start: u64, end: u64) -> u64 {
        self.intersecting(start, end)
            .map(|r| r.end.min(end) - r.start.max(start))
            .sum()
    }

    /// Removes `[start, end)` from the map, splitting regions at the edges, and
    /// returns the removed pieces. Does not change `used`.
    fn carve(&mut self, start: u64, end: u64) -> Vec<Region> {
        let hit: Vec<Region> = self.intersecting(start, end).copied().collect();
        let mut pieces = Vec::with_capacity(hit.len());
        for r in hit {
            self.regions.remove(&r.start);
            if r.start < start {
                self.regions.insert(r.start, Region { end: start, ..r });
            }
            if r.end > end {
                self.regions.insert(end, Region { start: end, ..r });
            }
            pieces.push(Region {
                start: r.start.max(start),
                end: r.end.min(end),
                ..r
            });
        }
        pieces
    }

    /// Unmaps every mapped page of `[start, end)`, releasing it from `used`.
    fn unmap_range(&mut self, start: u64, end: u64) -> Vec<VmEffect> {
        let mut effects: Vec<VmEffect> = Vec::new();
        for piece in self.carve(start, end) {
            self.used -= piece.len();
            match effects.last_mut() {
                Some(VmEffect::Unmap { end: e, .. }) if *e == piece.start => *e = piece.end,
                _ => effects.push(VmEffect::Unmap {
                    start: piece.start,
                    end: piece.end,
                }),
            }
        }
        // Splitting may leave neighbours that can merge again.
        self.merge_at(start);
        self.merge_at(end);
        effects
    }

    /// Inserts a region over free space and merges it with equal neighbours.
    fn insert(&mut self, r: Region) {
        debug_assert!(!r.is_empty() && !self.overlaps(r.start, r.end));
        self.regions.insert(r.start, r);
        self.merge_at(r.start);
        self.merge_at(r.end);
    }

    /// Merges the region ending at `boundary` with the one starting there when
    /// their kinds and permissions match (file mappings never merge).
    fn merge_at(&mut self, boundary: u64) {
        let Some(right) = self.regions.get(&boundary).copied() else {
            return;
        };
        let Some(left) = self.regions.range(..boundary).next_back().map(|(_, r)| *r) else {
            return;
        };
        if left.end == boundary
            && left.kind == right.kind
            && left.prot == right.prot
            && left.kind != RegionKind::File
        {
            self.regions.remove(&boundary);
            if let Some(l) = self.regions.get_mut(&left.start) {
                l.end = right.end;
            }
        }
    }

    /// The highest free range of `len` bytes within `[layout.min_addr, top)`.
    fn find_free_top_down(&self, len: u64, top: u64) -> Option<u64> {
        let floor = self.layout.min_addr;
        let mut hole_end = top;
        for r in self.regions.range(..top).rev().map(|(_, r)| r) {
            // The hole between this region and the one above it.
            if r.end < hole_end
                && let Some(start) = hole_end.checked_sub(len)
                && start >= r.end
                && start >= floor
            {
                return Some(start);
            }
            hole_end = hole_end.min(r.start);
            if hole_end <= floor {
                return None;
            }
        }
        hole_end.checked_sub(len).filter(|&s| s >= floor)
    }
}

/// Bytes in `pages` pages.
pub const fn pages(pages: u64) -> u64 {
    pages * PAGE_SIZE
}

#[cfg(test)]
mod tests;
