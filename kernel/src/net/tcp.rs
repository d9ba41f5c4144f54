//! TCP streams for processes: listen, accept, connect, send, receive and close
//! on smoltcp TCP sockets, each identified by a handle owned by one process.
//! The calls here never block; the system-call layer waits for network events
//! between attempts.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use sion_abi::{Error, Pid};
use smoltcp::iface::{Context, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

/// Sockets kept listening per listener, so SYNs arriving while the owner is
/// busy are not refused: the backlog is refilled on every poll, as soon as a
/// listening socket has taken a SYN.
const BACKLOG: usize = 4;
/// Readable notices gathered per poll; more wait for the next poll.
const READABLE_PER_POLL: usize = 32;

/// (owner, handle) pairs of sockets that became readable: fixed-size, as the
/// stack is polled from interrupts, where the kernel does not allocate.
pub type Readable = heapless::Vec<(Pid, u64), READABLE_PER_POLL>;
/// Connections per listener that are being set up or wait for `accept`, at
/// most (Linux's `listen` backlog); beyond, new SYNs are refused.
const MAX_BACKLOG: usize = 16;
/// Buffer size of each direction of a connection (bytes).
const BUFFER: usize = 64 * 1024;
/// First local port for outgoing connections (IANA dynamic range).
const EPHEMERAL_FIRST: u16 = 49152;
/// How long a connection may sit in a listener's backlog, from its SYN to its
/// `accept`, without a packet before it is dropped and its place refilled
/// (10 s): a half-open SYN cannot hold the port.
const BACKLOG_IDLE: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(10);
/// Streams finishing their close at most; beyond, the oldest is reset.
const MAX_CLOSING: usize = 32;
/// How long a closed stream may wait for its peer to finish closing before it
/// is reset and freed (ns): Linux's `tcp_fin_timeout` default, 60 s
/// (ip-sysctl.rst), so a peer that never closes its side cannot pin sockets.
const CLOSE_TIMEOUT_NS: u64 = 60_000_000_000;

enum Kind {
    Listener {
        port: u16,
        backlog: Vec<SocketHandle>,
    },
    Stream(SocketHandle),
}

struct Entry {
    owner: Pid,
    kind: Kind,
    /// Post a readable notice to the owner (armed by `tcp_notify`).
    notify: bool,
}

/// Every process socket, by handle.
#[derive(Default)]
pub struct TcpTable {
    entries: BTreeMap<u64, Entry>,
    /// Streams finishing their close, with when it began (ns).
    closing: Vec<(SocketHandle, u64)>,
    next_handle: u64,
    next_port: u16,
}

fn new_socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; BUFFER]),
        tcp::SocketBuffer::new(vec![0; BUFFER]),
    );
    // Processes send whole messages: Nagle's algorithm would hold a
    // message's last segment until the peer's (delayed, up to 40 ms on
    // Linux) acknowledgement of the one before — a stall per message.
    s.set_nagle_enabled(false);
    s
}

/// A socket listening on `port` for a listener's backlog.
fn backlog_socket(port: u16) -> Result<tcp::Socket<'static>, Error> {
    let mut s = new_socket();
    s.set_timeout(Some(BACKLOG_IDLE));
    s.listen(port).map_err(|_| Error::InUse)?;
    Ok(s)
}

/// Frees a listener's backlog sockets that were reset or timed out, and keeps
/// [`BACKLOG`] of them listening (at most [`MAX_BACKLOG`] in all).
fn refill(sockets: &mut SocketSet<'static>, port: u16, backlog: &mut Vec<SocketHandle>) {
    backlog.retain(|&h| {
        let closed = sockets.get::<tcp::Socket>(h).state() == State::Closed;
        if closed {
            sockets.remove(h);
        }
        !closed
    });
    let listening = backlog
        .iter()
        .filter(|&&h| sockets.get::<tcp::Socket>(h).state() == State::Listen)
        .count();
    for _ in listening..BACKLOG {
        if backlog.len() >= MAX_BACKLOG {
            break;
        }
        match backlog_socket(port) {
            Ok(s) => backlog.push(sockets.add(s)),
            Err(_) => break,
        }
    }
}

/// A backlog socket whose handshake is done (the peer may already have sent
/// its FIN): ready to accept.
fn is_established(s: &tcp::Socket) -> bool {
    matches!(s.state(), State::Established | State::CloseWait)
}

