//! `hostd`, the SiON host daemon and CLI; see the `sion_hostd` library.

fn main() -> std::process::ExitCode {
    sion_hostd::cli::main()
}
