//! The screen: terminal detection, the prompt, the peer label and status
//! lines; peer text goes through [`crate::escape`] on its way out.

use std::io::{self, IsTerminal, Write};

use crate::escape::{is_plain, write_escaped};
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
pub struct ConsoleStyle {
    /// Show the prompt (stdin is a terminal).
    pub prompt: bool,
    /// Put a label before peer messages (stdout is a terminal).
    pub label: bool,
    /// Colour the label.
    pub colour: bool,
}

impl ConsoleStyle {
    /// Reads the terminals and `NO_COLOR`/`TERM` of this process.
    pub fn detect() -> ConsoleStyle {
        // A Windows console takes colour sequences only once asked to, which
        // std cannot do without unsafe code: no colour there.
        let no_color = cfg!(windows) || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|v| v == "dumb");
        ConsoleStyle::from_facts(
            io::stdin().is_terminal(),
            io::stdout().is_terminal(),
            no_color,
            dumb,
        )
    }

    /// Decides the looks from the facts, so the rules are testable.
    pub fn from_facts(
        stdin_tty: bool,
        stdout_tty: bool,
        no_color: bool,
        dumb: bool,
    ) -> ConsoleStyle {
        ConsoleStyle {
            prompt: stdin_tty,
            label: stdout_tty,
            colour: stdout_tty && !no_color && !dumb,
        }
    }
}

/// The real screen: peer messages on stdout, everything else on stderr.
#[derive(Debug)]
pub struct Console {
    looks: ConsoleStyle,
    /// A prompt is shown and its line not yet ended by the user's Enter.
    prompt_open: bool,
}

impl Console {
    /// Creates the console with the given looks.
    pub fn new(looks: ConsoleStyle) -> Console {
        Console { looks, prompt_open: false }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_follow_the_terminals_and_colour_rules() {
        let all = ConsoleStyle::from_facts(true, true, false, false);
        assert_eq!(all, ConsoleStyle { prompt: true, label: true, colour: true });
        assert!(!ConsoleStyle::from_facts(true, true, true, false).colour);
        assert!(!ConsoleStyle::from_facts(true, true, false, true).colour);
        let piped = ConsoleStyle::from_facts(false, false, false, false);
        assert_eq!(piped, ConsoleStyle { prompt: false, label: false, colour: false });
    }
}
