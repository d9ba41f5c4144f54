//! Tests of the address-space allocator: each operation's Linux semantics, and
//! a seeded random run checked against a page-level model driven only by the
//! returned effects.

use super::*;
use crate::abi::Abi;
use crate::elf_load::{LoadConfig, load_plan};
use crate::testelf::TestElf;
use alloc::vec;

const MIB: u64 = 1 << 20;
const P: u64 = PAGE_SIZE;

fn layout() -> UserLayout {
    UserLayout::for_abi(Abi::X86_64)
}

fn space(limit: u64) -> AddressSpace {
    let mut s = AddressSpace::new(layout(), limit);
    let plan = load_plan(&TestElf::exec64().bytes(), &LoadConfig::default()).unwrap();
    s.map_image(&plan).unwrap();
    s
}

fn anon(s: &mut AddressSpace, placement: Placement, len: u64) -> Result<u64, Errno> {
    s.mmap(placement, len, Prot::RW, RegionKind::Anon)
        .map(|(a, _)| a)
}

/// Structural invariants of the region map.
fn check_invariants(s: &AddressSpace) {
    let regions: Vec<Region> = s.regions().copied().collect();
    let mut total = 0;
    for r in &regions {
        assert!(
            is_page_aligned(r.start) && is_page_aligned(r.end) && r.start < r.end,
            "{r:?}"
        );
        total += r.len();
    }
    for w in regions.windows(2) {
        assert!(w[0].end <= w[1].start, "overlap {w:?}");
        let mergeable = w[0].end == w[1].start
            && w[0].kind == w[1].kind
            && w[0].prot == w[1].prot
            && w[0].kind != RegionKind::File;
        assert!(!mergeable, "unmerged {w:?}");
    }
    assert_eq!(total, s.used());
    assert!(s.used() <= s.limit());
}

#[test]
fn image_and_stack() {
    let mut s = space(64 * MIB);
    assert_eq!(s.used(), 0x5000);
    assert_eq!(s.brk_value(), 0x405000);
    assert_eq!(s.brk_start(), 0x405000);
    assert_eq!(s.region_at(0x401010).map(|r| r.prot), Some(Prot::RX));
    assert_eq!(s.region_at(0x405000), None);
    let (lo, hi) = s.map_stack(128 * 1024, false).unwrap();
    assert_eq!(hi, layout().stack_top);
    assert_eq!(lo, hi - 128 * 1024);
    assert_eq!(s.region_at(hi - 1).unwrap().kind, RegionKind::Stack);
    assert_eq!(s.map_stack(4096, false), Err(Errno::EEXIST));
    assert_eq!(s.map_stack(0, false).unwrap_err(), Errno::EINVAL);
    assert_eq!(
        s.map_stack(layout().stack_size + P, false).unwrap_err(),
        Errno::EINVAL
    );
    let plan = load_plan(&TestElf::exec64().bytes(), &LoadConfig::default()).unwrap();
    assert_eq!(s.map_image(&plan), Err(Errno::EEXIST));
    check_invariants(&s);
    // A limit smaller than the image.
    let mut small = AddressSpace::new(layout(), 0x4000);
    assert_eq!(small.map_image(&plan), Err(Errno::ENOMEM));
    assert_eq!(small.used(), 0);
}

#[test]
fn brk_grows_and_shrinks_the_heap() {
    let mut s = space(64 * MIB);
    assert_eq!(s.brk(0), (0x405000, vec![]));
    let (b, fx) = s.brk(0x405010);
    assert_eq!(b, 0x405010);
    assert_eq!(
        fx,
        vec![VmEffect::Map {
            start: 0x405000,
            end: 0x406000,
            prot: Prot::RW
        }]
    );
    // Within the same page: no new pages.
    assert_eq!(s.brk(0x405ff0), (0x405ff0, vec![]));
    let (b, fx) = s.brk(0x408000);
    assert_eq!(b, 0x408000);
    assert_eq!(
        fx,
        vec![VmEffect::Map {
            start: 0x406000,
            end: 0x408000,
            prot: Prot::RW
        }]
    );
    // One heap region, merged.
    assert_eq!(
        s.regions().filter(|r| r.kind == RegionKind::Heap).count(),
        1
    );
    assert_eq!(s.used(), 0x5000 + 0x3000);
    // Shrink.
    let (b, fx) = s.brk(0x406001);
    assert_eq!(b, 0x406001);
    assert_eq!(
        fx,
        vec![VmEffect::Unmap {
            start: 0x407000,
            end: 0x408000
        }]
    );
    // Below the start: refused, break unchanged.
    assert_eq!(s.brk(0x1000), (0x406001, vec![]));
    // Back to the start releases everything.
    let (b, fx) = s.brk(0x405000);
    assert_eq!(b, 0x405000);
    assert_eq!(
        fx,
        vec![VmEffect::Unmap {
            start: 0x405000,
            end: 0x407000
        }]
    );
    assert_eq!(s.used(), 0x5000);
    check_invariants(&s);
}

