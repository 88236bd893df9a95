//! The turn loop in memory: scripted peers over tiny pipes.

use super::*;
use futures_lite::future::{self, block_on};
use futures_lite::io::AsyncWriteExt;
use futures_lite::FutureExt;

/// Pipes this small make every message cross in several pieces.
const PIPE: usize = 3;

/// The real keyboard is read ahead on its own thread; the test types
/// ahead from the test's thread, so its pipe must hold a few lines.
const KEYBOARD_PIPE: usize = 1024;

/// What a session showed, in order.
#[derive(Debug, Default)]
struct Recorder {
    shown: Vec<String>,
    /// Fail with a broken pipe on the message after this many.
    closed_after: Option<usize>,
}

impl Screen for Recorder {
    fn message(&mut self, text: &[u8], with_newline: Option<&[u8]>) -> io::Result<()> {
        if self.closed_after == Some(self.shown.iter().filter(|s| s.starts_with("msg ")).count()) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if let Some(raw) = with_newline {
            assert_eq!(&raw[..raw.len() - 1], text);
        }
        self.shown.push(format!("msg {}", String::from_utf8_lossy(text)));
        Ok(())
    }
    fn status(&mut self, text: &str) {
        self.shown.push(format!("status {text}"));
    }
    fn prompt(&mut self) {
        self.shown.push("prompt".into());
    }
}

use crate::testing::TypedAhead;
use std::collections::VecDeque;

impl HangUp for piper::Reader {}

/// A keyboard whose lines the test types: a script's, taken one per turn,
/// or a person's, watched while the peer has the turn (a line entered then
/// waits for the next turn; `EXIT` and the end of input act at once).
struct Scripted {
    lines: Framer<TypedAhead>,
    person: bool,
    waiting: VecDeque<Vec<u8>>,
    line: Vec<u8>,
    /// What became of each line given, in order.
    fates: Vec<Fate>,
}

/// What the script's keyboard read.
enum Read {
    Line(Vec<u8>),
    TooLong(usize),
    Left(Ending),
}

impl Scripted {
    async fn read(&mut self) -> io::Result<Read> {
        Ok(match self.lines.next().await? {
            Frame::Line if self.person && self.lines.line() == EXIT => Read::Left(Ending::Exit),
            Frame::Line => Read::Line(self.lines.line().to_vec()),
            Frame::TooLong => Read::TooLong(self.lines.max_line()),
            Frame::Eof => Read::Left(Ending::KeyboardClosed),
        })
    }
}

impl Lines for Scripted {
    async fn next(&mut self) -> io::Result<Input> {
        let mut text = match self.waiting.pop_front() {
            Some(text) => text,
            None => match self.read().await? {
                Read::Line(text) => text,
                Read::TooLong(max) => return Ok(Input::TooLong(max)),
                Read::Left(ending) => return Ok(Input::Left(ending)),
            },
        };
        text.push(b'\n');
        self.line = text;
        Ok(Input::Line)
    }

    fn line(&self) -> &[u8] {
        &self.line
    }

    async fn left(&mut self) -> io::Result<Ending> {
        if !self.person {
            return future::pending().await;
        }
        loop {
            match self.read().await? {
                Read::Line(text) => self.waiting.push_back(text),
                Read::TooLong(_) => {}
                Read::Left(ending) => return Ok(ending),
            }
        }
    }

    fn fate(&mut self, fate: Fate) {
        if fate == Fate::Kept && !self.person {
            self.lines.put_back();
        }
        self.fates.push(fate);
    }
}

/// A script's keyboard, whose input the test writes.
fn script(max_line: usize) -> (Scripted, piper::Writer) {
    let (r, w) = piper::pipe(KEYBOARD_PIPE);
    let keyboard = Scripted {
        lines: Framer::new(TypedAhead(r), max_line),
        person: false,
        waiting: VecDeque::new(),
        line: Vec::new(),
        fates: Vec::new(),
    };
    (keyboard, w)
}

/// A person's keyboard, whose keyboard the test types.
fn person(max_line: usize) -> (Scripted, piper::Writer) {
    let (keyboard, w) = script(max_line);
    (Scripted { person: true, ..keyboard }, w)
}

