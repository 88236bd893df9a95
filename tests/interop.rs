//! smolchat against the real nc (OpenBSD), ncat, socat and telnet, each on
//! either side of the connection, with LF and CRLF line ends.

use crate::util::{self, Proc};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

/// A running non-smolchat tool. It owns a `Proc`, whose drop kills and reaps
/// the child, and whose every read has the harness deadline, so a tool that
/// hangs fails the test instead of stalling it.
struct Tool {
    proc: Proc,
}

impl Tool {
    /// Starts `program ARGS` with all three streams piped. Stdin stays open
    /// until `hang_up`, so answers can be written turn by turn.
    fn start(program: &str, args: &[String]) -> Tool {
        let mut cmd = Command::new(program);
        cmd.args(args);
        Tool { proc: Proc::spawn(cmd) }
    }

    /// Starts a listening tool and waits for its stderr line containing
    /// `ready`, which it prints once the socket listens. A probe connection
    /// would not do: nc and ncat would take it as THE client.
    fn listening(program: &str, args: &[String], ready: &str) -> Tool {
        let mut tool = Tool::start(program, args);
        tool.proc.stderr_line_containing(ready);
        tool
    }

    /// Types `bytes` on the tool's stdin.
    fn say(&mut self, bytes: &[u8]) {
        self.proc.send(bytes);
    }

    /// The next line the tool printed must be exactly `want`.
    fn expect_line(&mut self, want: &str) {
        let got = self.proc.stdout_line();
        assert_eq!(got, want, "{}\n{}", self.proc.name, self.proc.report());
    }

    /// Ends the tool's stdin; with the right flag it then sends FIN.
    fn hang_up(&mut self) {
        self.proc.close_stdin();
    }

    /// Waits for the tool to exit; returns its code and everything it printed.
    fn finish(&mut self) -> (Option<i32>, String, String) {
        self.proc.finish()
    }
}

/// A port that was free on 127.0.0.1 a moment ago, for a tool to listen on.
///
/// Between dropping the listener and the tool binding, another process could
/// take the port. That is acceptable here: it is loopback only, the kernel
/// hands out ephemeral ports round-robin so the same one is unlikely to come
/// back soon, and a loss shows up as a clear failure to listen (the tool's
/// stderr is in the panic message), never as a wrong pass.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// `args` with every `PORT` replaced by `port`.
fn with_port(args: &[&str], port: u16) -> Vec<String> {
    args.iter().map(|a| a.replace("PORT", &port.to_string())).collect()
}

/// A smolchat server bound to loopback, and its port.
fn server() -> (Proc, u16) {
    Proc::server(&["--bind", "127.0.0.1"])
}

/// Starts a smolchat server and the tool as its client; the tool says
/// `hello` (ended by `eol`) and gets `hi` back.
fn tool_client_says_hello(program: &str, args: &[&str], eol: &str) -> (Proc, Tool) {
    let (mut server, port) = server();
    let mut tool = Tool::start(program, &with_port(args, port));
    server.stderr_line_containing(" connected");

    tool.say(format!("hello{eol}").as_bytes());
    assert_eq!(server.stdout_line(), "hello\n");
    server.send(b"hi\n");
    tool.expect_line("hi\n");
    (server, tool)
}

/// The tool connects to a smolchat server, sends two lines ended by `eol`
/// and reads two answers, then ends its stdin. The server must print the
/// lines without `\r`, the tool must get exactly `text\n` back, and the
/// server must see the peer leave and go on running.
fn tool_client_hangs_up(program: &str, args: &[&str], eol: &str) {
    let (mut server, mut tool) = tool_client_says_hello(program, args, eol);

    tool.say(format!("second line{eol}").as_bytes());
    assert_eq!(server.stdout_line(), "second line\n");
    server.send(b"bye\n");
    tool.expect_line("bye\n");

    tool.hang_up();
    let left = server.stderr_line_containing(" left");
    assert!(left.starts_with("smolchat: 127.0.0.1:"), "{left:?}");
    let (code, out, err) = tool.finish();
    assert_eq!(code, Some(0), "{program} stderr: {err}");
    assert_eq!(out, "hi\nbye\n");
    // The server goes back to accepting rather than ending.
    assert!(server.wait_for(Duration::ZERO).is_none(), "{}", server.report());
}

/// The tool connects to a smolchat server and sends a line ended by `eol`;
/// the server answers, then types EXIT. The server must close with FIN (the
/// tool then ends cleanly once its own stdin ends) and the tool's output
/// must be exactly the one answer.
fn tool_client_until_server_exits(program: &str, args: &[&str], eol: &str) {
    let (mut server, mut tool) = tool_client_says_hello(program, args, eol);

    tool.say(format!("last{eol}").as_bytes());
    assert_eq!(server.stdout_line(), "last\n");
    server.send(b"EXIT\n");
    server.stderr_line_containing("smolchat: closed the connection to 127.0.0.1:");

    // nc and ncat 7.93 keep running after the network EOF until their stdin
    // ends too; socat ends by itself. Ending stdin makes all three finish.
    tool.hang_up();
    let (code, out, err) = tool.finish();
    assert_eq!(code, Some(0), "{program} stderr: {err}");
    assert_eq!(out, "hi\n");
    assert_eq!(server.stdout(), "hello\nlast\n");
}

