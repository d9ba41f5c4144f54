//! The NIC behind a small trait, and its one adapter to smoltcp's `Device`.
//! The adapter also watches ARP traffic for address conflicts (RFC 3927 §2.2.1).
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

pub use crate::drivers::Nic;

/// Largest Ethernet frame handled, in bytes (1500 payload + 14 header).
pub const MAX_FRAME: usize = 1514;

/// An ARP packet seen on the wire (sender and target protocol addresses).
#[derive(Clone, Copy, Debug)]
pub struct ArpSeen {
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Sender IPv4 address (0.0.0.0 in a probe).
    pub sender_ip: [u8; 4],
    /// Target IPv4 address.
    pub target_ip: [u8; 4],
}

/// The smoltcp device over a [`Nic`].
pub struct NicDevice {
    /// The card.
    pub nic: Box<dyn Nic>,
    /// ARP packets seen since the last [`NicDevice::take_arp`].
    arp: Vec<ArpSeen>,
    /// Frames received and sent.
    pub rx_frames: u64,
    /// Frames sent.
    pub tx_frames: u64,
}

impl NicDevice {
    /// Wraps a card.
    pub fn new(nic: Box<dyn Nic>) -> NicDevice {
        NicDevice {
            nic,
            arp: Vec::new(),
            rx_frames: 0,
            tx_frames: 0,
        }
    }

    /// ARP packets seen since the last call.
    pub fn take_arp(&mut self) -> Vec<ArpSeen> {
        core::mem::take(&mut self.arp)
    }

    fn watch(&mut self, frame: &[u8]) {
        // Ethernet type 0x0806, ARP for IPv4 over Ethernet (RFC 826).
        if frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && self.arp.len() < 64 {
            let mut seen = ArpSeen {
                sender_mac: [0; 6],
                sender_ip: [0; 4],
                target_ip: [0; 4],
            };
            seen.sender_mac.copy_from_slice(&frame[22..28]);
            seen.sender_ip.copy_from_slice(&frame[28..32]);
            seen.target_ip.copy_from_slice(&frame[38..42]);
            self.arp.push(seen);
        }
    }
}

/// A received frame.
pub struct RxToken(Vec<u8>);

/// Permission to send one frame.
pub struct TxToken<'a>(&'a mut NicDevice);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let result = f(&mut frame);
        if self.0.nic.transmit(&frame) {
            self.0.tx_frames += 1;
        }
        result
    }
}

impl Device for NicDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let mut buf = vec![0u8; MAX_FRAME + 64];
        let n = self.nic.receive(&mut buf)?;
        buf.truncate(n);
        self.rx_frames += 1;
        self.watch(&buf);
        Some((RxToken(buf), TxToken(self)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(1);
        caps
    }
}

/// An ARP probe (RFC 3927 §2.2.1: sender IP 0.0.0.0) or, with `sender_ip ==
/// target_ip`, an announcement, broadcast from `mac`.
pub fn arp_frame(mac: [u8; 6], sender_ip: [u8; 4], target_ip: [u8; 4]) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4, op 1 (request).
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&sender_ip);
    f[32..38].fill(0);
    f[38..42].copy_from_slice(&target_ip);
    f
}
