//! Device drivers: the framebuffer console, PCI enumeration and the virtio-net NIC (through the
//! `virtio-drivers` crate), and the [`Nic`] interface the network stack uses.

pub mod fbcon;
pub mod pci;
pub mod virtio;

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
