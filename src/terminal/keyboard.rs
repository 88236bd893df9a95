//! The keyboard: stdin as one async stream for the whole program's life,
//! and the lines it gives: framed plainly from pipes and files, or through
//! the line editor at a terminal.

use std::cell::RefCell;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use blocking::Unblock;
use futures_lite::future;
use futures_lite::io::{AssertAsync, AsyncRead, AsyncReadExt};

use crate::terminal::console::Tty;
use crate::terminal::editor::Event;
use crate::turn::{Ending, Lines, EXIT};
use crate::wire::framer::{Frame, Framer};

/// The keyboard: stdin as an async stream, opened once for the whole program.
///
/// A terminal or a pipe is read on a thread of its own (`blocking::Unblock`),
/// so that waiting for a line never stops the connection from being watched.
/// A regular file (`smolchat client h 2000 <questions.txt`) is read in place:
/// a read from it never blocks, and the hand-off to a thread and back would
/// cost context switches on every message (docs/footprint.md).
#[derive(Debug)]
pub enum Keyboard {
    /// Stdin is a regular file.
    File(AssertAsync<File>),
    /// Stdin is a terminal, a pipe or a socket.
    Live(Unblock<StickyStdin>),
}

impl Keyboard {
    /// Opens stdin, reading up to `read_ahead` bytes ahead when it is live.
    pub fn open(read_ahead: usize) -> Keyboard {
        match stdin_as_file() {
            Some(file) if file.metadata().is_ok_and(|m| m.is_file()) => {
                Keyboard::File(AssertAsync::new(file))
            }
            _ => Keyboard::Live(Unblock::with_capacity(read_ahead, StickyStdin::default())),
        }
    }
}

/// A second handle to stdin, to look at and perhaps read in place.
#[cfg(unix)]
fn stdin_as_file() -> Option<File> {
    use std::os::fd::AsFd;
    io::stdin().as_fd().try_clone_to_owned().ok().map(File::from)
}

/// A second handle to stdin, to look at and perhaps read in place.
#[cfg(windows)]
fn stdin_as_file() -> Option<File> {
    use std::os::windows::io::AsHandle;
    io::stdin().as_handle().try_clone_to_owned().ok().map(File::from)
}

/// Elsewhere stdin is always read on a thread.
#[cfg(not(any(unix, windows)))]
fn stdin_as_file() -> Option<File> {
    None
}

impl AsyncRead for Keyboard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Keyboard::File(file) => Pin::new(file).poll_read(cx, buf),
            Keyboard::Live(live) => Pin::new(live).poll_read(cx, buf),
        }
    }
}

/// Stdin whose end, once read, stays the end. At a terminal Ctrl-D is one
/// read of zero bytes, and `blocking::Unblock` reports an end only when the
/// first read of a fill returns zero: a Ctrl-D that follows a line within the
/// same fill would otherwise be lost.
#[derive(Debug, Default)]
pub struct StickyStdin {
    ended: bool,
}

impl Read for StickyStdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        let n = loop {
            match io::stdin().read(buf) {
                // Someone else made stdin non-blocking (the mode belongs to
                // the shared file description): wait for input as a blocking
                // read would, on this thread of its own.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable()?,
                r => break r?,
            }
        };
        self.ended = n == 0 && !buf.is_empty();
        Ok(n)
    }
}

