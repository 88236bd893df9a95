//! The command line: argh reads every value into its type, then one pass
//! applies the rules that span several flags and builds the configs of the
//! rooms below. Every usage error takes one path, so each reads as one line
//! and exits 2. Around argh: the help forms it does not know (`help`,
//! `help COMMAND`) and the client's `HOST:PORT`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use argh::FromArgs;

use crate::allow::{Admission, Net};
use crate::relay::{RelayConfig, DEFAULT_MAX_CHATS};
use crate::roles::{ClientConfig, ServerConfig};
use crate::wire::error::{sentence, split_once};
use crate::wire::net::{unbracket, DEFAULT_CONNECT_TIMEOUT};
use crate::wire::relay::Address;

/// The longest message by default: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// The largest `--max-line` taken; more is surely a typing mistake.
pub const MAX_MAX_LINE: usize = 1 << 30;

/// The largest `--max-chats` taken: each chat needs two open files.
pub const MAX_MAX_CHATS: usize = 1_000_000;

/// How long a relay's room waits for its joiner by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);

/// The variable that names the relay when `--relay` is not given.
pub const RELAY_VARIABLE: &str = "SMOLCHAT_RELAY";

/// Where a server or relay listens without `--bind`: all IPv4 interfaces.
const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The commands, as a usage error lists them.
const COMMANDS: &str = "'server', 'client' or 'relay'";

#[derive(FromArgs)]
/// A two-person, turn-based text chat over TCP.
#[argh(
    help_triggers("-h", "--help"),
    example = "A plain chat: one person runs the server, the other connects to it
(HOST: the server's name or address).
  smolchat server 2000
  smolchat client HOST 2000",
    example = "A private chat: the server shows a code; the other person types it
when the client asks.
  smolchat server --private 2000
  smolchat client --private HOST 2000",
    example = "Through a relay, when neither can reach the other (behind home
routers): both connect out to it and meet by the server's code.
  smolchat server --relay RELAY:7000
  smolchat client --relay RELAY:7000
With SMOLCHAT_RELAY=RELAY:7000 set, both may leave --relay out.
'smolchat help relay' says how to run one.",
    note = "The client speaks first; then each waits for the other's line, in turn.
To leave, type EXIT or press Ctrl-D; Ctrl-C ends smolchat at once. At the
server, EXIT ends the chat with this client and waits for the next one,
and Ctrl-D ends the server.
'smolchat help COMMAND' lists a command's options."
)]
struct Args {
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Server(ServerCommand),
    Client(ClientCommand),
    Relay(RelayCommand),
}

// `help` is no help trigger below the top level: it could be a HOST.
#[derive(FromArgs)]
/// Wait for clients and chat with each in turn, in the order they arrive.
#[argh(subcommand, name = "server", help_triggers("-h", "--help"))]
struct ServerCommand {
    /// local address to listen on: an IPv4 or IPv6 address (default 0.0.0.0)
    #[argh(option, arg_name = "ADDR", from_str_fn(bind_address))]
    bind: Option<IpAddr>,
    /// drop a client that sends nothing for SECS seconds on its turn (default: off)
    #[argh(option, arg_name = "SECS", from_str_fn(idle_timeout))]
    idle_timeout: Option<Duration>,
    /// longest message taken from the peer or the keyboard, in bytes (default 1048576)
    #[argh(option, arg_name = "BYTES", default = "DEFAULT_MAX_LINE", from_str_fn(max_line))]
    max_line: usize,
    /// chat end to end encrypted, only with a client that knows the code
    /// (printed, or taken from SMOLCHAT_CODE)
    #[argh(switch)]
    private: bool,
    /// let only clients from this network join: ADDR or ADDR/BITS (repeatable)
    #[argh(option, arg_name = "NET", from_str_fn(allow))]
    allow: Vec<Net>,
    /// turn away clients from this network, even if allowed (repeatable)
    #[argh(option, arg_name = "NET", from_str_fn(deny))]
    deny: Vec<Net>,
    /// meet the client through this relay instead of listening (private;
    /// default: SMOLCHAT_RELAY when no PORT is given)
    #[argh(option, arg_name = "HOST:PORT", from_str_fn(relay_flag))]
    relay: Option<Address>,
    /// with --relay: chat through the relay only, never directly
    #[argh(switch)]
    relay_only: bool,
    /// port to listen on, 0-65535 (0 picks a free port)
    #[argh(positional, arg_name = "PORT", from_str_fn(any_port))]
    port: Option<u16>,
}

