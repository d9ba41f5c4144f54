//! ELF checks and the loading plan: which executables a node accepts, and the
//! segments, load bias, entry point, program break and `AT_PHDR` of an accepted one.
//!
//! Accepted: ELF64 x86_64 and ELF32 i386 executables, static (`ET_EXEC`),
//! static-PIE (`ET_DYN` without `PT_INTERP`), or dynamically linked (naming a
//! program interpreter in `PT_INTERP`, which the caller loads beside the
//! program: [`ElfKind::Dynamic`]). Everything else is refused with an
//! [`ElfError`] whose `Display` says what is wrong and what to do.
//!
//! Sources: System V gABI "Program Loading" (program header, `PT_LOAD`
//! semantics, `p_filesz`/`p_memsz`); Linux `fs/binfmt_elf.c` (`load_elf_binary`:
//! `PT_INTERP`, load bias of `ET_DYN`, `elf_brk` rounding, `AT_PHDR`); `elf(5)`.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use elf::abi;
use elf::endian::{AnyEndian, EndianParse};
use elf::file::{Class, FileHeader};
use elf::parse::ParseAt;
use elf::segment::{ProgramHeader, SegmentTable};

use crate::abi::{Abi, PAGE_SIZE, UserLayout, page_down, page_up};
use crate::vm::Prot;

/// Largest program-header table accepted, in bytes (Linux `load_elf_phdrs`
/// refuses tables over 64 KiB).
pub const MAX_PHDR_TABLE: u64 = 65536;

/// Why an ELF file cannot run on a node. `Display` gives a one-line message
/// saying what is wrong and what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The file does not start with the ELF magic `\x7fELF` (a script, a
    /// Windows or Mach-O binary, random bytes, an empty file).
    NotElf,
    /// The file ends before `what` (a header, the program-header table, a
    /// segment's file bytes).
    Truncated {
        /// The structure that runs past the end of the file.
        what: &'static str,
    },
    /// A header field makes no sense; `what` names it.
    Malformed {
        /// The inconsistency found.
        what: &'static str,
    },
    /// Built for another architecture (`machine` is `e_machine`, `bits` 32 or
    /// 64 from `EI_CLASS`).
    WrongArchitecture {
        /// ELF `e_machine`.
        machine: u16,
        /// 32 or 64.
        bits: u8,
    },
    /// An ELF32 file for `EM_X86_64`: the x32 ABI, which SiON does not run.
    X32,
    /// Not an executable: `e_type` is `ET_REL` (object file), `ET_CORE` or
    /// unknown.
    NotExecutable {
        /// ELF `e_type`.
        e_type: u16,
    },
    /// Dynamically linked: has a `PT_INTERP` program interpreter, or a
    /// `DT_NEEDED` shared-library dependency.
    DynamicallyLinked {
        /// `true` for `PT_INTERP`, `false` for `DT_NEEDED`.
        interpreter: bool,
    },
    /// No `PT_LOAD` segment with a non-zero size: nothing to load.
    NoLoadSegments,
    /// Two `PT_LOAD` segments overlap (virtual addresses as linked).
    Overlap {
        /// Start of the first segment.
        first: u64,
        /// Start of the segment that overlaps it.
        second: u64,
    },
    /// A segment (after the load bias) lies outside the user address range
    /// `[min, max)`, which ends where the stack reservation begins.
    OutOfRange {
        /// Start of the segment (biased).
        start: u64,
        /// End of the segment (biased; saturated on overflow).
        end: u64,
        /// Lowest allowed address.
        min: u64,
        /// One past the highest allowed address.
        max: u64,
    },
    /// The image needs more memory than allowed.
    TooLarge {
        /// Bytes the segments need (page-rounded; saturated on overflow).
        size: u64,
        /// The limit, [`LoadConfig::max_image_size`].
        limit: u64,
    },
    /// The entry point is not inside any executable (`PF_X`) segment.
    BadEntry {
        /// The entry address (biased).
        entry: u64,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ElfError::NotElf => f.write_str(
                "not an ELF executable (no \\x7fELF magic): submit a Linux program compiled for x86_64 or i386",
            ),
            ElfError::Truncated { what } => write!(
                f,
                "truncated ELF file: the {what} runs past the end of the file; copy or rebuild the program"
            ),
            ElfError::Malformed { what } => {
                write!(f, "malformed ELF file: {what}; rebuild the program")
            }
            ElfError::WrongArchitecture { machine, bits } => {
                let name = elf::to_str::e_machine_to_human_str(machine).unwrap_or("unknown machine");
                write!(
                    f,
                    "built for another architecture: {name} (e_machine {machine}, {bits}-bit); SiON runs x86_64 and i386 (32-bit x86) programs: rebuild for one of them"
                )
            }
            ElfError::X32 => f.write_str(
                "built for the x32 ABI (32-bit ELF for x86_64), which SiON does not run: rebuild with -m64 or -m32",
            ),
            ElfError::NotExecutable { e_type } => {
                let what = match e_type {
                    abi::ET_REL => "a relocatable object file (ET_REL)",
                    abi::ET_CORE => "a core dump (ET_CORE)",
                    _ => "not an executable (unknown e_type)",
                };
                write!(f, "{what}, not an executable: link it with -static into a program")
            }
            ElfError::DynamicallyLinked { interpreter } => {
                let why = if interpreter {
                    "it names a program interpreter (PT_INTERP)"
                } else {
                    "it needs shared libraries (DT_NEEDED)"
                };
                write!(f, "dynamically linked: {why}; rebuild with -static")
            }
            ElfError::NoLoadSegments => f.write_str(
                "no loadable segment (PT_LOAD): nothing to run; rebuild it as a static executable (-static)",
            ),
            ElfError::Overlap { first, second } => write!(
                f,
                "malformed ELF file: loadable segments at {first:#x} and {second:#x} overlap; relink the program"
            ),
            ElfError::OutOfRange { start, end, min, max } => write!(
                f,
                "segment {start:#x}..{end:#x} lies outside the user address range {min:#x}..{max:#x}; relink at the default address or as static-PIE (-static-pie)"
            ),
            ElfError::TooLarge { size, limit } => write!(
                f,
                "program image needs {size} bytes of memory, more than the limit of {limit} bytes; shrink its static data or raise the job's memory limit"
            ),
            ElfError::BadEntry { entry } => write!(
                f,
                "malformed ELF file: entry point {entry:#x} is not inside an executable segment; relink the program"
            ),
        }
    }
}

