//! Network interfaces: listing them, choosing the one to join the group on, and
//! `hostd`'s node id and broadcast address on it.
//!
//! The list comes from `getifaddrs(3)`, which asks the kernel over netlink and so
//! sees the caller's network namespace (`qemu-net exec` runs `hostd` inside the
//! LAN's namespace, where `/sys/class/net` may still show the outer namespace).
//! The MAC address comes from the interface's `AF_PACKET` entry, falling back to
//! `/sys/class/net/IF/address`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use sion_companion_mgr::NodeId;

/// One network interface as `hostd` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Name, e.g. `br0`, `eth0`.
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// The loopback interface (`IFF_LOOPBACK`).
    pub loopback: bool,
    /// First IPv4 address and its prefix length, if any.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// Hardware (MAC) address, if the interface has one.
    pub mac: Option<[u8; 6]>,
}

impl Interface {
    /// The subnet broadcast address of the interface's IPv4 address, e.g.
    /// `169.254.255.255` for `169.254.0.1/16`; `None` without an address.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        self.ipv4.map(|(ip, prefix)| subnet_broadcast(ip, prefix))
    }

    /// True when `hostd` can join on it without being told to: up, not loopback,
    /// with an IPv4 address.
    pub fn is_usable(&self) -> bool {
        self.up && !self.loopback && self.ipv4.is_some()
    }

    /// `hostd`'s node id on this interface: [`NodeId::from_mac`] of its MAC. An
    /// interface without a usable MAC (none, or all zeros: tun devices, loopback)
    /// gets a locally administered stand-in `02:00:a:b:c:d` from its IPv4 address
    /// `a.b.c.d`, so the id is still stable and unique on the LAN.
    pub fn node_id(&self) -> NodeId {
        match self.mac {
            Some(mac) if mac != [0; 6] => NodeId::from_mac(mac),
            _ => {
                let [a, b, c, d] = self.ipv4.map_or([0; 4], |(ip, _)| ip.octets());
                NodeId::from_mac([0x02, 0, a, b, c, d])
            }
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        match self.ipv4 {
            Some((ip, prefix)) => write!(f, " ({ip}/{prefix}")?,
            None => write!(f, " (no IPv4 address")?,
        }
        if !self.up {
            write!(f, ", down")?;
        }
        if self.loopback {
            write!(f, ", loopback")?;
        }
        write!(f, ")")
    }
}

/// The broadcast address of `ip/prefix` (all host bits set).
pub fn subnet_broadcast(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    Ipv4Addr::from(u32::from(ip) | !mask)
}

/// Why no interface could be chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IfaceError {
    /// `--iface NAME` names no interface.
    #[error("there is no network interface `{name}`; interfaces: {}", list(.all))]
    NotFound {
        /// The name asked for.
        name: String,
        /// Every interface there is.
        all: Vec<Interface>,
    },
    /// The named interface is down.
    #[error("network interface `{0}` is down; bring it up or pass another --iface")]
    Down(String),
    /// The named interface has no IPv4 address.
    #[error(
        "network interface `{0}` has no IPv4 address; SiON nodes use IPv4 (DHCP or 169.254/16 link-local), give it one or pass another --iface"
    )]
    NoAddress(String),
    /// No interface is up, non-loopback and with an IPv4 address.
    #[error(
        "no usable network interface: none is up with an IPv4 address besides loopback (interfaces: {}); connect to the nodes' LAN, or run inside it (`qemu-net exec -- hostd ...`), or pass --iface",
        list(.0)
    )]
    NoneUsable(Vec<Interface>),
    /// Several interfaces qualify.
    #[error(
        "several network interfaces could reach SiON nodes: {}; pass --iface NAME to choose one",
        list(.0)
    )]
    Several(Vec<Interface>),
}

