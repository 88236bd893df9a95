//! The binary at a console, through `script`'s pseudo-terminal: the
//! coloured `peer>` label and `smolchat:` prefix, and none with NO_COLOR.
//! Under Wine (`.ci/run`) the pseudo-terminal becomes a Windows console, so
//! this is where the Windows build's virtual-terminal processing is seen;
//! natively it is the Linux binary with its line editor.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::session::{raw_accept, raw_line, raw_listener};
use crate::util::{self, DEADLINE};

const PREFIX: &str = "\x1b[1;33msmolchat:\x1b[0m connected to";
const LABEL: &str = "\x1b[1;36mpeer>\x1b[0m hello from the server";

/// `script` running the binary, with what its console showed so far.
struct AtConsole {
    child: Child,
    keys: Option<ChildStdin>,
    shown: Arc<(Mutex<Vec<u8>>, Condvar)>,
}

impl AtConsole {
    /// `smolchat client 127.0.0.1 PORT` at a console of its own, with
    /// `NO_COLOR` set to `no_color` or unset.
    fn client(port: u16, no_color: Option<&str>) -> AtConsole {
        let words: Vec<String> = util::command_words()
            .iter()
            .map(|w| format!("'{}'", w.to_string_lossy().replace('\'', r"'\''")))
            .collect();
        let mut cmd = Command::new("script");
        // -e: the exit code is the command's; -f: its output as it comes.
        let line = format!("exec {} client 127.0.0.1 {port}", words.join(" "));
        cmd.args(["-qefc", &line, "/dev/null"]).env("TERM", "xterm");
        match no_color {
            Some(v) => cmd.env("NO_COLOR", v),
            None => cmd.env_remove("NO_COLOR"),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start script");
        let keys = child.stdin.take();
        let mut out = child.stdout.take().unwrap();
        let shown = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                sink.0.lock().unwrap().extend_from_slice(&buf[..n]);
                sink.1.notify_all();
            }
        });
        AtConsole { child, keys, shown }
    }

    /// Waits until the console has shown `needle`.
    fn expect(&self, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        let (shown, changed) = &*self.shown;
        let mut text = shown.lock().unwrap();
        while !String::from_utf8_lossy(&text).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("{needle:?} never shown; the console showed {:?}", self.shown());
            }
            text = changed.wait_timeout(text, left).unwrap().0;
        }
    }

    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.shown.0.lock().unwrap()).into_owned()
    }

    fn type_keys(&mut self, bytes: &[u8]) {
        let keys = self.keys.as_mut().unwrap();
        keys.write_all(bytes).and_then(|()| keys.flush()).unwrap();
    }

    /// Waits until the console takes keys one by one (ICANON off): before
    /// that, Enter would reach it as a newline, which a Windows console
    /// under Wine does not take for Enter. Wine's console switches its
    /// terminal only once the program reads it; natively the line editor
    /// does. The terminal is `script`'s child's stdin.
    fn wait_for_raw_mode(&self) {
        let deadline = Instant::now() + DEADLINE;
        let script = self.child.id();
        loop {
            let children =
                std::fs::read_to_string(format!("/proc/{script}/task/{script}/children"))
                    .unwrap_or_default();
            let tty = children
                .split_whitespace()
                .next()
                .and_then(|pid| std::fs::File::open(format!("/proc/{pid}/fd/0")).ok());
            let raw = tty
                .and_then(|tty| rustix::termios::tcgetattr(&tty).ok())
                .is_some_and(|t| !t.local_modes.contains(rustix::termios::LocalModes::ICANON));
            if raw {
                return;
            }
            assert!(Instant::now() < deadline, "never in raw mode; showed {:?}", self.shown());
            // Polling the mode; the pause only bounds how soon it is seen.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Waits for the exit code.
    fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "still running; showed {:?}", self.shown());
            // Polling the exit; the pause only bounds how soon it is seen.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for AtConsole {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A turn each way at a console; returns all the console showed.
fn chat(no_color: Option<&str>) -> String {
    let (listener, port) = raw_listener();
    let mut client = AtConsole::client(port, no_color);
    let mut server = raw_accept(&listener);
    client.expect("connected to");
    client.expect("you>");
    client.wait_for_raw_mode();
    client.type_keys(b"question\r");
    assert_eq!(raw_line(&mut server), b"question\n");
    server.write_all(b"hello from the server\n").unwrap();
    client.expect("hello from the server");
    drop(server);
    client.expect(" left");
    assert_eq!(client.wait(), Some(0), "{:?}", client.shown());
    client.shown()
}

#[test]
fn at_a_console_the_label_and_the_status_prefix_are_coloured() {
    if !util::have("script") {
        return;
    }
    let shown = chat(None);
    assert!(shown.contains(PREFIX), "no coloured prefix in {shown:?}");
    assert!(shown.contains(LABEL), "no coloured label in {shown:?}");
}

#[test]
fn no_color_takes_the_colour_away_at_a_console() {
    if !util::have("script") {
        return;
    }
    let shown = chat(Some("1"));
    assert!(!shown.contains("\x1b[1;3"), "colour in {shown:?}");
    assert!(shown.contains("smolchat: connected to"), "{shown:?}");
    assert!(shown.contains("peer> hello from the server"), "{shown:?}");
}
