//! Private chats (`--private`): where the code comes from, the handshake on
//! a new connection, the wrong codes a server accepts in its run, and a
//! session over sealed records. See `docs/private.md` for the protocol.

pub mod code;
pub mod direct;
pub mod handshake;
pub mod meet;
pub mod record;

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_lite::io::AsyncRead;

use crate::terminal::keyboard::Keyboard;
use crate::turn::Screen;
use crate::wire::error::Error;
use crate::wire::framer::Framer;
use crate::wire::net;
use crate::wire::{deadline, error::seconds_text};
use async_net::TcpStream;
use handshake::{Awaited, Secrets};

/// Where either side may find the code instead of making or asking for one.
pub const CODE_VARIABLE: &str = "SMOLCHAT_CODE";

/// How long the server waits after a wrong code before it accepts again.
pub const WRONG_CODE_PAUSE: Duration = Duration::from_secs(1);

/// Wrong codes after which a direct server's code is replaced, and after
/// which a code from `SMOLCHAT_CODE` (which cannot be replaced) ends the
/// server.
pub const GUESSES: u32 = 3;

/// Wrong codes a server accepts over its whole run, whatever its codes: the
/// last one ends it. With codes of 24 secret bits (through a relay, where
/// the number is public) this keeps the chance that a guesser ever gets in
/// at 10 / 2^24, below one in a million (`docs/private.md`).
pub const WRONG_CODES: u32 = 10;

/// The code from `SMOLCHAT_CODE`: `Ok(None)` when it is not set; what is
/// wrong with it when it holds nothing usable (a usage error at the start).
fn code_from_environment() -> Result<Option<String>, &'static str> {
    let Some(value) = std::env::var_os(CODE_VARIABLE) else { return Ok(None) };
    let value = value.into_string().map_err(|_| "SMOLCHAT_CODE is not valid UTF-8")?;
    code::normalise(&value).map(Some).ok_or("SMOLCHAT_CODE holds no words")
}

/// A code from `SMOLCHAT_CODE` that cannot be used, met after the start.
fn no_code(why: &str) -> Error {
    Error { what: "no code".into(), error: io::Error::other(why) }
}

/// The server's `SMOLCHAT_CODE`, when set.
fn server_code_from_environment() -> Result<Option<String>, Error> {
    code_from_environment().map_err(no_code)
}

/// Checks before anything starts that a private side will have a code: a
/// client without `SMOLCHAT_CODE` needs a terminal to ask at. The error is
/// a usage error's message.
pub fn check_code_source(server: bool) -> Result<(), &'static str> {
    if code_from_environment()?.is_none() && !server && !io::stdin().is_terminal() {
        return Err(
            "--private needs the code: set SMOLCHAT_CODE, or run at a terminal to be asked",
        );
    }
    Ok(())
}

/// The client's code: `SMOLCHAT_CODE`, used as given, or asked at the
/// terminal. A typed code that cannot be one smolchat made (a word not on
/// its list, say) is said and asked again before it costs a guess; typed
/// the same twice, it is used as it is (a server's `SMOLCHAT_CODE` may be
/// any text).
pub async fn client_code(
    keyboard: &mut Keyboard<impl AsyncRead + Unpin>,
    screen: &mut impl Screen,
) -> Result<String, Error> {
    if let Some(code) = code_from_environment().map_err(no_code)? {
        return Ok(code);
    }
    let mut doubted: Option<String> = None;
    loop {
        let line = keyboard
            .ask("code: ", tab)
            .await
            .map_err(|error| Error { what: "cannot read the code".into(), error })?;
        let Some(code) = code::normalise(&line) else { continue };
        match code::check(&code) {
            Ok(()) => return Ok(code),
            Err(_) if doubted.as_deref() == Some(code.as_str()) => return Ok(code),
            Err(typo) => {
                screen.status(&format!(
                    "{typo}: type the code again (the same code twice is used as it is)"
                ));
                doubted = Some(code);
            }
        }
    }
}

/// Tab at the code prompt: the code typed so far with its last word
/// completed as far as is certain; when nothing can be added, the words
/// that fit, to be shown when 2 to 16 fit (more would fill the screen: a
/// letter more narrows them).
fn tab(typed: &str) -> Result<String, String> {
    code::complete(typed).ok_or_else(|| match code::completions(typed) {
        fits if (2..=16).contains(&fits.len()) => format!("the words that fit: {}", fits.join(" ")),
        _ => String::new(),
    })
}

/// The wrong codes a server met in its run, across all its codes, and at
/// the code in force.
#[derive(Debug, Default)]
pub struct Guesses {
    wrong: u32,
    here: u32,
}

impl Guesses {
    /// Counts one more wrong code; the error that ends the server at the
    /// last one the run accepts.
    pub fn count(&mut self) -> Result<(), Error> {
        self.wrong += 1;
        self.here += 1;
        if self.wrong >= WRONG_CODES {
            return Err(Error {
                what: format!("{WRONG_CODES} wrong codes"),
                error: io::Error::other("someone may be guessing; ending"),
            });
        }
        Ok(())
    }

