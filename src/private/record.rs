//! The record layer of a private chat: the byte stream cut into sealed,
//! numbered records, read and written through wrappers that the framer and
//! the turn loop use like the bare connection.
//!
//! A record on the wire is
//!
//! ```text
//! length: u32, big-endian   n = 1 + body + 16, at most 16,401
//! sealed: n bytes           ChaCha20-Poly1305(type ‖ body) ‖ tag (16 bytes)
//! ```
//!
//! with the 4 length bytes as associated data and the nonce `0u32 ‖ counter`
//! (big-endian), the counter counting this direction's records from 0. A
//! replayed, dropped, reordered or altered record therefore fails to open.
//! The type is [`MESSAGE`] (chat bytes), [`CLOSE`] (an empty body: the
//! sender ended the session on purpose) or, before a relayed chat begins,
//! [`DIRECT`] (its word about the direct path).

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::wire::HangUp;

/// A record of chat bytes.
pub const MESSAGE: u8 = 0;
/// The authenticated end of a session.
pub const CLOSE: u8 = 1;
/// A relayed chat's word about the direct path, before the chat begins
/// (`direct.rs`); never a part of the chat's byte stream.
pub const DIRECT: u8 = 2;

/// The most chat bytes one record carries; longer writes take several.
pub const MAX_BODY: usize = 16 * 1024;

/// Bytes a record adds to its body: the length, the type and the tag.
pub const OVERHEAD: usize = 4 + 1 + TAG;

const TAG: usize = 16;

/// The nonce of the `counter`th record of a direction.
fn nonce(counter: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(nonce)
}

/// Seals one direction's records.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl Sealer {
    /// A sealer with this direction's 32-byte key.
    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer { cipher: ChaCha20Poly1305::new(Key::from_slice(key)), counter: 0 }
    }

    /// Appends the record of `kind` holding `body` (at most [`MAX_BODY`]) to `out`.
    pub fn seal(&mut self, kind: u8, body: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let start = out.len();
        let sealed = 1 + body.len() + TAG;
        let length = u32::try_from(sealed).map_err(|_| invalid("record too long"))?;
        out.extend_from_slice(&length.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(body);
        let (header, plain) = out[start..].split_at_mut(4);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(self.counter), header, plain)
            .map_err(|_| invalid("cannot seal a record"))?;
        out.extend_from_slice(&tag);
        self.counter = self.counter.checked_add(1).ok_or_else(|| invalid("too many records"))?;
        Ok(())
    }
}

/// Opens one direction's records, in order.
pub struct Opener {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

/// Why a record could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its length is above what this side takes: refused before it is read.
    TooLong,
    /// Its length cannot be a record's.
    Malformed,
    /// It failed authentication: altered, replayed, reordered or from
    /// someone without the key.
    Forged,
}

impl Opener {
    /// An opener with this direction's 32-byte key.
    pub fn new(key: &[u8; 32]) -> Opener {
        Opener { cipher: ChaCha20Poly1305::new(Key::from_slice(key)), counter: 0 }
    }

    /// The length of the record starting at `header`, when it is acceptable
    /// for bodies of at most `max_body` bytes.
    pub fn length(header: [u8; 4], max_body: usize) -> Result<usize, Refusal> {
        let sealed = u32::from_be_bytes(header) as usize;
        if sealed < 1 + TAG {
            Err(Refusal::Malformed)
        } else if sealed - 1 - TAG > max_body {
            Err(Refusal::TooLong)
        } else {
            Ok(sealed)
        }
    }

    /// Opens the whole record `record` (length included) in place; returns
    /// its type and where its body now lies in plain text.
    pub fn open(&mut self, record: &mut [u8]) -> Result<(u8, Range<usize>), Refusal> {
        if record.len() < OVERHEAD {
            return Err(Refusal::Malformed);
        }
        let (header, rest) = record.split_at_mut(4);
        if u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize != rest.len() {
            return Err(Refusal::Malformed);
        }
        let (plain, tag) = rest.split_at_mut(rest.len() - TAG);
        let tag = Tag::clone_from_slice(tag);
        self.cipher
            .decrypt_in_place_detached(&nonce(self.counter), header, plain, &tag)
            .map_err(|_| Refusal::Forged)?;
        self.counter = self.counter.checked_add(1).ok_or(Refusal::Forged)?;
        let kind = plain[0];
        let body = 5..4 + plain.len();
        match kind {
            MESSAGE | DIRECT => Ok((kind, body)),
            CLOSE if body.is_empty() => Ok((kind, body)),
            _ => Err(Refusal::Malformed),
        }
    }
}

/// The peer's records as a plain byte stream of their bodies.
///
/// It reads as much as the connection has, opens each whole record in its
/// buffer, and hands out the body. It ends (`Ok(0)`) only at a close
/// record; the connection ending without one is an error, and so is every
/// record that does not open: nothing of such a record is ever handed out.
pub struct RecordReader<R> {
    inner: R,
    opener: Opener,
    /// The largest body taken.
    max_body: usize,
    /// Received bytes; `buf[start..end]` not yet opened.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The opened body not yet handed out, in `buf`.
    plain: Range<usize>,
    closed: bool,
    /// The error reported, the same on every later read.
    failed: Option<(io::ErrorKind, String)>,
}

