//! Memory calls, served on the node: `brk(2)`, `mmap(2)` (and i386
//! `mmap2`, old `mmap`), `munmap(2)`, `mprotect(2)`, `mremap(2)`,
//! `madvise(2)`. The address-space bookkeeping is [`crate::vm`]; what it
//! decides is applied through [`crate::process::Node`].

use alloc::vec;
use alloc::vec::Vec;

use linux_raw_sys::general as g;

use super::Args;
use crate::abi::{Abi, PAGE_SIZE};
use crate::errno::Errno;
use crate::fd::OpenFile;
use crate::job::{CHUNK, FileRequest};
use crate::process::{CallError, CallResult, FileKey, Process};
use crate::vm::{MmapFlags, Prot, RegionKind, VmEffect};

const MADV_DONTNEED: i32 = g::MADV_DONTNEED as i32;

/// `brk(addr)`: returns the new (or unchanged) program break.
pub(super) fn brk(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (v, effects) = p.task.vm.brk(a.word(0));
    p.apply(&effects)?;
    Ok(v)
}

/// `mmap(addr, length, prot, flags, fd, offset)`: on x86_64 with a byte
/// offset; on i386 this number is the old `mmap`, whose six arguments are
/// 32-bit words in memory at the first argument.
pub(super) fn mmap(p: &mut Process<'_>, a: &Args) -> CallResult {
    match a.abi() {
        Abi::X86_64 => p.mmap(
            a.word(0),
            a.word(1),
            a.word(2),
            a.word(3),
            a.int(4),
            a.word(5),
        ),
        Abi::I386 => {
            let raw = p.read_mem(a.word(0), 24)?;
            let w = |i: usize| {
                u64::from(u32::from_le_bytes(
                    raw[i * 4..i * 4 + 4].try_into().unwrap_or([0; 4]),
                ))
            };
            p.mmap(w(0), w(1), w(2), w(3), w(4) as u32 as i32, w(5))
        }
    }
}

/// i386 `mmap2(addr, length, prot, flags, fd, pgoffset)`: the offset in
/// 4096-byte units.
pub(super) fn mmap2(p: &mut Process<'_>, a: &Args) -> CallResult {
    let offset = a.word(5).saturating_mul(PAGE_SIZE);
    p.mmap(a.word(0), a.word(1), a.word(2), a.word(3), a.int(4), offset)
}

/// `munmap(addr, length)`.
pub(super) fn munmap(p: &mut Process<'_>, a: &Args) -> CallResult {
    let effects = p.task.vm.munmap(a.word(0), a.word(1))?;
    p.apply(&effects)?;
    Ok(0)
}

/// `mprotect(addr, len, prot)`.
pub(super) fn mprotect(p: &mut Process<'_>, a: &Args) -> CallResult {
    let prot = Prot::from_linux(a.word(2))?;
    let effects = p.task.vm.mprotect(a.word(0), a.word(1), prot)?;
    p.apply(&effects)?;
    Ok(0)
}

/// `mremap(old_address, old_size, new_size, flags, new_address)`.
pub(super) fn mremap(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (addr, effects) =
        p.task
            .vm
            .mremap(a.word(0), a.word(1), a.word(2), a.word(3), a.word(4))?;
    p.apply(&effects)?;
    Ok(addr)
}

/// `madvise(addr, length, advice)`: `MADV_DONTNEED` zeroes the pages; other
/// advice is accepted and ignored.
pub(super) fn madvise(p: &mut Process<'_>, a: &Args) -> CallResult {
    let (addr, length, advice) = (a.word(0), a.word(1), a.int(2));
    if addr & 0xfff != 0 {
        return Err(Errno::EINVAL.into());
    }
    if advice == MADV_DONTNEED {
        p.discard(addr, length)?;
    }
    Ok(0)
}

