//! Two real smolchat processes talking over loopback, and smolchat against a
//! raw socket that plays the other side: turns, endings, exit codes, streams.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{self, smolchat, Proc, DEADLINE};

// ---------------------------------------------------------------------------
// Raw peers, shared with the hostile tests: a std socket on the other side
// lets a test send what smolchat never would, and out of turn.

/// A listener on loopback standing in for a smolchat server, and its port.
pub(crate) fn raw_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a raw listener");
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Accepts one connection, failing the test after the deadline.
pub(crate) fn raw_accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return with_deadlines(stream),
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                // Polling accept, as util's wait_for polls an exit: the
                // pause only bounds how soon the connection is seen.
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("raw accept: {e}"),
        }
    }
}

/// A raw client connected to `port` on loopback.
pub(crate) fn raw_connect(port: u16) -> TcpStream {
    with_deadlines(TcpStream::connect(("127.0.0.1", port)).expect("raw connect"))
}

/// Blocking mode with a deadline on every read and write.
fn with_deadlines(stream: TcpStream) -> TcpStream {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// Reads one line with its `\n`, a byte at a time so that nothing after it
/// is taken off the socket.
pub(crate) fn raw_line(stream: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => panic!("raw peer: end of stream after {:?}", String::from_utf8_lossy(&line)),
            Ok(_) => {
                line.push(byte[0]);
                if byte[0] == b'\n' {
                    return line;
                }
            }
            Err(e) => panic!("raw peer: {e} after {:?}", String::from_utf8_lossy(&line)),
        }
    }
}

/// Reads until the peer closes; what came, or the error that ended it.
pub(crate) fn raw_rest(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).map(|_| rest)
}

/// Checks the stream rules for stderr: every line is a `smolchat: ` line,
/// and no error leaks its Rust or OS form.
pub(crate) fn assert_clean_stderr(who: &str, stderr: &str) {
    for line in stderr.lines() {
        assert!(line.starts_with("smolchat: "), "{who}: stray stderr line {line:?}\n{stderr}");
        for bad in ["os error", "Os {", "panicked"] {
            assert!(!line.contains(bad), "{who}: {bad:?} in {line:?}");
        }
    }
}

/// A client that ended on a reset: exit 1, one clean error line naming it.
pub(crate) fn assert_client_reset(port: u16, code: Option<i32>, err: &str) {
    assert_eq!(code, Some(1), "{err}");
    let want =
        format!("smolchat: error: connection to 127.0.0.1:{port}: connection reset by peer\n");
    assert!(err.ends_with(&want), "{err}");
    assert_clean_stderr("client", err);
}

/// `smolchat client 127.0.0.1 PORT`, connected (its status line was seen).
fn connected_client(port: u16) -> Proc {
    let mut client = Proc::client(port);
    client.stderr_line_containing("connected to 127.0.0.1:");
    client
}

// ---------------------------------------------------------------------------
// Two real processes.

