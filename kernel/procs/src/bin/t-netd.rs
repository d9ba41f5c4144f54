//! Test process: network services for the LAN tests and benchmarks.
//! Without an argument it starts one child per service:
//! - `echo`: TCP port 7 sends back every byte it receives (RFC 862);
//! - `bulk`: TCP port 5001 takes a 9-byte request, `U` or `D` and a big-endian
//!   `u64` size: for `U` it reads that many bytes and answers with the count
//!   (8 bytes); for `D` it sends that many bytes and closes;
//! - `ipc`: network IPC service 100 answers every message with the same tag
//!   and payload (an echo over SiON's datagram IPC).
#![no_std]
#![no_main]

extern crate alloc;

use sion_abi::ANY_SENDER;
use sion_rt::println;
use sion_rt::sys::{self, TcpListener, TcpStream};

sion_rt::entry!(main);

/// Network IPC service number of the echo.
const ECHO_SERVICE: u32 = 100;

fn main(arg: &[u8]) -> i32 {
    match arg {
        b"echo" => serve(7, echo),
        b"bulk" => serve(5001, bulk),
        b"ipc" => ipc_echo(),
        _ => {
            let children = ["echo", "bulk", "ipc"]
                .map(|s| sys::spawn("t-netd", s.as_bytes()).expect("spawn service"));
            println!("netd: services started: {children:?}");
            for c in children {
                let status = sys::wait(c);
                println!("netd: service {c} ended: {status:?}");
            }
            0
        }
    }
}

fn serve(port: u16, handler: fn(&TcpStream) -> Result<u64, sion_abi::Error>) -> i32 {
    let listener = TcpListener::bind(port).expect("listen");
    println!("netd: listening on TCP port {port}");
    loop {
        match listener.accept() {
            Ok(stream) => match handler(&stream) {
                Ok(n) => println!("netd: port {port}: connection done, {n} bytes"),
                Err(e) => println!("netd: port {port}: connection failed: {e}"),
            },
            Err(e) => println!("netd: port {port}: accept failed: {e}"),
        }
    }
}

fn echo(stream: &TcpStream) -> Result<u64, sion_abi::Error> {
    let mut buf = alloc::vec![0u8; 32 * 1024];
    let mut total = 0;
    loop {
        let n = stream.recv(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        stream.send_all(&buf[..n])?;
        total += n as u64;
    }
}

fn bulk(stream: &TcpStream) -> Result<u64, sion_abi::Error> {
    let mut request = [0u8; 9];
    let mut got = 0;
    while got < 9 {
        let n = stream.recv(&mut request[got..])?;
        if n == 0 {
            return Ok(0);
        }
        got += n;
    }
    let size = u64::from_be_bytes(request[1..9].try_into().unwrap());
    let mut buf = alloc::vec![0u8; 32 * 1024];
    match request[0] {
        b'U' => {
            let mut total = 0u64;
            while total < size {
                let n = stream.recv(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            stream.send_all(&total.to_be_bytes())?;
            Ok(total)
        }
        b'D' => {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = i as u8;
            }
            let mut left = size;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                stream.send_all(&buf[..n])?;
                left -= n as u64;
            }
            Ok(size)
        }
        _ => Ok(0),
    }
}

fn ipc_echo() -> i32 {
    sys::register(ECHO_SERVICE).expect("register the echo service");
    println!("netd: IPC echo on service {ECHO_SERVICE}");
    let mut buf = alloc::vec![0u8; 2048];
    loop {
        let Ok(info) = sys::receive(&mut buf, ANY_SENDER, sion_abi::NO_TIMEOUT) else {
            continue;
        };
        if info.node == 0 {
            continue;
        }
        let n = (info.len as usize).min(buf.len());
        let ip = (info.addr as u32).to_be_bytes();
        let _ = sys::net_send(ip, info.node, info.service as u32, info.tag, &buf[..n]);
    }
}
