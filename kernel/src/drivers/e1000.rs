//! The Intel 8254x ("e1000") Gigabit Ethernet controller: the 82540EM (PCI
//! 8086:100e) that is QEMU's default NIC and common in real PCs, and the two
//! other 8254x parts QEMU models, which program the same way for what is used
//! here. Legacy descriptors, one receive and one transmit ring, interrupts on
//! the PCI INTx line.
//!
//! Sections cited are of Intel's "PCI/PCI-X Family of Gigabit Ethernet
//! Controllers Software Developer's Manual" (8254x SDM, order no. 317453):
//! register offsets from Table 13-2 and §13.4, the descriptor layouts from §3.2.3
//! and §3.3.3, the bring-up order from §14.3–§14.5.
//!
//! The receive path does not allocate (frames are copied out of the ring into
//! the caller's buffer); bad device state (an error bit, a frame spread over
//! several descriptors, a full transmit ring, a reset that never ends) is
//! counted and dropped, never a panic.

use super::Nic;
use super::pci;
use crate::mem;
use alloc::alloc::{Layout, alloc_zeroed};
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{Ordering, fence};
use virtio_drivers::transport::pci::bus::{BarInfo, Command};

/// Intel's PCI vendor ID.
pub const VENDOR_INTEL: u16 = 0x8086;

/// The 8254x parts this driver takes (SDM §5.6 / Table 5-1, device IDs; the
/// three QEMU models in `hw/net/e1000.c`).
pub const DEVICE_IDS: &[(u16, &str)] = &[
    (0x100E, "82540EM"),
    (0x100F, "82545EM"),
    (0x100C, "82544GC"),
];

/// A register: its byte offset in the BAR0 memory space (SDM Table 13-2).
#[derive(Clone, Copy)]
struct Reg(usize);

/// Device Control (§13.4.1).
const CTRL: Reg = Reg(0x0000);
/// Device Status (§13.4.2).
const STATUS: Reg = Reg(0x0008);
/// EEPROM Read (§13.4.4).
const EERD: Reg = Reg(0x0014);
/// Interrupt Cause Read, cleared by reading (§13.4.17).
const ICR: Reg = Reg(0x00C0);
/// Interrupt Mask Set/Read (§13.4.20).
const IMS: Reg = Reg(0x00D0);
/// Interrupt Mask Clear (§13.4.21).
const IMC: Reg = Reg(0x00D8);
/// Receive Control (§13.4.22).
const RCTL: Reg = Reg(0x0100);
/// Transmit Control (§13.4.33).
const TCTL: Reg = Reg(0x0400);
/// Transmit Inter-Packet Gap (§13.4.34).
const TIPG: Reg = Reg(0x0410);
/// Receive Descriptor Base Address Low/High, Length, Head, Tail (§13.4.25–29).
const RDBAL: Reg = Reg(0x2800);
const RDBAH: Reg = Reg(0x2804);
const RDLEN: Reg = Reg(0x2808);
const RDH: Reg = Reg(0x2810);
const RDT: Reg = Reg(0x2818);
/// Transmit Descriptor Base Address Low/High, Length, Head, Tail (§13.4.38–42).
const TDBAL: Reg = Reg(0x3800);
const TDBAH: Reg = Reg(0x3804);
const TDLEN: Reg = Reg(0x3808);
const TDH: Reg = Reg(0x3810);
const TDT: Reg = Reg(0x3818);
/// Multicast Table Array, 128 registers (§13.5.1).
const MTA: Reg = Reg(0x5200);
const MTA_COUNT: usize = 128;
/// Receive Address Low/High of entry 0 (§13.5.2, §13.5.3).
const RAL0: Reg = Reg(0x5400);
const RAH0: Reg = Reg(0x5404);

