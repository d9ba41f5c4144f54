//! Test support: a small builder of ELF executable images (headers, program
//! headers and file bytes) for the loader and stack tests.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use elf::abi;

use crate::abi::{PAGE_SIZE, page_down};
use crate::elf_load::LoadPlan;

/// One program header, in 64-bit form (narrowed for ELF32).
#[derive(Clone, Copy, Debug)]
pub struct Ph {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

impl Ph {
    pub fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
        Ph {
            p_type: abi::PT_LOAD,
            p_flags: flags,
            p_offset: offset,
            p_vaddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: 0x1000,
        }
    }

    pub fn other(p_type: u32, flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
        Ph {
            p_type,
            p_flags: flags,
            p_offset: offset,
            p_vaddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: 8,
        }
    }
}

pub const R: u32 = abi::PF_R;
pub const RX: u32 = abi::PF_R | abi::PF_X;
pub const RW: u32 = abi::PF_R | abi::PF_W;

/// An ELF image under construction.
#[derive(Clone, Debug)]
pub struct TestElf {
    pub class64: bool,
    pub big_endian: bool,
    pub machine: u16,
    pub e_type: u16,
    pub entry: u64,
    /// `None`: right after the file header.
    pub phoff: Option<u64>,
    pub phentsize: Option<u16>,
    pub phdrs: Vec<Ph>,
    /// Total file length (zero-padded); grown to fit headers and patches.
    pub file_len: usize,
    /// Bytes placed at file offsets.
    pub patches: Vec<(usize, Vec<u8>)>,
}

impl TestElf {
    /// A static x86_64 `ET_EXEC` linked at 0x400000, like `ld`'s default:
    /// headers in a read-only segment, code at 0x401000 (entry), data + bss at
    /// 0x402000 (file 0x80 bytes, memory 0x3000), TLS and GNU_STACK.
    pub fn exec64() -> TestElf {
        TestElf {
            class64: true,
            big_endian: false,
            machine: abi::EM_X86_64,
            e_type: abi::ET_EXEC,
            entry: 0x401010,
            phoff: None,
            phentsize: None,
            phdrs: vec![
                Ph::load(R, 0, 0x400000, 0x200, 0x200),
                Ph::load(RX, 0x1000, 0x401000, 0x100, 0x100),
                Ph::load(RW, 0x2000, 0x402000, 0x80, 0x3000),
                Ph::other(abi::PT_TLS, R, 0x2000, 0x402000, 0x10, 0x20),
                Ph::other(abi::PT_GNU_STACK, RW, 0, 0, 0, 0),
            ],
            file_len: 0x2080,
            patches: vec![
                (0x1010, vec![0xf4, 0xcc]),
                (0x2000, b"tls-init-image!!".to_vec()),
            ],
        }
    }

    /// The same layout as a static i386 `ET_EXEC` at 0x8048000.
    pub fn exec32() -> TestElf {
        let mut e = TestElf::exec64();
        e.class64 = false;
        e.machine = abi::EM_386;
        e.entry = 0x8049010;
        for ph in &mut e.phdrs {
            if ph.p_vaddr != 0 {
                ph.p_vaddr = ph.p_vaddr - 0x400000 + 0x8048000;
            }
        }
        e
    }

    /// A static-PIE x86_64 (`ET_DYN`, linked at 0, `PT_PHDR`, `PT_DYNAMIC`
    /// without `DT_NEEDED`).
    pub fn pie64() -> TestElf {
        let mut e = TestElf::exec64();
        e.e_type = abi::ET_DYN;
        e.entry = 0x1010;
        for ph in &mut e.phdrs {
            if ph.p_vaddr != 0 {
                ph.p_vaddr -= 0x400000;
            }
        }
        e.phdrs
            .insert(0, Ph::other(abi::PT_PHDR, R, 64, 64, 56 * 7, 56 * 7));
        e.phdrs
            .push(Ph::other(abi::PT_DYNAMIC, RW, 0x2040, 0x2040, 0x20, 0x20));
        // DT_DEBUG 0, DT_NULL.
        e.patches.push((0x2040, dyn64(&[(21, 0), (0, 0)])));
        e
    }

    fn ehsize(&self) -> u64 {
        if self.class64 { 64 } else { 52 }
    }

