//! Chats through a relay with the real binary: `smolchat relay 0`, then
//! `server --relay` and `client --relay` by code through pipes. Codes and
//! rooms, wrong codes and spent rooms, a new room after each chat, limits,
//! the relay failing in every way a person must read, IPv6, and what the
//! relay itself can see of a chat.

#![cfg(feature = "private")]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::session::{assert_clean_stderr, raw_accept, raw_line, raw_listener};
use crate::util::{smolchat, Proc, DEADLINE};

/// `smolchat relay [ARGS] 0` and the port it listens on.
pub fn relay(args: &[&str]) -> (Proc, u16) {
    let mut all = vec!["relay"];
    all.extend_from_slice(args);
    all.push("0");
    let mut relay = Proc::smolchat(&all);
    let line = relay.stderr_line_containing("relay listening on ");
    let port = line.trim_end().rsplit(':').next().unwrap().parse().expect("port");
    (relay, port)
}

/// `smolchat server --relay ADDR [ARGS]`, with `SMOLCHAT_CODE` set or not.
pub fn server(relay: &str, code: Option<&str>, args: &[&str]) -> Proc {
    let mut cmd = smolchat();
    cmd.args(["server", "--relay", relay]).args(args);
    match code {
        Some(code) => cmd.env("SMOLCHAT_CODE", code),
        None => cmd.env_remove("SMOLCHAT_CODE"),
    };
    Proc::spawn(cmd)
}

/// `smolchat client --relay ADDR [ARGS]` with `SMOLCHAT_CODE=code`.
pub fn client(relay: &str, code: &str, args: &[&str]) -> Proc {
    let mut cmd = smolchat();
    cmd.args(["client", "--relay", relay]).args(args).env("SMOLCHAT_CODE", code);
    Proc::spawn(cmd)
}

/// The next code the server shows, from its status line.
pub fn next_code(server: &mut Proc) -> String {
    let line = server.stderr_line_containing("; the code is ");
    assert!(line.starts_with("smolchat: private chat through the relay "), "{line:?}");
    line.trim_end().rsplit(' ').next().unwrap().to_string()
}

/// A code of a room: its number, then two lowercase words.
fn assert_room_code(code: &str) -> u32 {
    let parts: Vec<&str> = code.split('-').collect();
    assert_eq!(parts.len(), 3, "{code}");
    assert!(parts[1..].iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())));
    parts[0].parse().unwrap_or_else(|_| panic!("no room number in {code}"))
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

/// A client that was told `what` and exited 1 with that one error line.
fn assert_one_error(who: &str, (code, out, err): (Option<i32>, String, String), want: &str) {
    assert_eq!(code, Some(1), "{who}: {err}");
    assert!(out.is_empty(), "{who}: {out}");
    assert_eq!(err, format!("smolchat: error: {want}\n"), "{who}");
}

#[test]
fn a_relayed_chat_of_many_turns_then_the_next_person() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut server = server(&at, None, &[]);
    let code = next_code(&mut server);
    assert_room_code(&code);
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

    // A new room for the next person, with a new code; the old one is spent.
    let second_code = next_code(&mut server);
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
    let room = assert_room_code(&code);
    assert_eq!(code, format!("{room}-calm-seas"));
    // Typed loosely, normalised; the relay from SMOLCHAT_RELAY.
    let mut cmd = smolchat();
    let typed = format!(" {room} CALM seas ");
    cmd.arg("client").env("SMOLCHAT_RELAY", &at).env("SMOLCHAT_CODE", &typed);
    let mut client = Proc::spawn(cmd);
    client.stderr_line_containing(&format!("connected through the relay {at}"));
    chat(&mut server, &mut client, 2, "words");
}

#[test]
fn a_wrong_code_spends_the_room_and_the_server_shows_a_new_code() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut server = server(&at, None, &[]);
    let code = next_code(&mut server);
    let room = assert_room_code(&code);

    let mut guess = client(&at, &format!("{room}-wrong-guess"), &[]);
    guess.close_stdin();
    let finished = guess.finish();
    let after_guess = Instant::now();
    assert_eq!(finished.0, Some(1), "{}", finished.2);
    assert!(
        finished.2.ends_with("smolchat: error: wrong code: the server has a different code\n"),
        "{}",
        finished.2
    );
    assert!(!finished.2.contains("code matched"));
    server.stderr_line_containing("smolchat: the client: wrong code");
    // A new room and code, after the wrong-code pause.
    let new_code = next_code(&mut server);
    assert!(after_guess.elapsed() >= Duration::from_millis(900), "no pause after a wrong code");
    assert_room_code(&new_code);
    assert_ne!(new_code, code);

    // The old code is no good any more: its room is gone (the relay may
    // give its number to the new room, whose words differ).
    let mut late = client(&at, &code, &[]);
    late.close_stdin();
    let (status, _, err) = late.finish();
    assert_eq!(status, Some(1), "{err}");
    assert!(!err.contains("code matched"), "{err}");
    assert!(
        err.ends_with("wrong code: the server has a different code\n")
            || err.ends_with(&format!("refused: no room {room}\n")),
        "{err}"
    );
    // Whichever it was, the code shown now is the one that works.
    let code = if err.contains("wrong code") { next_code(&mut server) } else { new_code };
    let mut right = client(&at, &code, &[]);
    chat(&mut server, &mut right, 2, "right");
    assert_clean_stderr("server", &server.stderr());
}

