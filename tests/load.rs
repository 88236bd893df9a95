//! Load and fault tests: hundreds of connections that close or reset at once
//! leak no file descriptor, and thousands of round trips grow no memory.

use std::net::TcpStream;
use std::time::Duration;

use crate::util::{self, Proc};

/// How many connections the server sees come and go.
const ATTEMPTS: usize = 500;

/// Round trips in the soak.
const ROUND_TRIPS: usize = 5000;

/// After how many round trips the soak takes its first measure.
const WARM_UP: usize = 500;

/// How much resident memory may grow between the two measures.
const RSS_SLACK_KIB: u64 = 512;

/// The open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read /proc/PID/fd").count()
}

#[test]
fn connects_and_resets_leak_no_descriptor() {
    util::native_only("it counts /proc/PID/fd, which under Wine are Wine's descriptors");
    let (mut server, port) = Proc::server(&["--bind", "127.0.0.1"]);
    let before = open_fds(server.pid());

    let (mut left, mut reset) = (0, 0);
    for attempt in 0..ATTEMPTS {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
        let addr = format!("127.0.0.1:{}", stream.local_addr().unwrap().port());
        if attempt % 2 == 1 {
            // A zero linger turns the close into a reset (RST, not FIN).
            rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO))
                .expect("SO_LINGER");
        }
        drop(stream);
        // The server serves one at a time, so its lines for this connection
        // come before any of the next: connected, then how it ended.
        server.stderr_line_containing(&format!("{addr} connected"));
        let ending = server.stderr_line_containing(&addr);
        if attempt % 2 == 0 {
            assert!(ending.ends_with(&format!("{addr} left\n")), "after a close: {ending:?}");
            left += 1;
        } else {
            let want = format!("error: connection with {addr}: connection reset by peer\n");
            assert!(ending.ends_with(&want), "after a reset: {ending:?}");
            reset += 1;
        }
    }
    assert_eq!((left, reset), (ATTEMPTS / 2, ATTEMPTS / 2));

    // A real client is still served after all that.
    let mut client = Proc::client(port);
    client.stderr_line_containing("connected to 127.0.0.1:");
    client.send(b"still there?\n");
    assert_eq!(server.stdout_line(), "still there?\n");
    server.send(b"yes\n");
    assert_eq!(client.stdout_line(), "yes\n");
    client.close_stdin();
    let (code, _, stderr) = client.finish();
    assert_eq!(code, Some(0), "client: {stderr}");
    server.stderr_line_containing(" left");

    let after = open_fds(server.pid());
    assert!(
        after <= before,
        "the server had {before} descriptors open before {ATTEMPTS} connections and {after} after"
    );
}

#[test]
fn thousands_of_round_trips_grow_no_memory() {
    let (mut server, port) = Proc::server(&["--bind", "127.0.0.1"]);
    let mut client = Proc::client(port);
    client.stderr_line_containing("connected to 127.0.0.1:");

    // Both keyboards are fed up front; the server's last answer is held back
    // so that both processes are still alive, mid-session, at the last
    // measure.
    let mut questions = String::new();
    let mut answers = String::new();
    for i in 0..ROUND_TRIPS {
        questions.push_str(&format!("question {i}\n"));
        if i + 1 < ROUND_TRIPS {
            answers.push_str(&format!("answer {i}\n"));
        }
    }
    client.send(questions.as_bytes());
    server.send(answers.as_bytes());

    let mut early = None;
    for i in 0..ROUND_TRIPS - 1 {
        assert_eq!(client.stdout_line(), format!("answer {i}\n"));
        if i + 1 == WARM_UP {
            early = Some((server.status_kib("VmRSS"), client.status_kib("VmRSS")));
        }
    }
    for i in 0..ROUND_TRIPS {
        assert_eq!(server.stdout_line(), format!("question {i}\n"));
    }
    // Now the client waits for the last answer and the server for its keyboard.
    let (server_early, client_early) = early.unwrap();
    let (server_late, client_late) = (server.status_kib("VmRSS"), client.status_kib("VmRSS"));
    for (who, early, late) in
        [("server", server_early, server_late), ("client", client_early, client_late)]
    {
        assert!(early > 0 && late > 0, "{who}: no VmRSS in /proc/PID/status");
        assert!(
            late <= early + RSS_SLACK_KIB,
            "{who}: VmRSS grew from {early} KiB after {WARM_UP} round trips to {late} KiB \
             after {ROUND_TRIPS}"
        );
    }

    let last = ROUND_TRIPS - 1;
    server.send(format!("answer {last}\n").as_bytes());
    assert_eq!(client.stdout_line(), format!("answer {last}\n"));
    // The client's keyboard is at its end after the last question.
    client.close_stdin();
    let (code, _, stderr) = client.finish();
    assert_eq!(code, Some(0), "client: {stderr}");
    server.stderr_line_containing(" left");
}