/// How the executable is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfKind {
    /// `ET_EXEC`: loaded at its linked addresses, load bias 0.
    Static,
    /// `ET_DYN` without `PT_INTERP` or `DT_NEEDED` (`gcc -static-pie`): loaded at
    /// a chosen bias; its own start code applies its relocations.
    StaticPie,
    /// Names a program interpreter (`PT_INTERP`, [`LoadPlan::interp`]):
    /// `ET_EXEC` at its linked addresses, or `ET_DYN` (a PIE) at a chosen
    /// bias as a static-PIE; the interpreter is loaded beside it and runs
    /// first, finding the program through `AT_PHDR`, `AT_ENTRY` and
    /// `AT_BASE` (`ld.so(8)`).
    Dynamic,
}

/// One `PT_LOAD` segment to load. Addresses are biased (final), in bytes.
///
/// Loading: the pages `[start, end)` are mapped (see [`LoadPlan::mappings`] for
/// the page ranges with their final permissions: two segments may share a
/// boundary page), `file_len` bytes from `file_offset` in the file are copied to
/// `vaddr`, and the `zero_len` bytes after them (`.bss`) are zero; fresh pages are
/// zero everywhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First page of the segment (`vaddr` rounded down to a page).
    pub start: u64,
    /// One past the last page (`vaddr + mem_len` rounded up to a page).
    pub end: u64,
    /// `p_vaddr + bias`: where the first file byte goes.
    pub vaddr: u64,
    /// `p_offset`: where the bytes to copy start in the file.
    pub file_offset: u64,
    /// `p_filesz`: how many bytes to copy from the file.
    pub file_len: u64,
    /// `p_memsz`: size of the segment in memory.
    pub mem_len: u64,
    /// `p_memsz - p_filesz`: bytes to zero at `vaddr + file_len`.
    pub zero_len: u64,
    /// Permissions from `p_flags` (`PF_R`, `PF_W`, `PF_X`).
    pub prot: Prot,
}

