//! `hostd`, the SiON host daemon and CLI; see the `sion_hostd` library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    sion_hostd::cli::main()
}
