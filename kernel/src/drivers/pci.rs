//! PCI configuration space through the legacy I/O ports 0xCF8/0xCFC
//! ("configuration mechanism #1", PCI Local Bus Specification 3.0 §3.2.2.3.2),
//! as the `virtio-drivers` crate's [`ConfigurationAccess`].

use spin::Mutex;
use virtio_drivers::transport::pci::bus::{
    ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, PciRoot,
};
use x86_64::instructions::port::Port;

const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;

/// Serialises the two-step address/data access.
static PORTS: Mutex<()> = Mutex::new(());

/// Configuration access through ports 0xCF8/0xCFC.
pub struct PortCam;

impl PortCam {
    fn address(df: DeviceFunction, offset: u8) -> u32 {
        0x8000_0000
            | (u32::from(df.bus) << 16)
            | (u32::from(df.device) << 11)
            | (u32::from(df.function) << 8)
            | u32::from(offset & 0xFC)
    }
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        let _guard = PORTS.lock();
        // SAFETY: 0xCF8/0xCFC are the PCI configuration ports of every PC; the
        // lock keeps the address and data accesses together.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(Self::address(df, offset));
            Port::<u32>::new(CONFIG_DATA).read()
        }
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        let _guard = PORTS.lock();
        // SAFETY: as in `read_word`.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(Self::address(df, offset));
            Port::<u32>::new(CONFIG_DATA).write(data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

/// The PCI root complex.
pub fn root() -> PciRoot<PortCam> {
    PciRoot::new(PortCam)
}

/// Every function on buses 0–255, with its identification.
pub fn devices() -> impl Iterator<Item = (DeviceFunction, DeviceFunctionInfo)> {
    let root = root();
    (0..=255u8).flat_map(move |bus| root.enumerate_bus(bus).collect::<alloc::vec::Vec<_>>())
}

/// The interrupt line (PIC IRQ) the firmware assigned to a function
/// (configuration offset 0x3C).
pub fn interrupt_line(df: DeviceFunction) -> u8 {
    PortCam.read_word(df, 0x3C) as u8
}
