//! The job protocol between `hostd submit` and a node's App-Program Manager:
//! one TCP connection to the node's job port (7421, `sion_abi::net::JOB_PORT`)
//! per job, carrying length-prefixed frames both ways.
//!
//! A frame is a `u32` big-endian body length followed by the body, one
//! [`HostMsg`] (host to node) or [`NodeMsg`] (node to host) encoded with
//! `postcard`. Bodies longer than [`MAX_FRAME`] are refused, so a corrupt or
//! hostile length can never make either side allocate without bound.
//!
//! A job goes like this:
//!
//! 1. `hostd` connects and sends [`HostMsg::Start`] (arguments, environment,
//!    terminal facts, limits, the program's length) then the program in
//!    [`HostMsg::Program`] chunks of at most [`CHUNK`] bytes.
//! 2. The node checks the ELF file and answers [`NodeMsg::Accepted`] (the job
//!    runs) or [`NodeMsg::Refused`] (nothing ran; the reason is the loader's
//!    message, e.g. "dynamically linked: rebuild with -static"), and closes
//!    the connection after a refusal. A node busy with another job answers
//!    [`NodeMsg::Busy`] right after `Start` unless [`Start::queue`] asks to
//!    wait for it. Every step has a deadline on the node: `Start` within
//!    10 s of connecting, program bytes never 10 s apart and, after the
//!    first 30 s, at 256 KiB/s or faster; a connection that misses one is
//!    dropped.
//! 3. While the job runs, the node sends its output ([`NodeMsg::Stdout`],
//!    [`NodeMsg::Stderr`]), asks for input when the program reads an empty
//!    stdin ([`NodeMsg::StdinWanted`], answered by [`HostMsg::Stdin`] or
//!    [`HostMsg::StdinEof`]: `hostd` reads its stdin only when asked, so a job
//!    that never reads it does not consume it), and forwards file system calls
//!    ([`NodeMsg::File`] with a [`FileRequest`], answered by
//!    [`HostMsg::FileReply`] with the same id). `hostd` may send
//!    [`HostMsg::Kill`] at any time (Ctrl-C).
//! 4. The node sends [`NodeMsg::Exited`] with the wait status and closes the
//!    connection. If the connection breaks, the node kills the job.
//!
//! File requests name files by path bytes as the program gave them, relative
//! to a [`Dir`] (the job's current directory or a directory the job opened);
//! `hostd` resolves them inside the job directory ([`crate::path::Jail`]) and
//! refuses escapes with `EACCES`. Open files are `hostd`'s handles (`u64`).
//! Results are Linux conventions: a non-negative value or `-errno`, with data
//! (bytes read, a [`FileStat`], directory entries) inline.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::exit::WaitStatus;

/// Version of this protocol; a node refuses a [`Start`] with another.
pub const PROTOCOL_VERSION: u32 = 6;

/// Largest frame body in bytes (68 KiB): a [`CHUNK`] of data plus room for the
/// message around it. Larger length prefixes are errors.
pub const MAX_FRAME: usize = 68 * 1024;

/// Largest data payload of one message in bytes (64 KiB): program chunks,
/// stdio, file data. Longer reads and writes are split (or short).
pub const CHUNK: usize = 64 * 1024;

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Why a frame could not be encoded or decoded. Never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// The length prefix (or the encoded message) exceeds [`MAX_FRAME`].
    TooLarge {
        /// The announced or encoded body length.
        len: usize,
    },
    /// The body ends before the message does, or the stream ended inside a
    /// frame.
    Truncated,
    /// The body is not a valid message (unknown variant, bad varint, bytes
    /// left over).
    Corrupt,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::TooLarge { len } => {
                write!(
                    f,
                    "job frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"
                )
            }
            ProtoError::Truncated => f.write_str("job frame truncated"),
            ProtoError::Corrupt => f.write_str("corrupt job frame"),
        }
    }
}

impl core::error::Error for ProtoError {}

/// A terminal's size (`struct winsize` of `TIOCGWINSZ`, `ioctl_tty(2)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Winsize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
    /// Width in pixels (often 0).
    pub xpixel: u16,
    /// Height in pixels (often 0).
    pub ypixel: u16,
}

