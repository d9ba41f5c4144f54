//! Job arrays and parameter sweeps: `hostd submit --array 1-20 ./prog {}`
//! (Slurm's `sbatch --array`, HTCondor's `queue N`) and `--each FILE` (one
//! task per line).
//!
//! Each task is an ordinary `hostd submit` of its own, run as a child process
//! of this one with `{}` in the program's arguments replaced by the task's
//! value, stdin empty, stdout to `--output` and stderr to `--error` (`%a` in
//! either is the task's id), and `--json` so its node and status can be read
//! from the last line of its stderr. At most `--parallel` run at once
//! (default: the alive nodes). A task that could not be placed (every node
//! busy) is tried again; a task that ran and failed is reported. Ctrl-C
//! cancels every running task and starts no more.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sion_companion_mgr::{Role, Status};

use crate::placement::{self, ModeArg};
use crate::submit::{SubmitArgs, SubmitSummary};

/// Times a task that could not be placed is tried again.
const PLACEMENT_RETRIES: u32 = 60;
/// Pause before trying an unplaced task again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// One task of an array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Its id: `%a` in file names (the number for `--array`, the line number
    /// for `--each`).
    pub id: String,
    /// What `{}` becomes in the program's arguments.
    pub value: String,
}

/// The tasks of `--array SPEC`: `N-M` (inclusive), `N-M:STEP`, or a comma
/// list of those and single numbers (`1,4,10-12`). Errors: a malformed or
/// empty range, more than 100,000 tasks.
pub fn parse_array(spec: &str) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    for part in spec.split(',') {
        let (range, step) = match part.split_once(':') {
            Some((r, s)) => (
                r,
                s.parse::<u64>()
                    .ok()
                    .filter(|s| *s > 0)
                    .with_context(|| format!("--array {spec}: bad step `{s}`"))?,
            ),
            None => (part, 1),
        };
        let num = |s: &str| {
            s.trim()
                .parse::<u64>()
                .with_context(|| format!("--array {spec}: `{s}` is not a number"))
        };
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(range)?, num(range)?),
        };
        if last < first {
            bail!("--array {spec}: {first}-{last} is empty (write the smaller number first)");
        }
        let mut n = first;
        while n <= last {
            tasks.push(Task {
                id: n.to_string(),
                value: n.to_string(),
            });
            if tasks.len() > 100_000 {
                bail!("--array {spec}: more than 100,000 tasks");
            }
            n = match n.checked_add(step) {
                Some(v) => v,
                None => break,
            };
        }
    }
    Ok(tasks)
}

/// The tasks of `--each FILE`: one per non-empty line, id the line number.
pub fn parse_each(text: &str) -> Vec<Task> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Task {
            id: (i + 1).to_string(),
            value: l.to_string(),
        })
        .collect()
}

/// `pattern` with `%a` replaced by the task id (`%%` is a `%`).
pub fn expand(pattern: &str, id: &str) -> String {
    pattern
        .replace("%%", "\0")
        .replace("%a", id)
        .replace('\0', "%")
}

/// The `hostd` arguments that run one task: this command's cluster key
/// (`--key FILE`, or `--key none` for an open group), this submit's options
/// without the array's, `--json`, and `{}` replaced by `value` in the program
/// and its arguments.
pub fn task_args(socket: &Path, a: &SubmitArgs, value: &str) -> Vec<OsString> {
    let sub = |s: &std::ffi::OsStr| -> OsString {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i..].starts_with(b"{}") {
                out.extend_from_slice(value.as_bytes());
                i += 2;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        std::os::unix::ffi::OsStringExt::from_vec(out)
    };
    // The tasks use this command's cluster key (or its open group).
    let key: OsString = match &crate::keys::current().path {
        Some(p) => p.clone().into(),
        None => "none".into(),
    };
    let mut v: Vec<OsString> = vec![
        "--socket".into(),
        socket.into(),
        "--key".into(),
        key,
        "submit".into(),
    ];
    let mut opt = |k: &str, val: String| {
        v.push(k.into());
        v.push(val.into());
    };
    if let Some(w) = &a.weights {
        opt(
            "--weights",
            format!(
                "cpu={},mem={},speed={},net={}",
                w.cpu_load, w.free_mem, w.cpu_speed, w.network
            ),
        );
    }
    let mode = match a.mode {
        ModeArg::Exclusive => "exclusive",
        ModeArg::Balance => "balance",
    };
    opt("--mode", mode.into());
    opt("--memory", a.memory.to_string());
    opt("--cpus", a.cpus.to_string());
    opt("--max-procs", a.max_procs.to_string());
    for p in &a.ro {
        opt("--ro", p.display().to_string());
    }
    opt("--discover-ms", a.find.discover_ms.to_string());
    if let Some(i) = &a.find.iface {
        opt("--iface", i.clone());
    }
    if let Some(n) = &a.node {
        opt("--node", n.clone());
    }
    if let Some(d) = &a.dir {
        opt("--dir", d.display().to_string());
    }
    if let Some(t) = a.timeout {
        opt("--timeout", t.to_string());
    }
    for e in &a.env {
        opt("--env", e.clone());
    }
    if let Some(t) = a.wait_timeout {
        opt("--wait-timeout", t.to_string());
    }
    if !a.no_retry {
        opt("--retries", a.retries.to_string());
    }
    if a.no_wait {
        v.push("--no-wait".into());
    }
    if a.no_retry {
        v.push("--no-retry".into());
    }
    if a.env_clear {
        v.push("--env-clear".into());
    }
    v.push("--json".into());
    v.push(sub(a.program.as_os_str()));
    v.extend(a.args.iter().map(|s| sub(s)));
    v
}

