//! The screen: terminal detection, the prompt, the peer label and status
//! lines; peer text goes through [`crate::terminal::escape`] on its way out. At a
//! terminal with the line editor, everything is printed above its area.

use std::cell::RefCell;
use std::io::{self, IsTerminal, Write};
use std::rc::Rc;

use crate::terminal::editor::{Editor, PROMPT};
use crate::terminal::escape::{is_plain, write_escaped};
use crate::turn::Screen;

/// Put before each peer message when stdout is a terminal.
const LABEL: &str = "peer> ";

/// The label in bold cyan, for a terminal that takes colour.
const LABEL_COLOURED: &str = "\x1b[1;36mpeer>\x1b[0m ";

/// Every status line and diagnostic starts with this.
pub const PREFIX: &str = "smolchat: ";

/// How the console shows things, decided once from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleStyle {
    /// Show the prompt (stdin is a terminal).
    pub prompt: bool,
    /// Put a label before peer messages (stdout is a terminal).
    pub label: bool,
    /// Colour the label.
    pub colour: bool,
    /// Edit the input line (stdin and stderr are terminals, not dumb).
    pub edit: bool,
    /// Colour the `smolchat:` of status lines (stderr takes colour).
    pub status_colour: bool,
}

impl ConsoleStyle {
    /// Reads the terminals and `NO_COLOR`/`TERM` of this process.
    pub fn detect() -> ConsoleStyle {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|v| v == "dumb");
        let style = ConsoleStyle::from_facts(
            [io::stdin().is_terminal(), io::stdout().is_terminal(), io::stderr().is_terminal()],
            no_color,
            dumb,
        );
        // A Windows console takes colour sequences only once asked to; one
        // that cannot be asked gets none. Without colour to show, its mode
        // is left alone.
        #[cfg(windows)]
        let style = {
            let mut style = style;
            if style.colour || style.status_colour {
                let [stdout_vt, stderr_vt] = crate::terminal::windows::enable_vt_out_err();
                style.colour &= stdout_vt;
                style.status_colour &= stderr_vt;
            }
            style
        };
        style
    }

    /// Decides the looks from the facts (whether stdin, stdout and stderr
    /// are terminals; the environment), so the rules are testable.
    pub fn from_facts(ttys: [bool; 3], no_color: bool, dumb: bool) -> ConsoleStyle {
        let [stdin_tty, stdout_tty, stderr_tty] = ttys;
        ConsoleStyle {
            prompt: stdin_tty,
            label: stdout_tty,
            colour: stdout_tty && !no_color && !dumb,
            // Windows keeps its console's own line editing.
            edit: cfg!(unix) && stdin_tty && stderr_tty && !dumb,
            status_colour: stderr_tty && !no_color && !dumb,
        }
    }
}

/// The real screen: peer messages on stdout, everything else on stderr.
#[derive(Debug)]
pub struct Console {
    looks: ConsoleStyle,
    /// A prompt is shown and its line not yet ended by the user's Enter.
    prompt_open: bool,
    /// The line editor, when it draws the input line.
    tty: Option<Rc<RefCell<Tty>>>,
}

impl Console {
    /// Creates the console with the given looks; at a terminal where the
    /// line editor `tty` keeps the input line below everything printed,
    /// with it.
    pub fn new(looks: ConsoleStyle, tty: Option<Rc<RefCell<Tty>>>) -> Console {
        Console { looks, prompt_open: false, tty }
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
        // After Ctrl-D the cursor still follows the prompt; the editor's
        // area goes, so that the shell's prompt comes on a clean line.
        self.close_prompt();
        if let Some(tty) = &self.tty {
            tty.borrow_mut().clear();
        }
    }
}

impl Screen for Console {
    fn message(&mut self, text: &[u8], with_newline: Option<&[u8]>) -> io::Result<()> {
        match self.tty.clone() {
            // The input line makes room when stdout is the same screen.
            Some(tty) if self.looks.label => {
                tty.borrow_mut().clear();
                let shown = self.show(text, with_newline);
                tty.borrow_mut().render();
                shown
            }
            _ => self.show(text, with_newline),
        }
    }

    fn status(&mut self, text: &str) {
        self.close_prompt();
        match &self.tty {
            Some(tty) => tty.borrow_mut().status(text),
            None => status_in(text, self.looks.status_colour),
        }
    }

    fn highlight(&mut self, text: &str) {
        match self.looks.status_colour {
            true => self.status(&highlighted(text)),
            false => self.status(text),
        }
    }

