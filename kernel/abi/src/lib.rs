//! The SiON kernel/process ABI: what a SiON process and the kernel agree on.
//!
//! SiON's own system calls enter the kernel through `int 0x40` (SiON paper,
//! §4.2.2: "SiON uses interrupt vector 0x40 for its own system calls; they
//! support creating, ending and waiting for processes and sending and receiving
//! messages"). The register convention follows the x86_64 Linux `syscall` ABI so
//! that wrappers look familiar:
//!
//! | register | use |
//! |---|---|
//! | `rax` | system-call number ([`Syscall`]) in, result out |
//! | `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9` | arguments 1–6 |
//!
//! Every other register is preserved. A result `>= 0` is success; a negative
//! result is `-(Error as i64)` (see [`Error::from_result`]).
#![no_std]
#![forbid(unsafe_code)]

pub mod app;
pub mod exception;
pub mod net;
pub mod page;
pub mod signal;

pub use signal::{DefaultAction, Signal, WaitStatus};

/// Interrupt vector of SiON's own system calls (SiON paper §4.2.2).
pub const SYSCALL_VECTOR: u8 = 0x40;

/// Largest message the kernel copies in one IPC operation, in bytes (1 MiB).
/// Issue 2 asks for at least 64 KiB; the bound keeps the time the kernel spends
/// copying with interrupts off small.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Largest argument blob passed to a new process by [`Syscall::Spawn`], in bytes.
pub const MAX_SPAWN_ARG: usize = 4096;

/// Longest cluster-key text the kernel gives `init` (from the boot argument
/// `key=` or the ramdisk's `cluster.key`), in bytes: a spawn argument keeps
/// room for the crash-hook line the kernel may put in front of it and for
/// the 8-byte pid `init` puts in front of it for its services.
pub const MAX_KEY_TEXT: usize = MAX_SPAWN_ARG - 128;

/// Longest process-image name accepted by [`Syscall::Spawn`], in bytes.
pub const MAX_NAME: usize = 64;

/// A process id. Ids start at 1 and are never reused while the node runs.
pub type Pid = u64;

/// [`Syscall::Receive`]'s `from` argument meaning "from any sender".
pub const ANY_SENDER: Pid = 0;

/// [`Syscall::Receive`]'s timeout meaning "wait for ever".
pub const NO_TIMEOUT: u64 = u64::MAX;