fn list(ifaces: &[Interface]) -> String {
    if ifaces.is_empty() {
        return "none".into();
    }
    ifaces
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Chooses the interface to join on from `all`.
///
/// With `wanted`, that interface, which must exist, be up and have an IPv4
/// address (loopback is allowed when named explicitly). Without, the only
/// [usable](Interface::is_usable) interface.
///
/// # Errors
/// [`IfaceError`] saying what is wrong and listing the interfaces.
pub fn choose(all: &[Interface], wanted: Option<&str>) -> Result<Interface, IfaceError> {
    if let Some(name) = wanted {
        let Some(i) = all.iter().find(|i| i.name == name) else {
            return Err(IfaceError::NotFound {
                name: name.into(),
                all: all.to_vec(),
            });
        };
        if !i.up {
            return Err(IfaceError::Down(name.into()));
        }
        if i.ipv4.is_none() {
            return Err(IfaceError::NoAddress(name.into()));
        }
        return Ok(i.clone());
    }
    let usable: Vec<&Interface> = all.iter().filter(|i| i.is_usable()).collect();
    match usable.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(IfaceError::NoneUsable(all.to_vec())),
        several => Err(IfaceError::Several(
            several.iter().map(|i| (*i).clone()).collect(),
        )),
    }
}

/// Lists the interfaces of the current network namespace, in name order.
///
/// # Errors
/// `getifaddrs(3)` failing.
pub fn list_interfaces() -> Result<Vec<Interface>> {
    let mut by_name: BTreeMap<String, Interface> = BTreeMap::new();
    for a in getifaddrs().context("listing network interfaces (getifaddrs)")? {
        let entry = by_name
            .entry(a.interface_name.clone())
            .or_insert_with(|| Interface {
                name: a.interface_name.clone(),
                up: a.flags.contains(InterfaceFlags::IFF_UP),
                loopback: a.flags.contains(InterfaceFlags::IFF_LOOPBACK),
                ipv4: None,
                mac: None,
            });
        let Some(addr) = a.address else { continue };
        if let Some(sin) = addr.as_sockaddr_in() {
            if entry.ipv4.is_none() {
                let prefix = a
                    .netmask
                    .and_then(|m| m.as_sockaddr_in().map(|m| m.ip()))
                    .map_or(32, |m| u32::from(m).count_ones() as u8);
                entry.ipv4 = Some((sin.ip(), prefix));
            }
        } else if let Some(link) = addr.as_link_addr()
            && entry.mac.is_none()
        {
            entry.mac = link.addr();
        }
    }
    for i in by_name.values_mut() {
        if i.mac.is_none() {
            i.mac = sys_mac(&i.name);
        }
    }
    Ok(by_name.into_values().collect())
}

/// The MAC of `name` from `/sys/class/net/NAME/address`, if readable.
fn sys_mac(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    parse_mac(text.trim())
}

