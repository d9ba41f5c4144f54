//! Builds SiON's disk image: compiles the kernel and the SiON processes for
//! `x86_64-unknown-none`, packs the processes into a tar ramdisk, and writes a
//! BIOS-bootable disk image with the `bootloader` crate.
//!
//! Two flavours share the kernel: the node image (`target/sion.img`) carries the
//! node's processes; the test image (`target/sion-test.img`) adds the test
//! processes (image names starting with `t-`) used by the integration tests.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which disk image to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `target/sion.img`: what a node runs.
    Node,
    /// `target/sion-test.img`: the node image plus the test processes.
    Test,
}

impl Flavor {
    fn file_name(self) -> &'static str {
        match self {
            Flavor::Node => "sion.img",
            Flavor::Test => "sion-test.img",
        }
    }
}

/// How a node's PC starts: which firmware QEMU runs and which image it boots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Firmware {
    /// Legacy BIOS (QEMU's default SeaBIOS) booting the MBR image.
    #[default]
    Bios,
    /// UEFI (OVMF, Debian's `ovmf` package) booting the GPT image.
    Uefi,
}

impl Firmware {
    /// The name used on command lines: `bios` or `uefi`.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

impl std::str::FromStr for Firmware {
    type Err = String;
    fn from_str(s: &str) -> Result<Firmware, String> {
        match s.trim() {
            "bios" => Ok(Firmware::Bios),
            "uefi" => Ok(Firmware::Uefi),
            other => Err(format!("`{other}` is not a firmware (bios or uefi)")),
        }
    }
}

/// Where OVMF's firmware image may be: Debian's `ovmf` package installs
/// `/usr/share/ovmf/OVMF.fd` (code and variables in one file, for `-bios`).
pub const OVMF_PATHS: &[&str] = &["/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd"];

/// The OVMF firmware file, if installed (`SION_OVMF` overrides the search).
pub fn ovmf() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SION_OVMF") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    OVMF_PATHS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The UEFI image built beside the BIOS image `bios`: `NAME.img` becomes
/// `NAME-uefi.img` in the same directory.
pub fn uefi_image_for(bios: &Path) -> PathBuf {
    let stem = bios.file_stem().unwrap_or_default().to_string_lossy();
    let ext = bios
        .extension()
        .map_or(String::new(), |e| format!(".{}", e.to_string_lossy()));
    bios.with_file_name(format!("{stem}-uefi{ext}"))
}

/// A built disk image.
#[derive(Clone, Debug)]
pub struct Image {
    /// Path of the BIOS disk image.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Path of the UEFI disk image (same kernel and ramdisk), see [`uefi_image_for`].
    pub uefi_path: PathBuf,
    /// The process images in its ramdisk.
    pub processes: Vec<String>,
}

/// The workspace root (the directory holding `Cargo.toml` and `target/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("image/ has a parent")
        .to_path_buf()
}

/// The `target/` directory of the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// The processes every node image carries, with the package that builds each.
pub const NODE_PROCESSES: &[(&str, &str)] = &[
    ("init", "sion-procs"),
    ("companion-mgr", "sion-cm-node"),
    ("app-mgr", "sion-apm-node"),
];

/// Packages built for the nodes (`x86_64-unknown-none`).
const NODE_PACKAGES: &[&str] = &["sion-kernel", "sion-procs", "sion-cm-node", "sion-apm-node"];

