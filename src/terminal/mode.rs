//! The terminal's mode and the signals around it (Unix): non-canonical,
//! no-echo input while smolchat edits the line, the user's settings given
//! back on every way out and around a suspension, and the signals that end
//! a chat, suspend it or resize its window.

use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, OwnedFd};

use async_signal::Signal;
use futures_lite::StreamExt;
use rustix::termios::{
    tcgetattr, tcgetwinsize, tcsetattr, InputModes, LocalModes, OptionalActions, SpecialCodeIndex,
    Termios,
};

use crate::terminal::keys::SpecialChars;
use crate::terminal::Asked;

/// Turn bracketed paste on (a paste arrives between markers) and off.
const PASTE_ON: &[u8] = b"\x1b[?2004h";
const PASTE_OFF: &[u8] = b"\x1b[?2004l";

/// The terminal in smolchat's mode; dropping it gives back the user's
/// settings and discards whatever was typed and not read, so that nothing
/// reaches the shell.
#[derive(Debug)]
pub struct RawMode {
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
    pub fn enter() -> Option<RawMode> {
        if !io::stdin().is_terminal() || !io::stderr().is_terminal() {
            return None;
        }
        let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
        let saved = tcgetattr(&fd).ok()?;
        let mode = RawMode { raw: raw_from(&saved), fd, saved };
        mode.resume().ok()?;
        Some(mode)
    }

    /// The terminal's own editing and signal keys.
    pub fn special_chars(&self) -> SpecialChars {
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

    /// Stops smolchat until it is continued (`fg`): the user's settings go
    /// back at once, keeping what was typed, and after `fg` the terminal is
    /// taken again, keeping what the user changed with `stty` meanwhile as
    /// the settings to give back.
    pub fn stop(&mut self) {
        let _ = io::stderr().write_all(PASTE_OFF);
        let _ = tcsetattr(&self.fd, OptionalActions::Now, &self.saved);
        // SIGSTOP, because the handler for SIGTSTP is smolchat's own.
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
        if let Ok(now) = tcgetattr(&self.fd) {
            self.raw = raw_from(&now);
            self.saved = now;
        }
        let _ = self.resume();
    }

    /// Takes the terminal.
    fn resume(&self) -> io::Result<()> {
        tcsetattr(&self.fd, OptionalActions::Now, &self.raw)?;
        io::stderr().write_all(PASTE_ON)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = io::stderr().write_all(PASTE_OFF);
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

/// The terminal's width in columns (stderr's, where the editor draws).
pub fn width() -> usize {
    match tcgetwinsize(io::stderr()) {
        Ok(size) if size.ws_col > 0 => usize::from(size.ws_col),
        _ => 80,
    }
}

/// The signals smolchat catches, as what they ask for.
#[derive(Debug)]
pub struct Signals(async_signal::Signals);

impl Signals {
    /// Catches SIGINT, SIGTERM and SIGHUP; at a `terminal` smolchat holds,
    /// also SIGTSTP and SIGWINCH.
    pub fn catch(terminal: bool) -> io::Result<Signals> {
        // The three that end a chat first.
        let all = [Signal::Int, Signal::Term, Signal::Hup, Signal::Tstp, Signal::Winch];
        let signals = &all[..if terminal { 5 } else { 3 }];
        async_signal::Signals::new(signals.iter().copied()).map(Signals)
    }

    /// The next signal.
    pub async fn next(&mut self) -> Asked {
        match self.0.next().await {
            Some(Ok(Signal::Tstp)) => Asked::Suspend,
            Some(Ok(Signal::Winch)) => Asked::Resize,
            Some(Ok(signal)) => Asked::End(signal as i32),
            // The notifier pipe failed: no signal can be told any more.
            _ => std::future::pending().await,
        }
    }
}
