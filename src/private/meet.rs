//! Meeting through a relay (`--relay HOST:PORT`): the server holds a room
//! under a key for each code and shows the code, the client checks that it
//! reached a relay, then joins the room the code names, and then the
//! private handshake runs end to end through the relay, as it does
//! directly. The relay's lines are `wire::relay`'s; see `docs/relay.md`.
//!
//! A code stays valid while its server waits: past the relay's `--wait`,
//! and after a joiner who never started the handshake, the server opens the
//! same room again with its key (same number, same code). Only a wrong
//! code spends it: the server closes that room and shows a new code.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_lite::io::AsyncRead;

use super::direct::{self, Offer, Sealed};
use super::handshake::{self, Secrets};
use super::{code, server_code_from_environment, show_code, Error, Guesses};
use crate::terminal::keyboard::Keyboard;
use crate::turn::{Role, Screen};
use crate::wire::error::seconds_text;
use crate::wire::framer::{Frame, Framer};
use crate::wire::net::{self, DEFAULT_CONNECT_TIMEOUT};
use crate::wire::relay::{self as protocol, Address, Key, Refusal, Reply, Request, Room};
use crate::wire::{self, deadline, within};
use async_net::TcpStream;

/// How long a joiner has after `paired` to send the private hello, and
/// after `ready` its SPAKE2 message. The client knew its code before it
/// joined and sends both at once; a joiner that does not is not the
/// friend, and the server takes its room back at once.
pub const JOINER_WAIT: Duration = Duration::from_secs(2);

/// How long a client goes on trying a room that is busy (its server taking
/// it back from someone who joined and never started the handshake).
pub const BUSY_RETRIES: Duration = Duration::from_secs(10);

/// The pause between two tries at a busy room.
const BUSY_PAUSE: Duration = Duration::from_millis(500);

/// The relay as a person types it: `HOST:PORT`, an IPv6 host in brackets.
pub fn relay_name(relay: &Address) -> String {
    net::host_port(&relay.host, relay.port)
}

/// Whether this side asks for the direct path: not with `--relay-only`,
/// and only where sockets can share a port (Unix).
fn goes_direct(relay_only: bool) -> bool {
    cfg!(unix) && !relay_only
}

/// Resolves the relay and connects to it: the one place where a chat side's
/// connection to a relay is made. A connection that may lead to the direct
/// path (`direct`) is made from a socket whose port its direct attempts
/// can share.
async fn reach(relay: &Address, timeout: Duration, direct: bool) -> Result<Link, Error> {
    let name = relay_name(relay);
    let addrs = net::resolve(&relay.host, relay.port, timeout).await.map_err(|e| Error {
        what: format!("cannot resolve relay {}", relay.host),
        error: e.error,
    })?;
    let stream = net::connect_from(&relay.host, relay.port, &addrs, timeout, direct)
        .await
        .map_err(|e| Error { what: format!("cannot connect to relay {name}"), error: e.error })?;
    let lines = Framer::new(stream.clone(), protocol::MAX_LINE - 1);
    Ok(Link { wire: stream, lines, name, direct, seen: None })
}

/// A connection to a relay, before pairing: its lines are read by one
/// framer, which keeps whatever came after the last line read. After
/// `paired` that is the peer's first bytes, for the handshake.
struct Link {
    wire: TcpStream,
    lines: Framer<TcpStream>,
    /// The relay, as typed, for messages.
    name: String,
    /// Whether this side asks for the direct path.
    direct: bool,
    /// Where the relay sees this side, once it said so (after `paired`).
    seen: Option<SocketAddr>,
}

/// How a relay's line failed to come.
enum Silence {
    /// Not by the deadline.
    Late,
    /// The relay closed the connection first.
    Closed,
    /// Anything else, already in words.
    Failed(Error),
}

