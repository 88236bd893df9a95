//! Private chats (`--private`): where the code comes from, the handshake on
//! a new connection, and a session over sealed records. See
//! `docs/private.md` for the protocol.

pub mod code;
pub mod direct;
pub mod handshake;
pub mod meet;
pub mod record;

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::FutureExt;

use crate::terminal::keyboard::Keys as Typed;
use crate::turn::{Ending, Failure, PeerSocket, PeerStream, Role, Screen, Session, Settings};
use crate::wire::error::Error;
use crate::wire::framer::Framer;
use crate::wire::net::{self, Connection};
use handshake::Keys;
use record::{RecordReader, RecordWriter};

/// Where either side may find the code instead of making or asking for one.
pub const CODE_VARIABLE: &str = "SMOLCHAT_CODE";

/// How long a handshake may take, from the connection on.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server waits after a wrong code before it accepts again.
pub const WRONG_CODE_PAUSE: Duration = Duration::from_secs(1);

/// Wrong codes after which the server's code is replaced (or it ends).
pub const GUESSES: u32 = 3;

/// The code from `SMOLCHAT_CODE`: `Ok(None)` when it is not set; what is
/// wrong with it when it holds nothing usable (a usage error at the start).
fn code_from_environment() -> Result<Option<String>, &'static str> {
    let Some(value) = std::env::var_os(CODE_VARIABLE) else { return Ok(None) };
    let value = value.into_string().map_err(|_| "SMOLCHAT_CODE is not valid UTF-8")?;
    code::normalise(&value).map(Some).ok_or("SMOLCHAT_CODE is empty")
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

/// A code from `SMOLCHAT_CODE` that cannot be used, met after the start.
fn no_code(why: &str) -> Error {
    Error { what: "no code".into(), error: io::Error::other(why) }
}

/// The client's code: `SMOLCHAT_CODE`, or asked at the terminal.
pub async fn client_code<K: AsyncRead + Unpin>(keys: &mut Typed<K>) -> Result<String, Error> {
    if let Some(code) = code_from_environment().map_err(no_code)? {
        return Ok(code);
    }
    let line = keys
        .read_secret("code: ")
        .await
        .map_err(|error| Error { what: "cannot read the code".into(), error })?;
    code::normalise(&line).ok_or_else(|| Error {
        what: "no code".into(),
        error: io::Error::other("the code is empty"),
    })
}

/// The server's code and the wrong guesses made at it.
pub struct Server {
    code: String,
    /// Made here (replaced after too many wrong codes), or from the environment.
    generated: bool,
    wrong: u32,
}

impl Server {
    /// Takes `SMOLCHAT_CODE` or makes a code, and shows a made one.
    pub fn new<S: Screen>(screen: &mut S) -> Result<Server, Error> {
        let from_env = code_from_environment().map_err(no_code)?;
        let server = match from_env {
            Some(code) => Server { code, generated: false, wrong: 0 },
            None => Server { code: new_code()?, generated: true, wrong: 0 },
        };
        if server.generated {
            screen.status(&format!("private chat; the code is {}", server.code));
        } else {
            screen.status("private chat; the code is SMOLCHAT_CODE's");
        }
        Ok(server)
    }

    /// Runs the handshake with a new client. `Some` keys to chat with it;
    /// `None` when it was turned away (said on the screen); `Err` when the
    /// server must end.
    pub async fn admit<S: Screen>(
        &mut self,
        wire: &Connection,
        addr: SocketAddr,
        screen: &mut S,
    ) -> Result<Option<Keys>, Error> {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let outcome = handshake::server(
            &mut wire.clone(),
            &mut wire.clone(),
            &self.code,
            deadline,
            Vec::new(),
        )
        .await;
        let failure = match outcome {
            Ok(keys) => return Ok(Some(keys)),
            Err(failure) => failure,
        };
        screen.status(&format!("{addr}: {}", failure.describe(true)));
        net::close(wire).await;
        if !matches!(failure, handshake::Failure::WrongCode) {
            return Ok(None);
        }
        self.wrong += 1;
        if self.wrong >= GUESSES {
            if !self.generated {
                return Err(Error {
                    what: format!("{GUESSES} wrong codes"),
                    error: io::Error::other("ending, since SMOLCHAT_CODE cannot be replaced"),
                });
            }
            self.code = new_code()?;
            self.wrong = 0;
            screen.status(&format!("{GUESSES} wrong codes; the new code is {}", self.code));
        }
        // One guess per second at most, whoever asks.
        smol::Timer::after(WRONG_CODE_PAUSE).await;
        Ok(None)
    }
}

fn new_code() -> Result<String, Error> {
    code::generate().map_err(|error| Error { what: "cannot make a code".into(), error })
}

/// Runs the client's side of the handshake on a new connection to `peer`
/// (as named in errors), of which `early` was read already.
pub async fn connect(
    wire: &Connection,
    code: &str,
    peer: &str,
    early: Vec<u8>,
) -> Result<Keys, Error> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let (mut reader, mut writer) = (wire.clone(), wire.clone());
    match handshake::client(&mut reader, &mut writer, code, deadline, early).await {
        Ok(keys) => Ok(keys),
        Err(failure) => {
            net::close(wire).await;
            Err(match failure {
                handshake::Failure::WrongCode => Error {
                    what: "wrong code".into(),
                    error: io::Error::other("the server has a different code"),
                },
                failure => Error {
                    what: format!("private chat with {peer}"),
                    error: io::Error::other(failure.describe(false)),
                },
            })
        }
    }
}

/// One private session over a connection whose handshake is done, closed
/// with a close record when it ends without a failure.
pub async fn talk<K, S>(
    wire: &Connection,
    secrets: Keys,
    role: Role,
    settings: Settings,
    max_line: usize,
    keys: &mut Typed<K>,
    screen: &mut S,
) -> Result<Ending, Failure>
where
    K: AsyncRead + Unpin,
    S: Screen,
{
    let reader = RecordReader::new(wire.clone(), secrets.open, max_line, &secrets.early);
    let mut peer = Framer::new(Box::new(reader) as Box<dyn PeerStream>, max_line);
    let mut to_peer = RecordWriter::new(wire.clone(), secrets.seal);
    let writer: &mut (dyn AsyncWrite + Unpin) = &mut to_peer;
    let outcome =
        Session { peer: &mut peer, to_peer: writer, keys }.run(role, settings, screen).await;
    if outcome.is_ok() && wire.allow_blocking(false).is_ok() {
        // The peer may be gone or not reading; the close is best effort.
        let _ = to_peer
            .close_record()
            .or(async {
                smol::Timer::after(net::LINGER).await;
                Ok(())
            })
            .await;
    }
    net::close(wire).await;
    outcome
}

#[cfg(test)]
mod tests;
