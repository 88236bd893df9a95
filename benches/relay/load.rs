//! The relay bench's load generator and its readings of the relay process:
//! plain blocking sockets with deadlines in one thread (pairs are formed one
//! after another; the ping-pong keeps a message in flight on every active
//! pair at once), so that the generator costs little beside the relay.

use crate::common::{median, Reaped};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Resource, Rlimit};

#[path = "attack.rs"]
mod attack;
#[path = "private.rs"]
mod private;

/// A relayed message, its `\n` included.
const MESSAGE: usize = 40;

/// The longest any one step may take: a connect, a line, a message.
const DEADLINE: Duration = Duration::from_secs(20);

/// Kernel clock ticks per second in /proc (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// The goals the relay is measured against.
const GOAL_PAIRS: usize = 9_000;
const GOAL_BYTES_PER_PAIR: f64 = 2048.0;
const GOAL_CPU_RATIO: f64 = 0.15;
const GOAL_SYSCALLS: f64 = 3.0;

/// What a run does: pairs held, how many of them ping-pong, and how often.
#[derive(Clone, Copy)]
struct Load {
    pairs: usize,
    active: usize,
    round_trips: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Smolchat,
    Transit,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Smolchat => "smolchat",
            Kind::Transit => "transit",
        }
    }
}

/// One run's figures.
#[derive(Clone, Copy)]
struct Figures {
    pairs: usize,
    /// Seconds to form every pair (and make its one round trip).
    form: f64,
    /// The relay's RSS idle, and with every pair held, in KiB.
    idle_kib: f64,
    held_kib: f64,
    /// The relay's CPU per pair formed, in µs.
    form_cpu: f64,
    /// The relay's CPU per relayed message, in µs, and messages per second.
    msg_cpu: f64,
    msgs_per_s: f64,
    /// The generator's own CPU per relayed message, in µs.
    gen_cpu: f64,
}

impl Figures {
    /// RSS growth per held pair, in bytes.
    fn per_pair(&self) -> f64 {
        (self.held_kib - self.idle_kib) * 1024.0 / self.pairs as f64
    }
}

