//! The kernel's integration tests: each boots the real kernel from the test
//! disk image in QEMU, with a test process as `init`, and checks its serial log.

use sion_tests::Node;
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(60);
const RUN: Duration = Duration::from_secs(60);

/// The boot banner appears, the first process runs, and the kernel reaches
/// its idle loop once nothing is left to run.
#[test]
fn boots_to_idle() {
    let mut node = Node::boot("boots_to_idle", "");
    node.wait_for(
        "SiON 0.1.0 (Self Integrated Operating-system for Nodes) booting",
        BOOT,
    );
    node.wait_for("init: SiON node up", RUN);
    node.wait_for("idle: no process ready", RUN);
}

/// On machines with 2 and 4 processors every CPU comes up and runs the
/// scheduler, and the node still reaches its idle loop.
#[test]
fn every_cpu_comes_up() {
    for cpus in [2, 4] {
        let mut node = Node::boot_smp(&format!("every_cpu_{cpus}"), "", cpus);
        node.wait_for(&format!("cpus: {cpus} found, SiON runs on {cpus}"), BOOT);
        for cpu in 1..cpus {
            node.wait_for(&format!("smp: cpu {cpu} (APIC id "), RUN);
        }
        node.wait_for("init: SiON node up", RUN);
        node.wait_for("idle: no process ready", RUN);
    }
}

/// Two CPU-bound processes that never yield both make progress: each one's
/// progress lines appear before the other one's last.
#[test]
fn preemption_shares_the_cpu() {
    let mut node = Node::boot("preemption", "init=t-preempt");
    node.wait_for("preempt: both spinners ended: Exited(0) Exited(0)", RUN);
    let log = node.log();
    let pos = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("missing {needle:?} in\n{log}"))
    };
    // Without preemption the first spinner would finish all 15 rounds before
    // the second printed anything.
    assert!(
        pos("spin B: round 1 ") < pos("spin A: round 15 "),
        "B starved while A ran:\n{log}"
    );
    assert!(
        pos("spin A: round 1 ") < pos("spin B: round 15 "),
        "A starved while B ran:\n{log}"
    );
    for name in ["A", "B"] {
        let rounds = node.lines_with(&format!("spin {name}: round "));
        assert_eq!(rounds.len(), 15, "spinner {name} rounds: {rounds:?}");
    }
}

/// IPC contents arrive intact for 0, 4, 1024, 4096 and 65536 bytes, a receive
/// blocks until its message arrives, and a receive with a timeout times out.
#[test]
fn ipc_delivers_intact_and_blocks() {
    let mut node = Node::boot("ipc", "init=t-ipc");
    let done = node.wait_for("ipc: done", RUN);
    assert!(
        done.contains("0 failures") && done.contains("Exited(0)"),
        "{done}\n{}",
        node.log()
    );
    for size in [0, 4, 1024, 4096, 65536] {
        node.wait_for(&format!("ipc: {size} bytes: intact"), RUN);
    }
    let blocked = node.wait_for("ipc-echo: receive blocked", RUN);
    assert!(blocked.contains("order ok"), "{blocked}");
    let ms: u64 = number_after(&blocked, "receive blocked ");
    assert!(
        ms >= 250,
        "receive returned after {ms} ms, before the 300 ms send: {blocked}"
    );
    let timeout = node.wait_for("ipc: receive timed out after", RUN);
    let ms: u64 = number_after(&timeout, "timed out after ");
    assert!((100..5000).contains(&ms), "{timeout}");
}

