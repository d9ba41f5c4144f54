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
use sion_app_mgr::Abi;
use sion_app_mgr::abi::{UserLayout, page_up};
use sion_app_mgr::elf_load::{self, LoadConfig, LoadPlan, PhdrLocation};
use sion_app_mgr::job::{HostMsg, NodeMsg, Start, shell_status};
use sion_app_mgr::stack::{self, StackSpec};
use sion_app_mgr::vm::AddressSpace;
use sion_rt::sys::{self, app};

use crate::ThisNode;
use crate::app_node::AppNode;
use crate::lobby::{Lobby, Ready, refuse};
use crate::rng::Rng;
use sion_app_mgr::process::{CallError, Process};

/// Where the program file is staged in the application's address space while
/// it loads (above the i386 range, below the x86_64 mmap area's usual
/// addresses; a program whose segments would overlap it is refused).
pub const STAGING: u64 = 0x6000_0000_0000;
/// Main stack size when the program does not ask (`PT_GNU_STACK` size): 8 MiB
/// (Linux's default `RLIMIT_STACK`), or 1 MiB for jobs with less than 256 MiB.
const STACK_SIZE: u64 = 8 << 20;

/// Loads and runs a job whose program has arrived (see [`Lobby`]), to its
/// end. `job_state(n, what)` tells the Companion Manager how many jobs run
/// and what runs.
pub fn run(ready: Ready, lobby: &mut Lobby, me: &ThisNode, mut job_state: impl FnMut(u16, &str)) {
    let Ready {
        number,
        mut conn,
        start,
        pid,
        program,
    } = ready;
    let staged = page_up(start.program_len).unwrap_or(0);
    // The staging area is freed once the program is loaded.
    let spare = spare_memory() + staged;
    let limit = start.memory_limit.map_or(spare, |m| m.min(spare));
    let config = LoadConfig {
        max_image_size: limit.min(1 << 30),
        ..LoadConfig::default()
    };
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

    let layout = *config.layout(plan.abi);
    let mut node = AppNode {
        pid,
        conn,
        lobby,
        me,
        rng: Rng::new(number),
        exited: None,
    };
    node.lobby.job_started(number, pid, &start);
    let mut process = Process::new(
        &mut node,
        number,
        pid,
        plan.abi,
        AddressSpace::new(layout, limit),
    );
    process.cwd = start.cwd.clone();
    process.exe = exe_path(&start);
    process.tty = start.tty;
    process.winsize = start.winsize;
    process.uid = start.uid;
    process.gid = start.gid;
    process.realtime_ns = start.realtime_ns;
    let built = build(&mut process, &plan, &start);
    let _ = app::unmap(pid, STAGING, staged);
    let (entry, sp) = match built {
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
    let kabi = match plan.abi {
        Abi::X86_64 => kapp::ABI_X86_64,
        Abi::I386 => kapp::ABI_I386,
    } | kapp::START_FAULTS_TO_MANAGER;
    let t0 = sys::clock_ns();
    let status = match app::start(pid, entry, sp, kabi) {
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
    let _ = process.send(&NodeMsg::Exited { status });
    let stats = process.stats;
    drop(process);
    node.lobby.job_ended(status);
    sion_rt::println!(
        "apm: job {number} exited with status {} ({} ms, {} system calls, {} forwarded)",
        shell_status(status),
        ms,
        stats.calls,
        stats.forwarded
    );
}

/// Memory a job may use: free memory minus [`crate::RESERVED_MEMORY`].
pub fn spare_memory() -> u64 {
    sys::sysinfo()
        .map(|i| i.free_bytes.saturating_sub(crate::RESERVED_MEMORY))
        .unwrap_or(0)
}

/// Maps and fills the program's segments and stack; returns the entry point
/// and initial stack pointer, or why the job cannot run.
fn build(process: &mut Process<'_>, plan: &LoadPlan, start: &Start) -> Result<(u64, u64), String> {
    let pid = process.pid;
    let too_big =
        |_| String::from("the program needs more memory than the job may use (memory limit)");
    let effects = process.vm.map_image(plan).map_err(too_big)?;
    process
        .apply(&effects)
        .map_err(|_| String::from("the node ran out of memory loading the program"))?;
    let mut buf = vec![0u8; 64 * 1024];
    for seg in &plan.segments {
        let mut done = 0u64;
        while done < seg.file_len {
            let n = (seg.file_len - done).min(buf.len() as u64) as usize;
            app::read(pid, STAGING + seg.file_offset + done, &mut buf[..n])
                .and_then(|()| app::write(pid, seg.vaddr + done, &buf[..n]))
                .map_err(|e| format!("loading a segment failed: {e}"))?;
            done += n as u64;
        }
    }
    drop(buf);

    let layout = *layout_of(process.abi);
    let wanted = plan.gnu_stack.map_or(0, |g| g.size);
    let default = if process.vm.limit() >= 256 << 20 {
        STACK_SIZE
    } else {
        1 << 20
    };
    let stack_len = if wanted > 0 { wanted } else { default }.min(layout.stack_size);
    let exec = plan.gnu_stack.is_some_and(|g| g.executable);
    let (lo, hi) = process.vm.map_stack(stack_len, exec).map_err(too_big)?;
    let prot = kapp::PROT_READ | kapp::PROT_WRITE | if exec { kapp::PROT_EXEC } else { 0 };
    app::map(pid, lo, hi - lo, prot)
        .map_err(|_| String::from("the node ran out of memory for the stack"))?;
    process.stack_len = hi - lo;

    let phdr_copy = match plan.phdr {
        PhdrLocation::NotLoaded { offset, len } => {
            let mut v = vec![0u8; len as usize];
            app::read(pid, STAGING + offset, &mut v)
                .map_err(|_| String::from("cannot read the program headers"))?;
            Some(v)
        }
        PhdrLocation::Loaded(_) => None,
    };
    let argv: Vec<&[u8]> = start.argv.iter().map(|a| a.as_slice()).collect();
    let envp: Vec<&[u8]> = start.envp.iter().map(|a| a.as_slice()).collect();
    let mut random = [0u8; 16];
    process.node.random(&mut random);
    let execfn = argv.first().copied().unwrap_or(b"");
    let mut spec = StackSpec::new(plan, layout.stack_top, &argv, &envp, execfn, random);
    spec.aux.uid = start.uid;
    spec.aux.euid = start.uid;
    spec.aux.gid = start.gid;
    spec.aux.egid = start.gid;
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
    process
        .load_mem(st.sp, &st.bytes)
        .map_err(|_: CallError| String::from("cannot write the initial stack"))?;
    Ok((plan.entry, st.sp))
}

/// The address layout of an ABI's programs.
fn layout_of(abi: Abi) -> &'static UserLayout {
    match abi {
        Abi::X86_64 => &X86_64_LAYOUT,
        Abi::I386 => &I386_LAYOUT,
    }
}

static X86_64_LAYOUT: UserLayout = UserLayout::for_abi(Abi::X86_64);
static I386_LAYOUT: UserLayout = UserLayout::for_abi(Abi::I386);

/// The program's absolute path: `Start::exe`, else `cwd/argv[0]` (without
/// a leading `./`), else `argv[0]` if it is absolute.
fn exe_path(start: &Start) -> Vec<u8> {
    if !start.exe.is_empty() {
        return start.exe.clone();
    }
    let argv0 = start.argv.first().map_or(&b""[..], |a| a.as_slice());
    if argv0.first() == Some(&b'/') {
        return argv0.to_vec();
    }
    let mut rel = argv0;
    while let Some(r) = rel.strip_prefix(b"./") {
        rel = r;
    }
    let mut p = start.cwd.clone();
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(rel);
    p
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
