//! The direct path of a relayed chat: after the private handshake through
//! the relay, the two sides tell each other (sealed) where the relay sees
//! them, reach for each other from their relay connection's port for a few
//! seconds (TCP simultaneous open, with a listener on that port for routers
//! and hosts that let a plain connect through), prove on the new link that
//! they hold the session's key, and agree (sealed, through the relay) to
//! move. Nothing of the chat crosses a link before both proofs passed.
//!
//! ```text
//! through the relay, sealed   DIRECT "offer ADDR:PORT"  or  "offer"
//! on the new link             "smolchat-direct1" ‖ nonce (16)       both sides
//!                             server → client: tag (32)
//!                             client → server: tag (32), after it checked the server's
//! through the relay, sealed   DIRECT "decision yes"  or  "decision no"
//! ```
//!
//! A tag is HKDF-Expand(the session's direct key, role ‖ own nonce ‖ other
//! nonce): it proves the key without showing it, and is bound to this link
//! by the two fresh nonces. The client shows its tag only to a proven
//! server, so whoever answers the client's connect gets a random nonce.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_net::TcpStream;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_lite::FutureExt;
use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::record::{self, Opener, Refusal, Sealer, DIRECT};
use crate::turn::Role;

/// How long the two sides reach for each other before they stay on the relay.
pub const ATTEMPT: Duration = Duration::from_secs(3);

/// How long a side waits for the other's sealed offer and decision: the
/// other's attempt and proof, with room for a slow relay.
const AGREEMENT: Duration = Duration::from_secs(10);

/// How long after a failed connect the next one starts.
#[cfg(unix)]
const RETRY: Duration = Duration::from_millis(50);

/// The first bytes on a direct link, before the nonce.
const HELLO: &[u8; 16] = b"smolchat-direct1";
const NONCE: usize = 16;
const TAG: usize = 32;

/// The longest sealed offer or decision read.
const MAX_CONTROL: usize = 128;

/// The sealed channel through the relay, before the chat: the relay
/// connection's two directions and the bytes read past the last record.
pub struct Sealed<'a, R, W> {
    /// The peer's records through the relay.
    pub reader: &'a mut R,
    /// Records to the peer through the relay.
    pub writer: &'a mut W,
    /// Seals this side's records.
    pub seal: &'a mut Sealer,
    /// Opens the peer's records.
    pub open: &'a mut Opener,
    /// Bytes read and not yet opened; the chat's reader takes them after.
    pub held: &'a mut Vec<u8>,
}

/// Where this side may be reached: its relay connection's local address
/// (to reach out from) and the address the relay sees it at (to tell).
#[derive(Debug, Clone, Copy)]
pub struct Offer {
    /// The relay connection's local address.
    pub local: SocketAddr,
    /// Where the relay sees this side.
    pub seen: SocketAddr,
}

/// Offers this side's address (none with `--relay-only`), tries the
/// direct path when both offered, and returns the proven link both agreed
/// to move to, with the peer's address. `None`: the chat stays on the relay.
pub async fn negotiate<R, W>(
    sealed: Sealed<'_, R, W>,
    offer: Option<Offer>,
    key: &[u8; 32],
    role: Role,
) -> io::Result<Option<(TcpStream, SocketAddr)>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Sealed { reader, writer, seal, open, held } = sealed;
    let deadline = Instant::now() + AGREEMENT;
    let said = match offer {
        Some(offer) => format!("offer {}", offer.seen),
        None => "offer".to_string(),
    };
    send(writer, seal, &said).await?;
    let theirs = receive(reader, open, held, deadline).await?;
    let peer = match theirs.strip_prefix("offer") {
        Some("") => None,
        Some(addr) => Some(addr.trim_start().parse::<SocketAddr>().map_err(|_| malformed())?),
        None => return Err(malformed()),
    };
    let link = match (offer, peer) {
        (Some(offer), Some(peer)) => attempt(offer.local, peer, key, role).await,
        _ => None,
    };
    let decision = if link.is_some() { "decision yes" } else { "decision no" };
    send(writer, seal, decision).await?;
    let agreed = match receive(reader, open, held, deadline).await?.as_str() {
        "decision yes" => true,
        "decision no" => false,
        _ => return Err(malformed()),
    };
    Ok(match (link, peer) {
        (Some(link), Some(peer)) if agreed => Some((link, peer)),
        _ => None,
    })
}

/// Reaches for `peer` and proves the link, all within [`ATTEMPT`] (and
/// the proof's own short bound); `None` when no link was proven.
async fn attempt(
    local: SocketAddr,
    peer: SocketAddr,
    key: &[u8; 32],
    role: Role,
) -> Option<TcpStream> {
    let deadline = Instant::now() + ATTEMPT;
    let mut link = reach(local, peer, role, deadline).await?;
    // A link that fails its proof is closed: dropping it closes it.
    let proof = prove(&mut link, key, role)
        .or(async {
            smol::Timer::at(deadline + Duration::from_secs(1)).await;
            Err(io::ErrorKind::TimedOut.into())
        })
        .await;
    proof.ok().map(|()| link)
}