/// The start of a job: everything but the program bytes, which follow in
/// [`HostMsg::Program`] chunks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Arguments, `argv[0]` first (the program name as the user gave it).
    pub argv: Vec<Vec<u8>>,
    /// Environment strings `NAME=value`.
    pub envp: Vec<Vec<u8>>,
    /// Length of the program file in bytes.
    pub program_len: u64,
    /// The job directory as an absolute host path: the program's initial
    /// working directory (what `getcwd` reports).
    pub cwd: Vec<u8>,
    /// Whether `hostd`'s stdin, stdout and stderr are terminals (`isatty(3)`):
    /// the job's stdio answers `TCGETS` only if so.
    pub tty: [bool; 3],
    /// The submitter's terminal size, if it has one.
    pub winsize: Option<Winsize>,
    /// Memory limit for the job in bytes; `None`: the node's default (what it
    /// can spare). A node lowers a larger request to what it can spare.
    pub memory_limit: Option<u64>,
    /// Most Linux processes the job may have at once (`fork` beyond:
    /// `EAGAIN`); 0: the node's default.
    pub max_procs: u32,
    /// Wall-clock time at submission, nanoseconds since the Unix epoch: the
    /// node's `CLOCK_REALTIME` is this plus the time since the job started.
    pub realtime_ns: u64,
    /// User and group id the program sees (`getuid`, `AT_UID`, ...): the
    /// submitter's, so `stat` results from the host agree.
    pub uid: u32,
    /// Group id (see `uid`).
    pub gid: u32,
    /// Who submitted the job, for the node's log (`user@host`).
    pub from: String,
    /// The program's canonical absolute path on the submitting host: what
    /// `readlink("/proc/self/exe")` answers (static glibc insists on an
    /// absolute path). Empty: the node derives one from `cwd` and `argv[0]`.
    pub exe: Vec<u8>,
    /// When the node is busy with another job: `true` waits in its queue
    /// (`hostd submit --node`, balance mode), `false` gets [`NodeMsg::Busy`]
    /// at once so `hostd` can place the job elsewhere (exclusive mode).
    pub queue: bool,
    /// The job owns the node (`hostd submit --mode exclusive`): it starts
    /// only on an idle node and no other job starts beside it. `false`
    /// (balance mode): it runs beside other balance jobs, up to one per
    /// CPU of the node.
    pub exclusive: bool,
    /// The bytes that follow are not a program but a checkpoint image
    /// ([`crate::checkpoint`]) that a node sent earlier: the job continues
    /// from it (`hostd submit --checkpoint`, after its node was lost).
    /// `argv`, `envp` and `exe` are then only for the node's log.
    pub restore: bool,
}

/// A message from `hostd` to the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostMsg {
    /// Start a job (first message).
    Start(Start),
    /// The next bytes of the program (at most [`CHUNK`]), after `Start`.
    Program(Vec<u8>),
    /// Bytes for the job's stdin, answering [`NodeMsg::StdinWanted`].
    Stdin(Vec<u8>),
    /// `hostd`'s stdin is at its end.
    StdinEof,
    /// Kill the job (the user pressed Ctrl-C twice): it ends with `SIGINT`.
    Kill,
    /// The answer to [`NodeMsg::File`].
    FileReply(FileReply),
    /// Instead of `Start`, as a connection's first message: which jobs does
    /// the node have? Answered by [`NodeMsg::Jobs`], then the node closes.
    List {
        /// [`PROTOCOL_VERSION`].
        version: u32,
    },
    /// Instead of `Start`: end job `job` of this node (running: killed with
    /// `SIGKILL`, its submitter sees status 137; waiting: dropped). Answered
    /// by [`NodeMsg::Cancelled`].
    Cancel {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// The job's number on the node.
        job: u64,
        /// Who asks (`user@host`), for the node's log.
        by: String,
    },
    /// Deliver this Linux signal to the job's process group (its first
    /// process's): what the submitter received (Ctrl-C's `SIGINT`,
    /// `SIGTERM`, `SIGHUP`, `SIGUSR1`, `SIGUSR2`), as a shell passes a
    /// terminal's signal to its foreground job.
    Signal(i32),
    /// Instead of `Start`: the node leaves the group gracefully (`hostd
    /// drain`): it takes no new job, its Companion Manager says goodbye to
    /// the group, and its running job is checkpointed and sent back to its
    /// submitter to continue elsewhere ([`NodeMsg::Moved`]) or, if it
    /// cannot be checkpointed, runs to its end. Answered by
    /// [`NodeMsg::Leaving`], then the node closes. The node rejoins when it
    /// boots again.
    Leave {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// Who asks (`user@host`), for the node's log.
        by: String,
    },
    /// Take a checkpoint of the job at the next point where it can be taken
    /// and send it ([`NodeMsg::Checkpoint`]); ignored while one is being
    /// taken.
    Checkpoint,
}

/// What a job on a node is doing ([`JobInfo::state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Its program is arriving.
    Uploading,
    /// It waits for the node (another job runs).
    Waiting,
    /// It runs.
    Running,
    /// It ended with this wait status (`wait(2)`).
    Exited(i32),
    /// It was cancelled (`hostd cancel`).
    Cancelled,
}

/// One job of a node, as [`NodeMsg::Jobs`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// Its number on the node.
    pub job: u64,
    /// Its command line as the submitter gave it (shortened to about 80
    /// characters).
    pub program: String,
    /// Who submitted it (`user@host`).
    pub from: String,
    /// What it is doing.
    pub state: JobState,
    /// Since it arrived (waiting, uploading), started (running), or how long
    /// it ran (ended), in milliseconds.
    pub elapsed_ms: u64,
}

