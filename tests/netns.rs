//! A network namespace of a test's or a bench's own, for the addresses that
//! loopback alone cannot hold: IPv6 prefixes (documentation ones only)
//! routed to loopback as local, with `net.ipv6.ip_nonlocal_bind` on, so that
//! a socket may be bound to any address in them. Shared by tests/relay.rs
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

    /// Runs `f` on a thread inside the namespace: the sockets it makes, and
    /// the threads it starts, are in there.
    pub fn on<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsFd;
        let path = format!("/run/netns/{}", self.name);
        thread::scope(|scope| {
            scope
                .spawn(|| {
                    let ns = std::fs::File::open(&path).expect("open the namespace");
                    rustix::thread::move_into_link_name_space(
                        ns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .expect("enter the namespace");
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
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

/// Kills what still runs in namespace `name` and removes it.
pub fn remove(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Some(pid) = pid.parse().ok().and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    // On the way out of a failing test a panic here would abort the run.
    if let Err(why) = ip(&["netns", "del", name]) {
        let _ = writeln!(std::io::stderr(), "cannot remove namespace {name}: {why}");
    }
}