impl<R> RecordReader<R> {
    /// Reads records from `inner`, taking bodies of lines of up to `max_line`
    /// bytes; `early` holds bytes already read after the handshake.
    pub fn new(inner: R, opener: Opener, max_line: usize, early: &[u8]) -> RecordReader<R> {
        // A line of max_line bytes with its `\r\n` fits in one record.
        let max_body = max_line.saturating_add(2).min(MAX_BODY);
        let mut buf = vec![0u8; (4 * 1024).max(early.len())];
        buf[..early.len()].copy_from_slice(early);
        RecordReader {
            inner,
            opener,
            max_body,
            buf,
            start: 0,
            end: early.len(),
            plain: 0..0,
            closed: false,
            failed: None,
        }
    }

    /// Takes note of `error`, for every later read too.
    fn fail(&mut self, error: io::Error) -> io::Error {
        self.failed = Some((error.kind(), error.to_string()));
        error
    }

    /// Opens the next whole record in the buffer, if there is one.
    fn open_next(&mut self) -> Result<bool, Refusal> {
        let held = &self.buf[self.start..self.end];
        if held.len() < 4 {
            return Ok(false);
        }
        let header = [held[0], held[1], held[2], held[3]];
        let sealed = Opener::length(header, self.max_body)?;
        let size = 4 + sealed;
        if held.len() < size {
            // Make room for the whole record, keeping what is held.
            if self.buf.len() - self.start < size {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.buf.len() < size {
                    self.buf.resize(size, 0);
                }
            }
            return Ok(false);
        }
        let record = self.start..self.start + size;
        let (kind, body) = self.opener.open(&mut self.buf[record.clone()])?;
        self.start = record.end;
        if kind == DIRECT {
            // Only before the chat; inside it, a record out of place.
            return Err(Refusal::Malformed);
        }
        if kind == CLOSE {
            self.closed = true;
        }
        self.plain = record.start + body.start..record.start + body.end;
        Ok(true)
    }
}

/// The words for a record that was refused, for bodies of at most
/// `max_body` bytes.
pub fn refused(refusal: Refusal, max_body: usize) -> io::Error {
    match refusal {
        Refusal::TooLong => invalid(&format!(
            "the peer sent a record longer than {max_body} bytes (the line is too long)"
        )),
        Refusal::Malformed => invalid("the peer sent a malformed record"),
        Refusal::Forged => {
            invalid("a record failed authentication (altered, replayed or reordered)")
        }
    }
}

fn invalid(text: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, text)
}

impl<R: AsyncRead + Unpin> AsyncRead for RecordReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if !this.plain.is_empty() {
                let n = out.len().min(this.plain.len());
                out[..n].copy_from_slice(&this.buf[this.plain.start..this.plain.start + n]);
                this.plain.start += n;
                return Poll::Ready(Ok(n));
            }
            if let Some((kind, why)) = &this.failed {
                return Poll::Ready(Err(io::Error::new(*kind, why.clone())));
            }
            if this.closed || out.is_empty() {
                return Poll::Ready(Ok(0));
            }
            match this.open_next() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(refusal) => {
                    return Poll::Ready(Err(this.fail(refused(refusal, this.max_body))))
                }
            }
            if this.end == this.buf.len() || this.start == this.end {
                // Room at the end: what is held moves to the front.
                this.buf.copy_within(this.start..this.end, 0);
                this.end -= this.start;
                this.start = 0;
            }
            let free = this.end..this.buf.len();
            let n = match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut this.buf[free])) {
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err(e)),
            };
            if n == 0 {
                let lost = match this.start == this.end {
                    true => "the connection was lost before the peer left the chat",
                    false => "the connection was lost in the middle of a message",
                };
                let error = io::Error::new(io::ErrorKind::UnexpectedEof, lost);
                return Poll::Ready(Err(this.fail(error)));
            }
            this.end += n;
        }
    }
}

impl<R: HangUp> HangUp for RecordReader<R> {
    fn hung_up(&self) -> bool {
        self.closed || self.failed.is_some() || self.inner.hung_up()
    }
}

/// Chat bytes to the peer, sealed in records: each write of up to
/// [`MAX_BODY`] bytes is one record, so a line goes out in one piece.
pub struct RecordWriter<W> {
    inner: W,
    sealer: Sealer,
    /// Sealed bytes not yet written; `out[sent..]` is still to go.
    out: Vec<u8>,
    sent: usize,
}

impl<W: AsyncWrite + Unpin> RecordWriter<W> {
    /// Seals what is written to `inner` with `sealer`.
    pub fn new(inner: W, sealer: Sealer) -> RecordWriter<W> {
        RecordWriter { inner, sealer, out: Vec::new(), sent: 0 }
    }

    /// Writes out what is sealed; pending until all of it is written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Sends the close record, which tells the peer the session ended on
    /// purpose, and flushes.
    pub async fn close_record(&mut self) -> io::Result<()> {
        futures_lite::future::poll_fn(|cx| self.poll_drain(cx)).await?;
        self.sealer.seal(CLOSE, &[], &mut self.out)?;
        self.flush().await
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for RecordWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let n = buf.len().min(MAX_BODY);
        this.sealer.seal(MESSAGE, &buf[..n], &mut this.out)?;
        // Start sending at once: the record is taken whether or not the
        // connection has room for it now; a flush finishes it.
        match this.poll_drain(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(n)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests;
