//! Where smolchat holds no terminal and catches no signals (Windows): the
//! Unix mode's names, none of which can be made.

use std::io;

use crate::terminal::keys::SpecialChars;

/// No terminal is held.
#[derive(Debug)]
pub enum RawMode {}

impl RawMode {
    /// Never: the console keeps its own line editing.
    pub fn enter() -> Option<RawMode> {
        None
    }

    /// See the Unix mode's.
    pub fn special_chars(&self) -> SpecialChars {
        match *self {}
    }

    /// See the Unix mode's.
    pub fn stop(&mut self) {
        match *self {}
    }
}

/// No terminal to measure.
pub fn width() -> usize {
    80
}

/// No signals are caught.
#[derive(Debug)]
pub enum Signals {}

/// What a signal asks for (see the Unix mode's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// End, with this signal's number.
    End(i32),
    /// Stop until `fg`.
    Suspend,
    /// The window changed size.
    Resize,
}

/// The number of SIGINT, as Ctrl-C counts where it is a key.
pub const INTERRUPT: i32 = 2;

impl Signals {
    /// Never: Ctrl-C is left to the system's own handler.
    pub fn catch(_terminal: bool) -> io::Result<Signals> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// See the Unix mode's.
    pub async fn next(&mut self) -> Asked {
        match *self {}
    }
}