impl Segment {
    /// The byte range of the file to copy to `vaddr` (`file_offset ..
    /// file_offset + file_len`); always within the file the plan was made from.
    pub fn file_range(&self) -> Range<usize> {
        // Checked against the file length in `load_plan`, so these fit in usize.
        self.file_offset as usize..(self.file_offset + self.file_len) as usize
    }
}

/// A page-aligned range to map with its permissions (half-open, bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First byte (page-aligned).
    pub start: u64,
    /// One past the last byte (page-aligned).
    pub end: u64,
    /// Permissions of the pages.
    pub prot: Prot,
}

/// The `PT_TLS` segment: the thread-local storage initialisation image. A
/// static program's libc sets up its thread pointer itself (`arch_prctl` /
/// `set_thread_area`), reading this through `AT_PHDR`; it is given here for
/// inspection and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tls {
    /// Address of the initialisation image (biased).
    pub vaddr: u64,
    /// Bytes of initialised TLS data (`p_filesz`).
    pub file_len: u64,
    /// Total TLS block size (`p_memsz`).
    pub mem_len: u64,
    /// Alignment of the TLS block (`p_align`).
    pub align: u64,
}

/// The `PT_GNU_STACK` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GnuStack {
    /// The program asks for an executable stack (`PF_X`).
    pub executable: bool,
    /// Requested stack size in bytes (`p_memsz`, 0 when unset).
    pub size: u64,
}

/// Where the program headers are in memory, for `AT_PHDR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhdrLocation {
    /// Inside a loaded segment at this address (from `PT_PHDR`, or the
    /// `PT_LOAD` segment whose file bytes contain `e_phoff`).
    Loaded(u64),
    /// Not inside any loaded segment; the caller must place a copy of
    /// `file[offset .. offset + len]` somewhere (for example with
    /// [`crate::stack::StackSpec::phdr_copy`]) and point `AT_PHDR` at it, since a
    /// static libc finds its `PT_TLS` through `AT_PHDR`.
    NotLoaded {
        /// `e_phoff`.
        offset: u64,
        /// `e_phnum * e_phentsize`.
        len: u64,
    },
}

/// Everything needed to build the application's address space from the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// ABI of the program: [`Abi::X86_64`] for ELF64 `EM_X86_64`, [`Abi::I386`]
    /// for ELF32 `EM_386`.
    pub abi: Abi,
    /// Static or static-PIE.
    pub kind: ElfKind,
    /// Added to every linked address. 0 for [`ElfKind::Static`]; for
    /// [`ElfKind::StaticPie`], `UserLayout::pie_base` rounded up to the largest
    /// `PT_LOAD` `p_align` (at least a page) minus the lowest segment address
    /// rounded down likewise, so the image begins at that rounded base and every
    /// segment keeps its alignment (as Linux's `load_elf_binary` with
    /// `ELF_ET_DYN_BASE`, without randomisation). If the image is linked above
    /// the base, the bias is 0.
    pub bias: u64,
    /// Entry point (`e_entry + bias`): the initial instruction pointer.
    pub entry: u64,
    /// `PT_LOAD` segments with non-zero `p_memsz`, sorted by address,
    /// non-overlapping.
    pub segments: Vec<Segment>,
    /// Initial program break: the end of the highest segment, rounded up to a
    /// page (Linux `mm->start_brk` without randomisation).
    pub brk_start: u64,
    /// Program headers for `AT_PHDR`.
    pub phdr: PhdrLocation,
    /// Size of one program header (`e_phentsize`, 32 or 56) for `AT_PHENT`.
    pub phent: u16,
    /// Number of program headers (`e_phnum`) for `AT_PHNUM`.
    pub phnum: u16,
    /// The `PT_TLS` segment, if any.
    pub tls: Option<Tls>,
    /// The `PT_GNU_STACK` segment, if any (absent means the historical default:
    /// executable stack; SiON maps the stack non-executable unless asked).
    pub gnu_stack: Option<GnuStack>,
    /// The program interpreter's path (`PT_INTERP`, without its NUL) of a
    /// [`ElfKind::Dynamic`] program.
    pub interp: Option<Vec<u8>>,
}

