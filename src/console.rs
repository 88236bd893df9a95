//! The screen and the keyboard's looks: terminal detection, the prompt, the
//! peer label, and the escaping that keeps a peer from driving the terminal.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use blocking::Unblock;
use futures_lite::io::{AssertAsync, AsyncRead};

use crate::turn::Screen;

/// Shown on stderr when it is the local user's turn and stdin is a terminal.
pub const PROMPT: &str = "you> ";

/// Put before each peer message when stdout is a terminal.
const LABEL: &str = "peer> ";

/// The label in bold cyan, for a terminal that takes colour.
const LABEL_COLOURED: &str = "\x1b[1;36mpeer>\x1b[0m ";

/// Every status line and diagnostic starts with this.
pub const PREFIX: &str = "smolchat: ";

/// How the console shows things, decided once from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Looks {
    /// Show the prompt (stdin is a terminal).
    pub prompt: bool,
    /// Put a label before peer messages (stdout is a terminal).
    pub label: bool,
    /// Colour the label.
    pub colour: bool,
}

impl Looks {
    /// Reads the terminals and `NO_COLOR`/`TERM` of this process.
    pub fn detect() -> Looks {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|v| v == "dumb");
        Looks::from_facts(io::stdin().is_terminal(), io::stdout().is_terminal(), no_color, dumb)
    }

    /// Decides the looks from the facts, so the rules are testable.
    pub fn from_facts(stdin_tty: bool, stdout_tty: bool, no_color: bool, dumb: bool) -> Looks {
        Looks { prompt: stdin_tty, label: stdout_tty, colour: stdout_tty && !no_color && !dumb }
    }
}

/// The keyboard: stdin as an async stream, opened once for the whole program.
///
/// A terminal or a pipe is read on a thread of its own (`blocking::Unblock`),
/// so that waiting for a line never stops the connection from being watched.
/// A regular file (`smolchat client h 2000 <questions.txt`) is read in place:
/// a read from it never blocks, and the hand-off to a thread and back would
/// cost about seven context switches per 64 KiB message.
#[derive(Debug)]
pub enum Keyboard {
    /// Stdin is a regular file.
    File(AssertAsync<File>),
    /// Stdin is a terminal, a pipe or a socket.
    Live(Unblock<StickyStdin>),
}

impl Keyboard {
    /// Opens stdin, reading up to `read_ahead` bytes ahead when it is live.
    pub fn open(read_ahead: usize) -> Keyboard {
        let file = io::stdin().as_fd().try_clone_to_owned().map(File::from);
        match file {
            Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => {
                Keyboard::File(AssertAsync::new(file))
            }
            _ => Keyboard::Live(Unblock::with_capacity(read_ahead, StickyStdin::default())),
        }
    }
}

impl AsyncRead for Keyboard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Keyboard::File(file) => Pin::new(file).poll_read(cx, buf),
            Keyboard::Live(live) => Pin::new(live).poll_read(cx, buf),
        }
    }
}

/// Stdin whose end, once read, stays the end. At a terminal Ctrl-D is one
/// read of zero bytes, and `blocking::Unblock` reports an end only when the
/// first read of a fill returns zero: a Ctrl-D that follows a line within the
/// same fill would otherwise be lost.
#[derive(Debug, Default)]
pub struct StickyStdin {
    ended: bool,
}

impl Read for StickyStdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        let n = io::stdin().read(buf)?;
        self.ended = n == 0 && !buf.is_empty();
        Ok(n)
    }
}

/// The real screen: peer messages on stdout, everything else on stderr.
#[derive(Debug)]
pub struct Console {
    looks: Looks,
    /// Reused for every message that needs more than a plain copy.
    scratch: Vec<u8>,
    /// A prompt is shown and its line not yet ended by the user's Enter.
    prompt_open: bool,
}

impl Console {
    /// Creates the console with the given looks.
    pub fn new(looks: Looks) -> Console {
        Console { looks, scratch: Vec::new(), prompt_open: false }
    }

    /// Ends the prompt's line, so that what comes next starts a line of its
    /// own instead of following `you> ` and what was typed after it.
    fn close_prompt(&mut self) {
        if std::mem::take(&mut self.prompt_open) {
            let _ = io::stderr().write_all(b"\n");
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        // After Ctrl-D the cursor still follows the prompt.
        self.close_prompt();
    }
}

impl Screen for Console {
    fn message(&mut self, text: &[u8], with_newline: Option<&[u8]>) -> io::Result<()> {
        self.close_prompt();
        let mut out = io::stdout().lock();
        // The common case, a clean line and no label, is one write(2) of the
        // bytes as they came.
        if let (false, Some(raw)) = (self.looks.label, with_newline) {
            if is_plain(text) {
                out.write_all(raw)?;
                return out.flush();
            }
        }
        self.scratch.clear();
        if self.looks.label {
            let label = if self.looks.colour { LABEL_COLOURED } else { LABEL };
            self.scratch.extend_from_slice(label.as_bytes());
        }
        escape_into(text, &mut self.scratch);
        self.scratch.push(b'\n');
        out.write_all(&self.scratch)?;
        out.flush()
    }

