//! Round-trip benchmark: a real `smolchat server 0` and `smolchat client 127.0.0.1 PORT` on
//! loopback exchange N lines turn by turn, and both outputs are checked byte for byte.
//!
//! Run it with:
//!
//! ```text
//! cargo bench                                  # 39-byte and 64 KiB lines, 3 runs each
//! SMOLCHAT_BASELINE=../shared/bench/baseline/target/release/baseline cargo bench
//! cargo bench --bench roundtrip -- --baseline ../shared/bench/baseline/target/release/baseline
//! cargo bench --bench roundtrip -- --big -r 5 --pin split       # only 64 KiB lines, 5 runs
//! cargo bench --bench roundtrip -- --short -n 50000 --pin none  # only short lines
//! cargo bench --bench roundtrip -- --help
//! ```
//!
//! Options need `--bench roundtrip`: a bare `cargo bench -- ARGS` hands ARGS to the library's
//! test harness too, which rejects them. The baseline is built with
//! `cargo build --release --manifest-path ../shared/bench/baseline/Cargo.toml`.
//!
//! It is the Rust twin of the reference harness `shared/bench/roundtrip.py`. One run: the server
//! starts on port 0 with N lines on stdin; the client starts with N lines then EOF, sends each
//! line and waits for the answer, so the session is N round trips; a closing connection then
//! sends `roundtrip-closer\n`, so the server shows it, reads its stdin EOF and exits 0. The
//! client's stdout must equal the server's input and the server's stdout the client's input plus
//! the closing line. A wrong output, exit code or timeout prints FAIL and the exit status is 1.
//!
//! Figures per run: client wall time (process start to exit), round trips/s (N / that time),
//! CPU µs per round trip (user+sys of both sides from GNU time, to 10 ms, divided by N) and the
//! peak RSS of each side (GNU time `%M`, "n/a" without /usr/bin/time). With a baseline binary, runs
//! alternate baseline/smolchat and each ratio is the median of the per-pair ratios, so the drift
//! of a noisy machine cancels out. `--pin same` (the default) runs both sides on CPU 0 with
//! `taskset`, `split` puts the client on CPU 1, `none` leaves it to the scheduler.
//!
//! Without `--bench` (which `cargo bench` passes), as under `cargo test --benches`, it makes one
//! short run of each scenario, to check that the bench itself works.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const CLOSER_LINE: &[u8] = b"roundtrip-closer\n";
/// How long the server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to exit once the client has finished.
const END_TIMEOUT: Duration = Duration::from_secs(10);
/// The figures of one run, in table order: name and decimals.
const FIGURES: [(&str, usize); 5] = [
    ("client wall s", 3),
    ("round trips/s", 0),
    ("CPU us/round trip", 1),
    ("server peak RSS KiB", 0),
    ("client peak RSS KiB", 0),
];

const USAGE: &str = "\
usage: cargo bench --bench roundtrip -- [options]
  -n N             round trips per run (default 20000 short, 2000 big)
  -r RUNS          runs of each configuration (default 3)
  --short          only the short lines (39 bytes + \\n)
  --big            only the big lines (65,536 bytes + \\n)
  --pin P          same (default: both on CPU 0), split (server CPU 0, client CPU 1), none
  --baseline PATH  the std-only baseline binary to compare with (or $SMOLCHAT_BASELINE)
  -t SECS          how long a client may take (default 120)
Unknown arguments (such as the --bench that cargo passes) are ignored.";

#[derive(Clone, Copy, PartialEq)]
enum Pin {
    Same,
    Split,
    None,
}

/// What the command line asked for.
struct Options {
    n: Option<usize>,
    runs: usize,
    short: bool,
    big: bool,
    pin: Pin,
    baseline: Option<PathBuf>,
    client_timeout: Duration,
    /// False under `cargo test`: one small run of each scenario.
    bench: bool,
}

fn usage_error(what: &str) -> ! {
    eprintln!("roundtrip: error: {what}\n{USAGE}");
    std::process::exit(2);
}

