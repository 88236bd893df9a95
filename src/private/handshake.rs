//! The handshake of a private chat, version 2: the client's readable hello
//! and the server's answer, then SPAKE2 over the code, keys for each
//! direction, and key confirmation, all in readable lines.
//!
//! ```text
//! client → server   smolchat-private/2 hello
//! server → client   smolchat-private/2 ready                (or busy)
//! client → server   smolchat-private/2 HEX(A)               A: SPAKE2 message, 33 bytes
//! server → client   smolchat-private/2 HEX(B) HEX(Cs)       B: 33 bytes, Cs: 32 bytes
//! client → server   smolchat-private/2 ok HEX(Cc)           Cc: 32 bytes
//!              or   smolchat-private/2 wrong-code
//! ```
//!
//! The hello comes first so that the client knows what it reached before a
//! person types the code: a private server answers `ready` at once (`busy`
//! while it chats with someone else), a plain server never answers it. The
//! server sends nothing before it has read the client's first line; a line
//! that is not the hello gets [`PLAIN_REPLY`] and the connection is closed.
//!
//! The client is SPAKE2's side A, the server side B, with the identities
//! [`ID_CLIENT`] and [`ID_SERVER`] and the normalised code as password. From
//! the shared key K, HKDF-SHA256 (salt [`VERSION`]) derives five 32-byte
//! values, each under its own label: the two confirmations, a key per
//! direction, and the key of the direct path. The client checks Cs before it
//! sends anything of its own; the server checks Cc before the chat starts.
//!
//! Every line is read by one [`Framer`] of [`MAX_LINE`] bytes; what it read
//! past the last line is handed on to the record reader
//! ([`Secrets::early`]). Every wait goes through [`within`], by a deadline
//! its caller gives.

use std::io;
use std::time::{Duration, Instant};

use futures_lite::io::{AsyncRead, AsyncWrite};
use hkdf::Hkdf;
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};
use subtle::ConstantTimeEq;

use super::record::{Opener, Sealer};
use crate::wire::framer::{Frame, Framer};
use crate::wire::{self, hex, unhex, within};

/// The protocol and its version, the first word of every handshake line.
pub const VERSION: &str = "smolchat-private/2";

/// SPAKE2 identity of the client (side A).
pub const ID_CLIENT: &[u8] = b"smolchat-private/2 client";
/// SPAKE2 identity of the server (side B).
pub const ID_SERVER: &[u8] = b"smolchat-private/2 server";

/// The client's first line: readable, so that a plain server shows what it
/// met.
pub const HELLO: &str = "smolchat-private/2 hello\n";

/// A private server's answer to the hello: ask the person for the code.
pub const READY: &str = "smolchat-private/2 ready\n";

/// A private server's answer to the hello while it chats with someone else.
pub const BUSY: &str = "smolchat-private/2 busy\n";

/// What a plain client (nc) is told before it is closed.
pub const PLAIN_REPLY: &str =
    "smolchat: this chat is private: connect with 'smolchat client --private' and the code\n";

/// The longest handshake line either side reads.
pub const MAX_LINE: usize = 256;

/// How long a server waits for a client's first line, from the connection
/// on (the protocol's; `wire::deadline` shortens it in tests).
pub const FIRST_LINE: Duration = Duration::from_secs(10);

/// How long a direct server waits for the code after `ready`: a person
/// types it meanwhile.
pub const CODE_WAIT: Duration = Duration::from_secs(60);

/// How long either side waits for each other line of the handshake.
pub const STEP: Duration = Duration::from_secs(10);

/// The keys of a session, for one side.
pub struct Secrets {
    /// Seals what this side sends.
    pub seal: Sealer,
    /// Opens what the peer sends.
    pub open: Opener,
    /// Bytes the peer sent after the handshake, read with it.
    pub early: Vec<u8>,
    /// The key both sides prove on a direct link (`direct.rs`).
    pub direct: [u8; 32],
}

