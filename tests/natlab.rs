//! The NAT lab: two homes behind two NAT routers and a public host, built in
//! network namespaces, and the tests that need it: a direct client cannot
//! reach a server behind NAT, the routers masquerade, a relayed chat goes
//! direct through routers that keep ports and outlives the relay, falls
//! back to the relay through routers that scramble them, and with
//! `--relay-only` stays on the relay without asking where it is seen.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::session::{assert_clean_stderr, raw_accept};
use crate::util::{self, Proc, DEADLINE};

/// Home 1's computer, on its LAN (192.0.2.0/25).
pub const HOME1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// Router 1 on home 1's LAN: home 1's gateway.
pub const RTR1_LAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Home 2's computer, on its LAN (198.51.100.0/25).
pub const HOME2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// Router 2 on home 2's LAN: home 2's gateway.
pub const RTR2_LAN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// Router 1 on the internet (203.0.113.0/24): where home 1 is seen from.
pub const RTR1_WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Router 2 on the internet: where home 2 is seen from.
pub const RTR2_WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The public host on the internet, where a relay runs.
pub const PUB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);

/// How a home router translates the ports of what its home opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// Plain `MASQUERADE`: a connection keeps its source port when it can,
    /// the kind that lets a simultaneous open through.
    KeepPorts,
    /// `MASQUERADE --random-fully`: every connection gets a random port.
    ScramblePorts,
}

/// A machine of the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Home1,
    Rtr1,
    Home2,
    Rtr2,
    Pub,
}

impl Host {
    const ALL: [Host; 5] = [Host::Home1, Host::Rtr1, Host::Home2, Host::Rtr2, Host::Pub];

    fn name(self) -> &'static str {
        match self {
            Host::Home1 => "home1",
            Host::Rtr1 => "rtr1",
            Host::Home2 => "home2",
            Host::Rtr2 => "rtr2",
            Host::Pub => "pub",
        }
    }
}

/// The start of every lab namespace's name; the process id follows, so a
/// lab whose test process is gone can be told from one still in use.
const PREFIX: &str = "sclab";

/// Labs made by this process so far, for unique names.
static LABS: AtomicU32 = AtomicU32::new(0);

/// Two homes behind two NAT routers, and a public host, each in its own
/// network namespace (`sclab<pid>x<n>-<host>`), removed when dropped.
///
/// ```text
///  home1   eth0 192.0.2.2/25                 home2   eth0 198.51.100.2/25
///            | veth                                    | veth
///  rtr1    lan  192.0.2.1/25                 rtr2    lan  198.51.100.1/25
///          wan  203.0.113.1/24                       wan  203.0.113.2/24
///            | veth                                    | veth
///  pub     rtr1 ---- inet (bridge) 203.0.113.100/24 ---- rtr2
/// ```
///
/// The bridge in `pub` is the internet: the public host and both routers'
/// WAN sides on one segment. Each router masquerades what leaves by `wan`
/// (see [`Nat`]) and is a home firewall: it forwards what its LAN opens and
/// the replies to it, and drops anything else that comes in by `wan`,
/// forwarded or for itself, without answering, so an unsolicited SYN gets no
/// reset. The internet routes each home's LAN to its router, as a provider
/// does for a customer's network, so what keeps a stranger out is the
/// router's firewall, not a missing route. IPv6 is off everywhere, so no
/// address outside the documentation ranges is made; `ip_forward` is on
/// only in the routers.
pub struct Lab {
    prefix: String,
    /// What building the lab took.
    pub built_in: Duration,
}

impl Lab {
    /// Builds the lab, or says why it cannot be built here and returns None
    /// (see [`util::skip`]: under CI that fails the test).
    pub fn new(nat: Nat) -> Option<Lab> {
        if !rustix::process::geteuid().is_root() {
            util::skip("the NAT lab needs root (network namespaces, iptables)");
            return None;
        }
        if !util::have("ip") || !util::have("iptables-restore") {
            return None;
        }
        static STALE: std::sync::Once = std::sync::Once::new();
        STALE.call_once(remove_stale_labs);
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let mut lab =
            Lab { prefix: format!("{PREFIX}{}x{n}", std::process::id()), built_in: Duration::ZERO };
        let started = Instant::now();
        // A name left by an earlier process with this id would be in the way.
        lab.remove();
        let adds: String =
            Host::ALL.iter().map(|&h| format!("netns add {}\n", lab.ns(h))).collect();
        // A kernel without namespaces, bridges or netfilter NAT is a
        // machine the lab cannot run on, like one without root.
        let built = ip_batch(None, &adds).and_then(|()| lab.build(nat));
        if let Err(why) = built {
            // Drop removes what was made.
            drop(lab);
            util::skip(&format!("cannot build the NAT lab: {why}"));
            return None;
        }
        lab.built_in = started.elapsed();
        Some(lab)
    }

