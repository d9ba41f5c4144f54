//! Shared parts of SiON's fuzz targets (`fuzz_targets/`) and of their seed
//! generator (`examples/seeds.rs`): the fixtures a target feeds hostile
//! bytes into (a Companion Manager member with a view, a cluster keyring, a
//! fake node's process), and the byte formats of the structured targets, so
//! that seeds are written in the format the targets read.

use sion_companion_mgr::auth::{KEY_LEN, Keyring};
use sion_companion_mgr::node::{Addr, Name, NodeId, NodeState, Role};
use sion_companion_mgr::placement::{JobSpec, Mode, PlacementId, Verdict};
use sion_companion_mgr::wire::{Announce, Message, Update};
use sion_companion_mgr::{Config, Instant, LocalNode, Member};

/// Reads a fuzz input front to back; past its end every read gives zeros,
/// so every input is a complete (if dull) program.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next `n` bytes, fewer at the end.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// The next 2 bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next 4 bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next 8 bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
}

/// The Companion Manager fixtures of the `datagram` target.
pub mod datagram {
    use super::*;

    /// The cluster key the target seals and opens with (32 bytes of 0x5a).
    pub fn keyring() -> Keyring {
        Keyring::new(&[[0x5a; KEY_LEN]]).expect("one key is a keyring")
    }

    /// The member under test: a node at 169.254.0.1.
    pub fn local() -> LocalNode {
        LocalNode::new(
            NodeId::from_mac([0x52, 0x54, 0, 0x53, 0x4e, 0x00]),
            Role::Node,
            Addr::new([169, 254, 0, 1], 7420),
        )
    }

    /// Peer `i`'s announce (ids 52:54:00:53:4e:0i, 169.254.0.(10+i)).
    pub fn peer(i: u8) -> Announce {
        let id = NodeId::from_mac([0x52, 0x54, 0, 0x53, 0x4e, 1 + i]);
        Announce {
            id,
            incarnation: 1000 + u64::from(i),
            seq: 1,
            role: if i == 2 { Role::Host } else { Role::Node },
            name: Name::derive(id),
            addr: Addr::new([169, 254, 0, 10 + i], 7420),
            state: NodeState {
                cpu_load: 100 * u16::from(i),
                free_mem: 256 << 20,
                cpu_speed: 400,
                running_jobs: 0,
                cpus: 2 + i,
                free_cpus: 2,
            },
        }
    }

    /// A member that knows three peers and has a placement pending: what a
    /// hostile datagram meets on a running node.
    pub fn member(now: Instant) -> Member {
        let mut m = Member::new(Config::default(), local(), now, 0x5eed);
        for i in 0..3 {
            let p = peer(i);
            m.handle_message(now, p.addr, &Message::Join(p.clone()));
        }
        m.start_placement(now, JobSpec::default(), Default::default());
        while m.poll_transmit().is_some() {}
        while m.poll_event().is_some() {}
        m
    }

    /// One valid message of every kind, with fields at their limits where
    /// that is cheap: the seeds of the `datagram` corpus (encoded with
    /// [`Message::encode`]).
    pub fn sample_messages() -> Vec<Message> {
        let me = local();
        let a = peer(0);
        let b = peer(1);
        let updates = vec![
            Update::Alive(b.clone()),
            Update::Suspect {
                id: b.id,
                incarnation: b.incarnation,
                seq: 2,
                by: a.id,
            },
            Update::Dead {
                id: peer(2).id,
                incarnation: 1002,
                seq: 3,
                by: a.id,
            },
            Update::Left {
                id: peer(2).id,
                incarnation: 1002,
            },
        ];
        vec![
            Message::Join(a.clone()),
            Message::JoinReply {
                lo: 0,
                hi: 0xffff_ffff_ffff,
                entries: vec![a.clone(), b.clone()],
            },
            Message::ViewRequest {
                from: a.id,
                lo: 5,
                hi: 1 << 40,
            },
            Message::Ping {
                from: a.clone(),
                nonce: 7,
                target: me.id,
                updates: updates.clone(),
            },
            Message::Ack {
                from: a.clone(),
                nonce: 8,
                updates: updates.clone(),
            },
            Message::PingReq {
                from: a.id,
                nonce: 9,
                target: b.id,
                target_addr: b.addr,
                updates: vec![],
            },
            Message::Nack { nonce: 10 },
            Message::Gossip { updates },
            Message::Leave {
                id: b.id,
                incarnation: b.incarnation,
            },
            Message::TaskRequest {
                requester: a.id,
                placement: PlacementId(3),
                attempt: 0,
                job: JobSpec {
                    program_size: 1 << 20,
                    memory: 64 << 20,
                    mode: Mode::Balance,
                    cpus: 2,
                },
            },
            Message::TaskReply {
                responder: a.id,
                placement: PlacementId(1),
                attempt: 0,
                verdict: Verdict::Permit,
                state: a.state,
            },
            Message::TaskRelease {
                requester: a.id,
                placement: PlacementId(3),
            },
        ]
    }
}

