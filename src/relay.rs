//! The relay (`smolchat relay`): it pairs two people by room number and
//! copies bytes between them, so that two sides behind NAT, who can only
//! connect out, can chat. It learns room numbers, addresses, timing and
//! sizes, never a code or a message: the chat through it is sealed end to
//! end. It keeps no record and no queue.
//!
//! Every connection and pair is a task on one executor on the main thread.
//! The relay touches only the network edge (`net`, `error`); never the
//! terminal, the turn loop or the private chats. Its wire lines are in
//! [`crate::wire::relay`], shared with the chat side.

pub mod descriptors;
pub mod listener;
pub mod lobby;
pub mod pair;
pub mod rooms;

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::{future, FutureExt};
use smol::{Async, LocalExecutor, Timer};

use crate::wire::error::{describe, Error};
use crate::wire::net;

use crate::wire::relay::{self as protocol, Refusal, Reply, Request, Room, MAX_LINE};
use lobby::{Heard, Lobby};
use pair::{read, with_scratch, Pair};
use rooms::Rooms;

/// How long the relay waits before it accepts again after a failed accept
/// (out of file descriptors, say), so that it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long the same accept error stays unsaid after it was said once.
const ACCEPT_ERROR_QUIET: Duration = Duration::from_secs(60);

/// How often refusals are summed up in one status line, if there were any.
const REFUSALS_EVERY: Duration = Duration::from_secs(60);

/// How long a refused connection's leftover bytes are read and dropped, so
/// that the close is a FIN behind the refusal line, not a reset.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);

/// The most bytes read and dropped after a refusal.
const REFUSAL_LINGER_BYTES: usize = 64 * 1024;

/// Settings of `smolchat relay`.
#[derive(Debug, PartialEq)]
pub struct RelayConfig {
    /// Local address.
    pub bind: IpAddr,
    /// Local port; 0 lets the system pick one.
    pub port: u16,
    /// The most rooms and pairs held together.
    pub max_chats: usize,
    /// How long a room waits for its joiner, and a pair goes on after one
    /// side left.
    pub wait: Duration,
}

/// Runs the relay until the process is ended; only a failure to start
/// returns.
pub fn run(config: &RelayConfig) -> Result<(), Error> {
    descriptors::keep_stdio_taken();
    let budget = descriptors::raise(config.max_chats);
    if budget.chats == 0 {
        let error = io::Error::other("the open-file limit is too low to hold a chat");
        return Err(Error { what: "cannot start the relay".into(), error });
    }
    let relay = Rc::new(Relay {
        executor: LocalExecutor::new(),
        rooms: RefCell::new(Rooms::default()),
        pairs: Cell::new(0),
        capacity: budget.chats,
        wait: config.wait,
        lobby: RefCell::new(Lobby::new(budget.lobby)),
        refused: Cell::new(0),
    });
    smol::block_on(async {
        let listener = listener::listen(config.bind, config.port)?;
        let local = listener
            .get_ref()
            .local_addr()
            .map_err(|error| Error { what: "cannot listen".into(), error })?;
        status(&format!("relay listening on {local}"));
        if let Some(limit) = budget.short {
            status(&format!(
                "the open-file limit of {limit} holds {} chats, fewer than --max-chats {}",
                budget.chats, config.max_chats
            ));
        }
        // Accepting is a task like the others, woken only when someone
        // connects: as the executor's main future it would be polled, and
        // try an accept, at every wake of any pair.
        relay.executor.spawn(accept(listener, relay.clone())).detach();
        relay.executor.spawn(sum_up_refusals(relay.clone())).detach();
        relay.executor.run(future::pending::<()>()).await;
        Ok(())
    })
}

