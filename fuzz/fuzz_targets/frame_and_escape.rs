//! Fuzzes the framer and the sanitizer together: any stream, limit and read
//! pattern gives the frames of a plain model, within the buffer bound, and
//! every line escapes to text with no control character in it.

#![no_main]

mod chunked;

use chunked::Chunked;
use futures_lite::future::block_on;
use libfuzzer_sys::fuzz_target;
use smolchat::terminal::escape::{escape, is_plain};
use smolchat::wire::framer::{Frame, Framer};

#[derive(Debug, PartialEq, Eq)]
enum Out<'a> {
    Line(&'a [u8]),
    TooLong,
}

/// The framing rules the slow, obvious way: split on `\n`, drop one `\r`
/// before it, judge each line by the limit; an unterminated tail is a line.
fn model(stream: &[u8], max_line: usize) -> Vec<Out<'_>> {
    let judge = |text| if <[u8]>::len(text) > max_line { Out::TooLong } else { Out::Line(text) };
    let mut pieces: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    let tail = pieces.pop().unwrap_or_default();
    let mut out: Vec<Out<'_>> =
        pieces.into_iter().map(|p| judge(p.strip_suffix(b"\r").unwrap_or(p))).collect();
    if !tail.is_empty() {
        out.push(judge(tail));
    }
    out
}

fn check_escape(text: &[u8]) {
    let shown = escape(text);
    for c in shown.chars() {
        let control = (c < ' ' && c != '\t') || c == '\x7f' || ('\u{80}'..='\u{9f}').contains(&c);
        assert!(!control, "{c:?} in {shown:?} from {text:?}");
    }
    let plain = text.iter().all(|b| (0x20..0x7f).contains(b));
    assert_eq!(is_plain(text), plain, "{text:?}");
    if plain {
        assert_eq!(shown.as_bytes(), text);
    }
    if let Ok(s) = std::str::from_utf8(text) {
        if !s.chars().any(char::is_control) {
            assert_eq!(shown, s);
        }
    }
}

// Input: one byte for the limit, one for how many read sizes follow, the
// sizes, then the stream.
fuzz_target!(|input: &[u8]| {
    let [limit, count, rest @ ..] = input else { return };
    // Mostly small limits, where lines are often over; sometimes large ones.
    let max_line = match limit {
        0..=199 => usize::from(*limit) + 1,
        200..=249 => usize::from(*limit) * 97,
        _ => 16 * 1024 + usize::from(*limit) - 252,
    };
    let count = usize::from(count % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(count);

    let mut framer = Framer::new(Chunked { data: stream, sizes, reads: 0 }, max_line);
    let want = model(stream, max_line);
    let mut got = 0;
    loop {
        let frame = block_on(framer.next()).expect("the reader does not fail");
        assert!(framer.allocated() <= max_line + 3, "allocated {}", framer.allocated());
        let seen = match frame {
            Frame::Eof => break,
            Frame::TooLong => Out::TooLong,
            Frame::Line => {
                let line = framer.line();
                assert!(line.len() <= max_line);
                check_escape(line);
                Out::Line(line)
            }
        };
        assert_eq!(Some(&seen), want.get(got), "frame {got}, limit {max_line}");
        got += 1;
    }
    assert_eq!(got, want.len(), "frames missing at the end, limit {max_line}");
    check_escape(stream);
});