fn parse_args() -> Options {
    let mut opts = Options {
        n: None,
        runs: 3,
        short: false,
        big: false,
        pin: Pin::Same,
        baseline: std::env::var_os("SMOLCHAT_BASELINE").filter(|p| !p.is_empty()).map(Into::into),
        client_timeout: Duration::from_secs(120),
        bench: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        // `--pin=split` reads like `--pin split`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| usage_error(&format!("{name} needs a value")))
        };
        let count = |name: &str, v: String| match v.parse::<usize>() {
            Ok(k) if k > 0 => k,
            _ => usage_error(&format!("{name} '{v}': expected a positive whole number")),
        };
        match flag.as_str() {
            "-n" => opts.n = Some(count("-n", value("-n"))),
            "-r" | "--runs" => opts.runs = count("-r", value("-r")),
            "-t" | "--timeout" => {
                opts.client_timeout = Duration::from_secs(count("-t", value("-t")) as u64)
            }
            "--short" => opts.short = true,
            "--big" => opts.big = true,
            "--pin" => {
                opts.pin = match value("--pin").as_str() {
                    "same" => Pin::Same,
                    "split" => Pin::Split,
                    "none" => Pin::None,
                    other => usage_error(&format!("--pin '{other}': expected same, split or none")),
                }
            }
            "--baseline" => opts.baseline = Some(value("--baseline").into()),
            "--bench" => opts.bench = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => eprintln!("roundtrip: ignoring unknown argument '{arg}'"),
        }
    }
    if !opts.short && !opts.big {
        opts.short = true;
        opts.big = true;
    }
    opts
}

/// Where a tool is on $PATH, if it is installed.
fn which(tool: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(tool)).find(|p| p.is_file())
}

/// One kind of session: N lines of `size` bytes each way.
struct Scenario {
    name: &'static str,
    n: usize,
    size: usize,
}

/// A binary under test: the same program plays server and client.
struct Config {
    label: &'static str,
    bin: PathBuf,
}

/// Writes n lines of exactly `size` printable bytes plus `\n`, numbered and each shifted along
/// the alphabet, as roundtrip.py's make_lines does.
fn make_lines(path: &Path, n: usize, size: usize, tag: u8) -> io::Result<()> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut out = BufWriter::new(File::create(path)?);
    let mut line = Vec::with_capacity(size + 1);
    for i in 0..n {
        line.clear();
        line.push(tag);
        line.extend_from_slice(format!("{i:08} ").as_bytes());
        line.truncate(size);
        let k = i % ALPHABET.len();
        let fill = ALPHABET[k..].iter().chain(&ALPHABET[..k]).cycle();
        let room = size - line.len();
        line.extend(fill.take(room));
        line.push(b'\n');
        out.write_all(&line)?;
    }
    out.flush()
}

/// True when the file at `got` holds exactly `want`'s bytes followed by `extra`.
fn same_file(got: &Path, want: &Path, extra: &[u8]) -> io::Result<bool> {
    if fs::metadata(got)?.len() != fs::metadata(want)?.len() + extra.len() as u64 {
        return Ok(false);
    }
    let (mut g, mut w) = (File::open(got)?, File::open(want)?);
    let (mut gbuf, mut wbuf) = (vec![0; 1 << 20], vec![0; 1 << 20]);
    loop {
        let k = w.read(&mut wbuf)?;
        if k == 0 {
            let mut rest = Vec::new();
            g.read_to_end(&mut rest)?;
            return Ok(rest == extra);
        }
        g.read_exact(&mut gbuf[..k])?;
        if gbuf[..k] != wbuf[..k] {
            return Ok(false);
        }
    }
}

/// The first line where `got` differs from `want` + `extra`, for a failure message.
fn first_difference(got: &Path, want: &Path, extra: &[u8]) -> String {
    let read = |p: &Path| File::open(p).map(BufReader::new);
    let (Ok(mut g), Ok(mut w)) = (read(got), read(want)) else {
        return "cannot read the output".into();
    };
    let mut extra = Some(extra.to_vec()).filter(|e| !e.is_empty());
    let show = |l: &[u8]| format!("{:?}", String::from_utf8_lossy(&l[..l.len().min(60)]));
    for number in 1.. {
        let (mut gl, mut wl) = (Vec::new(), Vec::new());
        let _ = g.read_until(b'\n', &mut gl);
        if w.read_until(b'\n', &mut wl).unwrap_or(0) == 0 {
            wl = extra.take().unwrap_or_default();
        }
        match (gl.is_empty(), wl.is_empty()) {
            (true, true) => break,
            (false, true) => return format!("line {number}: unexpected extra line {}", show(&gl)),
            (true, false) => return format!("line {number}: output ends early"),
            _ if gl != wl => {
                return format!("line {number}: got {}, want {}", show(&gl), show(&wl));
            }
            _ => {}
        }
    }
    "no difference found".into()
}

