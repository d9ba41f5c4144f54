//! Tests of the ELF checks and loading plan on images built by
//! [`crate::testelf`].

use super::*;
use crate::testelf::{Ph, R, RW, RX, TestElf, dyn64};
use alloc::string::ToString;
use alloc::vec;

fn plan(e: &TestElf) -> Result<LoadPlan, ElfError> {
    load_plan(&e.bytes(), &LoadConfig::default())
}

fn err(e: &TestElf) -> ElfError {
    plan(e).expect_err("should be refused")
}

#[test]
fn static_x86_64_plan() {
    let p = plan(&TestElf::exec64()).unwrap();
    assert_eq!(p.abi, Abi::X86_64);
    assert_eq!(p.kind, ElfKind::Static);
    assert_eq!(p.bias, 0);
    assert_eq!(p.entry, 0x401010);
    assert_eq!(
        p.segments,
        vec![
            Segment {
                start: 0x400000,
                end: 0x401000,
                vaddr: 0x400000,
                file_offset: 0,
                file_len: 0x200,
                mem_len: 0x200,
                zero_len: 0,
                prot: Prot::R,
            },
            Segment {
                start: 0x401000,
                end: 0x402000,
                vaddr: 0x401000,
                file_offset: 0x1000,
                file_len: 0x100,
                mem_len: 0x100,
                zero_len: 0,
                prot: Prot::RX,
            },
            Segment {
                start: 0x402000,
                end: 0x405000,
                vaddr: 0x402000,
                file_offset: 0x2000,
                file_len: 0x80,
                mem_len: 0x3000,
                zero_len: 0x2f80,
                prot: Prot::RW,
            },
        ]
    );
    assert_eq!(p.segments[2].file_range(), 0x2000..0x2080);
    assert_eq!(p.brk_start, 0x405000);
    // Program headers follow the 64-byte file header inside the first segment.
    assert_eq!(p.phdr, PhdrLocation::Loaded(0x400040));
    assert_eq!((p.phent, p.phnum), (56, 5));
    assert_eq!(
        p.tls,
        Some(Tls {
            vaddr: 0x402000,
            file_len: 0x10,
            mem_len: 0x20,
            align: 8
        })
    );
    assert_eq!(
        p.gnu_stack,
        Some(GnuStack {
            executable: false,
            size: 0
        })
    );
    assert_eq!(
        p.mappings(),
        vec![
            Mapping {
                start: 0x400000,
                end: 0x401000,
                prot: Prot::R
            },
            Mapping {
                start: 0x401000,
                end: 0x402000,
                prot: Prot::RX
            },
            Mapping {
                start: 0x402000,
                end: 0x405000,
                prot: Prot::RW
            },
        ]
    );
    assert_eq!(p.image_size(), 0x5000);
    assert_eq!(identify(&TestElf::exec64().bytes()), Ok(Abi::X86_64));
}

#[test]
fn static_i386_plan() {
    let e = TestElf::exec32();
    let p = plan(&e).unwrap();
    assert_eq!(p.abi, Abi::I386);
    assert_eq!(p.kind, ElfKind::Static);
    assert_eq!(p.entry, 0x8049010);
    assert_eq!(p.segments.len(), 3);
    assert_eq!(p.segments[1].start, 0x8049000);
    assert_eq!(p.segments[1].prot, Prot::RX);
    assert_eq!(p.brk_start, 0x804d000);
    assert_eq!(p.phdr, PhdrLocation::Loaded(0x8048000 + 52));
    assert_eq!((p.phent, p.phnum), (32, 5));
    assert_eq!(identify(&e.bytes()), Ok(Abi::I386));
}

