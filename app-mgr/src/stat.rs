//! Writing a [`FileStat`] in the layout a program's `stat` call expects: the
//! x86_64 `struct stat`, the i386 `struct stat` and `struct stat64`, and
//! `struct statx`.
//!
//! Sources: Linux `arch/x86/include/uapi/asm/stat.h` (both `struct stat`s and
//! `struct stat64`), `arch/x86/include/asm/compat.h` (`struct compat_stat`, what
//! an i386 program gets from a 64-bit kernel), `fs/stat.c` (`cp_new_stat`,
//! `cp_compat_stat`: `EOVERFLOW` when a value does not fit, 16-bit ids clamped
//! to 65534), `include/uapi/linux/stat.h` (`struct statx`), `stat(2)`,
//! `statx(2)`. Device numbers use Linux's `new_encode_dev` (`old_encode_dev`
//! for the 16-bit fields of the i386 `struct stat`).

use alloc::vec;
use alloc::vec::Vec;

use crate::errno::Errno;
use crate::job::FileStat;
use crate::syscall::StatLayout;

/// Bytes of the x86_64 `struct stat`.
pub const STAT_X86_64_LEN: usize = 144;
/// Bytes of the i386 `struct stat` (`compat_stat`).
pub const STAT_I386_LEN: usize = 64;
/// Bytes of the i386 `struct stat64`.
pub const STAT64_I386_LEN: usize = 96;
/// Bytes of `struct statx`.
pub const STATX_LEN: usize = 256;

/// `STATX_BASIC_STATS`: type, mode, nlink, uid, gid, atime, mtime, ctime, ino,
/// size, blocks.
pub const STATX_BASIC_STATS: u32 = linux_raw_sys::general::STATX_BASIC_STATS;
/// `STATX_BTIME`: creation time.
pub const STATX_BTIME: u32 = linux_raw_sys::general::STATX_BTIME;

/// The size in bytes of `layout`.
pub const fn layout_len(layout: StatLayout) -> usize {
    match layout {
        StatLayout::X86_64 => STAT_X86_64_LEN,
        StatLayout::I386Stat => STAT_I386_LEN,
        StatLayout::I386Stat64 => STAT64_I386_LEN,
    }
}

/// Linux `new_encode_dev`: a 32-bit device number from major and minor.
pub const fn new_encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Clamps an id to 16 bits as Linux's `high2lowuid` does (65534 above 65535).
fn low16(id: u32) -> u16 {
    u16::try_from(id).unwrap_or(65534)
}

/// `st` in `layout`. Errors: `EOVERFLOW` when a value does not fit the i386
/// `struct stat` (inode or size at least 2^31, device numbers over 8 bits,
/// more than 65535 links), as Linux's `cp_compat_stat`.
pub fn to_stat(st: &FileStat, layout: StatLayout) -> Result<Vec<u8>, Errno> {
    let dev = new_encode_dev(st.dev_major, st.dev_minor);
    let rdev = new_encode_dev(st.rdev_major, st.rdev_minor);
    let mut b = vec![0u8; layout_len(layout)];
    match layout {
        StatLayout::X86_64 => {
            put(&mut b, 0, &u64::from(dev).to_le_bytes());
            put(&mut b, 8, &st.ino.to_le_bytes());
            put(&mut b, 16, &st.nlink.to_le_bytes());
            put(&mut b, 24, &st.mode.to_le_bytes());
            put(&mut b, 28, &st.uid.to_le_bytes());
            put(&mut b, 32, &st.gid.to_le_bytes());
            put(&mut b, 40, &u64::from(rdev).to_le_bytes());
            put(&mut b, 48, &st.size.to_le_bytes());
            put(&mut b, 56, &st.blksize.to_le_bytes());
            put(&mut b, 64, &st.blocks.to_le_bytes());
            for (i, t) in [st.atime, st.mtime, st.ctime].into_iter().enumerate() {
                put(&mut b, 72 + 16 * i, &t.0.to_le_bytes());
                put(&mut b, 80 + 16 * i, &u64::from(t.1).to_le_bytes());
            }
        }
        StatLayout::I386Stat => {
            let small = |major: u32, minor: u32| major < 256 && minor < 256;
            if !small(st.dev_major, st.dev_minor)
                || !small(st.rdev_major, st.rdev_minor)
                || st.ino > u64::from(u32::MAX)
                || st.size > i64::from(i32::MAX)
                || st.nlink > 65535
            {
                return Err(Errno::EOVERFLOW);
            }
            let old = |major: u32, minor: u32| (major << 8) | minor;
            put(&mut b, 0, &old(st.dev_major, st.dev_minor).to_le_bytes());
            put(&mut b, 4, &(st.ino as u32).to_le_bytes());
            put(&mut b, 8, &(st.mode as u16).to_le_bytes());
            put(&mut b, 10, &(st.nlink as u16).to_le_bytes());
            put(&mut b, 12, &low16(st.uid).to_le_bytes());
            put(&mut b, 14, &low16(st.gid).to_le_bytes());
            put(&mut b, 16, &old(st.rdev_major, st.rdev_minor).to_le_bytes());
            put(&mut b, 20, &(st.size as u32).to_le_bytes());
            put(&mut b, 24, &(st.blksize as u32).to_le_bytes());
            put(&mut b, 28, &(st.blocks as u32).to_le_bytes());
            for (i, t) in [st.atime, st.mtime, st.ctime].into_iter().enumerate() {
                put(&mut b, 32 + 8 * i, &(t.0 as u32).to_le_bytes());
                put(&mut b, 36 + 8 * i, &t.1.to_le_bytes());
            }
        }
        StatLayout::I386Stat64 => {
            put(&mut b, 0, &u64::from(dev).to_le_bytes());
            put(&mut b, 12, &(st.ino as u32).to_le_bytes());
            put(&mut b, 16, &st.mode.to_le_bytes());
            put(
                &mut b,
                20,
                &(st.nlink.min(u64::from(u32::MAX)) as u32).to_le_bytes(),
            );
            put(&mut b, 24, &st.uid.to_le_bytes());
            put(&mut b, 28, &st.gid.to_le_bytes());
            put(&mut b, 32, &u64::from(rdev).to_le_bytes());
            put(&mut b, 44, &st.size.to_le_bytes());
            put(&mut b, 52, &(st.blksize as u32).to_le_bytes());
            put(&mut b, 56, &st.blocks.to_le_bytes());
            for (i, t) in [st.atime, st.mtime, st.ctime].into_iter().enumerate() {
                put(&mut b, 64 + 8 * i, &(t.0 as u32).to_le_bytes());
                put(&mut b, 68 + 8 * i, &t.1.to_le_bytes());
            }
            put(&mut b, 88, &st.ino.to_le_bytes());
        }
    }
    Ok(b)
}

