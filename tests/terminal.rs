//! smolchat on a pseudo-terminal against a raw TCP peer: the prompt, the
//! peer label and its colour rules, escaping of hostile bytes, Ctrl-C, which
//! stream decides the prompt and the label, and a message on a row of its own.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use crate::pty::{find, ready, Peer, RawServer, Streams, Term};

/// The coloured peer label smolchat puts before a message.
const COLOURED: &[u8] = b"\x1b[1;36mpeer>\x1b[0m ";

/// A client on the terminal, connected to a raw server, at its first prompt.
pub fn client_at_prompt(env: &[(&str, &str)]) -> (Term, Peer) {
    let mut server = RawServer::new();
    let mut term = Term::client(server.port, env);
    let peer = server.accept();
    // Only what is typed after this line is for this server.
    term.expect(b"connected to");
    term.expect(b"you> ");
    (term, peer)
}

/// Runs one exchange at a terminal with `env` and returns what was shown up
/// to the end of the peer's `hi` line, after checking the prompt and what
/// went over the wire.
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
    if !ready("terminal::prompt_and_coloured_label") {
        return;
    }
    exchange(&[], COLOURED);
}

#[test]
fn empty_no_color_still_colours() {
    if !ready("terminal::empty_no_color_still_colours") {
        return;
    }
    exchange(&[("NO_COLOR", "")], COLOURED);
}

#[test]
fn no_color_gives_a_plain_label() {
    if !ready("terminal::no_color_gives_a_plain_label") {
        return;
    }
    let shown = exchange(&[("NO_COLOR", "1")], b"peer> ");
    // The line editor still moves the cursor; nothing sets a colour.
    assert!(!has_colour(&shown), "colour with NO_COLOR=1: {:?}", String::from_utf8_lossy(&shown));
}

#[test]
fn dumb_terminal_gives_a_plain_label() {
    if !ready("terminal::dumb_terminal_gives_a_plain_label") {
        return;
    }
    let shown = exchange(&[("TERM", "dumb")], b"peer> ");
    assert!(!shown.contains(&0x1b), "ESC with TERM=dumb: {:?}", String::from_utf8_lossy(&shown));
}

