//! The key decoder: bytes from a terminal in non-canonical mode turned into
//! keys, whatever way the reads split them (UTF-8 and escape sequences may
//! straddle two reads).

/// A key, or a piece of text, as the line editor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character (a pasted TAB becomes a space).
    Char(char),
    /// Tab, typed: completes a word where there are words to complete.
    Tab,
    /// Enter: `\r`, `\n`, or `\r\n` as one (a paste of CRLF lines).
    Enter,
    /// Delete the character before the cursor.
    Backspace,
    /// Delete the character under the cursor.
    Delete,
    /// Delete from the start of the line to the cursor (Ctrl-U, VKILL).
    KillLine,
    /// Delete the word before the cursor (Ctrl-W, VWERASE).
    EraseWord,
    /// Cursor one character left.
    Left,
    /// Cursor one character right.
    Right,
    /// Cursor to the start (Home, Ctrl-A).
    Home,
    /// Cursor to the end (End, Ctrl-E).
    End,
    /// The line sent before (Up, Ctrl-P).
    Up,
    /// The line sent after (Down, Ctrl-N).
    Down,
    /// The end-of-input key (Ctrl-D, VEOF).
    Eof,
    /// The interrupt key (Ctrl-C, VINTR).
    Interrupt,
    /// The suspend key (Ctrl-Z, VSUSP).
    Suspend,
}

/// The terminal's own special characters (`c_cc`), read before its
/// settings are changed, so that a user's `stty erase ^H` still works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialChars {
    /// VERASE.
    pub erase: u8,
    /// VKILL.
    pub kill: u8,
    /// VWERASE.
    pub word_erase: u8,
    /// VINTR.
    pub interrupt: u8,
    /// VSUSP.
    pub suspend: u8,
    /// VEOF.
    pub eof: u8,
}

impl Default for SpecialChars {
    /// The usual settings: DEL, ^U, ^W, ^C, ^Z, ^D.
    fn default() -> SpecialChars {
        SpecialChars {
            erase: 0x7f,
            kill: 0x15,
            word_erase: 0x17,
            interrupt: 0x03,
            suspend: 0x1a,
            eof: 0x04,
        }
    }
}

/// Where the decoder is inside a multi-byte input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Between keys.
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// After `ESC [`, collecting parameter bytes.
    Csi,
    /// After `ESC O`.
    Ss3,
}

/// The bracketed-paste markers' parameter: `ESC [ 200 ~` opens, `201` closes.
const PASTE_START: u32 = 200;
const PASTE_END: u32 = 201;

/// Turns bytes into [`Key`]s. Holds the unfinished tail of a read.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    special: SpecialChars,
    state: State,
    /// The first number of a CSI sequence (`ESC [ 200 ~` has 200).
    param: u32,
    /// Bytes of an unfinished UTF-8 character, and how many it needs.
    utf8: [u8; 4],
    utf8_len: usize,
    utf8_need: usize,
    /// The last byte was `\r`, so a `\n` right after it is the same Enter.
    after_cr: bool,
    /// Inside a bracketed paste: control keys are text, not commands.
    pasting: bool,
}

impl Decoder {
    /// A decoder that knows the terminal's special characters.
    pub fn new(special: SpecialChars) -> Decoder {
        Decoder { special, ..Decoder::default() }
    }

    /// The terminal's special characters changed (`stty` while suspended).
    pub fn set_special(&mut self, special: SpecialChars) {
        self.special = special;
    }

    /// Decodes `bytes`, handing each complete key to `key`.
    pub fn feed(&mut self, bytes: &[u8], mut key: impl FnMut(Key)) {
        for &byte in bytes {
            self.byte(byte, &mut key);
        }
    }