#[test]
fn client_and_server_take_turns() {
    let (mut server, port) = Proc::server(&[]);
    let mut client = connected_client(port);
    let line = server.stderr_line_containing(" connected");
    assert!(line.starts_with("smolchat: 127.0.0.1:"), "{line:?}");

    for turn in 0..3 {
        client.send(format!("question {turn}\n").as_bytes());
        assert_eq!(server.stdout_line(), format!("question {turn}\n"));
        server.send(format!("answer {turn}\n").as_bytes());
        assert_eq!(client.stdout_line(), format!("answer {turn}\n"));
    }

    client.send(b"EXIT\n");
    let (code, out, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    // stdout is exactly the server's messages.
    assert_eq!(out, "answer 0\nanswer 1\nanswer 2\n");
    assert_clean_stderr("client", &err);
    let left = server.stderr_line_containing(" left");
    assert!(left.starts_with("smolchat: 127.0.0.1:") && left.ends_with(" left\n"), "{left:?}");
    assert_eq!(server.stdout(), "question 0\nquestion 1\nquestion 2\n");
    assert_clean_stderr("server", &server.stderr());
}

#[test]
fn client_exit_sends_nothing_and_the_server_serves_the_next_client() {
    let (mut server, port) = Proc::server(&[]);
    let mut first = connected_client(port);
    first.send(b"hello\n");
    assert_eq!(server.stdout_line(), "hello\n");
    server.send(b"hi\n");
    assert_eq!(first.stdout_line(), "hi\n");
    first.send(b"EXIT\n");
    let (code, _, err) = first.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err.lines().count(), 1, "only the connected line: {err}");
    server.stderr_line_containing(" left");
    // The server printed `left` after reading to the end of the stream, so
    // an EXIT that had been sent would be on its stdout by now.
    assert!(!server.stdout().contains("EXIT"), "{}", server.report());

    let mut second = connected_client(port);
    second.send(b"second\n");
    assert_eq!(server.stdout_line(), "second\n");
    server.send(b"welcome\n");
    assert_eq!(second.stdout_line(), "welcome\n");
}

#[test]
fn only_an_exact_exit_ends_the_session_and_an_empty_line_is_a_message() {
    let (mut server, port) = Proc::server(&[]);
    let mut client = connected_client(port);
    for line in [" EXIT\n", "EXIT \n", "exit\n", "\n", "EXITS\n"] {
        client.send(line.as_bytes());
        assert_eq!(server.stdout_line(), line);
        server.send(b"ok\n");
        assert_eq!(client.stdout_line(), "ok\n");
    }
    // An empty answer is a message too.
    client.send(b"say nothing\n");
    assert_eq!(server.stdout_line(), "say nothing\n");
    server.send(b"\n");
    assert_eq!(client.stdout_line(), "\n");
    client.send(b"EXIT\n");
    assert_eq!(client.finish().0, Some(0));
    server.stderr_line_containing(" left");
}

#[test]
fn piped_client_stdin_ends_at_its_turn_with_exit_0() {
    let (mut server, port) = Proc::server(&[]);
    let mut client = Proc::client(port);
    // The whole script up front, as `smolchat client h p <questions.txt`.
    client.send(b"q1\nq2\n").close_stdin();
    assert_eq!(server.stdout_line(), "q1\n");
    server.send(b"a1\n");
    assert_eq!(server.stdout_line(), "q2\n");
    server.send(b"a2\n");
    let (code, out, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "a1\na2\n");
    assert_clean_stderr("client", &err);
    server.stderr_line_containing(" left");
}

/// A file under the temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!("smolchat-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `smolchat ARGS <file`, through sh so that stdin is the regular file itself.
fn with_file_stdin(args: &str, file: &TempFile) -> Proc {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(format!("exec \"$@\" {args} < '{}'", file.0.display()));
    cmd.arg("sh").args(util::command_words());
    Proc::spawn(cmd)
}

#[test]
fn questions_and_answers_from_regular_files() {
    // stdin as a regular file is read in place, not on a thread: the same
    // turns must come out, on both sides.
    let answers = TempFile::new("answers", b"a1\na2\r\nEXIT\n");
    let questions = TempFile::new("questions", b"q1\n\nq3");
    let mut server = with_file_stdin("server 0", &answers);
    let port = server.stderr_line_containing("listening on ");
    let port = port.trim_end().rsplit(':').next().unwrap().to_string();
    let mut client = with_file_stdin(&format!("client 127.0.0.1 {port}"), &questions);
    let (code, out, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "a1\na2\n");
    assert_clean_stderr("client", &err);
    // The server answered the third question with EXIT: it closed that
    // session and went back to accepting.
    assert_eq!(server.stdout_line(), "q1\n");
    assert_eq!(server.stdout_line(), "\n");
    assert_eq!(server.stdout_line(), "q3\n");
    server.stderr_line_containing("closed the connection to");
}

