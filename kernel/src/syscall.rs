//! SiON's own system calls (`int 0x40`): one table, decoded from the trap frame
//! as the [`sion_abi`] crate documents (number in `rax`, arguments in `rdi`,
//! `rsi`, `rdx`, `r10`, `r8`, `r9`, result in `rax`).
//!
//! Every pointer and length from a process is checked against its address space
//! before the kernel touches the memory; a bad one returns
//! [`Error::BadAddress`].

use crate::arch::trap::TrapFrame;
use crate::proc::{self, scheduler, table};
use crate::{console, ipc, time};
use alloc::vec;
use sion_abi::{Error, MAX_NAME, MAX_SPAWN_ARG, Syscall, WaitStatus};

/// Longest console write handled in one call, in bytes; longer writes are
/// short writes, as with `write(2)`.
const MAX_CONSOLE_WRITE: u64 = 16 * 1024;

/// Handles the system call in `frame` and puts its result in `frame.rax`.
pub fn dispatch(frame: &mut TrapFrame) {
    let args = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let result = match Syscall::from_number(frame.rax) {
        Some(call) => handle(call, args),
        None => Err(Error::UnknownSyscall),
    };
    frame.rax = match result {
        Ok(value) => value,
        Err(e) => e.to_result() as u64,
    };
}

fn handle(call: Syscall, a: [u64; 6]) -> Result<u64, Error> {
    match call {
        Syscall::Exit => proc::exit_current(WaitStatus::Exited(a[0] as u8)),
        Syscall::Spawn => spawn(a[0], a[1], a[2], a[3]),
        Syscall::Wait => proc::wait(a[0]),
        Syscall::Send => ipc::send(a[0], a[1], a[2], a[3], None),
        Syscall::Call => ipc::send(a[0], a[1], a[2], a[3], Some((a[4], a[5]))),
        Syscall::Receive => ipc::receive(a[0], a[1], a[2], a[3], a[4]),
        Syscall::Reply => ipc::reply(a[0], a[1], a[2]),
        Syscall::Yield => {
            scheduler::preempt();
            Ok(0)
        }
        Syscall::Clock => Ok(time::now_ns()),
        Syscall::ConsoleWrite => console_write(a[0], a[1]),
        Syscall::GetPid => Ok(table().current.expect("a caller")),
    }
}

fn spawn(name_ptr: u64, name_len: u64, arg_ptr: u64, arg_len: u64) -> Result<u64, Error> {
    if name_len > MAX_NAME as u64 || arg_len > MAX_SPAWN_ARG as u64 {
        return Err(Error::InvalidArgument);
    }
    let mut name = vec![0u8; name_len as usize];
    let mut arg = vec![0u8; arg_len as usize];
    let parent = {
        let mut t = table();
        let me = t.current();
        me.space.read(name_ptr, &mut name)?;
        me.space.read(arg_ptr, &mut arg)?;
        me.pid
    };
    let name = core::str::from_utf8(&name).map_err(|_| Error::InvalidArgument)?;
    proc::spawn(name, &arg, Some(parent))
}

fn console_write(ptr: u64, len: u64) -> Result<u64, Error> {
    let len = len.min(MAX_CONSOLE_WRITE);
    let mut text = vec![0u8; len as usize];
    table().current().space.read(ptr, &mut text)?;
    console::write_str(&alloc::string::String::from_utf8_lossy(&text));
    Ok(len)
}
