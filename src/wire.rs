//! The wire: what crosses the network, and how long anyone waits for it.
//! The one line framer, the network edge (bind, connect, a clean close), the
//! words of an error, the relay's lines (read by both ends), [`within`], the
//! one way to wait with a deadline, and [`HangUp`], a peer stream's way to
//! say that the peer has gone.
//!
//! Nothing here knows about turns, terminals, private chats or the relay's
//! rooms: every other room of the program stands on this one.

pub mod error;
pub mod framer;
pub mod net;
pub mod relay;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::io::{AsyncWrite, AsyncWriteExt};

/// `work`, unless `deadline` passes first: then `None`, and `work` is
/// dropped. Every bounded wait in smolchat goes through here, so an
/// unbounded one stands out; the caller says in its own words what was late.
///
/// Work that is done at once costs no timer: a send that fits in the
/// socket's buffer, a line already read.
pub async fn within<F: Future>(deadline: Instant, work: F) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    let mut timer = None;
    future::poll_fn(|cx| {
        // The work first: when both are ready, what was done counts.
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(done));
        }
        let timer = timer.get_or_insert_with(|| smol::Timer::at(deadline));
        Pin::new(timer).poll(cx).map(|_| None)
    })
    .await
}

/// Writes `bytes` whole, then flushes: a record writer sends what it sealed
/// only by the flush. Bound it with [`within`] where the peer may stall.
pub async fn send<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// Bytes as lowercase hex digits, as the handshake's lines and the relay's
/// keys carry them.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Lowercase hex digits back to bytes; `None` for anything else, an odd
/// count of digits, or none at all.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let text = text.as_bytes();
    if text.is_empty() || text.len() % 2 != 0 {
        return None;
    }
    text.chunks_exact(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

/// A peer's stream that can tell, without waiting and without reading
/// anything away, that the peer has gone: closed (also behind data not yet
/// read, where the platform shows it) or reset. A stream that cannot tell
/// says no, and the next read finds the end instead.
pub trait HangUp {
    /// Whether the peer has hung up.
    fn hung_up(&self) -> bool {
        false
    }
}

impl<T: HangUp + ?Sized> HangUp for Box<T> {
    fn hung_up(&self) -> bool {
        (**self).hung_up()
    }
}

/// The variable by which the tests' builds shorten the protocol's fixed
/// deadlines (see [`deadline`]).
pub const DEADLINE_DIVISOR: &str = "SMOLCHAT_TEST_DEADLINE_DIVISOR";

/// One of the protocol's fixed deadlines, `normal` long: the private
/// handshake's, the relay's first line, the direct attempt. A build with
/// debug assertions (the one `cargo test` runs) divides it by
/// `SMOLCHAT_TEST_DEADLINE_DIVISOR` when that is set to a whole number, so
/// that a test of what happens at a deadline need not wait it out; any
/// other build reads nothing.
pub fn deadline(normal: Duration) -> Duration {
    #[cfg(debug_assertions)]
    if let Some(divisor) =
        std::env::var(DEADLINE_DIVISOR).ok().and_then(|v| v.parse::<u32>().ok()).filter(|&d| d > 0)
    {
        return normal / divisor;
    }
    normal
}

#[cfg(test)]
mod tests;