impl Link {
    /// Sends a request, within the time the relay gives for one.
    async fn request(&mut self, request: Request) -> Result<(), Error> {
        let line = request.line();
        let mut writer = self.wire.clone();
        let by = Instant::now() + deadline(protocol::REQUEST_DEADLINE);
        match within(by, wire::send(&mut writer, line.as_bytes())).await {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => Err(self.failed(error)),
            None => Err(self.failed(io::ErrorKind::TimedOut.into())),
        }
    }

    /// Sends a request and reads the relay's answer, each within the time
    /// the relay gives for a request.
    async fn ask(&mut self, request: Request) -> Result<Reply, Error> {
        self.request(request).await?;
        self.reply(Some(Instant::now() + deadline(protocol::REQUEST_DEADLINE))).await
    }

    /// The relay's next line, by `by` when there is one.
    async fn line(&mut self, by: Option<Instant>) -> Result<Reply, Silence> {
        // None: a year stands for no deadline, so that one wait serves both.
        let by = by.unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 60 * 60));
        match within(by, self.lines.next()).await {
            None => Err(Silence::Late),
            Some(Ok(Frame::Line)) => Ok(Reply::parse(self.lines.line())),
            Some(Ok(Frame::TooLong)) => {
                let why = format!("sent a line longer than {} bytes", protocol::MAX_LINE);
                Err(Silence::Failed(self.said(why)))
            }
            Some(Ok(Frame::Eof)) => Err(Silence::Closed),
            Some(Err(e)) => Err(Silence::Failed(self.failed(e))),
        }
    }

    /// The relay's next line, by `by` when there is one. The relay closing
    /// first, or a line longer than the protocol allows, is an error that
    /// names the relay.
    async fn reply(&mut self, by: Option<Instant>) -> Result<Reply, Error> {
        match self.line(by).await {
            Ok(reply) => Ok(reply),
            Err(Silence::Late) => {
                let secs = seconds_text(protocol::REQUEST_DEADLINE);
                Err(self.said(format!("no answer within {secs} s")))
            }
            Err(Silence::Closed) => Err(self.said("closed the connection before pairing".into())),
            Err(Silence::Failed(e)) => Err(e),
        }
    }

    /// After `paired`: the `seen` line a side that asked for the direct
    /// path gets next.
    async fn paired(&mut self) -> Result<(), Error> {
        if self.direct {
            let by = Instant::now() + deadline(protocol::REQUEST_DEADLINE);
            match self.reply(Some(by)).await? {
                Reply::Seen(addr) => self.seen = Some(addr),
                other => return Err(self.unexpected(&other, "seen ADDR:PORT")),
            }
        }
        Ok(())
    }

    /// The connection through the relay, the peer's first bytes (read with
    /// the relay's lines), and where this side offers to be reached
    /// directly, if it asked.
    fn into_parts(self) -> (TcpStream, Vec<u8>, Option<Offer>) {
        // The relay's own address: the direct path dials only a `seen`
        // address of its kind.
        let offer = match (self.wire.local_addr(), self.wire.peer_addr(), self.seen) {
            (Ok(local), Ok(relay), Some(seen)) => Some(Offer { local, seen, relay }),
            _ => None,
        };
        let (_, held) = self.lines.into_parts();
        (self.wire, held, offer)
    }

    /// A connection failure, naming the relay.
    fn failed(&self, error: io::Error) -> Error {
        Error { what: format!("connection to relay {}", self.name), error }
    }

    /// What the relay did, in words: `relay HOST:PORT: WHY`.
    fn said(&self, why: String) -> Error {
        Error { what: format!("relay {}", self.name), error: io::Error::other(why) }
    }

    /// Any line but the one awaited: a refusal in words a person
    /// understands, or what came instead.
    fn unexpected(&self, reply: &Reply, awaited: &str) -> Error {
        match reply {
            Reply::Refused(refusal) => refused(&self.name, refusal),
            other => {
                let line = other.line();
                self.said(format!("answered '{}' instead of '{awaited}'", line.trim_end()))
            }
        }
    }
}

