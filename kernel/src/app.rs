//! Linux applications: processes whose system calls are served by a manager
//! process (the App-Program Manager) instead of the kernel (SiON paper §4.2.2;
//! McKernel's delegation of system calls to a proxy).
//!
//! The manager builds the application's address space through checked kernel
//! calls (`app_map`, `app_write`, …), starts it, and then receives each Linux
//! system call as a message ([`sion_abi::app`]); its reply resumes the
//! application with the result. 64-bit code enters through `syscall`; i386 code
//! (and 64-bit code using `int 0x80`, as on Linux) through `int 0x80`.
#![forbid(unsafe_code)]

use crate::arch::gdt;
use crate::arch::trap::{LINUX_INT80, TrapFrame};
use crate::mem::space::Access;
use crate::proc::{self, Block, Kind, Notice, State, WAKE_RETRY, scheduler, table};
use alloc::vec;
use sion_abi::app::{self as abi, LinuxSyscall, TAG_LINUX_SYSCALL};
use sion_abi::{Error, MessageInfo, Pid, Signal, WaitStatus};

/// Linux's ENOSYS, returned to a SiON process that makes a Linux system call.
const ENOSYS: i64 = linux_raw_sys::errno::ENOSYS as i64;
/// Largest single `app_read`/`app_write`, in bytes.
const MAX_COPY: u64 = 1 << 20;

/// The trap of a Linux system call (`syscall` or `int 0x80`).
pub fn linux_syscall(frame: &mut TrapFrame) {
    let (me, manager) = {
        let mut t = table();
        let p = t.current();
        match p.kind {
            Kind::Application { manager, .. } => (p.pid, manager),
            Kind::Sion => {
                frame.rax = (-ENOSYS) as u64;
                return;
            }
        }
    };
    let i386 = frame.vector == LINUX_INT80;
    let low = |r: u64| r & 0xFFFF_FFFF;
    let call = if i386 {
        LinuxSyscall {
            abi: abi::ABI_I386,
            nr: low(frame.rax),
            args: [
                frame.rbx, frame.rcx, frame.rdx, frame.rsi, frame.rdi, frame.rbp,
            ]
            .map(low),
            rip: frame.rip,
        }
    } else {
        LinuxSyscall {
            abi: abi::ABI_X86_64,
            nr: frame.rax,
            args: [
                frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
            ],
            rip: frame.rip,
        }
    };
    {
        let mut t = table();
        let info = MessageInfo {
            sender: me,
            tag: TAG_LINUX_SYSCALL,
            len: LinuxSyscall::LEN as u64,
            wants_reply: 1,
            ..Default::default()
        };
        match proc::post_notice(&mut t, manager, Notice::new(info, &call.encode())) {
            Ok(()) => {}
            Err(Error::WouldBlock) => {
                drop(t);
                proc::kill_current(Signal::SIGKILL, "its manager's notice queue is full");
            }
            Err(_) => {
                drop(t);
                proc::kill_current(Signal::SIGKILL, "its manager is gone");
            }
        }
        t.current().state = State::Blocked(Block::LinuxSyscall { manager });
    }
    let value = scheduler::block();
    if value == Error::PeerDied.to_result() || value == WAKE_RETRY {
        proc::kill_current(Signal::SIGKILL, "its manager ended during a system call");
    }
    frame.rax = if i386 {
        u64::from(value as i32 as u32)
    } else {
        value as u64
    };
}

/// Runs `f` on application `pid` if the caller manages it.
/// Errors: [`Error::NotChild`].
fn with_app<R>(
    pid: Pid,
    f: impl FnOnce(&mut proc::Process) -> Result<R, Error>,
) -> Result<R, Error> {
    let mut t = table();
    let me = t.current.expect("a caller");
    let app = t.procs.get_mut(&pid).ok_or(Error::NotChild)?;
    match app.kind {
        Kind::Application { manager, .. } if manager == me => f(app),
        _ => Err(Error::NotChild),
    }
}

