//! Meeting through a relay (`--relay HOST:PORT`): the server opens a room and
//! shows its code, the client joins the room the code names, and then the
//! private handshake runs end to end through the relay, as it does directly.
//! The relay's lines are `wire::relay`'s; see `docs/relay.md`.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use futures_lite::FutureExt;

use super::direct::{self, Offer, Sealed};
use super::handshake::{self, Keys};
use super::{code, code_from_environment, Error, GUESSES, HANDSHAKE_TIMEOUT, WRONG_CODE_PAUSE};
use crate::cli::{Relay, DEFAULT_CONNECT_TIMEOUT};
use crate::terminal::keyboard::Keyboard;
use crate::turn::{Role, Screen};
use crate::wire::net;
use crate::wire::relay::{self as protocol, Refusal, Reply, Request, Room};
use crate::wire::within;
use async_net::TcpStream;

/// The relay as a person types it: `HOST:PORT`, an IPv6 host in brackets.
pub fn relay_name(relay: &Relay) -> String {
    net::host_port(&relay.host, relay.port)
}

/// Whether this side asks for the direct path: not with `--relay-only`,
/// and only where sockets can share a port (Unix).
fn goes_direct(relay: &Relay) -> bool {
    cfg!(unix) && !relay.relay_only
}

/// Resolves the relay and connects to it: the one place where a chat side's
/// connection to a relay is made. A side that may go direct connects from a
/// socket whose port its direct attempts can share.
async fn reach(relay: &Relay, timeout: Duration) -> Result<Link, Error> {
    let name = relay_name(relay);
    let addrs = net::resolve(&relay.host, relay.port, timeout).await.map_err(|e| Error {
        what: format!("cannot resolve relay {}", relay.host),
        error: e.error,
    })?;
    let direct = goes_direct(relay);
    let stream = net::connect_from(&relay.host, relay.port, &addrs, timeout, direct)
        .await
        .map_err(|e| Error { what: format!("cannot connect to relay {name}"), error: e.error })?;
    Ok(Link { wire: stream, held: Vec::new(), name, direct, seen: None })
}

/// A connection to a relay, before pairing: its lines are read through
/// `held`, which keeps whatever came after the last line read. After
/// `paired` that is the peer's first bytes, for the handshake.
struct Link {
    wire: TcpStream,
    held: Vec<u8>,
    /// The relay, as typed, for messages.
    name: String,
    /// Whether this side asks for the direct path.
    direct: bool,
    /// Where the relay sees this side, once it said so (after `paired`).
    seen: Option<SocketAddr>,
}