impl LoadPlan {
    /// The pages to map, sorted, disjoint and merged where adjacent with equal
    /// permissions. A page shared by two segments gets the union of their
    /// permissions (as it would under Linux, whose later mapping of a shared file
    /// page makes both segments' bytes visible with the later permissions).
    pub fn mappings(&self) -> Vec<Mapping> {
        let mut points: Vec<u64> = Vec::with_capacity(self.segments.len() * 2);
        for s in &self.segments {
            points.push(s.start);
            points.push(s.end);
        }
        points.sort_unstable();
        points.dedup();
        let mut out: Vec<Mapping> = Vec::new();
        for w in points.windows(2) {
            let (a, b) = (w[0], w[1]);
            let prot = self
                .segments
                .iter()
                .filter(|s| s.start <= a && b <= s.end)
                .fold(None, |acc: Option<Prot>, s| {
                    Some(acc.map_or(s.prot, |p| p.union(s.prot)))
                });
            let Some(prot) = prot else { continue };
            match out.last_mut() {
                Some(last) if last.end == a && last.prot == prot => last.end = b,
                _ => out.push(Mapping {
                    start: a,
                    end: b,
                    prot,
                }),
            }
        }
        out
    }

    /// Total bytes of the mapped pages.
    pub fn image_size(&self) -> u64 {
        self.mappings().iter().map(|m| m.end - m.start).sum()
    }
}

/// An executable file [`load_plan_from`] reads: its length and byte ranges.
///
/// Implemented by `[u8]` (the whole file in memory) and [`SparseFile`] (the
/// parts of a file a loader has fetched, for a file too large to hold).
pub trait ElfSource {
    /// The file's length in bytes.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `len` bytes at `offset`, or `None` if they run past the end of the
    /// file (or, for a sparse source, are not at hand).
    fn bytes(&self, offset: u64, len: u64) -> Option<&[u8]>;
}

impl ElfSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn bytes(&self, offset: u64, len: u64) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.get(start..end)
    }
}

/// Some byte ranges of a file of known length: what a loader that cannot hold
/// the whole executable (a node's App-Program Manager, which keeps it in the
/// application's memory) has fetched. A read of a range it does not hold fails
/// and is remembered ([`SparseFile::take_missing`]), so the loader can fetch it
/// and try again; [`load_plan_sparse`] does that loop.
#[derive(Clone, Debug, Default)]
pub struct SparseFile {
    len: u64,
    pieces: Vec<(u64, Vec<u8>)>,
    missing: core::cell::Cell<Option<(u64, u64)>>,
}

impl SparseFile {
    /// A file of `len` bytes of which nothing is at hand yet.
    pub fn new(len: u64) -> SparseFile {
        SparseFile {
            len,
            pieces: Vec::new(),
            missing: core::cell::Cell::new(None),
        }
    }

    /// Adds the bytes found at `offset` (clipped to the file's length).
    pub fn add(&mut self, offset: u64, mut bytes: Vec<u8>) {
        let room = self.len.saturating_sub(offset);
        bytes.truncate(usize::try_from(room).unwrap_or(usize::MAX));
        self.pieces.push((offset, bytes));
    }

    /// The last range (offset, length) asked for that was inside the file but
    /// not at hand, and forgets it.
    pub fn take_missing(&self) -> Option<(u64, u64)> {
        self.missing.take()
    }
}

impl ElfSource for SparseFile {
    fn len(&self) -> u64 {
        self.len
    }
    fn bytes(&self, offset: u64, len: u64) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        for (at, piece) in &self.pieces {
            if *at <= offset && end <= at + piece.len() as u64 {
                let s = (offset - at) as usize;
                return Some(&piece[s..s + len as usize]);
            }
        }
        self.missing.set(Some((offset, len)));
        None
    }
}

/// Largest single range [`load_plan_sparse`] fetches, in bytes.
pub const MAX_SPARSE_FETCH: u64 = 64 * 1024;

