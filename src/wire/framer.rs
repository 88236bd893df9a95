//! One bounded line framer for the socket and the keyboard alike.
//!
//! The framer owns its buffer, so a read that is abandoned half-way (because
//! the other side of a race won) loses no byte and reorders nothing: every
//! byte read is already in `self` before a future can return `Pending`.

use std::io;
use std::ops::Range;

use futures_lite::io::{AsyncRead, AsyncReadExt};

/// Bytes the buffer starts with; it grows towards the line limit on demand.
const INITIAL_BUFFER: usize = 4 * 1024;

/// A buffer that a large line grew past this is given back once the line
/// has been handed out, rather than held for the rest of the session.
const SHRINK_ABOVE: usize = 256 * 1024;

/// What the framer found next in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A line; its text is [`Framer::line`].
    Line,
    /// A line longer than the limit; its bytes are discarded up to the next `\n`.
    TooLong,
    /// The end of the stream, after every buffered line was returned.
    Eof,
}

/// Splits a byte stream into `\n`-terminated lines of at most `max_line` bytes.
///
/// A `\r` right before the `\n` is dropped. A last line with no `\n` before the
/// end of the stream is still a line. The buffer never holds more than
/// `max_line` plus a few bytes, whatever the stream sends.
#[derive(Debug)]
pub struct Framer<R> {
    /// Where the bytes come from.
    src: R,
    /// Storage; `buf[start..end]` holds bytes not yet returned.
    buf: Vec<u8>,
    /// First byte not yet handed out.
    start: usize,
    /// One past the last byte read.
    end: usize,
    /// `buf[start..scanned]` is known to hold no `\n`, so it is not scanned twice.
    scanned: usize,
    /// The longest line accepted, not counting `\r\n`.
    max_line: usize,
    /// The most the buffer may grow to.
    capacity: usize,
    /// Discarding the tail of an over-long line up to its `\n`.
    skipping: bool,
    /// The source has reported its end.
    eof: bool,
    /// The line last returned, as a range of `buf`; with `raw_end` its ending too.
    line: Range<usize>,
    /// One past the last byte of the last line as received (its `\r\n` included).
    raw_end: usize,
}

impl<R> Framer<R> {
    /// Creates a framer that accepts lines of up to `max_line` bytes.
    pub fn new(src: R, max_line: usize) -> Self {
        // A full buffer with no newline in it must already be over the limit,
        // so that a read never finds the buffer full: line, `\r`, one more.
        let capacity = max_line.saturating_add(3);
        Framer {
            src,
            buf: Vec::new(),
            start: 0,
            end: 0,
            scanned: 0,
            max_line,
            capacity,
            skipping: false,
            eof: false,
            line: 0..0,
            raw_end: 0,
        }
    }

    /// A framer over `src` that starts with `held`, bytes already read from
    /// it (by whoever read the lines before): what a line reader hands on
    /// to the next reader of the same stream.
    pub fn resume(src: R, max_line: usize, held: Vec<u8>) -> Self {
        let mut framer = Framer::new(src, max_line);
        framer.end = held.len();
        framer.buf = held;
        framer
    }

    /// The source, and the bytes read from it but not yet handed out, for
    /// whoever reads the stream next ([`Framer::resume`], or a record
    /// reader after a handshake's lines).
    pub fn into_parts(self) -> (R, Vec<u8>) {
        let mut held = self.buf;
        held.truncate(self.end);
        held.drain(..self.start);
        (self.src, held)
    }

    /// The longest line this framer accepts.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The text of the line last returned as [`Frame::Line`], without `\r\n`.
    pub fn line(&self) -> &[u8] {
        &self.buf[self.line.clone()]
    }

    /// The line last returned with its ending exactly as received, when the
    /// ending was a plain `\n`: such a line can be passed on in one write.
    pub fn line_with_newline(&self) -> Option<&[u8]> {
        (self.raw_end == self.line.end + 1).then(|| &self.buf[self.line.start..self.raw_end])
    }

