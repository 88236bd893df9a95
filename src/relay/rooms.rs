//! The rooms, by number, through their life: waiting (its server's
//! connection is in it) → paired (a joiner came) → held (the pair ended, or
//! the server's connection went, or `--wait` passed: the server may open it
//! again with its key, for [`super::HOLD`]) → gone (its number kept aside).
//! A keyed room opened again is the same room, under the same number; a
//! room without a key is gone as soon as it would be held.
//!
//! Also the ends each address holds: a room's server (waiting or held) and
//! a pair's joiner are one end each, at most [`ENDS_PER_ADDRESS`] for one
//! address and [`ENDS_PER_SITE`] for one IPv6 site (/48), so that one
//! address cannot fill the relay, not even with pairs of its own.
//!
//! Pure bookkeeping: the tasks that hold the rooms' connections ask here
//! what became of their room, by its number and their turn in it.

use std::collections::HashMap;
use std::task::{Context, Poll, Waker};

use super::address::Addr;
use super::aside::Aside;
use super::numbers::Numbers;
use crate::wire::relay::{Key, Refusal, Room};

/// The most ends (rooms and pairs' joiners) one address may hold.
pub const ENDS_PER_ADDRESS: u32 = 16;

/// The most ends one IPv6 site (/48) may hold: four addresses' worth.
pub const ENDS_PER_SITE: u32 = 4 * ENDS_PER_ADDRESS;

/// How many random numbers are tried before the free ones are searched for
/// in order (only when nearly every number is taken, as in a test's few).
const DRAWS: usize = 32;

/// Where a room is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its server's connection waits in it for a joiner.
    Waiting,
    /// A joiner came: the two are a pair.
    Paired,
    /// Nobody is in it, and its server may open it again with its key.
    Held,
}

/// One room that is not gone. `T` is what a joiner leaves for the room's
/// task (its connection).
#[derive(Debug)]
struct Live<T> {
    key: Option<Key>,
    owner: Addr,
    /// The joiner of its last pair since its server last opened it: an end
    /// while the room is paired, and struck if the server takes the room
    /// back or closes it (it took the room and failed the handshake).
    joiner: Option<Addr>,
    state: State,
    /// Which of the room's connections holds it: opening it again makes a
    /// new turn, and the task of the old one ends.
    turn: u32,
    /// The task that holds the room, woken when its room changes hands.
    waker: Option<Waker>,
    /// A joiner's connection, until the room's task takes it.
    arrived: Option<T>,
}

impl<T> Live<T> {
    /// The joiner's end, while it counts: in a pair.
    fn pair_end(&self) -> Option<Addr> {
        self.joiner.filter(|_| self.state == State::Paired)
    }

    /// Moves the room to state `to`, and the count of rooms with it.
    fn set_state(&mut self, to: State, counts: &mut [usize; 3]) {
        counts[self.state as usize] -= 1;
        counts[to as usize] += 1;
        self.state = to;
    }

    /// Wakes the room's task: its room changed hands.
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// A room opened: its number, the opener's turn in it, and the address to
/// strike if a joiner was turned out.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    /// The room's number.
    pub room: Room,
    /// The opener's turn in the room.
    pub turn: u32,
    /// The joiner whose pair this opening ended, or who was in the room's
    /// last pair: it took the room and failed the handshake.
    pub struck: Option<Addr>,
}

/// A join refused: why, the joiner's value back, and whether it is a strike
/// (the room never existed).
#[derive(Debug)]
pub struct Refused<T> {
    /// The refusal to send.
    pub refusal: Refusal,
    /// What the joiner brought.
    pub joiner: T,
    /// Whether the joiner tried a number that was never a room.
    pub strike: bool,
}

/// What became of a waiting room, for its task.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<T> {
    /// A joiner came.
    Joined(T),
    /// Its server opened it again from another connection, or closed it:
    /// this task's connection is not wanted any more.
    Ended,
}

