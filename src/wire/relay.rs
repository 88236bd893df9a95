//! The relay's wire lines, both directions, as pure functions: what a chat
//! side sends to the relay, and what the relay answers. The relay and the
//! chat side both read this one file (it sits below both); nothing here
//! does I/O.
//!
//! Every line is readable ASCII ending in `\n`. A request is at most
//! [`MAX_LINE`] bytes and must arrive within [`REQUEST_DEADLINE`]; the relay
//! sends nothing before it.
//!
//! ```text
//! smolchat-relay/1 hello                → relay                  (then closed)
//! smolchat-relay/1 open [KEY] [direct]  → room N                 (then paired, [seen ADDR:PORT])
//! smolchat-relay/1 join N [direct]      → paired, [seen ADDR:PORT]
//! smolchat-relay/1 close KEY            → closed                 (then closed)
//! any request                           → one refusal line       (then closed)
//! ```
//!
//! KEY is 32 lowercase hex digits a server makes for each code: opening
//! again with the same KEY gets the same room back (renewed past `--wait`,
//! or taken back from a joiner who never started the handshake), and
//! `close KEY` ends it for good once its code is spent.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::error::seconds_text;
use super::{hex, unhex};

/// The protocol name and version every request starts with.
pub const VERSION: &str = "smolchat-relay/1";

/// The longest request line, its `\n` included: a relay reads no more than
/// this before it knows what a connection wants.
pub const MAX_LINE: usize = 1024;

/// How long a relay waits for a connection's request line.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// A room number: decimal, from 1 to [`MAX_ROOM`] (at most 7 digits, so a
/// code can be read out).
pub type Room = u32;

/// The highest room number.
pub const MAX_ROOM: Room = 9_999_999;

/// A server's secret name for a room it holds: 16 random bytes.
pub type Key = [u8; 16];

/// A relay as a chat side is told to meet through it: `HOST:PORT`, or
/// `[V6]:PORT` (`--relay`, `SMOLCHAT_RELAY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The relay's name or address, as typed, without brackets.
    pub host: String,
    /// The relay's port.
    pub port: u16,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::net::host_port(&self.host, self.port))
    }
}

/// What a chat side asks the relay, in its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `smolchat-relay/1 hello`: is this a relay? Answered `relay`; costs
    /// nothing.
    Hello,
    /// `smolchat-relay/1 open [KEY] [direct]`: a server opens a room and
    /// waits in it; with a key, the room held for that key if there is one.
    Open {
        /// The server's secret name for the room, when it may renew it.
        key: Option<Key>,
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
    /// `smolchat-relay/1 close KEY`: the server's code for the room held
    /// for KEY is spent; the room ends, and its number is not handed out
    /// again for a while.
    Close {
        /// The room's key.
        key: Key,
    },
}

impl Request {
    /// The line to send, with its `\n`.
    pub fn line(&self) -> String {
        let direct = |d: bool| if d { " direct" } else { "" };
        match *self {
            Request::Hello => format!("{VERSION} hello\n"),
            Request::Open { key: None, direct: d } => format!("{VERSION} open{}\n", direct(d)),
            Request::Open { key: Some(key), direct: d } => {
                format!("{VERSION} open {}{}\n", hex(&key), direct(d))
            }
            Request::Join { room, direct: d } => format!("{VERSION} join {room}{}\n", direct(d)),
            Request::Close { key } => format!("{VERSION} close {}\n", hex(&key)),
        }
    }

    /// Reads a request line (without its `\n`; a `\r` before it is allowed).
    /// Anything but exactly one of the requests is refused.
    pub fn parse(line: &[u8]) -> Result<Request, Refusal> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line).map_err(|_| Refusal::NotARequest)?;
        let words: Vec<&str> = text.split(' ').collect();
        let request = match words[..] {
            [VERSION, "hello"] => Request::Hello,
            [VERSION, "open"] => Request::Open { key: None, direct: false },
            [VERSION, "open", "direct"] => Request::Open { key: None, direct: true },
            [VERSION, "open", k] => Request::Open { key: Some(key(k)?), direct: false },
            [VERSION, "open", k, "direct"] => Request::Open { key: Some(key(k)?), direct: true },
            [VERSION, "join", n] => Request::Join { room: room(n)?, direct: false },
            [VERSION, "join", n, "direct"] => Request::Join { room: room(n)?, direct: true },
            [VERSION, "close", k] => Request::Close { key: key(k)? },
            _ => return Err(Refusal::NotARequest),
        };
        Ok(request)
    }
}

/// A room number as written: decimal digits, no sign, no leading zero,
/// from 1 to [`MAX_ROOM`].
fn room(text: &str) -> Result<Room, Refusal> {
    let canonical = (1..=7).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    match canonical.then(|| text.parse::<Room>().ok()).flatten() {
        Some(n) if n <= MAX_ROOM => Ok(n),
        _ => Err(Refusal::NotARequest),
    }
}

/// A key as written: 32 lowercase hex digits.
fn key(text: &str) -> Result<Key, Refusal> {
    unhex(text).and_then(|key| Key::try_from(key).ok()).ok_or(Refusal::NotARequest)
}

