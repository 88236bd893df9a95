//! The command line run for real: help and version on stdout, usage errors
//! as two stderr lines with exit 2, and the failures that must read well.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::session::assert_clean_stderr;
use crate::util::{self, run, Proc};

/// Runs smolchat and checks what every run must: clean stderr lines.
fn smolchat(args: &[&str]) -> (Option<i32>, String, String) {
    let (code, out, err) = run(args);
    assert_clean_stderr(&format!("smolchat {args:?}"), &err);
    (code, out, err)
}

#[test]
fn help_goes_to_stdout_with_exit_0() {
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--help"], &["server", "client", "--version"]),
        (&["-h"], &["server", "client"]),
        (&["server", "--help"], &["--bind", "--idle-timeout", "--max-line", "PORT"]),
        (&["client", "--help"], &["--connect-timeout", "--max-line", "HOST", "PORT"]),
    ];
    for (args, words) in cases {
        let (code, out, err) = smolchat(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
        for word in words {
            assert!(out.contains(word), "{args:?}: no {word:?} in\n{out}");
        }
    }
}

/// The help `args` print, checked to go to stdout alone with exit 0.
fn help(args: &[&str]) -> String {
    let (code, out, err) = smolchat(args);
    assert_eq!((code, err.as_str()), (Some(0), ""), "{args:?}");
    out
}

/// Whether `text` holds `line` as a whole line, its indent aside.
fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l.trim_start() == line)
}

#[test]
fn help_is_a_quick_start() {
    let out = help(&["help"]);
    assert_eq!(out, help(&["--help"]));
    // The three ways to chat, each as the commands the two people run.
    for line in [
        "smolchat server 2000",
        "smolchat client HOST 2000",
        "smolchat server --private 2000",
        "smolchat client --private HOST 2000",
        "smolchat server --relay RELAY:7000",
        "smolchat client --relay RELAY:7000",
        "With SMOLCHAT_RELAY=RELAY:7000 set, both may leave --relay out.",
        // Who speaks first, and how to leave.
        "The client speaks first; then each waits for the other's line, in turn.",
        "To leave, type EXIT or press Ctrl-D; Ctrl-C ends smolchat at once. At the",
        "server, EXIT ends the chat with this client and waits for the next one,",
        "and Ctrl-D ends the server.",
    ] {
        assert!(has_line(&out, line), "no line {line:?} in\n{out}");
    }
}

#[test]
fn help_relay_says_how_people_use_a_relay() {
    let out = help(&["help", "relay"]);
    for line in [
        "Run a relay: two people who cannot reach each other meet and chat through it.",
        "smolchat relay 7000",
        "One person points a server at it; the server shows a code to pass on:",
        "smolchat server --relay relay.example.org:7000",
        "The other points a client at it and types that code when asked:",
        "smolchat client --relay relay.example.org:7000",
        "Or each names the relay once: export SMOLCHAT_RELAY=relay.example.org:7000",
    ] {
        assert!(has_line(&out, line), "no line {line:?} in\n{out}");
    }
    for jargon in ["sealed", "NAT", "bytes"] {
        assert!(!out.contains(jargon), "{jargon:?} in\n{out}");
    }
}

#[test]
fn every_command_help_names_every_option() {
    let cases: [(&str, &[&str]); 3] = [
        (
            "server",
            &[
                "--bind",
                "--idle-timeout",
                "--max-line",
                "--private",
                "--allow",
                "--deny",
                "--relay",
                "--relay-only",
            ],
        ),
        (
            "client",
            &[
                "--connect-timeout",
                "--idle-timeout",
                "--max-line",
                "--private",
                "--relay",
                "--relay-only",
            ],
        ),
        ("relay", &["--bind", "--max-chats", "--wait"]),
    ];
    for (command, options) in cases {
        let out = help(&["help", command]);
        let listed: Vec<&str> = out
            .split("\nOptions:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{command}: no options in\n{out}"))
            .lines()
            .take_while(|line| !line.is_empty())
            .filter_map(|line| line.trim_start().strip_prefix("--"))
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        let want: Vec<&str> = options.iter().map(|o| &o[2..]).collect();
        assert_eq!(listed, want, "{command}:\n{out}");
        assert!(has_line(&out, "-h, --help        display usage information"), "{out}");
    }
}

