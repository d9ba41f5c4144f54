//! Network IPC: messages to and from processes on other nodes, one UDP
//! datagram each, in the wire format of [`sion_abi::net`]. Malformed or
//! foreign datagrams are dropped and counted, never trusted.
//!
//! Processes are reached by service number ([`sion_abi::Syscall::Register`]).
//! Incoming messages wait in a bounded queue per service until the owner
//! receives them; the kernel's own service 0 answers pings with its counters.
//!
//! Outgoing broadcasts and unicasts take separate ways. smoltcp keeps a
//! datagram whose next hop has no known link-layer address at the head of its
//! socket's queue while it asks ARP (RFC 826), and retries for ever; one
//! datagram to a dead node would hold up every datagram behind it, the group's
//! broadcasts included. So broadcasts leave through the IPC socket, and each
//! unicast destination gets a [`Lane`] of its own: a lane whose neighbour does
//! not answer within [`NEIGHBOR_TIMEOUT_NS`] is emptied, and what it held is
//! counted in [`Pong::unsent_unresolved`]. smoltcp sends one ARP request per
//! second for the whole interface, so several stalled lanes take turns: only
//! the one stalled longest can time out, and the others' clocks start again
//! when it does.
#![forbid(unsafe_code)]

use super::NetStack;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use sion_abi::net::MAX_PAYLOAD;
use sion_abi::net::{self as wire, Header, Pong, WireError};
use sion_abi::{Error, MessageInfo, Pid};
use sion_kernel_core::queue::Queue;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

/// Messages queued per service before new ones are dropped.
const QUEUE_LIMIT: usize = 128;
/// Datagrams buffered in the UDP socket each way.
const SOCKET_PACKETS: usize = 128;
/// Source service of a process that has not registered one.
pub const NO_SERVICE: u32 = u32::MAX;
/// Unicast lanes: destinations with datagrams in flight at once.
const LANES: usize = 8;
/// Datagrams a lane holds for its destination.
const LANE_PACKETS: usize = 16;
/// How long a unicast may wait for its neighbour's ARP answer before it is
/// dropped: three requests one second apart, as Linux's default
/// `mcast_solicit` (ip-sysctl.rst), in ns.
pub const NEIGHBOR_TIMEOUT_NS: u64 = 3_000_000_000;

/// A UDP socket that carries unicasts to one destination at a time.
///
/// Lane sockets are bound to [`wire::IPC_PORT`] too, so datagrams leave from
/// the port peers answer to; incoming datagrams still reach the IPC socket,
/// because smoltcp gives a datagram to the first matching socket in the set
/// and the IPC socket is added before the lanes, none of which is ever removed.
struct Lane {
    socket: SocketHandle,
    /// The destination whose datagrams the lane holds; `None`: free.
    dest: Option<IpEndpoint>,
    /// Sizes of the datagrams in the socket, oldest first (smoltcp counts
    /// its queue in bytes).
    sizes: heapless::Deque<usize, LANE_PACKETS>,
    /// When the lane last got a destination or sent something (ns).
    progress_ns: u64,
}

impl Lane {
    /// Forgets the datagrams smoltcp has sent, given the bytes it still
    /// holds; true if any were sent.
    fn account(&mut self, queued_bytes: usize) -> bool {
        let before = self.sizes.len();
        while self.sizes.iter().sum::<usize>() > queued_bytes {
            self.sizes.pop_front();
        }
        self.sizes.len() < before
    }
}

/// A message from the network waiting for its receiver.
pub struct Inbound {
    /// What `receive` reports.
    pub info: MessageInfo,
    /// The payload, held in place: it is queued on the receive path, in
    /// interrupt context, where the kernel does not allocate.
    pub payload: heapless::Vec<u8, MAX_PAYLOAD>,
}