/// Waits until stdin has input or has ended.
#[cfg(unix)]
fn wait_readable() -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    let stdin = io::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    match poll(&mut fds, None) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Only Unix has non-blocking file descriptors.
#[cfg(not(unix))]
fn wait_readable() -> io::Result<()> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Checks that stdin can be read at all, so that a server whose keyboard is
/// a directory or closed says so before it listens, instead of at the first
/// client's turn. Run it before anything opens a file: a closed stdin's
/// number would be given to the next file opened.
#[cfg(unix)]
pub fn check_readable() -> io::Result<()> {
    use rustix::fs::{fcntl_getfl, OFlags};
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let file = match io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BADF.raw_os_error()) => {
            return Err(io::Error::new(io::ErrorKind::NotFound, "stdin is closed"));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "stdin is a directory"));
    }
    let mode = fcntl_getfl(&file)?.intersection(OFlags::RWMODE);
    if mode == OFlags::WRONLY {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "stdin is open for writing only"));
    }
    // The Rust runtime opens a closed stdin as /dev/null for reading and
    // writing before main; a shell's `</dev/null` opens it for reading only.
    let null = std::fs::metadata("/dev/null")
        .is_ok_and(|null| meta.file_type().is_char_device() && meta.rdev() == null.rdev());
    if null && mode == OFlags::RDWR {
        return Err(io::Error::new(io::ErrorKind::NotFound, "stdin is closed"));
    }
    Ok(())
}

/// Elsewhere the first read tells.
#[cfg(not(unix))]
pub fn check_readable() -> io::Result<()> {
    Ok(())
}

/// Lines from the keyboard: plain from pipes, files and a dumb terminal,
/// edited at a terminal.
#[derive(Debug)]
pub enum Keys<K> {
    /// Lines as they come, taken in order, one per turn (scripts).
    Plain(Framer<K>),
    /// Lines from the line editor (a person at a terminal).
    Edited(Edited<K>),
}

/// What the keyboard does for the signal keys typed in non-canonical mode.
#[derive(Debug, Clone, Copy)]
pub struct SignalKeys {
    /// Ctrl-C (the terminal's VINTR).
    pub interrupt: fn(),
    /// Ctrl-Z (the terminal's VSUSP).
    pub suspend: fn(),
}

/// The keyboard at a terminal: keys go through the line editor, whose
/// drawing `tty` shares with the console.
#[derive(Debug)]
pub struct Edited<K> {
    src: K,
    /// One read's bytes; each read is fed to the editor in the same poll,
    /// so a read abandoned in a race loses nothing.
    buf: Vec<u8>,
    tty: Rc<RefCell<Tty>>,
    signal_keys: SignalKeys,
    max_line: usize,
    /// The line last handed out.
    line: Vec<u8>,
    /// The session lines belong to now, and how many sessions there were.
    session: Option<u64>,
    sessions: u64,
    /// `EXIT` was entered and not yet acted on.
    exit: bool,
    /// Ctrl-D on an empty line, or the terminal hung up.
    ended: bool,
    /// A hidden line is being read; `secret` is the line once entered.
    reading_secret: bool,
    secret: Option<String>,
}

impl<K> Keys<K> {
    /// Plain lines from `src`.
    pub fn plain(src: K, max_line: usize) -> Keys<K> {
        Keys::Plain(Framer::new(src, max_line))
    }

    /// Edited lines from the terminal's bytes `src`.
    pub fn edited(
        src: K,
        max_line: usize,
        tty: Rc<RefCell<Tty>>,
        signal_keys: SignalKeys,
    ) -> Keys<K> {
        tty.borrow_mut().render();
        Keys::Edited(Edited {
            src,
            buf: vec![0; 4096],
            tty,
            signal_keys,
            max_line,
            line: Vec::new(),
            session: None,
            sessions: 0,
            exit: false,
            ended: false,
            reading_secret: false,
            secret: None,
        })
    }

    /// Whether a person types at a terminal: the keyboard is watched on
    /// every turn, and lines belong to sessions.
    pub fn is_edited(&self) -> bool {
        matches!(self, Keys::Edited(_))
    }

    /// The text of the line last returned by [`Keys::next`].
    pub fn line(&self) -> &[u8] {
        match self {
            Keys::Plain(framer) => framer.line(),
            Keys::Edited(edited) => &edited.line,
        }
    }

    /// The line last returned, with its `\n`, when it can go out as it came.
    pub fn line_with_newline(&self) -> Option<&[u8]> {
        match self {
            Keys::Plain(framer) => framer.line_with_newline(),
            Keys::Edited(_) => None,
        }
    }