/// The input format of the `syscall` target (see its documentation), as
/// seeds write it.
pub mod syscall {
    /// Argument kinds: the low 3 bits of an argument's first byte.
    pub mod arg {
        /// A small signed integer: the next byte, sign-extended.
        pub const SMALL: u8 = 0;
        /// A pointer into the scratch buffer: base + next byte × 8.
        pub const SCRATCH: u8 = 1;
        /// Any 64-bit value: the next 8 bytes.
        pub const RAW64: u8 = 2;
        /// Any 32-bit value: the next 4 bytes.
        pub const RAW32: u8 = 3;
        /// 0.
        pub const ZERO: u8 = 4;
        /// -1 (all bits set).
        pub const MINUS_ONE: u8 = 5;
        /// An address nothing maps (next byte picks which).
        pub const BAD_POINTER: u8 = 6;
        /// A pointer near the scratch buffer's end: end - next byte.
        pub const SCRATCH_END: u8 = 7;
    }

    /// Scratch buffer size (mapped read-write, filled from the input).
    pub const SCRATCH_LEN: u64 = 2 * 4096;

    /// An argument as the target decodes it.
    #[derive(Clone, Copy, Debug)]
    pub enum Arg {
        /// [`arg::SMALL`].
        Small(i8),
        /// [`arg::SCRATCH`]: base + 8 × offset.
        Scratch(u8),
        /// [`arg::RAW64`].
        Raw(u64),
        /// [`arg::ZERO`].
        Zero,
        /// [`arg::MINUS_ONE`].
        MinusOne,
    }

    /// One call: the table row index is not used by seeds; they give the
    /// number itself (selector 0xff, then the number as u16).
    pub fn encode_call(out: &mut Vec<u8>, nr: u16, args: &[Arg]) {
        out.push(0); // kind: a system call of task 0
        out.push(0xff);
        out.extend_from_slice(&nr.to_le_bytes());
        for i in 0..6 {
            match args.get(i).copied().unwrap_or(Arg::Zero) {
                Arg::Small(v) => out.extend_from_slice(&[arg::SMALL, v as u8]),
                Arg::Scratch(o) => out.extend_from_slice(&[arg::SCRATCH, o]),
                Arg::Raw(v) => {
                    out.push(arg::RAW64);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Arg::Zero => out.push(arg::ZERO),
                Arg::MinusOne => out.push(arg::MINUS_ONE),
            }
        }
    }

    /// The header of an input: ABI (0 x86_64, 1 i386), host mode (bit 0:
    /// `hostd` answers with hostile values), the scratch bytes (at most
    /// 255 × 16) and the file `hostd` serves (at most 255 × 64 bytes; padded
    /// with zeros to a multiple of 64).
    pub fn encode_header(
        out: &mut Vec<u8>,
        i386: bool,
        hostile: bool,
        scratch: &[u8],
        file: &[u8],
    ) {
        out.push(u8::from(i386));
        out.push(u8::from(hostile));
        let s = scratch.len().div_ceil(16).min(255);
        out.push(s as u8);
        let mut sb = scratch.to_vec();
        sb.resize(s * 16, 0);
        out.extend_from_slice(&sb);
        let f = file.len().div_ceil(64).min(255);
        out.push(f as u8);
        let mut fb = file.to_vec();
        fb.resize(f * 64, 0);
        out.extend_from_slice(&fb);
    }
}
