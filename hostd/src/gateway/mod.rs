//! `hostd gateway`: joins the SiON groups of two LANs (two broadcast
//! domains) over unicast UDP and TCP between two gateways, one in each LAN.
//!
//! Members reach each other at the addresses they announce: nodes send
//! their Companion Manager datagrams to an announced IP (always port 7420,
//! the kernel's network IPC), and `hostd submit` opens its job connection to
//! the chosen node's IP at port 7421. Link-local addresses do not route
//! between LANs, and two LANs may use the same ones. So the gateway *stands
//! in* for every member of the other LAN with an address of its own LAN:
//!
//! - **stand-ins**: a `/32` address per remote member, on the gateway's LAN
//!   interface, from a range nodes never choose (by default
//!   169.254.255.0/24, which RFC 3927 keeps from link-local hosts); the
//!   kernel answers ARP for it ([`standin`]). On each, the gateway receives
//!   the member's Companion Manager datagrams (UDP 7420) and job connections
//!   (TCP 7421).
//! - **datagrams**: what the LAN broadcasts (heard on sockets bound to the
//!   broadcast addresses, so a `hostd daemon` on the same machine keeps its
//!   own unicasts) and what it sends to a stand-in crosses to the peer
//!   gateway, which sends it on from the sender's stand-in in its own LAN:
//!   every member address inside is rewritten on the way ([`table`]: by id,
//!   never by the other LAN's address). With a cluster key the gateway opens
//!   each datagram, seals what it sends to the peer, and seals again what it
//!   sends into its LAN ([`DatagramAuth`]); without one it accepts datagrams
//!   from the peer's address only.
//! - **job connections**: a connection to a stand-in's port 7421 is relayed
//!   through the peer gateway to the member's port 7421, bytes unchanged
//!   ([`wire`]; with a key they are the job protocol's own ciphertext).
//! - **introductions**: groups that formed before the gateways ran send
//!   nothing across by themselves (SWIM probes only members it knows). So
//!   when a gateway hears its peer for the first time, or after a silence
//!   (the gateways say hello every [`HELLO_INTERVAL`]), it takes a census of
//!   its LAN: it broadcasts a `ViewRequest` for the empty id range `0..=0`
//!   from an address of its own (one more from the stand-in range), every
//!   member answers with its own entry alone, and each answer crosses as a
//!   `Join` of that member, which the other LAN's members answer with their
//!   views. One datagram per member each way, as at boot.
//!
//! Bad input (a malformed datagram from the LAN or the peer, an unknown
//! member or stand-in, a datagram from anyone but the peer) is dropped and
//! counted in [`Counters`]; the counts are printed when the gateway stops.
//!
//! [`DatagramAuth`]: sion_companion_mgr::auth::DatagramAuth

pub mod standin;
pub mod table;
pub mod wire;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, bind, setsockopt, socket, sockopt,
};
use sion_abi::net::JOB_PORT;
use sion_companion_mgr::auth::DatagramAuth;
use sion_companion_mgr::{Message, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

use crate::envelope::{self, IPC_PORT, Reject};
use crate::iface::{Interface, choose, list_interfaces};
use crate::transport::MAX_DATAGRAM;
pub use table::{AliasPool, Counters, DEFAULT_POOL, Drop, Emit, LanDest, Tables};
pub use wire::{GATEWAY_PORT, PeerMsg};

/// How long a relayed job connection may take to say where it goes, and to
/// reach the member.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket buffers of a relayed job connection, each way, in bytes (the
/// kernel doubles them): small, so that the relay holds little of an upload
/// and `hostd submit`, which times the node's answer from the end of its
/// upload, sees about when the node has the program, as on a direct
/// connection.
const RELAY_BUFFER: usize = 64 * 1024;

/// How often gateways say hello to each other.
pub const HELLO_INTERVAL: Duration = Duration::from_secs(5);

/// A peer unheard for this long is back when heard again: the LAN's
/// members are introduced again.
const SILENCE: Duration = Duration::from_secs(15);

/// `hostd gateway`'s options.
#[derive(Clone, Debug, clap::Args)]
pub struct GatewayArgs {
    /// The peer gateway in the other LAN, `ADDR[:PORT]` (UDP and TCP; port
    /// 7422 if left out).
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_endpoint)]
    pub peer: SocketAddrV4,
    /// Where this gateway listens for its peer, `ADDR[:PORT]`.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_endpoint, default_value = "0.0.0.0:7422")]
    pub listen: SocketAddrV4,
    /// Network interface of this gateway's LAN [default: the only interface
    /// that is up, not loopback, and has an IPv4 address].
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// The addresses members of the other LAN get in this one, inside the
    /// LAN's subnet and never chosen by its nodes.
    #[arg(long, value_name = "A.B.C.D/N", default_value = "169.254.255.0/24", value_parser = AliasPool::parse)]
    pub stand_ins: AliasPool,
}

