//! The `smolchat` command: parse, run, and turn the outcome into an exit code.

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;

use futures_lite::future;
use smolchat::cli::{self, Config, Parsed};
use smolchat::roles;
use smolchat::terminal::console::{self, Console, ConsoleStyle};
use smolchat::terminal::keyboard::{self, Keyboard, Keys};
#[cfg(unix)]
use smolchat::terminal::mode::Held;
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

    // A private client without SMOLCHAT_CODE needs a terminal to ask at.
    #[cfg(feature = "private")]
    if let Err((message, command)) = match &config {
        Config::Server(s) if s.private => {
            smolchat::private::check_code_source(true).map_err(|m| (m, "smolchat server"))
        }
        Config::Client(c) if c.private => {
            smolchat::private::check_code_source(false).map_err(|m| (m, "smolchat client"))
        }
        _ => Ok(()),
    } {
        return usage_error(cli::Usage { message: message.into(), command: command.into() });
    }

    // A keyboard that can never be read is said before anything starts.
    if let Err(e) = keyboard::check_readable() {
        return failure(&format!("cannot read the keyboard: {}", error::describe(&e)));
    }
    // One keyboard reader for the whole program: dropping one while its
    // thread is blocked in read(2) would lose what that read returns.
    let (max_line, descriptors) = match &config {
        Config::Server(s) => (s.max_line, net::SERVER_DESCRIPTORS),
        Config::Client(c) => (c.max_line, net::CLIENT_DESCRIPTORS),
    };
    let keyboard = Keyboard::open(KEYBOARD_READ_AHEAD);
    let style = ConsoleStyle::detect();
    // The line editor holds a handle on the terminal and a pipe for signals.
    let editor_descriptors = if style.edit { 3 } else { 0 };
    if let Err(e) = net::check_descriptors(descriptors + editor_descriptors) {
        return failure(&e.to_string());
    }
    // At a terminal, the line editor: the terminal held in its mode until
    // `held` is dropped, and the signals that end or suspend smolchat.
    let editor = if style.edit { Held::hold(max_line, style.status_colour) } else { None };
    let (mut keys, mut screen, mut held) = match editor {
        Some((tty, held)) => (
            Keys::edited(keyboard, max_line, tty.clone(), held.signal_keys()),
            Console::edited(style, tty),
            Some(held),
        ),
        None => (Keys::plain(keyboard, max_line), Console::new(style), None),
    };
    let outcome = smol::block_on(async {
        let role = async {
            match &config {
                Config::Server(s) => roles::serve(s, &mut keys, &mut screen).await,
                Config::Client(c) => roles::client(c, &mut keys, &mut screen).await,
            }
        };
        match &mut held {
            Some(held) => {
                let signalled = async { Run::Signalled(held.ending_signal().await) };
                future::or(signalled, async { Run::Done(role.await) }).await
            }
            None => Run::Done(role.await),
        }
    });

    // The one place where an outcome becomes an exit code; the console goes
    // first, so that an open prompt's line is ended before the error, then
    // the terminal gets its settings back.
    drop(screen);
    #[cfg_attr(not(unix), allow(clippy::drop_non_drop))]
    drop(held);
    match outcome {
        Run::Done(Ok(())) => ExitCode::SUCCESS,
        Run::Done(Err(error)) => failure(&error.to_string()),
        // 128 + n, as a shell reports a program ended by signal n.
        Run::Signalled(n) => ExitCode::from(128u8.saturating_add(u8::try_from(n).unwrap_or(0))),
    }
}

/// How the chat ended.
enum Run {
    /// The role returned.
    Done(Result<(), error::Error>),
    /// A signal ended it (SIGINT, SIGTERM, SIGHUP), with its number.
    Signalled(i32),
}

/// No terminal is held where smolchat has no line editor (Windows).
#[cfg(not(unix))]
enum Held {}

#[cfg(not(unix))]
use smolchat::terminal::console::Tty;

#[cfg(not(unix))]
impl Held {
    #[allow(clippy::type_complexity)]
    fn hold(_: usize, _: bool) -> Option<(std::rc::Rc<std::cell::RefCell<Tty>>, Held)> {
        None
    }

    fn signal_keys(&self) -> smolchat::terminal::keyboard::SignalKeys {
        match *self {}
    }

    async fn ending_signal(&mut self) -> i32 {
        match *self {}
    }
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
    let what = first.split(": Os {").next().unwrap_or_default();
    let why = first
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.split('"').next())
        .map(|why| format!(": {}", why.to_lowercase()))
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
