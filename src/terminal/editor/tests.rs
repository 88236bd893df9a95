//! The editor without a terminal: keys in, lines out, and what it draws
//! checked on an in-memory terminal emulator.

use super::*;

/// A terminal of `width` columns and 10 rows showing what the editor drew.
struct Screen {
    editor: Editor,
    term: vt100::Parser,
    events: Vec<Event>,
}

impl Screen {
    fn new(width: u16) -> Screen {
        Screen::with_max(width, 1000)
    }

    fn with_max(width: u16, max_line: usize) -> Screen {
        let editor = Editor::new(max_line, usize::from(width), SpecialChars::default());
        let mut screen =
            Screen { editor, term: vt100::Parser::new(10, width, 0), events: Vec::new() };
        // Lines typed from now on are for this session's peer, whose turn
        // it is: a line entered is sent at once.
        screen.editor.begin_session();
        assert_eq!(screen.editor.take_turn(), None);
        screen.draw(|e, out| e.render(out));
        screen
    }

    /// Runs `f` and shows what it drew, with the `\n` to `\r\n` of a terminal's output.
    fn draw(&mut self, f: impl FnOnce(&mut Editor, &mut Vec<u8>)) {
        let mut out = Vec::new();
        f(&mut self.editor, &mut out);
        let mut translated = Vec::new();
        for b in out {
            if b == b'\n' {
                translated.push(b'\r');
            }
            translated.push(b);
        }
        self.term.process(&translated);
    }

    /// Types `bytes` and draws.
    fn type_bytes(&mut self, bytes: &[u8]) {
        let mut events = Vec::new();
        self.editor.feed(bytes, &mut events);
        self.events.extend(events);
        self.draw(|e, out| e.render(out));
    }

    /// Prints a transcript line above the area, as the console does.
    fn above(&mut self, line: &str) {
        self.draw(|e, out| {
            e.clear(out);
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
            e.render(out);
        });
    }

    /// The screen's rows, trailing blanks trimmed, empty rows at the end dropped.
    fn rows(&self) -> Vec<String> {
        let mut rows: Vec<String> =
            self.term.screen().rows(0, self.term.screen().size().1).collect();
        while rows.last().is_some_and(|r| r.trim_end().is_empty()) {
            rows.pop();
        }
        rows.iter().map(|r| r.trim_end().to_owned()).collect()
    }

    fn cursor(&self) -> (u16, u16) {
        self.term.screen().cursor_position()
    }

    /// The lines entered and waiting for their turn, taken.
    fn lines(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.editor.take_turn()).collect()
    }
}

#[test]
fn typing_shows_the_prompt_and_text() {
    let mut s = Screen::new(40);
    assert_eq!(s.rows(), ["you>"]);
    s.type_bytes(b"hello");
    assert_eq!(s.rows(), ["you> hello"]);
    assert_eq!(s.cursor(), (0, 10));
    s.type_bytes(b"\r");
    // It is about to go, above the input line, where the next line waits;
    // sent, it leaves there.
    assert_eq!(s.rows(), ["you> hello", "wait>"]);
    assert_eq!(s.lines(), ["hello"]);
    s.draw(|e, out| e.render(out));
    assert_eq!(s.rows(), ["you>"]);
}

#[test]
fn editing_keys() {
    let mut s = Screen::new(40);
    // Left twice, insert, Home, insert, End, Backspace.
    s.type_bytes(b"helo\x1b[D\x1b[Dl\x01>\x05\x7f");
    assert_eq!(s.editor.text(), ">hell");
    assert_eq!(s.rows(), ["you> >hell"]);
    // Right past the end stays; Ctrl-B / Ctrl-F move too.
    s.type_bytes(b"\x1b[C\x02\x02\x06");
    assert_eq!(s.editor.cursor(), 4);
    assert_eq!(s.cursor(), (0, 9));
    // Home and End as escape sequences.
    s.type_bytes(b"\x1b[H");
    assert_eq!(s.editor.cursor(), 0);
    s.type_bytes(b"\x1b[F");
    assert_eq!(s.editor.cursor(), 5);
    // Delete under the cursor, and Ctrl-D inside a line is Delete too.
    s.type_bytes(b"\x01\x1b[3~\x04");
    assert_eq!(s.editor.text(), "ell");
    assert!(s.events.is_empty());
}

