//! Datagram transports under a [`Session`](crate::session::Session): the real
//! UDP socket on port 7420, and an in-memory LAN for tests.
//!
//! A transport moves whole SiON network IPC datagrams (already wrapped, see
//! [`envelope`](crate::envelope)) between IPv4 endpoints; it knows nothing of
//! the Companion Manager. Both methods take `&self` so that one transport can be
//! shared between a receiving thread and a sending one (the daemon does that).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, bind, setsockopt, socket, sockopt,
};

use crate::envelope::IPC_PORT;
use crate::iface::Interface;

/// Largest datagram read: an Ethernet frame's UDP payload and some slack.
pub const MAX_DATAGRAM: usize = 2048;

/// A way to send and receive SiON datagrams.
pub trait Transport: Send + Sync {
    /// Sends `datagram` to `to` (a unicast address, or the subnet broadcast
    /// address).
    ///
    /// # Errors
    /// The socket's send error (e.g. no route, network down).
    fn send(&self, to: SocketAddrV4, datagram: &[u8]) -> io::Result<()>;

    /// Waits up to `timeout` for one datagram; returns its source and bytes, or
    /// `None` when none came in time. A zero `timeout` only checks.
    ///
    /// # Errors
    /// The socket's receive error.
    fn recv(&self, timeout: Duration) -> io::Result<Option<(SocketAddrV4, Vec<u8>)>>;
}

/// The real transport: one UDP socket on `0.0.0.0:7420` tied to one interface.
///
/// The socket is bound to the wildcard address so that it receives the nodes'
/// subnet broadcasts as well as unicasts, with `SO_REUSEADDR` (a restarted
/// daemon rebinds at once) and `SO_BROADCAST`. It is then tied to the chosen
/// interface with `SO_BINDTODEVICE` (needs `CAP_NET_RAW`: root, or root of the
/// user namespace `qemu-net` creates), so only that LAN's datagrams come in and
/// broadcasts leave through it. Without the capability `hostd` carries on
/// unbound and instead drops datagrams from outside the interface's subnet
/// ([`UdpTransport::bound_to_device`] tells which).
pub struct UdpTransport {
    socket: UdpSocket,
    bound_to_device: bool,
    timeout: Mutex<Option<Duration>>,
}

impl UdpTransport {
    /// Opens the socket for `iface` on `port` (normally [`IPC_PORT`]).
    ///
    /// # Errors
    /// Socket creation or binding failing (e.g. the port is taken by a program
    /// without `SO_REUSEADDR`).
    pub fn open(iface: &Interface, port: u16) -> Result<UdpTransport> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .context("creating the UDP socket")?;
        setsockopt(&fd, sockopt::ReuseAddr, &true).context("setting SO_REUSEADDR")?;
        setsockopt(&fd, sockopt::Broadcast, &true).context("setting SO_BROADCAST")?;
        let bound_to_device =
            setsockopt(&fd, sockopt::BindToDevice, &iface.name.clone().into()).is_ok();
        let addr = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        bind(fd.as_raw_fd(), &addr).with_context(|| format!("binding UDP 0.0.0.0:{port}"))?;
        Ok(UdpTransport {
            socket: UdpSocket::from(fd),
            bound_to_device,
            timeout: Mutex::new(None),
        })
    }

    /// True if the socket is tied to its interface with `SO_BINDTODEVICE`.
    pub fn bound_to_device(&self) -> bool {
        self.bound_to_device
    }
}

impl Transport for UdpTransport {
    fn send(&self, to: SocketAddrV4, datagram: &[u8]) -> io::Result<()> {
        self.socket.send_to(datagram, to).map(drop)
    }