    /// Hands back the line last returned as [`Frame::Line`], so that the next
    /// frame is that line again: a line taken for a session that ended before
    /// it could be sent stays for the next one. Call it before reading more.
    pub fn put_back(&mut self) {
        self.start = self.line.start;
        self.scanned = self.start;
    }

    /// How much memory the buffer holds now.
    pub fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// Returns the underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.src
    }

    /// Finds the next frame in what is buffered, without reading.
    pub fn decode(&mut self) -> Option<Frame> {
        loop {
            match self.find_newline(self.scanned) {
                Some(nl) if self.skipping => {
                    self.skipping = false;
                    self.start = nl + 1;
                    self.scanned = self.start;
                }
                Some(nl) => {
                    let text_end =
                        if nl > self.start && self.buf[nl - 1] == b'\r' { nl - 1 } else { nl };
                    let text = self.start..text_end;
                    self.start = nl + 1;
                    self.scanned = self.start;
                    if text.len() > self.max_line {
                        return Some(Frame::TooLong);
                    }
                    self.line = text;
                    self.raw_end = nl + 1;
                    return Some(Frame::Line);
                }
                None if self.skipping => {
                    self.start = self.end;
                    self.scanned = self.end;
                    return self.eof.then_some(Frame::Eof);
                }
                None if self.end - self.start > self.max_line + 1 => {
                    // Drop what is held now; the rest of the line goes as it comes.
                    self.start = self.end;
                    self.scanned = self.end;
                    self.skipping = true;
                    return Some(Frame::TooLong);
                }
                None => {
                    self.scanned = self.end;
                    if !self.eof {
                        return None;
                    }
                    if self.start == self.end {
                        return Some(Frame::Eof);
                    }
                    // A last line with no newline is still a line.
                    let text = self.start..self.end;
                    self.start = self.end;
                    if text.len() > self.max_line {
                        return Some(Frame::TooLong);
                    }
                    self.line = text.clone();
                    self.raw_end = text.end;
                    return Some(Frame::Line);
                }
            }
        }
    }

    fn find_newline(&self, from: usize) -> Option<usize> {
        let from = from.max(self.start);
        find_byte(b'\n', &self.buf[from..self.end]).map(|i| from + i)
    }

    /// Makes room at the end of the buffer, moving or growing it; false when full.
    fn make_room(&mut self) -> bool {
        if self.start == self.end {
            // Nothing buffered: start over at the front, which is free.
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            if self.buf.len() > SHRINK_ABOVE {
                self.buf = Vec::new();
            }
        }
        if self.end < self.buf.len() {
            return true;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
            return true;
        }
        if self.buf.len() < self.capacity {
            let len =
                (self.buf.len() * 3 / 2).clamp(INITIAL_BUFFER.min(self.capacity), self.capacity);
            self.buf.resize(len, 0);
            return true;
        }
        false
    }
}

