//! The node's file cache: the contents of files jobs map (the libraries
//! `ld.so` maps, above all `libc.so.6`), kept in the address space of an
//! application that never runs, so the next job that maps the same file
//! copies it on the node instead of fetching it from its `hostd` again
//! (issue 11). Entries are known by [`FileKey`] (device, inode, size,
//! modification time on the submitter), so a changed file is a new entry and
//! a cached copy is never stale. The cache holds at most a quarter of the
//! node's spare memory (and [`MAX_BYTES`]); the least recently used entries
//! make room, and everything goes when memory is short.

use alloc::vec::Vec;

use sion_abi::Pid;
use sion_app_mgr::abi::page_up;
use sion_app_mgr::process::FileKey;
use sion_rt::sys::app;

/// Most bytes the cache holds (256 MiB).
pub const MAX_BYTES: u64 = 256 << 20;
/// Largest file it takes (64 MiB).
pub const MAX_FILE: u64 = 64 << 20;
/// Where its entries start in the holding application's address space.
const BASE: u64 = 0x1000_0000;

struct Entry {
    key: FileKey,
    at: u64,
    len: u64,
    last_used: u64,
    filled: bool,
}

/// The cache: its holding application and entries.
pub struct FileCache {
    holder: Option<Pid>,
    entries: Vec<Entry>,
    next_at: u64,
    clock: u64,
    /// Lookups that found their file.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
}

impl FileCache {
    /// An empty cache; its holding application is made on first use.
    pub const fn new() -> FileCache {
        FileCache {
            holder: None,
            entries: Vec::new(),
            next_at: BASE,
            clock: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.len).sum()
    }

    /// Where `key`'s contents are, if cached: the holding application and
    /// address.
    pub fn find(&mut self, key: &FileKey) -> Option<(Pid, u64)> {
        self.clock += 1;
        let clock = self.clock;
        let holder = self.holder?;
        match self.entries.iter_mut().find(|e| e.key == *key && e.filled) {
            Some(e) => {
                e.last_used = clock;
                self.hits += 1;
                Some((holder, e.at))
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Mapped room for `key`'s contents, making room by dropping the least
    /// recently used entries; `None` if the file is too large or memory is
    /// short (`spare` bytes free on the node).
    pub fn reserve(&mut self, key: &FileKey, spare: u64) -> Option<(Pid, u64)> {
        let len = page_up(key.size)?;
        let budget = (spare / 4).min(MAX_BYTES);
        if key.size > MAX_FILE || len > budget {
            return None;
        }
        while self.bytes() + len > budget {
            self.evict_one()?;
        }
        let holder = match self.holder {
            Some(h) => h,
            None => {
                let h = app::create().ok()?;
                self.holder = Some(h);
                h
            }
        };
        let at = self.next_at;
        app::map(
            holder,
            at,
            len,
            sion_abi::app::PROT_READ | sion_abi::app::PROT_WRITE,
        )
        .ok()?;
        self.next_at += len + 0x1000;
        self.clock += 1;
        self.entries.retain(|e| e.key != *key);
        self.entries.push(Entry {
            key: *key,
            at,
            len,
            last_used: self.clock,
            filled: true,
        });
        Some((holder, at))
    }

    /// Drops `key`'s entry (a reservation that could not be filled).
    pub fn abandon(&mut self, key: &FileKey) {
        if let Some(i) = self.entries.iter().position(|e| e.key == *key) {
            let e = self.entries.swap_remove(i);
            if let Some(h) = self.holder {
                let _ = app::unmap(h, e.at, e.len);
            }
        }
    }

    /// Drops everything (memory is short for a job).
    pub fn clear(&mut self) {
        if let Some(h) = self.holder.take() {
            let _ = app::kill(h, 9);
        }
        self.entries.clear();
        self.next_at = BASE;
    }

    fn evict_one(&mut self) -> Option<()> {
        let i = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(i, _)| i)?;
        let e = self.entries.swap_remove(i);
        let _ = app::unmap(self.holder?, e.at, e.len);
        Some(())
    }
}
