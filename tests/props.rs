//! Generated inputs for the framer and the sanitizer: any split of a stream and
//! any cancelled read give the frames of a plain model, the buffer stays near
//! the limit, and nothing a peer sends reaches the screen as a control.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_lite::future::block_on;
use futures_lite::io::AsyncRead;
use proptest::prelude::*;
use smolchat::terminal::escape::{escape, escape_into, is_plain, write_escaped_chunked, CHUNK};
use smolchat::wire::framer::{Frame, Framer};

/// One frame with its text, so that sequences can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Line(Vec<u8>),
    TooLong,
    Eof,
}

/// The framing rules written the slow, obvious way, over the whole stream.
fn model(stream: &[u8], max_line: usize) -> Vec<Out> {
    let judge = |text: &[u8]| {
        if text.len() > max_line {
            Out::TooLong
        } else {
            Out::Line(text.to_vec())
        }
    };
    let mut out = Vec::new();
    let mut pieces: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    // After the last `\n` comes the unterminated tail, which may be empty.
    let tail = pieces.pop().unwrap_or_default();
    for piece in pieces {
        out.push(judge(piece.strip_suffix(b"\r").unwrap_or(piece)));
    }
    if !tail.is_empty() {
        // No `\n` follows, so a `\r` at its end is part of the text.
        out.push(judge(tail));
    }
    out.push(Out::Eof);
    out
}

/// Hands out a stream in reads of the given sizes (cycled), with optional
/// `Pending` and `Interrupted` answers in between, as a socket might.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    /// Reads done so far: picks the size and the hiccup of the next one.
    reads: usize,
    /// Left of the current chunk, when the caller's buffer was smaller.
    left_in_chunk: usize,
    /// Per read (cycled): 0 answers, 1 is `Pending`, 2 is `Interrupted`.
    hiccups: Vec<u8>,
    /// The last read was a hiccup, so the next one answers: no endless stall.
    hiccuped: bool,
}

impl Chunked {
    fn new(data: &[u8], sizes: &[usize]) -> Chunked {
        Chunked::with_hiccups(data, sizes, &[])
    }

    fn with_hiccups(data: &[u8], sizes: &[usize], hiccups: &[u8]) -> Chunked {
        Chunked {
            data: data.to_vec(),
            pos: 0,
            sizes: sizes.iter().map(|&s| s.max(1)).collect(),
            reads: 0,
            left_in_chunk: 0,
            hiccups: hiccups.to_vec(),
            hiccuped: false,
        }
    }
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !this.hiccups.is_empty() && !this.hiccuped {
            let hiccup = this.hiccups[this.reads % this.hiccups.len()];
            this.reads += 1;
            match hiccup {
                1 => {
                    this.hiccuped = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                2 => {
                    this.hiccuped = true;
                    return Poll::Ready(Err(io::ErrorKind::Interrupted.into()));
                }
                _ => {}
            }
        }
        this.hiccuped = false;
        if this.left_in_chunk == 0 {
            this.left_in_chunk = this.sizes[this.reads % this.sizes.len()];
            this.reads += 1;
        }
        let n = this.left_in_chunk.min(buf.len()).min(this.data.len() - this.pos);
        buf[..n].copy_from_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        this.left_in_chunk -= n;
        Poll::Ready(Ok(n))
    }
}

/// Records the frame just returned.
fn record<R>(framer: &Framer<R>, frame: Frame) -> Out {
    match frame {
        Frame::Line => Out::Line(framer.line().to_vec()),
        Frame::TooLong => Out::TooLong,
        Frame::Eof => Out::Eof,
    }
}

/// All frames up to `Eof`, checking the buffer bound after each.
fn frames<R: AsyncRead + Unpin>(mut framer: Framer<R>) -> Vec<Out> {
    let bound = framer.max_line() + 3;
    let mut out = Vec::new();
    loop {
        let frame = block_on(framer.next()).expect("the test reader does not fail");
        assert!(framer.allocated() <= bound, "allocated {} > {bound}", framer.allocated());
        out.push(record(&framer, frame));
        if frame == Frame::Eof {
            // The end stays the end.
            assert_eq!(block_on(framer.next()).unwrap(), Frame::Eof);
            return out;
        }
    }
}

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// All frames up to `Eof`, but each `next()` is polled at most `polls[i]`
/// times (cycled) and then dropped unfinished, and a fresh one polled.
fn frames_with_cancels<R: AsyncRead + Unpin>(mut framer: Framer<R>, polls: &[usize]) -> Vec<Out> {
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);
    let bound = framer.max_line() + 3;
    let mut out = Vec::new();
    // The readers answer `Pending` at most every other poll, so this is plenty.
    for attempt in 0..1_000_000 {
        let budget = polls[attempt % polls.len()].max(1);
        let done = {
            let mut next = pin!(framer.next());
            (0..budget).find_map(|_| match next.as_mut().poll(&mut cx) {
                Poll::Ready(r) => Some(r.expect("the test reader does not fail")),
                Poll::Pending => None,
            })
        };
        assert!(framer.allocated() <= bound, "allocated {} > {bound}", framer.allocated());
        if let Some(frame) = done {
            out.push(record(&framer, frame));
            if frame == Frame::Eof {
                return out;
            }
        }
    }
    panic!("no Eof after a million polls; frames so far: {out:?}");
}

