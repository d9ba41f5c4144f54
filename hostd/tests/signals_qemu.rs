//! Signal delivery within one process (issue 10), on a one-node qemu-net LAN
//! booted from `target/sion.img`: `tests/programs/signals.c`, built with
//! musl-gcc (x86_64) and gcc -m32 (i386, glibc), catches a SIGSEGV and
//! `siglongjmp`s out (twice, with `si_code` and `si_addr`), waits in
//! `pause()` for `alarm(1)`, runs a `raise(SIGUSR1)` handler on its
//! `sigaltstack`, keeps SIGUSR2 pending while blocked, ignores SIGINT, has a
//! `nanosleep` cut short by SIGALRM, keeps its floating-point sums through
//! a 2 ms interval timer whose handler computes too (FPU state in the
//! frame), gets a POSIX timer's signal with `SI_TIMER` and its value, and
//! ends by a SIGUSR1 without a
//! handler. Output and exit status are compared with the same program run on
//! this host.
//!
//! Needs root, QEMU, musl-gcc and gcc-multilib (CI has them); otherwise it
//! prints why and passes, unless `SION_REQUIRE_ALL=1`.

mod common;

use common::BootedLan;
use qemu_net::prereq::{GCC, MUSL_GCC, QEMU, multilib_missing, must_skip, skip};

use std::process::Command;

const HOSTD: &str = env!("CARGO_BIN_EXE_hostd");

#[test]
fn handlers_run_for_both_abis_as_on_the_host() {
    if must_skip(true, &[QEMU, MUSL_GCC, GCC]) {
        return;
    }
    if let Some(why) = multilib_missing() {
        skip(&why);
        return;
    }
    let job_dir = common::job_dir("signals");
    let programs = [
        common::build_program(
            &job_dir,
            "musl-gcc",
            &["-static", "-O2"],
            "signals.c",
            "signals64",
        ),
        common::build_program(
            &job_dir,
            "gcc",
            &["-m32", "-static", "-O2"],
            "signals.c",
            "signals32",
        ),
    ];
    let image = sion_image::build(sion_image::Flavor::Node)
        .expect("building target/sion.img")
        .path;
    let booted = BootedLan::boot("sg", image, &[256]);
    for program in programs {
        let name = program.file_name().unwrap().to_str().unwrap().to_string();
        let host = Command::new(&program)
            .current_dir(&job_dir)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&host.stdout).contains("segv again"),
            "the host run: {host:?}"
        );
        let cmd = common::submit_cmd(HOSTD, &[&format!("./{name}")]);
        let node = booted.run(&cmd, &job_dir, b"", &[]);
        common::assert_as_on_host(&name, &node, &host, &booted.log(0));
    }
}