#[test]
fn static_pie_is_loaded_at_the_documented_bias() {
    let p = plan(&TestElf::pie64()).unwrap();
    assert_eq!(p.kind, ElfKind::StaticPie);
    assert_eq!(p.bias, 0x5555_5555_4000);
    assert_eq!(p.entry, 0x5555_5555_4000 + 0x1010);
    assert_eq!(p.segments[0].start, 0x5555_5555_4000);
    assert_eq!(p.brk_start, 0x5555_5555_4000 + 0x5000);
    // From PT_PHDR, biased.
    assert_eq!(p.phdr, PhdrLocation::Loaded(0x5555_5555_4000 + 64));
    assert_eq!(p.tls.unwrap().vaddr, 0x5555_5555_4000 + 0x2000);

    // i386 static-PIE: the i386 base.
    let mut e = TestElf::pie64();
    e.class64 = false;
    e.machine = elf::abi::EM_386;
    e.patches.retain(|(at, _)| *at != 0x2040);
    e.phdrs
        .retain(|ph| ph.p_type != elf::abi::PT_DYNAMIC && ph.p_type != elf::abi::PT_PHDR);
    let p = plan(&e).unwrap();
    assert_eq!(p.abi, Abi::I386);
    assert_eq!(p.bias, 0x5655_5000);
    assert_eq!(p.entry, 0x5655_6010);
}

#[test]
fn static_pie_bias_keeps_large_alignment() {
    let mut e = TestElf::pie64();
    for ph in e
        .phdrs
        .iter_mut()
        .filter(|ph| ph.p_type == elf::abi::PT_LOAD)
    {
        ph.p_align = 0x20_0000;
    }
    let p = plan(&e).unwrap();
    assert_eq!(p.bias, 0x5555_5560_0000);
    assert_eq!(p.bias % 0x20_0000, 0);
    // Non-power-of-two alignments are ignored (page alignment).
    for ph in e
        .phdrs
        .iter_mut()
        .filter(|ph| ph.p_type == elf::abi::PT_LOAD)
    {
        ph.p_align = 0x3000;
    }
    assert_eq!(plan(&e).unwrap().bias, 0x5555_5555_4000);
}

#[test]
fn static_pie_linked_high_gets_no_negative_bias() {
    let mut e = TestElf::pie64();
    for ph in &mut e.phdrs {
        if ph.p_vaddr != 0 || ph.p_type == elf::abi::PT_LOAD {
            ph.p_vaddr += 0x6000_0000_0000;
        }
    }
    e.entry += 0x6000_0000_0000;
    let p = plan(&e).unwrap();
    assert_eq!(p.bias, 0);
    assert_eq!(p.segments[0].start, 0x6000_0000_0000);
}

#[test]
fn an_interpreter_makes_a_dynamic_plan_or_is_refused_where_not_allowed() {
    let strict = LoadConfig {
        allow_interpreter: false,
        ..LoadConfig::default()
    };
    let mut e = TestElf::exec64();
    let interp = b"/lib64/ld-linux-x86-64.so.2\0";
    e.phdrs.insert(
        0,
        Ph::other(
            elf::abi::PT_INTERP,
            R,
            0x1080,
            0x401080,
            interp.len() as u64,
            interp.len() as u64,
        ),
    );
    e.patches.push((0x1080, interp.to_vec()));
    let p = plan(&e).unwrap();
    assert_eq!((p.kind, p.bias), (ElfKind::Dynamic, 0));
    assert_eq!(p.interp.as_deref(), Some(&interp[..interp.len() - 1]));
    let er = load_plan(&e.bytes(), &strict).unwrap_err();
    assert_eq!(er, ElfError::DynamicallyLinked { interpreter: true });
    let msg = er.to_string();
    assert!(msg.contains("dynamically linked"), "{msg}");
    assert!(msg.contains("rebuild with -static"), "{msg}");
    // A PIE with an interpreter (and DT_NEEDED libraries) is a dynamic PIE,
    // biased as a static-PIE.
    let mut pie = TestElf::pie64();
    pie.phdrs.push(Ph::other(
        elf::abi::PT_INTERP,
        R,
        0x1080,
        0x1080,
        interp.len() as u64,
        interp.len() as u64,
    ));
    pie.patches.push((0x1080, interp.to_vec()));
    pie.patches.push((0x2040, dyn64(&[(1, 1), (0, 0)])));
    let p = plan(&pie).unwrap();
    assert_eq!(p.kind, ElfKind::Dynamic);
    assert!(p.bias > 0);
    // An empty interpreter path is malformed.
    let mut e = TestElf::pie64();
    e.phdrs
        .push(Ph::other(elf::abi::PT_INTERP, R, 0x1080, 0x1080, 1, 1));
    e.patches.push((0x1080, vec![0]));
    assert!(matches!(err(&e), ElfError::Malformed { .. }));
}

