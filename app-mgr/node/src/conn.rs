//! The job's TCP connection to `hostd`: framed messages of
//! [`sion_app_mgr::job`] over a [`TcpStream`], read without waiting (the
//! waits are [`crate::app_node`]'s, which serve the job port and the other
//! jobs meanwhile).
//!
//! On a node with a cluster key the connection first runs the node end of
//! the authenticated channel (`sion_companion_mgr::auth::channel`): nothing
//! reaches the job decoder before `hostd` has proven it holds the key, and
//! every frame both ways travels as a ChaCha20-Poly1305 record.

use alloc::vec::Vec;

use sion_abi::Error;
use sion_app_mgr::job::{self, Decoder, HostMsg, NodeMsg};
use sion_companion_mgr::auth::{Channel, ChannelError};
use sion_rt::sys::TcpStream;

/// Why the connection cannot be used any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnError {
    /// `hostd` closed the connection or it broke.
    Closed,
    /// `hostd` sent something that is not a valid frame.
    Protocol(job::ProtoError),
    /// The peer did not prove it holds the cluster key.
    Unauthenticated(ChannelError),
}

impl From<job::ProtoError> for ConnError {
    fn from(e: job::ProtoError) -> Self {
        ConnError::Protocol(e)
    }
}

/// Bytes read from the socket per read.
const RECV_BUF: usize = 16 * 1024;
/// How long `hostd` may leave the connection unable to take more bytes
/// before it counts as gone (60 s, ns).
const SEND_STALL_NS: u64 = 60_000_000_000;
/// How long a send waits for room in the socket (the kernel wakes it as
/// soon as `hostd` acknowledges data) before the lobby is served (ns).
const SEND_WAIT_NS: u64 = 10_000_000;
/// How long the lobby is served between such waits (ns).
const LOBBY_SLICE_NS: u64 = 1_000_000;

/// A job connection.
pub struct Conn {
    stream: TcpStream,
    decoder: Decoder,
    closed: bool,
    /// The authenticated channel (a keyed node), `None` in an open group.
    channel: Option<Channel>,
    /// Why the channel failed, if it did.
    auth_error: Option<ChannelError>,
}

impl Conn {
    /// Wraps an accepted stream; `channel` is the node end of a fresh
    /// authenticated channel on a keyed node, `None` in an open group.
    pub fn new(stream: TcpStream, channel: Option<Channel>) -> Conn {
        Conn {
            stream,
            decoder: Decoder::new(),
            closed: false,
            channel,
            auth_error: None,
        }
    }

    /// The frame of `msg` as it goes on the wire: sealed on a keyed node.
    fn wire_frame(&mut self, msg: &NodeMsg) -> Result<Vec<u8>, ConnError> {
        let frame = job::encode(msg)?;
        match &mut self.channel {
            None => Ok(frame),
            Some(c) => c.seal(&frame).map_err(ConnError::Unauthenticated),
        }
    }

    /// Takes bytes from the socket: straight to the decoder in an open
    /// group; through the channel (answering its handshake) on a keyed node.
    fn take(&mut self, bytes: &[u8]) {
        let Some(channel) = &mut self.channel else {
            self.decoder.push(bytes);
            return;
        };
        let mut plain = Vec::new();
        let r = channel.push(bytes, &mut plain);
        let out = channel.take_output();
        if !out.is_empty() {
            // The NodeHello (77 bytes) fits an empty send buffer.
            let _ = self.stream.send_timeout(&out, 0);
        }
        self.decoder.push(&plain);
        if let Err(e) = r {
            if e == ChannelError::NotSecured && bytes.first() == Some(&0) {
                // A keyless hostd's first frame: tell it why, in the open.
                let why = NodeMsg::Refused {
                    reason: alloc::string::String::from(
                        "this node runs an authenticated group: hostd has no cluster key (hostd keygen; ~/.config/sion/cluster.key or --key FILE)",
                    ),
                };
                if let Ok(frame) = job::encode(&why) {
                    let _ = self.stream.send_timeout(&frame, 0);
                }
            }
            self.auth_error = Some(e);
            self.closed = true;
        }
    }

