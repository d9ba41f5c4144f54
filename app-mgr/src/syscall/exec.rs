//! Loading a program into a task: the job's first program (staged by the
//! lobby) and `execve(2)`/`execveat(2)` of a program in the job directory.
//!
//! A program file is staged in an application's address space at
//! [`STAGING`] (above every address a program can use while it loads), its
//! load plan read from there ([`elf_load::load_plan_sparse`]), its segments
//! copied to their places and its initial stack built (argv, envp, auxv,
//! `execve(2)`, `elf(5)`). For `execve` the file is read from `hostd` into a
//! separate staging application first, so a program the node refuses leaves
//! the caller as it was with Linux's errno (`ENOENT`, `EACCES`, `ENOEXEC`,
//! `E2BIG`); only then is the old image given up.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use linux_raw_sys::general as g;
use sion_abi::app::AppRegs;

use super::Args;
use crate::abi::{Abi, UserLayout, page_up};
use crate::elf_load::{self, LoadConfig, LoadPlan, PhdrLocation, SparseFile};
use crate::errno::Errno;
use crate::job::{CHUNK, Dir, FileRequest};
use crate::process::{CallError, CallResult, Process};
use crate::stack::{self, StackSpec};
use crate::vm::{AddressSpace, Prot};

/// Where a program file is staged while it loads (above the i386 range,
/// below the x86_64 mmap area's usual addresses; a program whose segments
/// would overlap it is refused).
pub const STAGING: u64 = 0x6000_0000_0000;
/// Main stack size when the program does not ask (`PT_GNU_STACK` size): 8 MiB
/// (Linux's default `RLIMIT_STACK`), or 1 MiB for jobs with less than 256 MiB.
const STACK_SIZE: u64 = 8 << 20;
/// Most bytes of arguments and environment `execve` takes (`E2BIG` beyond;
/// Linux allows a quarter of the stack limit, the manager's heap less).
const MAX_ARG_BYTES: usize = 256 * 1024;
/// Most arguments plus environment strings `execve` takes.
const MAX_ARG_STRINGS: usize = 8192;

/// `execve(pathname, argv, envp)`.
pub(super) fn execve(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.execve(g::AT_FDCWD, a.word(0), a.word(1), a.word(2), 0)
}

/// `execveat(dirfd, pathname, argv, envp, flags)`.
pub(super) fn execveat(p: &mut Process<'_>, a: &Args) -> CallResult {
    p.execve(a.int(0), a.word(1), a.word(2), a.word(3), a.int(4))
}

/// The address layout of an ABI's programs.
pub fn layout_of(abi: Abi) -> &'static UserLayout {
    match abi {
        Abi::X86_64 => &X86_64_LAYOUT,
        Abi::I386 => &I386_LAYOUT,
    }
}

static X86_64_LAYOUT: UserLayout = UserLayout::for_abi(Abi::X86_64);
static I386_LAYOUT: UserLayout = UserLayout::for_abi(Abi::I386);

/// A program interpreter (`PT_INTERP`, `ld.so(8)`) staged and planned at
/// the base it loads at, beside its program.
pub struct Interpreter {
    /// The application its file is staged in (at [`STAGING`]); ended once
    /// the image is built.
    pub staging: u64,
    /// Its plan (a static-PIE at its base).
    pub plan: LoadPlan,
}

/// What the new image's stack carries.
pub struct Image<'a> {
    /// `argv`.
    pub argv: &'a [&'a [u8]],
    /// `envp`.
    pub envp: &'a [&'a [u8]],
    /// `AT_EXECFN`: the path the program was run by.
    pub execfn: &'a [u8],
}

