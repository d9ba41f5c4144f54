//! Networking: the NIC, smoltcp as the TCP/IP stack, address self-configuration,
//! network IPC over UDP, and TCP streams for processes.
//!
//! The stack is polled from the NIC's interrupt, from every timer tick (so
//! timers inside smoltcp and the address state machine advance even when the
//! link is quiet), and after each network system call.
#![forbid(unsafe_code)]

pub mod addr;
pub mod device;
pub mod ipc;
pub mod tcp;

use crate::proc::{self, Block, State};
use addr::AddrConfig;
use alloc::boxed::Box;
use alloc::vec;
use device::{Nic, NicDevice};
use sion_abi::Error;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress};
use spin::Mutex;

/// Everything the network needs, behind one lock.
pub struct NetStack {
    /// The NIC as a smoltcp device.
    pub device: NicDevice,
    /// The IP interface.
    pub iface: Interface,
    /// All sockets: DHCP, the IPC datagram socket, TCP.
    pub sockets: SocketSet<'static>,
    /// Address self-configuration.
    pub addr: AddrConfig,
    /// Network IPC state: services, queues, counters.
    pub ipc: ipc::NetIpc,
    /// TCP sockets of processes.
    pub tcp: tcp::TcpTable,
    /// This node's id (from its MAC).
    pub node_id: u64,
    /// The NIC's MAC address.
    pub mac: [u8; 6],
}

static NET: Mutex<Option<NetStack>> = Mutex::new(None);
/// Received frames handled in one pass of [`poll`] before the rest wait for
/// the next (a flood cannot keep the CPU in the network stack).
const MAX_FRAMES_PER_POLL: usize = 256;
/// The interrupt line of the NIC (0–15), once known.
static NIC_IRQ: Mutex<Option<u8>> = Mutex::new(None);

/// The smoltcp timestamp for now.
fn now() -> Instant {
    Instant::from_micros((crate::time::now_ns() / 1000) as i64)
}

/// Brings up the stack on `nic` (probed by the caller; its interrupt line `irq`,
/// 16 or more for none) and starts address configuration. A node without a
/// NIC (`None`) runs on without a network (logged).
pub fn init(nic: Option<(Box<dyn Nic>, u8)>) {
    let Some((nic, irq)) = nic else {
        log::warn!("net: no NIC found; this node runs without a network");
        return;
    };
    let mac = nic.mac();
    let node_id = sion_abi::net::node_id_from_mac(mac);
    let mut device = NicDevice::new(nic);
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    config.random_seed = node_id ^ crate::arch::rdtsc();
    let iface = Interface::new(config, &mut device, now());
    let mut sockets = SocketSet::new(vec![]);
    let addr = AddrConfig::start(&mut sockets, mac, crate::time::now_ns());
    let ipc = ipc::NetIpc::new(&mut sockets);
    log::info!(
        "net: NIC {} (node {node_id:012x}), IRQ {irq}; configuring an address",
        EthernetAddress(mac)
    );
    if irq < 16 {
        *NIC_IRQ.lock() = Some(irq);
        crate::arch::enable_pci_line(irq);
        // An interrupt the card raised before its line was enabled is
        // cleared, so the next one is a new edge on the line: an I/O APIC
        // entry that was masked and edge-triggered then does not see a line
        // that is already high (QEMU's does not), and the card would wait
        // for an acknowledgement that never comes.
        device.nic.ack_interrupt();
    }
    *NET.lock() = Some(NetStack {
        device,
        iface,
        sockets,
        addr,
        ipc,
        tcp: tcp::TcpTable::default(),
        node_id,
        mac,
    });
}

/// The NIC's interrupt line, if the NIC uses one.
pub fn irq() -> Option<u8> {
    *NIC_IRQ.lock()
}

/// Runs `f` on the stack; [`Error::NetworkDown`] without a NIC.
pub fn with<R>(f: impl FnOnce(&mut NetStack) -> Result<R, Error>) -> Result<R, Error> {
    let mut guard = NET.try_lock().ok_or(Error::WouldBlock)?;
    let net = guard.as_mut().ok_or(Error::NetworkDown)?;
    f(net)
}

