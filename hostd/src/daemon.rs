//! `hostd daemon`: keeps a [`Session`] in the group and serves the control
//! socket ([`control`](crate::control)).
//!
//! Threads: one receives datagrams from the transport, one accepts control
//! connections (plus one per connection), and the engine owns the session.
//! Everything reaches the engine as an [`Input`] on one channel, so the sans-IO
//! member is only ever touched by one thread and needs no lock; the engine
//! waits on that channel until the member's next timer. Placements asked for by
//! clients run without blocking the engine: the answer is sent when the
//! member's result appears. Placements that wait for a node queue in arrival
//! order; only the head of the queue places, once a second, so jobs submitted
//! through one daemon start in the order they were submitted. Group events (join, suspect, dead, leave, restart)
//! are logged one per line, prefixed with the seconds since start.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::net::SocketAddrV4;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use sion_companion_mgr::{Event, JobSpec, PlacementId, Weights};

use crate::control::{Client, DaemonInfo, Request, Response, current_netns};
use crate::model::{NodesReport, PlacementReport, Via};
use crate::session::{self, Session};

/// How long a client connection waits for the engine's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Something for the engine to handle.
pub enum Input {
    /// A datagram from the transport.
    Datagram(SocketAddrV4, Vec<u8>),
    /// A control request and where to send its response.
    Request(Request, Sender<Response>),
    /// Leave the group and stop (SIGINT/SIGTERM, or [`Daemon::shutdown`]).
    Shutdown,
}

/// Why the daemon cannot start on its socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another daemon answers there.
    #[error(
        "a hostd daemon is already running on {path} (pid {pid}, interface {interface}, joined as {name}); stop it first, or use --socket for a second one"
    )]
    AlreadyRunning {
        /// The socket.
        path: PathBuf,
        /// The other daemon's pid.
        pid: u32,
        /// Its interface.
        interface: String,
        /// Its member name.
        name: String,
    },
    /// Something that is not a hostd daemon listens there.
    #[error(
        "{0} is in use by a program that does not answer like a hostd daemon; choose another --socket"
    )]
    InUse(PathBuf),
    /// The path exists and is not a socket.
    #[error("{0} exists and is not a socket; remove it or choose another --socket")]
    NotASocket(PathBuf),
}

/// Binds the control socket at `path` with mode 0600: refuses when a daemon
/// already answers there, removes a stale socket file left by a daemon that
/// died.
///
/// # Errors
/// [`SocketError`], or binding failing (e.g. the directory does not exist).
pub fn bind_control(path: &Path) -> Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(SocketError::NotASocket(path.into()).into());
        }
        match Client::connect(path, Duration::from_secs(2)) {
            Ok(mut c) => {
                return Err(match c.hello() {
                    Ok(info) => SocketError::AlreadyRunning {
                        path: path.into(),
                        pid: info.pid,
                        interface: info.interface,
                        name: info.name,
                    },
                    Err(_) => SocketError::InUse(path.into()),
                }
                .into());
            }
            Err(_) => {
                std::fs::remove_file(path)
                    .with_context(|| format!("removing the stale socket {}", path.display()))?;
            }
        }
    }
    let listener = UnixListener::bind(path).with_context(|| {
        format!(
            "creating the control socket {} (another daemon starting at the same time?)",
            path.display()
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

/// A running daemon.
pub struct Daemon {
    tx: Sender<Input>,
    engine: JoinHandle<Result<()>>,
    stop: Arc<AtomicBool>,
    socket: PathBuf,
}

impl Daemon {
    /// Starts the daemon's threads around `session` (already joined), serving
    /// `listener` (bound at `socket`, see [`bind_control`]) and logging group
    /// events to `log`.
    ///
    /// # Errors
    /// A thread failing to start.
    pub fn start(
        session: Session,
        listener: UnixListener,
        socket: &Path,
        log: Box<dyn Write + Send>,
    ) -> Result<Daemon> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));

        let transport = session.transport();
        let (rtx, rstop) = (tx.clone(), stop.clone());
        thread::Builder::new()
            .name("hostd-udp".into())
            .spawn(move || {
                while !rstop.load(Ordering::Relaxed) {
                    match transport.recv(Duration::from_millis(250)) {
                        Ok(Some((from, d))) => {
                            if rtx.send(Input::Datagram(from, d)).is_err() {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(_) => thread::sleep(Duration::from_millis(50)),
                    }
                }
            })
            .context("starting the receiver thread")?;

        let (atx, astop) = (tx.clone(), stop.clone());
        thread::Builder::new()
            .name("hostd-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if astop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(stream) = conn {
                        let ctx = atx.clone();
                        let _ = thread::Builder::new()
                            .name("hostd-client".into())
                            .spawn(move || serve_client(stream, ctx));
                    }
                }
            })
            .context("starting the control thread")?;

        let engine = thread::Builder::new()
            .name("hostd-engine".into())
            .spawn(move || engine(session, rx, log))
            .context("starting the engine thread")?;
        Ok(Daemon {
            tx,
            engine,
            stop,
            socket: socket.into(),
        })
    }

    /// A sender for [`Input::Shutdown`] (for signal handlers).
    pub fn sender(&self) -> Sender<Input> {
        self.tx.clone()
    }

    /// Asks the daemon to leave the group, waits for it, and removes the socket.
    ///
    /// # Errors
    /// As [`Daemon::wait`].
    pub fn shutdown(self) -> Result<()> {
        let _ = self.tx.send(Input::Shutdown);
        self.wait()
    }

    /// Waits until the daemon stops (after an [`Input::Shutdown`]), then stops
    /// its threads and removes the socket.
    ///
    /// # Errors
    /// The engine failing or panicking.
    pub fn wait(self) -> Result<()> {
        let Daemon {
            tx,
            engine,
            stop,
            socket,
        } = self;
        drop(tx);
        let result = engine
            .join()
            .map_err(|_| anyhow!("the daemon's engine thread panicked"))?;
        stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees `stop`.
        let _ = UnixStream::connect(&socket);
        let _ = std::fs::remove_file(&socket);
        result
    }
}