/// The tool listens on a free port (started with `args`, ready once stderr
/// shows `ready`) and a smolchat client connects. The client sends, the
/// tool answers with LF and then CRLF, then ends its stdin so it sends FIN:
/// the client must print both answers without `\r`, report that the peer
/// left and exit 0.
fn tool_server_hangs_up(program: &str, args: &[&str], ready: &str) {
    let port = free_port();
    let mut tool = Tool::listening(program, &with_port(args, port), ready);
    let mut client = Proc::client(port);
    client.stderr_line_containing(&format!("smolchat: connected to 127.0.0.1:{port}"));

    client.send(b"hello\n");
    tool.expect_line("hello\n");
    tool.say(b"hi\n");
    assert_eq!(client.stdout_line(), "hi\n");

    client.send(b"second line\n");
    tool.expect_line("second line\n");
    tool.say(b"bye\r\n");
    assert_eq!(client.stdout_line(), "bye\n");

    // The client is at its keyboard turn with stdin still open: the hang-up
    // must be noticed there.
    tool.hang_up();
    let (code, out, err) = client.finish();
    assert_eq!(code, Some(0), "client stderr: {err}");
    assert_eq!(out, "hi\nbye\n");
    assert!(err.contains(&format!("smolchat: 127.0.0.1:{port} left\n")), "{err}");

    let (code, out, err) = tool.finish();
    assert_eq!(code, Some(0), "{program} stderr: {err}");
    assert_eq!(out, "hello\nsecond line\n");
}

// OpenBSD nc sends FIN at stdin EOF only with -N; -C turns its LF into CRLF.

/// Debian's name for OpenBSD netcat. Plain `nc` may be another netcat, and
/// `-C` means CRLF only in Debian's build (upstream it names a TLS cert file),
/// so a machine without this exact tool skips rather than fails.
const NC: &str = "nc.openbsd";

#[test]
fn nc_as_client_sends_lf_and_hangs_up() {
    if !util::have(NC) {
        return;
    }
    tool_client_hangs_up(NC, &["-N", "127.0.0.1", "PORT"], "\n");
}

#[test]
fn nc_as_client_sends_crlf_until_server_exits() {
    if !util::have(NC) {
        return;
    }
    tool_client_until_server_exits(NC, &["-C", "-N", "127.0.0.1", "PORT"], "\n");
}

#[test]
fn nc_as_server_answers_and_hangs_up() {
    if !util::have(NC) {
        return;
    }
    // -n keeps the address numeric in the "Listening on 127.0.0.1 PORT" line.
    tool_server_hangs_up(NC, &["-n", "-v", "-N", "-l", "127.0.0.1", "PORT"], "Listening on ");
}

// ncat half-closes at stdin EOF by default; -C turns its LF into CRLF.

#[test]
fn ncat_as_client_sends_lf_and_hangs_up() {
    if !util::have("ncat") {
        return;
    }
    tool_client_hangs_up("ncat", &["127.0.0.1", "PORT"], "\n");
}

#[test]
fn ncat_as_client_sends_crlf_until_server_exits() {
    if !util::have("ncat") {
        return;
    }
    tool_client_until_server_exits("ncat", &["-C", "127.0.0.1", "PORT"], "\n");
}

#[test]
fn ncat_as_server_answers_and_hangs_up() {
    if !util::have("ncat") {
        return;
    }
    tool_server_hangs_up("ncat", &["-v", "-l", "127.0.0.1", "PORT"], "Ncat: Listening on ");
}

// socat shuts its write side at stdin EOF, then waits -t (0.5 s) for the
// other direction. CRLF is fed as raw bytes: its `crnl` option would also
// strip every CR it reads, hiding a stray CR in smolchat's answers.

#[test]
fn socat_as_client_sends_lf_and_hangs_up() {
    if !util::have("socat") {
        return;
    }
    tool_client_hangs_up("socat", &["STDIO", "TCP:127.0.0.1:PORT"], "\n");
}

#[test]
fn socat_as_client_sends_crlf_until_server_exits() {
    if !util::have("socat") {
        return;
    }
    tool_client_until_server_exits("socat", &["STDIO", "TCP:127.0.0.1:PORT"], "\r\n");
}

#[test]
fn socat_as_server_answers_and_hangs_up() {
    if !util::have("socat") {
        return;
    }
    tool_server_hangs_up(
        "socat",
        &["-d", "-d", "TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr", "STDIO"],
        "listening on ",
    );
}

// telnet sends CRLF and prints its own banner lines on stdout. It exits at
// stdin EOF, possibly before an answer arrives, so its stdin stays open until
// the answer has been seen.

#[test]
fn telnet_as_client_sends_crlf() {
    if !util::have("telnet") {
        return;
    }
    let (mut server, port) = server();
    let mut telnet = Tool::start("telnet", &with_port(&["127.0.0.1", "PORT"], port));
    server.stderr_line_containing(" connected");

    for (line, answer) in [("hello", "hi"), ("second line", "bye")] {
        telnet.say(format!("{line}\n").as_bytes());
        assert_eq!(server.stdout_line(), format!("{line}\n"));
        server.send(format!("{answer}\n").as_bytes());
        // Skip telnet's "Trying ...", "Connected to ..." and escape lines.
        loop {
            let got = telnet.proc.stdout_line();
            if got == format!("{answer}\n") {
                break;
            }
            assert!(!got.contains(answer), "answer mangled: {got:?}\n{}", telnet.proc.report());
        }
    }

    telnet.hang_up();
    server.stderr_line_containing(" left");
    let (code, out, err) = telnet.finish();
    assert_eq!(code, Some(0), "telnet stderr: {err}");
    assert!(out.starts_with("Trying 127.0.0.1...\n"), "{out}");
    assert!(out.contains("\nhi\nbye\n"), "{out:?}");
}
