//! The direct path of a relayed chat: after the private handshake through
//! the relay, the two sides tell each other (sealed) where the relay sees
//! them, dial each other from their relay connection's port for a few
//! seconds (TCP simultaneous open, with a listener on that port for routers
//! and hosts that let a plain connect through), prove on the direct link
//! that they are the two who paired, and agree (sealed, through the relay)
//! to move. Nothing of the chat crosses a direct link before both proofs
//! passed.
//!
//! ```text
//! through the relay, sealed   DIRECT "offer ADDR:PORT NONCE"  or  "offer"
//! on the direct link          "smolchat-direct1" ‖ own nonce (16)   both sides at once
//!                             server → client: tag (32), once the client's nonce matched
//!                             client → server: tag (32), once the server's tag matched
//! through the relay, sealed   DIRECT "decision yes"  or  "decision no"
//! ```
//!
//! NONCE is 16 fresh random bytes in hex. A side goes on past the hellos
//! only when the other end sent the nonce of the peer's sealed offer, which
//! only the peer knows: anyone else at the address a side dials gets that
//! side's hello and nothing more. A tag is HKDF-Expand(the session's direct
//! key, role ‖ own nonce ‖ other nonce): it proves the key on this link
//! without showing it.
//!
//! A relay could forge `seen` to aim a side at a third party, so a side
//! dials only an address of its relay's own [`Kind`], at most [`DIALS`]
//! times, and sends its decision at one fixed time after the peer's offer
//! whatever it met there (see [`negotiate`]); `docs/relay.md` says what a
//! hostile relay can still learn.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use async_net::TcpStream;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use hkdf::Hkdf;
use sha2::Sha256;

use super::handshake::same;
use super::record::{self, Opener, Refusal, Sealer, DIRECT};
use crate::turn::Role;
use crate::wire::{self, within};

/// How long the two sides dial and prove a direct link before they stay on
/// the relay. The proof fits inside it: the kernel resends an unanswered SYN
/// after 1 s and then after 3 s, so a link not made by about 1 s is not made
/// before the end, and a bound of its own for the proof would only make
/// every fall-back to the relay longer.
pub const ATTEMPT: Duration = Duration::from_secs(3);

/// How long a side waits for the other's sealed offer and decision: the
/// other's attempt, with room for a slow relay.
const AGREEMENT: Duration = Duration::from_secs(10);

/// The most connects a side makes in one attempt. Only the client dials
/// again, after a refusal (the server's listener was not up yet); the
/// server dials once and leaves retries to the kernel's SYN retransmits.
pub const DIALS: u32 = 5;

/// The pause after the client's first refused dial, doubled after each:
/// its dials start at 0, 50, 150, 350 and 750 ms, well inside the attempt.
#[cfg(unix)]
const FIRST_RETRY: Duration = Duration::from_millis(50);

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

/// Where this side may be reached, and what its relay is: its relay
/// connection's local address (to dial from), the address the relay sees
/// it at (to tell), and the relay's address (whose kind bounds where it
/// dials).
#[derive(Debug, Clone, Copy)]
pub struct Offer {
    /// The relay connection's local address.
    pub local: SocketAddr,
    /// Where the relay sees this side.
    pub seen: SocketAddr,
    /// The address the relay connection is connected to.
    pub relay: SocketAddr,
}

/// The kinds of address, for the rule that a side dials only a peer
/// address of its relay's kind: a relay reached on the internet cannot aim
/// a side at its own machine, its home network or a group address.
/// Documentation ranges are public addresses here (the NAT lab's internet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0.0.0.0/8, `::`: not a destination.
    Unspecified,
    /// 127.0.0.0/8, `::1`: this machine.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7 (unique local), fec0::/10
    /// (site-local): a home's or a company's own network.
    Private,
    /// 100.64.0.0/10: a carrier's NAT, or an overlay network's addresses.
    Shared,
    /// 169.254.0.0/16, fe80::/10: one link.
    LinkLocal,
    /// 224.0.0.0/4, ff00::/8: a group, never one peer.
    Multicast,
    /// 255.255.255.255: everyone on the link.
    Broadcast,
    /// 240.0.0.0/4 and the rest of ::/8: not in use.
    Reserved,
    /// Everything else, the internet.
    Public,
}