/// What a side waited for when its deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaited {
    /// The server: the client's first line.
    Hello,
    /// The client: the server's answer to its hello.
    Answer,
    /// The server: the client's SPAKE2 message, after `ready`.
    Code,
    /// The client: the server's SPAKE2 message and confirmation.
    Reply,
}

/// How a handshake failed.
#[derive(Debug)]
pub enum Failure {
    /// The two sides have different codes. On the server it is a guess:
    /// every ending after the server's reply is one, since the client could
    /// then tell whether its code was right.
    WrongCode,
    /// The peer is not a private smolchat: a plain server (it answered the
    /// hello with something else), or a plain client (which the server has
    /// told so).
    NotPrivate,
    /// The server chats with someone else (`busy`).
    Busy,
    /// The peer closed the connection before the handshake ended.
    Closed,
    /// Nothing came in time.
    Late(Awaited),
    /// The connection failed.
    Io(io::Error),
}

impl Failure {
    /// The failure in words, for a server's status line about its client.
    pub fn describe(&self) -> String {
        match self {
            Failure::WrongCode => "wrong code".into(),
            Failure::NotPrivate => "not a private smolchat client; told so and closed".into(),
            Failure::Busy => "busy".into(),
            Failure::Closed => "left during the private handshake".into(),
            Failure::Late(Awaited::Hello) => format!(
                "sent no private hello within {} s",
                crate::wire::error::seconds_text(FIRST_LINE)
            ),
            Failure::Late(Awaited::Code) => {
                format!("sent no code within {} s", crate::wire::error::seconds_text(CODE_WAIT))
            }
            Failure::Late(_) => "did not answer in time".into(),
            Failure::Io(e) => crate::wire::error::describe(e),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

/// The client's first step: sends the hello and reads the answer by
/// `deadline`. `Ok` on `ready`: now the code may be asked. `Busy`, or
/// `NotPrivate` for any other line, `Closed`, `Late(Answer)`.
pub async fn hello<R, W>(
    lines: &mut Framer<R>,
    writer: &mut W,
    deadline: Instant,
) -> Result<(), Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    send(writer, HELLO, deadline, Awaited::Answer).await?;
    answer(lines, deadline).await
}

/// The server's answer to the hello: `ready`, or what else it was.
async fn answer<R: AsyncRead + Unpin>(
    lines: &mut Framer<R>,
    deadline: Instant,
) -> Result<(), Failure> {
    match read_line(lines, deadline, Awaited::Answer).await?.as_deref() {
        Some(line) if line == READY.trim_end() => Ok(()),
        Some(line) if line == BUSY.trim_end() => Err(Failure::Busy),
        Some(_) => Err(Failure::NotPrivate),
        None => Err(Failure::Closed),
    }
}

/// The client's side after `ready`: sends its SPAKE2 message, checks the
/// server's confirmation within `step`, then confirms in turn. Nothing of
/// the chat is sent before it returns `Ok`. Through a relay, where the code
/// was known before the room was joined (`with_hello`), the hello goes
/// first in the same write, and its answer is read here: the server, which
/// gives a joiner only a moment, has both lines at once. One function for
/// both, so that the binary holds one copy of the client's handshake.
pub async fn client<R, W>(
    mut lines: Framer<R>,
    writer: &mut W,
    code: &str,
    step: Duration,
    with_hello: bool,
) -> Result<Secrets, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (spake, a) = Spake2::<Ed25519Group>::start_a(
        &Password::new(code.as_bytes()),
        &Identity::new(ID_CLIENT),
        &Identity::new(ID_SERVER),
    );
    let deadline = Instant::now() + step;
    let (hello, awaited) = match with_hello {
        true => (HELLO, Awaited::Answer),
        false => ("", Awaited::Reply),
    };
    send(writer, &format!("{hello}{VERSION} {}\n", hex(&a)), deadline, awaited).await?;
    if with_hello {
        answer(&mut lines, deadline).await?;
    }

    // The server's reply, and this side's confirmation.
    let deadline = Instant::now() + step;
    let line = read_line(&mut lines, deadline, Awaited::Reply).await?.ok_or(Failure::Closed)?;
    let words: Vec<&str> = line.split(' ').collect();
    let (b, confirm) = match words[..] {
        [VERSION, b, confirm] => match (unhex(b), unhex(confirm)) {
            (Some(b), Some(confirm)) if confirm.len() == 32 => (b, confirm),
            _ => return Err(Failure::NotPrivate),
        },
        _ => return Err(Failure::NotPrivate),
    };
    let key = spake.finish(&b).map_err(|_| Failure::NotPrivate)?;
    let derived = Derived::new(&key);
    if !same(&confirm, &derived.server_confirm) {
        // Best effort: the server learns at once instead of at the deadline.
        let _ = send(writer, &format!("{VERSION} wrong-code\n"), deadline, Awaited::Reply).await;
        return Err(Failure::WrongCode);
    }
    let line = format!("{VERSION} ok {}\n", hex(&derived.client_confirm));
    send(writer, &line, deadline, Awaited::Reply).await?;
    Ok(derived.secrets(lines, &derived.client_to_server, &derived.server_to_client))
}

/// The server's first step: reads the client's first line by `deadline`.
/// A hello is answered `ready` at once (`Ok`); anything else gets
/// [`PLAIN_REPLY`] (`NotPrivate`).
pub async fn greet<R, W>(
    lines: &mut Framer<R>,
    writer: &mut W,
    deadline: Instant,
) -> Result<(), Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    first_line(lines, writer, deadline, READY).await
}

