//! The key decoder, byte by byte: keys, sequences and pastes, however the
//! reads split them.

use super::*;

fn keys(chunks: &[&[u8]]) -> Vec<Key> {
    let mut decoder = Decoder::new(SpecialChars::default());
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk, |k| out.push(k));
    }
    out
}

fn text(s: &str) -> Vec<Key> {
    s.chars().map(Key::Char).collect()
}

#[test]
fn printable_text_and_enter() {
    let mut want = text("hi");
    want.push(Key::Tab);
    want.extend(text("you"));
    want.push(Key::Enter);
    assert_eq!(keys(&[b"hi\tyou\r"]), want);
    // A CRLF is one Enter, a lone LF is one too.
    assert_eq!(keys(&[b"\r\n\n"]), vec![Key::Enter, Key::Enter]);
    assert_eq!(keys(&[b"\r", b"\n"]), vec![Key::Enter]);
}

#[test]
fn utf8_split_across_reads() {
    let bytes = "日本語 😀".as_bytes();
    let mut chunks: Vec<&[u8]> = Vec::new();
    for i in 0..bytes.len() {
        chunks.push(&bytes[i..i + 1]);
    }
    assert_eq!(keys(&chunks), text("日本語 😀"));
    // A broken sequence is dropped, the next byte is kept.
    assert_eq!(keys(&[b"\xe6\x97a", b"\xff"]), text("a"));
}

#[test]
fn control_keys() {
    use Key::*;
    let got = keys(&[b"\x7f\x08\x15\x17\x01\x05\x02\x06\x10\x0e\x03\x1a\x04"]);
    assert_eq!(
        got,
        [
            Backspace, Backspace, KillLine, EraseWord, Home, End, Left, Right, Up, Down, Interrupt,
            Suspend, Eof
        ]
    );
    // Other control bytes are no keys.
    assert_eq!(keys(&[b"\x00\x07\x0b\x1c"]), []);
}

#[test]
fn the_terminals_own_special_characters() {
    let special =
        SpecialChars { erase: 0x08, kill: 0x18, word_erase: 0x0b, ..SpecialChars::default() };
    let mut decoder = Decoder::new(special);
    let mut out = Vec::new();
    decoder.feed(b"\x08\x18\x0b", |k| out.push(k));
    assert_eq!(out, [Key::Backspace, Key::KillLine, Key::EraseWord]);
}

#[test]
fn escape_sequences_even_split() {
    use Key::*;
    let all: &[u8] =
        b"\x1b[D\x1b[C\x1b[H\x1b[F\x1bOH\x1bOF\x1b[1~\x1b[4~\x1b[3~\x1b[1;5C\x1b[A\x1b[B";
    let whole = keys(&[all]);
    assert_eq!(whole, [Left, Right, Home, End, Home, End, Home, End, Delete, Right, Up, Down]);
    let split: Vec<&[u8]> = all.chunks(1).collect();
    assert_eq!(keys(&split), whole);
    // A lone ESC before a key is dropped.
    assert_eq!(keys(&[b"\x1bx"]), text("x"));
}

#[test]
fn a_paste_is_text_and_enters() {
    use Key::*;
    let got = keys(&[b"\x1b[200~a\x03\tb\r\nc\x1b[D\x1b[2", b"01~\x03"]);
    assert_eq!(got, [Char('a'), Char(' '), Char('b'), Enter, Char('c'), Interrupt]);
}
