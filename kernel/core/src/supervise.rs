//! `init`'s supervision policy, pure so it is tested on the host: the
//! restart back-off of a service that ended ([`Backoff`]) and the test hook
//! that kills a service on purpose ([`CrashHook`]), which reaches `init`
//! in front of its argument ([`split_init_arg`]).
//!
//! The hook comes only from the boot argument `crash=SERVICE:SECONDS`
//! (QEMU's fw_cfg command line; real hardware has none): whoever sets boot
//! arguments already chooses `init` and the cluster key, so it opens nothing
//! a node's network could reach.

/// The first restart delay of a service (ns): 1 s.
pub const FIRST_DELAY_NS: u64 = 1_000_000_000;
/// The longest restart delay (ns): 30 s.
pub const MAX_DELAY_NS: u64 = 30_000_000_000;
/// A service that ran this long (ns) before it ended was stable: its next
/// restart delay starts again from [`FIRST_DELAY_NS`]. 60 s.
pub const STABLE_NS: u64 = 60_000_000_000;

/// Exponential back-off of one service's restarts: 1 s, 2 s, 4 s, … up to
/// 30 s while it keeps ending within 60 s of its start; back to 1 s once it
/// has run 60 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    next_ns: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// A service that has not ended yet.
    pub const fn new() -> Backoff {
        Backoff {
            next_ns: FIRST_DELAY_NS,
        }
    }

    /// The service ended after running `ran_ns` (ns): how long to wait before
    /// starting it again (ns).
    pub fn on_end(&mut self, ran_ns: u64) -> u64 {
        if ran_ns >= STABLE_NS {
            self.next_ns = FIRST_DELAY_NS;
        }
        let delay = self.next_ns;
        self.next_ns = self.next_ns.saturating_mul(2).min(MAX_DELAY_NS);
        delay
    }
}

/// The boot argument naming the test hook: `crash=SERVICE:SECONDS`.
pub const CRASH_ARG: &str = "crash";
/// Longest value of [`CRASH_ARG`] the kernel passes on, in bytes.
pub const MAX_CRASH_VALUE: usize = 64;

/// The test hook `crash=SERVICE:SECONDS`: `init` kills its service `service`
/// once, `after_s` seconds after starting it at boot, as a crash would end
/// it, so a test can watch the restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashHook<'a> {
    /// The service's process-image name (`app-mgr`, `companion-mgr`).
    pub service: &'a str,
    /// Seconds after its first start.
    pub after_s: u64,
}

impl<'a> CrashHook<'a> {
    /// Parses the value `SERVICE:SECONDS` (a non-empty name, whole seconds);
    /// `None` if malformed.
    pub fn parse(value: &'a str) -> Option<CrashHook<'a>> {
        let (service, seconds) = value.split_once(':')?;
        let after_s = seconds.parse().ok()?;
        (!service.is_empty()).then_some(CrashHook { service, after_s })
    }
}

/// Splits `init`'s argument: the kernel gives it the cluster key's text,
/// preceded by the line `crash=SERVICE:SECONDS\n` when that boot argument is
/// set. Returns the hook's value (`SERVICE:SECONDS`, unparsed), if any, and
/// the key text. Key text never starts with `crash=` (keys are hex).
pub fn split_init_arg(arg: &[u8]) -> (Option<&[u8]>, &[u8]) {
    let prefix = CRASH_ARG.as_bytes();
    let hooked = arg.len() > prefix.len() && arg.starts_with(prefix) && arg[prefix.len()] == b'=';
    if !hooked {
        return (None, arg);
    }
    let rest = &arg[prefix.len() + 1..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(end) => (Some(&rest[..end]), &rest[end + 1..]),
        None => (Some(rest), &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let mut b = Backoff::new();
        let delays: [u64; 7] = core::array::from_fn(|_| b.on_end(S) / S);
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn backoff_resets_after_a_stable_run() {
        let mut b = Backoff::new();
        assert_eq!(b.on_end(0), S);
        assert_eq!(b.on_end(59 * S), 2 * S);
        assert_eq!(b.on_end(10 * S), 4 * S);
        // Ran a minute: stable again.
        assert_eq!(b.on_end(STABLE_NS), S);
        assert_eq!(b.on_end(S), 2 * S);
        assert_eq!(b.on_end(3600 * S), S);
    }

    #[test]
    fn parses_the_crash_hook() {
        assert_eq!(
            CrashHook::parse("app-mgr:40"),
            Some(CrashHook {
                service: "app-mgr",
                after_s: 40
            })
        );
        assert_eq!(CrashHook::parse("app-mgr"), None);
        assert_eq!(CrashHook::parse(":40"), None);
        assert_eq!(CrashHook::parse("app-mgr:-1"), None);
        assert_eq!(CrashHook::parse("app-mgr:4s"), None);
    }

    #[test]
    fn splits_the_init_argument() {
        let key = b"00112233\n";
        assert_eq!(split_init_arg(key), (None, &key[..]));
        assert_eq!(split_init_arg(b""), (None, &b""[..]));
        assert_eq!(
            split_init_arg(b"crash=app-mgr:40\n00112233\n"),
            (Some(&b"app-mgr:40"[..]), &key[..])
        );
        assert_eq!(
            split_init_arg(b"crash=app-mgr:40"),
            (Some(&b"app-mgr:40"[..]), &b""[..])
        );
        // Not the hook: a word that only starts like it.
        assert_eq!(split_init_arg(b"crashes"), (None, &b"crashes"[..]));
    }
}