#[test]
fn client_stdin_eof_before_any_line_exits_0() {
    let (mut server, port) = Proc::server(&[]);
    let mut client = connected_client(port);
    client.close_stdin();
    let (code, out, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "");
    server.stderr_line_containing(" left");
    assert_eq!(server.stdout(), "");
}

#[test]
fn server_keyboard_eof_closes_the_client_cleanly_and_ends_the_server() {
    let (mut server, port) = Proc::server(&[]);
    let mut client = connected_client(port);
    client.send(b"anyone there?\n");
    assert_eq!(server.stdout_line(), "anyone there?\n");
    server.close_stdin();

    let (code, _, err) = server.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("smolchat: closed the connection to 127.0.0.1:"), "{err}");
    assert_clean_stderr("server", &err);

    // A clean close, not a reset: the client says the server left.
    let (code, out, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "");
    assert!(err.contains(&format!("smolchat: 127.0.0.1:{port} left\n")), "{err}");
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn server_exit_closes_the_client_cleanly_and_keeps_accepting() {
    let (mut server, port) = Proc::server(&[]);
    let mut client = connected_client(port);
    client.send(b"bye?\n");
    assert_eq!(server.stdout_line(), "bye?\n");
    server.send(b"EXIT\n");
    server.stderr_line_containing("closed the connection to 127.0.0.1:");

    let (code, out, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "", "EXIT is not sent");
    assert!(err.contains(&format!("smolchat: 127.0.0.1:{port} left\n")), "{err}");
    assert!(!err.contains("error"), "{err}");

    let mut next = connected_client(port);
    next.send(b"me next\n");
    assert_eq!(server.stdout_line(), "me next\n");
}

#[test]
fn clients_are_served_one_at_a_time_in_arrival_order() {
    let (mut server, port) = Proc::server(&[]);
    let mut a = connected_client(port);
    a.send(b"a1\n");
    assert_eq!(server.stdout_line(), "a1\n");

    // B and C connect while A is in session: the kernel completes their
    // handshakes, but the server must not read them yet. C is raw, so its
    // message is surely in the server's queue once write returns.
    let mut b = connected_client(port);
    b.send(b"b1\n");
    let mut c = raw_connect(port);
    c.write_all(b"c1\n").unwrap();

    server.send(b"to a\n");
    assert_eq!(a.stdout_line(), "to a\n");
    a.send(b"a2\n");
    assert_eq!(server.stdout_line(), "a2\n");
    server.send(b"to a again\n");
    assert_eq!(a.stdout_line(), "to a again\n");
    a.send(b"EXIT\n");
    assert_eq!(a.finish().0, Some(0));

    assert_eq!(server.stdout_line(), "b1\n");
    server.send(b"to b\n");
    assert_eq!(b.stdout_line(), "to b\n");
    b.send(b"EXIT\n");
    assert_eq!(b.finish().0, Some(0));

    assert_eq!(server.stdout_line(), "c1\n");
    server.send(b"to c\n");
    assert_eq!(raw_line(&mut c), b"to c\n");
    assert_eq!(server.stdout(), "a1\na2\nb1\nc1\n");
}

// ---------------------------------------------------------------------------
// Typed ahead and out of turn.

#[test]
fn a_line_typed_ahead_is_sent_at_the_next_turn() {
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let mut server = raw_accept(&listener);
    client.send(b"one\ntwo\n");
    assert_eq!(raw_line(&mut server), b"one\n");
    server.write_all(b"answer\n").unwrap();
    assert_eq!(client.stdout_line(), "answer\n");
    assert_eq!(raw_line(&mut server), b"two\n");
    server.write_all(b"answer 2\n").unwrap();
    assert_eq!(client.stdout_line(), "answer 2\n");
    client.close_stdin();
    assert_eq!(client.finish().0, Some(0));
    assert_eq!(raw_rest(&mut server).unwrap(), b"");
}

