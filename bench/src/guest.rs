//! One QEMU guest whose serial console is captured line by line with the
//! time each line arrived, for the Linux guest and the SiON IPC node. Every
//! wait has a timeout; QEMU is killed when the [`Guest`] drops.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `qemu-system-x86_64` with its console on stdout.
pub struct Guest {
    child: Child,
    started: Instant,
    lines: Arc<Mutex<Vec<(Duration, String)>>>,
}

impl Guest {
    /// Starts QEMU with `args` (which must put the serial console on
    /// stdio). The clock of [`Guest::wait_for`] starts now.
    pub fn start(args: &[String]) -> Result<Guest> {
        let started = Instant::now();
        let mut child = Command::new("qemu-system-x86_64")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = Arc::clone(&lines);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut buf = Vec::new();
                while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    sink.lock().unwrap().push((started.elapsed(), line));
                    buf.clear();
                }
            });
        }
        Ok(Guest {
            child,
            started,
            lines,
        })
    }

    /// Everything printed so far, one line each.
    pub fn console(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let mut out = String::new();
        for (_, l) in lines.iter() {
            out.push_str(l);
            out.push('\n');
        }
        out
    }

    /// Every line so far with the time it arrived, in seconds since the start.
    pub fn timed_lines(&self) -> Vec<(f64, String)> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .map(|(t, l)| (t.as_secs_f64(), l.clone()))
            .collect()
    }

    /// Waits until a line containing `needle` appears; returns how long
    /// after the start it arrived. Errors on timeout, or when QEMU ends first
    /// (with the console's last lines).
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<Duration> {
        loop {
            if let Some((at, _)) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|(_, l)| l.contains(needle))
            {
                return Ok(*at);
            }
            let exited = self.child.try_wait()?.is_some();
            if exited || self.started.elapsed() >= timeout {
                if exited {
                    // Let the readers take the last lines.
                    std::thread::sleep(Duration::from_millis(200));
                    if let Some((at, _)) = self
                        .lines
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|(_, l)| l.contains(needle))
                    {
                        return Ok(*at);
                    }
                }
                let console = self.console();
                let tail: Vec<&str> = console.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "{} while waiting for `{needle}`; the console's last lines:\n{}",
                    if exited { "QEMU ended" } else { "timed out" },
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` with stdout and stderr captured; kills it after `timeout`.
/// Returns (exit code or -1, stdout, stderr). Errors: it could not start or
/// was killed by the timeout.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Result<(i32, String, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let read = |s: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut s) = s {
                let _ = std::io::Read::read_to_string(&mut s, &mut text);
            }
            text
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    Ok((status.code().unwrap_or(-1), out, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_timeout_captures_and_kills() {
        let (code, out, err) = run_timeout(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
        let t = Instant::now();
        let e =
            run_timeout(Command::new("sleep").arg("30"), Duration::from_millis(300)).unwrap_err();
        assert!(e.to_string().contains("did not finish"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
