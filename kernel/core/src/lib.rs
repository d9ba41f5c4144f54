//! The SiON kernel's pure logic, kept apart from the `no_std` kernel binary
//! (which only builds for `x86_64-unknown-none`) so `cargo test` runs its unit
//! tests on the host: boot-argument parsing ([`bootargs`]), the IPv4
//! link-local address choice ([`linklocal`]), the fixed-capacity queues of
//! IPC ([`queue`]), and `init`'s supervision policy ([`supervise`]). No
//! hardware access, no allocation.
#![no_std]
#![forbid(unsafe_code)]

pub mod bootargs;
pub mod linklocal;
pub mod queue;
pub mod supervise;
