//! The nodes' networking on a qemu-net LAN (issue 3): self-configured
//! link-local addresses, SiON network IPC by broadcast, TCP streams to a node
//! process, and robustness against malformed datagrams. Host-side probes run
//! inside the LAN through `qemu-net exec -- netprobe …`.
//!
//! They need root and QEMU (CI has both); otherwise they print why and pass.

mod common;

use common::{TestLan, must_skip, serial};

/// Seconds since boot at which the node logged its address.
fn configured_at(log: &str) -> f64 {
    let line = log
        .lines()
        .find(|l| l.contains("net: configured"))
        .unwrap_or_else(|| panic!("no address in\n{log}"));
    let stamp = line
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap()
        .trim();
    stamp
        .parse()
        .unwrap_or_else(|_| panic!("bad time stamp in {line:?}"))
}

/// Three nodes get distinct link-local addresses within 5 s of boot, and one
/// broadcast probe from the host is answered by every node.
#[test]
fn three_nodes_self_configure_and_answer_one_broadcast() {
    if must_skip() {
        return;
    }
    let _one_at_a_time = serial();
    let lan = TestLan::new("addr");
    let addresses = lan.up_test_nodes(3, "");
    assert_eq!(addresses.len(), 3, "{addresses:?}");
    for (i, a) in addresses.iter().enumerate() {
        let octets: Vec<u8> = a.split('.').map(|o| o.parse().unwrap()).collect();
        assert_eq!(&octets[..2], &[169, 254], "node {i}: {a} is not link-local");
        assert!(
            (1..=254).contains(&octets[2]),
            "node {i}: {a} outside 169.254.1.0-169.254.254.255 (RFC 3927)"
        );
        let at = configured_at(&lan.log(i));
        assert!(at <= 5.0, "node {i} took {at} s after boot to get {a}");
        assert!(
            lan.log(i).contains("(link-local)"),
            "node {i} should not have found a DHCP server"
        );
    }
    let mut distinct = addresses.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "addresses collide: {addresses:?}");

    let out = lan.probe(&["ping", "--expect", "3", "--timeout-ms", "2000"]);
    let answered: Vec<&str> = out.lines().filter(|l| l.starts_with("pong ")).collect();
    assert_eq!(answered.len(), 3, "{out}");
    for a in &addresses {
        assert!(
            answered.iter().any(|l| l.contains(&format!("addr={a} "))),
            "no pong from {a}:\n{out}"
        );
    }
}

/// 1 MiB sent over TCP to a node process and echoed back arrives intact, and
/// a node flooded with malformed datagrams (random bytes, truncated headers,
/// wrong version, wrong cluster) keeps answering and counts every drop.
#[test]
fn tcp_echo_is_intact_and_a_flood_is_counted_not_fatal() {
    if must_skip() {
        return;
    }
    let _one_at_a_time = serial();
    let lan = TestLan::new("tcp");
    let addr = lan.up_test_nodes(1, "init=t-netd").remove(0);
    let out = lan.probe(&["tcp-echo", "--to", &addr, "--bytes", "1048576"]);
    let summary = out
        .lines()
        .find(|l| l.starts_with("tcp-echo: sent"))
        .expect("a summary line");
    // Checksums of what was sent and what came back, compared.
    let sums: Vec<&str> = summary.split("fnv1a ").skip(1).map(|s| &s[..16]).collect();
    assert_eq!(sums.len(), 2, "{summary}");
    assert_eq!(sums[0], sums[1], "{summary}");
    assert!(summary.contains("got back 1048576 bytes"), "{summary}");
    assert!(out.contains("tcp-echo: intact"), "{out}");

    let count = 200;
    let out = lan.probe(&["flood", "--to", &addr, "--count", &count.to_string()]);
    let line = out
        .lines()
        .find(|l| l.starts_with("flood: node still answers"))
        .unwrap_or_else(|| panic!("{out}"));
    let counter = |name: &str| -> u64 {
        let at = line
            .find(&format!(" {name}="))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            + name.len()
            + 2;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // Malformed datagrams of every kind are dropped and counted. A few may be
    // lost before the stack sees them (the NIC's queue is finite), so allow 10%.
    let sent = 4 * count;
    assert!(counter("dropped_total") * 10 >= sent * 9, "{line}");
    assert!(counter("dropped_total") <= sent, "{line}");
    for kind in ["truncated", "magic", "version", "cluster"] {
        assert!(counter(kind) > 0, "no {kind} drops counted: {line}");
    }
    // The node's TCP service still works after the flood.
    let out = lan.probe(&["tcp-echo", "--to", &addr, "--bytes", "65536"]);
    assert!(out.contains("tcp-echo: intact"), "{out}");
}
