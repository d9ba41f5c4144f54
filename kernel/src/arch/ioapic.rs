//! The I/O APIC (Intel 82093AA datasheet §3.2; ACPI 6.5 §5.2.12.3 and
//! §5.2.12.5): device interrupts on a node with several CPUs. Each input
//! (a global system interrupt, GSI) has a redirection table entry that says
//! which vector to send to which local APIC, and how the line signals
//! (edge or level, active high or low). Register access and the entry's
//! layout come from the `x2apic` crate.
//!
//! SiON routes the few lines it uses (the NIC's) to the first CPU, on the
//! vector the 8259 PIC would have used for the same line (32 + line), so
//! the trap dispatcher handles a line the same way whichever controller
//! delivered it; only the end of interrupt differs ([`super::end_of_line`]).
//! Every other input stays masked. A node with one CPU, or whose firmware
//! lists no I/O APIC, keeps the 8259 PIC.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
use x2apic::ioapic::{IoApic, IrqFlags, IrqMode, RedirectionTableEntry};

/// An I/O APIC the MADT lists (ACPI 6.5 §5.2.12.3).
#[derive(Clone, Copy, Debug)]
pub struct IoApicInfo {
    /// Its I/O APIC id.
    pub id: u8,
    /// Physical address of its registers (4 KiB or less).
    pub address: u32,
    /// The GSI of its input 0.
    pub gsi_base: u32,
}

/// An interrupt source override of the MADT (ACPI 6.5 §5.2.12.5): ISA line
/// `line` arrives on GSI `gsi`, with the signalling given (`None`: as the
/// bus defines it).
#[derive(Clone, Copy, Debug)]
pub struct LineOverride {
    /// The ISA interrupt line (0–15).
    pub line: u8,
    /// The global system interrupt it is wired to.
    pub gsi: u32,
    /// `Some(true)`: active low; `Some(false)`: active high.
    pub active_low: Option<bool>,
    /// `Some(true)`: level-triggered; `Some(false)`: edge-triggered.
    pub level: Option<bool>,
}

/// An I/O APIC in use: its registers and the GSIs it serves.
struct Controller {
    regs: IoApic,
    gsi_base: u32,
    inputs: u32,
}

struct Routing {
    controllers: Vec<Controller>,
    overrides: Vec<LineOverride>,
}

static ROUTING: Mutex<Option<Routing>> = Mutex::new(None);
static IN_USE: AtomicBool = AtomicBool::new(false);

/// Takes the I/O APICs `io_apics` into use with the MADT's `overrides`:
/// maps their registers and masks every input. Returns false (and the node
/// keeps the 8259 PIC) when there is none. Called once, on the bootstrap
/// CPU, after the local APIC is in use.
pub fn init(io_apics: &[IoApicInfo], overrides: &[LineOverride]) -> bool {
    let mut controllers = Vec::new();
    for info in io_apics {
        let phys = u64::from(info.address);
        crate::mem::map_mmio(phys, 4096);
        // SAFETY: the registers were just mapped uncached at PHYS_OFFSET,
        // for good, in the kernel half every address space shares; this is
        // the only `IoApic` for this address (ROUTING owns it).
        let mut regs = unsafe { IoApic::new(crate::mem::PHYS_OFFSET + phys) };
        // SAFETY: reading the version register and masking inputs has no
        // effect but that no interrupt comes from them.
        let inputs = unsafe {
            let last = regs.max_table_entry();
            for input in 0..=last {
                regs.disable_irq(input);
            }
            u32::from(last) + 1
        };
        log::info!(
            "ioapic: I/O APIC {} at {phys:#x}: GSIs {}–{}",
            info.id,
            info.gsi_base,
            info.gsi_base + inputs - 1
        );
        controllers.push(Controller {
            regs,
            gsi_base: info.gsi_base,
            inputs,
        });
    }
    if controllers.is_empty() {
        log::warn!("ioapic: the MADT lists no I/O APIC; device interrupts stay on the 8259 PIC");
        return false;
    }
    *ROUTING.lock() = Some(Routing {
        controllers,
        overrides: overrides.to_vec(),
    });
    IN_USE.store(true, Ordering::Release);
    true
}

/// Whether device interrupts come through an I/O APIC ([`init`] succeeded).
pub fn in_use() -> bool {
    IN_USE.load(Ordering::Acquire)
}

/// Routes PCI interrupt line `line` (0–15, the line the firmware assigned a
/// PCI function, PCI 3.0 §6.2.4) to the local APIC `apic_id` on `vector`,
/// and unmasks it. The MADT's override for the line gives its GSI and
/// signalling; without one (or where it says "as the bus") the line is the
/// GSI of the same number, level-triggered and active low, as PCI
/// interrupts are (PCI 3.0 §2.2.6). Returns a description for the log, or
/// why the line cannot be routed.
pub fn route_pci_line(
    line: u8,
    apic_id: u32,
    vector: u8,
) -> Result<alloc::string::String, &'static str> {
    let mut routing = ROUTING.lock();
    let routing = routing.as_mut().ok_or("no I/O APIC is in use")?;
    let found = routing.overrides.iter().find(|o| o.line == line);
    let gsi = found.map_or(u32::from(line), |o| o.gsi);
    let active_low = found.and_then(|o| o.active_low).unwrap_or(true);
    let level = found.and_then(|o| o.level).unwrap_or(true);
    let dest =
        u8::try_from(apic_id).map_err(|_| "the CPU's APIC id does not fit an I/O APIC entry")?;
    let controller = routing
        .controllers
        .iter_mut()
        .find(|c| (c.gsi_base..c.gsi_base + c.inputs).contains(&gsi))
        .ok_or("no I/O APIC serves the line's GSI")?;
    let input = (gsi - controller.gsi_base) as u8;
    let mut flags = IrqFlags::empty();
    if active_low {
        flags |= IrqFlags::LOW_ACTIVE;
    }
    if level {
        flags |= IrqFlags::LEVEL_TRIGGERED;
    }
    let mut entry = RedirectionTableEntry::default();
    entry.set_vector(vector);
    entry.set_mode(IrqMode::Fixed);
    entry.set_flags(flags);
    entry.set_dest(dest);
    // SAFETY: the input is one of this I/O APIC's (checked above), and
    // `vector` has a handler on every CPU.
    unsafe { controller.regs.set_table_entry(input, entry) };
    Ok(alloc::format!(
        "GSI {gsi} ({}, active {}) to APIC id {apic_id}, vector {vector}",
        if level { "level" } else { "edge" },
        if active_low { "low" } else { "high" },
    ))
}
