//! Address self-configuration with no configuration file: DHCPv4 (smoltcp's
//! DHCP socket) for [`DHCP_WINDOW_NS`]; without an answer, an IPv4 link-local
//! address (RFC 3927) in 169.254.1.0–169.254.254.255 chosen from the MAC,
//! ARP-probed, and another chosen on conflict.
//!
//! The RFC's probe timing (PROBE_WAIT 1 s, 3 probes 1–2 s apart, ANNOUNCE_WAIT
//! 2 s) would take about 6 s; SiON nodes must be addressed within 5 s of boot,
//! so probes are [`PROBE_INTERVAL_NS`] apart. On a LAN that answers ARP within
//! that interval (every switched LAN) a conflict is still detected.
#![forbid(unsafe_code)]

use super::device::{NicDevice, arp_frame};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::wire::{IpCidr, Ipv4Address, Ipv4Cidr};

/// How long DHCP is tried before falling back to link-local (ns).
pub const DHCP_WINDOW_NS: u64 = 1_000_000_000;
/// Time between ARP probes (ns).
pub const PROBE_INTERVAL_NS: u64 = 200_000_000;
/// ARP probes sent before an address is taken (RFC 3927 PROBE_NUM).
pub const PROBE_COUNT: u32 = 3;

/// Where address configuration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a DHCP server until the deadline (ns since boot).
    Dhcp { until: u64 },
    /// Probing `candidate`: `sent` probes so far, the next due at `next`.
    Probing {
        candidate: [u8; 4],
        attempt: u32,
        sent: u32,
        next: u64,
    },
    /// Configured with `address/prefix`.
    Configured {
        address: [u8; 4],
        prefix: u8,
        dhcp: bool,
    },
}

/// The address state machine.
pub struct AddrConfig {
    /// The current phase.
    pub phase: Phase,
    dhcp: SocketHandle,
    mac: [u8; 6],
}

/// The `attempt`-th link-local candidate for `mac`: 169.254.1.0–169.254.254.255,
/// from a hash of the MAC (RFC 3927 §2.1 asks for a pseudo-random choice seeded
/// from the MAC, so a node picks the same address on every boot).
pub fn link_local_candidate(mac: [u8; 6], attempt: u32) -> [u8; 4] {
    sion_kernel_core::linklocal::candidate(mac, attempt)
}

impl AddrConfig {
    /// Starts with DHCP.
    pub fn start(sockets: &mut SocketSet<'static>, mac: [u8; 6], now_ns: u64) -> AddrConfig {
        let dhcp = sockets.add(dhcpv4::Socket::new());
        AddrConfig {
            phase: Phase::Dhcp {
                until: now_ns + DHCP_WINDOW_NS,
            },
            dhcp,
            mac,
        }
    }

    /// The configured address, if any.
    pub fn address(&self) -> Option<([u8; 4], u8)> {
        match self.phase {
            Phase::Configured {
                address, prefix, ..
            } => Some((address, prefix)),
            _ => None,
        }
    }

    /// Advances the state machine: takes a DHCP lease, or probes and claims a
    /// link-local address.
    pub fn advance(
        &mut self,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        device: &mut NicDevice,
        now: u64,
    ) {
        let arp = device.take_arp();
        match self.phase {
            Phase::Dhcp { until } => {
                if let Some(dhcpv4::Event::Configured(config)) =
                    sockets.get_mut::<dhcpv4::Socket>(self.dhcp).poll()
                {
                    let cidr = config.address;
                    self.configure(iface, cidr.address().octets(), cidr.prefix_len(), true);
                } else if now >= until {
                    sockets.remove(self.dhcp);
                    self.phase = Phase::Probing {
                        candidate: link_local_candidate(self.mac, 0),
                        attempt: 0,
                        sent: 0,
                        next: now,
                    };
                }
            }
            Phase::Probing {
                candidate,
                attempt,
                sent,
                next,
            } => {
                // A conflict: someone has the address, or probes for it too.
                let conflict = arp.iter().any(|a| {
                    a.sender_mac != self.mac
                        && (a.sender_ip == candidate
                            || (a.sender_ip == [0; 4] && a.target_ip == candidate))
                });
                if conflict {
                    log::warn!(
                        "net: link-local {} is in use; choosing another",
                        Ipv4Address::from(candidate)
                    );
                    let attempt = attempt + 1;
                    self.phase = Phase::Probing {
                        candidate: link_local_candidate(self.mac, attempt),
                        attempt,
                        sent: 0,
                        next: now,
                    };
                } else if now >= next && sent < PROBE_COUNT {
                    device.nic.transmit(&arp_frame(self.mac, [0; 4], candidate));
                    self.phase = Phase::Probing {
                        candidate,
                        attempt,
                        sent: sent + 1,
                        next: now + PROBE_INTERVAL_NS,
                    };
                } else if now >= next {
                    // Announce (RFC 3927 §2.4) and take it.
                    device
                        .nic
                        .transmit(&arp_frame(self.mac, candidate, candidate));
                    self.configure(iface, candidate, 16, false);
                }
            }
            Phase::Configured { .. } => {}
        }
    }

    fn configure(&mut self, iface: &mut Interface, address: [u8; 4], prefix: u8, dhcp: bool) {
        iface.update_ip_addrs(|addrs| {
            addrs.clear();
            let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(
                Ipv4Address::from(address),
                prefix,
            )));
        });
        self.phase = Phase::Configured {
            address,
            prefix,
            dhcp,
        };
        let how = if dhcp { "DHCP" } else { "link-local" };
        let mac = smoltcp::wire::EthernetAddress(self.mac);
        log::info!(
            "net: configured {}/{prefix} ({how}) on {mac}",
            Ipv4Address::from(address)
        );
    }
}
