//! Chats through a relay with the real binary: `smolchat relay 0`, then
//! `server --relay` and `client --relay` by code through pipes. The code
//! line and what the friend runs, a code that holds while its server waits
//! (a room renewed past `--wait`, joiners that never start the handshake),
//! wrong codes that spend a code and the run's limit of them, stale codes,
//! a new code after each chat, limits, the relay failing or not being a
//! relay in every way a person must read, IPv6, and what the relay itself
//! can see of a chat. A relay of the test's own (`Fake`) checks what the
//! chat sides ask of it, line by line.

#![cfg(feature = "private")]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::private::with_private::code_in;
use crate::session::{assert_clean_stderr, raw_accept, raw_line, raw_listener, raw_rest};
use crate::util::{smolchat, Proc, DEADLINE};

/// What a plain client is told by a private server.
const PLAIN_REPLY: &[u8] =
    b"smolchat: this chat is private: connect with 'smolchat client --private' and the code\n";

/// `smolchat relay [ARGS] 0` and the port it listens on.
pub fn relay(args: &[&str]) -> (Proc, u16) {
    let mut all = vec!["relay"];
    all.extend_from_slice(args);
    all.push("0");
    let mut relay = Proc::smolchat(&all);
    let port = relay.listening_port();
    (relay, port)
}

/// `smolchat server --relay ADDR [ARGS]`, with `SMOLCHAT_CODE` set or not,
/// and the protocol's deadlines divided by `divisor`.
pub fn server_with(relay: &str, code: Option<&str>, args: &[&str], divisor: u32) -> Proc {
    let mut cmd = smolchat();
    cmd.args(["server", "--relay", relay]).args(args);
    match code {
        Some(code) => cmd.env("SMOLCHAT_CODE", code),
        None => cmd.env_remove("SMOLCHAT_CODE"),
    };
    if divisor != 1 {
        cmd.env("SMOLCHAT_TEST_DEADLINE_DIVISOR", divisor.to_string());
    }
    Proc::spawn(cmd)
}

/// `smolchat server --relay ADDR [ARGS]`, with `SMOLCHAT_CODE` set or not.
pub fn server(relay: &str, code: Option<&str>, args: &[&str]) -> Proc {
    server_with(relay, code, args, 1)
}

/// `smolchat client --relay ADDR [ARGS]` with `SMOLCHAT_CODE=code`, and
/// the protocol's deadlines divided by `divisor`.
pub fn client_with(relay: &str, code: &str, args: &[&str], divisor: u32) -> Proc {
    let mut cmd = smolchat();
    cmd.args(["client", "--relay", relay]).args(args).env("SMOLCHAT_CODE", code);
    if divisor != 1 {
        cmd.env("SMOLCHAT_TEST_DEADLINE_DIVISOR", divisor.to_string());
    }
    Proc::spawn(cmd)
}

/// `smolchat client --relay ADDR [ARGS]` with `SMOLCHAT_CODE=code`.
pub fn client(relay: &str, code: &str, args: &[&str]) -> Proc {
    client_with(relay, code, args, 1)
}

/// The next code the server shows, from its status line.
pub fn next_code(server: &mut Proc) -> String {
    code_in(&server.stderr_line_containing("code is "))
}

/// A code of a room: its number, then three lowercase words.
fn assert_room_code(code: &str) -> u32 {
    let parts: Vec<&str> = code.split('-').collect();
    assert_eq!(parts.len(), 4, "{code}");
    assert!(parts[1..].iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())));
    parts[0].parse().unwrap_or_else(|_| panic!("no room number in {code}"))
}

/// The room a code names.
fn room_in(code: &str) -> &str {
    code.split('-').next().unwrap()
}

/// Turns both ways, each line checked as it arrives.
pub fn chat(server: &mut Proc, client: &mut Proc, turns: usize, tag: &str) {
    client.stderr_line_containing("the code matched: this chat is private");
    server.stderr_line_containing("the code matched: this chat is private");
    for turn in 0..turns {
        client.send(format!("{tag} question {turn}: ünïcode\tand tabs\n").as_bytes());
        assert_eq!(server.stdout_line(), format!("{tag} question {turn}: ünïcode\tand tabs\n"));
        server.send(format!("{tag} answer {turn}\n").as_bytes());
        assert_eq!(client.stdout_line(), format!("{tag} answer {turn}\n"));
    }
}

