//! The lobby: connections that hold a descriptor but no room. Those that
//! have yet to say what they want get [`REQUEST_DEADLINE`] and [`MAX_LINE`]
//! bytes for their request line; those refused linger a moment after their
//! refusal line. Together they are at most a set number, and when one more
//! comes, a lingering one is turned out first, then the one that has waited
//! longest to speak: so neither a flood of silent or half-sent connections
//! nor a storm of refusals can take every file descriptor from the people
//! who speak at once.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::TcpStream;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use futures_lite::{future, FutureExt};
use smol::Async;

use crate::wire::framer::{Frame, Framer};
#[cfg(doc)]
use crate::wire::relay::REQUEST_DEADLINE;
use crate::wire::relay::{Refusal, Request, MAX_LINE};
use crate::wire::within;

/// The connections in the lobby, oldest first in each queue: in queues by
/// ticket number, which only grows, so they stay sorted (a map would cost
/// some kilobytes of binary for no gain; connections mostly leave near the
/// front).
pub struct Lobby {
    speaking: VecDeque<(u64, Rc<Flag>)>,
    lingering: VecDeque<(u64, Rc<Flag>)>,
    next: u64,
    capacity: usize,
}

/// A place in the lobby; its flag is raised when it is taken away.
pub struct Ticket {
    id: u64,
    lingering: bool,
    /// Raised when a newer connection needed the place.
    pub evicted: Rc<Flag>,
}

impl Lobby {
    /// A lobby for at most `capacity` connections (at least one).
    pub fn new(capacity: usize) -> Lobby {
        Lobby {
            speaking: VecDeque::new(),
            lingering: VecDeque::new(),
            next: 0,
            capacity: capacity.max(1),
        }
    }

    /// Lets a new connection in to speak, turning one out when it is full.
    pub fn enter(&mut self) -> Ticket {
        if self.len() >= self.capacity {
            self.evict_oldest();
        }
        self.place(false)
    }

    /// Lets a refused connection linger, turning out the one that has
    /// lingered longest when it is full; none when the lobby is full of
    /// connections yet to speak, which a refusal never turns out.
    pub fn linger(&mut self) -> Option<Ticket> {
        if self.len() >= self.capacity {
            let (_, flag) = self.lingering.pop_front()?;
            flag.raise();
        }
        Some(self.place(true))
    }

    fn place(&mut self, lingering: bool) -> Ticket {
        let id = self.next;
        self.next += 1;
        let evicted = Rc::new(Flag::default());
        let queue = if lingering { &mut self.lingering } else { &mut self.speaking };
        queue.push_back((id, evicted.clone()));
        Ticket { id, lingering, evicted }
    }

    /// Turns out the connection that has lingered longest, or else the one
    /// that has waited longest to speak: also when descriptors run out, to
    /// make room.
    pub fn evict_oldest(&mut self) -> bool {
        match self.lingering.pop_front().or_else(|| self.speaking.pop_front()) {
            Some((_, flag)) => {
                flag.raise();
                true
            }
            None => false,
        }
    }

    /// The connection has spoken, or stopped lingering (or gone).
    pub fn leave(&mut self, ticket: &Ticket) {
        let queue = if ticket.lingering { &mut self.lingering } else { &mut self.speaking };
        if let Ok(at) = queue.binary_search_by_key(&ticket.id, |(id, _)| *id) {
            queue.remove(at);
        }
    }

    /// How many connections are in the lobby.
    pub fn len(&self) -> usize {
        self.speaking.len() + self.lingering.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A flag one task raises and another waits for.
#[derive(Default)]
pub struct Flag {
    raised: Cell<bool>,
    waker: Cell<Option<Waker>>,
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

/// Reads the first line of `stream` by `deadline`, at most [`MAX_LINE`]
/// bytes with its `\n`, unless `evicted` is raised first. The framer reads
/// no more than a line's worth, so the bytes after the line are few, and
/// all are kept.
pub async fn hear(stream: &Async<TcpStream>, deadline: Instant, evicted: &Flag) -> Heard {
    let line = async {
        // The framer's buffer is made only once there are bytes to read: a
        // silent connection holds none.
        if stream.readable().await.is_err() {
            return Heard::Gone;
        }
        // The longest line the framer passes is its text without `\r\n`.
        let mut framer = Framer::new(stream, MAX_LINE - 1);
        match framer.next().await {
            Ok(Frame::Line) => match Request::parse(framer.line()) {
                Ok(request) => {
                    // Copied: what is kept while a room waits is only what
                    // came (an empty copy allocates nothing).
                    Heard::Request(request, framer.into_parts().1.to_vec())
                }
                Err(refusal) => Heard::Refused(refusal),
            },
            Ok(Frame::TooLong) => Heard::Refused(Refusal::TooLong),
            Ok(Frame::Eof) | Err(_) => Heard::Gone,
        }
    };
    let busy = async {
        evicted.wait().await;
        Heard::Refused(Refusal::Busy)
    };
    within(deadline, line.or(busy)).await.unwrap_or(Heard::Refused(Refusal::Late))
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
    fn a_lingering_refusal_goes_before_anyone_who_is_to_speak() {
        let mut lobby = Lobby::new(3);
        let speaking = lobby.enter();
        let refused = lobby.linger().unwrap();
        let newer = lobby.enter();
        // Full: the one lingering goes, though it came later.
        let newest = lobby.enter();
        assert!(refused.evicted.is_raised());
        assert!(!speaking.evicted.is_raised() && !newer.evicted.is_raised());
        // Full of those to speak: a refusal does not linger.
        assert!(lobby.linger().is_none());
        lobby.leave(&newer);
        // Refusals turn out each other, not those to speak.
        let storm: Vec<Ticket> = (0..10).map(|_| lobby.linger().unwrap()).collect();
        assert!(!speaking.evicted.is_raised() && !newest.evicted.is_raised());
        assert!(storm[..9].iter().all(|t| t.evicted.is_raised()));
        assert!(!storm[9].evicted.is_raised());
        assert_eq!(lobby.len(), 3);
        lobby.leave(&storm[9]);
        lobby.leave(&speaking);
        assert_eq!(lobby.len(), 1);
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
