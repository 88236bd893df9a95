//! The harness for tests at a pseudo-terminal: smolchat on a pty with a
//! terminal emulator (vt100) reading its screen, raw TCP peers, and the
//! terminal's settings as the kernel keeps them.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcgetattr, tcsetattr, tcsetwinsize, LocalModes, OptionalActions, Winsize};

use crate::util::{self, DEADLINE};

/// The terminal's size.
pub const ROWS: u16 = 40;
pub const COLS: u16 = 100;

/// Everything the terminal showed so far, and whether the terminal is gone.
struct Shown {
    bytes: Vec<u8>,
    term: vt100::Parser,
    closed: bool,
}

/// smolchat running with a pseudo-terminal as stdin, stdout and stderr, and
/// as its controlling terminal, so that the terminal's keys and job control
/// reach it as they would in a shell.
pub struct Term {
    pub name: String,
    child: Child,
    /// The keyboard side of the terminal.
    keys: File,
    /// The terminal device, for its settings and input queue.
    pub slave_path: String,
    shown: Arc<(Mutex<Shown>, Condvar)>,
    /// Where the next `expect` starts looking, so expectations come in order.
    cursor: usize,
    /// smolchat's stdin when it is a pipe instead of the terminal.
    pub stdin: Option<ChildStdin>,
    /// smolchat's stdout by lines, when it is a pipe.
    stdout: Option<mpsc::Receiver<Vec<u8>>>,
}

/// Which of smolchat's stdin and stdout are the terminal; the others are
/// pipes. Stderr is always the terminal.
#[derive(Clone, Copy)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
}

/// The settings of a terminal that matter to a user, comparable.
pub type Settings = String;

