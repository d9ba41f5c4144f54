//! Starting a job whose program has arrived — checking the ELF file,
//! building the application (segments, stack with argv/envp/auxv) and
//! starting it ([`start`]) — and ending it ([`Running::finish`]). The
//! manager's loop (`main`) serves the events of every [`Running`] job in
//! between.
//!
//! The program is not kept in this process's small heap: the
//! [`crate::lobby::Lobby`] receives it straight into a staging area of the
//! new application's own address space ([`STAGING`], above every address a
//! program can use while it loads), the loader reads the headers it needs
//! from there ([`sion_app_mgr::elf_load::load_plan_sparse`]), the segments
//! are copied to their places, and the staging pages are unmapped before the
//! program starts.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use sion_abi::app as kapp;
use sion_abi::app::AppRegs;
use sion_app_mgr::Abi;
use sion_app_mgr::abi::page_up;
use sion_app_mgr::checkpoint::{self, Resume};
use sion_app_mgr::elf_load::{self, LoadConfig};
use sion_app_mgr::job::{HostMsg, NodeMsg, Start, shell_status};
use sion_app_mgr::process::{NodeRef, Process};
use sion_app_mgr::syscall::exec::Image;
use sion_app_mgr::vm::AddressSpace;
use sion_rt::sys::{self, app};

use crate::ThisNode;
use crate::app_node::{AppNode, SharedHub};
use crate::lobby::{Ready, refuse};
use crate::rng::Rng;

pub use sion_app_mgr::syscall::exec::STAGING;

/// A job that runs: its [`Process`] (which owns its [`AppNode`]) and what
/// its end-of-job log line needs.
pub struct Running {
    /// Job number on this node.
    pub number: u64,
    /// The job as the library serves it.
    pub process: Process<'static>,
    /// When its program started (node clock, ns).
    t0: u64,
    /// The file cache's hits and misses at its start (its end line counts
    /// from there, so jobs running side by side count each other's too).
    cache_at_start: (u64, u64),
    /// What is shared with the other jobs.
    hub: SharedHub,
}

/// Loads a job whose program has arrived (taken from the [`crate::lobby::Lobby`]
/// with `take_ready`) and starts its application: the running job, or
/// `None` if it was refused or its submitter gave up (then the lobby has
/// been told, [`crate::lobby::Lobby::job_dropped`]).
pub fn start(ready: Ready, hub: &SharedHub, me: &Rc<ThisNode>) -> Option<Running> {
    let number = ready.number;
    let running = start_inner(ready, hub, me);
    if running.is_none() {
        hub.borrow_mut().lobby.job_dropped(number);
    }
    running
}

