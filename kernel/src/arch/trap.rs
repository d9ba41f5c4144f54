//! Entry and exit of every interrupt, exception and system call.
//!
//! Each vector has a small stub that pushes a dummy error code (when the CPU
//! pushes none) and its vector number, then jumps to [`trap_common`], which
//! saves the general-purpose registers as a [`TrapFrame`] on the current kernel
//! stack and calls [`trap_dispatch`]. The same frame, possibly changed, is
//! restored by [`trap_return`] and `iretq`. A process's saved user state is
//! therefore always the `TrapFrame` at the top of its kernel stack.

use super::gdt;
use core::arch::naked_asm;

/// The registers saved on entry to the kernel, lowest address first: the
/// general-purpose registers pushed by [`trap_common`], the vector and error code
/// pushed by the stub, and the frame the CPU pushes (Intel SDM Vol. 3A §6.14.2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);

impl TrapFrame {
    /// True when the trap came from ring 3.
    pub fn is_from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// A frame that enters ring 3 at `rip` with stack `rsp` and interrupts enabled.
    pub fn new_user(rip: u64, rsp: u64) -> TrapFrame {
        TrapFrame {
            rip,
            rsp,
            cs: u64::from(gdt::USER_CODE64.0),
            ss: u64::from(gdt::USER_DATA.0),
            rflags: 0x202, // IF set, reserved bit 1 set.
            ..TrapFrame::default()
        }
    }
}

impl core::fmt::Display for TrapFrame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(
            f,
            "rip={:#018x} cs={:#x} rflags={:#x} rsp={:#018x} ss={:#x}",
            self.rip, self.cs, self.rflags, self.rsp, self.ss
        )?;
        writeln!(
            f,
            "rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}",
            self.rax, self.rbx, self.rcx, self.rdx
        )?;
        writeln!(
            f,
            "rsi={:#018x} rdi={:#018x} rbp={:#018x} r8 ={:#018x}",
            self.rsi, self.rdi, self.rbp, self.r8
        )?;
        writeln!(
            f,
            "r9 ={:#018x} r10={:#018x} r11={:#018x} r12={:#018x}",
            self.r9, self.r10, self.r11, self.r12
        )?;
        write!(
            f,
            "r13={:#018x} r14={:#018x} r15={:#018x} error={:#x}",
            self.r13, self.r14, self.r15, self.error_code
        )
    }
}

/// Entry of every interrupt and exception stub: `swapgs` if the trap came
/// from ring 3 (the saved `cs` is at `rsp + 24`, above the vector, the error
/// code and `rip`), so the kernel's GS base is this CPU's
/// [`super::percpu::PerCpu`]; then [`trap_save`].
#[unsafe(naked)]
unsafe extern "C" fn trap_common() {
    naked_asm!(
        "test qword ptr [rsp + 24], 3",
        "jz 2f",
        "swapgs",
        "2:",
        "jmp {save}",
        save = sym trap_save,
    )
}

/// Saves the general-purpose registers, calls [`trap_dispatch`] with the frame,
/// then falls into [`trap_return`]. GS already is the kernel's.
#[unsafe(naked)]
unsafe extern "C" fn trap_save() {
    naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "mov rdi, rsp",
        "cld",
        // Clear RFLAGS.AC, which a program may have set: with it, SMAP would
        // not stop kernel accesses to user pages (`clac` needs SMAP; this not).
        "pushfq",
        "and qword ptr [rsp], {not_ac}",
        "popfq",
        "call {dispatch}",
        "jmp {ret}",
        dispatch = sym trap_dispatch,
        ret = sym trap_return,
        not_ac = const !x86_64::registers::rflags::RFlags::ALIGNMENT_CHECK.bits() as i32,
    )
}

/// Releases the kernel lock if this CPU holds it ([`super::smp`]), restores
/// the [`TrapFrame`] at `rsp`, `swapgs` if returning to ring 3, and returns
/// from the interrupt. New processes start here, with their first frame
/// prepared on their kernel stack (and the scheduler's CPU holding the lock).
#[unsafe(naked)]
pub unsafe extern "C" fn trap_return() {
    naked_asm!(
        // The frame is 176 bytes and ends at a 16-byte boundary, so the call
        // is made with the stack aligned as the ABI wants.
        "call {release}",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rbp",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rbx",
        "pop rax",
        "add rsp, 16",
        "test qword ptr [rsp + 8], 3",
        "jz 2f",
        "swapgs",
        "2:",
        "iretq",
        release = sym release_kernel_lock,
    )
}

