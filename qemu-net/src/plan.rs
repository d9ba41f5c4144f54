//! Pure planning of a LAN: node count, memory sizes, MACs, taps, log paths and
//! the QEMU command line of each node. No I/O here, so all of it is unit-tested.

use sion_image::Firmware;
use std::path::{Path, PathBuf};

/// Most nodes one LAN may have (the MAC's last byte and the tap names bound it).
pub const MAX_NODES: usize = 250;
/// Smallest memory size accepted for a node, in MiB.
pub const MIN_MEMORY_MB: u32 = 64;
/// Largest memory size accepted for a node, in MiB.
pub const MAX_MEMORY_MB: u32 = 65536;
/// Memory of a node when `--memory` is not given, in MiB.
pub const DEFAULT_MEMORY_MB: u32 = 256;
/// Most processors a node may have (`--cpus`; QEMU's `-smp`).
pub const MAX_CPUS: u32 = 16;
/// Name of the bridge inside the LAN's namespace.
pub const BRIDGE: &str = "br0";
/// The host side's address on the bridge (CIDR). Nodes pick their link-local
/// address in 169.254.1.0–169.254.254.255 (RFC 3927 §2.1), so 169.254.0.x is
/// never taken by a node.
pub const HOST_ADDR: &str = "169.254.0.1/16";
/// The first three bytes of every node's MAC: QEMU's locally administered
/// prefix `52:54:00` followed by `53:4e` ("SN").
pub const MAC_PREFIX: &str = "52:54:00:53:4e";

/// The network card QEMU gives a node (`--nic`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NicModel {
    /// virtio-net on PCI (`virtio-net-pci`).
    #[default]
    Virtio,
    /// Intel 82540EM (`e1000`, PCI 8086:100e), QEMU's default NIC.
    E1000,
}

impl NicModel {
    /// The name used on the command line: `virtio` or `e1000`.
    pub fn name(self) -> &'static str {
        match self {
            NicModel::Virtio => "virtio",
            NicModel::E1000 => "e1000",
        }
    }

    /// QEMU's device name for it.
    pub fn qemu_device(self) -> &'static str {
        match self {
            NicModel::Virtio => "virtio-net-pci",
            NicModel::E1000 => "e1000",
        }
    }
}

/// Parses `--nic`: a comma-separated list of `virtio` and `e1000`, one for all
/// nodes or one per node (spread by [`per_node`]).
pub fn parse_nic_list(s: &str) -> Result<Vec<NicModel>, PlanError> {
    s.split(',')
        .map(|part| match part.trim() {
            "virtio" => Ok(NicModel::Virtio),
            "e1000" => Ok(NicModel::E1000),
            other => Err(PlanError::Nic(other.to_string())),
        })
        .collect()
}

/// Parses `--firmware`: a comma-separated list of `bios` and `uefi`, one for
/// all nodes or one per node (spread by [`per_node`]).
pub fn parse_firmware_list(s: &str) -> Result<Vec<Firmware>, PlanError> {
    s.split(',')
        .map(|part| {
            part.parse::<Firmware>()
                .map_err(|_| PlanError::Firmware(part.trim().to_string()))
        })
        .collect()
}

/// Spreads a per-node option list over `nodes` nodes: none gives every node
/// the default, one entry applies to all, otherwise node K gets entry K.
/// Errors: any other list length, named by `option`.
pub fn per_node<T: Copy + Default>(
    option: &'static str,
    list: &[T],
    nodes: usize,
) -> Result<Vec<T>, PlanError> {
    match list.len() {
        0 => Ok(vec![T::default(); nodes]),
        1 => Ok(vec![list[0]; nodes]),
        n if n == nodes => Ok(list.to_vec()),
        given => Err(PlanError::ListCount {
            option,
            given,
            nodes,
        }),
    }
}