impl<R: AsyncRead + Unpin> Framer<R> {
    /// Returns the next frame. Cancelling it loses nothing.
    pub async fn next(&mut self) -> io::Result<Frame> {
        loop {
            if let Some(frame) = self.decode() {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    /// Reads once more into the buffer; `Ok(0)` at the end of the stream, and
    /// pending for ever when the buffer is full and nothing has been taken out.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if !self.make_room() {
            return futures_lite::future::pending().await;
        }
        let n = loop {
            match self.src.read(&mut self.buf[self.end..]).await {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        self.end += n;
        self.eof = n == 0;
        Ok(n)
    }

    /// Reads ahead without handing out lines. Returns `Ok` once
    /// [`Framer::decode`] has news that cannot wait: the end of the stream, or
    /// a line already over the limit. Lines read meanwhile stay queued; when
    /// they fill the buffer, reading stops, so the peer is slowed down by TCP
    /// instead of growing memory.
    pub async fn read_ahead(&mut self) -> io::Result<()> {
        loop {
            if self.eof {
                return Ok(());
            }
            if !self.make_room() {
                if self.find_newline(self.start).is_none() {
                    return Ok(());
                }
                return futures_lite::future::pending().await;
            }
            self.fill().await?;
        }
    }
}

impl<R: AsyncRead + Unpin> Framer<R> {
    /// Returns once the stream has ended with no whole line left to hand out;
    /// pending for ever while one is buffered. It reads only until it finds a
    /// line, so a large input is not pulled into memory ahead of its turns.
    pub async fn wait_for_end(&mut self) -> io::Result<()> {
        loop {
            if self.find_newline(self.start).is_some() || !self.make_room() {
                return futures_lite::future::pending().await;
            }
            if self.eof {
                if self.start == self.end || self.skipping {
                    return Ok(());
                }
                // A last line without its newline is still an answer.
                return futures_lite::future::pending().await;
            }
            self.fill().await?;
        }
    }
}

/// Position of the first `needle` in `hay`, a machine word at a time: the
/// size build is not vectorised, and a byte loop is much slower there
/// (docs/footprint.md).
pub fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8])) ^ pattern;
        if word.wrapping_sub(LO) & !word & HI != 0 {
            break;
        }
        offset += 8;
    }
    hay[offset..].iter().position(|&b| b == needle).map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    fn frames(input: &[u8], max_line: usize) -> Vec<Result<String, Frame>> {
        let mut framer = Framer::new(input, max_line);
        let mut out = Vec::new();
        loop {
            match block_on(framer.next()).unwrap() {
                Frame::Line => out.push(Ok(String::from_utf8_lossy(framer.line()).into_owned())),
                Frame::Eof => return out,
                other => out.push(Err(other)),
            }
        }
    }

    fn line(s: &str) -> Result<String, Frame> {
        Ok(s.to_string())
    }

    #[test]
    fn a_reader_hands_on_what_follows_its_lines() {
        // Begun by another reader; then bytes that are not this reader's.
        let src = &b"ond\nrest\x00\xff"[..];
        let mut framer = Framer::resume(src, 8, b"first\nsec".to_vec());
        assert_eq!(block_on(framer.next()).unwrap(), Frame::Line);
        assert_eq!(framer.line(), b"first");
        assert_eq!(block_on(framer.next()).unwrap(), Frame::Line);
        assert_eq!(framer.line(), b"second");
        // Read ahead or still in the source, nothing is lost.
        let (mut src, mut held) = framer.into_parts();
        block_on(src.read_to_end(&mut held)).unwrap();
        assert_eq!(held, b"rest\x00\xff");
        // Nothing read yet: nothing held.
        let (_, held) = Framer::new(&b"x\n"[..], 8).into_parts();
        assert!(held.is_empty());
    }

    #[test]
    fn hostile_mix_in_one_buffer() {
        // Over-long line, normal lines, CRLF, an empty line, a stray CR, then the
        // off-by-one edges: exactly the limit passes, one more does not.
        let input = b"abcdefghijk\nab\ncd\r\n\n\r\nx\ry\r\nabcde\nabcdef\nabcde\r\nlast";
        assert_eq!(
            frames(input, 5),
            vec![
                Err(Frame::TooLong),
                line("ab"),
                line("cd"),
                line(""),
                line(""),
                line("x\ry"),
                line("abcde"),
                Err(Frame::TooLong),
                line("abcde"),
                line("last"),
            ]
        );
    }

    #[test]
    fn stray_cr_is_kept_inside_a_line() {
        assert_eq!(frames(b"x\ry\n", 10), vec![line("x\ry")]);
        assert_eq!(frames(b"\r\r\n", 10), vec![line("\r")]);
    }

    #[test]
    fn over_long_line_without_newline_is_skipped_to_the_next_newline() {
        let mut input = vec![b'a'; 100];
        input.extend_from_slice(b"aaaa\nok\n");
        assert_eq!(frames(&input, 10), vec![Err(Frame::TooLong), line("ok")]);
    }

    #[test]
    fn invalid_utf8_passes_through_as_bytes() {
        let mut framer = Framer::new(&b"\xff\xfeok\n"[..], 10);
        assert_eq!(block_on(framer.next()).unwrap(), Frame::Line);
        assert_eq!(framer.line(), b"\xff\xfeok");
    }

    #[test]
    fn line_with_newline_only_for_plain_endings() {
        let mut framer = Framer::new(&b"a\nb\r\nc"[..], 10);
        block_on(framer.next()).unwrap();
        assert_eq!(framer.line_with_newline(), Some(&b"a\n"[..]));
        block_on(framer.next()).unwrap();
        assert_eq!(framer.line_with_newline(), None);
        block_on(framer.next()).unwrap();
        assert_eq!(framer.line(), b"c");
        assert_eq!(framer.line_with_newline(), None);
    }

    #[test]
    fn a_line_put_back_comes_again() {
        let mut framer = Framer::new(&b"one\r\ntwo"[..], 10);
        for want in [&b"one"[..], b"two"] {
            assert_eq!(block_on(framer.next()).unwrap(), Frame::Line);
            framer.put_back();
            assert_eq!(block_on(framer.next()).unwrap(), Frame::Line);
            assert_eq!(framer.line(), want);
        }
        assert_eq!(block_on(framer.next()).unwrap(), Frame::Eof);
    }

    #[test]
    fn empty_stream_is_eof_at_once() {
        assert_eq!(frames(b"", 10), vec![]);
    }

    #[test]
    fn memory_stays_near_the_limit() {
        let input = vec![b'x'; 5 << 20];
        let mut framer = Framer::new(&input[..], 1000);
        assert_eq!(block_on(framer.next()).unwrap(), Frame::TooLong);
        assert!(framer.allocated() <= 1003, "{}", framer.allocated());
        assert_eq!(block_on(framer.next()).unwrap(), Frame::Eof);
        assert!(framer.allocated() <= 1003);
    }

    #[test]
    fn a_buffer_grown_by_a_large_line_is_given_back() {
        let mut input = vec![b'x'; 600 * 1024];
        input.push(b'\n');
        // The next line comes in a read of its own, as it would on a socket.
        let mut framer = Framer::new(futures_lite::io::BufReader::new(&input[..]), 1 << 20);
        assert_eq!(block_on(framer.next()).unwrap(), Frame::Line);
        assert!(framer.allocated() >= 600 * 1024);
        assert_eq!(block_on(framer.next()).unwrap(), Frame::Eof);
        assert!(framer.allocated() <= INITIAL_BUFFER, "{}", framer.allocated());
    }

    #[test]
    fn watch_queues_lines_and_stops_at_eof() {
        let mut framer = Framer::new(&b"one\ntwo\n"[..], 10);
        block_on(framer.read_ahead()).unwrap();
        assert_eq!(frames_of(&mut framer), vec!["one", "two"]);
    }

    fn frames_of<R: AsyncRead + Unpin>(framer: &mut Framer<R>) -> Vec<String> {
        let mut out = Vec::new();
        while let Frame::Line = block_on(framer.next()).unwrap() {
            out.push(String::from_utf8_lossy(framer.line()).into_owned());
        }
        out
    }

    #[test]
    fn ended_waits_while_a_line_is_buffered() {
        let mut framer = Framer::new(&b"last\n"[..], 10);
        assert!(futures_lite::future::block_on(futures_lite::future::poll_once(
            framer.wait_for_end()
        ))
        .is_none());
        assert_eq!(block_on(framer.next()).unwrap(), Frame::Line);
        assert!(block_on(framer.wait_for_end()).is_ok());
        // A half line at the end is still something to send.
        let mut framer = Framer::new(&b"half"[..], 10);
        assert!(block_on(futures_lite::future::poll_once(framer.wait_for_end())).is_none());
    }

    #[test]
    fn find_byte_agrees_with_a_plain_search() {
        let hay: Vec<u8> = (0..200u32).map(|i| (i * 7 % 251) as u8).collect();
        for needle in [0u8, 10, 128, 255, 7] {
            for start in 0..20 {
                let want = hay[start..].iter().position(|&b| b == needle);
                assert_eq!(find_byte(needle, &hay[start..]), want);
            }
        }
    }
}
