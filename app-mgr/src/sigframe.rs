//! Signal frames as Linux builds them on a program's stack when it enters a
//! handler, and reads back in `rt_sigreturn(2)` / `sigreturn(2)`: the x86_64
//! `rt_sigframe` and the i386 `sigframe` and `rt_sigframe`
//! (arch/x86/include/asm/sigframe.h, arch/x86/kernel/signal.c, signal_64.c,
//! signal_32.c; arch/x86/include/uapi/asm/sigcontext.h; the `siginfo_t` of
//! include/uapi/asm-generic/siginfo.h).
//!
//! The layouts are `#[repr(C)]` structs whose offsets are checked at compile
//! time against the ones glibc and Linux use. The FPU/SSE registers of the
//! interrupted code are saved in the frame's `fpstate` area in `fxsave`
//! format (x86_64 `struct _fpstate_64`; i386 `struct _fpstate_32`, whose
//! `fxsave` image follows the legacy header), the handler starts with a
//! reset FPU, and the signal return restores them (Linux's
//! `copy_fpstate_to_sigframe` and `fpu__restore_sig`, without `xsave`).

use core::mem::{offset_of, size_of};

use linux_raw_sys::general::{__NR_rt_sigreturn as NR_RT_SIGRETURN_X64, SA_SIGINFO};
use sion_abi::app::AppRegs;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::Abi;

/// The i386 number of `sigreturn` (arch/x86/entry/syscalls/syscall_32.tbl).
const NR_SIGRETURN_I386: u32 = syscalls::x86::Sysno::sigreturn as u32;
/// The i386 number of `rt_sigreturn`.
const NR_RT_SIGRETURN_I386: u32 = syscalls::x86::Sysno::rt_sigreturn as u32;

/// `uc_flags` of an x86_64 frame: `UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS`
/// (arch/x86/include/uapi/asm/ucontext.h), without `UC_FP_XSTATE` (no xsave).
const UC_FLAGS_X64: u64 = 0x2 | 0x4;
/// The x86_64 red zone the frame is built below (System V ABI §3.2.2).
const RED_ZONE: u64 = 128;
/// Size of the `fxsave` area, bytes (Intel SDM Vol. 1 Table 10-2).
const FXSAVE_LEN: usize = 512;
/// Size of the i386 legacy `fsave` header before it (`struct fregs_state`).
const FSAVE_HEADER: usize = 112;
/// Size of `struct _fpstate_32` (the i386 FPU area, header and `fxsave`).
const FPSTATE_32_LEN: usize = FSAVE_HEADER + FXSAVE_LEN;
/// The user code and stack selectors a frame records (Linux's: `__USER_CS`
/// 0x33, `__USER32_CS` 0x23, `__USER_DS` 0x2b).
const USER_CS_64: u16 = 0x33;
const USER_CS_32: u16 = 0x23;
const USER_DS: u16 = 0x2b;

/// `siginfo_t`, 128 bytes on both ABIs; the union starts at 16 on x86_64
/// (8-byte alignment) and at 12 on i386 (`compat_siginfo_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SigInfo {
    /// `si_signo`.
    pub signo: i32,
    /// `si_errno`.
    pub errno: i32,
    /// `si_code` (`SI_USER`, `SI_TKILL`, `SI_KERNEL`, `SEGV_MAPERR`, …).
    pub code: i32,
    /// The union: `si_pid`, `si_uid` or `si_addr` (see [`SigInfo::new`]).
    pub rest: [u32; 29],
}

const _: () = assert!(size_of::<SigInfo>() == 128);
const _: () = assert!(size_of::<SigInfo>() == size_of::<linux_raw_sys::general::siginfo>());