/// Bytes that make lines form: mostly `\n`, `\r`, letters, and some of anything.
fn framing_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => Just(b'\n'),
        3 => Just(b'\r'),
        4 => prop::sample::select(&b"ab "[..]),
        2 => any::<u8>(),
    ]
}

/// Streams of single bytes and long runs, so over-long lines are common too.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => framing_byte().prop_map(|b| vec![b]),
        1 => (framing_byte(), 1..150usize).prop_map(|(b, n)| vec![b; n]),
        1 => (1..100usize).prop_map(|n| vec![b'x'; n]),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// Read sizes: byte by byte, small and uneven, or everything at once.
fn sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![1]),
        prop::collection::vec(1..20usize, 1..16),
        prop::collection::vec(1..200usize, 1..4),
        Just(vec![usize::MAX]),
    ]
}

proptest! {
    #[test]
    fn any_split_gives_the_same_frames(
        data in stream(),
        max_line in 1..64usize,
        sizes in sizes(),
    ) {
        let whole = frames(Framer::new(&data[..], max_line));
        let split = frames(Framer::new(Chunked::new(&data, &sizes), max_line));
        prop_assert_eq!(&split, &whole);
        let bytewise = frames(Framer::new(Chunked::new(&data, &[1]), max_line));
        prop_assert_eq!(&bytewise, &whole);
    }

    #[test]
    fn the_framer_agrees_with_the_model(
        data in stream(),
        max_line in 1..64usize,
        sizes in sizes(),
    ) {
        let got = frames(Framer::new(Chunked::new(&data, &sizes), max_line));
        prop_assert_eq!(got, model(&data, max_line));
    }

    #[test]
    fn cancelled_reads_lose_and_reorder_nothing(
        data in stream(),
        max_line in 1..64usize,
        sizes in sizes(),
        hiccups in prop::collection::vec(0..3u8, 1..12),
        polls in prop::collection::vec(1..5usize, 1..12),
    ) {
        let reader = Chunked::with_hiccups(&data, &sizes, &hiccups);
        let got = frames_with_cancels(Framer::new(reader, max_line), &polls);
        prop_assert_eq!(got, model(&data, max_line));
    }

    #[test]
    fn escape_shows_no_control_characters(text in mixed_bytes()) {
        let shown = escape(&text);
        for c in shown.chars() {
            prop_assert!(!escaped_by_the_spec(c), "{c:?} in {shown:?} from {text:?}");
        }
        prop_assert!(!shown.contains(['\n', '\r']));
        if text.is_ascii() {
            // Caret forms keep ASCII in ASCII: every byte out is printable or TAB.
            prop_assert!(shown.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)), "{shown:?}");
        }
    }

    #[test]
    fn escape_into_appends_what_escape_returns(
        before in prop::collection::vec(any::<u8>(), 0..10),
        text in mixed_bytes(),
    ) {
        let mut out = before.clone();
        escape_into(&text, &mut out);
        prop_assert_eq!(&out[..before.len()], &before[..]);
        prop_assert_eq!(&out[before.len()..], escape(&text).into_bytes());
    }

    #[test]
    fn the_chunked_escaper_agrees_with_a_whole_line_escaper(
        text in mixed_bytes(),
        chunk in 16..64usize,
        repeat in 1..4usize,
    ) {
        // Repeated, the text crosses chunk boundaries at every offset.
        let text = text.repeat(repeat);
        let mut out = Writes::default();
        write_escaped_chunked(&text, chunk, &mut out).unwrap();
        prop_assert_eq!(String::from_utf8(out.bytes).unwrap(), escape_whole_line(&text));
    }

    #[test]
    fn printable_text_is_unchanged(text in printable()) {
        prop_assert_eq!(escape(text.as_bytes()), text);
    }

    #[test]
    fn is_plain_means_printable_ascii(text in mixed_bytes()) {
        let plain = text.iter().all(|b| (0x20..0x7f).contains(b));
        prop_assert_eq!(is_plain(&text), plain);
        if plain {
            prop_assert_eq!(escape(&text).into_bytes(), text);
        }
    }

    #[test]
    fn plain_ascii_is_plain(text in "[ -~]{0,40}") {
        prop_assert!(is_plain(text.as_bytes()));
        prop_assert_eq!(escape(text.as_bytes()), text);
    }
}

