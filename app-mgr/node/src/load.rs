//! Running a job whose program has arrived: checking the ELF file, building
//! the application (segments, stack with argv/envp/auxv) and running it to
//! its end.
//!
//! The program is not kept in this process's small heap: the [`Lobby`]
//! receives it straight into a staging area of the new application's own
//! address space ([`STAGING`], above every address a program can use while
//! it loads), the loader reads the headers it needs from there
//! ([`sion_app_mgr::elf_load::load_plan_sparse`]), the segments are copied to
//! their places, and the staging pages are unmapped before the program starts.

use alloc::format;
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
use sion_app_mgr::process::Process;
use sion_app_mgr::syscall::exec::Image;
use sion_app_mgr::vm::AddressSpace;
use sion_rt::sys::{self, app};

use crate::ThisNode;
use crate::app_node::AppNode;
use crate::cache::FileCache;
use crate::lobby::{Lobby, Ready, refuse};
use crate::rng::Rng;

pub use sion_app_mgr::syscall::exec::STAGING;

/// Loads and runs a job whose program has arrived (see [`Lobby`]), to its
/// end. `job_state(n, what)` tells the Companion Manager how many jobs run
/// and what runs.
pub fn run(
    ready: Ready,
    lobby: &mut Lobby,
    me: &ThisNode,
    cache: &mut FileCache,
    mut job_state: impl FnMut(u16, &str),
) {
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
        cache.clear();
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
                return;
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
            return;
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
        return;
    }

    // Checkpoints are of x86_64 jobs only (sion_app_mgr::checkpoint).
    let abi = plan.as_ref().map_or(Abi::X86_64, |p| p.abi);
    let layout = *config.layout(abi);
    let (hits, misses) = (cache.hits, cache.misses);
    let mut node = AppNode::new(pid, conn, lobby, me, Rng::new(number), cache);
    node.lobby.job_started(number, pid, &start);
    let mut process = Process::new(
        &mut node,
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
            drop(process);
            refuse(node.conn, number, &why);
            return;
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
        return;
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
    job_state(
        1,
        &format!(
            "job {number}: {} from {}",
            command_line(&start.argv),
            if start.from.is_empty() {
                "?"
            } else {
                &start.from
            }
        ),
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
    let status = match started {
        Ok(()) => process.run(),
        Err(e) => {
            sion_rt::println!("apm: job {number}: cannot start: {e}");
            let _ = app::kill(pid, 9);
            9
        }
    };
    let ms = (sys::clock_ns() - t0) / 1_000_000;
    // The node is free again before hostd hears of the end, so a placement
    // that follows at once is not denied as busy.
    job_state(0, "");
    let killed = process.killed_at_end;
    let unsupported = core::mem::take(&mut process.unsupported);
    let _ = process.send(&NodeMsg::Exited {
        status,
        killed,
        unsupported,
    });
    let stats = process.stats;
    drop(process);
    node.lobby.job_ended(status);
    sion_rt::println!(
        "apm: job {number} exited with status {} ({} ms, {} system calls, {} forwarded; file cache: {} hits, {} misses, {} KiB held)",
        shell_status(status),
        ms,
        stats.calls,
        stats.forwarded,
        node.cache.hits - hits,
        node.cache.misses - misses,
        node.cache.bytes() >> 10
    );
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
