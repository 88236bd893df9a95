//! The relay bench's second scenario: a private chat of N round trips of
//! 40-byte lines through pipes, direct (`server --private PORT`, `client
//! --private HOST PORT`) and through `smolchat relay` (`server --relay-only
//! --relay`, `client --relay-only --relay`: never a direct connection), and
//! met through the relay with the direct path allowed (on loopback it is taken),
//! SMOLCHAT_CODE set on both sides; runs alternate, and the ratio is the
//! median of the pair-by-pair ratios of the client's wall time. Both outputs are checked byte for byte. Every process of a run
//! (client, server, relay) is pinned to CPU 0 when `taskset` is there, as in
//! benches/roundtrip.rs; `BENCH_PIN=0` lets them run anywhere.

use crate::common::{median, Reaped, WorkDir};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::smolchat;

/// smolchat, on CPU 0 when `pin`.
fn program(pin: bool) -> std::process::Command {
    let plain = smolchat();
    if !pin {
        return plain;
    }
    let mut pinned = std::process::Command::new("taskset");
    pinned.args(["-c", "0"]).arg(plain.get_program());
    pinned
}

/// The words of the code; the relay gives the number.
const WORDS: &str = "purple-sausages";

/// The longest a run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// Runs the scenario `runs` times each way with `n` round trips; false if a
/// run failed.
pub fn main(runs: usize, n: usize) -> bool {
    let dir = WorkDir::new("smolchat-relay-bench");
    let questions = dir.0.join("questions");
    let answers = dir.0.join("answers");
    if let Err(e) = write_lines(&questions, n, b'q').and_then(|()| write_lines(&answers, n, b'a')) {
        println!("private round trips: FAIL: cannot write the lines: {e}");
        return false;
    }
    let pin = Path::new("/usr/bin/taskset").exists()
        && std::env::var_os("BENCH_PIN").is_none_or(|v| v != "0");
    let mut walls: Vec<[f64; 3]> = Vec::new();
    for _ in 0..runs {
        let direct = run(false, true, pin, &dir.0, &questions, &answers);
        let relayed = run(true, true, pin, &dir.0, &questions, &answers);
        // Met through the relay, then on the direct link it finds (on
        // loopback it always does): what a chat costs when the routers allow.
        let met = run(true, false, pin, &dir.0, &questions, &answers);
        match (direct, relayed, met) {
            (Ok(Some(d)), Ok(Some(r)), Ok(Some(m))) => walls.push([d, r, m]),
            (_, _, Err(e)) => {
                println!("private round trips: met through the relay, then direct: FAIL: {e}");
                return false;
            }
            (_, Ok(None), _) | (_, _, Ok(None)) => {
                println!(
                    "private round trips: this build's server does not meet through a relay \
                     (the chat side of --relay): no relayed figures"
                );
                return true;
            }
            (Err(e), _, _) => {
                println!("private round trips: direct: FAIL: {e}");
                return false;
            }
            (_, Err(e), _) => {
                println!("private round trips: relayed: FAIL: {e}");
                return false;
            }
            (Ok(None), _, _) => unreachable!("a direct run always has a time"),
        }
    }
    if walls.is_empty() {
        return true;
    }
    let wall = |i: usize| median(walls.iter().map(|w| w[i]).collect());
    let ratio = median(walls.iter().map(|w| w[1] / w[0]).collect());
    let met_ratio = median(walls.iter().map(|w| w[2] / w[0]).collect());
    println!(
        "private round trips of 40-byte lines, {n} a run{}: direct {:.3} s ({:.1} us a round trip), \
         relayed {:.3} s ({:.1} us), ratio {ratio:.2}; met through the relay, then direct \
         {:.3} s ({:.1} us), ratio {met_ratio:.2}",
        if pin { ", all on CPU 0" } else { "" },
        wall(0),
        wall(0) * 1e6 / n as f64,
        wall(1),
        wall(1) * 1e6 / n as f64,
        wall(2),
        wall(2) * 1e6 / n as f64,
    );
    // With few round trips the processes' start and the handshake are most
    // of the time: no goal to hold them to.
    if super::is_bench() && n >= 1_000 {
        super::goal(
            "relayed private round trip <= 1.30 x direct",
            &format!("{ratio:.2} x"),
            ratio <= 1.30,
        );
    }
    true
}

