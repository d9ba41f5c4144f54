//! SiON's own system calls (`int 0x40`): one table, decoded from the trap frame
//! as the [`sion_abi`] crate documents (number in `rax`, arguments in `rdi`,
//! `rsi`, `rdx`, `r10`, `r8`, `r9`, result in `rax`).
//!
//! Every pointer and length from a process is checked against its address space
//! before the kernel touches the memory; a bad one returns
//! [`Error::BadAddress`].
#![forbid(unsafe_code)]

use crate::arch::trap::TrapFrame;
use crate::proc::{self, scheduler, table};
use crate::{app, console, ipc, net, time};
use alloc::vec;
use sion_abi::{Error, MAX_NAME, MAX_SPAWN_ARG, NO_TIMEOUT, NetInfo, Pid, Syscall, WaitStatus};

/// Longest console write handled in one call, in bytes; longer writes are
/// short writes, as with `write(2)`.
const MAX_CONSOLE_WRITE: u64 = 16 * 1024;

/// Handles the system call in `frame` and puts its result in `frame.rax`.
pub fn dispatch(frame: &mut TrapFrame) {
    let is_application = matches!(table().current().kind, proc::Kind::Application { .. });
    if is_application {
        // Linux programs have no business with SiON's own calls: as on Linux,
        // `int 0x40` is a protection fault.
        proc::kill_current(
            sion_abi::Signal::SIGSEGV,
            "used SiON's system-call vector 0x40",
        );
    }
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
        Syscall::Exit => proc::exit_current(WaitStatus::from_exit_call(a[0] as i32)),
        Syscall::Spawn => spawn(a[0], a[1], a[2], a[3]),
        Syscall::Wait => proc::wait(a[0]),
        Syscall::WaitAny => wait_any(a[0], a[1]),
        Syscall::Kill => proc::kill_child(a[0]),
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
        Syscall::GetPid => Ok(table().current_pid().expect("a caller")),
        Syscall::Register => {
            let me = current_pid();
            net::with(|n| n.ipc.register(a[0] as u32, me)).map(|()| 0)
        }
        Syscall::NetSend => net_send(a),
        Syscall::NetInfo => net_info(a[0]),
        Syscall::SysInfo => sysinfo(a[0]),
        Syscall::AppCreate => app::create(),
        Syscall::AppMap => app::map(a[0], a[1], a[2], a[3]),
        Syscall::AppUnmap => app::unmap(a[0], a[1], a[2]),
        Syscall::AppWrite => app::write(a[0], a[1], a[2], a[3]),
        Syscall::AppRead => app::read(a[0], a[1], a[2], a[3]),
        Syscall::AppStart => app::start(a[0], a[1], a[2], a[3]),
        Syscall::AppSetTls => app::set_tls(a[0], a[1], a[2]),
        Syscall::AppKill => app::kill(a[0], a[1]),
        Syscall::AppRegs => app::regs(a[0], a[1], a[2]),
        Syscall::AppSetRegs => app::set_regs(a[0], a[1], a[2]),
        Syscall::AppFork => app::fork(a[0], a[1], a[2]),
        Syscall::AppExec => app::exec(a[0], a[1]),
        Syscall::AppFpu => app::fpu(a[0], a[1], a[2]),
        Syscall::AppSetFpu => app::set_fpu(a[0], a[1], a[2]),
        Syscall::AppInterrupt => app::interrupt(a[0]),
        Syscall::TcpListen => {
            let me = current_pid();
            net::with(|n| n.tcp.listen(&mut n.sockets, me, a[0] as u16))
        }
        Syscall::TcpAccept => {
            let me = current_pid();
            let deadline = (a[1] != NO_TIMEOUT).then(|| time::now_ns().saturating_add(a[1]));
            until_ready(deadline, || {
                net::with(|n| n.tcp.try_accept(&mut n.sockets, me, a[0]))
            })
        }
        Syscall::TcpConnect => tcp_connect(a[0] as u32, a[1] as u16, a[2]),
        Syscall::TcpSend => tcp_send(a[0], a[1], a[2], a[3]),
        Syscall::TcpRecv => tcp_recv(a[0], a[1], a[2], a[3]),
        Syscall::TcpNotify => {
            let me = current_pid();
            let result = net::with(|n| n.tcp.arm_notify(me, a[0])).map(|()| 0);
            net::poll();
            result
        }
        Syscall::TcpClose => {
            let me = current_pid();
            let abort = a[1] != 0;
            let result = net::with(|n| n.tcp.close(&mut n.sockets, me, a[0], abort)).map(|()| 0);
            net::poll();
            result
        }
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

fn wait_any(status_ptr: u64, timeout_ns: u64) -> Result<u64, Error> {
    table().current().space.check(status_ptr, 8, true)?;
    let deadline = (timeout_ns != NO_TIMEOUT).then(|| time::now_ns().saturating_add(timeout_ns));
    let (child, status) = proc::wait_any(deadline)?;
    // Checked above, and a process's own mappings do not change while it waits.
    table()
        .current()
        .space
        .write(status_ptr, &status.to_raw().to_le_bytes())?;
    Ok(child)
}

fn console_write(ptr: u64, len: u64) -> Result<u64, Error> {
    let len = len.min(MAX_CONSOLE_WRITE);
    let mut text = vec![0u8; len as usize];
    table().current().space.read(ptr, &mut text)?;
    console::write_str(&alloc::string::String::from_utf8_lossy(&text));
    Ok(len)
}

/// Largest chunk one TCP send or receive call moves, in bytes.
const MAX_TCP_CHUNK: u64 = 64 * 1024;

fn current_pid() -> Pid {
    table().current_pid().expect("a caller")
}

/// Retries a non-blocking network operation, polling the stack and sleeping
/// until the next network event in between, until it yields a value, fails,
/// or `deadline_ns` passes ([`Error::TimedOut`]).
fn until_ready<T>(
    deadline_ns: Option<u64>,
    mut attempt: impl FnMut() -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    loop {
        net::poll();
        if let Some(value) = attempt()? {
            net::poll();
            return Ok(value);
        }
        if deadline_ns.is_some_and(|d| time::now_ns() >= d) {
            return Err(Error::TimedOut);
        }
        net::wait_for_event(deadline_ns)?;
    }
}

fn net_send(a: [u64; 6]) -> Result<u64, Error> {
    let [ipv4, node, service, tag, buf, len] = a;
    if len > sion_abi::net::MAX_PAYLOAD as u64 {
        return Err(Error::TooLarge);
    }
    let mut payload = vec![0u8; len as usize];
    let me = {
        let mut t = table();
        t.current().space.read(buf, &mut payload)?;
        t.current_pid().expect("a caller")
    };
    let ip = (ipv4 as u32).to_be_bytes();
    let result = net::with(|n| {
        let src = n.ipc.service_of(me);
        net::ipc::send(n, ip, node, src, service as u32, tag, &payload)
    });
    net::poll();
    result.map(|()| 0)
}

fn net_info(out: u64) -> Result<u64, Error> {
    let info = net::with(|n| {
        let (ipv4, prefix) = n.addr.address().map_or((0, 0), |(a, p)| {
            (u64::from(u32::from_be_bytes(a)), u64::from(p))
        });
        let mac = n.mac.iter().fold(0u64, |m, &b| (m << 8) | u64::from(b));
        Ok(NetInfo {
            node: n.node_id,
            mac,
            ipv4,
            prefix,
        })
    })
    .unwrap_or_default();
    table().current().space.write(out, &info.to_bytes())?;
    Ok(0)
}

fn tcp_connect(ipv4: u32, port: u16, timeout_ns: u64) -> Result<u64, Error> {
    let me = current_pid();
    let deadline = (timeout_ns != NO_TIMEOUT).then(|| time::now_ns().saturating_add(timeout_ns));
    let handle = net::with(|n| {
        n.addr.address().ok_or(Error::NetworkDown)?;
        n.tcp.connect(
            n.iface.context(),
            &mut n.sockets,
            me,
            ipv4.to_be_bytes(),
            port,
        )
    })?;
    let result = until_ready(deadline, || {
        net::with(|n| n.tcp.connected(&n.sockets, me, handle))
    });
    match result {
        Ok(true) => Ok(handle),
        Ok(false) | Err(_) => {
            let _ = net::with(|n| n.tcp.close(&mut n.sockets, me, handle, true));
            Err(match result {
                Err(e) => e,
                _ => Error::ConnectionRefused,
            })
        }
    }
}

fn tcp_send(handle: u64, buf: u64, len: u64, timeout_ns: u64) -> Result<u64, Error> {
    let me = current_pid();
    let mut data = vec![0u8; len.min(MAX_TCP_CHUNK) as usize];
    table().current().space.read(buf, &mut data)?;
    if data.is_empty() {
        return Ok(0);
    }
    let deadline = (timeout_ns != NO_TIMEOUT).then(|| time::now_ns().saturating_add(timeout_ns));
    until_ready(deadline, || {
        net::with(|n| n.tcp.try_send(&mut n.sockets, me, handle, &data))
    })
    .map(|n| n as u64)
}

fn tcp_recv(handle: u64, buf: u64, cap: u64, timeout_ns: u64) -> Result<u64, Error> {
    let me = current_pid();
    let cap = cap.min(MAX_TCP_CHUNK);
    table().current().space.check(buf, cap, true)?;
    let mut data = vec![0u8; cap as usize];
    let deadline = (timeout_ns != NO_TIMEOUT).then(|| time::now_ns().saturating_add(timeout_ns));
    let n = until_ready(deadline, || {
        net::with(|net| net.tcp.try_recv(&mut net.sockets, me, handle, &mut data))
    })?;
    table().current().space.write(buf, &data[..n])?;
    Ok(n as u64)
}

fn sysinfo(out: u64) -> Result<u64, Error> {
    let mut t = table();
    let info = sion_abi::SysInfo {
        free_bytes: crate::mem::frame::free_bytes(),
        total_bytes: crate::mem::frame::total_bytes(),
        uptime_ns: time::now_ns(),
        idle_ns: proc::scheduler::idle_ns(),
        processes: t.procs.len() as u64,
        tsc_hz: time::tsc_hz(),
        cpus: crate::arch::smp::online() as u64,
        idle_cpus: crate::arch::smp::idle_others() as u64,
    };
    t.current().space.write(out, &info.to_bytes())?;
    Ok(0)
}