/// A bad `--nodes`, `--memory`, `--nic`, `--firmware` or `--name` value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `--nodes` out of range.
    #[error("--nodes must be between 1 and {MAX_NODES}, not {0}")]
    NodeCount(usize),
    /// `--first-mac` plus the node count passes the last MAC byte.
    #[error("--first-mac {first} leaves room for {} nodes, not {nodes}", 256 - *first as usize)]
    MacRange {
        /// The first MAC byte.
        first: u8,
        /// The node count.
        nodes: usize,
    },
    /// A `--memory` entry that is not a number of MiB.
    #[error("--memory: `{0}` is not a size in MiB (e.g. `256` or `256,384,512`)")]
    MemoryNotNumber(String),
    /// A `--memory` entry out of range.
    #[error("--memory: {0} MiB is outside {MIN_MEMORY_MB}..={MAX_MEMORY_MB} MiB")]
    MemoryRange(u32),
    /// The memory list has neither one entry nor one per node.
    #[error(
        "--memory lists {given} sizes for {nodes} nodes: give one size for all, or one per node"
    )]
    MemoryCount {
        /// Sizes given.
        given: usize,
        /// Nodes asked for.
        nodes: usize,
    },
    /// A `--cpus` entry that is not a processor count in range.
    #[error("--cpus: `{0}` is not a processor count from 1 to {MAX_CPUS} (e.g. `2` or `1,2,4`)")]
    Cpus(String),
    /// A `--nic` entry that is not a known card.
    #[error("--nic: `{0}` is not a network card (virtio or e1000)")]
    Nic(String),
    /// A `--firmware` entry that is not a known firmware.
    #[error("--firmware: `{0}` is not a firmware (bios or uefi)")]
    Firmware(String),
    /// A per-node list with neither one entry nor one per node.
    #[error("{option} lists {given} entries for {nodes} nodes: give one for all, or one per node")]
    ListCount {
        /// The option.
        option: &'static str,
        /// Entries given.
        given: usize,
        /// Nodes asked for.
        nodes: usize,
    },
    /// A LAN name that cannot name a namespace or directory.
    #[error(
        "the LAN name `{0}` must be 1 to 32 characters of a-z, A-Z, 0-9, `-` and `_`, starting with a letter or digit"
    )]
    Name(String),
    /// A path QEMU cannot take inside an option string.
    #[error(
        "the path {0} contains a comma, which QEMU's option syntax cannot take; use another directory"
    )]
    Comma(String),
}

/// Parses `--memory`: a comma-separated list of sizes in MiB, e.g. `"256"` or
/// `"256,384,512"`. Spaces around entries are ignored. Errors: an empty or
/// non-numeric entry, or a size outside [`MIN_MEMORY_MB`]..=[`MAX_MEMORY_MB`].
pub fn parse_memory_list(s: &str) -> Result<Vec<u32>, PlanError> {
    s.split(',')
        .map(|part| {
            let part = part.trim();
            let mb: u32 = part
                .parse()
                .map_err(|_| PlanError::MemoryNotNumber(part.to_string()))?;
            if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&mb) {
                return Err(PlanError::MemoryRange(mb));
            }
            Ok(mb)
        })
        .collect()
}

/// Parses `--cpus`: a comma-separated list of processor counts, one for all
/// nodes or one per node (`"2"`, `"1,2,4"`). Errors: an entry that is not a
/// number from 1 to [`MAX_CPUS`].
pub fn parse_cpus_list(s: &str) -> Result<Vec<u32>, PlanError> {
    s.split(',')
        .map(|part| {
            let part = part.trim();
            part.parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_CPUS).contains(n))
                .ok_or_else(|| PlanError::Cpus(part.to_string()))
        })
        .collect()
}

/// Spreads a parsed memory list over `nodes` nodes: one entry applies to all,
/// otherwise node K gets entry K. Errors: any other list length.
pub fn memory_per_node(list: &[u32], nodes: usize) -> Result<Vec<u32>, PlanError> {
    match list.len() {
        1 => Ok(vec![list[0]; nodes]),
        n if n == nodes => Ok(list.to_vec()),
        given => Err(PlanError::MemoryCount { given, nodes }),
    }
}

