//! Escaping: how a peer's bytes are shown so that they can never drive the
//! terminal or reorder what it shows (controls in caret or `\u{..}` form,
//! bidirectional controls as `\u{..}`, invalid UTF-8 as U+FFFD), in bounded
//! chunks straight to the output.

use std::io::{self, Write};

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

/// The most bytes escaping holds before it writes them out.
pub const CHUNK: usize = 8 * 1024;

/// How a character is shown, when not as itself.
enum Shown {
    /// As it is.
    Itself,
    /// C0 controls but TAB, and DEL: caret form (`^[`, `^?`).
    Caret(u8),
    /// C1 controls and the characters that reorder or split a line on the
    /// screen (bidirectional controls, line and paragraph separators):
    /// `\u{202e}`.
    Code,
}

fn shown(c: char) -> Shown {
    match c {
        '\t' => Shown::Itself,
        '\x7f' => Shown::Caret(b'?'),
        c if c < ' ' => Shown::Caret(c as u8 + 0x40),
        '\u{80}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => Shown::Code,
        _ => Shown::Itself,
    }
}

/// Writes `text` to `out` as it may be shown: invalid UTF-8 as U+FFFD, C0
/// controls (but TAB) and DEL in caret form (`^[`, `^?`), C1 controls, the
/// bidirectional controls and U+2028/U+2029 as `\u{202e}`. Memory stays at
/// [`CHUNK`] bytes whatever the text: runs shown as they are go out as they
/// are, and escapes are gathered in a buffer of that size.
pub fn write_escaped<W: Write>(text: &[u8], out: &mut W) -> io::Result<()> {
    write_escaped_chunked(text, CHUNK, out)
}

/// [`write_escaped`] with a buffer of `chunk` bytes (at most [`CHUNK`], at
/// least 16), so that tests can make every boundary fall everywhere.
#[doc(hidden)]
#[inline(never)]
pub fn write_escaped_chunked<W: Write>(text: &[u8], chunk: usize, out: &mut W) -> io::Result<()> {
    if is_plain(text) {
        return out.write_all(text);
    }
    let mut buf = Chunks { out, buf: [0; CHUNK], len: 0, limit: chunk.clamp(16, CHUNK) };
    let mut rest = text;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                buf.text(valid)?;
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                buf.text(std::str::from_utf8(valid).unwrap_or_default())?;
                buf.push("\u{fffd}".as_bytes())?;
                // A sequence cut off by the end of the line is one U+FFFD.
                rest = &after[e.error_len().unwrap_or(after.len())..];
            }
        }
    }
    buf.flush()
}

/// Gathers small pieces into writes of up to `limit` bytes.
struct Chunks<'a, W> {
    out: &'a mut W,
    buf: [u8; CHUNK],
    len: usize,
    limit: usize,
}

impl<W: Write> Chunks<'_, W> {
    fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.len + bytes.len() > self.limit {
            self.flush()?;
            if bytes.len() > self.limit {
                return self.out.write_all(bytes);
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let len = std::mem::take(&mut self.len);
        self.out.write_all(&self.buf[..len])
    }

    /// Valid text: runs shown as they are, the rest escaped.
    fn text(&mut self, text: &str) -> io::Result<()> {
        let mut run = 0;
        for (at, c) in text.char_indices() {
            let mut code = [0u8; 12];
            let escaped: &[u8] = match shown(c) {
                Shown::Itself => continue,
                Shown::Caret(b) => {
                    code[..2].copy_from_slice(&[b'^', b]);
                    &code[..2]
                }
                Shown::Code => {
                    let mut w = &mut code[..];
                    // Twelve bytes hold `\u{` and six hex digits and `}`.
                    let _ = write!(w, "\\u{{{:x}}}", c as u32);
                    let left = w.len();
                    &code[..12 - left]
                }
            };
            self.push(&text.as_bytes()[run..at])?;
            self.push(escaped)?;
            run = at + c.len_utf8();
        }
        self.push(&text.as_bytes()[run..])
    }
}

/// Appends `text` as it may be shown (see [`write_escaped`]).
pub fn escape_into(text: &[u8], out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = write_escaped(text, out);
}

/// `escape_into` for a whole line, as a `String`.
pub fn escape(text: &[u8]) -> String {
    let mut out = Vec::new();
    escape_into(text, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests;