    /// Whether the code in force met [`GUESSES`] wrong codes and is to be
    /// replaced; the count starts again for the next. A code the person
    /// chose (`fixed`, from `SMOLCHAT_CODE`) cannot be: that ends the server.
    pub fn spent(&mut self, fixed: bool) -> Result<bool, Error> {
        if self.here < GUESSES {
            return Ok(false);
        }
        if fixed {
            return Err(fixed_code_spent());
        }
        self.here = 0;
        Ok(true)
    }

    /// How a wrong code reads in a status line: `wrong code (2 of at most 10)`.
    pub fn said(&self) -> String {
        format!("wrong code ({} of at most {WRONG_CODES})", self.wrong)
    }
}

/// The error that ends a server whose `SMOLCHAT_CODE` met [`GUESSES`]
/// wrong codes.
fn fixed_code_spent() -> Error {
    Error {
        what: format!("{GUESSES} wrong codes"),
        error: io::Error::other("ending, since SMOLCHAT_CODE cannot be replaced"),
    }
}

/// Shows a code a person passes on, on a line of its own: `the code is
/// CODE`, or, when it replaces one, `the new code is CODE; it replaces OLD`.
pub fn show_code(screen: &mut impl Screen, code: &str, replaces: Option<&str>) {
    match replaces {
        None => screen.highlight(&format!("the code is {code}")),
        Some(old) => screen.highlight(&format!("the new code is {code}; it replaces {old}")),
    }
}

/// What the friend of a direct private server at `local` runs. The server
/// cannot know the name it is reached by: a `--bind` address that names one
/// interface is shown as it is, any other as `THIS-HOST`, which the person
/// replaces.
pub fn friend_runs_direct(local: SocketAddr) -> String {
    let ip = local.ip().to_canonical();
    if ip.is_unspecified() {
        let port = local.port();
        format!(
            "your friend runs: smolchat client --private THIS-HOST {port}, \
             with THIS-HOST the name or address of this computer"
        )
    } else {
        format!("your friend runs: smolchat client --private {ip} {}", local.port())
    }
}

/// What a failed handshake with a direct private server came to.
pub enum Admission {
    /// Turned away, and not a guess (a plain client, a silent one...).
    Refused,
    /// A wrong code: the server pauses before it accepts again.
    Guessed,
}

/// The direct server's code and the wrong guesses made at it.
pub struct Server {
    code: String,
    /// Made here (replaced after too many wrong codes), or from the environment.
    generated: bool,
    /// Wrong codes in the whole run, and at this code.
    guesses: Guesses,
}

impl Server {
    /// Takes `SMOLCHAT_CODE` or makes a code, and shows it, with what the
    /// friend runs to reach `local`.
    pub fn new(screen: &mut impl Screen, local: SocketAddr) -> Result<Server, Error> {
        let (code, generated) = match server_code_from_environment()? {
            Some(code) => (code, false),
            None => (new_code()?, true),
        };
        match generated {
            true => show_code(screen, &code, None),
            false => screen.status("the code is SMOLCHAT_CODE's"),
        }
        screen.status(&friend_runs_direct(local));
        Ok(Server { code, generated, guesses: Guesses::default() })
    }

    /// Runs the handshake with a new client: its hello within the first
    /// line's deadline, answered `ready` at once; then the code, which a
    /// person may take a minute to type. A connection that fails is closed;
    /// [`Server::failed`] says why and counts a wrong code.
    pub async fn handshake(&self, wire: &TcpStream) -> Result<Secrets, handshake::Failure> {
        let mut lines = Framer::new(wire.clone(), handshake::MAX_LINE);
        let first_by = Instant::now() + deadline(handshake::FIRST_LINE);
        let outcome = async {
            handshake::greet(&mut lines, &mut wire.clone(), first_by).await?;
            let code_by = Instant::now() + deadline(handshake::CODE_WAIT);
            let step = deadline(handshake::STEP);
            handshake::server(lines, &mut wire.clone(), &self.code, code_by, step).await
        };
        let outcome = outcome.await;
        if outcome.is_err() {
            net::close(wire).await;
        }
        outcome
    }

    /// Says how the handshake with the client at `addr` failed, and counts
    /// a wrong code: the code is replaced after [`GUESSES`] of them (or,
    /// from `SMOLCHAT_CODE`, the server ends), and the run ends at
    /// [`WRONG_CODES`]. `Err` when the server must end.
    pub fn failed(
        &mut self,
        failure: handshake::Failure,
        addr: SocketAddr,
        screen: &mut impl Screen,
    ) -> Result<Admission, Error> {
        if !matches!(failure, handshake::Failure::WrongCode) {
            screen.status(&format!("{addr}: {}", failure.describe()));
            return Ok(Admission::Refused);
        }
        self.guesses.count()?;
        screen.status(&format!("{addr}: {}", self.guesses.said()));
        if self.guesses.spent(!self.generated)? {
            let old = std::mem::replace(&mut self.code, new_code()?);
            show_code(screen, &self.code, Some(&old));
        }
        Ok(Admission::Guessed)
    }
}