/// A peer's stream, as the turn loop takes it.
fn boxed(stream: impl PeerStream + 'static) -> Box<dyn PeerStream> {
    Box::new(stream)
}

/// The far end of a connection, driven by the test.
struct Peer {
    lines: Framer<piper::Reader>,
    out: Option<piper::Writer>,
}

impl Peer {
    async fn expect(&mut self, want: &str) {
        assert_eq!(self.lines.next().await.unwrap(), Frame::Line);
        assert_eq!(String::from_utf8_lossy(self.lines.line()), want);
    }
    async fn expect_eof(&mut self) {
        assert_eq!(self.lines.next().await.unwrap(), Frame::Eof);
    }
    async fn say(&mut self, bytes: &[u8]) {
        // Once the session has closed the connection, the rest is lost,
        // as it would be on a socket.
        let _ = self.out.as_mut().unwrap().write_all(bytes).await;
    }
    fn hang_up(&mut self) {
        self.out = None;
    }
}

/// Runs a session in `role` against a scripted peer.
fn chat<F, Fut>(
    role: Role,
    settings: Settings,
    keyboard: &mut Scripted,
    screen: &mut Recorder,
    script: F,
) -> Result<Ending, Failure>
where
    F: FnOnce(Peer) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (from_peer, peer_out) = piper::pipe(PIPE);
    let (peer_in, to_peer) = piper::pipe(PIPE);
    let peer = Peer { lines: Framer::new(peer_in, 100), out: Some(peer_out) };
    smol::block_on(async {
        let session = async {
            let mut peer_lines = Framer::new(boxed(from_peer), 20);
            let mut writer = to_peer;
            let ending = Session { peer: &mut peer_lines, to_peer: &mut writer, keyboard }
                .run(role, settings, screen)
                .await;
            // Closing the connection both ways, as the roles do.
            drop((writer, peer_lines));
            ending
        };
        let deadline = async {
            smol::Timer::after(Duration::from_secs(20)).await;
            panic!("the session never ended");
        };
        let (ending, ()) = future::zip(session, script(peer)).or(deadline).await;
        ending
    })
}

fn type_in(w: &mut piper::Writer, text: &str) {
    block_on(w.write_all(text.as_bytes())).unwrap();
}

fn messages(screen: &Recorder) -> Vec<&str> {
    screen.shown.iter().filter_map(|s| s.strip_prefix("msg ")).collect()
}

#[test]
fn client_speaks_first_then_waits_for_the_answer() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, "hello\n");
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.expect("hello").await;
            p.say(b"hi there\n").await;
            p.hang_up();
        });
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
    // The line typed ahead took the first turn, so no prompt was shown
    // for it; the next turn's prompt comes after the message.
    assert_eq!(screen.shown, ["msg hi there", "prompt"].map(String::from));
}

#[test]
fn server_waits_first_then_answers() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, "answer\r\n");
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Server, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.say(b"question\r\n").await;
            p.expect("answer").await;
            p.hang_up();
        });
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
    assert_eq!(messages(&screen), ["question"]);
}

#[test]
fn exact_exit_ends_without_sending() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, " EXIT\nEXIT \nexit\nEXIT\nnever\n");
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            for sent in [" EXIT", "EXIT ", "exit"] {
                p.expect(sent).await;
                p.say(b"ok\n").await;
            }
            p.expect_eof().await;
        });
    assert_eq!(ending.unwrap(), Ending::Exit);
    assert_eq!(messages(&screen), ["ok", "ok", "ok"]);
}

#[test]
fn exit_with_crlf_is_exit() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, "EXIT\r\n");
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.expect_eof().await;
        });
    assert_eq!(ending.unwrap(), Ending::Exit);
}

#[test]
fn an_empty_line_is_a_message() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, "\n");
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.expect("").await;
            p.say(b"\n").await;
            p.hang_up();
        });
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
    assert_eq!(messages(&screen), [""]);
}

