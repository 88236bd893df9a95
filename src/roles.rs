//! The server and client roles: a connection's life around the turn loop,
//! with the real socket, keyboard and screen.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use async_net::TcpStream;
#[cfg(feature = "private")]
use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncWrite};

use crate::allow::Admission;
#[cfg(feature = "private")]
use crate::private::{direct::Offer, handshake::Secrets};
use crate::terminal::keyboard::Keyboard;
use crate::turn::{Ending, Failure, PeerStream, Role, Screen, Session, Settings};
use crate::wire::error::{self, Error};
use crate::wire::framer::Framer;
use crate::wire::net;
use crate::wire::relay::Address;

/// Settings of `smolchat server`.
#[derive(Debug, PartialEq)]
pub struct ServerConfig {
    /// Local address.
    pub bind: IpAddr,
    /// Local port; 0 lets the system pick one.
    pub port: u16,
    /// Drop a silent client after this long on its turn.
    pub idle_timeout: Option<Duration>,
    /// Longest message.
    pub max_line: usize,
    /// A private chat (`--private`, or implied by a relay).
    pub private: bool,
    /// Who may join (`--allow`, `--deny`).
    pub admission: Admission,
    /// Meet the client through this relay instead of listening.
    pub relay: Option<Address>,
    /// With a relay: never try a direct connection (`--relay-only`).
    pub relay_only: bool,
}

/// Settings of `smolchat client`.
#[derive(Debug, PartialEq)]
pub struct ClientConfig {
    /// Server name or address, as typed; the relay's when relayed.
    pub host: String,
    /// Server port; the relay's when relayed.
    pub port: u16,
    /// Time allowed for resolving and for each address.
    pub connect_timeout: Duration,
    /// Drop a silent server after this long on its turn.
    pub idle_timeout: Option<Duration>,
    /// Longest message.
    pub max_line: usize,
    /// A private chat (`--private`, or implied by a relay).
    pub private: bool,
    /// Meet the server through this relay (`host` and `port` are its).
    pub relay: Option<Address>,
    /// With a relay: never try a direct connection (`--relay-only`).
    pub relay_only: bool,
}

/// How long the server waits before it accepts again after a failed accept
/// (out of file descriptors, say), so that it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long the same accept error stays unsaid after it was said once.
const ACCEPT_ERROR_QUIET: Duration = Duration::from_secs(5);

/// A private chat's keys; a build without private chats has none.
#[cfg(not(feature = "private"))]
enum Secrets {}