#[test]
fn brk_refuses_collisions_and_the_limit() {
    let mut s = space(64 * MIB);
    anon(&mut s, Placement::Fixed(0x40a000), P).unwrap();
    // Would run into the mapping at 0x40a000.
    assert_eq!(s.brk(0x40b000).0, 0x405000);
    assert_eq!(s.brk(0x40a000).0, 0x40a000);
    // Over the limit.
    let mut s = space(0x5000 + 2 * P);
    assert_eq!(s.brk(0x405000 + 3 * P).0, 0x405000);
    assert_eq!(s.brk(0x405000 + 2 * P).0, 0x405000 + 2 * P);
    // Into the stack reservation.
    let mut s = space(u64::MAX);
    assert_eq!(s.brk(layout().stack_bottom() + P).0, 0x405000);
    // Overflowing address.
    assert_eq!(s.brk(u64::MAX).0, 0x405000);
    check_invariants(&s);
}

#[test]
fn mmap_places_top_down() {
    let mut s = space(64 * MIB);
    let top = layout().mmap_top;
    let a = anon(&mut s, Placement::Hint(0), 2 * P).unwrap();
    assert_eq!(a, top - 2 * P);
    let b = anon(&mut s, Placement::Hint(0), 5000).unwrap();
    assert_eq!(b, a - 2 * P, "length rounded up to pages");
    // They merged into one anonymous region.
    assert_eq!(s.region_at(a).unwrap().start, b);
    s.munmap(a, 2 * P).unwrap();
    // The hole at the top is reused.
    assert_eq!(anon(&mut s, Placement::Hint(0), P).unwrap(), top - P);
    // Holes between mappings are used, highest first.
    s.munmap(b, P).unwrap();
    assert_eq!(anon(&mut s, Placement::Hint(0), P).unwrap(), a);
    assert_eq!(anon(&mut s, Placement::Hint(0), P).unwrap(), b);
    // A request larger than every hole goes below everything.
    assert_eq!(anon(&mut s, Placement::Hint(0), 2 * P).unwrap(), b - 2 * P);
    check_invariants(&s);
}

#[test]
fn mmap_hint_and_fixed() {
    let mut s = space(64 * MIB);
    // A free hint is honoured (rounded up to a page).
    assert_eq!(
        anon(&mut s, Placement::Hint(0x1000_0001), P).unwrap(),
        0x1000_1000
    );
    // A taken hint falls back to top-down.
    assert_eq!(
        anon(&mut s, Placement::Hint(0x1000_1000), P).unwrap(),
        layout().mmap_top - P
    );
    // A hint below mmap_min_addr is ignored, not an error.
    assert_eq!(
        anon(&mut s, Placement::Hint(0x1000), P).unwrap(),
        layout().mmap_top - 2 * P
    );

    // MAP_FIXED replaces what is there, reporting the unmap.
    let used = s.used();
    let (a, fx) = s
        .mmap(
            Placement::Fixed(0x1000_0000),
            3 * P,
            Prot::R,
            RegionKind::Anon,
        )
        .unwrap();
    assert_eq!(a, 0x1000_0000);
    assert_eq!(
        fx,
        vec![
            VmEffect::Unmap {
                start: 0x1000_1000,
                end: 0x1000_2000
            },
            VmEffect::Map {
                start: 0x1000_0000,
                end: 0x1000_3000,
                prot: Prot::R
            },
        ]
    );
    assert_eq!(s.used(), used + 2 * P);
    // MAP_FIXED_NOREPLACE refuses.
    assert_eq!(
        anon(&mut s, Placement::FixedNoReplace(0x1000_2000), 2 * P),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        anon(&mut s, Placement::FixedNoReplace(0x1000_3000), P),
        Ok(0x1000_3000)
    );
    check_invariants(&s);
}

