//! SiON App-Program Manager library: the host-testable, sans-IO part of running an
//! unmodified, statically linked Linux program on a SiON node.
//!
//! The App-Program Manager (APM, see docs/ARCHITECTURE.md "App-Program Manager") receives a
//! job, checks its ELF file, builds the application's address space and initial
//! stack, and answers the Linux system calls the kernel traps (`int 0x80` for the
//! i386 ABI, `syscall` for x86_64), forwarding file I/O to the submitting `hostd`.
//! This crate holds the pure logic of that work, with no I/O and no `unsafe`:
//!
//! - [`abi`]: the two Linux ABIs, page size and the default user address layout;
//! - [`elf_load`]: ELF checks and the [`elf_load::LoadPlan`] (segments to map, load
//!   bias, entry, program break, `AT_PHDR`);
//! - [`stack`]: the initial process stack (argc, argv, envp, auxv, strings);
//! - [`errno`]: the [`Errno`] type and the `-errno` return convention;
//! - [`syscall`]: the system-call table, a decoder from raw registers to a typed
//!   [`syscall::Syscall`], and its routing (node or host);
//! - [`fd`]: the per-job file-descriptor table (stdio, pipes, host files);
//! - [`vm`]: the application's address-space allocator (brk, mmap, munmap,
//!   mprotect, mremap, memory limit);
//! - [`exit`]: signals and wait statuses (shell `128 + n`), re-exported from
//!   `sion-abi`, which the kernel shares;
//! - [`path`]: lexical confinement of forwarded paths to the job directory;
//! - [`process`]: a running program's state and the serving of its system
//!   calls, behind the [`process::Node`] trait for what the node provides;
//! - [`job`]: the job protocol between `hostd submit` and the node (framed
//!   postcard messages over one TCP connection);
//! - [`checkpoint`]: a running job's checkpoint, and a job rebuilt from one;
//! - [`stat`]: a host file's [`job::FileStat`] in the program's `struct stat`
//!   or `struct statx` layout.
//!
//! Linux numbers come from `linux-raw-sys` (errno, auxv tags, flags) and from the
//! `syscalls` crate (per-architecture system-call tables), never typed by hand.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod abi;
pub mod checkpoint;
pub mod elf_load;
pub mod errno;
pub mod exit;
pub mod fd;
pub mod job;
pub mod path;
pub mod process;
pub mod sigframe;
pub mod stack;
pub mod stat;
pub mod syscall;
#[cfg(test)]
mod testelf;
pub mod vm;

pub use abi::Abi;
pub use errno::Errno;
