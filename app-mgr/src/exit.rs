//! How a job ends: the signal and wait-status types of [`sion_abi::signal`],
//! re-exported here. A CPU fault's signal is
//! [`sion_abi::exception::CpuException::signal`]; the status a Linux shell
//! reports (`$?`: the exit code, or 128 + the signal number) is
//! [`WaitStatus::shell_status`].

pub use sion_abi::signal::{CORE_DUMPED, DefaultAction, Signal, WaitStatus};
