//! The command line: argh's raw arguments, checked into a [`Config`], with
//! every usage error on one path so that each reads the same and exits 2;
//! around argh, the forms it does not know (`help`, `-h` below the top
//! level, `HOST:PORT`).

use std::net::IpAddr;
use std::time::Duration;

use argh::FromArgs;

use crate::allow::{Admission, Net};

/// The longest message by default: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// The largest `--max-line` taken; more is surely a typing mistake.
pub const MAX_MAX_LINE: usize = 1 << 30;

/// How long a client waits for each address by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many rooms and pairs a relay holds at most by default.
pub const DEFAULT_MAX_CHATS: usize = 10_000;

/// The largest `--max-chats` taken: each chat needs two open files.
pub const MAX_MAX_CHATS: usize = 1_000_000;

/// How long a relay's room waits for its joiner by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);

#[derive(FromArgs, Debug)]
/// A two-person, turn-based text chat over TCP.
#[argh(help_triggers("-h", "--help"))]
struct Args {
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    Server(ServerArgs),
    Client(ClientArgs),
    Relay(RelayArgs),
}

// argh is told only `--help` below the top level, since `help` could be
// meant as a HOST; `-h` is answered after argh (`parse_with`).
#[derive(FromArgs, Debug)]
/// Wait for clients and chat with each in turn, in the order they arrive.
#[argh(subcommand, name = "server", help_triggers("--help"))]
struct ServerArgs {
    /// local address to listen on: an IPv4 or IPv6 address (default 0.0.0.0)
    #[argh(option, arg_name = "ADDR")]
    bind: Option<String>,
    /// drop a client that sends nothing for SECS seconds on its turn (default: off)
    #[argh(option, arg_name = "SECS")]
    idle_timeout: Option<String>,
    /// longest message taken from the peer or the keyboard, in bytes (default 1048576)
    #[argh(option, arg_name = "BYTES")]
    max_line: Option<String>,
    /// chat end to end encrypted, only with a client that knows the code
    /// (printed, or taken from SMOLCHAT_CODE)
    #[argh(switch)]
    private: bool,
    /// let only clients from this network join: ADDR or ADDR/BITS (repeatable)
    #[argh(option, arg_name = "NET")]
    allow: Vec<String>,
    /// turn away clients from this network, even if allowed (repeatable)
    #[argh(option, arg_name = "NET")]
    deny: Vec<String>,
    /// meet the client through this relay instead of listening (private;
    /// default: SMOLCHAT_RELAY when no PORT is given)
    #[argh(option, arg_name = "HOST:PORT")]
    relay: Option<String>,
    /// with --relay: chat through the relay only, never directly
    #[argh(switch)]
    relay_only: bool,
    /// port to listen on, 0-65535 (0 picks a free port)
    #[argh(positional, arg_name = "PORT")]
    port: Option<String>,
}

