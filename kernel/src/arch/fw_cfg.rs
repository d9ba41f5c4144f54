//! QEMU's firmware configuration device (fw_cfg): the port I/O that reads
//! named files QEMU passes with `-fw_cfg name=…`. Source: QEMU
//! `docs/specs/fw_cfg.rst`.

use alloc::vec::Vec;
use x86_64::instructions::port::Port;

/// QEMU's firmware configuration device on I/O ports 0x510 (selector) and 0x511 (data).
pub struct FwCfg {
    selector: Port<u16>,
    data: Port<u8>,
}

impl FwCfg {
    const SIGNATURE: u16 = 0x0000;
    const FILE_DIR: u16 = 0x0019;

    /// Finds the device by its "QEMU" signature.
    pub fn probe() -> Option<FwCfg> {
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

    /// The content of the fw_cfg file `name` (at most `max` bytes), if the
    /// device lists it.
    pub fn read_file(&mut self, name: &[u8], max: u32) -> Option<Vec<u8>> {
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
                let mut content = alloc::vec![0u8; size.min(max) as usize];
                self.read(&mut content);
                return Some(content);
            }
        }
        None
    }
}