/// A message from the node to `hostd`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeMsg {
    /// The answer to [`HostMsg::List`]: the running job, the jobs waiting or
    /// uploading, and the last jobs that ended, most recent first.
    Jobs(Vec<JobInfo>),
    /// The answer to [`HostMsg::Cancel`]: whether that job was found (and
    /// ended).
    Cancelled {
        /// The job's number.
        job: u64,
        /// It was running or waiting, and is now ended.
        found: bool,
    },
    /// The program was accepted and is starting.
    Accepted {
        /// The node's id (its MAC address, `52:54:00:12:34:56`).
        node: String,
        /// The node's name (`amber-otter-3456`).
        name: String,
        /// The job's number on that node (1, 2, ...).
        job: u64,
        /// The memory limit applied, in bytes.
        memory_limit: u64,
    },
    /// The job was refused and nothing ran; `reason` says what is wrong and
    /// what to do.
    Refused {
        /// One line, e.g. "dynamically linked: ... rebuild with -static".
        reason: String,
    },
    /// The node cannot take the job now and nothing ran: another job runs
    /// and [`Start::queue`] was not set, or the node's queue is full. `hostd`
    /// places the job elsewhere or tries again later.
    Busy {
        /// One line, e.g. "another job is running".
        reason: String,
    },
    /// Bytes the program wrote to its stdout.
    Stdout(Vec<u8>),
    /// Bytes the program wrote to its stderr.
    Stderr(Vec<u8>),
    /// The program reads stdin and nothing is buffered: send up to `max`
    /// bytes ([`HostMsg::Stdin`]) or [`HostMsg::StdinEof`].
    StdinWanted {
        /// Most bytes wanted.
        max: u32,
    },
    /// A forwarded file system call; answer with a [`HostMsg::FileReply`] of
    /// the same `id`.
    File {
        /// Request id (increasing).
        id: u64,
        /// What to do.
        request: FileRequest,
    },
    /// The program ended.
    Exited {
        /// Its wait status (`wait(2)`): `code << 8` for an exit, the signal
        /// number for a kill or fault, plus `0x80` when it dumped core. See
        /// [`wait_status`] and [`shell_status`].
        status: i32,
        /// Processes of the job still running when its first process ended,
        /// which the node killed (a batch job step's end).
        killed: u32,
        /// The system calls the job made that SiON does not serve (answered
        /// `ENOSYS`), by name, for `hostd submit --verbose`.
        unsupported: Vec<String>,
    },
    /// The answer to [`HostMsg::Leave`]: the node is leaving the group; the
    /// job it runs, if any (it moves or ends there, see `Leave`).
    Leaving {
        /// The running job's number.
        running: Option<u64>,
    },
    /// The node leaves the group: the job was checkpointed (the
    /// [`NodeMsg::Checkpoint`] just before) and ended here; its submitter
    /// continues it elsewhere from that checkpoint.
    Moved {
        /// One line: why (e.g. "the node leaves the group (asked by u@pc)").
        reason: String,
    },
    /// A piece of a checkpoint, in order: `Header`, then `Pages`, then `End`
    /// (or `Refused` alone). Everything the job sent before it (output,
    /// file requests) precedes it.
    Checkpoint(CheckpointPart),
}

/// A piece of a checkpoint ([`NodeMsg::Checkpoint`]). `hostd` stores the
/// `Header` and `Pages` records as they come, each a frame body
/// (`[u32 length][postcard]`): that sequence is the checkpoint image a
/// restore uploads ([`Start::restore`], [`crate::checkpoint`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointPart {
    /// The first record: the job's state but its memory's contents
    /// ([`crate::checkpoint::Header`], postcard-encoded).
    Header(Vec<u8>),
    /// Memory contents: `data` (at most [`CHUNK`] bytes) at `addr`. Pages
    /// not sent are zero.
    Pages {
        /// Address of the first byte.
        addr: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The checkpoint is complete: `records` `Header` and `Pages` records
    /// were sent, `bytes` memory bytes in them.
    End {
        /// Records sent before this one.
        records: u64,
        /// Memory bytes in them.
        bytes: u64,
    },
    /// No checkpoint can be taken of this job (one line: why, e.g. "the
    /// job has 3 processes"); `hostd` stops asking.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Which directory a relative path is resolved from (`openat(2)` `dirfd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dir {
    /// The job's current directory (`AT_FDCWD`).
    Cwd,
    /// A directory the job opened, by `hostd`'s handle.
    Handle(u64),
}

