//! `netprobe`: a host-side tool for SiON's LAN tests and benchmarks, run
//! inside the LAN (`qemu-net exec -- netprobe …`). It speaks SiON's network IPC
//! wire format (`sion_abi::net`) and the test services of the `t-netd` process.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sion_abi::net::{self as wire, Header, Pong};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Probe SiON nodes on the LAN")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Broadcast one ping to every node's kernel and list the pongs.
    Ping {
        /// How long to collect answers (ms).
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
        /// Fail unless at least this many nodes answer.
        #[arg(long, default_value_t = 1)]
        expect: usize,
        /// Broadcast address of the LAN.
        #[arg(long, default_value = "169.254.255.255")]
        broadcast: Ipv4Addr,
    },
    /// Send malformed datagrams to a node, then ping it and print its counters.
    Flood {
        /// The node's address.
        #[arg(long)]
        to: Ipv4Addr,
        /// Datagrams of each malformed kind.
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
    /// Send bytes to a node's TCP echo (port 7), read them back and compare.
    TcpEcho {
        /// The node's address.
        #[arg(long)]
        to: Ipv4Addr,
        /// How many bytes.
        #[arg(long, default_value_t = 1 << 20)]
        bytes: usize,
    },
    /// Measure UDP round-trip time and TCP throughput to one node.
    Bench {
        /// The node's address.
        #[arg(long)]
        to: Ipv4Addr,
        /// UDP probes.
        #[arg(long, default_value_t = 1000)]
        probes: usize,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Ping {
            timeout_ms,
            expect,
            broadcast,
        } => {
            let pongs = ping(
                SocketAddrV4::new(broadcast, wire::IPC_PORT),
                Duration::from_millis(timeout_ms),
                b"probe",
            )?;
            for (from, pong, rtt) in &pongs {
                println!(
                    "pong node={:012x} addr={from} rtt_us={} received={} dropped={} unsent_unresolved={}",
                    pong.node,
                    rtt.as_micros(),
                    pong.received,
                    pong.dropped(),
                    pong.unsent_unresolved
                );
            }
            println!("nodes answering: {}", pongs.len());
            if pongs.len() < expect {
                bail!(
                    "only {} of {expect} nodes answered within {timeout_ms} ms",
                    pongs.len()
                );
            }
        }
        Command::Flood { to, count } => flood(to, count)?,
        Command::TcpEcho { to, bytes } => tcp_echo(to, bytes)?,
        Command::Bench { to, probes } => bench(to, probes)?,
    }
    Ok(())
}

fn ping_datagram(dst_node: u64, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        cluster: wire::DEFAULT_CLUSTER,
        broadcast: dst_node == wire::ALL_NODES,
        src_node: 0,
        dst_node,
        src_service: 0xFFFF_0000,
        dst_service: wire::KERNEL_SERVICE,
        tag: wire::TAG_PING,
    };
    let mut buf = vec![0u8; wire::HEADER_LEN + payload.len()];
    header.encode(payload, &mut buf).expect("a small ping fits");
    buf
}

/// Sends one ping to `to` and collects pongs for `wait`: (address, pong, round trip).
fn ping(
    to: SocketAddrV4,
    wait: Duration,
    payload: &[u8],
) -> Result<Vec<(Ipv4Addr, Pong, Duration)>> {
    let socket = UdpSocket::bind("0.0.0.0:0").context("binding a UDP socket")?;
    socket.set_broadcast(true)?;
    let start = Instant::now();
    socket
        .send_to(&ping_datagram(wire::ALL_NODES, payload), to)
        .with_context(|| format!("sending a ping to {to}"))?;
    let mut pongs = Vec::new();
    let mut buf = [0u8; 2048];
    while start.elapsed() < wait {
        socket.set_read_timeout(Some((wait - start.elapsed()).max(Duration::from_millis(1))))?;
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            break;
        };
        let Ok((header, body)) = Header::decode(&buf[..n], wire::DEFAULT_CLUSTER) else {
            continue;
        };
        if header.tag != wire::TAG_PONG || !body.ends_with(payload) {
            continue;
        }
        let Some(pong) = Pong::decode(body) else {
            continue;
        };
        let std::net::IpAddr::V4(ip) = from.ip() else {
            continue;
        };
        pongs.push((ip, pong, start.elapsed()));
        if to.ip() != &Ipv4Addr::new(169, 254, 255, 255) && !to.ip().is_broadcast() {
            break; // unicast: one answer
        }
    }
    Ok(pongs)
}

