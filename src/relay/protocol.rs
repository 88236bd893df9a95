//! The relay's wire lines, both directions, as pure functions: what a chat
//! side sends to open or join a room, and what the relay answers. The relay
//! and the chat side both read this one file; nothing here does I/O.
//!
//! Every line is readable ASCII ending in `\n`. A request is at most
//! [`MAX_LINE`] bytes and must arrive within [`REQUEST_DEADLINE`].

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::seconds_text;

/// The protocol name and version every request starts with.
pub const VERSION: &str = "smolchat-relay/1";

/// The longest request line, its `\n` included: a relay reads no more than
/// this before it knows what a connection wants.
pub const MAX_LINE: usize = 1024;

/// How long a relay waits for a connection's request line.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// A room number: decimal, from 1.
pub type Room = u32;

/// What a chat side asks the relay, in its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `smolchat-relay/1 open [direct]`: a server opens a room and waits in it.
    Open {
        /// Whether to be told where the relay sees this side (`seen`).
        direct: bool,
    },
    /// `smolchat-relay/1 join N [direct]`: a client joins room N.
    Join {
        /// The room.
        room: Room,
        /// Whether to be told where the relay sees this side (`seen`).
        direct: bool,
    },
}

impl Request {
    /// The line to send, with its `\n`.
    pub fn line(&self) -> String {
        let direct = |d: bool| if d { " direct" } else { "" };
        match *self {
            Request::Open { direct: d } => format!("{VERSION} open{}\n", direct(d)),
            Request::Join { room, direct: d } => format!("{VERSION} join {room}{}\n", direct(d)),
        }
    }

    /// Reads a request line (without its `\n`; a `\r` before it is allowed).
    /// Anything but exactly one of the four requests is refused.
    pub fn parse(line: &[u8]) -> Result<Request, Refusal> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line).map_err(|_| Refusal::NotARequest)?;
        let words: Vec<&str> = text.split(' ').collect();
        let request = match words[..] {
            [VERSION, "open"] => Request::Open { direct: false },
            [VERSION, "open", "direct"] => Request::Open { direct: true },
            [VERSION, "join", n] => Request::Join { room: room(n)?, direct: false },
            [VERSION, "join", n, "direct"] => Request::Join { room: room(n)?, direct: true },
            _ => return Err(Refusal::NotARequest),
        };
        Ok(request)
    }

    /// Whether this side asked for its `seen` address.
    pub fn direct(&self) -> bool {
        match *self {
            Request::Open { direct } | Request::Join { direct, .. } => direct,
        }
    }
}

/// A room number as written: decimal digits, no sign, no leading zero,
/// from 1.
fn room(text: &str) -> Result<Room, Refusal> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0')
        && text.len() <= 10;
    match canonical.then(|| text.parse::<Room>().ok()).flatten() {
        Some(n) => Ok(n),
        None => Err(Refusal::NotARequest),
    }
}

/// Why the relay turns a connection away, or ends a room: each is one line
/// a person can read, and the connection is closed after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `relay is full`: `--max-chats` rooms and pairs are held.
    Full,
    /// `relay is busy`: too many connections have yet to say what they want.
    Busy,
    /// `no room N`: nobody waits in that room (never opened, or taken).
    NoRoom(Room),
    /// `too many rooms from your address`: this address holds the most
    /// waiting rooms one address may.
    TooManyRooms,
    /// `no request within 10 seconds`.
    Late,
    /// `not a smolchat-relay/1 request`.
    NotARequest,
    /// `request longer than 1024 bytes`.
    TooLong,
    /// `sent more than 1024 bytes before being paired`: a waiting side may
    /// send a little ahead, not stream into a room.
    TooEarly,
    /// `nobody joined within SECS seconds`: the room was closed after the
    /// relay's `--wait`; a server opens a new one.
    Expired(Duration),
    /// Any other line a relay sent, as read (already made printable).
    Other(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Full => f.write_str("relay is full"),
            Refusal::Busy => f.write_str("relay is busy"),
            Refusal::NoRoom(n) => write!(f, "no room {n}"),
            Refusal::TooManyRooms => f.write_str("too many rooms from your address"),
            Refusal::Late => {
                write!(f, "no request within {} seconds", REQUEST_DEADLINE.as_secs())
            }
            Refusal::NotARequest => write!(f, "not a {VERSION} request"),
            Refusal::TooLong => write!(f, "request longer than {MAX_LINE} bytes"),
            Refusal::TooEarly => write!(f, "sent more than {MAX_LINE} bytes before being paired"),
            Refusal::Expired(wait) => {
                let unit = if *wait == Duration::from_secs(1) { "second" } else { "seconds" };
                write!(f, "nobody joined within {} {unit}", seconds_text(*wait))
            }
            Refusal::Other(text) => f.write_str(text),
        }
    }
}

