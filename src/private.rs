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

use futures_lite::io::AsyncRead;

use crate::cli::Usage;
use crate::terminal::keyboard::Keyboard;
use crate::turn::{Ending, Failure, PeerStream, Role, Screen, Session, Settings};
use crate::wire::error::Error;
use crate::wire::framer::Framer;
use crate::wire::net;
use crate::wire::within;
use async_net::TcpStream;
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

/// The code from `SMOLCHAT_CODE`: `Ok(None)` when it is not set, a usage
/// error when it holds nothing.
fn code_from_environment(command: &str) -> Result<Option<String>, Usage> {
    let Some(value) = std::env::var_os(CODE_VARIABLE) else { return Ok(None) };
    let usage = |message: &str| Usage { message: message.into(), command: command.into() };
    let value = value.into_string().map_err(|_| usage("SMOLCHAT_CODE is not valid UTF-8"))?;
    code::normalise(&value).map(Some).ok_or_else(|| usage("SMOLCHAT_CODE is empty"))
}

/// Checks before anything starts that a private side will have a code: a
/// client without `SMOLCHAT_CODE` needs a terminal to ask at.
pub fn check_code_source(server: bool) -> Result<(), Usage> {
    let command = if server { "smolchat server" } else { "smolchat client" };
    if code_from_environment(command)?.is_none() && !server && !io::stdin().is_terminal() {
        return Err(Usage {
            message:
                "--private needs the code: set SMOLCHAT_CODE, or run at a terminal to be asked"
                    .into(),
            command: command.into(),
        });
    }
    Ok(())
}

/// The client's code: `SMOLCHAT_CODE`, or asked at the terminal.
pub async fn client_code<K: AsyncRead + Unpin>(keys: &mut Keyboard<K>) -> Result<String, Error> {
    let usage = |e: Usage| Error { what: "no code".into(), error: io::Error::other(e.message) };
    if let Some(code) = code_from_environment("smolchat client").map_err(usage)? {
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
        let from_env = code_from_environment("smolchat server")
            .map_err(|e| Error { what: "no code".into(), error: io::Error::other(e.message) })?;
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
        wire: &TcpStream,
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
    wire: &TcpStream,
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
/// with a close record when it ends without a failure: also when the
/// person leaves by Ctrl-C or a signal, so that the peer reads that they
/// left.
pub async fn talk<K, S>(
    wire: &TcpStream,
    secrets: Keys,
    role: Role,
    settings: Settings,
    max_line: usize,
    keyboard: &mut Keyboard<K>,
    screen: &mut S,
) -> Result<Ending, Failure>
where
    K: AsyncRead + Unpin,
    S: Screen,
{
    let reader = RecordReader::new(wire.clone(), secrets.open, max_line, &secrets.early);
    let mut peer = Framer::new(Box::new(reader) as Box<dyn PeerStream>, max_line);
    let mut to_peer = RecordWriter::new(wire.clone(), secrets.seal);
    let outcome = Session { peer: &mut peer, to_peer: &mut to_peer, keyboard }
        .run(role, settings, screen)
        .await;
    if outcome.is_ok() {
        // The peer may be gone or not reading: the close is best effort.
        within(Instant::now() + net::LINGER, to_peer.close_record()).await;
    }
    net::close(wire).await;
    outcome
}

#[cfg(test)]
mod tests;