/// What a server that chats with someone else does with a new connection:
/// reads its first line by `deadline`, answers a hello `busy` and anything
/// else [`PLAIN_REPLY`]. `Ok` when the hello was answered.
pub async fn turn_away<R, W>(
    lines: &mut Framer<R>,
    writer: &mut W,
    deadline: Instant,
) -> Result<(), Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    first_line(lines, writer, deadline, BUSY).await
}

/// Reads a first line; a hello is answered `answer`.
async fn first_line<R, W>(
    lines: &mut Framer<R>,
    writer: &mut W,
    deadline: Instant,
    answer: &str,
) -> Result<(), Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match read_line(lines, deadline, Awaited::Hello).await {
        Ok(Some(line)) if line == HELLO.trim_end() => {
            send(writer, answer, deadline, Awaited::Hello).await
        }
        Ok(Some(_)) | Err(Failure::NotPrivate) => Err(tell_plain(writer, deadline).await),
        Ok(None) => Err(Failure::Closed),
        Err(e) => Err(e),
    }
}

/// The server's side after `ready`: the client's SPAKE2 message by
/// `code_by`, the reply, and the client's confirmation within `step`. A
/// `WrongCode` is one guess at the code; every other failure is not.
pub async fn server<R, W>(
    mut lines: Framer<R>,
    writer: &mut W,
    code: &str,
    code_by: Instant,
    step: Duration,
) -> Result<Secrets, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let line = read_line(&mut lines, code_by, Awaited::Code).await?.ok_or(Failure::Closed)?;
    let a = match line.split(' ').collect::<Vec<_>>()[..] {
        [VERSION, a] => unhex(a),
        _ => None,
    };
    let Some(a) = a else { return Err(tell_plain(writer, code_by).await) };
    let (spake, b) = Spake2::<Ed25519Group>::start_b(
        &Password::new(code.as_bytes()),
        &Identity::new(ID_CLIENT),
        &Identity::new(ID_SERVER),
    );
    // A message that is not a point is not a guess at the code.
    let key = spake.finish(&a).map_err(|_| Failure::NotPrivate)?;
    let derived = Derived::new(&key);
    let reply = format!("{VERSION} {} {}\n", hex(&b), hex(&derived.server_confirm));
    let deadline = Instant::now() + step;
    send(writer, &reply, deadline, Awaited::Code).await?;

    // From here on the client can tell whether its code was right, so any
    // ending but a good confirmation counts as a guess: a client that goes
    // silent or cuts the connection has learnt as much as one that says
    // `wrong-code`.
    let confirmed = match read_line(&mut lines, deadline, Awaited::Code).await {
        Ok(Some(line)) => match line.strip_prefix(VERSION).and_then(|l| l.strip_prefix(" ok ")) {
            Some(confirm) => unhex(confirm).is_some_and(|c| same(&c, &derived.client_confirm)),
            None => false,
        },
        _ => false,
    };
    if !confirmed {
        return Err(Failure::WrongCode);
    }
    Ok(derived.secrets(lines, &derived.server_to_client, &derived.client_to_server))
}

