//! The keyboard at a terminal in memory: what the test types goes through
//! the line editor, which draws into a buffer the test reads.

use super::*;
use crate::terminal::keys::SpecialChars;
use crate::testing::TypedAhead;
use futures_lite::io::AsyncWriteExt;
use futures_lite::FutureExt;

/// Runs `f`, failing the test if it takes more than a few seconds.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f.or(async {
        smol::Timer::after(std::time::Duration::from_secs(20)).await;
        panic!("no answer within the deadline");
    }))
}

/// What the editor drew, shared with the test.
#[derive(Clone, Default)]
struct Drawn(Rc<RefCell<Vec<u8>>>);

impl io::Write for Drawn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drawn {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow()).into_owned()
    }
}

fn edited() -> (Keyboard<TypedAhead>, piper::Writer, Drawn) {
    let (r, w) = piper::pipe(1024);
    let drawn = Drawn::default();
    let editor = Editor::new(100, 80, SpecialChars::default());
    let tty = Rc::new(RefCell::new(Tty::new(editor, Box::new(drawn.clone()), false)));
    (Keyboard::edited(TypedAhead(r), tty, None), w, drawn)
}

/// The next line the turn loop would take, as text.
fn next_line(keyboard: &mut Keyboard<TypedAhead>) -> String {
    assert_eq!(block_on(keyboard.next()).unwrap(), Input::Line);
    String::from_utf8(keyboard.line().to_vec()).unwrap()
}

/// Tab at a line asked for: nothing to complete.
fn nothing(_: &str) -> Result<String, String> {
    Err(String::new())
}

#[test]
fn an_asked_line_is_shown_and_not_sent() {
    let (mut keyboard, mut w, drawn) = edited();
    // A line typed while a connection is made is for its peer.
    keyboard.begin_session();
    block_on(w.write_all(b"first\r")).unwrap();
    block_on(keyboard.catch_up()).unwrap();
    block_on(w.write_all(b"7-purple-sausages\r")).unwrap();
    let code = block_on(keyboard.ask("code: ", nothing)).unwrap();
    assert_eq!(code, "7-purple-sausages");
    assert!(drawn.text().contains("code: 7-purple-sausages\n"), "{:?}", drawn.text());
    // The line typed before is the first line; the code is not a line.
    assert_eq!(next_line(&mut keyboard), "first\n");
    keyboard.fate(Fate::Sent);
    assert!(drawn.text().contains("you> first"));
    block_on(w.write_all(b"hi\r")).unwrap();
    assert_eq!(next_line(&mut keyboard), "hi\n");
}

#[test]
fn an_asked_line_ends_with_the_input() {
    let (mut keyboard, mut w, _) = edited();
    block_on(w.write_all(b"\x04")).unwrap();
    let e = block_on(keyboard.ask("code: ", nothing)).unwrap_err();
    assert_eq!(e.to_string(), "the keyboard ended before a code was typed");
    assert_eq!(keyboard.signalled(), None);
}

#[test]
fn ctrl_c_is_leaving_by_sigint_at_any_moment() {
    // Asked for a code.
    let (mut keyboard, mut w, _) = edited();
    block_on(w.write_all(b"7-pur\x03")).unwrap();
    assert!(block_on(keyboard.ask("code: ", nothing)).is_err());
    assert_eq!(keyboard.signalled(), Some(2));
    // While the peer has the turn, and for good.
    let (mut keyboard, mut w, _) = edited();
    keyboard.begin_session();
    block_on(w.write_all(b"waiting\rhalf\x03")).unwrap();
    assert_eq!(block_on(keyboard.left()).unwrap(), Ending::Signal(2));
    assert_eq!(block_on(keyboard.next()).unwrap(), Input::Left(Ending::Signal(2)));
    assert_eq!(keyboard.signalled(), Some(2));
}

#[test]
fn exit_acts_once_and_the_end_for_good() {
    let (mut keyboard, mut w, drawn) = edited();
    keyboard.begin_session();
    block_on(w.write_all(b"EXIT\r")).unwrap();
    assert_eq!(block_on(keyboard.left()).unwrap(), Ending::Exit);
    assert!(drawn.text().contains("you> EXIT"));
    block_on(w.write_all(b"after\r")).unwrap();
    assert_eq!(next_line(&mut keyboard), "after\n");
    // The end comes before lines waiting, and stays.
    block_on(w.write_all(b"waiting\r\x04")).unwrap();
    let end = Input::Left(Ending::KeyboardClosed);
    assert_eq!(block_on(keyboard.next()).unwrap(), end);
    assert_eq!(block_on(keyboard.left()).unwrap(), Ending::KeyboardClosed);
    assert_eq!(block_on(keyboard.left()).unwrap(), Ending::KeyboardClosed);
}

#[test]
fn lines_for_no_session_are_not_sent_and_said_so() {
    let (mut keyboard, mut w, drawn) = edited();
    block_on(w.write_all(b"anyone?\rfor you")).unwrap();
    block_on(keyboard.catch_up()).unwrap();
    assert!(drawn.text().contains("smolchat: not sent (nobody is connected): anyone?"));
    keyboard.begin_session();
    block_on(w.write_all(b"\rfresh\r")).unwrap();
    assert_eq!(next_line(&mut keyboard), "fresh\n");
    assert!(drawn.text().contains("not sent (begun before the peer connected): for you"));
    // The peer left before it was sent: not sent, and said so.
    keyboard.fate(Fate::Kept);
    assert!(drawn.text().contains("not sent (the peer left): fresh"));
    // Waiting when the session ends: not sent either.
    block_on(w.write_all(b"late\r")).unwrap();
    block_on(keyboard.catch_up()).unwrap();
    keyboard.end_session("the connection was closed");
    assert!(drawn.text().contains("not sent (the connection was closed): late"));
}

#[test]
fn plain_lines_wait_for_their_turn_and_one_kept_comes_again() {
    let (r, mut w) = piper::pipe(64);
    let mut keyboard = Keyboard::plain(TypedAhead(r), 5);
    block_on(w.write_all(b"one\r\nmuch too long\ntwo")).unwrap();
    drop(w);
    // Never read while the peer has the turn.
    assert!(future::block_on(future::poll_once(keyboard.left())).is_none());
    assert_eq!(next_line(&mut keyboard), "one\n");
    keyboard.fate(Fate::Kept);
    assert_eq!(next_line(&mut keyboard), "one\n");
    assert_eq!(block_on(keyboard.next()).unwrap(), Input::TooLong(5));
    // The last line, without its end, is sent with one.
    assert_eq!(next_line(&mut keyboard), "two\n");
    let end = Input::Left(Ending::KeyboardClosed);
    assert_eq!(block_on(keyboard.next()).unwrap(), end);
}
