//! The terminal's mode and the signals around it (Unix): non-canonical,
//! no-echo input while smolchat edits the line, the user's settings given
//! back on every way out and around a suspension.

use std::cell::RefCell;
use std::io::{self, IsTerminal};
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use async_signal::{Signal, Signals};
use futures_lite::StreamExt;
use rustix::process::{getpid, kill_process, Signal as Raise};
use rustix::termios::{
    tcgetattr, tcgetwinsize, tcsetattr, InputModes, LocalModes, OptionalActions, SpecialCodeIndex,
    Termios,
};

use crate::terminal::console::Tty;
use crate::terminal::editor::Editor;
use crate::terminal::keyboard::SignalKeys;
use crate::terminal::keys::SpecialChars;

/// Turn bracketed paste on (a paste arrives between markers) and off.
const PASTE_ON: &[u8] = b"\x1b[?2004h";
const PASTE_OFF: &[u8] = b"\x1b[?2004l";

/// The terminal in smolchat's mode; dropping it gives back the user's
/// settings and discards whatever was typed and not read, so that nothing
/// reaches the shell.
#[derive(Debug)]
struct RawMode {
    /// A handle on the terminal (stdin), for its settings.
    fd: OwnedFd,
    /// The user's settings, as found.
    saved: Termios,
    /// smolchat's settings.
    raw: Termios,
}

impl RawMode {
    /// Takes the terminal on stdin when stdin and stderr are terminals;
    /// `None` when they are not, or the terminal refuses.
    fn enter() -> Option<RawMode> {
        if !io::stdin().is_terminal() || !io::stderr().is_terminal() {
            return None;
        }
        let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
        let saved = tcgetattr(&fd).ok()?;
        let raw = raw_from(&saved);
        let mode = RawMode { fd, saved, raw };
        mode.resume().ok()?;
        Some(mode)
    }

    /// The terminal's own editing and signal keys.
    fn special_chars(&self) -> SpecialChars {
        let cc = &self.saved.special_codes;
        SpecialChars {
            erase: cc[SpecialCodeIndex::VERASE],
            kill: cc[SpecialCodeIndex::VKILL],
            word_erase: cc[SpecialCodeIndex::VWERASE],
            interrupt: cc[SpecialCodeIndex::VINTR],
            suspend: cc[SpecialCodeIndex::VSUSP],
            eof: cc[SpecialCodeIndex::VEOF],
        }
    }

    /// Gives the user's settings back for a while (before a suspension):
    /// at once, keeping what was typed.
    fn suspend(&self) {
        let _ = write_stderr(PASTE_OFF);
        let _ = tcsetattr(&self.fd, OptionalActions::Now, &self.saved);
    }

    /// Takes the terminal again after `fg`, keeping what the user changed
    /// with `stty` meanwhile as the settings to give back.
    fn resume_after_stop(&mut self) -> io::Result<()> {
        if let Ok(now) = tcgetattr(&self.fd) {
            self.raw = raw_from(&now);
            self.saved = now;
        }
        self.resume()
    }

    /// Takes the terminal.
    fn resume(&self) -> io::Result<()> {
        tcsetattr(&self.fd, OptionalActions::Now, &self.raw)?;
        write_stderr(PASTE_ON)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = write_stderr(PASTE_OFF);
        // Flush: input typed ahead and not read is thrown away, not left
        // for the shell to run.
        let _ = tcsetattr(&self.fd, OptionalActions::Flush, &self.saved);
    }
}

/// smolchat's settings made from the user's: keys one at a time, not
/// echoed; ^C, ^Z and ^V come as bytes; Enter as `\r`, so that a pasted
/// `\r\n` is one line end. Output keeps its newline translation.
fn raw_from(saved: &Termios) -> Termios {
    let mut raw = saved.clone();
    raw.local_modes &=
        !(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG | LocalModes::IEXTEN);
    raw.input_modes &= !InputModes::ICRNL;
    raw.special_codes[SpecialCodeIndex::VMIN] = 1;
    raw.special_codes[SpecialCodeIndex::VTIME] = 0;
    raw
}

fn write_stderr(bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    io::stderr().write_all(bytes)
}

