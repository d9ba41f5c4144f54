//! Group-join benchmark on QEMU (issue 4): the time from starting the QEMUs of
//! a 3-node LAN to each node's "joining the group" log line, and to `hostd
//! nodes` (one-shot discovery, 1.5 s window) listing all three alive.
//! Run with `cargo bench -p sion-hostd --bench join` as root with QEMU.
//! The simulation figures come from `cargo run -p sion-companion-mgr --example simbench --release`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::fresh_lan;
use qemu_net::lan::UpOptions;
use qemu_net::prereq::{QEMU, unmet};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn main() {
    if let Some(why) = unmet(true, &[QEMU]) {
        eprintln!("benchmark skipped: {why}");
        return;
    }
    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let (lan, run_dir) = fresh_lan("hb");
    let start = Instant::now();
    let opts = UpOptions {
        nodes: 3,
        cpus: Vec::new(),
        memory: vec![256],
        nics: Vec::new(),
        firmware: Vec::new(),
        cmdline: String::new(),
        image,
        wait: None,
        foreground: false,
        userns: false,
        first_mac: 0,
    };
    if let Err(e) = lan.up(&opts) {
        let _ = lan.down();
        panic!("qemu-net up: {e}");
    }
    let mut joined = [None; 3];
    while joined.iter().any(Option::is_none) && start.elapsed() < Duration::from_secs(120) {
        for (i, j) in joined.iter_mut().enumerate() {
            let log =
                std::fs::read_to_string(run_dir.join(format!("node-{i}.log"))).unwrap_or_default();
            if j.is_none() && log.contains("cm: joining the group") {
                *j = Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut listed = None;
    while listed.is_none() && start.elapsed() < Duration::from_secs(120) {
        let cmd: Vec<String> = vec![
            env!("CARGO_BIN_EXE_hostd").into(),
            "--socket".into(),
            run_dir.join("none.sock").display().to_string(),
            "nodes".into(),
        ];
        let out = lan
            .command(&cmd)
            .unwrap()
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text
            .lines()
            .filter(|l| l.contains(" node ") && l.contains("alive"))
            .count()
            == 3
        {
            listed = Some(start.elapsed());
        }
    }
    let _ = lan.down();
    println!("$ cargo bench -p sion-hostd --bench join   (3 nodes, QEMU TCG)");
    for (i, j) in joined.iter().enumerate() {
        println!(
            "node {i}: QEMU start -> 'cm: joining the group': {:.2} s",
            j.map_or(f64::NAN, |d| d.as_secs_f64())
        );
    }
    println!(
        "QEMU start -> hostd nodes lists all 3 alive: {:.2} s",
        listed.map_or(f64::NAN, |d| d.as_secs_f64())
    );
}