#[test]
fn word_and_line_erase() {
    let mut s = Screen::new(40);
    s.type_bytes(b"one two  three  \x17");
    assert_eq!(s.editor.text(), "one two  ");
    s.type_bytes(b"\x17");
    assert_eq!(s.editor.text(), "one ");
    s.type_bytes(b"x\x1b[D\x15");
    assert_eq!((s.editor.text(), s.editor.cursor()), ("x", 0));
    assert_eq!(s.rows(), ["you> x"]);
    s.type_bytes(b"\x1b[F\x15");
    assert_eq!(s.editor.text(), "");
}

#[test]
fn ctrl_d_on_an_empty_line_is_the_end() {
    let mut s = Screen::new(40);
    s.type_bytes(b"\x04");
    assert_eq!(s.events, [Event::Eof]);
    let mut s = Screen::new(40);
    s.type_bytes(b"\x03\x1a");
    assert_eq!(s.events, [Event::Interrupt, Event::Suspend]);
}

#[test]
fn utf8_split_across_reads() {
    let mut s = Screen::new(40);
    for b in "héllo 日本".as_bytes() {
        s.type_bytes(&[*b]);
    }
    s.type_bytes(b"\r");
    assert_eq!(s.lines(), ["héllo 日本"]);
}

#[test]
fn wide_characters_take_two_columns() {
    let mut s = Screen::new(40);
    s.type_bytes("日本語😀".as_bytes());
    assert_eq!(s.rows(), ["you> 日本語😀"]);
    assert_eq!(s.cursor(), (0, 13));
    s.type_bytes(b"\x1b[D\x1b[D");
    assert_eq!(s.cursor(), (0, 9));
    s.type_bytes(b"\x7f");
    assert_eq!(s.rows(), ["you> 日語😀"]);
    assert_eq!(s.cursor(), (0, 7));
}

#[test]
fn a_wide_character_at_the_edge_goes_to_the_next_row() {
    // `you> ` is 5 columns; 2 more leave one column, too narrow for 日.
    let mut s = Screen::new(8);
    s.type_bytes("ab日x".as_bytes());
    assert_eq!(s.rows(), ["you> ab", "日x"]);
    assert_eq!(s.cursor(), (1, 3));
    // Drawn again from the start (an edit in the middle), the same.
    s.type_bytes(b"\x01\x05");
    s.type_bytes(b"\x1b[D\x1b[C");
    s.above("peer> hi");
    assert_eq!(s.rows(), ["peer> hi", "you> ab", "日x"]);
    assert_eq!(s.cursor(), (2, 3));
}

#[test]
fn lines_longer_than_the_terminal() {
    let mut s = Screen::new(10);
    s.type_bytes(b"abcdefghijklmnopqrstu");
    assert_eq!(s.rows(), ["you> abcde", "fghijklmno", "pqrstu"]);
    assert_eq!(s.cursor(), (2, 6));
    // Exactly full: the cursor goes to the next row.
    s.type_bytes(b"vwxy");
    assert_eq!(s.cursor(), (3, 0));
    // Home goes back up; a message above keeps the whole line intact.
    s.type_bytes(b"\x01");
    assert_eq!(s.cursor(), (0, 5));
    s.above("peer> hi");
    assert_eq!(s.rows(), ["peer> hi", "you> abcde", "fghijklmno", "pqrstuvwxy"]);
    assert_eq!(s.cursor(), (1, 5));
    s.type_bytes(b"\x05\x7f\x7f\x7f\x7f\x7f");
    assert_eq!(s.rows(), ["peer> hi", "you> abcde", "fghijklmno", "pqrst"]);
}

#[test]
fn a_message_above_leaves_the_partial_line_intact() {
    let mut s = Screen::new(40);
    s.type_bytes(b"I was going to say");
    s.above("peer> hello there");
    assert_eq!(s.rows(), ["peer> hello there", "you> I was going to say"]);
    s.type_bytes(b" more\r");
    assert_eq!(s.lines(), ["I was going to say more"]);
}

#[test]
fn waiting_lines_show_above_the_input_line() {
    let mut s = Screen::new(40);
    // The peer's turn.
    s.editor.begin_session();
    s.type_bytes(b"first\rsec");
    s.draw(|e, out| e.render(out));
    assert_eq!(s.rows(), ["wait> first", "wait> sec"]);
    s.above("peer> answer");
    assert_eq!(s.rows(), ["peer> answer", "wait> first", "wait> sec"]);
    // Sent: it leaves the waiting lines for the transcript.
    let line = s.editor.take_turn().unwrap();
    s.above(&format!("you> {line}"));
    assert_eq!(s.rows(), ["peer> answer", "you> first", "wait> sec"]);
    s.above("peer> next");
    assert_eq!(s.rows(), ["peer> answer", "you> first", "peer> next", "wait> sec"]);
}

