//! The lobby: connections that have not yet said what they want. Each gets
//! [`REQUEST_DEADLINE`] and [`MAX_LINE`] bytes for its request line; at
//! most a set number wait at once, and when one more arrives the one that
//! has waited longest is turned away, so that a flood of silent or
//! half-sent connections cannot take every file descriptor from the people
//! who speak at once.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use futures_lite::{future, FutureExt};
use smol::{Async, Timer};

use super::pair::{read, with_scratch};
use crate::wire::relay::{line_end, Refusal, Request, MAX_LINE, REQUEST_DEADLINE};

/// The connections waiting to speak, oldest first: in a queue by ticket
/// number, which only grows, so it stays sorted (a map would cost some
/// kilobytes of binary for no gain; connections mostly leave near the front).
#[derive(Debug)]
pub struct Lobby {
    waiting: VecDeque<(u64, Rc<Flag>)>,
    next: u64,
    capacity: usize,
}

/// A place in the lobby; its flag is raised when it is taken away.
#[derive(Debug)]
pub struct Ticket {
    id: u64,
    /// Raised when a newer connection needed the place.
    pub evicted: Rc<Flag>,
}

impl Lobby {
    /// A lobby for at most `capacity` connections (at least one).
    pub fn new(capacity: usize) -> Lobby {
        Lobby { waiting: VecDeque::new(), next: 0, capacity: capacity.max(1) }
    }

    /// Lets a connection in, turning out the oldest one when it is full.
    pub fn enter(&mut self) -> Ticket {
        if self.waiting.len() >= self.capacity {
            self.evict_oldest();
        }
        let id = self.next;
        self.next += 1;
        let evicted = Rc::new(Flag::default());
        self.waiting.push_back((id, evicted.clone()));
        Ticket { id, evicted }
    }

    /// Turns out the connection that has waited longest, if any: also when
    /// descriptors run out, to make room.
    pub fn evict_oldest(&mut self) -> bool {
        match self.waiting.pop_front() {
            Some((_, flag)) => {
                flag.raise();
                true
            }
            None => false,
        }
    }

    /// The connection has spoken (or gone).
    pub fn leave(&mut self, ticket: &Ticket) {
        if let Ok(at) = self.waiting.binary_search_by_key(&ticket.id, |(id, _)| *id) {
            self.waiting.remove(at);
        }
    }

    /// How many connections wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// A flag one task raises and another waits for.
#[derive(Default)]
pub struct Flag {
    raised: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl std::fmt::Debug for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flag").field("raised", &self.raised.get()).finish()
    }
}

impl Flag {
    /// Raises the flag and wakes whoever waits for it.
    pub fn raise(&self) {
        self.raised.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Whether the flag is up.
    pub fn is_raised(&self) -> bool {
        self.raised.get()
    }

    /// Waits until the flag is raised.
    pub async fn wait(&self) {
        future::poll_fn(|cx| {
            if self.raised.get() {
                return Poll::Ready(());
            }
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }
}

/// What a connection said first.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// A request, and the bytes that came after its line.
    Request(Request, Vec<u8>),
    /// Something to refuse.
    Refused(Refusal),
    /// The connection closed or failed before a whole line.
    Gone,
}

/// Reads the first line of `stream`, accepted at `since`: within
/// [`REQUEST_DEADLINE`], at most [`MAX_LINE`] bytes, unless `evicted` is
/// raised first. Never reads more than [`MAX_LINE`] bytes, so the bytes after
/// the line are few, and all are kept.
pub async fn hear(stream: &Async<TcpStream>, since: Instant, evicted: &Flag) -> Heard {
    let mut got: Vec<u8> = Vec::new();
    let line = async {
        loop {
            if stream.readable().await.is_err() {
                return Heard::Gone;
            }
            let step = with_scratch(|buf| match read(stream, &mut buf[..MAX_LINE - got.len()]) {
                Ok(0) => Some(Heard::Gone),
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    match line_end(&got) {
                        Ok(Some(end)) => Some(match Request::parse(&got[..end]) {
                            Ok(request) => Heard::Request(request, got[end + 1..].to_vec()),
                            Err(refusal) => Heard::Refused(refusal),
                        }),
                        Ok(None) => None,
                        Err(refusal) => Some(Heard::Refused(refusal)),
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    None
                }
                Err(_) => Some(Heard::Gone),
            });
            if let Some(heard) = step {
                return heard;
            }
        }
    };
    let late = async {
        Timer::at(since + REQUEST_DEADLINE).await;
        Heard::Refused(Refusal::Late)
    };
    let busy = async {
        evicted.wait().await;
        Heard::Refused(Refusal::Busy)
    };
    line.or(busy).or(late).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_from_anywhere_and_the_rest_keep_their_order() {
        let mut lobby = Lobby::new(100);
        let tickets: Vec<Ticket> = (0..10).map(|_| lobby.enter()).collect();
        for i in [4, 0, 9, 5, 2] {
            lobby.leave(&tickets[i]);
        }
        lobby.leave(&tickets[4]);
        assert_eq!(lobby.len(), 5);
        for i in [1, 3, 6, 7, 8] {
            assert!(lobby.evict_oldest());
            let raised: Vec<usize> = (0..10).filter(|&j| tickets[j].evicted.is_raised()).collect();
            assert_eq!(raised.last(), Some(&i), "turned out {raised:?}");
        }
        assert!(lobby.is_empty());
    }

    #[test]
    fn the_oldest_waiting_connection_is_turned_out_first() {
        let mut lobby = Lobby::new(2);
        let first = lobby.enter();
        let second = lobby.enter();
        assert!(!first.evicted.is_raised());
        let third = lobby.enter();
        assert!(first.evicted.is_raised() && !second.evicted.is_raised());
        assert_eq!(lobby.len(), 2);
        lobby.leave(&second);
        lobby.leave(&first);
        assert_eq!(lobby.len(), 1);
        let _fourth = lobby.enter();
        assert!(!third.evicted.is_raised());
        assert!(lobby.evict_oldest());
        assert!(third.evicted.is_raised());
        assert!(lobby.evict_oldest());
        assert!(!lobby.evict_oldest() && lobby.is_empty());
    }

    #[test]
    fn a_raised_flag_ends_the_wait() {
        let flag = Rc::new(Flag::default());
        let raiser = flag.clone();
        smol::block_on(flag.wait().or(async {
            raiser.raise();
            future::pending().await
        }));
        assert!(flag.is_raised());
    }
}