#[derive(FromArgs, Debug)]
/// Connect to a smolchat server and chat, speaking first.
#[argh(subcommand, name = "client", help_triggers("--help"))]
struct ClientArgs {
    /// seconds to wait for each address to answer (default 10)
    #[argh(option, arg_name = "SECS")]
    connect_timeout: Option<String>,
    /// drop the server when it sends nothing for SECS seconds on its turn (default: off)
    #[argh(option, arg_name = "SECS")]
    idle_timeout: Option<String>,
    /// longest message taken from the peer or the keyboard, in bytes (default 1048576)
    #[argh(option, arg_name = "BYTES")]
    max_line: Option<String>,
    /// chat end to end encrypted with a private server; the code is taken
    /// from SMOLCHAT_CODE or asked for
    #[argh(switch)]
    private: bool,
    /// meet the server through this relay, by its code (private; default:
    /// SMOLCHAT_RELAY when no HOST is given)
    #[argh(option, arg_name = "HOST:PORT")]
    relay: Option<String>,
    /// with --relay: chat through the relay only, never directly
    #[argh(switch)]
    relay_only: bool,
    /// the server: HOST PORT, or HOST:PORT or [IPv6]:PORT as one argument
    /// (a name, an IPv4 or IPv6 address; a port 1-65535); none with --relay
    #[argh(positional, arg_name = "HOST PORT")]
    server: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// Let two people behind NAT meet: pair them by room number and copy their
/// sealed bytes both ways.
#[argh(subcommand, name = "relay", help_triggers("--help"))]
struct RelayArgs {
    /// local address to listen on: an IPv4 or IPv6 address (default 0.0.0.0)
    #[argh(option, arg_name = "ADDR")]
    bind: Option<String>,
    /// most rooms and pairs held at once (default 10000)
    #[argh(option, arg_name = "N")]
    max_chats: Option<String>,
    /// close a room nobody joined, or a pair one side left, after SECS
    /// seconds (default 600)
    #[argh(option, arg_name = "SECS")]
    wait: Option<String>,
    /// port to listen on, 0-65535 (0 picks a free port)
    #[argh(positional, arg_name = "PORT")]
    port: String,
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

/// Settings of `smolchat server`.
#[derive(Debug, PartialEq)]
pub struct ServerConfig {
    /// Local address.
    pub bind: IpAddr,
    /// Local port; 0 lets the system pick one.
    pub port: u16,
    /// Drop a silent client after this long on its turn.
    pub idle_timeout: Option<Duration>,
    /// Longest message.
    pub max_line: usize,
    /// A private chat (`--private`).
    pub private: bool,
    /// Who may join (`--allow`, `--deny`).
    pub admission: Admission,
    /// Meet the client through a relay instead of listening.
    pub relay: Option<Relay>,
}

/// A relay to meet through (`--relay HOST:PORT`, or `SMOLCHAT_RELAY`).
#[derive(Debug, Clone, PartialEq)]
pub struct Relay {
    /// The relay's name or address, as typed, without brackets.
    pub host: String,
    /// The relay's port.
    pub port: u16,
    /// Never try a direct connection (`--relay-only`).
    pub relay_only: bool,
}

/// The variable that names the relay when `--relay` is not given.
pub const RELAY_VARIABLE: &str = "SMOLCHAT_RELAY";

/// Settings of `smolchat client`.
#[derive(Debug, PartialEq)]
pub struct ClientConfig {
    /// Server name or address, as typed; the relay's when relayed.
    pub host: String,
    /// Server port; the relay's when relayed.
    pub port: u16,
    /// Time allowed for resolving and for each address.
    pub connect_timeout: Duration,
    /// Drop a silent server after this long on its turn.
    pub idle_timeout: Option<Duration>,
    /// Longest message.
    pub max_line: usize,
    /// A private chat (`--private`).
    pub private: bool,
    /// Meet the server through this relay (`host` and `port` are its).
    pub relay: Option<Relay>,
}

/// Settings of `smolchat relay`.
#[derive(Debug, PartialEq)]
pub struct RelayConfig {
    /// Local address.
    pub bind: IpAddr,
    /// Local port; 0 lets the system pick one.
    pub port: u16,
    /// The most rooms and pairs held together.
    pub max_chats: usize,
    /// How long a room waits for its joiner, and a pair goes on after one
    /// side left.
    pub wait: Duration,
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
    let relay = std::env::var(RELAY_VARIABLE).ok().filter(|v| !v.is_empty());
    parse_with(args, relay.as_deref())
}

/// Parses the arguments after the program name; `env_relay` is the relay
/// taken when neither `--relay` nor a port or host is given.
pub fn parse_with(args: &[&str], env_relay: Option<&str>) -> Result<Parsed, Usage> {
    let sub = args.first().copied().filter(|word| commands().any(|name| name == *word));
    let command = match sub {
        Some(sub) => format!("smolchat {sub}"),
        None => "smolchat".to_string(),
    };
    let usage = |message: String| Usage { message, command: command.clone() };
    if let Some(asked) = asked_for_help(args).map_err(usage)? {
        return Ok(asked);
    }
    let parsed = match Args::from_args(&["smolchat"], args) {
        Ok(parsed) => parsed,
        Err(early) if early.status.is_ok() => return Ok(Parsed::Help(short_help(&early.output))),
        // argh meets a `-h` where an option could be, not as an option's
        // value: there, `-h` means what `--help` means.
        Err(early) if early.output == "Unrecognized argument: -h\n" => {
            return Ok(help(sub));
        }
        Err(early) => return Err(usage(one_line(&early.output))),
    };
    if parsed.version {
        return Ok(Parsed::Version);
    }
    let config = match parsed.command {
        None => {
            return Err(usage(format!("no command given: expected {}", one_of_commands())));
        }
        Some(Command::Relay(r)) => {
            return Ok(Parsed::Relay(RelayConfig {
                bind: bind_address(r.bind.as_deref()).map_err(usage)?,
                port: port(&r.port, 0).map_err(usage)?,
                max_chats: max_chats(r.max_chats.as_deref()).map_err(usage)?,
                wait: match &r.wait {
                    None => DEFAULT_WAIT,
                    Some(text) => seconds("--wait", text).map_err(usage)?,
                },
            }))
        }
        Some(Command::Server(s)) => {
            let relay = relay(s.relay.as_deref(), s.relay_only, s.port.is_some(), env_relay)
                .map_err(usage)?;
            let port =
                match (&s.port, &relay) {
                    (Some(text), _) => port(text, 0).map_err(usage)?,
                    (None, Some(_)) => 0,
                    (None, None) => return Err(usage(
                        "required positional arguments not provided: PORT (or --relay HOST:PORT)"
                            .into(),
                    )),
                };
            if relay.is_some() {
                let local = [
                    ("--bind", s.bind.is_some()),
                    ("--allow", !s.allow.is_empty()),
                    ("--deny", !s.deny.is_empty()),
                ];
                if let Some((flag, _)) = local.iter().find(|(_, given)| *given) {
                    return Err(usage(format!(
                        "{flag} does not apply to a server that meets its client through a relay"
                    )));
                }
            }
            Config::Server(ServerConfig {
                bind: bind_address(s.bind.as_deref()).map_err(usage)?,
                port,
                idle_timeout: idle_timeout(s.idle_timeout.as_deref()).map_err(usage)?,
                max_line: max_line(s.max_line.as_deref()).map_err(usage)?,
                private: private(s.private || relay.is_some()).map_err(usage)?,
                admission: Admission {
                    allow: nets("--allow", &s.allow).map_err(usage)?,
                    deny: nets("--deny", &s.deny).map_err(usage)?,
                },
                relay,
            })
        }
        Some(Command::Client(c)) => {
            let relay = relay(c.relay.as_deref(), c.relay_only, !c.server.is_empty(), env_relay)
                .map_err(usage)?;
            let (host, port) = match (c.server.as_slice(), &relay) {
                ([], Some(relay)) => (relay.host.clone(), relay.port),
                ([], None) => {
                    return Err(usage(
                        "required positional arguments not provided: HOST PORT \
                         (or HOST:PORT, or --relay HOST:PORT)"
                            .into(),
                    ))
                }
                (server, _) => server_address(server).map_err(usage)?,
            };
            Config::Client(ClientConfig {
                port,
                connect_timeout: match &c.connect_timeout {
                    None => DEFAULT_CONNECT_TIMEOUT,
                    Some(text) => seconds("--connect-timeout", text).map_err(usage)?,
                },
                idle_timeout: idle_timeout(c.idle_timeout.as_deref()).map_err(usage)?,
                max_line: max_line(c.max_line.as_deref()).map_err(usage)?,
                private: private(c.private || relay.is_some()).map_err(usage)?,
                host,
                relay,
            })
        }
    };
    Ok(Parsed::Run(config))
}

/// The names of the commands, `server` and the others.
fn commands() -> impl Iterator<Item = &'static str> {
    <Command as argh::SubCommands>::COMMANDS.iter().map(|info| info.name)
}

/// `'server' or 'client'`, or however many commands there are.
fn one_of_commands() -> String {
    let names: Vec<String> = commands().map(|name| format!("'{name}'")).collect();
    match names.split_last() {
        Some((last, first)) if !first.is_empty() => format!("{} or {last}", first.join(", ")),
        _ => names.concat(),
    }
}

/// The help forms argh does not take: `help`, `help COMMAND`, and
/// `--help COMMAND` or `-h COMMAND` (argh would hand the command a `help`
/// it takes for a HOST or PORT).
fn asked_for_help(args: &[&str]) -> Result<Option<Parsed>, String> {
    let known = |word: &str| commands().any(|name| name == word);
    match args {
        ["help"] => Ok(Some(help(None))),
        ["help", word] if known(word) => Ok(Some(help(Some(word)))),
        ["help", word] => {
            Err(format!("unknown command '{word}' after help: expected {}", one_of_commands()))
        }
        ["help", _, extra, ..] => Err(format!("unrecognized argument: {extra}")),
        ["-h" | "--help", word, ..] if known(word) => Ok(Some(help(Some(word)))),
        _ => Ok(None),
    }
}

/// The usage text of `smolchat` or one of its commands, as `--help` prints it.
fn help(command: Option<&str>) -> Parsed {
    let args: &[&str] = match &command {
        Some(command) => &[command, "--help"],
        None => &["--help"],
    };
    // `--help` always ends argh early, with the text.
    let early = Args::from_args(&["smolchat"], args).err();
    Parsed::Help(short_help(&early.map(|early| early.output).unwrap_or_default()))
}

/// argh lists only the help triggers it was told, so a command's help
/// names `--help` alone; it takes `-h` too.
fn short_help(text: &str) -> String {
    text.replace("\n  --help            ", "\n  -h, --help        ")
}

/// The relay asked for: `--relay`, or `SMOLCHAT_RELAY` when the command
/// line names no port or host of its own (`direct`).
fn relay(
    flag: Option<&str>,
    relay_only: bool,
    direct: bool,
    env_relay: Option<&str>,
) -> Result<Option<Relay>, String> {
    let (text, from) = match (flag, direct) {
        (Some(_), true) => {
            return Err(
                "--relay takes the place of the port (and host): give one or the other".into()
            )
        }
        (Some(text), false) => (text, "--relay"),
        (None, false) if env_relay.is_some() => (env_relay.unwrap_or_default(), RELAY_VARIABLE),
        (None, _) if relay_only => return Err("--relay-only goes with --relay".into()),
        (None, _) => return Ok(None),
    };
    let (host, port) =
        host_and_port(text).map_err(|why| format!("invalid relay '{text}' in {from}: {why}"))?;
    Ok(Some(Relay { host, port, relay_only }))
}

/// `HOST:PORT`, `[V6]:PORT`: a host (brackets taken off) and a port 1-65535.
pub fn host_and_port(text: &str) -> Result<(String, u16), String> {
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

/// The client's server: `HOST PORT`, or `HOST:PORT` or `[V6]:PORT` as one
/// argument. A bare IPv6 address has colons of its own, so it takes its port
/// only as a second argument.
fn server_address(args: &[String]) -> Result<(String, u16), String> {
    match args {
        [host, ..] if host.is_empty() => {
            Err("invalid host '': expected a name or an address".into())
        }
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

/// argh's messages span lines and start with a capital; ours are one line.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let joined = joined.trim_end_matches('.');
    let mut chars = joined.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "invalid arguments".to_string(),
    }
}

fn port(text: &str, lowest: u16) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p >= lowest => Ok(p),
        _ => Err(format!("invalid port '{text}': expected a number from {lowest} to 65535")),
    }
}

