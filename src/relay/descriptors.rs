//! The relay's file descriptors: its open-file limit raised toward what
//! `--max-chats` needs (two per chat, the lobby, a few of its own), and
//! the descriptors 0-2 kept taken, so that no socket can become the stderr
//! that status lines are written to.

/// Descriptors the relay keeps for itself: stdio, the reactor's, the
/// listening socket, and a few to spare.
pub const RESERVE: u64 = 16;

/// The most connections the lobby holds while they have yet to speak.
pub const LOBBY: u64 = 512;

/// What the open-file limit lets the relay hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Rooms and pairs together.
    pub chats: usize,
    /// Connections in the lobby.
    pub lobby: usize,
    /// The open-file limit, when it holds fewer chats than were asked for.
    pub short: Option<u64>,
}

/// The budget for `chats` within an open-file limit of `limit` (`None`:
/// unlimited): the lobby shrinks first, down to an eighth of the limit,
/// then the chats. Zero chats means the limit is too low to relay at all.
pub fn budget(chats: usize, limit: Option<u64>) -> Budget {
    let want = chats as u64;
    match limit {
        Some(limit) if limit < need(chats) => {
            let lobby = (limit / 8).clamp(1, LOBBY);
            let fit = limit.saturating_sub(RESERVE + lobby) / 2;
            let short = (fit < want).then_some(limit);
            Budget { chats: fit.min(want) as usize, lobby: lobby as usize, short }
        }
        _ => Budget { chats, lobby: LOBBY as usize, short: None },
    }
}

/// What to say once about the open-file limit: only when it holds fewer
/// chats than `--max-chats` asked for (`asked`; `None` when it was not
/// given: the default is a ceiling, not a request, and a relay that holds
/// what its limit allows needs no line about it).
pub fn note(budget: &Budget, asked: Option<usize>) -> Option<String> {
    let (limit, asked) = (budget.short?, asked?);
    Some(format!(
        "the open-file limit of {limit} holds {} chats, fewer than --max-chats {asked} \
         (it needs {})",
        budget.chats,
        need(asked)
    ))
}

/// The descriptors `chats` need: two a chat, the lobby, the relay's own.
fn need(chats: usize) -> u64 {
    2 * chats as u64 + LOBBY + RESERVE
}

/// The soft limit to set for `need` descriptors, from the limits `soft` and
/// `hard` (`None`: unlimited): raised toward the need, never past the hard
/// limit, never lowered. `None` when it stays as it is.
pub fn raised(soft: Option<u64>, hard: Option<u64>, need: u64) -> Option<u64> {
    match soft {
        Some(soft) if soft < need => Some(hard.map_or(need, |hard| hard.min(need)).max(soft)),
        _ => None,
    }
}

/// Raises the soft open-file limit toward what `chats` need, up to the hard
/// limit, and says what that holds.
#[cfg(unix)]
pub fn raise(chats: usize) -> Budget {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let set =
        |soft| setrlimit(Resource::Nofile, Rlimit { current: Some(soft), maximum: now.maximum });
    // Raised when it could be; else as it was.
    let soft = raised(now.current, now.maximum, need(chats)).filter(|&soft| set(soft).is_ok());
    budget(chats, soft.or(now.current))
}

/// Windows has no small limit on sockets.
#[cfg(not(unix))]
pub fn raise(chats: usize) -> Budget {
    budget(chats, None)
}

/// Makes sure descriptors 0, 1 and 2 are open (on /dev/null if they were
/// closed), so that the sockets the relay opens never take their numbers.
#[cfg(unix)]
pub fn keep_stdio_taken() {
    use std::os::fd::AsRawFd;
    for _ in 0..3 {
        match std::fs::File::open("/dev/null") {
            // The lowest free number: one of 0-2 was closed; keep it taken
            // for the life of the process.
            Ok(file) if file.as_raw_fd() <= 2 => std::mem::forget(file),
            _ => break,
        }
    }
}

/// Windows hands out no small numbers to sockets.
#[cfg(not(unix))]
pub fn keep_stdio_taken() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_high_enough_limit_holds_every_chat_and_the_whole_lobby() {
        let want = Budget { chats: 10_000, lobby: 512, short: None };
        assert_eq!(budget(10_000, None), want);
        assert_eq!(budget(10_000, Some(20_528)), want);
    }

    #[test]
    fn a_low_limit_holds_fewer_chats_and_says_so() {
        // 20,000 here: the lobby keeps its 512, the chats get the rest.
        assert_eq!(
            budget(10_000, Some(20_000)),
            Budget { chats: 9_736, lobby: 512, short: Some(20_000) }
        );
        assert_eq!(
            budget(10_000, Some(1024)),
            Budget { chats: 440, lobby: 128, short: Some(1024) }
        );
        // Asked for few, the few fit even in a short limit's share.
        assert_eq!(budget(4, Some(64)), Budget { chats: 4, lobby: 8, short: None });
        assert_eq!(budget(100, Some(17)).chats, 0);
    }

    #[test]
    fn the_limit_is_said_only_when_it_holds_fewer_chats_than_were_asked_for() {
        let short = budget(10_000, Some(20_000));
        assert_eq!(note(&short, None), None, "no --max-chats given");
        assert_eq!(
            note(&short, Some(10_000)).as_deref(),
            Some(
                "the open-file limit of 20000 holds 9736 chats, fewer than --max-chats 10000 \
                 (it needs 20528)"
            )
        );
        assert_eq!(note(&budget(5_000, Some(20_000)), Some(5_000)), None, "it holds them all");
    }

    #[test]
    fn raising_goes_toward_the_need_and_never_past_the_hard_limit() {
        assert_eq!(raised(Some(1024), Some(4096), 20_528), Some(4096));
        assert_eq!(raised(Some(1024), Some(65_536), 20_528), Some(20_528));
        assert_eq!(raised(Some(1024), None, 20_528), Some(20_528));
        // Enough already, or unlimited: left as it is, never lowered.
        assert_eq!(raised(Some(30_000), Some(65_536), 20_528), None);
        assert_eq!(raised(None, None, 20_528), None);
        // A soft limit above a (strange) hard one is not lowered either.
        assert_eq!(raised(Some(2048), Some(1024), 20_528), Some(2048));
    }
}
