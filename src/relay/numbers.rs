//! Room numbers nobody can foresee: SipHash, keyed by the process's own
//! random keys (std's `RandomState`, which the system's random source
//! seeds), over a counter. No crypto crate is needed (the build without
//! private chats has none), and knowing every number handed out before says
//! nothing about the next.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::wire::relay::{Room, MAX_ROOM};

/// The variable by which a test build makes the room numbers few (1 to N),
/// so that a test can see that a number kept aside is never handed out.
pub const TEST_ROOMS: &str = "SMOLCHAT_TEST_ROOMS";

/// Draws room numbers, uniformly from 1 to its highest.
#[derive(Debug)]
pub struct Numbers {
    keys: RandomState,
    counter: u64,
    highest: Room,
}

impl Numbers {
    /// Numbers from 1 to [`MAX_ROOM`]; in a build with debug assertions (the
    /// tests'), 1 to `SMOLCHAT_TEST_ROOMS` when that is set to a smaller
    /// whole number.
    pub fn new() -> Numbers {
        #[cfg(debug_assertions)]
        if let Some(n) = std::env::var(TEST_ROOMS).ok().and_then(|v| v.parse::<Room>().ok()) {
            return Numbers::up_to(n.clamp(1, MAX_ROOM));
        }
        Numbers::up_to(MAX_ROOM)
    }

    /// Numbers from 1 to `highest`.
    pub fn up_to(highest: Room) -> Numbers {
        Numbers { keys: RandomState::new(), counter: 0, highest }
    }

    /// The highest number drawn.
    pub fn highest(&self) -> Room {
        self.highest
    }

    /// The next number. 2^64 is not a multiple of the count, so the lowest
    /// numbers are more likely by at most one part in 10^12.
    pub fn draw(&mut self) -> Room {
        let mut hasher = self.keys.build_hasher();
        hasher.write_u64(self.counter);
        self.counter += 1;
        (hasher.finish() % u64::from(self.highest)) as Room + 1
    }
}

impl Default for Numbers {
    fn default() -> Self {
        Numbers::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_spread_over_the_whole_range() {
        let mut numbers = Numbers::up_to(MAX_ROOM);
        let drawn: Vec<Room> = (0..10_000).map(|_| numbers.draw()).collect();
        assert!(drawn.iter().all(|&n| (1..=MAX_ROOM).contains(&n)));
        // Ten equal bands of the range each get about a tenth.
        for band in 0..10 {
            let lo = band * (MAX_ROOM / 10);
            let inside = drawn.iter().filter(|&&n| n > lo && n <= lo + MAX_ROOM / 10).count();
            assert!((850..1150).contains(&inside), "band {band}: {inside} of 10,000");
        }
        // Not a sequence: neighbours are far apart.
        let close = drawn.windows(2).filter(|w| w[0].abs_diff(w[1]) < 1000).count();
        assert!(close < 10, "{close} neighbours within 1000");
    }

    #[test]
    fn two_relays_draw_different_numbers() {
        let (mut a, mut b) = (Numbers::up_to(MAX_ROOM), Numbers::up_to(MAX_ROOM));
        let same = (0..100).filter(|_| a.draw() == b.draw()).count();
        assert!(same < 3, "{same} of 100 the same");
    }

    #[test]
    fn a_small_range_is_covered() {
        let mut numbers = Numbers::up_to(5);
        let mut seen = [false; 6];
        for _ in 0..200 {
            seen[numbers.draw() as usize] = true;
        }
        assert_eq!(seen, [false, true, true, true, true, true]);
    }
}