/// What all the relay's tasks share, on the one thread.
struct Relay {
    /// Runs every task; the tasks hold the relay, so neither is ever
    /// dropped before the process ends.
    executor: LocalExecutor<'static>,
    /// The rooms waiting for their joiner; each holds the way to hand the
    /// joiner over to the task of the one waiting.
    rooms: RefCell<Rooms<Rc<Handover>>>,
    /// Pairs being copied.
    pairs: Cell<usize>,
    /// The most rooms and pairs together.
    capacity: usize,
    /// How long a room waits, and a pair goes on with one side gone.
    wait: Duration,
    /// Connections that have yet to say what they want.
    lobby: RefCell<Lobby>,
    /// Refusals since the last summary.
    refused: Cell<u64>,
}

impl Relay {
    /// Rooms and pairs held.
    fn chats(&self) -> usize {
        self.rooms.borrow().len() + self.pairs.get()
    }

    /// `12 pairs, 3 rooms waiting`, for the status lines.
    fn load(&self) -> String {
        let (pairs, rooms) = (self.pairs.get(), self.rooms.borrow().len());
        let s = |n: usize| if n == 1 { "" } else { "s" };
        format!("{pairs} pair{}, {rooms} room{} waiting", s(pairs), s(rooms))
    }
}

/// The joiner of a room, handed to the task of the one waiting in it.
struct Joiner {
    stream: Async<TcpStream>,
    peer: SocketAddr,
    direct: bool,
    early: Vec<u8>,
}

/// Where a joiner is left for the one waiting in the room.
#[derive(Default)]
struct Handover {
    joiner: RefCell<Option<Joiner>>,
    waker: Cell<Option<Waker>>,
}