/// A side that exited 1 with exactly one error line, `what`.
fn assert_one_error(who: &str, (code, out, err): (Option<i32>, String, String), want: &str) {
    assert_eq!(code, Some(1), "{who}: {err}");
    assert!(out.is_empty(), "{who}: {out}");
    assert_eq!(err, format!("smolchat: error: {want}\n"), "{who}");
}

/// A side that exited 1 and whose last line was the error `want`.
fn assert_last_error(who: &str, (code, out, err): (Option<i32>, String, String), want: &str) {
    assert_eq!(code, Some(1), "{who}: {err}");
    assert!(out.is_empty(), "{who}: {out}");
    assert!(err.ends_with(&format!("smolchat: error: {want}\n")), "{who}: {err}");
    assert_eq!(err.matches("error").count(), 1, "{who}: {err}");
}

/// A wrong guess at the room of `code`, a code of the right shape.
fn guess(at: &str, code: &str) -> (Option<i32>, String, String) {
    let mut guess = client(at, &format!("{}-wild-wild-guesses", room_in(code)), &[]);
    guess.close_stdin();
    guess.finish()
}

#[test]
fn a_relayed_chat_of_many_turns_then_the_next_person() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut server = server(&at, None, &[]);
    // The code stands on a line of its own, and the next says what the
    // friend runs.
    assert_eq!(
        server.stderr_line_containing("private chat"),
        format!("smolchat: private chat through the relay {at}\n")
    );
    let line = server.stderr_line_containing("the code is ");
    let code = code_in(&line);
    assert_eq!(line, format!("smolchat: the code is {code}\n"));
    assert_room_code(&code);
    assert_eq!(
        server.stderr_line_containing("your friend runs"),
        format!("smolchat: your friend runs: smolchat client --relay {at}\n")
    );
    let mut first = client(&at, &code, &[]);
    first.stderr_line_containing(&format!("connected through the relay {at}"));
    server.stderr_line_containing(&format!("connected through the relay {at}"));
    chat(&mut server, &mut first, 40, "first");
    first.send(b"EXIT\n");
    let (status, out, err) = first.finish();
    assert_eq!(status, Some(0), "{err}");
    let want: String = (0..40).map(|t| format!("first answer {t}\n")).collect();
    assert_eq!(out, want);
    assert_clean_stderr("client", &err);
    server.stderr_line_containing("smolchat: the client left");

    // A new code for the next person: it replaces nothing (the last one
    // was used), and the friend's command is said again.
    let line = server.stderr_line_containing("code is ");
    let second_code = code_in(&line);
    assert_eq!(line, format!("smolchat: the code is {second_code}\n"));
    server.stderr_line_containing("your friend runs");
    assert_room_code(&second_code);
    assert_ne!(second_code, code);
    let mut second = client(&at, &second_code, &[]);
    chat(&mut server, &mut second, 3, "second");
    second.send(b"EXIT\n");
    assert_eq!(second.finish().0, Some(0));
    server.stderr_line_containing("smolchat: the client left");
    next_code(&mut server);
    let want: String = (0..40)
        .map(|t| format!("first question {t}: ünïcode\tand tabs\n"))
        .chain((0..3).map(|t| format!("second question {t}: ünïcode\tand tabs\n")))
        .collect();
    assert_eq!(server.stdout(), want);
    assert_clean_stderr("server", &server.stderr());
    // The server leaves while it waits in a room: the end of its input.
    server.close_stdin();
    let (status, _, err) = server.finish();
    assert_eq!(status, Some(0), "{err}");
}

#[test]
fn smolchat_code_gives_the_words_and_the_relay_the_number() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut server = server(&at, Some("Calm  Seas"), &[]);
    let code = next_code(&mut server);
    assert!(code.ends_with("-calm-seas"), "{code}");
    // Typed loosely, normalised; the relay from SMOLCHAT_RELAY.
    let mut cmd = smolchat();
    let loose = format!(" {} CALM seas ", room_in(&code));
    cmd.arg("client").env("SMOLCHAT_RELAY", &at).env("SMOLCHAT_CODE", loose);
    let mut client = Proc::spawn(cmd);
    client.stderr_line_containing(&format!("connected through the relay {at}"));
    chat(&mut server, &mut client, 2, "words");
}

