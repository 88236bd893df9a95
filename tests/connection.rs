//! A connection that cannot hold a session hostage, against the real binary:
//! a hang-up behind unread lines, resets after data, a peer that never
//! reads, keepalive, the memory a huge line costs, and local failures
//! (stdin that cannot be read, too few file descriptors).

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::session::{
    assert_clean_stderr, assert_client_reset, raw_accept, raw_connect, raw_line, raw_listener,
};
use crate::util::{self, smolchat, Proc, DEADLINE};

// ---------------------------------------------------------------------------
// The kernel's view of loopback TCP sockets, from /proc/net/tcp: it lets a
// test wait until a FIN or a reset has reached a socket before it acts,
// instead of guessing with a sleep.

/// One row of /proc/net/tcp (IPv4).
#[derive(Debug, Clone, Copy)]
pub struct TcpRow {
    /// TCP state: 1 established, 8 close-wait, ...
    pub state: u8,
    /// Which timer runs: 2 is keepalive.
    timer: u8,
    /// When it fires, in clock ticks (USER_HZ, 100 a second).
    timer_ticks: u64,
    inode: u64,
}

const ESTABLISHED: u8 = 1;
pub const CLOSE_WAIT: u8 = 8;

/// One line of /proc/net/tcp, parsed.
fn tcp_row(line: &str) -> Option<TcpRow> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (timer, when) = f.get(5)?.split_once(':')?;
    Some(TcpRow {
        state: u8::from_str_radix(f.get(3)?, 16).ok()?,
        timer: u8::from_str_radix(timer, 16).ok()?,
        timer_ticks: u64::from_str_radix(when, 16).ok()?,
        inode: f.get(9)?.parse().ok()?,
    })
}

/// The socket from `local` to `remote` on loopback, if the kernel has one.
/// Its row is found by the ports' text before any row is parsed: the
/// suite's load tests leave tens of thousands of sockets in TIME_WAIT,
/// and parsing each row of those every few milliseconds is what would be
/// slow.
pub fn tcp_socket(local: u16, remote: u16) -> Option<TcpRow> {
    let text = fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let (local, remote) = (format!(":{local:04X} "), format!(":{remote:04X} "));
    let line = text.lines().find(|line| {
        line.find(&local).is_some_and(|at| line[at + local.len()..].find(&remote) == Some(8))
    })?;
    tcp_row(line)
}

/// Waits until the socket from `local` to `remote` satisfies `done`
/// (`None`: no such socket).
fn wait_tcp(local: u16, remote: u16, what: &str, done: impl Fn(Option<TcpRow>) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done(tcp_socket(local, remote)) {
        assert!(Instant::now() < deadline, "socket {local} -> {remote} never became {what}");
        // Polling kernel state, as util's wait_for polls an exit.
        thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until the peer's FIN has reached the socket `local` -> `remote`.
fn wait_close_wait(local: u16, remote: u16) {
    wait_tcp(local, remote, "close-wait", |row| row.is_some_and(|r| r.state == CLOSE_WAIT));
}

/// Closes `stream` with a reset instead of a FIN (SO_LINGER 0).
fn reset(stream: TcpStream) {
    rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO)).unwrap();
    drop(stream);
}

/// Lines a peer sends out of turn: `count` of them, numbered.
fn out_of_turn_lines(count: usize) -> Vec<u8> {
    (0..count).flat_map(|i| format!("out of turn {i:07}\n").into_bytes()).collect()
}

// ---------------------------------------------------------------------------
// Hang-ups behind unread lines.