/// SiON system-call numbers (value of `rax` on `int 0x40`).
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// `exit(code: i32) -> !`: end the calling process with exit code `code & 0xff`.
    Exit = 0,
    /// `spawn(name: *const u8, name_len, arg: *const u8, arg_len) -> Pid`: start the
    /// process image `name` from the node's disk image as a child of the caller.
    /// The child's entry point gets `arg` (copied, at most [`MAX_SPAWN_ARG`] bytes)
    /// as `(ptr, len)` in `rdi`, `rsi`. Errors: [`Error::NotFound`],
    /// [`Error::BadImage`], [`Error::NoMemory`], [`Error::BadAddress`], [`Error::InvalidArgument`].
    Spawn = 1,
    /// `wait(pid) -> status`: block until child `pid` ends; returns its
    /// [`WaitStatus`] word. Errors: [`Error::NotChild`].
    Wait = 2,
    /// `send(to: Pid, tag: u64, buf: *const u8, len) -> 0`: deliver a message and
    /// return once the receiver has it (rendezvous). The kernel copies `buf` once,
    /// straight into the receiver's buffer (SiON paper §4.2.3, Fig. 7).
    /// Errors: [`Error::NoSuchProcess`], [`Error::PeerDied`], [`Error::BadAddress`],
    /// [`Error::TooLarge`], [`Error::InvalidArgument`] (sending to oneself).
    Send = 3,
    /// `call(to, tag, buf, len, reply_buf: *mut u8, reply_cap) -> reply_len`: as
    /// `send`, then block until the receiver answers with `reply`. A reply longer
    /// than `reply_cap` is truncated; the full length is returned.
    Call = 4,
    /// `receive(buf: *mut u8, cap, from: Pid, timeout_ns, info: *mut MessageInfo) -> len`:
    /// block until a message from `from` (or [`ANY_SENDER`]) arrives or
    /// `timeout_ns` passes ([`NO_TIMEOUT`]: never; 0: poll). The message is
    /// truncated to `cap` bytes; the returned length and `info.len` are the full
    /// length. Errors: [`Error::TimedOut`], [`Error::BadAddress`].
    Receive = 5,
    /// `reply(to: Pid, buf: *const u8, len) -> 0`: answer a `call` from `to` that
    /// this process has received. Errors: [`Error::NotWaiting`].
    Reply = 6,
    /// `yield() -> 0`: give up the rest of the time slice.
    Yield = 7,
    /// `clock() -> ns`: the node's monotonic clock in nanoseconds since boot.
    Clock = 8,
    /// `console_write(buf: *const u8, len) -> len`: write UTF-8 text to the node's
    /// console (serial port and screen).
    ConsoleWrite = 9,
    /// `getpid() -> Pid`.
    GetPid = 10,
    /// `register(service: u32) -> 0`: claim a network IPC service number on this
    /// node ([`net`]); messages from other nodes to it are queued for the caller
    /// and arrive through `receive`. Errors: [`Error::InUse`].
    Register = 11,
    /// `net_send(ipv4: u32, node: u64, service: u32, tag, buf, len) -> 0`: send a
    /// message as one UDP datagram to `service` on node `node` at `ipv4`
    /// (`0xFFFF_FFFF` and [`net::ALL_NODES`]: broadcast to every node). At most
    /// [`net::MAX_PAYLOAD`] bytes. Errors: [`Error::TooLarge`],
    /// [`Error::NetworkDown`], [`Error::BadAddress`], [`Error::WouldBlock`] (queue full).
    NetSend = 12,
    /// `net_info(out: *mut NetInfo) -> 0`: this node's id, MAC and address.
    NetInfo = 13,
    /// `tcp_listen(port: u16) -> handle`: listen for TCP connections.
    /// Errors: [`Error::InUse`], [`Error::NetworkDown`].
    TcpListen = 14,
    /// `tcp_accept(listener, timeout_ns) -> handle`: wait up to `timeout_ns`
    /// ([`NO_TIMEOUT`]: for ever; 0: do not wait) for a connection.
    /// Errors: [`Error::TimedOut`].
    TcpAccept = 15,
    /// `tcp_connect(ipv4: u32, port: u16, timeout_ns) -> handle`: block until
    /// connected. Errors: [`Error::ConnectionRefused`], [`Error::TimedOut`].
    TcpConnect = 16,
    /// `tcp_send(handle, buf, len, timeout_ns) -> n`: wait up to `timeout_ns`
    /// ([`NO_TIMEOUT`]: for ever; 0: do not wait) until at least one byte is
    /// queued; returns how many. Errors: [`Error::ConnectionClosed`],
    /// [`Error::TimedOut`].
    TcpSend = 17,
    /// `tcp_recv(handle, buf, cap, timeout_ns) -> n`: wait up to `timeout_ns`
    /// ([`NO_TIMEOUT`]: for ever; 0: do not wait) for data; 0 means the peer
    /// closed its side. Errors: [`Error::TimedOut`].
    TcpRecv = 18,
    /// `tcp_close(handle, abort) -> 0`: close (after sending what is queued;
    /// with `abort` != 0, reset the connection at once) and free.
    TcpClose = 19,
    /// `sysinfo(out: *mut SysInfo) -> 0`: memory, uptime and idle time.
    SysInfo = 20,
    /// `app_create() -> Pid`: a new, empty application (a Linux program) managed
    /// by the caller: not runnable until `app_start`. Its Linux system calls
    /// arrive at the caller as messages tagged [`TAG_LINUX_SYSCALL`]; its end
    /// as [`TAG_APP_EXITED`]. See [`app`].
    AppCreate = 21,
    /// `app_map(pid, addr, len, prot) -> 0`: map zeroed memory (or change the
    /// protection of mapped pages) with [`app::PROT_READ`]`|`[`app::PROT_WRITE`]`|`[`app::PROT_EXEC`].
    /// Errors: [`Error::BadAddress`], [`Error::NoMemory`], [`Error::NotChild`].
    AppMap = 22,
    /// `app_unmap(pid, addr, len) -> 0`: unmap and free pages.
    AppUnmap = 23,
    /// `app_write(pid, addr, buf, len) -> 0`: copy into the application's memory
    /// (mapped pages only; protection is not checked, as for a loader).
    AppWrite = 24,
    /// `app_read(pid, addr, buf, len) -> 0`: copy out of the application's memory.
    AppRead = 25,
    /// `app_start(pid, entry, sp, abi) -> 0`: make it runnable at `entry` with
    /// stack `sp`, as 64-bit code ([`app::ABI_X86_64`]) or i386 code in
    /// compatibility mode ([`app::ABI_I386`]).
    AppStart = 26,
    /// `app_set_tls(pid, kind, base) -> n`: [`app::TLS_FS_BASE`] sets the FS base
    /// (`arch_prctl(ARCH_SET_FS)`); [`app::TLS_I386_SEGMENT`] gives the i386
    /// application a TLS segment at `base` and returns its GDT entry number
    /// (`set_thread_area`).
    AppSetTls = 27,
    /// `app_kill(pid, status) -> 0`: end the application with wait status
    /// `status` (its `exit_group`, or a kill).
    AppKill = 28,
    /// `tcp_notify(handle) -> 0`: once data or the end of the stream is ready to
    /// read on stream `handle` (or, for a listener, a connection is ready to
    /// accept), queue one message for the caller with tag
    /// [`TAG_TCP_READABLE`] and the handle (`u64`, little-endian) as payload, so
    /// a process can wait for sockets and messages in one `receive`. One-shot:
    /// call again after reading.
    TcpNotify = 29,
    /// `app_regs(pid, buf, len) -> 0`: copy the saved user registers of an
    /// application stopped in a Linux system call or a fault
    /// ([`app::AppRegs`], `len` = [`app::AppRegs::LEN`]) into `buf`.
    /// Errors: [`Error::NotChild`]; [`Error::InvalidArgument`] if it is not
    /// stopped or `len` is wrong.
    AppRegs = 30,
    /// `app_set_regs(pid, buf, len) -> 0`: replace them (checked: user
    /// addresses, user flags); the next reply resumes it with them.
    /// Errors: as `app_regs`, and [`Error::BadAddress`] for a `rip`/`rsp`
    /// outside user space.
    AppSetRegs = 31,
    /// `app_interrupt(pid) -> 0`: stop a running application (started with
    /// [`app::START_FAULTS_TO_MANAGER`]) at its next timer tick in user mode
    /// and post its manager [`app::TAG_APP_INTERRUPTED`], so the manager can
    /// deliver a signal to a program that makes no system call; the manager's
    /// reply resumes it (with the registers it set, if any).
    /// Errors: [`Error::NotChild`].
    AppInterrupt = 32,
    /// `app_fork(pid, child_sp, flags) -> Pid`: a copy of the application `pid`
    /// (stopped in a Linux system call), managed by the caller and stopped as
    /// if in the same call: the caller's reply starts it from the same point
    /// with 0 in `rax` (`fork(2)`), on stack `child_sp` unless it is 0;
    /// with [`app::FORK_SHARE_SPACE`] it shares the address space (a thread). Errors: [`Error::NotChild`],
    /// [`Error::InvalidArgument`] (not stopped), [`Error::BadAddress`],
    /// [`Error::NoMemory`].
    AppFork = 33,
    /// `app_exec(pid, abi) -> 0`: the stopped application gets an empty
    /// address space, no TLS and ABI `abi` ([`app::ABI_X86_64`] or
    /// [`app::ABI_I386`]); the caller builds the new image and sets its
    /// registers before replying (`execve(2)`). Errors: as `app_fork`.
    AppExec = 34,
    /// `app_fpu(pid, buf, 512) -> 0`: the FPU/SSE registers of an
    /// application stopped in a Linux system call or a fault, as the
    /// 512-byte `fxsave` image (Intel SDM Vol. 1 Table 10-2), into `buf`
    /// (for a signal frame's `fpstate`). Errors: as `app_regs`.
    AppFpu = 35,
    /// `app_set_fpu(pid, buf, 512) -> 0`: replaces them with the `fxsave`
    /// image in `buf` (MXCSR bits the CPU lacks are cleared), what the
    /// application resumes with (`sigreturn`). Errors: as `app_regs`.
    AppSetFpu = 36,
    /// `wait_any(status: *mut u64, timeout_ns) -> Pid`: block until any child
    /// of the caller (a SiON process it spawned) ends, or one that ended has
    /// not been waited for yet, and return its pid, with its [`WaitStatus`]
    /// word written to `*status` (Linux's `wait4(-1, &status, 0, NULL)`).
    /// Waits at most `timeout_ns` ([`NO_TIMEOUT`]: for ever; 0: do not
    /// wait). Each ended child is returned once, by this call or by `wait`.
    /// Errors: [`Error::NotChild`] (the caller has no child: Linux's
    /// `ECHILD`), [`Error::TimedOut`], [`Error::BadAddress`].
    WaitAny = 37,
    /// `kill(pid) -> 0`: end the caller's child `pid` (a SiON process it
    /// spawned; applications end with `app_kill`) at once, as `SIGKILL`
    /// would: its IPC peers, network state and applications are released as
    /// at any end, and `wait`/`wait_any` return
    /// [`WaitStatus::Signaled`]`(`[`Signal::SIGKILL`]`)` for it.
    /// Errors: [`Error::NotChild`] (not a live child of the caller).
    Kill = 38,
}

