//! The `smolchat` command: parse, run, and turn the outcome into an exit code.

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;

use smolchat::cli::{self, Config, Parsed};
use smolchat::console::{self, Console, ConsoleStyle};
use smolchat::framer::Framer;
use smolchat::keyboard::Keyboard;
use smolchat::{error, roles};

/// How much typed-ahead or piped keyboard input is read ahead of its turn.
const KEYBOARD_READ_AHEAD: usize = 64 * 1024;

fn main() -> ExitCode {
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
        Ok(Parsed::Help(text)) => return print(&text),
        Ok(Parsed::Version) => return print(concat!("smolchat ", env!("CARGO_PKG_VERSION"), "\n")),
        Err(usage) => return usage_error(usage),
    };

    // A private client without SMOLCHAT_CODE needs a terminal to ask at.
    #[cfg(feature = "private")]
    if let Err(usage) = match &config {
        Config::Server(s) if s.private => smolchat::private::check_code_source(true),
        Config::Client(c) if c.private => smolchat::private::check_code_source(false),
        _ => Ok(()),
    } {
        return usage_error(usage);
    }

    // One keyboard reader for the whole program: dropping one while its
    // thread is blocked in read(2) would lose what that read returns.
    let max_line = match &config {
        Config::Server(s) => s.max_line,
        Config::Client(c) => c.max_line,
    };
    let mut keys = Framer::new(Keyboard::open(KEYBOARD_READ_AHEAD), max_line);
    let mut screen = Console::new(ConsoleStyle::detect());
    let outcome = smol::block_on(async {
        match &config {
            Config::Server(s) => roles::serve(s, &mut keys, &mut screen).await,
            Config::Client(c) => roles::client(c, &mut keys, &mut screen).await,
        }
    });

    // The one place where an outcome becomes an exit code; the console goes
    // first, so that an open prompt's line is ended before the error.
    drop(screen);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            console::status(&format!("error: {error}"));
            ExitCode::from(1)
        }
    }
}

/// Prints help or the version on stdout; a closed stdout is not an error,
/// but a full disk is.
fn print(text: &str) -> ExitCode {
    match io::stdout().write_all(text.as_bytes()).and_then(|()| io::stdout().flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
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