/// A TCP connection between `local` and `peer` before `deadline`.
///
/// Both sides connect from their relay port, so that each router sees the
/// home open the way out, and two crossing connects become one connection
/// (a simultaneous open). The server also listens on that port, for a
/// peer that can reach it plainly (the same host, a router that answers):
/// it connects once and leaves retries to the kernel's SYN retransmits,
/// while the client tries again after each refusal. So at most one side
/// retries, and a retry never races a link the listener took in.
/// Connections from anyone but `peer` are closed unread.
#[cfg(unix)]
pub async fn reach(
    local: SocketAddr,
    peer: SocketAddr,
    role: Role,
    deadline: Instant,
) -> Option<TcpStream> {
    use crate::wire::net::shared_port;
    let listener = match role {
        Role::Server => shared_port::listen(local).ok(),
        Role::Client => None,
    };
    let accepted = async {
        let Some(listener) = &listener else { return futures_lite::future::pending().await };
        loop {
            match listener.accept().await {
                Ok((stream, from)) if from == peer => return Some(stream),
                Ok(_) => {}
                Err(_) => {
                    smol::Timer::after(RETRY).await;
                }
            }
        }
    };
    let connected = async {
        loop {
            match shared_port::connect(Some(local), peer).await {
                Ok(stream) => return Some(stream),
                Err(_) if role == Role::Server => return futures_lite::future::pending().await,
                // Refused: the server's listener is not up yet.
                Err(_) => {
                    smol::Timer::after(RETRY).await;
                }
            }
        }
    };
    let timer = async {
        smol::Timer::at(deadline).await;
        None
    };
    accepted.or(connected).or(timer).await
}

/// Without shared ports (not Unix) there is no direct path.
#[cfg(not(unix))]
pub async fn reach(_: SocketAddr, _: SocketAddr, _: Role, _: Instant) -> Option<TcpStream> {
    None
}

/// Both sides prove on `link` that they hold the session's direct key.
pub async fn prove<S: AsyncRead + AsyncWrite + Unpin>(
    link: &mut S,
    key: &[u8; 32],
    role: Role,
) -> io::Result<()> {
    let mut mine = [0u8; NONCE];
    getrandom::getrandom(&mut mine).map_err(|e| io::Error::other(e.to_string()))?;
    let mut hello = HELLO.to_vec();
    hello.extend_from_slice(&mine);
    link.write_all(&hello).await?;
    let mut heard = [0u8; HELLO.len() + NONCE];
    link.read_exact(&mut heard).await?;
    if &heard[..HELLO.len()] != HELLO {
        return Err(not_proven());
    }
    let theirs = &heard[HELLO.len()..];
    let (me, them) = match role {
        Role::Server => ("server", "client"),
        Role::Client => ("client", "server"),
    };
    let my_tag = tag(key, me, &mine, theirs);
    let their_tag = tag(key, them, theirs, &mine);
    let mut heard_tag = [0u8; TAG];
    if role == Role::Server {
        link.write_all(&my_tag).await?;
        link.read_exact(&mut heard_tag).await?;
    } else {
        link.read_exact(&mut heard_tag).await?;
        if !bool::from(heard_tag.ct_eq(&their_tag)) {
            return Err(not_proven());
        }
        link.write_all(&my_tag).await?;
    }
    link.flush().await?;
    match bool::from(heard_tag.ct_eq(&their_tag)) {
        true => Ok(()),
        false => Err(not_proven()),
    }
}

/// The tag of `role` on the link of the two nonces.
fn tag(key: &[u8; 32], role: &str, own: &[u8], other: &[u8]) -> [u8; TAG] {
    let mut info = format!("smolchat-direct/1 {role} ").into_bytes();
    info.extend_from_slice(own);
    info.extend_from_slice(other);
    let mut out = [0u8; TAG];
    Hkdf::<Sha256>::from_prk(key)
        .expect("a 32-byte key is a valid HKDF-SHA256 pseudorandom key")
        .expand(&info, &mut out)
        .expect("32 bytes are within HKDF-SHA256's output limit");
    out
}

/// Seals `text` as one control record and sends it.
async fn send<W: AsyncWrite + Unpin>(
    writer: &mut W,
    seal: &mut Sealer,
    text: &str,
) -> io::Result<()> {
    let mut out = Vec::new();
    seal.seal(DIRECT, text.as_bytes(), &mut out)?;
    writer.write_all(&out).await?;
    writer.flush().await
}

/// Reads and opens the peer's next record, which must be a control record.
async fn receive<R: AsyncRead + Unpin>(
    reader: &mut R,
    open: &mut Opener,
    held: &mut Vec<u8>,
    deadline: Instant,
) -> io::Result<String> {
    let read = async {
        loop {
            if held.len() >= 4 {
                let header = [held[0], held[1], held[2], held[3]];
                let size = 4 + Opener::length(header, MAX_CONTROL).map_err(refused)?;
                if held.len() >= size {
                    let mut sealed: Vec<u8> = held.drain(..size).collect();
                    let (kind, body) = open.open(&mut sealed).map_err(refused)?;
                    if kind != DIRECT {
                        return Err(malformed());
                    }
                    return String::from_utf8(sealed[body].to_vec()).map_err(|_| malformed());
                }
            }
            let mut chunk = [0u8; 256];
            match reader.read(&mut chunk).await? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the chat before it began",
                    ))
                }
                n => held.extend_from_slice(&chunk[..n]),
            }
        }
    };
    read.or(async {
        smol::Timer::at(deadline).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "the peer did not answer in time"))
    })
    .await
}

/// A control record that was refused, in the record layer's words.
fn refused(refusal: Refusal) -> io::Error {
    record::refused(refusal, MAX_CONTROL)
}

fn malformed() -> io::Error {
    refused(Refusal::Malformed)
}

fn not_proven() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "the direct link failed its proof")
}

#[cfg(test)]
mod tests;