/// [`load_plan_from`] on a [`SparseFile`], fetching what it lacks: while the
/// plan fails for want of a range inside the file (at most
/// [`MAX_SPARSE_FETCH`] bytes, at most 8 times), `fetch(offset, len)` is asked
/// for those bytes and the plan is tried again. `fetch` returning `None` ends
/// the attempt with the original error.
pub fn load_plan_sparse(
    file: &mut SparseFile,
    config: &LoadConfig,
    mut fetch: impl FnMut(u64, u64) -> Option<Vec<u8>>,
) -> Result<LoadPlan, ElfError> {
    let mut tries = 0;
    loop {
        file.missing.set(None);
        let result = load_plan_from(&*file, config);
        let missing = file.take_missing();
        match (result, missing) {
            (Err(ElfError::Truncated { what }), Some((offset, len)))
                if tries < 8 && len <= MAX_SPARSE_FETCH =>
            {
                tries += 1;
                let bytes = fetch(offset, len).ok_or(ElfError::Truncated { what })?;
                file.add(offset, bytes);
            }
            (result, _) => return result,
        }
    }
}

/// Limits and layouts used by [`load_plan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadConfig {
    /// Layout for x86_64 programs.
    pub x86_64: UserLayout,
    /// Layout for i386 programs.
    pub i386: UserLayout,
    /// Most bytes the mapped segments may take (page-rounded sum), refused with
    /// [`ElfError::TooLarge`] above it. Default 1 GiB.
    pub max_image_size: u64,
    /// Programs naming an interpreter (`PT_INTERP`) are planned
    /// ([`ElfKind::Dynamic`]) rather than refused as dynamically linked.
    /// Default `true`.
    pub allow_interpreter: bool,
}

impl LoadConfig {
    /// The layout for `abi`.
    pub fn layout(&self, abi: Abi) -> &UserLayout {
        match abi {
            Abi::X86_64 => &self.x86_64,
            Abi::I386 => &self.i386,
        }
    }
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            x86_64: UserLayout::for_abi(Abi::X86_64),
            i386: UserLayout::for_abi(Abi::I386),
            max_image_size: 1 << 30,
            allow_interpreter: true,
        }
    }
}

/// The parsed file header and program-header table of an x86 executable.
struct Parsed<'a> {
    abi: Abi,
    ehdr: FileHeader<AnyEndian>,
    phdrs: SegmentTable<'a, AnyEndian>,
}

/// Reads the ELF identification and header, checks class, machine and type, and
/// locates the program-header table.
fn parse<S: ElfSource + ?Sized>(file: &S) -> Result<Parsed<'_>, ElfError> {
    if file.len() < 4 {
        return Err(ElfError::NotElf);
    }
    match file.bytes(0, 4) {
        Some(magic) if magic == abi::ELFMAGIC => {}
        Some(_) => return Err(ElfError::NotElf),
        None => {
            return Err(ElfError::Truncated {
                what: "ELF identification",
            });
        }
    }
    let ident_bytes = file
        .bytes(0, abi::EI_NIDENT as u64)
        .ok_or(ElfError::Truncated {
            what: "ELF identification",
        })?;
    let ident = elf::file::parse_ident::<AnyEndian>(ident_bytes).map_err(|e| match e {
        elf::ParseError::UnsupportedElfClass(_) => ElfError::Malformed {
            what: "unknown ELF class (EI_CLASS)",
        },
        elf::ParseError::UnsupportedElfEndianness(_) => ElfError::Malformed {
            what: "unknown byte order (EI_DATA)",
        },
        elf::ParseError::UnsupportedVersion(_) => ElfError::Malformed {
            what: "unknown ELF version (EI_VERSION)",
        },
        _ => ElfError::Malformed {
            what: "bad ELF identification",
        },
    })?;
    let tail_len = match ident.1 {
        Class::ELF32 => elf::file::ELF32_EHDR_TAILSIZE,
        Class::ELF64 => elf::file::ELF64_EHDR_TAILSIZE,
    };
    let tail = file
        .bytes(abi::EI_NIDENT as u64, tail_len as u64)
        .ok_or(ElfError::Truncated { what: "ELF header" })?;
    let ehdr = FileHeader::parse_tail(ident, tail)
        .map_err(|_| ElfError::Truncated { what: "ELF header" })?;

    let bits = match ehdr.class {
        Class::ELF32 => 32,
        Class::ELF64 => 64,
    };
    let abi = match (ehdr.class, ehdr.e_machine) {
        (Class::ELF64, abi::EM_X86_64) => Abi::X86_64,
        (Class::ELF32, abi::EM_386) => Abi::I386,
        (Class::ELF32, abi::EM_X86_64) => return Err(ElfError::X32),
        (_, machine) => return Err(ElfError::WrongArchitecture { machine, bits }),
    };
    if !ehdr.endianness.is_little() {
        return Err(ElfError::Malformed {
            what: "big-endian byte order for an x86 program",
        });
    }
    match ehdr.e_type {
        abi::ET_EXEC | abi::ET_DYN => {}
        e_type => return Err(ElfError::NotExecutable { e_type }),
    }

    if ehdr.e_phoff == 0 || ehdr.e_phnum == 0 {
        return Err(ElfError::NoLoadSegments);
    }
    let entsize = <ProgramHeader as ParseAt>::size_for(ehdr.class) as u64;
    if u64::from(ehdr.e_phentsize) != entsize {
        return Err(ElfError::Malformed {
            what: "program header size (e_phentsize) does not match the ELF class",
        });
    }
    let table_len = entsize * u64::from(ehdr.e_phnum);
    if ehdr.e_phnum == abi::PN_XNUM || table_len > MAX_PHDR_TABLE {
        return Err(ElfError::Malformed {
            what: "too many program headers (e_phnum)",
        });
    }
    let table = file
        .bytes(ehdr.e_phoff, table_len)
        .ok_or(ElfError::Truncated {
            what: "program header table",
        })?;
    let phdrs = SegmentTable::new(ehdr.endianness, ehdr.class, table);
    Ok(Parsed { abi, ehdr, phdrs })
}