/// A file system call forwarded to `hostd`. Paths are the program's bytes
/// (no NUL); `flags` and `mode` are Linux's (`open(2)`, `fstatat(2)`, ...).
/// The reply's `result` and `data` are given per request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileRequest {
    /// `openat(2)`: result the new handle (`>= 0`); `data` one byte, 1 if it
    /// is a directory, else 0.
    Open {
        /// Base directory.
        dir: Dir,
        /// Path.
        path: Vec<u8>,
        /// `O_*` flags (`O_CLOEXEC` is the node's business and may be set).
        flags: i32,
        /// Mode for `O_CREAT`/`O_TMPFILE`.
        mode: u32,
    },
    /// `close(2)` of a handle no descriptor refers to any more; result 0.
    Close {
        /// The handle.
        handle: u64,
    },
    /// `read(2)` of at most `len` (`<=` [`CHUNK`]) bytes at the handle's
    /// offset; result the count, `data` the bytes.
    Read {
        /// The handle.
        handle: u64,
        /// Most bytes.
        len: u32,
    },
    /// `write(2)` at the handle's offset; result the count written.
    Write {
        /// The handle.
        handle: u64,
        /// The bytes (`<=` [`CHUNK`]).
        data: Vec<u8>,
    },
    /// `pread64(2)`; result and data as [`FileRequest::Read`].
    Pread {
        /// The handle.
        handle: u64,
        /// Most bytes.
        len: u32,
        /// File offset.
        offset: i64,
    },
    /// `pwrite64(2)`; result the count written.
    Pwrite {
        /// The handle.
        handle: u64,
        /// The bytes.
        data: Vec<u8>,
        /// File offset.
        offset: i64,
    },
    /// `lseek(2)`; result the new offset.
    Lseek {
        /// The handle.
        handle: u64,
        /// Offset.
        offset: i64,
        /// `SEEK_SET` 0, `SEEK_CUR` 1, `SEEK_END` 2 (`SEEK_DATA`/`SEEK_HOLE`
        /// too).
        whence: u32,
    },
    /// `fstatat(2)` (`stat`, `lstat`, `newfstatat`, `fstatat64`): result 0,
    /// `data` a postcard-encoded [`FileStat`].
    Stat {
        /// Base directory.
        dir: Dir,
        /// Path (empty with `AT_EMPTY_PATH`: the directory handle itself).
        path: Vec<u8>,
        /// `AT_SYMLINK_NOFOLLOW` (0x100), `AT_EMPTY_PATH` (0x1000).
        flags: i32,
    },
    /// `fstat(2)` of a handle; result and data as [`FileRequest::Stat`].
    Fstat {
        /// The handle.
        handle: u64,
    },
    /// `faccessat2(2)`: result 0 or `-errno`.
    Access {
        /// Base directory.
        dir: Dir,
        /// Path.
        path: Vec<u8>,
        /// `F_OK` 0, or `R_OK` 4 | `W_OK` 2 | `X_OK` 1.
        mode: i32,
        /// `AT_SYMLINK_NOFOLLOW`, `AT_EACCESS`, `AT_EMPTY_PATH`.
        flags: i32,
    },
    /// `readlinkat(2)`: result the length, `data` the target (at most `len`
    /// bytes, not NUL-terminated).
    Readlink {
        /// Base directory.
        dir: Dir,
        /// Path.
        path: Vec<u8>,
        /// The caller's buffer size.
        len: u32,
    },
    /// `getdents64(2)`: result the bytes of `data`, a run of `struct
    /// linux_dirent64` records (identical for i386 and x86_64) fitting in
    /// `len`; 0 at the end; `-EINVAL` if the next entry does not fit.
    Getdents64 {
        /// A directory handle.
        handle: u64,
        /// The caller's buffer size.
        len: u32,
    },
    /// `mkdirat(2)`: result 0.
    Mkdir {
        /// Base directory.
        dir: Dir,
        /// Path.
        path: Vec<u8>,
        /// Mode.
        mode: u32,
    },
    /// `unlinkat(2)`: result 0. `flags` `AT_REMOVEDIR` (0x200) removes a
    /// directory.
    Unlink {
        /// Base directory.
        dir: Dir,
        /// Path.
        path: Vec<u8>,
        /// Flags.
        flags: i32,
    },
    /// `renameat2(2)`: result 0.
    Rename {
        /// Base directory of `from`.
        from_dir: Dir,
        /// Old path.
        from: Vec<u8>,
        /// Base directory of `to`.
        to_dir: Dir,
        /// New path.
        to: Vec<u8>,
        /// `RENAME_NOREPLACE` 1, `RENAME_EXCHANGE` 2.
        flags: u32,
    },
    /// `chdir(2)`: result 0, `data` the new current directory as an absolute
    /// host path (what `getcwd` reports).
    Chdir {
        /// Path.
        path: Vec<u8>,
    },
    /// `ftruncate(2)`: result 0.
    Ftruncate {
        /// The handle.
        handle: u64,
        /// New length.
        length: i64,
    },
    /// A record lock on a handle (`fcntl(2)` `F_SETLK`/`F_GETLK`, kept as an
    /// open-file-description lock on the submitter, so descriptors shared
    /// by a fork share it): result 0, or `-EAGAIN` when a conflicting lock
    /// is held (the node waits and asks again for `F_SETLKW`). For a test
    /// (`set` false) `data` is the conflicting lock as
    /// [`LockRange`] (postcard), `kind` `F_UNLCK` when none.
    Lock {
        /// The handle.
        handle: u64,
        /// Take or release (`true`), or test (`false`).
        set: bool,
        /// The range and kind.
        range: LockRange,
    },
    /// `flock(2)` of a handle without blocking (`LOCK_SH`, `LOCK_EX`,
    /// `LOCK_UN`): result 0, or `-EAGAIN` (the node waits and asks again
    /// unless `LOCK_NB` was given).
    Flock {
        /// The handle.
        handle: u64,
        /// `LOCK_SH` 1, `LOCK_EX` 2 or `LOCK_UN` 8.
        op: i32,
    },
    /// `linkat(2)` without following a final link: result 0.
    Link {
        /// Base directory of `from`.
        from_dir: Dir,
        /// Existing path.
        from: Vec<u8>,
        /// Base directory of `to`.
        to_dir: Dir,
        /// New path.
        to: Vec<u8>,
    },
    /// `symlinkat(2)`: result 0. The target is text; following it later is
    /// confined like any path.
    Symlink {
        /// What the link says.
        target: Vec<u8>,
        /// Base directory.
        dir: Dir,
        /// The link's path.
        path: Vec<u8>,
    },
    /// `utimensat(2)` (`futimens` with an empty path on a handle): result 0.
    /// Each time is (seconds, nanoseconds), the nanoseconds possibly
    /// `UTIME_NOW` or `UTIME_OMIT`; `None` sets both to now.
    Utimens {
        /// Base directory (or the file itself, with an empty path).
        dir: Dir,
        /// Path.
        path: Vec<u8>,
        /// Access and modification times.
        times: Option<[(i64, i64); 2]>,
        /// `AT_SYMLINK_NOFOLLOW` (0x100).
        flags: i32,
    },
    /// `truncate(2)` of a path: result 0.
    Truncate {
        /// Base directory.
        dir: Dir,
        /// Path.
        path: Vec<u8>,
        /// New length.
        length: i64,
    },
    /// `fallocate(2)` on a handle: result 0.
    Fallocate {
        /// The handle.
        handle: u64,
        /// `FALLOC_FL_*` mode bits.
        mode: i32,
        /// First byte.
        offset: i64,
        /// Bytes.
        len: i64,
    },
    /// `fsync(2)` (or `fdatasync(2)` when `data_only`) of a handle: result 0.
    Fsync {
        /// The handle.
        handle: u64,
        /// Only the data (`fdatasync`).
        data_only: bool,
    },
    /// `fchmodat(2)` (`chmod`, `fchmod` with an empty path on a handle):
    /// result 0. Symbolic links are followed inside the job directory only.
    Chmod {
        /// Base directory (or the file itself, with an empty path).
        dir: Dir,
        /// Path.
        path: Vec<u8>,
        /// Permission bits (`07777`).
        mode: u32,
    },
    /// `statfs(2)` of the file system holding a path (`fstatfs(2)` with an
    /// empty path on a handle): result 0, `data` a postcard-encoded
    /// [`FsStat`].
    Statfs {
        /// Base directory (or the file itself, with an empty path).
        dir: Dir,
        /// Path.
        path: Vec<u8>,
    },
    /// `fchdir(2)` to a directory handle: result and data as
    /// [`FileRequest::Chdir`].
    Fchdir {
        /// The directory's handle.
        handle: u64,
    },
    /// Where a handle's file is on the submitter, as
    /// `readlink("/proc/self/fd/N")` shows it: result the length, `data` the
    /// absolute path.
    HandlePath {
        /// The handle.
        handle: u64,
    },
}