    fn status(&mut self, text: &str) {
        self.close_prompt();
        status(text);
    }

    fn prompt(&mut self) {
        if self.looks.prompt && !self.prompt_open {
            // A prompt that cannot be shown is no reason to stop the chat.
            let _ = io::stderr().write_all(PROMPT.as_bytes());
            self.prompt_open = true;
        }
    }

    fn typed(&mut self) {
        self.prompt_open = false;
    }
}

/// Writes `smolchat: TEXT` as one line on stderr, in one write so that it
/// never interleaves with other output.
pub fn status(text: &str) {
    let mut line = String::with_capacity(PREFIX.len() + text.len() + 1);
    line.push_str(PREFIX);
    line.push_str(text);
    line.push('\n');
    // Nowhere is left to report a failing stderr.
    let _ = io::stderr().write_all(line.as_bytes());
}

/// True when `text` is printable ASCII only, so it can be shown as it is.
/// Checked a machine word at a time for the same reason as `find_byte`.
pub fn is_plain(text: &[u8]) -> bool {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut chunks = text.chunks_exact(8);
    for chunk in &mut chunks {
        let w = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
        // A byte is plain when 0x20 <= b < 0x7f: its high bit is clear, it is
        // at least 0x20, and adding 1 does not reach 0x80.
        let below_space = w.wrapping_sub(LO * 0x20) & !w;
        let del_or_high = w.wrapping_add(LO) | w;
        if (below_space | del_or_high) & HI != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| (0x20..0x7f).contains(&b))
}

/// Appends `text` as it may be shown: invalid UTF-8 as U+FFFD, C0 controls
/// (but TAB) and DEL in caret form (`^[`, `^?`), C1 controls as `\u{9b}`.
pub fn escape_into(text: &[u8], out: &mut Vec<u8>) {
    if is_plain(text) {
        out.extend_from_slice(text);
        return;
    }
    let mut s = String::new();
    for c in String::from_utf8_lossy(text).chars() {
        match c {
            '\t' => s.push('\t'),
            '\x7f' => s.push_str("^?"),
            c if c < ' ' => {
                s.push('^');
                s.push(char::from(c as u8 + 0x40));
            }
            '\u{80}'..='\u{9f}' => {
                let _ = write!(s, "\\u{{{:x}}}", c as u32);
            }
            c => s.push(c),
        }
    }
    out.extend_from_slice(s.as_bytes());
}

/// `escape_into` for a whole line, as a `String`.
pub fn escape(text: &[u8]) -> String {
    let mut out = Vec::new();
    escape_into(text, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(escape(b"hello, world ~"), "hello, world ~");
        assert_eq!(escape("héllo ✓ 日本".as_bytes()), "héllo ✓ 日本");
    }

    #[test]
    fn tab_is_kept() {
        assert_eq!(escape(b"a\tb"), "a\tb");
    }

    #[test]
    fn esc_is_caret_escaped() {
        assert_eq!(escape(b"\x1b[2J\x1b]0;title\x07"), "^[[2J^[]0;title^G");
    }

    #[test]
    fn nul_bel_backspace_cr() {
        assert_eq!(escape(b"\0\x07\x08\r"), "^@^G^H^M");
    }

    #[test]
    fn del_is_escaped() {
        assert_eq!(escape(b"x\x7f"), "x^?");
    }

    #[test]
    fn c1_controls_are_escaped() {
        assert_eq!(escape("\u{9b}31m\u{85}".as_bytes()), "\\u{9b}31m\\u{85}");
        assert_eq!(escape("\u{a0}".as_bytes()), "\u{a0}");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        assert_eq!(escape(b"a\xffb\xc3"), "a\u{fffd}b\u{fffd}");
    }

    #[test]
    fn raw_c1_byte_is_not_a_control() {
        // A lone 0x9b byte is invalid UTF-8, so it can never reach a terminal
        // that reads UTF-8 as an 8-bit CSI.
        assert_eq!(escape(b"\x9b2J"), "\u{fffd}2J");
    }

    #[test]
    fn is_plain_matches_a_byte_loop() {
        for b in 0..=255u8 {
            for pos in 0..17 {
                let mut text = vec![b'a'; 17];
                text[pos] = b;
                assert_eq!(is_plain(&text), (0x20..0x7f).contains(&b), "byte {b:#x} at {pos}");
            }
        }
    }

    #[test]
    fn looks_follow_the_terminals_and_colour_rules() {
        let all = Looks::from_facts(true, true, false, false);
        assert_eq!(all, Looks { prompt: true, label: true, colour: true });
        assert!(!Looks::from_facts(true, true, true, false).colour);
        assert!(!Looks::from_facts(true, true, false, true).colour);
        let piped = Looks::from_facts(false, false, false, false);
        assert_eq!(piped, Looks { prompt: false, label: false, colour: false });
    }
}