#[test]
fn end_of_keyboard_input_ends_the_session() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, "one\n");
    drop(kb);
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.expect("one").await;
            p.say(b"two\n").await;
            p.expect_eof().await;
        });
    assert_eq!(ending.unwrap(), Ending::KeyboardClosed);
    assert_eq!(messages(&screen), ["two"]);
}

#[test]
fn a_last_keyboard_line_without_newline_is_sent() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, "bye");
    drop(kb);
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.expect("bye").await;
            p.say(b"ok\n").await;
            p.expect_eof().await;
        });
    assert_eq!(ending.unwrap(), Ending::KeyboardClosed);
}

#[test]
fn hang_up_is_noticed_while_the_keyboard_is_silent() {
    // The keyboard stays open and silent: only the hang-up can end the turn.
    let (mut keyboard, _kb) = script(20);
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Server, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.say(b"hello\n").await;
            p.hang_up();
        });
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
    assert_eq!(screen.shown, ["msg hello", "prompt"].map(String::from));
}

#[test]
fn lines_sent_out_of_turn_are_shown_in_order_on_the_peers_turn() {
    let (mut keyboard, mut kb) = script(20);
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            // Three lines before the client has said anything.
            p.say(b"a\nb\nc\n").await;
            type_in(&mut kb, "first\n");
            p.expect("first").await;
            type_in(&mut kb, "second\n");
            p.expect("second").await;
            type_in(&mut kb, "third\n");
            p.expect("third").await;
            p.hang_up();
        });
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
    assert_eq!(messages(&screen), ["a", "b", "c"]);
}

#[test]
fn lines_queued_before_a_hang_up_are_still_shown() {
    let (mut keyboard, _kb) = script(20);
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Server, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.say(b"one\ntwo\nthree").await;
            p.hang_up();
        });
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
    assert_eq!(messages(&screen), ["one", "two", "three"]);
}

#[test]
fn a_line_being_typed_when_the_peer_leaves_goes_to_the_next_session() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, "hel");
    let mut screen = Recorder::default();
    let first =
        chat(Role::Server, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.say(b"q1\n").await;
            p.hang_up();
        });
    assert_eq!(first.unwrap(), Ending::PeerLeft);
    type_in(&mut kb, "lo\n");
    let second =
        chat(Role::Server, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.say(b"q2\n").await;
            p.expect("hello").await;
            p.hang_up();
        });
    assert_eq!(second.unwrap(), Ending::PeerLeft);
    assert_eq!(messages(&screen), ["q1", "q2"]);
}

#[test]
fn typed_ahead_lines_wait_for_their_turns() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, "one\ntwo\n");
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.expect("one").await;
            // Nothing more may arrive before the answer: "two" is for the next turn.
            p.say(b"ans\n").await;
            p.expect("two").await;
            p.hang_up();
        });
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
}

#[test]
fn an_over_long_keyboard_line_is_refused_and_the_turn_goes_on() {
    let (mut keyboard, mut kb) = script(5);
    type_in(&mut kb, "much too long\nok\n");
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.expect("ok").await;
            p.hang_up();
        });
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
    // Both lines were typed ahead: no prompt until the keyboard is empty.
    assert_eq!(screen.shown, ["status line longer than 5 bytes, not sent"]);
}

#[test]
fn an_over_long_peer_line_is_a_protocol_error() {
    let (mut keyboard, _kb) = script(20);
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Server, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.say(&[b'x'; 64]).await;
        });
    let Err(Failure::Peer(e)) = ending else { panic!("{ending:?}") };
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert_eq!(e.to_string(), "the peer sent a line longer than 20 bytes");
}

#[test]
fn an_over_long_peer_line_out_of_turn_is_reported_on_hang_up() {
    let (mut keyboard, _kb) = script(20);
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.say(&[b'x'; 30]).await;
            p.say(b"\n").await;
            p.hang_up();
        });
    assert!(matches!(ending, Err(Failure::Peer(e)) if e.kind() == io::ErrorKind::InvalidData));
}