/// Serves one client at a time, in the order they arrive, until the
/// keyboard or the screen is gone. Only a local failure is an `Err`.
pub async fn serve(
    config: &ServerConfig,
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<(), Error> {
    #[cfg(feature = "private")]
    if let Some(relay) = &config.relay {
        return boxed(serve_relayed(config, relay, keyboard, screen)).await;
    }
    // Bind and say where, with the real port.
    let listener = net::bind(config.bind, config.port).await?;
    let local =
        listener.local_addr().map_err(|error| Error { what: "cannot listen".into(), error })?;
    screen.status(&format!("listening on {local}"));
    let settings = Settings { idle_timeout: config.idle_timeout };
    #[cfg(feature = "private")]
    let mut private = match config.private {
        true => Some(crate::private::Server::new(screen, local)?),
        false => None,
    };
    // The accept error said last, and when: a failure that repeats at every
    // attempt is said once, not ten times a second.
    let mut said: Option<(String, Instant)> = None;
    // Said once the server waits again after a client, and at the start.
    let mut waiting = true;
    loop {
        if std::mem::take(&mut waiting) {
            screen.waiting();
        }
        // Take the next client; the others wait in the listen queue. When
        // the keyboard ends first, or the user leaves at a terminal, no
        // answer can ever be given: stop.
        let accepted = keyboard.unless_ended(net::accept(&listener)).await;
        let (stream, addr) = match accepted {
            None => return Ok(()),
            Some(Ok(client)) => client,
            Some(Err(e)) => {
                let text = format!("error: cannot accept a connection: {}", error::describe(&e));
                if !said
                    .as_ref()
                    .is_some_and(|(last, at)| *last == text && at.elapsed() < ACCEPT_ERROR_QUIET)
                {
                    screen.status(&text);
                    said = Some((text, Instant::now()));
                }
                // The keyboard's end is still watched while the server waits.
                if keyboard.unless_ended(smol::Timer::after(ACCEPT_BACKOFF)).await.is_none() {
                    return Ok(());
                }
                continue;
            }
        };
        // Who may join is known from the address alone: not a byte is read
        // or written before a refused client is closed.
        if !config.admission.admits(addr.ip()) {
            drop(stream);
            screen.status(&format!("{addr} refused: not allowed to join (--allow/--deny)"));
            continue;
        }
        // What was typed before this line is shown is not for this client.
        keyboard.catch_up().await.map_err(|e| local_failure(Failure::Keyboard(e)))?;
        screen.status(&format!("{addr} connected"));
        keyboard.begin_session();
        waiting = true;
        #[cfg(feature = "private")]
        let outcome = match &mut private {
            Some(private) => {
                // Meanwhile others are told that this server is busy.
                let work = chat_privately(&stream, addr, private, config, keyboard, screen);
                match boxed(future::or(work, turn_away_all(&listener, &config.admission))).await? {
                    Private::Chat(outcome) => outcome,
                    Private::Ended => return Ok(()),
                    Private::Refused => {
                        keyboard.end_session("the client was turned away");
                        continue;
                    }
                    Private::Guessed => {
                        keyboard.end_session("the code did not match");
                        // One guess per second at most, whoever asks: the
                        // next waits in the listen queue meanwhile.
                        let pause = crate::private::WRONG_CODE_PAUSE;
                        let pause = smol::Timer::after(crate::wire::deadline(pause));
                        if keyboard.unless_ended(pause).await.is_none() {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            None => talk(&stream, Role::Server, settings, config.max_line, keyboard, screen).await,
        };
        #[cfg(not(feature = "private"))]
        let outcome =
            talk(&stream, Role::Server, settings, config.max_line, keyboard, screen).await;
        if !goes_on(ended(outcome, &addr.to_string(), true, keyboard, screen)?) {
            return Ok(());
        }
    }
}

/// What a connection to a private server came to.
#[cfg(feature = "private")]
enum Private {
    /// A chat, and how it ended.
    Chat(Result<Ending, Failure>),
    /// Turned away, not a guess.
    Refused,
    /// A wrong code.
    Guessed,
    /// The keyboard ended first: no answer can ever be given.
    Ended,
}

/// The private handshake with a new client and, when its code matched,
/// the chat; others are turned away (`busy`) until it ends, and then the
/// server says how it ended, so that whoever comes after that line is
/// served.
#[cfg(feature = "private")]
async fn chat_privately(
    wire: &TcpStream,
    addr: std::net::SocketAddr,
    private: &mut crate::private::Server,
    config: &ServerConfig,
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<Private, Error> {
    use crate::private::Admission;
    let secrets = match keyboard.unless_ended(private.handshake(wire)).await {
        None => return Ok(Private::Ended),
        Some(Ok(secrets)) => secrets,
        Some(Err(failure)) => {
            return match private.failed(failure, addr, screen)? {
                Admission::Refused => Ok(Private::Refused),
                Admission::Guessed => Ok(Private::Guessed),
            };
        }
    };
    screen.status(&format!("{addr}: the code matched: this chat is private"));
    let (role, max_line) = (Role::Server, config.max_line);
    let settings = Settings { idle_timeout: config.idle_timeout };
    let outcome = chat(wire, Some(secrets), role, settings, max_line, keyboard, screen).await;
    Ok(Private::Chat(outcome))
}

/// Turns away every connection: each is told (`busy` to a private client's
/// hello, the plain client's line to anything else) and closed. Four at
/// once, so that one that sends nothing does not hold up the rest, and no
/// more, so that a flood waits in the listen queue instead of taking
/// descriptors. Never returns.
#[cfg(feature = "private")]
async fn turn_away_all<T>(listener: &async_net::TcpListener, admission: &Admission) -> T {
    use futures_lite::future::or;
    let one = || turn_away_each(listener, admission);
    or(or(one(), one()), or(one(), one())).await
}

/// One of [`turn_away_all`]'s four: a connection at a time, for ever.
#[cfg(feature = "private")]
async fn turn_away_each<T>(listener: &async_net::TcpListener, admission: &Admission) -> T {
    loop {
        match net::accept(listener).await {
            Ok((stream, addr)) => {
                // Who may join is known from the address alone, as ever.
                if admission.admits(addr.ip()) {
                    crate::private::turn_away(&stream).await;
                }
            }
            // Out of descriptors, say: the server's own accept says so once
            // the chat is over; until then, try again in a while.
            Err(_) => {
                smol::Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Meets one client after another through a relay, each by a new code,
/// until the keyboard or the screen is gone.
#[cfg(feature = "private")]
async fn serve_relayed(
    config: &ServerConfig,
    relay: &Address,
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<(), Error> {
    use crate::private::meet;
    let settings = Settings { idle_timeout: config.idle_timeout };
    let mut meeting = meet::Server::new(relay, config.relay_only)?;
    while let Some((wire, secrets, offer)) = meeting.next(keyboard, screen).await? {
        let max_line = config.max_line;
        let met = (wire, secrets, offer);
        let outcome = talk_relayed(met, Role::Server, settings, max_line, keyboard, screen).await;
        if !goes_on(ended(outcome, "the client", true, keyboard, screen)?) {
            break;
        }
    }
    Ok(())
}

/// Whether the server serves the next client after a chat that ended so:
/// not once no answer can be given any more.
fn goes_on(ended: Result<Ending, io::Error>) -> bool {
    matches!(ended, Ok(Ending::PeerLeft | Ending::Exit) | Err(_))
}

/// Connects and chats until the session ends; a network failure is an `Err`.
pub async fn client(
    config: &ClientConfig,
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<(), Error> {
    // A client has only the connection it is making: a line typed from now
    // on, while it connects or the code is checked, is its first line.
    keyboard.begin_session();
    let outcome = connect(config, keyboard, screen).await;
    // What is left was typed for a chat that never began: said, not lost.
    keyboard.end_session("the chat never began");
    outcome
}

/// The client's connection, of whichever kind, and its chat.
async fn connect(
    config: &ClientConfig,
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<(), Error> {
    #[cfg(feature = "private")]
    if let Some(relay) = &config.relay {
        return boxed(client_relayed(config, relay, keyboard, screen)).await;
    }
    // Resolve, then try each address in turn; a person at a terminal may
    // give up meanwhile (EXIT, Ctrl-D).
    let (host, port) = (config.host.as_str(), config.port);
    let connecting = async {
        let addrs = net::resolve(host, port, config.connect_timeout).await?;
        let stream = net::connect(host, port, &addrs, config.connect_timeout).await?;
        Ok::<_, Error>((stream, addrs[0]))
    };
    let Some(connected) = keyboard.unless_left(connecting).await else { return Ok(()) };
    let (wire, first) = connected?;
    let peer = wire.peer_addr().unwrap_or(first);
    let name = peer.to_string();
    let secrets = match config.private {
        #[cfg(feature = "private")]
        true => match boxed(handshake_client(config, &wire, &name, keyboard, screen)).await? {
            Some(secrets) => Some(secrets),
            None => return Ok(()),
        },
        _ => {
            screen.status(&format!("connected to {name}"));
            None
        }
    };
    let settings = Settings { idle_timeout: config.idle_timeout };
    let outcome =
        chat(&wire, secrets, Role::Client, settings, config.max_line, keyboard, screen).await;
    let ended = ended(outcome, &name, false, keyboard, screen)?;
    ended.map(drop).map_err(|error| Error { what: format!("connection to {name}"), error })
}

/// The private handshake with the server `name`: the hello first, so that
/// a wrong kind of server is said before anything is typed; then the code,
/// and the rest. `None` when the person left meanwhile.
#[cfg(feature = "private")]
async fn handshake_client(
    config: &ClientConfig,
    wire: &TcpStream,
    name: &str,
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<Option<Secrets>, Error> {
    let greeting = crate::private::hello(wire, name, config.connect_timeout);
    let Some(lines) = keyboard.unless_left(greeting).await else { return Ok(None) };
    let lines = lines?;
    screen.status(&format!("connected to {name}"));
    // The server waits a minute for the code: asked only now.
    let code = crate::private::client_code(keyboard, screen).await?;
    let secrets = crate::private::handshake_client(lines, wire, &code, name, false).await?;
    screen.status("the code matched: this chat is private");
    Ok(Some(secrets))
}

/// Joins the server's room at a relay, by its code, and chats: the relay is
/// asked whether it is one before the code is.
#[cfg(feature = "private")]
async fn client_relayed(
    config: &ClientConfig,
    relay: &Address,
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<(), Error> {
    use crate::private::meet;
    let settings = Settings { idle_timeout: config.idle_timeout };
    let timeout = config.connect_timeout;
    // A person at a terminal may give up meanwhile (EXIT, Ctrl-D).
    let probing = meet::probe(relay, timeout, timeout);
    let Some(probed) = keyboard.unless_left(probing).await else { return Ok(()) };
    probed?;
    let code = crate::private::client_code(keyboard, screen).await?;
    let joining = meet::join(relay, config.relay_only, &code, timeout, screen);
    let Some(joined) = keyboard.unless_left(joining).await else { return Ok(()) };
    let (wire, early, code, offer) = joined?;
    let name = meet::relay_name(relay);
    screen.status(&format!("connected through the relay {name}"));
    let what = format!("connection to the server through the relay {name}");
    let lines = Framer::resume(wire.clone(), crate::private::handshake::MAX_LINE, early);
    let peer = format!("the server through the relay {name}");
    let secrets = crate::private::handshake_client(lines, &wire, &code, &peer, true).await?;
    screen.status("the code matched: this chat is private");
    let max_line = config.max_line;
    let met = (wire, secrets, offer);
    let outcome = talk_relayed(met, Role::Client, settings, max_line, keyboard, screen).await;
    ended(outcome, "the server", false, keyboard, screen)?
        .map(drop)
        .map_err(|error| Error { what, error })
}

/// A chat met through a relay: settled on a direct link or the relay's,
/// then one private session over it.
#[cfg(feature = "private")]
async fn talk_relayed(
    (wire, secrets, offer): (TcpStream, crate::private::handshake::Secrets, Option<Offer>),
    role: Role,
    settings: Settings,
    max_line: usize,
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<Ending, Failure> {
    match crate::private::meet::settle(wire, secrets, offer, role, screen).await {
        Ok((wire, secrets)) => {
            chat(&wire, Some(secrets), role, settings, max_line, keyboard, screen).await
        }
        Err(e) => Err(Failure::Peer(e)),
    }
}

/// Says how a chat with `peer` ended: that the peer left, and at a server
/// also that it closed the connection or that it failed; then what was
/// typed for the chat and never sent. The ending, or the peer's failure,
/// for the caller to weigh; `Err` when the keyboard or the screen failed,
/// which ends the program.
fn ended(
    outcome: Result<Ending, Failure>,
    peer: &str,
    server: bool,
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<Result<Ending, io::Error>, Error> {
    match &outcome {
        Ok(Ending::PeerLeft) => screen.status(&format!("{peer} left")),
        // The program ends at once, as before it caught the signal.
        Ok(Ending::Signal(_)) => {}
        Ok(_) if server => screen.status(&format!("closed the connection to {peer}")),
        Err(Failure::Peer(e)) if server => {
            screen.status(&format!("error: connection with {peer}: {}", error::describe(e)))
        }
        _ => {}
    }
    keyboard.end_session(match outcome {
        Ok(Ending::PeerLeft) => "the peer left",
        Ok(_) => "the connection was closed",
        Err(_) => "the connection failed",
    });
    match outcome {
        Ok(ending) => Ok(Ok(ending)),
        Err(Failure::Peer(e)) => Ok(Err(e)),
        Err(failure) => Err(local_failure(failure)),
    }
}

/// One plain session over a connected socket, closed cleanly whatever its
/// ending.
pub async fn talk(
    wire: &TcpStream,
    role: Role,
    settings: Settings,
    max_line: usize,
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<Ending, Failure> {
    chat(wire, None, role, settings, max_line, keyboard, screen).await
}

/// One session over a connected socket, plain or sealed with `secrets`,
/// closed cleanly whatever its ending: a private one that ends without a
/// failure (also by Ctrl-C or a signal) with its close record, so that the
/// peer reads that this side left.
async fn chat(
    wire: &TcpStream,
    secrets: Option<Secrets>,
    role: Role,
    settings: Settings,
    max_line: usize,
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<Ending, Failure> {
    // The peer's stream behind `dyn`: one copy of the turn loop for both
    // (docs/footprint.md).
    let mut plain = wire.clone();
    #[cfg(feature = "private")]
    let mut sealed = None;
    let (reader, to_peer): (Box<dyn PeerStream>, &mut (dyn AsyncWrite + Unpin)) = match secrets {
        None => (Box::new(wire.clone()), &mut plain),
        #[cfg(feature = "private")]
        Some(secrets) => {
            use crate::private::record::{RecordReader, RecordWriter};
            let reader = RecordReader::new(wire.clone(), secrets.open, max_line, &secrets.early);
            (Box::new(reader), sealed.insert(RecordWriter::new(wire.clone(), secrets.seal)))
        }
        #[cfg(not(feature = "private"))]
        Some(never) => match never {},
    };
    let mut peer = Framer::new(reader, max_line);
    let outcome = Session { peer: &mut peer, to_peer, keyboard }.run(role, settings, screen).await;
    #[cfg(feature = "private")]
    if let (Ok(_), Some(sealed)) = (&outcome, &mut sealed) {
        // The peer may be gone or not reading: the close is best effort.
        crate::wire::within(Instant::now() + net::LINGER, sealed.close_record()).await;
    }
    net::close(wire).await;
    outcome
}

/// A rarely taken path's future on the heap, so that the common path's
/// state, and the stack frames that hold it, stay small.
#[cfg(feature = "private")]
fn boxed<'a, T>(
    work: impl std::future::Future<Output = T> + 'a,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>> {
    Box::pin(work)
}

/// A failure of the keyboard or the screen, which ends the program.
fn local_failure(failure: Failure) -> Error {
    let (what, error) = match failure {
        Failure::Keyboard(e) => ("cannot read the keyboard", e),
        Failure::Screen(e) => ("cannot write to stdout", e),
        Failure::Peer(e) => ("connection failed", e),
    };
    Error { what: what.into(), error }
}