fn access(prot: u64) -> Access {
    Access {
        write: prot & abi::PROT_WRITE != 0,
        execute: prot & abi::PROT_EXEC != 0,
    }
}

/// `app_create`.
pub fn create() -> Result<u64, Error> {
    let me = table().current.expect("a caller");
    proc::create_application(me, "app")
}

/// `app_map`.
pub fn map(pid: Pid, addr: u64, len: u64, prot: u64) -> Result<u64, Error> {
    with_app(pid, |app| {
        if prot & (abi::PROT_READ | abi::PROT_WRITE | abi::PROT_EXEC) == 0 {
            app.space.unmap(addr, len)?;
        } else {
            app.space.map_exact(addr, len, access(prot))?;
        }
        Ok(0)
    })
}

/// `app_unmap`.
pub fn unmap(pid: Pid, addr: u64, len: u64) -> Result<u64, Error> {
    with_app(pid, |app| app.space.unmap(addr, len).map(|()| 0))
}

/// `app_write`: from the caller's `buf` into the application at `addr`.
pub fn write(pid: Pid, addr: u64, buf: u64, len: u64) -> Result<u64, Error> {
    if len > MAX_COPY {
        return Err(Error::TooLarge);
    }
    let mut data = vec![0u8; len as usize];
    table().current().space.read(buf, &mut data)?;
    with_app(pid, |app| app.space.load(addr, &data).map(|()| 0))
}

/// `app_read`: from the application at `addr` into the caller's `buf`.
pub fn read(pid: Pid, addr: u64, buf: u64, len: u64) -> Result<u64, Error> {
    if len > MAX_COPY {
        return Err(Error::TooLarge);
    }
    let mut data = vec![0u8; len as usize];
    with_app(pid, |app| app.space.read(addr, &mut data))?;
    table().current().space.write(buf, &data)?;
    Ok(0)
}

/// `app_start`.
pub fn start(pid: Pid, entry: u64, sp: u64, abi_bits: u64) -> Result<u64, Error> {
    let abi64 = match abi_bits {
        abi::ABI_X86_64 => true,
        abi::ABI_I386 => false,
        _ => return Err(Error::InvalidArgument),
    };
    let mut t = table();
    let me = t.current.expect("a caller");
    let app = t.procs.get_mut(&pid).ok_or(Error::NotChild)?;
    if app.kind
        != (Kind::Application {
            manager: me,
            abi64: true,
        })
        || app.state != State::Embryo
    {
        return Err(Error::NotChild);
    }
    app.kind = Kind::Application { manager: me, abi64 };
    let frame = app.user_frame();
    *frame = TrapFrame::new_user(entry, sp);
    if !abi64 {
        frame.cs = u64::from(gdt::USER_CODE32.0);
    }
    app.state = State::Blocked(Block::Network);
    t.wake(pid, 0);
    Ok(0)
}

/// `app_set_tls`.
pub fn set_tls(pid: Pid, kind: u64, base: u64) -> Result<u64, Error> {
    with_app(pid, |app| match kind {
        abi::TLS_FS_BASE => {
            if base >= crate::mem::space::USER_END {
                return Err(Error::BadAddress);
            }
            app.fs_base = base;
            Ok(0)
        }
        abi::TLS_I386_SEGMENT => {
            app.tls_base = Some(u32::try_from(base).map_err(|_| Error::BadAddress)?);
            Ok(u64::from(gdt::TLS_INDEX))
        }
        _ => Err(Error::InvalidArgument),
    })
}

/// `app_kill`: ends the application with `status` (a wait-status word).
pub fn kill(pid: Pid, status: u64) -> Result<u64, Error> {
    with_app(pid, |_| Ok(()))?;
    proc::end_other(pid, WaitStatus::from_raw(status));
    Ok(0)
}
