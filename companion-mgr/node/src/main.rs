//! The Companion Manager process of a SiON node (SiON paper §3.2.2, §4.2.1):
//! it drives the sans-IO [`sion_companion_mgr::Member`] with the node's clock
//! and SiON network IPC (service [`COMPANION_MANAGER_SERVICE`]), measures the
//! CPU speed once at boot, reports the node's load, free memory and CPUs in
//! its pings and acks, answers placement requests, and shows the group table on
//! the node's console and screen whenever it changes.
//!
//! CPUs: `cpus` is the kernel's count of processors it runs on
//! (`sion_abi::SysInfo::cpus`, read at start: the count does not change while
//! the node runs); free CPUs are `cpus` minus the jobs the App-Program
//! Manager says run, each job counted as one CPU
//! ([`NodeState::free_cpus_for`]; the library reports none free while an
//! exclusive job owns the node).
//!
//! With a cluster key (its argument after init's 8-byte pid; see
//! `sion_companion_mgr::auth`) every datagram it sends is sealed and every
//! datagram it receives must be: others are dropped, counted, logged and
//! shown under the group table. Without one it runs an open group and says
//! so.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use core::fmt::Write;
use sion_abi::net::{
    ALL_NODES, COMPANION_MANAGER_SERVICE, IPC_PORT, TAG_COMPANION, TAG_JOB_STATE, TAG_LEAVE,
};
use sion_abi::{ANY_SENDER, Error};
use sion_companion_mgr::auth::{AuthStats, DatagramAuth, Keyring, NonceGen, Unauthenticated};
use sion_companion_mgr::node::MAX_CPU_LOAD;
use sion_companion_mgr::{
    Addr, Config, DecodeError, Dest, Event, Instant, LocalNode, Member, Message, NodeId, NodeState,
    Role, Status,
};
use sion_rt::{println, sys};

sion_rt::entry!(main);

/// How long to wait for the node's address before giving up (ns).
const ADDRESS_WAIT_NS: u64 = 30_000_000_000;
/// How long the CPU-speed benchmark runs (ns).
const SPEED_BENCH_NS: u64 = 100_000_000;

