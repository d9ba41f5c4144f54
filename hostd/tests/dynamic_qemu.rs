//! Dynamically linked programs (issue 11), on a one-node qemu-net LAN booted
//! from `target/sion.img`: the node loads each program's interpreter
//! (`PT_INTERP`, glibc's `ld.so`) from the submitter's read-only system
//! paths, and `ld.so` maps the libraries through the ordinary file calls.
//! Debian's dynamic coreutils (`sort`, `sha256sum`), `gzip`, and a program
//! built with plain `gcc` for x86_64 and `gcc -m32` for i386 (when the
//! i386 libc is installed) give the host's output and status; a shell that
//! runs a dynamic program of `/usr/bin` through `execve` does too once
//! `--ro /usr/bin` exports it. Threads: `tests/programs/threads.c` (a
//! mutex-protected counter, a condition variable, a barrier, joins) built
//! with musl and glibc, static and dynamic, and glibc i386 gives the
//! exact totals, and an OpenMP program (libgomp, 4 threads) its exact sums.
//! SQLite through `libsqlite3`, linked dynamically and statically, creates,
//! fills (in a transaction), indexes, queries and checks a database in the
//! job directory. The node's file cache serves the libraries of the later
//! jobs (its hit counts in the node's log). Python's `fsinfo.py` checks
//! statvfs, fchdir, `/proc/self/fd` links, many small writes (behind the
//! program on the node) and that a write failure on a full file system
//! comes back to the program.
//!
//! Needs root, QEMU, gcc (and gcc-multilib for i386) and busybox-static (CI
//! has them); otherwise it prints why and passes, unless
//! `SION_REQUIRE_ALL=1`.

mod common;

use common::BootedLan;
use qemu_net::prereq::{GCC, MUSL_GCC, QEMU, multilib_missing, must_skip, skip};

use std::path::Path;
use std::process::Command;

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");

