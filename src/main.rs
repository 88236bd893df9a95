//! The `smolchat` command: parse, run, and turn the outcome into an exit code.

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;

use futures_lite::future;
use smolchat::cli::{self, Config, Parsed};
use smolchat::roles;
use smolchat::terminal::console::{self, Console, ConsoleStyle};
use smolchat::terminal::keyboard::{self, Keyboard};
use smolchat::terminal::mode::Signals;
use smolchat::terminal::Asked;
use smolchat::wire::{error, net};

/// How much typed-ahead or piped keyboard input is read ahead of its turn.
const KEYBOARD_READ_AHEAD: usize = 64 * 1024;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| on_panic(info.payload())));
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(arg) => {
                let message = format!("argument is not valid UTF-8: {}", arg.to_string_lossy());
                return usage_error(cli::Usage { message, command: "smolchat".into() });
            }
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let config = match cli::parse(&args) {
        Ok(Parsed::Run(config)) => config,
        // The relay reads no keyboard and shows no terminal: it starts here.
        Ok(Parsed::Relay(config)) => {
            return match smolchat::relay::run(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => failure(&error.to_string()),
            }
        }
        Ok(Parsed::Help(text)) => return print(&text),
        Ok(Parsed::Version) => return print(concat!("smolchat ", env!("CARGO_PKG_VERSION"), "\n")),
        Err(usage) => return usage_error(usage),
    };

    let (max_line, descriptors, private, server) = match &config {
        Config::Server(s) => (s.max_line, net::SERVER_DESCRIPTORS, s.private, true),
        Config::Client(c) => (c.max_line, net::CLIENT_DESCRIPTORS, c.private, false),
    };

    // A private client without SMOLCHAT_CODE needs a terminal to ask at.
    #[cfg(feature = "private")]
    if private {
        if let Err(message) = smolchat::private::check_code_source(server) {
            let command = if server { "smolchat server" } else { "smolchat client" };
            return usage_error(cli::Usage { message: message.into(), command: command.into() });
        }
    }
    #[cfg(not(feature = "private"))]
    let _ = server;

    // A keyboard that can never be read is said before anything starts.
    if let Err(e) = keyboard::check_readable() {
        return failure(&format!("cannot read the keyboard: {}", error::describe(&e)));
    }
    let style = ConsoleStyle::detect();
    // A private chat ends by a signal with its close record, and a person at
    // a terminal ends smolchat by one: both catch the signals that end a chat.
    let catch = private || style.edit;
    // The line editor holds a handle on the terminal, and caught signals
    // take a pipe for the keyboard and one for `main`.
    let extra = usize::from(style.edit) + if catch { 4 } else { 0 };
    if let Err(e) = net::check_descriptors(descriptors + extra) {
        return failure(&e.to_string());
    }
    // One keyboard for the whole program: dropping one while its thread is
    // blocked in read(2) would lose what that read returns. At a terminal it
    // holds the terminal in the line editor's mode until it is dropped.
    let (mut keyboard, tty) = Keyboard::open(KEYBOARD_READ_AHEAD, max_line, &style, catch);
    let mut screen = Console::new(style, tty);
    // The keyboard catches the signals that end a chat, and ends a session
    // it watches by them, a private one with its close; `main` catches them
    // too, for where no session watches the keyboard (connecting, a
    // handshake). The keyboard registered first, so it has the signal when
    // `main` does, and the role is polled first: a session ends, its close
    // sent, before `main` ends the program.
    let mut signals = match keyboard.catches_signals() {
        true => Signals::catch(false).ok(),
        false => None,
    };
    let signalled = async {
        loop {
            match &mut signals {
                Some(signals) => match signals.next().await {
                    Asked::End(n) => return Run::Signalled(n),
                    Asked::Suspend | Asked::Resize => {}
                },
                None => future::pending::<()>().await,
            }
        }
    };
    let role = async {
        Run::Done(match &config {
            Config::Server(s) => roles::serve(s, &mut keyboard, &mut screen).await,
            Config::Client(c) => roles::client(c, &mut keyboard, &mut screen).await,
        })
    };
    let outcome = smol::block_on(future::or(role, signalled));

    // The one place where an outcome becomes an exit code; the console goes
    // first, so that an open prompt's line is ended before the error, then
    // the terminal gets its settings back.
    drop(screen);
    let signalled = keyboard.signalled();
    drop(keyboard);
    match (outcome, signalled) {
        // 128 + n, as a shell reports a program ended by signal n.
        (Run::Signalled(n), _) | (_, Some(n)) => {
            ExitCode::from(128u8.saturating_add(u8::try_from(n).unwrap_or(0)))
        }
        (Run::Done(Ok(())), None) => ExitCode::SUCCESS,
        (Run::Done(Err(error)), None) => failure(&error.to_string()),
    }
}

/// How the chat ended.
enum Run {
    /// The role returned.
    Done(Result<(), error::Error>),
    /// A signal ended it (SIGINT, SIGTERM, SIGHUP), with its number.
    Signalled(i32),
}

/// Says what failed and why, for exit code 1.
fn failure(text: &str) -> ExitCode {
    console::status(&format!("error: {text}"));
    ExitCode::from(1)
}

/// The last line of defence: smolchat is not meant to panic, but should a
/// library it uses do so, the user reads one error line, without a
/// backtrace or a Rust debug form, and the exit code is 1.
fn on_panic(payload: &(dyn std::any::Any + Send)) {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown");
    // "cannot initialize I/O event notification: Os { code: 24, kind: ..,
    // message: \"Too many open files\" }": what failed stays, and the message
    // of the debug form, in the words of the other errors.
    let first = text.lines().next().unwrap_or_default();
    let what = error::split_once(first, ": Os {", false).map_or(first, |(what, _)| what);
    let why = error::split_once(first, "message: \"", false)
        .and_then(|(_, rest)| rest.split('"').next())
        // A char at a time: str::to_lowercase's rule for a word-final
        // sigma alone weighs 5 KB of binary.
        .map(|why| why.chars().flat_map(char::to_lowercase).collect::<String>())
        .map(|why| format!(": {why}"))
        .unwrap_or_default();
    console::status(&format!("error: internal error: {what}{why}"));
    std::process::exit(1);
}
/// Prints help or the version on stdout; a closed stdout is not an error,
/// but a full disk is.
fn print(text: &str) -> ExitCode {
    match io::stdout().write_all(text.as_bytes()).and_then(|()| io::stdout().flush()) {
        Err(e) if !error::is_closed_pipe(&e) => {
            console::status(&format!("error: cannot write to stdout: {}", error::describe(&e)));
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

fn usage_error(usage: cli::Usage) -> ExitCode {
    for line in usage.lines() {
        console::status(&line);
    }
    ExitCode::from(2)
}
