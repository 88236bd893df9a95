//! The line editor on a real pseudo-terminal, checked on the rendered
//! screen: the conversation in wire order with the input line intact,
//! leaving at any time, lines that reach only the person they were typed
//! for, and the terminal's settings given back on every way out.

use std::os::unix::process::ExitStatusExt;

use crate::pty::{ready, Peer, RawServer, Term};
use crate::terminal::client_at_prompt;

/// Settings of a fresh terminal, as smolchat finds it.
fn fresh_settings() -> String {
    let master =
        rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY)
            .expect("openpt");
    crate::pty::settings_of(&std::fs::File::from(master))
}

#[test]
fn a_partial_line_stays_intact_when_a_message_arrives() {
    if !ready("editing::a_partial_line_stays_intact_when_a_message_arrives") {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");
    term.type_keys(b"I was going to say");
    term.rows_end_with(&["you> hello", "wait> I was going to say"]);
    peer.send(b"hello there\n");
    term.rows_end_with(&["you> hello", "peer> hello there", "you> I was going to say"]);
    term.type_keys(b" more\r");
    assert_eq!(peer.line(), b"I was going to say more\n");
    term.rows_end_with(&["peer> hello there", "you> I was going to say more", "wait>"]);
}

#[test]
fn a_5000_byte_line_is_sent_whole() {
    if !ready("editing::a_5000_byte_line_is_sent_whole") {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    let line: Vec<u8> = (0..5000).map(|i| b'a' + (i % 26) as u8).collect();
    term.type_keys(&line);
    term.type_keys(b"\r");
    assert_eq!(peer.line(), [&line[..], b"\n"].concat());
}

#[test]
fn a_line_entered_during_the_peers_turn_shows_after_the_answer() {
    if !ready("editing::a_line_entered_during_the_peers_turn_shows_after_the_answer") {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"question\r");
    assert_eq!(peer.line(), b"question\n");
    // Typed ahead: it waits, on the screen, above the input line.
    term.type_keys(b"follow-up\r");
    term.rows_end_with(&["you> question", "wait> follow-up", "wait>"]);
    peer.send(b"answer\n");
    // Sent at the next turn, and shown where it was sent.
    assert_eq!(peer.line(), b"follow-up\n");
    let rows = term.rows_end_with(&["you> question", "peer> answer", "you> follow-up", "wait>"]);
    assert_eq!(rows.iter().filter(|r| r.contains("follow-up")).count(), 1, "{rows:?}");
}

#[test]
fn a_paste_of_several_lines_is_several_lines() {
    if !ready("editing::a_paste_of_several_lines_is_several_lines") {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"\x1b[200~first\r\nsecond\r\nthi\x1b[201~");
    assert_eq!(peer.line(), b"first\n");
    peer.send(b"one\n");
    assert_eq!(peer.line(), b"second\n");
    term.rows_end_with(&["you> first", "peer> one", "you> second", "wait> thi"]);
}

#[test]
fn wide_characters_are_edited_in_place() {
    if !ready("editing::wide_characters_are_edited_in_place") {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    // Type CJK and an emoji, go left over two of them, delete one.
    term.type_keys("日本語😀x".as_bytes());
    term.type_keys(b"\x1b[D\x1b[D\x1b[D\x7f");
    term.rows_end_with(&["you> 日語😀x"]);
    term.type_keys(b"\r");
    assert_eq!(peer.line(), "日語😀x\n".as_bytes());
}

#[test]
fn exit_during_the_peers_turn_leaves_at_once_client() {
    if !ready("editing::exit_during_the_peers_turn_leaves_at_once_client") {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");
    // The server never answers; EXIT acts all the same.
    term.type_keys(b"EXIT\r");
    assert_eq!(term.wait().code(), Some(0));
    assert_eq!(peer.line(), b"", "the client closed the connection");
}

#[test]
fn ctrl_d_during_the_peers_turn_leaves_at_once_client() {
    if !ready("editing::ctrl_d_during_the_peers_turn_leaves_at_once_client") {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");
    term.type_keys(b"\x04");
    assert_eq!(term.wait().code(), Some(0));
    assert_eq!(peer.line(), b"", "the client closed the connection");
}

/// A server on a terminal with a raw client connected, during the client's turn.
fn server_waiting_for_its_client(test: &str) -> Option<(Term, u16, Peer)> {
    if !ready(test) {
        return None;
    }
    let (mut term, port) = Term::server(&[]);
    let mut peer = Peer::connect(port);
    term.shows(" connected");
    peer.send(b"hey\n");
    term.rows_end_with(&["peer> hey", "you>"]);
    term.type_keys(b"yo\r");
    assert_eq!(peer.line(), b"yo\n");
    Some((term, port, peer))
}

#[test]
fn exit_during_the_peers_turn_leaves_at_once_server() {
    let test = "editing::exit_during_the_peers_turn_leaves_at_once_server";
    let Some((mut term, port, mut peer)) = server_waiting_for_its_client(test) else { return };
    term.type_keys(b"EXIT\r");
    assert_eq!(peer.line(), b"", "the server closed the connection");
    term.shows("smolchat: closed the connection to 127.0.0.1:");
    // And it serves the next client.
    let mut next = Peer::connect(port);
    next.send(b"again\n");
    term.shows("peer> again");
    term.type_keys(b"welcome\r");
    assert_eq!(next.line(), b"welcome\n");
}

#[test]
fn ctrl_d_during_the_peers_turn_ends_the_server_at_once() {
    let test = "editing::ctrl_d_during_the_peers_turn_ends_the_server_at_once";
    let Some((mut term, _, mut peer)) = server_waiting_for_its_client(test) else { return };
    term.type_keys(b"\x04");
    assert_eq!(term.wait().code(), Some(0));
    assert_eq!(peer.line(), b"", "the server closed the connection");
}

#[test]
fn exit_at_an_idle_server_ends_it() {
    if !ready("editing::exit_at_an_idle_server_ends_it") {
        return;
    }
    let (mut term, _) = Term::server(&[]);
    term.type_keys(b"EXIT\r");
    assert_eq!(term.wait().code(), Some(0));
}

#[test]
fn a_line_typed_for_a_client_that_left_reaches_no_one() {
    let test = "editing::a_line_typed_for_a_client_that_left_reaches_no_one";
    let Some((mut term, port, mut a)) = server_waiting_for_its_client(test) else { return };
    a.send(b"what is my PIN?\n");
    term.shows("peer> what is my PIN?");
    // Typed for A; A hangs up before Enter; B connects; then Enter.
    term.type_keys(b"your PIN is 4321");
    term.rows_end_with(&["you> your PIN is 4321"]);
    a.hang_up();
    term.screen_until("A left", |s| s.contains(" left"));
    let mut b = Peer::connect(port);
    term.screen_until("B connected", |s| s.matches(" connected").count() == 2);
    b.send(b"hi, I am B\n");
    term.shows("peer> hi, I am B");
    term.type_keys(b"\r");
    term.shows("smolchat: not sent (the peer it was typed for left): your PIN is 4321");
    // B's first line from the server is the next one typed for B.
    term.type_keys(b"hello B\r");
    assert_eq!(b.line(), b"hello B\n");
}

#[test]
fn a_line_typed_while_nobody_is_connected_reaches_no_one() {
    if !ready("editing::a_line_typed_while_nobody_is_connected_reaches_no_one") {
        return;
    }
    let (mut term, port) = Term::server(&[]);
    // Entered while nobody is there: said at once.
    term.type_keys(b"anyone?\r");
    term.shows("smolchat: not sent (nobody is connected): anyone?");
    // Begun while nobody is there (no prompt), entered once a client has
    // spoken.
    term.type_keys(b"early bird");
    term.rows_end_with(&["early bird"]);
    let mut peer = Peer::connect(port);
    term.shows(" connected");
    peer.send(b"hi\n");
    term.shows("peer> hi");
    term.type_keys(b"\r");
    term.shows("smolchat: not sent (begun before the peer connected): early bird");
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n", "the first line the client got");
}

/// The ways out, each checked for the terminal's settings and input queue.
fn way_out(test: &str, leave: impl FnOnce(&mut Term), code: i32) {
    if !ready(test) {
        return;
    }
    let before = fresh_settings();
    let (mut term, _peer) = client_at_prompt(&[]);
    assert_ne!(term.settings(), before, "smolchat did not take the terminal");
    assert!(term.bracketed_paste());
    leave(&mut term);
    let status = term.wait();
    assert_eq!(status.code(), Some(code), "{status:?}");
    assert_eq!(term.settings(), before, "the terminal's settings after the exit");
    term.wait_closed();
    assert!(!term.bracketed_paste(), "bracketed paste left on");
    assert_eq!(term.unread_input(), 0, "input left for the shell");
}

#[test]
fn settings_restored_after_exit() {
    way_out("editing::settings_restored_after_exit", |t| t.type_keys(b"EXIT\rleftover"), 0);
}

#[test]
fn settings_restored_after_ctrl_d() {
    way_out("editing::settings_restored_after_ctrl_d", |t| t.type_keys(b"half\x15\x04"), 0);
}

#[test]
fn settings_restored_after_ctrl_c() {
    way_out("editing::settings_restored_after_ctrl_c", |t| t.type_keys(b"half-typed\x03"), 130);
}

#[test]
fn settings_restored_after_sigterm() {
    way_out("editing::settings_restored_after_sigterm", |t| t.signal("TERM"), 143);
}

#[test]
fn settings_restored_after_sighup() {
    way_out("editing::settings_restored_after_sighup", |t| t.signal("HUP"), 129);
}

#[test]
fn settings_restored_after_an_error() {
    if !ready("editing::settings_restored_after_an_error") {
        return;
    }
    let before = fresh_settings();
    // Nobody listens on a port just freed.
    let port = RawServer::new().port;
    let mut term = Term::client(port, &[]);
    term.shows("error: cannot connect");
    assert_eq!(term.wait().code(), Some(1));
    assert_eq!(term.settings(), before);
}

/// Ctrl-Z (typed, or `kill -TSTP`): settings given back while stopped,
/// taken again and the line redrawn after `fg`; with `stty_kill`, the kill
/// key is changed while stopped, as a user's `stty kill ^X` would: it works
/// after `fg`, and stays after the exit.
fn suspend_and_continue(test: &str, suspend: impl FnOnce(&mut Term), stty_kill: Option<u8>) {
    if !ready(test) {
        return;
    }
    let mut before = fresh_settings();
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"half a line");
    term.rows_end_with(&["you> half a line"]);
    suspend(&mut term);
    term.wait_stopped();
    assert_eq!(term.settings(), before, "the terminal's settings while stopped");
    if let Some(key) = stty_kill {
        term.set_kill_key(key);
        before = term.settings();
    }
    term.signal("CONT");
    term.wait_settings_change(&before);
    term.rows_end_with(&["you> half a line"]);
    if let Some(key) = stty_kill {
        term.type_keys(&[key]);
        term.type_keys(b"half a line");
    }
    term.type_keys(b" and the rest\r");
    assert_eq!(peer.line(), b"half a line and the rest\n");
    term.type_keys(b"EXIT\r");
    let status = term.wait();
    assert_eq!(status.code(), Some(0), "{:?}", status.signal());
    assert_eq!(term.settings(), before);
}

#[test]
fn ctrl_z_and_fg() {
    suspend_and_continue("editing::ctrl_z_and_fg", |t| t.type_keys(b"\x1a"), Some(0x18));
}

#[test]
fn kill_tstp_and_fg() {
    suspend_and_continue("editing::kill_tstp_and_fg", |t| t.signal("TSTP"), None);
}

#[test]
fn status_lines_are_coloured_at_a_colour_terminal() {
    if !ready("editing::status_lines_are_coloured_at_a_colour_terminal") {
        return;
    }
    let (term, _peer) = client_at_prompt(&[]);
    let shown = term.shown();
    assert!(
        crate::pty::find(&shown, b"\x1b[1;33msmolchat:\x1b[0m connected to").is_some(),
        "{:?}",
        String::from_utf8_lossy(&shown)
    );
    let (term, _peer) = client_at_prompt(&[("NO_COLOR", "1")]);
    let shown = term.shown();
    assert!(crate::pty::find(&shown, b"smolchat: connected to").is_some());
}

#[test]
fn the_client_drops_a_silent_server_after_the_idle_timeout() {
    if !ready("editing::the_client_drops_a_silent_server_after_the_idle_timeout") {
        return;
    }
    let mut server = RawServer::new();
    let port = server.port.to_string();
    let mut term = Term::start(&["client", "--idle-timeout", "0.3", "127.0.0.1", &port], &[]);
    let mut peer = server.accept();
    term.shows("connected to");
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");
    // The server never answers.
    term.shows("no data for 0.3 s (idle timeout)");
    assert_eq!(term.wait().code(), Some(1));
}

#[test]
fn a_resize_draws_the_line_again_at_the_new_width() {
    if !ready("editing::a_resize_draws_the_line_again_at_the_new_width") {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    term.type_keys(b"hello\r");
    assert_eq!(peer.line(), b"hello\n");
    peer.send(b"a message that must stay\n");
    let line = "x".repeat(90) + &"y".repeat(60);
    term.type_keys(line.as_bytes());
    let wide = format!("you> {}", &line[..95]);
    term.rows_end_with(&[&wide, &line[95..]]);
    term.resize(60);
    let rows =
        term.rows_end_with(&[&format!("you> {}", &line[..55]), &line[55..115], &line[115..]]);
    assert!(rows.iter().any(|r| r == "peer> a message that must stay"), "{rows:?}");
    // The cursor moves by the new width: Home, then a character.
    term.type_keys(b"\x01Z");
    term.rows_end_with(&[&format!("you> Z{}", &line[..54]), &line[54..114], &line[114..]]);
    term.cursor_at(2, 6);
    term.type_keys(b"\r");
    assert_eq!(peer.line(), format!("Z{line}\n").as_bytes());
}

#[cfg(feature = "private")]
#[test]
fn exit_while_the_relay_has_not_answered_leaves_at_once() {
    if !ready("editing::exit_while_the_relay_has_not_answered_leaves_at_once") {
        return;
    }
    // A relay that takes the join and says nothing: without the leave it
    // would end the client after its 10 s deadline, exit 1.
    let (relay, port) = crate::session::raw_listener();
    let at = format!("127.0.0.1:{port}");
    let mut term = Term::start(&["client", "--relay", &at], &[("SMOLCHAT_CODE", "3-a-b")]);
    // The client first asks whether this is a relay.
    let mut probed = Peer::new(crate::session::raw_accept(&relay));
    assert_eq!(probed.line(), b"smolchat-relay/1 hello\n");
    probed.send(b"relay\n");
    let mut joined = Peer::new(crate::session::raw_accept(&relay));
    assert!(joined.line().starts_with(b"smolchat-relay/1 join 3"));
    term.type_keys(b"EXIT\r");
    assert_eq!(term.wait().code(), Some(0));
    assert_eq!(joined.line(), b"", "the client closed its relay connection");
}

#[test]
fn the_server_with_nobody_connected_says_it_waits() {
    if !ready("editing::the_server_with_nobody_connected_says_it_waits") {
        return;
    }
    let waiting = "smolchat: waiting for a client (EXIT or Ctrl-D ends the server)";
    let (mut term, port) = Term::server(&[]);
    // Said, with no prompt: a line typed now would reach no one.
    let rows = term.rows_end_with(&[waiting]);
    assert!(rows[0].starts_with("smolchat: listening on 127.0.0.1:"), "{rows:?}");
    assert_eq!(rows.len(), 2, "{rows:?}");
    // A client: its turn first, so a line typed now waits for it.
    let mut peer = Peer::connect(port);
    let connected = format!("smolchat: 127.0.0.1:{} connected", peer.local_port());
    term.rows_end_with(&[waiting, &connected, "wait>"]);
    peer.send(b"hi\n");
    term.rows_end_with(&["peer> hi", "you>"]);
    // EXIT closes it: waiting again, and so it says.
    term.type_keys(b"EXIT\r");
    let closed = format!("smolchat: closed the connection to 127.0.0.1:{}", peer.local_port());
    term.rows_end_with(&["you> EXIT", &closed, waiting]);
    assert_eq!(peer.line(), b"", "the server closed the connection");
    // A client that leaves: the same.
    let peer = Peer::connect(port);
    let at = format!("127.0.0.1:{}", peer.local_port());
    term.rows_end_with(&[waiting, &format!("smolchat: {at} connected"), "wait>"]);
    peer.hang_up();
    term.rows_end_with(&[&format!("smolchat: {at} left"), waiting]);
    // And Ctrl-D ends it, as the line says.
    term.type_keys(b"\x04");
    assert_eq!(term.wait().code(), Some(0));
}

#[test]
fn a_line_typed_while_the_client_connects_is_its_first_line() {
    if !ready("editing::a_line_typed_while_the_client_connects_is_its_first_line") {
        return;
    }
    // The server's queue is full: the connection is still being made.
    let mut server = RawServer::full();
    let mut term = Term::client(server.port, &[]);
    term.type_keys(b"first\r");
    // Kept for the connection, and the prompt says a line waits.
    term.rows_end_with(&["wait> first", "wait>"]);
    assert!(!term.rows().iter().any(|r| r.contains("connected")), "{:?}", term.rows());
    let mut peer = server.accept();
    assert_eq!(peer.line(), b"first\n");
    let connected = format!("smolchat: connected to 127.0.0.1:{}", server.port);
    term.rows_end_with(&[&connected, "you> first", "wait>"]);
    peer.send(b"hi\n");
    term.rows_end_with(&[&connected, "you> first", "peer> hi", "you>"]);
}

#[test]
fn up_and_down_recall_the_lines_sent() {
    if !ready("editing::up_and_down_recall_the_lines_sent") {
        return;
    }
    let (mut term, mut peer) = client_at_prompt(&[]);
    for (line, answer) in [("one", "a"), ("two", "b")] {
        term.type_keys(format!("{line}\r").as_bytes());
        assert_eq!(peer.line(), format!("{line}\n").as_bytes());
        peer.send(format!("{answer}\n").as_bytes());
    }
    term.rows_end_with(&["peer> b", "you>"]);
    // Up goes back a line at a time, as in a shell.
    term.type_keys(b"draft\x1b[A");
    term.rows_end_with(&["peer> b", "you> two"]);
    term.type_keys(b"\x1b[A");
    term.rows_end_with(&["peer> b", "you> one"]);
    // Down comes forward, and past the newest gives back what was typed.
    term.type_keys(b"\x1b[B");
    term.rows_end_with(&["peer> b", "you> two"]);
    term.type_keys(b"\x1b[B");
    term.rows_end_with(&["peer> b", "you> draft"]);
    // A line recalled is sent as typed.
    term.type_keys(b"\x15\x1b[A\x1b[A\r");
    assert_eq!(peer.line(), b"one\n");
    term.rows_end_with(&["peer> b", "you> one", "wait>"]);
}

#[cfg(feature = "private")]
#[test]
fn the_code_is_shown_as_typed_and_tab_completes_a_word() {
    use crate::util::{smolchat, Proc};
    if !ready("editing::the_code_is_shown_as_typed_and_tab_completes_a_word") {
        return;
    }
    let mut cmd = smolchat();
    cmd.args(["server", "--private", "--bind", "127.0.0.1", "0"])
        .env("SMOLCHAT_CODE", "6-brave-quiet-otters");
    let mut server = Proc::spawn(cmd);
    let port = server.listening_port().to_string();
    let mut term = Term::start(&["client", "--private", "127.0.0.1", &port], &[]);
    term.shows(&format!("smolchat: connected to 127.0.0.1:{port}"));
    term.rows_end_with(&["code:"]);
    // A typo is said, and the code asked again.
    term.type_keys(b"6 brave quiet ottrs\r");
    term.shows("smolchat: 'ottrs' is not a word of smolchat's codes: type the code again");
    term.rows_end_with(&["code:"]);
    assert!(term.rows().iter().any(|r| r == "code: 6 brave quiet ottrs"), "{:?}", term.rows());
    // Tab completes a word that fits alone, or says which fit.
    term.type_keys(b"6-bra\t");
    term.rows_end_with(&["code: 6-brave-"]);
    term.type_keys(b"qui\t");
    term.rows_end_with(&["smolchat: the words that fit: quick quiet", "code: 6-brave-qui"]);
    term.type_keys(b"e\tott\t");
    term.rows_end_with(&["code: 6-brave-quiet-otters"]);
    // A line typed while the code is checked is the first line; the code
    // is no line of the chat, nor of the history.
    term.type_keys(b"\rhello\r");
    term.shows("smolchat: the code matched: this chat is private");
    assert_eq!(server.stdout_line(), "hello\n");
    term.rows_end_with(&[
        "code: 6-brave-quiet-otters",
        "smolchat: the code matched: this chat is private",
        "you> hello",
        "wait>",
    ]);
    term.type_keys(b"\x1b[A\x1b[A");
    term.rows_end_with(&["you> hello", "wait> hello"]);
    term.type_keys(b"\x15EXIT\r");
    assert_eq!(term.wait().code(), Some(0));
}
