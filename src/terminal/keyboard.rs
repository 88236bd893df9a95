//! The keyboard: stdin as one async stream for the whole program's life,
//! and what a person or a script does with it: lines for the turn loop,
//! framed plainly from pipes and files or through the line editor at a
//! terminal, and leaving (`EXIT`, Ctrl-D, Ctrl-C, a signal).

use std::cell::RefCell;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use blocking::Unblock;
use futures_lite::future;
use futures_lite::io::{AssertAsync, AsyncRead, AsyncReadExt};

use crate::terminal::console::{ConsoleStyle, Tty};
use crate::terminal::editor::{Complete, Editor, Event};
use crate::terminal::mode::{width, RawMode, Signals};
use crate::terminal::{Asked, INTERRUPT};
use crate::turn::{Ending, Fate, Input, Lines};
use crate::wire::framer::{Frame, Framer};

/// Stdin as an async stream, opened once for the whole program.
///
/// A terminal or a pipe is read on a thread of its own (`blocking::Unblock`),
/// so that waiting for a line never stops the connection from being watched.
/// A regular file (`smolchat client h 2000 <questions.txt`) is read in place:
/// a read from it never blocks, and the hand-off to a thread and back would
/// cost context switches on every message (docs/footprint.md).
#[derive(Debug)]
pub enum Stdin {
    /// Stdin is a regular file.
    File(AssertAsync<File>),
    /// Stdin is a terminal, a pipe or a socket.
    Live(Unblock<StickyStdin>),
}

impl Stdin {
    /// Opens stdin, reading up to `read_ahead` bytes ahead when it is live.
    pub fn open(read_ahead: usize) -> Stdin {
        match stdin_as_file() {
            Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => {
                Stdin::File(AssertAsync::new(file))
            }
            _ => Stdin::Live(Unblock::with_capacity(read_ahead, StickyStdin::default())),
        }
    }
}

/// A second handle to stdin, to look at and perhaps read in place.
fn stdin_as_file() -> io::Result<File> {
    #[cfg(unix)]
    let handle = std::os::fd::AsFd::as_fd(&io::stdin()).try_clone_to_owned();
    #[cfg(windows)]
    let handle = std::os::windows::io::AsHandle::as_handle(&io::stdin()).try_clone_to_owned();
    handle.map(File::from)
}