/// Tag of the kernel's message that a socket armed with `tcp_notify` is readable.
pub const TAG_TCP_READABLE: u64 = 0x5443_5052; // "TCPR"

impl Syscall {
    /// Decodes a system-call number; `None` for numbers SiON does not define.
    pub fn from_number(n: u64) -> Option<Self> {
        use Syscall::*;
        Some(match n {
            0 => Exit,
            1 => Spawn,
            2 => Wait,
            3 => Send,
            4 => Call,
            5 => Receive,
            6 => Reply,
            7 => Yield,
            8 => Clock,
            9 => ConsoleWrite,
            10 => GetPid,
            11 => Register,
            12 => NetSend,
            13 => NetInfo,
            14 => TcpListen,
            15 => TcpAccept,
            16 => TcpConnect,
            17 => TcpSend,
            18 => TcpRecv,
            19 => TcpClose,
            20 => SysInfo,
            21 => AppCreate,
            22 => AppMap,
            23 => AppUnmap,
            24 => AppWrite,
            25 => AppRead,
            26 => AppStart,
            27 => AppSetTls,
            28 => AppKill,
            29 => TcpNotify,
            30 => AppRegs,
            31 => AppSetRegs,
            32 => AppInterrupt,
            33 => AppFork,
            34 => AppExec,
            35 => AppFpu,
            36 => AppSetFpu,
            37 => WaitAny,
            38 => Kill,
            _ => return None,
        })
    }
}