    fn waiting(&mut self) {
        if self.looks.prompt {
            // What ends the wait where the line editor is not on: the end
            // of input, as EXIT is a line that waits for the next client.
            let keys = match self.tty {
                Some(_) => "EXIT or Ctrl-D",
                None if cfg!(windows) => "Ctrl-Z then Enter",
                None => "Ctrl-D",
            };
            self.status(&format!("waiting for a client ({keys} ends the server)"));
        }
    }

    fn prompt(&mut self) {
        if self.looks.prompt && !self.prompt_open && self.tty.is_none() {
            // A prompt that cannot be shown is no reason to stop the chat.
            let _ = io::stderr().write_all(PROMPT.as_bytes());
            self.prompt_open = true;
        }
    }

    fn typed(&mut self) {
        self.prompt_open = false;
    }
}

impl Console {
    /// Writes one peer message on stdout.
    fn show(&mut self, text: &[u8], with_newline: Option<&[u8]>) -> io::Result<()> {
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
        // Anything else goes out in bounded pieces, so that showing a line
        // costs no memory in proportion to it.
        if self.looks.label {
            let label = if self.looks.colour { LABEL_COLOURED } else { LABEL };
            out.write_all(label.as_bytes())?;
        }
        write_escaped(text, &mut out)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

/// The editor with the place its drawing goes (stderr, or a buffer in tests).
pub struct Tty {
    /// The editor.
    pub editor: Editor,
    out: Box<dyn Write>,
    /// Colour the `smolchat:` prefix of status lines.
    colour: bool,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Tty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tty").field("editor", &self.editor).finish_non_exhaustive()
    }
}

/// The `smolchat:` prefix of a status line in bold yellow, which no peer
/// text can show: the peer's ESC is always escaped.
pub const PREFIX_COLOURED: &str = "\x1b[1;33msmolchat:\x1b[0m ";

impl Tty {
    /// An editor drawing on `out`.
    pub fn new(editor: Editor, out: Box<dyn Write>, colour: bool) -> Tty {
        Tty { editor, out, colour, buf: Vec::new() }
    }

    /// Runs `f` on the editor and writes what it drew, in one write.
    pub fn draw(&mut self, f: impl FnOnce(&mut Editor, &mut Vec<u8>)) {
        self.buf.clear();
        f(&mut self.editor, &mut self.buf);
        if !self.buf.is_empty() {
            // A screen that cannot be drawn on is no reason to stop the chat.
            let _ = self.out.write_all(&self.buf).and_then(|()| self.out.flush());
        }
    }

    /// Brings the area up to date.
    pub fn render(&mut self) {
        self.draw(|editor, out| editor.render(out));
    }

    /// Prints a status line above the area.
    pub fn status(&mut self, text: &str) {
        self.above(&[prefix(self.colour), text]);
    }

    /// Prints a line the user sent into the transcript, after its prompt.
    pub fn sent(&mut self, text: &str) {
        self.above(&[PROMPT, text]);
    }

    /// Prints a line made of `parts` above the area.
    pub fn above(&mut self, parts: &[&str]) {
        self.draw(|editor, out| {
            editor.clear(out);
            parts.iter().for_each(|part| out.extend_from_slice(part.as_bytes()));
            out.push(b'\n');
            editor.render(out);
        });
    }

    /// Erases the area before something else is written to the terminal.
    pub fn clear(&mut self) {
        self.draw(|editor, out| editor.clear(out));
    }
}

/// The `smolchat:` prefix of status lines, in colour or not.
fn prefix(colour: bool) -> &'static str {
    [PREFIX, PREFIX_COLOURED][usize::from(colour)]
}

/// The text of a highlighted status line in bold yellow, as the prefix of
/// every status line: no peer text can show it (the peer's ESC is always
/// escaped), and it never takes the peer label's colour.
fn highlighted(text: &str) -> String {
    format!("\x1b[1;33m{text}\x1b[0m")
}

/// Writes `smolchat: TEXT` as one line on stderr.
pub fn status(text: &str) {
    status_in(text, false);
}

/// Writes a status line on stderr, its prefix in colour or not, in one
/// write so that it never interleaves with other output.
fn status_in(text: &str, colour: bool) {
    let line = format!("{}{text}\n", prefix(colour));
    // Nowhere is left to report a failing stderr.
    let _ = io::stderr().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests;