impl AsyncRead for Stdin {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stdin::File(file) => Pin::new(file).poll_read(cx, buf),
            Stdin::Live(live) => Pin::new(live).poll_read(cx, buf),
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
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let file = match stdin_as_file() {
        Ok(file) => file,
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

/// The keyboard: lines for the turn loop, plain from pipes, files and a
/// dumb terminal or edited at a terminal, and how the person leaves.
#[derive(Debug)]
pub struct Keyboard<K> {
    typing: Typing<K>,
    /// The signals that end a chat, when they are caught.
    signals: Option<Signals>,
    /// How the person left: for good (the end of input, Ctrl-C, a signal;
    /// the first counts), or by `EXIT`, which acts once.
    left: Option<Ending>,
    /// The line last given with its `\n`, where the framer does not hold
    /// it so: an edited line, or one that came with `\r\n` or without an
    /// end.
    line: Vec<u8>,
}

/// Where the lines come from.
#[derive(Debug)]
enum Typing<K> {
    /// Lines as they come, taken in order, one per turn (scripts).
    Plain(Framer<K>),
    /// Lines from the line editor (a person at a terminal).
    Edited(Edited<K>),
}

/// The keyboard at a terminal: keys go through the line editor, whose
/// drawing `tty` shares with the console.
#[derive(Debug)]
struct Edited<K> {
    src: K,
    /// One read's bytes; each read is fed to the editor in the same poll,
    /// so a read abandoned in a race loses nothing.
    buf: Vec<u8>,
    tty: Rc<RefCell<Tty>>,
    /// The terminal in smolchat's mode, given back when the keyboard goes
    /// (none in tests).
    mode: Option<RawMode>,
    /// The line asked for, once entered.
    asked: Option<String>,
}

/// What plain input is read for while the keyboard waits for the person.
#[derive(Clone, Copy)]
enum Plain {
    /// Nothing: a script's lines are answers, each waits for its turn.
    Unread,
    /// The end of input with no line left.
    End,
    /// The next line.
    Line,
}

impl Keyboard<Stdin> {
    /// The program's keyboard: stdin, through the line editor when `style`
    /// says so and the terminal lets smolchat hold it, the editor's drawing
    /// shared with the console (returned too); catching the signals that
    /// end a chat when `catch`, as always at a terminal held.
    pub fn open(
        read_ahead: usize,
        max_line: usize,
        style: &ConsoleStyle,
        catch: bool,
    ) -> (Keyboard<Stdin>, Option<Rc<RefCell<Tty>>>) {
        let stdin = Stdin::open(read_ahead);
        let mode = if style.edit { RawMode::enter() } else { None };
        let signals = match catch || mode.is_some() {
            true => Signals::catch(mode.is_some()).ok(),
            false => None,
        };
        // Caught by no one, SIGTERM would leave the terminal in smolchat's
        // mode: no line editor without its signals.
        let mut keyboard = match mode.filter(|_| signals.is_some()) {
            Some(mode) => {
                let editor = Editor::new(max_line, width(), mode.special_chars());
                let tty = Tty::new(editor, Box::new(io::stderr()), style.status_colour);
                Keyboard::edited(stdin, Rc::new(RefCell::new(tty)), Some(mode))
            }
            None => Keyboard::plain(stdin, max_line),
        };
        keyboard.signals = signals;
        let tty = match &keyboard.typing {
            Typing::Edited(edited) => Some(edited.tty.clone()),
            Typing::Plain(_) => None,
        };
        (keyboard, tty)
    }
}

impl<K> Keyboard<K> {
    /// Plain lines from `src`, of up to `max_line` bytes.
    pub fn plain(src: K, max_line: usize) -> Keyboard<K> {
        let typing = Typing::Plain(Framer::new(src, max_line));
        Keyboard { typing, signals: None, left: None, line: Vec::new() }
    }

    /// Edited lines from the terminal's bytes `src`, drawn through `tty`,
    /// with the terminal held in `mode`.
    pub fn edited(src: K, tty: Rc<RefCell<Tty>>, mode: Option<RawMode>) -> Keyboard<K> {
        tty.borrow_mut().render();
        let edited = Edited { src, buf: vec![0; 4096], tty, mode, asked: None };
        Keyboard { typing: Typing::Edited(edited), signals: None, left: None, line: Vec::new() }
    }

    /// Whether signals are caught: then the person may leave by one.
    pub fn catches_signals(&self) -> bool {
        self.signals.is_some()
    }

    /// The signal the person left by (Ctrl-C is SIGINT's), if they did: the
    /// program then ends with 128 + it.
    pub fn signalled(&self) -> Option<i32> {
        match self.left {
            Some(Ending::Signal(n)) => Some(n),
            _ => None,
        }
    }

    /// A session began (its `connected` line is shown): at a terminal,
    /// lines begun from now on are for its peer.
    pub fn begin_session(&mut self) {
        if let Typing::Edited(edited) = &mut self.typing {
            let mut tty = edited.tty.borrow_mut();
            tty.editor.begin_session();
            // The prompt now says that a line typed waits for its turn.
            tty.render();
        }
    }

    /// The session ended (`why`, as in "the peer left"): lines waiting for
    /// their turn are sent to no one, and said so.
    pub fn end_session(&mut self, why: &str) {
        if let Typing::Edited(edited) = &mut self.typing {
            let mut tty = edited.tty.borrow_mut();
            for line in tty.editor.end_session() {
                tty.status(&format!("not sent ({why}): {line}"));
            }
            tty.render();
        }
    }

    /// How the person left, if they did; `EXIT` only once.
    fn leaving(&mut self) -> Option<Ending> {
        let ending = self.left?;
        if ending == Ending::Exit {
            self.left = None;
        }
        Some(ending)
    }
}

/// Takes note that the person left `how`: the first way for good counts,
/// and replaces an `EXIT` not yet acted on.
fn leave(left: &mut Option<Ending>, how: Ending) {
    if matches!(left, None | Some(Ending::Exit)) {
        *left = Some(how);
    }
}

impl<K: AsyncRead + Unpin> Keyboard<K> {
    /// Waits for the person: keys typed at a terminal (applied to the
    /// editor), a plain line or end when `plain` asks for one (returned), or
    /// a signal. Cancelling it loses nothing.
    async fn act(&mut self, plain: Plain) -> io::Result<Option<Input>> {
        let Keyboard { typing, signals, left, line } = self;
        let typed = async {
            Ok(match typing {
                Typing::Edited(edited) => edited.read_keys(left).await.map(|()| None),
                Typing::Plain(framer) => match plain {
                    Plain::Unread => future::pending().await,
                    Plain::End => framer
                        .wait_for_end()
                        .await
                        .map(|()| Some(Input::Left(Ending::KeyboardClosed))),
                    Plain::Line => framer.next().await.map(|frame| match frame {
                        Frame::Line => {
                            // A plain `\n` line is lent as the framer holds
                            // it; any other is made here.
                            if framer.line_with_newline().is_none() {
                                line.clear();
                                line.extend_from_slice(framer.line());
                                line.push(b'\n');
                            }
                            Some(Input::Line)
                        }
                        Frame::TooLong => Some(Input::TooLong(framer.max_line())),
                        Frame::Eof => Some(Input::Left(Ending::KeyboardClosed)),
                    }),
                },
            })
        };
        let signalled = async {
            Err(match signals {
                Some(signals) => signals.next().await,
                None => future::pending().await,
            })
        };
        let acted = future::or(typed, signalled).await;
        match (acted, typing) {
            (Ok(typed), _) => typed,
            (Err(Asked::End(n)), _) => {
                leave(left, Ending::Signal(n));
                Ok(None)
            }
            (Err(Asked::Suspend), Typing::Edited(edited)) => {
                edited.suspend();
                Ok(None)
            }
            (Err(Asked::Resize), Typing::Edited(edited)) => {
                let mut tty = edited.tty.borrow_mut();
                tty.editor.resize(width());
                tty.clear();
                tty.render();
                Ok(None)
            }
            // Only a terminal held asks for these.
            (Err(_), Typing::Plain(_)) => Ok(None),
        }
    }

    /// `work`, unless no answer can be given any more first (the end of
    /// input with no line left, or the person left): then `None`. A
    /// keyboard that fails is no end; its error comes at the next read.
    pub async fn unless_ended<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        future::or(async { Some(work.await) }, async {
            self.gone(Plain::End).await;
            None
        })
        .await
    }

    /// `work`, unless the person leaves first (`EXIT`, Ctrl-D at a terminal,
    /// Ctrl-C, a signal; a script's lines are not read): then `None`.
    pub async fn unless_left<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        future::or(async { Some(work.await) }, async {
            self.gone(Plain::Unread).await;
            None
        })
        .await
    }