/// What a signal carries besides its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Sent by a process (`kill`, `tkill`): `si_pid`, `si_uid`.
    Sender {
        /// `si_pid`.
        pid: u32,
        /// `si_uid`.
        uid: u32,
    },
    /// A fault: `si_addr`.
    Fault {
        /// `si_addr`.
        addr: u64,
    },
    /// A child's end (`SIGCHLD`, `waitid`): `si_pid`, `si_uid`,
    /// `si_status` (the exit code, or the signal that ended it).
    Child {
        /// `si_pid`.
        pid: u32,
        /// `si_uid`.
        uid: u32,
        /// `si_status`.
        status: i32,
    },
    /// A POSIX timer's expiry (`SI_TIMER`): `si_timerid`, `si_overrun`,
    /// `si_value`.
    Timer {
        /// `si_timerid`.
        id: i32,
        /// `si_overrun`.
        overrun: u32,
        /// `si_value` (`sigval_t`, a word of the ABI).
        value: u64,
    },
    /// Nothing more (`SI_KERNEL`: timers).
    None,
}

impl SigInfo {
    /// The `siginfo_t` of signal `signo` with `code`, laid out for `abi`.
    pub fn new(abi: Abi, signo: i32, code: i32, detail: Detail) -> SigInfo {
        let mut s = SigInfo {
            signo,
            errno: 0,
            code,
            rest: [0; 29],
        };
        // The union's first word: rest[0] is at byte 12, rest[1] at 16.
        let at = match abi {
            Abi::I386 => 0,
            Abi::X86_64 => 1,
        };
        match detail {
            Detail::Sender { pid, uid } => {
                s.rest[at] = pid;
                s.rest[at + 1] = uid;
            }
            Detail::Fault { addr } => {
                s.rest[at] = addr as u32;
                if abi == Abi::X86_64 {
                    s.rest[at + 1] = (addr >> 32) as u32;
                }
            }
            Detail::Child { pid, uid, status } => {
                s.rest[at] = pid;
                s.rest[at + 1] = uid;
                s.rest[at + 2] = status as u32;
            }
            Detail::Timer { id, overrun, value } => {
                s.rest[at] = id as u32;
                s.rest[at + 1] = overrun;
                // `si_value` follows: at 24 on x86_64, at 20 on i386.
                s.rest[at + 2] = value as u32;
                if abi == Abi::X86_64 {
                    s.rest[at + 3] = (value >> 32) as u32;
                }
            }
            Detail::None => {}
        }
        s
    }
}

/// `struct sigcontext` of x86_64 (arch/x86/include/uapi/asm/sigcontext.h),
/// 256 bytes.
#[allow(missing_docs)] // the fields are named as in the Linux header cited
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SigContext64 {
    /// `r8` … `r15`.
    pub r8_15: [u64; 8],
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rsp: u64,
    pub rip: u64,
    pub eflags: u64,
    pub cs: u16,
    pub gs: u16,
    pub fs: u16,
    pub ss: u16,
    pub err: u64,
    pub trapno: u64,
    pub oldmask: u64,
    pub cr2: u64,
    /// Address of the FPU area (`struct _fpstate_64`).
    pub fpstate: u64,
    pub reserved1: [u64; 8],
}

/// `stack_t` of x86_64.
#[allow(missing_docs)] // the fields are named as in the Linux header cited
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Stack64 {
    pub ss_sp: u64,
    pub ss_flags: i32,
    pub pad: u32,
    pub ss_size: u64,
}

/// The kernel's `struct ucontext` of x86_64 (include/uapi/asm-generic/ucontext.h
/// with an 8-byte `sigset_t`).
#[allow(missing_docs)] // the fields are named as in the Linux header cited
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct UContext64 {
    pub uc_flags: u64,
    pub uc_link: u64,
    pub uc_stack: Stack64,
    pub uc_mcontext: SigContext64,
    pub uc_sigmask: u64,
}

/// x86_64 `struct rt_sigframe` (arch/x86/include/asm/sigframe.h).
#[allow(missing_docs)] // the fields are named as in the Linux header cited
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RtSigFrame64 {
    /// Return address of the handler: the `sa_restorer`.
    pub pretcode: u64,
    pub uc: UContext64,
    pub info: SigInfo,
}

