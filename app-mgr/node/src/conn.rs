//! The job's TCP connection to `hostd`: framed messages of
//! [`sion_app_mgr::job`] over a [`TcpStream`], read without waiting (the
//! waits are [`crate::app_node`]'s, which serve the [`Lobby`] meanwhile).

use alloc::vec::Vec;

use sion_abi::{Error, MessageInfo};
use sion_app_mgr::job::{self, Decoder, HostMsg, NodeMsg};
use sion_rt::sys::TcpStream;

use crate::lobby::Lobby;

/// Why the connection cannot be used any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnError {
    /// `hostd` closed the connection or it broke.
    Closed,
    /// `hostd` sent something that is not a valid frame.
    Protocol(job::ProtoError),
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
}

impl Conn {
    /// Wraps an accepted stream.
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            decoder: Decoder::new(),
            closed: false,
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

    /// Sends one message; while `hostd` is slow to take it, `lobby` serves
    /// the job port, and any other message received meanwhile (a system
    /// call or the end of one of the job's applications) is given to
    /// `keep`. Errors: [`ConnError::Closed`], also when `hostd` took nothing
    /// for 60 s.
    pub fn send(
        &mut self,
        msg: &NodeMsg,
        lobby: &mut Lobby,
        mut keep: impl FnMut(&MessageInfo, &[u8]),
    ) -> Result<(), ConnError> {
        let frame = job::encode(msg)?;
        let mut rest = &frame[..];
        let mut notice = [0u8; 128];
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
                    if let Ok(info) = lobby.receive(&mut notice, LOBBY_SLICE_NS) {
                        keep(&info, &notice);
                    }
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
        if let Ok(frame) = job::encode(msg) {
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
            Ok(n) => self.decoder.push(&buf[..n]),
            Err(Error::TimedOut | Error::WouldBlock) => return false,
            Err(_) => self.closed = true,
        }
        true
    }

    /// The next complete message already received, without touching the
    /// socket.
    pub fn next_msg(&mut self) -> Result<Option<HostMsg>, ConnError> {
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