    /// The namespace of `host`, for `ip netns exec` and `ip -n`.
    pub fn ns(&self, host: Host) -> String {
        format!("{}-{}", self.prefix, host.name())
    }

    /// `program`, to be run on `host` (by `ip netns exec`).
    pub fn command(&self, host: Host, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)]).arg(program);
        cmd
    }

    /// The smolchat under test, to be run on `host`, with the environment
    /// [`util::smolchat`] gives it.
    pub fn smolchat(&self, host: Host) -> Command {
        let base = util::smolchat();
        let mut cmd = self.command(host, base.get_program());
        for (key, value) in base.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    /// `smolchat ARGS` started on `host`.
    pub fn spawn(&self, host: Host, args: &[&str]) -> Proc {
        let mut cmd = self.smolchat(host);
        cmd.args(args);
        Proc::spawn(cmd)
    }

    /// Runs `f` on a thread inside `host`'s namespace and returns what it
    /// returns. Sockets made there stay in that namespace wherever they are
    /// used afterwards, so a test can hold raw peers on any lab host.
    pub fn on<T: Send>(&self, host: Host, f: impl FnOnce() -> T + Send) -> T {
        crate::netns::on(&self.ns(host), f)
    }

    /// Builds the links, addresses, routes and firewalls in the namespaces
    /// just made.
    fn build(&self, nat: Nat) -> Result<(), String> {
        for host in Host::ALL {
            let router = matches!(host, Host::Rtr1 | Host::Rtr2);
            // Before any link exists, so that no link gets an IPv6 address.
            self.on(host, || {
                for conf in ["all", "default"] {
                    write_sysctl(&format!("net/ipv6/conf/{conf}/disable_ipv6"), "1")?;
                }
                write_sysctl("net/ipv4/ip_forward", if router { "1" } else { "0" })
            })
            .map_err(|why| format!("{}: {why}", host.name()))?;
        }
        let (rtr1, rtr2, public) = (self.ns(Host::Rtr1), self.ns(Host::Rtr2), self.ns(Host::Pub));
        // Every link gets an index of its own, never its peer's: the kernel
        // tells a veth's carrier to the bridge at once only when the two
        // ends' indexes differ, and otherwise up to a second later.
        let home = |n: u8, lan: Ipv4Addr, gateway: Ipv4Addr, router: &str| {
            format!(
                "link set lo up\n\
                 link add eth0 index {n}0 type veth peer name lan index {n}1 netns {router}\n\
                 addr add {lan}/25 dev eth0\n\
                 link set eth0 up\n\
                 route add default via {gateway}\n"
            )
        };
        let router = |n: u8, lan: Ipv4Addr, wan: Ipv4Addr, other_net: &str, other: Ipv4Addr| {
            format!(
                "link set lo up\n\
                 addr add {lan}/25 dev lan\n\
                 link set lan up\n\
                 link add wan index {n}2 type veth peer name rtr{n} index {n}3 netns {public}\n\
                 addr add {wan}/24 dev wan\n\
                 link set wan up\n\
                 route add {other_net} via {other}\n"
            )
        };
        let internet = format!(
            "link set lo up\n\
             link add inet index 30 type bridge\n\
             addr add {PUB}/24 dev inet\n\
             link set inet up\n\
             link set rtr1 master inet\n\
             link set rtr1 up\n\
             link set rtr2 master inet\n\
             link set rtr2 up\n\
             route add 192.0.2.0/25 via {RTR1_WAN}\n\
             route add 198.51.100.0/25 via {RTR2_WAN}\n"
        );
        // In this order: each veth is made on the side nearer the home, and
        // the bridge takes the routers' ports last.
        let steps = [
            (Host::Home1, home(1, HOME1, RTR1_LAN, &rtr1)),
            (Host::Home2, home(2, HOME2, RTR2_LAN, &rtr2)),
            (Host::Rtr1, router(1, RTR1_LAN, RTR1_WAN, "198.51.100.0/25", RTR2_WAN)),
            (Host::Rtr2, router(2, RTR2_LAN, RTR2_WAN, "192.0.2.0/25", RTR1_WAN)),
            (Host::Pub, internet),
        ];
        for (host, commands) in steps {
            ip_batch(Some(&self.ns(host)), &commands)
                .map_err(|why| format!("{}: {why}", host.name()))?;
        }
        let random = match nat {
            Nat::KeepPorts => "",
            Nat::ScramblePorts => " --random-fully",
        };
        let rules = format!(
            "*nat\n\
             -A POSTROUTING -o wan -j MASQUERADE{random}\n\
             COMMIT\n\
             *filter\n\
             :INPUT ACCEPT [0:0]\n\
             :FORWARD DROP [0:0]\n\
             :OUTPUT ACCEPT [0:0]\n\
             -A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n\
             -A INPUT -i wan -j DROP\n\
             -A FORWARD -i lan -o wan -j ACCEPT\n\
             -A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n\
             COMMIT\n"
        );
        for host in [Host::Rtr1, Host::Rtr2] {
            let mut cmd = self.command(host, "iptables-restore");
            run_with_input(&mut cmd, &rules)
                .map_err(|why| format!("{}: iptables-restore: {why}", host.name()))?;
        }
        self.wait_for_the_bridge()
    }

    /// Waits until the bridge forwards from both routers' ports, so that a
    /// test's first packet is not lost (and a connect not a second late).
    fn wait_for_the_bridge(&self) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut cmd = Command::new("ip");
            cmd.args(["-n", &self.ns(Host::Pub), "-d", "-o", "link", "show", "master", "inet"]);
            let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
            let ports = String::from_utf8_lossy(&out.stdout);
            if ports.matches("bridge_slave state forwarding").count() == 2 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("the bridge does not forward:\n{ports}"));
            }
            // Polling the port state, as util's wait_for polls an exit.
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Removes the lab's namespaces that exist, after killing whatever still
    /// runs in them (a child a test leaked when it failed).
    fn remove(&self) {
        let names: Vec<String> = Host::ALL.iter().map(|&h| self.ns(h)).collect();
        remove_namespaces(&names);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Writes a sysctl of the calling thread's network namespace.
fn write_sysctl(name: &str, value: &str) -> Result<(), String> {
    let path = format!("/proc/sys/{name}");
    std::fs::write(&path, value).map_err(|e| format!("cannot write {path}: {e}"))
}

/// Runs `commands` by one `ip -batch -`, inside `ns` when given.
fn ip_batch(ns: Option<&str>, commands: &str) -> Result<(), String> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"]);
    run_with_input(&mut cmd, commands)
}