/// CTRL bits (§13.4.1).
const CTRL_ASDE: u32 = 1 << 5;
const CTRL_SLU: u32 = 1 << 6;
const CTRL_LRST: u32 = 1 << 3;
const CTRL_ILOS: u32 = 1 << 7;
const CTRL_RST: u32 = 1 << 26;
const CTRL_VME: u32 = 1 << 30;
const CTRL_PHY_RST: u32 = 1 << 31;
/// STATUS.LU: link up (§13.4.2).
const STATUS_LU: u32 = 1 << 1;
/// EERD fields of the 82540EM (§13.4.4): start, done, address at 15:8, data at 31:16.
const EERD_START: u32 = 1 << 0;
const EERD_DONE: u32 = 1 << 4;
/// RAH.AV: the address is valid (§13.5.3).
const RAH_AV: u32 = 1 << 31;
/// Interrupt causes (§13.4.17): link status change, receive descriptor
/// minimum threshold, receiver overrun, receive timer.
const INT_LSC: u32 = 1 << 2;
const INT_RXDMT0: u32 = 1 << 4;
const INT_RXO: u32 = 1 << 6;
const INT_RXT0: u32 = 1 << 7;
/// RCTL bits (§13.4.22): enable, broadcast accept, strip the Ethernet CRC;
/// BSIZE 00 with BSEX 0 is 2048-byte buffers.
const RCTL_EN: u32 = 1 << 1;
const RCTL_BAM: u32 = 1 << 15;
const RCTL_SECRC: u32 = 1 << 26;
/// TCTL bits (§13.4.33): enable, pad short packets, collision threshold 0x0F
/// at 11:4, collision distance 0x40 (full duplex) at 21:12.
const TCTL_EN: u32 = 1 << 1;
const TCTL_PSP: u32 = 1 << 3;
const TCTL_CT: u32 = 0x0F << 4;
const TCTL_COLD: u32 = 0x40 << 12;
/// TIPG for the 82540EM on copper (§13.4.34): IPGT 10, IPGR1 8, IPGR2 6.
const TIPG_VALUE: u32 = 10 | (8 << 10) | (6 << 20);

/// A legacy receive descriptor (§3.2.3).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RxDesc {
    /// Physical address of the buffer.
    addr: u64,
    /// Bytes written into the buffer.
    length: u16,
    /// Packet checksum.
    checksum: u16,
    /// Status (§3.2.3.1): DD bit 0, EOP bit 1.
    status: u8,
    /// Errors (§3.2.3.2): any set bit means a bad frame.
    errors: u8,
    /// VLAN tag.
    special: u16,
}

/// A legacy transmit descriptor (§3.3.3).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TxDesc {
    /// Physical address of the data.
    addr: u64,
    /// Bytes to send.
    length: u16,
    /// Checksum offset.
    cso: u8,
    /// Command (§3.3.3.1): EOP bit 0, IFCS bit 1, RS bit 3.
    cmd: u8,
    /// Status (§3.3.3.2): DD bit 0.
    status: u8,
    /// Checksum start.
    css: u8,
    /// VLAN tag.
    special: u16,
}

const DESC_DD: u8 = 1 << 0;
const DESC_EOP: u8 = 1 << 1;
const TX_CMD_EOP: u8 = 1 << 0;
const TX_CMD_IFCS: u8 = 1 << 1;
const TX_CMD_RS: u8 = 1 << 3;

/// Descriptors per ring; a ring's length is a multiple of 128 bytes (§13.4.27).
const RING: usize = 32;
/// Buffer size per descriptor (RCTL.BSIZE = 2048).
const BUF: usize = 2048;

const _: () = assert!(size_of::<RxDesc>() == 16 && size_of::<TxDesc>() == 16);
const _: () = assert!((RING * 16).is_multiple_of(128));

/// A block of DMA memory from the kernel heap (physically contiguous, see
/// [`super::virtio::KernelHal`]). It is never freed: the card may write to
/// it for as long as the kernel runs.
struct Dma {
    virt: *mut u8,
    phys: u64,
}

