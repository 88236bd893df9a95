//! Hostile peers against the real binary: floods without a newline, resets,
//! and over-long keyboard lines.

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;

use crate::session::{
    assert_clean_stderr, assert_client_reset, raw_accept, raw_connect, raw_line, raw_listener,
};
use crate::util::{self, Proc, DEADLINE};

/// What a flood sends: far more than any line limit, and no newline.
const FLOOD: usize = 20 << 20;

/// The most memory (VmHWM, KiB) a server may have used after a flood.
const HWM_LIMIT_KIB: u64 = 16 * 1024;

/// Writes [`FLOOD`] bytes without a newline on a thread; the channel says
/// how it ended: `Err` when the peer broke the connection, as it should.
fn flood(mut stream: TcpStream) -> mpsc::Receiver<std::io::Result<()>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        let mut result = Ok(());
        for _ in 0..FLOOD / chunk.len() {
            result = stream.write_all(&chunk);
            if result.is_err() {
                break;
            }
        }
        let _ = tx.send(result);
    });
    rx
}

/// Whether a socket's peer has ended the connection: a read sees the end of
/// the stream or an error, never a line.
fn is_closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match std::io::Read::read_to_end(stream, &mut rest) {
        Ok(_) => !rest.contains(&b'\n'),
        Err(_) => true,
    }
}

#[test]
fn a_flooding_client_is_cut_off_and_memory_stays_bounded() {
    let (mut server, port) = Proc::server(&[]);
    let flooder = raw_connect(port);
    let mut watcher = flooder.try_clone().unwrap();
    let done = flood(flooder);

    let line = server.stderr_line_containing("error: connection with 127.0.0.1:");
    assert!(line.ends_with(": the peer sent a line longer than 1048576 bytes\n"), "{line:?}");
    // Read while the server still runs: it went back to accepting.
    let hwm = server.status_kib("VmHWM");
    assert!(hwm > 0, "no VmHWM for the server");
    assert!(hwm < HWM_LIMIT_KIB, "server peak memory {hwm} KiB after a flood");

    let ended = done.recv_timeout(DEADLINE).expect("the flood never ended");
    assert!(ended.is_err() || is_closed(&mut watcher), "the flood went through");

    let mut next = raw_connect(port);
    next.write_all(b"after the flood\n").unwrap();
    assert_eq!(server.stdout_line(), "after the flood\n");
    server.send(b"welcome\n");
    assert_eq!(raw_line(&mut next), b"welcome\n");
    assert!(server.status_kib("VmHWM") < HWM_LIMIT_KIB);
    assert_clean_stderr("server", &server.stderr());
}

#[test]
fn a_flooding_server_makes_the_client_fail_with_exit_1() {
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let mut server = raw_accept(&listener);
    client.send(b"hello\n");
    assert_eq!(raw_line(&mut server), b"hello\n");
    let done = flood(server);

    let (code, out, err) = client.finish();
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out, "");
    assert!(
        err.ends_with(&format!(
            "smolchat: error: connection to 127.0.0.1:{port}: \
             the peer sent a line longer than 1048576 bytes\n"
        )),
        "{err}"
    );
    assert_clean_stderr("client", &err);
    let ended = done.recv_timeout(DEADLINE).expect("the flood never ended");
    assert!(ended.is_err(), "the client took all of the flood");
}

#[test]
fn a_reset_from_the_server_is_a_client_error() {
    util::native_only(
        "under Wine the hang-up peek takes the reset, which Linux reports once (Windows keeps it)",
    );
    let (listener, port) = raw_listener();
    let mut client = Proc::client(port);
    let server = raw_accept(&listener);
    client.send(b"you will not read this\n");
    // Wait until the line sits unread in the receive buffer, then drop the
    // socket: closing with unread data makes the kernel send a reset.
    let mut peek = [0u8; 1];
    assert_eq!(server.peek(&mut peek).unwrap(), 1);
    drop(server);

    let (code, out, err) = client.finish();
    assert_eq!(out, "");
    assert_client_reset(port, code, &err);
}

#[test]
fn a_reset_from_a_client_is_reported_and_the_server_keeps_accepting() {
    util::native_only(
        "under Wine the hang-up peek takes the reset, which Linux reports once (Windows keeps it)",
    );
    let (mut server, port) = Proc::server(&[]);
    let mut client = raw_connect(port);
    client.write_all(b"hi\n").unwrap();
    assert_eq!(server.stdout_line(), "hi\n");
    server.send(b"an answer left unread\n");
    let mut peek = [0u8; 1];
    assert_eq!(client.peek(&mut peek).unwrap(), 1);
    drop(client);

    let line = server.stderr_line_containing("error: connection with 127.0.0.1:");
    assert!(line.ends_with(": connection reset by peer\n"), "{line:?}");

    let mut next = raw_connect(port);
    next.write_all(b"next\n").unwrap();
    assert_eq!(server.stdout_line(), "next\n");
    assert_clean_stderr("server", &server.stderr());
}

#[test]
fn an_over_long_keyboard_line_is_not_sent_and_the_turn_goes_on() {
    let (mut server, port) = Proc::server(&[]);
    let mut client =
        Proc::smolchat(&["client", "--max-line", "10", "127.0.0.1", &port.to_string()]);
    client.send(b"01234567890123456789\n");
    let line = client.stderr_line_containing("longer than");
    assert_eq!(line, "smolchat: line longer than 10 bytes, not sent\n");
    client.send(b"short\n");
    // The first thing the server shows is the short line: nothing of the
    // long one was sent.
    assert_eq!(server.stdout_line(), "short\n");
    server.send(b"fine\n");
    assert_eq!(client.stdout_line(), "fine\n");
    // Exactly at the limit is still sent.
    client.send(b"0123456789\n");
    assert_eq!(server.stdout_line(), "0123456789\n");
    client.send(b"EXIT\n");
    server.send(b"ok\n");
    assert_eq!(client.finish().0, Some(0));
    server.stderr_line_containing(" left");
    assert_eq!(server.stdout(), "short\n0123456789\n");
}

#[test]
fn an_over_long_answer_at_the_server_is_not_sent_either() {
    let (mut server, port) = Proc::server(&["--max-line", "10"]);
    let mut client = raw_connect(port);
    client.write_all(b"hi\n").unwrap();
    assert_eq!(server.stdout_line(), "hi\n");
    server.send(b"this answer is far too long\nok\n");
    server.stderr_line_containing("smolchat: line longer than 10 bytes, not sent");
    assert_eq!(raw_line(&mut client), b"ok\n");
}