#[test]
fn mmap_errors() {
    let mut s = space(0x5000 + 4 * P);
    assert_eq!(anon(&mut s, Placement::Hint(0), 0), Err(Errno::EINVAL));
    assert_eq!(
        anon(&mut s, Placement::Fixed(0x1000_0010), P),
        Err(Errno::EINVAL)
    );
    assert_eq!(anon(&mut s, Placement::Fixed(0x1000), P), Err(Errno::EPERM));
    assert_eq!(
        anon(&mut s, Placement::Fixed(layout().max_addr - P), 2 * P),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        anon(&mut s, Placement::Hint(0), u64::MAX),
        Err(Errno::ENOMEM)
    );
    // The job's memory limit.
    assert_eq!(anon(&mut s, Placement::Hint(0), 5 * P), Err(Errno::ENOMEM));
    assert!(anon(&mut s, Placement::Hint(0), 4 * P).is_ok());
    assert_eq!(anon(&mut s, Placement::Hint(0), P), Err(Errno::ENOMEM));
    // Replacing mapped pages does not count twice.
    let top = layout().mmap_top;
    assert_eq!(
        anon(&mut s, Placement::Fixed(top - 4 * P), 4 * P),
        Ok(top - 4 * P)
    );
    assert_eq!(s.used(), s.limit());
    check_invariants(&s);
    // No hole large enough.
    let mut tiny = AddressSpace::new(
        UserLayout {
            min_addr: 0x10000,
            max_addr: 0x20000,
            stack_top: 0x20000,
            stack_size: 0x4000,
            mmap_top: 0x1c000,
            pie_base: 0x10000,
        },
        u64::MAX,
    );
    assert_eq!(anon(&mut tiny, Placement::Hint(0), 0xc000), Ok(0x10000));
    assert_eq!(anon(&mut tiny, Placement::Hint(0), P), Err(Errno::ENOMEM));
}

#[test]
fn munmap_splits_regions() {
    let mut s = space(64 * MIB);
    let a = anon(&mut s, Placement::Fixed(0x2000_0000), 4 * P).unwrap();
    let used = s.used();
    let fx = s.munmap(a + P, 2 * P).unwrap();
    assert_eq!(
        fx,
        vec![VmEffect::Unmap {
            start: a + P,
            end: a + 3 * P
        }]
    );
    assert_eq!(s.used(), used - 2 * P);
    assert_eq!(s.region_at(a).map(|r| (r.start, r.end)), Some((a, a + P)));
    assert_eq!(
        s.region_at(a + 3 * P).map(|r| (r.start, r.end)),
        Some((a + 3 * P, a + 4 * P))
    );
    assert_eq!(s.region_at(a + P), None);
    // Unmapping a hole is fine; a range over holes unmaps only mapped pages.
    assert_eq!(s.munmap(a + P, P), Ok(vec![]));
    let fx = s.munmap(a, 4 * P).unwrap();
    assert_eq!(
        fx,
        vec![
            VmEffect::Unmap {
                start: a,
                end: a + P
            },
            VmEffect::Unmap {
                start: a + 3 * P,
                end: a + 4 * P
            },
        ]
    );
    // Length rounds up; errors.
    anon(&mut s, Placement::Fixed(a), 2 * P).unwrap();
    assert_eq!(
        s.munmap(a, 1).unwrap(),
        vec![VmEffect::Unmap {
            start: a,
            end: a + P
        }]
    );
    assert_eq!(s.munmap(a + 1, P), Err(Errno::EINVAL));
    assert_eq!(s.munmap(a, 0), Err(Errno::EINVAL));
    assert_eq!(s.munmap(layout().max_addr - P, 2 * P), Err(Errno::EINVAL));
    assert_eq!(s.munmap(!(P - 1), 2 * P), Err(Errno::EINVAL));
    // Adjacent unmaps across region kinds merge into one effect.
    let fx = s.munmap(0x400000, 0x5000).unwrap();
    assert_eq!(
        fx,
        vec![VmEffect::Unmap {
            start: 0x400000,
            end: 0x405000
        }]
    );
    check_invariants(&s);
}