/// How a side ended, as `Child::wait` tells it.
mod sys {
    use std::process::{Command, Stdio};

    /// How a child ended.
    pub struct Ended {
        /// The exit code, or None when a signal killed it.
        pub code: Option<i32>,
    }

    /// Sends SIGKILL to `pid` with kill(1), which keeps this bench free of unsafe code.
    pub fn kill_now(pid: u32) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Pids of a process's living descendants, from /proc: GNU time runs smolchat as its child, and
/// killing time alone would leave that child running.
fn descendants(pid: u32) -> Vec<u32> {
    let (mut out, mut todo) = (Vec::new(), vec![pid]);
    while let Some(p) = todo.pop() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for task in tasks.flatten() {
            let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            let kids: Vec<u32> =
                children.split_whitespace().filter_map(|k| k.parse().ok()).collect();
            out.extend(&kids);
            todo.extend(kids);
        }
    }
    out
}

/// Keeps the last bytes a child wrote to stderr, for failure messages.
type Log = Arc<Mutex<Vec<u8>>>;

/// A started side of the session, reaped on a thread so its end time and CPU are exact; killed
/// (with its descendants) when dropped before it ended.
struct Side {
    pid: u32,
    started: Instant,
    ended: Option<(Instant, io::Result<sys::Ended>)>,
    waiter: Receiver<(Instant, io::Result<sys::Ended>)>,
    stderr: Log,
}

impl Side {
    /// Starts `cmd` with stderr piped; each stderr line is also offered to `on_line`.
    fn spawn(
        mut cmd: Command,
        mut on_line: impl FnMut(&[u8]) + Send + 'static,
    ) -> io::Result<Side> {
        cmd.stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let stderr: Log = Arc::default();
        let (log, pipe) = (stderr.clone(), child.stderr.take().expect("stderr is piped"));
        thread::spawn(move || {
            let mut pipe = BufReader::new(pipe);
            let mut line = Vec::new();
            while pipe.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                on_line(&line);
                let mut log = log.lock().unwrap();
                log.extend_from_slice(&line);
                let excess = log.len().saturating_sub(4096);
                log.drain(..excess);
                line.clear();
            }
        });
        // The child is reaped on this thread, so its end time is exact.
        let (tx, waiter) = mpsc::channel();
        thread::spawn(move || {
            let ended = child.wait().map(|status| sys::Ended { code: status.code() });
            let _ = tx.send((Instant::now(), ended));
        });
        Ok(Side { pid, started, ended: None, waiter, stderr })
    }

    /// Waits until the side has ended or `deadline` passes; true when it has ended.
    fn wait_until(&mut self, deadline: Instant) -> bool {
        if self.ended.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            self.ended = self.waiter.recv_timeout(left).ok();
        }
        self.ended.is_some()
    }

    /// Kills the side and everything it started, and reaps it.
    fn kill(&mut self) {
        if self.ended.is_none() {
            for pid in descendants(self.pid).into_iter().chain([self.pid]) {
                sys::kill_now(pid);
            }
            self.wait_until(Instant::now() + Duration::from_secs(5));
        }
    }

    /// Wall time from start to exit, once ended.
    fn wall(&self) -> Option<Duration> {
        match &self.ended {
            Some((at, Ok(_))) => Some(*at - self.started),
            _ => None,
        }
    }

    fn stderr_tail(&self) -> String {
        let log = self.stderr.lock().unwrap();
        let text = String::from_utf8_lossy(&log[log.len().saturating_sub(400)..]).into_owned();
        text.trim().replace('\n', " | ")
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How each side is started: CPU pinning and GNU time, when present.
struct Launcher {
    taskset: Option<PathBuf>,
    gnu_time: Option<PathBuf>,
    pin: Pin,
}

impl Launcher {
    /// `bin args`, on `cpu` if pinning, under GNU time writing peak RSS to `rss` if present.
    /// taskset comes first and execs GNU time, so the pinning is inherited and GNU time's own
    /// memory stays out of the child's `%M`.
    fn command(&self, bin: &Path, args: &[&str], cpu: usize, rss: &Path) -> Command {
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let (Some(taskset), true) = (&self.taskset, self.pin != Pin::None) {
            argv.extend([taskset.into(), "-c".into(), cpu.to_string().into()]);
        }
        if let Some(time) = &self.gnu_time {
            argv.extend([time.into(), "-f".into(), "%U %S %M".into(), "-o".into(), rss.into()]);
            argv.push("--".into());
        }
        argv.push(bin.into());
        argv.extend(args.iter().map(Into::into));
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }

    fn cpus(&self) -> (usize, usize) {
        if self.pin == Pin::Split {
            (0, 1)
        } else {
            (0, 0)
        }
    }
}

/// The figures of one run, in FIGURES order, or why it failed.
type Figures = [Option<f64>; 5];

/// User+system CPU seconds and peak RSS in KiB from a GNU time output file written with
/// `%U %S %M` (the last line; a line before it may say how the command exited). GNU time prints
/// CPU to 10 ms, so CPU per round trip is coarse on short runs; wall time is exact.
fn read_time(path: &Path) -> (Option<f64>, Option<f64>) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let words: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match words[..] {
        [user, sys, rss] => (Some(user + sys), Some(rss)),
        _ => (None, None),
    }
}

