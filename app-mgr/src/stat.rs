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

use alloc::vec::Vec;
use core::mem::{offset_of, size_of};

use zerocopy::{Immutable, IntoBytes};

use crate::errno::Errno;
use crate::job::{FileStat, FsStat};
use crate::syscall::{StatLayout, StatfsLayout};

/// The x86_64 `struct stat` (`arch/x86/include/uapi/asm/stat.h`), 144 bytes.
#[repr(C)]
#[derive(IntoBytes, Immutable, Default)]
struct StatX86_64 {
    st_dev: u64,
    st_ino: u64,
    st_nlink: u64,
    st_mode: u32,
    st_uid: u32,
    st_gid: u32,
    pad0: u32,
    st_rdev: u64,
    st_size: i64,
    st_blksize: i64,
    st_blocks: i64,
    /// `st_atime`, `st_mtime`, `st_ctime`: (seconds, nanoseconds).
    st_times: [[u64; 2]; 3],
    unused: [i64; 3],
}

/// The i386 `struct stat` (`struct compat_stat`, `asm/compat.h`; the same
/// layout as `asm/stat.h`'s i386 `struct stat`), 64 bytes.
#[repr(C)]
#[derive(IntoBytes, Immutable, Default)]
struct StatI386 {
    st_dev: u32,
    st_ino: u32,
    st_mode: u16,
    st_nlink: u16,
    st_uid: u16,
    st_gid: u16,
    st_rdev: u32,
    st_size: u32,
    st_blksize: u32,
    st_blocks: u32,
    /// `st_atime`, `st_mtime`, `st_ctime`: (seconds, nanoseconds).
    st_times: [[u32; 2]; 3],
    unused: [u32; 2],
}

/// The i386 `struct stat64` (`asm/stat.h`), 96 bytes: i386 aligns its 64-bit
/// fields to 4 bytes, hence `packed(4)`.
#[repr(C, packed(4))]
#[derive(IntoBytes, Immutable, Default)]
struct Stat64I386 {
    st_dev: u64,
    pad0: [u8; 4],
    st_ino_low: u32,
    st_mode: u32,
    st_nlink: u32,
    st_uid: u32,
    st_gid: u32,
    st_rdev: u64,
    pad3: [u8; 4],
    st_size: i64,
    st_blksize: u32,
    st_blocks: u64,
    /// `st_atime`, `st_mtime`, `st_ctime`: (seconds, nanoseconds).
    st_times: [[u32; 2]; 3],
    st_ino: u64,
}

/// A `struct statx_timestamp`.
#[repr(C)]
#[derive(IntoBytes, Immutable, Default, Clone, Copy)]
struct StatxTimestamp {
    tv_sec: i64,
    tv_nsec: u32,
    reserved: i32,
}

/// `struct statx` (`include/uapi/linux/stat.h`), 256 bytes; the fields SiON
/// fills, then the rest as zeros.
#[repr(C)]
#[derive(IntoBytes, Immutable, Default)]
struct Statx {
    stx_mask: u32,
    stx_blksize: u32,
    stx_attributes: u64,
    stx_nlink: u32,
    stx_uid: u32,
    stx_gid: u32,
    stx_mode: u16,
    spare0: u16,
    stx_ino: u64,
    stx_size: u64,
    stx_blocks: u64,
    stx_attributes_mask: u64,
    stx_atime: StatxTimestamp,
    stx_btime: StatxTimestamp,
    stx_ctime: StatxTimestamp,
    stx_mtime: StatxTimestamp,
    stx_rdev_major: u32,
    stx_rdev_minor: u32,
    stx_dev_major: u32,
    stx_dev_minor: u32,
    rest: [u64; 14],
}