impl Handover {
    fn give(&self, joiner: Joiner) {
        *self.joiner.borrow_mut() = Some(joiner);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    async fn taken(&self) -> Joiner {
        future::poll_fn(|cx| match self.joiner.borrow_mut().take() {
            Some(joiner) => Poll::Ready(joiner),
            None => {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// Accepts for ever, a task per connection. An accept error (out of file
/// descriptors, say) is said once, makes room in the lobby, and is retried
/// after a pause instead of at once.
async fn accept(listener: Async<TcpListener>, relay: Rc<Relay>) {
    let mut said: Option<(String, Instant)> = None;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // A socket that takes no option is gone already.
                if stream.get_ref().set_nodelay(true).is_ok()
                    && net::keepalive(stream.get_ref()).is_ok()
                {
                    relay.executor.spawn(connection(relay.clone(), stream, peer)).detach();
                }
                // Let the new task take its place in the lobby (turning out
                // the oldest if need be) before the next accept: a burst
                // cannot outrun the lobby's bound.
                future::yield_now().await;
            }
            Err(e) => {
                let words = describe(&e);
                let fresh = match &said {
                    Some((last, when)) => *last != words || when.elapsed() >= ACCEPT_ERROR_QUIET,
                    None => true,
                };
                if fresh {
                    status(&format!("cannot accept a connection: {words} (retrying)"));
                    said = Some((words, Instant::now()));
                }
                relay.lobby.borrow_mut().evict_oldest();
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// One connection's life: its request, then its room and pair, or its
/// refusal.
async fn connection(relay: Rc<Relay>, stream: Async<TcpStream>, peer: SocketAddr) {
    let since = Instant::now();
    let ticket = relay.lobby.borrow_mut().enter();
    let heard = lobby::hear(&stream, since, &ticket.evicted).await;
    let refused = match heard {
        Heard::Gone => None,
        Heard::Refused(refusal) => Some((stream, refusal)),
        Heard::Request(Request::Open { direct, .. }, early) => match open(&relay, peer) {
            Ok((room, handover)) => {
                relay.lobby.borrow_mut().leave(&ticket);
                drop(ticket);
                return wait_in_room(relay, stream, peer, direct, early, room, handover).await;
            }
            Err(refusal) => Some((stream, refusal)),
        },
        // The relay answers who it is, and costs nothing more.
        Heard::Request(Request::Hello, _) => {
            let _ = write_line(&stream, &Reply::Relay);
            None
        }
        // Keyed rooms are not held past their connection yet.
        Heard::Request(Request::Close { .. }, _) => Some((stream, Refusal::NotARequest)),
        Heard::Request(Request::Join { room, direct }, early) => {
            match join(&relay, room, Joiner { stream, peer, direct, early }) {
                Ok(()) => None,
                Err((refusal, joiner)) => Some((joiner.stream, refusal)),
            }
        }
    };
    // A refused connection stays in the lobby while it lingers, so that a
    // flood of refusals is turned out like any other.
    if let Some((stream, refusal)) = refused {
        refuse(&relay, &stream, refusal, Some(&ticket.evicted)).await;
    }
    relay.lobby.borrow_mut().leave(&ticket);
}

/// Opens a room for `peer`, if the relay has room for one more chat.
fn open(relay: &Relay, peer: SocketAddr) -> Result<(Room, Rc<Handover>), Refusal> {
    if relay.chats() >= relay.capacity {
        return Err(Refusal::Full);
    }
    let handover = Rc::new(Handover::default());
    let room = relay.rooms.borrow_mut().open(peer.ip(), handover.clone())?;
    Ok((room, handover))
}

/// Hands the joiner to room `room`'s task: the first joiner only, since the
/// room is taken out as it is joined. The room becomes a pair, so the
/// chats held stay as many.
fn join(relay: &Relay, room: Room, joiner: Joiner) -> Result<(), (Refusal, Joiner)> {
    let Some(handover) = relay.rooms.borrow_mut().take(room) else {
        return Err((Refusal::NoRoom(room), joiner));
    };
    relay.pairs.set(relay.pairs.get() + 1);
    handover.give(joiner);
    Ok(())
}

/// What happened to a waiting room.
enum InRoom {
    Joined(Joiner),
    Readable,
    Expired,
}

/// Waits in room `room` for its joiner, then copies the pair. The room is
/// freed at once when the one waiting leaves, and closed after the relay's
/// `--wait`.
async fn wait_in_room(
    relay: Rc<Relay>,
    stream: Async<TcpStream>,
    peer: SocketAddr,
    direct: bool,
    mut early: Vec<u8>,
    room: Room,
    handover: Rc<Handover>,
) {
    if write_line(&stream, &Reply::Room(room)).is_err() {
        relay.rooms.borrow_mut().take(room);
        return;
    }
    let expires = Instant::now() + relay.wait;
    let joiner = loop {
        // The joiner first: a joiner that came as the owner left still
        // meets what is left of the owner's connection.
        let joined = async { InRoom::Joined(handover.taken().await) };
        let readable = async {
            let _ = stream.readable().await;
            InRoom::Readable
        };
        let expired = async {
            Timer::at(expires).await;
            InRoom::Expired
        };
        match joined.or(readable).or(expired).await {
            InRoom::Joined(joiner) => break joiner,
            InRoom::Readable => {
                // Bytes sent ahead are kept for the joiner, a few of them.
                let room_left = MAX_LINE.saturating_sub(early.len());
                let got = with_scratch(|buf| {
                    let got = read(&stream, &mut buf[..room_left.max(1)]);
                    if let Ok(n) = got {
                        early.extend_from_slice(&buf[..n]);
                    }
                    got
                });
                match got {
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    // The one waiting left: the room is free at once.
                    Ok(0) | Err(_) => {
                        relay.rooms.borrow_mut().take(room);
                        return;
                    }
                    Ok(_) if early.len() > MAX_LINE => {
                        relay.rooms.borrow_mut().take(room);
                        return refuse(&relay, &stream, Refusal::TooEarly, None).await;
                    }
                    Ok(_) => {}
                }
            }
            InRoom::Expired => {
                relay.rooms.borrow_mut().take(room);
                return refuse(&relay, &stream, Refusal::expired(relay.wait), None).await;
            }
        }
    };
    drop(handover);

    // Each side gets `paired`, its `seen` if it asked, then the other's
    // early bytes; then the copy, in a task of its own, so that an idle
    // pair holds only what the copy needs.
    let to_owner = first_bytes(peer, direct, &joiner.early);
    let to_joiner = first_bytes(joiner.peer, joiner.direct, &early);
    let early = [early.len() as u64, joiner.early.len() as u64];
    let pair = Pair::new(stream, joiner.stream, to_owner, to_joiner, relay.wait);
    relay.executor.spawn(chat(relay.clone(), pair, early)).detach();
}

/// A pair's life, from its first line to its last, for the operator.
async fn chat(relay: Rc<Relay>, mut pair: Pair, early: [u64; 2]) {
    status(&format!("pair formed ({})", relay.load()));
    let started = Instant::now();
    let copied = (&mut pair).await;
    drop(pair);
    relay.pairs.set(relay.pairs.get() - 1);
    status(&format!(
        "pair ended after {} s, {} and {} bytes ({})",
        started.elapsed().as_secs(),
        copied[0] + early[0],
        copied[1] + early[1],
        relay.load()
    ));
}

/// What a side is sent once paired: `paired`, `seen ADDR:PORT` if it asked,
/// then what the other side sent ahead.
fn first_bytes(peer: SocketAddr, direct: bool, others_early: &[u8]) -> Vec<u8> {
    let mut bytes = Reply::Paired.line().into_bytes();
    if direct {
        bytes.extend_from_slice(Reply::Seen(protocol::seen(peer)).line().as_bytes());
    }
    bytes.extend_from_slice(others_early);
    bytes
}

/// Writes one short line to a connection without waiting: its send buffer
/// is empty, so it takes the line whole, or the connection is useless.
fn write_line(stream: &Async<TcpStream>, reply: &Reply) -> io::Result<()> {
    let line = reply.line();
    let mut socket: &TcpStream = stream.get_ref();
    match socket.write(line.as_bytes())? {
        n if n == line.len() => Ok(()),
        _ => Err(io::ErrorKind::WriteZero.into()),
    }
}

/// Sends the refusal's line and closes: a FIN, then what the connection
/// still sends is read and dropped for a moment, so that the close does not
/// turn into a reset that could hide the line.
async fn refuse(
    relay: &Relay,
    stream: &Async<TcpStream>,
    refusal: Refusal,
    evicted: Option<&lobby::Flag>,
) {
    relay.refused.set(relay.refused.get() + 1);
    let busy = refusal == Refusal::Busy;
    if write_line(stream, &Reply::Refused(refusal)).is_err() {
        return;
    }
    let _ = stream.get_ref().shutdown(Shutdown::Write);
    // Turned out of a full lobby: no time to linger.
    if busy {
        return;
    }
    let mut dropped = 0;
    let drain = async {
        while dropped < REFUSAL_LINGER_BYTES {
            if stream.readable().await.is_err() {
                return;
            }
            let got = with_scratch(|buf| read(stream, buf));
            match got {
                Ok(0) => return,
                Ok(n) => dropped += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return,
            }
        }
    };
    let evicted = async {
        match evicted {
            Some(flag) => flag.wait().await,
            None => future::pending().await,
        }
    };
    drain
        .or(evicted)
        .or(async {
            Timer::after(REFUSAL_LINGER).await;
        })
        .await;
}

/// Sums up the refusals once a minute, if there were any: a flood of bad
/// connections must not flood the log.
async fn sum_up_refusals(relay: Rc<Relay>) {
    loop {
        Timer::after(REFUSALS_EVERY).await;
        let refused = relay.refused.replace(0);
        if refused > 0 {
            let s = if refused == 1 { "" } else { "s" };
            status(&format!(
                "refused {refused} connection{s} in the last minute ({})",
                relay.load()
            ));
        }
    }
}

/// A status line for the operator, on stderr.
fn status(text: &str) {
    let line = format!("smolchat: {text}\n");
    // Nowhere is left to report a failing stderr.
    let _ = io::stderr().write_all(line.as_bytes());
}
