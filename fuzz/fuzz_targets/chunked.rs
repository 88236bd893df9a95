//! A reader for the fuzz targets that splits a stream into reads of the
//! sizes the fuzzer chose, so that framing is tried at every split.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::io::AsyncRead;

/// Hands out the stream in reads whose sizes cycle through `sizes`.
pub struct Chunked<'a> {
    pub data: &'a [u8],
    pub sizes: &'a [u8],
    pub reads: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let size = match self.sizes {
            [] => usize::MAX,
            sizes => usize::from(sizes[self.reads % sizes.len()]).max(1),
        };
        self.reads += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(n))
    }
}