#[derive(FromArgs)]
/// Connect to a smolchat server and chat, speaking first.
#[argh(subcommand, name = "client", help_triggers("-h", "--help"))]
struct ClientCommand {
    /// seconds to wait for each address to answer (default 10)
    #[argh(
        option,
        arg_name = "SECS",
        default = "DEFAULT_CONNECT_TIMEOUT",
        from_str_fn(connect_timeout)
    )]
    connect_timeout: Duration,
    /// drop the server when it sends nothing for SECS seconds on its turn (default: off)
    #[argh(option, arg_name = "SECS", from_str_fn(idle_timeout))]
    idle_timeout: Option<Duration>,
    /// longest message taken from the peer or the keyboard, in bytes (default 1048576)
    #[argh(option, arg_name = "BYTES", default = "DEFAULT_MAX_LINE", from_str_fn(max_line))]
    max_line: usize,
    /// chat end to end encrypted with a private server; the code is taken
    /// from SMOLCHAT_CODE or asked for
    #[argh(switch)]
    private: bool,
    /// meet the server through this relay, by its code (private; default:
    /// SMOLCHAT_RELAY when no HOST is given)
    #[argh(option, arg_name = "HOST:PORT", from_str_fn(relay_flag))]
    relay: Option<Address>,
    /// with --relay: chat through the relay only, never directly
    #[argh(switch)]
    relay_only: bool,
    /// the server: HOST PORT, or HOST:PORT or [IPv6]:PORT as one argument
    /// (a name, an IPv4 or IPv6 address; a port 1-65535); none with --relay
    #[argh(positional, arg_name = "HOST PORT")]
    server: Vec<String>,
}

#[derive(FromArgs)]
/// Run a relay: two people who cannot reach each other meet and chat
/// through it.
#[argh(
    subcommand,
    name = "relay",
    help_triggers("-h", "--help"),
    example = "Run it on a machine both people can reach, its port open to them:
  smolchat relay 7000
One person points a server at it; the server shows a code to pass on:
  smolchat server --relay relay.example.org:7000
The other points a client at it and types that code when asked:
  smolchat client --relay relay.example.org:7000
Or each names the relay once: export SMOLCHAT_RELAY=relay.example.org:7000",
    note = "Both people only connect out, so their home routers do not stand in
the way. A chat through a relay is always private: the relay passes it on
but cannot read it, and never learns the code. When both routers allow
it, the chat then goes direct (not with --relay-only). docs/relay.md says
how to run a relay for friends."
)]
struct RelayCommand {
    /// local address to listen on: an IPv4 or IPv6 address (default 0.0.0.0)
    #[argh(option, arg_name = "ADDR", default = "ANY", from_str_fn(bind_address))]
    bind: IpAddr,
    /// most rooms and pairs held at once (default 10000)
    #[argh(option, arg_name = "N", default = "DEFAULT_MAX_CHATS", from_str_fn(max_chats))]
    max_chats: usize,
    /// close a room nobody joined, or a pair one side left, after SECS
    /// seconds (default 600)
    #[argh(option, arg_name = "SECS", default = "DEFAULT_WAIT", from_str_fn(wait))]
    wait: Duration,
    /// port to listen on, 0-65535 (0 picks a free port)
    #[argh(positional, arg_name = "PORT", from_str_fn(any_port))]
    port: u16,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Print this help text on stdout and exit 0.
    Help(String),
    /// Print the version on stdout and exit 0.
    Version,
    /// Run the chat.
    Run(Config),
    /// Run a relay.
    Relay(RelayConfig),
}

/// A checked command line.
#[derive(Debug, PartialEq)]
pub enum Config {
    /// `smolchat server`.
    Server(ServerConfig),
    /// `smolchat client`.
    Client(ClientConfig),
}

/// A usage error: the message, and the command whose `--help` to suggest.
#[derive(Debug, PartialEq)]
pub struct Usage {
    /// What is wrong, one line, lowercase.
    pub message: String,
    /// `smolchat`, `smolchat server` or `smolchat client`.
    pub command: String,
}

impl Usage {
    /// The two lines printed on stderr: the error, then where help is.
    pub fn lines(&self) -> [String; 2] {
        [format!("error: {}", self.message), format!("run '{} --help' for usage", self.command)]
    }
}

/// Parses the arguments after the program name, with `SMOLCHAT_RELAY`
/// from the environment.
pub fn parse(args: &[&str]) -> Result<Parsed, Usage> {
    let relay = match std::env::var(RELAY_VARIABLE) {
        Ok(relay) => Some(relay).filter(|v| !v.is_empty()),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            let message = format!("{RELAY_VARIABLE} is not valid UTF-8");
            return Err(Usage { message, command: command_of(args) });
        }
    };
    parse_with(args, relay.as_deref())
}

