//! The relay bench's attacks: how long a real pair takes to meet through
//! `smolchat relay` while someone attacks it as fast as it answers, against
//! the same with nobody attacking. A real pair is a server that opens a
//! keyed room and a friend who joins it with the right number, then one
//! round trip; each from a loopback address of its own (a room is held ten
//! seconds after its pair, and counts for its server's address meanwhile).
//!
//! - sweep, 1 address: one thread joins numbers nobody holds, a connection
//!   each, from 127.2.0.1 (and gets `too many tries` after eight);
//! - sweep, 20 addresses: twenty such threads, from 127.2.1.1-20;
//! - sweep, a /64: four threads, every connection from a fresh address in
//!   2001:db8:7::/64, the relay and everyone in a network namespace of the
//!   bench's own (root and `ip` needed; otherwise the bench says so);
//! - self-made pairs: eight threads, each from sixteen addresses, form
//!   pairs with themselves until refused, then end the oldest and form
//!   another, for ever.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::median;
use crate::netns::Netns;

use super::{expect_line, read_line, round_trip, smolchat, start_smolchat_relay, DEADLINE};

/// What the attackers did.
#[derive(Default)]
struct Attacked {
    /// Requests the attack made.
    tries: usize,
    /// Of them, `no room N`: numbers it really got to try.
    no_room: usize,
}

/// Runs every attack with `meets` real pairs meeting during each; false if
/// one failed.
pub fn main(meets: usize) -> bool {
    println!(
        "\n{:<22} {:>6} {:>11} {:>11} {:>10} {:>9}",
        "a real pair meets", "meets", "median ms", "slowest ms", "tries/s", "no room"
    );
    let mut ok = true;
    let loopback: [(&str, Attack); 4] = [
        ("nobody attacking", Attack::None),
        ("sweep, 1 address", Attack::Sweep(1)),
        ("sweep, 20 addresses", Attack::Sweep(20)),
        ("self-made pairs", Attack::SelfPairs),
    ];
    for (name, attack) in loopback {
        ok &= report(name, run(attack, meets, None));
    }
    // The attacker's /64, and the real pairs' /48 (a /64 each).
    let namespace = || {
        if !rustix::process::geteuid().is_root() {
            return Err("a network namespace needs root".to_string());
        }
        let name = format!("scbench{}", std::process::id());
        Netns::new(name, &["2001:db8:7::/64", "2001:db8:8::/48"])
    };
    match namespace() {
        Ok(ns) => ok &= report("sweep, one /64", run(Attack::Sweep64, meets, Some(&ns))),
        Err(why) => println!("{:<22} skipped: {why}", "sweep, one /64"),
    }
    ok
}

fn report(name: &str, result: Result<(Vec<f64>, Attacked, f64), String>) -> bool {
    match result {
        Ok((times, attacked, seconds)) => {
            let slowest = times.iter().copied().fold(0.0, f64::max);
            println!(
                "{name:<22} {:>6} {:>11.2} {:>11.2} {:>10.0} {:>9}",
                times.len(),
                median(times),
                slowest,
                attacked.tries as f64 / seconds,
                attacked.no_room
            );
            true
        }
        Err(e) => {
            println!("{name:<22} FAIL: {e}");
            false
        }
    }
}

#[derive(Clone, Copy)]
enum Attack {
    None,
    Sweep(u8),
    Sweep64,
    SelfPairs,
}

/// A fresh relay, the attack on threads, and `meets` real pairs one after
/// another while it runs: the meeting times in ms, what the attack did and
/// how many seconds it ran.
fn run(
    attack: Attack,
    meets: usize,
    ns: Option<&Netns>,
) -> Result<(Vec<f64>, Attacked, f64), String> {
    let (relay, to) = match ns {
        None => {
            let (child, port) = start_smolchat_relay(smolchat(), 0, "127.0.0.1")?;
            (child, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        }
        Some(ns) => {
            let (child, port) = start_smolchat_relay(ns.command(&smolchat()), 0, "::")?;
            (child, SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 7, 0, 0, 0, 0, 1), port)))
        }
    };
    let stop = AtomicBool::new(false);
    let tries = AtomicUsize::new(0);
    let no_room = AtomicUsize::new(0);
    let began = Instant::now();
    let result = thread::scope(|scope| {
        let attackers = start(scope, attack, to, ns, &stop, &tries, &no_room);
        // Let the attack get going before the first real pair.
        let deadline = Instant::now() + DEADLINE;
        while !matches!(attack, Attack::None) && tries.load(Ordering::Relaxed) < 200 {
            if Instant::now() > deadline || attackers.iter().all(|a| a.is_finished()) {
                stop.store(true, Ordering::Relaxed);
                return Err("the attack never got going".to_string());
            }
            thread::sleep(Duration::from_millis(5));
        }
        let meet_all = || {
            (0..meets)
                .map(|i| {
                    // Paced over the attack, not synchronising on it.
                    thread::sleep(Duration::from_millis(20));
                    meet(to, home(ns.is_some(), i), i).map_err(|e| format!("real pair {i}: {e}"))
                })
                .collect::<Result<Vec<f64>, String>>()
        };
        let times = match ns {
            Some(ns) => ns.on(meet_all),
            None => meet_all(),
        };
        stop.store(true, Ordering::Relaxed);
        for attacker in attackers {
            if attacker.join().is_err() {
                return Err("an attacker failed".to_string());
            }
        }
        times
    });
    let seconds = began.elapsed().as_secs_f64();
    drop(relay);
    let attacked =
        Attacked { tries: tries.load(Ordering::Relaxed), no_room: no_room.load(Ordering::Relaxed) };
    Ok((result?, attacked, seconds))
}