#[test]
fn a_paste_of_several_lines_is_several_lines() {
    let mut s = Screen::new(40);
    s.type_bytes(b"\x1b[200~one\r\ntwo\x03\rthree\x1b[201~");
    assert_eq!(s.lines(), ["one", "two"]);
    assert_eq!(s.editor.text(), "three");
    assert!(!s.events.contains(&Event::Interrupt));
}

#[test]
fn a_long_paste_is_drawn_once() {
    let mut editor = Editor::new(10_000, 80, SpecialChars::default());
    editor.begin_session();
    let mut out = Vec::new();
    editor.render(&mut out);
    let mut events = Vec::new();
    editor.feed(&[b'x'; 5000], &mut events);
    out.clear();
    editor.render(&mut out);
    // The text and a newline per full row, nothing drawn twice.
    assert!(out.len() < 5100, "{} bytes drawn", out.len());
    editor.feed(b"\r", &mut events);
    assert!(events.is_empty());
    assert_eq!(editor.take_turn().map(|line| line.len()), Some(5000));
}

#[test]
fn lines_over_max_line_are_marked() {
    let mut s = Screen::with_max(40, 4);
    s.type_bytes(b"abcdef\r");
    assert_eq!(s.events, [Event::Say("line longer than 4 bytes, not sent".into())]);
    s.type_bytes(b"abcd\r");
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.lines(), ["abcd"]);
}

#[test]
fn a_line_belongs_to_the_session_of_its_first_character() {
    let mut s = Screen::new(40);
    let unsent = |s: &Screen| -> Vec<String> {
        s.events
            .iter()
            .filter_map(|e| if let Event::Say(t) = e { Some(t.clone()) } else { None })
            .collect()
    };
    // Begun for a peer who left: not for the next one.
    s.type_bytes(b"my PIN");
    assert!(s.editor.end_session().is_empty());
    s.editor.begin_session();
    s.type_bytes(b" is 4321\rhi\r");
    assert_eq!(unsent(&s), ["not sent (the peer it was typed for left): my PIN is 4321"]);
    assert_eq!(s.lines(), ["hi"]);
    // Erased to nothing and typed again: a new line.
    s.type_bytes(b"x");
    s.editor.end_session();
    s.editor.begin_session();
    s.type_bytes(b"\x7fy\r");
    assert_eq!(s.lines(), ["y"]);
    // Nobody connected; begun before the peer connected; an empty Enter.
    s.editor.end_session();
    s.type_bytes(b"anyone?\r\rfor you");
    s.editor.begin_session();
    s.type_bytes(b"\r");
    assert_eq!(
        unsent(&s)[1..],
        [
            "not sent (nobody is connected): anyone?",
            "not sent (begun before the peer connected): for you"
        ]
    );
    // Waiting when the session ends: handed back, to be said not sent.
    s.type_bytes(b"late\r");
    assert_eq!(s.editor.end_session(), ["late"]);
    assert_eq!(s.lines(), Vec::<String>::new());
}

#[test]
fn exit_is_leaving_and_the_signal_keys_are_events() {
    let mut s = Screen::new(40);
    s.type_bytes(b"EXIT\r\x03\x1a");
    assert_eq!(s.events, [Event::Exit, Event::Interrupt, Event::Suspend]);
    assert_eq!(s.lines(), Vec::<String>::new());
}

/// A completer as the code prompt's: the last word completed from a list.
fn complete(typed: &str) -> Result<String, String> {
    let word = typed.rsplit('-').next().unwrap_or_default();
    let fits: Vec<&str> =
        ["brave", "brief", "quiet"].into_iter().filter(|w| w.starts_with(word)).collect();
    match fits[..] {
        [one] if one != word => Ok(format!("{typed}{}-", &one[word.len()..])),
        [_, _, ..] => Err(fits.join(" ")),
        _ => Err(String::new()),
    }
}