/// The MAC of node `index` (0-based): `52:54:00:53:4e:KK`, KK the index in hex.
/// Unique per node of a LAN for `index < 256`.
pub fn mac_for(index: usize) -> String {
    format!("{MAC_PREFIX}:{:02x}", index as u8)
}

/// The tap device of node `index`: `tapK` (inside the LAN's namespace).
pub fn tap_for(index: usize) -> String {
    format!("tap{index}")
}

/// Checks a LAN name (`--name`): 1–32 characters from `[A-Za-z0-9_-]`, not
/// starting with `-` or `_`. The name picks the namespace (`NAME-qemu-net`) and
/// the run directory.
pub fn validate_name(name: &str) -> Result<(), PlanError> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(PlanError::Name(name.to_string()))
    }
}

/// The named network namespace a LAN uses when run as root: `NAME-qemu-net`.
pub fn netns_for(name: &str) -> String {
    format!("{name}-qemu-net")
}

/// One node to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePlan {
    /// 0-based index.
    pub index: usize,
    /// Its MAC, see [`mac_for`].
    pub mac: String,
    /// Its tap device, see [`tap_for`].
    pub tap: String,
    /// Its memory in MiB.
    pub memory_mb: u32,
    /// Its processors (QEMU's `-smp`).
    pub cpus: u32,
    /// Its network card.
    pub nic: NicModel,
    /// Its firmware (and so which of the two images it boots).
    pub firmware: Firmware,
    /// Its serial log: `RUN_DIR/node-K.log`.
    pub log: PathBuf,
    /// QEMU's own stdout/stderr: `RUN_DIR/node-K.qemu.log`.
    pub qemu_log: PathBuf,
}

/// Per-node hardware choices of a LAN: each list has one entry for all nodes
/// or one per node; an empty card or firmware list means the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hardware<'a> {
    /// Memory sizes in MiB (see [`memory_per_node`]).
    pub memory: &'a [u32],
    /// Processor counts (empty: one each).
    pub cpus: &'a [u32],
    /// Network cards.
    pub nics: &'a [NicModel],
    /// Firmware.
    pub firmware: &'a [Firmware],
    /// The last MAC byte of node 0 (see [`mac_for`]): node K gets
    /// `first_mac + K`. 0 normally; LANs that a gateway joins give their
    /// nodes different ranges, so that node ids (their MACs) stay unique in
    /// the joined group.
    pub first_mac: u8,
}

/// Plans `nodes` nodes with the hardware of `hw` and logs in `run_dir`.
/// Errors: a node count outside 1..=[`MAX_NODES`], a bad list, a run directory
/// with a comma in it.
pub fn plan_nodes(nodes: usize, hw: &Hardware, run_dir: &Path) -> Result<Vec<NodePlan>, PlanError> {
    if !(1..=MAX_NODES).contains(&nodes) {
        return Err(PlanError::NodeCount(nodes));
    }
    if usize::from(hw.first_mac) + nodes > 256 {
        return Err(PlanError::MacRange {
            first: hw.first_mac,
            nodes,
        });
    }
    no_comma(run_dir)?;
    let memory = memory_per_node(hw.memory, nodes)?;
    let nics = per_node("--nic", hw.nics, nodes)?;
    let firmware = per_node("--firmware", hw.firmware, nodes)?;
    let cpus = per_node("--cpus", hw.cpus, nodes)?;
    Ok(memory
        .into_iter()
        .enumerate()
        .map(|(index, memory_mb)| NodePlan {
            index,
            mac: mac_for(usize::from(hw.first_mac) + index),
            tap: tap_for(index),
            memory_mb,
            cpus: cpus[index].max(1),
            nic: nics[index],
            firmware: firmware[index],
            log: run_dir.join(format!("node-{index}.log")),
            qemu_log: run_dir.join(format!("node-{index}.qemu.log")),
        })
        .collect())
}