pub fn main() -> ExitCode {
    let bench = is_bench();
    let number = |name: &str, default: usize| {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let runs = if bench { number("BENCH_RUNS", 3) } else { 1 };
    let mut load = if bench {
        Load {
            pairs: number("BENCH_RELAY_PAIRS", GOAL_PAIRS),
            active: number("BENCH_RELAY_ACTIVE", 200),
            round_trips: number("BENCH_RELAY_ROUND_TRIPS", 500),
        }
    } else {
        Load { pairs: 100, active: 20, round_trips: 20 }
    };
    let files = raise_open_files();
    // Two sockets a pair, and a few files besides.
    let most = (files.saturating_sub(64) / 2) as usize;
    if load.pairs > most {
        println!(
            "relay: the open-file limit is {files}, so {most} pairs at most, not {}",
            load.pairs
        );
        load.pairs = most;
    }
    load.active = load.active.clamp(1, load.pairs.max(1));
    let transit_pairs = if bench { number("BENCH_TRANSIT_PAIRS", load.pairs) } else { load.pairs };
    let transit_load = Load { pairs: transit_pairs.min(most), ..load };

    let mut kinds = vec![Kind::Smolchat];
    if std::env::var_os("BENCH_RELAY_TRANSIT").is_some_and(|v| v == "0") {
        println!("relay: BENCH_RELAY_TRANSIT=0: smolchat's figures alone");
    } else if on_path("twist").is_some() {
        kinds.push(Kind::Transit);
    } else {
        println!("relay: twist (magic-wormhole's transit relay) is not on PATH: smolchat's figures alone");
    }
    let load_of = |kind| if kind == Kind::Transit { transit_load } else { load };

    println!(
        "{:<9} {:>6} {:>7} {:>9} {:>9} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "relay",
        "pairs",
        "form s",
        "idle KiB",
        "held KiB",
        "B/pair",
        "us/pair",
        "us/msg",
        "msg/s",
        "gen us"
    );
    let mut ok = true;
    let mut figures: Vec<[Option<Figures>; 2]> = Vec::new();
    for _ in 0..runs {
        let mut this = [None, None];
        for &kind in &kinds {
            match run(kind, load_of(kind), None) {
                Ok((f, _)) => this[kind as usize] = Some(f),
                Err(e) => {
                    println!("{}: FAIL: {e}", kind.name());
                    ok = false;
                }
            }
        }
        figures.push(this);
    }
    let mut medians: [Option<Figures>; 2] = [None, None];
    for &kind in &kinds {
        let runs: Vec<Figures> = figures.iter().filter_map(|f| f[kind as usize]).collect();
        if runs.is_empty() {
            continue;
        }
        let m = |f: fn(&Figures) -> f64| median(runs.iter().map(f).collect());
        let f = Figures {
            pairs: runs[0].pairs,
            form: m(|f| f.form),
            idle_kib: m(|f| f.idle_kib),
            held_kib: m(|f| f.held_kib),
            form_cpu: m(|f| f.form_cpu),
            msg_cpu: m(|f| f.msg_cpu),
            msgs_per_s: m(|f| f.msgs_per_s),
            gen_cpu: m(|f| f.gen_cpu),
        };
        println!(
            "{:<9} {:>6} {:>7.2} {:>9.0} {:>9.0} {:>8.0} {:>10.1} {:>9.2} {:>9.0} {:>9.2}",
            kind.name(),
            f.pairs,
            f.form,
            f.idle_kib,
            f.held_kib,
            m(|f| f.per_pair()),
            f.form_cpu,
            f.msg_cpu,
            f.msgs_per_s,
            f.gen_cpu,
        );
        medians[kind as usize] = Some(f);
    }
    let both: Vec<(Figures, Figures)> =
        figures.iter().filter_map(|[s, t]| Some(((*s)?, (*t)?))).collect();
    let ratio = |f: fn(&Figures) -> f64| median(both.iter().map(|(s, t)| f(s) / f(t)).collect());
    if !both.is_empty() {
        println!(
            "{:<9} {:>6} {:>7.2} {:>9} {:>9} {:>8.2} {:>10.2} {:>9.3} {:>9.2}",
            "ratio",
            "",
            ratio(|f| f.form),
            "",
            "",
            ratio(Figures::per_pair),
            ratio(|f| f.form_cpu.max(0.01)),
            ratio(|f| f.msg_cpu.max(0.001)),
            ratio(|f| f.msgs_per_s),
        );
    }

    // System calls during the ping-pong: strace names them but slows the
    // relay (so its batches grow); perf's tracepoint count barely does.
    let mut syscalls = [None, None];
    if bench && std::env::var_os("BENCH_RELAY_SYSCALLS").is_some() {
        for tool in [Tool::Strace, Tool::Perf] {
            if on_path(tool.program()).is_none() {
                println!("relay: {} is not on PATH: no system call counts from it", tool.program());
                continue;
            }
            for &kind in &kinds {
                match run(kind, load_of(kind), Some(tool)) {
                    Ok((_, Some(counts))) => {
                        report_syscalls(kind, tool, &counts, load_of(kind));
                        syscalls[kind as usize] =
                            Some((counts.total as f64 / messages(load_of(kind)), tool.program()));
                    }
                    Ok((_, None)) => {}
                    Err(e) => {
                        println!("{} under {}: FAIL: {e}", kind.name(), tool.program());
                        ok = false;
                    }
                }
            }
        }
    }

    if let Some(s) = medians[Kind::Smolchat as usize].filter(|_| bench) {
        goal(
            &format!("{GOAL_PAIRS} pairs held at once"),
            &format!("{} held", s.pairs),
            s.pairs >= GOAL_PAIRS,
        );
        let per_pair = median(figures.iter().filter_map(|f| f[0]).map(|f| f.per_pair()).collect());
        goal(
            "RSS growth <= 2 KiB per held pair",
            &format!("{per_pair:.0} B"),
            per_pair <= GOAL_BYTES_PER_PAIR,
        );
        if !both.is_empty() {
            let r = ratio(|f| f.msg_cpu.max(0.001));
            goal(
                "CPU per message <= 0.15 x the transit relay's",
                &format!(
                    "{r:.3} x ({:.2} us vs {:.2} us)",
                    s.msg_cpu,
                    medians[1].map_or(0.0, |t| t.msg_cpu)
                ),
                r <= GOAL_CPU_RATIO,
            );
        }
        // perf's count when there is one: it changes the relay's batching least.
        if let Some((calls, tool)) = syscalls[0] {
            goal(
                "system calls per message <= 3",
                &format!("{calls:.2} (by {tool})"),
                calls <= GOAL_SYSCALLS,
            );
        }
    }

    let meets = if bench { number("BENCH_RELAY_MEETS", 30) } else { 3 };
    if meets > 0 {
        ok &= attack::main(meets);
    }

    let (private_runs, round_trips) =
        if bench { (runs, number("BENCH_PRIVATE_ROUND_TRIPS", 5_000)) } else { (1, 50) };
    if cfg!(feature = "private") {
        ok &= private::main(private_runs, round_trips);
    } else {
        println!("private round trips: this build has no private chats: skipped");
    }

    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Whether this is `cargo bench`, not `cargo test --benches`' short run.
fn is_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The smolchat to measure: this build's, or `BENCH_SMOLCHAT`.
fn smolchat() -> Command {
    match std::env::var_os("BENCH_SMOLCHAT") {
        Some(path) => Command::new(path),
        None => Command::new(env!("CARGO_BIN_EXE_smolchat")),
    }
}

fn goal(what: &str, measured: &str, met: bool) {
    println!("goal: {what}: {measured}: {}", if met { "met" } else { "MISSED" });
}

fn messages(load: Load) -> f64 {
    (2 * load.active * load.round_trips) as f64
}

/// One run of `load` through a fresh relay of `kind`; with `trace`, the
/// ping-pong's system calls are counted by that tool too (which slows the
/// relay, so that run's times are not reported).
fn run(kind: Kind, load: Load, trace: Option<Tool>) -> Result<(Figures, Option<Counts>), String> {
    let mut relay = start(kind, load)?;
    let pid = relay.child.0.id();
    let idle_kib = rss_kib(pid)?;
    let cpu_before = cpu_ticks(pid)?;
    let began = Instant::now();
    let mut pairs = Vec::with_capacity(load.pairs);
    for i in 0..load.pairs {
        let pair = form(kind, relay.port, i).map_err(|e| format!("pair {i}: {e}"))?;
        pairs.push(pair);
    }
    let form = began.elapsed().as_secs_f64();
    let cpu_formed = cpu_ticks(pid)?;
    let held_kib = rss_kib(pid)?;

    let tracer = trace.map(|tool| Tracer::attach(tool, pid)).transpose()?;
    let gen_before = cpu_ticks(std::process::id())?;
    let cpu_before_ping = cpu_ticks(pid)?;
    let began = Instant::now();
    ping_pong(&mut pairs[..load.active], load.round_trips)?;
    let wall = began.elapsed().as_secs_f64();
    let cpu_after = cpu_ticks(pid)?;
    let gen_after = cpu_ticks(std::process::id())?;
    let counts = tracer.map(Tracer::finish).transpose()?;
    relay.check_alive()?;
    drop(relay);
    drop(pairs);

    let us = |ticks: u64| ticks as f64 / TICKS * 1e6;
    let messages = messages(load);
    Ok((
        Figures {
            pairs: load.pairs,
            form,
            idle_kib,
            held_kib,
            form_cpu: us(cpu_formed - cpu_before) / load.pairs.max(1) as f64,
            msg_cpu: us(cpu_after - cpu_before_ping) / messages,
            msgs_per_s: messages / wall,
            gen_cpu: us(gen_after - gen_before) / messages,
        },
        counts,
    ))
}

/// A running relay, killed and reaped when dropped.
struct Relay {
    child: Reaped,
    port: u16,
}

impl Relay {
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.0.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the relay ended during the run: {status}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Starts a relay of `kind` on a free loopback port and waits until it
/// listens.
fn start(kind: Kind, load: Load) -> Result<Relay, String> {
    match kind {
        Kind::Smolchat => {
            let (child, port) = start_smolchat_relay(smolchat(), load.pairs, "127.0.0.1")?;
            Ok(Relay { child, port })
        }
        Kind::Transit => {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("cannot find a free port: {e}"))?
                .port();
            let child = Reaped(
                Command::new("twist")
                    .arg("transitrelay")
                    .arg(format!("--port=tcp:{port}:interface=127.0.0.1"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("cannot start twist: {e}"))?,
            );
            let mut relay = Relay { child, port };
            // It says nothing in a form worth reading: it is listening once
            // a connection is taken.
            let deadline = Instant::now() + Duration::from_secs(30);
            while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
                relay.check_alive()?;
                if Instant::now() > deadline {
                    return Err("twist transitrelay did not listen within 30 s".into());
                }
                thread::sleep(Duration::from_millis(50));
            }
            Ok(relay)
        }
    }
}

/// Starts `relay` (smolchat, or taskset starting it) as `smolchat relay` on a free loopback port for `pairs` pairs: the
/// relay and its port.
fn start_smolchat_relay(
    mut relay: Command,
    pairs: usize,
    bind: &str,
) -> Result<(Reaped, u16), String> {
    let max_chats = (pairs + 16).max(10_000).to_string();
    let mut child = Reaped(
        relay
            .args(["relay", "--bind", bind, "--max-chats", &max_chats, "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start smolchat relay: {e}"))?,
    );
    // The first status line names the port; the rest (a line a pair) is
    // read and dropped so that the relay never blocks on it.
    let status = BufReader::new(child.0.stderr.take().expect("piped stderr"));
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = status.lines();
        let _ = tx.send(lines.next());
        lines.for_each(drop);
    });
    let line = match rx.recv_timeout(DEADLINE) {
        Ok(Some(Ok(line))) => line,
        Ok(_) => return Err("smolchat relay ended before it listened".into()),
        Err(_) => return Err("smolchat relay did not say it listened".into()),
    };
    let port = line
        .strip_prefix("smolchat: relay listening on ")
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("smolchat relay said: {line}"))?;
    Ok((child, port))
}