    /// Returns once the person leaves, or what `plain` reads for comes;
    /// never when the keyboard fails. Not generic, so that it is compiled
    /// once for every `work` above.
    async fn gone(&mut self, plain: Plain) {
        while self.leaving().is_none() {
            match self.act(plain).await {
                Ok(Some(_)) => break,
                Ok(None) => {}
                Err(_) => future::pending().await,
            }
        }
    }

    /// Takes in what was typed so far without waiting, so that it counts as
    /// typed before whatever is shown next.
    pub async fn catch_up(&mut self) -> io::Result<()> {
        if let Typing::Edited(edited) = &mut self.typing {
            while self.left.is_none_or(|left| left == Ending::Exit) {
                match future::poll_once(edited.read_keys(&mut self.left)).await {
                    Some(read) => read?,
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Reads one line after `prompt`, shown as it is typed, that is never
    /// sent nor kept for Up and Down: a private chat's code.
    ///
    /// At a terminal the line editor puts aside the line being typed, edits
    /// this one with its usual keys and Tab (`complete`), and leaves
    /// `PROMPT LINE` in the transcript after Enter; where smolchat does not
    /// edit lines (`TERM=dumb`), the prompt goes to stderr and the
    /// terminal's own echo shows the line.
    pub async fn ask(&mut self, prompt: &'static str, complete: Complete) -> io::Result<String> {
        let ended = || io::Error::other("the keyboard ended before a code was typed");
        if let Typing::Edited(edited) = &mut self.typing {
            edited.ask(Some((prompt, complete)));
            let read = loop {
                if let Typing::Edited(Edited { asked: Some(_), .. }) = &self.typing {
                    break Ok(());
                }
                if self.left.is_some_and(|left| left != Ending::Exit) {
                    break Err(ended());
                }
                if let Err(e) = self.act(Plain::Unread).await {
                    break Err(e);
                }
            };
            let Typing::Edited(edited) = &mut self.typing else { return Err(ended()) };
            edited.ask(None);
            read?;
            let line = edited.asked.take().unwrap_or_default();
            edited.tty.borrow_mut().above(&[prompt, &line]);
            return Ok(line);
        }
        let mut stderr = io::stderr();
        let _ = stderr.write_all(prompt.as_bytes()).and_then(|()| stderr.flush());
        let input = self.next().await;
        let line = self.line();
        match input? {
            Input::Line => Ok(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned()),
            Input::TooLong(_) => Err(io::Error::other("the code is too long")),
            Input::Left(_) => Err(ended()),
        }
    }
}

/// The turn loop's keyboard. At a terminal a line is shown in the
/// transcript when it is sent; `EXIT`, Ctrl-D and Ctrl-C come before lines
/// waiting; a line over the limit was already refused when entered.
impl<K: AsyncRead + Unpin> Lines for Keyboard<K> {
    async fn next(&mut self) -> io::Result<Input> {
        loop {
            if let Some(ending) = self.leaving() {
                return Ok(Input::Left(ending));
            }
            if let Typing::Edited(edited) = &mut self.typing {
                let mut tty = edited.tty.borrow_mut();
                if let Some(text) = tty.editor.take_turn() {
                    self.line = text.into_bytes();
                    self.line.push(b'\n');
                    return Ok(Input::Line);
                }
                // No line waits: the prompt says that one entered now goes.
                tty.render();
            }
            if let Some(input) = self.act(Plain::Line).await? {
                return Ok(input);
            }
        }
    }

    fn line(&self) -> &[u8] {
        match &self.typing {
            Typing::Plain(framer) => framer.line_with_newline().unwrap_or(&self.line),
            Typing::Edited(_) => &self.line,
        }
    }

    async fn left(&mut self) -> io::Result<Ending> {
        loop {
            if let Some(ending) = self.leaving() {
                return Ok(ending);
            }
            self.act(Plain::Unread).await?;
        }
    }

    fn fate(&mut self, fate: Fate) {
        let Typing::Edited(edited) = &mut self.typing else {
            // A script's answers stay in order, for whoever comes next.
            if let (Typing::Plain(framer), Fate::Kept) = (&mut self.typing, fate) {
                framer.put_back();
            }
            return;
        };
        let text = String::from_utf8_lossy(&self.line[..self.line.len() - 1]);
        let mut tty = edited.tty.borrow_mut();
        match fate {
            Fate::Sent => tty.sent(&text),
            // At a terminal a line belongs to the session it was typed for.
            Fate::Kept | Fate::Lost => tty.status(&format!("not sent (the peer left): {text}")),
        }
    }
}

impl<K: AsyncRead + Unpin> Edited<K> {
    /// Reads what the terminal has and applies it. The bytes are fed to the
    /// editor in the poll that returns them: cancelling this loses nothing.
    async fn read_keys(&mut self, left: &mut Option<Ending>) -> io::Result<()> {
        let n = loop {
            match self.src.read(&mut self.buf).await {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => break result?,
            }
        };
        if n == 0 {
            // The terminal hung up.
            leave(left, Ending::KeyboardClosed);
            return Ok(());
        }
        let mut events = Vec::new();
        self.tty.borrow_mut().editor.feed(&self.buf[..n], &mut events);
        for event in events {
            match event {
                Event::Say(status) => self.tty.borrow_mut().status(&status),
                Event::Exit => {
                    // Leaving acts at once, whoever's turn it is.
                    self.tty.borrow_mut().sent("EXIT");
                    leave(left, Ending::Exit);
                }
                Event::Asked(text) => self.asked = Some(text),
                Event::Eof => leave(left, Ending::KeyboardClosed),
                Event::Interrupt => leave(left, Ending::Signal(INTERRUPT)),
                Event::Suspend => self.suspend(),
            }
        }
        self.tty.borrow_mut().render();
        Ok(())
    }
}

impl<K> Edited<K> {
    /// Ctrl-Z: the terminal goes back to the user while smolchat is
    /// stopped, and is drawn again after `fg`.
    fn suspend(&mut self) {
        let Some(mode) = &mut self.mode else { return };
        let mut tty = self.tty.borrow_mut();
        tty.clear();
        mode.stop();
        tty.editor.set_special_chars(mode.special_chars());
        tty.editor.resize(width());
        tty.render();
    }

    /// Asks for a line (see [`Editor::ask`]), or goes back to normal lines.
    fn ask(&mut self, asked: Option<(&'static str, Complete)>) {
        let mut tty = self.tty.borrow_mut();
        tty.editor.ask(asked);
        tty.render();
    }
}

#[cfg(test)]
mod tests;