/// What `statfs(2)` reports about a file system, independent of the
/// `struct statfs` layout (the node writes the program's with
/// [`crate::stat::to_statfs`]). Counts are in blocks of `frsize` bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsStat {
    /// File system type (a `*_MAGIC` number of `linux/magic.h`).
    pub fs_type: u64,
    /// Optimal transfer block size in bytes.
    pub bsize: u64,
    /// Total data blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks available to an unprivileged user.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// File system id (`f_fsid.val[0]` low, `val[1]` high).
    pub fsid: u64,
    /// Longest file name in bytes.
    pub namelen: u64,
    /// Fragment size in bytes.
    pub frsize: u64,
    /// Mount flags (`ST_RDONLY`, `ST_NOSUID`, ...).
    pub flags: u64,
}

/// A byte range and lock kind (`struct flock`, `fcntl(2)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LockRange {
    /// `F_RDLCK` 0, `F_WRLCK` 1 or `F_UNLCK` 2.
    pub kind: i16,
    /// `SEEK_SET` 0, `SEEK_CUR` 1 or `SEEK_END` 2.
    pub whence: i16,
    /// First byte, relative to `whence`.
    pub start: i64,
    /// Length in bytes (0: to the end of the file and beyond).
    pub len: i64,
}

/// The answer to a [`FileRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReply {
    /// The request's id.
    pub id: u64,
    /// The value (`>= 0`) or `-errno`.
    pub result: i64,
    /// Data, as the request says.
    pub data: Vec<u8>,
}

/// What `stat` reports about a file, independent of the `struct stat` layout
/// (the node writes the program's layout with [`crate::stat`]). Times are
/// seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// Major number of the containing device.
    pub dev_major: u32,
    /// Minor number of the containing device.
    pub dev_minor: u32,
    /// Inode number.
    pub ino: u64,
    /// Type and permission bits (`S_IFMT | 07777`).
    pub mode: u32,
    /// Hard links.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Major number of the device a device file stands for.
    pub rdev_major: u32,
    /// Minor number (see `rdev_major`).
    pub rdev_minor: u32,
    /// Size in bytes.
    pub size: i64,
    /// Preferred I/O block size.
    pub blksize: i64,
    /// 512-byte blocks allocated.
    pub blocks: i64,
    /// Last access.
    pub atime: (i64, u32),
    /// Last modification.
    pub mtime: (i64, u32),
    /// Last status change.
    pub ctime: (i64, u32),
    /// Creation, when the host file system knows it.
    pub btime: Option<(i64, u32)>,
}