fn main(arg: &[u8]) -> i32 {
    let keys = match Keyring::parse_optional(arg.get(8..).unwrap_or_default()) {
        Ok(k) => k,
        Err(e) => {
            println!("cm: the cluster key given to this node is malformed: {e}; it joins no group");
            return 0;
        }
    };
    if let Err(e) = sys::register(COMPANION_MANAGER_SERVICE) {
        println!("cm: cannot register service {COMPANION_MANAGER_SERVICE}: {e}");
        return 1;
    }
    let info = match wait_for_address() {
        Ok(info) => info,
        Err(NoAddress::NoNic) => {
            println!("cm: this node has no network card; it works alone, outside any group");
            return 0;
        }
        Err(NoAddress::Timeout) => {
            println!(
                "cm: no network address after {} s; retrying",
                ADDRESS_WAIT_NS / 1_000_000_000
            );
            return 1;
        }
    };
    let ip = (info.ipv4 as u32).to_be_bytes();
    let mac = {
        let b = info.mac.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    };
    let speed = cpu_speed();
    let cpus = cpu_count();
    let mut load = LoadMeter::new();
    let mut local = LocalNode::new(NodeId::from_mac(mac), Role::Node, Addr::new(ip, IPC_PORT));
    local.state = NodeState {
        cpu_load: 0,
        free_mem: free_memory(),
        cpu_speed: speed,
        running_jobs: 0,
        cpus,
        free_cpus: cpus,
    };
    let entropy = sion_rt::entropy::gather();
    let mut nonces = NonceGen::new(&entropy.bytes);
    let random = nonces.next(&sys::clock_ns().to_le_bytes());
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&random[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    let mut auth = keys.map(|k| DatagramAuth::new(k, word(1)));
    let now = Instant::from_nanos(sys::clock_ns());
    let mut member = Member::new(Config::default(), local, now, word(0));
    let me = member.local().clone();
    match &auth {
        Some(a) => println!(
            "cm: authenticated group: datagrams sealed with cluster key {}{} (randomness: {})",
            a.keys().signing().id(),
            accepted_keys(a.keys()),
            if entropy.rdrand {
                "RDRAND and clock jitter"
            } else {
                "clock jitter, no RDRAND"
            }
        ),
        None => println!("cm: {OPEN_GROUP}"),
    }
    println!(
        "cm: joining the group as {} ({}) at {}.{}.{}.{}; {cpus} CPU(s), cpu speed {speed} Mops/s, free memory {} MiB",
        me.name,
        me.id,
        ip[0],
        ip[1],
        ip[2],
        ip[3],
        me.state.free_mem >> 20
    );
    let mut buf = vec![0u8; 2048];
    let mut next_state_update = 0;
    let mut running_jobs = 0u16;
    // What runs, for the screen: the App-Program Manager's line and when.
    let mut running_job: Option<(String, u64)> = None;
    let mut last_sign_of_life = 0;
    loop {
        flush(&mut member, auth.as_mut());
        let mut changed = false;
        while let Some(event) = member.poll_event() {
            report(&event);
            changed |= !matches!(event, Event::PlacementDone(_));
        }
        let stats = auth.as_ref().map(DatagramAuth::stats);
        if changed {
            show_table(&member, running_job.as_ref(), stats);
        }
        let now_ns = sys::clock_ns();
        let wake = member.poll_at().as_nanos();
        let timeout = wake.saturating_sub(now_ns).max(1_000_000);
        match sys::receive(&mut buf, ANY_SENDER, timeout) {
            Ok(msg) if msg.node != 0 && msg.tag == TAG_COMPANION => {
                let from = Addr::new((msg.addr as u32).to_be_bytes(), IPC_PORT);
                let len = (msg.len as usize).min(buf.len());
                let now = Instant::from_nanos(sys::clock_ns());
                let payload = match auth.as_mut() {
                    None => Ok(&buf[..len]),
                    Some(a) => a.open(&buf[..len]),
                };
                match payload {
                    // A malformed message is counted by the library, dropped
                    // and logged (the first 16, then one line per 1000).
                    Ok(p) => {
                        if let Err(e) = member.handle_datagram(now, from, p) {
                            report_malformed(from.ip, e, member.stats().decode_errors);
                        }
                    }
                    Err(why) => {
                        let stats = auth.as_ref().map(DatagramAuth::stats).unwrap_or_default();
                        report_drop(from.ip, why, stats);
                        if let Some(a) = auth.as_mut() {
                            sign_of_life(a, from.ip, why, &mut last_sign_of_life);
                        }
                    }
                }
            }
            Ok(msg) if msg.node == 0 && msg.tag == TAG_JOB_STATE && msg.len >= 2 => {
                // From the App-Program Manager on this node.
                running_jobs = u16::from_le_bytes([buf[0], buf[1]]);
                let len = (msg.len as usize).min(buf.len());
                running_job = (running_jobs > 0).then(|| {
                    (
                        String::from_utf8_lossy(&buf[2..len]).into_owned(),
                        sys::clock_ns(),
                    )
                });
                next_state_update = 0;
                show_table(
                    &member,
                    running_job.as_ref(),
                    auth.as_ref().map(DatagramAuth::stats),
                );
            }
            Ok(msg) if msg.node == 0 && msg.tag == TAG_LEAVE => {
                // From the App-Program Manager: `hostd drain`.
                println!("cm: leaving the group (drained); this node rejoins when it boots again");
                member.leave(Instant::from_nanos(sys::clock_ns()));
            }
            Ok(_) | Err(Error::TimedOut) => {}
            Err(e) => println!("cm: receive failed: {e}"),
        }
        let now_ns = sys::clock_ns();
        if now_ns >= next_state_update {
            let state = NodeState {
                cpu_load: load.sample(),
                free_mem: free_memory(),
                cpu_speed: speed,
                running_jobs,
                cpus,
                free_cpus: NodeState::free_cpus_for(cpus, running_jobs),
            };
            member.set_local_state(state);
            next_state_update = now_ns + 1_000_000_000;
        }
        let now = Instant::from_nanos(now_ns);
        if now >= member.poll_at() {
            member.poll(now);
        }
    }
}

/// What the screen and log say of a node without a cluster key.
const OPEN_GROUP: &str = "OPEN group: no cluster key in this node image; anyone on the LAN can join and submit jobs (hostd keygen, then sion-image --key)";

/// ", also accepting KEY, KEY" for a keyring with more than one key.
fn accepted_keys(keys: &Keyring) -> String {
    let mut s = String::new();
    for (i, id) in keys.ids().enumerate().skip(1) {
        s.push_str(if i == 1 { ", also accepting " } else { ", " });
        let _ = write!(s, "{id}");
    }
    s
}

/// Logs a dropped unauthenticated datagram: the first 16 of each reason,
/// then one line per 1000 (a flood must not flood the console).
fn report_drop(ip: [u8; 4], why: Unauthenticated, stats: AuthStats) {
    let of_reason = match why {
        Unauthenticated::Unsealed => stats.unsealed,
        Unauthenticated::UnknownKey(_) => stats.unknown_key,
        Unauthenticated::BadTag => stats.bad_tag,
        Unauthenticated::Replayed => stats.replayed,
    };
    let dropped = stats.dropped();
    if of_reason <= 16 || dropped.is_multiple_of(1000) {
        let [a, b, c, d] = ip;
        println!(
            "cm: dropped a datagram from {a}.{b}.{c}.{d}: {why}; unauthenticated datagrams dropped: {} ({})",
            dropped,
            drop_detail(&stats)
        );
    }
}

/// Logs a dropped malformed datagram (one that is not a message of this
/// protocol, `sion_companion_mgr::wire`): the first 16, then one line per
/// 1000; `dropped` is the member's count so far.
fn report_malformed(ip: [u8; 4], why: DecodeError, dropped: u64) {
    if dropped <= 16 || dropped.is_multiple_of(1000) {
        let [a, b, c, d] = ip;
        println!(
            "cm: dropped a malformed datagram from {a}.{b}.{c}.{d}: {why}; malformed datagrams dropped: {dropped}"
        );
    }
}

/// Answers a member without the key (an unsealed datagram, or one sealed
/// with an unknown key) with an empty gossip sealed with ours, at most four
/// times a second: it cannot open it, but it learns that an authenticated group is
/// there and can tell its user the key is missing or wrong. An empty gossip
/// changes nothing at a member that can open it, and a replay or a bad tag
/// (which only a holder of the key could have caused) gets no answer.
fn sign_of_life(auth: &mut DatagramAuth, ip: [u8; 4], why: Unauthenticated, last_ns: &mut u64) {
    if !matches!(
        why,
        Unauthenticated::Unsealed | Unauthenticated::UnknownKey(_)
    ) {
        return;
    }
    let now = sys::clock_ns();
    if *last_ns != 0 && now.saturating_sub(*last_ns) < 250_000_000 {
        return;
    }
    *last_ns = now;
    let Ok(gossip) = (Message::Gossip {
        updates: alloc::vec::Vec::new(),
    })
    .encode() else {
        return;
    };
    let _ = sys::net_send(
        ip,
        ALL_NODES,
        COMPANION_MANAGER_SERVICE,
        TAG_COMPANION,
        &auth.seal(&gossip),
    );
}

fn drop_detail(s: &AuthStats) -> String {
    alloc::format!(
        "{} unsealed, {} unknown key, {} bad tag, {} replayed",
        s.unsealed,
        s.unknown_key,
        s.bad_tag,
        s.replayed
    )
}

/// Why the node has no address to join with.
enum NoAddress {
    NoNic,
    Timeout,
}

fn wait_for_address() -> Result<sion_abi::NetInfo, NoAddress> {
    let start = sys::clock_ns();
    loop {
        match sys::net_info() {
            Ok(info) if info.node == 0 => return Err(NoAddress::NoNic),
            Ok(info) if info.ipv4 != 0 => return Ok(info),
            _ => {}
        }
        if sys::clock_ns() - start > ADDRESS_WAIT_NS {
            return Err(NoAddress::Timeout);
        }
        sys::sleep_ns(100_000_000);
    }
}

/// Sends everything the library queued: broadcasts to every node, unicasts
/// to one address, both as SiON network IPC to the Companion Manager service.
fn flush(member: &mut Member, mut auth: Option<&mut DatagramAuth>) {
    while let Some(t) = member.poll_transmit() {
        let bytes = match auth.as_deref_mut() {
            Some(a) => a.seal(&t.bytes),
            None => t.bytes,
        };
        let ip = match t.dest {
            Dest::Broadcast => [255; 4],
            Dest::Unicast(addr) => addr.ip,
        };
        if let Err(e) = sys::net_send(
            ip,
            ALL_NODES,
            COMPANION_MANAGER_SERVICE,
            TAG_COMPANION,
            &bytes,
        ) {
            println!("cm: send to {ip:?} failed: {e}");
        }
    }
}

/// The node's CPU speed in millions of iterations per second of a fixed
/// integer loop (a xorshift64 step and an add), measured for 100 ms at boot.
/// Comparable between SiON nodes, not with other benchmarks.
fn cpu_speed() -> u32 {
    let start = sys::clock_ns();
    let (mut x, mut sum, mut iterations) = (0x9E37_79B9_7F4A_7C15u64, 0u64, 0u64);
    loop {
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            sum = sum.wrapping_add(x);
        }
        iterations += 10_000;
        let elapsed = sys::clock_ns() - start;
        if elapsed >= SPEED_BENCH_NS {
            core::hint::black_box(sum);
            return (iterations * 1000 / elapsed.max(1)) as u32;
        }
    }
}