fn flood(to: Ipv4Addr, count: usize) -> Result<()> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    let target = SocketAddrV4::new(to, wire::IPC_PORT);
    let good = ping_datagram(wire::ALL_NODES, b"x");
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut random = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let mut sent = 0;
    for i in 0..count {
        let kinds: [Vec<u8>; 4] = [
            random(1 + i % 300),
            good[..(i % wire::HEADER_LEN)].to_vec(),
            {
                let mut d = good.clone();
                d[4] = 99;
                d
            },
            {
                let mut d = good.clone();
                d[8..12].copy_from_slice(&0xDEAD_BEEFu32.to_be_bytes());
                d
            },
        ];
        for d in kinds {
            socket.send_to(&d, target)?;
            sent += 1;
        }
        if i % 25 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    println!("flood: sent {sent} malformed datagrams to {to}");
    std::thread::sleep(Duration::from_millis(300));
    let pongs = ping(target, Duration::from_secs(3), b"after-flood")?;
    let Some((_, pong, rtt)) = pongs.first() else {
        bail!("{to} did not answer a ping after the flood")
    };
    println!(
        "flood: node still answers (rtt {} us); counters: received={} truncated={} magic={} version={} cluster={} undeliverable={} dropped_total={} unsent_unresolved={}",
        rtt.as_micros(),
        pong.received,
        pong.dropped_truncated,
        pong.dropped_magic,
        pong.dropped_version,
        pong.dropped_cluster,
        pong.dropped_undeliverable,
        pong.dropped(),
        pong.unsent_unresolved
    );
    Ok(())
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn tcp_echo(to: Ipv4Addr, bytes: usize) -> Result<()> {
    let data = pattern(bytes);
    let stream =
        TcpStream::connect_timeout(&SocketAddrV4::new(to, 7).into(), Duration::from_secs(5))
            .with_context(|| format!("connecting to {to}:7"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let sent = data.clone();
    let start = Instant::now();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(&sent)?;
        writer.shutdown(std::net::Shutdown::Write)
    });
    let mut back = Vec::with_capacity(bytes);
    (&stream)
        .take(bytes as u64)
        .read_to_end(&mut back)
        .context("reading the echo")?;
    sender.join().expect("sender thread")?;
    let secs = start.elapsed().as_secs_f64();
    let (a, b) = (fnv1a(&data), fnv1a(&back));
    println!(
        "tcp-echo: sent {bytes} bytes (fnv1a {a:016x}), got back {} bytes (fnv1a {b:016x}) in {secs:.3} s",
        back.len()
    );
    if back != data {
        bail!("the echo differs from what was sent");
    }
    println!("tcp-echo: intact");
    Ok(())
}

fn bulk(to: Ipv4Addr, direction: u8, size: u64) -> Result<f64> {
    let mut stream =
        TcpStream::connect_timeout(&SocketAddrV4::new(to, 5001).into(), Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = vec![direction];
    request.extend_from_slice(&size.to_be_bytes());
    let start = Instant::now();
    stream.write_all(&request)?;
    if direction == b'U' {
        let chunk = pattern(64 * 1024);
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            stream.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        let mut count = [0u8; 8];
        stream.read_exact(&mut count)?;
        if u64::from_be_bytes(count) != size {
            bail!("node counted {} of {size} bytes", u64::from_be_bytes(count));
        }
    } else {
        let mut got = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        while got < size {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                bail!("node closed after {got} of {size} bytes");
            }
            got += n as u64;
        }
    }
    Ok(size as f64 / 1e6 / start.elapsed().as_secs_f64())
}

fn bench(to: Ipv4Addr, probes: usize) -> Result<()> {
    let target = SocketAddrV4::new(to, wire::IPC_PORT);
    let mut rtts = Vec::with_capacity(probes);
    for i in 0..probes {
        let payload = (i as u64).to_be_bytes();
        if let Some((_, _, rtt)) = ping(target, Duration::from_secs(1), &payload)?.first() {
            rtts.push(*rtt);
        }
    }
    rtts.sort();
    if rtts.is_empty() {
        bail!("no answer from {to}");
    }
    let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)];
    println!(
        "udp rtt to {to}: {} of {probes} answered; median {} us, p99 {} us",
        rtts.len(),
        pct(0.5).as_micros(),
        pct(0.99).as_micros()
    );
    for size in [1u64 << 20, 16 << 20] {
        let up = bulk(to, b'U', size)?;
        let down = bulk(to, b'D', size)?;
        println!(
            "tcp {} MiB: host->node {up:.2} MB/s, node->host {down:.2} MB/s",
            size >> 20
        );
    }
    Ok(())
}