// The x86_64 layouts, checked against linux-raw-sys's (this crate is built
// for x86_64 hosts and nodes). linux-raw-sys has the i386 ones only when
// built for i386, so those are checked by size and by the tests below.
const _: () = {
    use linux_raw_sys::general::{stat as L, statx as X};
    assert!(size_of::<StatX86_64>() == size_of::<L>());
    assert!(offset_of!(StatX86_64, st_ino) == offset_of!(L, st_ino));
    assert!(offset_of!(StatX86_64, st_mode) == offset_of!(L, st_mode));
    assert!(offset_of!(StatX86_64, st_rdev) == offset_of!(L, st_rdev));
    assert!(offset_of!(StatX86_64, st_size) == offset_of!(L, st_size));
    assert!(offset_of!(StatX86_64, st_blocks) == offset_of!(L, st_blocks));
    assert!(offset_of!(StatX86_64, st_times) == offset_of!(L, st_atime));
    assert!(offset_of!(StatX86_64, unused) == offset_of!(L, __unused));
    assert!(size_of::<Statx>() == size_of::<X>());
    assert!(offset_of!(Statx, stx_mode) == offset_of!(X, stx_mode));
    assert!(offset_of!(Statx, stx_ino) == offset_of!(X, stx_ino));
    assert!(offset_of!(Statx, stx_atime) == offset_of!(X, stx_atime));
    assert!(offset_of!(Statx, stx_mtime) == offset_of!(X, stx_mtime));
    assert!(offset_of!(Statx, stx_rdev_major) == offset_of!(X, stx_rdev_major));
    assert!(offset_of!(Statx, stx_dev_minor) == offset_of!(X, stx_dev_minor));
    assert!(size_of::<StatI386>() == 64);
    assert!(size_of::<Stat64I386>() == 96);
    assert!(offset_of!(Stat64I386, st_size) == 44);
    assert!(offset_of!(Stat64I386, st_ino) == 88);
};

/// Bytes of the x86_64 `struct stat`.
pub const STAT_X86_64_LEN: usize = size_of::<StatX86_64>();
/// Bytes of the i386 `struct stat` (`compat_stat`).
pub const STAT_I386_LEN: usize = size_of::<StatI386>();
/// Bytes of the i386 `struct stat64`.
pub const STAT64_I386_LEN: usize = size_of::<Stat64I386>();
/// Bytes of `struct statx`.
pub const STATX_LEN: usize = size_of::<Statx>();

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
    let times = [st.atime, st.mtime, st.ctime];
    Ok(match layout {
        StatLayout::X86_64 => StatX86_64 {
            st_dev: u64::from(dev),
            st_ino: st.ino,
            st_nlink: st.nlink,
            st_mode: st.mode,
            st_uid: st.uid,
            st_gid: st.gid,
            st_rdev: u64::from(rdev),
            st_size: st.size,
            st_blksize: st.blksize,
            st_blocks: st.blocks,
            st_times: times.map(|t| [t.0 as u64, u64::from(t.1)]),
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
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
            // `old_encode_dev`: 8-bit major and minor.
            let old = |major: u32, minor: u32| (major << 8) | minor;
            StatI386 {
                st_dev: old(st.dev_major, st.dev_minor),
                st_ino: st.ino as u32,
                st_mode: st.mode as u16,
                st_nlink: st.nlink as u16,
                st_uid: low16(st.uid),
                st_gid: low16(st.gid),
                st_rdev: old(st.rdev_major, st.rdev_minor),
                st_size: st.size as u32,
                st_blksize: st.blksize as u32,
                st_blocks: st.blocks as u32,
                st_times: times.map(|t| [t.0 as u32, t.1]),
                ..Default::default()
            }
            .as_bytes()
            .to_vec()
        }
        StatLayout::I386Stat64 => Stat64I386 {
            st_dev: u64::from(dev),
            st_ino_low: st.ino as u32,
            st_mode: st.mode,
            st_nlink: st.nlink.min(u64::from(u32::MAX)) as u32,
            st_uid: st.uid,
            st_gid: st.gid,
            st_rdev: u64::from(rdev),
            st_size: st.size,
            st_blksize: st.blksize as u32,
            st_blocks: st.blocks as u64,
            st_times: times.map(|t| [t.0 as u32, t.1]),
            st_ino: st.ino,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
    })
}