#[test]
fn an_asked_line_is_shown_as_typed_and_tab_completes_it() {
    let mut s = Screen::new(40);
    s.type_bytes(b"half a line");
    s.editor.ask(Some(("code: ", complete)));
    s.draw(|e, out| e.render(out));
    assert_eq!(s.rows(), ["code:"]);
    // Tab completes a word that fits alone, says the ones that fit, and
    // does nothing when none does; the editing keys work.
    s.type_bytes(b"7-qu\tbr\t");
    assert_eq!(s.rows(), ["code: 7-quiet-br"]);
    assert_eq!(s.events, [Event::Say("brave brief".into())]);
    s.type_bytes(b"a\tx\t\x7f\x7f");
    assert_eq!(s.rows(), ["code: 7-quiet-brave"]);
    assert_eq!(s.events.len(), 1);
    // Entered, it goes to whoever asked, not to the peer, and the line put
    // aside comes back.
    s.type_bytes(b"\r");
    assert_eq!(s.events[1..], [Event::Asked("7-quiet-brave".into())]);
    assert_eq!(s.rows(), ["you> half a line"]);
    assert_eq!(s.lines(), Vec::<String>::new());
    // Tab on a normal line is a space.
    s.type_bytes(b"\tx\r");
    assert_eq!(s.lines(), ["half a line x"]);
}

#[test]
fn the_prompt_says_what_enter_does() {
    let mut s = Screen::new(40);
    s.editor.end_session();
    // Nobody connected: no prompt, and a line entered goes to no one.
    s.type_bytes(b"anyone?");
    assert_eq!(s.rows(), ["anyone?"]);
    s.type_bytes(b"\r");
    // A peer's turn: a line waits for the person's, and says so.
    s.editor.begin_session();
    s.type_bytes(b"first\rsec");
    assert_eq!(s.rows(), ["wait> first", "wait> sec"]);
    // The person's turn: the first waiting line goes; then none waits.
    assert_eq!(s.editor.take_turn().as_deref(), Some("first"));
    s.above("you> first");
    assert_eq!(s.rows(), ["you> first", "wait> sec"]);
    assert_eq!(s.editor.take_turn(), None);
    s.draw(|e, out| e.render(out));
    assert_eq!(s.rows(), ["you> first", "you> sec"]);
    s.editor.end_session();
    s.draw(|e, out| e.render(out));
    assert_eq!(s.rows(), ["you> first", "sec"]);
}

#[test]
fn up_and_down_recall_the_lines_entered() {
    let mut s = Screen::new(40);
    // Up with no history does nothing.
    s.type_bytes(b"\x1b[A");
    assert_eq!(s.editor.text(), "");
    s.type_bytes(b"one\rtwo\rtwo\rdraft");
    assert_eq!(s.lines(), ["one", "two", "two"]);
    // Up goes back, a repeat once, and stops at the oldest.
    s.type_bytes(b"\x1b[A");
    assert_eq!(s.rows(), ["you> two"]);
    s.type_bytes(b"\x1b[A\x1b[A");
    assert_eq!((s.editor.text(), s.editor.cursor()), ("one", 3));
    // Down comes forward, and past the newest gives back the draft.
    s.type_bytes(b"\x1b[B");
    assert_eq!(s.editor.text(), "two");
    s.type_bytes(b"\x1b[B");
    assert_eq!(s.rows(), ["you> draft"]);
    s.type_bytes(b"\x1b[B");
    assert_eq!(s.editor.text(), "draft");
    // A line recalled is edited and entered as any other.
    s.type_bytes(b"\x15\x1bOA!\r");
    assert_eq!(s.lines(), ["two!"]);
    s.type_bytes(b"\x10");
    assert_eq!(s.editor.text(), "two!");
    s.type_bytes(b"\x0e");
    assert_eq!(s.editor.text(), "");
    // A line asked for is never kept, and Up does nothing while asked.
    s.editor.ask(Some(("code: ", complete)));
    s.type_bytes(b"\x1b[A7-secret\r");
    assert_eq!(s.events, [Event::Asked("7-secret".into())]);
    s.type_bytes(b"\x1b[A");
    assert_eq!(s.editor.text(), "two!");
    // Only the last lines are kept.
    for i in 0..=HISTORY {
        s.type_bytes(format!("{i}\r").as_bytes());
    }
    s.lines();
    s.type_bytes(&b"\x1b[A".repeat(HISTORY + 1));
    assert_eq!(s.editor.text(), "1");
}

#[test]
fn a_resize_draws_again() {
    let mut s = Screen::new(20);
    s.type_bytes(b"0123456789abcdef");
    s.term.screen_mut().set_size(10, 10);
    s.editor.resize(10);
    s.draw(|e, out| {
        e.clear(out);
        e.render(out)
    });
    assert!(s.rows().ends_with(&["you> 01234".to_string(), "56789abcde".into(), "f".into()]));
}