/// What a usage error names: `smolchat`, or `smolchat SUB` when the
/// arguments start with a command.
fn command_of(args: &[&str]) -> String {
    match args.first().filter(|word| is_command(word)) {
        Some(sub) => format!("smolchat {sub}"),
        None => "smolchat".to_string(),
    }
}

/// Parses the arguments after the program name; `env_relay` is the relay
/// taken when neither `--relay` nor a port or host is given.
pub fn parse_with(args: &[&str], env_relay: Option<&str>) -> Result<Parsed, Usage> {
    let command = command_of(args);
    let usage = |message| Usage { message, command: command.clone() };
    let args = help_asked(args).map_err(usage)?;
    match Args::from_args(&["smolchat"], &args) {
        Ok(Args { version: true, .. }) => Ok(Parsed::Version),
        Ok(Args { command: Some(command), .. }) => settle(command, env_relay).map_err(usage),
        Ok(Args { command: None, .. }) => {
            Err(usage(format!("no command given: expected {COMMANDS}")))
        }
        Err(early) if early.status.is_ok() => Ok(Parsed::Help(early.output)),
        Err(early) => Err(usage(argh_error(&early.output, &args))),
    }
}

/// The one pass over the rules that span several flags: a relay takes the
/// place of the server's port or the client's host (`--relay`, or
/// `SMOLCHAT_RELAY` when neither is given) and implies `--private`; what a
/// relayed server cannot use; `--private` in a build without it.
fn settle(command: Command, env_relay: Option<&str>) -> Result<Parsed, String> {
    let config = match command {
        Command::Relay(RelayCommand { bind, port, max_chats, wait }) => {
            return Ok(Parsed::Relay(RelayConfig { bind, port, max_chats, wait }))
        }
        Command::Server(s) => {
            let relay = relay(s.relay, s.relay_only, s.port.is_some(), env_relay)?;
            let port = match (s.port, &relay) {
                (Some(port), _) => port,
                (None, Some(_)) => 0,
                (None, None) => {
                    return Err("required positional arguments not provided: PORT \
                                (or --relay HOST:PORT)"
                        .into())
                }
            };
            let local = [
                ("--bind", s.bind.is_some()),
                ("--allow", !s.allow.is_empty()),
                ("--deny", !s.deny.is_empty()),
            ];
            if let Some((flag, _)) = local.iter().find(|(_, given)| *given && relay.is_some()) {
                return Err(format!(
                    "{flag} does not apply to a server that meets its client through a relay"
                ));
            }
            Config::Server(ServerConfig {
                bind: s.bind.unwrap_or(ANY),
                port,
                idle_timeout: s.idle_timeout,
                max_line: s.max_line,
                private: private(s.private || relay.is_some())?,
                admission: Admission { allow: s.allow, deny: s.deny },
                relay,
                relay_only: s.relay_only,
            })
        }
        Command::Client(c) => {
            let relay = relay(c.relay, c.relay_only, !c.server.is_empty(), env_relay)?;
            let (host, port) = match (c.server.as_slice(), &relay) {
                ([], Some(relay)) => (relay.host.clone(), relay.port),
                ([], None) => {
                    return Err("required positional arguments not provided: HOST PORT \
                                (or HOST:PORT, or --relay HOST:PORT)"
                        .into())
                }
                (server, _) => server_address(server)?,
            };
            Config::Client(ClientConfig {
                host,
                port,
                connect_timeout: c.connect_timeout,
                idle_timeout: c.idle_timeout,
                max_line: c.max_line,
                private: private(c.private || relay.is_some())?,
                relay,
                relay_only: c.relay_only,
            })
        }
    };
    Ok(Parsed::Run(config))
}

/// The relay asked for: `--relay`, or `SMOLCHAT_RELAY` when the command
/// line names no port or host of its own (`direct`).
fn relay(
    flag: Option<Address>,
    relay_only: bool,
    direct: bool,
    env_relay: Option<&str>,
) -> Result<Option<Address>, String> {
    let relay = match (flag, env_relay) {
        (Some(_), _) if direct => {
            return Err(
                "--relay takes the place of the port (and host): give one or the other".into()
            )
        }
        (Some(relay), _) => Some(relay),
        (None, Some(text)) if !direct => Some(relay_address(text, RELAY_VARIABLE)?),
        (None, _) => None,
    };
    if relay_only && relay.is_none() {
        return Err("--relay-only goes with --relay".into());
    }
    Ok(relay)
}