/// How a task ended.
#[derive(Debug)]
struct Outcome {
    task: Task,
    /// The job's status, or hostd's own (1) when it could not run the task.
    status: u8,
    /// The node's name, if the task reached one.
    node: Option<String>,
    /// hostd's error for a task that never ran.
    error: Option<String>,
}

/// A task running as a child `hostd submit`.
struct Running {
    task: Task,
    child: Child,
    tries: u32,
}

/// Runs `hostd submit --array/--each`. Exit status 0 when every task exited
/// 0, else 1.
///
/// # Errors
/// Bad `--array`/`--each`, an unreadable `--each` file, no node found for the
/// default `--parallel`, the output files not creatable.
pub fn run(socket: &Path, a: &SubmitArgs) -> Result<ExitCode> {
    let tasks = match (&a.array, &a.each) {
        (Some(spec), None) => parse_array(spec)?,
        (None, Some(file)) => parse_each(
            &std::fs::read_to_string(file)
                .with_context(|| format!("cannot read --each {}", file.display()))?,
        ),
        _ => bail!("give one of --array and --each"),
    };
    if tasks.is_empty() {
        bail!("the array has no tasks");
    }
    let parallel = match a.parallel {
        Some(0) => bail!("--parallel must be at least 1"),
        Some(n) => n,
        None => {
            let report = placement::group_table(socket, &a.find)?;
            report
                .nodes
                .iter()
                .filter(|n| n.role == Role::Node && n.status == Status::Alive)
                .count()
                .max(1)
        }
    };
    let exe = std::env::current_exe().context("finding the hostd program")?;
    let cancelled = Arc::new(AtomicBool::new(false));
    {
        let c = cancelled.clone();
        let _ = ctrlc::set_handler(move || c.store(true, Ordering::SeqCst));
    }
    let bar = indicatif::ProgressBar::new(tasks.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} tasks {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let began = Instant::now();
    let mut queue: std::collections::VecDeque<(Task, u32)> =
        tasks.iter().cloned().map(|t| (t, 0)).collect();
    let mut running: Vec<Running> = Vec::new();
    let mut done: Vec<Outcome> = Vec::new();
    let mut failed = 0usize;
    loop {
        if cancelled.load(Ordering::SeqCst) {
            for r in &running {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(r.child.id() as i32),
                    nix::sys::signal::Signal::SIGINT,
                );
            }
            queue.clear();
        }
        while running.len() < parallel
            && let Some((task, tries)) = queue.pop_front()
        {
            let child = start(&exe, socket, a, &task)?;
            running.push(Running { task, child, tries });
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut i = 0;
        while i < running.len() {
            if running[i].child.try_wait()?.is_none() {
                i += 1;
                continue;
            }
            let r = running.swap_remove(i);
            let outcome = finish(r.task.clone(), r.child, a)?;
            if outcome.error.is_some()
                && r.tries < PLACEMENT_RETRIES
                && !cancelled.load(Ordering::SeqCst)
                && outcome
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("no node can take this job"))
            {
                // Every node was busy: try again shortly.
                std::thread::sleep(RETRY_PAUSE);
                queue.push_back((r.task, r.tries + 1));
                continue;
            }
            if outcome.status != 0 {
                failed += 1;
            }
            bar.inc(1);
            bar.set_message(format!("{failed} failed"));
            done.push(outcome);
        }
    }
    bar.finish_and_clear();
    report(
        &done,
        tasks.len(),
        began.elapsed(),
        a,
        cancelled.load(Ordering::SeqCst),
    )?;
    Ok(if failed == 0 && done.len() == tasks.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Starts one task: stdin empty, stdout to its output file, stderr piped.
fn start(exe: &Path, socket: &Path, a: &SubmitArgs, task: &Task) -> Result<Child> {
    let out_path = expand(&a.output, &task.id);
    create_parent(&out_path)?;
    let out = std::fs::File::create(&out_path).with_context(|| format!("creating {out_path}"))?;
    Command::new(exe)
        .args(task_args(socket, a, &task.value))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .context("starting hostd submit for a task")
}

/// Creates the directory `path` is to be written in, if it has one.
fn create_parent(path: &str) -> Result<()> {
    match Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display())),
        _ => Ok(()),
    }
}