impl Link {
    /// Sends a request, within the time the relay gives for one.
    async fn request(&mut self, request: Request) -> Result<(), Error> {
        let line = request.line();
        let mut writer = self.wire.clone();
        let sent = async { writer.write_all(line.as_bytes()).await.and(writer.flush().await) };
        within(Instant::now() + protocol::REQUEST_DEADLINE, sent)
            .await
            .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into()))
            .map_err(|error| self.failed(error))
    }

    /// The relay's next line; by `deadline` when there is one. The relay
    /// closing first, or a line longer than the protocol allows, is an error
    /// that names the relay.
    async fn reply(&mut self, deadline: Option<Instant>) -> Result<Reply, Error> {
        let read = async {
            loop {
                match protocol::line_end(&self.held) {
                    Ok(Some(end)) => {
                        let line: Vec<u8> = self.held.drain(..=end).collect();
                        return Ok(Reply::parse(&line[..end]));
                    }
                    Ok(None) => {}
                    Err(_) => {
                        let why = format!("sent a line longer than {} bytes", protocol::MAX_LINE);
                        return Err(self.said(why));
                    }
                }
                let mut chunk = [0u8; protocol::MAX_LINE];
                let n = match self.wire.clone().read(&mut chunk).await {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(self.failed(e)),
                };
                if n == 0 {
                    return Err(self.said("closed the connection before pairing".into()));
                }
                self.held.extend_from_slice(&chunk[..n]);
            }
        };
        let late = async {
            match deadline {
                Some(at) => smol::Timer::at(at).await,
                None => future::pending().await,
            };
            None
        };
        match async { Some(read.await) }.or(late).await {
            Some(reply) => reply,
            None => {
                let secs = protocol::REQUEST_DEADLINE.as_secs();
                Err(self.said(format!("no answer within {secs} s")))
            }
        }
    }

    /// After `paired`: the `seen` line a side that asked for the direct
    /// path gets next.
    async fn paired(&mut self) -> Result<(), Error> {
        if self.direct {
            let deadline = Instant::now() + protocol::REQUEST_DEADLINE;
            match self.reply(Some(deadline)).await? {
                Reply::Seen(addr) => self.seen = Some(addr),
                other => return Err(self.unexpected(&other, "seen ADDR:PORT")),
            }
        }
        Ok(())
    }

    /// Where this side offers to be reached directly, if it asked.
    fn offer(&self) -> Option<Offer> {
        let local = self.wire.local_addr().ok()?;
        self.seen.map(|seen| Offer { local, seen })
    }

    /// A connection failure, naming the relay.
    fn failed(&self, error: io::Error) -> Error {
        Error { what: format!("connection to relay {}", self.name), error }
    }

    /// What the relay did, in words: `relay HOST:PORT: WHY`.
    fn said(&self, why: String) -> Error {
        Error { what: format!("relay {}", self.name), error: io::Error::other(why) }
    }

    /// A refusal, in the relay's words: `relay HOST:PORT refused: no room 7`.
    fn refused(&self, refusal: &Refusal) -> Error {
        Error {
            what: format!("relay {} refused", self.name),
            error: io::Error::other(refusal.to_string()),
        }
    }

    /// Any line but the one awaited.
    fn unexpected(&self, reply: &Reply, awaited: &str) -> Error {
        match reply {
            Reply::Refused(refusal) => self.refused(refusal),
            other => {
                let line = other.line();
                self.said(format!("answered '{}' instead of '{awaited}'", line.trim_end()))
            }
        }
    }
}

/// The server's side of meeting: a room at a time, each with its own code.
pub struct Server {
    relay: Relay,
    /// The words of `SMOLCHAT_CODE`, when set; otherwise each room's words
    /// are made new.
    words: Option<String>,
    /// Wrong codes made at `SMOLCHAT_CODE`'s words, which cannot be replaced.
    wrong: u32,
}

impl Server {
    /// Takes `SMOLCHAT_CODE`'s words, when set.
    pub fn new(relay: &Relay) -> Result<Server, Error> {
        let words = code_from_environment("smolchat server")
            .map_err(|e| Error { what: "no code".into(), error: io::Error::other(e.message) })?;
        Ok(Server { relay: relay.clone(), words, wrong: 0 })
    }

