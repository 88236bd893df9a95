//! The waiting rooms: numbered from 1, each new one the lowest free number so
//! that codes stay short, taken by the first joiner only, and at most
//! [`ROOMS_PER_ADDRESS`] waiting for one address. Pure bookkeeping, no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use super::protocol::{Refusal, Room};

/// The most rooms one address may have waiting at once.
pub const ROOMS_PER_ADDRESS: u16 = 16;

/// The rooms waiting for a joiner, each holding a `T` (what the joiner needs
/// to reach the one waiting).
#[derive(Debug)]
pub struct Rooms<T> {
    waiting: BTreeMap<Room, (IpAddr, T)>,
    /// Numbers below `next` that are free again.
    free: BTreeSet<Room>,
    /// The lowest number never handed out (or handed back at the top).
    next: Room,
    per_address: HashMap<IpAddr, u16>,
}

impl<T> Default for Rooms<T> {
    fn default() -> Self {
        Rooms {
            waiting: BTreeMap::new(),
            free: BTreeSet::new(),
            next: 1,
            per_address: HashMap::new(),
        }
    }
}

impl<T> Rooms<T> {
    /// Opens a room for `owner` (an IPv4 peer of a dual-stack listener
    /// counts as its IPv4 address), with the lowest free number.
    pub fn open(&mut self, owner: IpAddr, value: T) -> Result<Room, Refusal> {
        let owner = owner.to_canonical();
        let count = self.per_address.get(&owner).copied().unwrap_or(0);
        if count >= ROOMS_PER_ADDRESS {
            return Err(Refusal::TooManyRooms);
        }
        let room = match self.free.pop_first() {
            Some(room) => room,
            None if self.next == Room::MAX => return Err(Refusal::Full),
            None => {
                self.next += 1;
                self.next - 1
            }
        };
        self.per_address.insert(owner, count + 1);
        self.waiting.insert(room, (owner, value));
        Ok(room)
    }

    /// Takes room `room` out: for its first joiner, or when the one waiting
    /// leaves. Nobody can take it again; its number is free.
    pub fn take(&mut self, room: Room) -> Option<T> {
        let (owner, value) = self.waiting.remove(&room)?;
        if let Some(count) = self.per_address.get_mut(&owner) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&owner);
            }
        }
        self.free.insert(room);
        // Numbers free at the top go back to `next`, so that `free` holds
        // only the gaps.
        while self.next > 1 && self.free.remove(&(self.next - 1)) {
            self.next -= 1;
        }
        Some(value)
    }

    /// How many rooms are waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no room is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn rooms_take_the_lowest_free_number() {
        let mut rooms = Rooms::default();
        assert_eq!(rooms.open(ip(1), 'a'), Ok(1));
        assert_eq!(rooms.open(ip(1), 'b'), Ok(2));
        assert_eq!(rooms.open(ip(2), 'c'), Ok(3));
        assert_eq!(rooms.take(2), Some('b'));
        assert_eq!(rooms.open(ip(3), 'd'), Ok(2));
        assert_eq!(rooms.take(1), Some('a'));
        assert_eq!(rooms.take(3), Some('c'));
        assert_eq!(rooms.take(2), Some('d'));
        assert!(rooms.is_empty());
        assert_eq!((rooms.next, rooms.free.len()), (1, 0), "numbers left behind");
        assert_eq!(rooms.open(ip(1), 'e'), Ok(1));
    }

    #[test]
    fn a_room_is_taken_once() {
        let mut rooms = Rooms::default();
        let room = rooms.open(ip(1), ()).unwrap();
        assert_eq!(rooms.take(room), Some(()));
        assert_eq!(rooms.take(room), None);
        assert_eq!(rooms.take(99), None);
        assert_eq!(rooms.len(), 0);
    }

    #[test]
    fn one_address_holds_at_most_sixteen_waiting_rooms() {
        let mut rooms = Rooms::default();
        for n in 1..=16 {
            assert_eq!(rooms.open(ip(1), ()), Ok(n));
        }
        assert_eq!(rooms.open(ip(1), ()), Err(Refusal::TooManyRooms));
        // The same address written as IPv4 in IPv6 is the same address.
        let mapped = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(rooms.open(mapped, ()), Err(Refusal::TooManyRooms));
        assert_eq!(rooms.open(ip(2), ()), Ok(17));
        rooms.take(5);
        assert_eq!(rooms.open(ip(1), ()), Ok(5));
        assert_eq!(rooms.len(), 17);
    }
}