/// Collects a finished task: its stderr (without the summary line) to its
/// error file, its status and node from the summary.
fn finish(task: Task, mut child: Child, a: &SubmitArgs) -> Result<Outcome> {
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let exit = child.wait()?;
    let mut lines: Vec<&str> = err.lines().collect();
    let summary = lines
        .last()
        .and_then(|l| serde_json::from_str::<SubmitSummary>(l).ok());
    if summary.is_some() {
        lines.pop();
    }
    let err_path = expand(&a.error, &task.id);
    create_parent(&err_path)?;
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(&err_path, &text).with_context(|| format!("writing {err_path}"))?;
    Ok(match summary {
        Some(s) => Outcome {
            task,
            status: s.status,
            node: s.node.name,
            error: None,
        },
        None => Outcome {
            task,
            status: exit.code().unwrap_or(1).clamp(0, 255) as u8,
            node: None,
            error: Some(
                lines
                    .iter()
                    .rev()
                    .find(|l| l.contains("error"))
                    .map_or_else(|| "hostd submit failed".to_string(), |l| l.to_string()),
            ),
        },
    })
}

/// The end-of-array summary on stderr (and, with `--json`, on stdout).
fn report(
    done: &[Outcome],
    total: usize,
    wall: Duration,
    a: &SubmitArgs,
    cancelled: bool,
) -> Result<()> {
    let ok = done.iter().filter(|o| o.status == 0).count();
    let failed: Vec<&Outcome> = done.iter().filter(|o| o.status != 0).collect();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for o in done {
        if let Some(n) = &o.node {
            *per_node.entry(n.clone()).or_default() += 1;
        }
    }
    eprintln!(
        "hostd: array of {total} tasks in {:.1} s: {ok} done, {} failed{}",
        wall.as_secs_f64(),
        failed.len(),
        if cancelled {
            format!(", {} cancelled", total - done.len())
        } else {
            String::new()
        }
    );
    for o in &failed {
        match &o.error {
            Some(e) => eprintln!("  task {}: not run: {e}", o.task.id),
            None => eprintln!(
                "  task {}: exit status {} on {}",
                o.task.id,
                o.status,
                o.node.as_deref().unwrap_or("?")
            ),
        }
    }
    let nodes: Vec<String> = per_node.iter().map(|(n, c)| format!("{n} {c}")).collect();
    eprintln!("  tasks per node: {}", nodes.join(", "));
    eprintln!(
        "  stdout in {}, stderr in {}",
        expand(&a.output, "ID"),
        expand(&a.error, "ID")
    );
    if a.json {
        let json = serde_json::json!({
            "tasks": total,
            "done": ok,
            "failed": failed.iter().map(|o| serde_json::json!({
                "task": o.task.id,
                "status": o.status,
                "node": o.node,
                "error": o.error,
            })).collect::<Vec<_>>(),
            "cancelled": total - done.len(),
            "per_node": per_node,
            "wall_ms": wall.as_secs_f64() * 1000.0,
        });
        println!("{json}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn array_specs() {
        let ids = |s: &str| -> Vec<String> {
            parse_array(s).unwrap().into_iter().map(|t| t.id).collect()
        };
        assert_eq!(ids("1-3"), ["1", "2", "3"]);
        assert_eq!(ids("0-10:5"), ["0", "5", "10"]);
        assert_eq!(ids("4,1-2"), ["4", "1", "2"]);
        assert_eq!(ids("7"), ["7"]);
        for bad in ["3-1", "a-3", "1-3:0", "", "1-", "1-200000"] {
            assert!(parse_array(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_file_lines_and_patterns() {
        let t = parse_each("alpha\n\nbeta gamma\n");
        assert_eq!(
            t,
            [
                Task {
                    id: "1".into(),
                    value: "alpha".into()
                },
                Task {
                    id: "3".into(),
                    value: "beta gamma".into()
                }
            ]
        );
        assert_eq!(expand("out/%a.txt", "12"), "out/12.txt");
        assert_eq!(expand("100%%-%a", "3"), "100%-3");
    }

    #[test]
    fn task_arguments_parse_back_without_the_array_options() {
        let cli = crate::cli::Cli::try_parse_from([
            "hostd",
            "submit",
            "--array",
            "1-3",
            "--parallel",
            "2",
            "--weights",
            "cpu=1,mem=2,speed=3,net=4",
            "--mode",
            "balance",
            "--cpus",
            "2",
            "--env",
            "K=V",
            "--timeout",
            "2.5",
            "./prog",
            "--x={}",
            "{}{}",
        ])
        .unwrap();
        let crate::cli::Command::Submit(a) = cli.command else {
            panic!("not submit")
        };
        let args = task_args(Path::new("/s.sock"), &a, "7");
        let mut argv: Vec<OsString> = vec!["hostd".into()];
        argv.extend(args);
        let again = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Submit(b) = again.command else {
            panic!("not submit")
        };
        assert_eq!((b.array, b.parallel, b.json), (None, None, true));
        assert_eq!(b.args, ["--x=7", "77"]);
        assert_eq!(b.weights, a.weights);
        assert_eq!(b.cpus, 2);
        assert_eq!(
            (b.mode, b.timeout, b.env),
            (ModeArg::Balance, Some(2.5), vec!["K=V".to_string()])
        );
    }
}