impl Dma {
    /// `len` zeroed bytes, page-aligned; `None` when the heap is exhausted.
    fn new(len: usize) -> Option<Dma> {
        let layout = Layout::from_size_align(len, 4096).ok()?;
        // SAFETY: the layout has a non-zero size (every caller asks for rings or buffers).
        let virt = unsafe { alloc_zeroed(layout) };
        if virt.is_null() {
            return None;
        }
        Some(Dma {
            virt,
            phys: mem::virt_to_phys(virt as u64),
        })
    }
}

/// An 8254x card, set up and running.
pub struct E1000 {
    /// BAR0 mapped through the physical-memory map (uncached).
    regs: *mut u8,
    rx_ring: Dma,
    rx_bufs: Dma,
    tx_ring: Dma,
    tx_bufs: Dma,
    /// The next receive descriptor the card will fill.
    rx_next: usize,
    /// The next transmit descriptor to use.
    tx_next: usize,
    /// Inside a frame spread over several descriptors, dropping until its end.
    rx_discarding: bool,
    mac: [u8; 6],
    /// Frames dropped on receive (error bits, too long, spread over descriptors).
    pub rx_dropped: u64,
    /// Frames dropped on transmit (ring full, too long).
    pub tx_dropped: u64,
}

// SAFETY: the register window and the DMA memory belong to this value alone;
// the network stack reaches it only through its lock.
unsafe impl Send for E1000 {}

impl E1000 {
    fn read(&self, reg: Reg) -> u32 {
        // SAFETY: `regs` maps the card's 128 KiB register BAR (uncached) and
        // every `Reg` is an aligned offset inside it (Table 13-2).
        unsafe { read_volatile(self.regs.add(reg.0).cast::<u32>()) }
    }

    fn write(&mut self, reg: Reg, value: u32) {
        // SAFETY: as in `read`.
        unsafe { write_volatile(self.regs.add(reg.0).cast::<u32>(), value) }
    }

    fn rx_desc(&self, i: usize) -> *mut RxDesc {
        // SAFETY: `i < RING`; the ring holds `RING` descriptors.
        unsafe { self.rx_ring.virt.cast::<RxDesc>().add(i % RING) }
    }

    fn tx_desc(&self, i: usize) -> *mut TxDesc {
        // SAFETY: as in `rx_desc`.
        unsafe { self.tx_ring.virt.cast::<TxDesc>().add(i % RING) }
    }

    /// Resets the card (§14.3, CTRL.RST self-clears); `false` if the reset
    /// does not end within a bounded wait.
    fn reset(&mut self) -> bool {
        self.write(IMC, u32::MAX);
        let ctrl = self.read(CTRL);
        self.write(CTRL, ctrl | CTRL_RST);
        for _ in 0..1_000_000 {
            if self.read(CTRL) & CTRL_RST == 0 {
                self.write(IMC, u32::MAX);
                let _ = self.read(ICR);
                return true;
            }
            core::hint::spin_loop();
        }
        false
    }

    /// The station address: RAL0/RAH0 as loaded from the EEPROM at reset,
    /// else read from the EEPROM (words 0–2) through EERD.
    fn read_mac(&mut self) -> Option<[u8; 6]> {
        let (ral, rah) = (self.read(RAL0), self.read(RAH0));
        if rah & RAH_AV != 0 && (ral != 0 || rah & 0xFFFF != 0) {
            let l = ral.to_le_bytes();
            let h = rah.to_le_bytes();
            return Some([l[0], l[1], l[2], l[3], h[0], h[1]]);
        }
        let mut mac = [0u8; 6];
        for word in 0..3u32 {
            self.write(EERD, EERD_START | (word << 8));
            let mut value = None;
            for _ in 0..100_000 {
                let r = self.read(EERD);
                if r & EERD_DONE != 0 {
                    value = Some((r >> 16) as u16);
                    break;
                }
                core::hint::spin_loop();
            }
            let bytes = value?.to_le_bytes();
            mac[2 * word as usize] = bytes[0];
            mac[2 * word as usize + 1] = bytes[1];
        }
        let ral = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
        let rah = u32::from(u16::from_le_bytes([mac[4], mac[5]])) | RAH_AV;
        self.write(RAL0, ral);
        self.write(RAH0, rah);
        Some(mac)
    }

