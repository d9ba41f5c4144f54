//! Command-line errors of `qemu-net` that need no QEMU: each names its fix.
//! A stand-in `qemu-system-x86_64` (a shell script first on `PATH`) checks
//! that a QEMU failing at start is reported and its LAN removed (as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_qemu-net");

/// A scratch directory for one test.
fn scratch(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("qemu-net-cli")
        .join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes an executable shell script `name` into `dir`.
fn script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `qemu-net --name NAME --run-dir DIR/run ARGS…` with `PATH` = `path`.
fn qemu_net(dir: &Path, name: &str, path: &str, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(["--name", name, "--run-dir"])
        .arg(dir.join("run"))
        .args(args)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "$ qemu-net {}\n{}{}-> {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn missing_qemu_names_the_package() {
    let dir = scratch("noqemu");
    let empty = dir.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = qemu_net(&dir, "t", empty.to_str().unwrap(), &["up", "--nodes", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("apt-get install qemu-system-x86"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_image_names_the_command_that_builds_it() {
    let dir = scratch("noimage");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    script(&bin, "qemu-system-x86_64", "exit 1");
    script(&bin, "ip", "exit 1");
    let out = qemu_net(
        &dir,
        "t",
        bin.to_str().unwrap(),
        &["up", "--nodes", "1", "--image", "/nonexistent/sion.img"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("/nonexistent/sion.img") && err.contains("cargo run -p sion-image"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_are_explained() {
    let dir = scratch("args");
    let path = std::env::var("PATH").unwrap();
    let image = dir.join("fake.img");
    std::fs::write(&image, b"").unwrap();
    let image = image.to_str().unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    script(&bin, "qemu-system-x86_64", "exit 1");
    let path = format!("{}:{path}", bin.display());

    let out = qemu_net(
        &dir,
        "t",
        &path,
        &[
            "up", "--nodes", "3", "--memory", "256,384", "--image", image,
        ],
    );
    assert!(stderr(&out).contains("--memory lists 2 sizes for 3 nodes"));
    let out = qemu_net(
        &dir,
        "t",
        &path,
        &["up", "--nodes", "1", "--memory", "lots", "--image", image],
    );
    assert!(stderr(&out).contains("`lots` is not a size in MiB"));
    let out = qemu_net(&dir, "t", &path, &["up", "--nodes", "0", "--image", image]);
    assert!(stderr(&out).contains("--nodes must be between 1 and"));
    let out = qemu_net(&dir, "bad/name", &path, &["status"]);
    assert!(stderr(&out).contains("the LAN name `bad/name`"));
    // Nothing is up in a fresh run directory.
    let out = qemu_net(&dir, "t", &path, &["status"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("not up"));
    let out = qemu_net(&dir, "t", &path, &["exec", "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("qemu-net up --nodes N"));
    let out = qemu_net(&dir, "t", &path, &["kill-node", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not up"));
    let out = qemu_net(&dir, "t", &path, &["down"]);
    assert!(out.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_cards_and_firmware_are_explained() {
    let dir = scratch("hardware");
    let image = dir.join("fake.img");
    std::fs::write(&image, b"").unwrap();
    let image = image.to_str().unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    script(&bin, "qemu-system-x86_64", "exit 1");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let up = |extra: &[&str]| {
        let mut args = vec!["up", "--nodes", "2", "--image", image];
        args.extend_from_slice(extra);
        stderr(&qemu_net(&dir, "t", &path, &args))
    };
    assert!(
        up(&["--nic", "rtl8139"]).contains("`rtl8139` is not a network card (virtio or e1000)")
    );
    assert!(up(&["--nic", "e1000,virtio,e1000"]).contains("--nic lists 3 entries for 2 nodes"));
    assert!(up(&["--firmware", "efi"]).contains("`efi` is not a firmware (bios or uefi)"));
    // A UEFI node needs the UEFI image beside --image, then OVMF.
    let err = up(&["--firmware", "bios,uefi"]);
    assert!(
        err.contains("fake-uefi.img") && err.contains("cargo run -p sion-image"),
        "{err}"
    );
    std::fs::write(dir.join("fake-uefi.img"), b"").unwrap();
    let out = Command::new(BIN)
        .args(["--name", "t", "--run-dir"])
        .arg(dir.join("run"))
        .args(["up", "--nodes", "1", "--firmware", "uefi", "--image", image])
        .env("PATH", &path)
        .env("SION_OVMF", dir.join("no-such-OVMF.fd"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("apt-get install ovmf"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_qemu_that_fails_at_start_is_reported_and_its_lan_removed() {
    if qemu_net::prereq::must_skip(true, &[]) {
        return;
    }
    let dir = scratch("qemufails");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    script(
        &bin,
        "qemu-system-x86_64",
        "echo \"qemu-system-x86_64: could not configure /dev/net/tun (tap0): Device or resource busy\" >&2\nexit 1",
    );
    let image = dir.join("fake.img");
    std::fs::write(&image, b"").unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let name = format!("qc-{}", std::process::id());
    let out = qemu_net(
        &dir,
        &name,
        &path,
        &["up", "--nodes", "2", "--image", image.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("QEMU exited right after starting"), "{err}");
    assert!(err.contains("Device or resource busy"), "{err}");
    assert!(
        !Path::new("/run/netns")
            .join(format!("{name}-qemu-net"))
            .exists(),
        "the namespace was removed again"
    );
    assert!(!dir.join("run/state.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