// glibc's sysdeps/unix/sysv/linux/x86_64/ucontext_i.sym: oRBP = 120,
// oRSP = 160, oRIP = 168, oFPREGS = 224, oSIGMASK = 296.
const _: () = {
    assert!(size_of::<SigContext64>() == 256);
    assert!(offset_of!(UContext64, uc_mcontext) + offset_of!(SigContext64, rbp) == 120);
    assert!(offset_of!(UContext64, uc_mcontext) + offset_of!(SigContext64, rsp) == 160);
    assert!(offset_of!(UContext64, uc_mcontext) + offset_of!(SigContext64, rip) == 168);
    assert!(offset_of!(UContext64, uc_mcontext) + offset_of!(SigContext64, fpstate) == 224);
    assert!(offset_of!(UContext64, uc_sigmask) == 296);
    assert!(offset_of!(RtSigFrame64, info) == 312);
    assert!(size_of::<RtSigFrame64>() == 440);
};

/// `struct sigcontext_32` (arch/x86/include/uapi/asm/sigcontext.h), 88 bytes.
#[allow(missing_docs)] // the fields are named as in the Linux header cited
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SigContext32 {
    pub gs: u32,
    pub fs: u32,
    pub es: u32,
    pub ds: u32,
    pub edi: u32,
    pub esi: u32,
    pub ebp: u32,
    pub esp: u32,
    pub ebx: u32,
    pub edx: u32,
    pub ecx: u32,
    pub eax: u32,
    pub trapno: u32,
    pub err: u32,
    pub eip: u32,
    pub cs: u32,
    pub eflags: u32,
    pub esp_at_signal: u32,
    pub ss: u32,
    /// Address of the FPU area (`struct _fpstate_32`).
    pub fpstate: u32,
    pub oldmask: u32,
    pub cr2: u32,
}

/// i386 `struct sigframe_ia32` (arch/x86/include/asm/sigframe.h): the frame
/// of a handler without `SA_SIGINFO`.
#[allow(missing_docs)] // the fields are named as in the Linux header cited
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SigFrame32 {
    pub pretcode: u32,
    pub sig: i32,
    pub sc: SigContext32,
    /// The unused legacy `struct _fpstate_32` (the FPU area follows the frame).
    pub fpstate_unused: [u32; FPSTATE_32_LEN / 4],
    /// The high word of the blocked mask.
    pub extramask: u32,
    /// `popl %eax; movl $__NR_sigreturn, %eax; int $0x80`.
    pub retcode: [u8; 8],
}

/// i386 `stack_t`.
#[allow(missing_docs)] // the fields are named as in the Linux header cited
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Stack32 {
    pub ss_sp: u32,
    pub ss_flags: i32,
    pub ss_size: u32,
}

/// i386 `struct ucontext_ia32`.
#[allow(missing_docs)] // the fields are named as in the Linux header cited
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct UContext32 {
    pub uc_flags: u32,
    pub uc_link: u32,
    pub uc_stack: Stack32,
    pub uc_mcontext: SigContext32,
    /// `compat_sigset_t`: low word, high word.
    pub uc_sigmask: [u32; 2],
}

/// i386 `struct rt_sigframe_ia32`: the frame of an `SA_SIGINFO` handler.
#[allow(missing_docs)] // the fields are named as in the Linux header cited
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RtSigFrame32 {
    pub pretcode: u32,
    pub sig: i32,
    pub pinfo: u32,
    pub puc: u32,
    pub info: SigInfo,
    pub uc: UContext32,
    /// `movl $__NR_rt_sigreturn, %eax; int $0x80`.
    pub retcode: [u8; 8],
}

// glibc's sysdeps/unix/sysv/linux/i386/ucontext_i.sym: oEBX = 52, oESP = 48,
// oEIP = 76 (mcontext at 20, gregs GS..SS), oSIGMASK = 108 in glibc's larger
// ucontext_t; the kernel's is 116 bytes with the mask at 108 as well.
const _: () = {
    assert!(size_of::<SigContext32>() == 88);
    assert!(offset_of!(UContext32, uc_mcontext) == 20);
    assert!(offset_of!(UContext32, uc_mcontext) + offset_of!(SigContext32, esp) == 48);
    assert!(offset_of!(UContext32, uc_mcontext) + offset_of!(SigContext32, ebx) == 52);
    assert!(offset_of!(UContext32, uc_mcontext) + offset_of!(SigContext32, eip) == 76);
    assert!(offset_of!(UContext32, uc_sigmask) == 108);
    assert!(size_of::<UContext32>() == 116);
    assert!(offset_of!(SigFrame32, sc) == 8);
    assert!(offset_of!(SigFrame32, extramask) == 8 + 88 + FPSTATE_32_LEN);
    assert!(offset_of!(RtSigFrame32, info) == 16);
    assert!(offset_of!(RtSigFrame32, uc) == 144);
};

