//! The line editor: a pure state machine. Bytes from the keyboard go in,
//! the bytes that draw the input line come out, and entered lines go where
//! they belong: waiting for their turn in the session they were typed for,
//! or to no one; no terminal is touched here, so every key is tested in
//! memory.
//!
//! The screen is a transcript that only grows, and below it an *area* that
//! smolchat owns: the lines entered but waiting for their turn, then the
//! prompt and the line being typed. Anything printed into the transcript
//! clears the area first and draws it again after, so an arriving message
//! never splits what is being typed. The prompt says what Enter does: `you> `
//! sends the line, `wait> ` keeps it for the next turn, and no prompt at
//! all while nobody is connected (the server says it waits).

use std::collections::VecDeque;
use std::io::Write;

use unicode_width::UnicodeWidthChar;

use crate::terminal::keys::{Decoder, Key, SpecialChars};
use crate::turn::EXIT;

/// The prompt when a line entered is sent at once, and before lines sent.
pub const PROMPT: &str = "you> ";

/// The prompt when a line entered waits for its turn (the peer's turn, or
/// a connection still being made), and before lines waiting.
pub const WAIT: &str = "wait> ";

/// Lines and bytes the history keeps at most: the oldest go first.
const HISTORY: usize = 100;
const HISTORY_BYTES: usize = 1 << 20;

/// Completes the line asked for at Tab: given the text before the cursor,
/// that text completed, or else a status line to show (none when empty).
pub type Complete = fn(&str) -> Result<String, String>;

/// What the editor hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A status line to show: a line that goes to no one, or what Tab found.
    Say(String),
    /// `EXIT` was entered: the user leaves, whoever's turn it is.
    Exit,
    /// The line asked for (see [`Editor::ask`]) was entered.
    Asked(String),
    /// The end-of-input key on an empty line.
    Eof,
    /// The interrupt key (Ctrl-C).
    Interrupt,
    /// The suspend key (Ctrl-Z).
    Suspend,
}

/// How much of the area must be drawn again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Dirty {
    /// The screen shows the state.
    Clean,
    /// Only text was added at the end, with the cursor there: write it.
    Append,
    /// The input line changed otherwise: draw it again.
    Input,
    /// The waiting lines changed, or nothing is drawn: draw everything.
    #[default]
    All,
}

/// The line editor's state and what it has drawn.
#[derive(Debug, Default)]
pub struct Editor {
    decoder: Decoder,
    text: String,
    /// Byte offset of the cursor in `text`.
    cursor: usize,
    max_line: usize,
    /// Characters were dropped because the line was over `max_line`.
    overflow: bool,
    /// The session in force now (`None`: nobody is connected), how many
    /// there were, and the one `text` was begun in.
    session: Option<u64>,
    sessions: u64,
    owner: Option<u64>,
    /// The prompt and Tab of a line asked for (a private chat's code).
    asked: Option<(&'static str, Complete)>,
    /// The person's turn has come: a line entered is sent at once.
    turn: bool,
    /// Lines entered and waiting for their turn, shown above the input line.
    queue: VecDeque<String>,
    /// Lines entered, for Up and Down (in memory only), their bytes, and
    /// the one shown now.
    history: VecDeque<String>,
    history_bytes: usize,
    recalled: Option<usize>,
    /// The line being typed when a line was asked for, or one recalled.
    aside: String,
    /// Columns of the terminal.
    width: usize,
    dirty: Dirty,
    /// The area is on the screen.
    shown: bool,
    /// Rows from the top of the area to the cursor.
    cursor_row: usize,
    /// Rows of the waiting lines.
    queue_rows: usize,
    /// Bytes of `text` drawn, and where the drawn text ends in the input line.
    drawn_len: usize,
    end: (usize, usize),
}

impl Editor {
    /// An editor for lines of up to `max_line` bytes on a terminal
    /// `width` columns wide, with the terminal's special characters.
    pub fn new(max_line: usize, width: usize, special: SpecialChars) -> Editor {
        let decoder = Decoder::new(special);
        Editor { decoder, max_line, width: width.max(1), ..Editor::default() }
    }

    /// The line being typed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor, as a byte offset into [`Editor::text`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// A session began: lines begun from now on are for its peer.
    pub fn begin_session(&mut self) {
        self.sessions += 1;
        self.session = Some(self.sessions);
        self.turn = false;
        self.dirty = Dirty::All;
    }

    /// The session ended: nobody is connected, and the lines that were
    /// waiting for their turn are handed back, to be said not sent.
    pub fn end_session(&mut self) -> VecDeque<String> {
        self.session = None;
        self.turn = false;
        self.dirty = Dirty::All;
        std::mem::take(&mut self.queue)
    }