impl Term {
    /// Starts `smolchat ARGS` on a new terminal with extra environment.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Term {
        Term::start_with(args, env, Streams { stdin: true, stdout: true })
    }

    /// Starts `smolchat ARGS` with only `streams` (and stderr) on the
    /// terminal.
    pub fn start_with(args: &[&str], env: &[(&str, &str)], streams: Streams) -> Term {
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let path = ptsname(&master, Vec::new()).expect("ptsname");
        let path = path.to_str().expect("pty path").to_owned();
        let size = Winsize { ws_row: ROWS, ws_col: COLS, ws_xpixel: 0, ws_ypixel: 0 };
        tcsetwinsize(&master, size).expect("set the terminal's size");
        // NOCTTY: the test itself must not take the terminal; the child
        // takes it through `setsid --ctty`.
        let slave = open_slave(&path, false);

        // setsid makes the child a session leader whose controlling terminal
        // is its stdin, so the line discipline turns ^C into SIGINT for it;
        // the test runner's child is no group leader, so setsid execs in
        // place and the child's pid is smolchat's.
        // A test runner started in the background by a script ignores
        // SIGINT, and its children inherit that: `env` gives smolchat the
        // default action back, as a terminal user's shell does.
        // `--ctty` takes the terminal from stdin, so it needs stdin to be one.
        util::native_only("it needs a pseudo-terminal, which a Windows console is not");
        let mut cmd = Command::new("env");
        cmd.args(["--default-signal=INT", "setsid", "--wait"])
            .args(if streams.stdin { &["--ctty"][..] } else { &[] })
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
        let stdout = child.stdout.take().map(|out| util::pump(out, Arc::default()));
        // Only the child may hold the terminal's slave side now, so that the
        // master reads an end once the child is gone.
        drop(cmd);

        let master = File::from(master);
        let keys = master.try_clone().expect("dup pty master");
        let shown = Arc::new((
            Mutex::new(Shown {
                bytes: Vec::new(),
                term: vt100::Parser::new(ROWS, COLS, 0),
                closed: false,
            }),
            Condvar::new(),
        ));
        let shared = shown.clone();
        thread::spawn(move || {
            let mut master = master;
            let mut buf = [0u8; 4096];
            loop {
                let n = master.read(&mut buf).unwrap_or(0);
                let (lock, changed) = &*shared;
                let mut shown = lock.lock().unwrap();
                if n == 0 {
                    // EIO once no process holds the slave side.
                    shown.closed = true;
                    changed.notify_all();
                    return;
                }
                shown.bytes.extend_from_slice(&buf[..n]);
                shown.term.process(&buf[..n]);
                changed.notify_all();
            }
        });
        Term { name, child, keys, slave_path: path, shown, cursor: 0, stdin, stdout }
    }

    /// `smolchat client 127.0.0.1 PORT` on a terminal.
    pub fn client(port: u16, env: &[(&str, &str)]) -> Term {
        Term::start(&["client", "127.0.0.1", &port.to_string()], env)
    }

    /// `smolchat server` on 127.0.0.1, and its port once it listens.
    pub fn server(env: &[(&str, &str)]) -> (Term, u16) {
        let term = Term::start(&["server", "--bind", "127.0.0.1", "0"], env);
        let screen = term.shows("listening on 127.0.0.1:");
        let port = screen
            .split("listening on 127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|port| port.parse().ok())
            .expect("port in the listening line");
        (term, port)
    }

    /// Types at the keyboard.
    pub fn type_keys(&mut self, bytes: &[u8]) {
        self.keys.write_all(bytes).expect("write to the terminal");
        self.keys.flush().expect("flush the terminal");
    }

    /// Waits until `needle` shows in the bytes after the previous
    /// expectation; returns where it starts and moves past it.
    pub fn expect(&mut self, needle: &[u8]) -> usize {
        let cursor = self.cursor;
        let mut found = 0;
        self.wait_until(&format!("the bytes {:?}", String::from_utf8_lossy(needle)), |shown| {
            match find(&shown.bytes[cursor..], needle) {
                Some(at) => {
                    found = cursor + at;
                    true
                }
                None => false,
            }
        });
        self.cursor = found + needle.len();
        found
    }

    /// The next line smolchat wrote on its piped stdout, with its `\n`;
    /// empty at the pipe's end.
    pub fn stdout_line(&self) -> Vec<u8> {
        let rx = self.stdout.as_ref().expect("stdout is a pipe");
        match rx.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => Vec::new(),
            Err(e) => panic!("{}: no line on stdout ({e:?})", self.name),
        }
    }

    /// Waits until the screen shows `needle`; returns the screen's text.
    pub fn shows(&self, needle: &str) -> String {
        self.screen_until(&format!("{needle:?}"), |screen| screen.contains(needle))
    }

    /// Waits until the screen's text passes `check`; returns it.
    pub fn screen_until(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let mut text = String::new();
        self.wait_until(what, |shown| {
            text = shown.term.screen().contents();
            check(&text)
        });
        text
    }

    /// Waits until the rows of the screen (trailing blanks trimmed, empty
    /// rows at the end dropped) end with `rows`.
    pub fn rows_end_with(&self, rows: &[&str]) -> Vec<String> {
        let mut got = Vec::new();
        self.wait_until(&format!("the last rows {rows:?}"), |shown| {
            got = rows_of(&shown.term);
            got.len() >= rows.len() && got[got.len() - rows.len()..] == *rows
        });
        got
    }

    /// Waits until the cursor is on `row` (counted from the screen's last
    /// non-empty row up: 0 is that row) at column `col`.
    pub fn cursor_at(&self, rows_up: usize, col: u16) {
        self.wait_until(&format!("the cursor {rows_up} rows up, at column {col}"), |shown| {
            let last = rows_of(&shown.term).len().saturating_sub(1);
            let (row, at) = shown.term.screen().cursor_position();
            usize::from(row) + rows_up == last && at == col
        });
    }

    /// The rows of the screen now.
    pub fn rows(&self) -> Vec<String> {
        rows_of(&self.shown.0.lock().unwrap().term)
    }

    /// Makes the terminal `cols` wide, as a window resize does: the kernel
    /// sends SIGWINCH. The emulator keeps its rows as they are (as xterm).
    pub fn resize(&self, cols: u16) {
        let mut shown = self.shown.0.lock().unwrap();
        shown.term.screen_mut().set_size(ROWS, cols);
        let size = Winsize { ws_row: ROWS, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        tcsetwinsize(&self.keys, size).expect("resize the terminal");
    }

    /// Waits until every byte smolchat wrote has been read (it has exited
    /// and the terminal's output side reached its end).
    pub fn wait_closed(&self) {
        self.wait_until("its end", |shown| shown.closed);
    }

    /// Whether the terminal is in bracketed-paste mode now.
    pub fn bracketed_paste(&self) -> bool {
        self.shown.0.lock().unwrap().term.screen().bracketed_paste()
    }

    fn wait_until(&self, what: &str, mut check: impl FnMut(&Shown) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        let (lock, changed) = &*self.shown;
        let mut shown = lock.lock().unwrap();
        loop {
            if check(&shown) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if shown.closed && check(&shown) {
                return;
            }
            if shown.closed || left.is_zero() {
                panic!(
                    "{}: the terminal never showed {what}; its screen:\n{}\nits bytes:\n{:?}",
                    self.name,
                    shown.term.screen().contents(),
                    String::from_utf8_lossy(&shown.bytes)
                );
            }
            shown = changed.wait_timeout(shown, left).unwrap().0;
        }
    }

    /// Everything the terminal showed so far.
    pub fn shown(&self) -> Vec<u8> {
        self.shown.0.lock().unwrap().bytes.clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to smolchat.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.pid().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -s {signal}");
    }

    /// Waits until smolchat is stopped (`T` in /proc/PID/stat).
    pub fn wait_stopped(&self) {
        let deadline = Instant::now() + DEADLINE;
        let path = format!("/proc/{}/stat", self.pid());
        loop {
            let stat = std::fs::read_to_string(&path).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            let state = stat.rsplit(')').next().and_then(|s| s.split_whitespace().next());
            if state == Some("T") {
                return;
            }
            assert!(Instant::now() < deadline, "{}: never stopped ({stat:?})", self.name);
            // Polling the process's state, not synchronising on output.
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The terminal's settings now.
    pub fn settings(&self) -> Settings {
        settings_of(&self.keys)
    }

    /// Changes the terminal's kill key, as `stty kill ^X` does.
    pub fn set_kill_key(&self, key: u8) {
        let mut t = tcgetattr(&self.keys).expect("tcgetattr");
        t.special_codes[rustix::termios::SpecialCodeIndex::VKILL] = key;
        tcsetattr(&self.keys, OptionalActions::Now, &t).expect("tcsetattr");
    }

    /// Waits until the terminal's settings differ from `from` (smolchat
    /// took the terminal).
    pub fn wait_settings_change(&self, from: &Settings) {
        let deadline = Instant::now() + DEADLINE;
        while self.settings() == *from {
            assert!(Instant::now() < deadline, "{}: the settings never changed", self.name);
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Bytes typed and not read, found by reading the terminal as a
    /// non-canonical reader would (a half-typed line counts).
    pub fn unread_input(&self) -> u64 {
        let slave = open_slave(&self.slave_path, true);
        let mut raw = tcgetattr(&slave).expect("tcgetattr");
        raw.local_modes &= !LocalModes::ICANON;
        tcsetattr(&slave, OptionalActions::Now, &raw).expect("tcsetattr");
        rustix::io::ioctl_fionread(&slave).expect("FIONREAD")
    }

    /// Waits for the exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: still running; the screen:\n{}",
                    self.name,
                    self.shown.0.lock().unwrap().term.screen().contents()
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

fn open_slave(path: &str, nonblocking: bool) -> File {
    let mut flags = rustix::fs::OFlags::NOCTTY;
    if nonblocking {
        flags |= rustix::fs::OFlags::NONBLOCK;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {path}: {e}"))
}

/// A terminal's settings as text: the four mode words and the special keys.
pub fn settings_of(fd: &File) -> Settings {
    use rustix::termios::SpecialCodeIndex as I;
    let t = tcgetattr(fd).expect("tcgetattr");
    let cc =
        [I::VINTR, I::VQUIT, I::VERASE, I::VKILL, I::VEOF, I::VMIN, I::VTIME, I::VSUSP, I::VWERASE]
            .map(|i| t.special_codes[i]);
    format!(
        "{:?} {:?} {:?} {:?} {cc:?}",
        t.input_modes, t.output_modes, t.control_modes, t.local_modes
    )
}

fn rows_of(term: &vt100::Parser) -> Vec<String> {
    let screen = term.screen();
    let mut rows: Vec<String> =
        screen.rows(0, screen.size().1).map(|r| r.trim_end().to_owned()).collect();
    while rows.last().is_some_and(|r| r.is_empty()) {
        rows.pop();
    }
    rows
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A raw TCP server in the test, acting as the peer.
pub struct RawServer {
    listener: Option<TcpListener>,
    pub port: u16,
    /// The connection that holds a full server's queue.
    filler: Option<TcpStream>,
}

impl RawServer {
    pub fn new() -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        RawServer { listener: Some(listener), port, filler: None }
    }

    /// A server whose listen queue is full (a backlog of 0, and a
    /// connection of the test's own in it), so that a client's connect
    /// is still being made until `accept` empties the queue: Linux drops
    /// the client's SYN meanwhile, and the client sends it again a second
    /// later.
    pub fn full() -> RawServer {
        use rustix::net::{bind, listen, socket, AddressFamily, SocketType};
        let fd = socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
        bind(&fd, &std::net::SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind 127.0.0.1:0");
        listen(&fd, 0).expect("listen");
        let listener = TcpListener::from(fd);
        let port = listener.local_addr().unwrap().port();
        let filler = TcpStream::connect(("127.0.0.1", port)).expect("fill the queue");
        RawServer { listener: Some(listener), port, filler: Some(filler) }
    }

    /// Takes the one connection, failing after the deadline.
    pub fn accept(&mut self) -> Peer {
        let listener = self.listener.take().expect("one connection per server");
        let filler = self.filler.take();
        let (tx, rx) = mpsc::channel();
        // accept(2) has no timeout; the thread stays blocked only when the
        // test has already failed.
        thread::spawn(move || {
            if filler.is_some() {
                // The test's own connection first, which frees the queue.
                let _ = listener.accept();
            }
            let _ = tx.send(listener.accept());
        });
        let (stream, _) =
            rx.recv_timeout(DEADLINE).expect("smolchat never connected").expect("accept");
        Peer::new(stream)
    }
}

/// A raw TCP peer's end of a connection.
pub struct Peer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Peer {
    pub fn new(stream: TcpStream) -> Peer {
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        Peer { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream }
    }

    /// Connects to a server on 127.0.0.1.
    pub fn connect(port: u16) -> Peer {
        Peer::new(TcpStream::connect(("127.0.0.1", port)).expect("connect to the server"))
    }

    /// The next line, with its `\n`; empty at the end.
    pub fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("a line from smolchat");
        line
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send to smolchat");
    }

    /// The port of this end, as smolchat names its peer.
    pub fn local_port(&self) -> u16 {
        self.writer.local_addr().expect("local address").port()
    }

    /// Closes the connection.
    pub fn hang_up(self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }
}

/// Whether `setsid` is here to give the child a controlling terminal.
pub fn ready(_test: &str) -> bool {
    util::have("setsid")
}