/// Encodes `msg` as one frame (length prefix and body). Errors:
/// [`ProtoError::TooLarge`] if the body exceeds [`MAX_FRAME`];
/// [`ProtoError::Corrupt`] if serialisation fails.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    let mut out =
        postcard::to_extend(msg, alloc::vec![0u8; LEN_PREFIX]).map_err(|_| ProtoError::Corrupt)?;
    let len = out.len() - LEN_PREFIX;
    if len > MAX_FRAME {
        return Err(ProtoError::TooLarge { len });
    }
    out[..LEN_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// The body length announced by a length prefix. Errors:
/// [`ProtoError::TooLarge`] above [`MAX_FRAME`].
pub fn body_len(prefix: [u8; LEN_PREFIX]) -> Result<usize, ProtoError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(ProtoError::TooLarge { len });
    }
    Ok(len)
}

/// Decodes a frame body (without its prefix) as one message. Errors:
/// [`ProtoError::Truncated`] if it ends early, [`ProtoError::Corrupt`] if it
/// is not a message or has bytes left over.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProtoError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((msg, [])) => Ok(msg),
        Ok(_) => Err(ProtoError::Corrupt),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(ProtoError::Truncated),
        Err(_) => Err(ProtoError::Corrupt),
    }
}

/// Splits a byte stream into frames: push received bytes, take messages.
/// Holds at most one partial frame plus what was pushed.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet taken as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. Errors
    /// as [`body_len`] and [`decode_body`]; after an error the stream is
    /// unusable.
    pub fn next_msg<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ProtoError> {
        let Some(prefix) = self.buf.first_chunk::<LEN_PREFIX>() else {
            return Ok(None);
        };
        let len = body_len(*prefix)?;
        if self.buf.len() < LEN_PREFIX + len {
            return Ok(None);
        }
        let msg = decode_body(&self.buf[LEN_PREFIX..LEN_PREFIX + len]);
        self.buf.drain(..LEN_PREFIX + len);
        msg.map(Some)
    }

    /// Checks the stream's end: `Err(Truncated)` if it ended inside a frame.
    pub fn finish(&self) -> Result<(), ProtoError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::Truncated)
        }
    }
}

/// Encodes a [`FileStat`] for [`FileReply::data`].
pub fn encode_stat(st: &FileStat) -> Vec<u8> {
    // A FileStat is a few dozen bytes; serialising to a Vec cannot fail.
    postcard::to_allocvec(st).unwrap_or_default()
}

/// Decodes a [`FileStat`] from [`FileReply::data`]. Errors as [`decode_body`].
pub fn decode_stat(data: &[u8]) -> Result<FileStat, ProtoError> {
    decode_body(data)
}

/// Encodes an [`FsStat`] for [`FileReply::data`].
pub fn encode_fs_stat(st: &FsStat) -> Vec<u8> {
    postcard::to_allocvec(st).unwrap_or_default()
}

/// Decodes an [`FsStat`] from [`FileReply::data`]. Errors as
/// [`decode_body`].
pub fn decode_fs_stat(data: &[u8]) -> Result<FsStat, ProtoError> {
    decode_body(data)
}

/// Encodes a [`LockRange`] for [`FileReply::data`] (a lock test's answer).
pub fn encode_lock(range: &LockRange) -> Vec<u8> {
    postcard::to_allocvec(range).unwrap_or_default()
}

/// Decodes a [`LockRange`] from [`FileReply::data`]. Errors as
/// [`decode_body`].
pub fn decode_lock(data: &[u8]) -> Result<LockRange, ProtoError> {
    decode_body(data)
}

/// The [`WaitStatus`] of a wait-status word as [`NodeMsg::Exited`] carries it.
pub fn wait_status(status: i32) -> WaitStatus {
    WaitStatus::from_raw(u64::from(status as u32))
}

