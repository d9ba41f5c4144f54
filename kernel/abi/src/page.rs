//! The x86_64 page size and rounding to it: the one helper the kernel and the
//! App-Program Manager use for page arithmetic (Intel SDM Vol. 3A §4.5, 4-KiB
//! pages).

/// Size of a page and of a physical frame, in bytes.
pub const PAGE_SIZE: u64 = 4096;

/// `addr` rounded down to a page boundary.
pub const fn page_down(addr: u64) -> u64 {
    addr & !(PAGE_SIZE - 1)
}

/// `addr` rounded up to a page boundary; `None` if that overflows `u64`.
pub const fn page_up(addr: u64) -> Option<u64> {
    match addr.checked_add(PAGE_SIZE - 1) {
        Some(a) => Some(page_down(a)),
        None => None,
    }
}

/// Bytes from `addr` to the end of its page (1..=[`PAGE_SIZE`]).
pub const fn page_remaining(addr: u64) -> u64 {
    PAGE_SIZE - (addr & (PAGE_SIZE - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(page_down(0x1fff), 0x1000);
        assert_eq!(page_up(0), Some(0));
        assert_eq!(page_up(1), Some(0x1000));
        assert_eq!(page_up(0x1000), Some(0x1000));
        assert_eq!(page_up(u64::MAX), None);
        assert_eq!(page_up(u64::MAX - 4095), Some(u64::MAX - 4095));
        assert_eq!(page_remaining(0x1000), 4096);
        assert_eq!(page_remaining(0x1fff), 1);
    }
}
