//! The waiting rooms: numbered from 1, each new one the lowest free number so
//! that codes stay short, taken by the first joiner only, and at most
//! [`ROOMS_PER_ADDRESS`] waiting for one address. Pure bookkeeping, no I/O.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::wire::relay::{Refusal, Room};

/// The most rooms one address may have waiting at once.
pub const ROOMS_PER_ADDRESS: u16 = 16;

/// The rooms waiting for a joiner, each holding a `T` (what the joiner needs
/// to reach the one waiting).
///
/// Room N is slot N - 1 of a plain vector: the numbers are small and dense
/// (the lowest free one is handed out), so a vector holds them as well as a
/// map would, and with much less code in the binary.
#[derive(Debug)]
pub struct Rooms<T> {
    /// Room N's owner and value at N - 1; never ends with an empty slot.
    slots: Vec<Option<(IpAddr, T)>>,
    /// Every slot below this one is taken: the search for a free one starts
    /// here.
    first_free: usize,
    waiting: usize,
    per_address: HashMap<IpAddr, u16>,
}

impl<T> Default for Rooms<T> {
    fn default() -> Self {
        Rooms { slots: Vec::new(), first_free: 0, waiting: 0, per_address: HashMap::new() }
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
        let free = (self.first_free..self.slots.len()).find(|&i| self.slots[i].is_none());
        let slot = free.unwrap_or(self.slots.len());
        let room = Room::try_from(slot + 1).map_err(|_| Refusal::Full)?;
        if slot == self.slots.len() {
            self.slots.push(None);
        }
        self.slots[slot] = Some((owner, value));
        self.first_free = slot + 1;
        self.waiting += 1;
        self.per_address.insert(owner, count + 1);
        Ok(room)
    }

    /// Takes room `room` out: for its first joiner, or when the one waiting
    /// leaves. Nobody can take it again; its number is free.
    pub fn take(&mut self, room: Room) -> Option<T> {
        let slot = (room as usize).checked_sub(1)?;
        let (owner, value) = self.slots.get_mut(slot)?.take()?;
        self.waiting -= 1;
        if let Some(count) = self.per_address.get_mut(&owner) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&owner);
            }
        }
        self.first_free = self.first_free.min(slot);
        // Free slots at the top go, so that the vector is as long as the
        // highest room waiting.
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        Some(value)
    }

    /// How many rooms are waiting.
    pub fn len(&self) -> usize {
        self.waiting
    }

    /// Whether no room is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting == 0
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
        assert_eq!((rooms.slots.len(), rooms.first_free), (0, 0), "numbers left behind");
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

    #[test]
    fn numbers_match_a_map_of_the_rooms_over_many_opens_and_takes() {
        use std::collections::BTreeMap;
        let mut rooms = Rooms::default();
        let mut model: BTreeMap<Room, u32> = BTreeMap::new();
        // A fixed pseudo-random walk: opens from many addresses, takes of
        // waiting rooms and of rooms that do not wait.
        let mut seed: u32 = 0x2545_f491;
        for step in 0..6_000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            if seed % 5 < 3 {
                let lowest = (1..).find(|n| !model.contains_key(n)).unwrap();
                let owner = IpAddr::from([198, 51, 100, (step % 250) as u8]);
                match rooms.open(owner, step) {
                    Ok(room) => {
                        assert_eq!(room, lowest, "step {step}");
                        model.insert(room, step);
                    }
                    Err(refusal) => assert_eq!(refusal, Refusal::TooManyRooms, "step {step}"),
                }
            } else {
                let room = seed % (model.len() as u32 + 3);
                assert_eq!(rooms.take(room), model.remove(&room), "step {step}, room {room}");
            }
            assert_eq!(rooms.len(), model.len(), "step {step}");
            let highest = model.keys().next_back().copied().unwrap_or(0);
            assert_eq!(rooms.slots.len(), highest as usize, "step {step}");
        }
    }
}