    /// The longest line taken.
    pub fn max_line(&self) -> usize {
        match self {
            Keys::Plain(framer) => framer.max_line(),
            Keys::Edited(edited) => edited.max_line,
        }
    }

    /// The line last returned could not be sent: the peer has left. Plain
    /// input keeps it for the next session (a script's answers stay in
    /// order); at a terminal it belongs to the session that ended, so it is
    /// sent to no one, and said so.
    pub fn put_back(&mut self) {
        match self {
            Keys::Plain(framer) => framer.put_back(),
            Keys::Edited(edited) => edited.not_sent(),
        }
    }

    /// The line last returned could not be sent and is lost (plain input)
    /// or said not sent (at a terminal).
    pub fn not_sent(&mut self) {
        if let Keys::Edited(edited) = self {
            edited.not_sent();
        }
    }

    /// The line last returned was sent: at a terminal it now shows in the
    /// transcript, where it crossed the wire.
    pub fn sent(&mut self) {
        if let Keys::Edited(edited) = self {
            let line = String::from_utf8_lossy(&edited.line).into_owned();
            edited.tty.borrow_mut().sent(&line);
        }
    }

    /// A session began (its `connected` line is shown): lines begun from
    /// now on are for its peer.
    pub fn begin_session(&mut self) {
        if let Keys::Edited(edited) = self {
            edited.sessions += 1;
            edited.session = Some(edited.sessions);
            edited.tty.borrow_mut().editor.set_session(edited.session);
        }
    }

    /// The session ended (`why`, as in "the peer left"): lines waiting for
    /// their turn are sent to no one, and said so.
    pub fn end_session(&mut self, why: &str) {
        if let Keys::Edited(edited) = self {
            edited.session = None;
            let mut tty = edited.tty.borrow_mut();
            tty.editor.set_session(None);
            while let Some(line) = tty.editor.pop_waiting() {
                tty.status(&format!("not sent ({why}): {line}"));
            }
        }
    }
}

impl<K: AsyncRead + Unpin> Keys<K> {
    /// The next line for the local user's turn. Cancelling it loses nothing.
    ///
    /// At a terminal a line is shown in the transcript when it is taken,
    /// which is when it is sent; `EXIT` and Ctrl-D come before lines
    /// waiting; a line over the limit was already refused when entered.
    pub async fn next(&mut self) -> io::Result<Frame> {
        match self {
            Keys::Plain(framer) => framer.next().await,
            Keys::Edited(edited) => edited.next().await,
        }
    }

    /// Watches the keyboard while it is not the local user's turn; returns
    /// when the user leaves (`EXIT`, Ctrl-D). Lines entered meanwhile wait
    /// for their turn, on the screen. Plain input is never read here: a
    /// script's lines are answers, each waits for its turn.
    pub async fn watch(&mut self) -> io::Result<Ending> {
        match self {
            Keys::Plain(_) => future::pending().await,
            Keys::Edited(edited) => edited.watch().await,
        }
    }

    /// Returns once no answer can be given any more: plain input ended with
    /// no line left, or the user left (`EXIT`, Ctrl-D) at a terminal.
    pub async fn wait_for_end(&mut self) -> io::Result<()> {
        match self {
            Keys::Plain(framer) => framer.wait_for_end().await,
            Keys::Edited(edited) => edited.watch().await.map(drop),
        }
    }