fn udp_socket(packets: usize, rx_packets: usize) -> udp::Socket<'static> {
    let buffer =
        |n: usize| udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; n], vec![0u8; n * 1536]);
    let mut socket = udp::Socket::new(buffer(rx_packets), buffer(packets));
    socket
        .bind(wire::IPC_PORT)
        .expect("binding the IPC port of a fresh stack");
    socket
}

/// A registered service: its owner and the messages waiting for it (boxed
/// when registered, by a system call, so queuing allocates nothing).
struct Service {
    owner: Pid,
    queue: Queue<Inbound, QUEUE_LIMIT>,
}

/// Services, queues and counters.
pub struct NetIpc {
    socket: SocketHandle,
    lanes: [Lane; LANES],
    services: BTreeMap<u32, Box<Service>>,
    /// Counters reported in pongs.
    pub stats: Pong,
    /// The cluster this node belongs to.
    pub cluster: u32,
}

impl NetIpc {
    /// Opens the IPC datagram socket on [`wire::IPC_PORT`], then the lanes.
    pub fn new(sockets: &mut SocketSet<'static>) -> NetIpc {
        let socket = sockets.add(udp_socket(SOCKET_PACKETS, SOCKET_PACKETS));
        NetIpc {
            socket,
            lanes: core::array::from_fn(|_| Lane {
                socket: sockets.add(udp_socket(LANE_PACKETS, 1)),
                dest: None,
                sizes: heapless::Deque::new(),
                progress_ns: 0,
            }),
            services: BTreeMap::new(),
            stats: Pong::default(),
            cluster: wire::DEFAULT_CLUSTER,
        }
    }

    /// Gives service `service` to `pid`. Errors: [`Error::InUse`].
    pub fn register(&mut self, service: u32, pid: Pid) -> Result<(), Error> {
        if service == wire::KERNEL_SERVICE || service == NO_SERVICE {
            return Err(Error::InvalidArgument);
        }
        match self.services.get(&service) {
            Some(s) if s.owner != pid => Err(Error::InUse),
            Some(_) => Ok(()),
            None => {
                self.services.insert(
                    service,
                    Box::new(Service {
                        owner: pid,
                        queue: Queue::new(),
                    }),
                );
                Ok(())
            }
        }
    }

    /// The service `pid` registered (the first, if several).
    pub fn service_of(&self, pid: Pid) -> u32 {
        self.services
            .iter()
            .find(|(_, s)| s.owner == pid)
            .map_or(NO_SERVICE, |(n, _)| *n)
    }

    /// The next queued message for `pid`.
    pub fn take(&mut self, pid: Pid) -> Option<Inbound> {
        self.services
            .values_mut()
            .filter(|s| s.owner == pid)
            .find_map(|s| s.queue.pop_front())
    }

    /// Frees `pid`'s services (their queued messages are dropped).
    pub fn release(&mut self, pid: Pid) {
        self.services.retain(|_, s| s.owner != pid);
    }

    fn count(&mut self, e: WireError) {
        match e {
            WireError::Truncated => self.stats.dropped_truncated += 1,
            WireError::BadMagic => self.stats.dropped_magic += 1,
            WireError::BadVersion | WireError::BadLength => self.stats.dropped_version += 1,
            WireError::ForeignCluster => self.stats.dropped_cluster += 1,
        }
    }
}