/// A relay's refusal in words a person understands, naming the relay
/// (`name`, as typed) and what it said.
fn refused(name: &str, refusal: &Refusal) -> Error {
    let (what, why) = match refusal {
        Refusal::Full => (
            format!("relay {name} is full"),
            "it holds as many chats as it may; try again later".to_string(),
        ),
        Refusal::Busy => (format!("relay {name} is busy"), "try again in a moment".into()),
        Refusal::NoRoom(n) => (
            format!("relay {name} has no room {n}: this code is no longer valid"),
            "ask for the new one".into(),
        ),
        Refusal::RoomBusy(n) => (
            format!("relay {name}: room {n} is busy"),
            "someone else is in it; try again later, or ask for a new code".into(),
        ),
        Refusal::TooManyRooms => (
            format!("relay {name}: too many rooms from your address"),
            "end some of the chats this address holds through it, then try again".into(),
        ),
        Refusal::TooManyTries => (
            format!("relay {name}: too many tries from your address"),
            "wait a few minutes, then try again".into(),
        ),
        other => (format!("relay {name} refused"), other.to_string()),
    };
    Error { what, error: io::Error::other(why) }
}

/// Checks that `relay` is a smolchat relay before anything else is asked
/// of the person: `smolchat-relay/1 hello`, answered `relay` within
/// `wait` (a deadline tests may shorten, see `wire::deadline`). Anything
/// else is one line saying what it is not.
pub async fn probe(relay: &Address, timeout: Duration, wait: Duration) -> Result<(), Error> {
    let mut link = reach(relay, timeout, false).await?;
    link.request(Request::Hello).await?;
    let answer = link.line(Some(Instant::now() + deadline(wait))).await;
    let not_a_relay = |why: String| Error {
        what: format!("{} is not a smolchat relay", link.name),
        error: io::Error::other(why),
    };
    match answer {
        Ok(Reply::Relay) => Ok(()),
        // A relay that cannot serve now is still a relay: its words.
        Ok(Reply::Refused(refusal)) if !matches!(refusal, Refusal::Other(_)) => {
            Err(refused(&link.name, &refusal))
        }
        Ok(_) => Err(not_a_relay("it answered the relay hello with something else".into())),
        Err(Silence::Late) => Err(not_a_relay(format!(
            "no answer to the relay hello within {} s (a plain chat server never answers it)",
            seconds_text(wait)
        ))),
        Err(Silence::Closed) => {
            Err(not_a_relay("it closed the connection at the relay hello".into()))
        }
        Err(Silence::Failed(e)) => Err(e),
    }
}

/// A room the server holds for one code: the key it opens it with, and the
/// code's words.
struct Held {
    key: Key,
    words: String,
}

/// A new random key for a room (`wire::relay` writes it as hex).
fn new_key() -> Result<Key, Error> {
    let mut key: Key = [0; 16];
    super::random(&mut key)
        .map_err(|error| Error { what: "cannot make a key for a room".into(), error })?;
    Ok(key)
}

/// The server's side of meeting: a room per code, kept while the code is
/// good, and the wrong codes of the whole run.
pub struct Server {
    relay: Address,
    /// Never ask for the direct path (`--relay-only`).
    relay_only: bool,
    /// The words of `SMOLCHAT_CODE`, when set; otherwise each code's words
    /// are made new.
    words: Option<String>,
    /// Wrong codes over the whole run, and at `SMOLCHAT_CODE`'s words,
    /// which cannot be replaced.
    guesses: Guesses,
    /// The room of the code in force, when it is still good.
    held: Option<Held>,
    /// The code the person was shown last, while it is in force.
    shown: Option<String>,
    /// Whether that code was spent (a wrong code): whatever comes next is
    /// shown, even the same text again.
    spent: bool,
    /// Whether the relay answered the probe.
    probed: bool,
}

