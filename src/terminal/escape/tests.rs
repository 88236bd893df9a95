//! Escaping, case by case: what a peer's bytes look like on the screen.

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
fn bidi_controls_and_separators_are_escaped() {
    let each = [
        '\u{61c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
        '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{2028}', '\u{2029}',
    ];
    for c in each {
        let text = format!("a{c}b");
        assert_eq!(escape(text.as_bytes()), format!("a\\u{{{:x}}}b", c as u32));
    }
    assert_eq!(escape("file\u{202e}gpj.exe".as_bytes()), "file\\u{202e}gpj.exe");
}

#[test]
fn joiners_and_neighbours_stay() {
    // Emoji sequences need the zero-width joiner; the neighbours of the
    // escaped ranges are ordinary characters.
    let kept = "\u{200d}\u{200c}\u{200b}\u{2027}\u{202f}\u{2065}\u{206a}\u{61b}\u{61d}\u{a0}";
    assert_eq!(escape(kept.as_bytes()), kept);
    assert_eq!(escape("👩\u{200d}💻".as_bytes()), "👩\u{200d}💻");
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