impl Kind {
    /// The kind of `ip`; an IPv4-mapped or NAT64 (64:ff9b::/96) IPv6
    /// address has its IPv4 address's kind, since that is where it leads.
    pub fn of(ip: IpAddr) -> Kind {
        let v6 = match ip {
            IpAddr::V4(v4) => return Kind::of_v4(v4),
            IpAddr::V6(v6) => v6,
        };
        let s = v6.segments();
        let [_, _, _, _, _, _, hi, lo] = s;
        let embedded = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        if v6.is_unspecified() {
            Kind::Unspecified
        } else if v6.is_loopback() {
            Kind::Loopback
        } else if let Some(v4) = v6.to_ipv4_mapped() {
            Kind::of_v4(v4)
        } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
            Kind::of_v4(embedded)
        } else if s[0] < 0x0100 {
            Kind::Reserved
        } else if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfec0 {
            Kind::Private
        } else if s[0] & 0xffc0 == 0xfe80 {
            Kind::LinkLocal
        } else if v6.is_multicast() {
            Kind::Multicast
        } else {
            Kind::Public
        }
    }

    fn of_v4(ip: Ipv4Addr) -> Kind {
        let [a, b, _, _] = ip.octets();
        match (a, b) {
            (0, _) => Kind::Unspecified,
            (127, _) => Kind::Loopback,
            (10, _) | (192, 168) => Kind::Private,
            (172, 16..=31) => Kind::Private,
            (100, 64..=127) => Kind::Shared,
            (169, 254) => Kind::LinkLocal,
            (224..=239, _) => Kind::Multicast,
            _ if ip.is_broadcast() => Kind::Broadcast,
            (240..=255, _) => Kind::Reserved,
            _ => Kind::Public,
        }
    }

    /// Whether one peer can be dialled at an address of this kind at all.
    fn dialable(self) -> bool {
        !matches!(self, Kind::Unspecified | Kind::Multicast | Kind::Broadcast | Kind::Reserved)
    }
}

/// Whether a side whose relay connection goes to `relay` may dial `peer`,
/// an address the relay told the peer: only one of the relay's own kind,
/// and one that can be a peer's at all.
pub fn may_dial(relay: SocketAddr, peer: SocketAddr) -> bool {
    let kind = Kind::of(peer.ip());
    kind.dialable() && kind == Kind::of(relay.ip()) && peer.port() != 0
}

/// What a side proves with on a direct link: the session's direct key, its
/// role, and the two nonces of the sealed offers.
pub struct Proof<'a> {
    /// The session's direct key.
    pub key: &'a [u8; 32],
    /// This side's role in the chat.
    pub role: Role,
    /// The nonce of this side's offer.
    pub mine: [u8; NONCE],
    /// The nonce of the peer's offer.
    pub theirs: [u8; NONCE],
}

/// Offers this side's address (none with `--relay-only`), tries the
/// direct path when both offered, and returns the proven direct link both
/// agreed to move to, with the peer's address. `None`: the chat stays on
/// the relay.
///
/// When both offered, the decision is sent [`ATTEMPT`] after the peer's
/// offer came, whatever the attempt met: a closed port, a silent one, junk,
/// a wrong nonce or an address this side would not dial all look the same
/// to the relay. Only a proven link says `yes` sooner, and the relay sees
/// that anyway when both leave it.
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
    let times = Times { attempt: wire::deadline(ATTEMPT), agreement: wire::deadline(AGREEMENT) };
    agree(sealed, offer, key, role, times).await
}

/// How long [`negotiate`]'s steps take: the attempt, and the wait for each
/// of the peer's records. The unit tests shorten them.
#[derive(Debug, Clone, Copy)]
struct Times {
    attempt: Duration,
    agreement: Duration,
}

/// [`negotiate`], in `times`.
async fn agree<R, W>(
    sealed: Sealed<'_, R, W>,
    offer: Option<Offer>,
    key: &[u8; 32],
    role: Role,
    times: Times,
) -> io::Result<Option<(TcpStream, SocketAddr)>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Sealed { reader, writer, seal, open, held } = sealed;
    let deadline = Instant::now() + times.agreement;
    let mut mine = [0u8; NONCE];
    super::random(&mut mine)?;
    let said = match offer {
        Some(offer) => format!("offer {} {}", offer.seen, wire::hex(&mine)),
        None => "offer".to_string(),
    };
    send(writer, seal, &said).await?;
    let theirs = parse_offer(&receive(reader, open, held, deadline).await?)?;
    let direct = match (offer, theirs) {
        (Some(offer), Some((peer, theirs))) => {
            let decide_at = Instant::now() + times.attempt;
            let proof = Proof { key, role, mine, theirs };
            // An address the relay may not send this side to is not dialled
            // at all, and looks to the relay like any other failed attempt.
            let link = if may_dial(offer.relay, peer) {
                within(decide_at, attempt(offer.local, peer, &proof)).await.flatten()
            } else {
                None
            };
            if link.is_none() {
                // Not sooner, whatever ended the attempt: the decision's time
                // through the relay would tell it what answered at the
                // address it gave (closed, silent, junk, closing at once).
                smol::Timer::at(decide_at).await;
            }
            link.map(|link| (link, peer))
        }
        _ => None,
    };
    let decision = if direct.is_some() { "decision yes" } else { "decision no" };
    send(writer, seal, decision).await?;
    let agreed = match receive(reader, open, held, deadline).await?.as_str() {
        "decision yes" => true,
        "decision no" => false,
        _ => return Err(malformed()),
    };
    Ok(direct.filter(|_| agreed))
}

