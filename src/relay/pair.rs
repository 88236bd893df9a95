//! A pair's copy: each direction is read into the thread's one scratch
//! buffer and written on at once, so an idle pair holds no buffer. Only what
//! a partial write leaves is kept, on the heap, by that direction, until it
//! is written; that direction reads nothing meanwhile, so a side that does
//! not read stops the other's sends (TCP back-pressure) and nothing queues.
//! A FIN goes on as a FIN, a reset as a reset.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use smol::{Async, Timer};

/// The size of the scratch buffer, and so the most a direction holds.
pub const SCRATCH: usize = 16 * 1024;

thread_local! {
    /// The executor thread's one buffer for bytes in flight: every read goes
    /// into it and is written out before anything else runs, so one is
    /// enough for every pair.
    static BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// Runs `f` on the thread's scratch buffer; `f` must not wait for anything.
pub fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUFFER.with(|buffer| f(&mut buffer.borrow_mut()))
}

/// Which side of a direction failed; the pair resets the other one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broke {
    /// Reading failed: the sender reset (or vanished).
    Reader,
    /// Writing failed: the receiver is gone.
    Writer,
}

/// What one read and write left the direction to do.
enum Step {
    /// The read filled the buffer: more may be waiting, read again.
    Again,
    /// Everything read was written: wait until there is more.
    Wait,
    /// The receiver took only part: hold the rest until it has room.
    Hold(Vec<u8>),
    /// The sender sent its FIN.
    End,
    /// A side failed.
    Broke(Broke),
}

/// One direction of a pair.
#[derive(Debug, Default)]
struct Way {
    /// Bytes read but not yet written; empty (no allocation) when idle.
    held: Vec<u8>,
    /// Whether the receiver had no room at the last write.
    blocked: bool,
    /// Whether the sender's FIN has been passed on.
    done: bool,
    /// Bytes copied.
    copied: u64,
}

/// Two connections copied into each other until both directions end, one
/// side has been gone (FIN) for `wait` while the other goes on, or a side
/// resets or fails, which resets the other. Written by hand rather than as
/// an `async fn`, so that an idle pair costs the two sockets and a few
/// words: it yields the bytes copied from the first side and from the
/// second.
#[derive(Debug)]
pub struct Pair {
    sides: [Async<TcpStream>; 2],
    ways: [Way; 2],
    wait: Duration,
    gone: Option<Timer>,
}

impl Pair {
    /// A pair of `a` and `b`; `to_a` and `to_b` are written to them first
    /// (the relay's lines, and what the other sent ahead).
    pub fn new(
        a: Async<TcpStream>,
        b: Async<TcpStream>,
        to_a: Vec<u8>,
        to_b: Vec<u8>,
        wait: Duration,
    ) -> Pair {
        let ways = [Way { held: to_b, ..Way::default() }, Way { held: to_a, ..Way::default() }];
        Pair { sides: [a, b], ways, wait, gone: None }
    }

    /// Copies from side `from` to the other as far as it can without waiting.
    fn step(&mut self, from: usize, cx: &mut Context<'_>) -> Poll<Result<(), Broke>> {
        let (reader, writer) = (&self.sides[from], &self.sides[1 - from]);
        let way = &mut self.ways[from];
        loop {
            // Write out what is held; nothing is read meanwhile.
            while !way.held.is_empty() {
                if way.blocked {
                    ready!(writer.poll_writable(cx)).map_err(|_| Broke::Writer)?;
                    way.blocked = false;
                }
                match write(writer, &way.held) {
                    Ok(n) => drop(way.held.drain(..n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => way.blocked = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Poll::Ready(Err(Broke::Writer)),
                }
            }
            if way.held.capacity() > 0 {
                // An idle direction holds no buffer.
                way.held = Vec::new();
            }
            // Wait, then read once: a read that would find nothing costs a
            // system call per message.
            ready!(reader.poll_readable(cx)).map_err(|_| Broke::Reader)?;
            loop {
                match with_scratch(|buf| read_then_write(reader, writer, buf, &mut way.copied)) {
                    Step::Again => continue,
                    Step::Wait => break,
                    Step::Hold(rest) => {
                        way.held = rest;
                        way.blocked = true;
                        break;
                    }
                    Step::End => {
                        // The receiver may be gone already; its own
                        // direction says so.
                        let _ = writer.get_ref().shutdown(Shutdown::Write);
                        return Poll::Ready(Ok(()));
                    }
                    Step::Broke(side) => return Poll::Ready(Err(side)),
                }
            }
        }
    }
}

impl Future for Pair {
    type Output = [u64; 2];

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<[u64; 2]> {
        let pair = self.get_mut();
        for from in 0..2 {
            if pair.ways[from].done {
                continue;
            }
            match pair.step(from, cx) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => pair.ways[from].done = true,
                Poll::Ready(Err(broke)) => {
                    // The side opposite the one that failed gets the reset.
                    let other = match broke {
                        Broke::Reader => 1 - from,
                        Broke::Writer => from,
                    };
                    reset_on_close(&pair.sides[other]);
                    return Poll::Ready(pair.copied());
                }
            }
        }
        match [pair.ways[0].done, pair.ways[1].done] {
            [true, true] => Poll::Ready(pair.copied()),
            [false, false] => Poll::Pending,
            // One side is gone; the other has `wait` to finish.
            _ => {
                let wait = pair.wait;
                let timer = pair.gone.get_or_insert_with(|| Timer::after(wait));
                match Pin::new(timer).poll(cx) {
                    Poll::Ready(_) => Poll::Ready(pair.copied()),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl Pair {
    /// The bytes copied so far from the first side and from the second.
    pub fn copied(&self) -> [u64; 2] {
        [self.ways[0].copied, self.ways[1].copied]
    }
}

/// One read from `reader` into `buf`, and one write of it to `writer`.
fn read_then_write(
    reader: &Async<TcpStream>,
    writer: &Async<TcpStream>,
    buf: &mut [u8],
    copied: &mut u64,
) -> Step {
    let n = match read(reader, buf) {
        Ok(0) => return Step::End,
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Step::Again,
        Err(_) => return Step::Broke(Broke::Reader),
    };
    *copied += n as u64;
    match write(writer, &buf[..n]) {
        Ok(m) if m == n && n == buf.len() => Step::Again,
        Ok(m) if m == n => Step::Wait,
        Ok(m) => Step::Hold(buf[m..n].to_vec()),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
            Step::Hold(buf[..n].to_vec())
        }
        Err(_) => Step::Broke(Broke::Writer),
    }
}

/// One non-blocking read.
pub fn read(from: &Async<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    let mut socket: &TcpStream = from.get_ref();
    socket.read(buf)
}

/// One non-blocking write.
pub fn write(to: &Async<TcpStream>, buf: &[u8]) -> io::Result<usize> {
    let mut socket: &TcpStream = to.get_ref();
    socket.write(buf)
}

/// Makes the close of `socket` a reset (SO_LINGER 0), so that a reset is
/// passed on as a reset.
#[cfg(unix)]
pub fn reset_on_close(socket: &Async<TcpStream>) {
    // A socket that cannot take the option is closed all the same.
    let _ = rustix::net::sockopt::set_socket_linger(socket.get_ref(), Some(Duration::ZERO));
}

/// Windows: std sets no linger; the close is a FIN.
#[cfg(not(unix))]
pub fn reset_on_close(_: &Async<TcpStream>) {}