impl TcpTable {
    fn add(&mut self, owner: Pid, kind: Kind) -> u64 {
        self.next_handle += 1;
        self.entries.insert(
            self.next_handle,
            Entry {
                owner,
                kind,
                notify: false,
            },
        );
        self.next_handle
    }

    fn stream(&self, owner: Pid, handle: u64) -> Result<SocketHandle, Error> {
        match self.entries.get(&handle) {
            Some(Entry {
                owner: o,
                kind: Kind::Stream(s),
                ..
            }) if *o == owner => Ok(*s),
            _ => Err(Error::BadHandle),
        }
    }

    /// Starts listening on `port`. Errors: [`Error::InUse`].
    pub fn listen(
        &mut self,
        sockets: &mut SocketSet<'static>,
        owner: Pid,
        port: u16,
    ) -> Result<u64, Error> {
        let taken = self
            .entries
            .values()
            .any(|e| matches!(e.kind, Kind::Listener { port: p, .. } if p == port));
        if taken || port == 0 {
            return Err(if port == 0 {
                Error::InvalidArgument
            } else {
                Error::InUse
            });
        }
        let mut backlog = Vec::new();
        for _ in 0..BACKLOG {
            backlog.push(sockets.add(backlog_socket(port)?));
        }
        Ok(self.add(owner, Kind::Listener { port, backlog }))
    }

    /// A connection that has arrived on `listener`, if any, as a new handle.
    pub fn try_accept(
        &mut self,
        sockets: &mut SocketSet<'static>,
        owner: Pid,
        listener: u64,
    ) -> Result<Option<u64>, Error> {
        let Some(Entry {
            owner: o,
            kind: Kind::Listener { port, backlog },
            ..
        }) = self.entries.get_mut(&listener)
        else {
            return Err(Error::BadHandle);
        };
        if *o != owner {
            return Err(Error::BadHandle);
        }
        let port = *port;
        let ready = backlog
            .iter()
            .position(|h| is_established(sockets.get::<tcp::Socket>(*h)));
        let Some(i) = ready else { return Ok(None) };
        let handle = backlog.remove(i);
        // An accepted stream may be idle as long as its owner likes.
        sockets.get_mut::<tcp::Socket>(handle).set_timeout(None);
        refill(sockets, port, backlog);
        Ok(Some(self.add(owner, Kind::Stream(handle))))
    }