/// Every room that is not gone, the keys of the keyed ones, the numbers
/// kept aside and the ends per address.
#[derive(Debug)]
pub struct Rooms<T> {
    live: HashMap<Room, Live<T>>,
    keys: HashMap<Key, Room>,
    ends: HashMap<Addr, u32>,
    aside: Aside,
    numbers: Numbers,
    /// Rooms waiting, paired, held.
    counts: [usize; 3],
    /// How many turns have ended: a task need not look its room up again
    /// while this stays the same.
    turns_ended: u64,
}

impl<T> Rooms<T> {
    /// No rooms yet; their numbers come from `numbers`.
    pub fn new(numbers: Numbers) -> Rooms<T> {
        Rooms {
            live: HashMap::new(),
            keys: HashMap::new(),
            ends: HashMap::new(),
            aside: Aside::default(),
            numbers,
            counts: [0; 3],
            turns_ended: 0,
        }
    }

    /// `owner` opens a room at second `now`: with a key the relay holds a
    /// room for, that room, under its number, whatever it was doing;
    /// otherwise a new one, if fewer than `capacity` rooms are held.
    pub fn open(
        &mut self,
        owner: Addr,
        key: Option<Key>,
        capacity: usize,
        now: u32,
    ) -> Result<Opened, Refusal> {
        if let Some(&room) = key.as_ref().and_then(|key| self.keys.get(key)) {
            return self.open_again(room, owner);
        }
        if self.live.len() >= capacity {
            return Err(Refusal::Full);
        }
        if full(&self.ends, owner) {
            return Err(Refusal::TooManyRooms);
        }
        let room = self.free_number(now).ok_or(Refusal::Full)?;
        let live = Live {
            key,
            owner,
            joiner: None,
            state: State::Waiting,
            turn: 0,
            waker: None,
            arrived: None,
        };
        self.live.insert(room, live);
        if let Some(key) = key {
            self.keys.insert(key, room);
        }
        add_end(&mut self.ends, owner);
        self.counts[State::Waiting as usize] += 1;
        Ok(Opened { room, turn: 0, struck: None })
    }

    /// Room `room`, keyed, opened again by `owner`: it waits again with the
    /// new connection; the old one's task ends, and a joiner in it is
    /// turned out.
    fn open_again(&mut self, room: Room, owner: Addr) -> Result<Opened, Refusal> {
        let live = self.live.get_mut(&room).expect("a key names a live room");
        if live.owner != owner {
            // The end moves: the new address must have room for it.
            drop_end(&mut self.ends, live.owner);
            if full(&self.ends, owner) {
                add_end(&mut self.ends, live.owner);
                return Err(Refusal::TooManyRooms);
            }
            add_end(&mut self.ends, owner);
            live.owner = owner;
        }
        if let Some(joiner) = live.pair_end() {
            drop_end(&mut self.ends, joiner);
        }
        live.set_state(State::Waiting, &mut self.counts);
        live.arrived = None;
        live.turn = live.turn.wrapping_add(1);
        self.turns_ended += 1;
        live.wake();
        Ok(Opened { room, turn: live.turn, struck: live.joiner.take() })
    }

    /// A number that is neither held nor kept aside, if there is one.
    fn free_number(&mut self, now: u32) -> Option<Room> {
        for _ in 0..DRAWS {
            let room = self.numbers.draw();
            if !self.live.contains_key(&room) && !self.aside.holds(room, now) {
                return Some(room);
            }
        }
        let highest = self.numbers.highest();
        let start = self.numbers.draw();
        (0..highest)
            .map(|i| (start - 1 + i) % highest + 1)
            .find(|room| !self.live.contains_key(room) && !self.aside.holds(*room, now))
    }

    /// `joiner` joins room `room` at second `now`, leaving `value` for the
    /// room's task: only a waiting room can be joined.
    pub fn join(&mut self, room: Room, joiner: Addr, value: T, now: u32) -> Result<(), Refused<T>> {
        let refused = |refusal, joiner, strike| Refused { refusal, joiner, strike };
        let Some(live) = self.live.get_mut(&room) else {
            // A number kept aside was a room: its friend holds a stale
            // code. Any other was never one.
            let stale = self.aside.holds(room, now);
            return Err(refused(Refusal::NoRoom(room), value, !stale));
        };
        if live.state != State::Waiting {
            return Err(refused(Refusal::RoomBusy(room), value, false));
        }
        if full(&self.ends, joiner) {
            return Err(refused(Refusal::TooManyRooms, value, false));
        }
        add_end(&mut self.ends, joiner);
        live.joiner = Some(joiner);
        live.arrived = Some(value);
        live.set_state(State::Paired, &mut self.counts);
        live.wake();
        Ok(())
    }