#[test]
fn needed_library_is_refused_as_dynamic() {
    let mut e = TestElf::pie64();
    // DT_NEEDED (1) before DT_NULL.
    e.patches.push((0x2040, dyn64(&[(1, 1), (0, 0)])));
    let er = err(&e);
    assert_eq!(er, ElfError::DynamicallyLinked { interpreter: false });
    assert!(er.to_string().contains("DT_NEEDED"));
    assert!(er.to_string().contains("rebuild with -static"));
    // DT_NEEDED after DT_NULL does not count.
    let mut e = TestElf::pie64();
    e.patches.push((0x2040, dyn64(&[(0, 0), (1, 1)])));
    assert!(plan(&e).is_ok());
    // A PT_DYNAMIC whose bytes lie past the end of the file.
    let mut e = TestElf::pie64();
    e.phdrs.last_mut().unwrap().p_offset = 0x9000;
    assert!(matches!(err(&e), ElfError::Truncated { .. }));
}

#[test]
fn other_architectures_are_named() {
    let mut e = TestElf::exec64();
    e.machine = elf::abi::EM_AARCH64;
    let er = err(&e);
    assert_eq!(
        er,
        ElfError::WrongArchitecture {
            machine: elf::abi::EM_AARCH64,
            bits: 64
        }
    );
    let msg = er.to_string();
    assert!(msg.contains("AARCH64"), "{msg}");
    assert!(msg.contains("rebuild"), "{msg}");

    let mut e = TestElf::exec32();
    e.machine = elf::abi::EM_ARM;
    assert!(err(&e).to_string().contains("ARM 32-bit"));

    let mut e = TestElf::exec64();
    e.machine = elf::abi::EM_RISCV;
    assert!(err(&e).to_string().contains("RISC-V"));

    // ELF64 for EM_386 or ELF32 for EM_X86_64 (x32) are not runnable either.
    let mut e = TestElf::exec64();
    e.machine = elf::abi::EM_386;
    assert_eq!(
        err(&e),
        ElfError::WrongArchitecture {
            machine: 3,
            bits: 64
        }
    );
    let mut e = TestElf::exec32();
    e.machine = elf::abi::EM_X86_64;
    assert_eq!(err(&e), ElfError::X32);
    assert!(ElfError::X32.to_string().contains("x32"));

    // Big-endian: named by its machine (here a big-endian PowerPC64 file).
    let mut e = TestElf::exec64();
    e.big_endian = true;
    e.machine = elf::abi::EM_PPC64;
    assert!(err(&e).to_string().contains("PowerPC"));
    let mut e = TestElf::exec64();
    e.big_endian = true;
    assert!(matches!(err(&e), ElfError::Malformed { .. }));
}

#[test]
fn non_elf_files_are_refused() {
    // Deterministic pseudo-random bytes.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let cfg = LoadConfig::default();
    assert_eq!(load_plan(&random, &cfg), Err(ElfError::NotElf));
    assert_eq!(load_plan(b"", &cfg), Err(ElfError::NotElf));
    assert_eq!(
        load_plan(b"#!/bin/sh\necho hi\n", &cfg),
        Err(ElfError::NotElf)
    );
    assert_eq!(load_plan(b"\x7fEL", &cfg), Err(ElfError::NotElf));
    assert_eq!(load_plan(b"MZ\x90\x00", &cfg), Err(ElfError::NotElf));
    let msg = ElfError::NotElf.to_string();
    assert!(msg.contains("not an ELF"), "{msg}");
}

#[test]
fn truncated_files() {
    let full = TestElf::exec64().bytes();
    let cfg = LoadConfig::default();
    assert_eq!(
        load_plan(&full[..10], &cfg),
        Err(ElfError::Truncated {
            what: "ELF identification"
        })
    );
    assert_eq!(
        load_plan(&full[..40], &cfg),
        Err(ElfError::Truncated { what: "ELF header" })
    );
    assert_eq!(
        load_plan(&full[..100], &cfg),
        Err(ElfError::Truncated {
            what: "program header table"
        })
    );
    // Headers complete, but the data segment's bytes are cut off.
    let er = load_plan(&full[..0x2040], &cfg).unwrap_err();
    assert!(matches!(er, ElfError::Truncated { .. }));
    assert!(er.to_string().starts_with("truncated ELF file"));
    // Program header table offset far outside the file.
    let mut e = TestElf::exec64();
    e.phoff = Some(u64::MAX - 10);
    assert!(matches!(err(&e), ElfError::Truncated { .. }));
}

