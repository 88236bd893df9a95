//! smolchat: a two-person, turn-based text chat over TCP.
//!
//! The binary is a thin front end; these modules are the whole program, so
//! that tests and examples drive the same code.

// Denied, not forbidden: the one Windows call std lacks (a console's mode,
// for colour) is allowed in terminal::windows alone.
#![deny(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

pub mod allow;
pub mod cli;
#[cfg(feature = "private")]
pub mod private;
pub mod relay;
pub mod roles;
pub mod terminal;
pub mod turn;
pub mod wire;

#[cfg(test)]
mod testing;
