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

/// How many addresses' worth of strikes an IPv6 site (/48) may hold, and
/// have forgiven a minute.
pub const SITE_SHARE: u32 = 4;

/// The debt, in seconds, at which an address is refused: [`ALLOWED`]
/// strikes of a minute each (for a site, [`SITE_SHARE`] times as many of a
/// [`SITE_SHARE`]th of a minute).
const LIMIT: u32 = ALLOWED * FORGIVEN_EVERY;

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
    /// Whether `addr`, or its site, holds too many strikes at second `now`
    /// to be served; if so, the refusal is one more strike for whichever
    /// does (up to [`MOST`]).
    pub fn refuse(&mut self, addr: Addr, now: u32) -> bool {
        let mut refused = false;
        for (key, weight) in keys(addr) {
            if self.owed(key, now) + weight > LIMIT {
                self.add(key, now, weight);
                refused = true;
            }
        }
        refused
    }

    /// One strike against `addr` (and its site), at second `now`.
    pub fn strike(&mut self, addr: Addr, now: u32) {
        for (key, weight) in keys(addr) {
            self.add(key, now, weight);
        }
    }

    /// How many strikes `addr` itself holds at second `now` (a strike
    /// partly forgiven still counts).
    pub fn strikes(&self, addr: Addr, now: u32) -> u32 {
        self.owed(addr, now).div_ceil(FORGIVEN_EVERY)
    }

    /// The seconds until every strike of `key` is forgiven.
    fn owed(&self, key: Addr, now: u32) -> u32 {
        self.paid_at.get(&key).map_or(0, |&paid| paid.saturating_sub(now))
    }

    /// How many addresses are tracked.
    pub fn len(&self) -> usize {
        self.paid_at.len()
    }

    /// Whether no address is.
    pub fn is_empty(&self) -> bool {
        self.paid_at.is_empty()
    }

    fn add(&mut self, key: Addr, now: u32, weight: u32) {
        if self.paid_at.len() >= TRACKED && !self.paid_at.contains_key(&key) {
            self.forget(now);
        }
        let most = now + MOST * FORGIVEN_EVERY;
        let paid = self.paid_at.entry(key).or_insert(now);
        *paid = ((*paid).max(now) + weight).min(most);
    }

    /// Makes room: forgets the addresses whose strikes are all forgiven,
    /// then, until a quarter of the table is free, those with no more
    /// strikes than the average, then any. So each time frees a quarter of
    /// the table or more, and its cost is spread over as many strikes.
    fn forget(&mut self, now: u32) {
        self.paid_at.retain(|_, &mut paid| paid > now);
        let Some(mut over) = self.paid_at.len().checked_sub(TRACKED - TRACKED / 4) else {
            return;
        };
        let sum: u64 = self.paid_at.values().map(|&paid| u64::from(paid)).sum();
        let average = sum / self.paid_at.len() as u64;
        for fewest in [true, false] {
            self.paid_at.retain(|_, &mut paid| {
                let goes = over > 0 && (!fewest || u64::from(paid) <= average);
                over -= usize::from(goes);
                !goes
            });
        }
    }
}

/// What a strike against `addr` counts against: the address, a minute's
/// worth, and its site if it has one, a [`SITE_SHARE`]th of that.
fn keys(addr: Addr) -> impl Iterator<Item = (Addr, u32)> {
    let site = addr.site().map(|site| (site, FORGIVEN_EVERY / SITE_SHARE));
    std::iter::once((addr, FORGIVEN_EVERY)).chain(site)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u32) -> Addr {
        Addr::of(std::net::Ipv4Addr::from(0xc000_0200u32.wrapping_add(n)).into())
    }

    fn v6(text: &str) -> Addr {
        Addr::of(text.parse().unwrap())
    }

    #[test]
    fn a_site_holds_four_addresses_worth_of_strikes() {
        let mut strikes = Strikes::default();
        // Thirty-two strikes from thirty-two /64s of one /48.
        for n in 0..32 {
            let me = v6(&format!("2001:db8:7:{n:x}::1"));
            assert!(!strikes.refuse(me, 0), "strike {n}");
            strikes.strike(me, 0);
        }
        // Then any /64 of it is refused, none of another site.
        assert!(strikes.refuse(v6("2001:db8:7:ff::1"), 0));
        assert!(!strikes.refuse(v6("2001:db8:8::1"), 0));
        // That refusal kept it fresh; four are forgiven a minute.
        assert!(strikes.refuse(v6("2001:db8:7:fe::1"), 29));
        assert!(!strikes.refuse(v6("2001:db8:7:fe::1"), 45));
        // IPv4 has no site.
        assert!(!strikes.refuse(addr(1), 0));
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
