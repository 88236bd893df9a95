//! smolchat on a pseudo-terminal against a raw TCP peer: the prompt, the
//! peer label and its colour rules, escaping of hostile bytes, and Ctrl-C.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};

use crate::util::{self, DEADLINE};

/// The coloured peer label smolchat puts before a message.
const COLOURED: &[u8] = b"\x1b[1;36mpeer>\x1b[0m ";

/// Everything the terminal showed so far, and whether the terminal is gone.
#[derive(Default)]
struct Screen {
    bytes: Vec<u8>,
    closed: bool,
}

/// smolchat running with a pseudo-terminal as stdin, stdout and stderr, and
/// as its controlling terminal, so that Ctrl-C reaches it as a signal.
struct Term {
    name: String,
    child: Child,
    /// smolchat's stdin when it is a pipe instead of the terminal.
    stdin: Option<ChildStdin>,
    /// What smolchat wrote to stdout when it is a pipe, once it ended.
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
    /// The keyboard side of the terminal.
    keys: File,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    /// Where the next `expect` starts looking, so expectations come in order.
    cursor: usize,
}

/// Which of smolchat's stdin and stdout are the terminal; the others are
/// pipes. Stderr is always the terminal.
#[derive(Clone, Copy)]
struct Streams {
    stdin: bool,
    stdout: bool,
}

impl Term {
    /// Starts `smolchat ARGS` on a new terminal with extra environment.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Term {
        Term::start_with(args, env, Streams { stdin: true, stdout: true })
    }

    /// Starts `smolchat ARGS` with only `streams` on the terminal.
    fn start_with(args: &[&str], env: &[(&str, &str)], streams: Streams) -> Term {
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let path = ptsname(&master, Vec::new()).expect("ptsname");
        let path = path.to_str().expect("pty path").to_owned();
        // NOCTTY: the test itself must not take the terminal; the child
        // takes it through `setsid --ctty`.
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));

        // setsid makes the child a session leader whose controlling terminal
        // is its stdin, so the line discipline turns ^C into SIGINT for it;
        // the test runner's child is no group leader, so setsid execs in
        // place (as env does) and the child's pid is smolchat's. `--ctty`
        // takes the terminal from stdin, so it needs stdin to be one. A test
        // runner started in the background by a script ignores SIGINT, and
        // its children inherit that: `env` gives smolchat the default action
        // back, as a terminal user's shell does.
        let mut cmd = Command::new("env");
        cmd.args(["--default-signal=INT", "setsid"])
            .args(if streams.stdin { &["--wait", "--ctty"][..] } else { &["--wait"] })
            .arg(env!("CARGO_BIN_EXE_smolchat"))
            .args(args)
            .env_remove("NO_COLOR")
            .env("TERM", "xterm")
            .stdin(if streams.stdin {
                slave.try_clone().expect("dup pty").into()
            } else {
                Stdio::piped()
            })
            .stdout(if streams.stdout {
                slave.try_clone().expect("dup pty").into()
            } else {
                Stdio::piped()
            })
            .stderr(slave);
        for (key, value) in env {
            cmd.env(key, value);
        }
        let name = format!("{cmd:?}");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(|mut out| {
            thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = out.read_to_end(&mut bytes);
                bytes
            })
        });
        // Only the child may hold the terminal's slave side now, so that the
        // master reads an end once the child is gone.
        drop(cmd);

        let master = File::from(master);
        let keys = master.try_clone().expect("dup pty master");
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
        let shared = screen.clone();
        thread::spawn(move || {
            let mut master = master;
            let mut buf = [0u8; 4096];
            loop {
                let n = master.read(&mut buf).unwrap_or(0);
                let (lock, changed) = &*shared;
                let mut screen = lock.lock().unwrap();
                if n == 0 {
                    // EIO once no process holds the slave side.
                    screen.closed = true;
                    changed.notify_all();
                    return;
                }
                screen.bytes.extend_from_slice(&buf[..n]);
                changed.notify_all();
            }
        });
        Term { name, child, stdin, stdout, keys, screen, cursor: 0 }
    }

    /// `smolchat client 127.0.0.1 PORT` on a terminal.
    fn client(port: u16, env: &[(&str, &str)]) -> Term {
        Term::start(&["client", "127.0.0.1", &port.to_string()], env)
    }

    /// Types at the keyboard.
    fn type_keys(&mut self, bytes: &[u8]) {
        self.keys.write_all(bytes).expect("write to the terminal");
        self.keys.flush().expect("flush the terminal");
    }

    /// Waits until `needle` shows after the previous expectation; returns
    /// where it starts and moves past it.
    fn expect(&mut self, needle: &[u8]) -> usize {
        let deadline = Instant::now() + DEADLINE;
        let (lock, changed) = &*self.screen;
        let mut screen = lock.lock().unwrap();
        loop {
            if let Some(at) = find(&screen.bytes[self.cursor..], needle) {
                let at = self.cursor + at;
                self.cursor = at + needle.len();
                return at;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if screen.closed || left.is_zero() {
                panic!(
                    "{}: the terminal never showed {:?}; it showed:\n{:?}",
                    self.name,
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&screen.bytes)
                );
            }
            screen = changed.wait_timeout(screen, left).unwrap().0;
        }
    }

    /// Everything the terminal showed, once no process holds it any more.
    fn shown_to_the_end(&self) -> Vec<u8> {
        let deadline = Instant::now() + DEADLINE;
        let (lock, changed) = &*self.screen;
        let mut screen = lock.lock().unwrap();
        while !screen.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{}: the terminal was never closed", self.name);
            screen = changed.wait_timeout(screen, left).unwrap().0;
        }
        screen.bytes.clone()
    }

    /// Everything the terminal showed so far.
    fn shown(&self) -> Vec<u8> {
        self.screen.0.lock().unwrap().bytes.clone()
    }

    /// Waits for the exit.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: still running; the terminal showed:\n{:?}",
                    self.name,
                    String::from_utf8_lossy(&self.shown())
                );
            }
            // Polling the exit, not synchronising on output.
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A raw TCP server in the test, acting as the peer.
struct RawServer {
    listener: Option<TcpListener>,
    port: u16,
}

