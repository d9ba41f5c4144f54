//! Device drivers: the firmware's ACPI tables (processors), the framebuffer console, PCI
//! enumeration, the NICs (virtio-net through the `virtio-drivers` crate, the Intel 8254x
//! "e1000"), and the [`Nic`] interface the network stack uses.

use alloc::boxed::Box;

pub mod acpi;
pub mod e1000;
pub mod fbcon;
pub mod pci;
pub mod virtio;

/// The node's network card and its PIC line: the first virtio-net function,
/// else the first Intel 8254x. `None` when there is neither.
pub fn probe_nic() -> Option<(Box<dyn Nic>, u8)> {
    if let Some((nic, irq)) = virtio::probe() {
        return Some((Box::new(nic), irq));
    }
    if let Some((nic, irq)) = e1000::probe() {
        return Some((Box::new(nic), irq));
    }
    None
}

/// What the network stack needs from a network card. Drivers drop frames
/// (and count them) rather than panic.
pub trait Nic: Send {
    /// The card's MAC address.
    fn mac(&self) -> [u8; 6];
    /// Copies the next received frame into `buf`; `None` when none is waiting.
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// Sends one frame; `false` if it had to be dropped.
    fn transmit(&mut self, frame: &[u8]) -> bool;
    /// Acknowledges the card's interrupt.
    fn ack_interrupt(&mut self);
}
