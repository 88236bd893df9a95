//! The harness for tests that run the real binary: children that are killed
//! when dropped, output read on threads, and a deadline on every wait.

#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The longest any single wait in a test may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The binary under test: `SMOLCHAT_TEST_EXE` (such as the Windows `.exe`,
/// which `.ci/run` runs these tests against under Wine), or else the one
/// cargo built for these tests.
pub fn exe() -> OsString {
    std::env::var_os("SMOLCHAT_TEST_EXE")
        .filter(|exe| !exe.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_smolchat").into())
}

/// What starts [`exe`]: `SMOLCHAT_TEST_WRAPPER` (such as `wine`) and the
/// binary, or the binary alone; for tests that start it through another
/// program (`sh -c`, `setsid`).
pub fn command_words() -> Vec<OsString> {
    let wrapper = std::env::var_os("SMOLCHAT_TEST_WRAPPER").filter(|w| !w.is_empty());
    wrapper.into_iter().chain([exe()]).collect()
}

/// Whether the binary under test is a foreign one run through a wrapper
/// (the Windows `.exe` under Wine): its process is not a Linux smolchat, so
/// its pid, /proc files, signals and terminal are not what a test of the
/// native binary expects.
pub fn under_wrapper() -> bool {
    command_words().len() > 1
}

/// Gives up on a test that needs the native binary (the reason in `why`)
/// when the binary runs under a wrapper. It fails the test there, in CI or
/// not, so that nothing reports "ok" without having run: `.ci/run` leaves
/// these tests out of its Wine pass by name.
pub fn native_only(why: &str) {
    if under_wrapper() {
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("a test");
        panic!("{test} does not apply to {:?}: {why}", command_words());
    }
}

/// The smolchat binary under test (see [`exe`] and [`command_words`]).
pub fn smolchat() -> Command {
    let words = command_words();
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    cmd.env_remove("NO_COLOR").env("TERM", "xterm");
    cmd
}

/// Whether this run is CI (`CI=true`), where a test that cannot run fails.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true" || v == "1")
}

/// Gives up on the running test, which cannot run here because of `why`.
///
/// In CI that fails the test. Elsewhere the skip is written to stderr
/// directly: libtest captures only `print!` and `eprint!`, so the line shows
/// in the normal `cargo test` output, next to the test's `ok`.
pub fn skip(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    if in_ci() {
        panic!("{test} cannot run here: {why}; CI=true, so this is a failure");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Whether an external tool is on the PATH; a test that needs a missing one
/// is skipped (see [`skip`]).
pub fn have(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        skip(&format!("`{tool}` is not installed"));
    }
    found
}

/// A running child with its output collected line by line on threads.
pub struct Proc {
    /// What was run, for failure messages.
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<Vec<u8>>,
    err: Receiver<Vec<u8>>,
    /// Every stdout byte so far.
    pub stdout_log: Arc<Mutex<Vec<u8>>>,
    /// Every stderr byte so far.
    pub stderr_log: Arc<Mutex<Vec<u8>>>,
}

/// Reads `src` by lines (keeping their `\n`) into a channel and a log.
pub fn pump(src: impl Read + Send + 'static, log: Arc<Mutex<Vec<u8>>>) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(src);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    log.lock().unwrap().extend_from_slice(&line);
                    let _ = tx.send(line);
                }
            }
        }
    });
    rx
}

impl Proc {
    /// Starts `cmd` with all three streams piped.
    pub fn spawn(mut cmd: Command) -> Proc {
        let name = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout_log = Arc::new(Mutex::new(Vec::new()));
        let stderr_log = Arc::new(Mutex::new(Vec::new()));
        let out = pump(child.stdout.take().unwrap(), stdout_log.clone());
        let err = pump(child.stderr.take().unwrap(), stderr_log.clone());
        let stdin = child.stdin.take();
        Proc { name, child, stdin, out, err, stdout_log, stderr_log }
    }