    /// Link setup, receive and transmit rings, interrupts (§14.3–§14.5).
    fn start(&mut self) {
        let ctrl = self.read(CTRL);
        self.write(
            CTRL,
            (ctrl | CTRL_SLU | CTRL_ASDE) & !(CTRL_LRST | CTRL_ILOS | CTRL_VME | CTRL_PHY_RST),
        );
        for i in 0..MTA_COUNT {
            self.write(Reg(MTA.0 + 4 * i), 0);
        }

        for i in 0..RING {
            let desc = RxDesc {
                addr: self.rx_bufs.phys + (i * BUF) as u64,
                ..RxDesc::default()
            };
            // SAFETY: `rx_desc(i)` points into the ring, which the card does
            // not read yet (receive is off).
            unsafe { write_volatile(self.rx_desc(i), desc) };
            let desc = TxDesc {
                addr: self.tx_bufs.phys + (i * BUF) as u64,
                // Free until used: `transmit` takes a descriptor whose DD is set.
                status: DESC_DD,
                ..TxDesc::default()
            };
            // SAFETY: as above, for the transmit ring.
            unsafe { write_volatile(self.tx_desc(i), desc) };
        }
        fence(Ordering::SeqCst);
        let (rx, tx) = (self.rx_ring.phys, self.tx_ring.phys);
        self.write(RDBAL, rx as u32);
        self.write(RDBAH, (rx >> 32) as u32);
        self.write(RDLEN, (RING * 16) as u32);
        self.write(RDH, 0);
        self.write(RDT, (RING - 1) as u32);
        self.write(RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);

        self.write(TDBAL, tx as u32);
        self.write(TDBAH, (tx >> 32) as u32);
        self.write(TDLEN, (RING * 16) as u32);
        self.write(TDH, 0);
        self.write(TDT, 0);
        self.write(TIPG, TIPG_VALUE);
        self.write(TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);

        self.write(IMS, INT_LSC | INT_RXDMT0 | INT_RXO | INT_RXT0);
        let _ = self.read(ICR);
    }
}

/// Finds the first 8254x PCI function, resets and starts it, and returns it
/// with its IRQ line. `None` (logged) when there is none or it fails to start.
pub fn probe() -> Option<(E1000, u8)> {
    let mut root = pci::root();
    for (df, info) in pci::devices() {
        if info.vendor_id != VENDOR_INTEL {
            continue;
        }
        let Some((_, part)) = DEVICE_IDS.iter().find(|(id, _)| *id == info.device_id) else {
            continue;
        };
        log::info!("pci: e1000 ({part}) at {df} ({info})");
        let (phys, size) = match root.bar_info(df, 0) {
            Ok(Some(BarInfo::Memory { address, size, .. })) if address != 0 && size >= 0x1_0000 => {
                (address, size)
            }
            other => {
                log::error!("e1000: BAR0 is not a usable memory BAR: {other:?}");
                continue;
            }
        };
        root.set_command(df, Command::MEMORY_SPACE | Command::BUS_MASTER);
        mem::map_mmio(phys, size);
        let (Some(rx_ring), Some(rx_bufs), Some(tx_ring), Some(tx_bufs)) = (
            Dma::new(RING * 16),
            Dma::new(RING * BUF),
            Dma::new(RING * 16),
            Dma::new(RING * BUF),
        ) else {
            log::error!("e1000: no memory for the descriptor rings");
            return None;
        };
        let mut nic = E1000 {
            regs: mem::phys_to_virt(x86_64::PhysAddr::new(phys)).as_mut_ptr(),
            rx_ring,
            rx_bufs,
            tx_ring,
            tx_bufs,
            rx_next: 0,
            tx_next: 0,
            rx_discarding: false,
            mac: [0; 6],
            rx_dropped: 0,
            tx_dropped: 0,
        };
        if !nic.reset() {
            log::error!("e1000: the card did not finish its reset");
            continue;
        }
        let Some(mac) = nic.read_mac() else {
            log::error!("e1000: no MAC address (EEPROM read timed out)");
            continue;
        };
        nic.mac = mac;
        nic.start();
        log::info!(
            "e1000: {part} started, link {}",
            if nic.read(STATUS) & STATUS_LU != 0 {
                "up"
            } else {
                "down"
            }
        );
        return Some((nic, pci::interrupt_line(df)));
    }
    None
}