/// Sends `payload` from `src_service` to `dst_service` on `dst_node` at
/// `ipv4` (all ones: broadcast). Errors: [`Error::TooLarge`],
/// [`Error::NetworkDown`] (no address yet), [`Error::WouldBlock`].
pub fn send(
    net: &mut NetStack,
    ipv4: [u8; 4],
    dst_node: u64,
    src_service: u32,
    dst_service: u32,
    tag: u64,
    payload: &[u8],
) -> Result<(), Error> {
    if payload.len() > wire::MAX_PAYLOAD {
        return Err(Error::TooLarge);
    }
    let (address, prefix) = net.addr.address().ok_or(Error::NetworkDown)?;
    let broadcast = ipv4 == [255; 4];
    // Link-local and most LANs: send broadcasts to the subnet broadcast address,
    // which every host on the link accepts.
    let dest = if broadcast {
        subnet_broadcast(address, prefix)
    } else {
        ipv4
    };
    let header = Header {
        cluster: net.ipc.cluster,
        broadcast,
        src_node: net.node_id,
        dst_node: if broadcast { wire::ALL_NODES } else { dst_node },
        src_service,
        dst_service,
        tag,
    };
    let mut datagram = vec![0u8; wire::HEADER_LEN + payload.len()];
    header
        .encode(payload, &mut datagram)
        .map_err(|_| Error::TooLarge)?;
    let endpoint = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::from(dest)), wire::IPC_PORT);
    if broadcast {
        let socket = net.sockets.get_mut::<udp::Socket>(net.ipc.socket);
        socket
            .send_slice(&datagram, endpoint)
            .map_err(|_| Error::WouldBlock)
    } else {
        send_unicast(net, endpoint, &datagram)
    }
}

/// Queues a unicast datagram on the lane of `to` (taking a free lane if it
/// has none). Errors: [`Error::WouldBlock`] when every lane is taken or the
/// lane is full.
fn send_unicast(net: &mut NetStack, to: IpEndpoint, datagram: &[u8]) -> Result<(), Error> {
    let ipc = &mut net.ipc;
    let lane = match ipc.lanes.iter().position(|l| l.dest == Some(to)) {
        Some(i) => &mut ipc.lanes[i],
        None => {
            let lane = ipc
                .lanes
                .iter_mut()
                .find(|l| l.dest.is_none())
                .ok_or(Error::WouldBlock)?;
            lane.dest = Some(to);
            lane.progress_ns = crate::time::now_ns();
            lane
        }
    };
    let socket = net.sockets.get_mut::<udp::Socket>(lane.socket);
    lane.account(socket.send_queue());
    if lane.sizes.is_full() {
        return Err(Error::WouldBlock);
    }
    socket
        .send_slice(datagram, to)
        .map_err(|_| Error::WouldBlock)?;
    // Cannot fail: checked for room above.
    let _ = lane.sizes.push_back(datagram.len());
    Ok(())
}

/// Frees lanes that have sent everything, and empties lanes whose neighbour
/// has not answered ARP for [`NEIGHBOR_TIMEOUT_NS`] (their datagrams are
/// counted in [`Pong::unsent_unresolved`]). Called on every poll.
pub fn maintain_lanes(net: &mut NetStack, now_ns: u64) {
    for lane in net.ipc.lanes.iter_mut().filter(|l| l.dest.is_some()) {
        let socket = net.sockets.get_mut::<udp::Socket>(lane.socket);
        if lane.account(socket.send_queue()) {
            lane.progress_ns = now_ns;
        }
        if lane.sizes.is_empty() {
            lane.dest = None;
        }
    }
    let stalled_longest = (0..LANES)
        .filter(|&i| net.ipc.lanes[i].dest.is_some())
        .min_by_key(|&i| net.ipc.lanes[i].progress_ns);
    let Some(i) = stalled_longest else { return };
    let lane = &mut net.ipc.lanes[i];
    if now_ns.saturating_sub(lane.progress_ns) < NEIGHBOR_TIMEOUT_NS {
        return;
    }
    // `close` empties both buffers; binding again makes the lane usable.
    let socket = net.sockets.get_mut::<udp::Socket>(lane.socket);
    socket.close();
    socket
        .bind(wire::IPC_PORT)
        .expect("binding a lane that was just closed");
    let dropped = lane.sizes.len();
    let dest = lane.dest.take();
    lane.sizes.clear();
    net.ipc.stats.unsent_unresolved += dropped as u64;
    // The other stalled lanes waited behind this one's ARP requests.
    for other in net.ipc.lanes.iter_mut().filter(|l| l.dest.is_some()) {
        other.progress_ns = now_ns;
    }
    if let Some(dest) = dest {
        log::warn!(
            "net: {} did not answer ARP within {} s: dropped {dropped} datagram(s) to it",
            dest.addr,
            NEIGHBOR_TIMEOUT_NS / 1_000_000_000
        );
    }
}

