//! `hostd submit ./prog args…`: run an unmodified static Linux program on
//! the best SiON node as if it ran here (docs/ARCHITECTURE.md "hostd"; the
//! remote-process paper's pseudo process, McKernel's `mcexec`).
//!
//! It places the job (the path of `hostd place`, or `--node`), connects to
//! the node's job port ([`sion_abi::net::JOB_PORT`]), sends the arguments,
//! the environment (the caller's, like `srun`, unless `--env-clear`; plus
//! `--env`) and the program, then serves the job until it ends: its stdout
//! and stderr are written here, stdin is read only when the job asks, file
//! system calls are performed inside the job directory
//! ([`crate::fileserve`]); Ctrl-C passes `SIGINT` to the job's process group
//! (a second Ctrl-C kills the job), as do `SIGTERM`, `SIGHUP`, `SIGUSR1` and
//! `SIGUSR2` sent to `hostd submit`. The exit status is
//! the job's (128 + signal for a fault, 126 for a refused program, 124 after
//! `--timeout`, 255 if the node vanished).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use nix::sys::socket::{setsockopt, sockopt};
use sion_abi::WaitStatus;
use sion_abi::net::JOB_PORT;
use sion_app_mgr::job::{
    self, CHUNK, CheckpointPart, Decoder, HostMsg, NodeMsg, PROTOCOL_VERSION, Start, Winsize,
    wait_status,
};
use sion_companion_mgr::{JobSpec, Weights};

use crate::checkpoints::{Checkpoints, Image};
use crate::fileserve::FileServer;
use crate::jobconn::{self, FrameReader, FrameWriter};
use crate::keys;
use crate::placement::{self, FindArgs, ModeArg, NodeChoice, PlaceOpts, find_node, place_job};
use crate::report;

/// Exit status for a program the node refused (as a shell's "cannot
/// execute").
pub const EXIT_REFUSED: u8 = 126;
/// Exit status after `--timeout` killed the job (as `timeout(1)`).
pub const EXIT_TIMEOUT: u8 = 124;
/// Exit status when the node vanished mid-job.
pub const EXIT_LOST: u8 = 255;

/// How long to wait for the TCP connection to the node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the node may take to accept or refuse after the upload.
/// How long a placed node may take to answer a job before it counts as
/// busy with another one (exclusive mode).
const BUSY_AFTER: Duration = Duration::from_secs(2);
/// Most placements tried for one job.
const MAX_PLACEMENTS: usize = 4;

/// `hostd submit`'s arguments.
#[derive(Clone, Debug, Args)]
pub struct SubmitArgs {
    /// Score weights, e.g. `cpu=4,mem=2,speed=3,net=1` (as `hostd place`).
    #[arg(long, value_name = "cpu=W,mem=W,speed=W,net=W", value_parser = placement::parse_weights_arg)]
    pub weights: Option<Weights>,
    /// `exclusive`: one job per node; `balance`: busy nodes may take it.
    #[arg(long, value_enum, default_value_t = ModeArg::Exclusive)]
    pub mode: ModeArg,
    /// When no node can take the job now (all busy or held for other
    /// jobs), fail at once instead of waiting for one. Without it the job
    /// waits; through a `hostd daemon`, waiting jobs start in the order they
    /// were submitted.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting for a node after this many seconds (exit status 1).
    #[arg(long, value_name = "S", conflicts_with = "no_wait", value_parser = parse_seconds)]
    pub wait_timeout: Option<f64>,
    /// CPUs the job needs (its threads that compute at once), 1 to 255. A
    /// node with fewer CPUs is never chosen; in balance mode a job asking
    /// for more than one also needs that many free (not taken by other
    /// jobs) and otherwise waits for such a node, while a one-CPU job may
    /// wait on a node whose CPUs are all taken. In exclusive mode the job
    /// owns all of its node's CPUs anyway.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = placement::parse_cpus)]
    pub cpus: u8,
    /// Memory the job needs besides its program, in MiB; also its memory
    /// limit on the node (0: what the node can spare).
    #[arg(long, value_name = "MB", default_value_t = 0)]
    pub memory: u64,
    /// Most Linux processes the job may have at once (its first process
    /// and every fork); a `fork` beyond gets EAGAIN, so a fork bomb ends
    /// with an error while the node goes on serving.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=128))]
    pub max_procs: u32,
    /// Where to look for nodes.
    #[command(flatten)]
    pub find: FindArgs,
    /// Run on this node (id `52:54:00:…`, name, or IPv4 address) without
    /// placement.
    #[arg(long, value_name = "ID")]
    pub node: Option<String>,
    /// The job directory: the program's working directory and the only
    /// place its file calls may touch [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Times the job is run again on another node when its node is lost
    /// mid-job; the job directory is first rolled back to the job's start
    /// (hostd keeps an undo log of every change the job makes), stdin is
    /// given again and output already shown is not shown twice. Not with
    /// `--node`, which names one node.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: u32,
    /// Never re-run the job: a lost node ends it with status 255 (and no
    /// undo log is kept).
    #[arg(long, conflicts_with = "retries")]
    pub no_retry: bool,
    /// Take a checkpoint of the job every S seconds (its memory, registers,
    /// open files and signal state, kept here under the temporary
    /// directory): a job whose node is lost continues on another node from
    /// its last checkpoint, with the job directory rolled back to that
    /// point, instead of starting again. For one-process, one-thread
    /// x86_64 jobs; for others hostd says why once, and they start again.
    #[arg(long, value_name = "S", value_parser = parse_seconds, conflicts_with_all = ["no_retry", "node"])]
    pub checkpoint: Option<f64>,
    /// Kill the job after this many seconds (exit status 124).
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
    /// Add or override an environment variable (repeatable).
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// Start from an empty environment instead of this one.
    #[arg(long)]
    pub env_clear: bool,
    /// Also let the job read PATH (absolute) of this machine, read-only,
    /// besides the system paths dynamically linked programs need (`/lib`,
    /// `/usr/lib`, `/etc/ld.so.cache`, `/usr/share/zoneinfo`, …; `--verbose`
    /// lists them). Repeatable.
    #[arg(long, value_name = "PATH")]
    pub ro: Vec<PathBuf>,
    /// Print the chosen node, the ranked scores and the timings to stderr.
    #[arg(long)]
    pub verbose: bool,
    /// After the job, print a JSON summary (node, job number, placements,
    /// timings, status; see [`SubmitSummary`]) as the last line of stderr:
    /// stdout stays the program's own.
    #[arg(long)]
    pub json: bool,
    /// Run a job array: one task per number of RANGE (`1-20`, `0-100:10`,
    /// `1,4,9`), `{}` in the arguments replaced by the number.
    #[arg(
        long,
        value_name = "RANGE",
        conflicts_with = "each",
        help_heading = "Job arrays"
    )]
    pub array: Option<String>,
    /// Run one task per line of FILE, `{}` in the arguments replaced by the
    /// line.
    #[arg(long, value_name = "FILE", help_heading = "Job arrays")]
    pub each: Option<PathBuf>,
    /// Array tasks running at once [default: the alive nodes].
    #[arg(long, value_name = "N", help_heading = "Job arrays")]
    pub parallel: Option<usize>,
    /// Where each array task's stdout goes (`%a`: the task's id).
    #[arg(
        long,
        value_name = "PATTERN",
        default_value = "array-%a.out",
        help_heading = "Job arrays"
    )]
    pub output: String,
    /// Where each array task's stderr goes (`%a`: the task's id).
    #[arg(
        long,
        value_name = "PATTERN",
        default_value = "array-%a.err",
        help_heading = "Job arrays"
    )]
    pub error: String,
    /// The program (a static x86_64 or i386 Linux executable).
    pub program: PathBuf,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// A number of seconds for clap: finite, positive and at most a year.