impl RawServer {
    fn new() -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        RawServer { listener: Some(listener), port }
    }

    /// Takes the one connection, failing after the deadline.
    fn accept(&mut self) -> Peer {
        let listener = self.listener.take().expect("one connection per server");
        let (tx, rx) = mpsc::channel();
        // accept(2) has no timeout; the thread stays blocked only when the
        // test has already failed.
        thread::spawn(move || {
            let _ = tx.send(listener.accept());
        });
        let (stream, _) =
            rx.recv_timeout(DEADLINE).expect("smolchat never connected").expect("accept");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        Peer { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream }
    }
}

/// The raw server's end of a connection.
struct Peer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Peer {
    fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("a line from smolchat");
        line
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send to smolchat");
    }
}

/// Whether `setsid` is here to give the child a controlling terminal.
fn ready() -> bool {
    util::have("setsid")
}

/// Runs one exchange at a terminal with `env` and returns what was shown up
/// to the end of the peer's `hi` line, after checking the prompt and what
/// went over the wire.
/// A client on the terminal, connected to a raw server, at its first prompt.
fn client_at_prompt(env: &[(&str, &str)]) -> (Term, Peer) {
    let mut server = RawServer::new();
    let mut term = Term::client(server.port, env);
    let peer = server.accept();
    term.expect(b"you> ");
    (term, peer)
}

fn exchange(env: &[(&str, &str)], label: &[u8]) -> Vec<u8> {
    let (mut term, mut peer) = client_at_prompt(env);

    // Enter on a cooked terminal is `\r`, which the terminal turns into `\n`.
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");
    peer.send(b"hi\n");
    let at = term.expect(&[label, b"hi"].concat());
    term.expect(b"you> ");
    let shown = term.shown();

    term.type_keys(b"EXIT\r");
    let status = term.wait();
    assert_eq!(status.code(), Some(0), "EXIT at a terminal");
    shown[..at + label.len() + 2].to_vec()
}