fn start_inner(ready: Ready, hub: &SharedHub, me: &Rc<ThisNode>) -> Option<Running> {
    let Ready {
        number,
        mut conn,
        start,
        pid,
        program,
    } = ready;
    let staged = page_up(start.program_len).unwrap_or(0);
    // The file cache gives way to a job that asks for more memory than is
    // free with it.
    if start
        .memory_limit
        .is_some_and(|m| m > spare_memory() + staged)
    {
        hub.borrow_mut().cache.clear();
    }
    // The staging area is freed once the program is loaded.
    let spare = spare_memory() + staged;
    let limit = start.memory_limit.map_or(spare, |m| m.min(spare));
    let config = LoadConfig {
        max_image_size: limit.min(1 << 30),
        ..LoadConfig::default()
    };
    // A program is checked now; a checkpoint image (a job that continues
    // after its node was lost) once the job's bookkeeping exists.
    let plan = if start.restore {
        None
    } else {
        let mut sparse = program;
        let plan = match elf_load::load_plan_sparse(&mut sparse, &config, |off, len| {
            let mut v = vec![0u8; len as usize];
            app::read(pid, STAGING + off, &mut v).ok()?;
            Some(v)
        }) {
            Ok(p) => p,
            Err(e) => {
                let _ = app::kill(pid, 9);
                refuse(conn, number, &e.to_string());
                return None;
            }
        };
        if plan
            .segments
            .iter()
            .any(|s| s.start < STAGING + staged && STAGING < s.end)
        {
            let _ = app::kill(pid, 9);
            refuse(
                conn,
                number,
                &format!(
                    "the program loads at {STAGING:#x}, where this node stages programs; relink it elsewhere"
                ),
            );
            return None;
        }
        Some(plan)
    };
    // A submitter that gave up while its job waited (its node was busy) has
    // closed the connection: do not run its job.
    let pending = conn.drain();
    let killed = pending
        .as_ref()
        .is_ok_and(|msgs| msgs.iter().any(|m| matches!(m, HostMsg::Kill)));
    if conn.is_closed() || pending.is_err() || killed {
        sion_rt::println!("apm: job {number}: hostd gave up before the start");
        let _ = app::kill(pid, 9);
        return None;
    }

    // Checkpoints are of x86_64 jobs only (sion_app_mgr::checkpoint).
    let abi = plan.as_ref().map_or(Abi::X86_64, |p| p.abi);
    let layout = *config.layout(abi);
    let cache_at_start = {
        let h = hub.borrow();
        (h.cache.hits, h.cache.misses)
    };
    let node = AppNode::new(number, pid, conn, hub.clone(), me.clone(), Rng::new(number));
    let mut process = Process::with_node(
        NodeRef::Owned(Box::new(node)),
        number,
        pid,
        abi,
        AddressSpace::new(layout, limit),
    );
    if start.max_procs > 0 {
        // hostd allows 128; the kernel's own cap on a manager's
        // applications is above that.
        process.max_procs = (start.max_procs as usize).min(128);
    }
    let built = match &plan {
        None => {
            let mut read = |off: u64, len: usize| {
                let mut v = vec![0u8; len];
                app::read(pid, STAGING + off, &mut v).ok()?;
                Some(v)
            };
            checkpoint::restore(
                &mut process,
                &mut read,
                start.program_len,
                (STAGING, STAGING + staged),
            )
            .map(Boot::Restored)
        }
        Some(plan) => boot_program(&mut process, &start, plan, limit),
    };
    let _ = app::unmap(pid, STAGING, staged);
    let boot = match built {
        Ok(v) => v,
        Err(why) => {
            let _ = app::kill(pid, 9);
            sion_rt::println!("apm: job {number} refused: {why}");
            let _ = process.send(&NodeMsg::Refused { reason: why });
            return None;
        }
    };
    let accepted = NodeMsg::Accepted {
        node: me.id.clone(),
        name: me.name.clone(),
        job: number,
        memory_limit: limit,
    };
    if process.send(&accepted).is_err() {
        let _ = app::kill(pid, 9);
        return None;
    }
    sion_rt::println!(
        "apm: job {number} from {}: {} -> {}",
        if start.from.is_empty() {
            "?"
        } else {
            &start.from
        },
        command_line(&start.argv),
        me.name
    );
    // Faults come to this manager, which delivers them to the program's
    // handler or ends the job with the signal.
    let kabi = match abi {
        Abi::X86_64 => kapp::ABI_X86_64,
        Abi::I386 => kapp::ABI_I386,
    } | kapp::START_FAULTS_TO_MANAGER;
    let t0 = sys::clock_ns();
    let started = match &boot {
        Boot::Program { entry, sp } => app::start(pid, *entry, *sp, kabi),
        // Stopped, so every register can be set before it runs.
        Boot::Restored(r) => app::start(
            pid,
            r.regs.rip,
            r.regs.gpr[AppRegs::RSP],
            kabi | kapp::START_STOPPED,
        )
        .and_then(|()| {
            process
                .resume_restored(r)
                .map_err(|_| sion_abi::Error::InvalidArgument)
        }),
    };
    if let Boot::Restored(_) = boot {
        sion_rt::println!("apm: job {number}: continues from a checkpoint");
    }
    let running = Running {
        number,
        process,
        t0,
        cache_at_start,
        hub: hub.clone(),
    };
    if let Err(e) = started {
        sion_rt::println!("apm: job {number}: cannot start: {e}");
        let _ = app::kill(pid, 9);
        running.finish(9);
        return None;
    }
    Some(running)
}

