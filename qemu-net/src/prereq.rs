//! What a test that boots SiON nodes needs on this machine (root, QEMU,
//! compilers, static programs), and the one rule for a test that cannot run
//! here: with `SION_REQUIRE_ALL=1` in the environment (as `.ci/run` sets) it
//! fails; otherwise it prints `skipped: WHY` to stderr and passes.
//!
//! Every QEMU test of the workspace (hostd, qemu-net, sion-demo) decides
//! through [`must_skip`] or [`skip`], so CI cannot pass by running nothing.

use crate::isolation::find_in_path;

/// Environment variable that turns every skip into a failure when it is `1`.
pub const REQUIRE_ALL_ENV: &str = "SION_REQUIRE_ALL";

/// A program a test needs, with the Debian package that installs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tool {
    /// The program's name on `PATH` (or an absolute path).
    pub program: &'static str,
    /// The Debian package that provides it.
    pub package: &'static str,
}

/// QEMU, which boots the nodes.
pub const QEMU: Tool = Tool {
    program: "qemu-system-x86_64",
    package: "qemu-system-x86",
};
/// musl-gcc, for static x86_64 test programs.
pub const MUSL_GCC: Tool = Tool {
    program: "musl-gcc",
    package: "musl-tools",
};
/// gcc, for i386 (`-m32`) and dynamic test programs; `-m32 -static` also
/// needs [`MULTILIB`].
pub const GCC: Tool = Tool {
    program: "gcc",
    package: "gcc",
};
/// setpriv, to run a test step as an unprivileged user.
pub const SETPRIV: Tool = Tool {
    program: "setpriv",
    package: "util-linux",
};
/// Debian's static busybox, at the path that package installs.
pub const BUSYBOX_STATIC: Tool = Tool {
    program: "/bin/busybox",
    package: "busybox-static",
};
/// OVMF, the UEFI firmware UEFI nodes start with, where Debian's `ovmf`
/// package installs it (see [`sion_image::OVMF_PATHS`]).
pub const OVMF: Tool = Tool {
    program: "/usr/share/ovmf/OVMF.fd",
    package: "ovmf",
};
/// gcc's 32-bit libraries, for `gcc -m32 -static` (checked by
/// [`multilib_missing`], not on `PATH`).
pub const MULTILIB_PACKAGE: &str = "gcc-multilib";

/// True when `SION_REQUIRE_ALL=1`: every test must run.
pub fn require_all() -> bool {
    std::env::var(REQUIRE_ALL_ENV).is_ok_and(|v| v == "1")
}

/// Why a test needing root (if `root`) and `tools` cannot run here: not root,
/// or the first missing tool with its package. `None` when it can. Does not
/// print or panic (see [`must_skip`]).
pub fn unmet(root: bool, tools: &[Tool]) -> Option<String> {
    if root && !nix::unistd::geteuid().is_root() {
        return Some("not running as root (network namespaces and taps need it)".into());
    }
    tools
        .iter()
        .find(|t| find_in_path(t.program).is_none())
        .map(|t| format!("{} is not installed (package {})", t.program, t.package))
}

/// A test, or one part of it, cannot run here because of `why`.
///
/// # Panics
/// With `SION_REQUIRE_ALL=1`: CI must run every test. Otherwise it prints
/// `skipped: WHY` to stderr and returns.
pub fn skip(why: &str) {
    if let Some(failure) = verdict(require_all(), why) {
        panic!("{failure}");
    }
    eprintln!("skipped: {why}");
}

/// [`unmet`] then [`skip`]: true (after printing why) when the test must
/// return at once because root or one of `tools` is missing.
///
/// # Panics
/// With `SION_REQUIRE_ALL=1` and something missing.
pub fn must_skip(root: bool, tools: &[Tool]) -> bool {
    match unmet(root, tools) {
        Some(why) => {
            skip(&why);
            true
        }
        None => false,
    }
}

/// Why `gcc -m32 -static` cannot link here (gcc-multilib missing), if it
/// cannot: looks for gcc's 32-bit `libgcc.a` under `/usr/lib/gcc`.
pub fn multilib_missing() -> Option<String> {
    let found = std::fs::read_dir("/usr/lib/gcc/x86_64-linux-gnu")
        .into_iter()
        .flatten()
        .flatten()
        .any(|v| v.path().join("32/libgcc.a").exists());
    (!found)
        .then(|| format!("gcc's 32-bit libraries are not installed (package {MULTILIB_PACKAGE})"))
}

/// What [`skip`] does under `require_all`: `Some(failure message)` if it must
/// fail.
fn verdict(require_all: bool, why: &str) -> Option<String> {
    require_all.then(|| format!("{REQUIRE_ALL_ENV}=1 but this test cannot run: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_all_turns_a_skip_into_a_failure() {
        assert_eq!(verdict(false, "no QEMU"), None);
        let failure = verdict(true, "no QEMU").unwrap();
        assert!(failure.contains("SION_REQUIRE_ALL=1"), "{failure}");
        assert!(failure.ends_with("no QEMU"), "{failure}");
    }

    #[test]
    fn missing_tools_are_named_with_their_package() {
        let nowhere = Tool {
            program: "sion-no-such-program-anywhere",
            package: "sion-nothing",
        };
        let why = unmet(false, &[nowhere]).unwrap();
        assert_eq!(
            why,
            "sion-no-such-program-anywhere is not installed (package sion-nothing)"
        );
        assert_eq!(unmet(false, &[]), None);
    }
}