#[test]
fn a_line_typed_ahead_is_not_sent_before_the_peer_answers() {
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let mut server = raw_accept(&listener);
    client.send(b"one\ntwo\n");
    assert_eq!(raw_line(&mut server), b"one\n");
    // Hang up without answering: the client never gets another turn, so a
    // `two` that arrives now was sent out of turn.
    server.shutdown(std::net::Shutdown::Write).unwrap();
    let (code, _, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(" left\n"), "{err}");
    assert_eq!(raw_rest(&mut server).unwrap(), b"", "sent out of turn");
}

#[test]
fn lines_a_server_sends_out_of_turn_are_printed_in_order_at_its_turns() {
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let mut server = raw_accept(&listener);
    client.send(b"hi\n");
    assert_eq!(raw_line(&mut server), b"hi\n");
    server.write_all(b"m1\nm2\nm3\n").unwrap();
    assert_eq!(client.stdout_line(), "m1\n");
    for (i, expected) in ["m2\n", "m3\n"].iter().enumerate() {
        let line = format!("next {i}\n");
        client.send(line.as_bytes());
        assert_eq!(raw_line(&mut server), line.as_bytes());
        assert_eq!(client.stdout_line(), *expected);
    }
    client.close_stdin();
    let (code, out, _) = client.finish();
    assert_eq!(code, Some(0));
    assert_eq!(out, "m1\nm2\nm3\n");
}

#[test]
fn lines_sent_out_of_turn_are_not_printed_during_the_local_turn() {
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let mut server = raw_accept(&listener);
    client.send(b"hi\n");
    assert_eq!(raw_line(&mut server), b"hi\n");
    server.write_all(b"m1\nm2\n").unwrap();
    assert_eq!(client.stdout_line(), "m1\n");
    // End the session at the local turn: m2 was the peer's next turn, which
    // never comes, so it is never printed.
    client.close_stdin();
    let (code, out, _) = client.finish();
    assert_eq!(code, Some(0));
    assert_eq!(out, "m1\n");
}

#[test]
fn lines_a_client_sends_out_of_turn_are_printed_in_order_at_its_turns() {
    let (mut server, port) = Proc::server(&[]);
    let mut client = raw_connect(port);
    client.write_all(b"m1\nm2\nm3\n").unwrap();
    assert_eq!(server.stdout_line(), "m1\n");
    server.send(b"r1\n");
    assert_eq!(raw_line(&mut client), b"r1\n");
    assert_eq!(server.stdout_line(), "m2\n");
    server.send(b"r2\n");
    assert_eq!(raw_line(&mut client), b"r2\n");
    assert_eq!(server.stdout_line(), "m3\n");
    server.close_stdin();
    let (code, out, _) = server.finish();
    assert_eq!(code, Some(0));
    assert_eq!(out, "m1\nm2\nm3\n");
    assert_eq!(raw_rest(&mut client).unwrap(), b"");
}

#[test]
fn a_hang_up_is_noticed_during_the_keyboard_turn() {
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let mut server = raw_accept(&listener);
    client.send(b"hello\n");
    assert_eq!(raw_line(&mut server), b"hello\n");
    server.write_all(b"goodbye\n").unwrap();
    assert_eq!(client.stdout_line(), "goodbye\n");
    // The client now waits at its keyboard, whose stdin stays open.
    drop(server);
    let (code, out, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "goodbye\n");
    assert!(err.ends_with(&format!("smolchat: 127.0.0.1:{port} left\n")), "{err}");
}

#[test]
fn lines_sent_just_before_a_hang_up_are_still_printed_in_order() {
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let mut server = raw_accept(&listener);
    client.send(b"hello\n");
    assert_eq!(raw_line(&mut server), b"hello\n");
    server.write_all(b"one\ntwo\nthree, no newline").unwrap();
    drop(server);
    let (code, out, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "one\ntwo\nthree, no newline\n");
    assert!(err.ends_with(" left\n"), "{err}");
}