fn subnet_broadcast(address: [u8; 4], prefix: u8) -> [u8; 4] {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    (u32::from_be_bytes(address) | !mask).to_be_bytes()
}

/// Handles every datagram waiting on the IPC socket; returns how many.
pub fn process_incoming(net: &mut NetStack) -> usize {
    let mut handled = 0;
    let mut buf = [0u8; 1536];
    loop {
        let socket = net.sockets.get_mut::<udp::Socket>(net.ipc.socket);
        let Ok((n, meta)) = socket.recv_slice(&mut buf) else {
            break;
        };
        handled += 1;
        let IpAddress::Ipv4(from_ip) = meta.endpoint.addr;
        let (header, payload) = match Header::decode(&buf[..n], net.ipc.cluster) {
            Ok(ok) => ok,
            Err(e) => {
                net.ipc.count(e);
                continue;
            }
        };
        if header.dst_node != net.node_id && header.dst_node != wire::ALL_NODES {
            net.ipc.stats.dropped_undeliverable += 1;
            continue;
        }
        if header.tag == sion_abi::TAG_TCP_READABLE {
            // A kernel notice's tag: no process may be sent one from afar.
            net.ipc.stats.dropped_undeliverable += 1;
            continue;
        }
        net.ipc.stats.received += 1;
        if header.dst_service == wire::KERNEL_SERVICE {
            if header.tag == wire::TAG_PING {
                answer_ping(net, &header, payload, meta.endpoint);
            }
            continue;
        }
        let info = MessageInfo {
            sender: 0,
            tag: header.tag,
            len: payload.len() as u64,
            wants_reply: 0,
            node: header.src_node,
            addr: u64::from(u32::from_be_bytes(from_ip.octets())),
            service: u64::from(header.src_service),
        };
        // `Header::decode` bounds the payload by MAX_PAYLOAD; a full queue
        // or an unknown service is counted as undeliverable (in pongs).
        let delivered = match (
            net.ipc.services.get_mut(&header.dst_service),
            heapless::Vec::from_slice(payload),
        ) {
            (Some(s), Ok(payload)) => s
                .queue
                .push_back(Inbound { info, payload })
                .is_ok()
                .then_some(s.owner),
            _ => None,
        };
        match delivered {
            Some(owner) => crate::proc::notify_message(owner),
            None => net.ipc.stats.dropped_undeliverable += 1,
        }
    }
    handled
}

fn answer_ping(net: &mut NetStack, ping: &Header, payload: &[u8], endpoint: IpEndpoint) {
    net.ipc.stats.node = net.node_id;
    net.ipc.stats.uptime_ns = crate::time::now_ns();
    let mut body = Vec::with_capacity(Pong::LEN + payload.len());
    body.extend_from_slice(&net.ipc.stats.encode());
    body.extend_from_slice(&payload[..payload.len().min(wire::MAX_PAYLOAD - Pong::LEN)]);
    let header = Header {
        cluster: net.ipc.cluster,
        broadcast: false,
        src_node: net.node_id,
        dst_node: ping.src_node,
        src_service: wire::KERNEL_SERVICE,
        dst_service: ping.src_service,
        tag: wire::TAG_PONG,
    };
    let mut datagram = vec![0u8; wire::HEADER_LEN + body.len()];
    if header.encode(&body, &mut datagram).is_ok() {
        // Answer to the port the ping came from, so host tools need not bind 7420.
        let _ = send_unicast(net, endpoint, &datagram);
    }
}
