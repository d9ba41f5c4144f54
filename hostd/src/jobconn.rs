//! A job connection's bytes (`hostd` ↔ a node's App-Program Manager, TCP
//! 7421): plain frames in an open group; with a cluster key, first the
//! client end of the authenticated channel
//! ([`sion_companion_mgr::auth::channel`]), then every frame as a
//! ChaCha20-Poly1305 record. `hostd` checks the node's proof before it sends
//! a byte of the job, so a node without the key never sees its arguments,
//! environment, program or files.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use sion_app_mgr::job::Decoder;
use sion_companion_mgr::auth::channel::{NODE_HELLO_LEN, NONCE_LEN};
use sion_companion_mgr::auth::{Channel, ChannelError, Keyring, Opener, Sealer};

/// How long the node may take to answer the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The sending side: whole frames, sealed in an authenticated group.
pub struct FrameWriter {
    stream: TcpStream,
    sealer: Option<Sealer>,
}

impl FrameWriter {
    /// Sends one encoded frame (`sion_app_mgr::job::encode`).
    ///
    /// # Errors
    /// The socket's.
    pub fn send_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        match &mut self.sealer {
            None => self.stream.write_all(frame),
            Some(s) => self.stream.write_all(&s.seal(frame)),
        }
    }

    /// The socket (to shut it down).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// The receiving side: turns received bytes into frames for a [`Decoder`].
pub struct FrameReader {
    opener: Option<Opener>,
}

impl FrameReader {
    /// Takes bytes read from the socket into `decoder` (opening records in an
    /// authenticated group).
    ///
    /// # Errors
    /// A record that fails authentication: the connection is not to be
    /// trusted any more.
    pub fn take(&mut self, bytes: &[u8], decoder: &mut Decoder) -> Result<(), ChannelError> {
        match &mut self.opener {
            None => {
                decoder.push(bytes);
                Ok(())
            }
            Some(o) => {
                let mut plain = Vec::new();
                let r = o.push(bytes, &mut plain);
                decoder.push(&plain);
                r
            }
        }
    }
}

/// Sets up a connected stream's two sides: at once in an open group (`keys`
/// `None`), else after the handshake. `label` names the node in errors.
///
/// # Errors
/// The node refuses hostd's key, does not prove it holds it, does not speak
/// the handshake (an open-group node), or the socket fails.
pub fn open(
    stream: &TcpStream,
    keys: Option<&Keyring>,
    label: &str,
) -> Result<(FrameWriter, FrameReader)> {
    let writer = stream.try_clone().context("cloning the job socket")?;
    let Some(keys) = keys else {
        return Ok((
            FrameWriter {
                stream: writer,
                sealer: None,
            },
            FrameReader { opener: None },
        ));
    };
    let mut nonce = [0u8; NONCE_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut nonce))
        .context("reading /dev/urandom")?;
    let mut channel = Channel::client(keys, nonce);
    let mine = keys.signing().id();
    let no_handshake = |what: String| {
        anyhow!(
            "node {label} {what} during the cluster-key handshake: it probably runs an open group \
             (an image built without a key) while this hostd has key {mine}; --key none speaks to an open group"
        )
    };
    (&*stream)
        .write_all(&channel.take_output())
        .with_context(|| format!("sending the handshake to node {label}"))?;
    let old_timeout = stream.read_timeout().unwrap_or(None);
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut hello = [0u8; NODE_HELLO_LEN];
    let mut got = 0;
    while got < hello.len() {
        match (&*stream).read(&mut hello[got..]) {
            Ok(0) => return Err(no_handshake("closed the connection".into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(anyhow!(
                    "node {label} did not answer the cluster-key handshake within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(no_handshake(format!("broke the connection ({e})"))),
        }
    }
    stream.set_read_timeout(old_timeout)?;
    let mut nothing = Vec::new();
    match channel.push(&hello, &mut nothing) {
        Ok(()) => {}
        Err(ChannelError::UnknownKey(_)) => {
            return Err(anyhow!(
                "node {label} does not accept this hostd's cluster key {mine}: the key is probably wrong \
                 (~/.config/sion/cluster.key or --key FILE)"
            ));
        }
        Err(ChannelError::BadProof) => {
            return Err(anyhow!(
                "node {label} failed to prove it holds the cluster key {mine}: it is not a member of the group \
                 (a fake node?); nothing of the job was sent to it"
            ));
        }
        Err(ChannelError::NotSecured) => {
            return Err(no_handshake("answered something else".into()));
        }
        Err(e) => return Err(anyhow!("node {label}: {e}")),
    }
    (&*stream)
        .write_all(&channel.take_output())
        .with_context(|| format!("sending the handshake to node {label}"))?;
    let (sealer, opener) = channel.split().map_err(|e| anyhow!("node {label}: {e}"))?;
    Ok((
        FrameWriter {
            stream: writer,
            sealer: Some(sealer),
        },
        FrameReader {
            opener: Some(opener),
        },
    ))
}