/// Called by [`trap_return`]: the kernel is left, so its lock is released.
extern "C" fn release_kernel_lock() {
    super::smp::unlock_kernel();
}

macro_rules! stubs {
    ($( $name:ident = $vector:literal $kind:ident ),* $(,)?) => {
        $( stubs!(@one $name $vector $kind); )*
        /// Every vector the IDT uses, with its entry stub.
        pub static STUBS: &[(u8, unsafe extern "C" fn())] = &[ $( ($vector, $name) ),* ];
    };
    (@one $name:ident $vector:literal noerr) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            naked_asm!("push 0", concat!("push ", $vector), "jmp {common}", common = sym trap_common)
        }
    };
    (@one $name:ident $vector:literal err) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            naked_asm!(concat!("push ", $vector), "jmp {common}", common = sym trap_common)
        }
    };
}

// Exceptions that push an error code: 8, 10–14, 17, 21, 29, 30 (SDM Vol. 3A Table 6-1).
stubs! {
    v0 = 0 noerr, v1 = 1 noerr, v2 = 2 noerr, v3 = 3 noerr, v4 = 4 noerr, v5 = 5 noerr,
    v6 = 6 noerr, v7 = 7 noerr, v8 = 8 err, v9 = 9 noerr, v10 = 10 err, v11 = 11 err,
    v12 = 12 err, v13 = 13 err, v14 = 14 err, v15 = 15 noerr, v16 = 16 noerr, v17 = 17 err,
    v18 = 18 noerr, v19 = 19 noerr, v20 = 20 noerr, v21 = 21 err, v22 = 22 noerr,
    v23 = 23 noerr, v24 = 24 noerr, v25 = 25 noerr, v26 = 26 noerr, v27 = 27 noerr,
    v28 = 28 noerr, v29 = 29 err, v30 = 30 err, v31 = 31 noerr,
    v32 = 32 noerr, v33 = 33 noerr, v34 = 34 noerr, v35 = 35 noerr, v36 = 36 noerr,
    v37 = 37 noerr, v38 = 38 noerr, v39 = 39 noerr, v40 = 40 noerr, v41 = 41 noerr,
    v42 = 42 noerr, v43 = 43 noerr, v44 = 44 noerr, v45 = 45 noerr, v46 = 46 noerr,
    v47 = 47 noerr,
    v64 = 64 noerr,
    v128 = 128 noerr,
    v240 = 240 noerr, v241 = 241 noerr, v242 = 242 noerr, v255 = 255 noerr,
}

/// Vector number recorded in the [`TrapFrame`] of a `syscall` instruction.
pub const SYSCALL_INSTRUCTION: u64 = 0x100;
/// Vector of the i386 Linux system-call interrupt.
pub const LINUX_INT80: u64 = 0x80;

/// Vector number recorded in the [`TrapFrame`] of a `syscall` instruction
/// executed by 32-bit (compatibility-mode) code, through CSTAR.
pub const SYSCALL_COMPAT: u64 = 0x101;

