//! Reads a node's serial log for the address its kernel configured.
//!
//! The kernel logs `net: configured 169.254.x.y/16 (link-local) on 52:54:00:…`
//! (or the DHCP-given address) once its network is up; the address is the
//! word after `configured `, before the `/`.

use std::net::Ipv4Addr;
use std::path::Path;

/// The text that marks a configured network in a node's serial log.
pub const CONFIGURED_MARKER: &str = "net: configured ";

/// The address from the last complete `net: configured A.B.C.D/LEN` in `log`
/// (a later line wins: the node may have reconfigured). `None` when there is
/// none, or the only one is still being written (no `/` after it yet).
pub fn configured_address(log: &str) -> Option<Ipv4Addr> {
    log.rmatch_indices(CONFIGURED_MARKER).find_map(|(at, _)| {
        let rest = &log[at + CONFIGURED_MARKER.len()..];
        let (addr, _) = rest.split_once('/')?;
        addr.parse().ok()
    })
}

/// [`configured_address`] of the log file at `path`; `None` if it cannot be
/// read (not yet created) or has no such line. Invalid UTF-8 is tolerated.
pub fn read_configured_address(path: &Path) -> Option<Ipv4Addr> {
    let bytes = std::fs::read(path).ok()?;
    configured_address(&String::from_utf8_lossy(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_after_configured() {
        let log = "boot\r\n[ INFO] net: configured 169.254.23.7/16 (link-local) on 52:54:00:53:4e:01\r\nmore\n";
        assert_eq!(
            configured_address(log),
            Some(Ipv4Addr::new(169, 254, 23, 7))
        );
        let dhcp = "net: configured 10.0.2.15/24 (dhcp) on 52:54:00:53:4e:00\n";
        assert_eq!(configured_address(dhcp), Some(Ipv4Addr::new(10, 0, 2, 15)));
    }

    #[test]
    fn the_last_line_wins() {
        let log = "net: configured 169.254.1.1/16 (link-local) on m\n\
                   net: conflict\n\
                   net: configured 169.254.9.9/16 (link-local) on m\n";
        assert_eq!(configured_address(log), Some(Ipv4Addr::new(169, 254, 9, 9)));
    }

    #[test]
    fn partial_or_missing_lines_give_nothing() {
        assert_eq!(configured_address(""), None);
        assert_eq!(configured_address("net: probing 169.254.1.1\n"), None);
        assert_eq!(configured_address("net: configured 169.25"), None);
        assert_eq!(configured_address("net: configured garbage/16"), None);
        // A complete earlier line still counts when a later one is cut short.
        let log = "net: configured 169.254.1.2/16 (link-local)\nnet: configured 169.2";
        assert_eq!(configured_address(log), Some(Ipv4Addr::new(169, 254, 1, 2)));
    }

    #[test]
    fn reads_files_and_tolerates_missing_ones() {
        let dir = std::env::temp_dir().join(format!("qemu-net-logscan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node-0.log");
        assert_eq!(read_configured_address(&path), None);
        std::fs::write(
            &path,
            b"\xff\xfe junk\nnet: configured 169.254.200.3/16 (link-local) on x\n",
        )
        .unwrap();
        assert_eq!(
            read_configured_address(&path),
            Some(Ipv4Addr::new(169, 254, 200, 3))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
