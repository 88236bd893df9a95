//! The turn loop of one connection, over streams it is given: it runs the
//! same over a TCP socket, sealed records and in-memory pipes in tests.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::wire::error::seconds_text;
use crate::wire::framer::{Frame, Framer};
use crate::wire::{within, HangUp};

/// The line that ends a session when typed on its own.
pub const EXIT: &[u8] = b"EXIT";

/// How long a message may make no progress on its way out when
/// `--idle-timeout` is not set.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the peer's hang-up is looked for while the user types and the
/// peer's unread lines fill the buffer, so that nothing else can show it.
pub const HANGUP_CHECK: Duration = Duration::from_millis(500);

/// A peer's stream behind one type, so that the turn loop is compiled once
/// for plain and private chats rather than once per stream type.
pub trait PeerStream: AsyncRead + HangUp + Unpin {}

impl<T: AsyncRead + HangUp + Unpin> PeerStream for T {}

/// Who speaks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Speaks first.
    Client,
    /// Answers.
    Server,
}

/// Where the peer's messages and the status lines go.
pub trait Screen {
    /// Shows one peer message. `text` has no line ending; `with_newline` is
    /// the same text with its `\n` when it arrived as a plain `\n` line.
    fn message(&mut self, text: &[u8], with_newline: Option<&[u8]>) -> io::Result<()>;
    /// Shows a status line (the console adds the `smolchat: ` prefix).
    fn status(&mut self, text: &str);
    /// Shows a status line that must stand out, such as the code a person
    /// passes on; where colour is on it is highlighted as no peer text can
    /// be. A plain status line where the screen has no highlight.
    fn highlight(&mut self, text: &str) {
        self.status(text);
    }
    /// Says, where a person types (stdin is a terminal), that the server
    /// waits for a client and how to end it.
    fn waiting(&mut self) {}
    /// Announces that it is the local user's turn.
    fn prompt(&mut self);
    /// The user finished a line (so a prompt shown is answered).
    fn typed(&mut self) {}
}

/// What the turn loop needs from the keyboard: the next line on the local
/// user's turn, and a leave while the peer has the turn. The keyboard
/// implements it for a script's lines and for a person's alike.
pub trait Lines {
    /// The next line for the local user's turn, or why there is none.
    /// Cancelling it loses nothing.
    fn next(&mut self) -> impl Future<Output = io::Result<Input>>;

    /// The line last given, with its `\n`.
    fn line(&self) -> &[u8];

    /// Returns when the user leaves while it is not their turn (`EXIT` or
    /// Ctrl-D at a terminal, a signal); never for a script, whose lines are
    /// answers that each wait for their turn.
    fn left(&mut self) -> impl Future<Output = io::Result<Ending>>;

    /// What became of the line last put.
    fn fate(&mut self, fate: Fate);
}

/// What the keyboard gives on the local user's turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A line: [`Lines::line`].
    Line,
    /// A line longer than this many bytes: not sent, and the turn goes on.
    TooLong(usize),
    /// No line will come: the user left.
    Left(Ending),
}

/// What became of a line the keyboard gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It went to the peer.
    Sent,
    /// The peer had left before any of it went: it may go to the next one.
    Kept,
    /// The peer left while it was going.
    Lost,
}

/// How a session ended without a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The peer closed the connection.
    PeerLeft,
    /// The local user typed `EXIT`.
    Exit,
    /// The keyboard reached the end of its input.
    KeyboardClosed,
    /// The screen (stdout) was closed, so no message can be shown any more.
    ScreenClosed,
    /// Ctrl-C (as SIGINT), SIGTERM or SIGHUP, with the signal's number: the
    /// program ends with 128 + it once the session is closed.
    Signal(i32),
}

/// Which stream failed, and how.
#[derive(Debug)]
pub enum Failure {
    /// The connection: a network or protocol error.
    Peer(io::Error),
    /// Reading the keyboard.
    Keyboard(io::Error),
    /// Writing the screen, for a reason other than it being closed.
    Screen(io::Error),
}

/// Settings of a session.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// Drop the peer when it sends nothing for this long on its turn.
    pub idle_timeout: Option<Duration>,
}

impl Settings {
    /// How long a message may make no progress on its way out.
    pub fn send_timeout(&self) -> Duration {
        self.idle_timeout.unwrap_or(SEND_TIMEOUT)
    }
}

/// The streams of one session.
pub struct Session<'a, K> {
    /// Lines from the peer.
    pub peer: &'a mut Framer<Box<dyn PeerStream>>,
    /// Bytes to the peer.
    pub to_peer: &'a mut (dyn AsyncWrite + Unpin),
    /// Lines from the keyboard; it outlives the session.
    pub keyboard: &'a mut K,
}