/// The terminal's width in columns (stderr's, where the editor draws).
fn width() -> usize {
    match tcgetwinsize(io::stderr()) {
        Ok(size) if size.ws_col > 0 => usize::from(size.ws_col),
        _ => 80,
    }
}

/// The signals smolchat handles while it holds the terminal.
#[derive(Debug)]
struct TermSignals(Signals);

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// End now, with this signal's number (exit 128 + n).
    End(i32),
    /// Stop until `fg`.
    Suspend,
    /// The window changed size.
    Resize,
}

impl TermSignals {
    /// Catches SIGINT, SIGTERM, SIGHUP, SIGTSTP and SIGWINCH.
    fn catch() -> io::Result<TermSignals> {
        Signals::new([Signal::Int, Signal::Term, Signal::Hup, Signal::Tstp, Signal::Winch])
            .map(TermSignals)
    }

    /// The next signal.
    async fn next(&mut self) -> Asked {
        match self.0.next().await {
            Some(Ok(Signal::Tstp)) => Asked::Suspend,
            Some(Ok(Signal::Winch)) => Asked::Resize,
            Some(Ok(signal)) => Asked::End(signal as i32),
            // The notifier pipe failed: no signal can be told any more.
            _ => std::future::pending().await,
        }
    }
}

/// Stops the process until it is continued (`fg`); SIGSTOP, because the
/// handler for SIGTSTP is smolchat's own.
fn stop() {
    let _ = kill_process(getpid(), Raise::STOP);
}

/// Sends SIGINT (Ctrl-C) or SIGTSTP (Ctrl-Z) to this process, so that a key
/// typed in non-canonical mode acts as the same key in a cooked terminal.
fn raise_interrupt() {
    let _ = kill_process(getpid(), Raise::INT);
}

/// See [`raise_interrupt`].
fn raise_suspend() {
    let _ = kill_process(getpid(), Raise::TSTP);
}

/// The terminal while smolchat holds it for the line editor: its mode, the
/// signals caught, and the editor's drawing to redraw after them. `main`
/// drops it last, which gives the terminal back.
#[derive(Debug)]
pub struct Held {
    raw: RawMode,
    signals: TermSignals,
    tty: Rc<RefCell<Tty>>,
}

impl Held {
    /// Takes the terminal for a line editor of lines up to `max_line`
    /// bytes (status lines coloured with `colour`); `None` when stdin and
    /// stderr are not a terminal that allows it.
    pub fn hold(max_line: usize, colour: bool) -> Option<(Rc<RefCell<Tty>>, Held)> {
        // The mode first: signals caught and never given back would leave
        // Ctrl-C without effect if the mode could not be set.
        let raw = RawMode::enter()?;
        let signals = TermSignals::catch().ok()?;
        let editor = Editor::new(max_line, width(), raw.special_chars());
        let tty = Rc::new(RefCell::new(Tty::new(editor, Box::new(io::stderr()), colour)));
        Some((tty.clone(), Held { raw, signals, tty }))
    }

    /// What Ctrl-C and Ctrl-Z do, typed as bytes in this mode.
    pub fn signal_keys(&self) -> SignalKeys {
        SignalKeys { interrupt: raise_interrupt, suspend: raise_suspend }
    }

    /// Handles the signals until one ends the program, and returns its
    /// number: suspends and redraws for Ctrl-Z, redraws for a new size.
    pub async fn ending_signal(&mut self) -> i32 {
        loop {
            match self.signals.next().await {
                Asked::End(n) => return n,
                Asked::Suspend => {
                    self.tty.borrow_mut().clear();
                    self.raw.suspend();
                    stop();
                    // Continued (`fg`): take the terminal again.
                    let _ = self.raw.resume_after_stop();
                    let mut tty = self.tty.borrow_mut();
                    tty.editor.set_special_chars(self.raw.special_chars());
                    tty.editor.resize(width());
                    tty.render();
                }
                Asked::Resize => {
                    let mut tty = self.tty.borrow_mut();
                    tty.editor.resize(width());
                    tty.clear();
                    tty.render();
                }
            }
        }
    }
}