/// Names of the processes in the image: the node processes, plus for the test
/// image the test processes (`kernel/procs/src/bin/t-*.rs`).
fn process_names(flavor: Flavor) -> Result<Vec<String>> {
    let dir = workspace_root().join("kernel/procs/src/bin");
    let mut names: Vec<String> = NODE_PROCESSES.iter().map(|(n, _)| n.to_string()).collect();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if flavor == Flavor::Test && name.starts_with("t-") {
                names.push(name);
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The Cargo profile of the kernel and the processes (the workspace's
/// `[profile.image]`: release, stripped, LTO).
pub const IMAGE_PROFILE: &str = "image";

/// Where [`build`] leaves the kernel and process binaries (ELF files).
pub fn bin_dir() -> PathBuf {
    target_dir()
        .join("sion-build/x86_64-unknown-none")
        .join(IMAGE_PROFILE)
}

/// Builds the kernel and processes (profile [`IMAGE_PROFILE`], `x86_64-unknown-none`) and the
/// BIOS and UEFI disk images of `flavor`, without a cluster key (an open
/// group). Cargo's progress goes to stderr. Errors: a failed
/// compilation, a missing binary, an I/O error.
pub fn build(flavor: Flavor) -> Result<Image> {
    build_with(flavor, None, None)
}

/// Like [`build`], with the cluster key file `key` (see
/// `sion_companion_mgr::auth`: one key a line as 64 hex digits, the first
/// signing) put into the ramdisk as `cluster.key`, and the BIOS image written
/// as `target/NAME` (default: the flavor's file name) with its UEFI sibling.
/// Images and ramdisk holding a key are written with mode 0600: the key is
/// the group's secret. Errors: as [`build`], and a key file that is not a
/// valid key file.
pub fn build_with(flavor: Flavor, key: Option<&Path>, name: Option<&str>) -> Result<Image> {
    let key_text = match key {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the cluster key file {}", path.display()))?;
            let keys = sion_companion_mgr::auth::Keyring::parse(&text)
                .with_context(|| format!("the cluster key file {} is malformed", path.display()))?;
            ensure!(
                text.len() <= sion_abi::MAX_KEY_TEXT,
                "the cluster key file {} is longer than {} bytes",
                path.display(),
                sion_abi::MAX_KEY_TEXT
            );
            eprintln!(
                "building a node image with cluster key {} ({} key(s) accepted)",
                keys.signing().id(),
                keys.len()
            );
            Some(text)
        }
        None => None,
    };
    let root = workspace_root();
    let build_dir = target_dir().join("sion-build");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--profile", IMAGE_PROFILE, "--target", "x86_64-unknown-none"])
        .args(NODE_PACKAGES.iter().flat_map(|p| ["-p", p]))
        .arg("--target-dir")
        .arg(&build_dir)
        // The outer `cargo test`/`cargo run` may have set these for the host.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .context("running cargo to build the kernel (is the Rust toolchain installed? run `rustup toolchain install` in the repository)")?;
    ensure!(
        status.success(),
        "building the kernel and SiON processes failed (see the compiler output above)"
    );

    let bin_dir = bin_dir();
    let kernel = bin_dir.join("sion-kernel");
    ensure!(
        kernel.exists(),
        "kernel binary missing at {}",
        kernel.display()
    );

    let processes = process_names(flavor)?;
    let out = target_dir().join(name.unwrap_or(flavor.file_name()));
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    let ramdisk = build_dir.join(format!("ramdisk-{stem}.tar"));
    write_ramdisk(&ramdisk, &bin_dir, &processes, key_text.as_deref())?;
    let uefi_out = uefi_image_for(&out);
    let mut builder = bootloader::DiskImageBuilder::new(kernel);
    builder.set_ramdisk(ramdisk.clone());
    builder
        .create_bios_image(&out)
        .with_context(|| format!("writing the disk image {}", out.display()))?;
    builder
        .create_uefi_image(&uefi_out)
        .with_context(|| format!("writing the UEFI disk image {}", uefi_out.display()))?;
    if key_text.is_some() {
        use std::os::unix::fs::PermissionsExt;
        for f in [&out, &uefi_out, &ramdisk] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let size = std::fs::metadata(&out)?.len();
    Ok(Image {
        path: out,
        size,
        uefi_path: uefi_out,
        processes,
    })
}

/// Writes the tar ramdisk: one regular file per process, named by process
/// name, and the cluster key's text as `cluster.key` if given.
fn write_ramdisk(path: &Path, bin_dir: &Path, names: &[String], key: Option<&str>) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if key.is_some() { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut tar = tar::Builder::new(file);
    for name in names {
        let bin = bin_dir.join(name);
        if !bin.exists() {
            bail!("process binary {} was not built", bin.display());
        }
        let data = std::fs::read(&bin)?;
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, name, data.as_slice())?;
    }
    if let Some(text) = key {
        let mut header = tar::Header::new_ustar();
        header.set_size(text.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, "cluster.key", text.as_bytes())?;
    }
    tar.finish()?;
    Ok(())
}

/// The `qemu-system-x86_64` arguments that boot `image` as one node: serial on
/// stdio unless redirected, no screen unless `display`, the exit device the
/// tests use, and `cmdline` passed as SiON boot arguments.
pub fn qemu_args(image: &Path, memory_mb: u32, cmdline: &str, display: bool) -> Vec<String> {
    let mut args = vec![
        "-drive".into(),
        format!("format=raw,file={}", image.display()),
        "-m".into(),
        format!("{memory_mb}M"),
        "-no-reboot".into(),
        "-device".into(),
        "isa-debug-exit,iobase=0xf4,iosize=0x04".into(),
    ];
    if !display {
        args.extend(["-display".into(), "none".into()]);
    }
    if !cmdline.is_empty() {
        args.extend([
            "-fw_cfg".into(),
            format!("name=opt/sion/cmdline,string={cmdline}"),
        ]);
    }
    if std::env::var("SION_QEMU_ACCEL").is_ok_and(|a| a == "kvm") {
        args.extend(["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]);
    } else {
        // QEMU's default CPU (AMD vendor, so `syscall` from 32-bit code is
        // allowed and must be handled) with the protections most PCs since
        // 2014 have, which the kernel enables when present: SMEP, SMAP, UMIP;
        // and RDRAND (TCG emulates it from the host's random source), which
        // the node's services use for their nonces.
        args.extend(["-cpu".into(), "qemu64,+smep,+smap,+umip,+rdrand".into()]);
    }
    args
}

/// QEMU's firmware arguments for `firmware`: none for BIOS (QEMU's default),
/// `-bios OVMF.fd` for UEFI. Errors: OVMF not installed.
pub fn firmware_args(firmware: Firmware) -> Result<Vec<String>> {
    match firmware {
        Firmware::Bios => Ok(Vec::new()),
        Firmware::Uefi => {
            let Some(ovmf) = ovmf() else {
                bail!(
                    "UEFI firmware not found at {}: install it with `apt-get install ovmf`",
                    OVMF_PATHS.join(" or ")
                );
            };
            Ok(vec!["-bios".into(), ovmf.display().to_string()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uefi_image_sits_beside_the_bios_one() {
        assert_eq!(
            uefi_image_for(Path::new("/t/sion.img")),
            Path::new("/t/sion-uefi.img")
        );
        assert_eq!(
            uefi_image_for(Path::new("/t/sion-test.img")),
            Path::new("/t/sion-test-uefi.img")
        );
    }

    #[test]
    fn firmware_names_round_trip() {
        for f in [Firmware::Bios, Firmware::Uefi] {
            assert_eq!(f.name().parse::<Firmware>(), Ok(f));
        }
        assert!("efi".parse::<Firmware>().is_err());
        assert!(firmware_args(Firmware::Bios).unwrap().is_empty());
    }
}