impl Process<'_> {
    fn mmap(
        &mut self,
        addr: u64,
        length: u64,
        prot: u64,
        flags: u64,
        fd: i32,
        offset: u64,
    ) -> CallResult {
        let f = MmapFlags::parse(flags)?;
        let prot = Prot::from_linux(prot)?;
        let kind = if f.anonymous {
            RegionKind::Anon
        } else {
            RegionKind::File
        };
        let handle = if f.anonymous {
            None
        } else {
            if offset & 0xfff != 0 {
                return Err(Errno::EINVAL.into());
            }
            match self.task.fds.file(fd)? {
                OpenFile::HostFile(h) => {
                    if f.shared && prot.write {
                        // Writes could not reach the host file.
                        return Err(Errno::ENODEV.into());
                    }
                    Some(h)
                }
                _ => return Err(Errno::ENODEV.into()),
            }
        };
        let (start, effects) = self.task.vm.mmap(f.placement(addr), length, prot, kind)?;
        if let Err(e) = self.apply(&effects) {
            if let Ok(undo) = self.task.vm.munmap(start, length) {
                let _ = self.apply(&undo);
            }
            return Err(e);
        }
        if let (Some(h), true) = (handle, prot != Prot::NONE)
            && self.map_from_cache(h, start, length, offset)?
        {
            return Ok(start);
        }
        if let (Some(h), true) = (handle, prot != Prot::NONE) {
            let mut done = 0u64;
            while done < length {
                let len = (length - done).min(CHUNK as u64) as u32;
                let (n, data) = self.host_value(FileRequest::Pread {
                    handle: h,
                    len,
                    offset: (offset + done) as i64,
                })?;
                if n == 0 {
                    break;
                }
                self.load_mem(start + done, &data[..(n as usize).min(data.len())])?;
                done += n;
            }
        }
        Ok(start)
    }

    /// Fills a new file mapping `[start, start + length)` of host file `h`
    /// at `offset` from the node's file cache, reading the whole file into
    /// it first if it is not there (the libraries `ld.so` maps: the next
    /// job maps them without asking `hostd` for their bytes). False when
    /// the cache cannot serve it (the caller reads from `hostd`).
    fn map_from_cache(
        &mut self,
        h: u64,
        start: u64,
        length: u64,
        offset: u64,
    ) -> Result<bool, CallError> {
        let (_, st) = self.host_value(FileRequest::Fstat { handle: h })?;
        let Ok(st) = crate::job::decode_stat(&st) else {
            return Ok(false);
        };
        let Ok(size) = u64::try_from(st.size) else {
            return Ok(false);
        };
        if size == 0 || st.mode & g::S_IFMT != g::S_IFREG {
            return Ok(false);
        }
        let key = FileKey {
            dev: (st.dev_major, st.dev_minor),
            ino: st.ino,
            size,
            mtime: st.mtime,
        };
        let (cache, at) = match self.node.cache_find(&key) {
            Some(found) => found,
            None => {
                let Some((cache, at)) = self.node.cache_reserve(&key) else {
                    return Ok(false);
                };
                let mut done = 0u64;
                while done < size {
                    let len = (size - done).min(CHUNK as u64) as u32;
                    let read = self.host_value(FileRequest::Pread {
                        handle: h,
                        len,
                        offset: done as i64,
                    });
                    let Ok((n, data)) = read else {
                        self.node.cache_abandon(&key);
                        return read.map(|_| false);
                    };
                    let n = (n as usize).min(data.len());
                    if n == 0 || self.node.write(cache, at + done, &data[..n]).is_err() {
                        self.node.cache_abandon(&key);
                        return Ok(false);
                    }
                    done += n as u64;
                }
                (cache, at)
            }
        };
        // The mapping's bytes that the file has; the rest stays zero.
        let end = offset.saturating_add(length).min(size);
        let mut buf = vec![0u8; CHUNK];
        let mut from = offset;
        while from < end {
            let n = ((end - from) as usize).min(CHUNK);
            self.node.read(cache, at + from, &mut buf[..n])?;
            self.load_mem(start + (from - offset), &buf[..n])?;
            from += n as u64;
        }
        Ok(true)
    }

    /// Applies address-space effects to the application's page tables.
    ///
    /// The kernel has no present-but-inaccessible pages: fresh `PROT_NONE`
    /// mappings stay unmapped (any access faults; a later `mprotect` maps
    /// zeroed pages, which is what they hold), and `mprotect(PROT_NONE)` of
    /// pages with data keeps them read-only so the data survives.
    pub fn apply(&mut self, effects: &[VmEffect]) -> Result<(), CallError> {
        for e in effects {
            let r = match *e {
                VmEffect::Map { start, end, prot } => {
                    if prot == Prot::NONE {
                        Ok(())
                    } else {
                        self.node.map(self.task.pid, start, end - start, prot)
                    }
                }
                VmEffect::Unmap { start, end } => {
                    self.node.unmap(self.task.pid, start, end - start)
                }
                VmEffect::Protect { start, end, prot } => {
                    self.node
                        .map(self.task.pid, start, end - start, readable(prot))
                }
                VmEffect::Move { from, to, len } => self.move_pages(from, to, len),
            };
            if r.is_err() {
                return Err(Errno::ENOMEM.into());
            }
        }
        Ok(())
    }

    /// Moves mapped pages (for `mremap`): maps the destination, copies, and
    /// unmaps the source. Unmapped source pages (`PROT_NONE`) stay zero.
    fn move_pages(&mut self, from: u64, to: u64, len: u64) -> Result<(), Errno> {
        let prot = self.task.vm.region_at(to).map_or(Prot::RW, |r| r.prot);
        self.node.map(self.task.pid, to, len, readable(prot))?;
        let mut buf = vec![0u8; 4096];
        let mut off = 0;
        while off < len {
            if self.node.read(self.task.pid, from + off, &mut buf).is_ok() {
                self.node.write(self.task.pid, to + off, &buf)?;
            }
            off += 4096;
        }
        self.node.unmap(self.task.pid, from, len)
    }

    /// `MADV_DONTNEED`: the pages read as zero afterwards (fresh frames).
    fn discard(&mut self, addr: u64, length: u64) -> Result<(), CallError> {
        let end = addr.saturating_add(length).saturating_add(0xfff) & !0xfff;
        let pieces: Vec<(u64, u64, Prot)> = self
            .task
            .vm
            .regions()
            .filter(|r| r.start < end && addr < r.end)
            .map(|r| (r.start.max(addr), r.end.min(end), r.prot))
            .collect();
        for (s, e, prot) in pieces {
            if prot != Prot::NONE {
                let _ = self.node.unmap(self.task.pid, s, e - s);
                self.node
                    .map(self.task.pid, s, e - s, prot)
                    .map_err(|_| Errno::ENOMEM)?;
            }
        }
        Ok(())
    }
}

/// The protection pages with `prot` get from the node: the kernel has no
/// present-but-inaccessible pages, so `PROT_NONE` pages that hold data stay
/// readable (any access still faults for a program that respects its own
/// `mprotect`; the data survives a later `mprotect` back).
fn readable(prot: Prot) -> Prot {
    if prot == Prot::NONE { Prot::R } else { prot }
}