#[test]
fn a_wrong_code_spends_the_code_and_a_stale_code_is_said_so() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut server = server(&at, None, &[]);
    let code = next_code(&mut server);
    let room = assert_room_code(&code);

    let finished = guess(&at, &code);
    let after_guess = Instant::now();
    assert_last_error("guess", finished, "wrong code: the server has a different code");
    assert_eq!(
        server.stderr_line_containing("wrong code"),
        "smolchat: the client: wrong code (1 of at most 10)\n"
    );
    // A new code, which says whose place it takes, after the pause.
    let line = server.stderr_line_containing("the new code is ");
    let new_code = code_in(&line);
    assert_eq!(line, format!("smolchat: the new code is {new_code}; it replaces {code}\n"));
    assert!(after_guess.elapsed() >= Duration::from_millis(900), "no pause after a wrong code");
    assert_room_code(&new_code);
    assert_ne!(room_in(&new_code), room_in(&code), "a spent room's number is not reused");

    // The friend who holds the old code is told it is no longer valid:
    // not a wrong code, and no guess.
    let mut late = client(&at, &code, &[]);
    late.close_stdin();
    assert_one_error(
        "late",
        late.finish(),
        &format!(
            "relay {at} has no room {room}: this code is no longer valid: ask for the new one"
        ),
    );
    let mut right = client(&at, &new_code, &[]);
    chat(&mut server, &mut right, 2, "right");
    assert!(!server.stderr().contains("2 of at most"), "{}", server.stderr());
    assert_clean_stderr("server", &server.stderr());
}

/// Passes every connection on to the relay at `relay_port`, and tells of
/// each as it is made: (the port to connect to, one message per connection).
fn watch(relay_port: u16) -> (u16, std::sync::mpsc::Receiver<()>) {
    let (listener, port) = raw_listener();
    let (made, told) = std::sync::mpsc::channel();
    thread::spawn(move || loop {
        let side = raw_accept(&listener);
        let relay = TcpStream::connect(("127.0.0.1", relay_port)).expect("on to the relay");
        pair(&side, &relay);
        if made.send(()).is_err() {
            break;
        }
    });
    (port, told)
}

#[test]
fn past_its_wait_a_room_is_renewed_under_the_same_code() {
    let (_relay, port) = relay(&["--wait", "1"]);
    let (watched, made) = watch(port);
    let at = format!("127.0.0.1:{watched}");
    let mut server = server(&at, None, &["--relay-only"]);
    let code = next_code(&mut server);
    // The probe, the room, and the room again after the relay's wait
    // (twice, to be sure it passed): the code the person passed on still
    // works, and nothing new was shown.
    for _ in 0..4 {
        made.recv_timeout(DEADLINE).expect("the room renewed");
    }
    let mut client = client(&at, &code, &["--relay-only"]);
    chat(&mut server, &mut client, 1, "late");
    let said = server.stderr();
    assert_eq!(said.matches("code is ").count(), 1, "{said}");
    assert!(!said.contains("nobody joined"), "{said}");
}

#[test]
fn a_joiner_that_never_starts_the_handshake_costs_nothing() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    // The protocol's own 2 s for a joiner: the room must come back within
    // a couple of seconds.
    let mut server = server(&at, None, &[]);
    let code = next_code(&mut server);
    let room = room_in(&code).to_string();
    let taken_back = format!(
        "smolchat: someone joined room {room} and did not start the private handshake; \
         the room is open again with the same code\n"
    );
    // One that sends a line that is not the private hello, and one that
    // sends nothing at all.
    for garbage in [&b"GET / HTTP/1.1\n"[..], b""] {
        let mut joiner = TcpStream::connect(("127.0.0.1", port)).unwrap();
        joiner.set_read_timeout(Some(DEADLINE)).unwrap();
        joiner.write_all(format!("smolchat-relay/1 join {room}\n").as_bytes()).unwrap();
        assert_eq!(raw_line(&mut joiner), b"paired\n");
        let paired = Instant::now();
        joiner.write_all(garbage).unwrap();
        assert_eq!(server.stderr_line_containing("someone joined"), taken_back);
        let _ = raw_rest(&mut joiner);
        assert!(paired.elapsed() < Duration::from_secs(4), "{:?}", paired.elapsed());
    }
    // The real friend still gets in with the same code, in the same room.
    let mut friend = client(&at, &code, &[]);
    chat(&mut server, &mut friend, 2, "friend");
    let said = server.stderr();
    assert_eq!(said.matches("code is ").count(), 1, "{said}");
    assert!(!said.contains("wrong code"), "{said}");
}