///
/// # Errors
/// Not a number, or out of that range.
fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(v > 0.0 && v <= 365.0 * 86400.0) {
        return Err(format!(
            "{s} s is out of range: give a number of seconds above 0"
        ));
    }
    Ok(v)
}

/// Where the job goes.
struct Target {
    ip: Ipv4Addr,
    label: String,
}

/// Runs `hostd submit`.
///
/// # Errors
/// A program that cannot be read, no node found, the node unreachable (exit
/// status 1 through the caller); the job's own outcome is the `Ok` status.
pub fn run(socket: &Path, a: SubmitArgs) -> Result<ExitCode> {
    if a.array.is_some() || a.each.is_some() {
        return crate::array::run(socket, &a);
    }
    let program = std::fs::read(&a.program)
        .with_context(|| format!("cannot read the program {}", a.program.display()))?;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("the current directory")?,
    };
    let mut files = FileServer::new(&dir)?;
    files.set_system_paths(crate::fileserve::system::SystemPaths::defaults_and(&a.ro)?);
    if a.verbose {
        let roots: Vec<String> = files
            .system_paths()
            .roots()
            .map(|p| p.display().to_string())
            .collect();
        eprintln!("hostd: read-only for the job: {}", roots.join(" "));
    }
    // Ctrl-C: the first passes SIGINT to the job, the second kills it, the
    // third gives up waiting; SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are
    // passed to the job.
    watch_signals();
    let mut start = start_message(&a, &program, files.dir())?;
    // The job runs again elsewhere when its node is lost: the undo log lets
    // hostd put the job directory back first, stdin is kept to be given
    // again, and output already shown is not shown twice.
    let retries = if a.no_retry || a.node.is_some() {
        0
    } else {
        a.retries
    };
    if retries > 0 {
        files.keep_undo_log()?;
    }
    let tape = Arc::new(StdinTape::new(retries > 0));
    // Stdin bytes handed to the job so far.
    let stdin_at = Arc::new(AtomicU64::new(0));
    // Checkpoints are asked for with --checkpoint, and come unasked when a
    // node leaves the group (`hostd drain`) while running the job.
    let mut checkpoints =
        (retries > 0).then(|| Checkpoints::new(a.checkpoint.map(Duration::from_secs_f64)));
    // The last checkpoint and what it saw, once there is one.
    let mut resume_point: Option<ResumePoint> = None;
    // The checkpoint image a run continues from (instead of the program).
    let mut image: Option<Vec<u8>> = None;
    let mut placer = Placer::default();
    let mut output: [Shown; 2] = Default::default();
    let mut reruns = 0;
    let (code, job, target, t1) = loop {
        let upload = image.as_deref().unwrap_or(&program);
        let (target, (stream, writer, reader), (first, decoder), t1) =
            placer.place_and_start(socket, &a, &mut start, upload)?;
        let (stdin_tx, stdin_rx) = mpsc::channel::<u32>();
        {
            let (writer, tape, at) = (writer.clone(), tape.clone(), stdin_at.clone());
            std::thread::spawn(move || stdin_pump(stdin_rx, writer, tape, at));
        }
        if let Some(c) = checkpoints.as_mut() {
            c.run_started();
        }
        let mut job = JobConnection {
            stream,
            writer,
            reader,
            first: Some(first),
            decoder,
            accepted_at: None,
            node: None,
            upload_started: t1,
            killed: false,
            timed_out: false,
            interrupts_seen: 0,
            sigint_sent: false,
            timeout: a.timeout.map(Duration::from_secs_f64),
            label: target.label.clone(),
            verbose: a.verbose,
            output: match (&resume_point, image.is_some()) {
                (Some(rp), true) => [
                    output[0].resume_at(&rp.output[0]),
                    output[1].resume_at(&rp.output[1]),
                ],
                _ => [output[0].next_run(), output[1].next_run()],
            },
            checkpoints: checkpoints.take(),
            resume_point: resume_point.take(),
            stdin_at: stdin_at.clone(),
        };
        let served = job.serve(&mut files, &stdin_tx)?;
        checkpoints = job.checkpoints.take();
        resume_point = job.resume_point.take();
        match served {
            Served::Exited(code) => break (code, job, target, t1),
            // A move is not a failure: it does not count against --retries.
            Served::Moved(why) if resume_point.is_some() => {
                output = job.output.clone();
                let _ = std::io::stdout().flush();
                placer.excluded.push(target.ip);
                let rp = resume_point.as_ref().expect("matched above");
                eprintln!(
                    "hostd: node {}: {why}; continuing the job on another node from its checkpoint {}",
                    target.label, rp.image.number
                );
                image = Some(resume_from(
                    rp, &mut files, &stdin_at, &mut start, a.verbose,
                )?);
            }
            Served::Lost(why) | Served::Moved(why) if reruns < retries && !job.killed => {
                reruns += 1;
                output = job.output.clone();
                let _ = std::io::stdout().flush();
                placer.excluded.push(target.ip);
                if let Some(rp) = &resume_point {
                    eprintln!(
                        "hostd: lost node {} mid-job ({why}); continuing the job on another node from its checkpoint {} of {:.1} s ago (re-run {reruns} of {retries})",
                        target.label,
                        rp.image.number,
                        rp.image.at.elapsed().as_secs_f64()
                    );
                    image = Some(resume_from(
                        rp, &mut files, &stdin_at, &mut start, a.verbose,
                    )?);
                    continue;
                }
                eprintln!(
                    "hostd: lost node {} mid-job ({why}); running the job again on another node (re-run {reruns} of {retries}; --no-retry stops at a lost node)",
                    target.label
                );
                let r = files.roll_back()?;
                if a.verbose {
                    eprintln!(
                        "hostd: job directory rolled back to the job's start: {} path(s) removed, {} restored ({} bytes)",
                        r.removed, r.restored, r.bytes
                    );
                }
            }
            Served::Lost(why) | Served::Moved(why) => break (job.lost(&why), job, target, t1),
        }
    };
    let run = job.accepted_at.map(|t| t.elapsed());
    let upload = job
        .accepted_at
        .map(|t| t.duration_since(t1))
        .unwrap_or_default();
    let (placements, placement) = (placer.placements, placer.time);
    if a.json {
        let summary = SubmitSummary {
            node: SummaryNode {
                id: job.node.as_ref().map(|n| n.0.clone()),
                name: job.node.as_ref().map(|n| n.1.clone()),
                address: target.ip,
            },
            job: job.node.as_ref().map(|n| n.2),
            placements,
            timings_ms: SummaryTimings {
                placement: ms(placement),
                upload: ms(upload),
                run: run.map_or(0.0, ms),
            },
            status: code,
        };
        eprintln!("{}", serde_json::to_string(&summary)?);
    }
    if a.verbose {
        eprintln!(
            "hostd: timings: placement {:.1} ms, upload {:.1} ms, run {:.1} ms; exit status {code}",
            ms(placement),
            ms(upload),
            run.map_or(0.0, ms)
        );
    }
    Ok(ExitCode::from(code))
}