/// Runs `cmd` with `input` on its stdin; Err holds its stderr when it fails.
fn run_with_input(cmd: &mut Command, input: &str) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    // A child that fails early closes its stdin; its stderr says why.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().map_err(|e| format!("{cmd:?}: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim_end().to_string()),
    }
}

/// Kills what runs in each of `names` that exists and removes them; the
/// veths and the bridge go with their namespaces.
fn remove_namespaces(names: &[String]) {
    let existing: Vec<&String> = names
        .iter()
        .filter(|n| std::path::Path::new(&format!("/run/netns/{n}")).exists())
        .collect();
    if existing.is_empty() {
        return;
    }
    for name in &existing {
        crate::netns::kill_inside(name);
    }
    let dels: String = existing.iter().map(|n| format!("netns del {n}\n")).collect();
    // On the way out of a failing test a panic here would abort the run, so
    // a namespace that would not go is only said.
    if let Err(why) = ip_batch(None, &dels) {
        let _ = writeln!(std::io::stderr(), "NAT lab: cannot remove {existing:?}: {why}");
    }
}

/// Removes labs left by test processes that are gone (killed before their
/// Drop ran), never one of a process still running.
fn remove_stale_labs() {
    remove_namespaces(&crate::netns::stale(PREFIX));
}

/// A TCP connection from `local` to `remote`, made on the calling thread's
/// namespace (see [`Lab::on`]); the connect gives up after the deadline.
pub fn connect_from(local: SocketAddrV4, remote: SocketAddr) -> std::io::Result<TcpStream> {
    connect_within(local, remote, DEADLINE)
}