/// Reads request lines from one client and writes its response lines: one
/// per request, after any [`Response::Waiting`] lines of a waiting placement.
fn serve_client(stream: UnixStream, tx: Sender<Input>) {
    let Ok(read) = stream.try_clone() else { return };
    let mut writer = stream;
    let mut write = |response: &Response| -> bool {
        let Ok(mut out) = serde_json::to_string(response) else {
            return false;
        };
        out.push('\n');
        writer.write_all(out.as_bytes()).is_ok()
    };
    for line in BufReader::new(read).lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let req = match serde_json::from_str::<Request>(&line) {
            Ok(req) => req,
            Err(e) => {
                if write(&Response::Error(format!(
                    "not a hostd request ({e}): {line}"
                ))) {
                    continue;
                }
                break;
            }
        };
        let (rtx, rrx) = mpsc::channel();
        if tx.send(Input::Request(req, rtx)).is_err() {
            let _ = write(&Response::Error("the daemon is shutting down".into()));
            break;
        }
        loop {
            let response = rrx
                .recv_timeout(ANSWER_TIMEOUT)
                .unwrap_or_else(|_| Response::Error("the daemon did not answer in time".into()));
            let last = !matches!(response, Response::Waiting { .. });
            // A client gone while waiting drops `rrx` here: the engine then
            // takes its placement out of the queue.
            if !write(&response) {
                return;
            }
            if last {
                break;
            }
        }
    }
}

/// The daemon's identity for [`Request::Hello`].
pub fn daemon_info(session: &Session) -> DaemonInfo {
    let id = session.identity();
    DaemonInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        interface: id.iface.clone(),
        address: id.ip,
        id: id.id,
        name: id.name.to_string(),
        netns: current_netns(),
        uptime_ms: session.uptime().as_millis() as u64,
        key_id: session.keys().map(|k| k.signing().id().to_string()),
    }
}

/// The group table as the daemon sees it.
pub fn nodes_report(session: &Session, via: Via) -> NodesReport {
    let id = session.identity();
    NodesReport {
        interface: id.iface.clone(),
        address: id.ip,
        via,
        listened_ms: session.uptime().as_millis() as u64,
        nodes: session.rows(),
        group: session.group_auth(),
    }
}

/// A client's placement that answers as soon as it finishes.
struct Placing {
    id: PlacementId,
    exclude: Vec<Ipv4Addr>,
    take: bool,
    /// `None` once the client is gone: the placement is still settled, so
    /// its reservations are released.
    reply: Option<Sender<Response>>,
}

/// A placement waiting in the daemon's queue for a node (`wait` in
/// [`Request::Place`]). Only the head of the queue places; the others wait
/// their turn, so jobs start in the order they were submitted.
struct Waiter {
    job: JobSpec,
    weights: Weights,
    exclude: Vec<Ipv4Addr>,
    take: bool,
    reply: Sender<Response>,
    /// Its placement in flight.
    placing: Option<PlacementId>,
    /// When the head may place again.
    next_try: Instant,
    /// When it was last sent a [`Response::Waiting`].
    last_told: Option<Instant>,
    /// Its last placement's outcome.
    report: Option<PlacementReport>,
}

/// How often a waiting placement is retried, and its client told.
const WAIT_RETRY: Duration = Duration::from_secs(1);