/// Why the relay turns a connection away, or ends a room: each is one fixed
/// line, and the connection is closed after it. The chat side turns each
/// into words for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `relay is full`: `--max-chats` rooms and pairs are held.
    Full,
    /// `relay is busy`: too many connections have yet to say what they want.
    Busy,
    /// `no room N`: nobody holds that room (never opened, or its code was
    /// spent or it ended).
    NoRoom(Room),
    /// `room N is busy`: the room is paired, or its server is between two
    /// connections, and may yet take it back; try again in a moment.
    RoomBusy(Room),
    /// `too many rooms from your address`: this address (an IPv6 /64)
    /// holds the most rooms and pairs one address may.
    TooManyRooms,
    /// `too many tries from your address`: this address (an IPv6 /64)
    /// joined rooms that do not exist, or took rooms and failed their
    /// handshake, too often; it is refused for a while.
    TooManyTries,
    /// `no request within 10 seconds`.
    Late,
    /// `not a smolchat-relay/1 request`.
    NotARequest,
    /// `request longer than 1024 bytes`.
    TooLong,
    /// `sent more than 1024 bytes before being paired`: a waiting side may
    /// send a little ahead, not stream into a room.
    TooEarly,
    /// `nobody joined within SECS seconds`: the room's wait (`--wait`)
    /// ended; its server may open it again with its key. Holds `SECS
    /// seconds` as written.
    Expired(String),
    /// Any other line a relay sent, as read (already made printable).
    Other(String),
}

impl Refusal {
    /// The refusal of a room that waited `wait` for nobody.
    pub fn expired(wait: Duration) -> Refusal {
        let unit = if wait == Duration::from_secs(1) { "second" } else { "seconds" };
        Refusal::Expired(format!("{} {unit}", seconds_text(wait)))
    }

    /// Reads a refusal line back: the fixed lines by their words; an
    /// unknown one is kept as said.
    fn parse(text: &str) -> Refusal {
        let numbered = |prefix: &str, suffix: &str| {
            text.strip_prefix(prefix)
                .and_then(|t| t.strip_suffix(suffix))
                .and_then(|n| room(n).ok())
        };
        match text {
            "relay is full" => return Refusal::Full,
            "relay is busy" => return Refusal::Busy,
            "too many rooms from your address" => return Refusal::TooManyRooms,
            "too many tries from your address" => return Refusal::TooManyTries,
            "no request within 10 seconds" => return Refusal::Late,
            "not a smolchat-relay/1 request" => return Refusal::NotARequest,
            "request longer than 1024 bytes" => return Refusal::TooLong,
            "sent more than 1024 bytes before being paired" => return Refusal::TooEarly,
            _ => {}
        }
        if let Some(n) = numbered("no room ", "") {
            return Refusal::NoRoom(n);
        }
        if let Some(n) = numbered("room ", " is busy") {
            return Refusal::RoomBusy(n);
        }
        if let Some(after) = text.strip_prefix("nobody joined within ") {
            return Refusal::Expired(after.to_string());
        }
        Refusal::Other(text.to_string())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Full => f.write_str("relay is full"),
            Refusal::Busy => f.write_str("relay is busy"),
            Refusal::NoRoom(n) => write!(f, "no room {n}"),
            Refusal::RoomBusy(n) => write!(f, "room {n} is busy"),
            Refusal::TooManyRooms => f.write_str("too many rooms from your address"),
            Refusal::TooManyTries => f.write_str("too many tries from your address"),
            Refusal::Late => {
                write!(f, "no request within {} seconds", REQUEST_DEADLINE.as_secs())
            }
            Refusal::NotARequest => write!(f, "not a {VERSION} request"),
            Refusal::TooLong => write!(f, "request longer than {MAX_LINE} bytes"),
            Refusal::TooEarly => write!(f, "sent more than {MAX_LINE} bytes before being paired"),
            Refusal::Expired(after) => write!(f, "nobody joined within {after}"),
            Refusal::Other(text) => f.write_str(text),
        }
    }
}

/// What the relay tells a chat side, a line at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `relay`: the answer to `hello`.
    Relay,
    /// `room N`: the room opened; wait in it for the one who joins.
    Room(Room),
    /// `paired`: from the next byte on, the connection carries the other
    /// side's bytes.
    Paired,
    /// `seen ADDR:PORT`: where the relay sees this side's connection (an
    /// IPv6 address in brackets); only after `paired`, only when asked.
    Seen(SocketAddr),
    /// `closed`: the answer to `close KEY`.
    Closed,
    /// A refusal, then the relay closes.
    Refused(Refusal),
}

