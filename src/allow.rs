//! Who may join: the server's `--allow` and `--deny` networks, checked on a
//! client's address right after accept.

use std::fmt;
use std::net::IpAddr;

/// A network: an address and how many of its leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    bits: u8,
}

impl Net {
    /// Reads `ADDR` or `ADDR/BITS`, IPv4 or IPv6 (brackets allowed around
    /// an IPv6 address); `Err` holds the reason, for a usage error.
    pub fn parse(text: &str) -> Result<Net, String> {
        let (addr, bits) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (text, None),
        };
        let addr: IpAddr = crate::wire::net::unbracket(addr)
            .parse()
            .map_err(|_| "expected an IPv4 or IPv6 address, optionally with /BITS".to_string())?;
        // An IPv4-mapped IPv6 network is the IPv4 network it names.
        let (addr, bits) = match (addr.to_canonical(), bits) {
            (IpAddr::V4(v4), Some(bits)) if addr.is_ipv6() => (
                IpAddr::V4(v4),
                prefix(bits, 128)?.checked_sub(96).ok_or("a mapped prefix needs /96 or more")?,
            ),
            (canonical, Some(bits)) => (canonical, prefix(bits, width(canonical))?),
            (canonical, None) => (canonical, width(canonical)),
        };
        Ok(Net { addr, bits })
    }

    /// Whether `ip` is in this network; an IPv4-mapped address is matched
    /// as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let (mine, theirs, width) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                (u128::from(u32::from(a)), u128::from(u32::from(b)), 32)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        let shift = width - u32::from(self.bits);
        shift >= width || (mine >> shift) == (theirs >> shift)
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

fn width(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn prefix(bits: &str, width: u8) -> Result<u8, String> {
    match bits.parse::<u8>() {
        Ok(n) if n <= width && bits.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("expected a prefix length from 0 to {width} after '/'")),
    }
}

/// The server's `--allow` and `--deny` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// When not empty, only these networks may join.
    pub allow: Vec<Net>,
    /// These networks may not join, whatever `allow` says.
    pub deny: Vec<Net>,
}

impl Admission {
    /// Whether a client from `ip` may join.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let allowed = self.allow.is_empty() || self.allow.iter().any(|net| net.contains(ip));
        allowed && !self.deny.iter().any(|net| net.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Net {
        Net::parse(text).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_and_prefixes_parse() {
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(net("::1").to_string(), "::1/128");
        assert_eq!(net("[fd00::]/8").to_string(), "fd00::/8");
        assert_eq!(net("::ffff:198.51.100.3").to_string(), "198.51.100.3/32");
        assert_eq!(net("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host",
            "::ffff:203.0.113.4/95",
        ] {
            assert!(Net::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        assert!(net("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!net("192.0.2.7").contains(ip("192.0.2.6")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.4")));
        assert!(!net("0.0.0.0/0").contains(ip("::1")));
        assert!(net("::/0").contains(ip("::1")));
        assert!(net("fd00::/8").contains(ip("fdab::1")));
        assert!(!net("fd00::/8").contains(ip("fe80::1")));
        assert!(net("10.0.0.0/31").contains(ip("10.0.0.1")));
        assert!(!net("10.0.0.0/31").contains(ip("10.0.0.2")));
    }

    #[test]
    fn ipv4_clients_of_an_ipv6_listener_match_as_ipv4() {
        assert!(net("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert!(!net("::1").contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn deny_wins_over_allow() {
        let who = Admission { allow: vec![net("10.0.0.0/8")], deny: vec![net("10.0.0.5")] };
        assert!(who.admits(ip("10.0.0.4")));
        assert!(!who.admits(ip("10.0.0.5")));
        assert!(!who.admits(ip("192.0.2.1")));
        let deny_only = Admission { allow: vec![], deny: vec![net("::1")] };
        assert!(!deny_only.admits(ip("::1")));
        assert!(deny_only.admits(ip("127.0.0.1")));
        assert!(Admission::default().admits(ip("203.0.113.8")));
    }
}
