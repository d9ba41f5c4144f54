//! Wrappers for SiON's system calls on `int 0x40` (numbers and errors in
//! [`sion_abi`]).

use sion_abi::{Error, MessageInfo, NO_TIMEOUT, Pid, Syscall, WaitStatus};

/// Raw system call with up to six arguments; returns `rax`.
///
/// # Safety
/// Pointer arguments must follow the call's contract; the kernel checks them,
/// but a valid pointer to the wrong memory can still be overwritten.
#[inline(always)]
pub unsafe fn syscall6(call: Syscall, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: `int 0x40` enters the kernel, which preserves every register
    // except rax and touches only memory the arguments describe.
    unsafe {
        core::arch::asm!(
            "int 0x40",
            inlateout("rax") call as u64 => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            options(nostack),
        );
    }
    ret
}

fn call(c: Syscall, a: [u64; 6]) -> Result<u64, Error> {
    // SAFETY: the wrappers below pass pointers derived from live Rust
    // references with their true lengths.
    Error::from_result(unsafe { syscall6(c, a) })
}

/// Ends the process with exit code `code` (low 8 bits).
pub fn exit(code: i32) -> ! {
    let _ = call(Syscall::Exit, [code as u64, 0, 0, 0, 0, 0]);
    unreachable!("exit returned")
}

/// Starts the process image `name` as a child, passing it `arg`.
pub fn spawn(name: &str, arg: &[u8]) -> Result<Pid, Error> {
    call(
        Syscall::Spawn,
        [
            name.as_ptr() as u64,
            name.len() as u64,
            arg.as_ptr() as u64,
            arg.len() as u64,
            0,
            0,
        ],
    )
}

/// Waits for child `pid` to end.
pub fn wait(pid: Pid) -> Result<WaitStatus, Error> {
    call(Syscall::Wait, [pid, 0, 0, 0, 0, 0]).map(WaitStatus::from_raw)
}

/// Waits up to `timeout_ns` ([`NO_TIMEOUT`]: for ever) for any child to end;
/// its pid and status. Errors: [`Error::NotChild`] (no child),
/// [`Error::TimedOut`].
pub fn wait_any(timeout_ns: u64) -> Result<(Pid, WaitStatus), Error> {
    let mut status = 0u64;
    let pid = call(
        Syscall::WaitAny,
        [&raw mut status as u64, timeout_ns, 0, 0, 0, 0],
    )?;
    Ok((pid, WaitStatus::from_raw(status)))
}

