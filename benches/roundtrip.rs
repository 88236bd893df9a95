//! Round trips: a real `smolchat server` and `smolchat client` on loopback
//! exchange lines turn by turn, against the std-only blocking baseline in
//! `benches/baseline/` doing the same, and both outputs are checked.
//!
//! ```text
//! cargo bench                       # 40-byte and 64 KiB lines, 3 runs of each side
//! BENCH_RUNS=7 cargo bench          # more runs, steadier medians
//! ```
//!
//! A run: the server reads N answers from a file, the client N questions; the
//! client sends each and waits for its answer, then its input ends, it closes
//! and the server, with no answer left, ends too. The client's output must
//! be the answers and the server's the questions, byte for byte. Runs
//! alternate baseline and smolchat, and each ratio is the median of the
//! pair-by-pair ratios, so that a noisy machine's drift cancels out. Both
//! sides share CPU 0 (with `taskset`, when it is there). Figures: the
//! client's wall time, round trips per second, CPU time of both sides per
//! round trip (from the kernel's 10 ms ticks) and each side's peak RSS.
//!
//! The bench runs the baseline by starting itself with `--baseline-chat`.
//! Under `cargo test --benches` (no `--bench` argument) it makes one short
//! run of each kind, to check that it works.

#[path = "baseline/mod.rs"]
mod baseline;
#[path = "common/mod.rs"]
mod common;

