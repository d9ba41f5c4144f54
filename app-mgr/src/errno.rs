//! Linux error numbers and the system-call return convention (`-errno` in the
//! result register).
//!
//! Values come from `linux-raw-sys` (`asm-generic/errno-base.h`, `errno.h`; i386
//! and x86_64 share them). Source: `errno(3)`, `syscall(2)` "Return value".

use crate::abi::Abi;
use linux_raw_sys::errno as e;

/// A Linux error number (1..=4095), e.g. [`Errno::ENOENT`].
///
/// A system call that fails returns `-errno` in its result register
/// ([`Errno::to_return`], [`encode_return`]); results in `-4095..=-1` are errors
/// ([`Errno::from_return`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(u16);

/// The result of serving one system call: the value for the result register, or
/// an error number.
pub type SysResult = Result<u64, Errno>;

/// Largest error number Linux returns (`MAX_ERRNO` in include/linux/err.h).
pub const MAX_ERRNO: u16 = 4095;

macro_rules! errnos {
    ($($name:ident => $msg:literal,)*) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`: ", $msg, ".")]
                pub const $name: Errno = Errno(e::$name as u16);
            )*

            /// The symbolic name (`"ENOENT"`), or `None` for a number this table
            /// does not name.
            pub const fn name(self) -> Option<&'static str> {
                $(if self.0 == e::$name as u16 { return Some(stringify!($name)); })*
                None
            }

            /// The `strerror(3)` message (`"No such file or directory"`), or
            /// `None` for a number this table does not name.
            pub const fn message(self) -> Option<&'static str> {
                $(if self.0 == e::$name as u16 { return Some($msg); })*
                None
            }
        }
    };
}

errnos! {
    EPERM => "Operation not permitted",
    ENOENT => "No such file or directory",
    ESRCH => "No such process",
    EINTR => "Interrupted system call",
    EIO => "Input/output error",
    ENXIO => "No such device or address",
    E2BIG => "Argument list too long",
    ENOEXEC => "Exec format error",
    EBADF => "Bad file descriptor",
    ECHILD => "No child processes",
    EAGAIN => "Resource temporarily unavailable",
    ENOMEM => "Cannot allocate memory",
    EACCES => "Permission denied",
    EFAULT => "Bad address",
    EBUSY => "Device or resource busy",
    EEXIST => "File exists",
    EXDEV => "Invalid cross-device link",
    ENODEV => "No such device",
    ENOTDIR => "Not a directory",
    EISDIR => "Is a directory",
    EINVAL => "Invalid argument",
    ENFILE => "Too many open files in system",
    EMFILE => "Too many open files",
    ENOTTY => "Inappropriate ioctl for device",
    EFBIG => "File too large",
    ENOSPC => "No space left on device",
    ESPIPE => "Illegal seek",
    EROFS => "Read-only file system",
    EMLINK => "Too many links",
    EPIPE => "Broken pipe",
    EDOM => "Numerical argument out of domain",
    ERANGE => "Numerical result out of range",
    ENAMETOOLONG => "File name too long",
    ENOSYS => "Function not implemented",
    ENOTEMPTY => "Directory not empty",
    ELOOP => "Too many levels of symbolic links",
    ENODATA => "No data available",
    EOVERFLOW => "Value too large for defined data type",
    EOPNOTSUPP => "Operation not supported",
    ETIMEDOUT => "Connection timed out",
    ECONNRESET => "Connection reset by peer",
    EHOSTUNREACH => "No route to host",
}

impl Errno {
    /// `EWOULDBLOCK`, the same number as [`Errno::EAGAIN`].
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;

    /// The error number `n`, or `None` unless `1 <= n <= 4095`.
    pub const fn new(n: u16) -> Option<Errno> {
        if n >= 1 && n <= MAX_ERRNO {
            Some(Errno(n))
        } else {
            None
        }
    }

    /// The positive error number (`ENOENT` is 2).
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// `-errno` as a signed 64-bit return value (`ENOSYS` gives -38).
    pub const fn to_return(self) -> i64 {
        -(self.0 as i64)
    }

    /// The error in a raw system-call result, if the result is in
    /// `-4095..=-1`; `None` for a success value.
    pub const fn from_return(ret: i64) -> Option<Errno> {
        if ret < 0 && ret >= -(MAX_ERRNO as i64) {
            Some(Errno((-ret) as u16))
        } else {
            None
        }
    }
}

/// The value to put in the result register (`eax`/`rax`) for `result`.
///
/// Success values are passed through (truncated to 32 bits for [`Abi::I386`]);
/// errors become `-errno`, as a 64-bit two's-complement value for x86_64 and a
/// 32-bit one (zero-extended into the 64-bit register image) for i386, e.g.
/// `ENOSYS` is `0xffff_ffff_ffff_ffda` and `0xffff_ffda`.
pub const fn encode_return(abi: Abi, result: SysResult) -> u64 {
    let v = match result {
        Ok(v) => v,
        Err(err) => err.to_return() as u64,
    };
    match abi {
        Abi::X86_64 => v,
        Abi::I386 => v & 0xffff_ffff,
    }
}

/// The inverse of [`encode_return`]: interprets a result register of `abi`
/// (sign-extending i386's 32-bit `eax`).
pub const fn decode_return(abi: Abi, reg: u64) -> SysResult {
    let signed = match abi {
        Abi::X86_64 => reg as i64,
        Abi::I386 => reg as u32 as i32 as i64,
    };
    match Errno::from_return(signed) {
        Some(err) => Err(err),
        None => Ok(match abi {
            Abi::X86_64 => reg,
            Abi::I386 => reg & 0xffff_ffff,
        }),
    }
}

impl core::fmt::Debug for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

/// `ENOENT (No such file or directory)`, or `errno 200` for unnamed numbers.
impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match (self.name(), self.message()) {
            (Some(name), Some(msg)) => write!(f, "{name} ({msg})"),
            _ => write!(f, "errno {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn values_match_linux() {
        // asm-generic/errno-base.h and errno.h.
        assert_eq!(Errno::EPERM.raw(), 1);
        assert_eq!(Errno::ENOENT.raw(), 2);
        assert_eq!(Errno::EBADF.raw(), 9);
        assert_eq!(Errno::ENOMEM.raw(), 12);
        assert_eq!(Errno::EACCES.raw(), 13);
        assert_eq!(Errno::EINVAL.raw(), 22);
        assert_eq!(Errno::EMFILE.raw(), 24);
        assert_eq!(Errno::ENOSYS.raw(), 38);
        assert_eq!(Errno::EWOULDBLOCK, Errno::EAGAIN);
    }

    #[test]
    fn return_convention() {
        assert_eq!(Errno::ENOSYS.to_return(), -38);
        assert_eq!(
            encode_return(Abi::X86_64, Err(Errno::ENOSYS)),
            (-38i64) as u64
        );
        assert_eq!(encode_return(Abi::I386, Err(Errno::ENOSYS)), 0xffff_ffda);
        assert_eq!(encode_return(Abi::X86_64, Ok(5)), 5);
        assert_eq!(encode_return(Abi::I386, Ok(0x1_0000_0005)), 5);
        assert_eq!(decode_return(Abi::I386, 0xffff_ffda), Err(Errno::ENOSYS));
        assert_eq!(
            decode_return(Abi::X86_64, (-2i64) as u64),
            Err(Errno::ENOENT)
        );
        // A large address (mmap result) is not an error.
        assert_eq!(decode_return(Abi::I386, 0xf7ff_0000), Ok(0xf7ff_0000));
        assert_eq!(
            decode_return(Abi::X86_64, 0xffff_ffff_ffff_f000),
            Ok(0xffff_ffff_ffff_f000)
        );
        assert_eq!(Errno::from_return(-4095), Errno::new(4095));
        assert_eq!(Errno::from_return(-4096), None);
        assert_eq!(Errno::from_return(0), None);
        assert_eq!(Errno::new(0), None);
        assert_eq!(Errno::new(4096), None);
    }

    #[test]
    fn display_and_debug() {
        assert_eq!(
            format!("{}", Errno::ENOENT),
            "ENOENT (No such file or directory)"
        );
        assert_eq!(format!("{:?}", Errno::EACCES), "EACCES");
        let odd = Errno::new(4000).unwrap();
        assert_eq!(format!("{odd}"), "errno 4000");
        assert_eq!(format!("{odd:?}"), "Errno(4000)");
    }
}