/// One session of `cfg` with `n` round trips over the inputs in `work`; the figures, or the
/// problems found.
fn run_once(
    launcher: &Launcher,
    cfg: &Config,
    n: usize,
    work: &Path,
    client_timeout: Duration,
) -> Result<Figures, Vec<String>> {
    let (srv_in, cli_in) = (work.join("server.in"), work.join("client.in"));
    let (srv_out, cli_out) = (work.join("server.out"), work.join("client.out"));
    let (srv_rss, cli_rss) = (work.join("server.rss"), work.join("client.rss"));
    for path in [&srv_rss, &cli_rss] {
        let _ = fs::remove_file(path);
    }
    let (srv_cpu, cli_cpu) = launcher.cpus();
    let io_err = |what: &str, e: io::Error| vec![format!("{what}: {e}")];
    let mut problems = Vec::new();

    let mut cmd = launcher.command(&cfg.bin, &["server", "0"], srv_cpu, &srv_rss);
    cmd.stdin(File::open(&srv_in).map_err(|e| io_err("server input", e))?);
    cmd.stdout(File::create(&srv_out).map_err(|e| io_err("server output", e))?);
    let (port_tx, port_rx) = mpsc::channel();
    let mut server = Side::spawn(cmd, move |line| {
        let text = String::from_utf8_lossy(line);
        if let Some((_, addr)) = text.split_once("listening on ") {
            if let Some(Ok(port)) = addr.trim().rsplit_once(':').map(|(_, p)| p.parse::<u16>()) {
                let _ = port_tx.send(port);
            }
        }
    })
    .map_err(|e| io_err("cannot start the server", e))?;
    let Ok(port) = port_rx.recv_timeout(START_TIMEOUT) else {
        server.kill();
        return Err(vec![format!(
            "server printed no 'listening on ADDR:PORT' line within {START_TIMEOUT:?}; stderr: {}",
            server.stderr_tail()
        )]);
    };

    let port_arg = port.to_string();
    let mut cmd =
        launcher.command(&cfg.bin, &["client", "127.0.0.1", &port_arg], cli_cpu, &cli_rss);
    cmd.stdin(File::open(&cli_in).map_err(|e| io_err("client input", e))?);
    cmd.stdout(File::create(&cli_out).map_err(|e| io_err("client output", e))?);
    let mut client = Side::spawn(cmd, |_| {}).map_err(|e| io_err("cannot start the client", e))?;
    if !client.wait_until(Instant::now() + client_timeout) {
        problems.push(format!("client did not finish within {client_timeout:?}"));
        client.kill();
    } else if let Some(why) = exit_problem(&client) {
        problems.push(format!("client {why}"));
    }

    let end = Instant::now() + END_TIMEOUT;
    let closer_sent = !server.wait_until(Instant::now()) && send_closer(port, end);
    if !server.wait_until(end) {
        problems
            .push(format!("server did not exit within {END_TIMEOUT:?} after its stdin ran out"));
        server.kill();
    } else if let Some(why) = exit_problem(&server) {
        problems.push(format!("server {why}"));
    }

    match same_file(&cli_out, &srv_in, b"") {
        Ok(true) => {}
        _ => problems
            .push(format!("client stdout wrong: {}", first_difference(&cli_out, &srv_in, b""))),
    }
    // A server that ended at stdin EOF before the closer connected is accepted too.
    let extra = if closer_sent { CLOSER_LINE } else { b"" };
    match same_file(&srv_out, &cli_in, extra) {
        Ok(true) => {}
        _ => problems
            .push(format!("server stdout wrong: {}", first_difference(&srv_out, &cli_in, extra))),
    }
    let _ = fs::remove_file(&srv_out);
    let _ = fs::remove_file(&cli_out);

    if !problems.is_empty() {
        problems.push(format!("server stderr: {}", server.stderr_tail()));
        problems.push(format!("client stderr: {}", client.stderr_tail()));
        return Err(problems);
    }
    let Some(wall) = client.wall() else {
        unreachable!("the client exited 0");
    };
    let wall = wall.as_secs_f64();
    let ((srv_cpu, srv_peak), (cli_cpu, cli_peak)) = (read_time(&srv_rss), read_time(&cli_rss));
    let cpu = srv_cpu.zip(cli_cpu).map(|(s, c)| (s + c) * 1e6 / n as f64);
    Ok([Some(wall), Some(n as f64 / wall), cpu, srv_peak, cli_peak])
}

