//! Boot arguments: `key=value` words that QEMU passes through its firmware
//! configuration device as the file `opt/sion/cmdline`
//! (`-fw_cfg name=opt/sion/cmdline,string=init=t-ipc`). On real hardware there
//! are none and every default applies. Source: QEMU `docs/specs/fw_cfg.rst`.
#![forbid(unsafe_code)]

use crate::arch::fw_cfg::FwCfg;
use alloc::string::String;

/// The fw_cfg file carrying SiON's boot arguments.
const CMDLINE_FILE: &[u8] = b"opt/sion/cmdline";
/// Longest command line read, in bytes.
const MAX_CMDLINE: u32 = 4096;

/// Parsed boot arguments.
pub struct BootArgs {
    text: String,
}

impl BootArgs {
    /// Reads the arguments from QEMU's fw_cfg device, if there is one.
    pub fn read() -> BootArgs {
        let text = FwCfg::probe().and_then(|mut fw| fw.read_file(CMDLINE_FILE, MAX_CMDLINE));
        let text = text
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if !text.is_empty() {
            // The cluster key (`key=…`) is a secret: never on the console.
            let shown: alloc::vec::Vec<&str> = text
                .split_whitespace()
                .map(|w| {
                    if w.starts_with("key=") {
                        "key=(hidden)"
                    } else {
                        w
                    }
                })
                .collect();
            log::info!("boot arguments: {}", shown.join(" "));
        }
        BootArgs { text }
    }

    /// The value of `key`, if given (see [`sion_kernel_core::bootargs::get`]).
    pub fn get(&self, key: &str) -> Option<&str> {
        sion_kernel_core::bootargs::get(&self.text, key)
    }
}