/// Errors of SiON system calls, returned as `-(code)` in `rax`.
#[repr(i64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// An argument is out of range (a length too large, sending to oneself).
    InvalidArgument = 1,
    /// A pointer and length do not lie in the caller's mapped user memory (or
    /// the memory is read-only where the kernel must write).
    BadAddress = 2,
    /// No live process has that id.
    NoSuchProcess = 3,
    /// No process image of that name is in the disk image.
    NotFound = 4,
    /// The node is out of physical memory.
    NoMemory = 5,
    /// The timeout passed before a message arrived.
    TimedOut = 6,
    /// The peer ended before the message was delivered or answered.
    PeerDied = 7,
    /// `wait` or `kill` on a process that is not a child of the caller, or
    /// `wait_any` by a process without children.
    NotChild = 8,
    /// A message longer than [`MAX_MESSAGE`].
    TooLarge = 9,
    /// The system-call number is not defined.
    UnknownSyscall = 10,
    /// The process image is not a loadable ELF64 x86_64 executable.
    BadImage = 11,
    /// `reply` to a process that is not waiting for this process's answer.
    NotWaiting = 12,
    /// The service number or port is taken.
    InUse = 13,
    /// The node has no network (no NIC, or no address yet).
    NetworkDown = 14,
    /// A queue is full; try again later.
    WouldBlock = 15,
    /// The connection was refused or reset.
    ConnectionRefused = 16,
    /// The connection is closed.
    ConnectionClosed = 17,
    /// No socket with that handle belongs to the caller.
    BadHandle = 18,
}

impl Error {
    const ALL: [Error; 18] = [
        Error::InvalidArgument,
        Error::BadAddress,
        Error::NoSuchProcess,
        Error::NotFound,
        Error::NoMemory,
        Error::TimedOut,
        Error::PeerDied,
        Error::NotChild,
        Error::TooLarge,
        Error::UnknownSyscall,
        Error::BadImage,
        Error::NotWaiting,
        Error::InUse,
        Error::NetworkDown,
        Error::WouldBlock,
        Error::ConnectionRefused,
        Error::ConnectionClosed,
        Error::BadHandle,
    ];

    /// The value the kernel puts in `rax` for this error.
    pub const fn to_result(self) -> i64 {
        -(self as i64)
    }

    /// Splits a raw `rax` result into a value or an error. A negative value that
    /// is no known code maps to [`Error::InvalidArgument`].
    pub fn from_result(raw: i64) -> Result<u64, Error> {
        if raw >= 0 {
            return Ok(raw as u64);
        }
        let code = raw.unsigned_abs();
        Err(Self::ALL
            .into_iter()
            .find(|e| *e as u64 == code)
            .unwrap_or(Error::InvalidArgument))
    }