fn free_memory() -> u64 {
    sys::sysinfo().map_or(0, |s| s.free_bytes)
}

/// Processors the kernel runs on (`SysInfo::cpus`), at least 1 and
/// saturated at 255 (what [`NodeState::cpus`] holds).
fn cpu_count() -> u8 {
    let n = sys::sysinfo().map_or(1, |s| s.cpus);
    u8::try_from(n.max(1)).unwrap_or(u8::MAX)
}

/// CPU load in permille over the last interval: the share of the node's CPU
/// time (elapsed time times the CPUs) that was not idle, from the kernel's
/// idle counter, which sums the halted time of every CPU.
struct LoadMeter {
    last_uptime: u64,
    last_idle: u64,
}

impl LoadMeter {
    fn new() -> LoadMeter {
        let s = sys::sysinfo().unwrap_or_default();
        LoadMeter {
            last_uptime: s.uptime_ns,
            last_idle: s.idle_ns,
        }
    }

    fn sample(&mut self) -> u16 {
        let s = sys::sysinfo().unwrap_or_default();
        let total = s
            .uptime_ns
            .saturating_sub(self.last_uptime)
            .saturating_mul(s.cpus.max(1))
            .max(1);
        let idle = s.idle_ns.saturating_sub(self.last_idle).min(total);
        self.last_uptime = s.uptime_ns;
        self.last_idle = s.idle_ns;
        ((total - idle) * u64::from(MAX_CPU_LOAD) / total) as u16
    }
}