/// [`connect_from`], giving up after `limit`. The local address may be one
/// another socket is bound to (address and port reuse), as a simultaneous
/// open from the port of a relay connection needs.
pub fn connect_within(
    local: SocketAddrV4,
    remote: SocketAddr,
    limit: Duration,
) -> std::io::Result<TcpStream> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    rustix::net::bind(&fd, &local)?;
    // Linux bounds a blocking connect by the send timeout.
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(limit))?;
    rustix::net::connect(&fd, &remote)?;
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(DEADLINE))?;
    stream.set_write_timeout(Some(DEADLINE))?;
    Ok(stream)
}

/// `smolchat client ARGS HOST PORT` on `host`, which must fail to connect:
/// exit 1 and one error line, which is returned.
fn failed_client(lab: &Lab, host: Host, to: Ipv4Addr, port: u16) -> impl FnOnce() -> String {
    let port = port.to_string();
    let to = to.to_string();
    // stdin stays open: its end would end the client before it tried.
    let mut client = lab.spawn(host, &["client", "--connect-timeout", "2", &to, &port]);
    move || {
        // Its connect timeout and then some: a client still running got in.
        if client.wait_for(Duration::from_secs(10)).is_none() {
            panic!("a client reached {to}:{port} through the router\n{}", client.report());
        }
        let (code, out, err) = client.finish();
        assert_eq!(code, Some(1), "client to {to}:{port}: {err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert_clean_stderr("client", &err);
        err
    }
}

#[test]
fn a_direct_client_cannot_reach_a_server_behind_nat() {
    let Some(lab) = Lab::new(Nat::ScramblePorts) else { return };
    let mut server = lab.spawn(Host::Home2, &["server", "--bind", &HOME2.to_string(), "0"]);
    let port = server.listening_port();

    // Both tries at once: each waits out its connect timeout.
    let to_wan = failed_client(&lab, Host::Home1, RTR2_WAN, port);
    let to_lan = failed_client(&lab, Host::Home1, HOME2, port);
    // The router drops the SYN without a word, so it is a timeout, not a
    // refusal: a reset would also spoil a simultaneous open.
    assert_eq!(
        to_wan(),
        format!("smolchat: error: cannot connect to {RTR2_WAN}:{port}: timed out\n")
    );
    // Routed to the router, a home's own address is not forwarded in.
    assert_eq!(to_lan(), format!("smolchat: error: cannot connect to {HOME2}:{port}: timed out\n"));
    assert!(!server.stderr().contains(" connected"), "{}", server.report());

    // The server was there all along: its own home reaches it.
    let mut neighbour = lab.spawn(Host::Home2, &["client", &HOME2.to_string(), &port.to_string()]);
    neighbour.stderr_line_containing(&format!("connected to {HOME2}:{port}"));
    server.stderr_line_containing(&format!("{HOME2}:"));
}

#[test]
fn the_lab_routes_out_and_masquerades() {
    for nat in [Nat::KeepPorts, Nat::ScramblePorts] {
        let Some(lab) = Lab::new(nat) else { return };
        let listener = lab.on(Host::Pub, || TcpListener::bind((PUB, 0))).expect("listen on pub");
        let public = listener.local_addr().unwrap();
        for (home, lan, wan) in [(Host::Home1, HOME1, RTR1_WAN), (Host::Home2, HOME2, RTR2_WAN)] {
            let mut kept = 0;
            let ports = [40001, 40002, 40003];
            for port in ports {
                let local = SocketAddrV4::new(lan, port);
                let mut out = lab
                    .on(home, || connect_from(local, public))
                    .unwrap_or_else(|e| panic!("{nat:?}: {home:?} to {public}: {e}"));
                let mut seen = raw_accept(&listener);
                let from = seen.peer_addr().unwrap();
                // Seen from the internet, the home is its router.
                assert_eq!(from.ip(), wan, "{nat:?}: {home:?} from {local}");
                if from.port() == port {
                    kept += 1;
                }
                // And the replies find their way back in.
                out.write_all(b"ping").unwrap();
                let mut got = [0u8; 4];
                seen.read_exact(&mut got).unwrap();
                assert_eq!(&got, b"ping");
                seen.write_all(b"pong").unwrap();
                out.read_exact(&mut got).unwrap();
                assert_eq!(&got, b"pong");
            }
            match nat {
                // Nothing else holds those ports on the router.
                Nat::KeepPorts => assert_eq!(kept, ports.len(), "{nat:?}: {home:?}"),
                // Each kept port has a chance of 1 in about 28,000.
                Nat::ScramblePorts => assert!(kept < ports.len(), "{nat:?}: {home:?}"),
            }
        }
        let built = lab.built_in;
        let started = Instant::now();
        drop(lab);
        // Shown with --nocapture: what the lab costs a test.
        eprintln!("NAT lab {nat:?}: built in {built:?}, removed in {:?}", started.elapsed());
    }
}

#[test]
fn a_simultaneous_open_crosses_routers_that_keep_ports_only() {
    for nat in [Nat::KeepPorts, Nat::ScramblePorts] {
        let Some(lab) = Lab::new(nat) else { return };
        let listener = lab.on(Host::Pub, || TcpListener::bind((PUB, 0))).expect("listen on pub");
        let public = listener.local_addr().unwrap();
        // Each home meets the public host first, as at a relay, which sees
        // where the home comes from; both connections stay open.
        let meet = |home: Host, local: SocketAddrV4| {
            let out = lab.on(home, || connect_from(local, public)).expect("meet");
            let seen = raw_accept(&listener);
            let from = seen.peer_addr().unwrap();
            (out, seen, from)
        };
        let (local1, local2) = (SocketAddrV4::new(HOME1, 40001), SocketAddrV4::new(HOME2, 40002));
        let (_out1, _seen1, at1) = meet(Host::Home1, local1);
        let (_out2, _seen2, at2) = meet(Host::Home2, local2);
        // Then each connects, from that same port, to where the other was
        // seen, at once.
        let limit = Duration::from_secs(3);
        let started = Instant::now();
        let (one, two) = thread::scope(|scope| {
            let one = scope.spawn(|| lab.on(Host::Home1, || connect_within(local1, at2, limit)));
            let two = scope.spawn(|| lab.on(Host::Home2, || connect_within(local2, at1, limit)));
            (one.join().unwrap(), two.join().unwrap())
        });
        let took = started.elapsed();
        match nat {
            Nat::KeepPorts => {
                let (mut one, mut two) = (one.expect("home 1 direct"), two.expect("home 2 direct"));
                // One connection, seen from both ends through both routers.
                assert_eq!(one.peer_addr().unwrap(), at2);
                assert_eq!(two.peer_addr().unwrap(), at1);
                one.write_all(b"direct").unwrap();
                let mut got = [0u8; 6];
                two.read_exact(&mut got).unwrap();
                assert_eq!(&got, b"direct");
                eprintln!("NAT lab {nat:?}: simultaneous open in {took:?}");
            }
            // The ports the public host saw are not where a new connection
            // comes from, so each router drops the other's SYN.
            Nat::ScramblePorts => {
                assert!(one.is_err() && two.is_err(), "{nat:?}: {one:?} {two:?}");
            }
        }
    }
}

/// The code in a status line: a word shaped `N-word-word-word` (or
/// `N-word-word`, from `SMOLCHAT_CODE`).
#[cfg(feature = "private")]
fn code_in(line: &str) -> Option<String> {
    line.split_whitespace()
        .map(|word| word.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
        .find(|word| {
            let parts: Vec<&str> = word.split('-').collect();
            (3..=4).contains(&parts.len())
                && !parts[0].is_empty()
                && parts[0].bytes().all(|b| b.is_ascii_digit())
                && parts[1..]
                    .iter()
                    .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        })
        .map(str::to_string)
}

/// Skips `server`'s status lines up to one that gives a code, and returns it.
#[cfg(feature = "private")]
fn next_code(server: &mut Proc) -> String {
    loop {
        if let Some(code) = code_in(&server.stderr_line_containing("code")) {
            return code;
        }
    }
}

/// The lines of a long chat: unicode, tabs, an empty line, spaces at the
/// ends, and lines of 2 KB to 200 KB.
#[cfg(feature = "private")]
fn script(who: &str, turns: usize) -> Vec<String> {
    (0..turns)
        .map(|i| match i % 10 {
            3 => format!("{who} {i}: héllo wörld ✓ 世界 🎉 ñandú Ωμέγα"),
            5 => format!("  {who} {i}\twith a tab and spaces at both ends  "),
            7 if i == 7 => String::new(),
            9 => {
                let unit = format!("{who} {i} ünïcödé ");
                unit.repeat(100 * 10usize.pow((i / 10 % 3) as u32))
            }
            _ => format!("{who} line {i}"),
        })
        .map(|mut line| {
            line.push('\n');
            line
        })
        .collect()
}

/// The relay's port on the public host.
#[cfg(feature = "private")]
const RELAY_PORT: u16 = 7000;

/// `smolchat relay 7000` on the public host, listening.
#[cfg(feature = "private")]
fn start_relay(lab: &Lab) -> Proc {
    let mut relay = lab.spawn(Host::Pub, &["relay", &RELAY_PORT.to_string()]);
    relay.stderr_line_containing("relay listening on ");
    relay
}

/// What the lab's relayed pairs divide the protocol's deadlines by.
#[cfg(feature = "private")]
const DIVISOR: &str = "3";

/// A relayed server in home 2 and a client in home 1 that joined it by its
/// code, each through its own `relay` address and with its own flags. The
/// client's start is returned, and its lines are read up to `the code
/// matched` (when that line came, too), so later lines are timed as they
/// come.
#[cfg(feature = "private")]
struct Pair {
    server: Proc,
    client: Proc,
    code: String,
    /// When the client was started.
    started: Instant,
    /// When the client said `the code matched`.
    matched: Instant,
}

#[cfg(feature = "private")]
fn pair(lab: &Lab, relays: [&str; 2], server_flags: &[&str], client_flags: &[&str]) -> Pair {
    // The direct attempt (3 s) a third as long, so that a fallback is not
    // waited out in full (wire::deadline).
    let divisor = (smolchat::wire::DEADLINE_DIVISOR, DIVISOR);
    let mut cmd = lab.smolchat(Host::Home2);
    cmd.args(["server", "--relay", relays[0]]).args(server_flags).env_remove("SMOLCHAT_CODE");
    cmd.env(divisor.0, divisor.1);
    let mut server = Proc::spawn(cmd);
    let code = next_code(&mut server);
    let mut cmd = lab.smolchat(Host::Home1);
    cmd.args(["client", "--relay", relays[1]]).args(client_flags).env("SMOLCHAT_CODE", &code);
    cmd.env(divisor.0, divisor.1);
    let started = Instant::now();
    let mut client = Proc::spawn(cmd);
    client.stderr_line_containing("the code matched");
    let matched = Instant::now();
    server.stderr_line_containing("the code matched");
    Pair { server, client, code, started, matched }
}

/// 50 turns each way of [`script`]'s lines, each checked as it arrives;
/// then the client leaves (exit 0, nothing else said), the server says so,
/// and each side has got exactly what the other typed.
#[cfg(feature = "private")]
fn chat_exactly(server: &mut Proc, client: &mut Proc) {
    let questions = script("client", 50);
    let answers = script("server", 50);
    for (question, answer) in questions.iter().zip(&answers) {
        client.send(question.as_bytes());
        assert_eq!(&server.stdout_line(), question);
        server.send(answer.as_bytes());
        assert_eq!(&client.stdout_line(), answer);
    }
    client.send(b"EXIT\n");
    let (status, out, err) = client.finish();
    assert_eq!(status, Some(0), "{err}");
    assert_eq!(out, answers.concat());
    assert_clean_stderr("client", &err);
    server.stderr_line_containing("the client left");
    assert_eq!(server.stdout(), questions.concat());
    assert_clean_stderr("server", &server.stderr());
}

/// The relay's byte counts of the pair that ended (owner's, joiner's),
/// from its `pair ended after S s, N and M bytes` line.
#[cfg(feature = "private")]
fn relayed_bytes(relay: &mut Proc) -> (u64, u64) {
    let line = relay.stderr_line_containing("pair ended after ");
    let (_, counts) = line.split_once(", ").expect("byte counts");
    let words: Vec<&str> = counts.split(' ').collect();
    let count = |word: &str| word.parse::<u64>().unwrap_or_else(|_| panic!("{line}"));
    (count(words[0]), count(words[2]))
}

/// The address a status line ends with.
#[cfg(feature = "private")]
fn address_in(line: &str) -> SocketAddr {
    let word = line.trim_end().rsplit(' ').next().unwrap();
    word.parse().unwrap_or_else(|_| panic!("no address at the end of {line:?}"))
}

/// The established TCP connections of `proc`'s network namespace, as
/// (local, remote), from /proc/PID/net/tcp.
#[cfg(feature = "private")]
fn established(proc: &Proc) -> Vec<(SocketAddrV4, SocketAddrV4)> {
    let path = format!("/proc/{}/net/tcp", proc.pid());
    let table = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // `sl local rem st ...`: addresses as hex IP:port, the IP in the
    // host's byte order of a network-order word; 01 is ESTABLISHED.
    let addr = |field: &str| {
        let (ip, port) = field.split_once(':').unwrap();
        let ip = u32::from_str_radix(ip, 16).unwrap().to_ne_bytes();
        SocketAddrV4::new(Ipv4Addr::from(ip), u16::from_str_radix(port, 16).unwrap())
    };
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields[3] == "01")
        .map(|fields| (addr(fields[1]), addr(fields[2])))
        .collect()
}

#[cfg(feature = "private")]
#[test]
fn routers_that_keep_ports_let_both_go_direct_and_the_chat_outlives_the_relay() {
    let Some(lab) = Lab::new(Nat::KeepPorts) else { return };
    let mut relay = start_relay(&lab);
    let at = format!("{PUB}:{RELAY_PORT}");
    let Pair { mut server, mut client, started, matched, .. } = pair(&lab, [&at, &at], &[], &[]);
    let to_server = client.stderr_line_containing("smolchat: direct connection to ");
    let direct_in = started.elapsed();
    let proving = matched.elapsed();
    let to_client = server.stderr_line_containing("smolchat: direct connection to ");
    // Each names the other home's router, at the port its home's computer
    // uses (kept by its router): one link, seen from both ends.
    let (at_server, at_client) = (address_in(&to_server), address_in(&to_client));
    assert_eq!(at_server.ip(), RTR2_WAN, "{to_server}");
    assert_eq!(at_client.ip(), RTR1_WAN, "{to_client}");
    let home1 = established(&client);
    let home2 = established(&server);
    let link1 = SocketAddrV4::new(HOME1, at_client.port());
    let link2 = SocketAddrV4::new(HOME2, at_server.port());
    let want1 = (link1, SocketAddrV4::new(RTR2_WAN, at_server.port()));
    let want2 = (link2, SocketAddrV4::new(RTR1_WAN, at_client.port()));
    // The relay connections are closed: the direct link is all there is.
    assert_eq!(home1, [want1], "home 1's connections");
    assert_eq!(home2, [want2], "home 2's connections");
    // Both left the relay, which carried the handshake and the agreement.
    let (owner, joiner) = relayed_bytes(&mut relay);
    assert!(owner + joiner < 2048, "the relay carried {owner} and {joiner} bytes");
    relay.signal("KILL");
    relay.wait();
    chat_exactly(&mut server, &mut client);
    assert!(!client.stderr().contains("chatting through the relay"), "{}", client.report());
    // Shown with --nocapture: the figures for docs/relay.md.
    eprintln!(
        "NAT lab KeepPorts: direct connection {direct_in:?} after the client's start \
         ({proving:?} after the code matched); the relay carried {owner} + {joiner} bytes"
    );
}

#[cfg(feature = "private")]
#[test]
fn routers_that_scramble_ports_fall_back_to_the_relay_and_the_chat_is_exact() {
    let Some(lab) = Lab::new(Nat::ScramblePorts) else { return };
    let mut relay = start_relay(&lab);
    let at = format!("{PUB}:{RELAY_PORT}");
    let Pair { mut server, mut client, code, started, matched } = pair(&lab, [&at, &at], &[], &[]);
    client.stderr_line_containing("smolchat: chatting through the relay");
    let (relayed_in, attempt) = (started.elapsed(), matched.elapsed());
    server.stderr_line_containing("smolchat: chatting through the relay");
    // The attempt is 3 s, a third of it here; this bound only catches a hang.
    assert!(attempt < Duration::from_secs(8), "fell back after {attempt:?}");
    chat_exactly(&mut server, &mut client);
    // The server stays, in a new room, for the next person.
    next_code(&mut server);
    let (owner, joiner) = relayed_bytes(&mut relay);
    // The relay's lines show neither the code's words nor a line of the chat.
    let seen = relay.stderr();
    // (The words one by one could be in its lines by chance: "open".)
    let words = code.split_once('-').unwrap().1;
    for secret in [words, "héllo", "line 1"] {
        assert!(!seen.contains(secret), "the relay's output has {secret:?}:\n{seen}");
    }
    eprintln!(
        "NAT lab ScramblePorts: chatting through the relay {relayed_in:?} after the client's \
         start ({attempt:?} after the code matched); the relay carried {owner} + {joiner} bytes"
    );
}

/// What a tap saw of one side's relay connection: (up to the relay, down
/// from it).
#[cfg(feature = "private")]
type Seen = std::sync::Arc<std::sync::Mutex<(Vec<u8>, Vec<u8>)>>;

/// A tap on the public host between one side and the relay, keeping what
/// goes each way: its address, and what it saw. Made on the calling
/// thread's namespace (see [`Lab::on`]), and so are its threads.
#[cfg(feature = "private")]
fn tap() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind((PUB, 0)).expect("tap: listen");
    let at = listener.local_addr().unwrap();
    let seen = Seen::default();
    let log = seen.clone();
    // A thread made here is in this namespace too.
    thread::spawn(move || {
        // A side first asks whether the relay is one (its probe): passed
        // on untapped.
        let probe = raw_accept(&listener);
        let relay = TcpStream::connect((PUB, RELAY_PORT)).expect("tap: to the relay");
        let up = crate::util::forward(probe.try_clone().unwrap(), relay.try_clone().unwrap());
        crate::util::forward(relay, probe).join().unwrap();
        up.join().unwrap();
        let side = raw_accept(&listener);
        let relay = TcpStream::connect((PUB, RELAY_PORT)).expect("tap: to the relay");
        let copy = move |mut from: TcpStream, mut to: TcpStream, up: bool, log: Seen| {
            let mut buf = [0u8; 16384];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
                let mut log = log.lock().unwrap();
                let kept = if up { &mut log.0 } else { &mut log.1 };
                kept.extend_from_slice(&buf[..n]);
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        };
        let (side2, relay2) = (side.try_clone().unwrap(), relay.try_clone().unwrap());
        let up_log = log.clone();
        thread::spawn(move || copy(side2, relay2, true, up_log));
        copy(relay, side, false, log);
    });
    (at, seen)
}