    fn byte(&mut self, byte: u8, key: &mut impl FnMut(Key)) {
        match self.state {
            State::Escape => {
                self.state = match byte {
                    b'[' => {
                        self.param = 0;
                        State::Csi
                    }
                    b'O' => State::Ss3,
                    // A lone ESC (or Alt-key) is dropped; the byte is a key.
                    _ => {
                        self.state = State::Ground;
                        return self.byte(byte, key);
                    }
                };
                return;
            }
            State::Csi => {
                match byte {
                    b'0'..=b'9' => {
                        self.param =
                            self.param.saturating_mul(10).saturating_add(u32::from(byte - b'0'))
                    }
                    // Further parameters and intermediates: modifiers, ignored.
                    0x20..=0x3f => {}
                    _ => {
                        self.state = State::Ground;
                        self.csi(byte, key);
                    }
                }
                return;
            }
            State::Ss3 => {
                self.state = State::Ground;
                if !self.pasting {
                    if let Some(k) = cursor_key(byte) {
                        key(k);
                    }
                }
                return;
            }
            State::Ground => {}
        }
        if self.utf8_need > 0 {
            if byte & 0xc0 == 0x80 {
                self.utf8[self.utf8_len] = byte;
                self.utf8_len += 1;
                if self.utf8_len == self.utf8_need {
                    self.utf8_need = 0;
                    if let Some(c) = std::str::from_utf8(&self.utf8[..self.utf8_len])
                        .ok()
                        .and_then(|s| s.chars().next())
                    {
                        key(Key::Char(c));
                    }
                }
                return;
            }
            // A broken sequence is dropped; the byte starts afresh.
            self.utf8_need = 0;
        }
        let after_cr = std::mem::take(&mut self.after_cr);
        match byte {
            0x1b => self.state = State::Escape,
            b'\r' => {
                self.after_cr = true;
                key(Key::Enter);
            }
            b'\n' if after_cr => {}
            b'\n' => key(Key::Enter),
            b'\t' if !self.pasting => key(Key::Tab),
            b'\t' => key(Key::Char(' ')),
            0x80.. => {
                let need = match byte {
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf4 => 4,
                    _ => return,
                };
                self.utf8[0] = byte;
                self.utf8_len = 1;
                self.utf8_need = need;
            }
            0x20..=0x7e => key(Key::Char(char::from(byte))),
            _ if self.pasting => {}
            _ => {
                if let Some(k) = self.control(byte) {
                    key(k);
                }
            }
        }
    }

    /// A control byte outside a paste: the terminal's special characters
    /// first, then the editing keys every shell knows.
    fn control(&self, byte: u8) -> Option<Key> {
        let s = &self.special;
        // 0 is "disabled" (_POSIX_VDISABLE) on Linux; a NUL is no key.
        let special = [
            (s.interrupt, Key::Interrupt),
            (s.suspend, Key::Suspend),
            (s.eof, Key::Eof),
            (s.erase, Key::Backspace),
            (s.kill, Key::KillLine),
            (s.word_erase, Key::EraseWord),
        ];
        if let Some(&(_, k)) = special.iter().find(|(b, _)| *b == byte && byte != 0) {
            return Some(k);
        }
        Some(match byte {
            0x7f | 0x08 => Key::Backspace,
            0x01 => Key::Home,
            0x05 => Key::End,
            0x02 => Key::Left,
            0x06 => Key::Right,
            0x10 => Key::Up,
            0x0e => Key::Down,
            0x15 => Key::KillLine,
            0x17 => Key::EraseWord,
            0x03 => Key::Interrupt,
            0x04 => Key::Eof,
            0x1a => Key::Suspend,
            _ => return None,
        })
    }

    /// The final byte of `ESC [ param ... final`.
    fn csi(&mut self, last: u8, key: &mut impl FnMut(Key)) {
        if last == b'~' {
            match self.param {
                PASTE_START => self.pasting = true,
                PASTE_END => self.pasting = false,
                _ if self.pasting => {}
                1 | 7 => key(Key::Home),
                4 | 8 => key(Key::End),
                3 => key(Key::Delete),
                _ => {}
            }
        } else if !self.pasting {
            if let Some(k) = cursor_key(last) {
                key(k);
            }
        }
    }
}

/// The final byte of a cursor key in CSI or SS3 form.
fn cursor_key(last: u8) -> Option<Key> {
    Some(match last {
        b'A' => Key::Up,
        b'B' => Key::Down,
        b'C' => Key::Right,
        b'D' => Key::Left,
        b'H' => Key::Home,
        b'F' => Key::End,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
