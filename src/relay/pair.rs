//! A pair's copy: each direction read into the thread's one scratch buffer
//! and written on at once, so an idle pair holds no buffer. Only what a
//! partial write leaves is kept, on the heap, by that direction, until it
//! is written; that direction reads nothing meanwhile, so a side that does
//! not read stops the other's sends (TCP back-pressure) and nothing queues.
//! A FIN goes on as a FIN, a reset as a reset.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use futures_lite::future;
use smol::{Async, Timer};

/// The size of the scratch buffer, and so the most a direction holds.
pub const SCRATCH: usize = 16 * 1024;

/// The executor thread's one buffer for bytes in flight: every read goes
/// into it and is written out before the next await, so one is enough for
/// all pairs.
#[derive(Debug)]
pub struct Scratch(RefCell<Box<[u8]>>);

impl Default for Scratch {
    fn default() -> Self {
        Scratch(RefCell::new(vec![0; SCRATCH].into_boxed_slice()))
    }
}

impl Scratch {
    /// Runs `f` on the buffer; `f` must not await, so no one else can want
    /// it meanwhile.
    pub fn with<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }
}

/// Which side of a direction failed; the pair resets the other one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broke {
    /// Reading failed: the sender reset (or vanished).
    Reader,
    /// Writing failed: the receiver is gone.
    Writer,
}

/// What one step of reading and writing on left the direction to do.
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

/// Copies between `a` and `b` until both directions have ended, one side
/// has been gone (FIN) for `wait` while the other goes on, or a side
/// resets or fails, which resets the other. `to_a` and `to_b` are written
/// first (the relay's lines, and early bytes). Returns the bytes copied
/// from `a` to `b` and from `b` to `a`.
pub async fn run(
    a: Async<TcpStream>,
    b: Async<TcpStream>,
    to_a: Vec<u8>,
    to_b: Vec<u8>,
    wait: Duration,
    scratch: &Scratch,
) -> [u64; 2] {
    let copied = [Cell::new(0), Cell::new(0)];
    let mut a_to_b = pin!(copy(&a, &b, to_b, scratch, &copied[0]));
    let mut b_to_a = pin!(copy(&b, &a, to_a, scratch, &copied[1]));
    let mut done = [false; 2];
    let mut gone: Option<Timer> = None;
    // Which side to reset, if any: the one opposite the side that failed.
    let reset = future::poll_fn(|cx| {
        if !done[0] {
            if let Poll::Ready(result) = a_to_b.as_mut().poll(cx) {
                match result {
                    Ok(()) => done[0] = true,
                    Err(Broke::Reader) => return Poll::Ready(Some(&b)),
                    Err(Broke::Writer) => return Poll::Ready(Some(&a)),
                }
            }
        }
        if !done[1] {
            if let Poll::Ready(result) = b_to_a.as_mut().poll(cx) {
                match result {
                    Ok(()) => done[1] = true,
                    Err(Broke::Reader) => return Poll::Ready(Some(&a)),
                    Err(Broke::Writer) => return Poll::Ready(Some(&b)),
                }
            }
        }
        match done {
            [true, true] => Poll::Ready(None),
            [false, false] => Poll::Pending,
            // One side is gone; the other has `wait` to finish.
            _ => {
                let timer = gone.get_or_insert_with(|| Timer::after(wait));
                match Pin::new(timer).poll(cx) {
                    Poll::Ready(_) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    })
    .await;
    if let Some(side) = reset {
        reset_on_close(side);
    }
    [copied[0].get(), copied[1].get()]
}

/// Copies from `from` to `to`, after writing `held`, until `from` sends its
/// FIN (passed on as a FIN) or a side fails.
async fn copy(
    from: &Async<TcpStream>,
    to: &Async<TcpStream>,
    mut held: Vec<u8>,
    scratch: &Scratch,
    copied: &Cell<u64>,
) -> Result<(), Broke> {
    loop {
        // Write out what is held, waiting for room; nothing is read meanwhile.
        while !held.is_empty() {
            match write(to, &held) {
                Ok(n) => drop(held.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    to.writable().await.map_err(|_| Broke::Writer)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Broke::Writer),
            }
        }
        // An idle direction holds no buffer.
        held = Vec::new();
        // Wait, then read once: a read that would find nothing costs a
        // system call per message.
        from.readable().await.map_err(|_| Broke::Reader)?;
        loop {
            let step = scratch.with(|buf| {
                let n = match read(from, buf) {
                    Ok(0) => return Step::End,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => return Step::Again,
                    Err(_) => return Step::Broke(Broke::Reader),
                };
                copied.set(copied.get() + n as u64);
                match write(to, &buf[..n]) {
                    Ok(m) if m == n && n == buf.len() => Step::Again,
                    Ok(m) if m == n => Step::Wait,
                    Ok(m) => Step::Hold(buf[m..n].to_vec()),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) =>
                    {
                        Step::Hold(buf[..n].to_vec())
                    }
                    Err(_) => Step::Broke(Broke::Writer),
                }
            });
            match step {
                Step::Again => continue,
                Step::Wait => break,
                Step::Hold(rest) => {
                    held = rest;
                    break;
                }
                Step::End => {
                    // The receiver may be gone already; its own direction says so.
                    let _ = to.get_ref().shutdown(Shutdown::Write);
                    return Ok(());
                }
                Step::Broke(side) => return Err(side),
            }
        }
    }
}

/// One non-blocking read.
fn read(from: &Async<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    let mut socket: &TcpStream = from.get_ref();
    socket.read(buf)
}

/// One non-blocking write.
fn write(to: &Async<TcpStream>, buf: &[u8]) -> io::Result<usize> {
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