    /// `smolchat ARGS...`, started.
    pub fn smolchat(args: &[&str]) -> Proc {
        let mut cmd = smolchat();
        cmd.args(args);
        Proc::spawn(cmd)
    }

    /// Starts `smolchat server [ARGS] 0` and waits for its port.
    pub fn server(args: &[&str]) -> (Proc, u16) {
        let mut all = args.to_vec();
        all.push("0");
        let mut server = Proc::smolchat(&[&["server"], &all[..]].concat());
        let port = server.listening_port();
        (server, port)
    }

    /// The port of the `listening on ADDR:PORT` line (a server's, or a
    /// relay's `relay listening on`), waited for on stderr.
    pub fn listening_port(&mut self) -> u16 {
        let line = self.stderr_line_containing("listening on ");
        let port = line.trim_end().rsplit(':').next().and_then(|p| p.parse().ok());
        port.unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    /// `smolchat client 127.0.0.1 PORT`, started.
    pub fn client(port: u16) -> Proc {
        Proc::smolchat(&["client", "127.0.0.1", &port.to_string()])
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes to the child's stdin (ignoring a child that already left).
    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(bytes);
            let _ = stdin.flush();
        }
        self
    }

    /// Closes the child's stdin: end of keyboard input.
    pub fn close_stdin(&mut self) -> &mut Self {
        self.stdin = None;
        self
    }

    /// The next stdout line, with its `\n`; fails the test after the deadline.
    pub fn stdout_line(&mut self) -> String {
        match self.out.recv_timeout(DEADLINE) {
            Ok(line) => String::from_utf8_lossy(&line).into_owned(),
            Err(e) => panic!("{}: no stdout line ({e:?})\n{}", self.name, self.report()),
        }
    }

    /// Skips stderr lines up to one that contains `needle`, and returns it.
    pub fn stderr_line_containing(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(line) => {
                    let line = String::from_utf8_lossy(&line).into_owned();
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "{}: no stderr line with {needle:?} ({e:?})\n{}",
                    self.name,
                    self.report()
                ),
            }
        }
    }

    /// Waits for the child to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.wait_for(DEADLINE)
            .unwrap_or_else(|| panic!("{}: still running\n{}", self.name, self.report()))
    }

    /// Waits up to `limit` for the child to exit.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Polling the exit, not synchronising on output: a short pause
            // between checks only bounds how soon the exit is seen.
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the exit and for the output threads to finish; returns the
    /// exit code (None when killed by a signal), stdout and stderr.
    pub fn finish(&mut self) -> (Option<i32>, String, String) {
        let status = self.wait();
        self.drain_output();
        (status.code(), self.stdout(), self.stderr())
    }

    /// Waits until both output pipes reached their end.
    pub fn drain_output(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        for rx in [&self.out, &self.err] {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(_) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => panic!("{}: output never ended", self.name),
                }
            }
        }
    }

    /// Everything the child wrote on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout_log.lock().unwrap()).into_owned()
    }

    /// Everything the child wrote on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr_log.lock().unwrap()).into_owned()
    }

    /// A dump of what the child did, for failure messages.
    pub fn report(&self) -> String {
        format!("--- stdout ---\n{}--- stderr ---\n{}", self.stdout(), self.stderr())
    }

    /// Sends a signal to the child.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill").args(["-s", signal, &self.pid().to_string()]).status();
    }

    /// A field of /proc/PID/status in KiB, such as `VmHWM`.
    pub fn status_kib(&self, field: &str) -> u64 {
        let text =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `smolchat ARGS` with stdin closed and returns (code, stdout, stderr).
pub fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let mut p = Proc::smolchat(args);
    p.close_stdin();
    p.finish()
}

/// Copies `from` to `to` on a thread until `from` ends, then half-closes
/// `to`; the thread returns every byte that crossed (a tap on a link).
pub fn forward(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
        seen
    })
}