#[test]
fn a_silent_peer_is_dropped_after_the_idle_timeout() {
    let (mut keyboard, _kb) = script(20);
    let mut screen = Recorder::default();
    let settings = Settings { idle_timeout: Some(Duration::from_millis(50)) };
    // The peer never speaks, and never hangs up.
    let (_hold, ending) =
        {
            let (from_peer, peer_out) = piper::pipe(PIPE);
            let (_peer_in, mut to_peer) = piper::pipe(PIPE);
            let mut peer = Framer::new(boxed(from_peer), 20);
            let ending =
                smol::block_on(
                    Session { peer: &mut peer, to_peer: &mut to_peer, keyboard: &mut keyboard }
                        .run(Role::Server, settings, &mut screen),
                );
            (peer_out, ending)
        };
    let Err(Failure::Peer(e)) = ending else { panic!("{ending:?}") };
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert_eq!(e.to_string(), "no data for 0.05 s (idle timeout)");
}

#[test]
fn the_idle_timeout_counts_silence_not_message_time() {
    let (mut keyboard, _kb) = script(20);
    let mut screen = Recorder::default();
    let settings = Settings { idle_timeout: Some(Duration::from_millis(600)) };
    let ending = chat(Role::Server, settings, &mut keyboard, &mut screen, |mut p| async move {
        // Six bytes 150 ms apart: the line takes longer than the timeout,
        // yet the peer is never silent for as long as the timeout (with
        // 450 ms to spare on a busy machine).
        for byte in b"slow!\n" {
            p.say(&[*byte]).await;
            smol::Timer::after(Duration::from_millis(150)).await;
        }
        p.hang_up();
    });
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
    assert_eq!(messages(&screen), ["slow!"]);
}

#[test]
fn seconds_read_as_typed() {
    assert_eq!(seconds_text(Duration::from_secs(30)), "30");
    assert_eq!(seconds_text(Duration::from_millis(50)), "0.05");
    assert_eq!(seconds_text(Duration::from_millis(2500)), "2.5");
}

#[test]
fn a_closed_screen_ends_the_session() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, "x\n");
    let mut screen = Recorder { closed_after: Some(0), ..Recorder::default() };
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.expect("x").await;
            p.say(b"y\n").await;
            p.expect_eof().await;
        });
    assert_eq!(ending.unwrap(), Ending::ScreenClosed);
}

#[test]
fn peer_bytes_reach_the_screen_unchanged_for_escaping_there() {
    let (mut keyboard, _kb) = script(20);
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Server, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.say(b"\x1b[2J\xff\r\n").await;
            p.hang_up();
        });
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
    assert_eq!(messages(&screen), ["\x1b[2J\u{fffd}"]);
}

/// A peer stream whose FIN the test can make visible ahead of the bytes
/// still in the pipe, as `poll(2)` with `POLLRDHUP` shows a real socket's.
struct Watched {
    bytes: piper::Reader,
    fin: std::rc::Rc<std::cell::Cell<bool>>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.bytes).poll_read(cx, buf)
    }
}

impl HangUp for Watched {
    fn hung_up(&self) -> bool {
        self.fin.get()
    }
}

/// Runs a server session against a peer whose FIN is already visible when
/// the session starts, with `said` waiting in the pipe ahead of it.
fn server_after_fin(
    keyboard: &mut Scripted,
    screen: &mut Recorder,
    said: &'static [u8],
) -> (Result<Ending, Failure>, Vec<u8>) {
    let (from_peer, mut peer_out) = piper::pipe(PIPE);
    let (mut peer_in, mut to_peer) = piper::pipe(1024);
    let fin = std::rc::Rc::new(std::cell::Cell::new(true));
    let mut peer = Framer::new(boxed(Watched { bytes: from_peer, fin }), 20);
    smol::block_on(async {
        let session = async {
            let ending = Session { peer: &mut peer, to_peer: &mut to_peer, keyboard }
                .run(Role::Server, Settings::default(), screen)
                .await;
            drop(to_peer);
            ending
        };
        let script = async move {
            let _ = peer_out.write_all(said).await;
            drop(peer_out);
            let mut got = Vec::new();
            let _ = futures_lite::io::AsyncReadExt::read_to_end(&mut peer_in, &mut got).await;
            got
        };
        future::zip(session, script)
            .or(async {
                smol::Timer::after(Duration::from_secs(20)).await;
                panic!("the session never ended");
            })
            .await
    })
}