/// Prepares a run that continues from checkpoint `rp`: rolls the job
/// directory and open files back to it, sets stdin to where it was, and
/// makes `start` a restore; returns the image to upload instead of the
/// program.
///
/// # Errors
/// The roll-back fails, or the image cannot be read.
fn resume_from(
    rp: &ResumePoint,
    files: &mut FileServer,
    stdin_at: &AtomicU64,
    start: &mut Start,
    verbose: bool,
) -> Result<Vec<u8>> {
    let r = files.restore_checkpoint()?;
    if verbose {
        eprintln!(
            "hostd: job directory rolled back to the checkpoint: {} path(s) removed, {} restored ({} bytes)",
            r.removed, r.restored, r.bytes
        );
    }
    let bytes = std::fs::read(&rp.image.path)
        .with_context(|| format!("reading the checkpoint {}", rp.image.path.display()))?;
    stdin_at.store(rp.stdin_at, Ordering::SeqCst);
    start.restore = true;
    start.program_len = bytes.len() as u64;
    Ok(bytes)
}

/// Places a job and starts it on a node, again and again if need be
/// (see [`Placer::place_and_start`]); counts placements and their time.
#[derive(Default)]
struct Placer {
    /// Nodes not to place on again: unreachable, or lost mid-job.
    excluded: Vec<Ipv4Addr>,
    /// Placements made.
    placements: usize,
    /// `Busy` answers met.
    busy_answers: usize,
    /// Time spent placing.
    time: Duration,
    /// "trying again every second" was said.
    said_full: bool,
}

impl Placer {
    /// Chooses a node, connects, uploads `program` and waits until the node
    /// accepts or refuses it: the target, the connection, the node's first
    /// answer and when the upload began.
    ///
    /// In exclusive mode a permit reserves: the node's Companion Manager
    /// holds it for this submitter (others are denied `Reserved`) until the
    /// job starts or the reservation's lease ends. A node may still answer
    /// `Busy` (the lease ran out during a long upload, or a `--node` job got
    /// there first); the job is then placed again with that node in the
    /// running (it now counts the other job, so it denies, or permits once
    /// free). After MAX_PLACEMENTS such answers the job waits in the last
    /// node's queue. A node that cannot be reached (or does not answer
    /// within BUSY_AFTER) is placed again without. `--node` and balance mode
    /// wait in the node's queue.
    ///
    /// # Errors
    /// No node found, or the last node unreachable.
    fn place_and_start(
        &mut self,
        socket: &Path,
        a: &SubmitArgs,
        start: &mut Start,
        program: &[u8],
    ) -> Result<(Target, Conn, (NodeMsg, Decoder), Instant)> {
        let placing = a.node.is_none();
        loop {
            let t0 = Instant::now();
            let target = choose_node(socket, a, program.len() as u64, &self.excluded)?;
            self.placements += 1;
            self.time += t0.elapsed();
            if a.verbose {
                eprintln!(
                    "hostd: node {} chosen in {:.1} ms",
                    target.label,
                    ms(t0.elapsed())
                );
            }
            let t1 = Instant::now();
            let may_move = placing
                && self.excluded.len() + 1 < MAX_PLACEMENTS
                && self.busy_answers + 1 < MAX_PLACEMENTS;
            let busy_after = (may_move && a.mode == ModeArg::Exclusive).then_some(BUSY_AFTER);
            start.queue = busy_after.is_none();
            match connect_upload(&target, start, program, busy_after, a.verbose) {
                Upload::Started(conn, first, decoder) => {
                    return Ok((target, conn, (first, decoder), t1));
                }
                Upload::Busy(reason) if !start.queue => {
                    eprintln!(
                        "hostd: node {} is busy ({reason}); placing again",
                        target.label
                    );
                    self.busy_answers += 1;
                    pause_before_retry();
                }
                Upload::Busy(reason) => {
                    if !self.said_full {
                        eprintln!(
                            "hostd: node {} is busy ({reason}); trying again every second",
                            target.label
                        );
                        self.said_full = true;
                    }
                    pause_before_retry();
                }
                Upload::Unreachable(e) if may_move => {
                    eprintln!("hostd: {e:#}; placing again without that node");
                    self.excluded.push(target.ip);
                }
                Upload::Unreachable(e) => return Err(e),
            }
        }
    }
}