impl<K: Lines> Session<'_, K> {
    /// Runs turns until the session ends.
    pub async fn run<S: Screen>(
        &mut self,
        role: Role,
        settings: Settings,
        screen: &mut S,
    ) -> Result<Ending, Failure> {
        if role == Role::Client {
            if let Some(ending) = self.local_turn(settings, screen).await? {
                return Ok(ending);
            }
        }
        loop {
            if let Some(ending) = self.peer_turn(settings.idle_timeout, screen).await? {
                return Ok(ending);
            }
            if let Some(ending) = self.local_turn(settings, screen).await? {
                return Ok(ending);
            }
        }
    }

    /// Waits for the peer's message and shows it; `Some` when the session
    /// ended: the peer left, or the user did meanwhile.
    async fn peer_turn<S: Screen>(
        &mut self,
        idle: Option<Duration>,
        screen: &mut S,
    ) -> Result<Option<Ending>, Failure> {
        let (peer, keyboard) = (&mut *self.peer, &mut *self.keyboard);
        let from_peer = next_within(peer, idle);
        // The peer first, so that its message is shown before a leave
        // typed at the same moment.
        let frame =
            match future::or(async { Ok(from_peer.await) }, async { Err(keyboard.left().await) })
                .await
            {
                Ok(frame) => frame.map_err(Failure::Peer)?,
                Err(left) => return left.map(Some).map_err(Failure::Keyboard),
            };
        match frame {
            Frame::Line => show(self.peer, screen),
            Frame::TooLong => Err(Failure::Peer(too_long(self.peer.max_line()))),
            Frame::Eof => Ok(Some(Ending::PeerLeft)),
        }
    }

    /// Reads the keyboard until a line is sent (`None`) or the session ends,
    /// while watching the connection so that a hang-up ends the turn at once.
    async fn local_turn<S: Screen>(
        &mut self,
        settings: Settings,
        screen: &mut S,
    ) -> Result<Option<Ending>, Failure> {
        loop {
            // A line already typed ahead takes the turn at once, without a
            // prompt or a reactor wait. Otherwise the socket is polled first
            // so that a hang-up wins over a keystroke at the same moment.
            let input = match future::poll_once(self.keyboard.next()).await {
                Some(input) => input,
                None => {
                    screen.prompt();
                    let (peer, keyboard) = (&mut *self.peer, &mut *self.keyboard);
                    let typed = async { Ok(keyboard.next().await) };
                    match future::or(async { Err(watch(peer).await) }, typed).await {
                        Ok(input) => input,
                        Err(watched) => return self.peer_gone(watched, screen).await,
                    }
                }
            };
            match input.map_err(Failure::Keyboard)? {
                Input::Left(ending) => return Ok(Some(ending)),
                Input::TooLong(max) => {
                    screen.typed();
                    screen.status(&format!("line longer than {max} bytes, not sent"));
                }
                Input::Line if self.keyboard.line().strip_suffix(b"\n") == Some(EXIT) => {
                    screen.typed();
                    return Ok(Some(Ending::Exit));
                }
                Input::Line => {
                    screen.typed();
                    return self.send(settings.send_timeout(), screen).await;
                }
            }
        }
    }

    /// Sends the keyboard's line, unless the peer has left first; `Some`
    /// when the session ended meanwhile. The user may still leave while the
    /// line waits for a peer that does not read.
    async fn send<S: Screen>(
        &mut self,
        bound: Duration,
        screen: &mut S,
    ) -> Result<Option<Ending>, Failure> {
        // Never into a connection the peer has closed, also when its FIN
        // waits behind data not yet read: the line stays on the keyboard
        // for whoever comes next.
        if self.peer.get_ref().hung_up() {
            self.keyboard.fate(Fate::Kept);
            return self.peer_gone(Ok(()), screen).await;
        }
        // Most lines go out at once, lent by the keyboard; the rest of one
        // that waits for the peer to read is copied, so that the keyboard
        // is free to be watched meanwhile.
        let mut written = 0;
        let line = self.keyboard.line();
        let sent =
            match future::poll_once(send_within(self.to_peer, line, &mut written, bound)).await {
                Some(sent) => Ok(sent),
                None => {
                    let rest = line[written..].to_vec();
                    let (to_peer, keyboard) = (&mut *self.to_peer, &mut *self.keyboard);
                    let sent = async { Ok(send_within(to_peer, &rest, &mut 0, bound).await) };
                    future::or(sent, async { Err(keyboard.left().await) }).await
                }
            };
        match sent {
            Ok(Ok(())) => {
                self.keyboard.fate(Fate::Sent);
                Ok(None)
            }
            // The peer's FIN came first (a reset then gives a broken pipe,
            // not "connection reset"): it left.
            Ok(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.keyboard.fate(Fate::Lost);
                self.peer_gone(Ok(()), screen).await
            }
            Ok(Err(e)) => Err(Failure::Peer(e)),
            Err(left) => left.map(Some).map_err(Failure::Keyboard),
        }
    }

    /// The peer ended the connection during the local turn: shows the lines
    /// it sent before the end, in order (those read already, then the rest up
    /// to its FIN), then says how it ended. `watched` is how reading ahead
    /// ended; an error there comes after the lines read before it.
    async fn peer_gone<S: Screen>(
        &mut self,
        watched: io::Result<()>,
        screen: &mut S,
    ) -> Result<Option<Ending>, Failure> {
        let mut error = watched.err();
        loop {
            let frame = match (self.peer.decode(), error.take()) {
                (Some(frame), e) => {
                    error = e;
                    frame
                }
                (None, Some(e)) => return Err(Failure::Peer(e)),
                // The peer has ended, so this read never waits for long.
                (None, None) => match self.peer.next().await {
                    Ok(frame) => frame,
                    // A reset that follows the FIN: the peer left.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Frame::Eof,
                    Err(e) => return Err(Failure::Peer(e)),
                },
            };
            match frame {
                Frame::Line => {
                    if let Some(ending) = show(self.peer, screen)? {
                        return Ok(Some(ending));
                    }
                }
                Frame::TooLong => return Err(Failure::Peer(too_long(self.peer.max_line()))),
                Frame::Eof => return Ok(Some(Ending::PeerLeft)),
            }
        }
    }
}

