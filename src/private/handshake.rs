//! The handshake of a private chat: SPAKE2 over the code, keys for each
//! direction, and key confirmation, in three readable lines.
//!
//! ```text
//! client → server   smolchat-private/1 HEX(A)\n            A: SPAKE2 message, 33 bytes
//! server → client   smolchat-private/1 HEX(B) HEX(Cs)\n    B: 33 bytes, Cs: 32 bytes
//! client → server   smolchat-private/1 ok HEX(Cc)\n        Cc: 32 bytes
//!              or   smolchat-private/1 wrong-code\n
//! ```
//!
//! The client is SPAKE2's side A, the server side B, with the identities
//! [`ID_CLIENT`] and [`ID_SERVER`] and the normalised code as password. From
//! the shared key K, HKDF-SHA256 (salt [`VERSION`]) derives four 32-byte
//! values, each under its own label: the two confirmations and a key per
//! direction. The client checks Cs before it sends anything of its own; the
//! server checks Cc before the chat starts. The server sends nothing before
//! it has read the client's line; a first line that is not a hello gets
//! [`PLAIN_REPLY`] and the connection is closed.

use std::io;
use std::time::Instant;

use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_lite::FutureExt;
use hkdf::Hkdf;
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use super::record::{Opener, Sealer};

/// The protocol and its version, the first word of every handshake line.
pub const VERSION: &str = "smolchat-private/1";

/// SPAKE2 identity of the client (side A).
pub const ID_CLIENT: &[u8] = b"smolchat-private/1 client";
/// SPAKE2 identity of the server (side B).
pub const ID_SERVER: &[u8] = b"smolchat-private/1 server";

/// What a plain client (nc) is told before it is closed.
pub const PLAIN_REPLY: &str =
    "smolchat: this chat is private: connect with 'smolchat client --private' and the code\n";

/// The longest handshake line either side reads.
const MAX_LINE: usize = 256;

/// The keys of a session, for one side.
pub struct Keys {
    /// Seals what this side sends.
    pub seal: Sealer,
    /// Opens what the peer sends.
    pub open: Opener,
    /// Bytes the peer sent after the handshake, read with it.
    pub early: Vec<u8>,
    /// The key both sides prove on a direct link (`direct.rs`).
    pub direct: [u8; 32],
}

/// How a handshake failed.
#[derive(Debug)]
pub enum Failure {
    /// The two sides have different codes. On the server it is a guess.
    WrongCode,
    /// The peer is not a private smolchat: a plain server, or a plain
    /// client (which the server has told so).
    NotPrivate,
    /// The peer closed the connection before the handshake ended.
    Closed,
    /// The handshake did not end before the deadline.
    TimedOut,
    /// The connection failed.
    Io(io::Error),
}

impl Failure {
    /// The failure in words, for an error or a status line.
    pub fn describe(&self, server: bool) -> String {
        match self {
            Failure::WrongCode => "wrong code".into(),
            Failure::NotPrivate if server => {
                "not a private smolchat client; told so and closed".into()
            }
            Failure::NotPrivate => {
                "the server does not speak smolchat-private/1 (is it a plain server?)".into()
            }
            Failure::Closed if server => "left during the private handshake".into(),
            Failure::Closed => {
                "the server closed the connection during the private handshake (is it a plain server?)"
                    .into()
            }
            Failure::TimedOut => "the private handshake did not end within 10 s".into(),
            Failure::Io(e) => crate::wire::error::describe(e),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

/// The client's side: says hello, checks the server's confirmation, then
/// confirms in turn. Nothing of the chat is sent before it returns `Ok`.
/// `early` holds what was read of the stream already (by whoever read a
/// line of its own ahead of the handshake, such as a relay's).
pub async fn client<R, W>(
    reader: &mut R,
    writer: &mut W,
    code: &str,
    deadline: Instant,
    early: Vec<u8>,
) -> Result<Keys, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let password = Password::new(code.as_bytes());
    let (spake, a) = Spake2::<Ed25519Group>::start_a(
        &password,
        &Identity::new(ID_CLIENT),
        &Identity::new(ID_SERVER),
    );
    send(writer, &format!("{VERSION} {}\n", hex(&a)), deadline).await?;

    let mut held = early;
    let line = read_line(reader, &mut held, deadline).await?.ok_or(Failure::Closed)?;
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
        let _ = send(writer, &format!("{VERSION} wrong-code\n"), deadline).await;
        return Err(Failure::WrongCode);
    }
    send(writer, &format!("{VERSION} ok {}\n", hex(&derived.client_confirm)), deadline).await?;
    Ok(Keys {
        seal: Sealer::new(&derived.client_to_server),
        open: Opener::new(&derived.server_to_client),
        early: held,
        direct: derived.direct,
    })
}

/// The server's side, `early` as for [`client`]. A `WrongCode` is one
/// guess at the code; every other failure is not.
pub async fn server<R, W>(
    reader: &mut R,
    writer: &mut W,
    code: &str,
    deadline: Instant,
    early: Vec<u8>,
) -> Result<Keys, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut held = early;
    let hello = match read_line(reader, &mut held, deadline).await {
        Ok(Some(line)) => line,
        Ok(None) => return Err(Failure::Closed),
        Err(Failure::NotPrivate) => return Err(tell_plain(writer, deadline).await),
        Err(e) => return Err(e),
    };
    let a = match hello.split(' ').collect::<Vec<_>>()[..] {
        [VERSION, a] => unhex(a),
        _ => None,
    };
    let Some(a) = a else { return Err(tell_plain(writer, deadline).await) };

