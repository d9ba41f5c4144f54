//! Several CPUs: starting the application processors, the kernel lock, TLB
//! shootdown and waking idle CPUs.
//!
//! **The kernel lock.** SiON's kernel was written for one CPU: it is not
//! preemptible (interrupt gates keep interrupts off in ring 0) and its
//! tables are touched by one path at a time. On several CPUs that stays
//! true through one lock around all kernel code, taken on every entry from
//! ring 3 (and by an interrupt that wakes an idle CPU) and released on every
//! return ([`super::trap`]) and before an idle CPU halts. User code — where
//! a compute job spends its time — runs on all CPUs at once; kernel work
//! (system calls, IPC, scheduling) is serialised. This is the "giant lock"
//! of Linux 2.0 and FreeBSD 4: the simplest design that keeps the
//! single-CPU kernel's invariants, chosen for clarity over IPC throughput on
//! many CPUs. It is a ticket lock, so CPUs get it in the order they asked.
//!
//! **TLB shootdown.** When the kernel changes the mappings of an address
//! space that another CPU has loaded (threads of one job on two CPUs), that
//! CPU's TLB may hold the old entries. The changing CPU (holding the kernel
//! lock) marks a flush request for every such CPU, sends it
//! [`FLUSH_VECTOR`], and waits until each has flushed. The request is
//! answered without the kernel lock — by the interrupt handler, or by a CPU
//! spinning for the lock, which looks at its request while it waits — so
//! the wait cannot deadlock. Frames are freed under the lock, so none is
//! reused before every CPU has flushed.
//!
//! **Idle CPUs.** A CPU with nothing to run marks itself idle, releases the
//! lock and halts. Making a process ready wakes one idle CPU with
//! [`WAKE_VECTOR`]; nothing busy-waits.

use super::apic::{self, FLUSH_VECTOR, WAKE_VECTOR};
use super::percpu::{self, MAX_CPUS};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Ticket lock: the next ticket to hand out, and the ticket being served.
static NEXT_TICKET: AtomicU32 = AtomicU32::new(0);
static SERVING: AtomicU32 = AtomicU32::new(0);
/// The CPU holding the kernel lock, or [`NOBODY`].
static HOLDER: AtomicUsize = AtomicUsize::new(NOBODY);
const NOBODY: usize = usize::MAX;

/// CPUs running the scheduler (index order), and their local APIC ids.
static ONLINE: AtomicUsize = AtomicUsize::new(1);
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Per CPU: the page table (CR3 frame address) it has loaded; a flush it
/// has yet to make; halted in the idle loop.
static LOADED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static FLUSH: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static IDLE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// The local APIC is in use (more than one CPU was found).
static APIC_IN_USE: AtomicBool = AtomicBool::new(false);

/// Takes the kernel lock for this CPU, spinning until it is free and
/// answering flush requests meanwhile.
pub fn lock_kernel() {
    let me = percpu::index();
    debug_assert_ne!(
        HOLDER.load(Ordering::Relaxed),
        me,
        "kernel lock taken twice"
    );
    let ticket = NEXT_TICKET.fetch_add(1, Ordering::Relaxed);
    while SERVING.load(Ordering::Acquire) != ticket {
        take_flush_request();
        core::hint::spin_loop();
    }
    HOLDER.store(me, Ordering::Relaxed);
}

/// Releases the kernel lock if this CPU holds it.
pub fn unlock_kernel() {
    if HOLDER.load(Ordering::Relaxed) == percpu::index() {
        HOLDER.store(NOBODY, Ordering::Relaxed);
        SERVING.fetch_add(1, Ordering::Release);
    }
}

/// Makes the flush asked of this CPU, if any: reloads CR3, which empties its
/// TLB of every non-global (user) entry.
pub fn take_flush_request() {
    let me = percpu::index();
    if FLUSH[me].load(Ordering::Acquire) {
        x86_64::instructions::tlb::flush_all();
        FLUSH[me].store(false, Ordering::Release);
    }
}