    /// The person's turn: takes the oldest line waiting for it, to be sent,
    /// and the turn is the peer's again; with none, the person has the turn
    /// and the prompt says that a line entered now is sent.
    pub fn take_turn(&mut self) -> Option<String> {
        let line = self.queue.pop_front();
        if line.is_some() || !self.turn {
            self.dirty = Dirty::All;
        }
        self.turn = line.is_none();
        line
    }

    /// What shows before the line being typed: see [`PROMPT`] and [`WAIT`];
    /// none while nobody is connected.
    fn prompt(&self) -> &'static str {
        match (self.asked, self.session) {
            (Some((prompt, _)), _) => prompt,
            (None, None) => "",
            _ if self.turn && self.queue.is_empty() => PROMPT,
            _ => WAIT,
        }
    }

    /// The terminal is now `width` columns wide. Some terminals rewrap the
    /// rows already drawn (tmux, VTE, kitty), others keep them (xterm), so
    /// where the area's top is now is not known: the next clear starts at
    /// the lower of the two guesses, which may leave a stale copy of the
    /// input line but never erases a line of the conversation above it.
    pub fn resize(&mut self, width: usize) {
        let width = width.max(1);
        if self.shown && width != self.width {
            let mut scratch = Vec::new();
            let rows = self.draw_queue(&mut scratch, width);
            let mut pos = (0, 0);
            put(&mut scratch, self.prompt(), &mut pos, width);
            put(&mut scratch, &self.text[..self.cursor], &mut pos, width);
            self.cursor_row = self.cursor_row.min(rows + pos.0);
        }
        self.width = width;
        self.dirty = Dirty::All;
    }

    /// The terminal's special characters changed (`stty` while suspended).
    pub fn set_special_chars(&mut self, special: SpecialChars) {
        self.decoder.set_special(special);
    }