/// A handler as `rt_sigaction` recorded it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Action {
    /// `sa_handler` (0: `SIG_DFL`, 1: `SIG_IGN`).
    pub handler: u64,
    /// `sa_flags`.
    pub flags: u64,
    /// `sa_restorer`.
    pub restorer: u64,
    /// `sa_mask`.
    pub mask: u64,
}

impl Action {
    /// Decodes the kernel `struct sigaction` of `abi` (x86_64: four `u64`s;
    /// i386: handler, flags, restorer as `u32`, then a 64-bit mask).
    pub fn decode(abi: Abi, b: &[u8]) -> Action {
        let w = abi.word_size();
        let word = |i: usize| -> u64 {
            let mut v = [0u8; 8];
            if let Some(s) = b.get(i * w..i * w + w) {
                v[..w].copy_from_slice(s);
            }
            u64::from_le_bytes(v)
        };
        let mask = b
            .get(3 * w..3 * w + 8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u64::from_le_bytes);
        Action {
            handler: word(0),
            flags: word(1),
            restorer: word(2),
            mask,
        }
    }

    /// Encodes as [`Action::decode`] reads.
    pub fn encode(&self, abi: Abi) -> alloc::vec::Vec<u8> {
        let w = abi.word_size();
        let mut out = alloc::vec::Vec::new();
        for v in [self.handler, self.flags, self.restorer] {
            out.extend_from_slice(&v.to_le_bytes()[..w]);
        }
        out.extend_from_slice(&self.mask.to_le_bytes());
        out
    }
}

/// Where and how a handler is entered: what [`build`] needs besides the
/// registers.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    /// The ABI.
    pub abi: Abi,
    /// The signal.
    pub sig: i32,
    /// Its handler.
    pub action: Action,
    /// Its `siginfo_t`.
    pub info: SigInfo,
    /// The mask to restore on return (`uc_sigmask`).
    pub old_mask: u64,
    /// The alternate stack to record in `uc_stack` (`ss_sp`, `ss_flags`,
    /// `ss_size`).
    pub altstack: (u64, i32, u64),
    /// The top of the stack to build on: the interrupted `rsp`, or the top of
    /// the alternate stack when switching to it.
    pub stack_top: u64,
    /// `trapno`, `err` and `cr2` of a fault (zero otherwise).
    pub fault: (u64, u64, u64),
    /// The interrupted code's FPU/SSE registers (`fxsave` image).
    pub fxsave: [u8; FXSAVE_LEN],
}

/// A frame ready to be written: its bytes at `addr`, and the registers that
/// enter the handler.
#[derive(Clone, Debug)]
pub struct Built {
    /// Where the bytes go (the new stack pointer).
    pub addr: u64,
    /// The frame, then its FPU area.
    pub bytes: alloc::vec::Vec<u8>,
    /// The handler's registers.
    pub regs: AppRegs,
}