fn report(event: &Event) {
    match event {
        Event::Joined(id) => println!("cm: member {id} joined"),
        Event::Restarted(id) => println!("cm: member {id} restarted"),
        Event::Suspect(id) => println!("cm: member {id} is suspect"),
        Event::Restored(id) => println!("cm: member {id} is alive again"),
        Event::Dead(id) => println!("cm: member {id} is dead"),
        Event::Left(id) => println!("cm: member {id} left"),
        Event::PlacementDone(_) => {}
    }
}

/// Prints the group table (the node's status screen) and, under it, the job
/// this node runs (`job`: the App-Program Manager's line and when it began)
/// and whether the group is authenticated (`auth`: the datagram counters of
/// a keyed node, `None` for an open group).
fn show_table(member: &Member, job: Option<&(String, u64)>, auth: Option<AuthStats>) {
    let now = Instant::from_nanos(sys::clock_ns());
    let mut out = String::new();
    let _ = writeln!(out, "cm: group of {} members", member.view_len());
    let _ = writeln!(
        out,
        "  {:<17} {:<16} {:<5} {:<15} {:<7} {:>5} {:>5} {:>8} {:>6} {:>6}",
        "id", "name", "role", "address", "state", "load", "cpus", "free MiB", "speed", "heard"
    );
    for m in member.view() {
        let status = match m.status {
            Status::Alive => "alive",
            Status::Suspect => "suspect",
        };
        let [a, b, c, d] = m.addr.ip;
        let heard = now.saturating_duration_since(m.last_heard).as_millis();
        let _ = writeln!(
            out,
            "  {:<17} {:<16} {:<5} {:<15} {:<7} {:>4}% {:>5} {:>8} {:>6} {:>5}s",
            alloc::format!("{}", m.id),
            m.name.as_str(),
            alloc::format!("{}", m.role),
            alloc::format!("{a}.{b}.{c}.{d}"),
            status,
            m.state.cpu_load / 10,
            if m.role == Role::Host {
                String::from("-")
            } else {
                alloc::format!("{}/{}", m.state.free_cpus, m.state.cpu_count())
            },
            m.state.free_mem >> 20,
            m.state.cpu_speed,
            heard / 1000
        );
    }
    match job {
        Some((what, since)) => {
            // A console scrolls: the start time stays true as time passes
            // (the App-Program Manager logs how long the job ran at its end).
            let ms = since / 1_000_000;
            let _ = writeln!(
                out,
                "  running on this node's CPU since {}.{} s after boot: {what}",
                ms / 1000,
                ms % 1000 / 100
            );
        }
        None => {
            let _ = writeln!(out, "  no job running on this node");
        }
    }
    match auth {
        Some(s) => {
            let _ = writeln!(
                out,
                "  authenticated group; unauthenticated datagrams dropped: {} ({})",
                s.dropped(),
                drop_detail(&s)
            );
        }
        None => {
            let _ = writeln!(out, "  {OPEN_GROUP}");
        }
    }
    let _ = sys::console_write(out.as_bytes());
}