use common::{median, Reaped, WorkDir};

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The scenarios: line length with its `\n`, and round trips per run.
const SCENARIOS: [(&str, usize, usize); 2] =
    [("40-byte lines", 40, 20_000), ("64 KiB lines", 65_537, 1_000)];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--baseline-chat") {
        return baseline::main(&args[1..]);
    }
    let bench = args.iter().any(|a| a == "--bench");
    let runs = if bench {
        std::env::var("BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3)
    } else {
        1
    };
    let dir = WorkDir::new("smolchat-bench");
    let pin = Path::new("/usr/bin/taskset").exists();
    println!(
        "{:<14} {:<9} {:>8} {:>9} {:>10} {:>11} {:>11}",
        "lines", "", "wall s", "rt/s", "CPU us/rt", "server KiB", "client KiB"
    );
    let mut ok = true;
    for (name, size, round_trips) in SCENARIOS {
        let n = if bench { round_trips } else { round_trips / 100 };
        let questions = dir.0.join("questions");
        let answers = dir.0.join("answers");
        write_lines(&questions, n, size, b'q').expect("write the questions");
        write_lines(&answers, n, size, b'a').expect("write the answers");
        let mut figures: [Vec<Figures>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..runs {
            for (side, program) in [baseline(), smolchat()].into_iter().enumerate() {
                match run(program, pin, &dir.0, &questions, &answers, n) {
                    Ok(f) => figures[side].push(f),
                    Err(e) => {
                        println!("{name}: {}: FAIL: {e}", ["baseline", "smolchat"][side]);
                        ok = false;
                    }
                }
            }
        }
        if figures.iter().any(Vec::is_empty) {
            continue;
        }
        for (side, runs) in figures.iter().enumerate() {
            let m = |f: fn(&Figures) -> f64| median(runs.iter().map(f).collect());
            let wall = m(|f| f.wall);
            println!(
                "{name:<14} {:<9} {wall:>8.3} {:>9.0} {:>10.1} {:>11.0} {:>11.0}",
                ["baseline", "smolchat"][side],
                n as f64 / wall,
                m(|f| f.cpu) * 1e6 / n as f64,
                m(|f| f.server_kib),
                m(|f| f.client_kib),
            );
        }
        let ratio = |f: fn(&Figures) -> f64| {
            median(figures[0].iter().zip(&figures[1]).map(|(b, s)| f(s) / f(b)).collect())
        };
        println!(
            "{name:<14} {:<9} {:>8.2} {:>9} {:>10.2} {:>11.2} {:>11.2}",
            "ratio",
            ratio(|f| f.wall),
            "",
            ratio(|f| f.cpu.max(0.01)),
            ratio(|f| f.server_kib),
            ratio(|f| f.client_kib),
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One run's figures.
struct Figures {
    wall: f64,
    cpu: f64,
    server_kib: f64,
    client_kib: f64,
}

fn smolchat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smolchat"))
}

fn baseline() -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the bench's own path"));
    cmd.arg("--baseline-chat");
    cmd
}

/// `size`-byte lines (with their `\n`), each different, tagged `tag`.
fn write_lines(path: &Path, n: usize, size: usize, tag: u8) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    let mut line = vec![tag; size];
    line[size - 1] = b'\n';
    for i in 0..n {
        let number = format!("{i:08}");
        line[1..9].copy_from_slice(number.as_bytes());
        out.write_all(&line)?;
    }
    out.flush()
}

/// One session of `n` round trips with `program` on both sides.
fn run(
    program: Command,
    pin: bool,
    dir: &Path,
    questions: &Path,
    answers: &Path,
    n: usize,
) -> Result<Figures, String> {
    let start =
        |args: &[&str], input: &Path, output: &Path, stderr: Stdio| -> Result<Child, String> {
            let mut cmd =
                if pin { Command::new("taskset") } else { Command::new(program.get_program()) };
            if pin {
                cmd.args(["-c", "0"]).arg(program.get_program());
            }
            cmd.args(program.get_args()).args(args);
            let input = File::open(input).map_err(|e| e.to_string())?;
            let output = File::create(output).map_err(|e| e.to_string())?;
            cmd.stdin(input).stdout(output).stderr(stderr).spawn().map_err(|e| e.to_string())
        };
    let cpu_before = children_cpu();
    let mut server = Reaped(start(
        &["server", "--bind", "127.0.0.1", "0"],
        answers,
        &dir.join("heard"),
        Stdio::piped(),
    )?);
    let mut status = BufReader::new(server.0.stderr.take().unwrap());
    let mut line = String::new();
    status.read_line(&mut line).map_err(|e| e.to_string())?;
    let port = line.trim_end().rsplit(':').next().unwrap_or("").to_string();
    thread::spawn(move || io::copy(&mut status, &mut io::sink()));
    let began = Instant::now();
    let mut client =
        Reaped(start(&["client", "127.0.0.1", &port], questions, &dir.join("got"), Stdio::null())?);
    let [(client_code, client_kib, client_end), (server_code, server_kib, _)] =
        watch([&mut client.0, &mut server.0])?;
    let wall = (client_end - began).as_secs_f64();
    if client_code != Some(0) || server_code != Some(0) {
        return Err(format!("exit codes: client {client_code:?}, server {server_code:?}"));
    }
    same(&dir.join("got"), answers)?;
    same(&dir.join("heard"), questions)?;
    let _ = n;
    Ok(Figures { wall, cpu: children_cpu() - cpu_before, server_kib, client_kib })
}

/// Waits for both children, at most a minute, sampling their peak RSS as
/// they run; each one's exit code, peak RSS in KiB and when it was seen gone.
fn watch(mut children: [&mut Child; 2]) -> Result<[(Option<i32>, f64, Instant); 2], String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = [(None, 0.0, Instant::now()); 2];
    let mut done = [false; 2];
    while done.contains(&false) {
        for (i, child) in children.iter().enumerate() {
            if done[i] {
                continue;
            }
            // The child's own process: taskset execs in place.
            let status = fs::read_to_string(format!("/proc/{}/status", child.id()));
            if let Some(kib) =
                status.unwrap_or_default().lines().find_map(|l| l.strip_prefix("VmHWM:"))
            {
                seen[i].1 = kib.trim().trim_end_matches(" kB").parse().unwrap_or(seen[i].1);
            }
        }
        for (i, child) in children.iter_mut().enumerate() {
            if !done[i] {
                if let Some(exit) = child.try_wait().map_err(|e| e.to_string())? {
                    seen[i].0 = exit.code();
                    seen[i].2 = Instant::now();
                    done[i] = true;
                }
            }
        }
        if Instant::now() > deadline {
            return Err("still running after a minute".into());
        }
        thread::sleep(Duration::from_millis(2));
    }
    Ok(seen)
}

/// User and system time of the children waited for so far, in seconds.
fn children_cpu() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which ends with `)`: cutime and cstime
    // are the 14th and 15th, in ticks of 10 ms.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<f64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    fields.get(13..15).map_or(0.0, |t| (t[0] + t[1]) / 100.0)
}

/// Checks that two files hold the same bytes.
fn same(got: &Path, want: &Path) -> Result<(), String> {
    let (mut a, mut b) =
        (File::open(got).map_err(|e| e.to_string())?, File::open(want).map_err(|e| e.to_string())?);
    let (mut x, mut y) = (vec![0; 1 << 16], vec![0; 1 << 16]);
    let mut offset = 0;
    loop {
        let n = read_full(&mut a, &mut x).map_err(|e| e.to_string())?;
        let m = read_full(&mut b, &mut y).map_err(|e| e.to_string())?;
        if x[..n] != y[..m] {
            return Err(format!(
                "{} differs from {} after byte {offset}",
                got.display(),
                want.display()
            ));
        }
        if n == 0 {
            return Ok(());
        }
        offset += n;
    }
}

fn read_full(src: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