#[test]
fn a_fin_behind_unread_lines_keeps_the_typed_ahead_line_for_the_next_session() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, "kept\n");
    let mut screen = Recorder::default();
    let (ending, got) = server_after_fin(&mut keyboard, &mut screen, b"q\nmore\nlast\n");
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
    assert_eq!(String::from_utf8_lossy(&got), "", "a line went to a peer that had left");
    // Every line sent before the FIN is shown, in order.
    assert_eq!(messages(&screen), ["q", "more", "last"]);
    // The line waits for the next session.
    let mut screen = Recorder::default();
    let next =
        chat(Role::Server, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.say(b"hello\n").await;
            p.expect("kept").await;
            p.hang_up();
        });
    assert_eq!(next.unwrap(), Ending::PeerLeft);
}

#[test]
fn a_hang_up_behind_a_full_buffer_is_seen_while_the_keyboard_is_silent() {
    let (mut keyboard, _kb) = script(20);
    let mut screen = Recorder::default();
    // Far more than the 23 bytes the peer's framer holds, so that reading
    // ahead stops with the FIN still behind the lines.
    let said = b"q\nout of turn 01\nout of turn 02\nout of turn 03\nout of turn 04\n";
    let (ending, got) = server_after_fin(&mut keyboard, &mut screen, said);
    assert_eq!(ending.unwrap(), Ending::PeerLeft);
    assert_eq!(got, b"");
    assert_eq!(
        messages(&screen),
        ["q", "out of turn 01", "out of turn 02", "out of turn 03", "out of turn 04"]
    );
}

#[test]
fn a_send_that_makes_no_progress_times_out() {
    let (mut keyboard, mut kb) = script(20);
    type_in(&mut kb, "nobody reads it\n");
    let mut screen = Recorder::default();
    let settings = Settings { idle_timeout: Some(Duration::from_millis(50)) };
    // The peer speaks once and then neither reads nor hangs up.
    let (_hold, ending) = {
        let (from_peer, mut peer_out) = piper::pipe(PIPE);
        let (peer_in, mut to_peer) = piper::pipe(PIPE);
        block_on(peer_out.write_all(b"q\n")).unwrap();
        let mut peer = Framer::new(boxed(from_peer), 20);
        let mut session =
            Session { peer: &mut peer, to_peer: &mut to_peer, keyboard: &mut keyboard };
        let session = session.run(Role::Server, settings, &mut screen);
        let ending = smol::block_on(session.or(async {
            smol::Timer::after(Duration::from_secs(20)).await;
            panic!("the send was never given up");
        }));
        ((peer_out, peer_in), ending)
    };
    let Err(Failure::Peer(e)) = ending else { panic!("{ending:?}") };
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert_eq!(e.to_string(), "timed out, the peer read nothing for 0.05 s");
}

#[test]
fn sends_are_bounded_by_30_seconds_without_an_idle_timeout() {
    assert_eq!(Settings::default().send_timeout(), Duration::from_secs(30));
    let set = Settings { idle_timeout: Some(Duration::from_secs(3)) };
    assert_eq!(set.send_timeout(), Duration::from_secs(3));
}

/// A person leaves while the peer has the turn.
fn leave_during_the_peers_turn(leave: &'static [u8]) -> Ending {
    let (mut keyboard, mut kb) = person(20);
    type_in(&mut kb, "hello\n");
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.expect("hello").await;
            // The peer never answers.
            if leave.is_empty() {
                drop(kb);
            } else {
                kb.write_all(leave).await.unwrap();
            }
            p.expect_eof().await;
        });
    ending.unwrap()
}

#[test]
fn exit_during_the_peers_turn_ends_the_session_for_a_person() {
    assert_eq!(leave_during_the_peers_turn(b"EXIT\n"), Ending::Exit);
}