    fn phentsize_default(&self) -> u16 {
        if self.class64 { 56 } else { 32 }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut w = Writer {
            out: Vec::new(),
            big: self.big_endian,
        };
        let class64 = self.class64;
        let phoff = self.phoff.unwrap_or(self.ehsize());
        w.out.extend_from_slice(&abi::ELFMAGIC);
        w.out.push(if class64 {
            abi::ELFCLASS64
        } else {
            abi::ELFCLASS32
        });
        w.out.push(if self.big_endian {
            abi::ELFDATA2MSB
        } else {
            abi::ELFDATA2LSB
        });
        w.out.push(abi::EV_CURRENT);
        w.out.extend_from_slice(&[0; 9]);
        w.u16(self.e_type);
        w.u16(self.machine);
        w.u32(1);
        w.addr(class64, self.entry);
        w.addr(
            class64,
            if self.phdrs.is_empty() && self.phoff.is_none() {
                0
            } else {
                phoff
            },
        );
        w.addr(class64, 0); // no section headers
        w.u32(0);
        w.u16(self.ehsize() as u16);
        w.u16(self.phentsize.unwrap_or(self.phentsize_default()));
        w.u16(self.phdrs.len() as u16);
        w.u16(0);
        w.u16(0);
        w.u16(0);
        let mut phbytes = Writer {
            out: Vec::new(),
            big: self.big_endian,
        };
        for ph in &self.phdrs {
            if class64 {
                phbytes.u32(ph.p_type);
                phbytes.u32(ph.p_flags);
                phbytes.u64(ph.p_offset);
                phbytes.u64(ph.p_vaddr);
                phbytes.u64(ph.p_vaddr);
                phbytes.u64(ph.p_filesz);
                phbytes.u64(ph.p_memsz);
                phbytes.u64(ph.p_align);
            } else {
                phbytes.u32(ph.p_type);
                phbytes.u32(ph.p_offset as u32);
                phbytes.u32(ph.p_vaddr as u32);
                phbytes.u32(ph.p_vaddr as u32);
                phbytes.u32(ph.p_filesz as u32);
                phbytes.u32(ph.p_memsz as u32);
                phbytes.u32(ph.p_flags);
                phbytes.u32(ph.p_align as u32);
            }
        }
        let mut out = w.out;
        let place = |at: usize, b: &[u8], out: &mut Vec<u8>| {
            if out.len() < at + b.len() {
                out.resize(at + b.len(), 0);
            }
            out[at..at + b.len()].copy_from_slice(b);
        };
        if phoff < 1 << 24 {
            place(phoff as usize, &phbytes.out, &mut out);
        }
        for (at, b) in &self.patches {
            place(*at, b, &mut out);
        }
        if out.len() < self.file_len {
            out.resize(self.file_len, 0);
        }
        out
    }
}

/// Encodes ELF64 dynamic entries (tag, value).
pub fn dyn64(entries: &[(i64, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(t, v) in entries {
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

struct Writer {
    out: Vec<u8>,
    big: bool,
}

impl Writer {
    fn u16(&mut self, v: u16) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }
    fn u32(&mut self, v: u32) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }
    fn u64(&mut self, v: u64) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }
    fn addr(&mut self, class64: bool, v: u64) {
        if class64 {
            self.u64(v)
        } else {
            self.u32(v as u32)
        }
    }
}

/// A sparse user memory, page by page, for checking what a plan loads.
pub struct Memory {
    pages: BTreeMap<u64, Vec<u8>>,
}

impl Memory {
    pub fn new() -> Memory {
        Memory {
            pages: BTreeMap::new(),
        }
    }

    /// Maps zeroed pages over `[start, end)`.
    pub fn map(&mut self, start: u64, end: u64) {
        let mut a = page_down(start);
        while a < end {
            self.pages
                .entry(a)
                .or_insert_with(|| vec![0; PAGE_SIZE as usize]);
            a += PAGE_SIZE;
        }
    }

    pub fn write(&mut self, addr: u64, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let a = addr + i as u64;
            let page = self
                .pages
                .get_mut(&page_down(a))
                .expect("write to unmapped page");
            page[(a - page_down(a)) as usize] = b;
        }
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| {
                let a = addr + i;
                self.pages
                    .get(&page_down(a))
                    .expect("read of unmapped page")[(a - page_down(a)) as usize]
            })
            .collect()
    }
}

/// Loads `file` as `plan` says: map every mapping, copy every segment.
pub fn load(plan: &LoadPlan, file: &[u8]) -> Memory {
    let mut m = Memory::new();
    for map in plan.mappings() {
        m.map(map.start, map.end);
    }
    for s in &plan.segments {
        m.write(s.vaddr, &file[s.file_range()]);
    }
    m
}
