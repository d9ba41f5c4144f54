//! Real machines (issue 16): nodes started by UEFI firmware and nodes with
//! Intel e1000 cards join the same group as BIOS/virtio nodes and run jobs.
//! One qemu-net LAN of three nodes:
//! - node 0: BIOS (SeaBIOS), virtio-net — the image every other test boots;
//! - node 1: UEFI (OVMF) booting `sion-uefi.img`, virtio-net, two
//!   processors;
//! - node 2: BIOS, e1000 (82540EM, PCI 8086:100e), two processors (QEMU
//!   `-smp 2`, `qemu-net up --cpus`).
//!
//! Checked: each node logs the firmware path and driver it took and the
//! processors the firmware's ACPI tables list and that it runs on all of
//! them, under both firmwares; its NIC interrupts the first CPU through the
//! 8259 PIC (one CPU) or the I/O APIC (two); `hostd nodes`
//! lists all three alive; `hostd submit --node` runs a static busybox on each
//! (uploaded through that node's card) with the host's output.
//!
//! Needs root, QEMU, OVMF and busybox-static (CI has them); otherwise it
//! prints why and passes (fails under SION_REQUIRE_ALL=1).

mod common;

use common::{BootedLan, alive_nodes};
use qemu_net::plan::NicModel;
use qemu_net::prereq::{BUSYBOX_STATIC, OVMF, QEMU, must_skip};
use sion_hostd::model::NodesReport;
use sion_image::Firmware;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");
/// The node ids (from the MACs qemu-net gives) of nodes 0, 1 and 2.
const NODES: [&str; 3] = [
    "52:54:00:53:4e:00",
    "52:54:00:53:4e:01",
    "52:54:00:53:4e:02",
];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn uefi_and_e1000_nodes_join_a_bios_virtio_node_and_run_jobs() {
    if must_skip(true, &[QEMU, OVMF, BUSYBOX_STATIC]) {
        return;
    }
    let image = sion_image::build(sion_image::Flavor::Node).expect("building target/sion.img");
    assert!(
        image.uefi_path.is_file(),
        "no UEFI image at {}",
        image.uefi_path.display()
    );
    let started = Instant::now();
    let booted = BootedLan::boot_options(
        "hw",
        &qemu_net::lan::UpOptions {
            nodes: 3,
            cpus: vec![1, 2, 2],
            memory: vec![256],
            nics: vec![NicModel::Virtio, NicModel::Virtio, NicModel::E1000],
            firmware: vec![Firmware::Bios, Firmware::Uefi, Firmware::Bios],
            cmdline: String::new(),
            image: image.path,
            wait: Some(Duration::from_secs(90)),
            foreground: false,
            userns: false,
            first_mac: 0,
        },
    );
    eprintln!(
        "bios/virtio, uefi/virtio with 2 cpus, bios/e1000 with 2 cpus have addresses after {:?}",
        started.elapsed()
    );

    // Each node took the path it was given.
    let logs: Vec<String> = (0..3).map(|i| booted.log(i)).collect();
    assert!(logs[0].contains("pci: virtio-net"), "node 0:\n{}", logs[0]);
    assert!(logs[1].contains("pci: virtio-net"), "node 1:\n{}", logs[1]);
    assert!(
        logs[2].contains("pci: e1000 (82540EM)") && logs[2].contains("e1000: 82540EM started"),
        "node 2:\n{}",
        logs[2]
    );
    assert!(!logs[2].contains("virtio-net"), "node 2:\n{}", logs[2]);
    // The processors in the MADT, under both firmwares.
    for (i, n) in [(0, 1), (1, 2), (2, 2)] {
        assert!(
            logs[i].contains(&format!("acpi: {n} processor(s) in the MADT"))
                && logs[i].contains(&format!("cpus: {n} found, SiON runs on {n};")),
            "node {i}:\n{}",
            logs[i]
        );
    }
    let qemu_cmd = |i: usize| {
        std::fs::read_to_string(booted.run_dir.join("state.json")).unwrap_or_default()
            + &std::fs::read_to_string(booted.run_dir.join(format!("node-{i}.qemu.log")))
                .unwrap_or_default()
    };
    for (i, log) in logs.iter().enumerate() {
        assert!(
            log.contains("net: configured"),
            "node {i} has no address:\n{log}\n{}",
            qemu_cmd(i)
        );
    }

    // One group: hostd sees all three alive (it joins as a member itself).
    let nodes = |b: &BootedLan| -> Option<NodesReport> {
        let cmd: Vec<String> = vec![HOSTD.into(), "nodes".into(), "--json".into()];
        let out = b.run(&cmd, Path::new("/"), b"", &[]);
        serde_json::from_slice(&out.stdout).ok()
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut alive = Vec::new();
    while Instant::now() < deadline {
        if let Some(report) = nodes(&booted) {
            alive = alive_nodes(&report);
            if alive.len() == 3 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        alive.len(),
        3,
        "alive: {alive:?}\n{}\n{}\n{}",
        booted.log(0),
        booted.log(1),
        booted.log(2)
    );
    for i in 1..3 {
        assert!(
            booted.log(i).contains("cm: joining the group"),
            "node {i}:\n{}",
            booted.log(i)
        );
    }
    eprintln!("one group of 3 after {:?}", started.elapsed());

    // A job on each node: busybox (about 1 MiB) is uploaded through that
    // node's card and reads a file back through it.
    let job = booted.run_dir.join("job");
    std::fs::create_dir_all(&job).unwrap();
    std::fs::copy("/bin/busybox", job.join("busybox")).unwrap();
    let data: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(job.join("data.txt"), &data).unwrap();
    let host = Command::new("/bin/busybox")
        .args(["sha256sum", "data.txt"])
        .current_dir(&job)
        .output()
        .unwrap();
    assert!(host.status.success());
    for (i, node) in NODES.iter().enumerate() {
        let t = Instant::now();
        let cmd: Vec<String> = [
            HOSTD,
            "submit",
            "--node",
            node,
            "./busybox",
            "sha256sum",
            "data.txt",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = booted.run(&cmd, &job, b"", &[]);
        assert_eq!(
            (out.status.code(), text(&out.stdout)),
            (Some(0), text(&host.stdout)),
            "node {i} ({node}): {}\n{}",
            text(&out.stderr),
            booted.log(i)
        );
        eprintln!("job on node {i}: {:?}", t.elapsed());
    }
    // Device interrupts: through the 8259 PIC on the one-CPU node, through
    // the I/O APIC on the others (a PCI line: level-triggered, as the
    // MADT's override or the PCI bus says), under both firmwares and with
    // both cards; each NIC keeps interrupting the first CPU.
    for (i, controller) in [
        (0, "the 8259 PIC"),
        (1, "the I/O APIC"),
        (2, "the I/O APIC"),
    ] {
        let log = booted.log(i);
        let route = log
            .lines()
            .find(|l| l.contains("irq: line "))
            .unwrap_or_else(|| panic!("node {i} logged no interrupt route:\n{log}"));
        assert!(
            route.contains(&format!("through {controller}")),
            "node {i}: {route}\n{log}"
        );
        if i > 0 {
            assert!(route.contains("(level, active "), "node {i}: {route}");
            assert!(log.contains("ioapic: I/O APIC "), "node {i}:\n{log}");
        }
        // A line whose end of interrupt failed would interrupt once only.
        assert!(
            log.contains("net: NIC interrupt 100, on cpu 0"),
            "node {i}'s NIC did not interrupt 100 times:\n{log}"
        );
    }
}