/// The server sends an answer, then 1.25 MB of lines out of turn (more than
/// the client's 1 MiB buffer holds), then closes cleanly, and reads on.
/// With `typed`, a line is typed once the FIN has reached the client, in
/// whatever part of its turn it is. The client must show every line, say
/// the server left, send nothing, and exit 0.
fn hang_up_behind_a_full_buffer(typed: Option<&[u8]>) {
    util::native_only(
        "the Windows build sees a hang-up by a peek, so not behind unread data (no POLLRDHUP)",
    );
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let mut server = raw_accept(&listener);
    let client_port = server.peer_addr().unwrap().port();
    client.send(b"hello\n");
    assert_eq!(raw_line(&mut server), b"hello\n");

    let mut sent = b"answer\n".to_vec();
    sent.extend(out_of_turn_lines(1_250_000 / 20));
    let (done_tx, done) = mpsc::channel();
    let writer = {
        let sent = sent.clone();
        let mut server = server.try_clone().unwrap();
        thread::spawn(move || {
            server.write_all(&sent).unwrap();
            server.shutdown(Shutdown::Write).unwrap();
            let _ = done_tx.send(Instant::now());
        })
    };
    let closed_at = done.recv_timeout(DEADLINE).expect("the server never got its lines out");
    if let Some(typed) = typed {
        wait_close_wait(client_port, port);
        client.send(typed);
    }

    let left = client.stderr_line_containing(" left");
    let noticed = closed_at.elapsed();
    assert_eq!(left, format!("smolchat: 127.0.0.1:{port} left\n"));
    let (code, out, err) = client.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.as_bytes() == sent, "the lines before the close were not all shown, in order");
    assert_clean_stderr("client", &err);
    writer.join().unwrap();
    let mut after = Vec::new();
    server.read_to_end(&mut after).unwrap();
    assert_eq!(String::from_utf8_lossy(&after), "", "a line went into a closed connection");
    eprintln!("hang-up behind a full buffer reported {noticed:?} after the close");
}

#[test]
fn a_hang_up_behind_a_full_buffer_is_seen_while_the_keyboard_is_silent() {
    hang_up_behind_a_full_buffer(None);
}

#[test]
fn a_line_typed_after_a_hang_up_behind_a_full_buffer_is_not_sent() {
    hang_up_behind_a_full_buffer(Some(b"typed after the end\n"));
}

/// A server whose first client has had one exchange and now holds the
/// server's turn, so that the next client waits in the listen queue.
fn server_with_a_first_client() -> (Proc, u16, TcpStream) {
    let (mut server, port) = Proc::server(&[]);
    let mut first = raw_connect(port);
    first.write_all(b"first\n").unwrap();
    assert_eq!(server.stdout_line(), "first\n");
    server.send(b"to first\n");
    assert_eq!(raw_line(&mut first), b"to first\n");
    (server, port, first)
}

#[test]
fn a_fin_behind_unread_data_keeps_the_typed_ahead_line_for_the_next_client() {
    util::native_only(
        "the Windows build sees a hang-up by a peek, so not behind unread data (no POLLRDHUP)",
    );
    let (mut server, port, first) = server_with_a_first_client();

    // While the server waits for the first client, the second one queues,
    // says its line and more, and closes: its FIN waits behind the data.
    let mut second = raw_connect(port);
    let second_port = second.local_addr().unwrap().port();
    let mut said = b"second\n".to_vec();
    said.extend(out_of_turn_lines(3000));
    second.write_all(&said).unwrap();
    second.shutdown(Shutdown::Write).unwrap();
    wait_close_wait(port, second_port);
    // Typed ahead, for whoever comes next.
    server.send(b"kept\n");

    first.shutdown(Shutdown::Write).unwrap();
    server.stderr_line_containing(&format!(":{} left", first.local_addr().unwrap().port()));
    server.stderr_line_containing(&format!(":{second_port} left"));
    let mut rest = Vec::new();
    second.read_to_end(&mut rest).unwrap();
    assert_eq!(String::from_utf8_lossy(&rest), "", "the typed-ahead line went to a closed peer");

    let mut third = raw_connect(port);
    third.write_all(b"third\n").unwrap();
    assert_eq!(raw_line(&mut third), b"kept\n");
    // Every line the second client sent before its FIN was shown, in order.
    for line in String::from_utf8_lossy(&said).split_inclusive('\n') {
        assert_eq!(server.stdout_line(), line);
    }
    assert_eq!(server.stdout_line(), "third\n");
    assert_clean_stderr("server", &server.stderr());
}

// ---------------------------------------------------------------------------
// Resets after data: an error, never "left".

#[test]
fn data_then_a_reset_is_an_error_at_the_client() {
    util::native_only(
        "under Wine the hang-up peek takes the reset, which Linux reports once (Windows keeps it)",
    );
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let mut server = raw_accept(&listener);
    client.send(b"hello\n");
    assert_eq!(raw_line(&mut server), b"hello\n");
    server.write_all(b"answer\nmore\n").unwrap();
    reset(server);

    let (code, out, err) = client.finish();
    assert_eq!(out, "answer\nmore\n");
    assert_client_reset(port, code, &err);
}