/// The names of the commands, `server` and the others.
fn commands() -> impl Iterator<Item = &'static str> {
    <Command as argh::SubCommands>::COMMANDS.iter().map(|info| info.name)
}

fn is_command(word: &str) -> bool {
    commands().any(|name| name == word)
}

/// The help forms argh does not take as a person means them, turned into
/// the form it does: `help` is `--help`; `help COMMAND`, `--help COMMAND`
/// and `-h COMMAND` are `COMMAND --help` (argh would hand the command a
/// `help` to read as its HOST or PORT).
fn help_asked<'a>(args: &[&'a str]) -> Result<Vec<&'a str>, String> {
    match *args {
        ["help"] => Ok(vec!["--help"]),
        ["help", word] | ["-h" | "--help", word, ..] if is_command(word) => {
            Ok(vec![word, "--help"])
        }
        ["help", word] => Err(format!("unknown command '{word}' after help: expected {COMMANDS}")),
        ["help", _, extra, ..] => Err(format!("unrecognized argument: {extra}")),
        _ => Ok(args.to_vec()),
    }
}

/// argh's error as one of ours: one line, lowercase. A value one of our
/// readers refused comes as `Error parsing option '--bind' with value 'x': `
/// followed by that reader's message, which names the flag and the value
/// itself: it is what follows the value, one of the arguments (the longest
/// that fits, should one argument begin another).
fn argh_error(output: &str, args: &[&str]) -> String {
    let after_value = split_once(output, "' with value '", false).map(|(_, rest)| rest);
    let refused = after_value.and_then(|rest| {
        let found = args
            .iter()
            .enumerate()
            .filter_map(|(at, arg)| Some((at, rest.strip_prefix(arg)?.strip_prefix("': ")?)));
        found.min_by_key(|(_, message)| message.len())
    });
    match refused {
        // `server 127.0.0.1 2000`: an address where the port goes, as in
        // `nc -l 127.0.0.1 2000`.
        Some((at, _))
            if output.starts_with("Error parsing positional") && bind_address(args[at]).is_ok() =>
        {
            let port = args.get(at + 1).filter(|p| p.parse::<u16>().is_ok()).unwrap_or(&"PORT");
            let command = args.iter().find(|word| is_command(word)).unwrap_or(&"server");
            format!(
                "invalid port '{address}': an address to listen on goes after --bind, \
                 as in 'smolchat {command} --bind {address} {port}'",
                address = args[at],
            )
        }
        Some((_, message)) => message.trim_end().to_string(),
        None => {
            let joined = output.split_whitespace().collect::<Vec<_>>().join(" ");
            sentence(&joined, "invalid arguments")
        }
    }
}

/// The client's server: `HOST PORT`, or `HOST:PORT` or `[V6]:PORT` as one
/// argument. A bare IPv6 address has colons of its own, so it takes its port
/// only as a second argument.
fn server_address(args: &[String]) -> Result<(String, u16), String> {
    match args {
        [host, ..] if host.is_empty() => {
            Err("invalid host '': expected a name or an address".into())
        }
        // `client 2000`: the port alone, the host forgotten.
        [text] if text.bytes().all(|b| b.is_ascii_digit()) => Err(format!(
            "no host given before the port {text}: the server's name or address goes first, \
             as in 'smolchat client HOST {text}'"
        )),
        [text] if !text.contains(':') || text.starts_with('[') && text.ends_with(']') => {
            Err(format!("no port given after '{text}': expected HOST PORT or HOST:PORT"))
        }
        [text] if !text.starts_with('[') && text.matches(':').count() > 1 => Err(format!(
            "invalid server '{text}': an IPv6 address goes in brackets before its port \
             ([{text}]:PORT), or before the port as a second argument ({text} PORT)"
        )),
        [text] => host_and_port(text).map_err(|why| format!("invalid server '{text}': {why}")),
        [host, text] if has_port(host) => {
            Err(format!("the port is given twice: in '{host}' and as '{text}'"))
        }
        [host, text] => Ok((host.clone(), port(text, 1)?)),
        [_, _, extra, ..] => Err(format!("unrecognized argument: {extra}")),
        [] => Err("required positional arguments not provided: HOST PORT".into()),
    }
}

/// Whether a HOST is written as `HOST:PORT` or `[V6]:PORT`: one colon, or
/// one after the brackets (a bare IPv6 address has two or more).
fn has_port(host: &str) -> bool {
    match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').is_some_and(|(_, after)| after.starts_with(':')),
        None => host.matches(':').count() == 1,
    }
}