    fn recv(&self, timeout: Duration) -> io::Result<Option<(SocketAddrV4, Vec<u8>)>> {
        // A zero read timeout means "block forever" to the socket: use 1 ms.
        let timeout = timeout.max(Duration::from_millis(1));
        {
            let mut current = self.timeout.lock().unwrap_or_else(|e| e.into_inner());
            if *current != Some(timeout) {
                self.socket.set_read_timeout(Some(timeout))?;
                *current = Some(timeout);
            }
        }
        let mut buf = vec![0u8; MAX_DATAGRAM];
        match self.socket.recv_from(&mut buf) {
            Ok((n, SocketAddr::V4(from))) => {
                buf.truncate(n);
                Ok(Some((from, buf)))
            }
            Ok((_, SocketAddr::V6(_))) => Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// An in-memory broadcast LAN for tests: every [`MemPort`] has an IPv4 address
/// (port [`IPC_PORT`]); a datagram to the LAN's broadcast address reaches every
/// port, the sender's own included (as Linux loops broadcasts back to a socket
/// bound to the wildcard address); a unicast reaches the port with that address.
/// Loss can be switched on per port to test liveness.
#[derive(Clone)]
pub struct MemLan {
    inner: Arc<LanInner>,
}

struct LanInner {
    broadcast: Ipv4Addr,
    ports: Mutex<HashMap<Ipv4Addr, Arc<PortQueue>>>,
}

struct PortQueue {
    queue: Mutex<VecDeque<(SocketAddrV4, Vec<u8>)>>,
    ready: Condvar,
    /// When set, datagrams to and from this port are dropped.
    cut: Mutex<bool>,
}

/// One endpoint of a [`MemLan`].
pub struct MemPort {
    addr: SocketAddrV4,
    lan: MemLan,
    queue: Arc<PortQueue>,
}

impl MemLan {
    /// An empty LAN whose broadcast address is `broadcast`.
    pub fn new(broadcast: Ipv4Addr) -> MemLan {
        MemLan {
            inner: Arc::new(LanInner {
                broadcast,
                ports: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Attaches an endpoint with address `ip`:7420 (replacing any with that
    /// address).
    pub fn attach(&self, ip: Ipv4Addr) -> MemPort {
        let queue = Arc::new(PortQueue {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            cut: Mutex::new(false),
        });
        self.ports().insert(ip, queue.clone());
        MemPort {
            addr: SocketAddrV4::new(ip, IPC_PORT),
            lan: self.clone(),
            queue,
        }
    }

    /// Cuts (`true`) or restores the link of the port with address `ip`: a cut
    /// port neither sends nor receives.
    pub fn set_cut(&self, ip: Ipv4Addr, cut: bool) {
        if let Some(q) = self.ports().get(&ip) {
            *q.cut.lock().unwrap_or_else(|e| e.into_inner()) = cut;
        }
    }

    fn ports(&self) -> std::sync::MutexGuard<'_, HashMap<Ipv4Addr, Arc<PortQueue>>> {
        self.inner.ports.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PortQueue {
    fn is_cut(&self) -> bool {
        *self.cut.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, from: SocketAddrV4, datagram: &[u8]) {
        if self.is_cut() {
            return;
        }
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((from, datagram.to_vec()));
        self.ready.notify_all();
    }
}

impl MemPort {
    /// This endpoint's address.
    pub fn addr(&self) -> SocketAddrV4 {
        self.addr
    }
}

impl Transport for MemPort {
    fn send(&self, to: SocketAddrV4, datagram: &[u8]) -> io::Result<()> {
        if self.queue.is_cut() {
            return Ok(());
        }
        let targets: Vec<Arc<PortQueue>> = {
            let ports = self.lan.ports();
            if *to.ip() == self.lan.inner.broadcast {
                ports.values().cloned().collect()
            } else if to.port() == IPC_PORT {
                ports.get(to.ip()).cloned().into_iter().collect()
            } else {
                Vec::new()
            }
        };
        for t in targets {
            t.push(self.addr, datagram);
        }
        Ok(())
    }

    fn recv(&self, timeout: Duration) -> io::Result<Option<(SocketAddrV4, Vec<u8>)>> {
        let deadline = Instant::now() + timeout;
        let mut q = self.queue.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(d) = q.pop_front() {
                return Ok(Some(d));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            q = self
                .queue
                .ready
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_lan_routes_broadcast_and_unicast() {
        let lan = MemLan::new(Ipv4Addr::new(10, 0, 0, 255));
        let a = lan.attach(Ipv4Addr::new(10, 0, 0, 1));
        let b = lan.attach(Ipv4Addr::new(10, 0, 0, 2));
        let c = lan.attach(Ipv4Addr::new(10, 0, 0, 3));
        let bcast = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 255), IPC_PORT);
        a.send(bcast, b"hello").unwrap();
        for p in [&a, &b, &c] {
            let (from, d) = p.recv(Duration::ZERO).unwrap().unwrap();
            assert_eq!((from, d.as_slice()), (a.addr(), &b"hello"[..]));
        }
        b.send(c.addr(), b"uni").unwrap();
        assert_eq!(a.recv(Duration::ZERO).unwrap(), None);
        assert_eq!(c.recv(Duration::ZERO).unwrap().unwrap().1, b"uni");
        // Another port number goes nowhere.
        b.send(SocketAddrV4::new(*c.addr().ip(), 9), b"x").unwrap();
        assert_eq!(c.recv(Duration::ZERO).unwrap(), None);
        lan.set_cut(*c.addr().ip(), true);
        a.send(bcast, b"lost").unwrap();
        assert_eq!(c.recv(Duration::from_millis(5)).unwrap(), None);
        assert!(b.recv(Duration::ZERO).unwrap().is_some());
    }

    #[test]
    fn memory_recv_waits_for_a_sender() {
        let lan = MemLan::new(Ipv4Addr::new(10, 0, 0, 255));
        let a = lan.attach(Ipv4Addr::new(10, 0, 0, 1));
        let b = lan.attach(Ipv4Addr::new(10, 0, 0, 2));
        let to = a.addr();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            b.send(to, b"late").unwrap();
        });
        let got = a.recv(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(got.1, b"late");
        t.join().unwrap();
    }

    #[test]
    fn udp_transport_on_loopback() {
        // Uses a high ephemeral-looking port, not 7420, so that a running hostd
        // is not disturbed; loopback always exists.
        let lo = Interface {
            name: "lo".into(),
            up: true,
            loopback: true,
            ipv4: Some((Ipv4Addr::LOCALHOST, 8)),
            mac: None,
        };
        let port = 40000 + (std::process::id() % 20000) as u16;
        let Ok(t) = UdpTransport::open(&lo, port) else {
            return; // no loopback in this sandbox
        };
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"ping", ("127.0.0.1", port)).unwrap();
        let (from, d) = t.recv(Duration::from_secs(2)).unwrap().unwrap();
        assert_eq!(d, b"ping");
        assert_eq!(SocketAddr::V4(from), tx.local_addr().unwrap());
        assert_eq!(t.recv(Duration::from_millis(10)).unwrap(), None);
    }
}