/// The status a shell reports for wait status `status` (`$?`): the exit code
/// for a normal exit, `128 + signal` for a signal (139 for `SIGSEGV`); see
/// [`WaitStatus::shell_status`].
pub fn shell_status(status: i32) -> i32 {
    i32::from(wait_status(status).shell_status())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Signal;
    use alloc::string::ToString;
    use alloc::vec;

    fn sample_host() -> Vec<HostMsg> {
        vec![
            HostMsg::Start(Start {
                version: PROTOCOL_VERSION,
                argv: vec![b"./hello".to_vec(), b"a b".to_vec(), vec![0xff, 0xfe]],
                envp: vec![b"HOME=/home/u".to_vec()],
                program_len: 123_456,
                cwd: b"/home/u/job".to_vec(),
                tty: [true, false, true],
                winsize: Some(Winsize {
                    rows: 24,
                    cols: 80,
                    xpixel: 0,
                    ypixel: 0,
                }),
                memory_limit: Some(64 << 20),
                max_procs: 8,
                realtime_ns: 1_700_000_000_000_000_000,
                uid: 1000,
                gid: 1000,
                from: "user@pc".to_string(),
                exe: b"/home/u/job/hello".to_vec(),
                queue: true,
                exclusive: false,
                restore: false,
            }),
            HostMsg::Start(Start::default()),
            HostMsg::Program(vec![0x7f, b'E', b'L', b'F']),
            HostMsg::Program(vec![7; CHUNK]),
            HostMsg::Stdin(b"input\n".to_vec()),
            HostMsg::List { version: 3 },
            HostMsg::Cancel {
                version: 3,
                job: 9,
                by: "user@pc".to_string(),
            },
            HostMsg::Stdin(Vec::new()),
            HostMsg::StdinEof,
            HostMsg::Kill,
            HostMsg::FileReply(FileReply {
                id: 9,
                result: -13,
                data: Vec::new(),
            }),
            HostMsg::FileReply(FileReply {
                id: u64::MAX,
                result: CHUNK as i64,
                data: vec![1; CHUNK],
            }),
        ]
    }

    fn sample_requests() -> Vec<FileRequest> {
        let p = || b"dir/file.txt".to_vec();
        vec![
            FileRequest::Open {
                dir: Dir::Cwd,
                path: p(),
                flags: 0o101,
                mode: 0o644,
            },
            FileRequest::Close { handle: 3 },
            FileRequest::Read { handle: 3, len: 10 },
            FileRequest::Write {
                handle: 3,
                data: vec![1; CHUNK],
            },
            FileRequest::Pread {
                handle: 3,
                len: 4,
                offset: -1,
            },
            FileRequest::Pwrite {
                handle: 3,
                data: b"x".to_vec(),
                offset: i64::MAX,
            },
            FileRequest::Lseek {
                handle: 3,
                offset: -5,
                whence: 2,
            },
            FileRequest::Stat {
                dir: Dir::Handle(4),
                path: Vec::new(),
                flags: 0x1000,
            },
            FileRequest::Fstat { handle: 0 },
            FileRequest::Access {
                dir: Dir::Cwd,
                path: p(),
                mode: 4,
                flags: 0,
            },
            FileRequest::Readlink {
                dir: Dir::Cwd,
                path: p(),
                len: 4096,
            },
            FileRequest::Getdents64 {
                handle: 5,
                len: 32768,
            },
            FileRequest::Mkdir {
                dir: Dir::Cwd,
                path: p(),
                mode: 0o755,
            },
            FileRequest::Unlink {
                dir: Dir::Cwd,
                path: p(),
                flags: 0x200,
            },
            FileRequest::Rename {
                from_dir: Dir::Cwd,
                from: p(),
                to_dir: Dir::Handle(1),
                to: b"b".to_vec(),
                flags: 1,
            },
            FileRequest::Chdir {
                path: b"..".to_vec(),
            },
            FileRequest::Ftruncate {
                handle: 2,
                length: 1 << 40,
            },
            FileRequest::Chmod {
                dir: Dir::Cwd,
                path: p(),
                mode: 0o755,
            },
            FileRequest::Fsync {
                handle: 3,
                data_only: true,
            },
            FileRequest::Lock {
                handle: 3,
                set: true,
                range: LockRange {
                    kind: 1,
                    whence: 0,
                    start: 1 << 30,
                    len: 510,
                },
            },
            FileRequest::Flock { handle: 3, op: 2 },
            FileRequest::Link {
                from_dir: Dir::Cwd,
                from: p(),
                to_dir: Dir::Handle(3),
                to: p(),
            },
            FileRequest::Symlink {
                target: p(),
                dir: Dir::Cwd,
                path: p(),
            },
            FileRequest::Utimens {
                dir: Dir::Cwd,
                path: p(),
                times: Some([(1, 2), (3, (1 << 30) - 1)]),
                flags: 0x100,
            },
            FileRequest::Truncate {
                dir: Dir::Cwd,
                path: p(),
                length: 7,
            },
            FileRequest::Fallocate {
                handle: 3,
                mode: 0,
                offset: 0,
                len: 4096,
            },
        ]
    }

    fn sample_node() -> Vec<NodeMsg> {
        let mut v = vec![
            NodeMsg::Accepted {
                node: "52:54:00:12:34:56".to_string(),
                name: "amber-otter-3456".to_string(),
                job: 1,
                memory_limit: 100 << 20,
            },
            NodeMsg::Refused {
                reason: "dynamically linked: rebuild with -static".to_string(),
            },
            NodeMsg::Busy {
                reason: "another job is running".to_string(),
            },
            NodeMsg::Jobs(vec![
                JobInfo {
                    job: 3,
                    program: "./prog".to_string(),
                    from: "user@pc".to_string(),
                    state: JobState::Running,
                    elapsed_ms: 1500,
                },
                JobInfo {
                    job: 2,
                    program: "./other".to_string(),
                    from: "u@h".to_string(),
                    state: JobState::Exited(139),
                    elapsed_ms: 7,
                },
            ]),
            NodeMsg::Cancelled {
                job: 3,
                found: true,
            },
            NodeMsg::Stdout(b"hello\n".to_vec()),
            NodeMsg::Stderr(vec![0; CHUNK]),
            NodeMsg::StdinWanted { max: 65536 },
            NodeMsg::Exited {
                status: 139,
                killed: 0,
                unsupported: Vec::new(),
            },
            NodeMsg::Exited {
                status: 42 << 8,
                killed: 3,
                unsupported: vec!["io_uring_setup".into()],
            },
        ];
        for (i, request) in sample_requests().into_iter().enumerate() {
            v.push(NodeMsg::File {
                id: i as u64,
                request,
            });
        }
        v
    }

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(msgs: &[T]) {
        // One by one.
        for m in msgs {
            let frame = encode(m).unwrap();
            assert!(frame.len() - LEN_PREFIX <= MAX_FRAME);
            let len = body_len(frame[..4].try_into().unwrap()).unwrap();
            assert_eq!(len, frame.len() - 4);
            assert_eq!(&decode_body::<T>(&frame[4..]).unwrap(), m);
        }
        // As one stream fed in odd-sized pieces.
        let stream: Vec<u8> = msgs.iter().flat_map(|m| encode(m).unwrap()).collect();
        for piece in [1, 3, 7, 1000, stream.len()] {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for c in stream.chunks(piece) {
                d.push(c);
                while let Some(m) = d.next_msg::<T>().unwrap() {
                    got.push(m);
                }
            }
            d.finish().unwrap();
            assert_eq!(got, msgs);
        }
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(&sample_host());
        round_trip(&sample_node());
        let st = FileStat {
            dev_major: 8,
            dev_minor: 1,
            ino: 1 << 40,
            mode: 0o100644,
            nlink: 1,
            uid: 1000,
            gid: 100,
            size: 12345,
            blksize: 4096,
            blocks: 32,
            atime: (1, 2),
            mtime: (-3, 999_999_999),
            ctime: (5, 6),
            btime: Some((7, 8)),
            ..Default::default()
        };
        assert_eq!(decode_stat(&encode_stat(&st)), Ok(st));
    }

    #[test]
    fn truncated_and_corrupt_frames_are_errors() {
        for m in sample_host() {
            let frame = encode(&m).unwrap();
            let body = &frame[4..];
            for cut in 0..body.len().min(64) {
                assert!(
                    decode_body::<HostMsg>(&body[..cut]).is_err(),
                    "{m:?} cut {cut}"
                );
            }
            // Extra bytes after a message.
            let mut long = body.to_vec();
            long.push(0);
            assert_eq!(decode_body::<HostMsg>(&long), Err(ProtoError::Corrupt));
            // A stream that ends inside the frame.
            let mut d = Decoder::new();
            d.push(&frame[..frame.len() - 1]);
            assert_eq!(d.next_msg::<HostMsg>(), Ok(None));
            assert_eq!(d.finish(), Err(ProtoError::Truncated));
        }
        // Unknown variant.
        assert_eq!(decode_body::<HostMsg>(&[100]), Err(ProtoError::Corrupt));
        assert_eq!(decode_body::<NodeMsg>(&[]), Err(ProtoError::Truncated));
        // A length beyond the limit, without allocating it.
        let mut d = Decoder::new();
        d.push(&u32::MAX.to_be_bytes());
        assert_eq!(
            d.next_msg::<NodeMsg>(),
            Err(ProtoError::TooLarge {
                len: u32::MAX as usize
            })
        );
        // Oversized messages are refused when encoding.
        let big = HostMsg::Program(vec![0; MAX_FRAME + 1]);
        assert!(matches!(encode(&big), Err(ProtoError::TooLarge { .. })));
    }

    proptest::proptest! {
        /// Whatever bytes arrive, a decoded body is a message that encodes
        /// back to a frame decoding to the same message; anything else is an
        /// error, never a panic.
        #[test]
        fn random_bodies_decode_to_messages_that_round_trip_or_are_errors(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)
        ) {
            if let Ok(m) = decode_body::<HostMsg>(&bytes) {
                let mut d = Decoder::new();
                d.push(&encode(&m).unwrap());
                proptest::prop_assert_eq!(d.next_msg::<HostMsg>().unwrap(), Some(m));
            }
            if let Ok(m) = decode_body::<NodeMsg>(&bytes) {
                let mut d = Decoder::new();
                d.push(&encode(&m).unwrap());
                proptest::prop_assert_eq!(d.next_msg::<NodeMsg>().unwrap(), Some(m));
            }
        }

        /// A stream of random bytes yields whole messages until its first bad
        /// frame, then only that error: the decoder never skips ahead.
        #[test]
        fn random_streams_stop_at_the_first_bad_frame(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)
        ) {
            let mut d = Decoder::new();
            d.push(&bytes);
            let mut taken = 0;
            loop {
                match d.next_msg::<HostMsg>() {
                    Ok(Some(_)) => taken += 1,
                    Ok(None) => break,
                    Err(e) => {
                        proptest::prop_assert_eq!(d.next_msg::<HostMsg>().unwrap_err(), e);
                        break;
                    }
                }
                proptest::prop_assert!(taken <= bytes.len() / LEN_PREFIX);
            }
        }
    }

    #[test]
    fn shell_statuses() {
        assert_eq!(shell_status(0), 0);
        assert_eq!(shell_status(42 << 8), 42);
        assert_eq!(shell_status(11), 139);
        assert_eq!(shell_status(11 | 0x80), 139);
        assert_eq!(shell_status(2), 130);
        assert_eq!(wait_status(42 << 8), WaitStatus::Exited(42));
        assert_eq!(
            wait_status(11 | 0x80),
            WaitStatus::Signaled(Signal::SIGSEGV)
        );
    }
}