/// An entry of the `syscall` instruction. The CPU left the user `rip` in `rcx`
/// and `rflags` in `r11` and did not switch stacks; the stub swaps in the
/// kernel's GS base, keeps the user stack pointer in this CPU's scratch slot,
/// builds the same [`TrapFrame`] an interrupt would (user code segment `$cs`,
/// vector `$vector`) on the current process's kernel stack (both found through
/// GS: [`super::percpu`]) and joins [`trap_save`]. The return is by `iretq`,
/// which restores every register.
macro_rules! syscall_entry {
    ($(#[$doc:meta])* $name:ident, $cs:expr, $vector:expr) => {
        $(#[$doc])*
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name() {
            naked_asm!(
                "swapgs",
                "mov gs:[{scratch}], rsp",
                "mov rsp, gs:[{top}]",
                "push {ss}",
                "push gs:[{scratch}]",
                "push r11",
                "push {cs}",
                "push rcx",
                "push 0",
                "push {vector}",
                "jmp {save}",
                scratch = const super::percpu::USER_RSP,
                top = const super::percpu::KERNEL_STACK_TOP,
                ss = const gdt::USER_DATA.0 as u64,
                cs = const $cs,
                vector = const $vector,
                save = sym trap_save,
            )
        }
    };
}

syscall_entry!(
    /// Entry of `syscall` from 64-bit code (LSTAR): a Linux x86_64 system call.
    syscall_entry,
    gdt::USER_CODE64.0 as u64,
    SYSCALL_INSTRUCTION
);

syscall_entry!(
    /// Entry of `syscall` from 32-bit code (CSTAR), which AMD CPUs (and
    /// QEMU's default CPU) allow and Intel CPUs answer with #UD. SiON serves
    /// i386 programs through `int 0x80` only, so the program gets `SIGILL`, as
    /// on Intel hardware: see [`trap_dispatch`].
    syscall_compat_entry,
    gdt::USER_CODE32.0 as u64,
    SYSCALL_COMPAT
);

/// Enables the `syscall` instruction: EFER.SCE, the segment bases in STAR, the
/// entry points in LSTAR (64-bit code) and CSTAR (32-bit code), and the flags
/// cleared on entry in SFMASK (IF, TF, DF, AC), so the kernel runs with
/// interrupts off as after an interrupt gate. `sysenter` stays disabled:
/// IA32_SYSENTER_CS = 0 makes it raise #GP (Intel SDM Vol. 2B, SYSENTER), and
/// AMD CPUs in long mode raise #UD; either ends the program with a signal.
pub fn init_syscall_instruction() {
    use x86_64::registers::model_specific::{Efer, EferFlags, LStar, Msr, SFMask, Star};
    use x86_64::registers::rflags::RFlags;
    // SAFETY: the selectors match the GDT's order, and both entries build a
    // correct frame on the current kernel stack before enabling anything.
    unsafe {
        Star::write(
            super::gdt::USER_CODE64,
            super::gdt::USER_DATA,
            super::gdt::KERNEL_CODE,
            super::gdt::KERNEL_DATA,
        )
        .expect("GDT order suits SYSCALL/SYSRET");
        LStar::write(x86_64::VirtAddr::new(syscall_entry as *const () as u64));
        Msr::new(x86::msr::IA32_CSTAR).write(syscall_compat_entry as *const () as u64);
        Msr::new(x86::msr::IA32_SYSENTER_CS).write(0);
        SFMask::write(
            RFlags::INTERRUPT_FLAG
                | RFlags::TRAP_FLAG
                | RFlags::DIRECTION_FLAG
                | RFlags::ALIGNMENT_CHECK,
        );
        Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
    }
}

/// The trap handler installed by [`set_handler`].
static HANDLER: spin::Once<fn(&mut TrapFrame)> = spin::Once::new();

/// Installs the function every trap is handed to (the kernel's dispatcher,
/// which lives above `arch`). Only the first call has an effect; traps before
/// it are kernel faults and stop the machine.
pub fn set_handler(handler: fn(&mut TrapFrame)) {
    HANDLER.call_once(|| handler);
}

/// The address a page fault tried to access (CR2; Intel SDM Vol. 3A §4.7).
pub fn fault_address() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Called by [`trap_save`] with the saved frame. A TLB shootdown request
/// and a spurious interrupt are answered here without the kernel lock (the
/// CPU asking for the shootdown holds it and waits: [`super::smp`]); every
/// other trap takes the kernel lock and goes to the installed handler.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        v if v == u64::from(super::apic::FLUSH_VECTOR) => {
            super::smp::take_flush_request();
            super::apic::end_of_interrupt();
            return;
        }
        v if v == u64::from(super::apic::SPURIOUS_VECTOR) => return,
        v if v < 256 && super::smp::idle_tick(v as u8, frame.is_from_user()) => {
            super::apic::end_of_interrupt();
            return;
        }
        _ => {}
    }
    // A CPU exception in kernel mode is a kernel fault: the handler reports
    // it and stops the machine, whatever lock this CPU holds.
    if frame.is_from_user() || frame.vector >= 32 {
        super::smp::lock_kernel();
    }
    match HANDLER.get() {
        Some(handler) => handler(frame),
        None => {
            super::qemu::exit_failure();
        }
    }
}
