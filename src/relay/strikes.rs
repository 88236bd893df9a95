//! Strikes against addresses that try room numbers: a leaky bucket per
//! address. Joining a room that never existed, or taking a room and failing
//! its handshake (its server took it back, or closed it), is a strike; one
//! strike is forgiven every [`FORGIVEN_EVERY`]. An address that holds
//! [`ALLOWED`] strikes is refused every request but `hello` (`too many tries
//! from your address`), and each refusal adds a strike, up to [`MOST`]: a
//! sweep that goes on stays refused, and one that stops is served again
//! [`MOST`] − [`ALLOWED`] + 1 minutes later. A person who mistypes a code a few
//! times never comes near.
//!
//! The table is bounded ([`TRACKED`] addresses): when it is full, the
//! addresses with the fewest strikes are forgotten first. Pure bookkeeping
//! over seconds since the relay started, no I/O.

use std::collections::HashMap;

use super::address::Addr;

/// How many strikes an address may hold and still be served.
pub const ALLOWED: u32 = 8;

/// The most strikes an address can hold: refusals add no more.
pub const MOST: u32 = 20;

/// How often one strike is forgiven, in seconds.
pub const FORGIVEN_EVERY: u32 = 60;

/// The most addresses the table tracks: 32,768 × 12 bytes a slot, about
/// 0.75 MiB with the map's spare room, when full.
pub const TRACKED: usize = 32_768;

/// The strikes of every address that has any, as the second (since the
/// relay started) at which the last of them is forgiven.
#[derive(Debug, Default)]
pub struct Strikes {
    paid_at: HashMap<Addr, u32>,
}

impl Strikes {
    /// Whether `addr` holds too many strikes at second `now` to be served;
    /// if so, the refusal is one more strike (up to [`MOST`]).
    pub fn refuse(&mut self, addr: Addr, now: u32) -> bool {
        if self.strikes(addr, now) < ALLOWED {
            return false;
        }
        self.add(addr, now);
        true
    }

    /// One strike against `addr`, at second `now`.
    pub fn strike(&mut self, addr: Addr, now: u32) {
        self.add(addr, now);
    }

    /// How many strikes `addr` holds at second `now` (a strike partly
    /// forgiven still counts).
    pub fn strikes(&self, addr: Addr, now: u32) -> u32 {
        let owed = self.paid_at.get(&addr).map_or(0, |&paid| paid.saturating_sub(now));
        owed.div_ceil(FORGIVEN_EVERY)
    }

    /// How many addresses are tracked.
    pub fn len(&self) -> usize {
        self.paid_at.len()
    }

    /// Whether no address is.
    pub fn is_empty(&self) -> bool {
        self.paid_at.is_empty()
    }

    fn add(&mut self, addr: Addr, now: u32) {
        if self.paid_at.len() >= TRACKED && !self.paid_at.contains_key(&addr) {
            self.forget(now);
        }
        let most = now + MOST * FORGIVEN_EVERY;
        let paid = self.paid_at.entry(addr).or_insert(now);
        *paid = ((*paid).max(now) + FORGIVEN_EVERY).min(most);
    }

    /// Makes room: forgets the addresses whose strikes are all forgiven,
    /// then, if the table is still nearly full, the half with the fewest.
    /// Each time frees an eighth of the table or more, so its cost is spread
    /// over as many strikes.
    fn forget(&mut self, now: u32) {
        self.paid_at.retain(|_, &mut paid| paid > now);
        if self.paid_at.len() >= TRACKED - TRACKED / 8 {
            let mut all: Vec<u32> = self.paid_at.values().copied().collect();
            let middle = all.len() / 2;
            let median = *all.select_nth_unstable(middle).1;
            self.paid_at.retain(|_, &mut paid| paid > median);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u32) -> Addr {
        Addr::of(std::net::Ipv4Addr::from(0xc000_0200u32.wrapping_add(n)).into())
    }

    #[test]
    fn a_few_mistakes_are_never_refused() {
        let mut strikes = Strikes::default();
        let me = addr(1);
        for _ in 0..ALLOWED {
            assert!(!strikes.refuse(me, 100));
            strikes.strike(me, 100);
        }
        assert!(strikes.refuse(me, 100), "past {ALLOWED} strikes");
        assert!(!strikes.refuse(addr(2), 100), "another address");
    }

    #[test]
    fn one_strike_is_forgiven_a_minute() {
        let mut strikes = Strikes::default();
        let me = addr(1);
        for _ in 0..ALLOWED {
            strikes.strike(me, 0);
        }
        assert!(strikes.refuse(me, 0));
        // That refusal was a strike too: nine to work off, two minutes.
        assert_eq!(strikes.strikes(me, 119), ALLOWED);
        assert_eq!(strikes.strikes(me, 121), ALLOWED - 1);
        assert!(!strikes.refuse(me, 121));
        assert_eq!(strikes.strikes(me, 121 + ALLOWED * 60), 0);
    }

    #[test]
    fn a_sweep_that_goes_on_stays_refused_and_one_that_stops_is_forgotten() {
        let mut strikes = Strikes::default();
        let me = addr(1);
        for _ in 0..ALLOWED {
            strikes.strike(me, 0);
        }
        // A thousand tries a second for ten minutes: all refused.
        for second in 0..600 {
            for _ in 0..1000 {
                assert!(strikes.refuse(me, second), "second {second}");
            }
        }
        assert_eq!(strikes.strikes(me, 600), MOST);
        // It stops: refused until the strikes are down to the allowed.
        let free = 599 + (MOST - ALLOWED + 1) * FORGIVEN_EVERY;
        assert!(strikes.strikes(me, free - 1) >= ALLOWED);
        assert!(!strikes.refuse(me, free));
    }

    #[test]
    fn the_table_is_bounded_and_keeps_those_with_the_most_strikes() {
        let mut strikes = Strikes::default();
        let sweeper = addr(0);
        for _ in 0..MOST {
            strikes.strike(sweeper, 0);
        }
        for n in 1..=4 * TRACKED as u32 {
            strikes.strike(addr(n), 0);
            assert!(strikes.len() <= TRACKED);
        }
        assert!(strikes.refuse(sweeper, 0), "the sweeper was forgotten");
    }

    #[test]
    fn strikes_all_forgiven_are_forgotten_first() {
        let mut strikes = Strikes::default();
        let sweeper = addr(0);
        for _ in 0..MOST {
            strikes.strike(sweeper, 0);
        }
        for n in 1..TRACKED as u32 {
            strikes.strike(addr(n), 0);
        }
        assert_eq!(strikes.len(), TRACKED);
        // A minute and more later the others' one strike is forgiven.
        strikes.strike(addr(u32::MAX), 100);
        assert_eq!(strikes.len(), 2, "only the sweeper and the newest are left");
        assert!(strikes.refuse(sweeper, 100));
    }
}
