//! Random bytes for `AT_RANDOM` and `getrandom`: SplitMix64 (Steele, Lea,
//! Flood 2014) seeded from the node's nanosecond clock at each job start and
//! re-mixed with the clock on every request. Unpredictable enough for a libc's
//! stack protector and hash seeds; not a cryptographic generator.

/// The generator.
pub struct Rng(u64);

impl Rng {
    /// Seeds from the clock and `salt` (the job number).
    pub fn new(salt: u64) -> Rng {
        let mut r = Rng(sion_rt::sys::clock_ns() ^ salt.rotate_left(32));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `buf`, stirring in the clock first.
    pub fn fill(&mut self, buf: &mut [u8]) {
        self.0 ^= sion_rt::sys::clock_ns();
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}