/// One private chat, direct or relayed: the client's wall time, or `None`
/// when the server does not meet through a relay.
fn run(
    relayed: bool,
    relay_only: bool,
    pin: bool,
    dir: &Path,
    questions: &Path,
    answers: &Path,
) -> Result<Option<f64>, String> {
    let mut relay = None;
    let server_args: Vec<String> = if relayed {
        let (child, port) = super::start_smolchat_relay(program(pin), 16, "127.0.0.1")?;
        relay = Some(child);
        // With --relay-only through the relay all the way: no direct
        // connection is tried.
        let only = if relay_only { "--relay-only" } else { "--private" };
        vec!["server".into(), only.into(), "--relay".into(), format!("127.0.0.1:{port}")]
    } else {
        ["server", "--private", "--bind", "127.0.0.1", "0"].map(String::from).to_vec()
    };
    let server_code = if relayed { WORDS.to_string() } else { format!("7-{WORDS}") };
    let mut server = Reaped(
        program(pin)
            .args(&server_args)
            .env("SMOLCHAT_CODE", &server_code)
            .stdin(File::open(answers).map_err(|e| e.to_string())?)
            .stdout(File::create(dir.join("heard")).map_err(|e| e.to_string())?)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?,
    );
    let (client_args, client_code) = match wait_ready(&mut server.0)? {
        Ready::Listening(port) if !relayed => (
            ["client", "--private", "127.0.0.1", &port.to_string()].map(String::from).to_vec(),
            server_code,
        ),
        Ready::Code(code) if relayed => (
            vec!["client".into(), server_args[1].clone(), "--relay".into(), server_args[3].clone()],
            code,
        ),
        _ if relayed => return Ok(None),
        _ => return Err("the private server did not say where it listens".into()),
    };
    let began = Instant::now();
    let mut client = Reaped(
        program(pin)
            .args(&client_args)
            .env("SMOLCHAT_CODE", &client_code)
            .stdin(File::open(questions).map_err(|e| e.to_string())?)
            .stdout(File::create(dir.join("got")).map_err(|e| e.to_string())?)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the client: {e}"))?,
    );
    let client_exit = wait(&mut client.0, began + RUN_DEADLINE)?;
    let wall = began.elapsed().as_secs_f64();
    if client_exit != Some(0) {
        return Err(format!("the client's exit code: {client_exit:?}"));
    }
    // The server ends too: its input has ended and its chat is over.
    let server_exit = wait(&mut server.0, Instant::now() + Duration::from_secs(10))?;
    if server_exit != Some(0) {
        return Err(format!("the server's exit code: {server_exit:?}"));
    }
    same(&dir.join("got"), answers)?;
    same(&dir.join("heard"), questions)?;
    drop(relay);
    Ok(Some(wall))
}

enum Ready {
    Listening(u16),
    Code(String),
}

/// Reads the server's status lines until it listens or shows a relayed
/// room's code; the rest are read and dropped.
fn wait_ready(server: &mut Child) -> Result<Ready, String> {
    let status = BufReader::new(server.stderr.take().expect("piped stderr"));
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut told = false;
        for line in status.lines() {
            let Ok(line) = line else { break };
            if told {
                continue;
            }
            // A relayed room's code stands on a line of its own.
            let ready = if let Some(code) = line.strip_prefix("smolchat: the code is ") {
                Some(Ready::Code(code.trim().to_string()))
            } else if line.contains("listening on") {
                line.rsplit(':').next().and_then(|p| p.trim().parse().ok()).map(Ready::Listening)
            } else {
                None
            };
            if let Some(ready) = ready {
                told = true;
                let _ = tx.send(ready);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .map_err(|_| "the server said neither where it listens nor a code".to_string())
}

fn wait(child: &mut Child, deadline: Instant) -> Result<Option<i32>, String> {
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status.code());
        }
        if Instant::now() > deadline {
            return Err("still running at the deadline".into());
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// `n` 40-byte lines (with their `\n`), each different, tagged `tag`.
fn write_lines(path: &Path, n: usize, tag: u8) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    let mut line = [tag; 40];
    line[39] = b'\n';
    for i in 0..n {
        line[1..9].copy_from_slice(format!("{i:08}").as_bytes());
        out.write_all(&line)?;
    }
    out.flush()
}

/// Checks that two files hold the same bytes.
fn same(got: &Path, want: &Path) -> Result<(), String> {
    let read = |p: &Path| {
        let mut bytes = Vec::new();
        File::open(p).and_then(|mut f| f.read_to_end(&mut bytes)).map(|_| bytes)
    };
    let (a, b) = (read(got).map_err(|e| e.to_string())?, read(want).map_err(|e| e.to_string())?);
    if a == b {
        Ok(())
    } else {
        Err(format!("{} differs from {}", got.display(), want.display()))
    }
}
