//! The commands: `up`, `down`, `status`, `kill-node`, `restart-node` and `exec` on one named
//! LAN whose run directory holds the state file and the nodes' logs.

use crate::error::{Error, MissingNode};
use crate::isolation::{self, check_tun_access, netns_exists, require_tool};
use crate::logscan::read_configured_address;
use crate::plan::{self, BRIDGE, HOST_ADDR, NodePlan};
use crate::process::{self, ProcId};
use crate::state::{Isolation, NodeState, RunState, STATE_VERSION};
use anyhow::{Context, Result, anyhow, bail};
use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The QEMU binary every node runs.
pub const QEMU: &str = "qemu-system-x86_64";
/// How long a stopped QEMU gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(3);
/// How long a freshly started QEMU is watched for an immediate failure.
const STARTUP_CHECK: Duration = Duration::from_millis(1000);
/// How long `up`/`down` wait for another `qemu-net` holding the LAN's lock.
const LOCK_WAIT: Duration = Duration::from_secs(15);

/// One LAN: its name and run directory.
#[derive(Clone, Debug)]
pub struct Lan {
    /// The LAN's name (`--name`): picks the namespace `NAME-qemu-net` as root.
    pub name: String,
    /// Where the state file and logs live.
    pub run_dir: PathBuf,
}

/// What `up` should start.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Number of nodes, 1..=[`plan::MAX_NODES`].
    pub nodes: usize,
    /// Memory sizes in MiB: one for all nodes, or one per node.
    pub memory: Vec<u32>,
    /// Processors: none (one each), one count for all nodes, or one per node.
    pub cpus: Vec<u32>,
    /// Network cards: none (all virtio), one for all nodes, or one per node.
    pub nics: Vec<plan::NicModel>,
    /// Firmware: none (all BIOS), one for all nodes, or one per node. UEFI
    /// nodes boot the UEFI image beside `image` with OVMF.
    pub firmware: Vec<sion_image::Firmware>,
    /// SiON boot arguments for every node ("" for none).
    pub cmdline: String,
    /// The disk image every node boots.
    pub image: PathBuf,
    /// Wait until every node logs `net: configured`, at most this long.
    pub wait: Option<Duration>,
    /// Stay until Ctrl-C (SIGINT/SIGTERM) or until every node stops, then tear down.
    pub foreground: bool,
    /// Use a user namespace even as root.
    pub userns: bool,
    /// The last MAC byte of node 0 (node K gets `first_mac + K`), normally 0;
    /// see [`plan::Hardware::first_mac`].
    pub first_mac: u8,
}

/// The default run directory of LAN `name`: `TARGET/qemu-net/NAME`, with
/// `TARGET` as [`sion_image::target_dir`] finds it.
pub fn default_run_dir(name: &str) -> PathBuf {
    sion_image::target_dir().join("qemu-net").join(name)
}

