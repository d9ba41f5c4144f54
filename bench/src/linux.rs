//! The Linux side: Debian's stock kernel (fetched once with `apt-get
//! download` and cached under `target/bench/linux/`), an initramfs built with
//! `cpio` from the static `/init` (`bench/programs/init.c`) and the same
//! static programs SiON runs, booted in the same QEMU as a SiON node.

use crate::guest::{Guest, run_timeout};
use crate::parse;
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The stock kernel: its `vmlinuz` and its Debian package's name and version.
pub struct Kernel {
    /// The extracted `boot/vmlinuz-*`.
    pub vmlinuz: PathBuf,
    /// E.g. `linux-image-6.1.0-57-amd64 6.1.192-3`.
    pub package: String,
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let (code, out, err) = run_timeout(cmd, Duration::from_secs(600))?;
    ensure!(
        code == 0,
        "{what} failed ({code}): {}{}",
        out.trim(),
        err.trim()
    );
    Ok(out)
}

/// The package a `Depends:` field names first (`a (= 1) | b, c` → `a`).
pub fn first_dependency(depends: &str) -> Option<&str> {
    let first = depends.split([',', '|']).next()?.trim();
    let name = first.split([' ', '(']).next()?.trim();
    (!name.is_empty()).then_some(name)
}

/// Debian's stock kernel, from the cache or fetched: `apt-get download
/// linux-image-amd64`, its dependency (the real `linux-image-6.x-amd64`
/// package), `dpkg-deb -x`. `cache` is `target/bench/linux`.
pub fn kernel(cache: &Path) -> Result<Kernel> {
    let stamp = cache.join("kernel-package");
    let vmlinuz = cache.join("vmlinuz");
    if let (Ok(package), true) = (std::fs::read_to_string(&stamp), vmlinuz.is_file()) {
        return Ok(Kernel {
            vmlinuz,
            package: package.trim().to_string(),
        });
    }
    let debs = cache.join("deb");
    std::fs::create_dir_all(&debs)?;
    let download = |name: &str| -> Result<PathBuf> {
        let mut cmd = Command::new("apt-get");
        cmd.current_dir(&debs).args(["download", name]);
        if run(&mut cmd, "apt-get download").is_err() {
            // A fresh machine may have no package lists yet.
            run(
                Command::new("apt-get").args(["update", "-qq"]),
                "apt-get update",
            )?;
            run(
                Command::new("apt-get")
                    .current_dir(&debs)
                    .args(["download", name]),
                &format!("apt-get download {name}"),
            )?;
        }
        std::fs::read_dir(&debs)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{name}_")) && n.ends_with(".deb"))
            })
            .with_context(|| format!("apt-get download {name} left no .deb in {}", debs.display()))
    };
    let meta = download("linux-image-amd64")?;
    let depends = run(
        Command::new("dpkg-deb").arg("-f").arg(&meta).arg("Depends"),
        "dpkg-deb -f",
    )?;
    let real = first_dependency(&depends)
        .with_context(|| format!("linux-image-amd64 depends on nothing ({depends})"))?
        .to_string();
    let deb = download(&real)?;
    let version = run(
        Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"),
        "dpkg-deb -f",
    )?;
    let root = cache.join("extract");
    let _ = std::fs::remove_dir_all(&root);
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        "dpkg-deb -x",
    )?;
    let boot = root.join("boot");
    let found = std::fs::read_dir(&boot)
        .with_context(|| format!("{} has no boot/", deb.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no boot/vmlinuz-* in {}", deb.display()))?;
    std::fs::copy(&found, &vmlinuz)?;
    // Only the kernel is kept: the modules are not needed (AF_UNIX and the
    // serial console are built in).
    let _ = std::fs::remove_dir_all(&root);
    let package = format!("{real} {}", version.trim());
    std::fs::write(&stamp, &package)?;
    Ok(Kernel { vmlinuz, package })
}

/// Builds `out` (a `newc` cpio archive, as `cpio -o -H newc` writes it) from
/// `init`, the `programs` (name in `/`, file) and `/bench.conf` = `conf`,
/// plus `syscost.dat` (the file `syscost` reads), staged in `out`'s
/// directory.
pub fn initramfs(out: &Path, init: &Path, programs: &[(&str, PathBuf)], conf: &str) -> Result<()> {
    let stage = out.with_extension("root");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(stage.join("dev"))?;
    std::fs::copy(init, stage.join("init"))?;
    for (name, path) in programs {
        std::fs::copy(path, stage.join(name))
            .with_context(|| format!("copying {}", path.display()))?;
    }
    std::fs::write(stage.join("bench.conf"), conf)?;
    std::fs::write(stage.join("syscost.dat"), b"x")?;
    let archive = std::fs::File::create(out)?;
    let mut find = Command::new("sh");
    find.current_dir(&stage)
        .args([
            "-c",
            "find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet",
        ])
        .stdout(archive);
    let status = find
        .status()
        .context("running find | cpio (apt-get install cpio)")?;
    ensure!(status.success(), "cpio failed building {}", out.display());
    Ok(())
}

/// The QEMU arguments of the Linux guest: the same memory, CPU model and
/// accelerator as a SiON node (`sion_args`, from `sion_image::qemu_args`),
/// one CPU (QEMU's default, as for SiON), no network card, the serial
/// console on stdio.
pub fn qemu_args(kernel: &Path, initrd: &Path, sion_args: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "-kernel",
        &kernel.display().to_string(),
        "-initrd",
        &initrd.display().to_string(),
        "-append",
        "console=ttyS0 quiet panic=-1",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-nic",
        "none",
    ]
    .map(String::from)
    .to_vec();
    for flag in ["-m", "-cpu", "-accel", "-smp"] {
        if let Some(i) = sion_args.iter().position(|a| a == flag)
            && let Some(value) = sion_args.get(i + 1)
        {
            args.extend([flag.to_string(), value.clone()]);
        }
    }
    args
}