// ---------------------------------------------------------------------------
// What the peer sends is shown safely.

#[test]
fn crlf_invalid_utf8_and_control_characters_from_the_peer() {
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let mut server = raw_accept(&listener);
    let cases: [(&[u8], &str); 6] = [
        (b"hi\r\n", "hi\n"),
        (b"a\xffb\n", "a\u{fffd}b\n"),
        (b"\x1b[31mred\x1b[0m\n", "^[[31mred^[[0m\n"),
        (b"\x07\x08\x00x\x7f\n", "^G^H^@x^?\n"),
        ("\u{9b}2J tab\there\n".as_bytes(), "\\u{9b}2J tab\there\n"),
        ("héllo ✓\r\n".as_bytes(), "héllo ✓\n"),
    ];
    for (sent, shown) in cases {
        client.send(b"next?\n");
        assert_eq!(raw_line(&mut server), b"next?\n");
        server.write_all(sent).unwrap();
        assert_eq!(client.stdout_line(), shown, "for {sent:?}");
    }
    client.close_stdin();
    let (code, out, _) = client.finish();
    assert_eq!(code, Some(0));
    assert!(!out.contains('\x1b') && !out.contains('\r'), "{out:?}");
}

#[test]
fn the_server_escapes_what_a_raw_client_sends() {
    let (mut server, port) = Proc::server(&[]);
    let mut client = raw_connect(port);
    client.write_all(b"\x1b]0;owned\x07 \xc3\r\n").unwrap();
    assert_eq!(server.stdout_line(), "^[]0;owned^G \u{fffd}\n");
}

// ---------------------------------------------------------------------------
// A closed stdout.

/// A smolchat child whose stdout reading end is closed at once; killed when
/// dropped. Its stderr is collected line by line.
struct NoStdout {
    child: Child,
    stdin: Option<ChildStdin>,
    err: Receiver<String>,
    log: String,
}

impl NoStdout {
    fn spawn(args: &[&str]) -> NoStdout {
        let mut child = smolchat()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start smolchat");
        drop(child.stdout.take());
        let stderr = child.stderr.take().unwrap();
        let (tx, err) = mpsc::channel();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stdin = child.stdin.take();
        NoStdout { child, stdin, err, log: String::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(bytes);
            let _ = stdin.flush();
        }
    }

    /// Skips stderr lines up to one containing `needle`.
    fn stderr_line_containing(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(line) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("no stderr line with {needle:?} ({e:?}):\n{}", self.log),
            }
        }
    }

    /// Waits for the exit; the code and all of stderr.
    fn finish(&mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "still running:\n{}", self.log);
            thread::sleep(Duration::from_millis(5));
        };
        while let Ok(line) = self.err.recv_timeout(DEADLINE) {
            self.log.push_str(&line);
            self.log.push('\n');
        }
        (status.code(), self.log.clone())
    }
}