#[test]
fn malformed_headers() {
    let mut bytes = TestElf::exec64().bytes();
    bytes[4] = 3; // EI_CLASS
    assert!(matches!(
        load_plan(&bytes, &LoadConfig::default()),
        Err(ElfError::Malformed { .. })
    ));
    let mut bytes = TestElf::exec64().bytes();
    bytes[6] = 0; // EI_VERSION
    assert!(matches!(
        load_plan(&bytes, &LoadConfig::default()),
        Err(ElfError::Malformed { .. })
    ));

    let mut e = TestElf::exec64();
    e.phentsize = Some(32);
    assert!(matches!(err(&e), ElfError::Malformed { .. }));

    let mut e = TestElf::exec64();
    e.phdrs[2].p_filesz = 0x4000; // more than p_memsz
    e.file_len = 0x7000;
    let er = err(&e);
    assert!(matches!(er, ElfError::Malformed { .. }));
    assert!(er.to_string().contains("file size exceeds its memory size"));
}

#[test]
fn not_executables() {
    let mut e = TestElf::exec64();
    e.e_type = elf::abi::ET_REL;
    let er = err(&e);
    assert_eq!(er, ElfError::NotExecutable { e_type: 1 });
    assert!(er.to_string().contains("relocatable object"));
    e.e_type = elf::abi::ET_CORE;
    assert!(err(&e).to_string().contains("core dump"));
}

#[test]
fn no_load_segments() {
    let mut e = TestElf::exec64();
    e.phdrs.retain(|ph| ph.p_type != elf::abi::PT_LOAD);
    assert_eq!(err(&e), ElfError::NoLoadSegments);
    e.phdrs.clear();
    assert_eq!(err(&e), ElfError::NoLoadSegments);
    // Only empty PT_LOADs.
    let mut e = TestElf::exec64();
    for ph in &mut e.phdrs {
        ph.p_filesz = 0;
        ph.p_memsz = 0;
    }
    assert_eq!(err(&e), ElfError::NoLoadSegments);
    assert!(ElfError::NoLoadSegments.to_string().contains("PT_LOAD"));
}

#[test]
fn overlapping_segments() {
    let mut e = TestElf::exec64();
    e.phdrs[2].p_vaddr = 0x4010f0; // inside the code segment's 0x100 bytes
    assert_eq!(
        err(&e),
        ElfError::Overlap {
            first: 0x401000,
            second: 0x4010f0
        }
    );
    // Unsorted program headers are sorted before checking, and still overlap.
    let mut e = TestElf::exec64();
    e.phdrs.swap(0, 2);
    e.phdrs[0].p_vaddr = 0x400100;
    assert!(matches!(err(&e), ElfError::Overlap { .. }));
}

#[test]
fn segments_sharing_a_page_get_the_union_of_permissions() {
    let mut e = TestElf::exec64();
    // Data starts in the last page of the code, without overlapping bytes.
    e.phdrs[2].p_vaddr = 0x401800;
    e.phdrs[2].p_memsz = 0x1000;
    let p = plan(&e).unwrap();
    assert_eq!(p.segments[2].start, 0x401000);
    assert_eq!(
        p.mappings(),
        vec![
            Mapping {
                start: 0x400000,
                end: 0x401000,
                prot: Prot::R
            },
            Mapping {
                start: 0x401000,
                end: 0x402000,
                prot: Prot::RWX
            },
            Mapping {
                start: 0x402000,
                end: 0x403000,
                prot: Prot::RW
            },
        ]
    );
    assert_eq!(p.brk_start, 0x403000);
}