/// Identifies the ABI of an executable without building a plan. Fails as
/// [`load_plan`] does for files that are not x86 ELF executables.
pub fn identify(file: &[u8]) -> Result<Abi, ElfError> {
    parse(file).map(|p| p.abi)
}

/// The file bytes of a segment, or `Truncated` if they run past the end.
fn segment_bytes<'a, S: ElfSource + ?Sized>(
    file: &'a S,
    ph: &ProgramHeader,
    what: &'static str,
) -> Result<&'a [u8], ElfError> {
    file.bytes(ph.p_offset, ph.p_filesz)
        .ok_or(ElfError::Truncated { what })
}

/// Checks that a segment's file bytes lie inside the file (without reading them).
fn segment_in_file<S: ElfSource + ?Sized>(
    file: &S,
    ph: &ProgramHeader,
    what: &'static str,
) -> Result<(), ElfError> {
    match ph.p_offset.checked_add(ph.p_filesz) {
        Some(end) if end <= file.len() && usize::try_from(end).is_ok() => Ok(()),
        _ => Err(ElfError::Truncated { what }),
    }
}

fn prot_of(flags: u32) -> Prot {
    Prot {
        read: flags & abi::PF_R != 0,
        write: flags & abi::PF_W != 0,
        exec: flags & abi::PF_X != 0,
    }
}

/// Largest power of two in `align` terms, at least a page.
fn effective_align(align: u64) -> u64 {
    if align.is_power_of_two() {
        align.max(PAGE_SIZE)
    } else {
        PAGE_SIZE
    }
}

/// Checks `file` and computes its loading plan.
///
/// `file` is the whole executable. Errors: see [`ElfError`]; the checks are, in
/// order: magic, header length, class/machine (ELF64 `EM_X86_64` or ELF32
/// `EM_386`), byte order, `e_type` (`ET_EXEC` or `ET_DYN`), program-header table
/// bounds and entry size, then per program header: `PT_INTERP` and `DT_NEEDED`
/// in `PT_DYNAMIC` (dynamically linked), `p_filesz <= p_memsz`, segment file
/// bytes inside the file, at least one non-empty `PT_LOAD`, no overlap, every
/// segment inside `[layout.min_addr, layout.stack_bottom())` after the bias, the
/// image size against `config.max_image_size`, and the entry inside a `PF_X`
/// segment.
pub fn load_plan(file: &[u8], config: &LoadConfig) -> Result<LoadPlan, ElfError> {
    load_plan_from(file, config)
}