impl Drop for NoStdout {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_client_with_a_closed_stdout_ends_quietly() {
    let (mut server, port) = Proc::server(&[]);
    let mut client = NoStdout::spawn(&["client", "127.0.0.1", &port.to_string()]);
    client.stderr_line_containing("connected to");
    client.send(b"hi\n");
    assert_eq!(server.stdout_line(), "hi\n");
    server.send(b"nobody will read this\n");
    let (code, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_clean_stderr("client", &err);
    server.stderr_line_containing(" left");
}

#[test]
fn a_server_with_a_closed_stdout_ends_quietly() {
    let mut server = NoStdout::spawn(&["server", "--bind", "127.0.0.1", "0"]);
    let line = server.stderr_line_containing("listening on ");
    let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    let mut client = connected_client(port);
    client.send(b"hi\n");
    let (code, err) = server.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_clean_stderr("server", &err);
    let (code, _, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(" left\n"), "{err}");
}

// ---------------------------------------------------------------------------
// The idle timeout.

#[test]
fn a_silent_client_is_dropped_after_the_idle_timeout() {
    let (mut server, port) = Proc::server(&["--idle-timeout", "1"]);
    let mut silent = raw_connect(port);
    let line = server.stderr_line_containing("error: connection with 127.0.0.1:");
    assert!(line.ends_with(": no data for 1 s (idle timeout)\n"), "{line:?}");
    // Closed cleanly: the silent client reads the end of the stream.
    assert_eq!(raw_rest(&mut silent).unwrap(), b"");

    let mut next = raw_connect(port);
    next.write_all(b"still there?\n").unwrap();
    assert_eq!(server.stdout_line(), "still there?\n");
    server.send(b"yes\n");
    assert_eq!(raw_line(&mut next), b"yes\n");
}

#[test]
fn a_slow_but_steady_client_is_not_dropped() {
    let (mut server, port) = Proc::server(&["--idle-timeout", "1"]);
    let mut slow = raw_connect(port);
    // Pacing the peer, not synchronising: each gap is well under the
    // timeout, the whole line takes well over it.
    for byte in b"slow!\n" {
        thread::sleep(Duration::from_millis(300));
        slow.write_all(&[*byte]).unwrap();
    }
    assert_eq!(server.stdout_line(), "slow!\n");
    server.send(b"got it\n");
    assert_eq!(raw_line(&mut slow), b"got it\n");
    assert!(!server.stderr().contains("idle timeout"), "{}", server.report());
}

// ---------------------------------------------------------------------------
// IPv6.

#[test]
fn ipv6_loopback_works_with_and_without_brackets() {
    if let Err(e) = TcpListener::bind("[::1]:0") {
        return util::skip(&format!("cannot bind ::1: {e}"));
    }
    let mut server = Proc::smolchat(&["server", "--bind", "::1", "0"]);
    let line = server.stderr_line_containing("listening on ");
    let port = line
        .strip_prefix("smolchat: listening on [::1]:")
        .and_then(|p| p.trim_end().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("{line:?}"));

    for host in ["::1", "[::1]"] {
        let mut client = Proc::smolchat(&["client", host, &port.to_string()]);
        let line = client.stderr_line_containing("connected to");
        assert_eq!(line, format!("smolchat: connected to [::1]:{port}\n"));
        let line = server.stderr_line_containing(" connected");
        assert!(line.starts_with("smolchat: [::1]:"), "{line:?}");
        client.send(format!("via {host}\n").as_bytes());
        assert_eq!(server.stdout_line(), format!("via {host}\n"));
        server.send(b"ok\n");
        assert_eq!(client.stdout_line(), "ok\n");
        client.send(b"EXIT\n");
        assert_eq!(client.finish().0, Some(0));
        server.stderr_line_containing(" left");
    }
}

// ---------------------------------------------------------------------------
// Exit codes of a session's failures.

#[test]
fn a_server_that_vanishes_mid_answer_wait_is_not_an_error_for_the_client() {
    // The peer closing at any point is a normal end: exit 0, not 1.
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let mut server = raw_accept(&listener);
    client.send(b"waiting for you\n");
    assert_eq!(raw_line(&mut server), b"waiting for you\n");
    drop(server);
    let (code, _, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("error"), "{err}");
}

// ---------------------------------------------------------------------------
// Found in review.

/// Waits until the kernel on the other side has taken the FIN that the
/// connection from local port `from` to `to` sent: the sender is then in
/// FIN_WAIT2 (state 05 in /proc/net/tcp), its FIN acknowledged.
fn wait_until_fin_is_acknowledged(from: u16, to: u16) {
    let (local, remote) = (format!(":{from:04X}"), format!(":{to:04X}"));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
        let acknowledged = table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3
                && fields[1].ends_with(&local)
                && fields[2].ends_with(&remote)
                && fields[3] == "05"
        });
        if acknowledged {
            return;
        }
        assert!(Instant::now() < deadline, "the FIN from port {from} was never acknowledged");
        // Polling a state, as util's wait_for polls an exit.
        thread::sleep(Duration::from_millis(5));
    }
}