    /// `work`, unless no answer can be given any more first (see
    /// [`Keys::wait_for_end`]): then `None`. A keyboard that fails is no
    /// end; its error comes at the next read.
    pub async fn unless_ended<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        let ended = async {
            match self.wait_for_end().await {
                Ok(()) => None,
                Err(_) => future::pending().await,
            }
        };
        future::or(async { Some(work.await) }, ended).await
    }

    /// `work`, unless the person leaves first (`EXIT`, Ctrl-D at a
    /// terminal; see [`Keys::watch`]): then `None`.
    pub async fn unless_left<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        let left = async {
            match self.watch().await {
                Ok(_) => None,
                Err(_) => future::pending().await,
            }
        };
        future::or(async { Some(work.await) }, left).await
    }

    /// Takes in what was typed so far without waiting, so that it counts as
    /// typed before whatever is shown next.
    pub async fn catch_up(&mut self) -> io::Result<()> {
        if let Keys::Edited(edited) = self {
            while !edited.ended {
                match future::poll_once(edited.read_keys()).await {
                    Some(result) => result?,
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Reads one line without showing it and without it entering the
    /// transcript, after `prompt` (for example `code: `): for a secret
    /// such as a private chat's code. `None` at the end of input.
    ///
    /// At a terminal the line editor shows only the prompt while the line
    /// is typed (its editing keys still work) and erases it after Enter;
    /// Ctrl-C and Ctrl-Z act as anywhere else. Plain input (a pipe, a
    /// file, `TERM=dumb`) gives its next line as it is, and the caller
    /// shows its own prompt: a cooked terminal echoes what is typed.
    pub async fn read_hidden(&mut self, prompt: &str) -> io::Result<Option<String>> {
        match self {
            Keys::Plain(framer) => loop {
                match framer.next().await? {
                    Frame::Line => return Ok(Some(String::from_utf8_lossy(framer.line()).into())),
                    Frame::TooLong => continue,
                    Frame::Eof => return Ok(None),
                }
            },
            Keys::Edited(edited) => {
                {
                    let mut tty = edited.tty.borrow_mut();
                    tty.editor.set_hidden(Some(prompt));
                    tty.render();
                }
                edited.reading_secret = true;
                let result = async {
                    loop {
                        if let Some(secret) = edited.secret.take() {
                            return Ok(Some(secret));
                        }
                        if edited.ended {
                            return Ok(None);
                        }
                        edited.read_keys().await?;
                    }
                }
                .await;
                edited.reading_secret = false;
                let mut tty = edited.tty.borrow_mut();
                tty.editor.set_hidden(None);
                tty.render();
                result
            }
        }
    }

    /// Reads one line after `prompt` on stderr, without showing it
    /// when stdin is a terminal: through the line editor's hidden mode, or with
    /// the terminal's echo off where smolchat does not edit lines (`TERM=dumb`).
    pub async fn read_secret(&mut self, prompt: &str) -> io::Result<String> {
        use std::io::Write;
        if self.is_edited() {
            return self
                .read_hidden(prompt)
                .await?
                .ok_or_else(|| io::Error::other("the keyboard ended before a code was typed"));
        }
        let mut stderr = io::stderr();
        let frame = {
            // Echo goes off before the prompt shows, so that nothing typed
            // after it is shown, and back on as soon as the line is read.
            let _echo = hidden::EchoOff::new();
            let _ = stderr.write_all(prompt.as_bytes()).and_then(|()| stderr.flush());
            self.next().await
        };
        let _ = stderr.write_all(b"\n");
        match frame? {
            Frame::Line if self.line().contains(&0x03) => {
                // Ctrl-C, which does not interrupt while the code is asked for.
                std::process::exit(130)
            }
            Frame::Line => Ok(String::from_utf8_lossy(self.line()).into_owned()),
            Frame::TooLong => Err(io::Error::other("the code is too long")),
            Frame::Eof => Err(io::Error::other("the keyboard ended before a code was typed")),
        }
    }
}

/// What the turn loop takes from the keyboard, as it is.
impl<K: AsyncRead + Unpin> Lines for Keys<K> {
    fn is_watched(&self) -> bool {
        self.is_edited()
    }

    async fn next(&mut self) -> io::Result<Frame> {
        Keys::next(self).await
    }

    async fn watch(&mut self) -> io::Result<Ending> {
        Keys::watch(self).await
    }

    fn line(&self) -> &[u8] {
        Keys::line(self)
    }

    fn line_with_newline(&self) -> Option<&[u8]> {
        Keys::line_with_newline(self)
    }

    fn max_line(&self) -> usize {
        Keys::max_line(self)
    }

    fn put_back(&mut self) {
        Keys::put_back(self)
    }

    fn not_sent(&mut self) {
        Keys::not_sent(self)
    }

    fn sent(&mut self) {
        Keys::sent(self)
    }
}

impl<K> Edited<K> {
    /// Says that the line last handed out was sent to no one.
    fn not_sent(&mut self) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.tty.borrow_mut().status(&format!("not sent (the peer left): {line}"));
    }
}

impl<K: AsyncRead + Unpin> Edited<K> {
    async fn next(&mut self) -> io::Result<Frame> {
        loop {
            if std::mem::take(&mut self.exit) {
                self.line = EXIT.to_vec();
                return Ok(Frame::Line);
            }
            if self.ended {
                return Ok(Frame::Eof);
            }
            // Shown in the transcript once it is sent (`Keys::sent`).
            let waiting = self.tty.borrow_mut().editor.pop_waiting();
            if let Some(text) = waiting {
                self.line = text.into_bytes();
                return Ok(Frame::Line);
            }
            self.read_keys().await?;
        }
    }

    async fn watch(&mut self) -> io::Result<Ending> {
        loop {
            if std::mem::take(&mut self.exit) {
                return Ok(Ending::Exit);
            }
            if self.ended {
                return Ok(Ending::KeyboardClosed);
            }
            self.read_keys().await?;
        }
    }

    /// Reads what the terminal has and applies it. The bytes are fed to the
    /// editor in the poll that returns them: cancelling this loses nothing.
    async fn read_keys(&mut self) -> io::Result<()> {
        let n = loop {
            match self.src.read(&mut self.buf).await {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => break result?,
            }
        };
        if n == 0 {
            // The terminal hung up.
            self.ended = true;
            return Ok(());
        }
        let mut events = Vec::new();
        self.tty.borrow_mut().editor.feed(&self.buf[..n], &mut events);
        for event in events {
            self.entered(event);
        }
        self.tty.borrow_mut().render();
        Ok(())
    }

    /// Acts on what the editor produced.
    fn entered(&mut self, event: Event) {
        let (text, owner, too_long) = match event {
            Event::Line { text, owner, too_long } => (text, owner, too_long),
            Event::Eof => return self.ended = true,
            Event::Interrupt => return (self.signal_keys.interrupt)(),
            Event::Suspend => return (self.signal_keys.suspend)(),
        };
        let mut tty = self.tty.borrow_mut();
        if self.reading_secret && self.secret.is_none() {
            self.secret = Some(text);
        } else if too_long {
            tty.status(&format!("line longer than {} bytes, not sent", self.max_line));
        } else if text.as_bytes() == EXIT {
            // Leaving acts at once, whoever's turn it is.
            tty.sent(&text);
            self.exit = true;
        } else if owner.is_some() && owner == self.session {
            tty.editor.push_waiting(text);
        } else if owner.is_some() {
            tty.status(&format!("not sent (the peer it was typed for left): {text}"));
        } else if self.session.is_none() && text.is_empty() {
            // An Enter with nobody to send to: nothing to say.
        } else if self.session.is_none() {
            tty.status(&format!("not sent (nobody is connected): {text}"));
        } else {
            tty.status(&format!("not sent (begun before the peer connected): {text}"));
        }
    }
}

#[cfg(unix)]
mod hidden {
    //! Terminal echo off while the code is typed.
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions, Termios};

    /// Echo (and Ctrl-C's signal, so that the settings are always restored)
    /// off until dropped; nothing when stdin is not a terminal.
    pub struct EchoOff(Option<Termios>);

    impl EchoOff {
        pub fn new() -> EchoOff {
            let stdin = std::io::stdin();
            let Ok(saved) = tcgetattr(&stdin) else { return EchoOff(None) };
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO | LocalModes::ISIG);
            match tcsetattr(&stdin, OptionalActions::Now, &quiet) {
                Ok(()) => EchoOff(Some(saved)),
                Err(_) => EchoOff(None),
            }
        }
    }

    impl Drop for EchoOff {
        fn drop(&mut self) {
            if let Some(saved) = &self.0 {
                let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, saved);
            }
        }
    }
}

