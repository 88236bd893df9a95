//! Numbers kept aside: the numbers of rooms that are gone, for about an
//! hour ([`KEPT_FOR`]), at most [`KEPT`] of them. None is handed out again
//! meanwhile, so a friend who holds a stale code never lands in someone
//! else's room, and is told `no room N` without a strike (it was a real
//! room). Only numbers and when they went: no record of who held them.

use std::collections::{HashSet, VecDeque};

use crate::wire::relay::Room;

/// How long a number is kept aside, in seconds.
pub const KEPT_FOR: u32 = 60 * 60;

/// The most numbers kept aside: about 1 MiB when full. A relay whose rooms
/// go faster than this an hour keeps each number aside for less.
pub const KEPT: usize = 65_536;

/// Numbers kept aside, oldest first, with the second each went.
#[derive(Debug, Default)]
pub struct Aside {
    order: VecDeque<(Room, u32)>,
    set: HashSet<Room>,
}

impl Aside {
    /// Keeps `room` aside from second `now`.
    pub fn keep(&mut self, room: Room, now: u32) {
        self.expire(now);
        if self.order.len() >= KEPT {
            self.pop();
        }
        if self.set.insert(room) {
            self.order.push_back((room, now));
        }
    }

    /// Whether `room` is kept aside at second `now`.
    pub fn holds(&mut self, room: Room, now: u32) -> bool {
        self.expire(now);
        self.set.contains(&room)
    }

    /// How many numbers are kept aside.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn expire(&mut self, now: u32) {
        while self.order.front().is_some_and(|&(_, went)| went + KEPT_FOR <= now) {
            self.pop();
        }
    }

    fn pop(&mut self) {
        if let Some((room, _)) = self.order.pop_front() {
            self.set.remove(&room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_kept_for_an_hour() {
        let mut aside = Aside::default();
        aside.keep(7, 10);
        aside.keep(8, 20);
        assert!(aside.holds(7, 10 + KEPT_FOR - 1) && aside.holds(8, 10 + KEPT_FOR - 1));
        assert!(!aside.holds(7, 10 + KEPT_FOR));
        assert!(aside.holds(8, 10 + KEPT_FOR));
        assert!(!aside.holds(9, 0));
        assert!(!aside.holds(8, 20 + KEPT_FOR) && aside.is_empty());
    }

    #[test]
    fn the_oldest_go_first_when_full() {
        let mut aside = Aside::default();
        for room in 1..=KEPT as Room + 10 {
            aside.keep(room, 5);
        }
        assert_eq!(aside.len(), KEPT);
        assert!(!aside.holds(10, 5) && aside.holds(11, 5) && aside.holds(KEPT as Room + 10, 5));
    }
}
