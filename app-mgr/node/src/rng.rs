//! Random bytes for `AT_RANDOM` and `getrandom`: the `fastrand` crate's
//! wyrand generator, seeded from the node's nanosecond clock at each job
//! start and re-seeded with the clock on every request. Unpredictable enough
//! for a libc's stack protector and hash seeds; not a cryptographic generator.

/// The generator.
pub struct Rng(fastrand::Rng);

impl Rng {
    /// Seeds from the clock and `salt` (the job number).
    pub fn new(salt: u64) -> Rng {
        Rng(fastrand::Rng::with_seed(
            sion_rt::sys::clock_ns() ^ salt.rotate_left(32),
        ))
    }

    /// Fills `buf`, stirring in the clock first.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let seed = self.0.u64(..) ^ sion_rt::sys::clock_ns();
        self.0.seed(seed);
        self.0.fill(buf);
    }
}
