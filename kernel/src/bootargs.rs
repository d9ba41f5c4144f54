//! Boot arguments: `key=value` words that QEMU passes through its firmware
//! configuration device as the file `opt/sion/cmdline`
//! (`-fw_cfg name=opt/sion/cmdline,string=init=t-ipc`). On real hardware there
//! are none and every default applies. Source: QEMU `docs/specs/fw_cfg.rst`.

use alloc::string::String;
use alloc::vec::Vec;
use x86_64::instructions::port::Port;

/// The fw_cfg file carrying SiON's boot arguments.
const CMDLINE_FILE: &[u8] = b"opt/sion/cmdline";
/// Longest command line read, in bytes.
const MAX_CMDLINE: u32 = 4096;

/// Parsed boot arguments.
pub struct BootArgs {
    words: Vec<(String, String)>,
}

impl BootArgs {
    /// Reads the arguments from QEMU's fw_cfg device, if there is one.
    pub fn read() -> BootArgs {
        let text = FwCfg::probe().and_then(|mut fw| fw.read_file(CMDLINE_FILE));
        let text = text
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if !text.is_empty() {
            log::info!("boot arguments: {text}");
        }
        BootArgs {
            words: parse(&text),
        }
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.words
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn parse(text: &str) -> Vec<(String, String)> {
    text.split_whitespace()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.into(), v.into()),
            None => (w.into(), String::new()),
        })
        .collect()
}

/// QEMU's firmware configuration device on I/O ports 0x510 (selector) and 0x511 (data).
struct FwCfg {
    selector: Port<u16>,
    data: Port<u8>,
}

impl FwCfg {
    const SIGNATURE: u16 = 0x0000;
    const FILE_DIR: u16 = 0x0019;

    /// Finds the device by its "QEMU" signature.
    fn probe() -> Option<FwCfg> {
        // fw_cfg's ports under QEMU; on other machines reads return junk and the
        // signature check fails. (`Port::new` is safe; each access below is not.)
        let mut fw = FwCfg {
            selector: Port::new(0x510),
            data: Port::new(0x511),
        };
        fw.select(Self::SIGNATURE);
        let mut sig = [0u8; 4];
        fw.read(&mut sig);
        (&sig == b"QEMU").then_some(fw)
    }

    fn select(&mut self, key: u16) {
        // SAFETY: writing a selector key only chooses which item the data port reads.
        unsafe { self.selector.write(key) };
    }

    fn read(&mut self, buf: &mut [u8]) {
        for b in buf {
            // SAFETY: reading the data port returns the next byte of the selected item.
            *b = unsafe { self.data.read() };
        }
    }

    fn read_file(&mut self, name: &[u8]) -> Option<Vec<u8>> {
        self.select(Self::FILE_DIR);
        let mut count = [0u8; 4];
        self.read(&mut count);
        for _ in 0..u32::from_be_bytes(count) {
            // struct FWCfgFile { be32 size; be16 select; u16 reserved; char name[56]; }
            let mut entry = [0u8; 64];
            self.read(&mut entry);
            let size = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let key = u16::from_be_bytes([entry[4], entry[5]]);
            let entry_name = &entry[8..];
            let len = entry_name.iter().position(|&b| b == 0).unwrap_or(56);
            if &entry_name[..len] == name {
                self.select(key);
                let mut content = alloc::vec![0u8; size.min(MAX_CMDLINE) as usize];
                self.read(&mut content);
                return Some(content);
            }
        }
        None
    }
}