#[test]
fn the_end_of_input_during_the_peers_turn_ends_the_session_for_a_person() {
    assert_eq!(leave_during_the_peers_turn(b""), Ending::KeyboardClosed);
}

#[test]
fn a_line_entered_during_the_peers_turn_waits_for_the_next_turn() {
    let (mut keyboard, mut kb) = person(20);
    type_in(&mut kb, "q\n");
    let mut screen = Recorder::default();
    let ending =
        chat(Role::Client, Settings::default(), &mut keyboard, &mut screen, |mut p| async move {
            p.expect("q").await;
            kb.write_all(b"early\n").await.unwrap();
            p.say(b"a\n").await;
            p.expect("early").await;
            kb.write_all(b"EXIT\n").await.unwrap();
            p.expect_eof().await;
        });
    assert_eq!(ending.unwrap(), Ending::Exit);
    assert_eq!(messages(&screen), ["a"]);
    assert_eq!(keyboard.fates, [Fate::Sent, Fate::Sent]);
}

impl HangUp for TypedAhead {}

/// A client's session in a private chat whose peer answers the first line
/// and then reads nothing: the second line, sealed in a record, waits in
/// the writer for a flush that cannot end. `leave` is typed once the
/// answer is there. The ending, what was shown, and the bytes the peer
/// holds unread.
#[cfg(feature = "private")]
fn a_peer_that_stops_reading(
    settings: Settings,
    leave: &'static [u8],
) -> (Result<Ending, Failure>, Vec<String>, usize) {
    use crate::private::record::{RecordWriter, Sealer};
    let (mut keyboard, mut kb) = person(1000);
    type_in(&mut kb, &format!("hello\n{}\n", "x".repeat(900)));
    let (from_peer, mut peer_out) = piper::pipe(PIPE);
    let (mut peer_in, to_peer) = piper::pipe(64);
    let mut peer = Framer::new(boxed(TypedAhead(from_peer)), 20);
    let mut to_peer = RecordWriter::new(to_peer, Sealer::new(&[7; 32]));
    let mut screen = Recorder::default();
    let mut session = Session { peer: &mut peer, to_peer: &mut to_peer, keyboard: &mut keyboard };
    let session = session.run(Role::Client, settings, &mut screen);
    let script = async {
        // The first record, then the answer; nothing is read after it. The
        // session is polled first, so it takes the answer before the keyboard.
        let mut first = [0u8; 4 + 1 + 6 + 16];
        futures_lite::io::AsyncReadExt::read_exact(&mut peer_in, &mut first).await.unwrap();
        peer_out.write_all(b"a\n").await.unwrap();
        kb.write_all(leave).await.unwrap();
        future::pending().await
    };
    let ending = smol::block_on(session.or(script).or(async {
        smol::Timer::after(Duration::from_secs(20)).await;
        panic!("the session never ended");
    }));
    let unread = peer_in.len();
    (ending, messages(&screen).into_iter().map(String::from).collect(), unread)
}

#[test]
#[cfg(feature = "private")]
fn a_private_chat_whose_peer_stops_reading_ends_after_the_send_bound() {
    let settings = Settings { idle_timeout: Some(Duration::from_millis(100)) };
    let (ending, shown, unread) = a_peer_that_stops_reading(settings, b"");
    let Err(Failure::Peer(e)) = ending else { panic!("{ending:?}") };
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert_eq!(e.to_string(), "timed out, the peer read nothing for 0.1 s");
    assert_eq!((shown.as_slice(), unread), (&["a".to_string()][..], 64));
}

#[test]
#[cfg(feature = "private")]
fn exit_works_while_a_line_waits_for_a_peer_that_does_not_read() {
    // The send bound (30 s) is far off: only EXIT can end the session in time.
    let (ending, shown, unread) = a_peer_that_stops_reading(Settings::default(), b"EXIT\n");
    assert_eq!(ending.unwrap(), Ending::Exit);
    // The answer was shown and the next line had begun to go out.
    assert_eq!((shown.as_slice(), unread), (&["a".to_string()][..], 64));
}