/// What the relay tells a chat side, a line at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `room N`: the room opened; wait in it for the one who joins.
    Room(Room),
    /// `paired`: from the next byte on, the connection carries the other
    /// side's bytes.
    Paired,
    /// `seen ADDR:PORT`: where the relay sees this side's connection (an
    /// IPv6 address in brackets); only after `paired`, only when asked.
    Seen(SocketAddr),
    /// A refusal, then the relay closes.
    Refused(Refusal),
}

impl Reply {
    /// The line to send, with its `\n`.
    pub fn line(&self) -> String {
        match self {
            Reply::Room(n) => format!("room {n}\n"),
            Reply::Paired => "paired\n".to_string(),
            Reply::Seen(addr) => format!("seen {}\n", seen(*addr)),
            Reply::Refused(why) => format!("{why}\n"),
        }
    }

    /// Reads a line from the relay (without its `\n`). A line that is none
    /// of the answers is what the relay said in refusing, made printable:
    /// bytes other than printable ASCII become `?`, and it is cut at
    /// [`MAX_LINE`] bytes.
    pub fn parse(line: &[u8]) -> Reply {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text: String = line
            .iter()
            .take(MAX_LINE)
            .map(|&b| if (b' '..=b'~').contains(&b) { b as char } else { '?' })
            .collect();
        if text == "paired" {
            return Reply::Paired;
        }
        if let Some(n) = text.strip_prefix("room ").and_then(|n| room(n).ok()) {
            return Reply::Room(n);
        }
        if let Some(addr) = text.strip_prefix("seen ").and_then(|a| a.parse().ok()) {
            return Reply::Seen(addr);
        }
        Reply::Refused(refusal(&text))
    }
}

/// A refusal line read back into what it means; an unknown one is kept as
/// said.
fn refusal(text: &str) -> Refusal {
    let known = [
        Refusal::Full,
        Refusal::Busy,
        Refusal::TooManyRooms,
        Refusal::Late,
        Refusal::NotARequest,
        Refusal::TooLong,
        Refusal::TooEarly,
    ];
    if let Some(known) = known.into_iter().find(|r| r.to_string() == text) {
        return known;
    }
    if let Some(n) = text.strip_prefix("no room ").and_then(|n| room(n).ok()) {
        return Refusal::NoRoom(n);
    }
    let expired = text
        .strip_prefix("nobody joined within ")
        .and_then(|t| t.strip_suffix(" seconds").or_else(|| t.strip_suffix(" second")));
    // Read back as `--wait` was given: the one reader of seconds.
    if let Some(wait) = expired.and_then(|t| crate::cli::seconds("--wait", t).ok()) {
        return Refusal::Expired(wait);
    }
    Refusal::Other(text.to_string())
}