#[test]
fn data_then_a_reset_is_an_error_at_the_server_and_the_answer_is_kept() {
    util::native_only(
        "under Wine the hang-up peek takes the reset, which Linux reports once (Windows keeps it)",
    );
    let (mut server, port, first) = server_with_a_first_client();

    // The second client queues, says two lines and resets, all before its
    // turn: the server reads both lines and then the reset.
    let second = raw_connect(port);
    let second_port = second.local_addr().unwrap().port();
    wait_tcp(port, second_port, "established", |r| r.is_some_and(|r| r.state == ESTABLISHED));
    (&second).write_all(b"second\nmore\n").unwrap();
    reset(second);
    wait_tcp(port, second_port, "reset", |r| r.is_none());
    server.send(b"kept\n");

    first.shutdown(Shutdown::Write).unwrap();
    let line = server.stderr_line_containing(&format!("127.0.0.1:{second_port}: "));
    assert!(line.ends_with(": connection reset by peer\n"), "{line:?}");
    assert!(line.contains("error: connection with"), "{line:?}");

    let mut third = raw_connect(port);
    third.write_all(b"third\n").unwrap();
    assert_eq!(raw_line(&mut third), b"kept\n");
    for line in ["second\n", "more\n", "third\n"] {
        assert_eq!(server.stdout_line(), line);
    }
    assert_clean_stderr("server", &server.stderr());
}

// ---------------------------------------------------------------------------
// A peer that never reads, and one that vanishes.

#[test]
fn a_client_that_never_reads_is_dropped_and_the_next_one_served() {
    const MAX: usize = 8 << 20;
    let max = MAX.to_string();
    let (mut server, port) = Proc::server(&["--max-line", &max, "--idle-timeout", "1"]);
    let sleeper = raw_connect(port);
    (&sleeper).write_all(b"give me more\n").unwrap();
    assert_eq!(server.stdout_line(), "give me more\n");
    // An answer of 8 MiB, twice what the socket buffers hold at most
    // (net.ipv4.tcp_wmem's 4 MiB and a receive window that never grows).
    let mut answer = vec![b'x'; MAX];
    answer.push(b'\n');
    server.send(&answer);

    let line = server.stderr_line_containing("error: connection with");
    assert!(line.ends_with(": timed out, the peer read nothing for 1 s\n"), "{line:?}");
    let mut next = raw_connect(port);
    next.write_all(b"next\n").unwrap();
    assert_eq!(server.stdout_line(), "next\n");
    server.send(b"welcome\n");
    assert_eq!(raw_line(&mut next), b"welcome\n");
    assert_clean_stderr("server", &server.stderr());
    drop(sleeper);
}

/// The keepalive settings of the socket from `local` to `remote` in the
/// process `pid`, read from a copy of its descriptor.
pub fn keepalive_of(pid: u32, local: u16, remote: u16) -> (bool, Duration, Duration, u32) {
    use rustix::net::sockopt;
    let socket = socket_of(pid, local, remote);
    (
        sockopt::socket_keepalive(&socket).unwrap(),
        sockopt::tcp_keepidle(&socket).unwrap(),
        sockopt::tcp_keepintvl(&socket).unwrap(),
        sockopt::tcp_keepcnt(&socket).unwrap(),
    )
}

/// A copy of the descriptor of the socket from `local` to `remote` in the
/// process `pid`.
pub fn socket_of(pid: u32, local: u16, remote: u16) -> OwnedFd {
    use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
    let deadline = Instant::now() + DEADLINE;
    let inode = loop {
        // A connection still in the accept queue has no socket yet (inode
        // 0): wait until the process has accepted it.
        if let Some(row) = tcp_socket(local, remote).filter(|row| row.inode != 0) {
            break row.inode;
        }
        assert!(Instant::now() < deadline, "no socket {local} -> {remote}");
        thread::sleep(Duration::from_millis(2));
    };
    let target = format!("socket:[{inode}]");
    let fd_dir = format!("/proc/{pid}/fd");
    let fd: i32 = loop {
        let found = fs::read_dir(&fd_dir).unwrap().flatten().find_map(|e| {
            let link = fs::read_link(e.path()).ok()?;
            (link.to_str() == Some(&target)).then(|| e.file_name().to_str()?.parse().ok())?
        });
        if let Some(fd) = found {
            break fd;
        }
        assert!(Instant::now() < deadline, "process {pid} holds no {target}");
        thread::sleep(Duration::from_millis(2));
    };
    let pidfd = pidfd_open(Pid::from_raw(pid as i32).unwrap(), PidfdFlags::empty()).unwrap();
    pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty())
        .unwrap_or_else(|e| panic!("cannot copy the socket of process {pid}: {e}"))
}