/// Passes each connection on to the relay at `relay_port` from an address
/// of its own, 127.0.0.2 and up: many guessers, as the relay sees them
/// (it refuses one address that fails too many handshakes, and a server
/// on the same address as its guessers would be refused with them).
fn from_many_addresses(relay_port: u16) -> u16 {
    let (listener, port) = raw_listener();
    thread::spawn(move || {
        for n in 2u8.. {
            let side = raw_accept(&listener);
            let from = std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(127, 0, 0, n), 0);
            let to = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, relay_port);
            let fd = rustix::net::socket(
                rustix::net::AddressFamily::INET,
                rustix::net::SocketType::STREAM,
                None,
            )
            .unwrap();
            rustix::net::bind(&fd, &from).unwrap();
            rustix::net::connect(&fd, &to).unwrap();
            pair(&side, &TcpStream::from(fd));
        }
    });
    port
}

#[test]
fn ten_wrong_codes_in_a_run_end_a_relayed_server() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let guessers = format!("127.0.0.1:{}", from_many_addresses(port));
    // The pause after each wrong code, shortened tenfold.
    let mut server = server_with(&at, None, &[], 10);
    let mut code = next_code(&mut server);
    for n in 1..=10 {
        assert_last_error(
            "guess",
            guess(&guessers, &code),
            "wrong code: the server has a different code",
        );
        if n < 10 {
            let line = server.stderr_line_containing("the new code is ");
            assert!(line.ends_with(&format!("; it replaces {code}\n")), "{line}");
            code = code_in(&line);
        }
    }
    let (status, out, err) = server.finish();
    assert_eq!(status, Some(1), "{err}");
    assert!(out.is_empty());
    assert!(
        err.ends_with("smolchat: error: 10 wrong codes: someone may be guessing; ending\n"),
        "{err}"
    );
    for n in 1..=9 {
        assert!(err.contains(&format!("the client: wrong code ({n} of at most 10)\n")), "{err}");
    }
    assert_eq!(err.matches("error").count(), 1, "{err}");
    assert_clean_stderr("server", &err);
}

#[test]
fn three_wrong_codes_end_a_server_whose_words_cannot_change() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut server = server_with(&at, Some("calm-seas"), &[], 10);
    for _ in 0..3 {
        let code = next_code(&mut server);
        assert!(code.ends_with("-calm-seas"), "{code}");
        let mut c = client(&at, &format!("{}-wild-guess", room_in(&code)), &[]);
        c.close_stdin();
        assert_eq!(c.finish().0, Some(1));
        server.stderr_line_containing("smolchat: the client: wrong code");
    }
    server.close_stdin();
    let (status, _, err) = server.finish();
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.ends_with(
            "smolchat: error: 3 wrong codes: ending, since SMOLCHAT_CODE cannot be replaced\n"
        ),
        "{err}"
    );
}

#[test]
fn the_idle_timeout_works_through_the_relay() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    // The server drops a client that says nothing on its turn.
    let mut server = server(&at, None, &["--idle-timeout", "1"]);
    let code = next_code(&mut server);
    let mut silent = client(&at, &code, &[]);
    silent.stderr_line_containing("the code matched");
    let line = server.stderr_line_containing("idle timeout");
    assert_eq!(
        line,
        "smolchat: error: connection with the client: no data for 1 s (idle timeout)\n"
    );
    next_code(&mut server);
    drop(silent);

    // The client drops a server that does not answer.
    let mut server = self::server(&at, None, &[]);
    let code = next_code(&mut server);
    let mut client = client(&at, &code, &["--idle-timeout", "1"]);
    client.send(b"anyone there?\n");
    assert_eq!(server.stdout_line(), "anyone there?\n");
    let (status, _, err) = client.finish();
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.ends_with(&format!(
            "smolchat: error: connection to the server through the relay {at}: \
             no data for 1 s (idle timeout)\n"
        )),
        "{err}"
    );
}

#[test]
fn max_line_works_through_the_relay() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut server = server(&at, None, &["--max-line", "10"]);
    let code = next_code(&mut server);
    // The client's own limit: a line too long is not sent.
    let mut client = client(&at, &code, &["--max-line", "10"]);
    client.send(b"far too long a line\nshort\n");
    client.stderr_line_containing("smolchat: line longer than 10 bytes, not sent");
    assert_eq!(server.stdout_line(), "short\n");
    client.send(b"EXIT\n");
    server.send(b"ok\n");
    assert_eq!(client.finish().0, Some(0));

    // The server's limit, against a client allowed longer lines.
    let code = next_code(&mut server);
    let mut client = self::client(&at, &code, &[]);
    client.send(b"far too long a line\n");
    let line = server.stderr_line_containing("longer than");
    // A record holds the line and its `\n`, and a mark of its kind.
    assert_eq!(
        line,
        "smolchat: error: connection with the client: \
         the peer sent a record longer than 12 bytes (the line is too long)\n"
    );
    assert_eq!(server.stdout(), "short\n", "nothing of the long line is shown");
    next_code(&mut server);
}