#[cfg(not(unix))]
mod hidden {
    //! No echo control outside Unix yet: the code shows as it is typed.
    pub struct EchoOff;

    impl EchoOff {
        pub fn new() -> EchoOff {
            EchoOff
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terminal::editor::Editor;
    use crate::terminal::keys::SpecialChars;
    use crate::testing::TypedAhead;
    use futures_lite::io::AsyncWriteExt;
    use futures_lite::FutureExt;

    /// Runs `f`, failing the test if it takes more than a few seconds.
    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        smol::block_on(f.or(async {
            smol::Timer::after(std::time::Duration::from_secs(20)).await;
            panic!("no answer within the deadline");
        }))
    }

    /// What the editor drew, shared with the test.
    #[derive(Clone, Default)]
    struct Drawn(Rc<RefCell<Vec<u8>>>);

    impl io::Write for Drawn {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Drawn {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.borrow()).into_owned()
        }
    }

    fn edited() -> (Keys<TypedAhead>, piper::Writer, Drawn) {
        let (r, w) = piper::pipe(1024);
        let r = TypedAhead(r);
        let drawn = Drawn::default();
        let editor = Editor::new(100, 80, SpecialChars::default());
        let tty = Rc::new(RefCell::new(Tty::new(editor, Box::new(drawn.clone()), false)));
        let keys = Keys::edited(r, 100, tty, SignalKeys { interrupt: || {}, suspend: || {} });
        (keys, w, drawn)
    }