/// Reads the peer's lines ahead while the user types, until there is news:
/// the end of the stream, a line over the limit, or a hang-up.
async fn watch(peer: &mut Framer<Box<dyn PeerStream>>) -> io::Result<()> {
    // A loop of bounded waits, not one wait: a hang-up behind a buffer full
    // of unread lines stops nothing that is awaited (reading ahead has
    // stopped), so only a check made from time to time can see it.
    loop {
        match within(Instant::now() + HANGUP_CHECK, peer.read_ahead()).await {
            Some(news) => return news,
            None if peer.get_ref().hung_up() => return Ok(()),
            None => {}
        }
    }
}

/// Writes the rest of `line` after the `written` bytes, counting them, and
/// flushes it (a private chat's writer queues a record until then), failing
/// with "timed out" when a step makes no progress for `bound`: the clock
/// counts silence, so a slow reader that takes something in each period is
/// never cut off.
async fn send_within(
    to_peer: &mut (dyn AsyncWrite + Unpin),
    line: &[u8],
    written: &mut usize,
    bound: Duration,
) -> io::Result<()> {
    let late = || send_timed_out(bound);
    while *written < line.len() {
        let step = within(Instant::now() + bound, to_peer.write(&line[*written..]));
        match step.await.ok_or_else(late)? {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    within(Instant::now() + bound, to_peer.flush()).await.ok_or_else(late)?
}

/// The error of a send that made no progress for `after`.
fn send_timed_out(after: Duration) -> io::Error {
    let why = format!("timed out, the peer read nothing for {} s", seconds_text(after));
    io::Error::new(io::ErrorKind::TimedOut, why)
}

/// Shows the peer's current line; `Some` when the screen is gone.
fn show<P, S: Screen>(peer: &Framer<P>, screen: &mut S) -> Result<Option<Ending>, Failure> {
    match screen.message(peer.line(), peer.line_with_newline()) {
        Ok(()) => Ok(None),
        Err(e) if crate::wire::error::is_closed_pipe(&e) => Ok(Some(Ending::ScreenClosed)),
        Err(e) => Err(Failure::Screen(e)),
    }
}

/// The protocol error for a peer line over the limit.
fn too_long(max_line: usize) -> io::Error {
    let why = format!("the peer sent a line longer than {max_line} bytes");
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// `Framer::next`, failing when `idle` is set and no byte arrives for that
/// long: the clock counts silence, so a slow but steady sender is never cut
/// off.
async fn next_within<P: AsyncRead + Unpin>(
    peer: &mut Framer<P>,
    idle: Option<Duration>,
) -> io::Result<Frame> {
    let Some(idle) = idle else { return peer.next().await };
    loop {
        if let Some(frame) = peer.decode() {
            return Ok(frame);
        }
        if within(Instant::now() + idle, peer.fill()).await.transpose()?.is_none() {
            let why = format!("no data for {} s (idle timeout)", seconds_text(idle));
            return Err(io::Error::new(io::ErrorKind::TimedOut, why));
        }
    }
}

#[cfg(test)]
mod tests;