/// Parses `ADDR[:PORT]` (port [`GATEWAY_PORT`] if left out).
///
/// # Errors
/// Not an IPv4 address with an optional port.
pub fn parse_endpoint(s: &str) -> Result<SocketAddrV4, String> {
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Ok(SocketAddrV4::new(ip, GATEWAY_PORT));
    }
    s.parse::<SocketAddrV4>().map_err(|_| {
        format!("`{s}` is not an IPv4 address with an optional port (10.0.0.2 or 10.0.0.2:7422)")
    })
}

/// Runs the gateway until SIGINT or SIGTERM; then gives the stand-in
/// addresses back and prints what it did.
///
/// # Errors
/// No usable interface, a stand-in range outside the LAN's subnet, sockets
/// that cannot be bound (another gateway, no root).
pub fn run(args: GatewayArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the gateway's runtime")?;
    rt.block_on(serve(args))
}

/// The running gateway, shared by its tasks.
struct Gateway {
    iface: Interface,
    /// The LAN's subnet broadcast address, where broadcasts into it go.
    lan_broadcast: Ipv4Addr,
    /// For [`envelope::unwrap`]: the interface's id.
    me: NodeId,
    peer: SocketAddrV4,
    peer_udp: UdpSocket,
    tables: Mutex<Tables>,
    /// Seals and opens with the cluster key; `None` for an open group.
    auth: Mutex<Option<DatagramAuth>>,
    /// Each stand-in's datagram socket, by member.
    sockets: Mutex<HashMap<NodeId, Arc<UdpSocket>>>,
    held: standin::Held,
    /// The gateway's own id and address in its LAN (its census).
    own: NodeId,
    own_udp: Arc<UdpSocket>,
    /// When the peer was last heard.
    peer_heard: Mutex<Option<tokio::time::Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn serve(args: GatewayArgs) -> Result<()> {
    let all = list_interfaces()?;
    let iface = choose(&all, args.iface.as_deref())?;
    let (ip, prefix) = iface.ipv4.context("the interface has no IPv4 address")?;
    let lan_broadcast = iface
        .broadcast()
        .context("the interface has no IPv4 address")?;
    let mut pool = args.stand_ins.clone();
    if !pool.inside(ip, prefix) {
        bail!(
            "the stand-in range {} is not inside {}'s subnet {ip}/{prefix}: nodes would not reach it (give --stand-ins)",
            pool.describe(),
            iface.name
        );
    }
    for a in interface_addresses(&iface.name)? {
        pool.reserve(a);
    }
    // The gateway's own id: the interface's MAC with bit 2 of its first
    // byte flipped, so a `hostd daemon` on this machine keeps its own.
    let own = {
        let mut mac = iface.node_id().to_mac();
        mac[0] ^= 0x04;
        NodeId::from_mac(mac)
    };
    let mut tables = Tables::new(pool.clone());
    tables.set_own(own);
    let held = standin::Held::new(&iface.name);
    let own_ip = tables
        .take_own_address(own)
        .context("the stand-in range has no free address")?;
    standin::run(&standin::add_argv(&iface.name, own_ip)).await?;
    held.push(own_ip);
    let own_udp = match lan_socket(SocketAddrV4::new(own_ip, IPC_PORT), &iface.name) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            held.release_all();
            return Err(e);
        }
    };
    let keys = crate::keys::current();
    let auth = keys
        .keys
        .clone()
        .map(|k| DatagramAuth::new(k, crate::session::random_seed()));
    let peer_udp = UdpSocket::bind(args.listen)
        .await
        .with_context(|| format!("binding UDP {} for the peer", args.listen))?;
    let peer_tcp = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding TCP {} for the peer", args.listen))?;
    let bcast_all = lan_socket(
        SocketAddrV4::new(Ipv4Addr::BROADCAST, IPC_PORT),
        &iface.name,
    )?;
    let bcast_subnet = lan_socket(SocketAddrV4::new(lan_broadcast, IPC_PORT), &iface.name)?;
    eprintln!(
        "hostd gateway: LAN {iface}, peer gateway {}, listening on {}; members of the other LAN stand in here as addresses of {}; {}",
        args.peer,
        args.listen,
        pool.describe(),
        keys.describe()
    );
    eprintln!("hostd gateway: this gateway is {own_ip} in its LAN (its census)");
    let gw = Arc::new(Gateway {
        me: iface.node_id(),
        held,
        iface,
        lan_broadcast,
        peer: args.peer,
        peer_udp,
        tables: Mutex::new(tables),
        auth: Mutex::new(auth),
        sockets: Mutex::default(),
        own,
        own_udp: own_udp.clone(),
        peer_heard: Mutex::new(None),
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(gw.clone().lan_rx(Arc::new(bcast_all), LanDest::Broadcast));
    tasks.spawn(
        gw.clone()
            .lan_rx(Arc::new(bcast_subnet), LanDest::Broadcast),
    );
    tasks.spawn(gw.clone().peer_rx());
    tasks.spawn(gw.clone().peer_accept(peer_tcp));
    tasks.spawn(gw.clone().census_rx(own_udp));
    tasks.spawn(gw.clone().hello());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let why = tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        done = tasks.join_next() => {
            eprintln!("hostd gateway: a task ended: {done:?}");
            "a task ended"
        }
    };
    tasks.abort_all();
    let counters = lock(&gw.tables).counters;
    let removed = gw.held.release_all();
    eprintln!("hostd gateway: stopping ({why}); {removed} stand-in addresses given back");
    eprintln!("hostd gateway: {counters}");
    if let Ok(json) = serde_json::to_string(&counters) {
        eprintln!("hostd gateway: counters {json}");
    }
    Ok(())
}

