//! The baseline the benchmark measures smolchat against: the same turns with
//! nothing but std, blocking, one thread: the plainest program that behaves
//! alike on the benchmark's path.
//!
//! `baseline server [--bind ADDR] PORT` and `baseline client HOST PORT`, like
//! smolchat: `\n` lines of at most 1 MiB (a `\r` before the `\n` dropped),
//! `EXIT` ends a session, control characters from the peer are escaped, each
//! message goes out in one write with `TCP_NODELAY`, and a close sends FIN
//! first and reads what is left for at most 0.5 s. The server ends when its
//! input has ended and a session is over. No prompt, label or timeout.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const MAX_LINE: usize = 1 << 20;

/// `\n` lines from a reader into a buffer that grows to `MAX_LINE` at most.
struct Lines<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Lines<R> {
    fn new(src: R) -> Self {
        Lines { src, buf: vec![0; 4096], start: 0, end: 0, eof: false }
    }

    /// The next line without its ending; `None` at the end of the stream.
    fn next(&mut self) -> io::Result<Option<&[u8]>> {
        // Bytes after `start` known to hold no `\n`; a fill may move `start`.
        let mut scanned = 0;
        loop {
            let from = self.start + scanned;
            if let Some(i) = find(&self.buf[from..self.end], |b| b == b'\n') {
                let line = self.start..from + i;
                self.start = from + i + 1;
                let line = &self.buf[line];
                return Ok(Some(line.strip_suffix(b"\r").unwrap_or(line)));
            }
            if self.eof {
                let line = self.start..self.end;
                self.start = self.end;
                return Ok((!line.is_empty()).then(|| &self.buf[line]));
            }
            scanned = self.end - self.start;
            if self.fill()? == 0 && !self.eof {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
        }
    }

    /// Reads once more, making room first; 0 when the buffer is full.
    fn fill(&mut self) -> io::Result<usize> {
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                if self.buf.len() > MAX_LINE {
                    return Ok(0);
                }
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self.src.read(&mut self.buf[self.end..])?;
        self.end += n;
        self.eof = n == 0;
        Ok(n)
    }

    /// Whether the stream has ended with nothing left; may read ahead.
    fn at_end(&mut self) -> io::Result<bool> {
        if self.start == self.end && !self.eof {
            self.fill()?;
        }
        Ok(self.start == self.end && self.eof)
    }
}

/// Runs the baseline with the arguments after the program name.
pub fn main(args: &[String]) -> ExitCode {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args[..] {
        ["server", port] => serve("0.0.0.0", port),
        ["server", "--bind", ip, port] => serve(ip, port),
        ["client", host, port] => client(host, port),
        _ => {
            eprintln!("usage: baseline server [--bind ADDR] PORT | baseline client HOST PORT");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smolchat: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(ip: &str, port: &str) -> io::Result<()> {
    let listener = TcpListener::bind(format!("{ip}:{port}"))?;
    eprintln!("smolchat: listening on {}", listener.local_addr()?);
    let mut keys = Lines::new(io::stdin().lock());
    loop {
        let (socket, addr) = listener.accept()?;
        eprintln!("smolchat: {addr} connected");
        match session(&socket, false, &mut keys) {
            Ok(()) => eprintln!("smolchat: {addr} left"),
            Err(e) => eprintln!("smolchat: error: connection with {addr}: {e}"),
        }
        close(&socket);
        if keys.at_end()? {
            return Ok(());
        }
    }
}

fn client(host: &str, port: &str) -> io::Result<()> {
    let socket = TcpStream::connect(format!("{host}:{port}"))?;
    eprintln!("smolchat: connected to {}", socket.peer_addr()?);
    let mut keys = Lines::new(io::stdin().lock());
    let outcome = session(&socket, true, &mut keys);
    close(&socket);
    outcome
}

/// Turns until `EXIT`, the end of the keyboard or the peer's close.
fn session(socket: &TcpStream, speak_first: bool, keys: &mut Lines<impl Read>) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let mut peer = Lines::new(socket);
    let mut out = io::stdout().lock();
    let (mut message, mut shown) = (Vec::new(), Vec::new());
    let mut my_turn = speak_first;
    loop {
        if my_turn {
            match keys.next()? {
                None => return Ok(()),
                Some(b"EXIT") => return Ok(()),
                Some(line) => {
                    message.clear();
                    message.extend_from_slice(line);
                    message.push(b'\n');
                    (&*socket).write_all(&message)?;
                }
            }
        } else {
            let Some(line) = peer.next()? else { return Ok(()) };
            shown.clear();
            // C0 controls but TAB, DEL, and 0xC2, which leads every C1 control.
            let control = |b: u8| (b < 0x20 && b != b'\t') | (b == 0x7f) | (b == 0xc2);
            if find(line, control).is_none() && std::str::from_utf8(line).is_ok() {
                shown.extend_from_slice(line);
            } else {
                escape(line, &mut shown);
            }
            shown.push(b'\n');
            out.write_all(&shown)?;
        }
        my_turn = !my_turn;
    }
}

/// Where the first byte that `hit`s is, 64 bytes at a time: a loop with no
/// early exit inside a chunk is one the compiler vectorises.
fn find(hay: &[u8], hit: impl Fn(u8) -> bool) -> Option<usize> {
    let mut at = 0;
    for chunk in hay.chunks(64) {
        if chunk.iter().fold(false, |found, &b| found | hit(b)) {
            return chunk.iter().position(|&b| hit(b)).map(|i| at + i);
        }
        at += chunk.len();
    }
    None
}

/// Control characters in caret or `\u{..}` form, invalid UTF-8 as U+FFFD.
fn escape(line: &[u8], into: &mut Vec<u8>) {
    for c in String::from_utf8_lossy(line).chars() {
        match c {
            '\t' => into.push(b'\t'),
            '\x7f' => into.extend_from_slice(b"^?"),
            c if (c as u32) < 0x20 => into.extend_from_slice(&[b'^', c as u8 + 64]),
            c if c.is_control() => {
                into.extend_from_slice(format!("\\u{{{:x}}}", c as u32).as_bytes())
            }
            c => into.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

/// FIN first, then read and drop what the peer still sends until it closes
/// or is silent for 0.5 s.
fn close(socket: &TcpStream) {
    let _ = socket.shutdown(Shutdown::Write);
    let _ = socket.set_read_timeout(Some(Duration::from_millis(500)));
    let mut scratch = [0u8; 4096];
    while let Ok(1..) = (&*socket).read(&mut scratch) {}
}
