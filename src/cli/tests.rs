//! The command line's unit tests: argh's typed readers, the one pass over
//! the rules that span several flags, and every message a usage error says.

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
        relay_only: false,
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
        relay_only: false,
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
fn a_port_alone_is_a_missing_host() {
    assert_eq!(
        error(&["client", "2000"]),
        "no host given before the port 2000: the server's name or address goes first, \
         as in 'smolchat client HOST 2000'"
    );
    // A name or an address alone still misses its port.
    assert!(error(&["client", "h2000"]).starts_with("no port given after 'h2000'"));
}

#[test]
fn an_address_where_the_port_goes_points_to_bind() {
    assert_eq!(
        error(&["server", "127.0.0.1", "2000"]),
        "invalid port '127.0.0.1': an address to listen on goes after --bind, \
         as in 'smolchat server --bind 127.0.0.1 2000'"
    );
    assert_eq!(
        error(&["relay", "[::1]", "7000"]),
        "invalid port '[::1]': an address to listen on goes after --bind, \
         as in 'smolchat relay --bind [::1] 7000'"
    );
    assert!(error(&["server", "::"]).ends_with("'smolchat server --bind :: PORT'"));
    assert!(error(&["--version", "relay", "::", "1"]).ends_with("'smolchat relay --bind :: 1'"));
    // A name is no address to listen on, and a value of --bind is a value.
    assert_eq!(
        error(&["server", "localhost", "2000"]),
        "invalid port 'localhost': expected a number from 0 to 65535"
    );
    assert_eq!(error(&["server", "--bind", "::1", "2000", "3000"]), "unrecognized argument: 3000");
}

#[test]
fn an_empty_host_is_a_usage_error() {
    assert_eq!(error(&["client", "", "2000"]), "invalid host '': expected a name or an address");
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
    for bad in ["", ".", "0", "0.0", "-1", "1e3", "1.2.3", "0.0000000001", "x", " 1", "99999999999"]
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
    assert!(
        error(&["server", "--deny", "host", "1"]).starts_with("invalid network 'host' for --deny")
    );
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
        let relay = |host: &str, port| Some(Address { host: host.into(), port });
        let Config::Server(s) = run(&["server", "--relay", "relay.example:7000"]) else { panic!() };
        assert_eq!((s.relay, s.relay_only), (relay("relay.example", 7000), false));
        assert!(s.private, "--relay implies --private");
        let Config::Client(c) = run(&["client", "--relay-only", "--relay", "[::1]:7"]) else {
            panic!()
        };
        assert_eq!((c.relay, c.relay_only), (relay("::1", 7), true));
        assert_eq!((c.host.as_str(), c.port, c.private), ("::1", 7, true));
        // SMOLCHAT_RELAY only when the command line names no port or host.
        let from_env = |args: &[&str]| match parse_with(args, Some("203.0.113.9:9")) {
            Ok(Parsed::Run(config)) => config,
            other => panic!("{other:?}"),
        };
        let Config::Server(s) = from_env(&["server"]) else { panic!() };
        assert_eq!(s.relay, relay("203.0.113.9", 9));
        let Config::Server(s) = from_env(&["server", "2000"]) else { panic!() };
        assert_eq!((s.relay, s.port), (None, 2000));
        let Config::Client(c) = from_env(&["client"]) else { panic!() };
        assert_eq!(c.relay, relay("203.0.113.9", 9));
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

#[test]
fn seconds_out_of_range_say_which_limit() {
    let cases = [
        ("0", "expected a number of seconds above 0"),
        ("0.000", "expected a number of seconds above 0"),
        ("soon", "expected a number of seconds above 0"),
        ("1.5x", "expected a number of seconds above 0"),
        ("0.0000000001", "expected at most 9 decimal places"),
        ("1000000001", "expected at most 1000000000 seconds"),
        ("99999999999999999999", "expected at most 1000000000 seconds"),
    ];
    for (text, want) in cases {
        let message = error(&["server", "--idle-timeout", text, "2000"]);
        assert_eq!(message, format!("invalid value '{text}' for --idle-timeout: {want}"));
    }
    let Config::Server(most) = run(&["server", "--idle-timeout", "1000000000.999999999", "2000"])
    else {
        panic!("not a server")
    };
    assert_eq!(most.idle_timeout, Some(Duration::new(1_000_000_000, 999_999_999)));
}