fn new_code() -> Result<String, Error> {
    made(code::generate())
}

/// A code just made, or why it could not be.
fn made(code: io::Result<String>) -> Result<String, Error> {
    code.map_err(|error| Error { what: "cannot make a code".into(), error })
}

/// Fills `bytes` from the system's random number generator: codes, room
/// keys and the direct path's nonces.
fn random(bytes: &mut [u8]) -> io::Result<()> {
    getrandom::getrandom(bytes).map_err(|e| io::Error::other(e.to_string()))
}

/// How long a busy server waits for the first line of a connection it
/// turns away.
pub const TURN_AWAY_WAIT: Duration = Duration::from_secs(2);

/// What a direct server that is busy with one client does with another
/// connection: reads its first line for a moment, tells a private client
/// the server is busy and anything else what a plain client is told, and
/// closes it.
pub async fn turn_away(wire: &TcpStream) {
    let mut lines = Framer::new(wire.clone(), handshake::MAX_LINE);
    let by = Instant::now() + deadline(TURN_AWAY_WAIT);
    // Whatever it sent, it is closed: only the words it got differ.
    let _told = handshake::turn_away(&mut lines, &mut wire.clone(), by).await;
    net::close(wire).await;
}

/// The client's first step on a direct connection to `peer` (as named in
/// errors): the hello, and the server's answer within `timeout`. Every
/// kind of wrong target is one error line, before any code is asked: a
/// busy server, something that is not a private smolchat server (a plain
/// server never answers the hello). The lines that follow, for
/// [`handshake_client`].
pub async fn hello(
    wire: &TcpStream,
    peer: &str,
    timeout: Duration,
) -> Result<Framer<TcpStream>, Error> {
    let mut lines = Framer::new(wire.clone(), handshake::MAX_LINE);
    let deadline = Instant::now() + timeout;
    let failure = match handshake::hello(&mut lines, &mut wire.clone(), deadline).await {
        Ok(()) => return Ok(lines),
        Err(failure) => failure,
    };
    net::close(wire).await;
    let not_private = |why: String| Error {
        what: format!("{peer} is not a private smolchat server"),
        error: io::Error::other(why),
    };
    Err(match failure {
        handshake::Failure::Busy => Error {
            what: format!("the server at {peer} is busy"),
            error: io::Error::other("it is chatting with someone else; try again later"),
        },
        handshake::Failure::Late(_) => not_private(format!(
            "no answer to the private hello within {} s (a plain server never answers it)",
            seconds_text(timeout)
        )),
        handshake::Failure::Closed => {
            not_private("it closed the connection at the private hello".into())
        }
        handshake::Failure::Io(error) => Error { what: format!("connection to {peer}"), error },
        _ => not_private("it answered the private hello with something else".into()),
    })
}

/// Runs the rest of the client's handshake with the server `peer` (as
/// named in errors) once it said `ready`: `lines` from [`hello`]; through
/// a relay, the lines after `paired` with the hello still to send
/// (`with_hello`).
pub async fn handshake_client(
    lines: Framer<TcpStream>,
    wire: &TcpStream,
    code: &str,
    peer: &str,
    with_hello: bool,
) -> Result<Secrets, Error> {
    let step = deadline(handshake::STEP);
    let mut writer = wire.clone();
    let outcome = handshake::client(lines, &mut writer, code, step, with_hello).await;
    let failure = match outcome {
        Ok(secrets) => return Ok(secrets),
        Err(failure) => failure,
    };
    net::close(wire).await;
    let why = match failure {
        handshake::Failure::WrongCode => {
            return Err(Error {
                what: "wrong code".into(),
                error: io::Error::other("the server has a different code"),
            })
        }
        handshake::Failure::Io(error) => {
            return Err(Error { what: format!("private chat with {peer}"), error })
        }
        handshake::Failure::Closed => {
            "the server closed the connection before the code was checked".into()
        }
        handshake::Failure::Late(Awaited::Answer) => {
            format!("no answer to the private hello within {} s", seconds_text(handshake::STEP))
        }
        handshake::Failure::Late(_) => {
            format!("the server did not answer the code within {} s", seconds_text(handshake::STEP))
        }
        handshake::Failure::Busy => "the server is busy with someone else".into(),
        _ => "the server does not speak smolchat-private/2".into(),
    };
    Err(Error { what: format!("private chat with {peer}"), error: io::Error::other(why) })
}

#[cfg(test)]
mod tests;