fn engine(mut session: Session, rx: Receiver<Input>, mut log: Box<dyn Write + Send>) -> Result<()> {
    let mut say = |session: &Session, text: &str| {
        let t = session.uptime().as_secs_f64();
        let _ = writeln!(log, "hostd: [{t:9.3}] {text}");
    };
    let me = session.identity().clone();
    say(
        &session,
        &format!(
            "joining the SiON group on {} as {} {} ({}, port {})",
            me.iface,
            me.id,
            me.name,
            me.ip,
            crate::envelope::IPC_PORT
        ),
    );
    say(&session, &crate::report::group_line(&session.group_auth()));
    let mut pending: Vec<Placing> = Vec::new();
    let mut queue: VecDeque<Waiter> = VecDeque::new();
    let mut send_errors = 0;
    loop {
        session.tick();
        while let Some((e, text)) = session.poll_event() {
            if !matches!(e, Event::PlacementDone(_)) {
                say(&session, &text);
            }
        }
        finish_placements(&mut session, &mut pending);
        serve_queue(&mut session, &mut queue, &mut pending);
        let drops = session.drops();
        if drops.send_errors > send_errors {
            send_errors = drops.send_errors;
            if send_errors.is_power_of_two() {
                let e = session.last_send_error().unwrap_or("?").to_string();
                say(
                    &session,
                    &format!("send failed ({send_errors} so far): {e}"),
                );
            }
        }
        let mut wait = session.next_wake().min(Duration::from_secs(1));
        if !queue.is_empty() {
            wait = wait.min(Duration::from_millis(200));
        }
        match rx.recv_timeout(wait) {
            Ok(Input::Datagram(from, d)) => session.handle_datagram(from, &d),
            Ok(Input::Request(req, reply)) => match req {
                Request::Hello => {
                    let _ = reply.send(Response::Hello(daemon_info(&session)));
                }
                Request::Nodes => {
                    let _ = reply.send(Response::Nodes(nodes_report(&session, Via::Daemon)));
                }
                Request::Place {
                    job,
                    weights,
                    exclude,
                    take,
                    wait: true,
                } => queue.push_back(Waiter {
                    job,
                    weights,
                    exclude,
                    take,
                    reply,
                    placing: None,
                    next_try: Instant::now(),
                    last_told: None,
                    report: None,
                }),
                Request::Place {
                    job,
                    weights,
                    exclude,
                    take,
                    wait: false,
                } => {
                    let id = session.start_placement(job, weights);
                    pending.push(Placing {
                        id,
                        exclude,
                        take,
                        reply: Some(reply),
                    });
                }
            },
            Ok(Input::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    session.leave();
    let gone = || Response::Error("the daemon is shutting down".into());
    for p in pending {
        if let Some(reply) = p.reply {
            let _ = reply.send(gone());
        }
    }
    for w in queue {
        let _ = w.reply.send(gone());
    }
    say(&session, "left the group");
    Ok(())
}

/// Answers (and settles) the immediate placements that finished.
fn finish_placements(session: &mut Session, pending: &mut Vec<Placing>) {
    let mut i = 0;
    while i < pending.len() {
        let Some(r) = session.member_mut().take_placement_result(pending[i].id) else {
            i += 1;
            continue;
        };
        let p = pending.swap_remove(i);
        let r = session::settle(session, r, &p.exclude, p.take && p.reply.is_some());
        if let Some(reply) = p.reply {
            let _ = reply.send(Response::Placement(session.report(&r)));
        }
    }
}

/// Moves the waiting queue on: the head's finished placement answers it
/// when it found a node (or never can), else it tries again after
/// [`WAIT_RETRY`]; every waiter hears how many are ahead about once a
/// second; waiters whose client left are dropped.
fn serve_queue(session: &mut Session, queue: &mut VecDeque<Waiter>, pending: &mut Vec<Placing>) {
    let now = Instant::now();
    if let Some(head) = queue.front_mut()
        && let Some(id) = head.placing
        && let Some(r) = session.member_mut().take_placement_result(id)
    {
        head.placing = None;
        let r = session::settle(session, r, &head.exclude, head.take);
        let report = session.report(&r);
        if !report.ranked.is_empty() || !report.may_free_up() {
            let _ = head.reply.send(Response::Placement(report));
            queue.pop_front();
        } else {
            head.report = Some(report);
            head.next_try = now + WAIT_RETRY;
        }
    }
    if let Some(head) = queue.front_mut()
        && head.placing.is_none()
        && now >= head.next_try
    {
        head.placing = Some(session.start_placement(head.job, head.weights));
    }
    let mut i = 0;
    while i < queue.len() {
        let w = &mut queue[i];
        let due = w.last_told.is_none_or(|t| now >= t + WAIT_RETRY);
        if due && (i > 0 || w.report.is_some()) {
            w.last_told = Some(now);
            let told = w.reply.send(Response::Waiting {
                ahead: i,
                report: w.report.clone(),
            });
            if told.is_err() {
                let w = queue.remove(i).expect("index in range");
                if let Some(id) = w.placing {
                    pending.push(Placing {
                        id,
                        exclude: Vec::new(),
                        take: false,
                        reply: None,
                    });
                }
                continue;
            }
        }
        i += 1;
    }
}
