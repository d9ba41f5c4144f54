//! `qemu-net`: boots SiON nodes in QEMU on a private, isolated L2 network.
//!
//! A LAN is a network namespace holding a Linux bridge (`br0`, host address
//! 169.254.0.1/16) and one tap per node; each node is a `qemu-system-x86_64`
//! started inside that namespace with its card (virtio-net or e1000, `--nic`)
//! on its tap and its firmware (BIOS or UEFI, `--firmware`), its serial log in
//! the run directory (`target/qemu-net/NAME/node-K.log`). As root the
//! namespace is a named `ip netns` (`NAME-qemu-net`); otherwise a user +
//! network namespace (as `unshare -Urn` makes) held open by a `sleep`.
//! `qemu-net exec -- CMD` runs host programs (e.g. `hostd`) on the LAN.
#![forbid(unsafe_code)]

pub mod error;
pub mod isolation;
pub mod lan;
pub mod logscan;
pub mod plan;
pub mod prereq;
pub mod process;
pub mod state;

pub use error::Error;
pub use lan::{Lan, UpOptions};
