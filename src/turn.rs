//! The turn loop of one connection, generic over its streams so that it runs
//! the same over a TCP socket and over in-memory pipes in tests.

use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::time::Duration;

use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use futures_lite::FutureExt;

use crate::wire::error::seconds_text;
use crate::wire::framer::{Frame, Framer};

/// The line that ends a session when typed on its own.
pub const EXIT: &[u8] = b"EXIT";

/// How long a message may make no progress on its way out when
/// `--idle-timeout` is not set.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the peer's hang-up is looked for while the user types and the
/// peer's unread lines fill the buffer, so that nothing else can show it.
pub const HANGUP_CHECK: Duration = Duration::from_millis(500);

/// A peer stream that may be read by blocking the thread.
///
/// The turn loop allows it while the peer's message is all there is to wait
/// for, and forbids it before it races the peer against the keyboard or a
/// timer. A stream that never blocks can ignore it.
pub trait PeerSocket {
    /// Lets reads and writes block the thread (`true`) or not (`false`).
    fn allow_blocking(&self, allow: bool) -> io::Result<()>;

    /// Whether the peer has already closed (also behind data not yet read)
    /// or reset the connection, found without waiting and without reading
    /// anything away. A stream that cannot tell says no, and the hang-up is
    /// found by the next read instead.
    fn hung_up(&self) -> bool {
        false
    }
}

/// A peer's stream behind one type, so that the turn loop is compiled once
/// for plain and private chats rather than once per stream type.
pub trait PeerStream: AsyncRead + PeerSocket + Unpin {}

impl<T: AsyncRead + PeerSocket + Unpin> PeerStream for T {}

impl<T: PeerSocket + ?Sized> PeerSocket for Box<T> {
    fn allow_blocking(&self, allow: bool) -> io::Result<()> {
        (**self).allow_blocking(allow)
    }

    fn hung_up(&self) -> bool {
        (**self).hung_up()
    }
}

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
    /// Announces that it is the local user's turn.
    fn prompt(&mut self);
    /// The user finished a line (so a prompt shown is answered).
    fn typed(&mut self) {}
}

/// What the turn loop needs from the keyboard: the next line on the local
/// user's turn, the end of input, and a leave (`EXIT`, Ctrl-D) while the
/// peer has the turn. The keyboard implements it; the turn loop never
/// knows whether a person or a script types.
pub trait Lines {
    /// Whether the keyboard is watched while the peer has the turn (a
    /// person who may leave at any moment), so the peer's socket is never
    /// read by blocking the thread.
    fn is_watched(&self) -> bool;

    /// The next line for the local user's turn. Cancelling it loses nothing.
    fn next(&mut self) -> impl Future<Output = io::Result<Frame>>;

    /// Returns when the user leaves while it is not their turn; never for
    /// a keyboard that is not watched.
    fn watch(&mut self) -> impl Future<Output = io::Result<Ending>>;

    /// The text of the line last returned by [`Lines::next`].
    fn line(&self) -> &[u8];

    /// The line last returned, with its `\n`, when it can go out as it came.
    fn line_with_newline(&self) -> Option<&[u8]>;

    /// The longest line taken.
    fn max_line(&self) -> usize;

    /// The line last returned could not be sent because the peer left
    /// before it: kept for whoever comes next, or said not sent.
    fn put_back(&mut self);

    /// The line last returned could not be sent and will not be.
    fn not_sent(&mut self);

    /// The line last returned was sent.
    fn sent(&mut self);
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
#[derive(Debug)]
pub struct Session<'a, P, W: ?Sized, K> {
    /// Lines from the peer.
    pub peer: &'a mut Framer<P>,
    /// Bytes to the peer.
    pub to_peer: &'a mut W,
    /// Lines from the keyboard; it outlives the session.
    pub keys: &'a mut K,
}

/// What happened while the local user had the turn.
enum Typed {
    Sent,
    Ended(Ending),
}