#[test]
fn a_room_nobody_joins_is_replaced_when_the_relay_closes_it() {
    let (_relay, port) = relay(&["--wait", "1"]);
    let at = format!("127.0.0.1:{port}");
    let mut server = server(&at, None, &[]);
    let first = next_code(&mut server);
    server.stderr_line_containing("smolchat: nobody joined within 1 second; opening a new room");
    let second = next_code(&mut server);
    assert_ne!(first, second);
    let mut client = client(&at, &second, &[]);
    chat(&mut server, &mut client, 1, "late");
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
fn a_refusal_is_one_line_with_the_relay_s_words() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut c = client(&at, "7-calm-seas", &[]);
    c.close_stdin();
    assert_one_error("client", c.finish(), &format!("relay {at} refused: no room 7"));
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

/// A tap on one connection: listens, connects on to the relay, and copies
/// both ways, keeping every byte: (up to the relay, down from it).
type Tapped = thread::JoinHandle<(Vec<u8>, Vec<u8>)>;

fn tap(relay_port: u16) -> (u16, Tapped) {
    let (listener, port) = raw_listener();
    let handle = thread::spawn(move || {
        let side = raw_accept(&listener);
        let relay = TcpStream::connect(("127.0.0.1", relay_port)).expect("tap to the relay");
        let up = crate::util::forward(side.try_clone().unwrap(), relay.try_clone().unwrap());
        let down = crate::util::forward(relay, side);
        (up.join().unwrap(), down.join().unwrap())
    });
    (port, handle)
}

#[test]
fn the_relay_sees_neither_the_code_nor_the_text() {
    let (_relay, port) = relay(&[]);
    let (server_tap, server_bytes) = tap(port);
    let (client_tap, client_bytes) = tap(port);
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
    // The server's tap took one connection: the next room is not watched.
    drop(server);

    let (client_up, client_down) = client_bytes.join().unwrap();
    let (server_up, server_down) = server_bytes.join().unwrap();
    let join = format!("smolchat-relay/1 join {room}\n");
    assert!(client_up.starts_with(join.as_bytes()), "{:?}", String::from_utf8_lossy(&client_up));
    assert!(server_up.starts_with(b"smolchat-relay/1 open\n"));
    assert!(client_down.starts_with(b"paired\n"));
    assert!(server_down.starts_with(format!("room {room}\npaired\n").as_bytes()));
    let words: Vec<&str> = code.split('-').skip(1).collect();
    for (what, bytes) in [
        ("client up", &client_up[join.len()..]),
        ("client down", &client_down[..]),
        ("server up", &server_up[..]),
        ("server down", &server_down[..]),
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

#[test]
fn bytes_that_come_with_paired_reach_the_handshake() {
    // A relay of the test's own, which hands the server `paired` and the
    // client's first line in one write: nothing after `paired` may be lost.
    let (listener, port) = raw_listener();
    let at = format!("127.0.0.1:{port}");
    let mut server = server(&at, None, &["--relay-only"]);
    let mut opened = raw_accept(&listener);
    assert_eq!(raw_line(&mut opened), b"smolchat-relay/1 open\n");
    opened.write_all(b"room 5\n").unwrap();
    let code = next_code(&mut server);
    assert_eq!(assert_room_code(&code), 5);
    let mut client = client(&at, &code, &["--relay-only"]);
    let mut joined = raw_accept(&listener);
    assert_eq!(raw_line(&mut joined), b"smolchat-relay/1 join 5\n");
    joined.write_all(b"paired\n").unwrap();
    let hello = raw_line(&mut joined);
    opened.write_all(&[b"paired\n", &hello[..]].concat()).unwrap();
    crate::util::forward(opened.try_clone().unwrap(), joined.try_clone().unwrap());
    crate::util::forward(joined, opened);
    let start = Instant::now();
    chat(&mut server, &mut client, 2, "early");
    assert!(start.elapsed() < DEADLINE);
}

#[test]
fn three_wrong_codes_end_a_server_whose_words_cannot_change() {
    let (_relay, port) = relay(&[]);
    let at = format!("127.0.0.1:{port}");
    let mut server = server(&at, Some("calm-seas"), &[]);
    for guess in 0..3 {
        let code = next_code(&mut server);
        assert!(code.ends_with("-calm-seas"), "{code}");
        let room = code.split('-').next().unwrap();
        let mut c = client(&at, &format!("{room}-wild-guess{guess}"), &[]);
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