/// `--bind`: an address to listen on, all IPv4 interfaces when not given.
fn bind_address(text: Option<&str>) -> Result<IpAddr, String> {
    text.map_or(Ok(IpAddr::from([0, 0, 0, 0])), ip_address)
}

fn ip_address(text: &str) -> Result<IpAddr, String> {
    crate::wire::net::unbracket(text).parse().map_err(|_| {
        format!("invalid address '{text}' for --bind: expected an IPv4 or IPv6 address")
    })
}

/// Seconds as a decimal number such as `10` or `0.5`, read without floating
/// point: parsing a float would add its whole machinery to the binary.
pub(crate) fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("invalid value '{text}' for {flag}: expected a number of seconds above 0");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0
        || !digits(whole)
        || !digits(fraction)
        || fraction.len() > 9
    {
        return Err(invalid());
    }
    let secs: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| invalid())? };
    let nanos: u32 = format!("{fraction:0<9}").parse().map_err(|_| invalid())?;
    let duration = Duration::new(secs, nanos);
    if duration.is_zero() || secs > 1_000_000_000 {
        return Err(invalid());
    }
    Ok(duration)
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

fn nets(flag: &str, texts: &[String]) -> Result<Vec<Net>, String> {
    texts
        .iter()
        .map(|text| {
            Net::parse(text).map_err(|why| format!("invalid network '{text}' for {flag}: {why}"))
        })
        .collect()
}