/// The address real pair `i` comes from.
fn home(v6: bool, i: usize) -> IpAddr {
    if v6 {
        IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 8, i as u16, 0, 0, 0, 1))
    } else {
        IpAddr::from(Ipv4Addr::new(127, 3, (i / 250) as u8, (i % 250) as u8 + 1))
    }
}

/// A real pair meets: the server opens its keyed room, the friend joins it,
/// one round trip; the time it took, in ms.
fn meet(to: SocketAddr, from: IpAddr, i: usize) -> io::Result<f64> {
    let started = Instant::now();
    let mut server = connect(from, to)?;
    server.write_all(format!("smolchat-relay/1 open {:032x}\n", i + 1).as_bytes())?;
    let line = read_line(&mut server)?;
    let room = line.strip_prefix("room ").ok_or_else(|| unexpected("room N", &line))?;
    let mut friend = connect(from, to)?;
    friend.write_all(format!("smolchat-relay/1 join {room}\n").as_bytes())?;
    expect_line(&mut friend, "paired")?;
    expect_line(&mut server, "paired")?;
    round_trip(&mut server, &mut friend, i, 0)?;
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

fn unexpected(want: &str, got: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("wanted {want:?}, the relay sent {got:?}"))
}

/// A connection from `from` to `to`, in the calling thread's namespace.
fn connect(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let family = if from.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(DEADLINE))?;
    stream.set_write_timeout(Some(DEADLINE))?;
    rustix::net::bind(&stream, &SocketAddr::new(from, 0))?;
    rustix::net::connect(&stream, &to)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

type Attacker<'scope> = thread::ScopedJoinHandle<'scope, ()>;

/// Starts the attack's threads.
fn start<'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    attack: Attack,
    to: SocketAddr,
    ns: Option<&'scope Netns>,
    stop: &'scope AtomicBool,
    tries: &'scope AtomicUsize,
    no_room: &'scope AtomicUsize,
) -> Vec<Attacker<'scope>> {
    match attack {
        Attack::None => Vec::new(),
        Attack::Sweep(addresses) => (0..addresses)
            .map(|n| {
                let from = IpAddr::from(Ipv4Addr::new(127, 2, u8::from(addresses > 1), n + 1));
                scope.spawn(move || sweep(to, || from, u64::from(n) + 1, stop, tries, no_room))
            })
            .collect(),
        Attack::Sweep64 => (1..=4u64)
            .map(|n| {
                let ns = ns.expect("a namespace");
                scope.spawn(move || {
                    ns.on(|| {
                        let mut seed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                        let from = move || {
                            seed = xorshift(seed);
                            let prefix = 0x2001_0db8_0007_0000u128 << 64;
                            IpAddr::from(Ipv6Addr::from(prefix | u128::from(seed)))
                        };
                        sweep(to, from, n, stop, tries, no_room)
                    })
                })
            })
            .collect(),
        Attack::SelfPairs => {
            (0..8u8).map(|n| scope.spawn(move || self_pairs(to, n, stop, tries))).collect()
        }
    }
}

fn xorshift(mut seed: u64) -> u64 {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    seed
}

/// Joins numbers nobody holds, a connection each, until `stop`.
fn sweep(
    to: SocketAddr,
    mut from: impl FnMut() -> IpAddr,
    mut seed: u64,
    stop: &AtomicBool,
    tries: &AtomicUsize,
    no_room: &AtomicUsize,
) {
    while !stop.load(Ordering::Relaxed) {
        seed = xorshift(seed);
        let room = seed % 9_999_999 + 1;
        let Ok(mut stream) = connect(from(), to) else { continue };
        if stream.write_all(format!("smolchat-relay/1 join {room}\n").as_bytes()).is_err() {
            continue;
        }
        if let Ok(line) = read_line(&mut stream) {
            tries.fetch_add(1, Ordering::Relaxed);
            if line.starts_with("no room") {
                no_room.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Forms pairs with itself from sixteen addresses of its own, as many as
/// the relay lets it, then ends the oldest and forms another, until `stop`.
fn self_pairs(to: SocketAddr, n: u8, stop: &AtomicBool, tries: &AtomicUsize) {
    let mut held = std::collections::VecDeque::new();
    let mut address = 0u8;
    while !stop.load(Ordering::Relaxed) {
        address = (address + 1) % 16;
        let from = IpAddr::from(Ipv4Addr::new(127, 4, n, address + 1));
        tries.fetch_add(1, Ordering::Relaxed);
        match self_pair(to, from) {
            Ok(Some(pair)) => held.push_back(pair),
            // Refused: this address holds all it may; let one go.
            Ok(None) | Err(_) => {
                held.pop_front();
            }
        }
    }
}

/// One pair of `from` with itself, or None when the relay refuses it.
fn self_pair(to: SocketAddr, from: IpAddr) -> io::Result<Option<(TcpStream, TcpStream)>> {
    let mut a = connect(from, to)?;
    a.write_all(b"smolchat-relay/1 open\n")?;
    let line = read_line(&mut a)?;
    let Some(room) = line.strip_prefix("room ") else { return Ok(None) };
    let mut b = connect(from, to)?;
    b.write_all(format!("smolchat-relay/1 join {room}\n").as_bytes())?;
    if read_line(&mut b)? != "paired" {
        return Ok(None);
    }
    Ok(Some((a, b)))
}
