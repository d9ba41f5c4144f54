//! The job's TCP connection to `hostd`: framed messages of
//! [`sion_app_mgr::job`] over a [`TcpStream`], read without waiting or waited
//! for through the [`Lobby`], which keeps serving the job port meanwhile.

use alloc::vec;
use alloc::vec::Vec;

use sion_abi::Error;
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
    /// The wait for a message timed out.
    TimedOut,
}

impl From<job::ProtoError> for ConnError {
    fn from(e: job::ProtoError) -> Self {
        ConnError::Protocol(e)
    }
}

/// Bytes read from the socket per read.
const RECV_BUF: usize = 16 * 1024;

/// A job connection.
pub struct Conn {
    stream: TcpStream,
    decoder: Decoder,
    buf: Vec<u8>,
    closed: bool,
}

impl Conn {
    /// Wraps an accepted stream.
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            decoder: Decoder::new(),
            buf: vec![0; RECV_BUF],
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

    /// Sends one message. Errors: [`ConnError::Closed`].
    pub fn send(&mut self, msg: &NodeMsg) -> Result<(), ConnError> {
        let frame = job::encode(msg)?;
        self.stream.send_all(&frame).map_err(|_| ConnError::Closed)
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
        match self.stream.recv_timeout(&mut self.buf, 0) {
            Ok(0) => self.closed = true,
            Ok(n) => self.decoder.push(&self.buf[..n]),
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

    /// The next message, waiting up to `timeout_ns` for it
    /// ([`sion_abi::NO_TIMEOUT`]: for ever) while `lobby` serves the job port.
    pub fn recv(&mut self, lobby: &mut Lobby, timeout_ns: u64) -> Result<HostMsg, ConnError> {
        let deadline = sion_rt::sys::clock_ns().saturating_add(timeout_ns);
        let mut notice = [0u8; 64];
        loop {
            if let Some(msg) = self.decoder.next_msg()? {
                return Ok(msg);
            }
            if self.closed {
                return Err(ConnError::Closed);
            }
            if self.read_some() {
                continue;
            }
            let left = deadline.saturating_sub(sion_rt::sys::clock_ns());
            if left == 0 {
                return Err(ConnError::TimedOut);
            }
            self.arm();
            // Any wake-up (our notice, the deadline, a message the job loop
            // does not wait for here) leads to another look at the socket.
            let _ = lobby.receive(&mut notice, left);
        }
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