/// The peer's offer: its address and nonce, or `None` for a bare `offer`.
fn parse_offer(text: &str) -> io::Result<Option<(SocketAddr, [u8; NONCE])>> {
    let words: Vec<&str> = text.split(' ').collect();
    match words[..] {
        ["offer"] => Ok(None),
        ["offer", addr, nonce] => {
            let addr = addr.parse().map_err(|_| malformed())?;
            let nonce = wire::unhex(nonce).and_then(|nonce| nonce.try_into().ok());
            Ok(Some((addr, nonce.ok_or_else(malformed)?)))
        }
        _ => Err(malformed()),
    }
}

/// Dials `peer` and proves the direct link; `None` when no link was
/// proven. The caller bounds it in time.
async fn attempt(local: SocketAddr, peer: SocketAddr, proof: &Proof<'_>) -> Option<TcpStream> {
    let mut link = dial(local, peer, proof.role).await?;
    // A link that fails its proof is closed: dropping it closes it.
    prove(&mut link, proof).await.ok()?;
    Some(link)
}

/// A direct link between `local` and `peer`; `None` when the client's
/// [`DIALS`] connects were all refused. The caller bounds it in time.
///
/// Both sides connect from their relay port, so that each router sees the
/// home open the way out, and two crossing connects become one connection
/// (a simultaneous open). The server also listens on that port, for a
/// peer that can reach it plainly (the same host, a router that answers):
/// it connects once and leaves retries to the kernel's SYN retransmits,
/// while the client dials again after a refusal, up to [`DIALS`] times in
/// all. So at most one side dials again, and a dial never races a link the
/// listener took in. Connections from anyone but `peer` are closed unread.
#[cfg(unix)]
pub async fn dial(local: SocketAddr, peer: SocketAddr, role: Role) -> Option<TcpStream> {
    use crate::wire::net::shared_port;
    use futures_lite::{future, FutureExt};
    let listener = match role {
        Role::Server => shared_port::listen(local).ok(),
        Role::Client => None,
    };
    let accepted = async {
        let Some(listener) = &listener else { return future::pending().await };
        loop {
            match listener.accept().await {
                Ok((stream, from)) if from == peer => return Some(stream),
                Ok(_) => {}
                // Not a timer race: a pause, so that an accept that keeps
                // failing (no descriptors left) does not spin.
                Err(_) => {
                    smol::Timer::after(FIRST_RETRY).await;
                }
            }
        }
    };
    let connected = async {
        let dials = match role {
            Role::Server => 1,
            Role::Client => DIALS,
        };
        let mut pause = FIRST_RETRY;
        for dialled in 1..=dials {
            if let Ok(stream) = shared_port::connect(Some(local), peer).await {
                return Some(stream);
            }
            if dialled < dials {
                // Refused: the server's listener is not up yet.
                smol::Timer::after(pause).await;
                pause *= 2;
            }
        }
        // No dial left: a listener may still take the peer in.
        match listener {
            Some(_) => future::pending().await,
            None => None,
        }
    };
    accepted.or(connected).await
}

/// Without shared ports (not Unix) there is no direct path.
#[cfg(not(unix))]
pub async fn dial(_: SocketAddr, _: SocketAddr, _: Role) -> Option<TcpStream> {
    None
}

/// Both sides prove on `link` that they are the two who paired: each sends
/// its hello, and goes on only when the other's holds the nonce of the
/// peer's sealed offer; then the tags, the server's first.
pub async fn prove<S: AsyncRead + AsyncWrite + Unpin>(
    link: &mut S,
    proof: &Proof<'_>,
) -> io::Result<()> {
    wire::send(link, &hello(&proof.mine)).await?;
    let mut heard = [0u8; HELLO.len() + NONCE];
    link.read_exact(&mut heard).await?;
    // Whoever answers here without the peer's nonce got the hello alone.
    if !same(&heard, &hello(&proof.theirs)) {
        return Err(not_proven());
    }
    let (me, them) = match proof.role {
        Role::Server => ("server", "client"),
        Role::Client => ("client", "server"),
    };
    let my_tag = tag(proof.key, me, &proof.mine, &proof.theirs);
    let their_tag = tag(proof.key, them, &proof.theirs, &proof.mine);
    let mut heard_tag = [0u8; TAG];
    if proof.role == Role::Server {
        wire::send(link, &my_tag).await?;
    }
    link.read_exact(&mut heard_tag).await?;
    if !same(&heard_tag, &their_tag) {
        return Err(not_proven());
    }
    if proof.role == Role::Client {
        // Only to a server that proved the key.
        wire::send(link, &my_tag).await?;
    }
    Ok(())
}

/// The hello of a side whose nonce is `nonce`.
fn hello(nonce: &[u8; NONCE]) -> [u8; HELLO.len() + NONCE] {
    let mut hello = [0u8; HELLO.len() + NONCE];
    hello[..HELLO.len()].copy_from_slice(HELLO);
    hello[HELLO.len()..].copy_from_slice(nonce);
    hello
}

/// The tag of `role` on the direct link of the two nonces.
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
    wire::send(writer, &out).await
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
    within(deadline, read).await.unwrap_or_else(|| {
        Err(io::Error::new(io::ErrorKind::TimedOut, "the peer did not answer in time"))
    })
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
