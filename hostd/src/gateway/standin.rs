//! Taking and giving back stand-in addresses on the LAN's interface, with
//! iproute2's `ip address` (the tool the project already needs for its test
//! LANs; the gateway prints each change it makes).
//!
//! A stand-in is a `/32` address on the interface: the kernel answers ARP
//! for it on the LAN, and adding it changes no route (the LAN's subnet route
//! stays the interface's own address's). Needs `CAP_NET_ADMIN` (root).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

/// `ip address add IP/32 dev IFACE`.
pub fn add_argv(iface: &str, ip: Ipv4Addr) -> Vec<String> {
    ["ip", "address", "add", &format!("{ip}/32"), "dev", iface]
        .map(String::from)
        .to_vec()
}

/// `ip address del IP/32 dev IFACE`.
pub fn del_argv(iface: &str, ip: Ipv4Addr) -> Vec<String> {
    ["ip", "address", "del", &format!("{ip}/32"), "dev", iface]
        .map(String::from)
        .to_vec()
}

/// Runs `argv` and waits (async).
///
/// # Errors
/// The program could not start or failed (its stderr in the message).
pub async fn run(argv: &[String]) -> Result<()> {
    let out = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .await
        .with_context(|| format!("running `{}`", argv.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The stand-in addresses this gateway added, removed from the interface
/// when it drops (at the end of `hostd gateway`, on an error too; a gateway
/// killed with SIGKILL leaves them: `ip address del` them by hand).
#[derive(Clone, Debug)]
pub struct Held {
    iface: String,
    ips: Arc<Mutex<Vec<Ipv4Addr>>>,
}

impl Held {
    /// None held yet on `iface`.
    pub fn new(iface: &str) -> Held {
        Held {
            iface: iface.to_string(),
            ips: Arc::default(),
        }
    }

    /// Records `ip` as added.
    pub fn push(&self, ip: Ipv4Addr) {
        self.ips.lock().unwrap_or_else(|e| e.into_inner()).push(ip);
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.ips.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every held address from the interface (synchronously); how
    /// many were removed.
    pub fn release_all(&self) -> usize {
        let ips = std::mem::take(&mut *self.ips.lock().unwrap_or_else(|e| e.into_inner()));
        let mut removed = 0;
        for ip in ips {
            let argv = del_argv(&self.iface, ip);
            match Command::new(&argv[0]).args(&argv[1..]).output() {
                Ok(o) if o.status.success() => removed += 1,
                Ok(o) => eprintln!(
                    "hostd gateway: `{}` failed: {}",
                    argv.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => eprintln!("hostd gateway: `{}`: {e}", argv.join(" ")),
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_take_and_give_back_one_host_address() {
        let ip = Ipv4Addr::new(169, 254, 255, 7);
        assert_eq!(
            add_argv("br0", ip).join(" "),
            "ip address add 169.254.255.7/32 dev br0"
        );
        assert_eq!(
            del_argv("br0", ip).join(" "),
            "ip address del 169.254.255.7/32 dev br0"
        );
        let held = Held::new("no-such-interface-sion");
        assert!(held.is_empty());
        // Not added, so removing fails and is reported, not fatal.
        held.push(ip);
        assert_eq!(held.len(), 1);
        assert_eq!(held.release_all(), 0);
        assert!(held.is_empty());
    }
}