    /// The socket's kernel handle (as carried by readable notices).
    pub fn handle(&self) -> u64 {
        self.stream.handle()
    }

    /// Whether the peer has closed the connection (seen by a receive).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Sends one message; while `hostd` is slow to take it, `serve(ns)` is
    /// called to serve the node (the job port, the other jobs) for at most
    /// that many nanoseconds, keeping whatever comes. Errors:
    /// [`ConnError::Closed`], also when `hostd` took nothing for 60 s.
    pub fn send(&mut self, msg: &NodeMsg, mut serve: impl FnMut(u64)) -> Result<(), ConnError> {
        let frame = self.wire_frame(msg)?;
        let mut rest = &frame[..];
        let mut stalled_since = None;
        let mut waited = false;
        while !rest.is_empty() {
            match self.stream.send_timeout(rest, 0) {
                Ok(n) => {
                    rest = &rest[n..];
                    stalled_since = None;
                }
                Err(Error::TimedOut | Error::WouldBlock) => {
                    let now = sion_rt::sys::clock_ns();
                    let since = *stalled_since.get_or_insert(now);
                    if now - since > SEND_STALL_NS {
                        return Err(ConnError::Closed);
                    }
                    // Wait for room: the send goes on the moment hostd has
                    // taken some (a fixed sleep here cost most of the
                    // throughput of forwarded writes).
                    match self.stream.send_timeout(rest, SEND_WAIT_NS) {
                        Ok(n) => {
                            rest = &rest[n..];
                            stalled_since = None;
                            continue;
                        }
                        Err(Error::TimedOut | Error::WouldBlock) => {}
                        Err(_) => return Err(ConnError::Closed),
                    }
                    // Still no room: serve the job port a moment.
                    serve(LOBBY_SLICE_NS);
                    waited = true;
                }
                Err(_) => return Err(ConnError::Closed),
            }
        }
        if waited {
            // The wait may have taken the job's readable notice.
            self.arm();
        }
        Ok(())
    }

    /// Sends a short message to a new connection (a refusal, "busy"): its
    /// send buffer is empty, so it fits; if not, the message is dropped.
    pub fn send_now(&mut self, msg: &NodeMsg) {
        if let Ok(frame) = self.wire_frame(msg) {
            let _ = self.stream.send_timeout(&frame, 0);
        }
    }

    /// Resets the connection: for peers that are dropped, not served.
    pub fn abort(self) {
        self.stream.abort();
    }

    /// Reads once what has arrived (at most 16 KiB), without waiting; true if
    /// anything came (bytes or the end of the stream).
    pub fn read_some(&mut self) -> bool {
        if self.closed {
            return false;
        }
        // On the stack: connections waiting in the lobby hold no buffer.
        let mut buf = [0u8; RECV_BUF];
        match self.stream.recv_timeout(&mut buf, 0) {
            Ok(0) => self.closed = true,
            Ok(n) => self.take(&buf[..n]),
            Err(Error::TimedOut | Error::WouldBlock) => return false,
            Err(_) => self.closed = true,
        }
        true
    }

    /// The next complete message already received, without touching the
    /// socket.
    pub fn next_msg(&mut self) -> Result<Option<HostMsg>, ConnError> {
        if let Some(e) = self.auth_error {
            return Err(ConnError::Unauthenticated(e));
        }
        Ok(self.decoder.next_msg()?)
    }

    /// Reads what has arrived without waiting and returns the complete
    /// messages. A closed connection is reported with `closed` (the messages
    /// before the close are still returned).
    pub fn drain(&mut self) -> Result<Vec<HostMsg>, ConnError> {
        while self.read_some() {}
        self.buffered()
    }

    /// The complete messages already received, without touching the socket.
    pub fn buffered(&mut self) -> Result<Vec<HostMsg>, ConnError> {
        if let Some(e) = self.auth_error {
            return Err(ConnError::Unauthenticated(e));
        }
        let mut out = Vec::new();
        while let Some(m) = self.decoder.next_msg()? {
            out.push(m);
        }
        Ok(out)
    }

    /// Asks the kernel for one readable notice.
    pub fn arm(&self) {
        if !self.closed {
            let _ = self.stream.notify_readable();
        }
    }
}
