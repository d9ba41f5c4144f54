//! Device drivers: PCI enumeration and the virtio-net NIC (through the
//! `virtio-drivers` crate).

pub mod pci;
pub mod virtio;
