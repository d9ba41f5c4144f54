//! The trap dispatcher: what the kernel does for each exception, interrupt and
//! system call. `arch::trap` saves the registers and hands every trap here
//! (installed by [`init`]); this module calls down into the scheduler, the
//! network, the system calls and the Linux application calls.
#![forbid(unsafe_code)]

use crate::arch::trap::{LINUX_INT80, SYSCALL_COMPAT, SYSCALL_INSTRUCTION, TrapFrame};
use crate::arch::{apic, percpu, pic, smp};
use sion_abi::Signal;
use sion_abi::exception::CpuException;

/// Installs [`dispatch`] as the handler of every trap.
pub fn init() {
    crate::arch::trap::set_handler(dispatch);
}

/// Routes a trap: exceptions, the timers and other interrupts, system calls.
/// A process killed from another CPU meanwhile ends on its way back to user
/// mode (after every interrupt was acknowledged).
fn dispatch(frame: &mut TrapFrame) {
    route(frame);
    if frame.is_from_user() {
        crate::proc::take_pending_kill();
    }
}

fn route(frame: &mut TrapFrame) {
    match frame.vector {
        0..=31 => exception(frame),
        v if v == u64::from(pic::TIMER_VECTOR) || v == u64::from(apic::TIMER_VECTOR) => {
            if v == u64::from(pic::TIMER_VECTOR) {
                pic::end_of_interrupt(pic::TIMER_VECTOR);
            } else {
                apic::end_of_interrupt();
            }
            // The clock's tick count and the network belong to the first
            // CPU; every CPU wakes expired timeouts and preempts its process.
            if percpu::index() == 0 {
                crate::time::tick();
                crate::net::poll();
            }
            crate::proc::on_timer_tick();
            if frame.is_from_user() {
                crate::app::take_interrupt(frame);
                crate::proc::scheduler::preempt();
            }
        }
        // A halted CPU woken to run a process, or a running one to end its
        // process (`take_pending_kill`, on the way out).
        v if v == u64::from(apic::WAKE_VECTOR) => apic::end_of_interrupt(),
        v @ 33..=47 => {
            let nic = crate::net::irq().map(|irq| u64::from(irq + pic::PIC1_OFFSET));
            if nic == Some(v) {
                crate::net::on_interrupt();
            }
            crate::arch::end_of_line_interrupt(v as u8);
        }
        v if v == u64::from(sion_abi::SYSCALL_VECTOR) => crate::syscall::dispatch(frame),
        LINUX_INT80 | SYSCALL_INSTRUCTION => crate::app::linux_syscall(frame),
        SYSCALL_COMPAT => crate::proc::kill_current(
            Signal::SIGILL,
            &alloc::format!(
                "syscall instruction in 32-bit code at rip={:#x} (i386 programs use int 0x80)",
                frame.rip.wrapping_sub(2)
            ),
        ),
        v => {
            if smp::apic_in_use() && v >= 48 {
                apic::end_of_interrupt();
            }
            log::warn!("unexpected interrupt vector {v}")
        }
    }
}

/// A CPU exception: the program that caused it gets the signal Linux would
/// send (the manager of an application started with
/// `START_FAULTS_TO_MANAGER` delivers it or ends the application; any other
/// process ends); in kernel mode it is a kernel fault and the machine stops.
fn exception(frame: &mut TrapFrame) {
    let (name, signal) = exception_info(frame.vector);
    let cr2 = crate::arch::trap::fault_address();
    if frame.is_from_user() {
        let detail = if frame.vector == 14 {
            alloc::format!(
                "{name} at rip={:#x} accessing {cr2:#x} (error {:#x})",
                frame.rip,
                frame.error_code
            )
        } else {
            alloc::format!(
                "{name} at rip={:#x} (error {:#x})",
                frame.rip,
                frame.error_code
            )
        };
        let address = if frame.vector == 14 { cr2 } else { 0 };
        crate::app::fault(frame, signal, address, &detail);
        return;
    }
    crate::logger::force_unlock();
    log::error!(
        "KERNEL FAULT: {name} (vector {}) in kernel mode, cr2={cr2:#x}\n{frame}",
        frame.vector
    );
    crate::arch::qemu::exit_failure();
}

/// Name of a CPU exception and the signal Linux sends a process for it, from
/// the one table in [`sion_abi::exception`]; vectors no user program causes
/// (NMI, double fault, machine check, reserved) count as `SIGSEGV`.
fn exception_info(vector: u64) -> (&'static str, Signal) {
    match CpuException::from_vector(vector) {
        Some(e) => (e.name(), e.signal()),
        None => ("unexpected exception", Signal::SIGSEGV),
    }
}
