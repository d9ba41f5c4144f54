//! The firmware's ACPI tables (ACPI 6.5 §5.2), read with the `acpi` crate:
//! what the MADT (§5.2.12) says of the machine's interrupt hardware — the
//! processors, which the kernel starts ([`crate::arch::smp`]), and the I/O
//! APICs with the interrupt source overrides, which carry device interrupts
//! on a node with several CPUs ([`crate::arch::ioapic`]).
//!
//! Tables are reached through the map of all physical memory
//! ([`crate::mem::PHYS_OFFSET`]); a missing or malformed table is logged
//! and counts as one processor and no I/O APIC, never a panic.

use crate::arch::ioapic::{IoApicInfo, LineOverride};
use acpi::platform::interrupt::{InterruptModel, Polarity, TriggerMode};
use alloc::vec::Vec;
use core::ptr::NonNull;

/// The machine's interrupt hardware, from the MADT.
pub struct Platform {
    /// The local APIC ids of the processors listed as enabled or
    /// startable, the bootstrap processor's first (`[0]` when unknown).
    pub processors: Vec<u32>,
    /// The I/O APICs (none when unknown).
    pub io_apics: Vec<IoApicInfo>,
    /// How ISA lines map to GSIs where not one to one.
    pub overrides: Vec<LineOverride>,
}

/// Reads the tables at `rsdp` (the bootloader's physical address of the
/// RSDP, if it found one). Without a readable MADT the platform is one
/// processor (`[0]`, never started as another) and no I/O APIC, which is
/// logged.
pub fn platform(rsdp: Option<u64>) -> Platform {
    let mut platform = Platform {
        processors: alloc::vec![0],
        io_apics: Vec::new(),
        overrides: Vec::new(),
    };
    let Some(rsdp) = rsdp else {
        log::warn!("acpi: no RSDP from the firmware; counting one processor");
        return platform;
    };
    // SAFETY: the bootloader found a valid RSDP at this physical address, and
    // every physical address is mapped at PHYS_OFFSET (PhysMap).
    let tables = match unsafe { acpi::AcpiTables::from_rsdp(PhysMap, rsdp as usize) } {
        Ok(t) => t,
        Err(e) => {
            log::warn!("acpi: the tables cannot be read ({e:?}); counting one processor");
            return platform;
        }
    };
    let info = match tables.platform_info() {
        Ok(i) => i,
        Err(e) => {
            log::warn!("acpi: no processor list in the MADT ({e:?}); counting one processor");
            return platform;
        }
    };
    if let InterruptModel::Apic(apic) = &info.interrupt_model {
        platform.io_apics = apic
            .io_apics
            .iter()
            .map(|a| IoApicInfo {
                id: a.id,
                address: a.address,
                gsi_base: a.global_system_interrupt_base,
            })
            .collect();
        platform.overrides = apic
            .interrupt_source_overrides
            .iter()
            .map(|o| LineOverride {
                line: o.isa_source,
                gsi: o.global_system_interrupt,
                active_low: match o.polarity {
                    Polarity::SameAsBus => None,
                    Polarity::ActiveHigh => Some(false),
                    Polarity::ActiveLow => Some(true),
                },
                level: match o.trigger_mode {
                    TriggerMode::SameAsBus => None,
                    TriggerMode::Edge => Some(false),
                    TriggerMode::Level => Some(true),
                },
            })
            .collect();
    }
    let Some(cpus) = info.processor_info else {
        log::warn!("acpi: the MADT lists no processors; counting one");
        return platform;
    };
    let mut ids = alloc::vec![cpus.boot_processor.local_apic_id];
    ids.extend(
        cpus.application_processors
            .iter()
            .filter(|p| p.state != acpi::platform::ProcessorState::Disabled)
            .map(|p| p.local_apic_id),
    );
    log::info!(
        "acpi: {} processor(s) in the MADT, bootstrap local APIC id {}; {} I/O APIC(s), {} interrupt source override(s)",
        ids.len(),
        cpus.boot_processor.local_apic_id,
        platform.io_apics.len(),
        platform.overrides.len(),
    );
    platform.processors = ids;
    platform
}

/// Maps physical memory for the `acpi` crate: through the map of all of it.
#[derive(Clone, Copy, Debug)]
struct PhysMap;

impl acpi::AcpiHandler for PhysMap {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> acpi::PhysicalMapping<Self, T> {
        let virt = (crate::mem::PHYS_OFFSET as usize).wrapping_add(physical_address) as *mut T;
        let virt = NonNull::new(virt).unwrap_or(NonNull::dangling());
        // SAFETY: every physical address is mapped at PHYS_OFFSET for the
        // kernel's lifetime; the crate only reads the tables.
        unsafe { acpi::PhysicalMapping::new(physical_address, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &acpi::PhysicalMapping<Self, T>) {}
}
