//! The relay (`smolchat relay`): it pairs two people by room number and
//! copies bytes between them, so that two sides behind NAT, who can only
//! connect out, can chat. It learns room numbers, addresses, timing and
//! sizes, never a code or a message: the chat through it is sealed end to
//! end. It keeps no record and no queue.
//!
//! Its rooms have unforeseeable numbers ([`numbers`]); a server that opens
//! its room with a key gets the same number back when it opens again (after
//! a joiner who failed the handshake, past `--wait`, after its connection
//! dropped), and closes it when its code is spent ([`rooms`]); the numbers
//! of rooms that are gone are kept aside for an hour ([`aside`]). Addresses
//! that try numbers are struck and refused for a while ([`strikes`]), and
//! one address ([`address`]: IPv4, or IPv6 /64) holds at most 16 ends.
//!
//! Every connection and pair is a task on one executor on the main thread.
//! The relay touches only the network edge (`net`, `error`); never the
//! terminal, the turn loop or the private chats. Its wire lines are in
//! [`crate::wire::relay`], shared with the chat side.

pub mod address;
pub mod aside;
pub mod descriptors;
pub mod lobby;
pub mod numbers;
pub mod pair;
pub mod rooms;
pub mod strikes;
mod tasks;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::{future, FutureExt};
use smol::{Async, Timer};

use crate::wire::error::{describe, Error};
use crate::wire::relay::{Refusal, Reply, Request, Room, MAX_LINE, REQUEST_DEADLINE};
use crate::wire::{deadline, net, within};
use address::Addr;
use lobby::{Heard, Lobby};
use numbers::Numbers;
use pair::{read, with_scratch, Pair};
use rooms::{Event, Rooms, State};
use strikes::Strikes;

/// The `--max-chats` a relay gets when none is given: a ceiling, not a
/// request (it says nothing when its open-file limit holds fewer).
pub const DEFAULT_MAX_CHATS: usize = 10_000;

/// How long a keyed room is held after its server's connection went (the
/// pair ended, the server left, or `--wait` passed), for the server to
/// open it again with its key under the same number.
pub const HOLD: Duration = Duration::from_secs(10);

/// How many connections may wait to be accepted: a burst of connections
/// fills std's 128 before the relay has accepted them, and every connection
/// after that (a real person's too) waits a second or more for its SYN to
/// be sent again. Linux caps it at `net.core.somaxconn` (4096 by default).
const BACKLOG: i32 = 4096;

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
        rooms: RefCell::new(Rooms::new(Numbers::new())),
        strikes: RefCell::new(Strikes::default()),
        started: Instant::now(),
        capacity: budget.chats,
        wait: config.wait,
        hold: deadline(HOLD),
        lobby: RefCell::new(Lobby::new(budget.lobby)),
        refused: Cell::new(0),
    });
    smol::block_on(async {
        let listener = net::listen(config.bind, config.port, BACKLOG)?;
        let local = listener
            .get_ref()
            .local_addr()
            .map_err(|error| Error { what: "cannot listen".into(), error })?;
        status(&format!("relay listening on {local}"));
        let asked = (config.max_chats != DEFAULT_MAX_CHATS).then_some(config.max_chats);
        if let Some(note) = descriptors::note(&budget, asked) {
            status(&note);
        }
        // Accepting is a task like the others, woken only when someone
        // connects: as the executor's main future it would be polled, and
        // try an accept, at every wake of any pair.
        tasks::spawn(accept(listener, relay.clone()));
        tasks::spawn(sum_up_refusals(relay.clone()));
        tasks::run().await;
        Ok(())
    })
}

/// What all the relay's tasks share, on the one thread.
struct Relay {
    /// Every room that is not gone, and what each address holds; a joiner
    /// is left in its room for the task of the one waiting there.
    rooms: RefCell<Rooms<Box<Joiner>>>,
    /// Strikes against addresses that try numbers.
    strikes: RefCell<Strikes>,
    /// When the relay started: the rooms and strikes count seconds from it.
    started: Instant,
    /// The most rooms (waiting, paired, held) at once.
    capacity: usize,
    /// How long a room waits, and a pair goes on with one side gone.
    wait: Duration,
    /// How long a keyed room is held ([`HOLD`]).
    hold: Duration,
    /// Connections that have yet to say what they want, or linger after a
    /// refusal.
    lobby: RefCell<Lobby>,
    /// Refusals since the last summary.
    refused: Cell<u64>,
}