/// Every IPv4 address of interface `name`.
fn interface_addresses(name: &str) -> Result<Vec<Ipv4Addr>> {
    Ok(nix::ifaddrs::getifaddrs()
        .context("listing addresses (getifaddrs)")?
        .filter(|a| a.interface_name == name)
        .filter_map(|a| a.address.and_then(|s| s.as_sockaddr_in().map(|s| s.ip())))
        .collect())
}

/// A UDP socket bound to `addr` on the LAN's interface only
/// (`SO_BINDTODEVICE`), sharing the port with other programs
/// (`SO_REUSEADDR`: `hostd daemon` on the same machine), allowed to
/// broadcast.
fn lan_socket(addr: SocketAddrV4, device: &str) -> Result<UdpSocket> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .context("creating a UDP socket")?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).context("setting SO_REUSEADDR")?;
    setsockopt(&fd, sockopt::Broadcast, &true).context("setting SO_BROADCAST")?;
    setsockopt(&fd, sockopt::BindToDevice, &device.into())
        .with_context(|| format!("tying a socket to {device} (SO_BINDTODEVICE needs root)"))?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(addr)).with_context(|| format!("binding UDP {addr}"))?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd)).context("registering a UDP socket")
}

/// Shrinks an accepted relay connection's buffers to [`RELAY_BUFFER`] (a
/// failure only leaves the kernel's defaults).
fn small_buffers(conn: &TcpStream) {
    let _ = setsockopt(conn, sockopt::RcvBuf, &RELAY_BUFFER);
    let _ = setsockopt(conn, sockopt::SndBuf, &RELAY_BUFFER);
}

