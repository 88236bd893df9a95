//! Escaping: how a peer's bytes are shown so that they can never drive the
//! terminal (controls in caret or `\u{..}` form, invalid UTF-8 as U+FFFD).

use std::fmt::Write as _;

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
}