/// `st` as a `struct statx` (256 bytes). `stx_mask` is
/// [`STATX_BASIC_STATS`], plus [`STATX_BTIME`] when the creation time is
/// known; the `mask` the program asked for is a hint, as in Linux.
pub fn to_statx(st: &FileStat) -> Vec<u8> {
    let ts = |t: (i64, u32)| StatxTimestamp {
        tv_sec: t.0,
        tv_nsec: t.1,
        reserved: 0,
    };
    Statx {
        stx_mask: STATX_BASIC_STATS | if st.btime.is_some() { STATX_BTIME } else { 0 },
        stx_blksize: st.blksize as u32,
        stx_nlink: st.nlink.min(u64::from(u32::MAX)) as u32,
        stx_uid: st.uid,
        stx_gid: st.gid,
        stx_mode: st.mode as u16,
        stx_ino: st.ino,
        stx_size: st.size as u64,
        stx_blocks: st.blocks as u64,
        stx_atime: ts(st.atime),
        stx_btime: ts(st.btime.unwrap_or((0, 0))),
        stx_ctime: ts(st.ctime),
        stx_mtime: ts(st.mtime),
        stx_rdev_major: st.rdev_major,
        stx_rdev_minor: st.rdev_minor,
        stx_dev_major: st.dev_major,
        stx_dev_minor: st.dev_minor,
        ..Default::default()
    }
    .as_bytes()
    .to_vec()
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

/// Bytes of the i386 `struct statfs` (`compat_statfs`): the x86_64 layout
/// with every `long` 32 bits wide (`asm-generic/statfs.h`, `__statfs_word`).
const STATFS_I386_LEN: usize = 16 * 4;

/// The size in bytes of `layout` (what `statfs64`'s `sz` must be).
pub const fn statfs_len(layout: StatfsLayout) -> usize {
    match layout {
        StatfsLayout::X86_64 => size_of::<linux_raw_sys::general::statfs>(),
        StatfsLayout::I386Statfs => STATFS_I386_LEN,
        StatfsLayout::I386Statfs64 => size_of::<linux_raw_sys::general::compat_statfs64>(),
    }
}

/// `st` in `layout`. Errors: `EOVERFLOW` when a count does not fit the
/// i386 `struct statfs`, as Linux's `put_compat_statfs` (`fs/statfs.c`).
pub fn to_statfs(st: &FsStat, layout: StatfsLayout) -> Result<Vec<u8>, Errno> {
    use linux_raw_sys::general::{compat_statfs64 as S64, statfs as S};
    let mut b = alloc::vec![0u8; statfs_len(layout)];
    let mut put = |at: usize, width: usize, v: u64| {
        b[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
    };
    let (fsid0, fsid1) = (st.fsid & 0xffff_ffff, st.fsid >> 32);
    match layout {
        StatfsLayout::X86_64 => {
            put(offset_of!(S, f_type), 8, st.fs_type);
            put(offset_of!(S, f_bsize), 8, st.bsize);
            put(offset_of!(S, f_blocks), 8, st.blocks);
            put(offset_of!(S, f_bfree), 8, st.bfree);
            put(offset_of!(S, f_bavail), 8, st.bavail);
            put(offset_of!(S, f_files), 8, st.files);
            put(offset_of!(S, f_ffree), 8, st.ffree);
            put(offset_of!(S, f_fsid), 4, fsid0);
            put(offset_of!(S, f_fsid) + 4, 4, fsid1);
            put(offset_of!(S, f_namelen), 8, st.namelen);
            put(offset_of!(S, f_frsize), 8, st.frsize);
            put(offset_of!(S, f_flags), 8, st.flags);
        }
        StatfsLayout::I386Statfs => {
            let words = [
                st.fs_type, st.bsize, st.blocks, st.bfree, st.bavail, st.files, st.ffree, fsid0,
                fsid1, st.namelen, st.frsize, st.flags,
            ];
            if words.iter().any(|&w| w > u64::from(u32::MAX)) {
                return Err(Errno::EOVERFLOW);
            }
            for (i, w) in words.into_iter().enumerate() {
                put(4 * i, 4, w);
            }
        }
        StatfsLayout::I386Statfs64 => {
            put(offset_of!(S64, f_type), 4, st.fs_type);
            put(offset_of!(S64, f_bsize), 4, st.bsize);
            put(offset_of!(S64, f_blocks), 8, st.blocks);
            put(offset_of!(S64, f_bfree), 8, st.bfree);
            put(offset_of!(S64, f_bavail), 8, st.bavail);
            put(offset_of!(S64, f_files), 8, st.files);
            put(offset_of!(S64, f_ffree), 8, st.ffree);
            put(offset_of!(S64, f_fsid), 4, fsid0);
            put(offset_of!(S64, f_fsid) + 4, 4, fsid1);
            put(offset_of!(S64, f_namelen), 4, st.namelen);
            put(offset_of!(S64, f_frsize), 4, st.frsize);
            put(offset_of!(S64, f_flags), 4, st.flags);
        }
    }
    Ok(b)
}

/// What `fstatfs` reports for a pipe, a standard stream or a device the
/// node serves: Linux's pipe file system (`PIPEFS_MAGIC`), without space.
pub fn node_fs_stat() -> FsStat {
    FsStat {
        fs_type: u64::from(linux_raw_sys::general::PIPEFS_MAGIC),
        bsize: 4096,
        frsize: 4096,
        namelen: 255,
        ..FsStat::default()
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
