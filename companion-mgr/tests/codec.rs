//! Codec: every message kind round-trips; truncated, corrupted, mis-versioned and
//! out-of-range input is rejected with an error, never a panic.

mod sim;

use std::collections::BTreeSet;

use sim::Rng;
use sion_companion_mgr::placement::{DenyReason, JobSpec, Mode, PlacementId, Verdict};
use sion_companion_mgr::wire::{
    Announce, DecodeError, ID_MAX, InvalidField, MAX_MESSAGE_LEN, MAX_UPDATES, MAX_VIEW_CHUNK,
    PROTOCOL_VERSION, Update, crc32,
};
use sion_companion_mgr::{Addr, Message, Name, NodeId, NodeState, Role};

fn announce(i: u64, name: &str, big: bool) -> Announce {
    let max = |v: u64| if big { v } else { i + 1 };
    Announce {
        id: NodeId::from_u64(if big { u64::MAX } else { 0x0200_0000_0000 + i }),
        incarnation: max(u64::MAX),
        seq: max(u64::MAX),
        role: if i.is_multiple_of(2) {
            Role::Node
        } else {
            Role::Host
        },
        name: Name::new(name).unwrap(),
        addr: Addr::new(
            [169, 254, (i >> 8) as u8, i as u8],
            if big { u16::MAX } else { 7070 },
        ),
        state: NodeState {
            cpu_load: if big { 1000 } else { (i * 37 % 1001) as u16 },
            free_mem: max(u64::MAX),
            cpu_speed: max(u64::from(u32::MAX)) as u32,
            running_jobs: max(u64::from(u16::MAX)) as u16,
            cpus: if big { u8::MAX } else { (i % 16 + 1) as u8 },
            free_cpus: if big { u8::MAX } else { (i % 16 + 1) as u8 / 2 },
        },
    }
}

const LONG_NAME: &str = "ノード-long-name-of-32-bytes!";

/// At least one message of every kind, with small and extreme field values.
fn samples() -> Vec<Message> {
    assert_eq!(LONG_NAME.len(), 32);
    let max_reply = Message::JoinReply {
        lo: 0,
        hi: ID_MAX,
        entries: (0..MAX_VIEW_CHUNK as u64)
            .map(|i| announce(i, LONG_NAME, true))
            .collect(),
    };
    let job = JobSpec {
        program_size: 1 << 20,
        memory: 64 << 20,
        mode: Mode::Exclusive,
        cpus: 1,
    };
    let mut v = vec![
        Message::Join(announce(1, "amber-otter-0001", false)),
        Message::Join(announce(2, LONG_NAME, true)),
        Message::JoinReply {
            lo: 3,
            hi: 3,
            entries: vec![announce(3, "a", false)],
        },
        max_reply,
        Message::ViewRequest {
            from: NodeId::from_u64(1),
            lo: 0,
            hi: ID_MAX,
        },
        Message::Ping {
            from: announce(4, "calm-heron-0004", false),
            nonce: 1,
            target: NodeId::from_u64(0xffff_ffff_ffff),
            updates: vec![],
        },
        Message::Ping {
            from: announce(5, LONG_NAME, true),
            nonce: u32::MAX,
            target: NodeId::from_u64(5),
            updates: (0..MAX_UPDATES as u64)
                .map(|i| Update::Alive(announce(i, LONG_NAME, true)))
                .collect(),
        },
        Message::Ack {
            from: announce(6, "a", false),
            nonce: 0,
            updates: vec![
                Update::Suspect {
                    id: NodeId::from_u64(1),
                    incarnation: u64::MAX,
                    seq: u64::MAX,
                    by: NodeId::from_u64(2),
                },
                Update::Dead {
                    id: NodeId::from_u64(1),
                    incarnation: 1,
                    seq: 2,
                    by: NodeId::from_u64(3),
                },
                Update::Left {
                    id: NodeId::from_u64(1),
                    incarnation: 9,
                },
            ],
        },
        Message::PingReq {
            from: NodeId::from_u64(1),
            nonce: 7,
            target: NodeId::from_u64(2),
            target_addr: Addr::new([169, 254, 1, 2], 7420),
            updates: vec![],
        },
        Message::Nack { nonce: 7 },
        Message::Gossip {
            updates: vec![Update::Alive(announce(7, "b", false))],
        },
        Message::Leave {
            id: NodeId::from_u64(9),
            incarnation: 0xdead_beef_cafe,
        },
        Message::TaskRequest {
            requester: NodeId::from_u64(7),
            placement: PlacementId(0),
            attempt: 0,
            job,
        },
        Message::TaskRequest {
            requester: NodeId::from_u64(u64::MAX),
            placement: PlacementId(u32::MAX),
            attempt: u8::MAX,
            job: JobSpec {
                program_size: u64::MAX,
                memory: u64::MAX,
                mode: Mode::Balance,
                cpus: u8::MAX,
            },
        },
        Message::TaskReply {
            responder: NodeId::from_u64(8),
            placement: PlacementId(3),
            attempt: 1,
            verdict: Verdict::Permit,
            state: announce(8, "x", false).state,
        },
        Message::TaskRelease {
            requester: NodeId::from_u64(7),
            placement: PlacementId(u32::MAX),
        },
    ];
    for reason in [
        DenyReason::Busy,
        DenyReason::NotEnoughMemory,
        DenyReason::Host,
        DenyReason::ShuttingDown,
        DenyReason::NotAccepting,
        DenyReason::Reserved,
        DenyReason::TooFewCpus,
        DenyReason::NoFreeCpus,
    ] {
        v.push(Message::TaskReply {
            responder: NodeId::from_u64(8),
            placement: PlacementId(u32::MAX),
            attempt: 0,
            verdict: Verdict::Deny(reason),
            state: announce(8, "x", true).state,
        });
    }
    v
}