/// A connection to the relay from `from`, a loopback address of the pair's
/// own: connect(2) alone would take every port from 127.0.0.1, and past
/// about 14,000 connections to one port the kernel's search for a free one
/// costs a millisecond a connect.
fn connect(port: u16, from: Ipv4Addr) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(DEADLINE))?;
    // The send timeout bounds the connect too.
    stream.set_write_timeout(Some(DEADLINE))?;
    rustix::net::bind(&stream, &SocketAddr::from((from, 0)))?;
    rustix::net::connect(&stream, &SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Pair `i`'s loopback address: 127.1.0.1 and on, one a pair.
fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1 + (i / 62_500) as u8, (i / 250 % 250) as u8, (i % 250 + 1) as u8)
}

/// A pair: the opener's connection and the joiner's, paired, after one
/// round trip.
struct Pair {
    opener: TcpStream,
    joiner: TcpStream,
}

/// Forms pair `i` through a relay of `kind` and makes its first round trip.
fn form(kind: Kind, port: u16, i: usize) -> io::Result<Pair> {
    let (mut opener, mut joiner) = match kind {
        Kind::Smolchat => {
            let mut opener = connect(port, source(i))?;
            opener.write_all(b"smolchat-relay/1 open\n")?;
            let line = read_line(&mut opener)?;
            let room =
                line.strip_prefix("room ").ok_or_else(|| unexpected("room N", &line))?.to_string();
            let mut joiner = connect(port, source(i))?;
            joiner.write_all(format!("smolchat-relay/1 join {room}\n").as_bytes())?;
            expect_line(&mut joiner, "paired")?;
            expect_line(&mut opener, "paired")?;
            (opener, joiner)
        }
        Kind::Transit => {
            let token = format!("{i:064x}");
            let mut opener = connect(port, source(i))?;
            opener
                .write_all(format!("please relay {token} for side {:016x}\n", 2 * i).as_bytes())?;
            let mut joiner = connect(port, source(i))?;
            joiner.write_all(
                format!("please relay {token} for side {:016x}\n", 2 * i + 1).as_bytes(),
            )?;
            expect_line(&mut opener, "ok")?;
            expect_line(&mut joiner, "ok")?;
            (opener, joiner)
        }
    };
    round_trip(&mut opener, &mut joiner, i, 0)?;
    Ok(Pair { opener, joiner })
}

