//! The IPv4 link-local address a node tries (RFC 3927 §2.1): derived from its
//! MAC so a node keeps its address across boots, and from the attempt number
//! so a conflict leads to another address.

/// The candidate address for `mac` on attempt `attempt` (0 first): FNV-1a
/// (32-bit) over the MAC and the big-endian attempt number, mapped into
/// 169.254.1.0–169.254.254.255, the range RFC 3927 §2.1 allows.
pub fn candidate(mac: [u8; 6], attempt: u32) -> [u8; 4] {
    let mut h: u32 = 0x811c_9dc5;
    for b in mac.iter().chain(attempt.to_be_bytes().iter()) {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    let n = h % (254 * 256);
    [169, 254, 1 + (n / 256) as u8, (n % 256) as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_in_the_rfc_3927_range() {
        for i in 0..2000u32 {
            let mac = [0x52, 0x54, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            for attempt in 0..4 {
                let a = candidate(mac, attempt);
                assert_eq!(&a[..2], &[169, 254]);
                assert!((1..=254).contains(&a[2]), "{a:?}");
            }
        }
    }

    #[test]
    fn stable_per_mac_and_differs_per_attempt() {
        let mac = [0x52, 0x54, 0x00, 0x53, 0x4e, 0x01];
        assert_eq!(candidate(mac, 0), candidate(mac, 0));
        assert_ne!(candidate(mac, 0), candidate(mac, 1));
        assert_ne!(
            candidate(mac, 0),
            candidate([0x52, 0x54, 0x00, 0x53, 0x4e, 0x02], 0)
        );
    }
}