    let password = Password::new(code.as_bytes());
    let (spake, b) = Spake2::<Ed25519Group>::start_b(
        &password,
        &Identity::new(ID_CLIENT),
        &Identity::new(ID_SERVER),
    );
    // A hello whose message is not a point is not a guess at the code.
    let key = spake.finish(&a).map_err(|_| Failure::NotPrivate)?;
    let derived = Derived::new(&key);
    let reply = format!("{VERSION} {} {}\n", hex(&b), hex(&derived.server_confirm));
    send(writer, &reply, deadline).await?;

    // From here on the client can tell whether its code was right, so any
    // ending but a good confirmation counts as a guess.
    let confirmed = match read_line(reader, &mut held, deadline).await {
        Ok(Some(line)) => match line.strip_prefix(VERSION).and_then(|l| l.strip_prefix(" ok ")) {
            Some(confirm) => unhex(confirm).is_some_and(|c| same(&c, &derived.client_confirm)),
            None => false,
        },
        Ok(None) | Err(Failure::NotPrivate) => false,
        Err(e) => return Err(e),
    };
    if !confirmed {
        return Err(Failure::WrongCode);
    }
    Ok(Keys {
        seal: Sealer::new(&derived.server_to_client),
        open: Opener::new(&derived.client_to_server),
        early: held,
        direct: derived.direct,
    })
}

/// Tells a plain client what it met; the answer is always `NotPrivate`.
async fn tell_plain<W: AsyncWrite + Unpin>(writer: &mut W, deadline: Instant) -> Failure {
    match send(writer, PLAIN_REPLY, deadline).await {
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
            // 32 bytes is far below HKDF-SHA256's limit of 8160.
            let _ = hkdf.expand(label.as_bytes(), &mut out);
            out
        };
        Derived {
            server_confirm: expand("smolchat-private/1 server confirm"),
            client_confirm: expand("smolchat-private/1 client confirm"),
            client_to_server: expand("smolchat-private/1 client to server"),
            server_to_client: expand("smolchat-private/1 server to client"),
            direct: expand("smolchat-private/1 direct"),
        }
    }
}

/// Compares without an early exit, so that timing shows nothing of where
/// two confirmations differ.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
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

/// Fails with `TimedOut` at `deadline`.
async fn by<T>(
    deadline: Instant,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    work.or(async {
        smol::Timer::at(deadline).await;
        Err(Failure::TimedOut)
    })
    .await
}

async fn send<W: AsyncWrite + Unpin>(
    writer: &mut W,
    line: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    by(deadline, async {
        writer.write_all(line.as_bytes()).await?;
        writer.flush().await?;
        Ok(())
    })
    .await
}

/// Reads one line (without its `\n` or `\r\n`), keeping in `held` what
/// follows it. `None` at the end of the stream; `NotPrivate` when the line
/// is too long or not text.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut R,
    held: &mut Vec<u8>,
    deadline: Instant,
) -> Result<Option<String>, Failure> {
    by(deadline, async {
        loop {
            if let Some(nl) = held.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = held.drain(..=nl).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return String::from_utf8(line).map(Some).map_err(|_| Failure::NotPrivate);
            }
            if held.len() > MAX_LINE {
                return Err(Failure::NotPrivate);
            }
            let mut chunk = [0u8; MAX_LINE];
            let n = match reader.read(&mut chunk).await {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Io(e)),
            };
            if n == 0 {
                return if held.is_empty() { Ok(None) } else { Err(Failure::NotPrivate) };
            }
            held.extend_from_slice(&chunk[..n]);
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abff"), Some(vec![0, 0xab, 0xff]));
        for bad in ["", "0", "0g", "AB", "0 "] {
            assert_eq!(unhex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn same_compares_whole_values() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
