//! Message-passing IPC between processes (SiON paper §4.2.3, Fig. 7).
//!
//! The sender names the receiver and a buffer; the kernel copies the bytes once,
//! straight from the sender's memory into the receiver's buffer through its map
//! of all physical memory ([`AddressSpace::copy`]), with no kernel buffer in
//! between. Whichever side arrives second does the copy:
//!
//! - `send` to a process blocked in `receive`: copied at once; the sender goes on.
//! - `send` to a process not receiving: the sender blocks in the receiver's queue
//!   of senders; the receiver's next `receive` copies from the sender's buffer.
//! - `call` is `send` and then a wait for `reply`, which copies the answer
//!   straight into the caller's reply buffer.
#![forbid(unsafe_code)]

use crate::mem::space::AddressSpace;
use crate::proc::{Block, State, Table, scheduler, table};
use sion_abi::{ANY_SENDER, Error, MAX_MESSAGE, MessageInfo, NO_TIMEOUT, Pid};

/// `send` and `call`: see [`sion_abi::Syscall::Send`] and [`sion_abi::Syscall::Call`].
pub fn send(
    to: Pid,
    tag: u64,
    buf: u64,
    len: u64,
    reply: Option<(u64, u64)>,
) -> Result<u64, Error> {
    {
        let mut t = table();
        let me = t.current_pid().expect("a caller");
        if len > MAX_MESSAGE as u64 {
            return Err(Error::TooLarge);
        }
        if to == me {
            return Err(Error::InvalidArgument);
        }
        let sender = t.current();
        sender.space.check(buf, len, false)?;
        if let Some((reply_buf, reply_cap)) = reply {
            if reply_cap > MAX_MESSAGE as u64 {
                return Err(Error::TooLarge);
            }
            sender.space.check(reply_buf, reply_cap, true)?;
        }
        let target = t.procs.get(&to).ok_or(Error::NoSuchProcess)?;
        match target.state {
            State::Dead(_) => return Err(Error::NoSuchProcess),
            State::Blocked(Block::Receive {
                buf: rbuf,
                cap,
                from,
                info,
            }) if from == ANY_SENDER || from == me => {
                let message = Pending {
                    sender: me,
                    tag,
                    buf,
                    len,
                    wants_reply: reply.is_some(),
                };
                let delivered = deliver(&t, &message, to, rbuf, cap, info);
                t.wake(to, delivered);
                if delivered < 0 {
                    return Error::from_result(delivered);
                }
                match reply {
                    None => return Ok(0),
                    Some((buf, cap)) => {
                        t.current().state = State::Blocked(Block::AwaitReply {
                            server: to,
                            buf,
                            cap,
                        })
                    }
                }
            }
            _ => {
                if t.procs.get(&to).expect("checked above").senders.is_full() {
                    drop(t);
                    crate::proc::count_send_refused(to);
                    return Err(Error::WouldBlock);
                }
                t.current().state = State::Blocked(Block::Send {
                    to,
                    tag,
                    buf,
                    len,
                    reply,
                });
                t.procs
                    .get_mut(&to)
                    .expect("checked above")
                    .senders
                    .push_back(me)
                    .expect("checked above that the queue has room");
            }
        }
    }
    Error::from_result(scheduler::block())
}

/// `receive`: see [`sion_abi::Syscall::Receive`].
pub fn receive(buf: u64, cap: u64, from: Pid, timeout_ns: u64, info: u64) -> Result<u64, Error> {
    let deadline =
        (timeout_ns != NO_TIMEOUT).then(|| crate::time::now_ns().saturating_add(timeout_ns));
    loop {
        match receive_once(buf, cap, from, timeout_ns, info, deadline)? {
            Some(len) => return Ok(len),
            None => continue,
        }
    }
}