    #[test]
    fn a_hidden_line_is_never_drawn() {
        let (mut keys, mut w, drawn) = edited();
        block_on(w.write_all(b"7-purple-sausages\r")).unwrap();
        let code = block_on(keys.read_hidden("code: ")).unwrap();
        assert_eq!(code.as_deref(), Some("7-purple-sausages"));
        let text = drawn.text();
        assert!(text.contains("code: ") && !text.contains("purple"), "{text:?}");
        // Back to normal lines, which are drawn.
        keys.begin_session();
        block_on(w.write_all(b"hi\r")).unwrap();
        assert_eq!(block_on(keys.next()).unwrap(), Frame::Line);
        assert_eq!(keys.line(), b"hi");
        assert!(drawn.text().contains("you> hi"));
    }

    #[test]
    fn a_hidden_line_ends_with_the_input() {
        let (mut keys, mut w, _) = edited();
        block_on(w.write_all(b"\x04")).unwrap();
        assert_eq!(block_on(keys.read_hidden("code: ")).unwrap(), None);
        let (r, mut w) = piper::pipe(64);
        let mut plain = Keys::plain(r, 100);
        block_on(w.write_all(b"code\n")).unwrap();
        drop(w);
        assert_eq!(block_on(plain.read_hidden("code: ")).unwrap().as_deref(), Some("code"));
        assert_eq!(block_on(plain.read_hidden("code: ")).unwrap(), None);
    }

    #[test]
    fn lines_for_no_session_are_not_sent_and_said_so() {
        let (mut keys, mut w, drawn) = edited();
        block_on(w.write_all(b"anyone?\rfor you")).unwrap();
        block_on(keys.catch_up()).unwrap();
        assert!(drawn.text().contains("smolchat: not sent (nobody is connected): anyone?"));
        keys.begin_session();
        block_on(w.write_all(b"\rfresh\r")).unwrap();
        assert_eq!(block_on(keys.next()).unwrap(), Frame::Line);
        assert_eq!(keys.line(), b"fresh");
        assert!(drawn.text().contains("not sent (begun before the peer connected): for you"));
        // Waiting when the session ends: not sent either.
        block_on(w.write_all(b"late\r")).unwrap();
        block_on(keys.catch_up()).unwrap();
        keys.end_session("the peer left");
        assert!(drawn.text().contains("not sent (the peer left): late"));
    }
}