/// [`load_plan`] for a file that is not one contiguous slice in memory (see
/// [`ElfSource`]); reads only the headers, the program-header table and the
/// `PT_DYNAMIC` segment. A range the source cannot give is reported as
/// [`ElfError::Truncated`].
pub fn load_plan_from<S: ElfSource + ?Sized>(
    file: &S,
    config: &LoadConfig,
) -> Result<LoadPlan, ElfError> {
    let Parsed { abi, ehdr, phdrs } = parse(file)?;
    let layout = config.layout(abi);

    let mut loads: Vec<ProgramHeader> = Vec::new();
    let mut tls = None;
    let mut gnu_stack = None;
    let mut pt_phdr = None;
    let mut interp = None;
    let mut needs_libraries = false;
    for ph in phdrs.iter() {
        match ph.p_type {
            abi::PT_INTERP => {
                if !config.allow_interpreter {
                    return Err(ElfError::DynamicallyLinked { interpreter: true });
                }
                let bytes = segment_bytes(file, &ph, "program interpreter (PT_INTERP)")?;
                let path = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
                if path.is_empty() {
                    return Err(ElfError::Malformed {
                        what: "an empty program interpreter path (PT_INTERP)",
                    });
                }
                interp = Some(path.to_vec());
            }
            abi::PT_DYNAMIC => {
                let bytes = segment_bytes(file, &ph, "dynamic section (PT_DYNAMIC)")?;
                let table = elf::dynamic::DynamicTable::new(ehdr.endianness, ehdr.class, bytes);
                for d in table.iter() {
                    match d.d_tag {
                        abi::DT_NULL => break,
                        abi::DT_NEEDED => needs_libraries = true,
                        _ => {}
                    }
                }
            }
            abi::PT_LOAD => {
                if ph.p_filesz > ph.p_memsz {
                    return Err(ElfError::Malformed {
                        what: "a PT_LOAD segment's file size exceeds its memory size",
                    });
                }
                segment_in_file(file, &ph, "file bytes of a PT_LOAD segment")?;
                if ph.p_memsz > 0 {
                    loads.push(ph);
                }
            }
            abi::PT_TLS => {
                if ph.p_filesz > ph.p_memsz {
                    return Err(ElfError::Malformed {
                        what: "the PT_TLS segment's file size exceeds its memory size",
                    });
                }
                tls = Some(ph);
            }
            abi::PT_GNU_STACK => {
                gnu_stack = Some(GnuStack {
                    executable: ph.p_flags & abi::PF_X != 0,
                    size: ph.p_memsz,
                })
            }
            abi::PT_PHDR => pt_phdr = Some(ph),
            _ => {}
        }
    }
    if needs_libraries && interp.is_none() {
        // Libraries to load but no interpreter to load them.
        return Err(ElfError::DynamicallyLinked { interpreter: false });
    }
    if loads.is_empty() {
        return Err(ElfError::NoLoadSegments);
    }
    loads.sort_by_key(|ph| ph.p_vaddr);

    // Linked addresses: no wrap-around, no overlap, size within the limit.
    let limit = config.max_image_size;
    for ph in &loads {
        if ph.p_memsz > limit {
            return Err(ElfError::TooLarge {
                size: ph.p_memsz,
                limit,
            });
        }
        if ph
            .p_vaddr
            .checked_add(ph.p_memsz)
            .and_then(page_up)
            .is_none()
        {
            return Err(ElfError::OutOfRange {
                start: ph.p_vaddr,
                end: u64::MAX,
                min: layout.min_addr,
                max: layout.stack_bottom(),
            });
        }
    }
    for w in loads.windows(2) {
        if w[1].p_vaddr < w[0].p_vaddr + w[0].p_memsz {
            return Err(ElfError::Overlap {
                first: w[0].p_vaddr,
                second: w[1].p_vaddr,
            });
        }
    }

    let (kind, bias) = match ehdr.e_type {
        abi::ET_EXEC if interp.is_some() => (ElfKind::Dynamic, 0),
        abi::ET_EXEC => (ElfKind::Static, 0),
        _ => {
            let align = loads
                .iter()
                .map(|ph| effective_align(ph.p_align))
                .max()
                .unwrap_or(PAGE_SIZE);
            let lowest = loads[0].p_vaddr & !(align - 1);
            // pie_base is below the user top, so rounding it up cannot overflow
            // for any sane layout; saturate to stay total.
            let base = layout
                .pie_base
                .checked_add(align - 1)
                .map_or(u64::MAX, |b| b & !(align - 1));
            let kind = if interp.is_some() {
                ElfKind::Dynamic
            } else {
                ElfKind::StaticPie
            };
            (kind, base.saturating_sub(lowest))
        }
    };

    // One past the highest usable byte: below the stack reservation, the user
    // top, and (i386) 4 GiB.
    let max = layout
        .stack_bottom()
        .min(layout.max_addr)
        .min(abi.max_pointer().saturating_add(1));
    let mut segments = Vec::with_capacity(loads.len());
    for ph in &loads {
        let vaddr = ph.p_vaddr.checked_add(bias);
        let end = vaddr
            .and_then(|v| v.checked_add(ph.p_memsz))
            .and_then(page_up);
        let (Some(vaddr), Some(end)) = (vaddr, end) else {
            return Err(ElfError::OutOfRange {
                start: ph.p_vaddr.saturating_add(bias),
                end: u64::MAX,
                min: layout.min_addr,
                max,
            });
        };
        let start = page_down(vaddr);
        if start < layout.min_addr || end > max {
            return Err(ElfError::OutOfRange {
                start: vaddr,
                end: vaddr + ph.p_memsz,
                min: layout.min_addr,
                max,
            });
        }
        segments.push(Segment {
            start,
            end,
            vaddr,
            file_offset: ph.p_offset,
            file_len: ph.p_filesz,
            mem_len: ph.p_memsz,
            zero_len: ph.p_memsz - ph.p_filesz,
            prot: prot_of(ph.p_flags),
        });
    }

    let entry = ehdr.e_entry.wrapping_add(bias) & abi.max_pointer();
    if !segments
        .iter()
        .any(|s| s.prot.exec && s.vaddr <= entry && entry < s.vaddr + s.mem_len)
    {
        return Err(ElfError::BadEntry { entry });
    }

    // AT_PHDR: PT_PHDR if it lies in a segment's file bytes (so the table is
    // really there), else the PT_LOAD whose file bytes hold e_phoff (as Linux's
    // load_elf_binary computes phdr_addr), else not loaded.
    let phdr_len = u64::from(ehdr.e_phentsize) * u64::from(ehdr.e_phnum);
    let in_file_bytes = |vaddr: u64| {
        loads.iter().any(|ph| {
            ph.p_vaddr <= vaddr
                && vaddr
                    .checked_add(phdr_len)
                    .is_some_and(|e| e <= ph.p_vaddr + ph.p_filesz)
        })
    };
    let phdr = match pt_phdr {
        Some(ph) if in_file_bytes(ph.p_vaddr) => PhdrLocation::Loaded(ph.p_vaddr + bias),
        _ => loads
            .iter()
            .find(|ph| {
                ph.p_offset <= ehdr.e_phoff && ehdr.e_phoff + phdr_len <= ph.p_offset + ph.p_filesz
            })
            .map_or(
                PhdrLocation::NotLoaded {
                    offset: ehdr.e_phoff,
                    len: phdr_len,
                },
                |ph| PhdrLocation::Loaded(ph.p_vaddr + (ehdr.e_phoff - ph.p_offset) + bias),
            ),
    };

    let brk_start = segments.iter().map(|s| s.end).max().unwrap_or(0);
    let plan = LoadPlan {
        abi,
        kind,
        bias,
        entry,
        segments,
        brk_start,
        phdr,
        phent: ehdr.e_phentsize,
        phnum: ehdr.e_phnum,
        tls: tls.map(|ph| Tls {
            vaddr: ph.p_vaddr.wrapping_add(bias) & abi.max_pointer(),
            file_len: ph.p_filesz,
            mem_len: ph.p_memsz,
            align: ph.p_align,
        }),
        gnu_stack,
        interp,
    };
    let size = plan.image_size();
    if size > limit {
        return Err(ElfError::TooLarge { size, limit });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests;