/// What smolchat sets: a probe after a minute of silence, then every ten
/// seconds, five unanswered ones end the connection.
pub const KEEPALIVE: (bool, Duration, Duration, u32) =
    (true, Duration::from_secs(60), Duration::from_secs(10), 5);

#[test]
fn keepalive_is_on_for_accepted_and_connected_sockets() {
    util::native_only("it reads the socket through pidfd_getfd; the Windows build sets no keepalive (std has no option for it)");
    let (mut server, port) = Proc::server(&[]);
    let mut client = Proc::client(port);
    client.send(b"hi\n");
    assert_eq!(server.stdout_line(), "hi\n");
    let line = client.stderr_line_containing("connected to");
    assert!(line.contains(&format!(":{port}")), "{line:?}");
    // The client's own port, from the server's status line.
    let status = server.stderr_line_containing(" connected");
    let client_port: u16 = status
        .trim_end()
        .trim_end_matches(" connected")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {status:?}"));

    assert_eq!(keepalive_of(server.pid(), port, client_port), KEEPALIVE, "accepted socket");
    assert_eq!(keepalive_of(client.pid(), client_port, port), KEEPALIVE, "connected socket");
    // The kernel runs the keepalive timer, due in about a minute.
    let row = tcp_socket(port, client_port).unwrap();
    assert_eq!(row.timer, 2, "no keepalive timer: {row:?}");
    assert!((3000..=6000).contains(&row.timer_ticks), "{row:?}");
}

// ---------------------------------------------------------------------------
// The memory a max-length line costs on the screen.

/// Sends a max-length line of `unit` repeated to a server with
/// `--max-line 8388608` and checks its peak memory.
fn peak_memory_for_a_max_length_line(unit: &[u8]) {
    util::native_only("the limit is the Linux binary's; Wine's loader and DLLs share the process");
    const MAX: usize = 8 << 20;
    let (mut server, port) = Proc::server(&["--max-line", &MAX.to_string()]);
    let before = server.status_kib("VmHWM");
    let mut client = raw_connect(port);
    let mut line = unit.repeat(MAX / unit.len());
    line.push(b'\n');
    assert_eq!(line.len(), MAX + 1);
    client.write_all(&line).unwrap();
    let shown = server.stdout_line();
    assert!(shown.len() > MAX, "the line was not shown whole");
    let hwm = server.status_kib("VmHWM");
    let max_kib = (MAX / 1024) as u64;
    eprintln!("{unit:x?}: VmHWM {before} KiB before, {hwm} KiB after a {max_kib} KiB line");
    // The line itself, plus about 2 MiB: the process's own baseline (more
    // in a debug build) and what showing the line costs, a fixed 8 KiB.
    let limit = max_kib + before.max(2048) + 512;
    assert!(hwm <= limit, "peak {hwm} KiB (limit {limit}) for a {max_kib} KiB line of {unit:x?}");
    assert_clean_stderr("server", &server.stderr());
}

#[test]
fn a_max_length_line_of_0xff_costs_its_length_plus_a_little() {
    peak_memory_for_a_max_length_line(b"\xff");
}

#[test]
fn a_max_length_line_of_nul_costs_its_length_plus_a_little() {
    peak_memory_for_a_max_length_line(b"\0");
}

#[test]
fn a_max_length_line_of_u0085_costs_its_length_plus_a_little() {
    peak_memory_for_a_max_length_line("\u{85}".as_bytes());
}

#[test]
fn characters_that_reorder_the_screen_reach_it_escaped() {
    let (mut server, port) = Proc::server(&[]);
    let mut client = raw_connect(port);
    let all = "\u{61c}\u{200e}\u{200f}\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}\
               \u{2066}\u{2067}\u{2068}\u{2069}\u{2028}\u{2029}";
    client.write_all(format!("file{all}gpj.exe \u{200d}\n").as_bytes()).unwrap();
    assert_eq!(
        server.stdout_line(),
        "file\\u{61c}\\u{200e}\\u{200f}\\u{202a}\\u{202b}\\u{202c}\\u{202d}\\u{202e}\
         \\u{2066}\\u{2067}\\u{2068}\\u{2069}\\u{2028}\\u{2029}gpj.exe \u{200d}\n"
    );
}