/// `hostd submit --json`'s summary, printed as one line of JSON at the end of
/// stderr. A stable shape:
/// `{"node":{"id":"52:54:00:53:4e:00","name":"lively-finch-4e00","address":"169.254.86.160"},`
/// `"job":3,"placements":1,"timings_ms":{"placement":1.8,"upload":7.2,"run":5.1},"status":0}`.
/// `id`, `name` and `job` are `null` when the node never accepted the job
/// (refused, lost before the start).
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SubmitSummary {
    /// The node the job went to.
    pub node: SummaryNode,
    /// The job's number on that node.
    pub job: Option<u64>,
    /// Placements tried (more than 1 when busy or unreachable nodes were
    /// passed over).
    pub placements: usize,
    /// Where the time went, in milliseconds.
    pub timings_ms: SummaryTimings,
    /// hostd's exit status: the job's shell status (128 + signal for a
    /// fault), 126 refused, 124 timed out, 255 node lost.
    pub status: u8,
}

/// The node of a [`SubmitSummary`].
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SummaryNode {
    /// Its id (MAC address form).
    pub id: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// Its IPv4 address.
    pub address: Ipv4Addr,
}

/// The timings of a [`SubmitSummary`], in milliseconds.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SummaryTimings {
    /// Finding the node (all placements).
    pub placement: f64,
    /// Connecting and sending the program until the node accepted it.
    pub upload: f64,
    /// From the start to the end of the program.
    pub run: f64,
}

/// A job's connection: the socket (read here), the sending side shared by
/// the threads that send, and the receiving side.
type Conn = (TcpStream, Arc<Mutex<FrameWriter>>, FrameReader);

/// How [`connect_upload`] ended.
enum Upload {
    /// The node answered `Accepted` or `Refused`: the connection (socket,
    /// sending and receiving sides), that answer, and the decoder holding
    /// what followed it.
    Started(Conn, NodeMsg, Decoder),
    /// The node is busy: it said so, or did not answer within `busy_after`.
    Busy(String),
    /// The node could not be reached, or broke the connection.
    Unreachable(anyhow::Error),
}

/// Connects to `target`, sends `Start` and the program, and waits until the
/// node answers (`Accepted` or `Refused`).
/// With `busy_after`, a node that has not answered by then is busy. Without,
/// it waits as long as the node lives (TCP keepalive notices a vanished
/// node). The program is sent by a second thread, so an early answer (`Busy`,
/// or `Refused` before the whole program was taken) is read at once.
fn connect_upload(
    target: &Target,
    start: &Start,
    program: &[u8],
    busy_after: Option<Duration>,
    verbose: bool,
) -> Upload {
    let addr = SocketAddrV4::new(target.ip, JOB_PORT);
    let stream = match TcpStream::connect_timeout(&addr.into(), CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            return Upload::Unreachable(
                anyhow::Error::new(e)
                    .context(format!("cannot reach node {} at {addr}", target.label)),
            );
        }
    };
    let _ = stream.set_nodelay(true);
    // Notice a vanished node within seconds even when the job is silent.
    let _ = setsockopt(&stream, sockopt::KeepAlive, &true);
    let _ = setsockopt(&stream, sockopt::TcpKeepIdle, &2);
    let _ = setsockopt(&stream, sockopt::TcpKeepInterval, &1);
    let _ = setsockopt(&stream, sockopt::TcpKeepCount, &4);
    // …and when data it was sent goes unacknowledged (a file reply to a node
    // that died): keepalive only probes an idle connection.
    let _ = setsockopt(&stream, sockopt::TcpUserTimeout, &10_000);
    let lost = |e: std::io::Error, doing: &str| {
        Upload::Unreachable(anyhow::Error::new(e).context(format!("{doing} node {}", target.label)))
    };
    // The cluster key's handshake (nothing at all in an open group): the
    // node proves it holds the key before a byte of the job leaves.
    let (writer, mut reader) =
        match jobconn::open(&stream, keys::current().keys.as_ref(), &target.label) {
            Ok(sides) => sides,
            Err(e) => {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return Upload::Unreachable(e);
            }
        };
    let writer = Arc::new(Mutex::new(writer));
    // When the last program byte was handed to TCP: a free node answers
    // once it has the whole program, so "no answer" counts from then (a
    // busy node answers the Start at once).
    let uploaded = std::sync::OnceLock::<Instant>::new();
    std::thread::scope(|scope| {
        let uploaded = &uploaded;
        let upload = writer.clone();
        scope.spawn(move || -> std::io::Result<()> {
            let send = |frame: &[u8]| {
                upload
                    .lock()
                    .map_err(|_| std::io::Error::other("writer poisoned"))?
                    .send_frame(frame)
            };
            send(&job::encode(&HostMsg::Start(start.clone())).map_err(std::io::Error::other)?)?;
            for chunk in program.chunks(CHUNK) {
                let frame = job::encode(&HostMsg::Program(chunk.to_vec()))
                    .map_err(std::io::Error::other)?;
                send(&frame)?;
            }
            let _ = uploaded.set(Instant::now());
            Ok(())
        });
        // Whatever ends the wait but an answer that starts the job also ends
        // the upload, so the sending thread never outlives this scope.
        let give_up = |stream: &TcpStream| {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        };
        if let Err(e) = stream.set_read_timeout(Some(Duration::from_millis(100))) {
            give_up(&stream);
            return lost(e, "waiting for");
        }
        let mut decoder = Decoder::new();
        let mut buf = [0u8; 4096];
        let mut said = false;
        loop {
            match decoder.next_msg::<NodeMsg>() {
                Ok(Some(NodeMsg::Busy { reason })) => {
                    give_up(&stream);
                    return Upload::Busy(reason);
                }
                Ok(Some(first)) => {
                    if matches!(first, NodeMsg::Refused { .. }) {
                        // The node stopped reading: stop sending.
                        let _ = stream.shutdown(std::net::Shutdown::Write);
                    }
                    return Upload::Started((stream, writer, reader), first, decoder);
                }
                Ok(None) => {}
                Err(e) => {
                    give_up(&stream);
                    return Upload::Unreachable(anyhow::anyhow!(
                        "node {} sent a bad frame: {e}",
                        target.label
                    ));
                }
            }
            match (&stream).read(&mut buf) {
                Ok(0) => {
                    give_up(&stream);
                    return Upload::Unreachable(anyhow::anyhow!(
                        "node {} closed the connection before accepting the job",
                        target.label
                    ));
                }
                Ok(n) => {
                    // Look at what came before any limit: an answer that
                    // arrived in time counts.
                    if let Err(e) = reader.take(&buf[..n], &mut decoder) {
                        give_up(&stream);
                        return Upload::Unreachable(anyhow::anyhow!(
                            "node {}: the connection failed authentication ({e})",
                            target.label
                        ));
                    }
                    continue;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    give_up(&stream);
                    return lost(e, "waiting for");
                }
            }
            if interrupted_before_start() {
                eprintln!("hostd: interrupted before the job started");
                std::process::exit(130);
            }
            let waited = uploaded.get().map_or(Duration::ZERO, Instant::elapsed);
            match busy_after {
                Some(limit) if waited > limit => {
                    give_up(&stream);
                    return Upload::Busy(format!("no answer within {:.0} s", limit.as_secs_f64()));
                }
                None if !said && verbose && waited > BUSY_AFTER => {
                    eprintln!(
                        "hostd: node {} is busy with another job; waiting for it",
                        target.label
                    );
                    said = true;
                }
                _ => {}
            }
        }
    })
}

