//! Test support shared by the in-memory tests of several modules.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::io::AsyncRead;

/// A piper pipe's reader that is ready whenever a byte is in the pipe.
///
/// piper's reader answers `Pending` on a random share of polls (about one in
/// a hundred) even with bytes waiting, to be fair to other tasks. A keyboard
/// is polled once, without waiting, to take what was typed ahead; over a
/// plain piper reader those polls would find nothing now and then, and the
/// tests would depend on chance.
pub(crate) struct TypedAhead(pub(crate) piper::Reader);

impl AsyncRead for TypedAhead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match Pin::new(&mut self.0).poll_read(cx, buf) {
                Poll::Pending if !self.0.is_empty() => continue,
                polled => return polled,
            }
        }
    }
}