/// Parses `aa:bb:cc:dd:ee:ff` (hex, case-insensitive).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, up: bool, lo: bool, ip: Option<([u8; 4], u8)>) -> Interface {
        Interface {
            name: name.into(),
            up,
            loopback: lo,
            ipv4: ip.map(|(a, p)| (Ipv4Addr::from(a), p)),
            mac: if lo {
                Some([0; 6])
            } else {
                Some([0x0a, 0, 0, 0, 0, name.len() as u8])
            },
        }
    }

    /// Inside a qemu-net LAN: loopback, the bridge with the host address, and
    /// taps without addresses.
    fn qemu_lan() -> Vec<Interface> {
        vec![
            iface("br0", true, false, Some(([169, 254, 0, 1], 16))),
            iface("lo", true, true, Some(([127, 0, 0, 1], 8))),
            iface("tap0", true, false, None),
            iface("tap1", true, false, None),
        ]
    }

    #[test]
    fn picks_the_one_obvious_interface() {
        let chosen = choose(&qemu_lan(), None).unwrap();
        assert_eq!(chosen.name, "br0");
        assert_eq!(chosen.broadcast(), Some(Ipv4Addr::new(169, 254, 255, 255)));
        // Down interfaces do not count.
        let mut l = qemu_lan();
        l.push(iface("eth1", false, false, Some(([10, 0, 0, 2], 24))));
        assert_eq!(choose(&l, None).unwrap().name, "br0");
    }

    #[test]
    fn several_or_none_are_errors_that_list_interfaces() {
        let mut l = qemu_lan();
        l.push(iface("eth0", true, false, Some(([192, 168, 1, 20], 24))));
        let e = choose(&l, None).unwrap_err();
        assert!(matches!(&e, IfaceError::Several(v) if v.len() == 2));
        let text = e.to_string();
        assert!(text.contains("br0 (169.254.0.1/16)"), "{text}");
        assert!(text.contains("eth0 (192.168.1.20/24)"), "{text}");
        assert!(text.contains("--iface"), "{text}");
        // ...and --iface settles it.
        assert_eq!(choose(&l, Some("eth0")).unwrap().name, "eth0");

        let only_lo = vec![
            iface("lo", true, true, Some(([127, 0, 0, 1], 8))),
            iface("eth0", true, false, None),
        ];
        let e = choose(&only_lo, None).unwrap_err();
        assert!(matches!(e, IfaceError::NoneUsable(_)));
        let text = e.to_string();
        assert!(text.contains("eth0 (no IPv4 address)"), "{text}");
        assert!(text.contains("lo (127.0.0.1/8, loopback)"), "{text}");
        assert!(matches!(choose(&[], None), Err(IfaceError::NoneUsable(_))));
    }

    #[test]
    fn explicit_choice_is_checked() {
        let mut l = qemu_lan();
        l.push(iface("eth9", false, false, Some(([10, 0, 0, 2], 24))));
        assert!(matches!(
            choose(&l, Some("wlan0")),
            Err(IfaceError::NotFound { .. })
        ));
        assert!(
            choose(&l, Some("wlan0"))
                .unwrap_err()
                .to_string()
                .contains("tap1 (no IPv4 address)")
        );
        assert_eq!(
            choose(&l, Some("eth9")),
            Err(IfaceError::Down("eth9".into()))
        );
        assert_eq!(
            choose(&l, Some("tap0")),
            Err(IfaceError::NoAddress("tap0".into()))
        );
        // Loopback is allowed when asked for by name.
        let lo = choose(&l, Some("lo")).unwrap();
        assert_eq!(lo.broadcast(), Some(Ipv4Addr::new(127, 255, 255, 255)));
    }

    #[test]
    fn broadcast_addresses_and_node_ids() {
        let b = |ip: [u8; 4], p| subnet_broadcast(Ipv4Addr::from(ip), p);
        assert_eq!(b([192, 168, 1, 20], 24), Ipv4Addr::new(192, 168, 1, 255));
        assert_eq!(b([10, 1, 2, 3], 8), Ipv4Addr::new(10, 255, 255, 255));
        assert_eq!(b([10, 1, 2, 3], 32), Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(b([10, 1, 2, 3], 0), Ipv4Addr::BROADCAST);
        assert_eq!(b([10, 1, 2, 3], 31), Ipv4Addr::new(10, 1, 2, 3));

        let mut i = iface("br0", true, false, Some(([169, 254, 0, 1], 16)));
        i.mac = Some([0x52, 0x54, 0, 0xab, 0xcd, 0xef]);
        assert_eq!(i.node_id().to_string(), "52:54:00:ab:cd:ef");
        i.mac = None;
        assert_eq!(i.node_id().to_string(), "02:00:a9:fe:00:01");
        i.mac = Some([0; 6]);
        assert_eq!(i.node_id().to_string(), "02:00:a9:fe:00:01");
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("52:54:00:AB:cd:0f"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 0x0f])
        );
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01",
            "52:54:00:ab:cd:xx",
            "525:4:00:ab:cd:ef",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn lists_this_machines_interfaces() {
        // Every Linux namespace has at least loopback.
        let all = list_interfaces().unwrap();
        let lo = all.iter().find(|i| i.loopback).expect("loopback");
        if let Some((ip, _)) = lo.ipv4 {
            assert!(ip.is_loopback(), "{lo}");
        }
    }
}
