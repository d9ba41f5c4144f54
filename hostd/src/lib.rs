//! `hostd`: the SiON host daemon and CLI, as a library with a thin binary.
//!
//! The user's Linux PC becomes a full member of the SiON group (SiON paper
//! §3.2.2: "the same group-management function runs as a daemon on the user's
//! computer") by running the Companion Manager library, `sion_companion_mgr`,
//! as [`Role::Host`](sion_companion_mgr::Role::Host): it joins, probes and
//! keeps the view like any node, but is never a placement candidate.
//!
//! - [`envelope`]: every Companion Manager message inside a SiON network IPC
//!   datagram (UDP 7420, 64-byte header, service 1), exactly as the nodes send;
//! - [`iface`]: choosing the interface, node id from its MAC, broadcast address;
//! - [`transport`]: the UDP socket, and an in-memory LAN for tests;
//! - [`session`]: the driver loop of the sans-IO member, and [`place`], the
//!   blocking placement used by `hostd place` (and later `hostd submit`);
//! - [`daemon`] and [`control`]: `hostd daemon` and its JSON-lines Unix socket;
//! - [`model`]: the typed group table and placement outcome (ids, addresses,
//!   roles, statuses as types);
//! - [`report`]: the only place the model becomes text and JSON;
//! - [`weights`]: the strict `--weights cpu=W,mem=W,speed=W,net=W` parser;
//! - [`placement`]: finding the group (daemon or one-shot) and choosing a
//!   node, shared by `nodes`, `place` and `submit`;
//! - [`checkpoints`]: `hostd submit --checkpoint`'s asking and keeping;
//! - [`gateway`]: `hostd gateway`, joining the groups of two LANs through a
//!   peer gateway (stand-in addresses, rewritten datagrams, relayed job
//!   connections);
//! - [`cli`]: the command line.

#![forbid(unsafe_code)]

pub mod array;
pub mod checkpoints;
pub mod cli;
pub mod control;
pub mod daemon;
pub mod envelope;
pub mod fileserve;
pub mod gateway;
pub mod iface;
pub mod jobconn;
pub mod jobs;
pub mod keys;
pub mod model;
pub mod placement;
pub mod report;
pub mod session;
pub mod submit;
pub mod transport;
pub mod weights;

pub use session::{Identity, Session, place};
