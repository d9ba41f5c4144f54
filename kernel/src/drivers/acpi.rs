//! The firmware's ACPI tables (ACPI 6.5 §5.2), read with the `acpi` crate:
//! the processors the MADT lists (§5.2.12), which the kernel starts
//! ([`crate::arch::smp`]).
//!
//! Tables are reached through the map of all physical memory
//! ([`crate::mem::PHYS_OFFSET`]); a missing or malformed table is logged
//! and counts as one processor, never a panic.

use alloc::vec::Vec;
use core::ptr::NonNull;

/// Reads the tables at `rsdp` (the bootloader's physical address of the
/// RSDP, if it found one): the local APIC ids of the processors the MADT
/// lists as enabled or startable, the bootstrap processor's first; just
/// the bootstrap processor (`[0]`, never started as another) when there is
/// no readable MADT, which is logged.
pub fn processors(rsdp: Option<u64>) -> Vec<u32> {
    let one = alloc::vec![0];
    let Some(rsdp) = rsdp else {
        log::warn!("acpi: no RSDP from the firmware; counting one processor");
        return one;
    };
    // SAFETY: the bootloader found a valid RSDP at this physical address, and
    // every physical address is mapped at PHYS_OFFSET (PhysMap).
    let tables = match unsafe { acpi::AcpiTables::from_rsdp(PhysMap, rsdp as usize) } {
        Ok(t) => t,
        Err(e) => {
            log::warn!("acpi: the tables cannot be read ({e:?}); counting one processor");
            return one;
        }
    };
    let info = match tables.platform_info() {
        Ok(i) => i,
        Err(e) => {
            log::warn!("acpi: no processor list in the MADT ({e:?}); counting one processor");
            return one;
        }
    };
    let Some(cpus) = info.processor_info else {
        log::warn!("acpi: the MADT lists no processors; counting one");
        return one;
    };
    let mut ids = alloc::vec![cpus.boot_processor.local_apic_id];
    ids.extend(
        cpus.application_processors
            .iter()
            .filter(|p| p.state != acpi::platform::ProcessorState::Disabled)
            .map(|p| p.local_apic_id),
    );
    log::info!(
        "acpi: {} processor(s) in the MADT, bootstrap local APIC id {}",
        ids.len(),
        cpus.boot_processor.local_apic_id
    );
    ids
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
