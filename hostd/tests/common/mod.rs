//! Shared setup of hostd's QEMU tests and benchmarks: why they cannot run
//! here (if they cannot), and a fresh qemu-net LAN with its own run directory.
#![allow(dead_code)]

use qemu_net::lan::Lan;
use std::path::{Path, PathBuf};

/// QEMU, always needed by the cluster tests, with its Debian package.
pub const QEMU: (&str, &str) = ("qemu-system-x86_64", "qemu-system-x86");
/// musl-gcc, for the static test programs.
pub const MUSL_GCC: (&str, &str) = ("musl-gcc", "musl-tools");

/// Why the QEMU tests cannot run here: not root, or one of `tools` (program,
/// Debian package) missing. `None` when they can.
///
/// # Panics
/// With `SION_REQUIRE_ALL=1` (as `.ci/run` sets), a reason to skip is a
/// failure: CI must run every test.
pub fn skip_reason(tools: &[(&str, &str)]) -> Option<String> {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("not running as root (network namespaces and taps need it)".into())
    } else {
        tools
            .iter()
            .find(|(tool, _)| qemu_net::isolation::find_in_path(tool).is_none())
            .map(|(tool, package)| format!("{tool} is not installed (package {package})"))
    };
    if let Some(why) = &why
        && std::env::var("SION_REQUIRE_ALL").is_ok_and(|v| v == "1")
    {
        panic!("SION_REQUIRE_ALL=1 but this test cannot run: {why}");
    }
    why
}

/// A LAN named `PREFIX-PID` with an empty run directory under the target's
/// temporary directory.
pub fn fresh_lan(prefix: &str) -> (Lan, PathBuf) {
    let name = format!("{prefix}-{}", std::process::id());
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("qemu-net")
        .join(&name);
    let _ = std::fs::remove_dir_all(&run_dir);
    let lan = Lan::new(&name, Some(run_dir.clone())).expect("a LAN");
    (lan, run_dir)
}
