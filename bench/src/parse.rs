//! Reading figures out of what the guests, the programs and `hostd` print.

use std::collections::BTreeMap;

/// The `BENCH <key> <value>` lines in `text` (anywhere in a line, so a
/// serial console's prefixes and a kernel's interleaved messages do not
/// matter), as key → value; a later line with the same key wins. Lines
/// whose value is not a number are skipped.
pub fn bench_lines(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(at) = line.find("BENCH ") else {
            continue;
        };
        let mut words = line[at + "BENCH ".len()..].split_whitespace();
        if let (Some(key), Some(value)) = (words.next(), words.next())
            && let Ok(v) = value.parse::<f64>()
        {
            out.insert(key.to_string(), v);
        }
    }
    out
}

/// The n-th prime program's answer, `prime N = P (S s)`: (N, P, seconds).
pub fn nthprime(text: &str) -> Option<(u64, u64, f64)> {
    text.lines().find_map(|line| {
        let rest = &line[line.find("prime ")? + "prime ".len()..];
        let (n, rest) = rest.split_once(" = ")?;
        let (p, rest) = rest.split_once(" (")?;
        let secs = rest.strip_suffix(" s)")?;
        Some((
            n.trim().parse().ok()?,
            p.trim().parse().ok()?,
            secs.parse().ok()?,
        ))
    })
}

/// `tests/programs/syscost.c`'s `key=nanoseconds` lines: key → ns.
pub fn key_values(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            let v: f64 = v.trim().parse().ok()?;
            (!k.is_empty() && !k.contains(' ')).then(|| (k.to_string(), v))
        })
        .collect()
}

/// The times `hostd submit --verbose` reports on its `timings:` line:
/// placement, upload and run, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubmitTimings {
    /// Placement through the daemon.
    pub placement_ms: f64,
    /// Upload of the program, until the node accepted the job.
    pub upload_ms: f64,
    /// From the acceptance to the job's exit.
    pub run_ms: f64,
}

/// Finds `timings: placement X ms, upload Y ms, run Z ms` in `stderr`.
pub fn submit_timings(stderr: &str) -> Option<SubmitTimings> {
    let line = stderr.lines().find(|l| l.contains("timings:"))?;
    let ms = |key: &str| -> Option<f64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    Some(SubmitTimings {
        placement_ms: ms("placement ")?,
        upload_ms: ms("upload ")?,
        run_ms: ms("run ")?,
    })
}

/// Splits the Linux guest's console into the output of each program its
/// init ran (`SIONBENCH run LINE` … `SIONBENCH status N`): (line, status,
/// output). A program whose status never came (the guest died) is left out.
pub fn guest_runs(console: &str) -> Vec<(String, i32, String)> {
    let mut runs = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in console.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(cmd) = line.strip_prefix("SIONBENCH run ") {
            current = Some((cmd.to_string(), String::new()));
        } else if let Some(status) = line.strip_prefix("SIONBENCH status ") {
            if let (Some((cmd, out)), Ok(s)) = (current.take(), status.trim().parse()) {
                runs.push((cmd, s, out));
            }
        } else if let Some((_, out)) = current.as_mut() {
            out.push_str(line);
            out.push('\n');
        }
    }
    runs
}

/// How long each program of the Linux guest's init ran by the host's
/// clock: from its `SIONBENCH run LINE` line to the next `SIONBENCH status`
/// line, given the console's lines with their arrival times in seconds.
pub fn guest_run_times(lines: &[(f64, String)]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut current: Option<(String, f64)> = None;
    for (t, line) in lines {
        let line = line.trim_end_matches('\r');
        if let Some(cmd) = line.strip_prefix("SIONBENCH run ") {
            current = Some((cmd.to_string(), *t));
        } else if line.starts_with("SIONBENCH status ")
            && let Some((cmd, t0)) = current.take()
        {
            out.push((cmd, t - t0));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_lines_anywhere_in_a_line() {
        let text = "noise\n[ 1.2] BENCH ipc_oneway_cycles_4 1234\nBENCH fp_s 0.5 s\nBENCH bad x\nBENCH fp_s 0.25\n";
        let m = bench_lines(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m["ipc_oneway_cycles_4"], 1234.0);
        assert_eq!(m["fp_s"], 0.25, "the later line wins");
    }

    #[test]
    fn nthprime_answer() {
        assert_eq!(
            nthprime("x\nprime 1000 = 7919 (0.001 s)\n"),
            Some((1000, 7919, 0.001))
        );
        assert_eq!(nthprime("prime 10 = 29\n"), None);
    }

    #[test]
    fn syscost_key_values() {
        let m = key_values("getpid_ns=97000\nread1_ns=250000\nnot a pair\nx y=1\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m["getpid_ns"], 97000.0);
    }

    #[test]
    fn submit_timings_line() {
        let err = "hostd: node a chosen in 8.9 ms\nhostd: timings: placement 8.9 ms, upload 50.0 ms, run 14.0 ms; exit status 0\n";
        assert_eq!(
            submit_timings(err),
            Some(SubmitTimings {
                placement_ms: 8.9,
                upload_ms: 50.0,
                run_ms: 14.0
            })
        );
        assert_eq!(submit_timings("hostd: no timings\n"), None);
    }

    #[test]
    fn guest_runs_split_by_markers() {
        let console = "Linux booting\r\nSIONBENCH init\r\nSIONBENCH run /nthprime 10\r\nprime 10 = 29 (0.000 s)\r\n\
            SIONBENCH status 0\r\nSIONBENCH run /triad\r\n[ 3.1] random kernel line\r\nSIONBENCH status 139\r\n\
            SIONBENCH run /flops\r\nBENCH fp_s 1\r\n";
        let runs = guest_runs(console);
        assert_eq!(runs.len(), 2, "the unfinished /flops is left out");
        assert_eq!(
            runs[0],
            ("/nthprime 10".into(), 0, "prime 10 = 29 (0.000 s)\n".into())
        );
        assert_eq!(runs[1].0, "/triad");
        assert_eq!(runs[1].1, 139);
    }

    #[test]
    fn guest_run_times_between_markers() {
        let lines: Vec<(f64, String)> = [
            (9.0, "SIONBENCH init"),
            (9.5, "SIONBENCH run /nthprime 10"),
            (9.6, "prime 10 = 29 (0.000 s)"),
            (11.0, "SIONBENCH status 0"),
            (11.25, "SIONBENCH run /triad"),
            (12.0, "SIONBENCH status 0\r"),
            (12.5, "SIONBENCH run /flops"),
        ]
        .map(|(t, l)| (t, l.to_string()))
        .to_vec();
        assert_eq!(
            guest_run_times(&lines),
            vec![
                ("/nthprime 10".to_string(), 1.5),
                ("/triad".to_string(), 0.75)
            ]
        );
    }
}