/// An address as `seen` writes it: IPv4 for an IPv4 peer of a dual-stack
/// listener (`::ffff:a.b.c.d` is the same host), IPv6 in brackets.
pub fn seen(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Where the first line ends in `buf`: `Ok(Some(i))` when `buf[i]` is its
/// `\n`, `Ok(None)` when more bytes are needed, `Err` when [`MAX_LINE`]
/// bytes hold no `\n`. For reading a relay's replies one line at a time
/// without reading past them, and the relay's requests.
pub fn line_end(buf: &[u8]) -> Result<Option<usize>, Refusal> {
    let window = &buf[..buf.len().min(MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => Ok(Some(i)),
        None if buf.len() >= MAX_LINE => Err(Refusal::TooLong),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let all = [
            (Request::Open { direct: false }, "smolchat-relay/1 open\n"),
            (Request::Open { direct: true }, "smolchat-relay/1 open direct\n"),
            (Request::Join { room: 7, direct: false }, "smolchat-relay/1 join 7\n"),
            (
                Request::Join { room: 4294967295, direct: true },
                "smolchat-relay/1 join 4294967295 direct\n",
            ),
        ];
        for (request, line) in all {
            assert_eq!(request.line(), line);
            let bare = line.strip_suffix('\n').unwrap().as_bytes();
            assert_eq!(Request::parse(bare), Ok(request), "{line:?}");
        }
        assert_eq!(Request::parse(b"smolchat-relay/1 open\r"), Ok(Request::Open { direct: false }));
        assert!(Request::Join { room: 1, direct: true }.direct());
    }

    #[test]
    fn anything_else_is_not_a_request() {
        let bad: &[&[u8]] = &[
            b"",
            b"open",
            b"smolchat-relay/1",
            b"smolchat-relay/2 open",
            b"smolchat-relay/1 open  direct",
            b"smolchat-relay/1 open direct ",
            b" smolchat-relay/1 open",
            b"smolchat-relay/1 OPEN",
            b"smolchat-relay/1 open indirect",
            b"smolchat-relay/1 join",
            b"smolchat-relay/1 join 0",
            b"smolchat-relay/1 join 07",
            b"smolchat-relay/1 join -7",
            b"smolchat-relay/1 join +7",
            b"smolchat-relay/1 join 4294967296",
            b"smolchat-relay/1 join 99999999999",
            b"smolchat-relay/1 join 7 7",
            b"smolchat-relay/1 join seven",
            b"smolchat-relay/1 open\r\r",
            b"smolchat-relay/1 open\0",
            b"smolchat-relay/1 \xff",
            b"GET / HTTP/1.1",
        ];
        for line in bad {
            assert_eq!(Request::parse(line), Err(Refusal::NotARequest), "{line:?}");
        }
    }

    #[test]
    fn replies_round_trip() {
        let all = [
            (Reply::Room(1), "room 1\n"),
            (Reply::Paired, "paired\n"),
            (Reply::Seen("192.0.2.1:2000".parse().unwrap()), "seen 192.0.2.1:2000\n"),
            (Reply::Seen("[2001:db8::1]:9".parse().unwrap()), "seen [2001:db8::1]:9\n"),
            (Reply::Refused(Refusal::Full), "relay is full\n"),
            (Reply::Refused(Refusal::Busy), "relay is busy\n"),
            (Reply::Refused(Refusal::NoRoom(7)), "no room 7\n"),
            (Reply::Refused(Refusal::TooManyRooms), "too many rooms from your address\n"),
            (Reply::Refused(Refusal::Late), "no request within 10 seconds\n"),
            (Reply::Refused(Refusal::NotARequest), "not a smolchat-relay/1 request\n"),
            (Reply::Refused(Refusal::TooLong), "request longer than 1024 bytes\n"),
            (Reply::Refused(Refusal::TooEarly), "sent more than 1024 bytes before being paired\n"),
            (
                Reply::Refused(Refusal::Expired(Duration::from_secs(600))),
                "nobody joined within 600 seconds\n",
            ),
            (
                Reply::Refused(Refusal::Expired(Duration::from_millis(1500))),
                "nobody joined within 1.5 seconds\n",
            ),
            (
                Reply::Refused(Refusal::Expired(Duration::from_secs(1))),
                "nobody joined within 1 second\n",
            ),
            (
                Reply::Refused(Refusal::Expired(Duration::from_millis(20))),
                "nobody joined within 0.02 seconds\n",
            ),
        ];
        for (reply, line) in all {
            assert_eq!(reply.line(), line);
            assert!(line.bytes().all(|b| b == b'\n' || (b' '..=b'~').contains(&b)), "{line:?}");
            let bare = line.strip_suffix('\n').unwrap().as_bytes();
            assert_eq!(Reply::parse(bare), reply, "{line:?}");
        }
    }

    #[test]
    fn an_unknown_reply_is_kept_printable() {
        assert_eq!(
            Reply::parse(b"relay going down\r"),
            Reply::Refused(Refusal::Other("relay going down".into()))
        );
        assert_eq!(
            Reply::parse(b"\x1b[2Jgotcha\xff"),
            Reply::Refused(Refusal::Other("?[2Jgotcha?".into()))
        );
        assert_eq!(Reply::parse(b"room 0"), Reply::Refused(Refusal::Other("room 0".into())));
        let long = Reply::parse(&[b'x'; 5000]);
        assert_eq!(long.line().len(), MAX_LINE + 1);
    }

    #[test]
    fn seen_writes_an_ipv4_peer_of_a_dual_stack_listener_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:4000".parse().unwrap();
        assert_eq!(Reply::Seen(mapped).line(), "seen 192.0.2.7:4000\n");
        let v6: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
        assert_eq!(seen(v6), v6);
    }

    #[test]
    fn a_line_ends_at_its_newline_within_the_limit() {
        assert_eq!(line_end(b"room 1\npaired\n"), Ok(Some(6)));
        assert_eq!(line_end(b"room"), Ok(None));
        assert_eq!(line_end(b""), Ok(None));
        let mut just = vec![b'x'; MAX_LINE - 1];
        just.push(b'\n');
        assert_eq!(line_end(&just), Ok(Some(MAX_LINE - 1)));
        assert_eq!(line_end(&vec![b'x'; MAX_LINE - 1]), Ok(None));
        assert_eq!(line_end(&vec![b'x'; MAX_LINE]), Err(Refusal::TooLong));
        let mut over = vec![b'x'; MAX_LINE];
        over.push(b'\n');
        assert_eq!(line_end(&over), Err(Refusal::TooLong));
    }
}
