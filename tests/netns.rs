//! A network namespace of a test's or a bench's own, for the addresses that
//! loopback alone cannot hold: IPv6 prefixes (documentation ones only)
//! routed to loopback as local, with `net.ipv6.ip_nonlocal_bind` on, so that
//! a socket may be bound to any address in them; and what every namespace
//! of the tests needs: a thread inside one, its processes killed, the ones a
//! killed test process left found. Shared by tests/relay.rs, the NAT lab
//! and benches/relay/attack.rs.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;

/// A namespace, removed when dropped (also when a test fails), with what
/// still runs in it killed first.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Makes namespace `name`: loopback up and `nets` routed to it as local.
    /// Needs root and `ip`; Err holds what failed. Whatever was made is
    /// removed again when setting it up fails.
    pub fn new(name: String, nets: &[&str]) -> Result<Netns, String> {
        ip(&["netns", "add", &name])?;
        // From here on, dropping it removes it.
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        for net in nets {
            ip(&["-n", &ns.name, "-6", "route", "add", "local", net, "dev", "lo"])?;
        }
        ns.on(|| {
            std::fs::write("/proc/sys/net/ipv6/ip_nonlocal_bind", "1")
                .map_err(|e| format!("net.ipv6.ip_nonlocal_bind: {e}"))
        })?;
        Ok(ns)
    }

    /// `program`, with its arguments and environment, run inside by `ip
    /// netns exec`.
    pub fn command(&self, program: &Command) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program.get_program()).args(program.get_args());
        for (key, value) in program.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    /// Runs `f` on a thread inside the namespace (see [`on`]).
    pub fn on<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        on(&self.name, f)
    }
}

/// Runs `f` on a thread inside namespace `name` and returns what it
/// returns: the sockets it makes, and the threads it starts, are in there,
/// and sockets stay in it wherever they are used afterwards.
pub fn on<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    use std::os::fd::AsFd;
    let path = format!("/run/netns/{name}");
    thread::scope(|scope| {
        scope
            .spawn(|| {
                let ns = std::fs::File::open(&path)
                    .unwrap_or_else(|e| panic!("open the namespace {path}: {e}"));
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .unwrap_or_else(|e| panic!("enter the namespace {path}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

/// Runs `ip ARGS`; Err holds what it said when it fails.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim_end()
        )),
    }
}

/// Kills what still runs in namespace `name`.
pub fn kill_inside(name: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() else { return };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Some(pid) = pid.parse().ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// The namespaces named `PREFIX` + a process id + `x...` whose process is
/// gone (killed before its Drop ran), never one of a process still running.
pub fn stale(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/run/netns") else { return Vec::new() };
    dir.filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| {
            let Some(rest) = name.strip_prefix(prefix) else { return false };
            let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
            !pid.is_empty()
                && rest[pid.len()..].starts_with('x')
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .collect()
}

/// Kills what still runs in namespace `name` and removes it.
pub fn remove(name: &str) {
    kill_inside(name);
    // On the way out of a failing test a panic here would abort the run.
    if let Err(why) = ip(&["netns", "del", name]) {
        let _ = writeln!(std::io::stderr(), "cannot remove namespace {name}: {why}");
    }
}
