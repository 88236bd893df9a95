//! What the relay counts as one address: an IPv4 address, or an IPv6 /64
//! (one home's, or one machine's, whole network: whoever holds one IPv6
//! address usually holds the 2^64 around it). An IPv4 peer of a dual-stack
//! listener (`::ffff:a.b.c.d`) is its IPv4 address. A /64 is also counted
//! in its /48, its site: whoever holds one /64 can usually take the other
//! 65,535 of their /48 (a tunnel broker hands out a /48 for free), so the
//! relay limits a site as a whole too, more loosely.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The top bits of an IPv4 address as an [`Addr`]: inside ff00::/8, which
/// is multicast in IPv6, so no TCP peer's /64 ever begins with them.
const IPV4: u64 = 0xff00_0000_0000_0000;

/// The top bits of an IPv6 site (/48) as an [`Addr`], in ff00::/8 too.
const SITE: u64 = 0xff01_0000_0000_0000;

/// The bits that tell IPv4 and sites from /64s (and from each other).
const KIND: u64 = 0xffff_0000_0000_0000;

/// One address in the relay's limits and strikes, packed in 8 bytes: the
/// IPv6 /64's prefix, an IPv4 address under [`IPV4`], or a site's /48
/// under [`SITE`].
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

    /// The IPv6 site (/48) this /64 is in; none for IPv4: its addresses are
    /// scarce, and many people share one behind their provider's NAT.
    pub fn site(self) -> Option<Addr> {
        (self.0 >> 56 != 0xff).then_some(Addr(SITE | self.0 >> 16))
    }

    /// This address, then its site if it has one: what an end counts
    /// against.
    pub fn and_site(self) -> impl Iterator<Item = Addr> {
        std::iter::once(self).chain(self.site())
    }
}

impl fmt::Display for Addr {
    /// `192.0.2.7`, `2001:db8:7::/64`, or `2001:db8:7::/48`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 & KIND {
            IPV4 => Ipv4Addr::from(self.0 as u32).fmt(f),
            SITE => write!(f, "{}/48", Ipv6Addr::from(u128::from(self.0 & !KIND) << 80)),
            _ => write!(f, "{}/64", Ipv6Addr::from(u128::from(self.0) << 64)),
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
        assert_eq!(of("192.0.2.7").site(), None);
    }

    #[test]
    fn the_64s_of_one_48_are_one_site() {
        let site = of("2001:db8:7::1").site().unwrap();
        assert_eq!(of("2001:db8:7:ffff::1").site(), Some(site));
        assert_ne!(of("2001:db8:8::1").site(), Some(site));
        assert_eq!(site.to_string(), "2001:db8:7::/48");
        // A site is neither a /64 nor an IPv4 address.
        assert_ne!(site, of("2001:db8:7::1"));
        assert!(["0.0.0.0", "255.255.255.255", "::1", "2001:db8::"].iter().all(|a| of(a) != site));
    }
}