    /// Opens rooms at the relay, one after another, until someone joins one
    /// with its code: then the connection through the relay and the keys of
    /// the chat. `None` when the keyboard ends first (no answer could ever
    /// be given). A room nobody joined in time, a wrong code or a failed
    /// handshake ends that room, and the next has a new code.
    pub async fn next<K, S>(
        &mut self,
        keys: &mut Keyboard<K>,
        screen: &mut S,
    ) -> Result<Option<(TcpStream, Keys, Option<Offer>)>, Error>
    where
        K: AsyncRead + Unpin,
        S: Screen,
    {
        loop {
            let (mut link, room) = self.open().await?;
            let code = self.code(room)?;
            screen.status(&format!(
                "private chat through the relay {}; the code is {code}",
                link.name
            ));
            // No deadline of its own: the relay closes a room after its
            // --wait. Meanwhile the person may leave.
            match keys.unless_ended(link.reply(None)).await {
                None => {
                    net::close(&link.wire).await;
                    return Ok(None);
                }
                Some(Ok(Reply::Paired)) => link.paired().await?,
                Some(Ok(Reply::Refused(expired @ Refusal::Expired(_)))) => {
                    screen.status(&format!("{expired}; opening a new room"));
                    net::close(&link.wire).await;
                    continue;
                }
                Some(Ok(other)) => return Err(link.unexpected(&other, "paired")),
                Some(Err(e)) => return Err(e),
            }
            // What was typed before this line is shown is not for this client.
            keys.catch_up()
                .await
                .map_err(|error| Error { what: "cannot read the keyboard".into(), error })?;
            screen.status(&format!("connected through the relay {}", link.name));
            keys.begin_session();
            let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
            let early = std::mem::take(&mut link.held);
            let offer = link.offer();
            let wire = link.wire;
            let outcome =
                handshake::server(&mut wire.clone(), &mut wire.clone(), &code, deadline, early)
                    .await;
            let failure = match outcome {
                Ok(secrets) => {
                    screen.status("the code matched: this chat is private");
                    return Ok(Some((wire, secrets, offer)));
                }
                Err(failure) => failure,
            };
            // The room is spent whatever went wrong: the next has a new code.
            screen.status(&format!("the client: {}", failure.describe(true)));
            net::close(&wire).await;
            keys.end_session("the code did not match");
            if matches!(failure, handshake::Failure::WrongCode) {
                if self.words.is_some() {
                    self.wrong += 1;
                    if self.wrong >= GUESSES {
                        return Err(Error {
                            what: format!("{GUESSES} wrong codes"),
                            error: io::Error::other(
                                "ending, since SMOLCHAT_CODE cannot be replaced",
                            ),
                        });
                    }
                }
                // One guess per second at most, as in a direct private chat.
                smol::Timer::after(WRONG_CODE_PAUSE).await;
            }
        }
    }

    /// Connects to the relay and opens a room: its number.
    async fn open(&self) -> Result<(Link, Room), Error> {
        let mut link = reach(&self.relay, DEFAULT_CONNECT_TIMEOUT).await?;
        link.request(Request::Open { key: None, direct: link.direct }).await?;
        let deadline = Instant::now() + protocol::REQUEST_DEADLINE;
        match link.reply(Some(deadline)).await? {
            Reply::Room(room) => Ok((link, room)),
            other => Err(link.unexpected(&other, "room N")),
        }
    }

    /// The code of a room: its number, then `SMOLCHAT_CODE`'s words or two
    /// new ones.
    fn code(&self, room: Room) -> Result<String, Error> {
        let words = match &self.words {
            Some(words) => words.clone(),
            None => {
                let made = code::generate()
                    .map_err(|error| Error { what: "cannot make a code".into(), error })?;
                // A made code's own number gives way to the room's.
                made.split_once('-').map(|(_, words)| words.to_string()).unwrap_or(made)
            }
        };
        Ok(format!("{room}-{words}"))
    }
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

/// The client's side of meeting: joins the room its code names. The
/// connection through the relay, the peer's first bytes (already read), and
/// the code as the handshake takes it.
pub async fn join(
    relay: &Relay,
    code: &str,
    timeout: Duration,
) -> Result<(TcpStream, Vec<u8>, String, Option<Offer>), Error> {
    let (room, code) = room_of(code)?;
    let mut link = reach(relay, timeout).await?;
    link.request(Request::Join { room, direct: link.direct }).await?;
    let deadline = Instant::now() + protocol::REQUEST_DEADLINE;
    match link.reply(Some(deadline)).await? {
        Reply::Paired => {
            link.paired().await?;
            let offer = link.offer();
            Ok((link.wire, link.held, code, offer))
        }
        other => Err(link.unexpected(&other, "paired")),
    }
}

/// After the handshake through the relay: the two sides agree, sealed,
/// whether to move to a direct link (when both offered one and it was
/// proven), and say which it is. The connection and keys to chat over:
/// the direct link, with the relay's connection closed cleanly, or the
/// relay's. A failure here is the peer's or the relay's.
pub async fn settle<S: Screen>(
    relayed: TcpStream,
    mut secrets: Keys,
    offer: Option<Offer>,
    role: Role,
    screen: &mut S,
) -> io::Result<(TcpStream, Keys)> {
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
}