proptest! {
    // Large limits need long streams, so fewer cases of them.
    #![proptest_config(ProptestConfig {
        cases: ProptestConfig::default().cases.div_ceil(16),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_buffer_grows_only_to_the_limit(
        max_line in prop_oneof![16_370..16_400usize, 20_000..40_000usize],
        lines in prop::collection::vec((0..45_000usize, any::<bool>()), 1..5),
        sizes in prop_oneof![Just(vec![usize::MAX]), prop::collection::vec(1..5000usize, 1..8)],
    ) {
        let mut data = Vec::new();
        for (len, crlf) in lines {
            data.resize(data.len() + len, b'y');
            data.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        let got = frames(Framer::new(Chunked::new(&data, &sizes), max_line));
        prop_assert_eq!(got, model(&data, max_line));
    }
}

/// Records what reaches the screen and the largest single write.
#[derive(Default)]
struct Writes {
    bytes: Vec<u8>,
    largest: usize,
}

impl io::Write for Writes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        self.largest = self.largest.max(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether the spec says `c` is never shown raw: C0 controls but TAB, DEL,
/// C1 controls, the bidirectional controls, U+2028 and U+2029.
fn escaped_by_the_spec(c: char) -> bool {
    (c < ' ' && c != '\t')
        || c == '\x7f'
        || ('\u{80}'..='\u{9f}').contains(&c)
        || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// The escaping rules the slow, obvious way: the whole line at once.
fn escape_whole_line(text: &[u8]) -> String {
    let mut shown = String::new();
    for c in String::from_utf8_lossy(text).chars() {
        if !escaped_by_the_spec(c) {
            shown.push(c);
        } else if c == '\x7f' {
            shown.push_str("^?");
        } else if c < ' ' {
            shown.push('^');
            shown.push(char::from(c as u8 + 0x40));
        } else {
            shown.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    shown
}

/// The characters the spec escapes besides the controls, and their neighbours.
const BIDI_AND_NEIGHBOURS: &[char] = &[
    '\u{61b}', '\u{61c}', '\u{61d}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{2010}', '\u{2027}',
    '\u{2028}', '\u{2029}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{202f}',
    '\u{2065}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{206a}', '\u{fffd}',
];

/// Any bytes, with controls, C1 characters, DEL, bidirectional controls and
/// UTF-8 sequences common.
fn mixed_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        2 => prop::sample::select(BIDI_AND_NEIGHBOURS).prop_map(char_bytes),
        3 => any::<u8>().prop_map(|b| vec![b]),
        2 => (0u8..0x20).prop_map(|b| vec![b]),
        1 => Just(vec![0x7f]),
        2 => (0x80u32..0xa0).prop_map(|c| char_bytes(char::from_u32(c).unwrap_or('?'))),
        3 => any::<char>().prop_map(char_bytes),
        2 => prop::sample::select(&b"abc \t"[..]).prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..48).prop_map(|pieces| pieces.concat())
}

fn char_bytes(c: char) -> Vec<u8> {
    c.to_string().into_bytes()
}

/// Text with no control characters, near the edges of the control ranges.
fn printable() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        any::<char>(),
        (0x20u32..0x7f).prop_map(|c| char::from_u32(c).unwrap_or('?')),
        (0xa0u32..0x100).prop_map(|c| char::from_u32(c).unwrap_or('?')),
        Just('\u{fffd}'),
    ];
    prop::collection::vec(c, 0..40)
        .prop_map(|cs| cs.into_iter().filter(|&c| !escaped_by_the_spec(c)).collect())
}

// A large line of what escaping grows most goes out in writes of a chunk.
#[test]
fn escaping_a_large_line_writes_bounded_chunks() {
    for unit in [&b"\xff"[..], b"\0", "\u{85}".as_bytes(), "\u{202e}".as_bytes()] {
        let text = unit.repeat((1 << 20) / unit.len());
        let mut out = Writes::default();
        write_escaped_chunked(&text, CHUNK, &mut out).unwrap();
        assert!(out.largest <= CHUNK, "a write of {} bytes", out.largest);
        assert_eq!(String::from_utf8(out.bytes).unwrap(), escape_whole_line(&text));
    }
}

// Fixed cases at the edges the properties rely on, so they never go untried.
#[test]
fn edge_cases_agree_with_the_model() {
    let cases: &[(&[u8], usize)] = &[
        (b"aaaaa\r\n", 5),
        (b"aaaaaa\n", 5),
        (b"aaaaaa\r\n", 5),
        (b"aaaaa\r", 5),
        (b"aaaaaa", 5),
        (b"aaaaaaa", 5),
        (b"aaaaaaaaaaaaa\r\nok\n", 5),
        (b"\r\r\n\r", 1),
        (b"x\ry\r\n", 3),
        (b"", 1),
    ];
    for &(data, max_line) in cases {
        let want = model(data, max_line);
        for size in 1..=data.len().max(1) {
            let got = frames(Framer::new(Chunked::new(data, &[size]), max_line));
            assert_eq!(got, want, "{data:?} max {max_line} in reads of {size}");
        }
    }
}