    /// Asks for one line after a prompt of its own, Tab completing it
    /// (`Some`), or goes back to normal lines (`None`, as after that line).
    /// The line being typed is put aside meanwhile, and the line asked for
    /// is never sent, nor kept for Up and Down.
    pub fn ask(&mut self, asked: Option<(&'static str, Complete)>) {
        if asked.is_some() != self.asked.is_some() {
            self.recalled = None;
            std::mem::swap(&mut self.text, &mut self.aside);
            match asked {
                Some(_) => self.text.clear(),
                None => self.aside.clear(),
            }
            self.cursor = self.text.len();
            self.dirty = Dirty::All;
        }
        self.asked = asked;
    }

    /// Decodes `bytes` and applies the keys; what they produced is pushed on `events`.
    pub fn feed(&mut self, bytes: &[u8], events: &mut Vec<Event>) {
        let mut keys = Vec::new();
        self.decoder.feed(bytes, |k| keys.push(k));
        for key in keys {
            if let Some(event) = self.key(key) {
                events.push(event);
            }
        }
    }

    /// Applies one key.
    pub fn key(&mut self, key: Key) -> Option<Event> {
        match key {
            Key::Char(c) => self.insert(c),
            Key::Enter => {
                let text = std::mem::take(&mut self.text);
                let too_long = std::mem::take(&mut self.overflow);
                // An empty line is begun when it is entered.
                let owner = if text.is_empty() { self.session } else { self.owner };
                self.cursor = 0;
                self.recalled = None;
                self.touch(Dirty::Input);
                if self.asked.is_some() {
                    self.ask(None);
                    return Some(Event::Asked(text));
                }
                if !text.is_empty() && !too_long {
                    self.remember(&text);
                }
                return self.entered(text, owner, too_long);
            }
            Key::Tab => match self.asked {
                Some((_, complete)) => match complete(&self.text[..self.cursor]) {
                    Ok(done) if done.len() + self.text.len() - self.cursor <= self.max_line => {
                        self.text.replace_range(..self.cursor, &done);
                        self.cursor = done.len();
                        self.touch(Dirty::Input);
                    }
                    Err(say) if !say.is_empty() => return Some(Event::Say(say)),
                    _ => {}
                },
                None => self.insert(' '),
            },
            Key::Up => self.recall(true),
            Key::Down => self.recall(false),
            Key::Eof if self.text.is_empty() => return Some(Event::Eof),
            Key::Eof | Key::Delete => match self.next_char() {
                0 => {}
                next => {
                    self.text.replace_range(self.cursor..self.cursor + next, "");
                    self.touch(Dirty::Input);
                }
            },
            Key::Backspace => match self.back_char() {
                0 => {}
                back => {
                    self.cursor -= back;
                    self.text.replace_range(self.cursor..self.cursor + back, "");
                    self.touch(Dirty::Input);
                }
            },
            Key::KillLine => {
                self.text.replace_range(..self.cursor, "");
                self.cursor = 0;
                self.touch(Dirty::Input);
            }
            Key::EraseWord => {
                let before = &self.text[..self.cursor];
                let word_end = before.trim_end_matches(' ').len();
                let start = before[..word_end].rfind(' ').map_or(0, |i| i + 1);
                self.text.replace_range(start..self.cursor, "");
                self.cursor = start;
                self.touch(Dirty::Input);
            }
            Key::Left => self.step(false),
            Key::Right => self.step(true),
            Key::Home => {
                self.cursor = 0;
                self.touch(Dirty::Input);
            }
            Key::End => {
                self.cursor = self.text.len();
                self.touch(Dirty::Input);
            }
            Key::Interrupt => return Some(Event::Interrupt),
            Key::Suspend => return Some(Event::Suspend),
        }
        None
    }

    /// Where an entered line goes: `EXIT` to leaving, a line for the
    /// session in force to the lines waiting for their turn; any other goes
    /// to no one.
    fn entered(&mut self, text: String, owner: Option<u64>, too_long: bool) -> Option<Event> {
        let why = if too_long {
            return Some(Event::Say(format!("line longer than {} bytes, not sent", self.max_line)));
        } else if text.as_bytes() == EXIT {
            return Some(Event::Exit);
        } else if owner.is_some() && owner == self.session {
            self.queue.push_back(text);
            self.dirty = Dirty::All;
            return None;
        } else if owner.is_some() {
            "the peer it was typed for left"
        } else if self.session.is_none() && text.is_empty() {
            // An Enter with nobody to send to: nothing to say.
            return None;
        } else if self.session.is_none() {
            "nobody is connected"
        } else {
            "begun before the peer connected"
        };
        Some(Event::Say(format!("not sent ({why}): {text}")))
    }

    /// Keeps an entered line for Up and Down, unless it repeats the last
    /// one, within the history's bounds.
    fn remember(&mut self, text: &str) {
        if self.history.back().is_some_and(|last| last == text) {
            return;
        }
        self.history_bytes += text.len();
        self.history.push_back(text.to_owned());
        // The newest stays, however long.
        while self.history.len() > 1
            && (self.history.len() > HISTORY || self.history_bytes > HISTORY_BYTES)
        {
            if let Some(old) = self.history.pop_front() {
                self.history_bytes -= old.len();
            }
        }
    }

    /// Up (`older`) or Down: the line entered before or after the one
    /// shown, as in a shell; Down past the newest gives back the line that
    /// was being typed. Not while a line is asked for.
    fn recall(&mut self, older: bool) {
        let last = self.history.len().checked_sub(1);
        let to = match (older, self.recalled) {
            _ if self.asked.is_some() => return,
            (true, None) => last,
            (true, Some(i)) => Some(i.saturating_sub(1)),
            (false, Some(i)) if Some(i) != last => Some(i + 1),
            (false, Some(_)) => None,
            (false, None) => return,
        };
        let text = match to {
            Some(i) => self.history[i].clone(),
            None if older => return,
            None => std::mem::take(&mut self.aside),
        };
        let shown = std::mem::replace(&mut self.text, text);
        if self.recalled.is_none() {
            self.aside = shown;
        }
        if self.aside.is_empty() && to.is_some() {
            // A line recalled on an empty line is begun now, as if typed.
            self.owner = self.session;
        }
        self.recalled = to;
        self.cursor = self.text.len();
        self.touch(Dirty::Input);
    }

    /// Moves the cursor a character forward or back, where there is one.
    fn step(&mut self, forward: bool) {
        let by = if forward { self.next_char() } else { self.back_char() };
        if by > 0 {
            self.cursor = if forward { self.cursor + by } else { self.cursor - by };
            self.touch(Dirty::Input);
        }
    }

    /// The bytes of the character before the cursor (0 at the start).
    fn back_char(&self) -> usize {
        self.text[..self.cursor].chars().next_back().map_or(0, char::len_utf8)
    }

    /// The bytes of the character under the cursor (0 at the end).
    fn next_char(&self) -> usize {
        self.text[self.cursor..].chars().next().map_or(0, char::len_utf8)
    }

    fn insert(&mut self, c: char) {
        if self.text.len() + c.len_utf8() > self.max_line {
            self.overflow = true;
            return;
        }
        if self.text.is_empty() {
            // A line belongs to the session its first character was typed in.
            self.owner = self.session;
        }
        let at_end = self.cursor == self.text.len();
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
        self.touch(if at_end { Dirty::Append } else { Dirty::Input });
    }

    fn touch(&mut self, dirty: Dirty) {
        self.dirty = self.dirty.max(dirty);
    }

    /// Erases the area, leaving the cursor where its first row was.
    pub fn clear(&mut self, out: &mut Vec<u8>) {
        if self.shown {
            out.push(b'\r');
            if self.cursor_row > 0 {
                let _ = write!(out, "\x1b[{}A", self.cursor_row);
            }
            out.extend_from_slice(b"\x1b[J");
            self.shown = false;
        }
        self.dirty = Dirty::All;
    }

    /// Draws what changed since the last call.
    pub fn render(&mut self, out: &mut Vec<u8>) {
        match self.dirty {
            Dirty::Clean => return,
            Dirty::Append if self.shown && self.cursor == self.text.len() => {
                let mut pos = self.end;
                put(out, &self.text[self.drawn_len..], &mut pos, self.width);
                self.end = wrap_pending(out, pos, self.width);
                self.drawn_len = self.text.len();
                self.cursor_row = self.queue_rows + self.end.0;
            }
            Dirty::Append | Dirty::Input if self.shown => {
                // Back to the input line's first row, and draw it again.
                out.push(b'\r');
                let up = self.cursor_row - self.queue_rows;
                if up > 0 {
                    let _ = write!(out, "\x1b[{up}A");
                }
                out.extend_from_slice(b"\x1b[J");
                self.draw_input(out);
            }
            _ => {
                self.clear(out);
                self.queue_rows = self.draw_queue(out, self.width);
                self.draw_input(out);
            }
        }
        self.shown = true;
        self.dirty = Dirty::Clean;
    }

    /// Draws the lines waiting for their turn, each after its prompt, on a
    /// terminal `width` columns wide: the rows they take.
    fn draw_queue(&self, out: &mut Vec<u8>, width: usize) -> usize {
        let mut rows = 0;
        for (i, line) in self.queue.iter().enumerate() {
            // The first is sent at once on the person's turn.
            let prompt = if self.turn && i == 0 { PROMPT } else { WAIT };
            let mut pos = (0, 0);
            put(out, prompt, &mut pos, width);
            put(out, line, &mut pos, width);
            out.push(b'\n');
            rows += pos.0 + 1;
        }
        rows
    }

    /// Draws the prompt and the input line from the start of its first row.
    fn draw_input(&mut self, out: &mut Vec<u8>) {
        let mut pos = (0, 0);
        put(out, self.prompt(), &mut pos, self.width);
        put(out, &self.text[..self.cursor], &mut pos, self.width);
        let mut cursor = pos;
        put(out, &self.text[self.cursor..], &mut pos, self.width);
        self.end = wrap_pending(out, pos, self.width);
        if cursor.1 >= self.width {
            cursor = (cursor.0 + 1, 0);
        }
        if cursor != self.end {
            let up = self.end.0 - cursor.0;
            if up > 0 {
                let _ = write!(out, "\x1b[{up}A");
            }
            out.push(b'\r');
            if cursor.1 > 0 {
                let _ = write!(out, "\x1b[{}C", cursor.1);
            }
        }
        self.drawn_len = self.text.len();
        self.cursor_row = self.queue_rows + cursor.0;
    }
}

/// Writes `text` from `pos` (row, column), tracking where it ends the way a
/// terminal does: a wide character that does not fit in the row goes to the
/// next one, after spaces that fill the row (so every terminal agrees). A
/// column equal to the width is the "pending wrap" at the end of a full row.
fn put(out: &mut Vec<u8>, text: &str, pos: &mut (usize, usize), width: usize) {
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if w > 0 && pos.1 + w > width {
            if pos.1 < width {
                out.extend(std::iter::repeat_n(b' ', width - pos.1));
            }
            *pos = (pos.0 + 1, 0);
        }
        let mut utf8 = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        pos.1 += w;
    }
}

/// After a full row the cursor waits on its last column; a newline moves it
/// to the next row for good, so its position is known.
fn wrap_pending(out: &mut Vec<u8>, pos: (usize, usize), width: usize) -> (usize, usize) {
    if pos.1 >= width {
        out.push(b'\n');
        (pos.0 + 1, 0)
    } else {
        pos
    }
}

#[cfg(test)]
mod tests;