impl Nic for E1000 {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        // At most one pass over the ring: dropped frames are skipped.
        for _ in 0..RING {
            let i = self.rx_next;
            // SAFETY: `rx_desc(i)` is in the ring; the card writes it by DMA,
            // hence the volatile read.
            let desc = unsafe { read_volatile(self.rx_desc(i)) };
            if desc.status & DESC_DD == 0 {
                return None;
            }
            // The rest of the descriptor and the buffer are read after DD.
            fence(Ordering::Acquire);
            let len = usize::from(desc.length);
            let end = desc.status & DESC_EOP != 0;
            let whole = !self.rx_discarding && end;
            let good = whole && desc.errors == 0 && len <= BUF && len <= buf.len();
            if good {
                // SAFETY: buffer `i` is `BUF` bytes inside `rx_bufs`, and the
                // card is done with it (DD set) until it is handed back below.
                let src =
                    unsafe { core::slice::from_raw_parts(self.rx_bufs.virt.add(i * BUF), len) };
                buf[..len].copy_from_slice(src);
            } else if !self.rx_discarding {
                // Counted once per bad frame, at its first descriptor.
                self.rx_dropped += 1;
                if self.rx_dropped.is_power_of_two() {
                    log::warn!("e1000: {} received frames dropped", self.rx_dropped);
                }
            }
            self.rx_discarding = !end;
            let fresh = RxDesc {
                addr: desc.addr,
                ..RxDesc::default()
            };
            // SAFETY: the descriptor is the driver's until the tail moves past it.
            unsafe { write_volatile(self.rx_desc(i), fresh) };
            fence(Ordering::Release);
            self.write(RDT, i as u32);
            self.rx_next = (i + 1) % RING;
            if good {
                return Some(len);
            }
        }
        None
    }

    fn transmit(&mut self, frame: &[u8]) -> bool {
        let i = self.tx_next;
        // SAFETY: `tx_desc(i)` is in the ring; the card writes DD by DMA.
        let desc = unsafe { read_volatile(self.tx_desc(i)) };
        if frame.is_empty() || frame.len() > BUF || desc.status & DESC_DD == 0 {
            self.tx_dropped += 1;
            if self.tx_dropped.is_power_of_two() {
                log::warn!(
                    "e1000: {} frames not sent (ring full or bad size)",
                    self.tx_dropped
                );
            }
            return false;
        }
        fence(Ordering::Acquire);
        // SAFETY: buffer `i` is `BUF` bytes inside `tx_bufs`; the card is done
        // with it (DD set) and reads it again only after the tail moves.
        let dst =
            unsafe { core::slice::from_raw_parts_mut(self.tx_bufs.virt.add(i * BUF), frame.len()) };
        dst.copy_from_slice(frame);
        let next = TxDesc {
            addr: self.tx_bufs.phys + (i * BUF) as u64,
            length: frame.len() as u16,
            cmd: TX_CMD_EOP | TX_CMD_IFCS | TX_CMD_RS,
            ..TxDesc::default()
        };
        // SAFETY: as above; the descriptor is the driver's until the tail moves.
        unsafe { write_volatile(self.tx_desc(i), next) };
        fence(Ordering::Release);
        self.tx_next = (i + 1) % RING;
        self.write(TDT, self.tx_next as u32);
        true
    }

    fn ack_interrupt(&mut self) {
        // Reading ICR clears every cause (§13.4.17).
        let _ = self.read(ICR);
    }
}