impl<P, W: ?Sized, K> Session<'_, P, W, K>
where
    P: AsyncRead + Unpin + PeerSocket,
    W: AsyncWrite + Unpin,
    K: Lines,
{
    /// Runs turns until the session ends.
    pub async fn run<S: Screen>(
        &mut self,
        role: Role,
        settings: Settings,
        screen: &mut S,
    ) -> Result<Ending, Failure> {
        if role == Role::Client {
            if let Typed::Ended(ending) = self.local_turn(settings, screen).await? {
                return Ok(ending);
            }
        }
        loop {
            if let Some(ending) = self.peer_turn(settings.idle_timeout, screen).await? {
                return Ok(ending);
            }
            if let Typed::Ended(ending) = self.local_turn(settings, screen).await? {
                return Ok(ending);
            }
        }
    }

    /// Waits for the peer's message and shows it; `Some` when the session ended.
    async fn peer_turn<S: Screen>(
        &mut self,
        idle: Option<Duration>,
        screen: &mut S,
    ) -> Result<Option<Ending>, Failure> {
        // Nothing but the peer is awaited here, unless a timer is, or a
        // person who may leave at any moment.
        let watch = self.keys.is_watched();
        self.peer.get_ref().allow_blocking(idle.is_none() && !watch).map_err(Failure::Peer)?;
        let (peer, keys) = (&mut *self.peer, &mut *self.keys);
        let from_peer = async {
            match idle {
                None => peer.next().await,
                Some(idle) => next_within(peer, idle).await,
            }
            .map_err(Failure::Peer)
        };
        let frame = if watch {
            // The peer first, so that its message is shown before a leave
            // typed at the same moment.
            let left = async { keys.watch().await.map_err(Failure::Keyboard) };
            match future::or(async { from_peer.await.map(Ok) }, async { left.await.map(Err) })
                .await?
            {
                Ok(frame) => frame,
                Err(ending) => return Ok(Some(ending)),
            }
        } else {
            from_peer.await?
        };
        match frame {
            Frame::Line => Ok(show(self.peer, screen)?),
            Frame::TooLong => Err(Failure::Peer(too_long(self.peer.max_line()))),
            Frame::Eof => Ok(Some(Ending::PeerLeft)),
        }
    }

    /// Reads the keyboard until a line is sent or the session ends, while
    /// watching the connection so that a hang-up ends the turn at once.
    async fn local_turn<S: Screen>(
        &mut self,
        settings: Settings,
        screen: &mut S,
    ) -> Result<Typed, Failure> {
        loop {
            // A line already typed ahead takes the turn at once, without a
            // prompt or a reactor wait. Otherwise the socket is polled first
            // so that a hang-up wins over a keystroke at the same moment.
            let event = match future::poll_once(self.keys.next()).await {
                Some(typed) => Event::Key(typed),
                None => {
                    screen.prompt();
                    self.peer.get_ref().allow_blocking(false).map_err(Failure::Peer)?;
                    future::or(async { Event::Peer(watch(self.peer).await) }, async {
                        Event::Key(self.keys.next().await)
                    })
                    .await
                }
            };
            if let Event::Key(Ok(Frame::Line | Frame::TooLong)) = event {
                screen.typed();
            }
            match event {
                Event::Peer(result) => return self.peer_gone(result, screen).await,
                Event::Key(Err(e)) => return Err(Failure::Keyboard(e)),
                Event::Key(Ok(Frame::Eof)) => return Ok(Typed::Ended(Ending::KeyboardClosed)),
                Event::Key(Ok(Frame::TooLong)) => {
                    let max = self.keys.max_line();
                    screen.status(&format!("line longer than {max} bytes, not sent"));
                }
                Event::Key(Ok(Frame::Line)) if self.keys.line() == EXIT => {
                    return Ok(Typed::Ended(Ending::Exit));
                }
                Event::Key(Ok(Frame::Line)) => {
                    // Never into a connection the peer has closed, also when
                    // its FIN waits behind data not yet read: the line stays
                    // on the keyboard for whoever comes next.
                    if self.peer.get_ref().hung_up() {
                        self.keys.put_back();
                        return self.peer_gone(Ok(()), screen).await;
                    }
                    return match self.send(settings.send_timeout()).await {
                        Ok(()) => {
                            self.keys.sent();
                            Ok(Typed::Sent)
                        }
                        // The peer's FIN came first (a reset then gives a
                        // broken pipe, not "connection reset"): it left.
                        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                            self.keys.not_sent();
                            self.peer_gone(Ok(()), screen).await
                        }
                        Err(e) => Err(Failure::Peer(e)),
                    };
                }
            }
        }
    }

    /// Sends the keyboard line and its `\n` in one write, so that Nagle and
    /// delayed ACKs never hold half a message; fails with "timed out" when
    /// it makes no progress for `bound`.
    async fn send(&mut self, bound: Duration) -> io::Result<()> {
        let line = match self.keys.line_with_newline() {
            Some(raw) => Cow::Borrowed(raw),
            None => {
                let mut line = Vec::with_capacity(self.keys.line().len() + 1);
                line.extend_from_slice(self.keys.line());
                line.push(b'\n');
                Cow::Owned(line)
            }
        };
        write_within(self.to_peer, &line, bound).await?;
        self.to_peer.flush().await
    }

    /// The peer ended the connection during the local turn: shows the lines
    /// it sent before the end, in order (those read already, then the rest up
    /// to its FIN), then says how it ended. `watched` is how reading ahead
    /// ended; an error there comes after the lines read before it.
    async fn peer_gone<S: Screen>(
        &mut self,
        watched: io::Result<()>,
        screen: &mut S,
    ) -> Result<Typed, Failure> {
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
                        return Ok(Typed::Ended(ending));
                    }
                }
                Frame::TooLong => return Err(Failure::Peer(too_long(self.peer.max_line()))),
                Frame::Eof => return Ok(Typed::Ended(Ending::PeerLeft)),
            }
        }
    }
}

