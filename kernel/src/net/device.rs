//! The NIC behind a small trait, and its one adapter to smoltcp's `Device`.
//! The adapter also watches ARP traffic for address conflicts (RFC 3927 §2.2.1).
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Ipv4Address,
};

pub use crate::drivers::Nic;

/// Largest Ethernet frame handled, in bytes (1500 payload + 14 header).
pub const MAX_ETHERNET_FRAME: usize = 1514;

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
    arp: heapless::Vec<ArpSeen, ARP_SEEN>,
    /// ARP packets not watched because [`ARP_SEEN`] were already waiting.
    pub arp_dropped: u64,
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
            arp: heapless::Vec::new(),
            arp_dropped: 0,
            rx_frames: 0,
            tx_frames: 0,
        }
    }

    /// ARP packets seen since the last call.
    pub fn take_arp(&mut self) -> heapless::Vec<ArpSeen, ARP_SEEN> {
        core::mem::take(&mut self.arp)
    }

    /// Remembers an ARP packet for IPv4 over Ethernet (RFC 826) in `frame`,
    /// parsed by `smoltcp::wire`; counts those it has no room for.
    fn watch(&mut self, frame: &[u8]) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        if eth.ethertype() != EthernetProtocol::Arp {
            return;
        }
        let Ok(ArpRepr::EthernetIpv4 {
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p))
        else {
            return;
        };
        let seen = ArpSeen {
            sender_mac: source_hardware_addr.0,
            sender_ip: source_protocol_addr.octets(),
            target_ip: target_protocol_addr.octets(),
        };
        if self.arp.push(seen).is_err() {
            self.arp_dropped += 1;
            if self.arp_dropped.is_power_of_two() {
                log::warn!(
                    "net: {} ARP packets not watched (queue of {ARP_SEEN} full)",
                    self.arp_dropped
                );
            }
        }
    }
}

/// ARP packets remembered between two looks of address configuration.
pub const ARP_SEEN: usize = 64;
/// Receive buffer size: a frame plus room for a VLAN tag and slack.
const RX_BUFFER: usize = MAX_ETHERNET_FRAME + 64;

/// A received frame, held in place: the receive path runs in interrupt
/// context, where the kernel does not allocate.
pub struct RxToken(heapless::Vec<u8, RX_BUFFER>);

/// Permission to send one frame.
pub struct TxToken<'a>(&'a mut NicDevice);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // smoltcp asks for at most the MTU (`MAX_ETHERNET_FRAME`, see `capabilities`).
        let mut buf = [0u8; MAX_ETHERNET_FRAME];
        let frame = &mut buf[..len.min(MAX_ETHERNET_FRAME)];
        let result = f(frame);
        if self.0.nic.transmit(frame) {
            self.0.tx_frames += 1;
        }
        result
    }
}

impl Device for NicDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let mut buf = heapless::Vec::<u8, RX_BUFFER>::new();
        buf.resize_default(RX_BUFFER).ok()?;
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
        caps.max_transmission_unit = MAX_ETHERNET_FRAME;
        caps.max_burst_size = Some(1);
        caps
    }
}

/// Length of an ARP request for IPv4 over Ethernet in its Ethernet frame.
pub const ARP_FRAME_LEN: usize = 42;

/// An ARP probe (RFC 3927 §2.2.1: sender IP 0.0.0.0) or, with `sender_ip ==
/// target_ip`, an announcement, broadcast from `mac`; built with
/// `smoltcp::wire` (RFC 826 request, target hardware address zero).
pub fn arp_frame(mac: [u8; 6], sender_ip: [u8; 4], target_ip: [u8; 4]) -> [u8; ARP_FRAME_LEN] {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: Ipv4Address::from(sender_ip),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: Ipv4Address::from(target_ip),
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(mac),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let mut f = [0u8; ARP_FRAME_LEN];
    let mut frame = EthernetFrame::new_unchecked(&mut f[..]);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    f
}