/// What one boot of the Linux guest gave.
pub struct Round {
    /// From QEMU's start to the first line of `/init`.
    pub boot: Duration,
    /// Each line of `bench.conf`: (line, exit status, output).
    pub runs: Vec<(String, i32, String)>,
    /// Each line of `bench.conf`: (line, seconds it ran by the host's clock).
    pub host_secs: Vec<(String, f64)>,
}

/// Boots the guest, waits (at most `timeout`) until its init has run every
/// program, and returns the boot time and the programs' outputs. Errors: a
/// guest that does not finish, a program that fails.
pub fn run_round(args: &[String], timeout: Duration) -> Result<Round> {
    let mut guest = Guest::start(args)?;
    let boot = guest.wait_for("SIONBENCH init", timeout)?;
    guest.wait_for("SIONBENCH done", timeout)?;
    let runs = parse::guest_runs(&guest.console());
    let host_secs = parse::guest_run_times(&guest.timed_lines());
    drop(guest);
    if let Some((cmd, status, out)) = runs.iter().find(|r| r.1 != 0) {
        bail!("in the Linux guest, `{cmd}` exited with {status}:\n{out}");
    }
    Ok(Round {
        boot,
        runs,
        host_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_dependency_of_a_depends_field() {
        assert_eq!(
            first_dependency("linux-image-6.1.0-57-amd64 (= 6.1.192-3)\n"),
            Some("linux-image-6.1.0-57-amd64")
        );
        assert_eq!(first_dependency("a | b (>= 2), c"), Some("a"));
        assert_eq!(first_dependency(" \n"), None);
    }

    #[test]
    fn guest_gets_the_nodes_memory_cpu_and_accelerator() {
        let sion = sion_image::qemu_args(Path::new("/i.img"), 512, "", false);
        let args = qemu_args(Path::new("/k"), Path::new("/r.cpio"), &sion);
        let after = |flag: &str, list: &[String]| {
            list.iter()
                .position(|a| a == flag)
                .map(|i| list[i + 1].clone())
        };
        assert_eq!(after("-m", &args).as_deref(), Some("512M"));
        assert_eq!(after("-cpu", &args), after("-cpu", &sion));
        assert_eq!(after("-accel", &args), after("-accel", &sion));
        assert_eq!(after("-kernel", &args).as_deref(), Some("/k"));
        assert_eq!(after("-nic", &args).as_deref(), Some("none"));
        assert!(
            !args.iter().any(|a| a.contains("format=raw")),
            "no SiON disk"
        );
    }

    #[test]
    fn initramfs_holds_init_programs_and_conf() {
        if Command::new("cpio").arg("--version").output().is_err() {
            assert!(
                !qemu_net::prereq::require_all(),
                "cpio is missing (apt-get install cpio) and SION_REQUIRE_ALL is set"
            );
            eprintln!("cpio not installed; skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("sion-bench-initramfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let init = dir.join("init-src");
        let prog = dir.join("prog-src");
        std::fs::write(&init, b"INIT").unwrap();
        std::fs::write(&prog, b"PROG").unwrap();
        let out = dir.join("initramfs.cpio");
        initramfs(&out, &init, &[("prog", prog.clone())], "/prog 1\n").unwrap();
        let list = Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::fs::File::open(&out).unwrap())
            .output()
            .unwrap();
        let names = String::from_utf8_lossy(&list.stdout);
        let mut names: Vec<&str> = names.lines().collect();
        names.sort();
        assert_eq!(names, ["bench.conf", "dev", "init", "prog", "syscost.dat"]);
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.starts_with(b"070701"), "newc magic");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