#[test]
fn segments_out_of_the_user_range() {
    // Linked at address 0: below mmap_min_addr.
    let mut e = TestElf::exec64();
    e.phdrs[0].p_vaddr = 0;
    let er = err(&e);
    assert!(
        matches!(er, ElfError::OutOfRange { start: 0, .. }),
        "{er:?}"
    );
    assert!(er.to_string().contains("outside the user address range"));
    // Into the stack reservation.
    let mut e = TestElf::exec64();
    e.phdrs[2].p_vaddr = 0x7fff_fff0_0000;
    assert!(matches!(err(&e), ElfError::OutOfRange { .. }));
    // Kernel half.
    let mut e = TestElf::exec64();
    e.phdrs[2].p_vaddr = 0xffff_8000_0000_0000;
    assert!(matches!(err(&e), ElfError::OutOfRange { .. }));
    // Wrapping around the address space.
    let mut e = TestElf::exec64();
    e.phdrs[2].p_vaddr = u64::MAX - 0x100;
    assert!(matches!(err(&e), ElfError::OutOfRange { .. }));
    // i386: above the 32-bit user top.
    let mut e = TestElf::exec32();
    e.phdrs[2].p_vaddr = 0xffff_f000;
    e.phdrs[2].p_memsz = 0x800;
    assert!(matches!(err(&e), ElfError::OutOfRange { .. }));
    // A custom, smaller layout is honoured.
    let mut cfg = LoadConfig::default();
    cfg.x86_64.min_addr = 0x40_0000 + 0x1000;
    assert!(matches!(
        load_plan(&TestElf::exec64().bytes(), &cfg),
        Err(ElfError::OutOfRange { .. })
    ));
}

#[test]
fn huge_memsz_is_too_large() {
    let mut e = TestElf::exec64();
    e.phdrs[2].p_memsz = 1 << 40;
    let er = err(&e);
    assert_eq!(
        er,
        ElfError::TooLarge {
            size: 1 << 40,
            limit: 1 << 30
        }
    );
    assert!(er.to_string().contains("memory limit"));
    // The limit applies to the sum of all segments.
    let cfg = LoadConfig {
        max_image_size: 0x4000,
        ..LoadConfig::default()
    };
    assert_eq!(
        load_plan(&TestElf::exec64().bytes(), &cfg),
        Err(ElfError::TooLarge {
            size: 0x5000,
            limit: 0x4000
        })
    );
}

#[test]
fn entry_must_be_in_an_executable_segment() {
    let mut e = TestElf::exec64();
    e.entry = 0x402010; // data
    let er = err(&e);
    assert_eq!(er, ElfError::BadEntry { entry: 0x402010 });
    assert!(er.to_string().contains("entry point 0x402010"));
    e.entry = 0x401100; // one past the code
    assert_eq!(err(&e), ElfError::BadEntry { entry: 0x401100 });
    e.entry = 0;
    assert_eq!(err(&e), ElfError::BadEntry { entry: 0 });
    // The last byte of the code segment is fine.
    e.entry = 0x4010ff;
    assert!(plan(&e).is_ok());
}

#[test]
fn program_headers_outside_every_segment() {
    let mut e = TestElf::exec64();
    e.phoff = Some(0x2100);
    e.file_len = 0x2400;
    let p = plan(&e).unwrap();
    assert_eq!(
        p.phdr,
        PhdrLocation::NotLoaded {
            offset: 0x2100,
            len: 5 * 56
        }
    );
}

#[test]
fn every_error_message_says_what_to_do() {
    let errors = [
        ElfError::NotElf,
        ElfError::Truncated { what: "ELF header" },
        ElfError::Malformed { what: "x" },
        ElfError::WrongArchitecture {
            machine: 183,
            bits: 64,
        },
        ElfError::WrongArchitecture {
            machine: 0x7777,
            bits: 64,
        },
        ElfError::X32,
        ElfError::NotExecutable { e_type: 1 },
        ElfError::NotExecutable { e_type: 0x1234 },
        ElfError::DynamicallyLinked { interpreter: true },
        ElfError::NoLoadSegments,
        ElfError::Overlap {
            first: 1,
            second: 2,
        },
        ElfError::OutOfRange {
            start: 0,
            end: 1,
            min: 2,
            max: 3,
        },
        ElfError::TooLarge { size: 2, limit: 1 },
        ElfError::BadEntry { entry: 0 },
    ];
    for e in errors {
        let msg = e.to_string();
        let advice = ["rebuild", "relink", "link it", "submit", "copy", "shrink"];
        assert!(
            advice.iter().any(|a| msg.contains(a)),
            "no advice in: {msg}"
        );
    }
    assert!(
        ElfError::WrongArchitecture {
            machine: 0x7777,
            bits: 64
        }
        .to_string()
        .contains("unknown machine")
    );
}

