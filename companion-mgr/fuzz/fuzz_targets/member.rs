//! Fuzz target: a `Member` fed arbitrary well-framed datagrams from arbitrary
//! addresses at arbitrary times never panics and keeps its view consistent.
//!
//! Input: `[start: u8]` (odd: the member starts as `Member::with_view` with a shared
//! view of `1 + (start >> 1) % 16` members, sources 1 up; even: it joins), then
//! records of `[time step in ms: u8][source: u8][length: u8][body]`; each body is
//! framed with the version byte and a valid CRC before it is handed over.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sion_companion_mgr::wire::{PROTOCOL_VERSION, crc32};
use sion_companion_mgr::{
    Addr, Config, Instant, JobSpec, LocalNode, Member, Mode, NodeId, Role, SharedView, Weights,
};

fuzz_target!(|data: &[u8]| {
    let me = LocalNode::new(
        NodeId::from_mac([2, 0, 0, 0, 0, 1]),
        Role::Node,
        Addr::new([10, 0, 0, 1], 7070),
    );
    let mut now = Instant::ZERO;
    let (mut m, mut rest) = match data {
        [size, rest @ ..] if size % 2 == 1 => {
            let count = 1 + (size >> 1) % 16;
            let view = SharedView::new((1..=count).map(|i| {
                let mut l = LocalNode::new(
                    NodeId::from_mac([2, 0, 0, 0, 0, i]),
                    Role::Node,
                    Addr::new([10, 0, 0, i], 7070),
                );
                l.state.free_mem = u64::from(i) << 20;
                Member::new(Config::default(), l, now, u64::from(i))
                    .local()
                    .clone()
            }));
            (Member::with_view(Config::default(), me, now, 1, &view), rest)
        }
        [_, rest @ ..] => (Member::new(Config::default(), me, now, 1), rest),
        [] => return,
    };
    let mut n = 0u32;
    while let [dt, src, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        now = now + core::time::Duration::from_millis(u64::from(*dt) * 20);
        let mut framed = vec![PROTOCOL_VERSION];
        framed.extend_from_slice(body);
        let crc = crc32(&framed);
        framed.extend_from_slice(&crc.to_le_bytes());
        let _ = m.handle_datagram(now, Addr::new([10, 0, 0, *src], 7070), &framed);
        if now >= m.poll_at() {
            m.poll(now);
        }
        n += 1;
        if n % 7 == 0 {
            let job = JobSpec {
                program_size: 1,
                memory: 1,
                mode: Mode::Balance,
                cpus: 1,
            };
            m.start_placement(now, job, Weights::default());
        }
        while m.poll_transmit().is_some() {}
        while m.poll_event().is_some() {}
        assert!(m.view().count() == m.view_len());
        assert!(m.poll_at() > now, "a timer due now was left pending");
    }
    m.leave(now);
});
