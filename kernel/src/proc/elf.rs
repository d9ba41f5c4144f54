//! Loads a SiON process image: an ELF64 x86_64 executable (`ET_EXEC`), parsed
//! with the `elf` crate. Each `PT_LOAD` segment is mapped at its virtual address
//! with the permissions of its flags, its file bytes copied in and the rest of
//! its memory left zeroed (ELF gABI, "Program Loading").
#![forbid(unsafe_code)]

use crate::mem::space::{Access, AddressSpace, USER_END, USER_START};
use elf::ElfBytes;
use elf::abi::{EM_X86_64, ET_EXEC, PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;
use elf::file::Class;
use sion_abi::Error;

/// Largest memory size of one segment, in bytes (256 MiB): a bound against a
/// corrupt header asking for all of memory.
const MAX_SEGMENT: u64 = 256 * 1024 * 1024;

/// Maps the image's segments into `space` and returns its entry point.
/// Errors: [`Error::BadImage`] for anything but a well-formed ELF64 x86_64
/// executable whose segments lie in user space; [`Error::NoMemory`].
pub fn load(space: &mut AddressSpace, image: &[u8]) -> Result<u64, Error> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(image).map_err(|_| Error::BadImage)?;
    let header = &file.ehdr;
    if header.class != Class::ELF64 || header.e_machine != EM_X86_64 || header.e_type != ET_EXEC {
        return Err(Error::BadImage);
    }
    let segments = file.segments().ok_or(Error::BadImage)?;
    let mut entry_ok = false;
    for ph in segments.iter().filter(|ph| ph.p_type == PT_LOAD) {
        let file_end = ph
            .p_offset
            .checked_add(ph.p_filesz)
            .ok_or(Error::BadImage)?;
        let mem_end = ph.p_vaddr.checked_add(ph.p_memsz).ok_or(Error::BadImage)?;
        if ph.p_filesz > ph.p_memsz
            || file_end > image.len() as u64
            || ph.p_memsz > MAX_SEGMENT
            || ph.p_vaddr < USER_START
            || mem_end > USER_END
        {
            return Err(Error::BadImage);
        }
        let access = Access {
            write: ph.p_flags & PF_W != 0,
            execute: ph.p_flags & PF_X != 0,
        };
        space.map(ph.p_vaddr, ph.p_memsz, access)?;
        space.load(ph.p_vaddr, &image[ph.p_offset as usize..file_end as usize])?;
        if access.execute && (ph.p_vaddr..mem_end).contains(&header.e_entry) {
            entry_ok = true;
        }
    }
    if !entry_ok {
        return Err(Error::BadImage);
    }
    Ok(header.e_entry)
}