#[test]
fn peer_escape_sequences_are_shown_escaped() {
    if !ready("terminal::peer_escape_sequences_are_shown_escaped") {
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
    if !ready("terminal::ctrl_d_after_a_turn_ends_the_session") {
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

/// Whether `bytes` set a colour or a style (an SGR sequence, `ESC [ ... m`).
fn has_colour(bytes: &[u8]) -> bool {
    bytes.windows(2).enumerate().any(|(i, w)| {
        w == b"\x1b[" && {
            let rest = &bytes[i + 2..];
            let params = rest.iter().take_while(|b| b.is_ascii_digit() || **b == b';').count();
            rest.get(params) == Some(&b'm')
        }
    })
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
    if !ready("terminal::ctrl_c_at_the_prompt_ends_the_program") {
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
    if !ready("terminal::ctrl_c_while_waiting_for_the_peer_ends_the_program") {
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
fn server_after_a_turn(test: &str) -> Option<(Term, Peer)> {
    if !ready(test) {
        return None;
    }
    let (mut term, port) = Term::server(&[]);
    let mut peer = Peer::connect(port);
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
    let test = "terminal::server_at_a_terminal_labels_and_prompts";
    let Some((mut term, mut peer)) = server_after_a_turn(test) else { return };
    term.type_keys(b"EXIT\r");
    term.shows("smolchat: closed the connection to 127.0.0.1:");
    assert_eq!(peer.line(), b"", "the server closed the connection");
}

#[test]
fn ctrl_d_at_the_server_prompt_ends_the_program() {
    let test = "terminal::ctrl_d_at_the_server_prompt_ends_the_program";
    let Some((mut term, mut peer)) = server_after_a_turn(test) else { return };
    // Ctrl-D on an empty line ends the keyboard, and with it the server.
    term.type_keys(b"\x04");
    assert_eq!(term.wait().code(), Some(0), "Ctrl-D at the server's prompt");
    assert_eq!(peer.line(), b"", "the server closed the connection");
}

/// A client with only `streams` (and stderr) on the terminal, connected to
/// a raw server.
fn client_with(streams: Streams) -> (Term, Peer) {
    let mut server = RawServer::new();
    let port = server.port.to_string();
    let term = Term::start_with(&["client", "127.0.0.1", &port], &[], streams);
    (term, server.accept())
}

#[test]
fn the_prompt_follows_stdin_and_the_label_follows_stdout() {
    if !ready("terminal::the_prompt_follows_stdin_and_the_label_follows_stdout") {
        return;
    }
    // stdin and stderr the terminal, stdout a pipe: the line editor shows
    // the prompt on the terminal, and the pipe gets the bare message.
    let (mut term, mut peer) = client_with(Streams { stdin: true, stdout: false });
    // Only what is typed after this line is for this server.
    term.expect(b"connected to");
    term.expect(b"you> ");
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");
    peer.send(b"hi\n");
    assert_eq!(term.stdout_line(), b"hi\n", "the message in the pipe, without a label");
    term.rows_end_with(&["you> hello", "you>"]);
    term.type_keys(b"\x04");
    assert_eq!(term.wait().code(), Some(0), "Ctrl-D ends the client");
    assert_eq!(term.stdout_line(), b"", "more than the message in the pipe");
    term.wait_closed();
    let shown = term.shown();
    let text = String::from_utf8_lossy(&shown);
    assert!(find(&shown, b"hi").is_none(), "the message went to the terminal: {text:?}");
    assert!(find(&shown, b"peer>").is_none(), "a label on the terminal: {text:?}");

    // stdin a pipe, stdout and stderr the terminal: the message with its
    // label on the terminal, and no prompt anywhere.
    let (mut term, mut peer) = client_with(Streams { stdin: false, stdout: true });
    term.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    assert_eq!(peer.line(), b"hello\n");
    peer.send(b"hi\n");
    term.expect(&[COLOURED, b"hi\r\n"].concat());
    term.stdin = None;
    assert_eq!(term.wait().code(), Some(0), "the end of piped input ends the client");
    term.wait_closed();
    let rows = term.rows();
    assert!(rows.iter().any(|r| r == "peer> hi"), "no labelled row: {rows:?}");
    let shown = term.shown();
    let text = String::from_utf8_lossy(&shown);
    assert!(find(&shown, b"you>").is_none(), "a prompt with piped input: {text:?}");
}

#[test]
fn a_message_gets_a_row_of_its_own_and_the_input_line_comes_back_below() {
    if !ready("terminal::a_message_gets_a_row_of_its_own_and_the_input_line_comes_back_below") {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    let connected = term.rows()[0].clone();
    assert!(connected.starts_with("smolchat: connected to 127.0.0.1:"), "{connected:?}");
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");
    // A line typed while the peer's turn runs, not yet entered.
    term.type_keys(b"draft");
    term.rows_end_with(&["you> hello", "wait> draft"]);
    peer.send(b"hi\n");
    // The whole screen, row by row: the message alone on its row, nothing
    // of the input line before or after it, and the input line below.
    let want = [connected.as_str(), "you> hello", "peer> hi", "you> draft"];
    term.rows_end_with(&want);
    assert_eq!(term.rows(), want, "the screen");
    term.cursor_at(0, 10);

    // The peer leaves while the input line is shown: the status line too
    // gets a row of its own, and the input line goes with the program.
    let port = peer.local_port();
    drop(peer);
    let status = term.wait();
    term.wait_closed();
    let left = format!("smolchat: 127.0.0.1:{port} left");
    assert_eq!(term.rows(), [&connected, "you> hello", "peer> hi", &left], "the screen at the end");
    assert_eq!(status.code(), Some(0), "the peer's leaving ends the client");
}