    /// The room held for `key` is closed for good at second `now`: its
    /// code is spent. The joiner of its last pair, if any, is returned to
    /// be struck.
    pub fn close(&mut self, key: &Key, now: u32) -> Option<Addr> {
        let room = *self.keys.get(key)?;
        let joiner = self.live.get(&room).and_then(|live| live.joiner);
        self.gone(room, now);
        joiner
    }

    /// For the task of turn `turn` in waiting room `room`: a joiner, or the
    /// end of its turn; else pending, and woken at either.
    pub fn poll_joined(&mut self, room: Room, turn: u32, cx: &mut Context<'_>) -> Poll<Event<T>> {
        match self.live.get_mut(&room) {
            Some(live) if live.turn == turn => match live.arrived.take() {
                Some(value) => Poll::Ready(Event::Joined(value)),
                None => {
                    register(&mut live.waker, cx);
                    Poll::Pending
                }
            },
            _ => Poll::Ready(Event::Ended),
        }
    }

    /// For the task of turn `turn` in room `room`: ready once that turn
    /// has ended (the room opened again, or closed, or gone).
    pub fn poll_ended(&mut self, room: Room, turn: u32, cx: &mut Context<'_>) -> Poll<()> {
        match self.live.get_mut(&room) {
            Some(live) if live.turn == turn => {
                register(&mut live.waker, cx);
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }

    /// The server's connection of turn `turn` left waiting room `room`
    /// (closed, reset, or `--wait` passed) at second `now`. True when the
    /// room is held for its key; false when it is gone.
    pub fn left(&mut self, room: Room, turn: u32, now: u32) -> bool {
        self.hold(room, turn, now, State::Waiting)
    }

    /// The pair in room `room`, of turn `turn`, ended at second `now`.
    /// True when the room is held for its key; false when it is gone.
    pub fn pair_ended(&mut self, room: Room, turn: u32, now: u32) -> bool {
        self.hold(room, turn, now, State::Paired)
    }

    fn hold(&mut self, room: Room, turn: u32, now: u32, from: State) -> bool {
        let Some(live) = self.live.get_mut(&room).filter(|l| l.turn == turn && l.state == from)
        else {
            return false;
        };
        if live.key.is_none() {
            self.gone(room, now);
            return false;
        }
        if let Some(joiner) = live.pair_end() {
            drop_end(&mut self.ends, joiner);
        }
        live.arrived = None;
        live.set_state(State::Held, &mut self.counts);
        true
    }

    /// Room `room`, held by turn `turn`, was not opened again in time: it
    /// is gone at second `now`.
    pub fn held_over(&mut self, room: Room, turn: u32, now: u32) {
        if self.live.get(&room).is_some_and(|l| l.turn == turn && l.state == State::Held) {
            self.gone(room, now);
        }
    }

    /// Room `room` is gone: its ends are freed, its task woken, and its
    /// number kept aside.
    fn gone(&mut self, room: Room, now: u32) {
        let Some(mut live) = self.live.remove(&room) else { return };
        drop_end(&mut self.ends, live.owner);
        if let Some(joiner) = live.pair_end() {
            drop_end(&mut self.ends, joiner);
        }
        if let Some(key) = live.key {
            self.keys.remove(&key);
        }
        self.counts[live.state as usize] -= 1;
        self.turns_ended += 1;
        live.wake();
        self.aside.keep(room, now);
    }

    /// How many turns in rooms have ended so far (a room opened again, or
    /// gone): while it stays the same, [`Rooms::poll_ended`] would say the
    /// same as before, and need not be asked.
    pub fn turns_ended(&self) -> u64 {
        self.turns_ended
    }

    /// Where room `room` is in its life, if it is not gone.
    pub fn state(&self, room: Room) -> Option<State> {
        self.live.get(&room).map(|live| live.state)
    }

    /// How many ends `addr` holds.
    pub fn ends_of(&self, addr: Addr) -> u32 {
        self.ends.get(&addr).copied().unwrap_or(0)
    }

    /// Rooms held in every state: what counts against `--max-chats`.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no room is held.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// How many rooms are in `state`.
    pub fn count(&self, state: State) -> usize {
        self.counts[state as usize]
    }
}

/// Keeps `cx`'s waker in `slot`, unless the one there wakes the same task.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

/// Whether `addr`, or its site, holds all the ends it may.
fn full(ends: &HashMap<Addr, u32>, addr: Addr) -> bool {
    let count = |key| ends.get(&key).copied().unwrap_or(0);
    count(addr) >= ENDS_PER_ADDRESS || addr.site().is_some_and(|s| count(s) >= ENDS_PER_SITE)
}

/// One more end for `addr` and its site.
fn add_end(ends: &mut HashMap<Addr, u32>, addr: Addr) {
    for key in addr.and_site() {
        *ends.entry(key).or_insert(0) += 1;
    }
}

/// One end fewer for `addr` and its site.
fn drop_end(ends: &mut HashMap<Addr, u32>, addr: Addr) {
    for key in addr.and_site() {
        if let Some(count) = ends.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                ends.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(last: u8) -> Addr {
        Addr::of(IpAddr::from([192, 0, 2, last]))
    }

    fn rooms() -> Rooms<char> {
        Rooms::new(Numbers::up_to(crate::wire::relay::MAX_ROOM))
    }

    const KEY: Key = [7; 16];
    const BIG: usize = 1_000_000;

    /// What a task would see, polled once.
    fn joined(rooms: &mut Rooms<char>, room: Room, turn: u32) -> Poll<Event<char>> {
        rooms.poll_joined(room, turn, &mut Context::from_waker(Waker::noop()))
    }

    fn ended(rooms: &mut Rooms<char>, room: Room, turn: u32) -> bool {
        rooms.poll_ended(room, turn, &mut Context::from_waker(Waker::noop())).is_ready()
    }

    #[test]
    fn a_room_waits_pairs_and_goes_with_its_ends() {
        let mut rooms = rooms();
        let opened = rooms.open(ip(1), None, BIG, 0).unwrap();
        assert_eq!(opened.struck, None);
        let room = opened.room;
        assert!(joined(&mut rooms, room, 0).is_pending());
        rooms.join(room, ip(2), 'j', 0).unwrap();
        assert_eq!(joined(&mut rooms, room, 0), Poll::Ready(Event::Joined('j')));
        assert_eq!(rooms.state(room), Some(State::Paired));
        assert_eq!((rooms.ends_of(ip(1)), rooms.ends_of(ip(2))), (1, 1));
        // A second joiner is told the room is busy, and it is no strike.
        let busy = rooms.join(room, ip(3), 'x', 0).unwrap_err();
        assert_eq!((busy.refusal, busy.joiner, busy.strike), (Refusal::RoomBusy(room), 'x', false));
        // Without a key the room is gone when the pair ends.
        assert!(!rooms.pair_ended(room, 0, 5));
        assert_eq!(rooms.state(room), None);
        assert_eq!((rooms.ends_of(ip(1)), rooms.ends_of(ip(2)), rooms.len()), (0, 0, 0));
        assert!(ended(&mut rooms, room, 0));
    }

    #[test]
    fn a_number_never_held_is_a_strike_and_one_kept_aside_is_not() {
        let mut rooms = rooms();
        let room = rooms.open(ip(1), None, BIG, 0).unwrap().room;
        let never = room % 9_999_999 + 1;
        let refused = rooms.join(never, ip(2), 'a', 0).unwrap_err();
        assert_eq!((refused.refusal, refused.strike), (Refusal::NoRoom(never), true));
        assert!(!rooms.left(room, 0, 10));
        let stale = rooms.join(room, ip(2), 'b', 10 + 3599).unwrap_err();
        assert_eq!((stale.refusal, stale.strike), (Refusal::NoRoom(room), false));
        // After an hour the number is free again, and a stranger to us.
        let later = rooms.join(room, ip(2), 'c', 10 + 3600).unwrap_err();
        assert_eq!((later.refusal, later.strike), (Refusal::NoRoom(room), true));
    }

    #[test]
    fn a_keyed_room_is_held_and_opened_again_under_its_number() {
        let mut rooms = rooms();
        let first = rooms.open(ip(1), Some(KEY), BIG, 0).unwrap();
        let room = first.room;
        // The server's connection goes: the room is held, not gone.
        assert!(rooms.left(room, 0, 1));
        assert_eq!(rooms.state(room), Some(State::Held));
        let busy = rooms.join(room, ip(2), 'x', 1).unwrap_err();
        assert_eq!((busy.refusal, busy.strike), (Refusal::RoomBusy(room), false));
        assert_eq!(rooms.ends_of(ip(1)), 1, "a held room is its server's end");
        // Opened again: the same number, a new turn; the old turn is over.
        let again = rooms.open(ip(1), Some(KEY), BIG, 2).unwrap();
        assert_eq!(again, Opened { room, turn: 1, struck: None });
        assert!(ended(&mut rooms, room, 0) && !ended(&mut rooms, room, 1));
        assert_eq!((rooms.len(), rooms.ends_of(ip(1))), (1, 1));
        // Past --wait too.
        assert!(rooms.left(room, 1, 600));
        assert_eq!(rooms.open(ip(1), Some(KEY), BIG, 601).unwrap().room, room);
    }

    #[test]
    fn opening_again_turns_out_the_joiner_and_strikes_it() {
        let mut rooms = rooms();
        let room = rooms.open(ip(1), Some(KEY), BIG, 0).unwrap().room;
        rooms.join(room, ip(9), 'g', 0).unwrap();
        // The server's task has not even taken the joiner yet.
        let again = rooms.open(ip(1), Some(KEY), BIG, 1).unwrap();
        assert_eq!(again, Opened { room, turn: 1, struck: Some(ip(9)) });
        assert_eq!(joined(&mut rooms, room, 0), Poll::Ready(Event::Ended));
        assert_eq!(rooms.ends_of(ip(9)), 0);
        assert_eq!(rooms.state(room), Some(State::Waiting));
        // The pair had formed and ended (the joiner left): held, then
        // opened again: the joiner is struck all the same, once.
        rooms.join(room, ip(8), 'h', 2).unwrap();
        assert_eq!(joined(&mut rooms, room, 1), Poll::Ready(Event::Joined('h')));
        assert!(rooms.pair_ended(room, 1, 3));
        assert_eq!(rooms.ends_of(ip(8)), 0);
        assert_eq!(rooms.open(ip(1), Some(KEY), BIG, 4).unwrap().struck, Some(ip(8)));
        assert!(rooms.left(room, 2, 5));
        assert_eq!(rooms.open(ip(1), Some(KEY), BIG, 6).unwrap().struck, None);
    }

    #[test]
    fn closing_ends_the_room_and_strikes_its_last_joiner() {
        let mut rooms = rooms();
        let room = rooms.open(ip(1), Some(KEY), BIG, 0).unwrap().room;
        assert_eq!(rooms.close(&[8; 16], 1), None, "no such key");
        rooms.join(room, ip(9), 'g', 0).unwrap();
        assert_eq!(rooms.close(&KEY, 1), Some(ip(9)));
        assert!(ended(&mut rooms, room, 0));
        assert_eq!((rooms.len(), rooms.ends_of(ip(1)), rooms.ends_of(ip(9))), (0, 0, 0));
        let stale = rooms.join(room, ip(2), 'x', 2).unwrap_err();
        assert_eq!((stale.refusal, stale.strike), (Refusal::NoRoom(room), false));
        // The key is free: it opens a new room under another number.
        let other = rooms.open(ip(1), Some(KEY), BIG, 3).unwrap().room;
        assert_ne!(other, room);
        // A waiting room closed strikes nobody.
        assert_eq!(rooms.close(&KEY, 4), None);
    }

    #[test]
    fn held_rooms_go_after_their_hold_unless_opened_again() {
        let mut rooms = rooms();
        let room = rooms.open(ip(1), Some(KEY), BIG, 0).unwrap().room;
        assert!(rooms.left(room, 0, 0));
        rooms.open(ip(1), Some(KEY), BIG, 5).unwrap();
        // The old turn's hold ends, but the room is the new turn's.
        rooms.held_over(room, 0, 10);
        assert_eq!(rooms.state(room), Some(State::Waiting));
        assert!(rooms.left(room, 1, 11));
        rooms.held_over(room, 1, 21);
        assert_eq!((rooms.state(room), rooms.ends_of(ip(1))), (None, 0));
        let stale = rooms.join(room, ip(2), 'x', 22).unwrap_err();
        assert!(!stale.strike);
    }

    #[test]
    fn one_address_holds_at_most_sixteen_ends_pairs_and_rooms_together() {
        let mut rooms = rooms();
        let me = ip(1);
        // Eight pairs of its own: sixteen ends.
        for _ in 0..8 {
            let room = rooms.open(me, None, BIG, 0).unwrap().room;
            rooms.join(room, me, 'm', 0).unwrap();
        }
        assert_eq!(rooms.ends_of(me), 16);
        assert_eq!(rooms.open(me, None, BIG, 0), Err(Refusal::TooManyRooms));
        let mapped = Addr::of("::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(rooms.open(mapped, None, BIG, 0), Err(Refusal::TooManyRooms));
        let theirs = rooms.open(ip(2), None, BIG, 0).unwrap().room;
        let refused = rooms.join(theirs, me, 'm', 0).unwrap_err();
        assert_eq!((refused.refusal, refused.strike), (Refusal::TooManyRooms, false));
        assert_eq!(rooms.state(theirs), Some(State::Waiting));
        // A held room counts: its server may come back for it.
        let keyed = rooms.open(ip(3), Some(KEY), BIG, 0).unwrap().room;
        assert!(rooms.left(keyed, 0, 0));
        assert_eq!(rooms.ends_of(ip(3)), 1);
        // Opening a keyed room again from a full address is refused too.
        assert_eq!(rooms.open(me, Some(KEY), BIG, 0), Err(Refusal::TooManyRooms));
        // From another address it moves the end there.
        rooms.open(ip(4), Some(KEY), BIG, 0).unwrap();
        assert_eq!((rooms.ends_of(ip(3)), rooms.ends_of(ip(4))), (0, 1));
    }

    #[test]
    fn one_ipv6_site_holds_at_most_sixty_four_ends() {
        let mut rooms = rooms();
        let v6 = |n: u32| Addr::of(format!("2001:db8:7:{n:x}::1").parse().unwrap());
        // Sixteen /64s of one /48, four rooms each: 64 ends.
        for n in 0..64 {
            rooms.open(v6(n / 4), None, BIG, 0).unwrap();
        }
        assert_eq!(rooms.open(v6(100), None, BIG, 0), Err(Refusal::TooManyRooms));
        let elsewhere = Addr::of("2001:db8:8::1".parse().unwrap());
        let room = rooms.open(elsewhere, None, BIG, 0).unwrap().room;
        let refused = rooms.join(room, v6(101), 'x', 0).unwrap_err();
        assert_eq!(refused.refusal, Refusal::TooManyRooms);
        // A room of the site gone: one more end for it.
        let (&first, _) = rooms.live.iter().find(|(_, l)| l.owner == v6(0)).unwrap();
        assert!(!rooms.left(first, 0, 0));
        rooms.join(room, v6(101), 'y', 0).unwrap();
    }

    #[test]
    fn rooms_held_in_any_state_count_against_the_capacity() {
        let mut rooms = rooms();
        let a = rooms.open(ip(1), Some(KEY), 2, 0).unwrap().room;
        let b = rooms.open(ip(2), None, 2, 0).unwrap().room;
        rooms.join(b, ip(3), 'j', 0).unwrap();
        assert!(rooms.left(a, 0, 0));
        assert_eq!(rooms.open(ip(4), None, 2, 0), Err(Refusal::Full));
        // A held room opened again is no new chat.
        assert_eq!(rooms.open(ip(1), Some(KEY), 2, 0).unwrap().room, a);
        assert_eq!(
            (rooms.count(State::Waiting), rooms.count(State::Paired), rooms.count(State::Held)),
            (1, 1, 0)
        );
    }

    #[test]
    fn numbers_kept_aside_are_not_handed_out_again() {
        let mut rooms: Rooms<char> = Rooms::new(Numbers::up_to(20));
        let mut gone = Vec::new();
        for second in 0..15 {
            let room = rooms.open(ip(1), None, BIG, second).unwrap().room;
            assert!(!gone.contains(&room), "{room} handed out again");
            assert!(!rooms.left(room, 0, second));
            gone.push(room);
        }
        // Five numbers are left: five rooms, then none.
        let five: Vec<Room> =
            (0..5).map(|_| rooms.open(ip(2), None, BIG, 20).unwrap().room).collect();
        assert!(five.iter().all(|room| !gone.contains(room)));
        assert_eq!(rooms.open(ip(3), None, BIG, 20), Err(Refusal::Full));
        // An hour on, the first ones are free again.
        assert!(rooms.open(ip(3), None, BIG, 3600).is_ok());
    }

    #[test]
    fn ends_match_a_model_over_many_steps() {
        use std::collections::BTreeMap;
        let mut rooms: Rooms<u32> = Rooms::new(Numbers::up_to(1000));
        // room -> (owner, key, joiner in the pair, state, turn)
        type Model = BTreeMap<Room, (Addr, Option<Key>, Option<Addr>, State, u32)>;
        let mut model: Model = BTreeMap::new();
        let mut seed: u32 = 0x2545_f491;
        for step in 0..20_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let who = ip((seed >> 8) as u8 % 6);
            let now = step / 4;
            let pick = model.keys().nth((seed >> 16) as usize % model.len().max(1)).copied();
            match seed % 7 {
                0 | 1 => {
                    let key = (seed % 3 == 0).then_some([(seed >> 20) as u8 % 8; 16]);
                    if let Ok(opened) = rooms.open(who, key, 40, now) {
                        let entry =
                            model.entry(opened.room).or_insert((who, key, None, State::Waiting, 0));
                        *entry = (who, key, None, State::Waiting, opened.turn);
                    }
                }
                2 | 3 => {
                    if let Some(room) = pick {
                        if rooms.join(room, who, step, now).is_ok() {
                            let entry = model.get_mut(&room).unwrap();
                            entry.2 = Some(who);
                            entry.3 = State::Paired;
                        }
                    }
                }
                4 => {
                    if let Some(room) = pick {
                        let (_, key, _, state, turn) = model[&room];
                        let kept = match state {
                            State::Waiting => rooms.left(room, turn, now),
                            State::Paired => rooms.pair_ended(room, turn, now),
                            State::Held => {
                                rooms.held_over(room, turn, now);
                                false
                            }
                        };
                        assert_eq!(kept, key.is_some() && state != State::Held, "step {step}");
                        if kept {
                            let entry = model.get_mut(&room).unwrap();
                            entry.3 = State::Held;
                        } else {
                            model.remove(&room);
                        }
                    }
                }
                5 => {
                    let key = [(seed >> 20) as u8 % 8; 16];
                    rooms.close(&key, now);
                    model.retain(|_, entry| entry.1 != Some(key));
                }
                _ => {}
            }
            assert_eq!(rooms.len(), model.len(), "step {step}");
            for addr in (0..6).map(ip) {
                let want = model
                    .values()
                    .map(|&(owner, _, joiner, state, _)| {
                        u32::from(owner == addr)
                            + u32::from(state == State::Paired && joiner == Some(addr))
                    })
                    .sum::<u32>();
                assert_eq!(rooms.ends_of(addr), want, "step {step}, {addr}");
                assert!(want <= ENDS_PER_ADDRESS);
            }
            for (&room, entry) in &model {
                assert_eq!(rooms.state(room), Some(entry.3), "step {step}, room {room}");
            }
        }
    }
}
