//! The SiON kernel: boot, then run SiON processes under a round-robin scheduler.
//!
//! What lives here follows the SiON paper (§4.1, §4.2.3): a scheduler without
//! priorities, process management, interrupts, a few devices (timer, serial,
//! screen) and message-passing IPC. Everything else runs as processes loaded from
//! the process images packed into the disk image's ramdisk.
#![no_std]
#![no_main]

extern crate alloc;

mod app;
mod arch;
mod bootargs;
mod console;
mod drivers;
mod ipc;
mod logger;
mod mem;
mod net;
mod proc;
mod ramdisk;
mod syscall;
mod time;
mod trap;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::{BootInfo, entry_point};

/// Where the bootloader maps all of physical memory (the kernel's "map of all
/// physical memory", SiON paper §4.2.3). Must match [`mem::PHYS_OFFSET`].
const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.kernel_stack_size = 256 * 1024;
    config.mappings.physical_memory = Some(Mapping::FixedAddress(mem::PHYS_OFFSET));
    config.mappings.kernel_base = Mapping::FixedAddress(0xFFFF_FFFF_8000_0000);
    // Everything else the bootloader maps goes to the upper half too, so the lower
    // half of every address space belongs to its process alone.
    config.mappings.dynamic_range_start = Some(0xFFFF_9000_0000_0000);
    config.mappings.dynamic_range_end = Some(0xFFFF_FFFF_7FFF_FFFF);
    config
};

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

/// The kernel's version, as printed in the boot banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    logger::init();
    if let Some(fb) = boot_info.framebuffer.as_mut() {
        let info = fb.info();
        drivers::fbcon::init(fb.buffer_mut(), info);
    }
    log::info!("SiON {VERSION} (Self Integrated Operating-system for Nodes) booting");

    let protections = arch::init();
    trap::init();
    log::info!("cpu: {protections}");
    mem::init(&boot_info.memory_regions);
    let platform = drivers::acpi::platform(boot_info.rsdp_addr.into_option());
    time::init();
    let cpus = start_processors(&platform.processors);
    if cpus > 1 {
        arch::use_io_apic(&platform.io_apics, &platform.overrides);
    }
    let ramdisk = mem::boot_ramdisk(boot_info.ramdisk_addr.into_option(), boot_info.ramdisk_len);
    ramdisk::init(ramdisk);
    net::init(drivers::probe_nic());
    proc::set_release_hook(net::release);
    let args = bootargs::BootArgs::read();
    let init = args.get("init").unwrap_or("init");
    log::info!(
        "memory: {} MiB free; clock: {} MHz TSC; cpus: {} found, SiON runs on {cpus}; ramdisk: {} process images",
        mem::frame::free_bytes() / (1024 * 1024),
        time::tsc_hz() / 1_000_000,
        platform.processors.len(),
        ramdisk::count(),
    );
    let mut init_arg = crash_hook(&args);
    init_arg.push_str(&cluster_key(&args));
    match proc::spawn_first(init, init_arg.as_bytes()) {
        Ok(pid) => log::info!("started {init} as process {pid}"),
        Err(e) => log::error!("cannot start {init}: {e}"),
    }
    proc::scheduler::run()
}

/// Starts the other processors the firmware listed (`apic_ids`, the
/// bootstrap's first), if there are any; returns how many CPUs run. A node
/// with one processor keeps the PIT and PIC as its only interrupt sources.
fn start_processors(apic_ids: &[u32]) -> usize {
    if apic_ids.len() < 2 {
        return 1;
    }
    let Some(low_frames) = mem::frame::low_frames(4) else {
        log::warn!("smp: no free memory below 1 MiB for the start-up code; running on one CPU");
        return 1;
    };
    let boot = arch::smp::Boot {
        low_frames,
        kernel_cr3: mem::space::kernel_table(),
        now_ns: time::now_ns,
        entry: application_processor_main,
    };
    arch::smp::start_processors(apic_ids, &boot, arch::pic::TIMER_HZ, time::tsc_hz())
}

/// Where a started application processor enters the kernel (from the
/// trampoline of [`arch::smp`], on its own boot stack, as CPU `index`): it
/// sets itself up, loads the kernel's page table and runs the scheduler.
extern "C" fn application_processor_main(index: u64) -> ! {
    arch::init_application_processor(index as usize);
    mem::space::activate_kernel();
    log::info!("smp: cpu {index} (APIC id {}) running", arch::apic::id());
    proc::scheduler::run()
}

/// The line `crash=SERVICE:SECONDS\n` that tells `init` to kill a service
/// once, for a test of its supervision (`sion_kernel_core::supervise`), if
/// that boot argument is given; else empty.
fn crash_hook(args: &bootargs::BootArgs) -> alloc::string::String {
    use sion_kernel_core::supervise::{CRASH_ARG, MAX_CRASH_VALUE};
    match args.get(CRASH_ARG) {
        Some(v) if v.len() <= MAX_CRASH_VALUE => alloc::format!("{CRASH_ARG}={v}\n"),
        Some(_) => {
            log::error!("boot argument {CRASH_ARG}= longer than {MAX_CRASH_VALUE} bytes: ignored");
            alloc::string::String::new()
        }
        None => alloc::string::String::new(),
    }
}

/// The cluster key's text for `init` (which hands it to the node's
/// services): the boot argument `key=HEX[,HEX…]` if given, else the file
/// `cluster.key` that `sion-image --key` put into the ramdisk, else empty (an
/// open group). The kernel does not read it; the services parse it and refuse
/// a malformed one. Too long a text is replaced by one that cannot parse, so
/// such a node joins no group rather than an open one.
fn cluster_key(args: &bootargs::BootArgs) -> alloc::string::String {
    use alloc::string::String;
    use sion_abi::MAX_KEY_TEXT;
    let text = match args.get("key") {
        Some(k) => String::from(k),
        None => crate::ramdisk::find(ramdisk::CLUSTER_KEY)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default(),
    };
    if text.len() > MAX_KEY_TEXT {
        log::error!("cluster key: the key text is longer than {MAX_KEY_TEXT} bytes");
        return String::from("(key text too long)");
    }
    if !text.trim().is_empty() {
        log::info!("cluster key: given to the node's services");
    }
    text
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    arch::interrupts_off();
    logger::force_unlock();
    log::error!("KERNEL PANIC: {info}");
    arch::qemu::exit_failure()
}