/// `[version][body][crc]` around an arbitrary body.
fn frame(version: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![version];
    out.extend_from_slice(body);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn every_kind_round_trips() {
    let mut kinds = BTreeSet::new();
    for m in samples() {
        let bytes = m.encode().unwrap();
        assert_eq!(bytes[0], PROTOCOL_VERSION);
        assert!(bytes.len() <= MAX_MESSAGE_LEN, "{} bytes", bytes.len());
        assert_eq!(Message::decode(&bytes), Ok(m.clone()));
        kinds.insert(m.kind());
    }
    assert_eq!(
        kinds,
        BTreeSet::from([
            "join",
            "join-reply",
            "view-request",
            "ping",
            "ack",
            "ping-req",
            "nack",
            "gossip",
            "leave",
            "task-request",
            "task-reply",
            "task-release"
        ])
    );
}

#[test]
fn the_largest_message_fits_the_bound() {
    let biggest = samples()
        .iter()
        .map(|m| m.encode().unwrap().len())
        .max()
        .unwrap();
    println!("largest encoded message: {biggest} bytes (bound {MAX_MESSAGE_LEN})");
    assert!(biggest <= MAX_MESSAGE_LEN);
}

#[test]
fn every_truncation_is_rejected() {
    for m in samples() {
        let bytes = m.encode().unwrap();
        for len in 0..bytes.len() {
            let e = Message::decode(&bytes[..len]).expect_err("truncated input accepted");
            if len < 5 && len > 0 {
                assert_eq!(e, DecodeError::Truncated);
            }
        }
    }
    assert_eq!(Message::decode(&[]), Err(DecodeError::Truncated));
}

#[test]
fn every_single_byte_corruption_is_rejected() {
    for m in samples() {
        let bytes = m.encode().unwrap();
        let mut b = bytes.clone();
        for pos in 0..bytes.len() {
            for v in 0..=255u8 {
                if v == bytes[pos] {
                    continue;
                }
                b[pos] = v;
                match Message::decode(&b) {
                    Err(DecodeError::UnsupportedVersion(got)) => assert_eq!((pos, got), (0, v)),
                    Err(_) => {}
                    Ok(d) => panic!("corruption at {pos} to {v:#x} accepted as {d:?}"),
                }
            }
            b[pos] = bytes[pos];
        }
    }
}

#[test]
fn random_multi_byte_corruption_is_rejected() {
    let mut rng = Rng::new(0xC0DEC);
    let samples = samples();
    for _ in 0..20_000 {
        let m = &samples[rng.below(samples.len() as u64) as usize];
        let mut b = m.encode().unwrap();
        let flips = 2 + rng.below(6);
        for _ in 0..flips {
            let pos = rng.below(b.len() as u64) as usize;
            b[pos] ^= 1 + rng.below(255) as u8;
        }
        if let Ok(d) = Message::decode(&b) {
            // Only possible if the flips cancelled out.
            assert_eq!(&d, m);
        }
    }
}

/// Corrupt the body and then fix the CRC, so that the postcard decoder and the range
/// checks see the corruption: anything may come out, but never a panic, and whatever
/// decodes is a valid message.
#[test]
fn corrupted_bodies_with_valid_framing_never_panic() {
    let mut rng = Rng::new(0xB0D1E5);
    let samples = samples();
    let mut accepted = 0;
    let mut check = |body: &[u8]| {
        let framed = frame(PROTOCOL_VERSION, body);
        if let Ok(m) = Message::decode(&framed) {
            accepted += 1;
            let again = m.encode().expect("a decoded message re-encodes");
            assert_eq!(Message::decode(&again), Ok(m));
        }
    };
    for m in &samples {
        let full = m.encode().unwrap();
        let body = &full[1..full.len() - 4];
        // Every single-byte substitution of the body.
        let mut b = body.to_vec();
        for pos in 0..body.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff, body[pos] ^ 0x01, body[pos] ^ 0x40] {
                b[pos] = v;
                check(&b);
            }
            b[pos] = body[pos];
        }
        // Every truncation of the body.
        for len in 0..body.len() {
            check(&body[..len]);
        }
    }
    // Random bytes.
    for _ in 0..20_000 {
        let len = rng.below(64) as usize;
        let body: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        check(&body);
    }
    println!("{accepted} corrupted bodies decoded to other valid messages");
}

