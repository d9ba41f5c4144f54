//! The round-robin scheduler without priorities (SiON paper §4.2.3): ready
//! processes run in turn for one timer tick each; blocked processes are not run
//! until woken; with nothing to run, the CPU halts until the next interrupt.
//!
//! On several CPUs each runs this loop, all taking from the one ready queue
//! (under the kernel lock, [`crate::arch::smp`]): the order stays the paper's
//! plain round robin, with no per-CPU queues to balance or steal from — the
//! queue is touched only for a pick or a preemption, rare next to the work
//! done in user mode. A process may run on any CPU; an idle CPU halts with
//! the lock released and is woken when a process becomes ready.
//!
//! Each CPU's scheduler loop runs on that CPU's boot stack. A process leaves the CPU by
//! switching its kernel stack back to the scheduler ([`switch_out`]); the
//! scheduler resumes it by switching to that stack. The loop keeps the
//! address space of the process that left (the kernel is mapped in all of
//! them) until it activates the next one, so a process switch loads one
//! page table, not two (each load empties the TLB); it loads the kernel's
//! own before it frees an ended process's space and before it idles (a
//! space may be freed while the CPU waits).
#![forbid(unsafe_code)]

use super::{State, table};
use crate::arch::{self, context, gdt};
use crate::mem::space;
use x86_64::VirtAddr;

/// Nanoseconds spent halted in the idle loop, summed over all CPUs.
static IDLE_NS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Nanoseconds the CPUs have spent idle since boot, summed over all CPUs.
pub fn idle_ns() -> u64 {
    IDLE_NS.load(core::sync::atomic::Ordering::Relaxed)
}

/// Runs processes for ever.
pub fn run() -> ! {
    let mut reached_idle = false;
    loop {
        let next = {
            let mut t = table();
            let mut next = None;
            while let Some(pid) = t.ready.pop_front() {
                if let Some(p) = t.procs.get_mut(&pid)
                    && p.state == State::Ready
                {
                    p.state = State::Running;
                    p.space.activate();
                    x86_64::registers::model_specific::FsBase::write(
                        x86_64::VirtAddr::new_truncate(p.fs_base),
                    );
                    gdt::set_tls(p.tls_base);
                    gdt::set_kernel_stack(VirtAddr::new(p.context.stack_top()));
                    next = Some(p.context.handle());
                    t.set_current(Some(pid));
                    break;
                }
            }
            next
        };
        match next {
            Some(context) => {
                // The process's context lives until the process is reaped
                // below, after it has left the CPU (the handle's contract).
                context::enter(context);
                reap_current();
            }
            None => {
                if !reached_idle {
                    log::info!("idle: no process ready, halting until the next interrupt");
                    reached_idle = true;
                }
                space::activate_kernel();
                let start = crate::time::now_ns();
                arch::smp::idle_until_interrupt();
                let idle = crate::time::now_ns().saturating_sub(start);
                IDLE_NS.fetch_add(idle, core::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// After a process left the CPU: forget it as current, and free it if it ended.
fn reap_current() {
    let mut t = table();
    let Some(pid) = t.current_pid() else { return };
    t.set_current(None);
    if let Some(p) = t.procs.get(&pid)
        && matches!(p.state, State::Dead(_))
    {
        // Dropping the process frees its address space and kernel stack;
        // the CPU must not be using that space's page tables.
        space::activate_kernel();
        t.procs.remove(&pid);
    }
}

/// Leaves the CPU and returns to the scheduler; returns when the scheduler
/// runs this process again. The caller has set the process's state. The
/// FPU/SSE registers are saved here and restored on return.
pub fn switch_out() {
    // The process is boxed in the table and is reaped only after it has left
    // the CPU for the last time, so its context outlives the switch.
    let context = table().current().context.handle();
    context::leave(context);
}

/// Blocks the current process (its state already says why) until it is woken;
/// returns the value its waker gave.
pub fn block() -> i64 {
    switch_out();
    table().current().wake_value
}

/// Puts the current process at the back of the ready queue and runs the next,
/// if another is ready (timer preemption and `yield`).
pub fn preempt() {
    {
        let mut t = table();
        if t.ready.is_empty() {
            return;
        }
        let pid = t.current_pid().expect("preempt without a current process");
        t.current().state = State::Ready;
        // Not `push_ready`: this CPU itself runs the next one at once.
        t.ready.push_back(pid);
    }
    switch_out();
}
