//! Kernel stacks and the context switch between the scheduler and processes.
//!
//! Each process has a [`Context`]: its kernel stack (whose top holds the
//! [`TrapFrame`] of its user state), the stack pointer saved when it left the
//! CPU, and its FPU/SSE registers. The scheduler loop runs on the boot stack;
//! [`enter`] switches from it to a process's stack, and [`leave`] switches
//! back. A new context is laid out so that the first switch "returns" into
//! [`trap_return`], which enters ring 3 with the prepared frame.

use super::fpu::FpuState;
use super::trap::{TrapFrame, trap_return};
use alloc::boxed::Box;
use core::ptr::{NonNull, addr_of_mut};

/// A process's kernel state on the CPU side, boxed so its address never moves.
pub struct Context(Box<Inner>);

struct Inner {
    /// The kernel stack; the [`TrapFrame`] sits at its 16-byte aligned top.
    stack: Box<[u8]>,
    /// The stack pointer saved by the last switch away (or laid out by
    /// [`Context::new`]).
    saved_rsp: u64,
    /// The FPU/SSE registers while the process is off the CPU.
    fpu: FpuState,
}

/// A handle on a [`Context`] that can be held across the release of the lock
/// guarding its owner (the process table): the scheduler takes it under the
/// lock and switches after dropping it.
///
/// Contract (kept by the process table): a context is not dropped while it is
/// on the CPU, i.e. between [`enter`] and the return of the scheduler's
/// switch, and a handle is used only for the process it was taken from.
#[derive(Clone, Copy)]
pub struct ContextHandle(NonNull<Inner>);

// SAFETY: the handle is a plain address passed between a scheduler and the
// process it belongs to, under the kernel lock (`super::smp`).
unsafe impl Send for ContextHandle {}

impl Context {
    /// A context with a fresh zeroed kernel stack of `stack_size` bytes, laid
    /// out so that the first [`enter`] enters ring 3 with `frame`: six zeroed
    /// callee-saved registers, then the address of [`trap_return`], then the
    /// frame at the top (the order `switch_stacks` pops them).
    pub fn new(stack_size: usize, frame: TrapFrame) -> Context {
        let stack = alloc::vec![0u8; stack_size].into_boxed_slice();
        let mut inner = Box::new(Inner {
            stack,
            saved_rsp: 0,
            fpu: FpuState::new(),
        });
        let top = inner.top();
        let frame_at = top - core::mem::size_of::<TrapFrame>() as u64;
        let return_at = frame_at - 8;
        let saved_rsp = return_at - 6 * 8;
        assert!(
            saved_rsp >= inner.stack.as_ptr() as u64,
            "kernel stack too small"
        );
        // SAFETY: all three writes land inside the freshly allocated stack
        // (checked above), which nothing else references yet; the addresses
        // are 8-byte aligned because `top` is 16-byte aligned.
        unsafe {
            (frame_at as *mut TrapFrame).write(frame);
            (return_at as *mut u64).write(trap_return as *const () as u64);
            core::ptr::write_bytes(saved_rsp as *mut u64, 0, 6);
        }
        inner.saved_rsp = saved_rsp;
        Context(inner)
    }

    /// The FPU/SSE registers saved when the process last left the CPU.
    pub fn fpu(&self) -> &FpuState {
        &self.0.fpu
    }

    /// Mutable access to them (what the process resumes with).
    pub fn fpu_mut(&mut self) -> &mut FpuState {
        &mut self.0.fpu
    }

    /// The top of the kernel stack (16-byte aligned), for the TSS's RSP0.
    pub fn stack_top(&self) -> u64 {
        self.0.top()
    }

    /// The user-state frame at the top of the kernel stack.
    pub fn user_frame(&mut self) -> &mut TrapFrame {
        let at = self.0.top() - core::mem::size_of::<TrapFrame>() as u64;
        // SAFETY: the top of every kernel stack holds the process's TrapFrame
        // (laid out by `new`, or pushed on entry from ring 3); `&mut self`
        // makes this the only reference to it.
        unsafe { &mut *(at as *mut TrapFrame) }
    }

    /// A handle for [`enter`] and [`leave`].
    pub fn handle(&mut self) -> ContextHandle {
        ContextHandle(NonNull::from(&mut *self.0))
    }
}

impl Inner {
    fn top(&self) -> u64 {
        (self.stack.as_ptr() as u64 + self.stack.len() as u64) & !15
    }
}

/// Saves the callee-saved registers on the current stack, stores the stack
/// pointer at `save`, switches to the stack `load` and restores its registers.
///
/// # Safety
/// `load` must be a stack pointer saved by this function (or laid out like one
/// by [`Context::new`]), and `save` must be valid for a write.
#[unsafe(naked)]
unsafe extern "C" fn switch_stacks(save: *mut u64, load: u64) {
    core::arch::naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// From this CPU's scheduler loop: loads the FPU/SSE registers of the
/// process of `context`, runs it until it calls [`leave`], and saves its
/// FPU/SSE registers again. Returns on the scheduler's stack.
pub fn enter(context: ContextHandle) {
    let inner = context.0.as_ptr();
    // SAFETY: by the handle's contract the context is alive and stays so until
    // the process is off the CPU, which is when this call returns; its saved
    // stack pointer was stored by `switch_stacks` or laid out by `Context::new`.
    // The kernel itself never uses the FPU/SSE registers (soft-float target).
    unsafe {
        (*inner).fpu.restore();
        let rsp = (*inner).saved_rsp;
        switch_stacks(super::percpu::scheduler_rsp_slot(), rsp);
        (*inner).fpu.save();
    }
}

/// From a process on the CPU: saves its stack, returns to this CPU's
/// scheduler, and returns when a scheduler (perhaps another CPU's) runs it
/// again.
pub fn leave(context: ContextHandle) {
    let inner = context.0.as_ptr();
    // SAFETY: by the handle's contract the context is the current process's
    // and lives until it has left the CPU for the last time; this CPU's
    // scheduler slot was saved by its `enter`.
    unsafe {
        let scheduler = *super::percpu::scheduler_rsp_slot();
        switch_stacks(addr_of_mut!((*inner).saved_rsp), scheduler);
    }
}
