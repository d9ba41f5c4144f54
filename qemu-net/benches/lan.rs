//! Network benchmark (issue 3): from the host inside a qemu-net LAN, the UDP
//! round-trip time to a node (median and p99 over 1000 pings of its kernel)
//! and TCP throughput host→node and node→host for 1 MiB and 16 MiB (to the
//! `t-netd` bulk service). Run with `cargo bench -p qemu-net --bench lan`
//! (as root, with QEMU); it prints the figures and the commands behind them.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{NETPROBE, TestLan, test_image};

fn main() {
    if let Some(why) = qemu_net::prereq::unmet(true, &[qemu_net::prereq::QEMU]) {
        eprintln!("benchmark skipped: {why}");
        return;
    }
    let lan = TestLan::new("bench");
    let addr = lan.up_test_nodes(1, "init=t-netd").remove(0);
    let figures = lan.probe(&["bench", "--to", &addr, "--probes", "1000"]);
    println!(
        "$ qemu-net up --image {} --nodes 1 --cmdline init=t-netd --wait",
        test_image().display()
    );
    println!("$ qemu-net exec -- {NETPROBE} bench --to {addr} --probes 1000");
    print!("{figures}");
    println!("(QEMU TCG on this machine; SION_QEMU_ACCEL=kvm selects KVM)");
}