    /// A short human description.
    pub const fn describe(self) -> &'static str {
        match self {
            Error::InvalidArgument => "invalid argument",
            Error::BadAddress => "bad address",
            Error::NoSuchProcess => "no such process",
            Error::NotFound => "no such process image",
            Error::NoMemory => "out of memory",
            Error::TimedOut => "timed out",
            Error::PeerDied => "peer died",
            Error::NotChild => "not a child",
            Error::TooLarge => "message too large",
            Error::UnknownSyscall => "unknown system call",
            Error::BadImage => "bad process image",
            Error::NotWaiting => "not waiting for a reply",
            Error::InUse => "already in use",
            Error::NetworkDown => "network down",
            Error::WouldBlock => "queue full, try again",
            Error::ConnectionRefused => "connection refused",
            Error::ConnectionClosed => "connection closed",
            Error::BadHandle => "bad socket handle",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.describe())
    }
}

/// What [`Syscall::Receive`] writes to its `info` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageInfo {
    /// The sender's process id.
    pub sender: Pid,
    /// The sender's tag (a message type chosen by the protocol in use).
    pub tag: u64,
    /// The full message length in bytes (may exceed the receive buffer).
    pub len: u64,
    /// Non-zero when the sender used `call` and waits for a `reply`.
    pub wants_reply: u64,
    /// The sender's node id for a message from the network; 0 for a local one.
    pub node: u64,
    /// The sender's IPv4 address (big-endian in the low 32 bits) for a message
    /// from the network; 0 for a local one.
    pub addr: u64,
    /// The sender's service number for a message from the network.
    pub service: u64,
}

const _: () = assert!(core::mem::size_of::<MessageInfo>() == 56);

impl MessageInfo {
    /// True for a notice the local kernel posted (sender 0, not from the
    /// network), such as [`TAG_TCP_READABLE`]: a network message can never
    /// pass for one.
    pub fn is_kernel_notice(&self) -> bool {
        self.sender == 0 && self.node == 0 && self.addr == 0
    }

    /// The in-memory layout the kernel writes (little-endian `u64` fields).
    pub fn to_bytes(&self) -> [u8; 56] {
        let mut out = [0u8; 56];
        let fields = [
            self.sender,
            self.tag,
            self.len,
            self.wants_reply,
            self.node,
            self.addr,
            self.service,
        ];
        for (i, v) in fields.into_iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// What [`Syscall::SysInfo`] writes: the node's state, as the Companion
/// Manager reports it to the group.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysInfo {
    /// Physical memory not in use, in bytes.
    pub free_bytes: u64,
    /// Usable physical memory, in bytes.
    pub total_bytes: u64,
    /// Nanoseconds since boot.
    pub uptime_ns: u64,
    /// Nanoseconds the CPUs spent halted in the idle loop since boot (summed
    /// over all CPUs).
    pub idle_ns: u64,
    /// Live processes.
    pub processes: u64,
    /// Time-stamp counter ticks per second.
    pub tsc_hz: u64,
    /// Processors the kernel runs on (1 on a one-CPU machine).
    pub cpus: u64,
    /// Of those, how many were halted with nothing to run when the call was
    /// made (the calling CPU never counts).
    pub idle_cpus: u64,
}

impl SysInfo {
    /// The in-memory layout the kernel writes.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        let fields = [
            self.free_bytes,
            self.total_bytes,
            self.uptime_ns,
            self.idle_ns,
            self.processes,
            self.tsc_hz,
            self.cpus,
            self.idle_cpus,
        ];
        for (i, v) in fields.into_iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// What [`Syscall::NetInfo`] writes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetInfo {
    /// The node id ([`net::node_id_from_mac`]); 0 without a NIC.
    pub node: u64,
    /// The MAC address in the low 48 bits; 0 without a NIC.
    pub mac: u64,
    /// The IPv4 address (big-endian in the low 32 bits); 0 until configured.
    pub ipv4: u64,
    /// The prefix length of the address.
    pub prefix: u64,
}

impl NetInfo {
    /// The in-memory layout the kernel writes.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, v) in [self.node, self.mac, self.ipv4, self.prefix]
            .into_iter()
            .enumerate()
        {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_numbers_round_trip() {
        for n in 0..=38 {
            let s = Syscall::from_number(n).expect("defined");
            assert_eq!(s as u64, n);
        }
        assert_eq!(Syscall::from_number(39), None);
        assert_eq!(Syscall::from_number(u64::MAX), None);
    }

    #[test]
    fn errors_round_trip_through_rax() {
        for e in Error::ALL {
            assert_eq!(Error::from_result(e.to_result()), Err(e));
        }
        assert_eq!(Error::from_result(0), Ok(0));
        assert_eq!(Error::from_result(65536), Ok(65536));
        assert_eq!(Error::from_result(-999), Err(Error::InvalidArgument));
    }
}