#[test]
fn every_help_form_prints_the_same_usage_with_exit_0() {
    // (the form typed, the `--help` form it must print the same as)
    let cases: &[(&[&str], &[&str])] = &[
        (&["-h"], &["--help"]),
        (&["help"], &["--help"]),
        (&["server", "-h"], &["server", "--help"]),
        (&["client", "-h"], &["client", "--help"]),
        (&["help", "server"], &["server", "--help"]),
        (&["help", "client"], &["client", "--help"]),
        (&["--help", "server"], &["server", "--help"]),
        (&["-h", "client"], &["client", "--help"]),
        (&["client", "-h", "2000"], &["client", "--help"]),
        (&["server", "2000", "-h"], &["server", "--help"]),
    ];
    for (args, long) in cases {
        let (_, want, _) = smolchat(long);
        assert!(want.starts_with("Usage: smolchat"), "{long:?}: {want}");
        let (code, out, err) = smolchat(args);
        assert_eq!((code, err.as_str()), (Some(0), ""), "{args:?}");
        assert_eq!(out, want, "{args:?}");
    }
    let (_, out, _) = smolchat(&["client", "-h"]);
    assert!(out.contains("\n  -h, --help "), "{out}");
}

#[test]
fn version_goes_to_stdout_with_exit_0() {
    let (code, out, err) = smolchat(&["--version"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, concat!("smolchat ", env!("CARGO_PKG_VERSION"), "\n"));
    assert_eq!(err, "");
}

/// Checks a usage error: nothing on stdout, exactly the error line and the
/// help hint for `command` on stderr, exit 2. Returns the error line.
fn usage_error(args: &[&str], command: &str) -> String {
    let (code, out, err) = smolchat(args);
    assert_eq!(code, Some(2), "{args:?}: {err}");
    assert_eq!(out, "", "{args:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{args:?}: {err}");
    assert!(lines[0].starts_with("smolchat: error: "), "{args:?}: {err}");
    assert_eq!(lines[1], format!("smolchat: run '{command} --help' for usage"), "{args:?}");
    lines[0].to_string()
}

#[test]
fn usage_errors_are_two_lines_and_exit_2() {
    let cases: &[(&[&str], &str, &str)] = &[
        // (arguments, command named in the hint, a word the error must name)
        (&[], "smolchat", "no command"),
        (&["chat"], "smolchat", "chat"),
        (&["--frob"], "smolchat", "--frob"),
        (&["server"], "smolchat server", "PORT"),
        (&["server", "--frob", "2000"], "smolchat server", "--frob"),
        (&["server", "--bind"], "smolchat server", "--bind"),
        (&["server", "--bind", "nowhere", "2000"], "smolchat server", "nowhere"),
        (&["server", "--idle-timeout", "soon", "2000"], "smolchat server", "soon"),
        (&["server", "--idle-timeout", "0", "2000"], "smolchat server", "--idle-timeout"),
        (&["server", "--max-line", "0", "2000"], "smolchat server", "--max-line"),
        (&["server", "--max-line", "lots", "2000"], "smolchat server", "lots"),
        (&["server", "2000", "3000"], "smolchat server", "3000"),
        (&["server", "65536"], "smolchat server", "65536"),
        (&["server", "-1"], "smolchat server", "-1"),
        (&["client", "localhost"], "smolchat client", "PORT"),
        (&["client", "localhost", "2000", "extra"], "smolchat client", "extra"),
        (&["client", "--connect-timeout"], "smolchat client", "--connect-timeout"),
        (&["client", "--connect-timeout", "x", "h", "1"], "smolchat client", "'x'"),
        (&["client", "--max-line", "0", "h", "1"], "smolchat client", "--max-line"),
        (&["client", "::1"], "smolchat client", "brackets"),
        (&["client", "localhost:2000", "2000"], "smolchat client", "given twice"),
        (&["client", "localhost:0"], "smolchat client", "'0'"),
        (&["help", "nosuch"], "smolchat", "nosuch"),
        (&["help", "client", "extra"], "smolchat", "extra"),
    ];
    for (args, command, word) in cases {
        let line = usage_error(args, command);
        assert!(line.contains(word), "{args:?}: {word:?} not named in {line:?}");
    }
}

#[test]
fn ports_out_of_range_are_named() {
    for (args, port, lowest) in [
        (&["client", "host", "99999"][..], "99999", 1),
        (&["client", "host", "0"], "0", 1),
        (&["server", "70000"], "70000", 0),
    ] {
        let command = format!("smolchat {}", args[0]);
        let line = usage_error(args, &command);
        assert_eq!(
            line,
            format!(
                "smolchat: error: invalid port '{port}': expected a number from {lowest} to 65535"
            )
        );
    }
}

#[test]
fn bare_smolchat_is_a_usage_error() {
    let line = usage_error(&[], "smolchat");
    assert_eq!(line, "smolchat: error: no command given: expected 'server', 'client' or 'relay'");
}

#[test]
fn the_port_given_twice_says_where() {
    let line = usage_error(&["client", "localhost:2000", "2000"], "smolchat client");
    assert_eq!(line, "smolchat: error: the port is given twice: in 'localhost:2000' and as '2000'");
}

#[test]
fn a_bare_ipv6_address_alone_says_how_to_give_its_port() {
    let line = usage_error(&["client", "::1"], "smolchat client");
    assert_eq!(
        line,
        "smolchat: error: invalid server '::1': an IPv6 address goes in brackets before its \
         port ([::1]:PORT), or before the port as a second argument (::1 PORT)"
    );
}

#[test]
fn a_port_alone_is_a_missing_host() {
    let line = usage_error(&["client", "2000"], "smolchat client");
    assert_eq!(
        line,
        "smolchat: error: no host given before the port 2000: the server's name or address \
         goes first, as in 'smolchat client HOST 2000'"
    );
}

#[test]
fn a_server_given_an_address_and_a_port_is_pointed_to_bind() {
    let line = usage_error(&["server", "127.0.0.1", "2000"], "smolchat server");
    assert_eq!(
        line,
        "smolchat: error: invalid port '127.0.0.1': an address to listen on goes after --bind, \
         as in 'smolchat server --bind 127.0.0.1 2000'"
    );
}

/// A client started with `server` for its HOST and PORT chats with `peer`
/// once and exits 0; `connected` is the status line it must print.
fn chat_once(peer: &mut Proc, server: &[&str], connected: &str) {
    let mut client = Proc::smolchat(&[&["client"], server].concat());
    assert_eq!(client.stderr_line_containing("connected to"), connected, "{server:?}");
    peer.stderr_line_containing(" connected");
    client.send(format!("via {server:?}\n").as_bytes());
    assert_eq!(peer.stdout_line(), format!("via {server:?}\n"));
    peer.send(b"ok\n");
    assert_eq!(client.stdout_line(), "ok\n");
    client.send(b"EXIT\n");
    let (code, _, err) = client.finish();
    assert_eq!(code, Some(0), "{server:?}: {err}");
    peer.stderr_line_containing(" left");
}

#[test]
fn the_client_takes_host_colon_port_as_one_argument() {
    let (mut peer, port) = Proc::server(&[]);
    let connected = format!("smolchat: connected to 127.0.0.1:{port}\n");
    chat_once(&mut peer, &[&format!("127.0.0.1:{port}")], &connected);
    chat_once(&mut peer, &["127.0.0.1", &port.to_string()], &connected);
    drop(peer);

    if let Err(e) = TcpListener::bind("[::1]:0") {
        return util::skip(&format!("cannot bind ::1: {e}"));
    }
    let mut peer = Proc::smolchat(&["server", "--bind", "::1", "0"]);
    let line = peer.stderr_line_containing("listening on ");
    let port = line
        .strip_prefix("smolchat: listening on [::1]:")
        .and_then(|p| p.trim_end().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    let connected = format!("smolchat: connected to [::1]:{port}\n");
    chat_once(&mut peer, &[&format!("[::1]:{port}")], &connected);
    // A bare IPv6 address keeps working with its port as a second argument.
    chat_once(&mut peer, &["::1", &port.to_string()], &connected);
}

#[test]
fn help_is_a_host_name_for_the_client() {
    // `help` is the HOST here: it is looked up, not answered with help text.
    let (code, out, err) = smolchat(&["client", "help", "2000"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out, "");
    assert!(
        err.starts_with("smolchat: error: cannot resolve help")
            || err.starts_with("smolchat: error: cannot connect to help:2000"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn port_in_use() {
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (code, out, err) = smolchat(&["server", &port.to_string()]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "smolchat: error: cannot listen on 0.0.0.0:{port}: address already in use \
             (try another port, or 0 for any free one)\n"
        )
    );
}

#[test]
fn privileged_port_without_privilege() {
    util::native_only("privileged ports are Unix (any Windows user may bind port 1)");
    let first_free = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .unwrap_or(1024);
    if first_free <= 1 {
        return util::skip(&format!("every user may bind port 1 (unprivileged from {first_free})"));
    }
    // As root, the check runs as nobody: setpriv drops the capabilities with
    // the user, so the bind meets the same refusal as for anyone else.
    let mut cmd = if as_root() {
        if !util::have("setpriv") {
            return;
        }
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        cmd.arg(env!("CARGO_BIN_EXE_smolchat"));
        cmd
    } else {
        util::smolchat()
    };
    let out = cmd.args(["server", "1"]).stdin(std::process::Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(out.stdout, b"");
    assert_eq!(err, "smolchat: error: cannot listen on 0.0.0.0:1: permission denied\n");
}

/// Whether the tests run as root.
fn as_root() -> bool {
    let uid = std::process::Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&uid.stdout).trim() == "0"
}

#[test]
fn nobody_listening() {
    // Bind and drop, so the port is very likely closed.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, out, err) = smolchat(&["client", "127.0.0.1", &port.to_string()]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "smolchat: error: cannot connect to 127.0.0.1:{port}: connection refused \
             (is the server running?)\n"
        )
    );
}

#[test]
fn name_does_not_resolve() {
    // `.invalid` never resolves (RFC 2606), so nothing is contacted.
    let (code, out, err) = smolchat(&["client", "nonexistent.invalid", "2000"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out, "");
    assert!(err.starts_with("smolchat: error: cannot resolve nonexistent.invalid"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn connect_that_hangs_gives_up_after_the_timeout() {
    // A loopback listener that is never accepted from: once its accept
    // queue is full, Linux drops further SYNs, so a connect hangs. Filling
    // it is probed with short connects; this is a probe, not an assertion.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    // Two timeouts in a row, so that one slow connect on a busy machine is
    // not taken for a full queue.
    let mut timeouts = 0;
    for _ in 0..1024 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => {
                held.push(stream);
                timeouts = 0;
            }
            Err(_) => timeouts += 1,
        }
        if timeouts == 2 {
            break;
        }
    }
    let full = timeouts == 2;
    if !full {
        return util::skip(&format!(
            "this kernel never left a loopback connect hanging ({} connects queued)",
            held.len()
        ));
    }
    let port = addr.port().to_string();
    let (code, out, err) = smolchat(&["client", "--connect-timeout", "0.5", "127.0.0.1", &port]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out, "");
    assert_eq!(err, format!("smolchat: error: cannot connect to 127.0.0.1:{port}: timed out\n"));
}

#[test]
fn help_on_a_full_disk_is_an_error() {
    let full = match std::fs::OpenOptions::new().write(true).open("/dev/full") {
        Ok(full) => full,
        Err(e) => return util::skip(&format!("cannot open /dev/full: {e}")),
    };
    let out = crate::util::smolchat().arg("--help").stdout(full).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err, "smolchat: error: cannot write to stdout: no space left on device\n");
}

#[test]
fn the_client_tries_the_next_address_when_one_refuses() {
    // Which address a name resolves to first is up to the resolver, so the
    // addresses are given in order: a closed port, then a listener.
    let refused = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap();
    let timeout = Duration::from_secs(5);
    let stream =
        smol::block_on(smolchat::wire::net::connect("localhost", 1, &[refused, open], timeout))
            .unwrap_or_else(|e| panic!("the second address was not tried: {e}"));
    assert_eq!(stream.peer_addr().unwrap(), open);
}

/// A file of the repository, as text.
fn repository_file(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_readme_installs_from_the_lock_file_then_runs_smolchat() {
    let readme = repository_file("README.md");
    // A page a newcomer reads through; the details are in docs/.
    assert!(readme.len() < 8000, "README.md is {} bytes", readme.len());
    // The versions the tests passed with, not newer ones.
    assert!(readme.contains("\n```sh\ncargo install --locked --path .\n```\n"));
    // Then the installed command, not a build run through cargo.
    assert!(!readme.contains("cargo run"), "cargo run in README.md");
    assert!(readme.contains("\n```sh\nsmolchat server 2000\nsmolchat client 127.0.0.1 2000\n```\n"));
    // The tests' command, the one .ci/run runs.
    assert!(readme.contains("\n```sh\ncargo test\n```\n"));
    assert!(repository_file(".ci/run").contains("\ncounted cargo test\n"));
}

#[test]
fn a_relay_variable_that_is_not_utf8_is_said_not_ignored() {
    util::native_only("an environment value of raw bytes is a Unix one");
    use std::os::unix::ffi::OsStrExt;
    let relay = std::ffi::OsStr::from_bytes(b"relay\xff.example.org:7000");
    let mut cmd = util::smolchat();
    cmd.args(["client"]).env("SMOLCHAT_RELAY", relay);
    let mut client = Proc::spawn(cmd);
    client.close_stdin();
    let (code, out, err) = client.finish();
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        "smolchat: error: SMOLCHAT_RELAY is not valid UTF-8\n\
         smolchat: run 'smolchat client --help' for usage\n"
    );
}
