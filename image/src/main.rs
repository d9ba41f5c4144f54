//! `sion-image`: builds `target/sion.img` and `target/sion-uefi.img` (or the
//! test images) and optionally boots one as a node in QEMU with its serial log
//! on the terminal.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use clap::Parser;
use sion_image::{Firmware, Flavor, build_with, firmware_args, qemu_args};
use std::process::Command;

/// Build SiON's bootable disk image; with `--boot`, run it as one node in QEMU.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Build the test image (adds the test processes) instead of the node image.
    #[arg(long)]
    test: bool,
    /// Build the cluster key in this file (made by `hostd keygen`; one key a
    /// line, the first signing) into the image: its nodes form an
    /// authenticated group. Without it they run an open group.
    #[arg(long, value_name = "FILE")]
    key: Option<std::path::PathBuf>,
    /// Boot the image in QEMU after building it and show the node's log.
    #[arg(long)]
    boot: bool,
    /// With --boot: start the node with UEFI firmware (OVMF) from the UEFI image.
    #[arg(long, requires = "boot")]
    uefi: bool,
    /// With --boot: open a window showing the node's screen.
    #[arg(long, requires = "boot")]
    display: bool,
    /// With --boot: stop the node after this many seconds (default: run until Ctrl-C).
    #[arg(long, requires = "boot")]
    seconds: Option<u64>,
    /// With --boot: the node's memory in MiB.
    #[arg(long, default_value_t = 256, requires = "boot")]
    memory: u32,
    /// With --boot: SiON boot arguments, e.g. "init=t-ipc".
    #[arg(long, default_value = "", requires = "boot")]
    cmdline: String,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let flavor = if cli.test { Flavor::Test } else { Flavor::Node };
    eprintln!(
        "building the SiON kernel, processes and disk image (the first build takes a few minutes)…"
    );
    let image = build_with(flavor, cli.key.as_deref(), None)?;
    println!(
        "{} ({} bytes; processes: {}); UEFI: {}",
        image.path.display(),
        image.size,
        image.processes.join(", "),
        image.uefi_path.display()
    );
    if !cli.boot {
        return Ok(());
    }
    let (firmware, disk) = if cli.uefi {
        (Firmware::Uefi, &image.uefi_path)
    } else {
        (Firmware::Bios, &image.path)
    };
    let mut args = qemu_args(disk, cli.memory, &cli.cmdline, cli.display);
    args.extend(firmware_args(firmware)?);
    args.extend(["-serial".into(), "stdio".into()]);
    match cli.seconds {
        Some(s) => eprintln!("booting one node in QEMU for {s} s; its serial log follows"),
        None => eprintln!("booting one node in QEMU; its serial log follows (Ctrl-C to stop)"),
    }
    let mut child = Command::new("qemu-system-x86_64")
        .args(&args)
        .spawn()
        .context(
            "starting qemu-system-x86_64: install it with `apt-get install qemu-system-x86`",
        )?;
    if let Some(seconds) = cli.seconds {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while std::time::Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
    }
    let status = child.wait()?;
    if cli.seconds.is_none() && !status.success() && status.code().is_some() {
        bail!("QEMU ended with {status}");
    }
    Ok(())
}