/// Records that this CPU loaded page table `cr3` (a frame address).
pub fn note_loaded(cr3: u64) {
    LOADED[percpu::index()].store(cr3, Ordering::Relaxed);
}

/// After the mappings of the address space with page table `cr3` changed:
/// every other CPU that has it loaded flushes its TLB before this returns.
/// The caller holds the kernel lock and has flushed its own TLB.
pub fn shootdown(cr3: u64) {
    let me = percpu::index();
    let online = ONLINE.load(Ordering::Acquire);
    let mut asked = [false; MAX_CPUS];
    for cpu in (0..online).filter(|&c| c != me) {
        if LOADED[cpu].load(Ordering::Relaxed) == cr3 {
            FLUSH[cpu].store(true, Ordering::Release);
            apic::send_ipi(APIC_IDS[cpu].load(Ordering::Relaxed), FLUSH_VECTOR);
            asked[cpu] = true;
        }
    }
    for cpu in (0..online).filter(|&c| asked[c]) {
        while FLUSH[cpu].load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
}

/// CPUs running processes.
pub fn online() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// CPUs other than this one halted in the idle loop right now.
pub fn idle_others() -> usize {
    let me = percpu::index();
    (0..online())
        .filter(|&c| c != me && IDLE[c].load(Ordering::Relaxed))
        .count()
}

/// Halts this CPU, with the kernel lock released and the CPU marked idle
/// meanwhile, until there may be work; retakes the lock before returning.
/// The caller found nothing to run and holds the lock.
///
/// The first CPU returns after every interrupt (its timer tick polls the
/// network and wakes expired timeouts). The others go back to sleep until a
/// process became ready for them ([`wake_an_idle_cpu`] clears their idle
/// mark): their own timer ticks while idle are answered without the lock
/// ([`idle_tick`]), so idle CPUs do not contend for it.
pub fn idle_until_interrupt() {
    let me = percpu::index();
    IDLE[me].store(true, Ordering::Release);
    unlock_kernel();
    loop {
        super::wait_for_interrupt();
        if me == 0 || !IDLE[me].load(Ordering::Acquire) {
            break;
        }
    }
    lock_kernel();
    IDLE[me].store(false, Ordering::Relaxed);
}

/// True for an interrupt that an idle CPU other than the first answers
/// without the kernel lock: its timer tick and a wake-up, which only end
/// its halt ([`idle_until_interrupt`] looks at its idle mark).
pub fn idle_tick(vector: u8, from_user: bool) -> bool {
    !from_user && percpu::index() != 0 && (vector == apic::TIMER_VECTOR || vector == WAKE_VECTOR)
}

/// A process became ready: wakes one idle CPU, if there is one, to run it.
/// The caller holds the kernel lock.
pub fn wake_an_idle_cpu() {
    if !APIC_IN_USE.load(Ordering::Relaxed) {
        return;
    }
    let me = percpu::index();
    if let Some(cpu) = (0..online()).find(|&c| c != me && IDLE[c].load(Ordering::Relaxed)) {
        // Marked busy now, so a second ready process wakes another CPU.
        IDLE[cpu].store(false, Ordering::Relaxed);
        apic::send_ipi(APIC_IDS[cpu].load(Ordering::Relaxed), WAKE_VECTOR);
    }
}

/// Interrupts CPU `cpu` (to make it look at the process it runs).
pub fn poke(cpu: usize) {
    if APIC_IN_USE.load(Ordering::Relaxed) && cpu < online() && cpu != percpu::index() {
        apic::send_ipi(APIC_IDS[cpu].load(Ordering::Relaxed), WAKE_VECTOR);
    }
}

/// The local APIC id of the bootstrap CPU (CPU 0).
pub fn bootstrap_apic_id() -> u32 {
    APIC_IDS[0].load(Ordering::Relaxed)
}

/// Whether the CPUs use their local APICs (a node with several CPUs).
pub fn apic_in_use() -> bool {
    APIC_IN_USE.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------
// Starting the application processors.

core::arch::global_asm!(
    r#"
    .section .text.sion_ap_trampoline, "ax"
    .global sion_ap_start
    .global sion_ap_gdt
    .global sion_ap_gdtr_base
    .global sion_ap_far_offset
    .global sion_ap_long_mode
    .global sion_ap_cr3
    .global sion_ap_end
    .code16
sion_ap_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (sion_ap_gdtr - sion_ap_start)
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl (sion_ap_cr3 - sion_ap_start), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0
    ljmpl *(sion_ap_far_offset - sion_ap_start)
    .code64
sion_ap_long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq sion_ap_stack(%rip), %rsp
    movq sion_ap_arg(%rip), %rdi
    movq sion_ap_entry(%rip), %rax
    callq *%rax
    ud2
    .balign 8
sion_ap_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
sion_ap_gdtr:
    .word 23
sion_ap_gdtr_base:
    .long 0
sion_ap_far_offset:
    .long 0
    .word 0x08
    .balign 8
sion_ap_cr3:
    .quad 0
sion_ap_stack:
    .quad 0
sion_ap_entry:
    .quad 0
sion_ap_arg:
    .quad 0
sion_ap_end:
    .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static sion_ap_start: u8;
    static sion_ap_gdt: u8;
    static sion_ap_gdtr_base: u8;
    static sion_ap_far_offset: u8;
    static sion_ap_long_mode: u8;
    static sion_ap_cr3: u8;
    static sion_ap_end: u8;
}

/// Offset of a trampoline label from its start.
fn offset_of(label: *const u8) -> u64 {
    label as u64 - (&raw const sion_ap_start) as u64
}

/// Size of an application processor's boot stack (its scheduler loop's).
const AP_STACK_SIZE: usize = 64 * 1024;
/// Longest wait for a started CPU to reach 64-bit code.
const AP_START_TIMEOUT_NS: u64 = 200_000_000;

/// Set by a starting CPU once it runs the kernel's code.
static ARRIVED: AtomicBool = AtomicBool::new(false);

/// What `start_processors` needs from the layers above `arch`.
pub struct Boot {
    /// Low memory for the trampoline: four free 4 KiB frames below 1 MiB
    /// (code, then a PML4, PDPT and PD identity-mapping the first 2 MiB).
    pub low_frames: u64,
    /// The kernel's page table (frame address), whose upper half the
    /// trampoline's shares.
    pub kernel_cr3: u64,
    /// Nanoseconds since boot.
    pub now_ns: fn() -> u64,
    /// What a started CPU runs in 64-bit mode with its index; never returns.
    pub entry: extern "C" fn(u64) -> !,
}

/// Uses the local APIC on this (the bootstrap) CPU and starts the CPUs
/// whose local APIC ids are `apic_ids` (the bootstrap's first), one at a
/// time, with INIT–STARTUP–STARTUP (SDM §8.4.4.1; Linux's
/// `wakeup_secondary_cpu_via_init`). Returns how many run, this one
/// included; a CPU that does not answer within 200 ms is logged and left.
/// The caller holds the kernel lock; the started CPUs wait for it.
pub fn start_processors(apic_ids: &[u32], boot: &Boot, timer_hz: u32, tsc_hz: u64) -> usize {
    let mode = apic::init();
    apic::init_this_cpu(true);
    apic::calibrate_timer(timer_hz, tsc_hz);
    APIC_IN_USE.store(true, Ordering::Relaxed);
    let me = apic::id();
    APIC_IDS[0].store(me, Ordering::Relaxed);
    LOADED[0].store(
        x86_64::registers::control::Cr3::read()
            .0
            .start_address()
            .as_u64(),
        Ordering::Relaxed,
    );
    log::info!("smp: local APIC in {mode} mode; bootstrap CPU has APIC id {me}");
    let code = boot.low_frames;
    let page = |n: u64| crate::mem::PHYS_OFFSET + code + n * 4096;
    // SAFETY: the four low frames are free RAM handed over by the caller and
    // reached through the physical map; the trampoline is copied whole, then
    // its data fields are filled at their offsets.
    unsafe {
        let len = offset_of(&raw const sion_ap_end) as usize;
        core::ptr::copy_nonoverlapping(&raw const sion_ap_start, page(0) as *mut u8, len);
        let put32 = |label: *const u8, v: u32| {
            ((page(0) + offset_of(label)) as *mut u32).write_unaligned(v)
        };
        put32(
            &raw const sion_ap_gdtr_base,
            (code + offset_of(&raw const sion_ap_gdt)) as u32,
        );
        put32(
            &raw const sion_ap_far_offset,
            (code + offset_of(&raw const sion_ap_long_mode)) as u32,
        );
        let cr3_at = (page(0) + offset_of(&raw const sion_ap_cr3)) as *mut u64;
        cr3_at.write(code + 4096);
        // PML4: entry 0 → PDPT; the upper half as in the kernel's table.
        let pml4 = page(1) as *mut u64;
        let pdpt = page(2) as *mut u64;
        let pd = page(3) as *mut u64;
        core::ptr::write_bytes(pml4, 0, 512);
        core::ptr::write_bytes(pdpt, 0, 512);
        core::ptr::write_bytes(pd, 0, 512);
        let kernel = (crate::mem::PHYS_OFFSET + boot.kernel_cr3) as *const u64;
        for i in 256..512 {
            pml4.add(i).write(kernel.add(i).read());
        }
        pml4.write((code + 2 * 4096) | 0b11);
        pdpt.write((code + 3 * 4096) | 0b11);
        pd.write(0b1000_0011); // 2 MiB page at 0: present, writable, huge
    }
    let mut started = 1;
    for &apic_id in apic_ids.iter().filter(|&&id| id != me) {
        if started == MAX_CPUS {
            log::warn!("smp: more than {MAX_CPUS} processors; the rest stay halted");
            break;
        }
        if start_one(apic_id, started, boot, code) {
            APIC_IDS[started].store(apic_id, Ordering::Relaxed);
            started += 1;
            ONLINE.store(started, Ordering::Release);
        } else {
            log::warn!("smp: the processor with APIC id {apic_id} did not start; left halted");
        }
    }
    super::pic::mask_timer();
    apic::start_timer();
    started
}

/// Starts one CPU as index `index`; true once it runs kernel code.
fn start_one(apic_id: u32, index: usize, boot: &Boot, code: u64) -> bool {
    let stack = alloc::vec![0u8; AP_STACK_SIZE].leak();
    let top = (stack.as_ptr() as u64 + AP_STACK_SIZE as u64) & !15;
    let field = |label: *const u8, n: u64| {
        (crate::mem::PHYS_OFFSET + code + offset_of(label) + n * 8) as *mut u64
    };
    // SAFETY: the stack, entry and argument fields follow `sion_ap_cr3` in
    // the copied trampoline (see the assembly), which no CPU runs now.
    unsafe {
        field(&raw const sion_ap_cr3, 1).write(top);
        field(&raw const sion_ap_cr3, 2).write(boot.entry as usize as u64);
        field(&raw const sion_ap_cr3, 3).write(index as u64);
    }
    ARRIVED.store(false, Ordering::Release);
    let wait = |ns: u64| {
        let until = (boot.now_ns)() + ns;
        while (boot.now_ns)() < until {
            core::hint::spin_loop();
        }
    };
    apic::send_init(apic_id);
    wait(10_000_000);
    let vector = (code >> 12) as u8;
    for _ in 0..2 {
        apic::send_startup(apic_id, vector);
        wait(200_000);
        if ARRIVED.load(Ordering::Acquire) {
            break;
        }
    }
    let until = (boot.now_ns)() + AP_START_TIMEOUT_NS;
    while !ARRIVED.load(Ordering::Acquire) {
        if (boot.now_ns)() > until {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Called by a started CPU once it runs the kernel's 64-bit code on its own
/// GS base: lets the bootstrap CPU go on to the next one.
pub fn arrived() {
    ARRIVED.store(true, Ordering::Release);
}

/// Enables this (application) processor's local APIC and its timer.
pub fn start_this_cpu_timer() {
    apic::init_this_cpu(false);
    apic::start_timer();
}
