//! Where smolchat holds no terminal and catches no signals (Windows): the
//! Unix mode's names, none of which can be made.

use std::io;

use crate::terminal::keys::SpecialChars;
use crate::terminal::Asked;

/// No terminal is held: the console keeps its own line editing.
#[derive(Debug)]
pub enum RawMode {}

impl RawMode {
    /// Never.
    pub fn enter() -> Option<RawMode> {
        None
    }

    /// Never called.
    pub fn special_chars(&self) -> SpecialChars {
        match *self {}
    }

    /// Never called.
    pub fn stop(&mut self) {
        match *self {}
    }
}

/// No terminal to measure.
pub fn width() -> usize {
    80
}

/// No signals are caught: Ctrl-C is left to the system's own handler.
#[derive(Debug)]
pub enum Signals {}

impl Signals {
    /// Never.
    pub fn catch(_terminal: bool) -> io::Result<Signals> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Never called.
    pub async fn next(&mut self) -> Asked {
        match *self {}
    }
}