/// What is wrong with how an ended side exited, if anything.
fn exit_problem(side: &Side) -> Option<String> {
    match &side.ended {
        Some((_, Ok(sys::Ended { code: Some(0), .. }))) => None,
        Some((_, Ok(sys::Ended { code: Some(code), .. }))) => Some(format!("exited {code}")),
        Some((_, Ok(sys::Ended { code: None, .. }))) => Some("was killed by a signal".into()),
        Some((_, Err(e))) => Some(format!("could not be reaped: {e}")),
        None => Some("has not ended".into()),
    }
}

/// Connects, sends the closing line and reads until the server closes; true if it was sent.
fn send_closer(port: u16, deadline: Instant) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, left()) else { return false };
    let _ = stream.set_write_timeout(Some(left()));
    if stream.write_all(CLOSER_LINE).is_err() {
        return false;
    }
    let mut buf = [0; 4096];
    while Instant::now() < deadline {
        let _ = stream.set_read_timeout(Some(left()));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    true
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// "median (min - max)", or "n/a" with no values.
fn summary(values: &[f64], decimals: usize) -> String {
    if values.is_empty() {
        return "n/a".into();
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let d = decimals;
    format!("{:.d$} ({min:.d$} - {max:.d$})", median(values))
}

fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(String::len).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        println!("  {}", cells.join("   ").trim_end());
    }
}

