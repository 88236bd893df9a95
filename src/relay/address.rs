//! What the relay counts as one address: an IPv4 address, or an IPv6 /64
//! (one home's, or one machine's, whole network: whoever holds one IPv6
//! address usually holds the 2^64 around it). An IPv4 peer of a dual-stack
//! listener (`::ffff:a.b.c.d`) is its IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The top bits of an IPv4 address as an [`Addr`]: inside ff00::/8, which
/// is multicast in IPv6, so no TCP peer's /64 ever begins with them.
const IPV4: u64 = 0xff00_0000_0000_0000;

/// One address in the relay's limits and strikes, packed in 8 bytes: the
/// IPv6 /64's prefix, or an IPv4 address under [`IPV4`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Addr(u64);

impl Addr {
    /// The address a peer at `ip` counts as.
    pub fn of(ip: IpAddr) -> Addr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Addr(IPV4 | u64::from(u32::from(v4))),
            IpAddr::V6(v6) => Addr((u128::from(v6) >> 64) as u64),
        }
    }
}

impl fmt::Display for Addr {
    /// `192.0.2.7`, or `2001:db8:7:0::/64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >> 56 == IPV4 >> 56 {
            Ipv4Addr::from(self.0 as u32).fmt(f)
        } else {
            write!(f, "{}/64", Ipv6Addr::from(u128::from(self.0) << 64))
        }
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Addr {
        Addr::of(text.parse().unwrap())
    }

    #[test]
    fn an_ipv6_64_is_one_address() {
        assert_eq!(of("2001:db8:7::1"), of("2001:db8:7:0:ffff:ffff:ffff:ffff"));
        assert_ne!(of("2001:db8:7::1"), of("2001:db8:7:1::1"));
        assert_eq!(of("2001:db8:7::1").to_string(), "2001:db8:7::/64");
        // Loopback's /64 is the zero prefix, and a real one.
        assert_ne!(of("::1"), of("0.0.0.0"));
    }

    #[test]
    fn an_ipv4_address_is_itself_also_when_written_in_ipv6() {
        assert_eq!(of("192.0.2.7"), of("::ffff:192.0.2.7"));
        assert_ne!(of("192.0.2.7"), of("192.0.2.8"));
        assert_eq!(of("::ffff:192.0.2.7").to_string(), "192.0.2.7");
        assert_eq!(of("255.255.255.255").to_string(), "255.255.255.255");
        // IPv4 is packed where only multicast /64s would be, which no TCP
        // peer can have.
        assert_eq!(of("ff00::"), of("0.0.0.0"));
    }
}
