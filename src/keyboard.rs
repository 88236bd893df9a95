//! The keyboard: stdin as one async stream for the whole program's life.

use std::fs::File;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use blocking::Unblock;
use futures_lite::io::{AssertAsync, AsyncRead};

/// The keyboard: stdin as an async stream, opened once for the whole program.
///
/// A terminal or a pipe is read on a thread of its own (`blocking::Unblock`),
/// so that waiting for a line never stops the connection from being watched.
/// A regular file (`smolchat client h 2000 <questions.txt`) is read in place:
/// a read from it never blocks, and the hand-off to a thread and back would
/// cost context switches on every message (docs/footprint.md).
#[derive(Debug)]
pub enum Keyboard {
    /// Stdin is a regular file.
    File(AssertAsync<File>),
    /// Stdin is a terminal, a pipe or a socket.
    Live(Unblock<StickyStdin>),
}

impl Keyboard {
    /// Opens stdin, reading up to `read_ahead` bytes ahead when it is live.
    pub fn open(read_ahead: usize) -> Keyboard {
        match stdin_as_file() {
            Some(file) if file.metadata().is_ok_and(|m| m.is_file()) => {
                Keyboard::File(AssertAsync::new(file))
            }
            _ => Keyboard::Live(Unblock::with_capacity(read_ahead, StickyStdin::default())),
        }
    }
}

/// A second handle to stdin, to look at and perhaps read in place.
#[cfg(unix)]
fn stdin_as_file() -> Option<File> {
    use std::os::fd::AsFd;
    io::stdin().as_fd().try_clone_to_owned().ok().map(File::from)
}

/// A second handle to stdin, to look at and perhaps read in place.
#[cfg(windows)]
fn stdin_as_file() -> Option<File> {
    use std::os::windows::io::AsHandle;
    io::stdin().as_handle().try_clone_to_owned().ok().map(File::from)
}

/// Elsewhere stdin is always read on a thread.
#[cfg(not(any(unix, windows)))]
fn stdin_as_file() -> Option<File> {
    None
}

impl AsyncRead for Keyboard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Keyboard::File(file) => Pin::new(file).poll_read(cx, buf),
            Keyboard::Live(live) => Pin::new(live).poll_read(cx, buf),
        }
    }
}

/// Stdin whose end, once read, stays the end. At a terminal Ctrl-D is one
/// read of zero bytes, and `blocking::Unblock` reports an end only when the
/// first read of a fill returns zero: a Ctrl-D that follows a line within the
/// same fill would otherwise be lost.
#[derive(Debug, Default)]
pub struct StickyStdin {
    ended: bool,
}

impl Read for StickyStdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        let n = loop {
            match io::stdin().read(buf) {
                // Someone else made stdin non-blocking (the mode belongs to
                // the shared file description): wait for input as a blocking
                // read would, on this thread of its own.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable()?,
                r => break r?,
            }
        };
        self.ended = n == 0 && !buf.is_empty();
        Ok(n)
    }
}

/// Waits until stdin has input or has ended.
#[cfg(unix)]
fn wait_readable() -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    let stdin = io::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    match poll(&mut fds, None) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Only Unix has non-blocking file descriptors.
#[cfg(not(unix))]
fn wait_readable() -> io::Result<()> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Checks that stdin can be read at all, so that a server whose keyboard is
/// a directory or closed says so before it listens, instead of at the first
/// client's turn. Run it before anything opens a file: a closed stdin's
/// number would be given to the next file opened.
#[cfg(unix)]
pub fn check_readable() -> io::Result<()> {
    use rustix::fs::{fcntl_getfl, OFlags};
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let file = match io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BADF.raw_os_error()) => {
            return Err(io::Error::new(io::ErrorKind::NotFound, "stdin is closed"));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "stdin is a directory"));
    }
    let mode = fcntl_getfl(&file)?.intersection(OFlags::RWMODE);
    if mode == OFlags::WRONLY {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "stdin is open for writing only"));
    }
    // The Rust runtime opens a closed stdin as /dev/null for reading and
    // writing before main; a shell's `</dev/null` opens it for reading only.
    let null = std::fs::metadata("/dev/null")
        .is_ok_and(|null| meta.file_type().is_char_device() && meta.rdev() == null.rdev());
    if null && mode == OFlags::RDWR {
        return Err(io::Error::new(io::ErrorKind::NotFound, "stdin is closed"));
    }
    Ok(())
}

/// Elsewhere the first read tells.
#[cfg(not(unix))]
pub fn check_readable() -> io::Result<()> {
    Ok(())
}