/// The `fxsave` area of a reset FPU (control word 0x037F, MXCSR 0x1F80):
/// what a handler starts with.
pub fn reset_fxsave() -> [u8; FXSAVE_LEN] {
    let mut a = [0u8; FXSAVE_LEN];
    a[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
    a[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
    a
}

/// Builds the frame for entering `d`'s handler from registers `regs`, as
/// Linux's `get_sigframe` places it: below the red zone (x86_64), below an
/// FPU area aligned to 64 bytes, the frame itself aligned so the handler
/// sees the stack as after a `call` (x86_64: `rsp % 16 == 8`; i386:
/// `(esp + 4) % 16 == 0`). `None` if the stack would wrap.
pub fn build(d: &Delivery, regs: &AppRegs) -> Option<Built> {
    match d.abi {
        Abi::X86_64 => build64(d, regs),
        Abi::I386 => build32(d, regs),
    }
}

fn build64(d: &Delivery, r: &AppRegs) -> Option<Built> {
    let sp = d.stack_top.checked_sub(RED_ZONE)?;
    let fp = sp.checked_sub(FXSAVE_LEN as u64)? & !63;
    let frame = (fp.checked_sub(size_of::<RtSigFrame64>() as u64)? & !15).checked_sub(8)?;
    let g = &r.gpr;
    let mut f = RtSigFrame64 {
        pretcode: d.action.restorer,
        ..Default::default()
    };
    f.uc.uc_flags = UC_FLAGS_X64;
    f.uc.uc_stack = Stack64 {
        ss_sp: d.altstack.0,
        ss_flags: d.altstack.1,
        pad: 0,
        ss_size: d.altstack.2,
    };
    let sc = &mut f.uc.uc_mcontext;
    sc.r8_15.copy_from_slice(&g[AppRegs::R8..AppRegs::R8 + 8]);
    sc.rdi = g[AppRegs::RDI];
    sc.rsi = g[AppRegs::RSI];
    sc.rbp = g[AppRegs::RBP];
    sc.rbx = g[AppRegs::RBX];
    sc.rdx = g[AppRegs::RDX];
    sc.rax = g[AppRegs::RAX];
    sc.rcx = g[AppRegs::RCX];
    sc.rsp = g[AppRegs::RSP];
    sc.rip = r.rip;
    sc.eflags = r.rflags;
    sc.cs = USER_CS_64;
    sc.ss = USER_DS;
    (sc.trapno, sc.err, sc.cr2) = d.fault;
    sc.oldmask = d.old_mask;
    sc.fpstate = fp;
    f.uc.uc_sigmask = d.old_mask;
    f.info = d.info;
    let mut bytes = f.as_bytes().to_vec();
    bytes.resize((fp - frame) as usize, 0);
    bytes.extend_from_slice(&d.fxsave);
    let mut regs = *r;
    regs.gpr[AppRegs::RDI] = d.sig as u64;
    regs.gpr[AppRegs::RSI] = frame + offset_of!(RtSigFrame64, info) as u64;
    regs.gpr[AppRegs::RDX] = frame + offset_of!(RtSigFrame64, uc) as u64;
    regs.gpr[AppRegs::RAX] = 0;
    regs.gpr[AppRegs::RSP] = frame;
    regs.rip = d.action.handler;
    // Linux clears DF, TF and RF for the handler (`signal_setup_done`).
    regs.rflags &= !(0x400 | 0x100 | 0x10000);
    Some(Built {
        addr: frame,
        bytes,
        regs,
    })
}

fn sigcontext32(d: &Delivery, r: &AppRegs, fpstate: u32) -> SigContext32 {
    let g = |i: usize| r.gpr[i] as u32;
    SigContext32 {
        gs: 0,
        fs: 0,
        es: u32::from(USER_DS),
        ds: u32::from(USER_DS),
        edi: g(AppRegs::RDI),
        esi: g(AppRegs::RSI),
        ebp: g(AppRegs::RBP),
        esp: g(AppRegs::RSP),
        ebx: g(AppRegs::RBX),
        edx: g(AppRegs::RDX),
        ecx: g(AppRegs::RCX),
        eax: g(AppRegs::RAX),
        trapno: d.fault.0 as u32,
        err: d.fault.1 as u32,
        eip: r.rip as u32,
        cs: u32::from(USER_CS_32),
        eflags: r.rflags as u32,
        esp_at_signal: g(AppRegs::RSP),
        ss: u32::from(USER_DS),
        fpstate,
        oldmask: d.old_mask as u32,
        cr2: d.fault.2 as u32,
    }
}

fn build32(d: &Delivery, r: &AppRegs) -> Option<Built> {
    let top = d.stack_top & 0xFFFF_FFFF;
    // The FPU area: the `fxsave` image aligned to 64, the legacy header below.
    let fx = top.checked_sub(FXSAVE_LEN as u64)? & !63;
    let fp = fx.checked_sub(FSAVE_HEADER as u64)?;
    let siginfo = d.action.flags & u64::from(SA_SIGINFO) != 0;
    let size = if siginfo {
        size_of::<RtSigFrame32>()
    } else {
        size_of::<SigFrame32>()
    } as u64;
    let frame = ((fp.checked_sub(size)? + 4) & !15).checked_sub(4)?;
    let sc = sigcontext32(d, r, fp as u32);
    let restorer = d.action.restorer as u32;
    let has_restorer = d.action.flags & u64::from(linux_raw_sys::general::SA_RESTORER) != 0;
    let mut regs = *r;
    let mut bytes = if siginfo {
        let retcode_at = frame as u32 + offset_of!(RtSigFrame32, retcode) as u32;
        let mut retcode = [0xb8, 0, 0, 0, 0, 0xcd, 0x80, 0];
        retcode[1..5].copy_from_slice(&NR_RT_SIGRETURN_I386.to_le_bytes());
        let f = RtSigFrame32 {
            pretcode: if has_restorer { restorer } else { retcode_at },
            sig: d.sig,
            pinfo: frame as u32 + offset_of!(RtSigFrame32, info) as u32,
            puc: frame as u32 + offset_of!(RtSigFrame32, uc) as u32,
            info: d.info,
            uc: UContext32 {
                uc_flags: 0,
                uc_link: 0,
                uc_stack: Stack32 {
                    ss_sp: d.altstack.0 as u32,
                    ss_flags: d.altstack.1,
                    ss_size: d.altstack.2 as u32,
                },
                uc_mcontext: sc,
                uc_sigmask: [d.old_mask as u32, (d.old_mask >> 32) as u32],
            },
            retcode,
        };
        regs.gpr[AppRegs::RDX] = u64::from(f.pinfo);
        regs.gpr[AppRegs::RCX] = u64::from(f.puc);
        f.as_bytes().to_vec()
    } else {
        let retcode_at = frame as u32 + offset_of!(SigFrame32, retcode) as u32;
        let mut retcode = [0x58, 0xb8, 0, 0, 0, 0, 0xcd, 0x80];
        retcode[2..6].copy_from_slice(&NR_SIGRETURN_I386.to_le_bytes());
        let f = SigFrame32 {
            pretcode: if has_restorer { restorer } else { retcode_at },
            sig: d.sig,
            sc,
            fpstate_unused: [0; FPSTATE_32_LEN / 4],
            extramask: (d.old_mask >> 32) as u32,
            retcode,
        };
        regs.gpr[AppRegs::RDX] = 0;
        regs.gpr[AppRegs::RCX] = 0;
        f.as_bytes().to_vec()
    };
    bytes.resize((fx - frame) as usize, 0);
    // The legacy header keeps the control word and says "fxsave follows"
    // (`magic` 0, X86_FXSR_MAGIC).
    let h = (fp - frame) as usize;
    bytes[h..h + 2].copy_from_slice(&d.fxsave[0..2]);
    bytes.extend_from_slice(&d.fxsave);
    regs.gpr[AppRegs::RAX] = d.sig as u64;
    regs.gpr[AppRegs::RSP] = frame;
    regs.rip = d.action.handler & 0xFFFF_FFFF;
    regs.rflags &= !(0x400 | 0x100 | 0x10000);
    Some(Built {
        addr: frame,
        bytes,
        regs,
    })
}

/// Which signal return a program made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Return {
    /// `rt_sigreturn`: an `rt_sigframe` of the ABI.
    Rt,
    /// i386 `sigreturn`: a `sigframe`.
    Legacy,
}

/// Where the frame a signal return reads starts, from the stack pointer at
/// the call (Linux: `sp - sizeof(long)` for x86_64 `rt_sigreturn`, `sp - 4`
/// for i386 `rt_sigreturn` after the handler's `ret`, `sp - 8` for i386
/// `sigreturn` after `ret` and `popl %eax`), and its length.
pub fn frame_at(abi: Abi, kind: Return, sp: u64) -> (u64, usize) {
    match (abi, kind) {
        (Abi::X86_64, _) => (sp.wrapping_sub(8), size_of::<RtSigFrame64>()),
        (Abi::I386, Return::Rt) => (sp.wrapping_sub(4) & 0xFFFF_FFFF, size_of::<RtSigFrame32>()),
        (Abi::I386, Return::Legacy) => (sp.wrapping_sub(8) & 0xFFFF_FFFF, size_of::<SigFrame32>()),
    }
}

/// What a signal return restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The registers.
    pub regs: AppRegs,
    /// The signal mask.
    pub mask: u64,
    /// Where the `fxsave` image of the FPU/SSE registers is (`None`: the
    /// frame has no FPU area and the FPU is reset, as Linux does for a NULL
    /// `fpstate`).
    pub fxsave_at: Option<u64>,
}

