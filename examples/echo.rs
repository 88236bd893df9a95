//! An echo peer: a smolchat server that answers every message with the same
//! text, built on smolchat's own framer, connection and session (`roles::talk`).
//!
//! Start it, then chat with it from a second terminal:
//!
//! ```text
//! cargo run --example echo -- 2000
//! cargo run -- client 127.0.0.1 2000
//! ```

use std::io;
use std::net::Ipv4Addr;
use std::process::ExitCode;

use smolchat::roles;
use smolchat::terminal::console::status;
use smolchat::terminal::escape::escape;
use smolchat::terminal::keyboard::Keyboard;
use smolchat::turn::{Failure, Role, Screen, Settings};
use smolchat::wire::error::{self, Error};
use smolchat::wire::net;

/// The longest message echoed, as smolchat's default.
const MAX_LINE: usize = 1 << 20;

/// A screen that "types" each message it is shown as the answer.
struct Echo {
    /// Where the answers go: the keyboard side of the turn loop reads them.
    answers: piper::Writer,
}

impl Screen for Echo {
    fn message(&mut self, text: &[u8], _: Option<&[u8]>) -> io::Result<()> {
        status(&format!("echo: {}", escape(text)));
        // The pipe holds a whole message, and the turn loop reads it before
        // the next one arrives, so the answer always fits.
        self.answers.try_fill(text);
        self.answers.try_fill(b"\n");
        Ok(())
    }

    fn status(&mut self, text: &str) {
        status(text);
    }

    fn prompt(&mut self) {}
}

fn main() -> ExitCode {
    let Some(Ok(port)) = std::env::args().nth(1).map(|p| p.parse::<u16>()) else {
        status("usage: echo PORT");
        return ExitCode::from(2);
    };
    let outcome: Result<std::convert::Infallible, Error> = smol::block_on(async {
        let listener = net::bind(Ipv4Addr::UNSPECIFIED.into(), port).await?;
        status(&format!("echo listening on {}", listener.local_addr().map_err(net_error)?));
        loop {
            // One client at a time, as the smolchat server serves them.
            let Ok((stream, addr)) = net::accept(&listener).await else { continue };
            status(&format!("{addr} connected"));
            let settings = Settings::default();

            // A fresh "keyboard" per client, so no answer outlives its session.
            let (typed, answers) = piper::pipe(MAX_LINE + 2);
            let mut keyboard = Keyboard::plain(typed, MAX_LINE);
            let mut screen = Echo { answers };
            match roles::talk(&stream, Role::Server, settings, MAX_LINE, &mut keyboard, &mut screen)
                .await
            {
                Err(Failure::Peer(e)) => status(&format!("error: {addr}: {}", error::describe(&e))),
                _ => status(&format!("{addr} left")),
            }
        }
    });
    let Err(error) = outcome;
    status(&format!("error: {error}"));
    ExitCode::from(1)
}

fn net_error(error: io::Error) -> Error {
    Error { what: "echo".into(), error }
}