impl Process<'_> {
    /// Maps and fills the current task's segments from the program staged in
    /// application `staging` at [`STAGING`] by `plan`, and its stack; returns
    /// the entry point and initial stack pointer, or why the program cannot
    /// run. The task's address-space bookkeeping must be fresh.
    pub fn build_image(
        &mut self,
        staging: u64,
        plan: &LoadPlan,
        interp: Option<&Interpreter>,
        image: &Image<'_>,
    ) -> Result<(u64, u64), String> {
        let pid = self.task.pid;
        let too_big =
            |_| String::from("the program needs more memory than the job may use (memory limit)");
        let effects = self.task.vm.map_image(plan).map_err(too_big)?;
        self.apply(&effects)
            .map_err(|_| String::from("the node ran out of memory loading the program"))?;
        self.copy_segments(staging, plan)?;
        if let Some(i) = interp {
            let effects = self.task.vm.map_interpreter(&i.plan).map_err(too_big)?;
            self.apply(&effects).map_err(|_| {
                String::from("the node ran out of memory loading the program interpreter")
            })?;
            self.copy_segments(i.staging, &i.plan)?;
        }

        let layout = *layout_of(self.task.abi);
        let wanted = plan.gnu_stack.map_or(0, |g| g.size);
        let default = if self.task.vm.limit() >= 256 << 20 {
            STACK_SIZE
        } else {
            1 << 20
        };
        let stack_len = if wanted > 0 { wanted } else { default }.min(layout.stack_size);
        let exec = plan.gnu_stack.is_some_and(|g| g.executable);
        let (lo, hi) = self.task.vm.map_stack(stack_len, exec).map_err(too_big)?;
        let prot = Prot {
            read: true,
            write: true,
            exec,
        };
        self.node
            .map(pid, lo, hi - lo, prot)
            .map_err(|_| String::from("the node ran out of memory for the stack"))?;
        self.task.stack_len = hi - lo;

        let phdr_copy = match plan.phdr {
            PhdrLocation::NotLoaded { offset, len } => {
                let mut v = vec![0u8; len as usize];
                self.node
                    .read(staging, STAGING + offset, &mut v)
                    .map_err(|_| String::from("cannot read the program headers"))?;
                Some(v)
            }
            PhdrLocation::Loaded(_) => None,
        };
        let mut random = [0u8; 16];
        self.node.random(&mut random);
        let mut spec = StackSpec::new(
            plan,
            layout.stack_top,
            image.argv,
            image.envp,
            image.execfn,
            random,
        );
        if let Some(i) = interp {
            spec.aux.base = i.plan.bias;
        }
        spec.aux.uid = self.task.uid;
        spec.aux.euid = self.task.uid;
        spec.aux.gid = self.task.gid;
        spec.aux.egid = self.task.gid;
        spec.phdr_copy = phdr_copy.as_deref();
        spec.platform = Some(match plan.abi {
            Abi::X86_64 => b"x86_64",
            Abi::I386 => b"i686",
        });
        let st = stack::build(&spec).map_err(|e| {
            format!(
                "cannot build the initial stack ({}): arguments or environment too large or containing NUL bytes",
                e.name().unwrap_or("error")
            )
        })?;
        if st.sp < lo {
            return Err(String::from(
                "arguments and environment do not fit on the stack",
            ));
        }
        self.load_mem(st.sp, &st.bytes)
            .map_err(|_: CallError| String::from("cannot write the initial stack"))?;
        // A dynamic program starts in its interpreter, which finds the
        // program through the auxiliary vector.
        let entry = interp.map_or(plan.entry, |i| i.plan.entry);
        Ok((entry, st.sp))
    }

    /// Copies `plan`'s segment bytes from the file staged in application
    /// `staging` into the current task.
    fn copy_segments(&mut self, staging: u64, plan: &LoadPlan) -> Result<(), String> {
        let pid = self.task.pid;
        let mut buf = vec![0u8; 64 * 1024];
        for seg in &plan.segments {
            let mut done = 0u64;
            while done < seg.file_len {
                let n = (seg.file_len - done).min(buf.len() as u64) as usize;
                self.node
                    .read(staging, STAGING + seg.file_offset + done, &mut buf[..n])
                    .and_then(|()| self.node.write(pid, seg.vaddr + done, &buf[..n]))
                    .map_err(|e| {
                        format!("loading a segment failed: {}", e.name().unwrap_or("?"))
                    })?;
                done += n as u64;
            }
        }
        Ok(())
    }

    /// For a dynamically linked `plan`, reads its program interpreter from
    /// `hostd` (an exported system path) into a staging application and
    /// plans it at a free base below the mmap area's top of an address space
    /// holding the program (job memory limit `limit`); `None` for a static
    /// program. Errors: why the interpreter cannot be used, for the
    /// submitter and the log.
    pub fn plan_interpreter(
        &mut self,
        plan: &LoadPlan,
        limit: u64,
    ) -> Result<Option<Interpreter>, String> {
        let Some(path) = &plan.interp else {
            return Ok(None);
        };
        let shown = String::from_utf8_lossy(path).into_owned();
        let why = |e: CallError| match e {
            CallError::Errno(e) => format!(
                "its program interpreter {shown} cannot be read from the submitter ({}); make its directory readable with hostd submit --ro",
                e.name().unwrap_or("error")
            ),
            _ => format!("its program interpreter {shown} cannot be read: hostd went away"),
        };
        let (staging, len) = self.stage_bytes(Dir::Cwd, path.clone()).map_err(why)?;
        let layout = *layout_of(plan.abi);
        let mut planned = || -> Result<LoadPlan, String> {
            let mut vm = AddressSpace::new(layout, limit);
            vm.map_image(plan)
                .map_err(|_| String::from("the program does not fit in its memory limit"))?;
            let first = self
                .plan_staged(staging, len, limit, None)
                .map_err(|e| format!("its program interpreter {shown}: {e}"))?;
            let base = vm
                .free_range(first.image_size(), 2 << 20)
                .ok_or_else(|| String::from("no room for the program interpreter"))?;
            let iplan = self
                .plan_staged(staging, len, limit, Some(base))
                .map_err(|e| format!("its program interpreter {shown}: {e}"))?;
            if iplan.abi != plan.abi || iplan.interp.is_some() {
                return Err(format!(
                    "its program interpreter {shown} is not an {} interpreter",
                    plan.abi
                ));
            }
            Ok(iplan)
        };
        match planned() {
            Ok(plan) => Ok(Some(Interpreter { staging, plan })),
            Err(e) => {
                self.node.kill(staging, 9);
                Err(e)
            }
        }
    }

    /// `execve(2)`: the program at `pathname` (relative to `dirfd`; the
    /// caller's own program for `/proc/self/exe`) replaces the task's image.
    fn execve(
        &mut self,
        dirfd: i32,
        pathname: u64,
        argv: u64,
        envp: u64,
        flags: i32,
    ) -> CallResult {
        if flags & !(g::AT_EMPTY_PATH as i32 | g::AT_SYMLINK_NOFOLLOW as i32) != 0 {
            return Err(Errno::EINVAL.into());
        }
        let path = self.read_cstr(pathname, 4096)?;
        if path.is_empty() {
            return Err(Errno::ENOENT.into());
        }
        let argv = self.string_array(argv)?;
        let envp = self.string_array(envp)?;
        let total: usize = argv.iter().chain(&envp).map(|s| s.len() + 1).sum();
        if total > MAX_ARG_BYTES || argv.len() + envp.len() > MAX_ARG_STRINGS {
            return Err(Errno::E2BIG.into());
        }
        let (dir, open_path, exe) = if path == b"/proc/self/exe" {
            let exe = self.task.exe.clone();
            (Dir::Cwd, exe.clone(), exe)
        } else {
            let dir = if dirfd == g::AT_FDCWD || path.first() == Some(&b'/') {
                Dir::Cwd
            } else {
                match self.task.fds.file(dirfd)? {
                    crate::fd::OpenFile::HostFile(h) => Dir::Handle(h),
                    _ => return Err(Errno::ENOTDIR.into()),
                }
            };
            let exe = crate::path::absolute(&self.task.cwd, &path);
            (dir, path.clone(), exe)
        };
        let (staging, plan) = self.stage(dir, open_path)?;
        let limit = self.task.vm.limit();
        let interp = match self.plan_interpreter(&plan, limit) {
            Ok(i) => i,
            Err(why) => {
                self.node.kill(staging, 9);
                let number = self.number;
                self.node
                    .log(format_args!("apm: job {number}: execve refused: {why}"));
                return Err(Errno::ENOENT.into());
            }
        };

        // The point of no return: the old image goes.
        let number = self.number;
        let pid = self.task.pid;
        if self.node.exec(pid, plan.abi).is_err() {
            self.node.kill(staging, 9);
            if let Some(i) = &interp {
                self.node.kill(i.staging, 9);
            }
            return Err(Errno::ENOMEM.into());
        }
        self.task.abi = plan.abi;
        self.task.vm = AddressSpace::new(*layout_of(plan.abi), limit);
        self.task.fs_base = 0;
        self.task.altstack = None;
        // POSIX timers go; the alarm stays (execve(2)).
        self.task.timers.clear();
        self.task.execed = true;
        // Handled signals return to their default action; ignored stay
        // ignored (execve(2)).
        let abi = plan.abi;
        self.task
            .sigactions
            .retain(|_, b| crate::sigframe::Action::decode(abi, b).handler == 1);
        let cloexec: Vec<i32> = self
            .task
            .fds
            .iter()
            .filter(|(_, e)| e.cloexec)
            .map(|(fd, _)| fd)
            .collect();
        for fd in cloexec {
            if let Ok(c) = self.task.fds.close(fd) {
                self.release(c.file);
            }
        }
        let name = exe.rsplit(|&b| b == b'/').next().unwrap_or(&exe);
        self.task.comm = [0; 16];
        let n = name.len().min(15);
        self.task.comm[..n].copy_from_slice(&name[..n]);
        self.task.exe = exe;
        let argv_refs: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
        let envp_refs: Vec<&[u8]> = envp.iter().map(|a| a.as_slice()).collect();
        let image = Image {
            argv: &argv_refs,
            envp: &envp_refs,
            execfn: &path,
        };
        let built = self.build_image(staging, &plan, interp.as_ref(), &image);
        self.node.kill(staging, 9);
        if let Some(i) = &interp {
            self.node.kill(i.staging, 9);
        }
        let (entry, sp) = match built {
            Ok(v) => v,
            Err(why) => {
                self.node.log(format_args!(
                    "apm: job {number}: process {pid}: execve failed after the old image was gone: {why}; killed"
                ));
                self.kill(
                    crate::exit::WaitStatus::Signaled(crate::exit::Signal::SIGKILL).to_raw() as i32,
                );
                return Err(CallError::Halt);
            }
        };
        let mut regs = AppRegs {
            rip: entry,
            rflags: 0x202,
            ..AppRegs::default()
        };
        regs.gpr[AppRegs::RSP] = sp;
        self.node.set_regs(pid, &regs)?;
        Ok(0)
    }

    /// Reads the program file at `path` from `hostd` into a new staging
    /// application and plans its loading; returns the staging application
    /// and the plan. Errors: what `open` gives, `EACCES` for a file that is
    /// not a regular executable file, `ENOEXEC` for one the loader refuses,
    /// `ENOMEM`.
    fn stage(&mut self, dir: Dir, path: Vec<u8>) -> Result<(u64, LoadPlan), CallError> {
        let (staging, len) = self.stage_bytes(dir, path)?;
        let limit = self.task.vm.limit();
        match self.plan_staged(staging, len, limit, None) {
            Ok(plan) => Ok((staging, plan)),
            Err(why) => {
                self.node.kill(staging, 9);
                let number = self.number;
                self.node.log(format_args!(
                    "apm: job {number}: execve refused: {why} -> ENOEXEC"
                ));
                Err(Errno::ENOEXEC.into())
            }
        }
    }

    /// Reads the file at `path` from `hostd` into a new staging application
    /// at [`STAGING`]; the application and the file's length. Errors: what
    /// `open` gives, `EACCES` for a file that is not a regular executable
    /// file, `ENOMEM`.
    fn stage_bytes(&mut self, dir: Dir, path: Vec<u8>) -> Result<(u64, u64), CallError> {
        let (handle, data) = self.host_value(FileRequest::Open {
            dir,
            path,
            flags: (g::O_RDONLY | g::O_CLOEXEC) as i32,
            mode: 0,
        })?;
        let staged = self.stage_file(handle, data.first() == Some(&1));
        let _ = self.host_call(FileRequest::Close { handle });
        staged
    }

    fn stage_file(&mut self, handle: u64, is_dir: bool) -> Result<(u64, u64), CallError> {
        if is_dir {
            return Err(Errno::EACCES.into());
        }
        let (_, st) = self.host_value(FileRequest::Fstat { handle })?;
        let st = crate::job::decode_stat(&st).map_err(|_| Errno::EIO)?;
        if st.mode & g::S_IFMT != g::S_IFREG || st.mode & 0o111 == 0 {
            return Err(Errno::EACCES.into());
        }
        let len = u64::try_from(st.size).map_err(|_| Errno::EIO)?;
        if len > self.task.vm.limit().min(1 << 30) {
            return Err(Errno::ENOMEM.into());
        }
        let staging = self.node.create_staging()?;
        match self.fill_staging(staging, handle, len) {
            Ok(done) => Ok((staging, done)),
            Err(e) => {
                self.node.kill(staging, 9);
                Err(e)
            }
        }
    }

    /// Copies the file `handle` (`len` bytes) into `staging`; the bytes
    /// copied.
    fn fill_staging(&mut self, staging: u64, handle: u64, len: u64) -> Result<u64, CallError> {
        let rw = Prot {
            read: true,
            write: true,
            exec: false,
        };
        let rounded = page_up(len.max(1)).ok_or(Errno::ENOMEM)?;
        self.node.map(staging, STAGING, rounded, rw)?;
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(CHUNK as u64) as u32;
            let (n, data) = self.host_value(FileRequest::Read { handle, len: want })?;
            if n == 0 {
                break;
            }
            let n = (n as usize).min(data.len());
            self.node.write(staging, STAGING + done, &data[..n])?;
            done += n as u64;
        }
        Ok(done)
    }

    /// Plans the file of `len` bytes staged in `staging` (a static-PIE at
    /// `pie_base` when given); why not, for the log.
    fn plan_staged(
        &mut self,
        staging: u64,
        len: u64,
        limit: u64,
        pie_base: Option<u64>,
    ) -> Result<LoadPlan, String> {
        let mut config = LoadConfig {
            max_image_size: limit.min(1 << 30),
            ..LoadConfig::default()
        };
        if let Some(base) = pie_base {
            config.x86_64.pie_base = base;
            config.i386.pie_base = base;
        }
        let mut sparse = SparseFile::new(len);
        let node = &mut *self.node;
        let plan = elf_load::load_plan_sparse(&mut sparse, &config, |off, n| {
            let mut v = vec![0u8; n as usize];
            node.read(staging, STAGING + off, &mut v).ok()?;
            Some(v)
        })
        .map_err(|e| e.to_string())?;
        let staged = page_up(len.max(1)).unwrap_or(u64::MAX);
        if plan
            .segments
            .iter()
            .any(|s| s.start < STAGING + staged && STAGING < s.end)
        {
            return Err(format!(
                "it loads at {STAGING:#x}, where this node stages programs; relink it elsewhere"
            ));
        }
        Ok(plan)
    }

    /// A NULL-terminated array of string pointers of the task's ABI
    /// (`argv`, `envp`); a NULL array is empty. Errors: `EFAULT`, `E2BIG`.
    fn string_array(&mut self, at: u64) -> Result<Vec<Vec<u8>>, CallError> {
        let mut out = Vec::new();
        if at == 0 {
            return Ok(out);
        }
        let w = self.task.abi.word_size();
        let mut total = 0usize;
        for i in 0.. {
            if i > MAX_ARG_STRINGS {
                return Err(Errno::E2BIG.into());
            }
            let raw = self.read_mem(at + (i * w) as u64, w as u64)?;
            let mut b = [0u8; 8];
            b[..w].copy_from_slice(&raw);
            let ptr = u64::from_le_bytes(b);
            if ptr == 0 {
                break;
            }
            let s = self
                .read_cstr(ptr, MAX_ARG_BYTES - total)
                .map_err(|e| match e {
                    CallError::Errno(Errno::ENAMETOOLONG) => Errno::E2BIG.into(),
                    e => e,
                })?;
            total += s.len() + 1;
            out.push(s);
        }
        Ok(out)
    }
}
