//! The virtio-net NIC through the `virtio-drivers` crate (PCI transport): the
//! DMA and MMIO glue it needs ([`KernelHal`]) and the [`Nic`] it becomes.

use super::Nic;
use super::pci;
use crate::mem;
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use core::ptr::NonNull;
use virtio_drivers::device::net::VirtIONet;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::Command;
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// Receive and transmit queue depth.
const QUEUE_SIZE: usize = 64;
/// Size of each receive buffer: one Ethernet frame plus the virtio header.
const RX_BUFFER_LEN: usize = 2048;

/// DMA memory comes from the kernel heap, which is one physically contiguous
/// run reached through the physical-memory map; other buffers are translated
/// through the current page table.
pub struct KernelHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned, physically contiguous
// memory that stays allocated until `dma_dealloc`; `share` returns the physical
// address the device must use for a buffer.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let layout = Layout::from_size_align(pages * 4096, 4096).expect("valid DMA layout");
        // SAFETY: the layout has a non-zero size.
        let ptr =
            NonNull::new(unsafe { alloc_zeroed(layout) }).expect("kernel heap exhausted (DMA)");
        (mem::virt_to_phys(ptr.as_ptr() as u64) as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let layout = Layout::from_size_align(pages * 4096, 4096).expect("valid DMA layout");
        // SAFETY: the caller returns memory obtained from `dma_alloc` with the same size.
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        mem::map_mmio(paddr, size as u64);
        NonNull::new(mem::phys_to_virt(x86_64::PhysAddr::new(paddr)).as_mut_ptr())
            .expect("non-null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        // Buffers never straddle a page boundary onto a discontiguous frame:
        // they come from the heap, which is physically contiguous.
        mem::virt_to_phys(buffer.as_ptr() as *const u8 as u64) as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// A virtio-net device.
pub struct VirtioNic {
    net: VirtIONet<KernelHal, PciTransport, QUEUE_SIZE>,
    /// Frames dropped because the transmit queue was full.
    pub tx_dropped: u64,
}

/// Finds the first virtio-net PCI function, enables it and returns it with its
/// IRQ line. `None` (logged) when there is none or it fails to initialise.
pub fn probe() -> Option<(VirtioNic, u8)> {
    let mut root = pci::root();
    for (df, info) in pci::devices() {
        if virtio_drivers::transport::pci::virtio_device_type(&info) != Some(DeviceType::Network) {
            continue;
        }
        log::info!("pci: virtio-net at {df} ({info})");
        root.set_command(
            df,
            Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER,
        );
        let transport = match PciTransport::new::<KernelHal, _>(&mut root, df) {
            Ok(t) => t,
            Err(e) => {
                log::error!("virtio-net: PCI transport failed: {e:?}");
                continue;
            }
        };
        if transport.device_type() != DeviceType::Network {
            continue;
        }
        match VirtIONet::new(transport, RX_BUFFER_LEN) {
            Ok(mut net) => {
                net.enable_interrupts();
                return Some((VirtioNic { net, tx_dropped: 0 }, pci::interrupt_line(df)));
            }
            Err(e) => log::error!("virtio-net: initialisation failed: {e:?}"),
        }
    }
    None
}

impl Nic for VirtioNic {
    fn mac(&self) -> [u8; 6] {
        self.net.mac_address()
    }

    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        if !self.net.can_recv() {
            return None;
        }
        let rx = self.net.receive().ok()?;
        let packet = rx.packet();
        let n = packet.len().min(buf.len());
        buf[..n].copy_from_slice(&packet[..n]);
        let _ = self.net.recycle_rx_buffer(rx);
        Some(n)
    }

    fn transmit(&mut self, frame: &[u8]) -> bool {
        if !self.net.can_send() {
            self.tx_dropped += 1;
            return false;
        }
        let mut tx = self.net.new_tx_buffer(frame.len());
        tx.packet_mut().copy_from_slice(frame);
        if self.net.send(tx).is_err() {
            self.tx_dropped += 1;
            return false;
        }
        true
    }

    fn ack_interrupt(&mut self) {
        let _ = self.net.ack_interrupt();
    }
}