// ---------------------------------------------------------------------------
// Local failures.

/// Runs smolchat with `stdin` and no more input; returns (code, stdout, stderr).
fn run_with_stdin(mut cmd: Command, stdin: Stdio) -> (Option<i32>, String, String) {
    let child = cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => {
            let out = out.unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (out.status.code(), text(&out.stdout), text(&out.stderr))
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("smolchat still running after the deadline");
        }
    }
}

/// `smolchat ARGS` started by `sh -c SCRIPT`, where the script ends with
/// `exec "$@"`.
fn through_sh(script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).arg("sh").args(util::command_words()).args(args);
    cmd
}

#[test]
fn a_server_whose_stdin_is_a_directory_says_so_before_it_listens() {
    util::native_only("a directory or closed descriptor 0 is a Unix stdin; the check is Unix-only");
    let mut cmd = smolchat();
    cmd.args(["server", "0"]);
    let (code, out, err) = run_with_stdin(cmd, Stdio::from(fs::File::open("/").unwrap()));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out, "");
    assert_eq!(err, "smolchat: error: cannot read the keyboard: stdin is a directory\n");
}

#[test]
fn a_server_whose_stdin_is_closed_says_so_before_it_listens() {
    util::native_only("a directory or closed descriptor 0 is a Unix stdin; the check is Unix-only");
    let cmd = through_sh("exec \"$@\" <&-", &["server", "0"]);
    let (code, out, err) = run_with_stdin(cmd, Stdio::null());
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out, "");
    assert_eq!(err, "smolchat: error: cannot read the keyboard: stdin is closed\n");
}

#[test]
fn a_non_blocking_stdin_is_waited_on() {
    let (listener, port) = raw_listener();
    let (keyboard, typist) = rustix::pipe::pipe().unwrap();
    // Someone else's doing: the flag belongs to the pipe, shared with smolchat.
    let flags = rustix::fs::fcntl_getfl(&keyboard).unwrap();
    rustix::fs::fcntl_setfl(&keyboard, flags | rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut child = smolchat()
        .args(["client", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::from(keyboard))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = raw_accept(&listener);
    let mut typist = fs::File::from(typist);
    typist.write_all(b"hello\n").unwrap();
    assert_eq!(raw_line(&mut server), b"hello\n");
    server.write_all(b"hi\n").unwrap();
    typist.write_all(b"EXIT\n").unwrap();
    drop(typist);
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    thread::spawn(move || {
        let _ = tx.send((
            child.wait(),
            child.stdout.take().map(|mut o| {
                let mut s = String::new();
                let _ = o.read_to_string(&mut s);
                s
            }),
            child.stderr.take().map(|mut e| {
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                s
            }),
        ));
    });
    let (status, out, err) = rx.recv_timeout(DEADLINE).unwrap_or_else(|_| {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("the client never ended");
    });
    let err = err.unwrap_or_default();
    assert_eq!(status.unwrap().code(), Some(0), "{err}");
    assert_eq!(out.unwrap_or_default(), "hi\n");
    assert_clean_stderr("client", &err);
}

#[test]
fn too_few_file_descriptors_is_one_line_before_anything_starts() {
    util::native_only("ulimit -n is a Unix limit; Windows has no descriptor table to run out of");
    let limited = "ulimit -n \"$LIMIT\" && exec \"$@\"";
    let cases =
        [("server", 4..8, vec!["server", "0"]), ("client", 4..7, vec!["client", "127.0.0.1", "1"])];
    for (role, limits, args) in cases {
        for limit in limits {
            let mut cmd = through_sh(limited, &args);
            cmd.env("LIMIT", limit.to_string());
            let (code, out, err) = run_with_stdin(cmd, Stdio::null());
            assert_eq!(code, Some(1), "{role} at {limit}: {err}");
            assert_eq!(out, "");
            assert_eq!(err.lines().count(), 1, "{role} at {limit}: {err}");
            assert!(
                err.starts_with("smolchat: error: cannot start (it needs ")
                    && err.ends_with(" free file descriptors): too many open files\n"),
                "{role} at {limit}: {err}"
            );
        }
    }
}