/// Reads one line the relay sent (nothing follows it until this side
/// speaks, so reading more than the line cannot take anything else).
fn read_line(stream: &mut TcpStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut chunk = [0; 128];
    while line.last() != Some(&b'\n') {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            let said = String::from_utf8_lossy(&line).into_owned();
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed after {said:?}"),
            ));
        }
        line.extend_from_slice(&chunk[..n]);
        if line.len() > 1024 {
            return Err(unexpected("a line", &String::from_utf8_lossy(&line)));
        }
    }
    line.pop();
    String::from_utf8(line).map_err(|e| unexpected("text", &String::from_utf8_lossy(e.as_bytes())))
}

fn expect_line(stream: &mut TcpStream, want: &str) -> io::Result<()> {
    let line = read_line(stream)?;
    if line == want {
        Ok(())
    } else {
        Err(unexpected(want, &line))
    }
}

fn unexpected(want: &str, got: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("wanted {want:?}, the relay sent {got:?}"))
}

/// The message of pair `pair` in round `round`: `tag`, both numbers, dashes
/// and `\n`, [`MESSAGE`] bytes in all.
fn message(tag: u8, pair: usize, round: usize) -> [u8; MESSAGE] {
    let mut m = [b'-'; MESSAGE];
    m[0] = tag;
    let mut put = |at: usize, mut n: usize| {
        for i in (at..at + 10).rev() {
            m[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(1, pair);
    put(12, round);
    m[MESSAGE - 1] = b'\n';
    m
}

fn receive(stream: &mut TcpStream, want: &[u8; MESSAGE]) -> io::Result<()> {
    let mut got = [0; MESSAGE];
    stream.read_exact(&mut got)?;
    if &got == want {
        Ok(())
    } else {
        Err(unexpected(&String::from_utf8_lossy(want), &String::from_utf8_lossy(&got)))
    }
}

fn round_trip(
    opener: &mut TcpStream,
    joiner: &mut TcpStream,
    pair: usize,
    round: usize,
) -> io::Result<()> {
    let (question, answer) = (message(b'q', pair, round), message(b'a', pair, round));
    opener.write_all(&question)?;
    receive(joiner, &question)?;
    joiner.write_all(&answer)?;
    receive(opener, &answer)
}

/// `rounds` rounds on every pair of `pairs` at once: all openers send, all
/// joiners answer, all openers read, so that a message is in flight on
/// every pair.
fn ping_pong(pairs: &mut [Pair], rounds: usize) -> Result<(), String> {
    let failed =
        |i: usize, round: usize| move |e: io::Error| format!("pair {i}, round {round}: {e}");
    for round in 1..=rounds {
        for (i, p) in pairs.iter_mut().enumerate() {
            p.opener.write_all(&message(b'q', i, round)).map_err(failed(i, round))?;
        }
        for (i, p) in pairs.iter_mut().enumerate() {
            receive(&mut p.joiner, &message(b'q', i, round)).map_err(failed(i, round))?;
            p.joiner.write_all(&message(b'a', i, round)).map_err(failed(i, round))?;
        }
        for (i, p) in pairs.iter_mut().enumerate() {
            receive(&mut p.opener, &message(b'a', i, round)).map_err(failed(i, round))?;
        }
    }
    Ok(())
}

/// What counts a running relay's system calls.
#[derive(Clone, Copy)]
enum Tool {
    /// `strace -c -f -p PID`: every call by name.
    Strace,
    /// `perf stat -e raw_syscalls:sys_enter -p PID`: the total only.
    Perf,
}

impl Tool {
    fn program(self) -> &'static str {
        match self {
            Tool::Strace => "strace",
            Tool::Perf => "perf",
        }
    }
}

/// A tool attached to a running process, counting its system calls.
struct Tracer {
    tool: Tool,
    child: Reaped,
    output: PathBuf,
}

/// What was counted: all calls, and the most frequent ones by name (strace
/// only).
struct Counts {
    total: u64,
    calls: Vec<(String, u64)>,
}

impl Tracer {
    fn attach(tool: Tool, pid: u32) -> Result<Tracer, String> {
        let output = std::env::temp_dir().join(format!(
            "smolchat-relay-{}-{}",
            tool.program(),
            std::process::id()
        ));
        let mut command = Command::new(tool.program());
        match tool {
            Tool::Strace => command.args(["-c", "-f", "-q", "-o"]),
            Tool::Perf => command.args(["stat", "-e", "raw_syscalls:sys_enter", "-x", ",", "-o"]),
        };
        let child = Reaped(
            command
                .arg(&output)
                .args(["-p", &pid.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", tool.program()))?,
        );
        // strace: once every thread of the relay has a tracer; perf: once
        // it holds its counters.
        let tracer_pid = child.0.id();
        let attached = || match tool {
            Tool::Strace => traced(pid),
            Tool::Perf => counting(tracer_pid),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !attached() {
            if Instant::now() > deadline {
                return Err(format!("{} did not attach within 10 s", tool.program()));
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(Tracer { tool, child, output })
    }

    fn finish(mut self) -> Result<Counts, String> {
        let name = self.tool.program();
        let pid = rustix::process::Pid::from_raw(self.child.0.id() as i32).expect("a child's pid");
        rustix::process::kill_process(pid, rustix::process::Signal::INT)
            .map_err(|e| format!("cannot stop {name}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.0.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > deadline {
                return Err(format!("{name} did not end within 10 s"));
            }
            thread::sleep(Duration::from_millis(10));
        }
        let text = fs::read_to_string(&self.output).map_err(|e| format!("{name}'s counts: {e}"))?;
        let _ = fs::remove_file(&self.output);
        let counts = match self.tool {
            Tool::Strace => parse_counts(&text),
            Tool::Perf => parse_perf(&text),
        };
        counts.ok_or_else(|| format!("{name}'s counts, unread: {text}"))
    }
}

/// Reads `perf stat -x ,`'s line: `count,unit,event,...`.
fn parse_perf(text: &str) -> Option<Counts> {
    let line = text.lines().find(|l| l.contains("raw_syscalls:sys_enter"))?;
    let total = line.split(',').next()?.trim().parse().ok()?;
    Some(Counts { total, calls: Vec::new() })
}

/// Whether process `pid` holds a perf event.
fn counting(pid: u32) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().contains("perf_event"))
    })
}

/// Reads `strace -c`'s table: `% time, seconds, usecs/call, calls, [errors,]
/// syscall`, and its `total` line.
fn parse_counts(text: &str) -> Option<Counts> {
    let mut calls = Vec::new();
    let mut total: Option<u64> = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(count)) =
            (words.last(), words.get(3).and_then(|c| c.parse::<u64>().ok()))
        else {
            continue;
        };
        if words[0].parse::<f64>().is_err() {
            continue;
        }
        if *name == "total" {
            total = Some(count);
        } else {
            calls.push((name.to_string(), count));
        }
    }
    calls.sort_by_key(|c| std::cmp::Reverse(c.1));
    Some(Counts { total: total?, calls })
}

fn report_syscalls(kind: Kind, tool: Tool, counts: &Counts, load: Load) {
    let messages = messages(load);
    let top: Vec<String> = counts
        .calls
        .iter()
        .take_while(|(_, n)| *n as f64 / messages >= 0.005)
        .map(|(name, n)| format!("{name} {:.2}", *n as f64 / messages))
        .collect();
    let how = match tool {
        Tool::Strace => "strace -c -f",
        Tool::Perf => "perf stat -e raw_syscalls:sys_enter",
    };
    let names = if top.is_empty() { String::new() } else { format!(" ({})", top.join(", ")) };
    println!(
        "{:<9} system calls per message under {how}: {:.2}{names}",
        kind.name(),
        counts.total as f64 / messages,
    );
}

/// Whether every thread of `pid` has a tracer.
fn traced(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let tracer = status.lines().find_map(|l| l.strip_prefix("TracerPid:"));
        if tracer.is_none_or(|t| t.trim() == "0") {
            return false;
        }
        any = true;
    }
    any
}

/// The resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> Result<f64, String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches(" kB").parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// The user and system time of `pid`, all its threads, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // Fields after the command name, which ends with `)`: utime and stime
    // are the 14th and 15th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    fields.get(11..13).map(|t| t[0] + t[1]).ok_or_else(|| format!("/proc/{pid}/stat unread"))
}

/// Raises this process's soft open-file limit to its hard one; the limit
/// it then has.
fn raise_open_files() -> u64 {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
    match rustix::process::setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum.unwrap_or(u64::MAX),
        Err(_) => limit.current.unwrap_or(u64::MAX),
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