#[test]
fn an_unreachable_relay_is_one_line() {
    // Bind then drop a listener, so the port is very likely closed.
    let port = raw_listener().1;
    let at = format!("127.0.0.1:{port}");
    let want = format!("cannot connect to relay {at}: connection refused");
    let mut s = server(&at, None, &[]);
    s.close_stdin();
    assert_one_error("server", s.finish(), &want);
    let mut c = client(&at, "1-calm-seas", &[]);
    c.close_stdin();
    assert_one_error("client", c.finish(), &want);
    // `.invalid` never resolves (RFC 2606), so nothing is contacted.
    for mut side in
        [server("relay.invalid:7000", None, &[]), client("relay.invalid:7000", "1-a-b", &[])]
    {
        side.close_stdin();
        let (code, out, err) = side.finish();
        assert_eq!((code, out.as_str()), (Some(1), ""), "{err}");
        assert!(err.starts_with("smolchat: error: cannot resolve relay relay.invalid: "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn a_refusal_is_one_line_in_words_that_name_the_relay() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut c = client(&at, "7-calm-seas", &[]);
    c.close_stdin();
    assert_one_error(
        "client",
        c.finish(),
        &format!("relay {at} has no room 7: this code is no longer valid: ask for the new one"),
    );
    // A code without a room number is said before the relay is asked.
    let mut c = client(&at, "calm-seas", &[]);
    c.close_stdin();
    assert_one_error(
        "client",
        c.finish(),
        "the code names no room: a code for a relayed chat starts with the room's number, \
         as in 7-purple-sausages",
    );
}

#[test]
fn something_that_is_not_a_relay_is_said_before_any_code() {
    // A plain chat server never answers the relay's hello.
    let (mut plain, port) = Proc::server(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut c = client(&at, "7-calm-seas", &["--connect-timeout", "1"]);
    assert_eq!(plain.stdout_line(), "smolchat-relay/1 hello\n");
    assert_one_error(
        "client",
        c.finish(),
        &format!(
            "{at} is not a smolchat relay: no answer to the relay hello within 1 s \
             (a plain chat server never answers it)"
        ),
    );
    plain.stderr_line_containing("left");
    // The server says so too, not that the relay did not answer: its 10 s,
    // shortened tenfold.
    let mut s = server_with(&at, None, &[], 10);
    s.close_stdin();
    assert_one_error(
        "server",
        s.finish(),
        &format!(
            "{at} is not a smolchat relay: no answer to the relay hello within 10 s \
             (a plain chat server never answers it)"
        ),
    );
    // Something that answers otherwise, and something that hangs up.
    let (listener, port) = raw_listener();
    let at = format!("127.0.0.1:{port}");
    let mut c = client(&at, "7-calm-seas", &[]);
    let mut other = raw_accept(&listener);
    assert_eq!(raw_line(&mut other), b"smolchat-relay/1 hello\n");
    other.write_all(b"HTTP/1.1 400 Bad Request\r\n").unwrap();
    assert_one_error(
        "client",
        c.finish(),
        &format!("{at} is not a smolchat relay: it answered the relay hello with something else"),
    );
    let mut c = client(&at, "7-calm-seas", &[]);
    let mut other = raw_accept(&listener);
    raw_line(&mut other);
    drop(other);
    assert_one_error(
        "client",
        c.finish(),
        &format!("{at} is not a smolchat relay: it closed the connection at the relay hello"),
    );
}

#[test]
fn a_relay_that_goes_away_while_the_server_waits_is_one_line() {
    let (mut relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut server = server(&at, None, &[]);
    next_code(&mut server);
    relay.signal("KILL");
    relay.wait();
    let (status, out, err) = server.finish();
    assert_eq!(status, Some(1), "{err}");
    assert!(out.is_empty());
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last == format!("smolchat: error: relay {at}: closed the connection before pairing")
            || last
                == format!("smolchat: error: connection to relay {at}: connection reset by peer"),
        "{err}"
    );
    assert_eq!(err.lines().filter(|l| l.contains("error")).count(), 1, "{err}");
    assert_clean_stderr("server", &err);
}

#[test]
fn an_ipv6_relay_in_brackets() {
    if TcpListener::bind("[::1]:0").is_err() {
        crate::util::skip("no IPv6 loopback");
        return;
    }
    let (_relay, port) = relay(&["--bind", "::1"]);
    let at = format!("[::1]:{port}");
    let mut server = server(&at, None, &[]);
    let code = next_code(&mut server);
    let mut client = client(&at, &code, &[]);
    client.stderr_line_containing(&format!("connected through the relay {at}"));
    chat(&mut server, &mut client, 2, "six");
}

/// What crossed one tapped connection: up to the relay, down from it.
type Crossed = (Vec<u8>, Vec<u8>);

/// A tap on the next `count` connections, one after another: listens,
/// connects each on to the relay, and copies both ways, keeping every byte.
fn tap(relay_port: u16, count: usize) -> (u16, thread::JoinHandle<Vec<Crossed>>) {
    let (listener, port) = raw_listener();
    let handle = thread::spawn(move || {
        let mut all = Vec::new();
        for _ in 0..count {
            let side = raw_accept(&listener);
            let relay = TcpStream::connect(("127.0.0.1", relay_port)).expect("tap to the relay");
            let up = crate::util::forward(side.try_clone().unwrap(), relay.try_clone().unwrap());
            let down = crate::util::forward(relay, side);
            all.push((up.join().unwrap(), down.join().unwrap()));
        }
        all
    });
    (port, handle)
}

#[test]
fn the_relay_sees_neither_the_code_nor_the_text() {
    let (_relay, port) = relay(&[]);
    // Each side's probe, then its room.
    let (server_tap, server_bytes) = tap(port, 2);
    let (client_tap, client_bytes) = tap(port, 2);
    // Through the relay all the way (a direct link would carry the text
    // past the taps): what the relay sees of a chat it carries.
    let mut server = server(&format!("127.0.0.1:{server_tap}"), None, &["--relay-only"]);
    let code = next_code(&mut server);
    let room = assert_room_code(&code);
    let mut client = client(&format!("127.0.0.1:{client_tap}"), &code, &["--relay-only"]);
    chat(&mut server, &mut client, 5, "secret");
    client.send(b"EXIT\n");
    assert_eq!(client.finish().0, Some(0));
    server.stderr_line_containing("the client left");
    // The server's tap took two connections: the next room is not watched.
    drop(server);

    let client_bytes = client_bytes.join().unwrap();
    let server_bytes = server_bytes.join().unwrap();
    for (probe_up, probe_down) in [&client_bytes[0], &server_bytes[0]] {
        assert_eq!(probe_up, b"smolchat-relay/1 hello\n");
        assert_eq!(probe_down, b"relay\n");
    }
    let (client_up, client_down) = &client_bytes[1];
    let (server_up, server_down) = &server_bytes[1];
    let join = format!("smolchat-relay/1 join {room}\n");
    assert!(client_up.starts_with(join.as_bytes()), "{:?}", String::from_utf8_lossy(client_up));
    // The server opens with a key of 32 hex digits, its own for this code.
    let open =
        String::from_utf8_lossy(&server_up[..server_up.iter().position(|&b| b == b'\n').unwrap()])
            .into_owned();
    let key = open.strip_prefix("smolchat-relay/1 open ").unwrap_or_else(|| panic!("{open}"));
    assert!(key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()), "{open}");
    assert!(client_down.starts_with(b"paired\n"));
    let room_paired = format!("room {room}\npaired\n");
    assert!(server_down.starts_with(room_paired.as_bytes()));
    // The words, looked for after the relay's own lines (`paired` holds the
    // word `red`), but for those that are also the handshake's own.
    let words: Vec<&str> = code
        .split('-')
        .skip(1)
        .filter(|w| !["ready", "busy", "open", "close"].contains(w))
        .collect();
    for (what, bytes) in [
        ("client up", &client_up[join.len()..]),
        ("client down", &client_down["paired\n".len()..]),
        ("server up", &server_up[open.len() + 1..]),
        ("server down", &server_down[room_paired.len()..]),
    ] {
        let text = String::from_utf8_lossy(bytes);
        for word in &words {
            assert!(!text.contains(word), "{what} carries the code's word {word:?}");
        }
        for plain in ["secret", "question", "answer", "EXIT"] {
            assert!(!text.contains(plain), "{what} carries {plain:?}");
        }
    }
    // The text went through, sealed: the relay carried more than the lines.
    assert!(client_up.len() > join.len() + 5 * 16, "{}", client_up.len());
}

/// A relay of the test's own: it takes the chat sides' connections one at
/// a time, so that a test can answer each request line as it likes.
struct Fake {
    listener: TcpListener,
    at: String,
}

impl Fake {
    fn new() -> Fake {
        let (listener, port) = raw_listener();
        Fake { listener, at: format!("127.0.0.1:{port}") }
    }

    /// The next connection and its request line (without its `\n`).
    fn next(&self) -> (TcpStream, String) {
        let mut stream = raw_accept(&self.listener);
        let line = raw_line(&mut stream);
        let line = String::from_utf8(line).unwrap().trim_end().to_string();
        (stream, line)
    }

    /// The next connection, which must be a side's probe: answered.
    fn probe(&self) {
        let (mut stream, line) = self.next();
        assert_eq!(line, "smolchat-relay/1 hello");
        stream.write_all(b"relay\n").unwrap();
    }

    /// The next connection, which must open a room: the key it opens with.
    fn opened(&self) -> (TcpStream, String) {
        let (stream, line) = self.next();
        let key = line.strip_prefix("smolchat-relay/1 open ").unwrap_or_else(|| panic!("{line}"));
        assert!(key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
        (stream, key.to_string())
    }
}

/// Whether the other end of `stream` has not closed it (nothing is read
/// away: only the end is looked for).
fn still_open(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let open =
        matches!(stream.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    open
}

/// Joins two connections of a fake relay, both ways.
fn pair(a: &TcpStream, b: &TcpStream) {
    crate::util::forward(a.try_clone().unwrap(), b.try_clone().unwrap());
    crate::util::forward(b.try_clone().unwrap(), a.try_clone().unwrap());
}

#[test]
fn bytes_that_come_with_paired_reach_the_handshake() {
    // A relay of the test's own, which hands the server `paired` and the
    // client's hello in one write: nothing after `paired` may be lost.
    let fake = Fake::new();
    let mut server = server(&fake.at, None, &["--relay-only"]);
    fake.probe();
    let (mut opened, _) = fake.opened();
    opened.write_all(b"room 5\n").unwrap();
    let code = next_code(&mut server);
    assert_eq!(assert_room_code(&code), 5);
    let mut client = client(&fake.at, &code, &["--relay-only"]);
    fake.probe();
    let (mut joined, line) = fake.next();
    assert_eq!(line, "smolchat-relay/1 join 5");
    joined.write_all(b"paired\n").unwrap();
    let hello = raw_line(&mut joined);
    assert_eq!(hello, b"smolchat-private/2 hello\n");
    opened.write_all(&[b"paired\n", &hello[..]].concat()).unwrap();
    pair(&opened, &joined);
    let start = Instant::now();
    chat(&mut server, &mut client, 2, "early");
    assert!(start.elapsed() < DEADLINE);
}

#[test]
fn the_server_keeps_its_room_by_key_until_a_wrong_code_spends_it() {
    let fake = Fake::new();
    // The joiner's 2 s, shortened tenfold.
    let mut server = server_with(&fake.at, None, &["--relay-only"], 10);
    fake.probe();
    let (mut room, key) = fake.opened();
    room.write_all(b"room 5\n").unwrap();
    let code = next_code(&mut server);
    assert_eq!(assert_room_code(&code), 5);
    let taken_back = "smolchat: someone joined room 5 and did not start the private handshake; \
                      the room is open again with the same code\n";

    // A joiner whose first line is not the hello is told what it met; the
    // room is opened again with the same key, and only then is the old
    // connection given up (so that the relay ends the pair itself).
    room.write_all(b"paired\nGET / HTTP/1.1\n").unwrap();
    assert_eq!(raw_line(&mut room), PLAIN_REPLY);
    let (mut again, same) = fake.opened();
    assert_eq!(same, key);
    assert!(still_open(&room), "given up before the room was opened again");
    again.write_all(b"room 5\n").unwrap();
    assert!(raw_rest(&mut room).unwrap().is_empty());
    assert_eq!(server.stderr_line_containing("someone joined"), taken_back);

    // A joiner that sends nothing: the same again.
    again.write_all(b"paired\n").unwrap();
    let (mut third, same) = fake.opened();
    assert_eq!(same, key);
    assert_eq!(server.stderr_line_containing("someone joined"), taken_back);

    // The relay's wait passes: the same room again, nothing for the person.
    third.write_all(b"room 5\nnobody joined within 600 seconds\n").unwrap();
    let (mut fourth, same) = fake.opened();
    assert_eq!(same, key);
    fourth.write_all(b"room 5\n").unwrap();

    // A wrong code spends the code: its room is closed with its key, and a
    // new key opens the next, whose code replaces the old.
    let mut guess = client(&fake.at, "5-wild-wild-guesses", &["--relay-only"]);
    fake.probe();
    let (mut joined, line) = fake.next();
    assert_eq!(line, "smolchat-relay/1 join 5");
    joined.write_all(b"paired\n").unwrap();
    fourth.write_all(b"paired\n").unwrap();
    pair(&fourth, &joined);
    assert_last_error("guess", guess.finish(), "wrong code: the server has a different code");
    let (mut closing, line) = fake.next();
    assert_eq!(line, format!("smolchat-relay/1 close {key}"));
    closing.write_all(b"closed\n").unwrap();
    let (mut fifth, new_key) = fake.opened();
    assert_ne!(new_key, key);
    fifth.write_all(b"room 6\n").unwrap();
    let line = server.stderr_line_containing("code is ");
    let new_code = code_in(&line);
    assert_eq!(line, format!("smolchat: the new code is {new_code}; it replaces {code}\n"));
    assert_eq!(room_in(&new_code), "6");
    let said = server.stderr();
    assert_eq!(said.matches("code is ").count(), 2, "{said}");
    assert_eq!(said.matches("wrong code").count(), 1, "{said}");
    assert_clean_stderr("server", &said);
}

#[test]
fn a_client_tries_a_busy_room_again_for_a_few_seconds() {
    let fake = Fake::new();
    let answer = |fake: &Fake, with: &[u8]| {
        let (mut joined, line) = fake.next();
        assert_eq!(line, "smolchat-relay/1 join 5");
        joined.write_all(with).unwrap();
        joined
    };
    // Busy twice, then paired: the client gets in by itself.
    let mut server = server(&fake.at, Some("brave-quiet-otters"), &["--relay-only"]);
    fake.probe();
    let (mut room, _) = fake.opened();
    room.write_all(b"room 5\n").unwrap();
    let code = next_code(&mut server);
    let mut client = client_with(&fake.at, &code, &["--relay-only"], 10);
    fake.probe();
    answer(&fake, b"room 5 is busy\n");
    answer(&fake, b"room 5 is busy\n");
    let joined = answer(&fake, b"paired\n");
    room.write_all(b"paired\n").unwrap();
    pair(&room, &joined);
    assert_eq!(
        client.stderr_line_containing("busy"),
        "smolchat: room 5 is busy; trying again for 10 seconds\n"
    );
    chat(&mut server, &mut client, 1, "patient");

    // Busy for longer than it tries (its 10 s shortened tenfold): words.
    let mut client = client_with(&fake.at, &code, &["--relay-only"], 10);
    fake.probe();
    let started = Instant::now();
    let mut turned = 0;
    while client.wait_for(Duration::ZERO).is_none() {
        fake.listener.set_nonblocking(true).unwrap();
        match fake.listener.accept() {
            Ok((mut joined, _)) => {
                joined.set_nonblocking(false).unwrap();
                assert_eq!(raw_line(&mut joined), b"smolchat-relay/1 join 5\n");
                joined.write_all(b"room 5 is busy\n").unwrap();
                turned += 1;
            }
            // Polling accept and the exit, not synchronising on output.
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
        assert!(started.elapsed() < DEADLINE, "still trying");
    }
    assert!(turned >= 2, "{turned}");
    assert_last_error(
        "client",
        client.finish(),
        &format!(
            "relay {}: room 5 is busy: someone else is in it; try again later, or ask for a \
             new code",
            fake.at
        ),
    );
}

#[test]
fn a_relay_that_refuses_an_address_is_said_in_words() {
    let fake = Fake::new();
    for (refusal, why) in [
        (
            "too many tries from your address",
            "too many tries from your address: wait a few minutes, then try again",
        ),
        (
            "too many rooms from your address",
            "too many rooms from your address: end some of the chats this address holds \
             through it, then try again",
        ),
    ] {
        let mut client = client(&fake.at, "5-brave-quiet-otters", &["--relay-only"]);
        fake.probe();
        let (mut joined, _) = fake.next();
        joined.write_all(format!("{refusal}\n").as_bytes()).unwrap();
        assert_one_error("client", client.finish(), &format!("relay {}: {why}", fake.at));
    }
    let mut client = client(&fake.at, "5-brave-quiet-otters", &["--relay-only"]);
    fake.probe();
    let (mut joined, _) = fake.next();
    joined.write_all(b"relay is full\n").unwrap();
    assert_one_error(
        "client",
        client.finish(),
        &format!("relay {} is full: it holds as many chats as it may; try again later", fake.at),
    );
}