/// `st` as a `struct statx` (256 bytes). `stx_mask` is
/// [`STATX_BASIC_STATS`], plus [`STATX_BTIME`] when the creation time is
/// known; the `mask` the program asked for is a hint, as in Linux.
pub fn to_statx(st: &FileStat) -> Vec<u8> {
    let mut b = vec![0u8; STATX_LEN];
    let mask = STATX_BASIC_STATS | if st.btime.is_some() { STATX_BTIME } else { 0 };
    put(&mut b, 0, &mask.to_le_bytes());
    put(&mut b, 4, &(st.blksize as u32).to_le_bytes());
    put(
        &mut b,
        16,
        &(st.nlink.min(u64::from(u32::MAX)) as u32).to_le_bytes(),
    );
    put(&mut b, 20, &st.uid.to_le_bytes());
    put(&mut b, 24, &st.gid.to_le_bytes());
    put(&mut b, 28, &(st.mode as u16).to_le_bytes());
    put(&mut b, 32, &st.ino.to_le_bytes());
    put(&mut b, 40, &st.size.to_le_bytes());
    put(&mut b, 48, &st.blocks.to_le_bytes());
    let times = [st.atime, st.btime.unwrap_or((0, 0)), st.ctime, st.mtime];
    for (i, t) in times.into_iter().enumerate() {
        put(&mut b, 64 + 16 * i, &t.0.to_le_bytes());
        put(&mut b, 72 + 16 * i, &t.1.to_le_bytes());
    }
    put(&mut b, 128, &st.rdev_major.to_le_bytes());
    put(&mut b, 132, &st.rdev_minor.to_le_bytes());
    put(&mut b, 136, &st.dev_major.to_le_bytes());
    put(&mut b, 140, &st.dev_minor.to_le_bytes());
    b
}

/// `S_IFCHR`: character device.
pub const S_IFCHR: u32 = linux_raw_sys::general::S_IFCHR;
/// `S_IFIFO`: pipe.
pub const S_IFIFO: u32 = linux_raw_sys::general::S_IFIFO;