#[cfg(feature = "private")]
#[test]
fn relay_only_stays_on_the_relay_and_asks_for_no_address() {
    let Some(lab) = Lab::new(Nat::KeepPorts) else { return };
    for (server_flags, client_flags) in [
        (&["--relay-only"][..], &["--relay-only"][..]),
        (&[], &["--relay-only"]),
        (&["--relay-only"], &[]),
    ] {
        let mut relay = start_relay(&lab);
        let ((server_at, server_seen), (client_at, client_seen)) =
            lab.on(Host::Pub, || (tap(), tap()));
        let relays = [server_at.to_string(), client_at.to_string()];
        let Pair { mut server, mut client, started, .. } =
            pair(&lab, [&relays[0], &relays[1]], server_flags, client_flags);
        client.stderr_line_containing("smolchat: chatting through the relay");
        let relayed_in = started.elapsed();
        server.stderr_line_containing("smolchat: chatting through the relay");
        chat_exactly(&mut server, &mut client);
        // The relay carried the chat: more than the longest lines both ways.
        let (owner, joiner) = relayed_bytes(&mut relay);
        assert!(owner > 200_000 && joiner > 200_000, "{owner} and {joiner} bytes");
        for (flags, seen, request) in
            [(server_flags, &server_seen, "open"), (client_flags, &client_seen, "join")]
        {
            let (up, down) = seen.lock().unwrap().clone();
            let end = up.iter().position(|&b| b == b'\n').expect("a request line");
            let first = String::from_utf8_lossy(&up[..end]).into_owned();
            assert!(first.starts_with(&format!("smolchat-relay/1 {request}")), "{first}");
            // A `seen` line comes right after `paired`, if at all; what
            // follows is sealed, so only that place is looked at.
            let paired = down.windows(7).position(|w| w == b"paired\n").expect("paired");
            let next = &down[paired + 7..(paired + 12).min(down.len())];
            if flags.is_empty() {
                // The side without the flag asks, and is told, as ever.
                assert!(first.ends_with(" direct"), "{first}");
                assert_eq!(next, b"seen ", "{request}: after paired");
            } else {
                assert!(!first.contains("direct"), "{first}");
                assert_ne!(next, b"seen ", "{request}: after paired");
            }
        }
        drop(relay);
        eprintln!(
            "NAT lab KeepPorts, --relay-only on {}: chatting through the relay {relayed_in:?} \
             after the client's start; the relay carried {owner} + {joiner} bytes",
            match (server_flags.is_empty(), client_flags.is_empty()) {
                (false, false) => "both sides",
                (true, _) => "the client",
                (_, true) => "the server",
            }
        );
    }
}