#[test]
fn load_plan_places_the_right_bytes() {
    // Simulate loading into a sparse memory and check the entry code and the
    // program headers seen through AT_PHDR.
    for e in [TestElf::exec64(), TestElf::exec32(), TestElf::pie64()] {
        let file = e.bytes();
        let p = load_plan(&file, &LoadConfig::default()).unwrap();
        let mem = crate::testelf::load(&p, &file);
        assert_eq!(mem.read(p.entry, 2), vec![0xf4, 0xcc]);
        let PhdrLocation::Loaded(phdr) = p.phdr else {
            panic!()
        };
        let len = usize::from(p.phent) * usize::from(p.phnum);
        let off = if p.abi == Abi::X86_64 { 64 } else { 52 };
        assert_eq!(mem.read(phdr, len), file[off..off + len].to_vec());
        // .bss is zero, TLS image is the file's.
        let tls = p.tls.unwrap();
        assert_eq!(mem.read(tls.vaddr, 16), b"tls-init-image!!".to_vec());
        assert!(mem.read(tls.vaddr + 0x80, 0x100).iter().all(|&b| b == 0));
    }
}

#[test]
fn rwx_prot_helpers() {
    assert_eq!(prot_of(elf::abi::PF_R | elf::abi::PF_X), Prot::RX);
    assert_eq!(prot_of(RW), Prot::RW);
    assert_eq!(prot_of(RX), Prot::RX);
    assert_eq!(effective_align(0), PAGE_SIZE);
    assert_eq!(effective_align(16), PAGE_SIZE);
    assert_eq!(effective_align(0x20_0000), 0x20_0000);
}

#[test]
fn bogus_pt_phdr_falls_back_to_e_phoff() {
    let mut e = TestElf::pie64();
    // PT_PHDR pointing into .bss, where no header bytes are loaded.
    e.phdrs[0].p_vaddr = 0x3000;
    let p = plan(&e).unwrap();
    assert_eq!(p.phdr, PhdrLocation::Loaded(p.bias + 64));
}

#[test]
fn sparse_file_fetches_what_it_lacks() {
    let cfg = LoadConfig::default();
    for e in [TestElf::exec64(), TestElf::exec32(), TestElf::pie64()] {
        let bytes = e.bytes();
        let want = load_plan(&bytes, &cfg);
        // Nothing at hand: every range is fetched on demand.
        let mut sparse = SparseFile::new(bytes.len() as u64);
        let mut fetches = 0;
        let got = load_plan_sparse(&mut sparse, &cfg, |off, len| {
            fetches += 1;
            Some(bytes[off as usize..(off + len) as usize].to_vec())
        });
        assert_eq!(got, want);
        assert!(fetches >= 1);
        // A fetch that fails gives the truncation error, never a panic.
        let mut sparse = SparseFile::new(bytes.len() as u64);
        assert!(matches!(
            load_plan_sparse(&mut sparse, &cfg, |_, _| None),
            Err(ElfError::Truncated { .. })
        ));
    }
    // A prefix only: reads past the real end are still truncation.
    let bytes = TestElf::exec64().bytes();
    let mut sparse = SparseFile::new(bytes.len() as u64 + 10);
    sparse.add(0, bytes.clone());
    assert_eq!(
        load_plan_sparse(&mut sparse, &cfg, |_, _| None),
        load_plan(&bytes, &cfg)
    );
    let mut short = SparseFile::new(3);
    short.add(0, b"\x7fEL".to_vec());
    assert_eq!(
        load_plan_sparse(&mut short, &cfg, |_, _| None),
        Err(ElfError::NotElf)
    );
}