/// `HOST:PORT`, `[V6]:PORT`: a host (brackets taken off) and a port 1-65535.
fn host_and_port(text: &str) -> Result<(String, u16), String> {
    let expected = "expected HOST:PORT or [IPv6]:PORT";
    let (host, port_text) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or(expected)?;
            (host, after.strip_prefix(':').ok_or(expected)?)
        }
        None => {
            let (host, port) = text.rsplit_once(':').ok_or(expected)?;
            if host.contains(':') {
                return Err(format!("{expected} (an IPv6 address goes in brackets)"));
            }
            (host, port)
        }
    };
    if host.is_empty() {
        return Err(expected.into());
    }
    Ok((host.to_string(), port(port_text, 1)?))
}

/// A relay's `HOST:PORT`, from `--relay` or the variable `from`.
fn relay_address(text: &str, from: &str) -> Result<Address, String> {
    let (host, port) =
        host_and_port(text).map_err(|why| format!("invalid relay '{text}' in {from}: {why}"))?;
    Ok(Address { host, port })
}

/// `--private`, refused by a build without private chats.
fn private(asked: bool) -> Result<bool, String> {
    if asked && !cfg!(feature = "private") {
        return Err("--private is not available: this smolchat was built without private chats \
            (cargo feature 'private')"
            .into());
    }
    Ok(asked)
}

fn port(text: &str, lowest: u16) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p >= lowest => Ok(p),
        _ => Err(format!("invalid port '{text}': expected a number from {lowest} to 65535")),
    }
}

/// The most seconds an option takes: some 31 years, far past any wait a
/// person means, and well inside what a deadline can add to now.
const MOST_SECONDS: u64 = 1_000_000_000;

/// Seconds as a decimal number such as `10` or `0.5`, read without floating
/// point: parsing a float would add its whole machinery to the binary.
fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("invalid value '{text}' for {flag}: expected a number of seconds above 0");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits(whole) || !digits(fraction) {
        return Err(invalid());
    }
    let wrong = |why: &str| format!("invalid value '{text}' for {flag}: {why}");
    if fraction.len() > 9 {
        return Err(wrong("expected at most 9 decimal places"));
    }
    // A whole part past u64 is past the most, too.
    let secs = if whole.is_empty() { Some(0) } else { whole.parse::<u64>().ok() };
    let Some(secs) = secs.filter(|&s| s <= MOST_SECONDS) else {
        return Err(wrong(&format!("expected at most {MOST_SECONDS} seconds")));
    };
    let nanos = fraction.bytes().chain(std::iter::repeat(b'0')).take(9);
    let nanos = nanos.fold(0, |n, digit| n * 10 + u32::from(digit - b'0'));
    let duration = Duration::new(secs, nanos);
    if duration.is_zero() {
        return Err(invalid());
    }
    Ok(duration)
}

/// A count from 1 to `most`, of `what`.
fn count(flag: &str, what: &str, most: usize, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=most).contains(&n) => Ok(n),
        _ => Err(format!("invalid value '{text}' for {flag}: expected {what} from 1 to {most}")),
    }
}

fn network(flag: &str, text: &str) -> Result<Net, String> {
    Net::parse(text).map_err(|why| format!("invalid network '{text}' for {flag}: {why}"))
}

// The readers argh calls, one for each flag, since each names its flag.

fn any_port(text: &str) -> Result<u16, String> {
    port(text, 0)
}

fn bind_address(text: &str) -> Result<IpAddr, String> {
    unbracket(text).parse().map_err(|_| {
        format!("invalid address '{text}' for --bind: expected an IPv4 or IPv6 address")
    })
}

fn idle_timeout(text: &str) -> Result<Duration, String> {
    seconds("--idle-timeout", text)
}

fn connect_timeout(text: &str) -> Result<Duration, String> {
    seconds("--connect-timeout", text)
}

fn wait(text: &str) -> Result<Duration, String> {
    seconds("--wait", text)
}

fn max_line(text: &str) -> Result<usize, String> {
    count("--max-line", "a number of bytes", MAX_MAX_LINE, text)
}

fn max_chats(text: &str) -> Result<usize, String> {
    count("--max-chats", "a number", MAX_MAX_CHATS, text)
}

fn allow(text: &str) -> Result<Net, String> {
    network("--allow", text)
}

fn deny(text: &str) -> Result<Net, String> {
    network("--deny", text)
}

fn relay_flag(text: &str) -> Result<Address, String> {
    relay_address(text, "--relay")
}

#[cfg(test)]
mod tests;