impl Server {
    /// Takes `SMOLCHAT_CODE`'s words, when set.
    pub fn new(relay: &Address, relay_only: bool) -> Result<Server, Error> {
        Ok(Server {
            relay: relay.clone(),
            relay_only,
            words: server_code_from_environment()?,
            guesses: Guesses::default(),
            held: None,
            shown: None,
            spent: false,
            probed: false,
        })
    }

    /// Holds a room at the relay until someone joins it with its code: then
    /// the connection through the relay and the keys of the chat. `None`
    /// when the keyboard ends first (no answer could ever be given).
    ///
    /// The code stays the same while nobody uses it: past the relay's
    /// `--wait`, and after a joiner who never started the handshake, the
    /// same room is opened again with its key. A wrong code spends it: the
    /// room is closed and a new code replaces it. After a chat the next
    /// person gets a new code.
    pub async fn next<K, S>(
        &mut self,
        keyboard: &mut Keyboard<K>,
        screen: &mut S,
    ) -> Result<Option<(TcpStream, Secrets, Option<Offer>)>, Error>
    where
        K: AsyncRead + Unpin,
        S: Screen,
    {
        let name = relay_name(&self.relay);
        if !self.probed {
            let wait = protocol::REQUEST_DEADLINE;
            probe(&self.relay, DEFAULT_CONNECT_TIMEOUT, wait).await?;
            self.probed = true;
            screen.status(&format!("private chat through the relay {name}"));
        }
        // A joiner's connection that is given up once the room is taken
        // back: it is closed only after the room was opened again, so that
        // the relay ends the pair and knows whom to blame.
        let mut abandoned: Option<TcpStream> = None;
        loop {
            let held = match self.held.take() {
                Some(held) => held,
                None => {
                    let words = match &self.words {
                        Some(words) => words.clone(),
                        None => super::made(code::generate_words())?,
                    };
                    Held { key: new_key()?, words }
                }
            };
            let (mut link, number) = self.open(held.key).await?;
            drop(abandoned.take());
            let code = format!("{number}-{}", held.words);
            self.announce(&code, &name, screen);
            self.held = Some(held);
            // No deadline of its own: the relay ends a room's wait after
            // its --wait. Meanwhile the person may leave.
            match keyboard.unless_ended(link.reply(None)).await {
                None => {
                    net::close(&link.wire).await;
                    return Ok(None);
                }
                Some(Ok(Reply::Paired)) => link.paired().await?,
                // Renewed at once with the same key: same number, same code.
                Some(Ok(Reply::Refused(Refusal::Expired(_)))) => continue,
                Some(Ok(other)) => return Err(link.unexpected(&other, "paired")),
                Some(Err(e)) => return Err(e),
            }
            let (wire, early, offer) = link.into_parts();
            let mut lines = Framer::resume(wire.clone(), handshake::MAX_LINE, early);
            let by = Instant::now() + deadline(JOINER_WAIT);
            if handshake::greet(&mut lines, &mut wire.clone(), by).await.is_err() {
                screen.status(&taken_back(number));
                abandoned = Some(wire);
                continue;
            }
            // What was typed before this line is shown is not for this client.
            keyboard
                .catch_up()
                .await
                .map_err(|error| Error { what: "cannot read the keyboard".into(), error })?;
            screen.status(&format!("connected through the relay {name}"));
            keyboard.begin_session();
            let by = Instant::now() + deadline(JOINER_WAIT);
            let step = deadline(handshake::STEP);
            let outcome = handshake::server(lines, &mut wire.clone(), &code, by, step).await;
            match outcome {
                Ok(secrets) => {
                    screen.status("the code matched: this chat is private");
                    // Used: the relay lets the room go after the chat, and
                    // the next person gets a new code.
                    self.held = None;
                    self.shown = None;
                    return Ok(Some((wire, secrets, offer)));
                }
                Err(handshake::Failure::WrongCode) => {
                    net::close(&wire).await;
                    keyboard.end_session("the code did not match");
                    self.spend().await;
                    self.guesses.count()?;
                    screen.status(&format!("the client: {}", self.guesses.said()));
                    // Made words are spent at every wrong code (above);
                    // the person's own are only at the last they take.
                    if self.words.is_some() {
                        self.guesses.spent(true)?;
                    }
                    // One guess per second at most, as in a direct private chat.
                    smol::Timer::after(deadline(super::WRONG_CODE_PAUSE)).await;
                }
                // Stalled after the hello, before the code: no guess.
                Err(_) => {
                    keyboard.end_session("the client did not send its code");
                    screen.status(&taken_back(number));
                    abandoned = Some(wire);
                }
            }
        }
    }