fn max_chats(text: Option<&str>) -> Result<usize, String> {
    let Some(text) = text else { return Ok(DEFAULT_MAX_CHATS) };
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_MAX_CHATS).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid value '{text}' for --max-chats: expected a number from 1 to {MAX_MAX_CHATS}"
        )),
    }
}

fn idle_timeout(text: Option<&str>) -> Result<Option<Duration>, String> {
    text.map(|t| seconds("--idle-timeout", t)).transpose()
}

fn max_line(text: Option<&str>) -> Result<usize, String> {
    let Some(text) = text else { return Ok(DEFAULT_MAX_LINE) };
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_MAX_LINE).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid value '{text}' for --max-line: expected a number of bytes from 1 to {MAX_MAX_LINE}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Config {
        match parse_with(args, None) {
            Ok(Parsed::Run(config)) => config,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse_with(args, None) {
            Err(usage) => usage.message,
            other => panic!("{args:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn server_defaults() {
        let want = ServerConfig {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 2000,
            idle_timeout: None,
            max_line: DEFAULT_MAX_LINE,
            private: false,
            admission: Admission::default(),
            relay: None,
        };
        assert_eq!(run(&["server", "2000"]), Config::Server(want));
    }

    #[test]
    fn server_options() {
        let Config::Server(s) =
            run(&["server", "--bind", "::1", "--idle-timeout", "1.5", "--max-line", "10", "0"])
        else {
            panic!()
        };
        assert_eq!(s.bind, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(s.idle_timeout, Some(Duration::from_millis(1500)));
        assert_eq!((s.max_line, s.port), (10, 0));
        let Config::Server(s) = run(&["server", "--bind", "[::]", "1"]) else { panic!() };
        assert_eq!(s.bind, "::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn client_defaults_and_options() {
        let want = ClientConfig {
            host: "localhost".into(),
            port: 2000,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: None,
            max_line: DEFAULT_MAX_LINE,
            private: false,
            relay: None,
        };
        assert_eq!(run(&["client", "localhost", "2000"]), Config::Client(want));
        let args = [
            "client",
            "--connect-timeout",
            "3",
            "--idle-timeout",
            "0.5",
            "--max-line",
            "5",
            "::1",
            "9",
        ];
        let Config::Client(c) = run(&args) else { panic!() };
        assert_eq!(
            (c.host.as_str(), c.port, c.connect_timeout, c.idle_timeout, c.max_line),
            ("::1", 9, Duration::from_secs(3), Some(Duration::from_millis(500)), 5)
        );
        assert!(error(&["client", "--idle-timeout", "0", "h", "1"]).contains("--idle-timeout"));
    }

    /// The text `args` print as help.
    fn help_of(args: &[&str]) -> String {
        match parse_with(args, None) {
            Ok(Parsed::Help(text)) => text,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn help_words_are_hosts_below_the_top_level() {
        // `help` is no help trigger below the top level, and `-h` after `--`
        // is a positional like any other.
        let Config::Client(c) = run(&["client", "help", "2000"]) else { panic!() };
        assert_eq!(c.host, "help");
        let Config::Client(c) = run(&["client", "--", "-h", "2000"]) else { panic!() };
        assert_eq!(c.host, "-h");
        assert!(error(&["server", "help"]).starts_with("invalid port 'help'"));
    }

    #[test]
    fn dash_h_is_help_wherever_dash_dash_help_is() {
        assert_eq!(help_of(&["-h"]), help_of(&["--help"]));
        for command in commands() {
            let long = help_of(&[command, "--help"]);
            assert!(long.starts_with(&format!("Usage: smolchat {command}")), "{long}");
            assert_eq!(help_of(&[command, "-h"]), long, "{command} -h");
        }
        // Anywhere an option could be, whatever else is given (this was a
        // host and a usage error before `-h` was help).
        let client = help_of(&["client", "--help"]);
        assert_eq!(help_of(&["client", "-h", "2000"]), client);
        assert_eq!(help_of(&["client", "localhost", "2000", "-h"]), client);
        assert_eq!(help_of(&["client", "--max-line", "5", "-h"]), client);
        // An option's value is a value, as `--help` would be.
        assert_eq!(
            error(&["server", "--bind", "-h", "1"]),
            "invalid address '-h' for --bind: expected an IPv4 or IPv6 address"
        );
        // An earlier mistake is still reported first, as with `--help`.
        assert!(error(&["server", "--frob", "-h"]).contains("--frob"));
    }

    #[test]
    fn every_help_names_dash_h() {
        assert!(help_of(&["--help"]).contains("\n  -h, --help        display usage information"));
        for command in commands() {
            let text = help_of(&[command, "--help"]);
            assert!(text.contains("\n  -h, --help        display usage information"), "{text}");
            assert!(!text.contains("\n  --help "), "{text}");
        }
    }

    #[test]
    fn help_as_a_command_prints_the_usage() {
        assert_eq!(help_of(&["help"]), help_of(&["--help"]));
        for command in commands() {
            assert_eq!(help_of(&["help", command]), help_of(&[command, "--help"]), "{command}");
            // argh alone would hand the command a `help` to take as a port.
            assert_eq!(help_of(&["--help", command]), help_of(&[command, "--help"]));
            assert_eq!(help_of(&["-h", command]), help_of(&[command, "--help"]));
        }
        assert_eq!(
            error(&["help", "nosuch"]),
            "unknown command 'nosuch' after help: expected 'server', 'client' or 'relay'"
        );
        assert_eq!(error(&["help", "server", "2000"]), "unrecognized argument: 2000");
        assert_eq!(parse(&["help", "nosuch"]).unwrap_err().command, "smolchat");
    }

    #[test]
    fn the_client_takes_host_colon_port_as_one_argument() {
        let server = |args: &[&str]| match run(args) {
            Config::Client(c) => (c.host, c.port),
            other => panic!("{other:?}"),
        };
        let want = |host: &str, port| (host.to_string(), port);
        assert_eq!(server(&["client", "localhost:2000"]), want("localhost", 2000));
        assert_eq!(server(&["client", "192.0.2.7:1"]), want("192.0.2.7", 1));
        assert_eq!(server(&["client", "[::1]:2000"]), want("::1", 2000));
        assert_eq!(server(&["client", "[2001:db8::1]:65535"]), want("2001:db8::1", 65535));
        // The two-argument form, with or without brackets.
        assert_eq!(server(&["client", "::1", "2000"]), want("::1", 2000));
        assert_eq!(server(&["client", "[::1]", "2000"]), want("[::1]", 2000));
        assert_eq!(server(&["client", "localhost", "2000"]), want("localhost", 2000));
        // Options go before or after it.
        let Config::Client(c) = run(&["client", "h:9", "--max-line", "7"]) else { panic!() };
        assert_eq!((c.host.as_str(), c.port, c.max_line), ("h", 9, 7));
    }

    #[test]
    fn a_port_given_twice_is_a_usage_error() {
        assert_eq!(
            error(&["client", "localhost:2000", "2000"]),
            "the port is given twice: in 'localhost:2000' and as '2000'"
        );
        assert_eq!(
            error(&["client", "[::1]:2000", "3000"]),
            "the port is given twice: in '[::1]:2000' and as '3000'"
        );
    }

    #[test]
    fn a_bare_ipv6_address_alone_needs_brackets_or_a_second_argument() {
        assert_eq!(
            error(&["client", "::1"]),
            "invalid server '::1': an IPv6 address goes in brackets before its port \
             ([::1]:PORT), or before the port as a second argument (::1 PORT)"
        );
        // Its last group is not taken for a port: `::1:2000` is an address.
        assert!(error(&["client", "::1:2000"]).contains("([::1:2000]:PORT)"));
    }

    #[test]
    fn one_argument_without_a_port() {
        for text in ["localhost", "[::1]", "192.0.2.7"] {
            assert_eq!(
                error(&["client", text]),
                format!("no port given after '{text}': expected HOST PORT or HOST:PORT")
            );
        }
        assert_eq!(
            error(&["client", "localhost:0"]),
            "invalid server 'localhost:0': invalid port '0': expected a number from 1 to 65535"
        );
        assert!(error(&["client", ":2000"]).starts_with("invalid server ':2000': expected"));
        assert!(error(&["client", "[::1]2000"]).starts_with("invalid server '[::1]2000'"));
        assert_eq!(
            error(&["client"]),
            "required positional arguments not provided: HOST PORT \
             (or HOST:PORT, or --relay HOST:PORT)"
        );
    }

    #[test]
    fn an_empty_host_is_a_usage_error() {
        assert_eq!(
            error(&["client", "", "2000"]),
            "invalid host '': expected a name or an address"
        );
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse(&["--help"]), Ok(Parsed::Help(t)) if t.contains("server")));
        assert!(matches!(parse(&["-h"]), Ok(Parsed::Help(_))));
        assert!(
            matches!(parse(&["server", "--help"]), Ok(Parsed::Help(t)) if t.contains("--idle-timeout"))
        );
        assert!(
            matches!(parse(&["client", "--help"]), Ok(Parsed::Help(t)) if t.contains("--connect-timeout"))
        );
        assert_eq!(parse(&["--version"]), Ok(Parsed::Version));
    }

    #[test]
    fn ports_out_of_range() {
        assert_eq!(
            error(&["client", "host", "99999"]),
            "invalid port '99999': expected a number from 1 to 65535"
        );
        assert_eq!(
            error(&["client", "host", "0"]),
            "invalid port '0': expected a number from 1 to 65535"
        );
        assert_eq!(
            error(&["server", "65536"]),
            "invalid port '65536': expected a number from 0 to 65535"
        );
        assert!(error(&["server", "-1"]).contains("-1"));
        assert!(error(&["server", "http"]).contains("invalid port 'http'"));
    }

    #[test]
    fn usage_errors_are_one_lowercase_line() {
        let cases: &[&[&str]] = &[
            &[],
            &["serve", "1"],
            &["server"],
            &["server", "1", "2"],
            &["server", "--frob", "1"],
            &["server", "--bind"],
            &["server", "--bind", "nowhere", "1"],
            &["server", "--idle-timeout", "0", "1"],
            &["server", "--max-line", "0", "1"],
            &["server", "--max-line", "lots", "1"],
            &["client", "host"],
            &["client", "--connect-timeout", "-1", "host", "1"],
            &["client", "::1"],
            &["client", "h:1", "1"],
            &["help", "nosuch"],
        ];
        for args in cases {
            let message = error(args);
            assert!(!message.contains('\n'), "{args:?}: {message}");
            assert!(message.starts_with(char::is_lowercase), "{args:?}: {message}");
        }
        assert_eq!(error(&[]), "no command given: expected 'server', 'client' or 'relay'");
        assert!(error(&["server", "--frob", "1"]).contains("--frob"));
        assert!(error(&["server"]).to_lowercase().contains("port"));
    }

    #[test]
    fn seconds_take_whole_and_decimal_numbers() {
        let ok = |t: &str| seconds("--x", t).unwrap();
        assert_eq!(ok("10"), Duration::from_secs(10));
        assert_eq!(ok("0.5"), Duration::from_millis(500));
        assert_eq!(ok(".25"), Duration::from_millis(250));
        assert_eq!(ok("2."), Duration::from_secs(2));
        assert_eq!(ok("0.000000001"), Duration::from_nanos(1));
        for bad in
            ["", ".", "0", "0.0", "-1", "1e3", "1.2.3", "0.0000000001", "x", " 1", "99999999999"]
        {
            assert!(seconds("--x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn allow_and_deny_repeat_and_are_checked() {
        let args = ["server", "--allow", "10.0.0.0/8", "--allow", "::1", "--deny", "10.0.0.5", "1"];
        let Config::Server(s) = run(&args) else { panic!() };
        assert_eq!(s.admission.allow.len(), 2);
        assert_eq!(s.admission.deny, vec![Net::parse("10.0.0.5").unwrap()]);
        assert_eq!(
            error(&["server", "--allow", "10.0.0.0/33", "1"]),
            "invalid network '10.0.0.0/33' for --allow: expected a prefix length from 0 to 32 after '/'"
        );
        assert!(error(&["server", "--deny", "host", "1"])
            .starts_with("invalid network 'host' for --deny"));
    }

    #[test]
    fn private_is_a_switch_on_both_sides() {
        #[cfg(feature = "private")]
        {
            let Config::Server(s) = run(&["server", "--private", "1"]) else { panic!() };
            assert!(s.private);
            let Config::Client(c) = run(&["client", "--private", "h", "1"]) else { panic!() };
            assert!(c.private);
        }
        #[cfg(not(feature = "private"))]
        for args in [&["server", "--private", "1"][..], &["client", "--private", "h", "1"]] {
            assert!(error(args).starts_with("--private is not available"), "{args:?}");
        }
        // The code never goes on the command line.
        assert!(error(&["client", "--private", "--code", "x", "h", "1"]).contains("--code"));
    }

    #[test]
    fn relay_takes_the_place_of_the_port_and_host() {
        #[cfg(feature = "private")]
        {
            let relay =
                |host: &str, port, relay_only| Some(Relay { host: host.into(), port, relay_only });
            let Config::Server(s) = run(&["server", "--relay", "relay.example:7000"]) else {
                panic!()
            };
            assert_eq!(s.relay, relay("relay.example", 7000, false));
            assert!(s.private, "--relay implies --private");
            let Config::Client(c) = run(&["client", "--relay-only", "--relay", "[::1]:7"]) else {
                panic!()
            };
            assert_eq!(c.relay, relay("::1", 7, true));
            assert_eq!((c.host.as_str(), c.port, c.private), ("::1", 7, true));
            // SMOLCHAT_RELAY only when the command line names no port or host.
            let from_env = |args: &[&str]| match parse_with(args, Some("203.0.113.9:9")) {
                Ok(Parsed::Run(config)) => config,
                other => panic!("{other:?}"),
            };
            let Config::Server(s) = from_env(&["server"]) else { panic!() };
            assert_eq!(s.relay, relay("203.0.113.9", 9, false));
            let Config::Server(s) = from_env(&["server", "2000"]) else { panic!() };
            assert_eq!((s.relay, s.port), (None, 2000));
            let Config::Client(c) = from_env(&["client"]) else { panic!() };
            assert_eq!(c.relay, relay("203.0.113.9", 9, false));
            let Config::Client(c) = from_env(&["client", "h", "1"]) else { panic!() };
            assert_eq!(c.relay, None);
        }
        #[cfg(not(feature = "private"))]
        assert!(error(&["server", "--relay", "r:1"]).starts_with("--private is not available"));
        assert_eq!(
            error(&["server", "--relay", "r:1", "2000"]),
            "--relay takes the place of the port (and host): give one or the other"
        );
        assert!(error(&["client", "--relay", "r:1", "h", "1"]).starts_with("--relay takes"));
        assert_eq!(error(&["server", "--relay-only", "1"]), "--relay-only goes with --relay");
        for flag in [&["--bind", "::"][..], &["--allow", "::1"], &["--deny", "::1"]] {
            let mut args = vec!["server", "--relay", "r:1"];
            args.extend_from_slice(flag);
            assert!(error(&args).contains("does not apply to a server that meets"), "{flag:?}");
        }
        assert_eq!(
            error(&["server", "--relay", "::1:7000"]),
            "invalid relay '::1:7000' in --relay: expected HOST:PORT or [IPv6]:PORT \
             (an IPv6 address goes in brackets)"
        );
        assert!(error(&["client", "--relay", "r:0"]).contains("invalid port '0'"));
        assert!(error(&["client", "--relay", "r"]).contains("expected HOST:PORT"));
        assert!(error(&["client", "--relay", "[::1]7"]).contains("expected HOST:PORT"));
        assert!(error(&["client", "--relay", ":7"]).contains("expected HOST:PORT"));
        assert!(error(&["client"]).contains("required positional arguments not provided"));
        assert!(error(&["client", "h", "1", "2"]).contains("unrecognized argument: 2"));
    }

    #[test]
    fn relay_defaults_and_options() {
        let want = RelayConfig {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 4000,
            max_chats: 10_000,
            wait: Duration::from_secs(600),
        };
        assert_eq!(parse(&["relay", "4000"]), Ok(Parsed::Relay(want)));
        let args = ["relay", "--bind", "[::1]", "--max-chats", "4", "--wait", "1.5", "0"];
        let want = RelayConfig {
            bind: "::1".parse().unwrap(),
            port: 0,
            max_chats: 4,
            wait: Duration::from_millis(1500),
        };
        assert_eq!(parse(&args), Ok(Parsed::Relay(want)));
        assert!(
            matches!(parse(&["relay", "--help"]), Ok(Parsed::Help(t)) if t.contains("--max-chats"))
        );
    }

    #[test]
    fn relay_usage_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["relay"], "PORT"),
            (&["relay", "65536"], "invalid port '65536': expected a number from 0 to 65535"),
            (
                &["relay", "--max-chats", "0", "1"],
                "invalid value '0' for --max-chats: expected a number from 1 to 1000000",
            ),
            (&["relay", "--max-chats", "lots", "1"], "invalid value 'lots' for --max-chats"),
            (&["relay", "--max-chats", "1000001", "1"], "--max-chats"),
            (
                &["relay", "--wait", "0", "1"],
                "invalid value '0' for --wait: expected a number of seconds above 0",
            ),
            (&["relay", "--wait", "-1", "1"], "--wait"),
            (&["relay", "--bind", "nowhere", "1"], "invalid address 'nowhere' for --bind"),
            (&["relay", "--frob", "1"], "--frob"),
            (&["relay", "1", "2"], "2"),
        ];
        for (args, want) in cases {
            let usage = parse(args).unwrap_err();
            assert!(usage.message.contains(want), "{args:?}: {}", usage.message);
            assert!(!usage.message.contains('\n'), "{args:?}: {}", usage.message);
            assert_eq!(usage.lines()[1], "run 'smolchat relay --help' for usage", "{args:?}");
        }
    }

    #[test]
    fn usage_names_the_subcommand_help() {
        let usage = parse(&["client", "h", "0"]).unwrap_err();
        assert_eq!(usage.lines()[1], "run 'smolchat client --help' for usage");
    }
}