/// The registers, signal mask and FPU area a signal return restores from
/// `frame` (the bytes [`frame_at`] located), onto `regs` (flags: only the
/// bits Linux restores, `FIX_EFLAGS`). `None` if `frame` is short.
pub fn restore(abi: Abi, kind: Return, frame: &[u8], regs: &AppRegs) -> Option<Restored> {
    let mut out = *regs;
    let fix = sion_abi::app::USER_RFLAGS;
    match abi {
        Abi::X86_64 => {
            let (f, _) = RtSigFrame64::read_from_prefix(frame).ok()?;
            let sc = &f.uc.uc_mcontext;
            out.gpr[AppRegs::R8..AppRegs::R8 + 8].copy_from_slice(&sc.r8_15);
            out.gpr[AppRegs::RDI] = sc.rdi;
            out.gpr[AppRegs::RSI] = sc.rsi;
            out.gpr[AppRegs::RBP] = sc.rbp;
            out.gpr[AppRegs::RBX] = sc.rbx;
            out.gpr[AppRegs::RDX] = sc.rdx;
            out.gpr[AppRegs::RAX] = sc.rax;
            out.gpr[AppRegs::RCX] = sc.rcx;
            out.gpr[AppRegs::RSP] = sc.rsp;
            out.rip = sc.rip;
            out.rflags = (regs.rflags & !fix) | (sc.eflags & fix);
            Some(Restored {
                regs: out,
                mask: f.uc.uc_sigmask,
                fxsave_at: (sc.fpstate != 0).then_some(sc.fpstate),
            })
        }
        Abi::I386 => {
            let (sc, mask) = match kind {
                Return::Rt => {
                    let (f, _) = RtSigFrame32::read_from_prefix(frame).ok()?;
                    let m = f.uc.uc_sigmask;
                    (f.uc.uc_mcontext, u64::from(m[0]) | (u64::from(m[1]) << 32))
                }
                Return::Legacy => {
                    let (f, _) = SigFrame32::read_from_prefix(frame).ok()?;
                    (
                        f.sc,
                        u64::from(f.sc.oldmask) | (u64::from(f.extramask) << 32),
                    )
                }
            };
            let set = |out: &mut AppRegs, i: usize, v: u32| out.gpr[i] = u64::from(v);
            set(&mut out, AppRegs::RDI, sc.edi);
            set(&mut out, AppRegs::RSI, sc.esi);
            set(&mut out, AppRegs::RBP, sc.ebp);
            set(&mut out, AppRegs::RSP, sc.esp);
            set(&mut out, AppRegs::RBX, sc.ebx);
            set(&mut out, AppRegs::RDX, sc.edx);
            set(&mut out, AppRegs::RCX, sc.ecx);
            set(&mut out, AppRegs::RAX, sc.eax);
            out.rip = u64::from(sc.eip);
            out.rflags = (regs.rflags & !fix) | (u64::from(sc.eflags) & fix);
            Some(Restored {
                regs: out,
                mask,
                fxsave_at: (sc.fpstate != 0).then(|| u64::from(sc.fpstate) + FSAVE_HEADER as u64),
            })
        }
    }
}

/// The x86_64 `rt_sigreturn` number (for tests and the table's checks).
pub const RT_SIGRETURN_X86_64: u32 = NR_RT_SIGRETURN_X64;