#[test]
fn other_versions_are_rejected() {
    let m = &samples()[0];
    let body = &m.encode().unwrap()[1..];
    let body = &body[..body.len() - 4];
    // 2: the protocol before nodes counted CPUs, whose states are shorter.
    for v in [0u8, 1, 2, 4, 0x7f, 0xff] {
        assert_eq!(
            Message::decode(&frame(v, body)),
            Err(DecodeError::UnsupportedVersion(v))
        );
    }
    assert_eq!(
        Message::decode(&frame(PROTOCOL_VERSION, body)),
        Ok(m.clone())
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    let m = &samples()[4];
    let full = m.encode().unwrap();
    let mut body = full[1..full.len() - 4].to_vec();
    body.push(0);
    assert_eq!(
        Message::decode(&frame(PROTOCOL_VERSION, &body)),
        Err(DecodeError::TrailingBytes)
    );
}

#[test]
fn out_of_range_fields_are_rejected_on_both_sides() {
    let raw = |m: &Message| frame(PROTOCOL_VERSION, &postcard::to_allocvec(m).unwrap());
    // cpu_load above 1000.
    let mut a = announce(1, "n", false);
    a.state.cpu_load = 1001;
    let m = Message::Join(a);
    assert!(m.encode().is_err());
    assert_eq!(
        Message::decode(&raw(&m)),
        Err(DecodeError::Invalid(InvalidField::CpuLoad))
    );
    // More free CPUs than CPUs, in an announce and in a task reply.
    let mut a = announce(1, "n", false);
    a.state.cpus = 2;
    a.state.free_cpus = 3;
    for m in [
        Message::Join(a.clone()),
        Message::TaskReply {
            responder: a.id,
            placement: PlacementId(1),
            attempt: 0,
            verdict: Verdict::Permit,
            state: a.state,
        },
    ] {
        assert!(m.encode().is_err());
        assert_eq!(
            Message::decode(&raw(&m)),
            Err(DecodeError::Invalid(InvalidField::Cpus))
        );
    }
    // As many free as there are, and a host's none of none, are fine.
    a.state.free_cpus = 2;
    assert!(Message::Join(a.clone()).encode().is_ok());
    a.state.cpus = 0;
    a.state.free_cpus = 0;
    assert!(Message::Join(a).encode().is_ok());
    // A join reply longer than MAX_VIEW_CHUNK, and an empty one.
    for n in [0, MAX_VIEW_CHUNK + 1] {
        let m = Message::JoinReply {
            lo: 0,
            hi: ID_MAX,
            entries: (0..n as u64).map(|i| announce(i, "n", false)).collect(),
        };
        assert!(m.encode().is_err());
        assert_eq!(
            Message::decode(&raw(&m)),
            Err(DecodeError::Invalid(InvalidField::ViewLength))
        );
    }
    // A name with a control character (patched into a valid encoding).
    let m = Message::Join(announce(1, "ab", false));
    let mut body = postcard::to_allocvec(&m).unwrap();
    let at = body.windows(3).position(|w| w == [2, b'a', b'b']).unwrap();
    body[at + 1] = b'\n';
    assert_eq!(
        Message::decode(&frame(PROTOCOL_VERSION, &body)),
        Err(DecodeError::Invalid(InvalidField::Name))
    );
    // A node id above 48 bits (patched: postcard writes the id as a varint).
    let m = Message::ViewRequest {
        from: NodeId::from_u64(1),
        lo: 2,
        hi: 2,
    };
    let mut body = postcard::to_allocvec(&m).unwrap();
    assert_eq!(body, [2, 1, 2, 2]);
    // lo above hi.
    let mut bad = body.clone();
    bad[2] = 3;
    assert_eq!(
        Message::decode(&frame(PROTOCOL_VERSION, &bad)),
        Err(DecodeError::Invalid(InvalidField::Range))
    );
    body.truncate(1);
    body.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]); // 2^49
    body.extend_from_slice(&[2, 2]);
    assert_eq!(
        Message::decode(&frame(PROTOCOL_VERSION, &body)),
        Err(DecodeError::Invalid(InvalidField::NodeId))
    );
}