    /// Starts connecting to `ipv4:port`; returns the handle at once.
    pub fn connect(
        &mut self,
        cx: &mut Context,
        sockets: &mut SocketSet<'static>,
        owner: Pid,
        ipv4: [u8; 4],
        port: u16,
    ) -> Result<u64, Error> {
        let mut s = new_socket();
        self.next_port = if self.next_port < EPHEMERAL_FIRST {
            EPHEMERAL_FIRST
        } else {
            self.next_port.wrapping_add(1).max(EPHEMERAL_FIRST)
        };
        let remote = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::from(ipv4)), port);
        s.connect(cx, remote, self.next_port)
            .map_err(|_| Error::InvalidArgument)?;
        let handle = sockets.add(s);
        Ok(self.add(owner, Kind::Stream(handle)))
    }

    /// Whether a connecting socket is up (`Some(true)`), failed (`Some(false)`)
    /// or still trying (`None`).
    pub fn connected(
        &self,
        sockets: &SocketSet<'static>,
        owner: Pid,
        handle: u64,
    ) -> Result<Option<bool>, Error> {
        let s = sockets.get::<tcp::Socket>(self.stream(owner, handle)?);
        Ok(match s.state() {
            State::Established | State::CloseWait => Some(true),
            State::Closed | State::TimeWait | State::Closing | State::LastAck => Some(false),
            _ => None,
        })
    }

    /// Queues as much of `data` as fits; `None` when nothing fits yet.
    /// Errors: [`Error::ConnectionClosed`].
    pub fn try_send(
        &self,
        sockets: &mut SocketSet<'static>,
        owner: Pid,
        handle: u64,
        data: &[u8],
    ) -> Result<Option<usize>, Error> {
        let s = sockets.get_mut::<tcp::Socket>(self.stream(owner, handle)?);
        if !s.may_send() {
            return Err(Error::ConnectionClosed);
        }
        if !s.can_send() {
            return Ok(None);
        }
        s.send_slice(data)
            .map(Some)
            .map_err(|_| Error::ConnectionClosed)
    }

    /// Takes received bytes into `buf`; `Some(0)` at end of stream, `None`
    /// when nothing has arrived yet.
    pub fn try_recv(
        &self,
        sockets: &mut SocketSet<'static>,
        owner: Pid,
        handle: u64,
        buf: &mut [u8],
    ) -> Result<Option<usize>, Error> {
        let s = sockets.get_mut::<tcp::Socket>(self.stream(owner, handle)?);
        if s.can_recv() {
            return s
                .recv_slice(buf)
                .map(Some)
                .map_err(|_| Error::ConnectionClosed);
        }
        if !s.may_recv() {
            return Ok(Some(0));
        }
        Ok(None)
    }

    /// Closes a handle: a stream finishes sending, then is freed (with
    /// `abort`, it is reset at once: RFC 793 "ABORT"); a listener stops
    /// listening.
    pub fn close(
        &mut self,
        sockets: &mut SocketSet<'static>,
        owner: Pid,
        handle: u64,
        abort: bool,
    ) -> Result<(), Error> {
        match self.entries.get(&handle) {
            Some(e) if e.owner == owner => {}
            _ => return Err(Error::BadHandle),
        }
        let entry = self.entries.remove(&handle).expect("checked above");
        match entry.kind {
            Kind::Stream(h) => {
                let s = sockets.get_mut::<tcp::Socket>(h);
                if abort {
                    s.abort();
                } else {
                    s.close();
                }
                self.closing.push((h, crate::time::now_ns()));
                if self.closing.len() > MAX_CLOSING {
                    // Peers that do not finish closing must not pin memory.
                    let (oldest, _) = self.closing[0];
                    sockets.get_mut::<tcp::Socket>(oldest).abort();
                }
            }
            Kind::Listener { backlog, .. } => {
                for h in backlog {
                    sockets.get_mut::<tcp::Socket>(h).abort();
                    self.closing.push((h, crate::time::now_ns()));
                }
            }
        }
        Ok(())
    }

    /// Arms the one-shot readable notice of a stream or listener.
    /// Errors: [`Error::BadHandle`].
    pub fn arm_notify(&mut self, owner: Pid, handle: u64) -> Result<(), Error> {
        match self.entries.get_mut(&handle) {
            Some(e) if e.owner == owner => {
                e.notify = true;
                Ok(())
            }
            _ => Err(Error::BadHandle),
        }
    }

    /// Armed handles that are now readable, disarmed: streams with data or at
    /// the end of the stream, listeners with a connection to accept.
    /// (owner, handle) pairs to notify.
    pub fn take_readable(&mut self, sockets: &SocketSet<'static>) -> Readable {
        let mut ready = Readable::new();
        for (handle, entry) in self.entries.iter_mut() {
            if !entry.notify {
                continue;
            }
            let readable = match &entry.kind {
                Kind::Stream(h) => {
                    let s = sockets.get::<tcp::Socket>(*h);
                    s.can_recv() || !s.may_recv()
                }
                Kind::Listener { backlog, .. } => backlog
                    .iter()
                    .any(|h| is_established(sockets.get::<tcp::Socket>(*h))),
            };
            if readable {
                if ready.push((entry.owner, *handle)).is_err() {
                    // Stays armed: reported on the next poll.
                    break;
                }
                entry.notify = false;
            }
        }
        ready
    }

    /// Frees sockets that have finished closing, resets those whose peer has
    /// not finished within [`CLOSE_TIMEOUT_NS`] (the reset leaves on the next
    /// poll, and the socket is freed on the purge after it), and refills
    /// listener backlogs whose sockets were reset or timed out.
    pub fn purge(&mut self, sockets: &mut SocketSet<'static>) {
        let now = crate::time::now_ns();
        self.closing.retain(|&(h, since)| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if matches!(s.state(), State::Closed | State::TimeWait) {
                sockets.remove(h);
                return false;
            }
            if now.saturating_sub(since) > CLOSE_TIMEOUT_NS {
                s.abort();
            }
            true
        });
        for entry in self.entries.values_mut() {
            if let Kind::Listener { port, backlog } = &mut entry.kind {
                refill(sockets, *port, backlog);
            }
        }
    }

    /// Closes every socket `pid` owns (when it ends).
    pub fn release(&mut self, pid: Pid, sockets: &mut SocketSet<'static>) {
        let handles: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| e.owner == pid)
            .map(|(h, _)| *h)
            .collect();
        for h in handles {
            let _ = self.close(sockets, pid, h, false);
        }
    }
}