#[test]
fn mprotect_splits_and_merges() {
    let mut s = space(64 * MIB);
    let a = anon(&mut s, Placement::Fixed(0x2000_0000), 4 * P).unwrap();
    let fx = s.mprotect(a + P, P, Prot::R).unwrap();
    assert_eq!(
        fx,
        vec![VmEffect::Protect {
            start: a + P,
            end: a + 2 * P,
            prot: Prot::R
        }]
    );
    let prots: Vec<(u64, Prot)> = s
        .regions()
        .filter(|r| r.start >= a && r.end <= a + 4 * P)
        .map(|r| (r.start, r.prot))
        .collect();
    assert_eq!(
        prots,
        vec![(a, Prot::RW), (a + P, Prot::R), (a + 2 * P, Prot::RW)]
    );
    // Restoring merges back into one region.
    s.mprotect(a + P, P, Prot::RW).unwrap();
    assert_eq!(
        s.region_at(a).map(|r| (r.start, r.end)),
        Some((a, a + 4 * P))
    );
    // Errors.
    assert_eq!(s.mprotect(a + 1, P, Prot::R), Err(Errno::EINVAL));
    assert_eq!(s.mprotect(a, 0, Prot::R), Ok(vec![]));
    assert_eq!(s.mprotect(a, 5 * P, Prot::R), Err(Errno::ENOMEM));
    assert_eq!(s.mprotect(0x3000_0000, P, Prot::R), Err(Errno::ENOMEM));
    assert_eq!(
        s.region_at(a).unwrap().prot,
        Prot::RW,
        "failed mprotect changes nothing"
    );
    // Over a contiguous range made of several regions (image R, RX, RW).
    assert!(s.mprotect(0x400000, 0x5000, Prot::RWX).is_ok());
    assert_eq!(
        s.region_at(0x400000).map(|r| (r.start, r.end)),
        Some((0x400000, 0x405000))
    );
    check_invariants(&s);
}

#[test]
fn mremap_shrinks_grows_and_moves() {
    let mut s = space(64 * MIB);
    let a = anon(&mut s, Placement::Fixed(0x2000_0000), 4 * P).unwrap();
    // Shrink in place.
    let (r, fx) = s.mremap(a, 4 * P, 2 * P, 0, 0).unwrap();
    assert_eq!(r, a);
    assert_eq!(
        fx,
        vec![VmEffect::Unmap {
            start: a + 2 * P,
            end: a + 4 * P
        }]
    );
    // Grow in place into free pages.
    let (r, fx) = s.mremap(a, 2 * P, 3 * P, 0, 0).unwrap();
    assert_eq!(r, a);
    assert_eq!(
        fx,
        vec![VmEffect::Map {
            start: a + 2 * P,
            end: a + 3 * P,
            prot: Prot::RW
        }]
    );
    // Blocked: without MAYMOVE it fails, with MAYMOVE it moves top-down.
    anon(&mut s, Placement::Fixed(a + 3 * P), P).unwrap();
    s.mprotect(a + 3 * P, P, Prot::R).unwrap();
    assert_eq!(s.mremap(a, 3 * P, 5 * P, 0, 0), Err(Errno::ENOMEM));
    let used = s.used();
    let (r, fx) = s
        .mremap(a, 3 * P, 5 * P, u64::from(g::MREMAP_MAYMOVE), 0)
        .unwrap();
    assert_eq!(r, layout().mmap_top - 5 * P);
    assert_eq!(
        fx,
        vec![
            VmEffect::Move {
                from: a,
                to: r,
                len: 3 * P
            },
            VmEffect::Map {
                start: r + 3 * P,
                end: r + 5 * P,
                prot: Prot::RW
            },
        ]
    );
    assert_eq!(s.used(), used + 2 * P);
    assert_eq!(s.region_at(a), None);
    assert_eq!(s.region_at(r + 4 * P).unwrap().kind, RegionKind::Anon);
    // MREMAP_FIXED moves to the given place, replacing what is there.
    let flags = u64::from(g::MREMAP_MAYMOVE | g::MREMAP_FIXED);
    let (r2, fx) = s.mremap(r, 5 * P, 2 * P, flags, a + 2 * P).unwrap();
    assert_eq!(r2, a + 2 * P);
    assert_eq!(
        fx,
        vec![
            VmEffect::Unmap {
                start: a + 3 * P,
                end: a + 4 * P
            },
            VmEffect::Move {
                from: r,
                to: a + 2 * P,
                len: 2 * P
            },
            VmEffect::Unmap {
                start: r + 2 * P,
                end: r + 5 * P
            },
        ]
    );
    assert_eq!(s.region_at(r), None);
    assert_eq!(s.region_at(a + 3 * P).unwrap().prot, Prot::RW);
    check_invariants(&s);
}

