//! Who may join, with the real binary: `--allow` and `--deny` on IPv4 and
//! IPv6 clients; a refused client gets no byte and takes no turn.

use std::io::{ErrorKind, Write};
use std::net::TcpListener;

use crate::session::raw_rest;
use crate::util::{smolchat, Proc};

/// `smolchat server ARGS 0` and its port.
fn server(args: &[&str]) -> (Proc, u16) {
    Proc::server(args)
}

/// Clients at `host` that must be refused: one that only listens reads no
/// byte, just the end of the connection; one that says a line is not heard.
fn refused(server: &mut Proc, host: &str, port: u16) {
    let mut listener = std::net::TcpStream::connect((host, port)).expect("connect");
    listener.set_read_timeout(Some(crate::util::DEADLINE)).unwrap();
    let bytes = raw_rest(&mut listener).expect("a clean close");
    assert!(bytes.is_empty(), "a refused client read {bytes:?}");
    let line = server.stderr_line_containing(" refused");
    assert!(line.contains("not allowed to join"), "{line}");

    let mut talker = std::net::TcpStream::connect((host, port)).expect("connect");
    talker.set_read_timeout(Some(crate::util::DEADLINE)).unwrap();
    let _ = talker.write_all(b"let me in\n");
    match raw_rest(&mut talker) {
        Ok(bytes) => assert!(bytes.is_empty(), "a refused client read {bytes:?}"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
    server.stderr_line_containing(" refused");
    // The next message shown (by `served`) is the next client's, not this.
}

/// `smolchat client HOST PORT` that says `hi` and is answered.
fn served(server: &mut Proc, host: &str, port: u16) {
    let mut client = Proc::smolchat(&["client", host, &port.to_string()]);
    client.send(b"hi\n");
    assert_eq!(server.stdout_line(), "hi\n", "{}", server.report());
    server.send(b"welcome\n");
    assert_eq!(client.stdout_line(), "welcome\n");
    client.send(b"EXIT\n");
    assert_eq!(client.finish().0, Some(0));
    server.stderr_line_containing(" left");
}

/// Whether IPv6 loopback works here; a test without it is skipped.
fn have_ipv6() -> bool {
    match TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            crate::util::skip(&format!("cannot bind ::1: {e}"));
            false
        }
    }
}

#[test]
fn deny_refuses_an_ipv4_client_and_serves_the_next() {
    let (mut server, port) = server(&["--deny", "127.0.0.1"]);
    refused(&mut server, "127.0.0.1", port);
    // Nothing the refused client sent was shown.
    assert!(server.stdout().is_empty());
    let (mut other, other_port) = self::server(&["--deny", "10.0.0.0/8"]);
    served(&mut other, "127.0.0.1", other_port);
}

#[test]
fn allow_lets_in_only_its_networks_and_deny_wins() {
    let (mut server, port) = server(&["--allow", "10.0.0.0/8"]);
    refused(&mut server, "127.0.0.1", port);
    let (mut server, port) = self::server(&["--allow", "127.0.0.0/8", "--deny", "127.0.0.1/32"]);
    refused(&mut server, "127.0.0.1", port);
    let (mut server, port) = self::server(&["--allow", "10.0.0.0/8", "--allow", "127.0.0.0/8"]);
    served(&mut server, "127.0.0.1", port);
}

#[test]
fn ipv6_clients_and_ipv4_clients_of_an_ipv6_listener() {
    crate::util::native_only(
        "a Windows socket bound to :: takes IPv6 only (IPV6_V6ONLY is on by default there)",
    );
    if !have_ipv6() {
        return;
    }
    // An IPv4 client of `::` is matched as IPv4, not as ::ffff:127.0.0.1.
    let (mut server, port) = server(&["--bind", "::", "--allow", "::1"]);
    refused(&mut server, "127.0.0.1", port);
    served(&mut server, "::1", port);
    let (mut server, port) = self::server(&["--bind", "::", "--deny", "::1/128"]);
    refused(&mut server, "::1", port);
    served(&mut server, "127.0.0.1", port);
    let (mut server, port) = self::server(&["--bind", "::", "--allow", "127.0.0.0/8"]);
    served(&mut server, "127.0.0.1", port);
}

#[test]
fn a_malformed_network_is_a_usage_error() {
    let (code, _, err) = crate::util::run(&["server", "--allow", "127.0.0.1/40", "0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("smolchat: error: invalid network '127.0.0.1/40' for --allow"),
        "{err}"
    );
    let mut cmd = smolchat();
    cmd.args(["server", "--deny", "localhost", "0"]);
    let mut p = Proc::spawn(cmd);
    p.close_stdin();
    assert_eq!(p.finish().0, Some(2));
}