/// Tells a plain client what it met; the answer is always `NotPrivate`.
async fn tell_plain<W: AsyncWrite + Unpin>(writer: &mut W, deadline: Instant) -> Failure {
    match send(writer, PLAIN_REPLY, deadline, Awaited::Hello).await {
        Ok(()) => Failure::NotPrivate,
        Err(e) => e,
    }
}

/// The values HKDF derives from the SPAKE2 key.
struct Derived {
    server_confirm: [u8; 32],
    client_confirm: [u8; 32],
    client_to_server: [u8; 32],
    server_to_client: [u8; 32],
    direct: [u8; 32],
}

impl Derived {
    fn new(key: &[u8]) -> Derived {
        let hkdf = Hkdf::<Sha256>::new(Some(VERSION.as_bytes()), key);
        let expand = |label: &str| {
            let mut out = [0u8; 32];
            hkdf.expand(label.as_bytes(), &mut out)
                .expect("HKDF-SHA256 gives up to 8160 bytes; 32 are asked");
            out
        };
        Derived {
            server_confirm: expand("smolchat-private/2 server confirm"),
            client_confirm: expand("smolchat-private/2 client confirm"),
            client_to_server: expand("smolchat-private/2 client to server"),
            server_to_client: expand("smolchat-private/2 server to client"),
            direct: expand("smolchat-private/2 direct"),
        }
    }

    /// A side's keys: it seals with `seal`, opens with `open`, and keeps
    /// what `lines` read past the handshake.
    fn secrets<R>(&self, lines: Framer<R>, seal: &[u8; 32], open: &[u8; 32]) -> Secrets {
        let (_, early) = lines.into_parts();
        Secrets { seal: Sealer::new(seal), open: Opener::new(open), early, direct: self.direct }
    }
}

/// Compares in constant time, so that timing shows nothing of where two
/// confirmations differ.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Writes `line` by `deadline`; late is `Late(awaited)`, for the step the
/// send belongs to.
async fn send<W: AsyncWrite + Unpin>(
    writer: &mut W,
    line: &str,
    deadline: Instant,
    awaited: Awaited,
) -> Result<(), Failure> {
    let sent = within(deadline, wire::send(writer, line.as_bytes())).await;
    sent.ok_or(Failure::Late(awaited))?.map_err(Failure::Io)
}

/// Reads one line by `deadline`. `None` at the end of the stream;
/// `NotPrivate` when the line is too long or not text.
async fn read_line<R: AsyncRead + Unpin>(
    lines: &mut Framer<R>,
    deadline: Instant,
    awaited: Awaited,
) -> Result<Option<String>, Failure> {
    match within(deadline, lines.next()).await.ok_or(Failure::Late(awaited))?? {
        Frame::Line => match std::str::from_utf8(lines.line()) {
            Ok(line) => Ok(Some(line.to_string())),
            Err(_) => Err(Failure::NotPrivate),
        },
        Frame::TooLong => Err(Failure::NotPrivate),
        Frame::Eof => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_compares_whole_values() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
    }
}
