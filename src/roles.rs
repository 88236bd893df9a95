//! The server and client roles: a connection's life around the turn loop,
//! with the real socket, keyboard and screen.

use std::time::{Duration, Instant};

use futures_lite::io::AsyncRead;

use crate::cli::{ClientConfig, ServerConfig};
#[cfg(feature = "private")]
use crate::private::direct::Offer;
use crate::terminal::keyboard::Keyboard;
use crate::turn::{Ending, Failure, PeerStream, Role, Screen, Session, Settings};
use crate::wire::error::{self, Error};
use crate::wire::framer::Framer;
use crate::wire::net;
use async_net::TcpStream;

/// How long the server waits before it accepts again after a failed accept
/// (out of file descriptors, say), so that it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long the same accept error stays unsaid after it was said once.
const ACCEPT_ERROR_QUIET: Duration = Duration::from_secs(5);

/// Serves one client at a time, in the order they arrive, until the
/// keyboard or the screen is gone. Only a local failure is an `Err`.
pub async fn serve<K, S>(
    config: &ServerConfig,
    keys: &mut Keyboard<K>,
    screen: &mut S,
) -> Result<(), Error>
where
    K: AsyncRead + Unpin,
    S: Screen,
{
    #[cfg(feature = "private")]
    if let Some(relay) = &config.relay {
        return serve_relayed(config, relay, keys, screen).await;
    }
    // Bind and say where, with the real port.
    let listener = net::bind(config.bind, config.port).await?;
    let local =
        listener.local_addr().map_err(|error| Error { what: "cannot listen".into(), error })?;
    screen.status(&format!("listening on {local}"));
    let settings = Settings { idle_timeout: config.idle_timeout };
    #[cfg(feature = "private")]
    let mut private = match config.private {
        true => Some(crate::private::Server::new(screen)?),
        false => None,
    };
    // The accept error said last, and when: a failure that repeats at every
    // attempt is said once, not ten times a second.
    let mut said: Option<(String, Instant)> = None;
    loop {
        // Take the next client; the others wait in the listen queue. When
        // the keyboard ends first, or the user leaves at a terminal, no
        // answer can ever be given: stop.
        let accepted = keys.unless_ended(net::accept(&listener)).await;
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
                if keys.unless_ended(smol::Timer::after(ACCEPT_BACKOFF)).await.is_none() {
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
        keys.catch_up().await.map_err(|e| local_failure(Failure::Keyboard(e)))?;
        screen.status(&format!("{addr} connected"));
        keys.begin_session();
        #[cfg(feature = "private")]
        let outcome = match &mut private {
            Some(private) => {
                let Some(secrets) = private.admit(&stream, addr, screen).await? else {
                    keys.end_session("the code did not match");
                    continue;
                };
                screen.status(&format!("{addr}: the code matched: this chat is private"));
                let max_line = config.max_line;
                crate::private::talk(
                    &stream,
                    secrets,
                    Role::Server,
                    settings,
                    max_line,
                    keys,
                    screen,
                )
                .await
            }
            None => talk(&stream, Role::Server, settings, config.max_line, keys, screen).await,
        };
        #[cfg(not(feature = "private"))]
        let outcome = talk(&stream, Role::Server, settings, config.max_line, keys, screen).await;
        if !served(outcome, &addr.to_string(), keys, screen)? {
            return Ok(());
        }
    }
}

/// Meets one client after another through a relay, each by a new code,
/// until the keyboard or the screen is gone.
#[cfg(feature = "private")]
async fn serve_relayed<K, S>(
    config: &ServerConfig,
    relay: &crate::cli::Relay,
    keys: &mut Keyboard<K>,
    screen: &mut S,
) -> Result<(), Error>
where
    K: AsyncRead + Unpin,
    S: Screen,
{
    use crate::private::meet;
    let settings = Settings { idle_timeout: config.idle_timeout };
    let mut meeting = meet::Server::new(relay)?;
    while let Some((wire, secrets, offer)) = meeting.next(keys, screen).await? {
        let max_line = config.max_line;
        let met = (wire, secrets, offer);
        let outcome = talk_relayed(met, Role::Server, settings, max_line, keys, screen).await;
        if !served(outcome, "the client", keys, screen)? {
            break;
        }
    }
    Ok(())
}

/// Reports how a served chat with `peer` ended: whether to serve the next
/// (unless no answer can be given any more); then says what was typed for
/// this client and never sent.
fn served<K, S: Screen>(
    outcome: Result<Ending, Failure>,
    peer: &str,
    keys: &mut Keyboard<K>,
    screen: &mut S,
) -> Result<bool, Error> {
    let why = unsent_because(&outcome);
    let go_on = match outcome {
        Ok(Ending::PeerLeft) => {
            screen.status(&format!("{peer} left"));
            Ok(true)
        }
        // The program ends at once, as before it caught the signal.
        Ok(Ending::Signal(_)) => Ok(false),
        Ok(ending) => {
            screen.status(&format!("closed the connection to {peer}"));
            Ok(ending == Ending::Exit)
        }
        Err(Failure::Peer(e)) => {
            screen.status(&format!("error: connection with {peer}: {}", error::describe(&e)));
            Ok(true)
        }
        Err(failure) => Err(local_failure(failure)),
    };
    keys.end_session(why);
    go_on
}

/// Connects and chats until the session ends; a network failure is an `Err`.
pub async fn client<K, S>(
    config: &ClientConfig,
    keys: &mut Keyboard<K>,
    screen: &mut S,
) -> Result<(), Error>
where
    K: AsyncRead + Unpin,
    S: Screen,
{
    // The code is asked for first, so that typing it spends no handshake time.
    #[cfg(feature = "private")]
    let code = match config.private {
        true => Some(crate::private::client_code(keys).await?),
        false => None,
    };
    #[cfg(feature = "private")]
    if let (Some(relay), Some(code)) = (&config.relay, &code) {
        return client_relayed(config, relay, code, keys, screen).await;
    }
    // Resolve, then try each address in turn; a person at a terminal may
    // give up meanwhile (EXIT, Ctrl-D).
    let (host, port) = (config.host.as_str(), config.port);
    let connecting = async {
        let addrs = net::resolve(host, port, config.connect_timeout).await?;
        let stream = net::connect(host, port, &addrs, config.connect_timeout).await?;
        Ok::<_, Error>((stream, addrs[0]))
    };
    let (wire, first) = match keys.unless_left(connecting).await {
        Some(connected) => connected?,
        None => return Ok(()),
    };
    let peer = wire.peer_addr().unwrap_or(first);
    // What was typed before this line is shown is not for this server.
    keys.catch_up().await.map_err(|e| local_failure(Failure::Keyboard(e)))?;
    screen.status(&format!("connected to {peer}"));
    keys.begin_session();
    let what = || format!("connection to {peer}");
    let settings = Settings { idle_timeout: config.idle_timeout };

    #[cfg(feature = "private")]
    let outcome = match code {
        Some(code) => {
            let secrets = crate::private::connect(&wire, &code, &what(), Vec::new()).await?;
            screen.status("the code matched: this chat is private");
            crate::private::talk(
                &wire,
                secrets,
                Role::Client,
                settings,
                config.max_line,
                keys,
                screen,
            )
            .await
        }
        None => talk(&wire, Role::Client, settings, config.max_line, keys, screen).await,
    };
    #[cfg(not(feature = "private"))]
    let outcome = talk(&wire, Role::Client, settings, config.max_line, keys, screen).await;
    ended(outcome, &peer.to_string(), what(), keys, screen)
}

/// Joins the server's room at a relay, by its code, and chats.
#[cfg(feature = "private")]
async fn client_relayed<K, S>(
    config: &ClientConfig,
    relay: &crate::cli::Relay,
    code: &str,
    keys: &mut Keyboard<K>,
    screen: &mut S,
) -> Result<(), Error>
where
    K: AsyncRead + Unpin,
    S: Screen,
{
    use crate::private::meet;
    let settings = Settings { idle_timeout: config.idle_timeout };
    // A person at a terminal may give up meanwhile (EXIT, Ctrl-D).
    let joining = meet::join(relay, code, config.connect_timeout);
    let (wire, early, code, offer) = match keys.unless_left(joining).await {
        Some(joined) => joined?,
        None => return Ok(()),
    };
    let name = meet::relay_name(relay);
    keys.catch_up().await.map_err(|e| local_failure(Failure::Keyboard(e)))?;
    screen.status(&format!("connected through the relay {name}"));
    keys.begin_session();
    let what = format!("connection to the server through the relay {name}");
    let secrets = crate::private::connect(&wire, &code, &what, early).await?;
    screen.status("the code matched: this chat is private");
    let max_line = config.max_line;
    let met = (wire, secrets, offer);
    let outcome = talk_relayed(met, Role::Client, settings, max_line, keys, screen).await;
    ended(outcome, "the server", what, keys, screen)
}

/// A chat met through a relay: settled on a direct link or the relay's,
/// then one private session over it.
#[cfg(feature = "private")]
async fn talk_relayed<K, S>(
    (wire, secrets, offer): (TcpStream, crate::private::handshake::Keys, Option<Offer>),
    role: Role,
    settings: Settings,
    max_line: usize,
    keys: &mut Keyboard<K>,
    screen: &mut S,
) -> Result<Ending, Failure>
where
    K: AsyncRead + Unpin,
    S: Screen,
{
    match crate::private::meet::settle(wire, secrets, offer, role, screen).await {
        Ok((wire, secrets)) => {
            crate::private::talk(&wire, secrets, role, settings, max_line, keys, screen).await
        }
        Err(e) => Err(Failure::Peer(e)),
    }
}

/// How a client's chat with `peer` ended, as an outcome of the program;
/// `what` names the connection in an error.
fn ended<K, S: Screen>(
    outcome: Result<Ending, Failure>,
    peer: &str,
    what: String,
    keys: &mut Keyboard<K>,
    screen: &mut S,
) -> Result<(), Error> {
    if let Ok(Ending::PeerLeft) = outcome {
        screen.status(&format!("{peer} left"));
    }
    keys.end_session(unsent_because(&outcome));
    match outcome {
        Ok(_) => Ok(()),
        Err(Failure::Peer(error)) => Err(Error { what, error }),
        Err(failure) => Err(local_failure(failure)),
    }
}

/// One session over a connected socket, closed cleanly whatever its ending.
pub async fn talk<K, S>(
    wire: &TcpStream,
    role: Role,
    settings: Settings,
    max_line: usize,
    keys: &mut Keyboard<K>,
    screen: &mut S,
) -> Result<Ending, Failure>
where
    K: AsyncRead + Unpin,
    S: Screen,
{
    // Behind `dyn`, as in private chats: one copy of the turn loop
    // (docs/footprint.md).
    let mut peer = Framer::new(Box::new(wire.clone()) as Box<dyn PeerStream>, max_line);
    let to_peer = &mut wire.clone();
    let outcome =
        Session { peer: &mut peer, to_peer, keyboard: keys }.run(role, settings, screen).await;
    net::close(wire).await;
    outcome
}

/// Why lines still waiting when a session ended were not sent.
fn unsent_because(outcome: &Result<Ending, Failure>) -> &'static str {
    match outcome {
        Ok(Ending::PeerLeft) => "the peer left",
        Ok(_) => "the connection was closed",
        Err(_) => "the connection failed",
    }
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