/// One attempt at `receive`: `Ok(None)` when woken to look again (a network
/// message was queued).
fn receive_once(
    buf: u64,
    cap: u64,
    from: Pid,
    timeout_ns: u64,
    info: u64,
    deadline: Option<u64>,
) -> Result<Option<u64>, Error> {
    {
        let mut t = table();
        let me = t.current_pid().expect("a caller");
        let receiver = t.current();
        receiver
            .space
            .check(buf, cap.min(MAX_MESSAGE as u64), true)?;
        receiver
            .space
            .check(info, core::mem::size_of::<MessageInfo>() as u64, true)?;
        let cap = cap.min(MAX_MESSAGE as u64);
        let waiting = receiver
            .senders
            .iter()
            .copied()
            .find(|s| from == ANY_SENDER || *s == from);
        if let Some(sender) = waiting {
            t.current().senders.retain(|s| *s != sender);
            let State::Blocked(Block::Send {
                tag,
                buf: sbuf,
                len,
                reply,
                ..
            }) = t.procs[&sender].state
            else {
                unreachable!("a queued sender is blocked in send")
            };
            let message = Pending {
                sender,
                tag,
                buf: sbuf,
                len,
                wants_reply: reply.is_some(),
            };
            let delivered = deliver(&t, &message, me, buf, cap, info);
            match reply {
                Some((rbuf, rcap)) if delivered >= 0 => {
                    let s = t.procs.get_mut(&sender).expect("queued sender exists");
                    s.state = State::Blocked(Block::AwaitReply {
                        server: me,
                        buf: rbuf,
                        cap: rcap,
                    });
                }
                _ => t.wake(sender, if delivered >= 0 { 0 } else { delivered }),
            }
            return Error::from_result(delivered).map(Some);
        }
        let notice_at = t
            .current()
            .notices
            .iter()
            .position(|n| from == ANY_SENDER || n.info.sender == from);
        if let Some(i) = notice_at {
            let notice = t.current().notices.remove(i).expect("position is valid");
            let space = &t.current().space;
            let n = (notice.payload.len() as u64).min(cap) as usize;
            space.write(buf, &notice.payload[..n])?;
            space.write(info, &notice.info.to_bytes())?;
            return Ok(Some(notice.info.len));
        }
        if from == ANY_SENDER
            && let Ok(Some(message)) = crate::net::with(|net| Ok(net.ipc.take(me)))
        {
            let space = &t.current().space;
            let n = (message.payload.len() as u64).min(cap) as usize;
            space.write(buf, &message.payload[..n])?;
            space.write(info, &message.info.to_bytes())?;
            return Ok(Some(message.info.len));
        }
        if timeout_ns == 0 || deadline.is_some_and(|d| d <= crate::time::now_ns()) {
            return Err(Error::TimedOut);
        }
        let p = t.current();
        p.state = State::Blocked(Block::Receive {
            buf,
            cap,
            from,
            info,
        });
        p.deadline = deadline;
    }
    match scheduler::block() {
        crate::proc::WAKE_RETRY => Ok(None),
        v => Error::from_result(v).map(Some),
    }
}

/// `reply`: see [`sion_abi::Syscall::Reply`].
pub fn reply(to: Pid, buf: u64, len: u64) -> Result<u64, Error> {
    let mut t = table();
    let me = t.current_pid().expect("a caller");
    if len > MAX_MESSAGE as u64 {
        return Err(Error::TooLarge);
    }
    t.current().space.check(buf, len, false)?;
    let target = t.procs.get(&to).ok_or(Error::NotWaiting)?;
    if target.state == State::Blocked(Block::LinuxSyscall { manager: me })
        || target.state == State::Blocked(Block::Fault { manager: me })
    {
        // The answer to an application's Linux system call (an i64 result),
        // or the end of its stop on a fault (it resumes with the registers
        // its manager set, or ends).
        let mut value = [0u8; 8];
        let n = (len as usize).min(8);
        t.procs[&me].space.read(buf, &mut value[..n])?;
        t.wake(to, i64::from_le_bytes(value));
        return Ok(0);
    }
    let State::Blocked(Block::AwaitReply {
        server,
        buf: rbuf,
        cap,
    }) = target.state
    else {
        return Err(Error::NotWaiting);
    };
    if server != me {
        return Err(Error::NotWaiting);
    }
    let n = len.min(cap);
    let result = AddressSpace::copy(&t.procs[&me].space, buf, &t.procs[&to].space, rbuf, n);
    t.wake(
        to,
        result.map(|_| len as i64).unwrap_or_else(|e| e.to_result()),
    );
    result.map(|_| 0)
}

/// A message waiting to be copied.
struct Pending {
    sender: Pid,
    tag: u64,
    buf: u64,
    len: u64,
    wants_reply: bool,
}

/// Copies `message` into `receiver`'s buffer (truncated to `cap`) and writes its
/// [`MessageInfo`]; returns the receive call's result (the full length, or an error).
fn deliver(t: &Table, message: &Pending, receiver: Pid, buf: u64, cap: u64, info_at: u64) -> i64 {
    let from = &t.procs[&message.sender].space;
    let to = &t.procs[&receiver].space;
    let info = MessageInfo {
        sender: message.sender,
        tag: message.tag,
        len: message.len,
        wants_reply: u64::from(message.wants_reply),
        ..MessageInfo::default()
    };
    let info_bytes = info.to_bytes();
    let result = AddressSpace::copy(from, message.buf, to, buf, message.len.min(cap))
        .and_then(|()| to.write(info_at, &info_bytes));
    match result {
        Ok(()) => message.len as i64,
        Err(e) => e.to_result(),
    }
}