#[test]
fn mremap_errors() {
    let mut s = space(0x5000 + 8 * P);
    let a = anon(&mut s, Placement::Fixed(0x2000_0000), 2 * P).unwrap();
    let maymove = u64::from(g::MREMAP_MAYMOVE);
    let fixed = u64::from(g::MREMAP_FIXED);
    assert_eq!(s.mremap(a + 1, P, P, 0, 0), Err(Errno::EINVAL));
    assert_eq!(s.mremap(a, 0, P, 0, 0), Err(Errno::EINVAL));
    assert_eq!(s.mremap(a, P, 0, 0, 0), Err(Errno::EINVAL));
    assert_eq!(s.mremap(a, P, P, fixed, a + 8 * P), Err(Errno::EINVAL));
    assert_eq!(
        s.mremap(a, P, P, u64::from(g::MREMAP_DONTUNMAP) | maymove, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        s.mremap(a, P, P, maymove | fixed, a + P + 1),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        s.mremap(a, 2 * P, 2 * P, maymove | fixed, a + P),
        Err(Errno::EINVAL),
        "overlap"
    );
    assert_eq!(
        s.mremap(0x3000_0000, P, 2 * P, maymove, 0),
        Err(Errno::EFAULT)
    );
    assert_eq!(s.mremap(a, 3 * P, 4 * P, maymove, 0), Err(Errno::EFAULT));
    // Memory limit: 6 pages free, growing 2 -> 9 needs 7.
    assert_eq!(s.mremap(a, 2 * P, 9 * P, maymove, 0), Err(Errno::ENOMEM));
    assert_eq!(s.mremap(a, 2 * P, 8 * P, maymove, 0).map(|(r, _)| r), Ok(a));
    // Same size: nothing to do.
    assert_eq!(s.mremap(a, 8 * P, 8 * P, 0, 0), Ok((a, vec![])));
    check_invariants(&s);
}

#[test]
fn access_checks() {
    let mut s = space(64 * MIB);
    assert_eq!(s.check_access(0x400000, 0x10, false), Ok(()));
    assert_eq!(s.check_access(0x400000, 0x10, true), Err(Errno::EFAULT));
    assert_eq!(s.check_access(0x402000, 0x3000, true), Ok(()));
    assert_eq!(s.check_access(0x402000, 0x3001, true), Err(Errno::EFAULT));
    // Spanning adjacent regions.
    assert_eq!(s.check_access(0x400ff0, 0x20, false), Ok(()));
    assert_eq!(s.check_access(0, 0, true), Ok(()));
    assert_eq!(s.check_access(0x10, 1, false), Err(Errno::EFAULT));
    assert_eq!(s.check_access(u64::MAX, 2, false), Err(Errno::EFAULT));
    let a = s
        .mmap(Placement::Hint(0), P, Prot::NONE, RegionKind::Anon)
        .unwrap()
        .0;
    assert_eq!(s.check_access(a, 1, false), Err(Errno::EFAULT));
}

#[test]
fn file_mappings_never_merge() {
    let mut s = space(64 * MIB);
    let a = s
        .mmap(Placement::Fixed(0x2000_0000), P, Prot::R, RegionKind::File)
        .unwrap()
        .0;
    s.mmap(Placement::Fixed(a + P), P, Prot::R, RegionKind::File)
        .unwrap();
    assert_eq!(s.region_at(a).unwrap().end, a + P);
    assert_eq!(s.region_at(a + P).unwrap().start, a + P);
    check_invariants(&s);
}

#[test]
fn prot_and_flags_decoding() {
    assert_eq!(Prot::from_linux(0), Ok(Prot::NONE));
    assert_eq!(Prot::from_linux(1 | 2), Ok(Prot::RW));
    assert_eq!(Prot::from_linux(1 | 4), Ok(Prot::RX));
    assert_eq!(Prot::from_linux(8), Err(Errno::EINVAL));
    assert_eq!(
        Prot::from_linux(u64::from(g::PROT_GROWSDOWN) | 1),
        Ok(Prot::R)
    );
    assert_eq!(Prot::RWX.to_linux(), 7);
    assert_eq!(Prot::R.union(Prot::RX), Prot::RX);

    let private_anon = u64::from(g::MAP_PRIVATE | g::MAP_ANONYMOUS);
    let f = MmapFlags::parse(private_anon).unwrap();
    assert!(!f.shared && f.anonymous && !f.fixed);
    assert_eq!(f.placement(0x1234), Placement::Hint(0x1234));
    let f = MmapFlags::parse(private_anon | u64::from(g::MAP_FIXED)).unwrap();
    assert_eq!(f.placement(0x1000), Placement::Fixed(0x1000));
    let f = MmapFlags::parse(private_anon | u64::from(g::MAP_FIXED_NOREPLACE)).unwrap();
    assert_eq!(f.placement(0x1000), Placement::FixedNoReplace(0x1000));
    assert!(MmapFlags::parse(u64::from(g::MAP_SHARED)).unwrap().shared);
    assert!(
        MmapFlags::parse(u64::from(g::MAP_SHARED_VALIDATE))
            .unwrap()
            .shared
    );
    assert_eq!(
        MmapFlags::parse(u64::from(g::MAP_ANONYMOUS)),
        Err(Errno::EINVAL)
    );
    assert_eq!(MmapFlags::parse(0xf), Err(Errno::EINVAL));
    assert_eq!(pages(3), 3 * P);
}

/// Page-level model kept only from the effects the allocator reports.
struct Model {
    pages: BTreeMap<u64, Prot>,
}

impl Model {
    fn apply(&mut self, fx: &[VmEffect]) {
        for e in fx {
            match *e {
                VmEffect::Map { start, end, prot } => {
                    for p in (start..end).step_by(P as usize) {
                        assert!(
                            self.pages.insert(p, prot).is_none(),
                            "Map over mapped page {p:#x}"
                        );
                    }
                }
                VmEffect::Unmap { start, end } => {
                    for p in (start..end).step_by(P as usize) {
                        assert!(
                            self.pages.remove(&p).is_some(),
                            "Unmap of unmapped page {p:#x}"
                        );
                    }
                }
                VmEffect::Protect { start, end, prot } => {
                    for p in (start..end).step_by(P as usize) {
                        *self.pages.get_mut(&p).expect("Protect of unmapped page") = prot;
                    }
                }
                VmEffect::Move { from, to, len } => {
                    let moved: Vec<(u64, Prot)> = (0..len / P)
                        .map(|i| {
                            (
                                i,
                                self.pages
                                    .remove(&(from + i * P))
                                    .expect("Move of unmapped page"),
                            )
                        })
                        .collect();
                    for (i, prot) in moved {
                        assert!(
                            self.pages.insert(to + i * P, prot).is_none(),
                            "Move onto mapped page"
                        );
                    }
                }
            }
        }
    }

    fn matches(&self, s: &AddressSpace) {
        let mut from_regions = BTreeMap::new();
        for r in s.regions() {
            for p in (r.start..r.end).step_by(P as usize) {
                from_regions.insert(p, r.prot);
            }
        }
        assert_eq!(self.pages, from_regions);
    }
}

#[test]
fn random_operations_match_a_page_model() {
    let small = UserLayout {
        min_addr: 0x10000,
        max_addr: 0x80000,
        stack_top: 0x80000,
        stack_size: 0x8000,
        mmap_top: 0x70000,
        pie_base: 0x20000,
    };
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut ok = [0u32; 6];
    for _round in 0..20 {
        let mut s = AddressSpace::new(small, 64 * P);
        let mut m = Model {
            pages: BTreeMap::new(),
        };
        let prots = [Prot::NONE, Prot::R, Prot::RW, Prot::RX];
        for _ in 0..300 {
            let addr = 0x10000 + rnd(0x70) * P;
            let len = (1 + rnd(8)) * P - rnd(2);
            let prot = prots[rnd(4) as usize];
            let op = rnd(6) as usize;
            let fx = match op {
                0 => s
                    .mmap(Placement::Hint(0), len, prot, RegionKind::Anon)
                    .map(|x| x.1),
                1 => s
                    .mmap(Placement::Fixed(addr), len, prot, RegionKind::Anon)
                    .map(|x| x.1),
                2 => s.munmap(addr, len),
                3 => s.mprotect(addr, len, prot),
                4 => {
                    let flags = [0, 1, 3][rnd(3) as usize];
                    let new_addr = 0x10000 + rnd(0x70) * P;
                    s.mremap(addr, (1 + rnd(3)) * P, len, flags, new_addr)
                        .map(|x| x.1)
                }
                _ => Ok(s.brk(s.brk_value() + rnd(6 * P) - rnd(3 * P)).1),
            };
            if let Ok(fx) = fx {
                if !fx.is_empty() {
                    ok[op] += 1;
                }
                m.apply(&fx);
            }
            m.matches(&s);
            check_invariants(&s);
        }
    }
    // Every kind of operation took effect many times.
    assert!(ok.iter().all(|&n| n > 50), "{ok:?}");
}