#[test]
fn prompt_and_coloured_label() {
    if !ready() {
        return;
    }
    exchange(&[], COLOURED);
}

#[test]
fn empty_no_color_still_colours() {
    if !ready() {
        return;
    }
    exchange(&[("NO_COLOR", "")], COLOURED);
}

#[test]
fn no_color_gives_a_plain_label() {
    if !ready() {
        return;
    }
    let shown = exchange(&[("NO_COLOR", "1")], b"peer> ");
    assert!(!shown.contains(&0x1b), "ESC with NO_COLOR=1: {:?}", String::from_utf8_lossy(&shown));
}

#[test]
fn dumb_terminal_gives_a_plain_label() {
    if !ready() {
        return;
    }
    let shown = exchange(&[("TERM", "dumb")], b"peer> ");
    assert!(!shown.contains(&0x1b), "ESC with TERM=dumb: {:?}", String::from_utf8_lossy(&shown));
}

#[test]
fn peer_escape_sequences_are_shown_escaped() {
    if !ready() {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");

    // SGR red, an OSC window title ended by BEL, clear screen, the 8-bit CSI
    // as UTF-8, and a lone 0x9b byte (invalid UTF-8).
    peer.send(b"a\x1b[31mred \x1b]0;pwned\x07 \x1b[2J \xc2\x9b[1m \x9b[2J end\n");
    term.expect(b"end");
    term.expect(b"you> ");
    let shown = term.shown();
    let text = String::from_utf8_lossy(&shown).into_owned();
    for escaped in ["^[[31m", "^[]0;pwned^G", "^[[2J", "\\u{9b}[1m", "\u{fffd}[2J"] {
        assert!(text.contains(escaped), "{escaped:?} not shown in {text:?}");
    }
    let raw: [&[u8]; 4] = [b"\x1b]0;", b"\x1b[2J", b"\x1b[31m", b"\xc2\x9b"];
    for bad in raw {
        assert!(find(&shown, bad).is_none(), "{bad:?} reached the terminal raw: {text:?}");
    }
    // Neither BEL nor any 0x9b byte: the label and escapes are ASCII and
    // U+FFFD is EF BF BD.
    assert!(!shown.contains(&0x07), "BEL reached the terminal: {text:?}");
    assert!(!shown.contains(&0x9b), "a 0x9b byte reached the terminal: {text:?}");
}

#[test]
fn ctrl_d_after_a_turn_ends_the_session() {
    if !ready() {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");
    peer.send(b"hi\n");
    term.expect(b"you> ");
    // A terminal's Ctrl-D on an empty line is one read of zero bytes, not a
    // lasting end, and it comes after the bytes of an earlier line.
    term.type_keys(b"\x04");
    assert_eq!(term.wait().code(), Some(0), "Ctrl-D at the client's prompt");
    assert_eq!(peer.line(), b"", "the client closed the connection");
}

/// Ctrl-C ends smolchat through SIGINT, or an exit code of 130.
fn assert_interrupted(status: ExitStatus) {
    assert!(
        status.signal() == Some(2) || status.code() == Some(130),
        "Ctrl-C did not end the program by SIGINT: {status:?}"
    );
}

#[test]
fn ctrl_c_at_the_prompt_ends_the_program() {
    if !ready() {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"\x03");
    assert_interrupted(term.wait());
    // The kernel closes the socket of a dead process: the peer sees the end.
    assert_eq!(peer.line(), b"", "the peer got data after Ctrl-C");
}

#[test]
fn ctrl_c_while_waiting_for_the_peer_ends_the_program() {
    if !ready() {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");
    term.type_keys(b"\x03");
    assert_interrupted(term.wait());
}

/// `smolchat server` on a terminal with a raw client connected; returns the
/// terminal and the client once the server has taken one turn at its prompt.
fn server_after_a_turn() -> Option<(Term, Peer)> {
    if !ready() {
        return None;
    }
    let mut term = Term::start(&["server", "--bind", "127.0.0.1", "0"], &[]);
    let listening = b"smolchat: listening on 127.0.0.1:";
    let at = term.expect(listening);
    let eol = term.expect(b"\r\n");
    let shown = term.shown();
    let port = std::str::from_utf8(&shown[at + listening.len()..eol]).unwrap();
    let port: u16 = port.parse().expect("port in the listening line");

    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut peer = Peer { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream };
    term.expect(b" connected");
    // The server's prompt comes only once the client has spoken.
    peer.send(b"hey\n");
    term.expect(&[COLOURED, b"hey"].concat());
    term.expect(b"you> ");
    term.type_keys(b"yo\r");
    assert_eq!(peer.line(), b"yo\n");
    peer.send(b"bye\n");
    term.expect(&[COLOURED, b"bye"].concat());
    term.expect(b"you> ");
    Some((term, peer))
}

#[test]
fn server_at_a_terminal_labels_and_prompts() {
    let Some((mut term, mut peer)) = server_after_a_turn() else { return };
    term.type_keys(b"EXIT\r");
    term.expect(b"smolchat: closed the connection to 127.0.0.1:");
    assert_eq!(peer.line(), b"", "the server closed the connection");
}

#[test]
fn ctrl_d_at_the_server_prompt_ends_the_program() {
    let Some((mut term, mut peer)) = server_after_a_turn() else { return };
    // Ctrl-D on an empty line ends the keyboard, and with it the server.
    term.type_keys(b"\x04");
    assert_eq!(term.wait().code(), Some(0), "Ctrl-D at the server's prompt");
    assert_eq!(peer.line(), b"", "the server closed the connection");
}

/// A client with only `streams` on the terminal, connected to a raw server,
/// after it has sent `hello` (typed on whichever stdin it has) and shown
/// the answer `hi`, and after its input ended.
fn client_with(streams: Streams) -> Term {
    let mut server = RawServer::new();
    let port = server.port.to_string();
    let mut term = Term::start_with(&["client", "127.0.0.1", &port], &[], streams);
    let mut peer = server.accept();
    if streams.stdin {
        term.expect(b"you> ");
        term.type_keys(b"hello\r");
    } else {
        term.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    }
    assert_eq!(peer.line(), b"hello\n");
    peer.send(b"hi\n");
    if streams.stdin {
        term.expect(b"you> ");
        term.type_keys(b"\x04");
    } else {
        term.stdin = None;
    }
    assert_eq!(term.wait().code(), Some(0), "the end of input ends the client");
    term
}

#[test]
fn the_prompt_follows_stdin_not_stdout() {
    if !ready() {
        return;
    }
    // stdin a terminal, stdout a pipe: a prompt on the terminal, no label
    // in the pipe.
    let mut term = client_with(Streams { stdin: true, stdout: false });
    let out = term.stdout.take().unwrap().join().unwrap();
    assert_eq!(out, b"hi\n", "a label went into the pipe");

    // stdin a pipe, stdout a terminal: the label, and no prompt.
    let mut term = client_with(Streams { stdin: false, stdout: true });
    term.expect(&[COLOURED, b"hi\r\n"].concat());
    let shown = term.shown_to_the_end();
    let text = String::from_utf8_lossy(&shown);
    assert!(find(&shown, b"you> ").is_none(), "a prompt with piped input: {text:?}");
}

#[test]
fn the_prompt_line_is_ended_before_a_message() {
    if !ready() {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");
    peer.send(b"hi\n");
    term.expect(b"you> ");
    // The peer sends out of turn and leaves while the prompt is open: the
    // line is shown, then the status, each on a line of its own.
    peer.send(b"late\n");
    let port = peer.writer.local_addr().unwrap().port();
    drop(peer);
    let left = format!("smolchat: 127.0.0.1:{port} left\r\n");
    term.expect(left.as_bytes());
    let shown = term.shown();
    let prompt = shown.windows(5).rposition(|w| w == b"you> ").unwrap();
    let want = [b"you> \r\n", COLOURED, b"late\r\n", left.as_bytes()].concat();
    assert_eq!(
        String::from_utf8_lossy(&shown[prompt..]),
        String::from_utf8_lossy(&want),
        "the open prompt's line was not ended first"
    );
}