impl Reply {
    /// The line to send, with its `\n`.
    pub fn line(&self) -> String {
        match self {
            Reply::Relay => "relay\n".to_string(),
            Reply::Room(n) => format!("room {n}\n"),
            Reply::Paired => "paired\n".to_string(),
            Reply::Seen(addr) => format!("seen {}\n", super::net::canonical(*addr)),
            Reply::Closed => "closed\n".to_string(),
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
        match text.as_str() {
            "relay" => return Reply::Relay,
            "paired" => return Reply::Paired,
            "closed" => return Reply::Closed,
            _ => {}
        }
        if let Some(n) = text.strip_prefix("room ").and_then(|n| room(n).ok()) {
            return Reply::Room(n);
        }
        if let Some(addr) = text.strip_prefix("seen ").and_then(|a| a.parse().ok()) {
            return Reply::Seen(addr);
        }
        Reply::Refused(Refusal::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let key: Key = [0xab; 16];
        let hex = "abababababababababababababababab";
        let all = [
            (Request::Hello, "smolchat-relay/1 hello\n".to_string()),
            (Request::Open { key: None, direct: false }, "smolchat-relay/1 open\n".into()),
            (Request::Open { key: None, direct: true }, "smolchat-relay/1 open direct\n".into()),
            (
                Request::Open { key: Some(key), direct: false },
                format!("smolchat-relay/1 open {hex}\n"),
            ),
            (
                Request::Open { key: Some(key), direct: true },
                format!("smolchat-relay/1 open {hex} direct\n"),
            ),
            (Request::Join { room: 7, direct: false }, "smolchat-relay/1 join 7\n".into()),
            (
                Request::Join { room: MAX_ROOM, direct: true },
                "smolchat-relay/1 join 9999999 direct\n".into(),
            ),
            (Request::Close { key }, format!("smolchat-relay/1 close {hex}\n")),
        ];
        for (request, line) in all {
            assert_eq!(request.line(), line);
            let bare = line.strip_suffix('\n').unwrap().as_bytes();
            assert_eq!(Request::parse(bare), Ok(request), "{line:?}");
        }
        let open = Request::Open { key: None, direct: false };
        assert_eq!(Request::parse(b"smolchat-relay/1 open\r"), Ok(open));
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
            b"smolchat-relay/1 join 10000000",
            b"smolchat-relay/1 join 4294967296",
            b"smolchat-relay/1 join 99999999999",
            b"smolchat-relay/1 hello direct",
            b"smolchat-relay/1 close",
            b"smolchat-relay/1 close abababababababababababababababa",
            b"smolchat-relay/1 close ABABABABABABABABABABABABABABABAB",
            b"smolchat-relay/1 close abababababababababababababababab direct",
            b"smolchat-relay/1 open abababababababababababababababag",
            b"smolchat-relay/1 open direct abababababababababababababababab",
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
            (Reply::Relay, "relay\n"),
            (Reply::Room(1), "room 1\n"),
            (Reply::Room(MAX_ROOM), "room 9999999\n"),
            (Reply::Paired, "paired\n"),
            (Reply::Closed, "closed\n"),
            (Reply::Seen("192.0.2.1:2000".parse().unwrap()), "seen 192.0.2.1:2000\n"),
            (Reply::Seen("[2001:db8::1]:9".parse().unwrap()), "seen [2001:db8::1]:9\n"),
            (Reply::Refused(Refusal::Full), "relay is full\n"),
            (Reply::Refused(Refusal::Busy), "relay is busy\n"),
            (Reply::Refused(Refusal::NoRoom(7)), "no room 7\n"),
            (Reply::Refused(Refusal::RoomBusy(4711)), "room 4711 is busy\n"),
            (Reply::Refused(Refusal::TooManyRooms), "too many rooms from your address\n"),
            (Reply::Refused(Refusal::TooManyTries), "too many tries from your address\n"),
            (Reply::Refused(Refusal::Late), "no request within 10 seconds\n"),
            (Reply::Refused(Refusal::NotARequest), "not a smolchat-relay/1 request\n"),
            (Reply::Refused(Refusal::TooLong), "request longer than 1024 bytes\n"),
            (Reply::Refused(Refusal::TooEarly), "sent more than 1024 bytes before being paired\n"),
            (
                Reply::Refused(Refusal::expired(Duration::from_secs(600))),
                "nobody joined within 600 seconds\n",
            ),
            (
                Reply::Refused(Refusal::expired(Duration::from_millis(1500))),
                "nobody joined within 1.5 seconds\n",
            ),
            (
                Reply::Refused(Refusal::expired(Duration::from_secs(1))),
                "nobody joined within 1 second\n",
            ),
            (
                Reply::Refused(Refusal::expired(Duration::from_millis(20))),
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
        for odd in ["room 0", "room 10000000", "room 5 is busy now", "no room 07"] {
            assert_eq!(Reply::parse(odd.as_bytes()), Reply::Refused(Refusal::Other(odd.into())));
        }
        let long = Reply::parse(&[b'x'; 5000]);
        assert_eq!(long.line().len(), MAX_LINE + 1);
    }

    #[test]
    fn seen_writes_an_ipv4_peer_of_a_dual_stack_listener_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:4000".parse().unwrap();
        assert_eq!(Reply::Seen(mapped).line(), "seen 192.0.2.7:4000\n");
        let v6: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
        assert_eq!(Reply::Seen(v6).line(), "seen [2001:db8::7]:4000\n");
    }
}