/// Reads the peer's lines ahead while the user types, until there is news:
/// the end of the stream, a line over the limit, or a hang-up seen behind a
/// buffer full of unread lines, which only a check made from time to time
/// can see.
async fn watch<P: AsyncRead + Unpin + PeerSocket>(peer: &mut Framer<P>) -> io::Result<()> {
    loop {
        let news = async { peer.read_ahead().await.map(|()| true) }
            .or(async {
                smol::Timer::after(HANGUP_CHECK).await;
                Ok(false)
            })
            .await?;
        if news || peer.get_ref().hung_up() {
            return Ok(());
        }
    }
}

/// Writes all of `buf`, failing with "timed out" when a write makes no
/// progress for `bound`. A write that goes through at once costs no timer.
async fn write_within<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    mut buf: &[u8],
    bound: Duration,
) -> io::Result<()> {
    while !buf.is_empty() {
        let written = match future::poll_once(w.write(buf)).await {
            Some(r) => r,
            None => {
                w.write(buf)
                    .or(async {
                        smol::Timer::after(bound).await;
                        Err(send_timed_out(bound))
                    })
                    .await
            }
        };
        match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The error of a send that made no progress for `after`.
pub fn send_timed_out(after: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("timed out, the peer read nothing for {} s", seconds_text(after)),
    )
}

/// One side of the race in the local turn.
enum Event {
    Peer(io::Result<()>),
    Key(io::Result<Frame>),
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
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the peer sent a line longer than {max_line} bytes"),
    )
}

/// `Framer::next`, failing when no byte arrives for `idle`: the clock counts
/// silence, so a slow but steady sender is never cut off.
async fn next_within<P: AsyncRead + Unpin>(
    peer: &mut Framer<P>,
    idle: Duration,
) -> io::Result<Frame> {
    loop {
        if let Some(frame) = peer.decode() {
            return Ok(frame);
        }
        peer.fill()
            .or(async {
                smol::Timer::after(idle).await;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no data for {} s (idle timeout)", seconds_text(idle)),
                ))
            })
            .await?;
    }
}

#[cfg(test)]
mod tests;