/// Every address a message carries, with its member, in visiting order.
fn addresses(m: &mut Message) -> Vec<(NodeId, Addr)> {
    let mut seen = Vec::new();
    m.for_each_addr_mut(&mut |id, a| seen.push((id, *a)));
    seen
}

#[test]
fn the_address_visitor_reaches_every_member_address_and_nothing_else() {
    for original in samples() {
        let mut m = original.clone();
        let before = addresses(&mut m);
        assert_eq!(m, original, "visiting without writing changes nothing");
        // What a gateway does: every address becomes one of its own.
        let mut n = 0u8;
        m.for_each_addr_mut(&mut |_, a| {
            n += 1;
            *a = Addr::new([169, 254, 255, n], 7420);
        });
        let after = addresses(&mut m);
        assert_eq!(before.len(), after.len());
        for (i, ((id0, _), (id1, a))) in before.iter().zip(&after).enumerate() {
            assert_eq!(id0, id1, "{}: the ids stay", original.kind());
            assert_eq!(*a, Addr::new([169, 254, 255, i as u8 + 1], 7420));
        }
        // Only addresses changed, and the message still encodes and decodes.
        let bytes = m.encode().expect("a rewritten message encodes");
        assert_eq!(Message::decode(&bytes).unwrap(), m);
        let mut back = m.clone();
        let mut it = before.iter();
        back.for_each_addr_mut(&mut |_, a| *a = it.next().unwrap().1);
        assert_eq!(back, original, "{}: nothing but addresses", original.kind());
        // Which kinds carry addresses.
        let expected = match &original {
            Message::Join(_) => 1,
            Message::JoinReply { entries, .. } => entries.len(),
            Message::Ping { updates, .. } | Message::Ack { updates, .. } => {
                1 + updates
                    .iter()
                    .filter(|u| matches!(u, Update::Alive(_)))
                    .count()
            }
            Message::PingReq { updates, .. } => {
                1 + updates
                    .iter()
                    .filter(|u| matches!(u, Update::Alive(_)))
                    .count()
            }
            Message::Gossip { updates } => updates
                .iter()
                .filter(|u| matches!(u, Update::Alive(_)))
                .count(),
            _ => 0,
        };
        assert_eq!(before.len(), expected, "{}", original.kind());
    }
}
