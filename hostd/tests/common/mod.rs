//! Shared setup of hostd's QEMU tests and benchmarks: a fresh qemu-net LAN
//! with its own run directory. Whether a test can run here is
//! [`qemu_net::prereq`]'s to say.
#![allow(dead_code)]

use qemu_net::lan::Lan;
use std::path::{Path, PathBuf};

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