#[test]
fn dynamic_programs_run_as_on_the_host() {
    if must_skip(true, &[QEMU, GCC, MUSL_GCC]) {
        return;
    }
    if let Some(why) = multilib_missing() {
        skip(&why);
        return;
    }
    let job_dir = common::job_dir("dynamic");
    common::build_program(
        &job_dir,
        "gcc",
        &["-O2", "-Wl,--no-as-needed", "-lm"],
        "dynhello.c",
        "hello64",
    );
    common::build_program(
        &job_dir,
        "gcc",
        &["-m32", "-O2", "-Wl,--no-as-needed", "-lm"],
        "dynhello.c",
        "hello32",
    );
    std::fs::write(job_dir.join("words.txt"), b"pear\napple\nfig\napple\n").unwrap();
    // pthreads: musl static, glibc dynamic, glibc static i386.
    common::build_program(
        &job_dir,
        "musl-gcc",
        &["-static", "-O2"],
        "threads.c",
        "threads-musl",
    );
    common::build_program(
        &job_dir,
        "gcc",
        &["-O2", "-pthread"],
        "threads.c",
        "threads-glibc",
    );
    common::build_program(
        &job_dir,
        "gcc",
        &["-m32", "-static", "-O2", "-pthread"],
        "threads.c",
        "threads32",
    );
    // SQLite through its library, dynamic and static (libsqlite3.a).
    common::build_linked(
        &job_dir,
        "gcc",
        &["-O2"],
        "sqlite_app.c",
        "sqlite-dyn",
        &["-lsqlite3"],
    );
    common::build_linked(
        &job_dir,
        "gcc",
        &["-O2", "-static"],
        "sqlite_app.c",
        "sqlite-static",
        &["-lsqlite3", "-lm"],
    );
    // pthreads also musl dynamic and glibc static (x86_64).
    common::build_program(
        &job_dir,
        "musl-gcc",
        &["-O2"],
        "threads.c",
        "threads-musl-dyn",
    );
    common::build_program(
        &job_dir,
        "gcc",
        &["-static", "-O2", "-pthread"],
        "threads.c",
        "threads-glibc-static",
    );
    // OpenMP with libgomp (dynamic), 4 threads.
    common::build_program(&job_dir, "gcc", &["-O2", "-fopenmp"], "omp.c", "omp");
    std::fs::copy("/bin/busybox", job_dir.join("busybox")).unwrap();
    let programs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs");
    std::fs::copy(programs.join("csvsum.py"), job_dir.join("csvsum.py")).unwrap();
    std::fs::copy(programs.join("fsinfo.py"), job_dir.join("fsinfo.py")).unwrap();
    // A full file system inside the job directory: a 64 KiB tmpfs.
    let full = FullFs::mount(&job_dir.join("full"));
    let mut csv = String::from("kind,amount\n");
    for i in 0..200 {
        csv.push_str(&format!(
            "{},{}.{:02}\n",
            ["a", "b", "c"][i % 3],
            i,
            i % 100
        ));
    }
    std::fs::write(job_dir.join("data.csv"), csv).unwrap();
    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let booted = BootedLan::boot("dy", image, &[512]);

    // (hostd submit's options, the command line)
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["./threads-musl"]),
        (&[], &["./threads-glibc"]),
        (&[], &["./threads32"]),
        (&[], &["./threads-musl-dyn"]),
        (&[], &["./threads-glibc-static"]),
        (&[], &["./omp"]),
        (&[], &["./sqlite-dyn", "app.db"]),
        (&[], &["./sqlite-static", "app.db"]),
        (&[], &["./hello64", "one", "two words"]),
        (&[], &["./hello32", "one", "two words"]),
        (&[], &["/usr/bin/sort", "words.txt"]),
        (&[], &["/usr/bin/sha256sum", "words.txt"]),
        (&[], &["/bin/gzip", "-c", "-n", "words.txt"]),
        // Python with its standard library, reading and writing job files.
        (
            &[],
            &["/usr/bin/python3", "csvsum.py", "data.csv", "result.json"],
        ),
        // statvfs, fchdir, /proc/self/fd links, many small writes behind
        // the program, and a write failure on a full file system.
        (&[], &["/usr/bin/python3", "fsinfo.py", "full"]),
        // SQLite's shell creating, filling and querying a database.
        (
            &[],
            &[
                "/usr/bin/sqlite3",
                "test.db",
                "create table t(k text, v int); insert into t values ('a', 1), ('b', 2), ('a', 40); select k, sum(v) from t group by k; drop table t;",
            ],
        ),
        // A shell exec'ing a dynamic program of the submitter's /usr/bin,
        // exported read-only with --ro.
        (
            &["--ro", "/usr/bin"],
            &[
                "./busybox",
                "sh",
                "-c",
                "/usr/bin/sort -r words.txt | ./hello64 x",
            ],
        ),
    ];
    for (options, case) in cases {
        let _ = std::fs::remove_file(full.0.join("fill"));
        let _ = std::fs::remove_file(job_dir.join("result.json"));
        let _ = std::fs::remove_file(job_dir.join("test.db"));
        let _ = std::fs::remove_file(job_dir.join("app.db"));
        if !Path::new(case[0]).exists() && !job_dir.join(case[0]).exists() {
            panic!("{} is missing on this host", case[0]);
        }
        let host = Command::new(case[0])
            .args(&case[1..])
            .current_dir(&job_dir)
            .output()
            .unwrap();
        let cmd = common::submit_cmd(HOSTD, &[*options, *case].concat());
        let node = booted.run(&cmd, &job_dir, b"", &[]);
        common::assert_as_on_host(&format!("{case:?}"), &node, &host, &booted.log(0));
        if case.contains(&"csvsum.py") {
            let written = std::fs::read_to_string(job_dir.join("result.json")).unwrap();
            assert!(written.contains("\"rows\": 200"), "{written}");
        }
    }

    // The libraries mapped by the first dynamic job came from its hostd;
    // later jobs map them from the node's file cache.
    let log = booted.log(0);
    let hits: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split("file cache: ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    assert!(
        hits.iter().skip(1).any(|&h| h > 0),
        "later jobs hit the file cache: {hits:?}\n{log}"
    );
}

/// A 64 KiB tmpfs mounted at a directory, unmounted on drop.
struct FullFs(std::path::PathBuf);

impl FullFs {
    fn mount(at: &Path) -> FullFs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs at {}", at.display());
        FullFs(at.to_path_buf())
    }
}

impl Drop for FullFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