/// Runs one scenario: every config `runs` times, alternating; prints runs and the table.
/// Returns false if any run failed.
fn run_scenario(
    opts: &Options,
    launcher: &Launcher,
    configs: &[Config],
    scenario: &Scenario,
    work: &Path,
) -> bool {
    println!(
        "\n{}: N={} round trips, {}-byte lines (+\\n), {} run(s) each",
        scenario.name, scenario.n, scenario.size, opts.runs
    );
    for (file, tag) in [("server.in", b's'), ("client.in", b'c')] {
        if let Err(e) = make_lines(&work.join(file), scenario.n, scenario.size, tag) {
            println!("FAIL cannot write the input {}: {e}", work.join(file).display());
            return false;
        }
    }
    // results[run][config]
    let mut results: Vec<Vec<Option<Figures>>> = Vec::new();
    let mut all_ok = true;
    for run in 1..=opts.runs {
        let mut row = Vec::new();
        for cfg in configs {
            match run_once(launcher, cfg, scenario.n, work, opts.client_timeout) {
                Ok(f) => {
                    let kib = |v: Option<f64>| v.map_or("n/a".into(), |k| format!("{k:.0}"));
                    println!(
                        "ok   {:<8} run {run}: {:.3} s, {:.0} round trips/s, {:.1} CPU us/rt, \
                         peak RSS server {} client {} KiB",
                        cfg.label,
                        f[0].unwrap_or(0.0),
                        f[1].unwrap_or(0.0),
                        f[2].unwrap_or(0.0),
                        kib(f[3]),
                        kib(f[4]),
                    );
                    row.push(Some(f));
                }
                Err(problems) => {
                    all_ok = false;
                    println!("FAIL {} run {run}: {}", cfg.label, problems.join("; "));
                    row.push(None);
                }
            }
        }
        results.push(row);
    }

    println!("median (min - max) over {} run(s)", opts.runs);
    let mut header = vec!["figure".to_string()];
    header.extend(configs.iter().map(|c| c.label.to_string()));
    if configs.len() == 2 {
        header.push(format!("{}/{}", configs[1].label, configs[0].label));
    }
    let mut rows = vec![header];
    for (i, (name, decimals)) in FIGURES.iter().enumerate() {
        let mut row = vec![name.to_string()];
        for c in 0..configs.len() {
            let values: Vec<f64> = results.iter().filter_map(|r| r[c].and_then(|f| f[i])).collect();
            row.push(summary(&values, *decimals));
        }
        if configs.len() == 2 {
            let ratios: Vec<f64> = results
                .iter()
                .filter_map(|r| Some(r[1]?[i]? / r[0]?[i]?))
                .filter(|x| x.is_finite())
                .collect();
            row.push(summary(&ratios, 2));
        }
        rows.push(row);
    }
    print_table(&rows);
    all_ok
}

/// Removes the scratch directory however the bench ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn main() {
    let mut opts = parse_args();
    let smolchat = PathBuf::from(env!("CARGO_BIN_EXE_smolchat"));
    let mut configs = Vec::new();
    if let Some(path) = &opts.baseline {
        if !path.is_file() {
            usage_error(&format!("baseline binary '{}' not found", path.display()));
        }
        configs.push(Config { label: "baseline", bin: path.clone() });
    }
    configs.push(Config { label: "smolchat", bin: smolchat });

    let mut launcher =
        Launcher { taskset: which("taskset"), gnu_time: which("time"), pin: opts.pin };
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    if opts.pin == Pin::Split && cpus < 2 {
        usage_error("--pin split needs two CPUs");
    }
    if opts.pin != Pin::None && launcher.taskset.is_none() {
        println!("roundtrip: taskset is not installed, so the sides are not pinned");
        launcher.pin = Pin::None;
    }
    if launcher.gnu_time.is_none() {
        println!("roundtrip: GNU time (/usr/bin/time) is not installed, so peak RSS is n/a");
    }

    let mut scenarios = Vec::new();
    if opts.short {
        scenarios.push(Scenario { name: "short lines", n: opts.n.unwrap_or(20_000), size: 39 });
    }
    if opts.big {
        scenarios.push(Scenario { name: "big lines", n: opts.n.unwrap_or(2_000), size: 65_536 });
    }
    if !opts.bench {
        println!("roundtrip: test mode (no --bench): one small run of each scenario");
        opts.runs = 1;
        for s in &mut scenarios {
            s.n = s.n.min(if s.size > 1000 { 20 } else { 100 });
        }
    }
    for cfg in &configs {
        println!("roundtrip: {} = {}", cfg.label, cfg.bin.display());
    }
    let pin = match launcher.pin {
        Pin::Same => "same (both sides on CPU 0)",
        Pin::Split => "split (server on CPU 0, client on CPU 1)",
        Pin::None => "none",
    };
    println!("roundtrip: client -> 127.0.0.1, pin {pin}");

    let work =
        WorkDir(std::env::temp_dir().join(format!("smolchat-roundtrip.{}", std::process::id())));
    if let Err(e) = fs::create_dir_all(&work.0) {
        println!("FAIL cannot create {}: {e}", work.0.display());
        std::process::exit(1);
    }
    let mut ok = true;
    for scenario in &scenarios {
        ok &= run_scenario(&opts, &launcher, &configs, scenario, &work.0);
    }
    println!("\nresult: {}", if ok { "all outputs correct" } else { "FAIL" });
    drop(work);
    std::process::exit(if ok { 0 } else { 1 });
}