/// Polls the stack: moves frames, advances address configuration, handles
/// IPC datagrams, and wakes processes blocked on the network. Called from the
/// NIC interrupt, the timer tick and network system calls.
pub fn poll() {
    // From an interrupt that arrived in the idle loop the lock is free; a
    // network system call in progress polls by itself, so a busy lock is fine.
    let Some(mut guard) = NET.try_lock() else {
        return;
    };
    let Some(net) = guard.as_mut() else { return };
    for _ in 0..8 {
        // Frames one at a time, each followed by a look at the IPC socket,
        // so a burst of datagrams cannot overflow its receive buffer before
        // they are handled (and counted); at most MAX_FRAMES_PER_POLL frames.
        let mut changed = smoltcp::iface::PollResult::None;
        for _ in 0..MAX_FRAMES_PER_POLL {
            let r = net
                .iface
                .poll_ingress_single(now(), &mut net.device, &mut net.sockets);
            if r == smoltcp::iface::PollIngressSingleResult::None {
                break;
            }
            changed = smoltcp::iface::PollResult::SocketStateChanged;
            ipc::process_incoming(net);
        }
        if net
            .iface
            .poll_egress(now(), &mut net.device, &mut net.sockets)
            == smoltcp::iface::PollResult::SocketStateChanged
        {
            changed = smoltcp::iface::PollResult::SocketStateChanged;
        }
        let now_ns = crate::time::now_ns();
        net.addr
            .advance(&mut net.iface, &mut net.sockets, &mut net.device, now_ns);
        let handled = ipc::process_incoming(net);
        ipc::maintain_lanes(net, now_ns);
        net.tcp.purge(&mut net.sockets);
        if changed == smoltcp::iface::PollResult::None && handled == 0 {
            break;
        }
    }
    let readable = net.tcp.take_readable(&net.sockets);
    drop(guard);
    wake_network_waiters();
    notify_readable(readable);
}

/// Interrupts from the NIC so far.
static INTERRUPTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The NIC's interrupt: acknowledge it and poll. The 1st, 10th, 100th, …
/// are logged with the CPU they came to (tests check that device
/// interrupts keep arriving).
pub fn on_interrupt() {
    let n = INTERRUPTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1;
    if n == 10u64.pow(n.ilog10()) {
        log::info!(
            "net: NIC interrupt {n}, on cpu {}",
            crate::arch::percpu::index()
        );
    }
    if let Some(mut guard) = NET.try_lock()
        && let Some(net) = guard.as_mut()
    {
        net.device.nic.ack_interrupt();
    }
    poll();
}

/// Posts the readable notices of sockets armed with `tcp_notify`.
fn notify_readable(ready: tcp::Readable) {
    if ready.is_empty() {
        return;
    }
    let Some(mut t) = proc::try_table() else {
        return;
    };
    for (owner, handle) in ready {
        let info = sion_abi::MessageInfo {
            sender: 0,
            tag: sion_abi::TAG_TCP_READABLE,
            len: 8,
            ..Default::default()
        };
        // A full queue is counted and logged by `post_notice`; the socket
        // stays readable and the owner finds it on its next call.
        let _ = proc::post_notice(
            &mut t,
            owner,
            proc::Notice::new(info, &handle.to_le_bytes()),
        );
    }
}

/// Wakes every process blocked in a network call so it can check again.
fn wake_network_waiters() {
    let Some(mut t) = proc::try_table() else {
        return;
    };
    // Interrupt context: no allocation, so waiters are woken in fixed-size
    // batches (a woken process is no longer blocked).
    loop {
        let waiting: heapless::Vec<sion_abi::Pid, 16> = t
            .procs
            .values()
            .filter(|p| p.state == State::Blocked(Block::Network))
            .map(|p| p.pid)
            .take(16)
            .collect();
        for &pid in &waiting {
            t.wake(pid, proc::WAKE_RETRY);
        }
        if !waiting.is_full() {
            break;
        }
    }
}

/// Blocks the calling process until the next network event (or `deadline_ns`).
/// Returns `Err(TimedOut)` if the deadline passed.
pub fn wait_for_event(deadline_ns: Option<u64>) -> Result<(), Error> {
    {
        let mut t = proc::table();
        let p = t.current();
        p.state = State::Blocked(Block::Network);
        p.deadline = deadline_ns;
    }
    match proc::scheduler::block() {
        v if v == proc::WAKE_RETRY => Ok(()),
        v => Error::from_result(v).map(|_| ()),
    }
}

/// Frees everything a process held in the network: services and sockets.
pub fn release(pid: sion_abi::Pid) {
    if let Some(mut guard) = NET.try_lock()
        && let Some(net) = guard.as_mut()
    {
        net.ipc.release(pid);
        net.tcp.release(pid, &mut net.sockets);
    }
}