    /// Connects to the relay and opens the room of `key`: its number.
    async fn open(&self, key: Key) -> Result<(Link, Room), Error> {
        let direct = goes_direct(self.relay_only);
        let mut link = reach(&self.relay, DEFAULT_CONNECT_TIMEOUT, direct).await?;
        match link.ask(Request::Open { key: Some(key), direct }).await? {
            Reply::Room(room) => Ok((link, room)),
            other => Err(link.unexpected(&other, "room N")),
        }
    }

    /// Shows `code` when it is not the one shown: the first code, or the
    /// one for the next person, with what the friend runs; a code that
    /// takes another's place, as replacing it.
    fn announce<S: Screen>(&mut self, code: &str, name: &str, screen: &mut S) {
        let spent = std::mem::take(&mut self.spent);
        match self.shown.as_deref() {
            Some(shown) if shown == code && !spent => return,
            // The same text again (a relay that gave the number out again):
            // it is shown, but it replaces nothing.
            Some(shown) if shown == code => show_code(screen, code, None),
            Some(old) => show_code(screen, code, Some(old)),
            None => {
                show_code(screen, code, None);
                screen.status(&format!("your friend runs: smolchat client --relay {name}"));
            }
        }
        screen.waiting();
        self.shown = Some(code.to_string());
    }

    /// Spends the code in force after a wrong code: its room is closed at
    /// the relay (a friend holding it is told it is no longer valid), and
    /// the next room has a new code.
    async fn spend(&mut self) {
        self.spent = true;
        let Some(held) = self.held.take() else { return };
        let closing = async {
            let mut link = reach(&self.relay, DEFAULT_CONNECT_TIMEOUT, false).await?;
            link.ask(Request::Close { key: held.key }).await
        };
        // Best effort: a relay that cannot be reached now fails the next
        // open, which says so; one that did not close the room lets it go
        // after its wait, and its new key makes the next code's room.
        let _ = closing.await;
    }
}

/// What the server says when it takes its room back from a joiner who did
/// not start the handshake.
fn taken_back(number: Room) -> String {
    format!(
        "someone joined room {number} and did not start the private handshake; \
         the room is open again with the same code"
    )
}

/// The room a code names (its number before the first `-`), and the code
/// with that number written as the server shows it.
pub fn room_of(code: &str) -> Result<(Room, String), Error> {
    let (number, words) = code.split_once('-').unwrap_or((code, ""));
    match number.parse::<Room>() {
        Ok(room) if room > 0 && number.bytes().all(|b| b.is_ascii_digit()) => {
            let code = if words.is_empty() { room.to_string() } else { format!("{room}-{words}") };
            Ok((room, code))
        }
        _ => Err(Error {
            what: "the code names no room".into(),
            error: io::Error::other(
                "a code for a relayed chat starts with the room's number, as in 7-purple-sausages",
            ),
        }),
    }
}