/// Ends child `pid` with `SIGKILL` (reap it with [`wait`] or [`wait_any`]).
/// Errors: [`Error::NotChild`].
pub fn kill(pid: Pid) -> Result<(), Error> {
    call(Syscall::Kill, [pid, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Sends `msg` with `tag` to `to`; returns once `to` has received it.
pub fn send(to: Pid, tag: u64, msg: &[u8]) -> Result<(), Error> {
    call(
        Syscall::Send,
        [to, tag, msg.as_ptr() as u64, msg.len() as u64, 0, 0],
    )
    .map(|_| ())
}

/// Sends `msg` and waits for the reply, copied into `reply`; returns the
/// reply's full length.
pub fn call_reply(to: Pid, tag: u64, msg: &[u8], reply: &mut [u8]) -> Result<usize, Error> {
    call(
        Syscall::Call,
        [
            to,
            tag,
            msg.as_ptr() as u64,
            msg.len() as u64,
            reply.as_mut_ptr() as u64,
            reply.len() as u64,
        ],
    )
    .map(|n| n as usize)
}

/// Waits up to `timeout_ns` ([`NO_TIMEOUT`]: for ever) for a message from
/// `from` ([`sion_abi::ANY_SENDER`]: anyone) into `buf`.
pub fn receive(buf: &mut [u8], from: Pid, timeout_ns: u64) -> Result<MessageInfo, Error> {
    let mut info = MessageInfo::default();
    call(
        Syscall::Receive,
        [
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
            from,
            timeout_ns,
            &raw mut info as u64,
            0,
        ],
    )?;
    Ok(info)
}

/// Answers a `call` from `to`.
pub fn reply(to: Pid, msg: &[u8]) -> Result<(), Error> {
    call(
        Syscall::Reply,
        [to, msg.as_ptr() as u64, msg.len() as u64, 0, 0, 0],
    )
    .map(|_| ())
}

/// Gives up the rest of the time slice.
pub fn yield_now() {
    let _ = call(Syscall::Yield, [0; 6]);
}

/// Nanoseconds since the node booted.
pub fn clock_ns() -> u64 {
    call(Syscall::Clock, [0; 6]).unwrap_or(0)
}

/// Sleeps for `ns` nanoseconds (a receive from nobody with a timeout).
pub fn sleep_ns(ns: u64) {
    let own = getpid();
    let _ = receive(&mut [], own, ns.min(NO_TIMEOUT - 1));
}

/// Writes text to the node's console; returns the bytes written.
pub fn console_write(text: &[u8]) -> Result<usize, Error> {
    call(
        Syscall::ConsoleWrite,
        [text.as_ptr() as u64, text.len() as u64, 0, 0, 0, 0],
    )
    .map(|n| n as usize)
}

/// This process's id.
pub fn getpid() -> Pid {
    call(Syscall::GetPid, [0; 6]).unwrap_or(0)
}

/// Claims network IPC service `service` on this node.
pub fn register(service: u32) -> Result<(), Error> {
    call(Syscall::Register, [u64::from(service), 0, 0, 0, 0, 0]).map(|_| ())
}

/// Sends `msg` as one datagram to `service` on node `node` at `ipv4`
/// (`[255; 4]` with [`sion_abi::net::ALL_NODES`]: every node).
pub fn net_send(ipv4: [u8; 4], node: u64, service: u32, tag: u64, msg: &[u8]) -> Result<(), Error> {
    call(
        Syscall::NetSend,
        [
            u64::from(u32::from_be_bytes(ipv4)),
            node,
            u64::from(service),
            tag,
            msg.as_ptr() as u64,
            msg.len() as u64,
        ],
    )
    .map(|_| ())
}

/// This node's id, MAC and address.
pub fn net_info() -> Result<sion_abi::NetInfo, Error> {
    let mut info = sion_abi::NetInfo::default();
    call(Syscall::NetInfo, [&raw mut info as u64, 0, 0, 0, 0, 0])?;
    Ok(info)
}

/// A TCP socket handle.
#[derive(Debug)]
pub struct TcpStream(u64);

/// A listening TCP socket.
#[derive(Debug)]
pub struct TcpListener(u64);

impl TcpListener {
    /// Listens on `port`.
    pub fn bind(port: u16) -> Result<TcpListener, Error> {
        call(Syscall::TcpListen, [u64::from(port), 0, 0, 0, 0, 0]).map(TcpListener)
    }

    /// Waits for the next connection.
    pub fn accept(&self) -> Result<TcpStream, Error> {
        call(Syscall::TcpAccept, [self.0, NO_TIMEOUT, 0, 0, 0, 0]).map(TcpStream)
    }

    /// The next connection if one has arrived, without waiting.
    pub fn try_accept(&self) -> Option<TcpStream> {
        call(Syscall::TcpAccept, [self.0, 0, 0, 0, 0, 0])
            .ok()
            .map(TcpStream)
    }

    /// Asks for one [`sion_abi::TAG_TCP_READABLE`] message once a connection
    /// is ready to accept.
    pub fn notify_acceptable(&self) -> Result<(), Error> {
        call(Syscall::TcpNotify, [self.0, 0, 0, 0, 0, 0]).map(|_| ())
    }

    /// The kernel's handle number (as carried by notices).
    pub fn handle(&self) -> u64 {
        self.0
    }
}

impl TcpStream {
    /// Connects to `ipv4:port`, giving up after `timeout_ns`.
    pub fn connect(ipv4: [u8; 4], port: u16, timeout_ns: u64) -> Result<TcpStream, Error> {
        call(
            Syscall::TcpConnect,
            [
                u64::from(u32::from_be_bytes(ipv4)),
                u64::from(port),
                timeout_ns,
                0,
                0,
                0,
            ],
        )
        .map(TcpStream)
    }

    /// Sends some of `data`; returns how much.
    pub fn send(&self, data: &[u8]) -> Result<usize, Error> {
        self.send_timeout(data, NO_TIMEOUT)
    }

    /// Sends some of `data`, waiting at most `timeout_ns` (0: only what fits
    /// now) for room; returns how much. Errors: [`Error::TimedOut`].
    pub fn send_timeout(&self, data: &[u8], timeout_ns: u64) -> Result<usize, Error> {
        call(
            Syscall::TcpSend,
            [
                self.0,
                data.as_ptr() as u64,
                data.len() as u64,
                timeout_ns,
                0,
                0,
            ],
        )
        .map(|n| n as usize)
    }

    /// Sends all of `data`.
    pub fn send_all(&self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let n = self.send(data)?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Receives into `buf`, waiting as long as it takes; 0 at end of stream.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, Error> {
        self.recv_timeout(buf, NO_TIMEOUT)
    }

    /// Receives into `buf`, waiting at most `timeout_ns` (0: only what is
    /// there); 0 at end of stream. Errors: [`Error::TimedOut`].
    pub fn recv_timeout(&self, buf: &mut [u8], timeout_ns: u64) -> Result<usize, Error> {
        call(
            Syscall::TcpRecv,
            [
                self.0,
                buf.as_mut_ptr() as u64,
                buf.len() as u64,
                timeout_ns,
                0,
                0,
            ],
        )
        .map(|n| n as usize)
    }

    /// Asks for one [`sion_abi::TAG_TCP_READABLE`] message once data (or the
    /// end of the stream) is ready.
    pub fn notify_readable(&self) -> Result<(), Error> {
        call(Syscall::TcpNotify, [self.0, 0, 0, 0, 0, 0]).map(|_| ())
    }

    /// The kernel's handle number (as carried by readable notices).
    pub fn handle(&self) -> u64 {
        self.0
    }

    /// Resets the connection at once (TCP RST), discarding what is queued
    /// either way: for peers that are dropped rather than served.
    pub fn abort(self) {
        let _ = call(Syscall::TcpClose, [self.0, 1, 0, 0, 0, 0]);
        core::mem::forget(self);
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let _ = call(Syscall::TcpClose, [self.0, 0, 0, 0, 0, 0]);
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let _ = call(Syscall::TcpClose, [self.0, 0, 0, 0, 0, 0]);
    }
}

/// Memory, uptime and idle time of this node.
pub fn sysinfo() -> Result<sion_abi::SysInfo, Error> {
    let mut info = sion_abi::SysInfo::default();
    call(Syscall::SysInfo, [&raw mut info as u64, 0, 0, 0, 0, 0])?;
    Ok(info)
}

/// Application management (the App-Program Manager's kernel calls); see
/// [`sion_abi::app`] and the `App*` calls of [`Syscall`].
pub mod app {
    use super::call;
    use sion_abi::{Error, Pid, Syscall};

    /// Creates an empty application managed by the caller.
    pub fn create() -> Result<Pid, Error> {
        call(Syscall::AppCreate, [0; 6])
    }

    /// Maps zeroed memory (or changes protection) at `[addr, addr + len)`;
    /// `prot == 0` unmaps.
    pub fn map(pid: Pid, addr: u64, len: u64, prot: u64) -> Result<(), Error> {
        call(Syscall::AppMap, [pid, addr, len, prot, 0, 0]).map(|_| ())
    }

    /// Unmaps `[addr, addr + len)` and frees the pages.
    pub fn unmap(pid: Pid, addr: u64, len: u64) -> Result<(), Error> {
        call(Syscall::AppUnmap, [pid, addr, len, 0, 0, 0]).map(|_| ())
    }

    /// Copies `data` into the application at `addr` (mapped pages only).
    pub fn write(pid: Pid, addr: u64, data: &[u8]) -> Result<(), Error> {
        call(
            Syscall::AppWrite,
            [pid, addr, data.as_ptr() as u64, data.len() as u64, 0, 0],
        )
        .map(|_| ())
    }

    /// Copies the application's memory at `addr` into `buf`.
    pub fn read(pid: Pid, addr: u64, buf: &mut [u8]) -> Result<(), Error> {
        call(
            Syscall::AppRead,
            [pid, addr, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0],
        )
        .map(|_| ())
    }

    /// Starts it at `entry` with stack pointer `sp`, as [`sion_abi::app::ABI_X86_64`]
    /// or [`sion_abi::app::ABI_I386`] code.
    pub fn start(pid: Pid, entry: u64, sp: u64, abi: u64) -> Result<(), Error> {
        call(Syscall::AppStart, [pid, entry, sp, abi, 0, 0]).map(|_| ())
    }

    /// Sets its TLS: the FS base, or an i386 TLS segment (returns the GDT entry number).
    pub fn set_tls(pid: Pid, kind: u64, base: u64) -> Result<u64, Error> {
        call(Syscall::AppSetTls, [pid, kind, base, 0, 0, 0])
    }

    /// Ends it with wait status `status`.
    pub fn kill(pid: Pid, status: u64) -> Result<(), Error> {
        call(Syscall::AppKill, [pid, status, 0, 0, 0, 0]).map(|_| ())
    }

    /// The registers of the application, stopped in a Linux system call or a
    /// fault. Errors: [`Error::NotChild`], [`Error::InvalidArgument`] (not
    /// stopped).
    pub fn regs(pid: Pid) -> Result<sion_abi::app::AppRegs, Error> {
        let mut buf = [0u8; sion_abi::app::AppRegs::LEN];
        call(
            Syscall::AppRegs,
            [pid, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0],
        )?;
        sion_abi::app::AppRegs::decode(&buf).ok_or(Error::InvalidArgument)
    }

    /// Stops the running application `pid` at its next timer tick and posts
    /// [`sion_abi::app::TAG_APP_INTERRUPTED`] (see `Syscall::AppInterrupt`).
    pub fn interrupt(pid: Pid) -> Result<(), Error> {
        call(Syscall::AppInterrupt, [pid, 0, 0, 0, 0, 0]).map(|_| ())
    }

    /// A copy of the application `pid`, stopped in a Linux system call, that
    /// is stopped as if in the same call; a reply starts it with 0 in `rax`,
    /// on stack `child_sp` unless it is 0, sharing the address space with
    /// `flags` [`sion_abi::app::FORK_SHARE_SPACE`] (see `Syscall::AppFork`);
    /// its pid.
    pub fn fork(pid: Pid, child_sp: u64, flags: u64) -> Result<Pid, Error> {
        call(Syscall::AppFork, [pid, child_sp, flags, 0, 0, 0])
    }

    /// Gives the stopped application an empty address space, no TLS and ABI
    /// `abi`, for a new image (see `Syscall::AppExec`).
    pub fn exec(pid: Pid, abi: u64) -> Result<(), Error> {
        call(Syscall::AppExec, [pid, abi, 0, 0, 0, 0]).map(|_| ())
    }

    /// The stopped application's FPU/SSE registers (`fxsave` image).
    pub fn fpu(pid: Pid) -> Result<[u8; 512], Error> {
        let mut buf = [0u8; 512];
        call(
            Syscall::AppFpu,
            [pid, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0],
        )?;
        Ok(buf)
    }

    /// Replaces them with the `fxsave` image `image`.
    pub fn set_fpu(pid: Pid, image: &[u8; 512]) -> Result<(), Error> {
        call(
            Syscall::AppSetFpu,
            [pid, image.as_ptr() as u64, image.len() as u64, 0, 0, 0],
        )
        .map(|_| ())
    }

    /// Replaces the stopped application's registers; the next reply resumes
    /// it with them. Errors: as [`regs`], and [`Error::BadAddress`] for a
    /// `rip`/`rsp` outside user space.
    pub fn set_regs(pid: Pid, regs: &sion_abi::app::AppRegs) -> Result<(), Error> {
        let buf = regs.encode();
        call(
            Syscall::AppSetRegs,
            [pid, buf.as_ptr() as u64, buf.len() as u64, 0, 0, 0],
        )
        .map(|_| ())
    }
}

/// The CPU's time-stamp counter (`rdtsc`), for benchmarks that count cycles.
#[inline(always)]
pub fn cycles() -> u64 {
    // SAFETY: RDTSC only reads a counter; the kernel leaves CR4.TSD clear,
    // so ring 3 may execute it.
    unsafe { core::arch::x86_64::_rdtsc() }
}