impl Relay {
    /// Seconds since the relay started.
    fn now(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// `12 pairs, 3 rooms waiting`, for the status lines.
    fn load(&self) -> String {
        let rooms = self.rooms.borrow();
        let (pairs, waiting) = (rooms.count(State::Paired), rooms.count(State::Waiting));
        let s = |n: usize| if n == 1 { "" } else { "s" };
        format!("{pairs} pair{}, {waiting} room{} waiting", s(pairs), s(waiting))
    }
}

/// The joiner of a room, left in it for the task of the one waiting there.
struct Joiner {
    stream: Async<TcpStream>,
    peer: SocketAddr,
    direct: bool,
    early: Vec<u8>,
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
                    tasks::spawn(connection(relay.clone(), stream, peer));
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
                // A pause, not a race: nothing else is waited for here.
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// One connection's life: its request, then its room and pair, or its
/// answer.
async fn connection(relay: Rc<Relay>, stream: Async<TcpStream>, peer: SocketAddr) {
    let ticket = relay.lobby.borrow_mut().enter();
    let by = Instant::now() + deadline(REQUEST_DEADLINE);
    let heard = lobby::hear(&stream, by, &ticket.evicted).await;
    relay.lobby.borrow_mut().leave(&ticket);
    drop(ticket);
    let (stream, reply) = match heard {
        Heard::Gone => return,
        Heard::Refused(refusal) => (stream, Reply::Refused(refusal)),
        Heard::Request(request, early) => match serve(&relay, request, stream, peer, early) {
            Served::Room(stream, room, turn, direct, early) => {
                return wait_in_room(relay, stream, peer, direct, early, room, turn).await;
            }
            Served::Done => return,
            Served::Answer(stream, reply) => (stream, reply),
        },
    };
    last_word(&relay, &stream, &reply).await;
}

/// What a request came to.
enum Served {
    /// A room opened (or opened again): the connection waits in it.
    Room(Async<TcpStream>, Room, u32, bool, Vec<u8>),
    /// Nothing is left to do here: the connection joined a room (the
    /// room's task has it now), or was told who the relay is.
    Done,
    /// One line to answer, then close.
    Answer(Async<TcpStream>, Reply),
}

/// Serves a request from `peer`, at once: `hello` is answered and costs
/// nothing more; an address with too many strikes is refused anything
/// else; `open` opens a room or takes its own back; `join` pairs or is
/// refused, a number that never was a room being a strike; `close` ends a
/// room for good.
fn serve(
    relay: &Relay,
    request: Request,
    stream: Async<TcpStream>,
    peer: SocketAddr,
    early: Vec<u8>,
) -> Served {
    let addr = Addr::of(peer.ip());
    let now = relay.now();
    let hello = matches!(request, Request::Hello);
    if !hello && relay.strikes.borrow_mut().refuse(addr, now) {
        return Served::Answer(stream, Reply::Refused(Refusal::TooManyTries));
    }
    let strike = |addr: Option<Addr>| {
        if let Some(addr) = addr {
            relay.strikes.borrow_mut().strike(addr, now);
        }
    };
    match request {
        Request::Open { key, direct } => {
            let opened = relay.rooms.borrow_mut().open(addr, key, relay.capacity, now);
            match opened {
                Ok(opened) => {
                    strike(opened.struck);
                    Served::Room(stream, opened.room, opened.turn, direct, early)
                }
                Err(refusal) => Served::Answer(stream, Reply::Refused(refusal)),
            }
        }
        Request::Join { room, direct } => {
            let joiner = Box::new(Joiner { stream, peer, direct, early });
            let joined = relay.rooms.borrow_mut().join(room, addr, joiner, now);
            match joined {
                Ok(()) => Served::Done,
                Err(refused) => {
                    strike(refused.strike.then_some(addr));
                    Served::Answer(refused.joiner.stream, Reply::Refused(refused.refusal))
                }
            }
        }
        Request::Close { key } => {
            // The joiner of the room's last pair took it and failed its
            // handshake.
            strike(relay.rooms.borrow_mut().close(&key, now));
            Served::Answer(stream, Reply::Closed)
        }
        // No strike, no room, no lingering.
        Request::Hello => {
            let _ = write_line(&stream, &Reply::Relay);
            Served::Done
        }
    }
}

/// What happened to a waiting room.
enum InRoom {
    Joined(Box<Joiner>),
    Ended,
    Left,
    TooEarly,
}

/// Waits in room `room`, turn `turn`, for its joiner, then copies the pair.
/// When the one waiting leaves, sends too much ahead or waits past
/// `--wait`, a keyed room is held for its server to open again, and any
/// other is gone at once; when its server opens it again from another
/// connection, or closes it, this connection is closed.
async fn wait_in_room(
    relay: Rc<Relay>,
    stream: Async<TcpStream>,
    peer: SocketAddr,
    direct: bool,
    mut early: Vec<u8>,
    room: Room,
    turn: u32,
) {
    let mut outcome = Some(InRoom::Left);
    if write_line(&stream, &Reply::Room(room)).is_ok() {
        let expires = Instant::now() + relay.wait;
        outcome = within(expires, waiting(&relay, &stream, &mut early, room, turn)).await;
    }
    let refusal = match outcome {
        Some(InRoom::Joined(joiner)) => {
            // Each side gets `paired`, its `seen` if it asked, then the
            // other's early bytes; then the copy, in a task of its own, so
            // that an idle pair holds only what the copy needs.
            let to_owner = first_bytes(peer, direct, &joiner.early);
            let to_joiner = first_bytes(joiner.peer, joiner.direct, &early);
            let early = [early.len() as u64, joiner.early.len() as u64];
            let pair = Pair::new(stream, joiner.stream, to_owner, to_joiner, relay.wait);
            tasks::spawn(chat(relay.clone(), pair, early, room, turn));
            return;
        }
        Some(InRoom::Ended) => return,
        Some(InRoom::Left) => None,
        Some(InRoom::TooEarly) => Some(Refusal::TooEarly),
        None => Some(Refusal::expired(relay.wait)),
    };
    let held = relay.rooms.borrow_mut().left(room, turn, relay.now());
    let until = Instant::now() + relay.hold;
    if let Some(refusal) = refusal {
        last_word(&relay, &stream, &Reply::Refused(refusal)).await;
    }
    drop(stream);
    if held {
        hold(&relay, room, turn, until).await;
    }
}

/// Waits in a room until a joiner comes, the turn ends, or the one waiting
/// leaves or sends too much ahead; bytes sent ahead are kept for the
/// joiner.
async fn waiting(
    relay: &Relay,
    stream: &Async<TcpStream>,
    early: &mut Vec<u8>,
    room: Room,
    turn: u32,
) -> InRoom {
    loop {
        // The joiner first: a joiner that came as the owner left still
        // meets what is left of the owner's connection.
        let event = future::poll_fn(|cx| {
            if let Poll::Ready(event) = relay.rooms.borrow_mut().poll_joined(room, turn, cx) {
                return Poll::Ready(Some(event));
            }
            stream.poll_readable(cx).map(|_| None)
        })
        .await;
        match event {
            Some(Event::Joined(joiner)) => return InRoom::Joined(joiner),
            Some(Event::Ended) => return InRoom::Ended,
            None => {}
        }
        let room_left = MAX_LINE.saturating_sub(early.len());
        let got = with_scratch(|buf| {
            let got = read(stream, &mut buf[..room_left.max(1)]);
            if let Ok(n) = got {
                early.extend_from_slice(&buf[..n]);
            }
            got
        });
        match got {
            Err(e)
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Ok(0) | Err(_) => return InRoom::Left,
            Ok(_) if early.len() > MAX_LINE => return InRoom::TooEarly,
            Ok(_) => {}
        }
    }
}

/// Holds room `room` for turn `turn` until `until`, for its server to
/// open it again (or close it), which ends the turn; then it is gone.
async fn hold(relay: &Relay, room: Room, turn: u32, until: Instant) {
    let ended = future::poll_fn(|cx| relay.rooms.borrow_mut().poll_ended(room, turn, cx));
    if within(until, ended).await.is_none() {
        relay.rooms.borrow_mut().held_over(room, turn, relay.now());
    }
}

/// A pair's life, from its first line to its last, for the operator; then
/// its room is held for its server, if it has a key. Ends at once when its
/// server opens the room again or closes it (the joiner failed the
/// handshake): both connections are closed. The copy and the room are
/// watched by one small future, so that an idle pair's task holds little
/// more than the pair: written as a block that uses the pair where it was
/// moved in (an `async fn` would move its argument once more, into a
/// second place in the task).
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn chat(
    relay: Rc<Relay>,
    mut pair: Pair,
    early: [u64; 2],
    room: Room,
    turn: u32,
) -> impl Future<Output = ()> {
    async move {
        status(&format!("pair formed ({})", relay.load()));
        let started = Instant::now();
        // The room is looked up only when some room's turn has ended since
        // the last look (its waker stays registered meanwhile): a busy
        // pair's wakes cost no lookup.
        let mut looked = None;
        let taken_back = future::poll_fn(|cx| {
            if Pin::new(&mut pair).poll(cx).is_ready() {
                return Poll::Ready(false);
            }
            let mut rooms = relay.rooms.borrow_mut();
            if looked == Some(rooms.turns_ended()) {
                return Poll::Pending;
            }
            looked = Some(rooms.turns_ended());
            rooms.poll_ended(room, turn, cx).map(|()| true)
        })
        .await;
        let copied = pair.copied();
        drop(pair);
        let held = !taken_back && relay.rooms.borrow_mut().pair_ended(room, turn, relay.now());
        status(&format!(
            "pair ended after {} s, {} and {} bytes ({})",
            started.elapsed().as_secs(),
            copied[0] + early[0],
            copied[1] + early[1],
            relay.load()
        ));
        if held {
            let until = Instant::now() + relay.hold;
            let relay = relay.clone();
            tasks::spawn(async move { hold(&relay, room, turn, until).await });
        }
    }
}

/// What a side is sent once paired: `paired`, `seen ADDR:PORT` if it asked,
/// then what the other side sent ahead.
fn first_bytes(peer: SocketAddr, direct: bool, others_early: &[u8]) -> Vec<u8> {
    let mut bytes = Reply::Paired.line().into_bytes();
    if direct {
        bytes.extend_from_slice(Reply::Seen(peer).line().as_bytes());
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

/// Sends the connection its last line (a refusal, or `closed`) and closes:
/// a FIN, then what it still sends is read and dropped for a moment, so
/// that the close does not turn into a reset that could hide the line.
/// While it lingers the connection is in the lobby, which turns it out
/// first when a newer connection needs the place.
async fn last_word(relay: &Relay, stream: &Async<TcpStream>, reply: &Reply) {
    if let Reply::Refused(_) = reply {
        relay.refused.set(relay.refused.get() + 1);
    }
    if write_line(stream, reply).is_err() {
        return;
    }
    let _ = stream.get_ref().shutdown(Shutdown::Write);
    // Turned out of a full lobby: no time to linger.
    if *reply == Reply::Refused(Refusal::Busy) {
        return;
    }
    let Some(ticket) = relay.lobby.borrow_mut().linger() else { return };
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
    within(Instant::now() + REFUSAL_LINGER, drain.or(ticket.evicted.wait())).await;
    relay.lobby.borrow_mut().leave(&ticket);
}

/// Sums up the refusals once a minute, if there were any: a flood of bad
/// connections must not flood the log.
async fn sum_up_refusals(relay: Rc<Relay>) {
    loop {
        // A periodic summary, not a race: nothing else is waited for.
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