/// A server whose answers are typed ahead (a regular file, read whole at
/// the first read: `x`, then `a1`, `a2`), busy with a first client A that
/// has had its answer `x`, so that the next client queues up behind it.
fn server_busy_with_answers_typed_ahead() -> (Proc, u16, TcpStream) {
    let answers = TempFile::new("typed-ahead", b"x\na1\na2\n");
    let mut server = with_file_stdin("server --bind 127.0.0.1 0", &answers);
    let line = server.stderr_line_containing("listening on ");
    let port: u16 = line.trim_end().rsplit(':').next().unwrap().parse().unwrap();
    let mut a = raw_connect(port);
    a.write_all(b"qa\n").unwrap();
    assert_eq!(raw_line(&mut a), b"x\n");
    (server, port, a)
}

#[test]
fn a_line_typed_ahead_is_kept_when_the_peer_has_already_left() {
    // B queues up behind A, asks, and half-closes; its FIN is in the
    // server's kernel before the server accepts it. At B's turn the server
    // must see that B has left and keep `a1` for the next client.
    let (mut server, port, a) = server_busy_with_answers_typed_ahead();
    let mut b = raw_connect(port);
    let b_port = b.local_addr().unwrap().port();
    b.write_all(b"q1\n").unwrap();
    b.shutdown(std::net::Shutdown::Write).unwrap();
    wait_until_fin_is_acknowledged(b_port, port);
    drop(a);

    assert_eq!(raw_rest(&mut b).unwrap(), b"", "an answer was sent after the FIN");
    server.stderr_line_containing(&format!("127.0.0.1:{b_port} left"));
    let mut c = raw_connect(port);
    c.write_all(b"q3\n").unwrap();
    assert_eq!(raw_line(&mut c), b"a1\n", "the answer typed ahead for B was lost");
    for question in ["qa\n", "q1\n", "q3\n"] {
        assert_eq!(server.stdout_line(), question);
    }
}

#[test]
fn a_server_whose_input_ends_while_it_waits_for_a_client_exits_0() {
    let (mut server, _port) = Proc::server(&[]);
    server.close_stdin();
    let (code, out, err) = server.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "");
    assert_clean_stderr("server", &err);
}

#[test]
fn a_server_with_answers_left_serves_then_exits_when_they_run_out() {
    let (mut server, port) = Proc::server(&[]);
    server.send(b"a1\n").close_stdin();
    let mut client = connected_client(port);
    client.send(b"q1\n");
    assert_eq!(client.stdout_line(), "a1\n");
    client.send(b"EXIT\n");
    assert_eq!(client.finish().0, Some(0));
    // No answer is left, so the server stops instead of waiting for a client.
    let (code, out, err) = server.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "q1\n");
}

#[test]
fn answers_typed_ahead_are_not_thrown_at_a_peer_that_closed() {
    // A full close this time: an answer written after it would be lost (the
    // peer's kernel answers it with a reset), so the next client would get
    // `a2` instead of `a1`.
    let (mut server, port, a) = server_busy_with_answers_typed_ahead();
    let mut b = raw_connect(port);
    let b_port = b.local_addr().unwrap().port();
    b.write_all(b"q1\n").unwrap();
    drop(b);
    wait_until_fin_is_acknowledged(b_port, port);
    drop(a);

    server.stderr_line_containing(&format!("127.0.0.1:{b_port} left"));
    let mut c = raw_connect(port);
    c.write_all(b"q3\n").unwrap();
    assert_eq!(raw_line(&mut c), b"a1\n", "the answer typed ahead for B was lost");
}

