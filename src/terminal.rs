//! The terminal side: what a person sees and types. The key decoder, the
//! line editor, the terminal's mode and signals, the keyboard, the console
//! (prompt, labels, status lines) and the escaping of peer text on its way
//! to the screen.
//!
//! This room may use the turn loop's words (it implements the turn loop's
//! [`Lines`](crate::turn::Lines) and [`Screen`](crate::turn::Screen)) and
//! the framer, for plain lines. Nothing below it knows it is here: the turn
//! loop, the wire and the relay never touch a terminal; the roles and the
//! private chats above it take the keyboard as it is
//! ([`keyboard::Keyboard`]),
//! to ask for a code and to watch a person leave.

pub mod console;
pub mod editor;
pub mod escape;
pub mod keyboard;
pub mod keys;
#[cfg(unix)]
pub mod mode;
#[cfg(not(unix))]
#[path = "terminal/mode/none.rs"]
pub mod mode;
#[cfg(windows)]
pub mod windows;

/// What a signal asks for, where signals are caught (see [`mode::Signals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// End, with this signal's number (exit 128 + n).
    End(i32),
    /// Stop until `fg`.
    Suspend,
    /// The window changed size.
    Resize,
}

/// The number of SIGINT, which Ctrl-C stands for wherever it is a key.
pub const INTERRUPT: i32 = 2;
