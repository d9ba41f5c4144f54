//! The two Linux ABIs a SiON node runs (i386 and x86_64), the page size, and the
//! default layout of an application's user address space.

pub use sion_abi::page::{PAGE_SIZE, page_down, page_up};

/// Whether `addr` is a multiple of [`PAGE_SIZE`].
pub const fn is_page_aligned(addr: u64) -> bool {
    addr & (PAGE_SIZE - 1) == 0
}

/// A Linux system-call ABI on x86.
///
/// Source: `syscall(2)` "Architecture calling conventions"; Linux
/// `arch/x86/entry/syscalls/syscall_32.tbl` and `syscall_64.tbl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Abi {
    /// 32-bit i386 ABI (`ELFCLASS32`, `EM_386`), system calls by `int 0x80`:
    /// number in `eax`, arguments in `ebx, ecx, edx, esi, edi, ebp`, result in
    /// `eax`. Runs in compatibility mode on a 64-bit kernel.
    I386,
    /// 64-bit x86_64 ABI (`ELFCLASS64`, `EM_X86_64`), system calls by `syscall`:
    /// number in `rax`, arguments in `rdi, rsi, rdx, r10, r8, r9`, result in `rax`.
    X86_64,
}

impl Abi {
    /// Size of a pointer, `long` and stack word in bytes: 4 for i386, 8 for x86_64.
    pub const fn word_size(self) -> usize {
        match self {
            Abi::I386 => 4,
            Abi::X86_64 => 8,
        }
    }

    /// Largest value a pointer of this ABI can hold.
    pub const fn max_pointer(self) -> u64 {
        match self {
            Abi::I386 => u32::MAX as u64,
            Abi::X86_64 => u64::MAX,
        }
    }

    /// The ELF `e_machine` of executables for this ABI (`EM_386` = 3,
    /// `EM_X86_64` = 62, from the `elf` crate's `abi` module).
    pub const fn elf_machine(self) -> u16 {
        match self {
            Abi::I386 => elf::abi::EM_386,
            Abi::X86_64 => elf::abi::EM_X86_64,
        }
    }

    /// Short name: `"i386"` or `"x86_64"`.
    pub const fn name(self) -> &'static str {
        match self {
            Abi::I386 => "i386",
            Abi::X86_64 => "x86_64",
        }
    }
}

impl core::fmt::Display for Abi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where things go in an application's user address space. All addresses are
/// byte addresses, page-aligned; ranges are half-open `[start, end)`.
///
/// The defaults ([`UserLayout::for_abi`]) follow Linux on x86_64 with address
/// randomisation off, so a program sees the addresses it would see under `gdb`:
///
/// | ABI    | user range                    | stack top        | mmap top (top-down) | static-PIE base  |
/// |--------|-------------------------------|------------------|---------------------|------------------|
/// | x86_64 | `0x1_0000..0x7fff_ffff_f000`  | `0x7fff_ffff_f000` | `0x7fff_f7ff_f000`  | `0x5555_5555_4000` |
/// | i386   | `0x1_0000..0xffff_e000`       | `0xffff_e000`    | `0xf7ff_e000`       | `0x5655_5000`    |
///
/// `0x1_0000` is Linux's default `vm.mmap_min_addr`; `0x7fff_ffff_f000` is
/// `TASK_SIZE_MAX` of 4-level paging and `0xffff_e000` the compat-mode
/// `IA32_PAGE_OFFSET` (arch/x86/include/asm/page_64_types.h, processor.h). The
/// x86_64 static-PIE base is Linux's `ELF_ET_DYN_BASE` (two thirds of the user
/// range); the i386 one is the address Linux gives 32-bit PIEs with ASLR off. The
/// mmap area starts 128 MiB below the stack top (Linux's minimum stack gap,
/// `MIN_GAP` in arch/x86/mm/mmap.c). The kernel may pass its own layout instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserLayout {
    /// Lowest address a mapping may use.
    pub min_addr: u64,
    /// One past the highest user address.
    pub max_addr: u64,
    /// One past the highest stack byte; the initial stack is built below it.
    pub stack_top: u64,
    /// Bytes reserved for the stack below `stack_top` (Linux `RLIMIT_STACK`
    /// default, 8 MiB); ELF segments may not reach into it.
    pub stack_size: u64,
    /// Top of the area where non-fixed `mmap` places mappings, top-down.
    pub mmap_top: u64,
    /// Preferred load address of a static-PIE (`ET_DYN`) executable; the actual
    /// bias is this rounded up to the executable's largest segment alignment.
    pub pie_base: u64,
}

impl UserLayout {
    /// The default layout for `abi` (see the table on [`UserLayout`]).
    pub const fn for_abi(abi: Abi) -> UserLayout {
        const MIB: u64 = 1 << 20;
        match abi {
            Abi::X86_64 => UserLayout {
                min_addr: 0x1_0000,
                max_addr: 0x7fff_ffff_f000,
                stack_top: 0x7fff_ffff_f000,
                stack_size: 8 * MIB,
                mmap_top: 0x7fff_ffff_f000 - 128 * MIB,
                pie_base: 0x5555_5555_4000,
            },
            Abi::I386 => UserLayout {
                min_addr: 0x1_0000,
                max_addr: 0xffff_e000,
                stack_top: 0xffff_e000,
                stack_size: 8 * MIB,
                mmap_top: 0xffff_e000 - 128 * MIB,
                pie_base: 0x5655_5000,
            },
        }
    }

    /// Lowest address of the stack reservation: `stack_top - stack_size`.
    pub const fn stack_bottom(&self) -> u64 {
        self.stack_top.saturating_sub(self.stack_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_alignment() {
        assert!(is_page_aligned(0x3000));
        assert!(!is_page_aligned(0x3001));
    }

    #[test]
    fn default_layouts_are_consistent() {
        for abi in [Abi::I386, Abi::X86_64] {
            let l = UserLayout::for_abi(abi);
            for a in [l.min_addr, l.max_addr, l.stack_top, l.mmap_top, l.pie_base] {
                assert!(is_page_aligned(a), "{abi}: {a:#x}");
            }
            assert!(l.min_addr < l.pie_base && l.pie_base < l.mmap_top);
            assert!(l.mmap_top < l.stack_bottom() && l.stack_top <= l.max_addr);
            assert!(l.max_addr - 1 <= abi.max_pointer());
        }
        assert_eq!(Abi::I386.word_size(), 4);
        assert_eq!(Abi::X86_64.word_size(), 8);
        assert_eq!(Abi::X86_64.elf_machine(), 62);
        assert_eq!(Abi::I386.elf_machine(), 3);
    }
}