#[test]
fn an_ipv4_client_of_a_dual_stack_server_is_named_plainly() {
    util::native_only(
        "a Windows socket bound to :: takes IPv6 only (IPV6_V6ONLY is on by default there)",
    );
    if let Err(e) = TcpListener::bind("[::]:0") {
        return util::skip(&format!("cannot bind ::: {e}"));
    }
    let (mut server, port) = Proc::server(&["--bind", "::"]);
    let _client = raw_connect(port);
    let line = server.stderr_line_containing(" connected");
    assert!(line.starts_with("smolchat: 127.0.0.1:"), "{line:?}");
}

// ---------------------------------------------------------------------------
// Closing.

/// A client after one exchange, with much of what its raw peer sent out of
/// turn still unread. A small limit stops the client reading ahead after a
/// line or so, so that the rest waits unread in its kernel.
fn client_with_unread_data() -> (Proc, TcpStream) {
    let (listener, port) = raw_listener();
    let mut client =
        Proc::smolchat(&["client", "--max-line", "16", "127.0.0.1", &port.to_string()]);
    let mut server = raw_accept(&listener);
    client.send(b"hello\n");
    assert_eq!(raw_line(&mut server), b"hello\n");
    server.write_all(b"hi\n").unwrap();
    assert_eq!(client.stdout_line(), "hi\n");
    server.write_all(&b"one more thing\n".repeat(4000)).unwrap();
    (client, server)
}

#[test]
fn a_peer_that_keeps_writing_after_exit_sees_a_clean_end_of_stream() {
    let (mut client, mut server) = client_with_unread_data();

    // The client's FIN comes first, while it still reads: the end of the
    // stream reaches the peer at once, not after the linger.
    client.send(b"EXIT\n");
    assert_eq!(raw_rest(&mut server).unwrap(), b"", "a clean end of stream");
    // Unread data, and what the peer still sends, is read and dropped, so
    // the close never turns into a reset; the client ends once the peer
    // closes too.
    server.write_all(b"and another\n").unwrap();
    server.shutdown(std::net::Shutdown::Write).expect("the client is still there to read");
    let (code, out, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "hi\n");
    assert_clean_stderr("client", &err);
    let error = server.take_error().unwrap();
    assert!(error.is_none(), "the client's close ended in a reset: {error:?}");
}

#[test]
fn a_close_drains_unread_data_and_ends_even_when_the_peer_never_closes() {
    let (mut client, mut server) = client_with_unread_data();
    client.send(b"EXIT\n");
    assert_eq!(raw_rest(&mut server).unwrap(), b"");
    // The peer keeps its side open: the linger bounds the wait, and what was
    // unread has been read by then, so the close is no reset.
    let (code, _, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    let error = server.take_error().unwrap();
    assert!(error.is_none(), "the client's close ended in a reset: {error:?}");
}

// ---------------------------------------------------------------------------
// The listen queue.

#[test]
fn a_client_waiting_in_the_listen_queue_is_not_served_once_the_server_input_ends() {
    let (mut server, port) = Proc::server(&["--bind", "127.0.0.1"]);
    let mut first = connected_client(port);
    first.send(b"first\n");
    assert_eq!(server.stdout_line(), "first\n");
    // The second connection completes in the kernel's listen queue while the
    // server is at its turn with the first.
    let mut second = raw_connect(port);
    second.write_all(b"second\n").unwrap();

    // No answer can ever be typed now: the server closes the first client
    // and ends, without taking the second.
    server.close_stdin();
    let (code, out, err) = server.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "first\n", "the waiting client was served");
    assert_eq!(err.matches(" connected\n").count(), 1, "{err}");
    assert!(err.contains("smolchat: closed the connection to 127.0.0.1:"), "{err}");
    assert_clean_stderr("server", &err);

    let (code, _, err) = first.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.ends_with(&format!("smolchat: 127.0.0.1:{port} left\n")), "{err}");
    // The kernel resets a connection nobody accepted; nothing was sent on it.
    match raw_rest(&mut second) {
        Ok(bytes) => assert_eq!(bytes, b"", "the waiting client got an answer"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
}