/// The default disk image: `TARGET/sion.img`.
pub fn default_image() -> PathBuf {
    sion_image::target_dir().join("sion.img")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Lan {
    /// The LAN `name` with its run directory (`run_dir`, else
    /// [`default_run_dir`]). Errors: an invalid name.
    pub fn new(name: &str, run_dir: Option<PathBuf>) -> Result<Lan> {
        plan::validate_name(name)?;
        Ok(Lan {
            name: name.to_string(),
            run_dir: run_dir.unwrap_or_else(|| default_run_dir(name)),
        })
    }

    /// Takes the LAN's lock (`RUN_DIR/lock`), retrying for a while.
    fn lock(&self) -> Result<Flock<File>> {
        std::fs::create_dir_all(&self.run_dir)
            .with_context(|| format!("creating the run directory {}", self.run_dir.display()))?;
        let path = self.run_dir.join("lock");
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(lock),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(Error::Busy(self.name.clone()).into());
                }
                Err((_, e)) => return Err(e).context(format!("locking {}", path.display())),
            }
        }
    }

    /// Cleans up a stale run (state file whose processes are gone, or a
    /// leftover named namespace) before `up`. Errors: [`Error::AlreadyUp`]
    /// when the run is alive.
    fn clean_stale(&self) -> Result<()> {
        if let Some(state) = RunState::load(&self.run_dir)? {
            if state.is_up() {
                return Err(Error::AlreadyUp {
                    name: self.name.clone(),
                    alive: state.alive_nodes(),
                    nodes: state.nodes.len(),
                    state: crate::state::state_path(&self.run_dir),
                }
                .into());
            }
            eprintln!(
                "qemu-net: cleaning up a stale run of `{}` (its QEMUs are gone)",
                self.name
            );
            self.teardown(&state)?;
        }
        self.clean_leftover_netns()?;
        Ok(())
    }

    /// Removes the named namespace of this LAN if it exists without a state
    /// file (a crash between creating it and writing the state). Returns
    /// whether there was one.
    fn clean_leftover_netns(&self) -> Result<bool> {
        let netns = plan::netns_for(&self.name);
        if !netns_exists(&netns) {
            return Ok(false);
        }
        if !is_root() {
            eprintln!(
                "qemu-net: note: a leftover network namespace {netns} exists; `sudo qemu-net down --name {}` removes it",
                self.name
            );
            return Ok(false);
        }
        eprintln!("qemu-net: removing the leftover network namespace {netns}");
        let iso = Isolation::Netns { netns };
        let stopped = iso.destroy(&[])?;
        if !stopped.is_empty() {
            eprintln!("qemu-net: stopped processes left inside it: {stopped:?}");
        }
        Ok(true)
    }

    /// Stops every node of `state` (SIGTERM, SIGKILL after [`GRACE`]), removes
    /// the taps, bridge and namespace, then the state file. Errors: a process
    /// that could not be stopped (the state file is then kept), `ip` failures.
    fn teardown(&self, state: &RunState) -> Result<()> {
        if let Isolation::Netns { netns } = &state.isolation
            && !is_root()
            && netns_exists(netns)
        {
            return Err(Error::NeedRoot {
                name: self.name.clone(),
                netns: netns.clone(),
            }
            .into());
        }
        let procs: Vec<ProcId> = state.nodes.iter().filter_map(|n| n.process).collect();
        let left = process::stop(&procs, GRACE);
        if !left.is_empty() {
            bail!(
                "could not stop the QEMUs with pids {:?} (do they belong to another user? run `qemu-net down` as that user or root)",
                left.iter().map(|p| p.pid).collect::<Vec<_>>()
            );
        }
        let taps: Vec<String> = state.nodes.iter().map(|n| n.tap.clone()).collect();
        let others = state.isolation.destroy(&taps)?;
        if !others.is_empty() {
            eprintln!("qemu-net: also stopped processes that had joined the LAN: {others:?}");
        }
        RunState::remove(&self.run_dir)
    }

    /// `qemu-net up`: checks QEMU and the image, cleans up a stale run, creates
    /// the namespace, bridge and taps, starts the nodes and records the run.
    /// Then, with `wait`, waits for every node's address; with `foreground`,
    /// stays until Ctrl-C and tears down. Errors: see [`Error`]; on a failure
    /// before the nodes run, everything started is torn down again.
    pub fn up(&self, opts: &UpOptions) -> Result<()> {
        if isolation::find_in_path(QEMU).is_none() {
            return Err(Error::QemuMissing.into());
        }
        require_tool("ip", "iproute2")?;
        if !opts.image.is_file() {
            return Err(Error::ImageMissing(opts.image.clone()).into());
        }
        let image = opts.image.canonicalize()?;
        plan::no_comma(&image)?;
        let lock = self.lock()?;
        let run_dir = self.run_dir.canonicalize()?;
        let hw = plan::Hardware {
            memory: &opts.memory,
            cpus: &opts.cpus,
            nics: &opts.nics,
            firmware: &opts.firmware,
            first_mac: opts.first_mac,
        };
        let nodes = plan::plan_nodes(opts.nodes, &hw, &run_dir)?;
        let ovmf = if nodes
            .iter()
            .any(|n| n.firmware == sion_image::Firmware::Uefi)
        {
            let uefi = sion_image::uefi_image_for(&image);
            if !uefi.is_file() {
                return Err(Error::ImageMissing(uefi).into());
            }
            sion_image::ovmf().ok_or(Error::OvmfMissing)?
        } else {
            PathBuf::new()
        };
        let userns = opts.userns || !is_root();
        if userns {
            check_tun_access()?;
        }
        self.clean_stale()?;

        let stop_flag = Arc::new(AtomicBool::new(false));
        if opts.foreground {
            let flag = stop_flag.clone();
            ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
                .context("installing the Ctrl-C handler")?;
        }

        let isolation = if userns {
            Isolation::create_userns()?
        } else {
            Isolation::create_netns(&plan::netns_for(&self.name))?
        };
        let mut state = RunState {
            version: STATE_VERSION,
            name: self.name.clone(),
            isolation,
            bridge: BRIDGE.into(),
            host_addr: HOST_ADDR.into(),
            image: image.clone(),
            cmdline: opts.cmdline.clone(),
            supervisor: if opts.foreground {
                ProcId::of(std::process::id() as i32)
            } else {
                None
            },
            nodes: nodes
                .iter()
                .map(|n| NodeState {
                    index: n.index,
                    mac: n.mac.clone(),
                    tap: n.tap.clone(),
                    memory_mb: n.memory_mb,
                    cpus: n.cpus,
                    nic: n.nic.name().into(),
                    firmware: n.firmware.name().into(),
                    log: n.log.clone(),
                    qemu_log: n.qemu_log.clone(),
                    process: None,
                })
                .collect(),
        };
        let mut children = Vec::new();
        let started = state.save(&run_dir).and_then(|()| {
            self.start_nodes(
                &mut state,
                &nodes,
                (&image, &ovmf),
                &opts.cmdline,
                &mut children,
            )
        });
        if let Err(e) = started {
            if let Err(e2) = self.teardown(&state) {
                eprintln!("qemu-net: cleaning up after the failure also failed: {e2:#}");
            }
            return Err(e);
        }
        drop(lock);
        print_started(&state, &run_dir);

        if let Some(timeout) = opts.wait {
            let flag = opts.foreground.then_some(&*stop_flag);
            if let Err(mut e) = wait_configured(&state, timeout, flag) {
                if opts.foreground {
                    self.teardown_own(&state)?;
                    if let Some(Error::WaitTimeout { torn_down, .. }) = e.downcast_mut::<Error>() {
                        *torn_down = true;
                    }
                }
                return Err(e);
            }
        }
        if opts.foreground {
            self.supervise(&state, &mut children, &stop_flag)?;
        }
        Ok(())
    }

    /// Builds the bridge and taps, clears old logs and starts every QEMU,
    /// saving the state after each; then watches them for [`STARTUP_CHECK`]
    /// to catch an immediate failure (bad tap, bad image).
    fn start_nodes(
        &self,
        state: &mut RunState,
        nodes: &[NodePlan],
        (image, ovmf): (&Path, &Path),
        cmdline: &str,
        children: &mut Vec<Child>,
    ) -> Result<()> {
        let taps: Vec<String> = nodes.iter().map(|n| n.tap.clone()).collect();
        state.isolation.build_lan(&taps)?;
        remove_old_logs(&self.run_dir)?;
        for node in nodes {
            let child = spawn_qemu(state, node, (image, ovmf), cmdline)?;
            state.nodes[node.index].process = ProcId::of(child.id() as i32);
            children.push(child);
            state.save(&self.run_dir)?;
        }
        let deadline = Instant::now() + STARTUP_CHECK;
        while Instant::now() < deadline {
            for (i, child) in children.iter_mut().enumerate() {
                if let Some(status) = child.try_wait()? {
                    return Err(Error::QemuExited {
                        index: i,
                        status: status.to_string(),
                        stderr: tail(&nodes[i].qemu_log, 2000),
                        qemu_log: nodes[i].qemu_log.clone(),
                    }
                    .into());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Tears down the run this `--foreground` process started, unless a
    /// `qemu-net down` already did.
    fn teardown_own(&self, state: &RunState) -> Result<()> {
        let _lock = self.lock()?;
        match RunState::load(&self.run_dir)? {
            Some(now) if now.supervisor == state.supervisor => {
                self.teardown(&now)?;
                eprintln!("qemu-net: the LAN `{}` is down", self.name);
            }
            _ => eprintln!("qemu-net: the LAN `{}` was already taken down", self.name),
        }
        Ok(())
    }

    /// The `--foreground` loop: reports nodes' addresses and exits, until
    /// Ctrl-C/SIGTERM or every node has stopped; then tears down.
    fn supervise(&self, state: &RunState, children: &mut [Child], stop: &AtomicBool) -> Result<()> {
        eprintln!("qemu-net: running in the foreground; Ctrl-C stops the LAN");
        let n = children.len();
        let mut exited = vec![false; n];
        let mut shown: Vec<Option<Ipv4Addr>> = vec![None; n];
        loop {
            if stop.load(Ordering::SeqCst) {
                eprintln!("qemu-net: stopping the LAN");
                break;
            }
            for (i, child) in children.iter_mut().enumerate() {
                if !exited[i]
                    && let Some(status) = child.try_wait()?
                {
                    eprintln!("qemu-net: node {i} stopped ({status})");
                    exited[i] = true;
                }
                let addr = read_configured_address(&state.nodes[i].log);
                if let Some(a) = addr
                    && addr != shown[i]
                {
                    eprintln!("qemu-net: node {i} configured {a}");
                    shown[i] = addr;
                }
            }
            if exited.iter().all(|&e| e) {
                eprintln!("qemu-net: every node has stopped");
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.teardown_own(state)?;
        for child in children.iter_mut() {
            let _ = child.wait();
        }
        Ok(())
    }

    /// `qemu-net down`: stops every node, removes the taps, bridge, namespace
    /// and state file; also cleans up a stale run or a leftover namespace.
    /// Says so and succeeds when nothing is up. Errors: processes that cannot
    /// be stopped, a root-owned namespace for a non-root user, `ip` failures.
    pub fn down(&self) -> Result<()> {
        let _lock = self.lock()?;
        match RunState::load(&self.run_dir)? {
            Some(state) => {
                let alive = state.alive_nodes();
                self.teardown(&state)?;
                println!(
                    "the LAN `{}` is down: stopped {alive} running node(s) of {}, removed the taps, bridge and {}; logs stay in {}",
                    self.name,
                    state.nodes.len(),
                    match &state.isolation {
                        Isolation::Netns { netns } => format!("network namespace {netns}"),
                        Isolation::Userns { .. } => "user+network namespace".into(),
                    },
                    self.run_dir.display()
                );
            }
            None => {
                if self.clean_leftover_netns()? {
                    println!("removed the leftover network namespace of `{}`", self.name);
                } else {
                    println!("the LAN `{}` is not up; nothing to stop", self.name);
                }
            }
        }
        Ok(())
    }

    /// `qemu-net kill-node K`: stops node K's QEMU (SIGTERM, SIGKILL after
    /// [`GRACE`]), leaving the rest of the LAN up. Errors: [`Error::NotUp`],
    /// [`Error::NoSuchNode`], a QEMU that cannot be stopped.
    pub fn kill_node(&self, index: usize) -> Result<()> {
        let _lock = self.lock()?;
        let state =
            RunState::load(&self.run_dir)?.ok_or_else(|| Error::NotUp(self.name.clone()))?;
        let node = state.nodes.get(index).ok_or(Error::NoSuchNode {
            index,
            nodes: state.nodes.len(),
        })?;
        match node.process {
            Some(p) if p.is_alive() => {
                let left = process::stop(&[p], GRACE);
                if !left.is_empty() {
                    bail!(
                        "could not stop node {index} (pid {}); is it another user's?",
                        p.pid
                    );
                }
                println!("stopped node {index} (pid {})", p.pid);
            }
            _ => println!("node {index} was not running"),
        }
        Ok(())
    }

    /// Starts node K's QEMU again after it stopped (`kill-node`, a crash),
    /// with the hardware, image and boot arguments it was started with, on
    /// its tap; its serial log starts afresh. Errors: [`Error::NotUp`],
    /// [`Error::NoSuchNode`], a node still running, QEMU failing to start.
    pub fn restart_node(&self, index: usize) -> Result<()> {
        let _lock = self.lock()?;
        let mut state =
            RunState::load(&self.run_dir)?.ok_or_else(|| Error::NotUp(self.name.clone()))?;
        let n = state.nodes.get(index).ok_or(Error::NoSuchNode {
            index,
            nodes: state.nodes.len(),
        })?;
        if let Some(p) = n.process.filter(|p| p.is_alive()) {
            bail!(
                "node {index} is still running (pid {}); stop it first with kill-node",
                p.pid
            );
        }
        let node = NodePlan {
            index,
            mac: n.mac.clone(),
            tap: n.tap.clone(),
            memory_mb: n.memory_mb,
            cpus: n.cpus,
            nic: plan::parse_nic_list(&n.nic)?
                .first()
                .copied()
                .ok_or_else(|| anyhow!("node {index} has no network card in its state"))?,
            firmware: n
                .firmware
                .parse()
                .map_err(|e| anyhow!("node {index}: {e}"))?,
            log: n.log.clone(),
            qemu_log: n.qemu_log.clone(),
        };
        let ovmf = if node.firmware == sion_image::Firmware::Uefi {
            sion_image::ovmf().ok_or(Error::OvmfMissing)?
        } else {
            PathBuf::new()
        };
        let _ = std::fs::remove_file(&node.log);
        let (image, cmdline) = (state.image.clone(), state.cmdline.clone());
        let child = spawn_qemu(&state, &node, (&image, &ovmf), &cmdline)?;
        let pid = child.id();
        state.nodes[index].process = ProcId::of(pid as i32);
        state.save(&self.run_dir)?;
        println!("started node {index} again (pid {pid})");
        Ok(())
    }

    /// The LAN's status; `None` when no run is recorded.
    pub fn status(&self) -> Result<Option<StatusReport>> {
        Ok(RunState::load(&self.run_dir)?.map(|s| StatusReport::of(&s, &self.run_dir)))
    }

    /// A [`Command`] that runs `command` (program and arguments) inside the
    /// LAN's namespace, for Rust callers (tests, tools) to spawn as they like.
    /// Errors: [`Error::NotUp`], [`Error::NeedRoot`] (a root-owned namespace
    /// and a non-root caller).
    pub fn command(&self, command: &[String]) -> Result<Command> {
        anyhow::ensure!(!command.is_empty(), "no command given");
        let state =
            RunState::load(&self.run_dir)?.ok_or_else(|| Error::NotUp(self.name.clone()))?;
        if !state.isolation.exists() {
            return Err(Error::NotUp(self.name.clone()).into());
        }
        if let Isolation::Netns { netns } = &state.isolation
            && !is_root()
        {
            return Err(Error::NeedRoot {
                name: self.name.clone(),
                netns: netns.clone(),
            }
            .into());
        }
        let argv = state.isolation.wrap(command);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        Ok(cmd)
    }

    /// `qemu-net exec -- CMD…`: replaces this process with `CMD…` running inside
    /// the LAN's namespace (see [`Lan::command`]), so stdio, signals and the
    /// exit status pass through. Returns only on failure.
    pub fn exec(&self, command: &[String]) -> Result<()> {
        let err = self.command(command)?.exec();
        Err(err).with_context(|| format!("running {}", command.join(" ")))
    }
}

/// Removes the logs of an earlier run (`node-*.log`, also `node-*.qemu.log`)
/// from `run_dir`, so that neither `--wait` nor `status` read old lines.
/// Starts one node's QEMU in its own process group (Ctrl-C in the terminal
/// does not reach it, and it keeps running after `up` returns), its output
/// to the node's QEMU log.
fn spawn_qemu(
    state: &RunState,
    node: &NodePlan,
    (image, ovmf): (&Path, &Path),
    cmdline: &str,
) -> Result<Child> {
    let mut argv = vec![QEMU.to_string()];
    argv.extend(plan::node_qemu_args(image, ovmf, cmdline, node));
    let argv = state.isolation.wrap(&argv);
    let out = File::create(&node.qemu_log)
        .with_context(|| format!("creating {}", node.qemu_log.display()))?;
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting node {}: {}", node.index, argv.join(" ")))
}

fn remove_old_logs(run_dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(run_dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("node-") && name.ends_with(".log") {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// The last `max` bytes of the file at `path` (lossy UTF-8), trimmed.
fn tail(path: &Path, max: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

fn print_started(state: &RunState, run_dir: &Path) {
    println!(
        "the LAN `{}` is up: {} node(s) in the {}, bridge {} with host address {}",
        state.name,
        state.nodes.len(),
        state.isolation.describe(),
        state.bridge,
        state.host_addr
    );
    for n in &state.nodes {
        println!(
            "  node {}  pid {}  {}  {}  {} MiB  {} cpu  log {}",
            n.index,
            n.process.map_or(0, |p| p.pid),
            n.mac,
            n.tap,
            n.memory_mb,
            n.cpus,
            n.log.display()
        );
    }
    println!(
        "state in {}; join the LAN with `qemu-net exec -- CMD…`, stop it with `qemu-net down`",
        crate::state::state_path(run_dir).display()
    );
}

/// Waits until every node's log has a `net: configured` line, at most
/// `timeout`, printing progress on stderr. Gives up early when a node's QEMU
/// has stopped, or when `stop` is set. Errors: [`Error::WaitTimeout`] naming
/// the nodes that did not come up and their logs.
pub fn wait_configured(
    state: &RunState,
    timeout: Duration,
    stop: Option<&AtomicBool>,
) -> Result<Vec<Ipv4Addr>> {
    let n = state.nodes.len();
    let start = Instant::now();
    let deadline = start + timeout;
    let mut addrs: Vec<Option<Ipv4Addr>> = vec![None; n];
    let mut last_note = start;
    eprintln!(
        "qemu-net: waiting up to {} s for {n} node(s) to configure their network…",
        timeout.as_secs()
    );
    loop {
        for (i, node) in state.nodes.iter().enumerate() {
            if addrs[i].is_none()
                && let Some(a) = read_configured_address(&node.log)
            {
                eprintln!("qemu-net:   node {i}: {a}");
                addrs[i] = Some(a);
            }
        }
        if addrs.iter().all(Option::is_some) {
            eprintln!("qemu-net: all {n} node(s) are on the LAN");
            return Ok(addrs.into_iter().flatten().collect());
        }
        let missing: Vec<MissingNode> = state
            .nodes
            .iter()
            .filter(|node| addrs[node.index].is_none())
            .map(|node| MissingNode {
                index: node.index,
                running: node.process.is_some_and(|p| p.is_alive()),
                log: node.log.clone(),
            })
            .collect();
        let now = Instant::now();
        if now >= deadline || missing.iter().any(|m| !m.running) {
            return Err(Error::WaitTimeout {
                seconds: timeout.as_secs(),
                missing,
                torn_down: false,
            }
            .into());
        }
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            bail!("interrupted while waiting for the nodes");
        }
        if now - last_note >= Duration::from_secs(5) {
            last_note = now;
            let list: Vec<String> = missing.iter().map(|m| m.index.to_string()).collect();
            eprintln!(
                "qemu-net:   still waiting for node(s) {} ({} s left)",
                list.join(", "),
                (deadline - now).as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One node in `qemu-net status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// 0-based index.
    pub index: usize,
    /// QEMU's pid (0 if it never started).
    pub pid: i32,
    /// Whether that QEMU still runs.
    pub alive: bool,
    /// The node's MAC.
    pub mac: String,
    /// Its tap inside the namespace.
    pub tap: String,
    /// Its memory in MiB.
    pub memory_mb: u32,
    /// Its processors.
    pub cpus: u32,
    /// Its network card (`virtio` or `e1000`).
    pub nic: String,
    /// Its firmware (`bios` or `uefi`).
    pub firmware: String,
    /// The address it logged with `net: configured`, once it has.
    pub address: Option<Ipv4Addr>,
    /// Its serial log.
    pub log: PathBuf,
}

/// `qemu-net status` (also its `--json` form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// The LAN's name.
    pub name: String,
    /// Whether any node (or the foreground supervisor) still runs.
    pub up: bool,
    /// How the LAN is isolated.
    pub isolation: Isolation,
    /// The bridge in the namespace.
    pub bridge: String,
    /// The host side's address (CIDR).
    pub host_addr: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The nodes.
    pub nodes: Vec<NodeStatus>,
}

impl StatusReport {
    /// The status of the recorded run `state` (liveness and addresses read now).
    pub fn of(state: &RunState, run_dir: &Path) -> StatusReport {
        StatusReport {
            name: state.name.clone(),
            up: state.is_up(),
            isolation: state.isolation.clone(),
            bridge: state.bridge.clone(),
            host_addr: state.host_addr.clone(),
            run_dir: run_dir.to_path_buf(),
            nodes: state
                .nodes
                .iter()
                .map(|n| NodeStatus {
                    index: n.index,
                    pid: n.process.map_or(0, |p| p.pid),
                    alive: n.process.is_some_and(|p| p.is_alive()),
                    mac: n.mac.clone(),
                    tap: n.tap.clone(),
                    memory_mb: n.memory_mb,
                    cpus: n.cpus,
                    nic: n.nic.clone(),
                    firmware: n.firmware.clone(),
                    address: read_configured_address(&n.log),
                    log: n.log.clone(),
                })
                .collect(),
        }
    }

    /// The human-readable table: a header line, then one row per node.
    pub fn table(&self) -> String {
        let mut s = format!(
            "LAN `{}` ({}): {}, bridge {}, host {}\n",
            self.name,
            if self.up { "up" } else { "stale: no node runs" },
            self.isolation.describe(),
            self.bridge,
            self.host_addr
        );
        s.push_str(&format!(
            "{:<5} {:<8} {:<5} {:<17} {:<6} {:>8} {:>4}  {:<6} {:<4}  {:<15} {}\n",
            "NODE", "PID", "STATE", "MAC", "TAP", "MEMORY", "CPUS", "NIC", "FW", "ADDRESS", "LOG"
        ));
        for n in &self.nodes {
            s.push_str(&format!(
                "{:<5} {:<8} {:<5} {:<17} {:<6} {:>4} MiB {:>4}  {:<6} {:<4}  {:<15} {}\n",
                n.index,
                n.pid,
                if n.alive { "up" } else { "down" },
                n.mac,
                n.tap,
                n.memory_mb,
                n.cpus,
                n.nic,
                n.firmware,
                n.address.map_or("-".to_string(), |a| a.to_string()),
                n.log.display()
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_liveness_addresses_and_formats() {
        let dir = std::env::temp_dir().join(format!("qemu-net-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log0 = dir.join("node-0.log");
        std::fs::write(
            &log0,
            "net: configured 169.254.77.3/16 (link-local) on 52:54:00:53:4e:00\n",
        )
        .unwrap();
        let me = ProcId::of(std::process::id() as i32).unwrap();
        let node = |index: usize, process| NodeState {
            index,
            mac: plan::mac_for(index),
            tap: plan::tap_for(index),
            memory_mb: 256,
            cpus: 1,
            nic: if index == 0 { "e1000" } else { "virtio" }.into(),
            firmware: "bios".into(),
            log: dir.join(format!("node-{index}.log")),
            qemu_log: dir.join(format!("node-{index}.qemu.log")),
            process,
        };
        let state = RunState {
            version: STATE_VERSION,
            name: "t".into(),
            isolation: Isolation::Netns {
                netns: "t-qemu-net".into(),
            },
            bridge: BRIDGE.into(),
            host_addr: HOST_ADDR.into(),
            image: "/i".into(),
            cmdline: String::new(),
            supervisor: None,
            nodes: vec![node(0, Some(me)), node(1, None)],
        };
        let report = StatusReport::of(&state, &dir);
        assert!(report.up);
        assert_eq!(
            report.nodes[0].address,
            Some(Ipv4Addr::new(169, 254, 77, 3))
        );
        assert!(report.nodes[0].alive);
        assert_eq!(report.nodes[1].address, None);
        assert!(!report.nodes[1].alive);
        let table = report.table();
        assert!(table.contains("169.254.77.3"), "{table}");
        assert!(table.contains("52:54:00:53:4e:01"), "{table}");
        assert!(table.contains(" e1000  bios "), "{table}");
        assert_eq!(table.lines().count(), 4);
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["nodes"][0]["address"], "169.254.77.3");
        assert_eq!(json["nodes"][1]["address"], serde_json::Value::Null);
        assert_eq!(json["isolation"]["kind"], "netns");
        assert_eq!(json["nodes"][0]["nic"], "e1000");
        assert_eq!(json["nodes"][1]["firmware"], "bios");

        // --wait gives up at once when a node's QEMU is gone, naming it.
        let err = wait_configured(&state, Duration::from_secs(5), None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("node 1: QEMU exited"), "{msg}");
        assert!(!msg.contains("node 0:"), "{msg}");
        // And times out when a running node never configures.
        let mut quiet = state.clone();
        quiet.nodes[1].process = Some(me);
        let t = Instant::now();
        let err = wait_configured(&quiet, Duration::from_millis(300), None).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(300));
        match err.downcast_ref::<Error>() {
            Some(Error::WaitTimeout { missing, .. }) => {
                assert_eq!(missing.len(), 1);
                assert_eq!(missing[0].index, 1);
                assert!(missing[0].running);
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(
            dir.join("node-1.log"),
            "net: configured 169.254.8.9/16 (link-local) on 52:54:00:53:4e:01\n",
        )
        .unwrap();
        assert_eq!(
            wait_configured(&quiet, Duration::from_secs(1), None).unwrap(),
            [
                Ipv4Addr::new(169, 254, 77, 3),
                Ipv4Addr::new(169, 254, 8, 9)
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