impl Running {
    /// The job has ended with wait status `status` (from
    /// [`Process::handle`]): tells `hostd`, frees its place in the lobby
    /// (remembered for `hostd jobs`, its room given to waiting jobs), and
    /// logs its figures. The caller tells the Companion Manager.
    pub fn finish(mut self, status: i32) {
        let number = self.number;
        let ms = (sys::clock_ns() - self.t0) / 1_000_000;
        // The node has room again before hostd hears of the end, so a
        // placement that follows at once is not denied as busy.
        self.hub.borrow_mut().lobby.job_ended(number, status);
        self.hub.borrow().lobby.report_jobs();
        let killed = self.process.killed_at_end;
        let unsupported = core::mem::take(&mut self.process.unsupported);
        let _ = self.process.send(&NodeMsg::Exited {
            status,
            killed,
            unsupported,
        });
        let stats = self.process.stats;
        // Closes the connection and leaves the hub.
        drop(self.process);
        let h = self.hub.borrow();
        sion_rt::println!(
            "apm: job {number} exited with status {} ({} ms, {} system calls, {} forwarded; file cache: {} hits, {} misses, {} KiB held)",
            shell_status(status),
            ms,
            stats.calls,
            stats.forwarded,
            h.cache.hits - self.cache_at_start.0,
            h.cache.misses - self.cache_at_start.1,
            h.cache.bytes() >> 10
        );
    }
}

/// How a job's application starts.
enum Boot {
    /// A program, at its entry with its initial stack.
    Program {
        /// Entry point.
        entry: u64,
        /// Initial stack pointer.
        sp: u64,
    },
    /// A job rebuilt from a checkpoint, with every register.
    Restored(Resume),
}

/// Builds a program's image (and its interpreter's, from the submitter's
/// exported system paths) into the job's first application, with the
/// job's directory, ids and terminal facts from `start`. Errors: one line
/// for the submitter.
fn boot_program(
    process: &mut Process<'_>,
    start: &Start,
    plan: &elf_load::LoadPlan,
    limit: u64,
) -> Result<Boot, String> {
    process.task.cwd = start.cwd.clone();
    process.task.exe = if start.exe.is_empty() {
        sion_app_mgr::path::absolute(&start.cwd, start.argv.first().map_or(&b""[..], |a| a))
    } else {
        start.exe.clone()
    };
    process.tty = start.tty;
    process.winsize = start.winsize;
    process.task.uid = start.uid;
    process.task.gid = start.gid;
    process.realtime_ns = start.realtime_ns;
    let argv: Vec<&[u8]> = start.argv.iter().map(|a| a.as_slice()).collect();
    let envp: Vec<&[u8]> = start.envp.iter().map(|a| a.as_slice()).collect();
    let image = Image {
        argv: &argv,
        envp: &envp,
        execfn: argv.first().copied().unwrap_or(b""),
    };
    let pid = process.task.pid;
    let interp = process.plan_interpreter(plan, limit)?;
    let built = process.build_image(pid, plan, interp.as_ref(), &image);
    if let Some(i) = interp {
        let _ = app::kill(i.staging, 9);
    }
    let (entry, sp) = built?;
    Ok(Boot::Program { entry, sp })
}

/// Memory a job may use: free memory minus [`crate::RESERVED_MEMORY`].
pub fn spare_memory() -> u64 {
    sys::sysinfo()
        .map(|i| i.free_bytes.saturating_sub(crate::RESERVED_MEMORY))
        .unwrap_or(0)
}

/// `argv` for the log, shortened to about 80 characters.
pub fn command_line(argv: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for a in argv {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&String::from_utf8_lossy(a));
        if s.len() > 80 {
            let mut cut = 77;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("...");
            break;
        }
    }
    s
}