/// The client's side of meeting: joins the room its code names, trying
/// again for a few seconds while the room is busy (its server taking it
/// back). The connection through the relay, the peer's first bytes
/// (already read), the code as the handshake takes it, and the direct
/// offer.
pub async fn join<S: Screen>(
    relay: &Address,
    relay_only: bool,
    code: &str,
    timeout: Duration,
    screen: &mut S,
) -> Result<(TcpStream, Vec<u8>, String, Option<Offer>), Error> {
    let (room, code) = room_of(code)?;
    let until = Instant::now() + deadline(BUSY_RETRIES);
    let mut told = false;
    loop {
        let direct = goes_direct(relay_only);
        let mut link = reach(relay, timeout, direct).await?;
        match link.ask(Request::Join { room, direct }).await? {
            Reply::Paired => {
                link.paired().await?;
                let (wire, held, offer) = link.into_parts();
                return Ok((wire, held, code, offer));
            }
            Reply::Refused(Refusal::RoomBusy(_)) if Instant::now() < until => {
                if !std::mem::replace(&mut told, true) {
                    screen.status(&format!(
                        "room {room} is busy; trying again for {} seconds",
                        seconds_text(BUSY_RETRIES)
                    ));
                }
                // A pause between tries, not a race: the relay is asked again.
                smol::Timer::after(BUSY_PAUSE).await;
            }
            other => return Err(link.unexpected(&other, "paired")),
        }
    }
}

/// After the handshake through the relay: the two sides agree, sealed,
/// whether to move to a direct link (when both offered one and it was
/// proven), and say which it is. The connection and keys to chat over:
/// the direct link, with the relay's connection closed cleanly, or the
/// relay's. A failure here is the peer's or the relay's.
pub async fn settle<S: Screen>(
    relayed: TcpStream,
    mut secrets: Secrets,
    offer: Option<Offer>,
    role: Role,
    screen: &mut S,
) -> io::Result<(TcpStream, Secrets)> {
    let (mut reader, mut writer) = (relayed.clone(), relayed.clone());
    let sealed = Sealed {
        reader: &mut reader,
        writer: &mut writer,
        seal: &mut secrets.seal,
        open: &mut secrets.open,
        held: &mut secrets.early,
    };
    match direct::negotiate(sealed, offer, &secrets.direct, role).await? {
        Some((link, peer)) => {
            // Both proved and agreed: nothing more goes through the relay.
            net::close(&relayed).await;
            net::ready(&link)?;
            screen.status(&format!("direct connection to {peer}"));
            secrets.early.clear();
            Ok((link, secrets))
        }
        None => {
            screen.status("chatting through the relay");
            Ok((relayed, secrets))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_names_its_room() {
        assert_eq!(room_of("7-purple-sausages").unwrap(), (7, "7-purple-sausages".into()));
        assert_eq!(room_of("007-purple-sausages").unwrap(), (7, "7-purple-sausages".into()));
        assert_eq!(room_of("12").unwrap(), (12, "12".into()));
        for bad in ["purple-sausages", "0-purple", "-7-purple", "+7-purple", "7x-purple", ""] {
            let e = room_of(bad).unwrap_err().to_string();
            assert_eq!(
                e,
                "the code names no room: a code for a relayed chat starts with the room's \
                 number, as in 7-purple-sausages",
                "{bad}"
            );
        }
    }

    #[test]
    fn every_refusal_reads_as_words_that_name_the_relay() {
        let all = [
            (Refusal::Full, "relay r:1 is full: it holds as many chats as it may; try again later"),
            (Refusal::Busy, "relay r:1 is busy: try again in a moment"),
            (
                Refusal::NoRoom(5),
                "relay r:1 has no room 5: this code is no longer valid: ask for the new one",
            ),
            (
                Refusal::RoomBusy(5),
                "relay r:1: room 5 is busy: someone else is in it; try again later, or ask for \
                 a new code",
            ),
            (
                Refusal::TooManyRooms,
                "relay r:1: too many rooms from your address: end some of the chats this \
                 address holds through it, then try again",
            ),
            (
                Refusal::TooManyTries,
                "relay r:1: too many tries from your address: wait a few minutes, then try again",
            ),
            (Refusal::NotARequest, "relay r:1 refused: not a smolchat-relay/1 request"),
            (Refusal::Other("going down".into()), "relay r:1 refused: going down"),
        ];
        for (refusal, want) in all {
            assert_eq!(refused("r:1", &refusal).to_string(), want);
        }
    }
}