/// Waits a second before trying again, leaving (status 130) on Ctrl-C.
fn pause_before_retry() {
    for _ in 0..10 {
        if interrupted_before_start() {
            eprintln!("hostd: interrupted before the job started");
            std::process::exit(130);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Places the job (or looks up `--node`), never choosing an `excluded`
/// address.
fn choose_node(
    socket: &Path,
    a: &SubmitArgs,
    program_size: u64,
    excluded: &[Ipv4Addr],
) -> Result<Target> {
    if let Some(node) = &a.node {
        let row = match NodeChoice::parse(node) {
            NodeChoice::Address(ip) => {
                return Ok(Target {
                    ip,
                    label: ip.to_string(),
                });
            }
            choice => find_node(socket, &a.find, &choice)?,
        };
        return Ok(Target {
            ip: row.address,
            label: report::node_label(&row.name, row.id, row.address),
        });
    }
    let job = JobSpec {
        program_size,
        memory: a
            .memory
            .checked_mul(1 << 20)
            .context("--memory is too large")?,
        mode: a.mode.into(),
        cpus: a.cpus,
    };
    let opts = PlaceOpts {
        exclude: excluded.to_vec(),
        take: true,
        wait: !a.no_wait,
        wait_timeout: a.wait_timeout.map(Duration::from_secs_f64),
        verbose: a.verbose,
        interrupted: Some(interrupted_before_start),
    };
    let outcome = place_job(socket, &a.find, job, a.weights.unwrap_or_default(), &opts)?;
    if a.verbose {
        eprint!("{}", report::format_placement(&outcome));
    }
    let Some(best) = outcome
        .ranked
        .iter()
        .find(|r| !excluded.contains(&r.address))
    else {
        let hint = if outcome.may_free_up() {
            "; try again later, or without --no-wait to wait for a node"
        } else {
            "; no node has room for it (see --memory and --cpus)"
        };
        bail!(
            "no node can take this job now ({}){hint}",
            outcome.why_none()
        );
    };
    Ok(Target {
        ip: best.address,
        label: report::node_label(&best.name, best.id, best.address),
    })
}

/// The `Start` message for this job.
fn start_message(a: &SubmitArgs, program: &[u8], dir: &[u8]) -> Result<Start> {
    let mut argv = vec![a.program.as_os_str().as_bytes().to_vec()];
    argv.extend(a.args.iter().map(|s| s.as_bytes().to_vec()));
    let mut envp: Vec<Vec<u8>> = if a.env_clear {
        Vec::new()
    } else {
        std::env::vars_os()
            .map(|(k, v)| {
                let mut e = k.into_vec();
                e.push(b'=');
                e.extend(v.into_vec());
                e
            })
            .collect()
    };
    for kv in &a.env {
        let Some((k, _)) = kv.split_once('=') else {
            bail!("--env {kv}: expected NAME=value");
        };
        let prefix = format!("{k}=");
        envp.retain(|e| !e.starts_with(prefix.as_bytes()));
        envp.push(kv.as_bytes().to_vec());
    }
    let tty = [
        nix::unistd::isatty(std::io::stdin()).unwrap_or(false),
        nix::unistd::isatty(std::io::stdout()).unwrap_or(false),
        nix::unistd::isatty(std::io::stderr()).unwrap_or(false),
    ];
    let winsize = if tty[1] || tty[0] {
        terminal_size()
    } else {
        None
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let start = Start {
        version: PROTOCOL_VERSION,
        argv,
        envp,
        program_len: program.len() as u64,
        cwd: dir.to_vec(),
        tty,
        winsize,
        memory_limit: (a.memory > 0).then_some(a.memory << 20),
        max_procs: a.max_procs,
        realtime_ns: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        from: format!("{user}@{host}"),
        queue: true,
        exclusive: a.mode == ModeArg::Exclusive,
        restore: false,
        exe: std::fs::canonicalize(&a.program)
            .map(|p| p.into_os_string().into_vec())
            .unwrap_or_default(),
    };
    let encoded = job::encode(&HostMsg::Start(start.clone()));
    if let Err(e) = encoded {
        bail!("the arguments and environment are too large to send ({e}); try --env-clear");
    }
    Ok(start)
}

/// The terminal's size from `stty size` (rows, columns).
fn terminal_size() -> Option<Winsize> {
    let out = std::process::Command::new("stty")
        .arg("size")
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|s| s.parse::<u16>());
    let (Some(Ok(rows)), Some(Ok(cols))) = (it.next(), it.next()) else {
        return None;
    };
    Some(Winsize {
        rows,
        cols,
        xpixel: 0,
        ypixel: 0,
    })
}

/// Sends one message (whole frame under the lock).
fn send(writer: &Mutex<FrameWriter>, msg: &HostMsg) -> Result<()> {
    let frame = job::encode(msg)?;
    let mut w = writer
        .lock()
        .map_err(|_| anyhow::anyhow!("writer poisoned"))?;
    w.send_frame(&frame).context("sending to the node")?;
    Ok(())
}

/// This process's stdin, read as jobs ask for it; kept whole when the job
/// may be re-run (a re-run reads it again from the start), else dropped as
/// it is handed on.
struct StdinTape {
    state: Mutex<TapeState>,
}

struct TapeState {
    /// Bytes read and not dropped; `buf[0]` is stdin's byte `base`.
    buf: Vec<u8>,
    base: u64,
    eof: bool,
    keep: bool,
}

impl StdinTape {
    fn new(keep: bool) -> StdinTape {
        StdinTape {
            state: Mutex::new(TapeState {
                buf: Vec::new(),
                base: 0,
                eof: false,
                keep,
            }),
        }
    }

    /// Up to `max` bytes of stdin from byte `offset`, reading more when
    /// needed; `None` at end of file (or a read error).
    fn read_at(&self, offset: u64, max: usize) -> Option<Vec<u8>> {
        let mut st = self.state.lock().ok()?;
        loop {
            let end = st.base + st.buf.len() as u64;
            if offset < end {
                let from = usize::try_from(offset.saturating_sub(st.base)).ok()?;
                let to = (from + max).min(st.buf.len());
                let chunk = st.buf[from..to].to_vec();
                if !st.keep {
                    st.buf.drain(..to);
                    st.base += to as u64;
                }
                return Some(chunk);
            }
            if st.eof {
                return None;
            }
            let mut more = vec![0u8; CHUNK];
            match std::io::stdin().lock().read(&mut more) {
                Ok(0) => st.eof = true,
                Ok(n) => st.buf.extend_from_slice(&more[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => st.eof = true,
            }
        }
    }
}

/// Gives the job stdin when it asks for it, from byte `at` of `tape`
/// (counting there what it handed out).
fn stdin_pump(
    asks: mpsc::Receiver<u32>,
    writer: Arc<Mutex<FrameWriter>>,
    tape: Arc<StdinTape>,
    at: Arc<AtomicU64>,
) {
    while let Ok(max) = asks.recv() {
        let n = (max as usize).clamp(1, CHUNK);
        let offset = at.load(Ordering::SeqCst);
        let msg = match tape.read_at(offset, n) {
            Some(b) => {
                at.store(offset + b.len() as u64, Ordering::SeqCst);
                HostMsg::Stdin(b)
            }
            None => HostMsg::StdinEof,
        };
        let eof = msg == HostMsg::StdinEof;
        if send(&writer, &msg).is_err() || eof {
            return;
        }
    }
}

/// The connection of a running job to its node (not to be confused with
/// [`crate::Session`], `hostd`'s membership in the group).
struct JobConnection {
    /// The node's id, name and job number, from `Accepted`.
    node: Option<(String, String, u64)>,
    stream: TcpStream,
    writer: Arc<Mutex<FrameWriter>>,
    reader: FrameReader,
    /// The node's first answer, read while uploading.
    first: Option<NodeMsg>,
    decoder: Decoder,
    accepted_at: Option<Instant>,
    upload_started: Instant,
    killed: bool,
    timed_out: bool,
    interrupts_seen: usize,
    /// Ctrl-C's `SIGINT` was passed to the job (the next press kills it).
    sigint_sent: bool,
    timeout: Option<Duration>,
    label: String,
    verbose: bool,
    /// Stdout and stderr: what earlier runs of the job showed already.
    output: [Shown; 2],
    /// `--checkpoint`: asking for them and receiving them.
    checkpoints: Option<Checkpoints>,
    /// The last complete checkpoint and what it saw.
    resume_point: Option<ResumePoint>,
    /// Stdin bytes handed to the job so far (by the stdin pump).
    stdin_at: Arc<AtomicU64>,
}

/// A checkpoint a lost job can continue from, and the job's state around
/// it on this side: how far each output stream was, how much stdin the
/// job had been given.
struct ResumePoint {
    image: Image,
    output: [Mark; 2],
    stdin_at: u64,
}

/// How a job's connection ended.
enum Served {
    /// The job ended with this exit status (`hostd submit`'s own).
    Exited(u8),
    /// The node was lost (the reason): the job may be re-run.
    Lost(String),
    /// The node left the group (the reason) and sent a checkpoint just
    /// before: the job continues elsewhere.
    Moved(String),
}

/// One output stream of a job that may run more than once: a re-run's
/// first bytes were shown already by the run before and are not shown
/// again (a job re-run from the same start writes the same bytes; a hash
/// of the shown prefix checks it).
#[derive(Clone, Debug, Default)]
struct Shown {
    /// Bytes shown so far, by all runs.
    shown: u64,
    /// Their hash.
    shown_hash: std::hash::DefaultHasher,
    /// Bytes this run produced.
    seen: u64,
    /// Hash of this run's first `shown` bytes (while `seen < shown`).
    seen_hash: std::hash::DefaultHasher,
    /// This run's output differs from what was shown (said once).
    differs: bool,
}

/// How far a run's output stream was at a checkpoint: its byte count and
/// the hash of those bytes.
#[derive(Clone, Debug)]
struct Mark {
    at: u64,
    hash: std::hash::DefaultHasher,
}

impl Shown {
    /// Where this run's stream is now.
    fn mark(&self) -> Mark {
        Mark {
            at: self.seen,
            hash: if self.seen >= self.shown {
                self.shown_hash.clone()
            } else {
                self.seen_hash.clone()
            },
        }
    }

    /// The state for a run that continues from a checkpoint taken at
    /// `mark`: its first byte is the stream's byte `mark.at`.
    fn resume_at(&self, mark: &Mark) -> Shown {
        Shown {
            shown: self.shown,
            shown_hash: self.shown_hash.clone(),
            seen: mark.at,
            seen_hash: mark.hash.clone(),
            differs: false,
        }
    }

    /// The state for the next run: everything shown stays shown.
    fn next_run(&self) -> Shown {
        Shown {
            shown: self.shown,
            shown_hash: self.shown_hash.clone(),
            ..Shown::default()
        }
    }

    /// The part of `b` (this run's next bytes) not shown yet.
    fn fresh<'a>(&mut self, b: &'a [u8]) -> &'a [u8] {
        use std::hash::Hasher;
        let already = usize::try_from(self.shown.saturating_sub(self.seen))
            .unwrap_or(usize::MAX)
            .min(b.len());
        if already > 0 {
            self.seen_hash.write(&b[..already]);
            if self.seen + already as u64 == self.shown
                && self.seen_hash.finish() != self.shown_hash.finish()
                && !self.differs
            {
                self.differs = true;
                eprintln!(
                    "hostd: note: the re-run's first {} bytes of output differ from the first run's, which were shown; the rest is the re-run's",
                    self.shown
                );
            }
        }
        self.seen += b.len() as u64;
        let fresh = &b[already..];
        self.shown_hash.write(fresh);
        self.shown += fresh.len() as u64;
        fresh
    }
}

impl JobConnection {
    /// Serves the job to its end: its exit status, or why its node was
    /// lost.
    fn serve(&mut self, files: &mut FileServer, stdin: &mpsc::Sender<u32>) -> Result<Served> {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut buf = vec![0u8; 128 * 1024];
        let mut stdout = std::io::stdout();
        let mut stderr = std::io::stderr();
        loop {
            loop {
                let next = match self.first.take() {
                    Some(m) => Some(m),
                    None => self.decoder.next_msg::<NodeMsg>().map_err(|e| {
                        anyhow::anyhow!("node {} sent a bad frame: {e}", self.label)
                    })?,
                };
                let Some(msg) = next else { break };
                match msg {
                    NodeMsg::Accepted {
                        node,
                        name,
                        job,
                        memory_limit,
                    } => {
                        self.accepted_at = Some(Instant::now());
                        self.node = Some((node.clone(), name.clone(), job));
                        if self.verbose {
                            eprintln!(
                                "hostd: job {job} accepted by {name} ({node}), memory limit {} MiB, upload {:.1} ms",
                                memory_limit >> 20,
                                ms(self.upload_started.elapsed())
                            );
                        }
                    }
                    NodeMsg::Refused { reason } => {
                        let _ = stdout.flush();
                        eprintln!("hostd: node {} refused the program: {reason}", self.label);
                        return Ok(Served::Exited(EXIT_REFUSED));
                    }
                    NodeMsg::Busy { reason } => {
                        bail!("node {} said it is busy mid-job: {reason}", self.label)
                    }
                    NodeMsg::Jobs(_) | NodeMsg::Cancelled { .. } | NodeMsg::Leaving { .. } => {
                        bail!("node {} sent a job list to a running job", self.label)
                    }
                    NodeMsg::Moved { reason } => return Ok(Served::Moved(reason)),
                    NodeMsg::Stdout(b) => {
                        let _ = stdout.write_all(self.output[0].fresh(&b));
                        let _ = stdout.flush();
                    }
                    NodeMsg::Stderr(b) => {
                        let _ = stderr.write_all(self.output[1].fresh(&b));
                        let _ = stderr.flush();
                    }
                    NodeMsg::StdinWanted { max } => {
                        let _ = stdin.send(max);
                    }
                    NodeMsg::File { id, request } => {
                        let reply = files.serve(id, request);
                        send(&self.writer, &HostMsg::FileReply(reply))?;
                    }
                    NodeMsg::Checkpoint(part) => self.checkpoint_part(part, files),
                    NodeMsg::Exited {
                        status,
                        killed,
                        unsupported,
                    } => {
                        let _ = stdout.flush();
                        if self.verbose && !unsupported.is_empty() {
                            eprintln!(
                                "hostd: system calls the job made that SiON does not serve (ENOSYS): {}",
                                unsupported.join(", ")
                            );
                        }
                        if killed > 0 {
                            eprintln!(
                                "hostd: the job's first process ended; {killed} process{} of the job still running {} killed",
                                if killed == 1 { "" } else { "es" },
                                if killed == 1 { "was" } else { "were" }
                            );
                        }
                        let status = wait_status(status);
                        if let (true, WaitStatus::Signaled(sig)) = (self.verbose, status) {
                            eprintln!(
                                "hostd: the job ended by signal {sig} (status {})",
                                status.shell_status()
                            );
                        }
                        if self.timed_out {
                            return Ok(Served::Exited(EXIT_TIMEOUT));
                        }
                        return Ok(Served::Exited(status.shell_status()));
                    }
                }
            }
            self.check_interrupts()?;
            if self.accepted_at.is_some()
                && !self.killed
                && self.checkpoints.as_mut().is_some_and(Checkpoints::due)
            {
                send(&self.writer, &HostMsg::Checkpoint)?;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(Served::Lost("it closed the connection".into())),
                Ok(n) => {
                    if let Err(e) = self.reader.take(&buf[..n], &mut self.decoder) {
                        return Ok(Served::Lost(format!(
                            "the connection failed authentication: {e}"
                        )));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) && e.raw_os_error() != Some(nix::libc::ETIMEDOUT) => {}
                Err(e) => return Ok(Served::Lost(e.to_string())),
            }
        }
    }

    /// A piece of a checkpoint from the node. Once one is complete, the
    /// job directory's undo log starts again from here, the open files are
    /// kept as they are, and the output and stdin positions are noted: a
    /// run continuing from it starts from this very point.
    fn checkpoint_part(&mut self, part: CheckpointPart, files: &mut FileServer) {
        let Some(c) = self.checkpoints.as_mut() else {
            return;
        };
        match c.take(part) {
            Ok(Some(image)) => {
                if let Err(e) = files.checkpoint() {
                    eprintln!("hostd: checkpoint {} not kept: {e:#}", image.number);
                    return;
                }
                if self.verbose {
                    eprintln!(
                        "hostd: checkpoint {}: {:.1} MiB of memory, {:.1} MiB image, received in {:.0} ms",
                        image.number,
                        image.memory as f64 / 1048576.0,
                        image.len as f64 / 1048576.0,
                        ms(image.took)
                    );
                }
                self.resume_point = Some(ResumePoint {
                    image,
                    output: [self.output[0].mark(), self.output[1].mark()],
                    stdin_at: self.stdin_at.load(Ordering::SeqCst),
                });
            }
            Ok(None) => {
                if let Some(why) = &c.refused
                    && self.resume_point.is_none()
                {
                    eprintln!(
                        "hostd: the job cannot be checkpointed ({why}); if its node is lost it runs again from the start"
                    );
                }
            }
            Err(e) => eprintln!("hostd: a checkpoint was dropped: {e:#}"),
        }
    }

    /// Ctrl-C, the signals passed on, and `--timeout`.
    fn check_interrupts(&mut self) -> Result<()> {
        let n = INTERRUPT_COUNT.load(Ordering::SeqCst);
        if n > self.interrupts_seen {
            self.interrupts_seen = n;
            if self.killed {
                eprintln!("hostd: interrupted again; not waiting for the node");
                std::process::exit(130);
            }
            if self.sigint_sent {
                eprintln!("hostd: interrupt: killing the job on {}", self.label);
                self.kill()?;
            } else {
                eprintln!(
                    "hostd: interrupt: SIGINT sent to the job on {} (Ctrl-C again kills it)",
                    self.label
                );
                self.sigint_sent = true;
                send(&self.writer, &HostMsg::Signal(nix::libc::SIGINT))?;
            }
        }
        let pending = PENDING_SIGNALS.swap(0, Ordering::SeqCst);
        for sig in PASSED_SIGNALS {
            if pending & (1 << sig) != 0 && !self.killed {
                send(&self.writer, &HostMsg::Signal(sig))?;
            }
        }
        if let (Some(limit), Some(at)) = (self.timeout, self.accepted_at)
            && !self.killed
            && at.elapsed() > limit
        {
            eprintln!(
                "hostd: the job ran longer than {:.1} s: killing it",
                limit.as_secs_f64()
            );
            self.timed_out = true;
            self.kill()?;
        }
        Ok(())
    }

    fn kill(&mut self) -> Result<()> {
        self.killed = true;
        send(&self.writer, &HostMsg::Kill)
    }

    fn lost(&self, why: &str) -> u8 {
        let _ = std::io::stdout().flush();
        eprintln!(
            "hostd: lost node {} mid-job ({why}); the job's outcome is unknown",
            self.label
        );
        EXIT_LOST
    }
}

/// Ctrl-C presses (`SIGINT`) received.
static INTERRUPT_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Signals received that are passed to the job (bit `n` for signal `n`).
static PENDING_SIGNALS: AtomicU64 = AtomicU64::new(0);
/// The signals besides `SIGINT` that `hostd submit` passes to its job.
const PASSED_SIGNALS: [i32; 4] = [
    nix::libc::SIGTERM,
    nix::libc::SIGHUP,
    nix::libc::SIGUSR1,
    nix::libc::SIGUSR2,
];

/// Counts Ctrl-C presses and records the signals passed to the job, from a
/// thread that `signal_hook` wakes (no work in a signal handler).
fn watch_signals() {
    let mut wanted = vec![nix::libc::SIGINT];
    wanted.extend(PASSED_SIGNALS);
    let Ok(mut signals) = signal_hook::iterator::Signals::new(&wanted) else {
        eprintln!("hostd: cannot watch signals; Ctrl-C will end hostd at once");
        return;
    };
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == nix::libc::SIGINT {
                INTERRUPT_COUNT.fetch_add(1, Ordering::SeqCst);
            } else {
                PENDING_SIGNALS.fetch_or(1 << sig, Ordering::SeqCst);
            }
        }
    });
}

/// Ctrl-C, `SIGTERM` or `SIGHUP` came before the job started.
fn interrupted_before_start() -> bool {
    let ending = (1u64 << nix::libc::SIGTERM) | (1u64 << nix::libc::SIGHUP);
    INTERRUPT_COUNT.load(Ordering::SeqCst) > 0
        || PENDING_SIGNALS.load(Ordering::SeqCst) & ending != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_shows_only_what_the_lost_run_did_not() {
        let mut first = Shown::default();
        assert_eq!(first.fresh(b"hello "), b"hello ");
        assert_eq!(first.fresh(b"wor"), b"wor");
        // The node is lost; the re-run writes the same bytes in other chunks.
        let mut again = first.next_run();
        assert_eq!(again.fresh(b"hel"), b"");
        assert_eq!(again.fresh(b"lo wo"), b"");
        assert_eq!(again.fresh(b"rld\n"), b"ld\n");
        assert!(!again.differs);
        assert_eq!(again.fresh(b"more"), b"more");
        assert_eq!(again.shown, 16);
        // A re-run that writes something else is noticed, and what it
        // writes beyond the shown prefix is shown.
        let mut other = again.next_run();
        assert_eq!(other.fresh(b"HELLO WORLD\nmore+"), b"+");
        assert!(other.differs);
    }
}