/// A process that reads kernel memory, runs a privileged instruction, divides
/// by zero, executes an invalid opcode or writes through null is killed with
/// the signal Linux would send, and reported; a worker keeps running.
#[test]
fn faulting_processes_are_killed_and_others_run_on() {
    let mut node = Node::boot("faults", "init=t-fault");
    let expected = [
        ("kernel-read", 11, "page fault"),
        ("privileged", 11, "general protection fault"),
        ("divide", 8, "divide error"),
        ("invalid-opcode", 4, "invalid opcode"),
        ("null-write", 11, "page fault"),
    ];
    for (kind, signal, _) in expected {
        node.wait_for(
            &format!("fault: child {kind} ended by signal {signal}"),
            RUN,
        );
    }
    node.wait_for("fault: worker ended with Exited(0)", RUN);
    let kills = node.lines_with("(t-fault-child) killed by");
    assert_eq!(
        kills.len(),
        expected.len(),
        "kernel kill reports: {kills:?}"
    );
    for ((_, _, reason), line) in expected.iter().zip(&kills) {
        assert!(line.contains(reason), "expected {reason:?} in {line:?}");
    }
    assert!(node.lines_with("SURVIVED").is_empty(), "{}", node.log());
    // The worker printed progress while the faults happened.
    assert_eq!(node.lines_with("spin worker: round ").len(), 15);
}

/// System calls with bad pointers and arguments return errors; the caller and
/// the kernel live on.
#[test]
fn bad_system_call_arguments_return_errors() {
    let mut node = Node::boot("badptr", "init=t-badptr");
    let line = node.wait_for("bad calls returned the expected error", RUN);
    assert!(line.contains("badptr: 14/14"), "{line}\n{}", node.log());
    node.wait_for("badptr: still alive", RUN);
    node.wait_for("idle: no process ready", RUN);
}

/// Two processes doing different SSE work under preemption both get exact
/// results: the FPU/SSE state is saved and restored on every switch.
#[test]
fn fpu_state_survives_preemption() {
    let mut node = Node::boot("fpu", "init=t-fpu");
    node.wait_for_all(&["fpu worker 1: ok", "fpu worker 3: ok"], RUN);
    node.wait_for("fpu: workers ended: Exited(0) Exited(0)", RUN);
}

fn number_after(line: &str, prefix: &str) -> u64 {
    let rest = &line[line
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} not in {line:?}"))
        + prefix.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .expect("a number")
}

/// Linux applications: a manager process builds them, their `syscall` (64-bit)
/// and `int 0x80` (i386, compatibility mode) calls arrive at the manager as
/// messages and its replies resume them; a faulting application and one
/// trying SiON's own `int 0x40` are killed, and the manager hears of every end.
#[test]
fn applications_trap_linux_system_calls_to_their_manager() {
    let mut node = Node::boot("applications", "init=t-app");
    node.wait_for("app: done", RUN);
    let expected = [
        "app x86_64: write(fd 1, \"hello\") via abi 64",
        "app x86_64: ended Exited(42)",
        "app i386: write(fd 1, \"i386\") via abi 32",
        "app i386: ended Exited(4)",
        "app ud2: ended Signaled(4)",
        "app int40: ended Signaled(11)",
    ];
    for line in expected {
        assert!(
            !node.lines_with(line).is_empty(),
            "missing {line:?} in\n{}",
            node.log()
        );
    }
}

/// The node's screen (the bootloader's framebuffer) mirrors the console: the
/// first text lines are drawn, the rest of the screen stays dark.
#[test]
fn screen_shows_the_console() {
    let monitor = sion_image::target_dir().join("qemu-logs/screen.monitor");
    let _ = std::fs::create_dir_all(monitor.parent().unwrap());
    let _ = std::fs::remove_file(&monitor);
    let mut node = Node::boot_with_monitor("screen", "", Some(&monitor));
    node.wait_for("idle: no process ready", RUN);
    let (w, h, rgb) = node.screendump(&monitor);
    let lit_in_rows = |rows: std::ops::Range<usize>| -> usize {
        rows.flat_map(|y| (0..w).map(move |x| (y * w + x) * 3))
            .filter(|&i| rgb[i] > 100)
            .count()
    };
    // 16-pixel glyphs on 18-pixel lines from a 4-pixel margin: line 1 is the banner.
    let banner = lit_in_rows(4..22);
    let bottom = lit_in_rows(h - 40..h);
    assert!(
        banner > 500,
        "the banner line has only {banner} lit pixels ({w}x{h} screen)"
    );
    assert_eq!(bottom, 0, "the bottom of the screen should be empty");
}