/// What `fstat` reports for a descriptor served on the node: a terminal
/// (character device 136:0, `/dev/pts/0`, mode 0620) when `tty`, else a pipe
/// (mode 0600), owned by `uid`/`gid`, all times `now` (seconds since the
/// epoch).
pub fn node_stat(tty: bool, uid: u32, gid: u32, now: (i64, u32)) -> FileStat {
    FileStat {
        dev_major: 0,
        dev_minor: if tty { 25 } else { 13 },
        ino: if tty { 3 } else { 1 },
        mode: if tty {
            S_IFCHR | 0o620
        } else {
            S_IFIFO | 0o600
        },
        nlink: 1,
        uid,
        gid,
        rdev_major: if tty { 136 } else { 0 },
        rdev_minor: 0,
        size: 0,
        blksize: if tty { 1024 } else { 4096 },
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        btime: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FileStat {
        FileStat {
            dev_major: 8,
            dev_minor: 1,
            ino: 1234,
            mode: 0o100644,
            nlink: 2,
            uid: 1000,
            gid: 100,
            rdev_major: 0,
            rdev_minor: 0,
            size: 5000,
            blksize: 4096,
            blocks: 16,
            atime: (1_700_000_001, 11),
            mtime: (1_700_000_002, 22),
            ctime: (1_700_000_003, 33),
            btime: Some((1_600_000_000, 44)),
        }
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn x86_64_layout_matches_linux_raw_sys() {
        // The host's own `struct stat` (x86_64 hosts) pins the offsets.
        assert_eq!(
            core::mem::size_of::<linux_raw_sys::general::stat>(),
            STAT_X86_64_LEN
        );
        let b = to_stat(&sample(), StatLayout::X86_64).unwrap();
        assert_eq!(b.len(), 144);
        assert_eq!(u64_at(&b, 0), 0x801);
        assert_eq!(u64_at(&b, 8), 1234);
        assert_eq!(u64_at(&b, 16), 2);
        assert_eq!(u32_at(&b, 24), 0o100644);
        assert_eq!(u32_at(&b, 28), 1000);
        assert_eq!(u64_at(&b, 48), 5000);
        assert_eq!(u64_at(&b, 88), 1_700_000_002);
        assert_eq!(u64_at(&b, 96), 22);
    }

    #[test]
    fn i386_layouts() {
        let b = to_stat(&sample(), StatLayout::I386Stat).unwrap();
        assert_eq!(b.len(), 64);
        assert_eq!(u32_at(&b, 0), 0x801);
        assert_eq!(u32_at(&b, 4), 1234);
        assert_eq!(u16::from_le_bytes([b[8], b[9]]), 0o100644);
        assert_eq!(u32_at(&b, 20), 5000);
        assert_eq!(u32_at(&b, 40), 1_700_000_002);
        let b = to_stat(&sample(), StatLayout::I386Stat64).unwrap();
        assert_eq!(b.len(), 96);
        assert_eq!(u64_at(&b, 0), 0x801);
        assert_eq!(u32_at(&b, 16), 0o100644);
        assert_eq!(u64_at(&b, 44), 5000);
        assert_eq!(u64_at(&b, 56), 16);
        assert_eq!(u32_at(&b, 72), 1_700_000_002);
        assert_eq!(u64_at(&b, 88), 1234);
        // Values too big for the old struct stat: EOVERFLOW, not truncation.
        let big = FileStat {
            size: 1 << 32,
            ..sample()
        };
        assert_eq!(to_stat(&big, StatLayout::I386Stat), Err(Errno::EOVERFLOW));
        assert!(to_stat(&big, StatLayout::I386Stat64).is_ok());
        let wide_uid = FileStat {
            uid: 100_000,
            ..sample()
        };
        let b = to_stat(&wide_uid, StatLayout::I386Stat).unwrap();
        assert_eq!(u16::from_le_bytes([b[12], b[13]]), 65534);
    }

    #[test]
    fn statx_layout() {
        let b = to_statx(&sample());
        assert_eq!(b.len(), 256);
        assert_eq!(u32_at(&b, 0), STATX_BASIC_STATS | STATX_BTIME);
        assert_eq!(u32_at(&b, 20), 1000);
        assert_eq!(u64_at(&b, 40), 5000);
        assert_eq!(u64_at(&b, 64), 1_700_000_001); // atime
        assert_eq!(u64_at(&b, 80), 1_600_000_000); // btime
        assert_eq!(u64_at(&b, 96), 1_700_000_003); // ctime
        assert_eq!(u64_at(&b, 112), 1_700_000_002); // mtime
        assert_eq!(u32_at(&b, 136), 8);
        assert_eq!(u32_at(&b, 140), 1);
        let no_btime = FileStat {
            btime: None,
            ..sample()
        };
        assert_eq!(u32_at(&to_statx(&no_btime), 0), STATX_BASIC_STATS);
    }

    #[test]
    fn node_stats() {
        assert_eq!(node_stat(true, 1, 2, (0, 0)).mode, S_IFCHR | 0o620);
        assert_eq!(node_stat(false, 1, 2, (0, 0)).mode, S_IFIFO | 0o600);
    }
}