/// A TCP connection to `to` with [`RELAY_BUFFER`]-sized buffers.
async fn connect(to: SocketAddrV4) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.set_send_buffer_size(RELAY_BUFFER as u32)?;
    s.set_recv_buffer_size(RELAY_BUFFER as u32)?;
    s.connect(SocketAddr::V4(to)).await
}

impl Gateway {
    /// Opens a sealed payload (or passes an open group's through).
    fn open(&self, payload: &[u8]) -> Result<Vec<u8>, Drop> {
        match lock(&self.auth).as_mut() {
            None => Ok(payload.to_vec()),
            Some(a) => a
                .open(payload)
                .map(<[u8]>::to_vec)
                .map_err(|_| Drop::Unauthenticated),
        }
    }

    /// Seals `bytes` with the cluster key, if there is one.
    fn seal(&self, bytes: Vec<u8>) -> Vec<u8> {
        match lock(&self.auth).as_mut() {
            None => bytes,
            Some(a) => a.seal(&bytes),
        }
    }

    fn count(&self, why: Drop, from_peer: bool) {
        lock(&self.tables).counters.drop(why, from_peer);
    }

    /// Receives the LAN's datagrams on `sock` (a broadcast address or a
    /// stand-in) and passes them to the peer.
    async fn lan_rx(self: Arc<Self>, sock: Arc<UdpSocket>, dest: LanDest) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, from) = match sock.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("hostd gateway: receiving from the LAN: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let SocketAddr::V4(from) = from else { continue };
            match self.lan_datagram(&buf[..n], *from.ip(), dest) {
                Ok(bytes) => match self.peer_udp.send_to(&bytes, self.peer).await {
                    Ok(_) => lock(&self.tables).counters.to_peer += 1,
                    Err(_) => lock(&self.tables).counters.send_errors += 1,
                },
                Err(Some(why)) => self.count(why, false),
                Err(None) => {}
            }
        }
    }

    /// One datagram from the LAN as the bytes to send to the peer; `Err(None)`
    /// for a datagram that is not the Companion Manager's (a kernel ping).
    fn lan_datagram(
        &self,
        bytes: &[u8],
        source: Ipv4Addr,
        dest: LanDest,
    ) -> Result<Vec<u8>, Option<Drop>> {
        let (header, payload) = match envelope::unwrap(self.me, bytes) {
            Ok(r) => r,
            Err(Reject::Wire(_)) => return Err(Some(Drop::Malformed)),
            Err(_) => return Err(None),
        };
        let src = NodeId::from_u64(header.src_node);
        if lock(&self.tables).stand_in(src).is_some() {
            return Err(Some(Drop::Echo));
        }
        let plain = self.open(payload)?;
        let msg = Message::decode(&plain).map_err(|_| Drop::Malformed)?;
        let fwd = lock(&self.tables).from_lan(src, source, dest, msg)?;
        Ok(self.seal(wire::encode(&PeerMsg::Forward(fwd))))
    }

    /// Receives the peer's datagrams and sends them into the LAN.
    async fn peer_rx(self: Arc<Self>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, from) = match self.peer_udp.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("hostd gateway: receiving from the peer: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if from.ip() != std::net::IpAddr::V4(*self.peer.ip()) {
                self.count(Drop::NotFromPeer, true);
                continue;
            }
            let msg = match self
                .open(&buf[..n])
                .and_then(|p| wire::decode(&p).map_err(|_| Drop::Malformed))
            {
                Ok(m) => m,
                Err(why) => {
                    self.count(why, true);
                    continue;
                }
            };
            let now = tokio::time::Instant::now();
            let back = lock(&self.peer_heard)
                .replace(now)
                .is_none_or(|t| now.duration_since(t) > SILENCE);
            if back {
                eprintln!(
                    "hostd gateway: the peer gateway {} is there; introducing this LAN's members to its LAN",
                    self.peer
                );
                self.census().await;
            }
            let PeerMsg::Forward(fwd) = msg else { continue };
            let emit = match lock(&self.tables).from_peer(&fwd) {
                Ok(e) => e,
                Err(why) => {
                    self.count(why, true);
                    continue;
                }
            };
            self.emit(emit).await;
        }
    }

    /// Says hello to the peer every [`HELLO_INTERVAL`].
    async fn hello(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HELLO_INTERVAL);
        loop {
            tick.tick().await;
            let bytes = self.seal(wire::encode(&PeerMsg::Hello));
            if self.peer_udp.send_to(&bytes, self.peer).await.is_err() {
                lock(&self.tables).counters.send_errors += 1;
            }
        }
    }

    /// Asks every member of the LAN for its own entry (a `ViewRequest` for
    /// ids `0..=0`, broadcast from the gateway's own address).
    async fn census(&self) {
        let req = Message::ViewRequest {
            from: self.own,
            lo: 0,
            hi: 0,
        };
        let Ok(bytes) = req.encode() else { return };
        let sealed = self.seal(bytes);
        let Ok(datagram) = envelope::wrap(self.own, true, &sealed) else {
            return;
        };
        let to = SocketAddrV4::new(self.lan_broadcast, IPC_PORT);
        if self.own_udp.send_to(&datagram, to).await.is_err() {
            lock(&self.tables).counters.send_errors += 1;
        }
    }

    /// Receives the census answers at the gateway's own address and sends
    /// each member's entry to the peer as that member's join.
    async fn census_rx(self: Arc<Self>, sock: Arc<UdpSocket>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let Ok((n, _)) = sock.recv_from(&mut buf).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let msg = match envelope::unwrap(self.me, &buf[..n]) {
                Ok((_, payload)) => self
                    .open(payload)
                    .and_then(|p| Message::decode(&p).map_err(|_| Drop::Malformed)),
                Err(Reject::Wire(_)) => Err(Drop::Malformed),
                Err(_) => continue,
            };
            let msg = match msg {
                Ok(m) => m,
                Err(why) => {
                    self.count(why, false);
                    continue;
                }
            };
            let fwds = lock(&self.tables).census_reply(&msg);
            for fwd in fwds {
                let bytes = self.seal(wire::encode(&PeerMsg::Forward(fwd)));
                match self.peer_udp.send_to(&bytes, self.peer).await {
                    Ok(_) => lock(&self.tables).counters.to_peer += 1,
                    Err(_) => lock(&self.tables).counters.send_errors += 1,
                }
            }
        }
    }

    /// Sets up the new stand-ins of `e`, then sends its message into the LAN
    /// from the sender's stand-in.
    async fn emit(self: &Arc<Self>, e: Emit) {
        for (id, ip) in &e.new_stand_ins {
            if let Err(err) = self.clone().stand_in(*id, *ip).await {
                eprintln!("hostd gateway: cannot stand in for {id} as {ip}: {err:#}");
                lock(&self.tables).forget(*id);
                self.count(Drop::PoolExhausted, true);
                return;
            }
        }
        let Ok(bytes) = e.message.encode() else {
            self.count(Drop::Malformed, true);
            return;
        };
        let sealed = self.seal(bytes);
        let Ok(datagram) = envelope::wrap(e.src, e.to.is_none(), &sealed) else {
            self.count(Drop::Malformed, true);
            return;
        };
        let sock = lock(&self.sockets).get(&e.src).cloned();
        let Some(sock) = sock else {
            self.count(Drop::UnknownMember(e.src), true);
            return;
        };
        let to = match e.to {
            Some(a) => SocketAddrV4::new(Ipv4Addr::from(a.ip), a.port),
            None => SocketAddrV4::new(self.lan_broadcast, IPC_PORT),
        };
        match sock.send_to(&datagram, to).await {
            Ok(_) => lock(&self.tables).counters.from_peer += 1,
            Err(_) => lock(&self.tables).counters.send_errors += 1,
        }
    }

    /// Takes `ip` on the LAN's interface for member `id` and serves it:
    /// datagrams on UDP 7420, job connections on TCP 7421.
    async fn stand_in(self: Arc<Self>, id: NodeId, ip: Ipv4Addr) -> Result<()> {
        standin::run(&standin::add_argv(&self.iface.name, ip)).await?;
        self.held.push(ip);
        let udp = Arc::new(lan_socket(
            SocketAddrV4::new(ip, IPC_PORT),
            &self.iface.name,
        )?);
        let tcp = TcpSocket::new_v4().context("creating a TCP socket")?;
        tcp.set_reuseaddr(true).context("setting SO_REUSEADDR")?;
        tcp.bind(SocketAddr::V4(SocketAddrV4::new(ip, JOB_PORT)))
            .with_context(|| format!("binding TCP {ip}:{JOB_PORT}"))?;
        let listener = tcp.listen(64).context("listening for job connections")?;
        lock(&self.sockets).insert(id, udp.clone());
        tokio::spawn(self.clone().lan_rx(udp, LanDest::StandIn(ip)));
        tokio::spawn(self.clone().stand_in_accept(listener, id));
        eprintln!("hostd gateway: member {id} of the other LAN stands in here as {ip}");
        Ok(())
    }

    /// Relays job connections to member `id`'s stand-in through the peer.
    async fn stand_in_accept(self: Arc<Self>, listener: TcpListener, id: NodeId) {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let gw = self.clone();
            tokio::spawn(async move {
                if let Err(e) = gw.relay_out(conn, id).await {
                    lock(&gw.tables).counters.connections_failed += 1;
                    eprintln!("hostd gateway: job connection to {id}: {e:#}");
                }
            });
        }
    }

    async fn relay_out(&self, mut conn: TcpStream, id: NodeId) -> Result<()> {
        small_buffers(&conn);
        let mut peer = tokio::time::timeout(CONNECT_TIMEOUT, connect(self.peer))
            .await
            .context("the peer gateway did not answer in 10 s")?
            .with_context(|| format!("connecting to the peer gateway {}", self.peer))?;
        peer.write_all(&wire::tcp_hello(id)).await?;
        self.splice(&mut conn, &mut peer).await;
        Ok(())
    }

    /// Copies both ways between a job connection's submitter side and its
    /// node side until both end, counting the connection and its bytes.
    async fn splice(&self, submitter_side: &mut TcpStream, node_side: &mut TcpStream) {
        lock(&self.tables).counters.connections += 1;
        let (to, back) = tokio::io::copy_bidirectional(submitter_side, node_side)
            .await
            .unwrap_or((0, 0));
        let mut t = lock(&self.tables);
        t.counters.bytes_to_node += to;
        t.counters.bytes_from_node += back;
    }

    /// Accepts the peer's relayed job connections.
    async fn peer_accept(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((conn, from)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if from.ip() != std::net::IpAddr::V4(*self.peer.ip()) {
                self.count(Drop::NotFromPeer, true);
                continue;
            }
            let gw = self.clone();
            tokio::spawn(async move {
                if let Err(e) = gw.relay_in(conn).await {
                    lock(&gw.tables).counters.connections_failed += 1;
                    eprintln!("hostd gateway: relayed job connection: {e:#}");
                }
            });
        }
    }

    async fn relay_in(&self, mut conn: TcpStream) -> Result<()> {
        small_buffers(&conn);
        let mut hello = [0u8; wire::TCP_HELLO_LEN];
        tokio::time::timeout(CONNECT_TIMEOUT, conn.read_exact(&mut hello))
            .await
            .context("the peer said nothing in 10 s")??;
        let id = wire::parse_tcp_hello(&hello)?;
        let addr = lock(&self.tables)
            .local(id)
            .with_context(|| format!("no member {id} in this LAN"))?;
        let target = SocketAddrV4::new(Ipv4Addr::from(addr.ip), JOB_PORT);
        let mut node = tokio::time::timeout(CONNECT_TIMEOUT, connect(target))
            .await
            .with_context(|| format!("{target} did not answer in 10 s"))?
            .with_context(|| format!("connecting to {target}"))?;
        self.splice(&mut conn, &mut node).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_the_gateway_port_unless_given() {
        assert_eq!(
            parse_endpoint("10.0.0.2"),
            Ok(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), GATEWAY_PORT))
        );
        assert_eq!(
            parse_endpoint("10.0.0.2:9000"),
            Ok(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 9000))
        );
        assert!(parse_endpoint("gateway.example").is_err());
        assert!(parse_endpoint("10.0.0.2:99999").is_err());
    }
}