/// Errors if `path` contains a comma (QEMU would split its option there).
pub fn no_comma(path: &Path) -> Result<(), PlanError> {
    let s = path.to_string_lossy();
    if s.contains(',') {
        Err(PlanError::Comma(s.into_owned()))
    } else {
        Ok(())
    }
}

/// The `qemu-system-x86_64` arguments (without the program name) for `node`:
/// [`sion_image::qemu_args`] (image, memory, no display, `cmdline` as SiON boot
/// arguments) plus `-snapshot` (nodes share one image file; writes are thrown
/// away), no monitor, serial to the node's log, a name, and the node's card
/// (virtio-net or e1000) on its tap with its MAC. QEMU adds no default NIC when
/// `-netdev` is given, so the tap is the node's only network. A UEFI node boots
/// the UEFI image beside `image` ([`sion_image::uefi_image_for`]) with
/// `-bios ovmf`.
pub fn node_qemu_args(image: &Path, ovmf: &Path, cmdline: &str, node: &NodePlan) -> Vec<String> {
    let mut args = match node.firmware {
        Firmware::Bios => sion_image::qemu_args(image, node.memory_mb, cmdline, false),
        Firmware::Uefi => {
            let uefi = sion_image::uefi_image_for(image);
            let mut a = sion_image::qemu_args(&uefi, node.memory_mb, cmdline, false);
            a.extend(["-bios".into(), ovmf.display().to_string()]);
            a
        }
    };
    if node.cpus > 1 {
        // One host thread per processor (QEMU's multi-threaded TCG).
        args.extend(["-smp".into(), node.cpus.to_string()]);
    }
    args.extend([
        "-name".into(),
        format!("sion-node-{}", node.index),
        "-snapshot".into(),
        "-monitor".into(),
        "none".into(),
        "-serial".into(),
        format!("file:{}", node.log.display()),
        "-netdev".into(),
        format!("tap,id=n0,ifname={},script=no,downscript=no", node.tap),
        "-device".into(),
        format!("{},netdev=n0,mac={}", node.nic.qemu_device(), node.mac),
    ]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_parse_spread_and_become_smp() {
        assert_eq!(parse_cpus_list("2"), Ok(vec![2]));
        assert_eq!(parse_cpus_list("1, 2,4"), Ok(vec![1, 2, 4]));
        for bad in ["0", "17", "x", "", "2,,4", "-1"] {
            assert!(
                matches!(parse_cpus_list(bad), Err(PlanError::Cpus(_))),
                "{bad}"
            );
        }
        let hw = Hardware {
            memory: &[256],
            cpus: &[1, 2],
            ..Hardware::default()
        };
        let plan = plan_nodes(2, &hw, Path::new("/r")).unwrap();
        assert_eq!((plan[0].cpus, plan[1].cpus), (1, 2));
        let args = |n: &NodePlan| node_qemu_args(Path::new("/i.img"), Path::new("/o"), "", n);
        assert!(!args(&plan[0]).contains(&"-smp".to_string()));
        let two = args(&plan[1]);
        let at = two.iter().position(|a| a == "-smp").expect("-smp");
        assert_eq!(two[at + 1], "2");
        let three = Hardware {
            cpus: &[1, 2, 4],
            ..hw
        };
        assert!(matches!(
            plan_nodes(2, &three, Path::new("/r")),
            Err(PlanError::ListCount {
                option: "--cpus",
                ..
            })
        ));
        // Without --cpus, one each.
        let plan = plan_nodes(2, &ONE, Path::new("/r")).unwrap();
        assert!(plan.iter().all(|n| n.cpus == 1));
    }

    #[test]
    fn memory_list_parses_one_or_many() {
        assert_eq!(parse_memory_list("256"), Ok(vec![256]));
        assert_eq!(parse_memory_list("256, 384,512"), Ok(vec![256, 384, 512]));
        assert_eq!(
            parse_memory_list("256,x"),
            Err(PlanError::MemoryNotNumber("x".into()))
        );
        assert_eq!(
            parse_memory_list(""),
            Err(PlanError::MemoryNotNumber("".into()))
        );
        assert_eq!(
            parse_memory_list("256,,384"),
            Err(PlanError::MemoryNotNumber("".into()))
        );
        assert_eq!(parse_memory_list("16"), Err(PlanError::MemoryRange(16)));
        assert_eq!(
            parse_memory_list("-256"),
            Err(PlanError::MemoryNotNumber("-256".into()))
        );
    }

    #[test]
    fn memory_spreads_over_nodes() {
        assert_eq!(memory_per_node(&[256], 3), Ok(vec![256, 256, 256]));
        assert_eq!(
            memory_per_node(&[256, 384, 512], 3),
            Ok(vec![256, 384, 512])
        );
        assert_eq!(
            memory_per_node(&[256, 384], 3),
            Err(PlanError::MemoryCount { given: 2, nodes: 3 })
        );
    }

    #[test]
    fn macs_are_unique_and_locally_administered() {
        assert_eq!(mac_for(0), "52:54:00:53:4e:00");
        assert_eq!(mac_for(10), "52:54:00:53:4e:0a");
        assert_eq!(mac_for(249), "52:54:00:53:4e:f9");
        let macs: std::collections::HashSet<_> = (0..MAX_NODES).map(mac_for).collect();
        assert_eq!(macs.len(), MAX_NODES);
        for mac in &macs {
            let first = u8::from_str_radix(&mac[..2], 16).unwrap();
            assert_eq!(first & 0b11, 0b10, "unicast, locally administered: {mac}");
            assert_eq!(mac.len(), 17);
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("sion").is_ok());
        assert!(validate_name("t-123_x").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"a".repeat(33)).is_err());
        assert_eq!(netns_for("sion"), "sion-qemu-net");
    }

    const ONE: Hardware<'static> = Hardware {
        memory: &[256],
        cpus: &[],
        nics: &[],
        firmware: &[],
        first_mac: 0,
    };

    #[test]
    fn plan_gives_each_node_its_mac_tap_memory_and_logs() {
        let hw = Hardware {
            memory: &[256, 384, 512],
            ..Hardware::default()
        };
        let plan = plan_nodes(3, &hw, Path::new("/r")).unwrap();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[2].index, 2);
        assert_eq!(plan[2].mac, "52:54:00:53:4e:02");
        assert_eq!(plan[2].tap, "tap2");
        assert_eq!(plan[2].memory_mb, 512);
        assert_eq!(plan[2].nic, NicModel::Virtio);
        assert_eq!(plan[2].firmware, Firmware::Bios);
        assert_eq!(plan[2].log, Path::new("/r/node-2.log"));
        assert_eq!(plan[2].qemu_log, Path::new("/r/node-2.qemu.log"));
        assert_eq!(
            plan_nodes(0, &ONE, Path::new("/r")),
            Err(PlanError::NodeCount(0))
        );
        assert_eq!(
            plan_nodes(MAX_NODES + 1, &ONE, Path::new("/r")),
            Err(PlanError::NodeCount(MAX_NODES + 1))
        );
        let shifted = Hardware {
            first_mac: 0x10,
            ..ONE
        };
        let plan = plan_nodes(2, &shifted, Path::new("/r")).unwrap();
        assert_eq!(plan[0].mac, "52:54:00:53:4e:10");
        assert_eq!(plan[1].mac, "52:54:00:53:4e:11");
        assert_eq!((plan[1].index, plan[1].tap.as_str()), (1, "tap1"));
        let last = Hardware {
            first_mac: 0xff,
            ..ONE
        };
        assert!(plan_nodes(1, &last, Path::new("/r")).is_ok());
        assert_eq!(
            plan_nodes(2, &last, Path::new("/r")),
            Err(PlanError::MacRange {
                first: 0xff,
                nodes: 2
            })
        );
        assert!(matches!(
            plan_nodes(1, &ONE, Path::new("/a,b")),
            Err(PlanError::Comma(_))
        ));
    }

    /// The value following `flag` in `args` (first occurrence).
    fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn qemu_command_puts_the_node_on_its_tap() {
        let hw = Hardware {
            memory: &[256, 384],
            ..Hardware::default()
        };
        let plan = plan_nodes(2, &hw, Path::new("/run/x")).unwrap();
        let ovmf = Path::new("/fw/OVMF.fd");
        let args = node_qemu_args(Path::new("/img/sion.img"), ovmf, "init=t-ipc", &plan[1]);
        assert_eq!(after(&args, "-m"), ["384M"]);
        assert_eq!(after(&args, "-drive"), ["format=raw,file=/img/sion.img"]);
        assert_eq!(
            after(&args, "-netdev"),
            ["tap,id=n0,ifname=tap1,script=no,downscript=no"]
        );
        assert_eq!(
            after(&args, "-device"),
            [
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "virtio-net-pci,netdev=n0,mac=52:54:00:53:4e:01"
            ]
        );
        assert_eq!(after(&args, "-serial"), ["file:/run/x/node-1.log"]);
        assert_eq!(after(&args, "-display"), ["none"]);
        assert_eq!(after(&args, "-monitor"), ["none"]);
        assert_eq!(
            after(&args, "-fw_cfg"),
            ["name=opt/sion/cmdline,string=init=t-ipc"]
        );
        assert!(args.iter().any(|a| a == "-snapshot"));
        // No user-mode (slirp) network that could reach beyond the LAN.
        assert!(
            !args
                .iter()
                .any(|a| a.contains("user") || a == "-net" || a == "-nic")
        );
        let bare = node_qemu_args(Path::new("/img/sion.img"), ovmf, "", &plan[0]);
        assert!(after(&bare, "-fw_cfg").is_empty());
        assert!(after(&bare, "-bios").is_empty());
    }

    #[test]
    fn nics_and_firmware_are_chosen_per_node() {
        assert_eq!(
            parse_nic_list("virtio, e1000"),
            Ok(vec![NicModel::Virtio, NicModel::E1000])
        );
        assert_eq!(
            parse_nic_list("rtl8139"),
            Err(PlanError::Nic("rtl8139".into()))
        );
        assert_eq!(
            parse_firmware_list("bios,uefi"),
            Ok(vec![Firmware::Bios, Firmware::Uefi])
        );
        assert_eq!(
            parse_firmware_list("efi"),
            Err(PlanError::Firmware("efi".into()))
        );
        assert_eq!(
            per_node("--nic", &[NicModel::E1000, NicModel::Virtio], 3),
            Err(PlanError::ListCount {
                option: "--nic",
                given: 2,
                nodes: 3
            })
        );
        let hw = Hardware {
            memory: &[256],
            cpus: &[],
            nics: &[NicModel::E1000, NicModel::Virtio],
            firmware: &[Firmware::Uefi, Firmware::Bios],
            first_mac: 0,
        };
        let plan = plan_nodes(2, &hw, Path::new("/run/x")).unwrap();
        let ovmf = Path::new("/fw/OVMF.fd");
        let e1000 = node_qemu_args(Path::new("/img/sion.img"), ovmf, "", &plan[0]);
        assert_eq!(
            after(&e1000, "-device")[1],
            "e1000,netdev=n0,mac=52:54:00:53:4e:00"
        );
        assert_eq!(
            after(&e1000, "-drive"),
            ["format=raw,file=/img/sion-uefi.img"]
        );
        assert_eq!(after(&e1000, "-bios"), ["/fw/OVMF.fd"]);
        let virtio = node_qemu_args(Path::new("/img/sion.img"), ovmf, "", &plan[1]);
        assert_eq!(
            after(&virtio, "-device")[1],
            "virtio-net-pci,netdev=n0,mac=52:54:00:53:4e:01"
        );
        assert_eq!(after(&virtio, "-drive"), ["format=raw,file=/img/sion.img"]);
        assert!(after(&virtio, "-bios").is_empty());
    }
}
